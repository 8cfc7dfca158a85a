//! The embedded store's audit trail on disk: append-only segment files of
//! sealed records (see [`crate::audit`]), in sequence order.
//!
//! Records reach these files with the commit that carries them: each is in
//! the commit's journal record, so it is durable with the commit's
//! `fdatasync`, and is appended here (without a sync of its own) when the
//! commit is applied. Each sync writes `synced`: the segment, byte, head
//! and commit it reached. The journal is released only up to a synced
//! commit (the files are synced before a base copy releases journal
//! segments, and at a clean stop), so after an unclean stop the files are
//! cut back to the mark and every record after it is still in the journal,
//! which opening reads again ([`AuditLog::append`] skips what is here).
//!
//! Each data directory keeps one chain, with an id drawn when the trail is
//! first made. A snapshot carries no trail (the fund's log system keeps it,
//! from `medassist audit export`): a store restored from one starts a chain
//! of its own, and records of the old chain that the snapshot's journal
//! records carry are not appended to it.
//!
//! ```text
//! audit/0000000000000001.log ...   frames: length (u32 LE) | crc32 (u32 LE) | postcard(Record)
//! audit/synced                     the mark, twice, with a crc32
//! audit/pruned                     the last record pruned (the anchor of the chain kept)
//! ```
//!
//! Segments roll at [`SEGMENT_BYTES`]. Pruning removes whole segments from
//! the front once their last record is older than the retention, after
//! writing the last removed record's head to `pruned`, so the chain stays
//! checkable from the first record kept.

use std::{
    fs::{File, OpenOptions},
    io::{BufReader, Read},
    os::unix::fs::{FileExt, OpenOptionsExt},
    path::{Path, PathBuf},
    sync::Mutex,
};

use serde::{Deserialize, Serialize};

use super::{CommitNumber, StoreError, checkpoint::sync_dir};
use crate::{
    audit::{Break, Head, Record, Verifier},
    domain::Timestamp,
};

/// A segment rolls once it holds this many bytes.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// The audit trail's directory inside the data directory.
pub const DIR: &str = "audit";
const SUFFIX: &str = ".log";
const SYNCED: &str = "synced";
const PRUNED: &str = "pruned";
/// Largest frame: a record is bounded (see [`crate::audit::DETAIL_BYTES_MAX`]).
const FRAME_BYTES_MAX: usize = 64 * 1024;

fn io_error(path: &Path, error: std::io::Error) -> StoreError {
    StoreError::Io(format!("{}: {error}", path.display()))
}

/// How far the files are synced, and where the chain stood there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Mark {
    segment: u64,
    offset: u64,
    head: Head,
    /// The last commit whose records are all in the files up to `offset`.
    commit: CommitNumber,
}

/// Writes `value` to `dir/name` as two checksummed copies, beside and
/// renamed into place, synced.
fn write_mark<T: Serialize>(dir: &Path, name: &str, value: &T) -> Result<(), StoreError> {
    let body = postcard::to_stdvec(value)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode {name}: {e}")))?;
    let mut bytes = Vec::new();
    for _ in 0..2 {
        bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        bytes.extend_from_slice(&body);
    }
    let temporary = dir.join(format!("{name}.tmp"));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(|e| io_error(&temporary, e))?;
    std::io::Write::write_all(&mut file, &bytes)
        .and_then(|()| file.sync_data())
        .map_err(|e| io_error(&temporary, e))?;
    let path = dir.join(name);
    std::fs::rename(&temporary, &path).map_err(|e| io_error(&path, e))?;
    sync_dir(dir)
}

/// Reads a mark written by [`write_mark`]: either copy that checks.
fn read_mark<T: for<'de> Deserialize<'de>>(
    dir: &Path,
    name: &str,
) -> Result<Option<T>, StoreError> {
    let path = dir.join(name);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io_error(&path, error)),
    };
    let mut at = 0;
    while let Some(head) = bytes.get(at..at + 8) {
        let len = u32::from_le_bytes(head[0..4].try_into().unwrap_or([0; 4])) as usize;
        let crc = u32::from_le_bytes(head[4..8].try_into().unwrap_or([0; 4]));
        let Some(body) = bytes.get(at + 8..at + 8 + len) else {
            break;
        };
        if crc32fast::hash(body) == crc
            && let Ok(value) = postcard::from_bytes(body)
        {
            return Ok(Some(value));
        }
        at += 8 + len;
    }
    Err(StoreError::Corrupt(format!(
        "{} is damaged: neither copy passes its checksum",
        path.display()
    )))
}

fn segment_name(number: u64) -> String {
    format!("{number:016}{SUFFIX}")
}

/// The numbered segments of `dir`, in order.
fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(error) => return Err(io_error(dir, error)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let name = entry.file_name();
        if let Some(number) = name
            .to_str()
            .and_then(|n| n.strip_suffix(SUFFIX))
            .and_then(|n| n.parse::<u64>().ok())
        {
            found.push((number, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// One frame: length, crc32, the encoded record.
fn encode_frame(record: &Record, out: &mut Vec<u8>) -> Result<(), StoreError> {
    let body = postcard::to_stdvec(record)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode an audit record: {e}")))?;
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(())
}

/// What reading a segment found at one place.
pub enum Frame {
    /// A whole record.
    Record(Box<Record>),
    /// Bytes that are not a whole record: the segment's data is damaged or
    /// torn here (at this byte).
    Damaged(u64),
}

/// Reads the frames of one segment file in order, handing each to `each`
/// until it returns false; a damaged frame ends the segment.
pub fn read_segment(
    path: &Path,
    mut each: impl FnMut(Frame) -> Result<bool, StoreError>,
) -> Result<(), StoreError> {
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    let mut input = BufReader::with_capacity(1 << 20, file);
    let mut at = 0u64;
    loop {
        let mut head = [0u8; 8];
        let mut filled = 0;
        while filled < head.len() {
            match input.read(&mut head[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(io_error(path, error)),
            }
        }
        match filled {
            0 => return Ok(()),
            8 => {}
            _ => {
                each(Frame::Damaged(at))?;
                return Ok(());
            }
        }
        let len = u32::from_le_bytes(head[0..4].try_into().unwrap_or([0; 4])) as usize;
        let crc = u32::from_le_bytes(head[4..8].try_into().unwrap_or([0; 4]));
        let mut body = vec![0u8; len.min(FRAME_BYTES_MAX)];
        let whole = len <= FRAME_BYTES_MAX && input.read_exact(&mut body).is_ok();
        let record = whole
            .then(|| crc32fast::hash(&body) == crc)
            .filter(|ok| *ok)
            .and_then(|_| postcard::from_bytes::<Record>(&body).ok());
        let frame = match record {
            Some(record) => Frame::Record(Box::new(record)),
            None => Frame::Damaged(at),
        };
        let damaged = matches!(frame, Frame::Damaged(_));
        if !each(frame)? || damaged {
            return Ok(());
        }
        at += 8 + len as u64;
    }
}

/// The segment being appended to.
struct Tail {
    segment: u64,
    file: File,
    offset: u64,
    head: Head,
    /// A segment was created since the last sync: the directory needs one.
    new_segment: bool,
    /// The last commit appended.
    commit: CommitNumber,
}

/// The audit trail of one data directory.
pub struct AuditLog {
    dir: PathBuf,
    tail: Mutex<Tail>,
    /// The commit the files were synced through when opened: the journal
    /// holds every record after it.
    synced_commit: CommitNumber,
}

impl AuditLog {
    /// Opens the trail of the data directory `data_dir` (a new one gets a
    /// chain of its own). With `cut_to_mark` (the store was not closed
    /// cleanly), everything after the last sync's mark is removed: the
    /// journal gives those records back. After a clean stop nothing is cut,
    /// so a file changed while the service was stopped stays as it was
    /// found, for `medassist audit verify` to judge.
    pub fn open(data_dir: &Path, cut_to_mark: bool) -> Result<AuditLog, StoreError> {
        let dir = data_dir.join(DIR);
        if !dir.exists() {
            std::fs::create_dir(&dir).map_err(|e| io_error(&dir, e))?;
            sync_dir(data_dir)?;
        }
        let mark = match read_mark::<Mark>(&dir, SYNCED)? {
            Some(mark) => mark,
            None => Mark {
                segment: 1,
                offset: 0,
                head: Head::new(Self::chain_of(data_dir)?),
                commit: 0,
            },
        };
        let tail = if cut_to_mark {
            Self::tail_at_mark(&dir, mark)?
        } else {
            Self::tail_after_clean_stop(&dir, mark)?
        };
        Ok(AuditLog {
            dir,
            tail: Mutex::new(tail),
            synced_commit: mark.commit,
        })
    }

    /// The chain of a trail that was never synced: its first record's, or
    /// a new one, drawn at random so that restored stores' chains differ.
    fn chain_of(data_dir: &Path) -> Result<u64, StoreError> {
        if let Some(first) = Self::first_record(data_dir)? {
            return Ok(first.chain);
        }
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes)
            .map_err(|e| StoreError::Io(format!("no randomness for an audit chain: {e}")))?;
        // Positive in a signed column, and never 0.
        Ok((u64::from_le_bytes(bytes) >> 1).max(1))
    }

    /// The first record of the trail of `data_dir`, if any.
    fn first_record(data_dir: &Path) -> Result<Option<Record>, StoreError> {
        let mut first = None;
        for path in Self::segment_paths(data_dir)? {
            read_segment(&path, |frame| {
                if let Frame::Record(record) = frame {
                    first = Some(*record);
                }
                Ok(false)
            })?;
            if first.is_some() {
                break;
            }
        }
        Ok(first)
    }

    /// The commit the files were synced through when opened: the journal
    /// must give back every record after it.
    pub fn synced_commit(&self) -> CommitNumber {
        self.synced_commit
    }

    /// After an unclean stop: everything after the mark goes.
    fn tail_at_mark(dir: &Path, mark: Mark) -> Result<Tail, StoreError> {
        for (number, path) in segments(dir)? {
            if number > mark.segment {
                std::fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
            }
        }
        let path = dir.join(segment_name(mark.segment));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        let size = file.metadata().map_err(|e| io_error(&path, e))?.len();
        if size > mark.offset {
            file.set_len(mark.offset).map_err(|e| io_error(&path, e))?;
            file.sync_all().map_err(|e| io_error(&path, e))?;
        } else if size < mark.offset {
            tracing::error!(
                segment = %path.display(),
                size,
                synced = mark.offset,
                "the audit trail is shorter than was synced: run medassist audit verify"
            );
        }
        Ok(Tail {
            segment: mark.segment,
            file,
            offset: size.min(mark.offset),
            head: mark.head,
            new_segment: true,
            commit: mark.commit,
        })
    }

    /// After a clean stop everything was synced: the tail is the last
    /// segment's end, and the head its last record.
    fn tail_after_clean_stop(dir: &Path, mark: Mark) -> Result<Tail, StoreError> {
        let (segment, path) = segments(dir)?
            .pop()
            .unwrap_or((mark.segment, dir.join(segment_name(mark.segment))));
        let mut head = mark.head;
        if !path.exists() {
            File::create(&path).map_err(|e| io_error(&path, e))?;
        }
        read_segment(&path, |frame| {
            if let Frame::Record(record) = frame {
                head = Head {
                    chain: record.chain,
                    seq: record.seq,
                    hash: record.hash,
                };
            }
            Ok(true)
        })?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        let offset = file.metadata().map_err(|e| io_error(&path, e))?.len();
        Ok(Tail {
            segment,
            file,
            offset,
            head,
            new_segment: true,
            commit: mark.commit,
        })
    }

    /// Where the chain stands: the last record appended.
    pub fn head(&self) -> Result<Head, StoreError> {
        Ok(self.lock()?.head)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Tail>, StoreError> {
        self.tail
            .lock()
            .map_err(|_| StoreError::Poisoned("the audit trail's lock was poisoned".into()))
    }

    /// Appends the records of commit `commit`, in order; records at or
    /// before the head (already here, when the journal is read again) and
    /// records of another chain (carried by a snapshot into a restored
    /// store) are skipped. Not synced: the commit's journal record holds
    /// them.
    pub fn append(&self, commit: CommitNumber, records: &[Record]) -> Result<(), StoreError> {
        let mut tail = self.lock()?;
        tail.commit = tail.commit.max(commit);
        let mut bytes = Vec::new();
        let mut head = tail.head;
        for record in records {
            if record.chain != head.chain || record.seq <= head.seq {
                continue;
            }
            if record.seq != head.seq + 1 {
                return Err(StoreError::Corrupt(format!(
                    "audit record {} follows {} in chain {}",
                    record.seq, head.seq, head.chain
                )));
            }
            encode_frame(record, &mut bytes)?;
            head = Head {
                chain: record.chain,
                seq: record.seq,
                hash: record.hash,
            };
        }
        if bytes.is_empty() {
            return Ok(());
        }
        if tail.offset > 0 && tail.offset + bytes.len() as u64 > SEGMENT_BYTES {
            self.roll(&mut tail)?;
        }
        let path = self.dir.join(segment_name(tail.segment));
        tail.file
            .write_all_at(&bytes, tail.offset)
            .map_err(|e| io_error(&path, e))?;
        tail.offset += bytes.len() as u64;
        tail.head = head;
        Ok(())
    }

    fn roll(&self, tail: &mut Tail) -> Result<(), StoreError> {
        // The segment left behind is synced before the mark can pass it.
        tail.file.sync_data().map_err(|e| io_error(&self.dir, e))?;
        let segment = tail.segment + 1;
        let path = self.dir.join(segment_name(segment));
        tail.file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        tail.segment = segment;
        tail.offset = 0;
        tail.new_segment = true;
        Ok(())
    }

    /// Makes every record appended so far durable in these files, and marks
    /// how far: before the journal segments that hold them are released,
    /// and at a clean stop.
    pub fn sync(&self) -> Result<(), StoreError> {
        let mut tail = self.lock()?;
        let path = self.dir.join(segment_name(tail.segment));
        tail.file.sync_data().map_err(|e| io_error(&path, e))?;
        if tail.new_segment {
            sync_dir(&self.dir)?;
            tail.new_segment = false;
        }
        let mark = Mark {
            segment: tail.segment,
            offset: tail.offset,
            head: tail.head,
            commit: tail.commit,
        };
        write_mark(&self.dir, SYNCED, &mark)
    }

    /// The anchor the kept chain starts from: the last record pruned, or the
    /// start of the chain of the first record.
    pub fn anchor(data_dir: &Path) -> Result<Head, StoreError> {
        if let Some(anchor) = read_mark(&data_dir.join(DIR), PRUNED)? {
            return Ok(anchor);
        }
        Ok(Head::new(
            Self::first_record(data_dir)?.map_or(0, |r| r.chain),
        ))
    }

    /// The segments of the trail of `data_dir`, in order, for reading.
    pub fn segment_paths(data_dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
        Ok(segments(&data_dir.join(DIR))?
            .into_iter()
            .map(|(_, path)| path)
            .collect())
    }

    /// Removes whole segments from the front while their last record is
    /// older than `before` (never the segment being written), after writing
    /// the last removed record's head as the anchor of what stays. Returns
    /// how many records went.
    pub fn prune(&self, before: Timestamp) -> Result<u64, StoreError> {
        let current = self.lock()?.segment;
        let (mut anchor, mut removed, mut doomed) = (None, 0u64, Vec::new());
        for (number, path) in segments(&self.dir)? {
            if number >= current {
                break;
            }
            let (mut last, mut count) = (None, 0u64);
            read_segment(&path, |frame| {
                if let Frame::Record(record) = frame {
                    count += 1;
                    last = Some(*record);
                }
                Ok(true)
            })?;
            match last {
                Some(record) if record.event.at < before => {
                    anchor = Some(Head {
                        chain: record.chain,
                        seq: record.seq,
                        hash: record.hash,
                    });
                    removed += count;
                    doomed.push(path);
                }
                _ => break,
            }
        }
        let Some(anchor) = anchor else {
            return Ok(0);
        };
        write_mark(&self.dir, PRUNED, &anchor)?;
        for path in doomed {
            std::fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
        }
        sync_dir(&self.dir)?;
        Ok(removed)
    }

    /// Hands every record from sequence number `after` + 1 on, answered at
    /// or after `from`, to `each`, in order, until it returns false. Whole
    /// segments before both are skipped by their first record.
    pub fn scan(
        &self,
        after: u64,
        from: Timestamp,
        mut each: impl FnMut(Record) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let paths = segments(&self.dir)?;
        let mut start = 0;
        for (i, (_, path)) in paths.iter().enumerate() {
            let mut first = None;
            read_segment(path, |frame| {
                if let Frame::Record(record) = frame {
                    first = Some((record.seq, record.event.at));
                }
                Ok(false)
            })?;
            match first {
                Some((seq, at)) if seq <= after + 1 || at <= from => start = i,
                Some(_) => break,
                None => {}
            }
        }
        let mut going = true;
        for (_, path) in &paths[start..] {
            read_segment(path, |frame| {
                if let Frame::Record(record) = frame
                    && record.seq > after
                    && record.event.at >= from
                {
                    going = each(*record)?;
                }
                Ok(going)
            })?;
            if !going {
                break;
            }
        }
        Ok(())
    }
}

/// Checks the whole trail of the data directory `data_dir` (whose store is
/// not open): every segment's frames, in order, from the chain's anchor.
/// Returns the head the chain reaches and how many records were checked, or
/// where it first breaks; a damaged frame is a break at the record that
/// belongs there.
pub fn verify(data_dir: &Path) -> Result<Result<(Head, u64), Break>, StoreError> {
    let anchor = AuditLog::anchor(data_dir)?;
    let chain = anchor.chain;
    let mut verifier = Verifier::new(anchor);
    let mut broken = None;
    for path in AuditLog::segment_paths(data_dir)? {
        read_segment(&path, |frame| {
            let checked = match frame {
                Frame::Record(record) => verifier.next(&record),
                Frame::Damaged(byte) => Err(Break {
                    chain,
                    seq: verifier.head().seq + 1,
                    why: format!("{} is damaged at byte {byte}", path.display()),
                }),
            };
            match checked {
                Ok(()) => Ok(true),
                Err(error) => {
                    broken = Some(error);
                    Ok(false)
                }
            }
        })?;
        if let Some(error) = broken {
            return Ok(Err(error));
        }
    }
    Ok(Ok((verifier.head(), verifier.checked())))
}

#[cfg(test)]
mod tests {
    //! The trail's files: appended records come back in order across
    //! segments and restarts; an unclean stop cuts back to the last sync;
    //! pruning keeps the chain checkable; a changed file is found.

    use super::*;
    use crate::audit::{Event, Phase, Subject};

    fn event(n: i64) -> Event {
        Event {
            at: Timestamp::from_unix_micros(1_764_000_000_000_000 + n * 1_000_000),
            principal: "token:0123456789abcdef".into(),
            name: "auditor".into(),
            role: "auditor".into(),
            peer: Some("127.0.0.1:40000".into()),
            client_cert: None,
            call: "medassist.v1.UsageService/GetAnnualUsage".into(),
            phase: Phase::Call,
            subject: Subject::None,
            count: None,
            code: "OK".into(),
            detail: String::new(),
        }
    }

    fn sealed(head: &mut Head, from: i64, to: i64) -> Vec<Record> {
        (from..=to).map(|n| head.seal(event(n))).collect()
    }

    fn seqs(log: &AuditLog) -> Vec<u64> {
        let mut found = Vec::new();
        log.scan(0, Timestamp::from_unix_micros(0), |r| {
            found.push(r.seq);
            Ok(true)
        })
        .unwrap();
        found
    }

    /// Proves records come back in order after a clean stop, that replayed
    /// ones and another chain's are skipped, and that the chain checks whole.
    #[test]
    fn appended_records_come_back_and_replays_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let head = {
            let log = AuditLog::open(dir.path(), true).unwrap();
            let mut head = log.head().unwrap();
            let records = sealed(&mut head, 1, 20);
            log.append(1, &records[..10]).unwrap();
            log.append(2, &records[5..]).unwrap();
            let mut other = Head::new(head.chain + 1);
            log.append(3, &sealed(&mut other, 1, 3)).unwrap();
            log.sync().unwrap();
            assert_eq!(log.head().unwrap(), head);
            head
        };
        let log = AuditLog::open(dir.path(), false).unwrap();
        assert_eq!(seqs(&log), (1..=20).collect::<Vec<_>>());
        assert_eq!(log.head().unwrap(), head);
        assert_eq!(log.synced_commit(), 3);
        let (checked_head, checked) = verify(dir.path()).unwrap().unwrap();
        assert_eq!((checked_head, checked), (head, 20));
    }

    /// Proves an unclean stop cuts the files back to the last sync's mark
    /// (what follows may be torn), and the chain goes on from there.
    #[test]
    fn an_unclean_stop_cuts_back_to_the_last_sync() {
        let dir = tempfile::tempdir().unwrap();
        let (synced, later) = {
            let log = AuditLog::open(dir.path(), true).unwrap();
            let mut head = log.head().unwrap();
            let first = sealed(&mut head, 1, 5);
            let synced = head;
            let later = sealed(&mut head, 6, 9);
            log.append(1, &first).unwrap();
            log.sync().unwrap();
            log.append(2, &later).unwrap();
            (synced, later)
        };
        let log = AuditLog::open(dir.path(), true).unwrap();
        assert_eq!(log.head().unwrap(), synced);
        assert_eq!(
            log.synced_commit(),
            1,
            "the journal gives back what follows"
        );
        assert_eq!(seqs(&log), (1..=5).collect::<Vec<_>>());
        log.append(2, &later).unwrap();
        assert_eq!(seqs(&log), (1..=9).collect::<Vec<_>>());
    }

    /// Proves pruning removes whole old segments and the rest still checks
    /// from the anchor it leaves.
    #[test]
    fn pruning_keeps_the_chain_checkable() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path(), true).unwrap();
        let mut head = log.head().unwrap();
        // Three segments' worth, one commit each, rolled by hand.
        for (commit, (from, to)) in [(1, 10), (11, 20), (21, 30)].into_iter().enumerate() {
            log.append(commit as u64 + 1, &sealed(&mut head, from, to))
                .unwrap();
            let mut tail = log.lock().unwrap();
            log.roll(&mut tail).unwrap();
        }
        log.sync().unwrap();
        let removed = log.prune(event(15).at).unwrap();
        assert_eq!(removed, 10, "only the first segment is wholly older");
        assert_eq!(seqs(&log), (11..=30).collect::<Vec<_>>());
        drop(log);
        let (reached, checked) = verify(dir.path()).unwrap().unwrap();
        assert_eq!((reached.seq, checked), (30, 20));
    }

    /// Proves a record changed in a stopped store's files is found at its
    /// sequence number.
    #[test]
    fn a_changed_record_is_found() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = AuditLog::open(dir.path(), true).unwrap();
            let mut head = log.head().unwrap();
            log.append(1, &sealed(&mut head, 1, 8)).unwrap();
            log.sync().unwrap();
        }
        let path = AuditLog::segment_paths(dir.path()).unwrap().remove(0);
        let mut records = Vec::new();
        read_segment(&path, |frame| {
            if let Frame::Record(record) = frame {
                records.push(*record);
            }
            Ok(true)
        })
        .unwrap();
        records[3].event.code = "PERMISSION_DENIED".into();
        let mut bytes = Vec::new();
        for record in &records {
            encode_frame(record, &mut bytes).unwrap();
        }
        std::fs::write(&path, &bytes).unwrap();
        let broken = verify(dir.path()).unwrap().unwrap_err();
        assert_eq!(broken.seq, 4, "{broken}");
    }
}
