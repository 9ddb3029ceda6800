//! Reads Aegis vault exports, plain and password-encrypted, as Aegis
//! documents them in `docs/vault.md`
//! (<https://github.com/beemdevelopment/Aegis/blob/master/docs/vault.md>).
//!
//! The file is `{"version": 1, "header": {...}, "db": ...}`. A plain vault
//! has `header.slots` and `header.params` null and `db` an object holding
//! `entries`. An encrypted vault has `db` as Base64 (with padding) of the
//! AES-256-GCM ciphertext of that object under a random master key, with
//! the nonce and tag as hex in `header.params`. Each slot holds the master
//! key wrapped by AES-256-GCM (`key`, `key_params.nonce`, `key_params.tag`,
//! hex). Password slots (type 1) wrap it under
//! `scrypt(password, salt, n, r, p)` with a 256-bit output; biometric slots
//! (type 2) need the Android KeyStore and raw slots (type 0) an outside key,
//! so both are skipped. Aegis itself writes N = 2^15, r = 8, p = 1.
//!
//! Entries have `type` (`totp`, `hotp`, `steam`, `motp`, `yandex`), `name`
//! (the account), `issuer` and `info` with `secret` (base32), `algo`,
//! `digits` and `period` or `counter`.
//!
//! This module also holds the pieces the other JSON exports share (a secret
//! field read straight into zeroized memory, JSON errors without values,
//! AES-256-GCM opening into zeroized memory), used by `twofas` and `andotp`.

use base64::Engine as _;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::crypto::open_aes256_gcm;
use crate::json::{OtpFields, SecretText, json_error, text};
use crate::{Entry, Format, ImportError, Limits, Password, check_count, trim_text_start};

const FORMAT: Format = Format::Aegis;

/// The only vault format version `docs/vault.md` defines.
const VAULT_VERSION: u64 = 1;

/// Slot type of a password slot (`docs/vault.md`, "Slots").
const PASSWORD_SLOT: u64 = 1;

/// Whether `json` has the top-level shape of an Aegis vault: `version`,
/// a `header` object and a `db`. No other format has `header` with `db`.
pub(crate) fn sniff(json: &Value) -> bool {
    json.get("version").is_some_and(Value::is_u64)
        && json.get("header").is_some_and(Value::is_object)
        && json
            .get("db")
            .is_some_and(|db| db.is_object() || db.is_string())
}

/// Reads an Aegis vault, opening it with `password` when it is encrypted.
pub(crate) fn read(
    data: &[u8],
    password: Option<&Password>,
    limits: &Limits,
) -> Result<Vec<Entry>, ImportError> {
    let mut vault: Value = serde_json::from_slice(trim_text_start(data))
        .map_err(|error| malformed(format!("the file is not JSON ({})", json_error(&error))))?;
    if !vault.is_object() {
        return Err(malformed("the file is not a JSON object"));
    }
    match vault.get("version").and_then(Value::as_u64) {
        Some(VAULT_VERSION) => {}
        Some(other) => return Err(malformed(format!("vault version {other} is not supported"))),
        None => return Err(malformed("the vault has no version")),
    }
    let db = vault.get_mut("db").map(Value::take).unwrap_or(Value::Null);
    match db {
        Value::Object(_) => {
            let content: Content = serde_json::from_value(db).map_err(|error| {
                malformed(format!(
                    "the vault content is not as documented ({})",
                    json_error(&error)
                ))
            })?;
            entries(content, limits)
        }
        Value::String(ciphertext) => {
            let header = vault.get("header").unwrap_or(&Value::Null);
            let plaintext = decrypt(header, &ciphertext, password, limits)?;
            let content: Content = serde_json::from_slice(&plaintext).map_err(|error| {
                malformed(format!(
                    "the decrypted vault content is not as documented ({})",
                    json_error(&error)
                ))
            })?;
            entries(content, limits)
        }
        _ => Err(malformed("the vault has no db object or string")),
    }
}

fn malformed(reason: impl Into<String>) -> ImportError {
    ImportError::malformed(FORMAT, reason)
}

/// The vault content (`docs/vault.md`, "Vault content"). Groups are not
/// read: totpd has no folders to put them in.
#[derive(serde::Deserialize)]
struct Content {
    #[serde(default)]
    entries: Vec<AegisEntry>,
}

#[derive(serde::Deserialize)]
struct AegisEntry {
    #[serde(default, rename = "type")]
    kind: Value,
    #[serde(default)]
    name: Value,
    #[serde(default)]
    issuer: Value,
    #[serde(default)]
    info: Option<Info>,
}

#[derive(serde::Deserialize)]
struct Info {
    #[serde(default)]
    secret: SecretText,
    #[serde(default)]
    algo: Value,
    #[serde(default)]
    digits: Value,
    #[serde(default)]
    period: Value,
    #[serde(default)]
    counter: Value,
}

fn entries(content: Content, limits: &Limits) -> Result<Vec<Entry>, ImportError> {
    check_count(content.entries.len(), limits)?;
    let mut out = Vec::with_capacity(content.entries.len());
    for item in content.entries {
        out.push(entry(item));
        check_count(out.len(), limits)?;
    }
    Ok(out)
}

fn entry(item: AegisEntry) -> Entry {
    let label = text(&item.name);
    let issuer = text(&item.issuer);
    let Some(info) = item.info else {
        return Entry::invalid(label, issuer, "the entry has no info object");
    };
    OtpFields {
        kind: &item.kind,
        secret: info.secret,
        algorithm: &info.algo,
        digits: &info.digits,
        period: &info.period,
        counter: &info.counter,
        issuer,
        label,
    }
    .into_entry()
}

/// A password slot's parameters, checked before any key is derived.
struct PasswordSlot {
    log_n: u8,
    r: u32,
    p: u32,
    salt: Vec<u8>,
    key: Vec<u8>,
    nonce: Vec<u8>,
    tag: Vec<u8>,
}

fn decrypt(
    header: &Value,
    ciphertext: &str,
    password: Option<&Password>,
    limits: &Limits,
) -> Result<Zeroizing<Vec<u8>>, ImportError> {
    let params = header
        .get("params")
        .filter(|params| params.is_object())
        .ok_or_else(|| malformed("the vault is encrypted but the header has no params"))?;
    let nonce = hex_field(params, "nonce", "the header params")?;
    let tag = hex_field(params, "tag", "the header params")?;
    let slots = header
        .get("slots")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("the vault is encrypted but the header has no slots"))?;
    let ciphertext = base64::engine::general_purpose::STANDARD
        .decode(ciphertext.trim())
        .map_err(|_| malformed("the encrypted db is not Base64"))?;

    // Every password slot is checked, and its cost bounded, before any
    // derivation: a hostile file must fail fast, not after a slow first slot.
    let mut password_slots = Vec::new();
    let mut total_work: u128 = 0;
    for (index, slot) in slots.iter().enumerate() {
        if slot.get("type").and_then(Value::as_u64) != Some(PASSWORD_SLOT) {
            continue;
        }
        let slot = password_slot(index, slot, limits)?;
        total_work = total_work
            .saturating_add(scrypt_memory(slot.log_n, slot.r).saturating_mul(u128::from(slot.p)));
        password_slots.push(slot);
    }
    // Each slot is within the bounds; several together may not cost more
    // than one derivation at the memory bound (scrypt's time grows with
    // its memory). Real vaults have one to three password slots.
    let max_work = u128::from(limits.max_kdf_memory_kib).saturating_mul(1024);
    if total_work > max_work {
        return Err(ImportError::TooCostly {
            format: FORMAT,
            reason: format!(
                "its {} password slots together need more scrypt work than the limits allow",
                password_slots.len()
            ),
        });
    }
    if password_slots.is_empty() {
        return Err(malformed(
            "the vault has no password slot (a vault locked by biometrics alone cannot be exported)",
        ));
    }
    let password = password.ok_or(ImportError::PasswordRequired { format: FORMAT })?;

    for slot in &password_slots {
        let mut kek = Zeroizing::new([0u8; 32]);
        let params = scrypt::Params::new(slot.log_n, slot.r, slot.p)
            .map_err(|_| malformed("a password slot's scrypt parameters are invalid"))?;
        scrypt::scrypt(password.as_bytes(), &slot.salt, &params, kek.as_mut_slice())
            .map_err(|_| malformed("a password slot's scrypt parameters are invalid"))?;
        let Some(master) = open_aes256_gcm(kek.as_slice(), &slot.nonce, &slot.key, &slot.tag)
        else {
            // Not this slot's password: the next slot may take it.
            continue;
        };
        return open_aes256_gcm(&master, &nonce, &ciphertext, &tag).ok_or_else(|| {
            malformed("the password opens a slot, but the db does not decrypt with its key (the file was altered or damaged)")
        });
    }
    Err(ImportError::WrongPassword { format: FORMAT })
}

fn password_slot(index: usize, slot: &Value, limits: &Limits) -> Result<PasswordSlot, ImportError> {
    let what = format!("password slot {}", index + 1);
    let field = |name: &str| {
        slot.get(name)
            .and_then(Value::as_u64)
            .ok_or_else(|| malformed(format!("{what} has no scrypt {name}")))
    };
    let n = field("n")?;
    let r = field("r")?;
    let p = field("p")?;
    if n < 2 || !n.is_power_of_two() {
        return Err(malformed(format!(
            "{what}: scrypt n is not a power of two above 1"
        )));
    }
    let log_n = u8::try_from(n.trailing_zeros()).unwrap_or(u8::MAX);
    let r = u32::try_from(r)
        .ok()
        .filter(|r| *r > 0)
        .ok_or_else(|| malformed(format!("{what}: scrypt r is out of range")))?;
    let p = u32::try_from(p)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| malformed(format!("{what}: scrypt p is out of range")))?;
    // scrypt's working memory is 128·N·r bytes (RFC 7914 §5, ROMix's V);
    // p runs it p times over, so it is bounded like Argon2's passes.
    let memory = scrypt_memory(log_n, r);
    let max_memory = u128::from(limits.max_kdf_memory_kib).saturating_mul(1024);
    if memory > max_memory {
        return Err(ImportError::TooCostly {
            format: FORMAT,
            reason: format!(
                "{what} asks scrypt for {} KiB of memory (n = {n}, r = {r}), more than {} KiB",
                memory / 1024,
                limits.max_kdf_memory_kib
            ),
        });
    }
    if p > limits.max_kdf_passes {
        return Err(ImportError::TooCostly {
            format: FORMAT,
            reason: format!(
                "{what} asks scrypt for p = {p}, more than {}",
                limits.max_kdf_passes
            ),
        });
    }
    let key_params = slot
        .get("key_params")
        .filter(|params| params.is_object())
        .ok_or_else(|| malformed(format!("{what} has no key_params")))?;
    Ok(PasswordSlot {
        log_n,
        r,
        p,
        salt: hex_field(slot, "salt", &what)?,
        key: hex_field(slot, "key", &what)?,
        nonce: hex_field(key_params, "nonce", &what)?,
        tag: hex_field(key_params, "tag", &what)?,
    })
}

/// Bytes of scrypt's large array for `N = 2^log_n` and `r`.
fn scrypt_memory(log_n: u8, r: u32) -> u128 {
    let n = 1u128.checked_shl(u32::from(log_n)).unwrap_or(u128::MAX);
    n.saturating_mul(128).saturating_mul(u128::from(r))
}

/// The bytes of the hex string `object[name]`. The reason names the field,
/// never its value.
fn hex_field(object: &Value, name: &str, what: &str) -> Result<Vec<u8>, ImportError> {
    let text = object
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| malformed(format!("{what} has no {name}")))?;
    hex(text).ok_or_else(|| malformed(format!("the {name} of {what} is not hex")))
}

fn hex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim().as_bytes();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.chunks_exact(2)
        .map(|pair| {
            let high = char::from(*pair.first()?).to_digit(16)?;
            let low = char::from(*pair.get(1)?).to_digit(16)?;
            u8::try_from(high * 16 + low).ok()
        })
        .collect()
}
