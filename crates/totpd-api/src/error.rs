//! `ApiError`: every failure as the JSON error body
//! `{"status":"ERROR","error":"<code>","message":"<sentence>"}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use totpd_vault::{BoxError, ErrorChain, LabelError, VaultError};

use crate::telemetry::CurrentRequestId;
use crate::wire::ErrorBody;

/// An HTTP error answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 400: the request is invalid; the message names the field.
    #[error("{0}")]
    InvalidRequest(String),
    /// 401: missing, wrong or revoked credentials (never says which).
    #[error("missing, invalid or revoked API key")]
    Unauthorized,
    /// 403: the API key's role (or scope) does not allow the request.
    #[error("{0}")]
    Forbidden(&'static str),
    /// 404: no such resource in the caller's account.
    #[error("{0}")]
    NotFound(&'static str),
    /// 405: the route exists but not with this method.
    #[error("method not allowed on this path")]
    MethodNotAllowed,
    /// 413: the body exceeds the configured limit.
    #[error("the request body exceeds the size limit")]
    PayloadTooLarge,
    /// 415: the body is not JSON.
    #[error("request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    /// 415: an import body of a type it does not take.
    #[error(
        "an import body must be JSON (application/json) or the file itself (image/png, image/jpeg, image/webp, text/plain or application/octet-stream)"
    )]
    UnsupportedImportType,
    /// 429: too many requests from this key, or too many failed
    /// authentications from this client address.
    #[error("too many requests; retry after {retry_after_secs} s")]
    RateLimited {
        /// Whole seconds to wait, at least 1: the `Retry-After` header.
        retry_after_secs: u64,
    },
    /// 403: the account already holds the most secrets allowed
    /// (`--max-secrets-per-account`); nothing was stored.
    #[error(
        "this account already holds {limit} secrets, the most allowed; delete some before adding more"
    )]
    QuotaExceeded {
        /// The per-account quota.
        limit: u64,
    },
    /// 503: the database is unreachable, or the request ran out of time.
    #[error("{0}")]
    Unavailable(&'static str),
    /// 500: a bug or corrupt data; the cause (with its whole chain) is
    /// logged, never shown.
    #[error("internal error")]
    Internal(#[source] BoxError),
}

impl ApiError {
    pub(crate) fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UnsupportedMediaType | ApiError::UnsupportedImportType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::QuotaExceeded { .. } => (StatusCode::FORBIDDEN, "quota_exceeded"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::InvalidRequest(message.into())
    }

    /// A 500 caused by `cause` (a [`VaultError`], a message, any error).
    pub(crate) fn internal(cause: impl Into<BoxError>) -> ApiError {
        ApiError::Internal(cause.into())
    }
}

impl From<LabelError> for ApiError {
    fn from(error: LabelError) -> ApiError {
        ApiError::InvalidRequest(error.to_string())
    }
}

impl From<VaultError> for ApiError {
    fn from(error: VaultError) -> ApiError {
        match error {
            VaultError::Unauthorized => ApiError::Unauthorized,
            VaultError::Forbidden => {
                ApiError::Forbidden("this API key's role or scope does not allow this request")
            }
            VaultError::NotFound => ApiError::NotFound("no TOTP secret with this id"),
            VaultError::Invalid(message) => ApiError::InvalidRequest(message),
            VaultError::QuotaExceeded { limit } => ApiError::QuotaExceeded { limit },
            VaultError::RateLimited { retry_after_secs } => {
                ApiError::RateLimited { retry_after_secs }
            }
            VaultError::Unavailable(cause) => {
                tracing::warn!(request_id = %CurrentRequestId, error = %ErrorChain(&cause), "database unavailable");
                ApiError::Unavailable("the database is unavailable; retry shortly")
            }
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            ApiError::Internal(cause) => {
                // The cause goes to the log only, with every source below
                // it: it may name internals.
                tracing::error!(request_id = %CurrentRequestId, error = %ErrorChain(cause.as_ref()), "internal error");
                "the server failed to handle this request".to_owned()
            }
            other => other.to_string(),
        };
        let mut response = (
            status,
            axum::Json(ErrorBody {
                status: "ERROR",
                error: code,
                message,
            }),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"totpd\""),
            );
        }
        if let ApiError::RateLimited { retry_after_secs } = &self {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(*retry_after_secs.max(&1)),
            );
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

pub(crate) async fn not_found_fallback() -> ApiError {
    ApiError::NotFound("no such route")
}

pub(crate) async fn method_not_allowed_fallback() -> ApiError {
    ApiError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forbidden_operation_is_403_forbidden() {
        let error = ApiError::from(VaultError::Forbidden);
        assert_eq!(
            error.status_and_code(),
            (StatusCode::FORBIDDEN, "forbidden")
        );
    }

    #[test]
    fn a_full_account_is_403_quota_exceeded_naming_the_quota() {
        let error = ApiError::from(VaultError::QuotaExceeded { limit: 5 });
        assert_eq!(
            error.status_and_code(),
            (StatusCode::FORBIDDEN, "quota_exceeded")
        );
        assert!(error.to_string().contains("5 secrets"), "{error}");
    }

    #[test]
    fn rate_limited_is_429_with_retry_after_and_the_json_error_body() {
        let response = ApiError::RateLimited {
            retry_after_secs: 7,
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            response.headers().get(header::RETRY_AFTER),
            Some(&HeaderValue::from_static("7"))
        );
        let zero = ApiError::RateLimited {
            retry_after_secs: 0,
        }
        .into_response();
        assert_eq!(
            zero.headers().get(header::RETRY_AFTER),
            Some(&HeaderValue::from_static("1")),
            "Retry-After is never 0"
        );
        assert_eq!(
            ApiError::RateLimited {
                retry_after_secs: 7
            }
            .status_and_code(),
            (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
        );
    }

    #[derive(Debug, thiserror::Error)]
    #[error("Invalid column type Text at index: 5, name: digits")]
    struct Driver;

    #[test]
    fn an_internal_error_keeps_the_vault_error_and_its_chain_as_its_source() {
        let vault = VaultError::from(totpd_vault::StoreError::corrupt(
            "a SQLite value cannot be decoded",
            Driver,
        ));
        let error = ApiError::from(vault);
        assert_eq!(
            error.status_and_code(),
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        );
        assert_eq!(
            ErrorChain(&error).to_string(),
            "internal error: internal error: the store failed: corrupt row: \
             a SQLite value cannot be decoded: Invalid column type Text at index: 5, name: digits"
        );
        let source = std::error::Error::source(&error).expect("a source");
        assert!(source.downcast_ref::<VaultError>().is_some());
    }

    #[test]
    fn a_500_body_names_no_internals() {
        let response = ApiError::from(VaultError::internal("secret x is corrupt")).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = futures_body(response);
        assert_eq!(
            body,
            r#"{"status":"ERROR","error":"internal","message":"the server failed to handle this request"}"#
        );
    }

    fn futures_body(response: Response) -> String {
        let bytes = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }
}
