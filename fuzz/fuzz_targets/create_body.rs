//! The `POST /api/v2/totp/secrets` body parser on arbitrary bytes, exactly as
//! the handler runs it but without HTTP or storage: no panic, no hang, no
//! unbounded allocation, and every body it accepts is a request the vault
//! may store (the API's contract, not just the OTP core's).

#![no_main]

use libfuzzer_sys::fuzz_target;
use totpd_otp::Secret;
use totpd_vault::{NewSecret, SecretSource};

/// What `parse_create_secret_body` promises about every body it accepts.
fn check_accepted(new: &NewSecret) {
    // The Sendblue contract: 6 or 8 digits (the core would also take 7).
    assert!(matches!(new.digits.get(), 6 | 8), "digits {}", new.digits);
    assert!(
        (1..=86_400).contains(&new.period.get()),
        "period {}",
        new.period
    );
    for text in std::iter::once(new.label.as_str()).chain(new.issuer.as_ref().map(|i| i.as_str())) {
        assert!(!text.is_empty(), "empty label or issuer");
        assert_eq!(text, text.trim(), "label or issuer not trimmed");
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
}

fuzz_target!(|data: &[u8]| {
    match totpd_api::parse_create_secret_body(data) {
        Ok(new) => check_accepted(&new),
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
