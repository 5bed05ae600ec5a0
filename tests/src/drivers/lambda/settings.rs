//! What `bench-lambda` runs, from `BENCH_LAMBDA_*` variables (see the binary's doc), and the
//! four ways a handler reaches the database, with the TLS setting each way gives each driver.

use std::time::Duration;

use super::handler::{Driver, Ssl};
use crate::drivers::vars;

/// How a handler reaches the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    /// Straight to PostgreSQL, TLS (`require`) and SCRAM: a login per invocation.
    DirectTls,
    /// Straight to PostgreSQL without TLS: SCRAM alone.
    DirectPlain,
    /// To a pgwarm with `PGWARM_CLIENT_TLS=on` on loopback, the handler asking for TLS: a
    /// `sslmode=require` URL kept unchanged.
    PgwarmTls,
    /// To a pgwarm with its defaults on loopback, the handler with its driver's: plain, since
    /// pgwarm answers psycopg's `sslmode=prefer` with 'N' and node-postgres does not ask.
    PgwarmPlain,
}

impl Way {
    pub const ALL: [Way; 4] = [
        Way::DirectTls,
        Way::DirectPlain,
        Way::PgwarmTls,
        Way::PgwarmPlain,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Way::DirectTls => "direct-tls",
            Way::DirectPlain => "direct-plain",
            Way::PgwarmTls => "pgwarm-tls",
            Way::PgwarmPlain => "pgwarm-plain",
        }
    }

    pub fn through_pgwarm(self) -> bool {
        matches!(self, Way::PgwarmTls | Way::PgwarmPlain)
    }

    /// What the handler sets: TLS required where the way is TLS, else the driver's default.
    pub fn ssl(self) -> Ssl {
        match self {
            Way::DirectTls | Way::PgwarmTls => Ssl::Require,
            Way::DirectPlain => Ssl::Disable,
            Way::PgwarmPlain => Ssl::Default,
        }
    }

    /// The pgwarm settings the way needs beyond the benchmark's fixed ones.
    pub fn pgwarm_env(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Way::PgwarmTls => &[("PGWARM_CLIENT_TLS", "on")],
            _ => &[],
        }
    }

    /// The handler's TLS setting as the report shows it.
    pub fn setting(self, driver: Driver) -> &'static str {
        match (self.ssl(), driver) {
            (Ssl::Default, Driver::Psycopg) => "default (sslmode=prefer)",
            (Ssl::Default, Driver::NodePostgres) => "default (ssl: false)",
            (Ssl::Require, Driver::Psycopg) => "sslmode=require",
            (Ssl::Require, Driver::NodePostgres) => "ssl: {rejectUnauthorized: false}",
            (Ssl::Disable, Driver::Psycopg) => "sslmode=disable",
            (Ssl::Disable, Driver::NodePostgres) => "ssl: false",
        }
    }
}

/// The benchmark's settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Measured invocations per cell, after `warmup` unmeasured ones.
    pub invocations: u32,
    pub warmup: u32,
    /// The pause between an invocation's end and the next one's start.
    pub gap: Duration,
    /// Function memory sizes, in MB: the CPU share of each.
    pub memories: Vec<u32>,
    /// Round trips to the database, in ms (0: none added).
    pub rtts: Vec<f64>,
    pub drivers: Vec<Driver>,
    pub ways: Vec<Way>,
    /// Cold starts per driver, memory and round trip (0: none), and their memory sizes.
    pub cold_starts: u32,
    pub cold_memories: Vec<u32>,
}

impl Settings {
    pub fn from_env() -> Result<Settings, String> {
        let rtts = vars::words("BENCH_LAMBDA_RTT_MS", "0 0.5")?
            .iter()
            .map(|w| {
                w.parse::<f64>()
                    .ok()
                    .filter(|r| (0.0..=100.0).contains(r))
                    .ok_or(format!("BENCH_LAMBDA_RTT_MS: '{w}' is not 0 to 100 ms"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let drivers = vars::words("BENCH_LAMBDA_DRIVERS", "python node")?
            .iter()
            .map(|w| {
                Driver::from_name(w).ok_or(format!(
                    "BENCH_LAMBDA_DRIVERS: '{w}' is neither python nor node"
                ))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let all_ways = Way::ALL.map(Way::name).join(" ");
        let ways = vars::words("BENCH_LAMBDA_WAYS", &all_ways)?
            .iter()
            .map(|w| {
                Way::ALL
                    .into_iter()
                    .find(|way| way.name() == w)
                    .ok_or(format!("BENCH_LAMBDA_WAYS: '{w}' is not one of {all_ways}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Settings {
            invocations: vars::number("BENCH_LAMBDA_INVOCATIONS", 150, 1)?,
            warmup: vars::number("BENCH_LAMBDA_WARMUP", 5, 0)?,
            gap: Duration::from_millis(vars::number("BENCH_LAMBDA_GAP_MS", 100, 0)?.into()),
            memories: vars::numbers("BENCH_LAMBDA_MEMORY", "128 512 1769", 128, 10_240)?,
            rtts,
            drivers,
            ways,
            cold_starts: vars::number("BENCH_LAMBDA_COLD_STARTS", 5, 0)?,
            cold_memories: vars::numbers("BENCH_LAMBDA_COLD_MEMORY", "128 1769", 128, 10_240)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_way_is_every_drivers_default_against_pgwarms_default() {
        assert_eq!(Way::PgwarmPlain.ssl(), Ssl::Default);
        assert!(Way::PgwarmPlain.pgwarm_env().is_empty());
        assert_eq!(Way::PgwarmTls.ssl(), Ssl::Require);
        assert_eq!(Way::PgwarmTls.pgwarm_env(), [("PGWARM_CLIENT_TLS", "on")]);
        assert_eq!(Way::DirectTls.ssl(), Ssl::Require);
    }
}
