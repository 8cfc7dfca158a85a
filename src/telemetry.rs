//! Logging through `tracing`, filtered by `RUST_LOG` (default `info`).
//!
//! Personal data never reaches a log whole: resident IDs and names print
//! masked through their `Display`/`Debug` implementations.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber writing to standard error. Does nothing if
/// one is already installed (as in tests that start several servers).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for people; files and log collectors get plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
