//! Runs the example function's work from the command line: `handler-example [invocations]`
//! records that many visits one after the other, each on a fresh connection, and prints each
//! result as a JSON line. `DATABASE_URL` points it at pgwarm (default
//! postgres://app@127.0.0.1:5432/app). The Lambda entry point comes with pgwarm's Lambda
//! lifecycle support.

use handler_example::{record_visit, DEFAULT_DATABASE_URL};
use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned());
    let invocations: u32 = match std::env::args().nth(1).map(|a| a.parse()) {
        None => 1,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            eprintln!("usage: handler-example [invocations]");
            return ExitCode::from(2);
        }
    };
    for _ in 0..invocations {
        match record_visit(&url, "handler-example").await {
            Ok(visit) => println!("{}", visit.to_json()),
            Err(e) => {
                eprintln!("handler-example: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
