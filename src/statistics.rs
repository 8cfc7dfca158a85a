//! The year's figures of a region, as a fund's supervisor reads them (the
//! console's statistics screen and `StatisticsService.GetYearStatistics`):
//! a fold of settlements into tallies by month, class, region, hospital,
//! cost band and disease group. Pure: the caller reads the settlements and
//! decides which the reader may see; nothing here touches the store or the
//! clock.
//!
//! What counts is what counts in a patient's running total
//! ([`Settlement::counts`]): reversed settlements, rejected or withdrawn
//! applications and window settlements a top-up stands in for are left out;
//! a pending application is in (its assistance is reserved against the cap).

use std::collections::{BTreeMap, HashMap};

use crate::domain::{
    DiagnosisCode, EnrollmentKind, Money, RegionCode, ResidentId, Settlement, Year,
};

/// The cost bands of a stay's total cost, in yuan: each band's lower bound
/// (included), its key and its name. The last band has no upper bound.
pub const COST_BANDS: [(i64, &str, &str); 6] = [
    (0, "0-10000", "1万元以下"),
    (10_000, "10000-30000", "1万至3万元"),
    (30_000, "30000-50000", "3万至5万元"),
    (50_000, "50000-100000", "5万至10万元"),
    (100_000, "100000-300000", "10万至30万元"),
    (300_000, "300000-", "30万元以上"),
];

/// The chapters of ICD-10 (GB/T 14396), by their first and last three-
/// character categories: the disease groups of the statistics.
const CHAPTERS: [(&str, &str, &str); 22] = [
    ("A00", "B99", "某些传染病和寄生虫病"),
    ("C00", "D48", "肿瘤"),
    ("D50", "D89", "血液及造血器官疾病和某些涉及免疫机制的疾患"),
    ("E00", "E90", "内分泌、营养和代谢疾病"),
    ("F00", "F99", "精神和行为障碍"),
    ("G00", "G99", "神经系统疾病"),
    ("H00", "H59", "眼和附器疾病"),
    ("H60", "H95", "耳和乳突疾病"),
    ("I00", "I99", "循环系统疾病"),
    ("J00", "J99", "呼吸系统疾病"),
    ("K00", "K93", "消化系统疾病"),
    ("L00", "L99", "皮肤和皮下组织疾病"),
    ("M00", "M99", "肌肉骨骼系统和结缔组织疾病"),
    ("N00", "N99", "泌尿生殖系统疾病"),
    ("O00", "O99", "妊娠、分娩和产褥期"),
    ("P00", "P96", "起源于围生期的某些情况"),
    ("Q00", "Q99", "先天性畸形、变形和染色体异常"),
    ("R00", "R99", "症状、体征和临床与实验室异常所见"),
    ("S00", "T98", "损伤、中毒和外因的某些其他后果"),
    ("U00", "U99", "特殊目的编码"),
    ("V01", "Y98", "疾病和死亡的外因"),
    ("Z00", "Z99", "影响健康状态和与保健机构接触的因素"),
];

/// The key and name of the group of a stay with no code in any chapter.
const OTHER_GROUP: (&str, &str) = ("other", "其他");
/// The key and name of the class of settlements no class applied to.
const NO_CLASS: (&str, &str) = ("none", "未适用救助类别");

/// What a group of settlements added up to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Figures {
    /// Distinct patients.
    pub persons: u64,
    /// Settlements.
    pub settlements: u64,
    /// Their assistance.
    pub assistance: Money,
    /// Those referred to temporary assistance.
    pub referrals: u64,
    /// Their total cost.
    pub total_cost: Money,
}

/// One row of a breakdown: a stable key, a name for a reader, the figures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// `2026-03`, `dibao`, `320505`, `H001`, `10000-30000`, `C00-D48`.
    pub key: String,
    /// In Chinese; the key where no name is known (a hospital, a region).
    pub label: String,
    /// What the group added up to.
    pub figures: Figures,
}

/// The figures of a year, whole and broken down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct YearFigures {
    /// The whole year.
    pub total: Figures,
    /// January to December, empty months included.
    pub by_month: Vec<Group>,
    /// By class applied, in the roster's order of classes, then `none`.
    pub by_class: Vec<Group>,
    /// By the patient's region when settled, by code.
    pub by_region: Vec<Group>,
    /// By treating hospital, most assistance first.
    pub by_hospital: Vec<Group>,
    /// By total cost, every band, lowest first.
    pub by_cost_band: Vec<Group>,
    /// By ICD-10 chapter of the first diagnosis code, in chapter order;
    /// only chapters with settlements.
    pub by_disease_group: Vec<Group>,
}

/// A tally being added up: the patients as numbers the fold gives them.
#[derive(Clone, Default)]
struct Tally {
    patients: Vec<u32>,
    settlements: u64,
    assistance: Money,
    referrals: u64,
    total_cost: Money,
}

impl Tally {
    fn add(&mut self, patient: u32, settlement: &Settlement) {
        self.patients.push(patient);
        self.settlements += 1;
        // Saturating: a year's sum is far below Money::MAX.
        self.assistance = self
            .assistance
            .checked_add(settlement.outcome.assistance)
            .unwrap_or(Money::MAX);
        self.total_cost = self
            .total_cost
            .checked_add(settlement.claim.total_cost())
            .unwrap_or(Money::MAX);
        self.referrals += u64::from(settlement.referral.is_some());
    }

    fn figures(mut self) -> Figures {
        self.patients.sort_unstable();
        self.patients.dedup();
        Figures {
            persons: self.patients.len() as u64,
            settlements: self.settlements,
            assistance: self.assistance,
            referrals: self.referrals,
            total_cost: self.total_cost,
        }
    }
}

/// The fold: add the year's settlements, then read the figures.
pub struct YearTally {
    year: Year,
    patients: HashMap<ResidentId, u32>,
    total: Tally,
    months: [Tally; 12],
    classes: BTreeMap<usize, Tally>,
    regions: BTreeMap<RegionCode, Tally>,
    hospitals: BTreeMap<String, Tally>,
    cost_bands: [Tally; COST_BANDS.len()],
    chapters: BTreeMap<usize, Tally>,
}

impl YearTally {
    /// An empty tally of `year`.
    pub fn new(year: Year) -> YearTally {
        YearTally {
            year,
            patients: HashMap::new(),
            total: Tally::default(),
            months: Default::default(),
            classes: BTreeMap::new(),
            regions: BTreeMap::new(),
            hospitals: BTreeMap::new(),
            cost_bands: Default::default(),
            chapters: BTreeMap::new(),
        }
    }

    /// Adds `settlement` when it counts and was settled on a business day
    /// of the year; anything else is passed over.
    pub fn add(&mut self, settlement: &Settlement) {
        let Some((year, month)) = settlement.settled_day.year_month() else {
            return;
        };
        if year != self.year.get() || !settlement.counts() {
            return;
        }
        let next = self.patients.len() as u32;
        let id = settlement.claim.patient_id();
        let patient = match self.patients.get(id) {
            Some(number) => *number,
            None => {
                self.patients.insert(id.clone(), next);
                next
            }
        };
        self.total.add(patient, settlement);
        self.months[month as usize - 1].add(patient, settlement);
        let class = settlement
            .outcome
            .breakdown
            .as_ref()
            .and_then(|b| b.class)
            .and_then(|class| EnrollmentKind::ALL.iter().position(|k| *k == class))
            .unwrap_or(usize::MAX);
        self.classes
            .entry(class)
            .or_default()
            .add(patient, settlement);
        if let Some(cap) = &settlement.outcome.cap {
            let region = self.regions.entry(cap.region).or_default();
            region.add(patient, settlement);
        }
        // Looked up by reference first: a year has few hospitals and many stays.
        let hospital = settlement.claim.key().hospital_id.as_str();
        match self.hospitals.get_mut(hospital) {
            Some(tally) => tally.add(patient, settlement),
            None => {
                let mut tally = Tally::default();
                tally.add(patient, settlement);
                self.hospitals.insert(hospital.to_owned(), tally);
            }
        }
        self.cost_bands[cost_band(settlement.claim.total_cost())].add(patient, settlement);
        let chapter = settlement
            .claim
            .diagnosis_codes()
            .first()
            .and_then(chapter)
            .unwrap_or(usize::MAX);
        self.chapters
            .entry(chapter)
            .or_default()
            .add(patient, settlement);
    }

    /// The figures of everything added.
    pub fn figures(self) -> YearFigures {
        let year = self.year.get();
        let by_month = self
            .months
            .into_iter()
            .enumerate()
            .map(|(i, tally)| Group {
                key: format!("{year}-{:02}", i + 1),
                label: format!("{year}年{}月", i + 1),
                figures: tally.figures(),
            })
            .collect();
        let by_class = self
            .classes
            .into_iter()
            .map(|(class, tally)| {
                let (key, label) = EnrollmentKind::ALL
                    .get(class)
                    .map_or(NO_CLASS, |kind| (kind.as_str(), kind.chinese()));
                group(key, label, tally)
            })
            .collect();
        let by_region = self
            .regions
            .into_iter()
            .map(|(region, tally)| {
                let code = region.to_string();
                group(&code, &code, tally)
            })
            .collect();
        let mut by_hospital = named_by_key(self.hospitals);
        by_hospital.sort_by_key(|g| std::cmp::Reverse(g.figures.assistance));
        let by_cost_band = self
            .cost_bands
            .into_iter()
            .zip(COST_BANDS)
            .map(|(tally, (_, key, label))| group(key, label, tally))
            .collect();
        let by_disease_group = self
            .chapters
            .into_iter()
            .map(|(chapter, tally)| match CHAPTERS.get(chapter) {
                Some((first, last, label)) => group(&format!("{first}-{last}"), label, tally),
                None => group(OTHER_GROUP.0, OTHER_GROUP.1, tally),
            })
            .collect();
        YearFigures {
            total: self.total.figures(),
            by_month,
            by_class,
            by_region,
            by_hospital,
            by_cost_band,
            by_disease_group,
        }
    }
}

fn group(key: &str, label: &str, tally: Tally) -> Group {
    Group {
        key: key.to_owned(),
        label: label.to_owned(),
        figures: tally.figures(),
    }
}

fn named_by_key(tallies: BTreeMap<String, Tally>) -> Vec<Group> {
    tallies
        .into_iter()
        .map(|(key, tally)| group(&key, &key, tally))
        .collect()
}

/// The index in [`COST_BANDS`] of a stay of `total_cost`.
fn cost_band(total_cost: Money) -> usize {
    let yuan = total_cost.fen() / 100;
    COST_BANDS
        .iter()
        .rposition(|(lower, _, _)| yuan >= *lower)
        .unwrap_or(0)
}

/// The index in [`CHAPTERS`] of the chapter `code` is in.
fn chapter(code: &DiagnosisCode) -> Option<usize> {
    let category = code.as_str().get(..3)?;
    CHAPTERS
        .iter()
        .position(|(first, last, _)| (*first..=*last).contains(&category))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::{
        domain::{
            BusinessDay, Claim, ClaimInput, Date, PolicyBook, Reason, ReferralReason, RegionCode,
            Reversal, SettlementId, Timestamp, dibao_since_2020,
        },
        rules,
    };

    /// One generated stay: patient, month (0 for a day of 2025), hospital,
    /// total cost in yuan, diagnosis, enrolled, reversed, referred.
    type Stay = (u8, u8, u8, u32, usize, bool, bool, bool);

    const CODES: [&str; 4] = ["N18.5", "C34.1", "D49", "F20"];

    fn settlement(
        id: u64,
        (patient, month, hospital, cost, code, enrolled, reversed, referred): Stay,
    ) -> Settlement {
        let region = RegionCode::parse("320602").unwrap();
        let birth = Date::parse("1960-01-01").unwrap();
        let patient = ResidentId::compose(region, birth, u16::from(patient) + 1);
        let codes = vec![CODES[code].to_owned()];
        let total = format!("{}.00", cost + 1);
        let claim = Claim::parse(&ClaimInput {
            hospital_id: &format!("H{hospital:03}"),
            claim_id: &format!("C-{id}"),
            patient_id: patient.as_str(),
            admission_date: "2025-12-01",
            discharge_date: "2025-12-20",
            diagnosis_codes: &codes,
            total_cost: &total,
            in_scope_cost: &total,
            basic_insurance_paid: "0",
            critical_illness_paid: "0",
            claim_kind: Default::default(),
        })
        .unwrap();
        let person = dibao_since_2020(patient.as_str());
        let book = PolicyBook::builtin();
        let policy = book.lookup(region, claim.year()).unwrap();
        let roster = enrolled.then_some((&person, policy));
        let outcome = rules::apply_cap(&claim, &rules::assess(&claim, roster), Money::ZERO);
        let day = match month {
            0 => Date::from_ymd(2025, 12, 31),
            m => Date::from_ymd(2026, u32::from(m), 15),
        };
        let day = BusinessDay::from_date(day.unwrap());
        Settlement {
            id: SettlementId::new(id),
            claim,
            outcome,
            settled_at: Timestamp::from_unix_micros(0),
            settled_day: day,
            settled_by: "test".into(),
            referral: referred.then_some(ReferralReason::HighOutOfPocket),
            reversal: reversed.then(|| Reversal {
                at: Timestamp::from_unix_micros(0),
                reason: Reason::parse("test").unwrap(),
                day,
                by: "test".into(),
            }),
            application: None,
            superseded_by: None,
        }
    }

    fn sums(groups: &[Group]) -> (u64, i64, u64) {
        groups.iter().fold((0, 0, 0), |(n, fen, referrals), g| {
            (
                n + g.figures.settlements,
                fen + g.figures.assistance.fen(),
                referrals + g.figures.referrals,
            )
        })
    }

    proptest! {
        /// Proves every breakdown adds up to the whole year (the regions
        /// to the settlements of enrolled patients), that only what counts
        /// in 2026 is counted, and that persons are counted once.
        #[test]
        fn every_breakdown_adds_up_to_the_year(
            stays in proptest::collection::vec(
                (0u8..12, 0u8..=12, 0u8..4, 0u32..400_000, 0usize..4,
                 any::<bool>(), any::<bool>(), any::<bool>()),
                0..60,
            )
        ) {
            let settlements: Vec<Settlement> = stays
                .iter()
                .enumerate()
                .map(|(i, stay)| settlement(i as u64 + 1, *stay))
                .collect();
            let mut tally = YearTally::new(Year::parse(2026).unwrap());
            for s in &settlements {
                tally.add(s);
            }
            let year = tally.figures();
            let counted: Vec<&Settlement> = settlements
                .iter()
                .filter(|s| s.counts() && s.settled_day.year_month().unwrap().0 == 2026)
                .collect();
            let fen: i64 = counted.iter().map(|s| s.outcome.assistance.fen()).sum();
            let referrals = counted.iter().filter(|s| s.referral.is_some()).count() as u64;
            let mut persons: Vec<&ResidentId> =
                counted.iter().map(|s| s.claim.patient_id()).collect();
            persons.sort();
            persons.dedup();
            prop_assert_eq!(year.total.settlements, counted.len() as u64);
            prop_assert_eq!(year.total.assistance.fen(), fen);
            prop_assert_eq!(year.total.persons, persons.len() as u64);
            prop_assert_eq!(year.by_month.len(), 12);
            prop_assert_eq!(year.by_cost_band.len(), COST_BANDS.len());
            for groups in [
                &year.by_month,
                &year.by_class,
                &year.by_hospital,
                &year.by_cost_band,
                &year.by_disease_group,
            ] {
                prop_assert_eq!(sums(groups), (counted.len() as u64, fen, referrals));
                for g in groups.iter() {
                    prop_assert!(g.figures.persons <= g.figures.settlements.min(year.total.persons));
                }
            }
            let with_region = counted.iter().filter(|s| s.outcome.cap.is_some()).count() as u64;
            prop_assert_eq!(sums(&year.by_region).0, with_region);
        }
    }

    #[test]
    fn cost_bands_take_their_lower_bound_and_not_their_upper() {
        let band = |yuan: &str| COST_BANDS[cost_band(Money::parse(yuan).unwrap())].1;
        assert_eq!(band("0.00"), "0-10000");
        assert_eq!(band("9999.99"), "0-10000");
        assert_eq!(band("10000.00"), "10000-30000");
        assert_eq!(band("299999.99"), "100000-300000");
        assert_eq!(band("300000.00"), "300000-");
    }

    #[test]
    fn chapters_are_found_by_their_first_three_characters() {
        let of = |code: &str| chapter(&DiagnosisCode::parse(code).unwrap()).map(|i| CHAPTERS[i].2);
        assert_eq!(of("C34.1"), Some("肿瘤"));
        assert_eq!(of("D48"), Some("肿瘤"));
        assert_eq!(
            of("D50.0"),
            Some("血液及造血器官疾病和某些涉及免疫机制的疾患")
        );
        assert_eq!(of("N18.5"), Some("泌尿生殖系统疾病"));
        assert_eq!(of("H60"), Some("耳和乳突疾病"));
        assert_eq!(of("T98.3"), Some("损伤、中毒和外因的某些其他后果"));
    }
}
