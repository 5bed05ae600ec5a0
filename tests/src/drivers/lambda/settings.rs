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
    /// To pgwarm on loopback with TLS: psycopg's default (`sslmode=prefer`), node-postgres
    /// only when asked (`ssl: {rejectUnauthorized: false}`).
    PgwarmTls,
    /// To pgwarm on loopback, plain: node-postgres's default, psycopg with `sslmode=disable`.
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

    /// What the handler of `driver` sets: the driver's default where it gives this way.
    pub fn ssl(self, driver: Driver) -> Ssl {
        match (self, driver.default_is_tls()) {
            (Way::DirectTls, _) => Ssl::Require,
            (Way::DirectPlain, _) => Ssl::Disable,
            (Way::PgwarmTls, true) | (Way::PgwarmPlain, false) => Ssl::Default,
            (Way::PgwarmTls, false) => Ssl::Require,
            (Way::PgwarmPlain, true) => Ssl::Disable,
        }
    }

    /// The handler's TLS setting as the report shows it.
    pub fn setting(self, driver: Driver) -> &'static str {
        match (self.ssl(driver), driver) {
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
    fn each_drivers_default_is_one_of_the_pgwarm_ways() {
        assert_eq!(Way::PgwarmTls.ssl(Driver::Psycopg), Ssl::Default);
        assert_eq!(Way::PgwarmPlain.ssl(Driver::Psycopg), Ssl::Disable);
        assert_eq!(Way::PgwarmTls.ssl(Driver::NodePostgres), Ssl::Require);
        assert_eq!(Way::PgwarmPlain.ssl(Driver::NodePostgres), Ssl::Default);
        for driver in Driver::ALL {
            assert_eq!(Way::DirectTls.ssl(driver), Ssl::Require);
        }
    }
}
