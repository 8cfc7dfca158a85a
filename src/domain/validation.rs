//! Collecting every bad field of a request, so a caller hears them all at once.

use std::fmt;

/// Why one value could not be parsed; the field name is added by whoever
/// knows it (see [`Violations::check`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(String);

impl ParseError {
    /// Describes what is wrong with a value, for the caller to read.
    pub fn new(description: impl Into<String>) -> Self {
        Self(description.into())
    }

    /// The description given to the caller.
    pub fn description(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

/// One thing wrong with one field, named by its wire path (`person.enrollments[0].valid_to`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field's path in the request, as the wire names it.
    pub field: String,
    /// What is wrong, in words a hospital integrator can act on.
    pub description: String,
}

/// Every field violation of one request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    /// Starts an empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `field` is wrong.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation {
            field: field.into(),
            description: description.into(),
        });
    }

    /// Keeps the value of a parse, or records its error against `field`.
    pub fn check<T>(&mut self, field: &str, parsed: Result<T, ParseError>) -> Option<T> {
        parsed.map_err(|error| self.add(field, error.0)).ok()
    }

    /// Takes over the violations of a nested message, prefixing their paths.
    pub fn nest(&mut self, prefix: &str, inner: Violations) {
        for violation in inner.0 {
            self.add(
                format!("{prefix}.{}", violation.field),
                violation.description,
            );
        }
    }

    /// Takes over the violations of a part checked on its own.
    pub fn extend(&mut self, other: Violations) {
        self.0.extend(other.0);
    }

    /// True when nothing was wrong.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The violations, in the order they were found.
    pub fn iter(&self) -> impl Iterator<Item = &FieldViolation> {
        self.0.iter()
    }

    /// `Ok(value())` when nothing was wrong, else every violation.
    pub fn finish<T>(self, value: impl FnOnce() -> Option<T>) -> Result<T, Violations> {
        if !self.is_empty() {
            return Err(self);
        }
        // Every field parsed, so the constructor has all it needs; a None here
        // is a bug in the caller's bookkeeping, reported rather than panicking.
        value().ok_or_else(|| {
            let mut violations = Violations::new();
            violations.add("", "the request could not be read");
            violations
        })
    }
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", v.field, v.description)?;
        }
        Ok(())
    }
}

impl std::error::Error for Violations {}
