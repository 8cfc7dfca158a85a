//! What a policy change would cost (issue 21): a year's settlements replayed
//! under a proposed policy book, in the order the ledger charged them, with
//! caps, deductibles, bands and tilted assistance on each patient's running
//! total, beside what the fund paid. Nothing is written.
//!
//! The replay takes settlements in number order (on the embedded store, the
//! order they were committed) and a reversal at its moment: before any
//! settlement stamped at or after it. What the fund paid and what it would
//! pay are both net of reversals. Each claim is assessed on the patient's
//! roster record as it is now (the roster's past is not kept), so a
//! simulation of the policy in force equals what was paid exactly when the
//! roster has not changed since.

use std::{
    cmp::Reverse,
    collections::{BTreeMap, BinaryHeap, HashMap, HashSet},
    fmt::Write as _,
};

use serde::Serialize;

use crate::{
    domain::{
        Outcome, Person, PolicyBook, RegionCode, ResidentId, Settlement, SettlementId, Timestamp,
        Usage, Year,
    },
    rules,
    store::{CommitNumber, Store, StoreError},
};

/// Replays the year's settlements under the book of `simulation`, reading
/// each patient's roster record once: of a stopped store (read only, like
/// `verify`) or of a running service's. `stopped` is asked every few
/// thousand settlements; when it says so (the caller went away), the replay
/// ends early with what it replayed. Returns the report and the newest
/// commit it read, which a running service waits to be durable before it
/// answers.
pub fn replay(
    store: &dyn Store,
    mut simulation: Simulation<'_>,
    stopped: &dyn Fn() -> bool,
) -> Result<(SimulationReport, CommitNumber), StoreError> {
    let mut persons: HashMap<ResidentId, Option<Person>> = HashMap::new();
    let mut newest = 0;
    for (n, read) in store.settlements().enumerate() {
        if n % STOP_CHECK_EVERY == 0 && stopped() {
            break;
        }
        let read = read?;
        let settlement = read.value;
        if settlement.claim.year() != simulation.year {
            continue;
        }
        newest = newest.max(read.commit);
        let patient = settlement.claim.patient_id();
        if !persons.contains_key(patient) {
            let person = store.person(patient)?.map(|read| {
                newest = newest.max(read.commit);
                read.value
            });
            persons.insert(patient.clone(), person);
        }
        simulation.settle(&settlement, persons[patient].as_ref());
    }
    Ok((simulation.finish(), newest))
}

/// How many settlements the replay reads between two looks at `stopped`.
const STOP_CHECK_EVERY: usize = 4096;

/// Most claims listed among those that change most.
pub const CHANGES_MAX: usize = 1000;

/// Sums of one group of settlements.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    /// Settlements (not reversed).
    pub settlements: u64,
    /// Distinct patients among them.
    pub persons: u64,
    /// What the fund paid, in fen.
    pub paid_fen: i64,
    /// What it would pay under the proposal, in fen.
    pub would_pay_fen: i64,
    #[serde(skip)]
    patients: HashSet<ResidentId>,
}

impl Totals {
    fn add(&mut self, patient: &ResidentId, paid: i64, would_pay: i64) {
        self.settlements += 1;
        if self.patients.insert(patient.clone()) {
            self.persons += 1;
        }
        self.paid_fen += paid;
        self.would_pay_fen += would_pay;
    }
}

/// A claim whose amount changes, for the list of those that change most.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Change {
    /// The settlement.
    pub settlement_id: String,
    /// Hospital and claim number.
    pub hospital_id: String,
    /// The hospital's claim number.
    pub claim_id: String,
    /// The patient, masked (region, stars, last four).
    pub patient: String,
    /// Paid, in fen.
    pub paid_fen: i64,
    /// Would pay, in fen.
    pub would_pay_fen: i64,
}

/// The result: totals, by class (under the proposal), by region and by
/// month of discharge, and the claims that change most.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SimulationReport {
    /// The cap year replayed.
    pub year: i32,
    /// Every settlement replayed.
    pub total: Totals,
    /// By the class the proposal applies (`none` when it pays nothing).
    pub by_class: BTreeMap<String, Totals>,
    /// By the region whose policy applied.
    pub by_region: BTreeMap<String, Totals>,
    /// By month of the discharge date (`2026-03`).
    pub by_month: BTreeMap<String, Totals>,
    /// Settlements of patients whose region has no policy in the proposal:
    /// they would be refused, and count as paying nothing.
    pub without_policy: u64,
    /// Up to [`CHANGES_MAX`] settlements whose amount changes, the largest
    /// change first.
    pub changes: Vec<Change>,
}

/// A replay in progress: feed it the year's settlements in number order.
pub struct Simulation<'a> {
    book: &'a PolicyBook,
    year: Year,
    region: Option<RegionCode>,
    scope: Vec<RegionCode>,
    usages: HashMap<ResidentId, Usage>,
    /// Reversals to apply at their moment: what the proposal charged.
    reversals: BinaryHeap<Reverse<(Timestamp, SettlementId)>>,
    charged: HashMap<SettlementId, (ResidentId, Outcome)>,
    changes: BinaryHeap<Reverse<(i64, SettlementId)>>,
    change_rows: HashMap<SettlementId, Change>,
    report: SimulationReport,
}

impl<'a> Simulation<'a> {
    /// A replay of `year` under `book`, of the settlements of `region` (a
    /// city code takes in its counties; `None`: all).
    pub fn new(book: &'a PolicyBook, year: Year, region: Option<RegionCode>) -> Simulation<'a> {
        Simulation {
            book,
            year,
            region,
            scope: Vec::new(),
            usages: HashMap::new(),
            reversals: BinaryHeap::new(),
            charged: HashMap::new(),
            changes: BinaryHeap::new(),
            change_rows: HashMap::new(),
            report: SimulationReport {
                year: year.get(),
                ..SimulationReport::default()
            },
        }
    }

    /// Limits the replay to claims of patients enrolled in `scope` (a city
    /// takes in its counties; empty: no limit), as a caller limited to
    /// regions sees them.
    pub fn within(mut self, scope: &[RegionCode]) -> Simulation<'a> {
        self.scope = scope.to_vec();
        self
    }

    /// Replays one settlement (the next by number); `person` is the
    /// patient's roster record now. Settlements of other years and regions
    /// are passed over. Returns what the proposal pays for it, as the
    /// patient's year stood then; `None` when passed over, or when the
    /// proposal has no policy for it.
    pub fn settle(&mut self, settlement: &Settlement, person: Option<&Person>) -> Option<Outcome> {
        // A window settlement a top-up stands in for is replayed as the
        // top-up, which is the whole stay.
        if settlement.claim.year() != self.year || settlement.superseded_by.is_some() {
            return None;
        }
        let region = settlement
            .outcome
            .cap
            .as_ref()
            .map(|cap| cap.region)
            .or_else(|| person.map(Person::region));
        let covered = |wanted: &RegionCode| region.is_some_and(|r| wanted.covers(r));
        if !self.region.iter().all(covered)
            || !(self.scope.is_empty() || self.scope.iter().any(covered))
        {
            return None;
        }
        self.reverse_until(settlement.settled_at);
        let patient = settlement.claim.patient_id().clone();
        let usage = self.usages.get(&patient).copied().unwrap_or_default();
        let proposed = match rules::assess_under(self.book, &settlement.claim, person) {
            Ok(assessment) => rules::apply_year(&settlement.claim, &assessment, &usage),
            Err(_) => {
                self.report.without_policy += 1;
                self.count(settlement, region, None);
                return None;
            }
        };
        if let Some(charged) = usage.charge(&proposed) {
            self.usages.insert(patient.clone(), charged);
        }
        if let Some(reversal) = &settlement.reversal {
            self.reversals.push(Reverse((reversal.at, settlement.id)));
            self.charged
                .insert(settlement.id, (patient, proposed.clone()));
            return Some(proposed);
        }
        self.count(settlement, region, Some(&proposed));
        Some(proposed)
    }

    /// Gives back what reversed settlements charged, up to `moment`.
    fn reverse_until(&mut self, moment: Timestamp) {
        while let Some(Reverse((at, id))) = self.reversals.peek().copied() {
            if at > moment {
                break;
            }
            self.reversals.pop();
            if let Some((patient, outcome)) = self.charged.remove(&id)
                && let Some(usage) = self.usages.get_mut(&patient)
                && let Some(refunded) = usage.refund(&outcome)
            {
                *usage = refunded;
            }
        }
    }

    fn count(&mut self, s: &Settlement, region: Option<RegionCode>, proposed: Option<&Outcome>) {
        let patient = s.claim.patient_id();
        let paid = s.outcome.assistance.fen();
        let would_pay = proposed.map_or(0, |o| o.assistance.fen());
        let class = proposed
            .and_then(|o| o.breakdown.as_ref())
            .and_then(|b| b.class)
            .map_or("none", |k| k.as_str());
        let region = region.map_or_else(|| "none".to_owned(), |r| r.to_string());
        let month = s.claim.discharge_date().to_string()[..7].to_owned();
        let r = &mut self.report;
        r.total.add(patient, paid, would_pay);
        r.by_class
            .entry(class.to_owned())
            .or_default()
            .add(patient, paid, would_pay);
        r.by_region
            .entry(region)
            .or_default()
            .add(patient, paid, would_pay);
        r.by_month
            .entry(month)
            .or_default()
            .add(patient, paid, would_pay);
        let change = (would_pay - paid).abs();
        if change > 0 {
            self.changes.push(Reverse((change, s.id)));
            self.change_rows.insert(
                s.id,
                Change {
                    settlement_id: s.id.to_string(),
                    hospital_id: s.claim.key().hospital_id.as_str().to_owned(),
                    claim_id: s.claim.key().claim_id.as_str().to_owned(),
                    patient: patient.masked(),
                    paid_fen: paid,
                    would_pay_fen: would_pay,
                },
            );
            if self.changes.len() > CHANGES_MAX
                && let Some(Reverse((_, dropped))) = self.changes.pop()
            {
                self.change_rows.remove(&dropped);
            }
        }
    }

    /// The report, once every settlement was fed.
    pub fn finish(mut self) -> SimulationReport {
        let mut changes: Vec<(i64, SettlementId)> =
            self.changes.into_iter().map(|Reverse(c)| c).collect();
        changes.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        self.report.changes = changes
            .into_iter()
            .filter_map(|(_, id)| self.change_rows.remove(&id))
            .collect();
        self.report
    }
}

/// Fen as yuan with two decimals and a sign when negative (`-1.50`).
pub fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", fen.abs() / 100, fen.abs() % 100)
}

impl SimulationReport {
    /// Rows for a spreadsheet: `section,key,settlements,persons,paid,would_pay,change`.
    pub fn csv(&self) -> String {
        let mut out = String::from("section,key,settlements,persons,paid,would_pay,change\n");
        let mut row = |section: &str, key: &str, t: &Totals| {
            let _ = writeln!(
                out,
                "{section},{key},{},{},{},{},{}",
                t.settlements,
                t.persons,
                yuan(t.paid_fen),
                yuan(t.would_pay_fen),
                yuan(t.would_pay_fen - t.paid_fen)
            );
        };
        row("total", &self.year.to_string(), &self.total);
        for (section, groups) in [
            ("class", &self.by_class),
            ("region", &self.by_region),
            ("month", &self.by_month),
        ] {
            for (key, totals) in groups {
                row(section, key, totals);
            }
        }
        for c in &self.changes {
            let _ = writeln!(
                out,
                "claim,{}/{} {} {},1,1,{},{},{}",
                c.hospital_id,
                c.claim_id,
                c.settlement_id,
                c.patient,
                yuan(c.paid_fen),
                yuan(c.would_pay_fen),
                yuan(c.would_pay_fen - c.paid_fen)
            );
        }
        out
    }

    /// A summary for people.
    pub fn text(&self) -> String {
        let t = &self.total;
        let mut out = format!(
            "{}: {} settlements of {} persons: paid {}, would pay {} ({}{})\n",
            self.year,
            t.settlements,
            t.persons,
            yuan(t.paid_fen),
            yuan(t.would_pay_fen),
            if t.would_pay_fen >= t.paid_fen {
                "+"
            } else {
                ""
            },
            yuan(t.would_pay_fen - t.paid_fen)
        );
        if self.without_policy > 0 {
            let _ = writeln!(
                out,
                "{} settlements have no policy in the proposal (counted as paying nothing)",
                self.without_policy
            );
        }
        for (section, groups) in [
            ("by class", &self.by_class),
            ("by region", &self.by_region),
            ("by month", &self.by_month),
        ] {
            let _ = writeln!(out, "{section}:");
            for (key, g) in groups {
                let _ = writeln!(
                    out,
                    "  {key}: {} settlements, {} persons, paid {}, would pay {}",
                    g.settlements,
                    g.persons,
                    yuan(g.paid_fen),
                    yuan(g.would_pay_fen)
                );
            }
        }
        let _ = writeln!(out, "claims that change most:");
        for c in self.changes.iter().take(20) {
            let _ = writeln!(
                out,
                "  {} {}/{} {}: paid {}, would pay {}",
                c.settlement_id,
                c.hospital_id,
                c.claim_id,
                c.patient,
                yuan(c.paid_fen),
                yuan(c.would_pay_fen)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_shows_the_sign_and_two_decimals() {
        assert_eq!(yuan(-150), "-1.50");
        assert_eq!(yuan(5), "0.05");
        assert_eq!(yuan(123_456), "1234.56");
    }
}

/// The simulation benchmark of docs/BENCHMARKS.md (`cargo test --release
/// --lib simulate::bench -- --ignored --nocapture`, sizes from
/// `MEDASSIST_SIMULATE_N`, default 1,000,000): settlements of five claims a
/// patient under the guide's 2026 policy, replayed under a proposal; first
/// from memory (the rules and the bookkeeping), then the first
/// `MEDASSIST_SIMULATE_STORED` of them (default a fifth) written to an
/// embedded store and replayed from it (scan, decode, roster reads), which
/// is what `medassist simulate` does.
#[cfg(test)]
mod bench {
    use std::time::Instant;

    use super::*;
    use crate::{
        domain::{
            BusinessDay, Claim, ClaimInput, ClaimKindSent, Date, EnrollmentInput, EnrollmentKind,
            ExitKind, PersonInput, UtcOffset,
        },
        store::{Batch, SledOptions, SledStore, Store},
    };

    const POLICY: &str = include_str!("../examples/policy-2026.toml");

    fn people_and_settlements(n: usize, book: &PolicyBook) -> (Vec<Person>, Vec<Settlement>) {
        let kinds = [
            EnrollmentKind::Tekun,
            EnrollmentKind::Dibao,
            EnrollmentKind::LowIncomeMargin,
            EnrollmentKind::MonitoredForReturn,
            EnrollmentKind::ImpoverishedByIllness,
        ];
        let region = RegionCode::parse("320505").unwrap();
        let mut usages: HashMap<ResidentId, Usage> = HashMap::new();
        let (mut people, mut settlements) = (Vec::new(), Vec::with_capacity(n));
        let codes = vec!["N18.5".to_owned()];
        for i in 0..n {
            let p = i % (n / 5).max(1);
            let d = p / 999;
            let birth = format!(
                "{}-{:02}-{:02}",
                1930 + d / 336,
                1 + (d / 28) % 12,
                1 + d % 28
            );
            let birth = Date::parse(&birth).unwrap();
            let id = ResidentId::compose(region, birth, (p % 999) as u16);
            if i < (n / 5).max(1) {
                let person = Person::parse(&PersonInput {
                    patient_id: id.as_str(),
                    name: "张三",
                    region_code: "320505",
                    enrollments: vec![EnrollmentInput {
                        kind: Some(kinds[p % kinds.len()]),
                        valid_from: "2020-01-01",
                        valid_to: "",
                        exit: Some(ExitKind::Plain),
                    }],
                    psychiatric_disability_grade: 0,
                    paralysis_certified: false,
                })
                .unwrap();
                people.push(person);
            }
            let person = &people[p];
            let oop = format!("{}.{:02}", 1000 + (i * 7919) % 40000, i % 100);
            let claim_id = format!("B-{i}");
            let claim = Claim::parse(&ClaimInput {
                hospital_id: "H001",
                claim_id: &claim_id,
                patient_id: id.as_str(),
                admission_date: &format!("2026-{:02}-01", 1 + i % 12),
                discharge_date: &format!("2026-{:02}-20", 1 + i % 12),
                diagnosis_codes: &codes,
                total_cost: &oop,
                in_scope_cost: &oop,
                basic_insurance_paid: "0",
                critical_illness_paid: "0",
                claim_kind: ClaimKindSent::Unstated,
            })
            .unwrap();
            let usage = usages.entry(id.clone()).or_default();
            let assessment = rules::assess_under(book, &claim, Some(person)).unwrap();
            let outcome = rules::apply_year(&claim, &assessment, usage);
            *usage = usage.charge(&outcome).unwrap();
            let at = Timestamp::from_unix_micros(1_767_225_600_000_000 + i as i64);
            settlements.push(Settlement {
                id: SettlementId::new(i as u64 + 1),
                claim,
                outcome,
                settled_at: at,
                settled_day: BusinessDay::of(at, UtcOffset::CHINA),
                settled_by: "bench".into(),
                referral: None,
                reversal: None,
                application: None,
                superseded_by: None,
            });
        }
        (people, settlements)
    }

    #[test]
    #[ignore = "a benchmark: run it in release with --ignored --nocapture"]
    fn replay_a_million_settlements() {
        let n: usize = std::env::var("MEDASSIST_SIMULATE_N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000_000);
        let in_force = crate::config::Config::parse(POLICY).unwrap().policies;
        let proposal = POLICY.replacen("ratio = \"0.80\"", "ratio = \"0.85\"", 1);
        let proposed = crate::config::Config::parse(&proposal).unwrap().policies;
        let made = Instant::now();
        let (people, settlements) = people_and_settlements(n, &in_force);
        eprintln!("made {n} settlements in {:?}", made.elapsed());
        let by_id: HashMap<&ResidentId, &Person> = people.iter().map(|p| (p.id(), p)).collect();
        let year = Year::parse(2026).unwrap();
        let started = Instant::now();
        let mut simulation = Simulation::new(&proposed, year, None);
        for s in &settlements {
            simulation.settle(s, by_id.get(s.claim.patient_id()).copied());
        }
        let report = simulation.finish();
        eprintln!(
            "replayed {} settlements of {} persons from memory in {:?}; paid {}, would pay {}",
            report.total.settlements,
            report.total.persons,
            started.elapsed(),
            yuan(report.total.paid_fen),
            yuan(report.total.would_pay_fen)
        );
        assert_eq!(report.total.settlements, n as u64);

        let stored = std::env::var("MEDASSIST_SIMULATE_STORED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(n / 5)
            .min(n);
        let dir = tempfile::TempDir::new().unwrap();
        let store = SledStore::open(dir.path(), SledOptions::default()).unwrap();
        let write = Instant::now();
        let mut batch = Batch::after(store.meta().unwrap());
        let mut written: HashSet<&ResidentId> = HashSet::new();
        for chunk in settlements[..stored].chunks(1000) {
            batch.settlements = chunk.to_vec();
            batch.persons = chunk
                .iter()
                .map(|s| s.claim.patient_id())
                .filter(|id| written.insert(*id))
                .map(|id| by_id[id].clone())
                .collect();
            batch.next_settlement_id = chunk.last().unwrap().id.next();
            store.apply(&batch).unwrap();
            store.flush().unwrap();
            batch = Batch::after(store.meta().unwrap());
        }
        eprintln!("stored {stored} settlements in {:?}", write.elapsed());
        let started = Instant::now();
        let (report, _) =
            replay(&store, Simulation::new(&proposed, year, None), &|| false).unwrap();
        eprintln!(
            "replayed {} settlements from the embedded store in {:?}",
            report.total.settlements,
            started.elapsed()
        );
    }
}
