//! The three ways the same psycopg clients reach a primary that fails over, and what each run
//! starts for its way: a fresh primary with a streaming standby of it, a fresh login and table
//! on them, and the way's relay (pgwarm, PgBouncer) or none (libpq's own host list).

use super::settings::FailoverSettings;
use super::PGWARM_SETTINGS;
use crate::harness::{PgCluster, Pgbouncer, Pgwarm, Target};

/// The table the transactions insert into; no unique key, so a row committed twice shows.
pub(super) const TABLE: &str = "failover_rows";

/// How the clients connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Way {
    /// pgwarm with `PGWARM_DB_HOST` listing the primary then the standby.
    Pgwarm,
    /// libpq itself: `host=` and `port=` listing both, `target_session_attrs=read-write`.
    Direct,
    /// Debian's PgBouncer in transaction mode, its database pointed at the primary's address.
    Pgbouncer,
}

impl Way {
    pub(super) const ALL: [Way; 3] = [Way::Pgwarm, Way::Direct, Way::Pgbouncer];

    pub(super) fn name(self) -> &'static str {
        match self {
            Way::Pgwarm => "pgwarm",
            Way::Direct => "direct",
            Way::Pgbouncer => "pgbouncer",
        }
    }

    pub(super) fn parse(name: &str) -> Option<Way> {
        Way::ALL.into_iter().find(|w| w.name() == name)
    }
}

/// What runs for one way in one round. Dropping it kills the relay; the clusters' reapers
/// remove them when the driver exits, and [`Servers::stop`] stops the new primary before.
pub(super) struct Servers {
    pub(super) primary: PgCluster,
    pub(super) standby: PgCluster,
    /// The clients' libpq connection string.
    pub(super) dsn: String,
    /// The new primary once the standby is promoted, directly: where the rows are counted.
    pub(super) check: Target,
    relay: Relay,
}

enum Relay {
    Pgwarm(Pgwarm),
    Pgbouncer(Pgbouncer),
    None,
}

impl Servers {
    /// A primary, a login and the table on it, a standby that has replayed them, and `way`'s
    /// relay.
    pub(super) fn start(way: Way, s: &FailoverSettings) -> Servers {
        let primary = PgCluster::start();
        let login = primary.fresh_target();
        login.psql_ok(&format!("create table {TABLE}(id bigint, client int)"));
        let standby = primary.standby();
        standby.wait_for_replay(&primary);
        let both = ("127.0.0.1", standby.port);
        // The same client settings whatever the way: no TLS (the database has none), libpq's
        // bound on a connect.
        let client = "sslmode=disable connect_timeout=10";
        let (dsn, relay) = match way {
            Way::Pgwarm => {
                let ports = format!("{},{}", primary.port, standby.port);
                let pgwarm = Pgwarm::builder(&login)
                    .bin(&s.pgwarm_bin)
                    .envs(s.passthrough.iter().cloned())
                    .envs(PGWARM_SETTINGS)
                    .env("PGWARM_DB_HOST", "127.0.0.1,127.0.0.1")
                    .env("PGWARM_DB_PORT", &ports)
                    .spawn();
                let dsn = format!("{} {client}", pgwarm.target().conn_string());
                (dsn, Relay::Pgwarm(pgwarm))
            }
            Way::Direct => {
                let hosts = login.conn_string_listing(&[both]);
                let dsn = format!("{hosts} target_session_attrs=read-write {client}");
                (dsn, Relay::None)
            }
            Way::Pgbouncer => {
                let pgbouncer = Pgbouncer::start(&login, &[]);
                let dsn = format!("{} {client}", pgbouncer.target().conn_string());
                (dsn, Relay::Pgbouncer(pgbouncer))
            }
        };
        let check = Target {
            port: standby.port,
            ..login
        };
        Servers {
            primary,
            standby,
            dsn,
            check,
            relay,
        }
    }

    /// The relay's log: (file name, text); none for a direct connection.
    pub(super) fn relay_log(&self) -> Option<(&'static str, String)> {
        match &self.relay {
            Relay::Pgwarm(p) => Some(("pgwarm.log", p.log())),
            Relay::Pgbouncer(p) => Some(("pgbouncer.log", p.log())),
            Relay::None => None,
        }
    }

    /// Stops the servers still running (the primary only when the fault did not come), so
    /// that the next run has the machine to itself.
    pub(super) fn stop(&self, primary_stopped: bool) {
        if !primary_stopped {
            self.primary.stop_fast();
        }
        self.standby.stop_fast();
    }
}
