//! `medassist`: see the crate documentation and `medassist --help`.

use std::process::ExitCode;

use clap::Parser;

/// sled and tonic allocate and free small buffers across threads on every
/// request; mimalloc does that with far less contention than glibc's malloc
/// (see docs/BENCHMARKS.md for the measurement).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
