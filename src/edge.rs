//! The edge: everything that happens to a connection before a request
//! reaches authentication. We own the accept loop so that an
//! unauthenticated peer can hold only what the limits give it.
//!
//! - **Connection limit.** Every accepted connection takes a permit of a
//!   semaphore of `connections_max` for as long as it is open. Without a
//!   permit the connection is closed as soon as it is accepted (counted in
//!   `medassist_connections_rejected_total{reason="limit"}`): refusing fast
//!   keeps the kernel's accept queue short, so a real client gets a clear
//!   failure and retries instead of hanging.
//! - **Handshake deadline.** From the accept, a connection has
//!   `handshake_timeout` to finish its TLS handshake (done here, not by
//!   tonic, so the deadline covers it) and to send the whole HTTP/2 client
//!   preface: the 24-byte magic and its first SETTINGS frame (RFC 9113,
//!   3.4). [`EdgeIo`] watches the bytes hyper reads for that preface.
//! - **Idle timeout.** A connection with no open stream for `idle_timeout`
//!   is closed. Open streams are counted by [`StreamTrackLayer`], which
//!   finds the connection's [`ConnState`] in the request's extensions
//!   (tonic puts [`EdgeInfo`] there) and holds a guard until the response
//!   body is finished or dropped. The close happens only when no bytes wait
//!   to be read, so a request already on its way is served first.
//! - **Write stall.** A connection whose writes make no progress for
//!   `write_stall_timeout` (the peer reads nothing) is closed, so a client
//!   that never reads its responses cannot pin the server's buffers.
//! - **Shutdown.** Once the server drains, a connection with no open
//!   stream closes at once; after the grace period every connection closes.
//!
//! Keepalive pings, the per-connection stream cap, the header list limit
//! and HTTP/2 rapid-reset protection are hyper's, configured in
//! [`crate::server`].

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch},
    time::{Instant, Sleep},
};
use tokio_rustls::TlsAcceptor;
use tonic::{
    codegen::{Service, http},
    transport::server::Connected,
};
use tower::Layer;

use crate::{config::Limits, metrics::Metrics};

/// How long the accept loop pauses when the process is out of file
/// descriptors: long enough not to spin, short enough to recover quickly.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);
/// Connections handed to the server but not yet taken; more wait in their
/// handshake tasks, each holding its permit.
const HANDOFF_QUEUE: usize = 64;
/// Length of the HTTP/2 client magic, `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`.
const PREFACE_MAGIC_LEN: usize = 24;
/// Length of an HTTP/2 frame header.
const FRAME_HEADER_LEN: usize = 9;

/// The phases of a server's life, as the edge sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Accepting and serving.
    Serving,
    /// Asked to stop: no new connections; connections without an open
    /// stream close at once, the others when their last stream ends.
    Draining,
    /// The grace period is over: every connection closes now.
    Closed,
}

/// The edge's shared state: limits, permits, counters and the phase.
pub struct Edge {
    /// Read once per new connection; a configuration reload swaps it.
    limits: ArcSwap<Limits>,
    /// Read once per new connection; a reload swaps in a new certificate.
    tls: ArcSwapOption<TlsAcceptor>,
    permits: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    phase: watch::Sender<Phase>,
    /// Connections open now (holding a permit), for tests and metrics.
    open: AtomicUsize,
}

impl Edge {
    /// The edge of one server, with `tls` when it serves TLS.
    pub fn new(limits: Limits, tls: Option<TlsAcceptor>, metrics: Arc<Metrics>) -> Arc<Edge> {
        let (phase, _) = watch::channel(Phase::Serving);
        Arc::new(Edge {
            permits: Arc::new(Semaphore::new(limits.connections_max)),
            limits: ArcSwap::from_pointee(limits),
            tls: ArcSwapOption::from_pointee(tls),
            metrics,
            phase,
            open: AtomicUsize::new(0),
        })
    }

    /// Applies reloaded deadlines and TLS to connections accepted from now
    /// on; open connections keep what they started with. The connection
    /// limit is sized at start-up and stays.
    pub fn reload(&self, limits: Limits, tls: Option<TlsAcceptor>) {
        self.limits.store(Arc::new(limits));
        self.tls.store(tls.map(Arc::new));
    }

    /// True when the edge serves TLS.
    pub fn serves_tls(&self) -> bool {
        self.tls.load().is_some()
    }

    /// The number of connections open now, handshaking or serving.
    pub fn connections_open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Moves to `phase` (never back).
    pub fn set_phase(&self, phase: Phase) {
        self.phase.send_if_modified(|now| {
            let later = phase > *now;
            if later {
                *now = phase;
            }
            later
        });
    }

    /// Accepts connections from `listener` until the edge drains, and hands
    /// each one, handshaken, to the returned receiver.
    pub fn serve(self: &Arc<Edge>, listener: TcpListener) -> mpsc::Receiver<EdgeIo> {
        let (handoff, taken) = mpsc::channel(HANDOFF_QUEUE);
        tokio::spawn(Arc::clone(self).accept_loop(listener, handoff));
        taken
    }

    async fn accept_loop(self: Arc<Edge>, listener: TcpListener, handoff: mpsc::Sender<EdgeIo>) {
        let mut phase = self.phase.subscribe();
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = phase.wait_for(|p| *p != Phase::Serving) => return,
                () = handoff.closed() => return,
            };
            let (tcp, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(&error).await;
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
                self.metrics.connection_rejected("limit");
                tracing::debug!(%peer, "connection limit reached; closing a new connection");
                drop(tcp);
                continue;
            };
            // Small answers must leave at once: without TCP_NODELAY, Nagle's
            // algorithm holds the last frame of a response until the
            // client's delayed ACK, about 40 ms later.
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%peer, %error, "cannot set TCP_NODELAY; closing");
                continue;
            }
            let guard = OpenGuard::new(Arc::clone(&self), permit);
            tokio::spawn(Arc::clone(&self).handshake(tcp, peer, guard, handoff.clone()));
        }
    }

    /// Completes TLS within the deadline, then hands the connection over;
    /// the HTTP/2 preface is watched by [`EdgeIo`] under the same deadline.
    async fn handshake(
        self: Arc<Edge>,
        tcp: TcpStream,
        peer: SocketAddr,
        guard: OpenGuard,
        handoff: mpsc::Sender<EdgeIo>,
    ) {
        let deadline = Instant::now() + self.limits.load().handshake_timeout;
        let local = tcp.local_addr().ok();
        let tls = self.tls.load_full();
        let io: Box<dyn Io> = match tls.as_deref() {
            None => Box::new(tcp),
            Some(acceptor) => match tokio::time::timeout_at(deadline, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => Box::new(tls),
                Ok(Err(error)) => {
                    self.metrics.connection_rejected("tls");
                    tracing::debug!(%peer, %error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    self.metrics.connection_rejected("handshake_timeout");
                    tracing::debug!(%peer, "TLS handshake not done by the deadline");
                    return;
                }
            },
        };
        let io = EdgeIo::new(io, peer, local, deadline, guard);
        let _ = handoff.send(io).await;
    }
}

/// Accept errors are the system's, not a peer's: out of file descriptors
/// or memory. Pause so the loop never spins, and say so.
async fn accept_failed(error: &io::Error) {
    match error.kind() {
        io::ErrorKind::ConnectionAborted
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::Interrupted => {}
        _ => {
            tracing::warn!(%error, "cannot accept connections; pausing");
            tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
        }
    }
}

/// Counts an open connection and holds its permit until it closes.
struct OpenGuard {
    edge: Arc<Edge>,
    _permit: OwnedSemaphorePermit,
}

impl OpenGuard {
    fn new(edge: Arc<Edge>, permit: OwnedSemaphorePermit) -> OpenGuard {
        let open = edge.open.fetch_add(1, Ordering::Relaxed) + 1;
        edge.metrics.connections_open(open);
        edge.metrics.connection_accepted();
        OpenGuard {
            edge,
            _permit: permit,
        }
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        let open = self.edge.open.fetch_sub(1, Ordering::Relaxed) - 1;
        self.edge.metrics.connections_open(open);
    }
}

/// What a connection carries under the edge: TCP, or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// One connection's stream count and idle clock, shared between its
/// [`EdgeIo`] and the requests it carries.
#[derive(Debug, Default)]
pub struct ConnState {
    streams_open: AtomicUsize,
    /// When the last stream ended, in milliseconds of [`clock_ms`].
    idle_since_ms: AtomicU64,
}

impl ConnState {
    fn stream_opened(self: &Arc<ConnState>) -> StreamGuard {
        self.streams_open.fetch_add(1, Ordering::AcqRel);
        StreamGuard(Arc::clone(self))
    }

    /// Streams (requests) open on this connection now.
    pub fn streams_open(&self) -> usize {
        self.streams_open.load(Ordering::Acquire)
    }
}

/// Holds one stream open in its connection's count.
pub struct StreamGuard(Arc<ConnState>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        // The idle clock starts before the count reaches zero, so a reader
        // that sees zero streams also sees when they ended.
        self.0.idle_since_ms.store(clock_ms(), Ordering::Release);
        self.0.streams_open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Milliseconds since the first call in this process: a cheap monotonic
/// clock that fits an atomic.
fn clock_ms() -> u64 {
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    let start = START.get_or_init(std::time::Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// What tonic puts in every request's extensions for a connection from the
/// edge.
#[derive(Clone, Debug)]
pub struct EdgeInfo {
    /// The peer's address.
    pub remote: SocketAddr,
    /// The server's address the peer connected to.
    pub local: Option<SocketAddr>,
    /// The connection's stream count and idle clock.
    pub conn: Arc<ConnState>,
}

/// Where a connection stands against its read-side deadlines.
enum ReadState {
    /// The HTTP/2 preface is not complete; `read` bytes of the `need` so far.
    Preface {
        read: usize,
        need: usize,
        header: [u8; FRAME_HEADER_LEN],
    },
    /// Serving requests; idle rules apply.
    Open,
}

/// A connection as hyper sees it: the TCP or TLS stream, with the handshake
/// deadline, the idle timeout and the write-stall timeout enforced on its
/// reads and writes. Dropping it closes the socket and frees the permit.
pub struct EdgeIo {
    inner: Box<dyn Io>,
    info: EdgeInfo,
    state: ReadState,
    limits: Limits,
    metrics: Arc<Metrics>,
    /// The handshake deadline, then the idle deadline.
    read_timer: Pin<Box<Sleep>>,
    /// Armed while a write is blocked.
    write_timer: Option<Pin<Box<Sleep>>>,
    phase: watch::Receiver<Phase>,
    phase_changed: Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    _open: OpenGuard,
}

impl EdgeIo {
    fn new(
        inner: Box<dyn Io>,
        remote: SocketAddr,
        local: Option<SocketAddr>,
        deadline: Instant,
        open: OpenGuard,
    ) -> EdgeIo {
        let edge = &open.edge;
        let phase = edge.phase.subscribe();
        EdgeIo {
            inner,
            info: EdgeInfo {
                remote,
                local,
                conn: Arc::new(ConnState::default()),
            },
            state: ReadState::Preface {
                read: 0,
                need: PREFACE_MAGIC_LEN + FRAME_HEADER_LEN,
                header: [0; FRAME_HEADER_LEN],
            },
            limits: **edge.limits.load(),
            metrics: Arc::clone(&edge.metrics),
            read_timer: Box::pin(tokio::time::sleep_until(deadline)),
            write_timer: None,
            phase_changed: phase_change(phase.clone()),
            phase,
            _open: open,
        }
    }

    /// Follows the preface through the bytes just read; true once complete.
    fn saw(&mut self, bytes: &[u8]) -> bool {
        let ReadState::Preface { read, need, header } = &mut self.state else {
            return true;
        };
        for &byte in bytes {
            let at = *read;
            if (PREFACE_MAGIC_LEN..PREFACE_MAGIC_LEN + FRAME_HEADER_LEN).contains(&at) {
                header[at - PREFACE_MAGIC_LEN] = byte;
            }
            *read += 1;
            if *read == PREFACE_MAGIC_LEN + FRAME_HEADER_LEN {
                let length = u32::from_be_bytes([0, header[0], header[1], header[2]]);
                *need += length as usize;
            }
            if *read >= *need {
                return true;
            }
        }
        false
    }

    fn opened(&mut self) {
        self.state = ReadState::Open;
        self.info
            .conn
            .idle_since_ms
            .store(clock_ms(), Ordering::Release);
        self.arm_idle();
    }

    /// Sets the read timer to when the connection would become idle too long.
    fn arm_idle(&mut self) {
        let conn = &self.info.conn;
        let wait = if conn.streams_open() > 0 {
            self.limits.idle_timeout
        } else {
            let idle_ms = clock_ms().saturating_sub(conn.idle_since_ms.load(Ordering::Acquire));
            self.limits
                .idle_timeout
                .saturating_sub(Duration::from_millis(idle_ms))
        };
        self.read_timer.as_mut().reset(Instant::now() + wait);
    }

    /// Why the connection must close now, if it must, when no bytes wait.
    fn read_verdict(&mut self, cx: &mut Context<'_>) -> Option<&'static str> {
        let _ = self.phase_changed.as_mut().poll(cx);
        let phase = *self.phase.borrow();
        if phase == Phase::Closed {
            return Some("shutdown");
        }
        let handshaking = matches!(self.state, ReadState::Preface { .. });
        if handshaking && phase == Phase::Draining {
            return Some("shutdown");
        }
        if !handshaking && self.info.conn.streams_open() == 0 && phase == Phase::Draining {
            return Some("shutdown");
        }
        while self.read_timer.as_mut().poll(cx).is_ready() {
            if handshaking {
                return Some("handshake_timeout");
            }
            if self.info.conn.streams_open() == 0 {
                let idle_ms =
                    clock_ms().saturating_sub(self.info.conn.idle_since_ms.load(Ordering::Acquire));
                if Duration::from_millis(idle_ms) >= self.limits.idle_timeout {
                    return Some("idle");
                }
            }
            self.arm_idle();
        }
        None
    }

    fn close(&self, reason: &'static str) -> io::Error {
        if reason == "handshake_timeout" {
            self.metrics.connection_rejected(reason);
        } else {
            self.metrics.connection_closed(reason);
        }
        tracing::debug!(peer = %self.info.remote, reason, "closing connection");
        io::Error::new(io::ErrorKind::TimedOut, reason)
    }

    /// Checks the write-stall timer after a write attempt.
    fn after_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match result {
            Poll::Pending => {
                if *self.phase.borrow() == Phase::Closed {
                    return Poll::Ready(Err(self.close("shutdown")));
                }
                let stall = self.limits.write_stall_timeout;
                let timer = self
                    .write_timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(self.close("write_stall")));
                }
                Poll::Pending
            }
            ready => {
                self.write_timer = None;
                ready
            }
        }
    }
}

fn phase_change(
    mut phase: watch::Receiver<Phase>,
) -> Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async move {
        // Wakes the connection at each change; ends with the edge.
        while phase.changed().await.is_ok() {}
        std::future::pending::<()>().await;
    })
}

use std::future::Future as _;

impl AsyncRead for EdgeIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if matches!(this.state, ReadState::Preface { .. }) {
                    // A preface sent a byte at a time must still finish in time.
                    if this.read_timer.is_elapsed() {
                        return Poll::Ready(Err(this.close("handshake_timeout")));
                    }
                    let fresh = buf.filled()[before..].to_vec();
                    if this.saw(&fresh) {
                        this.opened();
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => match this.read_verdict(cx) {
                Some(reason) => Poll::Ready(Err(this.close(reason))),
                None => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for EdgeIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.after_write(cx, result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.after_write(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        this.after_write(cx, result)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let result = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.after_write(cx, result)
    }
}

impl Connected for EdgeIo {
    type ConnectInfo = EdgeInfo;

    fn connect_info(&self) -> EdgeInfo {
        self.info.clone()
    }
}

/// Counts a connection's open streams from each request until its response
/// body ends, so the idle timeout knows when a connection is idle.
#[derive(Clone, Copy, Debug, Default)]
pub struct StreamTrackLayer;

impl<S> Layer<S> for StreamTrackLayer {
    type Service = StreamTrack<S>;
    fn layer(&self, inner: S) -> StreamTrack<S> {
        StreamTrack { inner }
    }
}

/// The service [`StreamTrackLayer`] makes.
#[derive(Clone, Debug)]
pub struct StreamTrack<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for StreamTrack<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = http::Response<TrackedBody<ResBody>>;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let guard = request
            .extensions()
            .get::<EdgeInfo>()
            .map(|info| info.conn.stream_opened());
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await?;
            Ok(response.map(|inner| TrackedBody { inner, guard }))
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its stream counted until it is finished
    /// or dropped.
    #[derive(Debug, Default)]
    pub struct TrackedBody<B> {
        #[pin]
        inner: B,
        guard: Option<StreamGuard>,
    }
}

impl std::fmt::Debug for StreamGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamGuard")
    }
}

impl<B: http_body::Body> http_body::Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = this.inner.poll_frame(cx);
        if let Poll::Ready(None) = frame {
            this.guard.take();
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Raises the soft limit on open files towards the hard limit, so that
/// `connections_max` connections fit with room for the store; warns when
/// they cannot. Without it, a process started with the usual soft limit of
/// 1,024 fails accepts (and store opens) long before the connection limit.
pub fn raise_open_files_limit(connections_max: usize) {
    #[cfg(unix)]
    {
        /// Files the store, logs and listeners need besides connections.
        const RESERVE: u64 = 256;
        let want = connections_max as u64 + RESERVE;
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we own.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            return;
        }
        if limit.rlim_cur >= want {
            return;
        }
        let raised = libc::rlimit {
            rlim_cur: want.min(limit.rlim_max),
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we own.
        let ok = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0;
        if !ok || raised.rlim_cur < want {
            tracing::warn!(
                open_files = if ok { raised.rlim_cur } else { limit.rlim_cur },
                connections_max,
                "the open-file limit is below connections_max plus what the store needs: \
                 raise it (ulimit -n, LimitNOFILE=) or lower limits.connections_max"
            );
        }
    }
}

/// The HTTP/JSON port's listener: at most `connections_max` connections open
/// at once (its own count, beside the gRPC port's); beyond it a connection is
/// closed as soon as it is accepted. The header-read deadline is hyper's
/// (see `serve_http` in [`crate::server`]); there is no write-stall deadline.
pub struct LimitedListener {
    listener: TcpListener,
    permits: Arc<Semaphore>,
}

impl LimitedListener {
    /// Limits `listener` to `connections_max` open connections.
    pub fn new(listener: TcpListener, connections_max: usize) -> LimitedListener {
        LimitedListener {
            listener,
            permits: Arc::new(Semaphore::new(connections_max)),
        }
    }
}

impl axum::serve::Listener for LimitedListener {
    type Io = PermittedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (PermittedStream, SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, addr)) => match Arc::clone(&self.permits).try_acquire_owned() {
                    Ok(permit) => {
                        let _ = stream.set_nodelay(true);
                        return (
                            PermittedStream {
                                stream,
                                _permit: permit,
                            },
                            addr,
                        );
                    }
                    Err(_) => drop(stream),
                },
                Err(_) => tokio::time::sleep(ACCEPT_ERROR_PAUSE).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// A connection holding its permit of a [`LimitedListener`] while open.
pub struct PermittedStream {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for PermittedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for PermittedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
