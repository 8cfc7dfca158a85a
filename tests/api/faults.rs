//! Storage faults through the storage trait: a store that fails at a chosen
//! commit step. Each failure must reach the caller as UNAVAILABLE, leave no
//! partial state, and a retry after recovery must succeed exactly once.

use std::sync::{
    Arc,
    atomic::{AtomicU8, Ordering},
};

use medassist::{
    config::Config,
    grpc::pb,
    store::{CommitStep, FaultPlan, SledOptions, SledStore},
};
use tempfile::TempDir;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::helpers::*;

/// Fails the next commit at one step, once, when armed.
#[derive(Default)]
struct FailOnce {
    /// 0: disarmed; otherwise 1 + the step's position.
    armed: AtomicU8,
}

const STEPS: [CommitStep; 3] = [
    CommitStep::BeforeWrite,
    CommitStep::AtApply,
    CommitStep::AtFlush,
];

impl FailOnce {
    fn arm(&self, step: CommitStep) {
        let position = STEPS.iter().position(|s| *s == step).unwrap() as u8;
        self.armed.store(position + 1, Ordering::SeqCst);
    }
}

impl FaultPlan for FailOnce {
    fn fails(&self, step: CommitStep) -> bool {
        let position = STEPS.iter().position(|s| *s == step).unwrap() as u8;
        self.armed
            .compare_exchange(position + 1, 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }
}

async fn faulty_server(plan: &Arc<FailOnce>) -> TestServer {
    let dir = Arc::new(TempDir::new().unwrap());
    std::fs::create_dir_all(data_dir(&dir)).unwrap();
    let store =
        SledStore::open_with_faults(&data_dir(&dir), SledOptions::default(), plan.clone()).unwrap();
    TestServer::start_with_store(dir, Arc::new(store)).await
}

async fn usage(server: &TestServer, patient: &str) -> (String, i32) {
    let usage = server.annual_usage(patient, 2026).await;
    (usage.used, usage.settlement_count)
}

async fn settlement_of(server: &TestServer, claim: &str) -> Result<pb::Settlement, tonic::Status> {
    server
        .settlements()
        .get_settlement(pb::GetSettlementRequest {
            hospital_id: "H001".into(),
            claim_id: claim.into(),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner())
}

/// Waits, through the health Watch stream, until the server reports NOT_SERVING.
async fn until_not_serving(server: &TestServer) {
    let mut health = HealthClient::new(server.channel());
    let mut updates = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    while let Some(update) = updates.next().await {
        if update.unwrap().status() == ServingStatus::NotServing {
            return;
        }
    }
    panic!("the health stream ended before NOT_SERVING");
}

/// After a poisoning failure: everything is UNAVAILABLE and health says so;
/// a restart on the same directory recovers a consistent store.
async fn recover(server: TestServer, patient: &str) -> TestServer {
    let other = server
        .settlements()
        .settle(worked_example(patient, "other"))
        .await
        .unwrap_err();
    assert_eq!(
        other.code(),
        Code::Unavailable,
        "a poisoned store serves nothing"
    );
    until_not_serving(&server).await;
    let dir = server.stop().await;
    let report = verify_dir(&dir);
    assert!(report.is_consistent(), "{report}");
    TestServer::start_with(dir, Config::default()).await
}

/// Proves a failed settlement at each commit step is UNAVAILABLE, leaves
/// nothing behind, and settles exactly once when retried after recovery.
#[tokio::test]
async fn a_failed_settlement_leaves_nothing_and_retries_once() {
    for step in STEPS {
        let plan = Arc::new(FailOnce::default());
        let mut server = faulty_server(&plan).await;
        let patient = server.enroll("1960-01-01", 81).await;
        let request = worked_example(&patient, "F-1");

        plan.arm(step);
        let status = server
            .settlements()
            .settle(request.clone())
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{step:?}: {status:?}");

        if step == CommitStep::AtFlush {
            server = recover(server, &patient).await;
        } else {
            assert_eq!(
                settlement_of(&server, "F-1").await.unwrap_err().code(),
                Code::NotFound,
                "{step:?}"
            );
            assert_eq!(
                usage(&server, &patient).await,
                ("0.00".into(), 0),
                "{step:?}"
            );
        }
        let (first, _) = settled(server.settlements().settle(request.clone()).await);
        assert_eq!(first.assistance_amount, "7350.00", "{step:?}");
        let (again, replayed) = settled(server.settlements().settle(request).await);
        assert!(replayed, "{step:?}");
        assert_eq!(again, first);
        assert_eq!(
            usage(&server, &patient).await,
            ("7350.00".into(), 1),
            "{step:?}: charged exactly once"
        );
        let dir = server.stop().await;
        let report = verify_dir(&dir);
        assert!(report.is_consistent(), "{step:?}: {report}");
    }
}

/// Proves the same for a reversal: the settlement stays settled and charged
/// until a retried reversal succeeds, once.
#[tokio::test]
async fn a_failed_reversal_leaves_nothing_and_retries_once() {
    for step in STEPS {
        let plan = Arc::new(FailOnce::default());
        let mut server = faulty_server(&plan).await;
        let patient = server.enroll("1960-01-01", 82).await;
        let (settlement, _) = settled(
            server
                .settlements()
                .settle(worked_example(&patient, "R-1"))
                .await,
        );
        let reverse = pb::ReverseRequest {
            hospital_id: "H001".into(),
            claim_id: "R-1".into(),
            reason: "bill corrected".into(),
        };

        plan.arm(step);
        let status = server
            .settlements()
            .reverse(reverse.clone())
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{step:?}: {status:?}");

        if step == CommitStep::AtFlush {
            server = recover(server, &patient).await;
        } else {
            assert_eq!(
                settlement_of(&server, "R-1").await.unwrap(),
                settlement,
                "{step:?}"
            );
            assert_eq!(
                usage(&server, &patient).await,
                ("7350.00".into(), 1),
                "{step:?}"
            );
        }
        let (reversed, _) = settled(server.settlements().reverse(reverse.clone()).await);
        assert_eq!(reversed.status(), pb::SettlementStatus::Reversed);
        let (again, replayed) = settled(server.settlements().reverse(reverse).await);
        assert!(replayed);
        assert_eq!(again, reversed);
        assert_eq!(
            usage(&server, &patient).await,
            ("0.00".into(), 0),
            "{step:?}: refunded exactly once"
        );
        let dir = server.stop().await;
        assert!(verify_dir(&dir).is_consistent(), "{step:?}");
    }
}

/// Proves a failed roster write is UNAVAILABLE and leaves the old record.
#[tokio::test]
async fn a_failed_roster_write_keeps_the_old_record() {
    let plan = Arc::new(FailOnce::default());
    let server = faulty_server(&plan).await;
    let patient = server.enroll("1960-01-01", 83).await;
    let renamed = pb::Person {
        name: "李四".into(),
        ..dibao_person(&patient)
    };
    plan.arm(CommitStep::AtApply);
    let status = server
        .roster()
        .upsert_person(pb::UpsertPersonRequest {
            person: Some(renamed.clone()),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    let person = server
        .roster()
        .get_person(pb::GetPersonRequest {
            patient_id: patient.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(person.name, "张三");
    server
        .roster()
        .upsert_person(pb::UpsertPersonRequest {
            person: Some(renamed),
        })
        .await
        .unwrap();
    let person = server
        .roster()
        .get_person(pb::GetPersonRequest {
            patient_id: patient,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(person.name, "李四");
}
