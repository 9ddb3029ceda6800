//! Reads andOTP backups: the plain JSON and the password-encrypted
//! `.json.aes`, as andOTP's sources write them
//! (<https://github.com/andOTP/andOTP>: `Database/Entry.java` for the
//! JSON, `Utilities/BackupHelper.java`, `EncryptionHelper.java` and
//! `Constants.java` for the encryption) and as Aegis' `AndOtpImporter.java`
//! reads them.
//!
//! The plain backup is a JSON array of entries {`secret` (base32),
//! `issuer`, `label`, `digits`, `type` (`TOTP`, `HOTP`, `STEAM`),
//! `algorithm`, `period` or `counter`, `tags`, `thumbnail`, ...}; a missing
//! type, period, digits or algorithm means TOTP, 30 s, 6, SHA1 (Entry.java).
//! Backups from before andOTP kept the issuer apart have no `issuer` key
//! and a label `Issuer - account`; like Aegis, the issuer is taken from
//! before the first ` - ` then. andOTP itself never split at `:`, so a
//! colon in a label is kept.
//!
//! The encrypted backup is binary: a 4-byte big-endian PBKDF2 iteration
//! count (andOTP picks one in 140 000..160 000), a 12-byte salt, a 12-byte
//! nonce, then the AES-256-GCM ciphertext and 16-byte tag of the plain
//! JSON, under PBKDF2-HMAC-SHA1(password, salt, iterations, 256 bits).
//! The oldest encrypted form (a key that is SHA-256 of the password, no
//! iteration count or salt) is not read.

use serde_json::Value;
use zeroize::Zeroizing;

use crate::crypto::open_aes256_gcm;
use crate::json::{OtpFields, SecretText, json_error, text};
use crate::{Entry, Format, ImportError, Limits, Password, check_count, trim_text_start};

const FORMAT: Format = Format::Andotp;

const COUNT_LEN: usize = 4;
const SALT_LEN: usize = 12;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = COUNT_LEN + SALT_LEN + NONCE_LEN;

/// Iteration counts taken as andOTP's when sniffing. andOTP writes
/// 140 000..160 000; the upper bound is the one Aegis' importer refuses
/// above, the lower one keeps short random data from looking like a backup.
const SNIFF_ITERATIONS: std::ops::RangeInclusive<u32> = 1_000..=10_000_000;

/// Whether `json` is shaped like a plain andOTP backup: an array whose
/// first item has a `secret`, a `label` and a `type`, the keys andOTP
/// always writes.
pub(crate) fn sniff(json: &Value) -> bool {
    json.as_array()
        .and_then(|items| items.first())
        .is_some_and(|first| {
            first.get("secret").is_some_and(Value::is_string)
                && first.get("label").is_some_and(Value::is_string)
                && first.get("type").is_some_and(Value::is_string)
        })
}

/// Whether `data` looks like an encrypted andOTP backup. The format has no
/// magic, so this is conservative: long enough for the header and a tag, an
/// iteration count in a plausible range, and not text.
pub(crate) fn sniff_encrypted(data: &[u8]) -> bool {
    data.len() >= HEADER_LEN + TAG_LEN
        && iterations(data).is_some_and(|count| SNIFF_ITERATIONS.contains(&count))
        && std::str::from_utf8(data).is_err()
}

/// Reads an andOTP backup, plain or (opened with `password`) encrypted.
pub(crate) fn read(
    data: &[u8],
    password: Option<&Password>,
    limits: &Limits,
) -> Result<Vec<Entry>, ImportError> {
    let trimmed = trim_text_start(data);
    // An encrypted backup starts with its iteration count, whose first byte
    // is 0 for any count andOTP writes: never `[` or `{`.
    let items: Vec<Item> = if trimmed.starts_with(b"[") || trimmed.starts_with(b"{") {
        parse(trimmed, "the file")?
    } else {
        let plaintext = decrypt(data, password, limits)?;
        parse(&plaintext, "the decrypted backup")?
    };
    check_count(items.len(), limits)?;
    let mut entries = Vec::with_capacity(items.len());
    for item in items {
        entries.push(entry(item));
        check_count(entries.len(), limits)?;
    }
    Ok(entries)
}

fn malformed(reason: impl Into<String>) -> ImportError {
    ImportError::malformed(FORMAT, reason)
}

fn parse(json: &[u8], what: &str) -> Result<Vec<Item>, ImportError> {
    serde_json::from_slice(json).map_err(|error| {
        malformed(format!(
            "{what} is not a JSON array of entries ({})",
            json_error(&error)
        ))
    })
}

#[derive(serde::Deserialize)]
struct Item {
    #[serde(default)]
    secret: SecretText,
    #[serde(default)]
    issuer: Option<Value>,
    #[serde(default)]
    label: Value,
    #[serde(default, rename = "type")]
    kind: Value,
    #[serde(default)]
    algorithm: Value,
    #[serde(default)]
    digits: Value,
    #[serde(default)]
    period: Value,
    #[serde(default)]
    counter: Value,
}

fn entry(item: Item) -> Entry {
    let label = text(&item.label);
    let (label, issuer) = match &item.issuer {
        Some(issuer) => (label, text(issuer)),
        // The older backup without `issuer` (Entry.java, "Older backup
        // version did not save issuer and label separately").
        None => match label.as_deref().and_then(|label| label.split_once(" - ")) {
            Some((issuer, account)) => (Some(account.to_owned()), Some(issuer.to_owned())),
            None => (label, None),
        },
    };
    OtpFields {
        kind: &item.kind,
        secret: item.secret,
        algorithm: &item.algorithm,
        digits: &item.digits,
        period: &item.period,
        counter: &item.counter,
        issuer,
        label,
    }
    .into_entry()
}

/// The big-endian iteration count the backup starts with.
fn iterations(data: &[u8]) -> Option<u32> {
    let bytes: [u8; COUNT_LEN] = data.get(..COUNT_LEN)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

fn decrypt(
    data: &[u8],
    password: Option<&Password>,
    limits: &Limits,
) -> Result<Zeroizing<Vec<u8>>, ImportError> {
    let too_short = || {
        malformed(format!(
            "the file is neither JSON nor an encrypted backup ({} bytes, shorter than the {} of an encrypted backup's header and tag)",
            data.len(),
            HEADER_LEN + TAG_LEN
        ))
    };
    let count = iterations(data).ok_or_else(too_short)?;
    let salt = data
        .get(COUNT_LEN..COUNT_LEN + SALT_LEN)
        .ok_or_else(too_short)?;
    let nonce = data
        .get(COUNT_LEN + SALT_LEN..HEADER_LEN)
        .ok_or_else(too_short)?;
    let sealed = data.get(HEADER_LEN..).ok_or_else(too_short)?;
    let tag_at = sealed.len().checked_sub(TAG_LEN).ok_or_else(too_short)?;
    let (ciphertext, tag) = sealed.split_at(tag_at);
    if count == 0 {
        return Err(malformed("the encrypted backup's iteration count is 0"));
    }
    // Bounded before the password is even asked for: a file claiming
    // billions of iterations is refused at once.
    if count > limits.max_kdf_iterations {
        return Err(ImportError::TooCostly {
            format: FORMAT,
            reason: format!(
                "PBKDF2 with {count} iterations, more than {}",
                limits.max_kdf_iterations
            ),
        });
    }
    let password = password.ok_or(ImportError::PasswordRequired { format: FORMAT })?;
    let mut key = Zeroizing::new([0u8; 32]);
    pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password.as_bytes(), salt, count, key.as_mut_slice());
    // GCM cannot tell a wrong password from an altered file; the password
    // is by far the likelier.
    open_aes256_gcm(key.as_slice(), nonce, ciphertext, tag)
        .ok_or(ImportError::WrongPassword { format: FORMAT })
}
