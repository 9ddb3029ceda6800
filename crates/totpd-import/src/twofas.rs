//! Reads 2FAS Authenticator backups (`.2fas`), plain and password-encrypted.
//!
//! 2FAS publishes no format document; this follows the backups 2FAS writes
//! and the importer Aegis keeps for them (`TwoFASImporter.java` and its
//! test backups, schema versions 1 to 4,
//! <https://github.com/beemdevelopment/Aegis>), cross-checked with andcli's
//! reader (<https://github.com/tjblackheart/andcli>).
//!
//! The file is a JSON object with `schemaVersion` and `services[]`; each
//! service has `name`, `secret` (base32) and `otp` {`label`, `account`,
//! `issuer`, `digits`, `period`, `algorithm`, `tokenType` (`TOTP`, `HOTP`,
//! `STEAM`), `counter`}. An encrypted backup leaves `services` empty and
//! holds `servicesEncrypted`: `base64(ciphertext‖tag):base64(salt):base64(iv)`,
//! AES-256-GCM under PBKDF2-HMAC-SHA256(password, salt, 10 000 iterations,
//! 256 bits), whose plaintext is the JSON array of services.
//!
//! Names: the issuer is the service's `name` (what 2FAS shows as the
//! service, and what Aegis imports as the issuer), else `otp.issuer`; the
//! account is `otp.account`, else `otp.label` without an `issuer:` prefix.

use base64::Engine as _;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::crypto::open_aes256_gcm;
use crate::json::{OtpFields, SecretText, json_error, text};
use crate::{Entry, Format, ImportError, Limits, Password, check_count, trim_text_start};

const FORMAT: Format = Format::TwoFas;

/// PBKDF2 iterations of an encrypted backup: fixed by the app, not stored
/// in the file (`TwoFASImporter.ITERATION_COUNT`).
const ITERATIONS: u32 = 10_000;

/// AES-GCM tag and IV lengths 2FAS uses (Java's GCM default tag, 12-byte IV).
const TAG_LEN: usize = 16;
const IV_LEN: usize = 12;

/// Whether `json` is shaped like a 2FAS backup: an object with a numeric
/// `schemaVersion` and a `services` array or a `servicesEncrypted` string.
pub(crate) fn sniff(json: &Value) -> bool {
    json.get("schemaVersion").is_some_and(Value::is_u64)
        && (json.get("services").is_some_and(Value::is_array)
            || json.get("servicesEncrypted").is_some_and(Value::is_string))
}

/// Reads a 2FAS backup, opening it with `password` when it is encrypted.
pub(crate) fn read(
    data: &[u8],
    password: Option<&Password>,
    limits: &Limits,
) -> Result<Vec<Entry>, ImportError> {
    let mut backup: Value = serde_json::from_slice(trim_text_start(data))
        .map_err(|error| malformed(format!("the file is not JSON ({})", json_error(&error))))?;
    if !backup.is_object() {
        return Err(malformed("the file is not a JSON object"));
    }
    let services: Vec<Service> = match backup.get("servicesEncrypted").and_then(Value::as_str) {
        Some(encrypted) if !encrypted.trim().is_empty() => {
            let plaintext = decrypt(encrypted, password, limits)?;
            serde_json::from_slice(&plaintext).map_err(|error| {
                malformed(format!(
                    "the decrypted services are not as documented ({})",
                    json_error(&error)
                ))
            })?
        }
        _ => {
            let services = backup
                .get_mut("services")
                .map(Value::take)
                .filter(Value::is_array)
                .ok_or_else(|| malformed("the backup has no services array"))?;
            serde_json::from_value(services).map_err(|error| {
                malformed(format!(
                    "the services are not as documented ({})",
                    json_error(&error)
                ))
            })?
        }
    };
    check_count(services.len(), limits)?;
    let mut entries = Vec::with_capacity(services.len());
    for service in services {
        entries.push(entry(service));
        check_count(entries.len(), limits)?;
    }
    Ok(entries)
}

fn malformed(reason: impl Into<String>) -> ImportError {
    ImportError::malformed(FORMAT, reason)
}

#[derive(serde::Deserialize)]
struct Service {
    #[serde(default)]
    name: Value,
    #[serde(default)]
    secret: SecretText,
    #[serde(default)]
    otp: Option<Otp>,
}

#[derive(Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Otp {
    #[serde(default)]
    label: Value,
    #[serde(default)]
    account: Value,
    #[serde(default)]
    issuer: Value,
    #[serde(default)]
    digits: Value,
    #[serde(default)]
    period: Value,
    #[serde(default)]
    algorithm: Value,
    #[serde(default)]
    token_type: Value,
    #[serde(default)]
    counter: Value,
}

fn entry(service: Service) -> Entry {
    let otp = service.otp.unwrap_or_default();
    let issuer = text(&service.name)
        .filter(|name| !name.trim().is_empty())
        .or_else(|| text(&otp.issuer));
    let label = text(&otp.account).or_else(|| {
        text(&otp.label).map(|label| match (&issuer, label.split_once(':')) {
            (Some(issuer), Some((prefix, account))) if prefix.trim() == issuer.trim() => {
                account.trim_start().to_owned()
            }
            _ => label,
        })
    });
    OtpFields {
        kind: &otp.token_type,
        secret: service.secret,
        algorithm: &otp.algorithm,
        digits: &otp.digits,
        period: &otp.period,
        counter: &otp.counter,
        issuer,
        label,
    }
    .into_entry()
}

fn decrypt(
    encrypted: &str,
    password: Option<&Password>,
    limits: &Limits,
) -> Result<Zeroizing<Vec<u8>>, ImportError> {
    let mut parts = encrypted.split(':');
    let mut part = |what: &str| {
        let text = parts
            .next()
            .ok_or_else(|| malformed(format!("servicesEncrypted has no {what}")))?;
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| malformed(format!("the {what} of servicesEncrypted is not Base64")))
    };
    let sealed = part("ciphertext")?;
    let salt = part("salt")?;
    let iv = part("IV")?;
    if iv.len() != IV_LEN {
        return Err(malformed(format!(
            "the IV of servicesEncrypted is {} bytes, not {IV_LEN}",
            iv.len()
        )));
    }
    let tag_at = sealed
        .len()
        .checked_sub(TAG_LEN)
        .ok_or_else(|| malformed("the ciphertext of servicesEncrypted is shorter than its tag"))?;
    let (ciphertext, tag) = sealed.split_at(tag_at);
    if ITERATIONS > limits.max_kdf_iterations {
        return Err(ImportError::TooCostly {
            format: FORMAT,
            reason: format!(
                "PBKDF2 with {ITERATIONS} iterations, more than {}",
                limits.max_kdf_iterations
            ),
        });
    }
    let password = password.ok_or(ImportError::PasswordRequired { format: FORMAT })?;
    let mut key = Zeroizing::new([0u8; 32]);
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), &salt, ITERATIONS, key.as_mut_slice());
    // GCM cannot tell a wrong password from an altered ciphertext; the
    // password is by far the likelier.
    open_aes256_gcm(key.as_slice(), &iv, ciphertext, tag)
        .ok_or(ImportError::WrongPassword { format: FORMAT })
}
