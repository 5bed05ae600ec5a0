//! The database login from Secrets Manager (`PGWARM_SECRET_ID`), against moto_server reached by
//! pgwarm's real AWS SDK through `AWS_ENDPOINT_URL`: an RDS-format secret logs pgwarm in and is
//! read once for a thousand clients; a password rotated under running clients (made current at
//! once, or pending as RDS's rotation leaves it for a while) fails none of them; a malformed or
//! missing secret gives a clear error without any secret value; a Secrets Manager that goes away
//! after the first read leaves pgwarm serving from its copy.

use pgwarm_tests::*;
use std::time::{Duration, Instant};

/// pgwarm reading `secret_id` from `moto`, with no `PGWARM_DB_*` login of its own.
fn pgwarm_with_secret(moto: &Moto, db: &Target, secret_id: &str, extra: &[(&str, &str)]) -> Pgwarm {
    let mut builder = Pgwarm::builder(db)
        .env_remove("PGWARM_DB_HOST")
        .env_remove("PGWARM_DB_PORT")
        .env_remove("PGWARM_DB_NAME")
        .env_remove("PGWARM_DB_USER")
        .env_remove("PGWARM_DB_PASSWORD")
        .env("PGWARM_SECRET_ID", secret_id)
        .env("PGWARM_SSLMODE", "disable");
    for (k, v) in moto.aws_env() {
        builder = builder.env(k, &v);
    }
    for (k, v) in extra {
        builder = builder.env(k, v);
    }
    builder.spawn()
}

/// A client of `pgwarm` for `db`'s user and database (pgwarm asks clients for no password).
fn client_target(pgwarm: &Pgwarm, db: &Target) -> Target {
    Target {
        host: pgwarm.addr().ip().to_string(),
        port: pgwarm.addr().port(),
        user: db.user.clone(),
        password: String::new(),
        dbname: db.dbname.clone(),
    }
}

fn secret_reads(pgwarm: &Pgwarm) -> usize {
    pgwarm.log().matches("read the secret").count()
}

/// `db` with another password, as the secret holds it.
fn with_password(db: &Target, password: &str) -> Target {
    Target {
        password: password.to_owned(),
        ..db.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rds_secret_logs_pgwarm_in_and_is_read_once_for_a_thousand_clients() {
    let moto = Moto::start();
    let db = cluster().fresh_target();
    moto.create_secret("app/db", &Moto::rds_secret_json(&db));
    let pgwarm = pgwarm_with_secret(&moto, &db, "app/db", &[]);
    let target = client_target(&pgwarm, &db);
    assert_eq!(
        secret_reads(&pgwarm),
        0,
        "read when first needed, not at start"
    );

    let mut batches = Vec::new();
    for b in 0..10 {
        let target = target.clone();
        batches.push(tokio::spawn(async move {
            for i in 0..100 {
                let client = target.connect().await;
                let rows = simple_rows(&client, &format!("select {b} * 100 + {i}")).await;
                assert_eq!(rows, [[(b * 100 + i).to_string()]]);
            }
        }));
    }
    for batch in batches {
        tokio::time::timeout(Duration::from_secs(120), batch)
            .await
            .expect("1,000 clients finish")
            .expect("client batch");
    }
    assert_eq!(secret_reads(&pgwarm), 1, "{}", pgwarm.log());
    assert!(
        !pgwarm.log().contains(&db.password),
        "the password reached the log"
    );
}

/// Clients keep connecting and querying while the password changes in PostgreSQL and in the
/// secret; server connections are recycled every 300 ms, so new logins happen throughout.
async fn run_clients_through_a_rotation(pending: bool) {
    let moto = Moto::start();
    let db = cluster().fresh_target();
    moto.create_secret("app/db", &Moto::rds_secret_json(&db));
    let pgwarm = pgwarm_with_secret(
        &moto,
        &db,
        "app/db",
        &[
            ("PGWARM_SERVER_LIFETIME", "300ms"),
            ("PGWARM_POOL_SIZE", "2"),
        ],
    );
    let target = client_target(&pgwarm, &db);
    target.connect().await; // the secret is read

    let deadline = Instant::now() + Duration::from_secs(3);
    let mut clients = Vec::new();
    for c in 0..4 {
        let target = target.clone();
        clients.push(tokio::spawn(async move {
            let mut queries = 0;
            while Instant::now() < deadline {
                let client = target
                    .try_connect()
                    .await
                    .map_err(|e| format!("client {c}: {e}"))?;
                for _ in 0..5 {
                    client
                        .simple_query("select 1")
                        .await
                        .map_err(|e| format!("client {c}: {e}"))?;
                    queries += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            Ok::<usize, String>(queries)
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let new_password = format!("rotated-{}", random_hex(8));
    let rotated = Moto::rds_secret_json(&with_password(&db, &new_password));
    if pending {
        // RDS's rotation: the new version is AWSPENDING when the database gets its password,
        // and becomes AWSCURRENT only in a later step.
        moto.call(
            "PutSecretValue",
            &format!(
                r#"{{"SecretId":"app/db","SecretString":{},"VersionStages":["AWSPENDING"]}}"#,
                json_string(&rotated)
            ),
        );
    } else {
        moto.put_secret_value("app/db", &rotated);
    }
    cluster().psql_super(&format!(
        "ALTER ROLE {} PASSWORD {}",
        quote_ident(&db.user),
        quote_literal(&new_password)
    ));
    for client in clients {
        let queries = tokio::time::timeout(Duration::from_secs(30), client)
            .await
            .expect("clients finish")
            .expect("client task")
            .unwrap_or_else(|e| panic!("{e}\n--- pgwarm log ---\n{}", pgwarm.log()));
        assert!(queries > 10, "{queries} queries");
    }
    let log = pgwarm.log();
    let expected = if pending {
        "pending version"
    } else {
        "the secret changed; retrying the login with it"
    };
    assert!(log.contains(expected), "{log}");
    // Concurrent refusals of the same password share one look: the first read, then AWSCURRENT
    // again, and AWSPENDING when the rotation is still pending.
    let reads = secret_reads(&pgwarm);
    assert_eq!(reads, if pending { 3 } else { 2 }, "{log}");
    assert!(!log.contains(&new_password) && !log.contains(&db.password));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_password_fails_no_client() {
    run_clients_through_a_rotation(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_still_pending_in_the_rotation_fails_no_client() {
    run_clients_through_a_rotation(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_missing_secrets_give_clear_errors_without_values() {
    let moto = Moto::start();
    let db = cluster().fresh_target();
    moto.create_secret("app/not-json", "user=app password=hunter2");
    moto.create_secret(
        "app/no-password",
        &format!(
            r#"{{"username":"app","host":"127.0.0.1","port":{}}}"#,
            db.port
        ),
    );
    for (secret, expected) in [
        (
            "app/not-json",
            "secret app/not-json is not the JSON object RDS writes",
        ),
        (
            "app/no-password",
            "secret app/no-password has no \"password\" field",
        ),
        ("app/missing", "ResourceNotFoundException"),
    ] {
        let pgwarm = pgwarm_with_secret(&moto, &db, secret, &[]);
        let err = client_target(&pgwarm, &db)
            .try_connect()
            .await
            .expect_err("no login without a usable secret");
        let db_error = err.as_db_error().unwrap_or_else(|| panic!("{err:?}"));
        assert_eq!(db_error.code().code(), "08006", "{db_error:?}");
        assert!(
            db_error.message().contains(expected),
            "{}",
            db_error.message()
        );
        assert!(!db_error.message().contains("hunter2"));
        assert!(!pgwarm.log().contains("hunter2"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgwarm_serves_from_its_copy_when_secrets_manager_goes_away() {
    let moto = Moto::start();
    let db = cluster().fresh_target();
    moto.create_secret("app/db", &Moto::rds_secret_json(&db));
    let pgwarm = pgwarm_with_secret(
        &moto,
        &db,
        "app/db",
        &[
            ("PGWARM_SECRET_TTL", "200ms"),
            ("PGWARM_SECRETS_TIMEOUT", "1s"),
        ],
    );
    let target = client_target(&pgwarm, &db);
    assert_eq!(
        simple_rows(&target.connect().await, "select 1").await,
        [["1"]]
    );
    drop(moto);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // New server logins need the (stale) secret: the pool's connections are ended, and gone
    // before the next query (see tests/pool.rs for why).
    let end_backends = || {
        cluster().terminate_backends_for(&db.user);
        assert_eq!(
            cluster().wait_for_backends(&db.user, 0, Duration::from_secs(5)),
            0
        );
    };
    end_backends();
    for _ in 0..3 {
        let client = target.connect().await;
        assert_eq!(simple_rows(&client, "select 2").await, [["2"]]);
        end_backends();
    }
    let log = pgwarm.log();
    assert!(
        log.contains("could not read the secret again; using the copy pgwarm has"),
        "{log}"
    );
}
