//! Unit tests of the configuration: defaults, units, and bad values named with their variable.

use super::*;
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Settings::from_lookup(|k| map.get(k).cloned())
}

const BASE: [(&str, &str); 3] = [
    ("PGWARM_DB_HOST", "127.0.0.1"),
    ("PGWARM_DB_USER", "app"),
    ("PGWARM_DB_PASSWORD", "hunter2"),
];

#[test]
fn defaults_follow_the_contract() {
    let s = settings(&BASE).unwrap();
    assert_eq!(s.listen, "127.0.0.1:5432".parse().unwrap());
    assert_eq!(s.pool_size, 2);
    assert_eq!(s.max_client_conn, 1000);
    assert_eq!(s.pool_mode, PoolMode::Transaction);
    assert_eq!(s.upstream, Upstream::Database);
    assert_eq!(s.server_check_delay, Duration::from_secs(10));
    let CredentialSettings::Static(target) = &s.credentials else {
        panic!("PGWARM_DB_* alone is a static login");
    };
    assert_eq!(target.port, 5432);
    assert_eq!(target.dbname, "app");
    assert_eq!(s.sslmode, SslMode::Prefer);
    assert_eq!(s.idle_transaction_timeout, None);
    assert_eq!(s.idle_session_timeout, Some(Duration::from_secs(60)));
    assert_eq!(s.log_format, LogFormat::Text);
}

#[test]
fn durations_accept_units() {
    assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
    assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
    assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
    assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
    assert_eq!(parse_duration("ten"), None);
    assert_eq!(parse_duration("10 parsecs"), None);
    assert_eq!(parse_duration(""), None);
}

#[test]
fn errors_name_the_variable_and_value() {
    let mut pairs = BASE.to_vec();
    pairs.push(("PGWARM_POOL_SIZE", "lots"));
    let err = settings(&pairs).unwrap_err().to_string();
    assert!(
        err.contains("PGWARM_POOL_SIZE") && err.contains("lots"),
        "{err}"
    );

    let mut pairs = BASE.to_vec();
    pairs.push(("PGWARM_QUERY_WAIT_TIMEOUT", "soon"));
    let err = settings(&pairs).unwrap_err().to_string();
    assert!(
        err.contains("PGWARM_QUERY_WAIT_TIMEOUT") && err.contains("soon"),
        "{err}"
    );

    let err = settings(&[("PGWARM_DB_USER", "app")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("PGWARM_DB_HOST"), "{err}");

    let mut pairs = BASE.to_vec();
    pairs.push(("PGWARM_POOL_MODE", "statement"));
    assert!(settings(&pairs)
        .unwrap_err()
        .to_string()
        .contains("PGWARM_POOL_MODE"));

    for (variable, value) in [
        ("PGWARM_UPSTREAM_POOLER", "pgbouncer"),
        ("PGWARM_IDLE_SESSION_TIMEOUT", "1000h"),
        ("PGWARM_IDLE_SESSION_TIMEOUT", "later"),
    ] {
        let mut pairs = BASE.to_vec();
        pairs.push((variable, value));
        let err = settings(&pairs).unwrap_err().to_string();
        assert!(err.contains(variable), "{err}");
    }
    let mut pairs = BASE.to_vec();
    pairs.push(("PGWARM_UPSTREAM_POOLER", "on"));
    pairs.push(("PGWARM_IDLE_SESSION_TIMEOUT", "0"));
    let s = settings(&pairs).unwrap();
    assert_eq!(
        (s.upstream, s.idle_session_timeout),
        (Upstream::Pooler, None)
    );
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let mut pairs = BASE.to_vec();
    pairs.push(("PGWARM_CLIENT_PASSWORD", "sesame"));
    let s = settings(&pairs).unwrap();
    let printed = format!("{s:?}");
    assert!(
        !printed.contains("hunter2") && !printed.contains("sesame"),
        "{printed}"
    );
}

#[test]
fn remote_hosts_default_to_verify_full() {
    let remote = settings(&[
        ("PGWARM_DB_HOST", "db.example.com"),
        ("PGWARM_DB_USER", "a"),
    ])
    .unwrap();
    assert_eq!(remote.sslmode, SslMode::VerifyFull);
    for mode in ["disable", "prefer", "require", "verify-ca", "verify-full"] {
        let s = settings(&[
            ("PGWARM_DB_HOST", "db.example.com"),
            ("PGWARM_DB_USER", "a"),
            ("PGWARM_SSLMODE", mode),
        ])
        .unwrap();
        assert_eq!(s.sslmode.as_str(), mode);
    }
    let err = settings(&[
        ("PGWARM_DB_HOST", "db.example.com"),
        ("PGWARM_DB_USER", "a"),
        ("PGWARM_SSLMODE", "allow"),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("PGWARM_SSLMODE") && err.contains("allow"),
        "{err}"
    );
}

#[test]
fn client_tls_needs_both_files_or_neither() {
    let base = [("PGWARM_DB_HOST", "127.0.0.1"), ("PGWARM_DB_USER", "app")];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut pairs = base.to_vec();
        pairs.extend_from_slice(extra);
        settings(&pairs)
    };
    // Unset: off, unless a certificate of the user's says TLS is wanted.
    let s = settings(&base).unwrap();
    assert_eq!(s.client_tls.mode, ClientTlsMode::Off);
    assert!(s.client_tls.cert_and_key.is_none());
    let files = [
        ("PGWARM_CLIENT_TLS_CERT", "/c.pem"),
        ("PGWARM_CLIENT_TLS_KEY", "/k.pem"),
    ];
    assert_eq!(with(&files).unwrap().client_tls.mode, ClientTlsMode::On);
    let self_signed = with(&[("PGWARM_CLIENT_TLS", "on")]).unwrap();
    assert_eq!(self_signed.client_tls.mode, ClientTlsMode::On);
    assert!(self_signed.client_tls.cert_and_key.is_none());
    let mut off = files.to_vec();
    off.push(("PGWARM_CLIENT_TLS", "off"));
    assert_eq!(with(&off).unwrap().client_tls.mode, ClientTlsMode::Off);
    let err = with(&[("PGWARM_CLIENT_TLS_CERT", "/c.pem")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("PGWARM_CLIENT_TLS_KEY"), "{err}");
    let err = with(&[("PGWARM_CLIENT_TLS_KEY", "/k.pem")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("PGWARM_CLIENT_TLS_CERT"), "{err}");
    let err = with(&[("PGWARM_CLIENT_TLS", "yes")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("PGWARM_CLIENT_TLS=\"yes\""), "{err}");
    let both = with(&[
        ("PGWARM_CLIENT_TLS", "require"),
        ("PGWARM_CLIENT_TLS_CERT", "/c.pem"),
        ("PGWARM_CLIENT_TLS_KEY", "/k.pem"),
    ])
    .unwrap();
    assert_eq!(both.client_tls.mode, ClientTlsMode::Require);
    assert!(both.client_tls.cert_and_key.is_some());
}

#[test]
fn managed_instances_size_the_pool_from_their_concurrency() {
    let base = [
        ("PGWARM_DB_HOST", "db.example.com"),
        ("PGWARM_DB_USER", "app"),
        ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "lambda-managed-instances"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut pairs = base.to_vec();
        pairs.extend_from_slice(extra);
        settings(&pairs)
    };
    let size = |c| {
        with(&[("AWS_LAMBDA_MAX_CONCURRENCY", c)])
            .unwrap()
            .pool_size
    };
    assert_eq!(size("8"), 8);
    assert_eq!(size("1"), 2);
    assert_eq!(size("64"), 20);
    let explicit = with(&[
        ("AWS_LAMBDA_MAX_CONCURRENCY", "64"),
        ("PGWARM_POOL_SIZE", "5"),
    ]);
    assert_eq!(explicit.unwrap().pool_size, 5);
    let err = with(&[("AWS_LAMBDA_MAX_CONCURRENCY", "many")]).unwrap_err();
    assert!(
        err.to_string().contains("AWS_LAMBDA_MAX_CONCURRENCY"),
        "{err}"
    );
    // An on-demand environment ignores it.
    let mut on_demand = base[..3].to_vec();
    on_demand.push(("AWS_LAMBDA_MAX_CONCURRENCY", "64"));
    assert_eq!(settings(&on_demand).unwrap().pool_size, 2);
}

#[test]
fn min_pool_size_stays_within_the_pool() {
    let base = [("PGWARM_DB_HOST", "127.0.0.1"), ("PGWARM_DB_USER", "app")];
    let mut pairs = base.to_vec();
    pairs.push(("PGWARM_MIN_POOL_SIZE", "1"));
    assert_eq!(settings(&pairs).unwrap().min_pool_size, 1);
    pairs.push(("PGWARM_POOL_SIZE", "1"));
    pairs[2] = ("PGWARM_MIN_POOL_SIZE", "3");
    let err = settings(&pairs).unwrap_err().to_string();
    assert!(
        err.contains("PGWARM_MIN_POOL_SIZE") && err.contains("PGWARM_POOL_SIZE (1)"),
        "{err}"
    );
}

#[test]
fn a_secret_id_is_a_login_of_its_own_with_db_variables_as_overrides() {
    let s = settings(&[("PGWARM_SECRET_ID", "prod/db"), ("PGWARM_DB_PORT", "6432")]).unwrap();
    let CredentialSettings::Secret(secret) = &s.credentials else {
        panic!("PGWARM_SECRET_ID makes a secret login");
    };
    assert_eq!(secret.secret_id, "prod/db");
    assert_eq!(secret.overrides.port, Some(6432));
    assert_eq!(secret.overrides.host, None);
    assert_eq!(secret.ttl, Duration::from_secs(300));
    assert_eq!(secret.timeout, Duration::from_secs(5));
    // The host is only known from the secret: RDS, so verify-full.
    assert_eq!(s.sslmode, SslMode::VerifyFull);
    assert_eq!(s.credentials.describe(), "secret prod/db");

    let err = settings(&[("PGWARM_AUTH", "secret")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("PGWARM_SECRET_ID"), "{err}");
    let err = settings(&[("PGWARM_SECRET_ID", "x"), ("PGWARM_SECRET_TTL", "0")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("PGWARM_SECRET_TTL"), "{err}");
    let mut static_login = BASE.to_vec();
    static_login.push(("PGWARM_AUTH", "password"));
    static_login.push(("PGWARM_SECRET_ID", "ignored"));
    assert!(matches!(
        settings(&static_login).unwrap().credentials,
        CredentialSettings::Static(_)
    ));
}

#[test]
fn iam_needs_host_user_and_tls_and_no_password() {
    let iam = [
        ("PGWARM_AUTH", "iam"),
        ("PGWARM_DB_HOST", "db.example.com"),
        ("PGWARM_DB_USER", "app"),
    ];
    let s = settings(&iam).unwrap();
    assert!(matches!(s.credentials, CredentialSettings::Iam { .. }));
    assert_eq!(s.sslmode, SslMode::VerifyFull);
    let local = settings(&[
        ("PGWARM_AUTH", "iam"),
        ("PGWARM_DB_HOST", "127.0.0.1"),
        ("PGWARM_DB_USER", "app"),
    ])
    .unwrap();
    assert_eq!(
        local.sslmode,
        SslMode::Require,
        "never prefer: no token in clear"
    );
    let mut plain = iam.to_vec();
    plain.push(("PGWARM_SSLMODE", "disable"));
    let err = settings(&plain).unwrap_err().to_string();
    assert!(
        err.contains("PGWARM_SSLMODE") && err.contains("TLS only"),
        "{err}"
    );
    let mut with_password = iam.to_vec();
    with_password.push(("PGWARM_DB_PASSWORD", "hunter2"));
    let err = settings(&with_password).unwrap_err().to_string();
    assert!(
        err.contains("PGWARM_DB_PASSWORD") && !err.contains("hunter2"),
        "{err}"
    );
    let err = settings(&iam[..2]).unwrap_err().to_string();
    assert!(err.contains("PGWARM_DB_USER"), "{err}");
}

#[test]
fn lambda_defaults_to_json_logs() {
    let mut pairs = BASE.to_vec();
    pairs.push(("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"));
    assert_eq!(settings(&pairs).unwrap().log_format, LogFormat::Json);
}

#[test]
fn metrics_and_stats_settings_name_their_variable_when_bad() {
    let s = settings(&BASE).unwrap();
    assert_eq!(s.stats_period, Duration::from_secs(60));
    let metrics = s.metrics.expect("metrics are on by default");
    assert_eq!(metrics.namespace, "pgwarm");
    assert_eq!(metrics.interval, Duration::from_secs(60));
    let with = |k: &'static str, v: &'static str| {
        let mut pairs = BASE.to_vec();
        pairs.push((k, v));
        settings(&pairs)
    };
    assert_eq!(with("PGWARM_METRICS", "off").unwrap().metrics, None);
    for (variable, value) in [
        ("PGWARM_METRICS", "maybe"),
        ("PGWARM_METRICS_NAMESPACE", "has space"),
        ("PGWARM_METRICS_NAMESPACE", ""),
        ("PGWARM_METRICS_INTERVAL", "0"),
        ("PGWARM_STATS_PERIOD", "soon"),
    ] {
        let e = with(variable, value).unwrap_err();
        assert!(
            e.to_string().starts_with(variable),
            "{variable}={value:?}: {e}"
        );
    }
}

/// `Env` reads only rows of the table (a debug assertion), and here the other way round: every
/// row is read by some configuration, so the table holds no variable pgwarm has stopped reading.
#[test]
fn the_variables_read_are_the_tables() {
    let asked = RefCell::new(BTreeSet::new());
    let lambda_with_a_secret = [
        ("PGWARM_SECRET_ID", "prod/db"),
        ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "lambda-managed-instances"),
        ("AWS_LAMBDA_MAX_CONCURRENCY", "8"),
    ];
    let with_a_reader = [
        ("PGWARM_DB_HOST", "127.0.0.1"),
        ("PGWARM_DB_USER", "app"),
        ("PGWARM_READER_LISTEN", "127.0.0.1:5433"),
        ("PGWARM_READER_HOST", "replica"),
    ];
    for pairs in [&BASE[..], &lambda_with_a_secret[..], &with_a_reader[..]] {
        let map: HashMap<&str, &str> = pairs.iter().copied().collect();
        Settings::from_lookup(|name| {
            asked.borrow_mut().insert(name.to_owned());
            map.get(name).map(|v| v.to_string())
        })
        .unwrap();
    }
    let rows = table::SETTINGS.iter().map(|s| s.name);
    let lambda = Lambda::ALL.map(Lambda::name);
    let listed: BTreeSet<String> = rows.chain(lambda).map(String::from).collect();
    assert_eq!(asked.into_inner(), listed);
}

#[test]
fn each_variable_has_one_row() {
    let mut seen = BTreeSet::new();
    for row in table::SETTINGS {
        assert!(row.name.starts_with("PGWARM_"), "{}", row.name);
        assert!(seen.insert(row.name), "{} has two rows", row.name);
    }
}

#[test]
fn several_hosts_and_which_servers_will_do() {
    let s = settings(&BASE).unwrap();
    assert_eq!(s.target_session_attrs, SessionAttrs::ReadWrite);
    assert_eq!(s.hosts.len(), 1);

    let pairs = [
        ("PGWARM_DB_HOST", "db-a, db-b"),
        ("PGWARM_DB_PORT", "5433,5434"),
        ("PGWARM_DB_USER", "app"),
        ("PGWARM_TARGET_SESSION_ATTRS", "prefer-standby"),
    ];
    let s = settings(&pairs).unwrap();
    assert_eq!(s.target_session_attrs, SessionAttrs::PreferStandby);
    let hosts: Vec<(&str, Option<u16>)> =
        s.hosts.iter().map(|h| (h.host.as_str(), h.port)).collect();
    assert_eq!(hosts, [("db-a", Some(5433)), ("db-b", Some(5434))]);
    let CredentialSettings::Static(target) = &s.credentials else {
        panic!("a static login");
    };
    assert_eq!((target.host.as_str(), target.port), ("db-a", 5433));

    let mut pairs = BASE.to_vec();
    pairs.push(("PGWARM_TARGET_SESSION_ATTRS", "writer"));
    let err = settings(&pairs).unwrap_err().to_string();
    assert!(
        err.contains("PGWARM_TARGET_SESSION_ATTRS") && err.contains("writer"),
        "{err}"
    );

    let iam = [
        ("PGWARM_AUTH", "iam"),
        ("PGWARM_DB_HOST", "db-a,db-b"),
        ("PGWARM_DB_USER", "app"),
        ("PGWARM_SSLMODE", "require"),
    ];
    let err = settings(&iam).unwrap_err().to_string();
    assert!(
        err.contains("PGWARM_DB_HOST") && err.contains("one host"),
        "{err}"
    );
}

#[test]
fn the_reader_port_needs_its_replicas() {
    assert_eq!(settings(&BASE).unwrap().reader, None);
    let mut pairs = BASE.to_vec();
    pairs.extend([
        ("PGWARM_READER_LISTEN", "127.0.0.1:5433"),
        ("PGWARM_READER_HOST", "r1,r2"),
        ("PGWARM_READER_PORT", "6001,6002"),
        ("PGWARM_READER_FALLBACK", "off"),
    ]);
    let reader = settings(&pairs).unwrap().reader.expect("a reader port");
    assert_eq!(reader.listen, "127.0.0.1:5433".parse().unwrap());
    let hosts: Vec<(&str, Option<u16>)> = reader
        .hosts
        .iter()
        .map(|h| (h.host.as_str(), h.port))
        .collect();
    assert_eq!(hosts, [("r1", Some(6001)), ("r2", Some(6002))]);
    assert!(!reader.fallback);

    let mut pairs = BASE.to_vec();
    pairs.push(("PGWARM_READER_LISTEN", "127.0.0.1:5433"));
    let err = settings(&pairs).unwrap_err().to_string();
    assert!(err.contains("PGWARM_READER_HOST"), "{err}");
    let mut pairs = BASE.to_vec();
    pairs.push(("PGWARM_READER_HOST", "r1"));
    let err = settings(&pairs).unwrap_err().to_string();
    assert!(
        err.contains("PGWARM_READER_HOST") && err.contains("PGWARM_READER_LISTEN"),
        "{err}"
    );
    let mut pairs = BASE.to_vec();
    pairs.extend([
        ("PGWARM_READER_LISTEN", "5433"),
        ("PGWARM_READER_HOST", "r1"),
    ]);
    let err = settings(&pairs).unwrap_err().to_string();
    assert!(
        err.contains("PGWARM_READER_LISTEN") && err.contains("5433"),
        "{err}"
    );
}

#[test]
fn behind_a_pooler_any_server_will_do_and_iam_has_no_reader_port() {
    let mut pairs = BASE.to_vec();
    pairs.push(("PGWARM_UPSTREAM_POOLER", "on"));
    assert_eq!(
        settings(&pairs).unwrap().target_session_attrs,
        SessionAttrs::Any
    );
    pairs.push(("PGWARM_TARGET_SESSION_ATTRS", "read-write"));
    assert_eq!(
        settings(&pairs).unwrap().target_session_attrs,
        SessionAttrs::ReadWrite
    );

    let iam = [
        ("PGWARM_AUTH", "iam"),
        ("PGWARM_DB_HOST", "db"),
        ("PGWARM_DB_USER", "app"),
        ("PGWARM_SSLMODE", "require"),
        ("PGWARM_READER_LISTEN", "127.0.0.1:5433"),
        ("PGWARM_READER_HOST", "replica"),
    ];
    let err = settings(&iam).unwrap_err().to_string();
    assert!(
        err.contains("PGWARM_READER_LISTEN") && err.contains("iam"),
        "{err}"
    );
}
