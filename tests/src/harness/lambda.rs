//! A simulated Lambda execution environment: `lambda-simulator`'s Runtime and Extensions API,
//! the real `pgwarm` registered as an extension, and the real `handler-example` as the function's
//! runtime. In freeze mode the processes get SIGSTOP after each invocation and SIGCONT before
//! the next, as Lambda freezes an idle environment.
//!
//! Tests start it with [`Lambda::start`] (pgwarm for a test database, binaries from the
//! workspace); the driver binaries (`demo`, `lambda-run`) with [`Lambda::start_with`]
//! (explicit binaries and environment, or no pgwarm at all for a handler that connects
//! directly), so that both run the same lifecycle code.
//!
//! Where lambda-simulator 0.2 falls short, this wraps it through its public API only:
//! - its wait helpers can miss a wake-up, so an invocation is awaited in short waits, reading
//!   its state again after each;
//! - it can report "frozen" before every SIGSTOP was sent, and thaw only inside `enqueue`, so
//!   [`Lambda::wait_frozen`] also waits until the kernel shows every process stopped;
//! - it refuses registrations after the runtime's first `/next`, so pgwarm must have registered
//!   before the handler starts ([`Lambda::start_with`] waits for that);
//! - it does not serve `/extension/init/error`, so [`InitErrorProxy`] stands in front of it,
//!   records that call and forwards everything else.

use crate::harness::pg::Target;
use crate::harness::pooler::{workspace_bin, Pgwarm, PgwarmBuilder};
use crate::harness::tools::{process_state, spawn_logged, TempDir};
use lambda_simulator::{FreezeMode, InvocationState, Simulator, SimulatorError};
use serde_json::Value;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long an invocation, a registration or a freeze may take before the test fails.
const STEP_TIMEOUT: Duration = Duration::from_secs(15);

/// How long one wait on the simulator's invocation helper lasts before the state is read again.
const COMPLETION_RECHECK: Duration = Duration::from_millis(2);

pub struct Lambda {
    pub sim: Simulator,
    pgwarm: Option<Pgwarm>,
    handler: Option<Handler>,
    freeze: bool,
}

/// The handler process, killed on drop, its output in a log file.
struct Handler {
    child: Child,
    log: PathBuf,
    _dir: TempDir,
}

impl Drop for Handler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- handler log ---\n{}--- end of handler log ---",
                fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

/// A simulator for one execution environment; `freeze` freezes it between invocations.
pub async fn simulator(freeze: bool) -> Simulator {
    Simulator::builder()
        .function_name("pgwarm-test")
        .freeze_mode(if freeze {
            FreezeMode::Process
        } else {
            FreezeMode::None
        })
        .shutdown_timeout(Duration::from_secs(2))
        .build()
        .await
        .expect("lambda-simulator starts")
}

/// `pgwarm` with the simulator's Lambda environment added, where the builder sets nothing itself
/// (so a test can still choose, say, `AWS_LAMBDA_INITIALIZATION_TYPE`).
pub fn in_lambda(mut pgwarm: PgwarmBuilder, sim: &Simulator) -> PgwarmBuilder {
    for (k, v) in lambda_env(sim) {
        pgwarm = pgwarm.env_default(&k, &v);
    }
    pgwarm
}

impl Lambda {
    /// A simulator, and pgwarm (for `db`, with `env` on top) registered with it. `freeze`
    /// freezes the environment between invocations.
    pub async fn start(db: &Target, env: &[(&str, &str)], freeze: bool) -> Lambda {
        let pgwarm = env
            .iter()
            .fold(Pgwarm::builder(db), |b, (k, v)| b.env(k, v));
        Lambda::start_with(Some(pgwarm), freeze).await
    }

    /// A simulator and, when given, pgwarm spawned from `pgwarm` in its Lambda environment and
    /// registered with it.
    pub async fn start_with(pgwarm: Option<PgwarmBuilder>, freeze: bool) -> Lambda {
        let sim = simulator(freeze).await;
        let pgwarm = pgwarm.map(|b| in_lambda(b, &sim).spawn());
        if let (true, Some(p)) = (freeze, &pgwarm) {
            sim.register_freeze_pid(p.pid());
        }
        let lambda = Lambda {
            sim,
            pgwarm,
            handler: None,
            freeze,
        };
        if let Some(pgwarm) = &lambda.pgwarm {
            lambda
                .sim
                .wait_for(
                    || async { lambda.sim.extension_count().await == 1 },
                    STEP_TIMEOUT,
                )
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "pgwarm did not register: {e:?}\n--- pgwarm log ---\n{}",
                        pgwarm.log()
                    )
                });
        }
        lambda
    }

    /// The pgwarm process; panics if this environment runs without it.
    pub fn pgwarm(&self) -> &Pgwarm {
        self.pgwarm
            .as_ref()
            .expect("this environment was started without pgwarm")
    }

    /// Starts the workspace's `handler-example` as the function's runtime, connecting to
    /// `database_url`.
    pub fn start_handler(&mut self, database_url: &str) {
        self.start_handler_bin(&workspace_bin("handler-example"), database_url);
    }

    /// Starts `bin` as the function's runtime, with `DATABASE_URL=database_url`.
    pub fn start_handler_bin(&mut self, bin: &Path, database_url: &str) {
        let dir = TempDir::new("pgwarm-handler");
        let mut cmd = Command::new(bin);
        cmd.envs(lambda_env(&self.sim))
            .env("DATABASE_URL", database_url);
        let (child, log) = spawn_logged(&mut cmd, dir.path(), "handler");
        if self.freeze {
            self.sim.register_freeze_pid(child.id());
        }
        self.handler = Some(Handler {
            child,
            log,
            _dir: dir,
        });
    }

    /// What the handler printed so far.
    pub fn handler_log(&self) -> String {
        self.handler
            .as_ref()
            .and_then(|h| fs::read_to_string(&h.log).ok())
            .unwrap_or_default()
    }

    /// Invokes the function with `payload` and waits for the result (and, in freeze mode, for
    /// the environment to be frozen again).
    pub async fn invoke(&self, payload: Value) -> InvocationState {
        self.invoke_timed(payload).await.0
    }

    /// [`Lambda::invoke`], also returning the time from enqueueing the event (which thaws the
    /// environment) to the invocation's result.
    pub async fn invoke_timed(&self, payload: Value) -> (InvocationState, Duration) {
        let sent = Instant::now();
        let id = self.sim.enqueue_payload(payload).await;
        let deadline = sent + STEP_TIMEOUT;
        let state = loop {
            match self
                .sim
                .wait_for_invocation_complete(&id, COMPLETION_RECHECK)
                .await
            {
                Ok(state) => break state,
                Err(SimulatorError::Timeout(_)) if Instant::now() < deadline => {}
                Err(e) => panic!(
                    "invocation {id} did not complete: {e:?}\n--- pgwarm log ---\n{}\n--- handler log ---\n{}",
                    self.pgwarm.as_ref().map(Pgwarm::log).unwrap_or_default(),
                    self.handler_log()
                ),
            }
        };
        let took = sent.elapsed();
        if self.freeze {
            self.wait_frozen().await;
        }
        (state, took)
    }

    /// Waits until the simulator froze the environment and the kernel shows pgwarm and the
    /// handler stopped.
    pub async fn wait_frozen(&self) {
        let mut pids: Vec<u32> = self.pgwarm.iter().map(Pgwarm::pid).collect();
        pids.extend(self.handler.as_ref().map(|h| h.child.id()));
        self.sim
            .wait_for(
                || async {
                    self.sim.is_frozen() && pids.iter().all(|p| process_state(*p) == Some('T'))
                },
                STEP_TIMEOUT,
            )
            .await
            .expect("the environment froze");
    }

    /// Sends SHUTDOWN (thawing the environment first), stops the handler, and returns pgwarm,
    /// still running or not.
    pub async fn shutdown(self) -> Option<Pgwarm> {
        let Lambda {
            sim,
            pgwarm,
            handler,
            ..
        } = self;
        sim.graceful_shutdown(lambda_simulator::ShutdownReason::Spindown)
            .await;
        drop(handler);
        pgwarm
    }

    /// Runs one invocation with the test itself as the function's handler ([`TestRuntime`]):
    /// enqueues `payload` with a function timeout of `timeout`, takes the invocation as the
    /// runtime, runs `handler` with it, and posts what it returns as the response; then, in
    /// freeze mode, waits for the environment to be frozen again. Returns the response.
    pub async fn invoke_here<F, Fut>(
        &self,
        runtime: &TestRuntime,
        timeout: Duration,
        handler: F,
    ) -> Value
    where
        F: FnOnce(Invoked) -> Fut,
        Fut: std::future::Future<Output = Value>,
    {
        self.invoke_here_with_id(runtime, timeout, handler).await.0
    }

    /// [`Lambda::invoke_here`], also returning the invocation's request id.
    pub async fn invoke_here_with_id<F, Fut>(
        &self,
        runtime: &TestRuntime,
        timeout: Duration,
        handler: F,
    ) -> (Value, String)
    where
        F: FnOnce(Invoked) -> Fut,
        Fut: std::future::Future<Output = Value>,
    {
        let invocation = lambda_simulator::InvocationBuilder::new()
            .payload(serde_json::json!({}))
            .timeout_ms(timeout.as_millis() as u64)
            .build()
            .expect("an invocation");
        self.sim.enqueue(invocation).await;
        let invoked = runtime.next().await;
        let id = invoked.request_id.clone();
        let answer = handler(invoked).await;
        runtime.respond(&id, &answer).await;
        if self.freeze {
            self.wait_frozen().await;
        }
        (answer, id)
    }

    /// How long the extensions kept invocation `request_id` going after its runtime was done
    /// (Lambda's `PostRuntimeExtensionsDuration`, which the function is billed for), in ms.
    /// The simulator's telemetry says it: from `platform.runtimeDone` to `platform.report`, which
    /// it sends once every extension has asked for its next event.
    pub async fn post_runtime_ms(&self, request_id: &str) -> f64 {
        let of = |kind: &'static str| async move {
            self.sim
                .get_telemetry_events_by_type(kind)
                .await
                .into_iter()
                .find(|e| e.record["requestId"] == request_id)
                .unwrap_or_else(|| panic!("no {kind} for {request_id}"))
                .time
        };
        let (done, report) = (
            of("platform.runtimeDone").await,
            of("platform.report").await,
        );
        (report - done).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0
    }

    /// The events pgwarm registered for, upper case (`INVOKE`, `SHUTDOWN`).
    pub async fn registered_events(&self) -> Vec<String> {
        let extensions = self.sim.get_registered_extensions().await;
        assert_eq!(extensions.len(), 1, "{extensions:?}");
        assert_eq!(extensions[0].name, "pgwarm");
        extensions[0]
            .events
            .iter()
            .map(|e| format!("{e:?}").to_uppercase())
            .collect()
    }
}

/// The Lambda environment the simulator gives a process, without its PATH and library path,
/// which only matter for binaries looked up by name.
pub fn lambda_env(sim: &Simulator) -> HashMap<String, String> {
    sim.lambda_env_vars()
        .into_iter()
        .filter(|(k, _)| k.starts_with("AWS_"))
        .collect()
}

/// An init-error call pgwarm made.
#[derive(Debug, Clone)]
pub struct InitError {
    pub error_type: String,
    pub body: Value,
}

/// Stands in front of a simulator: records `POST .../extension/init/error` (which lambda-simulator
/// 0.2 does not serve) and forwards every other request to it unchanged.
pub struct InitErrorProxy {
    pub addr: std::net::SocketAddr,
    calls: Arc<Mutex<Vec<InitError>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for InitErrorProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl InitErrorProxy {
    pub async fn start(upstream: std::net::SocketAddr) -> InitErrorProxy {
        use axum::body::{Body, Bytes};
        use axum::extract::{Request, State};
        use axum::response::Response;

        #[derive(Clone)]
        struct Shared {
            calls: Arc<Mutex<Vec<InitError>>>,
            client: reqwest::Client,
            upstream: String,
        }

        async fn handle(State(shared): State<Shared>, request: Request) -> Response {
            let (parts, body) = request.into_parts();
            let body: Bytes = axum::body::to_bytes(body, 1 << 20)
                .await
                .unwrap_or_default();
            if parts.uri.path().ends_with("/extension/init/error") {
                let error_type = parts
                    .headers
                    .get("Lambda-Extension-Function-Error-Type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                shared
                    .calls
                    .lock()
                    .expect("lock")
                    .push(InitError { error_type, body });
                return Response::builder()
                    .status(202)
                    .body(Body::from(r#"{"status":"OK"}"#))
                    .expect("response");
            }
            let url = format!("{}{}", shared.upstream, parts.uri);
            let mut forward = shared.client.request(parts.method, url).body(body);
            for (name, value) in &parts.headers {
                if name != "host" {
                    forward = forward.header(name, value);
                }
            }
            let answer = forward.send().await.expect("the simulator answers");
            let mut response = Response::builder().status(answer.status());
            for (name, value) in answer.headers() {
                response = response.header(name, value);
            }
            let bytes = answer.bytes().await.unwrap_or_default();
            response.body(Body::from(bytes)).expect("response")
        }

        let calls = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared {
            calls: Arc::clone(&calls),
            client: reqwest::Client::new(),
            upstream: format!("http://{upstream}"),
        };
        let app = axum::Router::new().fallback(handle).with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        InitErrorProxy { addr, calls, task }
    }

    pub fn calls(&self) -> Vec<InitError> {
        self.calls.lock().expect("lock").clone()
    }
}

/// An invocation as the function's runtime receives it.
#[derive(Debug, Clone)]
pub struct Invoked {
    pub request_id: String,
    /// When Lambda kills the invocation.
    pub deadline: Instant,
    pub payload: Value,
}

/// The function's runtime, played by the test process through the Runtime API, so that a test
/// can be any handler at all (leak a transaction, hold a connection, wait) without a process of
/// its own. Only pgwarm is frozen between invocations then; the test is not.
pub struct TestRuntime {
    http: reqwest::Client,
    base: String,
}

impl TestRuntime {
    pub fn new(lambda: &Lambda) -> TestRuntime {
        TestRuntime {
            http: reqwest::Client::new(),
            base: format!(
                "{}/2018-06-01/runtime/invocation",
                lambda.sim.runtime_api_url()
            ),
        }
    }

    /// Waits for the next invocation.
    pub async fn next(&self) -> Invoked {
        let answer = self
            .http
            .get(format!("{}/next", self.base))
            .send()
            .await
            .expect("the Runtime API answers /next");
        assert!(answer.status().is_success(), "/next: {}", answer.status());
        let header = |name: &str| {
            answer
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("/next without {name}"))
                .to_owned()
        };
        let request_id = header("Lambda-Runtime-Aws-Request-Id");
        let deadline_ms: u64 = header("Lambda-Runtime-Deadline-Ms")
            .parse()
            .expect("a deadline in ms");
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970");
        let left = Duration::from_millis(deadline_ms).saturating_sub(since_epoch);
        let body = answer.bytes().await.expect("the event's body");
        Invoked {
            request_id,
            deadline: Instant::now() + left,
            payload: serde_json::from_slice(&body).unwrap_or(Value::Null),
        }
    }

    /// Posts the invocation's response: the runtime is done with it.
    pub async fn respond(&self, request_id: &str, body: &Value) {
        let answer = self
            .http
            .post(format!("{}/{request_id}/response", self.base))
            .body(body.to_string())
            .send()
            .await
            .expect("the Runtime API takes the response");
        assert!(
            answer.status().is_success(),
            "response: {}",
            answer.status()
        );
    }
}
