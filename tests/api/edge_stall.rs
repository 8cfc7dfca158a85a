//! The write-stall timeout end to end, on both ports: a client on a real
//! socket with a 4 KiB receive buffer asks for far more than the socket
//! buffers hold, on as few streams as it can, and reads nothing. Every
//! other limit that could close the connection first is set out of the
//! way (idle 10 s, requests 30 s), so the close can only be the write
//! stall's: 1 s after the server's writes stop making progress.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use medassist::config::{Config, Limits};
use tempfile::TempDir;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::edge::{
    HEAVY, MAGIC, SETTINGS, connect, connections_become, frame, metric, request_headers, scrape,
    small_limits,
};
use crate::helpers::*;

/// Reflection requests the gRPC client sends on its one stream.
const GRPC_REQUESTS: usize = 400;
/// The reflection RPC: its requests are tiny, each answer a whole file
/// descriptor.
const REFLECTION: &str = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";

/// One gRPC message asking for the file that defines the settlement
/// service (`ServerReflectionRequest.file_containing_symbol`, field 4).
fn reflection_request() -> Vec<u8> {
    let symbol = b"medassist.v1.SettlementService";
    let mut message = vec![0x22, u8::try_from(symbol.len()).unwrap()];
    message.extend_from_slice(symbol);
    let mut framed = vec![0];
    framed.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    framed.extend(message);
    framed
}

/// Requests the HTTP/JSON client pipelines: 200 OpenAPI documents of about
/// 50 KB each, 10 MB.
const HTTP_REQUESTS: usize = 200;

/// Limits where only the write stall (1 s) can close a non-reader soon.
fn stall_limits() -> Limits {
    Limits {
        handshake_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(10),
        write_stall_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(30),
        ..small_limits()
    }
}

/// A connection to `target` whose receive buffer is 4 KiB.
async fn small_window(target: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(target).await.unwrap()
}

/// Waits for the server to take the connection of `stream` (`open` + 1
/// connections) and then to close it (`open`); then reads the socket to
/// its end, which proves it closed. Returns how long after `since` the
/// server let go of it.
async fn closed_by_server(
    server: &TestServer,
    open: usize,
    mut stream: tokio::net::tcp::OwnedReadHalf,
    since: Instant,
) -> Duration {
    connections_become(server, open + 1, Duration::from_secs(5)).await;
    connections_become(server, open, Duration::from_secs(15)).await;
    let closed_after = since.elapsed();
    let mut buffer = vec![0u8; 64 * 1024];
    let drained = async {
        // What the server had queued arrives, then the end or a reset.
        while let Ok(read) = stream.read(&mut buffer).await {
            if read == 0 {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), drained)
        .await
        .expect("the socket reaches its end once the server has closed it");
    closed_after
}

/// Proves the write-stall timeout on the gRPC port: the client opens its
/// HTTP/2 windows wide and sends, on one reflection stream, 400 requests
/// of a few dozen bytes for a whole file descriptor each (megabytes of
/// answers), and reads nothing. The server's writes stop once the socket
/// is full; it closes the connection between 1 s (the timeout) and 10 s
/// after the first request, counts it as `write_stall` and under no other
/// reason, and a real client's health check answers afterwards. (The
/// reflection service's task then panics on its closed channel,
/// `tonic-reflection` `v1.rs` `.expect("send")`; tokio catches it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_client_that_never_reads_is_closed_at_the_write_stall_timeout() {
    let _alone = HEAVY.lock().await;
    let server = crate::edge::start(stall_limits()).await;
    let mut health = HealthClient::new(connect(server.addr).await);
    let (reader, mut writer) = small_window(server.addr).await.into_split();
    let since = Instant::now();
    let writing = tokio::spawn(async move {
        // SETTINGS_INITIAL_WINDOW_SIZE at its largest, and the connection
        // window too, so only the socket stops the server's writes.
        let mut bytes = MAGIC.to_vec();
        let mut settings = vec![0, 4];
        settings.extend_from_slice(&0x7fff_ffffu32.to_be_bytes());
        bytes.extend(frame(SETTINGS, 0, 0, &settings));
        bytes.extend(frame(0x8, 0, 0, &(0x7fff_ffffu32 - 65_535).to_be_bytes()));
        bytes.extend(request_headers(1, REFLECTION, false));
        let request = reflection_request();
        for _ in 0..GRPC_REQUESTS / 100 {
            bytes.extend(frame(0x0, 0, 1, &request.repeat(100)));
        }
        // Once the server has closed, the rest cannot be written. The
        // write half stays open either way: a half-close would end the
        // connection on its own.
        let _ = writer.write_all(&bytes).await;
        writer
    });
    let closed_after = closed_by_server(&server, 1, reader, since).await;
    let _writer = tokio::time::timeout(Duration::from_secs(5), writing)
        .await
        .expect("the writer ends once the connection is closed");
    health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("a real client is served");
    let text = scrape(&server).await;
    assert_only_write_stall(&text);
    assert!(
        closed_after >= Duration::from_secs(1) && closed_after < Duration::from_secs(10),
        "closed after {closed_after:?}; write-stall timeout 1 s"
    );
    eprintln!(
        "edge figures: a gRPC client reading nothing ({GRPC_REQUESTS} reflection requests on one stream, 4 KiB receive buffer): closed for write_stall {closed_after:?} after its first request (timeout 1 s)"
    );
}

/// Proves the write-stall timeout on the HTTP/JSON port: the client
/// pipelines 200 `GET /openapi.json` (about 10 MB of answers) and reads
/// nothing; the server closes the connection between 1 s and 10 s after
/// the first request, counted as `write_stall` and under no other reason,
/// and a new client's `GET /healthz` answers afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_client_that_never_reads_is_closed_at_the_write_stall_timeout() {
    let _alone = HEAVY.lock().await;
    let dir = Arc::new(TempDir::new().unwrap());
    let mut config = TestServer::config_for(&dir);
    config.config = Config {
        limits: stall_limits(),
        ..Config::default()
    };
    config.metrics_listen = Some(local());
    config.http_listen = Some(local());
    let server = TestServer::launch(dir, config, None).await;
    let http = server.http_addr.expect("HTTP/JSON is served");
    let (reader, mut writer) = small_window(http).await.into_split();
    let since = Instant::now();
    let writing = tokio::spawn(async move {
        let request = b"GET /openapi.json HTTP/1.1\r\nHost: medassist\r\n\r\n";
        // The write half stays open: a half-close would end the
        // connection on its own.
        let _ = writer.write_all(&request.repeat(HTTP_REQUESTS)).await;
        writer
    });
    let closed_after = closed_by_server(&server, 0, reader, since).await;
    let _writer = tokio::time::timeout(Duration::from_secs(5), writing)
        .await
        .expect("the writer ends");
    let mut fresh = TcpStream::connect(http).await.unwrap();
    fresh
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: medassist\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    fresh.read_to_end(&mut answer).await.unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "a new client is served"
    );
    let text = scrape(&server).await;
    assert_only_write_stall(&text);
    assert!(
        closed_after >= Duration::from_secs(1) && closed_after < Duration::from_secs(10),
        "closed after {closed_after:?}; write-stall timeout 1 s"
    );
    eprintln!(
        "edge figures: an HTTP/JSON client reading nothing ({HTTP_REQUESTS} pipelined GET /openapi.json, 4 KiB receive buffer): closed for write_stall {closed_after:?} after its first request (timeout 1 s)"
    );
}

/// One connection closed, for `write_stall`, and none for another reason.
fn assert_only_write_stall(text: &str) {
    for reason in [
        "idle",
        "shutdown",
        "keepalive",
        "rapid_reset",
        "stream_errors",
        "enhance_your_calm",
        "protocol_error",
    ] {
        let series = format!("medassist_connections_closed_total{{reason=\"{reason}\"}}");
        assert_eq!(metric(text, &series), 0, "{series}\n{text}");
    }
    assert_eq!(
        metric(
            text,
            r#"medassist_connections_closed_total{reason="write_stall"}"#
        ),
        1,
        "{text}"
    );
}
