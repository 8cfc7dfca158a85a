//! The journal: the embedded store's write-ahead log, and what makes an
//! answer durable.
//!
//! Every commit is appended as one record with one `pwrite` and one
//! `fdatasync` before any answer that rests on it is sent. sled keeps the
//! same writes in its own tree, but sled 0.34 only reaches the disk through
//! `sync_file_range`, and between two of its flushes it may rewrite log
//! segments that were already on disk; so sled's files are never trusted
//! after an unclean stop. The journal, with the base copy it continues
//! (see [`super::base`]), is what the store is rebuilt from: it keeps every
//! commit since that copy.
//!
//! ## On disk
//!
//! `journal/` holds segments named `0000000000000001.wal`, `…02.wal`, in
//! order. Each segment is created at its full size filled with zeros and
//! synced, with the directory, before its first record is written: a record's
//! `fdatasync` then never has to write file metadata (the size does not
//! change), and the segment's name is already durable. The next segment is
//! prepared in the background, so rolling over costs nothing on the critical
//! path. A record never spans two segments. Segments are removed only from
//! the front, once a base copy holds all their commits.
//!
//! A record is one slot, 8-byte aligned:
//!
//! ```text
//! header A (32 bytes) | header B (32 bytes) | payload A | pad | payload B | pad
//! header = magic "MAJ2" (u32) | payload length (u32) | commit (u64)
//!        | first commit of its write (u64) | crc32 of the payload (u32)
//!        | crc32 of the 28 bytes before (u32)
//! ```
//!
//! (Journals written before the write's first commit was recorded use magic
//! "MAJ1" and 24-byte headers without it; they are still read.)
//!
//! Both copies are written by the same `pwrite`. The copies are what tell a
//! torn write from damage: a write the power cut tore was never acknowledged,
//! and then both copies are bad; one damaged byte (a bad sector, a flipped
//! bit) leaves the other copy whole, and the record is read from it. A disk
//! with a write-back cache may keep any of the pages of an unsynced write and
//! drop others, so a torn record may be followed by later records *of the
//! same write*; the first commit of its write, in every header, tells those
//! apart from records written after a sync. So at start-up:
//!
//! - a slot with a valid header and a valid payload is a record; commits must
//!   follow each other without a gap;
//! - all zeros end a segment's data;
//! - a slot with no valid copy (or zeros) where commit `e` belongs is a torn
//!   write if every valid record after it anywhere in the journal belongs to
//!   a write that began at or before `e`: none of them was acknowledged, so
//!   they are cut off and their bytes zeroed (and synced) before anything new
//!   is written. A record after it from a later write proves that `e` was
//!   synced: the journal is damaged behind its last write, and start-up
//!   refuses, naming where.

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
const SEGMENT_SUFFIX: &str = ".wal";

/// A header layout: the current one, and the one journals were first
/// written in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Format {
    magic: u32,
    header_bytes: usize,
}

const CURRENT: Format = Format {
    magic: u32::from_le_bytes(*b"MAJ2"),
    header_bytes: 32,
};
const FIRST: Format = Format {
    magic: u32::from_le_bytes(*b"MAJ1"),
    header_bytes: 24,
};

/// One commit read back from the journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalRecord {
    /// The commit's number.
    pub commit: CommitNumber,
    /// The commit's encoded batch.
    pub payload: Vec<u8>,
}

/// A header whose own checksum holds.
#[derive(Clone, Copy, Debug)]
struct Header {
    format: Format,
    len: usize,
    commit: CommitNumber,
    /// The first commit of the write that carried this record; `None` in
    /// journals of the first format.
    write_first: Option<CommitNumber>,
    payload_crc: u32,
}

impl Header {
    /// The whole slot: two headers, two padded copies.
    fn slot_bytes(&self) -> usize {
        2 * self.format.header_bytes + 2 * padded(self.len)
    }

    /// The first commit of the write that carried this record. The first
    /// format did not record it: each record then counts as its own write,
    /// so any record after a bad slot proves damage, as it did when that
    /// format was written.
    fn write(&self) -> CommitNumber {
        self.write_first.unwrap_or(self.commit)
    }
}

/// The bytes a payload of `len` bytes takes with its padding.
fn padded(len: usize) -> usize {
    len.div_ceil(8) * 8
}

/// Largest payload one record may carry in segments of `segment_bytes`.
pub fn payload_max(segment_bytes: u64) -> usize {
    let usable = usize::try_from(segment_bytes).unwrap_or(usize::MAX) - 2 * CURRENT.header_bytes;
    usable / 2 / 8 * 8
}

fn encode_header(len: u32, commit: CommitNumber, write_first: CommitNumber, crc: u32) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    bytes[0..4].copy_from_slice(&CURRENT.magic.to_le_bytes());
    bytes[4..8].copy_from_slice(&len.to_le_bytes());
    bytes[8..16].copy_from_slice(&commit.to_le_bytes());
    bytes[16..24].copy_from_slice(&write_first.to_le_bytes());
    bytes[24..28].copy_from_slice(&crc.to_le_bytes());
    let own = crc32fast::hash(&bytes[0..28]);
    bytes[28..32].copy_from_slice(&own.to_le_bytes());
    bytes
}

/// Appends the slot of one record, written by the write that begins with
/// commit `write_first`, to `out`.
fn encode_slot(commit: CommitNumber, write_first: CommitNumber, payload: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let head = encode_header(len, commit, write_first, crc32fast::hash(payload));
    let pad = padded(payload.len()) - payload.len();
    out.extend_from_slice(&head);
    out.extend_from_slice(&head);
    for _ in 0..2 {
        out.extend_from_slice(payload);
        out.extend(std::iter::repeat_n(0u8, pad));
    }
}

/// The header at the start of `bytes`, in either format, if whole.
fn read_header(bytes: &[u8]) -> Option<Header> {
    let word = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap_or([0; 4])))
    };
    let long = |at: usize| {
        bytes
            .get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    };
    let format = [CURRENT, FIRST]
        .into_iter()
        .find(|f| word(0) == Some(f.magic))?;
    let own_at = format.header_bytes - 4;
    if crc32fast::hash(bytes.get(..own_at)?) != word(own_at)? {
        return None;
    }
    let (write_first, crc_at) = match format == CURRENT {
        true => (Some(long(16)?), 24),
        false => (None, 16),
    };
    Some(Header {
        format,
        len: word(4)? as usize,
        commit: long(8)?,
        write_first,
        payload_crc: word(crc_at)?,
    })
}

/// Either copy of the header of the slot that starts `rest`.
fn slot_header(rest: &[u8]) -> Option<Header> {
    [CURRENT, FIRST].into_iter().find_map(|format| {
        read_header(rest).or_else(|| {
            rest.get(format.header_bytes..)
                .and_then(read_header)
                .filter(|h| h.format == format)
        })
    })
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
    let probe = rest.len().min(2 * CURRENT.header_bytes);
    if rest[..probe].iter().all(|b| *b == 0) {
        return Slot::End;
    }
    let Some(header) = slot_header(rest) else {
        return Slot::Bad;
    };
    let slot = header.slot_bytes();
    if slot > rest.len() {
        return Slot::Bad;
    }
    let first = 2 * header.format.header_bytes;
    for start in [first, first + padded(header.len)] {
        let payload = &rest[start..start + header.len];
        if crc32fast::hash(payload) == header.payload_crc {
            let record = JournalRecord {
                commit: header.commit,
                payload: payload.to_vec(),
            };
            return Slot::Record(record, at + slot);
        }
    }
    Slot::Bad
}

/// Every whole header at or after `from` (8-byte aligned) of `data`.
fn headers_in(data: &[u8], from: usize) -> impl Iterator<Item = (usize, Header)> + '_ {
    (from.div_ceil(8) * 8..data.len().saturating_sub(FIRST.header_bytes - 1))
        .step_by(8)
        .filter_map(|at| read_header(&data[at..]).map(|h| (at, h)))
}

/// Whether whole headers found after a slot where nothing is whole are
/// leftovers of the same torn write: a write that was never synced, so that
/// none of it was acknowledged. `expected` is the commit that belongs in the
/// bad slot, when a record before it says so. Every leftover must come from
/// one write, begun at or before that commit (or, with nothing before it,
/// before the first leftover's own commit); a record of a later write proves
/// the bad slot was synced, and so is damage.
fn torn_leftovers(later: &[Header], expected: Option<CommitNumber>) -> bool {
    let Some(first) = later.first() else {
        return true;
    };
    let bound = expected.unwrap_or(first.commit.saturating_sub(1));
    later.iter().all(|h| h.write() == first.write()) && first.write() <= bound
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

/// One segment as recovery found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Its number (the file name).
    pub number: u64,
    /// Bytes of records in it.
    pub used: u64,
    /// Its last commit, if it holds any.
    pub last_commit: Option<CommitNumber>,
}

/// What the journal held at start-up, checked whole.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Every segment, in order.
    pub segments: Vec<SegmentInfo>,
    /// The first commit it holds.
    pub first_commit: Option<CommitNumber>,
    /// The last commit it holds.
    pub last_commit: Option<CommitNumber>,
    /// Where a torn write was cut off (segment number, byte), if one was.
    pub torn: Option<(u64, u64)>,
}

/// Reads every segment of the journal in `dir`, checking that commits follow
/// each other and telling a torn write (cut off: its bytes are zeroed and
/// synced, so nothing after the cut can be read again) from damage (an
/// error naming the segment and offset). Records are not kept: read them
/// with [`read_records`].
pub fn recover(dir: &Path) -> Result<Recovered, StoreError> {
    let mut recovered = Recovered::default();
    if !dir.exists() {
        return Ok(recovered);
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
    for (i, (number, path)) in segments.iter().enumerate() {
        let data = read_all(path)?;
        let mut info = SegmentInfo {
            number: *number,
            used: 0,
            last_commit: None,
        };
        let mut at = 0;
        while let Slot::Record(record, next) = read_slot(&data, at) {
            if let Some(last) = recovered.last_commit
                && record.commit != last + 1
            {
                return Err(StoreError::Corrupt(format!(
                    "journal {} at byte {at}: commit {} follows commit {last}",
                    path.display(),
                    record.commit,
                )));
            }
            recovered.first_commit.get_or_insert(record.commit);
            recovered.last_commit = Some(record.commit);
            info.last_commit = Some(record.commit);
            at = next;
            info.used = at as u64;
        }
        recovered.segments.push(info);
        if data[at..].iter().all(|b| *b == 0) {
            // The segment's data ends here; the next commit is in the next.
            continue;
        }
        check_torn(
            &segments[i..],
            &data,
            at,
            recovered.last_commit.map(|c| c + 1),
        )?;
        cut_torn_write(&segments[i..], at)?;
        tracing::warn!(
            segment = %path.display(),
            byte = at,
            last_commit = recovered.last_commit.unwrap_or(0),
            "cut a torn write off the end of the journal (interrupted by a power cut \
             or a crash, never acknowledged)"
        );
        recovered.torn = Some((*number, at as u64));
        recovered
            .segments
            .extend(segments[i + 1..].iter().map(|(number, _)| SegmentInfo {
                number: *number,
                used: 0,
                last_commit: None,
            }));
        return Ok(recovered);
    }
    Ok(recovered)
}

/// Refuses, naming where, when the bytes at `at` of the first of `segments`
/// (whose content is `data`) are not a torn write: a record written after a
/// sync follows them.
fn check_torn(
    segments: &[(u64, PathBuf)],
    data: &[u8],
    at: usize,
    expected: Option<CommitNumber>,
) -> Result<(), StoreError> {
    let mut later: Vec<(PathBuf, usize, Header)> = headers_in(data, at)
        .map(|(byte, h)| (segments[0].1.clone(), byte, h))
        .collect();
    for (_, path) in &segments[1..] {
        let bytes = read_all(path)?;
        later.extend(headers_in(&bytes, 0).map(|(byte, h)| (path.clone(), byte, h)));
    }
    let headers: Vec<Header> = later.iter().map(|(_, _, h)| *h).collect();
    let Some((path, byte, _)) = later
        .first()
        .filter(|_| !torn_leftovers(&headers, expected))
    else {
        return Ok(());
    };
    Err(StoreError::Corrupt(format!(
        "journal {} is damaged at byte {at}, before records written after it was \
         synced ({} at byte {byte})",
        segments[0].1.display(),
        path.display()
    )))
}

/// Zeroes everything from byte `at` of the first of `segments` to the end of
/// the last, and syncs each: a torn write's leftovers are never read again,
/// and new records can follow the last whole one.
fn cut_torn_write(segments: &[(u64, PathBuf)], at: usize) -> Result<(), StoreError> {
    for (n, (_, path)) in segments.iter().enumerate() {
        let from = if n == 0 { at as u64 } else { 0 };
        if n > 0 && read_all(path)?.iter().all(|b| *b == 0) {
            continue;
        }
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| io_error(path, e))?;
        let len = file.metadata().map_err(|e| io_error(path, e))?.len();
        write_zeros(&file, path, from, len)?;
        file.sync_data().map_err(|e| io_error(path, e))?;
    }
    Ok(())
}

/// Writes zeros over `from..to` of `file`, a megabyte at a time.
fn write_zeros(file: &File, path: &Path, from: u64, to: u64) -> Result<(), StoreError> {
    let zeros = vec![0u8; 1024 * 1024];
    let mut at = from;
    while at < to {
        let chunk = (to - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..chunk], at)
            .map_err(|e| io_error(path, e))?;
        at += chunk as u64;
    }
    Ok(())
}

/// Hands the records of the journal in `dir` after `after` up to and
/// including `through` to `each`, in commit order, one segment in memory at
/// a time. Every one of them must be there.
pub fn read_records(
    dir: &Path,
    after: CommitNumber,
    through: CommitNumber,
    mut each: impl FnMut(JournalRecord) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut next = after + 1;
    for (_, path) in list_segments(dir)? {
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
        return Err(StoreError::Corrupt(format!(
            "the journal no longer holds commit {next} (wanted {} to {through})",
            after + 1
        )));
    }
    Ok(())
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
    write_zeros(&file, &path, 0, bytes)?;
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
    /// Bytes of records in it.
    used: u64,
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
    /// The first and last commits staged since the last sync.
    pending_commits: Option<(CommitNumber, CommitNumber)>,
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
    /// Continues the journal in `dir` after recovery: the segments
    /// `recovered` found stay (a base copy releases them), and writing goes
    /// on after the last record of the last one, whose bytes from there on
    /// recovery found (or made) zero; a fresh segment is made only when
    /// there is none, or the last one is not of `segment_bytes`.
    pub fn resume(
        dir: &Path,
        segment_bytes: u64,
        recovered: &Recovered,
    ) -> Result<Journal, StoreError> {
        let created = !dir.exists();
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        if created && let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
        let mut closed: Vec<Closed> = recovered
            .segments
            .iter()
            .map(|s| Closed {
                number: s.number,
                used: s.used,
                last_commit: s.last_commit,
            })
            .collect();
        let current = match closed.pop() {
            Some(last) => match Self::reopen(dir, segment_bytes, &last)? {
                Some(current) => current,
                None => {
                    // Not of this size: an empty one is made again, a used
                    // one stays closed.
                    let number = if last.last_commit.is_some() {
                        let number = last.number + 1;
                        closed.push(last);
                        number
                    } else {
                        last.number
                    };
                    Current {
                        number,
                        file: create_segment(dir, number, segment_bytes)?,
                        offset: 0,
                        last_commit: None,
                    }
                }
            },
            None => Current {
                number: 1,
                file: create_segment(dir, 1, segment_bytes)?,
                offset: 0,
                last_commit: None,
            },
        };
        let next = current.number + 1;
        Ok(Journal {
            dir: dir.to_owned(),
            segment_bytes,
            inner: Mutex::new(Inner {
                current,
                closed,
                preparer: Some(Preparer::start(dir.to_owned(), next, segment_bytes)),
                pending: Vec::new(),
                pending_commits: None,
                pins: Vec::new(),
            }),
        })
    }

    /// The last segment, opened to go on writing after its last record, if
    /// it has its full size.
    fn reopen(
        dir: &Path,
        segment_bytes: u64,
        last: &Closed,
    ) -> Result<Option<Current>, StoreError> {
        let path = dir.join(segment_name(last.number));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        let size = file.metadata().map_err(|e| io_error(&path, e))?.len();
        Ok((size == segment_bytes).then_some(Current {
            number: last.number,
            file,
            offset: last.used,
            last_commit: last.last_commit,
        }))
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
        let first = inner.pending_commits.map_or(commit, |(first, _)| first);
        encode_slot(commit, first, payload, &mut inner.pending);
        inner.pending_commits = Some((first, commit));
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
        current.last_commit = inner.pending_commits.take().map(|(_, last)| last);
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
            used: previous.offset,
            last_commit: previous.last_commit,
        });
        inner.preparer = Some(Preparer::start(
            self.dir.clone(),
            number + 1,
            self.segment_bytes,
        ));
        Ok(())
    }

    /// Bytes of records the journal holds after commit `after` (whole
    /// segments, as they are released): what rebuilding from a base copy
    /// at `after` would replay.
    pub fn bytes_after(&self, after: CommitNumber) -> Result<u64, StoreError> {
        let inner = self.lock()?;
        let closed: u64 = inner
            .closed
            .iter()
            .filter(|c| c.last_commit.is_some_and(|last| last > after))
            .map(|c| c.used)
            .sum();
        Ok(closed + inner.current.offset)
    }

    /// Removes closed segments from the front while every commit in them is
    /// at or below `commit` (a base copy holds them now). The segment being
    /// written stays, and so does every segment after one that must stay, so
    /// the numbers left have no gap.
    pub fn release_through(&self, commit: CommitNumber) -> Result<(), StoreError> {
        let released: Vec<u64> = {
            let mut inner = self.lock()?;
            let commit = inner.pins.iter().fold(commit, |c, pin| c.min(*pin));
            let keep_from = inner
                .closed
                .iter()
                .position(|c| c.last_commit.is_some_and(|last| last > commit))
                .unwrap_or(inner.closed.len());
            inner.closed.drain(..keep_from).map(|c| c.number).collect()
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
        each: impl FnMut(JournalRecord) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        read_records(&self.dir, after, through, each)
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
