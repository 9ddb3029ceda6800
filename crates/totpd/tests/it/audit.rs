//! The audit log, end to end: every operation recorded with its key,
//! secret and origin; `GET /api/v2/audit` filtered and paged; no code
//! without its record (also across `kill -9`); retention; `migrate`
//! carrying the log; `totpd audit --json --follow`.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection as _};
use totpd_vault::{AuditRecord, AuditRow};

use crate::harness::{
    ApiKey, Auth, Backend, Body, Env, Options, TestServer, backend_available, code_path, lines_of,
    on_both_backends, run_totpd, signal, unix_ms,
};

on_both_backends! {
    every_operation_is_recorded_with_its_key_secret_and_origin
        => every_operation_is_recorded_with_its_key_secret_and_origin_on_sqlite,
           every_operation_is_recorded_with_its_key_secret_and_origin_on_postgres;
    the_api_filters_and_pages_the_callers_log_newest_first
        => the_api_filters_and_pages_the_callers_log_newest_first_on_sqlite,
           the_api_filters_and_pages_the_callers_log_newest_first_on_postgres;
    no_code_is_returned_when_its_record_cannot_be_written
        => no_code_is_returned_when_its_record_cannot_be_written_on_sqlite,
           no_code_is_returned_when_its_record_cannot_be_written_on_postgres;
    retention_deletes_events_older_than_the_setting
        => retention_deletes_events_older_than_the_setting_on_sqlite,
           retention_deletes_events_older_than_the_setting_on_postgres;
    migrate_copies_the_audit_log
        => migrate_copies_the_audit_log_on_sqlite,
           migrate_copies_the_audit_log_on_postgres;
    the_cli_prints_the_log_as_json_and_follows_it
        => the_cli_prints_the_log_as_json_and_follows_it_on_sqlite,
           the_cli_prints_the_log_as_json_and_follows_it_on_postgres;
    kill_9_during_a_burst_of_code_reads_loses_no_record_of_a_code_received
        => kill_9_during_a_burst_of_code_reads_loses_no_record_of_a_code_received_on_sqlite,
           kill_9_during_a_burst_of_code_reads_loses_no_record_of_a_code_received_on_postgres;
}

const AUDIT: &str = "/api/v2/audit";
const USER_AGENT: &str = "audit-test/1.0";

/// The key's headers plus a known `User-Agent`.
fn with_agent(key: &ApiKey) -> Auth {
    Auth::Raw(vec![
        ("sb-api-key-id", key.key_id.clone()),
        ("sb-api-secret-key", key.secret.clone()),
        ("user-agent", USER_AGENT.to_owned()),
    ])
}

fn request_id(reply: &crate::harness::Reply) -> String {
    reply
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("every answer has an x-request-id")
        .to_owned()
}

/// Every event the key's account may read, newest first, through the API's
/// cursor.
async fn all_events(server: &TestServer, key: &ApiKey, filter: &str) -> Vec<Value> {
    let api = server.api_as(key);
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("{AUDIT}?limit=1000{filter}");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let page = api.get(&path).await.expect_ok();
        events.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return events,
        }
    }
}

/// Waits (a few seconds at most) until `check` holds of the key's log:
/// records that are not waited for are written a batch later.
async fn eventually(server: &TestServer, key: &ApiKey, check: impl Fn(&[Value]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events = all_events(server, key, "").await;
        if check(&events) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the audit log never got there: {events:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn every_operation_is_recorded_with_its_key_secret_and_origin(backend: Backend) {
    let server = TestServer::start(backend).await;
    let key = server.key.clone();
    let api = server.api_with(with_agent(&key));
    let created = api
        .create_ok(json!({"secret": "JBSWY3DPEHPK3PXP", "label": "a"}))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let code = api.code(&id).await;
    code.expect_ok();
    let code_request = request_id(&code);
    let unknown = uuid::Uuid::new_v4().to_string();
    api.code(&unknown).await.expect_error(404, "not_found");
    api.delete(&id).await.expect_ok();
    // A client that swapped its headers: its secret arrives as the key id.
    let swapped = server.api_with(Auth::Raw(vec![
        ("sb-api-key-id", key.secret.clone()),
        ("sb-api-secret-key", key.key_id.clone()),
    ]));
    swapped.code(&id).await.expect_error(401, "unauthorized");
    // The right key id with a wrong secret.
    let wrong = server.api_with(Auth::Headers(ApiKey {
        key_id: key.key_id.clone(),
        secret: "not-the-secret".to_owned(),
    }));
    wrong.code(&id).await.expect_error(401, "unauthorized");

    eventually(&server, &key, |events| {
        events
            .iter()
            .filter(|e| e["action"] == "auth.failure")
            .count()
            == 1
    })
    .await;
    let events = all_events(&server, &key, "").await;
    let summary: Vec<(String, String)> = events
        .iter()
        .rev()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("key.create", "ok"),
        ("secret.create", "ok"),
        ("code.read", "ok"),
        ("code.read", "invalid"),
        ("secret.delete", "ok"),
        ("auth.failure", "denied"),
    ];
    assert_eq!(
        summary,
        expected.map(|(a, o)| (a.to_owned(), o.to_owned())),
        "{events:#?}"
    );
    let ids: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let read = events
        .iter()
        .find(|e| e["action"] == "code.read" && e["outcome"] == "ok")
        .unwrap();
    assert_eq!(read["key_id"], key.key_id.as_str());
    assert_eq!(read["role"], "owner");
    assert_eq!(read["secret_id"], id.as_str());
    assert_eq!(read["remote_addr"], "127.0.0.1");
    assert_eq!(read["user_agent"], USER_AGENT);
    assert_eq!(read["request_id"], code_request.as_str());
    assert!(read["at"].as_str().unwrap().ends_with('Z'));
    let failure = events
        .iter()
        .find(|e| e["action"] == "auth.failure")
        .unwrap();
    assert_eq!(failure["key_id"], key.key_id.as_str());
    // The swapped request names no key: not in this account's log, and
    // its "key id" (the secret) nowhere in the database.
    let rows = server.env.dump_rows().await.join("\n");
    assert!(
        !rows.contains(&key.secret),
        "a key secret is in the database"
    );
    let all = run_audit_cli(&server.env, &["--action", "auth.failure"]);
    assert_eq!(all.len(), 2, "{all:#?}");
    assert!(
        all.iter()
            .any(|e| e["key_id"].is_null() && e["account_id"].is_null())
    );
}

async fn the_api_filters_and_pages_the_callers_log_newest_first(backend: Backend) {
    let server = TestServer::start(backend).await;
    let key = server.key.clone();
    let api = server.api_as(&key);
    let a = api
        .create_ok(json!({"secret": "JBSWY3DPEHPK3PXP", "label": "a"}))
        .await;
    let b = api
        .create_ok(json!({"secret": "JBSWY3DPEHPK3PXQ", "label": "b"}))
        .await;
    let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let mut a_requests = Vec::new();
    for _ in 0..5 {
        let reply = api.code(a).await;
        reply.expect_ok();
        a_requests.push(request_id(&reply));
    }
    for _ in 0..3 {
        api.code(b).await.expect_ok();
    }
    // Another account's events are not this account's.
    let other = server.env.create_key("other");
    let c = server
        .api_as(&other)
        .create_ok(json!({"secret": "JBSWY3DPEHPK3PXR", "label": "c"}))
        .await;
    server
        .api_as(&other)
        .code(c["id"].as_str().unwrap())
        .await
        .expect_ok();

    let reads_of_a = all_events(&server, &key, &format!("&action=code.read&secret_id={a}")).await;
    let got: Vec<&str> = reads_of_a
        .iter()
        .map(|e| e["request_id"].as_str().unwrap())
        .collect();
    let mut expected: Vec<&str> = a_requests.iter().map(String::as_str).collect();
    expected.reverse();
    assert_eq!(got, expected);

    // Paged two at a time, the cursor walks the same events once each.
    let mut paged = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = api
            .get(&format!("{AUDIT}?limit=2&action=code.read{cursor}"))
            .await
            .expect_ok();
        let events = page["events"].as_array().unwrap();
        assert!(events.len() <= 2);
        paged.extend(events.iter().map(|e| e["id"].as_i64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(paged.len(), 8, "only this account's 8 code reads");
    assert!(paged.windows(2).all(|w| w[0] > w[1]));

    let by_key = all_events(&server, &key, &format!("&key_id={}", key.key_id)).await;
    assert!(by_key.len() >= 10);
    assert!(by_key.iter().all(|e| e["key_id"] == key.key_id.as_str()));
    assert!(
        all_events(&server, &key, &format!("&key_id={}", other.key_id))
            .await
            .is_empty()
    );
    assert!(
        all_events(&server, &key, "&since=2100-01-01T00:00:00Z")
            .await
            .is_empty()
    );
    assert!(
        all_events(&server, &key, "&until=2000-01-01T00:00:00Z")
            .await
            .is_empty()
    );
    assert_eq!(
        all_events(
            &server,
            &key,
            "&since=2000-01-01T00:00:00%2B02:00&action=code.read"
        )
        .await
        .len(),
        8
    );

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("cursor=x", "cursor"),
        ("action=code.steal", "action"),
        ("secret_id=42", "secret_id"),
        ("since=yesterday", "since"),
        ("until=2026-02-30T00:00:00Z", "until"),
    ] {
        let reply = api.get(&format!("{AUDIT}?{query}")).await;
        reply.expect_error(400, "invalid_request");
        assert!(
            reply.message().starts_with(field),
            "{query}: {}",
            reply.message()
        );
    }
    server
        .api_with(Auth::None)
        .get(AUDIT)
        .await
        .expect_error(401, "unauthorized");
}

/// Makes every insert into `audit_events` fail (`on`) or work again.
async fn refuse_audit_inserts(env: &Env, on: bool) {
    match env.backend {
        Backend::Sqlite => {
            let conn = rusqlite::Connection::open(env.sqlite_file()).unwrap();
            conn.busy_timeout(Duration::from_secs(10)).unwrap();
            let sql = if on {
                "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events \
                 BEGIN SELECT RAISE(ABORT, 'the audit log refuses writes'); END;"
            } else {
                "DROP TRIGGER refuse_audit;"
            };
            conn.execute_batch(sql).unwrap();
        }
        Backend::Postgres => {
            let url = env.database_url().unwrap();
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            let sql = if on {
                "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'the audit log refuses writes'; END $$; \
                 CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events \
                 FOR EACH ROW EXECUTE FUNCTION refuse_audit();"
            } else {
                "DROP TRIGGER refuse_audit ON audit_events; DROP FUNCTION refuse_audit();"
            };
            sqlx::raw_sql(AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .unwrap();
            let _ = conn.close().await;
        }
    }
}

async fn no_code_is_returned_when_its_record_cannot_be_written(backend: Backend) {
    let server = TestServer::start(backend).await;
    let api = server.api();
    let created = api
        .create_ok(json!({"secret": "JBSWY3DPEHPK3PXP", "label": "a"}))
        .await;
    let id = created["id"].as_str().unwrap();
    refuse_audit_inserts(&server.env, true).await;
    for _ in 0..3 {
        let reply = api.code(id).await;
        let body = reply.expect_error(503, "unavailable");
        assert!(body.get("code").is_none(), "{}", reply.text);
        assert!(
            !reply.text.chars().any(|c| c.is_ascii_digit()),
            "a 503 with digits in it: {}",
            reply.text
        );
    }
    refuse_audit_inserts(&server.env, false).await;
    let reply = api.code(id).await;
    reply.expect_ok();
    let reads = all_events(&server, &server.key, "&action=code.read").await;
    assert_eq!(reads.len(), 1, "{reads:#?}");
    assert_eq!(reads[0]["request_id"], request_id(&reply).as_str());
    assert!(server.log().contains("audit events could not be written"));
}

/// The store of `env`'s database, opened as the binary opens it.
async fn store_of(env: &Env) -> Arc<dyn totpd_vault::Store> {
    let url = match env.database_url() {
        Some(url) => url.to_owned(),
        None => format!("sqlite://{}", env.sqlite_file().display()),
    };
    totpd_store::connect(&url, &totpd_store::ConnectOptions::default())
        .await
        .unwrap()
}

fn old_event(at: i64, request: &str) -> AuditRecord {
    AuditRecord {
        at,
        account_id: None,
        action: "auth.failure".to_owned(),
        outcome: "denied".to_owned(),
        key_id: None,
        role: None,
        secret_id: None,
        remote_addr: None,
        user_agent: None,
        request_id: Some(request.to_owned()),
    }
}

async fn retention_deletes_events_older_than_the_setting(backend: Backend) {
    const DAY: i64 = 86_400_000;
    let env = Env::new(backend).await;
    // An out-of-range setting is refused before anything is opened.
    let refused = crate::harness::Starting::spawn(
        &env,
        Options {
            env: vec![("TOTPD_AUDIT_RETENTION".to_owned(), "0".to_owned())],
            ..Options::default()
        },
    )
    .refused();
    assert!(!refused.status.success());
    assert!(
        refused.stderr.contains("audit-retention"),
        "{}",
        refused.stderr
    );

    let mut server = TestServer::start_in(
        &env,
        Options {
            env: vec![("TOTPD_AUDIT_RETENTION".to_owned(), "30".to_owned())],
            ..Options::default()
        },
    );
    let store = store_of(&env).await;
    let now = unix_ms();
    let old: Vec<AuditRecord> = (0..2500)
        .map(|i| old_event(now - 31 * DAY - i, "old"))
        .collect();
    store.append_audit(&old).await.unwrap();
    store
        .append_audit(&[old_event(now - 29 * DAY, "recent")])
        .await
        .unwrap();
    drop(store);
    // Pruning runs at start (then hourly).
    assert!(server.kill().success());
    server.restart_with(Options {
        env: vec![("TOTPD_AUDIT_RETENTION".to_owned(), "30".to_owned())],
        ..Options::default()
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left: Vec<String> =
            run_audit_cli(&env, &["--action", "auth.failure", "--limit", "1000"])
                .iter()
                .map(|e| e["request_id"].as_str().unwrap_or_default().to_owned())
                .collect();
        if left == ["recent"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "old events still there: {} left",
            left.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        server
            .log()
            .contains("deleted audit events past the retention")
    );
}

async fn migrate_copies_the_audit_log(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    let api = server.api();
    let created = api
        .create_ok(json!({"secret": "JBSWY3DPEHPK3PXP", "label": "a"}))
        .await;
    for _ in 0..3 {
        api.code(created["id"].as_str().unwrap()).await.expect_ok();
    }
    assert!(server.kill().success());
    // Across backends where PostgreSQL is at hand.
    let target_backend = match backend {
        Backend::Postgres => Backend::Sqlite,
        Backend::Sqlite if backend_available(Backend::Postgres, "migrate_copies_the_audit_log") => {
            Backend::Postgres
        }
        Backend::Sqlite => Backend::Sqlite,
    };
    let target = Env::new(target_backend).await;
    let url = |env: &Env| match env.database_url() {
        Some(url) => url.to_owned(),
        None => format!("sqlite://{}", env.sqlite_file().display()),
    };
    let out = run_totpd(&[
        "migrate",
        "--from",
        &url(&server.env),
        "--to",
        &url(&target),
    ]);
    assert!(out.status.success(), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("5 audit events"), "{}", out.stdout);
    let rows = |env: Env| async move {
        let store = store_of(&env).await;
        let mut snapshot = store.snapshot().await.unwrap();
        snapshot.audit_events(None, 1000).await.unwrap()
    };
    let source: Vec<AuditRow> = rows(server.env.clone()).await;
    let copied: Vec<AuditRow> = rows(target.clone()).await;
    assert_eq!(source.len(), 5);
    assert_eq!(copied, source);
}

/// `totpd audit --json ARGS` on `env`'s database, one object per line.
fn run_audit_cli(env: &Env, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["audit", "--json"];
    all.extend_from_slice(args);
    env.run_ok(&all)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect()
}

async fn the_cli_prints_the_log_as_json_and_follows_it(backend: Backend) {
    let server = TestServer::start(backend).await;
    let api = server.api();
    let created = api
        .create_ok(json!({"secret": "JBSWY3DPEHPK3PXP", "label": "a"}))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let printed = run_audit_cli(&server.env, &[]);
    let actions: Vec<&str> = printed
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["key.create", "secret.create"], "oldest first");
    assert_eq!(printed[1]["secret_id"], id.as_str());
    // The log holds nothing sealed: reading it needs no (right) master key.
    let other_key = server
        .env
        .with_master_key(Some(crate::harness::random_master_key()));
    assert_eq!(run_audit_cli(&other_key, &[]), printed);
    assert_eq!(
        run_audit_cli(&server.env, &["--account", "default", "--limit", "1"]).len(),
        1
    );
    let text = server.env.run_ok(&["audit", "--secret", &id]);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("secret.create ok"), "{text}");

    let mut follow = server
        .env
        .command(&["audit", "--follow", "--json", "--action", "code.read"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let seen = lines_of(follow.stdout.take().unwrap());
    // Let it print its (empty) first page, then read codes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut expected = BTreeSet::new();
    for _ in 0..3 {
        let reply = api.code(&id).await;
        reply.expect_ok();
        expected.insert(request_id(&reply));
    }
    let mut got = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while got.len() < expected.len() && Instant::now() < deadline {
        if let Ok(line) = seen.recv_timeout(Duration::from_millis(200)) {
            let event: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(event["action"], "code.read");
            assert!(got.insert(event["request_id"].as_str().unwrap().to_owned()));
        }
    }
    assert_eq!(got, expected);
    signal(follow.id(), "TERM");
    let status = follow.wait().unwrap();
    assert!(status.success(), "--follow after SIGTERM: {status}");
    // Nothing was printed twice.
    assert!(seen.recv_timeout(Duration::from_millis(100)).is_err());
}

async fn kill_9_during_a_burst_of_code_reads_loses_no_record_of_a_code_received(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    let api = server.api().with_timeout(Duration::from_secs(5));
    let created = api
        .create_ok(json!({"secret": "JBSWY3DPEHPK3PXP", "label": "a"}))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let received = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..16)
        .map(|_| {
            let (api, id, received, stop) = (
                api.clone(),
                id.clone(),
                Arc::clone(&received),
                Arc::clone(&stop),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(reply) = api
                        .try_request(Method::GET, &code_path(&id), Body::None)
                        .await
                    else {
                        return;
                    };
                    if reply.status == 200 && reply.json()["code"].is_string() {
                        received.lock().unwrap().push(request_id(&reply));
                    }
                }
            })
        })
        .collect();
    // Kill in the middle of the burst.
    let deadline = Instant::now() + Duration::from_secs(30);
    while received.lock().unwrap().len() < 300 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.await.unwrap();
    }
    let received = received.lock().unwrap().clone();
    assert!(
        received.len() >= 100,
        "only {} codes before the kill",
        received.len()
    );
    server.restart();
    let recorded: BTreeSet<String> = all_events(&server, &server.key, "&action=code.read")
        .await
        .iter()
        .filter(|e| e["outcome"] == "ok" && e["secret_id"] == id.as_str())
        .map(|e| e["request_id"].as_str().unwrap().to_owned())
        .collect();
    let missing: Vec<&String> = received.iter().filter(|r| !recorded.contains(*r)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} codes received have no code.read record, e.g. {:?}",
        missing.len(),
        received.len(),
        missing.first()
    );
}
