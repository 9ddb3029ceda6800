//! `totpd serve`: open the vault, bootstrap it if new, serve HTTP (or HTTPS
//! with --tls-cert/--tls-key) until SIGTERM or SIGINT, then drain in-flight
//! requests and exit 0.

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use totpd_api::{AppState, Clock as _, Limits, Metrics, SystemClock};
use tracing_subscriber::EnvFilter;

use crate::cli::ServeArgs;
use crate::config::open_vault;
use crate::server::{self, ServerConfig, load_tls};

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    init_logging();
    let (vault, locations) = open_vault(&args.store).await?;
    let vault = vault.with_max_secrets_per_account(args.max_secrets_per_account);
    tracing::info!(database = %locations.database_for_display(), master_key = vault.master_key_id(), "vault opened");

    if !args.no_bootstrap
        && let Some(key) = vault.bootstrap(SystemClock.now()).await?
    {
        println!(
            "Created account \"{}\" with an owner API key. The secret is shown only this once:",
            key.account.name
        );
        println!("  key id:     {}", key.key_id);
        println!("  key secret: {}", key.secret.expose());
    }

    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(load_tls(cert, key)?),
        (None, None) => None,
        (Some(_), None) => bail!(
            "--tls-cert (TOTPD_TLS_CERT) was given without --tls-key (TOTPD_TLS_KEY): HTTPS needs both"
        ),
        (None, Some(_)) => bail!(
            "--tls-key (TOTPD_TLS_KEY) was given without --tls-cert (TOTPD_TLS_CERT): HTTPS needs both"
        ),
    };

    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("could not listen on {}", args.listen))?;
    let address = listener
        .local_addr()
        .context("could not read the bound address")?;
    if !address.ip().is_loopback() && tls.is_none() {
        tracing::warn!(%address, "listening beyond loopback without TLS: API keys and codes cross the network in clear; pass --tls-cert and --tls-key, or put a TLS proxy in front");
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("totpd listening on {scheme}://{address}");

    let state = AppState {
        vault: Arc::new(vault),
        clock: Arc::new(SystemClock),
        metrics: Arc::new(Metrics::default()),
    };
    let request_timeout = Duration::from_secs(args.request_timeout.max(1));
    let limits = Limits {
        max_body_bytes: usize::try_from(args.max_body_bytes).unwrap_or(usize::MAX),
        request_timeout,
        rate_limit_per_key: args.rate_limit_per_key,
        auth_failure_limit: args.auth_failure_limit,
        auth_failure_window: Duration::from_secs(args.auth_failure_window),
    };
    let header_read_timeout = Duration::from_secs(args.header_read_timeout);
    let config = ServerConfig {
        tls,
        max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
        max_header_bytes: usize::try_from(args.max_header_bytes).unwrap_or(usize::MAX),
        header_read_timeout,
        // Every request is answered within the request timeout; allow for
        // slow clients reading their answers.
        drain_timeout: request_timeout + header_read_timeout,
    };
    let app = totpd_api::router(state, &limits);
    server::serve(listener, app, config, shutdown_signal()).await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

fn init_logging() {
    let filter = EnvFilter::try_from_env("TOTPD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("TOTPD_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}
