//! The operators' use cases: an online snapshot of the store, sealed to
//! the fund's recovery keys when the server has them.
//!
//! The server seals, not the client: the operator who runs `medassist
//! snapshot save` then never receives a readable copy, on any path (the
//! CLI, the HTTP gateway, a hand-written client), and cannot ask for one
//! once `[backup] recipients` are configured.

use std::{io, io::Write as _, sync::Arc, time::Instant};

use tokio::sync::mpsc;

use super::{AUDIT, App, AppError};
use crate::{
    auth::{Action, Caller, authorize},
    domain::Timestamp,
    seal::{Recipients, Sink},
    store::Store,
};

/// Bytes per snapshot chunk sent to the client.
pub const SNAPSHOT_CHUNK_BYTES: usize = 256 * 1024;
/// Chunks produced ahead of the client: with the chunk size, what bounds a
/// snapshot's memory however large the store is.
const SNAPSHOT_CHUNKS_AHEAD: usize = 8;

/// A snapshot as it is produced: chunks in order; an error, if any, last.
pub type SnapshotChunks = mpsc::Receiver<Result<Vec<u8>, AppError>>;

/// What a caller asks of a snapshot's encryption.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotEncryption {
    /// Sealed to the `[backup]` recipients when the server has any, else plain.
    ServerChoice,
    /// Sealed, or refused when the server has no recipients: for a backup
    /// job that must never write a readable copy.
    Sealed,
    /// Plain, or refused when the server has recipients.
    Plain,
}

impl App {
    /// Replaces the recipients snapshots are sealed to (at start-up and on
    /// every configuration reload); snapshots in progress keep theirs.
    pub fn set_backup_recipients(&self, recipients: Recipients) {
        self.backup_recipients.store(Arc::new(recipients));
    }

    /// Starts a consistent snapshot of the whole store while writes go on
    /// and returns its chunks as they come, sealed as [`SnapshotEncryption`]
    /// and the configured recipients decide. If the caller stops reading,
    /// the snapshot stops.
    pub fn save_snapshot(
        &self,
        by: &Caller,
        asked: SnapshotEncryption,
    ) -> Result<SnapshotChunks, AppError> {
        authorize(by, Action::Administer)?;
        let recipients = self.backup_recipients.load_full();
        match (asked, recipients.is_empty()) {
            (SnapshotEncryption::Plain, false) => {
                return Err(AppError::PermissionDenied(
                    "snapshots leave this server only encrypted to the fund's [backup] \
                     recipients, so an unencrypted one is refused: ask for the default and \
                     restore it with the fund's identity"
                        .into(),
                ));
            }
            (SnapshotEncryption::Sealed, true) => {
                return Err(AppError::Unsupported(
                    "this server has no [backup] recipients to encrypt a snapshot to: add \
                     the fund's age1… key to [backup] recipients in its configuration"
                        .into(),
                ));
            }
            _ => {}
        }
        let (chunks, receiver) = mpsc::channel(SNAPSHOT_CHUNKS_AHEAD);
        let store: Arc<dyn Store> = Arc::clone(&self.store);
        let principal = by.name.clone();
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let sink = ChunkSink {
                chunks: chunks.clone(),
                buffer: Vec::with_capacity(SNAPSHOT_CHUNK_BYTES),
                sent_bytes: 0,
            };
            let sealed = !recipients.is_empty();
            match take_snapshot(store.as_ref(), sink, &recipients) {
                Ok((summary, sent_bytes)) => tracing::info!(
                    target: AUDIT,
                    principal,
                    action = "snapshot",
                    sealed,
                    recipients = recipients.len(),
                    base_commit = summary.base_commit,
                    last_commit = summary.last_commit,
                    entries = summary.entries,
                    bytes = sent_bytes,
                    millis = started.elapsed().as_millis() as u64,
                    "snapshot saved"
                ),
                Err(error) => {
                    tracing::warn!(principal, %error, "snapshot failed");
                    let _ = chunks.blocking_send(Err(error));
                }
            }
        });
        Ok(receiver)
    }
}

/// Writes the store's snapshot into `sink`, sealed to `recipients` when
/// there are any; answers its summary and the bytes sent.
fn take_snapshot(
    store: &dyn Store,
    sink: ChunkSink,
    recipients: &Recipients,
) -> Result<(crate::store::snapshot::SnapshotSummary, u64), AppError> {
    let failed = |e: io::Error| AppError::Unavailable(format!("snapshot: {e}"));
    let mut out = Sink::new(sink, recipients).map_err(failed)?;
    let now = Timestamp::from(chrono::Utc::now()).unix_micros();
    let summary = store.save_snapshot(&mut out, now)?;
    let mut sink = out.finish().map_err(failed)?;
    sink.flush().map_err(failed)?;
    Ok((summary, sink.sent_bytes))
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
