//! Reconciliation by hospital and business day (3201, 3202) and the export,
//! through the real server with a settable clock: every settlement is placed
//! at a chosen moment, so day boundaries are tested exactly, without sleeps
//! and whatever today's date is.

use std::sync::Arc;

use medassist::{clock::ManualClock, grpc::pb};
use tonic::Code;

use crate::helpers::*;

/// Settles `claim_id` for `hospital` with the worked example (7,350.00 of
/// assistance for an enrolled patient) at the moment the clock shows.
async fn settle(
    server: &TestServer,
    hospital: &str,
    patient: &str,
    claim_id: &str,
) -> pb::Settlement {
    let request = pb::SettleRequest {
        hospital_id: hospital.into(),
        ..worked_example(patient, claim_id)
    };
    settled(server.settlements().settle(request).await).0
}

fn totals(settled: i32, assistance: &str, reversed: i32, reversed_total: &str) -> pb::DayTotals {
    pb::DayTotals {
        settled_count: settled,
        assistance_total: assistance.into(),
        reversed_count: reversed,
        reversed_total: reversed_total.into(),
    }
}

async fn reconcile(
    server: &TestServer,
    hospital: &str,
    date: &str,
    theirs: pb::DayTotals,
) -> pb::ReconcileDayResponse {
    server
        .reconciliation()
        .reconcile_day(pb::ReconcileDayRequest {
            hospital_id: hospital.into(),
            date: date.into(),
            hospital_totals: Some(theirs),
        })
        .await
        .expect("reconciles")
        .into_inner()
}

/// The settlement numbers of a whole day list, read page by page.
async fn day_list(
    server: &TestServer,
    hospital: &str,
    date: &str,
    page_size: i32,
) -> Vec<pb::Settlement> {
    all_pages(|page_token| async move {
        let page = server
            .reconciliation()
            .list_day_settlements(pb::ListDaySettlementsRequest {
                hospital_id: hospital.into(),
                date: date.into(),
                page_size,
                page_token,
            })
            .await
            .expect("lists")
            .into_inner();
        if page_size > 0 {
            assert!(page.settlements.len() <= page_size as usize);
        }
        (page.settlements, page.next_page_token)
    })
    .await
}

async fn export(server: &TestServer, from: &str, to: &str, hospital: &str) -> Vec<pb::Settlement> {
    let mut stream = server
        .reconciliation()
        .export_settlements(pb::ExportSettlementsRequest {
            from_date: from.into(),
            to_date: to.into(),
            hospital_id: hospital.into(),
        })
        .await
        .expect("the export starts")
        .into_inner();
    let mut all = Vec::new();
    while let Some(settlement) = stream.message().await.expect("the export streams") {
        all.push(settlement);
    }
    all
}

fn ids(settlements: &[pb::Settlement]) -> Vec<&str> {
    settlements
        .iter()
        .map(|s| s.settlement_id.as_str())
        .collect()
}

/// Proves the business day turns at 16:00 UTC (midnight in Beijing): a
/// settlement at 15:59:59 belongs to 2026-11-30, one at 16:00:00 to
/// 2026-12-01; the totals and lists of each day hold exactly their own, a
/// matching hospital is told so, a differing one is told which figure, and
/// another hospital's settlement of the same day stays out.
#[tokio::test]
async fn the_day_turns_at_midnight_in_beijing() {
    let clock = ManualClock::new(at("2026-11-30T15:59:59Z"));
    let server = TestServer::start_with_clock(Arc::clone(&clock)).await;
    let patient = server.enroll("1960-01-01", 501).await;
    let before = settle(&server, "H001", &patient, "D-1").await;
    settle(&server, "H002", &patient, "D-2").await;
    clock.set(at("2026-11-30T16:00:00Z"));
    let after = settle(&server, "H001", &patient, "D-3").await;
    assert_eq!(before.settled_by, "open", "open mode records `open`");

    let matched = reconcile(&server, "H001", "2026-11-30", totals(1, "7350", 0, "0")).await;
    assert!(matched.matched, "{matched:?}");
    assert!(matched.differing_fields.is_empty());
    assert_eq!(
        matched.fund_totals,
        Some(totals(1, "7350.00", 0, "0.00")),
        "money as the API prints it"
    );

    let differs = reconcile(&server, "H001", "2026-12-01", totals(1, "7350.01", 1, "0")).await;
    assert!(!differs.matched);
    assert_eq!(
        differs.differing_fields,
        ["assistance_total", "reversed_count"]
    );
    assert_eq!(differs.fund_totals, Some(totals(1, "7350.00", 0, "0.00")));

    assert_eq!(
        ids(&day_list(&server, "H001", "2026-11-30", 0).await),
        [before.settlement_id.as_str()]
    );
    assert_eq!(
        ids(&day_list(&server, "H001", "2026-12-01", 0).await),
        [after.settlement_id.as_str()]
    );
    let empty = reconcile(&server, "H001", "2026-12-02", totals(0, "0", 0, "0")).await;
    assert!(empty.matched, "a day without settlements matches zeros");
}

/// Proves a reversal belongs to the day it was made: settled on 2026-11-30
/// and reversed on 2026-12-02, the settlement still counts as settled on the
/// 30th and counts as reversed on the 2nd; both day lists hold it; the export
/// over both days holds it once, with who reversed it.
#[tokio::test]
async fn a_reversal_on_a_later_day_counts_on_that_day() {
    let clock = ManualClock::new(at("2026-11-30T02:00:00Z"));
    let server = TestServer::start_with_clock(Arc::clone(&clock)).await;
    let patient = server.enroll("1960-01-01", 502).await;
    let first = settle(&server, "H001", &patient, "R-1").await;
    settle(&server, "H001", &patient, "R-2").await;
    clock.set(at("2026-12-02T01:00:00Z"));
    server
        .settlements()
        .reverse(pb::ReverseRequest {
            hospital_id: "H001".into(),
            claim_id: "R-1".into(),
            reason: "duplicate bill".into(),
        })
        .await
        .expect("reverses");

    let settled_day = reconcile(&server, "H001", "2026-11-30", totals(2, "14700", 0, "0")).await;
    assert!(settled_day.matched, "{settled_day:?}");
    let reversed_day = reconcile(&server, "H001", "2026-12-02", totals(0, "0", 1, "7350")).await;
    assert!(reversed_day.matched, "{reversed_day:?}");
    assert_eq!(
        reversed_day.fund_totals,
        Some(totals(0, "0.00", 1, "7350.00"))
    );

    let listed = day_list(&server, "H001", "2026-12-02", 0).await;
    assert_eq!(ids(&listed), [first.settlement_id.as_str()]);
    assert_eq!(listed[0].status(), pb::SettlementStatus::Reversed);
    assert_eq!(listed[0].reversed_by, "open");
    assert_eq!(day_list(&server, "H001", "2026-11-30", 0).await.len(), 2);

    let exported = export(&server, "2026-11-30", "2026-12-02", "").await;
    assert_eq!(
        exported.len(),
        2,
        "each settlement once: {:?}",
        ids(&exported)
    );
    assert_eq!(exported[0].settlement_id, first.settlement_id);
    assert_eq!(exported[0].status(), pb::SettlementStatus::Reversed);
    let only_reversal = export(&server, "2026-12-02", "2026-12-02", "H001").await;
    assert_eq!(ids(&only_reversal), [first.settlement_id.as_str()]);
}

/// Proves day lists page in settlement order without gaps or repeats, and
/// that the export merges days and hospitals into settlement order, filters
/// by hospital, and covers exactly the days asked for.
#[tokio::test]
async fn lists_page_and_the_export_merges_days_in_order() {
    let clock = ManualClock::new(at("2026-11-28T01:00:00Z"));
    let server = TestServer::start_with_clock(Arc::clone(&clock)).await;
    let patient = server.enroll("1960-01-01", 503).await;
    let mut expected_all = Vec::new();
    let mut expected_h002 = Vec::new();
    for (n, moment) in [
        "2026-11-28T01:00:00Z",
        "2026-11-29T01:00:00Z",
        "2026-11-30T01:00:00Z",
    ]
    .iter()
    .enumerate()
    {
        clock.set(at(moment));
        for k in 0..3 {
            let hospital = if k == 1 { "H002" } else { "H001" };
            let s = settle(&server, hospital, &patient, &format!("E-{n}-{k}")).await;
            if hospital == "H002" {
                expected_h002.push(s.settlement_id.clone());
            }
            expected_all.push(s.settlement_id);
        }
    }
    clock.set(at("2026-11-30T02:00:00Z"));
    let mut day = Vec::new();
    for k in 0..5 {
        day.push(
            settle(&server, "H003", &patient, &format!("P-{k}"))
                .await
                .settlement_id,
        );
    }
    expected_all.extend(day.iter().cloned());
    assert_eq!(
        ids(&day_list(&server, "H003", "2026-11-30", 2).await),
        day,
        "three pages of 2, 2, 1"
    );

    assert_eq!(
        ids(&export(&server, "2026-11-01", "2026-11-30", "").await),
        expected_all
    );
    assert_eq!(
        ids(&export(&server, "2026-11-28", "2026-11-30", "H002").await),
        expected_h002
    );
    assert_eq!(
        export(&server, "2026-11-29", "2026-11-29", "").await.len(),
        3
    );
    assert!(
        export(&server, "2026-12-01", "2026-12-31", "")
            .await
            .is_empty()
    );
}

/// Proves a client that stops reading an export mid-way leaves the server
/// serving and able to shut down cleanly.
#[tokio::test]
async fn an_abandoned_export_stops_cleanly() {
    let clock = ManualClock::new(at("2026-11-30T01:00:00Z"));
    let server = TestServer::start_with_clock(clock).await;
    for n in 0..300 {
        // Patients off the roster: settled with no assistance, no cap to reach.
        let patient = resident_id("1970-01-01", 600 + n);
        settle(&server, "H001", &patient, &format!("A-{n}")).await;
    }
    let mut stream = server
        .reconciliation()
        .export_settlements(pb::ExportSettlementsRequest {
            from_date: "2026-11-30".into(),
            to_date: "2026-11-30".into(),
            hospital_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().is_some());
    drop(stream);
    let still = reconcile(&server, "H001", "2026-11-30", totals(300, "0", 0, "0")).await;
    assert!(still.matched, "{still:?}");
    server.stop().await;
}

/// Proves every malformed field is named: dates, hospital, counts, money,
/// the page token, and the export's range (backwards, or over 366 days).
#[tokio::test]
async fn bad_requests_name_their_fields() {
    let server = TestServer::start().await;
    let mut client = server.reconciliation();
    let status = client
        .reconcile_day(pb::ReconcileDayRequest {
            hospital_id: String::new(),
            date: "2026-02-30".into(),
            hospital_totals: Some(totals(-1, "1.234", 0, "x")),
        })
        .await
        .unwrap_err();
    assert_eq!(
        bad_fields(&status),
        [
            "hospital_id",
            "date",
            "hospital_totals.settled_count",
            "hospital_totals.assistance_total",
            "hospital_totals.reversed_total"
        ]
    );
    let status = client
        .reconcile_day(pb::ReconcileDayRequest {
            hospital_id: "H001".into(),
            date: "2026-11-30".into(),
            hospital_totals: None,
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&status), ["hospital_totals"]);
    let status = client
        .list_day_settlements(pb::ListDaySettlementsRequest {
            hospital_id: "H001".into(),
            date: "30/11/2026".into(),
            page_size: -1,
            page_token: "abc".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&status), ["date", "page_size", "page_token"]);
    for (from, to) in [("2026-11-30", "2026-11-29"), ("2025-01-01", "2026-01-02")] {
        let status = client
            .export_settlements(pb::ExportSettlementsRequest {
                from_date: from.into(),
                to_date: to.into(),
                hospital_id: String::new(),
            })
            .await
            .expect_err("refused");
        assert_eq!(bad_fields(&status), ["to_date"], "{from}..{to}");
    }
    let a_leap_year = client
        .export_settlements(pb::ExportSettlementsRequest {
            from_date: "2028-01-01".into(),
            to_date: "2028-12-31".into(),
            hospital_id: String::new(),
        })
        .await;
    assert!(a_leap_year.is_ok(), "366 days, both counted, are allowed");
    let status = client
        .export_settlements(pb::ExportSettlementsRequest {
            from_date: "2026-11-30".into(),
            to_date: "2026-11-30".into(),
            hospital_id: "bad id with spaces".into(),
        })
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument);
}
