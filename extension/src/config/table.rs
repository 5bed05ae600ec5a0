//! The one table of pgwarm's settings: every `PGWARM_*` variable, what an unset one means, and
//! how `SHOW CONFIG` shows the value in effect. `from_lookup` reads a variable only through its
//! row here, the defaults it parses are the rows' text, and `SHOW CONFIG` lists every row, so what
//! is read and what is shown cannot drift apart (PgBouncer drives its config file and its
//! `SHOW CONFIG` from one table the same way). README's configuration table lists the same
//! variables in the same order with the same defaults, which `tests.rs` checks.

use super::entries::{aws_timeout, duration, host_list, login, path, port_list, secret};
use super::env::spelling;
use super::{Settings, CLIENT_TLS_MODES, LOG_FORMATS, PINNINGS, POOL_MODES, SWITCH, UPSTREAMS};

/// One `PGWARM_*` variable.
#[derive(Clone, Copy)]
pub(crate) struct Setting {
    pub name: &'static str,
    pub unset: Unset,
    pub shown: Shown,
    /// Rows are made here only ([`row`] is private), so a variable `Env` reads is one of them.
    _sealed: (),
}

/// What pgwarm does when a variable is not set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unset {
    /// Read as if set to this text, through the same parser, so a default is spelled the way a
    /// user would spell it.
    Value(&'static str),
    /// Worked out at start-up from other variables; the text says how.
    Derived(&'static str),
    /// Nothing takes its place: what it names is not used, or comes from elsewhere.
    Nothing,
}

impl Unset {
    /// The default as `SHOW CONFIG` and README put it: empty when there is none.
    pub(crate) fn text(self) -> &'static str {
        match self {
            Unset::Value(text) | Unset::Derived(text) => text,
            Unset::Nothing => "",
        }
    }

    /// A whole-number default as a number. Only ever called in a `const`, so a default that is
    /// not one fails the build, never a start-up.
    pub(crate) const fn whole(self) -> usize {
        let digits = match self {
            Unset::Value(text) => text.as_bytes(),
            Unset::Derived(_) | Unset::Nothing => b"",
        };
        assert!(!digits.is_empty(), "not a default value");
        let mut n = 0usize;
        let mut i = 0;
        while i < digits.len() {
            assert!(digits[i].is_ascii_digit(), "not a whole number");
            n = n * 10 + (digits[i] - b'0') as usize;
            i += 1;
        }
        n
    }
}

/// How `SHOW CONFIG` shows the value in effect: read back from the parsed [`Settings`], so it is
/// what pgwarm uses (a default worked out, a duration in its own unit), not what was typed.
/// Empty when the variable has no effect, as `PGWARM_SECRET_TTL` without a secret.
#[derive(Clone, Copy)]
pub(crate) enum Shown {
    Plain(fn(&Settings) -> String),
    /// Only whether it is set can reach `SHOW CONFIG`, as `***`.
    Secret(fn(&Settings) -> bool),
}

impl Shown {
    pub(crate) fn value(self, settings: &Settings) -> String {
        match self {
            Shown::Plain(show) => show(settings),
            Shown::Secret(is_set) if is_set(settings) => "***".into(),
            Shown::Secret(_) => String::new(),
        }
    }
}

const fn row(name: &'static str, unset: Unset, shown: Shown) -> Setting {
    Setting {
        name,
        unset,
        shown,
        _sealed: (),
    }
}

pub(crate) const LISTEN: Setting = row(
    "PGWARM_LISTEN",
    Unset::Value("127.0.0.1:5432"),
    Shown::Plain(|s| s.listen.to_string()),
);
pub(crate) const READER_LISTEN: Setting = row(
    "PGWARM_READER_LISTEN",
    Unset::Value("off"),
    Shown::Plain(|s| {
        s.reader
            .as_ref()
            .map_or("off".into(), |r| r.listen.to_string())
    }),
);
pub(crate) const READER_HOST: Setting = row(
    "PGWARM_READER_HOST",
    Unset::Nothing,
    Shown::Plain(|s| {
        s.reader
            .as_ref()
            .map_or(String::new(), |r| host_list(&r.hosts))
    }),
);
pub(crate) const READER_PORT: Setting = row(
    "PGWARM_READER_PORT",
    Unset::Derived("the database's port"),
    Shown::Plain(|s| {
        s.reader
            .as_ref()
            .map_or(String::new(), |r| port_list(&r.hosts))
    }),
);
pub(crate) const READER_FALLBACK: Setting = row(
    "PGWARM_READER_FALLBACK",
    Unset::Value("on"),
    Shown::Plain(|s| {
        let fallback = s.reader.as_ref().map(|r| r.fallback);
        fallback.map_or(String::new(), |f| spelling(&SWITCH, f))
    }),
);
pub(crate) const AUTH: Setting = row(
    "PGWARM_AUTH",
    Unset::Derived("secret if PGWARM_SECRET_ID is set, else password"),
    Shown::Plain(|s| s.credentials.auth().into()),
);
pub(crate) const DB_HOST: Setting = row(
    "PGWARM_DB_HOST",
    Unset::Nothing,
    Shown::Plain(|s| match s.hosts.len() {
        0 | 1 => login(s).host.unwrap_or_default(),
        _ => host_list(&s.hosts),
    }),
);
pub(crate) const DB_PORT: Setting = row(
    "PGWARM_DB_PORT",
    Unset::Value("5432"),
    Shown::Plain(|s| {
        let first = s.hosts.first().and_then(|f| f.port);
        match s.hosts.iter().all(|h| h.port == first) {
            true => login(s).port.map_or(String::new(), |p| p.to_string()),
            false => port_list(&s.hosts),
        }
    }),
);
pub(crate) const DB_NAME: Setting = row(
    "PGWARM_DB_NAME",
    Unset::Nothing,
    Shown::Plain(|s| login(s).dbname.unwrap_or_default()),
);
pub(crate) const DB_USER: Setting = row(
    "PGWARM_DB_USER",
    Unset::Nothing,
    Shown::Plain(|s| login(s).user.unwrap_or_default()),
);
pub(crate) const DB_PASSWORD: Setting = row(
    "PGWARM_DB_PASSWORD",
    Unset::Nothing,
    Shown::Secret(|s| login(s).password.is_some()),
);
pub(crate) const TARGET_SESSION_ATTRS: Setting = row(
    "PGWARM_TARGET_SESSION_ATTRS",
    Unset::Derived("read-write; any with PGWARM_UPSTREAM_POOLER=on"),
    Shown::Plain(|s| s.target_session_attrs.as_str().into()),
);
pub(crate) const INSTANCE_HOST_PATTERN: Setting = row(
    "PGWARM_INSTANCE_HOST_PATTERN",
    Unset::Value("auto"),
    Shown::Plain(|s| s.instance_hosts.as_str().into()),
);
pub(crate) const PINNING: Setting = row(
    "PGWARM_PINNING",
    Unset::Value("on"),
    Shown::Plain(|s| spelling(&PINNINGS, s.pinning)),
);
pub(crate) const MAX_PINNED: Setting = row(
    "PGWARM_MAX_PINNED",
    Unset::Derived("PGWARM_POOL_SIZE - 1, at least 1"),
    Shown::Plain(|s| s.max_pinned.to_string()),
);
pub(crate) const SECRET_ID: Setting = row(
    "PGWARM_SECRET_ID",
    Unset::Nothing,
    Shown::Plain(|s| secret(s).map_or(String::new(), |x| x.secret_id.clone())),
);
pub(crate) const SECRET_TTL: Setting = row(
    "PGWARM_SECRET_TTL",
    Unset::Value("300s"),
    Shown::Plain(|s| secret(s).map_or(String::new(), |x| duration(x.ttl))),
);
pub(crate) const SECRETS_TIMEOUT: Setting = row(
    "PGWARM_SECRETS_TIMEOUT",
    Unset::Value("5s"),
    Shown::Plain(|s| aws_timeout(s).map_or(String::new(), duration)),
);
pub(crate) const SSLMODE: Setting = row(
    "PGWARM_SSLMODE",
    Unset::Derived("prefer for a loopback host, else verify-full"),
    Shown::Plain(|s| s.sslmode.as_str().into()),
);
pub(crate) const SSLROOTCERT: Setting = row(
    "PGWARM_SSLROOTCERT",
    Unset::Nothing,
    Shown::Plain(|s| path(s.ssl_root_cert.as_deref())),
);
pub(crate) const CLIENT_TLS: Setting = row(
    "PGWARM_CLIENT_TLS",
    Unset::Derived("on if PGWARM_CLIENT_TLS_CERT is set, else off"),
    Shown::Plain(|s| spelling(&CLIENT_TLS_MODES, s.client_tls.mode)),
);
pub(crate) const CLIENT_TLS_CERT: Setting = row(
    "PGWARM_CLIENT_TLS_CERT",
    Unset::Nothing,
    Shown::Plain(|s| path(s.client_tls.cert_and_key.as_ref().map(|(c, _)| c.as_path()))),
);
pub(crate) const CLIENT_TLS_KEY: Setting = row(
    "PGWARM_CLIENT_TLS_KEY",
    Unset::Nothing,
    Shown::Plain(|s| path(s.client_tls.cert_and_key.as_ref().map(|(_, k)| k.as_path()))),
);
pub(crate) const POOL_MODE: Setting = row(
    "PGWARM_POOL_MODE",
    Unset::Value("transaction"),
    Shown::Plain(|s| spelling(&POOL_MODES, s.pool_mode)),
);
/// Also the fewest a Managed Instances environment gets.
pub(crate) const POOL_SIZE: Setting = row(
    "PGWARM_POOL_SIZE",
    Unset::Value("2"),
    Shown::Plain(|s| s.pool_size.to_string()),
);
pub(crate) const MIN_POOL_SIZE: Setting = row(
    "PGWARM_MIN_POOL_SIZE",
    Unset::Value("0"),
    Shown::Plain(|s| s.min_pool_size.to_string()),
);
pub(crate) const MAX_CLIENT_CONN: Setting = row(
    "PGWARM_MAX_CLIENT_CONN",
    Unset::Value("1000"),
    Shown::Plain(|s| s.max_client_conn.to_string()),
);
pub(crate) const QUERY_WAIT_TIMEOUT: Setting = row(
    "PGWARM_QUERY_WAIT_TIMEOUT",
    Unset::Value("30s"),
    Shown::Plain(|s| duration(s.query_wait_timeout)),
);
pub(crate) const CONNECT_TIMEOUT: Setting = row(
    "PGWARM_CONNECT_TIMEOUT",
    Unset::Value("5s"),
    Shown::Plain(|s| duration(s.connect_timeout)),
);
/// An environment idle (frozen) this long gives its database slots back; the next invocation
/// after such a pause pays one login.
pub(crate) const IDLE_SESSION_TIMEOUT: Setting = row(
    "PGWARM_IDLE_SESSION_TIMEOUT",
    Unset::Value("60s"),
    Shown::Plain(|s| s.idle_session_timeout.map_or("0".into(), duration)),
);
pub(crate) const UPSTREAM_POOLER: Setting = row(
    "PGWARM_UPSTREAM_POOLER",
    Unset::Value("off"),
    Shown::Plain(|s| spelling(&UPSTREAMS, s.upstream)),
);
pub(crate) const SERVER_CHECK_DELAY: Setting = row(
    "PGWARM_SERVER_CHECK_DELAY",
    Unset::Value("10s"),
    Shown::Plain(|s| duration(s.server_check_delay)),
);
pub(crate) const IDLE_TRANSACTION_TIMEOUT: Setting = row(
    "PGWARM_IDLE_TRANSACTION_TIMEOUT",
    Unset::Value("0"),
    Shown::Plain(|s| s.idle_transaction_timeout.map_or("0".into(), duration)),
);
pub(crate) const SERVER_LIFETIME: Setting = row(
    "PGWARM_SERVER_LIFETIME",
    Unset::Value("1h"),
    Shown::Plain(|s| duration(s.server_lifetime)),
);
pub(crate) const SERVER_RESET_QUERY: Setting = row(
    "PGWARM_SERVER_RESET_QUERY",
    Unset::Value("DISCARD ALL"),
    Shown::Plain(|s| s.server_reset_query.clone()),
);
pub(crate) const CLIENT_PASSWORD: Setting = row(
    "PGWARM_CLIENT_PASSWORD",
    Unset::Nothing,
    Shown::Secret(|s| s.client_password.is_some()),
);
pub(crate) const MAX_PREPARED_STATEMENTS: Setting = row(
    "PGWARM_MAX_PREPARED_STATEMENTS",
    Unset::Value("200"),
    Shown::Plain(|s| s.max_prepared_statements.to_string()),
);
/// PostgreSQL's own limit for one message (PQ_LARGE_MESSAGE_LIMIT is 1 GiB - 1).
pub(crate) const MAX_MESSAGE_SIZE: Setting = row(
    "PGWARM_MAX_MESSAGE_SIZE",
    Unset::Value("1073741823"),
    Shown::Plain(|s| s.max_message_size.to_string()),
);
pub(crate) const WORKER_THREADS: Setting = row(
    "PGWARM_WORKER_THREADS",
    Unset::Value("1"),
    Shown::Plain(|s| s.worker_threads.to_string()),
);
pub(crate) const LOG_LEVEL: Setting = row(
    "PGWARM_LOG_LEVEL",
    Unset::Value("info"),
    Shown::Plain(|s| s.log_level.clone()),
);
pub(crate) const LOG_FORMAT: Setting = row(
    "PGWARM_LOG_FORMAT",
    Unset::Derived("json in Lambda, else text"),
    Shown::Plain(|s| spelling(&LOG_FORMATS, s.log_format)),
);
pub(crate) const STATS_PERIOD: Setting = row(
    "PGWARM_STATS_PERIOD",
    Unset::Value("60s"),
    Shown::Plain(|s| duration(s.stats_period)),
);
pub(crate) const METRICS: Setting = row(
    "PGWARM_METRICS",
    Unset::Value("on"),
    Shown::Plain(|s| spelling(&SWITCH, s.metrics.is_some())),
);
pub(crate) const METRICS_NAMESPACE: Setting = row(
    "PGWARM_METRICS_NAMESPACE",
    Unset::Value("pgwarm"),
    Shown::Plain(|s| {
        s.metrics
            .as_ref()
            .map_or(String::new(), |m| m.namespace.clone())
    }),
);
pub(crate) const METRICS_INTERVAL: Setting = row(
    "PGWARM_METRICS_INTERVAL",
    Unset::Value("60s"),
    Shown::Plain(|s| {
        s.metrics
            .as_ref()
            .map_or(String::new(), |m| duration(m.interval))
    }),
);

/// The table: every variable pgwarm reads as a setting, in README's order.
pub(crate) const SETTINGS: &[Setting] = &[
    LISTEN,
    READER_LISTEN,
    READER_HOST,
    READER_PORT,
    READER_FALLBACK,
    AUTH,
    DB_HOST,
    DB_PORT,
    DB_NAME,
    DB_USER,
    DB_PASSWORD,
    TARGET_SESSION_ATTRS,
    INSTANCE_HOST_PATTERN,
    SECRET_ID,
    SECRET_TTL,
    SECRETS_TIMEOUT,
    SSLMODE,
    SSLROOTCERT,
    CLIENT_TLS,
    CLIENT_TLS_CERT,
    CLIENT_TLS_KEY,
    POOL_MODE,
    POOL_SIZE,
    MIN_POOL_SIZE,
    MAX_CLIENT_CONN,
    QUERY_WAIT_TIMEOUT,
    CONNECT_TIMEOUT,
    IDLE_SESSION_TIMEOUT,
    UPSTREAM_POOLER,
    SERVER_CHECK_DELAY,
    IDLE_TRANSACTION_TIMEOUT,
    SERVER_LIFETIME,
    SERVER_RESET_QUERY,
    CLIENT_PASSWORD,
    MAX_PREPARED_STATEMENTS,
    PINNING,
    MAX_PINNED,
    MAX_MESSAGE_SIZE,
    WORKER_THREADS,
    LOG_LEVEL,
    LOG_FORMAT,
    STATS_PERIOD,
    METRICS,
    METRICS_NAMESPACE,
    METRICS_INTERVAL,
];

/// Whether `setting` is a row of [`SETTINGS`]: a row made but left out of the table would be read
/// but neither shown nor documented.
pub(crate) fn is_listed(setting: &Setting) -> bool {
    SETTINGS.iter().any(|row| row.name == setting.name)
}

/// Variables Lambda sets, read to learn where pgwarm runs. They are not settings, so neither
/// `SHOW CONFIG` nor README's configuration table lists them; an enum keeps them a closed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lambda {
    /// Set in every Lambda environment: pgwarm runs as an extension.
    RuntimeApi,
    /// `lambda-managed-instances` on Managed Instances, whose environments are never frozen.
    InitializationType,
    /// On Managed Instances, the requests one environment serves at once.
    MaxConcurrency,
}

impl Lambda {
    #[cfg(test)]
    pub(crate) const ALL: [Lambda; 3] = [
        Lambda::RuntimeApi,
        Lambda::InitializationType,
        Lambda::MaxConcurrency,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Lambda::RuntimeApi => "AWS_LAMBDA_RUNTIME_API",
            Lambda::InitializationType => "AWS_LAMBDA_INITIALIZATION_TYPE",
            Lambda::MaxConcurrency => "AWS_LAMBDA_MAX_CONCURRENCY",
        }
    }
}

#[cfg(test)]
mod tests;
