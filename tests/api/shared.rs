//! What only the PostgreSQL store has: two instances on one database keep
//! every promise one instance keeps (the database decides, not either
//! process's memory), its schema migrations, and the grants its database
//! role needs. These tests always run on PostgreSQL, whichever store the
//! rest of the suite uses.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use medassist::grpc::pb;
use tempfile::TempDir;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::{backend, helpers::*};

/// Two servers, each with its own directory, on one fresh database.
async fn two_instances() -> (TestServer, TestServer, String) {
    let url = backend::fresh_database();
    let a = TestServer::on_database(url.clone()).await;
    let b = TestServer::on_database(url.clone()).await;
    (a, b, url)
}

/// Proves 200 claims of one patient, 100 sent to each instance at once and
/// together worth 1,400,000.00, pay exactly the 150,000.00 cap: 21 in full,
/// one partly, the rest nothing; both instances then report the same total.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_racing_one_patient_pay_exactly_the_cap() {
    let (a, b, url) = two_instances().await;
    let patient = a.enroll("1960-01-01", 61).await;
    let calls: Vec<_> = (0..200)
        .map(|n| {
            let server = if n % 2 == 0 { &a } else { &b };
            let mut client = server.settlements();
            let request = claim_paying_7000(&patient, &format!("RACE-{n:03}"));
            tokio::spawn(async move { settled(client.settle(request).await).0 })
        })
        .collect();
    let (mut paid_fen, mut full, mut partial) = (0i64, 0, 0);
    let mut ids = HashSet::new();
    for call in calls {
        let settlement = call.await.unwrap();
        assert!(
            ids.insert(settlement.settlement_id.clone()),
            "numbers are unique"
        );
        let fen = fen(&settlement.assistance_amount);
        paid_fen += fen;
        match fen {
            700_000 => full += 1,
            0 => assert!(settlement.capped),
            _ => partial += 1,
        }
    }
    assert_eq!(paid_fen, 15_000_000);
    assert_eq!((full, partial), (21, 1));
    for server in [&a, &b] {
        let usage = server.annual_usage(&patient, 2026).await;
        assert_eq!(
            (
                usage.used.as_str(),
                usage.remaining.as_str(),
                usage.settlement_count
            ),
            ("150000.00", "0.00", 200)
        );
    }
    a.stop().await;
    b.stop().await;
    let report = verify_postgres(&url);
    assert!(report.is_consistent(), "{report}");
}

/// Proves one claim key sent to both instances at once, eight times each,
/// is settled once: every answer names the same settlement, and the
/// patient's year holds one settlement.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_claim_key_sent_to_both_instances_settles_once() {
    let (a, b, _) = two_instances().await;
    let patient = a.enroll("1960-01-01", 62).await;
    let request = worked_example(&patient, "BOTH");
    let calls: Vec<_> = (0..16)
        .map(|n| {
            let server = if n % 2 == 0 { &a } else { &b };
            let mut client = server.settlements();
            let request = request.clone();
            tokio::spawn(async move { settled(client.settle(request).await) })
        })
        .collect();
    let mut numbers = HashSet::new();
    let mut fresh = 0;
    for call in calls {
        let (settlement, replayed) = call.await.unwrap();
        numbers.insert(settlement.settlement_id);
        fresh += usize::from(!replayed);
    }
    assert_eq!((numbers.len(), fresh), (1, 1));
    let usage = b.annual_usage(&patient, 2026).await;
    assert_eq!(usage.settlement_count, 1);
}

/// Proves a reversal sent to both instances at once happens once: the
/// amount goes back to the cap once, and every answer is the reversed
/// settlement.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reversal_sent_to_both_instances_happens_once() {
    let (a, b, url) = two_instances().await;
    let patient = a.enroll("1960-01-01", 63).await;
    for claim in ["KEEP", "UNDO"] {
        settled(
            a.settlements()
                .settle(claim_paying_7000(&patient, claim))
                .await,
        );
    }
    let calls: Vec<_> = (0..8)
        .map(|n| {
            let server = if n % 2 == 0 { &a } else { &b };
            let mut client = server.settlements();
            tokio::spawn(async move {
                client
                    .reverse(pb::ReverseRequest {
                        hospital_id: "H001".into(),
                        claim_id: "UNDO".into(),
                        reason: "duplicate bill".into(),
                    })
                    .await
                    .expect("reverse succeeds")
                    .into_inner()
            })
        })
        .collect();
    let mut fresh = 0;
    for call in calls {
        let answer = call.await.unwrap();
        fresh += usize::from(!answer.replayed);
        assert_eq!(
            answer.settlement.unwrap().status(),
            pb::SettlementStatus::Reversed
        );
    }
    assert_eq!(fresh, 1);
    let usage = a.annual_usage(&patient, 2026).await;
    assert_eq!(
        (usage.used.as_str(), usage.settlement_count),
        ("7000.00", 1)
    );
    a.stop().await;
    b.stop().await;
    let report = verify_postgres(&url);
    assert!(report.is_consistent(), "{report}");
}

/// Proves neither instance answers from memory what the other has since
/// changed: a roster record and a running total read through one
/// instance, then changed through the other, read back changed.
#[tokio::test]
async fn what_one_instance_writes_the_other_reads_at_once() {
    let (a, b, _) = two_instances().await;
    let patient = a.enroll("1960-01-01", 64).await;
    let read = |server: &TestServer| {
        let mut client = server.roster();
        let id = patient.clone();
        async move {
            client
                .get_person(pb::GetPersonRequest { patient_id: id })
                .await
                .expect("person found")
                .into_inner()
        }
    };
    assert_eq!(read(&a).await.name, "张三");
    let mut renamed = dibao_person(&patient);
    renamed.name = "李四".into();
    b.roster()
        .upsert_person(pb::UpsertPersonRequest {
            person: Some(renamed),
        })
        .await
        .expect("roster accepts the change");
    assert_eq!(read(&a).await.name, "李四");

    settled(
        b.settlements()
            .settle(claim_paying_7000(&patient, "FIRST"))
            .await,
    );
    assert_eq!(a.annual_usage(&patient, 2026).await.used, "7000.00");
    settled(
        a.settlements()
            .settle(claim_paying_7000(&patient, "SECOND"))
            .await,
    );
    assert_eq!(b.annual_usage(&patient, 2026).await.used, "14000.00");
}

/// A settlement is assessed on the roster record as committed when its
/// batch runs, whichever instance changed it last: no instance answers
/// from a roster it read earlier.
#[tokio::test]
async fn each_settlement_is_assessed_on_the_roster_as_last_committed() {
    let (a, b, _) = two_instances().await;
    let patient = a.enroll("1960-01-01", 64).await;
    let (first, _) = settled(
        b.settlements()
            .settle(claim_paying_7000(&patient, "ON"))
            .await,
    );
    assert_eq!(first.assistance_amount, "7000.00");

    let mut left = dibao_person(&patient);
    left.enrollments[0].valid_to = "2025-12-31".into();
    a.roster()
        .upsert_person(pb::UpsertPersonRequest { person: Some(left) })
        .await
        .expect("roster accepts the exit");
    let (second, _) = settled(
        b.settlements()
            .settle(claim_paying_7000(&patient, "OFF"))
            .await,
    );
    assert_eq!(second.assistance_amount, "0.00", "{second:?}");

    a.roster()
        .upsert_person(pb::UpsertPersonRequest {
            person: Some(dibao_person(&patient)),
        })
        .await
        .expect("roster accepts the return");
    let (third, _) = settled(
        b.settlements()
            .settle(claim_paying_7000(&patient, "BACK"))
            .await,
    );
    assert_eq!(third.assistance_amount, "7000.00");
}

/// Runs `medassist migrate` on `url`; its exit code and what it printed.
fn migrate(url: &str) -> (i32, String) {
    medassist_on(url, "migrate")
}

/// Runs `medassist COMMAND --database-url URL`: its exit code and output.
fn medassist_on(url: &str, command: &str) -> (i32, String) {
    let output = std::process::Command::new(BINARY)
        .args([command, "--database-url", url])
        .output()
        .expect("medassist runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), text)
}

/// Proves `medassist migrate` brings a fresh database to the binary's
/// schema, does nothing the second time, and that a schema newer than the
/// binary is refused by migrate, the server and verify, with the reason;
/// and that verify, a check, migrates nothing: it refuses a database
/// without the schema and leaves it without.
#[tokio::test]
async fn migrations_apply_once_and_a_newer_schema_is_refused() {
    let url = backend::fresh_database();
    let name = url.rsplit('/').next().unwrap();
    let (code, text) = medassist_on(&url, "verify");
    assert_ne!(code, 0, "{text}");
    assert!(
        text.contains("schema is version 0, older than this medassist's (version 1)"),
        "{text}"
    );
    assert_eq!(
        backend::admin_on(name, "SELECT to_regclass('medassist_schema') IS NULL"),
        ["t"],
        "verify made no schema"
    );
    let (code, text) = migrate(&url);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("schema migrated from version 0 to 1"),
        "{text}"
    );
    let (code, text) = migrate(&url);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("schema is at version 1: nothing to do"),
        "{text}"
    );

    backend::admin_on(name, "INSERT INTO medassist_schema (version) VALUES (2)");
    for command in ["migrate", "verify"] {
        let (code, text) = medassist_on(&url, command);
        assert_eq!(code, 2, "{command}: {text}");
        assert!(
            text.contains("schema is version 2, newer than this medassist knows (version 1)"),
            "{command}: {text}"
        );
    }
    let dir = TempDir::new().unwrap();
    let config = TestServer::config_on(&dir, url);
    let refused = medassist::server::Server::bind(config).await.err();
    assert!(
        refused.is_some_and(|e| e.to_string().contains("newer than this medassist knows")),
        "the server refuses a newer schema"
    );
}

/// Proves the README's database role, its SQL read from the README, is
/// enough to serve a migrated database on which nobody else may create
/// anything: SELECT, INSERT and UPDATE on the three tables, SELECT on
/// medassist_schema, the sequence; no CREATE, no DELETE.
#[tokio::test]
async fn the_documented_grants_are_enough_to_serve() {
    let url = backend::fresh_database();
    assert_eq!(migrate(&url).0, 0);
    let name = url.rsplit('/').next().unwrap();
    let role = format!("{name}_app");
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("the README");
    let create = "CREATE ROLE medassist_app LOGIN;";
    let block = readme
        .split_once(create)
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(grants, _)| grants)
        .expect("the README's SQL for the database role");
    backend::admin(&create.replace("medassist_app", &role));
    backend::admin_on(
        name,
        &format!(
            "REVOKE CREATE ON SCHEMA public FROM PUBLIC; {}",
            block.replace("medassist_app", &role)
        ),
    );
    let server = TestServer::on_database(url.replacen("postgres@", &format!("{role}@"), 1)).await;
    let patient = server.enroll("1960-01-01", 65).await;
    let (settlement, _) = settled(
        server
            .settlements()
            .settle(worked_example(&patient, "GRANTS"))
            .await,
    );
    assert_eq!(settlement.assistance_amount, "7350.00");
    server.stop().await;
    backend::admin(&format!("DROP DATABASE {name} WITH (FORCE)"));
    backend::admin(&format!("DROP ROLE {role}"));
}

/// The server's overall health ("").
async fn health(server: &TestServer) -> ServingStatus {
    let answer = HealthClient::new(server.channel())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health answers");
    answer.into_inner().status()
}

/// Polls until the server's health is `wanted`, at most `within`; how long
/// it took.
async fn health_becomes(server: &TestServer, wanted: ServingStatus, within: Duration) -> Duration {
    let started = Instant::now();
    while health(server).await != wanted {
        assert!(
            started.elapsed() < within,
            "health still not {wanted:?} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

/// Proves that while the database refuses connections the server says
/// NOT_SERVING and fails calls at once with UNAVAILABLE, then serves again
/// by itself once the database is back, and a settlement retried with the
/// same claim key settles exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_database_the_server_fails_fast_and_recovers_by_itself() {
    let url = backend::fresh_database();
    let name = url.rsplit('/').next().unwrap().to_owned();
    let server = TestServer::on_database(url).await;
    let patient = server.enroll("1960-01-01", 66).await;
    settled(
        server
            .settlements()
            .settle(claim_paying_7000(&patient, "BEFORE"))
            .await,
    );

    backend::admin(&format!(
        "ALTER DATABASE {name} ALLOW_CONNECTIONS false; \
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ));
    health_becomes(&server, ServingStatus::NotServing, Duration::from_secs(5)).await;
    let started = Instant::now();
    let refused = server
        .settlements()
        .settle(claim_paying_7000(&patient, "DURING"))
        .await
        .expect_err("no database, no settlement");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "failed fast, not after {:?}",
        started.elapsed()
    );

    backend::admin(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"));
    let back = health_becomes(&server, ServingStatus::Serving, Duration::from_secs(10)).await;
    println!("serving again {back:?} after the database accepted connections");
    let (settlement, replayed) = settled(
        server
            .settlements()
            .settle(claim_paying_7000(&patient, "DURING"))
            .await,
    );
    assert!(!replayed);
    assert_eq!(settlement.assistance_amount, "7000.00");
    let usage = server.annual_usage(&patient, 2026).await;
    assert_eq!(
        (usage.used.as_str(), usage.settlement_count),
        ("14000.00", 2)
    );
}

/// Proves settles and reversals of two patients, sent to both instances at
/// once and alternating between them, all succeed (lock cycles and collisions between
/// the instances' batches are run again, never answered as errors), and
/// leave each patient's total equal to the settlements still counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn interleaved_settles_and_reversals_on_both_instances_all_succeed() {
    let (a, b, url) = two_instances().await;
    let patients = [
        a.enroll("1960-01-01", 67).await,
        b.enroll("1960-01-01", 68).await,
    ];
    for n in 0..10 {
        for patient in &patients {
            let claim = format!("OLD-{}-{n}", &patient[14..]);
            settled(
                a.settlements()
                    .settle(claim_paying_7000(patient, &claim))
                    .await,
            );
        }
    }
    let mut calls = Vec::new();
    for n in 0..10 {
        for (p, patient) in patients.iter().enumerate() {
            let server = if (n + p) % 2 == 0 { &a } else { &b };
            let mut reverser = server.settlements();
            let reverse = pb::ReverseRequest {
                hospital_id: "H001".into(),
                claim_id: format!("OLD-{}-{n}", &patient[14..]),
                reason: "billing error".into(),
            };
            calls.push(tokio::spawn(async move {
                reverser.reverse(reverse).await.map(|_| ())
            }));
            let mut settler = if (n + p) % 2 == 0 { &b } else { &a }.settlements();
            let settle = claim_paying_7000(patient, &format!("NEW-{}-{n}", &patient[14..]));
            calls.push(tokio::spawn(async move {
                settler.settle(settle).await.map(|_| ())
            }));
        }
    }
    for call in calls {
        call.await.unwrap().expect("every call succeeds");
    }
    for patient in &patients {
        let usage = a.annual_usage(patient, 2026).await;
        // 10 old and 10 new claims of 7,000.00 never reach the cap together,
        // so every order ends with the 10 new ones counted in full.
        assert_eq!(
            (usage.used.as_str(), usage.settlement_count),
            ("70000.00", 10)
        );
    }
    a.stop().await;
    b.stop().await;
    let report = verify_postgres(&url);
    assert!(report.is_consistent(), "{report}");
}
