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

const STATUS_SCHEMA: &str = "google.rpc.Status";

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
                let path = openapi_path(&binding.template);
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
        },
        "servers": [{"url": "/"}],
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
        },
    }))
}

/// `/v1/persons/{person.patient_id}`: the template with plain variables.
fn openapi_path(template: &http_rule::Template) -> String {
    let mut path = String::new();
    for segment in &template.segments {
        path.push('/');
        match segment {
            http_rule::Segment::Literal(literal) => path.push_str(literal),
            http_rule::Segment::Field(field) => path.push_str(&format!("{{{field}}}")),
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
        parameters.push(json!({
            "name": field_path,
            "in": "path",
            "required": true,
            "schema": field_schema(&field, schemas),
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
            parameters.push(json!({
                "name": name,
                "in": "query",
                "required": false,
                "schema": field_schema(&field, schemas),
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
                json!({"required": true, "content": {"application/json": {"schema": field_schema(&field, schemas)}}}),
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
    operation.insert(
        "responses".into(),
        json!({
            "200": success,
            "default": {
                "description": "An error: the gRPC status as JSON, with its details \
                    (google.rpc.BadRequest field violations for 400 INVALID_ARGUMENT).",
                "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{STATUS_SCHEMA}")}}},
            },
        }),
    );
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
        for field in message.fields() {
            properties.insert(field.json_name().to_owned(), field_schema(&field, schemas));
        }
        let mut schema = json!({"type": "object", "properties": properties});
        if let Some(text) = comments(message.parent_file(), message.path()) {
            schema["description"] = json!(text);
        }
        schemas.insert(name.clone(), schema);
    }
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn field_schema(field: &FieldDescriptor, schemas: &mut BTreeMap<String, Value>) -> Value {
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
        Kind::Enum(descriptor) => json!({
            "type": "string",
            "enum": descriptor.values().map(|v| v.name().to_owned()).collect::<Vec<_>>(),
        }),
        Kind::Message(message) if field.is_map() => {
            let value = message
                .get_field_by_name("value")
                .expect("a map entry has a value");
            return json!({"type": "object", "additionalProperties": field_schema(&value, schemas)});
        }
        Kind::Message(message) => message_ref(&message, schemas),
    };
    if let Some(text) = comments(field.parent_file(), field.path()) {
        // A $ref may not have siblings in OpenAPI 3.0; wrap it.
        if item.get("$ref").is_some() {
            item = json!({"allOf": [item], "description": text});
        } else {
            item["description"] = json!(text);
        }
    }
    if field.is_list() {
        json!({"type": "array", "items": item})
    } else {
        item
    }
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
        "properties": {
            "code": {"type": "integer", "format": "int32"},
            "message": {"type": "string"},
            "details": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"@type": {"type": "string"}},
                    "additionalProperties": true,
                },
            },
        },
    })
}
