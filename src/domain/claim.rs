//! A discharge claim, as a hospital's billing system sends it.

use serde::{Deserialize, Serialize};

use super::{ClaimId, Date, DiagnosisCode, HospitalId, Money, ResidentId, Violations, Year};

/// Most diagnosis codes one claim may carry.
pub const DIAGNOSIS_CODES_MAX: usize = 32;

/// (hospital, claim number): the key of one settlement, used once forever.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct ClaimKey {
    /// The hospital that sent the claim.
    pub hospital_id: HospitalId,
    /// The hospital's claim number.
    pub claim_id: ClaimId,
}

impl ClaimKey {
    /// Checks both parts, naming the wire fields of any that are wrong.
    pub fn parse(hospital_id: &str, claim_id: &str) -> Result<ClaimKey, Violations> {
        let mut violations = Violations::new();
        let hospital_id = violations.check("hospital_id", HospitalId::parse(hospital_id));
        let claim_id = violations.check("claim_id", ClaimId::parse(claim_id));
        violations.finish(|| {
            Some(ClaimKey {
                hospital_id: hospital_id?,
                claim_id: claim_id?,
            })
        })
    }
}

/// What kind of care a claim bills: inpatient stays and chronic or special
/// disease outpatient care (门诊慢特病) share one annual cap, and a policy
/// may give outpatient care a sub-cap of its own.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default, Serialize, Deserialize)]
pub enum ClaimKind {
    /// 住院: an inpatient stay (what every claim was before kinds existed).
    #[default]
    Inpatient,
    /// 门诊慢特病: chronic or special disease outpatient care.
    OutpatientChronic,
}

impl ClaimKind {
    /// The snake_case name of exports and policy files.
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimKind::Inpatient => "inpatient",
            ClaimKind::OutpatientChronic => "outpatient_chronic",
        }
    }

    /// The Chinese name a clerk reads.
    pub fn chinese(self) -> &'static str {
        match self {
            ClaimKind::Inpatient => "住院",
            ClaimKind::OutpatientChronic => "门诊慢特病",
        }
    }
}

/// The claim kind as the wire sent it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum ClaimKindSent {
    /// Not stated: an inpatient stay, as before kinds existed.
    #[default]
    Unstated,
    /// A known kind.
    Known(ClaimKind),
    /// A value the wire does not know.
    Unknown(i32),
}

/// A checked claim. Its amounts are consistent: in-scope cost within the
/// total, and the two insurances' payments within the in-scope cost.
///
/// Two claims are equal when every field is; diagnosis codes are kept sorted
/// and without repeats, so their order does not make a retry "different".
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Claim {
    key: ClaimKey,
    patient_id: ResidentId,
    admission_date: Date,
    discharge_date: Date,
    diagnosis_codes: Vec<DiagnosisCode>,
    total_cost: Money,
    in_scope_cost: Money,
    basic_insurance_paid: Money,
    critical_illness_paid: Money,
    /// Not in the claim's own encoding, which older records share: a
    /// settlement carries it after its other fields (see `Settlement`).
    #[serde(skip)]
    kind: ClaimKind,
}

/// A claim as a caller sends it, before any check; field names are the wire's.
#[derive(Clone, Debug, Default)]
pub struct ClaimInput<'a> {
    /// The hospital's code.
    pub hospital_id: &'a str,
    /// The hospital's claim number.
    pub claim_id: &'a str,
    /// The resident ID number.
    pub patient_id: &'a str,
    /// `YYYY-MM-DD`.
    pub admission_date: &'a str,
    /// `YYYY-MM-DD`.
    pub discharge_date: &'a str,
    /// ICD-10 codes, in any order.
    pub diagnosis_codes: &'a [String],
    /// The whole bill, in yuan.
    pub total_cost: &'a str,
    /// The part insurance rules cover.
    pub in_scope_cost: &'a str,
    /// What basic insurance paid.
    pub basic_insurance_paid: &'a str,
    /// What critical-illness insurance paid.
    pub critical_illness_paid: &'a str,
    /// Inpatient or chronic outpatient; unstated means inpatient.
    pub claim_kind: ClaimKindSent,
}

impl Claim {
    /// Checks every field and the relations between them, reporting every
    /// violation at once by wire field name.
    pub fn parse(input: &ClaimInput<'_>) -> Result<Claim, Violations> {
        let mut violations = Violations::new();
        let key = ClaimKey::parse(input.hospital_id, input.claim_id)
            .map_err(|inner| violations.extend(inner))
            .ok();
        let patient_id = violations.check("patient_id", ResidentId::parse(input.patient_id));
        let admission = violations.check("admission_date", Date::parse(input.admission_date));
        let discharge = violations.check("discharge_date", Date::parse(input.discharge_date));
        if let (Some(admission), Some(discharge)) = (admission, discharge)
            && admission > discharge
        {
            violations.add("discharge_date", "is before admission_date");
        }
        let diagnosis_codes = parse_codes(input.diagnosis_codes, &mut violations);
        let total = violations.check("total_cost", Money::parse(input.total_cost));
        let in_scope = violations.check("in_scope_cost", Money::parse(input.in_scope_cost));
        let basic = violations.check(
            "basic_insurance_paid",
            Money::parse(input.basic_insurance_paid),
        );
        let critical = violations.check(
            "critical_illness_paid",
            Money::parse(input.critical_illness_paid),
        );
        if let (Some(total), Some(in_scope)) = (total, in_scope)
            && in_scope > total
        {
            violations.add("in_scope_cost", "is more than total_cost");
        }
        if let (Some(in_scope), Some(basic), Some(critical)) = (in_scope, basic, critical)
            && basic
                .checked_add(critical)
                .is_none_or(|paid| paid > in_scope)
        {
            violations.add(
                "critical_illness_paid",
                "basic_insurance_paid + critical_illness_paid is more than in_scope_cost",
            );
        }
        let kind = match input.claim_kind {
            ClaimKindSent::Unstated => Some(ClaimKind::Inpatient),
            ClaimKindSent::Known(kind) => Some(kind),
            ClaimKindSent::Unknown(value) => {
                violations.add(
                    "claim_kind",
                    format!(
                        "{value} is not a claim kind: CLAIM_KIND_INPATIENT or \
                         CLAIM_KIND_OUTPATIENT_CHRONIC"
                    ),
                );
                None
            }
        };
        violations.finish(|| {
            Some(Claim {
                kind: kind?,
                key: key?,
                patient_id: patient_id?,
                admission_date: admission?,
                discharge_date: discharge?,
                diagnosis_codes: diagnosis_codes?,
                total_cost: total?,
                in_scope_cost: in_scope?,
                basic_insurance_paid: basic?,
                critical_illness_paid: critical?,
            })
        })
    }

    /// Inpatient or chronic outpatient care.
    pub fn kind(&self) -> ClaimKind {
        self.kind
    }

    /// The same claim of another kind (a stored settlement's claim gets its
    /// kind back this way: see `Settlement`).
    pub fn with_kind(mut self, kind: ClaimKind) -> Claim {
        self.kind = kind;
        self
    }

    /// The same stay under another key: a top-up application's (see
    /// `Application::top_up`).
    pub fn rekeyed(mut self, key: ClaimKey) -> Claim {
        self.key = key;
        self
    }

    /// The settlement key.
    pub fn key(&self) -> &ClaimKey {
        &self.key
    }
    /// The patient's resident ID number.
    pub fn patient_id(&self) -> &ResidentId {
        &self.patient_id
    }
    /// The first day of the stay.
    pub fn admission_date(&self) -> Date {
        self.admission_date
    }
    /// The last day of the stay; its year is the cap year.
    pub fn discharge_date(&self) -> Date {
        self.discharge_date
    }
    /// The cap year: the calendar year of the discharge date.
    pub fn year(&self) -> Year {
        self.discharge_date.year()
    }
    /// Diagnosis codes, sorted and without repeats.
    pub fn diagnosis_codes(&self) -> &[DiagnosisCode] {
        &self.diagnosis_codes
    }
    /// The whole bill.
    pub fn total_cost(&self) -> Money {
        self.total_cost
    }
    /// The part of the bill insurance rules cover.
    pub fn in_scope_cost(&self) -> Money {
        self.in_scope_cost
    }
    /// What basic medical insurance paid.
    pub fn basic_insurance_paid(&self) -> Money {
        self.basic_insurance_paid
    }
    /// What critical-illness insurance paid.
    pub fn critical_illness_paid(&self) -> Money {
        self.critical_illness_paid
    }
    /// What the two insurances paid together (within the in-scope cost, so in range).
    pub fn insurance_paid(&self) -> Money {
        self.basic_insurance_paid
            .checked_add(self.critical_illness_paid)
            .unwrap_or(self.in_scope_cost)
    }
    /// In-scope cost minus what basic and critical-illness insurance paid.
    pub fn in_scope_out_of_pocket(&self) -> Money {
        self.in_scope_cost.saturating_sub(self.insurance_paid())
    }
}

fn parse_codes(codes: &[String], violations: &mut Violations) -> Option<Vec<DiagnosisCode>> {
    if codes.is_empty() {
        violations.add("diagnosis_codes", "required: at least one ICD-10 code");
        return None;
    }
    if codes.len() > DIAGNOSIS_CODES_MAX {
        violations.add(
            "diagnosis_codes",
            format!("at most {DIAGNOSIS_CODES_MAX} codes per claim"),
        );
        return None;
    }
    let mut parsed = Vec::with_capacity(codes.len());
    for (i, code) in codes.iter().enumerate() {
        parsed.push(violations.check(&format!("diagnosis_codes[{i}]"), DiagnosisCode::parse(code)));
    }
    let mut parsed: Vec<DiagnosisCode> = parsed.into_iter().collect::<Option<_>>()?;
    parsed.sort();
    parsed.dedup();
    Some(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::resident_id::tests::with_check;

    fn codes(list: &[&str]) -> Vec<String> {
        list.iter().map(|c| c.to_string()).collect()
    }

    fn fields(result: Result<Claim, Violations>) -> Vec<String> {
        result
            .unwrap_err()
            .iter()
            .map(|v| v.field.clone())
            .collect()
    }

    #[test]
    fn the_worked_example_parses() {
        let id = with_check("32060219600101123");
        let codes = codes(&["n18.5", "C34.900", "N18.5"]);
        let claim = Claim::parse(&ClaimInput {
            hospital_id: "H001",
            claim_id: "C-1",
            patient_id: &id,
            admission_date: "2026-03-01",
            discharge_date: "2026-03-20",
            diagnosis_codes: &codes,
            total_cost: "50000",
            in_scope_cost: "42000.00",
            basic_insurance_paid: "25200",
            critical_illness_paid: "6300.0",
            claim_kind: ClaimKindSent::Unstated,
        })
        .unwrap();
        assert_eq!(claim.in_scope_out_of_pocket().to_string(), "10500.00");
        assert_eq!(claim.year().get(), 2026);
        let shown: Vec<_> = claim.diagnosis_codes().iter().map(|c| c.as_str()).collect();
        assert_eq!(shown, ["C34.900", "N18.5"]);
    }

    #[test]
    fn every_bad_field_is_named_at_once() {
        let bad_codes = codes(&["C34", "??"]);
        let input = ClaimInput {
            hospital_id: "",
            claim_id: "a b",
            patient_id: "110105194912310021",
            admission_date: "2026-02-30",
            discharge_date: "2026-13-01",
            diagnosis_codes: &bad_codes,
            total_cost: "-1",
            in_scope_cost: "1e5",
            basic_insurance_paid: "0.001",
            critical_illness_paid: "NaN",
            claim_kind: ClaimKindSent::Unknown(9),
        };
        assert_eq!(
            fields(Claim::parse(&input)),
            [
                "hospital_id",
                "claim_id",
                "patient_id",
                "admission_date",
                "discharge_date",
                "diagnosis_codes[1]",
                "total_cost",
                "in_scope_cost",
                "basic_insurance_paid",
                "critical_illness_paid",
                "claim_kind",
            ]
        );
    }

    #[test]
    fn relations_between_fields_are_checked() {
        let id = with_check("32060219600101123");
        let one = codes(&["N18"]);
        let base = ClaimInput {
            hospital_id: "H001",
            claim_id: "C-1",
            patient_id: &id,
            admission_date: "2026-03-01",
            discharge_date: "2026-03-01",
            diagnosis_codes: &one,
            total_cost: "100",
            in_scope_cost: "100",
            basic_insurance_paid: "60",
            critical_illness_paid: "40",
            claim_kind: ClaimKindSent::Known(ClaimKind::OutpatientChronic),
        };
        assert!(
            Claim::parse(&base).is_ok(),
            "same-day stay and fully paid scope are fine"
        );
        let reversed_stay = ClaimInput {
            admission_date: "2026-03-02",
            ..base.clone()
        };
        assert_eq!(fields(Claim::parse(&reversed_stay)), ["discharge_date"]);
        let scope_over_total = ClaimInput {
            in_scope_cost: "100.01",
            ..base.clone()
        };
        assert_eq!(fields(Claim::parse(&scope_over_total)), ["in_scope_cost"]);
        let overpaid = ClaimInput {
            critical_illness_paid: "40.01",
            ..base.clone()
        };
        assert_eq!(fields(Claim::parse(&overpaid)), ["critical_illness_paid"]);
        let none: Vec<String> = Vec::new();
        assert_eq!(
            fields(Claim::parse(&ClaimInput {
                diagnosis_codes: &none,
                ..base.clone()
            })),
            ["diagnosis_codes"]
        );
        let many = codes(&["N18"; DIAGNOSIS_CODES_MAX + 1]);
        assert_eq!(
            fields(Claim::parse(&ClaimInput {
                diagnosis_codes: &many,
                ..base
            })),
            ["diagnosis_codes"]
        );
    }
}
