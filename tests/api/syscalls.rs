//! Proof by syscall order: every acknowledged write is on disk before its
//! answer leaves the server.
//!
//! The real binary runs under `strace`, which records, with timestamps, the
//! socket reads and writes of every server thread and every fsync,
//! fdatasync and sync_file_range. The test sends acknowledged writes one at
//! a time (UpsertPerson, Settle, Reverse), each carrying a marker string that
//! protobuf puts verbatim in both the request and the answer, stops the
//! server with SIGTERM and reads the trace. For each write it finds the first
//! socket read holding the marker (the request arrived), then the first
//! socket write holding it after that (the answer left), and demands in
//! between an fsync or fdatasync that returned 0 on a file of the data
//! directory, issued after the request was read and completed before the
//! answer was written. A sync issued before the request was read cannot
//! cover it, whatever its completion time. sync_file_range does not count:
//! it neither flushes the disk's cache nor writes the file's metadata.
//!
//! Each marker is looked for within one call (its iovecs joined): a request
//! that reached the server in two reads cut through its marker would fail
//! the test as "no socket read", never pass it.
//!
//! The trace parser is a pure function, tested on a hand-written snippet
//! with a call that strace split in two.

use std::{collections::BTreeMap, fmt::Write as _, path::Path, process::Command};

use medassist::grpc::pb::{
    self, roster_service_client::RosterServiceClient,
    settlement_service_client::SettlementServiceClient,
};
use tempfile::TempDir;

use crate::helpers::*;

/// Acknowledged writes of each kind the test sends.
const PER_KIND: u16 = 10;

/// What strace records: the calls tokio and hyper read and write sockets
/// with (checked on a trace of this server: `recvfrom` and `writev`; the
/// others are there so a change of runtime cannot hide a request), and every
/// way to ask for data to reach the disk.
const TRACED: &str = "trace=read,readv,recvfrom,recvmsg,write,writev,sendto,sendmsg,\
                      fsync,fdatasync,sync_file_range,sync,syncfs";

/// Calls that bring a request into the server.
const READS: &[&str] = &["read", "readv", "recvfrom", "recvmsg"];
/// Calls that send an answer out.
const WRITES: &[&str] = &["write", "writev", "sendto", "sendmsg"];
/// Calls that make a file's data durable.
const SYNCS: &[&str] = &["fsync", "fdatasync"];
/// Calls that ask for some flushing, durable or not: reported, so a failure
/// says what the server did instead.
const FLUSHES: &[&str] = &["fsync", "fdatasync", "sync_file_range", "sync", "syncfs"];

/// One system call of the trace, its two halves joined when strace split it
/// around another thread's call.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// The thread that made it.
    pub pid: u32,
    pub name: String,
    /// The first argument's path as `-y` shows it: `9</d/db>` gives `/d/db`.
    pub path: Option<String>,
    /// Everything between the parentheses, both halves joined: where the
    /// markers are searched for.
    pub args: String,
    /// The contents of its quoted strings joined, still escaped as strace
    /// printed them, so a marker that hyper split between two iovecs is
    /// found whole (a marker has no byte strace would escape).
    pub data: String,
    /// None when strace printed `?` (the thread ended inside the call).
    pub ret: Option<i64>,
    /// Microseconds since the epoch when the call was entered.
    pub start_us: u64,
    /// When it returned: the time of the resumed line of a split call, else
    /// the start plus the duration `-T` printed.
    pub end_us: u64,
    /// The line or lines it came from, to show in reports.
    pub text: String,
}

/// Parses the output of `strace -f -y -ttt -T` (with or without the pid
/// column) into calls, in the order they started. Signals, exits and calls
/// never resumed are left out; a line that cannot be read is an error, so a
/// format change cannot pass for an empty trace.
pub fn parse_trace(trace: &str) -> Result<Vec<Call>, String> {
    struct Pending {
        name: String,
        head: String,
        start_us: u64,
        text: String,
        order: usize,
    }
    let mut pending: BTreeMap<u32, Pending> = BTreeMap::new();
    let mut calls: Vec<(usize, Call)> = Vec::new();
    for (order, line) in trace.lines().enumerate() {
        let bad = |why: &str| format!("trace line {}: {why}: {line}", order + 1);
        if line.trim().is_empty() {
            continue;
        }
        // strace pads the pid column, so fields may be parted by several spaces.
        let field = |text: &str| {
            text.trim_start()
                .split_once(' ')
                .map(|(head, tail)| (head.to_owned(), tail.trim_start().to_owned()))
        };
        let (first, rest) = field(line).ok_or_else(|| bad("no timestamp"))?;
        let (pid, stamp, rest) = if first.contains('.') {
            (0, first, rest)
        } else {
            let pid = first.parse().map_err(|_| bad("no pid"))?;
            let (stamp, rest) = field(&rest).ok_or_else(|| bad("no timestamp"))?;
            (pid, stamp, rest)
        };
        let (stamp, rest) = (stamp.as_str(), rest.as_str());
        let at = micros(stamp).ok_or_else(|| bad("bad timestamp"))?;
        let rest = rest.trim_start();
        if rest.starts_with("---") || rest.starts_with("+++") {
            continue;
        }
        if let Some(resumed) = rest.strip_prefix("<... ") {
            let (name, tail) = resumed
                .split_once(" resumed>")
                .ok_or_else(|| bad("no `resumed>`"))?;
            let head = pending
                .remove(&pid)
                .filter(|p| p.name == name)
                .ok_or_else(|| bad("resumed without its start"))?;
            let (tail, ret, _) = split_return(tail).ok_or_else(|| bad("no return value"))?;
            let args = head.head + tail;
            calls.push((
                head.order,
                Call {
                    pid,
                    path: fd_path(&args),
                    data: joined_strings(&args),
                    name: head.name,
                    args,
                    ret,
                    start_us: head.start_us,
                    end_us: at,
                    text: format!("{}\n{line}", head.text),
                },
            ));
            continue;
        }
        let (name, after) = rest.split_once('(').ok_or_else(|| bad("no call"))?;
        if let Some(head) = after.strip_suffix(" <unfinished ...>") {
            pending.insert(
                pid,
                Pending {
                    name: name.to_owned(),
                    head: head.to_owned(),
                    start_us: at,
                    text: line.to_owned(),
                    order,
                },
            );
            continue;
        }
        let (args, ret, took) = split_return(after).ok_or_else(|| bad("no return value"))?;
        calls.push((
            order,
            Call {
                pid,
                name: name.to_owned(),
                path: fd_path(args),
                data: joined_strings(args),
                args: args.to_owned(),
                ret,
                start_us: at,
                end_us: at + took.unwrap_or(0),
                text: line.to_owned(),
            },
        ));
    }
    calls.sort_by_key(|(order, _)| *order);
    Ok(calls.into_iter().map(|(_, call)| call).collect())
}

/// `1796084144.431058` in microseconds.
fn micros(stamp: &str) -> Option<u64> {
    let (secs, frac) = stamp.split_once('.')?;
    if frac.is_empty() || frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac: u64 = format!("{frac:0<6}").parse().ok()?;
    Some(secs.parse::<u64>().ok()? * 1_000_000 + frac)
}

/// Splits `ARGS) = RET [ERRNO (text)] [<DURATION>]` into the arguments, the
/// return value and the duration in microseconds.
fn split_return(tail: &str) -> Option<(&str, Option<i64>, Option<u64>)> {
    // Strings are quoted and escaped, so the last `) = ` is the return's.
    let at = tail.rfind(") = ")?;
    let (args, result) = (&tail[..at], &tail[at + 4..]);
    let ret = result.split_whitespace().next()?.parse().ok();
    let took = result
        .rsplit_once(" <")
        .and_then(|(_, d)| d.strip_suffix('>'))
        .and_then(micros);
    Some((args, ret, took))
}

/// The path `-y` printed after the first argument's fd: `12<socket:[7]>, …`
/// gives `socket:[7]`. The path ends at the `>` closing the argument.
fn fd_path(args: &str) -> Option<String> {
    let digits = args.bytes().take_while(u8::is_ascii_digit).count();
    let rest = args[digits..].strip_prefix('<').filter(|_| digits > 0)?;
    let end = rest
        .match_indices('>')
        .map(|(i, _)| i)
        .find(|&i| matches!(rest.as_bytes().get(i + 1), None | Some(b',' | b')' | b' ')))?;
    Some(rest[..end].to_owned())
}

/// The contents of every `"…"` in `args`, joined; escapes are kept as they
/// are, so `\"` does not end a string.
fn joined_strings(args: &str) -> String {
    let mut data = String::new();
    let (mut inside, mut escaped) = (false, false);
    for c in args.chars() {
        match (inside, escaped, c) {
            (false, _, '"') => inside = true,
            (false, _, _) => {}
            (true, true, _) => {
                data.push(c);
                escaped = false;
            }
            (true, false, '\\') => {
                data.push(c);
                escaped = true;
            }
            (true, false, '"') => inside = false,
            (true, false, _) => data.push(c),
        }
    }
    data
}

/// A socket's `-y` path (`socket:[inode]`, or `TCP:[…]` under `-yy`).
fn is_socket(path: &str) -> bool {
    ["socket:", "TCP", "UDP", "UNIX"]
        .iter()
        .any(|p| path.starts_with(p))
}

/// What the trace shows for one acknowledged write.
#[derive(Debug)]
pub struct Finding<'a> {
    pub marker: String,
    /// The first socket read holding the marker.
    pub read: Option<&'a Call>,
    /// The first qualifying sync between the read and the answer.
    pub sync: Option<&'a Call>,
    /// The first socket write holding the marker after the read returned.
    pub answer: Option<&'a Call>,
    /// Every flush of any kind entered after the read and completed before
    /// the answer, qualifying or not.
    pub between: Vec<&'a Call>,
}

impl Finding<'_> {
    /// The first missing step, or None when the order is proven.
    pub fn missing(&self) -> Option<String> {
        let Some(read) = self.read else {
            return Some("no socket read holds the request".to_owned());
        };
        let Some(answer) = self.answer else {
            return Some(format!(
                "no socket write holds the answer after the request was read at {}",
                seconds(read.end_us)
            ));
        };
        if self.sync.is_none() {
            let between = if self.between.is_empty() {
                "no flush at all".to_owned()
            } else {
                tally(self.between.iter().copied())
            };
            return Some(format!(
                "no fsync/fdatasync of a data file returned 0 between the request read \
                 (returned {}) and the answer write (entered {}); in between: {between}",
                seconds(read.end_us),
                seconds(answer.start_us)
            ));
        }
        None
    }
}

/// For each marker: its request read, answer write and a sync between them.
/// `is_data_file` says whether a `-y` path is a file of the store.
pub fn check<'a>(
    calls: &'a [Call],
    markers: &[String],
    is_data_file: impl Fn(&str) -> bool,
) -> Vec<Finding<'a>> {
    let on_socket = |c: &&Call, names: &[&str], marker: &str| {
        names.contains(&c.name.as_str())
            && c.ret.is_some_and(|r| r > 0)
            && c.path.as_deref().is_some_and(is_socket)
            && c.data.contains(marker)
    };
    markers
        .iter()
        .map(|marker| {
            let read = calls
                .iter()
                .filter(|c| on_socket(c, READS, marker))
                .min_by_key(|c| c.end_us);
            let answer = read.and_then(|read| {
                calls
                    .iter()
                    .filter(|c| on_socket(c, WRITES, marker) && c.start_us > read.end_us)
                    .min_by_key(|c| c.start_us)
            });
            let between: Vec<&Call> = read
                .zip(answer)
                .map(|(read, answer)| {
                    calls
                        .iter()
                        .filter(|c| {
                            FLUSHES.contains(&c.name.as_str())
                                && c.start_us > read.end_us
                                && c.end_us < answer.start_us
                        })
                        .collect()
                })
                .unwrap_or_default();
            let sync = between.iter().copied().find(|c| {
                SYNCS.contains(&c.name.as_str())
                    && c.ret == Some(0)
                    && c.path.as_deref().is_some_and(&is_data_file)
            });
            Finding {
                marker: marker.clone(),
                read,
                sync,
                answer,
                between,
            }
        })
        .collect()
}

/// `sync_file_range ×2, fsync ×1`: calls counted by name.
fn tally<'a>(calls: impl Iterator<Item = &'a Call>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for call in calls {
        *counts.entry(&call.name).or_default() += 1;
    }
    counts
        .iter()
        .map(|(name, n)| format!("{name} ×{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn seconds(us: u64) -> String {
    format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
}

/// The lines of a call cut to a readable length: the start of each line,
/// then the bytes around the marker wherever it is.
fn excerpt(text: &str, marker: &str) -> String {
    const HEAD: usize = 90;
    const AROUND: usize = 60;
    let floor = |line: &str, mut at: usize| {
        while !line.is_char_boundary(at) {
            at -= 1;
        }
        at
    };
    text.lines()
        .map(|line| {
            if line.len() <= HEAD + marker.len() + 2 * AROUND {
                return format!("    {line}");
            }
            let head = &line[..floor(line, HEAD)];
            match line.find(marker) {
                Some(at) => {
                    let from = floor(line, at.saturating_sub(AROUND).max(HEAD));
                    let to = floor(line, (at + marker.len() + AROUND).min(line.len()));
                    let tail = if to < line.len() { "…" } else { "" };
                    format!("    {head}…{}{tail}", &line[from..to])
                }
                None => format!("    {head}…"),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Fails with what to do when strace is missing or may not trace: the proof
/// needs it, so it must never pass without it.
fn require_strace() {
    match Command::new("strace")
        .args(["-qq", "-o", "/dev/null", "true"])
        .output()
    {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "strace is not installed, and this test proves durability by watching the \
             server's system calls: install it with `apt-get install strace`"
        ),
        Err(e) => panic!("strace does not start: {e}"),
        Ok(out) => assert!(
            out.status.success(),
            "strace cannot trace here (it needs ptrace permission; run as root or with \
             CAP_SYS_PTRACE): {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Proves that every acknowledged UpsertPerson, Settle and Reverse completed
/// an fsync or fdatasync of the store after its request was read and before
/// its answer was written, by the order of the server's own system calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_is_synced_before_its_answer() {
    require_strace();
    let dir = TempDir::new().unwrap();
    // -y prints resolved paths: compare against the resolved directory.
    let root = dir.path().canonicalize().unwrap();
    let data_dir = root.join("data");
    let trace_file = root.join("strace.out");
    let trace_arg = trace_file.to_str().unwrap();
    let wrapper = [
        "strace", "-f", "-y", "-ttt", "-T", "-qq", "-s", "4096", "-e", TRACED, "-o", trace_arg,
    ];
    let server = ServerProcess::start_wrapped(&wrapper, &data_dir, &[]).await;
    let mut roster = RosterServiceClient::new(server.channel.clone());
    let mut settlements = SettlementServiceClient::new(server.channel.clone());

    // One at a time: each answer is awaited before the next request.
    let mut markers = Vec::new();
    for n in 0..PER_KIND {
        let marker = format!("SYNCPROOF-PERSON-{n:02}");
        let person = pb::Person {
            name: marker.clone(),
            ..dibao_person(&resident_id("1960-05-06", 500 + n))
        };
        let answer = roster
            .upsert_person(pb::UpsertPersonRequest {
                person: Some(person),
            })
            .await
            .expect("roster accepts the person")
            .into_inner();
        assert_eq!(answer.name, marker);
        markers.push(marker);
    }
    for n in 0..PER_KIND {
        let marker = format!("SYNCPROOF-SETTLE-{n:02}");
        let request = claim_paying_7000(&resident_id("1960-05-06", 500 + n), &marker);
        let (settlement, replayed) = settled(settlements.settle(request).await);
        assert!(!replayed);
        assert_eq!(settlement.claim_id, marker);
        markers.push(marker);
    }
    for n in 0..PER_KIND {
        // The claim ID was the settle's marker; the reason is this one's own.
        let marker = format!("SYNCPROOF-REVERSE-{n:02}");
        let (settlement, _) = settled(
            settlements
                .reverse(pb::ReverseRequest {
                    hospital_id: "H001".into(),
                    claim_id: format!("SYNCPROOF-SETTLE-{n:02}"),
                    reason: marker.clone(),
                })
                .await,
        );
        assert_eq!(settlement.reverse_reason, marker);
        markers.push(marker);
    }
    drop((roster, settlements));
    server.terminate().await;

    let trace = std::fs::read_to_string(&trace_file).expect("strace wrote its trace");
    let calls = parse_trace(&trace).unwrap_or_else(|e| panic!("{e}"));
    let prefix = format!("{}/", data_dir.display());
    let is_data_file = |path: &str| path.starts_with(&prefix) && !Path::new(path).is_dir();
    let findings = check(&calls, &markers, is_data_file);

    let flushes = calls.iter().filter(|c| FLUSHES.contains(&c.name.as_str()));
    let seen = tally(flushes.clone());
    let last_answer = findings
        .iter()
        .filter_map(|f| f.answer.map(|a| a.start_us))
        .max()
        .unwrap_or(0);
    let syncs = flushes.filter(|c| {
        SYNCS.contains(&c.name.as_str())
            && c.ret == Some(0)
            && c.path.as_deref().is_some_and(is_data_file)
    });
    let (syncs, late) = syncs.fold((0, 0), |(n, late), c| {
        (n + 1, late + usize::from(c.start_us > last_answer))
    });
    let proven = findings.iter().filter(|f| f.missing().is_none()).count();
    let mut report = format!(
        "{proven} of {} acknowledged writes checked had a completed fsync/fdatasync of a data \
         file between request and answer; syncs found: {syncs} completed fsync/fdatasync of \
         data files in the whole run, {late} of them after the last answer; flush calls seen: \
         {}; {} calls traced\n",
        findings.len(),
        if seen.is_empty() { "none" } else { &seen },
        calls.len(),
    );
    for f in findings.iter().filter(|f| f.missing().is_some()) {
        writeln!(report, "  {}: {}", f.marker, f.missing().unwrap()).unwrap();
    }
    // Shows what was matched, so a failure is seen to be the server's and
    // not the parser's.
    for f in findings.iter().step_by(PER_KIND as usize) {
        writeln!(report, "  {} matched:", f.marker).unwrap();
        for (step, call) in [
            ("request read", f.read),
            ("sync", f.sync),
            ("answer", f.answer),
        ] {
            if let Some(call) = call {
                writeln!(report, "  {step}:\n{}", excerpt(&call.text, &f.marker)).unwrap();
            }
        }
    }
    assert!(
        findings
            .iter()
            .all(|f| f.read.is_some() && f.answer.is_some()),
        "the trace must show every request and answer on a socket:\n{report}"
    );
    assert_eq!(
        proven,
        findings.len(),
        "not every write was durable before its answer:\n{report}"
    );
    println!("{report}");
}

/// Proves the parser on a hand-written trace: a split fdatasync completes at
/// its resumed line, a split read keeps its fd from the first half and its
/// data from the second, and the order of sync and answer decides.
#[test]
fn parser_joins_split_calls_and_orders_them() {
    let trace = r#"100 1700000000.000100 recvfrom(12<socket:[77]>,  <unfinished ...>
101 1700000000.000150 fdatasync(9</d/data/db>) = 0 <0.000010>
100 1700000000.000200 <... recvfrom resumed>"\0\0\0\1\0\n\vMARK-A\22\4H001", 8192, 0, NULL, NULL) = 22 <0.000100>
101 1700000000.000300 fdatasync(9</d/data/db> <unfinished ...>
100 1700000000.000350 recvfrom(12<socket:[77]>, "\"MARK-B", 8192, 0, NULL, NULL) = 7 <0.000004>
102 1700000000.000360 sync_file_range(9</d/data/db>, 0, 115, SYNC_FILE_RANGE_WRITE) = 0 <0.000005>
101 1700000000.000400 <... fdatasync resumed>) = 0 <0.000100>
100 1700000000.000500 writev(12<socket:[77]>, [{iov_base="\0\0\7\1\4MARK-A", iov_len=10}], 1) = 10 <0.000020>
100 1700000000.000600 writev(12<socket:[77]>, [{iov_base="MARK-A again", iov_len=12}], 1) = 12 <0.000020>
102 1700000000.000650 writev(12<socket:[77]>, [{iov_base="\\MARK", iov_len=5}, {iov_base="-B", iov_len=2}], 2) = 7 <0.000002>
100 1700000000.000700 write(2<pipe:[5]>, "MARK-C", 6) = 6 <0.000002>
100 1700000000.000800 --- SIGTERM {si_signo=SIGTERM, si_code=SI_USER, si_pid=1} ---
102 1700000000.000900 +++ exited with 0 +++
"#;
    let calls = parse_trace(trace).unwrap();
    let names: Vec<&str> = calls.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "recvfrom",
            "fdatasync",
            "fdatasync",
            "recvfrom",
            "sync_file_range",
            "writev",
            "writev",
            "writev",
            "write"
        ]
    );
    let read = &calls[0];
    assert_eq!(read.pid, 100);
    assert_eq!(read.path.as_deref(), Some("socket:[77]"));
    assert!(read.data.contains("MARK-A"));
    assert_eq!(read.start_us, 1_700_000_000_000_100);
    assert_eq!(read.end_us, 1_700_000_000_000_200, "returns when resumed");
    assert_eq!(read.ret, Some(22));
    let split_sync = &calls[2];
    assert_eq!(split_sync.path.as_deref(), Some("/d/data/db"));
    assert_eq!(split_sync.ret, Some(0));
    assert_eq!(
        split_sync.end_us, 1_700_000_000_000_400,
        "completes when resumed"
    );
    assert_eq!(calls[1].end_us, 1_700_000_000_000_160, "start plus -T");

    let markers = ["MARK-A", "MARK-B", "MARK-C", "MARK-D"].map(String::from);
    let findings = check(&calls, &markers, |p| p.starts_with("/d/data/"));
    // A: read returned at 200, fdatasync 300..400, answer at 500. The
    // fdatasync at 150 began before the read returned and does not count.
    assert_eq!(findings[0].missing(), None);
    assert_eq!(findings[0].sync.unwrap().start_us, 1_700_000_000_000_300);
    assert!(findings[0].answer.unwrap().args.contains("\\7\\1\\4MARK-A"));
    // B: read at 350, answer at 650 split between two iovecs; the only
    // flush in between is sync_file_range, which is no sync.
    let missing = findings[1].missing().unwrap();
    assert!(missing.contains("no fsync/fdatasync"), "{missing}");
    assert!(
        missing.contains("in between: sync_file_range ×1"),
        "{missing}"
    );
    assert_eq!(findings[0].between.len(), 2, "the fdatasync and the range");
    assert_eq!(findings[1].answer.unwrap().data, "\\\\MARK-B");
    // C: written to a pipe only; D: never seen.
    assert!(findings[2].missing().unwrap().contains("no socket read"));
    assert!(findings[3].missing().unwrap().contains("no socket read"));

    assert!(parse_trace("100 1700000000.000100 <... read resumed>) = 1").is_err());
    assert!(parse_trace("garbage").is_err());
}

#[test]
fn fd_paths_end_at_their_argument() {
    assert_eq!(fd_path("9</d/db>, 0, 115").as_deref(), Some("/d/db"));
    assert_eq!(fd_path("9</d/db>").as_deref(), Some("/d/db"));
    assert_eq!(
        fd_path("3<TCP:[127.0.0.1:5->127.0.0.1:6]>, \"x\"").as_deref(),
        Some("TCP:[127.0.0.1:5->127.0.0.1:6]")
    );
    assert_eq!(fd_path("AT_FDCWD</d>, \"x\""), None);
    assert_eq!(fd_path("\"x\", 1"), None);
}
