//! A cold start at a CPU share: pgwarm exec'ed as an extension under lambda-simulator, inside
//! the CPU group from its first instruction, timed to its registration with the Extensions API
//! ([`lifecycle::startup_then`], as `footprint` times it); then the first invocation of a handler
//! already in the group, its driver imported (a runtime's init): connect through the new pgwarm,
//! `SELECT 1`, close. That first query carries pgwarm's own login to the database (TLS and SCRAM,
//! at the round trip), made at its first client.
//!
//! pgwarm enters the group through a `/bin/sh` wrapper that writes its pid to the group's
//! `cgroup.procs` and execs pgwarm: the clock starts at the wrapper's spawn, so it includes the
//! shell's start (outside the quota) and the exec (inside it).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::cgroup::CpuGroup;
use super::handler::{Driver, Handler, Ssl};
use crate::drivers::lifecycle;
use crate::harness::{PgwarmBuilder, Target, TempDir};

/// What the wrapper runs: into the group, then pgwarm, the same process.
const WRAPPER: &str = "#!/bin/sh\n\
echo $$ > \"$BENCH_LAMBDA_CGROUP_PROCS\" || exit 97\n\
exec \"$BENCH_LAMBDA_PGWARM\" \"$@\"\n";

/// The wrapper script, in a folder removed on drop.
pub struct Wrapper {
    _dir: TempDir,
    path: PathBuf,
}

impl Wrapper {
    pub fn new() -> Wrapper {
        let dir = TempDir::new("pgwarm-bench-lambda");
        let path = dir.path().join("into-cgroup");
        std::fs::write(&path, WRAPPER).expect("write the cgroup wrapper");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("chmod the cgroup wrapper");
        Wrapper { _dir: dir, path }
    }
}

impl Default for Wrapper {
    fn default() -> Self {
        Wrapper::new()
    }
}

/// One cold start's times, in ms.
#[derive(Clone, Copy, Debug)]
pub struct ColdStart {
    pub registered_ms: f64,
    pub first_query_ms: f64,
}

/// One cold start of `pgwarm` (a builder for the database at its round trip; `bin` the real
/// binary) in `group`, with `driver`'s handler making the first query with its default TLS.
pub async fn once(
    group: &CpuGroup,
    wrapper: &Wrapper,
    pgwarm: PgwarmBuilder,
    bin: &Path,
    db: &Target,
    driver: Driver,
) -> Result<ColdStart, String> {
    let listen = pgwarm
        .get_env("PGWARM_LISTEN")
        .and_then(|l| l.parse::<std::net::SocketAddr>().ok())
        .ok_or("the builder has no PGWARM_LISTEN address")?;
    let target = Target {
        host: listen.ip().to_string(),
        port: listen.port(),
        ..db.clone()
    };
    let mut handler = Handler::start(driver, &target, Ssl::Default)?;
    group.add(handler.pid())?;
    let pgwarm = pgwarm
        .bin(&wrapper.path)
        .env(
            "BENCH_LAMBDA_CGROUP_PROCS",
            &group.procs_file().to_string_lossy(),
        )
        .env("BENCH_LAMBDA_PGWARM", &bin.to_string_lossy());
    let first_query = move |_| async move {
        tokio::task::spawn_blocking(move || handler.invoke())
            .await
            .map_err(|e| format!("the first invocation: {e}"))?
            .map_err(|e| format!("the first invocation failed: {e}"))
    };
    let (startup, first) = lifecycle::startup_then(pgwarm, first_query).await?;
    Ok(ColdStart {
        registered_ms: startup.registered_ms,
        first_query_ms: first.wall_ms,
    })
}
