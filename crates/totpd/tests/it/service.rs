//! The unauthenticated endpoints: health checks and the OpenAPI document.

use serde_json::Value;

use crate::harness::{Backend, on_both_backends, spawn_app};

on_both_backends! {
    healthz_and_readyz_answer_without_credentials
        => healthz_and_readyz_answer_without_credentials_on_sqlite,
           healthz_and_readyz_answer_without_credentials_on_postgres;
    openapi_json_is_an_openapi_3_1_document_with_the_four_operations
        => openapi_json_is_an_openapi_3_1_document_with_the_four_operations_on_sqlite,
           openapi_json_is_an_openapi_3_1_document_with_the_four_operations_on_postgres;
}

async fn healthz_and_readyz_answer_without_credentials(backend: Backend) {
    let server = spawn_app(backend).await;
    for path in ["/healthz", "/readyz"] {
        let reply = server.get_public(path).await;
        assert_eq!(reply.expect_ok()["status"], "OK", "{path}");
    }
}

async fn openapi_json_is_an_openapi_3_1_document_with_the_four_operations(backend: Backend) {
    let server = spawn_app(backend).await;
    let reply = server.get_public("/openapi.json").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let content_type = reply
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "Content-Type {content_type:?}"
    );
    let document: Value = serde_json::from_str(&reply.text).expect("/openapi.json is JSON");
    let version = document["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1."), "openapi version {version:?}");
    assert!(document["info"]["title"].is_string(), "info.title");
    let paths = document["paths"]
        .as_object()
        .expect("the document has paths");
    for (path, method) in [
        ("/api/v2/totp/secrets", "post"),
        ("/api/v2/totp/secrets", "get"),
        ("/api/v2/totp/secrets/{id}", "delete"),
        ("/api/v2/totp/secrets/{id}", "get"),
        ("/api/v2/totp/secrets/{id}", "patch"),
        ("/api/v2/totp/code/{id}", "get"),
    ] {
        let operation = paths
            .get(path)
            .and_then(|p| p.get(method))
            .unwrap_or_else(|| panic!("/openapi.json lacks {method} {path}"));
        assert!(
            operation["responses"].get("200").is_some(),
            "{method} {path} documents its 200 answer"
        );
        assert!(
            operation["responses"].get("401").is_some(),
            "{method} {path} documents its 401 answer"
        );
    }
    // The lifecycle's query parameters are documented.
    for (path, names) in [
        (
            "/api/v2/totp/secrets",
            &["limit", "cursor", "issuer", "q"][..],
        ),
        ("/api/v2/totp/code/{id}", &["min_remaining"][..]),
    ] {
        let documented: Vec<&str> = paths[path]["get"]["parameters"]
            .as_array()
            .unwrap_or_else(|| panic!("GET {path} documents no parameters"))
            .iter()
            .filter(|p| p["in"] == "query")
            .filter_map(|p| p["name"].as_str())
            .collect();
        for name in names {
            assert!(
                documented.contains(name),
                "GET {path} lacks {name}: {documented:?}"
            );
        }
    }
    assert!(
        paths["/api/v2/totp/secrets/{id}"]["patch"]["requestBody"].is_object(),
        "PATCH documents its body"
    );
    // Every $ref points at something the document defines.
    let text = reply.text.as_str();
    let mut rest = text;
    while let Some(at) = rest.find("\"$ref\"") {
        rest = &rest[at + 6..];
        let start = rest.find('"').expect("a $ref value") + 1;
        let end = start + rest[start..].find('"').expect("a closed $ref value");
        let reference = &rest[start..end];
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("external $ref {reference}"));
        assert!(
            document.pointer(pointer).is_some(),
            "$ref {reference} points at nothing"
        );
        rest = &rest[end..];
    }
}
