//! The national medical security platform's hospital interface
//! (定点医药机构接口规范) on `POST /nhsa/v1`: the JSON envelope every hospital
//! billing system (HIS) already speaks, for inpatient settlement (2303
//! pre-settle, 2304 settle, 2305 cancel), a person's identities (1101) and
//! a hospital's totals (3201).
//!
//! Nothing here decides anything. An envelope is read and checked, its
//! `input` becomes the request of one of our RPCs by the one table
//! [`MAPPING`], and the request is sent as a real gRPC call through the same
//! in-process stack as every HTTP/JSON route ([`Gateway::unary`]): the same
//! token, roles, region scopes, validation, limits and audit record. The
//! answer becomes the platform's `output` by the same table. Every failure
//! is `infcode = -1` with an `err_msg` in Chinese that names the
//! platform's field.
//!
//! `msgid` is idempotent for what this process has answered: the same
//! caller sending the same `msgid` with the same envelope gets the first
//! answer again, word for word; with another envelope it is refused. The
//! record of answers is in memory ([`MSGIDS_KEPT`] of them); what makes a
//! settlement and a cancellation safe to retry across restarts is the claim
//! key (`fixmedins_code`, `mdtrt_id`), as for every other client.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::Mutex,
};

use axum::http::{HeaderMap, header};
use prost::bytes::Bytes;
use serde::Serialize;
use serde_json::{json, value::RawValue};
use sha2::{Digest as _, Sha256};
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

use super::{pb, transcode::Gateway};
use crate::{
    domain::{Date, DiagnosisCode, Money, ResidentId, Timestamp, UtcOffset},
    edge::EdgeInfo,
};

/// Where the envelope is posted.
pub const PATH: &str = "/nhsa/v1";

/// The interfaces served, by `infno`.
pub const SUPPORTED: [&str; 5] = ["1101", "2303", "2304", "2305", "3201"];

/// Answers remembered for `msgid` retries, oldest forgotten first.
pub const MSGIDS_KEPT: usize = 65_536;

/// The longest `msgid`: the platform's is 30 characters (the institution's
/// code, the time to the second, a sequence number).
const MSGID_LEN_MAX: usize = 30;

/// The most business days one 3201 statement covers.
pub const STATEMENT_DAYS_MAX: i64 = 31;

/// The fund code medassist pays under: 医疗救助基金.
pub const ASSISTANCE_FUND: &str = "610100";

/// One row of the mapping between our API and the platform's fields.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    /// The interfaces that use the row.
    pub infno: &'static str,
    /// Our field: the request or answer field of our RPC.
    pub ours: &'static str,
    /// The platform's field, as a path from the envelope.
    pub theirs: &'static str,
    /// How one becomes the other.
    pub rule: &'static str,
}

/// The mapping, in one table: what the code converts and what
/// `docs/NHSA.md` shows (a test holds the two together).
pub const MAPPING: &[Field] = &[
    Field {
        infno: "2303 2304 2305 3201",
        ours: "hospital_id",
        theirs: "fixmedins_code",
        rule: "the institution's code, the first half of the claim key",
    },
    Field {
        infno: "2303 2304 2305",
        ours: "claim_id",
        theirs: "input.data.mdtrt_id",
        rule: "the visit's number (就诊 ID), the second half of the claim key",
    },
    Field {
        infno: "2303 2304",
        ours: "patient_id",
        theirs: "input.data.psn_no",
        rule: "the resident ID; when psn_no is a platform person number, the resident ID in \
               mdtrt_cert_no with mdtrt_cert_type 02",
    },
    Field {
        infno: "2303 2304",
        ours: "admission_date",
        theirs: "input.data.begntime",
        rule: "the date part of the admission time; else input.mdtrtinfo.begntime (2401's)",
    },
    Field {
        infno: "2303 2304",
        ours: "discharge_date",
        theirs: "input.data.endtime",
        rule: "the date part of the discharge time; else input.dscginfo.endtime (2402's)",
    },
    Field {
        infno: "2303 2304",
        ours: "diagnosis_codes",
        theirs: "input.diseinfo[].diag_code",
        rule: "the main diagnosis (maindiag_flag 1) first, then by diag_srt_no; a national \
               clinical code is read as its ICD-10 code (C34.900x001 as C34.900, I10.x00x002 as \
               I10)",
    },
    Field {
        infno: "2303 2304",
        ours: "total_cost",
        theirs: "input.data.medfee_sumamt",
        rule: "yuan, at most two decimals, a number or a string",
    },
    Field {
        infno: "2303 2304",
        ours: "in_scope_cost",
        theirs: "input.data.inscp_scp_amt",
        rule: "yuan",
    },
    Field {
        infno: "2303 2304",
        ours: "basic_insurance_paid",
        theirs: "input.data.hifp_pay",
        rule: "yuan: the basic insurance's pooled fund",
    },
    Field {
        infno: "2303 2304",
        ours: "critical_illness_paid",
        theirs: "input.data.hifmi_pay + input.data.hifob_pay",
        rule: "yuan: residents' critical illness insurance plus employees' large-amount \
               subsidy, both paid before assistance; either may be absent (0)",
    },
    Field {
        infno: "2303 2304",
        ours: "claim_kind",
        theirs: "(infno)",
        rule: "inpatient: 2303 and 2304 are inpatient settlement",
    },
    Field {
        infno: "2303 2304 2305",
        ours: "settlement_id",
        theirs: "output.setlinfo.setl_id",
        rule: "our settlement number; 2305 takes it (or mdtrt_id) in input.data.setl_id",
    },
    Field {
        infno: "2303 2304 2305",
        ours: "assistance_amount",
        theirs: "output.setlinfo.maf_pay",
        rule: "yuan, the medical assistance fund's payment (negated by 2305)",
    },
    Field {
        infno: "2303 2304",
        ours: "basic + critical illness + assistance",
        theirs: "output.setlinfo.fund_pay_sumamt",
        rule: "hifp_pay + hifmi_pay + hifob_pay + maf_pay",
    },
    Field {
        infno: "2303 2304 2305",
        ours: "patient_pays",
        theirs: "output.setlinfo.psn_part_amt",
        rule: "yuan, what is left for the patient (also psn_cash_pay; acct_pay is 0)",
    },
    Field {
        infno: "2303 2304",
        ours: "settled_at",
        theirs: "output.setlinfo.setl_time",
        rule: "yyyy-MM-dd HH:mm:ss in Beijing time",
    },
    Field {
        infno: "2303 2304",
        ours: "assistance_amount",
        theirs: "output.setldetail[].fund_payamt",
        rule: "one row, fund_pay_type 610100 (医疗救助基金)",
    },
    Field {
        infno: "2303 2304",
        ours: "in_scope_out_of_pocket",
        theirs: "output.setldetail[].inscp_scp_amt",
        rule: "yuan: the in-scope cost left after both insurances",
    },
    Field {
        infno: "2303 2304",
        ours: "annual_cap - used_before",
        theirs: "output.setldetail[].crt_payb_lmt_amt",
        rule: "yuan: the cap left before this settlement",
    },
    Field {
        infno: "2303 2304",
        ours: "breakdown.explanation",
        theirs: "output.setldetail[].setl_proc_info",
        rule: "the calculation in Chinese",
    },
    Field {
        infno: "1101",
        ours: "patient_id",
        theirs: "input.data.certno",
        rule: "with psn_cert_type 01; else mdtrt_cert_no with mdtrt_cert_type 02, else psn_no",
    },
    Field {
        infno: "1101",
        ours: "name, patient_id",
        theirs: "output.baseinfo.psn_name, certno, gend, brdy, age",
        rule: "whole for roster_admin (and open mode), masked for the other roles; sex and \
               birth date from the resident ID",
    },
    Field {
        infno: "1101",
        ours: "enrollments[]",
        theirs: "output.idetinfo[]",
        rule: "one row per enrollment: psn_idet_type the class (DIBAO, TEKUN, ...), memo its \
               Chinese name, begntime valid_from, endtime valid_to plus the grace period of the \
               policy in force (empty while open)",
    },
    Field {
        infno: "3201",
        ours: "ReconcileDay, each day",
        theirs: "input.data.stmt_begndate .. stmt_enddate",
        rule: "at most 31 business days, both included",
    },
    Field {
        infno: "3201",
        ours: "settled_count - reversed_count",
        theirs: "input.data.fixmedins_setl_cnt",
        rule: "the statement's net count of settlements",
    },
    Field {
        infno: "3201",
        ours: "assistance_total - reversed_total",
        theirs: "input.data.fund_pay_sumamt",
        rule: "yuan: the assistance fund's net payment over the statement",
    },
    Field {
        infno: "3201",
        ours: "matched",
        theirs: "output.stmtinfo.stmt_rslt",
        rule: "output.stmtinfo: 0 平 (matched), 1 不平; stmt_rslt_dscr says which figures \
               differ",
    },
];

/// An envelope's fields, each kept as the JSON it was sent as.
type Object = BTreeMap<String, Box<RawValue>>;

/// Why an envelope was answered `infcode = -1`.
#[derive(Debug)]
pub struct Refusal {
    /// In Chinese, naming the platform's field.
    pub message: String,
    /// The status of the call it came from, or INVALID_ARGUMENT for an
    /// envelope refused before any call.
    pub code: Code,
}

impl Refusal {
    fn invalid(message: impl Into<String>) -> Refusal {
        Refusal {
            message: message.into(),
            code: Code::InvalidArgument,
        }
    }
}

/// The answers given, by caller and `msgid`: what a retry gets again.
#[derive(Default)]
pub struct Answered {
    inner: Mutex<AnsweredInner>,
}

#[derive(Default)]
struct AnsweredInner {
    answers: HashMap<(String, String), ([u8; 32], String)>,
    order: VecDeque<(String, String)>,
}

impl Answered {
    fn get(&self, key: &(String, String)) -> Option<([u8; 32], String)> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.answers.get(key).cloned()
    }

    fn put(&self, key: (String, String), digest: [u8; 32], answer: String) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner
            .answers
            .insert(key.clone(), (digest, answer))
            .is_none()
        {
            inner.order.push_back(key);
        }
        while inner.order.len() > MSGIDS_KEPT {
            if let Some(oldest) = inner.order.pop_front() {
                inner.answers.remove(&oldest);
            }
        }
    }
}

/// One envelope as read: what the dispatch needs.
struct Envelope {
    infno: String,
    msgid: String,
    fixmedins_code: Option<String>,
    input: Object,
}

impl Envelope {
    /// `input.data`, where every interface here finds its fields.
    fn data(&self, problems: &mut Vec<String>) -> Object {
        object(&self.input, "input.", "data", problems).unwrap_or_default()
    }

    /// `fixmedins_code`: the institution 2303 to 3201 act for.
    fn institution(&self, problems: &mut Vec<String>) -> Option<String> {
        if self.fixmedins_code.is_none() {
            problems.push("fixmedins_code：必填（定点医药机构编号）".to_owned());
        }
        self.fixmedins_code.clone()
    }
}

/// Answers one posted envelope: always a JSON envelope, `infcode` 0 or -1.
pub async fn answer(
    gateway: &Gateway,
    answered: &Answered,
    headers: &HeaderMap,
    peer: Option<&EdgeInfo>,
    body: &[u8],
) -> String {
    let received = gateway.now();
    let envelope = match envelope(body) {
        Ok(envelope) => envelope,
        Err(refusal) => {
            gateway
                .refused_call(format!("POST {PATH}"), peer, refusal.code, &refusal.message)
                .await;
            return reply(received, gateway.now(), "", Err(&refusal));
        }
    };
    // A retry is recognised per caller: another token's msgid is another message.
    let caller = headers
        .get(header::AUTHORIZATION)
        .map(|v| crate::audit::hex(&Sha256::digest(v.as_bytes()).into()))
        .unwrap_or_default();
    let key = (caller, envelope.msgid.clone());
    let digest: [u8; 32] = Sha256::digest(body_identity(&envelope).as_bytes()).into();
    let first = answered.get(&key);
    if first.as_ref().is_some_and(|(then, _)| *then != digest) {
        let refusal = Refusal::invalid(format!(
            "msgid {} 已用于另一报文：同一 msgid 只能重发相同的报文，新报文请用新的 msgid",
            envelope.msgid
        ));
        return reply(received, gateway.now(), &envelope.msgid, Err(&refusal));
    }
    // A retry is carried out again before it is answered with the first
    // answer: its caller is authenticated now (a token removed since is
    // refused), its reads are audited and scoped as any call, and a retried
    // write is the ledger's replay, which writes nothing.
    let call = Call {
        gateway,
        headers,
        peer,
    };
    let output = match envelope.infno.as_str() {
        "2303" => call.settle(&envelope, false).await,
        "2304" => call.settle(&envelope, true).await,
        "2305" => call.cancel(&envelope).await,
        "1101" => call.identify(&envelope).await,
        "3201" => call.statement(&envelope).await,
        other => {
            let refusal = Refusal::invalid(format!(
                "infno {other} 不受理：本服务受理 {}",
                SUPPORTED.join("、")
            ));
            gateway
                .refused_call(
                    format!("POST {PATH} infno {other}"),
                    peer,
                    refusal.code,
                    &refusal.message,
                )
                .await;
            Err(refusal)
        }
    };
    if let (Ok(_), Some((_, answer))) = (&output, first) {
        return answer;
    }
    let answer = reply(
        received,
        gateway.now(),
        &envelope.msgid,
        output.as_ref().map(|(o, w)| (o.as_ref(), w.as_str())),
    );
    if output.is_ok() {
        answered.put(key, digest, answer.clone());
    }
    answer
}

/// The answer to a body over the size limit of every route.
pub async fn too_large(gateway: &Gateway, peer: Option<&EdgeInfo>, limit: usize) -> String {
    let received = gateway.now();
    let refusal = Refusal {
        message: format!("报文过大：最多 {limit} 字节"),
        code: Code::OutOfRange,
    };
    gateway
        .refused_call(format!("POST {PATH}"), peer, refusal.code, &refusal.message)
        .await;
    reply(received, gateway.now(), "", Err(&refusal))
}

/// The answer to an envelope not answered within the request timeout.
pub fn timed_out(gateway: &Gateway) -> String {
    let refusal = Refusal {
        message: "处理超时：请稍后以同一 msgid 重发".into(),
        code: Code::Cancelled,
    };
    let now = gateway.now();
    reply(now, now, "", Err(&refusal))
}

/// What makes two envelopes the same message: the interface, the
/// institution and the input, as sent.
fn body_identity(envelope: &Envelope) -> String {
    let input: Vec<String> = envelope
        .input
        .iter()
        .map(|(k, v)| format!("{k}={}", v.get()))
        .collect();
    format!(
        "{}|{}|{}",
        envelope.infno,
        envelope.fixmedins_code.as_deref().unwrap_or(""),
        input.join("|")
    )
}

/// The answer envelope, as the platform writes it.
#[derive(Serialize)]
struct Reply<'a> {
    infcode: i32,
    inf_refmsgid: String,
    refmsg_time: String,
    respond_time: String,
    err_msg: &'a str,
    warn_msg: &'a str,
    output: &'a RawValue,
}

/// The answer envelope's text.
fn reply(
    received: Timestamp,
    now: Timestamp,
    msgid: &str,
    output: Result<(&RawValue, &str), &Refusal>,
) -> String {
    let empty = raw(&json!({}));
    let (infcode, output, err_msg, warn_msg) = match output {
        Ok((output, warn)) => (0, output, "", warn),
        Err(refusal) => (-1, empty.as_ref(), refusal.message.as_str(), ""),
    };
    let reply = Reply {
        infcode,
        inf_refmsgid: reference(now, msgid),
        refmsg_time: stamp(received, "%Y%m%d%H%M%S%3f"),
        respond_time: stamp(now, "%Y%m%d%H%M%S%3f"),
        err_msg,
        warn_msg,
        output,
    };
    serde_json::to_string(&reply).unwrap_or_default()
}

/// An object whose values are kept as written, so that amounts stay
/// `7350.00` rather than a float's `7350.0`; in the order given.
struct Fields(Vec<(&'static str, Box<RawValue>)>);

impl Serialize for Fields {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// Any value as written JSON.
fn raw<T: Serialize + ?Sized>(value: &T) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).unwrap_or_else(|_| zero())
}

/// Our reference of the message answered: `MAS`, the time to the
/// millisecond, and the first digits of a digest of its `msgid`.
fn reference(now: Timestamp, msgid: &str) -> String {
    let tail = crate::audit::hex(&Sha256::digest(msgid.as_bytes()).into());
    format!("MAS{}{}", stamp(now, "%Y%m%d%H%M%S%3f"), &tail[..10])
}

/// A moment in Beijing time, formatted.
fn stamp(at: Timestamp, format: &str) -> String {
    let local = at.unix_micros() + i64::from(UtcOffset::CHINA.seconds()) * 1_000_000;
    chrono::DateTime::from_timestamp_micros(local)
        .map(|t| t.naive_utc().format(format).to_string())
        .unwrap_or_default()
}

/// Reads the envelope: a JSON object with `infno`, `msgid` and an `input`
/// object; `fixmedins_code` where the interface needs it.
fn envelope(body: &[u8]) -> Result<Envelope, Refusal> {
    let top: Object = serde_json::from_slice(body)
        .map_err(|e| Refusal::invalid(format!("报文不是 JSON 对象：{e}")))?;
    let mut problems = Vec::new();
    let infno = text(&top, "", "infno", 4, &mut problems);
    let msgid = text(&top, "", "msgid", MSGID_LEN_MAX, &mut problems);
    let fixmedins_code = optional_text(&top, "", "fixmedins_code", 64, &mut problems);
    let input = match top.get("input") {
        None => {
            problems.push("input：必填".to_owned());
            None
        }
        Some(raw) => match serde_json::from_str::<Object>(raw.get()) {
            Ok(input) => Some(input),
            Err(_) => {
                problems.push("input：应为对象".to_owned());
                None
            }
        },
    };
    if let Some(infno) = &infno
        && !infno.bytes().all(|b| b.is_ascii_digit())
    {
        problems.push(format!("infno：应为 4 位数字的交易编号，收到 {infno}"));
    }
    if let Some(msgid) = &msgid
        && !msgid.bytes().all(|b| b.is_ascii_graphic())
    {
        problems.push("msgid：只能含可见的 ASCII 字符".to_owned());
    }
    match (infno, msgid, input) {
        (Some(infno), Some(msgid), Some(input)) if problems.is_empty() => Ok(Envelope {
            infno,
            msgid,
            fixmedins_code,
            input,
        }),
        _ => Err(Refusal::invalid(format!(
            "报文有误：{}",
            problems.join("；")
        ))),
    }
}

/// A required string field of `object`, at most `max` characters.
fn text(
    object: &Object,
    path: &str,
    name: &str,
    max: usize,
    problems: &mut Vec<String>,
) -> Option<String> {
    let before = problems.len();
    let found = optional_text(object, path, name, max, problems);
    if found.is_none() && problems.len() == before {
        problems.push(format!("{path}{name}：必填"));
    }
    found
}

/// An optional string field (absent, null or empty: `None`).
fn optional_text(
    object: &Object,
    path: &str,
    name: &str,
    max: usize,
    problems: &mut Vec<String>,
) -> Option<String> {
    let raw = object.get(name)?;
    match serde_json::from_str::<Option<String>>(raw.get()) {
        Ok(None) => None,
        Ok(Some(value)) if value.chars().count() > max => {
            problems.push(format!(
                "{path}{name}：过长（{} 个字符，最多 {max} 个）",
                value.chars().count()
            ));
            None
        }
        Ok(Some(value)) if value.is_empty() => None,
        Ok(Some(value)) => Some(value),
        Err(_) => {
            problems.push(format!("{path}{name}：应为字符串"));
            None
        }
    }
}

/// An amount in yuan, sent as a JSON number or string, read exactly as
/// written (never through a float).
fn money(object: &Object, path: &str, name: &str, problems: &mut Vec<String>) -> Option<Money> {
    let raw = object.get(name)?;
    let text = raw.get();
    let text = match serde_json::from_str::<Option<String>>(text) {
        Ok(Some(inner)) => inner,
        Ok(None) => return None,
        Err(_) => text.to_owned(),
    };
    match Money::parse(&text) {
        Ok(amount) => Some(amount),
        Err(_) => {
            let shown: String = text.chars().take(32).collect();
            problems.push(format!(
                "{path}{name}：应为金额（元，最多两位小数，如 1234.56），收到 {shown}"
            ));
            None
        }
    }
}

/// A required amount.
fn required_money(
    object: &Object,
    path: &str,
    name: &str,
    problems: &mut Vec<String>,
) -> Option<Money> {
    let before = problems.len();
    let found = money(object, path, name, problems);
    if found.is_none() && problems.len() == before {
        problems.push(format!("{path}{name}：必填"));
    }
    found
}

/// A whole number, sent as a JSON number or a string of digits.
fn integer(object: &Object, path: &str, name: &str, problems: &mut Vec<String>) -> Option<i64> {
    let raw = object.get(name)?.get();
    if raw == "null" || raw == "\"\"" {
        return None;
    }
    let number = serde_json::from_str::<i64>(raw).ok().or_else(|| {
        serde_json::from_str::<String>(raw)
            .ok()
            .and_then(|text| text.parse().ok())
    });
    if number.is_none() {
        problems.push(format!("{path}{name}：应为整数"));
    }
    number
}

/// An object field.
fn object(object: &Object, path: &str, name: &str, problems: &mut Vec<String>) -> Option<Object> {
    let raw = object.get(name)?;
    match serde_json::from_str::<Object>(raw.get()) {
        Ok(inner) => Some(inner),
        Err(_) => {
            problems.push(format!("{path}{name}：应为对象"));
            None
        }
    }
}

/// A list of objects.
fn objects(object: &Object, path: &str, name: &str, problems: &mut Vec<String>) -> Vec<Object> {
    let Some(raw) = object.get(name) else {
        return Vec::new();
    };
    match serde_json::from_str::<Vec<Object>>(raw.get()) {
        Ok(list) => list,
        Err(_) => {
            problems.push(format!("{path}{name}：应为对象数组"));
            Vec::new()
        }
    }
}

/// The date part of a platform time (`2026-03-01 08:30:00` or
/// `2026-03-01`).
fn date_part(value: &str) -> &str {
    value.get(..10).unwrap_or(value)
}

/// One call's route into the gRPC stack.
struct Call<'a> {
    gateway: &'a Gateway,
    headers: &'a HeaderMap,
    peer: Option<&'a EdgeInfo>,
}

/// What a dispatch answers: the `output` and any `warn_msg`.
type Output = Result<(Box<RawValue>, String), Refusal>;

impl Call<'_> {
    /// Sends `request` as `rpc`; decodes the answer as `R`. A refusal names
    /// the platform's fields of `infno` in place of ours.
    async fn rpc<R: prost::Message + Default>(
        &self,
        rpc: &str,
        request: &impl prost::Message,
        infno: &str,
    ) -> Result<R, Refusal> {
        let answer: Result<Bytes, Status> = self
            .gateway
            .unary(rpc, request.encode_to_vec(), self.headers, self.peer)
            .await;
        match answer {
            Ok(bytes) => R::decode(bytes).map_err(|e| Refusal {
                message: format!("系统内部错误：应答无法解码（{e}）"),
                code: Code::Internal,
            }),
            Err(status) => Err(refusal(&status, infno)),
        }
    }

    /// 2303 (pre-settle) and 2304 (settle).
    async fn settle(&self, envelope: &Envelope, record: bool) -> Output {
        let infno = envelope.infno.as_str();
        let mut problems = Vec::new();
        let input = &envelope.input;
        let data = envelope.data(&mut problems);
        let p = "input.data.";
        let hospital = envelope.institution(&mut problems);
        let mdtrt_id = text(&data, p, "mdtrt_id", 64, &mut problems);
        let patient = patient_of(&data, &mut problems);
        let mdtrtinfo = object(input, "input.", "mdtrtinfo", &mut problems).unwrap_or_default();
        let dscginfo = object(input, "input.", "dscginfo", &mut problems).unwrap_or_default();
        let begntime = optional_text(&data, p, "begntime", 19, &mut problems).or_else(|| {
            optional_text(
                &mdtrtinfo,
                "input.mdtrtinfo.",
                "begntime",
                19,
                &mut problems,
            )
        });
        let endtime = optional_text(&data, p, "endtime", 19, &mut problems)
            .or_else(|| optional_text(&dscginfo, "input.dscginfo.", "endtime", 19, &mut problems));
        if begntime.is_none() {
            problems.push(format!(
                "{p}begntime：必填（入院时间，或 input.mdtrtinfo.begntime）"
            ));
        }
        if endtime.is_none() {
            problems.push(format!(
                "{p}endtime：必填（出院时间，或 input.dscginfo.endtime）"
            ));
        }
        let diagnoses = diagnoses(input, &mut problems);
        let total = required_money(&data, p, "medfee_sumamt", &mut problems);
        let in_scope = required_money(&data, p, "inscp_scp_amt", &mut problems);
        let basic = required_money(&data, p, "hifp_pay", &mut problems);
        let hifmi = money(&data, p, "hifmi_pay", &mut problems).unwrap_or(Money::ZERO);
        let hifob = money(&data, p, "hifob_pay", &mut problems).unwrap_or(Money::ZERO);
        let echo = Echo {
            insutype: optional_text(&data, p, "insutype", 6, &mut problems).unwrap_or_default(),
            hifmi,
            hifob,
            fulamt_ownpay: money(&data, p, "fulamt_ownpay_amt", &mut problems).unwrap_or_default(),
            overlmt_selfpay: money(&data, p, "overlmt_selfpay", &mut problems).unwrap_or_default(),
            preselfpay: money(&data, p, "preselfpay_amt", &mut problems).unwrap_or_default(),
            msgid: envelope.msgid.clone(),
        };
        let critical = hifmi.checked_add(hifob);
        if critical.is_none() {
            problems.push(format!("{p}hifmi_pay + hifob_pay：金额过大"));
        }
        let (Some(hospital), Some(mdtrt_id), Some(patient), Some(begn), Some(end)) =
            (hospital, mdtrt_id, patient, begntime, endtime)
        else {
            return Err(invalid(problems));
        };
        let (Some(total), Some(in_scope), Some(basic), Some(critical)) =
            (total, in_scope, basic, critical)
        else {
            return Err(invalid(problems));
        };
        if !problems.is_empty() {
            return Err(invalid(problems));
        }
        let request = pb::SettleRequest {
            hospital_id: hospital,
            claim_id: mdtrt_id,
            patient_id: patient,
            admission_date: date_part(&begn).to_owned(),
            discharge_date: date_part(&end).to_owned(),
            diagnosis_codes: diagnoses,
            total_cost: total.to_string(),
            in_scope_cost: in_scope.to_string(),
            basic_insurance_paid: basic.to_string(),
            critical_illness_paid: critical.to_string(),
            claim_kind: pb::ClaimKind::Inpatient.into(),
        };
        let (settlement, replayed) = if record {
            let answer: pb::SettleResponse = self
                .rpc("/medassist.v1.SettlementService/Settle", &request, infno)
                .await?;
            (answer.settlement.unwrap_or_default(), answer.replayed)
        } else {
            let answer: pb::SettleResponse = self
                .rpc("/medassist.v1.SettlementService/PreSettle", &request, infno)
                .await?;
            (answer.settlement.unwrap_or_default(), false)
        };
        let output = raw(&Fields(vec![
            ("setlinfo", raw(&setlinfo(&settlement, &echo, false))),
            ("setldetail", raw(&[setldetail(&settlement)])),
        ]));
        let mut warnings = Vec::new();
        if replayed {
            warnings.push("该就诊已结算：返回原结算结果".to_owned());
        }
        if !settlement.eligible {
            warnings.push("非医疗救助对象或无救助类别：医疗救助不予支付".to_owned());
        }
        if settlement.referred {
            warnings.push("已转介临时救助".to_owned());
        }
        Ok((output, warnings.join("；")))
    }

    /// 2305: cancels a settlement, by `mdtrt_id` or by `setl_id`.
    async fn cancel(&self, envelope: &Envelope) -> Output {
        let infno = envelope.infno.as_str();
        let mut problems = Vec::new();
        let data = envelope.data(&mut problems);
        let p = "input.data.";
        let mdtrt_id = optional_text(&data, p, "mdtrt_id", 64, &mut problems);
        let setl_id = optional_text(&data, p, "setl_id", 32, &mut problems);
        let Some(hospital) = envelope.institution(&mut problems) else {
            return Err(invalid(problems));
        };
        if !problems.is_empty() {
            return Err(invalid(problems));
        }
        let claim_id = match (mdtrt_id, setl_id) {
            (Some(mdtrt_id), _) => mdtrt_id,
            (None, Some(setl_id)) => {
                let found: pb::Settlement = self
                    .rpc(
                        "/medassist.v1.SettlementService/GetSettlement",
                        &pb::GetSettlementRequest {
                            settlement_id: setl_id,
                            ..Default::default()
                        },
                        infno,
                    )
                    .await?;
                if found.hospital_id != hospital {
                    return Err(Refusal {
                        message: "未找到对应的结算记录：setl_id 不是本机构的结算".into(),
                        code: Code::NotFound,
                    });
                }
                found.claim_id
            }
            (None, None) => {
                return Err(Refusal::invalid(format!(
                    "{p}mdtrt_id 或 {p}setl_id：至少填一个"
                )));
            }
        };
        let answer: pb::SettleResponse = self
            .rpc(
                "/medassist.v1.SettlementService/Reverse",
                &pb::ReverseRequest {
                    hospital_id: hospital,
                    claim_id,
                    reason: format!("2305 撤销结算，msgid {}", envelope.msgid),
                },
                infno,
            )
            .await?;
        let settlement = answer.settlement.unwrap_or_default();
        let echo = Echo {
            msgid: envelope.msgid.clone(),
            ..Echo::default()
        };
        let output = raw(&Fields(vec![(
            "setlinfo",
            raw(&setlinfo(&settlement, &echo, true)),
        )]));
        let warn = if answer.replayed {
            "该结算已撤销：返回原撤销结果"
        } else {
            ""
        };
        Ok((output, warn.to_owned()))
    }

    /// 1101: a person's base information and identities, from the roster.
    async fn identify(&self, envelope: &Envelope) -> Output {
        let infno = envelope.infno.as_str();
        let mut problems = Vec::new();
        let data = envelope.data(&mut problems);
        let p = "input.data.";
        let certno = optional_text(&data, p, "certno", 18, &mut problems);
        let cert_type = optional_text(&data, p, "psn_cert_type", 6, &mut problems);
        let mdtrt_no = optional_text(&data, p, "mdtrt_cert_no", 64, &mut problems);
        let mdtrt_type = optional_text(&data, p, "mdtrt_cert_type", 6, &mut problems);
        let psn_no = optional_text(&data, p, "psn_no", 30, &mut problems);
        let id = match (
            certno,
            cert_type.as_deref(),
            mdtrt_no,
            mdtrt_type.as_deref(),
            psn_no,
        ) {
            (Some(id), None | Some("01"), ..) => id,
            (_, _, Some(id), Some("02"), _) => id,
            (.., Some(id)) => id,
            _ => {
                problems.push(format!(
                    "{p}certno（psn_cert_type 01）、{p}mdtrt_cert_no（mdtrt_cert_type 02）或 \
                     {p}psn_no：须给出居民身份证号"
                ));
                return Err(invalid(problems));
            }
        };
        if !problems.is_empty() {
            return Err(invalid(problems));
        }
        let caller: pb::Caller = self
            .rpc(
                "/medassist.v1.CallerService/GetCaller",
                &pb::GetCallerRequest {},
                infno,
            )
            .await?;
        let person: pb::Person = self
            .rpc(
                "/medassist.v1.RosterService/GetPerson",
                &pb::GetPersonRequest { patient_id: id },
                infno,
            )
            .await?;
        let whole = matches!(caller.role.as_str(), "roster_admin" | "open");
        let today = self.gateway.now();
        let output = raw(&json!({
            "baseinfo": baseinfo(&person, whole, today),
            "insuinfo": [],
            "idetinfo": identities(self.gateway, &person, today),
        }));
        Ok((output, String::new()))
    }

    /// 3201: the hospital's statement of a range of days against the fund's.
    async fn statement(&self, envelope: &Envelope) -> Output {
        let infno = envelope.infno.as_str();
        let mut problems = Vec::new();
        let data = envelope.data(&mut problems);
        let p = "input.data.";
        let hospital = envelope.institution(&mut problems);
        let from = text(&data, p, "stmt_begndate", 19, &mut problems);
        let to = text(&data, p, "stmt_enddate", 19, &mut problems);
        let fund = required_money(&data, p, "fund_pay_sumamt", &mut problems);
        let before = problems.len();
        let count = integer(&data, p, "fixmedins_setl_cnt", &mut problems);
        if count.is_none() && problems.len() == before {
            problems.push(format!("{p}fixmedins_setl_cnt：必填"));
        }
        let setl_optins =
            optional_text(&data, p, "setl_optins", 6, &mut problems).unwrap_or_default();
        let days = match (&from, &to) {
            (Some(from), Some(to)) => {
                match (Date::parse(date_part(from)), Date::parse(date_part(to))) {
                    (Ok(from), Ok(to)) if from <= to => {
                        let n = (to.naive() - from.naive()).num_days() + 1;
                        if n > STATEMENT_DAYS_MAX {
                            problems.push(format!(
                                "{p}stmt_enddate：对账区间最多 {STATEMENT_DAYS_MAX} 天"
                            ));
                            None
                        } else {
                            Some((0..n).map(move |i| from.naive() + chrono::TimeDelta::days(i)))
                        }
                    }
                    (Ok(_), Ok(_)) => {
                        problems.push(format!("{p}stmt_enddate：不能早于 stmt_begndate"));
                        None
                    }
                    _ => {
                        problems.push(format!("{p}stmt_begndate、stmt_enddate：应为 yyyy-MM-dd"));
                        None
                    }
                }
            }
            _ => None,
        };
        let (Some(hospital), Some(fund), Some(count), Some(days)) = (hospital, fund, count, days)
        else {
            return Err(invalid(problems));
        };
        if !problems.is_empty() {
            return Err(invalid(problems));
        }
        let (mut net_count, mut net_fen) = (0i64, 0i64);
        for day in days {
            let answer: pb::ReconcileDayResponse = self
                .rpc(
                    "/medassist.v1.ReconciliationService/ReconcileDay",
                    &pb::ReconcileDayRequest {
                        hospital_id: hospital.clone(),
                        date: day.format("%Y-%m-%d").to_string(),
                        hospital_totals: Some(pb::DayTotals {
                            settled_count: 0,
                            assistance_total: "0.00".into(),
                            reversed_count: 0,
                            reversed_total: "0.00".into(),
                        }),
                    },
                    infno,
                )
                .await?;
            let totals = answer.fund_totals.unwrap_or_default();
            net_count += i64::from(totals.settled_count) - i64::from(totals.reversed_count);
            net_fen += fen_of(&totals.assistance_total) - fen_of(&totals.reversed_total);
        }
        let mut differ = Vec::new();
        if net_count != count {
            differ.push(format!(
                "结算笔数：医疗救助基金 {net_count} 笔，机构 {count} 笔"
            ));
        }
        if net_fen != fund.fen() {
            differ.push(format!(
                "医疗救助基金支付：基金 {} 元，机构 {fund} 元",
                signed_yuan(net_fen)
            ));
        }
        let matched = differ.is_empty();
        let output = raw(&json!({
            "stmtinfo": {
                "setl_optins": setl_optins,
                "stmt_rslt": if matched { "0" } else { "1" },
                "stmt_rslt_dscr": if matched {
                    format!("对账平：{net_count} 笔，医疗救助基金支付 {fund} 元")
                } else {
                    format!("对账不平：{}", differ.join("；"))
                },
            }
        }));
        Ok((output, String::new()))
    }
}

/// The patient of a 2303 or 2304: `psn_no` when it is a resident ID, else
/// the resident ID in `mdtrt_cert_no` (`mdtrt_cert_type` 02).
fn patient_of(data: &Object, problems: &mut Vec<String>) -> Option<String> {
    let p = "input.data.";
    let psn_no = optional_text(data, p, "psn_no", 30, problems);
    let cert_type = optional_text(data, p, "mdtrt_cert_type", 6, problems);
    let cert_no = optional_text(data, p, "mdtrt_cert_no", 64, problems);
    if let Some(id) = psn_no.as_deref().filter(|id| ResidentId::parse(id).is_ok()) {
        return Some(id.to_owned());
    }
    if cert_type.as_deref() == Some("02")
        && let Some(id) = cert_no.filter(|id| ResidentId::parse(id).is_ok())
    {
        return Some(id);
    }
    problems.push(format!(
        "{p}psn_no：应为居民身份证号（18 位）；人员编号请改在 {p}mdtrt_cert_no 中给出身份证号并填 \
         mdtrt_cert_type 02"
    ));
    None
}

/// The diagnosis codes of `input.diseinfo`: the main one first, then by
/// `diag_srt_no`, each national clinical code read as its ICD-10 code.
fn diagnoses(input: &Object, problems: &mut Vec<String>) -> Vec<String> {
    let list = objects(input, "input.", "diseinfo", problems);
    if list.is_empty() && input.get("diseinfo").is_some() {
        problems.push("input.diseinfo：至少一条诊断".to_owned());
    }
    if input.get("diseinfo").is_none() {
        problems.push("input.diseinfo：必填（出院诊断，2402 的 diseinfo）".to_owned());
    }
    let mut found = Vec::new();
    for (i, row) in list.iter().enumerate() {
        let path = format!("input.diseinfo[{i}].");
        let Some(code) = text(row, &path, "diag_code", 32, problems) else {
            continue;
        };
        let code = icd10(&code);
        if DiagnosisCode::parse(&code).is_err() {
            problems.push(format!(
                "{path}diag_code：应为 ICD-10 编码，如 N18.500，收到 {code}"
            ));
            continue;
        }
        let main = optional_text(row, &path, "maindiag_flag", 1, problems).as_deref() == Some("1");
        let order = integer(row, &path, "diag_srt_no", problems).unwrap_or(i64::MAX);
        found.push((!main, order, i, code));
    }
    found.sort();
    found.into_iter().map(|(.., code)| code).collect()
}

/// The ICD-10 code of a national clinical code (GB/T 14396, 医保版): its
/// first seven characters (`C34.900x001` is `C34.900`), and only the
/// category when it has no subcategory (`I10.x00x002` is `I10`); any other
/// code as it is.
fn icd10(code: &str) -> String {
    let bytes = code.as_bytes();
    if bytes.len() < 7 || bytes[3] != b'.' {
        return code.to_owned();
    }
    if bytes[4].eq_ignore_ascii_case(&b'x') {
        code[..3].to_owned()
    } else {
        code[..7].to_owned()
    }
}

/// An INVALID_ARGUMENT refusal of the problems found.
fn invalid(problems: Vec<String>) -> Refusal {
    Refusal::invalid(format!("入参校验失败：{}", problems.join("；")))
}

/// A refused call as the platform says it, our fields named as theirs.
fn refusal(status: &Status, infno: &str) -> Refusal {
    let what = match status.code() {
        Code::InvalidArgument | Code::OutOfRange => "入参校验失败",
        Code::AlreadyExists => "该就诊（mdtrt_id）已以不同内容结算：同一就诊不能以不同费用重复结算",
        Code::NotFound => "未找到对应的记录",
        Code::FailedPrecondition => "当前状态不允许此操作",
        Code::PermissionDenied => "无权限",
        Code::Unauthenticated => "身份认证失败：请在 Authorization 中给出有效令牌",
        Code::ResourceExhausted => "系统繁忙或超过限额：请稍后重试",
        Code::Unavailable => "服务暂不可用：请稍后重试",
        Code::DeadlineExceeded | Code::Cancelled => "处理超时：请稍后重试",
        _ => "系统内部错误",
    };
    let fields = status
        .get_error_details()
        .bad_request()
        .map(|bad| {
            bad.field_violations
                .iter()
                .map(|v| format!("{}：{}", theirs(&v.field, infno), v.description))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let detail = if fields.is_empty() {
        status.message().to_owned()
    } else {
        fields.join("；")
    };
    Refusal {
        message: format!("{what}：{}", crate::grpc::transcode::masked_text(&detail)),
        code: status.code(),
    }
}

/// The platform's name of our field `ours` in `infno`, by [`MAPPING`];
/// our name when it has none.
fn theirs(ours: &str, infno: &str) -> String {
    MAPPING
        .iter()
        .find(|f| f.ours == ours && f.infno.split(' ').any(|n| n == infno))
        .map_or_else(|| ours.to_owned(), |f| f.theirs.to_owned())
}

/// A yuan amount (ours: two decimals) as a JSON number, exactly as text.
fn yuan(amount: &str) -> Box<RawValue> {
    RawValue::from_string(signed_yuan(fen_of(amount))).unwrap_or_else(|_| zero())
}

/// `-amount`, as [`yuan`] writes it.
fn negated(amount: &str) -> Box<RawValue> {
    RawValue::from_string(signed_yuan(-fen_of(amount))).unwrap_or_else(|_| zero())
}

/// The fen of one of our amounts, signed ("-12.30" is -1230).
fn fen_of(amount: &str) -> i64 {
    match amount.strip_prefix('-') {
        Some(positive) => -Money::parse(positive).map(Money::fen).unwrap_or_default(),
        None => Money::parse(amount).map(Money::fen).unwrap_or_default(),
    }
}

fn zero() -> Box<RawValue> {
    RawValue::from_string("0.00".to_owned()).expect("0.00 is JSON")
}

/// The sum of amounts in yuan.
fn sum(amounts: &[&str]) -> String {
    let fen: i64 = amounts
        .iter()
        .map(|a| Money::parse(a).map(Money::fen).unwrap_or_default())
        .sum();
    signed_yuan(fen)
}

/// Fen as yuan text, negative amounts with a sign.
fn signed_yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    format!(
        "{sign}{}.{:02}",
        fen.unsigned_abs() / 100,
        fen.unsigned_abs() % 100
    )
}

/// What a 2303 or 2304 sent that its answer repeats: the platform's
/// amounts medassist does not keep apart, and the sender's message ID.
#[derive(Default)]
struct Echo {
    insutype: String,
    hifmi: Money,
    hifob: Money,
    fulamt_ownpay: Money,
    overlmt_selfpay: Money,
    preselfpay: Money,
    msgid: String,
}

/// `setlinfo` of a settlement; `cancelled` negates the amounts (2305),
/// whose split of the critical-illness payment is not kept (all of it is
/// `hifmi_pay`). Fields of the basic insurance that medassist neither pays
/// nor knows (deductible, ratios, other funds, accounts) are 0.
fn setlinfo(s: &pb::Settlement, echo: &Echo, cancelled: bool) -> Fields {
    let amount = |text: &str| if cancelled { negated(text) } else { yuan(text) };
    let (hifmi, hifob) = if cancelled {
        (s.critical_illness_paid.clone(), "0.00".to_owned())
    } else {
        (echo.hifmi.to_string(), echo.hifob.to_string())
    };
    let fund = sum(&[
        &s.basic_insurance_paid,
        &s.critical_illness_paid,
        &s.assistance_amount,
    ]);
    let settled_at = s
        .settled_at
        .as_ref()
        .map(|t| stamp(super::convert::from_timestamp(t), "%Y-%m-%d %H:%M:%S"))
        .unwrap_or_default();
    let person = ResidentId::parse(&s.patient_id).ok();
    let (gend, brdy, age) = person
        .as_ref()
        .map_or((String::new(), String::new(), 0), |id| {
            let birth = id.birth_date();
            let on = Date::parse(date_part(&settled_at)).unwrap_or(birth);
            (
                sex(id).to_owned(),
                birth.to_string(),
                birth.full_years_until(on),
            )
        });
    Fields(vec![
        ("mdtrt_id", raw(&s.claim_id)),
        ("setl_id", raw(&s.settlement_id)),
        ("psn_no", raw(&s.patient_id)),
        ("psn_name", raw(&"")),
        ("psn_cert_type", raw(&"01")),
        ("certno", raw(&s.patient_id)),
        ("gend", raw(&gend)),
        ("naty", raw(&"")),
        ("brdy", raw(&brdy)),
        ("age", raw(&age)),
        ("insutype", raw(&echo.insutype)),
        ("psn_type", raw(&"")),
        ("cvlserv_flag", raw(&"0")),
        ("setl_time", raw(&settled_at)),
        ("mdtrt_cert_type", raw(&"02")),
        ("med_type", raw(&"21")),
        ("medfee_sumamt", amount(&s.total_cost)),
        ("fulamt_ownpay_amt", amount(&echo.fulamt_ownpay.to_string())),
        ("overlmt_selfpay", amount(&echo.overlmt_selfpay.to_string())),
        ("preselfpay_amt", amount(&echo.preselfpay.to_string())),
        ("inscp_scp_amt", amount(&s.in_scope_cost)),
        ("act_pay_dedc", zero()),
        ("hifp_pay", amount(&s.basic_insurance_paid)),
        ("pool_prop_selfpay", zero()),
        ("cvlserv_pay", zero()),
        ("hifes_pay", zero()),
        ("hifmi_pay", amount(&hifmi)),
        ("hifob_pay", amount(&hifob)),
        ("maf_pay", amount(&s.assistance_amount)),
        ("hosp_part_amt", zero()),
        ("oth_pay", zero()),
        ("fund_pay_sumamt", amount(&fund)),
        ("psn_part_amt", amount(&s.patient_pays)),
        ("acct_pay", zero()),
        ("psn_cash_pay", amount(&s.patient_pays)),
        ("balc", zero()),
        ("acct_mulaid_pay", zero()),
        ("medins_setl_id", raw(&echo.msgid)),
        ("clr_optins", raw(&"")),
        ("clr_way", raw(&"")),
        ("clr_type", raw(&"")),
    ])
}

/// The sex the resident ID carries: `1` male (odd 17th digit), `2` female.
fn sex(id: &ResidentId) -> &'static str {
    match id.as_str().as_bytes().get(16) {
        Some(d) if (d.wrapping_sub(b'0')) % 2 == 1 => "1",
        Some(_) => "2",
        None => "",
    }
}

/// The 610100 row of `setldetail`.
fn setldetail(s: &pb::Settlement) -> Fields {
    let left_before = Money::parse(&s.annual_cap)
        .ok()
        .zip(Money::parse(&s.used_before).ok())
        .map(|(cap, used)| cap.saturating_sub(used).to_string())
        .unwrap_or_else(|| "0.00".into());
    Fields(vec![
        ("fund_pay_type", raw(ASSISTANCE_FUND)),
        ("fund_pay_type_name", raw("医疗救助基金")),
        ("inscp_scp_amt", yuan(&s.in_scope_out_of_pocket)),
        ("crt_payb_lmt_amt", yuan(&left_before)),
        ("fund_payamt", yuan(&s.assistance_amount)),
        (
            "setl_proc_info",
            raw(s.breakdown.as_ref().map_or("", |b| b.explanation.as_str())),
        ),
    ])
}

/// `baseinfo` of a roster record; name and number masked unless `whole`.
fn baseinfo(person: &pb::Person, whole: bool, today: Timestamp) -> serde_json::Value {
    let id = ResidentId::parse(&person.patient_id).ok();
    let birth = id.as_ref().map(ResidentId::birth_date);
    let sex = id.as_ref().map(sex).unwrap_or("");
    let today = Date::parse(&stamp(today, "%Y-%m-%d")).ok();
    let age = birth
        .zip(today)
        .map(|(b, t)| b.full_years_until(t))
        .unwrap_or_default();
    let (name, certno) = if whole {
        (person.name.clone(), person.patient_id.clone())
    } else {
        let mut chars = person.name.chars();
        let first: String = chars.next().into_iter().collect();
        (
            format!("{first}{}", "*".repeat(chars.count())),
            id.as_ref().map(ResidentId::masked).unwrap_or_default(),
        )
    };
    json!({
        "psn_no": certno,
        "psn_cert_type": "01",
        "certno": certno,
        "psn_name": name,
        "gend": sex,
        "brdy": birth.map(|b| b.to_string()).unwrap_or_default(),
        "age": age,
        "naty": "",
    })
}

/// `idetinfo` of a roster record: one row per enrollment, its end moved by
/// the grace period of the policy in force for the person's region this
/// year.
fn identities(gateway: &Gateway, person: &pb::Person, today: Timestamp) -> serde_json::Value {
    let book = gateway.app().policy_book();
    let year = Date::parse(&stamp(today, "%Y-%m-%d")).map(Date::year);
    let grace = crate::domain::RegionCode::parse(&person.region_code)
        .ok()
        .zip(year.ok())
        .and_then(|(region, year)| book.lookup(region, year))
        .map(|policy| policy.terms().grace)
        .unwrap_or_default();
    let Ok(person) = super::convert::person(person) else {
        return json!([]);
    };
    let rows: Vec<serde_json::Value> = person
        .enrollments()
        .iter()
        .map(|enrollment| {
            let kind = enrollment.kind();
            let end = crate::rules::covered_until(enrollment, grace)
                .map(|last| format!("{} 23:59:59", last.format("%Y-%m-%d")))
                .unwrap_or_default();
            json!({
                "psn_idet_type": kind.as_str().to_ascii_uppercase(),
                "psn_type_lv": "",
                "memo": kind.chinese(),
                "begntime": format!("{} 00:00:00", enrollment.valid_from()),
                "endtime": end,
            })
        })
        .collect();
    serde_json::Value::Array(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn national_clinical_codes_are_read_as_their_icd10_codes() {
        assert_eq!(icd10("C34.900x001"), "C34.900");
        assert_eq!(icd10("I10.x00x002"), "I10");
        assert_eq!(icd10("N18.500"), "N18.500");
        assert_eq!(icd10("N18"), "N18");
        assert_eq!(icd10("K74.6"), "K74.6");
    }

    #[test]
    fn amounts_are_read_exactly_as_written_and_written_with_two_decimals() {
        let object: Object =
            serde_json::from_str(r#"{"a": 42000.10, "b": "0.1", "c": 1e3, "d": 12.345}"#).unwrap();
        let mut problems = Vec::new();
        assert_eq!(
            money(&object, "", "a", &mut problems),
            Money::parse("42000.10").ok()
        );
        assert_eq!(
            money(&object, "", "b", &mut problems),
            Money::parse("0.10").ok()
        );
        assert_eq!(money(&object, "", "c", &mut problems), None);
        assert_eq!(money(&object, "", "d", &mut problems), None);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("c：应为金额"));
        assert_eq!(yuan("7350.5").get(), "7350.50");
        assert_eq!(negated("7350.00").get(), "-7350.00");
        assert_eq!(negated("0.00").get(), "0.00");
        assert_eq!(sum(&["25200.00", "6300.00", "7350.00"]), "38850.00");
    }

    #[test]
    fn our_fields_are_named_as_the_platform_names_them() {
        assert_eq!(theirs("total_cost", "2304"), "input.data.medfee_sumamt");
        assert_eq!(theirs("claim_id", "2305"), "input.data.mdtrt_id");
        assert_eq!(theirs("patient_id", "1101"), "input.data.certno");
        assert_eq!(theirs("reason", "2305"), "reason");
    }
}
