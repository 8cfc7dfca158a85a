//! Floods of half-open connections (issue 19): connections that take a slot
//! and then do nothing, as in the report: 2,000 from one address, half of
//! them silent and half sending the HTTP/2 preface and nothing more. Under
//! the default limits the flood must not lock a new client out. Every
//! legitimate client connects from 127.0.0.254, an address no flood uses,
//! as a hospital's would; the floods come from 127.0.0.1, or from
//! 127.0.0.10 up for a flood from many addresses (all of 127.0.0.0/8 is
//! this machine's loopback on Linux).
//!
//! Each test waits for the server to have taken every flood connection
//! ([`medassist::edge::Edge::taken`]) before its clients start, then
//! measures 50 health checks, each on a NEW connection (connect, HTTP/2
//! handshake, `grpc.health.v1.Health/Check`), from the client's side,
//! while no other heavy edge test runs in the process (`edge::HEAVY`).
//! Figures are printed on lines starting `edge figures:`
//! (`cargo test --test api edge_flood -- --nocapture`).

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

use medassist::config::Config;
use tempfile::TempDir;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::edge::{HEAVY, MAGIC, connections_become, metric, percentiles, preface, scrape};
use crate::helpers::*;

/// Where every legitimate client connects from.
const LEGIT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 254);
/// The size of the flood in the report.
const FLOOD: usize = 2_000;
/// Health checks measured after each flood.
const CHECKS: usize = 50;
/// The latency every one of them must stay under (p99 of 50 is the worst).
const CHECK_MS_MAX: f64 = 100.0;
/// How long a burst of connections may take to be taken by the server: a
/// bound for a stuck test, not a figure.
const TAKEN_WITHIN: Duration = Duration::from_secs(30);
/// How long the server spares a new connection from shedding under the
/// default limits.
const SPARED: Duration = Duration::from_millis(250);

/// Raises this process's soft limit on open files to at least `want` (a
/// flood's sockets on both sides, and the other tests running meanwhile).
fn open_files_at_least(want: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write a struct we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur >= want {
            return;
        }
        assert!(
            limit.rlim_max >= want,
            "these tests need {want} open files and the hard limit is {}: raise it (ulimit -Hn)",
            limit.rlim_max
        );
        limit.rlim_cur = want;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}

/// A server with metrics and HTTP/JSON, configured by `limits` (the body of
/// a `[limits]` section; empty for the defaults).
async fn start(limits: &str) -> TestServer {
    let dir = Arc::new(TempDir::new().unwrap());
    let mut config = TestServer::config_for(&dir);
    config.config = Config::parse(&format!("[limits]\n{limits}")).expect("the limits parse");
    config.metrics_listen = Some(local());
    config.http_listen = Some(local());
    TestServer::launch(dir, config, None).await
}

/// What a flood connection sends, by its number: half send nothing, a
/// quarter the 24-byte magic, a quarter the whole preface (magic and
/// SETTINGS, after which only the idle timeout, 5 minutes by default,
/// would close it).
fn grpc_opening(n: usize) -> Vec<u8> {
    match n % 4 {
        0 | 1 => Vec::new(),
        2 => MAGIC.to_vec(),
        _ => preface(),
    }
}

/// What an HTTP/JSON flood connection sends: half nothing, half the start
/// of a request line and never its end.
fn http_opening(n: usize) -> Vec<u8> {
    match n % 2 {
        0 => Vec::new(),
        _ => b"GET /healthz HT".to_vec(),
    }
}

/// A TCP connection to `target` from `from`.
async fn connect_from(from: Ipv4Addr, target: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((from, 0)))?;
    socket.connect(target).await
}

/// `count` connections to `target`, taking the sources in turn, each
/// sending `opening(n)` and then nothing; they stay open until dropped.
async fn flood(
    target: SocketAddr,
    sources: &[Ipv4Addr],
    count: usize,
    opening: fn(usize) -> Vec<u8>,
) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(count);
    for n in 0..count {
        let mut stream = connect_from(sources[n % sources.len()], target)
            .await
            .expect("the kernel completes every flood connection");
        // A connection the server closed at once may refuse the bytes.
        let _ = stream.write_all(&opening(n)).await;
        held.push(stream);
    }
    held
}

/// Waits until the server has taken `count` connections since it started.
async fn taken(server: &TestServer, count: usize) {
    let mut taken = server.edge.taken();
    tokio::time::timeout(TAKEN_WITHIN, taken.wait_for(|n| *n >= count as u64))
        .await
        .expect("the server takes every connection")
        .expect("the server runs");
}

/// One health check before the flood, on a connection then closed: the
/// service is warm, as a running one is. Returns once the server has let
/// go of that connection, so the flood finds every slot free.
async fn warm_up(server: &TestServer) {
    grpc_check(server.addr).await.expect("a warm-up check");
    connections_become(server, 0, Duration::from_secs(5)).await;
}

/// Waits out the time a new connection is spared from shedding (a quarter
/// of the default 10 s handshake deadline, at most 250 ms), so that every
/// flood connection may be shed: this is the server's rule, not a wait for
/// readiness. Before it, a new client arriving at a full server is refused.
async fn flood_connections_sheddable() {
    tokio::time::sleep(SPARED).await;
}

/// One health check on a new gRPC connection from [`LEGIT`]: its latency,
/// connect included, and the connection, kept open; or why it failed.
async fn grpc_check(target: SocketAddr) -> Result<(Duration, Channel), String> {
    let started = Instant::now();
    let channel = Endpoint::from_shared(format!("http://{target}"))
        .unwrap()
        .local_address(Some(LEGIT.into()))
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map_err(|e| format!("check: {e}"))?;
    Ok((started.elapsed(), channel))
}

/// One `GET /healthz` on a new HTTP/1.1 connection from [`LEGIT`]: its
/// latency and the connection, kept open; or why it failed.
async fn http_check(target: SocketAddr) -> Result<(Duration, TcpStream), String> {
    let started = Instant::now();
    let exchange = async {
        let mut stream = connect_from(LEGIT, target).await?;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: medassist\r\n\r\n")
            .await?;
        let answer = read_response(&mut stream).await?;
        Ok::<_, std::io::Error>((answer, stream))
    };
    let (answer, stream) = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| "no answer within 5 s".to_owned())?
        .map_err(|e| e.to_string())?;
    if !answer.starts_with(b"HTTP/1.1 200") {
        return Err(format!("answered {:?}", String::from_utf8_lossy(&answer)));
    }
    Ok((started.elapsed(), stream))
}

/// One HTTP/1.1 response on a kept-alive connection: its head and the
/// `Content-Length` bytes of body after it.
async fn read_response(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        answer.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&answer);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        let length: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or(0);
        if body.len() >= length {
            return Ok(answer);
        }
    }
}

/// Runs [`CHECKS`] checks one after another, each keeping its connection
/// open (so each new client needs a slot of its own), and insists every
/// one was answered within [`CHECK_MS_MAX`]; returns the summary for the
/// figures and the connections.
async fn checks_answered<F, Fut, Held>(what: &str, check: F) -> (String, Vec<Held>)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(Duration, Held), String>>,
{
    let (mut answered, mut held, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..CHECKS {
        match check().await {
            Ok((latency, connection)) => {
                answered.push(latency);
                held.push(connection);
            }
            Err(error) => failed.push(error),
        }
    }
    let summary = if answered.is_empty() {
        format!("{what}: 0 of {CHECKS} answered")
    } else {
        let (p50, p99, max) = percentiles(answered.clone());
        format!(
            "{what}: {} of {CHECKS} answered, p50 {p50:.2} ms p99 {p99:.2} ms max {max:.2} ms",
            answered.len()
        )
    };
    eprintln!("edge figures: {summary}");
    assert!(failed.is_empty(), "{summary}; first failure: {}", failed[0]);
    let (_, p99, _) = percentiles(answered);
    assert!(p99 < CHECK_MS_MAX, "{summary}");
    (summary, held)
}

/// Flood connections closed by the handshake deadline so far: each frees
/// a slot.
fn expired(text: &str) -> u64 {
    connections(text, "rejected", "handshake_timeout")
}

/// Connections shed so far, for any reason.
fn evicted(text: &str) -> u64 {
    connections(text, "evicted", "handshake") + connections(text, "evicted", "no_request")
}

/// The number of `medassist_connections_{family}_total{reason="{reason}"}`.
fn connections(text: &str, family: &str, reason: &str) -> u64 {
    metric(
        text,
        &format!("medassist_connections_{family}_total{{reason=\"{reason}\"}}"),
    )
}

/// Proves the report's flood no longer locks new clients out, under the
/// default limits: 2,000 half-open connections from one address (half
/// silent, a quarter the magic, a quarter the whole preface) take the 256
/// slots one address may hold, the other 1,744 are refused at once as
/// `per_source`, and 50 health checks, each on a new connection from
/// another address, are all answered with p99 under 100 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_flood_from_one_address_leaves_new_clients_room() {
    let _alone = HEAVY.lock().await;
    open_files_at_least(8192);
    let server = start("").await;
    warm_up(&server).await;
    let flooding = Instant::now();
    let held = flood(server.addr, &[Ipv4Addr::LOCALHOST], FLOOD, grpc_opening).await;
    taken(&server, FLOOD + 1).await;
    let flood_ms = flooding.elapsed().as_millis();
    let (figures, checks) =
        checks_answered("gRPC health on new connections", || grpc_check(server.addr)).await;
    let text = scrape(&server).await;
    assert_eq!(
        connections(&text, "rejected", "per_source"),
        1_744,
        "{text}"
    );
    assert_eq!(connections(&text, "rejected", "limit"), 0, "{text}");
    assert_eq!(evicted(&text), 0, "room was left: nothing to shed\n{text}");
    eprintln!(
        "edge figures: {FLOOD} half-open connections from one address (taken in {flood_ms} ms), default limits: {} refused per_source; {figures}",
        connections(&text, "rejected", "per_source")
    );
    drop((held, checks));
}

/// Proves shedding when one address may fill every slot (the per-source
/// limit set to the flood's size, as for a flood from behind a large
/// hospital's NAT): 2,000 half-open connections from one address fill the
/// 1,024 slots and every later one sheds an older one or is refused. Then
/// 50 health checks from another address, each keeping its connection,
/// each shed one flood connection (the oldest: silent ones and ones that
/// finished the preface, counted as `handshake` and `no_request`) and are
/// all answered with p99 under 100 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_capacity_a_new_client_sheds_the_oldest_idle_connection() {
    let _alone = HEAVY.lock().await;
    open_files_at_least(8192);
    let server = start(&format!("connections_per_source_max = {FLOOD}")).await;
    warm_up(&server).await;
    let held = flood(server.addr, &[Ipv4Addr::LOCALHOST], FLOOD, grpc_opening).await;
    taken(&server, FLOOD + 1).await;
    let text = scrape(&server).await;
    let by_flood = (
        connections(&text, "evicted", "handshake"),
        connections(&text, "evicted", "no_request"),
    );
    assert_eq!(
        by_flood.0 + by_flood.1 + connections(&text, "rejected", "limit"),
        (FLOOD - 1_024) as u64 + expired(&text),
        "every arrival at capacity sheds a connection or is refused\n{text}"
    );
    let expired_before = expired(&text);
    flood_connections_sheddable().await;
    let (figures, checks) =
        checks_answered("gRPC health on new connections", || grpc_check(server.addr)).await;
    let text = scrape(&server).await;
    let by_checks = (
        connections(&text, "evicted", "handshake") - by_flood.0,
        connections(&text, "evicted", "no_request") - by_flood.1,
    );
    assert_eq!(
        by_checks.0 + by_checks.1 + (expired(&text) - expired_before),
        CHECKS as u64,
        "each check sheds one, unless a flood connection's deadline freed a slot\n{text}"
    );
    assert!(by_checks.0 > 0 && by_checks.1 > 0, "{by_checks:?}");
    eprintln!(
        "edge figures: {FLOOD} half-open connections from one address, connections_max 1024, per source {FLOOD}: the flood shed {} of its own; the checks shed {} in their handshake and {} after it; {figures}",
        by_flood.0 + by_flood.1,
        by_checks.0,
        by_checks.1
    );
    drop((held, checks));
}

/// Proves a flood from many addresses, each under the per-source limit,
/// does not lock new clients out either: 16 addresses (127.0.0.10 to
/// 127.0.0.25) open 128 half-open connections each, 2,048 in all against
/// 1,024 slots; none is refused per source, every arrival beyond the slots
/// sheds an older one or is refused, and 50 health checks, each keeping
/// its connection, each shed one and are all answered with p99 under
/// 100 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_many_addresses_leaves_new_clients_room() {
    let _alone = HEAVY.lock().await;
    open_files_at_least(8192);
    let server = start("").await;
    warm_up(&server).await;
    let sources: Vec<Ipv4Addr> = (10..26).map(|n| Ipv4Addr::new(127, 0, 0, n)).collect();
    let count = sources.len() * 128;
    let held = flood(server.addr, &sources, count, grpc_opening).await;
    taken(&server, count + 1).await;
    let text = scrape(&server).await;
    let by_flood = evicted(&text);
    assert_eq!(connections(&text, "rejected", "per_source"), 0, "{text}");
    assert_eq!(
        by_flood + connections(&text, "rejected", "limit"),
        (count - 1_024) as u64 + expired(&text),
        "{text}"
    );
    let expired_before = expired(&text);
    flood_connections_sheddable().await;
    let (figures, checks) =
        checks_answered("gRPC health on new connections", || grpc_check(server.addr)).await;
    let text = scrape(&server).await;
    let by_checks = evicted(&text) - by_flood;
    assert_eq!(
        by_checks + (expired(&text) - expired_before),
        CHECKS as u64,
        "each check sheds one, unless a flood connection's deadline freed a slot\n{text}"
    );
    eprintln!(
        "edge figures: {count} half-open connections from 16 addresses, default limits: the flood shed {by_flood} of its own, the checks {by_checks}; {figures}"
    );
    drop((held, checks));
}

/// Proves the HTTP/JSON port stands behind the same edge: 2,000 half-open
/// connections to it from 16 addresses (half silent, half an unfinished
/// request line) against the default limits fill the 1,024 slots, every
/// later one shedding an older one or refused; then 50 `GET /healthz`,
/// each on a new connection kept open, each shed one (in its handshake:
/// on HTTP/1.1 the first request is the handshake) and are all answered
/// 200 with p99 under 100 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_port_sheds_a_half_open_flood_too() {
    let _alone = HEAVY.lock().await;
    open_files_at_least(8192);
    let server = start("").await;
    let http = server.http_addr.expect("HTTP/JSON is served");
    http_check(http).await.expect("a warm-up request");
    connections_become(&server, 0, Duration::from_secs(5)).await;
    let sources: Vec<Ipv4Addr> = (10..26).map(|n| Ipv4Addr::new(127, 0, 0, n)).collect();
    let held = flood(http, &sources, FLOOD, http_opening).await;
    taken(&server, FLOOD + 1).await;
    let text = scrape(&server).await;
    let by_flood = connections(&text, "evicted", "handshake");
    assert_eq!(
        by_flood + connections(&text, "rejected", "limit"),
        (FLOOD - 1_024) as u64 + expired(&text),
        "{text}"
    );
    let expired_before = expired(&text);
    flood_connections_sheddable().await;
    let (figures, checks) =
        checks_answered("GET /healthz on new connections", || http_check(http)).await;
    let text = scrape(&server).await;
    let by_checks = connections(&text, "evicted", "handshake") - by_flood;
    assert_eq!(
        by_checks + (expired(&text) - expired_before),
        CHECKS as u64,
        "each check sheds one, unless a flood connection's deadline freed a slot\n{text}"
    );
    eprintln!(
        "edge figures: {FLOOD} half-open connections to the HTTP/JSON port from 16 addresses, default limits: the flood shed {by_flood} of its own, the checks {by_checks}; {figures}"
    );
    drop((held, checks));
}
