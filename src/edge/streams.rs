//! The requests a connection carries, as the edge counts them: open
//! streams for the idle timeout, and the first request, after which a
//! connection can no longer be shed.

use std::{
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
};

use tonic::codegen::{Service, http};
use tower::Layer;

use super::slots::Slots;

/// One connection's stream count and idle clock, shared between its
/// [`super::EdgeIo`] and the requests it carries.
#[derive(Debug)]
pub struct ConnState {
    streams_open: AtomicUsize,
    /// When the last stream ended, in milliseconds of [`clock_ms`].
    idle_since_ms: AtomicU64,
    /// A request has been seen.
    requested: AtomicBool,
    /// The connection's slot, told of the first request.
    slots: Arc<Slots>,
    id: u64,
}

impl ConnState {
    pub(super) fn new(slots: Arc<Slots>, id: u64) -> ConnState {
        ConnState {
            streams_open: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(clock_ms()),
            requested: AtomicBool::new(false),
            slots,
            id,
        }
    }

    fn stream_opened(self: &Arc<ConnState>) -> StreamGuard {
        self.streams_open.fetch_add(1, Ordering::AcqRel);
        if !self.requested.swap(true, Ordering::AcqRel) {
            self.slots.first_request(self.id);
        }
        StreamGuard(Arc::clone(self))
    }

    /// Streams (requests) open on this connection now.
    pub fn streams_open(&self) -> usize {
        self.streams_open.load(Ordering::Acquire)
    }

    /// True once the connection has carried a request.
    pub fn requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }

    /// How long no stream has been open, in milliseconds (0 while one is).
    pub(super) fn idle_ms(&self) -> u64 {
        if self.streams_open() > 0 {
            return 0;
        }
        clock_ms().saturating_sub(self.idle_since_ms.load(Ordering::Acquire))
    }

    /// Starts the idle clock now (the handshake just ended).
    pub(super) fn restart_idle_clock(&self) {
        self.idle_since_ms.store(clock_ms(), Ordering::Release);
    }
}

/// Holds one stream open in its connection's count.
pub struct StreamGuard(Arc<ConnState>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        // The idle clock starts before the count reaches zero, so a reader
        // that sees zero streams also sees when they ended.
        self.0.restart_idle_clock();
        self.0.streams_open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl std::fmt::Debug for StreamGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamGuard")
    }
}

/// Milliseconds since the first call in this process: a cheap monotonic
/// clock that fits an atomic.
fn clock_ms() -> u64 {
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    let start = START.get_or_init(std::time::Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// What every request from a connection of the edge carries in its
/// extensions (tonic puts it there on the gRPC port, the HTTP/JSON server
/// on its own).
#[derive(Clone, Debug)]
pub struct EdgeInfo {
    /// The peer's address.
    pub remote: SocketAddr,
    /// The server's address the peer connected to.
    pub local: Option<SocketAddr>,
    /// The subject of the client's certificate, when it presented one that
    /// chains to the configured client CA (mTLS).
    pub client_cert: Option<String>,
    /// The connection's stream count and idle clock.
    pub conn: Arc<ConnState>,
}

/// Counts a connection's open streams from each request until its response
/// body ends, so the idle timeout knows when a connection is idle, and
/// marks its first request, after which it is never shed.
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
