//! The roster validator never panics, and the eligibility rules run on
//! anything it accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medassist::{
    domain::{Date, EnrollmentInput, EnrollmentKind, ExitKind, GracePeriods, Person, PersonInput},
    rules,
};

const KINDS: [Option<EnrollmentKind>; 5] = [
    None,
    Some(EnrollmentKind::Dibao),
    Some(EnrollmentKind::Tekun),
    Some(EnrollmentKind::LowIncomeFamily),
    Some(EnrollmentKind::RegisteredPoor),
];
const EXITS: [Option<ExitKind>; 4] = [None, Some(ExitKind::Plain), Some(ExitKind::GradualExit), Some(ExitKind::LeftPoverty)];

fuzz_target!(|fields: ([&str; 3], Vec<(u8, &str, &str, u8)>, i32, bool, u8, u8)| {
    let ([patient_id, name, region_code], enrollments, grade, paralysis, grace_a, grace_b) = fields;
    let enrollments = enrollments
        .iter()
        .map(|(kind, from, to, exit)| EnrollmentInput {
            kind: KINDS[usize::from(*kind) % KINDS.len()],
            valid_from: from,
            valid_to: to,
            exit: EXITS[usize::from(*exit) % EXITS.len()],
        })
        .collect();
    let input = PersonInput {
        patient_id,
        name,
        region_code,
        enrollments,
        psychiatric_disability_grade: grade,
        paralysis_certified: paralysis,
    };
    let Ok(person) = Person::parse(&input) else { return };
    let grace = GracePeriods { gradual_exit_months: u32::from(grace_a), left_poverty_months: u32::from(grace_b) };
    let (first, last) = (Date::parse("1900-01-01").unwrap(), Date::parse("2099-12-31").unwrap());
    let _ = rules::enrolled_during(&person, grace, first, last);
});
