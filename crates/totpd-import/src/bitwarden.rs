//! Bitwarden's JSON vault export, plain or "password protected".
//!
//! The plain export is `{"encrypted": false, "folders": [...], "items":
//! [...]}`; a login item (`type` 1) keeps its authenticator key in
//! `login.totp`, which holds an `otpauth://` URI, a bare base32 secret or a
//! `steam://` key (Bitwarden help, "Export vault data" and "Integrated
//! authenticator"; `bitwarden/clients`,
//! `libs/importer/src/importers/bitwarden/bitwarden-json-importer.ts`).
//! Items without a key are not credentials and are skipped.
//!
//! The password-protected export (Bitwarden help, "Encrypted exports";
//! `bitwarden/sdk-internal`, `crates/bitwarden-exporters/src/encrypted_json.rs`
//! and `crates/bitwarden-crypto/src/keys/kdf.rs`, `keys/utils.rs`) is
//! `{"encrypted": true, "passwordProtected": true, "salt", "kdfType",
//! "kdfIterations", "kdfMemory", "kdfParallelism",
//! "encKeyValidation_DO_NOT_EDIT", "data"}`:
//!
//! - the salt is the UTF-8 text of the `salt` field as written (a base64
//!   string that is not decoded);
//! - `kdfType` 0 is PBKDF2-HMAC-SHA256 with `kdfIterations` rounds; 1 is
//!   Argon2id v1.3 with `kdfIterations` passes, `kdfMemory` MiB and
//!   `kdfParallelism` lanes, whose salt is SHA-256 of the salt text;
//! - the 32-byte result is stretched with HKDF-Expand-SHA256 (no extract)
//!   into an AES key (info `enc`) and an HMAC key (info `mac`);
//! - `encKeyValidation_DO_NOT_EDIT` and `data` are cipher strings
//!   `2.<iv>|<ciphertext>|<mac>` (base64): AES-256-CBC with PKCS#7 padding,
//!   and HMAC-SHA256 over iv ‖ ciphertext, checked before decrypting;
//! - `data` decrypts to the plain export's JSON.
//!
//! An "account restricted" export (`encrypted: true` without
//! `passwordProtected`) is encrypted with the account's own key and can only
//! be opened by Bitwarden signed in to that account.
//!
//! An item's `name` stands for the issuer and `login.username` for the
//! account name when the key is a bare secret or a URI without them: in
//! Bitwarden the item name is what the person sees next to the code, and
//! the username is the account it belongs to.

use aes::cipher::{Array, BlockModeDecrypt, KeyIvInit};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::entry::from_uri_or_secret;
use crate::json::{SecretText, parse};
use crate::{Entry, Format, ImportError, Limits, Password, check_count};

const FORMAT: Format = Format::Bitwarden;

/// Reads a Bitwarden JSON export, decrypting it with `password` when it is
/// password protected.
pub(crate) fn read(
    data: &[u8],
    password: Option<&Password>,
    limits: &Limits,
) -> Result<Vec<Entry>, ImportError> {
    let head: Head = parse(FORMAT, data)?;
    if head.encrypted != Some(true) {
        return read_plain(data, limits);
    }
    if head.password_protected != Some(true) {
        return Err(ImportError::malformed(
            FORMAT,
            "this export is encrypted with the Bitwarden account's own key (\"account \
             restricted\") and only Bitwarden can open it: export the vault again as \
             \"JSON (password protected)\" or as plain JSON",
        ));
    }
    let protected: Protected = parse(FORMAT, data)?;
    let password = password.ok_or(ImportError::PasswordRequired { format: FORMAT })?;
    // Parse both cipher strings before the costly derivation, so a damaged
    // file is refused without it.
    let validation = CipherString::parse(&protected.enc_key_validation, "encKeyValidation")?;
    let payload = CipherString::parse(&protected.data, "data")?;
    let keys = derive_keys(password, &protected, limits)?;
    // The validation string only tells a wrong password from a damaged
    // `data` (Bitwarden's own importer checks it first for that reason).
    validation.decrypt(&keys)?;
    let plain = payload.decrypt(&keys)?;
    read_plain(&plain, limits)
}

/// Whether `json` is a Bitwarden JSON export: an object with a boolean
/// `encrypted`, and either `items` (plain or account-restricted) or the
/// password-protected export's `encKeyValidation_DO_NOT_EDIT`.
pub(crate) fn sniff(json: &serde_json::Value) -> bool {
    let Some(object) = json.as_object() else {
        return false;
    };
    object
        .get("encrypted")
        .is_some_and(serde_json::Value::is_boolean)
        && (object.get("items").is_some_and(serde_json::Value::is_array)
            || object.contains_key("encKeyValidation_DO_NOT_EDIT"))
}

/// The keys that tell which kind of export this is.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Head {
    encrypted: Option<bool>,
    password_protected: Option<bool>,
}

/// The password-protected export's envelope.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Protected {
    salt: String,
    kdf_type: u32,
    kdf_iterations: u32,
    kdf_memory: Option<u32>,
    kdf_parallelism: Option<u32>,
    #[serde(rename = "encKeyValidation_DO_NOT_EDIT")]
    enc_key_validation: String,
    data: String,
}

/// The plain export, as far as credentials go.
#[derive(Deserialize)]
struct Export {
    #[serde(default)]
    items: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    login: Option<Login>,
}

#[derive(Deserialize)]
struct Login {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    totp: Option<SecretText>,
}

fn read_plain(data: &[u8], limits: &Limits) -> Result<Vec<Entry>, ImportError> {
    let export: Export = parse(FORMAT, data)?;
    let mut entries = Vec::new();
    for item in export.items {
        let Some(login) = item.login else { continue };
        // A login without a one-time password, or with an empty one, is
        // not an entry; one whose `totp` is not text is an invalid one.
        let Some(totp) = login.totp else { continue };
        let Some(totp) = totp.0 else {
            entries.push(Entry::invalid(
                login.username,
                item.name,
                "the entry's totp is not text",
            ));
            check_count(entries.len(), limits)?;
            continue;
        };
        if totp.trim().is_empty() {
            continue;
        }
        entries.push(from_uri_or_secret(&totp, login.username, item.name));
        check_count(entries.len(), limits)?;
    }
    Ok(entries)
}

/// The AES and HMAC keys of a password-protected export.
struct Keys {
    enc: Zeroizing<[u8; 32]>,
    mac: Zeroizing<[u8; 32]>,
}

/// Bitwarden's own bounds on Argon2 lanes (the settings' maximum).
const MAX_ARGON2_PARALLELISM: u32 = 16;

fn derive_keys(
    password: &Password,
    protected: &Protected,
    limits: &Limits,
) -> Result<Keys, ImportError> {
    let salt = protected.salt.as_bytes();
    let mut master = Zeroizing::new([0u8; 32]);
    match protected.kdf_type {
        0 => {
            let iterations = protected.kdf_iterations;
            if iterations == 0 {
                return Err(ImportError::malformed(FORMAT, "kdfIterations is 0"));
            }
            if iterations > limits.max_kdf_iterations {
                return Err(too_costly(format!(
                    "{iterations} PBKDF2 iterations, more than {}",
                    limits.max_kdf_iterations
                )));
            }
            pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut *master);
        }
        1 => {
            let passes = protected.kdf_iterations;
            let (Some(memory_mib), Some(lanes)) = (protected.kdf_memory, protected.kdf_parallelism)
            else {
                return Err(ImportError::malformed(
                    FORMAT,
                    "an Argon2id export without kdfMemory or kdfParallelism",
                ));
            };
            let memory_kib = u64::from(memory_mib) * 1024;
            if memory_kib > u64::from(limits.max_kdf_memory_kib) {
                return Err(too_costly(format!(
                    "{memory_mib} MiB of Argon2 memory, more than {} KiB",
                    limits.max_kdf_memory_kib
                )));
            }
            if passes > limits.max_kdf_passes {
                return Err(too_costly(format!(
                    "{passes} Argon2 passes, more than {}",
                    limits.max_kdf_passes
                )));
            }
            if lanes > MAX_ARGON2_PARALLELISM {
                return Err(too_costly(format!(
                    "{lanes} Argon2 lanes, more than Bitwarden's {MAX_ARGON2_PARALLELISM}"
                )));
            }
            let memory_kib = u32::try_from(memory_kib)
                .map_err(|_| too_costly("the Argon2 memory overflows".to_owned()))?;
            let params =
                argon2::Params::new(memory_kib, passes, lanes, Some(32)).map_err(|_| {
                    ImportError::malformed(FORMAT, "the Argon2 parameters are out of range")
                })?;
            let salt_hash = Sha256::digest(salt);
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
                .hash_password_into(password.as_bytes(), &salt_hash, &mut *master)
                .map_err(|_| {
                    ImportError::malformed(FORMAT, "the Argon2 parameters are out of range")
                })?;
        }
        other => {
            return Err(ImportError::malformed(
                FORMAT,
                format!("unknown kdfType {other} (0 is PBKDF2, 1 is Argon2id)"),
            ));
        }
    }
    stretch(&master)
}

/// HKDF-Expand-SHA256 of the derived key into the AES and HMAC keys
/// (`bitwarden-crypto`, `keys/utils.rs`: `stretch_key`).
fn stretch(master: &[u8; 32]) -> Result<Keys, ImportError> {
    let hkdf = hkdf::Hkdf::<Sha256>::from_prk(master)
        .map_err(|_| ImportError::malformed(FORMAT, "the derived key has a wrong length"))?;
    let mut keys = Keys {
        enc: Zeroizing::new([0u8; 32]),
        mac: Zeroizing::new([0u8; 32]),
    };
    hkdf.expand(b"enc", &mut *keys.enc)
        .and_then(|()| hkdf.expand(b"mac", &mut *keys.mac))
        .map_err(|_| ImportError::malformed(FORMAT, "the key stretch failed"))?;
    Ok(keys)
}

fn too_costly(reason: String) -> ImportError {
    ImportError::TooCostly {
        format: FORMAT,
        reason,
    }
}

/// A type 2 cipher string: AES-256-CBC, HMAC-SHA256, base64 parts.
struct CipherString {
    iv: [u8; 16],
    ciphertext: Vec<u8>,
    mac: [u8; 32],
}

impl CipherString {
    fn parse(text: &str, field: &str) -> Result<CipherString, ImportError> {
        let bad = |what: &str| ImportError::malformed(FORMAT, format!("{field}: {what}"));
        let Some(body) = text.trim().strip_prefix("2.") else {
            return Err(bad(
                "not a type 2 (AES-256-CBC with HMAC-SHA256) cipher string",
            ));
        };
        let mut parts = body.split('|');
        let (Some(iv), Some(ciphertext), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("not three parts iv|ciphertext|mac"));
        };
        let decode = |part: &str| BASE64.decode(part).map_err(|_| bad("a part is not base64"));
        let iv: [u8; 16] = decode(iv)?
            .try_into()
            .map_err(|_| bad("the iv is not 16 bytes"))?;
        let mac: [u8; 32] = decode(mac)?
            .try_into()
            .map_err(|_| bad("the mac is not 32 bytes"))?;
        let ciphertext = decode(ciphertext)?;
        if ciphertext.is_empty() || ciphertext.len() % 16 != 0 {
            return Err(bad("the ciphertext is not whole AES blocks"));
        }
        Ok(CipherString {
            iv,
            ciphertext,
            mac,
        })
    }

    /// The plaintext, after the MAC is checked (in constant time): a MAC
    /// that does not match means a wrong password or an altered file.
    fn decrypt(&self, keys: &Keys) -> Result<Zeroizing<Vec<u8>>, ImportError> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&*keys.mac)
            .map_err(|_| ImportError::malformed(FORMAT, "the MAC key has a wrong length"))?;
        mac.update(&self.iv);
        mac.update(&self.ciphertext);
        mac.verify_slice(&self.mac)
            .map_err(|_| ImportError::WrongPassword { format: FORMAT })?;
        let mut buffer = Zeroizing::new(self.ciphertext.clone());
        let mut decryptor = cbc::Decryptor::<aes::Aes256>::new_from_slices(&*keys.enc, &self.iv)
            .map_err(|_| ImportError::malformed(FORMAT, "the AES key has a wrong length"))?;
        for chunk in buffer.chunks_exact_mut(16) {
            let block = <&mut Array<u8, _>>::try_from(chunk).map_err(|_| {
                ImportError::malformed(FORMAT, "the ciphertext is not whole blocks")
            })?;
            decryptor.decrypt_block(block);
        }
        // PKCS#7 (RFC 5652 §6.3): the last byte n, 1 to 16, repeated n
        // times. The MAC was checked first, so this is no padding oracle.
        let padding = buffer.last().copied().map_or(0, usize::from);
        let length = buffer.len().checked_sub(padding);
        let padded_well = (1..=16).contains(&padding)
            && length.is_some_and(|length| {
                buffer
                    .get(length..)
                    .is_some_and(|tail| tail.iter().all(|byte| usize::from(*byte) == padding))
            });
        match length {
            Some(length) if padded_well => buffer.truncate(length),
            _ => {
                return Err(ImportError::malformed(
                    FORMAT,
                    "the decrypted data has bad padding",
                ));
            }
        }
        Ok(buffer)
    }
}
