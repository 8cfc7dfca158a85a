//! The base copy: a self-contained copy of the embedded store from which,
//! with the journal after it, the store can always be rebuilt.
//!
//! sled 0.34 reuses the segments of its log: between two of its flushes it
//! may rewrite a segment whose old contents were already on disk, and its
//! flush is `sync_file_range`, which a drive's write-back cache may reorder
//! or drop at a power cut. After an unclean stop, then, sled's files may be
//! torn anywhere, also in pages that were durable long before, and no sync
//! of ours can prevent it without changing sled. So sled's files are treated
//! as a cache that a clean stop leaves whole, and the durable state of the
//! store is this file plus the journal:
//!
//! - `base.snapshot` in the data directory is a snapshot (the format of
//!   [`super::snapshot`], checksummed whole with SHA-256) of the store at
//!   some commit, written beside the service as any snapshot is, then
//!   synced and renamed into place, so there is always one whole base;
//! - the journal keeps every commit after it, and only a new base releases
//!   journal segments;
//! - after an unclean stop (the checkpoint file says the store was not
//!   closed), opening rebuilds sled from the base and the journal, and
//!   after a clean stop it does the same if sled's files prove damaged.
//!
//! A base is a valid snapshot: `medassist snapshot restore` accepts it.

use std::{
    fs::File,
    io::{BufReader, BufWriter, Read, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use super::{
    CommitNumber, StoreError,
    checkpoint::sync_dir,
    snapshot::{self, Item, SnapshotSummary},
};

/// The base copy's name in the data directory.
pub const FILE_NAME: &str = "base.snapshot";
/// Where a new base is written before it replaces the old one.
pub const TEMPORARY_NAME: &str = "base.snapshot.tmp";

fn io_error(path: &Path, error: std::io::Error) -> StoreError {
    StoreError::Io(format!("{}: {error}", path.display()))
}

/// A whole base copy: the commit a store rebuilt from it holds, and its
/// size (which sets when the next one is due).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BaseCopy {
    /// The last commit it holds.
    pub last_commit: CommitNumber,
    /// Its size in bytes.
    pub bytes: u64,
}

/// The path of the base copy of the data directory `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// Writes a new base copy of `dir` with `write`, which puts a whole snapshot
/// into the file it is given; then syncs it and renames it into place, so
/// the old base stays whole until the new one replaces it. Returns what
/// `write` returned and the file's size.
pub fn write<T>(
    dir: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<T, StoreError>,
) -> Result<(T, u64), StoreError> {
    let temporary = dir.join(TEMPORARY_NAME);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(|e| io_error(&temporary, e))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let written = write(&mut out)?;
    let file = out
        .into_inner()
        .map_err(|e| io_error(&temporary, e.into_error()))?;
    file.sync_all().map_err(|e| io_error(&temporary, e))?;
    let bytes = file.metadata().map_err(|e| io_error(&temporary, e))?.len();
    let target = path(dir);
    std::fs::rename(&temporary, &target).map_err(|e| io_error(&target, e))?;
    sync_dir(dir)?;
    Ok((written, bytes))
}

/// Copies the snapshot read from `input` into `dir` as its base copy (for
/// a restore).
pub fn install(input: &mut dyn Read, dir: &Path) -> Result<u64, StoreError> {
    write(dir, |out| {
        std::io::copy(input, out)
            .map_err(|e| StoreError::Io(format!("cannot read the snapshot: {e}")))
    })
    .map(|(_, bytes)| bytes)
}

/// Reads the whole base copy of `dir` and checks it: `None` when there is
/// none, damage named when it does not pass.
pub fn check(dir: &Path) -> Result<Option<BaseCopy>, StoreError> {
    let path = path(dir);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io_error(&path, error)),
    };
    let bytes = file.metadata().map_err(|e| io_error(&path, e))?.len();
    let summary = snapshot::check(BufReader::with_capacity(1 << 20, file))
        .map_err(|error| named(&path, error))?;
    Ok(Some(BaseCopy {
        last_commit: summary.last_commit,
        bytes,
    }))
}

/// Hands every item of the base copy of `dir` to `each`, in order. The
/// digest is known only at the end: a store loaded from a base that then
/// fails it is thrown away by the caller.
pub fn load(
    dir: &Path,
    each: impl FnMut(Item) -> Result<(), StoreError>,
) -> Result<SnapshotSummary, StoreError> {
    let path = path(dir);
    let file = File::open(&path).map_err(|e| io_error(&path, e))?;
    snapshot::read(BufReader::with_capacity(1 << 20, file), each).map_err(|e| named(&path, e))
}

/// Says which file a snapshot error is about.
fn named(path: &Path, error: StoreError) -> StoreError {
    match error {
        StoreError::Corrupt(why) => StoreError::Corrupt(format!("{}: {why}", path.display())),
        other => other,
    }
}
