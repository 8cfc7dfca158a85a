//! `medassist`: see the crate documentation and `medassist --help`.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    match medassist::cli::Cli::parse().run().await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("medassist: {error}");
            ExitCode::from(2)
        }
    }
}
