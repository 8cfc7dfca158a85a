//! A connection as hyper sees it: the TCP or TLS stream with the edge's
//! deadlines enforced on its reads and writes, and the reason it closed
//! counted once, when it drops.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    sync::watch,
    time::{Instant, Sleep},
};
use tonic::transport::server::Connected;

use super::{
    Edge, Phase, Port,
    goaway::{GoAwayScan, Said},
    slots::SlotGuard,
    streams::{ConnState, EdgeInfo},
};
use crate::{config::Limits, metrics::Metrics};

/// What a connection carries under the edge: TCP, or TLS over TCP.
pub(super) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Where a connection stands against its read-side deadlines.
enum ReadState {
    /// HTTP/1.1: no request yet; the first one ends the handshake.
    FirstRequest,
    /// Serving requests; idle rules apply.
    Open,
}

/// A connection as hyper sees it: the TCP or TLS stream, with the handshake
/// deadline, the idle timeout, the write-stall timeout and shedding
/// enforced on its reads and writes. Dropping it closes the socket and
/// frees its slot.
pub struct EdgeIo {
    inner: Box<dyn Io>,
    /// What the handshake read, for hyper to read first; `replayed` bytes
    /// of it have been.
    read: Vec<u8>,
    replayed: usize,
    info: EdgeInfo,
    state: ReadState,
    /// How long the connection may have no open stream once open: the idle
    /// timeout on gRPC; on HTTP/1.1, where a connection between requests
    /// waits for the next one's headers, the handshake deadline.
    idle_timeout: Duration,
    write_stall_timeout: Duration,
    metrics: Arc<Metrics>,
    /// The handshake deadline, then the idle deadline.
    read_timer: Pin<Box<Sleep>>,
    /// Armed while a write is blocked.
    write_timer: Option<Pin<Box<Sleep>>>,
    phase: watch::Receiver<Phase>,
    phase_changed: Pin<Box<dyn Future<Output = ()> + Send>>,
    /// The frames hyper writes, on the gRPC port, for the GOAWAY that
    /// names why hyper closes.
    goaway: Option<GoAwayScan>,
    /// Why the connection closes, once known: the edge's own decision or
    /// the GOAWAY hyper wrote, whichever came first.
    closing: Option<&'static str>,
    slot: SlotGuard,
}

impl EdgeIo {
    /// The connection `inner`, handshaken by the edge, which read `read`
    /// from it.
    pub(super) fn new(
        (inner, read, client_cert): super::Opened,
        (remote, local): (SocketAddr, Option<SocketAddr>),
        port: Port,
        deadline: Instant,
        edge: &Edge,
        limits: &Limits,
        slot: SlotGuard,
    ) -> EdgeIo {
        let phase = edge.phase.subscribe();
        // The gRPC handshake is over: the idle clock runs from now. The
        // HTTP/1.1 one lasts until hyper has read the first request.
        let (state, read_until, idle_timeout, goaway) = match port {
            Port::Grpc => (
                ReadState::Open,
                Instant::now() + limits.idle_timeout,
                limits.idle_timeout,
                Some(GoAwayScan::default()),
            ),
            Port::Http => (
                ReadState::FirstRequest,
                deadline,
                limits.handshake_timeout,
                None,
            ),
        };
        EdgeIo {
            inner,
            read,
            replayed: 0,
            info: EdgeInfo {
                remote,
                local,
                client_cert,
                conn: Arc::new(ConnState::new(Arc::clone(slot.slots()), slot.id())),
            },
            state,
            idle_timeout,
            write_stall_timeout: limits.write_stall_timeout,
            metrics: Arc::clone(&edge.metrics),
            read_timer: Box::pin(tokio::time::sleep_until(read_until)),
            write_timer: None,
            phase_changed: phase_change(phase.clone()),
            phase,
            goaway,
            closing: None,
            slot,
        }
    }

    /// The handshake is over: idle rules from now on.
    fn open(&mut self) {
        self.state = ReadState::Open;
        self.arm_idle();
    }

    /// Sets the read timer to when the connection would become idle too long.
    fn arm_idle(&mut self) {
        let idle = Duration::from_millis(self.info.conn.idle_ms());
        let wait = self.idle_timeout.saturating_sub(idle);
        self.read_timer.as_mut().reset(Instant::now() + wait);
    }

    /// Why the connection must close now, if it must, when no bytes wait.
    fn read_verdict(&mut self, cx: &mut Context<'_>) -> Option<&'static str> {
        let _ = self.phase_changed.as_mut().poll(cx);
        if matches!(self.state, ReadState::FirstRequest) && self.info.conn.requested() {
            self.open();
        }
        let handshaking = !matches!(self.state, ReadState::Open);
        match *self.phase.borrow() {
            Phase::Closed => return Some("shutdown"),
            Phase::Draining if handshaking || self.info.conn.streams_open() == 0 => {
                return Some("shutdown");
            }
            _ => {}
        }
        while self.read_timer.as_mut().poll(cx).is_ready() {
            if handshaking {
                return Some("handshake_timeout");
            }
            if Duration::from_millis(self.info.conn.idle_ms()) >= self.idle_timeout {
                return Some("idle");
            }
            self.arm_idle();
        }
        None
    }

    /// Closes the connection for `reason`: the error hyper gets.
    fn close(&mut self, reason: &'static str) -> io::Error {
        self.closing.get_or_insert(reason);
        tracing::debug!(peer = %self.info.remote, reason, "closing connection");
        io::Error::new(io::ErrorKind::TimedOut, reason)
    }

    /// Notes a GOAWAY hyper just wrote, if it was the first word on why
    /// the connection closes.
    fn note_goaway(&mut self) {
        if self.closing.is_some() {
            return;
        }
        self.closing = match self.goaway.as_ref().and_then(GoAwayScan::said) {
            None => None,
            Some(Said::Cause(cause)) => Some(cause),
            // See `goaway`: only keepalive says NO_ERROR while serving.
            Some(Said::NoError) if *self.phase.borrow() == Phase::Serving => Some("keepalive"),
            Some(Said::NoError) => Some("shutdown"),
        };
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
                let stall = self.write_stall_timeout;
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

impl Drop for EdgeIo {
    /// Counts why the connection closed, once: a peer that hung up is not
    /// counted, and a shed one was counted when it was shed.
    fn drop(&mut self) {
        match self.closing {
            None | Some("evicted") => {}
            Some(reason @ "handshake_timeout") => self.metrics.connection_rejected(reason),
            Some(reason) => self.metrics.connection_closed(reason),
        }
    }
}

fn phase_change(mut phase: watch::Receiver<Phase>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        // Wakes the connection at each change; ends with the edge.
        while phase.changed().await.is_ok() {}
        std::future::pending::<()>().await;
    })
}

impl AsyncRead for EdgeIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        // Shed: close now, whatever is waiting to be read.
        if this.slot.poll_evicted(cx) {
            return Poll::Ready(Err(this.close("evicted")));
        }
        if this.replayed < this.read.len() {
            let rest = &this.read[this.replayed..];
            let take = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..take]);
            this.replayed += take;
            if this.replayed == this.read.len() {
                this.read = Vec::new();
                this.replayed = 0;
            }
            return Poll::Ready(Ok(()));
        }
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => Poll::Ready(result),
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
        if let (Poll::Ready(Ok(written)), Some(scan)) = (&result, this.goaway.as_mut()) {
            scan.wrote(&buf[..*written]);
            this.note_goaway();
        }
        this.after_write(cx, result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let (Poll::Ready(Ok(written)), Some(scan)) = (&result, this.goaway.as_mut()) {
            scan.wrote_vectored(bufs, *written);
            this.note_goaway();
        }
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
