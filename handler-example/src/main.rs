//! The example function. Inside Lambda (`AWS_LAMBDA_RUNTIME_API` set) it serves invocations
//! through `lambda_runtime`: each records a visit from the event's `"source"` (default
//! `"lambda"`) and returns `{"visits": N, "db_ms": T}`. From the command line,
//! `handler-example [invocations]` records that many visits one after the other, each on a fresh
//! connection, and prints each result as a JSON line. `DATABASE_URL` points it at pgwarm
//! (default postgres://app@127.0.0.1:5432/app).

use handler_example::{record_visit, DEFAULT_DATABASE_URL};
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned());
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        return serve_lambda(url).await;
    }
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

async fn serve_lambda(url: String) -> ExitCode {
    let url = &url;
    let handler = service_fn(move |event: LambdaEvent<Value>| async move {
        let source = event
            .payload
            .get("source")
            .and_then(Value::as_str)
            .unwrap_or("lambda")
            .to_owned();
        let visit = record_visit(url, &source).await?;
        Ok::<Value, lambda_runtime::Error>(visit.to_json())
    });
    match lambda_runtime::run(handler).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("handler-example: {e}");
            ExitCode::FAILURE
        }
    }
}
