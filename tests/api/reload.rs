//! Changing the configuration without a restart: SIGHUP to the real binary,
//! and the same reload in process for TLS certificates.

use std::{sync::Arc, time::Duration};

use medassist::{
    config::{Config, TlsFiles},
    grpc::pb::{self, settlement_service_client::SettlementServiceClient},
};
use tempfile::TempDir;
use tonic::{Code, Request, metadata::MetadataValue, transport::Channel};

use crate::{helpers::*, operations::scrape, security::Pki};

/// The configuration lines that admit `token` in `role`.
fn token_entry(token: &str, role: &str, hospital: Option<&str>) -> String {
    use sha2::Digest;
    let digest: String = sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let hospital = hospital
        .map(|h| format!("hospital_id = \"{h}\"\n"))
        .unwrap_or_default();
    format!("[[auth.tokens]]\nsha256 = \"{digest}\"\nrole = \"{role}\"\n{hospital}\n")
}

/// A county of another city (Yangzhou), whose only policy is its own.
const YANGZHOU: &str = r#"
[[policy]]
region_code = "321002"
year = 2020
assistance_ratio = "0.70"
cap_fraction = "0.50"
basic_insurance_annual_cap = "300000.00"
"#;

const COUNTY_320602: &str = r#"
[[policy]]
region_code = "320602"
year = 2026
assistance_ratio = "0.80"
cap_fraction = "0.60"
basic_insurance_annual_cap = "300000.00"
"#;

fn config_text(tokens: &[(&str, &str, Option<&str>)], policies: &[&str]) -> String {
    let mut text = String::new();
    for policy in policies {
        text.push_str(policy);
    }
    for (token, role, hospital) in tokens {
        text.push_str(&token_entry(token, role, *hospital));
    }
    text
}

fn with_token<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    let value = MetadataValue::try_from(format!("Bearer {token}")).unwrap();
    request.metadata_mut().insert("authorization", value);
    request
}

async fn settle(
    channel: &Channel,
    token: &str,
    request: pb::SettleRequest,
) -> Result<pb::SettleResponse, tonic::Status> {
    SettlementServiceClient::new(channel.clone())
        .settle(with_token(token, request))
        .await
        .map(|r| r.into_inner())
}

async fn put_on_roster(channel: &Channel, id: &str, region: &str) {
    let person = pb::Person {
        region_code: region.into(),
        ..dibao_person(id)
    };
    pb::roster_service_client::RosterServiceClient::new(channel.clone())
        .upsert_person(with_token(
            "roster",
            pb::UpsertPersonRequest {
                person: Some(person),
            },
        ))
        .await
        .expect("the roster takes the person");
}

/// Waits until `done` holds, polling; fails after 20 s.
pub async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    mut done: impl FnMut() -> F,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Proves, through SIGHUP to the real binary (sent as the README says, to
/// the process its `--pid-file` names): a revoked token gets
/// UNAUTHENTICATED after the reload while the others keep working; a new
/// county policy applies to the next claim; a region whose policy was
/// removed refuses new claims; then a file below the floors and one that does not parse
/// change nothing and are logged at error.
#[tokio::test]
async fn sighup_applies_tokens_and_policies_and_refuses_a_broken_file() {
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("medassist.toml");
    let one = ("hospital-one", "hospital", Some("H001"));
    let two = ("hospital-two", "hospital", Some("H002"));
    let roster = ("roster", "roster_admin", None);
    std::fs::write(
        &config,
        config_text(&[one, two, roster], &[CITY_POLICY, YANGZHOU]),
    )
    .unwrap();
    let pid_file = dir.path().join("medassist.pid");
    let server = ServerProcess::start_logging(
        &dir.path().join("data"),
        &[
            "--config",
            config.to_str().unwrap(),
            "--pid-file",
            pid_file.to_str().unwrap(),
        ],
        "info",
    )
    .await;
    let channel = server.channel.clone();
    let nantong = resident_id("1960-01-01", 51);
    let yangzhou = resident_id("1960-01-01", 52);
    put_on_roster(&channel, &nantong, "320602").await;
    put_on_roster(&channel, &yangzhou, "321002").await;
    let before = settle(&channel, "hospital-one", worked_example(&nantong, "S-1"))
        .await
        .unwrap();
    assert_eq!(before.settlement.unwrap().assistance_amount, "7350.00");
    let yz_request = pb::SettleRequest {
        hospital_id: "H002".into(),
        ..worked_example(&yangzhou, "S-2")
    };
    settle(&channel, "hospital-two", yz_request.clone())
        .await
        .unwrap();

    // Revoke hospital two; add county 320602's policy; drop Yangzhou's.
    std::fs::write(
        &config,
        config_text(&[one, roster], &[CITY_POLICY, COUNTY_320602]),
    )
    .unwrap();
    // As the README says: the pid file names this server and no other.
    let pid = std::fs::read_to_string(&pid_file).expect("the pid file is written");
    assert_eq!(pid.trim(), server.id().to_string());
    let hup = std::process::Command::new("sh")
        .args(["-c", "kill -HUP \"$(cat \"$1\")\"", "sh"])
        .arg(&pid_file)
        .status()
        .unwrap();
    assert!(hup.success());
    eventually("the revoked token is refused", || async {
        let answer = settle(&channel, "hospital-two", yz_request.clone()).await;
        matches!(answer, Err(status) if status.code() == Code::Unauthenticated)
    })
    .await;
    let after = settle(&channel, "hospital-one", worked_example(&nantong, "S-3"))
        .await
        .unwrap();
    // 0.80 x 10,500.00 under the county's new policy.
    assert_eq!(after.settlement.unwrap().assistance_amount, "8400.00");
    // Yangzhou's policy is gone: a new claim there is refused.
    let yz_one = pb::SettleRequest {
        hospital_id: "H001".into(),
        ..worked_example(&yangzhou, "S-4")
    };
    let refused = settle(&channel, "hospital-one", yz_one).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");

    // A policy below the floors: refused, nothing changes.
    let below = COUNTY_320602.replace("\"0.80\"", "\"0.60\"");
    std::fs::write(&config, config_text(&[roster], &[CITY_POLICY, &below])).unwrap();
    server.hang_up();
    eventually("the refusal is logged", || async {
        server.logged("configuration reload refused")
    })
    .await;
    assert!(server.logged("ERROR"), "the refusal is logged at error");
    let still = settle(&channel, "hospital-one", worked_example(&nantong, "S-5"))
        .await
        .unwrap();
    assert_eq!(still.settlement.unwrap().assistance_amount, "8400.00");

    // A file that does not parse: refused too.
    std::fs::write(&config, "[[policy]\nthis is not toml").unwrap();
    server.hang_up();
    eventually("the second refusal is logged", || async {
        server.logged_count("configuration reload refused") >= 2
    })
    .await;
    let still = settle(&channel, "hospital-one", worked_example(&nantong, "S-6"))
        .await
        .unwrap();
    assert_eq!(still.settlement.unwrap().assistance_amount, "8400.00");
    server.terminate().await;
    assert!(!pid_file.exists(), "the pid file goes with the server");
}

/// Proves a retry of a settlement whose region's policy was removed by a
/// reload still replays the recorded answer, while a new claim there is
/// refused; and that reloads are counted by result.
#[tokio::test]
async fn a_settlement_replays_after_its_policy_is_removed() {
    let dir = Arc::new(TempDir::new().unwrap());
    let mut server_config = TestServer::config_for(&dir);
    server_config.config = Config::parse(&format!("{CITY_POLICY}{YANGZHOU}")).unwrap();
    server_config.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    let server = TestServer::launch(dir, server_config, None).await;
    let id = resident_id("1960-01-01", 61);
    server
        .roster()
        .upsert_person(pb::UpsertPersonRequest {
            person: Some(pb::Person {
                region_code: "321002".into(),
                ..dibao_person(&id)
            }),
        })
        .await
        .unwrap();
    let (first, _) = settled(
        server
            .settlements()
            .settle(worked_example(&id, "Y-1"))
            .await,
    );
    server
        .reloader
        .reload(Ok(Config::parse(CITY_POLICY).unwrap()))
        .unwrap();
    let (again, replayed) = settled(
        server
            .settlements()
            .settle(worked_example(&id, "Y-1"))
            .await,
    );
    assert!(replayed);
    assert_eq!(again, first);
    let new = server
        .settlements()
        .settle(worked_example(&id, "Y-2"))
        .await
        .unwrap_err();
    assert_eq!(new.code(), Code::FailedPrecondition);
    assert!(server.reloader.reload(Err("unreadable".into())).is_err());
    let text = scrape(server.metrics_addr.unwrap()).await;
    assert!(
        text.contains(r#"medassist_config_reloads_total{result="ok"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"medassist_config_reloads_total{result="failed"} 1"#),
        "{text}"
    );
}

/// Proves a rotated certificate is served to the next TLS connection while
/// an open connection keeps working, and that a reload naming a missing
/// certificate changes nothing.
#[tokio::test]
async fn a_rotated_certificate_is_served_to_the_next_connection() {
    let pki = Pki::new();
    let old_ca = pki.ca("old");
    pki.leaf("server", &old_ca);
    let files = TlsFiles {
        cert: pki.path("server.pem"),
        key: pki.path("server.key"),
        client_ca: None,
    };
    let config = || Config {
        tls: Some(files.clone()),
        ..Config::default()
    };
    let dir = Arc::new(TempDir::new().unwrap());
    let server = TestServer::start_with(dir, config()).await;
    let open = pki.channel(&server, "old-ca.pem", None).await.unwrap();
    let health = |channel: Channel| async move {
        tonic_health::pb::health_client::HealthClient::new(channel)
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .is_ok()
    };
    assert!(health(open.clone()).await);

    let new_ca = pki.ca("new");
    pki.leaf("server", &new_ca);
    server.reloader.reload(Ok(config())).unwrap();
    assert!(pki.channel(&server, "new-ca.pem", None).await.is_ok());
    assert!(
        pki.channel(&server, "old-ca.pem", None).await.is_err(),
        "the old certificate is no longer served"
    );
    assert!(
        health(open.clone()).await,
        "an open connection keeps working"
    );

    let missing = Config {
        tls: Some(TlsFiles {
            cert: pki.path("missing.pem"),
            ..files.clone()
        }),
        ..Config::default()
    };
    let refused = server.reloader.reload(Ok(missing)).unwrap_err();
    assert!(refused.contains("missing.pem"), "{refused}");
    assert!(pki.channel(&server, "new-ca.pem", None).await.is_ok());
}

/// Proves a request in flight finishes under the configuration it started
/// with: an import whose token is revoked midway completes, and the next
/// call with that token is refused.
#[tokio::test]
async fn a_request_in_flight_finishes_under_the_old_tokens() {
    let roster = ("roster", "roster_admin", None);
    let other = ("other", "roster_admin", None);
    let config = |tokens: &[(&str, &str, Option<&str>)]| {
        Config::parse(&config_text(tokens, &[CITY_POLICY])).unwrap()
    };
    let dir = Arc::new(TempDir::new().unwrap());
    let server = TestServer::start_with(dir, config(&[roster, other])).await;
    let (sender, receiver) = tokio::sync::mpsc::channel(16);
    let mut client = pb::roster_service_client::RosterServiceClient::new(server.channel());
    let call = tokio::spawn(async move {
        client
            .import_persons(with_token(
                "roster",
                tokio_stream::wrappers::ReceiverStream::new(receiver),
            ))
            .await
    });
    let record = |i: u16| pb::UpsertPersonRequest {
        person: Some(dibao_person(&resident_id(
            &format!("{}-01-01", 1970 + i / 900),
            i % 900 + 1,
        ))),
    };
    // A first batch (512 records) committed proves the call is past its
    // authentication and being served.
    for i in 0..512 {
        sender.send(record(i)).await.unwrap();
    }
    let first_batch_in = || async {
        pb::roster_service_client::RosterServiceClient::new(server.channel())
            .get_person(with_token(
                "other",
                pb::GetPersonRequest {
                    patient_id: record(511).person.unwrap().patient_id,
                },
            ))
            .await
            .is_ok()
    };
    eventually("the first batch is committed", first_batch_in).await;
    server.reloader.reload(Ok(config(&[other]))).unwrap();
    sender.send(record(512)).await.unwrap();
    drop(sender);
    let summary = call
        .await
        .unwrap()
        .expect("the import started before the reload")
        .into_inner();
    assert_eq!(
        (summary.received, summary.created),
        (513, 513),
        "{summary:?}"
    );
    let refused = pb::roster_service_client::RosterServiceClient::new(server.channel())
        .get_person(with_token(
            "roster",
            pb::GetPersonRequest {
                patient_id: record(0).person.unwrap().patient_id,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
}
