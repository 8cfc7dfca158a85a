//! Many claims at once on one patient: the cap holds exactly.

use std::collections::HashSet;

use crate::helpers::*;

/// Proves 200 concurrent settlements on one patient, together worth
/// 1,400,000.00, pay exactly the 150,000.00 cap: 21 in full, one partly,
/// the rest nothing; and the running total equals their sum.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_claims_pay_exactly_the_cap() {
    let server = TestServer::start().await;
    let patient = server.enroll("1960-01-01", 51).await;
    let calls = (0..200).map(|n| {
        let mut client = server.settlements();
        let request = claim_paying_7000(&patient, &format!("K-{n:03}"));
        tokio::spawn(async move { settled(client.settle(request).await).0 })
    });
    let mut paid_fen = 0i64;
    let mut full = 0;
    let mut partial = 0;
    let mut ids = HashSet::new();
    for call in calls.collect::<Vec<_>>() {
        let settlement = call.await.unwrap();
        assert!(ids.insert(settlement.settlement_id.clone()));
        let fen = fen(&settlement.assistance_amount);
        paid_fen += fen;
        match fen {
            700_000 => full += 1,
            0 => assert!(settlement.capped),
            _ => {
                partial += 1;
                assert!(settlement.capped);
            }
        }
    }
    assert_eq!(paid_fen, 15_000_000);
    assert_eq!((full, partial), (21, 1));
    let usage = server.annual_usage(&patient, 2026).await;
    assert_eq!(usage.used, "150000.00");
    assert_eq!(usage.remaining, "0.00");
    assert_eq!(usage.settlement_count, 200);
}

/// Proves the same Settle sent 8 times at once records one settlement and
/// gives 8 answers about it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_claim_sent_eight_times_at_once_settles_once() {
    let server = TestServer::start().await;
    let patient = server.enroll("1960-01-01", 52).await;
    let request = worked_example(&patient, "SAME");
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let mut client = server.settlements();
            let request = request.clone();
            tokio::spawn(async move { settled(client.settle(request).await) })
        })
        .collect();
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap());
    }
    assert_eq!(answers.iter().filter(|(_, replayed)| !replayed).count(), 1);
    assert!(answers.iter().all(|(s, _)| *s == answers[0].0));
    let usage = server.annual_usage(&patient, 2026).await;
    assert_eq!(
        (usage.used.as_str(), usage.settlement_count),
        ("7350.00", 1)
    );
}
