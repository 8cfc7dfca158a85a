//! The reconciliation service: 3201 totals, 3202 details, and the export
//! stream of a range of business days.

use std::pin::Pin;

use tonic::{
    Request, Response, Status,
    codegen::tokio_stream::{Stream, StreamExt, wrappers::ReceiverStream},
};

use super::{Api, answered, caller, checked, convert, pb, to_status};
use crate::{
    app::{DayTotals, EXPORT_DAYS_MAX},
    audit::Subject,
    domain::{BusinessDay, Date, HospitalId, Money, RegionCode, SettlementId, Violations},
};

/// The settlements of an export, as the wire sends them.
pub type ExportStream = Pin<Box<dyn Stream<Item = Result<pb::Settlement, Status>> + Send>>;

#[tonic::async_trait]
impl pb::reconciliation_service_server::ReconciliationService for Api {
    type ExportSettlementsStream = ExportStream;

    async fn reconcile_day(
        &self,
        request: Request<pb::ReconcileDayRequest>,
    ) -> Result<Response<pb::ReconcileDayResponse>, Status> {
        let by = caller(&request)?;
        let (hospital, day, totals) = checked(reconcile_request(request.get_ref()))?;
        by.note
            .subject(Subject::HospitalDays(Some(hospital.clone()), day, day));
        let answer = self.app.reconcile_day(&hospital, day, totals, &by).await;
        answered(answer, |found| pb::ReconcileDayResponse {
            matched: found.differing_fields.is_empty(),
            fund_totals: Some(totals_message(&found.fund_totals)),
            differing_fields: found
                .differing_fields
                .iter()
                .map(|f| (*f).to_owned())
                .collect(),
        })
    }

    async fn list_day_settlements(
        &self,
        request: Request<pb::ListDaySettlementsRequest>,
    ) -> Result<Response<pb::ListDaySettlementsResponse>, Status> {
        let by = caller(&request)?;
        let (hospital, day, page_size, after) = checked(list_day_request(request.get_ref()))?;
        by.note.bulk();
        by.note
            .subject(Subject::HospitalDays(Some(hospital.clone()), day, day));
        let page = self
            .app
            .list_day_settlements(&hospital, day, page_size, after, &by)
            .await;
        if let Ok(page) = &page {
            by.note.count(page.settlements.len() as u64);
        }
        answered(page, |page| pb::ListDaySettlementsResponse {
            settlements: page.settlements.iter().map(convert::settlement).collect(),
            next_page_token: convert::next_page_token(page.next_after),
        })
    }

    async fn export_settlements(
        &self,
        request: Request<pb::ExportSettlementsRequest>,
    ) -> Result<Response<ExportStream>, Status> {
        let by = caller(&request)?;
        let (from, to, hospital) = checked(export_request(request.get_ref()))?;
        by.note.bulk();
        by.note
            .subject(Subject::HospitalDays(hospital.clone(), from, to));
        let settlements = self
            .app
            .export_settlements(from, to, hospital, &by)
            .map_err(to_status)?;
        let note = by.note.clone();
        let stream = ReceiverStream::new(settlements).map(move |settlement| {
            if settlement.is_ok() {
                note.sent(1);
            }
            settlement
                .map(|s| convert::settlement(&s))
                .map_err(to_status)
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

fn totals_message(totals: &DayTotals) -> pb::DayTotals {
    pb::DayTotals {
        settled_count: i32::try_from(totals.settled_count).unwrap_or(i32::MAX),
        assistance_total: totals.assistance_total.to_string(),
        reversed_count: i32::try_from(totals.reversed_count).unwrap_or(i32::MAX),
        reversed_total: totals.reversed_total.to_string(),
    }
}

fn count(violations: &mut Violations, field: &str, value: i32) -> Option<u32> {
    u32::try_from(value)
        .map_err(|_| violations.add(field, "may not be negative"))
        .ok()
}

fn totals(message: Option<&pb::DayTotals>) -> Result<DayTotals, Violations> {
    let mut violations = Violations::new();
    let Some(message) = message else {
        violations.add("hospital_totals", "required: the hospital's figures");
        return Err(violations);
    };
    let settled_count = count(&mut violations, "settled_count", message.settled_count);
    let assistance_total =
        violations.check("assistance_total", Money::parse(&message.assistance_total));
    let reversed_count = count(&mut violations, "reversed_count", message.reversed_count);
    let reversed_total = violations.check("reversed_total", Money::parse(&message.reversed_total));
    violations.finish(|| {
        Some(DayTotals {
            settled_count: settled_count?,
            assistance_total: assistance_total?,
            reversed_count: reversed_count?,
            reversed_total: reversed_total?,
        })
    })
}

fn day(violations: &mut Violations, field: &str, text: &str) -> Option<BusinessDay> {
    violations
        .check(field, Date::parse(text))
        .map(BusinessDay::from_date)
}

fn reconcile_request(
    request: &pb::ReconcileDayRequest,
) -> Result<(HospitalId, BusinessDay, DayTotals), Violations> {
    let mut violations = Violations::new();
    let hospital = violations.check("hospital_id", HospitalId::parse(&request.hospital_id));
    let date = day(&mut violations, "date", &request.date);
    let totals = match totals(request.hospital_totals.as_ref()) {
        Ok(totals) => Some(totals),
        Err(inner) if request.hospital_totals.is_none() => {
            violations.extend(inner);
            None
        }
        Err(inner) => {
            violations.nest("hospital_totals", inner);
            None
        }
    };
    violations.finish(|| Some((hospital?, date?, totals?)))
}

type ListDayRequest = (HospitalId, BusinessDay, usize, Option<SettlementId>);

fn list_day_request(request: &pb::ListDaySettlementsRequest) -> Result<ListDayRequest, Violations> {
    let mut violations = Violations::new();
    let hospital = violations.check("hospital_id", HospitalId::parse(&request.hospital_id));
    let date = day(&mut violations, "date", &request.date);
    let (page_size, after) = convert::page(&mut violations, request.page_size, &request.page_token);
    violations.finish(|| Some((hospital?, date?, page_size?, after?)))
}

type ReferralsRequest = (
    RegionCode,
    BusinessDay,
    BusinessDay,
    usize,
    Option<SettlementId>,
);

/// Checks a `ListReferrals` request (the RPC is the roster service's; its
/// fields are days and pages, as here).
pub(super) fn referrals_request(
    request: &pb::ListReferralsRequest,
) -> Result<ReferralsRequest, Violations> {
    let mut violations = Violations::new();
    let region = violations.check("region_code", RegionCode::parse(&request.region_code));
    let from = day(&mut violations, "from_date", &request.from_date);
    let to = day(&mut violations, "to_date", &request.to_date);
    if let (Some(from), Some(to)) = (from, to)
        && to < from
    {
        violations.add("to_date", "must not be before from_date");
    }
    let (page_size, after) = convert::page(&mut violations, request.page_size, &request.page_token);
    violations.finish(|| Some((region?, from?, to?, page_size?, after?)))
}

type ExportRequest = (BusinessDay, BusinessDay, Option<HospitalId>);

fn export_request(request: &pb::ExportSettlementsRequest) -> Result<ExportRequest, Violations> {
    let mut violations = Violations::new();
    let (from, to) = day_range(&mut violations, &request.from_date, &request.to_date);
    let hospital = match request.hospital_id.as_str() {
        "" => Some(None),
        id => violations
            .check("hospital_id", HospitalId::parse(id))
            .map(Some),
    };
    violations.finish(|| Some((from?, to?, hospital?)))
}

/// Reads a `from_date` and `to_date` pair: at most [`EXPORT_DAYS_MAX`]
/// business days, both counted, the last not before the first.
pub(super) fn day_range(
    violations: &mut Violations,
    from_date: &str,
    to_date: &str,
) -> (Option<BusinessDay>, Option<BusinessDay>) {
    let from = day(violations, "from_date", from_date);
    let to = day(violations, "to_date", to_date);
    if let (Some(from), Some(to)) = (from, to) {
        if to < from {
            violations.add("to_date", "must not be before from_date");
        } else if from.days_through(to) > EXPORT_DAYS_MAX {
            violations.add(
                "to_date",
                format!("must be within {EXPORT_DAYS_MAX} days of from_date, both counted"),
            );
        }
    }
    (from, to)
}
