//! The command line:
//!
//! - `medassist serve [--listen ADDR] [--data-dir DIR | --database-url URL [--database-ca PEM]]
//!   [--config FILE] [--tls-cert PEM --tls-key PEM
//!   [--tls-client-ca PEM]] [--metrics-listen ADDR] [--http-listen ADDR] [--log-format text|json] [--drain 5s]`, also the default
//!   with no subcommand;
//! - `medassist openapi` (the OpenAPI document of the HTTP/JSON API);
//! - `medassist token new --role ROLE [--hospital-id ID] [--name NAME]`;
//! - `medassist verify --data-dir DIR | --database-url URL | --database-url-file FILE
//!   [--database-ca PEM]` (see [`crate::verify`]);
//! - `medassist simulate --policy FILE --year Y [--region R] [--format text|csv|json]
//!   (--data-dir DIR | --database-url URL | --database-url-file FILE)`: what the
//!   year's settlements would have paid under a proposed policy book (see
//!   [`crate::simulate`]);
//! - `medassist snapshot save CONNECT [SEAL] FILE` and
//!   `medassist snapshot restore FILE [--identity FILE] --data-dir DIR` (see
//!   [`crate::client::snapshot`], [`crate::store::snapshot`]);
//! - `medassist roster import FILE CONNECT [--encoding utf-8|gbk]` and
//!   `medassist roster export CONNECT [SEAL] [--region CODE] [--output FILE]`
//!   (see [`crate::client::roster`]);
//! - `medassist export CONNECT [SEAL] --from DATE --to DATE [--hospital ID]
//!   [--format csv|jsonl] [--output FILE]` and `medassist reconcile CONNECT
//!   --hospital ID --date DATE --settled-count N --assistance-total X --reversed-count N
//!   --reversed-total X` (the fund office's; see [`crate::client::export`]);
//! - `medassist bench` (see [`crate::bench`]);
//! - `medassist soak` (see [`crate::soak`]).
//!
//! CONNECT is `--target URL [--token-file FILE] [--ca PEM] [--cert PEM --key
//! PEM]`: an `https://` target speaks TLS, checked against `--ca` (else the
//! system's roots), with a client certificate for mTLS. The token comes from
//! `--token-file` or `MEDASSIST_TOKEN`, never from the command line, where
//! `ps` and the shell's history would show it. SEAL is `[--recipient age1…]…
//! [--recipients-file FILE]`: the file written is encrypted with age to
//! those keys (see [`crate::seal`]).

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{
    auth::{Role, TokenDigest, new_token},
    bench::{BenchOptions, Scenario},
    client::{
        Client, ClientError, Connection, TOKEN_VARIABLE, Token,
        export::{self, Format},
        roster::{self, Encoding, ImportOptions},
        snapshot::SaveOptions,
    },
    config::{Config, TlsFiles},
    domain::{HospitalId, RegionCode, Year},
    grpc::pb,
    seal::{self, Identities, Recipients},
    server::{LoadConfig, Server, ServerConfig, reload_on_hangup, shutdown_signal},
    store::{
        PostgresStore, REBASE_AFTER_BYTES_DEFAULT, Schema, SledOptions, SledStore, StoreError,
        journal::SEGMENT_BYTES_DEFAULT,
    },
    telemetry::LogFormat,
};

/// Makes every file and directory this process creates private to its
/// user (`0600`, `0700`), whatever umask it was started with: the data
/// directory, the journal, sled's own files, snapshots and exports all hold
/// personal data. `main` calls it first, before any thread or file exists.
pub fn keep_files_private() {
    // SAFETY: umask only sets the process's file mode creation mask; it
    // cannot fail and touches no memory.
    unsafe {
        libc::umask(0o077);
    }
}

/// Medical assistance one-stop settlement service.
#[derive(Debug, Parser)]
#[command(
    name = "medassist",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the gRPC API (the default).
    Serve(ServeArgs),
    /// Print the OpenAPI 3 document of the HTTP/JSON API (the one served
    /// at /openapi.json).
    Openapi,
    /// Manage caller tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Check a data directory's (or a PostgreSQL database's) consistency,
    /// with the service stopped: a data directory is
    /// recovered as start-up would (a damaged one is refused), then checked.
    /// Exits 0 when consistent, 1 naming each discrepancy, 2 when it cannot run.
    Verify(VerifyArgs),
    /// Apply the PostgreSQL schema migrations this binary carries (serve
    /// applies them too); refuses a schema newer than the binary.
    Migrate(MigrateArgs),
    /// Check or export the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Drive a running server with load and report throughput and latency.
    Bench(BenchArgs),
    /// Long mixed load with cancels and dropped connections, then check that
    /// every acknowledged settlement and reversal is stored. Exits 1 if not.
    Soak(SoakArgs),
    /// Back up a running server, or make a new data directory from a backup.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Exchange the roster with civil affairs as a CSV file.
    #[command(subcommand)]
    Roster(RosterCommand),
    /// Write every settlement settled or reversed in a range of business
    /// days as CSV or JSON lines (role auditor).
    Export(ExportArgs),
    /// Compare a hospital's totals of one business day with the fund's
    /// (3201). Exits 0 when they match, 1 when they do not, 2 on error.
    Reconcile(ReconcileArgs),
    /// Replay a year's settlements of a stopped store under a proposed
    /// policy file, in commit order with caps, deductibles and bands, and
    /// print what the fund paid and would have paid: totals, by class,
    /// region and month, and the claims that change most. Writes nothing to
    /// the store. Exits 0, or 2 when it cannot run.
    Simulate(SimulateArgs),
}

#[derive(Debug, Args)]
struct SimulateArgs {
    /// The proposed policy book: a configuration file (only its policies
    /// and floors are read), checked as `serve` checks it.
    #[arg(long)]
    policy: PathBuf,
    /// The cap year to replay.
    #[arg(long)]
    year: i32,
    /// Only the settlements of this region (a city code takes in its counties).
    #[arg(long)]
    region: Option<String>,
    /// text (a summary), csv (rows for a spreadsheet) or json.
    #[arg(long, default_value = "text")]
    format: String,
    #[command(flatten)]
    store: VerifyArgs,
}

#[derive(Debug, Subcommand)]
enum RosterCommand {
    /// Load a roster CSV file into a running server (role roster_admin).
    /// Exits 0 when every row was accepted, 1 when some were rejected (each
    /// listed by line and column; the rest are in), 2 when nothing could be
    /// done. Importing a file again is safe.
    Import(RosterImportArgs),
    /// Write the roster as the same CSV layout, ordered by patient ID (role
    /// roster_admin or auditor).
    Export(RosterExportArgs),
}

/// How a client subcommand reaches the server.
#[derive(Debug, Args)]
struct ConnectArgs {
    /// The running server: http://HOST:PORT, or https://HOST:PORT for TLS.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    target: String,
    /// A file holding the caller's token (mode 0600), as `medassist token
    /// new` printed it. Without it, MEDASSIST_TOKEN is read.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Refused: a token in the arguments shows in `ps` and the shell's
    /// history. Kept only to say so.
    #[arg(long, hide = true)]
    token: Option<String>,
    /// CA certificate(s) (PEM) the server's certificate must chain to, for
    /// an https:// target; the system's trusted roots when absent.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Client certificate (PEM), for a server that requires one (mTLS).
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
}

impl ConnectArgs {
    /// The connection these arguments describe; a token given on the
    /// command line is refused, saying why, before anything is sent.
    fn connection(self) -> Result<Connection, ClientError> {
        if self.token.is_some() {
            return Err(ClientError::Setup(format!(
                "--token is refused: a token on the command line shows in `ps` and the \
                 shell's history; put it in a file only you can read and pass \
                 --token-file FILE, or set {TOKEN_VARIABLE}"
            )));
        }
        let token = match &self.token_file {
            Some(path) => Some(Token::read_file(path)?),
            None => Token::from_environment()?,
        };
        Ok(Connection {
            target: self.target,
            token,
            ca: self.ca,
            identity: self.cert.zip(self.key),
        })
    }
}

/// Who a file written by a client subcommand is sealed to.
#[derive(Debug, Args)]
struct SealArgs {
    /// Encrypt the file with age to this public key (age1…, the fund's
    /// recovery key, as age-keygen prints it). Repeatable.
    #[arg(long = "recipient", value_name = "AGE1…")]
    recipients: Vec<String>,
    /// Encrypt the file to every key in this file (one age1… a line, as
    /// `age -R` reads it).
    #[arg(long)]
    recipients_file: Option<PathBuf>,
}

impl SealArgs {
    fn recipients(self) -> Result<Recipients, String> {
        let mut recipients = Recipients::parse(&self.recipients)?;
        if let Some(path) = &self.recipients_file {
            recipients.merge(Recipients::read_file(path)?)?;
        }
        Ok(recipients)
    }
}

#[derive(Debug, Args)]
struct RosterImportArgs {
    /// The CSV file (layout in the README).
    file: PathBuf,
    // The running server; a roster_admin token.
    #[command(flatten)]
    connect: ConnectArgs,
    /// The file's encoding.
    #[arg(long, value_enum, default_value_t = EncodingArg::Utf8)]
    encoding: EncodingArg,
}

#[derive(Debug, Args)]
struct RosterExportArgs {
    // The running server; a roster_admin or auditor token.
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    seal: SealArgs,
    /// Only this region: a county, or a city code (ending in 00) for its counties.
    #[arg(long)]
    region: Option<String>,
    /// Where to write (standard output if not given).
    #[arg(long)]
    output: Option<PathBuf>,
    /// The encoding to write (gbk writes GB 18030, which GBK systems read).
    #[arg(long, value_enum, default_value_t = EncodingArg::Utf8)]
    encoding: EncodingArg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum EncodingArg {
    #[value(name = "utf-8", alias = "utf8")]
    Utf8,
    #[value(name = "gbk", alias = "gb18030")]
    Gbk,
}

impl From<EncodingArg> for Encoding {
    fn from(arg: EncodingArg) -> Encoding {
        match arg {
            EncodingArg::Utf8 => Encoding::Utf8,
            EncodingArg::Gbk => Encoding::Gbk,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ExportFormat {
    /// One header row, one row per settlement.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

#[derive(Debug, Args)]
struct ExportArgs {
    // The running server; an auditor's token.
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    seal: SealArgs,
    /// The first business day (YYYY-MM-DD), included.
    #[arg(long)]
    from: String,
    /// The last business day, included; at most 366 days in all.
    #[arg(long)]
    to: String,
    /// One hospital; all when absent.
    #[arg(long)]
    hospital: Option<String>,
    /// The output format.
    #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
    format: ExportFormat,
    /// Where to write; standard output when absent.
    #[arg(long)]
    output: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ReconcileArgs {
    // The running server; the hospital's or an auditor's token.
    #[command(flatten)]
    connect: ConnectArgs,
    /// The hospital.
    #[arg(long)]
    hospital: String,
    /// The business day (YYYY-MM-DD).
    #[arg(long)]
    date: String,
    /// The hospital's count of settlements recorded that day.
    #[arg(long)]
    settled_count: i32,
    /// The hospital's sum of their assistance (yuan).
    #[arg(long)]
    assistance_total: String,
    /// The hospital's count of settlements reversed that day.
    #[arg(long)]
    reversed_count: i32,
    /// The hospital's sum of the reversed settlements' assistance (yuan).
    #[arg(long)]
    reversed_total: String,
}

#[derive(Debug, Subcommand)]
enum SnapshotCommand {
    /// Stream a consistent snapshot from a running server into FILE while it
    /// keeps settling (role operator). FILE must not exist. A server with
    /// [backup] recipients sends it encrypted to them; else it is encrypted
    /// here to --recipient, or written plain.
    Save(SnapshotSaveArgs),
    /// Check FILE whole, then make a new data directory from it and verify
    /// it. A damaged or truncated file is refused and nothing is written;
    /// so is an encrypted one without the identity that opens it.
    Restore(SnapshotRestoreArgs),
}

#[derive(Debug, Args)]
struct SnapshotSaveArgs {
    // The running server; an operator's token.
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    seal: SealArgs,
    /// Where to write the snapshot.
    file: PathBuf,
}

#[derive(Debug, Args)]
struct SnapshotRestoreArgs {
    /// The snapshot file, plain or encrypted (age).
    file: PathBuf,
    /// The age identity file (AGE-SECRET-KEY-1…, the fund's recovery key)
    /// that opens an encrypted snapshot.
    #[arg(long)]
    identity: Option<PathBuf>,
    /// The new data directory: missing or empty.
    #[arg(long)]
    data_dir: PathBuf,
}

#[derive(Debug, Args)]
struct SoakArgs {
    /// The server to drive.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    target: String,
    /// Clients, each on its own connection.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Requests a second, all clients together.
    #[arg(long, default_value_t = 400)]
    rate: u32,
    /// How long to run, such as "10m".
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Patients loaded on the roster and drawn from.
    #[arg(long, default_value_t = 2_000)]
    patients: usize,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// Directory of the embedded store (created if missing).
    #[arg(long, default_value = "./medassist-data")]
    data_dir: PathBuf,
    /// Serve from PostgreSQL instead of the embedded store (--data-dir is
    /// then unused), for example
    /// postgresql://medassist@db1,db2/medassist?target_session_attrs=read-write.
    /// Missing schema migrations are applied at start-up.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    #[command(flatten)]
    database_tls: DatabaseTls,
    /// Configuration file (TOML): policies, tokens, TLS, limits. Without it
    /// the built-in Nantong policy serves, open on loopback only.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Server certificate chain (PEM); serves TLS. Overrides [tls] of the file.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Server private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// CA certificate (PEM) that client certificates must chain to (mTLS).
    #[arg(long, requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Serve the HTTP/JSON API (gRPC-JSON transcoding) and /openapi.json at
    /// ADDR, with the same tokens, roles and validation; `off` for none.
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = listen_or_off)]
    http_listen: HttpListen,
    /// Log lines as human-readable text or as JSON objects.
    #[arg(long, value_enum, default_value_t = LogFormatArg::Text)]
    log_format: LogFormatArg,
    /// Write the server's process ID to this file once it listens, and
    /// remove it at exit: `kill -HUP "$(cat FILE)"` reloads this server and
    /// no other, where systemd (`systemctl reload`) is not used.
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// On SIGTERM or SIGINT, report NOT_SERVING at once but keep serving new
    /// requests this long (such as "5s", "0s"), then stop.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    drain: Duration,
    /// Size of each journal segment file of the embedded store, in bytes
    /// (at least 4 MiB: a commit of the largest batch fits half of one).
    #[arg(long, default_value_t = SEGMENT_BYTES_DEFAULT,
          value_parser = clap::value_parser!(u64).range(4 * 1024 * 1024..))]
    journal_segment_bytes: u64,
    /// Write a new base copy of the embedded store once the journal after
    /// the last one holds this many bytes (or as many as the base copy
    /// itself, if that is more).
    #[arg(long, default_value_t = REBASE_AFTER_BYTES_DEFAULT)]
    rebase_after_bytes: u64,
}

/// Where the HTTP/JSON API listens, if anywhere.
#[derive(Debug, Clone, Copy)]
struct HttpListen(Option<SocketAddr>);

fn listen_or_off(text: &str) -> Result<HttpListen, String> {
    match text {
        "off" => Ok(HttpListen(None)),
        addr => addr
            .parse()
            .map(|addr| HttpListen(Some(addr)))
            .map_err(|e| format!("{e}: an address such as 127.0.0.1:8080, or off")),
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the audit trail's hash chain offline, like verify (the service
    /// stopped): names the first record changed, removed, inserted or
    /// moved. Exit 0 when whole, 1 when broken.
    Verify(VerifyArgs),
    /// Write the audit records of a time range as JSON lines, for the
    /// fund's log system (role auditor); the last line holds each chain's
    /// head.
    Export(Box<AuditExportArgs>),
}

#[derive(Debug, Args)]
struct AuditExportArgs {
    // The running server; an auditor's token.
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    seal: SealArgs,
    /// From this moment (RFC 3339, such as 2026-11-01T00:00:00+08:00), included.
    #[arg(long)]
    from: String,
    /// To this moment, included.
    #[arg(long)]
    to: String,
    /// Only this principal's records (token:...).
    #[arg(long)]
    principal: Option<String>,
    /// Only records naming this patient (read from the file, so the ID is
    /// not on a command line).
    #[arg(long)]
    patient_id_file: Option<PathBuf>,
    /// Where to write; standard output when absent.
    #[arg(long)]
    output: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Print a fresh random token and the configuration lines that admit it.
    New(TokenArgs),
}

#[derive(Debug, Args)]
struct TokenArgs {
    /// What the caller may do.
    #[arg(long, value_parser = ["hospital", "insurer", "roster_admin", "auditor", "caseworker", "officer", "supervisor", "operator", "metrics"])]
    role: String,
    /// The hospital a hospital token acts for.
    #[arg(long)]
    hospital_id: Option<String>,
    /// A name for audit logs, such as "HIS of hospital H001".
    #[arg(long)]
    name: Option<String>,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// The data directory to check.
    #[arg(long, default_value = "./medassist-data")]
    data_dir: PathBuf,
    /// Check this PostgreSQL database instead of a data directory, with
    /// every instance stopped. Only from the command line, not from
    /// DATABASE_URL: a check of a data directory on a host whose
    /// environment serves from PostgreSQL must not check the database. A
    /// URL with a password is refused here (`ps` would show it): use
    /// --database-url-file.
    #[arg(long, conflicts_with = "database_url_file")]
    database_url: Option<String>,
    /// A file (mode 0600) holding the URL of the database to check, for a
    /// URL with a password.
    #[arg(long)]
    database_url_file: Option<PathBuf>,
    #[command(flatten)]
    database_tls: DatabaseTls,
}

#[derive(Debug, Args)]
struct MigrateArgs {
    /// The PostgreSQL database to bring to this binary's schema version.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    #[command(flatten)]
    database_tls: DatabaseTls,
}

/// TLS to PostgreSQL, for every command that reaches it.
#[derive(Debug, Args)]
struct DatabaseTls {
    /// CA certificate(s) (PEM) that signed the PostgreSQL server's
    /// certificate. Connections then use TLS, never plain text, and check
    /// the server's certificate and its name against the URL's host (as
    /// libpq's sslmode=verify-full). Without it they are not encrypted.
    /// Unused without a database URL.
    #[arg(long, env = "DATABASE_CA")]
    database_ca: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// The server to drive.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    target: String,
    /// HTTP/2 connections.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Requests outstanding per connection.
    #[arg(long, default_value_t = 16)]
    in_flight: usize,
    /// Measured time of each phase, such as "10s".
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Unmeasured warm-up before each phase.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Patients loaded on the roster and drawn from.
    #[arg(long, default_value_t = 10_000)]
    patients: usize,
    /// Put all load on the first N patients (a hot spot).
    #[arg(long)]
    hot_patients: Option<usize>,
    /// A scenario: an operation (settle, presettle, usage, reverse) or a
    /// weighted mix such as "settle=8,usage=1,reverse=1". Repeatable.
    #[arg(long = "scenario", value_parser = Scenario::parse, default_values = ["settle", "presettle", "usage"])]
    scenarios: Vec<Scenario>,
    /// Repetitions of every phase; medians are reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Exit 1 if any request failed or any phase completed nothing (for CI).
    #[arg(long)]
    strict: bool,
}

impl Cli {
    /// Runs the command. An error is printed by `main` and exits 2; a
    /// failed check exits 1.
    pub async fn run(self) -> Result<ExitCode, Box<dyn std::error::Error>> {
        match self.command {
            Some(Command::Serve(args)) => serve(args).await,
            Some(Command::Openapi) => {
                println!("{}", crate::grpc::OPENAPI_JSON);
                Ok(ExitCode::SUCCESS)
            }
            Some(Command::Token(TokenCommand::New(args))) => token_new(args),
            Some(Command::Verify(args)) => verify(args),
            Some(Command::Migrate(args)) => migrate(args),
            Some(Command::Audit(AuditCommand::Verify(args))) => audit_verify(args),
            Some(Command::Audit(AuditCommand::Export(args))) => audit_export(args).await,
            Some(Command::Bench(args)) => bench(args).await,
            Some(Command::Snapshot(SnapshotCommand::Save(args))) => {
                crate::client::snapshot::save(SaveOptions {
                    connection: args.connect.connection()?,
                    file: args.file,
                    recipients: args.seal.recipients()?,
                })
                .await
            }
            Some(Command::Snapshot(SnapshotCommand::Restore(args))) => snapshot_restore(args),
            Some(Command::Soak(args)) => soak(args).await,
            Some(Command::Roster(RosterCommand::Import(args))) => {
                roster::import(ImportOptions {
                    connection: args.connect.connection()?,
                    file: args.file,
                    encoding: args.encoding.into(),
                })
                .await
            }
            Some(Command::Roster(RosterCommand::Export(args))) => {
                roster::export(roster::ExportOptions {
                    connection: args.connect.connection()?,
                    region: args.region,
                    output: args.output,
                    encoding: args.encoding.into(),
                    recipients: args.seal.recipients()?,
                })
                .await
            }
            Some(Command::Export(args)) => {
                export::export(export::ExportOptions {
                    connection: args.connect.connection()?,
                    from: args.from,
                    to: args.to,
                    hospital: args.hospital,
                    format: match args.format {
                        ExportFormat::Csv => Format::Csv,
                        ExportFormat::Jsonl => Format::JsonLines,
                    },
                    output: args.output,
                    recipients: args.seal.recipients()?,
                })
                .await
            }
            Some(Command::Reconcile(args)) => reconcile(args).await,
            Some(Command::Simulate(args)) => simulate(args),
            None => serve(self.serve).await,
        }
    }
}

async fn serve(args: ServeArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    crate::telemetry::init(match args.log_format {
        LogFormatArg::Text => LogFormat::Text,
        LogFormatArg::Json => LogFormat::Json,
    });
    // --tls-* override the file's [tls], at start-up and at every reload.
    let tls_override = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert,
            key,
            client_ca: args.tls_client_ca,
        }),
        _ => None,
    };
    let load = args.config.clone().map(|path| -> LoadConfig {
        let tls_override = tls_override.clone();
        Box::new(move || {
            let mut config = Config::load(&path).map_err(|e| e.to_string())?;
            if let Some(tls) = &tls_override {
                config.tls = Some(tls.clone());
            }
            Ok(config)
        })
    });
    let config = match &load {
        Some(load) => load()?,
        None => {
            tracing::info!("no --config: serving the built-in policy (region 320600)");
            Config {
                tls: tls_override,
                ..Config::default()
            }
        }
    };
    let mut server_config = ServerConfig::new(args.listen, args.data_dir);
    server_config.config = config;
    server_config.metrics_listen = args.metrics_listen;
    server_config.drain_period = args.drain;
    server_config.http_listen = args.http_listen.0;
    server_config.database_url = args.database_url;
    server_config.database_ca = args.database_tls.database_ca;
    server_config.store = SledOptions {
        journal_segment_bytes: args.journal_segment_bytes,
        rebase_after_bytes: args.rebase_after_bytes,
        ..SledOptions::default()
    };
    let server = Server::bind(server_config).await?;
    let _pid_file = args.pid_file.map(PidFile::write).transpose()?;
    reload_on_hangup(server.reloader(), load);
    server.run(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// The `--pid-file` of a running server, removed when it stops.
struct PidFile(PathBuf);

impl PidFile {
    fn write(path: PathBuf) -> Result<PidFile, String> {
        std::fs::write(&path, format!("{}\n", std::process::id()))
            .map_err(|e| format!("cannot write the pid file {}: {e}", path.display()))?;
        Ok(PidFile(path))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_file(&self.0) {
            tracing::warn!(path = %self.0.display(), %error, "cannot remove the pid file");
        }
    }
}

fn token_new(args: TokenArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let role = Role::parse(&args.role)?;
    let hospital_id = match (role, args.hospital_id) {
        (Role::Hospital, Some(id)) => {
            Some(HospitalId::parse(&id).map_err(|e| format!("--hospital-id {e}"))?)
        }
        (Role::Hospital, None) => return Err("a hospital token needs --hospital-id".into()),
        (_, Some(_)) => return Err("only hospital tokens take --hospital-id".into()),
        (_, None) => None,
    };
    let token = new_token().map_err(|e| format!("no randomness available: {e}"))?;
    print!(
        "{}",
        token_instructions(&token, role, hospital_id.as_ref(), args.name.as_deref())?
    );
    Ok(ExitCode::SUCCESS)
}

/// The text `medassist token new` prints: the token once, and the
/// configuration lines (with its digest, never the token) to paste.
fn token_instructions(
    token: &str,
    role: Role,
    hospital_id: Option<&HospitalId>,
    name: Option<&str>,
) -> Result<String, toml::ser::Error> {
    #[derive(serde::Serialize)]
    struct Entry<'a> {
        sha256: String,
        role: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        hospital_id: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<&'a str>,
    }
    let entry = Entry {
        sha256: TokenDigest::of(token).to_hex(),
        role: role.as_str(),
        hospital_id: hospital_id.map(HospitalId::as_str),
        name,
    };
    Ok(format!(
        "Token (give it to the caller over a safe channel; it is shown once and stored nowhere):\n\n\
         \x20 {token}\n\n\
         Add to the configuration file, then reload the server that reads it (`systemctl reload \
         medassist`, or `kill -HUP \"$(cat PIDFILE)\"` for one started with --config and \
         --pid-file PIDFILE); a server started without --config needs a restart:\n\n\
         [[auth.tokens]]\n{}",
        toml::to_string(&entry)?
    ))
}

impl VerifyArgs {
    /// The database to check, if any: from the command line (without a
    /// password) or from a file.
    fn database_url(&self) -> Result<Option<String>, String> {
        match (&self.database_url, &self.database_url_file) {
            (Some(url), _) => url_without_password(url.clone()).map(Some),
            (None, Some(path)) => read_database_url(path).map(Some),
            (None, None) => Ok(None),
        }
    }
}

fn verify(args: VerifyArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    crate::telemetry::init(LogFormat::Text);
    let report = match args.database_url()? {
        Some(url) => crate::verify::verify(&PostgresStore::open(
            &url,
            args.database_tls.database_ca.as_deref(),
            Schema::Expect,
        )?)?,
        None => {
            if !args.data_dir.is_dir() {
                return Err(format!("{} is not a directory", args.data_dir.display()).into());
            }
            crate::verify::verify(&SledStore::open(&args.data_dir, SledOptions::default())?)?
        }
    };
    print!("{report}");
    Ok(if report.is_consistent() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn simulate(args: SimulateArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    crate::telemetry::init(LogFormat::Text);
    if !["text", "csv", "json"].contains(&args.format.as_str()) {
        return Err(format!("--format {:?}: text, csv or json", args.format).into());
    }
    let book = Config::load(&args.policy)?.policies;
    let year = Year::parse(args.year).map_err(|e| format!("--year {}: {e}", args.year))?;
    let region = args
        .region
        .as_deref()
        .map(RegionCode::parse)
        .transpose()
        .map_err(|e| format!("--region: {e}"))?;
    let replay = |store: &dyn crate::store::Store| {
        let simulation = crate::simulate::Simulation::new(&book, year, region);
        crate::simulate::replay(store, simulation, &|| false).map(|(report, _)| report)
    };
    let report = match args.store.database_url()? {
        Some(url) => {
            let store = PostgresStore::open(
                &url,
                args.store.database_tls.database_ca.as_deref(),
                Schema::Expect,
            )?;
            replay(&store)?
        }
        None => {
            if !args.store.data_dir.is_dir() {
                return Err(format!("{} is not a directory", args.store.data_dir.display()).into());
            }
            let store = SledStore::open(&args.store.data_dir, SledOptions::default())?;
            replay(&store)?
        }
    };
    match args.format.as_str() {
        "csv" => print!("{}", report.csv()),
        "json" => println!("{}", serde_json::to_string_pretty(&report)?),
        _ => print!("{}", report.text()),
    }
    Ok(ExitCode::SUCCESS)
}

fn audit_verify(args: VerifyArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    crate::telemetry::init(LogFormat::Text);
    let checked = match args.database_url()? {
        Some(url) => PostgresStore::open(
            &url,
            args.database_tls.database_ca.as_deref(),
            Schema::Expect,
        )?
        .verify_audit()?,
        None => {
            if !args.data_dir.is_dir() {
                return Err(format!("{} is not a directory", args.data_dir.display()).into());
            }
            // Opening recovers what an unclean stop left; closing syncs it.
            drop(SledStore::open(&args.data_dir, SledOptions::default())?);
            crate::store::audit_log::verify(&args.data_dir)?.map(|head| vec![head])
        }
    };
    match checked {
        Ok(chains) => {
            for (head, records) in chains {
                println!(
                    "audit chain {}: {records} records checked, head sequence {} hash {}",
                    head.chain,
                    head.seq,
                    head.hash_hex()
                );
            }
            println!("whole");
            Ok(ExitCode::SUCCESS)
        }
        Err(broken) => {
            println!("{broken}");
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn audit_export(args: Box<AuditExportArgs>) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let args = *args;
    let moment = |text: &str, flag: &str| -> Result<prost_types::Timestamp, String> {
        let at = chrono::DateTime::parse_from_rfc3339(text)
            .map_err(|e| format!("--{flag} {text:?}: {e} (such as 2026-11-01T00:00:00+08:00)"))?;
        Ok(prost_types::Timestamp {
            seconds: at.timestamp(),
            nanos: at.timestamp_subsec_nanos() as i32,
        })
    };
    let patient_id = match &args.patient_id_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .trim()
                .to_owned(),
        ),
        None => None,
    };
    let filter = crate::client::audit::AuditFilter {
        from: moment(&args.from, "from")?,
        to: moment(&args.to, "to")?,
        principal: args.principal,
        patient_id,
    };
    let written = crate::client::audit::export(crate::client::audit::AuditExportOptions {
        connection: args.connect.connection()?,
        filter,
        output: args.output,
        recipients: args.seal.recipients()?,
    })
    .await?;
    eprintln!("exported {written} audit records");
    Ok(ExitCode::SUCCESS)
}

/// A database URL given on the command line, refused if it holds a
/// password: arguments show in `ps` and the shell's history.
fn url_without_password(url: String) -> Result<String, String> {
    let has_password = url
        .parse::<tokio_postgres::Config>()
        .map(|config| config.get_password().is_some())
        .map_err(|e| format!("--database-url is not a PostgreSQL URL: {e}"))?;
    if has_password {
        return Err(
            "--database-url holds a password, which `ps` and the shell's history \
                    would show: put the URL in a file only you can read and pass \
                    --database-url-file FILE"
                .into(),
        );
    }
    Ok(url)
}

/// Largest file `--database-url-file` reads: a URL is one line.
const DATABASE_URL_FILE_BYTES_MAX: u64 = 8 * 1024;

/// The database URL in `path`: its first line, trimmed.
fn read_database_url(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read as _;
    let failed = |why: String| format!("--database-url-file {}: {why}", path.display());
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|file| {
            file.take(DATABASE_URL_FILE_BYTES_MAX)
                .read_to_string(&mut text)
        })
        .map_err(|e| failed(e.to_string()))?;
    let url = text.lines().next().unwrap_or("").trim();
    if url.is_empty() {
        return Err(failed("holds no URL".into()));
    }
    Ok(url.to_owned())
}

fn migrate(args: MigrateArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    crate::telemetry::init(LogFormat::Text);
    let migrated =
        PostgresStore::migrate(&args.database_url, args.database_tls.database_ca.as_deref())?;
    match migrated.from == migrated.to {
        true => println!("schema is at version {}: nothing to do", migrated.to),
        false => println!(
            "schema migrated from version {} to {}",
            migrated.from, migrated.to
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn snapshot_restore(args: SnapshotRestoreArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    crate::telemetry::init(LogFormat::Text);
    let identities = args
        .identity
        .as_deref()
        .map(Identities::read_file)
        .transpose()?;
    // Opened once to check, once to install: a sealed file is decrypted
    // each time, and its plaintext goes nowhere but the new directory.
    let source = || seal::open(&args.file, identities.as_ref()).map_err(StoreError::Io);
    // The store's messages name the file and what is wrong; no prefix needed.
    let summary = SledStore::restore_snapshot(&source, &args.data_dir, SledOptions::default())
        .map_err(|error| match error {
            StoreError::Io(message) | StoreError::Corrupt(message) => message,
            other => other.to_string(),
        })?;
    let store = SledStore::open(&args.data_dir, SledOptions::default())?;
    let report = crate::verify::verify(&store)?;
    println!(
        "restored {} into {}: commit {}, {} entries",
        args.file.display(),
        args.data_dir.display(),
        summary.last_commit,
        summary.entries
    );
    print!("{report}");
    Ok(if report.is_consistent() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn reconcile(args: ReconcileArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let client = Client::connect(&args.connect.connection()?).await?;
    let theirs = pb::DayTotals {
        settled_count: args.settled_count,
        assistance_total: args.assistance_total,
        reversed_count: args.reversed_count,
        reversed_total: args.reversed_total,
    };
    let request = pb::ReconcileDayRequest {
        hospital_id: args.hospital.clone(),
        date: args.date.clone(),
        hospital_totals: Some(theirs.clone()),
    };
    let answer = client
        .reconciliation()
        .reconcile_day(client.request(request))
        .await
        .map_err(ClientError::from)?
        .into_inner();
    let fund = answer.fund_totals.unwrap_or_default();
    print!(
        "{}",
        reconciliation_table(
            &args.hospital,
            &args.date,
            &theirs,
            &fund,
            &answer.differing_fields
        )
    );
    Ok(if answer.matched {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What `medassist reconcile` prints: both sides of each figure, the
/// differing ones marked, and the verdict.
fn reconciliation_table(
    hospital: &str,
    date: &str,
    theirs: &pb::DayTotals,
    fund: &pb::DayTotals,
    differing: &[String],
) -> String {
    let rows = [
        (
            "settled_count",
            theirs.settled_count.to_string(),
            fund.settled_count.to_string(),
        ),
        (
            "assistance_total",
            theirs.assistance_total.clone(),
            fund.assistance_total.clone(),
        ),
        (
            "reversed_count",
            theirs.reversed_count.to_string(),
            fund.reversed_count.to_string(),
        ),
        (
            "reversed_total",
            theirs.reversed_total.clone(),
            fund.reversed_total.clone(),
        ),
    ];
    let mut text = format!(
        "hospital {hospital}, business day {date}\n{:<18} {:>20} {:>20}\n",
        "figure", "hospital", "fund"
    );
    for (name, hospital_side, fund_side) in rows {
        let mark = if differing.iter().any(|d| d == name) {
            "  DIFFERS"
        } else {
            ""
        };
        text.push_str(&format!(
            "{name:<18} {hospital_side:>20} {fund_side:>20}{mark}\n"
        ));
    }
    text.push_str(if differing.is_empty() {
        "MATCHED\n"
    } else {
        "NOT MATCHED\n"
    });
    text
}

async fn bench(args: BenchArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    crate::telemetry::init(LogFormat::Text);
    let report = crate::bench::run(BenchOptions {
        target: args.target,
        connections: args.connections,
        in_flight: args.in_flight,
        duration: args.duration,
        warmup: args.warmup,
        patients: args.patients,
        hot_patients: args.hot_patients,
        scenarios: args.scenarios,
        runs: args.runs,
        json: args.json,
    })
    .await?;
    let failed = report
        .phases
        .iter()
        .any(|phase| phase.ok == 0 || !phase.errors.is_empty());
    if args.strict && failed {
        eprintln!("medassist bench: a phase had errors or completed nothing");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

async fn soak(args: SoakArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    crate::telemetry::init(LogFormat::Text);
    let report = crate::soak::run(crate::soak::SoakOptions {
        target: args.target,
        clients: args.clients,
        rate: args.rate,
        duration: args.duration,
        patients: args.patients,
    })
    .await?;
    let text = serde_json::to_string_pretty(&report)?;
    println!("{text}");
    if let Some(path) = args.json {
        std::fs::write(path, &text)?;
    }
    if !report.missing.is_empty() || report.acknowledged_settlements == 0 {
        eprintln!("medassist soak: acknowledged writes are missing, or nothing was acknowledged");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Access;

    /// Proves `serve` drains for the documented default unless told otherwise.
    #[test]
    fn serve_drains_for_the_default_period() {
        let cli = Cli::parse_from(["medassist"]);
        assert_eq!(cli.serve.drain, crate::server::DRAIN_DEFAULT);
        let cli = Cli::parse_from(["medassist", "serve", "--drain", "0s"]);
        let Some(Command::Serve(args)) = cli.command else {
            panic!("serve expected")
        };
        assert_eq!(args.drain, Duration::ZERO);
    }

    /// Proves a token on the command line is refused, saying why and
    /// without echoing it, before anything is read or sent; a token file is
    /// read instead.
    #[test]
    fn tokens_never_come_from_the_command_line() {
        let cli = Cli::parse_from([
            "medassist",
            "export",
            "--token",
            "mdas_secret",
            "--from",
            "a",
            "--to",
            "b",
        ]);
        let Some(Command::Export(args)) = cli.command else {
            panic!("export expected")
        };
        let refused = args.connect.connection().unwrap_err().to_string();
        assert!(
            refused.contains("--token-file") && refused.contains("`ps`"),
            "{refused}"
        );
        assert!(!refused.contains("mdas_secret"), "{refused}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "mdas_from_a_file\n").unwrap();
        let cli = Cli::parse_from([
            "medassist",
            "reconcile",
            "--token-file",
            file.to_str().unwrap(),
            "--hospital",
            "H001",
            "--date",
            "2026-01-01",
            "--settled-count",
            "0",
            "--assistance-total",
            "0",
            "--reversed-count",
            "0",
            "--reversed-total",
            "0",
        ]);
        let Some(Command::Reconcile(args)) = cli.command else {
            panic!("reconcile expected")
        };
        assert!(args.connect.connection().unwrap().token.is_some());
    }

    /// Proves `verify` refuses a database URL with a password on its
    /// command line, in either form PostgreSQL accepts, and reads one from
    /// `--database-url-file` instead.
    #[test]
    fn database_passwords_stay_out_of_the_arguments() {
        for with_password in [
            "postgres://medassist:s3cret@db.example/medassist",
            "host=db.example user=medassist password=s3cret",
        ] {
            let refused = url_without_password(with_password.to_owned()).unwrap_err();
            assert!(refused.contains("--database-url-file"), "{refused}");
            assert!(!refused.contains("s3cret"), "{refused}");
        }
        let plain = "postgres://medassist@db.example/medassist";
        assert_eq!(url_without_password(plain.to_owned()).unwrap(), plain);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("url");
        std::fs::write(
            &file,
            "  postgres://medassist:s3cret@db.example/medassist\n",
        )
        .unwrap();
        assert_eq!(
            read_database_url(&file).unwrap(),
            "postgres://medassist:s3cret@db.example/medassist"
        );
        std::fs::write(&file, "\n").unwrap();
        assert!(
            read_database_url(&file)
                .unwrap_err()
                .contains("holds no URL")
        );
    }

    /// Proves the printed lines, pasted into a configuration file, admit the
    /// printed token with the chosen role and hospital.
    #[test]
    fn printed_config_lines_admit_the_printed_token() {
        let token = new_token().unwrap();
        let hospital = HospitalId::parse("H001").unwrap();
        let text = token_instructions(
            &token,
            Role::Hospital,
            Some(&hospital),
            Some("HIS \"east\" wing"),
        )
        .unwrap();
        let lines = &text[text.find("[[auth.tokens]]").unwrap()..];
        assert!(
            !lines.contains(&token),
            "the configuration never holds the token"
        );
        let config = Config::parse(lines).unwrap();
        let Access::Tokens(_) = &config.access else {
            panic!("tokens expected")
        };
        let header = format!("Bearer {token}");
        let principal = config.access.authenticate(Some(header.as_bytes())).unwrap();
        assert_eq!(principal.role, Role::Hospital);
        assert_eq!(principal.hospital_id, Some(hospital));
        assert_eq!(principal.name, "HIS \"east\" wing");
    }
}
