//! Authentication: the SDKs' headers and `Authorization: Bearer`, one 401
//! for every failure, and revocation while the server runs.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use crate::harness::{
    ApiKey, Auth, Backend, Body, Reply, SECRETS, TestServer, code_path, on_both_backends,
    refused_after, secret_path,
};

on_both_backends! {
    both_auth_forms_work_on_every_endpoint
        => both_auth_forms_work_on_every_endpoint_on_sqlite,
           both_auth_forms_work_on_every_endpoint_on_postgres;
    every_authentication_failure_is_the_same_401_body
        => every_authentication_failure_is_the_same_401_body_on_sqlite,
           every_authentication_failure_is_the_same_401_body_on_postgres;
    a_key_revoked_while_serve_runs_is_refused_within_one_second
        => a_key_revoked_while_serve_runs_is_refused_within_one_second_on_sqlite,
           a_key_revoked_while_serve_runs_is_refused_within_one_second_on_postgres;
}

async fn both_auth_forms_work_on_every_endpoint(backend: Backend) {
    let server = TestServer::start(backend).await;
    for auth in [
        Auth::Headers(server.key.clone()),
        Auth::Bearer(server.key.clone()),
        Auth::Raw(vec![(
            "authorization",
            format!("bearer {}.{}", server.key.key_id, server.key.secret),
        )]),
    ] {
        let api = server.api_with(auth.clone());
        let created = api.create_ok(json!({"label": "auth form"})).await;
        let id = created["id"].as_str().unwrap();
        let listed = api.listed_ids().await;
        assert!(listed.iter().any(|l| l == id), "{auth:?}: list");
        api.code(id).await.expect_ok();
        api.delete(id).await.expect_ok();
    }
}

/// Every request shape a client could get wrong, on one endpoint.
fn failing_credentials(
    valid: &ApiKey,
    revoked: &ApiKey,
    other: &ApiKey,
) -> Vec<(&'static str, Auth)> {
    let unknown = ApiKey {
        key_id: format!("tk_{}", &Uuid::new_v4().simple().to_string()[..24]),
        secret: valid.secret.clone(),
    };
    let wrong_secret = ApiKey {
        key_id: valid.key_id.clone(),
        secret: format!("{}x", valid.secret),
    };
    let mixed = ApiKey {
        key_id: other.key_id.clone(),
        secret: valid.secret.clone(),
    };
    let header = |id: &str, secret: &str| {
        Auth::Raw(vec![
            ("sb-api-key-id", id.to_owned()),
            ("sb-api-secret-key", secret.to_owned()),
        ])
    };
    vec![
        ("no credentials", Auth::None),
        (
            "only the key id header",
            Auth::Raw(vec![("sb-api-key-id", valid.key_id.clone())]),
        ),
        (
            "only the secret header",
            Auth::Raw(vec![("sb-api-secret-key", valid.secret.clone())]),
        ),
        ("empty headers", header("", "")),
        ("an unknown key id", Auth::Headers(unknown.clone())),
        (
            "a key id that is not one",
            header("not-a-key-id", &valid.secret),
        ),
        ("a wrong secret", Auth::Headers(wrong_secret.clone())),
        ("an empty secret", header(&valid.key_id, "")),
        ("the secret of another key", Auth::Headers(mixed)),
        ("a revoked key", Auth::Headers(revoked.clone())),
        ("Bearer with an unknown key id", Auth::Bearer(unknown)),
        ("Bearer with a wrong secret", Auth::Bearer(wrong_secret)),
        ("Bearer with a revoked key", Auth::Bearer(revoked.clone())),
        (
            "Bearer without the dot",
            Auth::Raw(vec![(
                "authorization",
                format!("Bearer {}{}", valid.key_id, valid.secret),
            )]),
        ),
        (
            "Bearer with nothing",
            Auth::Raw(vec![("authorization", "Bearer".to_owned())]),
        ),
        (
            "Basic instead of Bearer",
            Auth::Raw(vec![(
                "authorization",
                format!("Basic {}.{}", valid.key_id, valid.secret),
            )]),
        ),
    ]
}

async fn every_authentication_failure_is_the_same_401_body(backend: Backend) {
    let server = TestServer::start(backend).await;
    let valid = server.key.clone();
    let other = server.env.create_key("other");
    let revoked = server.env.create_key("default");
    server.api_as(&revoked).list().await.expect_ok();
    server.env.run_ok(&["keys", "revoke", &revoked.key_id]);
    // Revocation may take up to a second to reach the server (its own test
    // checks that bound).
    refused_after(&server.api_as(&revoked), SECRETS, Instant::now()).await;

    let existing = server.api().create_ok(json!({"label": "target"})).await;
    let id = existing["id"].as_str().unwrap().to_owned();
    let requests: Vec<(Method, String, Body)> = vec![
        (Method::GET, SECRETS.to_owned(), Body::None),
        (
            Method::POST,
            SECRETS.to_owned(),
            Body::Json(json!({"label": "must not be stored"})),
        ),
        // A body that would be a 400 if it were looked at: auth comes first.
        (
            Method::POST,
            SECRETS.to_owned(),
            Body::Raw {
                content_type: Some("application/json"),
                bytes: b"{not json".to_vec(),
            },
        ),
        (Method::GET, code_path(&id), Body::None),
        (Method::DELETE, secret_path(&id), Body::None),
        // An id that does not exist: 401, not 404, so nothing is revealed.
        (
            Method::GET,
            code_path(&Uuid::new_v4().to_string()),
            Body::None,
        ),
        (Method::DELETE, secret_path("not-a-uuid"), Body::None),
    ];
    let mut bodies: Vec<(String, Reply)> = Vec::new();
    for (what, auth) in failing_credentials(&valid, &revoked, &other) {
        let api = server.api_with(auth);
        for (method, path, body) in &requests {
            let reply = api.request(method.clone(), path, body.clone()).await;
            assert_eq!(
                reply.status, 401,
                "{what}: {method} {path} answered {}",
                reply.text
            );
            reply.expect_error_body("unauthorized");
            bodies.push((format!("{what}: {method} {path}"), reply));
        }
    }
    let (first_what, first) = &bodies[0];
    for (what, reply) in &bodies {
        assert_eq!(
            reply.text, first.text,
            "401 bodies differ between {first_what:?} and {what:?}"
        );
    }
    // Nothing was created or deleted by the refused requests.
    let listed = server.api().listed_ids().await;
    assert_eq!(listed, vec![id]);
}

async fn a_key_revoked_while_serve_runs_is_refused_within_one_second(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    let agent = server.env.create_key("default");
    let api = server.api_as(&agent);
    let created = api.create_ok(json!({"label": "agent's"})).await;
    let id = created["id"].as_str().unwrap().to_owned();
    // Warm every cache the server might have.
    for _ in 0..3 {
        api.code(&id).await.expect_ok();
    }

    let revoke = server.env.run(&["keys", "revoke", &agent.key_id]);
    assert!(revoke.status.success(), "keys revoke: {}", revoke.stderr);
    let revoked_at = Instant::now();
    let took = refused_after(&api, &code_path(&id), revoked_at).await;
    assert!(
        took <= Duration::from_secs(1),
        "the revoked key was accepted for {took:?} after `keys revoke` returned"
    );
    // Refused everywhere, for good; the server keeps serving other keys.
    api.list().await.expect_error(401, "unauthorized");
    server
        .api_with(Auth::Bearer(agent.clone()))
        .list()
        .await
        .expect_error(401, "unauthorized");
    server.assert_healthy().await;
    let owner = server.api();
    assert!(owner.listed_ids().await.contains(&id));
    owner.code(&id).await.expect_ok();
}
