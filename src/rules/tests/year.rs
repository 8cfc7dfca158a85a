//! The 2021 framework's rules: classes, deductibles, ratio bands at the fen,
//! the outpatient sub-cap, tilted assistance and reversal, each on a policy
//! built in the test and a running total carried from claim to claim as the
//! ledger carries it.

use super::*;
use crate::domain::{Band, ClaimKind, ClaimKindSent, ClassTerms, PolicyTerms, Ratio, Tilt};

fn ratio(text: &str) -> Ratio {
    Ratio::parse(text).unwrap()
}

fn band(up_to: Option<&str>, r: &str) -> Band {
    Band {
        up_to: up_to.map(money),
        ratio: ratio(r),
    }
}

fn class(kind: EnrollmentKind, condition: bool, deductible: &str, bands: Vec<Band>) -> ClassTerms {
    ClassTerms {
        kind,
        condition_required: condition,
        deductible: money(deductible),
        bands,
        annual_cap: None,
    }
}

/// A city outside Nantong under the 2021 framework, with floors of its own
/// (so seed populations may have a deductible): basic cap 100,000.00 and a
/// cap fraction of 0.5 give a 50,000.00 annual cap.
fn framework(classes: Vec<ClassTerms>, outpatient: Option<&str>, tilt: Option<Tilt>) -> Policy {
    let terms = PolicyTerms {
        region: RegionCode::parse("320602").unwrap(),
        effective_year: Year::parse(2026).unwrap(),
        assistance_ratio: ratio("0.70"),
        cap_fraction: ratio("0.5"),
        basic_insurance_annual_cap: money("100000"),
        grace: Default::default(),
        diseases: crate::domain::builtin_catalogue(),
        referral_threshold: money("10000"),
        classes,
        outpatient_cap: outpatient.map(money),
        tilt,
    };
    let floors = crate::domain::Floors {
        ratio_min: ratio("0"),
        cap_fraction_min: ratio("0.5"),
        deductible_max: Money::MAX,
    };
    Policy::with_floors(terms, floors).unwrap()
}

fn in_class(kinds: &[EnrollmentKind]) -> Person {
    let enrollments = kinds
        .iter()
        .map(|k| enrollment(*k, "2020-01-01", "", ExitKind::Plain))
        .collect();
    person_with("", enrollments, 0, false)
}

/// A claim with `oop` of in-scope out-of-pocket cost (nothing else billed,
/// no insurance), a uraemia code unless `codes` says otherwise.
fn costing(oop: &str, kind: ClaimKind, codes: &[&str]) -> Claim {
    let patient = patient_born("19600101");
    let codes: Vec<String> = codes.iter().map(|c| c.to_string()).collect();
    Claim::parse(&ClaimInput {
        hospital_id: "H001",
        claim_id: "C-1",
        patient_id: &patient,
        admission_date: STAY_FROM,
        discharge_date: STAY_TO,
        diagnosis_codes: &codes,
        total_cost: oop,
        in_scope_cost: oop,
        basic_insurance_paid: "0",
        critical_illness_paid: "0",
        claim_kind: ClaimKindSent::Known(kind),
    })
    .unwrap()
}

fn uraemia(oop: &str) -> Claim {
    costing(oop, ClaimKind::Inpatient, &["N18.5"])
}

/// Settles a claim on `usage` and carries the total on, as the ledger does.
fn run(claim: &Claim, person: &Person, policy: &Policy, usage: &mut Usage) -> Outcome {
    let outcome = apply_year(claim, &assess(claim, Some((person, policy))), usage);
    *usage = usage.charge(&outcome).unwrap();
    outcome
}

fn breakdown(outcome: &Outcome) -> &crate::domain::Breakdown {
    outcome.breakdown.as_ref().unwrap()
}

/// Proves the worked example of DOMAIN.md explains itself in the words a
/// clerk reads, under the built-in policy, and names the class it used.
#[test]
fn the_worked_example_explains_itself() {
    let claim = claim(Bill::default());
    let outcome = settle(&claim, &dibao(""), "0");
    let b = breakdown(&outcome);
    assert_eq!(b.class, Some(EnrollmentKind::Dibao));
    assert_eq!(
        b.explanation,
        "救助类别 低保（住院）；政策范围内自付 10500.00；起付线 0.00 元；\
         10500.00 × 70% = 7350.00；年度限额 150000.00，此前已用 0.00，剩余 150000.00；\
         医疗救助 7350.00"
    );
    assert_eq!(b.consumed.cap_charged.to_string(), "7350.00");
    assert_eq!(
        (b.consumed.deductible, b.consumed.tilt),
        (Money::ZERO, Money::ZERO)
    );
}

/// Proves a band edge is honoured to the fen: 0.02 of base across the edge
/// at 10,000.00 is 0.01 at 50% and 0.01 at 70%, 0.012 exactly, paid 0.02
/// (rounded once, up); the next fen is all in the second band.
#[test]
fn band_edges_at_the_fen() {
    let bands = vec![
        band(Some("10000"), "0.5"),
        band(Some("30000"), "0.7"),
        band(None, "0.9"),
    ];
    let policy = framework(
        vec![class(EnrollmentKind::Dibao, true, "0", bands)],
        None,
        None,
    );
    let person = in_class(&[EnrollmentKind::Dibao]);
    let mut usage = Usage {
        base: money("9999.99"),
        ..Usage::default()
    };
    let outcome = run(&uraemia("0.02"), &person, &policy, &mut usage);
    let b = breakdown(&outcome);
    let lines: Vec<(String, String)> = b
        .bands
        .iter()
        .map(|l| (l.base.to_string(), l.amount.to_string()))
        .collect();
    assert_eq!(
        lines,
        [
            ("0.01".into(), "0.005".into()),
            ("0.01".into(), "0.007".into())
        ]
    );
    assert_eq!(outcome.assistance.to_string(), "0.02");
    assert!(
        b.explanation.contains("合计 0.012，向上取整到分为 0.02"),
        "{}",
        b.explanation
    );
    assert_eq!(usage.base.to_string(), "10000.01");
    // The next claim starts past the edge: all at 70%.
    let outcome = run(&uraemia("100.00"), &person, &policy, &mut usage);
    assert_eq!(outcome.assistance.to_string(), "70.00");
    assert_eq!(breakdown(&outcome).bands.len(), 1);
    // A base spanning all three bands at once.
    let mut usage = Usage::default();
    let outcome = run(&uraemia("40000.00"), &person, &policy, &mut usage);
    // 10000 x 0.5 + 20000 x 0.7 + 10000 x 0.9 = 5000 + 14000 + 9000
    assert_eq!(outcome.assistance.to_string(), "28000.00");
    assert!(breakdown(&outcome).explanation.contains("合计 28000.00"));
}

/// Proves the deductible is a year's, consumed across claims: 300.00 of a
/// 500.00 deductible by the first claim (which pays nothing), the other
/// 200.00 by the second, none by the third; and that reversing the first
/// gives its 300.00 back exactly, so the next claim consumes it again.
#[test]
fn a_deductible_spans_two_claims_and_comes_back_on_reversal() {
    let policy = framework(
        vec![class(
            EnrollmentKind::LowIncomeMargin,
            false,
            "500",
            vec![band(None, "0.6")],
        )],
        None,
        None,
    );
    let person = in_class(&[EnrollmentKind::LowIncomeMargin]);
    let mut usage = Usage::default();
    let first = run(&uraemia("300.00"), &person, &policy, &mut usage);
    assert_eq!(first.assistance, Money::ZERO);
    assert!(first.eligible);
    assert_eq!(breakdown(&first).consumed.deductible.to_string(), "300.00");
    let second = run(&uraemia("1000.00"), &person, &policy, &mut usage);
    assert_eq!(breakdown(&second).consumed.deductible.to_string(), "200.00");
    assert_eq!(second.assistance.to_string(), "480.00");
    assert!(
        breakdown(&second)
            .explanation
            .contains("起付线 500.00 元，年内已计 300.00，本次计入 200.00；800.00 × 60% = 480.00"),
        "{}",
        breakdown(&second).explanation
    );
    let third = run(&uraemia("1000.00"), &person, &policy, &mut usage);
    assert_eq!(third.assistance.to_string(), "600.00");
    assert_eq!(usage.deductible_used.to_string(), "500.00");
    usage = usage.refund(&first).unwrap();
    assert_eq!(usage.deductible_used.to_string(), "200.00");
    let fourth = run(&uraemia("1000.00"), &person, &policy, &mut usage);
    assert_eq!(breakdown(&fourth).consumed.deductible.to_string(), "300.00");
    assert_eq!(fourth.assistance.to_string(), "420.00");
}

/// Proves that a patient in two classes gets the more favourable, and the
/// answer says which: with a listed disease dibao (no deductible, 70%) beats
/// impoverished by illness (2,000.00 deductible, 80%) on 5,000.00, loses to
/// it on 50,000.00; without one only the class that needs no condition applies;
/// in no class of the policy the patient is not enrolled.
#[test]
fn overlapping_classes_take_the_most_favourable() {
    let policy = framework(
        vec![
            class(EnrollmentKind::Dibao, true, "0", vec![band(None, "0.7")]),
            class(
                EnrollmentKind::ImpoverishedByIllness,
                false,
                "2000",
                vec![band(None, "0.8")],
            ),
        ],
        None,
        None,
    );
    let both = in_class(&[EnrollmentKind::Dibao, EnrollmentKind::ImpoverishedByIllness]);
    let small = settle_on(&uraemia("5000.00"), &both, &policy);
    assert_eq!(breakdown(&small).class, Some(EnrollmentKind::Dibao));
    assert_eq!(small.assistance.to_string(), "3500.00");
    let large = settle_on(&uraemia("50000.00"), &both, &policy);
    assert_eq!(
        breakdown(&large).class,
        Some(EnrollmentKind::ImpoverishedByIllness)
    );
    // 48000 x 0.8 = 38400 > 50000 x 0.7 = 35000
    assert_eq!(large.assistance.to_string(), "38400.00");
    let flu = costing("50000.00", ClaimKind::Inpatient, &["J10.1"]);
    let no_condition = settle_on(&flu, &both, &policy);
    assert_eq!(
        breakdown(&no_condition).class,
        Some(EnrollmentKind::ImpoverishedByIllness)
    );
    let dibao_only = settle_on(&flu, &in_class(&[EnrollmentKind::Dibao]), &policy);
    assert_eq!(
        dibao_only.ineligible_reason,
        Some(IneligibleReason::NoQualifyingCategory)
    );
    let elsewhere = settle_on(
        &flu,
        &in_class(&[EnrollmentKind::MonitoredForReturn]),
        &policy,
    );
    assert_eq!(
        elsewhere.ineligible_reason,
        Some(IneligibleReason::NotEnrolled)
    );
    assert_eq!(breakdown(&elsewhere).consumed, Default::default());
    // The seed's policy does not know the new classes: not enrolled under it.
    let seed = settle(
        &uraemia("5000.00"),
        &in_class(&[EnrollmentKind::LowIncomeMargin]),
        "0",
    );
    assert_eq!(seed.ineligible_reason, Some(IneligibleReason::NotEnrolled));
}

fn settle_on(claim: &Claim, person: &Person, policy: &Policy) -> Outcome {
    apply_year(
        claim,
        &assess(claim, Some((person, policy))),
        &Usage::default(),
    )
}

/// Proves the outpatient sub-cap limits outpatient claims only, and that
/// both kinds share the annual cap: 1,500.00 of a 2,000.00 sub-cap used, an
/// outpatient claim worth 700.00 gets 500.00 (capped); an inpatient claim
/// is not limited by it; the annual cap counts both.
#[test]
fn the_outpatient_sub_cap() {
    let policy = framework(
        vec![class(
            EnrollmentKind::Tekun,
            false,
            "0",
            vec![band(None, "0.7")],
        )],
        Some("2000"),
        None,
    );
    let person = in_class(&[EnrollmentKind::Tekun]);
    let mut usage = Usage::default();
    let outpatient = |oop: &str| costing(oop, ClaimKind::OutpatientChronic, &["I10"]);
    run(&outpatient("2142.86"), &person, &policy, &mut usage);
    assert_eq!(usage.outpatient_used.to_string(), "1500.01");
    let limited = run(&outpatient("1000.00"), &person, &policy, &mut usage);
    assert_eq!(limited.assistance.to_string(), "499.99");
    assert!(limited.capped);
    assert!(
        breakdown(&limited)
            .explanation
            .contains("门诊慢特病限额 2000.00，此前已用 1500.01，剩余 499.99，本次只付 499.99"),
        "{}",
        breakdown(&limited).explanation
    );
    let inpatient = run(&uraemia("1000.00"), &person, &policy, &mut usage);
    assert_eq!(inpatient.assistance.to_string(), "700.00");
    assert_eq!(usage.used.to_string(), "2700.00");
    assert_eq!(usage.outpatient_used.to_string(), "2000.00");
    let none_left = run(&outpatient("10.00"), &person, &policy, &mut usage);
    assert_eq!(none_left.assistance, Money::ZERO);
}

/// Proves tilted assistance starts mid-claim: with the 50,000.00 cap used
/// but 1,000.00 and 18,000.00 of remaining out-of-pocket cost borne, a
/// claim of 10,000.00 exhausts the cap (1,000.00 paid, 9,000.00 left to the
/// patient): the burden goes from 18,000.00 to 27,000.00, of which the part
/// past the 20,000.00 threshold, 7,000.00, is paid at 50%: 3,500.00, within
/// the tilt's own cap; then the tilt cap runs out.
#[test]
fn tilted_assistance_starts_mid_claim() {
    let tilt = Tilt {
        threshold: money("20000"),
        ratio: ratio("0.5"),
        cap: money("5000"),
    };
    let policy = framework(
        vec![class(
            EnrollmentKind::Dibao,
            false,
            "0",
            vec![band(None, "0.7")],
        )],
        None,
        Some(tilt),
    );
    let person = in_class(&[EnrollmentKind::Dibao]);
    let mut usage = Usage {
        used: money("49000"),
        burden: money("18000"),
        ..Usage::default()
    };
    let outcome = run(&uraemia("10000.00"), &person, &policy, &mut usage);
    let b = breakdown(&outcome);
    assert_eq!(b.consumed.cap_charged.to_string(), "1000.00");
    assert_eq!(b.tilt_base.to_string(), "7000.00");
    assert_eq!(b.consumed.tilt.to_string(), "3500.00");
    assert_eq!(outcome.assistance.to_string(), "4500.00");
    assert_eq!(outcome.patient_pays.to_string(), "5500.00");
    assert!(outcome.capped);
    assert!(b.explanation.contains("倾斜救助"), "{}", b.explanation);
    assert_eq!(outcome.cap.as_ref().unwrap().remaining_after, Money::ZERO);
    // The next claim: 4,000.00 more burden past the threshold, 2,000.00 at
    // 50%, but only 1,500.00 is left of the tilt's cap.
    let next = run(&uraemia("4000.00"), &person, &policy, &mut usage);
    assert_eq!(next.assistance.to_string(), "1500.00");
    assert_eq!(usage.tilt_used.to_string(), "5000.00");
    assert_eq!(usage.used.to_string(), "50000.00");
    // Below the threshold, or with cap left, nothing is tilted.
    let mut fresh = Usage::default();
    let plain = run(&uraemia("10000.00"), &person, &policy, &mut fresh);
    assert_eq!(breakdown(&plain).consumed.tilt, Money::ZERO);
}

/// Proves a class's own cap replaces the policy's for that class.
#[test]
fn a_class_cap_of_its_own() {
    let mut tekun = class(EnrollmentKind::Tekun, false, "0", vec![band(None, "1")]);
    tekun.annual_cap = Some(money("80000"));
    let policy = framework(vec![tekun], None, None);
    let outcome = settle_on(
        &uraemia("90000.00"),
        &in_class(&[EnrollmentKind::Tekun]),
        &policy,
    );
    assert_eq!(outcome.assistance.to_string(), "80000.00");
    assert_eq!(outcome.cap.unwrap().annual_cap.to_string(), "80000.00");
}

/// A class under the 2021 framework, drawn: a deductible, one to three
/// bands, maybe a condition.
fn arbitrary_class(kind: EnrollmentKind) -> impl Strategy<Value = ClassTerms> {
    (0i64..=300_000, 1usize..=3, 0u32..=100, any::<bool>()).prop_map(
        move |(deductible, bands, first_ratio, condition)| {
            let bands = (0..bands)
                .map(|i| Band {
                    up_to: (i + 1 < bands)
                        .then(|| Money::from_fen(500_000 * (i as i64 + 1)).unwrap()),
                    ratio: Ratio::parse(&format!("0.{:02}", (first_ratio as usize + 7 * i) % 100))
                        .unwrap(),
                })
                .collect();
            ClassTerms {
                kind,
                condition_required: condition,
                deductible: Money::from_fen(deductible).unwrap(),
                bands,
                annual_cap: None,
            }
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// For any policy of two classes with deductibles, bands, an outpatient
    /// sub-cap and tilted assistance, and any sequence of claims of either
    /// kind: every claim adds up (cap charged plus tilt is the assistance,
    /// within the out-of-pocket cost; the four payers make the bill); the
    /// running total never passes the cap, the sub-cap, the tilt's cap or
    /// the deductible; and reversing any claims leaves exactly the total of
    /// those left, reversing all of them leaves nothing.
    #[test]
    fn the_framework_adds_up_and_reverses_exactly(
        dibao in arbitrary_class(EnrollmentKind::Dibao),
        margin in arbitrary_class(EnrollmentKind::LowIncomeMargin),
        claims in proptest::collection::vec((1i64..=3_000_000, any::<bool>()), 1..30),
        reversed in proptest::collection::vec(any::<bool>(), 30),
    ) {
        let tilt = Tilt { threshold: money("3000"), ratio: ratio("0.4"), cap: money("6000") };
        let deductible_max = dibao.deductible.max(margin.deductible);
        let policy = framework(vec![dibao, margin], Some("8000"), Some(tilt));
        let person = in_class(&[EnrollmentKind::Dibao, EnrollmentKind::LowIncomeMargin]);
        let mut usage = Usage::default();
        let mut paid = Vec::new();
        for (fen, outpatient) in &claims {
            let oop = Money::from_fen(*fen).unwrap().to_string();
            let kind = if *outpatient { ClaimKind::OutpatientChronic } else { ClaimKind::Inpatient };
            let outcome = run(&costing(&oop, kind, &["N18.5"]), &person, &policy, &mut usage);
            let c = outcome.consumed();
            prop_assert_eq!(c.cap_charged.checked_add(c.tilt), Some(outcome.assistance));
            prop_assert!(outcome.assistance <= outcome.in_scope_out_of_pocket);
            prop_assert_eq!(outcome.assistance.fen() + outcome.patient_pays.fen(), *fen);
            prop_assert!(usage.used <= policy.annual_cap());
            prop_assert!(usage.outpatient_used <= money("8000"));
            prop_assert!(usage.tilt_used <= money("6000"));
            prop_assert!(usage.deductible_used <= deductible_max);
            paid.push(outcome);
        }
        let mut left = Usage::default();
        for (outcome, reverse) in paid.iter().zip(&reversed) {
            if *reverse {
                usage = usage.refund(outcome).unwrap();
            } else {
                left = left.charge(outcome).unwrap();
            }
        }
        prop_assert_eq!(usage, left);
        for (outcome, reverse) in paid.iter().zip(&reversed) {
            if !*reverse {
                usage = usage.refund(outcome).unwrap();
            }
        }
        prop_assert_eq!(usage, Usage::default());
    }

    /// The seed's rule through the running total is the seed's rule: under
    /// the built-in policy a claim pays the same whatever the total holds
    /// besides the cap used (deductible, band position, burden).
    #[test]
    fn the_seed_ignores_what_it_does_not_know(
        oop in 1i64..=5_000_000,
        used in 0i64..=15_000_000,
        base in 0i64..=50_000_000,
        burden in 0i64..=50_000_000,
    ) {
        let policy = policy();
        let amount = Money::from_fen(oop).unwrap().to_string();
        let claim = uraemia(&amount);
        let assessment = assess(&claim, Some((&dibao(""), &policy)));
        let used = Money::from_fen(used).unwrap();
        let plain = apply_cap(&claim, &assessment, used);
        let full = apply_year(&claim, &assessment, &Usage {
            used,
            base: Money::from_fen(base).unwrap(),
            burden: Money::from_fen(burden).unwrap(),
            deductible_used: Money::from_fen(base).unwrap(),
            ..Usage::default()
        });
        prop_assert_eq!(plain.assistance, full.assistance);
        prop_assert_eq!(plain.cap, full.cap);
    }
}
