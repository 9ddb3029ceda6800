//! The `POST /api/v2/totp/secrets/{id}/verify` body parser on arbitrary
//! bytes, exactly as the handler runs it but without HTTP or storage: no
//! panic, no hang, no unbounded allocation; every body it accepts is an
//! object whose `code` is a string, kept exactly as sent, and every body it
//! refuses is a 400.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    match totpd_api::parse_verify_body(data) {
        Ok(request) => {
            let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(data) else {
                panic!("accepted a body that is not a JSON object");
            };
            assert_eq!(
                body.get("code").and_then(Value::as_str),
                Some(request.code.as_str()),
                "code not as sent"
            );
        }
        Err(error) => {
            assert!(!error.to_string().is_empty());
            assert!(
                matches!(error, totpd_api::ApiError::InvalidRequest(_)),
                "{error:?}"
            );
        }
    }
});
