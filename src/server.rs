//! Start-up and shutdown: open the store, bind the ports, serve the four
//! services behind authentication, the concurrency gate and optional TLS,
//! with health, reflection and metrics; stop cleanly.
//!
//! [`Server::bind`] returns once the ports are bound (port 0 picks a free
//! one, which tests use), so a client may connect as soon as it returns.
//! [`Server::run`] serves until the given shutdown future completes, lets
//! in-flight requests finish, then drains the ledger so every acknowledged
//! write is on disk before it returns.

use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use tokio::{net::TcpListener, sync::watch};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        self, RootCertStore,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
        server::WebPkiClientVerifier,
    },
};
use tokio_stream::StreamExt as _;
use tower::Layer as _;

use crate::{
    app::App,
    auth::{Access, Refusal},
    clock::Clock,
    config::{AuditSettings, Config, Limits, Reconciliation, TlsFiles},
    edge::{Edge, Phase, Port, StreamTrackLayer, TlsAcceptors},
    grpc::{
        Api, Authenticator, FILE_DESCRIPTOR_SET, GateLayer, GateState, Gateway, api_routes,
        pb::{
            admin_service_server::AdminServiceServer,
            application_service_server::ApplicationServiceServer,
            caller_service_server::CallerServiceServer, policy_service_server::PolicyServiceServer,
            reconciliation_service_server::ReconciliationServiceServer,
            roster_service_server::RosterServiceServer,
            settlement_service_server::SettlementServiceServer,
            statistics_service_server::StatisticsServiceServer,
            usage_service_server::UsageServiceServer,
        },
    },
    metrics::Metrics,
    store::{PostgresStore, Schema, SledOptions, SledStore, Store, StoreError},
};

/// What the server needs to start.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Directory of the embedded store.
    pub data_dir: PathBuf,
    /// Serve from this PostgreSQL database instead (`data_dir` is then
    /// unused).
    pub database_url: Option<String>,
    /// The CA that signed the database server's certificate: with it,
    /// connections to the database use TLS and verify the server.
    pub database_ca: Option<PathBuf>,
    /// Policies, access, TLS and limits from the configuration file.
    pub config: Config,
    /// Where to serve Prometheus metrics (`/metrics`), if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// Where to serve the HTTP/JSON API and `/openapi.json`, if anywhere.
    pub http_listen: Option<SocketAddr>,
    /// Tuning of the embedded store.
    pub store: SledOptions,
    /// What commits are stamped with: the system clock, or a test's.
    pub clock: Arc<dyn Clock>,
    /// How long the server keeps serving new requests after it was asked to
    /// stop, with health already `NOT_SERVING`, so load balancers move
    /// traffic away before connections close.
    pub drain_period: Duration,
}

impl ServerConfig {
    /// The defaults of `medassist serve` on `listen` and `data_dir`: the
    /// built-in policy, open (loopback only), no TLS, no metrics; no drain
    /// period (the command line's `--drain` defaults to [`DRAIN_DEFAULT`]).
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        ServerConfig {
            listen,
            data_dir,
            database_url: None,
            database_ca: None,
            config: Config::default(),
            metrics_listen: None,
            http_listen: None,
            store: SledOptions::default(),
            clock: crate::clock::system(),
            drain_period: Duration::ZERO,
        }
    }
}

/// Why the server could not start or keep serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The data directory could not be opened.
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    /// An address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the system said.
        source: std::io::Error,
    },
    /// The service would be reachable by anyone.
    #[error(
        "refusing to listen on {0} without authentication: add an [auth] section \
         (see `medassist token new`) or listen on a loopback address"
    )]
    OpenOffLoopback(SocketAddr),
    /// The TLS files could not be used.
    #[error("TLS: {0}")]
    Tls(String),
    /// The reflection service could not read the descriptors.
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The HTTP/JSON routes could not be read from the descriptors.
    #[error(transparent)]
    Gateway(#[from] crate::grpc::transcode::GatewayError),
    /// The transport failed while serving.
    #[error("serving failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// A bound, not yet serving, server.
pub struct Server {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    http_listener: Option<TcpListener>,
    app: Arc<App>,
    access: Arc<ArcSwap<Access>>,
    limits: Limits,
    reconciliation: Reconciliation,
    audit: AuditSettings,
    metrics: Arc<Metrics>,
    gate: Arc<GateState>,
    edge: Arc<Edge>,
    /// The metrics port's own edge: a flood on the API ports cannot take
    /// the slots a scrape needs to watch it.
    metrics_edge: Arc<Edge>,
    drain_period: Duration,
}

impl Server {
    /// Opens the store (PostgreSQL at `config.database_url`, else the
    /// embedded store in `config.data_dir`) and binds the addresses.
    pub async fn bind(config: ServerConfig) -> Result<Server, ServeError> {
        if let Some(url) = &config.database_url {
            let store = PostgresStore::open(url, config.database_ca.as_deref(), Schema::Migrate)?;
            tracing::info!("serving from PostgreSQL");
            return Server::bind_with_store(config, Arc::new(store)).await;
        }
        // The store creates the directory itself, and makes its name durable.
        let options = SledOptions {
            utc_offset: Some(config.config.reconciliation.utc_offset),
            ..config.store
        };
        let store = SledStore::open(&config.data_dir, options)?;
        Server::bind_with_store(config, Arc::new(store)).await
    }

    /// Binds the addresses over any store (`config.data_dir` is not used).
    pub async fn bind_with_store(
        config: ServerConfig,
        store: Arc<dyn Store>,
    ) -> Result<Server, ServeError> {
        let Config {
            policies,
            access,
            tls,
            limits,
            reconciliation,
            audit,
            backup,
        } = config.config;
        let listeners = Listeners {
            grpc: config.listen,
            http: config.http_listen,
            metrics: config.metrics_listen,
        };
        listeners.check_exposure(&access, tls.is_some())?;
        let tls = tls.as_ref().map(tls_acceptors).transpose()?;
        crate::edge::raise_open_files_limit(limits.connections_max + METRICS_CONNECTIONS_MAX);
        let listener = bind(config.listen).await?;
        let metrics_listener = match config.metrics_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let http_listener = match config.http_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let metrics = Arc::new(Metrics::new());
        store.observe(Arc::clone(&metrics) as Arc<dyn crate::store::StoreObserver>);
        let gate = GateState::new(limits.concurrent_requests_max, Arc::clone(&metrics));
        let metrics_edge = Edge::new(
            metrics_port_limits(limits),
            tls.clone(),
            Arc::clone(&metrics),
        );
        let edge = Edge::new(limits, tls, Arc::clone(&metrics));
        let app = App::start(
            store,
            policies,
            Arc::clone(&metrics),
            &limits,
            config.clock,
            reconciliation.utc_offset,
        )?;
        app.set_backup_recipients(backup.recipients);
        Ok(Server {
            listener,
            metrics_listener,
            http_listener,
            app: Arc::new(app),
            access: Arc::new(ArcSwap::from_pointee(access)),
            limits,
            reconciliation,
            audit,
            metrics,
            gate,
            edge,
            metrics_edge,
            drain_period: config.drain_period,
        })
    }

    /// The address actually bound (the port chosen when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        bound_addr(&self.listener)
    }

    /// The metrics address actually bound, when metrics are served.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().map(bound_addr)
    }

    /// The HTTP/JSON address actually bound, when HTTP/JSON is served.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_listener.as_ref().map(bound_addr)
    }

    /// The request gate, for tests and tools that must know how many
    /// requests are in progress.
    pub fn gate(&self) -> Arc<GateState> {
        Arc::clone(&self.gate)
    }

    /// What applies a reloaded configuration to this server (see
    /// [`reload_on_hangup`]).
    pub fn reloader(&self) -> Reloader {
        Reloader {
            listeners: Listeners {
                grpc: self.local_addr(),
                http: self.http_addr(),
                metrics: self.metrics_addr(),
            },
            access: Arc::clone(&self.access),
            app: Arc::clone(&self.app),
            edge: Arc::clone(&self.edge),
            metrics_edge: Arc::clone(&self.metrics_edge),
            metrics: Arc::clone(&self.metrics),
            limits: self.limits,
            reconciliation: self.reconciliation,
            audit: self.audit,
        }
    }

    /// The edge (connection limit and deadlines), for tests that count
    /// open connections.
    pub fn edge(&self) -> Arc<Edge> {
        Arc::clone(&self.edge)
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests
    /// and drains the ledger.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServeError> {
        let addr = self.local_addr();
        let (stop_tx, stop_rx) = watch::channel(false);
        let (health, health_service) = tonic_health::server::health_reporter();
        report_serving(&health).await;
        let (draining_tx, draining) = watch::channel(false);
        let follow_store = self.app.store_availability().map(|available| {
            tokio::spawn(follow_availability(available, health.clone(), draining))
        });
        let shutdown = drain_then(shutdown, health.clone(), self.drain_period, draining_tx);
        let watch_store = tokio::spawn(report_store_failure(Arc::clone(&self.app), health));
        let pruning = tokio::spawn(prune_audit(
            Arc::clone(&self.app),
            self.audit.retention_days,
            stop_rx.clone(),
        ));
        // v1 for current tools, v1alpha for older grpcurl and grpcui builds.
        // The error details (google.rpc.BadRequest, PreconditionFailure) are
        // published too, so grpcurl prints their reasons instead of base64.
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        };
        let edge = Arc::clone(&self.edge);
        let metrics_server = self.metrics_listener.map(|listener| {
            let addr = bound_addr(&listener);
            let router = metrics_router(Arc::clone(&self.metrics), Arc::clone(&self.access));
            let connections = self.metrics_edge.serve(listener, Port::Http);
            tracing::info!(%addr, "serving metrics at /metrics");
            tokio::spawn(serve_http1(connections, router))
        });
        let api = Api::new(Arc::clone(&self.app));
        let auth = Authenticator(Arc::clone(&self.access));
        let routes = api_routes(&api, &auth, self.limits.message_bytes_max);
        let http_server = match self.http_listener {
            Some(listener) => {
                // Health too, so GET /healthz reports the drain over HTTP.
                let http_routes = routes.clone().add_service(health_service.clone());
                let grpc = GateLayer(Arc::clone(&self.gate)).layer(http_routes);
                let gateway = Gateway::new(
                    grpc,
                    self.limits.message_bytes_max,
                    self.limits.request_timeout,
                    Arc::clone(&self.app),
                )?;
                let addr = bound_addr(&listener);
                let connections = edge.serve(listener, Port::Http);
                for route in gateway.route_table() {
                    tracing::debug!(%route, "HTTP/JSON route");
                }
                tracing::info!(
                    %addr,
                    "serving HTTP/JSON (OpenAPI at /openapi.json, the console at {})",
                    crate::console::PATH
                );
                Some(tokio::spawn(serve_http1(
                    connections,
                    Arc::new(gateway).router().merge(crate::console::router()),
                )))
            }
            None => None,
        };
        let builder = http2_settings(&self.limits);
        let incoming =
            tokio_stream::wrappers::ReceiverStream::new(edge.serve(self.listener, Port::Grpc))
                .map(Ok::<_, std::io::Error>);
        tracing::info!(%addr, "serving");
        let mut stop_serving = stop_rx.clone();
        let (grace_tx, grace_rx) = tokio::sync::oneshot::channel::<()>();
        let draining = Arc::clone(&edge);
        let served = builder
            .layer(StreamTrackLayer)
            .layer(GateLayer(self.gate))
            .add_routes(routes)
            .add_service(health_service)
            .add_service(reflection().build_v1()?)
            .add_service(reflection().build_v1alpha()?)
            .serve_with_incoming_shutdown(incoming, async move {
                tokio::select! {
                    () = shutdown => {},
                    _ = stop_serving.changed() => {},
                }
                // No new connections on either port; idle ones close now,
                // busy ones when their last request is answered.
                draining.set_phase(Phase::Draining);
                let _ = grace_tx.send(());
            });
        // In-flight requests may finish, but a client that keeps an idle
        // connection open must not hold the shutdown forever.
        let served = tokio::select! {
            served = served => served,
            () = async {
                if grace_rx.await.is_ok() {
                    tokio::time::sleep(SHUTDOWN_GRACE).await;
                } else {
                    std::future::pending::<()>().await;
                }
            } => {
                tracing::warn!(grace = ?SHUTDOWN_GRACE, "connections still open after the grace period; closing them");
                edge.set_phase(Phase::Closed);
                Ok(())
            }
        };
        if let Some(http_server) = http_server {
            // Its open requests finish within the same grace.
            if tokio::time::timeout(SHUTDOWN_GRACE, http_server)
                .await
                .is_err()
            {
                tracing::warn!(
                    "HTTP/JSON requests still open after the grace period; closing them"
                );
                edge.set_phase(Phase::Closed);
            }
        }
        let _ = stop_tx.send(true);
        // Metrics serve until the API has stopped, so the drain is seen.
        self.metrics_edge.set_phase(Phase::Draining);
        let _ = pruning.await;
        tracing::info!("stopped accepting requests; finishing writes");
        self.app.shutdown().await;
        // The watcher ends with the ledger; waiting for it releases its hold
        // on the store, so the directory can be opened again at once.
        let _ = watch_store.await;
        if let Some(follow_store) = follow_store {
            let _ = follow_store.await;
        }
        if let Some(metrics_server) = metrics_server
            && tokio::time::timeout(SHUTDOWN_GRACE, metrics_server)
                .await
                .is_err()
        {
            self.metrics_edge.set_phase(Phase::Closed);
        }
        tracing::info!("stopped");
        Ok(served?)
    }
}

/// Applies a reloaded configuration: tokens, policies, the edge's deadlines
/// and the TLS certificate, to requests and connections that start after
/// it. Requests in flight finish under what they started with (each reads
/// the tokens and policies once). A configuration that cannot be applied
/// changes nothing. The `[backup]` recipients apply to the next snapshot.
#[derive(Clone)]
pub struct Reloader {
    /// Where the server listens: a reload may never leave one of them off
    /// loopback without `[auth]`.
    listeners: Listeners,
    access: Arc<ArcSwap<Access>>,
    app: Arc<App>,
    edge: Arc<Edge>,
    metrics_edge: Arc<Edge>,
    metrics: Arc<Metrics>,
    /// The limits the server started with: those sized at start-up (the
    /// connection and request limits, HTTP/2 settings) stay until a restart.
    limits: Limits,
    /// The fund's zone the server started with: days already stamped on the
    /// records follow it, so a change waits for a restart.
    reconciliation: Reconciliation,
    /// The audit retention the pruning task started with.
    audit: AuditSettings,
}

impl Reloader {
    /// Applies `loaded` (the configuration file as just read, or why it did
    /// not load), logs the result (`error` when refused) and counts it in
    /// `medassist_config_reloads_total{result}`.
    pub fn reload(&self, loaded: Result<Config, String>) -> Result<(), String> {
        let applied = loaded.and_then(|config| self.apply(config).map_err(|e| e.to_string()));
        self.metrics.config_reloaded(applied.is_ok());
        match &applied {
            Ok(()) => tracing::info!("configuration reloaded: new requests and connections use it"),
            Err(error) => tracing::error!(
                %error,
                "configuration reload refused; the previous configuration still serves"
            ),
        }
        applied
    }

    fn apply(&self, config: Config) -> Result<(), ServeError> {
        let Config {
            policies,
            access,
            tls,
            limits,
            reconciliation,
            audit,
            backup,
        } = config;
        if reconciliation != self.reconciliation {
            tracing::warn!("[reconciliation] changed: it applies at the next restart");
        }
        if audit != self.audit {
            tracing::warn!("[audit] changed: it applies at the next restart");
        }
        if tls.is_some() != self.edge.serves_tls() {
            return Err(ServeError::Tls(
                "turning TLS on or off needs a restart; a reload can only rotate the certificate"
                    .into(),
            ));
        }
        self.listeners.check_exposure(&access, tls.is_some())?;
        // Everything that can fail is done before anything is swapped.
        let tls = tls.as_ref().map(tls_acceptors).transpose()?;
        let fixed = Limits {
            handshake_timeout: limits.handshake_timeout,
            idle_timeout: limits.idle_timeout,
            write_stall_timeout: limits.write_stall_timeout,
            ..self.limits
        };
        if fixed != limits {
            tracing::warn!(
                "[limits] other than the connection deadlines changed: they apply at the next restart"
            );
        }
        self.metrics_edge
            .reload(metrics_port_limits(fixed), tls.clone());
        self.edge.reload(fixed, tls);
        self.access.store(Arc::new(access));
        self.app.set_policies(policies);
        self.app.set_backup_recipients(backup.recipients);
        Ok(())
    }
}

/// Reads the configuration file again, for [`reload_on_hangup`].
pub type LoadConfig = Box<dyn Fn() -> Result<Config, String> + Send + Sync>;

/// From now on, reloads the configuration with `load` on every SIGHUP, until
/// the process ends. The signal is caught before this returns (so a SIGHUP
/// right after start-up cannot end the service, which is the signal's
/// default action); without a configuration file it is only logged.
pub fn reload_on_hangup(reloader: Reloader, load: Option<LoadConfig>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGHUP; reload by restarting");
                return;
            }
        };
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading the configuration");
                match &load {
                    Some(load) => {
                        let _ = reloader.reload(load());
                    }
                    None => tracing::warn!("SIGHUP ignored: the server runs without --config"),
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = (reloader, load);
}

/// How long a shutdown waits for open connections once asked to stop.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

fn bound_addr(listener: &TcpListener) -> SocketAddr {
    // A bound listener always has an address; fall back to unspecified.
    listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

/// Every address a server listens on, for the exposure check at start-up
/// and at every reload.
#[derive(Clone, Copy, Debug)]
struct Listeners {
    grpc: SocketAddr,
    http: Option<SocketAddr>,
    metrics: Option<SocketAddr>,
}

impl Listeners {
    /// [`check_exposure`] for each listener: one off loopback without
    /// `[auth]` refuses the whole configuration.
    fn check_exposure(&self, access: &Access, tls: bool) -> Result<(), ServeError> {
        for listen in [Some(self.grpc), self.http, self.metrics]
            .into_iter()
            .flatten()
        {
            check_exposure(access, listen, tls)?;
        }
        Ok(())
    }
}

/// Open access is for a developer's machine only; tokens without TLS cross
/// the network in clear, which is allowed (a TLS-terminating proxy may sit in
/// front) but said loudly.
fn check_exposure(access: &Access, listen: SocketAddr, tls: bool) -> Result<(), ServeError> {
    match access {
        Access::Open if !listen.ip().is_loopback() => {
            return Err(ServeError::OpenOffLoopback(listen));
        }
        Access::Open => tracing::warn!(
            %listen,
            "no [auth] section: serving WITHOUT authentication, on loopback only"
        ),
        Access::Tokens(tokens) => {
            tracing::info!(
                tokens = tokens.len(),
                "callers authenticate with bearer tokens"
            );
            if !tls && !listen.ip().is_loopback() {
                tracing::warn!(
                    %listen,
                    "tokens will cross the network in clear: configure [tls] unless a TLS proxy fronts this port"
                );
            }
        }
    }
    Ok(())
}

/// HTTP/2 settings from the limits. Requests are unary and at most
/// `message_bytes_max`, so a stream's flow-control window a little larger
/// than that never slows a real client, and bounds what one stream can make
/// the server buffer.
fn http2_settings(limits: &Limits) -> tonic::transport::Server {
    let stream_window = (limits.message_bytes_max + 16 * 1024).max(65_535);
    let connection_window = stream_window.max(1024 * 1024);
    tonic::transport::Server::builder()
        .timeout(limits.request_timeout)
        .http2_keepalive_interval(Some(limits.keepalive_interval))
        .http2_keepalive_timeout(Some(limits.keepalive_timeout))
        .max_concurrent_streams(limits.streams_per_connection_max)
        .http2_max_header_list_size(limits.header_list_bytes_max)
        .initial_stream_window_size(u32::try_from(stream_window).unwrap_or(u32::MAX))
        .initial_connection_window_size(u32::try_from(connection_window).unwrap_or(u32::MAX))
        // Rapid reset (CVE-2023-44487): streams a client opens and resets
        // before the server takes them; beyond this many pending, hyper
        // answers GOAWAY and closes the connection.
        .http2_max_pending_accept_reset_streams(Some(RESETS_PENDING_MAX))
        // Streams the server itself had to reset for the client's errors.
        .http2_max_local_error_reset_streams(Some(RESETS_LOCAL_ERROR_MAX))
}

/// Streams reset by the client before they were served, at once, per
/// connection (hyper's default).
const RESETS_PENDING_MAX: usize = 20;
/// Streams reset by the server for a client's errors, per connection,
/// before the connection is closed.
const RESETS_LOCAL_ERROR_MAX: usize = 256;

/// The TLS acceptors the edge runs the handshake with, one certificate for
/// every port: HTTP/2 by ALPN on the gRPC port, HTTP/1.1 on the HTTP/JSON
/// and metrics ports. With `client_ca`, client certificates must chain to
/// it (mTLS) on every port.
fn tls_acceptors(files: &TlsFiles) -> Result<TlsAcceptors, ServeError> {
    let read = |path: &PathBuf| {
        std::fs::read(path)
            .map_err(|e| ServeError::Tls(format!("cannot read {}: {e}", path.display())))
    };
    let fail = |what: &str, e: &dyn std::fmt::Display| ServeError::Tls(format!("{what}: {e}"));
    let certs = CertificateDer::pem_slice_iter(&read(&files.cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail("server certificate", &e))?;
    let key =
        PrivateKeyDer::from_pem_slice(&read(&files.key)?).map_err(|e| fail("server key", &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| fail("protocol versions", &e))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&read(ca)?) {
                roots
                    .add(cert.map_err(|e| fail("client CA", &e))?)
                    .map_err(|e| fail("client CA", &e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| fail("client CA", &e))?;
            tracing::info!(ca = %ca.display(), "clients must present certificates (mTLS)");
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| fail("server certificate and key", &e))?;
    let speaking = |protocol: &[u8]| {
        let mut config = config.clone();
        config.alpn_protocols = vec![protocol.to_vec()];
        TlsAcceptor::from(Arc::new(config))
    };
    Ok(TlsAcceptors {
        grpc: speaking(b"h2"),
        http: speaking(b"http/1.1"),
    })
}

/// Connections the metrics port holds at most, from all sources: scrapers
/// are few, and keep one connection each.
const METRICS_CONNECTIONS_MAX: usize = 32;

/// The metrics port's edge limits: the server's deadlines, its own slots.
fn metrics_port_limits(limits: Limits) -> Limits {
    Limits {
        connections_max: METRICS_CONNECTIONS_MAX,
        connections_per_source_max: METRICS_CONNECTIONS_MAX,
        ..limits
    }
}

/// `/metrics` in the Prometheus text format. With `[auth]`, a scrape must
/// present a token of the `metrics` or `operator` role; without it the
/// port is on loopback only ([`check_exposure`]). Counts and timings hold
/// no personal data, so scrapes are not audited.
fn metrics_router(metrics: Arc<Metrics>, access: Arc<ArcSwap<Access>>) -> axum::Router {
    use axum::{
        http::{HeaderMap, StatusCode, header},
        response::IntoResponse,
        routing::get,
    };
    axum::Router::new().route(
        "/metrics",
        get(move |headers: HeaderMap| {
            let metrics = Arc::clone(&metrics);
            let access = access.load_full();
            async move {
                let authorization = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
                let allowed = access.authenticate(authorization).and_then(|principal| {
                    crate::auth::authorize(&principal, crate::auth::Action::ReadMetrics)
                });
                match allowed {
                    Ok(()) => (
                        [(
                            header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        metrics.render(),
                    )
                        .into_response(),
                    Err(Refusal::Unauthenticated(why)) => (
                        StatusCode::UNAUTHORIZED,
                        [(header::WWW_AUTHENTICATE, "Bearer")],
                        format!("{why}\n"),
                    )
                        .into_response(),
                    Err(Refusal::PermissionDenied(why)) => {
                        (StatusCode::FORBIDDEN, format!("{why}\n")).into_response()
                    }
                }
            }
        }),
    )
}

/// The default drain period of `medassist serve`: long enough for a load
/// balancer that checks health every second or two to see `NOT_SERVING`.
pub const DRAIN_DEFAULT: Duration = Duration::from_secs(5);

/// Completes `drain_period` after `shutdown` does. At `shutdown` health turns
/// `NOT_SERVING` for every service (Check and Watch), while new requests are
/// still served; then the stop proceeds as before.
async fn drain_then(
    shutdown: impl Future<Output = ()> + Send,
    health: tonic_health::server::HealthReporter,
    drain_period: Duration,
    draining: watch::Sender<bool>,
) {
    shutdown.await;
    draining.send_replace(true);
    report_not_serving(&health).await;
    if !drain_period.is_zero() {
        tracing::info!(
            drain = %humantime::format_duration(drain_period),
            "health reports NOT_SERVING; still serving new requests while load balancers react"
        );
        tokio::time::sleep(drain_period).await;
    }
}

/// Serves `router` over HTTP/1.1 (the HTTP/JSON API and `/openapi.json`,
/// or `/metrics`) on the connections the edge hands over from its port,
/// until the edge drains; then lets open requests finish. The edge enforces
/// the same limits, deadlines and TLS as on the gRPC port (see
/// [`crate::edge`]); it is told of each request by the
/// [`StreamTrackLayer`], which finds the connection in the request's
/// extensions as it does under tonic.
async fn serve_http1(
    mut connections: tokio::sync::mpsc::Receiver<crate::edge::EdgeIo>,
    router: axum::Router,
) {
    use tonic::transport::server::Connected as _;
    use tower::ServiceExt as _;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    while let Some(io) = connections.recv().await {
        let info = io.connect_info();
        let service = StreamTrackLayer.layer(router.clone()).map_request(
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(info.clone());
                request
            },
        );
        let connection = hyper::server::conn::http1::Builder::new()
            // The edge owns the header deadline: the first request's is
            // the handshake deadline, a later one's the idle timeout.
            .header_read_timeout(None)
            .serve_connection(
                hyper_util::rt::TokioIo::new(io),
                hyper_util::service::TowerToHyperService::new(service),
            );
        let watched = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = watched.await {
                tracing::debug!(%error, "HTTP/1.1 connection ended with an error");
            }
        });
    }
    graceful.shutdown().await;
}

/// How often audit records past their retention are pruned.
const AUDIT_PRUNE_EVERY: Duration = Duration::from_secs(6 * 3600);

/// Prunes the audit trail at start-up and every [`AUDIT_PRUNE_EVERY`] until
/// the server stops: records answered more than `retention_days` ago go.
async fn prune_audit(app: Arc<App>, retention_days: u32, mut stop: watch::Receiver<bool>) {
    loop {
        match app.prune_audit(retention_days).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, retention_days, "pruned the audit trail"),
            Err(error) => tracing::error!(%error, "cannot prune the audit trail"),
        }
        tokio::select! {
            () = tokio::time::sleep(AUDIT_PRUNE_EVERY) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}

/// Marks every service NOT_SERVING once the store has failed beyond
/// recovery, so load balancers stop sending traffic until a restart.
async fn report_store_failure(app: Arc<App>, health: tonic_health::server::HealthReporter) {
    if !app.store_failed().await {
        return;
    }
    tracing::error!("storage failed: reporting NOT_SERVING until the service is restarted");
    report_not_serving(&health).await;
}

/// Reports NOT_SERVING while the store cannot be reached (a database with no
/// reachable primary) and SERVING again once it can, until the drain
/// begins, which has the last word.
async fn follow_availability(
    mut available: watch::Receiver<bool>,
    health: tonic_health::server::HealthReporter,
    mut draining: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            changed = available.changed() => {
                if changed.is_err() || *draining.borrow() {
                    return;
                }
                let up = *available.borrow_and_update();
                match up {
                    true => {
                        tracing::info!("store reachable: reporting SERVING");
                        report_serving(&health).await;
                    }
                    false => {
                        tracing::warn!("store unreachable: reporting NOT_SERVING until it is back");
                        report_not_serving(&health).await;
                    }
                }
            }
            _ = draining.changed() => return,
        }
    }
}

/// Every service, and the server as a whole (""), reports SERVING.
async fn report_serving(health: &tonic_health::server::HealthReporter) {
    health.set_serving::<SettlementServiceServer<Api>>().await;
    health.set_serving::<UsageServiceServer<Api>>().await;
    health.set_serving::<RosterServiceServer<Api>>().await;
    health.set_serving::<PolicyServiceServer<Api>>().await;
    health.set_serving::<AdminServiceServer<Api>>().await;
    health.set_serving::<ApplicationServiceServer<Api>>().await;
    health.set_serving::<StatisticsServiceServer<Api>>().await;
    health.set_serving::<CallerServiceServer<Api>>().await;
    health
        .set_serving::<ReconciliationServiceServer<Api>>()
        .await;
    health
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
}

/// Every service, and the server as a whole (""), reports NOT_SERVING.
async fn report_not_serving(health: &tonic_health::server::HealthReporter) {
    health
        .set_not_serving::<SettlementServiceServer<Api>>()
        .await;
    health.set_not_serving::<UsageServiceServer<Api>>().await;
    health.set_not_serving::<RosterServiceServer<Api>>().await;
    health.set_not_serving::<PolicyServiceServer<Api>>().await;
    health.set_not_serving::<AdminServiceServer<Api>>().await;
    health
        .set_not_serving::<ApplicationServiceServer<Api>>()
        .await;
    health
        .set_not_serving::<StatisticsServiceServer<Api>>()
        .await;
    health.set_not_serving::<CallerServiceServer<Api>>().await;
    health
        .set_not_serving::<ReconciliationServiceServer<Api>>()
        .await;
    health
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
}

/// Completes on SIGINT or SIGTERM: the signals that ask the service to stop.
/// SIGTERM is listened for from the call on, not from the first poll: a
/// SIGTERM that arrives while the server starts (after it said it is
/// serving, before its shutdown future was first polled) must stop it
/// gracefully, not kill it.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send {
    #[cfg(unix)]
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    async move {
        let interrupt = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut terminate = match terminate {
                Ok(signal) => signal,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the service");
                    let _ = interrupt.await;
                    return;
                }
            };
            tokio::select! {
                _ = interrupt => {},
                _ = terminate.recv() => {},
            }
        }
        #[cfg(not(unix))]
        let _ = interrupt.await;
        tracing::info!("shutdown requested");
    }
}
