//! The command line: `medassist serve [--listen ADDR] [--data-dir DIR] [--config FILE]`
//! (also the default with no subcommand), `medassist bench` (see [`crate::bench`]) and
//! `medassist verify --data-dir DIR` (see [`crate::verify`]).

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use clap::{Args, Parser, Subcommand};

use crate::{
    bench::{BenchOptions, Scenario},
    config::Config,
    server::{Server, ServerConfig, shutdown_signal},
    store::{SledOptions, SledStore},
};

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
    /// Drive a running server with load and report throughput and latency.
    Bench(BenchArgs),
    /// Check a data directory's consistency, with the service stopped.
    /// Exits 0 when consistent, 1 naming each discrepancy.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// The data directory to check.
    #[arg(long, default_value = "./medassist-data")]
    data_dir: PathBuf,
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
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// Directory of the embedded store (created if missing).
    #[arg(long, default_value = "./medassist-data")]
    data_dir: PathBuf,
    /// Policy file (TOML); without it the built-in Nantong policy serves.
    #[arg(long)]
    config: Option<PathBuf>,
}

impl Cli {
    /// Runs the command. An error is printed by `main` and exits 2; a
    /// failed check exits 1.
    pub async fn run(self) -> Result<ExitCode, Box<dyn std::error::Error>> {
        crate::telemetry::init();
        match self.command {
            Some(Command::Serve(args)) => serve(args).await,
            Some(Command::Bench(args)) => bench(args).await,
            Some(Command::Verify(args)) => verify(args),
            None => serve(self.serve).await,
        }
    }
}

async fn serve(args: ServeArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => {
            tracing::info!("no --config: serving the built-in policy (region 320600)");
            Config::default()
        }
    };
    let mut server_config = ServerConfig::new(args.listen, args.data_dir);
    server_config.config = config;
    let server = Server::bind(server_config).await?;
    server.run(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

fn verify(args: VerifyArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    if !args.data_dir.is_dir() {
        return Err(format!("{} is not a directory", args.data_dir.display()).into());
    }
    let store = SledStore::open(&args.data_dir, SledOptions::default())?;
    let report = crate::verify::verify(&store)?;
    print!("{report}");
    Ok(if report.is_consistent() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn bench(args: BenchArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    crate::bench::run(BenchOptions {
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
    Ok(ExitCode::SUCCESS)
}
