//! The audit trail's records and the hash chain that makes them
//! tamper-evident: who (a unique principal), from where, did what, to whom,
//! with what outcome, for every call.
//!
//! Each record carries a sequence number and the SHA-256 of the previous
//! record's hash and its own content, as Certificate Transparency and
//! CloudTrail's digest files make a log checkable: changing, removing,
//! inserting or reordering a record breaks the chain at that record, and
//! [`verify`] names the first sequence number where it breaks. Whoever keeps
//! the head (the last sequence number and hash, which `medassist audit
//! export` prints) can also tell a trail cut short or rewritten whole.
//!
//! This module is pure: the ledger seals records in commit order, the store
//! keeps them, and the wire layer fills in the events.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::{
    BusinessDay, ClaimKey, HospitalId, RegionCode, ResidentId, SettlementId, Timestamp,
};

/// What an auditor asks of the trail: a time range, and optionally one
/// principal and one patient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// Records answered at or after this moment.
    pub from: Timestamp,
    /// Records answered at or before this moment.
    pub to: Timestamp,
    /// Only this principal's (its unique id).
    pub principal: Option<String>,
    /// Only records naming this patient.
    pub patient: Option<ResidentId>,
}

impl Query {
    /// True when `record` answers the query.
    pub fn matches(&self, record: &Record) -> bool {
        let event = &record.event;
        event.at >= self.from
            && event.at <= self.to
            && self
                .principal
                .as_ref()
                .is_none_or(|p| *p == event.principal)
            && self
                .patient
                .as_ref()
                .is_none_or(|wanted| event.subject.patients().contains(&wanted))
    }
}

/// Where a page of the trail ended, to continue after it: the embedded
/// store reads in sequence order, a shared one in time order (its chains
/// interleave), so the position carries both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The last record's time.
    pub at: Timestamp,
    /// Its chain.
    pub chain: u64,
    /// Its sequence number.
    pub seq: u64,
}

impl Cursor {
    /// The position of `record`.
    pub fn of(record: &Record) -> Cursor {
        Cursor {
            at: record.event.at,
            chain: record.chain,
            seq: record.seq,
        }
    }
}

/// A SHA-256 value of the chain.
pub type Hash = [u8; 32];

/// The hash before the first record of a chain.
pub const GENESIS: Hash = [0; 32];

/// Longest free text a record keeps (the detail of a change, a refusal's
/// reason): a record stays small whatever a caller sends.
pub const DETAIL_BYTES_MAX: usize = 1024;

/// Which part of a call a record stands for: most calls are one record;
/// bulk reads record their start and their end, with the count sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// The whole call, recorded when it was answered.
    Call,
    /// A bulk read began.
    Start,
    /// A bulk read ended (finished, failed, or the client went away).
    End,
}

impl Phase {
    /// The name used in exports.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Call => "call",
            Phase::Start => "start",
            Phase::End => "end",
        }
    }
}

/// Whom or what a call concerned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Subject {
    /// Nothing in particular (a policy read, a refused call).
    #[default]
    None,
    /// One patient.
    Patient(ResidentId),
    /// Many patients, named apart (a batch usage read).
    Patients(Vec<ResidentId>),
    /// One claim of a hospital, and its patient when known.
    Claim(ClaimKey, Option<ResidentId>),
    /// One settlement by number, and its patient when known.
    Settlement(SettlementId, Option<ResidentId>),
    /// A hospital's business days (or every hospital's), both included.
    HospitalDays(Option<HospitalId>, BusinessDay, BusinessDay),
    /// A region's records (a roster export, referrals).
    Region(RegionCode),
    /// A bulk call's filter, as text.
    Filter(String),
}

impl Subject {
    /// Every patient the subject names, for lookups by patient.
    pub fn patients(&self) -> Vec<&ResidentId> {
        match self {
            Subject::Patient(id)
            | Subject::Claim(_, Some(id))
            | Subject::Settlement(_, Some(id)) => vec![id],
            Subject::Patients(ids) => ids.iter().collect(),
            _ => Vec::new(),
        }
    }
}

/// Masked as the service always shows a resident ID.
impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let patient = |id: &Option<ResidentId>| {
            id.as_ref()
                .map(|id| format!(" patient {id}"))
                .unwrap_or_default()
        };
        match self {
            Subject::None => Ok(()),
            Subject::Patient(id) => write!(f, "patient {id}"),
            Subject::Patients(ids) => {
                write!(f, "{} patients", ids.len())?;
                for id in ids.iter().take(3) {
                    write!(f, " {id}")?;
                }
                if ids.len() > 3 {
                    f.write_str(" …")?;
                }
                Ok(())
            }
            Subject::Claim(key, id) => write!(
                f,
                "claim {}/{}{}",
                key.hospital_id,
                key.claim_id,
                patient(id)
            ),
            Subject::Settlement(number, id) => write!(f, "settlement {number}{}", patient(id)),
            Subject::HospitalDays(hospital, from, to) => match hospital {
                Some(h) => write!(f, "hospital {h} days {from}..{to}"),
                None => write!(f, "every hospital days {from}..{to}"),
            },
            Subject::Region(region) => write!(f, "region {region}"),
            Subject::Filter(text) => f.write_str(text),
        }
    }
}

/// One access, as the service saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When it was answered (for [`Phase::Start`], when it began).
    pub at: Timestamp,
    /// The unique principal: `token:` and the first 16 hex digits of the
    /// token's digest, `open` on an open loopback service, `anonymous`
    /// when authentication failed.
    pub principal: String,
    /// The principal's configured (unique) name.
    pub name: String,
    /// Its role.
    pub role: String,
    /// The peer's address, when known.
    pub peer: Option<String>,
    /// The TLS client certificate's subject, when one was presented.
    pub client_cert: Option<String>,
    /// The call: a gRPC method (`medassist.v1.SettlementService/Settle`) or
    /// an HTTP method and route.
    pub call: String,
    /// Which part of the call.
    pub phase: Phase,
    /// Whom it concerned.
    pub subject: Subject,
    /// Records returned or written, for bulk calls.
    pub count: Option<u64>,
    /// The outcome: the gRPC status code's name (`OK`, `PERMISSION_DENIED`).
    pub code: String,
    /// What changed (a roster write: which fields and enrollments), or why
    /// it was refused; at most [`DETAIL_BYTES_MAX`] bytes.
    pub detail: String,
}

impl Event {
    /// Cuts the free text to its bound, on a character boundary.
    pub fn bounded(mut self) -> Event {
        if self.detail.len() > DETAIL_BYTES_MAX {
            let mut end = DETAIL_BYTES_MAX;
            while !self.detail.is_char_boundary(end) {
                end -= 1;
            }
            self.detail.truncate(end);
        }
        self
    }
}

/// Who called and how: what the wire layer knows of a call before it is
/// decided, to which each record adds what happened.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Origin {
    /// The unique principal (see [`Event::principal`]).
    pub principal: String,
    /// Its configured name.
    pub name: String,
    /// Its role.
    pub role: String,
    /// The peer's address.
    pub peer: Option<String>,
    /// The TLS client certificate's subject.
    pub client_cert: Option<String>,
    /// The call.
    pub call: String,
}

impl Origin {
    /// The event of this call's `phase`.
    pub fn event(
        &self,
        at: Timestamp,
        phase: Phase,
        subject: Subject,
        count: Option<u64>,
        code: &str,
        detail: String,
    ) -> Event {
        Event {
            at,
            principal: self.principal.clone(),
            name: self.name.clone(),
            role: self.role.clone(),
            peer: self.peer.clone(),
            client_cert: self.client_cert.clone(),
            call: self.call.clone(),
            phase,
            subject,
            count,
            code: code.to_owned(),
            detail,
        }
        .bounded()
    }
}

/// A sealed record of the trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Which chain (one per embedded store; one per instance's run on a
    /// shared store, so instances never wait on one another's chain).
    pub chain: u64,
    /// Its place in the chain: 1, 2, 3, ...
    pub seq: u64,
    /// What happened.
    pub event: Event,
    /// SHA-256 of the previous record's hash and this record's chain,
    /// sequence number and event.
    pub hash: Hash,
}

/// The hash of a record whose predecessor's hash is `previous`.
pub fn hash_of(previous: &Hash, chain: u64, seq: u64, event: &Event) -> Hash {
    let mut digest = Sha256::new();
    digest.update(previous);
    digest.update(chain.to_le_bytes());
    digest.update(seq.to_le_bytes());
    // postcard is deterministic: the same event always encodes the same.
    digest.update(postcard::to_stdvec(event).unwrap_or_default());
    digest.finalize().into()
}

/// The end of a chain: the last sequence number and its hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// Which chain.
    pub chain: u64,
    /// The last sequence number (0 before the first record).
    pub seq: u64,
    /// The last record's hash ([`GENESIS`] before the first).
    pub hash: Hash,
}

impl Head {
    /// A chain with no record yet.
    pub fn new(chain: u64) -> Head {
        Head {
            chain,
            seq: 0,
            hash: GENESIS,
        }
    }

    /// Seals `event` as the next record and moves the head to it.
    pub fn seal(&mut self, event: Event) -> Record {
        let event = event.bounded();
        let seq = self.seq + 1;
        let hash = hash_of(&self.hash, self.chain, seq, &event);
        self.seq = seq;
        self.hash = hash;
        Record {
            chain: self.chain,
            seq,
            event,
            hash,
        }
    }

    /// The hash as 64 hexadecimal digits.
    pub fn hash_hex(&self) -> String {
        hex(&self.hash)
    }
}

/// A hash as 64 hexadecimal digits.
pub fn hex(hash: &Hash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where and why a chain breaks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the audit trail breaks at chain {chain} sequence {seq}: {why}")]
pub struct Break {
    /// The chain.
    pub chain: u64,
    /// The first sequence number that does not check.
    pub seq: u64,
    /// What is wrong there.
    pub why: String,
}

/// Follows one chain's records in the order they are stored, from `anchor`
/// (the head before the first record given: [`Head::new`] for a whole
/// chain, the last pruned record for a pruned one).
pub struct Verifier {
    head: Head,
    checked: u64,
}

impl Verifier {
    /// Starts after `anchor`.
    pub fn new(anchor: Head) -> Verifier {
        Verifier {
            head: anchor,
            checked: 0,
        }
    }

    /// Checks the next stored record: its chain, that its sequence number
    /// follows, and that its hash is what its content and its predecessor
    /// give. A changed record fails its own hash; a removed one leaves a gap;
    /// an inserted or moved one is out of sequence or fails the hash of the
    /// record after it.
    pub fn next(&mut self, record: &Record) -> Result<(), Break> {
        let expected = self.head.seq + 1;
        let broken = |why: String| Break {
            chain: self.head.chain,
            seq: expected,
            why,
        };
        if record.chain != self.head.chain {
            return Err(broken(format!(
                "a record of chain {} is here",
                record.chain
            )));
        }
        if record.seq != expected {
            return Err(broken(match record.seq.cmp(&expected) {
                std::cmp::Ordering::Greater => format!(
                    "records {expected} to {} are missing (removed?)",
                    record.seq - 1
                ),
                _ => format!("record {} is out of order (inserted or moved?)", record.seq),
            }));
        }
        if hash_of(&self.head.hash, record.chain, record.seq, &record.event) != record.hash {
            return Err(broken(
                "its hash does not match its content and the record before it (changed, \
                 inserted or moved?)"
                    .into(),
            ));
        }
        self.head = Head {
            chain: record.chain,
            seq: record.seq,
            hash: record.hash,
        };
        self.checked += 1;
        Ok(())
    }

    /// Where the chain ends so far.
    pub fn head(&self) -> Head {
        self.head
    }

    /// Records checked.
    pub fn checked(&self) -> u64 {
        self.checked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u64) -> Event {
        Event {
            at: Timestamp::from_unix_micros(1_764_000_000_000_000 + n as i64),
            principal: "token:0123456789abcdef".into(),
            name: "HIS of H001".into(),
            role: "hospital".into(),
            peer: Some("10.0.0.7:51234".into()),
            client_cert: None,
            call: "medassist.v1.SettlementService/Settle".into(),
            phase: Phase::Call,
            subject: Subject::None,
            count: None,
            code: "OK".into(),
            detail: String::new(),
        }
    }

    fn chain(n: u64) -> Vec<Record> {
        let mut head = Head::new(1);
        (1..=n).map(|i| head.seal(event(i))).collect()
    }

    fn first_break(records: &[Record]) -> Option<u64> {
        let mut verifier = Verifier::new(Head::new(1));
        records
            .iter()
            .find_map(|r| verifier.next(r).err())
            .map(|b| b.seq)
    }

    /// Proves a whole chain checks, and that each kind of tampering (a
    /// changed, removed, inserted or moved record) is found at the first
    /// record it touches.
    #[test]
    fn tampering_breaks_the_chain_where_it_happened() {
        let good = chain(10);
        assert_eq!(first_break(&good), None);

        let mut changed = good.clone();
        changed[4].event.code = "PERMISSION_DENIED".into();
        assert_eq!(first_break(&changed), Some(5));

        let mut removed = good.clone();
        removed.remove(6);
        assert_eq!(first_break(&removed), Some(7));

        let mut inserted = good.clone();
        let mut forged = good[3].clone();
        forged.event.principal = "token:ffffffffffffffff".into();
        inserted.insert(4, forged);
        assert_eq!(first_break(&inserted), Some(5));

        let mut moved = good.clone();
        moved.swap(2, 3);
        assert_eq!(first_break(&moved), Some(3));

        // Renumbered after a removal: the hash of the next record fails.
        let mut renumbered = good.clone();
        renumbered.remove(6);
        for record in &mut renumbered[6..] {
            record.seq -= 1;
        }
        assert_eq!(first_break(&renumbered), Some(7));
    }

    /// Proves a pruned chain checks from its anchor: the last pruned record.
    #[test]
    fn a_pruned_chain_checks_from_its_anchor() {
        let good = chain(10);
        let anchor = Head {
            chain: 1,
            seq: good[5].seq,
            hash: good[5].hash,
        };
        let mut verifier = Verifier::new(anchor);
        for record in &good[6..] {
            verifier.next(record).unwrap();
        }
        assert_eq!(verifier.head().seq, 10);
        assert_eq!(verifier.checked(), 4);
    }

    /// Proves free text is bounded on a character boundary.
    #[test]
    fn details_are_bounded() {
        let mut long = event(1);
        long.detail = "改".repeat(DETAIL_BYTES_MAX);
        let bounded = long.bounded();
        assert!(bounded.detail.len() <= DETAIL_BYTES_MAX);
        assert!(bounded.detail.chars().all(|c| c == '改'));
    }
}
