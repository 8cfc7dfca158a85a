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
    // A panic the store catches on damaged files is reported by its caller
    // in one line, as every refusal is; any other panic as usual.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !medassist::store::panic_is_caught() {
            report(info);
        }
    }));
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
