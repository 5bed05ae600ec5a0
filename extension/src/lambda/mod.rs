//! Life as an AWS Lambda external extension (when `AWS_LAMBDA_RUNTIME_API` is set), through the
//! `lambda-extension` crate: register as `pgwarm` once the listener is bound, so the handler can
//! connect from its first line; on INVOKE (the environment was just thawed) validate the pool's
//! idle connections while the handler starts; on SHUTDOWN hand the deadline to `main`, which
//! stops everything inside it. A configuration error is reported through the init-error call, so
//! the function's Init fails with the message in its logs.
//!
//! On an on-demand environment it also subscribes to the Telemetry API, to hear when each
//! invocation's runtime has finished (`telemetry`): then the transactions the invocation left
//! open are ended, and, while the database is tight, the server connections are given back
//! before pgwarm asks for its next event, which lets Lambda freeze the environment
//! (`before_freeze`).
//!
//! On Lambda Managed Instances environments are never frozen and INVOKE may not be registered
//! for: pgwarm registers for SHUTDOWN only.

mod before_freeze;
mod telemetry;

use crate::admin::{Lifecycle, Registration};
use crate::client::SessionContext;
use crate::pool::InvocationDeadline;
use before_freeze::BeforeFreeze;
use lambda_extension::requests::{init_error, ErrorRequest};
use lambda_extension::{service_fn, Extension, LambdaEvent, NextEvent};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use thiserror::Error;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

/// The name Lambda knows the extension by (and the file name in the layer, `extensions/pgwarm`).
pub(crate) const EXTENSION_NAME: &str = "pgwarm";

/// The `Lambda-Extension-Function-Error-Type` of a configuration error.
const CONFIG_ERROR_TYPE: &str = "Extension.ConfigError";

/// At INVOKE, a transaction idle since at least this long before it was left open by the
/// invocation before. The slack keeps a transaction the new invocation's handler began in the
/// moment between the thaw and pgwarm reading INVOKE from being taken for a leak.
const INVOKE_SLACK: Duration = Duration::from_millis(50);

#[derive(Debug, Error)]
#[error("Lambda Extensions API: {0}")]
pub(crate) struct LambdaError(String);

impl From<lambda_extension::Error> for LambdaError {
    fn from(e: lambda_extension::Error) -> LambdaError {
        LambdaError(e.to_string())
    }
}

/// Which Lambda this is, read once at start-up.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LambdaEnv {
    /// `AWS_LAMBDA_INITIALIZATION_TYPE=lambda-managed-instances`.
    pub managed_instances: bool,
}

impl LambdaEnv {
    /// `None` outside Lambda (no `AWS_LAMBDA_RUNTIME_API`): pgwarm runs standalone.
    pub(crate) fn detect() -> Option<LambdaEnv> {
        std::env::var_os("AWS_LAMBDA_RUNTIME_API")?;
        let managed_instances = std::env::var("AWS_LAMBDA_INITIALIZATION_TYPE").as_deref()
            == Ok("lambda-managed-instances");
        Some(LambdaEnv { managed_instances })
    }

    fn events(&self) -> &'static [&'static str] {
        if self.managed_instances {
            &["SHUTDOWN"]
        } else {
            &["INVOKE", "SHUTDOWN"]
        }
    }
}

/// Completes when Lambda sends SHUTDOWN, with the time left until its deadline.
pub(crate) struct Shutdown(oneshot::Receiver<Duration>);

impl Shutdown {
    /// The time left before Lambda kills the process; zero if the event loop ended without one.
    pub(crate) async fn wait(self) -> Duration {
        self.0.await.unwrap_or_default()
    }
}

/// Registers with the Extensions API, opens `prefill` server connections while Init is still
/// under way (the environment is not frozen until pgwarm asks for its first event), then follows
/// the events in a task of its own.
pub(crate) async fn start(
    env: LambdaEnv,
    shared: Arc<SessionContext>,
    lifecycle: Arc<Lifecycle>,
    prefill: usize,
) -> Result<Shutdown, LambdaError> {
    let (tx, rx) = oneshot::channel();
    let tx = Arc::new(std::sync::Mutex::new(Some(tx)));
    let pool = Arc::clone(&shared.pool);
    let events_life = Arc::clone(&lifecycle);
    let events_shared = Arc::clone(&shared);
    // Set once the Telemetry API subscription is made, which needs the registration first.
    let before_freeze: Arc<OnceLock<BeforeFreeze>> = Arc::default();
    let events_before_freeze = Arc::clone(&before_freeze);
    let processor = service_fn(move |event: LambdaEvent| {
        let shared = Arc::clone(&events_shared);
        let lifecycle = Arc::clone(&events_life);
        let before_freeze = Arc::clone(&events_before_freeze);
        let tx = Arc::clone(&tx);
        async move {
            match event.next {
                NextEvent::Invoke(invoke) => {
                    // First, so that this line and every later one carry the request id.
                    lifecycle.invoked(&invoke.request_id);
                    let now = tokio::time::Instant::now();
                    let left = time_left(invoke.deadline_ms);
                    debug!(request = %invoke.request_id, left_ms = left.as_millis() as u64, "INVOKE");
                    for pool in shared.pools() {
                        pool.invocation_began(InvocationDeadline::new(now, now + left));
                    }
                    shared
                        .invocation_ends
                        .ended(now.checked_sub(INVOKE_SLACK).unwrap_or(now));
                    let request_id = invoke.request_id.clone();
                    // The handler is starting right now; it must not wait for this.
                    for pool in shared.pools() {
                        let pool = Arc::clone(pool);
                        tokio::spawn(async move {
                            let started = std::time::Instant::now();
                            let counters = pool.counters();
                            let replaced_before = counters.thaw_replaced.get();
                            let checked = pool.check_idle().await;
                            if checked > 0 {
                                let replaced = counters.thaw_replaced.get() - replaced_before;
                                info!(
                                    checked,
                                    replaced,
                                    elapsed_ms = started.elapsed().as_millis() as u64,
                                    "checked idle server connections after the thaw"
                                );
                            }
                        });
                    }
                    if let Some(before_freeze) = before_freeze.get() {
                        before_freeze
                            .wait(&request_id, now + left, &shared, &lifecycle)
                            .await;
                    }
                }
                NextEvent::Shutdown(shutdown) => {
                    let left = time_left(shutdown.deadline_ms);
                    lifecycle.shut_down(&shutdown.shutdown_reason.to_string());
                    info!(reason = %shutdown.shutdown_reason, left_ms = left.as_millis() as u64, "SHUTDOWN");
                    if let Some(tx) = tx.lock().unwrap_or_else(|p| p.into_inner()).take() {
                        let _ = tx.send(left);
                    }
                }
            }
            // An error here would be reported to Lambda as an init error: never return one.
            Ok::<(), lambda_extension::Error>(())
        }
    });
    let registered = Extension::new()
        .with_extension_name(EXTENSION_NAME)
        .with_events(env.events())
        .with_events_processor(processor)
        .register()
        .await?;
    info!(
        events = ?env.events(),
        function = %registered.function_name,
        "registered with the Lambda Extensions API"
    );
    lifecycle.registered(Registration {
        function_name: registered.function_name.clone(),
        function_version: registered.function_version.clone(),
        events: env.events().to_vec(),
        ..Registration::default()
    });
    if !env.managed_instances {
        match telemetry::subscribe(&registered.extension_id).await {
            Ok(runtime_done) => {
                lifecycle
                    .telemetry
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                watch_runtime_done(runtime_done.clone(), shared, Arc::clone(&lifecycle));
                let _ = before_freeze.set(BeforeFreeze::new(runtime_done));
            }
            Err(e) => warn!(
                error = %e,
                "no Telemetry API: transactions an invocation leaves open end at the next INVOKE, \
                 and connections are not given back before a freeze"
            ),
        }
    }
    watch_freezes(lifecycle);
    if prefill > 0 {
        let opened = pool.prefill(prefill).await;
        info!(
            opened,
            "opened server connections during Init (PGWARM_MIN_POOL_SIZE)"
        );
    }
    tokio::spawn(async move {
        // Returns only on an error; after SHUTDOWN, main exits without waiting for it.
        if let Err(e) = registered.run().await {
            warn!(error = %e, "the Lambda event loop ended");
        }
    });
    Ok(Shutdown(rx))
}

/// Ends the transactions an invocation left open as soon as its runtime is done (before the
/// freeze when pgwarm holds its next-event request, else at the thaw). A runtimeDone of an
/// older invocation, delivered late, changes nothing: its INVOKE successor already did this.
fn watch_runtime_done(
    mut runtime_done: telemetry::RuntimeDone,
    shared: Arc<SessionContext>,
    lifecycle: Arc<Lifecycle>,
) {
    tokio::spawn(async move {
        while runtime_done.changed().await.is_ok() {
            let id = runtime_done.borrow_and_update().clone();
            if id.is_some() && id == lifecycle.request_id() {
                shared.invocation_ends.ended(tokio::time::Instant::now());
                shared.invocation_deadline_over();
            }
        }
    });
}

/// How often the freeze watch looks at the clock; a tick this much later than due is counted
/// as a freeze.
const FREEZE_TICK: Duration = Duration::from_millis(250);
const FREEZE_SLACK: Duration = Duration::from_millis(500);

/// Lambda freezes the environment between invocations, and nothing tells an extension: a timer
/// that fires far later than it was due saw a freeze, of about that lateness. A wake-up every
/// 250 ms costs microseconds.
fn watch_freezes(lifecycle: Arc<Lifecycle>) {
    tokio::spawn(async move {
        let mut last = std::time::Instant::now();
        loop {
            tokio::time::sleep(FREEZE_TICK).await;
            let now = std::time::Instant::now();
            let late = now.duration_since(last).saturating_sub(FREEZE_TICK);
            if late > FREEZE_SLACK {
                debug!(frozen_ms = late.as_millis() as u64, "thawed");
                lifecycle.froze(late);
            }
            last = now;
        }
    });
}

/// Tells Lambda that Init failed because of `message` (which names the variable and never holds
/// a secret). The call needs a registration, so pgwarm registers first, for SHUTDOWN only.
pub(crate) async fn report_init_error(message: &str) -> Result<(), LambdaError> {
    let registered = Extension::new()
        .with_extension_name(EXTENSION_NAME)
        .with_events(&["SHUTDOWN"])
        .register()
        .await?;
    let request = init_error(
        &registered.extension_id,
        CONFIG_ERROR_TYPE,
        Some(ErrorRequest {
            error_message: message,
            error_type: CONFIG_ERROR_TYPE,
            stack_trace: vec![],
        }),
    )?;
    call("init/error", request).await
}

/// Sends one request of pgwarm's own to the Runtime API (`what` names it in errors); an answer
/// other than success is an error.
async fn call(
    what: &str,
    request: http::Request<lambda_runtime_api_client::body::Body>,
) -> Result<(), LambdaError> {
    let client = lambda_runtime_api_client::Client::builder()
        .build()
        .map_err(|e| LambdaError(e.to_string()))?;
    let response = client
        .call(request)
        .await
        .map_err(|e| LambdaError(format!("{what}: {e}")))?;
    if !response.status().is_success() {
        return Err(LambdaError(format!(
            "{what} answered {}",
            response.status()
        )));
    }
    Ok(())
}

/// The time from now until `deadline_ms` (milliseconds since the epoch).
fn time_left(deadline_ms: u64) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Duration::from_millis(deadline_ms).saturating_sub(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managed_instances_register_for_shutdown_only() {
        let on_demand = LambdaEnv {
            managed_instances: false,
        };
        assert_eq!(on_demand.events(), ["INVOKE", "SHUTDOWN"]);
        let managed = LambdaEnv {
            managed_instances: true,
        };
        assert_eq!(managed.events(), ["SHUTDOWN"]);
    }

    #[test]
    fn the_time_left_never_goes_negative() {
        assert_eq!(time_left(0), Duration::ZERO);
        let soon = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
            + 60_000;
        assert!(time_left(soon) > Duration::from_secs(50));
    }
}
