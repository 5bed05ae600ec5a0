//! The one thing pgwarm takes from Lambda's Telemetry API: `platform.runtimeDone`, which says
//! that the function's runtime has finished an invocation. The Extensions API tells an extension
//! when an invocation starts, never when it ends; and the environment is frozen only once every
//! extension has asked for its next event, so an extension that waits for this event before
//! asking can still act (give its connections back) after the invocation and before the freeze.
//!
//! pgwarm subscribes to the `platform` stream with the shortest buffering Lambda allows (25 ms),
//! and receives it on a small HTTP listener of its own: on `sandbox.localdomain`, the name the
//! subscription gives Lambda, where that name resolves (inside Lambda), else on loopback. Events
//! other than `platform.runtimeDone` are read and dropped.

use super::LambdaError;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use lambda_runtime_api_client::body::Body;
use serde::Deserialize;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{debug, info};

/// The host Lambda sends telemetry to (its documented destination name).
const SANDBOX_HOST: &str = "sandbox.localdomain";

/// The most one delivery may hold: Lambda's own largest `maxBytes` is 1 MiB.
const MAX_BODY: usize = 2 << 20;

/// Lambda's shortest buffering: a runtimeDone reaches pgwarm at most this long after the runtime
/// finished.
pub(crate) const BUFFER_MS: u64 = 25;

/// The request id of the newest `platform.runtimeDone`.
pub(crate) type RuntimeDone = watch::Receiver<Option<String>>;

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    record: serde_json::Value,
}

/// Starts the listener and subscribes `extension_id` to the platform stream; returns where the
/// runtimeDone events arrive.
pub(crate) async fn subscribe(extension_id: &str) -> Result<RuntimeDone, LambdaError> {
    let listener = bind().await?;
    let port = listener
        .local_addr()
        .map_err(|e| LambdaError(format!("telemetry listener: {e}")))?
        .port();
    let (tx, rx) = watch::channel(None);
    tokio::spawn(serve(listener, tx));
    let body = serde_json::json!({
        "schemaVersion": "2022-12-13",
        "types": ["platform"],
        "buffering": { "maxItems": 1000, "maxBytes": 262_144, "timeoutMs": BUFFER_MS },
        "destination": { "protocol": "HTTP", "URI": format!("http://{SANDBOX_HOST}:{port}") },
    });
    let request = lambda_runtime_api_client::build_request()
        .method("PUT")
        .uri("/2022-07-01/telemetry")
        .header("Lambda-Extension-Identifier", extension_id)
        .header("Content-Type", "application/json")
        .body(Body::from(body.to_string()))
        .map_err(|e| LambdaError(e.to_string()))?;
    super::call("telemetry subscription", request).await?;
    info!(port, "subscribed to the Telemetry API's platform events");
    Ok(rx)
}

/// Binds where Lambda will send: `sandbox.localdomain` when it resolves, loopback otherwise.
async fn bind() -> Result<TcpListener, LambdaError> {
    let sandbox = tokio::net::lookup_host((SANDBOX_HOST, 0))
        .await
        .ok()
        .and_then(|mut addrs| addrs.next());
    let addr = sandbox.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    TcpListener::bind(addr)
        .await
        .map_err(|e| LambdaError(format!("telemetry listener on {addr}: {e}")))
}

async fn serve(listener: TcpListener, done: watch::Sender<Option<String>>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let done = done.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let done = done.clone();
                async move { Ok::<_, std::convert::Infallible>(receive(request, &done).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await
            {
                debug!(error = %e, "telemetry connection ended");
            }
        });
    }
}

/// One delivery: a JSON array of events.
async fn receive(
    request: Request<Incoming>,
    done: &watch::Sender<Option<String>>,
) -> Response<Full<Bytes>> {
    let status = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(body) => {
            for id in runtime_done(&body.to_bytes()) {
                debug!(request = %id, "platform.runtimeDone");
                done.send_replace(Some(id));
            }
            StatusCode::OK
        }
        Err(_) => StatusCode::BAD_REQUEST,
    };
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// The request ids of the `platform.runtimeDone` events in a delivery, in order.
fn runtime_done(body: &[u8]) -> Vec<String> {
    let events: Vec<Event> = serde_json::from_slice(body).unwrap_or_default();
    events
        .into_iter()
        .filter(|e| e.kind == "platform.runtimeDone")
        .filter_map(|e| e.record.get("requestId")?.as_str().map(str::to_owned))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_done_events_are_picked_out_of_a_delivery() {
        let body = br#"[
            {"time":"2026-12-07T10:00:00Z","type":"platform.start","record":{"requestId":"a"}},
            {"time":"2026-12-07T10:00:01Z","type":"platform.runtimeDone","record":{"requestId":"a","status":"success"}},
            {"time":"2026-12-07T10:00:01Z","type":"platform.report","record":{"requestId":"a"}},
            {"time":"2026-12-07T10:00:02Z","type":"platform.runtimeDone","record":{"status":"success"}}
        ]"#;
        assert_eq!(runtime_done(body), ["a"]);
        assert!(runtime_done(b"not json").is_empty());
        assert!(runtime_done(b"{}").is_empty());
    }
}
