//! Prometheus metrics, served as text at `--metrics-listen ADDR` `/metrics`.
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `medassist_requests_total` | `rpc`, `code` | requests answered, by RPC and gRPC status |
//! | `medassist_request_duration_seconds` | `rpc` | time to the response headers |
//! | `medassist_requests_in_flight` | | requests being served (health and reflection excluded) |
//! | `medassist_requests_rejected_total` | | requests refused `RESOURCE_EXHAUSTED` by the concurrency limit |
//! | `medassist_settlements_total` | `outcome` | new settlements: `paid`, `capped`, `not_enrolled`, `no_qualifying_category` |
//! | `medassist_assistance_fen_total` | `outcome` | assistance paid by new settlements, in fen (an integer: money never passes through a float) |
//! | `medassist_reversals_total` | | settlements reversed |
//! | `medassist_reversed_assistance_fen_total` | | assistance given back by reversals, in fen |
//! | `medassist_applications_total` | `event` | assistance on application (not in the settlement counts above): `submitted`, `opened` (a top-up of a window settlement), `approved`, `rejected`, `withdrawn` |
//! | `medassist_store_apply_duration_seconds` | | writing one batch into the store, before its flush |
//! | `medassist_store_flush_duration_seconds` | | one flush: the journal `pwrite` and `fdatasync` that make batches durable |
//! | `medassist_store_flush_requests` | | requests answered per flush (the group size) |
//! | `medassist_store_batch_retries_total` | | batches run again because another instance wrote the same records first (PostgreSQL) |
//! | `medassist_patient_limit_refusals_total` | | quotes and settles refused because a hospital token reached its hourly limit of distinct patients |
//! | `medassist_store_base_copies_total` | `result` | base copies of the embedded store written (`ok`) or failed (`failed`) |
//! | `medassist_store_base_copy_duration_seconds` | | writing one base copy |
//! | `medassist_store_base_copy_bytes` | | the size of the last base copy written |
//! | `medassist_connections_open` | | connections open now, handshaking or serving |
//! | `medassist_connections_accepted_total` | | connections admitted under `connections_max` and `connections_per_source_max` |
//! | `medassist_connections_rejected_total` | `reason` | connections closed before serving: `limit` (at `connections_max` with none to shed), `per_source` (over `connections_per_source_max`), `handshake_timeout`, `tls` (failed TLS handshake) |
//! | `medassist_connections_evicted_total` | `reason` | connections without a request shed at `connections_max` for a new one: `handshake` (TLS or HTTP/2 preface unfinished, or no HTTP/1.1 request), `no_request` (handshake done) |
//! | `medassist_connections_closed_total` | `reason` | serving connections the server closed: `idle`, `write_stall`, `shutdown`, and the reasons hyper's GOAWAY names: `keepalive` (no PING answer), `rapid_reset` (too many streams reset by the client), `stream_errors` (too many streams reset by the server for the client's errors), `enhance_your_calm` (other abuse h2 detects), `protocol_error` |
//!
//! RPC labels come from a fixed list, so random paths cannot grow the
//! number of series: anything else is counted as `unknown`.

use std::sync::Mutex;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use crate::{
    domain::{IneligibleReason, Money, Outcome, ReferralReason},
    store::StoreObserver,
};

/// The RPC paths that get their own label.
pub const KNOWN_RPCS: &[&str] = &[
    "/medassist.v1.SettlementService/PreSettle",
    "/medassist.v1.SettlementService/Settle",
    "/medassist.v1.SettlementService/Reverse",
    "/medassist.v1.SettlementService/GetSettlement",
    "/medassist.v1.UsageService/GetAnnualUsage",
    "/medassist.v1.UsageService/ListSettlements",
    "/medassist.v1.UsageService/BatchGetAnnualUsage",
    "/medassist.v1.RosterService/UpsertPerson",
    "/medassist.v1.RosterService/GetPerson",
    "/medassist.v1.RosterService/ImportPersons",
    "/medassist.v1.RosterService/ExportPersons",
    "/medassist.v1.RosterService/ListReferrals",
    "/medassist.v1.PolicyService/GetPolicy",
    "/medassist.v1.PolicyService/SimulatePolicy",
    "/medassist.v1.AdminService/SaveSnapshot",
    "/medassist.v1.ReconciliationService/ReconcileDay",
    "/medassist.v1.ReconciliationService/ListDaySettlements",
    "/medassist.v1.ReconciliationService/ExportSettlements",
    "/medassist.v1.AuditService/ListAuditRecords",
    "/medassist.v1.ApplicationService/ListRetroactiveCandidates",
    "/medassist.v1.ApplicationService/SubmitApplication",
    "/medassist.v1.ApplicationService/OpenApplication",
    "/medassist.v1.ApplicationService/ApproveApplication",
    "/medassist.v1.ApplicationService/RejectApplication",
    "/medassist.v1.ApplicationService/WithdrawApplication",
    "/medassist.v1.ApplicationService/ListApplications",
    "/medassist.v1.StatisticsService/GetYearStatistics",
    "/medassist.v1.CallerService/GetCaller",
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    rpc: &'static str,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    rpc: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// Every metric of one server, in its own registry (so tests can run many
/// servers in one process).
pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RpcLabels, Histogram>,
    in_flight: Gauge,
    rejected: Counter,
    settlements: Family<OutcomeLabels, Counter>,
    assistance_fen: Family<OutcomeLabels, Counter>,
    reversals: Counter,
    applications: Family<EventLabels, Counter>,
    reversed_fen: Counter,
    apply_seconds: Histogram,
    flush_seconds: Histogram,
    flush_requests: Histogram,
    batch_retries: Counter,
    patient_limit_refusals: Counter,
    base_copies: Family<ResultLabels, Counter>,
    base_copy_seconds: Histogram,
    base_copy_bytes: Gauge,
    connections_open: Gauge,
    connections_accepted: Counter,
    connections_rejected: Family<ReasonLabels, Counter>,
    connections_evicted: Family<ReasonLabels, Counter>,
    connections_closed: Family<ReasonLabels, Counter>,
    config_reloads: Family<ResultLabels, Counter>,
    referrals: Family<ReasonLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("medassist");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RpcLabels, Histogram>::new_with_constructor(|| {
            // 50 µs to about 1.6 s.
            Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
        });
        let metrics = Metrics {
            requests,
            latency,
            in_flight: Gauge::default(),
            rejected: Counter::default(),
            settlements: Family::default(),
            assistance_fen: Family::default(),
            reversals: Counter::default(),
            applications: Family::default(),
            reversed_fen: Counter::default(),
            apply_seconds: Histogram::new(exponential_buckets(0.000_01, 2.0, 18)),
            flush_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            flush_requests: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            batch_retries: Counter::default(),
            patient_limit_refusals: Counter::default(),
            base_copies: Family::default(),
            // 10 ms to about 10 minutes.
            base_copy_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 16)),
            base_copy_bytes: Gauge::default(),
            connections_open: Gauge::default(),
            connections_accepted: Counter::default(),
            connections_rejected: Family::default(),
            connections_evicted: Family::default(),
            connections_closed: Family::default(),
            config_reloads: Family::default(),
            referrals: Family::default(),
            registry: Mutex::new(Registry::default()),
        };
        registry.register(
            "requests",
            "Requests answered, by RPC and gRPC status",
            metrics.requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from request to response headers, by RPC",
            metrics.latency.clone(),
        );
        registry.register(
            "requests_in_flight",
            "Requests being served",
            metrics.in_flight.clone(),
        );
        registry.register(
            "requests_rejected",
            "Requests refused by the concurrency limit",
            metrics.rejected.clone(),
        );
        registry.register(
            "settlements",
            "New settlements, by outcome",
            metrics.settlements.clone(),
        );
        registry.register(
            "assistance_fen",
            "Assistance paid by new settlements, in fen, by outcome",
            metrics.assistance_fen.clone(),
        );
        registry.register(
            "referrals",
            "New settlements referred to temporary assistance, by reason",
            metrics.referrals.clone(),
        );
        registry.register(
            "reversals",
            "Settlements reversed",
            metrics.reversals.clone(),
        );
        registry.register(
            "reversed_assistance_fen",
            "Assistance given back by reversals, in fen",
            metrics.reversed_fen.clone(),
        );
        registry.register(
            "applications",
            "Assistance on application: submitted, opened as a top-up, approved, rejected, withdrawn",
            metrics.applications.clone(),
        );
        registry.register(
            "store_apply_duration_seconds",
            "Writing one batch into the store, before its flush",
            metrics.apply_seconds.clone(),
        );
        registry.register(
            "store_flush_duration_seconds",
            "One store flush, which makes every applied batch durable",
            metrics.flush_seconds.clone(),
        );
        registry.register(
            "store_flush_requests",
            "Requests answered per store flush",
            metrics.flush_requests.clone(),
        );
        registry.register(
            "store_batch_retries",
            "Batches run again because another instance wrote the same records first",
            metrics.batch_retries.clone(),
        );
        registry.register(
            "patient_limit_refusals",
            "Quotes and settles refused: a hospital token reached its hourly limit of distinct patients",
            metrics.patient_limit_refusals.clone(),
        );
        registry.register(
            "store_base_copies",
            "Base copies of the embedded store written, by result: ok or failed",
            metrics.base_copies.clone(),
        );
        registry.register(
            "store_base_copy_duration_seconds",
            "Writing one base copy of the embedded store",
            metrics.base_copy_seconds.clone(),
        );
        registry.register(
            "store_base_copy_bytes",
            "Size of the last base copy of the embedded store",
            metrics.base_copy_bytes.clone(),
        );
        registry.register(
            "connections_open",
            "Connections open now, handshaking or serving",
            metrics.connections_open.clone(),
        );
        registry.register(
            "connections_accepted",
            "Connections admitted under the connection limit",
            metrics.connections_accepted.clone(),
        );
        registry.register(
            "connections_rejected",
            "Connections closed before serving: over a limit, handshake deadline, TLS failure",
            metrics.connections_rejected.clone(),
        );
        registry.register(
            "connections_evicted",
            "Connections without a request shed for a new one when every slot was taken",
            metrics.connections_evicted.clone(),
        );
        registry.register(
            "connections_closed",
            "Serving connections the server closed: idle, write stall, shutdown, keepalive, HTTP/2 abuse",
            metrics.connections_closed.clone(),
        );
        registry.register(
            "config_reloads",
            "Configuration reloads on SIGHUP, by result: ok, or failed (nothing changed)",
            metrics.config_reloads.clone(),
        );
        *metrics.registry.lock().unwrap_or_else(|e| e.into_inner()) = registry;
        metrics
    }

    /// The label for a request path: itself if known, else `unknown`.
    pub fn rpc_label(path: &str) -> &'static str {
        KNOWN_RPCS
            .iter()
            .copied()
            .find(|known| *known == path)
            .unwrap_or("unknown")
    }

    /// Counts and times one answered request.
    pub fn request_done(&self, rpc: &'static str, code: tonic::Code, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                rpc,
                code: code_name(code),
            })
            .inc();
        self.latency
            .get_or_create(&RpcLabels { rpc })
            .observe(seconds);
    }

    /// Sets the number of requests being served.
    pub fn set_in_flight(&self, count: usize) {
        self.in_flight.set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Counts a request refused by the concurrency limit.
    pub fn request_rejected(&self) {
        self.rejected.inc();
    }

    /// Counts a new settlement and its assistance.
    pub fn settled(&self, outcome: &Outcome) {
        let label = OutcomeLabels {
            outcome: outcome_name(outcome),
        };
        self.settlements.get_or_create(&label).inc();
        self.assistance_fen
            .get_or_create(&label)
            .inc_by(fen(outcome.assistance));
    }

    /// Counts a settlement referred to temporary assistance.
    pub fn referred(&self, reason: ReferralReason) {
        self.referrals
            .get_or_create(&ReasonLabels {
                reason: reason.as_str(),
            })
            .inc();
    }

    /// Counts a step of an application (`submitted`, `opened`, `approved`,
    /// `rejected`, `withdrawn`).
    pub fn application(&self, event: &'static str) {
        self.applications
            .get_or_create(&EventLabels { event })
            .inc();
    }

    /// Counts a reversal and the assistance it gave back.
    pub fn reversed(&self, assistance: Money) {
        self.reversals.inc();
        self.reversed_fen.inc_by(fen(assistance));
    }

    /// Times applying one batch.
    pub fn applied(&self, seconds: f64) {
        self.apply_seconds.observe(seconds);
    }

    /// Times one flush that answered `requests` requests.
    pub fn flushed(&self, seconds: f64, requests: usize) {
        self.flush_seconds.observe(seconds);
        self.flush_requests.observe(requests as f64);
    }

    /// Counts a batch run again after a shared store undid it.
    pub fn batch_retried(&self) {
        self.batch_retries.inc();
    }

    /// Counts a quote or settle refused by the hourly patient limit.
    pub fn patient_limit_reached(&self) {
        self.patient_limit_refusals.inc();
    }

    /// How many batches were run again (see [`Metrics::batch_retried`]).
    pub fn batch_retries(&self) -> u64 {
        self.batch_retries.get()
    }

    /// Sets the number of connections open.
    pub fn connections_open(&self, count: usize) {
        self.connections_open
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Counts a connection admitted under the connection limit.
    pub fn connection_accepted(&self) {
        self.connections_accepted.inc();
    }

    /// Counts a configuration reload, applied (`ok`) or refused (`failed`).
    pub fn config_reloaded(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.config_reloads
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// Counts a connection closed before serving: `limit`, `per_source`,
    /// `tls` or `handshake_timeout`.
    pub fn connection_rejected(&self, reason: &'static str) {
        self.connections_rejected
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Counts a connection shed for a new one: `handshake` or `no_request`.
    pub fn connection_evicted(&self, reason: &'static str) {
        self.connections_evicted
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Counts a serving connection the server closed: `idle`,
    /// `write_stall`, `shutdown`, or a reason of hyper's GOAWAY
    /// (see [`crate::edge`]).
    pub fn connection_closed(&self, reason: &'static str) {
        self.connections_closed
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// The text exposition format Prometheus scrapes.
    pub fn render(&self) -> String {
        let mut text = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        text
    }
}

impl StoreObserver for Metrics {
    fn base_written(&self, result: Result<(f64, u64), ()>) {
        let result = match result {
            Ok((seconds, bytes)) => {
                self.base_copy_seconds.observe(seconds);
                self.base_copy_bytes
                    .set(i64::try_from(bytes).unwrap_or(i64::MAX));
                "ok"
            }
            Err(()) => "failed",
        };
        self.base_copies
            .get_or_create(&ResultLabels { result })
            .inc();
    }
}

fn fen(amount: Money) -> u64 {
    u64::try_from(amount.fen()).unwrap_or(0)
}

fn outcome_name(outcome: &Outcome) -> &'static str {
    match outcome.ineligible_reason {
        Some(IneligibleReason::NotEnrolled) => "not_enrolled",
        Some(IneligibleReason::NoQualifyingCategory) => "no_qualifying_category",
        None if outcome.capped => "capped",
        None => "paid",
    }
}

/// The canonical upper-case name of a gRPC status code.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_bounded_labels() {
        let metrics = Metrics::new();
        metrics.request_done(
            Metrics::rpc_label("/medassist.v1.SettlementService/Settle"),
            tonic::Code::Ok,
            0.001,
        );
        metrics.request_done(
            Metrics::rpc_label("/evil/../path"),
            tonic::Code::Unimplemented,
            0.001,
        );
        metrics.reversed(Money::parse("7350").unwrap());
        let text = metrics.render();
        assert!(text.contains(r#"medassist_requests_total{rpc="/medassist.v1.SettlementService/Settle",code="OK"} 1"#), "{text}");
        assert!(
            text.contains(r#"rpc="unknown",code="UNIMPLEMENTED""#),
            "{text}"
        );
        assert!(
            text.contains("medassist_reversed_assistance_fen_total 735000"),
            "{text}"
        );
        assert!(!text.contains("evil"));
    }
}
