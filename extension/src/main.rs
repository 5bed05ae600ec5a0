//! The pgwarm binary: read the settings, start logging, bind the listener, serve until
//! SIGTERM/SIGINT, then close the server connections with Terminate.

use pgwarm::client::tls::ClientTls;
use pgwarm::client::Shared;
use pgwarm::config::{ClientTlsMode, Settings};
use pgwarm::credentials::StaticCredentials;
use pgwarm::pool::{Pool, PoolSettings};
use pgwarm::server::TlsSetup;
use pgwarm::{listener, logging};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tracing::{error, info};

/// How long sessions get to close their server connections once pgwarm is told to stop; Lambda
/// allows extensions 2 s for SHUTDOWN, of which the runtime may take 300 ms.
const SHUTDOWN_BUDGET: Duration = Duration::from_millis(1000);

fn main() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pgwarm: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = logging::init(&settings) {
        eprintln!("pgwarm: configuration error: {e}");
        return ExitCode::from(2);
    }
    let tls = match TlsSetup::new(settings.target.sslmode, settings.ssl_root_cert.as_deref()) {
        Ok(tls) => Arc::new(tls),
        Err(e) => {
            eprintln!("pgwarm: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let client_tls = match settings.client_tls.mode {
        ClientTlsMode::Off => None,
        ClientTlsMode::On | ClientTlsMode::Require => match ClientTls::new(&settings.client_tls) {
            Ok(tls) => Some(tls),
            Err(e) => {
                eprintln!("pgwarm: configuration error: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "could not start the runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(settings, tls, client_tls))
}

async fn serve(settings: Settings, tls: Arc<TlsSetup>, client_tls: Option<ClientTls>) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(settings.listen).await {
        Ok(l) => l,
        Err(e) => {
            error!(listen = %settings.listen, error = %e, "could not listen (PGWARM_LISTEN)");
            return ExitCode::FAILURE;
        }
    };
    let credentials = Arc::new(StaticCredentials::new(&settings.target));
    let pool = Pool::new(PoolSettings::from(&settings), credentials, tls);
    info!(
        listen = %settings.listen,
        database = %format!("{}:{}/{}", settings.target.host, settings.target.port, settings.target.dbname),
        pool_mode = ?settings.pool_mode,
        pool_size = settings.pool_size,
        sslmode = settings.target.sslmode.as_str(),
        client_tls = match (&client_tls, settings.client_tls.mode) {
            (None, _) => "off",
            (Some(tls), ClientTlsMode::Require) if tls.self_signed => "required, self-signed certificate",
            (Some(_), ClientTlsMode::Require) => "required",
            (Some(tls), _) if tls.self_signed => "self-signed certificate",
            (Some(_), _) => "on",
        },
        "pgwarm listening"
    );
    let shared = Arc::new(Shared::new(settings, Arc::clone(&pool), client_tls));
    let sessions = listener::run(listener, Arc::clone(&shared), stop_signal()).await;
    listener::stop(&shared, sessions, SHUTDOWN_BUDGET).await;
    ExitCode::SUCCESS
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
