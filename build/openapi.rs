//! The OpenAPI 3 document of the HTTP/JSON API, generated from the same
//! descriptors as the code: one operation per `google.api.http` binding,
//! one schema per message in the proto3 JSON mapping (lowerCamelCase names,
//! enums by name, 64-bit integers and bytes as strings, Timestamp as RFC
//! 3339). Errors are `google.rpc.Status`. Served at `/openapi.json`.

use std::collections::BTreeMap;

use prost_reflect::{DescriptorPool, FieldDescriptor, Kind, MessageDescriptor, MethodDescriptor};
use serde_json::{Map, Value, json};

#[allow(dead_code)]
#[path = "../src/grpc/http_rule.rs"]
mod http_rule;

#[allow(dead_code)]
#[path = "../src/domain/wire_format.rs"]
mod wire_format;

const STATUS_SCHEMA: &str = "google.rpc.Status";
const ERROR_RESPONSE: &str = "Error";
/// The HTTP statuses of errors: Google's for each gRPC code.
const ERROR_STATUSES: [u16; 11] = [400, 401, 403, 404, 409, 429, 499, 500, 501, 503, 504];

/// The whole document.
pub fn document(pool: &DescriptorPool, version: &str) -> Result<Value, String> {
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut schemas = BTreeMap::new();
    let mut tags = Vec::new();
    for service in pool.services() {
        for method in service.methods() {
            let bindings = http_rule::bindings(pool, &method)?;
            for (n, binding) in bindings.iter().enumerate() {
                let operation = operation(&method, binding, n, &mut schemas)?;
                let path = openapi_path(&method.input(), &binding.template);
                let entry = paths.entry(path).or_default();
                let verb = binding.method.to_ascii_lowercase();
                if entry.insert(verb, operation).is_some() {
                    return Err(format!(
                        "{} binds a path and method already bound",
                        method.full_name()
                    ));
                }
            }
            if !bindings.is_empty() && !tags.contains(&service.name().to_owned()) {
                tags.push(service.name().to_owned());
            }
        }
    }
    schemas.insert(STATUS_SCHEMA.to_owned(), status_schema());
    tags.sort();
    let tags: Vec<Value> = tags
        .iter()
        .map(|name| {
            let service = pool
                .services()
                .find(|s| s.name() == name)
                .expect("a service just seen");
            json!({"name": name, "description": comments(service.parent_file(), service.path())
                .unwrap_or_else(|| service.full_name().to_owned())})
        })
        .collect();
    Ok(json!({
        "openapi": "3.0.3",
        "info": {
            "title": "medassist HTTP/JSON API",
            "version": version,
            "description": "Medical assistance settlement at hospital discharge. The same API as \
                the gRPC services of package medassist.v1, transcoded as gRPC-JSON transcoding \
                does: the proto3 JSON mapping, errors as google.rpc.Status with details. Money \
                is a decimal string in yuan (send zero as \"0\"); dates are YYYY-MM-DD.",
            "license": {"name": "Apache-2.0", "url": "https://www.apache.org/licenses/LICENSE-2.0"},
            "contact": {"name": "The medassist maintainers (see README.md)"},
        },
        "servers": [{
            "url": "/",
            "description": "The server that serves this document (`medassist serve \
                --http-listen`, 127.0.0.1:8080 by default).",
        }],
        "security": [{"bearer": []}],
        "tags": tags,
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token from `medassist token new`; not needed when the \
                        server runs without [auth] (loopback only)."
                }
            },
            "schemas": schemas,
            "responses": {
                ERROR_RESPONSE: {
                    "description": "An error: the gRPC status as JSON, with its details \
                        (google.rpc.BadRequest field violations, fields named as in the \
                        request's JSON, for 400 INVALID_ARGUMENT), under the HTTP status \
                        Google's APIs give its code.",
                    "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{STATUS_SCHEMA}")}}},
                },
            },
        },
    }))
}

/// `/v1/settlements/{settlementId}`: the template with plain variables,
/// each named as its field is in JSON.
fn openapi_path(input: &MessageDescriptor, template: &http_rule::Template) -> String {
    let mut path = String::new();
    for segment in &template.segments {
        path.push('/');
        match segment {
            http_rule::Segment::Literal(literal) => path.push_str(literal),
            http_rule::Segment::Field(field) => {
                path.push_str(&format!("{{{}}}", json_path(input, field)))
            }
        }
    }
    if let Some(verb) = &template.verb {
        path.push(':');
        path.push_str(verb);
    }
    path
}

fn operation(
    method: &MethodDescriptor,
    binding: &http_rule::Binding,
    n: usize,
    schemas: &mut BTreeMap<String, Value>,
) -> Result<Value, String> {
    let input = method.input();
    let mut parameters = Vec::new();
    for field_path in binding.template.fields() {
        let field = http_rule::field_at(&input, field_path).expect("checked by bindings");
        let (schema, description) = parameter_schema(&field, true, schemas);
        parameters.push(json!({
            "name": json_path(&input, field_path),
            "in": "path",
            "required": true,
            "description": description,
            "schema": schema,
        }));
    }
    if binding.body != "*" {
        let bound: Vec<&str> = binding.template.fields().collect();
        for field in input.fields() {
            let name = field.name();
            if name == binding.body
                || bound.contains(&name)
                || matches!(field.kind(), Kind::Message(_))
            {
                continue;
            }
            let required = rules(&field).required;
            let (schema, description) = parameter_schema(&field, required, schemas);
            parameters.push(json!({
                "name": field.json_name(),
                "in": "query",
                "required": required,
                "description": description,
                "schema": schema,
            }));
        }
    }
    let mut operation = Map::new();
    let service = method.parent_service();
    operation.insert(
        "operationId".into(),
        json!(match n {
            0 => format!("{}_{}", service.name(), method.name()),
            n => format!("{}_{}_{}", service.name(), method.name(), n + 1),
        }),
    );
    operation.insert("tags".into(), json!([service.name()]));
    operation.insert(
        "summary".into(),
        json!(format!("{}/{}", service.full_name(), method.name())),
    );
    if let Some(text) = comments(method.parent_file(), method.path()) {
        operation.insert("description".into(), json!(text));
    }
    if !parameters.is_empty() {
        operation.insert("parameters".into(), json!(parameters));
    }
    match binding.body.as_str() {
        "" => {}
        "*" => {
            operation.insert(
                "requestBody".into(),
                json!({"required": true, "content": {"application/json": {"schema": message_ref(&input, schemas)}}}),
            );
        }
        field => {
            let field = input.get_field_by_name(field).expect("checked by bindings");
            operation.insert(
                "requestBody".into(),
                json!({"required": true, "content": {"application/json": {"schema": field_schema(&field, true, schemas)}}}),
            );
        }
    }
    let output = message_ref(&method.output(), schemas);
    let success = if method.is_server_streaming() {
        json!({
            "description": "A stream: one JSON object per line (newline-delimited JSON). \
                If the stream fails part way, its last line is {\"error\": google.rpc.Status}.",
            "content": {"application/x-ndjson": {"schema": output}},
        })
    } else {
        json!({"description": "OK", "content": {"application/json": {"schema": output}}})
    };
    let mut responses = Map::new();
    responses.insert("200".into(), success);
    // Every error status the gateway answers (transcode.rs, http_status),
    // each the same google.rpc.Status, so a generated client parses them.
    for code in ERROR_STATUSES {
        responses.insert(
            code.to_string(),
            json!({"$ref": format!("#/components/responses/{ERROR_RESPONSE}")}),
        );
    }
    operation.insert("responses".into(), Value::Object(responses));
    Ok(Value::Object(operation))
}

/// A reference to the message's schema, generating it (and what it uses).
fn message_ref(message: &MessageDescriptor, schemas: &mut BTreeMap<String, Value>) -> Value {
    match message.full_name() {
        "google.protobuf.Timestamp" => {
            return json!({"type": "string", "format": "date-time"});
        }
        "google.protobuf.Duration" => return json!({"type": "string", "example": "1.5s"}),
        _ => {}
    }
    let name = message.full_name().to_owned();
    if !schemas.contains_key(&name) {
        schemas.insert(name.clone(), Value::Null); // reserved: recursion stops here
        let mut properties = Map::new();
        let mut required = Vec::new();
        for field in message.fields() {
            let rules = rules(&field);
            if rules.required {
                required.push(field.json_name().to_owned());
            }
            properties.insert(
                field.json_name().to_owned(),
                field_schema(&field, rules.required, schemas),
            );
        }
        let mut schema = json!({"type": "object", "properties": properties});
        if !required.is_empty() {
            schema["required"] = json!(required);
        }
        if let Some(text) = comments(message.parent_file(), message.path()) {
            schema["description"] = json!(text);
        }
        schemas.insert(name.clone(), schema);
    }
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// A reference to the enum's schema (one type per proto enum in generated
/// clients), generating it: its values by name, each value's comment in
/// its description.
fn enum_ref(
    descriptor: &prost_reflect::EnumDescriptor,
    schemas: &mut BTreeMap<String, Value>,
) -> Value {
    let name = descriptor.full_name().to_owned();
    if !schemas.contains_key(&name) {
        let mut text: Vec<String> = comments(descriptor.parent_file(), descriptor.path())
            .into_iter()
            .collect();
        for value in descriptor.values() {
            if let Some(comment) = comments(value.parent_file(), value.path()) {
                text.push(format!("{}: {comment}", value.name()));
            }
        }
        let mut schema = json!({
            "type": "string",
            "enum": descriptor.values().map(|v| v.name().to_owned()).collect::<Vec<_>>(),
        });
        if !text.is_empty() {
            schema["description"] = json!(text.join(" "));
        }
        schemas.insert(name.clone(), schema);
    }
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// What `(medassist.v1.rules)` says of a field.
#[derive(Default)]
struct Rules {
    required: bool,
    format: Option<&'static wire_format::WireFormat>,
    /// The comment of the format's `FieldFormat` value.
    format_text: Option<String>,
}

/// The field's `(medassist.v1.rules)`; a format missing from
/// `src/domain/wire_format.rs` stops the build.
fn rules(field: &FieldDescriptor) -> Rules {
    let pool = field.parent_pool();
    let Some(extension) = pool.get_extension_by_name("medassist.v1.rules") else {
        return Rules::default();
    };
    let options = field.options();
    if !options.has_extension(&extension) {
        return Rules::default();
    }
    let options = options.get_extension(&extension);
    let Some(options) = options.as_message() else {
        return Rules::default();
    };
    let required = options
        .get_field_by_name("required")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let number = options
        .get_field_by_name("format")
        .and_then(|v| v.as_enum_number())
        .unwrap_or(0);
    let value = pool
        .get_enum_by_name("medassist.v1.FieldFormat")
        .and_then(|formats| formats.get_value(number))
        .filter(|value| value.number() != 0);
    let format = value.as_ref().map(|value| {
        wire_format::find(value.name()).unwrap_or_else(|| {
            panic!(
                "{}: {} is not in src/domain/wire_format.rs",
                field.full_name(),
                value.name()
            )
        })
    });
    let format_text = value.and_then(|value| comments(value.parent_file(), value.path()));
    Rules {
        required,
        format,
        format_text,
    }
}

/// A field's schema; `required` makes a string's pattern refuse the empty
/// string and a list need one element.
fn field_schema(
    field: &FieldDescriptor,
    required: bool,
    schemas: &mut BTreeMap<String, Value>,
) -> Value {
    let rules = rules(field);
    let mut item = match field.kind() {
        Kind::Double | Kind::Float => json!({"type": "number"}),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            json!({"type": "integer", "format": "int32"})
        }
        Kind::Uint32 | Kind::Fixed32 => json!({"type": "integer", "format": "int64", "minimum": 0}),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint64 | Kind::Fixed64 => {
            json!({"type": "string", "format": "int64"})
        }
        Kind::Bool => json!({"type": "boolean"}),
        Kind::String => json!({"type": "string"}),
        Kind::Bytes => json!({"type": "string", "format": "byte"}),
        Kind::Enum(descriptor) => enum_ref(&descriptor, schemas),
        Kind::Message(message) if field.is_map() => {
            let value = message
                .get_field_by_name("value")
                .expect("a map entry has a value");
            return json!({"type": "object", "additionalProperties": field_schema(&value, false, schemas)});
        }
        Kind::Message(message) => message_ref(&message, schemas),
    };
    if let Some(format) = rules.format {
        // Each element of a list is a whole value.
        apply_format(&mut item, format, required || field.is_list());
    }
    let text: Vec<String> = [
        comments(field.parent_file(), field.path()),
        rules.format_text,
    ]
    .into_iter()
    .flatten()
    .collect();
    let text = (!text.is_empty()).then(|| text.join(" "));
    if field.is_list() {
        // The description is the list's; its items carry the format.
        let mut list = json!({"type": "array", "items": item});
        if required {
            list["minItems"] = json!(1);
        }
        if let Some(text) = text {
            list["description"] = json!(text);
        }
        return list;
    }
    match text {
        // A $ref may not have siblings in OpenAPI 3.0; wrap it.
        Some(text) if item.get("$ref").is_some() => json!({"allOf": [item], "description": text}),
        Some(text) => {
            item["description"] = json!(text);
            item
        }
        None => item,
    }
}

/// Writes what a format accepts into a scalar's schema.
fn apply_format(item: &mut Value, format: &wire_format::WireFormat, required: bool) {
    if let Some((low, high)) = format.range {
        item["minimum"] = json!(low);
        item["maximum"] = json!(high);
        item["example"] = json!(format.example.parse::<i64>().unwrap_or(low));
        return;
    }
    if let Some(pattern) = format.anchored(required) {
        item["pattern"] = json!(pattern);
    }
    if let (Some(openapi_format), true) = (format.format, required) {
        item["format"] = json!(openapi_format);
    }
    if let Some(max) = format.length_max {
        item["maxLength"] = json!(max);
    }
    item["example"] = json!(format.example);
}

/// A path or query parameter's schema and description (the description
/// goes on the parameter itself).
fn parameter_schema(
    field: &FieldDescriptor,
    required: bool,
    schemas: &mut BTreeMap<String, Value>,
) -> (Value, Value) {
    let mut schema = field_schema(field, required, schemas);
    let description = schema
        .as_object_mut()
        .and_then(|object| object.remove("description"))
        .unwrap_or_else(|| json!(format!("The request's {} field.", field.json_name())));
    (schema, description)
}

/// A dotted proto field path (`person.patient_id`) in JSON names
/// (`person.patientId`).
fn json_path(message: &MessageDescriptor, path: &str) -> String {
    let mut message = message.clone();
    let mut names = Vec::new();
    for name in path.split('.') {
        let Some(field) = message.get_field_by_name(name) else {
            names.push(name.to_owned());
            continue;
        };
        names.push(field.json_name().to_owned());
        if let Kind::Message(inner) = field.kind() {
            message = inner;
        }
    }
    names.join(".")
}

/// The leading comment of the element at `path` in `file`, tidied.
fn comments(file: prost_reflect::FileDescriptor, path: &[i32]) -> Option<String> {
    let info = file.file_descriptor_proto().source_code_info.as_ref()?;
    let location = info.location.iter().find(|l| l.path == path)?;
    let text = location.leading_comments.as_deref()?;
    let text = text
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
        .trim()
        .to_owned();
    (!text.is_empty()).then_some(text)
}

fn status_schema() -> Value {
    json!({
        "type": "object",
        "description": "The error model of gRPC and of Google's HTTP APIs: the gRPC status code \
            (3 INVALID_ARGUMENT, 5 NOT_FOUND, ...), a message a person can read, and typed \
            details such as google.rpc.BadRequest.",
        "required": ["code", "message", "details"],
        "properties": {
            "code": {"type": "integer", "format": "int32", "description": "The gRPC status code."},
            "message": {"type": "string", "description": "What went wrong, for a person; \
                resident IDs in it are masked."},
            "details": {
                "description": "Typed details, each naming its type in @type. \
                    type.googleapis.com/google.rpc.BadRequest (400 INVALID_ARGUMENT) \
                    carries fieldViolations; other types carry their own fields.",
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["@type"],
                    "properties": {
                        "@type": {"type": "string", "description": "The detail's type, \
                            such as type.googleapis.com/google.rpc.BadRequest."},
                        "fieldViolations": {
                            "type": "array",
                            "description": "google.rpc.BadRequest: one entry per bad field.",
                            "items": {
                                "type": "object",
                                "required": ["field", "description"],
                                "properties": {
                                    "field": {"type": "string", "description": "The field's \
                                        path in the request as the caller wrote it: \
                                        lowerCamelCase over HTTP (totalCost, \
                                        enrollments[0].validFrom)."},
                                    "description": {"type": "string", "description": "What is \
                                        wrong with it."},
                                },
                            },
                        },
                    },
                    "additionalProperties": true,
                },
            },
        },
    })
}
