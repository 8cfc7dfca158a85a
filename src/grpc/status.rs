//! The one table from application errors to gRPC status codes.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{app::AppError, domain::Violations};

/// Maps every application error to the status a client acts on:
///
/// | error | code | client should |
/// |---|---|---|
/// | malformed input | `INVALID_ARGUMENT` + `BadRequest` field violations | fix the named fields |
/// | unknown settlement, person | `NOT_FOUND` | check the key |
/// | claim key used for another claim | `ALREADY_EXISTS` | settle under a new claim number |
/// | outside the caller's role or hospital | `PERMISSION_DENIED` | use the right credentials |
/// | a limit on what the caller may do in a while | `RESOURCE_EXHAUSTED` | wait, or ask the fund |
/// | no policy for the region | `FAILED_PRECONDITION` + `PreconditionFailure` | ask the fund to configure it |
/// | storage failing, shutting down | `UNAVAILABLE` | retry the same request later |
/// | stored data damaged | `INTERNAL` | call the operator |
/// | not possible in this deployment | `FAILED_PRECONDITION` | do it the way the message says |
pub fn to_status(error: AppError) -> Status {
    let message = error.to_string();
    match error {
        AppError::Invalid(violations) => invalid(&violations),
        AppError::NotFound(_) => Status::not_found(message),
        AppError::AlreadyExists(_) => Status::already_exists(message),
        AppError::PermissionDenied(_) => Status::permission_denied(message),
        AppError::Exhausted(_) => Status::resource_exhausted(message),

        AppError::NoPolicy { region, .. } => Status::with_error_details(
            Code::FailedPrecondition,
            message.clone(),
            ErrorDetails::with_precondition_failure_violation("POLICY", region.as_str(), message),
        ),
        AppError::Unavailable(_) => Status::unavailable(message),
        AppError::Internal(_) => Status::internal(message),
        AppError::Unsupported(_) | AppError::Refused(_) => Status::failed_precondition(message),
    }
}

/// Most field violations listed in one status. Errors travel in HTTP/2
/// trailers, which clients cap at 16 KiB; a roster record can have over a
/// hundred bad fields, and an answer the client cannot read helps no one.
pub const VIOLATIONS_LISTED_MAX: usize = 50;
/// Field violations spelled out (field and reason) in the status message
/// itself, so a client that cannot decode the details still reads why.
const FIELDS_IN_MESSAGE_MAX: usize = 3;

/// `INVALID_ARGUMENT` carrying one `google.rpc.BadRequest` field violation
/// per bad field (the first [`VIOLATIONS_LISTED_MAX`]); the message names
/// the first few fields with their reasons and counts the rest.
pub fn invalid(violations: &Violations) -> Status {
    let total = violations.iter().count();
    let details = ErrorDetails::with_bad_request(
        violations
            .iter()
            .take(VIOLATIONS_LISTED_MAX)
            .map(|v| tonic_types::FieldViolation::new(v.field.clone(), v.description.clone()))
            .collect::<Vec<_>>(),
    );
    let named: Vec<String> = violations
        .iter()
        .take(FIELDS_IN_MESSAGE_MAX)
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect();
    let mut message = match total {
        1 => format!("invalid request: {}", named.join("")),
        _ => format!("invalid request: {total} bad fields: {}", named.join("; ")),
    };
    if total > FIELDS_IN_MESSAGE_MAX {
        message.push_str(&format!("; and {} more", total - FIELDS_IN_MESSAGE_MAX));
    }
    if total > VIOLATIONS_LISTED_MAX {
        message.push_str(&format!(
            " (details list the first {VIOLATIONS_LISTED_MAX})"
        ));
    }
    Status::with_error_details(Code::InvalidArgument, message, details)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves the worst request the limits allow (over a hundred bad
    /// fields) gives an error well inside the 16 KiB clients accept.
    #[test]
    fn errors_stay_small_however_many_fields_are_bad() {
        let mut violations = Violations::new();
        for i in 0..200 {
            violations.add(
                format!("person.enrollments[{i}].valid_from"),
                "must be a date written YYYY-MM-DD",
            );
        }
        let status = invalid(&violations);
        assert!(
            status.details().len() < 6 * 1024,
            "{}",
            status.details().len()
        );
        assert!(status.message().len() < 400, "{}", status.message());
        assert!(
            status
                .message()
                .ends_with("; and 197 more (details list the first 50)"),
            "{}",
            status.message()
        );
    }

    /// Proves the message gives each of the first few fields with its
    /// reason, so a client without the details still knows what to fix.
    #[test]
    fn the_message_names_fields_with_their_reasons() {
        let mut violations = Violations::new();
        violations.add("total_cost", "has more than two decimals (fen)");
        violations.add("in_scope_cost", "is negative");
        assert_eq!(
            invalid(&violations).message(),
            "invalid request: 2 bad fields: total_cost: has more than two decimals (fen); \
             in_scope_cost: is negative"
        );
        let mut one = Violations::new();
        one.add("reason", "required");
        assert_eq!(invalid(&one).message(), "invalid request: reason: required");
    }
}
