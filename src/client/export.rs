//! `medassist export`: every settlement settled or reversed in a range of
//! business days, as CSV with one header row, or JSON lines. Each record
//! is written as `GET /v1/settlements:export` writes it (the proto3 JSON
//! mapping: lowerCamelCase keys, enums by name, timestamps in RFC 3339
//! UTC), with the business days it counts in (`settledDay`,
//! `reversedDay`); the CSV's columns are the same keys. The file is sealed
//! to `--recipient`s when given (see [`crate::seal`]).

use std::{
    io::{self, Write},
    path::PathBuf,
    process::ExitCode,
};

use serde_json::Value;

use super::{Client, ClientError, Connection, Output, count_progress};
use crate::{
    grpc::pb,
    seal::{Recipients, Sink},
};

/// What `medassist export` is asked to do.
#[derive(Debug)]
pub struct ExportOptions {
    /// The server, and how to reach it (an auditor's token).
    pub connection: Connection,
    /// The first and last business days (`YYYY-MM-DD`), included.
    pub from: String,
    /// See `from`.
    pub to: String,
    /// One hospital; all when `None`.
    pub hospital: Option<String>,
    /// The output format.
    pub format: Format,
    /// Where to write; standard output when `None`.
    pub output: Option<PathBuf>,
    /// Who to seal the output to (none: it is written plain).
    pub recipients: Recipients,
}

/// Streams ExportSettlements into the output; a file appears only whole.
pub async fn export(options: ExportOptions) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let client = Client::connect(&options.connection).await?;
    let request = pb::ExportSettlementsRequest {
        from_date: options.from,
        to_date: options.to,
        hospital_id: options.hospital.unwrap_or_default(),
    };
    let mut settlements = client
        .reconciliation()
        .export_settlements(client.request(request))
        .await
        .map_err(ClientError::from)?
        .into_inner();
    let sealed = !options.recipients.is_empty();
    let output = Output::open(options.output.as_deref(), sealed)?;
    let written = |e: io::Error| format!("cannot write the export: {e}");
    let sink = Sink::new(output, &options.recipients).map_err(written)?;
    let mut writer = ExportWriter::start(sink, options.format).map_err(written)?;
    let bar = count_progress("exporting settlements");
    while let Some(settlement) = settlements.message().await.map_err(ClientError::from)? {
        writer.write(&settlement).map_err(written)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    writer
        .finish()
        .and_then(Sink::finish)
        .map_err(written)?
        .commit()?;
    eprintln!(
        "exported {} settlements{}",
        bar.position(),
        if sealed { ", encrypted (age)" } else { "" }
    );
    Ok(ExitCode::SUCCESS)
}

/// The output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values (RFC 4180), one header row.
    Csv,
    /// One JSON object per line.
    JsonLines,
}

/// The columns, in `Settlement` field order: the keys of the HTTP export
/// (`GET /v1/settlements:export`), business days included.
pub fn columns() -> Vec<String> {
    crate::grpc::transcode::settlement_keys()
}

/// Writes settlements one at a time, in either format.
pub struct ExportWriter<W: Write> {
    out: W,
    format: Format,
    columns: Vec<String>,
}

impl<W: Write> ExportWriter<W> {
    /// Starts the output (the CSV header row).
    pub fn start(mut out: W, format: Format) -> io::Result<Self> {
        let columns = columns();
        if format == Format::Csv {
            writeln!(out, "{}", columns.join(","))?;
        }
        Ok(ExportWriter {
            out,
            format,
            columns,
        })
    }

    /// Writes one settlement: a JSON line exactly as the HTTP export writes
    /// it, or its values as a CSV row.
    pub fn write(&mut self, settlement: &pb::Settlement) -> io::Result<()> {
        let object = crate::grpc::transcode::settlement_json(settlement);
        match self.format {
            Format::Csv => {
                let row: Vec<String> = self
                    .columns
                    .iter()
                    .map(|c| csv_field(&object.get(c).map(text).unwrap_or_default()))
                    .collect();
                writeln!(self.out, "{}", row.join(","))
            }
            Format::JsonLines => {
                serde_json::to_writer(&mut self.out, &object)?;
                writeln!(self.out)
            }
        }
    }

    /// Flushes and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// A value as CSV text: lists joined with `;`.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(";"),
        other => other.to_string(),
    }
}

/// Quotes a field when it holds a comma, quote or line break (RFC 4180).
fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> pb::Settlement {
        pb::Settlement {
            settlement_id: "0000000000000007".into(),
            hospital_id: "H001".into(),
            claim_id: "C,1".into(),
            year: 2026,
            status: pb::SettlementStatus::Reversed.into(),
            categories: vec![
                pb::Category::MajorDisease.into(),
                pb::Category::Minor.into(),
            ],
            assistance_amount: "7350.00".into(),
            reverse_reason: "said \"no\"".into(),
            diagnosis_codes: vec!["C34.900".into(), "N18".into()],
            settled_at: Some(prost_types::Timestamp {
                seconds: 1_764_518_400,
                nanos: 0,
            }),
            settled_day: "2025-12-01".into(),
            breakdown: Some(pb::SettlementBreakdown {
                explanation: "起付线 500.00 元".into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Proves a CSV row has one field per column, quoting what must be
    /// quoted, and money, enums and business days as the API prints them.
    #[test]
    fn csv_rows_match_the_header() {
        let mut writer = ExportWriter::start(Vec::new(), Format::Csv).unwrap();
        writer.write(&sample()).unwrap();
        let text = String::from_utf8(writer.finish().unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("settlementId,hospitalId,claimId,patientId,"));
        assert!(
            lines[0].ends_with(",claimKind,breakdown,channel,application,supersededBy"),
            "{}",
            lines[0]
        );
        assert_eq!(lines[0].split(',').count(), columns().len());
        let row = lines[1];
        assert!(row.starts_with("0000000000000007,H001,\"C,1\",,2026,SETTLEMENT_STATUS_REVERSED,false,CATEGORY_MAJOR_DISEASE;CATEGORY_MINOR,"), "{row}");
        assert!(row.contains(",7350.00,"), "{row}");
        assert!(
            row.contains(",2025-11-30T16:00:00Z,,\"said \"\"no\"\"\","),
            "{row}"
        );
        assert!(row.contains(",C34.900;N18,"), "{row}");
        // The breakdown, a message, is its JSON in one quoted field.
        assert!(
            row.contains(",2025-12-01,,CLAIM_KIND_UNSPECIFIED,\"{"),
            "{row}"
        );
        assert!(
            row.contains("\"\"explanation\"\":\"\"起付线 500.00 元\"\""),
            "{row}"
        );
    }

    /// Proves a JSON line is one object with the HTTP export's keys, lists
    /// as arrays.
    #[test]
    fn json_lines_hold_every_column() {
        let mut writer = ExportWriter::start(Vec::new(), Format::JsonLines).unwrap();
        writer.write(&sample()).unwrap();
        writer.write(&sample()).unwrap();
        let text = String::from_utf8(writer.finish().unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let object: serde_json::Map<String, Value> = serde_json::from_str(lines[0]).unwrap();
        // Every column but the unset reversal time and application, which
        // JSON leaves out.
        assert_eq!(object.len(), columns().len() - 2, "{object:?}");
        assert_eq!(object["assistanceAmount"], "7350.00");
        assert_eq!(
            object["diagnosisCodes"],
            serde_json::json!(["C34.900", "N18"])
        );
        assert_eq!(object["year"], 2026);
        assert_eq!(object["settledDay"], "2025-12-01");
        assert_eq!(object["claimKind"], "CLAIM_KIND_UNSPECIFIED");
        assert_eq!(object["breakdown"]["explanation"], "起付线 500.00 元");
    }
}
