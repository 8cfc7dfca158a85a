//! Policy by class (issue 21) through real clients: the guide's worked
//! 2026 policy file (examples/policy-2026.toml) settles with a breakdown and
//! an explanation on every answer (PreSettle, Settle, GetSettlement); the
//! deductible, band position and cap of concurrent claims of one patient are
//! charged in commit order exactly; a reversal gives back what its claim
//! consumed, deductible included; Chinese class and claim kind names are
//! read over HTTP/JSON as the roster CSV reads them; a year replayed under
//! a proposal, offline and by SimulatePolicy, pays what was paid under the
//! policy in force.

use std::{collections::HashSet, sync::Arc};

use medassist::{
    config::Config,
    domain::{Claim, ClaimInput, ClaimKindSent, Money, RegionCode, Usage, Year},
    grpc::pb,
    rules,
    simulate::SimulationReport,
};
use tempfile::TempDir;

use crate::helpers::*;

/// The worked policy of docs/POLICY.md, as shipped.
pub const POLICY_2026: &str = include_str!("../../examples/policy-2026.toml");

/// The explanations docs/POLICY.md prints for the guide's three stays.
const FIRST_STAY: &str = "救助类别 低保边缘（住院）；政策范围内自付 20000.00；起付线 5000.00 元，本次计入 5000.00；15000.00 × 60% = 9000.00；年度限额 100000.00，此前已用 0.00，剩余 100000.00；医疗救助 9000.00";
const SECOND_STAY: &str = "救助类别 低保边缘（住院）；政策范围内自付 40000.00；起付线 5000.00 元，年内已计 5000.00，本次计入 0.00；35000.00 × 60% = 21000.00；5000.00 × 65% = 3250.00；合计 24250.00；年度限额 100000.00，此前已用 9000.00，剩余 91000.00；医疗救助 24250.00";
const TEKUN_STAY: &str = "救助类别 特困（住院）；政策范围内自付 150000.00；起付线 0.00 元；150000.00 × 90% = 135000.00；年度限额 100000.00，此前已用 0.00，剩余 100000.00，本次只付 100000.00；倾斜救助：年内剩余自付超过 30000.00 的部分 20000.00 × 50%，倾斜限额剩余 50000.00，支付 10000.00；医疗救助 110000.00";
/// The seed's worked example, as the guide prints it.
const SEED_EXAMPLE: &str = "救助类别 低保（住院）；政策范围内自付 10500.00；起付线 0.00 元；10500.00 × 70% = 7350.00；年度限额 150000.00，此前已用 0.00，剩余 150000.00；医疗救助 7350.00";

/// Proves the guide cannot drift from what the service does: docs/POLICY.md
/// prints the shipped policy file whole and the explanations that the
/// tests below receive from the server.
#[test]
fn the_guide_prints_the_tested_file_and_explanations() {
    let guide = include_str!("../../docs/POLICY.md");
    assert!(guide.contains(&format!("```toml\n{POLICY_2026}```")));
    for explanation in [FIRST_STAY, SECOND_STAY, TEKUN_STAY, SEED_EXAMPLE] {
        assert!(
            guide.contains(&format!("```text\n{explanation}\n```")),
            "{explanation}"
        );
    }
}

async fn server_2026() -> TestServer {
    let config = Config::parse(POLICY_2026).expect("the guide's policy file loads");
    TestServer::start_with(Arc::new(TempDir::new().unwrap()), config).await
}

/// Puts a person of one class on the roster in county 320505 (which falls
/// back to the city's 2026 policy); returns the resident ID.
async fn enroll_as(server: &TestServer, kind: pb::EnrollmentKind, sequence: u16) -> String {
    let id = resident_id("1970-05-01", sequence);
    let person = pb::Person {
        region_code: "320505".into(),
        enrollments: vec![pb::Enrollment {
            kind: kind.into(),
            valid_from: "2025-01-01".into(),
            valid_to: String::new(),
            exit: pb::ExitKind::Unspecified.into(),
        }],
        ..dibao_person(&id)
    };
    server
        .roster()
        .upsert_person(pb::UpsertPersonRequest {
            person: Some(person),
        })
        .await
        .expect("roster accepts the person");
    id
}

/// A flu stay (no listed disease) with `oop` of in-scope out-of-pocket
/// cost: total and in-scope cost `oop`, nothing paid by the insurances.
fn stay(patient: &str, claim: &str, oop: &str) -> pb::SettleRequest {
    pb::SettleRequest {
        diagnosis_codes: vec!["J10.1".into()],
        total_cost: oop.into(),
        in_scope_cost: oop.into(),
        basic_insurance_paid: "0".into(),
        critical_illness_paid: "0".into(),
        ..worked_example(patient, claim)
    }
}

fn breakdown(settlement: &pb::Settlement) -> &pb::SettlementBreakdown {
    settlement
        .breakdown
        .as_ref()
        .expect("every answer explains itself")
}

/// Proves the guide's worked example: a low-income-margin patient's two
/// stays consume the 5,000.00 deductible, then run across the band edge at
/// 50,000.00; a tekun patient whose cap is used up gets tilted assistance.
/// The explanations are the ones docs/POLICY.md prints, and GetSettlement
/// and PreSettle carry the same breakdown as Settle.
#[tokio::test]
async fn the_guide_s_worked_example() {
    let server = server_2026().await;
    let margin = enroll_as(&server, pb::EnrollmentKind::LowIncomeMargin, 61).await;
    let first = pb::SettleRequest {
        total_cost: "60000.00".into(),
        in_scope_cost: "50000.00".into(),
        basic_insurance_paid: "25000.00".into(),
        critical_illness_paid: "5000.00".into(),
        ..stay(&margin, "G-1", "0")
    };
    let quote = server
        .settlements()
        .pre_settle(first.clone())
        .await
        .unwrap()
        .into_inner();
    let (one, _) = settled(server.settlements().settle(first).await);
    assert_eq!(
        quote.settlement.as_ref().map(breakdown),
        Some(breakdown(&one))
    );
    assert_eq!(one.assistance_amount, "9000.00");
    assert_eq!(one.patient_pays, "21000.00");
    let b = breakdown(&one);
    assert_eq!(
        (b.assisted_class.as_str(), b.assisted_class_name.as_str()),
        ("low_income_margin", "低保边缘")
    );
    assert_eq!(
        (b.deductible_consumed.as_str(), b.base.as_str()),
        ("5000.00", "15000.00")
    );
    assert_eq!(b.explanation, FIRST_STAY);

    let second = pb::SettleRequest {
        total_cost: "120000.00".into(),
        in_scope_cost: "100000.00".into(),
        basic_insurance_paid: "50000.00".into(),
        critical_illness_paid: "10000.00".into(),
        ..stay(&margin, "G-2", "0")
    };
    let (two, _) = settled(server.settlements().settle(second).await);
    assert_eq!(two.assistance_amount, "24250.00");
    let b = breakdown(&two);
    assert_eq!(b.deductible_consumed, "0.00");
    let bands: Vec<(&str, &str, &str, &str)> = b
        .bands
        .iter()
        .map(|l| {
            (
                l.up_to.as_str(),
                l.ratio.as_str(),
                l.base.as_str(),
                l.amount.as_str(),
            )
        })
        .collect();
    assert_eq!(
        bands,
        [
            ("50000.00", "0.60", "35000.00", "21000.00"),
            ("", "0.65", "5000.00", "3250.00")
        ]
    );
    assert_eq!(b.explanation, SECOND_STAY);
    let read = server
        .settlements()
        .get_settlement(pb::GetSettlementRequest {
            settlement_id: two.settlement_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.breakdown, two.breakdown);
    let usage = server.annual_usage(&margin, 2026).await;
    assert_eq!(
        (
            usage.used.as_str(),
            usage.deductible_used.as_str(),
            usage.assisted_base.as_str()
        ),
        ("33250.00", "5000.00", "55000.00")
    );

    let tekun = enroll_as(&server, pb::EnrollmentKind::Tekun, 62).await;
    let heavy = pb::SettleRequest {
        total_cost: "200000.00".into(),
        in_scope_cost: "180000.00".into(),
        basic_insurance_paid: "25000.00".into(),
        critical_illness_paid: "5000.00".into(),
        ..stay(&tekun, "G-3", "0")
    };
    let (three, _) = settled(server.settlements().settle(heavy).await);
    assert_eq!(three.assistance_amount, "110000.00");
    assert!(three.capped);
    let b = breakdown(&three);
    assert_eq!(
        (b.cap_charged.as_str(), b.tilted_amount.as_str()),
        ("100000.00", "10000.00")
    );
    assert_eq!(b.explanation, TEKUN_STAY);
    let usage = server.annual_usage(&tekun, 2026).await;
    assert_eq!(
        (
            usage.used.as_str(),
            usage.remaining.as_str(),
            usage.tilted_total.as_str()
        ),
        ("100000.00", "0.00", "10000.00")
    );
}

/// Proves the seed's rule answers with a breakdown too, and that a class
/// the 2026 file does not list (registered poor) is not enrolled under it.
#[tokio::test]
async fn the_seed_explains_itself_and_unlisted_classes_are_not_enrolled() {
    let seed = TestServer::start().await;
    let patient = seed.enroll("1960-01-01", 63).await;
    let (settlement, _) = settled(
        seed.settlements()
            .settle(worked_example(&patient, "S-1"))
            .await,
    );
    assert_eq!(settlement.assistance_amount, "7350.00");
    assert_eq!(settlement.claim_kind(), pb::ClaimKind::Inpatient);
    assert!(
        breakdown(&settlement)
            .explanation
            .contains("10500.00 × 70% = 7350.00")
    );

    let server = server_2026().await;
    let poor = enroll_as(&server, pb::EnrollmentKind::RegisteredPoor, 64).await;
    let (settlement, _) = settled(
        server
            .settlements()
            .settle(worked_example(&poor, "S-2"))
            .await,
    );
    assert_eq!(
        settlement.ineligible_reason(),
        pb::IneligibleReason::NotEnrolled
    );
    assert_eq!(settlement.assistance_amount, "0.00");
    assert_eq!(breakdown(&settlement).assisted_class, "");
}

/// Proves a reversal gives back exactly what its claim consumed, deductible
/// and band position included: after the first stay (which consumed the
/// whole 12,500.00 deductible) is reversed, the next stay consumes it again
/// and pays what the first would have.
#[tokio::test]
async fn a_reversal_gives_the_deductible_back() {
    let server = server_2026().await;
    let patient = enroll_as(&server, pb::EnrollmentKind::ImpoverishedByIllness, 65).await;
    let (first, _) = settled(
        server
            .settlements()
            .settle(stay(&patient, "R-1", "20000.00"))
            .await,
    );
    assert_eq!(breakdown(&first).deductible_consumed, "12500.00");
    assert_eq!(first.assistance_amount, "3750.00");
    let (second, _) = settled(
        server
            .settlements()
            .settle(stay(&patient, "R-2", "20000.00"))
            .await,
    );
    assert_eq!(breakdown(&second).deductible_consumed, "0.00");
    assert_eq!(second.assistance_amount, "10000.00");
    server
        .settlements()
        .reverse(pb::ReverseRequest {
            hospital_id: "H001".into(),
            claim_id: "R-1".into(),
            reason: "duplicate bill".into(),
        })
        .await
        .unwrap();
    let usage = server.annual_usage(&patient, 2026).await;
    assert_eq!(
        (
            usage.used.as_str(),
            usage.deductible_used.as_str(),
            usage.assisted_base.as_str()
        ),
        ("10000.00", "0.00", "20000.00")
    );
    let (third, _) = settled(
        server
            .settlements()
            .settle(stay(&patient, "R-3", "20000.00"))
            .await,
    );
    assert_eq!(breakdown(&third).deductible_consumed, "12500.00");
    // The band position is the second stay's 20,000.00: 7,500.00 at 50%.
    assert_eq!(third.assistance_amount, "3750.00");
    let usage = server.annual_usage(&patient, 2026).await;
    assert_eq!(usage.deductible_used, "12500.00");
    server.stop().await;
}

/// The same claims settled one after another by the pure rules, as the
/// ledger charges them in commit order: each one's assistance, and the
/// year's total after them.
fn in_commit_order(patient: &str, count: usize, oop: &str) -> (Vec<i64>, Usage) {
    let config = Config::parse(POLICY_2026).unwrap();
    let policy = config
        .policies
        .lookup(
            RegionCode::parse("320505").unwrap(),
            Year::parse(2026).unwrap(),
        )
        .unwrap()
        .clone();
    let person = medassist::domain::Person::parse(&medassist::domain::PersonInput {
        patient_id: patient,
        name: "张三",
        region_code: "320505",
        enrollments: vec![medassist::domain::EnrollmentInput {
            kind: Some(medassist::domain::EnrollmentKind::ImpoverishedByIllness),
            valid_from: "2025-01-01",
            valid_to: "",
            exit: Some(medassist::domain::ExitKind::Plain),
        }],
        psychiatric_disability_grade: 0,
        paralysis_certified: false,
    })
    .unwrap();
    let codes = vec!["J10.1".to_owned()];
    let mut usage = Usage::default();
    let mut paid = Vec::new();
    for n in 0..count {
        let claim_id = format!("K-{n:03}");
        let claim = Claim::parse(&ClaimInput {
            hospital_id: "H001",
            claim_id: &claim_id,
            patient_id: patient,
            admission_date: "2026-03-01",
            discharge_date: "2026-03-20",
            diagnosis_codes: &codes,
            total_cost: oop,
            in_scope_cost: oop,
            basic_insurance_paid: "0",
            critical_illness_paid: "0",
            claim_kind: ClaimKindSent::Unstated,
        })
        .unwrap();
        let outcome = rules::apply_year(
            &claim,
            &rules::assess(&claim, Some((&person, &policy))),
            &usage,
        );
        usage = usage.charge(&outcome).unwrap();
        paid.push(outcome.assistance.fen());
    }
    (paid, usage)
}

/// Proves concurrent claims of one patient are charged in commit order
/// with their deductible and band position exactly as the cap is: 80
/// stays of 5,000.00 sent at once by an impoverished-by-illness patient
/// (12,500.00 deductible, three bands, a 100,000.00 cap, then tilted
/// assistance) pay, taken in settlement-number order, exactly what the
/// pure rules pay one after another; the year's total holds the deductible
/// once, the whole base, the cap and the tilt; and the store checks out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_consume_deductible_and_bands_in_commit_order() {
    let server = server_2026().await;
    let patient = enroll_as(&server, pb::EnrollmentKind::ImpoverishedByIllness, 66).await;
    let calls: Vec<_> = (0..80)
        .map(|n| {
            let mut client = server.settlements();
            let request = stay(&patient, &format!("K-{n:03}"), "5000.00");
            tokio::spawn(async move { settled(client.settle(request).await).0 })
        })
        .collect();
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap());
    }
    let ids: HashSet<_> = answers.iter().map(|s| s.settlement_id.clone()).collect();
    assert_eq!(ids.len(), 80);
    answers.sort_by(|a, b| a.settlement_id.cmp(&b.settlement_id));
    let in_order: Vec<i64> = answers.iter().map(|s| fen(&s.assistance_amount)).collect();
    let (expected, total) = in_commit_order(&patient, 80, "5000.00");
    let mut sorted = in_order.clone();
    let mut expected_sorted = expected.clone();
    sorted.sort_unstable();
    expected_sorted.sort_unstable();
    assert_eq!(
        sorted, expected_sorted,
        "the same amounts, whatever the order"
    );
    if !medassist_on_postgres() {
        // One writer numbers settlements in commit order.
        assert_eq!(in_order, expected);
    }
    let deductibles: i64 = answers
        .iter()
        .map(|s| fen(&breakdown(s).deductible_consumed))
        .sum();
    assert_eq!(deductibles, 1_250_000, "the deductible is consumed once");
    let usage = server.annual_usage(&patient, 2026).await;
    assert_eq!(usage.used, total.used.to_string());
    assert_eq!(usage.used, "100000.00");
    assert_eq!(usage.deductible_used, "12500.00");
    assert_eq!(usage.assisted_base, "387500.00");
    assert_eq!(usage.tilted_total, total.tilt_used.to_string());
    assert_eq!(
        in_order.iter().sum::<i64>(),
        total.used.fen() + total.tilt_used.fen()
    );
    assert!(total.tilt_used > Money::ZERO);
    let dir = server.stop().await;
    let report = verify_dir(&dir);
    assert!(report.is_consistent(), "{report}");
}

fn medassist_on_postgres() -> bool {
    crate::backend::on_postgres()
}

/// Replays a stopped server's year under `book`, from its directory or
/// its database.
fn simulate(
    dir: &TempDir,
    book: &medassist::domain::PolicyBook,
    region: Option<&str>,
) -> SimulationReport {
    use medassist::{
        simulate::{Simulation, replay},
        store::{PostgresStore, Schema, SledOptions, SledStore},
    };
    let year = Year::parse(2026).unwrap();
    let region = region.map(|r| RegionCode::parse(r).unwrap());
    if crate::backend::on_postgres() {
        let url = crate::backend::database_for(&data_dir(dir));
        let store = PostgresStore::open(&url, None, Schema::Expect).unwrap();
        return replay(&store, Simulation::new(book, year, region), &|| false)
            .unwrap()
            .0;
    }
    let store = SledStore::open(&data_dir(dir), SledOptions::default()).unwrap();
    replay(&store, Simulation::new(book, year, region), &|| false)
        .unwrap()
        .0
}

/// Proves a SimulatePolicy answer carries `report`: every total, group and
/// changed claim, in yuan.
fn assert_answers(online: &pb::SimulatePolicyResponse, report: &SimulationReport) {
    use medassist::simulate::{Totals, yuan};
    let same = |got: &pb::SimulationTotals, key: &str, want: &Totals| {
        assert_eq!(got.key, key);
        assert_eq!(
            (got.settlements, got.persons),
            (want.settlements, want.persons),
            "{key}"
        );
        assert_eq!(got.paid, yuan(want.paid_fen), "{key}");
        assert_eq!(got.would_pay, yuan(want.would_pay_fen), "{key}");
    };
    assert_eq!(online.year, report.year);
    same(online.total.as_ref().unwrap(), "", &report.total);
    for (got, want) in [
        (&online.by_class, &report.by_class),
        (&online.by_region, &report.by_region),
        (&online.by_month, &report.by_month),
    ] {
        assert_eq!(got.len(), want.len());
        for (got, (key, want)) in got.iter().zip(want) {
            same(got, key, want);
        }
    }
    assert_eq!(online.without_policy, report.without_policy);
    let changes: Vec<_> = online
        .changes
        .iter()
        .map(|c| {
            (
                c.settlement_id.as_str(),
                c.paid.clone(),
                c.would_pay.clone(),
            )
        })
        .collect();
    let wanted: Vec<_> = report
        .changes
        .iter()
        .map(|c| {
            (
                c.settlement_id.as_str(),
                yuan(c.paid_fen),
                yuan(c.would_pay_fen),
            )
        })
        .collect();
    assert_eq!(changes, wanted);
}

/// Proves `medassist simulate`: the year replayed under the policy in force
/// pays exactly what was paid, to the fen, through deductibles, bands, an
/// outpatient claim, tilted assistance, concurrent claims and a reversal
/// between them; under a proposal that raises the margin's first band from
/// 60% to 70% it shows the difference, by class and claim; the command line
/// prints the same as CSV, and SimulatePolicy on the running service
/// answers the same report.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_simulation_of_the_policy_in_force_pays_what_was_paid() {
    let server = server_2026().await;
    let margin = enroll_as(&server, pb::EnrollmentKind::LowIncomeMargin, 67).await;
    let tekun = enroll_as(&server, pb::EnrollmentKind::Tekun, 68).await;
    let ill = enroll_as(&server, pb::EnrollmentKind::ImpoverishedByIllness, 69).await;
    let mut client = server.settlements();
    for (patient, claim, oop) in [
        (&margin, "M-1", "20000.00"),
        (&margin, "M-2", "30000.00"),
        (&tekun, "T-1", "150000.00"),
        (&tekun, "T-2", "40000.00"),
    ] {
        settled(client.settle(stay(patient, claim, oop)).await);
    }
    let outpatient = pb::SettleRequest {
        claim_kind: pb::ClaimKind::OutpatientChronic.into(),
        ..stay(&margin, "M-3", "8000.00")
    };
    settled(client.settle(outpatient).await);
    client
        .reverse(pb::ReverseRequest {
            hospital_id: "H001".into(),
            claim_id: "M-1".into(),
            reason: "corrected bill".into(),
        })
        .await
        .unwrap();
    settled(client.settle(stay(&margin, "M-4", "10000.00")).await);
    let calls: Vec<_> = (0..20)
        .map(|n| {
            let mut client = server.settlements();
            let request = stay(&ill, &format!("I-{n:02}"), "9000.00");
            tokio::spawn(async move { settled(client.settle(request).await) })
        })
        .collect();
    for call in calls {
        call.await.unwrap();
    }
    let proposal = POLICY_2026.replacen(
        "[[policy.class.band]]\nup_to = \"50000.00\"\nratio = \"0.60\"",
        "[[policy.class.band]]\nup_to = \"50000.00\"\nratio = \"0.70\"",
        1,
    );
    let asked = |policy: &str, region: &str| pb::SimulatePolicyRequest {
        policy_toml: policy.to_owned(),
        year: 2026,
        region_code: region.to_owned(),
    };
    let mut policies = server.policies();
    let online_in_force = policies
        .simulate_policy(asked(POLICY_2026, ""))
        .await
        .unwrap()
        .into_inner();
    let online_proposed = policies
        .simulate_policy(asked(&proposal, "320500"))
        .await
        .unwrap()
        .into_inner();
    for (text, why) in [
        ("", "is required"),
        ("[limits]\n", "states no [[policy]]"),
        (&POLICY_2026.replacen("0.60", "1.60", 1), "policy[0]"),
    ] {
        let refused = policies
            .simulate_policy(asked(text, ""))
            .await
            .expect_err("a proposal that is not a policy book is refused");
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
        assert!(
            refused.message().contains("policy_toml") && refused.message().contains(why),
            "{refused:?}"
        );
    }
    let dir = server.stop().await;

    let in_force = Config::parse(POLICY_2026).unwrap().policies;
    let report = simulate(&dir, &in_force, None);
    assert_answers(&online_in_force, &report);
    // M-2, M-3, M-4, T-1, T-2 and the 20: the reversed M-1 does not count.
    assert_eq!(report.total.settlements, 25);
    assert_eq!(report.total.persons, 3);
    assert_eq!(report.total.paid_fen, report.total.would_pay_fen);
    assert!(report.total.paid_fen > 0);
    assert!(report.changes.is_empty(), "{:?}", report.changes);
    for totals in report.by_class.values() {
        assert_eq!(totals.paid_fen, totals.would_pay_fen);
    }

    let proposed = Config::parse(&proposal).unwrap().policies;
    let report = simulate(&dir, &proposed, Some("320500"));
    assert_answers(&online_proposed, &report);
    let margin_class = &report.by_class["low_income_margin"];
    // 10% more on the margin's base in the first band, as it stood when
    // each was settled: M-2 30,000.00 (M-1 not yet reversed, so no
    // deductible), M-3 5,000.00 (its other 3,000.00 past the edge), M-4
    // 5,000.00 (the reversal of M-1 gave the deductible back): 4,000.00.
    assert_eq!(margin_class.would_pay_fen - margin_class.paid_fen, 400_000);
    assert_eq!(
        report.by_class["tekun"].would_pay_fen,
        report.by_class["tekun"].paid_fen
    );
    assert_eq!(report.changes.len(), 3);
    assert!(simulate(&dir, &proposed, Some("320600")).total.settlements == 0);

    if !crate::backend::on_postgres() {
        let policy_file = dir.path().join("proposal.toml");
        std::fs::write(&policy_file, &proposal).unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_medassist"))
            .args(["simulate", "--year", "2026", "--format", "csv", "--policy"])
            .arg(&policy_file)
            .arg("--data-dir")
            .arg(data_dir(&dir))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let csv = String::from_utf8(output.stdout).unwrap();
        assert!(csv.starts_with("section,key,settlements,persons,paid,would_pay,change\n"));
        assert!(csv.contains("\nclass,low_income_margin,3,1,"), "{csv}");
        assert!(csv.contains(",4000.00\n"), "{csv}");
    }
}
