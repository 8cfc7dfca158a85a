//! `medassist`: see the crate documentation and `medassist --help`.

use std::process::ExitCode;

use clap::Parser;

/// sled and tonic allocate and free small buffers across threads on every
/// request; mimalloc does that with far less contention than glibc's malloc
/// (see docs/BENCHMARKS.md for the measurement).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // First, so that nothing is ever created readable by others.
    medassist::cli::keep_files_private();
    let cli = medassist::cli::Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("medassist: cannot start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(cli.run()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("medassist: {error}");
            ExitCode::from(2)
        }
    }
}
