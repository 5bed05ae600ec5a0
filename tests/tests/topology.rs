//! Several hosts and which of them pgwarm lends: a primary and a streaming standby of it
//! (`pg_basebackup -R`), both started here. Each test has clusters of its own, since it stops,
//! promotes or rebuilds them.

use pgwarm_tests::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A primary, a standby of it, and a login (role and database) the standby has replayed.
fn primary_and_standby() -> (PgCluster, PgCluster, Target) {
    let primary = PgCluster::start();
    let standby = primary.standby();
    let login = primary.fresh_target();
    standby.wait_for_replay(&primary);
    (primary, standby, login)
}

/// pgwarm in front of `hosts`, in that order, with `extra` settings.
fn pgwarm_for(login: &Target, hosts: &[&PgCluster], extra: &[(&str, &str)]) -> Pgwarm {
    let names = vec!["127.0.0.1"; hosts.len()].join(",");
    let ports: Vec<String> = hosts.iter().map(|c| c.port.to_string()).collect();
    let ports = ports.join(",");
    let mut settings = vec![
        ("PGWARM_DB_HOST", names.as_str()),
        ("PGWARM_DB_PORT", ports.as_str()),
    ];
    settings.extend_from_slice(extra);
    Pgwarm::start(login, &settings)
}

/// Whether the server behind one query through `target` is a standby.
async fn served_by_standby(target: &Target) -> bool {
    let client = target.connect().await;
    let rows = simple_rows(&client, "SELECT pg_is_in_recovery()").await;
    rows == [["t"]]
}

/// Why a login through `target` was refused: the server's message, or the error's own text.
async fn login_refusal(target: &Target, why: &str) -> String {
    let error = target.try_connect().await.expect_err(why);
    error
        .as_db_error()
        .map(|e| e.message().to_owned())
        .unwrap_or_else(|| error.to_string())
}

#[test]
fn writes_reach_the_primary_wherever_it_is_listed() {
    io_runtime().block_on(async {
        let (primary, standby, login) = primary_and_standby();
        // The standby first, as stale DNS or an old list would have it.
        let pgwarm = pgwarm_for(&login, &[&standby, &primary], &[("PGWARM_POOL_SIZE", "3")]);
        let client = pgwarm.target().connect().await;
        client
            .batch_execute("CREATE TABLE written (n int); INSERT INTO written VALUES (1)")
            .await
            .expect("a write through pgwarm reaches the primary");
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let target = pgwarm.target();
            tasks.push(tokio::spawn(
                async move { served_by_standby(&target).await },
            ));
        }
        for task in tasks {
            assert!(
                !task.await.expect("a client task"),
                "a client was lent the standby"
            );
        }
        let left = standby.wait_for_backends(&login.user, 0, Duration::from_secs(5));
        assert_eq!(left, 0, "no connection stays on the standby");
        pgwarm.wait_for_log("logging in to a new host first", Duration::from_secs(5));
        let admin = pgwarm.admin_target().connect().await;
        let config = show(&admin, "CONFIG").await;
        let shown = |key: &str| {
            let row = config
                .iter()
                .find(|row| row.get("key").map(String::as_str) == Some(key));
            row.and_then(|row| row.get("value")).cloned()
        };
        assert_eq!(
            shown("PGWARM_DB_HOST").as_deref(),
            Some("127.0.0.1,127.0.0.1")
        );
        let ports = format!("{},{}", standby.port, primary.port);
        assert_eq!(shown("PGWARM_DB_PORT"), Some(ports));
        assert_eq!(
            shown("PGWARM_TARGET_SESSION_ATTRS").as_deref(),
            Some("read-write")
        );
    });
}

#[test]
fn each_target_takes_its_kind_of_server() {
    io_runtime().block_on(async {
        let (primary, standby, login) = primary_and_standby();
        let cases: [(&str, &[&PgCluster], bool); 4] = [
            ("standby", &[&primary, &standby], true),
            ("read-only", &[&primary, &standby], true),
            // No standby listed: prefer-standby takes the primary.
            ("prefer-standby", &[&primary], false),
            ("any", &[&standby, &primary], true),
        ];
        for (attrs, hosts, standby_expected) in cases {
            let pgwarm = pgwarm_for(&login, hosts, &[("PGWARM_TARGET_SESSION_ATTRS", attrs)]);
            assert_eq!(
                served_by_standby(&pgwarm.target()).await,
                standby_expected,
                "PGWARM_TARGET_SESSION_ATTRS={attrs}"
            );
        }
        // Only a standby, and the default asks for writes: a clear error, not a read-only session.
        let pgwarm = pgwarm_for(&login, &[&standby], &[("PGWARM_QUERY_WAIT_TIMEOUT", "1s")]);
        let message = login_refusal(&pgwarm.target(), "no server takes writes").await;
        assert!(
            message.contains("read-write") && message.contains("standby"),
            "{message}"
        );
    });
}

#[test]
fn after_a_failover_the_old_primary_gets_no_write() {
    io_runtime().block_on(async {
        let (primary, standby, login) = primary_and_standby();
        let pgwarm = pgwarm_for(&login, &[&primary, &standby], &[]);
        let client = pgwarm.target().connect().await;
        client
            .batch_execute("CREATE TABLE moves (at text); INSERT INTO moves VALUES ('before')")
            .await
            .expect("a write before the failover");
        drop(client);
        standby.wait_for_replay(&primary);
        primary.stop_fast();
        standby.promote();
        // The old primary comes back as a standby of the new one, still listed first.
        primary.rebuild_as_standby_of(&standby);
        for n in 0..5 {
            let client = pgwarm.target().connect().await;
            let wrote = tokio::time::timeout(
                Duration::from_secs(10),
                client.batch_execute(&format!("INSERT INTO moves VALUES ('after {n}')")),
            )
            .await
            .expect("a write within 10 s of the failover");
            wrote.expect("a write after the failover reaches the new primary");
        }
        let new_primary = Target {
            port: standby.port,
            ..login.clone()
        };
        let rows = new_primary.psql_ok("SELECT count(*) FROM moves");
        assert_eq!(rows, "6", "every write on the new primary");
        assert!(primary.in_recovery());

        // The admin console shows the topology as the logins found it.
        let admin = pgwarm.admin_target().connect().await;
        let hosts = show(&admin, "HOSTS").await;
        let found: Vec<(String, String, String)> = hosts
            .iter()
            .map(|h| (h["port"].clone(), h["found"].clone(), h["current"].clone()))
            .collect();
        let (old, new) = (primary.port.to_string(), standby.port.to_string());
        assert_eq!(
            found,
            [
                (old, "standby".to_owned(), "0".to_owned()),
                (new.clone(), "primary".to_owned(), "1".to_owned())
            ]
        );
        let servers = show(&admin, "SERVERS").await;
        assert!(!servers.is_empty());
        for server in &servers {
            assert_eq!(
                (server["port"].as_str(), server["role"].as_str()),
                (new.as_str(), "primary")
            );
            assert_eq!(server["host"], "127.0.0.1");
        }
        let databases = show(&admin, "DATABASES").await;
        assert_eq!(
            databases[0]["port"], new,
            "logins go to the new primary first"
        );
    });
}

/// Stands in for Aurora's `aurora_replica_status()`, which this machine cannot run: the same
/// name and the columns pgwarm reads, answering from a table that replicates to the standby, as
/// every Aurora instance answers from the cluster's shared storage. Instance `2` writes, `3`
/// reads, and `9` stopped reporting an hour ago (an instance since deleted).
fn stand_in_for_aurora(primary: &PgCluster, login: &Target) {
    let owner = Target {
        dbname: login.dbname.clone(),
        ..primary.superuser()
    };
    owner.psql_ok(&format!(
        "CREATE TABLE aurora_topology (server_id text, session_id text, \
             last_update_timestamp timestamptz); \
         INSERT INTO aurora_topology VALUES ('2', 'MASTER_SESSION_ID', NULL), \
             ('3', 'a3f1c2d4', now()), ('9', '5be0f7aa', now() - interval '1 hour'); \
         CREATE FUNCTION public.aurora_replica_status() RETURNS SETOF aurora_topology \
             LANGUAGE sql STABLE AS 'SELECT * FROM aurora_topology'; \
         GRANT SELECT ON aurora_topology TO {}",
        quote_ident(&login.user)
    ));
}

/// The cluster's two instances as Aurora names them: each on a loopback address of its own
/// (`127.0.0.2` the primary, `127.0.0.3` the standby) on one port, as instance endpoints are.
fn instance_addresses(primary: &PgCluster, standby: &PgCluster) -> (DelayRelay, DelayRelay) {
    let at = |last: u8, port: u16| std::net::SocketAddr::from(([127, 0, 0, last], port));
    for _ in 0..5 {
        let first = DelayRelay::start_at(at(2, 0), at(1, primary.port), Duration::ZERO)
            .expect("listen on 127.0.0.2");
        let port = first.addr.port();
        if let Ok(second) = DelayRelay::start_at(at(3, port), at(1, standby.port), Duration::ZERO) {
            return (first, second);
        }
    }
    panic!("no port free on both 127.0.0.2 and 127.0.0.3");
}

/// `sql` through pgwarm from a new client, within 10 s.
async fn write_through(pgwarm: &Pgwarm, sql: &str, why: &str) {
    let client = pgwarm.target().connect().await;
    let wrote = tokio::time::timeout(Duration::from_secs(10), client.batch_execute(sql)).await;
    wrote
        .unwrap_or_else(|_| panic!("{why}: no answer within 10 s"))
        .expect(why);
}

/// `SHOW HOSTS`' host, found, current and discovered columns.
async fn hosts_shown(pgwarm: &Pgwarm) -> Vec<[String; 4]> {
    let admin = pgwarm.admin_target().connect().await;
    let rows = show(&admin, "HOSTS").await;
    let columns = ["host", "found", "current", "discovered"];
    rows.iter().map(|h| columns.map(|c| h[c].clone())).collect()
}

#[test]
fn the_writer_is_found_through_the_clusters_own_view() {
    io_runtime().block_on(async {
        let (primary, standby, login) = primary_and_standby();
        stand_in_for_aurora(&primary, &login);
        standby.wait_for_replay(&primary);
        let (instance_2, _instance_3) = instance_addresses(&primary, &standby);
        let port = instance_2.addr.port().to_string();
        // The writer endpoint as DNS has it: the first writer, whatever happens next.
        let endpoint = |pattern: &'static str, wait: &'static str| {
            Pgwarm::start(
                &login,
                &[
                    ("PGWARM_DB_HOST", "127.0.0.2"),
                    ("PGWARM_DB_PORT", port.as_str()),
                    ("PGWARM_INSTANCE_HOST_PATTERN", pattern),
                    ("PGWARM_QUERY_WAIT_TIMEOUT", wait),
                ],
            )
        };
        let row = |host: &str, found: &str, current: &str, discovered: &str| {
            [host, found, current, discovered].map(str::to_owned)
        };

        // Asked once with the first writer found: the instances are known ahead of a failover.
        let pgwarm = endpoint("127.0.0.?", "20s");
        let sql = "CREATE TABLE moves (at text); INSERT INTO moves VALUES ('before')";
        write_through(&pgwarm, sql, "a write before the failover").await;
        pgwarm.wait_for_log("named the cluster's instances", Duration::from_secs(5));
        assert_eq!(
            hosts_shown(&pgwarm).await,
            [
                row("127.0.0.2", "primary", "1", "0"),
                row("127.0.0.3", "unknown", "0", "1")
            ],
            "the instance Aurora stopped hearing from is left out"
        );

        // The writer endpoint's instance goes down and the other one is promoted: the writes
        // find it by its own name, though nothing but the cluster's answer named it.
        standby.wait_for_replay(&primary);
        primary.stop_fast();
        standby.promote();
        let new_primary = Target {
            port: standby.port,
            ..login.clone()
        };
        let owner = Target {
            dbname: login.dbname.clone(),
            ..standby.superuser()
        };
        owner.psql_ok(
            "UPDATE aurora_topology SET session_id = CASE server_id \
             WHEN '3' THEN 'MASTER_SESSION_ID' ELSE 'c9d8e7f6' END",
        );
        for n in 0..3 {
            let sql = format!("INSERT INTO moves VALUES ('down {n}')");
            let why = "a write with the writer endpoint down reaches the new writer";
            write_through(&pgwarm, &sql, why).await;
        }

        // The old writer comes back as a reader, and the endpoint still names it: a pgwarm
        // that knew nothing asks it, and logs in where it says the writer is.
        primary.rebuild_as_standby_of(&standby);
        let fresh = endpoint("127.0.0.?", "20s");
        let sql = "INSERT INTO moves VALUES ('stale endpoint')";
        write_through(
            &fresh,
            sql,
            "a write through a stale endpoint reaches the new writer",
        )
        .await;
        fresh.wait_for_log("this server is not the writer", Duration::from_secs(5));
        assert_eq!(
            hosts_shown(&fresh).await,
            [
                row("127.0.0.2", "standby", "0", "0"),
                row("127.0.0.3", "primary", "1", "1")
            ]
        );
        assert_eq!(new_primary.psql_ok("SELECT count(*) FROM moves"), "5");

        // Without the cluster's view the same endpoint has no writer to give.
        let blind = endpoint("off", "1s");
        let message = login_refusal(&blind.target(), "the endpoint names a reader").await;
        assert!(message.contains("read-write"), "{message}");
    });
}

#[test]
fn a_database_without_the_clusters_view_is_asked_once() {
    io_runtime().block_on(async {
        let login = cluster().fresh_target();
        let pgwarm = Pgwarm::start(
            &login,
            &[
                ("PGWARM_INSTANCE_HOST_PATTERN", "?.instances.example"),
                ("PGWARM_POOL_SIZE", "3"),
            ],
        );
        let mut clients = Vec::new();
        for _ in 0..3 {
            let client = pgwarm.target().connect().await;
            client.batch_execute("BEGIN").await.expect("BEGIN");
            clients.push(client);
        }
        for client in &clients {
            client.batch_execute("COMMIT").await.expect("COMMIT");
        }
        let line = "has no aurora_replica_status()";
        pgwarm.wait_for_log(line, Duration::from_secs(5));
        assert_eq!(pgwarm.log().matches(line).count(), 1, "{}", pgwarm.log());
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_under_load_is_a_wait_for_clients_outside_a_transaction() {
    const CLIENTS: usize = 50;
    const POOL_SIZE: usize = 4;
    let primary = PgCluster::start();
    let login = primary.fresh_target();
    login.psql_ok("create table bad_days(client int, n int)");
    let standby = Arc::new(primary.standby());
    let primary = Arc::new(primary);
    let pool_size = POOL_SIZE.to_string();
    let pgwarm = pgwarm_for(
        &login,
        &[&primary, &standby],
        &[
            ("PGWARM_POOL_SIZE", pool_size.as_str()),
            ("PGWARM_QUERY_WAIT_TIMEOUT", "20s"),
            ("PGWARM_METRICS_INTERVAL", "1s"),
        ],
    );
    let promoted: Arc<Mutex<Option<Instant>>> = Arc::default();
    let fault = {
        let (primary, standby, promoted) = (
            Arc::clone(&primary),
            Arc::clone(&standby),
            Arc::clone(&promoted),
        );
        move || {
            primary.stop_fast();
            // From the request: pg_ctl notices the promotion up to 100 ms late, and pgwarm may
            // have found the new primary before pg_ctl returns.
            *promoted.lock().unwrap() = Some(Instant::now());
            standby.promote();
        }
    };
    let report = FaultLoad::new(CLIENTS).run(&pgwarm.target(), fault).await;
    let promoted = promoted
        .lock()
        .unwrap()
        .expect("the standby's promotion was asked for");
    let new_primary = Target {
        port: standby.port,
        ..login.clone()
    };
    let log = pgwarm.log();
    eprintln!(
        "failover: {} operations, {} errors ({} inside a transaction), {} hangs",
        report.ops,
        report.errors.len(),
        report.errors.iter().filter(|e| e.in_transaction).count(),
        report.hangs.len(),
    );
    report.check(&new_primary, POOL_SIZE, &log);
    let back = report
        .first_success_after(promoted)
        .map(|t| t - promoted)
        .expect("queries succeeded after the promotion");
    eprintln!("failover: queries again {back:?} after the promotion was asked for");
    assert!(
        back < Duration::from_millis(500),
        "queries through pgwarm came back {back:?} after the promotion\n{log}"
    );
    assert!(log.contains("logging in to a new host first"), "{log}");
    // One writer change, counted in the metrics (a line a second while the load ran).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let log = pgwarm.log();
    let changes = emf_sum(&emf_lines(&log, "pgwarm"), "HostChanges");
    assert_eq!(changes, 1.0, "HostChanges in the EMF lines\n{log}");
}

#[test]
fn a_writer_that_turns_read_only_is_left_for_the_next_host() {
    io_runtime().block_on(async {
        // Two primaries with the same login: the first will stop taking writes.
        let (first, second) = (PgCluster::start(), PgCluster::start());
        let name = format!("w_{}", std::process::id());
        let password = "both1";
        let login = first.create_target_with(&name, password);
        let other = second.create_target_with(&name, password);
        for db in [&login, &other] {
            db.psql_ok("create table writes (n int)");
        }
        let pgwarm = pgwarm_for(&login, &[&first, &second], &[]);
        let client = pgwarm.target().connect().await;
        client
            .batch_execute("insert into writes values (0)")
            .await
            .expect("the first host takes writes");
        // A client's own read-only transaction says nothing of the server.
        client
            .batch_execute("begin read only")
            .await
            .expect("begin");
        let own = client.batch_execute("insert into writes values (-1)").await;
        assert_eq!(
            own.expect_err("read only").code().map(|c| c.code()),
            Some("25006")
        );
        client.batch_execute("rollback").await.expect("rollback");
        client
            .batch_execute("insert into writes values (0)")
            .await
            .expect("the first host still takes writes");
        assert!(!pgwarm.log().contains("is now read-only"));
        first.psql_super("ALTER SYSTEM SET default_transaction_read_only = on");
        first.reload();
        let refused = client.batch_execute("insert into writes values (1)").await;
        let refused = refused.expect_err("the first host refuses the write now");
        assert_eq!(
            refused.code().map(|c| c.code()),
            Some("25006"),
            "{refused:?}"
        );
        drop(client);
        for n in 2..7 {
            let client = pgwarm.target().connect().await;
            client
                .batch_execute(&format!("insert into writes values ({n})"))
                .await
                .expect("later writes go to the host that takes them");
        }
        assert_eq!(login.psql_ok("select count(*) from writes"), "2");
        assert_eq!(other.psql_ok("select count(*) from writes"), "5");
        let log = pgwarm.log();
        assert!(log.contains("is now read-only"), "{log}");
    });
}

#[test]
fn the_reader_port_reads_on_the_replicas_and_else_on_the_writer() {
    io_runtime().block_on(async {
        let primary = PgCluster::start();
        let login = primary.fresh_target();
        let (one, two) = (primary.standby(), primary.standby());
        for standby in [&one, &two] {
            standby.wait_for_replay(&primary);
        }
        let reader_port = free_port();
        let listen = format!("127.0.0.1:{reader_port}");
        let ports = format!("{},{}", one.port, two.port);
        let reader_settings = [
            ("PGWARM_READER_LISTEN", listen.as_str()),
            ("PGWARM_READER_HOST", "127.0.0.1,127.0.0.1"),
            ("PGWARM_READER_PORT", ports.as_str()),
            ("PGWARM_METRICS_INTERVAL", "1s"),
        ];
        let pgwarm = Pgwarm::start(&login, &reader_settings);
        let reader = Target {
            port: reader_port,
            ..pgwarm.target()
        };

        // Reads, with a named statement, on a replica; the main port stays on the primary.
        let client = reader.connect().await;
        let statement = client
            .prepare("select pg_is_in_recovery(), current_setting('port')")
            .await
            .expect("prepare on the reader port");
        for _ in 0..4 {
            let row = client.query_one(&statement, &[]).await.expect("a read");
            assert!(row.get::<_, bool>(0), "the reader port lent the primary");
        }
        drop(client);
        assert!(!served_by_standby(&pgwarm.target()).await);

        // Balanced: two transactions at once hold one connection on each replica.
        let (a, b) = (reader.connect().await, reader.connect().await);
        let mut held = Vec::new();
        for client in [&a, &b] {
            client.batch_execute("begin").await.expect("begin");
            let port = simple_rows(client, "select current_setting('port')").await;
            held.push(port[0][0].clone());
        }
        held.sort();
        let mut both = vec![one.port.to_string(), two.port.to_string()];
        both.sort();
        assert_eq!(held, both, "one transaction on each replica");

        // The admin console shows the reader pool beside the main one.
        let admin = pgwarm.admin_target().connect().await;
        let pools = show(&admin, "POOLS").await;
        let reader_pool = format!("{} (reader)", login.dbname);
        let names: Vec<&str> = pools.iter().map(|p| p["database"].as_str()).collect();
        assert_eq!(names, [login.dbname.as_str(), reader_pool.as_str()]);
        assert_eq!(
            pools[1]["cl_active"], "2",
            "the two reader clients: {pools:?}"
        );
        assert_eq!(pools[1]["sv_active"], "2", "{pools:?}");
        let servers = show(&admin, "SERVERS").await;
        let replicas: Vec<(&str, &str)> = servers
            .iter()
            .filter(|s| s["database"] == reader_pool)
            .map(|s| (s["port"].as_str(), s["role"].as_str()))
            .collect();
        assert_eq!(replicas.len(), 2, "{servers:?}");
        assert!(
            replicas.iter().all(|(_, role)| *role == "standby"),
            "{servers:?}"
        );
        drop((a, b));

        // No replica up: the reader port's connections go to the writer, said once.
        one.stop_fast();
        two.stop_fast();
        assert!(!served_by_standby(&reader).await, "the writer serves reads");
        pgwarm.wait_for_log(
            "the reader port's connections go to the writer",
            Duration::from_secs(5),
        );
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let fallbacks = emf_sum(&emf_lines(&pgwarm.log(), "pgwarm"), "ReaderFallbacks");
        assert!(fallbacks >= 1.0, "ReaderFallbacks in the EMF lines");

        // Unless told not to: then a client waits as for any outage, and is told why.
        let reader_port = free_port();
        let listen = format!("127.0.0.1:{reader_port}");
        let strict = Pgwarm::start(
            &login,
            &[
                ("PGWARM_READER_LISTEN", listen.as_str()),
                ("PGWARM_READER_HOST", "127.0.0.1"),
                (
                    "PGWARM_READER_PORT",
                    ports.as_str().split(',').next().unwrap_or(""),
                ),
                ("PGWARM_READER_FALLBACK", "off"),
                ("PGWARM_QUERY_WAIT_TIMEOUT", "1s"),
            ],
        );
        let strict_reader = Target {
            port: reader_port,
            ..strict.target()
        };
        let message = login_refusal(&strict_reader, "no replica, no fallback").await;
        assert!(message.contains("PGWARM_READER_FALLBACK"), "{message}");
        assert!(
            !served_by_standby(&strict.target()).await,
            "the main port still works"
        );
    });
}

#[test]
fn a_refused_password_is_told_at_once_whatever_the_hosts() {
    io_runtime().block_on(async {
        let (primary, standby, login) = primary_and_standby();
        let wrong = Target {
            password: "not-the-password".into(),
            ..login.clone()
        };
        // A wait long enough that only an outage would use it up.
        let pgwarm = pgwarm_for(
            &wrong,
            &[&standby, &primary],
            &[("PGWARM_QUERY_WAIT_TIMEOUT", "60s")],
        );
        let started = Instant::now();
        let error = pgwarm
            .target()
            .try_connect()
            .await
            .expect_err("the database refuses the password");
        let waited = started.elapsed();
        assert_eq!(error.code().map(|c| c.code()), Some("28P01"), "{error:?}");
        assert!(
            waited < Duration::from_secs(30),
            "a refused password is no outage to wait out: {waited:?}"
        );
    });
}
