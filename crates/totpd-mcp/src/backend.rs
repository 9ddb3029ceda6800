//! What the tools need from a vault: [`TotpBackend`], and the values it
//! answers with. Two implementations exist: [`crate::HttpBackend`] (the REST
//! API, for `totpd mcp`) and the in-process vault of `totpd serve` (in
//! `totpd-api`, with the request's key).
//!
//! The values deserialize from the REST API's own JSON (unknown fields are
//! ignored), so both backends read one wire shape and answer the same.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A stored secret as the tools show it: never the secret itself.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct SecretSummary {
    /// Secret id.
    pub id: Uuid,
    /// Account name.
    pub label: String,
    /// Issuing service.
    pub issuer: Option<String>,
    /// `totp` or `hotp`.
    #[serde(rename = "type", default = "totp")]
    pub otp_type: String,
    /// `SHA1`, `SHA256` or `SHA512`.
    pub algorithm: String,
    /// Code length.
    pub digits: u8,
    /// Seconds per code (TOTP).
    pub period: u32,
}

fn totp() -> String {
    "totp".to_owned()
}

/// A code handed out: the REST API's code answer.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct IssuedCode {
    /// The code.
    pub code: String,
    /// Code length.
    pub digits: u8,
    /// TOTP: seconds the code is still valid for.
    #[serde(default)]
    pub expires_in: Option<u32>,
    /// TOTP: when the code expires, RFC 3339 UTC.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// TOTP: seconds per code.
    #[serde(default)]
    pub period: Option<u32>,
    /// HOTP: the counter this code was computed for.
    #[serde(default)]
    pub counter: Option<u64>,
}

/// What to store.
#[derive(Debug)]
pub enum NewSecretInput {
    /// An `otpauth://` URI.
    Uri(zeroize::Zeroizing<String>),
    /// A base32 secret with its label and issuer.
    Fields {
        /// Base32 secret.
        secret: zeroize::Zeroizing<String>,
        /// Account name.
        label: String,
        /// Issuing service.
        issuer: Option<String>,
    },
    /// A QR code screenshot (PNG, JPEG or WebP bytes).
    QrImage {
        /// The image file.
        bytes: Vec<u8>,
        /// Its media type (`image/png`, `image/jpeg` or `image/webp`).
        media_type: &'static str,
    },
}

/// One secret stored (or found already stored) by an add.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct AddedSecret {
    /// Secret id.
    pub id: Uuid,
    /// Account name.
    pub label: String,
    /// Issuing service.
    pub issuer: Option<String>,
    /// `created`, or `duplicate` when the account already held the same
    /// key (then `id` is the one already stored).
    pub outcome: String,
}

/// An entry of a QR code that could not be stored.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct SkippedEntry {
    /// The name the code gave it.
    pub label: Option<String>,
    /// Its issuer.
    pub issuer: Option<String>,
    /// Why it was not stored.
    pub reason: String,
}

/// What an add stored.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct AddOutcome {
    /// Secrets stored or already held.
    pub secrets: Vec<AddedSecret>,
    /// Entries that could not be stored.
    pub skipped: Vec<SkippedEntry>,
}

/// Why a backend call failed. Messages never hold secret material: they
/// come from the API's error bodies, which never do.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendError {
    /// The request is invalid (400).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The API key is missing, wrong, expired or revoked (401).
    #[error("the API key was refused (missing, wrong, expired or revoked)")]
    Unauthorized,
    /// The key's role or scope does not allow this (403).
    #[error("not allowed for this API key: {0}")]
    Forbidden(String),
    /// No such secret in the key's account or scope (404).
    #[error("not found: {0}")]
    NotFound(String),
    /// Too many requests or failed verifications (429).
    #[error("rate limited: {0}")]
    RateLimited(String),
    /// The server or its database is unavailable, or could not be reached.
    #[error("totpd is unavailable: {0}")]
    Unavailable(String),
    /// Anything else (an answer the client does not understand, a 5xx).
    #[error("totpd failed: {0}")]
    Other(String),
}

/// The operations behind the tools, each done as the caller's API key.
#[async_trait::async_trait]
pub trait TotpBackend: Send + Sync + std::fmt::Debug {
    /// Secrets whose label or issuer contains `query` (case-insensitive),
    /// or all of them; at most `limit`, oldest first. The second value is
    /// whether more matched.
    async fn list(
        &self,
        query: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<SecretSummary>, bool), BackendError>;

    /// The current code of a secret (an HOTP secret's counter advances),
    /// valid for at least `min_remaining` seconds when given.
    async fn code(&self, id: Uuid, min_remaining: Option<u64>) -> Result<IssuedCode, BackendError>;

    /// Stores a secret.
    async fn add(&self, input: NewSecretInput) -> Result<AddOutcome, BackendError>;

    /// Whether `code` is a valid code of the secret (a code is accepted once).
    async fn verify(&self, id: Uuid, code: &str) -> Result<bool, BackendError>;

    /// Deletes a secret.
    async fn delete(&self, id: Uuid) -> Result<(), BackendError>;
}

/// Error body of the REST API.
#[cfg(feature = "stdio")]
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub(crate) message: Option<String>,
}

/// The REST API's `HTTP status` + error message as a [`BackendError`]: one
/// mapping for the HTTP client and the in-process backend.
pub fn error_from_status(status: u16, message: Option<String>) -> BackendError {
    let message = message.unwrap_or_else(|| format!("HTTP status {status}"));
    match status {
        400 | 413 | 415 | 422 => BackendError::Invalid(message),
        401 => BackendError::Unauthorized,
        403 => BackendError::Forbidden(message),
        404 => BackendError::NotFound(message),
        429 => BackendError::RateLimited(message),
        502..=504 => BackendError::Unavailable(message),
        _ => BackendError::Other(message),
    }
}

/// Reads an import answer's results (the REST `ImportResponse` JSON) as an
/// [`AddOutcome`].
pub fn outcome_from_import(body: &serde_json::Value) -> AddOutcome {
    let mut outcome = AddOutcome::default();
    let results = body
        .get("results")
        .and_then(serde_json::Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for result in results {
        let text = |field: &str| {
            result
                .get(field)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        let id = text("id").and_then(|id| Uuid::parse_str(&id).ok());
        match (text("outcome").as_deref(), id) {
            (Some(kind @ ("created" | "duplicate")), Some(id)) => {
                outcome.secrets.push(AddedSecret {
                    id,
                    label: text("label").unwrap_or_default(),
                    issuer: text("issuer"),
                    outcome: kind.to_owned(),
                })
            }
            _ => outcome.skipped.push(SkippedEntry {
                label: text("label"),
                issuer: text("issuer"),
                reason: text("message").unwrap_or_else(|| "not stored".to_owned()),
            }),
        }
    }
    outcome
}

/// Reads a create answer (the REST `CreateSecretResponse` JSON, whose
/// secret value is dropped here) as an [`AddOutcome`].
pub fn outcome_from_create(body: &serde_json::Value) -> Result<AddOutcome, BackendError> {
    let secret = body
        .get("totp_secret")
        .ok_or_else(|| BackendError::Other("the create answer has no totp_secret".to_owned()))?;
    let text = |field: &str| {
        secret
            .get(field)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    let id = text("id")
        .and_then(|id| Uuid::parse_str(&id).ok())
        .ok_or_else(|| BackendError::Other("the create answer has no secret id".to_owned()))?;
    Ok(AddOutcome {
        secrets: vec![AddedSecret {
            id,
            label: text("label").unwrap_or_default(),
            issuer: text("issuer"),
            outcome: "created".to_owned(),
        }],
        skipped: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_answer_of_either_kind_reads_back() {
        let totp: IssuedCode = serde_json::from_str(
            r#"{"status":"OK","code":"123456","expires_in":12,"expires_at":"2026-01-01T00:00:30.000Z","period":30,"digits":6}"#,
        )
        .unwrap();
        assert_eq!(totp.expires_in, Some(12));
        assert_eq!(totp.counter, None);
        let hotp: IssuedCode =
            serde_json::from_str(r#"{"status":"OK","code":"12345678","counter":7,"digits":8}"#)
                .unwrap();
        assert_eq!(hotp.counter, Some(7));
    }

    #[test]
    fn the_create_answer_never_carries_the_secret_into_the_outcome() {
        let body = serde_json::json!({"status":"OK","totp_secret":{
            "id":"6f1c1e3e-0d6f-4c39-9e59-3b1b8a4d0c11","label":"a","issuer":null,
            "secret":"JBSWY3DPEHPK3PXP"}});
        let outcome = outcome_from_create(&body).unwrap();
        let text = serde_json::to_string(&outcome).unwrap();
        assert!(!text.contains("JBSWY3DPEHPK3PXP"));
    }

    #[test]
    fn statuses_map_to_the_error_a_model_can_act_on() {
        assert_eq!(error_from_status(401, None), BackendError::Unauthorized);
        assert!(matches!(
            error_from_status(403, Some("x".into())),
            BackendError::Forbidden(_)
        ));
        assert!(matches!(
            error_from_status(503, None),
            BackendError::Unavailable(_)
        ));
    }
}
