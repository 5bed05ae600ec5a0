//! The connect benchmark's six cases: each target (direct, pgwarm, PgBouncer), with and without
//! TLS from the client, by the names its report and files use.

use crate::drivers::bench::pgbench::SslMode;
use crate::drivers::bench::way::Way;

/// The targets, in the report's order (HAProxy is the throughput benchmark's alone).
pub(super) const WAYS: [Way; 3] = [Way::Direct, Way::Pgwarm, Way::Pgbouncer];

/// A target and whether the client asks it for TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Case {
    pub(super) way: Way,
    pub(super) sslmode: SslMode,
}

pub(super) const CASES: [Case; 6] = {
    const fn case(way: Way, sslmode: SslMode) -> Case {
        Case { way, sslmode }
    }
    [
        case(Way::Direct, SslMode::Require),
        case(Way::Direct, SslMode::Disable),
        case(Way::Pgwarm, SslMode::Require),
        case(Way::Pgwarm, SslMode::Disable),
        case(Way::Pgbouncer, SslMode::Require),
        case(Way::Pgbouncer, SslMode::Disable),
    ]
};

impl Case {
    /// `direct-tls`, `pgwarm-plain`, ...
    pub(super) fn name(self) -> String {
        let tls = match self.sslmode {
            SslMode::Require => "tls",
            SslMode::Disable => "plain",
        };
        format!("{}-{tls}", self.way.name())
    }

    /// The case named `name`, one of the six.
    pub(super) fn named(name: &str) -> Case {
        CASES
            .into_iter()
            .find(|c| c.name() == name)
            .expect("one of the six cases")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::figures::round_order;

    #[test]
    fn the_six_cases_by_name_and_their_rotation() {
        let names: Vec<String> = CASES.iter().map(|c| c.name()).collect();
        assert_eq!(
            names,
            [
                "direct-tls",
                "direct-plain",
                "pgwarm-tls",
                "pgwarm-plain",
                "pgbouncer-tls",
                "pgbouncer-plain"
            ]
        );
        let second: Vec<String> = round_order(&CASES, 2, 2).iter().map(|c| c.name()).collect();
        assert_eq!(second[0], "pgwarm-tls", "round 2 starts with pgwarm");
        assert_eq!(Case::named("pgbouncer-plain").sslmode, SslMode::Disable);
    }
}
