//! The checkpoint: how far the embedded store is known to be on disk by
//! itself, and the file-system syncs that make it so.
//!
//! sled writes its log with `sync_file_range`, which is not durable (it
//! neither writes file metadata nor flushes the drive's cache), and never
//! syncs the directory where it creates its files. A checkpoint makes sled
//! durable from outside: sled's flush, then `fsync` of every file and
//! directory sled keeps, then the commit number that all of it covers is
//! written to the `checkpoint` file (write a temporary file, `fdatasync`,
//! rename, sync the directory). Journal segments at or below that number are
//! no longer needed.
//!
//! The checkpoint file is also the store's high-water mark: sled reads damage
//! in its log as a torn tail and silently cuts everything after it, so at
//! start-up a store holding fewer commits than its checkpoint names is
//! refused, loudly, instead of serving with settlements missing.
//!
//! The file holds the same 20 bytes twice (magic, format, commit, crc32), so
//! one damaged byte still leaves a readable copy.

use std::{
    fs::File,
    io::Write,
    path::{Path, PathBuf},
};

use super::{CommitNumber, StoreError};

/// The checkpoint file's name in the data directory.
pub const FILE_NAME: &str = "checkpoint";
const TEMPORARY_NAME: &str = "checkpoint.tmp";
const MAGIC: u32 = u32::from_le_bytes(*b"MACK");
const FORMAT: u32 = 1;
const COPY_BYTES: usize = 20;

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

fn encode(commit: CommitNumber) -> [u8; COPY_BYTES] {
    let mut bytes = [0u8; COPY_BYTES];
    bytes[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    bytes[4..8].copy_from_slice(&FORMAT.to_le_bytes());
    bytes[8..16].copy_from_slice(&commit.to_le_bytes());
    let crc = crc32fast::hash(&bytes[0..16]);
    bytes[16..20].copy_from_slice(&crc.to_le_bytes());
    bytes
}

fn decode(bytes: &[u8]) -> Option<CommitNumber> {
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or([0; 4]));
    (bytes.len() == COPY_BYTES
        && word(0) == MAGIC
        && word(4) == FORMAT
        && crc32fast::hash(&bytes[0..16]) == word(16))
    .then(|| u64::from_le_bytes(bytes[8..16].try_into().unwrap_or([0; 8])))
}

/// Reads the checkpoint of the data directory `dir`: `None` when there is
/// none, an error naming the file when neither copy is readable.
pub fn read(dir: &Path) -> Result<Option<CommitNumber>, StoreError> {
    let path = dir.join(FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io_error(&path, error)),
    };
    if bytes.len() != 2 * COPY_BYTES {
        return Err(StoreError::Corrupt(format!(
            "{} is damaged: {} bytes instead of {}",
            path.display(),
            bytes.len(),
            2 * COPY_BYTES
        )));
    }
    let first = decode(&bytes[..COPY_BYTES]);
    let second = decode(&bytes[COPY_BYTES..]);
    match (first, second) {
        (Some(a), Some(b)) if a != b => Err(StoreError::Corrupt(format!(
            "{} is damaged: its two copies name commits {a} and {b}",
            path.display()
        ))),
        (Some(commit), _) | (None, Some(commit)) => Ok(Some(commit)),
        (None, None) => Err(StoreError::Corrupt(format!(
            "{} is damaged: neither copy passes its checksum",
            path.display()
        ))),
    }
}

/// Durably records that everything up to `commit` is on disk in the store:
/// the old checkpoint stays whole until the new one replaces it.
pub fn write(dir: &Path, commit: CommitNumber) -> Result<(), StoreError> {
    let temporary: PathBuf = dir.join(TEMPORARY_NAME);
    let copy = encode(commit);
    let mut file = File::create(&temporary).map_err(|e| io_error(&temporary, e))?;
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
        write(dir.path(), 41).unwrap();
        write(dir.path(), 42).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(42));
        let path = dir.path().join(FILE_NAME);
        let good = std::fs::read(&path).unwrap();
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            std::fs::write(&path, &bad).unwrap();
            assert_eq!(read(dir.path()).unwrap(), Some(42), "byte {at}");
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
}
