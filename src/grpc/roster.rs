//! Roster exchange on the wire: ImportPersons reads its stream record by
//! record into an [`crate::app::Import`]; ExportPersons streams what the
//! app's scan produces.

use std::pin::Pin;

use tonic::{
    Request, Response, Status, Streaming,
    codegen::tokio_stream::{Stream, StreamExt, wrappers::ReceiverStream},
};

use super::{Api, caller, checked, convert, pb, to_status};
use crate::{
    app::{ImportRejection, ImportSummary},
    audit::Subject,
    domain::{Person, RegionCode, Violations},
};

/// The records of one export, as the wire sends them.
pub type ExportStream = Pin<Box<dyn Stream<Item = Result<pb::Person, Status>> + Send>>;

/// Checks one message of an import exactly as UpsertPerson checks its
/// request; returns the record or its violations, and the patient ID sent.
fn record(message: &pb::UpsertPersonRequest) -> (Result<Person, Violations>, &str) {
    let Some(person) = message.person.as_ref() else {
        let mut violations = Violations::new();
        violations.add("person", "required");
        return (Err(violations), "");
    };
    let parsed = convert::person(person).map_err(|inner| {
        let mut violations = Violations::new();
        violations.nest("person", inner);
        violations
    });
    (parsed, &person.patient_id)
}

pub(super) async fn import(
    api: &Api,
    request: Request<Streaming<pb::UpsertPersonRequest>>,
) -> Result<Response<pb::ImportPersonsResponse>, Status> {
    let by = caller(&request)?;
    by.note.bulk();
    by.note.subject(Subject::Filter("roster import".into()));
    let mut import = api.app.import_persons(&by).map_err(to_status)?;
    let mut stream = request.into_inner();
    // A broken stream ends the import here: batches already handed to the
    // ledger commit, and importing the same data again is safe.
    while let Some(message) = stream.message().await? {
        let (parsed, patient_id) = record(&message);
        import.push(parsed, patient_id).await.map_err(to_status)?;
    }
    let summary = import.finish().await.map_err(to_status)?;
    by.note.count(summary.received);
    by.note.detail(format!(
        "{} created, {} updated, {} unchanged, {} rejected",
        summary.created,
        summary.updated,
        summary.unchanged,
        summary.errors.len()
    ));
    Ok(Response::new(response(&summary)))
}

fn response(summary: &ImportSummary) -> pb::ImportPersonsResponse {
    let count = |n: u64| i32::try_from(n).unwrap_or(i32::MAX);
    pb::ImportPersonsResponse {
        received: count(summary.received),
        created: count(summary.created),
        updated: count(summary.updated),
        unchanged: count(summary.unchanged),
        errors: summary.errors.iter().map(import_error).collect(),
    }
}

fn import_error(rejection: &ImportRejection) -> pb::ImportError {
    pb::ImportError {
        index: i32::try_from(rejection.index).unwrap_or(i32::MAX),
        patient_id: rejection.patient_id.clone(),
        violations: rejection
            .violations
            .iter()
            .map(|v| tonic_types::pb::bad_request::FieldViolation {
                field: v.field.clone(),
                description: v.description.clone(),
                ..Default::default()
            })
            .collect(),
    }
}

pub(super) fn export(
    api: &Api,
    request: Request<pb::ExportPersonsRequest>,
) -> Result<Response<ExportStream>, Status> {
    let by = caller(&request)?;
    let region = match request.get_ref().region_code.as_str() {
        "" => None,
        code => {
            let mut violations = Violations::new();
            let region = violations.check("region_code", RegionCode::parse(code));
            Some(checked(violations.finish(|| region))?)
        }
    };
    by.note.bulk();
    by.note.subject(match region {
        Some(region) => Subject::Region(region),
        None => Subject::Filter("the whole roster".into()),
    });
    let records = api.app.export_persons(region, &by).map_err(to_status)?;
    let note = by.note.clone();
    let stream = ReceiverStream::new(records).map(move |record| {
        if record.is_ok() {
            note.sent(1);
        }
        record
            .map(|person| convert::person_message(&person))
            .map_err(to_status)
    });
    Ok(Response::new(Box::pin(stream)))
}
