//! Bad input never breaks anything but the client that sent it: garbage, unknown startup codes,
//! malformed and oversized messages each get an 08P01 ErrorResponse and a closed socket, while
//! other clients carry on. Configuration errors name the variable; secrets never reach the log.

use pgwarm_tests::*;
use postgres_protocol::message::backend::Message;
use std::time::Duration;

/// A client in the middle of a transaction, to prove bad neighbours do not disturb it.
async fn bystander(pgwarm: &Pgwarm) -> tokio_postgres::Client {
    let client = pgwarm.target().connect().await;
    client
        .batch_execute(
            "create table if not exists calm (n int); begin; insert into calm values (1)",
        )
        .await
        .unwrap();
    client
}

async fn bystander_commits(client: &tokio_postgres::Client) {
    client
        .batch_execute("insert into calm values (2); commit")
        .await
        .unwrap();
    let n: i64 = client
        .query_one("select count(*) from calm", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
}

#[tokio::test]
async fn garbage_instead_of_a_startup_packet_is_refused() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[]);
    let calm = bystander(&pgwarm).await;

    let mut http = Wire::connect(pgwarm.addr());
    http.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let err = http.expect_error();
    assert_eq!(
        (err.severity.as_str(), err.code.as_str()),
        ("FATAL", "08P01"),
        "{err:?}"
    );
    assert!(http.is_closed());

    // Protocol 2.0 and an unknown code.
    for code in [0x0002_0000u32, 0x1234_5678] {
        let mut old = Wire::connect(pgwarm.addr());
        let mut packet = 8u32.to_be_bytes().to_vec();
        packet.extend_from_slice(&code.to_be_bytes());
        old.send(&packet);
        let err = old.expect_error();
        assert_eq!(err.code, "08P01", "{err:?}");
        assert!(
            err.message.contains("unsupported frontend protocol"),
            "{err:?}"
        );
        assert!(old.is_closed());
    }

    // A startup packet that claims to be enormous.
    let mut huge = Wire::connect(pgwarm.addr());
    huge.send(&0x7fff_ffffu32.to_be_bytes());
    assert_eq!(huge.expect_error().code, "08P01");

    bystander_commits(&calm).await;
}

#[tokio::test]
async fn a_malformed_message_after_login_closes_only_that_client() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[]);
    let calm = bystander(&pgwarm).await;

    // An unknown message type.
    let (mut wire, _) = Wire::login(pgwarm.addr(), &db.user, &db.dbname);
    wire.send(&raw_message(b'!', b"nonsense"));
    let err = wire.expect_error();
    assert_eq!(
        (err.severity.as_str(), err.code.as_str()),
        ("FATAL", "08P01")
    );
    assert!(
        err.message.contains("invalid frontend message type"),
        "{err:?}"
    );
    assert!(wire.is_closed());

    // A Sync with a body, and a length smaller than the header.
    for bad in [raw_message(b'S', b"xx"), vec![b'Q', 0, 0, 0, 2]] {
        let (mut wire, _) = Wire::login(pgwarm.addr(), &db.user, &db.dbname);
        wire.send(&bad);
        assert_eq!(wire.expect_error().code, "08P01");
        assert!(wire.is_closed());
    }

    // Garbage in the middle of a session that already ran a query.
    let (mut wire, _) = Wire::login(pgwarm.addr(), &db.user, &db.dbname);
    let answer = wire.query("select 1");
    assert!(answer.iter().any(|m| matches!(m, Message::DataRow(_))));
    wire.send(&[0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x02]);
    assert_eq!(wire.expect_error().code, "08P01");
    assert!(wire.is_closed());

    bystander_commits(&calm).await;
    // The pool is intact: a new client works.
    let fresh = pgwarm.target().connect().await;
    fresh.simple_query("select 1").await.unwrap();
}

#[tokio::test]
async fn a_message_over_the_configured_maximum_is_refused() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_MAX_MESSAGE_SIZE", "1000")]);
    let calm = bystander(&pgwarm).await;
    let (mut wire, _) = Wire::login(pgwarm.addr(), &db.user, &db.dbname);
    let mut sql = format!("select '{}'", "x".repeat(2000)).into_bytes();
    sql.push(0);
    wire.send(&raw_message(b'Q', &sql));
    let err = wire.expect_error();
    assert_eq!(err.code, "08P01", "{err:?}");
    assert!(err.message.contains("PGWARM_MAX_MESSAGE_SIZE"), "{err:?}");
    assert!(wire.is_closed());
    // Below the limit is fine.
    let (mut wire, _) = Wire::login(pgwarm.addr(), &db.user, &db.dbname);
    let answer = wire.query(&format!("select '{}'", "x".repeat(500)));
    assert!(answer.iter().any(|m| matches!(m, Message::DataRow(_))));
    bystander_commits(&calm).await;
}

#[test]
fn configuration_errors_name_the_variable_and_value() {
    let db = cluster().fresh_target();
    let cases = [
        ("PGWARM_POOL_SIZE", "plenty"),
        ("PGWARM_QUERY_WAIT_TIMEOUT", "a while"),
        ("PGWARM_POOL_MODE", "statement"),
        ("PGWARM_LISTEN", "not-an-address"),
        ("PGWARM_LOG_FORMAT", "xml"),
    ];
    for (variable, value) in cases {
        let (status, log) = Pgwarm::builder(&db).env(variable, value).run_to_exit();
        assert_eq!(status.code(), Some(2), "{variable}: {log}");
        assert!(
            log.contains(variable) && log.contains(value),
            "{variable}: {log}"
        );
        assert!(
            !log.contains(&db.password),
            "the database password reached the log"
        );
    }
    let (status, log) = Pgwarm::builder(&db)
        .env_remove("PGWARM_DB_HOST")
        .run_to_exit();
    assert_eq!(status.code(), Some(2));
    assert!(log.contains("PGWARM_DB_HOST"), "{log}");
}

#[tokio::test]
async fn an_unreachable_database_is_a_clear_error_for_the_client() {
    let db = cluster().fresh_target();
    let mut nowhere = db.clone();
    nowhere.port = free_port();
    // pgwarm waits out a database that refuses connections, for the client's whole wait.
    let pgwarm = Pgwarm::start(
        &nowhere,
        &[
            ("PGWARM_CONNECT_TIMEOUT", "1s"),
            ("PGWARM_QUERY_WAIT_TIMEOUT", "1s"),
        ],
    );
    let err = pgwarm.target().try_connect().await.expect_err("refused");
    assert_eq!(sqlstate(&err), "08006", "{err:?}");
    assert!(format!("{err:?}").contains("could not connect"), "{err:?}");

    // A wrong database password keeps the database's own SQLSTATE.
    let mut wrong = db.clone();
    wrong.password = "not-the-password".into();
    let pgwarm = Pgwarm::start(&wrong, &[]);
    let err = pgwarm.target().try_connect().await.expect_err("refused");
    assert_eq!(sqlstate(&err), "28P01", "{err:?}");
    let log = pgwarm.wait_for_log("could not open a server connection", Duration::from_secs(5));
    assert!(
        !log.contains("not-the-password"),
        "a password reached the log"
    );
}
