//! The edge under abuse, measured rather than assumed: raw TCP and
//! hand-written HTTP/2 frames (or the `h2` crate as a client) against a
//! server whose limits are small, so every deadline fires within a second
//! or two. Each test prints its figures on a line starting `edge figures:`
//! (`cargo test --test api edge -- --nocapture`).

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use medassist::config::{Config, Limits};
use tempfile::TempDir;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tonic::transport::Channel;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::helpers::*;

/// The HTTP/2 client magic (RFC 9113, 3.4).
pub(crate) const MAGIC: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
pub(crate) const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// The edge tests that keep both cores busy (floods, rapid reset,
/// non-readers, here and in `edge_flood` and `edge_stall`) run one at a
/// time in this process: a flood holds thousands of sockets, and the
/// latency one test measures must not be another's load.
pub(crate) static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Small limits, so every deadline fires within a second or two.
pub(crate) fn small_limits() -> Limits {
    Limits {
        connections_max: 20,
        handshake_timeout: Duration::from_millis(500),
        idle_timeout: Duration::from_secs(1),
        write_stall_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(2),
        streams_per_connection_max: 16,
        ..Limits::default()
    }
}

/// A server with `limits` and a metrics endpoint.
pub(crate) async fn start(limits: Limits) -> TestServer {
    let dir = Arc::new(TempDir::new().unwrap());
    let mut config = TestServer::config_for(&dir);
    config.config = Config {
        limits,
        ..Config::default()
    };
    config.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    TestServer::launch(dir, config, None).await
}

/// One HTTP/2 frame.
pub(crate) fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut bytes = vec![length[1], length[2], length[3], kind, flags];
    bytes.extend_from_slice(&stream.to_be_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// The whole client preface: magic and an empty SETTINGS frame.
pub(crate) fn preface() -> Vec<u8> {
    let mut bytes = MAGIC.to_vec();
    bytes.extend(frame(SETTINGS, 0, 0, &[]));
    bytes
}

/// A HEADERS frame opening a gRPC request to `path`, in HPACK literals
/// without indexing or Huffman coding (every name and value is short).
pub(crate) fn request_headers(stream: u32, path: &str, end_stream: bool) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "medassist"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ] {
        block.push(0x00);
        block.push(u8::try_from(name.len()).unwrap());
        block.extend_from_slice(name.as_bytes());
        block.push(u8::try_from(value.len()).unwrap());
        block.extend_from_slice(value.as_bytes());
    }
    let flags = END_HEADERS | if end_stream { END_STREAM } else { 0 };
    frame(HEADERS, flags, stream, &block)
}

/// Reads and discards what the server sends until it closes the
/// connection; how long after `since` that was, or `None` past `limit`.
async fn closed_within(
    stream: &mut TcpStream,
    since: Instant,
    limit: Duration,
) -> Option<Duration> {
    let mut buffer = [0u8; 16 * 1024];
    let read_all = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return since.elapsed(),
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, read_all).await.ok()
}

/// Waits (bounded) until the server counts `open` connections.
pub(crate) async fn connections_become(server: &TestServer, open: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    while server.edge.connections_open() != open {
        assert!(
            Instant::now() < deadline,
            "{} connections open, expected {open}",
            server.edge.connections_open()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The server's metrics text.
pub(crate) async fn scrape(server: &TestServer) -> String {
    let mut stream = TcpStream::connect(server.metrics_addr.unwrap())
        .await
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: medassist\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

/// The value of one metric line, 0 when absent.
pub(crate) fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

/// The resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A fresh client connection (not the test server's shared channel).
pub(crate) async fn connect(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("a real client connects")
}

/// Latency percentiles of `samples`, in milliseconds: (p50, p99, max).
pub(crate) fn percentiles(mut samples: Vec<Duration>) -> (f64, f64, f64) {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() - 1) as f64 * q).round() as usize;
        samples[i].as_secs_f64() * 1e3
    };
    (at(0.5), at(0.99), at(1.0))
}

/// Proves the handshake deadline: connections that send nothing, only the
/// 24-byte magic, or the magic a byte every 100 ms (it would take 2.4 s)
/// are all closed at the 500 ms deadline, counted as `handshake_timeout`,
/// and their permits come back.
#[tokio::test]
async fn silent_and_preface_only_connections_close_at_the_handshake_deadline() {
    let server = start(small_limits()).await;
    let started = Instant::now();
    let mut silent = Vec::new();
    for n in 0..10 {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        if n % 2 == 1 {
            stream.write_all(MAGIC).await.unwrap();
        }
        silent.push(stream);
    }
    let addr = server.addr;
    let drip = tokio::spawn(async move {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let since = Instant::now();
        for byte in MAGIC {
            if stream.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        closed_within(&mut stream, since, Duration::from_secs(5)).await
    });
    let mut closed_at = Vec::new();
    for stream in &mut silent {
        let at = closed_within(stream, started, Duration::from_secs(5))
            .await
            .expect("a silent connection is closed");
        closed_at.push(at);
    }
    let drip_closed = drip.await.unwrap().expect("a dripped preface is closed");
    for at in closed_at.iter().chain([&drip_closed]) {
        assert!(
            *at >= Duration::from_millis(450) && *at < Duration::from_millis(1500),
            "closed after {at:?}, the deadline is 500 ms"
        );
    }
    connections_become(&server, 0, Duration::from_secs(2)).await;
    let text = scrape(&server).await;
    assert_eq!(
        metric(
            &text,
            r#"medassist_connections_rejected_total{reason="handshake_timeout"}"#
        ),
        11,
        "{text}"
    );
    eprintln!(
        "edge figures: handshake deadline 500 ms; silent/preface-only closed after {:?} .. {:?}; dripped preface after {drip_closed:?}",
        closed_at.iter().min().unwrap(),
        closed_at.iter().max().unwrap()
    );
}

/// Proves the idle timeout counts open streams, not bytes: a connection
/// that completed its preface and opened nothing closes after the 1 s idle
/// timeout (not at the 500 ms handshake deadline: the preface was seen); a
/// real client holding a health `Watch` stream stays open for 3 s, and its
/// connection closes about 1 s after the stream ends.
#[tokio::test]
async fn idle_connections_close_after_the_idle_timeout() {
    let server = start(small_limits()).await;
    let mut raw = TcpStream::connect(server.addr).await.unwrap();
    let since = Instant::now();
    raw.write_all(&preface()).await.unwrap();
    let at = closed_within(&mut raw, since, Duration::from_secs(5))
        .await
        .expect("an idle connection is closed");
    assert!(
        at >= Duration::from_millis(950) && at < Duration::from_millis(2500),
        "closed after {at:?}; idle timeout 1 s"
    );

    let channel = connect(server.addr).await;
    let mut watch = HealthClient::new(channel.clone())
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("watch starts")
        .into_inner();
    watch.message().await.unwrap().expect("the first status");
    let held = tokio::time::timeout(Duration::from_secs(3), watch.message()).await;
    assert!(held.is_err(), "the watch stays open and quiet: {held:?}");
    assert_eq!(
        server.edge.connections_open(),
        1,
        "a stream is open: not idle"
    );
    drop(watch);
    let released = Instant::now();
    connections_become(&server, 0, Duration::from_secs(3)).await;
    let closed_after = released.elapsed();
    assert!(
        closed_after >= Duration::from_millis(900),
        "{closed_after:?}"
    );
    let text = scrape(&server).await;
    assert_eq!(
        metric(
            &text,
            r#"medassist_connections_closed_total{reason="idle"}"#
        ),
        2,
        "{text}"
    );
    eprintln!(
        "edge figures: idle timeout 1 s; bare connection closed after {at:?}; after its watch ended, a client's connection closed after {closed_after:?}"
    );
}

/// Proves keepalive drops a dead peer and keeps a live one: with pings
/// every 1 s and 1 s to answer, a peer that opened a stream and then reads
/// nothing (so answers no ping) is closed within a few seconds, long before
/// its 20 s idle timeout could, and counted as `keepalive` (from the
/// GOAWAY `NO_ERROR` hyper writes); a real client holding a stream just as
/// long answers the pings and stays connected.
#[tokio::test]
async fn keepalive_drops_dead_peers_and_keeps_live_ones() {
    let server = start(Limits {
        idle_timeout: Duration::from_secs(20),
        keepalive_interval: Duration::from_secs(1),
        keepalive_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(30),
        ..small_limits()
    })
    .await;
    let channel = connect(server.addr).await;
    let mut watch = HealthClient::new(channel.clone())
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("watch starts")
        .into_inner();
    watch.message().await.unwrap().expect("the first status");

    let mut dead = TcpStream::connect(server.addr).await.unwrap();
    let mut opening = preface();
    opening.extend(request_headers(1, "/grpc.health.v1.Health/Watch", false));
    dead.write_all(&opening).await.unwrap();
    let since = Instant::now();
    connections_become(&server, 2, Duration::from_secs(2)).await;
    // The dead peer reads nothing; wait without reading, then look.
    let deadline = Instant::now() + Duration::from_secs(8);
    while server.edge.connections_open() > 1 {
        assert!(
            Instant::now() < deadline,
            "the dead peer is still connected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dropped_after = since.elapsed();
    assert!(
        dropped_after >= Duration::from_millis(1900) && dropped_after < Duration::from_secs(5),
        "{dropped_after:?}: one interval without a frame, then one without the answer"
    );
    let quiet = tokio::time::timeout(Duration::from_millis(200), watch.message()).await;
    assert!(quiet.is_err(), "the live client's stream is still open");
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("the live client's connection still serves");
    let text = scrape(&server).await;
    assert_eq!(
        metric(
            &text,
            r#"medassist_connections_closed_total{reason="keepalive"}"#
        ),
        1,
        "{text}"
    );
    eprintln!(
        "edge figures: keepalive 1 s + 1 s; a peer answering no ping dropped after {dropped_after:?}; a live client kept its connection"
    );
}

/// Proves a connection flood beyond the limit is shed or refused at once
/// and does not stop real clients: 200 attackers reconnect as fast as they
/// can for 3 s (half send only the magic) against a limit of 20, each new
/// one shedding the oldest that has sent no request if that one has had
/// its 125 ms (a quarter of the 500 ms handshake deadline), refused at once
/// otherwise; a client connected before the flood, which has sent requests
/// and so is never shed, settles and checks health throughout, and their
/// latency is reported. Afterwards every flood connection is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_is_shed_and_real_clients_keep_working() {
    let _alone = HEAVY.lock().await;
    let server = start(small_limits()).await;
    let patient = server.enroll("1960-01-01", 501).await;
    let real = connect(server.addr).await;
    let mut settlements =
        medassist::grpc::pb::settlement_service_client::SettlementServiceClient::new(real.clone());
    let mut health = HealthClient::new(real);
    settlements
        .settle(claim_paying_7000(&patient, "FLOOD-0"))
        .await
        .unwrap();
    let rss_before = rss_kib();

    let flood_for = Duration::from_secs(3);
    let addr = server.addr;
    let attackers: Vec<_> = (0..200)
        .map(|n| {
            tokio::spawn(async move {
                let (mut connects, mut refused_at_once) = (0u64, 0u64);
                let end = Instant::now() + flood_for;
                while Instant::now() < end {
                    let Ok(mut stream) = TcpStream::connect(addr).await else {
                        continue;
                    };
                    connects += 1;
                    if n % 2 == 1 {
                        let _ = stream.write_all(MAGIC).await;
                    }
                    let since = Instant::now();
                    let closed = closed_within(&mut stream, since, Duration::from_secs(3)).await;
                    if closed.is_some_and(|at| at < Duration::from_millis(100)) {
                        refused_at_once += 1;
                    }
                }
                (connects, refused_at_once)
            })
        })
        .collect();

    let (mut settle_ms, mut health_ms) = (Vec::new(), Vec::new());
    let end = Instant::now() + flood_for;
    let mut n = 1;
    while Instant::now() < end {
        let started = Instant::now();
        settlements
            .settle(claim_paying_7000(&patient, &format!("FLOOD-{n}")))
            .await
            .expect("a real client settles during the flood");
        settle_ms.push(started.elapsed());
        let started = Instant::now();
        health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("health answers during the flood");
        health_ms.push(started.elapsed());
        n += 1;
    }
    let rss_during = rss_kib();
    let (mut connects, mut refused) = (0, 0);
    for attacker in attackers {
        let (c, r) = attacker.await.unwrap();
        connects += c;
        refused += r;
    }
    // Connections still in the accept queue when the attackers stopped are
    // taken afterwards and close at their deadline; a loaded machine may
    // take a few seconds to get there. The real client's own connection
    // may have gone idle meanwhile, so at most it is left.
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.edge.connections_open() > 1 {
        assert!(Instant::now() < deadline, "flood connections are left");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let text = scrape(&server).await;
    let rejected = metric(
        &text,
        r#"medassist_connections_rejected_total{reason="limit"}"#,
    ) + metric(
        &text,
        r#"medassist_connections_evicted_total{reason="handshake"}"#,
    );
    assert!(
        rejected > 100,
        "the limit shed or refused connections: {rejected}\n{text}"
    );
    assert!(
        refused > 100,
        "shed and refused connections close at once: {refused}"
    );
    // The whole test process (clients, other tests) is measured, so the
    // bound is loose; the binary's own figures are in docs/EDGE.md.
    let grown_kib = rss_during.saturating_sub(rss_before);
    assert!(
        grown_kib < 256 * 1024,
        "memory grew by {grown_kib} KiB during the flood"
    );
    let (s50, s99, smax) = percentiles(settle_ms.clone());
    let (h50, h99, hmax) = percentiles(health_ms.clone());
    eprintln!(
        "edge figures: flood of 200 reconnecting attackers for 3 s, limit 20: {connects} connects, {rejected} shed or refused by the limit ({refused} seen closed within 100 ms); \
         real client during the flood: {} settles p50 {s50:.2} ms p99 {s99:.2} ms max {smax:.2} ms, {} health checks p50 {h50:.2} ms p99 {h99:.2} ms max {hmax:.2} ms; \
         test process RSS {rss_before} -> {rss_during} KiB",
        settle_ms.len(),
        health_ms.len()
    );
}

/// Proves HTTP/2 rapid reset (CVE-2023-44487) is cut off: a client that
/// opens health streams and resets each at once is sent GOAWAY and closed
/// long before it has sent 100,000 of them, counted as `rapid_reset`,
/// while a real client's health checks keep answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_is_cut_off() {
    let _alone = HEAVY.lock().await;
    let server = start(small_limits()).await;
    let real = connect(server.addr).await;
    let mut health = HealthClient::new(real);
    let rss_before = rss_kib();
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let since = Instant::now();
    let watcher = tokio::spawn(async move {
        // Reads frames until the server closes; notes a GOAWAY's error code.
        let mut bytes = Vec::new();
        let mut buffer = [0u8; 16 * 1024];
        let mut goaway = None;
        loop {
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => bytes.extend_from_slice(&buffer[..n]),
            }
            while bytes.len() >= 9 {
                let length = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
                if bytes.len() < 9 + length {
                    break;
                }
                if bytes[3] == GOAWAY && length >= 8 {
                    goaway = Some(u32::from_be_bytes([
                        bytes[13], bytes[14], bytes[15], bytes[16],
                    ]));
                }
                bytes.drain(..9 + length);
            }
        }
        (goaway, since.elapsed())
    });
    writer.write_all(&preface()).await.unwrap();
    let mut sent = 0u32;
    let cancel = 0x8u32.to_be_bytes();
    'attack: for batch in 0..1000u32 {
        let mut bytes = Vec::new();
        for i in 0..100u32 {
            let stream_id = 2 * (batch * 100 + i) + 1;
            bytes.extend(request_headers(
                stream_id,
                "/grpc.health.v1.Health/Check",
                false,
            ));
            bytes.extend(frame(RST_STREAM, 0, stream_id, &cancel));
        }
        if writer.write_all(&bytes).await.is_err() {
            break 'attack;
        }
        sent += 100;
        if watcher.is_finished() {
            break;
        }
    }
    let (goaway, closed_after) = tokio::time::timeout(Duration::from_secs(10), watcher)
        .await
        .expect("the server closes the connection")
        .unwrap();
    let started = Instant::now();
    health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health answers a real client");
    let health_ms = started.elapsed();
    assert!(sent < 100_000, "cut off before the end: sent {sent}");
    let grown_kib = rss_kib().saturating_sub(rss_before);
    assert!(grown_kib < 64 * 1024, "memory grew by {grown_kib} KiB");
    // Counted when hyper drops the connection, just after its last bytes.
    connections_become(&server, 1, Duration::from_secs(5)).await;
    let text = scrape(&server).await;
    assert_eq!(
        metric(
            &text,
            r#"medassist_connections_closed_total{reason="rapid_reset"}"#
        ),
        1,
        "{text}"
    );
    eprintln!(
        "edge figures: rapid reset: {sent} streams opened and reset before the server closed the connection after {closed_after:?} (GOAWAY code {goaway:?}); a real health check right after took {health_ms:?}; test process RSS grew {grown_kib} KiB"
    );
}

/// A Settle stream opened by hand on a new HTTP/2 connection, its body
/// left to the caller: the response to come, and where the body goes.
async fn open_settle_stream(
    addr: std::net::SocketAddr,
) -> (h2::client::ResponseFuture, h2::SendStream<bytes::Bytes>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let request = http::Request::post(format!(
        "http://{addr}/medassist.v1.SettlementService/Settle"
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(())
    .unwrap();
    client.send_request(request, false).unwrap()
}

/// Proves a request body sent a byte a second is cut off by the request
/// timeout (2 s here) with a gRPC status, while a real client settles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_is_cut_off() {
    let server = start(small_limits()).await;
    let patient = server.enroll("1960-01-01", 502).await;
    let since = Instant::now();
    let (response, mut body) = open_settle_stream(server.addr).await;
    let dripping = tokio::spawn(async move {
        // A gRPC frame announcing 100 bytes, then one byte a second.
        let mut sent = 0;
        for byte in [0u8, 0, 0, 0, 100].into_iter().chain([0x0a; 100]) {
            if body
                .send_data(bytes::Bytes::from(vec![byte]), false)
                .is_err()
            {
                break;
            }
            sent += 1;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        sent
    });
    let started = Instant::now();
    settled(
        server
            .settlements()
            .settle(claim_paying_7000(&patient, "SLOW-0"))
            .await,
    );
    let settle_ms = started.elapsed();
    let response = tokio::time::timeout(Duration::from_secs(5), response)
        .await
        .expect("the slow request is answered")
        .expect("with a response");
    let status = response
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_owned());
    let cut_after = since.elapsed();
    assert!(cut_after < Duration::from_secs(4), "{cut_after:?}");
    assert_eq!(
        status.as_deref(),
        Some("1"),
        "CANCELLED, the timeout's code"
    );
    dripping.abort();
    assert_eq!(
        server.gate.in_flight(),
        0,
        "the slow request holds no permit"
    );
    eprintln!(
        "edge figures: slow body (1 byte/s): answered CANCELLED after {cut_after:?}; a real settle meanwhile took {settle_ms:?}"
    );
}

/// Proves a refused call is a trailers-only answer: its status rides on
/// the headers, which end the stream. A data frame after them is a protocol
/// error to strict clients (grpcio reports "Stream removed"), whatever the
/// audit layer needs to record first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_call_ends_with_its_headers() {
    let server = start(small_limits()).await;
    let (response, mut body) = open_settle_stream(server.addr).await;
    // An empty SettleRequest: every field is missing.
    body.send_data(bytes::Bytes::from_static(&[0, 0, 0, 0, 0]), true)
        .unwrap();
    let response = response.await.unwrap();
    assert_eq!(
        response
            .headers()
            .get("grpc-status")
            .map(|v| v.to_str().unwrap()),
        Some("3"),
        "INVALID_ARGUMENT in the headers: {:?}",
        response.headers()
    );
    assert!(
        response.body().is_end_stream(),
        "the headers carry END_STREAM"
    );
}

/// A GetPolicy request (region 320602, 2026) as one gRPC frame.
fn policy_request_body() -> Vec<u8> {
    let mut message = vec![0x0a, 6];
    message.extend_from_slice(b"320602");
    message.extend_from_slice(&[0x10, 0xea, 0x0f]);
    let mut body = vec![0];
    body.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    body.extend(message);
    body
}

/// Proves a client that never reads its responses is cut off: it opens
/// its window wide, sends GetPolicy requests as fast as it can and reads
/// nothing, on a socket with a 4 KiB receive buffer. Not reading, it
/// cannot know when its streams end, so it overruns the 16 streams allowed
/// and the server's refusals count against the local-reset limit (256):
/// the connection is closed within seconds, by that limit (GOAWAY
/// `ENHANCE_YOUR_CALM`, counted as `stream_errors`), by the write-stall
/// timeout or by the idle timeout, whichever comes first, and counted once
/// under that reason; memory stays bounded and a real client's health
/// checks answer throughout. (The write-stall timeout alone is proven in
/// `edge_stall`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_cut_off() {
    let _alone = HEAVY.lock().await;
    let server = start(small_limits()).await;
    let mut health = HealthClient::new(connect(server.addr).await);
    connections_become(&server, 1, Duration::from_secs(2)).await;
    let rss_before = rss_kib();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(server.addr).await.unwrap();
    let (_reader, mut writer) = stream.into_split();
    let since = Instant::now();
    let flooding = tokio::spawn(async move {
        // SETTINGS_INITIAL_WINDOW_SIZE at its largest, and the connection
        // window too, so only the socket stops the server's writes.
        let mut opening = MAGIC.to_vec();
        let mut settings = vec![0, 4];
        settings.extend_from_slice(&0x7fff_ffffu32.to_be_bytes());
        opening.extend(frame(SETTINGS, 0, 0, &settings));
        opening.extend(frame(0x8, 0, 0, &(0x7fff_ffffu32 - 65_535).to_be_bytes()));
        if writer.write_all(&opening).await.is_err() {
            return 0;
        }
        let body = policy_request_body();
        let mut sent = 0u32;
        for stream_id in (1..200_000u32).step_by(2) {
            let mut bytes =
                request_headers(stream_id, "/medassist.v1.PolicyService/GetPolicy", false);
            bytes.extend(frame(0x0, END_STREAM, stream_id, &body));
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
            sent += 1;
        }
        sent
    });
    let mut health_ms = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    // At least one health check, however fast the cut-off comes.
    loop {
        let started = Instant::now();
        health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("health answers a real client");
        health_ms.push(started.elapsed());
        if flooding.is_finished() && server.edge.connections_open() <= 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the non-reader is still connected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cut_after = since.elapsed();
    let sent = tokio::time::timeout(Duration::from_secs(5), flooding)
        .await
        .expect("the flooder's writes fail once it is closed")
        .unwrap();
    let grown_kib = rss_kib().saturating_sub(rss_before);
    let text = scrape(&server).await;
    let closed = |reason: &str| {
        metric(
            &text,
            &format!("medassist_connections_closed_total{{reason=\"{reason}\"}}"),
        )
    };
    let reasons = ["stream_errors", "write_stall", "idle"];
    let counted: Vec<_> = reasons.iter().filter(|r| closed(r) == 1).collect();
    assert_eq!(counted.len(), 1, "closed once, for one reason\n{text}");
    let reason = counted[0];
    assert!(sent < 100_000, "cut off before the end: sent {sent}");
    assert!(grown_kib < 256 * 1024, "memory grew by {grown_kib} KiB");
    let (h50, h99, hmax) = percentiles(health_ms.clone());
    eprintln!(
        "edge figures: non-reader: {sent} requests sent, closed by {reason} after {cut_after:?}; test process RSS grew {grown_kib} KiB; real health checks meanwhile ({}) p50 {h50:.2} ms p99 {h99:.2} ms max {hmax:.2} ms",
        health_ms.len()
    );
}

/// Proves SIGTERM still stops the real binary within its 10 s grace with
/// abusive connections open under the default limits (whose deadlines are
/// far off): 300 silent, 300 preface-only, 100 idle HTTP/2 connections and
/// one request whose body never finishes. The idle and handshaking ones
/// close at once; the unfinished request holds the stop to the grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_within_its_grace_under_abuse() {
    let _alone = HEAVY.lock().await;
    let dir = TempDir::new().unwrap();
    let server = ServerProcess::start(&dir.path().join("data"), &[]).await;
    let addr = server.addr;
    let mut held = Vec::new();
    for n in 0..700 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        match n {
            0..300 => {}
            300..600 => stream.write_all(MAGIC).await.unwrap(),
            _ => stream.write_all(&preface()).await.unwrap(),
        }
        held.push(stream);
    }
    let mut unfinished = TcpStream::connect(addr).await.unwrap();
    let mut opening = preface();
    opening.extend(request_headers(
        1,
        "/medassist.v1.PolicyService/GetPolicy",
        false,
    ));
    opening.extend(frame(0x0, 0, 1, &[0, 0, 0, 0, 100, 0x0a]));
    unfinished.write_all(&opening).await.unwrap();
    let started = Instant::now();
    let log = server.terminate().await;
    let stopped_after = started.elapsed();
    assert!(
        stopped_after < Duration::from_millis(10_500),
        "stopped after {stopped_after:?}"
    );
    assert!(log.iter().any(|line| line.contains("stopped")), "{log:?}");
    eprintln!(
        "edge figures: SIGTERM with 700 abusive connections and one unfinished request open: exited after {stopped_after:?}"
    );
    drop(held);
}
