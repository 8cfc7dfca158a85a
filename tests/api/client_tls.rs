//! The command line over TLS and mTLS: every client subcommand against the
//! real server binary started with `--tls-cert`, `--tls-key` and
//! `--tls-client-ca`, with certificates made by rcgen.

use tempfile::TempDir;

use crate::{
    helpers::*,
    sealed::{cli, said},
    security::Pki,
};

/// The roster file `roster import` sends: one dibao member.
fn roster_file(dir: &TempDir) -> String {
    let path = dir.path().join("roster.csv");
    let id = resident_id("1961-07-08", 77);
    std::fs::write(
        &path,
        format!(
            "patient_id,name,region_code,psychiatric_disability_grade,paralysis_certified,enrollment_kind,valid_from,valid_to,exit\n\
             {id},张三,320602,0,false,DIBAO,2020-01-01,,\n"
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

/// Proves every client subcommand (`roster import`, `roster export`,
/// `export`, `reconcile`, `snapshot save`) works against a server that
/// requires client certificates, over `https://` with `--ca`, `--cert` and
/// `--key`; that the same server refuses a client without a certificate;
/// and that against a TLS server without client CA `--ca` alone suffices,
/// while a plaintext `http://` target and TLS options on it are refused.
#[tokio::test]
async fn every_client_command_speaks_tls_and_mtls() {
    let pki = Pki::new();
    let server_ca = pki.ca("server");
    pki.leaf("server", &server_ca);
    let clients_ca = pki.ca("clients");
    pki.leaf("client", &clients_ca);
    let file = |name: &str| pki.path(name).to_str().unwrap().to_owned();
    let work = TempDir::new().unwrap();
    let mtls = ServerProcess::start(
        &work.path().join("mtls"),
        &[
            "--tls-cert",
            &file("server.pem"),
            "--tls-key",
            &file("server.key"),
            "--tls-client-ca",
            &file("clients-ca.pem"),
        ],
    )
    .await;
    let target = format!("https://localhost:{}", mtls.addr.port());
    let tls = [
        "--target".to_owned(),
        target.clone(),
        "--ca".into(),
        file("server-ca.pem"),
        "--cert".into(),
        file("client.pem"),
        "--key".into(),
        file("client.key"),
    ];
    let run = |command: &[&str], rest: &[&str], options: &[String]| {
        let mut args: Vec<String> = command.iter().map(|a| (*a).to_owned()).collect();
        args.extend(options.iter().cloned());
        args.extend(rest.iter().map(|a| (*a).to_owned()));
        async move { cli(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]).await }
    };
    let roster = roster_file(&work);
    let imported = run(&["roster", "import", &roster], &[], &tls).await;
    assert!(imported.status.success(), "{}", said(&imported));
    assert!(said(&imported).contains("1 created"), "{}", said(&imported));
    let exported = work.path().join("roster-out.csv");
    let output = run(
        &["roster", "export"],
        &["--output", exported.to_str().unwrap()],
        &tls,
    )
    .await;
    assert!(output.status.success(), "{}", said(&output));
    assert_eq!(
        std::fs::read_to_string(&exported).unwrap(),
        std::fs::read_to_string(&roster).unwrap()
    );
    let today = chrono::Utc::now().date_naive().to_string();
    let output = run(&["export"], &["--from", &today, "--to", &today], &tls).await;
    assert!(output.status.success(), "{}", said(&output));
    assert!(
        said(&output).contains("exported 0 settlements"),
        "{}",
        said(&output)
    );
    let output = run(
        &["reconcile"],
        &[
            "--hospital",
            "H001",
            "--date",
            &today,
            "--settled-count",
            "0",
            "--assistance-total",
            "0",
            "--reversed-count",
            "0",
            "--reversed-total",
            "0",
        ],
        &tls,
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", said(&output));
    assert!(said(&output).contains("MATCHED"), "{}", said(&output));
    let snapshot = work.path().join("over-mtls.snapshot");
    let output = run(&["snapshot", "save"], &[snapshot.to_str().unwrap()], &tls).await;
    assert!(output.status.success(), "{}", said(&output));

    let no_certificate = run(&["export"], &["--from", &today, "--to", &today], &tls[..4]).await;
    assert_eq!(
        no_certificate.status.code(),
        Some(2),
        "{}",
        said(&no_certificate)
    );
    mtls.terminate().await;

    let plain_tls = ServerProcess::start(
        &work.path().join("tls"),
        &[
            "--tls-cert",
            &file("server.pem"),
            "--tls-key",
            &file("server.key"),
        ],
    )
    .await;
    let mut tls_only = tls[..4].to_vec();
    tls_only[1] = format!("https://localhost:{}", plain_tls.addr.port());
    let output = run(&["export"], &["--from", &today, "--to", &today], &tls_only).await;
    assert!(output.status.success(), "{}", said(&output));
    let plaintext = [
        "--target".to_owned(),
        format!("http://localhost:{}", plain_tls.addr.port()),
    ];
    let output = run(&["export"], &["--from", &today, "--to", &today], &plaintext).await;
    assert_eq!(
        output.status.code(),
        Some(2),
        "a TLS server refuses plaintext"
    );
    let mut mixed = plaintext.to_vec();
    mixed.extend(tls[2..4].iter().cloned());
    let output = run(&["export"], &["--from", &today, "--to", &today], &mixed).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        said(&output).contains("use an https:// target"),
        "{}",
        said(&output)
    );
    plain_tls.terminate().await;
}
