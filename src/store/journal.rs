//! The journal: the embedded store's write-ahead log, and what makes an
//! answer durable.
//!
//! Every commit is appended as one record with one `pwrite` and one
//! `fdatasync` before any answer that rests on it is sent. sled keeps the
//! same writes in its own tree, but sled 0.34 only reaches the disk through
//! `sync_file_range`, which neither writes the file's metadata nor flushes
//! the drive's cache; so sled is made durable separately, off the critical
//! path, by the checkpoint (see [`super::checkpoint`]), and the journal only
//! has to hold the commits since the last checkpoint.
//!
//! ## On disk
//!
//! `journal/` holds segments named `0000000000000001.wal`, `…02.wal`, in
//! order. Each segment is created at its full size filled with zeros and
//! synced, with the directory, before its first record is written: a record's
//! `fdatasync` then never has to write file metadata (the size does not
//! change), and the segment's name is already durable. The next segment is
//! prepared in the background, so rolling over costs nothing on the critical
//! path. A record never spans two segments.
//!
//! A record is one slot, 8-byte aligned:
//!
//! ```text
//! header A (24 bytes) | header B (24 bytes) | payload A | pad | payload B | pad
//! header = magic "MAJ1" (u32) | payload length (u32) | commit (u64)
//!        | crc32 of the payload (u32) | crc32 of the 20 bytes before (u32)
//! ```
//!
//! Both copies are written by the same `pwrite`. The copies are what tell a
//! torn write from damage: a write the power cut tore was never acknowledged,
//! and then both copies are bad and nothing valid follows; one damaged byte
//! (a bad sector, a flipped bit) leaves the other copy whole, and the record
//! is read from it. So at start-up:
//!
//! - a slot with a valid header and a valid payload is a record; commits must
//!   follow each other without a gap;
//! - all zeros end a segment's data;
//! - a slot with no valid copy is a torn tail only if no valid record follows
//!   it anywhere in the journal: it is cut off. If one follows, the journal is
//!   damaged behind its last write, and start-up refuses, naming where.

use std::{
    fs::{File, OpenOptions},
    io::{self, Read},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::{Arc, Condvar, Mutex},
    thread::JoinHandle,
};

use super::{CommitNumber, StoreError, checkpoint::sync_dir};

/// Size of a segment when none is configured: about 40,000 settlements.
pub const SEGMENT_BYTES_DEFAULT: u64 = 16 * 1024 * 1024;
/// Smallest segment allowed (tests use small ones to roll over often).
pub const SEGMENT_BYTES_MIN: u64 = 64 * 1024;
const MAGIC: u32 = u32::from_le_bytes(*b"MAJ1");
const HEADER_BYTES: usize = 24;
const SEGMENT_SUFFIX: &str = ".wal";

/// One commit read back from the journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalRecord {
    /// The commit's number.
    pub commit: CommitNumber,
    /// The commit's encoded batch.
    pub payload: Vec<u8>,
}

/// The bytes a payload of `len` bytes takes with its padding.
fn padded(len: usize) -> usize {
    len.div_ceil(8) * 8
}

/// The whole slot of a payload of `len` bytes: two headers, two copies.
fn slot_bytes(len: usize) -> usize {
    2 * HEADER_BYTES + 2 * padded(len)
}

/// Largest payload one record may carry in segments of `segment_bytes`.
pub fn payload_max(segment_bytes: u64) -> usize {
    let usable = usize::try_from(segment_bytes).unwrap_or(usize::MAX) - 2 * HEADER_BYTES;
    usable / 2 / 8 * 8
}

fn header(len: u32, commit: CommitNumber, payload_crc: u32) -> [u8; HEADER_BYTES] {
    let mut bytes = [0u8; HEADER_BYTES];
    bytes[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    bytes[4..8].copy_from_slice(&len.to_le_bytes());
    bytes[8..16].copy_from_slice(&commit.to_le_bytes());
    bytes[16..20].copy_from_slice(&payload_crc.to_le_bytes());
    let own = crc32fast::hash(&bytes[0..20]);
    bytes[20..24].copy_from_slice(&own.to_le_bytes());
    bytes
}

/// Appends the slot of one record to `out`.
fn encode_slot(commit: CommitNumber, payload: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let head = header(len, commit, crc32fast::hash(payload));
    let pad = padded(payload.len()) - payload.len();
    out.extend_from_slice(&head);
    out.extend_from_slice(&head);
    for _ in 0..2 {
        out.extend_from_slice(payload);
        out.extend(std::iter::repeat_n(0u8, pad));
    }
}

/// A header whose own checksum holds: (payload length, commit, payload crc).
fn read_header(bytes: &[u8]) -> Option<(usize, CommitNumber, u32)> {
    let bytes = bytes.get(..HEADER_BYTES)?;
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or([0; 4]));
    if word(0) != MAGIC || crc32fast::hash(&bytes[0..20]) != word(20) {
        return None;
    }
    let commit = u64::from_le_bytes(bytes[8..16].try_into().unwrap_or([0; 8]));
    Some((word(4) as usize, commit, word(16)))
}

/// What is at `at` in a segment's bytes.
enum Slot {
    /// A record, and where the next slot starts.
    Record(JournalRecord, usize),
    /// Zeros: this segment's data ends here.
    End,
    /// Neither copy of a record is whole.
    Bad,
}

fn read_slot(data: &[u8], at: usize) -> Slot {
    let Some(rest) = data.get(at..) else {
        return Slot::End;
    };
    if rest.len() < 2 * HEADER_BYTES {
        return if rest.iter().all(|b| *b == 0) {
            Slot::End
        } else {
            Slot::Bad
        };
    }
    if rest[..2 * HEADER_BYTES].iter().all(|b| *b == 0) {
        return Slot::End;
    }
    let Some((len, commit, crc)) =
        read_header(&rest[..HEADER_BYTES]).or_else(|| read_header(&rest[HEADER_BYTES..]))
    else {
        return Slot::Bad;
    };
    if slot_bytes(len) > rest.len() {
        return Slot::Bad;
    }
    let first = 2 * HEADER_BYTES;
    let second = first + padded(len);
    for start in [first, second] {
        let payload = &rest[start..start + len];
        if crc32fast::hash(payload) == crc {
            let record = JournalRecord {
                commit,
                payload: payload.to_vec(),
            };
            return Slot::Record(record, at + slot_bytes(len));
        }
    }
    Slot::Bad
}

/// True when a whole record header (either copy) starts anywhere at or after
/// `from` with a commit above `after`: then the bad slot before it is damage,
/// not a torn last write.
fn valid_record_after(data: &[u8], from: usize, after: CommitNumber) -> bool {
    let mut at = from.div_ceil(8) * 8;
    while at + HEADER_BYTES <= data.len() {
        if read_header(&data[at..]).is_some_and(|(_, commit, _)| commit > after) {
            return true;
        }
        at += 8;
    }
    false
}

fn segment_name(number: u64) -> String {
    format!("{number:016}{SEGMENT_SUFFIX}")
}

/// The numbered segment files of `dir`, in order.
fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let mut segments = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| io_error(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let name = entry.file_name();
        let Some(number) = name
            .to_str()
            .and_then(|n| n.strip_suffix(SEGMENT_SUFFIX))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        segments.push((number, entry.path()));
    }
    segments.sort();
    Ok(segments)
}

fn io_error(path: &Path, error: io::Error) -> StoreError {
    StoreError::Io(format!("{}: {error}", path.display()))
}

fn read_all(path: &Path) -> Result<Vec<u8>, StoreError> {
    let mut data = Vec::new();
    File::open(path)
        .and_then(|mut file| file.read_to_end(&mut data))
        .map_err(|e| io_error(path, e))?;
    Ok(data)
}

/// Reads every record of the journal in `dir`, in commit order, checking
/// that commits follow each other and telling a torn tail (cut off) from
/// damage (an error naming the segment and offset).
pub fn recover(dir: &Path) -> Result<Vec<JournalRecord>, StoreError> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let segments = list_segments(dir)?;
    for pair in segments.windows(2) {
        if pair[1].0 != pair[0].0 + 1 {
            return Err(StoreError::Corrupt(format!(
                "journal segment {} is missing (found {} and {})",
                segment_name(pair[0].0 + 1),
                segment_name(pair[0].0),
                segment_name(pair[1].0)
            )));
        }
    }
    let mut records: Vec<JournalRecord> = Vec::new();
    for (i, (_, path)) in segments.iter().enumerate() {
        let data = read_all(path)?;
        let mut at = 0;
        loop {
            match read_slot(&data, at) {
                Slot::Record(record, next) => {
                    if let Some(last) = records.last()
                        && record.commit != last.commit + 1
                    {
                        return Err(StoreError::Corrupt(format!(
                            "journal {} at byte {at}: commit {} follows commit {}",
                            path.display(),
                            record.commit,
                            last.commit
                        )));
                    }
                    records.push(record);
                    at = next;
                }
                Slot::End => {
                    // Zeros end a segment; records after them in the same
                    // segment mean a hole where records were.
                    let last = records.last().map_or(0, |r| r.commit);
                    if valid_record_after(&data[at..], 0, last) {
                        return Err(StoreError::Corrupt(format!(
                            "journal {} is damaged at byte {at}: zeros before commits that \
                             follow commit {last}",
                            path.display()
                        )));
                    }
                    break;
                }
                Slot::Bad => {
                    let last = records.last().map_or(0, |r| r.commit);
                    // A torn slot may keep a whole header naming its own
                    // commit; only records beyond that one prove damage.
                    let torn = read_header(&data[at..])
                        .or_else(|| data.get(at + HEADER_BYTES..).and_then(read_header))
                        .map_or(last, |(_, commit, _)| commit.max(last));
                    let rest = data.get(at + 2 * HEADER_BYTES..).unwrap_or_default();
                    let later = std::iter::once(Ok(rest.to_vec()))
                        .chain(segments[i + 1..].iter().map(|(_, p)| read_all(p)));
                    for bytes in later {
                        if valid_record_after(&bytes?, 0, torn) {
                            return Err(StoreError::Corrupt(format!(
                                "journal {} is damaged at byte {at}, before commits that \
                                 follow commit {last}",
                                path.display()
                            )));
                        }
                    }
                    tracing::warn!(
                        segment = %path.display(),
                        byte = at,
                        last_commit = last,
                        "cut a torn record off the end of the journal (a write the power cut interrupted, never acknowledged)"
                    );
                    return Ok(records);
                }
            }
        }
    }
    Ok(records)
}

/// Creates a segment at its full size, zero-filled and synced, and syncs its
/// directory, so writing records into it never changes file metadata.
fn create_segment(dir: &Path, number: u64, bytes: u64) -> Result<File, StoreError> {
    let path = dir.join(segment_name(number));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| io_error(&path, e))?;
    let zeros = vec![0u8; 1024 * 1024];
    let mut written = 0;
    while written < bytes {
        let chunk = (bytes - written).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..chunk], written)
            .map_err(|e| io_error(&path, e))?;
        written += chunk as u64;
    }
    file.sync_all().map_err(|e| io_error(&path, e))?;
    sync_dir(dir)?;
    Ok(file)
}

/// The segment being written.
struct Current {
    number: u64,
    file: File,
    /// Where the next record goes.
    offset: u64,
    /// The last commit written to it, if any.
    last_commit: Option<CommitNumber>,
}

/// Segments no longer written to, with their last commit.
struct Closed {
    number: u64,
    last_commit: Option<CommitNumber>,
}

struct Spare {
    /// The next segment, ready, or the error preparing it met.
    ready: Option<Result<File, StoreError>>,
    stopping: bool,
}

/// Prepares the next segment in the background.
struct Preparer {
    state: Arc<(Mutex<Spare>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Preparer {
    fn start(dir: PathBuf, number: u64, bytes: u64) -> Preparer {
        let state = Arc::new((
            Mutex::new(Spare {
                ready: None,
                stopping: false,
            }),
            Condvar::new(),
        ));
        let shared = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("medassist-journal-prep".into())
            .spawn(move || {
                let prepared = create_segment(&dir, number, bytes);
                let (lock, signal) = &*shared;
                if let Ok(mut spare) = lock.lock() {
                    if !spare.stopping {
                        spare.ready = Some(prepared);
                    }
                    signal.notify_all();
                }
            })
            .ok();
        Preparer { state, thread }
    }

    /// Waits for the prepared segment.
    fn take(mut self) -> Result<File, StoreError> {
        let (lock, signal) = &*self.state;
        let mut spare = lock
            .lock()
            .map_err(|_| StoreError::Io("journal preparer panicked".into()))?;
        while spare.ready.is_none() && self.thread.is_some() {
            spare = signal
                .wait(spare)
                .map_err(|_| StoreError::Io("journal preparer panicked".into()))?;
        }
        let taken = spare.ready.take();
        drop(spare);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        taken.unwrap_or_else(|| Err(StoreError::Io("cannot start the journal preparer".into())))
    }
}

impl Drop for Preparer {
    fn drop(&mut self) {
        if let Ok(mut spare) = self.state.0.lock() {
            spare.stopping = true;
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Inner {
    current: Current,
    closed: Vec<Closed>,
    preparer: Option<Preparer>,
    /// Slots encoded and waiting for the next [`Journal::sync`].
    pending: Vec<u8>,
    pending_last: Option<CommitNumber>,
    /// Commits after which a running snapshot still needs the records.
    pins: Vec<CommitNumber>,
}

/// The journal being written: one segment at a time, the next one prepared.
pub struct Journal {
    dir: PathBuf,
    segment_bytes: u64,
    inner: Mutex<Inner>,
}

impl Journal {
    /// Starts a new journal in `dir` after recovery: every segment already
    /// there must be covered by a checkpoint, and is removed; writing starts
    /// in a fresh segment numbered after them.
    pub fn start(dir: &Path, segment_bytes: u64) -> Result<Journal, StoreError> {
        let created = !dir.exists();
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        if created && let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
        let old = list_segments(dir)?;
        let number = old.last().map_or(1, |(n, _)| n + 1);
        for (_, path) in &old {
            std::fs::remove_file(path).map_err(|e| io_error(path, e))?;
        }
        let file = create_segment(dir, number, segment_bytes)?;
        Ok(Journal {
            dir: dir.to_owned(),
            segment_bytes,
            inner: Mutex::new(Inner {
                current: Current {
                    number,
                    file,
                    offset: 0,
                    last_commit: None,
                },
                closed: Vec::new(),
                preparer: Some(Preparer::start(dir.to_owned(), number + 1, segment_bytes)),
                pending: Vec::new(),
                pending_last: None,
                pins: Vec::new(),
            }),
        })
    }

    /// Largest payload a record may carry.
    pub fn payload_max(&self) -> usize {
        payload_max(self.segment_bytes)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, StoreError> {
        self.inner
            .lock()
            .map_err(|_| StoreError::Poisoned("the journal lock was poisoned".into()))
    }

    /// Queues one commit's record for the next [`Journal::sync`].
    pub fn stage(&self, commit: CommitNumber, payload: &[u8]) -> Result<(), StoreError> {
        if payload.len() > self.payload_max() {
            return Err(StoreError::Io(format!(
                "a commit of {} bytes is larger than a journal record may be",
                payload.len()
            )));
        }
        let mut inner = self.lock()?;
        encode_slot(commit, payload, &mut inner.pending);
        inner.pending_last = Some(commit);
        Ok(())
    }

    /// Writes the staged records and waits for `fdatasync`: once this
    /// returns `Ok`, they survive a power cut. Returns the last commit
    /// written, if any was staged.
    pub fn sync(&self) -> Result<Option<CommitNumber>, StoreError> {
        let mut inner = self.lock()?;
        if inner.pending.is_empty() {
            return Ok(None);
        }
        let pending = std::mem::take(&mut inner.pending);
        if inner.current.offset + pending.len() as u64 > self.segment_bytes {
            self.roll(&mut inner)?;
        }
        if inner.current.offset + pending.len() as u64 > self.segment_bytes {
            return Err(StoreError::Io(
                "the staged commits do not fit one journal segment".into(),
            ));
        }
        let path = self.dir.join(segment_name(inner.current.number));
        let inner = &mut *inner;
        let current = &mut inner.current;
        current
            .file
            .write_all_at(&pending, current.offset)
            .and_then(|()| current.file.sync_data())
            .map_err(|e| io_error(&path, e))?;
        current.offset += pending.len() as u64;
        current.last_commit = inner.pending_last.take();
        let synced = current.last_commit;
        // Keep the buffer's capacity for the next commit.
        inner.pending = pending;
        inner.pending.clear();
        Ok(synced)
    }

    /// Moves to the prepared next segment and starts preparing the one after.
    fn roll(&self, inner: &mut Inner) -> Result<(), StoreError> {
        let number = inner.current.number + 1;
        let file = match inner.preparer.take() {
            Some(preparer) => preparer.take()?,
            None => create_segment(&self.dir, number, self.segment_bytes)?,
        };
        let previous = std::mem::replace(
            &mut inner.current,
            Current {
                number,
                file,
                offset: 0,
                last_commit: None,
            },
        );
        inner.closed.push(Closed {
            number: previous.number,
            last_commit: previous.last_commit,
        });
        inner.preparer = Some(Preparer::start(
            self.dir.clone(),
            number + 1,
            self.segment_bytes,
        ));
        Ok(())
    }

    /// Removes the closed segments whose every commit is at or below
    /// `commit` (a checkpoint holds them now). The segment being written
    /// stays.
    pub fn release_through(&self, commit: CommitNumber) -> Result<(), StoreError> {
        let released: Vec<u64> = {
            let mut inner = self.lock()?;
            let commit = inner.pins.iter().fold(commit, |c, pin| c.min(*pin));
            let (gone, kept) = std::mem::take(&mut inner.closed)
                .into_iter()
                .partition(|c| c.last_commit.is_none_or(|last| last <= commit));
            inner.closed = kept;
            gone.into_iter().map(|c: Closed| c.number).collect()
        };
        for number in &released {
            let path = self.dir.join(segment_name(*number));
            std::fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
        }
        if !released.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Keeps every record after `after` until the pin is dropped, for a
    /// snapshot that will read them back.
    pub fn pin(self: &Arc<Self>, after: CommitNumber) -> Result<JournalPin, StoreError> {
        self.lock()?.pins.push(after);
        Ok(JournalPin {
            journal: Arc::clone(self),
            after,
        })
    }

    /// Hands the records after `after` up to and including `through` to
    /// `each`, in commit order, one segment in memory at a time; all of them
    /// must be synced. For a snapshot taken while writes go on.
    pub fn each_record(
        &self,
        after: CommitNumber,
        through: CommitNumber,
        mut each: impl FnMut(JournalRecord) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut next = after + 1;
        for (_, path) in list_segments(&self.dir)? {
            if next > through {
                break;
            }
            let data = read_all(&path)?;
            let mut at = 0;
            while let Slot::Record(record, following) = read_slot(&data, at) {
                at = following;
                if record.commit < next {
                    continue;
                }
                if record.commit != next || record.commit > through {
                    break;
                }
                next += 1;
                each(record)?;
            }
        }
        if next <= through {
            return Err(StoreError::Io(format!(
                "the journal no longer holds commit {next} (wanted {} to {through})",
                after + 1
            )));
        }
        Ok(())
    }
}

/// Holds the journal's records after a commit (see [`Journal::pin`]).
pub struct JournalPin {
    journal: Arc<Journal>,
    after: CommitNumber,
}

impl Drop for JournalPin {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.journal.inner.lock()
            && let Some(at) = inner.pins.iter().position(|p| *p == self.after)
        {
            inner.pins.swap_remove(at);
        }
    }
}

#[cfg(test)]
mod tests;
