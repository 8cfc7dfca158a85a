//! `medassist export`: every settlement settled or reversed in a range of
//! business days, as CSV with one header row, or JSON lines. Money and
//! dates are written exactly as the API prints them; enums by their proto
//! names; timestamps in RFC 3339 (UTC). The file is sealed to
//! `--recipient`s when given (see [`crate::seal`]).

use std::{
    io::{self, Write},
    path::PathBuf,
    process::ExitCode,
};

use serde_json::{Map, Value};

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

/// The columns, in `Settlement` field order.
pub const COLUMNS: &[&str] = &[
    "settlement_id",
    "hospital_id",
    "claim_id",
    "patient_id",
    "year",
    "status",
    "eligible",
    "categories",
    "ineligible_reason",
    "in_scope_out_of_pocket",
    "assistance_amount",
    "patient_pays",
    "capped",
    "annual_cap",
    "used_before",
    "remaining_after",
    "policy_id",
    "settled_at",
    "reversed_at",
    "reverse_reason",
    "admission_date",
    "discharge_date",
    "diagnosis_codes",
    "total_cost",
    "in_scope_cost",
    "basic_insurance_paid",
    "critical_illness_paid",
    "region_code",
    "referred",
    "referral_reason",
    "settled_by",
    "reversed_by",
    // The claim kind and the breakdown (issue 21), after every earlier
    // column so that readers of the earlier ones are not disturbed.
    "claim_kind",
    "assisted_class",
    "deductible_consumed",
    "assisted_base",
    "bands",
    "computed",
    "cap_charged",
    "tilted_amount",
    "explanation",
];

/// Writes settlements one at a time, in either format.
pub struct ExportWriter<W: Write> {
    out: W,
    format: Format,
}

impl<W: Write> ExportWriter<W> {
    /// Starts the output (the CSV header row).
    pub fn start(mut out: W, format: Format) -> io::Result<Self> {
        if format == Format::Csv {
            writeln!(out, "{}", COLUMNS.join(","))?;
        }
        Ok(ExportWriter { out, format })
    }

    /// Writes one settlement.
    pub fn write(&mut self, settlement: &pb::Settlement) -> io::Result<()> {
        let values = values(settlement);
        match self.format {
            Format::Csv => {
                let row: Vec<String> = values.iter().map(|v| csv_field(&text(v))).collect();
                writeln!(self.out, "{}", row.join(","))
            }
            Format::JsonLines => {
                let object: Map<String, Value> = COLUMNS
                    .iter()
                    .map(|c| (*c).to_owned())
                    .zip(values)
                    .collect();
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

fn timestamp(at: Option<&prost_types::Timestamp>) -> Value {
    let text = at
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_default();
    Value::String(text)
}

/// The values of the columns, in order.
fn values(s: &pb::Settlement) -> Vec<Value> {
    let text = |t: &str| Value::String(t.to_owned());
    let categories = s
        .categories()
        .map(|c| Value::String(c.as_str_name().to_owned()))
        .collect();
    let codes = s.diagnosis_codes.iter().map(|c| text(c)).collect();
    vec![
        text(&s.settlement_id),
        text(&s.hospital_id),
        text(&s.claim_id),
        text(&s.patient_id),
        Value::from(s.year),
        text(s.status().as_str_name()),
        Value::Bool(s.eligible),
        Value::Array(categories),
        text(s.ineligible_reason().as_str_name()),
        text(&s.in_scope_out_of_pocket),
        text(&s.assistance_amount),
        text(&s.patient_pays),
        Value::Bool(s.capped),
        text(&s.annual_cap),
        text(&s.used_before),
        text(&s.remaining_after),
        text(&s.policy_id),
        timestamp(s.settled_at.as_ref()),
        timestamp(s.reversed_at.as_ref()),
        text(&s.reverse_reason),
        text(&s.admission_date),
        text(&s.discharge_date),
        Value::Array(codes),
        text(&s.total_cost),
        text(&s.in_scope_cost),
        text(&s.basic_insurance_paid),
        text(&s.critical_illness_paid),
        text(&s.region_code),
        Value::Bool(s.referred),
        text(s.referral_reason().as_str_name()),
        text(&s.settled_by),
        text(&s.reversed_by),
        text(s.claim_kind().as_str_name()),
    ]
    .into_iter()
    .chain(breakdown_values(s.breakdown.as_ref()))
    .collect()
}

/// The breakdown's columns; empty for settlements recorded before
/// breakdowns were kept. Each band is `from-up_to@ratio:base=amount`.
fn breakdown_values(b: Option<&pb::SettlementBreakdown>) -> Vec<Value> {
    let Some(b) = b else {
        return vec![Value::String(String::new()); 8];
    };
    let bands = b
        .bands
        .iter()
        .map(|l| {
            Value::String(format!(
                "{}-{}@{}:{}={}",
                l.from, l.up_to, l.ratio, l.base, l.amount
            ))
        })
        .collect();
    [&b.assisted_class, &b.deductible_consumed, &b.base]
        .into_iter()
        .map(|t| Value::String(t.clone()))
        .chain([Value::Array(bands)])
        .chain(
            [
                &b.computed,
                &b.cap_charged,
                &b.tilted_amount,
                &b.explanation,
            ]
            .into_iter()
            .map(|t| Value::String(t.clone())),
        )
        .collect()
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
            ..Default::default()
        }
    }

    /// Proves a CSV row has one field per column, quoting what must be
    /// quoted, and money and enums as the API prints them.
    #[test]
    fn csv_rows_match_the_header() {
        let mut writer = ExportWriter::start(Vec::new(), Format::Csv).unwrap();
        writer.write(&sample()).unwrap();
        let text = String::from_utf8(writer.finish().unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].split(',').count(), COLUMNS.len());
        let row = lines[1];
        assert!(row.starts_with("0000000000000007,H001,\"C,1\",,2026,SETTLEMENT_STATUS_REVERSED,false,CATEGORY_MAJOR_DISEASE;CATEGORY_MINOR,"), "{row}");
        assert!(row.contains(",7350.00,"), "{row}");
        assert!(
            row.contains(",2025-11-30T16:00:00.000000Z,,\"said \"\"no\"\"\","),
            "{row}"
        );
        assert!(row.contains(",C34.900;N18,"), "{row}");
    }

    /// Proves a JSON line is one object with every column, lists as arrays.
    #[test]
    fn json_lines_hold_every_column() {
        let mut writer = ExportWriter::start(Vec::new(), Format::JsonLines).unwrap();
        writer.write(&sample()).unwrap();
        writer.write(&sample()).unwrap();
        let text = String::from_utf8(writer.finish().unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let object: Map<String, Value> = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(object.len(), COLUMNS.len());
        assert_eq!(object["assistance_amount"], "7350.00");
        assert_eq!(
            object["diagnosis_codes"],
            serde_json::json!(["C34.900", "N18"])
        );
        assert_eq!(object["year"], 2026);
        assert_eq!(object["claim_kind"], "CLAIM_KIND_UNSPECIFIED");
        assert_eq!(object["explanation"], "");
    }

    /// Proves the breakdown's columns carry the class, the bands and the
    /// explanation, in both formats.
    #[test]
    fn the_breakdown_is_exported() {
        let settlement = pb::Settlement {
            claim_kind: pb::ClaimKind::Inpatient.into(),
            breakdown: Some(pb::SettlementBreakdown {
                assisted_class: "low_income_margin".into(),
                deductible_consumed: "5000.00".into(),
                base: "15000.00".into(),
                bands: vec![pb::BandLine {
                    from: "0.00".into(),
                    up_to: "50000.00".into(),
                    ratio: "0.60".into(),
                    base: "15000.00".into(),
                    amount: "9000.00".into(),
                }],
                computed: "9000.00".into(),
                cap_charged: "9000.00".into(),
                tilted_amount: "0.00".into(),
                explanation: "起付线 5000.00 元；15000.00 × 60% = 9000.00".into(),
                ..Default::default()
            }),
            ..sample()
        };
        let mut writer = ExportWriter::start(Vec::new(), Format::Csv).unwrap();
        writer.write(&settlement).unwrap();
        let text = String::from_utf8(writer.finish().unwrap()).unwrap();
        let row = text.lines().nth(1).unwrap();
        assert!(row.ends_with(",CLAIM_KIND_INPATIENT,low_income_margin,5000.00,15000.00,0.00-50000.00@0.60:15000.00=9000.00,9000.00,9000.00,0.00,起付线 5000.00 元；15000.00 × 60% = 9000.00"), "{row}");
        let mut writer = ExportWriter::start(Vec::new(), Format::JsonLines).unwrap();
        writer.write(&settlement).unwrap();
        let text = String::from_utf8(writer.finish().unwrap()).unwrap();
        let object: Map<String, Value> = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(object["assisted_class"], "low_income_margin");
        assert_eq!(
            object["bands"],
            serde_json::json!(["0.00-50000.00@0.60:15000.00=9000.00"])
        );
    }
}
