//! A JSON body extractor whose every rejection is our JSON error body, not
//! axum's plain-text one.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde_json::{Map, Value};

use crate::error::ApiError;

/// A request body that parsed as a JSON object. `Debug` shows how many
/// fields it has, not their names or values (any of which may be a secret).
pub(crate) struct JsonObject(pub Map<String, Value>);

impl std::fmt::Debug for JsonObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonObject")
            .field("fields", &self.0.len())
            .field("content", &crate::wire::Redacted)
            .finish()
    }
}

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<JsonObject, ApiError> {
        if let Some(content_type) = req.headers().get(header::CONTENT_TYPE) {
            let is_json = content_type
                .to_str()
                .ok()
                .and_then(|v| v.split(';').next())
                .map(|mime| {
                    let mime = mime.trim().to_ascii_lowercase();
                    mime == "application/json" || mime.ends_with("+json")
                })
                .unwrap_or(false);
            if !is_json {
                return Err(ApiError::UnsupportedMediaType);
            }
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::invalid("the request body could not be read")
            }
        })?;
        parse_object(&bytes).map(JsonObject)
    }
}

/// Parses a request body that must be a JSON object.
pub(crate) fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::invalid("the request body must be a JSON object")),
        Err(e) => Err(ApiError::invalid(format!(
            "the request body is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))),
    }
}

/// Reads an optional string field; `null` counts as absent.
pub(crate) fn opt_string(
    body: &Map<String, Value>,
    field: &str,
) -> Result<Option<String>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::invalid(format!("\"{field}\" must be a string"))),
    }
}

/// Reads an optional non-negative integer field; `null` counts as absent.
/// Any other JSON type, a fraction or a negative number is rejected with
/// `expectation` (which says what the field must be).
pub(crate) fn opt_u64(
    body: &Map<String, Value>,
    field: &str,
    expectation: &str,
) -> Result<Option<u64>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| ApiError::invalid(format!("\"{field}\" must be {expectation}"))),
        Some(_) => Err(ApiError::invalid(format!(
            "\"{field}\" must be {expectation}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_object_debug_shows_no_field_name_or_value() {
        let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        let body = format!(
            r#"{{"secret":"{secret}","uri":"otpauth://totp/x?secret={secret}","{secret}":1}}"#
        );
        let object = JsonObject(parse_object(body.as_bytes()).unwrap());
        crate::wire::tests::assert_redacted(
            "JsonObject",
            &object,
            &[secret, &secret[..16], "otpauth", "\"secret\""],
        );
        assert!(
            format!("{object:?}").contains('3'),
            "the field count is shown"
        );
    }
}
