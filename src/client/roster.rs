//! `medassist roster import` and `medassist roster export`: the roster as
//! a CSV file, the way civil affairs systems exchange it.
//!
//! The layout is one row per enrollment, the person's fields repeated on
//! each of their rows, a person's rows adjacent; a person with no
//! enrollment has one row with the enrollment columns empty:
//!
//! ```text
//! patient_id,name,region_code,psychiatric_disability_grade,paralysis_certified,enrollment_kind,valid_from,valid_to,exit
//! 320602196001010612,张三,320602,0,false,DIBAO,2020-01-01,2025-11-30,GRADUAL_EXIT
//! 320602196001010612,张三,320602,0,false,REGISTERED_POOR,2016-01-01,2020-12-31,LEFT_POVERTY
//! 320602195002030313,李四,320602,2,true,,,,
//! ```
//!
//! Export writes the same layout ordered by patient ID, so an export imports
//! back `unchanged` and `diff` of two exports is a ledger comparison. It is
//! sealed to `--recipient`s when given (see [`crate::seal`]): open it with
//! `age -d` before comparing.

use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
    process::ExitCode,
};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{Client, ClientError, Connection, Output, count_progress};
use crate::{
    domain::EnrollmentKind,
    grpc::pb,
    seal::{Recipients, Sink},
};

/// Records queued for the server ahead of its answers.
const SEND_AHEAD: usize = 1024;

/// The header row, in the order export writes it; import takes the columns
/// in any order, but all of them and no others.
pub const HEADER: [&str; 9] = [
    "patient_id",
    "name",
    "region_code",
    "psychiatric_disability_grade",
    "paralysis_certified",
    "enrollment_kind",
    "valid_from",
    "valid_to",
    "exit",
];

/// How the file's text is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8, with or without a byte-order mark.
    Utf8,
    /// GBK as government systems write it (read as GB 18030, its superset;
    /// written as GB 18030 so no name is ever lost).
    Gbk,
}

impl Encoding {
    fn of(self) -> &'static encoding_rs::Encoding {
        match self {
            Encoding::Utf8 => encoding_rs::UTF_8,
            Encoding::Gbk => encoding_rs::GB18030,
        }
    }
}

/// Reads a whole file as text in `encoding`; bytes that are not valid in
/// it are refused, naming the encoding to try.
pub fn read_text(path: &Path, encoding: Encoding) -> Result<String, String> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut file| file.read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (text, had_errors) = encoding.of().decode_with_bom_removal(&bytes);
    if had_errors {
        return Err(match encoding {
            Encoding::Utf8 => format!(
                "{} is not UTF-8 text; if it came from a GBK system, add --encoding gbk",
                path.display()
            ),
            Encoding::Gbk => format!("{} is not GBK text", path.display()),
        });
    }
    Ok(text.into_owned())
}

/// Encodes `text` for writing.
pub fn encode(text: &str, encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Utf8 => text.as_bytes().to_vec(),
        Encoding::Gbk => encoding_rs::GB18030.encode(text).0.into_owned(),
    }
}

/// One problem, where a clerk can find it: the file line and the column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line of the file (the header is line 1).
    pub line: u64,
    /// The column, as the header names it (empty: the row as a whole).
    pub column: String,
    /// What is wrong.
    pub reason: String,
}

/// One person read from the file, with the line of each of their rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    /// The record, as the wire carries it (unchecked: the server checks).
    pub person: pb::Person,
    /// The file line of each row; enrollment `i` is on `lines[i]`.
    pub lines: Vec<u64>,
}

/// What reading one person's rows gave.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// A person to send.
    Person(Group),
    /// A person whose rows cannot even be sent (a value of no known form).
    Rejected(Vec<RowError>),
}

/// Column positions, from the header row.
struct Columns([usize; 9]);

impl Columns {
    fn of(header: &csv::StringRecord) -> Result<Columns, String> {
        let mut positions = [usize::MAX; 9];
        for (at, name) in header.iter().enumerate() {
            let name = name.trim();
            let Some(which) = HEADER.iter().position(|h| *h == name) else {
                return Err(format!(
                    "the header has an unknown column {name:?}; the columns are {}",
                    HEADER.join(",")
                ));
            };
            if positions[which] != usize::MAX {
                return Err(format!("the header names column {name:?} twice"));
            }
            positions[which] = at;
        }
        if let Some(missing) = positions.iter().position(|p| *p == usize::MAX) {
            return Err(format!(
                "the header lacks column {:?}; the columns are {}",
                HEADER[missing],
                HEADER.join(",")
            ));
        }
        Ok(Columns(positions))
    }

    fn get<'r>(&self, record: &'r csv::StringRecord, column: usize) -> &'r str {
        record.get(self.0[column]).unwrap_or("")
    }
}

/// One data row, as text.
struct Row {
    line: u64,
    fields: [String; 9],
}

/// Reads the roster CSV in `text` person by person. Fails (before any
/// person) only when the header is malformed.
pub fn read_people(text: &str) -> Result<impl Iterator<Item = Item> + '_, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| format!("cannot read the header row: {e}"))?
        .clone();
    if header.iter().all(|h| h.trim().is_empty()) {
        return Err("the file is empty: it needs a header row".into());
    }
    let columns = Columns::of(&header)?;
    let mut rows = reader.into_records().map(move |record| match record {
        Err(error) => Err(RowError {
            line: error.position().map_or(0, |p| p.line()),
            column: String::new(),
            reason: format!("cannot be read as CSV: {error}"),
        }),
        Ok(record) => {
            let line = record.position().map_or(0, |p| p.line());
            if record.len() != HEADER.len() {
                return Err(RowError {
                    line,
                    column: String::new(),
                    reason: format!("has {} fields, the header {}", record.len(), HEADER.len()),
                });
            }
            Ok(Row {
                line,
                // Codes and dates are trimmed; a name is kept as stored, so
                // an export imports back unchanged.
                fields: std::array::from_fn(|i| match i {
                    1 => columns.get(&record, i).to_owned(),
                    _ => columns.get(&record, i).trim().to_owned(),
                }),
            })
        }
    });
    let mut next_row = rows.next();
    Ok(std::iter::from_fn(move || {
        let first = next_row.take()?;
        let first = match first {
            Ok(row) => row,
            Err(error) => {
                next_row = rows.next();
                return Some(Item::Rejected(vec![error]));
            }
        };
        // The person's other rows follow with the same patient ID.
        let mut group = vec![first];
        loop {
            next_row = rows.next();
            match &next_row {
                Some(Ok(row)) if row.fields[0] == group[0].fields[0] => {
                    if let Some(Ok(row)) = next_row.take() {
                        group.push(row);
                    }
                }
                _ => break,
            }
        }
        Some(person_of(&group))
    }))
}

/// Builds one person from their rows; values of no known form (and person
/// fields that differ between the rows) are reported, by line and column.
fn person_of(rows: &[Row]) -> Item {
    let first = &rows[0];
    let mut errors = Vec::new();
    let mut error = |line: u64, column: usize, reason: String| {
        errors.push(RowError {
            line,
            column: HEADER[column].to_owned(),
            reason,
        });
    };
    for row in &rows[1..] {
        for column in 1..5 {
            if row.fields[column] != first.fields[column] {
                error(
                    row.line,
                    column,
                    format!("differs from line {}, the person's first row", first.line),
                );
            }
        }
    }
    let grade = match first.fields[3].as_str() {
        "" => Some(0),
        text => text.parse::<i32>().ok(),
    };
    if grade.is_none() {
        error(first.line, 3, "must be a number, 0 to 4".into());
    }
    let paralysis = match first.fields[4].as_str() {
        "" | "false" | "0" | "否" => Some(false),
        "true" | "1" | "是" => Some(true),
        _ => None,
    };
    if paralysis.is_none() {
        error(first.line, 4, "must be true or false".into());
    }
    let mut enrollments = Vec::new();
    for row in rows {
        let [kind, from, to, exit] = [5, 6, 7, 8].map(|c| row.fields[c].as_str());
        if [kind, from, to, exit].iter().all(|f| f.is_empty()) {
            if rows.len() > 1 {
                error(row.line, 5, "empty in a person with several rows".into());
            }
            continue;
        }
        let kind = enrollment_kind(kind);
        if kind.is_none() {
            error(
                row.line,
                5,
                "must be DIBAO, TEKUN, LOW_INCOME_FAMILY, REGISTERED_POOR, MONITORED_FOR_RETURN, LOW_INCOME_MARGIN or IMPOVERISHED_BY_ILLNESS (or their Chinese names)".into(),
            );
        }
        let exit = exit_kind(exit);
        if exit.is_none() {
            error(
                row.line,
                8,
                "must be empty, GRADUAL_EXIT or LEFT_POVERTY".into(),
            );
        }
        enrollments.push(pb::Enrollment {
            kind: kind.unwrap_or_default().into(),
            valid_from: from.to_owned(),
            valid_to: to.to_owned(),
            exit: exit.unwrap_or_default().into(),
        });
    }
    if !errors.is_empty() {
        return Item::Rejected(errors);
    }
    Item::Person(Group {
        person: pb::Person {
            patient_id: first.fields[0].clone(),
            name: first.fields[1].clone(),
            region_code: first.fields[2].clone(),
            enrollments,
            psychiatric_disability_grade: grade.unwrap_or_default(),
            paralysis_certified: paralysis.unwrap_or_default(),
        },
        lines: rows.iter().map(|r| r.line).collect(),
    })
}

/// The kind column: the wire's name, or the Chinese one (the classes of the
/// 2021 framework too: `低保边缘`, `防返贫监测对象`, `因病致贫重病患者`).
fn enrollment_kind(text: &str) -> Option<pb::EnrollmentKind> {
    if text.is_empty() {
        return Some(pb::EnrollmentKind::Unspecified);
    }
    Some(match EnrollmentKind::parse_name(text).ok()? {
        EnrollmentKind::Dibao => pb::EnrollmentKind::Dibao,
        EnrollmentKind::Tekun => pb::EnrollmentKind::Tekun,
        EnrollmentKind::LowIncomeFamily => pb::EnrollmentKind::LowIncomeFamily,
        EnrollmentKind::RegisteredPoor => pb::EnrollmentKind::RegisteredPoor,
        EnrollmentKind::MonitoredForReturn => pb::EnrollmentKind::MonitoredForReturn,
        EnrollmentKind::LowIncomeMargin => pb::EnrollmentKind::LowIncomeMargin,
        EnrollmentKind::ImpoverishedByIllness => pb::EnrollmentKind::ImpoverishedByIllness,
    })
}

fn exit_kind(text: &str) -> Option<pb::ExitKind> {
    Some(match text {
        "" => pb::ExitKind::Unspecified,
        "GRADUAL_EXIT" | "缓退" => pb::ExitKind::GradualExit,
        "LEFT_POVERTY" | "脱贫" => pb::ExitKind::LeftPoverty,
        _ => return None,
    })
}

/// Where a server's field violation is in the file: the line of the
/// enrollment it names (else the person's first line) and the column.
pub fn locate(group_lines: &[u64], field: &str) -> (u64, String) {
    let field = field.strip_prefix("person.").unwrap_or(field);
    let first = group_lines.first().copied().unwrap_or(0);
    if let Some(rest) = field.strip_prefix("enrollments[")
        && let Some((index, column)) = rest.split_once("].")
        && let Ok(index) = index.parse::<usize>()
    {
        let line = group_lines.get(index).copied().unwrap_or(first);
        let column = if column == "kind" {
            "enrollment_kind"
        } else {
            column
        };
        return (line, column.to_owned());
    }
    let column = match field {
        "person" => "",
        "enrollments" => "enrollment_kind",
        other => other,
    };
    (first, column.to_owned())
}

/// Writes the header row.
pub fn write_header<W: Write>(out: &mut csv::Writer<W>) -> csv::Result<()> {
    out.write_record(HEADER)
}

/// Writes one person's rows.
pub fn write_person<W: Write>(out: &mut csv::Writer<W>, person: &pb::Person) -> csv::Result<()> {
    let grade = person.psychiatric_disability_grade.to_string();
    let paralysis = if person.paralysis_certified {
        "true"
    } else {
        "false"
    };
    let head = [
        person.patient_id.as_str(),
        person.name.as_str(),
        person.region_code.as_str(),
        grade.as_str(),
        paralysis,
    ];
    if person.enrollments.is_empty() {
        return out.write_record(head.iter().chain(&["", "", "", ""]));
    }
    for e in &person.enrollments {
        let kind = match e.kind() {
            pb::EnrollmentKind::Unspecified => "",
            pb::EnrollmentKind::Dibao => "DIBAO",
            pb::EnrollmentKind::Tekun => "TEKUN",
            pb::EnrollmentKind::LowIncomeFamily => "LOW_INCOME_FAMILY",
            pb::EnrollmentKind::RegisteredPoor => "REGISTERED_POOR",
            pb::EnrollmentKind::MonitoredForReturn => "MONITORED_FOR_RETURN",
            pb::EnrollmentKind::LowIncomeMargin => "LOW_INCOME_MARGIN",
            pb::EnrollmentKind::ImpoverishedByIllness => "IMPOVERISHED_BY_ILLNESS",
        };
        let exit = match e.exit() {
            pb::ExitKind::Unspecified => "",
            pb::ExitKind::GradualExit => "GRADUAL_EXIT",
            pb::ExitKind::LeftPoverty => "LEFT_POVERTY",
        };
        let tail = [kind, e.valid_from.as_str(), e.valid_to.as_str(), exit];
        out.write_record(head.iter().chain(&tail))?;
    }
    Ok(())
}

/// The lines of each person sent, by their index in the stream, to turn
/// the server's rejections into file lines.
#[derive(Default)]
pub struct LineMap {
    starts: Vec<u32>,
    lines: Vec<u64>,
}

impl LineMap {
    /// Notes the next person's lines.
    pub fn push(&mut self, lines: &[u64]) {
        self.starts
            .push(u32::try_from(self.lines.len()).unwrap_or(u32::MAX));
        self.lines.extend_from_slice(lines);
    }

    /// The lines of the person at `index`.
    pub fn get(&self, index: usize) -> &[u64] {
        let Some(&start) = self.starts.get(index) else {
            return &[];
        };
        let end = self
            .starts
            .get(index + 1)
            .map_or(self.lines.len(), |e| *e as usize);
        &self.lines[start as usize..end]
    }
}

/// What `medassist roster import` is asked to do.
#[derive(Debug)]
pub struct ImportOptions {
    /// The server, and how to reach it (a roster_admin token).
    pub connection: Connection,
    /// The CSV file.
    pub file: PathBuf,
    /// Its encoding.
    pub encoding: Encoding,
}

/// Reads the file, streams it to ImportPersons, prints the summary and each
/// rejected row. Exits 0 when every row was accepted, 1 when some were
/// rejected (the rest are in); an `Err` (exit 2) when nothing could be done.
pub async fn import(options: ImportOptions) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let text = read_text(&options.file, options.encoding)?;
    let items = read_people(&text).map_err(|e| format!("{}: {e}", options.file.display()))?;
    let client = Client::connect(&options.connection).await?;
    let (records, queue) = mpsc::channel(SEND_AHEAD);
    let request = client.request(ReceiverStream::new(queue));
    let mut roster = client.roster();
    let call = tokio::spawn(async move { roster.import_persons(request).await });
    let bar = count_progress("importing people");
    let (mut lines, mut problems) = (LineMap::default(), Vec::new());
    let (mut people, mut rejected_here) = (0u64, 0u64);
    for item in items {
        people += 1;
        match item {
            Item::Rejected(errors) => {
                rejected_here += 1;
                problems.extend(errors);
            }
            Item::Person(group) => {
                lines.push(&group.lines);
                let record = pb::UpsertPersonRequest {
                    person: Some(group.person),
                };
                // A closed queue means the call ended; its status says why.
                if records.send(record).await.is_err() {
                    break;
                }
            }
        }
        bar.inc(1);
    }
    drop(records);
    let answer = call
        .await
        .map_err(|e| format!("the import task failed: {e}"))?
        .map_err(|status| {
            format!(
                "{}; batches already committed stay, and importing the file again is safe",
                ClientError::from(status)
            )
        })?
        .into_inner();
    bar.finish_and_clear();
    let rejected_there = answer.received - answer.created - answer.updated - answer.unchanged;
    let rejected_people = rejected_here + u64::try_from(rejected_there).unwrap_or(0);
    for error in &answer.errors {
        let person_lines = lines.get(usize::try_from(error.index).unwrap_or(usize::MAX));
        for violation in &error.violations {
            let (line, column) = locate(person_lines, &violation.field);
            problems.push(RowError {
                line,
                column,
                reason: violation.description.clone(),
            });
        }
    }
    problems.sort_by_key(|p| p.line);
    println!(
        "{}: {people} people: {} created, {} updated, {} unchanged, {rejected_people} rejected",
        options.file.display(),
        answer.created,
        answer.updated,
        answer.unchanged,
    );
    for problem in &problems {
        match problem.column.as_str() {
            "" => println!("line {}: {}", problem.line, problem.reason),
            column => println!("line {}, {column}: {}", problem.line, problem.reason),
        }
    }
    let unlisted = i64::from(rejected_there) - i64::try_from(answer.errors.len()).unwrap_or(0);
    if unlisted > 0 {
        println!(
            "({unlisted} more rejected records are not listed: the server lists the first 1000)"
        );
    }
    Ok(if rejected_people == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What `medassist roster export` is asked to do.
#[derive(Debug)]
pub struct ExportOptions {
    /// The server, and how to reach it (a roster_admin or auditor token).
    pub connection: Connection,
    /// A region code, or everyone.
    pub region: Option<String>,
    /// Where to write; standard output when `None`.
    pub output: Option<PathBuf>,
    /// The encoding to write.
    pub encoding: Encoding,
    /// Who to seal the output to (none: it is written plain).
    pub recipients: Recipients,
}

/// Streams ExportPersons into the CSV layout import reads; a file appears
/// only whole.
pub async fn export(options: ExportOptions) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let client = Client::connect(&options.connection).await?;
    let request = client.request(pb::ExportPersonsRequest {
        region_code: options.region.clone().unwrap_or_default(),
    });
    let mut stream = client
        .roster()
        .export_persons(request)
        .await
        .map_err(ClientError::from)?
        .into_inner();
    let output = Output::open(options.output.as_deref(), !options.recipients.is_empty())?;
    let mut out = Sink::new(output, &options.recipients)?;
    let mut header = csv::Writer::from_writer(Vec::new());
    write_header(&mut header)?;
    out.write_all(&encode(
        &String::from_utf8(header.into_inner()?)?,
        options.encoding,
    ))?;
    let bar = count_progress("exporting people");
    let mut people = 0u64;
    while let Some(person) = stream.message().await.map_err(ClientError::from)? {
        // One small writer per person, so each is encoded whole.
        let mut rows = csv::WriterBuilder::new()
            .buffer_capacity(512)
            .from_writer(Vec::new());
        write_person(&mut rows, &person)?;
        let text = String::from_utf8(rows.into_inner()?)?;
        out.write_all(&encode(&text, options.encoding))?;
        people += 1;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let sealed = out.is_sealed();
    out.finish()?.commit()?;
    if let Some(path) = &options.output {
        eprintln!(
            "exported {people} people to {}{}",
            path.display(),
            if sealed { ", encrypted (age)" } else { "" }
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
patient_id,name,region_code,psychiatric_disability_grade,paralysis_certified,enrollment_kind,valid_from,valid_to,exit
320602196001010612,张三,320602,0,false,DIBAO,2020-01-01,2025-11-30,GRADUAL_EXIT
320602196001010612,张三,320602,0,false,REGISTERED_POOR,2016-01-01,2020-12-31,LEFT_POVERTY
320602195002030313,李四,320602,2,true,,,,
";

    fn people(text: &str) -> Vec<Item> {
        read_people(text).unwrap().collect()
    }

    /// Proves a person's adjacent rows make one record with one enrollment
    /// per row, and that writing the records gives back the same file.
    #[test]
    fn rows_group_into_people_and_write_back_the_same() {
        let items = people(FILE);
        let persons: Vec<pb::Person> = items
            .iter()
            .map(|item| match item {
                Item::Person(group) => group.person.clone(),
                Item::Rejected(errors) => panic!("{errors:?}"),
            })
            .collect();
        assert_eq!(persons.len(), 2);
        assert_eq!(persons[0].enrollments.len(), 2);
        assert_eq!(persons[0].name, "张三");
        assert_eq!(persons[1].psychiatric_disability_grade, 2);
        assert!(persons[1].paralysis_certified && persons[1].enrollments.is_empty());
        let Item::Person(first) = &items[0] else {
            unreachable!()
        };
        assert_eq!(first.lines, [2, 3]);
        let mut out = csv::Writer::from_writer(Vec::new());
        write_header(&mut out).unwrap();
        for person in &persons {
            write_person(&mut out, person).unwrap();
        }
        assert_eq!(String::from_utf8(out.into_inner().unwrap()).unwrap(), FILE);
    }

    /// Proves values of no known form are reported by line and column, and
    /// a malformed header is refused as a whole.
    #[test]
    fn unreadable_values_name_their_line_and_column() {
        let text = FILE.replace("0,false,REGISTERED_POOR", "0,false,POOR");
        let items = people(&text);
        let Item::Rejected(errors) = &items[0] else {
            panic!("{items:?}")
        };
        assert_eq!(
            errors,
            &[RowError {
                line: 3,
                column: "enrollment_kind".into(),
                reason: "must be DIBAO, TEKUN, LOW_INCOME_FAMILY, REGISTERED_POOR, MONITORED_FOR_RETURN, LOW_INCOME_MARGIN or IMPOVERISHED_BY_ILLNESS (or their Chinese names)".into()
            }]
        );
        assert!(matches!(items[1], Item::Person(_)));
        assert!(read_people("patient_id,name\n1,2\n").is_err());
        assert!(read_people("").is_err());
    }

    /// Proves the kind column reads the 2021 framework's classes by their
    /// Chinese names as civil affairs files write them, and by wire names.
    #[test]
    fn classes_are_read_by_their_chinese_names() {
        let rows = [
            ("低保边缘", pb::EnrollmentKind::LowIncomeMargin),
            ("低保边缘家庭", pb::EnrollmentKind::LowIncomeMargin),
            ("防返贫监测对象", pb::EnrollmentKind::MonitoredForReturn),
            ("监测对象", pb::EnrollmentKind::MonitoredForReturn),
            (
                "因病致贫重病患者",
                pb::EnrollmentKind::ImpoverishedByIllness,
            ),
            (
                "IMPOVERISHED_BY_ILLNESS",
                pb::EnrollmentKind::ImpoverishedByIllness,
            ),
            ("特困", pb::EnrollmentKind::Tekun),
            ("建档立卡", pb::EnrollmentKind::RegisteredPoor),
        ];
        for (text, kind) in rows {
            let file = FILE.replacen("DIBAO", text, 1);
            let Item::Person(group) = &people(&file)[0] else {
                panic!("{text} refused")
            };
            assert_eq!(group.person.enrollments[0].kind(), kind, "{text}");
        }
    }

    /// Proves the server's field paths land on the row of the enrollment
    /// they name.
    #[test]
    fn violations_land_on_their_rows() {
        assert_eq!(
            locate(&[7, 8, 9], "person.enrollments[2].valid_to"),
            (9, "valid_to".to_owned())
        );
        assert_eq!(
            locate(&[7, 8], "person.enrollments[0].kind"),
            (7, "enrollment_kind".to_owned())
        );
        assert_eq!(locate(&[7, 8], "person.name"), (7, "name".to_owned()));
        let mut map = LineMap::default();
        map.push(&[2, 3]);
        map.push(&[4]);
        assert_eq!(
            (map.get(0), map.get(1), map.get(2)),
            (&[2, 3][..], &[4][..], &[][..])
        );
    }

    /// Proves GBK text reads back as the same names.
    #[test]
    fn gbk_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gbk.csv");
        std::fs::write(&path, encode(FILE, Encoding::Gbk)).unwrap();
        assert_eq!(read_text(&path, Encoding::Gbk).unwrap(), FILE);
        assert!(
            read_text(&path, Encoding::Utf8)
                .unwrap_err()
                .contains("--encoding gbk")
        );
    }
}
