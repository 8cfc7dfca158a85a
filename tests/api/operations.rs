//! What an operator relies on: metrics, the concurrency limit, and logs that
//! keep personal data out.

use std::sync::{Arc, Condvar, Mutex};

use medassist::{
    config::{Config, Limits},
    grpc::pb,
    store::{CommitStep, FaultPlan, SledOptions, SledStore},
};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::helpers::*;

/// Fetches `/metrics` with a plain HTTP/1.1 request.
pub async fn scrape(addr: std::net::SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: medassist\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

/// Proves the metrics endpoint shows calls just made: requests by RPC and
/// code, latency, settlements and assistance by outcome, store commits.
#[tokio::test]
async fn metrics_show_the_calls_made() {
    let dir = Arc::new(TempDir::new().unwrap());
    let mut config = TestServer::config_for(&dir);
    config.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    let server = TestServer::launch(dir, config, None).await;
    let patient = server.enroll("1960-01-01", 401).await;
    settled(
        server
            .settlements()
            .settle(worked_example(&patient, "MET-1"))
            .await,
    );
    let bad = pb::SettleRequest {
        total_cost: "-1".into(),
        ..worked_example(&patient, "MET-2")
    };
    assert_eq!(
        server.settlements().settle(bad).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let reverse = pb::ReverseRequest {
        hospital_id: "H001".into(),
        claim_id: "MET-1".into(),
        reason: "test".into(),
    };
    settled(server.settlements().reverse(reverse).await);

    let text = scrape(server.metrics_addr.unwrap()).await;
    for expected in [
        r#"medassist_requests_total{rpc="/medassist.v1.SettlementService/Settle",code="OK"} 1"#,
        r#"medassist_requests_total{rpc="/medassist.v1.SettlementService/Settle",code="INVALID_ARGUMENT"} 1"#,
        r#"medassist_requests_total{rpc="/medassist.v1.RosterService/UpsertPerson",code="OK"} 1"#,
        r#"medassist_request_duration_seconds_count{rpc="/medassist.v1.SettlementService/Settle"} 2"#,
        r#"medassist_settlements_total{outcome="paid"} 1"#,
        r#"medassist_assistance_fen_total{outcome="paid"} 735000"#,
        "medassist_reversals_total 1",
        // 11,150.00 left to pay reaches the 10,000.00 threshold.
        r#"medassist_referrals_total{reason="high_out_of_pocket"} 1"#,
        "medassist_reversed_assistance_fen_total 735000",
        "medassist_requests_in_flight 0",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    // Three writes, in as many commits or more: audit records of the
    // refused call commit too.
    for timed in [
        "medassist_store_apply_duration_seconds_count ",
        "medassist_store_flush_duration_seconds_count ",
    ] {
        let count: u64 = text
            .lines()
            .find_map(|line| line.strip_prefix(timed))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("missing {timed:?} in\n{text}"));
        assert!(count >= 3, "{timed}{count}");
    }
}

/// Holds every commit until released, so requests pile up in the server.
#[derive(Default)]
struct Hold {
    held: Mutex<bool>,
    released: Condvar,
}

impl Hold {
    fn set(&self, held: bool) {
        *self.held.lock().unwrap() = held;
        self.released.notify_all();
    }
}

impl FaultPlan for Hold {
    fn fails(&self, step: CommitStep) -> bool {
        if step == CommitStep::BeforeWrite {
            let held = self.held.lock().unwrap();
            drop(self.released.wait_while(held, |held| *held).unwrap());
        }
        false
    }
}

/// Proves a burst above the concurrency limit: with 4 settlements held in
/// the server, 12 more are refused RESOURCE_EXHAUSTED at once while health
/// still answers; the 4 then succeed, and so does the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_above_the_limit_is_shed_not_queued() {
    let dir = Arc::new(TempDir::new().unwrap());
    std::fs::create_dir_all(data_dir(&dir)).unwrap();
    let hold = Arc::new(Hold::default());
    let store =
        SledStore::open_with_faults(&data_dir(&dir), SledOptions::default(), hold.clone()).unwrap();
    let mut config = TestServer::config_for(&dir);
    config.config = Config {
        limits: Limits {
            concurrent_requests_max: 4,
            ..Limits::default()
        },
        ..Config::default()
    };
    let server = TestServer::launch(dir, config, Some(Arc::new(store))).await;
    let patient = server.enroll("1960-01-01", 402).await;

    hold.set(true);
    let held: Vec<_> = (0..4)
        .map(|n| {
            let (mut client, request) = (
                server.settlements(),
                claim_paying_7000(&patient, &format!("B-{n}")),
            );
            tokio::spawn(async move { client.settle(request).await })
        })
        .collect();
    // The four are admitted when the gate counts them; waiting yields to the
    // runtime and never sleeps.
    let admitted = async {
        while server.gate.in_flight() < 4 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), admitted)
        .await
        .expect("the held requests are admitted");

    let excess: Vec<_> = (0..12)
        .map(|n| {
            let (mut client, request) = (
                server.settlements(),
                claim_paying_7000(&patient, &format!("X-{n}")),
            );
            tokio::spawn(async move { client.settle(request).await })
        })
        .collect();
    for call in excess {
        let status = call.await.unwrap().unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    }
    let health = HealthClient::new(server.channel())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await;
    assert!(health.is_ok(), "health is never limited");

    hold.set(false);
    for call in held {
        let settlement = call
            .await
            .unwrap()
            .expect("held requests succeed")
            .into_inner()
            .settlement
            .unwrap();
        assert_eq!(settlement.assistance_amount, "7000.00");
    }
    let (after, _) = settled(
        server
            .settlements()
            .settle(claim_paying_7000(&patient, "after"))
            .await,
    );
    assert!(!after.settlement_id.is_empty());
    let usage = server.annual_usage(&patient, 2026).await;
    assert_eq!(
        usage.settlement_count, 5,
        "4 held + 1 after; the 12 refused left no trace"
    );
}

/// Proves a full run of the real binary at `trace` (roster writes, an
/// import and an export, quotes, settlements, replays, conflicts,
/// reversals, bad input, lookups, lists, batch reads, reconciliation, the
/// audit trail, and HTTP/JSON calls with IDs in their paths and bodies)
/// logs audit events with the caller, and never a whole resident ID, a
/// birth date, a name or a diagnosis code, in text or JSON.
#[tokio::test]
async fn logs_of_a_full_run_hold_no_whole_resident_id() {
    for format in ["text", "json"] {
        let dir = TempDir::new().unwrap();
        let server = ServerProcess::start_logging(
            &dir.path().join("data"),
            &["--log-format", format, "--http-listen", "127.0.0.1:0"],
            "trace",
        )
        .await;
        let channel = server.channel.clone();
        let mut roster =
            medassist::grpc::pb::roster_service_client::RosterServiceClient::new(channel.clone());
        let mut settlements =
            medassist::grpc::pb::settlement_service_client::SettlementServiceClient::new(
                channel.clone(),
            );
        let mut usage =
            medassist::grpc::pb::usage_service_client::UsageServiceClient::new(channel.clone());
        let ids: Vec<String> = (0..3).map(|n| resident_id("1950-03-04", 410 + n)).collect();
        for id in &ids {
            let person = pb::Person {
                name: "欧阳明月".into(),
                ..dibao_person(id)
            };
            roster
                .upsert_person(pb::UpsertPersonRequest {
                    person: Some(person),
                })
                .await
                .unwrap();
        }
        let stranger = resident_id("1990-09-09", 419);
        for (n, id) in ids.iter().chain([&stranger]).enumerate() {
            let request = worked_example(id, &format!("LOG-{n}"));
            settlements.pre_settle(request.clone()).await.unwrap();
            settlements.settle(request.clone()).await.unwrap();
            settlements.settle(request.clone()).await.unwrap();
            let changed = pb::SettleRequest {
                total_cost: "60000.00".into(),
                ..request
            };
            assert_eq!(
                settlements.settle(changed).await.unwrap_err().code(),
                Code::AlreadyExists
            );
            let reverse = pb::ReverseRequest {
                hospital_id: "H001".into(),
                claim_id: format!("LOG-{n}"),
                reason: "log test".into(),
            };
            settlements.reverse(reverse).await.unwrap();
            usage
                .get_annual_usage(pb::GetAnnualUsageRequest {
                    patient_id: id.clone(),
                    year: 2026,
                })
                .await
                .ok();
        }
        let wrong_check = format!("{}0", &stranger[..17]);
        let bad = pb::SettleRequest {
            patient_id: wrong_check.clone(),
            ..worked_example(&stranger, "LOG-X")
        };
        settlements.settle(bad).await.unwrap_err();
        roster
            .get_person(pb::GetPersonRequest {
                patient_id: stranger.clone(),
            })
            .await
            .unwrap_err();
        every_read(&channel, &ids, &stranger).await;
        let http = server.http_addr().expect("the HTTP/JSON port is announced");
        {
            let body = serde_json::json!({"patientId": ids[0], "year": 2026});
            http_call(http, "POST", "/v1/usages:get", Some(body)).await;
            // A route that once carried the ID in its path, now gone.
            let path = format!("/v1/patients/{}/usage/2026", ids[0]);
            http_call(http, "GET", &path, None).await;
            http_call(http, "GET", &format!("/v1/nothing/{}", ids[1]), None).await;
            let body = serde_json::json!({"patientIds": [ids[2], stranger], "year": 2026});
            http_call(http, "POST", "/v1/usages:batchGet", Some(body)).await;
        }

        let log = server.terminate().await.join("\n");
        for id in ids.iter().chain([&stranger, &wrong_check]) {
            assert!(
                !log.contains(id.as_str()),
                "{format} log holds resident ID {id}:\n{log}"
            );
            assert!(
                !log.contains(&id[6..14]),
                "{format} log holds a birth date of {id}"
            );
        }
        assert!(!log.contains("欧阳明月"), "{format} log holds a name");
        for code in ["N18.500", "N18"] {
            assert!(!log.contains(code), "{format} log holds diagnosis {code}");
        }
        assert!(
            log.contains("medassist::audit"),
            "{format} log has audit events:\n{log}"
        );
        assert!(
            log.contains("open-loopback"),
            "audit events name the caller"
        );
        assert!(log.contains("320602********"), "patients appear masked");
        if format == "json" {
            assert!(
                log.lines().all(|line| line.starts_with('{')),
                "every JSON line is an object"
            );
        }
    }
}

/// Every read and bulk call a log might carry a patient in: lists, batch
/// reads (one patient absent), an import and an export, referrals, a day's
/// reconciliation and export, the audit trail by patient.
async fn every_read(channel: &tonic::transport::Channel, ids: &[String], absent: &str) {
    use medassist::grpc::pb::{
        audit_service_client::AuditServiceClient,
        reconciliation_service_client::ReconciliationServiceClient,
        roster_service_client::RosterServiceClient, usage_service_client::UsageServiceClient,
    };
    use tokio_stream::StreamExt as _;
    let mut usage = UsageServiceClient::new(channel.clone());
    usage
        .list_settlements(pb::ListSettlementsRequest {
            patient_id: ids[0].clone(),
            year: 2026,
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .unwrap();
    let batch = usage
        .batch_get_annual_usage(pb::BatchGetAnnualUsageRequest {
            patient_ids: vec![ids[1].clone(), absent.to_owned()],
            year: 2026,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        batch
            .not_found
            .iter()
            .all(|id| !id.contains(&absent[6..14])),
        "not_found is masked: {:?}",
        batch.not_found
    );
    let mut roster = RosterServiceClient::new(channel.clone());
    let records = vec![pb::UpsertPersonRequest {
        person: Some(dibao_person(&ids[2])),
    }];
    roster
        .import_persons(tokio_stream::iter(records))
        .await
        .unwrap();
    let exported: Vec<_> = roster
        .export_persons(pb::ExportPersonsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .collect()
        .await;
    assert!(!exported.is_empty());
    roster
        .list_referrals(pb::ListReferralsRequest {
            region_code: "320600".into(),
            from_date: "2026-01-01".into(),
            to_date: "2026-12-31".into(),
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .unwrap();
    let mut reconciliation = ReconciliationServiceClient::new(channel.clone());
    let settled: Vec<_> = reconciliation
        .export_settlements(pb::ExportSettlementsRequest {
            from_date: "2026-01-01".into(),
            to_date: "2026-12-31".into(),
            hospital_id: "H001".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .collect()
        .await;
    assert!(!settled.is_empty());
    AuditServiceClient::new(channel.clone())
        .list_audit_records(pb::ListAuditRecordsRequest {
            from_time: Some(prost_types::Timestamp::default()),
            to_time: Some(prost_types::Timestamp {
                seconds: 4_000_000_000,
                nanos: 0,
            }),
            patient_id: ids[0].clone(),
            ..Default::default()
        })
        .await
        .unwrap();
}

/// One HTTP/1.1 call on a fresh connection; the answer is not read closely,
/// only that one came.
async fn http_call(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 "), "an HTTP answer");
}
