//! The edge: everything that happens to a connection before a request
//! reaches authentication, on both ports (gRPC and HTTP/JSON), by the same
//! code. We own the accept loops so that an unauthenticated peer can hold
//! only what the limits give it.
//!
//! - **Connection slots** ([`slots`]). The two ports share
//!   `connections_max` slots, the server's budget of sockets; a source (an
//!   IPv4 address, an IPv6 /64) holds at most `connections_per_source_max`
//!   of them, beyond which its new connections are closed as soon as they
//!   are accepted (`medassist_connections_rejected_total{reason="per_source"}`).
//!   When every slot is taken, a new connection sheds the oldest connection
//!   that has not sent a request yet, if that one has had a quarter of
//!   `handshake_timeout` (at most 250 ms) to send it
//!   (`medassist_connections_evicted_total{reason}`: `handshake` if it had
//!   not finished its handshake, `no_request` if it had); with none to
//!   shed it is closed at once (`medassist_connections_rejected_total{reason="limit"}`).
//!   Refusing fast keeps the kernel's accept queue short, so a real client
//!   gets a clear failure and retries instead of hanging; shedding the
//!   connection that has done the least means a flood of half-open
//!   connections cannot lock new clients out.
//! - **Handshake deadline.** From the accept, a connection has
//!   `handshake_timeout` to finish its handshake ([`handshake`]), which the
//!   edge runs itself before hyper sees the connection, so a half-open
//!   connection costs only a small task. On the gRPC port that is the TLS
//!   handshake and the whole HTTP/2 client preface: the 24-byte magic and
//!   its first SETTINGS frame (RFC 9113, 3.4). On the HTTP/JSON and
//!   metrics ports (HTTP/1.1, over TLS when configured) it is the TLS
//!   handshake and the first request's headers: the edge waits for the
//!   first bytes, and [`EdgeIo`] watches the same deadline until hyper has
//!   read the whole request. The subject of a verified client certificate
//!   (mTLS) goes with the connection ([`EdgeInfo::client_cert`]) into the
//!   audit trail.
//! - **Idle timeout.** A connection with no open stream for `idle_timeout`
//!   is closed; on HTTP/1.1, where a connection between requests waits for
//!   the next one's headers, for `handshake_timeout`. Open streams are
//!   counted by [`StreamTrackLayer`], which finds the connection's
//!   [`ConnState`] in the request's extensions ([`EdgeInfo`]) and holds a
//!   guard until the response body is finished or dropped. The close
//!   happens only when no bytes wait to be read, so a request already on
//!   its way is served first.
//! - **Write stall.** A connection whose writes make no progress for
//!   `write_stall_timeout` (the peer reads nothing) is closed, so a client
//!   that never reads its responses cannot pin the server's buffers.
//! - **Shutdown.** Once the server drains, a connection with no open
//!   stream closes at once; after the grace period every connection closes.
//!
//! Keepalive pings, the per-connection stream cap, the header list limit
//! and HTTP/2 rapid-reset protection are hyper's, configured in
//! [`crate::server`]; when hyper closes a connection for one of them, the
//! GOAWAY frame it writes names why ([`goaway`]), and the close is counted
//! under that reason in `medassist_connections_closed_total`.

mod goaway;
mod handshake;
mod io;
mod slots;
mod streams;

use std::{io as stdio, net::SocketAddr, sync::Arc, time::Duration};

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{mpsc, watch},
    time::Instant,
};
use tokio_rustls::TlsAcceptor;

pub use self::{
    io::EdgeIo,
    streams::{ConnState, EdgeInfo, StreamTrack, StreamTrackLayer, TrackedBody},
};
use self::{
    io::Io,
    slots::{EVICTIONS_PENDING_MAX, SlotGuard, SlotLimits, Slots},
};
use crate::{config::Limits, metrics::Metrics};

/// How long the accept loop pauses when the process is out of file
/// descriptors: long enough not to spin, short enough to recover quickly.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);
/// Connections handed to the server but not yet taken; more wait in their
/// handshake tasks, each holding its slot.
const HANDOFF_QUEUE: usize = 64;
/// The longest a connection is spared from shedding after its accept (a
/// quarter of `handshake_timeout` when that is shorter): time for a
/// client across a city's network to make its first request, a few round
/// trips of tens of milliseconds each.
const SHED_AGE_MAX: Duration = Duration::from_millis(250);

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

/// What a listener speaks, which decides where a connection's handshake
/// ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port {
    /// gRPC: HTTP/2, over TLS when configured; the handshake ends with the
    /// client preface.
    Grpc,
    /// HTTP/JSON and metrics: HTTP/1.1, over TLS when configured; the
    /// handshake ends with the first request.
    Http,
}

/// The TLS of every port, from one certificate (and client CA): each
/// port's acceptor offers its own protocol by ALPN.
#[derive(Clone)]
pub struct TlsAcceptors {
    /// The gRPC port's: `h2`.
    pub grpc: TlsAcceptor,
    /// The HTTP/JSON and metrics ports': `http/1.1`.
    pub http: TlsAcceptor,
}

impl TlsAcceptors {
    fn for_port(&self, port: Port) -> &TlsAcceptor {
        match port {
            Port::Grpc => &self.grpc,
            Port::Http => &self.http,
        }
    }
}

/// What the edge hands over from a connection's handshake: the connection,
/// the bytes it read, and the subject of the client's certificate when
/// the peer presented one (mTLS).
type Opened = (Box<dyn Io>, Vec<u8>, Option<String>);

/// The edge's shared state: limits, slots, counters and the phase, for
/// every port the server listens on.
pub struct Edge {
    /// Read once per new connection; a configuration reload swaps it.
    limits: ArcSwap<Limits>,
    /// Read once per new connection; a reload swaps in a new certificate.
    tls: ArcSwapOption<TlsAcceptors>,
    slots: Arc<Slots>,
    metrics: Arc<Metrics>,
    phase: watch::Sender<Phase>,
    /// Connections taken from the listen queues and admitted or refused.
    taken: watch::Sender<u64>,
}

impl Edge {
    /// The edge of one server, with `tls` when its ports serve TLS.
    pub fn new(limits: Limits, tls: Option<TlsAcceptors>, metrics: Arc<Metrics>) -> Arc<Edge> {
        let (phase, _) = watch::channel(Phase::Serving);
        Arc::new(Edge {
            slots: Slots::new(Arc::clone(&metrics)),
            limits: ArcSwap::from_pointee(limits),
            tls: ArcSwapOption::from_pointee(tls),
            metrics,
            phase,
            taken: watch::Sender::new(0),
        })
    }

    /// Applies reloaded limits and TLS to connections accepted from now on;
    /// open connections keep what they started with. The server passes
    /// only the deadlines as reloaded: the connection limits stay as they
    /// were sized at start-up.
    pub fn reload(&self, limits: Limits, tls: Option<TlsAcceptors>) {
        self.limits.store(Arc::new(limits));
        self.tls.store(tls.map(Arc::new));
    }

    /// True when the edge serves TLS.
    pub fn serves_tls(&self) -> bool {
        self.tls.load().is_some()
    }

    /// The number of connections open now on every port, handshaking or
    /// serving (shed ones until their sockets close).
    pub fn connections_open(&self) -> usize {
        self.slots.open()
    }

    /// How many connections the accept loops have taken from the kernel's
    /// queues and admitted or refused so far. A caller that made a burst of
    /// connections waits on it (`wait_for`) to know the server has decided
    /// on every one, without polling.
    pub fn taken(&self) -> watch::Receiver<u64> {
        self.taken.subscribe()
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

    /// Accepts connections from `listener`, which speaks `port`, until the
    /// edge drains, and hands each one, handshaken, to the returned
    /// receiver.
    pub fn serve(self: &Arc<Edge>, listener: TcpListener, port: Port) -> mpsc::Receiver<EdgeIo> {
        let (handoff, taken) = mpsc::channel(HANDOFF_QUEUE);
        tokio::spawn(Arc::clone(self).accept_loop(listener, port, handoff));
        taken
    }

    async fn accept_loop(
        self: Arc<Edge>,
        listener: TcpListener,
        port: Port,
        handoff: mpsc::Sender<EdgeIo>,
    ) {
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
            let limits = self.limits.load();
            let admitted = self.slots.admit(
                peer.ip(),
                SlotLimits {
                    total: limits.connections_max,
                    per_source: limits.connections_per_source_max,
                    shed_age_min: (limits.handshake_timeout / 4).min(SHED_AGE_MAX),
                },
                std::time::Instant::now(),
            );
            if let Err(reason) = admitted {
                self.metrics.connection_rejected(reason);
            }
            self.taken.send_modify(|taken| *taken += 1);
            let slot = match admitted {
                Ok(slot) => slot,
                Err(reason) => {
                    tracing::debug!(%peer, reason, "closing a new connection");
                    continue;
                }
            };
            // Small answers must leave at once: without TCP_NODELAY, Nagle's
            // algorithm holds the last frame of a response until the
            // client's delayed ACK, about 40 ms later.
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%peer, %error, "cannot set TCP_NODELAY; closing");
                continue;
            }
            let handshake = Arc::clone(&self).handshake(tcp, peer, port, slot, handoff.clone());
            tokio::spawn(handshake);
        }
    }

    /// Runs the connection's handshake ([`handshake`]) within the
    /// deadline, then hands the connection over. A connection shed
    /// meanwhile, or still handshaking when the server drains, just closes.
    async fn handshake(
        self: Arc<Edge>,
        tcp: TcpStream,
        peer: SocketAddr,
        port: Port,
        mut slot: SlotGuard,
        handoff: mpsc::Sender<EdgeIo>,
    ) {
        let limits = **self.limits.load();
        let deadline = Instant::now() + limits.handshake_timeout;
        let local = tcp.local_addr().ok();
        let mut phase = self.phase.subscribe();
        let opened = tokio::select! {
            opened = tokio::time::timeout_at(deadline, self.open(tcp, port)) => opened,
            () = slot.evicted() => return,
            _ = phase.wait_for(|p| *p != Phase::Serving) => {
                self.metrics.connection_closed("shutdown");
                return;
            }
        };
        let opened = match opened {
            Ok(Ok(opened)) => opened,
            Ok(Err(handshake::Failed::Tls(error))) => {
                self.metrics.connection_rejected("tls");
                tracing::debug!(%peer, %error, "TLS handshake failed");
                return;
            }
            Ok(Err(handshake::Failed::PeerLeft)) => return,
            Err(_) => {
                self.metrics.connection_rejected("handshake_timeout");
                tracing::debug!(%peer, "handshake not done by the deadline");
                return;
            }
        };
        if port == Port::Grpc {
            self.slots.handshaken(slot.id());
        }
        let handed = tokio::select! {
            handed = handoff.reserve() => handed,
            () = slot.evicted() => return,
        };
        if let Ok(handed) = handed {
            let io = EdgeIo::new(opened, (peer, local), port, deadline, &self, &limits, slot);
            handed.send(io);
        }
    }

    /// TLS when the server has it, then the rest of the port's handshake.
    async fn open(&self, tcp: TcpStream, port: Port) -> Result<Opened, handshake::Failed> {
        let tls = self.tls.load_full();
        let (mut io, client_cert): (Box<dyn Io>, _) = match tls.as_deref() {
            None => (Box::new(tcp), None),
            Some(acceptors) => match acceptors.for_port(port).accept(tcp).await {
                Ok(tls) => {
                    let subject = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .map(|der| certificate_subject(der));
                    (Box::new(tls), subject)
                }
                Err(error) => return Err(handshake::Failed::Tls(error)),
            },
        };
        let read = handshake::opening(&mut io, port).await?;
        Ok((io, read, client_cert))
    }
}

/// The subject of a certificate the TLS handshake verified, as the audit
/// trail records it (`CN=..., O=...`).
fn certificate_subject(der: &[u8]) -> String {
    match x509_parser::parse_x509_certificate(der) {
        Ok((_, cert)) => cert.subject().to_string(),
        // rustls verified it, so it parses; say so if it ever does not.
        Err(_) => "(unreadable subject)".to_owned(),
    }
}

/// Accept errors are the system's, not a peer's: out of file descriptors
/// or memory. Pause so the loop never spins, and say so.
async fn accept_failed(error: &stdio::Error) {
    match error.kind() {
        stdio::ErrorKind::ConnectionAborted
        | stdio::ErrorKind::ConnectionReset
        | stdio::ErrorKind::Interrupted => {}
        _ => {
            tracing::warn!(%error, "cannot accept connections; pausing");
            tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
        }
    }
}

/// Raises the soft limit on open files towards the hard limit, so that
/// `connections_max` connections, and those shed but not yet closed, fit
/// with room for the store; warns when they cannot. Without it, a process started with the usual soft limit of
/// 1,024 fails accepts (and store opens) long before the connection limit.
pub fn raise_open_files_limit(connections_max: usize) {
    #[cfg(unix)]
    {
        /// Files the store, logs and listeners need besides connections.
        const RESERVE: u64 = 256;
        let want = (connections_max + EVICTIONS_PENDING_MAX) as u64 + RESERVE;
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
