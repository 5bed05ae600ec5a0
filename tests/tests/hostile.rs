//! Hostile but well-framed input, as a fuzzer would not find it in seconds: each gets an
//! ErrorResponse with a SQLSTATE (from pgwarm or the database), at most that client is closed,
//! and pgwarm keeps serving everyone else.

use pgwarm_tests::*;
use std::time::Duration;

/// A Parse of `name` for `sql` with no declared types.
fn parse(name: &[u8], sql: &[u8]) -> Vec<u8> {
    let body = [name, b"\0", sql, b"\0\0\0"].concat();
    raw_message(b'P', &body)
}

/// A Bind of statement `name` to the unnamed portal with `params` NULL parameters.
fn bind_nulls(name: &[u8], params: u16) -> Vec<u8> {
    let mut body = [b"\0".as_slice(), name, b"\0", b"\0\0"].concat();
    body.extend_from_slice(&params.to_be_bytes());
    for _ in 0..params {
        body.extend_from_slice(&(-1i32).to_be_bytes());
    }
    body.extend_from_slice(b"\0\0");
    raw_message(b'B', &body)
}

fn execute() -> Vec<u8> {
    raw_message(b'E', b"\0\0\0\0\0")
}

fn sync() -> Vec<u8> {
    raw_message(b'S', b"")
}

/// Reads until ReadyForQuery and returns the SQLSTATEs of the errors before it.
fn codes_until_ready(wire: &mut Wire) -> Vec<String> {
    use postgres_protocol::message::backend::Message;
    let mut codes = Vec::new();
    loop {
        match wire.read() {
            Some(Message::ErrorResponse(body)) => codes.push(wire_error(&body).code),
            Some(Message::ReadyForQuery(_)) => return codes,
            Some(_) => {}
            None => panic!("closed before ReadyForQuery; errors so far {codes:?}"),
        }
    }
}

/// Every case here on one pgwarm, with a bystander client whose queries must keep working.
#[test]
fn hostile_sequences_get_errors_and_disturb_no_one_else() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "2")]);
    let login = || Wire::login(pgwarm.addr(), &db.user, &db.dbname).0;
    let mut bystander = login();
    let bystander_ok = |wire: &mut Wire| {
        let replies = wire.run(&Batch::new().query("select 'still here'"));
        assert_eq!(Reply::values(&replies), ["still here"], "{replies:?}");
    };

    // A statement name of 64 KiB: it works as any name does.
    let mut wire = login();
    let long_name = vec![b'n'; 64 * 1024];
    wire.send(
        &[
            parse(&long_name, b"select 1"),
            bind_nulls(&long_name, 0),
            execute(),
            sync(),
        ]
        .concat(),
    );
    assert_eq!(codes_until_ready(&mut wire), Vec::<String>::new());
    bystander_ok(&mut bystander);

    // 65,535 parameters for a statement that has one: the database says 08P01.
    wire.send(
        &[
            parse(b"one", b"select $1::int"),
            bind_nulls(b"one", u16::MAX),
            execute(),
            sync(),
        ]
        .concat(),
    );
    assert_eq!(codes_until_ready(&mut wire), ["08P01"]);

    // A Bind of a name no one prepared, an Execute with no Bind.
    wire.send(&[bind_nulls(b"nobody", 0), execute(), sync()].concat());
    assert_eq!(codes_until_ready(&mut wire), ["26000"]);
    wire.send(&[execute(), sync()].concat());
    assert_eq!(codes_until_ready(&mut wire), ["34000"]);

    // A storm of 20,000 Syncs in one write: 20,000 ReadyForQuery, then business as usual.
    let storm: Vec<u8> = std::iter::repeat_n(sync(), 20_000).flatten().collect();
    wire.send(&storm);
    for _ in 0..20_000 {
        assert_eq!(codes_until_ready(&mut wire), Vec::<String>::new());
    }
    let replies = wire.run(&Batch::new().query("select 'after the storm'"));
    assert_eq!(Reply::values(&replies), ["after the storm"]);

    // CopyData, CopyDone and CopyFail outside COPY: PostgreSQL ignores them; so does the session.
    wire.send(
        &[
            raw_message(b'd', b"1\t2\n"),
            raw_message(b'c', b""),
            raw_message(b'f', b"no\0"),
        ]
        .concat(),
    );
    let replies = wire.run(&Batch::new().query("select 'copy ignored'"));
    assert_eq!(Reply::values(&replies), ["copy ignored"], "{replies:?}");
    bystander_ok(&mut bystander);

    // A length header of 1 GiB: refused before a byte of it is read, FATAL 08P01, closed.
    let mut wire = login();
    wire.send(&[b'Q', 0x40, 0, 0, 0]);
    let error = wire.expect_error();
    assert_eq!(
        (error.severity.as_str(), error.code.as_str()),
        ("FATAL", "08P01"),
        "{error:?}"
    );
    assert!(wire.is_closed());

    // A message type no client sends, and a Sync with a body: FATAL 08P01 each.
    for bad in [raw_message(b'\x01', b"x"), raw_message(b'S', b"body")] {
        let mut wire = login();
        wire.send(&bad);
        let error = wire.expect_error();
        assert_eq!(error.code, "08P01", "{error:?}");
        assert!(wire.is_closed());
    }
    bystander_ok(&mut bystander);
    assert!(
        cluster().wait_for_backends(&db.user, 2, Duration::from_secs(5)) <= 2,
        "the pool is intact"
    );
}
