//! The roster, as civil affairs offices keep it.

use medassist::grpc::pb;
use tonic::Code;

use crate::helpers::*;

/// Proves a roster record is stored whole, replaced whole, and read back.
#[tokio::test]
async fn upsert_replaces_the_whole_record() {
    let server = TestServer::start().await;
    let mut roster = server.roster();
    let id = resident_id("1950-02-03", 31);
    let first = pb::Person {
        psychiatric_disability_grade: 2,
        paralysis_certified: true,
        enrollments: vec![
            pb::Enrollment {
                kind: pb::EnrollmentKind::Dibao.into(),
                valid_from: "2020-01-01".into(),
                valid_to: "2025-11-30".into(),
                exit: pb::ExitKind::GradualExit.into(),
            },
            pb::Enrollment {
                kind: pb::EnrollmentKind::RegisteredPoor.into(),
                valid_from: "2016-01-01".into(),
                valid_to: "2020-12-31".into(),
                exit: pb::ExitKind::LeftPoverty.into(),
            },
        ],
        ..dibao_person(&id)
    };
    let stored = roster
        .upsert_person(pb::UpsertPersonRequest {
            person: Some(first.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored, first);
    let read = roster
        .get_person(pb::GetPersonRequest {
            patient_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read, first);

    let second = pb::Person {
        name: "李四".into(),
        enrollments: Vec::new(),
        ..dibao_person(&id)
    };
    roster
        .upsert_person(pb::UpsertPersonRequest {
            person: Some(second.clone()),
        })
        .await
        .unwrap();
    let read = roster
        .get_person(pb::GetPersonRequest { patient_id: id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read, second);

    let missing = roster
        .get_person(pb::GetPersonRequest {
            patient_id: resident_id("1950-02-03", 32),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}

/// Proves a roster change applies to the next claim, not to settled ones.
#[tokio::test]
async fn roster_changes_apply_to_later_claims() {
    let server = TestServer::start().await;
    let id = resident_id("1960-01-01", 33);
    let (before, _) = settled(
        server
            .settlements()
            .settle(worked_example(&id, "R-1"))
            .await,
    );
    assert_eq!(
        before.ineligible_reason(),
        pb::IneligibleReason::NotEnrolled
    );
    server
        .roster()
        .upsert_person(pb::UpsertPersonRequest {
            person: Some(dibao_person(&id)),
        })
        .await
        .unwrap();
    let (after, _) = settled(
        server
            .settlements()
            .settle(worked_example(&id, "R-2"))
            .await,
    );
    assert_eq!(after.assistance_amount, "7350.00");
    let (replay, replayed) = settled(
        server
            .settlements()
            .settle(worked_example(&id, "R-1"))
            .await,
    );
    assert!(replayed);
    assert_eq!(replay, before, "a settled claim keeps its answer");
}

/// Proves grace periods through the wire: a dibao gradual exit on 2025-11-30
/// still covers a stay from 2026-02-28, not one from 2026-03-01.
#[tokio::test]
async fn gradual_exit_grace_through_the_wire() {
    let server = TestServer::start().await;
    let id = resident_id("1960-01-01", 34);
    let person = pb::Person {
        enrollments: vec![pb::Enrollment {
            kind: pb::EnrollmentKind::Dibao.into(),
            valid_from: "2020-01-01".into(),
            valid_to: "2025-11-30".into(),
            exit: pb::ExitKind::GradualExit.into(),
        }],
        ..dibao_person(&id)
    };
    server
        .roster()
        .upsert_person(pb::UpsertPersonRequest {
            person: Some(person),
        })
        .await
        .unwrap();
    let stay = |claim: &str, from: &str| pb::SettleRequest {
        admission_date: from.into(),
        discharge_date: "2026-03-10".into(),
        ..worked_example(&id, claim)
    };
    let (inside, _) = settled(
        server
            .settlements()
            .pre_settle(stay("G-1", "2026-02-28"))
            .await,
    );
    assert!(inside.eligible);
    let (outside, _) = settled(
        server
            .settlements()
            .pre_settle(stay("G-2", "2026-03-01"))
            .await,
    );
    assert_eq!(
        outside.ineligible_reason(),
        pb::IneligibleReason::NotEnrolled
    );
}
