//! Wire types: the JSON shapes of requests and responses, kept apart from
//! the domain types and converted explicitly. Their `ToSchema` derives are
//! the OpenAPI document, so the document cannot drift from the code.

use std::fmt;

use serde::Serialize;
use totpd_otp::Algorithm;
use totpd_vault::{
    ApiKeyInfo, AuditRow, CodeAt, CreatedSecret, HotpCodeAt, SecretInfo, SecretKind, UnixTime,
};
use utoipa::ToSchema;
use uuid::Uuid;

/// `"OK"`, the status of every successful answer.
const OK: &str = "OK";

/// The error body of every failed request.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Always `"ERROR"`.
    #[schema(value_type = String, example = "ERROR")]
    pub status: &'static str,
    /// Machine-readable snake_case code.
    #[schema(value_type = String, example = "invalid_request")]
    pub error: &'static str,
    /// One sentence for people.
    pub message: String,
}

/// A success with nothing else to say.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusOnly {
    /// Always `"OK"`.
    #[schema(value_type = String, example = "OK")]
    pub status: &'static str,
}

impl StatusOnly {
    pub(crate) fn ok() -> StatusOnly {
        StatusOnly { status: OK }
    }
}

/// HMAC algorithm names on the wire.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub enum AlgorithmName {
    /// HMAC-SHA-1 (the default, and what most services use).
    #[serde(rename = "SHA1")]
    Sha1,
    /// HMAC-SHA-256.
    #[serde(rename = "SHA256")]
    Sha256,
    /// HMAC-SHA-512.
    #[serde(rename = "SHA512")]
    Sha512,
}

impl From<Algorithm> for AlgorithmName {
    fn from(a: Algorithm) -> AlgorithmName {
        match a {
            Algorithm::Sha1 => AlgorithmName::Sha1,
            Algorithm::Sha256 => AlgorithmName::Sha256,
            Algorithm::Sha512 => AlgorithmName::Sha512,
        }
    }
}

/// Request body of `POST /api/v2/totp/secrets`: either `uri`, or `label`
/// with optional parameters. Unknown fields are ignored. `Debug` shows
/// whether `uri` and `secret` were given, never their text.
#[derive(Default, ToSchema)]
pub struct CreateSecretRequest {
    /// An `otpauth://totp/...` URI (from a QR code). Overrides the other
    /// fields; `label` and `issuer` are used only when the URI has none.
    #[schema(example = "otpauth://totp/GitHub:alice?secret=JBSWY3DPEHPK3PXP&issuer=GitHub")]
    pub uri: Option<String>,
    /// Account name, required without `uri`. 1 to 256 characters.
    #[schema(example = "alice@example.com", max_length = 256)]
    pub label: Option<String>,
    /// Base32 secret (any case; spaces, hyphens and padding ignored). Omitted:
    /// the vault generates 160 random bits and returns them once.
    pub secret: Option<String>,
    /// Issuing service. At most 256 characters.
    #[schema(example = "GitHub", max_length = 256)]
    pub issuer: Option<String>,
    /// `SHA1` (default), `SHA256` or `SHA512`; case-insensitive.
    #[schema(example = "SHA1")]
    pub algorithm: Option<String>,
    /// 6 (default) or 8.
    #[schema(schema_with = request_digits_schema)]
    pub digits: Option<u8>,
    /// Seconds per code, 1 to 86400; default 30.
    #[schema(minimum = 1, maximum = 86400, example = 30)]
    pub period: Option<u32>,
    /// `totp` (default) or `hotp`. An HOTP secret takes no `period` (400).
    #[schema(rename = "type", example = "totp")]
    pub otp_type: Option<String>,
    /// HOTP only: the counter of the first code, 0 (default) to
    /// 9223372036854775807.
    #[schema(minimum = 0, maximum = 9223372036854775807_i64, example = 0)]
    pub counter: Option<u64>,
    /// TOTP only: steps accepted either side of the current one when a code
    /// is verified, 0 to 2; default 1.
    #[schema(minimum = 0, maximum = 2, example = 1)]
    pub skew: Option<u8>,
    /// Only for a generated secret (no `secret`, no `uri`): also return the
    /// secret's `otpauth://` URI as a QR code, `svg` (SVG text) or `png` (a
    /// `data:image/png;base64,` URI), in the answer's `qr`.
    #[schema(example = "svg")]
    pub qr: Option<String>,
}

impl fmt::Debug for CreateSecretRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateSecretRequest")
            .field("uri", &self.uri.as_ref().map(|_| Redacted))
            .field("label", &self.label)
            .field("secret", &self.secret.as_ref().map(|_| Redacted))
            .field("issuer", &self.issuer)
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .field("period", &self.period)
            .field("type", &self.otp_type)
            .field("counter", &self.counter)
            .field("skew", &self.skew)
            .field("qr", &self.qr)
            .finish()
    }
}

/// Stands for a value `Debug` must not show.
pub(crate) struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// `digits` of a create request: 6 or 8, or null for the default. An enum,
/// not a range: the OTP core also computes 7-digit codes, but the API's
/// contract (and Sendblue's SDK types) allow only 6 and 8, so 7 is refused.
fn request_digits_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
        .enum_values(Some([
            serde_json::Value::from(6),
            serde_json::Value::from(8),
            serde_json::Value::Null,
        ]))
        .description(Some("6 (default) or 8."))
        .examples([6])
        .build()
}

/// A stored secret as listed: never the secret itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct TotpSecret {
    /// Secret id (UUID).
    pub id: Uuid,
    /// Account name.
    pub label: String,
    /// Issuing service, or null.
    pub issuer: Option<String>,
    /// HMAC algorithm.
    pub algorithm: AlgorithmName,
    /// Code length.
    #[schema(example = 6)]
    pub digits: u8,
    /// Seconds per code.
    #[schema(example = 30)]
    pub period: u32,
    /// Enrollment time, RFC 3339 UTC.
    #[schema(example = "2026-01-01T00:00:00.000Z")]
    pub created_at: String,
    /// `totp` or `hotp`.
    #[serde(rename = "type")]
    #[schema(rename = "type", value_type = String, example = "totp")]
    pub otp_type: &'static str,
    /// HOTP only: the counter of the next code handed out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counter: Option<u64>,
    /// TOTP only: steps accepted either side of the current one by a
    /// verification (0 to 2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skew: Option<u8>,
}

/// `type`, `counter` and `skew` of a secret as shown.
fn kind_fields(kind: SecretKind) -> (&'static str, Option<u64>, Option<u8>) {
    match kind {
        SecretKind::Totp { skew } => (kind.type_name(), None, Some(skew.get())),
        SecretKind::Hotp { counter } => (kind.type_name(), Some(counter), None),
    }
}

impl From<&SecretInfo> for TotpSecret {
    fn from(info: &SecretInfo) -> TotpSecret {
        let (otp_type, counter, skew) = kind_fields(info.kind);
        TotpSecret {
            id: info.id,
            label: info.label.clone(),
            issuer: info.issuer.clone(),
            algorithm: info.algorithm.into(),
            digits: info.digits.get(),
            period: info.period.get(),
            created_at: rfc3339_millis(info.created_at),
            otp_type,
            counter,
            skew,
        }
    }
}

/// A secret just created: the listed fields plus the secret, shown this once.
/// `Debug` does not show the secret.
#[derive(Serialize, ToSchema)]
pub struct CreatedTotpSecret {
    /// Secret id (UUID).
    pub id: Uuid,
    /// Account name.
    pub label: String,
    /// Issuing service, or null.
    pub issuer: Option<String>,
    /// HMAC algorithm.
    pub algorithm: AlgorithmName,
    /// Code length.
    pub digits: u8,
    /// Seconds per code.
    pub period: u32,
    /// Enrollment time, RFC 3339 UTC.
    pub created_at: String,
    /// The base32 secret (upper case, no padding). Returned only here.
    pub secret: String,
    /// `totp` or `hotp`.
    #[serde(rename = "type")]
    #[schema(rename = "type", value_type = String, example = "totp")]
    pub otp_type: &'static str,
    /// HOTP only: the counter of the next code handed out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counter: Option<u64>,
    /// TOTP only: steps accepted either side of the current one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skew: Option<u8>,
    /// Generated secrets only: the `otpauth://` URI an authenticator app
    /// enrolls from (it holds the secret). Returned only here.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(
        example = "otpauth://totp/GitHub:alice?secret=JBSWY3DPEHPK3PXP&issuer=GitHub&algorithm=SHA1&digits=6&period=30"
    )]
    pub uri: Option<String>,
    /// Generated secrets created with `qr`: `uri` as a QR code, SVG text or
    /// a `data:image/png;base64,` URI. Returned only here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr: Option<String>,
}

impl fmt::Debug for CreatedTotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedTotpSecret")
            .field("id", &self.id)
            .field("label", &self.label)
            .field("issuer", &self.issuer)
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .field("period", &self.period)
            .field("created_at", &self.created_at)
            .field("secret", &Redacted)
            .field("uri", &self.uri.as_ref().map(|_| Redacted))
            .field("qr", &self.qr.as_ref().map(|_| Redacted))
            .finish()
    }
}

impl From<&CreatedSecret> for CreatedTotpSecret {
    fn from(created: &CreatedSecret) -> CreatedTotpSecret {
        let listed = TotpSecret::from(&created.info);
        CreatedTotpSecret {
            id: listed.id,
            label: listed.label,
            issuer: listed.issuer,
            algorithm: listed.algorithm,
            digits: listed.digits,
            period: listed.period,
            created_at: listed.created_at,
            secret: created.secret.to_base32().to_string(),
            otp_type: listed.otp_type,
            counter: listed.counter,
            skew: listed.skew,
            uri: None,
            qr: None,
        }
    }
}

/// Answer of a create.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreateSecretResponse {
    /// Always `"OK"`.
    #[schema(value_type = String, example = "OK")]
    pub status: &'static str,
    /// The new secret.
    pub totp_secret: CreatedTotpSecret,
}

impl CreateSecretResponse {
    pub(crate) fn new(totp_secret: CreatedTotpSecret) -> CreateSecretResponse {
        CreateSecretResponse {
            status: OK,
            totp_secret,
        }
    }
}

/// Answer of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListSecretsResponse {
    /// Always `"OK"`.
    #[schema(value_type = String, example = "OK")]
    pub status: &'static str,
    /// The account's secrets, oldest first.
    pub totp_secrets: Vec<TotpSecret>,
    /// Only when `limit` or `cursor` was given: pass as `cursor` for the
    /// next page; `null` on the last page. Absent from a whole list.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, required = false)]
    pub next_cursor: Option<Option<String>>,
}

impl ListSecretsResponse {
    /// The document a list streams (see `secrets::list_secrets`), whole.
    #[cfg(test)]
    pub(crate) fn new(totp_secrets: Vec<TotpSecret>) -> ListSecretsResponse {
        ListSecretsResponse {
            status: OK,
            totp_secrets,
            next_cursor: None,
        }
    }

    /// One page of a paged list.
    pub(crate) fn page(
        totp_secrets: Vec<TotpSecret>,
        next_cursor: Option<String>,
    ) -> ListSecretsResponse {
        ListSecretsResponse {
            status: OK,
            totp_secrets,
            next_cursor: Some(next_cursor),
        }
    }
}

/// Answer of a get or an update of one secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretResponse {
    /// Always `"OK"`.
    #[schema(value_type = String, example = "OK")]
    pub status: &'static str,
    /// The secret (never its secret value).
    pub totp_secret: TotpSecret,
}

impl SecretResponse {
    pub(crate) fn new(totp_secret: TotpSecret) -> SecretResponse {
        SecretResponse {
            status: OK,
            totp_secret,
        }
    }
}

/// Request body of `PATCH /api/v2/totp/secrets/{id}`: at least one field.
/// The key material and the OTP parameters (`secret`, `uri`, `algorithm`,
/// `digits`, `period`, `type`, `counter`) are fixed at creation: sending any
/// of them is a 400 naming it. Other unknown fields are ignored, as on
/// create. Each field is one `Option` (and one parse in
/// `secrets::parse_update_request`), so a new setting is one more field.
#[derive(Debug, Default, ToSchema)]
pub struct UpdateSecretRequest {
    /// New account name, 1 to 256 characters; absent leaves it (null is
    /// refused: a secret always has a label).
    #[schema(example = "alice@example.com", max_length = 256)]
    pub label: Option<String>,
    /// New issuing service, at most 256 characters; `null` (or an empty
    /// string, as on create) clears it; absent leaves it.
    #[schema(value_type = Option<String>, example = "GitHub", max_length = 256)]
    pub issuer: Option<Option<String>>,
    /// New TOTP skew: how many steps either side of the current one a
    /// verification accepts, 0 to 2 (refused for an HOTP secret); absent
    /// leaves it.
    #[schema(minimum = 0, maximum = 2)]
    pub skew: Option<u8>,
}

/// Answer of a code request for an HOTP secret: the code of the stored
/// counter, which has now moved on by one. `Debug` does not show the code.
#[derive(Serialize, ToSchema)]
pub struct HotpCodeResponse {
    /// Always `"OK"`.
    #[schema(value_type = String, example = "OK")]
    pub status: &'static str,
    /// The code, zero-padded to `digits`.
    #[schema(example = "755224")]
    pub code: String,
    /// The counter the code is for; no other request gets it.
    #[schema(example = 0)]
    pub counter: u64,
    /// The secret's code length.
    pub digits: u8,
}

impl fmt::Debug for HotpCodeResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HotpCodeResponse")
            .field("status", &self.status)
            .field("code", &Redacted)
            .field("counter", &self.counter)
            .field("digits", &self.digits)
            .finish()
    }
}

impl From<&HotpCodeAt> for HotpCodeResponse {
    fn from(code: &HotpCodeAt) -> HotpCodeResponse {
        HotpCodeResponse {
            status: OK,
            code: code.code.to_string(),
            counter: code.counter,
            digits: code.digits.get(),
        }
    }
}

/// Answer of `GET /api/v2/totp/code/{id}`: a TOTP code with its validity,
/// or an HOTP code with its counter (told apart by `expires_in` and
/// `counter`, each required by one form only).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum CodeAnswer {
    /// A TOTP secret's current code.
    Totp(CodeResponse),
    /// An HOTP secret's code for the stored counter, now advanced.
    Hotp(HotpCodeResponse),
}

/// Request body of `POST /api/v2/totp/secrets/{id}/verify`. `Debug` does
/// not show the code.
#[derive(ToSchema)]
pub struct VerifyRequest {
    /// The code as typed: spaces anywhere and a trailing newline are
    /// ignored; anything else that is not `digits` digits is not valid.
    #[schema(example = "123456")]
    pub code: String,
}

impl fmt::Debug for VerifyRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyRequest")
            .field("code", &Redacted)
            .finish()
    }
}

/// Answer of a verification.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyResponse {
    /// Always `"OK"`.
    #[schema(value_type = String, example = "OK")]
    pub status: &'static str,
    /// Whether the code was accepted (a code is accepted at most once).
    pub valid: bool,
}

impl VerifyResponse {
    pub(crate) fn new(valid: bool) -> VerifyResponse {
        VerifyResponse { status: OK, valid }
    }
}

/// Answer of a code request. `Debug` does not show the code.
#[derive(Serialize, ToSchema)]
pub struct CodeResponse {
    /// Always `"OK"`.
    #[schema(value_type = String, example = "OK")]
    pub status: &'static str,
    /// The current code, zero-padded to `digits`.
    #[schema(example = "482031")]
    pub code: String,
    /// Seconds until the code's period ends, 1..=period.
    #[schema(example = 14)]
    pub expires_in: u32,
    /// End of the code's period, RFC 3339 UTC.
    pub expires_at: String,
    /// The secret's period.
    pub period: u32,
    /// The secret's code length.
    pub digits: u8,
}

impl fmt::Debug for CodeResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodeResponse")
            .field("status", &self.status)
            .field("code", &Redacted)
            .field("expires_in", &self.expires_in)
            .field("expires_at", &self.expires_at)
            .field("period", &self.period)
            .field("digits", &self.digits)
            .finish()
    }
}

impl From<&CodeAt> for CodeResponse {
    fn from(code: &CodeAt) -> CodeResponse {
        let expires_at_ms = i64::try_from(code.expires_at)
            .unwrap_or(i64::MAX / 1000)
            .saturating_mul(1000);
        CodeResponse {
            status: OK,
            code: code.code.to_string(),
            expires_in: code.expires_in,
            expires_at: rfc3339_seconds(UnixTime(expires_at_ms)),
            period: code.period.get(),
            digits: code.digits.get(),
        }
    }
}

/// One event of the audit log. Never a code, a secret or a key secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEvent {
    /// The event's id: later events have higher ids.
    pub id: i64,
    /// When, RFC 3339 UTC with milliseconds.
    #[schema(example = "2026-01-01T00:00:00.123Z")]
    pub at: String,
    /// `secret.create`, `secret.delete`, `code.read`, `key.create`,
    /// `key.revoke`, `auth.failure`, ...
    #[schema(example = "code.read")]
    pub action: String,
    /// `ok`, `denied`, `invalid`, `rate_limited` or `error`.
    #[schema(example = "ok")]
    pub outcome: String,
    /// The API key used.
    pub key_id: Option<String>,
    /// The key's role.
    pub role: Option<String>,
    /// The secret acted on.
    pub secret_id: Option<String>,
    /// The client's address.
    pub remote_addr: Option<String>,
    /// The client's `User-Agent`.
    pub user_agent: Option<String>,
    /// The request id (`x-request-id`) the client was answered with.
    pub request_id: Option<String>,
}

impl From<AuditRow> for AuditEvent {
    fn from(row: AuditRow) -> AuditEvent {
        let r = row.record;
        AuditEvent {
            id: row.id,
            at: rfc3339_millis(UnixTime(r.at)),
            action: r.action,
            outcome: r.outcome,
            key_id: r.key_id,
            role: r.role,
            secret_id: r.secret_id.map(|id| id.to_string()),
            remote_addr: r.remote_addr,
            user_agent: r.user_agent,
            request_id: r.request_id,
        }
    }
}

/// Request body of `POST /api/v2/keys`. Unknown fields are ignored.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // Only the schema: the handler reads the JSON object.
pub struct CreateKeyRequest {
    /// A name for people (at most 128 characters, no control characters).
    #[schema(
        example = "deploy bot",
        max_length = 128,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub name: Option<String>,
    /// What the key may do.
    pub role: RoleName,
    /// The secrets the key sees (1 to 100 ids of this account); omitted or
    /// null: every secret. A scoped key cannot create secrets.
    #[schema(min_items = 1, max_items = 100)]
    pub secret_ids: Option<Vec<Uuid>>,
    /// When the key stops authenticating, RFC 3339, in the future; omitted
    /// or null: never.
    #[schema(format = DateTime, example = "2027-01-01T00:00:00Z")]
    pub expires_at: Option<String>,
}

/// Role names on the wire (the schema of `role`; values travel as text).
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[allow(dead_code)] // Only the schema.
#[serde(rename_all = "lowercase")]
pub enum RoleName {
    /// Everything, keys included.
    Owner,
    /// Everything except managing keys.
    Admin,
    /// List and read secrets, get codes, create secrets.
    Agent,
    /// Only verify codes.
    Verifier,
}

/// An API key as listed: never its secret or hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKey {
    /// Public key id.
    #[schema(example = "tk_0123456789abcdef01234567")]
    pub key_id: String,
    /// A name for people (`""` when none was given).
    pub name: String,
    /// What the key may do.
    #[schema(value_type = RoleName, example = "agent")]
    pub role: String,
    /// The secrets the key sees, or null for every secret.
    pub secret_ids: Option<Vec<Uuid>>,
    /// Creation time, RFC 3339 UTC.
    pub created_at: String,
    /// Expiry, RFC 3339 UTC, or null for never.
    pub expires_at: Option<String>,
    /// Revocation time, RFC 3339 UTC, or null.
    pub revoked_at: Option<String>,
    /// Last recorded use, RFC 3339 UTC, or null; recorded every few
    /// seconds, so it may lag.
    pub last_used_at: Option<String>,
}

impl From<&ApiKeyInfo> for ApiKey {
    fn from(info: &ApiKeyInfo) -> ApiKey {
        ApiKey {
            key_id: info.key_id.clone(),
            name: info.name.clone(),
            role: info.role.clone(),
            secret_ids: info.secret_ids.clone(),
            created_at: rfc3339_millis(info.created_at),
            expires_at: info.expires_at.map(rfc3339_millis),
            revoked_at: info.revoked_at.map(rfc3339_millis),
            last_used_at: info.last_used_at.map(rfc3339_millis),
        }
    }
}

/// A page of the audit log, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditListResponse {
    /// Always `"OK"`.
    #[schema(value_type = String, example = "OK")]
    pub status: &'static str,
    /// The events, newest first.
    pub events: Vec<AuditEvent>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl AuditListResponse {
    pub(crate) fn new(events: Vec<AuditEvent>, next_cursor: Option<String>) -> AuditListResponse {
        AuditListResponse {
            status: OK,
            events,
            next_cursor,
        }
    }
}

/// Answer of `POST /api/v2/keys`: the key and its secret, shown this once.
/// `Debug` does not show the secret.
#[derive(Serialize, ToSchema)]
pub struct CreateKeyResponse {
    /// Always `"OK"`.
    #[schema(value_type = String, example = "OK")]
    pub status: &'static str,
    /// The new key.
    pub api_key: ApiKey,
    /// The key's secret: send it as `sb-api-secret-key`. Shown only here.
    pub secret: String,
}

impl CreateKeyResponse {
    pub(crate) fn new(api_key: ApiKey, secret: String) -> CreateKeyResponse {
        CreateKeyResponse {
            status: OK,
            api_key,
            secret,
        }
    }
}

impl fmt::Debug for CreateKeyResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateKeyResponse")
            .field("status", &self.status)
            .field("api_key", &self.api_key)
            .field("secret", &Redacted)
            .finish()
    }
}

/// Answer of `GET /api/v2/keys`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListKeysResponse {
    /// Always `"OK"`.
    #[schema(value_type = String, example = "OK")]
    pub status: &'static str,
    /// The account's keys, revoked ones included, oldest first.
    pub api_keys: Vec<ApiKey>,
}

impl ListKeysResponse {
    pub(crate) fn new(api_keys: Vec<ApiKey>) -> ListKeysResponse {
        ListKeysResponse {
            status: OK,
            api_keys,
        }
    }
}

/// `2026-01-01T00:00:00.123Z`.
pub(crate) fn rfc3339_millis(t: UnixTime) -> String {
    t.rfc3339_millis()
}

/// `2026-01-01T00:00:30Z`.
pub(crate) fn rfc3339_seconds(t: UnixTime) -> String {
    t.rfc3339_seconds()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Asserts that `value`'s Debug, compact and pretty, says `[redacted]`
    /// and contains none of `hidden` (in any case); failures name the
    /// value, not the hidden text.
    pub(crate) fn assert_redacted(what: &str, value: &impl fmt::Debug, hidden: &[&str]) {
        for debug in [format!("{value:?}"), format!("{value:#?}")] {
            assert!(debug.contains("[redacted]"), "{what}: no [redacted] marker");
            for (i, text) in hidden.iter().enumerate() {
                assert!(
                    !debug.to_lowercase().contains(&text.to_lowercase()),
                    "{what}: Debug shows hidden text #{i}"
                );
            }
        }
    }

    const SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    #[test]
    fn create_secret_request_debug_shows_neither_uri_nor_secret() {
        let uri = format!("otpauth://totp/Acme:bob?secret={SECRET}");
        let request = CreateSecretRequest {
            uri: Some(uri.clone()),
            label: Some("bob".to_owned()),
            secret: Some(SECRET.to_lowercase()),
            issuer: Some("Acme".to_owned()),
            algorithm: Some("SHA1".to_owned()),
            digits: Some(6),
            period: Some(30),
            otp_type: None,
            counter: None,
            skew: Some(1),
            qr: Some("svg".to_owned()),
        };
        assert_redacted(
            "CreateSecretRequest",
            &request,
            &[&uri, SECRET, &SECRET[..16], "otpauth"],
        );
        assert!(format!("{request:?}").contains("bob"), "the label is shown");
    }

    #[test]
    fn created_totp_secret_and_its_response_debug_hide_the_secret() {
        let created = CreatedTotpSecret {
            id: Uuid::nil(),
            label: "bob".to_owned(),
            issuer: None,
            algorithm: AlgorithmName::Sha1,
            digits: 6,
            period: 30,
            created_at: "2026-01-01T00:00:00.000Z".to_owned(),
            secret: SECRET.to_owned(),
            otp_type: "totp",
            counter: None,
            skew: Some(1),
            uri: Some(format!("otpauth://totp/bob?secret={SECRET}")),
            qr: Some("<svg>QR-OF-THE-SECRET</svg>".to_owned()),
        };
        let hidden = [SECRET, &SECRET[..16], "otpauth", "QR-OF-THE-SECRET"];
        assert_redacted("CreatedTotpSecret", &created, &hidden);
        let response = CreateSecretResponse::new(created);
        assert_redacted("CreateSecretResponse", &response, &hidden);
    }

    #[test]
    fn code_response_debug_hides_the_code() {
        let response = CodeResponse {
            status: OK,
            code: "094287".to_owned(),
            expires_in: 14,
            expires_at: "2026-01-01T00:00:30Z".to_owned(),
            period: 30,
            digits: 6,
        };
        assert_redacted("CodeResponse", &response, &["094287", "94287"]);
        let hotp = HotpCodeResponse {
            status: OK,
            code: "755224".to_owned(),
            counter: 0,
            digits: 6,
        };
        assert_redacted("HotpCodeResponse", &hotp, &["755224", "55224"]);
        let verify = VerifyRequest {
            code: "287082".to_owned(),
        };
        assert_redacted("VerifyRequest", &verify, &["287082", "87082"]);
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(
            rfc3339_millis(UnixTime(1_700_000_000_123)),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(
            rfc3339_seconds(UnixTime(1_700_000_010_000)),
            "2023-11-14T22:13:30Z"
        );
    }
}

/// The JSON form of `POST /api/v2/totp/secrets/import` (the other form is
/// the raw file as the body). `Debug` shows neither the data nor the
/// password. The handler reads the body field by field (the raw form has
/// none); this type is the JSON form's schema in the OpenAPI document.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ImportRequest {
    /// `auto` (the default: detected from the data), `qr`, `otpauth`,
    /// `google`, `aegis`, `2fas`, `andotp`, `bitwarden`, `1pux`, `ente` or
    /// `proton`.
    #[schema(example = "auto")]
    pub format: Option<String>,
    /// The file: its text, or with `encoding` `base64` its bytes in base64
    /// (images, zip archives, andOTP's encrypted backups).
    #[schema(example = "otpauth://totp/GitHub:alice?secret=JBSWY3DPEHPK3PXP&issuer=GitHub")]
    pub data: String,
    /// `text` (the default) or `base64`.
    #[schema(example = "text")]
    pub encoding: Option<String>,
    /// The password of an encrypted export. Never logged, never stored.
    pub password: Option<String>,
    /// Store nothing; answer what an import would do.
    pub dry_run: Option<bool>,
    /// Store every entry or none: one invalid entry and nothing is stored
    /// (the answer is then a 400 that carries the results).
    pub atomic: Option<bool>,
}

impl fmt::Debug for ImportRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImportRequest")
            .field("format", &self.format)
            .field("data", &Redacted)
            .field("encoding", &self.encoding)
            .field("password", &Redacted)
            .field("dry_run", &self.dry_run)
            .field("atomic", &self.atomic)
            .finish()
    }
}

/// Answer of an import.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportResponse {
    /// `"OK"`; `"ERROR"` when an atomic import stored nothing.
    #[schema(value_type = String, example = "OK")]
    pub status: &'static str,
    /// Only with status `ERROR`: `invalid_request`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub error: Option<&'static str>,
    /// Only with status `ERROR`: which entry kept the atomic import from
    /// storing anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Whether this was a dry run (nothing stored).
    pub dry_run: bool,
    /// Entries stored (in a dry run: that would be).
    pub created: usize,
    /// Entries whose key bytes the account already holds, or an earlier
    /// entry of the file has.
    pub duplicates: usize,
    /// Entries that cannot be stored.
    pub invalid: usize,
    /// One result per entry, in file order.
    pub results: Vec<ImportResultBody>,
}

impl ImportResponse {
    pub(crate) fn new(report: &totpd_vault::ImportReport) -> ImportResponse {
        use totpd_vault::ImportOutcome;
        ImportResponse {
            status: OK,
            error: None,
            message: None,
            dry_run: report.dry_run,
            created: report.count(ImportOutcome::Created),
            duplicates: report.count(ImportOutcome::Duplicate),
            invalid: report.count(ImportOutcome::Invalid),
            results: report
                .results
                .iter()
                .enumerate()
                .map(|(index, result)| ImportResultBody {
                    index,
                    outcome: result.outcome.as_str(),
                    id: result.id,
                    label: result.label.clone(),
                    issuer: result.issuer.clone(),
                    message: result.message.clone(),
                })
                .collect(),
        }
    }
}

/// What became of one entry of an import.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportResultBody {
    /// The entry's position in the file, from 0.
    pub index: usize,
    /// `created`, `duplicate` or `invalid`.
    #[schema(value_type = String, example = "created")]
    pub outcome: &'static str,
    /// The stored secret (for a duplicate, the one already held); null for
    /// an invalid entry and, in a dry run, for one not yet stored.
    pub id: Option<Uuid>,
    /// The secret's label (for an invalid entry, the name the file gave it).
    pub label: Option<String>,
    /// The secret's issuer.
    pub issuer: Option<String>,
    /// Why an entry is invalid; null otherwise.
    pub message: Option<String>,
}
