//! `POST /api/v2/totp/secrets/import`: enrollment from a file (DESIGN §2.5).
//!
//! Two body forms: JSON (`format`, `data`, `encoding`, `password`,
//! `dry_run`, `atomic`), or the raw file with `?format=&dry_run=&atomic=`
//! in the query. An encrypted export needs the JSON form: a password never
//! travels in a URL. The file is read by `totpd-import` on the blocking
//! pool, a few imports at a time per node (key derivations and image
//! decoding are CPU- and memory-hungry by design), bounded by its
//! [`totpd_import::Limits`]; the vault then stores the entries.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};
use tokio::sync::Semaphore;
use totpd_import::{Entry, Format, ImportError, Password};
use totpd_vault::{ImportEntry, ImportOptions, ImportReport};

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::json::{opt_string, parse_object};
use crate::wire::{ImportRequest, ImportResponse};

/// Largest import body (DESIGN §2.5): a screenshot or an export of
/// thousands of entries, base64-encoded in JSON.
pub const MAX_IMPORT_BODY_BYTES: usize = 10 * 1024 * 1024;

/// Files read at once on one node. Each may hold a memory-hard key
/// derivation (up to `Limits::max_kdf_memory_kib`) or a decoded image; more
/// imports wait their turn instead of multiplying that memory.
pub const IMPORT_READERS: usize = 2;

/// The permits of [`IMPORT_READERS`], shared by every clone of the state.
#[derive(Debug)]
pub(crate) struct ImportReaders(Arc<Semaphore>);

impl Default for ImportReaders {
    fn default() -> ImportReaders {
        ImportReaders(Arc::new(Semaphore::new(IMPORT_READERS)))
    }
}

pub(crate) fn router() -> Router<AppState> {
    Router::new().route(
        "/api/v2/totp/secrets/import",
        post(import_secrets).layer(DefaultBodyLimit::max(MAX_IMPORT_BODY_BYTES)),
    )
}

/// Import secrets from a file: a QR screenshot, a URI list or an
/// authenticator export.
#[utoipa::path(post, path = "/api/v2/totp/secrets/import", tag = "totp",
    request_body(content(
        (ImportRequest = "application/json"),
        (Vec<u8> = "image/png"),
        (Vec<u8> = "image/jpeg"),
        (Vec<u8> = "image/webp"),
        (String = "text/plain"),
        (Vec<u8> = "application/octet-stream"),
    ), description = "The JSON form, or the file itself with format, dry_run and atomic in the query. An encrypted export needs the JSON form (its password)."),
    params(
        ("format" = Option<String>, Query, description = "Raw body only: auto (default), qr, otpauth, google, aegis, 2fas, andotp, bitwarden, 1pux, ente or proton"),
        ("dry_run" = Option<bool>, Query, description = "Raw body only: store nothing, answer what would be stored"),
        ("atomic" = Option<bool>, Query, description = "Raw body only: store every entry or none"),
    ),
    security(("api_key_id" = [], "api_secret_key" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Every entry's outcome: created (stored), duplicate (the account holds these key bytes already), or invalid (with a message); created entries are durable", body = ImportResponse),
        (status = 400, description = "The file cannot be read (unknown format, wrong or missing password, no QR code, damaged), or a field is invalid; nothing stored. An atomic import with an invalid entry answers 400 with the results", body = crate::wire::ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = crate::wire::ErrorBody),
        (status = 403, description = "forbidden: the key's role may not import, or the key is scoped to listed secrets; quota_exceeded: the entries would take the account past its quota; nothing was stored", body = crate::wire::ErrorBody),
        (status = 413, description = "Body over 10 MiB", body = crate::wire::ErrorBody),
        (status = 415, description = "Body of a type the import does not take", body = crate::wire::ErrorBody),
        (status = 429, description = "Too many requests from this key, or too many failed authentications from this address; retry after Retry-After seconds", body = crate::wire::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
        (status = 503, description = "Database unavailable", body = crate::wire::ErrorBody),
    ))]
pub(crate) async fn import_secrets(
    State(state): State<AppState>,
    Auth(principal): Auth,
    request: Request,
) -> Result<Response, ApiError> {
    let import = read_request(request).await?;
    let entries = read_file(&state, import.format, import.data, import.password).await?;
    let entries = entries
        .into_iter()
        .map(|entry| match entry {
            Entry::Otp(params) => ImportEntry::from_params(params),
            Entry::Invalid(invalid) => ImportEntry::Invalid {
                label: invalid.label,
                issuer: invalid.issuer,
                reason: invalid.reason,
            },
        })
        .collect();
    let report = state
        .vault
        .import_secrets(&principal, entries, import.options, state.clock.now())
        .await?;
    Ok(answer(&report))
}

/// The answer: 200 with every result, or for an atomic import that stored
/// nothing, 400 with the same results and the first invalid entry named.
fn answer(report: &ImportReport) -> Response {
    let mut body = ImportResponse::new(report);
    tracing::info!(
        dry_run = body.dry_run,
        created = body.created,
        duplicates = body.duplicates,
        invalid = body.invalid,
        stored = report.stored,
        "import"
    );
    if report.stored {
        return Json(body).into_response();
    }
    let (index, reason) = report
        .first_invalid()
        .map(|(index, result)| (index, result.message.clone().unwrap_or_default()))
        .unwrap_or_default();
    body.status = "ERROR";
    body.error = Some("invalid_request");
    body.message = Some(format!(
        "entry {index} is invalid ({reason}); an atomic import stores nothing"
    ));
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

/// An import request, whichever its form.
struct Import {
    format: Format,
    data: Vec<u8>,
    password: Option<Password>,
    options: ImportOptions,
}

/// The media types of the raw form, and the format each implies when the
/// query names none.
fn raw_type(mime: &str) -> Option<Format> {
    match mime {
        "image/png" | "image/jpeg" | "image/webp" => Some(Format::Qr),
        "text/plain" | "application/octet-stream" => Some(Format::Auto),
        _ => None,
    }
}

async fn read_request(request: Request) -> Result<Import, ApiError> {
    let mime = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    let uri = request.uri().clone();
    // `None`: the JSON form; else the raw file and the format its type implies.
    let raw = match mime.as_deref() {
        None | Some("application/json") => None,
        Some(mime) if mime.ends_with("+json") => None,
        Some(mime) => Some(raw_type(mime).ok_or(ApiError::UnsupportedImportType)?),
    };
    let bytes = Bytes::from_request(request, &())
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::invalid("the request body could not be read")
            }
        })?;
    match raw {
        None => read_json(parse_object(&bytes)?),
        Some(implied) => read_raw(&uri, implied, bytes.to_vec()),
    }
}

/// Fields of the JSON form.
const JSON_FIELDS: [&str; 6] = [
    "format", "data", "encoding", "password", "dry_run", "atomic",
];

fn read_json(mut body: Map<String, Value>) -> Result<Import, ApiError> {
    // A misspelt option (`dryrun`) must not turn a dry run into an import.
    if let Some(unknown) = body.keys().find(|k| !JSON_FIELDS.contains(&k.as_str())) {
        return Err(ApiError::invalid(format!(
            "unknown field {} (an import takes {})",
            shown_name(unknown),
            JSON_FIELDS.join(", ")
        )));
    }
    let format = match opt_string(&body, "format")? {
        None => Format::Auto,
        Some(name) => parse_format(&name, "\"format\"")?,
    };
    let options = ImportOptions {
        dry_run: opt_bool(&body, "dry_run")?,
        atomic: opt_bool(&body, "atomic")?,
    };
    let base64 = match opt_string(&body, "encoding")?.as_deref() {
        None | Some("text") => false,
        Some("base64") => true,
        Some(_) => return Err(ApiError::invalid("\"encoding\" must be text or base64")),
    };
    let password = match body.remove("password") {
        None | Some(Value::Null) => None,
        Some(Value::String(password)) => Some(Password::new(password)),
        Some(_) => return Err(ApiError::invalid("\"password\" must be a string")),
    };
    let data = match body.remove("data") {
        Some(Value::String(data)) => data,
        None | Some(Value::Null) => return Err(ApiError::invalid("\"data\" is required")),
        Some(_) => return Err(ApiError::invalid("\"data\" must be a string")),
    };
    let data = if base64 {
        // Line breaks are common in pasted base64.
        let compact: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        STANDARD
            .decode(compact.as_bytes())
            .map_err(|_| ApiError::invalid("\"data\" is not valid base64"))?
    } else {
        data.into_bytes()
    };
    Ok(Import {
        format,
        data,
        password,
        options,
    })
}

fn read_raw(uri: &Uri, implied: Format, data: Vec<u8>) -> Result<Import, ApiError> {
    let pairs: Vec<(String, String)> =
        axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map(|q| q.0)
            .map_err(|_| ApiError::invalid("the query string is not valid"))?;
    let mut format = implied;
    let mut options = ImportOptions::default();
    for (name, value) in &pairs {
        match name.as_str() {
            "format" => format = parse_format(value, "format")?,
            "dry_run" => options.dry_run = query_bool(value, "dry_run")?,
            "atomic" => options.atomic = query_bool(value, "atomic")?,
            "password" => {
                return Err(ApiError::invalid(
                    "a password never goes in a URL: send an encrypted export in the JSON form",
                ));
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "unknown parameter {} (an import takes format, dry_run and atomic)",
                    shown_name(other)
                )));
            }
        }
    }
    Ok(Import {
        format,
        data,
        password: None,
        options,
    })
}

fn parse_format(name: &str, field: &str) -> Result<Format, ApiError> {
    Format::from_name(&name.to_ascii_lowercase())
        .ok_or_else(|| ApiError::invalid(format!("{field} must be one of {}", Format::names())))
}

fn opt_bool(body: &Map<String, Value>, field: &str) -> Result<bool, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::invalid(format!(
            "\"{field}\" must be true or false"
        ))),
    }
}

fn query_bool(value: &str, field: &str) -> Result<bool, ApiError> {
    match value {
        "true" | "1" | "" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ApiError::invalid(format!("{field} must be true or false"))),
    }
}

/// Reads the file on the blocking pool, holding one of the node's
/// [`IMPORT_READERS`] permits. A file that cannot be read is a 400 with the
/// reader's message (which never holds secret material).
pub(crate) async fn read_file(
    state: &AppState,
    format: Format,
    data: Vec<u8>,
    password: Option<Password>,
) -> Result<Vec<Entry>, ApiError> {
    let permit = Arc::clone(&state.import_readers.0)
        .acquire_owned()
        .await
        .map_err(|_| ApiError::Unavailable("the server is shutting down"))?;
    let limits = totpd_import::Limits::default();
    let read = tokio::task::spawn_blocking(move || {
        let entries = totpd_import::read(format, &data, password.as_ref(), &limits);
        drop(permit);
        entries
    })
    .await
    .map_err(ApiError::internal)?;
    read.map_err(|error: ImportError| ApiError::invalid(error.to_string()))
}

/// A field or parameter name as an error may repeat it: quoted when it
/// looks like a name, else not at all (it could be pasted secret material).
fn shown_name(name: &str) -> String {
    let plain = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain {
        format!("\"{name}\"")
    } else {
        "(name not shown)".to_owned()
    }
}
