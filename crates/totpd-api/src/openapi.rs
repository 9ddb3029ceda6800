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
        crate::secrets::delete_secret,
        crate::secrets::get_code,
        crate::health::get_healthz,
        crate::health::get_readyz,
    ),
    modifiers(&SecuritySchemes),
    tags((name = "totp", description = "TOTP secrets and codes"), (name = "health", description = "Liveness and readiness"))
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
        ApiDoc::openapi()
            .to_pretty_json()
            .unwrap_or_else(|_| "{}".to_owned())
    })
}

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(get_openapi))
}

async fn get_openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], openapi_json())
}
