//! The bank invariant under concurrency, and exactly-once answers.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use medassist::grpc::pb;

use crate::helpers::*;

/// What the clients were told: every settlement answered, by claim, in its
/// latest state (settled or reversed).
#[derive(Default)]
struct Told {
    settlements: HashMap<String, pb::Settlement>,
    requests: Vec<pb::SettleRequest>,
}

/// Proves, with 16 clients on 30 patients sending settles (some near the
/// cap), reversals, quotes and duplicates at once: every patient-year's
/// total equals the sum of its settled amounts, never exceeds the cap, and
/// the sum over everyone equals the sum over every answer given.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn totals_equal_the_settlements_clients_were_told() {
    let server = TestServer::start().await;
    let mut patients = Vec::new();
    for n in 0..30 {
        patients.push(server.enroll("1950-01-01", 100 + n).await);
    }
    let told = Arc::new(Mutex::new(Told::default()));
    let workers: Vec<_> = (0..16u64)
        .map(|worker| {
            let (mut settlements, patients, told) =
                (server.settlements(), patients.clone(), told.clone());
            tokio::spawn(async move {
                let mut rng = fastrand::Rng::with_seed(worker);
                for n in 0..150 {
                    let patient = &patients[rng.usize(0..patients.len())];
                    let roll = rng.u8(0..100);
                    if roll < 50 {
                        // 0.70 x 1.00 to 0.70 x 60,000.00: a few claims reach the cap.
                        let amount = format!("{}.{:02}", rng.u32(1..60_000), rng.u32(0..100));
                        let request = pb::SettleRequest {
                            total_cost: amount.clone(),
                            in_scope_cost: amount,
                            basic_insurance_paid: "0".into(),
                            critical_illness_paid: "0".into(),
                            ..worked_example(patient, &format!("w{worker}-{n}"))
                        };
                        let (settlement, replayed) =
                            settled(settlements.settle(request.clone()).await);
                        assert!(!replayed);
                        let mut told = told.lock().unwrap();
                        told.requests.push(request);
                        told.settlements
                            .insert(settlement.claim_id.clone(), settlement);
                    } else if roll < 65 {
                        let sent = told.lock().unwrap().requests.clone();
                        if let Some(request) = rng.choice(sent.iter()) {
                            let (settlement, replayed) =
                                settled(settlements.settle(request.clone()).await);
                            assert!(replayed);
                            let told = told.lock().unwrap();
                            assert_eq!(
                                told.settlements[&settlement.claim_id].settlement_id,
                                settlement.settlement_id
                            );
                        }
                    } else if roll < 85 {
                        let claim = {
                            let told = told.lock().unwrap();
                            rng.choice(told.settlements.keys().cloned().collect::<Vec<_>>())
                        };
                        if let Some(claim_id) = claim {
                            let reverse = pb::ReverseRequest {
                                hospital_id: "H001".into(),
                                claim_id,
                                reason: "test".into(),
                            };
                            let (settlement, _) = settled(settlements.reverse(reverse).await);
                            assert_eq!(settlement.status(), pb::SettlementStatus::Reversed);
                            told.lock()
                                .unwrap()
                                .settlements
                                .insert(settlement.claim_id.clone(), settlement);
                        }
                    } else {
                        let quote = worked_example(patient, &format!("q{worker}-{n}"));
                        let (settlement, _) = settled(settlements.pre_settle(quote).await);
                        assert_eq!(settlement.status(), pb::SettlementStatus::Quote);
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }

    let told = Arc::into_inner(told).unwrap().into_inner().unwrap();
    let mut told_by_patient: HashMap<&str, (i64, i32)> = HashMap::new();
    for settlement in told.settlements.values() {
        let entry = told_by_patient.entry(&settlement.patient_id).or_default();

        if settlement.status() == pb::SettlementStatus::Settled {
            *entry = (entry.0 + fen(&settlement.assistance_amount), entry.1 + 1);
        }
    }
    let (mut used_everyone, mut told_everyone) = (0, 0);
    for patient in &patients {
        let usage = server.annual_usage(patient, 2026).await;
        let (told_fen, told_count) = told_by_patient
            .get(patient.as_str())
            .copied()
            .unwrap_or_default();
        assert_eq!(
            (fen(&usage.used), usage.settlement_count),
            (told_fen, told_count)
        );
        assert!(fen(&usage.used) <= 15_000_000, "{} used", usage.used);
        used_everyone += fen(&usage.used);
        told_everyone += told_fen;
    }
    assert_eq!(used_everyone, told_everyone);
    let dir = server.stop().await;
    let report = verify_dir(&dir);
    assert!(report.is_consistent(), "{report}");
    assert_eq!(report.assistance_total.fen(), used_everyone);
}

/// Proves the same Reverse sent 8 times at once reverses once and gives 8
/// answers about the same reversed record.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_reversal_sent_eight_times_at_once_reverses_once() {
    let server = TestServer::start().await;
    let patient = server.enroll("1960-01-01", 91).await;
    settled(
        server
            .settlements()
            .settle(worked_example(&patient, "ONCE"))
            .await,
    );
    settled(
        server
            .settlements()
            .settle(claim_paying_7000(&patient, "KEEP"))
            .await,
    );
    let reverse = pb::ReverseRequest {
        hospital_id: "H001".into(),
        claim_id: "ONCE".into(),
        reason: "duplicate bill".into(),
    };
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let (mut client, reverse) = (server.settlements(), reverse.clone());
            tokio::spawn(async move { settled(client.reverse(reverse).await) })
        })
        .collect();
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap());
    }
    assert_eq!(answers.iter().filter(|(_, replayed)| !replayed).count(), 1);
    assert!(answers.iter().all(|(s, _)| *s == answers[0].0));
    assert_eq!(answers[0].0.status(), pb::SettlementStatus::Reversed);
    let usage = server.annual_usage(&patient, 2026).await;
    assert_eq!(
        (usage.used.as_str(), usage.settlement_count),
        ("7000.00", 1)
    );
}
