//! The application service (依申请救助): the stays a late enrollment owes.

use tonic::{Request, Response, Status};

use super::{Api, answered, caller, checked, convert, pb};
use crate::{
    app::CandidatePage,
    audit::Subject,
    domain::{ParseError, RegionCode, ResidentId, Violations, Year},
};

#[tonic::async_trait]
impl pb::application_service_server::ApplicationService for Api {
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
