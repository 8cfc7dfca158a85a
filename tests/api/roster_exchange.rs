//! Roster exchange through a real client: ImportPersons and ExportPersons.

use medassist::grpc::pb;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

use crate::helpers::*;

/// `count` dibao members of county 320602, ten born on each new year's
/// day from 1930 on (`first_sequence` picks the sequence numbers).
fn people(count: u16, first_sequence: u16) -> Vec<pb::Person> {
    (0..count)
        .map(|i| {
            let birth = format!("{}-01-01", 1930 + i / 900);
            dibao_person(&resident_id(&birth, first_sequence + i % 900))
        })
        .collect()
}

fn requests(people: &[pb::Person]) -> Vec<pb::UpsertPersonRequest> {
    people
        .iter()
        .map(|p| pb::UpsertPersonRequest {
            person: Some(p.clone()),
        })
        .collect()
}

async fn import(
    server: &TestServer,
    records: Vec<pb::UpsertPersonRequest>,
) -> pb::ImportPersonsResponse {
    server
        .roster()
        .import_persons(tokio_stream::iter(records))
        .await
        .expect("the import runs")
        .into_inner()
}

async fn export(server: &TestServer, region: &str) -> Result<Vec<pb::Person>, tonic::Status> {
    let mut stream = server
        .roster()
        .export_persons(pb::ExportPersonsRequest {
            region_code: region.into(),
        })
        .await?
        .into_inner();
    let mut out = Vec::new();
    while let Some(person) = stream.message().await? {
        out.push(person);
    }
    Ok(out)
}

/// Proves an import over several commits counts created, updated and
/// unchanged records exactly, reports each bad record (malformed, missing,
/// a repeated patient ID at its second position) by index without stopping
/// the rest, and that importing the same data again changes nothing.
#[tokio::test]
async fn import_counts_and_reports_bad_records_by_position() {
    let server = TestServer::start().await;
    let good = people(1_300, 1);
    let mut records = requests(&good);
    // Position 5: a malformed name; 700: no person at all; 1,301: a repeat of 10.
    records[5].person.as_mut().unwrap().name = String::new();
    records[700].person = None;
    records.push(pb::UpsertPersonRequest {
        person: Some(good[10].clone()),
    });
    let first = import(&server, records.clone()).await;
    assert_eq!(first.received, 1_301);
    assert_eq!(
        (first.created, first.updated, first.unchanged),
        (1_298, 0, 0)
    );
    let positions: Vec<(i32, Vec<String>)> = first
        .errors
        .iter()
        .map(|e| {
            (
                e.index,
                e.violations.iter().map(|v| v.field.clone()).collect(),
            )
        })
        .collect();
    assert_eq!(
        positions,
        vec![
            (5, vec!["person.name".to_owned()]),
            (700, vec!["person".to_owned()]),
            (1_300, vec!["person.patient_id".to_owned()]),
        ]
    );
    assert_eq!(first.errors[2].patient_id, good[10].patient_id);
    let read = server
        .roster()
        .get_person(pb::GetPersonRequest {
            patient_id: good[1_299].patient_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read, good[1_299]);

    // The same data again: nothing changes.
    let again = import(&server, records.clone()).await;
    assert_eq!(
        (again.created, again.updated, again.unchanged),
        (0, 0, 1_298)
    );
    assert_eq!(again.errors.len(), 3);

    // One changed record and the fixed name: one update, one creation.
    records[5].person.as_mut().unwrap().name = "王五".into();
    records[6].person.as_mut().unwrap().paralysis_certified = true;
    let changed = import(&server, records).await;
    assert_eq!(
        (changed.created, changed.updated, changed.unchanged),
        (1, 1, 1_297)
    );
}

/// Proves the roster cache stays coherent through an import: a person read
/// (and cached) as not enrolled is covered by the next quote once an
/// import gives them an enrollment.
#[tokio::test]
async fn import_keeps_the_roster_cache_coherent() {
    let server = TestServer::start().await;
    let id = resident_id("1960-01-01", 41);
    let bare = pb::Person {
        enrollments: Vec::new(),
        ..dibao_person(&id)
    };
    import(&server, requests(&[bare])).await;
    let (before, _) = settled(
        server
            .settlements()
            .pre_settle(worked_example(&id, "C-1"))
            .await,
    );
    assert_eq!(
        before.ineligible_reason(),
        pb::IneligibleReason::NotEnrolled
    );
    let imported = import(&server, requests(&[dibao_person(&id)])).await;
    assert_eq!(imported.updated, 1);
    let (after, _) = settled(
        server
            .settlements()
            .pre_settle(worked_example(&id, "C-1"))
            .await,
    );
    assert_eq!(after.assistance_amount, "7350.00");
}

/// Proves an interrupted import keeps every batch it committed, and that
/// sending the whole stream again completes it, reporting those `unchanged`.
#[tokio::test]
async fn an_interrupted_import_resumes() {
    let server = TestServer::start().await;
    let all = people(1_100, 1);
    let (sender, receiver) = tokio::sync::mpsc::channel(2_000);
    let mut client = server.roster();
    let call =
        tokio::spawn(async move { client.import_persons(ReceiverStream::new(receiver)).await });
    for record in requests(&all) {
        sender.send(record).await.unwrap();
    }
    // The first two batches (1,024 records) are handed to the ledger once
    // record 1,024 arrives; wait until the second is readable.
    let last_of_second_batch = all[1_023].patient_id.clone();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let read = server
            .roster()
            .get_person(pb::GetPersonRequest {
                patient_id: last_of_second_batch.clone(),
            })
            .await;
        match read {
            Ok(_) => break,
            Err(status) if status.code() == Code::NotFound => {}
            Err(status) => panic!("{status:?}"),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "batches never committed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The client goes away mid-stream.
    call.abort();
    drop(sender);
    let _ = call.await;

    let resumed = import(&server, requests(&all)).await;
    assert_eq!(resumed.received, 1_100);
    assert!(resumed.unchanged >= 1_024, "{resumed:?}");
    assert_eq!(resumed.created + resumed.unchanged, 1_100, "{resumed:?}");
    assert_eq!(export(&server, "").await.unwrap().len(), 1_100);
    let stopped = server.stop().await;
    assert!(verify_dir(&stopped).is_consistent());
}

/// Proves export covers everyone, a county, or a city's counties, ordered
/// by patient ID, and that exported records import back `unchanged`.
#[tokio::test]
async fn export_by_region_and_back() {
    let server = TestServer::start().await;
    let in_county = |region: &str, sequence: u16| pb::Person {
        region_code: region.into(),
        ..dibao_person(&resident_id("1970-05-05", sequence))
    };
    let everyone = vec![
        in_county("320602", 1),
        in_county("320603", 2),
        in_county("321102", 3),
        in_county("320602", 4),
    ];
    import(&server, requests(&everyone)).await;
    let ids = |people: Vec<pb::Person>| {
        people
            .into_iter()
            .map(|p| p.region_code)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(export(&server, "320600").await.unwrap()),
        ["320602", "320603", "320602"]
    );
    assert_eq!(
        ids(export(&server, "320602").await.unwrap()),
        ["320602", "320602"]
    );
    let all = export(&server, "").await.unwrap();
    let mut sorted = all.clone();
    sorted.sort_by(|a, b| a.patient_id.cmp(&b.patient_id));
    assert_eq!(all, sorted);
    assert_eq!(all.len(), 4);
    let back = import(&server, requests(&all)).await;
    assert_eq!((back.received, back.unchanged), (4, 4));
    let bad = export(&server, "3206").await.unwrap_err();
    assert_eq!(bad_fields(&bad), ["region_code"]);
}
