//! The language of the settlement: checked values that the rest of the
//! service takes for granted.
//!
//! Every type here is parsed once, at the edge, by a `parse` function that
//! returns either the value or a description of what is wrong; its fields
//! stay private so no unchecked value can be built elsewhere. Nothing here
//! touches the network, the disk or the clock.

mod claim;
pub mod date;
mod day;
mod diagnosis;
mod money;
mod person;
mod policy;
mod region;
pub(crate) mod resident_id;
mod settlement;
mod text;
mod validation;
pub mod wire_format;

pub use claim::{Claim, ClaimInput, ClaimKey, ClaimKind, ClaimKindSent, DIAGNOSIS_CODES_MAX};
pub use date::{Date, Year};
pub use day::{BusinessDay, UtcOffset};
pub use diagnosis::{CodePattern, DiagnosisCode};
pub use money::Money;
#[cfg(test)]
pub(crate) use person::dibao_since_2020;
pub use person::{
    ENROLLMENTS_MAX, Enrollment, EnrollmentInput, EnrollmentKind, ExitKind, Person, PersonInput,
    PsychiatricGrade,
};
pub use policy::{
    ASSISTANCE_RATIO_FLOOR, BANDS_MAX, Band, CAP_FRACTION_FLOOR, ClassTerms, Disease, Floors,
    GracePeriods, Policy, PolicyBook, PolicyError, PolicyId, PolicyTerms,
    REFERRAL_THRESHOLD_DEFAULT, Ratio, Tilt, builtin_catalogue,
};
pub use region::RegionCode;
pub use resident_id::ResidentId;
pub use settlement::{
    Application, ApplicationState, Approval, BandLine, Breakdown, CapState, Category, Channel,
    Closing, Consumed, Exact, IneligibleReason, Outcome, PatientYear, Quote, ReferralReason,
    Reversal, Settlement, SettlementId, SettlementStatus, Timestamp, TopUp, Usage,
};
pub use text::{ClaimId, HospitalId, PaymentRef, PersonName, Reason};
pub use validation::{FieldViolation, ParseError, Violations};
