//! `/api/v2/totp/secrets` and `/api/v2/totp/code/{id}`: the Sendblue-compatible core.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use totpd_otp::{Algorithm, Digits, OtpKind, OtpParams, Period, Secret, parse_otpauth_uri};
use totpd_vault::{
    GENERATED_SECRET_LEN, IssuedCode, Issuer, LIST_PAGE, Label, ListCursor, MAX_HOTP_COUNTER,
    MAX_TEXT_CHARS, NewSecret, Principal, SecretFilter, SecretInfo, SecretKind, SecretPatch,
    SecretSource, Skew, Vault, Verification,
};
use tracing::Instrument as _;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::json::{JsonObject, opt_string, opt_u64};
use crate::qr::{self, QrFormat};
use crate::telemetry::WaitAllowance;
use crate::wire::{
    CodeAnswer, CodeResponse, CreateSecretRequest, CreateSecretResponse, CreatedTotpSecret,
    HotpCodeResponse, ListSecretsResponse, SecretResponse, StatusOnly, TotpSecret,
    UpdateSecretRequest, VerifyRequest, VerifyResponse,
};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v2/totp/secrets",
            get(list_secrets).post(create_secret),
        )
        .route(
            "/api/v2/totp/secrets/{id}",
            get(get_secret).patch(update_secret).delete(delete_secret),
        )
        .route("/api/v2/totp/code/{id}", get(get_code))
        .route("/api/v2/totp/secrets/{id}/verify", post(verify_code))
}

/// Digits the API accepts. The OTP core also computes 7-digit codes, but the
/// Sendblue contract (and its SDK types) allow only 6 and 8.
const API_DIGITS: [u8; 2] = [6, 8];
const DIGITS_RULE: &str = "6 or 8";
const PERIOD_RULE: &str = "a whole number of seconds from 1 to 86400";
const COUNTER_RULE: &str = "an integer from 0 to 9223372036854775807";
const SKEW_RULE: &str = "0, 1 or 2";

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
                ("VerifyCode" = (operation_id = "verify_code",
                    parameters(("id" = "$response.body#/totp_secret/id")),
                    description = "Verify a code of the secret just stored")),
                ("DeleteSecret" = (operation_id = "delete_secret",
                    parameters(("id" = "$response.body#/totp_secret/id")),
                    description = "Delete the secret just stored")),
            )),
        (status = 400, description = "Invalid field", body = crate::wire::ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = crate::wire::ErrorBody),
        (status = 403, description = "forbidden: the key's role may not create secrets, or the key is scoped to listed secrets; quota_exceeded: the account already holds the most secrets allowed (--max-secrets-per-account); nothing was stored", body = crate::wire::ErrorBody),
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
    let (new, enrollment) = parse_create(&body)?;
    let created = state
        .vault
        .create_secret(&principal, new, state.clock.now())
        .await?;
    tracing::info!(secret_id = %created.info.id, "secret created");
    let mut answer = CreatedTotpSecret::from(&created);
    if let Some(Enrollment { mut params, qr }) = enrollment {
        params.secret = created.secret.clone();
        let uri = Zeroizing::new(params.to_uri());
        if let Some(format) = qr {
            // parse_create made sure a URI of this length fits.
            answer.qr = Some(
                qr::render(&uri, format)
                    .map_err(ApiError::internal)?
                    .to_string(),
            );
        }
        answer.uri = Some(uri.to_string());
    }
    Ok(Json(CreateSecretResponse::new(answer)))
}

/// What the answer to the create of a generated secret adds: its
/// `otpauth://` URI, and the QR code of it if one was asked for.
pub(crate) struct Enrollment {
    /// The URI's parameters, with a stand-in secret of the generated
    /// length until the vault has drawn the real one.
    params: OtpParams,
    qr: Option<QrFormat>,
}

/// List the account's TOTP secrets (never their secret values).
#[utoipa::path(get, path = "/api/v2/totp/secrets", tag = "totp",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Most secrets in this page (default 100 when only cursor is given). With limit or cursor the answer is one page and carries next_cursor; without either, every matching secret"),
        ("cursor" = Option<String>, Query, description = "The next_cursor of the previous page (opaque)"),
        ("issuer" = Option<String>, Query, max_length = 256, description = "Only secrets of exactly this issuer (case-insensitive)"),
        ("q" = Option<String>, Query, max_length = 256, description = "Only secrets whose label or issuer contains this text (case-insensitive; no character is special)"),
    ),
    security(("api_key_id" = [], "api_secret_key" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The account's secrets (for a scoped key, only those in its scope) that match the filters, oldest first (by created_at, then id). Without limit and cursor, every one, streamed page by page: an error after the first page closes the connection before the end of the document", body = ListSecretsResponse),
        (status = 400, description = "Invalid parameter; the message names it", body = crate::wire::ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = crate::wire::ErrorBody),
        (status = 403, description = "forbidden: the key's role does not allow this", body = crate::wire::ErrorBody),
        (status = 429, description = "Too many requests from this key, or too many failed authentications from this address; retry after Retry-After seconds", body = crate::wire::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
        (status = 503, description = "Database unavailable", body = crate::wire::ErrorBody),
    ))]
pub(crate) async fn list_secrets(
    State(state): State<AppState>,
    Auth(principal): Auth,
    uri: Uri,
) -> Result<Response, ApiError> {
    let query = parse_list_query(&uri)?;
    let filter = SecretFilter::new(query.issuer.as_deref(), query.q.as_deref());
    if query.limit.is_some() || query.cursor.is_some() {
        let after = query
            .cursor
            .as_deref()
            .map(|token| {
                state
                    .vault
                    .parse_list_cursor(&principal, token)
                    .ok_or_else(|| {
                        ApiError::invalid("cursor must be the next_cursor of an earlier page")
                    })
            })
            .transpose()?;
        let limit = query.limit.unwrap_or(DEFAULT_PAGE);
        let (secrets, next) = state
            .vault
            .list_secrets_matching(&principal, &filter, after, limit)
            .await?;
        let next_cursor = next.map(|cursor| state.vault.list_cursor_token(&principal, &cursor));
        let page =
            ListSecretsResponse::page(secrets.iter().map(TotpSecret::from).collect(), next_cursor);
        return Ok(Json(page).into_response());
    }
    // The first page is read before answering, so a database that fails
    // right away gets the usual JSON error.
    let (first, next) = state
        .vault
        .list_secrets_matching(&principal, &filter, None, LIST_PAGE)
        .await?;
    let mut chunk = LIST_HEAD.to_vec();
    encode_secrets(&mut chunk, &first, true)?;
    let Some(after) = next else {
        chunk.extend_from_slice(LIST_TAIL);
        return Ok(json_response(Body::from(chunk)));
    };
    // Larger lists stream page by page: one page in the encoder and at most
    // one encoded page waiting for the client, whatever the account's size.
    let (pages, body) = mpsc::channel(1);
    pages
        .try_send(Ok(Bytes::from(chunk)))
        .map_err(|_| ApiError::internal("the list stream refused its first page"))?;
    let vault = Arc::clone(&state.vault);
    tokio::spawn(stream_list(vault, principal, filter, after, pages).in_current_span());
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(body));
    Ok(json_response(body))
}

/// Secrets per page when `cursor` is given without `limit`.
const DEFAULT_PAGE: u32 = 100;
/// Most secrets per page.
const MAX_PAGE: u32 = 1000;

/// The list's query parameters.
#[derive(Debug, Default, PartialEq, Eq)]
struct ListQuery {
    limit: Option<u32>,
    cursor: Option<String>,
    issuer: Option<String>,
    q: Option<String>,
}

/// Reads the list's query. Every bad parameter is a 400 that names it (and
/// never repeats its value); a parameter given twice is refused. Unknown
/// parameters are ignored, as elsewhere in the API, so clients that add
/// their own (cache busters, SDK extras) keep working.
fn parse_list_query(uri: &Uri) -> Result<ListQuery, ApiError> {
    const NAMES: [&str; 4] = ["limit", "cursor", "issuer", "q"];
    let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map_err(|_| ApiError::invalid("the query string is not valid URL encoding"))?;
    let mut query = ListQuery::default();
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in &pairs {
        let Some(known) = NAMES.iter().find(|known| **known == name.as_str()) else {
            continue;
        };
        if seen.contains(known) {
            return Err(ApiError::invalid(format!(
                "{known} is given more than once"
            )));
        }
        seen.push(known);
        let text = |field: &str| -> Result<String, ApiError> {
            if value.is_empty() || value.chars().count() > MAX_TEXT_CHARS {
                return Err(ApiError::invalid(format!(
                    "{field} must be 1 to {MAX_TEXT_CHARS} characters"
                )));
            }
            Ok(value.clone())
        };
        match *known {
            "limit" => {
                query.limit = Some(
                    value
                        .parse::<u32>()
                        .ok()
                        .filter(|n| (1..=MAX_PAGE).contains(n))
                        .ok_or_else(|| {
                            ApiError::invalid(format!(
                                "limit must be a whole number from 1 to {MAX_PAGE}"
                            ))
                        })?,
                );
            }
            "cursor" => {
                if value.is_empty() {
                    return Err(ApiError::invalid(
                        "cursor must be the next_cursor of an earlier page",
                    ));
                }
                query.cursor = Some(value.clone());
            }
            "issuer" => query.issuer = Some(text("issuer")?),
            _ => query.q = Some(text("q")?),
        }
    }
    Ok(query)
}

/// Describe one TOTP secret (never its secret value).
#[utoipa::path(get, path = "/api/v2/totp/secrets/{id}", tag = "totp",
    params(("id" = String, Path, description = "Secret id (UUID)")),
    security(("api_key_id" = [], "api_secret_key" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The secret, with the list's fields", body = SecretResponse),
        (status = 401, description = "Missing or invalid API key", body = crate::wire::ErrorBody),
        (status = 403, description = "forbidden: the key's role does not allow this", body = crate::wire::ErrorBody),
        (status = 404, description = "No such secret in this account, or outside the key's scope", body = crate::wire::ErrorBody),
        (status = 429, description = "Too many requests from this key, or too many failed authentications from this address; retry after Retry-After seconds", body = crate::wire::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
        (status = 503, description = "Database unavailable", body = crate::wire::ErrorBody),
    ))]
pub(crate) async fn get_secret(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> Result<Json<SecretResponse>, ApiError> {
    let id = secret_id(&id)?;
    let info = state.vault.secret(&principal, id).await?;
    Ok(Json(SecretResponse::new(TotpSecret::from(&info))))
}

/// Rename a TOTP secret or change its issuer.
#[utoipa::path(patch, path = "/api/v2/totp/secrets/{id}", tag = "totp",
    params(("id" = String, Path, description = "Secret id (UUID)")),
    request_body = UpdateSecretRequest,
    security(("api_key_id" = [], "api_secret_key" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Changed; the secret as it is now", body = SecretResponse),
        (status = 400, description = "Invalid field, no field to change, or a field that cannot change (the key material and the OTP parameters are fixed); the message names it", body = crate::wire::ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = crate::wire::ErrorBody),
        (status = 403, description = "forbidden: the key's role does not allow this", body = crate::wire::ErrorBody),
        (status = 404, description = "No such secret in this account, or outside the key's scope", body = crate::wire::ErrorBody),
        (status = 413, description = "Body too large", body = crate::wire::ErrorBody),
        (status = 415, description = "Body is not JSON", body = crate::wire::ErrorBody),
        (status = 429, description = "Too many requests from this key, or too many failed authentications from this address; retry after Retry-After seconds", body = crate::wire::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
        (status = 503, description = "Database unavailable", body = crate::wire::ErrorBody),
    ))]
pub(crate) async fn update_secret(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Json<SecretResponse>, ApiError> {
    let id = secret_id(&id)?;
    let patch = secret_patch(parse_update_request(&body)?)?;
    let info = state
        .vault
        .update_secret(&principal, id, patch, state.clock.now())
        .await?;
    tracing::info!(secret_id = %id, "secret updated");
    Ok(Json(SecretResponse::new(TotpSecret::from(&info))))
}

/// Fields of a secret fixed at creation: its key material and the OTP
/// parameters its ciphertext is bound to.
const IMMUTABLE_FIELDS: [&str; 7] = [
    "secret",
    "uri",
    "algorithm",
    "digits",
    "period",
    "type",
    "counter",
];

fn parse_update_request(body: &Map<String, Value>) -> Result<UpdateSecretRequest, ApiError> {
    if let Some(field) = IMMUTABLE_FIELDS.iter().find(|f| body.contains_key(**f)) {
        return Err(ApiError::invalid(format!(
            "\"{field}\" cannot be changed: a secret's key material and OTP parameters are \
             fixed when it is created (delete it and enroll it again instead)"
        )));
    }
    let label = match body.get("label") {
        None => None,
        Some(Value::String(label)) => Some(label.clone()),
        Some(Value::Null) => {
            return Err(ApiError::invalid(
                "\"label\" cannot be null: a secret always has a label",
            ));
        }
        Some(_) => return Err(ApiError::invalid("\"label\" must be a string")),
    };
    let issuer = match body.get("issuer") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(issuer)) => Some(Some(issuer.clone())),
        Some(_) => return Err(ApiError::invalid("\"issuer\" must be a string or null")),
    };
    let skew = opt_skew(body)?;
    Ok(UpdateSecretRequest {
        label,
        issuer,
        skew,
    })
}

/// The optional `skew` of a create or update body: 0, 1 or 2.
fn opt_skew(body: &Map<String, Value>) -> Result<Option<u8>, ApiError> {
    opt_u64(body, "skew", SKEW_RULE)?
        .map(|k| {
            u8::try_from(k)
                .ok()
                .filter(|k| Skew::new(*k).is_some())
                .ok_or_else(|| ApiError::invalid(format!("\"skew\" must be {SKEW_RULE}")))
        })
        .transpose()
}

/// Turns the wire request into a validated patch: labels and issuers by
/// the rules of create (an empty issuer, as on create, means none).
fn secret_patch(request: UpdateSecretRequest) -> Result<SecretPatch, ApiError> {
    let patch = SecretPatch {
        label: request.label.as_deref().map(Label::parse).transpose()?,
        issuer: request
            .issuer
            .map(|issuer| optional_issuer(issuer.as_deref()))
            .transpose()?,
        // Checked by `opt_skew`.
        skew: request.skew.and_then(Skew::new),
    };
    if patch.is_empty() {
        return Err(ApiError::invalid(
            "the request changes nothing: give \"label\", \"issuer\" or \"skew\"",
        ));
    }
    Ok(patch)
}

/// Parses and validates an update request body exactly as
/// `PATCH /api/v2/totp/secrets/{id}` does, without HTTP or storage: the
/// entry point of the update-body fuzz target.
pub fn parse_update_secret_body(bytes: &[u8]) -> Result<SecretPatch, ApiError> {
    let body = crate::json::parse_object(bytes)?;
    secret_patch(parse_update_request(&body)?)
}

/// What precedes the first secret of a list; with [`LIST_TAIL`] and the
/// secrets between, the exact bytes `Json(ListSecretsResponse)` would write.
const LIST_HEAD: &[u8] = br#"{"status":"OK","totp_secrets":["#;
const LIST_TAIL: &[u8] = b"]}";

type ListChunk = Result<Bytes, std::io::Error>;

fn json_response(body: Body) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Appends `secrets` as JSON array elements, a comma before each unless it
/// is the array's first.
fn encode_secrets(out: &mut Vec<u8>, secrets: &[SecretInfo], first: bool) -> Result<(), ApiError> {
    for (index, info) in secrets.iter().enumerate() {
        if index > 0 || !first {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, &TotpSecret::from(info))
            .map_err(|e| ApiError::internal(EncodingFailed(e)))?;
    }
    Ok(())
}

/// Reads the pages after `after` and sends each, encoded, to the response
/// body. The channel holds one page, so a slow client slows the reads down
/// instead of piling pages up; a client that goes away ends the loop.
///
/// A failure after the first page cannot change the status any more: it is
/// logged, and the body ends with an error, so the connection is closed
/// without the end of the document (a client sees a truncated body, never
/// a well-formed partial list).
async fn stream_list(
    vault: Arc<Vault>,
    principal: Principal,
    filter: SecretFilter,
    mut after: ListCursor,
    pages: mpsc::Sender<ListChunk>,
) {
    loop {
        let (secrets, next) = match vault
            .list_secrets_matching(&principal, &filter, Some(after), LIST_PAGE)
            .await
        {
            Ok(page) => page,
            Err(error) => {
                tracing::error!(error = %totpd_vault::ErrorChain(&error), "listing secrets failed mid-response; the response is cut off");
                let _ = pages
                    .send(Err(std::io::Error::other("listing secrets failed")))
                    .await;
                return;
            }
        };
        let mut chunk = Vec::new();
        let encoded = encode_secrets(&mut chunk, &secrets, false);
        if let Err(error) = encoded {
            tracing::error!(error = %totpd_vault::ErrorChain(&error), "listing secrets failed mid-response; the response is cut off");
            let _ = pages
                .send(Err(std::io::Error::other("listing secrets failed")))
                .await;
            return;
        }
        if next.is_none() {
            chunk.extend_from_slice(LIST_TAIL);
        }
        if pages.send(Ok(Bytes::from(chunk))).await.is_err() {
            tracing::debug!("the client went away during a list");
            return;
        }
        match next {
            Some(cursor) => after = cursor,
            None => return,
        }
    }
}

/// Delete a TOTP secret for good.
#[utoipa::path(delete, path = "/api/v2/totp/secrets/{id}", tag = "totp",
    params(("id" = String, Path, description = "Secret id (UUID)")),
    security(("api_key_id" = [], "api_secret_key" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Deleted", body = StatusOnly),
        (status = 401, description = "Missing or invalid API key", body = crate::wire::ErrorBody),
        (status = 403, description = "forbidden: the key's role does not allow this", body = crate::wire::ErrorBody),
        (status = 404, description = "No such secret in this account, or outside the key's scope", body = crate::wire::ErrorBody),
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
    state
        .vault
        .delete_secret(&principal, id, state.clock.now())
        .await?;
    tracing::info!(secret_id = %id, "secret deleted");
    Ok(Json(StatusOnly::ok()))
}

/// The current code of a TOTP secret.
#[utoipa::path(get, path = "/api/v2/totp/code/{id}", tag = "totp",
    params(
        ("id" = String, Path, description = "Secret id (UUID)"),
        ("min_remaining" = Option<u64>, Query, minimum = 0, description = "Seconds the code must still be valid for, 0 to the secret's period: when the current code has less left, the answer waits for the next period and returns that code (its expires_in is then at least this). The wait ends if the client goes away"),
    ),
    security(("api_key_id" = [], "api_secret_key" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The current code of a TOTP secret (CodeResponse), or the code of an HOTP secret's stored counter, which this request advances by one (HotpCodeResponse: no two requests get the same counter)", body = CodeAnswer),
        (status = 400, description = "min_remaining is not a whole number from 0 to the secret's period", body = crate::wire::ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = crate::wire::ErrorBody),
        (status = 403, description = "forbidden: the key's role does not allow this", body = crate::wire::ErrorBody),
        (status = 404, description = "No such secret in this account, or outside the key's scope", body = crate::wire::ErrorBody),
        (status = 429, description = "Too many requests from this key, or too many failed authentications from this address; retry after Retry-After seconds", body = crate::wire::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
        (status = 503, description = "Database unavailable", body = crate::wire::ErrorBody),
    ))]
pub(crate) async fn get_code(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    allowance: Option<axum::Extension<Arc<WaitAllowance>>>,
    uri: Uri,
) -> Result<Json<CodeAnswer>, ApiError> {
    let id = secret_id(&id)?;
    let code = match parse_min_remaining(&uri)? {
        None => state.vault.code(&principal, id, state.clock.now()).await?,
        Some(min_remaining) => {
            // The wait is shorter than min_remaining: the request timeout
            // is for work, not for the wait the client asked for.
            if let Some(axum::Extension(allowance)) = &allowance {
                allowance.allow(std::time::Duration::from_secs(min_remaining));
            }
            state
                .vault
                .code_with_min_remaining(&principal, id, min_remaining, state.clock.as_ref())
                .await?
        }
    };
    state.metrics.code_issued();
    Ok(Json(match &code {
        IssuedCode::Totp(code) => CodeAnswer::Totp(CodeResponse::from(code)),
        IssuedCode::Hotp(code) => CodeAnswer::Hotp(HotpCodeResponse::from(code)),
    }))
}

/// Check a code against a secret; a code is accepted at most once.
#[utoipa::path(post, path = "/api/v2/totp/secrets/{id}/verify", tag = "totp",
    params(("id" = String, Path, description = "Secret id (UUID)")),
    request_body = VerifyRequest,
    security(("api_key_id" = [], "api_secret_key" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "valid: whether the code was accepted. TOTP: the current step or `skew` steps either side, later than any step accepted before; HOTP: one of the `hotp_window` (10) counters from the stored one, which then moves past the match", body = VerifyResponse),
        (status = 400, description = "\"code\" missing or not a string", body = crate::wire::ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = crate::wire::ErrorBody),
        (status = 403, description = "forbidden: the key's role does not allow this (verifier, admin and owner keys may verify)", body = crate::wire::ErrorBody),
        (status = 404, description = "No such secret in this account, or outside the key's scope", body = crate::wire::ErrorBody),
        (status = 413, description = "Body too large", body = crate::wire::ErrorBody),
        (status = 415, description = "Body is not JSON", body = crate::wire::ErrorBody),
        (status = 429, description = "rate_limited: 10 failed verifications of this secret within 5 minutes (on any node), until the window passes; or too many requests from this key, or too many failed authentications from this address. Retry after Retry-After seconds", body = crate::wire::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
        (status = 503, description = "Database unavailable", body = crate::wire::ErrorBody),
    ))]
pub(crate) async fn verify_code(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Json<VerifyResponse>, ApiError> {
    let id = secret_id(&id)?;
    let request = parse_verify_request(&body)?;
    let verified = state
        .vault
        .verify(&principal, id, &request.code, state.clock.now())
        .await?;
    Ok(Json(VerifyResponse::new(verified == Verification::Valid)))
}

/// Parses a verify request body exactly as
/// `POST /api/v2/totp/secrets/{id}/verify` does: the entry point of the
/// verify-body fuzz target.
pub fn parse_verify_body(bytes: &[u8]) -> Result<VerifyRequest, ApiError> {
    parse_verify_request(&crate::json::parse_object(bytes)?)
}

fn parse_verify_request(body: &Map<String, Value>) -> Result<VerifyRequest, ApiError> {
    match body.get("code") {
        Some(Value::String(code)) => Ok(VerifyRequest { code: code.clone() }),
        None | Some(Value::Null) => Err(ApiError::invalid("\"code\" is required")),
        Some(_) => Err(ApiError::invalid("\"code\" must be a string")),
    }
}

/// The most `min_remaining` can be whatever the period: the longest period.
const MAX_MIN_REMAINING: u64 = 86_400;

/// `min_remaining` from the code's query, if given (other parameters are
/// ignored). Whether it fits the secret's period is the vault's check.
fn parse_min_remaining(uri: &Uri) -> Result<Option<u64>, ApiError> {
    let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map_err(|_| ApiError::invalid("the query string is not valid URL encoding"))?;
    let mut found = None;
    for (name, value) in &pairs {
        if name != "min_remaining" {
            continue;
        }
        if found.is_some() {
            return Err(ApiError::invalid("min_remaining is given more than once"));
        }
        let seconds = value
            .parse::<u64>()
            .ok()
            .filter(|n| *n <= MAX_MIN_REMAINING)
            .ok_or_else(|| {
                ApiError::invalid(
                    "min_remaining must be a whole number of seconds from 0 to the secret's period",
                )
            })?;
        found = Some(seconds);
    }
    Ok(found)
}

/// Parses and validates a create request body exactly as
/// `POST /api/v2/totp/secrets` does, without HTTP or storage: the entry
/// point of the request-body fuzz target.
pub fn parse_create_secret_body(bytes: &[u8]) -> Result<NewSecret, ApiError> {
    let body = crate::json::parse_object(bytes)?;
    parse_create(&body).map(|(new, _)| new)
}

/// A create body as the new secret and, for a generated one, what its
/// answer adds. `qr` is `svg` or `png`, and only for a generated secret:
/// with `secret` or `uri` the caller already holds the URI's contents, so
/// asking is a 400 rather than silently ignored.
pub(crate) fn parse_create(
    body: &Map<String, Value>,
) -> Result<(NewSecret, Option<Enrollment>), ApiError> {
    let request = parse_create_request(body)?;
    let qr = match request.qr.as_deref() {
        None => None,
        Some(text) => Some(
            QrFormat::parse(text).ok_or_else(|| ApiError::invalid("\"qr\" must be svg or png"))?,
        ),
    };
    if qr.is_some() && (request.secret.is_some() || request.uri.is_some()) {
        return Err(ApiError::invalid(
            "\"qr\" is only for a generated secret (omit \"secret\" and \"uri\")",
        ));
    }
    let new = new_secret(request)?;
    if !matches!(new.source, SecretSource::Generate) {
        return Ok((new, None));
    }
    let stand_in = Secret::from_bytes(vec![0; GENERATED_SECRET_LEN]).map_err(ApiError::internal)?;
    let params = OtpParams {
        kind: match new.kind {
            SecretKind::Totp { .. } => OtpKind::Totp { period: new.period },
            SecretKind::Hotp { counter } => OtpKind::Hotp { counter },
        },
        secret: stand_in,
        algorithm: new.algorithm,
        digits: new.digits,
        issuer: new.issuer.as_ref().map(|i| i.as_str().to_owned()),
        account: new.label.as_str().to_owned(),
    };
    // The URI's length does not depend on the secret's bytes, so the
    // stand-in tells whether the real one will fit, before anything is
    // stored. Labels and issuers of non-ASCII text near their limits can
    // make a URI longer than a QR code holds.
    if qr.is_some() && !qr::fits(&params.to_uri()) {
        return Err(ApiError::invalid(
            "\"label\" and \"issuer\" are too long for a QR code; create without \"qr\" and use the returned \"uri\"",
        ));
    }
    Ok((new, Some(Enrollment { params, qr })))
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
    let skew = opt_skew(body)?;
    let counter = opt_u64(body, "counter", COUNTER_RULE)?;
    if counter.is_some_and(|c| c > MAX_HOTP_COUNTER) {
        return Err(ApiError::invalid(format!(
            "\"counter\" must be {COUNTER_RULE}"
        )));
    }
    Ok(CreateSecretRequest {
        otp_type: opt_string(body, "type")?,
        counter,
        skew,
        uri: opt_string(body, "uri")?,
        label: opt_string(body, "label")?,
        secret: opt_string(body, "secret")?,
        issuer: opt_string(body, "issuer")?,
        algorithm: opt_string(body, "algorithm")?,
        digits,
        period,
        qr: opt_string(body, "qr")?,
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
        .map_err(ApiError::from)
}

/// Turns the wire request into a validated domain request.
///
/// `type` is `totp` (the default) or `hotp`. An HOTP secret takes an
/// optional `counter` and refuses `period` and `skew` (which mean nothing
/// to it) with a 400 naming the field; a TOTP secret refuses `counter`. A
/// `uri` decides the type itself (`otpauth://hotp/` requires `counter`,
/// as the Key Uri Format does); a `type` that disagrees with it is a 400.
fn new_secret(request: CreateSecretRequest) -> Result<NewSecret, ApiError> {
    let hotp = match request.otp_type.as_deref() {
        None | Some("totp") => false,
        Some("hotp") => true,
        Some(_) => return Err(ApiError::invalid("\"type\" must be totp or hotp")),
    };
    if hotp && request.period.is_some() {
        return Err(ApiError::invalid(
            "\"period\" does not apply to an HOTP secret (its codes follow a counter)",
        ));
    }
    if hotp && request.skew.is_some() {
        return Err(ApiError::invalid(
            "\"skew\" does not apply to an HOTP secret (it is verified by look-ahead)",
        ));
    }
    if !hotp && request.counter.is_some() && request.uri.is_none() {
        return Err(ApiError::invalid(
            "\"counter\" applies only to an HOTP secret (\"type\":\"hotp\")",
        ));
    }
    let skew = match request.skew {
        None => Skew::default(),
        Some(k) => Skew::new(k)
            .ok_or_else(|| ApiError::invalid(format!("\"skew\" must be {SKEW_RULE}")))?,
    };
    if let Some(uri) = request.uri {
        let new = new_secret_from_uri(
            &uri,
            request.label.as_deref(),
            request.issuer.as_deref(),
            skew,
        )?;
        let uri_is_hotp = matches!(new.kind, SecretKind::Hotp { .. });
        if request.otp_type.is_some() && uri_is_hotp != hotp {
            return Err(ApiError::invalid(
                "\"type\" does not match the \"uri\" (otpauth://totp/ or otpauth://hotp/)",
            ));
        }
        if request.counter.is_some() {
            return Err(ApiError::invalid(
                "\"counter\" must not be given with a \"uri\" (the URI holds the counter)",
            ));
        }
        return Ok(new);
    }
    let kind = if hotp {
        SecretKind::Hotp {
            counter: request.counter.unwrap_or(0),
        }
    } else {
        SecretKind::Totp { skew }
    };
    let label = request
        .label
        .ok_or_else(|| ApiError::invalid("\"label\" is required when no \"uri\" is given"))?;
    let label = Label::parse(&label)?;
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
        kind,
    })
}

fn new_secret_from_uri(
    uri: &str,
    fallback_label: Option<&str>,
    fallback_issuer: Option<&str>,
    skew: Skew,
) -> Result<NewSecret, ApiError> {
    let params = parse_otpauth_uri(uri)
        .map_err(|e| ApiError::invalid(format!("\"uri\" is invalid: {e}")))?;
    let (period, kind) = match params.kind {
        OtpKind::Totp { period } => (period, SecretKind::Totp { skew }),
        OtpKind::Hotp { counter } if counter > MAX_HOTP_COUNTER => {
            return Err(ApiError::invalid(format!(
                "\"uri\" is invalid: counter must be {COUNTER_RULE}"
            )));
        }
        // An HOTP URI's period, if any, means nothing and is not stored.
        OtpKind::Hotp { counter } => (Period::default(), SecretKind::Hotp { counter }),
    };
    let label = if params.account.trim().is_empty() {
        let label = fallback_label.ok_or_else(|| {
            ApiError::invalid("\"label\" is required because the \"uri\" has no account name")
        })?;
        Label::parse(label)
    } else {
        Label::parse(&params.account)
    }?;
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
        kind,
    })
}

/// A listed secret that could not be written as JSON (a 500).
#[derive(Debug, thiserror::Error)]
#[error("encoding a listed secret failed")]
struct EncodingFailed(#[source] serde_json::Error);

#[cfg(test)]
mod tests {
    use totpd_vault::UnixTime;

    use super::*;

    fn info(n: u8) -> SecretInfo {
        SecretInfo {
            id: Uuid::from_bytes([n; 16]),
            label: format!("user{n}@example.com \"quoted\" \u{e9}"),
            issuer: n.is_multiple_of(2).then(|| format!("Issuer {n}")),
            algorithm: Algorithm::Sha256,
            digits: Digits::new(8).unwrap(),
            period: Period::new(60).unwrap(),
            created_at: UnixTime(1_700_000_000_000 + i64::from(n)),
            kind: if n.is_multiple_of(3) {
                SecretKind::Hotp {
                    counter: u64::from(n),
                }
            } else {
                SecretKind::default()
            },
        }
    }

    /// The Sendblue SDKs parse this document: streaming it page by page
    /// must not change a byte of what the whole document used to be.
    #[test]
    fn a_list_encoded_page_by_page_is_byte_for_byte_the_whole_document() {
        for count in [0u8, 1, 2, 7] {
            let secrets: Vec<SecretInfo> = (0..count).map(info).collect();
            let whole = serde_json::to_vec(&ListSecretsResponse::new(
                secrets.iter().map(TotpSecret::from).collect(),
            ))
            .unwrap();
            // The first page is never empty when more pages follow.
            for split in 1.min(secrets.len())..=secrets.len() {
                let (first, rest) = secrets.split_at(split);
                let mut streamed = LIST_HEAD.to_vec();
                encode_secrets(&mut streamed, first, true).unwrap();
                for page in rest.chunks(2) {
                    encode_secrets(&mut streamed, page, false).unwrap();
                }
                streamed.extend_from_slice(LIST_TAIL);
                assert_eq!(
                    String::from_utf8(streamed).unwrap(),
                    String::from_utf8(whole.clone()).unwrap(),
                    "{count} secrets, first page of {split}"
                );
            }
        }
    }
}
