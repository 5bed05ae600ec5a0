//! Session state in transaction mode: a client's startup parameters (application_name,
//! TimeZone, DateStyle, search_path, extra_float_digits) and its plain SETs follow it to
//! whichever server connection runs its next transaction and never reach another client;
//! SET LOCAL, SETs undone by ROLLBACK (to a savepoint, too), RESET, RESET ALL and DISCARD ALL
//! behave as on PostgreSQL (the expectations were checked against PostgreSQL 15 directly).
//! A [`Rotator`] makes a client's consecutive transactions alternate between the pool's two
//! server connections, so "on every server connection" is certain, not left to chance.

use pgwarm_tests::*;
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio_postgres::Client;

/// application_name, TimeZone and the backend that answered, as text.
const SETTINGS: &str = "select current_setting('application_name'), \
    current_setting('TimeZone'), pg_backend_pid()::text";

/// With PGWARM_POOL_SIZE=2: two clients hold both server connections in open transactions and
/// let go of one at a time, so whatever runs inside [`Rotator::turn`] gets the one free
/// connection, and consecutive turns alternate between the two.
struct Rotator {
    holders: [Client; 2],
    next: usize,
}

impl Rotator {
    async fn start(target: &Target) -> Rotator {
        let holders = [target.connect().await, target.connect().await];
        let mut pids = BTreeSet::new();
        for holder in &holders {
            pids.insert(simple_rows(holder, "begin; select pg_backend_pid()").await[0][0].clone());
        }
        assert_eq!(pids.len(), 2, "the holders hold both server connections");
        Rotator { holders, next: 0 }
    }

    /// Runs `work` while exactly one server connection is free.
    async fn turn<T>(&mut self, work: impl Future<Output = T>) -> T {
        let holder = &self.holders[self.next];
        holder.batch_execute("commit").await.expect("holder commit");
        let out = work.await;
        holder
            .batch_execute("begin; select 1")
            .await
            .expect("holder begin");
        self.next = 1 - self.next;
        out
    }
}

/// (application_name, TimeZone, backend pid) through the simple or the extended protocol.
async fn settings(client: &Client, extended: bool) -> (String, String, String) {
    let row = if extended {
        let rows = client.query_typed(SETTINGS, &[]).await.expect(SETTINGS);
        (0..3).map(|i| rows[0].get::<_, String>(i)).collect()
    } else {
        simple_rows(client, SETTINGS).await.remove(0)
    };
    (row[0].clone(), row[1].clone(), row[2].clone())
}

/// The first DataRow among `replies`, NULLs as "", after checking there was no error.
fn first_row(replies: &[Reply], what: &str) -> Vec<String> {
    assert!(Reply::codes(replies).is_empty(), "{what}: {replies:?}");
    replies
        .iter()
        .find_map(|r| match r {
            Reply::DataRow(values) => Some(values.iter().map(|v| v.clone().unwrap_or_default())),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{what}: no row in {replies:?}"))
        .collect()
}

/// The issue's test: client A's SET application_name (simple protocol) and SET TimeZone
/// (extended protocol) hold on each of its 20 transactions, which alternate between both server
/// connections, while client B (its own SETs) and client C (none) query concurrently and never
/// see A's values; A's SET LOCAL stays inside its transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_follows_its_client_to_every_server_connection_and_no_other() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "2")]);
    let target = pgwarm.target();
    let (a, b, c) = (
        target.connect().await,
        target.connect().await,
        target.connect().await,
    );
    let (app, tz, _) = settings(&c, false).await;
    a.batch_execute("set application_name = 'client-a'")
        .await
        .unwrap();
    a.query_typed("set timezone = 'America/New_York'", &[])
        .await
        .unwrap();
    b.batch_execute("set application_name = 'client-b'; set timezone = 'Asia/Tokyo'")
        .await
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let watch = |client: Client, want: (String, String), name: &'static str| {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) && n < 5000 {
                let (app, tz, pid) = settings(&client, n % 2 == 1).await;
                assert_eq!(
                    (&app, &tz),
                    (&want.0, &want.1),
                    "{name}, query {n}, backend {pid}"
                );
                n += 1;
            }
            n
        })
    };
    let watchers = [
        watch(b, ("client-b".into(), "Asia/Tokyo".into()), "client B"),
        watch(c, (app, tz), "client C (no SET)"),
    ];

    let mut rotator = Rotator::start(&target).await;
    let mut pids = BTreeSet::new();
    for i in 0..20 {
        let a = &a;
        let (app, tz, pid) = rotator
            .turn(async move {
                if i == 10 {
                    a.batch_execute("begin; set local timezone = 'Asia/Kolkata'")
                        .await
                        .unwrap();
                    let (_, tz, _) = settings(a, true).await;
                    assert_eq!(tz, "Asia/Kolkata", "SET LOCAL inside its transaction");
                    a.batch_execute("commit").await.unwrap();
                }
                settings(a, i % 2 == 1).await
            })
            .await;
        assert_eq!(
            (app.as_str(), tz.as_str()),
            ("client-a", "America/New_York"),
            "A's transaction {i}"
        );
        pids.insert(pid);
    }
    assert_eq!(pids.len(), 2, "A ran on both server connections: {pids:?}");
    // The holders' open transactions would keep the watchers' last queries waiting.
    drop(rotator);
    stop.store(true, Ordering::Relaxed);
    for watcher in watchers {
        let queries = watcher
            .await
            .expect("a concurrent client saw wrong settings (see above)");
        assert!(queries > 0);
    }
}

/// Two raw-protocol clients' startup parameters hold on each of their transactions, which
/// alternate between both server connections with each client running right after the other on
/// the same one; neither ever sees, nor gets a ParameterStatus of, the other's values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_parameters_follow_their_client_and_no_other() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "2")]);
    let one = [
        ("application_name", "wire-one"),
        ("TimeZone", "Pacific/Auckland"),
        ("DateStyle", "SQL, DMY"),
        ("search_path", "app_schema, public"),
        ("extra_float_digits", "0"),
    ];
    let two = [
        ("application_name", "wire-two"),
        ("TimeZone", "Europe/Lisbon"),
        ("DateStyle", "German, DMY"),
        ("search_path", "other_schema"),
        ("extra_float_digits", "2"),
    ];
    let read = format!(
        "select {}, pg_backend_pid()::text",
        one.map(|(name, _)| format!("current_setting('{name}')"))
            .join(", ")
    );
    let mut wires =
        [&one, &two].map(|params| Wire::login_with(pgwarm.addr(), &db.user, &db.dbname, params).0);
    let mut rotator = Rotator::start(&pgwarm.target()).await;
    let mut pids = [BTreeSet::new(), BTreeSet::new()];
    for i in 0..10 {
        let batch = Batch::new().query(&read);
        let replies = rotator
            .turn(async { wires.each_mut().map(|w| w.run(&batch)) })
            .await;
        for (k, (replies, params)) in replies.iter().zip([&one, &two]).enumerate() {
            let what = format!("transaction {i} of client {}", params[0].1);
            let row = first_row(replies, &what);
            let want: Vec<&str> = params.iter().map(|(_, v)| *v).collect();
            assert_eq!(row[..5], want, "{what}");
            pids[k].insert(row[5].clone());
            for reply in replies {
                if let Reply::ParameterStatus(name, value) = reply {
                    let mine = params.iter().find(|(p, _)| p.eq_ignore_ascii_case(name));
                    assert!(mine.is_none_or(|(_, v)| v == value), "{what}: {reply:?}");
                }
            }
        }
    }
    assert!(
        pids.iter().all(|p| p.len() == 2),
        "each ran on both connections: {pids:?}"
    );
}

/// The login reports the client's own startup values in ParameterStatus, as PostgreSQL does
/// (drivers read DateStyle, TimeZone, client_encoding from there), and a SET is reported too.
#[test]
fn login_reports_the_clients_startup_parameters() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "2")]);
    let params = [
        ("application_name", "wire-login"),
        ("TimeZone", "Pacific/Auckland"),
        ("DateStyle", "SQL, DMY"),
    ];
    let (mut wire, _, statuses) = Wire::login_with(pgwarm.addr(), &db.user, &db.dbname, &params);
    for (name, want) in params {
        let got = statuses
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str());
        assert_eq!(
            got,
            Some(want),
            "ParameterStatus {name} at login: {statuses:?}"
        );
    }
    let replies = wire.run(&Batch::new().query("set timezone = 'Asia/Tokyo'"));
    let reported = Reply::ParameterStatus("TimeZone".into(), "Asia/Tokyo".into());
    assert!(replies.contains(&reported), "{replies:?}");
}

/// A SET inside a transaction that is rolled back, or aborted by an error, does not persist,
/// nor does a SET that fails; one in a committed transaction does, also when sent as a named
/// prepared statement, as on PostgreSQL. Each outcome is checked on both connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_persists_only_when_its_transaction_commits() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "2")]);
    let a = pgwarm.target().connect().await;
    a.batch_execute("set application_name = 'before'; set timezone = 'America/New_York'")
        .await
        .unwrap();
    let mut rotator = Rotator::start(&pgwarm.target()).await;
    let steps = [
        (
            "begin; set timezone = 'Europe/Paris'; rollback",
            false,
            "America/New_York",
        ),
        (
            "begin; set timezone = 'Europe/Paris'; select 1/0",
            true,
            "America/New_York",
        ),
        ("set timezone = 'Nowhere/Nope'", true, "America/New_York"),
        (
            "begin; set timezone = 'Europe/Paris'; commit",
            false,
            "Europe/Paris",
        ),
    ];
    for (sql, fails, want) in steps {
        rotator
            .turn(async {
                let result = a.batch_execute(sql).await;
                assert_eq!(result.is_err(), fails, "{sql}: {result:?}");
                if fails {
                    a.batch_execute("rollback").await.unwrap();
                }
            })
            .await;
        for check in 0..2 {
            let (_, tz, pid) = rotator.turn(settings(&a, check == 1)).await;
            assert_eq!(tz, want, "after {sql:?}, on backend {pid}");
        }
    }
    // tokio-postgres sends this as Parse (a named statement), Bind, Execute.
    let named = a.execute("set application_name = 'committed'", &[]);
    rotator.turn(named).await.unwrap();
    for check in 0..2 {
        let (app, _, pid) = rotator.turn(settings(&a, check == 1)).await;
        assert_eq!(
            app, "committed",
            "SET as a named statement, on backend {pid}"
        );
    }
}

/// ROLLBACK TO SAVEPOINT undoes the SETs made after the savepoint and only those; RELEASE
/// keeps them (PostgreSQL commits the values set before the savepoint).
#[tokio::test]
async fn a_set_undone_by_rollback_to_savepoint_does_not_persist() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "2")]);
    let a = pgwarm.target().connect().await;
    let mut rotator = Rotator::start(&pgwarm.target()).await;
    let steps = [
        (
            "begin; set timezone = 'Europe/Paris'; savepoint s; \
             set timezone = 'Asia/Tokyo'; rollback to s; commit",
            "Europe/Paris",
        ),
        (
            "begin; savepoint s; set timezone = 'Asia/Tokyo'; release s; commit",
            "Asia/Tokyo",
        ),
    ];
    for (sql, want) in steps {
        rotator.turn(a.batch_execute(sql)).await.unwrap();
        for check in 0..2 {
            let (_, tz, pid) = rotator.turn(settings(&a, check == 1)).await;
            assert_eq!(tz, want, "after {sql:?}, on backend {pid}");
        }
    }
}

/// RESET, SET ... TO DEFAULT, RESET ALL and DISCARD ALL go back to the client's own startup
/// values (PostgreSQL's reset values), whichever connection runs next; for a client without
/// startup values, RESET gives the server's default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_and_discard_all_restore_the_clients_startup_values() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "2")]);
    let params = [
        ("application_name", "wire-reset"),
        ("TimeZone", "Pacific/Auckland"),
    ];
    let mut wire = Wire::login_with(pgwarm.addr(), &db.user, &db.dbname, &params).0;
    let plain = pgwarm.target().connect().await;
    let (_, server_tz, _) = settings(&plain, false).await;
    let mut rotator = Rotator::start(&pgwarm.target()).await;
    let change = "set timezone = 'Asia/Tokyo'; set application_name = 'changed'";
    let steps = [
        (change, "changed", "Asia/Tokyo"),
        ("reset timezone", "changed", "Pacific/Auckland"),
        ("set timezone = 'Asia/Tokyo'", "changed", "Asia/Tokyo"),
        ("set timezone to default", "changed", "Pacific/Auckland"),
        ("reset all", "wire-reset", "Pacific/Auckland"),
        (change, "changed", "Asia/Tokyo"),
        ("discard all", "wire-reset", "Pacific/Auckland"),
    ];
    for (sql, app, tz) in steps {
        let replies = rotator
            .turn(async { wire.run(&Batch::new().query(sql)) })
            .await;
        assert!(Reply::codes(&replies).is_empty(), "{sql}: {replies:?}");
        for check in 0..2 {
            let replies = rotator
                .turn(async { wire.run(&Batch::new().query(SETTINGS)) })
                .await;
            let row = first_row(&replies, &format!("check {check} after {sql:?}"));
            assert_eq!(
                (row[0].as_str(), row[1].as_str()),
                (app, tz),
                "after {sql:?}, on backend {}",
                row[2]
            );
        }
    }
    rotator
        .turn(plain.batch_execute("set timezone = 'Asia/Tokyo'; reset timezone"))
        .await
        .unwrap();
    for check in 0..2 {
        let (_, tz, pid) = rotator.turn(settings(&plain, check == 1)).await;
        assert_eq!(
            tz, server_tz,
            "RESET without a startup value, on backend {pid}"
        );
    }
}

/// SET values that need quoting (a quoted identifier with a quote inside, a list, a literal
/// with a quote) and the SET TIME ZONE, SET SESSION and SET ... TO forms are replayed exactly:
/// what the client reads on later transactions, on both connections, equals what it read right
/// after the SET, while another client running next on the same connection sees none of it.
#[tokio::test]
async fn set_values_are_replayed_exactly_and_to_no_one_else() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "2")]);
    let (a, other) = (
        pgwarm.target().connect().await,
        pgwarm.target().connect().await,
    );
    let read = "select current_setting('search_path'), current_setting('DateStyle'), \
        current_setting('application_name'), current_setting('TimeZone'), \
        current_setting('statement_timeout'), current_setting('IntervalStyle')";
    let sets = r#"set search_path = "Odd ""Schema""", public; set datestyle = 'SQL, DMY';
        set application_name = 'it''s mine'; set time zone 'Asia/Tokyo';
        set session statement_timeout = '5s'; set intervalstyle to iso_8601"#;
    let untouched = simple_rows(&other, read).await;
    let truth = simple_rows(&a, &format!("{sets}; {read}")).await;
    assert_eq!(truth[0][2], "it's mine", "the SETs ran");
    let mut rotator = Rotator::start(&pgwarm.target()).await;
    for i in 0..4 {
        let (mine, theirs) = rotator
            .turn(async { (simple_rows(&a, read).await, simple_rows(&other, read).await) })
            .await;
        assert_eq!(mine, truth, "transaction {i} of the client that SET");
        assert_eq!(theirs, untouched, "transaction {i} of another client");
    }
}

/// A startup value the database refuses ends that client at login with the database's own
/// FATAL, as PostgreSQL refuses the login, and the server connection that checked it stays in
/// the pool for the next client.
#[test]
fn a_refused_startup_value_ends_that_client_only() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "1")]);
    let mut good = Wire::login(pgwarm.addr(), &db.user, &db.dbname).0;
    let pid = |wire: &mut Wire| {
        let replies = wire.run(&Batch::new().query("select pg_backend_pid()::text"));
        first_row(&replies, "backend pid")[0].clone()
    };
    let before = pid(&mut good);
    let params = [("TimeZone", "Nowhere/Atlantis")];
    let mut bad = Wire::connect(pgwarm.addr());
    bad.send_startup(&db.user, &db.dbname, &params);
    let error = bad.expect_error();
    assert_eq!(error.code, "22023", "{error:?}");
    assert_eq!(error.severity, "FATAL", "{error:?}");
    assert!(error.message.contains("TimeZone"), "{error:?}");
    assert!(bad.is_closed(), "the client is closed after its FATAL");
    assert_eq!(
        pid(&mut good),
        before,
        "the same server connection serves on"
    );
}

/// `set_config(name, value, false)` as a function, the way Django sets its time zone, changes a
/// reported setting without any SET: it too follows its client to both server connections and
/// never reaches another client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reported_setting_changed_by_set_config_follows_its_client() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "2")]);
    let target = pgwarm.target();
    let (a, b) = (target.connect().await, target.connect().await);
    let (_, tz_before, _) = settings(&b, false).await;
    a.query_typed("select set_config('TimeZone', 'Asia/Tokyo', false)", &[])
        .await
        .unwrap();
    let mut rotator = Rotator::start(&target).await;
    let mut pids = BTreeSet::new();
    for i in 0..6 {
        let ((_, tz_a, pid), (_, tz_b, _)) = rotator
            .turn(async { (settings(&a, i % 2 == 0).await, settings(&b, false).await) })
            .await;
        assert_eq!(tz_a, "Asia/Tokyo", "A's transaction {i}");
        assert_eq!(tz_b, tz_before, "B's transaction {i} after A's");
        pids.insert(pid);
    }
    assert_eq!(pids.len(), 2, "A ran on both server connections: {pids:?}");
}
