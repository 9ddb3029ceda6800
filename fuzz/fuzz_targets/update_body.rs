//! The `PATCH /api/v2/totp/secrets/{id}` body parser on arbitrary bytes,
//! exactly as the handler runs it but without HTTP or storage: no panic, no
//! hang, no unbounded allocation; every body it accepts changes something,
//! names no field that is fixed at creation, and carries the label and
//! issuer exactly as sent.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use totpd_vault::SecretPatch;

/// Fields a patch may never carry (the key material and OTP parameters).
const IMMUTABLE: [&str; 7] = [
    "secret",
    "uri",
    "algorithm",
    "digits",
    "period",
    "type",
    "counter",
];

/// What `parse_update_secret_body` promises about every body it accepts.
fn check_accepted(data: &[u8], patch: &SecretPatch) {
    assert!(!patch.is_empty(), "a patch that changes nothing");
    let texts = patch
        .label
        .iter()
        .map(|l| l.as_str())
        .chain(patch.issuer.iter().flatten().map(|i| i.as_str()));
    for text in texts {
        assert!(!text.trim().is_empty(), "blank label or issuer");
        assert!(text.chars().count() <= 256, "label or issuer too long");
        assert!(
            !text.chars().any(char::is_control),
            "control character kept"
        );
    }
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(data) else {
        panic!("accepted a body that is not a JSON object");
    };
    for field in IMMUTABLE {
        assert!(!body.contains_key(field), "accepted a change of {field}");
    }
    assert_eq!(
        body.get("label").and_then(Value::as_str),
        patch.label.as_ref().map(|l| l.as_str()),
        "label not as sent"
    );
    if let Some(Some(issuer)) = &patch.issuer {
        assert_eq!(
            body.get("issuer").and_then(Value::as_str),
            Some(issuer.as_str()),
            "issuer not as sent"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    match totpd_api::parse_update_secret_body(data) {
        Ok(patch) => check_accepted(data, &patch),
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
