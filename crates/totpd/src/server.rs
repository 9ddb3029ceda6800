//! The accept loop: HTTP/1.1 (optionally inside TLS) on hyper, with the
//! connection-level limits that axum's own `serve` does not offer.
//!
//! - At most `max_connections` connections are served at once. The loop
//!   takes a permit before it accepts, so beyond the cap new connections
//!   wait in the kernel's listen queue (they are neither refused nor read)
//!   until a served one closes.
//! - At most `max_connections_per_address` of them come from one client
//!   address (IPv4 per address, IPv6 per /64, IPv4-mapped IPv6 as IPv4):
//!   beyond, a new connection from that address is closed as soon as it is
//!   accepted, so one client cannot hold every slot.
//! - A client must finish the TLS handshake, and then each request's
//!   headers, within `header_read_timeout`. Slow-header (slowloris)
//!   connections are dropped.
//! - A connection with no request in progress that receives nothing for
//!   `keep_alive_timeout` is closed (as if the client had closed it; no
//!   error is logged). Zero turns keep-alive off.
//! - Request line and headers larger than `max_header_bytes` are answered
//!   431 by hyper, which then closes the connection.
//! - A request answered before its body was read (a 404, a 401 before the
//!   body) has the rest of its body read and discarded, up to
//!   [`DRAIN_LIMIT`] bytes within [`DRAIN_TIMEOUT`], so the connection can
//!   serve the client's next request. A longer or slower body, or one the
//!   client holds back for `Expect: 100-continue`, gets
//!   `Connection: close` on the answer instead, so the client does not
//!   reuse a connection the server is about to close.
//! - Each request carries the peer address as
//!   `axum::extract::ConnectInfo<SocketAddr>` and the listener's
//!   [`MetricsAccess`].
//!
//! On shutdown the loop stops accepting, idle connections are closed,
//! in-flight requests are finished (for at most `drain_timeout`).

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use anyhow::{Context as _, bail};
use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, header};
use hyper::body::{Body as _, Bytes, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;
use totpd_api::MetricsAccess;
use tower::ServiceExt as _;

/// Most bytes of an unread request body read and discarded after its
/// answer so the connection can be kept alive.
pub(crate) const DRAIN_LIMIT: u64 = 64 * 1024;
/// Longest wait for those bytes.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// Connection-level settings of [`serve`].
#[derive(Clone)]
pub(crate) struct ServerConfig {
    /// Serve HTTPS with this configuration; plain HTTP when `None`.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub max_connections: usize,
    /// Most connections from one client address (IPv6: one /64).
    pub max_connections_per_address: usize,
    pub max_header_bytes: usize,
    pub header_read_timeout: Duration,
    /// Idle time after which a kept-alive connection is closed; zero: no
    /// keep-alive.
    pub keep_alive_timeout: Duration,
    /// Longest wait for in-flight requests once shutdown starts.
    pub drain_timeout: Duration,
    /// How this listener serves `/metrics`.
    pub metrics: MetricsAccess,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("tls", &self.tls.is_some())
            .field("max_connections", &self.max_connections)
            .field(
                "max_connections_per_address",
                &self.max_connections_per_address,
            )
            .field("max_header_bytes", &self.max_header_bytes)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("keep_alive_timeout", &self.keep_alive_timeout)
            .field("drain_timeout", &self.drain_timeout)
            .field("metrics", &self.metrics)
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
    let per_address = Arc::new(PerAddress::new(config.max_connections_per_address));
    let tls = config.tls.clone().map(TlsAcceptor::from);
    let keep_alive = !config.keep_alive_timeout.is_zero();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_header_size(config.max_header_bytes)
        .keep_alive(keep_alive);
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
        // One address may not hold more than its share of the slots: close
        // the connection (and free the slot) at once.
        let Some(address_slot) = per_address.try_take(peer.ip()) else {
            tracing::debug!(%peer, "too many connections from this client address; closed");
            drop(stream);
            continue;
        };
        // Small answers go out at once rather than waiting for an ACK.
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            app: app.clone(),
            http: http.clone(),
            peer,
            watcher: graceful.watcher(),
            handshake_timeout: config.header_read_timeout,
            idle_timeout: keep_alive.then_some(config.keep_alive_timeout),
            metrics: config.metrics.clone(),
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            connection.run(stream, tls).await;
            drop(address_slot);
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

/// The client address a connection counts against: an IPv4 address as it
/// is (also when it arrives IPv4-mapped on an IPv6 socket), an IPv6
/// address by its /64, the block one host or one customer usually gets.
fn address_group(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
    }
}

/// Open connections per client address. Entries exist only while a
/// connection from that address is open, so the table never holds more
/// than the global cap.
#[derive(Debug)]
struct PerAddress {
    cap: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerAddress {
    fn new(cap: usize) -> PerAddress {
        PerAddress {
            cap: cap.max(1),
            open: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for a connection from `ip`, or None when its address group
    /// already has `cap` open.
    fn try_take(self: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        let group = address_group(ip);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(group).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            table: Arc::clone(self),
            group,
        })
    }
}

/// One connection's place in [`PerAddress`], given back when dropped.
struct AddressSlot {
    table: Arc<PerAddress>,
    group: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self
            .table
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.group) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.group);
            }
        }
    }
}

/// One accepted connection.
struct Connection {
    app: Router,
    http: http1::Builder,
    peer: SocketAddr,
    watcher: Watcher,
    handshake_timeout: Duration,
    /// None: keep-alive is off, hyper closes after each answer.
    idle_timeout: Option<Duration>,
    metrics: MetricsAccess,
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
            idle_timeout,
            metrics,
            ..
        } = self;
        let activity = Arc::new(Activity::default());
        let io = IdleIo::new(stream, Arc::clone(&activity), idle_timeout);
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request.extensions_mut().insert(metrics.clone());
            let in_flight = InFlight::start(&activity);
            let app = app.clone();
            async move {
                let expects_continue = request
                    .headers()
                    .get(header::EXPECT)
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
                let (parts, body) = request.into_parts();
                let body = SharedBody(Arc::new(Mutex::new(body)));
                let request = hyper::Request::from_parts(parts, body.clone());
                // The router never fails: its error type is Infallible.
                let mut response = app.oneshot(request).await?;
                if !finish_request_body(&body, expects_continue).await {
                    response
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                Ok::<_, std::convert::Infallible>(response.map(|body| GuardedBody {
                    body,
                    _in_flight: in_flight,
                }))
            }
        });
        let connection = http.serve_connection(TokioIo::new(io), service);
        if let Err(error) = watcher.watch(connection).await {
            // Timeouts, oversized headers, resets: per-connection events.
            tracing::debug!(%peer, %error, "connection closed with an error");
        }
    }
}

/// After the answer: whether the request body has been read to its end,
/// reading and discarding what is left of a small one. False means the
/// connection must close after this answer.
async fn finish_request_body(body: &SharedBody, expects_continue: bool) -> bool {
    if body.is_end_stream() {
        return true;
    }
    // The client waits for a 100 Continue that never came; asking for the
    // body now would only invite bytes nobody wants.
    if expects_continue {
        return false;
    }
    if body.size_hint().lower() > DRAIN_LIMIT {
        return false;
    }
    let drain = async {
        let mut left = DRAIN_LIMIT;
        loop {
            match std::future::poll_fn(|cx| body.poll_frame_shared(cx)).await {
                None => return true,
                Some(Ok(frame)) => {
                    let len = frame
                        .data_ref()
                        .map_or(0, |data| u64::try_from(data.len()).unwrap_or(u64::MAX));
                    match left.checked_sub(len) {
                        Some(rest) => left = rest,
                        None => return false,
                    }
                }
                Some(Err(_)) => return false,
            }
        }
    };
    tokio::time::timeout(DRAIN_TIMEOUT, drain)
        .await
        .unwrap_or(false)
}

/// A request body the app reads through, while the server keeps a handle
/// to finish reading it after the answer.
#[derive(Clone)]
struct SharedBody(Arc<Mutex<Incoming>>);

impl SharedBody {
    fn poll_frame_shared(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let mut body = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        Pin::new(&mut *body).poll_frame(cx)
    }
}

impl hyper::body::Body for SharedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        self.poll_frame_shared(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .size_hint()
    }
}

/// Whether a connection has a request in progress: from its head until its
/// answer's body is written (or dropped).
#[derive(Default)]
struct Activity {
    in_flight: AtomicUsize,
    /// The connection's reader, parked while a request was in progress, to
    /// wake when it ends so the idle timer starts.
    parked: Mutex<Option<Waker>>,
}

/// One request in progress.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: &Arc<Activity>) -> InFlight {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(activity))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            let parked = self
                .0
                .parked
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(waker) = parked {
                waker.wake();
            }
        }
    }
}

/// An answer's body, holding its request's [`InFlight`] until written.
struct GuardedBody {
    body: axum::body::Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The connection's byte stream, which reads as closed by the client once
/// it has been idle (no request in progress, no byte in either direction)
/// for the idle timeout: hyper then closes it as it would any connection
/// the client closed between requests.
struct IdleIo<S> {
    inner: S,
    activity: Arc<Activity>,
    idle: Option<Duration>,
    last_active: Instant,
    timer: Pin<Box<Sleep>>,
}

impl<S> IdleIo<S> {
    fn new(inner: S, activity: Arc<Activity>, idle: Option<Duration>) -> IdleIo<S> {
        let now = Instant::now();
        IdleIo {
            inner,
            activity,
            idle,
            last_active: now,
            timer: Box::pin(tokio::time::sleep_until(now)),
        }
    }

    /// Whether the idle timeout has run out (registering the waker if not).
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(idle) = self.idle else {
            return false;
        };
        if self.activity.in_flight.load(Ordering::Acquire) > 0 {
            *self
                .activity
                .parked
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(cx.waker().clone());
            // The request may have ended between the check and the parking.
            if self.activity.in_flight.load(Ordering::Acquire) > 0 {
                return false;
            }
        }
        // At most an hour after a past instant: cannot overflow.
        let deadline = self.last_active + idle;
        if self.timer.deadline() != deadline {
            self.timer.as_mut().reset(deadline);
        }
        self.timer.as_mut().poll(cx).is_ready()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.last_active = Instant::now();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            // Idle too long: read as the end of the stream.
            Poll::Pending if this.idle_expired(cx) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written
            && n > 0
        {
            this.last_active = Instant::now();
        }
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = written
            && n > 0
        {
            this.last_active = Instant::now();
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests may read the clocks.
mod tests {
    use super::*;

    #[test]
    fn ipv6_addresses_share_a_slot_group_per_64_and_mapped_ipv4_counts_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_group(a), address_group(b));
        assert_ne!(address_group(a), address_group(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(
            address_group(mapped),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn an_address_gets_at_most_its_cap_and_a_closed_slot_is_given_back() {
        let table = Arc::new(PerAddress::new(2));
        let one: IpAddr = "192.0.2.1".parse().unwrap();
        let two: IpAddr = "192.0.2.2".parse().unwrap();
        let first = table.try_take(one).unwrap();
        let _second = table.try_take(one).unwrap();
        assert!(table.try_take(one).is_none());
        assert!(table.try_take(two).is_some());
        drop(first);
        assert!(table.try_take(one).is_some());
        drop(_second);
        assert!(
            table.open.lock().unwrap().is_empty(),
            "empty groups are removed"
        );
    }
}
