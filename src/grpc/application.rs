//! The application service (依申请救助): submit, approve, reject and
//! withdraw applications, and the stays a late enrollment owes.

use tonic::{Request, Response, Status};

use super::{
    Api, answered, audit::Note, caller, checked, claim_subject, convert, key_and_reason, pb,
    write_audited,
};
use crate::{
    app::{AppError, CandidatePage, Decision, QueueQuery},
    audit::Subject,
    domain::{
        ApplicationState, ClaimKey, ParseError, PaymentRef, Reason, RegionCode, ResidentId,
        SettlementId, Violations, Year,
    },
    ledger::Recorded,
};

#[tonic::async_trait]
impl pb::application_service_server::ApplicationService for Api {
    async fn submit_application(
        &self,
        request: Request<pb::SubmitApplicationRequest>,
    ) -> Result<Response<pb::Settlement>, Status> {
        let by = caller(&request)?;
        let request = request.get_ref();
        let mut violations = Violations::new();
        let claim = match &request.claim {
            None => {
                violations.add("claim", "is required: the stay, as a hospital settles it");
                None
            }
            Some(claim) => convert::claim(claim)
                .map_err(|inner| violations.nest("claim", inner))
                .ok(),
        };
        let documents = violations.check("documents", Reason::parse(&request.documents));
        let (claim, documents) = checked(violations.finish(|| Some((claim?, documents?))))?;
        by.note.subject(claim_subject(&claim));
        let submitted = self.app.submit_application(claim, documents, &by).await;
        decided(&by.note, submitted)
    }

    async fn open_application(
        &self,
        request: Request<pb::OpenApplicationRequest>,
    ) -> Result<Response<pb::Settlement>, Status> {
        let by = caller(&request)?;
        let request = request.get_ref();
        let mut violations = Violations::new();
        let window = violations.check("settlement_id", SettlementId::parse(&request.settlement_id));
        let documents = violations.check("documents", Reason::parse(&request.documents));
        let (window, documents) = checked(violations.finish(|| Some((window?, documents?))))?;
        by.note.subject(Subject::Settlement(window, None));
        let opened = self.app.open_application(window, documents, &by).await;
        decided(&by.note, opened)
    }

    async fn approve_application(
        &self,
        request: Request<pb::ApproveApplicationRequest>,
    ) -> Result<Response<pb::Settlement>, Status> {
        let by = caller(&request)?;
        let request = request.get_ref();
        let mut violations = Violations::new();
        let key = ClaimKey::parse(&request.hospital_id, &request.claim_id)
            .map_err(|inner| violations.extend(inner))
            .ok();
        let payment = violations.check("payment_ref", PaymentRef::parse(&request.payment_ref));
        let (key, payment) = checked(violations.finish(|| Some((key?, payment?))))?;
        self.decide(&by, key, Decision::Approve(payment)).await
    }

    async fn reject_application(
        &self,
        request: Request<pb::CloseApplicationRequest>,
    ) -> Result<Response<pb::Settlement>, Status> {
        let by = caller(&request)?;
        let (key, reason) = checked(close_request(request.get_ref()))?;
        self.decide(&by, key, Decision::Reject(reason)).await
    }

    async fn withdraw_application(
        &self,
        request: Request<pb::CloseApplicationRequest>,
    ) -> Result<Response<pb::Settlement>, Status> {
        let by = caller(&request)?;
        let (key, reason) = checked(close_request(request.get_ref()))?;
        self.decide(&by, key, Decision::Withdraw(reason)).await
    }

    async fn list_applications(
        &self,
        request: Request<pb::ListApplicationsRequest>,
    ) -> Result<Response<pb::ListApplicationsResponse>, Status> {
        let by = caller(&request)?;
        let (query, page_size, after) = checked(queue_request(request.get_ref()))?;
        by.note.subject(Subject::Region(query.region));
        let page = self
            .app
            .application_queue(query, page_size, after, &by)
            .await;
        if let Ok(page) = &page {
            by.note.count(page.settlements.len() as u64);
            let patients: Vec<ResidentId> = page
                .settlements
                .iter()
                .map(|s| s.claim.patient_id().clone())
                .collect();
            if !patients.is_empty() {
                by.note.subject(Subject::Patients(patients));
            }
        }
        answered(page, |page| pb::ListApplicationsResponse {
            applications: page.settlements.iter().map(convert::settlement).collect(),
            next_page_token: convert::next_page_token(page.next_after),
        })
    }

    async fn list_retroactive_candidates(
        &self,
        request: Request<pb::ListRetroactiveCandidatesRequest>,
    ) -> Result<Response<pb::ListRetroactiveCandidatesResponse>, Status> {
        let by = caller(&request)?;
        let (region, year, page_size, after) = checked(candidates_request(request.get_ref()))?;
        by.note.subject(Subject::Region(region));
        let page = self
            .app
            .retroactive_candidates(region, year, page_size, after, &by)
            .await;
        if let Ok(page) = &page {
            by.note.count(page.candidates.len() as u64);
            let mut patients: Vec<ResidentId> = page
                .candidates
                .iter()
                .map(|c| c.settlement.claim.patient_id().clone())
                .collect();
            patients.dedup();
            if !patients.is_empty() {
                by.note.subject(Subject::Patients(patients));
            }
        }
        answered(page, candidates_message)
    }
}

impl Api {
    /// Approves, rejects or withdraws the application under `key`.
    async fn decide(
        &self,
        by: &super::Call,
        key: ClaimKey,
        decision: Decision,
    ) -> Result<Response<pb::Settlement>, Status> {
        by.note.subject(Subject::Claim(key.clone(), None));
        let decided_now = self.app.decide_application(key, decision, by).await;
        decided(&by.note, decided_now)
    }
}

/// The answer of a write on an application: the application as recorded.
fn decided(
    note: &Note,
    result: Result<Recorded, AppError>,
) -> Result<Response<pb::Settlement>, Status> {
    write_audited(note, &result);
    answered(result, |r| convert::settlement(&r.settlement))
}

fn close_request(request: &pb::CloseApplicationRequest) -> Result<(ClaimKey, Reason), Violations> {
    key_and_reason(&request.hospital_id, &request.claim_id, &request.reason)
}

fn queue_request(
    request: &pb::ListApplicationsRequest,
) -> Result<(QueueQuery, usize, Option<SettlementId>), Violations> {
    let mut violations = Violations::new();
    let region = violations.check("region_code", RegionCode::parse(&request.region_code));
    let state = match pb::ApplicationState::try_from(request.state) {
        Ok(pb::ApplicationState::Unspecified) => Some(None),
        Ok(pb::ApplicationState::Pending) => Some(Some(ApplicationState::Pending)),
        Ok(pb::ApplicationState::Approved) => Some(Some(ApplicationState::Approved)),
        Ok(pb::ApplicationState::Rejected) => Some(Some(ApplicationState::Rejected)),
        Ok(pb::ApplicationState::Withdrawn) => Some(Some(ApplicationState::Withdrawn)),
        Err(_) => {
            violations.add("state", "is not an application state");
            None
        }
    };
    let (from, to) =
        super::reconciliation::day_range(&mut violations, &request.from_date, &request.to_date);
    let (page_size, after) = convert::page(&mut violations, request.page_size, &request.page_token);
    violations.finish(|| {
        let query = QueueQuery {
            region: region?,
            state: state?,
            from: from?,
            to: to?,
        };
        Some((query, page_size?, after?))
    })
}

type CandidatesRequest = (RegionCode, Year, usize, Option<ResidentId>);

fn candidates_request(
    request: &pb::ListRetroactiveCandidatesRequest,
) -> Result<CandidatesRequest, Violations> {
    let mut violations = Violations::new();
    let region = violations.check("region_code", RegionCode::parse(&request.region_code));
    let year = violations.check("year", Year::parse(request.year));
    let page_size = usize::try_from(request.page_size)
        .map_err(|_| violations.add("page_size", "may not be negative"))
        .ok();
    let after = match request.page_token.as_str() {
        "" => Some(None),
        token => violations
            .check(
                "page_token",
                ResidentId::parse(token)
                    .map_err(|_| ParseError::new("is not a token this service gave out")),
            )
            .map(Some),
    };
    violations.finish(|| Some((region?, year?, page_size?, after?)))
}

fn candidates_message(page: &CandidatePage) -> pb::ListRetroactiveCandidatesResponse {
    pb::ListRetroactiveCandidatesResponse {
        candidates: page
            .candidates
            .iter()
            .map(|c| pb::RetroactiveCandidate {
                settlement: Some(convert::settlement(&c.settlement)),
                assistance_now: c.now.assistance.to_string(),
                owed: c
                    .now
                    .assistance
                    .checked_sub(c.settlement.outcome.assistance)
                    .unwrap_or_default()
                    .to_string(),
                breakdown_now: c.now.breakdown.as_ref().map(convert::breakdown),
            })
            .collect(),
        next_page_token: page
            .next_after
            .as_ref()
            .map(|id| id.as_str().to_owned())
            .unwrap_or_default(),
    }
}
