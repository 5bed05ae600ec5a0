//! Configuration: `PGWARM_*` environment variables turned into validated settings. Each one is
//! read through its row of `table.rs`, the one list of them and their defaults, which
//! `SHOW CONFIG` follows and a test holds README's configuration table to.
//!
//! Every error names the variable and the offending value (never the value of a secret), because
//! in Lambda the message ends up in the function's Init log and nowhere else.

mod credentials;
mod entries;
mod env;
mod hosts;
mod table;

pub(crate) use credentials::{CredentialSettings, DbOverrides, SecretSettings, TargetSettings};
pub(crate) use hosts::{instance_host, HostAddr, InstanceHosts, ReaderSettings, SessionAttrs};

use env::{pick, Env};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use table::{Lambda, Setting};
use thiserror::Error;

/// A value that must never reach a log line; `Debug` prints asterisks.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PoolMode {
    /// A server connection is held from a transaction's first message to its end.
    Transaction,
    /// A server connection is held for the client's whole session.
    Session,
}

/// What is between pgwarm and the database (`PGWARM_UPSTREAM_POOLER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Upstream {
    /// The database itself: a server connection keeps what pgwarm leaves on it.
    Database,
    /// Another transaction pooler (PgBouncer, RDS Proxy, PgDog): each transaction may run on
    /// another backend, so pgwarm leaves nothing on a server connection beyond a transaction.
    Pooler,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    const ALL: [SslMode; 5] = [
        SslMode::Disable,
        SslMode::Prefer,
        SslMode::Require,
        SslMode::VerifyCa,
        SslMode::VerifyFull,
    ];

    /// The value as PGWARM_SSLMODE spells it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Whether clients may (or must) talk TLS to pgwarm (`PGWARM_CLIENT_TLS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientTlsMode {
    /// SSLRequest is answered 'N'.
    Off,
    /// TLS for clients that ask for it, plain text for the others.
    On,
    /// Plain-text logins are refused, as a `hostssl`-only pg_hba.conf would.
    Require,
}

/// The certificate pgwarm presents to its clients.
#[derive(Debug, Clone)]
pub(crate) struct ClientTlsSettings {
    pub mode: ClientTlsMode,
    /// `PGWARM_CLIENT_TLS_CERT` and `PGWARM_CLIENT_TLS_KEY`; both or neither. Neither means a
    /// self-signed certificate made at start-up, enough for `sslmode=require`.
    pub cert_and_key: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// What a client that leaves session state in its backend gets in transaction mode
/// (`PGWARM_PINNING`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pinning {
    /// It keeps its server connection while the state lives.
    On,
    /// Nothing: the state stays with the connection and its next client (PgBouncer's way).
    Off,
    /// The statements that would make it are answered with an error; what they miss is
    /// pinned as with `on`.
    Refuse,
}

/// Everything pgwarm needs to run, validated.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub listen: SocketAddr,
    /// Where the database login comes from.
    pub credentials: CredentialSettings,
    /// The hosts `PGWARM_DB_HOST` lists, in order; empty when it is not set (the secret names
    /// the one host). With one host the login's own host and port are used.
    pub hosts: Vec<HostAddr>,
    /// Which servers may be lent (`PGWARM_TARGET_SESSION_ATTRS`).
    pub target_session_attrs: SessionAttrs,
    /// How the writer's instances are named, to reach them by the ids the database gives
    /// (`PGWARM_INSTANCE_HOST_PATTERN`).
    pub instance_hosts: InstanceHosts,
    /// The reader port, when `PGWARM_READER_LISTEN` opens one.
    pub reader: Option<ReaderSettings>,
    /// What becomes of session state in transaction mode (`PGWARM_PINNING`).
    pub pinning: Pinning,
    /// How many clients may keep their server connection at once (`PGWARM_MAX_PINNED`).
    pub max_pinned: usize,
    /// TLS to the database (`PGWARM_SSLMODE`).
    pub sslmode: SslMode,
    pub pool_mode: PoolMode,
    pub upstream: Upstream,
    /// An on-demand Lambda environment (`AWS_LAMBDA_RUNTIME_API` set, not Managed Instances):
    /// frozen between invocations, and told when each starts.
    pub frozen_between_invocations: bool,
    pub pool_size: usize,
    /// Server connections opened during Lambda Init (or at start-up standalone), before the
    /// first client asks; 0 opens none until then.
    pub min_pool_size: usize,
    pub max_client_conn: usize,
    pub server_check_delay: Duration,
    pub query_wait_timeout: Duration,
    pub connect_timeout: Duration,
    /// `None` when set to 0: a client may stay idle inside a transaction indefinitely.
    pub idle_transaction_timeout: Option<Duration>,
    /// The database's `idle_session_timeout` for pgwarm's server connections in transaction
    /// mode, so a frozen environment's connections are closed by the database; `None` when 0.
    pub idle_session_timeout: Option<Duration>,
    pub server_lifetime: Duration,
    /// Run when a session-mode client leaves; empty means none.
    pub server_reset_query: String,
    pub client_password: Option<Secret>,
    pub max_message_size: usize,
    /// CA certificates (PEM) that replace the embedded Amazon RDS bundle.
    pub ssl_root_cert: Option<std::path::PathBuf>,
    pub client_tls: ClientTlsSettings,
    /// Named prepared statements kept per server connection in transaction mode; 0 turns the
    /// renaming off (statement names then reach the server as the client sent them).
    pub max_prepared_statements: usize,
    /// Runtime threads: 1 runs everything on one thread, like PgBouncer, which is the cheapest
    /// per message when the function and the database share few vCPUs.
    pub worker_threads: usize,
    pub log_level: String,
    pub log_format: LogFormat,
    /// The period of `SHOW STATS`' averages (PgBouncer's `stats_period`).
    pub stats_period: Duration,
    /// CloudWatch metrics in Embedded Metric Format on stdout; `None` when `PGWARM_METRICS=off`.
    pub metrics: Option<MetricsSettings>,
}

/// `PGWARM_METRICS_*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MetricsSettings {
    pub namespace: String,
    /// At most one line per this long while invocations run.
    pub interval: Duration,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub(crate) enum ConfigError {
    #[error("{variable}={value:?} is invalid: {reason}")]
    Invalid {
        variable: &'static str,
        value: String,
        reason: String,
    },
    #[error("{variable} is not set: {reason}")]
    Missing {
        variable: &'static str,
        reason: &'static str,
    },
}

// The spellings of each choice, for reading a variable and for showing it in `SHOW CONFIG`.
const POOL_MODES: [(&str, PoolMode); 2] = [
    ("transaction", PoolMode::Transaction),
    ("session", PoolMode::Session),
];
const UPSTREAMS: [(&str, Upstream); 2] = [("off", Upstream::Database), ("on", Upstream::Pooler)];
const CLIENT_TLS_MODES: [(&str, ClientTlsMode); 3] = [
    ("on", ClientTlsMode::On),
    ("off", ClientTlsMode::Off),
    ("require", ClientTlsMode::Require),
];
const LOG_FORMATS: [(&str, LogFormat); 2] = [("json", LogFormat::Json), ("text", LogFormat::Text)];
const SWITCH: [(&str, bool); 2] = [("on", true), ("off", false)];
const PINNINGS: [(&str, Pinning); 3] = [
    ("on", Pinning::On),
    ("off", Pinning::Off),
    ("refuse", Pinning::Refuse),
];

/// `PGWARM_POOL_SIZE`'s default, also the fewest the Managed Instances default gives.
const POOL_SIZE_DEFAULT: usize = table::POOL_SIZE.unset.whole();
/// The most server connections the Managed Instances default gives one environment.
const MANAGED_INSTANCES_MAX_POOL_SIZE: usize = 20;
/// PostgreSQL's own limit for one message, which is also `PGWARM_MAX_MESSAGE_SIZE`'s default.
const MAX_MESSAGE_SIZE_LIMIT: usize = table::MAX_MESSAGE_SIZE.unset.whole();

impl Settings {
    /// Reads the process environment.
    pub(crate) fn from_env() -> Result<Settings, ConfigError> {
        Settings::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests need not touch the process environment. The
    /// variables are read in a fixed order, so with several bad ones the same one is named.
    pub(crate) fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let env = Env(&lookup);
        let in_lambda = env.lambda(Lambda::RuntimeApi).is_some();
        let hosts = hosts::read_hosts(&env)?;
        let credentials = credentials::parse(&env, &hosts)?;
        let sslmode = parse_sslmode(&env, &credentials)?;
        let listen = parse_listen(&env)?;
        let reader = parse_reader(&env)?;
        if reader.is_some() && env.get(&table::AUTH).as_deref() == Some("iam") {
            return Err(invalid(
                table::READER_LISTEN.name,
                &env.text(&table::READER_LISTEN),
                "PGWARM_AUTH=iam signs its token for the writer's host, which the replicas refuse",
            ));
        }
        let pool_mode = env.choice(
            &table::POOL_MODE,
            &POOL_MODES,
            "expected transaction or session",
        )?;
        let upstream = env.choice(
            &table::UPSTREAM_POOLER,
            &UPSTREAMS,
            "expected on (a transaction pooler is between pgwarm and the database) or off",
        )?;
        let managed_instances = in_lambda
            && env.lambda(Lambda::InitializationType).as_deref()
                == Some("lambda-managed-instances");
        let pool_size = parse_pool_size(&env, managed_instances)?;
        let min_pool_size = parse_min_pool_size(&env, pool_size)?;
        let max_client_conn = env.positive(&table::MAX_CLIENT_CONN)?;
        let max_message_size = parse_max_message_size(&env)?;
        let idle_transaction_timeout = env.optional_duration(&table::IDLE_TRANSACTION_TIMEOUT)?;
        let idle_session_timeout = parse_idle_session_timeout(&env)?;
        Ok(Settings {
            listen,
            reader,
            credentials,
            hosts,
            target_session_attrs: hosts::read_session_attrs(&env, upstream)?,
            instance_hosts: hosts::read_instance_hosts(&env)?,
            sslmode,
            pool_mode,
            upstream,
            frozen_between_invocations: in_lambda && !managed_instances,
            pool_size,
            min_pool_size,
            max_client_conn,
            server_check_delay: env.duration(&table::SERVER_CHECK_DELAY)?,
            query_wait_timeout: env.nonzero_duration(&table::QUERY_WAIT_TIMEOUT)?,
            connect_timeout: env.nonzero_duration(&table::CONNECT_TIMEOUT)?,
            idle_transaction_timeout,
            idle_session_timeout,
            server_lifetime: env.nonzero_duration(&table::SERVER_LIFETIME)?,
            server_reset_query: env.text(&table::SERVER_RESET_QUERY),
            client_password: nonempty(&env, &table::CLIENT_PASSWORD).map(Secret),
            max_message_size,
            ssl_root_cert: nonempty(&env, &table::SSLROOTCERT).map(PathBuf::from),
            client_tls: parse_client_tls(&env)?,
            max_prepared_statements: env.parse(
                &table::MAX_PREPARED_STATEMENTS,
                "expected a whole number (0 turns prepared statement tracking off)",
            )?,
            worker_threads: env.positive(&table::WORKER_THREADS)?,
            stats_period: env.nonzero_duration(&table::STATS_PERIOD)?,
            metrics: parse_metrics(&env)?,
            pinning: env.choice(&table::PINNING, &PINNINGS, "expected on, off or refuse")?,
            // One connection stays for the clients that are not pinned, unless there is one.
            max_pinned: env.positive_or(&table::MAX_PINNED, pool_size.saturating_sub(1).max(1))?,
            log_level: env.text(&table::LOG_LEVEL),
            log_format: parse_log_format(&env, in_lambda)?,
        })
    }
}

/// The variable as set, unless empty: an empty path or password means none.
fn nonempty(env: &Env<'_>, setting: &Setting) -> Option<String> {
    env.get(setting).filter(|value| !value.is_empty())
}

/// `PGWARM_READER_*`: off unless `PGWARM_READER_LISTEN` names an address, which then needs
/// `PGWARM_READER_HOST`.
fn parse_reader(env: &Env<'_>) -> Result<Option<ReaderSettings>, ConfigError> {
    let raw = env.text(&table::READER_LISTEN);
    let hosts_raw = env
        .get(&table::READER_HOST)
        .filter(|h| !h.trim().is_empty());
    if raw == "off" {
        return match hosts_raw {
            Some(hosts) => Err(invalid(
                table::READER_HOST.name,
                &hosts,
                "the reader port is off: set PGWARM_READER_LISTEN to an address like 127.0.0.1:5433",
            )),
            None => Ok(None),
        };
    }
    let listen = raw.parse().map_err(|_| {
        invalid(
            table::READER_LISTEN.name,
            &raw,
            "expected off, or an address like 127.0.0.1:5433",
        )
    })?;
    let Some(hosts_raw) = hosts_raw else {
        return Err(ConfigError::Missing {
            variable: table::READER_HOST.name,
            reason: "PGWARM_READER_LISTEN opens a reader port, whose connections go to the replicas it lists",
        });
    };
    let hosts = hosts::parse_hosts(
        table::READER_HOST.name,
        &hosts_raw,
        table::READER_PORT.name,
        env.get(&table::READER_PORT).as_deref(),
    )?;
    Ok(Some(ReaderSettings {
        listen,
        hosts,
        fallback: env.choice(&table::READER_FALLBACK, &SWITCH, "expected on or off")?,
    }))
}

fn parse_listen(env: &Env<'_>) -> Result<SocketAddr, ConfigError> {
    let raw = env.text(&table::LISTEN);
    raw.parse().map_err(|_| {
        invalid(
            table::LISTEN.name,
            &raw,
            "expected an address like 127.0.0.1:5432",
        )
    })
}

/// libpq's sslmode values; the default is verify-full, except prefer for a database on this
/// machine (a local test cluster rarely has a certificate). A host known only from a secret
/// gets verify-full. RDS takes an IAM auth token over TLS only: with `PGWARM_AUTH=iam` a mode
/// that may send it in clear is refused, and the loopback default becomes require.
fn parse_sslmode(env: &Env<'_>, credentials: &CredentialSettings) -> Result<SslMode, ConfigError> {
    let iam = matches!(credentials, CredentialSettings::Iam { .. });
    let Some(raw) = env.get(&table::SSLMODE) else {
        return Ok(match credentials.known_host() {
            Some(host) if is_loopback(host) && iam => SslMode::Require,
            Some(host) if is_loopback(host) => SslMode::Prefer,
            _ => SslMode::VerifyFull,
        });
    };
    let modes = SslMode::ALL.map(|mode| (mode.as_str(), mode));
    let mode = pick(
        &table::SSLMODE,
        &raw,
        &modes,
        "expected disable, prefer, require, verify-ca or verify-full",
    )?;
    if iam && matches!(mode, SslMode::Disable | SslMode::Prefer) {
        return Err(invalid(
            table::SSLMODE.name,
            &raw,
            "PGWARM_AUTH=iam sends an auth token, which RDS accepts over TLS only: \
             use require, verify-ca or verify-full",
        ));
    }
    Ok(mode)
}

/// `PGWARM_POOL_SIZE`, whose default on Managed Instances comes from the environment's
/// concurrency (read, and refused when bad, even when `PGWARM_POOL_SIZE` is set).
fn parse_pool_size(env: &Env<'_>, managed_instances: bool) -> Result<usize, ConfigError> {
    let default = match env.lambda(Lambda::MaxConcurrency) {
        Some(raw) if managed_instances => managed_instances_pool_size(&raw)?,
        _ => POOL_SIZE_DEFAULT,
    };
    env.positive_or(&table::POOL_SIZE, default)
}

/// On Lambda Managed Instances one environment serves up to `AWS_LAMBDA_MAX_CONCURRENCY`
/// requests at once. In transaction mode a connection is held only during a transaction, so that
/// many is an upper bound; it is capped like PgBouncer's `default_pool_size` (20) so that many
/// environments cannot exhaust the database's `max_connections`.
fn managed_instances_pool_size(raw: &str) -> Result<usize, ConfigError> {
    let concurrency: usize = raw.trim().parse().map_err(|_| {
        invalid(
            Lambda::MaxConcurrency.name(),
            raw,
            "expected a whole number (set PGWARM_POOL_SIZE to override)",
        )
    })?;
    Ok(concurrency.clamp(POOL_SIZE_DEFAULT, MANAGED_INSTANCES_MAX_POOL_SIZE))
}

fn parse_min_pool_size(env: &Env<'_>, pool_size: usize) -> Result<usize, ConfigError> {
    let min_pool_size: usize = env.parse(
        &table::MIN_POOL_SIZE,
        "expected a whole number (0 opens no connection before a client needs one)",
    )?;
    if min_pool_size > pool_size {
        return Err(invalid(
            table::MIN_POOL_SIZE.name,
            &min_pool_size.to_string(),
            &format!("cannot exceed PGWARM_POOL_SIZE ({pool_size})"),
        ));
    }
    Ok(min_pool_size)
}

fn parse_max_message_size(env: &Env<'_>) -> Result<usize, ConfigError> {
    let size = env.positive(&table::MAX_MESSAGE_SIZE)?;
    if size > MAX_MESSAGE_SIZE_LIMIT {
        return Err(invalid(
            table::MAX_MESSAGE_SIZE.name,
            &size.to_string(),
            "PostgreSQL itself accepts at most 1073741823 bytes",
        ));
    }
    Ok(size)
}

/// Sent to the database as its `idle_session_timeout`, an int of milliseconds.
fn parse_idle_session_timeout(env: &Env<'_>) -> Result<Option<Duration>, ConfigError> {
    let timeout = env.optional_duration(&table::IDLE_SESSION_TIMEOUT)?;
    if let Some(d) = timeout.filter(|d| d.as_millis() > i32::MAX as u128) {
        return Err(invalid(
            table::IDLE_SESSION_TIMEOUT.name,
            &format!("{d:?}"),
            "PostgreSQL takes at most 2147483647ms (about 24 days)",
        ));
    }
    Ok(timeout)
}

fn parse_client_tls(env: &Env<'_>) -> Result<ClientTlsSettings, ConfigError> {
    let cert = nonempty(env, &table::CLIENT_TLS_CERT).map(PathBuf::from);
    let key = nonempty(env, &table::CLIENT_TLS_KEY).map(PathBuf::from);
    let cert_and_key = match (cert, key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        (Some(_), None) => {
            return Err(ConfigError::Missing {
                variable: table::CLIENT_TLS_KEY.name,
                reason: "PGWARM_CLIENT_TLS_CERT is set, so pgwarm needs its private key too",
            })
        }
        (None, Some(_)) => {
            return Err(ConfigError::Missing {
                variable: table::CLIENT_TLS_CERT.name,
                reason: "PGWARM_CLIENT_TLS_KEY is set, so pgwarm needs its certificate too",
            })
        }
    };
    // Unset, TLS is offered only with a certificate of the user's. A handshake on loopback
    // protects nothing inside one execution environment, yet libpq's default `sslmode=prefer`
    // takes it when offered, and it doubles a naive handler's invocation at a small CPU share.
    // A certificate given is a wish for TLS (`verify-full` needs it), so it turns TLS on.
    let mode = match env.get(&table::CLIENT_TLS) {
        Some(raw) => pick(
            &table::CLIENT_TLS,
            &raw,
            &CLIENT_TLS_MODES,
            "expected on, off or require",
        )?,
        None if cert_and_key.is_some() => ClientTlsMode::On,
        None => ClientTlsMode::Off,
    };
    Ok(ClientTlsSettings { mode, cert_and_key })
}

fn parse_metrics(env: &Env<'_>) -> Result<Option<MetricsSettings>, ConfigError> {
    let on = env.choice(&table::METRICS, &SWITCH, "expected on or off")?;
    if !on {
        return Ok(None);
    }
    let namespace = env.text(&table::METRICS_NAMESPACE);
    // CloudWatch's rule for a namespace: 1 to 255 characters of this set.
    let allowed = |c: char| c.is_ascii_alphanumeric() || ".-_/#:".contains(c);
    if namespace.is_empty() || namespace.len() > 255 || !namespace.chars().all(allowed) {
        return Err(invalid(
            table::METRICS_NAMESPACE.name,
            &namespace,
            "expected 1 to 255 letters, digits or . - _ / # :",
        ));
    }
    let interval = env.nonzero_duration(&table::METRICS_INTERVAL)?;
    Ok(Some(MetricsSettings {
        namespace,
        interval,
    }))
}

/// JSON lines for CloudWatch in Lambda, text for people elsewhere.
fn parse_log_format(env: &Env<'_>, in_lambda: bool) -> Result<LogFormat, ConfigError> {
    match env.get(&table::LOG_FORMAT) {
        None if in_lambda => Ok(LogFormat::Json),
        None => Ok(LogFormat::Text),
        Some(raw) => pick(
            &table::LOG_FORMAT,
            &raw,
            &LOG_FORMATS,
            "expected json or text",
        ),
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

fn invalid(variable: &'static str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        variable,
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Parses `500ms`, `10s`, `5m`, `1h`, or a bare number of seconds.
pub(crate) fn parse_duration(raw: &str) -> Option<Duration> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (digits, unit) = raw.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let unit_ms = match unit.trim() {
        "ms" => 1,
        "" | "s" => 1000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    n.checked_mul(unit_ms).map(Duration::from_millis)
}

#[cfg(test)]
mod tests;
