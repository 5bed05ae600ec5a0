//! `PGWARM_SSLMODE=require` against a database that does not offer TLS (this test binary's
//! cluster has `ssl = off`): the client is told why, and `prefer` falls back to plain text.

use pgwarm_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_against_a_database_without_tls_fails_clearly_and_prefer_falls_back() {
    let db = cluster().fresh_target();
    let strict = Pgwarm::start(&db, &[("PGWARM_SSLMODE", "require")]);
    let err = strict
        .target()
        .try_connect()
        .await
        .expect_err("the login must fail");
    let dberr = err.as_db_error().expect("a database error");
    assert_eq!(dberr.code().code(), "08006", "{dberr:?}");
    assert!(
        dberr
            .message()
            .contains("does not accept TLS connections, and PGWARM_SSLMODE=require"),
        "{dberr:?}"
    );
    let lenient = Pgwarm::start(&db, &[("PGWARM_SSLMODE", "prefer")]);
    let client = lenient.target().connect().await;
    let ssl: bool = client
        .query_one(
            "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        !ssl,
        "prefer connects in plain text when TLS is not offered"
    );
}
