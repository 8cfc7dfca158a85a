//! The command line: `medassist serve [--listen ADDR] [--data-dir DIR] [--config FILE]`.
//! With no subcommand, `medassist` serves with the same options.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::{
    config::Config,
    server::{Server, ServerConfig, shutdown_signal},
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
    /// Runs the command; the error is printed by `main` and exits non-zero.
    pub async fn run(self) -> Result<(), Box<dyn std::error::Error>> {
        crate::telemetry::init();
        match self.command {
            Some(Command::Serve(args)) => serve(args).await,
            None => serve(self.serve).await,
        }
    }
}

async fn serve(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
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
    Ok(())
}
