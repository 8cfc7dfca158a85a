//! The journal's promises at the byte level: what was synced comes back in
//! order; a torn write is cut off, even when a reordering disk kept later
//! pages of it; one damaged byte anywhere loses nothing; damage with records
//! of later writes behind it is refused, never read as an end.

use super::*;

const SEGMENT: u64 = SEGMENT_BYTES_MIN;

fn payload(commit: CommitNumber) -> Vec<u8> {
    // Lengths vary, so slots are not all alike and padding is exercised.
    let len = 40 + (commit as usize * 37) % 300;
    (0..len).map(|i| (commit as usize + i) as u8).collect()
}

/// A fresh journal in `dir/journal`.
fn new_journal(dir: &Path) -> (PathBuf, Journal) {
    let path = dir.join("journal");
    let journal = Journal::resume(&path, SEGMENT, &Recovered::default()).unwrap();
    (path, journal)
}

/// A journal in a fresh directory with `commits` records, written in
/// writes of `per_write` commits, each synced.
fn written_in(commits: u64, per_write: u64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (path, journal) = new_journal(dir.path());
    for first in (1..=commits).step_by(per_write as usize) {
        let last = (first + per_write - 1).min(commits);
        for commit in first..=last {
            journal.stage(commit, &payload(commit)).unwrap();
        }
        assert_eq!(journal.sync().unwrap(), Some(last));
    }
    (dir, path)
}

fn written(commits: u64) -> (tempfile::TempDir, PathBuf) {
    written_in(commits, 1)
}

/// Recovers the journal and reads back every record it holds.
fn records(path: &Path) -> Result<Vec<JournalRecord>, StoreError> {
    let recovered = recover(path)?;
    let mut found = Vec::new();
    if let (Some(first), Some(last)) = (recovered.first_commit, recovered.last_commit) {
        read_records(path, first - 1, last, |record| {
            found.push(record);
            Ok(())
        })?;
    }
    Ok(found)
}

fn commits(records: &[JournalRecord]) -> Vec<CommitNumber> {
    records.iter().map(|r| r.commit).collect()
}

fn only_segment(path: &Path) -> PathBuf {
    // The first is written; the next one may be prepared already.
    list_segments(path).unwrap()[0].1.clone()
}

/// Where each slot of a segment's bytes ends, in order.
fn slot_ends(data: &[u8]) -> Vec<usize> {
    let mut at = 0;
    let mut ends = Vec::new();
    while let Slot::Record(_, next) = read_slot(data, at) {
        ends.push(next);
        at = next;
    }
    ends
}

#[test]
fn synced_records_come_back_in_order() {
    let (_dir, path) = written(50);
    let records = records(&path).unwrap();
    assert_eq!(commits(&records), (1..=50).collect::<Vec<_>>());
    for record in &records {
        assert_eq!(record.payload, payload(record.commit));
    }
}

#[test]
fn records_roll_over_segments_and_released_ones_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (path, journal) = new_journal(dir.path());
    // Several commits per sync, as a busy ledger stages them.
    for first in (1..=600).step_by(3) {
        for commit in first..first + 3 {
            journal.stage(commit, &payload(commit)).unwrap();
        }
        journal.sync().unwrap();
    }
    assert!(list_segments(&path).unwrap().len() > 3, "rolled over");
    assert_eq!(
        commits(&records(&path).unwrap()),
        (1..=600).collect::<Vec<_>>()
    );
    let mut read = Vec::new();
    journal
        .each_record(100, 200, |record| {
            read.push(record.commit);
            Ok(())
        })
        .unwrap();
    assert_eq!(read, (101..=200).collect::<Vec<_>>());
    let before = journal.bytes_after(0).unwrap();
    journal.release_through(450).unwrap();
    assert!(
        journal.bytes_after(450).unwrap() < before,
        "released bytes no longer count"
    );
    let left = records(&path).unwrap();
    assert!(left[0].commit <= 451, "nothing above 450 released");
    assert_eq!(left.last().unwrap().commit, 600);
    assert!(
        journal.each_record(100, 200, |_| Ok(())).is_err(),
        "released commits are gone"
    );
}

/// Proves the rule for a torn last write: the power cut interrupted the
/// write of the last slot (here, every prefix of it and the zero gaps a
/// drive may leave), so neither copy is whole and nothing follows: it is cut
/// off, and every earlier record is kept.
#[test]
fn a_torn_last_write_is_cut_off() {
    let (_dir, path) = written(10);
    let segment = only_segment(&path);
    let data = std::fs::read(&segment).unwrap();
    let ends = slot_ends(&data);
    let (last_start, last_end) = (ends[8], ends[9]);
    // Until its first copy is whole, the slot is torn.
    let first_copy_end = last_start + 2 * CURRENT.header_bytes + payload(10).len();
    for kept in (last_start..first_copy_end).step_by(7) {
        let mut torn = data.clone();
        torn[kept..last_end].fill(0);
        std::fs::write(&segment, &torn).unwrap();
        let records = records(&path).unwrap();
        assert_eq!(
            commits(&records),
            (1..=9).collect::<Vec<_>>(),
            "kept {kept}"
        );
        let after = std::fs::read(&segment).unwrap();
        assert!(
            after[last_start..].iter().all(|b| *b == 0),
            "the torn bytes are zeroed"
        );
    }
    // One whole copy is a whole record: keeping it is right (it was
    // written entirely, though never acknowledged).
    let mut one_copy = data.clone();
    one_copy[first_copy_end..last_end].fill(0);
    std::fs::write(&segment, &one_copy).unwrap();
    assert_eq!(commits(&records(&path).unwrap()).len(), 10);
    // Only the middle persisted: the headers are zero, the payload is not.
    let mut torn = data.clone();
    torn[last_start..last_start + 80].fill(0);
    std::fs::write(&segment, &torn).unwrap();
    assert_eq!(commits(&records(&path).unwrap()).len(), 9);
}

/// Proves the rule for a write a reordering disk tore: commits 6 to 10 went
/// out in one write that was never synced, and the cut kept its later pages
/// but not the slot of commit 8. Records 9 and 10 follow the hole, but they
/// belong to the same write, so none of it was acknowledged: the journal
/// ends at 7, and the leftovers are zeroed so a later write can follow.
#[test]
fn leftovers_of_a_torn_write_after_its_hole_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let (path, journal) = new_journal(dir.path());
    for commit in 1..=5 {
        journal.stage(commit, &payload(commit)).unwrap();
        journal.sync().unwrap();
    }
    for commit in 6..=10 {
        journal.stage(commit, &payload(commit)).unwrap();
    }
    journal.sync().unwrap();
    drop(journal);
    let segment = only_segment(&path);
    let data = std::fs::read(&segment).unwrap();
    let ends = slot_ends(&data);
    for hole in [ends[6]..ends[7], ends[4]..ends[5]] {
        let mut torn = data.clone();
        torn[hole.clone()].fill(0);
        std::fs::write(&segment, &torn).unwrap();
        let expected = if hole.start == ends[4] { 5 } else { 7 };
        assert_eq!(
            commits(&records(&path).unwrap()),
            (1..=expected).collect::<Vec<_>>()
        );
        let recovered = recover(&path).unwrap();
        assert_eq!(
            recovered.torn, None,
            "the cut was made durable the first time"
        );
        let journal = Journal::resume(&path, SEGMENT, &recovered).unwrap();
        journal.stage(expected + 1, &payload(99)).unwrap();
        journal.sync().unwrap();
        let after = records(&path).unwrap();
        assert_eq!(
            commits(&after).last(),
            Some(&(expected + 1)),
            "the journal goes on"
        );
        drop(journal);
        for (number, path) in list_segments(&path).unwrap().into_iter().skip(1) {
            let _ = number;
            std::fs::remove_file(path).unwrap();
        }
    }
}

/// Proves a hole is damage when a record written after it was synced
/// follows: each commit here was its own synced write.
#[test]
fn a_hole_before_a_later_write_is_refused() {
    let (_dir, path) = written_in(9, 3);
    let segment = only_segment(&path);
    let data = std::fs::read(&segment).unwrap();
    let ends = slot_ends(&data);
    // Commit 5 sits in the write of 4 to 6; 7 to 9 are a later write.
    let mut bad = data.clone();
    bad[ends[3]..ends[4]].fill(0);
    std::fs::write(&segment, &bad).unwrap();
    let error = recover(&path).unwrap_err().to_string();
    assert!(error.contains("damaged at byte"), "{error}");
    assert_eq!(
        std::fs::read(&segment).unwrap(),
        bad,
        "a refusal changes nothing"
    );
}

/// Proves one damaged byte never loses a record: every byte of a small
/// journal is flipped in turn, and recovery returns every commit each time.
#[test]
fn one_damaged_byte_anywhere_loses_nothing() {
    let (_dir, path) = written(6);
    let segment = only_segment(&path);
    let data = std::fs::read(&segment).unwrap();
    let used = data.iter().rposition(|b| *b != 0).unwrap() + 1;
    for at in 0..used + 64 {
        let mut bad = data.clone();
        bad[at] ^= 0x5a;
        std::fs::write(&segment, &bad).unwrap();
        let records = records(&path).unwrap_or_else(|e| panic!("byte {at}: {e}"));
        assert_eq!(commits(&records), (1..=6).collect::<Vec<_>>(), "byte {at}");
        assert_eq!(records[5].payload, payload(6), "byte {at}");
    }
}

/// Proves damage behind the last write is refused: a slot whose both copies
/// are destroyed, with records of later writes after it, is not an end of
/// the journal; nor is the first slot of the journal.
#[test]
fn damage_before_later_records_is_refused() {
    let (_dir, path) = written(8);
    let segment = only_segment(&path);
    let data = std::fs::read(&segment).unwrap();
    let ends = slot_ends(&data);
    for (from, to) in [(ends[0], ends[1]), (0, ends[0])] {
        let mut bad = data.clone();
        bad[from..to].iter_mut().for_each(|b| *b ^= 0xff);
        std::fs::write(&segment, &bad).unwrap();
        let error = recover(&path).unwrap_err().to_string();
        assert!(error.contains("damaged at byte"), "{error}");
        // Zeroed instead of garbled (a lost sector): still refused.
        let mut zeroed = data.clone();
        zeroed[from..to].fill(0);
        std::fs::write(&segment, &zeroed).unwrap();
        assert!(recover(&path).is_err(), "a hole before later records");
    }
}

#[test]
fn a_missing_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (path, journal) = new_journal(dir.path());
    for commit in 1..=600 {
        journal.stage(commit, &payload(commit)).unwrap();
        journal.sync().unwrap();
    }
    let segments = list_segments(&path).unwrap();
    std::fs::remove_file(&segments[1].1).unwrap();
    let error = recover(&path).unwrap_err().to_string();
    assert!(error.contains("is missing"), "{error}");
}

/// Proves a resumed journal keeps what it held (a base copy has not taken
/// it yet), goes on after its last record (in the spare segment prepared
/// next, or in the last one when there is none), and releases only from
/// the front.
#[test]
fn a_resumed_journal_keeps_its_records_and_goes_on_where_it_stopped() {
    for spare in [true, false] {
        let (_dir, path) = written(5);
        if !spare {
            for (_, segment) in list_segments(&path).unwrap().into_iter().skip(1) {
                std::fs::remove_file(segment).unwrap();
            }
        }
        let recovered = recover(&path).unwrap();
        assert_eq!(
            (recovered.first_commit, recovered.last_commit),
            (Some(1), Some(5))
        );
        let journal = Journal::resume(&path, SEGMENT, &recovered).unwrap();
        journal.stage(6, &payload(6)).unwrap();
        journal.sync().unwrap();
        assert_eq!(
            commits(&records(&path).unwrap()),
            (1..=6).collect::<Vec<_>>()
        );
        let numbers = |path: &Path| -> Vec<u64> {
            list_segments(path)
                .unwrap()
                .into_iter()
                .map(|(n, _)| n)
                .collect()
        };
        drop(journal);
        assert_eq!(
            numbers(&path),
            if spare { vec![1, 2, 3] } else { vec![1, 2] }
        );
        let journal = Journal::resume(&path, SEGMENT, &recover(&path).unwrap()).unwrap();
        journal.release_through(5).unwrap();
        let left = commits(&records(&path).unwrap());
        // A segment goes only whole: without the spare, 6 shares one with 1-5.
        let kept: Vec<u64> = if spare { vec![6] } else { (1..=6).collect() };
        assert_eq!(left, kept, "spare: {spare}");
    }
}

/// Proves a journal written in the first format (24-byte headers without
/// the write's first commit) is still read, by its own rule.
#[test]
fn the_first_format_is_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal");
    std::fs::create_dir(&path).unwrap();
    let mut data = Vec::new();
    for commit in 1..=3u64 {
        let body = payload(commit);
        let mut head = Vec::new();
        head.extend_from_slice(&FIRST.magic.to_le_bytes());
        head.extend_from_slice(&(body.len() as u32).to_le_bytes());
        head.extend_from_slice(&commit.to_le_bytes());
        head.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        let own = crc32fast::hash(&head);
        head.extend_from_slice(&own.to_le_bytes());
        data.extend_from_slice(&head);
        data.extend_from_slice(&head);
        for _ in 0..2 {
            data.extend_from_slice(&body);
            data.resize(data.len().div_ceil(8) * 8, 0);
        }
    }
    data.resize(SEGMENT as usize, 0);
    std::fs::write(path.join(segment_name(1)), &data).unwrap();
    assert_eq!(commits(&records(&path).unwrap()), vec![1, 2, 3]);
}

#[test]
fn oversized_records_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (_, journal) = new_journal(dir.path());
    let big = vec![1u8; journal.payload_max() + 1];
    assert!(journal.stage(1, &big).is_err());
    assert_eq!(journal.sync().unwrap(), None);
    let largest = vec![1u8; journal.payload_max()];
    journal.stage(1, &largest).unwrap();
    assert_eq!(journal.sync().unwrap(), Some(1));
}
