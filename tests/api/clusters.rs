//! PostgreSQL 15 clusters a test makes for itself under a temporary
//! directory, beside the server CI runs: a primary, a synchronous standby,
//! one with TLS. PostgreSQL's programs run as the `postgres` user when the
//! test runs as root, which PostgreSQL refuses. Every cluster still running
//! is stopped when its [`Clusters`] is dropped, also when the test panics.

use std::{
    ffi::OsStr,
    fmt::Write as _,
    net::TcpListener,
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use tempfile::TempDir;

use crate::backend::sql_at;

/// Where Debian puts PostgreSQL 15's programs.
pub(crate) const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// Longest a PostgreSQL program (initdb, pg_basebackup, pg_ctl) may run.
const PG_COMMAND_MAX: Duration = Duration::from_secs(60);
/// How often a wait polls (health, replication state, a program's exit).
pub(crate) const POLL: Duration = Duration::from_millis(20);

/// One PostgreSQL cluster: its data directory and port.
pub(crate) struct Node {
    pub(crate) data: PathBuf,
    pub(crate) port: u16,
}

impl Node {
    /// A single-host URL of this node's `database`.
    pub(crate) fn url(&self, database: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

/// The clusters of one drill, under one temporary directory owned by
/// `postgres`; every cluster still running is stopped on drop, also when
/// the test panics.
pub(crate) struct Clusters {
    root: TempDir,
    running: Vec<PathBuf>,
    /// The processes of hung clusters, to kill, and their shared memory
    /// segments, which a killed postmaster leaves behind.
    hung: Vec<i32>,
    hung_segments: Vec<i32>,
    made: usize,
}

impl Clusters {
    pub(crate) fn new() -> Clusters {
        let root = TempDir::new().unwrap();
        give_to_postgres(root.path());
        Clusters {
            root,
            running: Vec::new(),
            hung: Vec::new(),
            hung_segments: Vec::new(),
            made: 0,
        }
    }

    /// A node's own settings: its port, and its socket in a directory of its
    /// own beside its data (not inside: a base backup would copy the lock),
    /// so that a cluster started on the port of one that was killed never
    /// meets the dead one's socket lock, whose process may not be reaped yet.
    pub(crate) fn own(&self, data: &std::path::Path, port: u16) -> String {
        let sockets = data.with_extension("sockets");
        give_to_postgres(&sockets);
        format!(
            "port = {port}\nunix_socket_directories = '{}'\n",
            sockets.display()
        )
    }

    /// The directory every cluster lives under, owned by `postgres`.
    pub(crate) fn root(&self) -> &std::path::Path {
        self.root.path()
    }

    /// A fresh data directory's path (`nodeN`; its log is `nodeN.log`).
    pub(crate) fn fresh(&mut self) -> PathBuf {
        self.made += 1;
        self.root.path().join(format!("node{}", self.made))
    }

    /// Runs a PostgreSQL program as `postgres`; panics with its output (and
    /// the clusters' logs) unless it succeeds within [`PG_COMMAND_MAX`].
    pub(crate) fn pg(&self, program: &str, args: &[&OsStr]) -> String {
        let path = format!("{PG_BIN}/{program}");
        let mut command = as_postgres(&path);
        command
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("{path} runs (PostgreSQL 15 is needed here): {e}"));
        let deadline = Instant::now() + PG_COMMAND_MAX;
        while child.try_wait().expect("the child is watched").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "{program} {args:?} did not finish within {PG_COMMAND_MAX:?}\n{}",
                    self.logs()
                );
            }
            tokio::task::block_in_place(|| std::thread::sleep(POLL));
        }
        let output = child.wait_with_output().expect("its output is read");
        assert!(
            output.status.success(),
            "{program} {args:?} failed ({}):\n{}{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.logs(),
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The end of every cluster's log, for failure messages.
    pub(crate) fn logs(&self) -> String {
        let mut out = String::new();
        for n in 1..=self.made {
            let log = self.root.path().join(format!("node{n}.log"));
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            let _ = writeln!(out, "--- node{n}.log (last lines)");
            for line in tail.into_iter().rev() {
                let _ = writeln!(out, "{line}");
            }
        }
        out
    }

    /// A new primary on `port`: WAL for replicas, every commit flushed
    /// (`fsync`, `synchronous_commit`), trust for local and 127.0.0.1
    /// connections, replication included (initdb's pg_hba.conf with
    /// `--auth=trust`). It waits for a synchronous standby only once one is
    /// attached ([`Clusters::standby_of`]).
    pub(crate) fn primary(&mut self, port: u16) -> Node {
        let node = self.initialized(port);
        self.start(&node);
        node
    }

    /// A new cluster as [`Clusters::primary`] makes it, not started yet.
    pub(crate) fn initialized(&mut self, port: u16) -> Node {
        let data = self.fresh();
        self.pg(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "--auth=trust".as_ref(),
            ],
        );
        let settings = "\nlisten_addresses = '127.0.0.1'\nwal_level = replica\n\
                        max_wal_senders = 10\nfsync = on\nsynchronous_commit = on\n";
        append(&data.join("postgresql.conf"), settings);
        append(&data.join("postgresql.auto.conf"), &self.own(&data, port));
        Node { data, port }
    }

    /// Makes the not yet started `node` serve TLS with this certificate
    /// and key, and refuse every TCP connection without it (its local
    /// socket stays open, for pg_ctl).
    pub(crate) fn require_tls(&self, node: &Node, cert_pem: &str, key_pem: &str) {
        for (name, pem) in [("server.crt", cert_pem), ("server.key", key_pem)] {
            let path = node.data.join(name);
            std::fs::write(&path, pem).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            // PostgreSQL refuses a key others may read.
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .expect("the file's mode is set");
            give_to_postgres(&path);
        }
        append(
            &node.data.join("postgresql.conf"),
            "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
        );
        let hba = node.data.join("pg_hba.conf");
        let rules = std::fs::read_to_string(&hba).expect("initdb's pg_hba.conf");
        let only_tls: String = rules
            .lines()
            .map(|line| match line.strip_prefix("host ") {
                Some(rest) => format!("hostssl {rest}\n"),
                None => format!("{line}\n"),
            })
            .collect();
        std::fs::write(&hba, only_tls).expect("pg_hba.conf is written");
    }

    /// A synchronous standby of `primary` on `port`: a base backup with
    /// recovery settings (`-R`), started, and the primary then waits for it
    /// on every commit (`synchronous_standby_names = '*'`); returns once
    /// the primary lists it as `sync`. The standby itself asks for no
    /// synchronous standby: once promoted it commits alone until it is
    /// given one.
    pub(crate) async fn standby_of(&mut self, primary: &Node, port: u16) -> Node {
        let data = self.fresh();
        let from = primary.port.to_string();
        self.pg(
            "pg_basebackup",
            &[
                "-h".as_ref(),
                "127.0.0.1".as_ref(),
                "-p".as_ref(),
                from.as_ref(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "-D".as_ref(),
                data.as_os_str(),
                "-R".as_ref(),
                "-X".as_ref(),
                "stream".as_ref(),
                // At once: a spread checkpoint can take minutes.
                "--checkpoint=fast".as_ref(),
            ],
        );
        // Later lines win: the copy's settings and standby list are replaced.
        let settings = self.own(&data, port) + "synchronous_standby_names = ''\n";
        append(&data.join("postgresql.auto.conf"), &settings);
        let node = Node { data, port };
        self.start(&node);
        // Two calls: ALTER SYSTEM refuses a multi-statement string.
        sql_at(
            &primary.url("postgres"),
            "ALTER SYSTEM SET synchronous_standby_names = '*'",
        );
        sql_at(&primary.url("postgres"), "SELECT pg_reload_conf()");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let states = sql_at(
                &primary.url("postgres"),
                "SELECT sync_state FROM pg_stat_replication",
            );
            if states.iter().any(|state| state == "sync") {
                return node;
            }
            assert!(
                Instant::now() < deadline,
                "the standby on {port} is not synchronous after 30 s: {states:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    pub(crate) fn start(&mut self, node: &Node) {
        let log = node.data.with_extension("log");
        self.pg(
            "pg_ctl",
            &[
                "start".as_ref(),
                "-w".as_ref(),
                "-D".as_ref(),
                node.data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
            ],
        );
        self.running.push(node.data.clone());
    }

    /// Stops `node` as a crash would: no checkpoint, no goodbye to clients.
    pub(crate) fn stop_immediately(&mut self, node: &Node) {
        self.pg("pg_ctl", &immediate_stop(&node.data));
        self.running.retain(|data| data != &node.data);
    }

    /// Stops every process of `node` (SIGSTOP): the postmaster first, so
    /// it forks no more, then its children. The kernel still completes TCP
    /// handshakes on its port; nothing answers after that.
    pub(crate) fn hang(&mut self, node: &Node) {
        // Line 1 is the postmaster's pid, line 7 its segment's key and id.
        let lock = std::fs::read_to_string(node.data.join("postmaster.pid"))
            .expect("the postmaster's lock file");
        let lines: Vec<&str> = lock.lines().collect();
        let pid: i32 = lines[0].trim().parse().expect("the postmaster's pid");
        let segment = lines
            .get(6)
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<i32>().ok());
        let mut pids = vec![pid];
        signal_all(&pids, libc::SIGSTOP);
        let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .expect("the postmaster's children");
        pids.extend(
            children
                .split_whitespace()
                .map(|c| c.parse::<i32>().unwrap()),
        );
        signal_all(&pids[1..], libc::SIGSTOP);
        self.running.retain(|data| data != &node.data);
        self.hung.extend(pids);
        self.hung_segments.extend(segment);
    }

    /// Kills the hung clusters' processes, as fencing would.
    pub(crate) fn kill_hung(&mut self) {
        signal_all(&std::mem::take(&mut self.hung), libc::SIGKILL);
        for id in std::mem::take(&mut self.hung_segments) {
            // SAFETY: marks the dead cluster's segment for removal, once
            // its killed processes have let go of it.
            unsafe {
                libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut());
            }
        }
    }

    /// Promotes the standby `node` and waits until it accepts writes.
    pub(crate) fn promote(&self, node: &Node) {
        self.pg(
            "pg_ctl",
            &[
                "promote".as_ref(),
                "-w".as_ref(),
                "-D".as_ref(),
                node.data.as_os_str(),
            ],
        );
    }
}

impl Drop for Clusters {
    fn drop(&mut self) {
        // pg_ctl would wait in vain for a stopped process.
        self.kill_hung();
        for data in std::mem::take(&mut self.running) {
            // Best effort: a failure here must not hide the test's own.
            let _ = as_postgres(&format!("{PG_BIN}/pg_ctl"))
                .args(immediate_stop(&data))
                .output();
        }
    }
}

/// A command that runs `program` as `postgres`: through runuser when this
/// test runs as root (PostgreSQL refuses root), else as this user.
fn as_postgres(program: &str) -> Command {
    if as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--", program]);
        command
    } else {
        Command::new(program)
    }
}

fn immediate_stop(data: &std::path::Path) -> [&OsStr; 6] {
    [
        "stop".as_ref(),
        "-w".as_ref(),
        "-m".as_ref(),
        "immediate".as_ref(),
        "-D".as_ref(),
        data.as_os_str(),
    ]
}

/// Gives `path`, a file or a directory (made if missing), to `postgres`
/// (when this test is root).
fn give_to_postgres(path: &std::path::Path) {
    if !path.is_file() {
        std::fs::create_dir_all(path).expect("the directory is made");
    }
    if as_root() {
        let owned = Command::new("chown")
            .arg("postgres:postgres")
            .arg(path)
            .status()
            .expect("chown runs");
        assert!(owned.success(), "the directory is given to postgres");
    }
}

fn signal_all(pids: &[i32], signal: i32) {
    for &pid in pids {
        // SAFETY: a plain syscall on processes of a cluster this test made.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

fn as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn append(path: &std::path::Path, text: &str) {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Two distinct free ports on 127.0.0.1.
pub(crate) fn free_ports() -> [u16; 2] {
    let listeners = [(); 2].map(|()| TcpListener::bind("127.0.0.1:0").unwrap());
    listeners.map(|listener| listener.local_addr().unwrap().port())
}
