//! `medassist audit export`: the trail as JSON lines for the fund's log
//! system, paged through `AuditService.ListAuditRecords` with an auditor's
//! token. Each line is one record, resident IDs masked as the server shows
//! them; the last line is the head of each chain seen (its last sequence
//! number and hash), which the log system keeps to check the trail later.
//! The file is sealed to `--recipient`s when given (see [`crate::seal`]).

use std::{
    collections::BTreeMap,
    io::{self, Write},
    path::PathBuf,
};

use serde_json::json;

use super::{Client, ClientError, Connection, Output, count_progress};
use crate::{
    grpc::pb,
    seal::{Recipients, Sink},
};

/// What `medassist audit export` is asked to do.
#[derive(Debug)]
pub struct AuditExportOptions {
    /// The server, and how to reach it (an auditor's token).
    pub connection: Connection,
    /// Which records.
    pub filter: AuditFilter,
    /// Where to write; standard output when `None`.
    pub output: Option<PathBuf>,
    /// Who to seal the output to (none: it is written plain).
    pub recipients: Recipients,
}

/// What to export: a time range, optionally one principal and one patient.
#[derive(Debug)]
pub struct AuditFilter {
    /// From this moment (RFC 3339), included.
    pub from: prost_types::Timestamp,
    /// To this moment, included.
    pub to: prost_types::Timestamp,
    /// One principal's records (`token:...`).
    pub principal: Option<String>,
    /// Records naming this patient.
    pub patient_id: Option<String>,
}

/// Writes every record the filter finds, one JSON object a line, then the
/// heads line; a file appears only whole. Returns how many records.
pub async fn export(options: AuditExportOptions) -> Result<u64, Box<dyn std::error::Error>> {
    let client = Client::connect(&options.connection).await?;
    let sealed = !options.recipients.is_empty();
    let written = |e: io::Error| format!("cannot write the audit export: {e}");
    let output = Output::open(options.output.as_deref(), sealed)?;
    let mut sink = Sink::new(output, &options.recipients).map_err(written)?;
    let count = write_records(&client, options.filter, &mut sink).await?;
    sink.finish().map_err(written)?.commit()?;
    Ok(count)
}

/// Pages through the records into `out`.
async fn write_records(
    client: &Client,
    filter: AuditFilter,
    out: &mut dyn Write,
) -> Result<u64, ClientError> {
    let progress = count_progress("exporting audit records");
    let mut service = client.audit();
    let (mut written, mut token) = (0u64, String::new());
    let mut heads: BTreeMap<u64, (u64, String)> = BTreeMap::new();
    loop {
        let request = client.request(pb::ListAuditRecordsRequest {
            from_time: Some(filter.from),
            to_time: Some(filter.to),
            principal: filter.principal.clone().unwrap_or_default(),
            patient_id: filter.patient_id.clone().unwrap_or_default(),
            page_size: 0,
            page_token: token,
        });
        let page = service.list_audit_records(request).await?.into_inner();
        for record in &page.records {
            writeln!(out, "{}", line(record)).map_err(write_error)?;
            let head = heads.entry(record.chain).or_default();
            if record.seq >= head.0 {
                *head = (record.seq, record.hash.clone());
            }
            written += 1;
            progress.inc(1);
        }
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    let heads: Vec<_> = heads
        .into_iter()
        .map(|(chain, (seq, hash))| json!({"chain": chain, "seq": seq, "hash": hash}))
        .collect();
    writeln!(out, "{}", json!({"heads": heads})).map_err(write_error)?;
    out.flush().map_err(write_error)?;
    progress.finish_and_clear();
    Ok(written)
}

fn write_error(error: std::io::Error) -> ClientError {
    ClientError::Output(error.to_string())
}

/// One record as a JSON object, with the names the HTTP/JSON API uses.
fn line(record: &pb::AuditRecord) -> serde_json::Value {
    let at = record
        .at
        .as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_default();
    json!({
        "chain": record.chain,
        "seq": record.seq,
        "at": at,
        "principal": record.principal,
        "principalName": record.principal_name,
        "role": record.role,
        "peer": record.peer,
        "clientCertificate": record.client_certificate,
        "call": record.call,
        "phase": record.phase,
        "subject": record.subject,
        "count": (record.count >= 0).then_some(record.count),
        "code": record.code,
        "detail": record.detail,
        "hash": record.hash,
    })
}
