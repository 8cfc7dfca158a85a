//! The gate every request passes: a global concurrency limit, and the
//! request metrics.
//!
//! Beyond the limit a request is answered `RESOURCE_EXHAUSTED` at once,
//! without queueing: under overload the service sheds the excess quickly
//! instead of letting every caller's latency collapse. Health and reflection
//! are never limited, so load balancers can still ask how the server is.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Instant,
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::{
    Code, Status,
    codegen::{Service, http},
};
use tower::Layer;

use crate::metrics::Metrics;

/// Shared state of the gate: the permits, and how many are taken.
pub struct GateState {
    permits: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    /// A plain counter: every request touches it twice, so it must cost
    /// no lock and wake no one.
    in_flight: AtomicUsize,
}

impl GateState {
    /// A gate admitting at most `concurrent_max` limited requests at once.
    pub fn new(concurrent_max: usize, metrics: Arc<Metrics>) -> Arc<GateState> {
        Arc::new(GateState {
            permits: Arc::new(Semaphore::new(concurrent_max)),
            metrics,
            in_flight: AtomicUsize::new(0),
        })
    }

    /// The number of limited requests being served now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    fn admitted(&self) {
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.metrics.set_in_flight(now);
    }

    fn released(&self) {
        let now = self.in_flight.fetch_sub(1, Ordering::Relaxed) - 1;
        self.metrics.set_in_flight(now);
    }
}

/// Holds a request's permit; gives it back however the request ends
/// (answered, failed, or dropped when the client went away).
struct Admitted {
    _permit: OwnedSemaphorePermit,
    state: Arc<GateState>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.state.released();
    }
}

/// Wraps the whole server with the gate.
#[derive(Clone)]
pub struct GateLayer(pub Arc<GateState>);

impl<S> Layer<S> for GateLayer {
    type Service = Gate<S>;
    fn layer(&self, inner: S) -> Gate<S> {
        Gate {
            inner,
            state: Arc::clone(&self.0),
        }
    }
}

/// The gate around one service stack.
#[derive(Clone)]
pub struct Gate<S> {
    inner: S,
    state: Arc<GateState>,
}

fn limited(path: &str) -> bool {
    !(path.starts_with("/grpc.health.") || path.starts_with("/grpc.reflection."))
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Gate<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let path = request.uri().path();
        let rpc = Metrics::rpc_label(path);
        let started = Instant::now();
        let state = Arc::clone(&self.state);
        let admitted = if limited(path) {
            match Arc::clone(&state.permits).try_acquire_owned() {
                Ok(permit) => {
                    state.admitted();
                    Some(Admitted {
                        _permit: permit,
                        state: Arc::clone(&state),
                    })
                }
                Err(_) => {
                    state.metrics.request_rejected();
                    state
                        .metrics
                        .request_done(rpc, Code::ResourceExhausted, 0.0);
                    let refusal = Status::resource_exhausted(
                        "too many requests in progress; retry shortly with backoff",
                    );
                    return Box::pin(std::future::ready(Ok(refusal.into_http())));
                }
            }
        } else {
            None
        };
        // The service that was polled ready serves this request; a clone
        // takes its place for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let response = inner.call(request).await;
            let code = match &response {
                // Errors are answered in the headers; a success's status
                // follows in the trailers and is OK for unary calls.
                Ok(response) => {
                    Status::from_header_map(response.headers()).map_or(Code::Ok, |s| s.code())
                }
                Err(_) => Code::Internal,
            };
            state
                .metrics
                .request_done(rpc, code, started.elapsed().as_secs_f64());
            drop(admitted);
            response
        })
    }
}
