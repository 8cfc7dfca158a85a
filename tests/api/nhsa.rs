//! The national interface's envelope on `POST /nhsa/v1`, through a plain
//! HTTP client, with messages in the shapes HIS vendors send (the field
//! sets of newtouch-cloud/openhis `WinServiceAPI/YiBaoInterface/Models`:
//! `InputPost` for the envelope, `Input_2304`, `Input_1101`, `Input_3201`
//! and `diseinfo` for the inputs; amounts as JSON numbers with two
//! decimals, or strings, as their serializers write them).

use std::{net::SocketAddr, sync::Arc};

use medassist::{
    auth::{Access, Role},
    config::Config,
    grpc::{
        nhsa::MAPPING,
        pb::{
            self, roster_service_client::RosterServiceClient,
            settlement_service_client::SettlementServiceClient,
        },
    },
};
use serde_json::Value;
use tempfile::TempDir;

use crate::helpers::*;

/// The institution's national code, as hospitals hold it.
const FIXMEDINS: &str = "H32060200001";
/// The statement and settlement day (Beijing).
const DAY: &str = "2026-04-02";

/// A server on `DAY` with HTTP/JSON and the tokens of a hospital, another
/// hospital, the roster's clerk and an auditor.
async fn server() -> (TestServer, SocketAddr) {
    let dir = Arc::new(TempDir::new().unwrap());
    let mut config = TestServer::config_for(&dir);
    config.config = Config {
        access: Access::Tokens(vec![
            token_entry("t-his", Role::Hospital, Some(FIXMEDINS)),
            token_entry("t-other", Role::Hospital, Some("H32060200002")),
            token_entry("t-roster", Role::RosterAdmin, None),
            token_entry("t-auditor", Role::Auditor, None),
        ]),
        ..Config::default()
    };
    config.http_listen = Some(local());
    config.clock = medassist::clock::ManualClock::new(at("2026-04-02T02:00:00Z"));
    let server = TestServer::launch(dir, config, None).await;
    let http = server.http_addr.expect("HTTP/JSON is served");
    (server, http)
}

/// A dibao member since 2020, formerly registered poor with a gradual exit.
async fn enroll(server: &TestServer, sequence: u16) -> String {
    let id = resident_id("1960-01-01", sequence);
    let mut person = dibao_person(&id);
    person.enrollments.push(pb::Enrollment {
        kind: pb::EnrollmentKind::Dibao.into(),
        valid_from: "2016-01-01".into(),
        valid_to: "2019-11-30".into(),
        exit: pb::ExitKind::GradualExit.into(),
    });
    RosterServiceClient::with_interceptor(server.channel(), bearer(Some("t-roster")))
        .upsert_person(pb::UpsertPersonRequest {
            person: Some(person),
        })
        .await
        .expect("roster accepts the person");
    id
}

/// An envelope as `InputPost` writes it, around `input` (JSON text).
fn envelope(infno: &str, msgid: &str, input: &str) -> String {
    format!(
        r#"{{"infno":"{infno}","msgid":"{msgid}","mdtrtarea_admvs":"320602",
        "insuplc_admdvs":"320602","recer_sys_code":"YBXT","dev_no":"","dev_safe_info":"",
        "cainfo":"","signtype":"","infver":"V1.0","opter_type":"1","opter":"0001",
        "opter_name":"王收费","inf_time":"2026-04-02 10:00:00","fixmedins_code":"{FIXMEDINS}",
        "fixmedins_name":"南通市第一人民医院","sign_no":"","input":{input}}}"#
    )
}

/// A 30-character `msgid`: the institution, the time, a sequence number.
fn msgid(sequence: u32) -> String {
    format!("{FIXMEDINS}20260402100000{sequence:04}")
}

/// The input of a 2303 or 2304 for DOMAIN.md's worked example (uraemia,
/// 50,000.00; in scope 42,000.00; basic 25,200.00; critical illness
/// 6,300.00), with the discharge registration's times and diagnoses.
fn settle_input(patient: &str, mdtrt_id: &str, medfee: &str) -> String {
    format!(
        r#"{{"data":{{"psn_no":"32000000000000000000000012","mdtrt_cert_type":"02",
        "mdtrt_cert_no":"{patient}","medfee_sumamt":{medfee},"psn_setlway":"01",
        "mdtrt_id":"{mdtrt_id}","insutype":"390","acct_used_flag":"0","invono":"",
        "mid_setl_flag":"0","fulamt_ownpay_amt":3000.00,"overlmt_selfpay":0.00,
        "preselfpay_amt":5000.00,"inscp_scp_amt":"42000.00","hifp_pay":25200.00,
        "hifmi_pay":6300.00,"hifob_pay":0,"begntime":"2026-03-01 08:30:00",
        "endtime":"2026-03-20 10:00:00","exp_content":""}},
        "diseinfo":[{{"psn_no":"32000000000000000000000012","diag_type":"1",
        "maindiag_flag":"0","diag_srt_no":"2","diag_code":"I10.x00x002","diag_name":"高血压",
        "diag_dept":"肾内科","dise_dor_no":"D001","dise_dor_name":"李医生",
        "diag_time":"2026-03-20 09:00:00","mdtrt_id":"{mdtrt_id}","vali_flag":"1"}},
        {{"psn_no":"32000000000000000000000012","diag_type":"1","maindiag_flag":"1",
        "diag_srt_no":"1","diag_code":"N18.500","diag_name":"慢性肾脏病5期","diag_dept":"肾内科",
        "dise_dor_no":"D001","dise_dor_name":"李医生","diag_time":"2026-03-20 09:00:00",
        "mdtrt_id":"{mdtrt_id}","vali_flag":"1"}}]}}"#
    )
}

/// Posts `body` to the national route with `token`; the raw answer (to
/// read amounts as written) and its JSON.
async fn post(http: SocketAddr, token: Option<&str>, body: &str) -> (String, Value) {
    let (status, text) = http_raw(http, "POST", "/nhsa/v1", token, Some(body)).await;
    assert_eq!(status, 200, "an envelope is always answered 200: {text}");
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (text, json)
}

/// Asserts a refusal: `infcode` -1, an `err_msg` containing `words`, an
/// empty output.
fn refused(answer: &Value, words: &str) {
    assert_eq!(answer["infcode"], -1, "{answer}");
    let said = answer["err_msg"].as_str().unwrap();
    assert!(said.contains(words), "{said:?} should say {words:?}");
    assert_eq!(answer["output"], serde_json::json!({}));
}

async fn usage_count(server: &TestServer, patient: &str) -> i32 {
    pb::usage_service_client::UsageServiceClient::with_interceptor(
        server.channel(),
        bearer(Some("t-auditor")),
    )
    .get_annual_usage(pb::GetAnnualUsageRequest {
        patient_id: patient.into(),
        year: 2026,
    })
    .await
    .map(|u| u.into_inner().settlement_count)
    .unwrap_or(0)
}

/// Proves 2303 quotes without recording and 2304 settles, with every field
/// of `setlinfo` and the 610100 row of `setldetail` as our settlement
/// computes them, amounts as two-decimal numbers; that the 2304 equals the
/// gRPC Settle of the same claim to the fen; that a repeated `msgid` gets
/// the first answer word for word, and with another input is refused
/// without writing.
#[tokio::test]
async fn a_2304_settles_the_claim_as_settle_does() {
    let (server, http) = server().await;
    let patient = enroll(&server, 71).await;
    let input = settle_input(&patient, "ZY2026000123", "50000.00");

    let (_, quote) = post(http, Some("t-his"), &envelope("2303", &msgid(1), &input)).await;
    assert_eq!(quote["infcode"], 0, "{quote}");
    assert_eq!(quote["output"]["setlinfo"]["setl_id"], "");
    assert_eq!(
        usage_count(&server, &patient).await,
        0,
        "2303 records nothing"
    );

    let body = envelope("2304", &msgid(2), &input);
    let (text, settled) = post(http, Some("t-his"), &body).await;
    assert_eq!(settled["infcode"], 0, "{settled}");
    assert_eq!(settled["err_msg"], "");
    assert_eq!(settled["refmsg_time"], "20260402100000000");
    assert_eq!(settled["respond_time"], "20260402100000000");
    assert!(
        settled["inf_refmsgid"]
            .as_str()
            .unwrap()
            .starts_with("MAS20260402100000000")
    );
    let setl = &settled["output"]["setlinfo"];
    let grpc = settled_as(
        SettlementServiceClient::with_interceptor(server.channel(), bearer(Some("t-his")))
            .settle(pb::SettleRequest {
                hospital_id: FIXMEDINS.into(),
                claim_id: "ZY2026000123".into(),
                diagnosis_codes: vec!["N18.500".into(), "I10".into()],
                claim_kind: pb::ClaimKind::Inpatient.into(),
                ..worked_example(&patient, "")
            })
            .await,
    );
    let (same, answer) = grpc;
    assert_eq!(answer, pb::SettleAnswer::AlreadySettled, "the same claim");
    assert_eq!(setl["setl_id"], same.settlement_id.as_str());
    assert_eq!(setl["mdtrt_id"], "ZY2026000123");
    assert_eq!(setl["psn_no"], patient.as_str());
    assert_eq!(setl["certno"], patient.as_str());
    assert_eq!(setl["psn_cert_type"], "01");
    assert_eq!(setl["gend"], "1");
    assert_eq!(setl["brdy"], "1960-01-01");
    assert_eq!(setl["age"], 66);
    assert_eq!(setl["insutype"], "390");
    assert_eq!(setl["setl_time"], "2026-04-02 10:00:00");
    assert_eq!(setl["medins_setl_id"], msgid(2).as_str());
    for (field, amount) in [
        ("medfee_sumamt", "50000.00"),
        ("fulamt_ownpay_amt", "3000.00"),
        ("overlmt_selfpay", "0.00"),
        ("preselfpay_amt", "5000.00"),
        ("inscp_scp_amt", "42000.00"),
        ("hifp_pay", "25200.00"),
        ("hifmi_pay", "6300.00"),
        ("hifob_pay", "0.00"),
        ("maf_pay", "7350.00"),
        ("fund_pay_sumamt", "38850.00"),
        ("psn_part_amt", "11150.00"),
        ("psn_cash_pay", "11150.00"),
        ("acct_pay", "0.00"),
        ("oth_pay", "0.00"),
    ] {
        assert!(
            text.contains(&format!("\"{field}\":{amount}")),
            "{field} written as {amount}: {text}"
        );
    }
    assert_eq!(fen(&same.assistance_amount), fen("7350.00"));
    assert_eq!(fen(&same.patient_pays), fen("11150.00"));
    let detail = &settled["output"]["setldetail"];
    assert_eq!(detail.as_array().unwrap().len(), 1);
    assert_eq!(detail[0]["fund_pay_type"], "610100");
    assert_eq!(detail[0]["fund_pay_type_name"], "医疗救助基金");
    assert!(text.contains("\"crt_payb_lmt_amt\":150000.00"), "{text}");
    assert!(text.contains("\"fund_payamt\":7350.00"), "{text}");
    assert!(text.contains("\"inscp_scp_amt\":10500.00"), "{text}");
    assert!(
        detail[0]["setl_proc_info"]
            .as_str()
            .unwrap()
            .contains("医疗救助 7350.00")
    );

    let (again, _) = post(http, Some("t-his"), &body).await;
    assert_eq!(
        again, text,
        "the same msgid gets the first answer, word for word"
    );
    // Audited as the RPCs it became, under the hospital's token.
    let (_, trail) = crate::helpers::http(
        http,
        "POST",
        "/v1/audit:list",
        Some("t-auditor"),
        Some(
            serde_json::json!({"patientId": patient, "fromTime": "2026-04-01T00:00:00Z",
            "toTime": "2026-04-03T00:00:00Z", "pageSize": 100}),
        ),
    )
    .await;
    let calls: Vec<(&str, &str)> = trail["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["call"].as_str().unwrap(),
                r["principalName"].as_str().unwrap(),
            )
        })
        .collect();
    let count = |call: &str| {
        let call = format!("medassist.v1.SettlementService/{call}");
        calls
            .iter()
            .filter(|c| **c == (call.as_str(), "test t-his"))
            .count()
    };
    // The 2304, the gRPC Settle of the same claim, and the 2304 sent again:
    // a retry is made again (authenticated, audited) before the first answer.
    assert_eq!((count("PreSettle"), count("Settle")), (1, 3), "{calls:?}");

    let changed = envelope(
        "2304",
        &msgid(2),
        &settle_input(&patient, "ZY2026000123", "60000.00"),
    );
    let (_, reused) = post(http, Some("t-his"), &changed).await;
    refused(&reused, "msgid");
    let (_, other_content) = post(
        http,
        Some("t-his"),
        &envelope(
            "2304",
            &msgid(3),
            &settle_input(&patient, "ZY2026000123", "60000.00"),
        ),
    )
    .await;
    assert_eq!(other_content["infcode"], -1, "{other_content}");
    assert_eq!(
        usage_count(&server, &patient).await,
        1,
        "one settlement, written once"
    );
    server.stop().await;
}

/// Proves 2305 cancels by `mdtrt_id` or `setl_id` and refuses an unknown
/// or another institution's settlement; 3201 matches the day's net figures
/// before and after; 1101 lists the identities with the grace period, whole
/// for the roster's clerk, masked for an auditor, refused to a hospital.
#[tokio::test]
async fn cancel_reconcile_and_identify() {
    let (server, http) = server().await;
    let patient = enroll(&server, 73).await;
    let input = settle_input(&patient, "ZY2026000200", "50000.00");
    let (_, settled) = post(http, Some("t-his"), &envelope("2304", &msgid(10), &input)).await;
    assert_eq!(settled["infcode"], 0, "{settled}");
    let setl_id = settled["output"]["setlinfo"]["setl_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let statement = |count: u32, fund: &str| {
        format!(
            r#"{{"data":{{"insutype":"390","clr_type":"21","setl_optins":"320602",
            "stmt_begndate":"{DAY}","stmt_enddate":"{DAY}","medfee_sumamt":50000.00,
            "fund_pay_sumamt":{fund},"acct_pay":0.00,"fixmedins_setl_cnt":{count},
            "refd_setl_flag":"0"}}}}"#
        )
    };
    let (_, matched) = post(
        http,
        Some("t-his"),
        &envelope("3201", &msgid(11), &statement(1, "7350.00")),
    )
    .await;
    assert_eq!(matched["infcode"], 0, "{matched}");
    assert_eq!(matched["output"]["stmtinfo"]["stmt_rslt"], "0");
    assert_eq!(matched["output"]["stmtinfo"]["setl_optins"], "320602");
    let (_, unmatched) = post(
        http,
        Some("t-his"),
        &envelope("3201", &msgid(12), &statement(2, "7350.01")),
    )
    .await;
    assert_eq!(unmatched["output"]["stmtinfo"]["stmt_rslt"], "1");
    let why = unmatched["output"]["stmtinfo"]["stmt_rslt_dscr"]
        .as_str()
        .unwrap();
    assert!(
        why.contains("结算笔数：医疗救助基金 1 笔，机构 2 笔"),
        "{why}"
    );
    assert!(why.contains("基金 7350.00 元，机构 7350.01 元"), "{why}");

    let (_, other) = post(
        http,
        Some("t-other"),
        &envelope(
            "2305",
            &msgid(13),
            &format!(r#"{{"data":{{"setl_id":"{setl_id}","psn_no":"{patient}"}}}}"#),
        ),
    )
    .await;
    assert_eq!(
        other["infcode"], -1,
        "another institution's settlement: {other}"
    );
    let (_, unknown) = post(
        http,
        Some("t-his"),
        &envelope(
            "2305",
            &msgid(14),
            r#"{"data":{"mdtrt_id":"ZY-NEVER","psn_no":"x"}}"#,
        ),
    )
    .await;
    refused(&unknown, "未找到");
    let (text, cancelled) = post(
        http,
        Some("t-his"),
        &envelope(
            "2305",
            &msgid(15),
            &format!(r#"{{"data":{{"setl_id":"{setl_id}","psn_no":"{patient}"}}}}"#),
        ),
    )
    .await;
    assert_eq!(cancelled["infcode"], 0, "{cancelled}");
    assert_eq!(cancelled["output"]["setlinfo"]["setl_id"], setl_id.as_str());
    assert!(text.contains("\"maf_pay\":-7350.00"), "{text}");
    assert!(text.contains("\"medfee_sumamt\":-50000.00"), "{text}");
    let (_, after) = post(
        http,
        Some("t-his"),
        &envelope("3201", &msgid(16), &statement(0, "0")),
    )
    .await;
    assert_eq!(after["output"]["stmtinfo"]["stmt_rslt"], "0", "{after}");

    let identify = format!(
        r#"{{"data":{{"mdtrt_cert_type":"02","mdtrt_cert_no":"{patient}","card_sn":"",
        "begntime":"","psn_cert_type":"01","certno":"{patient}","psn_name":"张三"}}}}"#
    );
    let (_, whole) = post(
        http,
        Some("t-roster"),
        &envelope("1101", &msgid(17), &identify),
    )
    .await;
    assert_eq!(whole["infcode"], 0, "{whole}");
    let base = &whole["output"]["baseinfo"];
    assert_eq!(base["psn_name"], "张三");
    assert_eq!(base["certno"], patient.as_str());
    assert_eq!(
        (base["gend"].as_str(), base["brdy"].as_str()),
        (Some("1"), Some("1960-01-01"))
    );
    assert_eq!(base["age"], 66);
    let identities = whole["output"]["idetinfo"].as_array().unwrap();
    assert_eq!(identities.len(), 2);
    assert_eq!(identities[0]["psn_idet_type"], "DIBAO");
    assert_eq!(identities[0]["memo"], "低保");
    assert_eq!(identities[0]["begntime"], "2020-01-01 00:00:00");
    assert_eq!(identities[0]["endtime"], "", "still enrolled");
    assert_eq!(identities[1]["begntime"], "2016-01-01 00:00:00");
    assert_eq!(
        identities[1]["endtime"], "2020-02-29 23:59:59",
        "2019-11-30 and three months of gradual exit"
    );
    let (_, masked) = post(
        http,
        Some("t-auditor"),
        &envelope("1101", &msgid(18), &identify),
    )
    .await;
    assert_eq!(masked["output"]["baseinfo"]["psn_name"], "张*");
    assert_eq!(
        masked["output"]["baseinfo"]["certno"],
        format!("{}********{}", &patient[..6], &patient[14..]).as_str()
    );
    let (_, hospital) = post(
        http,
        Some("t-his"),
        &envelope("1101", &msgid(19), &identify),
    )
    .await;
    refused(&hospital, "无权限");
    server.stop().await;
}

/// Proves malformed envelopes are answered `infcode = -1` with what is
/// wrong, naming the field, and write nothing: not JSON, no `infno`, a
/// number for `infno`, an unknown `infno`, a bad amount, 40,000 characters
/// in one field, a body over the size limit, and no token.
#[tokio::test]
async fn malformed_envelopes_are_refused_and_write_nothing() {
    let (server, http) = server().await;
    let patient = enroll(&server, 75).await;
    let good = settle_input(&patient, "ZY2026000300", "50000.00");

    let (_, not_json) = post(http, Some("t-his"), "{\"infno\": ").await;
    refused(&not_json, "报文不是 JSON 对象");
    let without = envelope("2304", &msgid(20), &good).replace("\"infno\":\"2304\",", "");
    let (_, missing) = post(http, Some("t-his"), &without).await;
    refused(&missing, "infno：必填");
    let number =
        envelope("2304", &msgid(21), &good).replace("\"infno\":\"2304\"", "\"infno\":2304");
    let (_, typed) = post(http, Some("t-his"), &number).await;
    refused(&typed, "infno：应为字符串");
    let (_, unknown) = post(http, Some("t-his"), &envelope("9999", &msgid(22), &good)).await;
    refused(&unknown, "本服务受理 1101、2303、2304、2305、3201");
    let bad_amount = good.replace("\"hifp_pay\":25200.00", "\"hifp_pay\":\"25200.001\"");
    let (_, amount) = post(
        http,
        Some("t-his"),
        &envelope("2304", &msgid(23), &bad_amount),
    )
    .await;
    refused(&amount, "input.data.hifp_pay：应为金额");
    let long = good.replacen("ZY2026000300", &"9".repeat(40_000), 1);
    let (_, too_long) = post(http, Some("t-his"), &envelope("2304", &msgid(24), &long)).await;
    refused(&too_long, "input.data.mdtrt_id：过长（40000 个字符");
    let huge = good.replace(
        "\"exp_content\":\"\"",
        &format!("\"exp_content\":\"{}\"", "x".repeat(70_000)),
    );
    let (_, over) = post(http, Some("t-his"), &envelope("2304", &msgid(25), &huge)).await;
    refused(&over, "报文过大");
    let no_dates = good
        .replace("\"begntime\":\"2026-03-01 08:30:00\",", "")
        .replace("\"diseinfo\"", "\"diseinfo_missing\"");
    let (_, dates) = post(
        http,
        Some("t-his"),
        &envelope("2304", &msgid(26), &no_dates),
    )
    .await;
    refused(&dates, "input.data.begntime：必填");
    refused(&dates, "input.diseinfo：必填");
    let (_, anonymous) = post(http, None, &envelope("2304", &msgid(27), &good)).await;
    refused(&anonymous, "身份认证失败");
    let (_, wrong_fields) = post(
        http,
        Some("t-his"),
        &envelope(
            "2304",
            &msgid(28),
            &good.replace(
                "\"inscp_scp_amt\":\"42000.00\"",
                "\"inscp_scp_amt\":\"60000.00\"",
            ),
        ),
    )
    .await;
    refused(&wrong_fields, "input.data.inscp_scp_amt");
    assert_eq!(
        usage_count(&server, &patient).await,
        0,
        "nothing was written"
    );
    server.stop().await;
}

/// Proves docs/NHSA.md shows the mapping the code uses: every row's fields.
#[test]
fn the_documented_mapping_is_the_codes() {
    let doc = include_str!("../../docs/NHSA.md");
    for field in MAPPING {
        let row = format!(
            "| {} | `{}` | `{}` |",
            field.infno, field.ours, field.theirs
        );
        assert!(doc.contains(&row), "docs/NHSA.md lacks the row {row}");
    }
}
