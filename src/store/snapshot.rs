//! The snapshot file: a consistent copy of the embedded store, taken while
//! the service keeps settling, and checked whole before anything is restored.
//!
//! A snapshot is taken the way a hot backup of a database with a write-ahead
//! log is: note the last durable commit (the *base*), copy every key of the
//! tree while writes go on (a fuzzy copy), then note the last commit applied
//! by the end of the copy, wait until it is durable, and append the
//! journal's records after the base up to it. Restoring loads the copy and
//! applies those records in order, which leaves exactly the state of the
//! last one: every write acknowledged before the snapshot began is in it,
//! and no commit is half there.
//!
//! ```text
//! "MEDASSIST-SNAPSHOT\n"                         19 bytes
//! frames: kind (1 byte) | length (u32 LE) | body
//!   'H' header:  format (u32) | base commit (u64) | taken at (i64, µs since the epoch)
//!   'K' entry:   key length (u16) | key | value
//!   'J' record:  commit (u64) | the journal record's payload
//!   'E' end:     entries (u64) | records (u64) | last commit (u64)
//! SHA-256 of every byte before it                32 bytes
//! ```
//!
//! [`check`] reads a file through once and refuses it, saying why, if
//! anything is wrong: the magic, a frame, the order of frames, the counts,
//! the digest, or bytes after it. Only a file that passes is restored.

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

use super::{CommitNumber, StoreError};

const MAGIC: &[u8] = b"MEDASSIST-SNAPSHOT\n";
const FORMAT: u32 = 1;
const DIGEST_BYTES: usize = 32;
/// Largest frame body: a journal record is at most half a segment.
const FRAME_BYTES_MAX: usize = 64 * 1024 * 1024;

/// What a snapshot holds, from its header and end frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotSummary {
    /// The last commit durable when the snapshot began.
    pub base_commit: CommitNumber,
    /// The commit the restored store will hold.
    pub last_commit: CommitNumber,
    /// Key-value entries copied from the tree.
    pub entries: u64,
    /// Journal records after the base.
    pub records: u64,
    /// When it was taken, in microseconds since the Unix epoch.
    pub taken_at_micros: i64,
}

/// Writes a snapshot's bytes, hashing them as they go.
pub struct SnapshotWriter<W: Write> {
    out: W,
    digest: Sha256,
    entries: u64,
    records: u64,
}

impl<W: Write> SnapshotWriter<W> {
    /// Starts a snapshot whose base is `base_commit`.
    pub fn start(out: W, base_commit: CommitNumber, taken_at_micros: i64) -> io::Result<Self> {
        let mut writer = SnapshotWriter {
            out,
            digest: Sha256::new(),
            entries: 0,
            records: 0,
        };
        writer.put(MAGIC)?;
        let mut header = Vec::with_capacity(20);
        header.extend_from_slice(&FORMAT.to_le_bytes());
        header.extend_from_slice(&base_commit.to_le_bytes());
        header.extend_from_slice(&taken_at_micros.to_le_bytes());
        writer.frame(b'H', &[&header])?;
        Ok(writer)
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.digest.update(bytes);
        self.out.write_all(bytes)
    }

    fn frame(&mut self, kind: u8, parts: &[&[u8]]) -> io::Result<()> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > FRAME_BYTES_MAX {
            return Err(io::Error::other("a snapshot frame is too large"));
        }
        self.put(&[kind])?;
        self.put(&(len as u32).to_le_bytes())?;
        for part in parts {
            self.put(part)?;
        }
        Ok(())
    }

    /// One key of the tree with its value.
    pub fn entry(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        let key_len = u16::try_from(key.len())
            .map_err(|_| io::Error::other("a key is longer than a snapshot holds"))?;
        self.entries += 1;
        self.frame(b'K', &[&key_len.to_le_bytes(), key, value])
    }

    /// One journal record after the base.
    pub fn record(&mut self, commit: CommitNumber, payload: &[u8]) -> io::Result<()> {
        self.records += 1;
        self.frame(b'J', &[&commit.to_le_bytes(), payload])
    }

    /// Key-value entries written so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Ends the snapshot at `last_commit` and writes its digest.
    pub fn finish(mut self, last_commit: CommitNumber) -> io::Result<W> {
        let mut end = Vec::with_capacity(24);
        end.extend_from_slice(&self.entries.to_le_bytes());
        end.extend_from_slice(&self.records.to_le_bytes());
        end.extend_from_slice(&last_commit.to_le_bytes());
        self.frame(b'E', &[&end])?;
        let digest = self.digest.finalize_reset();
        self.out.write_all(&digest)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// One item of a snapshot, as [`read`] hands them out.
#[derive(Debug)]
pub enum Item {
    /// A key of the tree with its value.
    Entry(Vec<u8>, Vec<u8>),
    /// A journal record after the base.
    Record(CommitNumber, Vec<u8>),
}

fn damaged(why: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("the snapshot is damaged or incomplete: {why}"))
}

/// Reads exactly `buf.len()` bytes, hashing them.
fn take<R: Read>(input: &mut R, digest: &mut Sha256, buf: &mut [u8]) -> Result<(), StoreError> {
    input.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => damaged("it ends too soon (truncated?)"),
        // What a sealed snapshot's decryption says of a chunk that fails
        // its authentication (see `crate::seal::open`).
        io::ErrorKind::InvalidData => damaged(format!("it fails its encryption's check ({e})")),
        _ => StoreError::Io(format!("cannot read the snapshot: {e}")),
    })?;
    digest.update(&*buf);
    Ok(())
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]))
}

/// Reads a whole snapshot, handing each item to `each` in order, and checks
/// its structure, counts and digest. `each` sees items before the digest is
/// known: [`check`] passes a no-op so nothing is written from an unchecked file.
pub fn read<R: Read>(
    mut input: R,
    mut each: impl FnMut(Item) -> Result<(), StoreError>,
) -> Result<SnapshotSummary, StoreError> {
    let mut digest = Sha256::new();
    let mut magic = vec![0u8; MAGIC.len()];
    take(&mut input, &mut digest, &mut magic)?;
    if magic != MAGIC {
        return Err(damaged("it does not start as a medassist snapshot"));
    }
    let mut summary = None;
    let (mut entries, mut records) = (0u64, 0u64);
    let mut previous_record: Option<CommitNumber> = None;
    loop {
        let mut head = [0u8; 5];
        take(&mut input, &mut digest, &mut head)?;
        let len = u32::from_le_bytes(head[1..5].try_into().unwrap_or([0; 4])) as usize;
        if len > FRAME_BYTES_MAX {
            return Err(damaged(format!("a frame claims {len} bytes")));
        }
        let mut body = vec![0u8; len];
        take(&mut input, &mut digest, &mut body)?;
        match (head[0], &mut summary) {
            (b'H', None) if len == 20 => {
                let format = u32::from_le_bytes(body[0..4].try_into().unwrap_or([0; 4]));
                if format != FORMAT {
                    return Err(damaged(format!("unknown format {format}")));
                }
                summary = Some(SnapshotSummary {
                    base_commit: u64_at(&body, 4),
                    last_commit: 0,
                    entries: 0,
                    records: 0,
                    taken_at_micros: u64_at(&body, 12) as i64,
                });
            }
            (b'K', Some(_)) if len >= 2 && records == 0 => {
                let key_len = u16::from_le_bytes([body[0], body[1]]) as usize;
                if 2 + key_len > len {
                    return Err(damaged("an entry's key runs past its frame"));
                }
                let value = body.split_off(2 + key_len);
                body.drain(..2);
                entries += 1;
                each(Item::Entry(body, value))?;
            }
            (b'J', Some(header)) if len >= 8 => {
                let commit = u64_at(&body, 0);
                let expected = previous_record.map_or(header.base_commit, |c| c) + 1;
                if commit != expected {
                    return Err(damaged(format!(
                        "record {commit} where {expected} was expected"
                    )));
                }
                previous_record = Some(commit);
                records += 1;
                each(Item::Record(commit, body.split_off(8)))?;
            }
            (b'E', Some(header)) if len == 24 => {
                let last = u64_at(&body, 16);
                if u64_at(&body, 0) != entries || u64_at(&body, 8) != records {
                    return Err(damaged("its counts do not match its contents"));
                }
                if last != previous_record.unwrap_or(header.base_commit) {
                    return Err(damaged("its last commit does not match its records"));
                }
                header.last_commit = last;
                header.entries = entries;
                header.records = records;
                break;
            }
            (kind, _) => {
                return Err(damaged(format!(
                    "unexpected frame {:?} of {len} bytes",
                    kind as char
                )));
            }
        }
    }
    let computed = digest.finalize();
    let mut stored = [0u8; DIGEST_BYTES];
    input
        .read_exact(&mut stored)
        .map_err(|_| damaged("its checksum is missing"))?;
    if computed.as_slice() != stored {
        return Err(damaged("its SHA-256 checksum does not match its contents"));
    }
    let mut extra = [0u8; 1];
    if input
        .read(&mut extra)
        .map_err(|e| StoreError::Io(e.to_string()))?
        != 0
    {
        return Err(damaged("bytes follow its checksum"));
    }
    summary.ok_or_else(|| damaged("it has no header"))
}

/// Reads a whole snapshot and checks it, writing nothing.
pub fn check<R: Read>(input: R) -> Result<SnapshotSummary, StoreError> {
    read(input, |_| Ok(()))
}

/// Where a restore reads a snapshot: opened once to check it whole, then
/// once more to install it, so nothing is written from bytes not yet
/// checked. A sealed snapshot's source decrypts it on each opening
/// ([`crate::seal::open`]), so its plaintext is never written anywhere but
/// the new data directory.
pub type Source<'a> = &'a dyn Fn() -> Result<Box<dyn Read>, StoreError>;

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut writer = SnapshotWriter::start(Vec::new(), 7, 1_764_000_000_000_000).unwrap();
        writer.entry(b"Mcommit", &9u64.to_be_bytes()).unwrap();
        writer
            .entry(b"S\0\0\0\0\0\0\0\x01", b"a settlement")
            .unwrap();
        writer.record(8, b"batch 8").unwrap();
        writer.record(9, b"batch 9").unwrap();
        writer.finish(9).unwrap()
    }

    #[test]
    fn a_snapshot_reads_back_whole() {
        let mut items = Vec::new();
        let summary = read(&sample()[..], |item| {
            items.push(item);
            Ok(())
        })
        .unwrap();
        assert_eq!(
            (
                summary.base_commit,
                summary.last_commit,
                summary.entries,
                summary.records
            ),
            (7, 9, 2, 2)
        );
        assert!(
            matches!(&items[1], Item::Entry(k, v) if k.starts_with(b"S") && v == b"a settlement")
        );
        assert!(matches!(&items[3], Item::Record(9, p) if p == b"batch 9"));
    }

    /// Proves every damaged byte and every truncation is refused by the
    /// check that runs before a restore writes anything.
    #[test]
    fn any_damage_or_truncation_is_refused() {
        let good = sample();
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x01;
            let error = check(&bad[..]).unwrap_err().to_string();
            assert!(error.contains("damaged"), "byte {at}: {error}");
        }
        for len in 0..good.len() {
            let error = check(&good[..len]).unwrap_err().to_string();
            assert!(error.contains("damaged"), "length {len}: {error}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(check(&longer[..]).is_err());
    }
}
