//! HTTP/JSON beside gRPC (`--http-listen`): the README's example with plain
//! HTTP and JSON, errors as `google.rpc.Status` JSON with their details and
//! Google's HTTP statuses, the same tokens and roles, server streams as
//! newline-delimited JSON, and an OpenAPI document with every annotated RPC.
//! Requests are written by hand over TCP, as any HTTP client would.

use std::{net::SocketAddr, sync::Arc};

use medassist::{
    auth::{Access, Role},
    config::Config,
    grpc::{FILE_DESCRIPTOR_SET, http_rule},
};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

/// A server with HTTP/JSON on another port of 127.0.0.1.
async fn http_server(config: Config) -> (TestServer, SocketAddr) {
    let dir = Arc::new(TempDir::new().unwrap());
    let mut server_config = TestServer::config_for(&dir);
    server_config.config = config;
    server_config.http_listen = Some(local());
    let server = TestServer::launch(dir, server_config, None).await;
    let http = server.http_addr.expect("HTTP/JSON is served");
    (server, http)
}

fn settle_json(patient: &str, claim: &str) -> Value {
    json!({
        "hospitalId": "H001", "claimId": claim, "patientId": patient,
        "admissionDate": "2026-03-01", "dischargeDate": "2026-03-20",
        "diagnosisCodes": ["N18.500"], "totalCost": "50000.00", "inScopeCost": "42000.00",
        "basicInsurancePaid": "25200.00", "criticalIllnessPaid": "6300.00"
    })
}

/// Proves the README's example settles over HTTP/JSON with the same answer
/// as over gRPC, and every read RPC answers at its path: settlement by ID
/// and by claim key, usage, the list with query parameters, person, policy.
/// The calls about one patient are POSTs with the resident ID in the body.
#[tokio::test]
async fn the_readme_example_settles_over_http_json() {
    let (_server, http_addr) = http_server(Config::default()).await;
    let patient = resident_id("1960-01-01", 61);
    let person = json!({"patientId": patient, "name": "张三", "regionCode": "320602",
        "enrollments": [{"kind": "ENROLLMENT_KIND_DIBAO", "validFrom": "2020-01-01"}]});
    let (status, stored) = http(http_addr, "POST", "/v1/persons:upsert", None, Some(person)).await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["patientId"], patient.as_str());
    let (status, read) = http(
        http_addr,
        "POST",
        "/v1/persons:get",
        None,
        Some(json!({"patientId": patient})),
    )
    .await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["name"], "张三");

    let (status, answer) = http(
        http_addr,
        "POST",
        "/v1/settlements:settle",
        None,
        Some(settle_json(&patient, "ZY2026-000123")),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let settlement = &answer["settlement"];
    assert_eq!(settlement["assistanceAmount"], "7350.00");
    assert_eq!(settlement["patientPays"], "11150.00");
    assert_eq!(settlement["remainingAfter"], "142650.00");
    assert_eq!(settlement["status"], "SETTLEMENT_STATUS_SETTLED");
    assert_eq!(answer["replayed"], false, "defaults are written out");
    assert_eq!(answer["answer"], "SETTLE_ANSWER_SETTLED");
    let id = settlement["settlementId"].as_str().unwrap().to_owned();

    let (_, again) = http(
        http_addr,
        "POST",
        "/v1/settlements:settle",
        None,
        Some(settle_json(&patient, "ZY2026-000123")),
    )
    .await;
    assert_eq!(again["replayed"], true);
    assert_eq!(again["answer"], "SETTLE_ANSWER_ALREADY_SETTLED");

    for path in [
        format!("/v1/settlements/{id}"),
        "/v1/hospitals/H001/claims/ZY2026-000123/settlement".to_owned(),
    ] {
        let (status, read) = http(http_addr, "GET", &path, None, None).await;
        assert_eq!(status, 200, "{path}: {read}");
        assert_eq!(read["settlementId"], id.as_str(), "{path}");
    }
    let usage = json!({"patientId": patient, "year": 2026});
    let (status, usage) = http(http_addr, "POST", "/v1/usages:get", None, Some(usage)).await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["used"], "7350.00");
    let list = json!({"patientId": patient, "year": 2026, "pageSize": 10});
    let (status, list) = http(
        http_addr,
        "POST",
        "/v1/settlements:listForPatient",
        None,
        Some(list),
    )
    .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["settlements"].as_array().unwrap().len(), 1);
    let settled_at = list["settlements"][0]["settledAt"].as_str().unwrap();
    let in_china =
        settled_at.parse::<chrono::DateTime<chrono::Utc>>().unwrap() + chrono::TimeDelta::hours(8);
    assert_eq!(
        list["settlements"][0]["settledDay"],
        in_china.format("%Y-%m-%d").to_string(),
        "the business day is the fund's (+08:00) day of settledAt"
    );
    assert_eq!(list["settlements"][0]["reversedDay"], "");
    let (status, policy) = http(
        http_addr,
        "GET",
        "/v1/regions/320602/policies/2026",
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{policy}");
    assert_eq!(policy["assistanceRatio"], "0.70");

    let (status, reversed) = http(
        http_addr,
        "POST",
        "/v1/settlements:reverse",
        None,
        Some(json!({"hospitalId": "H001", "claimId": "ZY2026-000123", "reason": "bill corrected"})),
    )
    .await;
    assert_eq!(status, 200, "{reversed}");
    assert_eq!(
        reversed["settlement"]["status"],
        "SETTLEMENT_STATUS_REVERSED"
    );
}

/// Proves errors read the same over HTTP: `google.rpc.Status` JSON with the
/// BadRequest field violations and their reasons, and Google's HTTP status
/// for each code (400, 404, 409); malformed requests are 400 too. Fields
/// are named as HTTP callers write them (lowerCamelCase), in the message,
/// the violations' fields and their descriptions alike, whichever spelling
/// the request used; gRPC keeps the proto names.
#[tokio::test]
async fn errors_are_status_json_with_their_details() {
    let (server, http_addr) = http_server(Config::default()).await;
    let patient = resident_id("1960-01-01", 62);
    let mut bad = settle_json(&patient, "E-1");
    bad["totalCost"] = json!("1.001");
    bad["inScopeCost"] = json!("");
    let (status, error) = http(http_addr, "POST", "/v1/settlements:settle", None, Some(bad)).await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["code"], 3);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("totalCost: has more than two decimals"),
        "{error}"
    );
    assert!(!error.to_string().contains('_'), "no proto name: {error}");
    let detail = &error["details"][0];
    assert_eq!(detail["@type"], "type.googleapis.com/google.rpc.BadRequest");
    let fields: Vec<&str> = detail["fieldViolations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"totalCost") && fields.contains(&"inScopeCost"),
        "{error}"
    );
    assert!(
        detail["fieldViolations"][0]["description"]
            .as_str()
            .unwrap()
            .contains("fen")
    );

    // Proto names in the request, a relation between fields in the answer:
    // still the JSON names.
    let snake = json!({"hospital_id": "H001", "claim_id": "E-3", "patient_id": patient,
        "admission_date": "2026-03-01", "discharge_date": "2026-03-20",
        "diagnosis_codes": ["N18.500"], "total_cost": "100", "in_scope_cost": "200",
        "basic_insurance_paid": "0", "critical_illness_paid": "0"});
    let (status, error) = http(
        http_addr,
        "POST",
        "/v1/settlements:settle",
        None,
        Some(snake),
    )
    .await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(
        error["details"][0]["fieldViolations"][0],
        json!({"field": "inScopeCost", "description": "is more than totalCost"}),
        "{error}"
    );
    // The same over gRPC: proto names.
    let mut claim = worked_example(&patient, "E-3");
    claim.total_cost = "100".into();
    claim.in_scope_cost = "200".into();
    let refused = server.settlements().settle(claim).await.unwrap_err();
    assert!(
        refused
            .message()
            .contains("in_scope_cost: is more than total_cost"),
        "{refused:?}"
    );

    // A value of the wrong type is named by its field, nested ones by
    // their path, as the request wrote them.
    let mut typed = settle_json(&patient, "E-4");
    typed["totalCost"] = json!(50000.0);
    let (status, error) = http(
        http_addr,
        "POST",
        "/v1/settlements:settle",
        None,
        Some(typed),
    )
    .await;
    assert_eq!((status, error["code"].as_i64()), (400, Some(3)), "{error}");
    let violation = &error["details"][0]["fieldViolations"][0];
    assert_eq!(violation["field"], "totalCost", "{error}");
    assert!(
        violation["description"]
            .as_str()
            .unwrap()
            .contains("expected a string"),
        "{error}"
    );
    assert!(
        error["message"].as_str().unwrap().contains("totalCost: "),
        "{error}"
    );
    let person = json!({"patientId": patient, "name": "王五", "regionCode": "320602",
        "enrollments": [{"kind": "ENROLLMENT_KIND_DIBAO", "validFrom": "2020-01-01"},
                        {"kind": "ENROLLMENT_KIND_TEKUN", "validFrom": 20200101}]});
    let (status, error) = http(http_addr, "POST", "/v1/persons:upsert", None, Some(person)).await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(
        error["details"][0]["fieldViolations"][0]["field"], "enrollments[1].validFrom",
        "{error}"
    );

    let (status, error) = http(
        http_addr,
        "GET",
        "/v1/settlements/0000000000000999",
        None,
        None,
    )
    .await;
    assert_eq!((status, error["code"].as_i64()), (404, Some(5)), "{error}");

    let enrolled = resident_id("1960-01-01", 63);
    let person = json!({"patientId": enrolled, "name": "李四", "regionCode": "320602",
        "enrollments": [{"kind": "ENROLLMENT_KIND_DIBAO", "validFrom": "2020-01-01"}]});
    assert_eq!(
        http(http_addr, "POST", "/v1/persons:upsert", None, Some(person))
            .await
            .0,
        200
    );
    let claim = settle_json(&enrolled, "E-2");
    assert_eq!(
        http(
            http_addr,
            "POST",
            "/v1/settlements:settle",
            None,
            Some(claim.clone())
        )
        .await
        .0,
        200
    );
    let mut changed = claim;
    changed["totalCost"] = json!("60000.00");
    let (status, error) = http(
        http_addr,
        "POST",
        "/v1/settlements:settle",
        None,
        Some(changed),
    )
    .await;
    assert_eq!((status, error["code"].as_i64()), (409, Some(6)), "{error}");

    let (status, error) = http(
        http_addr,
        "POST",
        "/v1/settlements:settle",
        None,
        Some(json!({"no_such_field": 1})),
    )
    .await;
    assert_eq!((status, error["code"].as_i64()), (400, Some(3)), "{error}");
    let (status, text) = http_raw(
        http_addr,
        "POST",
        "/v1/settlements:settle",
        None,
        Some("{not json"),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    let (status, error) = http(http_addr, "GET", "/v1/nowhere", None, None).await;
    assert_eq!((status, error["code"].as_i64()), (404, Some(5)), "{error}");
    let (status, _) = http(http_addr, "DELETE", "/v1/settlements:settle", None, None).await;
    assert_eq!(status, 501);
}

/// Proves HTTP uses the same tokens and roles: no token is 401, a token of
/// the wrong role or another hospital is 403, the right one is served.
#[tokio::test]
async fn the_same_tokens_and_roles_apply() {
    let config = Config {
        access: Access::Tokens(vec![
            token_entry("t-h001", Role::Hospital, Some("H001")),
            token_entry("t-h002", Role::Hospital, Some("H002")),
            token_entry("t-insurer", Role::Insurer, None),
        ]),
        ..Config::default()
    };
    let (_server, http_addr) = http_server(config).await;
    let patient = resident_id("1960-01-01", 64);
    let claim = || Some(settle_json(&patient, "A-1"));
    let settle = "/v1/settlements:settle";
    let (status, error) = http(http_addr, "POST", settle, None, claim()).await;
    assert_eq!((status, error["code"].as_i64()), (401, Some(16)), "{error}");
    let (status, _) = http(http_addr, "POST", settle, Some("wrong"), claim()).await;
    assert_eq!(status, 401);
    let (status, error) = http(http_addr, "POST", settle, Some("t-insurer"), claim()).await;
    assert_eq!((status, error["code"].as_i64()), (403, Some(7)), "{error}");
    let (status, _) = http(http_addr, "POST", settle, Some("t-h002"), claim()).await;
    assert_eq!(status, 403);
    let (status, answer) = http(http_addr, "POST", settle, Some("t-h001"), claim()).await;
    assert_eq!(status, 200, "{answer}");
    let (status, _) = http(
        http_addr,
        "GET",
        "/v1/regions/320602/policies/2026",
        Some("t-insurer"),
        None,
    )
    .await;
    assert_eq!(status, 200);
}

/// Proves a server stream (SaveSnapshot) is answered as newline-delimited
/// JSON, one message a line, ending without an error line; on PostgreSQL,
/// whose backups are its own, it is refused with the reason.
#[tokio::test]
async fn server_streams_are_newline_delimited_json() {
    let (server, http_addr) = http_server(Config::default()).await;
    server.enroll("1960-01-01", 65).await;
    let (status, text) = http_raw(http_addr, "POST", "/v1/snapshots:save", None, Some("{}")).await;
    if crate::backend::on_postgres() {
        // The stream's one line is its error.
        let error: Value = serde_json::from_str(text.trim()).expect("one JSON line");
        assert_eq!(error["error"]["code"], 9, "{text}");
        assert!(text.contains("pg_dump"), "{text}");
        return;
    }
    assert_eq!(status, 200, "{text}");
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(!lines.is_empty());
    for line in &lines {
        assert!(
            line["chunk"].as_str().is_some_and(|c| !c.is_empty()),
            "{line}"
        );
    }
}

/// Proves `/openapi.json` has an operation for every `google.api.http`
/// binding in the descriptors, and that every RPC of medassist.v1 has one
/// (so every RPC is reachable over HTTP/JSON), except client streams, which
/// cannot be transcoded and are gRPC-only.
#[tokio::test]
async fn openapi_has_every_annotated_rpc() {
    let (_server, http_addr) = http_server(Config::default()).await;
    let (status, document) = http(http_addr, "GET", "/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(document["openapi"], "3.0.3");
    let pool = prost_reflect::DescriptorPool::decode(FILE_DESCRIPTOR_SET).unwrap();
    let mut checked = 0;
    for service in pool
        .services()
        .filter(|s| s.package_name() == "medassist.v1")
    {
        for method in service.methods() {
            let bindings = http_rule::bindings(&pool, &method).unwrap();
            if method.is_client_streaming() {
                assert!(
                    bindings.is_empty(),
                    "{}: a client stream",
                    method.full_name()
                );
                continue;
            }
            assert!(
                !bindings.is_empty(),
                "{} has no google.api.http",
                method.full_name()
            );
            for binding in bindings {
                let path = json_named(&binding.path.replace("=*}", "}"));
                let operation = &document["paths"][&path][binding.method.to_ascii_lowercase()];
                assert!(
                    operation["operationId"]
                        .as_str()
                        .is_some_and(|id| id.starts_with(&format!(
                            "{}_{}",
                            service.name(),
                            method.name()
                        ))),
                    "{} {} of {} is missing from /openapi.json",
                    binding.method,
                    path,
                    method.full_name()
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 11, "only {checked} bindings");
}

/// `/v1/settlements/{settlement_id}` with its variables in lowerCamelCase.
fn json_named(path: &str) -> String {
    let mut out = String::new();
    let mut in_variable = false;
    let mut upper = false;
    for c in path.chars() {
        match c {
            '{' | '}' => in_variable = c == '{',
            '_' if in_variable => {
                upper = true;
                continue;
            }
            _ => {}
        }
        out.push(if std::mem::take(&mut upper) {
            c.to_ascii_uppercase()
        } else {
            c
        });
    }
    out
}

/// The operation at `method path` of the document, and its request body's
/// schema, resolved.
fn request_schema<'a>(document: &'a Value, method: &str, path: &str) -> &'a Value {
    let schema =
        &document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"];
    let schema = schema["allOf"].get(0).unwrap_or(schema);
    let name = schema["$ref"]
        .as_str()
        .unwrap_or_else(|| panic!("{method} {path} has a body: {schema}"))
        .trim_start_matches("#/components/schemas/");
    &document["components"]["schemas"][name]
}

/// Proves the OpenAPI document is strict: the settle request lists every
/// required field, amounts, dates, resident IDs and region codes carry
/// their patterns (dates `format: date` too) and descriptions; no path
/// parameter or query parameter is named other than as its JSON field; no
/// route puts a resident ID in the URL.
#[tokio::test]
async fn openapi_says_what_the_validators_accept() {
    let (_server, http_addr) = http_server(Config::default()).await;
    let (_, document) = http(http_addr, "GET", "/openapi.json", None, None).await;
    let settle = request_schema(&document, "post", "/v1/settlements:settle");
    let mut required: Vec<&str> = settle["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    required.sort();
    assert_eq!(
        required,
        [
            "admissionDate",
            "basicInsurancePaid",
            "claimId",
            "criticalIllnessPaid",
            "diagnosisCodes",
            "dischargeDate",
            "hospitalId",
            "inScopeCost",
            "patientId",
            "totalCost"
        ]
    );
    let properties = &settle["properties"];
    for (name, schema) in properties.as_object().unwrap() {
        assert!(
            schema["description"].as_str().is_some_and(|d| d.len() > 10),
            "{name} has a description: {schema}"
        );
    }
    assert_eq!(
        properties["totalCost"]["pattern"],
        r"^0*[0-9]{1,14}(\.[0-9]{1,2})?$"
    );
    assert_eq!(properties["admissionDate"]["format"], "date");
    assert!(properties["patientId"]["pattern"].as_str().is_some());
    assert_eq!(properties["diagnosisCodes"]["minItems"], 1);
    assert!(properties["diagnosisCodes"]["items"]["pattern"].is_string());
    let person = request_schema(&document, "post", "/v1/persons:upsert");
    assert_eq!(
        person["properties"]["regionCode"]["pattern"],
        "^[1-9][0-9]{5}$"
    );
    let enrollment = &document["components"]["schemas"]["medassist.v1.Enrollment"];
    assert_eq!(
        enrollment["properties"]["validTo"]["pattern"],
        "^((19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01]))?$",
        "an optional date may be empty"
    );

    for (path, operations) in document["paths"].as_object().unwrap() {
        assert!(!path.contains('_') && !path.contains('.'), "{path}");
        for (method, operation) in operations.as_object().unwrap() {
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().unwrap();
                assert!(
                    !name.contains('_') && !name.contains('.'),
                    "{method} {path}: parameter {name}"
                );
                assert!(
                    !takes_resident_id(parameter),
                    "{method} {path}: a resident ID in the URL ({name})"
                );
            }
        }
    }
}

/// True when a parameter takes a resident ID.
fn takes_resident_id(parameter: &Value) -> bool {
    let pattern = parameter["schema"]["pattern"].as_str().unwrap_or_default();
    let pattern_items = parameter["schema"]["items"]["pattern"]
        .as_str()
        .unwrap_or_default();
    pattern.contains("[0-9Xx]") || pattern_items.contains("[0-9Xx]")
}

/// Proves the document's `required` lists are the validators': for each
/// request below, leaving out a field the document requires is refused
/// naming that field (in lowerCamelCase), and leaving out any other field
/// is not refused for it.
#[tokio::test]
async fn the_documents_required_fields_are_the_servers() {
    let (_server, http_addr) = http_server(Config::default()).await;
    let (_, document) = http(http_addr, "GET", "/openapi.json", None, None).await;
    let patient = resident_id("1960-01-01", 66);
    let person = json!({"patientId": patient, "name": "赵六", "regionCode": "320602",
        "enrollments": [{"kind": "ENROLLMENT_KIND_DIBAO", "validFrom": "2020-01-01",
                         "validTo": "2030-01-01"}],
        "psychiatricDisabilityGrade": 0, "paralysisCertified": false});
    assert_eq!(
        http(
            http_addr,
            "POST",
            "/v1/persons:upsert",
            None,
            Some(person.clone())
        )
        .await
        .0,
        200
    );
    let mut claim = settle_json(&patient, "REQ-0");
    let requests = [
        ("/v1/persons:upsert", person),
        ("/v1/persons:get", json!({"patientId": patient})),
        (
            "/v1/usages:get",
            json!({"patientId": patient, "year": 2026}),
        ),
        (
            "/v1/settlements:listForPatient",
            json!({"patientId": patient, "year": 2026, "pageSize": 5, "pageToken": ""}),
        ),
        ("/v1/settlements:preSettle", claim.clone()),
    ];
    let mut checked = 0;
    for (path, body) in requests {
        let schema = request_schema(&document, "post", path);
        let required: Vec<&str> = schema["required"]
            .as_array()
            .unwrap_or_else(|| panic!("{path} has required fields: {schema}"))
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let (status, answer) = http(http_addr, "POST", path, None, Some(body.clone())).await;
        assert_eq!(status, 200, "{path} whole: {answer}");
        for field in body.as_object().unwrap().keys() {
            let mut without = body.clone();
            without.as_object_mut().unwrap().remove(field);
            let (status, answer) = http(http_addr, "POST", path, None, Some(without)).await;
            let named = answer["details"][0]["fieldViolations"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|v| v["field"] == field.as_str());
            assert_eq!(
                named,
                required.contains(&field.as_str()),
                "{path} without {field}: {status} {answer}"
            );
            if !named {
                assert_eq!(status, 200, "{path} without {field}: {answer}");
            }
            checked += 1;
        }
    }
    // A required list needs an element (minItems 1).
    claim["diagnosisCodes"] = json!([]);
    let (status, answer) = http(
        http_addr,
        "POST",
        "/v1/settlements:preSettle",
        None,
        Some(claim),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        answer["details"][0]["fieldViolations"][0]["field"], "diagnosisCodes",
        "an empty list is refused as minItems 1 says: {answer}"
    );
    assert!(checked >= 20, "{checked}");
}

/// Proves no resident ID travels in a URL or comes back whole: the routes
/// that once carried one in their path are gone (404, the path echoed
/// masked), and neither an error body (a wrong type, an unknown field named
/// by the ID, a malformed ID) nor any audit record of the HTTP calls holds
/// a whole ID. Calls are recorded by RPC, refusals by route template.
#[tokio::test]
async fn resident_ids_stay_out_of_urls_errors_and_the_trail() {
    let (_server, http_addr) = http_server(Config::default()).await;
    let patient = resident_id("1960-01-01", 67);
    let mistyped = format!("{}0", &patient[..17]);
    let person = json!({"patientId": patient, "name": "钱七", "regionCode": "320602",
        "enrollments": [{"kind": "ENROLLMENT_KIND_DIBAO", "validFrom": "2020-01-01"}]});
    let (status, _) = http(http_addr, "POST", "/v1/persons:upsert", None, Some(person)).await;
    assert_eq!(status, 200);
    let mut answers = Vec::new();
    for (method, path) in [
        ("GET", format!("/v1/persons/{patient}")),
        ("PUT", format!("/v1/persons/{patient}")),
        ("GET", format!("/v1/patients/{patient}/usage/2026")),
        (
            "GET",
            format!("/v1/patients/{patient}/settlements?year=2026"),
        ),
    ] {
        let (status, answer) = http(http_addr, method, &path, None, None).await;
        assert_eq!(status, 404, "{method} {path} is gone: {answer}");
        answers.push(answer);
    }
    let bodies = [
        (
            "/v1/usages:get",
            json!({"patientId": patient.parse::<u64>().ok(), "year": 2026}),
        ),
        (
            "/v1/usages:get",
            json!({"patientId": mistyped, "year": 2026}),
        ),
        ("/v1/usages:get", json!({patient.clone(): 1, "year": 2026})),
        ("/v1/persons:get", json!({"patientId": [patient]})),
        (
            "/v1/usages:batchGet",
            json!({"patientIds": [patient, mistyped], "year": 2026}),
        ),
        (
            "/v1/settlements:listForPatient",
            json!({"patientId": patient, "year": 1}),
        ),
    ];
    for (path, body) in bodies {
        let (status, answer) = http(http_addr, "POST", path, None, Some(body.clone())).await;
        assert!(
            status == 400 || status == 200,
            "{path} {body}: {status} {answer}"
        );
        answers.push(answer);
    }
    let (status, trail) = http(
        http_addr,
        "POST",
        "/v1/audit:list",
        None,
        Some(json!({"fromTime": "2000-01-01T00:00:00Z", "toTime": "2100-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(status, 200, "{trail}");
    let records = trail["records"].as_array().unwrap();
    assert!(records.len() >= 10, "{trail}");
    let calls: Vec<&str> = records
        .iter()
        .map(|r| r["call"].as_str().unwrap())
        .collect();
    assert!(
        calls.contains(&"medassist.v1.UsageService/GetAnnualUsage"),
        "{calls:?}"
    );
    assert!(calls.contains(&"GET (no route)"), "{calls:?}");
    assert!(
        calls.contains(&"POST /v1/usages:get"),
        "refused before the RPC: {calls:?}"
    );
    let everything = format!("{answers:?} {trail}");
    for id in [&patient, &mistyped] {
        assert!(
            !everything.contains(id.as_str()),
            "{id} whole in {everything}"
        );
    }
    assert!(
        everything.contains("320602********"),
        "masked, not dropped: {everything}"
    );
}

/// Proves `medassist export --format jsonl` writes what
/// `GET /v1/settlements:export` writes, key for key and value for value,
/// each record with its business days (`settledDay`, `reversedDay`), and
/// that the CSV's header is the same keys.
#[tokio::test]
async fn cli_and_http_exports_have_the_same_keys_and_the_business_day() {
    // 23:30 in China on the 30th (15:30 UTC): settled that day; reversed
    // after midnight in China (still the 30th in UTC), on the 1st.
    let clock = medassist::clock::ManualClock::new(at("2026-11-30T15:30:00Z"));
    let dir = Arc::new(TempDir::new().unwrap());
    let mut server_config = TestServer::config_for(&dir);
    server_config.http_listen = Some(local());
    server_config.clock = clock.clone();
    let server = TestServer::launch(dir, server_config, None).await;
    let http_addr = server.http_addr.unwrap();
    let patient = server.enroll("1960-01-01", 68).await;
    for claim in ["EXP-1", "EXP-2"] {
        settled(
            server
                .settlements()
                .settle(worked_example(&patient, claim))
                .await,
        );
    }
    clock.set(at("2026-11-30T16:30:00Z"));
    server
        .settlements()
        .reverse(medassist::grpc::pb::ReverseRequest {
            hospital_id: "H001".into(),
            claim_id: "EXP-1".into(),
            reason: "duplicate".into(),
        })
        .await
        .unwrap();
    let (from, to) = ("2026-11-30".to_owned(), "2026-12-01".to_owned());
    let (status, text) = http_raw(
        http_addr,
        "GET",
        &format!("/v1/settlements:export?fromDate={from}&toDate={to}"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let over_http: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(over_http.len(), 2, "{text}");
    let export = |format: &'static str| {
        let target = format!("http://{}", server.addr);
        let (from, to) = (from.clone(), to.clone());
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(BINARY)
                .args(["export", "--target", &target, "--from", &from, "--to", &to])
                .args(["--format", format])
                .output()
                .expect("the binary runs")
        })
    };
    let jsonl = export("jsonl").await.unwrap();
    assert!(
        jsonl.status.success(),
        "{}",
        String::from_utf8_lossy(&jsonl.stderr)
    );
    let from_cli: Vec<Value> = String::from_utf8(jsonl.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(from_cli, over_http, "the same records, keys and values");
    for record in &from_cli {
        assert_eq!(record["settledDay"], "2026-11-30", "{record}");
        assert!(
            record["settledAt"]
                .as_str()
                .unwrap()
                .starts_with("2026-11-30T15:30")
        );
    }
    let reversed = from_cli.iter().find(|r| r["claimId"] == "EXP-1").unwrap();
    assert_eq!(reversed["reversedDay"], "2026-12-01", "{reversed}");
    assert!(
        reversed["reversedAt"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-30T16:30")
    );
    let standing = from_cli.iter().find(|r| r["claimId"] == "EXP-2").unwrap();
    assert_eq!(standing["reversedDay"], "", "{standing}");
    let csv = export("csv").await.unwrap();
    let csv = String::from_utf8(csv.stdout).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    for key in from_cli[0].as_object().unwrap().keys() {
        assert!(
            header.contains(&key.as_str()),
            "{key} is a CSV column: {header:?}"
        );
    }
    assert!(header.contains(&"reversedAt") && header.contains(&"settledDay"));
}

/// Proves a client that never finishes its body is answered CANCELLED (499)
/// once the request timeout passes, like a slow gRPC call, instead of
/// holding the request open: the body is read under the timeout.
#[tokio::test]
async fn an_unfinished_body_is_cut_at_the_request_timeout() {
    let mut config = Config::default();
    config.limits.request_timeout = std::time::Duration::from_millis(500);
    let (_server, http_addr) = http_server(config).await;
    let mut stream = tokio::net::TcpStream::connect(http_addr).await.unwrap();
    stream
        .write_all(
            b"POST /v1/settlements:settle HTTP/1.1\r\nHost: medassist\r\nConnection: close\r\n\
              Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"hospital",
        )
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("answered within 10 s")
    .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 499"), "{answer}");
    assert!(answer.contains(r#""code":1"#), "{answer}");
    assert!(started.elapsed() >= std::time::Duration::from_millis(400));
}

/// Proves a client that never finishes its request headers (slowloris) is
/// closed once `handshake_timeout` passes, and so is a keep-alive connection
/// left silent after its answer, so neither holds one of the HTTP port's
/// connections for long.
#[tokio::test]
async fn unfinished_headers_and_silent_connections_are_closed() {
    let mut config = Config::default();
    config.limits.handshake_timeout = std::time::Duration::from_millis(500);
    let (_server, http_addr) = http_server(config).await;
    let closed_within = |mut stream: tokio::net::TcpStream| async move {
        let started = std::time::Instant::now();
        let mut rest = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            stream.read_to_end(&mut rest),
        )
        .await
        .expect("closed within 10 s")
        .ok();
        (started.elapsed(), rest)
    };
    let mut slow = tokio::net::TcpStream::connect(http_addr).await.unwrap();
    slow.write_all(b"GET /openapi.json HTTP/1.1\r\nHost: medassist\r\n")
        .await
        .unwrap();
    let (after, _) = closed_within(slow).await;
    assert!(after >= std::time::Duration::from_millis(400), "{after:?}");

    let mut idle = tokio::net::TcpStream::connect(http_addr).await.unwrap();
    idle.write_all(b"GET /openapi.json HTTP/1.1\r\nHost: medassist\r\n\r\n")
        .await
        .unwrap();
    let (_, answer) = closed_within(idle).await;
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
}

/// Proves Chinese class and claim kind names are read over HTTP/JSON as
/// the roster CSV reads them (`"低保边缘"`, `"门诊慢特病"`), that the answer
/// carries the breakdown with its explanation, and that a name that is
/// neither is refused naming the field.
#[tokio::test]
async fn chinese_class_and_claim_kind_names_over_http_json() {
    let config = Config::parse(crate::policy_classes::POLICY_2026).unwrap();
    let (_server, http_addr) = http_server(config).await;
    let patient = resident_id("1970-05-01", 71);
    let person = json!({"patientId": patient, "name": "李四", "regionCode": "320505",
        "enrollments": [{"kind": "低保边缘", "validFrom": "2025-01-01"}]});
    let upsert = "/v1/persons:upsert";
    let (status, stored) = http(http_addr, "POST", upsert, None, Some(person)).await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(
        stored["enrollments"][0]["kind"],
        "ENROLLMENT_KIND_LOW_INCOME_MARGIN"
    );

    let mut claim = settle_json(&patient, "MZ-1");
    claim["claim_kind"] = json!("门诊慢特病");
    claim["diagnosis_codes"] = json!(["I10"]);
    let (status, answer) = http(
        http_addr,
        "POST",
        "/v1/settlements:settle",
        None,
        Some(claim),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let settlement = &answer["settlement"];
    assert_eq!(settlement["claimKind"], "CLAIM_KIND_OUTPATIENT_CHRONIC");
    // 10,500.00 out of pocket: 5,000.00 deductible, 5,500.00 at 60%.
    assert_eq!(settlement["assistanceAmount"], "3300.00");
    let breakdown = &settlement["breakdown"];
    assert_eq!(breakdown["assistedClass"], "low_income_margin");
    let explanation = breakdown["explanation"].as_str().unwrap();
    assert!(
        explanation.starts_with("救助类别 低保边缘（门诊慢特病）"),
        "{explanation}"
    );
    assert!(
        explanation.contains("门诊慢特病限额 20000.00，此前已用 0.00，剩余 20000.00"),
        "{explanation}"
    );

    let bad = json!({"patientId": patient, "name": "李四", "regionCode": "320505",
        "enrollments": [{"kind": "五保户", "validFrom": "2025-01-01"}]});
    let (status, refused) = http(http_addr, "POST", upsert, None, Some(bad)).await;
    assert_eq!(status, 400, "{refused}");
}
