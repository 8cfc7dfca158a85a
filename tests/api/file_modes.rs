//! Files at rest: whatever medassist creates is private to its user, even
//! when it is started with a umask that would share everything.

use std::{os::unix::fs::PermissionsExt as _, path::Path, process::Command};

use medassist::grpc::pb::{
    self, roster_service_client::RosterServiceClient,
    settlement_service_client::SettlementServiceClient,
};
use tempfile::TempDir;

use crate::{helpers::*, sealed::said};

/// Runs the binary with `args` under `umask 000`, off the runtime's thread.
async fn under_umask_000(args: &[&str]) -> std::process::Output {
    let mut command = Command::new("sh");
    command
        .args(["-c", "umask 000; exec \"$@\"", "sh", BINARY])
        .args(args)
        .env_remove("MEDASSIST_TOKEN")
        .env("RUST_LOG", "warn");
    tokio::task::spawn_blocking(move || command.output().expect("sh runs"))
        .await
        .unwrap()
}

/// Every file and directory under `root` (itself included) whose mode lets
/// anyone but the owner in, with its mode.
fn shared_with_others(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(path) = pending.pop() {
        let metadata = std::fs::symlink_metadata(&path).unwrap();
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            found.push(format!("{} {mode:o}", path.display()));
        }
        if metadata.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                pending.push(entry.unwrap().path());
            }
        }
    }
    found
}

/// Proves the server, `snapshot save`, `export`, `roster export` and
/// `snapshot restore`, each started under `umask 000`, create only files
/// that are 0600 and directories that are 0700: the data directory (the
/// journal, the checkpoint, the base copy, sled's own files), the files
/// written, and a restored data directory. The server has stopped cleanly
/// before its directory is walked, so every file it makes at a stop exists.
#[tokio::test]
async fn every_file_is_private_whatever_the_umask() {
    let work = TempDir::new().unwrap();
    let data = work.path().join("data");
    // `exit` after the command keeps the shell as the server's parent,
    // as start_wrapped expects of a wrapper.
    let server = ServerProcess::start_wrapped(
        &["sh", "-c", "umask 000; \"$@\"; exit $?", "sh"],
        &data,
        &[],
    )
    .await;
    let mut roster = RosterServiceClient::new(server.channel.clone());
    let mut settlements = SettlementServiceClient::new(server.channel.clone());
    for sequence in 1..4 {
        let patient = resident_id("1949-09-09", sequence);
        roster
            .upsert_person(pb::UpsertPersonRequest {
                person: Some(dibao_person(&patient)),
            })
            .await
            .unwrap();
        settled(
            settlements
                .settle(worked_example(&patient, &format!("MODE-{sequence}")))
                .await,
        );
    }
    let target = format!("http://{}", server.addr);
    let out = work.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o700)).unwrap();
    let path = |name: &str| out.join(name).to_str().unwrap().to_owned();
    let today = chrono::Utc::now().date_naive();
    let (from, to) = (
        (today - chrono::Days::new(1)).to_string(),
        (today + chrono::Days::new(1)).to_string(),
    );
    for args in [
        vec![
            "snapshot",
            "save",
            "--target",
            &target,
            &path("backup.snapshot"),
        ],
        vec![
            "export",
            "--target",
            &target,
            "--from",
            &from,
            "--to",
            &to,
            "--output",
            &path("settlements.csv"),
        ],
        vec![
            "roster",
            "export",
            "--target",
            &target,
            "--output",
            &path("roster.csv"),
        ],
    ] {
        let output = under_umask_000(&args).await;
        assert!(output.status.success(), "{args:?}: {}", said(&output));
    }
    server.terminate().await;
    let restored = out.join("restored");
    let output = under_umask_000(&[
        "snapshot",
        "restore",
        &path("backup.snapshot"),
        "--data-dir",
        restored.to_str().unwrap(),
    ])
    .await;
    assert!(output.status.success(), "{}", said(&output));

    for expected in ["base.snapshot", "checkpoint", "journal", "db", "conf"] {
        assert!(
            data.join(expected).exists(),
            "{expected} is among what is walked"
        );
    }
    assert_eq!(shared_with_others(&data), Vec::<String>::new());
    assert_eq!(shared_with_others(&out), Vec::<String>::new());
    for file in ["backup.snapshot", "settlements.csv", "roster.csv"] {
        let mode = std::fs::metadata(out.join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    assert_eq!(
        std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
        0o700
    );
}
