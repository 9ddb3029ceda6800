//! The web console: `GET /` and its few static assets, compiled into the
//! binary so the console needs no files beside it and fetches nothing from
//! elsewhere.
//!
//! The console is a client of the JSON API like any other: its script holds
//! the API key in memory and sends it in headers on each `fetch`. These
//! routes therefore need no credentials and serve no data, only the same
//! bytes to everyone. Every answer carries a strict Content-Security-Policy
//! (scripts, styles and connections from this origin only, no inline code,
//! no framing, no form submission), so a string the API returns (a label,
//! an issuer) cannot become script even if the console mishandled it.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;
use crate::error::ApiError;

/// The policy of every console answer: scripts, styles, images and API
/// calls from this origin only, no inline script or style, no plugins, no
/// framing, no `<base>`, no form submission (the forms are handled by the
/// script; a form that submitted anyway could put a key in a URL).
/// `img-src data:` is kept for the browser's own use (e.g. a data: icon);
/// the console itself makes no image URL: the enrollment QR code is inserted
/// as SVG elements.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// One asset: its path under `/console/`, media type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const INDEX_HTML: &[u8] = include_bytes!("../console/index.html");

/// Every asset the page loads. The page itself is served at `/` only.
const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../console/app.js"),
    },
    Asset {
        name: "api.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../console/api.js"),
    },
    Asset {
        name: "ui.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../console/ui.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../console/style.css"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../console/icon.svg"),
    },
];

/// The paths of the console's assets, for tests that scan them.
pub fn console_asset_paths() -> Vec<String> {
    ASSETS
        .iter()
        .map(|asset| format!("/console/{}", asset.name))
        .collect()
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(get_index))
        .route("/console/{file}", get(get_asset))
}

/// The console's page.
async fn get_index() -> Response {
    // The page is tiny and must follow the binary's version at once: never
    // stored, so an upgraded server never runs with an older page.
    with_headers(INDEX_HTML, "text/html; charset=utf-8", "no-store")
}

/// One of the page's scripts, its style sheet or its icon.
async fn get_asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|asset| asset.name == file) {
        // Revalidated on each load (no ETag: the bytes are refetched), so a
        // page from a new binary never runs an old script from the cache.
        Some(asset) => with_headers(asset.body, asset.content_type, "no-cache"),
        None => {
            let mut response = ApiError::NotFound("no such route").into_response();
            add_security_headers(&mut response);
            response
        }
    }
}

fn with_headers(
    body: &'static [u8],
    content_type: &'static str,
    cache_control: &'static str,
) -> Response {
    let mut response = (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static(cache_control),
            ),
        ],
        body,
    )
        .into_response();
    add_security_headers(&mut response);
    response
}

fn add_security_headers(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The page talks to nothing cross-origin and opens no window: isolate it
    // from other origins' windows too.
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
}
