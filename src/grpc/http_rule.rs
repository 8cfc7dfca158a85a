//! The `google.api.http` rules of the protos, read from the descriptors:
//! which HTTP method and path template reach which RPC, and where the
//! request's fields come from. The build script reads them to write the
//! OpenAPI document; the HTTP/JSON gateway reads them to route. Only
//! `prost-reflect` is used here, so `build.rs` includes this file as is.

use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor, Value};

/// One HTTP binding of an RPC: a rule or one of its additional bindings.
#[derive(Clone, Debug)]
pub struct Binding {
    /// The HTTP method, upper case (`GET`, `POST`, ...).
    pub method: &'static str,
    /// The path template as written, such as `/v1/settlements/{settlement_id}`.
    pub path: String,
    /// The parsed template.
    pub template: Template,
    /// Where the body goes: `""` (no body), `"*"` (the whole request) or a
    /// top-level field of the request.
    pub body: String,
}

/// A path template: `/` segments, then an optional `:verb`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    /// The segments between slashes.
    pub segments: Vec<Segment>,
    /// The custom verb after the last `:`, as in `/v1/settlements:settle`.
    pub verb: Option<String>,
}

/// One segment of a path template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// Matches itself.
    Literal(String),
    /// Matches one segment and sets the request field at this dotted path.
    Field(String),
}

impl Template {
    /// Parses the subset of the template syntax this service uses: literal
    /// segments and single-segment variables (`{field}`, `{a.b}`,
    /// `{field=*}`). Anything else is refused, so an annotation the gateway
    /// could not serve fails the build instead of a request.
    pub fn parse(template: &str) -> Result<Template, String> {
        let refuse = |why: &str| Err(format!("path template {template:?}: {why}"));
        let Some(rest) = template.strip_prefix('/') else {
            return refuse("must start with /");
        };
        // The verb follows the last ':' outside braces.
        let (path, verb) = match rest.rfind(':') {
            Some(at) if !rest[at..].contains('}') && !rest[at..].contains('/') => {
                (&rest[..at], Some(rest[at + 1..].to_owned()))
            }
            _ => (rest, None),
        };
        let mut segments = Vec::new();
        for segment in path.split('/') {
            let parsed = match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(variable) => {
                    let field = variable.strip_suffix("=*").unwrap_or(variable);
                    if field.is_empty()
                        || !field
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
                    {
                        return refuse("only {field} and {field=*} variables are supported");
                    }
                    Segment::Field(field.to_owned())
                }
                None if segment.is_empty() || segment.contains(['{', '}', '*']) => {
                    return refuse("segments must be literals or {field} variables");
                }
                None => Segment::Literal(segment.to_owned()),
            };
            segments.push(parsed);
        }
        if verb.as_deref() == Some("") {
            return refuse("empty verb");
        }
        Ok(Template { segments, verb })
    }

    /// The fields bound by the path, in order.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|segment| match segment {
            Segment::Field(field) => Some(field.as_str()),
            Segment::Literal(_) => None,
        })
    }

    /// Matches a request path (still percent-encoded); returns each bound
    /// field with its decoded value.
    pub fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        let rest = path.strip_prefix('/')?;
        let rest = match &self.verb {
            Some(verb) => rest.strip_suffix(verb.as_str())?.strip_suffix(':')?,
            None => rest,
        };
        let parts: Vec<&str> = rest.split('/').collect();
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut bound = Vec::new();
        for (segment, part) in self.segments.iter().zip(parts) {
            match segment {
                Segment::Literal(literal) if literal == part => {}
                Segment::Literal(_) => return None,
                Segment::Field(_) if part.is_empty() => return None,
                Segment::Field(field) => bound.push((field.clone(), percent_decode(part)?)),
            }
        }
        Some(bound)
    }
}

/// Decodes `%XX` escapes; `None` when they do not make UTF-8.
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The HTTP bindings of `method` (none when it has no `google.api.http`).
pub fn bindings(pool: &DescriptorPool, method: &MethodDescriptor) -> Result<Vec<Binding>, String> {
    let Some(extension) = pool.get_extension_by_name("google.api.http") else {
        return Ok(Vec::new());
    };
    let options = method.options();
    if !options.has_extension(&extension) {
        return Ok(Vec::new());
    }
    let Value::Message(rule) = options.get_extension(&extension).into_owned() else {
        return Err(format!(
            "{}: google.api.http is not a message",
            method.full_name()
        ));
    };
    let mut found = vec![binding(method, &rule)?];
    if let Some(Value::List(more)) = rule
        .get_field_by_name("additional_bindings")
        .map(|v| v.into_owned())
    {
        for extra in more {
            if let Value::Message(extra) = extra {
                found.push(binding(method, &extra)?);
            }
        }
    }
    Ok(found)
}

fn binding(method: &MethodDescriptor, rule: &DynamicMessage) -> Result<Binding, String> {
    let text = |name: &str| match rule.get_field_by_name(name).as_deref() {
        Some(Value::String(text)) if rule.has_field_by_name(name) => Some(text.clone()),
        _ => None,
    };
    let (verb, path) = [
        ("GET", "get"),
        ("PUT", "put"),
        ("POST", "post"),
        ("DELETE", "delete"),
        ("PATCH", "patch"),
    ]
    .into_iter()
    .find_map(|(verb, field)| text(field).map(|path| (verb, path)))
    .ok_or_else(|| {
        format!(
            "{}: google.api.http needs get, put, post, delete or patch (custom is not served)",
            method.full_name()
        )
    })?;
    let template =
        Template::parse(&path).map_err(|why| format!("{}: {why}", method.full_name()))?;
    let body = text("body").unwrap_or_default();
    let input = method.input();
    for field in template.fields() {
        if field_at(&input, field).is_none() {
            return Err(format!(
                "{}: the path binds {field:?}, which {} does not have",
                method.full_name(),
                input.full_name()
            ));
        }
    }
    if !(body.is_empty() || body == "*" || input.get_field_by_name(&body).is_some()) {
        return Err(format!(
            "{}: body {body:?} is not a field of {}",
            method.full_name(),
            input.full_name()
        ));
    }
    Ok(Binding {
        method: verb,
        path,
        template,
        body,
    })
}

/// The field at a dotted path of `message`, through singular message fields.
pub fn field_at(
    message: &prost_reflect::MessageDescriptor,
    path: &str,
) -> Option<prost_reflect::FieldDescriptor> {
    let mut message = message.clone();
    let mut parts = path.split('.').peekable();
    while let Some(name) = parts.next() {
        let field = message.get_field_by_name(name)?;
        if parts.peek().is_none() {
            return Some(field);
        }
        match field.kind() {
            prost_reflect::Kind::Message(inner) if !field.is_list() => message = inner,
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves templates parse into literals, fields and a verb, and match
    /// only the paths they describe.
    #[test]
    fn templates_parse_and_match() {
        let settle = Template::parse("/v1/settlements:settle").unwrap();
        assert_eq!(settle.verb.as_deref(), Some("settle"));
        assert_eq!(settle.matches("/v1/settlements:settle"), Some(vec![]));
        assert_eq!(settle.matches("/v1/settlements:reverse"), None);
        assert_eq!(settle.matches("/v1/settlements"), None);

        let get = Template::parse("/v1/things/{thing.thing_id=*}").unwrap();
        assert_eq!(get.fields().collect::<Vec<_>>(), ["thing.thing_id"]);
        assert_eq!(
            get.matches("/v1/things/A%2Fb%58"),
            Some(vec![("thing.thing_id".to_owned(), "A/bX".to_owned())])
        );
        assert_eq!(get.matches("/v1/things/"), None);
        assert_eq!(get.matches("/v1/things/a/b"), None);

        for bad in ["v1/x", "/v1/{a=**}", "/v1/*", "/v1//x", "/v1/x:"] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
    }
}
