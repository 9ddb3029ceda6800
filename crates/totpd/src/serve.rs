//! `totpd serve`: open the vault, bootstrap it if new, serve HTTP (or HTTPS
//! with --tls-cert/--tls-key) until SIGTERM or SIGINT, then drain in-flight
//! requests and exit 0.

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::net::TcpListener;
use totpd_api::{AppState, Limits, McpSettings, Metrics, MetricsAccess, MetricsToken};
use totpd_vault::{Clock as _, SystemClock, UnixTime, Vault};
use tracing_subscriber::EnvFilter;

use crate::cli::ServeArgs;
use crate::config::open_vault;
use crate::log_sink;
use crate::server::{self, ServerConfig, load_tls};

/// Longest accepted `--auth-failure-window`, in seconds (one day).
const MAX_AUTH_FAILURE_WINDOW_SECS: u64 = 86_400;
/// How often each node deletes audit events past `--audit-retention`.
const AUDIT_PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;
/// Most connections the `--metrics-listen` listener serves at once.
const METRICS_MAX_CONNECTIONS: usize = 16;

/// Settings clap cannot check on its own. Runs before anything is opened
/// or created, so a bad setting changes nothing. Returns the metrics token.
fn check_settings(args: &ServeArgs) -> anyhow::Result<Option<MetricsToken>> {
    let token = args
        .metrics_token
        .as_ref()
        .map(|token| MetricsToken::new(token.expose()))
        .transpose()
        .context("invalid --metrics-token (TOTPD_METRICS_TOKEN)")?;
    if !(1..=MAX_AUTH_FAILURE_WINDOW_SECS).contains(&args.auth_failure_window) {
        bail!(
            "--auth-failure-window (TOTPD_AUTH_FAILURE_WINDOW) must be 1 to {MAX_AUTH_FAILURE_WINDOW_SECS} seconds, got {}",
            args.auth_failure_window
        );
    }
    Ok(token)
}

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let token = check_settings(&args)?;
    // Held to the end of `run`: dropping it writes out the buffered lines.
    let _log_flusher = init_logging();
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

    let listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("could not listen on {}", args.listen))?;
    let metrics_listener = match &args.metrics_listen {
        Some(address) => Some(
            TcpListener::bind(address)
                .await
                .with_context(|| format!("could not listen on {address} (--metrics-listen)"))?,
        ),
        None => None,
    };
    let address = listener
        .local_addr()
        .context("could not read the bound address")?;
    if !address.ip().is_loopback() && tls.is_none() {
        tracing::warn!(%address, "listening beyond loopback without TLS: API keys and codes cross the network in clear; pass --tls-cert and --tls-key, or put a TLS proxy in front");
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    // Printed before the main address, which tools wait for.
    if let Some(metrics) = &metrics_listener {
        let metrics_address = metrics
            .local_addr()
            .context("could not read the bound metrics address")?;
        if !metrics_address.ip().is_loopback() && tls.is_none() {
            tracing::warn!(address = %metrics_address, "serving /metrics beyond loopback without TLS");
        }
        println!("totpd metrics on {scheme}://{metrics_address}/metrics");
    }
    println!("totpd listening on {scheme}://{address}");

    // Every duration below is at most an hour or a day (checked ranges), so
    // no sum of them overflows.
    let request_timeout = Duration::from_secs(args.request_timeout);
    let limits = Limits {
        max_body_bytes: usize::try_from(args.max_body_bytes).unwrap_or(usize::MAX),
        request_timeout,
        rate_limit_per_key: args.rate_limit_per_key,
        auth_failure_limit: args.auth_failure_limit,
        auth_failure_window: Duration::from_secs(args.auth_failure_window),
    };
    let state = AppState::new(
        Arc::new(vault),
        Arc::new(SystemClock),
        Arc::new(Metrics::default()),
        limits,
    )
    .with_mcp(mcp_settings(&args));
    let header_read_timeout = Duration::from_secs(args.header_read_timeout);
    let max_connections = usize::try_from(args.max_connections).unwrap_or(usize::MAX);
    let config = ServerConfig {
        tls,
        max_connections,
        max_connections_per_address: usize::try_from(args.max_connections_per_address)
            .unwrap_or(usize::MAX)
            .min(max_connections),
        max_header_bytes: usize::try_from(args.max_header_bytes).unwrap_or(usize::MAX),
        header_read_timeout,
        keep_alive_timeout: Duration::from_secs(args.keep_alive_timeout),
        // Every request is answered within the request timeout; allow for
        // slow clients reading their answers.
        drain_timeout: request_timeout.saturating_add(header_read_timeout),
        metrics: MetricsAccess {
            served: metrics_listener.is_none(),
            token: token.clone(),
        },
    };
    let metrics_config = ServerConfig {
        max_connections: METRICS_MAX_CONNECTIONS.min(max_connections),
        max_connections_per_address: config
            .max_connections_per_address
            .min(METRICS_MAX_CONNECTIONS),
        metrics: MetricsAccess {
            served: true,
            token,
        },
        ..config.clone()
    };
    tokio::spawn(prune_audit_log(
        Arc::clone(&state.vault),
        args.audit_retention,
    ));
    let metrics_app = totpd_api::metrics_app(state.clone());
    let vault = Arc::clone(&state.vault);
    let app = totpd_api::router(state);

    // One signal stops both listeners.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        // An error means the sender is gone: stop as well.
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let flusher = tokio::spawn(flush_key_uses_every(Arc::clone(&vault), KEY_USE_FLUSH));
    let main = server::serve(listener, app, config, until_stopped(stopped.clone()));
    match metrics_listener {
        Some(metrics) => {
            let metrics =
                server::serve(metrics, metrics_app, metrics_config, until_stopped(stopped));
            tokio::join!(main, metrics);
        }
        None => main.await,
    }
    flusher.abort();
    // The uses of the last few seconds, so `keys list` is current after a
    // clean stop.
    if let Err(error) = vault.flush_key_uses().await {
        tracing::warn!(error = %totpd_vault::ErrorChain(&error), "could not record the last API key uses at shutdown");
    }
    // Refusals and failures are recorded without waiting: write what the
    // last requests left queued before exiting.
    vault.flush_audit().await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Deletes audit events older than `days` days, at start and then every
/// [`AUDIT_PRUNE_EVERY`]. Every node does it; two nodes pruning at once
/// delete disjoint or already-deleted rows, which is harmless. With nothing
/// to delete it costs one probe of the time index.
async fn prune_audit_log(vault: Arc<Vault>, days: u32) {
    let keep = i64::from(days).saturating_mul(DAY_MS);
    let mut every = tokio::time::interval(AUDIT_PRUNE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let before = UnixTime(SystemClock.now().0.saturating_sub(keep));
        match vault.prune_audit(before).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, days, "deleted audit events past the retention"),
            Err(error) => {
                tracing::warn!(error = %totpd_vault::ErrorChain(&error), "could not delete old audit events; will retry")
            }
        }
    }
}

/// How often a node writes the key uses it has seen (`last_used_at`): one
/// batched write per interval, never one per request.
const KEY_USE_FLUSH: Duration = Duration::from_secs(5);

/// Writes the recorded key uses every `every`, until aborted.
async fn flush_key_uses_every(vault: Arc<totpd_vault::Vault>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(error) = vault.flush_key_uses().await {
            tracing::warn!(%error, "could not record API key uses; will retry");
        }
    }
}

/// How /mcp is served, from the serve flags.
fn mcp_settings(args: &ServeArgs) -> McpSettings {
    let mut settings = McpSettings {
        enabled: !args.no_mcp,
        allow_delete: args.mcp_allow_delete,
        allowed_origins: args
            .mcp_allowed_origins
            .iter()
            .map(|o| o.trim().to_owned())
            .filter(|o| !o.is_empty())
            .collect(),
        ..McpSettings::default()
    };
    let hosts: Vec<String> = args
        .mcp_allowed_hosts
        .iter()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .collect();
    if hosts.iter().any(|h| h == "*") {
        settings.allowed_hosts.clear();
    } else if !hosts.is_empty() {
        settings.allowed_hosts = hosts;
    }
    settings
}

/// Logs to stderr through [`log_sink`]'s buffer (a line at most
/// [`log_sink::FLUSH_EVERY`] late, never on a request's path); the returned
/// flusher writes out what is left when dropped.
fn init_logging() -> Option<log_sink::Flusher> {
    let mut filter =
        EnvFilter::try_from_env("TOTPD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // rmcp logs every /mcp request at info and whole protocol messages (tool
    // arguments with secrets, answers with codes) at trace: held at warn
    // whatever TOTPD_LOG says, so no log level shows a secret or a code.
    if let Ok(directive) = "rmcp=warn".parse() {
        filter = filter.add_directive(directive);
    }
    let json = std::env::var("TOTPD_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let (writer, flusher) = log_sink::buffered_stderr();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    flusher
}

/// Resolves on SIGTERM or SIGINT.
pub(crate) async fn shutdown_signal() {
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
