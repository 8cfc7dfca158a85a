//! Who is calling, and what they may do.
//!
//! Callers present `authorization: Bearer <token>`. The configuration holds
//! only each token's SHA-256 digest, with the caller's role (and, for a
//! hospital, its `hospital_id`). Authentication hashes the presented token
//! and compares it with every configured digest in constant time; the
//! permission table below is a pure function of role and action.
//!
//! | role | may |
//! |---|---|
//! | `hospital` | quote, settle, reverse and read settlements, of its own `hospital_id` only |
//! | `insurer` | read annual usage, list settlements, read policies |
//! | `roster_admin` | write and read the roster |
//! | `auditor` | every read: settlements of any hospital, usage, lists, roster, policies, the audit trail |
//! | `operator` | the admin RPCs (snapshots), nothing else |

use std::{
    fmt,
    sync::{Arc, LazyLock},
};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::{HospitalId, RegionCode, Settlement};

/// What a caller is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// A hospital's billing system (HIS): settles its own claims.
    Hospital,
    /// An insurance platform: reads caps and settlements.
    Insurer,
    /// Civil affairs and its partners: keep the roster.
    RosterAdmin,
    /// Reads everything, changes nothing.
    Auditor,
    /// A medical-security caseworker: finds and handles assistance on
    /// application (依申请救助), such as the stays a late enrollment owes.
    Caseworker,
    /// A medical-security officer (医保经办): closes every hospital's day
    /// (reconciliation, exports) and reads the year's figures.
    Officer,
    /// A fund supervisor: reads the year's figures and the policy, and
    /// costs a proposed policy by simulation.
    Supervisor,
    /// Runs the service: the admin RPCs (snapshots) and `/metrics`, and
    /// nothing else.
    Operator,
    /// A monitoring system: scrapes `/metrics`, and nothing else.
    Metrics,
    /// Anyone, when the service runs without `[auth]` on a loopback address.
    Open,
}

impl Role {
    /// Reads the configuration's spelling.
    pub fn parse(text: &str) -> Result<Role, String> {
        Ok(match text {
            "hospital" => Role::Hospital,
            "insurer" => Role::Insurer,
            "roster_admin" => Role::RosterAdmin,
            "auditor" => Role::Auditor,
            "caseworker" => Role::Caseworker,
            "officer" => Role::Officer,
            "supervisor" => Role::Supervisor,
            "operator" => Role::Operator,
            "metrics" => Role::Metrics,
            other => {
                return Err(format!(
                    "unknown role {other:?}: hospital, insurer, roster_admin, auditor, caseworker, \
                     officer, supervisor, operator or metrics"
                ));
            }
        })
    }

    /// The configuration's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Hospital => "hospital",
            Role::Insurer => "insurer",
            Role::RosterAdmin => "roster_admin",
            Role::Auditor => "auditor",
            Role::Caseworker => "caseworker",
            Role::Officer => "officer",
            Role::Supervisor => "supervisor",
            Role::Operator => "operator",
            Role::Metrics => "metrics",
            Role::Open => "open",
        }
    }
}

/// An authenticated caller, as the audit trail names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// Unique and stable: `token:` and the first 16 hexadecimal digits of
    /// the token's digest (`open` on an open service). What the audit trail
    /// is searched by.
    pub id: String,
    /// A name for logs, unique among the configured tokens: the configured
    /// one, else role, hospital and digest prefix.
    pub name: String,
    /// What the caller may do.
    pub role: Role,
    /// The hospital a `hospital` caller acts for.
    pub hospital_id: Option<HospitalId>,
    /// The regions whose enrolled patients the caller may see; empty for
    /// every region. A city covers its counties, a province its cities.
    pub regions: Vec<RegionCode>,
}

impl Principal {
    /// The caller of a service running open on loopback.
    pub fn open() -> Principal {
        Principal {
            id: "open".into(),
            name: "open-loopback".into(),
            role: Role::Open,
            hospital_id: None,
            regions: Vec::new(),
        }
    }

    /// The id of the holder of the token with `digest`.
    pub fn id_of(digest: TokenDigest) -> String {
        format!("token:{}", &digest.to_hex()[..16])
    }

    /// True when the caller may see patients enrolled in `region`.
    pub fn sees(&self, region: RegionCode) -> bool {
        self.regions.is_empty() || self.regions.iter().any(|r| r.covers(region))
    }

    /// True when the caller may see `settlement`: its hospital's, for a
    /// hospital; one whose patient was enrolled (when it was settled) in the
    /// caller's regions, for a caller limited to regions.
    pub fn sees_settlement(&self, settlement: &Settlement) -> bool {
        let hospital = &settlement.claim.key().hospital_id;
        match (self.role, &self.hospital_id) {
            (Role::Hospital, Some(own)) if own != hospital => false,
            _ if self.regions.is_empty() => true,
            _ => settlement
                .outcome
                .cap
                .as_ref()
                .is_some_and(|cap| self.sees(cap.region)),
        }
    }
}

impl Principal {
    /// The name kept on the records this caller makes (`settled_by`,
    /// `reversed_by`): the token's configured name, `open` in open mode.
    pub fn recorded_name(&self) -> String {
        match self.role {
            Role::Open => "open".to_owned(),
            _ => self.name.clone(),
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// Who is calling and from where: what each use case decides on (the
/// principal) and what its audit record says (the origin).
#[derive(Clone, Debug)]
pub struct Caller {
    /// The authenticated principal.
    pub principal: Arc<Principal>,
    /// Where the call came from, for the audit trail.
    pub origin: crate::audit::Origin,
}

impl Caller {
    /// A caller with no connection of its own (a tool in the same process,
    /// a test): its records name only the principal and `call`.
    pub fn local(principal: Arc<Principal>, call: &str) -> Caller {
        Caller {
            origin: crate::audit::Origin {
                principal: principal.id.clone(),
                name: principal.recorded_name(),
                role: principal.role.as_str().to_owned(),
                peer: None,
                client_cert: None,
                call: call.to_owned(),
            },
            principal,
        }
    }
}

impl std::ops::Deref for Caller {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.principal
    }
}

/// A token's SHA-256 digest: what the configuration holds instead of the token.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    /// The digest of a token as presented.
    pub fn of(token: &str) -> TokenDigest {
        TokenDigest(Sha256::digest(token.as_bytes()).into())
    }

    /// Reads 64 hexadecimal digits.
    pub fn parse(hex: &str) -> Result<TokenDigest, String> {
        let bytes = hex.as_bytes();
        if bytes.len() != 64 || !bytes.iter().all(u8::is_ascii_hexdigit) {
            return Err("sha256 must be 64 hexadecimal digits".into());
        }
        let mut digest = [0u8; 32];
        for (i, pair) in bytes.chunks(2).enumerate() {
            let text = std::str::from_utf8(pair).map_err(|e| e.to_string())?;
            digest[i] = u8::from_str_radix(text, 16).map_err(|e| e.to_string())?;
        }
        Ok(TokenDigest(digest))
    }

    /// The 64 hexadecimal digits.
    pub fn to_hex(self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}…", &self.to_hex()[..8])
    }
}

/// One configured token.
#[derive(Clone, Debug)]
pub struct TokenEntry {
    /// The token's digest.
    pub digest: TokenDigest,
    /// Who presents it.
    pub principal: Arc<Principal>,
}

/// The one caller of an open service, shared by every request.
static OPEN: LazyLock<Arc<Principal>> = LazyLock::new(|| Arc::new(Principal::open()));

/// Longest token accepted, in bytes: anything longer is refused unhashed.
const TOKEN_LEN_MAX: usize = 256;

/// How callers are recognised.
#[derive(Clone, Debug)]
pub enum Access {
    /// No `[auth]` section: every caller is [`Principal::open`]. Allowed only
    /// on a loopback address.
    Open,
    /// Only holders of configured tokens.
    Tokens(Vec<TokenEntry>),
}

/// Why a caller was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No credentials, or ones no configured token matches.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// Known caller, action outside its role or hospital.
    #[error("{0}")]
    PermissionDenied(String),
}

impl Access {
    /// Finds the caller presenting `authorization` (the header's value, if
    /// any). Every configured digest is compared, in constant time, whatever
    /// matches, so timing tells nothing about the configured tokens.
    pub fn authenticate(&self, authorization: Option<&[u8]>) -> Result<Arc<Principal>, Refusal> {
        let entries = match self {
            Access::Open => return Ok(Arc::clone(&OPEN)),
            Access::Tokens(entries) => entries,
        };
        let header = authorization.ok_or(Refusal::Unauthenticated(
            "missing authorization: send \"authorization: Bearer <token>\"",
        ))?;
        let token = header
            .strip_prefix(b"Bearer ")
            .filter(|t| !t.is_empty() && t.len() <= TOKEN_LEN_MAX)
            .and_then(|t| std::str::from_utf8(t).ok())
            .ok_or(Refusal::Unauthenticated(
                "authorization must be \"Bearer <token>\"",
            ))?;
        let presented = TokenDigest::of(token);
        let mut found = None;
        for entry in entries {
            if bool::from(presented.0.ct_eq(&entry.digest.0)) {
                found = Some(&entry.principal);
            }
        }
        found
            .cloned()
            .ok_or(Refusal::Unauthenticated("unknown token"))
    }
}

/// Something a caller asks to do, with the hospital it concerns.
#[derive(Clone, Copy, Debug)]
pub enum Action<'a> {
    /// PreSettle for this hospital.
    Quote(&'a HospitalId),
    /// Settle for this hospital.
    Settle(&'a HospitalId),
    /// Reverse a settlement of this hospital.
    Reverse(&'a HospitalId),
    /// GetSettlement: which settlements the caller sees is
    /// [`Principal::sees_settlement`]; the others are answered as missing.
    ReadSettlements,
    /// GetAnnualUsage.
    ReadUsage,
    /// ListSettlements of a patient.
    ListSettlements,
    /// GetPolicy.
    ReadPolicy,
    /// UpsertPerson.
    WriteRoster,
    /// GetPerson.
    ReadRoster,
    /// The admin RPCs: SaveSnapshot.
    Administer,
    /// ReconcileDay and ListDaySettlements of this hospital.
    Reconcile(&'a HospitalId),
    /// ExportSettlements.
    Export,
    /// ListReferrals.
    ListReferrals,
    /// ListAuditRecords: the audit trail.
    ReadAudit,
    /// SimulatePolicy: replay a year under a proposed policy book.
    SimulatePolicy,
    /// ListRetroactiveCandidates: settled stays the roster now owes more.
    ListRetroactiveCandidates,
    /// SubmitApplication: settle a stay on application.
    SubmitApplication,
    /// Approve, reject or withdraw an application (four eyes are the
    /// ledger's to check: it knows who submitted).
    DecideApplication,
    /// ListApplications: the applications of a region, a caseworker's queue.
    ListApplications,
    /// GetYearStatistics: a region's figures of a year.
    ReadStatistics,
    /// Scrape `/metrics`: counts and timings, no personal data.
    ReadMetrics,
}

/// The permission table: may `principal` do `action`?
pub fn authorize(principal: &Principal, action: Action<'_>) -> Result<(), Refusal> {
    use Action::*;
    let allowed = match (principal.role, action) {
        (Role::Open, _) => true,
        (Role::Hospital, ReadSettlements) => true,
        (Role::Hospital, Quote(h) | Settle(h) | Reverse(h) | Reconcile(h)) => {
            if principal.hospital_id.as_ref() != Some(h) {
                return Err(Refusal::PermissionDenied(format!(
                    "{principal} acts for hospital {}, not {h}",
                    principal
                        .hospital_id
                        .as_ref()
                        .map_or("(none)", |id| id.as_str())
                )));
            }
            true
        }
        (Role::Insurer, ReadUsage | ListSettlements | ReadPolicy) => true,
        (Role::RosterAdmin, WriteRoster | ReadRoster | ListReferrals) => true,
        (Role::Operator, Administer | ReadMetrics) => true,
        (Role::Metrics, ReadMetrics) => true,
        (
            Role::Caseworker,
            ListRetroactiveCandidates
            | ReadPolicy
            | ReadSettlements
            | SubmitApplication
            | DecideApplication
            | ListApplications,
        ) => true,
        (
            Role::Officer,
            ReadSettlements | ReadUsage | ListSettlements | ReadPolicy | Reconcile(_) | Export
            | ListReferrals | ReadStatistics,
        ) => true,
        (Role::Supervisor, ReadPolicy | SimulatePolicy | ReadStatistics) => true,
        (
            Role::Auditor,
            ReadSettlements
            | ReadUsage
            | ListSettlements
            | ReadPolicy
            | ReadRoster
            | Reconcile(_)
            | Export
            | ListReferrals
            | ReadAudit
            | SimulatePolicy
            | ListRetroactiveCandidates
            | ListApplications
            | ReadStatistics,
        ) => true,
        _ => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(Refusal::PermissionDenied(format!(
            "the {} role may not {}",
            principal.role.as_str(),
            action.describe()
        )))
    }
}

impl Action<'_> {
    fn describe(&self) -> &'static str {
        match self {
            Action::Quote(_) => "quote claims",
            Action::Settle(_) => "settle claims",
            Action::Reverse(_) => "reverse settlements",
            Action::ReadSettlements => "read settlements",
            Action::ReadUsage => "read annual usage",
            Action::ListSettlements => "list settlements",
            Action::ReadPolicy => "read policies",
            Action::WriteRoster => "change the roster",
            Action::ReadRoster => "read the roster",
            Action::Administer => "call the admin RPCs",
            Action::Reconcile(_) => "reconcile a hospital's day",
            Action::Export => "export settlements",
            Action::ListReferrals => "list referrals",
            Action::ReadAudit => "read the audit trail",
            Action::SimulatePolicy => "simulate a policy",
            Action::ListRetroactiveCandidates => "list retroactive candidates",
            Action::SubmitApplication => "submit applications",
            Action::DecideApplication => "decide applications",
            Action::ListApplications => "list applications",
            Action::ReadStatistics => "read statistics",
            Action::ReadMetrics => "read the metrics",
        }
    }
}

/// A fresh random token: 32 random bytes as 64 hexadecimal digits, prefixed
/// so that one found in the wild is recognisable.
pub fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("mdas_{}", TokenDigest(bytes).to_hex()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hospital(id: &str) -> HospitalId {
        HospitalId::parse(id).unwrap()
    }

    fn principal(role: Role, hospital_id: Option<&str>) -> Principal {
        Principal {
            id: "token:test".into(),
            name: "test".into(),
            role,
            hospital_id: hospital_id.map(hospital),
            regions: Vec::new(),
        }
    }

    fn tokens() -> Access {
        Access::Tokens(vec![
            TokenEntry {
                digest: TokenDigest::of("alpha"),
                principal: Arc::new(principal(Role::Hospital, Some("H001"))),
            },
            TokenEntry {
                digest: TokenDigest::of("beta"),
                principal: Arc::new(principal(Role::Auditor, None)),
            },
        ])
    }

    #[test]
    fn tokens_are_recognised_by_digest_only() {
        let access = tokens();
        assert_eq!(
            access.authenticate(Some(b"Bearer alpha")).unwrap().role,
            Role::Hospital
        );
        assert_eq!(
            access.authenticate(Some(b"Bearer beta")).unwrap().role,
            Role::Auditor
        );
        for refused in [
            None,
            Some(&b"Bearer gamma"[..]),
            Some(b"alpha"),
            Some(b"Bearer "),
            Some(b"Basic alpha"),
            Some(&[0xff; 300][..]),
        ] {
            assert!(
                matches!(
                    access.authenticate(refused),
                    Err(Refusal::Unauthenticated(_))
                ),
                "{refused:?}"
            );
        }
        assert_eq!(*Access::Open.authenticate(None).unwrap(), Principal::open());
    }

    #[test]
    fn digests_round_trip_through_hex() {
        let digest = TokenDigest::of("alpha");
        assert_eq!(TokenDigest::parse(&digest.to_hex()).unwrap(), digest);
        assert!(TokenDigest::parse("abc").is_err());
        assert!(TokenDigest::parse(&"g".repeat(64)).is_err());
        let token = new_token().unwrap();
        assert!(token.starts_with("mdas_") && token.len() == 69);
        assert_ne!(token, new_token().unwrap());
    }

    #[test]
    fn the_permission_table() {
        let (own, other) = (hospital("H001"), hospital("H002"));
        let h001 = principal(Role::Hospital, Some("H001"));
        let insurer = principal(Role::Insurer, None);
        let roster = principal(Role::RosterAdmin, None);
        let auditor = principal(Role::Auditor, None);
        let allowed = |p: &Principal, a| authorize(p, a).is_ok();
        for action in [
            Action::Quote(&own),
            Action::Settle(&own),
            Action::Reverse(&own),
            Action::ReadSettlements,
        ] {
            assert!(allowed(&h001, action), "{action:?}");
            assert!(
                !allowed(&insurer, action) && !allowed(&roster, action),
                "{action:?}"
            );
        }
        for action in [
            Action::Quote(&other),
            Action::Settle(&other),
            Action::Reverse(&other),
        ] {
            assert!(
                matches!(authorize(&h001, action), Err(Refusal::PermissionDenied(m)) if m.contains("H002"))
            );
        }
        for action in [
            Action::ReadUsage,
            Action::ListSettlements,
            Action::ReadPolicy,
        ] {
            assert!(
                allowed(&insurer, action) && allowed(&auditor, action) && !allowed(&h001, action)
            );
        }
        assert!(allowed(&roster, Action::WriteRoster) && allowed(&roster, Action::ReadRoster));
        assert!(!allowed(&auditor, Action::WriteRoster) && allowed(&auditor, Action::ReadRoster));
        assert!(allowed(&auditor, Action::ReadSettlements));
        assert!(
            !allowed(&auditor, Action::Settle(&own)) && !allowed(&auditor, Action::Quote(&own))
        );
        assert!(allowed(&Principal::open(), Action::WriteRoster));
    }
}
