//! `medassist export` and `medassist reconcile`, the real binary against a
//! real server.

use std::{process::Output, sync::Arc};

use medassist::{clock::ManualClock, grpc::pb};

use crate::helpers::*;

/// Runs the binary with `args` off the runtime's thread (the server under
/// test runs on it).
async fn run(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(BINARY)
            .args(&args)
            .output()
            .expect("the binary runs")
    })
    .await
    .unwrap()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

/// Proves `export` writes one header and one row per settlement of the
/// range (a reversal on a later day included once) as CSV, the same as JSON
/// lines, and that `reconcile` prints the comparison and exits 0 when the
/// figures match, 1 when they do not.
#[tokio::test]
async fn export_and_reconcile_from_the_command_line() {
    let clock = ManualClock::new(at("2026-11-30T01:00:00Z"));
    let server = TestServer::start_with_clock(Arc::clone(&clock)).await;
    let patient = server.enroll("1960-01-01", 701).await;
    for n in 0..3 {
        settled(
            server
                .settlements()
                .settle(worked_example(&patient, &format!("X-{n}")))
                .await,
        );
    }
    clock.set(at("2026-12-01T01:00:00Z"));
    server
        .settlements()
        .reverse(pb::ReverseRequest {
            hospital_id: "H001".into(),
            claim_id: "X-0".into(),
            reason: "duplicate".into(),
        })
        .await
        .unwrap();
    let target = format!("http://{}", server.addr);
    let dir = tempfile::TempDir::new().unwrap();
    let csv = dir.path().join("out.csv");
    let done = run(strings(&[
        "export",
        "--target",
        &target,
        "--from",
        "2026-11-30",
        "--to",
        "2026-12-01",
        "--output",
        csv.to_str().unwrap(),
    ]))
    .await;
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "a header and three settlements: {text}");
    assert!(lines[0].starts_with("settlementId,hospitalId,claimId,"));
    assert!(
        lines[1].contains(",SETTLEMENT_STATUS_REVERSED,"),
        "{}",
        lines[1]
    );
    assert!(lines[2].contains(",7350.00,"), "{}", lines[2]);
    assert!(String::from_utf8_lossy(&done.stderr).contains("exported 3 settlements"));

    let jsonl = run(strings(&[
        "export",
        "--target",
        &target,
        "--from",
        "2026-12-01",
        "--to",
        "2026-12-01",
        "--hospital",
        "H001",
        "--format",
        "jsonl",
    ]))
    .await;
    assert!(jsonl.status.success());
    let out = String::from_utf8(jsonl.stdout).unwrap();
    assert_eq!(
        out.lines().count(),
        1,
        "only the reversal falls on the 1st: {out}"
    );
    let object: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(object["reversedBy"], "open");
    assert_eq!(object["reversedDay"], "2026-12-01");

    let reconcile = |figures: [&str; 4]| {
        run(strings(&[
            "reconcile",
            "--target",
            &target,
            "--hospital",
            "H001",
            "--date",
            "2026-11-30",
            "--settled-count",
            figures[0],
            "--assistance-total",
            figures[1],
            "--reversed-count",
            figures[2],
            "--reversed-total",
            figures[3],
        ]))
    };
    let matched = reconcile(["3", "22050.00", "0", "0"]).await;
    let printed = String::from_utf8_lossy(&matched.stdout).into_owned();
    assert_eq!(matched.status.code(), Some(0), "{printed}");
    assert!(printed.contains("MATCHED"), "{printed}");
    let differs = reconcile(["3", "22050.00", "1", "7350"]).await;
    let printed = String::from_utf8_lossy(&differs.stdout).into_owned();
    assert_eq!(differs.status.code(), Some(1), "{printed}");
    assert!(
        printed.contains("reversed_count") && printed.contains("DIFFERS"),
        "{printed}"
    );
    assert!(printed.contains("NOT MATCHED"), "{printed}");
    let refused = reconcile(["3", "not money", "0", "0"]).await;
    assert_eq!(
        refused.status.code(),
        Some(2),
        "an invalid request is an error"
    );
}
