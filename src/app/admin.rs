//! The operators' use cases: an online snapshot of the store.

use std::{io, sync::Arc, time::Instant};

use tokio::sync::mpsc;

use super::{AUDIT, App, AppError};
use crate::{
    auth::{Action, Caller, authorize},
    domain::Timestamp,
    store::Store,
};

/// Bytes per snapshot chunk sent to the client.
pub const SNAPSHOT_CHUNK_BYTES: usize = 256 * 1024;
/// Chunks produced ahead of the client: with the chunk size, what bounds a
/// snapshot's memory however large the store is.
const SNAPSHOT_CHUNKS_AHEAD: usize = 8;

/// A snapshot as it is produced: chunks in order; an error, if any, last.
pub type SnapshotChunks = mpsc::Receiver<Result<Vec<u8>, AppError>>;

impl App {
    /// Starts a consistent snapshot of the whole store while writes go on
    /// and returns its chunks as they come. If the caller stops reading, the
    /// snapshot stops.
    pub fn save_snapshot(&self, by: &Caller) -> Result<SnapshotChunks, AppError> {
        authorize(by, Action::Administer)?;
        let (chunks, receiver) = mpsc::channel(SNAPSHOT_CHUNKS_AHEAD);
        let store: Arc<dyn Store> = Arc::clone(&self.store);
        let principal = by.name.clone();
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let mut sink = ChunkSink {
                chunks: chunks.clone(),
                buffer: Vec::with_capacity(SNAPSHOT_CHUNK_BYTES),
                sent_bytes: 0,
            };
            let now = Timestamp::from(chrono::Utc::now()).unix_micros();
            match store.save_snapshot(&mut sink, now) {
                Ok(summary) => tracing::info!(
                    target: AUDIT,
                    principal,
                    action = "snapshot",
                    base_commit = summary.base_commit,
                    last_commit = summary.last_commit,
                    entries = summary.entries,
                    bytes = sink.sent_bytes,
                    millis = started.elapsed().as_millis() as u64,
                    "snapshot saved"
                ),
                Err(error) => {
                    tracing::warn!(principal, %error, "snapshot failed");
                    let _ = chunks.blocking_send(Err(error.into()));
                }
            }
        });
        Ok(receiver)
    }
}

/// Cuts the snapshot's bytes into chunks and hands them to the caller,
/// waiting while the caller is behind.
struct ChunkSink {
    chunks: mpsc::Sender<Result<Vec<u8>, AppError>>,
    buffer: Vec<u8>,
    sent_bytes: u64,
}

impl ChunkSink {
    fn send(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(SNAPSHOT_CHUNK_BYTES));
        self.sent_bytes += chunk.len() as u64;
        self.chunks
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl io::Write for ChunkSink {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= SNAPSHOT_CHUNK_BYTES {
            self.send()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}
