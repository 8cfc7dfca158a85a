//! `medassist`: see the crate documentation and `medassist --help`.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match medassist::cli::Cli::parse().run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("medassist: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
