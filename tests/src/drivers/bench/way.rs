//! What a benchmark's pgbench talks to: PostgreSQL itself, or a relay in front of it. One list
//! for both benchmarks, so that a target has one name in every report, table and file.

/// What pgbench talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Way {
    /// PostgreSQL itself: the ceiling, and no relay's CPU to measure.
    Direct,
    Pgwarm,
    Pgbouncer,
    /// HAProxy in `mode tcp`: a relay that only copies bytes (the throughput benchmark's floor).
    Haproxy,
}

impl Way {
    /// Every way, in the order of the reports' columns.
    pub(crate) const ALL: [Way; 4] = [Way::Direct, Way::Pgwarm, Way::Pgbouncer, Way::Haproxy];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Way::Direct => "direct",
            Way::Pgwarm => "pgwarm",
            Way::Pgbouncer => "pgbouncer",
            Way::Haproxy => "haproxy",
        }
    }

    /// The way named `name` (a runs table's target column).
    pub(crate) fn parse(name: &str) -> Option<Way> {
        Way::ALL.into_iter().find(|w| w.name() == name)
    }

    /// The relay whose CPU time a run measures, by its name; none for a direct connection.
    pub(crate) fn relay(self) -> Option<&'static str> {
        (self != Way::Direct).then(|| self.name())
    }
}
