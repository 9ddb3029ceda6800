//! The web console at `/`: every answer carries the Content-Security-Policy
//! and the other security headers, every asset its media type, nothing
//! refers to another origin or runs inline, and the API's own answers (the
//! 404 of an unknown path) are unchanged. What the console does in a browser
//! is tested by `tests/console` (Playwright).

use std::collections::BTreeSet;

use crate::harness::{Backend, Reply, TestApp, spawn_app};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
    base-uri 'none'; form-action 'none'";

/// Strings in the assets that look like URLs but are fetched from nowhere:
/// the SVG namespace name, which `createElementNS` and SVG files require.
const NOT_FETCHED: &[&str] = &["http://www.w3.org/2000/svg"];

fn header<'a>(reply: &'a Reply, name: &str) -> &'a str {
    reply
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn assert_security_headers(path: &str, reply: &Reply) {
    assert_eq!(header(reply, "content-security-policy"), CSP, "{path}");
    assert_eq!(header(reply, "x-frame-options"), "DENY", "{path}");
    assert_eq!(header(reply, "x-content-type-options"), "nosniff", "{path}");
    assert_eq!(header(reply, "referrer-policy"), "no-referrer", "{path}");
}

async fn every_console_path(app: &TestApp) -> Vec<(String, Reply)> {
    let mut replies = Vec::new();
    for path in std::iter::once("/".to_owned()).chain(totpd_api::console_asset_paths()) {
        let reply = app.get_public(&path).await;
        assert_eq!(reply.status, 200, "GET {path}: {}", reply.text);
        replies.push((path, reply));
    }
    replies
}

#[tokio::test]
async fn the_console_page_and_every_asset_carry_the_csp_and_the_other_security_headers() {
    let app = spawn_app(Backend::Sqlite).await;
    assert_eq!(totpd_api::CONTENT_SECURITY_POLICY, CSP);
    for (path, reply) in every_console_path(&app).await {
        assert_security_headers(&path, &reply);
    }
    // An unknown asset is the API's JSON 404, with the headers too.
    let reply = app.get_public("/console/missing.js").await;
    reply.expect_error(404, "not_found");
    assert_security_headers("/console/missing.js", &reply);
}

#[tokio::test]
async fn each_asset_is_served_with_its_media_type_and_the_page_is_never_stored() {
    let app = spawn_app(Backend::Sqlite).await;
    for (path, reply) in every_console_path(&app).await {
        let expected = match path.rsplit('.').next() {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            _ => "text/html; charset=utf-8",
        };
        assert_eq!(header(&reply, "content-type"), expected, "{path}");
        let cache = header(&reply, "cache-control");
        if path == "/" {
            assert_eq!(cache, "no-store", "{path}");
            assert!(reply.text.starts_with("<!doctype html>"), "{path}");
        } else {
            assert_eq!(cache, "no-cache", "{path}");
        }
    }
}

#[tokio::test]
async fn no_console_asset_refers_to_another_origin() {
    let app = spawn_app(Backend::Sqlite).await;
    for (path, reply) in every_console_path(&app).await {
        let mut text = reply.text.clone();
        for allowed in NOT_FETCHED {
            text = text.replace(allowed, "");
        }
        for scheme in ["http://", "https://", "//cdn", "ws://", "wss://"] {
            assert!(
                !text.contains(scheme),
                "{path} mentions {scheme}: {}",
                text.lines()
                    .find(|line| line.contains(scheme))
                    .unwrap_or_default()
            );
        }
        // Protocol-relative URLs in attributes (src="//host/...").
        for attribute in ["src=\"//", "href=\"//", "url(//", "url(\"//"] {
            assert!(!text.contains(attribute), "{path} has {attribute}");
        }
    }
}

#[tokio::test]
async fn the_page_runs_no_inline_script_or_style_and_loads_only_served_assets() {
    let app = spawn_app(Backend::Sqlite).await;
    let served: BTreeSet<String> = totpd_api::console_asset_paths().into_iter().collect();
    let page = app.get_public("/").await.text;
    let lower = page.to_ascii_lowercase();
    assert!(!lower.contains("<style"), "a <style> element");
    assert!(!lower.contains(" style="), "a style attribute");
    for chunk in lower.split("<script").skip(1) {
        let tag = chunk.split('>').next().unwrap_or_default();
        assert!(tag.contains(" src="), "an inline <script{tag}>");
    }
    // No event handler attribute (onclick=...): the script adds listeners.
    for word in lower.split(|c: char| c.is_whitespace()) {
        assert!(
            !(word.starts_with("on") && word.contains('=') && word.len() > 3),
            "an inline event handler: {word}"
        );
    }
    // Every src/href of the page and every module import is an asset served here.
    let mut referenced = BTreeSet::new();
    for attribute in ["src=\"", "href=\""] {
        for chunk in page.split(attribute).skip(1) {
            let target = chunk.split('"').next().unwrap_or_default();
            if !target.starts_with('#') {
                referenced.insert(target.to_owned());
            }
        }
    }
    for path in &served {
        if !path.ends_with(".js") {
            continue;
        }
        let script = app.get_public(path).await.text;
        for chunk in script.split(" from './").skip(1) {
            let module = chunk.split('\'').next().unwrap_or_default();
            referenced.insert(format!("/console/{module}"));
        }
    }
    assert!(referenced.contains("/console/app.js"), "{referenced:?}");
    for target in &referenced {
        assert!(
            served.contains(target),
            "{target} is referenced but not served"
        );
    }
}

#[tokio::test]
async fn the_console_leaves_unknown_paths_health_and_the_openapi_document_as_they_were() {
    let app = spawn_app(Backend::Sqlite).await;
    app.get_public("/no/such/path")
        .await
        .expect_error(404, "not_found");
    app.get_public("/index.html")
        .await
        .expect_error(404, "not_found");
    assert_eq!(app.get_public("/healthz").await.status, 200);
    let openapi = app.get_public("/openapi.json").await.json();
    let paths = openapi["paths"].as_object().expect("OpenAPI paths");
    // The console is not part of the API: its routes are not documented.
    assert!(!paths.contains_key("/"), "{:?}", paths.keys());
    // A write to the page is refused like any wrong method.
    let reply = app
        .api()
        .request(
            reqwest::Method::POST,
            "/",
            crate::harness::Body::Json(serde_json::json!({})),
        )
        .await;
    reply.expect_error(405, "method_not_allowed");
}
