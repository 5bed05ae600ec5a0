//! The servers a benchmark puts between pgbench and PostgreSQL, once started: pgwarm and
//! PgBouncer in both benchmarks, HAProxy in the throughput one. Each benchmark starts them with
//! its own settings; from then on the targets pgbench connects to, the processes whose CPU is
//! measured and the logs saved at the end come from here, the same for both.

use std::path::PathBuf;

use super::out_dirs::OutDirs;
use super::stop::{self, Halt};
use super::way::Way;
use crate::harness::{tool, Haproxy, Pgbouncer, Pgwarm, Target, TestCerts};

/// The relays of a benchmark, running against its database; killed as they drop.
pub(crate) struct Relays {
    pub(crate) pgwarm: Pgwarm,
    /// The executable, whose name the CPU clock checks the process by.
    pub(crate) pgwarm_bin: PathBuf,
    pub(crate) pgbouncer: Pgbouncer,
    pub(crate) pgbouncer_bin: PathBuf,
    /// The throughput benchmark's floor; the connect benchmark has none.
    pub(crate) haproxy: Option<Haproxy>,
    /// The certificate PgBouncer serves to TLS clients (the connect benchmark), whose files must
    /// last as long as PgBouncer.
    pub(crate) _pgbouncer_certs: Option<TestCerts>,
}

impl Relays {
    /// What pgbench connects to for `way`: `db`'s login on the relay's port, or `db` itself.
    pub(crate) fn target(&self, way: Way, db: &Target) -> Target {
        let port = match way {
            Way::Direct => db.port,
            Way::Pgwarm => self.pgwarm.port,
            Way::Pgbouncer => self.pgbouncer.port,
            Way::Haproxy => {
                let haproxy = self.haproxy.as_ref();
                haproxy
                    .expect("HAProxy runs in the throughput benchmark")
                    .port
            }
        };
        Target { port, ..db.clone() }
    }

    /// Each relay's name, executable and pid, for the CPU clocks.
    pub(crate) fn processes(&self) -> Vec<(&'static str, PathBuf, u32)> {
        let mut processes = vec![
            ("pgwarm", self.pgwarm_bin.clone(), self.pgwarm.pid()),
            (
                "pgbouncer",
                self.pgbouncer_bin.clone(),
                self.pgbouncer.pid(),
            ),
        ];
        if let Some(haproxy) = &self.haproxy {
            processes.push(("haproxy", tool("haproxy"), haproxy.pid()));
        }
        processes
    }

    /// `measure` with the relays running, unless a signal came while they started; then their
    /// logs saved into `out` as they are when the relays stop, which they do here.
    pub(crate) fn measure<T>(
        self,
        out: &OutDirs,
        measure: impl FnOnce(&Relays) -> Result<T, Halt>,
    ) -> Result<T, Halt> {
        let measured = stop::check()
            .map_err(Halt::from)
            .and_then(|()| measure(&self));
        out.save_log("pgwarm.log", &self.pgwarm.log());
        out.save_log("pgbouncer.log", &self.pgbouncer.log());
        if let Some(haproxy) = &self.haproxy {
            out.save_log("haproxy.log", &haproxy.log());
        }
        measured
    }
}
