//! Start-up and shutdown: open the store, bind the port, serve the four
//! services with health and reflection, stop cleanly.
//!
//! [`Server::bind`] returns once the port is bound (port 0 picks a free one,
//! which tests use), so a client may connect as soon as it returns.
//! [`Server::run`] serves until the given shutdown future completes, lets
//! in-flight requests finish, then drains the ledger so every acknowledged
//! write is on disk before it returns.

use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

use crate::{
    app::App,
    config::Config,
    grpc::{
        Api, FILE_DESCRIPTOR_SET,
        pb::{
            policy_service_server::PolicyServiceServer, roster_service_server::RosterServiceServer,
            settlement_service_server::SettlementServiceServer,
            usage_service_server::UsageServiceServer,
        },
    },
    store::{SledOptions, SledStore, Store, StoreError},
};

/// Limits on what one caller can make the server do.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest request message accepted, in bytes.
    pub message_bytes_max: usize,
    /// Longest a request may take before it is answered `CANCELLED`.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            message_bytes_max: 64 * 1024,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// What the server needs to start.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Directory of the embedded store.
    pub data_dir: PathBuf,
    /// Policies and other settings from the configuration file.
    pub config: Config,
    /// Limits per request.
    pub limits: Limits,
    /// Tuning of the embedded store.
    pub store: SledOptions,
}

impl ServerConfig {
    /// The defaults of `medassist serve`: 127.0.0.1:50051, `./medassist-data`,
    /// the built-in policy.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        ServerConfig {
            listen,
            data_dir,
            config: Config::default(),
            limits: Limits::default(),
            store: SledOptions::default(),
        }
    }
}

/// Why the server could not start or keep serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The data directory could not be opened.
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the system said.
        source: std::io::Error,
    },
    /// The reflection service could not read the descriptors.
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The transport failed while serving.
    #[error("serving failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// A bound, not yet serving, server.
pub struct Server {
    listener: TcpListener,
    app: Arc<App>,
    limits: Limits,
}

impl Server {
    /// Opens the embedded store in `config.data_dir` and binds the address.
    pub async fn bind(config: ServerConfig) -> Result<Server, ServeError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| StoreError::Io(format!("{}: {e}", config.data_dir.display())))?;
        let store = SledStore::open(&config.data_dir, config.store)?;
        Server::bind_with_store(config.listen, Arc::new(store), config.config, config.limits).await
    }

    /// Binds the address over any store.
    pub async fn bind_with_store(
        listen: SocketAddr,
        store: Arc<dyn Store>,
        config: Config,
        limits: Limits,
    ) -> Result<Server, ServeError> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| ServeError::Bind {
                addr: listen,
                source,
            })?;
        let app = Arc::new(App::start(store, config.policies)?);
        Ok(Server {
            listener,
            app,
            limits,
        })
    }

    /// The address actually bound (the port chosen when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        // A bound listener always has an address; fall back to unspecified.
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests
    /// and drains the ledger.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServeError> {
        let addr = self.local_addr();
        let api = Api::new(Arc::clone(&self.app));
        let bytes_max = self.limits.message_bytes_max;
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<SettlementServiceServer<Api>>().await;
        health.set_serving::<UsageServiceServer<Api>>().await;
        health.set_serving::<RosterServiceServer<Api>>().await;
        health.set_serving::<PolicyServiceServer<Api>>().await;
        let watch_store = tokio::spawn(report_store_failure(Arc::clone(&self.app), health));
        // v1 for current tools, v1alpha for older grpcurl and grpcui builds.
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        // Small answers must leave at once: without TCP_NODELAY, Nagle's
        // algorithm holds the last frame of a response until the client's
        // delayed ACK, about 40 ms later.
        let incoming = TcpIncoming::from(self.listener).with_nodelay(Some(true));
        tracing::info!(%addr, "serving");
        let served = tonic::transport::Server::builder()
            .timeout(self.limits.request_timeout)
            .add_service(health_service)
            .add_service(reflection().build_v1()?)
            .add_service(reflection().build_v1alpha()?)
            .add_service(
                SettlementServiceServer::new(api.clone()).max_decoding_message_size(bytes_max),
            )
            .add_service(UsageServiceServer::new(api.clone()).max_decoding_message_size(bytes_max))
            .add_service(RosterServiceServer::new(api.clone()).max_decoding_message_size(bytes_max))
            .add_service(PolicyServiceServer::new(api).max_decoding_message_size(bytes_max))
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await;
        tracing::info!("stopped accepting requests; finishing writes");
        self.app.shutdown().await;
        // The watcher ends with the ledger; waiting for it releases its hold
        // on the store, so the directory can be opened again at once.
        let _ = watch_store.await;
        tracing::info!("stopped");
        Ok(served?)
    }
}

/// Marks every service NOT_SERVING once the store has failed beyond
/// recovery, so load balancers stop sending traffic until a restart.
async fn report_store_failure(app: Arc<App>, health: tonic_health::server::HealthReporter) {
    if !app.store_failed().await {
        return;
    }
    tracing::error!("storage failed: reporting NOT_SERVING until the service is restarted");
    health
        .set_not_serving::<SettlementServiceServer<Api>>()
        .await;
    health.set_not_serving::<UsageServiceServer<Api>>().await;
    health.set_not_serving::<RosterServiceServer<Api>>().await;
    health.set_not_serving::<PolicyServiceServer<Api>>().await;
    health
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
}

/// Completes on SIGINT or SIGTERM: the signals that ask the service to stop.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
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
