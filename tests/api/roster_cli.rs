//! `medassist roster import` and `export`: the real binary against a real
//! server, on files a civil affairs clerk would have.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use medassist::grpc::pb;
use tempfile::TempDir;

use crate::helpers::*;

const HEADER: &str = "patient_id,name,region_code,psychiatric_disability_grade,paralysis_certified,enrollment_kind,valid_from,valid_to,exit\n";
const NAMES: [&str; 5] = ["张三", "李四", "王五", "赵六", "欧阳娜娜"];

/// A roster file of `count` people, every 7th with two enrollments (two
/// adjacent rows); returns the text and each person's ID and first line.
fn roster_file(count: usize) -> (String, Vec<(String, u64)>) {
    let mut text = String::from(HEADER);
    let mut people = Vec::with_capacity(count);
    let mut line = 1;
    for i in 0..count {
        let birth = format!("{}-01-01", 1930 + i / 900);
        let id = resident_id(&birth, (i % 900) as u16 + 1);
        let name = NAMES[i % NAMES.len()];
        line += 1;
        people.push((id.clone(), line));
        if i % 7 == 0 {
            text.push_str(&format!(
                "{id},{name},320602,0,false,DIBAO,2020-01-01,2025-11-30,GRADUAL_EXIT\n"
            ));
            text.push_str(&format!(
                "{id},{name},320602,0,false,REGISTERED_POOR,2016-01-01,2020-12-31,LEFT_POVERTY\n"
            ));
            line += 1;
        } else {
            text.push_str(&format!("{id},{name},320602,0,false,DIBAO,2020-01-01,,\n"));
        }
    }
    (text, people)
}

/// Runs the binary off the test's runtime thread, which the in-process
/// server needs to answer it.
async fn run(args: &[&str]) -> Output {
    let mut command = Command::new(BINARY);
    command.args(args).env_remove("MEDASSIST_TOKEN");
    tokio::task::spawn_blocking(move || command.output().expect("the binary runs"))
        .await
        .unwrap()
}

async fn import(server: &TestServer, file: &Path, extra: &[&str]) -> Output {
    let target = format!("http://{}", server.addr);
    let mut args = vec![
        "roster",
        "import",
        file.to_str().unwrap(),
        "--target",
        &target,
    ];
    args.extend_from_slice(extra);
    run(&args).await
}

async fn export(server: &TestServer, file: &Path) -> Output {
    let target = format!("http://{}", server.addr);
    run(&[
        "roster",
        "export",
        "--target",
        &target,
        "--output",
        file.to_str().unwrap(),
    ])
    .await
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn write(dir: &TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Proves a 10,000-person file with a few bad rows loads every good person,
/// exits 1, and names each bad row by its file line and column: an
/// enrollment ending before it starts (on a person's second row), a kind of
/// no known form, a bad check digit, and a person repeated further down.
#[tokio::test]
async fn ten_thousand_rows_with_a_few_bad_ones() {
    let server = TestServer::start().await;
    let dir = TempDir::new().unwrap();
    let (text, people) = roster_file(10_000);
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    // Person 7 has two rows; break the end date of the second (line 2 + 1).
    let second_row = people[7].1 as usize; // 0-based index of the next line
    lines[second_row] = lines[second_row].replace("2020-12-31", "2015-12-31");
    let kind_line = people[100].1 as usize - 1;
    lines[kind_line] = lines[kind_line].replace("DIBAO", "DIBAOO");
    let id_line = people[200].1 as usize - 1;
    let bad_id = {
        let id = &people[200].0;
        let last = if id.ends_with('1') { "2" } else { "1" };
        format!("{}{last}", &id[..17])
    };
    lines[id_line] = lines[id_line].replace(&people[200].0, &bad_id);
    lines.push(lines[people[300].1 as usize - 1].clone());
    let file = write(&dir, "roster.csv", (lines.join("\n") + "\n").as_bytes());

    let output = import(&server, &file, &[]).await;
    let out = stdout(&output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{out}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        out.contains("10001 people: 9997 created, 0 updated, 0 unchanged, 4 rejected"),
        "{out}"
    );
    let expected = [
        format!("line {}, valid_to: is before valid_from", people[7].1 + 1),
        format!("line {}, enrollment_kind: must be DIBAO", people[100].1),
        format!("line {}, patient_id: ", people[200].1),
        format!("line {}, patient_id: appears earlier", lines.len()),
    ];
    for line in expected {
        assert!(out.contains(&line), "missing {line:?} in\n{out}");
    }
    let stored = server
        .roster()
        .get_person(pb::GetPersonRequest {
            patient_id: people[14].0.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (stored.name.as_str(), stored.enrollments.len()),
        (NAMES[4], 2)
    );
}

/// Proves a GBK file (as government systems write it) loads with
/// `--encoding gbk`, names intact, and is refused whole (exit 2, naming the
/// option) without it.
#[tokio::test]
async fn a_gbk_file() {
    let server = TestServer::start().await;
    let dir = TempDir::new().unwrap();
    let (text, people) = roster_file(20);
    let (gbk, _, lossy) = encoding_rs::GBK.encode(&text);
    assert!(!lossy);
    let file = write(&dir, "gbk.csv", &gbk);
    let refused = import(&server, &file, &[]).await;
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--encoding gbk"));
    let output = import(&server, &file, &["--encoding", "gbk"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    let stored = server
        .roster()
        .get_person(pb::GetPersonRequest {
            patient_id: people[4].0.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored.name, "欧阳娜娜");
}

/// Proves export then import reports everything unchanged, and that two
/// exports of the same roster are byte for byte equal (so `diff` of two
/// exports shows exactly the records that differ).
#[tokio::test]
async fn export_import_round_trip() {
    let server = TestServer::start().await;
    let dir = TempDir::new().unwrap();
    let (text, _) = roster_file(500);
    let file = write(&dir, "in.csv", text.as_bytes());
    assert_eq!(import(&server, &file, &[]).await.status.code(), Some(0));
    let first = dir.path().join("first.csv");
    assert!(export(&server, &first).await.status.success());
    let again = import(&server, &first, &[]).await;
    assert_eq!(again.status.code(), Some(0));
    assert!(
        stdout(&again).contains("500 people: 0 created, 0 updated, 500 unchanged, 0 rejected"),
        "{}",
        stdout(&again)
    );
    let second = dir.path().join("second.csv");
    assert!(export(&server, &second).await.status.success());
    let (a, b) = (
        std::fs::read(&first).unwrap(),
        std::fs::read(&second).unwrap(),
    );
    assert_eq!(a, b);
    // Same people as the input, one more row per 7th person's second enrollment.
    assert_eq!(
        String::from_utf8(a).unwrap().lines().count(),
        text.lines().count()
    );
}

/// Proves an import killed mid-file keeps what it committed, and running it
/// again completes it, reporting those people unchanged.
#[tokio::test]
async fn an_interrupted_cli_import_is_run_again() {
    let server = TestServer::start().await;
    let dir = TempDir::new().unwrap();
    let (text, people) = roster_file(20_000);
    let file = write(&dir, "big.csv", text.as_bytes());
    let target = format!("http://{}", server.addr);
    let mut child = Command::new(BINARY)
        .args([
            "roster",
            "import",
            file.to_str().unwrap(),
            "--target",
            &target,
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once its first batch is in.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let read = server
            .roster()
            .get_person(pb::GetPersonRequest {
                patient_id: people[0].0.clone(),
            })
            .await;
        if read.is_ok() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nothing was committed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let output = import(&server, &file, &[]).await;
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}");
    // "FILE: 20000 people: 0 created, 0 updated, 1024 unchanged, 0 rejected"
    let counts: Vec<u64> = out
        .lines()
        .next()
        .and_then(|summary| summary.rsplit(": ").next())
        .unwrap()
        .split(", ")
        .map(|part| part.split(' ').next().unwrap().parse().unwrap())
        .collect();
    let (created, updated, unchanged) = (counts[0], counts[1], counts[2]);
    assert!(unchanged >= 512, "{out}");
    assert_eq!((created + unchanged, updated), (20_000, 0), "{out}");
}

/// Proves the exit code 2 cases: no server, an unreadable file, a
/// malformed header; nothing is imported.
#[tokio::test]
async fn nothing_could_be_done() {
    let server = TestServer::start().await;
    let dir = TempDir::new().unwrap();
    let (text, _) = roster_file(3);
    let good = write(&dir, "good.csv", text.as_bytes());
    let no_server = run(&[
        "roster",
        "import",
        good.to_str().unwrap(),
        "--target",
        "http://127.0.0.1:1",
    ])
    .await;
    assert_eq!(no_server.status.code(), Some(2));
    let missing = import(&server, &dir.path().join("missing.csv"), &[]).await;
    assert_eq!(missing.status.code(), Some(2));
    let header = write(
        &dir,
        "header.csv",
        text.replace("region_code", "region").as_bytes(),
    );
    let malformed = import(&server, &header, &[]).await;
    assert_eq!(malformed.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&malformed.stderr).contains("region"));
    let exported = dir.path().join("all.csv");
    assert!(export(&server, &exported).await.status.success());
    assert_eq!(std::fs::read_to_string(exported).unwrap(), HEADER);
}
