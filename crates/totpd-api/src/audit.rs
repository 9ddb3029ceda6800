//! `GET /api/v2/audit`: the caller's account's audit log, newest first.

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::Uri;
use axum::routing::get;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use totpd_vault::{AuditPage, AuditQuery};
use uuid::Uuid;

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::wire::{AuditEvent, AuditListResponse};

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/api/v2/audit", get(list_audit))
}

/// Events per page unless `limit` says otherwise.
const DEFAULT_LIMIT: u32 = 100;
/// Most events per page.
const MAX_LIMIT: u32 = 1000;
/// Longest key id a filter may name (longer ones name no key).
const MAX_KEY_ID: usize = 128;

/// Every action the audit log records, the values `action` accepts.
pub(crate) const AUDITED_ACTIONS: [&str; 9] = [
    "secret.create",
    "secret.import",
    "secret.update",
    "secret.delete",
    "code.read",
    "code.verify",
    "key.create",
    "key.revoke",
    "auth.failure",
];

/// Read the account's audit log (owner and admin keys).
#[utoipa::path(get, path = "/api/v2/audit", tag = "audit",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Most events returned (default 100)"),
        ("cursor" = Option<String>, Query, description = "The next_cursor of the previous page"),
        ("action" = Option<String>, Query, description = "Only this action: secret.create, secret.import, secret.update, secret.delete, code.read, code.verify, key.create, key.revoke or auth.failure"),
        ("secret_id" = Option<String>, Query, format = Uuid, description = "Only events on this secret"),
        ("key_id" = Option<String>, Query, description = "Only events of this API key"),
        ("since" = Option<String>, Query, format = DateTime, description = "Only events at or after this time (RFC 3339)"),
        ("until" = Option<String>, Query, format = DateTime, description = "Only events before this time (RFC 3339)"),
    ),
    security(("api_key_id" = [], "api_secret_key" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "A page of events, newest first", body = AuditListResponse),
        (status = 400, description = "Invalid parameter; the message names it", body = crate::wire::ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = crate::wire::ErrorBody),
        (status = 403, description = "forbidden: the key's role may not read the audit log", body = crate::wire::ErrorBody),
        (status = 429, description = "Too many requests from this key, or too many failed authentications from this address; retry after Retry-After seconds", body = crate::wire::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
        (status = 503, description = "Database unavailable", body = crate::wire::ErrorBody),
    ))]
pub(crate) async fn list_audit(
    State(state): State<AppState>,
    Auth(principal): Auth,
    uri: Uri,
) -> Result<Json<AuditListResponse>, ApiError> {
    let (mut query, limit) = parse_query(&uri)?;
    // One more than asked, to know whether another page follows.
    query.limit = limit + 1;
    let mut rows = state.vault.list_audit(&principal, &query).await?;
    let more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_cursor = if more {
        rows.last().map(|row| row.id.to_string())
    } else {
        None
    };
    let events = rows.into_iter().map(AuditEvent::from).collect();
    Ok(Json(AuditListResponse::new(events, next_cursor)))
}

/// The query's filters and page size; every bad parameter is a 400 that
/// names it (and never repeats its value).
fn parse_query(uri: &Uri) -> Result<(AuditQuery, u32), ApiError> {
    let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map_err(|_| ApiError::invalid("the query string is not valid URL encoding"))?;
    let mut seen: Vec<&str> = Vec::new();
    let mut query = AuditQuery::default();
    let mut limit = DEFAULT_LIMIT;
    for (name, value) in &pairs {
        if seen.contains(&name.as_str()) {
            return Err(ApiError::invalid(format!(
                "{} is given more than once",
                known_name(name)
            )));
        }
        match name.as_str() {
            "limit" => {
                limit = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::invalid(format!(
                            "limit must be a whole number from 1 to {MAX_LIMIT}"
                        ))
                    })?;
            }
            "cursor" => {
                let id = value
                    .parse::<i64>()
                    .ok()
                    .filter(|id| *id > 0)
                    .ok_or_else(|| {
                        ApiError::invalid("cursor must be the next_cursor of an earlier page")
                    })?;
                query.page = AuditPage::Before(id);
            }
            "action" => {
                if !AUDITED_ACTIONS.contains(&value.as_str()) {
                    return Err(ApiError::invalid(format!(
                        "action must be one of {}",
                        AUDITED_ACTIONS.join(", ")
                    )));
                }
                query.action = Some(value.clone());
            }
            "secret_id" => {
                let id = Uuid::parse_str(value)
                    .map_err(|_| ApiError::invalid("secret_id must be a UUID"))?;
                query.secret_id = Some(id);
            }
            "key_id" => {
                if value.is_empty() || value.len() > MAX_KEY_ID {
                    return Err(ApiError::invalid(format!(
                        "key_id must be 1 to {MAX_KEY_ID} characters"
                    )));
                }
                query.key_id = Some(value.clone());
            }
            "since" => query.since = Some(timestamp("since", value)?),
            "until" => query.until = Some(timestamp("until", value)?),
            // Unknown parameters are ignored, as elsewhere in the API.
            _ => continue,
        }
        seen.push(name);
    }
    Ok((query, limit))
}

/// The parameter's name if it is one of ours (for messages: never echo
/// client text that is not).
fn known_name(name: &str) -> &str {
    match name {
        "limit" | "cursor" | "action" | "secret_id" | "key_id" | "since" | "until" => name,
        _ => "a parameter",
    }
}

/// An RFC 3339 time as Unix milliseconds.
fn timestamp(field: &str, value: &str) -> Result<i64, ApiError> {
    OffsetDateTime::parse(value, &Rfc3339)
        .ok()
        .and_then(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok())
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "{field} must be an RFC 3339 time, e.g. 2026-01-01T00:00:00Z"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> Result<(AuditQuery, u32), String> {
        let uri: Uri = format!("/api/v2/audit?{query}").parse().unwrap();
        parse_query(&uri).map_err(|e| e.to_string())
    }

    #[test]
    fn filters_and_cursor_are_read() {
        let id = Uuid::from_u128(5);
        let (query, limit) = parse(&format!(
            "limit=7&cursor=42&action=code.read&secret_id={id}&key_id=tk_1&since=2026-01-01T00:00:00Z&until=2026-01-01T00:00:01.5%2B00:00"
        ))
        .unwrap();
        assert_eq!(limit, 7);
        assert_eq!(query.page, AuditPage::Before(42));
        assert_eq!(query.action.as_deref(), Some("code.read"));
        assert_eq!(query.secret_id, Some(id));
        assert_eq!(query.key_id.as_deref(), Some("tk_1"));
        assert_eq!(query.since, Some(1_767_225_600_000));
        assert_eq!(query.until, Some(1_767_225_601_500));
        assert_eq!(parse("").unwrap().1, DEFAULT_LIMIT);
    }

    #[test]
    fn bad_parameters_are_named_and_never_echoed() {
        for (query, field) in [
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("limit=x", "limit"),
            ("cursor=-1", "cursor"),
            ("cursor=abc", "cursor"),
            ("action=code.steal", "action"),
            ("secret_id=nope", "secret_id"),
            ("key_id=", "key_id"),
            ("since=yesterday", "since"),
            ("until=2026-13-01T00:00:00Z", "until"),
            ("limit=1&limit=2", "limit"),
        ] {
            let message = parse(query).unwrap_err();
            assert!(message.starts_with(field), "{query}: {message}");
            for echoed in ["steal", "nope", "yesterday", "abc"] {
                assert!(!message.contains(echoed), "{query}: {message}");
            }
        }
    }
}
