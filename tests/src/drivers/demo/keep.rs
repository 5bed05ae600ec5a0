//! `demo --keep`: after the report, one environment stays up (pgwarm registered, the handler
//! running, not frozen) with the psql lines to reach it; Enter invokes the function once, Ctrl-C
//! or SIGTERM sends SHUTDOWN and ends it.

use tokio::signal::unix::Signal;

use crate::drivers::lifecycle::{self, invoke};
use crate::harness::{Lambda, Moto, Target};

/// What stays up with `--keep`.
pub(super) struct Kept {
    pub(super) lambda: Lambda,
    pub(super) app: Target,
    pub(super) _moto: Moto,
}

/// `--keep`: one environment stays up until Ctrl-C (or SIGTERM); Enter invokes the function.
pub(super) async fn run(kept: Kept, (mut interrupt, mut terminate): (Signal, Signal)) {
    let Kept { lambda, app, _moto } = kept;
    println!(
        "One environment stays up: pgwarm registered as the extension, handler-example as the function.\n\
         \n  psql \"host=127.0.0.1 port={port} user={user} dbname={db} sslmode=disable\"     the database, through pgwarm\n\
         \x20 psql \"host=127.0.0.1 port={port} user={user} dbname=pgwarm sslmode=disable\"  its admin console: SHOW POOLS; SHOW STATS; SHOW LAMBDA;\n\
         \nEnter invokes the function once; Ctrl-C sends SHUTDOWN and removes everything.",
        port = app.port,
        user = app.user,
        db = app.dbname
    );
    // Lines of stdin, read on a thread of their own: the channel closes with stdin.
    let (line_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            if line.is_err() || line_tx.send(()).is_err() {
                break;
            }
        }
    });
    let mut stdin_open = true;
    loop {
        tokio::select! {
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
            line = lines.recv(), if stdin_open => match line {
                Some(()) => {
                    let i = invoke(&lambda, "demo --keep").await;
                    match i.outcome {
                        Ok(a) => println!("invocation: {} visits, db_ms {:.2}, wall {:.2} ms", a.visits, a.db_ms, i.wall_ms),
                        Err(e) => println!("invocation failed: {e}"),
                    }
                }
                None => stdin_open = false,
            },
        }
    }
    let shutdown = lifecycle::shutdown(lambda).await;
    println!(
        "\nSHUTDOWN: pgwarm exited with status {} after {} ms",
        shutdown.status_text(),
        shutdown.exit_ms.map_or("-".into(), |t| format!("{t:.1}"))
    );
}
