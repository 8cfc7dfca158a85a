//! Policies: the built-in one, a configured file, and fallback.

use std::sync::Arc;

use medassist::{config::Config, grpc::pb};
use tempfile::TempDir;
use tonic::Code;

use crate::helpers::*;

/// Proves the built-in policy is served for Nantong's counties every year.
#[tokio::test]
async fn the_builtin_policy() {
    let server = TestServer::start().await;
    let mut policies = server.policies();
    let policy = policies
        .get_policy(pb::GetPolicyRequest {
            region_code: "320602".into(),
            year: 2026,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(policy.region_code, "320600");
    assert_eq!(policy.assistance_ratio, "0.70");
    assert_eq!(policy.cap_fraction, "0.50");
    assert_eq!(policy.basic_insurance_annual_cap, "300000.00");
    assert_eq!(policy.annual_cap, "150000.00");
    assert_eq!(
        (
            policy.gradual_exit_grace_months,
            policy.left_poverty_grace_months
        ),
        (3, 24)
    );
    assert_eq!(policy.diseases.len(), 10);
    assert!(
        policy
            .diseases
            .iter()
            .any(|d| d.codes.contains(&"D68.1".to_owned()))
    );

    let elsewhere = policies
        .get_policy(pb::GetPolicyRequest {
            region_code: "110105".into(),
            year: 2026,
        })
        .await;
    assert_eq!(elsewhere.unwrap_err().code(), Code::NotFound);
    let bad = policies
        .get_policy(pb::GetPolicyRequest {
            region_code: "1101".into(),
            year: 1800,
        })
        .await;
    assert_eq!(bad_fields(&bad.unwrap_err()), ["region_code", "year"]);
}

const COUNTY_FILE: &str = r#"
[[policy]]
region_code = "320600"
year = 2020
assistance_ratio = "0.70"
cap_fraction = "0.50"
basic_insurance_annual_cap = "300000.00"

[[policy]]
region_code = "320602"
year = 2026
assistance_ratio = "0.80"
cap_fraction = "0.60"
basic_insurance_annual_cap = "300000.00"
"#;

/// Proves a county's own policy applies from its year on, records its id on
/// the settlement, and that other counties fall back to the city's.
#[tokio::test]
async fn a_county_policy_from_a_file() {
    let config = Config::parse(COUNTY_FILE).unwrap();
    let server = TestServer::start_with(Arc::new(TempDir::new().unwrap()), config).await;
    let patient = server.enroll("1960-01-01", 41).await;
    let (settlement, _) = settled(
        server
            .settlements()
            .settle(worked_example(&patient, "P-1"))
            .await,
    );
    // 0.80 x 10,500.00
    assert_eq!(settlement.assistance_amount, "8400.00");
    assert_eq!(settlement.annual_cap, "180000.00");
    assert!(
        settlement.policy_id.starts_with("320602-2026-"),
        "{}",
        settlement.policy_id
    );

    let last_year = pb::SettleRequest {
        admission_date: "2025-03-01".into(),
        discharge_date: "2025-03-20".into(),
        ..worked_example(&patient, "P-2")
    };
    let status = server.settlements().settle(last_year).await.unwrap_err();
    assert_eq!(
        status.code(),
        Code::FailedPrecondition,
        "the county has policies, none before 2026"
    );

    let neighbour = resident_id("1960-01-01", 42);
    let person = pb::Person {
        region_code: "320611".into(),
        ..dibao_person(&neighbour)
    };
    server
        .roster()
        .upsert_person(pb::UpsertPersonRequest {
            person: Some(person),
        })
        .await
        .unwrap();
    let (settlement, _) = settled(
        server
            .settlements()
            .settle(worked_example(&neighbour, "P-3"))
            .await,
    );
    assert_eq!(settlement.assistance_amount, "7350.00");
    assert!(settlement.policy_id.starts_with("320600-2020-"));
}
