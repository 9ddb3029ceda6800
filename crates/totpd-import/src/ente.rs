//! Ente Auth's export, plain or encrypted.
//!
//! The plain export is text, one `otpauth://` URI per line (Ente's "Export
//! codes" as plain text), read by [`crate::text`]. The encrypted export is
//! described in Ente's documentation (`ente-io/ente`,
//! `docs/docs/auth/migration/export.md`, "Auth Encrypted Export format") and
//! written by the app's export code (`mobile/apps/auth`: `EnteAuthExport`,
//! `CryptoUtil.deriveSensitiveKey`, `CryptoUtil.encryptData`):
//!
//! ```text
//! {"version": 1,
//!  "kdfParams": {"memLimit": <bytes>, "opsLimit": <passes>, "salt": <base64>},
//!  "encryptedData": <base64>, "encryptionNonce": <base64>}
//! ```
//!
//! - the key is libsodium's `crypto_pwhash` with Argon2id v1.3: 32 bytes,
//!   `memLimit` bytes of memory, `opsLimit` passes, one lane, the 16-byte
//!   salt (libsodium, "The pwhash* API"). The app asks for the "sensitive"
//!   limits (1 GiB, 4 passes), or 256 MiB with 16 passes on small devices,
//!   halving the memory and doubling the passes until it fits;
//! - `encryptedData` is one message of libsodium's
//!   `crypto_secretstream_xchacha20poly1305` with the tag `FINAL`, and
//!   `encryptionNonce` is the stream's 24-byte header;
//! - the plaintext is the plain export: URIs, one per line.
//!
//! libsodium's secretstream ("Encrypted streams and file encryption", and
//! `crypto_secretstream/xchacha20poly1305/secretstream_xchacha20poly1305.c`)
//! is not the XChaCha20-Poly1305 AEAD, so it is built here from ChaCha20 and
//! Poly1305: the stream key is HChaCha20 of the key and the header's first
//! 16 bytes; the ChaCha20-IETF nonce is the little-endian counter 1 followed
//! by the header's last 8 bytes. Block 0 of the keystream gives the Poly1305
//! key; a 64-byte block holding the encrypted tag byte is block 1; the
//! message is encrypted from block 2. The MAC is Poly1305 over the
//! associated data (none here), the 64-byte tag block, the ciphertext,
//! `(0x10 - 64 + mlen) & 0xf` zero bytes (libsodium's expression: mlen mod
//! 16, not a rounding up), then the associated data's length and 64 plus
//! the message length, each a little-endian u64. A chunk is the encrypted
//! tag byte, the ciphertext and the 16-byte MAC.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};
use poly1305::Poly1305;
use poly1305::universal_hash::KeyInit;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::{Entry, Format, ImportError, Limits, Password};

const FORMAT: Format = Format::Ente;

/// libsodium's `crypto_pwhash_SALTBYTES`.
const SALT_LEN: usize = 16;
/// `crypto_secretstream_xchacha20poly1305_HEADERBYTES`.
const HEADER_LEN: usize = 24;
/// `crypto_secretstream_xchacha20poly1305_ABYTES`: the tag byte and the MAC.
const MAC_LEN: usize = 16;
const ABYTES: usize = 1 + MAC_LEN;
/// `crypto_secretstream_xchacha20poly1305_TAG_FINAL` (PUSH | REKEY).
const TAG_FINAL: u8 = 0x03;

/// Reads an Ente Auth export: the encrypted JSON with `password`, or the
/// plain URI list.
pub(crate) fn read(
    data: &[u8],
    password: Option<&Password>,
    limits: &Limits,
) -> Result<Vec<Entry>, ImportError> {
    let trimmed = crate::trim_text_start(data);
    if !trimmed.starts_with(b"{") {
        return read_uris(data, limits);
    }
    let export: Export = crate::json::parse(FORMAT, trimmed)?;
    if export.version != 1 {
        return Err(ImportError::malformed(
            FORMAT,
            format!("export version {}, totpd reads version 1", export.version),
        ));
    }
    let salt = decode(&export.kdf_params.salt, "the salt")?;
    if salt.len() != SALT_LEN {
        return Err(ImportError::malformed(FORMAT, "the salt is not 16 bytes"));
    }
    let header: [u8; HEADER_LEN] = decode(&export.encryption_nonce, "the nonce")?
        .try_into()
        .map_err(|_| ImportError::malformed(FORMAT, "the nonce (stream header) is not 24 bytes"))?;
    let chunk = decode(&export.encrypted_data, "the encrypted data")?;
    if chunk.len() < ABYTES {
        return Err(ImportError::malformed(
            FORMAT,
            "the encrypted data is shorter than a stream chunk",
        ));
    }
    let password = password.ok_or(ImportError::PasswordRequired { format: FORMAT })?;
    let key = derive_key(password, &salt, &export.kdf_params, limits)?;
    let plain = secretstream_pull_final(&key, &header, &chunk)?;
    read_uris(&plain, limits)
}

/// Whether `json` is Ente's encrypted export: `kdfParams`, `encryptedData`
/// and `encryptionNonce` (its plain export is text, detected as `otpauth`).
pub(crate) fn sniff(json: &serde_json::Value) -> bool {
    json.get("kdfParams")
        .is_some_and(serde_json::Value::is_object)
        && json
            .get("encryptedData")
            .is_some_and(serde_json::Value::is_string)
        && json
            .get("encryptionNonce")
            .is_some_and(serde_json::Value::is_string)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Export {
    version: u64,
    kdf_params: KdfParams,
    encrypted_data: String,
    encryption_nonce: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KdfParams {
    mem_limit: u64,
    ops_limit: u64,
    salt: String,
}

/// The URI list, one entry per line, through the shared text reader's
/// line rules.
/// Ente's plain export, and the plaintext of its encrypted one: the text
/// format's URI list.
fn read_uris(data: &[u8], limits: &Limits) -> Result<Vec<Entry>, ImportError> {
    crate::text::read(FORMAT, data, limits)
}

fn decode(text: &str, what: &str) -> Result<Vec<u8>, ImportError> {
    BASE64
        .decode(text.trim())
        .map_err(|_| ImportError::malformed(FORMAT, format!("{what} is not base64")))
}

/// `crypto_pwhash` (Argon2id v1.3, one lane) with the file's limits, after
/// they are checked against [`Limits`].
fn derive_key(
    password: &Password,
    salt: &[u8],
    params: &KdfParams,
    limits: &Limits,
) -> Result<Zeroizing<[u8; 32]>, ImportError> {
    // libsodium takes the memory in bytes and uses whole KiB of it.
    let memory_kib = params.mem_limit / 1024;
    if memory_kib > u64::from(limits.max_kdf_memory_kib) {
        return Err(ImportError::TooCostly {
            format: FORMAT,
            reason: format!(
                "memLimit of {} KiB, more than {} KiB",
                memory_kib, limits.max_kdf_memory_kib
            ),
        });
    }
    if params.ops_limit > u64::from(limits.max_kdf_passes) {
        return Err(ImportError::TooCostly {
            format: FORMAT,
            reason: format!(
                "opsLimit of {} passes, more than {}",
                params.ops_limit, limits.max_kdf_passes
            ),
        });
    }
    let out_of_range = || ImportError::malformed(FORMAT, "the Argon2 parameters are out of range");
    let memory_kib = u32::try_from(memory_kib).map_err(|_| out_of_range())?;
    let passes = u32::try_from(params.ops_limit).map_err(|_| out_of_range())?;
    let argon2_params =
        argon2::Params::new(memory_kib, passes, 1, Some(32)).map_err(|_| out_of_range())?;
    let mut key = Zeroizing::new([0u8; 32]);
    argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2_params,
    )
    .hash_password_into(password.as_bytes(), salt, &mut *key)
    .map_err(|_| out_of_range())?;
    Ok(key)
}

/// `crypto_secretstream_xchacha20poly1305_init_pull` then one `pull` of
/// `chunk` without associated data, which must carry the tag `FINAL`: the
/// whole export is one message. The MAC is checked (in constant time)
/// before anything is decrypted.
fn secretstream_pull_final(
    key: &[u8; 32],
    header: &[u8; HEADER_LEN],
    chunk: &[u8],
) -> Result<Zeroizing<Vec<u8>>, ImportError> {
    let (hchacha_input, nonce_tail) = header.split_at(16);
    let hchacha_input: [u8; 16] = hchacha_input
        .try_into()
        .map_err(|_| ImportError::malformed(FORMAT, "the stream header is not 24 bytes"))?;
    let stream_key = hchacha20(key, &hchacha_input);
    // The state's nonce: the 32-bit counter, 1 after init, then the
    // header's last 8 bytes.
    let mut nonce = [0u8; 12];
    nonce[0] = 1;
    if let Some(slot) = nonce.get_mut(4..) {
        slot.copy_from_slice(nonce_tail);
    }
    let mut cipher = ChaCha20::new(&(*stream_key).into(), &nonce.into());

    // Block 0: the Poly1305 key.
    let mut keystream = Zeroizing::new([0u8; 64]);
    let block: &mut [u8; 64] = &mut keystream;
    cipher.apply_keystream(block);
    let poly_key: [u8; 32] = block
        .get(..32)
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| ImportError::malformed(FORMAT, "the keystream is short"))?;
    let poly_key = Zeroizing::new(poly_key);
    let mac = Poly1305::new(&(*poly_key).into());

    // Block 1: the tag byte, encrypted as the first byte of a zero block;
    // the MAC covers the block with the encrypted byte in place.
    let (&encrypted_tag, rest) = chunk
        .split_first()
        .ok_or_else(|| ImportError::malformed(FORMAT, "the encrypted data is empty"))?;
    let message_len = rest
        .len()
        .checked_sub(MAC_LEN)
        .ok_or_else(|| ImportError::malformed(FORMAT, "the encrypted data is short"))?;
    let (ciphertext, stored_mac) = rest.split_at(message_len);
    block.fill(0);
    block[0] = encrypted_tag;
    cipher.apply_keystream(block);
    let tag = block[0];
    block[0] = encrypted_tag;

    // The MAC runs over one continuous message (libsodium's streaming
    // `crypto_onetimeauth_poly1305_update`): no associated data and no
    // padding for it, the tag block, the ciphertext, then
    // `(0x10 - 64 + mlen) & 0xf` zero bytes, which is mlen mod 16 and not
    // a rounding to 16 bytes, then the two lengths.
    let padding = message_len % 16;
    let total = u64::try_from(64 + message_len).unwrap_or(u64::MAX);
    let mut authenticated = Vec::with_capacity(64 + message_len + padding + 16);
    authenticated.extend_from_slice(block);
    authenticated.extend_from_slice(ciphertext);
    authenticated.resize(authenticated.len() + padding, 0);
    authenticated.extend_from_slice(&0u64.to_le_bytes());
    authenticated.extend_from_slice(&total.to_le_bytes());
    let computed = mac.compute_unpadded(&authenticated);
    if !bool::from(computed.as_slice().ct_eq(stored_mac)) {
        return Err(ImportError::WrongPassword { format: FORMAT });
    }

    // Blocks 2 on: the message.
    let mut plain = Zeroizing::new(ciphertext.to_vec());
    cipher.apply_keystream(&mut plain);
    if tag != TAG_FINAL {
        return Err(ImportError::malformed(
            FORMAT,
            "the encrypted data is not a whole stream (its chunk is not the final one)",
        ));
    }
    Ok(plain)
}

/// HChaCha20 (draft-irtf-cfrg-xchacha §2.2), libsodium's subkey
/// derivation for XChaCha20.
fn hchacha20(key: &[u8; 32], input: &[u8; 16]) -> Zeroizing<[u8; 32]> {
    let subkey = chacha20::hchacha::<chacha20::R20>(&(*key).into(), &(*input).into());
    Zeroizing::new(subkey.into())
}
