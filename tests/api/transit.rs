//! Protected in transit: the HTTP/JSON port speaks TLS and mTLS from the
//! same certificate options as gRPC, the audit trail records the client
//! certificate's subject, `/metrics` asks for a token when tokens are
//! configured, and a reload never leaves a listener off loopback without
//! `[auth]`.

use std::{net::SocketAddr, sync::Arc};

use medassist::{
    auth::{Access, Role},
    config::{Config, TlsFiles},
    grpc::pb::{self, audit_service_client::AuditServiceClient},
};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_rustls::{
    TlsConnector,
    rustls::{
        self, RootCertStore,
        pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject as _},
    },
};

use crate::{helpers::*, security::Pki};

/// The tokens of these tests: a hospital, an auditor, an operator and a
/// monitoring system.
fn tokens() -> Access {
    Access::Tokens(vec![
        token_entry("t-h001", Role::Hospital, Some("H001")),
        token_entry("t-auditor", Role::Auditor, None),
        token_entry("t-operator", Role::Operator, None),
        token_entry("t-metrics", Role::Metrics, None),
    ])
}

/// A TLS client trusting `server-ca.pem`, presenting `identity` (a leaf of
/// the Pki) when given, offering HTTP/1.1.
fn connector(pki: &Pki, identity: Option<&str>) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pki.read("server-ca.pem")) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some(name) => {
            let chain = CertificateDer::pem_slice_iter(&pki.read(&format!("{name}.pem")))
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(&pki.read(&format!("{name}.key"))).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(config))
}

/// One HTTPS GET with `token`: the status line and body, or why the
/// connection failed.
async fn https_get(
    addr: SocketAddr,
    tls: &TlsConnector,
    path: &str,
    token: &str,
) -> std::io::Result<String> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let mut stream = tls
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Authorization: Bearer {token}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    Ok(answer)
}

/// One plain HTTP/1.1 GET of `path` with `token`, if any: the whole answer.
pub(crate) async fn http_get(addr: SocketAddr, path: &str, token: Option<&str>) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: medassist\r\nConnection: close\r\n{auth}\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    // A TLS port answers plaintext with an alert, or closes.
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// The subject of the certificate in `pem`, as the audit trail writes it.
fn subject_of(pem: &[u8]) -> String {
    let der = CertificateDer::from_pem_slice(pem).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    cert.subject().to_string()
}

/// Proves the HTTP/JSON port serves TLS with mTLS from the same options as
/// the gRPC port: a client certificate from the configured CA is served
/// (and its subject lands in the call's audit record, with the peer), while
/// no certificate and plaintext are refused; and the gRPC port's client
/// certificate is recorded the same way.
#[tokio::test]
async fn the_http_port_speaks_mtls_and_the_trail_names_the_certificate() {
    let pki = Pki::new();
    let server_ca = pki.ca("server");
    pki.leaf("server", &server_ca);
    let clients_ca = pki.ca("clients");
    pki.leaf("client", &clients_ca);
    let dir = Arc::new(TempDir::new().unwrap());
    let mut server_config = TestServer::config_for(&dir);
    server_config.config = Config {
        access: tokens(),
        tls: Some(TlsFiles {
            cert: pki.path("server.pem"),
            key: pki.path("server.key"),
            client_ca: Some(pki.path("clients-ca.pem")),
        }),
        ..Config::default()
    };
    server_config.http_listen = Some(local());
    let server = TestServer::launch(dir, server_config, None).await;
    let http = server.http_addr.unwrap();
    let policy = "/v1/regions/320602/policies/2026";

    let answer = https_get(http, &connector(&pki, Some("client")), policy, "t-auditor")
        .await
        .expect("an mTLS client is served");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"regionCode\""), "{answer}");

    let refused = https_get(http, &connector(&pki, None), policy, "t-auditor").await;
    assert!(
        refused.map_or(true, |answer| !answer.starts_with("HTTP/1.1 200")),
        "a client without a certificate is refused"
    );
    let plain = http_get(http, policy, Some("t-auditor")).await;
    assert!(
        !plain.starts_with("HTTP/1.1 200"),
        "plaintext is refused: {plain}"
    );

    let channel = pki
        .channel(&server, "server-ca.pem", Some("client"))
        .await
        .expect("an mTLS gRPC client connects");
    let records = AuditServiceClient::with_interceptor(channel, bearer(Some("t-auditor")))
        .list_audit_records(pb::ListAuditRecordsRequest {
            from_time: Some(prost_types::Timestamp {
                seconds: 0,
                nanos: 0,
            }),
            to_time: Some(prost_types::Timestamp {
                seconds: 4_000_000_000,
                nanos: 0,
            }),
            page_size: 100,
            ..Default::default()
        })
        .await
        .expect("the auditor reads the trail over mTLS")
        .into_inner()
        .records;
    let subject = subject_of(&pki.read("client.pem"));
    let over_http = records
        .iter()
        .find(|r| r.call.contains("GetPolicy") || r.call.contains("/policies/"))
        .unwrap_or_else(|| panic!("the HTTP call is recorded: {records:#?}"));
    assert_eq!(over_http.client_certificate, subject, "{over_http:#?}");
    assert!(over_http.peer.starts_with("127.0.0.1:"), "{over_http:#?}");
    assert_eq!(over_http.code, "OK", "{over_http:#?}");
}

/// Proves `/metrics` asks for a token when tokens are configured: none is
/// 401 with a `WWW-Authenticate` challenge, a hospital's is 403, and the
/// `metrics` and `operator` roles scrape.
#[tokio::test]
async fn metrics_need_a_metrics_or_operator_token() {
    let dir = Arc::new(TempDir::new().unwrap());
    let mut server_config = TestServer::config_for(&dir);
    server_config.config = Config {
        access: tokens(),
        ..Config::default()
    };
    server_config.metrics_listen = Some(local());
    let server = TestServer::launch(dir, server_config, None).await;
    let metrics = server.metrics_addr.unwrap();
    let none = http_get(metrics, "/metrics", None).await;
    assert!(none.starts_with("HTTP/1.1 401"), "{none}");
    assert!(
        none.to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{none}"
    );
    let unknown = http_get(metrics, "/metrics", Some("t-nobody")).await;
    assert!(unknown.starts_with("HTTP/1.1 401"), "{unknown}");
    let hospital = http_get(metrics, "/metrics", Some("t-h001")).await;
    assert!(hospital.starts_with("HTTP/1.1 403"), "{hospital}");
    assert!(!hospital.contains("medassist_"), "{hospital}");
    for token in ["t-metrics", "t-operator"] {
        let scraped = http_get(metrics, "/metrics", Some(token)).await;
        assert!(scraped.starts_with("HTTP/1.1 200"), "{token}: {scraped}");
        assert!(
            scraped.contains("medassist_requests_in_flight"),
            "{scraped}"
        );
    }
}

/// Proves a reload that would leave the HTTP/JSON or the metrics listener
/// off loopback without `[auth]` is refused, and the tokens still in force
/// keep serving; the same server reloads a configuration with tokens.
#[tokio::test]
async fn a_reload_never_leaves_a_listener_open_off_loopback() {
    let everywhere: SocketAddr = "0.0.0.0:0".parse().unwrap();
    for exposed in ["http", "metrics"] {
        let dir = Arc::new(TempDir::new().unwrap());
        let mut server_config = TestServer::config_for(&dir);
        server_config.config = Config {
            access: tokens(),
            ..Config::default()
        };
        match exposed {
            "http" => server_config.http_listen = Some(everywhere),
            _ => server_config.metrics_listen = Some(everywhere),
        }
        let server = TestServer::launch(dir, server_config, None).await;
        let refused = server
            .reloader
            .reload(Ok(Config::default()))
            .expect_err("an open configuration is refused");
        assert!(refused.contains("0.0.0.0"), "{exposed}: {refused}");
        assert!(
            refused.contains("without authentication"),
            "{exposed}: {refused}"
        );
        // Still the tokens: an anonymous call is refused, a token's served.
        let policy = pb::GetPolicyRequest {
            region_code: "320602".into(),
            year: 2026,
        };
        let anonymous = server.policies().get_policy(policy.clone()).await;
        assert_eq!(anonymous.unwrap_err().code(), tonic::Code::Unauthenticated);
        let mut auditor = pb::policy_service_client::PolicyServiceClient::with_interceptor(
            server.channel(),
            bearer(Some("t-auditor")),
        );
        auditor
            .get_policy(policy)
            .await
            .expect("the tokens still serve");
        server
            .reloader
            .reload(Ok(Config {
                access: tokens(),
                ..Config::default()
            }))
            .expect("a configuration with tokens reloads");
    }
}
