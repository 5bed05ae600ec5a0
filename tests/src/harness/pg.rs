//! A throwaway PostgreSQL cluster per test binary, and connection targets (direct or via pgwarm).

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::harness::tools::{
    self, as_postgres, chown_postgres, free_port, is_root, poll_until, random_hex, run_ok, TempDir,
};

/// How long one psql invocation may take before it is killed.
const PSQL_TIMEOUT: Duration = Duration::from_secs(60);

/// One throwaway PostgreSQL cluster per test binary, started on first use (safe to call from many
/// tests at once). It is stopped and deleted by a small reaper process once the test process has
/// exited, whatever the way it exits.
pub fn cluster() -> &'static PgCluster {
    // A failed start is remembered: the other tests fail at once with the same message instead
    // of each retrying a slow initdb.
    static CLUSTER: OnceLock<Result<PgCluster, String>> = OnceLock::new();
    let started = CLUSTER.get_or_init(|| {
        std::panic::catch_unwind(PgCluster::start).map_err(|payload| {
            payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into())
        })
    });
    match started {
        Ok(cluster) => cluster,
        Err(msg) => panic!("the test PostgreSQL cluster could not be started: {msg}"),
    }
}

/// A running PostgreSQL cluster on 127.0.0.1 (SCRAM for everyone, no Unix socket).
#[derive(Debug)]
pub struct PgCluster {
    pub port: u16,
    /// Directory holding initdb, pg_ctl, postgres.
    pub bindir: PathBuf,
    pub datadir: PathBuf,
    /// The server's log file (stderr of postgres).
    pub logfile: PathBuf,
    /// Server version, e.g. "15.10 (Debian 15.10-0+deb12u1)".
    pub version: String,
    /// How long initdb + start took.
    pub startup_time: Duration,
    superuser_password: String,
    /// Passwords of the roles created by `fresh_target`, to re-store them as md5/SCRAM.
    passwords: Mutex<HashMap<String, String>>,
    /// Serialises pg_hba.conf edits + reloads.
    hba_lock: Mutex<()>,
}

/// Where to connect: the database itself or pgwarm in front of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub dbname: String,
}

/// The PostgreSQL server bindir, or `None` when no server is installed: `pg_config --bindir` if it
/// holds initdb, else the newest /usr/lib/postgresql/*/bin with initdb.
pub fn try_server_bindir() -> Option<PathBuf> {
    static BINDIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    BINDIR
        .get_or_init(|| {
            if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
                let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
                if out.status.success() && tools::is_executable(&dir.join("initdb")) {
                    return Some(dir);
                }
            }
            let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| {
                    let version: u32 = e.file_name().to_str()?.parse().ok()?;
                    let bin = e.path().join("bin");
                    tools::is_executable(&bin.join("initdb")).then_some((version, bin))
                })
                .collect();
            versions.sort();
            versions.pop().map(|(_, bin)| bin)
        })
        .clone()
}

/// The PostgreSQL server bindir; panics saying what to install when there is none.
pub fn server_bindir() -> PathBuf {
    try_server_bindir().unwrap_or_else(|| {
        panic!(
            "no PostgreSQL server binaries (initdb) found via `pg_config --bindir` nor in \
             /usr/lib/postgresql/*/bin: install the Debian package `postgresql` \
             (scripts/test.sh installs everything the tests need)"
        )
    })
}

impl PgCluster {
    /// A cluster of its own, stopped and deleted with the test process: for tests that stop,
    /// promote or rebuild it (most tests share [`cluster`]). It takes replication connections
    /// from 127.0.0.1, so [`PgCluster::standby`] can copy it.
    pub fn start() -> PgCluster {
        let started = Instant::now();
        let bindir = server_bindir();
        if is_root()
            && Command::new("id")
                .arg("postgres")
                .output()
                .map(|o| !o.status.success())
                .unwrap_or(true)
        {
            panic!("running as root but there is no `postgres` user: install the Debian package `postgresql`");
        }
        // The base dir (ours, 0755) is removed by the reaper; data lives in base/data (postgres', 0700).
        let base = TempDir::new("pgwarm-pg").into_path();
        let datadir = base.join("data");
        let logfile = datadir.join("postgres.log");
        let pwfile = base.join("pwfile");
        let password = random_hex(16);

        fs::create_dir(&datadir).unwrap_or_else(|e| panic!("create {}: {e}", datadir.display()));
        fs::set_permissions(&datadir, fs::Permissions::from_mode(0o700))
            .expect("chmod 700 data dir");
        fs::write(&pwfile, format!("{password}\n")).expect("write initdb pwfile");
        fs::set_permissions(&pwfile, fs::Permissions::from_mode(0o600)).expect("chmod 600 pwfile");
        chown_postgres(&datadir);
        chown_postgres(&pwfile);

        // Reaper first, so that whatever happens below the directory goes away with us.
        spawn_reaper(&bindir, &datadir, &base);

        let mut initdb = as_postgres(bindir.join("initdb"));
        initdb
            .arg("-D")
            .arg(&datadir)
            .args([
                "--no-sync",
                "--auth=scram-sha-256",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .current_dir(&base);
        run_ok(
            &mut initdb,
            &format!(
                "initdb (if `postgres` cannot reach {}, make TMPDIR traversable by it)",
                base.display()
            ),
        );
        let _ = fs::remove_file(&pwfile);

        let conf = "\n# pgwarm-tests\n\
            listen_addresses = '127.0.0.1'\n\
            unix_socket_directories = ''\n\
            max_connections = 300\n\
            fsync = off\n\
            synchronous_commit = off\n\
            full_page_writes = off\n\
            password_encryption = 'scram-sha-256'\n\
            shared_buffers = 128MB\n\
            logging_collector = off\n\
            log_min_messages = warning\n";
        append(&datadir.join("postgresql.conf"), conf);
        // Nothing allows trust; set_auth_method() inserts per-role lines before the generic rule.
        fs::write(
            datadir.join("pg_hba.conf"),
            "# pgwarm-tests: SCRAM for everyone on 127.0.0.1\nhost all all 127.0.0.1/32 scram-sha-256\n\
             host replication all 127.0.0.1/32 scram-sha-256\n",
        )
        .expect("write pg_hba.conf");

        let port = start_on_free_port(&bindir, &datadir, &logfile, &base);

        let mut cluster = PgCluster {
            port,
            bindir,
            datadir,
            logfile,
            version: String::new(),
            startup_time: Duration::ZERO,
            superuser_password: password,
            passwords: Mutex::new(HashMap::new()),
            hba_lock: Mutex::new(()),
        };
        cluster.version = cluster.psql_super("SHOW server_version");
        cluster.startup_time = started.elapsed();
        eprintln!(
            "pgwarm-tests: PostgreSQL {} on 127.0.0.1:{} ready in {} ms (data {})",
            cluster.version,
            cluster.port,
            cluster.startup_time.as_millis(),
            cluster.datadir.display()
        );
        cluster
    }

    /// `pg_ctl restart -m fast`: every backend is terminated (FATAL 57P01), logins are refused
    /// while the server stops and starts, and it returns once the server takes logins again.
    /// Every test of the binary sees the restart: keep such tests in a binary of their own.
    pub fn restart_fast(&self) {
        self.control(&["-w", "-t", "60", "-m", "fast", "restart"], "restart");
    }

    /// `pg_ctl ARGS` on this cluster; panics with its output and the server log on failure.
    fn control(&self, args: &[&str], what: &str) {
        let cwd = self.datadir.parent().unwrap_or(Path::new("/"));
        let out = pg_ctl(&self.bindir, &self.datadir, &self.logfile, args, cwd);
        assert!(
            out.status.success(),
            "pg_ctl {what} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    /// A streaming standby of this cluster (`pg_basebackup -R`), on its own port, started and
    /// taking read-only connections. Roles and databases created on the primary reach it by
    /// replication: [`PgCluster::wait_for_replay`].
    pub fn standby(&self) -> PgCluster {
        let started = Instant::now();
        let base = TempDir::new("pgwarm-pg-standby").into_path();
        let datadir = base.join("data");
        let logfile = base.join("postgres.log");
        fs::create_dir(&datadir).unwrap_or_else(|e| panic!("create {}: {e}", datadir.display()));
        fs::set_permissions(&datadir, fs::Permissions::from_mode(0o700))
            .expect("chmod 700 standby data dir");
        chown_postgres(&datadir);
        fs::write(&logfile, "").expect("create the standby's log file");
        chown_postgres(&logfile);
        spawn_reaper(&self.bindir, &datadir, &base);
        self.base_backup_into(&datadir, &base);
        let port = start_on_free_port(&self.bindir, &datadir, &logfile, &base);
        let standby = PgCluster {
            port,
            bindir: self.bindir.clone(),
            datadir,
            logfile,
            version: self.version.clone(),
            startup_time: started.elapsed(),
            superuser_password: self.superuser_password.clone(),
            passwords: Mutex::new(self.passwords.lock().unwrap().clone()),
            hba_lock: Mutex::new(()),
        };
        assert!(standby.in_recovery(), "the copy is not a standby");
        standby
    }

    /// `pg_basebackup -R` of this cluster into `datadir` (empty, the postgres user's).
    fn base_backup_into(&self, datadir: &Path, cwd: &Path) {
        let conninfo = format!(
            "host=127.0.0.1 port={} user=postgres password={}",
            self.port, self.superuser_password
        );
        let mut backup = as_postgres(self.bindir.join("pg_basebackup"));
        backup
            .arg("-D")
            .arg(datadir)
            .args([
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-sync",
                "-d",
                &conninfo,
            ])
            .current_dir(cwd);
        run_ok(&mut backup, "pg_basebackup of the primary");
    }

    /// Whether the server is a standby (`pg_is_in_recovery()`).
    pub fn in_recovery(&self) -> bool {
        self.psql_super("SELECT pg_is_in_recovery()") == "t"
    }

    /// Waits until this standby has replayed everything `primary` has written so far (a role
    /// or a row just created there), within 30 s.
    pub fn wait_for_replay(&self, primary: &PgCluster) {
        let lsn = primary.psql_super("SELECT pg_current_wal_lsn()");
        let caught_up = poll_until(Duration::from_secs(30), || {
            let replayed = self.psql_super(&format!(
                "SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn"
            ));
            (replayed == "t").then_some(())
        });
        assert!(
            caught_up.is_some(),
            "the standby did not replay {lsn} within 30 s\n{}",
            self.log()
        );
    }

    /// `pg_ctl stop -m fast`: every backend gets FATAL 57P01 and the server stops.
    pub fn stop_fast(&self) {
        self.control(&["-w", "-t", "60", "-m", "fast", "stop"], "stop");
    }

    /// Starts a stopped cluster again on its port.
    pub fn start_again(&self) {
        self.control(&["-w", "-t", "60", "start"], "start");
    }

    /// `pg_ctl promote`: the standby becomes a primary and takes writes; returns once it does.
    pub fn promote(&self) {
        self.control(&["-w", "-t", "60", "promote"], "promote");
    }

    /// Makes this stopped cluster a standby of `primary`, as Aurora brings an old writer back as
    /// a reader: its data is replaced by a copy of the primary's, on the same port.
    pub fn rebuild_as_standby_of(&self, primary: &PgCluster) {
        let cwd = self
            .datadir
            .parent()
            .unwrap_or(Path::new("/"))
            .to_path_buf();
        for entry in fs::read_dir(&self.datadir)
            .expect("read the old data dir")
            .flatten()
        {
            let path = entry.path();
            let removed = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            removed.unwrap_or_else(|e| panic!("remove {}: {e}", path.display()));
        }
        primary.base_backup_into(&self.datadir, &cwd);
        append(
            &self.datadir.join("postgresql.conf"),
            &format!("port = {}\n", self.port),
        );
        self.start_again();
        assert!(self.in_recovery(), "the rebuilt cluster is not a standby");
    }

    /// Superuser credentials (user "postgres", a random password, SCRAM), database "postgres".
    pub fn superuser(&self) -> Target {
        Target {
            host: "127.0.0.1".into(),
            port: self.port,
            user: "postgres".into(),
            password: self.superuser_password.clone(),
            dbname: "postgres".into(),
        }
    }

    /// A fresh role (LOGIN, SCRAM password, name `t_<n>_<pid>`) and a database of the same name
    /// owned by it. Each test takes its own so counts in pg_stat_activity are per test.
    pub fn fresh_target(&self) -> Target {
        static N: AtomicU64 = AtomicU64::new(1);
        self.create_target(&format!(
            "t_{}_{}",
            N.fetch_add(1, Ordering::Relaxed),
            std::process::id()
        ))
    }

    /// A role `name` (LOGIN, a random SCRAM password) and a database of the same name owned by
    /// it. `name` must be a plain lower-case identifier.
    pub fn create_target(&self, name: &str) -> Target {
        self.create_target_with(name, &random_hex(12))
    }

    /// [`PgCluster::create_target`] with the password given (plain letters and digits).
    pub fn create_target_with(&self, name: &str, password: &str) -> Target {
        let password = password.to_owned();
        self.psql_super(&format!(
            "CREATE ROLE {name} LOGIN PASSWORD '{password}';\nCREATE DATABASE {name} OWNER {name};"
        ));
        self.passwords
            .lock()
            .unwrap()
            .insert(name.to_owned(), password.clone());
        Target {
            host: "127.0.0.1".into(),
            port: self.port,
            user: name.to_owned(),
            password,
            dbname: name.to_owned(),
        }
    }

    /// Make `role` authenticate with `method` ("md5", "password", "trust", "scram-sha-256"):
    /// a `host all <role> 127.0.0.1/32 <method>` line goes before the generic rule (replacing an
    /// earlier one for that role) and the server reloads; returns once new connections see it.
    /// For md5 (and scram-sha-256) the role's password is re-stored in that format, so the server
    /// really sends that challenge. `role` must come from `fresh_target` (or be "postgres").
    pub fn set_auth_method(&self, role: &str, method: &str) {
        assert!(
            ["md5", "password", "trust", "scram-sha-256"].contains(&method),
            "set_auth_method: unsupported method {method:?}"
        );
        let _guard = self.hba_lock.lock().unwrap_or_else(|e| e.into_inner());
        if method == "md5" || method == "scram-sha-256" {
            let password = if role == "postgres" {
                self.superuser_password.clone()
            } else {
                self.passwords.lock().unwrap().get(role).cloned().unwrap_or_else(|| {
                    panic!("set_auth_method: role {role:?} was not created by fresh_target(), its password is unknown")
                })
            };
            self.psql_super(&format!(
                "SET password_encryption = '{method}';\nALTER ROLE {} PASSWORD '{password}';",
                quote_ident(role)
            ));
        }

        let hba_path = self.datadir.join("pg_hba.conf");
        let hba = fs::read_to_string(&hba_path).expect("read pg_hba.conf");
        let ours = format!("host all {} 127.0.0.1/32 ", quote_ident(role));
        let mut lines: Vec<String> = hba
            .lines()
            .filter(|l| !l.starts_with(&ours))
            .map(String::from)
            .collect();
        let generic = lines
            .iter()
            .position(|l| l.starts_with("host all all 127.0.0.1/32 "))
            .unwrap_or(lines.len());
        lines.insert(generic, format!("{ours}{method}"));
        // Rewrite in place: keeps the file's owner (postgres) when we are root.
        fs::write(&hba_path, lines.join("\n") + "\n").expect("write pg_hba.conf");

        let errors = self.psql_super("SELECT string_agg(line_number || ': ' || error, '; ') FROM pg_hba_file_rules WHERE error IS NOT NULL");
        assert!(
            errors.is_empty(),
            "pg_hba.conf has errors after set_auth_method({role}, {method}): {errors}"
        );
        self.reload();
    }

    /// Lets `role` in over TLS only (SCRAM) and rejects its plain-text connections, as a
    /// `hostssl`-only database does; the server reloads.
    pub fn require_ssl_for(&self, role: &str) {
        let _guard = self.hba_lock.lock().unwrap_or_else(|e| e.into_inner());
        let hba_path = self.datadir.join("pg_hba.conf");
        let hba = fs::read_to_string(&hba_path).expect("read pg_hba.conf");
        let role = quote_ident(role);
        let mut lines: Vec<String> = hba.lines().map(String::from).collect();
        let generic = lines
            .iter()
            .position(|l| l.starts_with("host all all 127.0.0.1/32 "))
            .unwrap_or(lines.len());
        lines.insert(generic, format!("hostnossl all {role} 127.0.0.1/32 reject"));
        lines.insert(
            generic,
            format!("hostssl all {role} 127.0.0.1/32 scram-sha-256"),
        );
        fs::write(&hba_path, lines.join("\n") + "\n").expect("write pg_hba.conf");
        self.reload();
    }

    /// `pg_reload_conf()` and wait until new backends run with the reloaded configuration
    /// (their `pg_conf_load_time()` changes once the postmaster has processed SIGHUP).
    pub fn reload(&self) {
        let before = self.psql_super("SELECT pg_conf_load_time()");
        self.psql_super("SELECT pg_reload_conf()");
        let reloaded = poll_until(Duration::from_secs(10), || {
            (self.psql_super("SELECT pg_conf_load_time()") != before).then_some(())
        });
        assert!(
            reloaded.is_some(),
            "PostgreSQL did not reload its configuration within 10 s\n{}",
            self.log()
        );
    }

    /// Run SQL as superuser through psql (`-X -A -t -q -v ON_ERROR_STOP=1`, script on stdin, so
    /// several statements run one by one in one session). Returns trimmed stdout; panics with
    /// stderr on failure.
    pub fn psql_super(&self, sql: &str) -> String {
        let out = self.superuser().psql_stdin(sql);
        if !out.status.success() {
            panic!(
                "psql as superuser failed ({}):\n--- sql ---\n{sql}\n--- stderr ---\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Number of client backends (pg_stat_activity, backend_type = 'client backend') of `role`.
    pub fn backends_for(&self, role: &str) -> i64 {
        let n = self.psql_super(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = {} AND backend_type = 'client backend'",
            quote_literal(role)
        ));
        n.parse()
            .unwrap_or_else(|e| panic!("backends_for({role}): cannot parse {n:?}: {e}"))
    }

    /// Poll `backends_for(role)` until it equals `expected` or `timeout` passes; returns the last
    /// count seen (so `assert_eq!(c.wait_for_backends(r, 0, secs(5)), 0)` reads well).
    pub fn wait_for_backends(&self, role: &str, expected: i64, timeout: Duration) -> i64 {
        let mut last = self.backends_for(role);
        let _ = poll_until(timeout, || {
            last = self.backends_for(role);
            (last == expected).then_some(())
        });
        last
    }

    /// `pg_terminate_backend` every client backend of `role`; returns how many were signalled.
    pub fn terminate_backends_for(&self, role: &str) -> i64 {
        let n = self.psql_super(&format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE usename = {} AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
            quote_literal(role)
        ));
        n.parse()
            .unwrap_or_else(|e| panic!("terminate_backends_for({role}): cannot parse {n:?}: {e}"))
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.logfile)
            .unwrap_or_else(|e| format!("<cannot read {}: {e}>", self.logfile.display()))
    }
}

impl Target {
    /// libpq-style connection string for tokio-postgres: "host=.. port=.. user=.. password=.. dbname=..".
    pub fn conn_string(&self) -> String {
        self.conn_string_listing(&[])
    }

    /// [`Target::conn_string`] with the hosts `more` after this one, in libpq's lists
    /// (`host=a,b port=1,2`), which libpq tries in order for a server its
    /// `target_session_attrs` accepts.
    pub fn conn_string_listing(&self, more: &[(&str, u16)]) -> String {
        // libpq-style values in single quotes, with \ and ' escaped, so any password works.
        let q = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
        let hosts: Vec<&str> = std::iter::once(self.host.as_str())
            .chain(more.iter().map(|(host, _)| *host))
            .collect();
        let ports: Vec<String> = std::iter::once(self.port)
            .chain(more.iter().map(|(_, port)| *port))
            .map(|port| port.to_string())
            .collect();
        format!(
            "host={} port={} user={} password={} dbname={}",
            q(&hosts.join(",")),
            ports.join(","),
            q(&self.user),
            q(&self.password),
            q(&self.dbname)
        )
    }

    /// Connect with tokio-postgres (no TLS) and spawn the connection task on the current runtime;
    /// panics with the target and the error on failure.
    pub async fn connect(&self) -> tokio_postgres::Client {
        match self.try_connect().await {
            Ok(client) => client,
            Err(e) => panic!(
                "connecting to {}@{}:{}/{} failed: {e} ({e:?})",
                self.user, self.host, self.port, self.dbname
            ),
        }
    }

    /// Connect with tokio-postgres (no TLS). The socket and the connection task live on the
    /// harness's own background runtime ([`io_runtime`]), so the client works from any runtime
    /// and keeps making progress (e.g. sends Terminate when dropped) even while the test's thread
    /// is blocked in a synchronous helper such as `backends_for`.
    pub async fn try_connect(&self) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        self.try_connect_with(self.conn_string()).await
    }

    /// [`Target::connect`] with `application_name` set, as a driver's option would.
    pub async fn connect_as(&self, application_name: &str) -> tokio_postgres::Client {
        let conn_string = format!(
            "{} application_name='{}'",
            self.conn_string(),
            application_name.replace('\\', "\\\\").replace('\'', "\\'")
        );
        self.try_connect_with(conn_string)
            .await
            .unwrap_or_else(|e| panic!("connecting as {application_name}: {e:?}"))
    }

    async fn try_connect_with(
        &self,
        conn_string: String,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        io_runtime()
            .spawn(async move {
                let (client, connection) =
                    tokio_postgres::connect(&conn_string, tokio_postgres::NoTls).await?;
                tokio::spawn(async move {
                    // Errors surface on the client's next call; nothing to do here.
                    let _ = connection.await;
                });
                Ok(client)
            })
            .await
            .expect("tokio-postgres connect task panicked")
    }

    /// Run `sql` with `psql -X -A -t -q -v ON_ERROR_STOP=1 -c <sql>` (one simple Query message)
    /// against this target, password through PGPASSWORD. Killed after 60 s.
    pub fn psql(&self, sql: &str) -> Output {
        let mut cmd = self.psql_command();
        cmd.arg("-c").arg(sql);
        tools::output_with_timeout(&mut cmd, None, PSQL_TIMEOUT)
    }

    /// psql -c that must succeed: returns trimmed stdout, panics with stderr otherwise.
    pub fn psql_ok(&self, sql: &str) -> String {
        let out = self.psql(sql);
        assert!(
            out.status.success(),
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Like [`Target::psql`] but the SQL is a script on stdin: psql sends each statement as its own
    /// Query (needed for CREATE DATABASE next to other statements, `\` commands, ...).
    pub fn psql_stdin(&self, sql: &str) -> Output {
        let mut cmd = self.psql_command();
        cmd.args(["-f", "-"]);
        tools::output_with_timeout(&mut cmd, Some(sql.as_bytes()), PSQL_TIMEOUT)
    }

    /// A `psql` command for this target (no SQL yet), with a clean PG* environment.
    pub fn psql_command(&self) -> Command {
        let mut cmd = Command::new(tools::tool("psql"));
        self.apply_libpq_env(&mut cmd);
        cmd.args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(format!(
                "host={} port={} user={} dbname={}",
                self.host, self.port, self.user, self.dbname
            ));
        cmd
    }

    /// Clear inherited PG* variables and set PGHOST/PGPORT/PGUSER/PGDATABASE/PGPASSWORD (and a
    /// 10 s PGCONNECT_TIMEOUT) for a libpq tool such as psql or pgbench.
    pub fn apply_libpq_env(&self, cmd: &mut Command) {
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PG") {
                cmd.env_remove(key);
            }
        }
        cmd.env("PGHOST", &self.host)
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", &self.user)
            .env("PGDATABASE", &self.dbname)
            .env("PGPASSWORD", &self.password)
            .env("PGCONNECT_TIMEOUT", "10");
    }
}

/// 8 MB to the server as a parameter and 8 MB back as a result, three times, checked: what a
/// TLS stream holds back when the socket is full must still go out, both ways.
pub async fn exchange_large_messages(client: &tokio_postgres::Client) {
    let big = "x".repeat(8 << 20);
    for _ in 0..3 {
        let row = client
            .query_one("select length($1::text), md5($1::text)", &[&big])
            .await
            .expect("8 MB parameter");
        assert_eq!(row.get::<_, i32>(0), 8 << 20);
        let back: String = client
            .query_one("select repeat('y', 8 << 20)", &[])
            .await
            .expect("8 MB result")
            .get(0);
        assert_eq!(back.len(), 8 << 20);
        assert!(back.bytes().all(|b| b == b'y'));
    }
}

/// Rows of `sql` sent as a simple query (so no prepared statement of its own), every column as
/// text (NULL as ""); panics with the SQL on error.
pub async fn simple_rows(client: &tokio_postgres::Client, sql: &str) -> Vec<Vec<String>> {
    simple_query_rows(client, sql)
        .await
        .iter()
        .map(|r| {
            (0..r.len())
                .map(|i| r.get(i).unwrap_or_default().to_owned())
                .collect()
        })
        .collect()
}

/// The rows of `sql` sent as a simple query; panics with the SQL on error.
pub(crate) async fn simple_query_rows(
    client: &tokio_postgres::Client,
    sql: &str,
) -> Vec<tokio_postgres::SimpleQueryRow> {
    let messages = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    messages
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .collect()
}

/// The harness's background tokio runtime (2 worker threads) that drives the connections made by
/// [`Target::connect`]. Tests may spawn their own background I/O on it too.
pub fn io_runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("pgwarm-tests-io")
            .enable_all()
            .build()
            .expect("build the harness's background tokio runtime")
    })
}

/// Double-quote an SQL identifier when it is not a plain lower-case name.
pub fn quote_ident(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// An SQL string literal.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Starts the server of `datadir` on a free port (written to its postgresql.conf) and returns the
/// port; retries if another process grabbed the port between the probe and the bind.
fn start_on_free_port(bindir: &Path, datadir: &Path, logfile: &Path, base: &Path) -> u16 {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let port = free_port();
        append(
            &datadir.join("postgresql.conf"),
            &format!("port = {port}\n"),
        );
        let out = pg_ctl(bindir, datadir, logfile, &["-w", "-t", "60", "start"], base);
        if out.status.success() {
            return port;
        }
        let log = fs::read_to_string(logfile).unwrap_or_default();
        if attempt < 5 && log.contains("could not bind") {
            continue;
        }
        panic!(
            "pg_ctl start failed ({}) for {}:\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- server log ---\n{log}",
            out.status,
            datadir.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `pg_ctl -D datadir -l logfile ARGS`, as the postgres user, within 90 s.
fn pg_ctl(bindir: &Path, datadir: &Path, logfile: &Path, args: &[&str], cwd: &Path) -> Output {
    let mut pg_ctl = as_postgres(bindir.join("pg_ctl"));
    pg_ctl
        .arg("-D")
        .arg(datadir)
        .arg("-l")
        .arg(logfile)
        .args(args)
        .current_dir(cwd);
    tools::output_with_timeout(&mut pg_ctl, None, Duration::from_secs(90))
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {} for append: {e}", path.display()));
    f.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("append to {}: {e}", path.display()));
}

/// A detached `sh` loop that waits for this test process to exit, then stops the cluster
/// (`pg_ctl -m immediate stop`, as postgres when root) and removes `base`. Statics are never
/// dropped, so this is the only cleanup that also covers panics, aborts and Ctrl-C.
fn spawn_reaper(bindir: &Path, datadir: &Path, base: &Path) {
    // The outer sh backgrounds the loop and exits at once (we wait for it), so the loop is
    // adopted by init right away: no zombie, no child of ours left running.
    let script = r#"
        (
            while kill -0 "$1" 2>/dev/null; do sleep 0.5; done
            if [ "$5" = root ]; then
                runuser -u postgres -- "$2" -D "$3" -m immediate -w stop >/dev/null 2>&1
            else
                "$2" -D "$3" -m immediate -w stop >/dev/null 2>&1
            fi
            rm -rf "$4"
        ) &
    "#;
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .arg("pgwarm-tests-reaper")
        .arg(std::process::id().to_string())
        .arg(bindir.join("pg_ctl"))
        .arg(datadir)
        .arg(base)
        .arg(if is_root() { "root" } else { "user" })
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Own process group: a Ctrl-C to the test run does not kill the reaper.
        .process_group(0);
    let status = cmd.status().expect("spawn the cluster reaper (sh)");
    assert!(
        status.success(),
        "starting the cluster reaper failed: {status}"
    );
}
