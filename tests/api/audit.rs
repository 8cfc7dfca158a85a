//! The audit trail through real clients: every call leaves a record, whatever
//! its outcome; auditors find who looked at a patient; bulk reads record
//! their start and their end with what was sent (also when the client goes
//! away: proven in `grpc::audit`'s own tests); the chain of a stopped store
//! shows each kind of tampering at the record it touched; the record of a
//! read reaches the store with no write to carry it.

use std::{
    path::Path,
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use medassist::{
    audit::{Query, Record},
    auth::{Access, Role},
    config::Config,
    domain::Timestamp,
    grpc::pb::{
        self, audit_service_client::AuditServiceClient,
        reconciliation_service_client::ReconciliationServiceClient,
        roster_service_client::RosterServiceClient,
        settlement_service_client::SettlementServiceClient,
        usage_service_client::UsageServiceClient,
    },
    ledger::READ_HOLD,
    store::{
        SledOptions, SledStore, Store,
        audit_log::{AuditLog, Frame, read_segment},
    },
};
use tempfile::TempDir;
use tokio_stream::StreamExt as _;
use tonic::{Code, transport::Channel};

use crate::helpers::*;

fn audited_config() -> Config {
    Config {
        access: Access::Tokens(vec![
            token_entry("t-h001", Role::Hospital, Some("H001")),
            token_entry("t-insurer", Role::Insurer, None),
            token_entry("t-roster", Role::RosterAdmin, None),
            token_entry("t-auditor", Role::Auditor, None),
        ]),
        ..Config::default()
    }
}

/// The principal id of a test token.
fn id_of(token: &str) -> String {
    medassist::auth::Principal::id_of(medassist::auth::TokenDigest::of(token))
}

/// Every record of the trail so far, read as the auditor, page by page.
async fn trail(channel: &Channel, patient: Option<&str>) -> Vec<pb::AuditRecord> {
    let mut audit =
        AuditServiceClient::with_interceptor(channel.clone(), bearer(Some("t-auditor")));
    let (mut records, mut token) = (Vec::new(), String::new());
    loop {
        let page = audit
            .list_audit_records(pb::ListAuditRecordsRequest {
                from_time: Some(prost_types::Timestamp {
                    seconds: 0,
                    nanos: 0,
                }),
                to_time: Some(prost_types::Timestamp {
                    seconds: 4_000_000_000,
                    nanos: 0,
                }),
                patient_id: patient.unwrap_or_default().to_owned(),
                page_size: 7,
                page_token: token,
                ..Default::default()
            })
            .await
            .expect("the auditor lists the trail")
            .into_inner();
        records.extend(page.records);
        token = page.next_page_token;
        if token.is_empty() {
            return records;
        }
    }
}

/// The records of one call, in order.
fn of_call<'a>(records: &'a [pb::AuditRecord], call: &str) -> Vec<&'a pb::AuditRecord> {
    records.iter().filter(|r| r.call == call).collect()
}

/// Proves that each call leaves one record with who, from where, what, to
/// whom and how it ended: a settlement (sealed with its write), its replay,
/// an insurer's read, a read with an unknown token (anonymous,
/// UNAUTHENTICATED), a read the role may not make (PERMISSION_DENIED) and a
/// malformed one (INVALID_ARGUMENT); that no record shows a resident ID
/// whole; that the trail is paged in sequence; and that only auditors read
/// it.
#[tokio::test]
async fn every_call_leaves_one_record_whatever_its_outcome() {
    let server = TestServer::start_with(Arc::new(TempDir::new().unwrap()), audited_config()).await;
    let channel = server.channel();
    let patient = resident_id("1960-01-01", 501);
    let mut roster =
        RosterServiceClient::with_interceptor(channel.clone(), bearer(Some("t-roster")));
    roster
        .upsert_person(pb::UpsertPersonRequest {
            person: Some(dibao_person(&patient)),
        })
        .await
        .unwrap();
    let mut hospital =
        SettlementServiceClient::with_interceptor(channel.clone(), bearer(Some("t-h001")));
    let claim = worked_example(&patient, "AUD-1");
    settled(hospital.settle(claim.clone()).await);
    let (_, replayed) = settled(hospital.settle(claim).await);
    assert!(replayed);
    let ask = |token: Option<&'static str>, patient: &str| {
        let mut usage = UsageServiceClient::with_interceptor(channel.clone(), bearer(token));
        let request = pb::GetAnnualUsageRequest {
            patient_id: patient.to_owned(),
            year: 2026,
        };
        async move { usage.get_annual_usage(request).await.map(drop) }
    };
    ask(Some("t-insurer"), &patient).await.unwrap();
    let unknown = ask(Some("t-nobody"), &patient).await.unwrap_err();
    assert_eq!(unknown.code(), Code::Unauthenticated);
    let denied = ask(Some("t-h001"), &patient).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let invalid = ask(Some("t-insurer"), "not an id").await.unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);

    let records = trail(&channel, None).await;
    for (i, record) in records.iter().enumerate() {
        assert_eq!(
            record.seq,
            i as u64 + 1,
            "the trail is in sequence: {records:#?}"
        );
        assert!(
            !record.peer.is_empty(),
            "every record says where from: {record:?}"
        );
        let text = format!("{record:?}");
        assert!(!text.contains(&patient), "a whole resident ID in {text}");
    }
    let settles = of_call(&records, "medassist.v1.SettlementService/Settle");
    assert_eq!(settles.len(), 2, "{settles:#?}");
    assert_eq!(settles[0].principal, id_of("t-h001"));
    assert_eq!(settles[0].principal_name, "test t-h001");
    assert!(
        settles[0].detail.starts_with("settlement "),
        "sealed with the write: {settles:?}"
    );
    assert_eq!(settles[1].detail, "replay");
    assert!(
        settles
            .iter()
            .all(|r| r.subject.contains("claim H001/AUD-1 patient 320602"))
    );
    let reads = of_call(&records, "medassist.v1.UsageService/GetAnnualUsage");
    let outcomes: Vec<(&str, &str)> = reads
        .iter()
        .map(|r| (r.principal.as_str(), r.code.as_str()))
        .collect();
    let insurer = id_of("t-insurer");
    let h001 = id_of("t-h001");
    assert_eq!(
        outcomes,
        [
            (insurer.as_str(), "OK"),
            ("anonymous", "UNAUTHENTICATED"),
            (h001.as_str(), "PERMISSION_DENIED"),
            (insurer.as_str(), "INVALID_ARGUMENT"),
        ]
    );
    assert_eq!(reads[1].detail, "unknown token");

    let mut insurer_reads_trail =
        AuditServiceClient::with_interceptor(channel.clone(), bearer(Some("t-insurer")));
    let refused = insurer_reads_trail
        .list_audit_records(pb::ListAuditRecordsRequest {
            from_time: Some(prost_types::Timestamp::default()),
            to_time: Some(prost_types::Timestamp::default()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
}

/// Proves "who looked at this patient's record": the trail filtered by
/// patient holds the calls that named that patient and no other, and a
/// roster write says what it changed, without the certified conditions'
/// values.
#[tokio::test]
async fn an_auditor_finds_who_looked_at_a_patient() {
    let server = TestServer::start_with(Arc::new(TempDir::new().unwrap()), audited_config()).await;
    let channel = server.channel();
    let (watched, other) = (
        resident_id("1960-01-01", 511),
        resident_id("1960-01-01", 512),
    );
    let mut roster =
        RosterServiceClient::with_interceptor(channel.clone(), bearer(Some("t-roster")));
    for id in [&watched, &other] {
        roster
            .upsert_person(pb::UpsertPersonRequest {
                person: Some(dibao_person(id)),
            })
            .await
            .unwrap();
    }
    let mut changed = dibao_person(&watched);
    changed.paralysis_certified = true;
    roster
        .upsert_person(pb::UpsertPersonRequest {
            person: Some(changed),
        })
        .await
        .unwrap();
    let mut insurer =
        UsageServiceClient::with_interceptor(channel.clone(), bearer(Some("t-insurer")));
    for id in [&watched, &other, &watched] {
        insurer
            .get_annual_usage(pb::GetAnnualUsageRequest {
                patient_id: id.clone(),
                year: 2026,
            })
            .await
            .unwrap();
    }
    let about = trail(&channel, Some(&watched)).await;
    let calls: Vec<(&str, &str)> = about
        .iter()
        .map(|r| (r.call.as_str(), r.principal.as_str()))
        .collect();
    let (roster_id, insurer_id) = (id_of("t-roster"), id_of("t-insurer"));
    assert_eq!(
        calls,
        [
            (
                "medassist.v1.RosterService/UpsertPerson",
                roster_id.as_str()
            ),
            (
                "medassist.v1.RosterService/UpsertPerson",
                roster_id.as_str()
            ),
            (
                "medassist.v1.UsageService/GetAnnualUsage",
                insurer_id.as_str()
            ),
            (
                "medassist.v1.UsageService/GetAnnualUsage",
                insurer_id.as_str()
            ),
        ]
    );
    assert!(
        about[0].detail.starts_with("created in region 320602"),
        "{about:?}"
    );
    assert_eq!(about[1].detail, "changed: paralysis_certified");
}

/// Proves a bulk read records its start and its end with the count sent.
/// (An export the client abandons is proven where buffering cannot hide
/// it: `grpc::audit`'s own tests drop the body half-way.)
#[tokio::test]
async fn bulk_reads_record_their_start_and_their_end() {
    let server = TestServer::start_with(Arc::new(TempDir::new().unwrap()), audited_config()).await;
    let channel = server.channel();
    let patient = resident_id("1960-01-01", 521);
    let mut roster =
        RosterServiceClient::with_interceptor(channel.clone(), bearer(Some("t-roster")));
    roster
        .upsert_person(pb::UpsertPersonRequest {
            person: Some(dibao_person(&patient)),
        })
        .await
        .unwrap();
    let mut hospital =
        SettlementServiceClient::with_interceptor(channel.clone(), bearer(Some("t-h001")));
    for n in 0..40 {
        settled(
            hospital
                .settle(claim_paying_7000(&patient, &format!("BULK-{n}")))
                .await,
        );
    }
    let mut auditor =
        ReconciliationServiceClient::with_interceptor(channel.clone(), bearer(Some("t-auditor")));
    let export = || pb::ExportSettlementsRequest {
        from_date: "2026-01-01".into(),
        to_date: "2026-12-31".into(),
        hospital_id: "H001".into(),
    };
    let whole: Vec<_> = auditor
        .export_settlements(export())
        .await
        .unwrap()
        .into_inner()
        .collect()
        .await;
    assert_eq!(whole.len(), 40);
    let records = trail(&channel, None).await;
    let exports = of_call(
        &records,
        "medassist.v1.ReconciliationService/ExportSettlements",
    );
    let phases: Vec<(&str, &str)> = exports
        .iter()
        .map(|r| (r.phase.as_str(), r.code.as_str()))
        .collect();
    assert_eq!(phases, [("start", "OK"), ("end", "OK")], "{exports:#?}");
    assert_eq!((exports[0].count, exports[1].count), (0, 40));
    assert!(
        exports[0]
            .subject
            .contains("hospital H001 days 2026-01-01..2026-12-31")
    );
}

/// Proves that the record of a read is committed with no write after it and
/// no reader of the trail to ask for it: read records wait for a write to
/// carry them at most [`READ_HOLD`], then are committed on their own. Read
/// straight from the store, since the auditor's RPC first commits whatever
/// waits. On the embedded store only: the ledger is the same on both.
#[tokio::test]
async fn a_read_alone_reaches_the_trail() {
    let dir = Arc::new(TempDir::new().unwrap());
    std::fs::create_dir_all(data_dir(&dir)).unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SledStore::open(&data_dir(&dir), SledOptions::default()).unwrap());
    let server = TestServer::start_with_store(dir, Arc::clone(&store)).await;
    let patient = server.enroll("1960-01-01", 521).await;
    server.annual_usage(&patient, 2026).await;
    let everything = Query {
        from: Timestamp::from_unix_micros(0),
        to: Timestamp::from_unix_micros(i64::MAX),
        principal: None,
        patient: None,
    };
    // Far past the hold: a record still missing then is one nobody commits.
    let deadline = Instant::now() + READ_HOLD * 100;
    loop {
        let page = store.audit_records(&everything, None, 100).unwrap();
        let calls: Vec<&str> = page.records.iter().map(|r| r.event.call.as_str()).collect();
        if calls.contains(&"medassist.v1.UsageService/GetAnnualUsage") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the read's record is not in the store: {calls:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.stop().await;
}

/// The records of a stopped store's trail, read from its segment files.
fn stored(data: &Path) -> (std::path::PathBuf, Vec<Record>) {
    let path = AuditLog::segment_paths(data).unwrap().remove(0);
    let mut records = Vec::new();
    read_segment(&path, |frame| {
        if let Frame::Record(record) = frame {
            records.push(*record);
        }
        Ok(true)
    })
    .unwrap();
    (path, records)
}

/// Writes `records` as the segment's frames, each with a valid checksum, as
/// a tamperer would.
fn rewrite(path: &Path, records: &[Record]) {
    let mut bytes = Vec::new();
    for record in records {
        let body = postcard::to_stdvec(record).unwrap();
        bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        bytes.extend_from_slice(&body);
    }
    std::fs::write(path, bytes).unwrap();
}

/// `medassist audit verify` on `data`: its exit status and what it said.
fn audit_verify(data: &Path) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_medassist"))
        .args(["audit", "verify", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

/// Proves the chain shows tampering in a stopped store: a record's outcome
/// changed, a record removed, a forged record inserted, two records swapped
/// are each reported at the first sequence number they touch, and the
/// untouched trail checks whole. On the embedded store only: it edits files.
#[tokio::test]
async fn audit_verify_names_each_kind_of_tampering() {
    if crate::backend::on_postgres() {
        return;
    }
    let server = TestServer::start_with(Arc::new(TempDir::new().unwrap()), audited_config()).await;
    let patient = resident_id("1960-01-01", 531);
    RosterServiceClient::with_interceptor(server.channel(), bearer(Some("t-roster")))
        .upsert_person(pb::UpsertPersonRequest {
            person: Some(dibao_person(&patient)),
        })
        .await
        .unwrap();
    let mut usage =
        UsageServiceClient::with_interceptor(server.channel(), bearer(Some("t-insurer")));
    for _ in 0..12 {
        usage
            .get_annual_usage(pb::GetAnnualUsageRequest {
                patient_id: patient.clone(),
                year: 2026,
            })
            .await
            .unwrap();
    }
    let dir = server.stop().await;
    let data = data_dir(&dir);
    let (whole, said) = audit_verify(&data);
    assert!(whole, "{said}");
    assert!(said.contains("13 records checked"), "{said}");
    let (path, good) = stored(&data);

    let mut changed = good.clone();
    changed[5].event.code = "PERMISSION_DENIED".into();
    let mut removed = good.clone();
    removed.remove(7);
    let mut inserted = good.clone();
    let mut forged = good[3].clone();
    forged.event.principal = "token:ffffffffffffffff".into();
    inserted.insert(4, forged);
    let mut swapped = good.clone();
    swapped.swap(8, 9);
    for (what, records, seq) in [
        ("changed", changed, 6),
        ("removed", removed, 8),
        ("inserted", inserted, 5),
        ("swapped", swapped, 9),
    ] {
        rewrite(&path, &records);
        let (whole, said) = audit_verify(&data);
        assert!(!whole, "{what}: {said}");
        assert!(
            said.contains(&format!(" sequence {seq}: ")) && said.contains("breaks at chain"),
            "{what}: {said}"
        );
    }
    rewrite(&path, &good);
    assert!(audit_verify(&data).0, "the original checks whole again");
}
