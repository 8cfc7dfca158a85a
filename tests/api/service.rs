//! The standard pieces stock tools rely on: health and reflection.

use tokio_stream::StreamExt;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

use crate::helpers::*;

/// Proves `grpc.health.v1` reports the server and each service as serving.
#[tokio::test]
async fn health_reports_serving() {
    let server = TestServer::start().await;
    let mut health = HealthClient::new(server.channel());
    for service in [
        "",
        "medassist.v1.SettlementService",
        "medassist.v1.UsageService",
        "medassist.v1.RosterService",
        "medassist.v1.PolicyService",
        "medassist.v1.ReconciliationService",
    ] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::Serving, "{service:?}");
    }
}

/// Proves reflection lists every service, so grpcurl can call without protos.
#[tokio::test]
async fn reflection_lists_every_service() {
    let server = TestServer::start().await;
    let mut reflection = ServerReflectionClient::new(server.channel());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("expected a service list, got {answer:?}");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "medassist.v1.SettlementService",
        "medassist.v1.UsageService",
        "medassist.v1.RosterService",
        "medassist.v1.PolicyService",
        "medassist.v1.AdminService",
        "medassist.v1.ReconciliationService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
}

/// Asks reflection for `symbol` and returns the file descriptors it sends.
async fn file_containing(
    reflection: &mut ServerReflectionClient<tonic::transport::Channel>,
    request: MessageRequest,
) -> Vec<prost_types::FileDescriptorProto> {
    use prost::Message as _;
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let answer = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner()
        .next()
        .await
        .unwrap()
        .unwrap();
    let Some(MessageResponse::FileDescriptorResponse(files)) = answer.message_response else {
        panic!("expected file descriptors, got {answer:?}");
    };
    files
        .file_descriptor_proto
        .iter()
        .map(|bytes| prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap())
        .collect()
}

/// Proves grpcurl and other reflection clients can decode the error
/// details: `google.rpc.BadRequest` and `PreconditionFailure` resolve by
/// symbol, and every file they import resolves by name, as grpcurl asks.
#[tokio::test]
async fn reflection_resolves_the_error_details() {
    let server = TestServer::start().await;
    let mut reflection = ServerReflectionClient::new(server.channel());
    for symbol in [
        "google.rpc.BadRequest",
        "google.rpc.PreconditionFailure",
        "google.rpc.Status",
    ] {
        let files = file_containing(
            &mut reflection,
            MessageRequest::FileContainingSymbol(symbol.into()),
        )
        .await;
        let (package, name) = symbol.rsplit_once('.').unwrap();
        let file = files
            .iter()
            .find(|f| f.package() == package && f.message_type.iter().any(|m| m.name() == name))
            .unwrap_or_else(|| panic!("{symbol} is not in {files:?}"));
        for dependency in &file.dependency {
            let found = file_containing(
                &mut reflection,
                MessageRequest::FileByFilename(dependency.clone()),
            )
            .await;
            assert!(
                found.iter().any(|f| f.name() == dependency),
                "{symbol}: import {dependency} does not resolve"
            );
        }
    }
}

/// Proves the drain: on SIGTERM a `Watch` stream turns `NOT_SERVING` at
/// once and `Check` says so (and HTTP `/healthz` answers 503), while new
/// calls are still answered during the drain period, over gRPC and HTTP;
/// then the binary stops cleanly. It runs the real binary with
/// `--drain 3s` and measures against the signal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_reports_not_serving_and_drains() {
    use std::time::{Duration, Instant};
    let dir = tempfile::TempDir::new().unwrap();
    let server = ServerProcess::start(
        &dir.path().join("data"),
        &["--drain", "3s", "--http-listen", "127.0.0.1:0"],
    )
    .await;
    let http_addr = http_addr_of(&server).await;
    assert_eq!(http_status(&http_addr, "/healthz").await, 200);
    let mut health = HealthClient::new(server.channel.clone());
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.next().await.unwrap().unwrap().status();
    assert_eq!(first, ServingStatus::Serving);

    let asked = Instant::now();
    server.ask_to_stop();
    let next = tokio::time::timeout(Duration::from_secs(2), watch.next())
        .await
        .expect("Watch reports a change within 2 s of SIGTERM")
        .unwrap()
        .unwrap()
        .status();
    assert_eq!(next, ServingStatus::NotServing);
    for service in ["", "medassist.v1.SettlementService"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::NotServing, "{service:?}");
    }
    // HTTP load balancers see it too.
    assert_eq!(http_status(&http_addr, "/healthz").await, 503);
    // A new call during the drain is still served, over gRPC and HTTP.
    assert_eq!(
        http_status(&http_addr, "/v1/regions/320602/policies/2026").await,
        200
    );
    let mut policies = medassist::grpc::pb::policy_service_client::PolicyServiceClient::new(
        server.channel.clone(),
    );
    let policy = policies
        .get_policy(medassist::grpc::pb::GetPolicyRequest {
            region_code: "320602".into(),
            year: 2026,
        })
        .await
        .expect("served while draining");
    assert!(!policy.into_inner().policy_id.is_empty());
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "the drain ended too early to tell"
    );

    drop(watch);
    let log = server.wait_for_exit().await;
    let stopped_after = asked.elapsed();
    assert!(
        stopped_after >= Duration::from_secs(3),
        "stopped after {stopped_after:?}, before the drain period"
    );
    assert!(
        log.iter().any(|line| line.contains("NOT_SERVING")),
        "{log:?}"
    );
    assert!(log.iter().any(|line| line.contains("stopped")), "{log:?}");
}

/// The HTTP/JSON address the server logged.
async fn http_addr_of(server: &ServerProcess) -> String {
    for _ in 0..100 {
        let found = server.log_lines().iter().find_map(|line| {
            line.contains("serving HTTP/JSON")
                .then(|| line.split("addr=").nth(1))
                .flatten()
                .map(|addr| addr.trim().to_owned())
        });
        if let Some(addr) = found {
            return addr;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no HTTP/JSON address in {:?}", server.log_lines());
}

/// The HTTP status of `GET path`.
async fn http_status(addr: &str, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: medassist\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer}"))
}
