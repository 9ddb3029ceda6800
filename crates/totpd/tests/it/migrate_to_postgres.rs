//! `totpd migrate` from SQLite to PostgreSQL: the copy serves the same ids,
//! codes and keys, and a missing or empty source fails clearly.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{
    ApiKey, Backend, CliOutput, Env, Known, Options, SECRETS, TestServer, assert_code,
    on_postgres_only, random_bytes, refused_after, run_totpd,
};
use crate::otp::{Alg, base32_encode};

on_postgres_only! {
    a_sqlite_installation_migrated_to_postgresql_serves_the_same_ids_codes_and_keys
        => a_sqlite_installation_migrated_to_postgresql_serves_the_same_ids_codes_and_keys_on_postgres;
    migrating_from_an_empty_or_missing_sqlite_database_fails_clearly_and_creates_nothing
        => migrating_from_an_empty_or_missing_sqlite_database_fails_clearly_and_creates_nothing_on_postgres;
}

/// One secret of the installation: what to create, and what it must give.
struct Spec {
    label: &'static str,
    issuer: Option<&'static str>,
    alg: Alg,
    digits: u32,
    period: u64,
    key_len: usize,
    /// Enrolled from an `otpauth://` URI rather than fields.
    via_uri: bool,
}

/// Mixed algorithms, digits, periods and secret lengths (80-bit, as GitHub
/// issues them, to 512-bit); each account gets them all.
const SPECS: [Spec; 4] = [
    Spec {
        label: "ops@example.com",
        issuer: Some("GitHub"),
        alg: Alg::Sha1,
        digits: 6,
        period: 30,
        key_len: 10,
        via_uri: false,
    },
    Spec {
        label: "deploy bot",
        issuer: Some("AWS"),
        alg: Alg::Sha256,
        digits: 8,
        period: 30,
        key_len: 32,
        via_uri: false,
    },
    Spec {
        label: "root",
        issuer: None,
        alg: Alg::Sha512,
        digits: 8,
        period: 60,
        key_len: 64,
        via_uri: false,
    },
    Spec {
        label: "alice",
        issuer: Some("ACME Co"),
        alg: Alg::Sha1,
        digits: 6,
        period: 45,
        key_len: 20,
        via_uri: true,
    },
];

/// An account of the installation, as the test made it.
struct Tenant {
    name: &'static str,
    /// Keys that must keep working.
    active: Vec<ApiKey>,
    /// A key revoked before the migration.
    revoked: Option<ApiKey>,
    secrets: Vec<(String, Known)>,
    /// A secret deleted before the migration.
    deleted: Option<String>,
    /// The list answer before the migration, sorted by id.
    listed: Vec<Value>,
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

fn migrate(from: &str, to: &str) -> CliOutput {
    run_totpd(&["migrate", "--from", from, "--to", to])
}

fn sorted_by_id(mut list: Vec<Value>) -> Vec<Value> {
    list.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    list
}

fn sorted(mut rows: Vec<String>) -> Vec<String> {
    rows.sort();
    rows
}

/// Enrolls every spec for `account` through the API.
async fn enroll(server: &TestServer, key: &ApiKey, account: &str) -> Vec<(String, Known)> {
    let api = server.api_as(key);
    let mut out = Vec::new();
    for spec in &SPECS {
        let bytes = random_bytes(spec.key_len);
        let secret = base32_encode(&bytes);
        let label = format!("{} ({account})", spec.label);
        let body = if spec.via_uri {
            let issuer = spec.issuer.unwrap_or_default().replace(' ', "%20");
            json!({"uri": format!(
                "otpauth://totp/{issuer}:{}?secret={secret}&issuer={issuer}&algorithm={}&digits={}&period={}",
                label.replace(' ', "%20").replace('(', "%28").replace(')', "%29"),
                spec.alg.wire_name(),
                spec.digits,
                spec.period,
            )})
        } else {
            let mut body = json!({
                "label": label,
                "secret": secret,
                "algorithm": spec.alg.wire_name(),
                "digits": spec.digits,
                "period": spec.period,
            });
            if let Some(issuer) = spec.issuer {
                body["issuer"] = json!(issuer);
            }
            body
        };
        let created = api.create_ok(body).await;
        assert_eq!(created["label"], json!(label), "{created}");
        assert_eq!(created["issuer"], json!(spec.issuer), "{created}");
        let known = Known {
            key: bytes,
            alg: spec.alg,
            digits: spec.digits,
            period: spec.period,
        };
        let id = created["id"].as_str().unwrap().to_owned();
        assert_code(&api, &id, &known).await;
        out.push((id, known));
    }
    out
}

async fn a_sqlite_installation_migrated_to_postgresql_serves_the_same_ids_codes_and_keys() {
    // The installation: SQLite in one data directory, its master.key beside it.
    let env = Env::new(Backend::Sqlite).await;
    let mut server = TestServer::start_in(&env, Options::default());
    let mut tenants = Vec::new();
    for name in ["default", "alpha", "beta"] {
        let mut active = Vec::new();
        if name == "default" {
            active.push(server.key.clone());
        }
        active.push(env.create_key(name));
        active.push(env.create_key(name));
        let secrets = enroll(&server, &active[0], name).await;
        tenants.push(Tenant {
            name,
            active,
            revoked: None,
            secrets,
            deleted: None,
            listed: Vec::new(),
        });
    }
    // alpha: a third key, revoked; beta: a secret enrolled, then deleted.
    let doomed_key = env.create_key("alpha");
    server.api_as(&doomed_key).list_ok().await;
    env.run_ok(&["keys", "revoke", &doomed_key.key_id]);
    // Revocation reaches a running node within a second (DESIGN §4).
    let took = refused_after(&server.api_as(&doomed_key), SECRETS, Instant::now()).await;
    assert!(
        took <= Duration::from_secs(1),
        "revoked key accepted for {took:?}"
    );
    tenants[1].revoked = Some(doomed_key);
    let beta = server.api_as(&tenants[2].active[0]);
    let doomed = beta.create_ok(json!({"label": "short-lived"})).await;
    let doomed = doomed["id"].as_str().unwrap().to_owned();
    beta.delete(&doomed).await.expect_ok();
    tenants[2].deleted = Some(doomed);
    for tenant in &mut tenants {
        tenant.listed = sorted_by_id(server.api_as(&tenant.active[0]).list_ok().await);
        assert_eq!(tenant.listed.len(), SPECS.len(), "{}", tenant.name);
    }
    assert_eq!(server.kill().code(), Some(0), "serve exits 0 on SIGTERM");
    // After the stop: a stopping node writes the key uses it last saw.
    let keys_before: Value = serde_json::from_str(env.run_ok(&["keys", "list", "--json"]).trim())
        .expect("keys list --json");
    let source_rows = sorted(env.dump_rows().await);

    // The migration into a fresh PostgreSQL database.
    let target = Env::new(Backend::Postgres).await;
    let from = sqlite_url(&env.sqlite_file());
    let to = target.database_url().unwrap().to_owned();
    let migrated = migrate(&from, &to);
    assert!(
        migrated.status.success(),
        "totpd migrate failed with {}:\n{}{}",
        migrated.status,
        migrated.stdout,
        migrated.stderr
    );
    assert_eq!(
        sorted(env.dump_rows().await),
        source_rows,
        "totpd migrate changed its source"
    );

    // Served from PostgreSQL with the same data directory, so the same master.key.
    let served = env.on_database_of(&target);
    let keys_after: Value = serde_json::from_str(served.run_ok(&["keys", "list", "--json"]).trim())
        .expect("keys list --json");
    assert_eq!(
        keys_after, keys_before,
        "keys list differs after the migration"
    );
    let quiet = Options {
        no_bootstrap: true,
        ..Options::keyless()
    };
    let pg_server = TestServer::start_in(&served, quiet.clone());
    assert!(
        pg_server.bootstrap.is_none(),
        "serve bootstrapped the migrated database"
    );
    for tenant in &tenants {
        for key in &tenant.active {
            let api = pg_server.api_as(key);
            assert_eq!(
                sorted_by_id(api.list_ok().await),
                tenant.listed,
                "{}'s list differs after the migration",
                tenant.name
            );
        }
        let api = pg_server.api_as(&tenant.active[1]);
        for (id, known) in &tenant.secrets {
            assert_code(&api, id, known).await;
        }
        if let Some(revoked) = &tenant.revoked {
            let refused = pg_server.api_as(revoked);
            refused.list().await.expect_error(401, "unauthorized");
            refused
                .code(&tenant.secrets[0].0)
                .await
                .expect_error(401, "unauthorized");
        }
        if let Some(deleted) = &tenant.deleted {
            api.code(deleted).await.expect_error(404, "not_found");
        }
    }
    // Tenancy survived: alpha's key cannot see or touch beta's secrets.
    let alpha = pg_server.api_as(&tenants[1].active[0]);
    for (id, _) in &tenants[2].secrets {
        alpha.code(id).await.expect_error(404, "not_found");
        alpha.delete(id).await.expect_error(404, "not_found");
    }
    let beta = pg_server.api_as(&tenants[2].active[0]);
    assert_eq!(sorted_by_id(beta.list_ok().await), tenants[2].listed);

    // Another node, given only the URL and the key (TOTPD_MASTER_KEY), agrees.
    let master_key = std::fs::read_to_string(env.data_dir().join("master.key"))
        .expect("the installation's master.key");
    let node = served
        .other_node()
        .with_master_key(Some(master_key.trim().to_owned()));
    let other = TestServer::start_in(&node, quiet);
    for tenant in &tenants {
        let api = other.api_as(&tenant.active[0]);
        let (id, known) = &tenant.secrets[tenant.secrets.len() - 1];
        assert_code(&api, id, known).await;
    }

    // Migrating again into the now non-empty target is refused and changes nothing.
    let target_rows = sorted(target.dump_rows().await);
    let again = migrate(&from, &to);
    assert!(
        !again.status.success(),
        "a second migration into a non-empty database succeeded:\n{}",
        again.stdout
    );
    let said = again.stderr.to_lowercase();
    assert!(
        said.contains("target")
            && (said.contains("not empty")
                || said.contains("non-empty")
                || said.contains("already holds data")
                || said.contains("already contains")),
        "the refusal does not say the target is not empty:\n{}",
        again.stderr
    );
    assert_eq!(
        sorted(target.dump_rows().await),
        target_rows,
        "a refused migration changed the target"
    );
    for tenant in &tenants {
        let api = pg_server.api_as(&tenant.active[0]);
        assert_eq!(sorted_by_id(api.list_ok().await), tenant.listed);
    }
}

/// `migrate` with a source that holds nothing fails with a message about
/// the source, never writes a file where it expected one, and leaves the
/// target usable for a real migration afterwards.
async fn migrating_from_an_empty_or_missing_sqlite_database_fails_clearly_and_creates_nothing() {
    let target = Env::new(Backend::Postgres).await;
    let to = target.database_url().unwrap().to_owned();
    let scratch = tempfile::tempdir().unwrap();

    let missing = scratch.path().join("totpd.db");
    let empty = scratch.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let no_directory = scratch.path().join("no such directory").join("totpd.db");
    let mut problems = Vec::new();
    for (what, path) in [
        ("a missing file", &missing),
        ("an empty file", &empty),
        ("a file in a missing directory", &no_directory),
    ] {
        let out = migrate(&sqlite_url(path), &to);
        if out.status.success() {
            problems.push(format!("{what}: migrate succeeded:\n{}", out.stdout));
            continue;
        }
        let said = out.stderr.to_lowercase();
        if !(said.contains("source") || said.contains("--from")) {
            problems.push(format!(
                "{what}: the error does not point at the source:\n{}",
                out.stderr
            ));
        }
    }
    let created: Vec<String> = std::fs::read_dir(scratch.path())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name != "empty.db")
        .collect();
    if !created.is_empty() {
        problems.push(format!(
            "a failed migrate created files where its --from pointed: {created:?}"
        ));
    }
    let empty_len = std::fs::metadata(&empty).unwrap().len();
    if empty_len != 0 {
        problems.push(format!(
            "a failed migrate wrote to its (empty) source: it is now {empty_len} bytes"
        ));
    }

    // The target took no harm: a real installation still migrates into it.
    let env = Env::new(Backend::Sqlite).await;
    let mut server = TestServer::start_in(&env, Options::default());
    let key = server.key.clone();
    let secrets = enroll(&server, &key, "default").await;
    assert_eq!(server.kill().code(), Some(0));
    let out = migrate(&sqlite_url(&env.sqlite_file()), &to);
    assert!(
        out.status.success(),
        "migrating into the target of failed migrations failed:\n{}",
        out.stderr
    );
    let pg_server = TestServer::start_in(
        &env.on_database_of(&target),
        Options {
            no_bootstrap: true,
            ..Options::keyless()
        },
    );
    for (id, known) in &secrets {
        assert_code(&pg_server.api_as(&key), id, known).await;
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------
// /metrics
