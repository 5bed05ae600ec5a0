//! `PGWARM_AUTH=iam`: pgwarm logs in with an RDS auth token as the password, over TLS.
//!
//! PostgreSQL cannot check a SigV4 token (RDS does that in its own authentication), so the
//! database side here is a stand-in that does what RDS's front does up to the password: it
//! answers SSLRequest with 'S', runs TLS with a certificate from a test CA, asks for a cleartext
//! password (as RDS does for IAM users), records it and refuses the login. The token it receives
//! must be exactly the one pgwarm's signer (checked against AWS's own test vector in the unit
//! tests) makes for these keys, region, endpoint, user and signing time.

use pgwarm::credentials::{auth_token, SigningKeys};
use pgwarm_tests::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Accepts connections on 127.0.0.1 and records the cleartext password each one sends inside
/// TLS; a connection that does not ask for TLS first is recorded as `None`.
async fn password_recorder(certs: &TestCerts) -> (u16, Arc<Mutex<Vec<Option<String>>>>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = vec![CertificateDer::from_pem_slice(certs.server_cert_pem.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(certs.server_key_pem.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let record = Arc::clone(&record);
            tokio::spawn(async move {
                let mut request = [0u8; 8];
                if tcp.read_exact(&mut request).await.is_err() {
                    return;
                }
                if request != [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f] {
                    record.lock().unwrap().push(None);
                    return;
                }
                tcp.write_all(b"S").await.unwrap();
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let len = tls.read_u32().await.unwrap() as usize;
                let mut startup = vec![0u8; len - 4];
                tls.read_exact(&mut startup).await.unwrap();
                // AuthenticationCleartextPassword.
                tls.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3])
                    .await
                    .unwrap();
                tls.flush().await.unwrap();
                let tag = tls.read_u8().await.unwrap();
                let len = tls.read_u32().await.unwrap() as usize;
                let mut body = vec![0u8; len - 4];
                tls.read_exact(&mut body).await.unwrap();
                assert_eq!(tag, b'p');
                let password = String::from_utf8(body[..body.len() - 1].to_vec()).unwrap();
                record.lock().unwrap().push(Some(password));
                let mut error = vec![b'E'];
                let fields = b"SFATAL\0VFATAL\0C28P01\0Mpassword authentication failed\0\0";
                error.extend_from_slice(&(4 + fields.len() as u32).to_be_bytes());
                error.extend_from_slice(fields);
                let _ = tls.write_all(&error).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auth_token_is_the_password_and_travels_over_tls() {
    let certs = TestCerts::new(&["localhost"]);
    let (port, seen) = password_recorder(&certs).await;
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::builder(&db)
        .env("PGWARM_AUTH", "iam")
        .env("PGWARM_DB_HOST", "localhost")
        .env("PGWARM_DB_PORT", &port.to_string())
        .env("PGWARM_DB_USER", "iam_user")
        .env("PGWARM_DB_NAME", "app")
        .env_remove("PGWARM_DB_PASSWORD")
        .env("PGWARM_SSLMODE", "verify-full")
        .env("PGWARM_SSLROOTCERT", &certs.ca_file.display().to_string())
        .env("AWS_ACCESS_KEY_ID", "AKIDTESTING")
        .env("AWS_SECRET_ACCESS_KEY", "test-secret-key")
        .env("AWS_SESSION_TOKEN", "session/token+with=chars")
        .env("AWS_REGION", "eu-west-1")
        .spawn();
    let client = Target {
        host: "127.0.0.1".into(),
        port: pgwarm.addr().port(),
        user: "iam_user".into(),
        password: String::new(),
        dbname: "app".into(),
    };
    let err = client
        .try_connect()
        .await
        .expect_err("the stand-in refuses");
    assert_eq!(sqlstate(&err), "28P01", "{err}");

    let seen = seen.lock().unwrap().clone();
    assert!(
        !seen.is_empty() && seen.iter().all(Option::is_some),
        "{seen:?}"
    );
    // Refused: pgwarm signs once more (new keys may exist) and tries again, then gives up.
    assert!(seen.len() <= 2, "{seen:?}");
    for token in seen.into_iter().flatten() {
        let date = token
            .split('&')
            .find_map(|p| p.strip_prefix("X-Amz-Date="))
            .expect("a signing date");
        let signed_at = parse_amz_date(date);
        let expected = auth_token(
            "localhost",
            port,
            "iam_user",
            "eu-west-1",
            &SigningKeys {
                access_key_id: "AKIDTESTING",
                secret_access_key: "test-secret-key",
                session_token: Some("session/token+with=chars"),
            },
            signed_at,
        )
        .unwrap();
        assert_eq!(token, expected);
        assert!(token.starts_with(&format!(
            "localhost:{port}/?Action=connect&DBUser=iam_user&"
        )));
        assert!(!pgwarm.log().contains(&token), "the token reached the log");
    }
}

/// `YYYYMMDDTHHMMSSZ` to a time.
fn parse_amz_date(date: &str) -> std::time::SystemTime {
    let n = |r: std::ops::Range<usize>| date[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(4..6), n(6..8));
    let (hh, mm, ss) = (n(9..11), n(11..13), n(13..15));
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    UNIX_EPOCH + Duration::from_secs((days * 86_400 + hh * 3600 + mm * 60 + ss) as u64)
}
