//! Domain types. Constructors reject invalid values, so code holding one of
//! these types never has to re-check it.

use std::fmt;

use totpd_otp::{Algorithm, Code, Digits, Period, Secret};
use uuid::Uuid;

/// Milliseconds since the Unix epoch, UTC. The vault never reads the clock;
/// callers pass the time in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime(pub i64);

/// `2026-01-01T00:00:00.123Z`: how every time is shown (API, CLI).
const RFC3339_MILLIS: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
);
/// `2026-01-01T00:00:30Z`: a time on a whole second (a code's expiry).
const RFC3339_SECONDS: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

impl UnixTime {
    /// The time as a UTC date and time (the epoch for one out of range).
    fn utc(self) -> time::OffsetDateTime {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
    }

    /// RFC 3339 UTC with milliseconds: `2026-01-01T00:00:00.123Z`.
    pub fn rfc3339_millis(self) -> String {
        self.utc().format(RFC3339_MILLIS).unwrap_or_default()
    }

    /// RFC 3339 UTC in whole seconds: `2026-01-01T00:00:30Z`.
    pub fn rfc3339_seconds(self) -> String {
        self.utc().format(RFC3339_SECONDS).unwrap_or_default()
    }

    /// Whole seconds since the epoch (never negative for real clocks).
    pub fn seconds(self) -> u64 {
        u64::try_from(self.0.div_euclid(1000)).unwrap_or(0)
    }
}

/// Most characters a label or issuer may have.
pub const MAX_TEXT_CHARS: usize = 256;

/// Why a label, an issuer or an API key's name was refused. `Display` names
/// the field and the rule broken (the 400's message); never the value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LabelError {
    /// Empty, or only white space.
    #[error("\"{field}\" must not be empty")]
    Empty {
        /// The field's name on the wire (`label`, `issuer`).
        field: &'static str,
    },
    /// More characters than allowed.
    #[error("\"{field}\" must be at most {max} characters")]
    TooLong {
        /// The field's name on the wire.
        field: &'static str,
        /// The most characters allowed.
        max: usize,
    },
    /// A control character (including NUL).
    #[error("\"{field}\" must not contain control characters")]
    ControlCharacter {
        /// The field's name on the wire.
        field: &'static str,
    },
}

fn check_text(field: &'static str, value: &str) -> Result<String, LabelError> {
    if value.trim().is_empty() {
        return Err(LabelError::Empty { field });
    }
    if value.chars().count() > MAX_TEXT_CHARS {
        return Err(LabelError::TooLong {
            field,
            max: MAX_TEXT_CHARS,
        });
    }
    // Control characters (including NUL, which PostgreSQL cannot store) have
    // no place in a name shown to people and would break logs and terminals.
    if value.chars().any(char::is_control) {
        return Err(LabelError::ControlCharacter { field });
    }
    // Stored exactly as given (no trimming, no Unicode normalisation), so
    // what the client sent is what it reads back.
    Ok(value.to_owned())
}

/// The account name a secret is known by (e.g. `alice@example.com`):
/// 1 to 256 characters, not only white space, no control characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label(String);

impl Label {
    /// Validates a label; the error names the field and the rule broken.
    pub fn parse(value: &str) -> Result<Label, LabelError> {
        check_text("label", value).map(Label)
    }

    /// The label text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The service that issued a secret (e.g. `GitHub`), same rules as [`Label`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issuer(String);

impl Issuer {
    /// Validates an issuer; the error names the field and the rule broken.
    pub fn parse(value: &str) -> Result<Issuer, LabelError> {
        check_text("issuer", value).map(Issuer)
    }

    /// The issuer text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where the secret of a new entry comes from.
#[derive(Clone, Debug)]
pub enum SecretSource {
    /// The caller enrolls a secret issued by a service.
    Provided(Secret),
    /// The vault draws 20 random bytes (160 bits, RFC 4226 §4 R6).
    Generate,
}

/// Whether a secret's codes follow the time (TOTP) or a stored counter
/// (HOTP), with the per-secret setting of each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretKind {
    /// RFC 6238: the counter is the time step.
    Totp {
        /// Steps accepted either side of the current one by a verification.
        skew: Skew,
    },
    /// RFC 4226: the counter is stored and advanced by each code handed out
    /// and by each accepted verification.
    Hotp {
        /// The counter of the first code (at most `i64::MAX`, what the
        /// databases store).
        counter: u64,
    },
}

impl Default for SecretKind {
    /// TOTP with the default skew of one step.
    fn default() -> SecretKind {
        SecretKind::Totp {
            skew: Skew::default(),
        }
    }
}

impl SecretKind {
    /// `totp` or `hotp`: the secret's `type`, as stored and shown.
    pub fn type_name(self) -> &'static str {
        match self {
            SecretKind::Totp { .. } => OTP_TYPE_TOTP,
            SecretKind::Hotp { .. } => OTP_TYPE_HOTP,
        }
    }
}

/// The `type` of a time-based secret.
pub const OTP_TYPE_TOTP: &str = "totp";
/// The `type` of a counter-based secret.
pub const OTP_TYPE_HOTP: &str = "hotp";

/// The largest HOTP counter a secret may be created with (what the
/// databases' signed 64-bit integers hold).
pub const MAX_HOTP_COUNTER: u64 = i64::MAX as u64;

/// Counters an HOTP verification looks ahead from the stored one (RFC 4226
/// §7.4's look-ahead window). Every secret gets this value; it is stored per
/// secret so that a later setting can change it without a migration.
pub const DEFAULT_HOTP_WINDOW: u32 = 10;

/// How many TOTP steps either side of the current one a verification
/// accepts: 0, 1 or 2 (RFC 6238 §5.2 recommends at most one for network
/// delay; two covers a badly set clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Skew(u8);

impl Skew {
    /// The largest skew.
    pub const MAX: u8 = 2;

    /// A skew of `steps`, `None` above [`Skew::MAX`].
    pub fn new(steps: u8) -> Option<Skew> {
        (steps <= Skew::MAX).then_some(Skew(steps))
    }

    /// The steps either side.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl Default for Skew {
    /// One step either side.
    fn default() -> Skew {
        Skew(1)
    }
}

/// A validated request to store a TOTP or HOTP secret.
#[derive(Clone, Debug)]
pub struct NewSecret {
    /// Account name.
    pub label: Label,
    /// Issuing service, if known.
    pub issuer: Option<Issuer>,
    /// The secret, or a request to generate one.
    pub source: SecretSource,
    /// HMAC algorithm.
    pub algorithm: Algorithm,
    /// Code length.
    pub digits: Digits,
    /// Time step (TOTP; an HOTP secret stores the default, unused).
    pub period: Period,
    /// TOTP or HOTP, with its skew or first counter.
    pub kind: SecretKind,
}

/// A stored secret's public description (never the secret itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretInfo {
    /// Secret id.
    pub id: Uuid,
    /// Account name.
    pub label: String,
    /// Issuing service.
    pub issuer: Option<String>,
    /// HMAC algorithm.
    pub algorithm: Algorithm,
    /// Code length.
    pub digits: Digits,
    /// Time step.
    pub period: Period,
    /// When it was enrolled.
    pub created_at: UnixTime,
    /// TOTP with its skew, or HOTP with the counter of the next code.
    pub kind: SecretKind,
}

/// The answer to a create: the description plus the secret, which is shown
/// this once and never again.
#[derive(Clone, Debug)]
pub struct CreatedSecret {
    /// The stored description.
    pub info: SecretInfo,
    /// The secret (redacted in `Debug`).
    pub secret: Secret,
}

/// A code and its validity window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeAt {
    /// The code, zero-padded by its `Display`.
    pub code: Code,
    /// Seconds until the code's period ends, in `1..=period`.
    pub expires_in: u32,
    /// Unix second at which the code's period ends.
    pub expires_at: u64,
    /// The secret's period.
    pub period: Period,
    /// The secret's code length.
    pub digits: Digits,
}

/// An HOTP code handed out, and the counter it is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HotpCodeAt {
    /// The code, zero-padded by its `Display`.
    pub code: Code,
    /// The counter the code was computed for (the stored counter is now one
    /// more).
    pub counter: u64,
    /// The secret's code length.
    pub digits: Digits,
}

/// A code handed out: a TOTP code with its validity, or an HOTP code with
/// its counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IssuedCode {
    /// The current code of a TOTP secret.
    Totp(CodeAt),
    /// The next code of an HOTP secret.
    Hotp(HotpCodeAt),
}

impl IssuedCode {
    /// The code itself, whatever the type.
    pub fn code(&self) -> Code {
        match self {
            IssuedCode::Totp(at) => at.code,
            IssuedCode::Hotp(at) => at.code,
        }
    }
}

/// How a verification ended, as the audit log records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verification {
    /// The code was accepted (and can never be accepted again).
    Valid,
    /// The code was refused (wrong, malformed, replayed or outside the window).
    Invalid,
}

/// An account: the unit of tenancy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// Account id.
    pub id: Uuid,
    /// Unique account name.
    pub name: String,
    /// Creation time.
    pub created_at: UnixTime,
}

/// Most characters of an account name.
pub const MAX_ACCOUNT_NAME_CHARS: usize = 64;

/// An account's name, an identifier typed on a command line: 1 to
/// [`MAX_ACCOUNT_NAME_CHARS`] of `A-Z a-z 0-9 . _ -`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AccountName(String);

/// Why an account name was refused. Every variant shows the one rule, with
/// the name as given (an identifier, never a secret).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccountNameError {
    /// The name is empty.
    #[error("account name \"\" must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-'")]
    Empty,
    /// The name is longer than [`MAX_ACCOUNT_NAME_CHARS`].
    #[error("account name {name:?} must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-'")]
    TooLong {
        /// The name as given.
        name: String,
    },
    /// The name holds a character outside `A-Z a-z 0-9 . _ -`.
    #[error("account name {name:?} must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-'")]
    BadCharacter {
        /// The name as given.
        name: String,
    },
}

impl AccountName {
    /// Validates an account name.
    pub fn parse(name: &str) -> Result<AccountName, AccountNameError> {
        if name.is_empty() {
            return Err(AccountNameError::Empty);
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(AccountNameError::BadCharacter {
                name: name.to_owned(),
            });
        }
        if name.len() > MAX_ACCOUNT_NAME_CHARS {
            return Err(AccountNameError::TooLong {
                name: name.to_owned(),
            });
        }
        Ok(AccountName(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An API key as listed (no secret, no hash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyInfo {
    /// Public key id.
    pub key_id: String,
    /// Owning account's id.
    pub account_id: Uuid,
    /// Owning account's name (empty when the key was made through the API,
    /// which knows the account by id only).
    pub account_name: String,
    /// What the key may do (`owner`, `admin`, `agent`, `verifier`), as stored.
    pub role: String,
    /// A name for people (`""` when none was given).
    pub name: String,
    /// The secrets the key sees, sorted; `None` for every secret.
    pub secret_ids: Option<Vec<Uuid>>,
    /// Creation time.
    pub created_at: UnixTime,
    /// When the key stops authenticating, if ever.
    pub expires_at: Option<UnixTime>,
    /// Revocation time, if revoked.
    pub revoked_at: Option<UnixTime>,
    /// The last recorded use (written every few seconds, so it may lag).
    pub last_used_at: Option<UnixTime>,
}

/// What a new API key may do: its role, scope and expiry are bound into
/// its stored hash for its whole life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySpec {
    /// A name for people; may be empty.
    pub name: String,
    /// What the key may do.
    pub role: crate::Role,
    /// Which secrets it sees: every one, or 1 to
    /// [`crate::MAX_SCOPE_IDS`] secrets of the account.
    pub scope: crate::Scope,
    /// When it stops authenticating (must be in the future); `None`: never.
    pub expires_at: Option<UnixTime>,
}

impl KeySpec {
    /// An unnamed owner key that sees every secret and never expires.
    pub fn owner() -> KeySpec {
        KeySpec {
            name: String::new(),
            role: crate::Role::Owner,
            scope: crate::Scope::All,
            expires_at: None,
        }
    }
}

/// Most characters of a key's name.
pub const MAX_KEY_NAME_CHARS: usize = 128;

/// A key's name: empty, or up to [`MAX_KEY_NAME_CHARS`] characters without
/// control characters. Returns the name to store; the error names the
/// field `name`.
pub fn validate_key_name(name: &str) -> Result<String, LabelError> {
    if name.chars().count() > MAX_KEY_NAME_CHARS {
        return Err(LabelError::TooLong {
            field: "name",
            max: MAX_KEY_NAME_CHARS,
        });
    }
    if name.chars().any(char::is_control) {
        return Err(LabelError::ControlCharacter { field: "name" });
    }
    Ok(name.to_owned())
}

impl fmt::Display for UnixTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_as_rfc_3339_utc() {
        let t = UnixTime(1_767_225_600_123);
        assert_eq!(t.rfc3339_millis(), "2026-01-01T00:00:00.123Z");
        assert_eq!(t.rfc3339_seconds(), "2026-01-01T00:00:00Z");
        assert_eq!(UnixTime(0).rfc3339_millis(), "1970-01-01T00:00:00.000Z");
        assert_eq!(UnixTime(59_999).rfc3339_seconds(), "1970-01-01T00:00:59Z");
    }

    #[test]
    fn labels_are_kept_exactly_as_given() {
        for label in ["alice", " padded ", "Ünïcødé ✓ 日本語", "a:b@c"] {
            assert_eq!(Label::parse(label).unwrap().as_str(), label);
        }
    }

    #[test]
    fn empty_long_and_control_labels_are_refused_with_the_field_named() {
        assert_eq!(
            Label::parse("").unwrap_err(),
            LabelError::Empty { field: "label" }
        );
        assert_eq!(
            Label::parse("").unwrap_err().to_string(),
            "\"label\" must not be empty"
        );
        assert!(Label::parse("   ").is_err());
        assert_eq!(
            Label::parse(&"x".repeat(257)).unwrap_err().to_string(),
            "\"label\" must be at most 256 characters"
        );
        assert!(Label::parse(&"é".repeat(256)).is_ok());
        assert_eq!(
            Issuer::parse("a\u{0}b").unwrap_err().to_string(),
            "\"issuer\" must not contain control characters"
        );
    }

    #[test]
    fn account_names_are_identifiers_and_the_error_shows_the_rule_and_the_name() {
        for name in ["default", "a", "acme.eu-1_x", &"a".repeat(64)] {
            assert_eq!(AccountName::parse(name).unwrap().as_str(), name);
        }
        assert_eq!(AccountName::parse("").unwrap_err(), AccountNameError::Empty);
        assert_eq!(
            AccountName::parse("").unwrap_err().to_string(),
            "account name \"\" must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-'"
        );
        assert!(matches!(
            AccountName::parse(&"a".repeat(65)),
            Err(AccountNameError::TooLong { .. })
        ));
        let bad = AccountName::parse("bad name").unwrap_err();
        assert!(matches!(bad, AccountNameError::BadCharacter { .. }));
        assert_eq!(
            bad.to_string(),
            "account name \"bad name\" must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-'"
        );
        assert!(AccountName::parse("ünï").is_err());
    }

    #[test]
    fn key_names_may_be_empty_but_not_long_or_controlled() {
        assert_eq!(validate_key_name("").unwrap(), "");
        assert_eq!(
            validate_key_name(&"n".repeat(129)).unwrap_err().to_string(),
            "\"name\" must be at most 128 characters"
        );
        assert_eq!(
            validate_key_name("a\tb").unwrap_err().to_string(),
            "\"name\" must not contain control characters"
        );
    }
}
