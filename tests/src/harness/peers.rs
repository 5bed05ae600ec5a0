//! Real peers the end-to-end tests and the benchmarks talk to: PgBouncer (chaining, comparison),
//! HAProxy (a plain TCP relay, the benchmarks' floor) and moto_server (the Secrets Manager
//! emulator). Each runs as a child process, killed on drop.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use crate::harness::pg::Target;
use crate::harness::tools::{self, chown_postgres, free_port, is_root, poll_until, TempDir};

const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// A child process writing stdout+stderr to `<dir>/<name>.log`, killed on drop (and its log
/// printed to stderr when the owning test panics).
#[derive(Debug)]
struct LoggedChild {
    name: &'static str,
    child: Child,
    log_path: PathBuf,
    dir: TempDir,
}

impl LoggedChild {
    fn spawn(name: &'static str, mut cmd: Command, dir: TempDir) -> LoggedChild {
        let (child, log_path) = crate::harness::tools::spawn_logged(&mut cmd, dir.path(), name);
        LoggedChild {
            name,
            child,
            log_path,
            dir,
        }
    }

    fn log(&self) -> String {
        fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_else(|e| format!("<cannot read {}: {e}>", self.log_path.display()))
    }

    /// Wait until `port` listens; panic with the log if the process exits first or on timeout.
    fn wait_listening(&mut self, port: u16) {
        let ready = poll_until(STARTUP_TIMEOUT, || {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(Err(status));
            }
            tools::port_is_listening(port).then_some(Ok(()))
        });
        match ready {
            Some(Ok(())) => {}
            Some(Err(status)) => panic!(
                "{} exited ({status}) before listening on port {port}\n--- {} log ---\n{}",
                self.name,
                self.name,
                self.log()
            ),
            None => panic!(
                "{} did not listen on port {port} within {STARTUP_TIMEOUT:?}\n--- {} log ---\n{}",
                self.name,
                self.name,
                self.log()
            ),
        }
    }
}

impl Drop for LoggedChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- {} log ({}) ---\n{}--- end of {} log ---",
                self.name,
                self.log_path.display(),
                self.log(),
                self.name
            );
        }
    }
}

/// PgBouncer (Debian's package `pgbouncer`, or a binary the caller names) in the foreground on
/// 127.0.0.1:<free port>, serving one database that forwards to `upstream` (PostgreSQL, or
/// pgwarm). Runs as `postgres` when we
/// are root (PgBouncer refuses root).
#[derive(Debug)]
pub struct Pgbouncer {
    pub port: u16,
    upstream: Target,
    child: LoggedChild,
}

impl Pgbouncer {
    /// Start with `auth_type = scram-sha-256` (the upstream's user and password in a plain-text
    /// auth_file, so it does SCRAM to clients and to the upstream), `pool_mode = transaction`,
    /// `default_pool_size = 4`. `settings` are extra `[pgbouncer]` lines as (key, value) and
    /// override the defaults, e.g. `&[("pool_mode", "session")]`.
    pub fn start(upstream: &Target, settings: &[(&str, &str)]) -> Pgbouncer {
        Pgbouncer::start_with_auth(upstream, &upstream.password, settings)
    }

    /// [`Pgbouncer::start`] with `auth_secret` in the auth_file instead of the upstream's
    /// password: e.g. the role's SCRAM secret from pg_authid, with which PgBouncer checks a
    /// client's login without PBKDF2 and logs in to the upstream with the client's proof.
    pub fn start_with_auth(
        upstream: &Target,
        auth_secret: &str,
        settings: &[(&str, &str)],
    ) -> Pgbouncer {
        Pgbouncer::start_bin(&tools::tool("pgbouncer"), upstream, auth_secret, settings)
    }

    /// [`Pgbouncer::start_with_auth`] with the PgBouncer binary `bin` instead of Debian's (the
    /// benchmarks compare with the current release, built from source).
    pub fn start_bin(
        bin: &Path,
        upstream: &Target,
        auth_secret: &str,
        settings: &[(&str, &str)],
    ) -> Pgbouncer {
        let dir = TempDir::new("pgwarm-pgbouncer");
        let port = free_port();
        let mut main: Vec<(String, String)> = [
            ("listen_addr", "127.0.0.1".to_string()),
            ("listen_port", port.to_string()),
            ("unix_socket_dir", String::new()),
            ("auth_type", "scram-sha-256".into()),
            (
                "auth_file",
                dir.path().join("userlist.txt").display().to_string(),
            ),
            ("pool_mode", "transaction".into()),
            ("default_pool_size", "4".into()),
            ("max_client_conn", "500".into()),
            (
                "ignore_startup_parameters",
                "extra_float_digits,options".into(),
            ),
            ("admin_users", upstream.user.clone()),
            ("stats_users", upstream.user.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (k, v) in settings {
            main.retain(|(key, _)| key != k);
            main.push((k.to_string(), v.to_string()));
        }
        let mut ini = format!(
            "[databases]\n{} = host={} port={} dbname={}\n\n[pgbouncer]\n",
            upstream.dbname, upstream.host, upstream.port, upstream.dbname
        );
        for (k, v) in &main {
            ini.push_str(&format!("{k} = {v}\n"));
        }
        let ini_path = dir.path().join("pgbouncer.ini");
        fs::write(&ini_path, ini).expect("write pgbouncer.ini");
        fs::write(
            dir.path().join("userlist.txt"),
            format!("\"{}\" \"{}\"\n", upstream.user, auth_secret),
        )
        .expect("write pgbouncer userlist.txt");
        chown_postgres(dir.path());

        // setpriv execs (no intermediate process), so killing the child kills PgBouncer itself.
        let mut cmd = if is_root() {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--",
            ])
            .arg(bin);
            c
        } else {
            Command::new(bin)
        };
        cmd.arg(&ini_path);
        let mut child = LoggedChild::spawn("pgbouncer", cmd, dir);
        child.wait_listening(port);
        Pgbouncer {
            port,
            upstream: upstream.clone(),
            child,
        }
    }

    /// A target pointing at PgBouncer, same user, password and dbname as the upstream.
    pub fn target(&self) -> Target {
        Target {
            host: "127.0.0.1".into(),
            port: self.port,
            ..self.upstream.clone()
        }
    }

    /// PgBouncer's admin console (`SHOW POOLS`, ...), as the upstream user.
    pub fn admin_target(&self) -> Target {
        Target {
            dbname: "pgbouncer".into(),
            ..self.target()
        }
    }

    pub fn log(&self) -> String {
        self.child.log()
    }

    pub fn pid(&self) -> u32 {
        self.child.child.id()
    }

    pub fn dir(&self) -> &Path {
        self.child.dir.path()
    }

    /// The first line of `pgbouncer --version`, e.g. "PgBouncer 1.18.0".
    pub fn version() -> String {
        Pgbouncer::version_of(&tools::tool("pgbouncer"))
    }

    /// The first line of `bin --version`.
    pub fn version_of(bin: &Path) -> String {
        tools::first_line_of(bin, "--version")
    }

    /// Whether a PgBouncer of `version` (a `--version` line) keeps protocol-level prepared
    /// statements in transaction mode: `max_prepared_statements`, since 1.21.
    pub fn keeps_prepared_statements(version: &str) -> bool {
        let number = version.split_whitespace().nth(1).unwrap_or_default();
        let mut parts = number.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        (major, minor) >= (1, 21)
    }
}

/// HAProxy (Debian package `haproxy`) on a free port of 127.0.0.1 as a plain TCP relay to one
/// server: `mode tcp`, one thread (`nbthread 1`, as pgwarm and PgBouncer run), no health check.
/// It only copies bytes, with a server connection per client: no pooling, so no relay does less
/// per transaction, which makes it the benchmarks' floor for a relay's CPU.
#[derive(Debug)]
pub struct Haproxy {
    pub port: u16,
    upstream: Target,
    child: LoggedChild,
}

impl Haproxy {
    pub fn start(upstream: &Target) -> Haproxy {
        let bin = tools::tool("haproxy");
        let dir = TempDir::new("pgwarm-haproxy");
        let port = free_port();
        let config = format!(
            "global\n    maxconn 1000\n    nbthread 1\n\
             defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 1h\n    timeout server 1h\n\
             listen postgres\n    bind 127.0.0.1:{port}\n    server db {}:{}\n",
            upstream.host, upstream.port
        );
        let config_path = dir.path().join("haproxy.cfg");
        fs::write(&config_path, config).expect("write haproxy.cfg");
        // -db: in the foreground, not a daemon, so the child is HAProxy itself.
        let mut cmd = Command::new(bin);
        cmd.arg("-f").arg(&config_path).arg("-db");
        let mut child = LoggedChild::spawn("haproxy", cmd, dir);
        child.wait_listening(port);
        Haproxy {
            port,
            upstream: upstream.clone(),
            child,
        }
    }

    /// A target pointing at HAProxy: the upstream's user, password and dbname.
    pub fn target(&self) -> Target {
        Target {
            host: "127.0.0.1".into(),
            port: self.port,
            ..self.upstream.clone()
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.child.id()
    }

    pub fn log(&self) -> String {
        self.child.log()
    }

    /// `haproxy -v`'s first three words, e.g. "HAProxy version 2.6.12-1+deb12u4".
    pub fn version() -> String {
        let line = tools::first_line_of(&tools::tool("haproxy"), "-v");
        line.split(' ').take(3).collect::<Vec<_>>().join(" ")
    }
}

/// `moto_server` (PyPI `moto[server]`) on 127.0.0.1:<free port>: a real Secrets Manager API for
/// the AWS SDK inside pgwarm, reached through `AWS_ENDPOINT_URL` (see [`Moto::aws_env`]).
#[derive(Debug)]
pub struct Moto {
    pub port: u16,
    child: LoggedChild,
}

impl Moto {
    pub fn start() -> Moto {
        let bin = tools::tool("moto_server");
        let port = free_port();
        let mut cmd = Command::new(bin);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        let mut child = LoggedChild::spawn("moto_server", cmd, TempDir::new("pgwarm-moto"));
        child.wait_listening(port);
        Moto { port, child }
    }

    /// "http://127.0.0.1:<port>".
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Environment for an AWS SDK client (e.g. pgwarm) to use this emulator: AWS_ENDPOINT_URL,
    /// dummy AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_REGION=us-east-1.
    pub fn aws_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    /// The JSON an RDS-managed secret holds for `db`: username, password, engine, host, port, dbname.
    pub fn rds_secret_json(db: &Target) -> String {
        format!(
            r#"{{"username":{},"password":{},"engine":"postgres","host":{},"port":{},"dbname":{}}}"#,
            json_string(&db.user),
            json_string(&db.password),
            json_string(&db.host),
            db.port,
            json_string(&db.dbname)
        )
    }

    /// CreateSecret with a SecretString; returns the response body (JSON with ARN, Name, VersionId).
    pub fn create_secret(&self, name: &str, secret_string: &str) -> String {
        self.call(
            "CreateSecret",
            &format!(
                r#"{{"Name":{},"SecretString":{}}}"#,
                json_string(name),
                json_string(secret_string)
            ),
        )
    }

    /// PutSecretValue (a new current version, as a rotation does); returns the response body.
    pub fn put_secret_value(&self, secret_id: &str, secret_string: &str) -> String {
        self.call(
            "PutSecretValue",
            &format!(
                r#"{{"SecretId":{},"SecretString":{}}}"#,
                json_string(secret_id),
                json_string(secret_string)
            ),
        )
    }

    /// Any Secrets Manager action (AWS JSON 1.1) with a JSON body; panics unless HTTP 200.
    pub fn call(&self, action: &str, body: &str) -> String {
        let request = format!(
            "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-amz-json-1.1\r\n\
             X-Amz-Target: secretsmanager.{action}\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/secretsmanager/aws4_request, \
             SignedHeaders=host, Signature=0\r\n\
             Content-Length: {len}\r\nConnection: close\r\n\r\n{body}",
            port = self.port,
            len = body.len()
        );
        let mut stream =
            TcpStream::connect(("127.0.0.1", self.port)).expect("connect to moto_server");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("set_read_timeout");
        stream
            .write_all(request.as_bytes())
            .expect("send request to moto_server");
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .expect("read moto_server response");
        let response = String::from_utf8_lossy(&response).into_owned();
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        if !head
            .lines()
            .next()
            .is_some_and(|status| status.contains(" 200"))
        {
            panic!(
                "moto_server {action} failed:\n{response}\n--- moto_server log ---\n{}",
                self.child.log()
            );
        }
        body.to_string()
    }

    pub fn log(&self) -> String {
        self.child.log()
    }
}

/// A JSON string literal.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::Pgbouncer;

    #[test]
    fn prepared_statements_are_kept_since_1_21() {
        assert!(!Pgbouncer::keeps_prepared_statements("PgBouncer 1.18.0"));
        assert!(Pgbouncer::keeps_prepared_statements("PgBouncer 1.21.0"));
        assert!(Pgbouncer::keeps_prepared_statements("PgBouncer 1.25.2"));
        assert!(Pgbouncer::keeps_prepared_statements("PgBouncer 2.0.0"));
        assert!(!Pgbouncer::keeps_prepared_statements("something else"));
    }
}
