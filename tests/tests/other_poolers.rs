//! The bugs other transaction poolers shipped, each as a test through pgwarm in transaction
//! mode (pg_dump in session mode): Supavisor #1174 and #1175, PgDog #999, porsager/postgres
//! #1212, and the startup and clean-up habits of pgJDBC, Npgsql, psycopg and asyncpg. Each test
//! fails on a pooler that has the bug.

use pgwarm_tests::*;
use std::process::Command;
use std::time::Duration;

fn login(pgwarm: &Pgwarm) -> Wire {
    let target = pgwarm.target();
    Wire::login(pgwarm.addr(), &target.user, &target.dbname).0
}

/// Two server connections, the first held in a transaction by another client: whatever the
/// wire sends next runs on the second one.
struct OtherConnection {
    _holder: Wire,
}

impl OtherConnection {
    fn hold(pgwarm: &Pgwarm) -> OtherConnection {
        let mut holder = login(pgwarm);
        let replies = holder.run(&Batch::new().query("begin; select 1"));
        assert!(Reply::codes(&replies).is_empty(), "{replies:?}");
        OtherConnection { _holder: holder }
    }
}

/// Supavisor #1174 (pgJDBC's getMetaData): a Describe of a named statement whose transaction
/// lands on a server connection that never saw the statement.
#[test]
fn a_describe_on_a_connection_lacking_the_statement_describes_it() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "2")]);
    let mut wire = login(&pgwarm);
    let replies = wire.run(&Batch::prepare(
        "meta",
        "select $1::int as n, 'x'::text as t",
    ));
    assert!(Reply::codes(&replies).is_empty(), "{replies:?}");
    let _held = OtherConnection::hold(&pgwarm);
    let replies = wire.run(&Batch::new().describe_statement("meta").sync());
    assert!(Reply::codes(&replies).is_empty(), "{replies:?}");
    assert!(
        replies.contains(&Reply::ParameterDescription(1)),
        "{replies:?}"
    );
    assert!(
        replies.contains(&Reply::RowDescription(vec!["n".into(), "t".into()])),
        "{replies:?}"
    );
}

/// Supavisor #1175: a Parse that fails leaves no name behind; the client can use it again.
#[test]
fn a_failed_parse_leaves_its_name_free() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "2")]);
    let mut wire = login(&pgwarm);
    let replies = wire.run(&Batch::prepare("s", "selec 1"));
    assert_eq!(Reply::codes(&replies), ["42601"], "{replies:?}");
    let replies = wire.run(&Batch::prepare("s", "select 'reused'"));
    assert!(Reply::codes(&replies).is_empty(), "{replies:?}");
    let replies = wire.run(&Batch::exec("s", &[]));
    assert_eq!(Reply::values(&replies), ["reused"], "{replies:?}");
}

/// PgDog #999: lib/pq inside an explicit transaction sends Parse + Describe + Flush and waits for
/// the answers before it sends Bind + Execute + Sync. A pooler that waits for the Sync stalls.
#[test]
fn flush_without_sync_inside_a_transaction_is_answered() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "1")]);
    let mut wire = login(&pgwarm);
    let replies = wire.run(&Batch::new().query("begin"));
    assert_eq!(replies.last(), Some(&Reply::Ready('T')), "{replies:?}");
    let flush = Batch::new()
        .parse("", "select $1::int + 1")
        .describe_statement("")
        .flush();
    wire.send(flush.bytes());
    // Answered without a Sync; the read times out (10 s) if the pooler waits for one.
    let mut seen = Vec::new();
    while !matches!(seen.last(), Some(Reply::RowDescription(_))) {
        let message = wire.read().expect("answers to Parse + Describe + Flush");
        seen.push(Reply::from(message));
    }
    assert_eq!(seen[0], Reply::ParseComplete, "{seen:?}");
    let replies = wire.run(&Batch::new().bind("", &[Some("41")]).execute().sync());
    assert_eq!(Reply::values(&replies), ["42"], "{replies:?}");
    assert_eq!(replies.last(), Some(&Reply::Ready('T')));
    let replies = wire.run(&Batch::new().query("commit"));
    assert_eq!(replies.last(), Some(&Reply::Ready('I')), "{replies:?}");
}

/// porsager/postgres #1212: a driver that prepares COMMIT as a named statement. On a pooler that
/// lost the statement, the driver's retry turned the COMMIT into a silent ROLLBACK. Here the
/// COMMIT runs on a server connection that never saw it prepared, and the row must be durable.
#[test]
fn a_commit_prepared_as_a_named_statement_commits() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "2")]);
    let mut setup = login(&pgwarm);
    setup.run(&Batch::new().query("create table durable (v text)"));
    let mut wire = login(&pgwarm);
    let replies = wire.run(
        &Batch::prepare("c", "commit")
            .parse("ins", "insert into durable values ($1)")
            .sync(),
    );
    assert!(Reply::codes(&replies).is_empty(), "{replies:?}");
    let _held = OtherConnection::hold(&pgwarm);
    let replies = wire.run(
        &Batch::new()
            .query("begin")
            .bind("ins", &[Some("kept")])
            .execute()
            .bind("c", &[])
            .execute()
            .sync(),
    );
    assert!(Reply::codes(&replies).is_empty(), "{replies:?}");
    assert_eq!(
        replies.last(),
        Some(&Reply::Ready('I')),
        "committed: {replies:?}"
    );
    let seen = db.psql_ok("select string_agg(v, ',') from durable");
    assert_eq!(seen, "kept", "the row is durable");
}

/// Startup habits: pgJDBC sends extra_float_digits=3 and DateStyle=ISO; Npgsql runs DISCARD ALL
/// when it returns a connection to its own pool; asyncpg re-prepares after DEALLOCATE ALL.
#[test]
fn driver_habits_at_startup_and_clean_up_behave_as_on_postgresql() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "2")]);
    let params = [("extra_float_digits", "3"), ("DateStyle", "ISO")];
    let (mut jdbc, _, statuses) = Wire::login_with(pgwarm.addr(), &db.user, &db.dbname, &params);
    assert!(
        statuses.contains(&("DateStyle".into(), "ISO, MDY".into())),
        "{statuses:?}"
    );
    for _ in 0..3 {
        let replies = jdbc
            .run(&Batch::new().query("select 0.1::float8, current_setting('extra_float_digits')"));
        assert_eq!(Reply::values(&replies), ["0.1"], "{replies:?}");
        assert!(
            replies.contains(&Reply::DataRow(vec![Some("0.1".into()), Some("3".into())])),
            "{replies:?}"
        );
    }

    // Npgsql: DISCARD ALL on return, then the same connection's next user prepares again.
    let mut npgsql = login(&pgwarm);
    let replies = npgsql.run(&Batch::prepare("s", "select 'before'"));
    assert!(Reply::codes(&replies).is_empty(), "{replies:?}");
    let replies = npgsql.run(&Batch::new().query("discard all"));
    assert!(Reply::codes(&replies).is_empty(), "{replies:?}");
    let replies = npgsql.run(&Batch::exec("s", &[]));
    assert_eq!(
        Reply::codes(&replies),
        ["26000"],
        "gone, as on PostgreSQL: {replies:?}"
    );
    let replies = npgsql.run(
        &Batch::prepare("s", "select 'after'")
            .bind("s", &[])
            .execute()
            .sync(),
    );
    assert_eq!(Reply::values(&replies), ["after"], "{replies:?}");

    // asyncpg: DEALLOCATE ALL, then its statement cache prepares the same names again.
    let replies = npgsql.run(&Batch::new().query("deallocate all"));
    assert!(Reply::codes(&replies).is_empty(), "{replies:?}");
    let replies = npgsql.run(
        &Batch::prepare("s", "select 'again'")
            .bind("s", &[])
            .execute()
            .sync(),
    );
    assert_eq!(Reply::values(&replies), ["again"], "{replies:?}");
}

/// pg_dump and pg_restore of a small database through pgwarm in session mode: the dump is the
/// one taken directly, and a restore through pgwarm gives the same dump again.
#[test]
fn pg_dump_and_pg_restore_through_session_mode_are_identical() {
    let db = cluster().fresh_target();
    db.psql_ok(
        "create table a (id serial primary key, name text not null, at timestamptz default now());\
         insert into a (name) select 'n' || g from generate_series(1, 200) g;\
         create index a_name on a (name);\
         create view v as select name from a where id % 2 = 0;\
         create function f(x int) returns int language sql as 'select x * 2';\
         comment on table a is 'pgwarm dump test'",
    );
    let pgwarm = Pgwarm::start(
        &db,
        &[("PGWARM_POOL_MODE", "session"), ("PGWARM_POOL_SIZE", "2")],
    );
    let dir = TempDir::new("pgwarm-dump");
    let dump = |target: &Target, file: &str| {
        let path = dir.path().join(file);
        let mut cmd = Command::new(tool("pg_dump"));
        target.apply_libpq_env(&mut cmd);
        cmd.args(["--no-sync", "-Fc", "-f"]).arg(&path);
        let out = output_with_timeout(&mut cmd, None, Duration::from_secs(60));
        assert!(
            out.status.success(),
            "pg_dump: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        path
    };
    let as_sql = |path: &std::path::Path| {
        let mut cmd = Command::new(tool("pg_restore"));
        cmd.arg("-f").arg("-").arg(path);
        let out = output_with_timeout(&mut cmd, None, Duration::from_secs(60));
        assert!(
            out.status.success(),
            "pg_restore -f: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The script's \restrict key is random each time (pg_dump 15.14 and later).
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let same = |a: Vec<String>, b: Vec<String>, what: &str| {
        let first = a.iter().zip(&b).position(|(x, y)| x != y);
        assert!(
            a.len() == b.len() && first.is_none(),
            "{what}: {} and {} lines, first difference at line {first:?}: {:?} / {:?}",
            a.len(),
            b.len(),
            first.map(|i| &a[i]),
            first.map(|i| &b[i])
        );
    };
    let direct = dump(&db, "direct.dump");
    let through = dump(&pgwarm.target(), "pgwarm.dump");
    same(as_sql(&direct), as_sql(&through), "the same dump");

    db.psql_ok("drop view v; drop table a; drop function f(int)");
    let mut restore = Command::new(tool("pg_restore"));
    pgwarm.target().apply_libpq_env(&mut restore);
    restore
        .args(["--no-owner", "--exit-on-error", "-d", &db.dbname])
        .arg(&through);
    let out = output_with_timeout(&mut restore, None, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "pg_restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = dump(&pgwarm.target(), "again.dump");
    same(as_sql(&direct), as_sql(&again), "restored as it was");
}
