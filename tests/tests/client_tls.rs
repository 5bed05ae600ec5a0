//! TLS between clients and pgwarm (`PGWARM_CLIENT_TLS`, `PGWARM_CLIENT_TLS_CERT`/`_KEY`):
//! unset, SSLRequest is answered 'N' (libpq's `prefer` falls back to plain text) unless a
//! certificate is configured; with `on`, `sslmode=require` works with the self-signed
//! certificate pgwarm makes at start-up, from tokio-postgres (rustls) and from psql (libpq,
//! OpenSSL); `verify-full` works with a configured certificate and fails against the
//! self-signed one; plain clients still work; `require` refuses plain text; direct TLS needs
//! ALPN; megabytes and cancels cross the encrypted link; bytes sent after SSLRequest never reach
//! the login.

use pgwarm_tests::*;
use std::io::{Read, Write};
use std::time::Duration;

/// `\conninfo` through psql with these libpq variables.
fn psql_conninfo(pgwarm: &Pgwarm, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = pgwarm.target().psql_command();
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.arg("-c")
        .arg("\\conninfo")
        .arg("-c")
        .arg("select 40 + 2");
    output_with_timeout(&mut cmd, None, Duration::from_secs(30))
}

/// pgwarm presenting `certs`' server certificate to its clients.
fn pgwarm_presenting(db: &Target, certs: &TestCerts) -> Pgwarm {
    let cert = certs.server_cert_file.display().to_string();
    let key = certs.server_key_file.display().to_string();
    Pgwarm::start(
        db,
        &[
            ("PGWARM_CLIENT_TLS_CERT", &cert),
            ("PGWARM_CLIENT_TLS_KEY", &key),
        ],
    )
}

/// A tokio-postgres client of `pgwarm` with `sslmode=require`.
async fn tls_client(pgwarm: &Pgwarm) -> tokio_postgres::Client {
    let (tls, _) = tls_without_checks(false);
    pgwarm
        .target()
        .try_connect_tls("sslmode=require", tls)
        .await
        .expect("connect with sslmode=require")
}

/// TLS offered with the self-signed certificate.
const TLS_ON: (&str, &str) = ("PGWARM_CLIENT_TLS", "on");

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_require_works_with_tls_on_and_a_self_signed_certificate() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[TLS_ON]);
    assert!(
        pgwarm.log().contains("self-signed certificate"),
        "{}",
        pgwarm.log()
    );
    let (tls, seen) = tls_without_checks(false);
    let client = pgwarm
        .target()
        .try_connect_tls("sslmode=require", tls)
        .await
        .expect("sslmode=require through pgwarm");
    let rows = simple_rows(&client, "select 40 + 2").await;
    assert_eq!(rows, [["42"]]);
    assert_eq!(seen.count(), 1, "one TLS handshake, one certificate seen");
    let der = seen.last().expect("certificate");
    // Self-signed for the names a local client uses: issuer and subject are the same name.
    let localhost = b"localhost";
    assert!(
        der.windows(localhost.len()).any(|w| w == localhost),
        "the certificate names localhost"
    );
    let second = pgwarm.target().connect().await;
    assert_eq!(simple_rows(&second, "select 1").await, [["1"]]);
}

#[test]
fn psql_with_sslmode_require_connects_over_tls_and_plain_psql_still_works() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[TLS_ON]);
    let tls = psql_conninfo(&pgwarm, &[("PGSSLMODE", "require")]);
    assert!(tls.status.success(), "{}", text(&tls.stderr));
    let out = text(&tls.stdout);
    assert!(out.contains("SSL connection (protocol: TLSv1.3"), "{out}");
    assert!(out.contains("42"), "{out}");
    let plain = psql_conninfo(&pgwarm, &[("PGSSLMODE", "disable")]);
    assert!(plain.status.success(), "{}", text(&plain.stderr));
    let out = text(&plain.stdout);
    assert!(!out.contains("SSL connection"), "{out}");
    assert!(out.contains("42"), "{out}");
}

#[test]
fn verify_full_works_with_a_configured_certificate_and_not_with_the_self_signed_one() {
    let certs = TestCerts::new(&["localhost", "127.0.0.1"]);
    let ca = certs.ca_file.display().to_string();
    let db = cluster().fresh_target();
    let configured = pgwarm_presenting(&db, &certs);
    let verify_full = [("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", ca.as_str())];
    let ok = psql_conninfo(&configured, &verify_full);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert!(text(&ok.stdout).contains("SSL connection"));

    let self_signed = Pgwarm::start(&db, &[TLS_ON]);
    let refused = psql_conninfo(&self_signed, &verify_full);
    assert!(!refused.status.success(), "verify-full must refuse it");
    let err = text(&refused.stderr);
    assert!(err.contains("certificate verify failed"), "{err}");
    let log = self_signed.wait_for_log("TLS handshake failed", Duration::from_secs(5));
    assert!(log.contains("client's TLS handshake failed"), "{log}");
    assert!(
        log.contains("PGWARM_CLIENT_TLS_CERT"),
        "names the setting: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_postgres_verify_full_checks_the_configured_certificate() {
    let certs = TestCerts::new(&["127.0.0.1"]);
    let db = cluster().fresh_target();
    let pgwarm = pgwarm_presenting(&db, &certs);
    let client = pgwarm
        .target()
        .try_connect_tls("sslmode=require", tls_verifying(&certs.ca_file))
        .await
        .expect("the configured certificate verifies");
    assert_eq!(simple_rows(&client, "select 'ok'").await, [["ok"]]);
    let other_ca = TestCerts::new(&["127.0.0.1"]);
    let err = pgwarm
        .target()
        .try_connect_tls("sslmode=require", tls_verifying(&other_ca.ca_file))
        .await
        .expect_err("a certificate from another CA is refused");
    // Both test CAs have the same name, so webpki finds "the" issuer and its signature fails.
    assert!(format!("{err:?}").contains("InvalidCertificate"), "{err:?}");
}

#[test]
fn unset_client_tls_answers_no_and_prefer_falls_back_to_plain_text() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[]);
    assert!(
        !pgwarm.log().contains("self-signed certificate"),
        "{}",
        pgwarm.log()
    );
    let required = psql_conninfo(&pgwarm, &[("PGSSLMODE", "require")]);
    assert!(!required.status.success());
    let err = text(&required.stderr);
    assert!(err.contains("server does not support SSL"), "{err}");
    // The client gave up because of the answer: the log names the setting to change.
    let log = pgwarm.wait_for_log("asked for TLS, was told no", Duration::from_secs(5));
    assert!(log.contains("PGWARM_CLIENT_TLS=on"), "{log}");
    let preferred = psql_conninfo(&pgwarm, &[("PGSSLMODE", "prefer")]);
    assert!(preferred.status.success(), "{}", text(&preferred.stderr));
    assert!(!text(&preferred.stdout).contains("SSL connection"));
}

#[test]
fn client_tls_require_refuses_plain_text_logins() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_CLIENT_TLS", "require")]);
    let plain = psql_conninfo(&pgwarm, &[("PGSSLMODE", "disable")]);
    assert!(!plain.status.success());
    let err = text(&plain.stderr);
    assert!(
        err.contains("pgwarm accepts TLS connections only (PGWARM_CLIENT_TLS=require)"),
        "{err}"
    );
    let tls = psql_conninfo(&pgwarm, &[("PGSSLMODE", "require")]);
    assert!(tls.status.success(), "{}", text(&tls.stderr));
    assert!(text(&tls.stdout).contains("SSL connection"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_tls_connects_when_the_client_offers_the_postgresql_alpn() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[TLS_ON]);
    let direct = "sslmode=require sslnegotiation=direct";
    let (tls, seen) = tls_without_checks(true);
    let client = pgwarm
        .target()
        .try_connect_tls(direct, tls)
        .await
        .expect("direct TLS with ALPN");
    assert_eq!(simple_rows(&client, "select 7 * 6").await, [["42"]]);
    assert_eq!(seen.count(), 1);

    let (no_alpn, _) = tls_without_checks(false);
    pgwarm
        .target()
        .try_connect_tls(direct, no_alpn)
        .await
        .expect_err("direct TLS without ALPN is refused");
    let log = pgwarm.wait_for_log("without ALPN", Duration::from_secs(5));
    assert!(log.contains("direct TLS handshake failed"), "{log}");

    let off = Pgwarm::start(&db, &[("PGWARM_CLIENT_TLS", "off")]);
    let (tls, _) = tls_without_checks(true);
    off.target()
        .try_connect_tls(direct, tls)
        .await
        .expect_err("with client TLS off a TLS handshake is not a startup packet");
}

/// What rustls holds back when the client's socket is full must still go out: megabytes each way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_messages_cross_the_client_tls_link_both_ways() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[TLS_ON]);
    let client = tls_client(&pgwarm).await;
    exchange_large_messages(&client).await;
}

/// A client that reads slowly: the socket stays full, so the last bytes of the answer wait inside
/// rustls when pgwarm has nothing more to write, and must still be sent once the client reads.
#[test]
fn a_client_that_reads_late_still_gets_the_whole_answer() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[TLS_ON]);
    let mut sock = std::net::TcpStream::connect(pgwarm.addr()).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    sock.write_all(&SSL_REQUEST).expect("SSLRequest");
    let mut answer = [0u8; 1];
    sock.read_exact(&mut answer).expect("answer");
    assert_eq!(&answer, b"S");
    let (config, _) = client_config_without_checks(false);
    let name = "localhost".try_into().expect("server name");
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).expect("TLS");
    let mut tls = rustls::StreamOwned::new(conn, Slow(sock));
    tls.write_all(&startup_packet(&db)).expect("startup");
    read_until_ready(&mut tls);

    // Whether the end of an answer finds the socket full depends on timing: several rounds.
    let rows = 4;
    let query = format!("select repeat('y', 1 << 20) from generate_series(1, {rows})\0");
    let mut message = vec![b'Q'];
    message.extend_from_slice(&(4 + query.len() as u32).to_be_bytes());
    message.extend_from_slice(query.as_bytes());
    for round in 0..8 {
        tls.write_all(&message).expect("query");
        let data_rows = read_until_ready(&mut tls);
        assert_eq!(
            data_rows, rows,
            "round {round}: every row, then ReadyForQuery"
        );
    }
}

/// A socket read at most 16 kB at a time, a millisecond apart.
struct Slow(std::net::TcpStream);

impl Read for Slow {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        std::thread::sleep(Duration::from_millis(1));
        let n = buf.len().min(16 << 10);
        self.0.read(&mut buf[..n])
    }
}

impl Write for Slow {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

fn startup_packet(db: &Target) -> Vec<u8> {
    let body = format!("user\0{}\0database\0{}\0\0", db.user, db.dbname);
    let mut packet = Vec::new();
    packet.extend_from_slice(&((8 + body.len()) as u32).to_be_bytes());
    packet.extend_from_slice(&196608u32.to_be_bytes());
    packet.extend_from_slice(body.as_bytes());
    packet
}

/// Reads messages up to ReadyForQuery; returns how many DataRows came. Panics on an error.
fn read_until_ready(stream: &mut impl Read) -> usize {
    let mut data_rows = 0;
    loop {
        let mut header = [0u8; 5];
        stream.read_exact(&mut header).expect("message header");
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        let mut body = vec![0u8; len - 4];
        stream.read_exact(&mut body).expect("message body");
        match header[0] {
            b'Z' => return data_rows,
            b'D' => data_rows += 1,
            b'E' => panic!("error: {}", String::from_utf8_lossy(&body)),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tls_clients_share_the_pool() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[TLS_ON, ("PGWARM_POOL_SIZE", "2")]);
    let mut tasks = Vec::new();
    for c in 0..20i32 {
        let target = pgwarm.target();
        tasks.push(tokio::spawn(async move {
            let (tls, _) = tls_without_checks(false);
            let client = target
                .try_connect_tls("sslmode=require", tls)
                .await
                .expect("connect");
            let statement = client.prepare("select $1::int * 2").await.expect("prepare");
            for i in 0..100i32 {
                let n = c * 1000 + i;
                let row = client.query_one(&statement, &[&n]).await.expect("query");
                assert_eq!(row.get::<_, i32>(0), n * 2);
            }
        }));
    }
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("20 clients x 100 queries finish")
            .expect("client task");
    }
    assert!(cluster().backends_for(&db.user) <= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_sent_over_tls_stops_the_query() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[TLS_ON]);
    let client = tls_client(&pgwarm).await;
    let token = client.cancel_token();
    let sleeper = tokio::spawn(async move { client.simple_query("select pg_sleep(30)").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (tls, seen) = tls_without_checks(false);
    token.cancel_query(tls).await.expect("cancel sent");
    assert_eq!(seen.count(), 1, "the cancel went over TLS");
    let result = tokio::time::timeout(Duration::from_secs(10), sleeper)
        .await
        .expect("the query ended")
        .expect("task");
    let err = result.expect_err("a cancelled query fails");
    assert_eq!(sqlstate(&err), "57014", "{err}");
}

/// A startup packet sent in clear right after SSLRequest, before the handshake (what an attacker
/// on the path could inject, CVE-2021-23222), goes to the TLS parser, never into a login.
#[test]
fn bytes_after_ssl_request_are_not_taken_as_a_startup_packet() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[TLS_ON]);
    let mut sock = std::net::TcpStream::connect(pgwarm.addr()).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut both = SSL_REQUEST.to_vec();
    both.extend_from_slice(&startup_packet(&db));
    sock.write_all(&both).expect("write");
    let mut answer = [0u8; 1];
    sock.read_exact(&mut answer).expect("answer to SSLRequest");
    assert_eq!(&answer, b"S");
    let mut rest = Vec::new();
    let _ = sock.read_to_end(&mut rest);
    // A TLS alert record (0x15) or nothing; never AuthenticationOk ('R').
    assert!(
        rest.first().is_none_or(|b| *b == 0x15),
        "pgwarm answered the injected startup packet: {rest:?}"
    );
    let log = pgwarm.wait_for_log("TLS handshake failed", Duration::from_secs(5));
    assert!(!log.contains("client logged in"), "{log}");
}

#[test]
fn an_unreadable_client_key_stops_pgwarm_naming_the_variable() {
    let certs = TestCerts::new(&["localhost"]);
    let db = cluster().fresh_target();
    let (status, log) = Pgwarm::builder(&db)
        .env(
            "PGWARM_CLIENT_TLS_CERT",
            &certs.server_cert_file.display().to_string(),
        )
        .env("PGWARM_CLIENT_TLS_KEY", "/nonexistent/key.pem")
        .run_to_exit();
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(log.contains("PGWARM_CLIENT_TLS_KEY"), "{log}");
}

/// SCRAM between client and pgwarm runs inside TLS: tokio-postgres sends the `y` channel-binding
/// flag (it could bind, pgwarm offers no SCRAM-SHA-256-PLUS), psql sends `n` or `y` likewise,
/// and a wrong password still fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_password_authentication_works_inside_tls() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[TLS_ON, ("PGWARM_CLIENT_PASSWORD", "s3cret pass")]);
    let (tls, seen) = tls_without_checks(false);
    let client = pgwarm
        .target()
        .try_connect_tls("sslmode=require", tls)
        .await
        .expect("SCRAM inside TLS");
    assert_eq!(simple_rows(&client, "select 1").await, [["1"]]);
    assert_eq!(seen.count(), 1);
    let psql = psql_conninfo(&pgwarm, &[("PGSSLMODE", "require")]);
    assert!(psql.status.success(), "{}", text(&psql.stderr));
    assert!(text(&psql.stdout).contains("SSL connection"));

    let mut wrong = pgwarm.target();
    wrong.password = "not it".into();
    let (tls, _) = tls_without_checks(false);
    let err = wrong
        .try_connect_tls("sslmode=require", tls)
        .await
        .expect_err("a wrong password fails");
    assert_eq!(sqlstate(&err), "28P01", "{err}");
}
