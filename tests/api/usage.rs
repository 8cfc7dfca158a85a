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

/// Proves BatchGetAnnualUsage answers each patient as GetAnnualUsage does,
/// in request order, lists those off the roster apart (in request order),
/// and refuses an empty list, more than 500, a bad ID and a repeat, naming
/// each.
#[tokio::test]
async fn many_patients_at_once() {
    let server = TestServer::start().await;
    let first = server.enroll("1960-01-01", 31).await;
    let second = server.enroll("1961-01-01", 32).await;
    settled(
        server
            .settlements()
            .settle(claim_paying_7000(&second, "B-1"))
            .await,
    );
    let stranger = resident_id("1970-01-01", 33);
    let other_stranger = resident_id("1971-01-01", 34);
    let answer = server
        .usage()
        .batch_get_annual_usage(pb::BatchGetAnnualUsageRequest {
            patient_ids: vec![
                second.clone(),
                stranger.clone(),
                first.clone(),
                other_stranger.clone(),
            ],
            year: 2026,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        answer.usages,
        [
            server.annual_usage(&second, 2026).await,
            server.annual_usage(&first, 2026).await
        ]
    );
    assert_eq!(answer.usages[0].used, "7000.00");
    // Masked, as every ID the service shows; in the order asked.
    let masked = |id: &str| format!("{}********{}", &id[..6], &id[14..]);
    assert_eq!(
        answer.not_found,
        [masked(&stranger), masked(&other_stranger)]
    );

    let refused = |ids: Vec<String>| {
        let mut usage = server.usage();
        async move {
            let status = usage
                .batch_get_annual_usage(pb::BatchGetAnnualUsageRequest {
                    patient_ids: ids,
                    year: 2026,
                })
                .await
                .unwrap_err();
            bad_fields(&status)
        }
    };
    assert_eq!(refused(Vec::new()).await, ["patient_ids"]);
    assert_eq!(refused(vec![first.clone(); 501]).await[0], "patient_ids");
    assert_eq!(
        refused(vec![first.clone(), "123".into(), first.clone()]).await,
        ["patient_ids[1]", "patient_ids[2]"]
    );
    let five_hundred: Vec<String> = (0..500)
        .map(|n| resident_id("1980-01-01", 100 + n))
        .collect();
    let all = server
        .usage()
        .batch_get_annual_usage(pb::BatchGetAnnualUsageRequest {
            patient_ids: five_hundred,
            year: 2026,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.not_found.len(), 500, "500 is allowed");
}
