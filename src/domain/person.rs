//! The roster: who belongs to an assisted population, from when to when, and
//! what conditions are certified.

use serde::{Deserialize, Serialize};

use super::{Date, ParseError, PersonName, RegionCode, ResidentId, Violations};

/// Most enrollments one person's record may hold.
pub const ENROLLMENTS_MAX: usize = 32;

/// The assisted populations of the policy.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub enum EnrollmentKind {
    /// 低保: minimum living guarantee household.
    Dibao,
    /// 特困: destitute person under state support.
    Tekun,
    /// 低收入家庭: household just above the dibao line.
    LowIncomeFamily,
    /// 建档立卡低收入人口: on the poverty-alleviation register.
    RegisteredPoor,
    /// 防返贫监测对象: a household monitored for a return to poverty (2021
    /// framework). New kinds are appended: records are stored by variant
    /// index, so the order of the first four never changes.
    MonitoredForReturn,
    /// 低保边缘: a household at the margin of dibao (2021 framework).
    LowIncomeMargin,
    /// 因病致贫重病患者: a seriously ill person impoverished by the cost of care.
    ImpoverishedByIllness,
}

impl EnrollmentKind {
    /// Every kind, in the order ties between equally favourable classes are
    /// broken (the most protected first).
    pub const ALL: [EnrollmentKind; 7] = [
        EnrollmentKind::Tekun,
        EnrollmentKind::Dibao,
        EnrollmentKind::LowIncomeFamily,
        EnrollmentKind::RegisteredPoor,
        EnrollmentKind::LowIncomeMargin,
        EnrollmentKind::MonitoredForReturn,
        EnrollmentKind::ImpoverishedByIllness,
    ];

    /// The populations of the seed policy (三(一)2): its floors bind them.
    pub fn in_seed(self) -> bool {
        matches!(
            self,
            EnrollmentKind::Dibao
                | EnrollmentKind::Tekun
                | EnrollmentKind::LowIncomeFamily
                | EnrollmentKind::RegisteredPoor
        )
    }

    /// The snake_case name used in policy files and exports (`tekun`).
    pub fn as_str(self) -> &'static str {
        match self {
            EnrollmentKind::Dibao => "dibao",
            EnrollmentKind::Tekun => "tekun",
            EnrollmentKind::LowIncomeFamily => "low_income_family",
            EnrollmentKind::RegisteredPoor => "registered_poor",
            EnrollmentKind::MonitoredForReturn => "monitored_for_return",
            EnrollmentKind::LowIncomeMargin => "low_income_margin",
            EnrollmentKind::ImpoverishedByIllness => "impoverished_by_illness",
        }
    }

    /// The Chinese name a clerk reads (`特困`).
    pub fn chinese(self) -> &'static str {
        match self {
            EnrollmentKind::Dibao => "低保",
            EnrollmentKind::Tekun => "特困",
            EnrollmentKind::LowIncomeFamily => "低收入家庭",
            EnrollmentKind::RegisteredPoor => "建档立卡低收入人口",
            EnrollmentKind::MonitoredForReturn => "防返贫监测对象",
            EnrollmentKind::LowIncomeMargin => "低保边缘",
            EnrollmentKind::ImpoverishedByIllness => "因病致贫重病患者",
        }
    }

    /// Reads a kind by any of its names: snake_case (`tekun`), the wire's
    /// upper case with or without its prefix (`ENROLLMENT_KIND_TEKUN`,
    /// `TEKUN`), or Chinese (`特困`, with the short forms civil affairs
    /// files use: `建档立卡`, `监测对象`, `因病致贫`).
    pub fn parse_name(text: &str) -> Result<EnrollmentKind, ParseError> {
        let upper = text.to_ascii_uppercase();
        let bare = upper.strip_prefix("ENROLLMENT_KIND_").unwrap_or(&upper);
        let found = EnrollmentKind::ALL
            .into_iter()
            .find(|kind| bare.eq_ignore_ascii_case(kind.as_str()) || text == kind.chinese());
        let short = match text {
            "建档立卡" => Some(EnrollmentKind::RegisteredPoor),
            "防返贫监测" | "监测对象" => Some(EnrollmentKind::MonitoredForReturn),
            "低保边缘家庭" => Some(EnrollmentKind::LowIncomeMargin),
            "因病致贫" | "因病致贫重病患者家庭" => {
                Some(EnrollmentKind::ImpoverishedByIllness)
            }
            _ => None,
        };
        found.or(short).ok_or_else(|| {
            let names: Vec<String> = EnrollmentKind::ALL
                .iter()
                .map(|k| format!("{} ({})", k.as_str(), k.chinese()))
                .collect();
            ParseError::new(format!(
                "{text:?} is not an assisted class; one of {}",
                names.join(", ")
            ))
        })
    }
}

/// How an enrollment ended, which may extend it by a grace period.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub enum ExitKind {
    /// Ended without a grace period, or has not ended.
    Plain,
    /// 缓退: a dibao household that left through work keeps its benefits a
    /// while longer (dibao only).
    GradualExit,
    /// 脱贫: a registered poor person who left poverty keeps the support
    /// policies a while longer (registered poor only).
    LeftPoverty,
}

/// One period of membership of an assisted population; both days inclusive.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Enrollment {
    kind: EnrollmentKind,
    valid_from: Date,
    valid_to: Option<Date>,
    exit: ExitKind,
}

impl Enrollment {
    /// The population enrolled in.
    pub fn kind(&self) -> EnrollmentKind {
        self.kind
    }
    /// The first day of membership.
    pub fn valid_from(&self) -> Date {
        self.valid_from
    }
    /// The last day of membership before any grace period; `None` while open.
    pub fn valid_to(&self) -> Option<Date> {
        self.valid_to
    }
    /// How the membership ended.
    pub fn exit(&self) -> ExitKind {
        self.exit
    }
}

/// A certified psychiatric disability grade: 0 for none, 1 (most severe) to 4.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Default, Serialize, Deserialize)]
pub struct PsychiatricGrade(u8);

impl PsychiatricGrade {
    /// Accepts 0 to 4.
    pub fn parse(grade: i32) -> Result<PsychiatricGrade, ParseError> {
        u8::try_from(grade)
            .ok()
            .filter(|g| *g <= 4)
            .map(PsychiatricGrade)
            .ok_or_else(|| ParseError::new("must be 0 (none) or a grade from 1 to 4"))
    }

    /// The grade as a number, 0 for none.
    pub fn get(self) -> u8 {
        self.0
    }
}

/// One person's roster record.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Person {
    id: ResidentId,
    name: PersonName,
    region: RegionCode,
    enrollments: Vec<Enrollment>,
    psychiatric_grade: PsychiatricGrade,
    paralysis_certified: bool,
}

impl Person {
    /// The resident ID number: the patient key.
    pub fn id(&self) -> &ResidentId {
        &self.id
    }
    /// The person's name.
    pub fn name(&self) -> &PersonName {
        &self.name
    }
    /// The region whose policy applies to this person (not the ID's digits).
    pub fn region(&self) -> RegionCode {
        self.region
    }
    /// Every period of membership of an assisted population.
    pub fn enrollments(&self) -> &[Enrollment] {
        &self.enrollments
    }
    /// The certified psychiatric disability grade.
    pub fn psychiatric_grade(&self) -> PsychiatricGrade {
        self.psychiatric_grade
    }
    /// Paralysis by illness with loss of working capacity, certified.
    pub fn paralysis_certified(&self) -> bool {
        self.paralysis_certified
    }

    /// What writing this record over `before` changes, for the audit trail:
    /// the fields by name, enrollments added and ended by kind and dates.
    /// Certified conditions and names are named, never their values.
    pub fn changes_from(&self, before: Option<&Person>) -> String {
        let Some(before) = before else {
            let enrollments: Vec<String> = self.enrollments.iter().map(Enrollment::label).collect();
            return format!(
                "created in region {}; enrollments: {}",
                self.region,
                if enrollments.is_empty() {
                    "none".to_owned()
                } else {
                    enrollments.join(", ")
                }
            );
        };
        let mut changes = Vec::new();
        if self.name != before.name {
            changes.push("name".to_owned());
        }
        if self.region != before.region {
            changes.push(format!("region {} -> {}", before.region, self.region));
        }
        for gone in before
            .enrollments
            .iter()
            .filter(|e| !self.enrollments.contains(e))
        {
            changes.push(format!("- {}", gone.label()));
        }
        for added in self
            .enrollments
            .iter()
            .filter(|e| !before.enrollments.contains(e))
        {
            changes.push(format!("+ {}", added.label()));
        }
        if self.psychiatric_grade != before.psychiatric_grade {
            changes.push("psychiatric_grade".to_owned());
        }
        if self.paralysis_certified != before.paralysis_certified {
            changes.push("paralysis_certified".to_owned());
        }
        match changes.is_empty() {
            true => "unchanged".to_owned(),
            false => format!("changed: {}", changes.join("; ")),
        }
    }
}

impl Enrollment {
    /// The enrollment as the audit trail names it: kind and dates.
    fn label(&self) -> String {
        let to = self
            .valid_to
            .map_or_else(|| "open".to_owned(), |d| d.to_string());
        format!("{:?} {}..{to}", self.kind, self.valid_from)
    }
}

/// A roster record as a caller sends it, before any check.
#[derive(Clone, Debug, Default)]
pub struct PersonInput<'a> {
    /// `patient_id` on the wire.
    pub patient_id: &'a str,
    /// The person's name.
    pub name: &'a str,
    /// Six-digit region code.
    pub region_code: &'a str,
    /// The enrollments, in the order sent.
    pub enrollments: Vec<EnrollmentInput<'a>>,
    /// 0 to 4.
    pub psychiatric_disability_grade: i32,
    /// Certified paralysis.
    pub paralysis_certified: bool,
}

/// An enrollment as a caller sends it. `None` kinds are values the wire did
/// not know (or left unspecified, for `kind`).
#[derive(Clone, Debug, Default)]
pub struct EnrollmentInput<'a> {
    /// The population; `None` when unspecified or unknown.
    pub kind: Option<EnrollmentKind>,
    /// `YYYY-MM-DD`.
    pub valid_from: &'a str,
    /// `YYYY-MM-DD`, or empty while open.
    pub valid_to: &'a str,
    /// The exit; `None` when the wire value is unknown.
    pub exit: Option<ExitKind>,
}

impl Person {
    /// Checks every field of a roster record and reports every violation,
    /// named by its wire path.
    pub fn parse(input: &PersonInput<'_>) -> Result<Person, Violations> {
        let mut violations = Violations::new();
        let id = violations.check("patient_id", ResidentId::parse(input.patient_id));
        let name = violations.check("name", PersonName::parse(input.name));
        let region = violations.check("region_code", RegionCode::parse(input.region_code));
        let grade = violations.check(
            "psychiatric_disability_grade",
            PsychiatricGrade::parse(input.psychiatric_disability_grade),
        );
        let mut enrollments = Vec::new();
        if input.enrollments.len() > ENROLLMENTS_MAX {
            violations.add(
                "enrollments",
                format!("at most {ENROLLMENTS_MAX} enrollments per person"),
            );
        } else {
            for (i, enrollment) in input.enrollments.iter().enumerate() {
                match Enrollment::parse(enrollment) {
                    Ok(enrollment) => enrollments.push(enrollment),
                    Err(inner) => violations.nest(&format!("enrollments[{i}]"), inner),
                }
            }
        }
        violations.finish(|| {
            Some(Person {
                id: id?,
                name: name?,
                region: region?,
                enrollments,
                psychiatric_grade: grade?,
                paralysis_certified: input.paralysis_certified,
            })
        })
    }
}

impl Enrollment {
    fn parse(input: &EnrollmentInput<'_>) -> Result<Enrollment, Violations> {
        let mut violations = Violations::new();
        let kind = input.kind;
        if kind.is_none() {
            violations.add(
                "kind",
                "required: ENROLLMENT_KIND_DIBAO, ENROLLMENT_KIND_TEKUN, \
                 ENROLLMENT_KIND_LOW_INCOME_FAMILY, ENROLLMENT_KIND_REGISTERED_POOR, \
                 ENROLLMENT_KIND_MONITORED_FOR_RETURN, ENROLLMENT_KIND_LOW_INCOME_MARGIN or \
                 ENROLLMENT_KIND_IMPOVERISHED_BY_ILLNESS",
            );
        }
        let valid_from = violations.check("valid_from", Date::parse(input.valid_from));
        let valid_to = if input.valid_to.is_empty() {
            Some(None)
        } else {
            violations
                .check("valid_to", Date::parse(input.valid_to))
                .map(Some)
        };
        if let (Some(from), Some(Some(to))) = (valid_from, valid_to)
            && to < from
        {
            violations.add("valid_to", "is before valid_from");
        }
        match (input.exit, kind) {
            (None, _) => violations.add("exit", "is not a known exit kind: EXIT_KIND_UNSPECIFIED, EXIT_KIND_GRADUAL_EXIT or EXIT_KIND_LEFT_POVERTY"),
            (Some(ExitKind::GradualExit), Some(k)) if k != EnrollmentKind::Dibao => {
                violations.add("exit", "EXIT_KIND_GRADUAL_EXIT applies to ENROLLMENT_KIND_DIBAO only")
            }
            (Some(ExitKind::LeftPoverty), Some(k)) if k != EnrollmentKind::RegisteredPoor => {
                violations.add(
                    "exit",
                    "EXIT_KIND_LEFT_POVERTY applies to ENROLLMENT_KIND_REGISTERED_POOR only",
                )
            }
            (Some(ExitKind::GradualExit | ExitKind::LeftPoverty), _) if valid_to == Some(None) => {
                violations.add("valid_to", "an exit needs the day the enrollment ended")
            }
            _ => {}
        }
        violations.finish(|| {
            Some(Enrollment {
                kind: kind?,
                valid_from: valid_from?,
                valid_to: valid_to?,
                exit: input.exit?,
            })
        })
    }
}

/// For unit tests elsewhere in the crate: a person of Zhangjiagang's
/// district 320602 on dibao since 2020, never ended.
#[cfg(test)]
pub(crate) fn dibao_since_2020(patient: &str) -> Person {
    Person::parse(&PersonInput {
        patient_id: patient,
        name: "张三",
        region_code: "320602",
        enrollments: vec![EnrollmentInput {
            kind: Some(EnrollmentKind::Dibao),
            valid_from: "2020-01-01",
            valid_to: "",
            exit: Some(ExitKind::Plain),
        }],
        psychiatric_disability_grade: 0,
        paralysis_certified: false,
    })
    .expect("a valid person")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::resident_id::tests::with_check;

    fn enrollment<'a>(
        kind: EnrollmentKind,
        from: &'a str,
        to: &'a str,
        exit: ExitKind,
    ) -> EnrollmentInput<'a> {
        EnrollmentInput {
            kind: Some(kind),
            valid_from: from,
            valid_to: to,
            exit: Some(exit),
        }
    }

    fn fields(result: Result<Person, Violations>) -> Vec<String> {
        result
            .unwrap_err()
            .iter()
            .map(|v| v.field.clone())
            .collect()
    }

    #[test]
    fn a_whole_record_parses() {
        let id = with_check("32060219500101123");
        let input = PersonInput {
            patient_id: &id,
            name: "王五",
            region_code: "320602",
            enrollments: vec![
                enrollment(
                    EnrollmentKind::Dibao,
                    "2020-01-01",
                    "2025-11-30",
                    ExitKind::GradualExit,
                ),
                enrollment(EnrollmentKind::Tekun, "2026-01-01", "", ExitKind::Plain),
            ],
            psychiatric_disability_grade: 2,
            paralysis_certified: true,
        };
        let person = Person::parse(&input).unwrap();
        assert_eq!(person.region().to_string(), "320602");
        assert_eq!(person.enrollments().len(), 2);
        assert_eq!(person.enrollments()[1].valid_to(), None);
        assert_eq!(person.psychiatric_grade().get(), 2);
    }

    #[test]
    fn every_bad_field_is_named() {
        let input = PersonInput {
            patient_id: "123",
            name: "",
            region_code: "32060",
            enrollments: vec![
                enrollment(
                    EnrollmentKind::Tekun,
                    "2025-05-01",
                    "2025-04-30",
                    ExitKind::GradualExit,
                ),
                enrollment(
                    EnrollmentKind::Dibao,
                    "2025-05-01",
                    "",
                    ExitKind::LeftPoverty,
                ),
                EnrollmentInput {
                    kind: None,
                    valid_from: "x",
                    valid_to: "",
                    exit: None,
                },
                enrollment(
                    EnrollmentKind::Dibao,
                    "2025-05-01",
                    "",
                    ExitKind::GradualExit,
                ),
            ],
            psychiatric_disability_grade: 5,
            paralysis_certified: false,
        };
        assert_eq!(
            fields(Person::parse(&input)),
            [
                "patient_id",
                "name",
                "region_code",
                "psychiatric_disability_grade",
                "enrollments[0].valid_to",
                "enrollments[0].exit",
                "enrollments[1].exit",
                "enrollments[2].kind",
                "enrollments[2].valid_from",
                "enrollments[2].exit",
                "enrollments[3].valid_to",
            ]
        );
    }

    #[test]
    fn kinds_are_read_by_every_name() {
        for kind in EnrollmentKind::ALL {
            assert_eq!(EnrollmentKind::parse_name(kind.as_str()), Ok(kind));
            assert_eq!(EnrollmentKind::parse_name(kind.chinese()), Ok(kind));
            let wire = format!("ENROLLMENT_KIND_{}", kind.as_str().to_uppercase());
            assert_eq!(EnrollmentKind::parse_name(&wire), Ok(kind));
        }
        assert_eq!(
            EnrollmentKind::parse_name("建档立卡"),
            Ok(EnrollmentKind::RegisteredPoor)
        );
        let refused = EnrollmentKind::parse_name("五保").unwrap_err();
        assert!(refused.description().contains("特困"));
    }

    /// Proves the kinds of today keep their stored numbers: records are
    /// stored by variant index, and new kinds only come after them.
    #[test]
    fn stored_kinds_keep_their_numbers() {
        let index = |kind: EnrollmentKind| postcard::to_stdvec(&kind).unwrap();
        assert_eq!(index(EnrollmentKind::Dibao), [0]);
        assert_eq!(index(EnrollmentKind::RegisteredPoor), [3]);
        assert_eq!(index(EnrollmentKind::ImpoverishedByIllness), [6]);
    }

    #[test]
    fn enrollments_are_bounded() {
        let id = with_check("32060219500101123");
        let input = PersonInput {
            patient_id: &id,
            name: "王五",
            region_code: "320602",
            enrollments: vec![
                enrollment(EnrollmentKind::Tekun, "2020-01-01", "", ExitKind::Plain);
                ENROLLMENTS_MAX + 1
            ],
            ..PersonInput::default()
        };
        assert_eq!(fields(Person::parse(&input)), ["enrollments"]);
    }
}
