//! Every validation error through the wire: INVALID_ARGUMENT with one
//! BadRequest field violation per bad field, all reported at once.

use medassist::grpc::pb;
use tonic::Code;

use crate::helpers::*;

/// Proves a settle request that is wrong everywhere names every field.
#[tokio::test]
async fn every_bad_field_of_a_claim_is_named_at_once() {
    let server = TestServer::start().await;
    let request = pb::SettleRequest {
        hospital_id: String::new(),
        claim_id: "has space".into(),
        patient_id: "110105194912310021".into(),
        admission_date: "2026-02-30".into(),
        discharge_date: "yesterday".into(),
        diagnosis_codes: vec!["N18".into(), "not a code".into()],
        total_cost: "-1".into(),
        in_scope_cost: "1e5".into(),
        basic_insurance_paid: "0.001".into(),
        critical_illness_paid: "NaN".into(),
        claim_kind: 0,
    };
    for status in [
        server
            .settlements()
            .settle(request.clone())
            .await
            .unwrap_err(),
        server.settlements().pre_settle(request).await.unwrap_err(),
    ] {
        assert_eq!(
            bad_fields(&status),
            [
                "hospital_id",
                "claim_id",
                "patient_id",
                "admission_date",
                "discharge_date",
                "diagnosis_codes[1]",
                "total_cost",
                "in_scope_cost",
                "basic_insurance_paid",
                "critical_illness_paid",
            ]
        );
    }
}

/// Proves each rule of a claim on its own: one bad value, one named field.
#[tokio::test]
async fn each_claim_rule_names_its_field() {
    let server = TestServer::start().await;
    let patient = resident_id("1960-01-01", 71);
    let good = worked_example(&patient, "V-1");
    let wrong_check = {
        let mut id = patient.clone();
        let last = if id.ends_with('0') { "1" } else { "0" };
        id.replace_range(17.., last);
        id
    };
    let cases: Vec<(pb::SettleRequest, &str)> = vec![
        (
            pb::SettleRequest {
                patient_id: wrong_check,
                ..good.clone()
            },
            "patient_id",
        ),
        (
            pb::SettleRequest {
                patient_id: "32060219601301123X".into(),
                ..good.clone()
            },
            "patient_id",
        ),
        (
            pb::SettleRequest {
                patient_id: "3206021960010112".into(),
                ..good.clone()
            },
            "patient_id",
        ),
        (
            pb::SettleRequest {
                admission_date: "2026-03-21".into(),
                ..good.clone()
            },
            "discharge_date",
        ),
        (
            pb::SettleRequest {
                admission_date: "1899-12-31".into(),
                ..good.clone()
            },
            "admission_date",
        ),
        (
            pb::SettleRequest {
                discharge_date: "2100-01-01".into(),
                ..good.clone()
            },
            "discharge_date",
        ),
        (
            pb::SettleRequest {
                discharge_date: "2026-3-20".into(),
                ..good.clone()
            },
            "discharge_date",
        ),
        (
            pb::SettleRequest {
                total_cost: "100000000000000.00".into(),
                ..good.clone()
            },
            "total_cost",
        ),
        (
            pb::SettleRequest {
                total_cost: "".into(),
                ..good.clone()
            },
            "total_cost",
        ),
        (
            pb::SettleRequest {
                in_scope_cost: "50000.01".into(),
                ..good.clone()
            },
            "in_scope_cost",
        ),
        (
            pb::SettleRequest {
                basic_insurance_paid: "35700.01".into(),
                ..good.clone()
            },
            "critical_illness_paid",
        ),
        (
            pb::SettleRequest {
                critical_illness_paid: "-0".into(),
                ..good.clone()
            },
            "critical_illness_paid",
        ),
        (
            pb::SettleRequest {
                hospital_id: "H".repeat(65),
                ..good.clone()
            },
            "hospital_id",
        ),
        (
            pb::SettleRequest {
                claim_id: "C\u{7}1".into(),
                ..good.clone()
            },
            "claim_id",
        ),
        (
            pb::SettleRequest {
                claim_id: "单号".into(),
                ..good.clone()
            },
            "claim_id",
        ),
        (
            pb::SettleRequest {
                diagnosis_codes: Vec::new(),
                ..good.clone()
            },
            "diagnosis_codes",
        ),
        (
            pb::SettleRequest {
                diagnosis_codes: vec!["N18".into(); 33],
                ..good.clone()
            },
            "diagnosis_codes",
        ),
        (
            pb::SettleRequest {
                diagnosis_codes: vec!["N18.".into()],
                ..good.clone()
            },
            "diagnosis_codes[0]",
        ),
        (
            pb::SettleRequest {
                diagnosis_codes: vec!["C34.9".repeat(4)],
                ..good.clone()
            },
            "diagnosis_codes[0]",
        ),
    ];
    let mut settlements = server.settlements();
    for (request, field) in cases {
        let status = settlements.settle(request.clone()).await.unwrap_err();
        assert_eq!(bad_fields(&status), [field], "{request:?}");
    }
    // And nothing of that reached the ledger.
    assert!(
        settled(settlements.settle(good).await)
            .0
            .settlement_id
            .ends_with('1')
    );
}

/// Proves reverse, get, usage and list requests name their bad fields.
#[tokio::test]
async fn other_requests_name_their_bad_fields() {
    let server = TestServer::start().await;
    let mut settlements = server.settlements();
    let status = settlements
        .reverse(pb::ReverseRequest {
            hospital_id: String::new(),
            claim_id: String::new(),
            reason: " ".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&status), ["hospital_id", "claim_id", "reason"]);
    let status = settlements
        .reverse(pb::ReverseRequest {
            hospital_id: "H001".into(),
            claim_id: "C".into(),
            reason: "x".repeat(257),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&status), ["reason"]);

    let both = pb::GetSettlementRequest {
        settlement_id: "1".into(),
        hospital_id: "H001".into(),
        claim_id: "C".into(),
    };
    assert_eq!(
        bad_fields(&settlements.get_settlement(both).await.unwrap_err()),
        ["settlement_id"]
    );
    let neither = pb::GetSettlementRequest::default();
    assert_eq!(
        bad_fields(&settlements.get_settlement(neither).await.unwrap_err()),
        ["hospital_id", "claim_id"]
    );
    let bad_id = pb::GetSettlementRequest {
        settlement_id: "-4".into(),
        ..Default::default()
    };
    assert_eq!(
        bad_fields(&settlements.get_settlement(bad_id).await.unwrap_err()),
        ["settlement_id"]
    );
    let unknown = pb::GetSettlementRequest {
        settlement_id: "999".into(),
        ..Default::default()
    };
    assert_eq!(
        settlements
            .get_settlement(unknown)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );

    let status = server
        .usage()
        .get_annual_usage(pb::GetAnnualUsageRequest {
            patient_id: "x".into(),
            year: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&status), ["patient_id", "year"]);
}

/// Proves roster records name every bad field under `person.`.
#[tokio::test]
async fn roster_records_name_their_bad_fields() {
    let server = TestServer::start().await;
    let mut roster = server.roster();
    let status = roster
        .upsert_person(pb::UpsertPersonRequest { person: None })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&status), ["person"]);
    let person = pb::Person {
        patient_id: "123".into(),
        name: "\n".into(),
        region_code: "0206".into(),
        psychiatric_disability_grade: 7,
        paralysis_certified: false,
        enrollments: vec![
            pb::Enrollment {
                kind: 0,
                valid_from: "2020-01-01".into(),
                valid_to: "2019-01-01".into(),
                exit: 0,
            },
            pb::Enrollment {
                kind: pb::EnrollmentKind::Tekun.into(),
                valid_from: "2020-01-01".into(),
                valid_to: "2021-01-01".into(),
                exit: pb::ExitKind::LeftPoverty.into(),
            },
            pb::Enrollment {
                kind: 99,
                valid_from: "".into(),
                valid_to: "".into(),
                exit: 42,
            },
        ],
    };
    let status = roster
        .upsert_person(pb::UpsertPersonRequest {
            person: Some(person),
        })
        .await
        .unwrap_err();
    assert_eq!(
        bad_fields(&status),
        [
            "person.patient_id",
            "person.name",
            "person.region_code",
            "person.psychiatric_disability_grade",
            "person.enrollments[0].kind",
            "person.enrollments[0].valid_to",
            "person.enrollments[1].exit",
            "person.enrollments[2].kind",
            "person.enrollments[2].valid_from",
            "person.enrollments[2].exit",
        ]
    );
    let too_many = pb::Person {
        enrollments: vec![dibao_person("").enrollments[0].clone(); 33],
        ..dibao_person(&resident_id("1960-01-01", 72))
    };
    let status = roster
        .upsert_person(pb::UpsertPersonRequest {
            person: Some(too_many),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&status), ["person.enrollments"]);
    let status = roster
        .get_person(pb::GetPersonRequest {
            patient_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&status), ["patient_id"]);
}

/// Proves the server refuses an oversized message and keeps serving.
#[tokio::test]
async fn oversized_messages_are_refused_and_the_server_keeps_serving() {
    let server = TestServer::start().await;
    let patient = server.enroll("1960-01-01", 73).await;
    let huge = pb::SettleRequest {
        claim_id: "x".repeat(200_000),
        ..worked_example(&patient, "")
    };
    let status = server.settlements().settle(huge).await.unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    let (settlement, _) = settled(
        server
            .settlements()
            .settle(worked_example(&patient, "after"))
            .await,
    );
    assert_eq!(settlement.assistance_amount, "7350.00");
}

/// Proves a record with over a hundred bad fields still gets a readable
/// INVALID_ARGUMENT: the first 50 violations, and the total in the message.
#[tokio::test]
async fn very_many_bad_fields_fit_in_one_answer() {
    let server = TestServer::start().await;
    let bad = pb::Enrollment {
        kind: 0,
        valid_from: "x".repeat(200),
        valid_to: "y".repeat(200),
        exit: 9,
    };
    let person = pb::Person {
        enrollments: vec![bad; 32],
        ..dibao_person("nope")
    };
    let status = server
        .roster()
        .upsert_person(pb::UpsertPersonRequest {
            person: Some(person),
        })
        .await
        .unwrap_err();
    let fields = bad_fields(&status);
    assert_eq!(fields.len(), 50);
    assert_eq!(fields[0], "person.patient_id");
    assert!(
        status
            .message()
            .starts_with("invalid request: 129 bad fields: person.patient_id: "),
        "{}",
        status.message()
    );
    assert!(
        status
            .message()
            .ends_with("; and 126 more (details list the first 50)"),
        "{}",
        status.message()
    );
}

/// Proves a client that cannot decode the details still reads why: the
/// message of INVALID_ARGUMENT gives the first fields with their reasons,
/// and enum values are written as the wire spells them.
#[tokio::test]
async fn the_message_gives_reasons_and_wire_enum_names() {
    let server = TestServer::start().await;
    let patient = resident_id("1960-01-01", 71);
    let request = pb::SettleRequest {
        total_cost: "1.001".into(),
        in_scope_cost: "1.002".into(),
        basic_insurance_paid: "0.003".into(),
        critical_illness_paid: "0.004".into(),
        ..worked_example(&patient, "fen")
    };
    let status = server.settlements().settle(request).await.unwrap_err();
    let message = status.message();
    assert!(
        message.starts_with("invalid request: 4 bad fields: total_cost: "),
        "{message}"
    );
    assert_eq!(message.matches("fen").count(), 3, "{message}");
    assert!(message.ends_with("; and 1 more"), "{message}");

    let person = pb::Person {
        enrollments: vec![pb::Enrollment {
            kind: pb::EnrollmentKind::Unspecified.into(),
            ..dibao_person(&patient).enrollments[0].clone()
        }],
        ..dibao_person(&patient)
    };
    let status = server
        .roster()
        .upsert_person(pb::UpsertPersonRequest {
            person: Some(person),
        })
        .await
        .unwrap_err();
    assert!(
        status.message().contains("ENROLLMENT_KIND_DIBAO"),
        "{}",
        status.message()
    );
    for name in ["DIBAO", "TEKUN", "LOW_INCOME_FAMILY", "REGISTERED_POOR"] {
        let wire = format!("ENROLLMENT_KIND_{name}");
        assert!(
            pb::EnrollmentKind::from_str_name(&wire).is_some(),
            "{wire} is not a wire name"
        );
        assert!(status.message().contains(&wire), "{}", status.message());
    }
}
