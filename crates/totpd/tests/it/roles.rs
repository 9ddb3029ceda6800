//! Roles, scoped and expiring keys and the keys API (DESIGN §2.3) on both
//! backends: the role matrix, a key that sees one secret, expiry and the
//! keys API's validation through the in-process app; revocation through
//! the API on every node, and the CLI's `--role`, `--secret`,
//! `--expires-in` and `keys list`, through real `totpd serve` processes.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{
    ApiKey, Backend, Body, SECRETS, Serves, TestServer,
    assert_refused_by_every_node_within_a_second, code_path, on_both_backends, on_postgres_only,
    refused_after, spawn_app, unix_ms,
};

on_both_backends! {
    every_role_gets_the_expected_status_from_every_route
        => every_role_gets_the_expected_status_from_every_route_on_sqlite,
           every_role_gets_the_expected_status_from_every_route_on_postgres;
    a_key_scoped_to_one_secret_sees_that_secret_only
        => a_key_scoped_to_one_secret_sees_that_secret_only_on_sqlite,
           a_key_scoped_to_one_secret_sees_that_secret_only_on_postgres;
    an_expired_key_is_refused_like_a_revoked_one
        => an_expired_key_is_refused_like_a_revoked_one_on_sqlite,
           an_expired_key_is_refused_like_a_revoked_one_on_postgres;
    the_keys_api_validates_every_field_and_stays_in_its_account
        => the_keys_api_validates_every_field_and_stays_in_its_account_on_sqlite,
           the_keys_api_validates_every_field_and_stays_in_its_account_on_postgres;
    the_cli_makes_scoped_expiring_keys_and_lists_role_scope_expiry_and_last_use
        => the_cli_makes_scoped_expiring_keys_and_lists_role_scope_expiry_and_last_use_on_sqlite,
           the_cli_makes_scoped_expiring_keys_and_lists_role_scope_expiry_and_last_use_on_postgres;
}

on_postgres_only! {
    a_key_revoked_through_the_api_is_refused_by_every_node_within_one_second
        => a_key_revoked_through_the_api_is_refused_by_every_node_within_one_second_on_postgres;
}

const KEYS: &str = "/api/v2/keys";

/// The roles of the matrix's columns, in order.
const ROLES: [&str; 4] = ["owner", "admin", "agent", "verifier"];

/// One route of the matrix: the request, and the status each role of
/// [`ROLES`] gets. In `path`, `{secret}` is a secret every role may see,
/// `{fresh_secret}` and `{fresh_key}` a secret or key made just for this
/// request (so a permitted delete has something to delete). A new route is
/// one more line.
struct Route {
    method: Method,
    path: &'static str,
    body: Option<&'static str>,
    expect: [u16; 4],
}

fn matrix() -> Vec<Route> {
    let route = |method: Method, path, body, expect| Route {
        method,
        path,
        body,
        expect,
    };
    vec![
        route(
            Method::POST,
            SECRETS,
            Some(r#"{"label":"matrix"}"#),
            [200, 200, 200, 403],
        ),
        route(Method::GET, SECRETS, None, [200, 200, 200, 403]),
        route(
            Method::GET,
            "/api/v2/totp/code/{secret}",
            None,
            [200, 200, 200, 403],
        ),
        route(
            Method::GET,
            "/api/v2/totp/secrets/{secret}",
            None,
            [200, 200, 200, 403],
        ),
        route(
            Method::PATCH,
            "/api/v2/totp/secrets/{secret}",
            Some(r#"{"label":"renamed","issuer":"Matrix"}"#),
            [200, 200, 403, 403],
        ),
        route(
            Method::GET,
            "/api/v2/totp/secrets?limit=10&issuer=matrix&q=a",
            None,
            [200, 200, 200, 403],
        ),
        route(
            Method::GET,
            "/api/v2/totp/code/{secret}?min_remaining=0",
            None,
            [200, 200, 200, 403],
        ),
        route(
            Method::DELETE,
            "/api/v2/totp/secrets/{fresh_secret}",
            None,
            [200, 200, 403, 403],
        ),
        route(
            Method::POST,
            KEYS,
            Some(r#"{"name":"m","role":"agent"}"#),
            [200, 403, 403, 403],
        ),
        route(Method::GET, KEYS, None, [200, 403, 403, 403]),
        route(
            Method::DELETE,
            "/api/v2/keys/{fresh_key}",
            None,
            [200, 403, 403, 403],
        ),
        route(Method::GET, "/api/v2/audit", None, [200, 200, 403, 403]),
    ]
}

fn key_of(created: &Value) -> ApiKey {
    ApiKey {
        key_id: created["api_key"]["key_id"].as_str().unwrap().to_owned(),
        secret: created["secret"].as_str().unwrap().to_owned(),
    }
}

/// Creates a key through the API as `owner`; returns the whole answer.
async fn create_key(server: &impl Serves, owner: &ApiKey, body: Value) -> Value {
    server
        .api_as(owner)
        .request(Method::POST, KEYS, Body::Json(body))
        .await
        .expect_ok()
}

async fn new_secret(server: &impl Serves, label: &str) -> String {
    server.api().create_ok(json!({ "label": label })).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn every_role_gets_the_expected_status_from_every_route(backend: Backend) {
    let server = spawn_app(backend).await;
    let mut keys = Vec::new();
    for role in ROLES {
        let created = create_key(&server, &server.key, json!({"name": role, "role": role})).await;
        assert_eq!(created["api_key"]["role"], role);
        keys.push(key_of(&created));
    }
    let shared = new_secret(&server, "shared").await;
    let mut failures = Vec::new();
    for route in matrix() {
        for (role, (key, expected)) in ROLES.iter().zip(keys.iter().zip(route.expect)) {
            let mut path = route.path.replace("{secret}", &shared);
            if path.contains("{fresh_secret}") {
                path = path.replace("{fresh_secret}", &new_secret(&server, "fresh").await);
            }
            if path.contains("{fresh_key}") {
                let fresh = create_key(&server, &server.key, json!({"role": "agent"})).await;
                path = path.replace("{fresh_key}", &key_of(&fresh).key_id);
            }
            let body = route
                .body
                .map_or(Body::None, |b| Body::Json(serde_json::from_str(b).unwrap()));
            let reply = server
                .api_as(key)
                .request(route.method.clone(), &path, body)
                .await;
            if reply.status != expected {
                failures.push(format!(
                    "{role} {} {}: {} (expected {expected}): {}",
                    route.method, route.path, reply.status, reply.text
                ));
            } else if expected == 403 {
                reply.expect_error(403, "forbidden");
            } else {
                reply.expect_ok();
            }
        }
        // And nobody without a key.
        let path = route.path.replace("{secret}", &shared);
        let path = path
            .replace("{fresh_secret}", &shared)
            .replace("{fresh_key}", "tk_x");
        let body = route
            .body
            .map_or(Body::None, |b| Body::Json(serde_json::from_str(b).unwrap()));
        let anonymous = server
            .api_with(crate::harness::Auth::None)
            .request(route.method.clone(), &path, body)
            .await;
        if anonymous.status != 401 {
            failures.push(format!(
                "anonymous {} {}: {}",
                route.method, route.path, anonymous.status
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

async fn a_key_scoped_to_one_secret_sees_that_secret_only(backend: Backend) {
    let server = spawn_app(backend).await;
    let mine = new_secret(&server, "mine").await;
    let other = new_secret(&server, "other").await;
    let agent = key_of(
        &create_key(
            &server,
            &server.key,
            json!({"name": "one", "role": "agent", "secret_ids": [mine]}),
        )
        .await,
    );
    let api = server.api_as(&agent);
    assert_eq!(api.listed_ids().await, std::slice::from_ref(&mine));
    api.code(&mine).await.expect_ok();
    api.code(&other).await.expect_error(404, "not_found");
    // A scoped key cannot enroll what it could never read.
    api.create(json!({"label": "new"}))
        .await
        .expect_error(403, "forbidden");
    // An admin scoped to the same secret may delete it, and nothing else.
    let admin = key_of(
        &create_key(
            &server,
            &server.key,
            json!({"role": "admin", "secret_ids": [mine]}),
        )
        .await,
    );
    let admin = server.api_as(&admin);
    admin.delete(&other).await.expect_error(404, "not_found");
    // Out of scope is exactly "does not exist": the same answer as a
    // random id.
    let unknown = uuid::Uuid::new_v4().to_string();
    let absent = admin.delete(&unknown).await.expect_error(404, "not_found");
    let hidden = admin.delete(&other).await.expect_error(404, "not_found");
    assert_eq!(absent, hidden);
    admin.delete(&mine).await.expect_ok();
    assert!(api.list_ok().await.is_empty());
    assert_eq!(server.api().listed_ids().await, [other]);
}

async fn an_expired_key_is_refused_like_a_revoked_one(backend: Backend) {
    let server = spawn_app(backend).await;
    let id = new_secret(&server, "expiring").await;
    let expires = unix_ms() + 1_500;
    let at = time_text(expires);
    let created = create_key(
        &server,
        &server.key,
        json!({"role": "agent", "expires_at": at}),
    )
    .await;
    assert_eq!(created["api_key"]["expires_at"], at);
    let key = key_of(&created);
    let api = server.api_as(&key);
    api.code(&id).await.expect_ok();
    let until = Duration::from_millis(u64::try_from((expires - unix_ms()).max(0)).unwrap());
    tokio::time::sleep(until + Duration::from_millis(50)).await;
    let expired = api.code(&id).await.expect_error(401, "unauthorized");
    // The same answer as a revoked key, word for word.
    let revoked = key_of(&create_key(&server, &server.key, json!({"role": "agent"})).await);
    server
        .api()
        .request(
            Method::DELETE,
            &format!("{KEYS}/{}", revoked.key_id),
            Body::None,
        )
        .await
        .expect_ok();
    let refused = server
        .api_as(&revoked)
        .code(&id)
        .await
        .expect_error(401, "unauthorized");
    assert_eq!(expired, refused);
}

/// RFC 3339 of Unix milliseconds, as the API writes it.
fn time_text(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

async fn the_keys_api_validates_every_field_and_stays_in_its_account(backend: Backend) {
    let server = spawn_app(backend).await;
    let id = new_secret(&server, "mine").await;
    let bob = server.create_key("bob").await;
    let bobs = server
        .api_as(&bob)
        .create_ok(json!({"label": "bob's"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let too_many: Vec<String> = (0..101).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let cases = [
        (json!({}), "role"),
        (json!({"role": "root"}), "role"),
        (json!({"role": "agent", "name": 7}), "name"),
        (json!({"role": "agent", "name": "a\u{7}b"}), "name"),
        (json!({"role": "agent", "secret_ids": "all"}), "secret_ids"),
        (
            json!({"role": "agent", "secret_ids": ["nope"]}),
            "secret_ids",
        ),
        (json!({"role": "agent", "secret_ids": []}), "secret_ids"),
        (json!({"role": "agent", "secret_ids": [bobs]}), "secret_ids"),
        (
            json!({"role": "agent", "secret_ids": [uuid::Uuid::new_v4()]}),
            "secret_ids",
        ),
        (
            json!({"role": "agent", "secret_ids": too_many}),
            "secret_ids",
        ),
        (json!({"role": "agent", "expires_at": "soon"}), "expires_at"),
        (
            json!({"role": "agent", "expires_at": "2001-01-01T00:00:00Z"}),
            "expires_at",
        ),
    ];
    let api = server.api();
    for (body, field) in cases {
        let reply = api
            .request(Method::POST, KEYS, Body::Json(body.clone()))
            .await;
        let error = reply.expect_error(400, "invalid_request");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains(&format!("\"{field}\"")),
            "{body}: {error}"
        );
    }
    // Listing shows this account's keys only, never a secret or hash.
    let made = create_key(
        &server,
        &server.key,
        json!({"role": "verifier", "secret_ids": [id]}),
    )
    .await;
    let listed = api.get(KEYS).await.expect_ok();
    let listed = listed["api_keys"].as_array().unwrap();
    let ids: Vec<&str> = listed
        .iter()
        .map(|k| k["key_id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&server.key.key_id.as_str()));
    assert!(ids.contains(&made["api_key"]["key_id"].as_str().unwrap()));
    assert!(
        !ids.contains(&bob.key_id.as_str()),
        "another account's key is listed"
    );
    let text = serde_json::to_string(listed).unwrap();
    assert!(!text.contains(made["secret"].as_str().unwrap()));
    assert!(!text.contains(&server.key.secret));
    for key in listed {
        let fields: Vec<&str> = key
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            fields.len(),
            8,
            "exactly key_id, name, role, secret_ids, created_at, expires_at, revoked_at, last_used_at: {key}"
        );
    }
    let verifier = listed
        .iter()
        .find(|k| k["key_id"] == made["api_key"]["key_id"])
        .unwrap();
    assert_eq!(verifier["secret_ids"], json!([id]));
    assert_eq!(verifier["role"], "verifier");
    // Another account's key, an unknown one and a revoked one are 404.
    for key_id in [bob.key_id.as_str(), "tk_000000000000000000000000", "x"] {
        api.request(Method::DELETE, &format!("{KEYS}/{key_id}"), Body::None)
            .await
            .expect_error(404, "not_found");
    }
    server.api_as(&bob).list_ok().await;
    let made_id = made["api_key"]["key_id"].as_str().unwrap();
    api.request(Method::DELETE, &format!("{KEYS}/{made_id}"), Body::None)
        .await
        .expect_ok();
    api.request(Method::DELETE, &format!("{KEYS}/{made_id}"), Body::None)
        .await
        .expect_error(404, "not_found");
    let listed = api.get(KEYS).await.expect_ok();
    let revoked = listed["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key_id"] == made_id)
        .unwrap()
        .clone();
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    // A key cannot revoke itself (a tool walking the list would lock its
    // caller out); another owner key can.
    let spare = key_of(&create_key(&server, &server.key, json!({"role": "owner"})).await);
    let spare_api = server.api_as(&spare);
    let spare_path = format!("{KEYS}/{}", spare.key_id);
    let refused = spare_api
        .request(Method::DELETE, &spare_path, Body::None)
        .await
        .expect_error(400, "invalid_request");
    assert!(
        refused["message"].as_str().unwrap().contains("\"key_id\""),
        "{refused}"
    );
    spare_api.list_ok().await;
    api.request(Method::DELETE, &spare_path, Body::None)
        .await
        .expect_ok();
    refused_after(&spare_api, SECRETS, Instant::now()).await;
}

async fn the_cli_makes_scoped_expiring_keys_and_lists_role_scope_expiry_and_last_use(
    backend: Backend,
) {
    let server = TestServer::start(backend).await;
    let id = new_secret(&server, "cli").await;
    let other = new_secret(&server, "other").await;
    let out = server.env.run_ok(&[
        "keys",
        "create",
        "--account",
        "default",
        "--role",
        "agent",
        "--name",
        "ci bot",
        "--secret",
        &id,
        "--expires-in",
        "30d",
        "--json",
    ]);
    let object: Value = serde_json::from_str(out.trim()).unwrap();
    let fields: Vec<&str> = object
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for field in [
        "account",
        "account_id",
        "key_id",
        "secret",
        "role",
        "name",
        "secret_ids",
        "expires_at",
    ] {
        assert!(
            fields.contains(&field),
            "keys create --json lacks {field}: {out}"
        );
    }
    assert_eq!(object["role"], "agent");
    assert_eq!(object["name"], "ci bot");
    assert_eq!(object["secret_ids"], json!([id]));
    let expires = object["expires_at"].as_str().unwrap();
    let key = ApiKey {
        key_id: object["key_id"].as_str().unwrap().to_owned(),
        secret: object["secret"].as_str().unwrap().to_owned(),
    };
    let api = server.api_as(&key);
    assert_eq!(api.listed_ids().await, std::slice::from_ref(&id));
    api.code(&other).await.expect_error(404, "not_found");
    api.get(&code_path(&id)).await.expect_ok();
    api.delete(&id).await.expect_error(403, "forbidden");

    // Bad flags are refused before anything is made.
    for bad in [
        vec!["--role", "root"],
        vec!["--expires-in", "30x"],
        vec!["--expires-in", "0s"],
        vec!["--secret", "not-a-uuid"],
        vec!["--secret", "00000000-0000-0000-0000-000000000001"],
    ] {
        let mut args = vec!["keys", "create", "--account", "default", "--json"];
        args.extend(bad.iter().copied());
        let out = server.env.run(&args);
        assert!(
            !out.status.success(),
            "{bad:?} was accepted: {}",
            out.stdout
        );
        assert!(!out.stderr.trim().is_empty(), "{bad:?} failed silently");
    }

    // Uses are written every few seconds: the listed last use catches up.
    let deadline = Instant::now() + Duration::from_secs(15);
    let listed = loop {
        let out = server.env.run_ok(&["keys", "list", "--json"]);
        let keys: Value = serde_json::from_str(out.trim()).unwrap();
        let listed = keys
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["key_id"] == key.key_id.as_str())
            .unwrap()
            .clone();
        if listed["last_used_at"].is_string() {
            break listed;
        }
        assert!(
            Instant::now() < deadline,
            "last use never recorded: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(listed["role"], "agent");
    assert_eq!(listed["secret_ids"], json!([id]));
    assert_eq!(listed["expires_at"], expires);
    assert!(
        listed["created_at"].as_str().unwrap().ends_with('Z'),
        "{listed}"
    );
    assert!(listed["revoked_at"].is_null());
    let table = server.env.run_ok(&["keys", "list"]);
    let line = table.lines().find(|l| l.contains(&key.key_id)).unwrap();
    for shown in ["agent", "1 secret", &expires[..10], "active", "ci bot"] {
        assert!(line.contains(shown), "{line:?} does not show {shown}");
    }
    assert!(!table.contains(&key.secret));
}

async fn a_key_revoked_through_the_api_is_refused_by_every_node_within_one_second() {
    let (a, b) = crate::cluster::two_nodes().await;
    let id = new_secret(&a, "agent's").await;
    let agent = key_of(&create_key(&a, &a.key, json!({"role": "agent"})).await);
    let (agent_a, agent_b) = (a.api_as(&agent), b.api_as(&agent));
    for _ in 0..3 {
        agent_a.code(&id).await.expect_ok();
        agent_b.code(&id).await.expect_ok();
    }
    a.api()
        .request(
            Method::DELETE,
            &format!("{KEYS}/{}", agent.key_id),
            Body::None,
        )
        .await
        .expect_ok();
    assert_refused_by_every_node_within_a_second(&[&agent_a, &agent_b], &code_path(&id)).await;
    b.api().code(&id).await.expect_ok();
}
