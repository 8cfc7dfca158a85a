//! The gRPC transport: generated messages, the eight services, the
//! authentication interceptor, the request gate, and the error table. It only
//! converts, authenticates and maps errors; the use cases (and the decision of
//! who may do what) are in [`crate::app`].

mod admin;
mod application;
pub mod audit;
mod audit_service;
mod convert;
mod gate;
pub mod http_rule;
pub mod nhsa;
mod reconciliation;
mod roster;
mod statistics;
mod status;
pub mod transcode;

use std::sync::Arc;

use arc_swap::ArcSwap;
use tonic::{Request, Response, Status, service::Interceptor};
use tower::Layer as _;

use crate::{
    app::{App, AppError},
    audit::Subject,
    auth::{Access, Caller},
    domain::{ClaimKey, Reason, SettlementId, Violations},
};
use audit::Note;

pub use gate::{Gate, GateLayer, GateState};
pub use status::to_status;
pub use transcode::{Gateway, OPENAPI_JSON};

/// Authenticates every call of the services it wraps (health and reflection
/// are not wrapped) and hands the caller to the handler. The tokens are read
/// once per call, so a configuration reload applies from the next call on.
#[derive(Clone)]
pub struct Authenticator(pub Arc<ArcSwap<Access>>);

impl Interceptor for Authenticator {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .map(|value| value.as_bytes());
        let note = request
            .extensions()
            .get::<Arc<Note>>()
            .cloned()
            .ok_or_else(|| {
                Status::internal("this call has no audit note: it bypassed the audit layer")
            })?;
        match self.0.load().authenticate(header) {
            Ok(principal) => {
                note.authenticated(principal);
                Ok(request)
            }
            Err(refusal) => {
                note.refused(&refusal.to_string());
                Err(Status::unauthenticated(refusal.to_string()))
            }
        }
    }
}

/// One call's authenticated caller, and the note its audit record is made
/// from: handlers say there whom the call concerns.
pub(super) struct Call {
    caller: Caller,
    note: Arc<Note>,
}

impl std::ops::Deref for Call {
    type Target = Caller;

    fn deref(&self) -> &Caller {
        &self.caller
    }
}

/// The caller the interceptor found.
fn caller<T>(request: &Request<T>) -> Result<Call, Status> {
    let note = request
        .extensions()
        .get::<Arc<Note>>()
        .cloned()
        .ok_or_else(|| Status::internal("this call has no audit note"))?;
    let caller = note
        .caller()
        .ok_or_else(|| Status::unauthenticated("no credentials were checked for this call"))?;
    Ok(Call { caller, note })
}

/// Messages and service stubs generated from `proto/medassist/v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("medassist.v1");
}

/// The encoded descriptor set of `proto/`, served by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/medassist_descriptor.bin"));

/// The application's services behind authentication, each decoding at most
/// `message_bytes_max`: what the gRPC port serves (beside health and
/// reflection) and what the HTTP/JSON gateway calls. A new service is added
/// here once and is then reachable both ways.
pub fn api_routes(
    api: &Api,
    auth: &Authenticator,
    message_bytes_max: usize,
) -> tonic::service::Routes {
    let audited = audit::AuditLayer(Arc::clone(&api.app));
    use pb::{
        admin_service_server::AdminServiceServer,
        application_service_server::ApplicationServiceServer,
        audit_service_server::AuditServiceServer, caller_service_server::CallerServiceServer,
        policy_service_server::PolicyServiceServer,
        reconciliation_service_server::ReconciliationServiceServer,
        roster_service_server::RosterServiceServer,
        settlement_service_server::SettlementServiceServer,
        statistics_service_server::StatisticsServiceServer,
        usage_service_server::UsageServiceServer,
    };
    use tonic::service::interceptor::InterceptedService;
    let limit = message_bytes_max;
    tonic::service::Routes::new(audited.layer(InterceptedService::new(
        SettlementServiceServer::new(api.clone()).max_decoding_message_size(limit),
        auth.clone(),
    )))
    .add_service(audited.layer(InterceptedService::new(
        UsageServiceServer::new(api.clone()).max_decoding_message_size(limit),
        auth.clone(),
    )))
    .add_service(audited.layer(InterceptedService::new(
        RosterServiceServer::new(api.clone()).max_decoding_message_size(limit),
        auth.clone(),
    )))
    .add_service(audited.layer(InterceptedService::new(
        PolicyServiceServer::new(api.clone()).max_decoding_message_size(limit),
        auth.clone(),
    )))
    .add_service(audited.layer(InterceptedService::new(
        AdminServiceServer::new(api.clone()).max_decoding_message_size(limit),
        auth.clone(),
    )))
    .add_service(audited.layer(InterceptedService::new(
        ReconciliationServiceServer::new(api.clone()).max_decoding_message_size(limit),
        auth.clone(),
    )))
    .add_service(audited.layer(InterceptedService::new(
        AuditServiceServer::new(api.clone()).max_decoding_message_size(limit),
        auth.clone(),
    )))
    .add_service(audited.layer(InterceptedService::new(
        ApplicationServiceServer::new(api.clone()).max_decoding_message_size(limit),
        auth.clone(),
    )))
    .add_service(audited.layer(InterceptedService::new(
        StatisticsServiceServer::new(api.clone()).max_decoding_message_size(limit),
        auth.clone(),
    )))
    .add_service(audited.layer(InterceptedService::new(
        CallerServiceServer::new(api.clone()).max_decoding_message_size(limit),
        auth.clone(),
    )))
}

/// Every service over one application.
#[derive(Clone)]
pub struct Api {
    app: Arc<App>,
}

impl Api {
    /// Serves `app`.
    pub fn new(app: Arc<App>) -> Self {
        Api { app }
    }
}

fn checked<T>(parsed: Result<T, Violations>) -> Result<T, Status> {
    parsed.map_err(|violations| status::invalid(&violations))
}

fn answered<T, U>(
    result: Result<T, AppError>,
    write: impl FnOnce(&T) -> U,
) -> Result<Response<U>, Status> {
    result
        .map(|value| Response::new(write(&value)))
        .map_err(to_status)
}

/// The answer to a settle or reverse: `fresh` is what this request did when
/// it was not a replay; a replay says where the claim already stands.
fn recorded(recorded: &crate::ledger::Recorded, fresh: pb::SettleAnswer) -> pb::SettleResponse {
    let answer = match (recorded.replayed, &recorded.settlement.reversal) {
        (false, _) => fresh,
        (true, Some(_)) => pb::SettleAnswer::AlreadyReversed,
        (true, None) => pb::SettleAnswer::AlreadySettled,
    };
    pb::SettleResponse {
        settlement: Some(convert::settlement(&recorded.settlement)),
        replayed: recorded.replayed,
        answer: answer.into(),
    }
}

#[tonic::async_trait]
impl pb::settlement_service_server::SettlementService for Api {
    async fn pre_settle(
        &self,
        request: Request<pb::SettleRequest>,
    ) -> Result<Response<pb::SettleResponse>, Status> {
        let by = caller(&request)?;
        let claim = checked(convert::claim(request.get_ref()))?;
        by.note.subject(claim_subject(&claim));
        answered(self.app.pre_settle(claim, &by).await, |quote| {
            pb::SettleResponse {
                settlement: Some(convert::quote(quote)),
                replayed: false,
                answer: pb::SettleAnswer::Quoted.into(),
            }
        })
    }

    async fn settle(
        &self,
        request: Request<pb::SettleRequest>,
    ) -> Result<Response<pb::SettleResponse>, Status> {
        let by = caller(&request)?;
        let claim = checked(convert::claim(request.get_ref()))?;
        by.note.subject(claim_subject(&claim));
        let settled = self.app.settle(claim, &by).await;
        write_audited(&by.note, &settled);
        answered(settled, |r| recorded(r, pb::SettleAnswer::Settled))
    }

    async fn reverse(
        &self,
        request: Request<pb::ReverseRequest>,
    ) -> Result<Response<pb::SettleResponse>, Status> {
        let by = caller(&request)?;
        let (key, reason) = checked(reverse_request(request.get_ref()))?;
        by.note.subject(Subject::Claim(key.clone(), None));
        let reversed = self.app.reverse(key, reason, &by).await;
        write_audited(&by.note, &reversed);
        answered(reversed, |r| recorded(r, pb::SettleAnswer::Reversed))
    }

    async fn get_settlement(
        &self,
        request: Request<pb::GetSettlementRequest>,
    ) -> Result<Response<pb::Settlement>, Status> {
        let by = caller(&request)?;
        let which = checked(convert::settlement_ref(request.get_ref()))?;
        by.note.subject(match &which {
            crate::app::SettlementRef::Id(id) => Subject::Settlement(*id, None),
            crate::app::SettlementRef::Claim(key) => Subject::Claim(key.clone(), None),
        });
        let found = self.app.settlement(which, &by).await;
        if let Ok(settlement) = &found {
            let patient = Some(settlement.claim.patient_id().clone());
            by.note.subject(Subject::Settlement(settlement.id, patient));
        }
        answered(found, convert::settlement)
    }
}

/// Whom a claim concerns.
pub(super) fn claim_subject(claim: &crate::domain::Claim) -> Subject {
    Subject::Claim(claim.key().clone(), Some(claim.patient_id().clone()))
}

/// Tells the note of a settle or reverse what the ledger recorded: a new
/// write's record was sealed with it; a replay is recorded as a read.
pub(super) fn write_audited(note: &Note, result: &Result<crate::ledger::Recorded, AppError>) {
    match result {
        Ok(recorded) if recorded.replayed => note.detail("replay"),
        Ok(_) => note.sealed(),
        Err(_) => {}
    }
}

fn reverse_request(request: &pb::ReverseRequest) -> Result<(ClaimKey, Reason), Violations> {
    key_and_reason(&request.hospital_id, &request.claim_id, &request.reason)
}

/// A claim key and a reason, of a request that cancels or closes what is
/// recorded under the key (Reverse, RejectApplication, WithdrawApplication).
pub(super) fn key_and_reason(
    hospital_id: &str,
    claim_id: &str,
    reason: &str,
) -> Result<(ClaimKey, Reason), Violations> {
    let mut violations = Violations::new();
    let key = ClaimKey::parse(hospital_id, claim_id)
        .map_err(|inner| violations.extend(inner))
        .ok();
    let reason = violations.check("reason", Reason::parse(reason));
    violations.finish(|| Some((key?, reason?)))
}

#[tonic::async_trait]
impl pb::usage_service_server::UsageService for Api {
    async fn get_annual_usage(
        &self,
        request: Request<pb::GetAnnualUsageRequest>,
    ) -> Result<Response<pb::AnnualUsage>, Status> {
        let by = caller(&request)?;
        let request = request.get_ref();
        let (patient, year) = checked(convert::patient_year(&request.patient_id, request.year))?;
        by.note.subject(Subject::Patient(patient.clone()));
        answered(
            self.app.annual_usage(patient, year, &by).await,
            convert::annual_usage,
        )
    }

    async fn list_settlements(
        &self,
        request: Request<pb::ListSettlementsRequest>,
    ) -> Result<Response<pb::ListSettlementsResponse>, Status> {
        let by = caller(&request)?;
        let (patient, year, page_size, after) = checked(list_request(request.get_ref()))?;
        by.note.subject(Subject::Patient(patient.clone()));
        let page = self
            .app
            .list_settlements(&patient, year, page_size, after, &by)
            .await;
        if let Ok(page) = &page {
            by.note.count(page.settlements.len() as u64);
        }
        answered(page, |page| pb::ListSettlementsResponse {
            settlements: page.settlements.iter().map(convert::settlement).collect(),
            next_page_token: convert::next_page_token(page.next_after),
        })
    }

    async fn batch_get_annual_usage(
        &self,
        request: Request<pb::BatchGetAnnualUsageRequest>,
    ) -> Result<Response<pb::BatchGetAnnualUsageResponse>, Status> {
        let by = caller(&request)?;
        let (patients, year) = checked(batch_usage_request(request.get_ref()))?;
        by.note.bulk();
        by.note.subject(Subject::Patients(patients.clone()));
        let found = self.app.batch_annual_usage(patients, year, &by).await;
        if let Ok((usages, _)) = &found {
            by.note.count(usages.len() as u64);
        }
        answered(found, |(usages, not_found)| {
            pb::BatchGetAnnualUsageResponse {
                usages: usages.iter().map(convert::annual_usage).collect(),
                // Masked as every ID the service shows: the caller sent
                // them, in order, and needs no more to match them.
                not_found: not_found.iter().map(|id| id.to_string()).collect(),
            }
        })
    }
}

fn batch_usage_request(
    request: &pb::BatchGetAnnualUsageRequest,
) -> Result<(Vec<crate::domain::ResidentId>, crate::domain::Year), Violations> {
    let mut violations = Violations::new();
    let count = request.patient_ids.len();
    if count == 0 || count > crate::app::BATCH_PATIENTS_MAX {
        violations.add(
            "patient_ids",
            format!(
                "must hold 1 to {} resident IDs, not {count}",
                crate::app::BATCH_PATIENTS_MAX
            ),
        );
    }
    let year = violations.check("year", crate::domain::Year::parse(request.year));
    let mut patients = Vec::with_capacity(count.min(crate::app::BATCH_PATIENTS_MAX));
    let mut seen = std::collections::HashMap::new();
    // Past the limit the request is refused anyway: no need to read further.
    for (i, text) in request
        .patient_ids
        .iter()
        .enumerate()
        .take(crate::app::BATCH_PATIENTS_MAX)
    {
        let field = format!("patient_ids[{i}]");
        let Some(id) = violations.check(&field, crate::domain::ResidentId::parse(text)) else {
            continue;
        };
        match seen.insert(id.clone(), i) {
            Some(first) => violations.add(field, format!("repeats patient_ids[{first}]")),
            None => patients.push(id),
        }
    }
    violations.finish(|| Some((patients, year?)))
}

type ListRequest = (
    crate::domain::ResidentId,
    crate::domain::Year,
    usize,
    Option<SettlementId>,
);

fn list_request(request: &pb::ListSettlementsRequest) -> Result<ListRequest, Violations> {
    let mut violations = Violations::new();
    let patient_year = convert::patient_year(&request.patient_id, request.year)
        .map_err(|inner| violations.extend(inner))
        .ok();
    let (page_size, after) = convert::page(&mut violations, request.page_size, &request.page_token);
    violations.finish(|| {
        let (patient, year) = patient_year?;
        Some((patient, year, page_size?, after?))
    })
}

#[tonic::async_trait]
impl pb::roster_service_server::RosterService for Api {
    type ExportPersonsStream = roster::ExportStream;

    async fn import_persons(
        &self,
        request: Request<tonic::Streaming<pb::UpsertPersonRequest>>,
    ) -> Result<Response<pb::ImportPersonsResponse>, Status> {
        roster::import(self, request).await
    }

    async fn export_persons(
        &self,
        request: Request<pb::ExportPersonsRequest>,
    ) -> Result<Response<roster::ExportStream>, Status> {
        roster::export(self, request)
    }

    async fn upsert_person(
        &self,
        request: Request<pb::UpsertPersonRequest>,
    ) -> Result<Response<pb::Person>, Status> {
        let by = caller(&request)?;
        let Some(person) = request.get_ref().person.as_ref() else {
            let mut violations = Violations::new();
            violations.add("person", "required");
            return Err(status::invalid(&violations));
        };
        let person = checked(convert::person(person).map_err(|inner| {
            let mut violations = Violations::new();
            violations.nest("person", inner);
            violations
        }))?;
        by.note.subject(Subject::Patient(person.id().clone()));
        let written = self.app.upsert_person(person, &by).await;
        if written.is_ok() {
            by.note.sealed();
        }
        answered(written, convert::person_message)
    }

    async fn get_person(
        &self,
        request: Request<pb::GetPersonRequest>,
    ) -> Result<Response<pb::Person>, Status> {
        let by = caller(&request)?;
        let mut violations = Violations::new();
        let id = violations.check(
            "patient_id",
            crate::domain::ResidentId::parse(&request.get_ref().patient_id),
        );
        let id = checked(violations.finish(|| id))?;
        by.note.subject(Subject::Patient(id.clone()));
        answered(self.app.person(&id, &by).await, convert::person_message)
    }

    async fn list_referrals(
        &self,
        request: Request<pb::ListReferralsRequest>,
    ) -> Result<Response<pb::ListReferralsResponse>, Status> {
        let by = caller(&request)?;
        let (region, from, to, page_size, after) =
            checked(reconciliation::referrals_request(request.get_ref()))?;
        by.note.subject(Subject::Filter(format!(
            "referrals of region {region} days {from}..{to}"
        )));
        let page = self
            .app
            .list_referrals(region, from, to, page_size, after, &by)
            .await;
        if let Ok(page) = &page {
            by.note.count(page.settlements.len() as u64);
        }
        answered(page, |page| pb::ListReferralsResponse {
            settlements: page.settlements.iter().map(convert::settlement).collect(),
            next_page_token: convert::next_page_token(page.next_after),
        })
    }
}

#[tonic::async_trait]
impl pb::policy_service_server::PolicyService for Api {
    async fn get_policy(
        &self,
        request: Request<pb::GetPolicyRequest>,
    ) -> Result<Response<pb::Policy>, Status> {
        let by = caller(&request)?;
        let request = request.get_ref();
        let (region, year) = checked(convert::region_year(&request.region_code, request.year))?;
        by.note.subject(Subject::Filter(format!(
            "policy of region {region} in {year}"
        )));
        match self.app.policy(region, year, &by) {
            Ok(policy) => Ok(Response::new(convert::policy(&policy))),
            // Here the missing policy is the very thing asked for.
            Err(error @ AppError::NoPolicy { .. }) => Err(Status::not_found(error.to_string())),
            Err(error) => Err(to_status(error)),
        }
    }

    async fn simulate_policy(
        &self,
        request: Request<pb::SimulatePolicyRequest>,
    ) -> Result<Response<pb::SimulatePolicyResponse>, Status> {
        let by = caller(&request)?;
        let (book, year, region) = checked(convert::simulation_request(request.get_ref()))?;
        by.note.subject(Subject::Filter(format!(
            "policy simulation of {year}, region {}",
            region.map_or_else(|| "all".to_owned(), |r| r.to_string())
        )));
        let report = self.app.simulate_policy(book, year, region, &by).await;
        if let Ok(report) = &report {
            by.note.count(report.total.settlements);
        }
        answered(report, convert::simulation_report)
    }
}
