//! Authentication: the SDKs' `sb-api-key-id` / `sb-api-secret-key` headers,
//! or `Authorization: Bearer <key_id>.<secret>` for curl users.

use std::net::SocketAddr;

use axum::extract::MatchedPath;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::Method;
use axum::http::request::Parts;
use totpd_vault::{Action, Origin, Principal};
use uuid::Uuid;

use crate::AppState;
use crate::error::ApiError;
use crate::limits::RetryAfter;
use crate::metrics::LimitKind;
use crate::telemetry::{CurrentRequestId, RequestId};

pub(crate) const KEY_ID_HEADER: &str = "sb-api-key-id";
pub(crate) const SECRET_HEADER: &str = "sb-api-secret-key";

/// The authenticated caller. Every failure is the same 401.
///
/// Abuse limits apply here, in this order: a request without credentials is
/// 401 and counts for nothing; a key id locked out for the client's address
/// (too many failures of that key id from it, or of the address as a whole
/// for a key id that has not authenticated from it) gets 429 before its
/// secret is checked; a wrong credential counts against the key id from that
/// address and against the address; an accepted key is remembered as in use
/// from the address (while the address's failures are counted) and takes a
/// token from its bucket (after authentication, so nobody can spend another
/// key's budget by sending its public key id).
#[derive(Debug)]
pub(crate) struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Auth, ApiError> {
        let guard = &state.abuse;
        let client = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| peer.ip());
        let Some((key_id, secret)) = credentials(&parts.headers) else {
            // No credentials at all is a misconfigured client, not a guess:
            // it does not count towards the lockout.
            state.metrics.auth_failed();
            return Err(ApiError::Unauthorized);
        };
        if let Some(client) = client
            && let Err(wait) = guard.check_client(client, key_id, state.clock.monotonic())
        {
            state.metrics.rate_limited(LimitKind::AuthFailures);
            return Err(rate_limited(wait));
        }
        let principal = match state
            .vault
            .authenticate(key_id, secret, state.clock.now(), origin(parts, client))
            .await
        {
            Ok(principal) => principal,
            Err(e) => {
                if matches!(e, totpd_vault::VaultError::Unauthorized) {
                    state.metrics.auth_failed();
                    if let Some(client) = client {
                        let locked =
                            guard.record_auth_failure(client, key_id, state.clock.monotonic());
                        // The key id is not logged: it is client text, and a
                        // client that swapped its headers sends its secret there.
                        if locked.key {
                            tracing::warn!(
                                request_id = %CurrentRequestId,
                                %client,
                                "a key id locked out for this client address after repeated failed authentications"
                            );
                        }
                        if locked.client {
                            tracing::warn!(
                                request_id = %CurrentRequestId,
                                %client,
                                "client address locked out, except for keys in use from it, after repeated failed authentications"
                            );
                        }
                    }
                }
                return Err(e.into());
            }
        };
        if let Some(client) = client {
            guard.record_auth_success(client, key_id, state.clock.monotonic());
        }
        if let Err(wait) = guard.check_key(&principal.key_id, state.clock.monotonic()) {
            state.metrics.rate_limited(LimitKind::PerKey);
            if let Some((action, secret_id)) = audited_action(parts) {
                state
                    .vault
                    .record_rate_limited(&principal, action, secret_id, state.clock.now());
            }
            return Err(rate_limited(wait));
        }
        Ok(Auth(principal))
    }
}

/// The audited action a request asks for, and the secret it names, for
/// the record of a request refused before it reached the vault.
fn audited_action(parts: &Parts) -> Option<(Action, Option<Uuid>)> {
    let path = parts.extensions.get::<MatchedPath>()?.as_str();
    let secret_id = || {
        parts
            .uri
            .path()
            .rsplit('/')
            .next()
            .and_then(|id| Uuid::parse_str(id).ok())
    };
    match (&parts.method, path) {
        (&Method::POST, "/api/v2/totp/secrets") => Some((Action::SecretCreate, None)),
        (&Method::DELETE, "/api/v2/totp/secrets/{id}") => Some((Action::SecretDelete, secret_id())),
        (&Method::GET, "/api/v2/totp/code/{id}") => Some((Action::CodeRead, secret_id())),
        _ => None,
    }
}

/// Most bytes of a `User-Agent` kept for the audit log.
const MAX_USER_AGENT: usize = 256;

/// Where the request came from, for the audit log.
fn origin(parts: &Parts, client: Option<std::net::IpAddr>) -> Origin {
    let user_agent = parts
        .headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| {
            let mut end = ua.len().min(MAX_USER_AGENT);
            while !ua.is_char_boundary(end) {
                end -= 1;
            }
            ua[..end].to_owned()
        });
    Origin {
        remote_addr: client,
        user_agent,
        request_id: parts
            .extensions
            .get::<RequestId>()
            .map(|RequestId(id)| id.to_string()),
    }
}

fn rate_limited(wait: RetryAfter) -> ApiError {
    ApiError::RateLimited {
        retry_after_secs: wait.whole_seconds(),
    }
}

fn credentials(headers: &HeaderMap) -> Option<(&str, &str)> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let (Some(id), Some(secret)) = (header(KEY_ID_HEADER), header(SECRET_HEADER)) {
        return Some((id.trim(), secret.trim()));
    }
    let authorization = header("authorization")?;
    let (scheme, token) = authorization.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    token.trim().split_once('.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn sdk_headers_are_read() {
        let h = headers(&[(KEY_ID_HEADER, "tk_1"), (SECRET_HEADER, "s3cr3t")]);
        assert_eq!(credentials(&h), Some(("tk_1", "s3cr3t")));
    }

    #[test]
    fn bearer_token_splits_on_the_first_dot() {
        let h = headers(&[("authorization", "Bearer tk_1.abc-def_ghi")]);
        assert_eq!(credentials(&h), Some(("tk_1", "abc-def_ghi")));
        let h = headers(&[("authorization", "bearer tk_1.abc")]);
        assert_eq!(credentials(&h), Some(("tk_1", "abc")));
    }

    #[test]
    fn other_schemes_and_tokens_without_a_dot_are_no_credentials() {
        assert_eq!(
            credentials(&headers(&[("authorization", "Basic dXNlcjpwYXNz")])),
            None
        );
        assert_eq!(
            credentials(&headers(&[("authorization", "Bearer nodot")])),
            None
        );
        assert_eq!(credentials(&headers(&[(KEY_ID_HEADER, "tk_1")])), None);
        assert_eq!(credentials(&HeaderMap::new()), None);
    }
}
