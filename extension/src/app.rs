//! The program: read the settings, start logging, bind the listener, register with Lambda when
//! running inside it, serve until SHUTDOWN (Lambda) or SIGTERM/SIGINT, then end every session
//! and close the server connections with Terminate. `main.rs` only calls [`run`].
//!
//! A configuration error goes to stderr and, inside Lambda, to the init-error call; the exit
//! status is then 2.

use crate::admin::{Console, Lifecycle};
use crate::client::tls::ClientTls;
use crate::client::SessionContext;
use crate::config::{ClientTlsMode, CredentialSettings, Settings};
use crate::credentials::{CredentialSource, IamCredentials, SecretCredentials, StaticCredentials};
use crate::lambda::{self, LambdaEnv};
use crate::metrics::Metrics;
use crate::pool::{Pool, PoolSettings};
use crate::server::TlsSetup;
use crate::{listener, logging};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tracing::{error, info, warn};

/// How long sessions get to close their server connections once pgwarm is told to stop. Lambda
/// allows 2 s after SHUTDOWN, of which the runtime may take 300 ms; this leaves room for the
/// rest of the stop and for the process to exit.
const SHUTDOWN_BUDGET: Duration = Duration::from_millis(1000);

/// What is kept back from the time Lambda says is left, for exiting after the sessions end.
const SHUTDOWN_MARGIN: Duration = Duration::from_millis(300);

/// The least the sessions get, even when the deadline is (said to be) already past, as with
/// `cargo lambda watch`: enough for their Terminates to go out.
const SHUTDOWN_FLOOR: Duration = Duration::from_millis(100);

/// Runs pgwarm to its end; the process's exit status.
pub fn run() -> ExitCode {
    let lambda = LambdaEnv::detect();
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => return config_error(lambda, &e.to_string()),
    };
    if let Err(e) = logging::init(&settings) {
        return config_error(lambda, &e.to_string());
    }
    let tls = match TlsSetup::new(settings.sslmode, settings.ssl_root_cert.as_deref()) {
        Ok(tls) => Arc::new(tls),
        Err(e) => return config_error(lambda, &e.to_string()),
    };
    let client_tls = match settings.client_tls.mode {
        ClientTlsMode::Off => None,
        ClientTlsMode::On | ClientTlsMode::Require => match ClientTls::new(&settings.client_tls) {
            Ok(tls) => Some(tls),
            Err(e) => return config_error(lambda, &e.to_string()),
        },
    };
    let runtime = match runtime(settings.worker_threads) {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "could not start the runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(settings, tls, client_tls, lambda))
}

fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}

async fn serve(
    settings: Settings,
    tls: Arc<TlsSetup>,
    client_tls: Option<ClientTls>,
    lambda: Option<LambdaEnv>,
) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(settings.listen).await {
        Ok(l) => l,
        Err(e) => {
            let message = format!(
                "could not listen on {} (PGWARM_LISTEN): {e}",
                settings.listen
            );
            return report_error(lambda, &message).await;
        }
    };
    let reader_listener = match &settings.reader {
        None => None,
        Some(reader) => match tokio::net::TcpListener::bind(reader.listen).await {
            Ok(l) => Some(l),
            Err(e) => {
                let message = format!(
                    "could not listen on {} (PGWARM_READER_LISTEN): {e}",
                    reader.listen
                );
                return report_error(lambda, &message).await;
            }
        },
    };
    let credentials: Arc<dyn CredentialSource> = match &settings.credentials {
        CredentialSettings::Static(target) => Arc::new(StaticCredentials::new(target)),
        CredentialSettings::Secret(secret) => Arc::new(SecretCredentials::new(secret.clone())),
        CredentialSettings::Iam { target, timeout } => {
            Arc::new(IamCredentials::new(target.clone(), *timeout))
        }
    };
    let reader_pool = settings.reader.as_ref().map(|reader| {
        let reader = PoolSettings::reader(&settings, reader);
        Pool::new(reader, Arc::clone(&credentials), Arc::clone(&tls))
    });
    let pool = Pool::new(PoolSettings::from(&settings), credentials, tls);
    info!(
        listen = %settings.listen,
        reader_listen = settings.reader.as_ref().map_or("off".to_owned(), |r| r.listen.to_string()),
        database = %settings.credentials.describe(),
        pool_mode = ?settings.pool_mode,
        pool_size = settings.pool_size,
        max_client_conn = settings.max_client_conn,
        query_wait_timeout_ms = settings.query_wait_timeout.as_millis() as u64,
        idle_session_timeout_ms = settings.idle_session_timeout.map_or(0, |t| t.as_millis() as u64),
        upstream = ?settings.upstream,
        metrics = settings.metrics.as_ref().map_or("off", |m| m.namespace.as_str()),
        sslmode = settings.sslmode.as_str(),
        client_tls = match (&client_tls, settings.client_tls.mode) {
            (None, _) => "off",
            (Some(tls), ClientTlsMode::Require) if tls.self_signed => "required, self-signed certificate",
            (Some(_), ClientTlsMode::Require) => "required",
            (Some(tls), _) if tls.self_signed => "self-signed certificate",
            (Some(_), _) => "on",
        },
        "pgwarm listening"
    );
    let prefill = settings.min_pool_size;
    let shared = Arc::new(SessionContext::new(
        settings,
        Arc::clone(&pool),
        reader_pool,
        client_tls,
    ));
    let listeners = listener::Listeners {
        writer: listener,
        reader: reader_listener,
    };
    let lifecycle = Arc::new(Lifecycle::new(match lambda {
        None => "standalone",
        Some(env) if env.managed_instances => "lambda-managed-instances",
        Some(_) => "lambda",
    }));
    let console = Console::new(Arc::clone(&shared), Arc::clone(&lifecycle));
    console.start_periods();
    let metrics = shared.settings.metrics.clone().map(|settings| {
        let metrics = Metrics::new(settings, Arc::clone(&shared), Arc::clone(&lifecycle));
        metrics.start();
        metrics
    });

    let budget = match lambda {
        None => {
            if prefill > 0 {
                let opened = pool.prefill(prefill).await;
                info!(
                    opened,
                    "opened server connections ahead of clients (PGWARM_MIN_POOL_SIZE)"
                );
            }
            let sessions = listener::run(
                listeners,
                Arc::clone(&shared),
                Arc::clone(&console),
                stop_signal(),
            )
            .await;
            listener::stop(&shared, sessions, SHUTDOWN_BUDGET).await;
            stopped(&shared, metrics.as_deref(), SHUTDOWN_BUDGET).await;
            return ExitCode::SUCCESS;
        }
        Some(env) => match lambda::start(env, Arc::clone(&shared), Arc::clone(&lifecycle), prefill)
            .await
        {
            Ok(shutdown) => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let stop = async move {
                    tokio::select! {
                        left = shutdown.wait() => { let _ = tx.send(left); }
                        () = stop_signal() => {}
                    }
                };
                let sessions =
                    listener::run(listeners, Arc::clone(&shared), Arc::clone(&console), stop).await;
                let left = rx.await.unwrap_or(SHUTDOWN_BUDGET + SHUTDOWN_MARGIN);
                let budget = SHUTDOWN_BUDGET
                    .min(left.saturating_sub(SHUTDOWN_MARGIN))
                    .max(SHUTDOWN_FLOOR);
                listener::stop(&shared, sessions, budget).await;
                budget
            }
            Err(e) => {
                error!(error = %e, "could not register with Lambda");
                return ExitCode::FAILURE;
            }
        },
    };
    stopped(&shared, metrics.as_deref(), budget).await;
    ExitCode::SUCCESS
}

/// The last metrics line and the totals of pgwarm's life, in one INFO line.
async fn stopped(shared: &SessionContext, metrics: Option<&Metrics>, budget: Duration) {
    if let Some(metrics) = metrics {
        metrics.finish().await;
    }
    let traffic = &shared.traffic;
    let pool = shared.pool.counters();
    info!(
        budget_ms = budget.as_millis() as u64,
        transactions = traffic.xacts.get(),
        queries = traffic.queries.get(),
        client_logins = traffic.logins.get(),
        clients_refused = traffic.refused.get(),
        client_errors = traffic.errors.get(),
        server_logins = pool.logins.get(),
        reconnects = pool.reconnects.get(),
        "pgwarm stopped"
    );
}

/// A configuration error found before the runtime exists.
fn config_error(lambda: Option<LambdaEnv>, message: &str) -> ExitCode {
    if lambda.is_none() {
        eprintln!("pgwarm: configuration error: {message}");
        return ExitCode::from(2);
    }
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(report_error(lambda, message)),
        Err(_) => {
            eprintln!("pgwarm: configuration error: {message}");
            ExitCode::from(2)
        }
    }
}

/// Says why pgwarm cannot start: on stderr (the function's log in Lambda) and, inside Lambda,
/// through the init-error call so that Init fails with this message.
async fn report_error(lambda: Option<LambdaEnv>, message: &str) -> ExitCode {
    eprintln!("pgwarm: configuration error: {message}");
    if lambda.is_some() {
        if let Err(e) = lambda::report_init_error(message).await {
            warn!(error = %e, "could not report the error to Lambda");
            eprintln!("pgwarm: could not report the error to Lambda: {e}");
        }
    }
    ExitCode::from(2)
}

/// Completes on SIGTERM or SIGINT.
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
