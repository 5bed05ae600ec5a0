//! TLS from pgwarm to the database (`PGWARM_SSLMODE`, `PGWARM_SSLROOTCERT`), against this test
//! binary's cluster serving TLS with a certificate for "localhost" issued by a CA made in the
//! test: verify-full passes with that CA and fails, with a clear error, for another host name and
//! for the embedded Amazon RDS bundle; verify-ca and require pass without checking the name or
//! the CA; disable fails against a role only allowed over TLS; large messages cross the TLS link
//! both ways.

use pgwarm_tests::*;
use std::sync::OnceLock;

/// The cluster serves TLS from the first call on; the CA that issued its certificate.
fn tls_cluster() -> &'static TestCerts {
    static CERTS: OnceLock<TestCerts> = OnceLock::new();
    CERTS.get_or_init(|| {
        let certs = TestCerts::new(&["localhost"]);
        cluster().enable_ssl(&certs);
        certs
    })
}

/// pgwarm in front of a fresh database, reaching it as `host` with these TLS settings.
fn pgwarm_with(host: &str, settings: &[(&str, &str)]) -> (Target, Pgwarm) {
    tls_cluster();
    let db = cluster().fresh_target();
    let mut builder = Pgwarm::builder(&db).env("PGWARM_DB_HOST", host);
    for (k, v) in settings {
        builder = builder.env(k, v);
    }
    (db, builder.spawn())
}

/// Whether the server connection that runs the client's query is encrypted.
async fn server_side_ssl(client: &tokio_postgres::Client) -> bool {
    client
        .query_one(
            "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl")
        .get(0)
}

/// The error a client gets when pgwarm cannot open a server connection for it.
async fn login_error(pgwarm: &Pgwarm) -> (String, String) {
    let err = pgwarm
        .target()
        .try_connect()
        .await
        .expect_err("the login must fail");
    let db = err
        .as_db_error()
        .unwrap_or_else(|| panic!("not a database error: {err:?}"));
    (db.code().code().to_owned(), db.message().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_with_the_issuing_ca_connects_encrypted() {
    let ca = tls_cluster().ca_file.display().to_string();
    let (_db, pgwarm) = pgwarm_with(
        "localhost",
        &[
            ("PGWARM_SSLMODE", "verify-full"),
            ("PGWARM_SSLROOTCERT", &ca),
        ],
    );
    let client = pgwarm.target().connect().await;
    assert!(server_side_ssl(&client).await);
    assert!(pgwarm.log().contains("tls=true"), "{}", pgwarm.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_refuses_a_certificate_for_another_host_name() {
    let ca = tls_cluster().ca_file.display().to_string();
    let (_db, pgwarm) = pgwarm_with(
        "127.0.0.1",
        &[
            ("PGWARM_SSLMODE", "verify-full"),
            ("PGWARM_SSLROOTCERT", &ca),
        ],
    );
    let (code, message) = login_error(&pgwarm).await;
    assert_eq!(code, "08006", "{message}");
    assert!(
        message.contains("not valid for the host name \"127.0.0.1\""),
        "{message}"
    );
    let log = pgwarm.wait_for_log(
        "not valid for the host name",
        std::time::Duration::from_secs(5),
    );
    assert!(log.contains("could not open a server connection"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_with_the_embedded_rds_bundle_refuses_the_test_ca() {
    let (_db, pgwarm) = pgwarm_with("localhost", &[("PGWARM_SSLMODE", "verify-full")]);
    let (code, message) = login_error(&pgwarm).await;
    assert_eq!(code, "08006", "{message}");
    assert!(
        message.contains("not issued by a trusted CA") && message.contains("Amazon RDS"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_ca_checks_the_issuer_but_not_the_host_name() {
    let ca = tls_cluster().ca_file.display().to_string();
    let (_db, pgwarm) = pgwarm_with(
        "127.0.0.1",
        &[("PGWARM_SSLMODE", "verify-ca"), ("PGWARM_SSLROOTCERT", &ca)],
    );
    let client = pgwarm.target().connect().await;
    assert!(server_side_ssl(&client).await);
    let (_db, untrusted) = pgwarm_with("127.0.0.1", &[("PGWARM_SSLMODE", "verify-ca")]);
    let (_, message) = login_error(&untrusted).await;
    assert!(message.contains("not issued by a trusted CA"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_and_prefer_encrypt_without_a_ca() {
    for mode in ["require", "prefer"] {
        let (_db, pgwarm) = pgwarm_with("127.0.0.1", &[("PGWARM_SSLMODE", mode)]);
        let client = pgwarm.target().connect().await;
        assert!(server_side_ssl(&client).await, "{mode}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_against_a_role_allowed_over_tls_only_fails_clearly() {
    tls_cluster();
    let db = cluster().fresh_target();
    cluster().require_ssl_for(&db.user);
    let plain = Pgwarm::start(&db, &[("PGWARM_SSLMODE", "disable")]);
    let (code, message) = login_error(&plain).await;
    assert_eq!(code, "28000", "{message}");
    assert!(message.contains("no encryption"), "{message}");
    let encrypted = Pgwarm::start(&db, &[("PGWARM_SSLMODE", "require")]);
    let client = encrypted.target().connect().await;
    assert!(server_side_ssl(&client).await);
}

/// TLS on both legs, to a role the database admits over TLS only: a query runs, and a cancel
/// (sent by the client over TLS, forwarded by pgwarm over TLS) stops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_crosses_both_tls_links() {
    tls_cluster();
    let db = cluster().fresh_target();
    cluster().require_ssl_for(&db.user);
    let pgwarm = Pgwarm::start(
        &db,
        &[("PGWARM_SSLMODE", "require"), ("PGWARM_CLIENT_TLS", "on")],
    );
    let (tls, seen) = tls_without_checks(false);
    let client = pgwarm
        .target()
        .try_connect_tls("sslmode=require", tls)
        .await
        .expect("TLS to pgwarm");
    assert!(server_side_ssl(&client).await);
    assert_eq!(seen.count(), 1);
    let token = client.cancel_token();
    let sleeper = tokio::spawn(async move { client.simple_query("select pg_sleep(30)").await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (tls, _) = tls_without_checks(false);
    token.cancel_query(tls).await.expect("cancel sent");
    let result = tokio::time::timeout(std::time::Duration::from_secs(10), sleeper)
        .await
        .expect("the query ended")
        .expect("task");
    let err = result.expect_err("a cancelled query fails");
    assert_eq!(sqlstate(&err), "57014", "{err}");
    let log = pgwarm.wait_for_log(
        "forwarded cancel request",
        std::time::Duration::from_secs(5),
    );
    assert!(log.contains("forwarded cancel request"), "{log}");
}

/// Megabytes each way through TLS: what rustls buffers when the socket is full must still go out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_messages_cross_the_tls_link_both_ways() {
    let (_db, pgwarm) = pgwarm_with("127.0.0.1", &[("PGWARM_SSLMODE", "require")]);
    let client = pgwarm.target().connect().await;
    exchange_large_messages(&client).await;
}

#[test]
fn an_unreadable_root_certificate_file_stops_pgwarm_naming_the_variable() {
    let db = cluster().fresh_target();
    let (status, log) = Pgwarm::builder(&db)
        .env("PGWARM_SSLMODE", "verify-full")
        .env("PGWARM_SSLROOTCERT", "/nonexistent/ca.pem")
        .run_to_exit();
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(log.contains("PGWARM_SSLROOTCERT"), "{log}");
}
