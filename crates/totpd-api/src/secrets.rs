//! `/api/v2/totp/secrets` and `/api/v2/totp/code/{id}`: the Sendblue-compatible core.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{delete, get};
use serde_json::{Map, Value};
use totpd_otp::{Algorithm, Digits, OtpKind, Period, Secret, parse_otpauth_uri};
use totpd_vault::{Issuer, Label, NewSecret, SecretSource};
use uuid::Uuid;

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::json::{JsonObject, opt_string, opt_u64};
use crate::wire::{
    CodeResponse, CreateSecretRequest, CreateSecretResponse, CreatedTotpSecret,
    ListSecretsResponse, StatusOnly, TotpSecret,
};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v2/totp/secrets",
            get(list_secrets).post(create_secret),
        )
        .route("/api/v2/totp/secrets/{id}", delete(delete_secret))
        .route("/api/v2/totp/code/{id}", get(get_code))
}

/// Digits the API accepts. The OTP core also computes 7-digit codes, but the
/// Sendblue contract (and its SDK types) allow only 6 and 8.
const API_DIGITS: [u8; 2] = [6, 8];
const DIGITS_RULE: &str = "6 or 8";
const PERIOD_RULE: &str = "a whole number of seconds from 1 to 86400";

/// Store a TOTP secret.
#[utoipa::path(post, path = "/api/v2/totp/secrets", tag = "totp",
    request_body = CreateSecretRequest,
    security(("api_key_id" = [], "api_secret_key" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Stored; the secret is returned this once", body = CreateSecretResponse,
            links(
                ("GetCode" = (operation_id = "get_code",
                    parameters(("id" = "$response.body#/totp_secret/id")),
                    description = "The current code of the secret just stored")),
                ("DeleteSecret" = (operation_id = "delete_secret",
                    parameters(("id" = "$response.body#/totp_secret/id")),
                    description = "Delete the secret just stored")),
            )),
        (status = 400, description = "Invalid field", body = crate::wire::ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = crate::wire::ErrorBody),
        (status = 413, description = "Body too large", body = crate::wire::ErrorBody),
        (status = 415, description = "Body is not JSON", body = crate::wire::ErrorBody),
        (status = 429, description = "Too many requests from this key, or too many failed authentications from this address; retry after Retry-After seconds", body = crate::wire::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
        (status = 503, description = "Database unavailable", body = crate::wire::ErrorBody),
    ))]
pub(crate) async fn create_secret(
    State(state): State<AppState>,
    Auth(principal): Auth,
    JsonObject(body): JsonObject,
) -> Result<Json<CreateSecretResponse>, ApiError> {
    let new = new_secret(parse_create_request(&body)?)?;
    let created = state
        .vault
        .create_secret(&principal, new, state.clock.now())
        .await?;
    tracing::info!(secret_id = %created.info.id, "secret created");
    Ok(Json(CreateSecretResponse::new(CreatedTotpSecret::from(
        &created,
    ))))
}

/// List the account's TOTP secrets (never their secret values).
#[utoipa::path(get, path = "/api/v2/totp/secrets", tag = "totp",
    security(("api_key_id" = [], "api_secret_key" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The account's secrets, oldest first", body = ListSecretsResponse),
        (status = 401, description = "Missing or invalid API key", body = crate::wire::ErrorBody),
        (status = 429, description = "Too many requests from this key, or too many failed authentications from this address; retry after Retry-After seconds", body = crate::wire::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
        (status = 503, description = "Database unavailable", body = crate::wire::ErrorBody),
    ))]
pub(crate) async fn list_secrets(
    State(state): State<AppState>,
    Auth(principal): Auth,
) -> Result<Json<ListSecretsResponse>, ApiError> {
    let secrets = state.vault.list_secrets(&principal).await?;
    Ok(Json(ListSecretsResponse::new(
        secrets.iter().map(TotpSecret::from).collect(),
    )))
}

/// Delete a TOTP secret for good.
#[utoipa::path(delete, path = "/api/v2/totp/secrets/{id}", tag = "totp",
    params(("id" = String, Path, description = "Secret id (UUID)")),
    security(("api_key_id" = [], "api_secret_key" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Deleted", body = StatusOnly),
        (status = 401, description = "Missing or invalid API key", body = crate::wire::ErrorBody),
        (status = 404, description = "No such secret in this account", body = crate::wire::ErrorBody),
        (status = 429, description = "Too many requests from this key, or too many failed authentications from this address; retry after Retry-After seconds", body = crate::wire::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
        (status = 503, description = "Database unavailable", body = crate::wire::ErrorBody),
    ))]
pub(crate) async fn delete_secret(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> Result<Json<StatusOnly>, ApiError> {
    let id = secret_id(&id)?;
    state.vault.delete_secret(&principal, id).await?;
    tracing::info!(secret_id = %id, "secret deleted");
    Ok(Json(StatusOnly::ok()))
}

/// The current code of a TOTP secret.
#[utoipa::path(get, path = "/api/v2/totp/code/{id}", tag = "totp",
    params(("id" = String, Path, description = "Secret id (UUID)")),
    security(("api_key_id" = [], "api_secret_key" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The current code", body = CodeResponse),
        (status = 401, description = "Missing or invalid API key", body = crate::wire::ErrorBody),
        (status = 404, description = "No such secret in this account", body = crate::wire::ErrorBody),
        (status = 429, description = "Too many requests from this key, or too many failed authentications from this address; retry after Retry-After seconds", body = crate::wire::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
        (status = 503, description = "Database unavailable", body = crate::wire::ErrorBody),
    ))]
pub(crate) async fn get_code(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> Result<Json<CodeResponse>, ApiError> {
    let id = secret_id(&id)?;
    let code = state.vault.code(&principal, id, state.clock.now()).await?;
    state.metrics.code_issued();
    Ok(Json(CodeResponse::from(&code)))
}

/// Parses and validates a create request body exactly as
/// `POST /api/v2/totp/secrets` does, without HTTP or storage: the entry
/// point of the request-body fuzz target.
pub fn parse_create_secret_body(bytes: &[u8]) -> Result<NewSecret, ApiError> {
    let body = crate::json::parse_object(bytes)?;
    new_secret(parse_create_request(&body)?)
}

/// A path id that is not a UUID cannot name a secret: answered like an
/// unknown id, so the two cases are indistinguishable.
fn secret_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound("no TOTP secret with this id"))
}

fn parse_create_request(body: &Map<String, Value>) -> Result<CreateSecretRequest, ApiError> {
    let digits = opt_u64(body, "digits", DIGITS_RULE)?
        .map(|d| {
            u8::try_from(d)
                .map_err(|_| ApiError::invalid(format!("\"digits\" must be {DIGITS_RULE}")))
        })
        .transpose()?;
    let period = opt_u64(body, "period", PERIOD_RULE)?
        .map(|p| {
            u32::try_from(p)
                .map_err(|_| ApiError::invalid(format!("\"period\" must be {PERIOD_RULE}")))
        })
        .transpose()?;
    Ok(CreateSecretRequest {
        uri: opt_string(body, "uri")?,
        label: opt_string(body, "label")?,
        secret: opt_string(body, "secret")?,
        issuer: opt_string(body, "issuer")?,
        algorithm: opt_string(body, "algorithm")?,
        digits,
        period,
    })
}

fn api_digits(digits: u8) -> Result<Digits, ApiError> {
    if API_DIGITS.contains(&digits) {
        Digits::new(digits)
            .map_err(|_| ApiError::invalid(format!("\"digits\" must be {DIGITS_RULE}")))
    } else {
        Err(ApiError::invalid(format!(
            "\"digits\" must be {DIGITS_RULE}"
        )))
    }
}

fn optional_issuer(issuer: Option<&str>) -> Result<Option<Issuer>, ApiError> {
    issuer
        .filter(|i| !i.trim().is_empty())
        .map(Issuer::parse)
        .transpose()
        .map_err(ApiError::InvalidRequest)
}

/// Turns the wire request into a validated domain request.
fn new_secret(request: CreateSecretRequest) -> Result<NewSecret, ApiError> {
    if let Some(uri) = request.uri {
        return new_secret_from_uri(&uri, request.label.as_deref(), request.issuer.as_deref());
    }
    let label = request
        .label
        .ok_or_else(|| ApiError::invalid("\"label\" is required when no \"uri\" is given"))?;
    let label = Label::parse(&label).map_err(ApiError::InvalidRequest)?;
    let source = match request.secret {
        None => SecretSource::Generate,
        Some(secret) if secret.trim().is_empty() => {
            return Err(ApiError::invalid(
                "\"secret\" must not be empty (omit it to have the vault generate one)",
            ));
        }
        Some(secret) => SecretSource::Provided(Secret::from_base32(&secret).map_err(|e| {
            ApiError::invalid(format!("\"secret\" is not a valid base32 secret: {e}"))
        })?),
    };
    let algorithm = match request.algorithm {
        None => Algorithm::Sha1,
        Some(name) => name
            .parse::<Algorithm>()
            .map_err(|_| ApiError::invalid("\"algorithm\" must be SHA1, SHA256 or SHA512"))?,
    };
    let digits = request.digits.map_or(Ok(Digits::default()), api_digits)?;
    let period = match request.period {
        None => Period::default(),
        Some(p) => Period::new(u64::from(p))
            .map_err(|_| ApiError::invalid(format!("\"period\" must be {PERIOD_RULE}")))?,
    };
    Ok(NewSecret {
        label,
        issuer: optional_issuer(request.issuer.as_deref())?,
        source,
        algorithm,
        digits,
        period,
    })
}

fn new_secret_from_uri(
    uri: &str,
    fallback_label: Option<&str>,
    fallback_issuer: Option<&str>,
) -> Result<NewSecret, ApiError> {
    let params = parse_otpauth_uri(uri)
        .map_err(|e| ApiError::invalid(format!("\"uri\" is invalid: {e}")))?;
    let period = match params.kind {
        OtpKind::Totp { period } => period,
        OtpKind::Hotp { .. } => {
            return Err(ApiError::invalid(
                "\"uri\" is an HOTP (counter-based) URI; this endpoint stores TOTP secrets",
            ));
        }
    };
    let label = if params.account.trim().is_empty() {
        let label = fallback_label.ok_or_else(|| {
            ApiError::invalid("\"label\" is required because the \"uri\" has no account name")
        })?;
        Label::parse(label)
    } else {
        Label::parse(&params.account)
    }
    .map_err(ApiError::InvalidRequest)?;
    let issuer = optional_issuer(params.issuer.as_deref().or(fallback_issuer))?;
    let digits = api_digits(params.digits.get()).map_err(|_| {
        ApiError::invalid(format!("\"uri\" is invalid: digits must be {DIGITS_RULE}"))
    })?;
    Ok(NewSecret {
        label,
        issuer,
        source: SecretSource::Provided(params.secret),
        algorithm: params.algorithm,
        digits,
        period,
    })
}
