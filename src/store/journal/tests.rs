//! The journal's promises at the byte level: what was synced comes back in
//! order; a torn last write is cut off; one damaged byte anywhere loses
//! nothing; damage with records behind it is refused, never read as an end.

use super::*;

const SEGMENT: u64 = SEGMENT_BYTES_MIN;

fn payload(commit: CommitNumber) -> Vec<u8> {
    // Lengths vary, so slots are not all alike and padding is exercised.
    let len = 40 + (commit as usize * 37) % 300;
    (0..len).map(|i| (commit as usize + i) as u8).collect()
}

/// A journal in a fresh directory with `commits` records, each synced.
fn written(commits: u64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal");
    let journal = Journal::start(&path, SEGMENT).unwrap();
    for commit in 1..=commits {
        journal.stage(commit, &payload(commit)).unwrap();
        assert_eq!(journal.sync().unwrap(), Some(commit));
    }
    (dir, path)
}

fn commits(records: &[JournalRecord]) -> Vec<CommitNumber> {
    records.iter().map(|r| r.commit).collect()
}

fn only_segment(path: &Path) -> PathBuf {
    // The first is written; the next one may be prepared already.
    list_segments(path).unwrap()[0].1.clone()
}

#[test]
fn synced_records_come_back_in_order() {
    let (_dir, path) = written(50);
    let records = recover(&path).unwrap();
    assert_eq!(commits(&records), (1..=50).collect::<Vec<_>>());
    for record in &records {
        assert_eq!(record.payload, payload(record.commit));
    }
}

#[test]
fn records_roll_over_segments_and_released_ones_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal");
    let journal = Journal::start(&path, SEGMENT).unwrap();
    // Several commits per sync, as a busy ledger stages them.
    for first in (1..=600).step_by(3) {
        for commit in first..first + 3 {
            journal.stage(commit, &payload(commit)).unwrap();
        }
        journal.sync().unwrap();
    }
    assert!(list_segments(&path).unwrap().len() > 3, "rolled over");
    assert_eq!(
        commits(&recover(&path).unwrap()),
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
    journal.release_through(450).unwrap();
    let left = recover(&path).unwrap();
    assert!(
        left.first().unwrap().commit <= 451,
        "nothing above 450 released"
    );
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
    let ends = {
        let mut at = 0;
        let mut ends = Vec::new();
        while let Slot::Record(_, next) = read_slot(&data, at) {
            ends.push(next);
            at = next;
        }
        ends
    };
    let (last_start, last_end) = (ends[8], ends[9]);
    // Until its first copy is whole, the slot is torn.
    let first_copy_end = last_start + 2 * HEADER_BYTES + payload(10).len();
    for kept in (last_start..first_copy_end).step_by(7) {
        let mut torn = data.clone();
        torn[kept..last_end].fill(0);
        std::fs::write(&segment, &torn).unwrap();
        let records = recover(&path).unwrap();
        assert_eq!(
            commits(&records),
            (1..=9).collect::<Vec<_>>(),
            "kept {kept}"
        );
    }
    // One whole copy is a whole record: keeping it is right (it was
    // written entirely, though never acknowledged).
    let mut one_copy = data.clone();
    one_copy[first_copy_end..last_end].fill(0);
    std::fs::write(&segment, &one_copy).unwrap();
    assert_eq!(commits(&recover(&path).unwrap()).len(), 10);
    // Only the middle persisted: the headers are zero, the payload is not.
    let mut torn = data.clone();
    torn[last_start..last_start + 60].fill(0);
    std::fs::write(&segment, &torn).unwrap();
    assert_eq!(commits(&recover(&path).unwrap()).len(), 9);
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
        let records = recover(&path).unwrap_or_else(|e| panic!("byte {at}: {e}"));
        assert_eq!(commits(&records), (1..=6).collect::<Vec<_>>(), "byte {at}");
        assert_eq!(records[5].payload, payload(6), "byte {at}");
    }
}

/// Proves damage behind the last write is refused: a slot whose both copies
/// are destroyed, with records after it, is not an end of the journal.
#[test]
fn damage_before_later_records_is_refused() {
    let (_dir, path) = written(8);
    let segment = only_segment(&path);
    let data = std::fs::read(&segment).unwrap();
    let Slot::Record(_, second) = read_slot(&data, 0) else {
        panic!("a first record")
    };
    let Slot::Record(_, third) = read_slot(&data, second) else {
        panic!("a second record")
    };
    let mut bad = data.clone();
    bad[second..third].iter_mut().for_each(|b| *b ^= 0xff);
    std::fs::write(&segment, &bad).unwrap();
    let error = recover(&path).unwrap_err().to_string();
    assert!(error.contains("damaged at byte"), "{error}");
    // Zeroed instead of garbled (a lost sector): still refused.
    let mut zeroed = data.clone();
    zeroed[second..third].fill(0);
    std::fs::write(&segment, &zeroed).unwrap();
    assert!(recover(&path).is_err(), "a hole before later records");
}

#[test]
fn a_missing_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal");
    let journal = Journal::start(&path, SEGMENT).unwrap();
    for commit in 1..=600 {
        journal.stage(commit, &payload(commit)).unwrap();
        journal.sync().unwrap();
    }
    let segments = list_segments(&path).unwrap();
    std::fs::remove_file(&segments[1].1).unwrap();
    let error = recover(&path).unwrap_err().to_string();
    assert!(error.contains("is missing"), "{error}");
}

#[test]
fn a_restarted_journal_begins_a_fresh_segment() {
    let (_dir, path) = written(5);
    let journal = Journal::start(&path, SEGMENT).unwrap();
    assert!(recover(&path).unwrap().is_empty(), "old segments removed");
    journal.stage(6, &payload(6)).unwrap();
    journal.sync().unwrap();
    assert_eq!(commits(&recover(&path).unwrap()), vec![6]);
}

#[test]
fn oversized_records_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::start(&dir.path().join("journal"), SEGMENT).unwrap();
    let big = vec![1u8; journal.payload_max() + 1];
    assert!(journal.stage(1, &big).is_err());
    assert_eq!(journal.sync().unwrap(), None);
    let largest = vec![1u8; journal.payload_max()];
    journal.stage(1, &largest).unwrap();
    assert_eq!(journal.sync().unwrap(), Some(1));
}
