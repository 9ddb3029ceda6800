//! Proton Authenticator's export, plain or password protected.
//!
//! Read from Proton's own source (`protonpass/proton-pass-common`,
//! `proton-authenticator/src/entry/exporter.rs`, `entry/password_exporter.rs`
//! and `crypto.rs`):
//!
//! - the plain export is `{"version": 1, "entries": [{"id", "content":
//!   {"uri", "entry_type"}, "note"}]}`, where `entry_type` is `Totp` (an
//!   `otpauth://` URI, whose label and issuer name the entry) or `Steam` (a
//!   `steam://` URI, which totpd does not serve);
//! - the password-protected export is `{"version": 1, "salt", "content"}`:
//!   the key is Argon2id v1.3 of the password with the 16-byte `salt`
//!   (base64), 19 MiB, 2 passes, 1 lane, 32 bytes; `content` (base64) is a
//!   12-byte nonce followed by AES-256-GCM ciphertext and tag, with the
//!   associated data `proton.authenticator.export.v1`; the plaintext is the
//!   plain export's JSON.
//!
//! The key derivation's cost is fixed by the format, not by the file; it is
//! still checked against [`Limits`] so that a deployment with tighter
//! bounds refuses it rather than exceeding them.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::entry::{from_uri_or_secret, unserved_kind};
use crate::json::{SecretText, parse};
use crate::{Entry, Format, ImportError, Limits, Password, check_count};

const FORMAT: Format = Format::Proton;

/// Argon2id memory in KiB, passes and lanes (`derive_password_key`).
const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
const ARGON2_PASSES: u32 = 2;
const ARGON2_LANES: u32 = 1;
/// The AES-GCM associated data of a password-protected export.
const ASSOCIATED_DATA: &[u8] = b"proton.authenticator.export.v1";
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Reads a Proton Authenticator export, decrypting it with `password` when
/// it is password protected.
pub(crate) fn read(
    data: &[u8],
    password: Option<&Password>,
    limits: &Limits,
) -> Result<Vec<Entry>, ImportError> {
    let file: File = parse(FORMAT, data)?;
    if file.entries.is_some() {
        return read_plain(data, limits);
    }
    let (Some(salt), Some(content)) = (file.salt, file.content) else {
        return Err(ImportError::malformed(
            FORMAT,
            "neither entries nor an encrypted salt and content",
        ));
    };
    check_version(file.version)?;
    let password = password.ok_or(ImportError::PasswordRequired { format: FORMAT })?;
    let salt = BASE64
        .decode(salt.trim())
        .map_err(|_| ImportError::malformed(FORMAT, "the salt is not base64"))?;
    if salt.len() != SALT_LEN {
        return Err(ImportError::malformed(FORMAT, "the salt is not 16 bytes"));
    }
    let content = BASE64
        .decode(content.trim())
        .map_err(|_| ImportError::malformed(FORMAT, "the content is not base64"))?;
    let (nonce, ciphertext) = content
        .split_at_checked(NONCE_LEN)
        .filter(|(_, ciphertext)| ciphertext.len() >= TAG_LEN)
        .ok_or_else(|| {
            ImportError::malformed(FORMAT, "the content is shorter than a nonce and a tag")
        })?;
    let key = derive_key(password, &salt, limits)?;
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(&*key)
        .map_err(|_| ImportError::malformed(FORMAT, "the key has a wrong length"))?;
    let nonce = aes_gcm::Nonce::try_from(nonce)
        .map_err(|_| ImportError::malformed(FORMAT, "the nonce is not 12 bytes"))?;
    // GCM's tag covers the ciphertext and the associated data: a wrong
    // password and an altered file fail alike.
    let plain = Zeroizing::new(
        cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: ASSOCIATED_DATA,
                },
            )
            .map_err(|_| ImportError::WrongPassword { format: FORMAT })?,
    );
    read_plain(&plain, limits)
}

/// Whether `json` is a Proton Authenticator export: a numeric `version`
/// with an `entries` list whose items have a `content` object, or with the
/// encrypted export's `salt` and `content` strings.
pub(crate) fn sniff(json: &serde_json::Value) -> bool {
    let Some(object) = json.as_object() else {
        return false;
    };
    if !object.get("version").is_some_and(serde_json::Value::is_u64) {
        return false;
    }
    if let Some(entries) = object.get("entries").and_then(serde_json::Value::as_array) {
        return entries.first().is_none_or(|entry| {
            entry
                .get("content")
                .is_some_and(serde_json::Value::is_object)
        });
    }
    object.get("salt").is_some_and(serde_json::Value::is_string)
        && object
            .get("content")
            .is_some_and(serde_json::Value::is_string)
}

/// The keys of either kind of export.
#[derive(Deserialize)]
struct File {
    version: Option<u64>,
    entries: Option<serde::de::IgnoredAny>,
    salt: Option<String>,
    content: Option<String>,
}

#[derive(Deserialize)]
struct Plain {
    version: Option<u64>,
    entries: Vec<PlainEntry>,
}

#[derive(Deserialize)]
struct PlainEntry {
    content: Content,
}

#[derive(Deserialize)]
struct Content {
    uri: SecretText,
    #[serde(default)]
    entry_type: Option<String>,
}

fn read_plain(data: &[u8], limits: &Limits) -> Result<Vec<Entry>, ImportError> {
    let plain: Plain = parse(FORMAT, data)?;
    check_version(plain.version)?;
    let mut entries = Vec::new();
    for entry in plain.entries {
        let steam = entry
            .content
            .entry_type
            .as_deref()
            .is_some_and(|kind| kind.eq_ignore_ascii_case("steam"));
        entries.push(if steam {
            Entry::invalid(None, None, unserved_kind("steam"))
        } else {
            match &entry.content.uri.0 {
                Some(uri) => from_uri_or_secret(uri, None, None),
                None => Entry::invalid(None, None, "the entry's uri is not text"),
            }
        });
        check_count(entries.len(), limits)?;
    }
    Ok(entries)
}

/// Version 1 is the only one Proton writes; its importer refuses others.
fn check_version(version: Option<u64>) -> Result<(), ImportError> {
    match version {
        Some(1) => Ok(()),
        Some(other) => Err(ImportError::malformed(
            FORMAT,
            format!("export version {other}, totpd reads version 1"),
        )),
        None => Err(ImportError::malformed(FORMAT, "no export version")),
    }
}

fn derive_key(
    password: &Password,
    salt: &[u8],
    limits: &Limits,
) -> Result<Zeroizing<[u8; 32]>, ImportError> {
    if ARGON2_MEMORY_KIB > limits.max_kdf_memory_kib || ARGON2_PASSES > limits.max_kdf_passes {
        return Err(ImportError::TooCostly {
            format: FORMAT,
            reason: format!(
                "Argon2id with {ARGON2_MEMORY_KIB} KiB and {ARGON2_PASSES} passes, more than the \
                 limits of {} KiB and {} passes",
                limits.max_kdf_memory_kib, limits.max_kdf_passes
            ),
        });
    }
    let params = argon2::Params::new(ARGON2_MEMORY_KIB, ARGON2_PASSES, ARGON2_LANES, Some(32))
        .map_err(|_| ImportError::malformed(FORMAT, "the Argon2 parameters are out of range"))?;
    let mut key = Zeroizing::new([0u8; 32]);
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into(password.as_bytes(), salt, &mut *key)
        .map_err(|_| ImportError::malformed(FORMAT, "the Argon2 derivation failed"))?;
    Ok(key)
}
