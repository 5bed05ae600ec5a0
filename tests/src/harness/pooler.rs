//! The real `pgwarm` binary as a child process: standalone (no `AWS_LAMBDA_RUNTIME_API`) against
//! a test's [`Target`], or, through [`Pgwarm::builder_for`], any pgwarm binary with exactly the
//! environment its caller gives (the driver binaries, which also add the Lambda environment).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::harness::pg::Target;
use crate::harness::tools::{self, free_port, poll_until, TempDir};
use crate::harness::wire::Wire;

/// How long `spawn` waits for the listener and `run_to_exit` waits for the exit.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Path of the pgwarm binary: `$PGWARM_BIN` if set, else `<workspace>/target/debug/pgwarm`
/// (honouring `CARGO_TARGET_DIR`). Panics with "build it with `cargo build --workspace`" if missing.
pub fn pgwarm_bin() -> PathBuf {
    let env = std::env::var_os("PGWARM_BIN");
    find_pgwarm_bin(env.as_deref().map(Path::new)).unwrap_or_else(|e| panic!("{e}"))
}

/// The logic behind [`pgwarm_bin`], with the `PGWARM_BIN` value passed in (testable without
/// touching the process environment). An explicit path must exist; otherwise as
/// [`workspace_bin`] finds it.
pub fn find_pgwarm_bin(pgwarm_bin_env: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = pgwarm_bin_env {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(format!(
                "PGWARM_BIN={} does not exist: {BUILD_HINT}",
                p.display()
            ))
        };
    }
    find_workspace_bin("pgwarm")
}

const BUILD_HINT: &str = "build it with `cargo build --workspace`";

/// Path of one of the workspace's binaries (`pgwarm`, `handler-example`); panics with how to
/// build it if it is missing.
pub fn workspace_bin(name: &str) -> PathBuf {
    find_workspace_bin(name).unwrap_or_else(|e| panic!("{e}"))
}

/// The workspace's target folder: `$CARGO_TARGET_DIR` (relative to the workspace when
/// relative), else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent (the workspace)")
        .to_path_buf();
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) if Path::new(&t).is_absolute() => PathBuf::from(t),
        Some(t) => workspace.join(t),
        None => workspace.join("target"),
    }
}

/// `<target>/debug/<name>` ([`target_dir`]), and as a last resort the one next to the running
/// binary's folder or its parent (covers `--target` and `--release` layouts, and a test
/// binary in `deps/`); what to build when there is none.
pub fn find_workspace_bin(name: &str) -> Result<PathBuf, String> {
    let primary = target_dir().join("debug").join(name);
    if primary.is_file() {
        return Ok(primary);
    }
    // <target>/<profile>/<driver> or <target>/<profile>/deps/<test binary> -> <target>/<profile>/<name>
    let exe = std::env::current_exe().ok();
    let folders = exe.iter().flat_map(|exe| exe.ancestors().skip(1).take(2));
    if let Some(p) = folders.map(|dir| dir.join(name)).find(|p| p.is_file()) {
        return Ok(p);
    }
    Err(format!(
        "the {name} binary {} does not exist: {BUILD_HINT}",
        primary.display()
    ))
}

/// A running pgwarm process (standalone mode), killed on drop. Its stdout and stderr go to a log
/// file in a temp dir; when the owning test panics, the log is printed to stderr on drop.
#[derive(Debug)]
pub struct Pgwarm {
    /// The port pgwarm listens on (from PGWARM_LISTEN).
    pub port: u16,
    addr: SocketAddr,
    child: Child,
    started: Instant,
    exit: Option<ExitStatus>,
    log_path: PathBuf,
    client: Target,
    _dir: TempDir,
}

/// Environment for a pgwarm process; see [`Pgwarm::builder`].
#[derive(Clone, Debug)]
pub struct PgwarmBuilder {
    /// The binary; `None` is [`pgwarm_bin`].
    bin: Option<PathBuf>,
    /// `None` removes the variable from the child's environment.
    env: BTreeMap<String, Option<String>>,
}

impl Pgwarm {
    /// One client runs one query and leaves: pgwarm then holds a server connection, as warm.
    pub async fn warm_up(&self) {
        let client = self.target().connect().await;
        crate::harness::simple_rows(&client, "select 1").await;
    }

    /// `n` clients logged in over the raw wire (cheap: no driver state) and left idle.
    pub async fn idle_clients(&self, n: usize) -> Vec<Wire> {
        let (addr, target) = (self.addr(), self.target());
        tokio::task::spawn_blocking(move || {
            (0..n)
                .map(|_| Wire::login(addr, &target.user, &target.dbname).0)
                .collect()
        })
        .await
        .expect("idle logins")
    }

    /// pgwarm's resident memory in KiB, read once it has settled (200 ms after the caller's
    /// last change).
    pub async fn settled_rss_kib(&self) -> u64 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        tools::rss_kib(self.pid())
    }

    /// Env preset for the database target: PGWARM_DB_HOST=127.0.0.1, PGWARM_DB_PORT,
    /// PGWARM_DB_NAME, PGWARM_DB_USER, PGWARM_DB_PASSWORD from `db`;
    /// PGWARM_LISTEN=127.0.0.1:<free port>; PGWARM_LOG_LEVEL=debug; PGWARM_LOG_FORMAT=text.
    /// The child does not inherit `AWS_LAMBDA_RUNTIME_API` nor any `PGWARM_*` variable of the
    /// test process.
    pub fn builder(db: &Target) -> PgwarmBuilder {
        let mut env = BTreeMap::new();
        let mut set = |k: &str, v: String| {
            env.insert(k.to_string(), Some(v));
        };
        set("PGWARM_DB_HOST", "127.0.0.1".into());
        set("PGWARM_DB_PORT", db.port.to_string());
        set("PGWARM_DB_NAME", db.dbname.clone());
        set("PGWARM_DB_USER", db.user.clone());
        set("PGWARM_DB_PASSWORD", db.password.clone());
        set("PGWARM_LISTEN", format!("127.0.0.1:{}", free_port()));
        set("PGWARM_LOG_LEVEL", "debug".into());
        set("PGWARM_LOG_FORMAT", "text".into());
        PgwarmBuilder { bin: None, env }
    }

    /// No presets: `bin` with only the variables set on the builder (like [`Pgwarm::builder`],
    /// the child inherits no `PGWARM_*` variable nor `AWS_LAMBDA_RUNTIME_API`).
    pub fn builder_for(bin: &Path) -> PgwarmBuilder {
        PgwarmBuilder {
            bin: Some(bin.to_path_buf()),
            env: BTreeMap::new(),
        }
    }

    /// `builder(db)` plus `extra` settings, spawned: the usual start in a test.
    pub fn start(db: &Target, extra: &[(&str, &str)]) -> Pgwarm {
        extra
            .iter()
            .fold(Pgwarm::builder(db), |b, (k, v)| b.env(k, v))
            .spawn()
    }

    /// A target pointing at pgwarm with the user, password and dbname of PGWARM_DB_USER,
    /// PGWARM_DB_PASSWORD and PGWARM_DB_NAME (the password is PGWARM_CLIENT_PASSWORD instead when
    /// the builder set it).
    pub fn target(&self) -> Target {
        self.client.clone()
    }

    /// pgwarm's admin console (`SHOW POOLS`, ...): [`Pgwarm::target`] with the database `pgwarm`.
    pub fn admin_target(&self) -> Target {
        Target {
            dbname: "pgwarm".into(),
            ..self.target()
        }
    }

    /// Everything the process printed so far (stdout and stderr interleaved).
    pub fn log(&self) -> String {
        read_log(&self.log_path)
    }

    /// The log file's path.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// When the process was spawned.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The address pgwarm listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Send a signal by name ("TERM", "INT", "STOP", "CONT", "KILL", ...) to the process.
    pub fn signal(&self, signal: &str) {
        tools::send_signal(self.pid(), signal);
    }

    /// The exit status if the process has exited (without blocking).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().expect("try_wait on pgwarm");
        }
        self.exit
    }

    /// Wait up to `timeout` for the process to exit by itself; `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        poll_until(timeout, || self.try_wait())
    }

    /// SIGTERM, then wait up to 10 s for the exit (SIGKILL after that, and panic with the log).
    /// Returns the exit status and the full log.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        if self.try_wait().is_none() {
            self.signal("TERM");
        }
        match self.wait_exit(STARTUP_TIMEOUT) {
            Some(status) => (status, self.log()),
            None => panic!(
                "pgwarm (pid {}) did not exit within {STARTUP_TIMEOUT:?} after SIGTERM\n--- pgwarm log ---\n{}",
                self.pid(),
                self.log()
            ),
        }
    }

    /// Poll the log until it contains `needle` (up to `timeout`); returns the log, or panics
    /// showing it.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        poll_until(timeout, || Some(self.log()).filter(|l| l.contains(needle))).unwrap_or_else(|| {
            panic!("pgwarm log did not contain {needle:?} within {timeout:?}\n--- pgwarm log ---\n{}", self.log())
        })
    }
}

impl Drop for Pgwarm {
    fn drop(&mut self) {
        if self.try_wait().is_none() {
            // A stopped (SIGSTOP) process still dies on SIGKILL.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- pgwarm log (pid {}, {}) ---\n{}--- end of pgwarm log ---",
                self.child.id(),
                self.log_path.display(),
                self.log()
            );
        }
    }
}

impl PgwarmBuilder {
    /// Run `bin` instead of [`pgwarm_bin`] (a layer's pgwarm, or a wrapper that runs it under an
    /// emulator).
    pub fn bin(mut self, bin: &Path) -> Self {
        self.bin = Some(bin.to_path_buf());
        self
    }

    /// Set (or override) a variable of the child's environment.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.insert(key.to_string(), Some(value.to_string()));
        self
    }

    /// [`PgwarmBuilder::env`] for each of `vars`, in order (a driver's pass-through variables,
    /// then its own settings).
    pub fn envs<K: AsRef<str>, V: AsRef<str>>(
        self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        vars.into_iter()
            .fold(self, |builder, (k, v)| builder.env(k.as_ref(), v.as_ref()))
    }

    /// Remove a variable from the child's environment (preset or inherited).
    pub fn env_remove(mut self, key: &str) -> Self {
        self.env.insert(key.to_string(), None);
        self
    }

    /// Set a variable unless the builder already sets or removes it.
    pub fn env_default(mut self, key: &str, value: &str) -> Self {
        self.env
            .entry(key.to_string())
            .or_insert_with(|| Some(value.to_string()));
        self
    }

    /// The value a variable will have in the child (`None` if unset/removed).
    pub fn get_env(&self, key: &str) -> Option<&str> {
        self.env.get(key).and_then(|v| v.as_deref())
    }

    /// Spawn and wait (up to 10 s) until the listen port accepts TCP; if the process exits first,
    /// panic with its log.
    pub fn spawn(self) -> Pgwarm {
        let addr = self.listen_addr();
        let mut pgwarm = self.start(addr);
        let ready = poll_until(STARTUP_TIMEOUT, || {
            if pgwarm.try_wait().is_some() {
                return Some(false);
            }
            tools::port_is_listening(addr.port()).then_some(true)
        });
        match ready {
            Some(true) => pgwarm,
            Some(false) => panic!(
                "pgwarm exited ({}) before listening on {addr}\n--- pgwarm log ---\n{}",
                pgwarm.exit.expect("exited"),
                pgwarm.log()
            ),
            None => {
                let log = pgwarm.log();
                drop(pgwarm);
                panic!("pgwarm did not listen on {addr} within {STARTUP_TIMEOUT:?}\n--- pgwarm log ---\n{log}")
            }
        }
    }

    /// Spawn without waiting for anything (for a caller that times the start-up itself).
    pub fn spawn_nowait(self) -> Pgwarm {
        let addr = self.listen_addr();
        self.start(addr)
    }

    /// Spawn, expect the process to exit by itself within 10 s; return (exit status, log text).
    /// Panics (with the log) if it is still running after 10 s.
    pub fn run_to_exit(self) -> (ExitStatus, String) {
        let addr = self.listen_addr();
        let mut pgwarm = self.start(addr);
        match pgwarm.wait_exit(STARTUP_TIMEOUT) {
            Some(status) => (status, pgwarm.log()),
            None => {
                let log = pgwarm.log();
                drop(pgwarm);
                panic!("pgwarm was expected to exit by itself but still ran after {STARTUP_TIMEOUT:?}\n--- pgwarm log ---\n{log}")
            }
        }
    }

    /// Where the child will listen, from PGWARM_LISTEN (pgwarm's default 127.0.0.1:5432 when
    /// removed); an unspecified IP (0.0.0.0, ::) is reached through 127.0.0.1.
    fn listen_addr(&self) -> SocketAddr {
        let default = "127.0.0.1:5432";
        let listen = self.get_env("PGWARM_LISTEN").unwrap_or(default);
        let mut addr: SocketAddr = listen
            .parse()
            .unwrap_or_else(|_| default.parse().expect("valid default"));
        if addr.ip().is_unspecified() {
            addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        addr
    }

    fn start(self, addr: SocketAddr) -> Pgwarm {
        let bin = self.bin.clone().unwrap_or_else(pgwarm_bin);
        let dir = TempDir::new("pgwarm-run");

        let mut cmd = Command::new(&bin);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PGWARM_") {
                cmd.env_remove(key);
            }
        }
        cmd.env_remove("AWS_LAMBDA_RUNTIME_API");
        for (key, value) in &self.env {
            match value {
                Some(v) => cmd.env(key, v),
                None => cmd.env_remove(OsString::from(key)),
            };
        }
        let started = Instant::now();
        let (child, log_path) = crate::harness::tools::spawn_logged(&mut cmd, dir.path(), "pgwarm");

        let user = self.get_env("PGWARM_DB_USER").unwrap_or_default();
        let client = Target {
            host: addr.ip().to_string(),
            port: addr.port(),
            user: user.to_string(),
            password: self
                .get_env("PGWARM_CLIENT_PASSWORD")
                .or(self.get_env("PGWARM_DB_PASSWORD"))
                .unwrap_or_default()
                .to_string(),
            // pgwarm's own default: the database named after the user.
            dbname: self.get_env("PGWARM_DB_NAME").unwrap_or(user).to_string(),
        };
        Pgwarm {
            port: addr.port(),
            addr,
            child,
            started,
            exit: None,
            log_path,
            client,
            _dir: dir,
        }
    }
}

fn read_log(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("<cannot read {}: {e}>", path.display()))
}
