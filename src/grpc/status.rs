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
/// | no policy for the region | `FAILED_PRECONDITION` + `PreconditionFailure` | ask the fund to configure it |
/// | storage failing, shutting down | `UNAVAILABLE` | retry the same request later |
/// | stored data damaged | `INTERNAL` | call the operator |
pub fn to_status(error: AppError) -> Status {
    let message = error.to_string();
    match error {
        AppError::Invalid(violations) => invalid(&violations),
        AppError::NotFound(_) => Status::not_found(message),
        AppError::AlreadyExists(_) => Status::already_exists(message),
        AppError::NoPolicy { region, .. } => Status::with_error_details(
            Code::FailedPrecondition,
            message.clone(),
            ErrorDetails::with_precondition_failure_violation("POLICY", region.as_str(), message),
        ),
        AppError::Unavailable(_) => Status::unavailable(message),
        AppError::Internal(_) => Status::internal(message),
    }
}

/// `INVALID_ARGUMENT` carrying one `google.rpc.BadRequest` field violation
/// per bad field.
pub fn invalid(violations: &Violations) -> Status {
    let details = ErrorDetails::with_bad_request(
        violations
            .iter()
            .map(|v| tonic_types::FieldViolation::new(v.field.clone(), v.description.clone()))
            .collect::<Vec<_>>(),
    );
    Status::with_error_details(
        Code::InvalidArgument,
        format!("invalid request: {violations}"),
        details,
    )
}
