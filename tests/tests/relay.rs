//! Through pgwarm, every protocol path a driver uses: simple and extended queries, pipelining,
//! COPY both ways with identical bytes, cancel, errors inside transactions, session mode with
//! notifications and reset, and the login checks (database name, client SCRAM, server auth
//! methods).

use futures_util::{SinkExt, StreamExt, TryStreamExt};
use pgwarm_tests::*;
use std::time::{Duration, Instant};
use tokio_postgres::types::Type;
use tokio_postgres::{AsyncMessage, NoTls, SimpleQueryMessage};

fn simple_values(messages: &[SimpleQueryMessage]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn simple_and_extended_queries_work() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[]);
    let client = pgwarm.target().connect().await;

    // Several statements in one Query message.
    let rows = client
        .simple_query("select 1; select 'two'; select 3")
        .await
        .unwrap();
    assert_eq!(simple_values(&rows), ["1", "two", "3"]);

    // Extended protocol with parameters (unnamed statement).
    let rows = client
        .query_typed(
            "select $1::int8 * 2, $2::text || '!'",
            &[(&21i64, Type::INT8), (&"hi", Type::TEXT)],
        )
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 42);
    assert_eq!(rows[0].get::<_, String>(1), "hi!");

    // psql: a whole session through pgwarm.
    assert_eq!(pgwarm.target().psql_ok("select 41 + 1"), "42");
}

#[tokio::test]
async fn pipelined_queries_return_in_order() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "2")]);
    let client = pgwarm.target().connect().await;
    // tokio-postgres writes all of these before reading any answer: one pipeline, many Syncs.
    let futures = (0..100i64).map(|i| {
        let client = &client;
        async move {
            let rows = client
                .query_typed("select $1::int8 + 1000", &[(&i, Type::INT8)])
                .await
                .unwrap();
            rows[0].get::<_, i64>(0)
        }
    });
    let results = futures_util::future::join_all(futures).await;
    assert_eq!(results, (0..100).map(|i| i + 1000).collect::<Vec<i64>>());
}

/// 10 MB of text lines, every byte value that COPY text can carry without escaping.
fn ten_megabytes() -> Vec<u8> {
    let mut data = Vec::with_capacity(10 << 20);
    let mut i = 0u64;
    while data.len() < 10 << 20 {
        data.extend_from_slice(
            format!("{i}\tline {i} {}\n", "x".repeat((i % 97) as usize)).as_bytes(),
        );
        i += 1;
    }
    data
}

#[tokio::test]
async fn copy_in_and_out_with_psql_keeps_every_byte() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[]);
    let through = pgwarm.target();
    let dir = TempDir::new("pgwarm-copy");
    let input = dir.path().join("in.tsv");
    let output = dir.path().join("out.tsv");
    let data = ten_megabytes();
    std::fs::write(&input, &data).unwrap();

    through.psql_ok("create table copied (n bigint primary key, line text)");
    through.psql_ok(&format!("\\copy copied from '{}'", input.display()));
    through.psql_ok(&format!(
        "\\copy (select * from copied order by n) to '{}'",
        output.display()
    ));
    let back = std::fs::read(&output).unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "COPY round trip changed the bytes");
}

#[tokio::test]
async fn copy_in_and_out_with_the_extended_protocol_keeps_every_byte() {
    let db = cluster().fresh_target();
    // One server connection, so the driver's named COPY statements meet the connection that
    // prepared them (named statements across connections come with prepared-statement support).
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "1")]);
    let client = pgwarm.target().connect().await;
    client
        .batch_execute("create table copied (n bigint primary key, line text)")
        .await
        .unwrap();
    let data = ten_megabytes();

    let sink = client.copy_in("copy copied from stdin").await.unwrap();
    futures_util::pin_mut!(sink);
    for chunk in data.chunks(64 * 1024) {
        sink.send(bytes::Bytes::copy_from_slice(chunk))
            .await
            .unwrap();
    }
    let rows = sink.finish().await.unwrap();
    assert!(rows > 100_000, "copied {rows} rows");

    let stream = client
        .copy_out("copy (select * from copied order by n) to stdout")
        .await
        .unwrap();
    let chunks: Vec<bytes::Bytes> = stream.try_collect().await.unwrap();
    let back: Vec<u8> = chunks.concat();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "COPY round trip changed the bytes");

    // The connection is usable afterwards: the COPY ended at the right ReadyForQuery.
    let n: i64 = client
        .query_one("select count(*) from copied", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n as u64, rows);
}

#[tokio::test]
async fn a_cancel_request_stops_pg_sleep_within_a_second() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[]);
    let client = pgwarm.target().connect().await;
    let token = client.cancel_token();
    let sleeper = tokio::spawn(async move { client.simple_query("select pg_sleep(30)").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cancelled_at = Instant::now();
    token.cancel_query(NoTls).await.unwrap();
    let result = tokio::time::timeout(Duration::from_secs(5), sleeper)
        .await
        .expect("the query ended")
        .unwrap();
    let elapsed = cancelled_at.elapsed();
    let err = result.expect_err("a cancelled query fails");
    assert_eq!(sqlstate(&err), "57014", "{err}");
    assert!(elapsed < Duration::from_secs(1), "cancel took {elapsed:?}");
}

#[tokio::test]
async fn a_cancel_for_a_client_without_a_server_connection_does_nothing() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[]);
    let (mut idle, key) = Wire::login(pgwarm.addr(), &db.user, &db.dbname);
    let other = pgwarm.target().connect().await;
    let busy =
        tokio::spawn(async move { other.simple_query("select 'done' from pg_sleep(0.5)").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The idle client's key: nothing to cancel, and the other client's query is not touched.
    send_cancel(pgwarm.addr(), key.0, key.1);
    let rows = busy
        .await
        .unwrap()
        .expect("the other client's query was not cancelled");
    assert_eq!(simple_values(&rows), ["done"]);
    // The idle client itself carries on.
    let answer = idle.query("select 'still here'");
    assert!(answer
        .iter()
        .any(|m| matches!(m, postgres_protocol::message::backend::Message::DataRow(_))));
    pgwarm.wait_for_log("holds no server connection", Duration::from_secs(5));
}

#[tokio::test]
async fn an_error_inside_a_transaction_then_rollback() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[]);
    let client = pgwarm.target().connect().await;
    client
        .batch_execute("create table t (n int)")
        .await
        .unwrap();
    client
        .batch_execute("begin; insert into t values (1)")
        .await
        .unwrap();
    let err = client.simple_query("select 1/0").await.unwrap_err();
    assert_eq!(sqlstate(&err), "22012");
    let err = client.simple_query("select 1").await.unwrap_err();
    assert_eq!(
        sqlstate(&err),
        "25P02",
        "the transaction is aborted until ROLLBACK"
    );
    client.batch_execute("rollback").await.unwrap();
    let n: i64 = client
        .query_typed("select count(*) from t", &[])
        .await
        .unwrap()[0]
        .get(0);
    assert_eq!(n, 0);
    // An error outside a transaction leaves the session usable.
    assert_eq!(
        sqlstate(&client.simple_query("select nope").await.unwrap_err()),
        "42703"
    );
    assert_eq!(
        simple_values(&client.simple_query("select 'ok'").await.unwrap()),
        ["ok"]
    );
}

#[tokio::test]
async fn session_mode_relays_notifications_and_resets_on_leave() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(
        &db,
        &[("PGWARM_POOL_MODE", "session"), ("PGWARM_POOL_SIZE", "2")],
    );
    let target = pgwarm.target();

    let (listener, mut connection) = tokio_postgres::connect(&target.conn_string(), NoTls)
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(n) = message {
                let _ = tx.send((n.channel().to_owned(), n.payload().to_owned()));
            }
        }
    });
    listener
        .batch_execute("listen pgwarm_events")
        .await
        .unwrap();
    let notifier = target.connect().await;
    notifier
        .batch_execute("notify pgwarm_events, 'hello'")
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a notification arrives")
        .unwrap();
    assert_eq!(got, ("pgwarm_events".to_owned(), "hello".to_owned()));
    drop(listener);
    let _ = driver.await;
    drop(notifier);

    // Session state lives as long as the client; DISCARD ALL clears it for the next one.
    let pgwarm = Pgwarm::start(
        &db,
        &[("PGWARM_POOL_MODE", "session"), ("PGWARM_POOL_SIZE", "1")],
    );
    let first = pgwarm.target().connect().await;
    first
        .batch_execute("set work_mem = '1234kB'; create temp table scratch (n int)")
        .await
        .unwrap();
    let pid: i32 = first
        .query_typed("select pg_backend_pid()", &[])
        .await
        .unwrap()[0]
        .get(0);
    let shown = simple_values(&first.simple_query("show work_mem").await.unwrap());
    assert_eq!(shown, ["1234kB"]);
    drop(first);
    // Its first query waits in the queue while the reset runs on the only connection.
    let second = pgwarm.target().connect().await;
    let pid2: i32 = second
        .query_typed("select pg_backend_pid()", &[])
        .await
        .unwrap()[0]
        .get(0);
    assert_eq!(pid, pid2, "the one server connection was reused");
    assert_eq!(
        simple_values(&second.simple_query("show work_mem").await.unwrap()),
        ["4MB"]
    );
    let err = second
        .simple_query("select * from scratch")
        .await
        .unwrap_err();
    assert_eq!(
        sqlstate(&err),
        "42P01",
        "the temp table is gone after DISCARD ALL"
    );
}

#[tokio::test]
async fn another_database_name_is_refused_with_3d000() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[]);
    let mut wrong = pgwarm.target();
    wrong.dbname = "not_this_one".into();
    let err = wrong.try_connect().await.expect_err("refused");
    assert_eq!(sqlstate(&err), "3D000", "{err}");
    assert!(format!("{err:?}").contains("not_this_one"), "{err:?}");
}

#[tokio::test]
async fn clients_authenticate_with_scram_when_a_client_password_is_set() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_CLIENT_PASSWORD", "open sesame")]);
    let mut good = pgwarm.target();
    good.password = "open sesame".into();
    let client = good.connect().await;
    assert_eq!(
        simple_values(&client.simple_query("select 'in'").await.unwrap()),
        ["in"]
    );
    assert_eq!(good.psql_ok("select 'psql in'"), "psql in");

    let mut bad = good.clone();
    bad.password = "guess".into();
    let err = bad.try_connect().await.expect_err("refused");
    assert_eq!(sqlstate(&err), "28P01", "{err}");
    let log = pgwarm.log();
    assert!(
        !log.contains("open sesame") && !log.contains(&db.password),
        "a password reached the log"
    );
}

#[tokio::test]
async fn pgwarm_logs_in_with_md5_cleartext_and_trust() {
    for method in ["md5", "password", "trust"] {
        let db = cluster().fresh_target();
        cluster().set_auth_method(&db.user, method);
        let pgwarm = Pgwarm::start(&db, &[]);
        let client = pgwarm.target().connect().await;
        let rows = client.simple_query("select current_user").await.unwrap();
        assert_eq!(
            simple_values(&rows),
            [db.user.as_str()],
            "auth method {method}"
        );
    }
}

#[test]
fn encryption_requests_are_declined_and_the_login_continues() {
    use postgres_protocol::message::backend::Message;
    use std::io::Read;
    let db = cluster().fresh_target();
    // With client TLS off; tests/client_tls.rs covers the 'S' answer.
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_CLIENT_TLS", "off")]);
    let mut wire = Wire::connect(pgwarm.addr());
    // GSSENCRequest, then SSLRequest, as libpq sends them with gssencmode/sslmode=prefer.
    for code in [80_877_104u32, 80_877_103] {
        let mut packet = 8u32.to_be_bytes().to_vec();
        packet.extend_from_slice(&code.to_be_bytes());
        wire.send(&packet);
        let mut answer = [0u8; 1];
        wire.stream.read_exact(&mut answer).unwrap();
        assert_eq!(&answer, b"N", "request {code}");
    }
    let mut startup = bytes::BytesMut::new();
    postgres_protocol::message::frontend::startup_message(
        [("user", db.user.as_str()), ("database", db.dbname.as_str())],
        &mut startup,
    )
    .unwrap();
    wire.send(&startup);
    loop {
        match wire.read() {
            Some(Message::ReadyForQuery(_)) => break,
            Some(Message::ErrorResponse(body)) => panic!("{:?}", pgwarm_tests::wire_error(&body)),
            Some(_) => {}
            None => panic!("closed during login"),
        }
    }
    let answer = wire.query("select 'plain text it is'");
    assert!(answer.iter().any(|m| matches!(m, Message::DataRow(_))));
}
