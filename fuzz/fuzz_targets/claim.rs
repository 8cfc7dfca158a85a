//! The settle request validator never panics; an accepted claim's amounts
//! are consistent, and the rules settle it for an enrolled patient with the
//! four payers adding up to the bill and the cap respected.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medassist::{
    domain::{Claim, ClaimInput, EnrollmentInput, EnrollmentKind, ExitKind, Money, Person, PersonInput, PolicyBook, RegionCode},
    rules,
};

fuzz_target!(|fields: ([&str; 9], Vec<String>, u64)| {
    let ([hospital_id, claim_id, patient_id, admission, discharge, total, in_scope, basic, critical], codes, used) = fields;
    let input = ClaimInput {
        hospital_id,
        claim_id,
        patient_id,
        admission_date: admission,
        discharge_date: discharge,
        diagnosis_codes: &codes,
        total_cost: total,
        in_scope_cost: in_scope,
        basic_insurance_paid: basic,
        critical_illness_paid: critical,
        claim_kind: Default::default(),
    };
    let Ok(claim) = Claim::parse(&input) else { return };
    assert!(claim.in_scope_cost() <= claim.total_cost());
    assert!(claim.insurance_paid() <= claim.in_scope_cost());
    assert!(claim.admission_date() <= claim.discharge_date());

    let person = Person::parse(&PersonInput {
        patient_id: claim.patient_id().as_str(),
        name: "fuzz",
        region_code: "320602",
        enrollments: vec![EnrollmentInput {
            kind: Some(EnrollmentKind::Dibao),
            valid_from: "1900-01-01",
            valid_to: "",
            exit: Some(ExitKind::Plain),
        }],
        psychiatric_disability_grade: 0,
        paralysis_certified: false,
    })
    .unwrap();
    let book = PolicyBook::builtin();
    let policy = book.lookup(RegionCode::parse("320602").unwrap(), claim.year()).unwrap();
    let used = Money::from_fen((used % 20_000_000) as i64).unwrap();
    let outcome = rules::apply_cap(&claim, &rules::assess(&claim, Some((&person, policy))), used);
    assert!(outcome.assistance <= claim.in_scope_out_of_pocket());
    assert!(outcome.assistance <= policy.annual_cap().saturating_sub(used));
    let paid = [claim.insurance_paid(), outcome.assistance, outcome.patient_pays]
        .into_iter()
        .try_fold(Money::ZERO, Money::checked_add);
    assert_eq!(paid, Some(claim.total_cost()));
});
