//! Logging through `tracing`, filtered by `RUST_LOG` (default `info`), as
//! text or JSON lines on standard error.
//!
//! Personal data never reaches a log whole: resident IDs and names print
//! masked through their `Display`/`Debug` implementations. Audit events
//! (settle, reverse, roster change) go to the target `medassist::audit`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event (coloured on a terminal).
    Text,
    /// One JSON object per event, for log collectors.
    Json,
}

/// Installs the global subscriber writing to standard error. Does nothing if
/// one is already installed (as in tests that start several servers).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // The PostgreSQL driver logs every statement's parameters at debug:
    // resident IDs and names. It never logs below info, whatever is asked.
    let filter = filter.add_directive("tokio_postgres=info".parse().expect("a valid directive"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        // Colour codes only for people; files and log collectors get plain text.
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
