//! The admin console (`psql -d pgwarm`, or `pgbouncer` for PgBouncer's tools), read by psql,
//! tokio-postgres and Debian's prometheus-pgbouncer-exporter: PgBouncer's columns with values
//! that match a scripted workload, a blocked pool seen waiting, PAUSE/RESUME under load that
//! loses nothing, KILL_CLIENT, clear errors, and no secret anywhere.

use pgwarm_tests::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// PgBouncer 1.18's columns, which tools read by name.
const POOLS: [&str; 16] = [
    "database",
    "user",
    "cl_active",
    "cl_waiting",
    "cl_active_cancel_req",
    "cl_waiting_cancel_req",
    "sv_active",
    "sv_active_cancel",
    "sv_being_canceled",
    "sv_idle",
    "sv_used",
    "sv_tested",
    "sv_login",
    "maxwait",
    "maxwait_us",
    "pool_mode",
];
const STATS: [&str; 15] = [
    "database",
    "total_xact_count",
    "total_query_count",
    "total_received",
    "total_sent",
    "total_xact_time",
    "total_query_time",
    "total_wait_time",
    "avg_xact_count",
    "avg_query_count",
    "avg_recv",
    "avg_sent",
    "avg_xact_time",
    "avg_query_time",
    "avg_wait_time",
];
const CONNECTIONS: [&str; 18] = [
    "type",
    "user",
    "database",
    "state",
    "addr",
    "port",
    "local_addr",
    "local_port",
    "connect_time",
    "request_time",
    "wait",
    "wait_us",
    "close_needed",
    "ptr",
    "link",
    "remote_pid",
    "tls",
    "application_name",
];
const DATABASES: [&str; 13] = [
    "name",
    "host",
    "port",
    "database",
    "force_user",
    "pool_size",
    "min_pool_size",
    "reserve_pool",
    "pool_mode",
    "max_connections",
    "current_connections",
    "paused",
    "disabled",
];

fn admin_of(pgwarm: &Pgwarm) -> Target {
    pgwarm.admin_target()
}

async fn admin(pgwarm: &Pgwarm) -> tokio_postgres::Client {
    admin_of(pgwarm).connect().await
}

async fn stats(console: &tokio_postgres::Client) -> AdminRow {
    show(console, "STATS").await.remove(0)
}

/// `application_name` set, so SHOW CLIENTS can tell the clients apart.
async fn connect_as(target: &Target, name: &str) -> tokio_postgres::Client {
    target.connect_as(name).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_show_answers_with_pgbouncers_columns_through_psql() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "2")]);
    pgwarm.target().psql_ok("select 1");
    let console = admin_of(&pgwarm);
    let starts_with = |what: &str, expected: &[&str]| {
        let (header, rows) = psql_csv(&console, &format!("SHOW {what};"));
        assert_eq!(&header[..expected.len()], expected, "SHOW {what}");
        rows
    };
    let pools = starts_with("POOLS", &POOLS);
    assert_eq!(pools[0][0], db.dbname);
    assert_eq!(pools[0][15], "transaction");
    starts_with("STATS", &STATS);
    starts_with("STATS_TOTALS", &STATS[..8]);
    let averages = ["database"].into_iter().chain(STATS[8..].iter().copied());
    starts_with("STATS_AVERAGES", &averages.collect::<Vec<_>>());
    let servers = starts_with("SERVERS", &CONNECTIONS);
    assert_eq!(
        servers.len(),
        1,
        "one server connection after one query: {servers:?}"
    );
    assert_eq!(servers[0][0], "S");
    assert_eq!(servers[0][3], "idle");
    starts_with("CLIENTS", &CONNECTIONS);
    let databases = starts_with("DATABASES", &DATABASES);
    assert_eq!(databases[0][5], "2", "pool_size");
    let lists = starts_with("LISTS", &["list", "items"]);
    let names: Vec<&str> = lists.iter().map(|r| r[0].as_str()).collect();
    for name in [
        "databases",
        "pools",
        "free_clients",
        "used_clients",
        "login_clients",
        "free_servers",
        "used_servers",
        "dns_names",
    ] {
        assert!(names.contains(&name), "SHOW LISTS has {name}: {names:?}");
    }
    let config = starts_with("CONFIG", &["key", "value", "default", "changeable"]);
    let pool_size = config
        .iter()
        .find(|r| r[0] == "PGWARM_POOL_SIZE")
        .expect("PGWARM_POOL_SIZE");
    assert_eq!(pool_size[1], "2");
    let version = starts_with("VERSION", &["version"]);
    assert!(version[0][0].starts_with("pgwarm "), "{version:?}");
    let help = starts_with("HELP", &["command", "description"]);
    assert!(help.iter().any(|r| r[0] == "SHOW POOLS"), "{help:?}");
    starts_with(
        "PREPARED",
        &[
            "server",
            "remote_pid",
            "state",
            "statements",
            "hits",
            "prepares",
            "reprepares",
        ],
    );
    let lambda = starts_with("LAMBDA", &["key", "value"]);
    assert!(
        lambda
            .iter()
            .any(|r| r[0] == "mode" && r[1] == "standalone"),
        "{lambda:?}"
    );
    // The same console answers to PgBouncer's name.
    let pgbouncer = Target {
        dbname: "pgbouncer".into(),
        ..console.clone()
    };
    let (header, _) = psql_csv(&pgbouncer, "SHOW POOLS");
    assert_eq!(header[..16], POOLS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_and_clients_match_a_scripted_workload() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(
        &db,
        &[("PGWARM_POOL_SIZE", "2"), ("PGWARM_STATS_PERIOD", "1s")],
    );
    let console = admin(&pgwarm).await;
    let mut clients = Vec::new();
    for i in 0..3 {
        clients.push(connect_as(&pgwarm.target(), &format!("worker-{i}")).await);
    }
    let mut runs = Vec::new();
    for client in &clients {
        runs.push(async move {
            for _ in 0..10 {
                client.simple_query("BEGIN").await.expect("BEGIN");
                client.simple_query("SELECT 1").await.expect("SELECT");
                client.simple_query("COMMIT").await.expect("COMMIT");
            }
        });
    }
    futures_util::future::join_all(runs).await;

    let s = stats(&console).await;
    assert_eq!(number(&s, "total_xact_count"), 30, "{s:?}");
    assert_eq!(number(&s, "total_query_count"), 90, "{s:?}");
    assert_eq!(
        number(&s, "total_requests"),
        90,
        "PgBouncer 1.7's name: {s:?}"
    );
    assert!(number(&s, "total_received") > 90 * 10, "{s:?}");
    assert!(
        number(&s, "total_sent") > number(&s, "total_received"),
        "{s:?}"
    );
    assert!(
        number(&s, "total_xact_time") >= number(&s, "total_query_time") / 3,
        "{s:?}"
    );
    assert!(number(&s, "total_server_logins") >= 1, "{s:?}");

    let p = pools(&console).await;
    assert_eq!(number(&p, "cl_active"), 3, "{p:?}");
    assert_eq!(number(&p, "cl_waiting"), 0, "{p:?}");
    assert_eq!(number(&p, "sv_active"), 0, "{p:?}");
    assert!(number(&p, "sv_idle") >= 1, "{p:?}");

    let rows = show(&console, "CLIENTS").await;
    let mut names: Vec<&str> = rows
        .iter()
        .map(|r| r["application_name"].as_str())
        .collect();
    names.sort();
    assert_eq!(names, ["worker-0", "worker-1", "worker-2"]);
    assert!(rows
        .iter()
        .all(|r| r["state"] == "idle" && r["database"] == db.dbname));

    // The averages cover the last whole period: the workload's, then an idle one.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut saw_load = false;
    loop {
        let s = stats(&console).await;
        let rate = number(&s, "avg_xact_count");
        saw_load |= rate > 0;
        if saw_load && rate == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "avg_xact_count never rose and fell back: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    drop(clients);
    wait_for_pool(&console, "the clients to leave", |p| {
        number(p, "cl_active") == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_pool_shows_its_waiting_clients_and_a_growing_maxwait() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "1")]);
    let console = admin(&pgwarm).await;
    let holder = pgwarm.target().connect().await;
    holder.simple_query("BEGIN; SELECT 1").await.expect("BEGIN");
    let mut waiting = Vec::new();
    for _ in 0..2 {
        let client = pgwarm.target().connect().await;
        waiting.push(tokio::spawn(async move {
            client.simple_query("SELECT 2").await.map(|_| ())
        }));
    }
    let first = wait_for_pool(&console, "two waiting clients", |p| {
        number(p, "cl_waiting") == 2
    })
    .await;
    assert_eq!(number(&first, "cl_active"), 1, "{first:?}");
    assert_eq!(number(&first, "sv_active"), 1, "{first:?}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let later = pools(&console).await;
    let wait_us = |p: &AdminRow| number(p, "maxwait") * 1_000_000 + number(p, "maxwait_us");
    assert!(
        wait_us(&later) >= wait_us(&first) + 300_000,
        "maxwait grows while the pool is held: {first:?} then {later:?}"
    );
    let clients = show(&console, "CLIENTS").await;
    let states: Vec<&str> = clients.iter().map(|c| c["state"].as_str()).collect();
    assert_eq!(
        states.iter().filter(|s| **s == "waiting").count(),
        2,
        "{clients:?}"
    );
    let servers = show(&console, "SERVERS").await;
    let holder_id = clients
        .iter()
        .find(|c| c["state"] == "active")
        .expect("the holder")["ptr"]
        .clone();
    assert_eq!(servers.len(), 1);
    assert_eq!(
        (servers[0]["state"].as_str(), servers[0]["link"].as_str()),
        ("active", holder_id.as_str())
    );

    holder.simple_query("COMMIT").await.expect("COMMIT");
    for w in waiting {
        w.await
            .expect("task")
            .expect("a waiting client's query runs once the pool is free");
    }
    let after = wait_for_pool(&console, "no waiting client", |p| {
        number(p, "cl_waiting") == 0
    })
    .await;
    assert_eq!(wait_us(&after), 0, "{after:?}");
    assert!(number(&stats(&console).await, "total_wait_time") >= 300_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_under_load_lose_no_query() {
    let db = cluster().fresh_target();
    db.psql_ok("create table ledger (client int, n int)");
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "2")]);
    let console = admin(&pgwarm).await;
    const CLIENTS: usize = 8;
    const EACH: usize = 40;
    let done = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for c in 0..CLIENTS {
        let client = pgwarm.target().connect().await;
        let done = Arc::clone(&done);
        load.push(tokio::spawn(async move {
            for n in 0..EACH {
                let sql = format!(
                    "BEGIN; INSERT INTO ledger VALUES ({c}, {n}); SELECT pg_sleep(0.005); COMMIT"
                );
                client.simple_query(&sql).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), tokio_postgres::Error>(())
        }));
    }
    // Pause while the load runs.
    while done.load(Ordering::Relaxed) < CLIENTS * EACH / 4 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    console.simple_query("PAUSE").await.expect("PAUSE");
    let paused = pools(&console).await;
    assert_eq!(
        number(&paused, "sv_active"),
        0,
        "PAUSE returns once transactions finished: {paused:?}"
    );
    let databases = show(&console, "DATABASES").await;
    assert_eq!(databases[0]["paused"], "1");
    // What the database holds is the truth: a client may not have counted its last answer yet.
    let committed = || db.psql_ok("select count(*) from ledger");
    let before = committed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(committed(), before, "no transaction commits while paused");
    let held = pools(&console).await;
    assert!(
        number(&held, "cl_waiting") > 0,
        "clients wait while paused: {held:?}"
    );
    let before: usize = before.parse().expect("a count");
    assert!(
        before < CLIENTS * EACH,
        "the pause came before the end of the load"
    );
    let again = console
        .simple_query("PAUSE")
        .await
        .expect_err("a second PAUSE");
    assert_eq!(again.code().map(|c| c.code()), Some("55000"));

    console.simple_query("RESUME").await.expect("RESUME");
    for task in load {
        task.await
            .expect("task")
            .expect("every query succeeds across PAUSE/RESUME");
    }
    let rows = db.psql_ok("select count(*), count(distinct (client, n)) from ledger");
    let n = CLIENTS * EACH;
    assert_eq!(rows, format!("{n}|{n}"));
    let s = stats(&console).await;
    assert_eq!(number(&s, "total_xact_count"), n as i64, "{s:?}");
    let not_paused = console
        .simple_query("RESUME")
        .await
        .expect_err("RESUME when not paused");
    assert_eq!(not_paused.code().map(|c| c.code()), Some("55000"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_client_ends_that_client_and_no_other() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[]);
    let console = admin(&pgwarm).await;
    let doomed = connect_as(&pgwarm.target(), "doomed").await;
    let other = connect_as(&pgwarm.target(), "other").await;
    doomed.simple_query("SELECT 1").await.expect("before");
    let clients = show(&console, "CLIENTS").await;
    let id = &clients
        .iter()
        .find(|c| c["application_name"] == "doomed")
        .expect("listed")["id"];
    console
        .simple_query(&format!("KILL_CLIENT {id}"))
        .await
        .expect("KILL_CLIENT");
    let e = doomed
        .simple_query("SELECT 1")
        .await
        .expect_err("the killed client");
    let code = e.as_db_error().map(|d| d.code().code().to_owned());
    assert!(
        code.as_deref() == Some("57P01") || doomed.is_closed(),
        "{e:?}"
    );
    other
        .simple_query("SELECT 1")
        .await
        .expect("the other client is untouched");
    let clients = show(&console, "CLIENTS").await;
    assert_eq!(clients.len(), 1, "{clients:?}");
    let unknown = console
        .simple_query("KILL_CLIENT 12345")
        .await
        .expect_err("unknown id");
    assert_eq!(unknown.code().map(|c| c.code()), Some("42704"));
    console
        .simple_query("SHOW VERSION")
        .await
        .expect("the console goes on after an error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_commands_and_the_extended_protocol_get_clear_errors() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[]);
    let console = admin(&pgwarm).await;
    for bad in ["SHOW nothing", "SELECT 1", "DROP TABLE x"] {
        let e = console.simple_query(bad).await.expect_err(bad);
        let db_error = e.as_db_error().unwrap_or_else(|| panic!("{bad}: {e:?}"));
        assert_eq!(db_error.code().code(), "42601", "{bad}");
        assert!(
            db_error.hint().unwrap_or_default().contains("SHOW HELP"),
            "{bad}"
        );
    }
    let e = console
        .query("SHOW POOLS", &[])
        .await
        .expect_err("extended protocol");
    assert_eq!(e.code().map(|c| c.code()), Some("0A000"), "{e:?}");
    assert_eq!(pools(&console).await["database"], db.dbname, "still usable");
    let out = admin_of(&pgwarm).psql("SHOW TABLES");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown SHOW item"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_asks_for_the_client_password() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_CLIENT_PASSWORD", "console-secret-1")]);
    let wrong = Target {
        password: "wrong".into(),
        ..admin_of(&pgwarm)
    };
    let e = wrong.try_connect().await.expect_err("a wrong password");
    assert_eq!(e.code().map(|c| c.code()), Some("28P01"), "{e:?}");
    let right = Target {
        password: "console-secret-1".into(),
        ..admin_of(&pgwarm)
    };
    let console = right.connect().await;
    assert_eq!(pools(&console).await["pool_mode"], "transaction");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_reads_the_secret_again() {
    let moto = Moto::start();
    let db = cluster().fresh_target();
    moto.create_secret("admin/db", &Moto::rds_secret_json(&db));
    let mut builder = Pgwarm::builder(&db)
        .env_remove("PGWARM_DB_HOST")
        .env_remove("PGWARM_DB_PORT")
        .env_remove("PGWARM_DB_NAME")
        .env_remove("PGWARM_DB_USER")
        .env_remove("PGWARM_DB_PASSWORD")
        .env("PGWARM_SECRET_ID", "admin/db")
        .env("PGWARM_SSLMODE", "disable");
    for (k, v) in moto.aws_env() {
        builder = builder.env(k, &v);
    }
    let pgwarm = builder.spawn();
    let console = Target {
        user: db.user.clone(),
        password: String::new(),
        ..admin_of(&pgwarm)
    }
    .connect()
    .await;
    let reads = |s: &AdminRow| number(s, "total_secret_reads");
    let before = reads(&stats(&console).await);
    console.simple_query("RELOAD").await.expect("RELOAD");
    let after = stats(&console).await;
    assert_eq!(reads(&after), before + 1, "{after:?}");
    assert_eq!(
        pgwarm.log().matches("read the secret").count() as i64,
        reads(&after)
    );
    let config = show(&console, "CONFIG").await;
    let secret = config
        .iter()
        .find(|r| r["key"] == "PGWARM_SECRET_ID")
        .expect("listed");
    assert_eq!(secret["value"], "admin/db");
    let everything = format!("{config:?}{after:?}{}", pgwarm.log());
    assert!(
        !everything.contains(&db.password),
        "the database password leaked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_show_and_no_log_line_holds_a_password() {
    let db = cluster().fresh_target();
    let client_password = "client-pw-b7d2e9";
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_CLIENT_PASSWORD", client_password)]);
    let console = Target {
        password: client_password.into(),
        ..admin_of(&pgwarm)
    };
    let client = Target {
        password: client_password.into(),
        ..pgwarm.target()
    };
    client.psql_ok("select 1");
    let mut seen = String::new();
    for what in [
        "POOLS",
        "STATS",
        "SERVERS",
        "CLIENTS",
        "CONFIG",
        "DATABASES",
        "LISTS",
        "VERSION",
        "HELP",
        "PREPARED",
        "LAMBDA",
    ] {
        let (header, rows) = psql_csv(&console, &format!("SHOW {what}"));
        seen.push_str(&format!("{header:?}{rows:?}"));
    }
    let config = console.psql_ok("SHOW CONFIG");
    assert!(config.contains("PGWARM_DB_PASSWORD|***"), "{config}");
    assert!(config.contains("PGWARM_CLIENT_PASSWORD|***"), "{config}");
    let (status, log) = pgwarm.terminate();
    assert!(status.success());
    for secret in [db.password.as_str(), client_password] {
        assert!(!seen.contains(secret), "a SHOW printed a password");
        assert!(!log.contains(secret), "the log printed a password");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_pgbouncer_exporter_reads_pgwarm() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "3")]);
    for _ in 0..5 {
        pgwarm.target().psql_ok("select 1");
    }
    let port = free_port();
    let mut cmd = std::process::Command::new(tool("prometheus-pgbouncer-exporter"));
    pgwarm.target().apply_libpq_env(&mut cmd);
    cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args([
            "--pgbouncer-host",
            "127.0.0.1",
            "--pgbouncer-port",
            &pgwarm.port.to_string(),
        ])
        .args(["--pgbouncer-user", &db.user])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut exporter = cmd.spawn().expect("start prometheus-pgbouncer-exporter");
    let deadline = Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        let got = reqwest_get(&format!("http://127.0.0.1:{port}/metrics")).await;
        if let Some(body) = got.filter(|b| b.contains("pgbouncer_")) {
            break body;
        }
        if Instant::now() > deadline || exporter.try_wait().ok().flatten().is_some() {
            let _ = exporter.kill();
            let out = exporter.wait_with_output().expect("exporter output");
            panic!(
                "the exporter served no metrics: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let _ = exporter.kill();
    let _ = exporter.wait();
    let value = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name) && l.contains(&db.dbname))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| {
                panic!(
                    "{name} for {} in:
{metrics}",
                    db.dbname
                )
            })
    };
    assert_eq!(value("pgbouncer_requests_total"), 5.0);
    assert!(value("pgbouncer_received_bytes_total") > 0.0);
    assert_eq!(value("pgbouncer_waiting_clients"), 0.0);
    assert_eq!(value("pgbouncer_pool_size"), 3.0);
    assert!(metrics.contains("pgbouncer_used_servers"), "{metrics}");
}

async fn reqwest_get(url: &str) -> Option<String> {
    let response = reqwest::get(url).await.ok()?;
    response.text().await.ok()
}
