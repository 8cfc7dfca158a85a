//! Sealed snapshots and exports: the real binary (server and command line)
//! with keys made by Debian's `age-keygen`, files opened by Debian's `age`,
//! the standard tool a fund's staff would use.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use medassist::{
    auth::TokenDigest,
    grpc::pb::{
        self, admin_service_client::AdminServiceClient, roster_service_client::RosterServiceClient,
        settlement_service_client::SettlementServiceClient,
    },
    seal,
    store::{SledOptions, SledStore, Store, snapshot},
};
use tempfile::TempDir;
use tonic::{Code, Request, Status, metadata::MetadataValue, transport::Channel};

use crate::{helpers::*, reload::eventually};

/// The tokens of the test configuration, by role.
pub const OPERATOR: &str = "mdas_test_operator";
const ROSTER: &str = "mdas_test_roster";
const HOSPITAL: &str = "mdas_test_h001";
const AUDITOR: &str = "mdas_test_auditor";

/// Runs the binary with `args` and `env` off the test's runtime thread;
/// MEDASSIST_TOKEN is set only when `env` sets it.
pub async fn cli(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BINARY);
    command
        .args(args)
        .env_remove("MEDASSIST_TOKEN")
        .env("RUST_LOG", "warn");
    for (name, value) in env {
        command.env(name, value);
    }
    tokio::task::spawn_blocking(move || command.output().expect("the binary runs"))
        .await
        .unwrap()
}

/// What a command printed, both streams.
pub fn said(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Makes a key pair with `age-keygen -o DIR/NAME.key`; returns the
/// identity file and the public key (age1…).
pub fn age_keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = dir.join(format!("{name}.key"));
    let made = Command::new("age-keygen")
        .arg("-o")
        .arg(&key)
        .output()
        .expect("age-keygen runs (Debian's age package; .ci/run installs it)");
    assert!(made.status.success(), "{}", said(&made));
    let public = Command::new("age-keygen")
        .arg("-y")
        .arg(&key)
        .output()
        .unwrap();
    let public = String::from_utf8(public.stdout).unwrap().trim().to_owned();
    assert!(public.starts_with("age1"), "{public}");
    (key, public)
}

/// Decrypts `file` with `age -d -i key`, the standard tool.
pub fn age_decrypt(key: &Path, file: &Path) -> Vec<u8> {
    let opened = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(key)
        .arg(file)
        .output()
        .expect("age runs");
    assert!(opened.status.success(), "age -d: {}", said(&opened));
    opened.stdout
}

/// Writes the token `token` to `DIR/NAME.token`, as a caller keeps it.
pub fn token_file(dir: &Path, name: &str, token: &str) -> PathBuf {
    let path = dir.join(format!("{name}.token"));
    std::fs::write(&path, format!("{token}\n")).unwrap();
    path
}

/// A configuration file requiring tokens (one per role used here) and, when
/// given, sealing snapshots to `recipient`.
fn config_file(dir: &Path, recipient: Option<&str>) -> PathBuf {
    let mut text = String::new();
    for (token, role, hospital) in [
        (OPERATOR, "operator", None),
        (ROSTER, "roster_admin", None),
        (HOSPITAL, "hospital", Some("H001")),
        (AUDITOR, "auditor", None),
    ] {
        let digest = TokenDigest::of(token).to_hex();
        text.push_str(&format!(
            "[[auth.tokens]]\nsha256 = \"{digest}\"\nrole = \"{role}\"\n"
        ));
        if let Some(hospital) = hospital {
            text.push_str(&format!("hospital_id = \"{hospital}\"\n"));
        }
    }
    if let Some(recipient) = recipient {
        text.push_str(&format!("[backup]\nrecipients = [\"{recipient}\"]\n"));
    }
    let path = dir.join("medassist.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A request carrying `token`.
fn with_token<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    let value = MetadataValue::try_from(format!("Bearer {token}")).unwrap();
    request.metadata_mut().insert("authorization", value);
    request
}

/// Enrolls a dibao member and settles the worked example for them, with the
/// roster and hospital tokens; returns the resident ID.
async fn settle_one(channel: &Channel, sequence: u16) -> String {
    let patient = resident_id("1958-04-05", sequence);
    RosterServiceClient::new(channel.clone())
        .upsert_person(with_token(
            ROSTER,
            pb::UpsertPersonRequest {
                person: Some(dibao_person(&patient)),
            },
        ))
        .await
        .expect("the roster accepts the person");
    let claim = format!("SEAL-{sequence}");
    settled(
        SettlementServiceClient::new(channel.clone())
            .settle(with_token(HOSPITAL, worked_example(&patient, &claim)))
            .await,
    );
    patient
}

/// SaveSnapshot as the operator, asking `encryption`: the bytes, or the
/// refusal.
async fn save_as_operator(
    channel: &Channel,
    encryption: pb::SnapshotEncryption,
) -> Result<Vec<u8>, Status> {
    let request = pb::SaveSnapshotRequest {
        encryption: encryption.into(),
    };
    let mut chunks = AdminServiceClient::new(channel.clone())
        .save_snapshot(with_token(OPERATOR, request))
        .await?
        .into_inner();
    let mut bytes = Vec::new();
    while let Some(message) = chunks.message().await? {
        bytes.extend_from_slice(&message.chunk);
    }
    Ok(bytes)
}

/// Proves that once the server has a `[backup]` recipient, the operator
/// gets snapshots sealed to it only (an unencrypted one is refused with
/// PERMISSION_DENIED saying why), that `snapshot save` writes the sealed
/// bytes, that `age -d` with the fund's key opens them into a whole
/// snapshot, that `snapshot restore --identity` restores it, and that a
/// restore with another key, or none, is refused in one line with nothing
/// written. A token on the command line is refused too.
#[tokio::test]
async fn an_operator_takes_only_sealed_snapshots_and_the_fund_opens_them() {
    let work = TempDir::new().unwrap();
    let (fund_key, fund_public) = age_keygen(work.path(), "fund");
    let config = config_file(work.path(), Some(&fund_public));
    let data = work.path().join("data");
    let server = ServerProcess::start(&data, &["--config", config.to_str().unwrap()]).await;
    let patient = settle_one(&server.channel, 31).await;

    let refused = save_as_operator(&server.channel, pb::SnapshotEncryption::None)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(
        refused.message().contains("only encrypted"),
        "the refusal says why: {}",
        refused.message()
    );
    let asked_sealed = save_as_operator(&server.channel, pb::SnapshotEncryption::Age)
        .await
        .unwrap();
    assert!(seal::is_sealed(&asked_sealed));

    let target = format!("http://{}", server.addr);
    let operator = token_file(work.path(), "operator", OPERATOR);
    let file = work.path().join("fund.snapshot");
    let saved = cli(
        &[
            "snapshot",
            "save",
            "--target",
            &target,
            "--token-file",
            operator.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert!(saved.status.success(), "{}", said(&saved));
    assert!(
        said(&saved).contains("encrypted by the server"),
        "{}",
        said(&saved)
    );
    let sealed = std::fs::read(&file).unwrap();
    assert!(seal::is_sealed(&sealed));
    assert!(
        !sealed
            .windows(patient.len())
            .any(|w| w == patient.as_bytes()),
        "no resident ID in the clear"
    );

    let opened = age_decrypt(&fund_key, &file);
    let summary = snapshot::check(&opened[..]).expect("age opens a whole snapshot");
    assert!(summary.entries > 0);
    assert!(
        opened
            .windows(patient.len())
            .any(|w| w == patient.as_bytes())
    );

    let restored = work.path().join("restored");
    let restore = |key: Option<&Path>, dir: &Path| {
        let mut args = vec![
            "snapshot".to_owned(),
            "restore".into(),
            file.to_str().unwrap().into(),
            "--data-dir".into(),
            dir.to_str().unwrap().into(),
        ];
        if let Some(key) = key {
            args.extend(["--identity".into(), key.to_str().unwrap().into()]);
        }
        async move { cli(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]).await }
    };
    let (stranger_key, _) = age_keygen(work.path(), "stranger");
    let elsewhere = work.path().join("elsewhere");
    for (key, expected) in [
        (Some(stranger_key.as_path()), "wrong identity"),
        (None, "--identity"),
    ] {
        let output = restore(key, &elsewhere).await;
        assert_eq!(output.status.code(), Some(2), "{}", said(&output));
        assert!(said(&output).contains(expected), "{}", said(&output));
        assert_eq!(said(&output).trim().lines().count(), 1, "{}", said(&output));
        assert!(!elsewhere.exists(), "nothing is written");
    }
    let output = restore(Some(&fund_key), &restored).await;
    assert!(output.status.success(), "{}", said(&output));
    assert!(said(&output).contains("consistent"), "{}", said(&output));
    let store = SledStore::open(&restored, SledOptions::default()).unwrap();
    let key = medassist::domain::ClaimKey {
        hospital_id: medassist::domain::HospitalId::parse("H001").unwrap(),
        claim_id: medassist::domain::ClaimId::parse("SEAL-31").unwrap(),
    };
    assert!(store.settlement_by_claim(&key).unwrap().is_some());
    drop(store);

    let argv = cli(
        &[
            "snapshot",
            "save",
            "--target",
            &target,
            "--token",
            OPERATOR,
            work.path().join("argv.snapshot").to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert_eq!(argv.status.code(), Some(2));
    assert!(said(&argv).contains("--token-file"), "{}", said(&argv));
    assert!(!said(&argv).contains(OPERATOR), "the token is not echoed");
    assert!(!work.path().join("argv.snapshot").exists());
    server.terminate().await;
}

/// Proves exports written with `--recipient` (or `--recipients-file`) open
/// with `age -d` into exactly the plain export, for settlements (CSV to a
/// file, JSON lines to a pipe) and the roster; that a snapshot from a
/// server without `[backup]` is sealed by `snapshot save --recipient`,
/// checked whole on the way; and that such a server sends plain snapshots
/// and refuses to promise a sealed one until a reload (SIGHUP) gives it
/// the fund's key, from which on it seals them. The tokens come from
/// MEDASSIST_TOKEN here.
#[tokio::test]
async fn sealed_exports_open_with_age_into_the_plain_export() {
    let work = TempDir::new().unwrap();
    let (key, public) = age_keygen(work.path(), "fund");
    let recipients_file = work.path().join("recipients.txt");
    std::fs::write(&recipients_file, format!("# the fund\n{public}\n")).unwrap();
    let config = config_file(work.path(), None);
    let server = ServerProcess::start(
        &work.path().join("data"),
        &["--config", config.to_str().unwrap()],
    )
    .await;
    for sequence in 40..43 {
        settle_one(&server.channel, sequence).await;
    }
    let target = format!("http://{}", server.addr);
    let path = |name: &str| work.path().join(name).to_str().unwrap().to_owned();
    let auditor = [("MEDASSIST_TOKEN", AUDITOR)];
    let today = chrono::Utc::now().date_naive();
    let (from, to) = (
        (today - chrono::Days::new(1)).to_string(),
        (today + chrono::Days::new(1)).to_string(),
    );
    let export = |extra: Vec<String>| {
        let mut args: Vec<String> = ["export", "--target", &target, "--from", &from, "--to", &to]
            .map(str::to_owned)
            .into();
        args.extend(extra);
        async move {
            cli(
                &args.iter().map(String::as_str).collect::<Vec<_>>(),
                &auditor,
            )
            .await
        }
    };
    let plain = export(vec!["--output".into(), path("plain.csv")]).await;
    assert!(plain.status.success(), "{}", said(&plain));
    let sealed = export(vec![
        "--output".into(),
        path("sealed.csv"),
        "--recipient".into(),
        public.clone(),
    ])
    .await;
    assert!(sealed.status.success(), "{}", said(&sealed));
    assert!(
        said(&sealed).contains("encrypted (age)"),
        "{}",
        said(&sealed)
    );
    let plain_csv = std::fs::read(path("plain.csv")).unwrap();
    assert_eq!(String::from_utf8_lossy(&plain_csv).lines().count(), 4);
    assert!(seal::is_sealed(&std::fs::read(path("sealed.csv")).unwrap()));
    assert_eq!(age_decrypt(&key, Path::new(&path("sealed.csv"))), plain_csv);

    let jsonl = |extra: Vec<String>| {
        let mut args = vec!["--format".to_owned(), "jsonl".into()];
        args.extend(extra);
        export(args)
    };
    let plain_jsonl = jsonl(vec![]).await.stdout;
    let piped = jsonl(vec![
        "--recipients-file".into(),
        recipients_file.to_str().unwrap().into(),
    ])
    .await;
    assert!(piped.status.success(), "{}", said(&piped));
    std::fs::write(path("piped.jsonl.age"), &piped.stdout).unwrap();
    assert_eq!(
        age_decrypt(&key, Path::new(&path("piped.jsonl.age"))),
        plain_jsonl
    );

    let roster = [("MEDASSIST_TOKEN", ROSTER)];
    let roster_export = |output: String, extra: &[&str]| {
        let mut args = vec!["roster", "export", "--target", &target, "--output", &output];
        args.extend_from_slice(extra);
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        async move {
            cli(
                &args.iter().map(String::as_str).collect::<Vec<_>>(),
                &roster,
            )
            .await
        }
    };
    assert!(
        roster_export(path("roster.csv"), &[])
            .await
            .status
            .success()
    );
    let sealed_roster = roster_export(path("roster.csv.age"), &["--recipient", &public]).await;
    assert!(sealed_roster.status.success(), "{}", said(&sealed_roster));
    assert_eq!(
        age_decrypt(&key, Path::new(&path("roster.csv.age"))),
        std::fs::read(path("roster.csv")).unwrap()
    );

    let operator = token_file(work.path(), "operator", OPERATOR);
    let saved = cli(
        &[
            "snapshot",
            "save",
            "--target",
            &target,
            "--token-file",
            operator.to_str().unwrap(),
            "--recipient",
            &public,
            &path("client-sealed.snapshot"),
        ],
        &[],
    )
    .await;
    assert!(saved.status.success(), "{}", said(&saved));
    assert!(
        said(&saved).contains("entries, commit"),
        "checked on the way: {}",
        said(&saved)
    );
    let opened = age_decrypt(&key, Path::new(&path("client-sealed.snapshot")));
    assert!(snapshot::check(&opened[..]).unwrap().entries > 0);

    // The fund gives the server its key: a reload applies it to the next snapshot.
    let plain = save_as_operator(&server.channel, pb::SnapshotEncryption::None).await;
    assert!(snapshot::check(&plain.unwrap()[..]).is_ok());
    let refused = save_as_operator(&server.channel, pb::SnapshotEncryption::Age)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    config_file(work.path(), Some(&public));
    server.hang_up();
    eventually("the reloaded [backup] refuses a plain snapshot", || async {
        let answer = save_as_operator(&server.channel, pb::SnapshotEncryption::None).await;
        matches!(answer, Err(status) if status.code() == Code::PermissionDenied)
    })
    .await;
    let sealed = save_as_operator(&server.channel, pb::SnapshotEncryption::Unspecified)
        .await
        .unwrap();
    std::fs::write(path("reloaded.snapshot"), &sealed).unwrap();
    let opened = age_decrypt(&key, Path::new(&path("reloaded.snapshot")));
    assert!(snapshot::check(&opened[..]).is_ok());
    server.terminate().await;
}
