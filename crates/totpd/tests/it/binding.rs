//! What a database writer cannot do: move an API key to another account or
//! change its role, scope or expiry (the keyed hash covers them), or change the OTP
//! parameters of a secret (the ciphertext's associated data covers them).
//! And what earlier versions wrote keeps working: a data directory made by
//! the schema-1 release (`tests/fixtures/v1-data`) still authenticates,
//! upgrades its keys on first use and yields the right codes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection as _};

use crate::harness::{
    ApiKey, Backend, Env, Known, Options, TestServer, assert_code, on_both_backends,
    on_postgres_only, run_totpd,
};
use crate::otp::{Alg, base32_encode};

on_both_backends! {
    a_key_moved_to_another_account_is_unauthorized_and_reveals_nothing
        => a_key_moved_to_another_account_is_unauthorized_and_reveals_nothing_on_sqlite,
           a_key_moved_to_another_account_is_unauthorized_and_reveals_nothing_on_postgres;
    a_key_whose_role_was_changed_is_unauthorized
        => a_key_whose_role_was_changed_is_unauthorized_on_sqlite,
           a_key_whose_role_was_changed_is_unauthorized_on_postgres;
    a_secret_whose_otp_parameters_were_changed_yields_no_code
        => a_secret_whose_otp_parameters_were_changed_yields_no_code_on_sqlite,
           a_secret_whose_otp_parameters_were_changed_yields_no_code_on_postgres;
    a_key_whose_scope_or_expiry_was_changed_is_unauthorized
        => a_key_whose_scope_or_expiry_was_changed_is_unauthorized_on_sqlite,
           a_key_whose_scope_or_expiry_was_changed_is_unauthorized_on_postgres;
}

on_postgres_only! {
    a_previous_version_database_migrated_to_postgresql_keeps_its_keys_and_codes
        => a_previous_version_database_migrated_to_postgresql_keeps_its_keys_and_codes_on_postgres;
}

/// Longer than the key cache's lifetime (500 ms), so a running server reads
/// a changed row again.
const PAST_KEY_CACHE: Duration = Duration::from_millis(1100);

/// Runs `sql` on the test's own database, as a database writer would.
async fn write_database(env: &Env, sql: &str) {
    match (env.backend, env.database_url()) {
        (Backend::Postgres, Some(url)) => {
            let mut conn = sqlx::PgConnection::connect(url)
                .await
                .unwrap_or_else(|e| panic!("connect to the test database: {e}"));
            let done = sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            assert!(done.rows_affected() > 0, "{sql} changed no row");
            let _ = conn.close().await;
        }
        _ => {
            let conn = rusqlite::Connection::open(env.sqlite_file()).expect("open the database");
            conn.busy_timeout(Duration::from_secs(10)).unwrap();
            let changed = conn
                .execute(sql, [])
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            assert!(changed > 0, "{sql} changed no row");
        }
    }
}

/// One integer of the test's own database.
async fn read_integer(env: &Env, sql: &str) -> i64 {
    match (env.backend, env.database_url()) {
        (Backend::Postgres, Some(url)) => {
            let mut conn = sqlx::PgConnection::connect(url)
                .await
                .unwrap_or_else(|e| panic!("connect to the test database: {e}"));
            let value: i64 = sqlx::query_scalar(AssertSqlSafe(sql.to_owned()))
                .fetch_one(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            let _ = conn.close().await;
            value
        }
        _ => {
            let conn = rusqlite::Connection::open(env.sqlite_file()).expect("open the database");
            conn.query_row(sql, [], |row| row.get(0))
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
        }
    }
}

async fn a_key_moved_to_another_account_is_unauthorized_and_reveals_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let env = &server.env;
    let attacker = env.create_key("attacker");
    let victim = env.create_key("victim");
    let victim_api = server.api_as(&victim);
    let victims = victim_api
        .create_ok(json!({"label": "victim@example.com", "issuer": "VictimCorp"}))
        .await;
    let victim_secret = victims["id"].as_str().unwrap().to_owned();
    let attacker_api = server.api_as(&attacker);
    assert!(attacker_api.listed_ids().await.is_empty());

    write_database(
        env,
        &format!(
            "UPDATE api_keys SET account_id = \
             (SELECT id FROM accounts WHERE name = 'victim') WHERE key_id = '{}'",
            attacker.key_id
        ),
    )
    .await;
    tokio::time::sleep(PAST_KEY_CACHE).await;

    for reply in [
        attacker_api.list().await,
        attacker_api.code(&victim_secret).await,
        attacker_api.delete(&victim_secret).await,
        attacker_api.create(json!({"label": "planted"})).await,
    ] {
        reply.expect_error(401, "unauthorized");
        for revealing in [victim_secret.as_str(), "victim@example.com", "VictimCorp"] {
            assert!(
                !reply.text.contains(revealing),
                "a 401 reveals the victim's data"
            );
        }
    }
    // The victim's own key is untouched and still sees exactly its secret.
    assert_eq!(victim_api.listed_ids().await, [victim_secret.as_str()]);
    victim_api.code(&victim_secret).await.expect_ok();
    // Nothing was planted or deleted through the moved key.
    server.api().list_ok().await;
}

async fn a_key_whose_role_was_changed_is_unauthorized(backend: Backend) {
    let server = TestServer::start(backend).await;
    let env = &server.env;
    let changed = env.create_key("team");
    let untouched = env.create_key("team");
    let api = server.api_as(&changed);
    let created = api.create_ok(json!({"label": "role check"})).await;
    let id = created["id"].as_str().unwrap().to_owned();

    write_database(
        env,
        &format!(
            "UPDATE api_keys SET role = 'agent' WHERE key_id = '{}'",
            changed.key_id
        ),
    )
    .await;
    tokio::time::sleep(PAST_KEY_CACHE).await;

    api.list().await.expect_error(401, "unauthorized");
    api.code(&id).await.expect_error(401, "unauthorized");
    let other = server.api_as(&untouched);
    assert_eq!(other.listed_ids().await, [id.as_str()]);
    other.code(&id).await.expect_ok();
}

/// Widening a scope, removing it, or moving an expiry: each edit of a key
/// row makes that key authenticate as nothing, while its neighbours work.
async fn a_key_whose_scope_or_expiry_was_changed_is_unauthorized(backend: Backend) {
    let server = TestServer::start(backend).await;
    let env = &server.env;
    let mine = server.api().create_ok(json!({"label": "mine"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = server.api().create_ok(json!({"label": "other"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let expiring = (crate::harness::unix_ms() + 3_600_000).to_string();
    let edits = [
        ("widened scope", format!("secret_ids = '{mine},{other}'")),
        ("scope removed", "secret_ids = NULL".to_owned()),
        ("scope emptied", "secret_ids = ''".to_owned()),
        ("expiry removed", "expires_at = NULL".to_owned()),
        ("expiry moved", format!("expires_at = {expiring}0")),
    ];
    let mut keys = Vec::new();
    for (what, _) in &edits {
        let out = env.run_ok(&[
            "keys",
            "create",
            "--account",
            "default",
            "--role",
            "agent",
            "--secret",
            &mine,
            "--expires-in",
            "1h",
            "--name",
            what,
            "--json",
        ]);
        let object: Value = serde_json::from_str(out.trim()).unwrap();
        let key = ApiKey {
            key_id: object["key_id"].as_str().unwrap().to_owned(),
            secret: object["secret"].as_str().unwrap().to_owned(),
        };
        server.api_as(&key).code(&mine).await.expect_ok();
        keys.push(key);
    }
    let untouched = env.run_ok(&[
        "keys",
        "create",
        "--account",
        "default",
        "--role",
        "agent",
        "--secret",
        &mine,
        "--expires-in",
        "1h",
        "--json",
    ]);
    let untouched: Value = serde_json::from_str(untouched.trim()).unwrap();
    let untouched = ApiKey {
        key_id: untouched["key_id"].as_str().unwrap().to_owned(),
        secret: untouched["secret"].as_str().unwrap().to_owned(),
    };
    for ((_, set), key) in edits.iter().zip(&keys) {
        write_database(
            env,
            &format!("UPDATE api_keys SET {set} WHERE key_id = '{}'", key.key_id),
        )
        .await;
    }
    tokio::time::sleep(PAST_KEY_CACHE).await;
    for ((what, _), key) in edits.iter().zip(&keys) {
        let api = server.api_as(key);
        for reply in [
            api.list().await,
            api.code(&other).await,
            api.code(&mine).await,
        ] {
            assert_eq!(reply.status, 401, "{what}: {}", reply.text);
            reply.expect_error(401, "unauthorized");
        }
    }
    let api = server.api_as(&untouched);
    assert_eq!(api.listed_ids().await, [mine.as_str()]);
    api.code(&other).await.expect_error(404, "not_found");
}

async fn a_secret_whose_otp_parameters_were_changed_yields_no_code(backend: Backend) {
    let server = TestServer::start(backend).await;
    let env = &server.env;
    let api = server.api();
    let secret = base32_encode(&crate::harness::random_bytes(20));
    let untouched = api
        .create_ok(json!({"label": "untouched", "secret": secret}))
        .await;
    let untouched = untouched["id"].as_str().unwrap().to_owned();
    let changes = [
        ("digits", "digits = 8"),
        ("algorithm", "algorithm = 'SHA256'"),
        ("period", "period = 60"),
        ("all three", "digits = 8, algorithm = 'SHA512', period = 45"),
    ];
    let mut tampered = Vec::new();
    for (what, assignment) in changes {
        let created = api
            .create_ok(json!({"label": format!("tampered {what}"), "secret": secret}))
            .await;
        let id = created["id"].as_str().unwrap().to_owned();
        api.code(&id).await.expect_ok();
        let uuid_literal = match backend {
            Backend::Sqlite => format!("X'{}'", id.replace('-', "")),
            Backend::Postgres => format!("'{id}'"),
        };
        write_database(
            env,
            &format!("UPDATE secrets SET {assignment} WHERE id = {uuid_literal}"),
        )
        .await;
        tampered.push((what, id));
    }

    for (what, id) in &tampered {
        let reply = api.code(id).await;
        assert_eq!(
            reply.status, 500,
            "{what}: a changed row must yield no code"
        );
        let body = reply.expect_error(500, "internal");
        assert!(body.get("code").is_none(), "{what}: {body}");
    }
    // The list still answers, and still shows the changed rows as stored
    // (listing never opens ciphertexts), so an operator can find and
    // delete them.
    let listed = api.list_ok().await;
    assert_eq!(listed.len(), 1 + tampered.len());
    let digits_row = listed
        .iter()
        .find(|s| s["id"] == json!(tampered[0].1))
        .expect("the changed row is listed");
    assert_eq!(digits_row["digits"], json!(8));
    // An untouched secret keeps its code; a changed one can be deleted.
    api.code(&untouched).await.expect_ok();
    api.delete(&tampered[0].1).await.expect_ok();

    let log = server.log();
    for (what, id) in &tampered {
        assert!(
            log.lines()
                .any(|l| l.contains(id.as_str()) && l.contains("corrupt")),
            "{what}: the failed open is not logged as corrupt"
        );
    }
    assert!(
        !log.contains(&secret) && !log.contains(&secret.to_lowercase()),
        "the log holds the secret"
    );
}

// ---------------------------------------------------------------------------
// A database made by the previous version

/// The fixture's data directory and its description.
fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1-data")
}

struct Fixture {
    keys: Vec<(String, ApiKey)>,
    /// Account, secret id and what the secret must yield.
    secrets: Vec<(String, String, Known)>,
}

fn fixture() -> Fixture {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1-data.json");
    let text = std::fs::read_to_string(&path).expect("the fixture's description");
    let value: Value = serde_json::from_str(&text).expect("the fixture's description is JSON");
    let keys = value["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["account"].as_str().unwrap().to_owned(),
                ApiKey {
                    key_id: k["key_id"].as_str().unwrap().to_owned(),
                    secret: k["secret"].as_str().unwrap().to_owned(),
                },
            )
        })
        .collect();
    let secrets = value["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let alg = match s["algorithm"].as_str().unwrap() {
                "SHA1" => Alg::Sha1,
                "SHA256" => Alg::Sha256,
                _ => Alg::Sha512,
            };
            (
                s["account"].as_str().unwrap().to_owned(),
                s["id"].as_str().unwrap().to_owned(),
                Known {
                    key: s["secret_ascii"].as_str().unwrap().as_bytes().to_vec(),
                    alg,
                    digits: u32::try_from(s["digits"].as_u64().unwrap()).unwrap(),
                    period: s["period"].as_u64().unwrap(),
                },
            )
        })
        .collect();
    Fixture { keys, secrets }
}

/// A fresh SQLite environment holding a copy of the fixture (the fixture
/// itself is never written).
async fn env_from_fixture() -> Env {
    let env = Env::new(Backend::Sqlite).await;
    for name in ["totpd.db", "master.key"] {
        std::fs::copy(fixture_dir().join(name), env.data_dir().join(name))
            .unwrap_or_else(|e| panic!("copy the fixture's {name}: {e}"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let key = env.data_dir().join("master.key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(env.data_dir(), std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    env
}

fn hash_version_sql(key_id: &str) -> String {
    format!("SELECT hash_version FROM api_keys WHERE key_id = '{key_id}'")
}

const QUIET: Options = Options {
    no_bootstrap: true,
    env: Vec::new(),
    no_key: true,
    args: Vec::new(),
};

#[tokio::test]
async fn a_previous_version_database_still_authenticates_upgrades_its_keys_and_yields_the_right_codes()
 {
    let fixture = fixture();
    let env = env_from_fixture().await;
    let mut server = TestServer::start_in(&env, QUIET);
    assert!(
        server.bootstrap.is_none(),
        "serve bootstrapped an old database"
    );
    let (alice, bob) = (&fixture.keys[0].1, &fixture.keys[1].1);
    // The migration kept the old rows as they were: hash version 1.
    assert_eq!(
        read_integer(&env, &hash_version_sql(&alice.key_id)).await,
        1
    );
    assert_eq!(read_integer(&env, &hash_version_sql(&bob.key_id)).await, 1);
    assert_eq!(
        read_integer(&env, "SELECT COUNT(*) FROM secrets WHERE aad_version <> 1").await,
        0
    );

    // Alice's old key authenticates and is upgraded by its first use; Bob's,
    // unused, stays as it was.
    for (account, id, known) in &fixture.secrets {
        if account == "alice" {
            assert_code(&server.api_as(alice), id, known).await;
        }
    }
    assert_eq!(
        read_integer(&env, &hash_version_sql(&alice.key_id)).await,
        3
    );
    assert_eq!(read_integer(&env, &hash_version_sql(&bob.key_id)).await, 1);
    let listed = server.api_as(alice).list_ok().await;
    assert_eq!(listed.len(), 2);

    // After a restart (no cache), the upgraded key and the old one both work,
    // and every old ciphertext still opens to the right code.
    server.restart();
    for (account, id, known) in &fixture.secrets {
        let key = if account == "alice" { alice } else { bob };
        assert_code(&server.api_as(key), id, known).await;
    }
    assert_eq!(read_integer(&env, &hash_version_sql(&bob.key_id)).await, 3);
    // Secrets are enrolled under the new associated data beside the old ones.
    let fresh = server
        .api_as(bob)
        .create_ok(json!({"label": "enrolled after the upgrade"}))
        .await;
    assert_eq!(
        read_integer(&env, "SELECT COUNT(*) FROM secrets WHERE aad_version = 2").await,
        1
    );
    server
        .api_as(bob)
        .code(fresh["id"].as_str().unwrap())
        .await
        .expect_ok();

    // Once upgraded, the key is bound to its account like a new one.
    write_database(
        &env,
        &format!(
            "UPDATE api_keys SET account_id = \
             (SELECT id FROM accounts WHERE name = 'bob') WHERE key_id = '{}'",
            alice.key_id
        ),
    )
    .await;
    tokio::time::sleep(PAST_KEY_CACHE).await;
    server
        .api_as(alice)
        .list()
        .await
        .expect_error(401, "unauthorized");
}

async fn a_previous_version_database_migrated_to_postgresql_keeps_its_keys_and_codes() {
    let fixture = fixture();
    let source = env_from_fixture().await;
    // Upgrade one key (and open the database with this version) first, so
    // the copy carries both kinds of rows.
    let server = TestServer::start_in(&source, QUIET);
    let (alice, bob) = (&fixture.keys[0].1, &fixture.keys[1].1);
    server.api_as(alice).list_ok().await;
    let fresh = server
        .api_as(alice)
        .create_ok(json!({"label": "new associated data"}))
        .await;
    drop(server);
    assert_eq!(
        read_integer(&source, &hash_version_sql(&alice.key_id)).await,
        3
    );

    let target = Env::new(Backend::Postgres).await;
    let from = format!("sqlite://{}", source.sqlite_file().display());
    let to = target.database_url().unwrap().to_owned();
    let migrated = run_totpd(&["migrate", "--from", &from, "--to", &to]);
    assert!(
        migrated.status.success(),
        "totpd migrate failed with {}:\n{}",
        migrated.status,
        migrated.stderr
    );
    let served = source.on_database_of(&target);
    assert_eq!(
        read_integer(&served, &hash_version_sql(&alice.key_id)).await,
        3
    );
    assert_eq!(
        read_integer(&served, &hash_version_sql(&bob.key_id)).await,
        1
    );
    assert_eq!(
        read_integer(
            &served,
            "SELECT COUNT(*) FROM secrets WHERE aad_version = 2"
        )
        .await,
        1
    );
    let pg_server = TestServer::start_in(&served, QUIET);
    for (account, id, known) in &fixture.secrets {
        let key = if account == "alice" { alice } else { bob };
        assert_code(&pg_server.api_as(key), id, known).await;
    }
    pg_server
        .api_as(alice)
        .code(fresh["id"].as_str().unwrap())
        .await
        .expect_ok();
    assert_eq!(
        read_integer(&served, &hash_version_sql(&bob.key_id)).await,
        3
    );
}
