//! The CLI contract (DESIGN §5): `keys create|list|revoke`, the bootstrap
//! key, `--no-bootstrap`, signals, and `--help`.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::{
    ApiKey, Backend, Body, Env, Options, SECRETS, Starting, TestServer, on_both_backends, signal,
};

on_both_backends! {
    keys_create_json_prints_exactly_one_object_with_the_contract_fields_while_serve_runs
        => keys_create_json_prints_exactly_one_object_with_the_contract_fields_while_serve_runs_on_sqlite,
           keys_create_json_prints_exactly_one_object_with_the_contract_fields_while_serve_runs_on_postgres;
    keys_list_shows_every_key_without_its_secret_and_revoke_marks_it_revoked
        => keys_list_shows_every_key_without_its_secret_and_revoke_marks_it_revoked_on_sqlite,
           keys_list_shows_every_key_without_its_secret_and_revoke_marks_it_revoked_on_postgres;
    the_bootstrap_key_is_printed_once_on_first_start_and_never_again
        => the_bootstrap_key_is_printed_once_on_first_start_and_never_again_on_sqlite,
           the_bootstrap_key_is_printed_once_on_first_start_and_never_again_on_postgres;
    no_bootstrap_starts_without_printing_or_creating_a_key
        => no_bootstrap_starts_without_printing_or_creating_a_key_on_sqlite,
           no_bootstrap_starts_without_printing_or_creating_a_key_on_postgres;
    sigterm_and_sigint_stop_the_server_with_exit_code_0
        => sigterm_and_sigint_stop_the_server_with_exit_code_0_on_sqlite,
           sigterm_and_sigint_stop_the_server_with_exit_code_0_on_postgres;
    requests_answered_during_shutdown_are_complete_and_durable
        => requests_answered_during_shutdown_are_complete_and_durable_on_sqlite,
           requests_answered_during_shutdown_are_complete_and_durable_on_postgres;
}

/// Parses `keys create --json` output: exactly one JSON object, nothing else.
fn one_json_object(stdout: &str) -> serde_json::Map<String, Value> {
    let values: Vec<Value> = serde_json::Deserializer::from_str(stdout)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("keys create --json printed something that is not JSON ({e})"));
    assert_eq!(
        values.len(),
        1,
        "keys create --json printed {} JSON values",
        values.len()
    );
    values[0]
        .as_object()
        .cloned()
        .unwrap_or_else(|| panic!("keys create --json printed a JSON value that is not an object"))
}

fn key_of(object: &serde_json::Map<String, Value>) -> ApiKey {
    ApiKey {
        key_id: object["key_id"].as_str().unwrap().to_owned(),
        secret: object["secret"].as_str().unwrap().to_owned(),
    }
}

async fn keys_create_json_prints_exactly_one_object_with_the_contract_fields_while_serve_runs(
    backend: Backend,
) {
    let mut server = TestServer::start(backend).await;
    let out = server
        .env
        .run(&["keys", "create", "--account", "agents", "--json"]);
    assert!(out.status.success(), "keys create: {}", out.stderr);
    let object = one_json_object(&out.stdout);
    let mut fields: Vec<&str> = object.keys().map(String::as_str).collect();
    fields.sort_unstable();
    // DESIGN §5's four fields, and §2.3's role, name, scope and expiry.
    assert_eq!(
        fields,
        [
            "account",
            "account_id",
            "expires_at",
            "key_id",
            "name",
            "role",
            "secret",
            "secret_ids"
        ]
    );
    assert_eq!(object["account"], "agents");
    assert_eq!(object["role"], "owner");
    assert_eq!(object["secret_ids"], Value::Null);
    assert_eq!(object["expires_at"], Value::Null);
    let account_id = object["account_id"]
        .as_str()
        .expect("account_id is a string");
    Uuid::parse_str(account_id).expect("account_id is a UUID");
    let first = key_of(&object);
    assert!(!first.key_id.is_empty());
    assert!(
        first.secret.len() >= 43,
        "a 256-bit secret takes at least 43 characters, not {}",
        first.secret.len()
    );
    assert!(
        !first.key_id.contains(&first.secret),
        "the key id must not carry the secret"
    );

    // The running server accepts it at once, as a new, empty account.
    let agents = server.api_as(&first);
    assert!(agents.list_ok().await.is_empty());
    let created = agents.create_ok(json!({"label": "agents' secret"})).await;

    // A second key of the same account: same account, new key, same secrets.
    let again =
        one_json_object(
            &server
                .env
                .run_ok(&["keys", "create", "--account", "agents", "--json"]),
        );
    assert_eq!(again["account_id"], object["account_id"]);
    let second = key_of(&again);
    assert_ne!(second.key_id, first.key_id);
    assert_ne!(second.secret, first.secret);
    assert_eq!(
        server.api_as(&second).listed_ids().await,
        vec![created["id"].as_str().unwrap().to_owned()]
    );

    // And with serve stopped.
    assert!(server.kill().success());
    let offline = key_of(&one_json_object(&server.env.run_ok(&[
        "keys",
        "create",
        "--account",
        "offline",
        "--json",
    ])));
    server.restart_with(Options::default());
    assert!(server.api_as(&offline).list_ok().await.is_empty());
    assert_eq!(server.api_as(&first).listed_ids().await.len(), 1);
}

fn line_of<'a>(listing: &'a str, key_id: &str) -> &'a str {
    listing
        .lines()
        .find(|l| l.contains(key_id))
        .unwrap_or_else(|| panic!("keys list does not show {key_id}:\n{listing}"))
}

async fn keys_list_shows_every_key_without_its_secret_and_revoke_marks_it_revoked(
    backend: Backend,
) {
    let server = TestServer::start(backend).await;
    let alpha = server.env.create_key("alpha");
    let beta = server.env.create_key("beta");
    let listing = server.env.run_ok(&["keys", "list"]);
    for (key, account) in [(&server.key, "default"), (&alpha, "alpha"), (&beta, "beta")] {
        let line = line_of(&listing, &key.key_id);
        assert!(
            line.contains(account),
            "{line:?} does not name account {account}"
        );
        assert!(!line.to_lowercase().contains("revoked"), "{line:?}");
        assert!(!listing.contains(&key.secret), "keys list shows a secret");
    }

    let revoke = server.env.run(&["keys", "revoke", &alpha.key_id]);
    assert!(revoke.status.success(), "keys revoke: {}", revoke.stderr);
    assert!(!revoke.stdout.contains(&alpha.secret));
    let listing = server.env.run_ok(&["keys", "list"]);
    assert!(
        line_of(&listing, &alpha.key_id)
            .to_lowercase()
            .contains("revoked"),
        "a revoked key is listed as revoked:\n{listing}"
    );
    assert!(
        !line_of(&listing, &beta.key_id)
            .to_lowercase()
            .contains("revoked")
    );
    server
        .api_as(&alpha)
        .list()
        .await
        .expect_error(401, "unauthorized");
    server.api_as(&beta).list_ok().await;

    // Revoking what does not exist is an error, and changes nothing.
    for unknown in ["tk_000000000000000000000000", "nonsense", ""] {
        let out = server.env.run(&["keys", "revoke", unknown]);
        assert!(!out.status.success(), "keys revoke {unknown:?} succeeded");
        assert!(
            !out.stderr.trim().is_empty(),
            "keys revoke {unknown:?} failed silently"
        );
    }
    server.api_as(&beta).list_ok().await;
    server.api().list_ok().await;
}

/// Index of the first line containing `needle`.
fn position(lines: &[String], needle: &str) -> Option<usize> {
    lines.iter().position(|l| l.contains(needle))
}

async fn the_bootstrap_key_is_printed_once_on_first_start_and_never_again(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    let bootstrap = server
        .bootstrap
        .clone()
        .expect("the first start prints a bootstrap key (\"key id:\" / \"key secret:\" lines)");
    let first = server.run_stdout();
    let printed_at = position(&first, &bootstrap.secret).unwrap();
    let listening_at = position(&first, "listening on").unwrap();
    assert!(
        printed_at < listening_at,
        "the bootstrap key comes before the listening line"
    );
    assert!(
        server
            .run_stdout()
            .iter()
            .any(|l| l.contains(&bootstrap.key_id)),
        "the key id is printed with the secret"
    );
    // It is an owner key of the `default` account.
    let api = server.api_as(&bootstrap);
    let created = api.create_ok(json!({"label": "bootstrap works"})).await;
    api.code(created["id"].as_str().unwrap()).await.expect_ok();
    let listing = server.env.run_ok(&["keys", "list"]);
    assert!(line_of(&listing, &bootstrap.key_id).contains("default"));

    for _ in 0..2 {
        server.restart();
        let again = server.run_stdout();
        assert!(
            position(&again, "listening on").is_some(),
            "restart printed {again:?}"
        );
        assert!(
            again
                .iter()
                .all(|l| !l.contains(&bootstrap.secret) && !l.to_lowercase().contains("secret")),
            "a restart printed a key again: {again:?}"
        );
        server.api_as(&bootstrap).list_ok().await;
    }
    // Only the one key exists.
    let listing = server.env.run_ok(&["keys", "list"]);
    assert_eq!(
        listing.matches("default").count(),
        1,
        "exactly one key for account default:\n{listing}"
    );
}

async fn no_bootstrap_starts_without_printing_or_creating_a_key(backend: Backend) {
    let env = Env::new(backend).await;
    let options = Options {
        no_bootstrap: true,
        ..Options::keyless()
    };
    let mut server = Starting::spawn(&env, options).ready();
    assert!(server.bootstrap.is_none(), "--no-bootstrap printed a key");
    let stdout = server.run_stdout();
    assert!(
        stdout.iter().all(|l| !l.to_lowercase().contains("secret")),
        "--no-bootstrap printed {stdout:?}"
    );
    let listing = env.run_ok(&["keys", "list"]);
    assert!(
        !listing.contains("default") && !listing.contains("tk_"),
        "--no-bootstrap created a key:\n{listing}"
    );
    server.assert_healthy().await;
    // The operator makes keys with the CLI instead.
    let key = env.create_key("ops");
    server.api_as(&key).list_ok().await;
}

async fn sigterm_and_sigint_stop_the_server_with_exit_code_0(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    server
        .api()
        .create_ok(json!({"label": "before TERM"}))
        .await;
    let status = server.kill();
    assert_eq!(status.code(), Some(0), "SIGTERM: {status}");
    assert!(
        reqwest::Client::new()
            .get(server.url("/healthz"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_err(),
        "the port still answers after the exit"
    );
    server.restart_with(Options::default());
    assert_eq!(server.api().list_ok().await.len(), 1);
    let status = server.stop_with("INT");
    assert_eq!(status.code(), Some(0), "SIGINT: {status}");
}

async fn requests_answered_during_shutdown_are_complete_and_durable(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    let api = server.api();
    let mut tasks = Vec::new();
    for i in 0..24 {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(i * 2)).await;
            api.try_request(
                Method::POST,
                SECRETS,
                Body::Json(json!({"label": format!("in flight {i}")})),
            )
            .await
        }));
    }
    tokio::time::sleep(Duration::from_millis(15)).await;
    let pid = server.pid();
    tokio::task::spawn_blocking(move || signal(pid, "TERM"))
        .await
        .unwrap();
    let mut answered = Vec::new();
    for task in tasks {
        // No answer (the listener was already closed) is fine; a broken or
        // failed answer is not.
        if let Ok(reply) = task.await.unwrap() {
            let body = reply.expect_ok();
            answered.push(body["totp_secret"]["id"].as_str().unwrap().to_owned());
        }
    }
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(0), "SIGTERM under load: {status}");
    server.restart_with(Options::default());
    let listed = server.api().listed_ids().await;
    for id in &answered {
        assert!(
            listed.contains(id),
            "an answered create was lost in the shutdown"
        );
    }
}

#[test]
fn help_describes_every_flag_and_environment_variable() {
    let help = |args: &[&str]| {
        let out = std::process::Command::new(crate::harness::BIN)
            .args(args)
            .output()
            .expect("run totpd --help");
        assert!(out.status.success(), "totpd {args:?} failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let store = [
        "--data-dir",
        "--database",
        "TOTPD_DATA_DIR",
        "TOTPD_DATABASE_URL",
        "TOTPD_MASTER_KEY",
    ];
    let top = help(&["--help"]);
    for word in ["serve", "keys"] {
        assert!(top.contains(word), "totpd --help lacks {word}");
    }
    let serve = help(&["serve", "--help"]);
    for word in store
        .iter()
        .chain(&["--listen", "--no-bootstrap", "TOTPD_LISTEN"])
    {
        assert!(serve.contains(word), "totpd serve --help lacks {word}");
    }
    let create = help(&["keys", "create", "--help"]);
    for word in store.iter().chain(&["--account", "--json"]) {
        assert!(
            create.contains(word),
            "totpd keys create --help lacks {word}"
        );
    }
    let import = help(&["import", "--help"]);
    for word in store.iter().chain(&[
        "--account",
        "--format",
        "--password-file",
        "--dry-run",
        "--atomic",
        "--json",
    ]) {
        assert!(import.contains(word), "totpd import --help lacks {word}");
    }
    for sub in ["list", "revoke"] {
        let text = help(&["keys", sub, "--help"]);
        for word in store {
            assert!(text.contains(word), "totpd keys {sub} --help lacks {word}");
        }
    }
}
