//! TLS to PostgreSQL (`--database-ca`): against a cluster this test makes
//! that refuses every TCP connection without TLS, a server given the CA
//! serves and settles; a store given a CA that did not sign the database's
//! certificate, or reaching it by a name its certificate does not carry,
//! is refused, as is one without TLS.

use std::{path::PathBuf, sync::Arc};

use medassist::store::{PostgresStore, Schema, StoreError};
use tempfile::TempDir;

use crate::{clusters::*, helpers::*, security::Pki};

/// Opens the store off the async runtime (it blocks on its own).
async fn open(url: &str, ca: Option<PathBuf>) -> Result<PostgresStore, StoreError> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || PostgresStore::open(&url, ca.as_deref(), Schema::Expect))
        .await
        .expect("the open finishes")
}

fn refusal(opened: Result<PostgresStore, StoreError>) -> String {
    match opened {
        Ok(_) => panic!("the database is reached"),
        Err(error) => error.to_string(),
    }
}

/// Proves a server given the database's CA settles through a cluster that
/// refuses every connection without TLS, and that a store is refused with
/// the messages docs/POSTGRESQL.md quotes when another CA signed the server's certificate,
/// when the URL names the host otherwise than the certificate, and when it
/// asks for TLS without a CA; without TLS the cluster itself refuses it.
#[tokio::test(flavor = "multi_thread")]
async fn with_the_database_ca_connections_are_encrypted_and_the_server_verified() {
    let pki = Pki::new();
    let fund = pki.ca("fund");
    pki.leaf("db", &fund);
    pki.ca("stranger");
    let mut clusters = Clusters::new();
    let node = clusters.initialized(free_ports()[0]);
    clusters.require_tls(
        &node,
        &String::from_utf8(pki.read("db.pem")).unwrap(),
        &String::from_utf8(pki.read("db.key")).unwrap(),
    );
    clusters.start(&node);
    // The certificate names `localhost`, not 127.0.0.1.
    let url = format!("postgresql://postgres@localhost:{}/postgres", node.port);
    let by_address = node.url("postgres");

    let dir = Arc::new(TempDir::new().unwrap());
    let mut config = TestServer::config_on(&dir, url.clone());
    config.database_ca = Some(pki.path("fund-ca.pem"));
    let server = TestServer::launch(dir, config, None).await;
    let patient = server.enroll("1960-01-01", 66).await;
    let (settlement, _) = settled(
        server
            .settlements()
            .settle(worked_example(&patient, "OVER-TLS"))
            .await,
    );
    assert_eq!(settlement.assistance_amount, "7350.00");
    server.stop().await;

    let plain = refusal(open(&url, None).await);
    assert!(plain.contains("no encryption"), "{plain}");
    let stranger = refusal(open(&url, Some(pki.path("stranger-ca.pem"))).await);
    assert!(stranger.contains("UnknownIssuer"), "{stranger}");
    let misnamed = refusal(open(&by_address, Some(pki.path("fund-ca.pem"))).await);
    assert!(
        misnamed.contains(r#"certificate not valid for name "127.0.0.1""#),
        "{misnamed}"
    );
    let unverified = refusal(open(&format!("{url}?sslmode=require"), None).await);
    assert!(unverified.contains("--database-ca"), "{unverified}");
}
