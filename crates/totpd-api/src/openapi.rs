//! `/openapi.json`: the OpenAPI 3.1 document, generated from the handlers'
//! annotations and the wire types.

use std::sync::OnceLock;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "totpd", description = "A self-hosted TOTP vault for AI agents and automation, compatible with Sendblue's TOTP API."),
    paths(
        crate::secrets::create_secret,
        crate::secrets::list_secrets,
        crate::secrets::get_secret,
        crate::secrets::update_secret,
        crate::secrets::delete_secret,
        crate::secrets::get_code,
        crate::secrets::verify_code,
        crate::import::import_secrets,
        crate::audit::list_audit,
        crate::keys::create_key,
        crate::keys::list_keys,
        crate::keys::revoke_key,
        crate::health::get_healthz,
        crate::health::get_readyz,
    ),
    modifiers(&SecuritySchemes),
    tags((name = "totp", description = "TOTP secrets and codes"), (name = "keys", description = "API keys: roles, scopes and expiry (owner keys only)"), (name = "audit", description = "The audit log"), (name = "health", description = "Liveness and readiness"))
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key_id",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new(crate::auth::KEY_ID_HEADER))),
        );
        components.add_security_scheme(
            "api_secret_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new(crate::auth::SECRET_HEADER))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("<key_id>.<secret>")
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document as JSON text.
pub fn openapi_json() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let Ok(mut document) = serde_json::to_value(ApiDoc::openapi()) else {
            return "{}".to_owned();
        };
        camel_case_link_fields(&mut document);
        serde_json::to_string_pretty(&document).unwrap_or_else(|_| "{}".to_owned())
    })
}

/// utoipa 5 writes a response link's fields in snake case (`operation_id`);
/// OpenAPI spells them `operationId`, `operationRef` and `requestBody`, and
/// tools reject or ignore a link without them. Renamed here until utoipa
/// does it itself.
fn camel_case_link_fields(document: &mut serde_json::Value) {
    const RENAMES: [(&str, &str); 3] = [
        ("operation_id", "operationId"),
        ("operation_ref", "operationRef"),
        ("request_body", "requestBody"),
    ];
    let Some(paths) = document
        .get_mut("paths")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return;
    };
    let links = paths
        .values_mut()
        .filter_map(serde_json::Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .filter_map(|operation| operation.get_mut("responses"))
        .filter_map(serde_json::Value::as_object_mut)
        .flat_map(|responses| responses.values_mut())
        .filter_map(|response| response.get_mut("links"))
        .filter_map(serde_json::Value::as_object_mut)
        .flat_map(|links| links.values_mut())
        .filter_map(serde_json::Value::as_object_mut);
    for link in links {
        for (snake, camel) in RENAMES {
            if let Some(value) = link.remove(snake) {
                link.insert(camel.to_owned(), value);
            }
        }
    }
}

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(get_openapi))
}

async fn get_openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], openapi_json())
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    #[test]
    fn create_links_name_existing_operations_in_camel_case() {
        let document: Value = serde_json::from_str(super::openapi_json()).unwrap();
        let operation_ids: Vec<&str> = document["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .filter_map(|operation| operation["operationId"].as_str())
            .collect();
        let links = document["paths"]["/api/v2/totp/secrets"]["post"]["responses"]["200"]["links"]
            .as_object()
            .unwrap();
        assert_eq!(links.len(), 3);
        for (name, link) in links {
            assert!(link.get("operation_id").is_none(), "{name}: {link}");
            let target = link["operationId"].as_str().unwrap_or_default();
            assert!(operation_ids.contains(&target), "{name} -> {target:?}");
            assert_eq!(
                link["parameters"]["id"], "$response.body#/totp_secret/id",
                "{name}"
            );
        }
    }

    #[test]
    fn every_api_operation_documents_rate_limiting() {
        let document: Value = serde_json::from_str(super::openapi_json()).unwrap();
        for (path, item) in document["paths"].as_object().unwrap() {
            if !path.starts_with("/api/") {
                continue;
            }
            for (method, operation) in item.as_object().unwrap() {
                let too_many = &operation["responses"]["429"];
                assert!(too_many.is_object(), "{method} {path}: no 429");
                assert!(
                    too_many["headers"]["Retry-After"].is_object(),
                    "{method} {path}: 429 without Retry-After"
                );
            }
        }
    }

    #[test]
    fn request_digits_are_six_or_eight_not_a_range() {
        let document: Value = serde_json::from_str(super::openapi_json()).unwrap();
        let digits =
            &document["components"]["schemas"]["CreateSecretRequest"]["properties"]["digits"];
        assert_eq!(digits["enum"], serde_json::json!([6, 8, null]), "{digits}");
    }
}
