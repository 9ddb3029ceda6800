//! The `POST /api/v2/totp/secrets` body parser on arbitrary bytes, exactly as
//! the handler runs it but without HTTP or storage: no panic, no hang, no
//! unbounded allocation, and every body it accepts is a request the vault
//! may store (the API's contract, not just the OTP core's), with the label
//! exactly as sent.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use totpd_otp::Secret;
use totpd_vault::{NewSecret, SecretSource};

/// What `parse_create_secret_body` promises about every body it accepts.
fn check_accepted(data: &[u8], new: &NewSecret) {
    // The Sendblue contract: 6 or 8 digits (the core would also take 7).
    assert!(matches!(new.digits.get(), 6 | 8), "digits {}", new.digits);
    assert!(
        (1..=86_400).contains(&new.period.get()),
        "period {}",
        new.period
    );
    for text in std::iter::once(new.label.as_str()).chain(new.issuer.as_ref().map(|i| i.as_str())) {
        assert!(!text.trim().is_empty(), "blank label or issuer");
        assert!(text.chars().count() <= 256, "label or issuer too long");
        assert!(
            !text.chars().any(char::is_control),
            "control character kept"
        );
    }
    if let SecretSource::Provided(secret) = &new.source {
        let len = secret.as_bytes().len();
        assert!(
            (Secret::MIN_LEN..=Secret::MAX_LEN).contains(&len),
            "secret of {len} bytes"
        );
    }
    // Without a URI, the label is stored exactly as sent: no trimming, no
    // normalisation, so the client reads back what it wrote.
    if let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(data) {
        if body.get("uri").is_none_or(Value::is_null) {
            assert_eq!(
                body.get("label").and_then(Value::as_str),
                Some(new.label.as_str()),
                "label not as sent"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    match totpd_api::parse_create_secret_body(data) {
        Ok(new) => check_accepted(data, &new),
        Err(error) => {
            // Every rejection is a 400 naming what is wrong, never a 500.
            let message = error.to_string();
            assert!(!message.is_empty());
            assert!(
                matches!(error, totpd_api::ApiError::InvalidRequest(_)),
                "{error:?}"
            );
        }
    }
});
