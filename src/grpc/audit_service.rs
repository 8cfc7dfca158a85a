//! `AuditService`: the auditors' view of the trail.

use tonic::{Request, Response, Status};

use super::{Api, answered, caller, checked, convert, pb};
use crate::{
    audit::{Cursor, Query, Record, Subject, hex},
    domain::{ParseError, ResidentId, Timestamp, Violations},
};

#[tonic::async_trait]
impl pb::audit_service_server::AuditService for Api {
    async fn list_audit_records(
        &self,
        request: Request<pb::ListAuditRecordsRequest>,
    ) -> Result<Response<pb::ListAuditRecordsResponse>, Status> {
        let by = caller(&request)?;
        let (query, page_size, after) = checked(list_request(request.get_ref()))?;
        by.note.subject(match &query.patient {
            Some(patient) => Subject::Patient(patient.clone()),
            None => Subject::Filter(format!(
                "audit records {}..{}{}",
                query.from,
                query.to,
                query
                    .principal
                    .as_ref()
                    .map(|p| format!(" of {p}"))
                    .unwrap_or_default()
            )),
        });
        let page = self.app.audit_records(query, after, page_size, &by).await;
        if let Ok(page) = &page {
            by.note.count(page.records.len() as u64);
        }
        answered(page, |page| pb::ListAuditRecordsResponse {
            records: page.records.iter().map(record).collect(),
            next_page_token: page.next.map(token).unwrap_or_default(),
        })
    }
}

type ListRequest = (Query, usize, Option<Cursor>);

fn list_request(request: &pb::ListAuditRecordsRequest) -> Result<ListRequest, Violations> {
    let mut violations = Violations::new();
    let mut moment = |field: &str, value: &Option<prost_types::Timestamp>| match value {
        Some(t) => Some(convert::from_timestamp(t)),
        None => {
            violations.add(field, "required");
            None
        }
    };
    let from = moment("from_time", &request.from_time);
    let to = moment("to_time", &request.to_time);
    if let (Some(from), Some(to)) = (from, to)
        && to < from
    {
        violations.add("to_time", "must not be before from_time");
    }
    let principal = match request.principal.as_str() {
        "" => None,
        text if text.len() <= 64 && !text.chars().any(char::is_control) => Some(text.to_owned()),
        _ => {
            violations.add(
                "principal",
                "must be a principal id such as token:0123456789abcdef",
            );
            None
        }
    };
    let patient = match request.patient_id.as_str() {
        "" => Some(None),
        text => violations
            .check("patient_id", ResidentId::parse(text))
            .map(Some),
    };
    let page_size = usize::try_from(request.page_size)
        .map_err(|_| violations.add("page_size", "may not be negative"))
        .ok();
    let after = match request.page_token.as_str() {
        "" => Some(None),
        text => violations.check("page_token", cursor(text)).map(Some),
    };
    violations.finish(|| {
        Some((
            Query {
                from: from?,
                to: to?,
                principal,
                patient: patient?,
            },
            page_size?,
            after?,
        ))
    })
}

/// A page token: where the previous page ended.
fn token(cursor: Cursor) -> String {
    format!(
        "{}-{}-{}",
        cursor.at.unix_micros(),
        cursor.chain,
        cursor.seq
    )
}

fn cursor(text: &str) -> Result<Cursor, ParseError> {
    let refused = || ParseError::new("is not a token this service gave out");
    let mut parts = text.splitn(3, '-');
    let mut next = || parts.next().ok_or_else(refused);
    let at = next()?.parse::<i64>().map_err(|_| refused())?;
    let chain = next()?.parse::<u64>().map_err(|_| refused())?;
    let seq = next()?.parse::<u64>().map_err(|_| refused())?;
    Ok(Cursor {
        at: Timestamp::from_unix_micros(at),
        chain,
        seq,
    })
}

fn record(record: &Record) -> pb::AuditRecord {
    let event = &record.event;
    pb::AuditRecord {
        chain: record.chain,
        seq: record.seq,
        at: Some(convert::timestamp(event.at)),
        principal: event.principal.clone(),
        principal_name: event.name.clone(),
        role: event.role.clone(),
        peer: event.peer.clone().unwrap_or_default(),
        client_certificate: event.client_cert.clone().unwrap_or_default(),
        call: event.call.clone(),
        phase: event.phase.as_str().to_owned(),
        subject: event.subject.to_string(),
        count: event
            .count
            .map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX)),
        code: event.code.clone(),
        detail: event.detail.clone(),
        hash: hex(&record.hash),
    }
}
