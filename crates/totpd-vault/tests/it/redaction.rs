//! Secret hygiene: the `Debug` output of every type that holds secret
//! material says `[redacted]` and shows none of it, in any spelling, in
//! either the compact (`{:?}`) or the pretty (`{:#?}`) form.

use std::fmt::Debug;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use totpd_otp::{
    Algorithm, Digits, Generator, OtpParams, Period, Secret, Totp, base32, parse_otpauth_uri,
};
use totpd_vault::{
    CreatedSecret, Issuer, Label, NewApiKey, NewSecret, Principal, Sealed, SecretSource, Store,
    Vault,
};

use crate::memory_store::MemoryStore;
use crate::support::{NOW, login, master_key, master_key_bytes, pepper, vault_with_key};

/// RFC 6238's SHA-1 test key: printable, so a `Debug` that showed it as
/// text would be caught too.
const TOTP_SECRET: &[u8] = b"12345678901234567890";
/// Bytes no text form hides: every value 0..=255 is possible in a secret.
const BINARY_SECRET: &[u8] = b"\xde\xad\xbe\xef\x00\x01\x7f\x80\xff\xfe\x10\x20\x30\x40\x50\x60";

/// The key the master key derives for sealing (HMAC-SHA-256 with its
/// purpose label, as ARCHITECTURE.md describes).
fn seal_key_bytes() -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&master_key_bytes()).unwrap();
    mac.update(b"totpd/v1/seal");
    mac.finalize().into_bytes().to_vec()
}

/// Every way a `Debug` implementation could spell these bytes.
fn spellings(bytes: &[u8]) -> Vec<(&'static str, String)> {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let list = format!("{bytes:?}");
    let mut out = vec![
        ("base32", base32::encode(bytes)),
        ("lower-case base32", base32::encode(bytes).to_lowercase()),
        ("hex", hex.clone()),
        ("upper-case hex", hex.to_uppercase()),
        ("base64", STANDARD.encode(bytes)),
        ("base64url", URL_SAFE_NO_PAD.encode(bytes)),
        // The start of a derived `[u8]`/`Vec<u8>` Debug: "[49, 50, 51, ...".
        (
            "byte list",
            list.trim_start_matches('[')
                .split(", ")
                .take(6)
                .collect::<Vec<_>>()
                .join(", "),
        ),
    ];
    if let Ok(text) = std::str::from_utf8(bytes) {
        out.push(("text", text.to_owned()));
    }
    out
}

/// Asserts that `value`'s Debug, compact and pretty, says `[redacted]` and
/// spells none of `secrets`. Failure messages name the secret and the
/// spelling, never the secret itself.
fn assert_redacted(what: &str, value: &impl Debug, secrets: &[(&str, &[u8])]) {
    for debug in [format!("{value:?}"), format!("{value:#?}")] {
        assert!(
            debug.contains("[redacted]"),
            "{what}: Debug ({} characters) has no [redacted] marker",
            debug.len()
        );
        for (name, bytes) in secrets {
            for (spelling, text) in spellings(bytes) {
                assert!(
                    !debug.contains(&text),
                    "{what}: Debug shows the {name} as {spelling}"
                );
            }
        }
    }
}

fn otp_secrets() -> [(&'static str, &'static [u8]); 2] {
    [
        ("TOTP secret", TOTP_SECRET),
        ("binary secret", BINARY_SECRET),
    ]
}

#[test]
fn the_spelling_check_catches_a_debug_that_shows_the_secret() {
    // The detector itself: derived Debug of the raw bytes must be caught.
    #[derive(Debug)]
    #[allow(dead_code)]
    struct Leaky(&'static [u8], &'static str);
    for (name, bytes) in otp_secrets() {
        let leaky = Leaky(bytes, "[redacted]");
        let caught = std::panic::catch_unwind(|| {
            assert_redacted("Leaky", &leaky, &[(name, bytes)]);
        });
        assert!(caught.is_err(), "a Debug showing the {name} was not caught");
    }
}

#[test]
fn secret_debug_is_redacted() {
    for (name, bytes) in otp_secrets() {
        let secret = Secret::from_bytes(bytes.to_vec()).unwrap();
        assert_redacted("Secret", &secret, &[(name, bytes)]);
    }
}

#[test]
fn generator_debug_is_redacted() {
    for (name, bytes) in otp_secrets() {
        let secret = Secret::from_bytes(bytes.to_vec()).unwrap();
        for algorithm in Algorithm::ALL {
            let generator = Generator::new(&secret, algorithm, Digits::default());
            assert_redacted("Generator", &generator, &[(name, bytes)]);
        }
    }
}

#[test]
fn totp_debug_is_redacted() {
    for (name, bytes) in otp_secrets() {
        let totp = Totp {
            secret: Secret::from_bytes(bytes.to_vec()).unwrap(),
            algorithm: Algorithm::Sha256,
            digits: Digits::new(8).unwrap(),
            period: Period::default(),
        };
        assert_redacted("Totp", &totp, &[(name, bytes)]);
    }
}

#[test]
fn otp_params_from_a_uri_debug_is_redacted() {
    for (name, bytes) in otp_secrets() {
        let uri = format!(
            "otpauth://totp/Acme:alice?secret={}&issuer=Acme",
            base32::encode(bytes)
        );
        let params: OtpParams = parse_otpauth_uri(&uri).unwrap();
        assert_redacted("OtpParams", &params, &[(name, bytes)]);
    }
}

#[test]
fn master_key_debug_shows_neither_the_key_nor_its_sealing_key() {
    let key = master_key();
    let seal_key = seal_key_bytes();
    assert_redacted(
        "MasterKey",
        &key,
        &[
            ("master key", &master_key_bytes()),
            ("sealing key", &seal_key),
        ],
    );
    // The public id may be shown: it is what operators compare.
    assert!(format!("{key:?}").contains(key.id()));
}

#[test]
fn sealed_debug_shows_neither_plaintext_nor_ciphertext() {
    let sealed: Sealed = master_key().seal(TOTP_SECRET, b"aad").unwrap();
    assert_redacted(
        "Sealed",
        &sealed,
        &[
            ("plaintext", TOTP_SECRET),
            ("ciphertext", &sealed.ciphertext),
        ],
    );
}

#[test]
fn new_secret_debug_is_redacted() {
    for (name, bytes) in otp_secrets() {
        let new = NewSecret {
            label: Label::parse("alice@example.com").unwrap(),
            issuer: Some(Issuer::parse("Acme").unwrap()),
            source: SecretSource::Provided(Secret::from_bytes(bytes.to_vec()).unwrap()),
            algorithm: Algorithm::Sha1,
            digits: Digits::default(),
            period: Period::default(),
            kind: totpd_vault::SecretKind::default(),
        };
        assert_redacted("NewSecret", &new, &[(name, bytes)]);
        assert_redacted("SecretSource", &new.source, &[(name, bytes)]);
    }
}

/// A vault over the in-memory store, its store, and an owner key's
/// principal and secret.
async fn vault_with_a_key() -> (Vault, Arc<MemoryStore>, NewApiKey, Principal) {
    let store = Arc::new(MemoryStore::default());
    let (vault, key) = vault_with_key(&store, "redaction").await;
    let principal = login(&vault, &key, NOW).await.unwrap();
    (vault, store, key, principal)
}

#[tokio::test]
async fn vault_debug_shows_no_key_material() {
    let (vault, store, key, _) = vault_with_a_key().await;
    let pepper = pepper(&store);
    assert_eq!(pepper.len(), 32);
    assert_redacted(
        "Vault",
        &vault,
        &[
            ("master key", &master_key_bytes()),
            ("sealing key", &seal_key_bytes()),
            ("API-key pepper", &pepper),
            ("API key secret", key.secret.expose().as_bytes()),
        ],
    );
}

#[tokio::test]
async fn new_api_key_and_its_row_debug_are_redacted() {
    let (_, store, key, _) = vault_with_a_key().await;
    let secret = key.secret.expose().as_bytes().to_vec();
    assert_eq!(URL_SAFE_NO_PAD.decode(&secret).unwrap().len(), 32);
    assert_redacted("NewApiKey", &key, &[("API key secret", &secret)]);
    assert_redacted("ApiKeySecret", &key.secret, &[("API key secret", &secret)]);
    let row = store.api_key(&key.key_id).await.unwrap().unwrap();
    assert_redacted(
        "ApiKeyRow",
        &row,
        &[
            ("API key secret", &secret),
            ("secret hash", &row.secret_hash),
        ],
    );
}

#[tokio::test]
async fn created_secret_and_its_row_debug_are_redacted() {
    let (vault, store, key, principal) = vault_with_a_key().await;
    for (name, bytes) in otp_secrets() {
        let new = NewSecret {
            label: Label::parse("alice").unwrap(),
            issuer: None,
            source: SecretSource::Provided(Secret::from_bytes(bytes.to_vec()).unwrap()),
            algorithm: Algorithm::Sha512,
            digits: Digits::new(8).unwrap(),
            period: Period::default(),
            kind: totpd_vault::SecretKind::default(),
        };
        let created: CreatedSecret = vault.create_secret(&principal, new, NOW).await.unwrap();
        assert_eq!(created.secret.as_bytes(), bytes);
        assert_redacted("CreatedSecret", &created, &[(name, bytes)]);
        let row = store
            .secret(principal.account_id, created.info.id)
            .await
            .unwrap()
            .unwrap();
        assert_redacted(
            "SecretRow",
            &row,
            &[
                (name, bytes),
                ("ciphertext", &row.ciphertext),
                ("API key secret", key.secret.expose().as_bytes()),
            ],
        );
    }
    // A generated secret too: the one the vault drew is nowhere in Debug.
    let generated = vault
        .create_secret(
            &principal,
            NewSecret {
                label: Label::parse("generated").unwrap(),
                issuer: None,
                source: SecretSource::Generate,
                algorithm: Algorithm::Sha1,
                digits: Digits::default(),
                period: Period::default(),
                kind: totpd_vault::SecretKind::default(),
            },
            NOW,
        )
        .await
        .unwrap();
    let bytes = generated.secret.as_bytes().to_vec();
    assert_eq!(bytes.len(), 20);
    assert_redacted("CreatedSecret", &generated, &[("generated secret", &bytes)]);
}

/// The spellings of a code: as shown (zero-padded) and as a number.
fn code_spellings(code: totpd_otp::Code) -> [(&'static str, Vec<u8>); 2] {
    [
        ("code", code.to_string().into_bytes()),
        ("code value", code.value().to_string().into_bytes()),
    ]
}

#[test]
fn code_debug_is_redacted() {
    // RFC 6238's SHA-1 vectors at 59 s and 1111111109 s: 94287082, 07081804
    // (a leading zero, so the number and the padded text differ).
    let secret = Secret::from_bytes(TOTP_SECRET.to_vec()).unwrap();
    let generator = Generator::new(&secret, Algorithm::Sha1, Digits::new(8).unwrap());
    for counter in [1, 37_037_036] {
        let code = generator.code(counter);
        let spellings = code_spellings(code);
        let secrets: Vec<(&str, &[u8])> = spellings
            .iter()
            .map(|(name, bytes)| (*name, bytes.as_slice()))
            .collect();
        assert_redacted("Code", &code, &secrets);
    }
}

#[tokio::test]
async fn code_at_debug_is_redacted() {
    let (vault, _, _, principal) = vault_with_a_key().await;
    let created = vault
        .create_secret(
            &principal,
            NewSecret {
                label: Label::parse("alice").unwrap(),
                issuer: None,
                source: SecretSource::Provided(Secret::from_bytes(TOTP_SECRET.to_vec()).unwrap()),
                algorithm: Algorithm::Sha1,
                digits: Digits::new(8).unwrap(),
                period: Period::default(),
                kind: totpd_vault::SecretKind::default(),
            },
            NOW,
        )
        .await
        .unwrap();
    let code_at = vault.code(&principal, created.info.id, NOW).await.unwrap();
    let spellings = code_spellings(code_at.code());
    let secrets: Vec<(&str, &[u8])> = spellings
        .iter()
        .map(|(name, bytes)| (*name, bytes.as_slice()))
        .collect();
    assert_redacted("CodeAt", &code_at, &secrets);
}
