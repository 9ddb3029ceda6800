//! `/api/v2/keys`: create, list and revoke the account's API keys. Who may
//! call them is decided by the vault (owners only), like every permission.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{delete, get};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use totpd_vault::{KeySpec, Role, Scope, UnixTime};
use uuid::Uuid;

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::json::{JsonObject, opt_string};
use crate::wire::{ApiKey, CreateKeyRequest, CreateKeyResponse, ListKeysResponse, StatusOnly};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v2/keys", get(list_keys).post(create_key))
        .route("/api/v2/keys/{key_id}", delete(revoke_key))
}

/// Create an API key in the caller's account (owner keys only).
#[utoipa::path(post, path = "/api/v2/keys", tag = "keys",
    request_body = CreateKeyRequest,
    security(("api_key_id" = [], "api_secret_key" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Created; the secret is returned this once", body = CreateKeyResponse,
            links(("RevokeKey" = (operation_id = "revoke_key",
                parameters(("key_id" = "$response.body#/api_key/key_id")),
                description = "Revoke the key just created")))),
        (status = 400, description = "Invalid field (named in the message)", body = crate::wire::ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = crate::wire::ErrorBody),
        (status = 403, description = "forbidden: only owner keys manage keys", body = crate::wire::ErrorBody),
        (status = 413, description = "Body too large", body = crate::wire::ErrorBody),
        (status = 415, description = "Body is not JSON", body = crate::wire::ErrorBody),
        (status = 429, description = "Too many requests from this key, or too many failed authentications from this address; retry after Retry-After seconds", body = crate::wire::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
        (status = 503, description = "Database unavailable", body = crate::wire::ErrorBody),
    ))]
pub(crate) async fn create_key(
    State(state): State<AppState>,
    Auth(principal): Auth,
    JsonObject(body): JsonObject,
) -> Result<Json<CreateKeyResponse>, ApiError> {
    let spec = parse_create_key(&body)?;
    let created = state
        .vault
        .create_key(&principal, spec, state.clock.now())
        .await?;
    tracing::info!(key_id = %created.key_id, role = %created.info.role, "API key created");
    Ok(Json(CreateKeyResponse::new(
        ApiKey::from(&created.info),
        created.secret.expose().to_owned(),
    )))
}

/// List the account's API keys, revoked ones included (owner keys only).
#[utoipa::path(get, path = "/api/v2/keys", tag = "keys",
    security(("api_key_id" = [], "api_secret_key" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The account's keys, oldest first; never a secret or hash", body = ListKeysResponse),
        (status = 401, description = "Missing or invalid API key", body = crate::wire::ErrorBody),
        (status = 403, description = "forbidden: only owner keys manage keys", body = crate::wire::ErrorBody),
        (status = 429, description = "Too many requests from this key, or too many failed authentications from this address; retry after Retry-After seconds", body = crate::wire::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
        (status = 503, description = "Database unavailable", body = crate::wire::ErrorBody),
    ))]
pub(crate) async fn list_keys(
    State(state): State<AppState>,
    Auth(principal): Auth,
) -> Result<Json<ListKeysResponse>, ApiError> {
    let keys = state.vault.list_keys(&principal).await?;
    Ok(Json(ListKeysResponse::new(
        keys.iter().map(ApiKey::from).collect(),
    )))
}

/// Revoke one of the account's API keys (owner keys only); every node
/// refuses it within a second. A key cannot revoke itself (400).
#[utoipa::path(delete, path = "/api/v2/keys/{key_id}", tag = "keys",
    params(("key_id" = String, Path, description = "Key id (`tk_...`)")),
    security(("api_key_id" = [], "api_secret_key" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Revoked", body = StatusOnly),
        (status = 400, description = "The key named is the one making the request: a key cannot revoke itself", body = crate::wire::ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = crate::wire::ErrorBody),
        (status = 403, description = "forbidden: only owner keys manage keys", body = crate::wire::ErrorBody),
        (status = 404, description = "No such unrevoked key in this account", body = crate::wire::ErrorBody),
        (status = 429, description = "Too many requests from this key, or too many failed authentications from this address; retry after Retry-After seconds", body = crate::wire::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
        (status = 503, description = "Database unavailable", body = crate::wire::ErrorBody),
    ))]
pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(key_id): Path<String>,
) -> Result<Json<StatusOnly>, ApiError> {
    let not_found = || ApiError::NotFound("no unrevoked API key with this id in this account");
    // A key id is short ASCII; anything else names no key (and is not
    // worth a database read).
    if key_id.len() > 64 || !key_id.is_ascii() {
        return Err(not_found());
    }
    match state
        .vault
        .revoke_key(&principal, &key_id, state.clock.now())
        .await
    {
        Ok(()) => {
            tracing::info!(%key_id, "API key revoked");
            Ok(Json(StatusOnly::ok()))
        }
        Err(totpd_vault::VaultError::NotFound) => Err(not_found()),
        Err(other) => Err(other.into()),
    }
}

const SECRET_IDS_RULE: &str = "\"secret_ids\" must be an array of secret ids (UUIDs), or null";

/// Reads and checks the fields of a create body; the vault checks the
/// rest (that the ids are the account's, the limits, the expiry's future).
fn parse_create_key(body: &Map<String, Value>) -> Result<KeySpec, ApiError> {
    let role = match body.get("role") {
        Some(Value::String(name)) => name.parse::<Role>().map_err(|_| {
            ApiError::invalid("\"role\" must be one of owner, admin, agent, verifier")
        })?,
        None | Some(Value::Null) => {
            return Err(ApiError::invalid(
                "\"role\" is required: one of owner, admin, agent, verifier",
            ));
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "\"role\" must be one of owner, admin, agent, verifier",
            ));
        }
    };
    let name = opt_string(body, "name")?.unwrap_or_default();
    let scope = match body.get("secret_ids") {
        None | Some(Value::Null) => Scope::All,
        Some(Value::Array(items)) => {
            if items.len() > totpd_vault::MAX_SCOPE_IDS {
                return Err(ApiError::invalid(format!(
                    "\"secret_ids\" may list at most {} secrets",
                    totpd_vault::MAX_SCOPE_IDS
                )));
            }
            let ids = items
                .iter()
                .map(|item| {
                    item.as_str()
                        .and_then(|s| Uuid::parse_str(s).ok())
                        .ok_or_else(|| ApiError::invalid(SECRET_IDS_RULE))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Scope::only(ids)
        }
        Some(_) => return Err(ApiError::invalid(SECRET_IDS_RULE)),
    };
    let expires_at = opt_string(body, "expires_at")?
        .map(|text| parse_time(&text))
        .transpose()?;
    Ok(KeySpec {
        name,
        role,
        scope,
        expires_at,
    })
}

/// An RFC 3339 time as Unix milliseconds.
fn parse_time(text: &str) -> Result<UnixTime, ApiError> {
    let invalid =
        || ApiError::invalid("\"expires_at\" must be an RFC 3339 time, e.g. 2027-01-01T00:00:00Z");
    let at = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| invalid())?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000)
        .map(UnixTime)
        .map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<KeySpec, String> {
        let body = crate::json::parse_object(body.as_bytes()).unwrap();
        parse_create_key(&body).map_err(|e| e.to_string())
    }

    #[test]
    fn a_create_body_is_read_and_every_bad_field_is_named() {
        let id = Uuid::from_u128(3);
        let spec = parse(&format!(
            r#"{{"name":"bot","role":"agent","secret_ids":["{id}","{id}"],"expires_at":"2027-01-01T00:00:00.5+01:00"}}"#
        ))
        .unwrap();
        assert_eq!(spec.role, Role::Agent);
        assert_eq!(spec.scope, Scope::only([id]));
        assert_eq!(spec.expires_at, Some(UnixTime(1_798_758_000_500)));
        assert_eq!(spec.name, "bot");
        let spec = parse(r#"{"role":"owner","secret_ids":null}"#).unwrap();
        assert_eq!(
            (spec.scope, spec.expires_at, spec.name),
            (Scope::All, None, String::new())
        );
        for (body, field) in [
            (r#"{}"#, "role"),
            (r#"{"role":"root"}"#, "role"),
            (r#"{"role":1}"#, "role"),
            (r#"{"role":"agent","name":5}"#, "name"),
            (r#"{"role":"agent","secret_ids":"x"}"#, "secret_ids"),
            (
                r#"{"role":"agent","secret_ids":["not-a-uuid"]}"#,
                "secret_ids",
            ),
            (r#"{"role":"agent","secret_ids":[1]}"#, "secret_ids"),
            (r#"{"role":"agent","expires_at":"tomorrow"}"#, "expires_at"),
            (r#"{"role":"agent","expires_at":1700000000}"#, "expires_at"),
        ] {
            let message = parse(body).unwrap_err();
            assert!(
                message.contains(&format!("\"{field}\"")),
                "{body}: {message}"
            );
        }
    }
}
