//! Hostile input: arbitrary strings in every field, extreme decimals,
//! impossible dates, oversized messages and random bytes as the protobuf body
//! of every RPC. The server must answer each with a proper status (never
//! panic) and keep serving. Inputs come from a seeded generator, so a failure
//! reproduces.

use bytes::{Buf, BufMut};
use medassist::{grpc::pb, metrics::KNOWN_RPCS};
use tonic::{
    Code, Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    codegen::http::uri::PathAndQuery,
};

use crate::helpers::*;

const DECIMALS: &[&str] = &[
    "1e5",
    "-0",
    "0.001",
    "NaN",
    "inf",
    "-inf",
    "123456789012345678901234567890",
    "0x1F",
    "+1",
    "1.",
    ".1",
    "1_000",
    "1,000.00",
    "٣",
    "１",
    "",
    " ",
    "99999999999999.99",
    "99999999999999.999",
    "100000000000000",
    "18446744073709551616",
    "-99999999999999.99",
    "0.00",
    "00000000000000000000001.00",
    "1.0e-2",
    "Infinity",
    "\u{0}",
];
const DATES: &[&str] = &[
    "2026-02-30",
    "0000-00-00",
    "9999-99-99",
    "2026-13-01",
    "2026-00-01",
    "2026-1-1",
    "２０２６-01-01",
    "1899-12-31",
    "2100-01-01",
    "2023-02-29",
    "-001-01-01",
    "2026-03-01T00:00:00Z",
    "",
    "2024-02-29",
];

/// Strings of every sort: valid-looking, random Unicode, control characters, long.
fn text(rng: &mut fastrand::Rng, valid: &str) -> String {
    match rng.u8(0..10) {
        0..=2 => valid.to_owned(),
        3 => DECIMALS[rng.usize(0..DECIMALS.len())].to_owned(),
        4 => DATES[rng.usize(0..DATES.len())].to_owned(),
        5 => (0..rng.usize(0..40)).map(|_| rng.char(..)).collect(),
        6 => (0..rng.usize(0..40))
            .map(|_| char::from(rng.u8(0..128)))
            .collect(),
        7 => "9".repeat(rng.usize(15..4000)),
        8 => format!("{valid}{}", rng.char(..)),
        _ => valid.chars().rev().collect(),
    }
}

fn hostile_claim(rng: &mut fastrand::Rng, patient: &str, n: usize) -> pb::SettleRequest {
    let good = worked_example(patient, &format!("H-{n}"));
    pb::SettleRequest {
        hospital_id: text(rng, &good.hospital_id),
        claim_id: text(rng, &good.claim_id),
        patient_id: text(rng, &good.patient_id),
        admission_date: text(rng, &good.admission_date),
        discharge_date: text(rng, &good.discharge_date),
        diagnosis_codes: (0..rng.usize(0..40))
            .map(|_| text(rng, "C34.900"))
            .collect(),
        total_cost: text(rng, &good.total_cost),
        in_scope_cost: text(rng, &good.in_scope_cost),
        basic_insurance_paid: text(rng, &good.basic_insurance_paid),
        critical_illness_paid: text(rng, &good.critical_illness_paid),
        claim_kind: good.claim_kind,
    }
}

fn hostile_person(rng: &mut fastrand::Rng, patient: &str) -> pb::Person {
    let good = dibao_person(patient);
    pb::Person {
        patient_id: text(rng, &good.patient_id),
        name: text(rng, &good.name),
        region_code: text(rng, &good.region_code),
        enrollments: (0..rng.usize(0..40))
            .map(|_| pb::Enrollment {
                kind: rng.i32(-2..7),
                valid_from: text(rng, "2020-01-01"),
                valid_to: text(rng, ""),
                exit: rng.i32(-2..5),
            })
            .collect(),
        psychiatric_disability_grade: rng.choice([0, 1, 2, 4, 5, -1, i32::MIN, i32::MAX]).unwrap(),
        paralysis_certified: rng.bool(),
    }
}

fn year(rng: &mut fastrand::Rng) -> i32 {
    rng.choice([2026, 0, -1, 1899, 1900, 2099, 2100, i32::MIN, i32::MAX])
        .unwrap()
}

/// A status a caller can act on: success, or a refusal of the input.
fn proper(result: Result<(), Status>) -> Option<Code> {
    match result {
        Ok(()) => None,
        Err(status) => {
            let code = status.code();
            assert!(
                matches!(
                    code,
                    Code::InvalidArgument
                        | Code::NotFound
                        | Code::AlreadyExists
                        | Code::FailedPrecondition
                ),
                "improper status {status:?}"
            );
            Some(code)
        }
    }
}

/// Proves 4,000 hostile requests across every RPC get proper statuses and
/// the server still settles afterwards.
#[tokio::test]
async fn hostile_fields_get_proper_statuses() {
    let server = TestServer::start().await;
    let patient = server.enroll("1960-01-01", 95).await;
    let (mut settlements, mut usage, mut roster, mut policies) = (
        server.settlements(),
        server.usage(),
        server.roster(),
        server.policies(),
    );
    let mut rng = fastrand::Rng::with_seed(20261128);
    let mut refused = 0;
    const TRIES: usize = 4000;
    for n in 0..TRIES {
        let result = match rng.u8(0..9) {
            0 => settlements
                .settle(hostile_claim(&mut rng, &patient, n))
                .await
                .map(drop),

            1 => settlements
                .pre_settle(hostile_claim(&mut rng, &patient, n))
                .await
                .map(drop),
            2 => settlements
                .reverse(pb::ReverseRequest {
                    hospital_id: text(&mut rng, "H001"),
                    claim_id: text(&mut rng, "H-1"),
                    reason: text(&mut rng, "wrong bill"),
                })
                .await
                .map(drop),
            3 => settlements
                .get_settlement(pb::GetSettlementRequest {
                    settlement_id: text(&mut rng, "1"),
                    hospital_id: text(&mut rng, "H001"),
                    claim_id: text(&mut rng, "H-1"),
                })
                .await
                .map(drop),
            4 => usage
                .get_annual_usage(pb::GetAnnualUsageRequest {
                    patient_id: text(&mut rng, &patient),
                    year: year(&mut rng),
                })
                .await
                .map(drop),
            5 => usage
                .list_settlements(pb::ListSettlementsRequest {
                    patient_id: text(&mut rng, &patient),
                    year: year(&mut rng),
                    page_size: rng
                        .choice([0, 1, 500, 501, -1, i32::MIN, i32::MAX])
                        .unwrap(),
                    page_token: text(&mut rng, "0000000000000001"),
                })
                .await
                .map(drop),
            6 => roster
                .upsert_person(pb::UpsertPersonRequest {
                    person: rng.bool().then(|| hostile_person(&mut rng, &patient)),
                })
                .await
                .map(drop),
            7 => roster
                .get_person(pb::GetPersonRequest {
                    patient_id: text(&mut rng, &patient),
                })
                .await
                .map(drop),
            _ => policies
                .get_policy(pb::GetPolicyRequest {
                    region_code: text(&mut rng, "320602"),
                    year: year(&mut rng),
                })
                .await
                .map(drop),
        };
        refused += usize::from(proper(result).is_some());
    }
    println!("hostile fields: {TRIES} requests, {refused} refused with a proper status, 0 panics");
    let (settlement, _) = settled(
        settlements
            .settle(worked_example(&resident_id("1970-01-01", 96), "after"))
            .await,
    );
    assert_eq!(
        settlement.ineligible_reason(),
        pb::IneligibleReason::NotEnrolled
    );
}

/// Sends and receives raw bytes, whatever the RPC.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

/// Proves random bytes as the body of every RPC are answered INVALID_ARGUMENT
/// (decodable, but not a valid request) or INTERNAL "failed to decode" (not
/// a protobuf message: gRPC's standard code for an unparsable body), never a
/// panic; an oversized body is OUT_OF_RANGE; and the server keeps serving.
#[tokio::test]
async fn random_bytes_as_every_rpc_body() {
    let server = TestServer::start().await;
    let mut rng = fastrand::Rng::with_seed(11_28);
    let mut grpc = tonic::client::Grpc::new(server.channel());
    let mut tried = 0;
    // Every unary RPC of our services (health and reflection are tonic's
    // own; SaveSnapshot, ImportPersons, ExportPersons and ExportSettlements stream).
    let rpcs: Vec<&'static str> = KNOWN_RPCS
        .iter()
        .copied()
        .filter(|p| {
            p.starts_with("/medassist.")
                && ![
                    "/SaveSnapshot",
                    "/ImportPersons",
                    "/ExportPersons",
                    "/ExportSettlements",
                ]
                .iter()
                .any(|streaming| p.ends_with(streaming))
        })
        .collect();
    assert_eq!(rpcs.len(), 24);
    for path in rpcs.iter().copied() {
        for round in 0..150 {
            let length = match round {
                0 => 0,
                1 => 100 * 1024,
                _ => rng.usize(1..600),
            };
            let body: Vec<u8> = (0..length).map(|_| rng.u8(..)).collect();
            grpc.ready().await.unwrap();
            let answer = grpc
                .unary(
                    tonic::Request::new(body),
                    PathAndQuery::from_static(path),
                    RawCodec,
                )
                .await;
            tried += 1;
            match answer {
                Ok(_) => {}
                Err(status) => match status.code() {
                    Code::InvalidArgument
                    | Code::NotFound
                    | Code::FailedPrecondition
                    | Code::AlreadyExists => {}
                    Code::Internal if status.message().contains("decode") => {}
                    Code::OutOfRange if length > 64 * 1024 => {}
                    _ => panic!("{path} with {length} random bytes: improper status {status:?}"),
                },
            }
        }
    }
    println!(
        "random bodies: {tried} requests over {} RPCs, 0 panics",
        rpcs.len()
    );
    let patient = server.enroll("1960-01-01", 97).await;
    let (settlement, _) = settled(
        server
            .settlements()
            .settle(worked_example(&patient, "still"))
            .await,
    );
    assert_eq!(settlement.assistance_amount, "7350.00");
}
