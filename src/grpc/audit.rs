//! One audit record per call, whatever its outcome: the layer around the
//! API's services (over gRPC and, through the gateway, over HTTP/JSON).
//!
//! Each call gets a [`Note`] in its request's extensions. The layer writes
//! where the call came from (peer, TLS client certificate, method); the
//! authenticator writes who it is, or why it was refused; the handler writes
//! whom it concerned and how many records it returned. When the answer is
//! finished (its trailers are sent), or the client goes away, the layer
//! makes the record with the status code and queues it for the ledger,
//! which seals it with its next commit: the answer's end waits only for the
//! queue, never for a sync. A write whose record the ledger sealed with the
//! write itself is not recorded twice. Bulk reads also record their start.

use std::{
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll, ready},
};

use http_body::{Body, Frame, SizeHint};
use tonic::codegen::http;
use tower::{Layer, Service};

use crate::{
    app::App,
    audit::{Event, Origin, Phase, Subject},
    auth::{Caller, Principal},
    edge::EdgeInfo,
    metrics,
};

#[derive(Default)]
struct State {
    principal: Option<Arc<Principal>>,
    subject: Subject,
    count: Option<u64>,
    detail: String,
    /// The ledger sealed this call's record with its write.
    sealed: bool,
    /// A bulk read: its start is recorded too.
    bulk: bool,
}

/// What one call's audit record is made of, filled in as the call goes.
pub struct Note {
    peer: Option<String>,
    client_cert: Option<String>,
    call: String,
    state: Mutex<State>,
}

impl Note {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The caller, as the authenticator found it.
    pub fn authenticated(&self, principal: Arc<Principal>) {
        self.state().principal = Some(principal);
    }

    /// Why authentication refused the call.
    pub fn refused(&self, why: &str) {
        self.state().detail = why.to_owned();
    }

    /// Whom the call concerns.
    pub fn subject(&self, subject: Subject) {
        self.state().subject = subject;
    }

    /// How many records the call returned (or wrote).
    pub fn count(&self, count: u64) {
        self.state().count = Some(count);
    }

    /// One more record sent by a bulk read.
    pub fn sent(&self, more: u64) {
        let mut state = self.state();
        state.count = Some(state.count.unwrap_or(0) + more);
    }

    /// A note for the record, such as "replay" or what a refusal said.
    pub fn detail(&self, detail: impl Into<String>) {
        self.state().detail = detail.into();
    }

    /// The ledger sealed this call's record with the write it made.
    pub fn sealed(&self) {
        self.state().sealed = true;
    }

    /// The call streams many records: its start is recorded too, and its
    /// end says how many were sent.
    pub fn bulk(&self) {
        let mut state = self.state();
        state.bulk = true;
        state.count.get_or_insert(0);
    }

    /// The caller and where it called from, once authenticated.
    pub fn caller(&self) -> Option<Caller> {
        let principal = self.state().principal.clone()?;
        Some(Caller {
            origin: self.origin(Some(&principal)),
            principal,
        })
    }

    fn origin(&self, principal: Option<&Principal>) -> Origin {
        Origin {
            principal: principal.map_or("anonymous".into(), |p| p.id.clone()),
            name: principal.map(Principal::recorded_name).unwrap_or_default(),
            role: principal
                .map(|p| p.role.as_str().to_owned())
                .unwrap_or_default(),
            peer: self.peer.clone(),
            client_cert: self.client_cert.clone(),
            call: self.call.clone(),
        }
    }

    /// The record of `phase` with the outcome `status`, unless the ledger
    /// sealed the call's record itself. A refusal's message is its detail
    /// when the handler gave none (the service's messages mask every ID).
    fn event(&self, app: &App, phase: Phase, status: &Outcome) -> Option<Event> {
        let state = self.state();
        if state.sealed && phase != Phase::Start {
            return None;
        }
        let origin = self.origin(state.principal.as_deref());
        let detail = match (&status.1, state.detail.is_empty()) {
            (Some(message), true) => message.clone(),
            _ => state.detail.clone(),
        };
        Some(origin.event(
            app.now(),
            phase,
            state.subject.clone(),
            state.count,
            metrics::code_name(status.0),
            detail,
        ))
    }
}

/// Wraps the API's services so each call leaves its record.
#[derive(Clone)]
pub struct AuditLayer(pub Arc<App>);

impl<S> Layer<S> for AuditLayer {
    type Service = Audited<S>;

    fn layer(&self, inner: S) -> Audited<S> {
        Audited {
            inner,
            app: Arc::clone(&self.0),
        }
    }
}

/// A service whose calls leave audit records (see [`AuditLayer`]).
#[derive(Clone)]
pub struct Audited<S> {
    inner: S,
    app: Arc<App>,
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for Audited<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Audited<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Body<Data = prost::bytes::Bytes> + Send + 'static,
{
    type Response = http::Response<AuditBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let extensions = request.extensions();
        let (peer, client_cert) = match extensions.get::<EdgeInfo>() {
            Some(edge) => (Some(edge.remote.to_string()), edge.client_cert.clone()),
            None => (None, None),
        };
        let note = Arc::new(Note {
            peer,
            client_cert,
            call: request.uri().path().trim_start_matches('/').to_owned(),
            state: Mutex::new(State::default()),
        });
        request.extensions_mut().insert(Arc::clone(&note));
        let answered = self.inner.call(request);
        let app = Arc::clone(&self.app);
        Box::pin(async move {
            let response = answered.await?;
            // A status in the headers is the whole answer (trailers-only).
            let note = match &outcome_of(response.headers()) {
                // The headers end the stream: the record is queued before
                // they go out, and the body stays empty, so the client sees
                // a trailers-only answer (a body frame after it would be a
                // protocol error to strict clients such as grpcio).
                Some(code) => {
                    if let Some(queued) = AuditBody::<ResBody>::finish(note, &app, code) {
                        queued.await;
                    }
                    None
                }
                None => {
                    if note.state().bulk
                        && let Some(event) =
                            note.event(&app, Phase::Start, &(tonic::Code::Ok, None))
                    {
                        app.audit(event).await;
                    }
                    Some(note)
                }
            };
            let (parts, body) = response.into_parts();
            let body = AuditBody {
                inner: body,
                note,
                app,
                pending: None,
                trailers: None,
            };
            Ok(http::Response::from_parts(parts, body))
        })
    }
}

/// How a call ended: its status code, and its message when it failed.
type Outcome = (tonic::Code, Option<String>);

/// The gRPC status a header map carries.
fn outcome_of(headers: &http::HeaderMap) -> Option<Outcome> {
    tonic::Status::from_header_map(headers).map(|status| {
        let message = (status.code() != tonic::Code::Ok && !status.message().is_empty())
            .then(|| status.message().to_owned());
        (status.code(), message)
    })
}

type Queued = Pin<Box<dyn Future<Output = ()> + Send>>;

pin_project_lite::pin_project! {
    /// A response body that records its call when it ends: after the last
    /// frame is read (the record queued before the trailers go out), or
    /// when it is dropped unfinished (the client went away).
    pub struct AuditBody<B> {
        #[pin]
        inner: B,
        note: Option<Arc<Note>>,
        app: Arc<App>,
        pending: Option<Queued>,
        trailers: Option<Frame<prost::bytes::Bytes>>,
    }

    impl<B> PinnedDrop for AuditBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(note) = this.note.take() {
                let code = (tonic::Code::Cancelled, None);
                let phase = match note.state().bulk { true => Phase::End, false => Phase::Call };
                if let Some(event) = note.event(this.app, phase, &code) {
                    this.app.audit_soon(event);
                }
            }
        }
    }
}

impl<B> AuditBody<B> {
    /// Starts queueing the call's record with outcome `code`.
    fn finish(note: Arc<Note>, app: &Arc<App>, code: &Outcome) -> Option<Queued> {
        let phase = match note.state().bulk {
            true => Phase::End,
            false => Phase::Call,
        };
        let event = note.event(app, phase, code)?;
        let app = Arc::clone(app);
        Some(Box::pin(async move { app.audit(event).await }))
    }
}

impl<B> Body for AuditBody<B>
where
    B: Body<Data = prost::bytes::Bytes>,
{
    type Data = prost::bytes::Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        if let Some(queued) = this.pending.as_mut() {
            ready!(queued.as_mut().poll(cx));
            *this.pending = None;
            return Poll::Ready(this.trailers.take().map(Ok));
        }
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        let code = match &frame {
            Some(Ok(data)) if data.is_data() => return Poll::Ready(frame),
            Some(Ok(trailers)) => trailers
                .trailers_ref()
                .and_then(outcome_of)
                .unwrap_or((tonic::Code::Unknown, None)),
            Some(Err(_)) => (tonic::Code::Internal, None),
            None => (tonic::Code::Unknown, None),
        };
        let Some(note) = this.note.take() else {
            return Poll::Ready(frame);
        };
        let Some(mut queued) = AuditBody::<B>::finish(note, this.app, &code) else {
            return Poll::Ready(frame);
        };
        match frame {
            // The end waits until the record is queued.
            Some(Ok(trailers)) => *this.trailers = Some(trailers),
            None => {}
            Some(Err(error)) => {
                tokio::spawn(queued);
                return Poll::Ready(Some(Err(error)));
            }
        }
        match queued.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(this.trailers.take().map(Ok)),
            Poll::Pending => {
                *this.pending = Some(queued);
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.note.is_none() && self.pending.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    //! The layer's end of a call, where it can break: a response body read
    //! to its trailers, and one dropped half-way because the client went
    //! away (buffers in the HTTP/2 stack would hide that from a real client).

    use std::convert::Infallible;

    use http_body_util::{BodyExt as _, StreamBody};
    use prost::bytes::Bytes;

    use super::*;
    use crate::{
        audit::Query,
        auth::Principal,
        clock,
        domain::{PolicyBook, Timestamp, UtcOffset},
        metrics::Metrics,
        store::{SledOptions, SledStore},
    };

    fn app(dir: &std::path::Path) -> Arc<App> {
        let store = SledStore::open(dir, SledOptions::default()).unwrap();
        let app = App::start(
            Arc::new(store),
            PolicyBook::builtin(),
            Arc::new(Metrics::new()),
            &crate::config::Limits::default(),
            clock::system(),
            UtcOffset::CHINA,
        );
        Arc::new(app.unwrap())
    }

    fn note(call: &str) -> Arc<Note> {
        let note = Arc::new(Note {
            peer: Some("127.0.0.1:40000".into()),
            client_cert: None,
            call: call.into(),
            state: Mutex::new(State::default()),
        });
        note.authenticated(Arc::new(Principal::open()));
        note.bulk();
        note
    }

    type Frames = Vec<Result<Frame<Bytes>, Infallible>>;
    type Framed =
        StreamBody<tokio_stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

    fn body(note: &Arc<Note>, app: &Arc<App>, frames: Frames) -> AuditBody<Framed> {
        AuditBody {
            inner: StreamBody::new(tokio_stream::iter(frames)),
            note: Some(Arc::clone(note)),
            app: Arc::clone(app),
            pending: None,
            trailers: None,
        }
    }

    fn frames() -> Frames {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        vec![
            Ok(Frame::data(Bytes::from_static(b"one"))),
            Ok(Frame::data(Bytes::from_static(b"two"))),
            Ok(Frame::trailers(trailers)),
        ]
    }

    /// Proves the end record of a bulk read: OK from the trailers, with the
    /// count sent, for a body read to its end; CANCELLED with the count sent
    /// so far for one dropped after its first frame.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_body_the_client_leaves_records_cancelled_with_what_was_sent() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let finished = note("test/Finished");
        finished.sent(2);
        let read = body(&finished, &app, frames()).collect().await.unwrap();
        assert!(read.trailers().is_some(), "the trailers still go out");
        let left = note("test/Left");
        finished.sent(0);
        let mut abandoned = body(&left, &app, frames());
        abandoned.frame().await.unwrap().unwrap();
        left.sent(1);
        drop(abandoned);
        let everything = Query {
            from: Timestamp::from_unix_micros(0),
            to: Timestamp::from_unix_micros(i64::MAX),
            principal: None,
            patient: None,
        };
        let by = crate::auth::Caller::local(Arc::new(Principal::open()), "test/List");
        let page = app.audit_records(everything, None, 10, &by).await.unwrap();
        let ends: Vec<(&str, &str, Option<u64>)> = page
            .records
            .iter()
            .map(|r| (r.event.call.as_str(), r.event.code.as_str(), r.event.count))
            .collect();
        assert_eq!(
            ends,
            [
                ("test/Finished", "OK", Some(2)),
                ("test/Left", "CANCELLED", Some(1))
            ]
        );
        assert!(page.records.iter().all(|r| r.event.phase == Phase::End));
        app.shutdown().await;
    }
}
