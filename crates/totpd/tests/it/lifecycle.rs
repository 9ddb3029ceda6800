//! A secret's life after enrollment (DESIGN §2.1) on both backends, through
//! the in-process app: reading one secret, renaming it (`PATCH`), the
//! filtered, paged list, and codes that stay valid for `min_remaining`
//! seconds, decided by a manual clock rather than by sleeping.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use totpd_api::Limits;
use totpd_vault::{ManualClock, UnixTime};

use crate::harness::{
    ApiKey, Backend, Body, Known, SECRETS, Serves, TestApp, TestServer, assert_code, code_path,
    on_both_backends, secret_path, spawn_app, spawn_app_with_clock,
};
use crate::otp::{Alg, base32_encode, totp};

on_both_backends! {
    get_and_patch_change_the_label_and_issuer_only
        => get_and_patch_change_the_label_and_issuer_only_on_sqlite,
           get_and_patch_change_the_label_and_issuer_only_on_postgres;
    patch_refuses_fixed_fields_empty_changes_and_bad_values
        => patch_refuses_fixed_fields_empty_changes_and_bad_values_on_sqlite,
           patch_refuses_fixed_fields_empty_changes_and_bad_values_on_postgres;
    another_accounts_or_out_of_scope_secret_is_not_found_by_get_or_patch
        => another_accounts_or_out_of_scope_secret_is_not_found_by_get_or_patch_on_sqlite,
           another_accounts_or_out_of_scope_secret_is_not_found_by_get_or_patch_on_postgres;
    pages_list_every_lasting_secret_once_while_others_come_and_go
        => pages_list_every_lasting_secret_once_while_others_come_and_go_on_sqlite,
           pages_list_every_lasting_secret_once_while_others_come_and_go_on_postgres;
    filters_combine_with_paging_and_match_text_literally
        => filters_combine_with_paging_and_match_text_literally_on_sqlite,
           filters_combine_with_paging_and_match_text_literally_on_postgres;
    bad_list_parameters_are_refused_by_name
        => bad_list_parameters_are_refused_by_name_on_sqlite,
           bad_list_parameters_are_refused_by_name_on_postgres;
    the_list_without_parameters_keeps_its_shape
        => the_list_without_parameters_keeps_its_shape_on_sqlite,
           the_list_without_parameters_keeps_its_shape_on_postgres;
    min_remaining_waits_for_the_next_period_on_the_clock
        => min_remaining_waits_for_the_next_period_on_the_clock_on_sqlite,
           min_remaining_waits_for_the_next_period_on_the_clock_on_postgres;
    a_client_that_goes_away_ends_the_wait_and_gets_no_code_recorded
        => a_client_that_goes_away_ends_the_wait_and_gets_no_code_recorded_on_sqlite,
           a_client_that_goes_away_ends_the_wait_and_gets_no_code_recorded_on_postgres;
}

const AUDIT: &str = "/api/v2/audit";
/// A base32 secret the tests know the bytes of.
const KEY: &[u8] = b"12345678901234567890";

fn known(period: u64) -> Known {
    Known {
        key: KEY.to_vec(),
        alg: Alg::Sha1,
        digits: 6,
        period,
    }
}

async fn patch(api: &crate::harness::Api, id: &str, body: Value) -> crate::harness::Reply {
    api.request(Method::PATCH, &secret_path(id), Body::Json(body))
        .await
}

fn id_of(secret: &Value) -> String {
    secret["id"].as_str().unwrap().to_owned()
}

async fn create(server: &impl Serves, label: &str, issuer: Option<&str>) -> String {
    let mut body = json!({ "label": label });
    if let Some(issuer) = issuer {
        body["issuer"] = json!(issuer);
    }
    id_of(&server.api().create_ok(body).await)
}

async fn get_and_patch_change_the_label_and_issuer_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let api = app.api();
    let created = api
        .create_ok(json!({
            "label": "alice", "issuer": "GitHub", "secret": base32_encode(KEY),
        }))
        .await;
    let id = id_of(&created);

    let got = api.get(&secret_path(&id)).await.expect_ok();
    let listed = api.list_ok().await;
    assert_eq!(
        got["totp_secret"], listed[0],
        "GET one has the list's fields"
    );
    assert!(got["totp_secret"].get("secret").is_none(), "{got}");
    for field in [
        "label",
        "issuer",
        "algorithm",
        "digits",
        "period",
        "created_at",
    ] {
        assert_eq!(got["totp_secret"][field], created[field], "{field}");
    }

    let renamed = patch(&api, &id, json!({"label": "alice@example.com"}))
        .await
        .expect_ok();
    assert_eq!(renamed["totp_secret"]["label"], "alice@example.com");
    assert_eq!(
        renamed["totp_secret"]["issuer"], "GitHub",
        "absent leaves it"
    );
    let cleared = patch(&api, &id, json!({"issuer": null})).await.expect_ok();
    assert_eq!(cleared["totp_secret"]["issuer"], Value::Null);
    assert_eq!(cleared["totp_secret"]["label"], "alice@example.com");
    let both = patch(
        &api,
        &id,
        json!({"label": "Alice \u{e9}", "issuer": "GitLab", "unknown": 1}),
    )
    .await
    .expect_ok();
    assert_eq!(both["totp_secret"]["label"], "Alice \u{e9}");
    assert_eq!(both["totp_secret"]["issuer"], "GitLab");
    // Everything but the two fields is as it was.
    for field in ["id", "algorithm", "digits", "period", "created_at"] {
        assert_eq!(both["totp_secret"][field], created[field], "{field}");
    }
    assert_eq!(
        api.get(&secret_path(&id)).await.expect_ok(),
        both,
        "GET answers what PATCH answered"
    );
    assert_eq!(api.list_ok().await[0], both["totp_secret"]);
    // The ciphertext is bound to the account, id and OTP parameters, not to
    // the label: the renamed secret still opens and gives the right codes.
    assert_code(&api, &id, &known(30)).await;

    // Each change is recorded as secret.update; a change of a missing
    // secret as an invalid one.
    patch(
        &api,
        &uuid::Uuid::new_v4().to_string(),
        json!({"label": "x"}),
    )
    .await
    .expect_error(404, "not_found");
    app.vault.flush_audit().await;
    let events = api
        .get(&format!("{AUDIT}?action=secret.update&secret_id={id}"))
        .await
        .expect_ok();
    let events = events["events"].as_array().unwrap();
    assert_eq!(events.len(), 3, "{events:?}");
    for event in events {
        assert_eq!(event["outcome"], "ok");
        assert_eq!(event["key_id"], app.key.key_id.as_str());
        assert_eq!(event["role"], "owner");
    }
    let all = api
        .get(&format!("{AUDIT}?action=secret.update"))
        .await
        .expect_ok();
    let outcomes: Vec<&str> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["invalid", "ok", "ok", "ok"]);
}

async fn patch_refuses_fixed_fields_empty_changes_and_bad_values(backend: Backend) {
    let app = spawn_app(backend).await;
    let api = app.api();
    let id = create(&app, "fixed", Some("Issuer")).await;
    let before = api.get(&secret_path(&id)).await.expect_ok();

    for (field, value) in [
        ("secret", json!("JBSWY3DPEHPK3PXP")),
        ("uri", json!("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP")),
        ("algorithm", json!("SHA256")),
        ("digits", json!(8)),
        ("period", json!(60)),
        ("type", json!("hotp")),
        ("counter", json!(3)),
        // Sending the value it already has is still an attempt to set it.
        ("digits", json!(6)),
    ] {
        let reply = patch(&api, &id, json!({ "label": "renamed", field: value })).await;
        reply.expect_error(400, "invalid_request");
        let message = reply.message();
        assert!(
            message.contains(&format!("\"{field}\"")),
            "{field}: {message}"
        );
        assert!(message.contains("cannot be changed"), "{field}: {message}");
        assert!(!message.contains("JBSWY3DP"), "{message}");
    }
    for (body, names) in [
        (json!({}), "label"),
        (json!({"unknown": "x"}), "label"),
        (json!({"label": ""}), "label"),
        (json!({"label": "   "}), "label"),
        (json!({"label": "x".repeat(257)}), "label"),
        (json!({"label": "a\u{0}b"}), "label"),
        (json!({"label": null}), "label"),
        (json!({"label": 5}), "label"),
        (json!({"issuer": "y".repeat(257)}), "issuer"),
        (json!({"issuer": ["GitHub"]}), "issuer"),
        (json!({"issuer": "a\nb"}), "issuer"),
    ] {
        let reply = patch(&api, &id, body.clone()).await;
        reply.expect_error(400, "invalid_request");
        assert!(
            reply.message().contains(names),
            "{body}: {}",
            reply.message()
        );
    }
    for (content_type, bytes) in [
        (Some("application/json"), b"[1]".to_vec()),
        (Some("application/json"), b"{\"label\":".to_vec()),
        (None, b"not json".to_vec()),
    ] {
        api.request(
            Method::PATCH,
            &secret_path(&id),
            Body::Raw {
                content_type,
                bytes,
            },
        )
        .await
        .expect_error(400, "invalid_request");
    }
    api.request(
        Method::PATCH,
        &secret_path(&id),
        Body::Raw {
            content_type: Some("text/plain"),
            bytes: b"{\"label\":\"x\"}".to_vec(),
        },
    )
    .await
    .expect_error(415, "unsupported_media_type");
    assert_eq!(
        api.get(&secret_path(&id)).await.expect_ok(),
        before,
        "no refused change was stored"
    );
}

async fn another_accounts_or_out_of_scope_secret_is_not_found_by_get_or_patch(backend: Backend) {
    let app = spawn_app(backend).await;
    let api = app.api();
    let mine = create(&app, "mine", None).await;
    let other = create(&app, "other", None).await;
    let unknown = uuid::Uuid::new_v4().to_string();

    let stranger = app.create_key("another-account").await;
    let stranger = app.api_as(&stranger);
    let absent_get = stranger
        .get(&secret_path(&unknown))
        .await
        .expect_error(404, "not_found");
    let absent_patch = patch(&stranger, &unknown, json!({"label": "x"}))
        .await
        .expect_error(404, "not_found");
    for id in [&mine, &other] {
        let got = stranger
            .get(&secret_path(id))
            .await
            .expect_error(404, "not_found");
        assert_eq!(got, absent_get, "indistinguishable from an unknown id");
        let patched = patch(&stranger, id, json!({"label": "stolen"}))
            .await
            .expect_error(404, "not_found");
        assert_eq!(patched, absent_patch);
    }
    stranger
        .get(&secret_path("not-a-uuid"))
        .await
        .expect_error(404, "not_found");

    let scoped = api
        .request(
            Method::POST,
            "/api/v2/keys",
            Body::Json(json!({"role": "admin", "secret_ids": [mine]})),
        )
        .await
        .expect_ok();
    let scoped = ApiKey {
        key_id: scoped["api_key"]["key_id"].as_str().unwrap().to_owned(),
        secret: scoped["secret"].as_str().unwrap().to_owned(),
    };
    let scoped = app.api_as(&scoped);
    scoped
        .get(&secret_path(&other))
        .await
        .expect_error(404, "not_found");
    patch(&scoped, &other, json!({"label": "stolen"}))
        .await
        .expect_error(404, "not_found");
    scoped.get(&secret_path(&mine)).await.expect_ok();
    patch(&scoped, &mine, json!({"label": "renamed in scope"}))
        .await
        .expect_ok();
    // The scoped key's list and filters see its one secret only.
    let page = scoped.get(&format!("{SECRETS}?limit=10")).await.expect_ok();
    let ids: Vec<String> = page["totp_secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(ids, std::slice::from_ref(&mine));
    let none = scoped.get(&format!("{SECRETS}?q=other")).await.expect_ok();
    assert_eq!(none["totp_secrets"], json!([]));

    // Nothing changed in the account but what the scoped key renamed.
    let mut names: Vec<String> = api
        .list_ok()
        .await
        .iter()
        .map(|s| s["label"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["other", "renamed in scope"]);
}

/// Every page of the list with `limit` (and `extra` query text), followed
/// by `next_cursor` to the end; checks the last page's cursor is null.
async fn all_pages(api: &crate::harness::Api, limit: u32, extra: &str) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("{SECRETS}?limit={limit}{extra}");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let page = api.get(&path).await.expect_ok();
        let ids: Vec<String> = page["totp_secrets"]
            .as_array()
            .unwrap_or_else(|| panic!("no totp_secrets in {page}"))
            .iter()
            .map(id_of)
            .collect();
        assert!(
            ids.len() <= usize::try_from(limit).unwrap(),
            "a page longer than its limit"
        );
        assert!(page.get("next_cursor").is_some(), "no next_cursor: {page}");
        pages.push(ids);
        match &page["next_cursor"] {
            Value::Null => return pages,
            Value::String(next) => cursor = Some(next.clone()),
            other => panic!("next_cursor is {other}"),
        }
        assert!(pages.len() < 1000, "the pages never end");
    }
}

async fn pages_list_every_lasting_secret_once_while_others_come_and_go(backend: Backend) {
    let app = spawn_app(backend).await;
    let api = app.api();
    // Lasting secrets, each followed by one that will be deleted while the
    // list is paged, so deletions happen all along the list.
    let mut lasting = Vec::new();
    let mut doomed = Vec::new();
    for n in 0..23 {
        lasting.push(create(&app, &format!("lasting {n}"), None).await);
        doomed.push(create(&app, &format!("doomed {n}"), None).await);
    }
    // Meanwhile secrets are deleted and created without pause.
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let api = app.api();
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut rounds = 0u32;
            while !stop.load(Ordering::Relaxed) && rounds < 2000 {
                if let Some(id) = doomed.pop() {
                    api.delete(&id).await.expect_ok();
                }
                let id = id_of(&api.create_ok(json!({"label": "passing"})).await);
                if rounds.is_multiple_of(2) {
                    api.delete(&id).await.expect_ok();
                }
                rounds += 1;
            }
            rounds
        })
    };
    for limit in [1, 4, 7] {
        let pages = all_pages(&api, limit, "").await;
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for id in pages.iter().flatten() {
            *seen.entry(id.clone()).or_default() += 1;
        }
        for id in &lasting {
            assert_eq!(
                seen.get(id),
                Some(&1),
                "limit {limit}: a lasting secret listed {:?} times",
                seen.get(id)
            );
        }
        assert!(
            seen.values().all(|n| *n == 1),
            "limit {limit}: a secret listed twice"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let rounds = churn.await.unwrap();
    assert!(rounds > 0, "nothing was created while paging");

    // Quiet again: pages are exactly the whole list, in its order, and the
    // last one is not empty unless the list is.
    let whole = api.listed_ids().await;
    let pages = all_pages(&api, 5, "").await;
    assert_eq!(pages.concat(), whole);
    assert!(pages.iter().all(|p| !p.is_empty()), "{pages:?}");
    assert_eq!(
        all_pages(&api, 1000, "").await,
        std::slice::from_ref(&whole),
        "one page holds them all"
    );
    // A cursor without a limit pages by the default size.
    let first = api.get(&format!("{SECRETS}?limit=2")).await.expect_ok();
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = api
        .get(&format!("{SECRETS}?cursor={cursor}"))
        .await
        .expect_ok();
    let rest: Vec<String> = rest["totp_secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(rest, whole[2..whole.len().min(102)]);
}

async fn filters_combine_with_paging_and_match_text_literally(backend: Backend) {
    let app = spawn_app(backend).await;
    let api = app.api();
    let alice = create(&app, "alice@example.com", Some("GitHub")).await;
    let bob = create(&app, "bob", Some("github")).await;
    let carol = create(&app, "carol_100%", Some("GitLab")).await;
    let dave = create(&app, "dave", None).await;
    let eve = create(&app, "\u{dc}n\u{ef}code", Some("Stra\u{df}e")).await;
    let frank = create(&app, "frank", Some("Git Hub")).await;

    // The list's order is (creation time, id), and secrets made within one
    // millisecond are ordered by id: the expected lists follow the
    // account's own order, not the order of the creates above.
    let order = api.listed_ids().await;
    let in_list_order = |mut ids: Vec<String>| {
        ids.sort_by_key(|id| order.iter().position(|listed| listed == id));
        ids
    };
    let ids = |page: &Value| -> Vec<String> {
        page["totp_secrets"]
            .as_array()
            .unwrap_or_else(|| panic!("no totp_secrets in {page}"))
            .iter()
            .map(id_of)
            .collect()
    };
    for (query, expected) in [
        ("issuer=GITHUB", vec![&alice, &bob]),
        ("issuer=gitlab", vec![&carol]),
        ("issuer=Git", vec![]),
        ("q=git", vec![&alice, &bob, &carol, &frank]),
        ("q=ALICE", vec![&alice]),
        ("q=%40example", vec![&alice]),
        // LIKE's wildcards and escape are plain characters.
        ("q=_", vec![&carol]),
        ("q=%25", vec![&carol]),
        ("q=0%25", vec![&carol]),
        ("q=%5C", vec![]),
        ("q=a_1", vec![]),
        // Unicode case folding, in the label and in the issuer.
        ("q=%C3%BCN%C3%8F", vec![&eve]),
        ("q=STRA%C3%9FE", vec![&eve]),
        ("q=git+hub", vec![&frank]),
        ("issuer=github&q=BOB", vec![&bob]),
        ("issuer=github&q=dave", vec![]),
        ("q=a", vec![&alice, &carol, &dave, &eve, &frank]),
    ] {
        let whole = api.get(&format!("{SECRETS}?{query}")).await.expect_ok();
        assert!(
            whole.get("next_cursor").is_none(),
            "{query}: a whole list has no cursor"
        );
        let expected = in_list_order(expected.into_iter().cloned().collect());
        assert_eq!(ids(&whole), expected, "{query}");
        // The same filter, page by page.
        let paged = all_pages(&api, 2, &format!("&{query}")).await;
        assert_eq!(paged.concat(), expected, "{query}, paged");
        assert!(
            paged.len() == 1 || paged.iter().all(|p| !p.is_empty()),
            "{query}: {paged:?}"
        );
    }
    // One page of a filter, then the next with the cursor.
    let first = api
        .get(&format!("{SECRETS}?issuer=github&limit=1"))
        .await
        .expect_ok();
    let github = in_list_order(vec![alice, bob]);
    assert_eq!(ids(&first), github[..1]);
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let second = api
        .get(&format!("{SECRETS}?issuer=github&limit=1&cursor={cursor}"))
        .await
        .expect_ok();
    assert_eq!(ids(&second), github[1..]);
    assert_eq!(second["next_cursor"], Value::Null, "the last page");
}

async fn bad_list_parameters_are_refused_by_name(backend: Backend) {
    let app = spawn_app(backend).await;
    let api = app.api();
    for n in 0..3 {
        create(&app, &format!("s{n}"), None).await;
    }
    let first = api.get(&format!("{SECRETS}?limit=1")).await.expect_ok();
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    api.get(&format!("{SECRETS}?limit=1&cursor={cursor}"))
        .await
        .expect_ok();
    // One character changed, anywhere, makes another cursor.
    let mut tampered = Vec::new();
    for at in [0, cursor.len() / 2, cursor.len() - 1] {
        let mut bytes = cursor.clone().into_bytes();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        tampered.push(String::from_utf8(bytes).unwrap());
    }
    // Another account's cursor names no position in this one.
    let stranger = app.create_key("cursor-stranger").await;
    let stranger = app.api_as(&stranger);
    stranger.create_ok(json!({"label": "a"})).await;
    stranger.create_ok(json!({"label": "b"})).await;
    let foreign = stranger
        .get(&format!("{SECRETS}?limit=1"))
        .await
        .expect_ok();
    let foreign = foreign["next_cursor"].as_str().unwrap().to_owned();
    stranger
        .get(&format!("{SECRETS}?limit=1&cursor={foreign}"))
        .await
        .expect_ok();

    let long = "x".repeat(257);
    let mut cases: Vec<(String, &str)> = vec![
        ("limit=0".into(), "limit"),
        ("limit=1001".into(), "limit"),
        ("limit=-1".into(), "limit"),
        ("limit=ten".into(), "limit"),
        ("limit=".into(), "limit"),
        ("limit=1&limit=2".into(), "limit"),
        ("cursor=".into(), "cursor"),
        ("cursor=garbage".into(), "cursor"),
        ("cursor=%FF%FE".into(), "cursor"),
        (format!("cursor={}", "A".repeat(4000)), "cursor"),
        (format!("limit=1&cursor={foreign}"), "cursor"),
        (format!("cursor={cursor}&cursor={cursor}"), "cursor"),
        ("issuer=".into(), "issuer"),
        (format!("issuer={long}"), "issuer"),
        ("q=".into(), "q"),
        (format!("q={long}"), "q"),
    ];
    for t in &tampered {
        cases.push((format!("limit=1&cursor={t}"), "cursor"));
    }
    for (query, field) in cases {
        let reply = api.get(&format!("{SECRETS}?{query}")).await;
        reply.expect_error(400, "invalid_request");
        assert!(
            reply.message().starts_with(field),
            "{query}: {}",
            reply.message()
        );
        assert!(!reply.message().contains("garbage"), "{}", reply.message());
    }
    // Bounds that are allowed, and parameters that are not ours.
    api.get(&format!("{SECRETS}?limit=1000")).await.expect_ok();
    let plain = api.list().await.expect_ok();
    let extra = api
        .get(&format!("{SECRETS}?unknown=1&page=2&sort=desc"))
        .await
        .expect_ok();
    assert_eq!(plain, extra, "unknown parameters are ignored");
}

async fn the_list_without_parameters_keeps_its_shape(backend: Backend) {
    let app = spawn_app(backend).await;
    let api = app.api();
    let created = api
        .create_ok(json!({"label": "shape", "issuer": "Shape"}))
        .await;
    let reply = api.list().await;
    let body = reply.expect_ok();
    let mut keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["status", "totp_secrets"], "{}", reply.text);
    let listed = &body["totp_secrets"][0];
    for field in [
        "id",
        "label",
        "issuer",
        "algorithm",
        "digits",
        "period",
        "created_at",
    ] {
        assert_eq!(listed[field], created[field], "{field}");
    }
    assert!(listed.get("secret").is_none());
    let paged = api.get(&format!("{SECRETS}?limit=10")).await.expect_ok();
    let mut keys: Vec<&String> = paged.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["next_cursor", "status", "totp_secrets"]);
    assert_eq!(paged["totp_secrets"], body["totp_secrets"]);
}

/// A request running in a task of its own, to be answered later.
fn spawn_get(api: &crate::harness::Api, path: String) -> tokio::task::JoinHandle<Value> {
    let api = api.clone();
    tokio::spawn(async move { api.get(&path).await.expect_ok() })
}

/// Waits (bounded) until the clock has `n` sleepers.
async fn until_sleepers(clock: &ManualClock, n: usize) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while clock.sleepers() != n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the clock never had {n} sleepers (has {})",
            clock.sleepers()
        )
    });
}

/// `code.read` events of `id` in the account, newest first.
async fn code_reads(app: &TestApp, id: &str) -> Vec<Value> {
    app.vault.flush_audit().await;
    let events = app
        .api()
        .get(&format!(
            "{AUDIT}?action=code.read&secret_id={id}&limit=1000"
        ))
        .await
        .expect_ok();
    events["events"].as_array().unwrap().clone()
}

async fn min_remaining_waits_for_the_next_period_on_the_clock(backend: Backend) {
    // 25 s into a 30 s period: the current code has 5 s left.
    let period_start: i64 = 1_900_000_020 * 1000;
    let clock = Arc::new(ManualClock::new(UnixTime(period_start + 25_000)));
    // A short request timeout: the requested wait must not count against it.
    let limits = Limits {
        request_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let app = spawn_app_with_clock(backend, limits, clock.clone()).await;
    let api = app.api();
    let id = id_of(
        &api.create_ok(json!({"label": "agent login", "secret": base32_encode(KEY)}))
            .await,
    );
    let at = |ms: i64| u64::try_from(ms / 1000).unwrap();
    let now_code = totp(KEY, Alg::Sha1, 6, 30, at(period_start + 25_000));
    let next_code = totp(KEY, Alg::Sha1, 6, 30, at(period_start + 30_000));
    assert_ne!(now_code, next_code);

    // Enough time left: answered at once with the current code.
    for n in [0, 1, 5] {
        let body = api
            .get(&format!("{}?min_remaining={n}", code_path(&id)))
            .await
            .expect_ok();
        assert_eq!(body["code"], now_code.as_str(), "min_remaining={n}");
        assert_eq!(body["expires_in"], 5);
    }
    assert_eq!(clock.sleepers(), 0, "nobody waited");

    // Not enough: the answer waits for the next period, on the clock only.
    let waiting = spawn_get(&api, format!("{}?min_remaining=6", code_path(&id)));
    until_sleepers(&clock, 1).await;
    clock.advance(4_999);
    // Past the request timeout of real time, still waiting for the clock.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!waiting.is_finished(), "answered before the next period");
    assert_eq!(clock.sleepers(), 1);
    clock.advance(1);
    let body = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("answered once the period began")
        .unwrap();
    assert_eq!(body["code"], next_code.as_str());
    assert_eq!(body["expires_in"], 30);
    assert_eq!(body["expires_at"], "2030-03-17T17:48:00Z");
    assert_eq!(clock.sleepers(), 0);

    // The record is of the code returned: at the time it was computed.
    let reads = code_reads(&app, &id).await;
    assert_eq!(reads.len(), 4, "{reads:?}");
    assert_eq!(reads[0]["outcome"], "ok");
    assert_eq!(
        crate::otp::parse_rfc3339(reads[0]["at"].as_str().unwrap()),
        Some(period_start + 30_000),
        "{}",
        reads[0]
    );

    // min_remaining up to the period; a 60 s secret allows up to 60.
    clock.advance(1_000);
    let full = spawn_get(&api, format!("{}?min_remaining=30", code_path(&id)));
    until_sleepers(&clock, 1).await;
    clock.set(UnixTime(period_start + 60_000));
    let body = tokio::time::timeout(Duration::from_secs(10), full)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(body["expires_in"], 30);
    let long = id_of(
        &api.create_ok(json!({"label": "slow", "secret": base32_encode(KEY), "period": 60}))
            .await,
    );
    let body = api
        .get(&format!("{}?min_remaining=60", code_path(&long)))
        .await
        .expect_ok();
    assert_eq!(body["expires_in"], 60, "on a 60 s boundary");

    for query in [
        "min_remaining=31",
        "min_remaining=86401",
        "min_remaining=-1",
        "min_remaining=1.5",
        "min_remaining=abc",
        "min_remaining=",
        "min_remaining=1&min_remaining=2",
    ] {
        let reply = api.get(&format!("{}?{query}", code_path(&id))).await;
        reply.expect_error(400, "invalid_request");
        assert!(
            reply.message().contains("min_remaining"),
            "{query}: {}",
            reply.message()
        );
    }
    api.get(&format!("{}?min_remaining=61", code_path(&long)))
        .await
        .expect_error(400, "invalid_request");
    api.get(&format!(
        "{}?min_remaining=1",
        code_path(&uuid::Uuid::new_v4().to_string())
    ))
    .await
    .expect_error(404, "not_found");
    // Other parameters are ignored.
    api.get(&format!("{}?other=1", code_path(&id)))
        .await
        .expect_ok();
    assert_eq!(clock.sleepers(), 0);
}

async fn a_client_that_goes_away_ends_the_wait_and_gets_no_code_recorded(backend: Backend) {
    let period_start: i64 = 1_900_000_020 * 1000;
    let clock = Arc::new(ManualClock::new(UnixTime(period_start + 29_000)));
    let app = spawn_app_with_clock(backend, Limits::default(), clock.clone()).await;
    let id = id_of(&app.api().create_ok(json!({"label": "gone"})).await);
    let before = code_reads(&app, &id).await.len();

    let mut stream = tokio::net::TcpStream::connect(&app.addr).await.unwrap();
    let request = format!(
        "GET {}?min_remaining=20 HTTP/1.1\r\nHost: {}\r\nsb-api-key-id: {}\r\n\
         sb-api-secret-key: {}\r\n\r\n",
        code_path(&id),
        app.addr,
        app.key.key_id,
        app.key.secret
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    until_sleepers(&clock, 1).await;
    // Nothing has been answered while the request waits.
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(50), stream.read(&mut byte)).await;
    assert!(early.is_err(), "answered before the next period");
    drop(stream);
    // The server notices, drops the request, and with it the wait.
    until_sleepers(&clock, 0).await;
    // Nothing is left to wake up: the next period gives no code to anyone.
    clock.advance(60_000);
    tokio::task::yield_now().await;
    assert_eq!(
        code_reads(&app, &id).await.len(),
        before,
        "no code.read for a request nobody was answered"
    );
    // And the server still serves a waiting request to its end.
    let waiting = spawn_get(&app.api(), format!("{}?min_remaining=30", code_path(&id)));
    until_sleepers(&clock, 1).await;
    clock.set(UnixTime(period_start + 120_000));
    let body = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(body["expires_in"], 30);
    assert_eq!(code_reads(&app, &id).await.len(), before + 1);
}

/// The real server (its own accept loop, in-flight accounting and drain)
/// also drops a waiting request whose client hung up: a stop right after
/// has nothing in flight to wait for, so it exits at once instead of after
/// the drain timeout (the request timeout and more: over 10 s by default).
#[tokio::test]
async fn the_server_drops_a_waiting_request_whose_client_hung_up() {
    let mut server = TestServer::start(Backend::Sqlite).await;
    // A day-long period: min_remaining of a whole period waits until
    // midnight UTC, far beyond this test.
    let id = id_of(
        &server
            .api()
            .create_ok(json!({"label": "daily", "period": 86400}))
            .await,
    );
    let mut stream = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    let request = format!(
        "GET {}?min_remaining=86400 HTTP/1.1\r\nHost: {}\r\nsb-api-key-id: {}\r\n\
         sb-api-secret-key: {}\r\n\r\n",
        code_path(&id),
        server.addr,
        server.key.key_id,
        server.key.secret
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(500), stream.read(&mut byte)).await;
    assert!(early.is_err(), "answered instead of waiting");
    drop(stream);
    // Let the server see the closed connection.
    server.assert_healthy().await;
    let stopping = std::time::Instant::now();
    assert!(server.kill().success());
    let took = stopping.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the stop waited {took:?} for a request nobody waits for"
    );
}
