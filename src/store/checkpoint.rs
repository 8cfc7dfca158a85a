//! The checkpoint file: whether sled's files can be trusted, and the
//! file-system syncs that make them so.
//!
//! sled writes its log with `sync_file_range`, which is not durable (it
//! neither writes file metadata nor flushes the drive's cache), never syncs
//! the directory where it creates its files, and may rewrite log segments
//! that were already on disk. So sled's files are whole only after a clean
//! stop: sled closed, then `fsync` of every file and directory it keeps.
//! The checkpoint file says which it was:
//!
//! - **clean**, with the commit sled holds: written last by a clean stop;
//! - **open**: written, durably, before sled is opened, so a power cut or a
//!   crash while it runs leaves "open" behind, and the next start rebuilds
//!   sled from the base copy and the journal (see [`super::base`]).
//!
//! The commit of a clean checkpoint is also a high-water mark: a store
//! holding fewer commits than it names was cut short, and is rebuilt rather
//! than served with settlements missing.
//!
//! The file is written beside and renamed into place (write a temporary
//! file, `fdatasync`, rename, sync the directory), and holds the same 24
//! bytes twice (magic, format, commit, state, crc32), so one damaged byte
//! still leaves a readable copy. Stores written before the base copy
//! existed have a 20-byte format without the state; they are read as
//! [`Checkpoint::Legacy`].

use std::{
    fs::File,
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use super::{CommitNumber, StoreError};

/// The checkpoint file's name in the data directory.
pub const FILE_NAME: &str = "checkpoint";
/// Where a new checkpoint is written before it replaces the old one.
pub const TEMPORARY_NAME: &str = "checkpoint.tmp";
const MAGIC: u32 = u32::from_le_bytes(*b"MACK");
/// The format before the base copy: magic, format, commit, crc.
const FORMAT_LEGACY: u32 = 1;
const LEGACY_BYTES: usize = 20;
const FORMAT: u32 = 2;
const COPY_BYTES: usize = 24;
const STATE_OPEN: u32 = 0;
const STATE_CLEAN: u32 = 1;

/// What the checkpoint file says of sled's files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checkpoint {
    /// A clean stop left them whole, holding every commit up to this one.
    Clean(CommitNumber),
    /// The store was opened (at this commit) and not closed since: they may
    /// be torn anywhere.
    Open(CommitNumber),
    /// Written by a version without base copies: sled was synced through
    /// this commit, and the journal holds the rest. (Written here only to
    /// build such a store for the tests of its migration.)
    Legacy(CommitNumber),
}

fn io_error(path: &Path, error: std::io::Error) -> StoreError {
    StoreError::Io(format!("{}: {error}", path.display()))
}

/// Syncs a directory, so the names created, renamed or removed in it survive
/// a power cut.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e))
}

/// Syncs every file and directory under `dir` except the names in `skip`
/// (at the top level): what sled wrote, whatever it is.
pub fn sync_tree(dir: &Path, skip: &[&str]) -> Result<(), StoreError> {
    let entries = std::fs::read_dir(dir).map_err(|e| io_error(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let name = entry.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| io_error(&path, e))?;
        if kind.is_dir() {
            sync_tree(&path, &[])?;
        } else if kind.is_file() {
            File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| io_error(&path, e))?;
        }
    }
    sync_dir(dir)
}

/// One copy of `checkpoint`, in the format it belongs to.
fn encode(checkpoint: Checkpoint) -> Vec<u8> {
    let (format, commit, state) = match checkpoint {
        Checkpoint::Clean(commit) => (FORMAT, commit, Some(STATE_CLEAN)),
        Checkpoint::Open(commit) => (FORMAT, commit, Some(STATE_OPEN)),
        Checkpoint::Legacy(commit) => (FORMAT_LEGACY, commit, None),
    };
    let mut bytes = Vec::with_capacity(COPY_BYTES);
    bytes.extend_from_slice(&MAGIC.to_le_bytes());
    bytes.extend_from_slice(&format.to_le_bytes());
    bytes.extend_from_slice(&commit.to_le_bytes());
    if let Some(state) = state {
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes
}

fn decode(bytes: &[u8]) -> Option<Checkpoint> {
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or([0; 4]));
    let commit = || u64::from_le_bytes(bytes[8..16].try_into().unwrap_or([0; 8]));
    match bytes.len() {
        LEGACY_BYTES
            if word(0) == MAGIC
                && word(4) == FORMAT_LEGACY
                && crc32fast::hash(&bytes[0..16]) == word(16) =>
        {
            Some(Checkpoint::Legacy(commit()))
        }
        COPY_BYTES
            if word(0) == MAGIC
                && word(4) == FORMAT
                && crc32fast::hash(&bytes[0..20]) == word(20) =>
        {
            match word(16) {
                STATE_CLEAN => Some(Checkpoint::Clean(commit())),
                STATE_OPEN => Some(Checkpoint::Open(commit())),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Reads the checkpoint of the data directory `dir`: `None` when there is
/// none, an error naming the file when neither copy is readable.
pub fn read(dir: &Path) -> Result<Option<Checkpoint>, StoreError> {
    let path = dir.join(FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io_error(&path, error)),
    };
    let copy = match bytes.len() {
        n if n == 2 * COPY_BYTES => COPY_BYTES,
        n if n == 2 * LEGACY_BYTES => LEGACY_BYTES,
        n => {
            return Err(StoreError::Corrupt(format!(
                "{} is damaged: {n} bytes instead of {}",
                path.display(),
                2 * COPY_BYTES
            )));
        }
    };
    match (decode(&bytes[..copy]), decode(&bytes[copy..])) {
        (Some(a), Some(b)) if a != b => Err(StoreError::Corrupt(format!(
            "{} is damaged: its two copies say {a:?} and {b:?}",
            path.display()
        ))),
        (Some(checkpoint), _) | (None, Some(checkpoint)) => Ok(Some(checkpoint)),
        (None, None) => Err(StoreError::Corrupt(format!(
            "{} is damaged: neither copy passes its checksum",
            path.display()
        ))),
    }
}

/// Durably records `checkpoint`: the old one stays whole until the new one
/// replaces it.
pub fn write(dir: &Path, checkpoint: Checkpoint) -> Result<(), StoreError> {
    let temporary: PathBuf = dir.join(TEMPORARY_NAME);
    let copy = encode(checkpoint);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(|e| io_error(&temporary, e))?;
    file.write_all(&copy)
        .and_then(|()| file.write_all(&copy))
        .and_then(|()| file.sync_data())
        .map_err(|e| io_error(&temporary, e))?;
    let path = dir.join(FILE_NAME);
    std::fs::rename(&temporary, &path).map_err(|e| io_error(&path, e))?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves a checkpoint survives one damaged byte anywhere, and that
    /// damage to both copies is refused rather than read as no checkpoint.
    #[test]
    fn one_damaged_byte_is_survived_two_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        write(dir.path(), Checkpoint::Open(41)).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(Checkpoint::Open(41)));
        write(dir.path(), Checkpoint::Clean(42)).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(Checkpoint::Clean(42)));
        let path = dir.path().join(FILE_NAME);
        let good = std::fs::read(&path).unwrap();
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            std::fs::write(&path, &bad).unwrap();
            assert_eq!(
                read(dir.path()).unwrap(),
                Some(Checkpoint::Clean(42)),
                "byte {at}"
            );
        }
        let mut bad = good.clone();
        bad[9] ^= 1;
        bad[COPY_BYTES + 9] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        assert!(
            read(dir.path())
                .unwrap_err()
                .to_string()
                .contains("damaged")
        );
        std::fs::write(&path, &good[..30]).unwrap();
        assert!(
            read(dir.path())
                .unwrap_err()
                .to_string()
                .contains("damaged")
        );
    }

    /// Proves a checkpoint in the format written before base copies existed
    /// (20 bytes a copy, no state) is still read, as what it meant then.
    #[test]
    fn the_legacy_format_is_read() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), Checkpoint::Legacy(77)).unwrap();
        let bytes = std::fs::read(dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(bytes.len(), 2 * LEGACY_BYTES);
        assert_eq!(read(dir.path()).unwrap(), Some(Checkpoint::Legacy(77)));
    }
}
