//! A simulated Lambda execution environment: `lambda-simulator`'s Runtime and Extensions API,
//! the real `pgwarm` registered as an extension, and the real `handler-example` as the function's
//! runtime. In freeze mode both processes get SIGSTOP after each invocation and SIGCONT before
//! the next, as Lambda freezes an idle environment.
//!
//! Where lambda-simulator 0.2 falls short, this wraps it through its public API only:
//! - its wait helpers can miss a wake-up, so invocations are awaited by polling their state;
//! - it can report "frozen" before every SIGSTOP was sent, and thaw only inside `enqueue`, so
//!   [`Lambda::wait_frozen`] also waits until the kernel shows both processes stopped;
//! - it does not serve `/extension/init/error`, so [`InitErrorProxy`] stands in front of it,
//!   records that call and forwards everything else.

use crate::pg::Target;
use crate::pooler::{workspace_bin, Pgwarm};
use crate::tools::TempDir;
use lambda_simulator::{FreezeMode, InvocationState, InvocationStatus, Simulator};
use serde_json::Value;
use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long an invocation, a registration or a freeze may take before the test fails.
const STEP_TIMEOUT: Duration = Duration::from_secs(15);

pub struct Lambda {
    pub sim: Simulator,
    pub pgwarm: Pgwarm,
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

impl Lambda {
    /// A simulator, and pgwarm (for `db`, with `env` on top) registered with it. `freeze`
    /// freezes the environment between invocations.
    pub async fn start(db: &Target, env: &[(&str, &str)], freeze: bool) -> Lambda {
        let sim = Simulator::builder()
            .function_name("pgwarm-test")
            .freeze_mode(if freeze {
                FreezeMode::Process
            } else {
                FreezeMode::None
            })
            .shutdown_timeout(Duration::from_secs(2))
            .build()
            .await
            .expect("lambda-simulator starts");
        let mut builder = Pgwarm::builder(db);
        for (k, v) in lambda_env(&sim) {
            builder = builder.env(&k, &v);
        }
        for (k, v) in env {
            builder = builder.env(k, v);
        }
        let pgwarm = builder.spawn();
        if freeze {
            sim.register_freeze_pid(pgwarm.pid());
        }
        let lambda = Lambda {
            sim,
            pgwarm,
            handler: None,
            freeze,
        };
        // The runtime must not start before pgwarm registered: the simulator refuses
        // registrations after the runtime's first /next.
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
                    lambda.pgwarm.log()
                )
            });
        lambda
    }

    /// Starts `handler-example` as the function's runtime, connecting to `database_url`.
    pub fn start_handler(&mut self, database_url: &str) {
        let dir = TempDir::new("pgwarm-handler");
        let log = dir.path().join("handler.log");
        let file = fs::File::create(&log).expect("handler log");
        let child = Command::new(workspace_bin("handler-example"))
            .envs(lambda_env(&self.sim))
            .env("DATABASE_URL", database_url)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .expect("spawn handler-example");
        if self.freeze {
            self.sim.register_freeze_pid(child.id());
        }
        self.handler = Some(Handler {
            child,
            log,
            _dir: dir,
        });
    }

    /// Invokes the function with `payload` and waits for the result (and, in freeze mode, for
    /// the environment to be frozen again).
    pub async fn invoke(&self, payload: Value) -> InvocationState {
        let id = self.sim.enqueue_payload(payload).await;
        let done = self
            .sim
            .wait_for(
                || async {
                    matches!(
                        self.sim.get_invocation_state(&id).await.map(|s| s.status),
                        Some(
                            InvocationStatus::Success
                                | InvocationStatus::Error
                                | InvocationStatus::Timeout
                        )
                    )
                },
                STEP_TIMEOUT,
            )
            .await;
        if let Err(e) = done {
            panic!(
                "invocation {id} did not complete: {e:?}\n--- pgwarm log ---\n{}",
                self.pgwarm.log()
            );
        }
        let state = self
            .sim
            .get_invocation_state(&id)
            .await
            .expect("a known invocation");
        if self.freeze {
            self.wait_frozen().await;
        }
        state
    }

    /// Waits until the simulator froze the environment and the kernel shows pgwarm and the
    /// handler stopped.
    pub async fn wait_frozen(&self) {
        let mut pids = vec![self.pgwarm.pid()];
        pids.extend(self.handler.as_ref().map(|h| h.child.id()));
        self.sim
            .wait_for(
                || async { self.sim.is_frozen() && pids.iter().all(|p| is_stopped(*p)) },
                STEP_TIMEOUT,
            )
            .await
            .expect("the environment froze");
    }

    /// Sends SHUTDOWN (thawing the environment first) and returns pgwarm, still running or not.
    pub async fn shutdown(self) -> Pgwarm {
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

/// Whether the process is stopped (state T in /proc/PID/stat).
fn is_stopped(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // The state follows the command name, which is in parentheses.
            let after = s.rsplit_once(')')?.1;
            after.split_whitespace().next().map(|state| state == "T")
        })
        .unwrap_or(false)
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
