//! Referral to temporary assistance, through the real server with a
//! settable clock: by threshold, by cap, never when not enrolled; the list by
//! region and business day, which a reversal leaves.

use std::sync::Arc;

use medassist::{clock::ManualClock, grpc::pb};

use crate::helpers::*;

/// A claim the patient pays 3,000.00 of (assistance 7,000.00).
fn pays_3000(patient: &str, claim_id: &str) -> pb::SettleRequest {
    claim_paying_7000(patient, claim_id)
}

/// A claim worth more than the whole cap: 300,000.00 in scope, nothing paid
/// by insurance, so assistance stops at the 150,000.00 cap.
fn past_the_cap(patient: &str, claim_id: &str) -> pb::SettleRequest {
    pb::SettleRequest {
        total_cost: "300000.00".into(),
        in_scope_cost: "300000.00".into(),
        ..claim_paying_7000(patient, claim_id)
    }
}

async fn referrals(
    server: &TestServer,
    region: &str,
    from: &str,
    to: &str,
    page_size: i32,
) -> Vec<pb::Settlement> {
    all_pages(|page_token| async move {
        let page = server
            .roster()
            .list_referrals(pb::ListReferralsRequest {
                region_code: region.into(),
                from_date: from.into(),
                to_date: to.into(),
                page_size,
                page_token,
            })
            .await
            .expect("lists referrals")
            .into_inner();
        (page.settlements, page.next_page_token)
    })
    .await
}

fn claims(settlements: &[pb::Settlement]) -> Vec<&str> {
    settlements.iter().map(|s| s.claim_id.as_str()).collect()
}

async fn reverse(server: &TestServer, claim_id: &str) {
    server
        .settlements()
        .reverse(pb::ReverseRequest {
            hospital_id: "H001".into(),
            claim_id: claim_id.into(),
            reason: "billing error".into(),
        })
        .await
        .expect("reverses");
}

/// Proves the threshold rule end to end: payments of 3,000.00 a claim refer
/// the fourth claim (12,000.00 reaches 10,000.00) as HIGH_OUT_OF_POCKET, and
/// PreSettle showed that beforehand; `patient_pays_total` counts what is
/// not reversed; reversing an earlier claim leaves the fourth's flag alone,
/// and reversing the fourth takes it off the list.
#[tokio::test]
async fn referral_by_yearly_payments_reaching_the_threshold() {
    let clock = ManualClock::new(at("2026-11-30T02:00:00Z"));
    let server = TestServer::start_with_clock(Arc::clone(&clock)).await;
    let patient = server.enroll("1960-01-01", 801).await;
    for n in 1..=3 {
        let (s, _) = settled(
            server
                .settlements()
                .settle(pays_3000(&patient, &format!("T-{n}")))
                .await,
        );
        assert!(!s.referred, "T-{n}: {} paid so far", 3000 * n);
        assert_eq!(s.referral_reason(), pb::ReferralReason::Unspecified);
    }
    let (quote, _) = settled(
        server
            .settlements()
            .pre_settle(pays_3000(&patient, "T-4"))
            .await,
    );
    assert!(quote.referred, "PreSettle shows what Settle would decide");
    assert_eq!(quote.referral_reason(), pb::ReferralReason::HighOutOfPocket);
    let (fourth, _) = settled(
        server
            .settlements()
            .settle(pays_3000(&patient, "T-4"))
            .await,
    );
    assert!(fourth.referred);
    assert_eq!(
        fourth.referral_reason(),
        pb::ReferralReason::HighOutOfPocket
    );
    assert_eq!(
        server.annual_usage(&patient, 2026).await.patient_pays_total,
        "12000.00"
    );

    assert_eq!(
        claims(&referrals(&server, "320602", "2026-11-30", "2026-11-30", 0).await),
        ["T-4"]
    );
    assert_eq!(
        claims(&referrals(&server, "320600", "2026-11-01", "2026-11-30", 0).await),
        ["T-4"],
        "a city code takes in its counties"
    );
    assert!(
        referrals(&server, "320601", "2026-11-01", "2026-11-30", 0)
            .await
            .is_empty()
    );
    assert!(
        referrals(&server, "320602", "2026-12-01", "2026-12-31", 0)
            .await
            .is_empty()
    );

    clock.set(at("2026-12-02T02:00:00Z"));
    reverse(&server, "T-1").await;
    assert_eq!(
        server.annual_usage(&patient, 2026).await.patient_pays_total,
        "9000.00"
    );
    let still = referrals(&server, "320602", "2026-11-30", "2026-11-30", 0).await;
    assert_eq!(
        claims(&still),
        ["T-4"],
        "a later reversal does not change other flags"
    );
    reverse(&server, "T-4").await;
    assert!(
        referrals(&server, "320602", "2026-11-01", "2026-12-31", 0)
            .await
            .is_empty(),
        "a reversed claim leaves the list"
    );
    let (fifth, _) = settled(
        server
            .settlements()
            .settle(pays_3000(&patient, "T-5"))
            .await,
    );
    assert!(!fifth.referred, "9,000.00 after the reversals: below again");
    let (sixth, _) = settled(
        server
            .settlements()
            .settle(pays_3000(&patient, "T-6"))
            .await,
    );
    assert!(sixth.referred, "12,000.00 again");
    assert_eq!(
        claims(&referrals(&server, "320602", "2026-11-01", "2026-12-31", 0).await),
        ["T-6"]
    );
}

/// Proves the cap rule: a claim the cap cuts is referred as CAP_REACHED even
/// though its payment also passes the threshold (both: the cap wins); a
/// patient off the roster (not enrolled) is never referred, whatever they
/// pay; the list pages oldest first, by business day of settlement.
#[tokio::test]
async fn referral_by_the_cap_and_never_when_not_enrolled() {
    let clock = ManualClock::new(at("2026-11-29T15:59:59Z"));
    let server = TestServer::start_with_clock(Arc::clone(&clock)).await;
    let first = server.enroll("1960-01-01", 802).await;
    let second = server.enroll("1961-01-01", 803).await;
    let third = server.enroll("1962-01-01", 804).await;
    let (capped, _) = settled(
        server
            .settlements()
            .settle(past_the_cap(&first, "K-1"))
            .await,
    );
    assert!(capped.capped);
    assert!(capped.referred);
    assert_eq!(capped.referral_reason(), pb::ReferralReason::CapReached);
    clock.set(at("2026-11-29T16:00:00Z"));
    settled(
        server
            .settlements()
            .settle(past_the_cap(&second, "K-2"))
            .await,
    );
    settled(
        server
            .settlements()
            .settle(past_the_cap(&third, "K-3"))
            .await,
    );

    let stranger = resident_id("1970-01-01", 805);
    let (unenrolled, _) = settled(
        server
            .settlements()
            .settle(past_the_cap(&stranger, "K-4"))
            .await,
    );
    assert_eq!(unenrolled.patient_pays, "300000.00");
    assert!(!unenrolled.referred, "not enrolled: never referred");

    let paged = referrals(&server, "320600", "2026-11-29", "2026-11-30", 1).await;
    assert_eq!(
        claims(&paged),
        ["K-1", "K-2", "K-3"],
        "oldest first, one per page"
    );
    assert_eq!(
        claims(&referrals(&server, "320600", "2026-11-29", "2026-11-29", 0).await),
        ["K-1"]
    );
    assert_eq!(
        claims(&referrals(&server, "320600", "2026-11-30", "2026-11-30", 0).await),
        ["K-2", "K-3"]
    );
}

/// Proves GetPolicy shows the threshold and ListReferrals names its bad fields.
#[tokio::test]
async fn the_threshold_is_on_the_policy_and_bad_requests_are_named() {
    let server = TestServer::start().await;
    let policy = server
        .policies()
        .get_policy(pb::GetPolicyRequest {
            region_code: "320602".into(),
            year: 2026,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(policy.referral_threshold, "10000.00");
    let status = server
        .roster()
        .list_referrals(pb::ListReferralsRequest {
            region_code: "32060".into(),
            from_date: "2026-11-30".into(),
            to_date: "2026-11-29".into(),
            page_size: -1,
            page_token: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        bad_fields(&status),
        ["region_code", "to_date", "page_size", "page_token"]
    );
}
