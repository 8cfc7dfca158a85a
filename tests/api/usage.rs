//! Annual usage and the settlement list, as insurance platforms read them.

use medassist::grpc::pb;
use tonic::Code;

use crate::helpers::*;

/// Proves usage is counted per cap year, and the cap year is the discharge's.
#[tokio::test]
async fn usage_is_per_discharge_year() {
    let server = TestServer::start().await;
    let patient = server.enroll("1960-01-01", 21).await;
    let across_new_year = pb::SettleRequest {
        admission_date: "2025-12-25".into(),
        discharge_date: "2026-01-05".into(),
        ..claim_paying_7000(&patient, "Y-1")
    };
    let last_year = pb::SettleRequest {
        admission_date: "2025-06-01".into(),
        discharge_date: "2025-06-10".into(),
        ..claim_paying_7000(&patient, "Y-2")
    };
    let (a, _) = settled(server.settlements().settle(across_new_year).await);
    assert_eq!(a.year, 2026);
    let (b, _) = settled(server.settlements().settle(last_year).await);
    assert_eq!((b.year, b.used_before.as_str()), (2025, "0.00"));

    for year in [2025, 2026] {
        let found = server.annual_usage(&patient, year).await;
        assert_eq!(found.used, "7000.00");
        assert_eq!(found.remaining, "143000.00");
        assert_eq!(found.annual_cap, "150000.00");
        assert_eq!(found.settlement_count, 1);
        assert_eq!(found.region_code, "320602");
        assert!(found.policy_id.starts_with("320600-"));
    }
    let empty = server.annual_usage(&patient, 2024).await;
    assert_eq!(
        (
            empty.used.as_str(),
            empty.remaining.as_str(),
            empty.settlement_count
        ),
        ("0.00", "150000.00", 0)
    );
}

/// Proves the list pages oldest first with opaque tokens and refuses bad ones.
#[tokio::test]
async fn settlements_list_in_pages_oldest_first() {
    let server = TestServer::start().await;
    let patient = server.enroll("1960-01-01", 22).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let (s, _) = settled(
            server
                .settlements()
                .settle(claim_paying_7000(&patient, &format!("L-{n}")))
                .await,
        );
        ids.push(s.settlement_id);
    }
    let mut usage = server.usage();
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = usage
            .list_settlements(pb::ListSettlementsRequest {
                patient_id: patient.clone(),
                year: 2026,
                page_size: 2,
                page_token: token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!(page.settlements.len() <= 2);
        seen.extend(page.settlements.into_iter().map(|s| s.settlement_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, ids);
    assert_eq!(pages, 3);

    let everything = usage
        .list_settlements(pb::ListSettlementsRequest {
            patient_id: patient.clone(),
            year: 2026,
            page_size: 100_000,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(everything.settlements.len(), 5);
    assert_eq!(everything.next_page_token, "");

    let none = usage
        .list_settlements(pb::ListSettlementsRequest {
            patient_id: patient.clone(),
            year: 2027,
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(none.settlements.is_empty());

    let status = usage
        .list_settlements(pb::ListSettlementsRequest {
            patient_id: patient,
            year: 2026,
            page_size: -1,
            page_token: "zzz".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&status), ["page_size", "page_token"]);
}

/// Proves a patient off the roster has no annual usage to show.
#[tokio::test]
async fn usage_of_a_patient_off_the_roster_is_not_found() {
    let server = TestServer::start().await;
    let status = server
        .usage()
        .get_annual_usage(pb::GetAnnualUsageRequest {
            patient_id: resident_id("1990-05-05", 23),
            year: 2026,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(
        !status.message().contains("19900505"),
        "the message masks the resident ID"
    );
}
