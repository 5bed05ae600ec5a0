//! Quick checks of the shared harness itself (no pgwarm process involved).

use std::path::Path;
use std::time::Duration;

use pgwarm_tests::{
    cluster, find_pgwarm_bin, free_port, tool, try_tool, DelayRelay, Moto, Pgbouncer, Target,
};

#[test]
fn cluster_starts_and_answers_as_superuser() {
    let c = cluster();
    assert!(c.port > 0);
    assert!(
        c.bindir.join("initdb").is_file(),
        "bindir {}",
        c.bindir.display()
    );
    assert_eq!(c.psql_super("SELECT 1"), "1");
    assert_eq!(c.psql_super("SHOW password_encryption"), "scram-sha-256");
    assert_eq!(c.psql_super("SHOW max_connections"), "300");
    // Nothing in pg_hba.conf allows trust.
    assert_eq!(
        c.psql_super("SELECT count(*) FROM pg_hba_file_rules WHERE auth_method = 'trust'"),
        "0"
    );
    eprintln!("cluster startup took {:?}", c.startup_time);
}

#[tokio::test]
async fn fresh_target_connects_with_scram() {
    let c = cluster();
    let t = c.fresh_target();
    let (t2, t3) = (c.fresh_target(), c.fresh_target());
    assert_ne!(t.user, t2.user);
    assert_ne!(t2.user, t3.user);
    assert_eq!(t.user, t.dbname);
    let stored = c.psql_super(&format!(
        "SELECT left(rolpassword, 14) FROM pg_authid WHERE rolname = '{}'",
        t.user
    ));
    assert_eq!(stored, "SCRAM-SHA-256$");

    let client = t.connect().await;
    let row = client
        .query_one(
            "SELECT 1::int4, current_user::text, current_database()::text",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
    assert_eq!(row.get::<_, String>(1), t.user);
    assert_eq!(row.get::<_, String>(2), t.dbname);

    // A wrong password is refused.
    let mut bad = t.clone();
    bad.password.push('x');
    let err = bad
        .try_connect()
        .await
        .expect_err("wrong password must fail");
    assert!(
        format!("{err:?}").contains("28P01"),
        "unexpected error: {err:?}"
    );

    // psql through the same target.
    assert_eq!(t.psql_ok("SELECT 40 + 2"), "42");
}

#[tokio::test]
async fn set_auth_method_md5_and_back() {
    let c = cluster();
    let t = c.fresh_target();
    c.set_auth_method(&t.user, "md5");

    let stored = c.psql_super(&format!(
        "SELECT left(rolpassword, 3) FROM pg_authid WHERE rolname = '{}'",
        t.user
    ));
    assert_eq!(stored, "md5");
    let rules = c.psql_super(
        "SELECT line_number || ' ' || array_to_string(user_name, ',') || ' ' || auth_method FROM pg_hba_file_rules ORDER BY line_number",
    );
    let lines: Vec<&str> = rules.lines().collect();
    let ours = lines
        .iter()
        .position(|l| l.ends_with(&format!(" {} md5", t.user)));
    let generic = lines.iter().position(|l| l.ends_with(" all scram-sha-256"));
    assert!(
        matches!((ours, generic), (Some(o), Some(g)) if o < g),
        "md5 rule for {} must come before the generic rule:\n{rules}",
        t.user
    );
    let client = t.connect().await;
    assert_eq!(
        client
            .query_one("SELECT 1::int4", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );

    // Switching again replaces the role's line instead of adding one.
    c.set_auth_method(&t.user, "password");
    c.set_auth_method(&t.user, "scram-sha-256");
    let n = c.psql_super(&format!(
        "SELECT count(*) FROM pg_hba_file_rules WHERE user_name = ARRAY['{}']::text[]",
        t.user
    ));
    assert_eq!(n, "1");
    t.connect().await;
}

#[tokio::test]
async fn backends_for_counts_held_connections() {
    let c = cluster();
    let t = c.fresh_target();
    assert_eq!(c.backends_for(&t.user), 0);
    let client = t.connect().await;
    client.simple_query("SELECT 1").await.unwrap();
    assert_eq!(c.backends_for(&t.user), 1);
    drop(client);
    assert_eq!(c.wait_for_backends(&t.user, 0, Duration::from_secs(5)), 0);

    // terminate_backends_for closes a held connection from the server side.
    let client = t.connect().await;
    assert_eq!(c.terminate_backends_for(&t.user), 1);
    assert_eq!(c.wait_for_backends(&t.user, 0, Duration::from_secs(5)), 0);
    assert!(client.simple_query("SELECT 1").await.is_err());
}

#[test]
fn pgwarm_bin_path_logic() {
    let err = find_pgwarm_bin(Some(Path::new("/nonexistent/pgwarm"))).unwrap_err();
    assert!(err.contains("/nonexistent/pgwarm"), "{err}");
    assert!(
        err.contains("build it with `cargo build --workspace`"),
        "{err}"
    );
    match find_pgwarm_bin(None) {
        Ok(p) => {
            assert!(p.is_file());
            assert_eq!(p.file_name().unwrap(), "pgwarm");
        }
        Err(e) => assert!(e.contains("cargo build --workspace"), "{e}"),
    }
}

#[test]
fn tools_and_ports() {
    assert!(tool("psql").is_file());
    assert!(tool("pgbench").is_file());
    assert!(try_tool("surely-not-a-real-tool-name").is_none());
    let msg = std::panic::catch_unwind(|| tool("pgbouncer-does-not-exist")).unwrap_err();
    let msg = msg.downcast_ref::<String>().unwrap();
    assert!(
        msg.contains("pgbouncer-does-not-exist") && msg.contains("install"),
        "{msg}"
    );
    let (a, b) = (free_port(), free_port());
    assert_ne!(a, b);
    std::net::TcpListener::bind(("127.0.0.1", a)).expect("a free port can be bound");
}

#[tokio::test]
async fn pgbouncer_forwards_to_the_cluster() {
    let c = cluster();
    let t = c.fresh_target();
    let bouncer = Pgbouncer::start(&t, &[]);
    let client = bouncer.target().connect().await;
    let row = client
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), t.user);
    assert_eq!(c.backends_for(&t.user), 1);
    let out = bouncer.admin_target().psql("SHOW POOLS");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        bouncer.log()
    );
}

#[test]
fn moto_serves_secrets() {
    let moto = Moto::start();
    let db = cluster().fresh_target();
    let created = moto.create_secret("pgwarm/test", &Moto::rds_secret_json(&db));
    assert!(created.contains("\"ARN\""), "{created}");
    let got = moto.call("GetSecretValue", r#"{"SecretId":"pgwarm/test"}"#);
    assert!(got.contains(&db.password), "{got}");
    moto.put_secret_value("pgwarm/test", "{}");
    assert!(moto
        .aws_env()
        .iter()
        .any(|(k, v)| *k == "AWS_ENDPOINT_URL" && *v == moto.endpoint()));
}

/// The delay relay puts its round trip between client and server: a login through it and a
/// query on the connection each take at least that long, and no more than a bounded margin.
#[tokio::test]
async fn the_delay_relay_adds_its_round_trip() {
    let db = cluster().fresh_target();
    let upstream = format!("127.0.0.1:{}", db.port).parse().unwrap();
    let relay = DelayRelay::start(upstream, Duration::from_millis(20));
    let far = Target {
        port: relay.addr.port(),
        ..db.clone()
    };
    let began = std::time::Instant::now();
    let client = far.connect().await;
    let login = began.elapsed();
    // The TCP handshake's round trip, then the startup and SCRAM exchanges: three at least.
    assert!(login >= Duration::from_millis(60), "login took {login:?}");
    let began = std::time::Instant::now();
    client.simple_query("SELECT 1").await.unwrap();
    let query = began.elapsed();
    assert!(
        query >= Duration::from_millis(20) && query < Duration::from_millis(500),
        "a query took {query:?}"
    );
}
