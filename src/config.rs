//! The configuration file (`--config FILE`): local policies by region and
//! year, the tokens callers authenticate with, TLS files and limits. Every
//! section is optional; without a file the built-in policy serves, open on
//! loopback only.
//!
//! ```toml
//! [[policy]]
//! region_code = "320600"          # a city, or one of its counties (3206xx)
//! year = 2025                     # first cap year it applies to
//! assistance_ratio = "0.70"       # at least 0.70
//! cap_fraction = "0.50"           # at least 0.50
//! basic_insurance_annual_cap = "300000.00"
//! gradual_exit_grace_months = 3   # optional, default 3
//! left_poverty_grace_months = 24  # optional, default 24
//! referral_threshold = "10000.00" # optional: patient payments in a year that refer to temporary assistance
//!
//! [[policy.disease]]              # optional: default is the seed catalogue
//! name = "malignant tumour"
//! codes = ["C00-C97"]
//!
//! # Optional, the 2021 framework (docs/POLICY.md): classes with deductibles
//! # and ratio bands, an outpatient sub-cap, tilted assistance, a city's floors.
//! # outpatient_chronic_cap = "20000.00"   (in [[policy]])
//! [[policy.class]]
//! kind = "低保边缘"                # or low_income_margin
//! condition_required = false
//! deductible = "5000.00"
//! ratio = "0.60"                  # or [[policy.class.band]] up_to / ratio
//! [policy.tilt]                   # of the last [[policy]]
//! threshold = "30000.00"
//! ratio = "0.50"
//! cap = "50000.00"
//! [[floors]]                      # a city's own floors (never below the seed's in 3206xx)
//! region_code = "320500"
//! ratio_min = "0.70"
//! cap_fraction_min = "0.25"
//!
//! [[auth.tokens]]                 # with [auth], every RPC but health and reflection needs a token
//! sha256 = "…64 hex digits…"      # the token's digest, never the token (`medassist token new`)
//! role = "hospital"               # hospital | insurer | roster_admin | auditor | caseworker | officer | supervisor | operator | metrics
//! hospital_id = "H001"            # hospitals only
//! name = "HIS of hospital H001"   # optional, for audit logs
//!
//! [tls]
//! cert = "/etc/medassist/server.pem"
//! key = "/etc/medassist/server.key"
//! client_ca = "/etc/medassist/hospitals-ca.pem"   # optional: require client certificates
//!
//! [limits]                        # every key optional; defaults shown
//! request_timeout = "30s"
//! message_bytes_max = 65536
//! concurrent_requests_max = 1024
//! page_size_max = 500
//! patients_per_hour_max = 600     # distinct patients one hospital token may quote or settle per hour
//! connections_max = 1024          # open connections, both ports; at it a new one sheds the oldest without a request
//! connections_per_source_max = 256  # open connections from one address (IPv6: one /64)
//! handshake_timeout = "10s"       # TLS and HTTP/2 preface must complete within it
//! idle_timeout = "5m"             # a connection with no open stream is closed after it
//! keepalive_interval = "60s"      # HTTP/2 PING after this long without a frame from the peer
//! keepalive_timeout = "20s"       # no PING answer within it: the peer is dead, close
//! write_stall_timeout = "30s"     # the peer reads nothing for this long: close
//! streams_per_connection_max = 256
//! header_list_bytes_max = 16384
//!
//! [reconciliation]
//! utc_offset = "+08:00"           # the fund's zone: business days turn at its midnight
//!
//! [audit]
//! retention_days = 180            # audit records kept at least this long; never below 180
//! [backup]
//! recipients = ["age1…"]          # the fund's recovery keys: snapshots leave sealed to them
//! ```
//!
//! The connection limits act before authentication (see [`crate::edge`]):
//! they are what stands between an unauthenticated peer and the server's
//! memory and file descriptors. `connections_per_source_max` is sized for
//! the largest client behind one address: a large hospital's NAT, behind
//! which its billing desks, self-service kiosks and HIS servers, on the
//! order of 150 to 200 connections at a peak, share one public address.
//! 256 leaves them room while one address can take only a quarter of the
//! default 1,024 slots.
//!
//! Numbers that are money or shares are strings, so no value ever passes
//! through a floating-point number.
//!
//! With `[backup]`, every snapshot the server streams is sealed with age to
//! those recipients (see [`crate::seal`]), and none is sent unencrypted, to
//! any caller: the operator who takes it never holds a readable copy.

use std::{
    collections::BTreeMap,
    ops::RangeInclusive,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use serde::Deserialize;

use crate::{
    auth::{Access, Principal, Role, TokenDigest, TokenEntry},
    domain::{
        BANDS_MAX, Band, ClassTerms, CodePattern, Disease, EnrollmentKind, Floors, GracePeriods,
        HospitalId, Money, ParseError, Policy, PolicyBook, PolicyTerms, REFERRAL_THRESHOLD_DEFAULT,
        Ratio, RegionCode, Tilt, UtcOffset, Year, builtin_catalogue,
    },
    seal::Recipients,
};

/// Largest configuration file read, in bytes.
const FILE_BYTES_MAX: u64 = 4 * 1024 * 1024;
/// Most policy entries one file may hold.
const POLICIES_MAX: usize = 10_000;
/// Most tokens one file may list.
const TOKENS_MAX: usize = 10_000;

/// Why the configuration cannot be used; the service refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file named by `--config`.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The file is too large to be a configuration file.
    #[error("{path} is larger than {FILE_BYTES_MAX} bytes")]
    TooLarge {
        /// The file named by `--config`.
        path: PathBuf,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("invalid configuration file: {0}")]
    Syntax(#[from] toml::de::Error),
    /// One entry breaks a rule; the message names it.
    #[error("{entry}: {message}")]
    Entry {
        /// Which entry, such as `policy[2] (region 320601, year 2025)` or `auth.tokens[0]`.
        entry: String,
        /// What is wrong with it.
        message: String,
    },
    /// The file as a whole breaks a rule.
    #[error("invalid configuration file: {0}")]
    File(String),
}

/// Everything the configuration file sets.
#[derive(Clone, Debug)]
pub struct Config {
    /// The policies, by region and year.
    pub policies: PolicyBook,
    /// Who may call: open (loopback only) or configured tokens.
    pub access: Access,
    /// Certificate and key to serve TLS with, and the CA client certificates must chain to.
    pub tls: Option<TlsFiles>,
    /// Limits on what callers can make the server do.
    pub limits: Limits,
    /// How settlements are assigned to business days.
    pub reconciliation: Reconciliation,
    /// How long the audit trail is kept.
    pub audit: AuditSettings,
    /// Who snapshots are sealed to.
    pub backup: Backup,
}

/// Fewest days audit records are kept: MLPS 2.0 level 3 asks for six months.
pub const AUDIT_RETENTION_DAYS_MIN: u32 = 180;

/// The `[audit]` section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditSettings {
    /// Records answered longer ago than this are pruned (whole segments or
    /// rows at a time), never sooner than [`AUDIT_RETENTION_DAYS_MIN`].
    pub retention_days: u32,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            retention_days: AUDIT_RETENTION_DAYS_MIN,
        }
    }
}

/// The `[backup]` section.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Backup {
    /// The fund's recovery keys (age X25519 public keys). When any is set,
    /// every snapshot is streamed sealed to them, and a request for an
    /// unencrypted one is refused; when none is, snapshots are plain.
    pub recipients: Recipients,
}

/// The `[reconciliation]` section.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reconciliation {
    /// The fund's zone: a settlement belongs to the day of its `settled_at`
    /// there, a reversal to the day of its `reversed_at`.
    pub utc_offset: UtcOffset,
}

impl Default for Config {
    /// The built-in policy, open on loopback, no TLS, default limits.
    fn default() -> Self {
        Config {
            policies: PolicyBook::builtin(),
            access: Access::Open,
            tls: None,
            limits: Limits::default(),
            reconciliation: Reconciliation::default(),
            audit: AuditSettings::default(),
            backup: Backup::default(),
        }
    }
}

/// PEM files for TLS.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The server's certificate chain.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by this CA (mTLS).
    pub client_ca: Option<PathBuf>,
}

/// Limits on what one caller can make the server do, each with a safe default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest a request may take before it is answered `CANCELLED`.
    pub request_timeout: Duration,
    /// Largest request message accepted, in bytes.
    pub message_bytes_max: usize,
    /// Most requests served at once; beyond it `RESOURCE_EXHAUSTED` at once.
    pub concurrent_requests_max: usize,
    /// Most settlements in one page of `ListSettlements`.
    pub page_size_max: usize,
    /// Most distinct patients one hospital token may quote or settle in any
    /// hour: a billing desk settles whoever is discharged there, but cannot
    /// walk the roster. The default is several times the busiest hour of a
    /// large hospital (a 3,000-bed hospital discharges about 600 patients a
    /// day, at most about 150 in its busiest hour, each quoted and settled).
    pub patients_per_hour_max: usize,
    /// Most connections open at once on both ports together (TLS or not,
    /// handshaking or serving), so a flood cannot exhaust file descriptors
    /// or memory. At it, a new connection sheds the oldest one that has
    /// not sent a request yet, or is closed at once if every connection
    /// has, so half-open connections cannot lock new clients out.
    pub connections_max: usize,
    /// Most connections open at once from one source: an IPv4 address or
    /// an IPv6 /64. Beyond it the source's new connections are closed at
    /// once, so one address cannot take every slot. The default fits a
    /// large hospital behind one NAT (see the module documentation).
    pub connections_per_source_max: usize,
    /// Longest a new connection may take to complete its TLS handshake and
    /// send the HTTP/2 client preface (magic and SETTINGS frame). A real
    /// client needs a few round trips; a silent peer is closed at this point.
    pub handshake_timeout: Duration,
    /// Longest a connection may stay open with no request in progress. Its
    /// close is invisible to gRPC clients, which reconnect on their next call.
    pub idle_timeout: Duration,
    /// How long the server waits without a frame from the peer before it
    /// sends an HTTP/2 PING. Every HTTP/2 client answers pings on its own.
    pub keepalive_interval: Duration,
    /// How long the server waits for a PING's answer before it closes the
    /// connection as dead.
    pub keepalive_timeout: Duration,
    /// Longest the server's writes to one connection may make no progress
    /// (the peer reads nothing) before the connection is closed.
    pub write_stall_timeout: Duration,
    /// Most HTTP/2 streams (requests) one connection may have open at once.
    pub streams_per_connection_max: u32,
    /// Largest header list (all request headers, decoded) accepted, in bytes.
    pub header_list_bytes_max: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_timeout: Duration::from_secs(30),
            message_bytes_max: 64 * 1024,
            concurrent_requests_max: 1024,
            page_size_max: 500,
            patients_per_hour_max: 600,
            connections_max: 1024,
            connections_per_source_max: 256,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            keepalive_interval: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(20),
            write_stall_timeout: Duration::from_secs(30),
            streams_per_connection_max: 256,
            header_list_bytes_max: 16 * 1024,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShape {
    #[serde(default)]
    policy: Vec<PolicyEntry>,
    #[serde(default)]
    floors: Vec<FloorsEntry>,
    auth: Option<AuthShape>,
    tls: Option<TlsFiles>,
    limits: Option<LimitsShape>,
    reconciliation: Option<ReconciliationShape>,
    audit: Option<AuditShape>,
    backup: Option<BackupShape>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditShape {
    retention_days: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BackupShape {
    recipients: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReconciliationShape {
    utc_offset: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyEntry {
    region_code: String,
    year: i32,
    assistance_ratio: String,
    cap_fraction: String,
    basic_insurance_annual_cap: String,
    gradual_exit_grace_months: Option<u32>,
    left_poverty_grace_months: Option<u32>,
    referral_threshold: Option<String>,
    disease: Option<Vec<DiseaseEntry>>,
    outpatient_chronic_cap: Option<String>,
    tilt: Option<TiltEntry>,
    class: Option<Vec<ClassEntry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassEntry {
    kind: String,
    condition_required: bool,
    deductible: Option<String>,
    ratio: Option<String>,
    band: Option<Vec<BandEntry>>,
    annual_cap: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BandEntry {
    up_to: Option<String>,
    ratio: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TiltEntry {
    threshold: String,
    ratio: String,
    cap: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FloorsEntry {
    region_code: String,
    ratio_min: String,
    cap_fraction_min: String,
    deductible_max: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DiseaseEntry {
    name: String,
    codes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthShape {
    #[serde(default)]
    tokens: Vec<TokenShape>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenShape {
    sha256: String,
    role: String,
    hospital_id: Option<String>,
    name: Option<String>,
    regions: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsShape {
    request_timeout: Option<String>,
    message_bytes_max: Option<usize>,
    concurrent_requests_max: Option<usize>,
    page_size_max: Option<usize>,
    patients_per_hour_max: Option<usize>,
    connections_max: Option<usize>,
    connections_per_source_max: Option<usize>,
    handshake_timeout: Option<String>,
    idle_timeout: Option<String>,
    keepalive_interval: Option<String>,
    keepalive_timeout: Option<String>,
    write_stall_timeout: Option<String>,
    streams_per_connection_max: Option<usize>,
    header_list_bytes_max: Option<usize>,
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let read_error = |source| ConfigError::Read {
            path: path.to_owned(),
            source,
        };
        let size = std::fs::metadata(path).map_err(read_error)?.len();
        if size > FILE_BYTES_MAX {
            return Err(ConfigError::TooLarge {
                path: path.to_owned(),
            });
        }
        Config::parse(&std::fs::read_to_string(path).map_err(read_error)?)
    }

    /// Checks configuration text. Every policy must meet the city's floors.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let file: FileShape = toml::from_str(text)?;
        Ok(Config {
            policies: policies(file.policy, file.floors)?,
            access: match file.auth {
                None => Access::Open,
                Some(auth) => Access::Tokens(tokens(auth.tokens)?),
            },
            tls: file.tls,
            limits: file.limits.map(limits).transpose()?.unwrap_or_default(),
            reconciliation: file
                .reconciliation
                .map(reconciliation)
                .transpose()?
                .unwrap_or_default(),
            audit: audit(file.audit)?,
            backup: file.backup.map(backup).transpose()?.unwrap_or_default(),
        })
    }
}

/// Checks the policy book a configuration text states, as [`Config::parse`]
/// does (its `[[policy]]` and `[[floors]]`; the other tables are read for
/// their shape and ignored): a proposal to simulate. A text that states no
/// policy is refused rather than read as the built-in one.
pub fn policy_book(text: &str) -> Result<PolicyBook, ConfigError> {
    let file: FileShape = toml::from_str(text)?;
    if file.policy.is_empty() {
        return Err(ConfigError::File("states no [[policy]]".into()));
    }
    policies(file.policy, file.floors)
}

fn audit(shape: Option<AuditShape>) -> Result<AuditSettings, ConfigError> {
    let retention_days = shape
        .and_then(|s| s.retention_days)
        .unwrap_or(AUDIT_RETENTION_DAYS_MIN);
    if !(AUDIT_RETENTION_DAYS_MIN..=36_500).contains(&retention_days) {
        return Err(ConfigError::File(format!(
            "audit.retention_days must be {AUDIT_RETENTION_DAYS_MIN} to 36500 (MLPS level 3 keeps \
             audit records at least six months), not {retention_days}"
        )));
    }
    Ok(AuditSettings { retention_days })
}

fn backup(shape: BackupShape) -> Result<Backup, ConfigError> {
    let refuse = |message: String| ConfigError::Entry {
        entry: "backup.recipients".into(),
        message,
    };
    if shape.recipients.is_empty() {
        return Err(refuse(
            "lists no recipient: add the fund's age1… key, or remove [backup]".into(),
        ));
    }
    Ok(Backup {
        recipients: Recipients::parse(&shape.recipients).map_err(refuse)?,
    })
}

fn reconciliation(shape: ReconciliationShape) -> Result<Reconciliation, ConfigError> {
    let utc_offset = match shape.utc_offset {
        None => UtcOffset::default(),
        Some(text) => UtcOffset::parse(&text)
            .map_err(|e| ConfigError::File(format!("reconciliation.utc_offset {text:?} {e}")))?,
    };
    Ok(Reconciliation { utc_offset })
}

/// The floors a book states, by city: each checked (never below the
/// seed's in Nantong), a city at most once.
fn floors(entries: Vec<FloorsEntry>) -> Result<BTreeMap<RegionCode, Floors>, ConfigError> {
    let mut by_city = BTreeMap::new();
    for (i, entry) in entries.into_iter().enumerate() {
        let refuse = |message: String| ConfigError::Entry {
            entry: format!("floors[{i}] (region {})", entry.region_code),
            message,
        };
        let field = |name: &str, error: ParseError| refuse(format!("{name}: {error}"));
        let city = RegionCode::parse(&entry.region_code).map_err(|e| field("region_code", e))?;
        if city.city() != city {
            return Err(refuse(format!(
                "region_code: floors are a city's (xxxx00), not a county's; {} is in {}",
                city,
                city.city()
            )));
        }
        let stated = Floors {
            ratio_min: Ratio::parse(&entry.ratio_min).map_err(|e| field("ratio_min", e))?,
            cap_fraction_min: Ratio::parse(&entry.cap_fraction_min)
                .map_err(|e| field("cap_fraction_min", e))?,
            deductible_max: match &entry.deductible_max {
                None => Money::MAX,
                Some(text) => Money::parse(text).map_err(|e| field("deductible_max", e))?,
            },
        };
        let checked = Floors::stated(city, stated).map_err(|e| refuse(e.to_string()))?;
        if by_city.insert(city, checked).is_some() {
            return Err(refuse(format!("region_code: {city} states floors twice")));
        }
    }
    Ok(by_city)
}

/// The policies of the file, or the built-in one when it lists none.
fn policies(
    entries: Vec<PolicyEntry>,
    floor_entries: Vec<FloorsEntry>,
) -> Result<PolicyBook, ConfigError> {
    let stated = floors(floor_entries)?;
    if entries.is_empty() {
        return Ok(PolicyBook::builtin());
    }
    if entries.len() > POLICIES_MAX {
        return Err(ConfigError::File(format!(
            "more than {POLICIES_MAX} policies"
        )));
    }
    let mut policies = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let name = format!(
            "policy[{i}] (region {}, year {})",
            entry.region_code, entry.year
        );
        let policy = entry
            .into_policy(&stated)
            .map_err(|message| ConfigError::Entry {
                entry: name,
                message,
            })?;
        policies.push(policy);
    }
    PolicyBook::new(policies).map_err(|e| ConfigError::File(e.to_string()))
}

fn tokens(shapes: Vec<TokenShape>) -> Result<Vec<TokenEntry>, ConfigError> {
    if shapes.is_empty() {
        return Err(ConfigError::File(
            "[auth] needs at least one [[auth.tokens]] entry".into(),
        ));
    }
    if shapes.len() > TOKENS_MAX {
        return Err(ConfigError::File(format!("more than {TOKENS_MAX} tokens")));
    }
    let mut entries: Vec<TokenEntry> = Vec::with_capacity(shapes.len());
    for (i, shape) in shapes.into_iter().enumerate() {
        let refuse = |message: String| ConfigError::Entry {
            entry: format!("auth.tokens[{i}]"),
            message,
        };
        let digest = TokenDigest::parse(&shape.sha256).map_err(refuse)?;
        let role = Role::parse(&shape.role).map_err(refuse)?;
        let hospital_id = match (role, shape.hospital_id) {
            (Role::Hospital, Some(id)) => {
                Some(HospitalId::parse(&id).map_err(|e| refuse(format!("hospital_id {e}")))?)
            }
            (Role::Hospital, None) => {
                return Err(refuse("a hospital token needs hospital_id".into()));
            }
            (_, Some(_)) => return Err(refuse("only hospital tokens take hospital_id".into())),
            (_, None) => None,
        };
        if entries.iter().any(|e| e.digest == digest) {
            return Err(refuse("the same token is listed twice".into()));
        }
        let id = Principal::id_of(digest);
        if entries.iter().any(|e| e.principal.id == id) {
            return Err(refuse(format!(
                "its digest begins like another token's ({id}): make a new token"
            )));
        }
        let regions = regions_of(shape.regions.unwrap_or_default(), role).map_err(refuse)?;
        let name = shape.name.unwrap_or_else(|| {
            let hospital = hospital_id
                .as_ref()
                .map(|h| format!(" {h}"))
                .unwrap_or_default();
            format!("{}{hospital} ({digest:?})", role.as_str())
        });
        if name.is_empty() || name.chars().count() > 128 || name.chars().any(char::is_control) {
            return Err(refuse(
                "name must be 1 to 128 characters without control characters".into(),
            ));
        }
        // The audit trail and the records a caller makes name it: one name,
        // one principal.
        if entries.iter().any(|e| e.principal.name == name) {
            return Err(refuse(format!(
                "name {name:?} is taken by another token: names must be unique"
            )));
        }
        let principal = Arc::new(Principal {
            id,
            name,
            role,
            hospital_id,
            regions,
        });
        entries.push(TokenEntry { digest, principal });
    }
    Ok(entries)
}

/// Most regions one token may be limited to.
const TOKEN_REGIONS_MAX: usize = 64;

/// A token's `regions`: valid codes, for the roles that read patients by
/// region (a hospital sees whoever is discharged there; an operator or a
/// metrics scraper sees no patient at all).
fn regions_of(codes: Vec<String>, role: Role) -> Result<Vec<RegionCode>, String> {
    if codes.is_empty() {
        return Ok(Vec::new());
    }
    if matches!(role, Role::Hospital | Role::Operator | Role::Metrics) {
        return Err(format!("a {} token takes no regions", role.as_str()));
    }
    if codes.len() > TOKEN_REGIONS_MAX {
        return Err(format!("more than {TOKEN_REGIONS_MAX} regions"));
    }
    codes
        .iter()
        .map(|code| RegionCode::parse(code).map_err(|e| format!("regions: {code:?} {e}")))
        .collect()
}

fn limits(shape: LimitsShape) -> Result<Limits, ConfigError> {
    let defaults = Limits::default();
    let refuse = |message: String| ConfigError::Entry {
        entry: "limits".into(),
        message,
    };
    let within =
        |name: &str, value: Option<usize>, default: usize, range: RangeInclusive<usize>| {
            let value = value.unwrap_or(default);
            if range.contains(&value) {
                Ok(value)
            } else {
                Err(refuse(format!(
                    "{name} must be from {} to {}",
                    range.start(),
                    range.end()
                )))
            }
        };
    let duration =
        |name: &str, value: Option<String>, default: Duration, (low, high): (&str, &str)| {
            let Some(text) = value else {
                return Ok(default);
            };
            let range = humantime::parse_duration(low).expect("a valid bound")
                ..=humantime::parse_duration(high).expect("a valid bound");
            humantime::parse_duration(&text)
                .ok()
                .filter(|d| range.contains(d))
                .ok_or_else(|| refuse(format!("{name} must be from \"{low}\" to \"{high}\"")))
        };
    let small = |name: &str, value: Option<usize>, default: u32, range: RangeInclusive<usize>| {
        within(name, value, default as usize, range).map(|v| v as u32)
    };
    let limits = Limits {
        request_timeout: duration(
            "request_timeout",
            shape.request_timeout,
            defaults.request_timeout,
            ("100ms", "10m"),
        )?,
        message_bytes_max: within(
            "message_bytes_max",
            shape.message_bytes_max,
            defaults.message_bytes_max,
            1024..=16 * 1024 * 1024,
        )?,
        concurrent_requests_max: within(
            "concurrent_requests_max",
            shape.concurrent_requests_max,
            defaults.concurrent_requests_max,
            1..=100_000,
        )?,
        page_size_max: within(
            "page_size_max",
            shape.page_size_max,
            defaults.page_size_max,
            1..=10_000,
        )?,
        patients_per_hour_max: within(
            "patients_per_hour_max",
            shape.patients_per_hour_max,
            defaults.patients_per_hour_max,
            1..=1_000_000,
        )?,
        connections_max: within(
            "connections_max",
            shape.connections_max,
            defaults.connections_max,
            1..=1_000_000,
        )?,
        connections_per_source_max: within(
            "connections_per_source_max",
            shape.connections_per_source_max,
            defaults.connections_per_source_max,
            1..=1_000_000,
        )?,
        handshake_timeout: duration(
            "handshake_timeout",
            shape.handshake_timeout,
            defaults.handshake_timeout,
            ("100ms", "1m"),
        )?,
        idle_timeout: duration(
            "idle_timeout",
            shape.idle_timeout,
            defaults.idle_timeout,
            ("1s", "24h"),
        )?,
        keepalive_interval: duration(
            "keepalive_interval",
            shape.keepalive_interval,
            defaults.keepalive_interval,
            ("1s", "2h"),
        )?,
        keepalive_timeout: duration(
            "keepalive_timeout",
            shape.keepalive_timeout,
            defaults.keepalive_timeout,
            ("1s", "10m"),
        )?,
        write_stall_timeout: duration(
            "write_stall_timeout",
            shape.write_stall_timeout,
            defaults.write_stall_timeout,
            ("1s", "10m"),
        )?,
        streams_per_connection_max: small(
            "streams_per_connection_max",
            shape.streams_per_connection_max,
            defaults.streams_per_connection_max,
            1..=10_000,
        )?,
        header_list_bytes_max: small(
            "header_list_bytes_max",
            shape.header_list_bytes_max,
            defaults.header_list_bytes_max,
            1024..=1024 * 1024,
        )?,
    };
    // A request that may take longer than a connection may idle is fine; a
    // handshake deadline beyond the idle timeout is a mistake.
    if limits.handshake_timeout > limits.idle_timeout {
        return Err(refuse(
            "handshake_timeout must not exceed idle_timeout".into(),
        ));
    }
    Ok(limits)
}

impl PolicyEntry {
    fn into_policy(self, floors: &BTreeMap<RegionCode, Floors>) -> Result<Policy, String> {
        let field = |name: &str, error: ParseError| format!("{name}: {error}");
        let assistance_ratio =
            Ratio::parse(&self.assistance_ratio).map_err(|e| field("assistance_ratio", e))?;
        let classes = match self.class {
            None => Vec::new(),
            Some(entries) if entries.is_empty() => {
                return Err("class: list at least one class, or omit [[policy.class]]".into());
            }
            Some(entries) if entries.len() > EnrollmentKind::ALL.len() => {
                return Err(format!(
                    "class: at most {} classes, one per kind",
                    EnrollmentKind::ALL.len()
                ));
            }
            Some(entries) => entries
                .into_iter()
                .enumerate()
                .map(|(i, entry)| entry.into_class(i, assistance_ratio))
                .collect::<Result<_, String>>()?,
        };
        let outpatient_cap = self
            .outpatient_chronic_cap
            .as_deref()
            .map(Money::parse)
            .transpose()
            .map_err(|e| field("outpatient_chronic_cap", e))?;
        let tilt = match self.tilt {
            None => None,
            Some(tilt) => Some(Tilt {
                threshold: Money::parse(&tilt.threshold).map_err(|e| field("tilt.threshold", e))?,
                ratio: Ratio::parse(&tilt.ratio).map_err(|e| field("tilt.ratio", e))?,
                cap: Money::parse(&tilt.cap).map_err(|e| field("tilt.cap", e))?,
            }),
        };
        let defaults = GracePeriods::default();
        let diseases = match self.disease {
            None => builtin_catalogue(),
            Some(entries) => entries
                .into_iter()
                .map(|entry| {
                    let codes = entry
                        .codes
                        .iter()
                        .map(|code| CodePattern::parse(code))
                        .collect::<Result<_, _>>()
                        .map_err(|e| field(&format!("disease {:?}", entry.name), e))?;
                    Ok(Disease {
                        name: entry.name,
                        codes,
                    })
                })
                .collect::<Result<_, String>>()?,
        };
        let terms = PolicyTerms {
            region: RegionCode::parse(&self.region_code).map_err(|e| field("region_code", e))?,
            effective_year: Year::parse(self.year).map_err(|e| field("year", e))?,
            assistance_ratio,
            cap_fraction: Ratio::parse(&self.cap_fraction).map_err(|e| field("cap_fraction", e))?,
            basic_insurance_annual_cap: Money::parse(&self.basic_insurance_annual_cap)
                .map_err(|e| field("basic_insurance_annual_cap", e))?,
            grace: GracePeriods {
                gradual_exit_months: self
                    .gradual_exit_grace_months
                    .unwrap_or(defaults.gradual_exit_months),
                left_poverty_months: self
                    .left_poverty_grace_months
                    .unwrap_or(defaults.left_poverty_months),
            },
            diseases,
            referral_threshold: match &self.referral_threshold {
                None => REFERRAL_THRESHOLD_DEFAULT,
                Some(text) => Money::parse(text).map_err(|e| field("referral_threshold", e))?,
            },
            classes,
            outpatient_cap,
            tilt,
        };
        let city = terms.region.city();
        let floors = floors.get(&city).copied().unwrap_or(Floors::SEED);
        Policy::with_floors(terms, floors).map_err(|e| e.to_string())
    }
}

impl ClassEntry {
    /// One class; errors name it as `class[i]` and the key.
    fn into_class(self, i: usize, default_ratio: Ratio) -> Result<ClassTerms, String> {
        let name = format!("class[{i}]");
        let field = |key: &str, error: ParseError| format!("{name}.{key}: {error}");
        let kind = EnrollmentKind::parse_name(&self.kind).map_err(|e| field("kind", e))?;
        let bands = match (self.ratio, self.band) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "{name}: give ratio or [[policy.class.band]], not both"
                ));
            }
            (None, None) => vec![Band {
                up_to: None,
                ratio: default_ratio,
            }],
            (Some(ratio), None) => vec![Band {
                up_to: None,
                ratio: Ratio::parse(&ratio).map_err(|e| field("ratio", e))?,
            }],
            (None, Some(bands)) if bands.len() > BANDS_MAX => {
                return Err(format!("{name}.band: at most {BANDS_MAX} bands"));
            }
            (None, Some(bands)) => bands
                .into_iter()
                .enumerate()
                .map(|(b, band)| {
                    Ok(Band {
                        up_to: band
                            .up_to
                            .as_deref()
                            .map(Money::parse)
                            .transpose()
                            .map_err(|e| field(&format!("band[{b}].up_to"), e))?,
                        ratio: Ratio::parse(&band.ratio)
                            .map_err(|e| field(&format!("band[{b}].ratio"), e))?,
                    })
                })
                .collect::<Result<_, String>>()?,
        };
        Ok(ClassTerms {
            kind,
            condition_required: self.condition_required,
            deductible: match &self.deductible {
                None => Money::ZERO,
                Some(text) => Money::parse(text).map_err(|e| field("deductible", e))?,
            },
            bands,
            annual_cap: self
                .annual_cap
                .as_deref()
                .map(Money::parse)
                .transpose()
                .map_err(|e| field("annual_cap", e))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves the configuration the systemd unit ships with never runs
    /// open: as shipped it is refused, naming its placeholder token; with
    /// the placeholder replaced by a real digest it requires tokens.
    #[test]
    fn the_packaged_configuration_requires_tokens() {
        let packaged = include_str!("../packaging/medassist.toml");
        let refused = Config::parse(packaged).unwrap_err().to_string();
        assert!(
            refused.starts_with("auth.tokens[0]: sha256 must be 64 hexadecimal digits"),
            "{refused}"
        );
        let placeholder = packaged
            .lines()
            .find_map(|line| line.strip_prefix("sha256 = "))
            .unwrap()
            .trim_matches('"');
        let pasted = packaged.replace(placeholder, &TokenDigest::of("a token").to_hex());
        let config = Config::parse(&pasted).unwrap();
        let Access::Tokens(tokens) = &config.access else {
            panic!("the packaged configuration must not run open")
        };
        assert_eq!(tokens[0].principal.role, Role::Operator);
        assert!(config.tls.is_none());
        let sealed = pasted.replace("# [backup]\n# recipients", "[backup]\nrecipients");
        let refused = Config::parse(&sealed).unwrap_err().to_string();
        assert!(
            refused.starts_with("backup.recipients: recipient 1"),
            "{refused}"
        );
    }

    /// Proves `[backup]` reads the fund's keys and refuses an empty list or
    /// a key that is not an age X25519 recipient.
    #[test]
    fn reads_the_backup_recipients() {
        let key = age::x25519::Identity::generate().to_public().to_string();
        let config = Config::parse(&format!("[backup]\nrecipients = [\"{key}\"]")).unwrap();
        assert_eq!(config.backup.recipients.len(), 1);
        assert!(Config::parse("").unwrap().backup.recipients.is_empty());
        let empty = error_of("[backup]\nrecipients = []");
        assert!(empty.contains("lists no recipient"), "{empty}");
        let bad = error_of("[backup]\nrecipients = [\"ssh-ed25519 AAAA\"]");
        assert!(bad.starts_with("backup.recipients: recipient 1"), "{bad}");
    }

    const CITY_AND_COUNTY: &str = r#"
        [[policy]]
        region_code = "320600"
        year = 2025
        assistance_ratio = "0.70"
        cap_fraction = "0.50"
        basic_insurance_annual_cap = "300000.00"

        [[policy]]
        region_code = "320602"
        year = 2026
        assistance_ratio = "0.80"
        cap_fraction = "0.60"
        basic_insurance_annual_cap = "400000"
        gradual_exit_grace_months = 6

        [[policy.disease]]
        name = "malignant tumour"
        codes = ["C00-C97"]
    "#;

    #[test]
    fn reads_policies_with_defaults_and_overrides() {
        let config = Config::parse(CITY_AND_COUNTY).unwrap();
        let region = |code: &str| RegionCode::parse(code).unwrap();
        let year = |y: i32| Year::parse(y).unwrap();
        let city = config
            .policies
            .lookup(region("320611"), year(2026))
            .unwrap();
        assert_eq!(city.annual_cap().to_string(), "150000.00");
        assert_eq!(city.terms().diseases.len(), 10);
        assert_eq!(city.terms().grace, GracePeriods::default());
        let county = config
            .policies
            .lookup(region("320602"), year(2026))
            .unwrap();
        assert_eq!(county.annual_cap().to_string(), "240000.00");
        assert_eq!(county.terms().grace.gradual_exit_months, 6);
        assert_eq!(county.terms().diseases.len(), 1);
    }

    fn error_of(text: &str) -> String {
        Config::parse(text).unwrap_err().to_string()
    }

    /// The worked policy of docs/POLICY.md, as shipped in examples/.
    const POLICY_2026: &str = include_str!("../examples/policy-2026.toml");

    /// Proves the guide's worked file loads with its classes in order, its
    /// own floors, its sub-cap and tilt, and that a county falls back to it.
    #[test]
    fn the_worked_policy_of_the_guide_loads() {
        let config = Config::parse(POLICY_2026).unwrap();
        let policy = config
            .policies
            .lookup(
                RegionCode::parse("320505").unwrap(),
                Year::parse(2026).unwrap(),
            )
            .unwrap();
        assert_eq!(policy.annual_cap().to_string(), "100000.00");
        let kinds: Vec<&str> = policy.classes().iter().map(|c| c.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "tekun",
                "dibao",
                "low_income_family",
                "low_income_margin",
                "monitored_for_return",
                "impoverished_by_illness"
            ]
        );
        let margin = &policy.classes()[3];
        assert_eq!(margin.deductible.to_string(), "5000.00");
        assert_eq!(margin.bands.len(), 2);
        assert_eq!(
            policy.terms().outpatient_cap.unwrap().to_string(),
            "20000.00"
        );
        assert_eq!(policy.terms().tilt.unwrap().cap.to_string(), "50000.00");
        // Without its floors, the seed's refuse the deductible of a seed population.
        let without_floors = POLICY_2026.replace("[[floors]]", "[[ignored]]");
        assert!(error_of(&without_floors).contains("unknown field"));
        let seed_floors: String = POLICY_2026
            .lines()
            .skip_while(|line| !line.starts_with("[[policy]]"))
            .collect::<Vec<_>>()
            .join("\n");
        let refused =
            error_of(&seed_floors.replace("cap_fraction = \"0.25\"", "cap_fraction = \"0.50\""));
        assert!(
            refused.contains("policy[0] (region 320500, year 2026): class[2] (low_income_family): deductible 2500.00 is above the city floor's deductible_max 0.00"),
            "{refused}"
        );
    }

    /// Proves a policy file that breaks a rule of the 2021 keys is refused at
    /// load, in one line naming the entry and the key.
    #[test]
    fn class_terms_are_checked_naming_the_key() {
        let city = |classes: &str| {
            format!(
                "[[floors]]\nregion_code = \"320500\"\nratio_min = \"0.5\"\ncap_fraction_min = \"0.5\"\n\
                 [[policy]]\nregion_code = \"320500\"\nyear = 2026\nassistance_ratio = \"0.70\"\n\
                 cap_fraction = \"0.50\"\nbasic_insurance_annual_cap = \"100000\"\n{classes}"
            )
        };
        let margin = |bands: &str| {
            city(&format!(
                "[[policy.class]]\nkind = \"低保边缘\"\ncondition_required = false\ndeductible = \"100\"\n{bands}"
            ))
        };
        let band = |up_to: &str, ratio: &str| {
            let up_to = match up_to {
                "" => String::new(),
                amount => format!("up_to = \"{amount}\"\n"),
            };
            format!("[[policy.class.band]]\n{up_to}ratio = \"{ratio}\"\n")
        };
        assert!(Config::parse(&margin(&(band("500", "0.5") + &band("", "0.6")))).is_ok());
        let cases = [
            (
                margin(&(band("500", "0.5") + &band("400", "0.6") + &band("", "0.7"))),
                "class[0] (low_income_margin): band[1].up_to 400.00 must be more than 500.00 (bands ascend and do not overlap)",
            ),
            (
                margin(&(band("500", "0.5") + &band("500", "0.6"))),
                "band[1].up_to 500.00 must be more than 500.00",
            ),
            (
                margin(&(band("", "0.5") + &band("500", "0.6"))),
                "band[0].up_to is missing; only the last band may omit it",
            ),
            (
                margin(&band("", "1.2")),
                "band[0].ratio 1.20 must be at most 1",
            ),
            (margin(&band("-5", "0.5")), "class[0].band[0].up_to: "),
            (
                margin("ratio = \"0.6\"\n")
                    .replace("deductible = \"100\"", "deductible = \"-100\""),
                "class[0].deductible: ",
            ),
            (
                margin(&("ratio = \"0.6\"\n".to_owned() + &band("", "0.6"))),
                "class[0]: give ratio or [[policy.class.band]], not both",
            ),
            (
                margin("ratio = \"0.6\"\n").replace("低保边缘", "五保户"),
                "class[0].kind: \"五保户\" is not an assisted class",
            ),
            (
                margin("ratio = \"0.6\"\n")
                    + "[[policy.class]]\nkind = \"low_income_margin\"\ncondition_required = true\n",
                "class[1] (low_income_margin): kind is listed twice",
            ),
            (
                city(
                    "[[policy.class]]\nkind = \"dibao\"\ncondition_required = false\nratio = \"0.4\"\n",
                ),
                "class[0] (dibao): band[0].ratio 0.40 is below the city floor 0.50",
            ),
            (
                city("outpatient_chronic_cap = \"60000\"\n"),
                "outpatient_chronic_cap 60000.00 must be more than 0 and at most the annual cap 50000.00",
            ),
            (
                city("[policy.tilt]\nthreshold = \"1\"\nratio = \"1.5\"\ncap = \"1\"\n"),
                "tilt.ratio 1.50 must be at most 1",
            ),
            (
                city("[policy.tilt]\nthreshold = \"-1\"\nratio = \"0.5\"\ncap = \"1\"\n"),
                "tilt.threshold: ",
            ),
        ];
        for (text, expected) in cases {
            let message = error_of(&text);
            assert!(
                message.contains("policy[0] (region 320500, year 2026): ")
                    && message.contains(expected),
                "{expected:?} not in {message:?}"
            );
        }
        let nantong = city("").replace(
            "region_code = \"320500\"\nratio_min",
            "region_code = \"320600\"\nratio_min",
        );
        assert!(
            error_of(&nantong).contains("Nantong (3206xx) is bound by the seed's floors"),
            "{}",
            error_of(&nantong)
        );
        let county = city("").replacen("320500", "320505", 1);
        assert!(error_of(&county).contains("floors are a city's"));
    }

    #[test]
    fn refuses_policies_below_the_city_floors_naming_the_entry() {
        let low = CITY_AND_COUNTY.replace("\"0.80\"", "\"0.65\"");
        let message = error_of(&low);
        assert!(
            message.starts_with("policy[1] (region 320602, year 2026): assistance_ratio 0.65"),
            "{message}"
        );
        let small_cap = CITY_AND_COUNTY.replace("\"0.60\"", "\"0.45\"");
        assert!(error_of(&small_cap).contains("policy[1]"));
        assert!(error_of(&small_cap).contains("cap_fraction 0.45"));
    }

    #[test]
    fn reads_the_referral_threshold() {
        let with = CITY_AND_COUNTY.replacen(
            "year = 2025",
            "year = 2025\nreferral_threshold = \"5000.5\"",
            1,
        );
        let config = Config::parse(&with).unwrap();
        let region = RegionCode::parse("320600").unwrap();
        let policy = config
            .policies
            .lookup(region, Year::parse(2025).unwrap())
            .unwrap();
        assert_eq!(policy.terms().referral_threshold.to_string(), "5000.50");
        let default = Config::parse(CITY_AND_COUNTY).unwrap();
        let policy = default
            .policies
            .lookup(region, Year::parse(2025).unwrap())
            .unwrap();
        assert_eq!(policy.terms().referral_threshold.to_string(), "10000.00");
        let zero =
            CITY_AND_COUNTY.replacen("year = 2025", "year = 2025\nreferral_threshold = \"0\"", 1);
        assert!(
            error_of(&zero).contains("referral_threshold"),
            "{}",
            error_of(&zero)
        );
    }

    #[test]
    fn reads_the_funds_zone() {
        let config = Config::parse("[reconciliation]\nutc_offset = \"-05:30\"").unwrap();
        assert_eq!(config.reconciliation.utc_offset.to_string(), "-05:30");
        let default = Config::parse("").unwrap();
        assert_eq!(default.reconciliation.utc_offset.to_string(), "+08:00");
        let bad = error_of("[reconciliation]\nutc_offset = \"8\"");
        assert!(bad.contains("reconciliation.utc_offset"), "{bad}");
    }

    #[test]
    fn refuses_malformed_files() {
        assert!(error_of("[[policy]]\nregion_code = 1").contains("invalid configuration file"));
        let float = CITY_AND_COUNTY.replace("\"0.80\"", "0.80");
        assert!(
            error_of(&float).contains("invalid configuration file"),
            "money and shares are strings"
        );
        let unknown = CITY_AND_COUNTY.replace("year = 2025", "year = 2025\nratio = \"0.9\"");
        assert!(error_of(&unknown).contains("unknown field"));
        let twice = CITY_AND_COUNTY
            .replace("\"320602\"", "\"320600\"")
            .replace("2026", "2025");
        assert!(error_of(&twice).contains("two policies for region 320600"));
        let bad_code = CITY_AND_COUNTY.replace("C00-C97", "C97-C00");
        assert!(error_of(&bad_code).contains("disease \"malignant tumour\""));
        let bad_region = CITY_AND_COUNTY.replace("\"320602\"", "\"3206\"");
        assert!(error_of(&bad_region).contains("region_code"));
    }
}

#[cfg(test)]
mod more_tests {
    use super::*;

    const TOKEN_DIGEST: &str = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

    #[test]
    fn every_section_is_optional() {
        let config = Config::parse("").unwrap();
        assert!(matches!(config.access, Access::Open));
        assert_eq!(config.limits, Limits::default());
        assert_eq!(config.tls, None);
        assert_eq!(config.policies.iter().count(), 1, "the built-in policy");
    }

    #[test]
    fn reads_tokens_tls_and_limits() {
        let text = format!(
            r#"
            [[auth.tokens]]
            sha256 = "{TOKEN_DIGEST}"
            role = "hospital"
            hospital_id = "H001"
            [[auth.tokens]]
            sha256 = "{}"
            role = "auditor"
            name = "provincial audit office"
            [tls]
            cert = "server.pem"
            key = "server.key"
            [limits]
            request_timeout = "5s"
            concurrent_requests_max = 8
            "#,
            "a".repeat(64)
        );
        let config = Config::parse(&text).unwrap();
        let Access::Tokens(tokens) = &config.access else {
            panic!("tokens expected")
        };
        assert_eq!(tokens.len(), 2);
        assert_eq!(tokens[0].principal.name, "hospital H001 (sha256:2c26b46b…)");
        assert_eq!(tokens[1].principal.name, "provincial audit office");
        assert_eq!(config.tls.unwrap().client_ca, None);
        assert_eq!(config.limits.request_timeout, Duration::from_secs(5));
        assert_eq!(config.limits.concurrent_requests_max, 8);
        assert_eq!(config.limits.page_size_max, 500);
    }

    #[test]
    fn refuses_bad_tokens_and_limits_naming_them() {
        let error = |text: &str| Config::parse(text).unwrap_err().to_string();
        let token = |rest: &str| format!("[[auth.tokens]]\nsha256 = \"{TOKEN_DIGEST}\"\n{rest}");
        assert!(error("[auth]").contains("at least one"));
        assert!(
            error(&token("role = \"hospital\""))
                .contains("auth.tokens[0]: a hospital token needs hospital_id")
        );
        assert!(
            error(&token("role = \"insurer\"\nhospital_id = \"H1\""))
                .contains("only hospital tokens")
        );
        assert!(error(&token("role = \"admin\"")).contains("unknown role"));
        let twice = format!(
            "{}\n{}",
            token("role = \"auditor\""),
            token("role = \"insurer\"")
        );
        assert!(error(&twice).contains("auth.tokens[1]: the same token is listed twice"));
        assert!(
            error("[[auth.tokens]]\nsha256 = \"abc\"\nrole = \"auditor\"")
                .contains("64 hexadecimal")
        );
        assert!(
            error("[limits]\nconcurrent_requests_max = 0")
                .contains("limits: concurrent_requests_max")
        );
        assert!(error("[limits]\nrequest_timeout = \"forever\"").contains("request_timeout"));
        assert!(error("[limits]\nmessage_bytes_max = 10").contains("message_bytes_max"));
        assert!(error("[limits]\nconnections_max = 0").contains("limits: connections_max must be"));
        assert!(
            error("[limits]\nconnections_per_source_max = 0")
                .contains("limits: connections_per_source_max must be")
        );
        assert!(
            error("[limits]\nhandshake_timeout = \"2m\"")
                .contains("handshake_timeout must be from \"100ms\" to \"1m\"")
        );
        assert!(error("[limits]\nidle_timeout = \"0s\"").contains("idle_timeout"));
        assert!(error("[limits]\nheader_list_bytes_max = 100").contains("header_list_bytes_max"));
        assert!(
            error("[limits]\nhandshake_timeout = \"30s\"\nidle_timeout = \"10s\"")
                .contains("must not exceed idle_timeout")
        );
    }

    /// Proves every connection limit is read with its unit, and that the
    /// defaults leave room for a real client: a handshake of a few round
    /// trips, a keepalive a live client always answers.
    #[test]
    fn reads_connection_limits() {
        let config = Config::parse(
            r#"
            [limits]
            connections_max = 20
            connections_per_source_max = 5
            handshake_timeout = "500ms"
            idle_timeout = "1s"
            keepalive_interval = "5s"
            keepalive_timeout = "2s"
            write_stall_timeout = "3s"
            streams_per_connection_max = 8
            header_list_bytes_max = 4096
            "#,
        )
        .unwrap();
        let limits = config.limits;
        assert_eq!(limits.connections_max, 20);
        assert_eq!(limits.connections_per_source_max, 5);
        assert_eq!(limits.handshake_timeout, Duration::from_millis(500));
        assert_eq!(limits.idle_timeout, Duration::from_secs(1));
        assert_eq!(limits.keepalive_interval, Duration::from_secs(5));
        assert_eq!(limits.keepalive_timeout, Duration::from_secs(2));
        assert_eq!(limits.write_stall_timeout, Duration::from_secs(3));
        assert_eq!(limits.streams_per_connection_max, 8);
        assert_eq!(limits.header_list_bytes_max, 4096);
        let defaults = Limits::default();
        assert!(defaults.handshake_timeout >= Duration::from_secs(5));
        assert!(
            defaults.streams_per_connection_max >= 16,
            "the bench's in-flight"
        );
    }
}
