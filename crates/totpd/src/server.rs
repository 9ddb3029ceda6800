//! The accept loop: HTTP/1.1 (optionally inside TLS) on hyper, with the
//! connection-level limits that axum's own `serve` does not offer.
//!
//! - At most `max_connections` connections are served at once. The loop
//!   takes a permit before it accepts, so beyond the cap new connections
//!   wait in the kernel's listen queue (they are neither refused nor read)
//!   until a served one closes.
//! - A client must finish the TLS handshake, and then each request's
//!   headers, within `header_read_timeout`; the same timeout closes idle
//!   keep-alive connections. Slow-header (slowloris) connections are dropped.
//! - Request line and headers larger than `max_header_bytes` are answered
//!   431 by hyper, which then closes the connection.
//! - Each request carries the peer address as
//!   `axum::extract::ConnectInfo<SocketAddr>`.
//!
//! On shutdown the loop stops accepting, idle connections are closed,
//! in-flight requests are finished (for at most `drain_timeout`).

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

/// Connection-level settings of [`serve`].
#[derive(Clone)]
pub(crate) struct ServerConfig {
    /// Serve HTTPS with this configuration; plain HTTP when `None`.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub max_connections: usize,
    pub max_header_bytes: usize,
    pub header_read_timeout: Duration,
    /// Longest wait for in-flight requests once shutdown starts.
    pub drain_timeout: Duration,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("tls", &self.tls.is_some())
            .field("max_connections", &self.max_connections)
            .field("max_header_bytes", &self.max_header_bytes)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("drain_timeout", &self.drain_timeout)
            .finish()
    }
}

/// Loads a certificate chain and its private key from PEM files into a
/// rustls configuration (ring provider, TLS 1.2 and 1.3, HTTP/1.1 by ALPN).
pub(crate) fn load_tls(cert: &Path, key: &Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| {
            format!(
                "could not read the TLS certificate chain {}",
                cert.display()
            )
        })?;
    if chain.is_empty() {
        bail!(
            "the TLS certificate file {} contains no PEM certificate",
            cert.display()
        );
    }
    let private_key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("could not read a TLS private key from {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("the TLS provider supports no protocol version")?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .with_context(|| {
            format!(
                "the TLS key {} does not fit the certificate {}",
                key.display(),
                cert.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let tls = config.tls.clone().map(TlsAcceptor::from);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_header_size(config.max_header_bytes)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);

    loop {
        // Take a slot first: beyond the cap, connections stay unaccepted.
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                // Only a closed semaphore fails, and nothing closes it.
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(&error).await;
                    continue;
                }
            },
        };
        // Small answers go out at once rather than waiting for an ACK.
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            app: app.clone(),
            http: http.clone(),
            peer,
            watcher: graceful.watcher(),
            handshake_timeout: config.header_read_timeout,
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            connection.run(stream, tls).await;
            drop(permit);
        });
    }

    drop(listener);
    if tokio::time::timeout(config.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            timeout_secs = config.drain_timeout.as_secs(),
            "connections still open after the drain timeout; closing them"
        );
    }
}

/// Errors from `accept` concern one connection (reset before it was
/// accepted) or the process (out of file descriptors). Neither stops the
/// server; the latter gets a pause so the loop does not spin.
async fn accept_failed(error: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    ) {
        tracing::debug!(%error, "a connection failed before it was accepted");
        return;
    }
    tracing::warn!(%error, "could not accept a connection; retrying shortly");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// One accepted connection.
struct Connection {
    app: Router,
    http: http1::Builder,
    peer: SocketAddr,
    watcher: Watcher,
    handshake_timeout: Duration,
}

impl Connection {
    async fn run(self, stream: TcpStream, tls: Option<TlsAcceptor>) {
        let Some(acceptor) = tls else {
            self.serve_http(stream).await;
            return;
        };
        // A failed or stalled handshake is the client's problem (a port
        // scan, plain HTTP to the HTTPS port): note it quietly and move on.
        match tokio::time::timeout(self.handshake_timeout, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => self.serve_http(stream).await,
            Ok(Err(error)) => {
                tracing::debug!(peer = %self.peer, %error, "TLS handshake failed");
            }
            Err(_) => {
                tracing::debug!(peer = %self.peer, "TLS handshake timed out");
            }
        }
    }

    async fn serve_http<S>(self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Connection {
            app,
            http,
            peer,
            watcher,
            ..
        } = self;
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let app = app.clone();
            // The router never fails: its error type is Infallible.
            async move { app.oneshot(request).await }
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        if let Err(error) = watcher.watch(connection).await {
            // Timeouts, oversized headers, resets: per-connection events.
            tracing::debug!(%peer, %error, "connection closed with an error");
        }
    }
}
