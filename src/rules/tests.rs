//! Unit and property tests of the settlement rules. Each test builds a claim,
//! a roster record and a policy from plain text, runs the pure functions and
//! checks the exact amounts.

use proptest::prelude::*;
use rust_decimal::Decimal;

use super::*;
use crate::domain::{
    ClaimInput, EnrollmentInput, PersonInput, PolicyBook, Usage, Year,
    resident_id::tests::with_check,
};

const STAY_FROM: &str = "2026-03-01";
const STAY_TO: &str = "2026-03-20";

/// A resident ID of someone born on `birth` (YYYYMMDD).
fn patient_born(birth: &str) -> String {
    with_check(&format!("320602{birth}123"))
}

fn policy() -> Policy {
    let book = PolicyBook::builtin();
    book.lookup(
        RegionCode::parse("320602").unwrap(),
        Year::parse(2026).unwrap(),
    )
    .unwrap()
    .clone()
}

struct Bill<'a> {
    patient: &'a str,
    admission: &'a str,
    discharge: &'a str,
    codes: &'a [&'a str],
    total: &'a str,
    in_scope: &'a str,
    basic: &'a str,
    critical: &'a str,
}

impl Default for Bill<'_> {
    /// The worked example of DOMAIN.md, for a 66-year-old with uraemia.
    fn default() -> Self {
        Bill {
            patient: "",
            admission: STAY_FROM,
            discharge: STAY_TO,
            codes: &["N18.500"],
            total: "50000.00",
            in_scope: "42000.00",
            basic: "25200.00",
            critical: "6300.00",
        }
    }
}

fn claim(bill: Bill<'_>) -> Claim {
    let default_patient = patient_born("19600101");
    let codes: Vec<String> = bill.codes.iter().map(|c| c.to_string()).collect();
    Claim::parse(&ClaimInput {
        hospital_id: "H001",
        claim_id: "C-1",
        patient_id: if bill.patient.is_empty() {
            &default_patient
        } else {
            bill.patient
        },
        admission_date: bill.admission,
        discharge_date: bill.discharge,
        diagnosis_codes: &codes,
        total_cost: bill.total,
        in_scope_cost: bill.in_scope,
        basic_insurance_paid: bill.basic,
        critical_illness_paid: bill.critical,
        claim_kind: Default::default(),
    })
    .unwrap()
}

fn enrollment(
    kind: EnrollmentKind,
    from: &'static str,
    to: &'static str,
    exit: ExitKind,
) -> EnrollmentInput<'static> {
    EnrollmentInput {
        kind: Some(kind),
        valid_from: from,
        valid_to: to,
        exit: Some(exit),
    }
}

fn person_with(
    patient: &str,
    enrollments: Vec<EnrollmentInput<'_>>,
    grade: i32,
    paralysis: bool,
) -> Person {
    let default_patient = patient_born("19600101");
    Person::parse(&PersonInput {
        patient_id: if patient.is_empty() {
            &default_patient
        } else {
            patient
        },
        name: "张三",
        region_code: "320602",
        enrollments,
        psychiatric_disability_grade: grade,
        paralysis_certified: paralysis,
    })
    .unwrap()
}

/// A dibao member since 2020, still enrolled.
fn dibao(patient: &str) -> Person {
    person_with(
        patient,
        vec![enrollment(
            EnrollmentKind::Dibao,
            "2020-01-01",
            "",
            ExitKind::Plain,
        )],
        0,
        false,
    )
}

fn money(text: &str) -> Money {
    Money::parse(text).unwrap()
}

fn settle(claim: &Claim, person: &Person, used: &str) -> Outcome {
    let policy = policy();
    apply_cap(claim, &assess(claim, Some((person, &policy))), money(used))
}

#[test]
fn the_worked_example_pays_7350() {
    let outcome = settle(&claim(Bill::default()), &dibao(""), "0");
    assert!(outcome.eligible);
    assert_eq!(outcome.categories, [Category::MajorDisease]);
    assert_eq!(outcome.ineligible_reason, None);
    assert_eq!(outcome.in_scope_out_of_pocket, money("10500.00"));
    assert_eq!(outcome.assistance, money("7350.00"));
    assert_eq!(outcome.patient_pays, money("11150.00"));
    assert!(!outcome.capped);
    let cap = outcome.cap.unwrap();
    assert_eq!(cap.annual_cap, money("150000.00"));
    assert_eq!(cap.used_before, Money::ZERO);
    assert_eq!(cap.remaining_after, money("142650.00"));
    assert_eq!(cap.region.as_str(), "320602");
}

#[test]
fn the_worked_example_near_the_cap_pays_what_is_left() {
    let outcome = settle(&claim(Bill::default()), &dibao(""), "148000.00");
    assert_eq!(outcome.assistance, money("2000.00"));
    assert!(outcome.capped);
    assert_eq!(outcome.patient_pays, money("16500.00"));
    assert_eq!(outcome.cap.unwrap().remaining_after, Money::ZERO);
}

#[test]
fn cap_boundaries_to_the_fen() {
    let claim = claim(Bill::default());
    let exactly_enough = settle(&claim, &dibao(""), "142650.00");
    assert_eq!(
        (exactly_enough.assistance, exactly_enough.capped),
        (money("7350.00"), false)
    );
    let one_fen_short = settle(&claim, &dibao(""), "142650.01");
    assert_eq!(
        (one_fen_short.assistance, one_fen_short.capped),
        (money("7349.99"), true)
    );
    let used_up = settle(&claim, &dibao(""), "150000.00");
    assert_eq!((used_up.assistance, used_up.capped), (Money::ZERO, true));
    assert!(
        used_up.eligible,
        "a used-up cap is a normal settlement, not ineligibility"
    );
    // A cap lowered after the money was paid: nothing more, and nothing negative.
    let over = settle(&claim, &dibao(""), "160000.00");
    assert_eq!((over.assistance, over.capped), (Money::ZERO, true));
    assert_eq!(over.cap.unwrap().remaining_after, Money::ZERO);
}

#[test]
fn assistance_rounds_up_to_the_fen_but_never_past_the_out_of_pocket() {
    // 0.70 x 10.01 = 7.007 -> 7.01
    let odd = claim(Bill {
        total: "10.01",
        in_scope: "10.01",
        basic: "0",
        critical: "0",
        ..Bill::default()
    });
    assert_eq!(settle(&odd, &dibao(""), "0").assistance, money("7.01"));
    // 0.70 x 0.01 = 0.007 -> 0.01, the whole out-of-pocket part.
    let tiny = claim(Bill {
        total: "0.01",
        in_scope: "0.01",
        basic: "0",
        critical: "0",
        ..Bill::default()
    });
    let outcome = settle(&tiny, &dibao(""), "0");
    assert_eq!(
        (outcome.assistance, outcome.patient_pays),
        (money("0.01"), Money::ZERO)
    );
    // Nothing out of pocket in scope: nothing to pay, and not "capped".
    let covered = claim(Bill {
        total: "100",
        in_scope: "80",
        basic: "80",
        critical: "0",
        ..Bill::default()
    });
    let outcome = settle(&covered, &dibao(""), "150000");
    assert_eq!((outcome.assistance, outcome.capped), (Money::ZERO, false));
    assert_eq!(outcome.patient_pays, money("20.00"));
}

#[test]
fn a_book_assesses_on_its_region_s_policy_and_names_a_missing_one() {
    let claim = claim(Bill::default());
    let person = dibao("");
    let book = PolicyBook::builtin();
    let policy = policy();
    assert_eq!(
        assess_under(&book, &claim, Some(&person)),
        Ok(assess(&claim, Some((&person, &policy))))
    );
    assert_eq!(assess_under(&book, &claim, None), Ok(assess(&claim, None)));
    let mut elsewhere = policy.terms().clone();
    elsewhere.region = RegionCode::parse("320500").unwrap();
    let elsewhere = PolicyBook::new(vec![Policy::new(elsewhere).unwrap()]).unwrap();
    assert_eq!(
        assess_under(&elsewhere, &claim, Some(&person)),
        Err(NoPolicy {
            region: RegionCode::parse("320602").unwrap(),
            year: Year::parse(2026).unwrap(),
        })
    );
    // Off the roster, no policy is needed.
    assert_eq!(
        assess_under(&elsewhere, &claim, None),
        Ok(assess(&claim, None))
    );
}

#[test]
fn a_patient_off_the_roster_is_not_enrolled_and_has_no_cap() {
    let claim = claim(Bill::default());
    let outcome = apply_cap(&claim, &assess(&claim, None), Money::ZERO);
    assert!(!outcome.eligible);
    assert_eq!(
        outcome.ineligible_reason,
        Some(IneligibleReason::NotEnrolled)
    );
    assert_eq!(outcome.assistance, Money::ZERO);
    assert_eq!(outcome.patient_pays, money("18500.00"));
    assert_eq!(outcome.cap, None);
    assert!(!outcome.capped);
}

#[test]
fn ineligible_reasons() {
    let not_enrolled = person_with("", Vec::new(), 0, false);
    let no_category = claim(Bill {
        codes: &["J18.9"],
        ..Bill::default()
    });
    let with_disease = claim(Bill::default());
    // Neither enrolled nor in a category: the reason is NOT_ENROLLED.
    let neither = settle(&no_category, &not_enrolled, "0");
    assert_eq!(
        neither.ineligible_reason,
        Some(IneligibleReason::NotEnrolled)
    );
    let category_only = settle(&with_disease, &not_enrolled, "0");
    assert_eq!(
        category_only.ineligible_reason,
        Some(IneligibleReason::NotEnrolled)
    );
    assert_eq!(category_only.categories, [Category::MajorDisease]);
    let enrolled_only = settle(&no_category, &dibao(""), "0");
    assert_eq!(
        enrolled_only.ineligible_reason,
        Some(IneligibleReason::NoQualifyingCategory)
    );
    for outcome in [neither, category_only, enrolled_only] {
        assert!(!outcome.eligible);
        assert_eq!(outcome.assistance, Money::ZERO);
        assert!(!outcome.capped);
        assert!(
            outcome.cap.is_some(),
            "a roster patient's cap is still shown"
        );
    }
}

fn categories_of(patient: &str, bill: Bill<'_>, grade: i32, paralysis: bool) -> Vec<Category> {
    let person = person_with(
        patient,
        vec![enrollment(
            EnrollmentKind::Tekun,
            "2000-01-01",
            "",
            ExitKind::Plain,
        )],
        grade,
        paralysis,
    );
    let claim = claim(Bill { patient, ..bill });
    categories(&claim, &person, &policy())
}

#[test]
fn aged_80_counts_from_the_80th_birthday_on_the_discharge_date() {
    let born = patient_born("19460320");
    let flu = &["J10.1"][..];
    let on_birthday = Bill {
        codes: flu,
        discharge: "2026-03-20",
        ..Bill::default()
    };
    assert_eq!(
        categories_of(&born, on_birthday, 0, false),
        [Category::Aged80Plus]
    );
    let day_before = Bill {
        codes: flu,
        discharge: "2026-03-19",
        ..Bill::default()
    };
    assert!(categories_of(&born, day_before, 0, false).is_empty());
}

#[test]
fn minors_are_under_18_on_the_admission_date() {
    let born = patient_born("20080301");
    let flu = &["J10.1"][..];
    let day_before = Bill {
        codes: flu,
        admission: "2026-02-28",
        ..Bill::default()
    };
    assert_eq!(
        categories_of(&born, day_before, 0, false),
        [Category::Minor]
    );
    let on_birthday = Bill {
        codes: flu,
        admission: "2026-03-01",
        ..Bill::default()
    };
    assert!(categories_of(&born, on_birthday, 0, false).is_empty());
}

#[test]
fn leap_day_births_turn_18_on_the_first_of_march_in_common_years() {
    let born = patient_born("20080229");
    let flu = &["J10.1"][..];
    let feb_28 = Bill {
        codes: flu,
        admission: "2026-02-28",
        ..Bill::default()
    };
    assert_eq!(categories_of(&born, feb_28, 0, false), [Category::Minor]);
    let mar_1 = Bill {
        codes: flu,
        admission: "2026-03-01",
        ..Bill::default()
    };
    assert!(categories_of(&born, mar_1, 0, false).is_empty());
}

#[test]
fn leap_day_births_turn_80_on_the_first_of_march_in_common_years() {
    let born = patient_born("19440229");
    let flu = &["J10.1"][..];
    let feb_28 = Bill {
        codes: flu,
        admission: "2024-02-01",
        discharge: "2024-02-28",
        ..Bill::default()
    };
    assert!(categories_of(&born, feb_28, 0, false).is_empty());
    let feb_29 = Bill {
        codes: flu,
        admission: "2024-02-01",
        discharge: "2024-02-29",
        ..Bill::default()
    };
    assert_eq!(
        categories_of(&born, feb_29, 0, false),
        [Category::Aged80Plus]
    );
    let born_1945 = patient_born("19450228");
    let common_year = Bill {
        codes: flu,
        admission: "2025-02-01",
        discharge: "2025-02-28",
        ..Bill::default()
    };
    assert_eq!(
        categories_of(&born_1945, common_year, 0, false),
        [Category::Aged80Plus]
    );
}

#[test]
fn certified_conditions_and_every_category_together() {
    let adult = patient_born("19700101");
    let flu = || Bill {
        codes: &["J10.1"],
        ..Bill::default()
    };
    assert_eq!(
        categories_of(&adult, flu(), 1, false),
        [Category::PsychiatricDisability]
    );
    assert_eq!(
        categories_of(&adult, flu(), 2, false),
        [Category::PsychiatricDisability]
    );
    assert!(categories_of(&adult, flu(), 3, false).is_empty());
    assert!(categories_of(&adult, flu(), 4, false).is_empty());
    assert_eq!(categories_of(&adult, flu(), 0, true), [Category::Paralysis]);
    // A newborn with leukaemia, certified conditions too: minor but not 80.
    let baby = patient_born("20260301");
    let all = Bill {
        patient: "",
        codes: &["C92.000", "J10.1"],
        ..Bill::default()
    };
    assert_eq!(
        categories_of(&baby, all, 1, true),
        [
            Category::MajorDisease,
            Category::Paralysis,
            Category::Minor,
            Category::PsychiatricDisability
        ]
    );
}

#[test]
fn the_catalogue_matches_every_listed_disease_by_prefix() {
    let adult = patient_born("19700101");
    for code in [
        "C00", "C97.9", "C91.000", "N18", "N19", "Z94.0", "T86.1", "D66", "D67", "D68.100",
        "K70.3", "K72.1", "K74.6", "A18.0", "M32.1", "L93.0", "B20", "B24", "D61.9",
    ] {
        let bill = Bill {
            codes: &[code],
            ..Bill::default()
        };
        assert_eq!(
            categories_of(&adult, bill, 0, false),
            [Category::MajorDisease],
            "{code}"
        );
    }
    for code in ["D68.2", "K70.4", "A18.1", "B25", "C98", "N17", "J10.1"] {
        let bill = Bill {
            codes: &[code],
            ..Bill::default()
        };
        assert!(categories_of(&adult, bill, 0, false).is_empty(), "{code}");
    }
}

fn enrolled_for_stay(
    enrollment_input: EnrollmentInput<'static>,
    admission: &str,
    discharge: &str,
) -> bool {
    let person = person_with("", vec![enrollment_input], 0, false);
    enrolled_during(
        &person,
        GracePeriods::default(),
        Date::parse(admission).unwrap(),
        Date::parse(discharge).unwrap(),
    )
}

#[test]
fn enrollment_counts_on_any_day_of_the_stay_inclusive() {
    let spell = || {
        enrollment(
            EnrollmentKind::LowIncomeFamily,
            "2026-03-10",
            "2026-03-15",
            ExitKind::Plain,
        )
    };
    assert!(
        enrolled_for_stay(spell(), "2026-03-01", "2026-03-10"),
        "starts on the last day"
    );
    assert!(
        !enrolled_for_stay(spell(), "2026-03-01", "2026-03-09"),
        "starts after discharge"
    );
    assert!(
        enrolled_for_stay(spell(), "2026-03-15", "2026-03-20"),
        "ends on the first day"
    );
    assert!(
        !enrolled_for_stay(spell(), "2026-03-16", "2026-03-20"),
        "ended before admission"
    );
    assert!(
        enrolled_for_stay(spell(), "2026-03-11", "2026-03-12"),
        "inside the stay"
    );
    assert!(
        enrolled_for_stay(spell(), "2026-01-01", "2026-12-31"),
        "around the stay"
    );
    let open = enrollment(EnrollmentKind::Tekun, "2026-03-10", "", ExitKind::Plain);
    assert!(
        enrolled_for_stay(open, "2099-01-01", "2099-01-02"),
        "open-ended"
    );
}

#[test]
fn gradual_exit_keeps_dibao_three_months_clamped_to_the_month_end() {
    let exit = || {
        enrollment(
            EnrollmentKind::Dibao,
            "2020-01-01",
            "2025-11-30",
            ExitKind::GradualExit,
        )
    };
    assert!(enrolled_for_stay(exit(), "2026-02-28", "2026-03-05"));
    assert!(!enrolled_for_stay(exit(), "2026-03-01", "2026-03-05"));
    let plain = enrollment(
        EnrollmentKind::Dibao,
        "2020-01-01",
        "2025-11-30",
        ExitKind::Plain,
    );
    assert!(
        !enrolled_for_stay(plain, "2025-12-01", "2025-12-05"),
        "no grace without an exit kind"
    );
}

#[test]
fn leaving_poverty_keeps_registered_poor_two_years() {
    let left = || {
        enrollment(
            EnrollmentKind::RegisteredPoor,
            "2016-01-01",
            "2024-02-29",
            ExitKind::LeftPoverty,
        )
    };
    assert!(enrolled_for_stay(left(), "2026-02-28", "2026-02-28"));
    assert!(!enrolled_for_stay(left(), "2026-03-01", "2026-03-02"));
}

#[test]
fn grace_periods_are_policy_settings() {
    let person = person_with(
        "",
        vec![enrollment(
            EnrollmentKind::Dibao,
            "2020-01-01",
            "2025-11-30",
            ExitKind::GradualExit,
        )],
        0,
        false,
    );
    let six_months = GracePeriods {
        gradual_exit_months: 6,
        left_poverty_months: 24,
    };
    let day = |d: &str| Date::parse(d).unwrap();
    assert!(enrolled_during(
        &person,
        six_months,
        day("2026-05-30"),
        day("2026-06-01")
    ));
    assert!(!enrolled_during(
        &person,
        six_months,
        day("2026-05-31"),
        day("2026-06-01")
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// For any consistent bill and any usage: assistance is within the
    /// remaining cap; when not capped it is the ratio's floor to within one
    /// fen; and the four payers add up to the total bill.
    #[test]
    fn amounts_always_add_up(
        total_fen in 0i64..=2_000_000_000,
        scope_share in 0u32..=100,
        basic_share in 0u32..=100,
        critical_share in 0u32..=100,
        used_fen in 0i64..=20_000_000,
    ) {
        let total = Money::from_fen(total_fen).unwrap();
        let in_scope = Money::from_fen(total_fen * i64::from(scope_share) / 100).unwrap();
        let basic = Money::from_fen(in_scope.fen() * i64::from(basic_share) / 100).unwrap();
        let critical = Money::from_fen((in_scope.fen() - basic.fen()) * i64::from(critical_share) / 100).unwrap();
        let claim = claim(Bill {
            total: &total.to_string(),
            in_scope: &in_scope.to_string(),
            basic: &basic.to_string(),
            critical: &critical.to_string(),
            ..Bill::default()
        });
        let used = Money::from_fen(used_fen).unwrap();
        let outcome = settle(&claim, &dibao(""), &used.to_string());
        let cap = outcome.cap.clone().unwrap();
        let remaining = cap.annual_cap.saturating_sub(used);
        prop_assert!(outcome.assistance <= remaining);
        prop_assert_eq!(cap.remaining_after, remaining.saturating_sub(outcome.assistance));
        let floor = outcome.in_scope_out_of_pocket.as_decimal() * Decimal::new(70, 2);
        if !outcome.capped {
            prop_assert!(outcome.assistance.as_decimal() >= floor);
            prop_assert!(outcome.assistance.as_decimal() - floor < Decimal::new(1, 2));
        } else {
            prop_assert_eq!(outcome.assistance, remaining);
        }
        let sum = basic.fen() + critical.fen() + outcome.assistance.fen() + outcome.patient_pays.fen();
        prop_assert_eq!(sum, total.fen());
    }

    /// The order (and repetition) of diagnosis codes never changes a result.
    #[test]
    fn diagnosis_code_order_does_not_matter(
        picks in proptest::collection::vec(0usize..6, 1..8),
    ) {
        const CODES: [&str; 6] = ["J10.1", "C34.900", "I10", "N18.5", "K70.300", "E11.9"];
        let forward: Vec<&str> = picks.iter().map(|i| CODES[*i]).collect();
        let backward: Vec<&str> = forward.iter().rev().copied().collect();
        let a = claim(Bill { codes: &forward, ..Bill::default() });
        let b = claim(Bill { codes: &backward, ..Bill::default() });
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(settle(&a, &dibao(""), "0"), settle(&b, &dibao(""), "0"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Settling claims in order and then reversing any of them leaves the
    /// running total equal to the sum of those still settled, never above
    /// the cap; reversing all of them restores it to zero exactly.
    #[test]
    fn settle_then_reverse_restores_usage_exactly(
        amounts in proptest::collection::vec(1i64..=30_000_000, 1..40),
        reversed in proptest::collection::vec(any::<bool>(), 40),
    ) {
        let person = dibao("");
        let policy = policy();
        let mut usage = Usage::default();
        let mut paid = Vec::new();
        for fen in &amounts {
            let amount = Money::from_fen(*fen).unwrap().to_string();
            let claim = claim(Bill { total: &amount, in_scope: &amount, basic: "0", critical: "0", ..Bill::default() });
            let outcome = apply_cap(&claim, &assess(&claim, Some((&person, &policy))), usage.used);
            usage = usage.charge(&outcome).unwrap();
            prop_assert!(usage.used <= policy.annual_cap());
            paid.push(outcome);
        }
        let mut still_settled = Money::ZERO;
        for (outcome, reverse) in paid.iter().zip(&reversed) {
            if *reverse {
                usage = usage.refund(outcome).unwrap();
            } else {
                still_settled = still_settled.checked_add(outcome.assistance).unwrap();
            }
        }
        prop_assert_eq!(usage.used, still_settled);
        for (outcome, reverse) in paid.iter().zip(&reversed) {
            if !*reverse {
                usage = usage.refund(outcome).unwrap();
            }
        }
        prop_assert_eq!(usage, Usage::default());
    }
}

/// Proves the referral rule: an enrolled patient is referred by the cap
/// (which wins when both apply) or by yearly payments reaching the
/// threshold (reaching is enough); a patient not enrolled on any day of the
/// stay, or off the roster, never is; no qualifying category still counts.
#[test]
fn referral_by_cap_by_threshold_and_never_when_not_enrolled() {
    let policy = policy();
    let person = dibao("");
    let claim = claim(Bill::default());
    let assessment = assess(&claim, Some((&person, &policy)));
    let terms = assessment.cap.as_ref();
    assert_eq!(terms.map(|t| t.referral_threshold), Some(money("10000.00")));
    let below = apply_cap(&claim, &assessment, Money::ZERO);
    assert_eq!(referral(terms, &below, money("9999.99")), None);
    assert_eq!(
        referral(terms, &below, money("10000.00")),
        Some(ReferralReason::HighOutOfPocket)
    );
    let capped = apply_cap(&claim, &assessment, money("149000.00"));
    assert!(capped.capped);
    assert_eq!(
        referral(terms, &capped, Money::ZERO),
        Some(ReferralReason::CapReached)
    );
    assert_eq!(
        referral(terms, &capped, money("50000.00")),
        Some(ReferralReason::CapReached),
        "both: the cap wins"
    );

    let not_enrolled = person_with("", Vec::new(), 0, false);
    let unenrolled = assess(&claim, Some((&not_enrolled, &policy)));
    let outcome = apply_cap(&claim, &unenrolled, Money::ZERO);
    assert_eq!(
        referral(unenrolled.cap.as_ref(), &outcome, money("99999.00")),
        None
    );
    let off_roster = assess(&claim, None);
    let outcome = apply_cap(&claim, &off_roster, Money::ZERO);
    assert_eq!(
        referral(off_roster.cap.as_ref(), &outcome, money("99999.00")),
        None
    );

    let no_category = self::claim(Bill {
        codes: &["J18.9"],
        ..Bill::default()
    });
    let enrolled_only = assess(&no_category, Some((&person, &policy)));
    let outcome = apply_cap(&no_category, &enrolled_only, Money::ZERO);
    assert_eq!(
        referral(enrolled_only.cap.as_ref(), &outcome, money("18500.00")),
        Some(ReferralReason::HighOutOfPocket),
        "enrolled without a category: still helped further"
    );
}

mod year;
