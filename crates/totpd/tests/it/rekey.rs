//! Master-key rotation: a ring of keys in the key setting, `totpd rekey`
//! while clients read codes and create secrets, an interrupted rekey run
//! again, `totpd rekey --status`, and the upgrade of a previous version's
//! rows.

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::harness::{
    Api, Backend, Env, Known, Options, TestServer, assert_code, check_code_body, lines_of,
    on_both_backends, random_bytes, random_master_key, unix_ms,
};
use crate::otp::{Alg, base32_encode};

on_both_backends! {
    a_rotation_under_load_fails_no_request_and_leaves_nothing_under_the_old_key
        => a_rotation_under_load_fails_no_request_and_leaves_nothing_under_the_old_key_on_sqlite,
           a_rotation_under_load_fails_no_request_and_leaves_nothing_under_the_old_key_on_postgres;
    a_killed_rekey_completes_when_run_again_and_a_third_run_changes_nothing
        => a_killed_rekey_completes_when_run_again_and_a_third_run_changes_nothing_on_sqlite,
           a_killed_rekey_completes_when_run_again_and_a_third_run_changes_nothing_on_postgres;
    a_ring_that_does_not_hold_the_sealing_key_of_the_database_is_refused_with_its_ids
        => a_ring_that_does_not_hold_the_sealing_key_of_the_database_is_refused_with_its_ids_on_sqlite,
           a_ring_that_does_not_hold_the_sealing_key_of_the_database_is_refused_with_its_ids_on_postgres;
    a_previous_version_database_is_upgraded_to_the_current_associated_data_by_rekey
        => a_previous_version_database_is_upgraded_to_the_current_associated_data_by_rekey_on_sqlite,
           a_previous_version_database_is_upgraded_to_the_current_associated_data_by_rekey_on_postgres;
}

/// `totpd rekey --status --json`, parsed.
fn status(env: &Env) -> Value {
    let out = env.run(&["rekey", "--status", "--json"]);
    assert!(
        out.status.success(),
        "rekey --status failed: {}",
        out.stderr
    );
    serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "rekey --status --json printed no JSON ({e}): {}",
            out.stdout
        )
    })
}

/// Secrets sealed by `key_id`, per `--status`.
fn rows_under(status: &Value, key_id: &str) -> u64 {
    status["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["key_id"] == key_id)
        .map(|c| c["rows"].as_u64().unwrap())
        .sum()
}

/// The id totpd gives a base64 master key (read back from `--status`).
fn key_id_of(env: &Env, key: &str) -> String {
    let status = status(&env.with_master_key(Some(key.to_owned())));
    status["sealing_key_id"].as_str().unwrap().to_owned()
}

/// A secret with random bytes and varied parameters (also for `backup`).
pub(crate) fn random_known(i: usize) -> Known {
    let alg = [Alg::Sha1, Alg::Sha256, Alg::Sha512][i % 3];
    Known {
        key: random_bytes(alg.natural_key_len()),
        alg,
        digits: if i.is_multiple_of(2) { 6 } else { 8 },
        period: [30, 60][i % 2],
    }
}

/// Creates the `i`th secret of [`random_known`]; its id and what it is.
pub(crate) async fn create_known(api: &Api, i: usize) -> (String, Known) {
    let known = random_known(i);
    let created = api
        .create_ok(json!({
            "label": format!("user{i}@example.com"),
            "secret": base32_encode(&known.key),
            "algorithm": known.alg.wire_name(),
            "digits": known.digits,
            "period": known.period,
        }))
        .await;
    (created["id"].as_str().unwrap().to_owned(), known)
}

/// `n` secrets, created 16 at a time.
async fn enroll(api: &Api, n: usize) -> Vec<(String, Known)> {
    let mut tasks = JoinSet::new();
    let mut made = Vec::new();
    for i in 0..n {
        let api = api.clone();
        tasks.spawn(async move { create_known(&api, i).await });
        if tasks.len() >= 16 {
            made.push(tasks.join_next().await.unwrap().unwrap());
        }
    }
    while let Some(done) = tasks.join_next().await {
        made.push(done.unwrap());
    }
    made
}

async fn assert_every_code(api: &Api, secrets: &[(String, Known)]) {
    for (id, known) in secrets {
        assert_code(api, id, known).await;
    }
}

async fn a_rotation_under_load_fails_no_request_and_leaves_nothing_under_the_old_key(
    backend: Backend,
) {
    let (old, new) = (random_master_key(), random_master_key());
    let env = Env::new(backend).await.with_master_key(Some(old.clone()));
    let mut server = TestServer::start_in(&env, Options::default());
    let key = server.key.clone();
    let mut secrets = enroll(&server.api_as(&key), 360).await;
    // Deleted while rekey runs (the others are read meanwhile).
    let doomed: Vec<String> = secrets
        .split_off(300)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let old_id = key_id_of(&env, &old);
    let new_id = key_id_of(&env, &new);
    assert_eq!(rows_under(&status(&env), &old_id), 360);

    // Step 1 of a rotation: the new key first, the old one after it.
    let ring = format!("{new},{old}");
    let both = env.with_master_key(Some(ring.clone()));
    server.env = both.clone();
    server.restart();
    // On PostgreSQL a second node serves the same database meanwhile.
    let second = match backend {
        Backend::Postgres => Some(TestServer::start_in(
            &both.other_node(),
            Options {
                no_bootstrap: true,
                ..Options::keyless()
            },
        )),
        Backend::Sqlite => None,
    };
    let apis: Vec<Api> = std::iter::once(server.api_as(&key))
        .chain(second.iter().map(|s| s.api_as(&key)))
        .collect();
    let before = status(&both);
    assert_eq!(before["secrets_to_reseal"], 360, "{before}");
    assert_eq!(before["pepper_to_reseal"], true, "{before}");

    // Step 2, while clients read codes and create secrets on every node.
    let known = Arc::new(Mutex::new(secrets));
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let mut load = JoinSet::new();
    for (n, api) in apis.iter().cycle().take(6).enumerate() {
        let (api, known, stop, reads) = (api.clone(), known.clone(), stop.clone(), reads.clone());
        load.spawn(async move {
            let mut i = n * 7919;
            while !stop.load(Ordering::Relaxed) {
                if n % 3 == 2 {
                    let made = create_known(&api, 1000 + i).await;
                    known.lock().unwrap().push(made);
                } else {
                    let (id, secret) = {
                        let all = known.lock().unwrap();
                        all[i % all.len()].clone()
                    };
                    let before = unix_ms();
                    let reply = api.code(&id).await;
                    let after = unix_ms();
                    check_code_body(&reply.expect_ok(), &secret, before, after);
                    reads.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
        });
    }
    while reads.load(Ordering::Relaxed) < 20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let reads_before_rekey = reads.load(Ordering::Relaxed);
    let deleter = {
        let (api, doomed) = (apis[apis.len() - 1].clone(), doomed.clone());
        tokio::spawn(async move {
            for id in doomed {
                let reply = api.delete(&id).await;
                assert!(reply.status < 300, "delete {id}: {}", reply.status);
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        })
    };
    let rekey_env = both.clone();
    let rekey = tokio::task::spawn_blocking(move || rekey_env.run(&["rekey", "--batch-size", "7"]))
        .await
        .unwrap();
    let reads_during_rekey = reads.load(Ordering::Relaxed) - reads_before_rekey;
    // A little more load after the rekey: what nodes write now is sealed
    // by the new key too.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    while let Some(done) = load.join_next().await {
        done.expect("a client saw a failed request or a wrong code");
    }
    deleter.await.expect("a delete failed");
    assert!(
        rekey.status.success(),
        "rekey failed: {}{}",
        rekey.stdout,
        rekey.stderr
    );
    assert!(rekey.stdout.contains("re-sealed "), "{}", rekey.stdout);
    assert!(
        rekey
            .stderr
            .contains(&format!("secrets re-sealed under {new_id}")),
        "{}",
        rekey.stderr
    );
    assert!(reads_during_rekey > 0, "no code was read while rekey ran");
    for secret in [&old, &new] {
        assert!(!rekey.stdout.contains(secret.as_str()) && !rekey.stderr.contains(secret.as_str()));
    }

    let after = status(&both);
    assert_eq!(rows_under(&after, &old_id), 0, "{after}");
    assert_eq!(after["secrets_to_reseal"], 0, "{after}");
    assert_eq!(after["pepper"]["key_id"], new_id.as_str(), "{after}");
    let all = known.lock().unwrap().clone();
    assert!(all.len() > 300);
    assert_eq!(rows_under(&after, &new_id), all.len() as u64, "{after}");

    // Step 3: the old key goes; every secret is served with the new alone.
    drop(second);
    server.env = env.with_master_key(Some(new.clone()));
    server.restart();
    assert_every_code(&server.api_as(&key), &all).await;
    // What was deleted during the rekey stayed deleted.
    for id in &doomed {
        server
            .api_as(&key)
            .code(id)
            .await
            .expect_error(404, "not_found");
    }
    let only_new = status(&server.env);
    assert_eq!(only_new["keys_not_in_ring"], json!([]), "{only_new}");
}

async fn a_killed_rekey_completes_when_run_again_and_a_third_run_changes_nothing(backend: Backend) {
    let (old, new) = (random_master_key(), random_master_key());
    let env = Env::new(backend).await.with_master_key(Some(old.clone()));
    let mut server = TestServer::start_in(&env, Options::default());
    let key = server.key.clone();
    let secrets = enroll(&server.api_as(&key), 400).await;
    server.kill();
    let old_id = key_id_of(&env, &old);
    let both = env.with_master_key(Some(format!("{new},{old}")));

    // One row per batch, killed once it has written some.
    let mut child = both
        .command(&["rekey", "--batch-size", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn totpd rekey");
    let pid = child.id();
    let progressed = lines_of(child.stderr.take().unwrap()).iter().any(|line| {
        let done = line
            .strip_prefix("totpd: rekey: ")
            .and_then(|rest| rest.split('/').next())
            .and_then(|n| n.parse::<u64>().ok());
        if done.is_some_and(|done| done >= 20) {
            crate::harness::signal(pid, "KILL");
            return true;
        }
        false
    });
    let killed = child.wait().expect("wait for totpd rekey");
    assert!(!killed.success(), "rekey finished before it was killed");
    assert!(progressed, "rekey printed no progress");
    let midway = status(&both);
    let left = rows_under(&midway, &old_id);
    assert!(
        left > 0 && left < 400,
        "the kill did not interrupt the rekey: {midway}"
    );

    let second = both.run_ok(&["rekey"]);
    assert!(
        second.contains(&format!("re-sealed {left} secrets")),
        "the second run did not pick up exactly what was left ({left}): {second}"
    );
    let third = both.run_ok(&["rekey"]);
    assert!(third.starts_with("nothing to re-seal"), "{third}");
    let done = status(&both);
    assert_eq!(rows_under(&done, &old_id), 0, "{done}");
    assert_eq!(done["secrets_to_reseal"], 0, "{done}");

    server.env = env.with_master_key(Some(new));
    server.restart();
    assert_every_code(&server.api_as(&key), &secrets).await;
}

async fn a_ring_that_does_not_hold_the_sealing_key_of_the_database_is_refused_with_its_ids(
    backend: Backend,
) {
    let (old, new, other) = (
        random_master_key(),
        random_master_key(),
        random_master_key(),
    );
    let env = Env::new(backend).await.with_master_key(Some(old.clone()));
    env.create_key("alice");
    let wrong = env.with_master_key(Some(format!("{new},{other}")));
    let out = wrong.run(&["keys", "list"]);
    assert!(!out.status.success());
    let (new_id, other_id, old_id) = (
        key_id_of(&env, &new),
        key_id_of(&env, &other),
        key_id_of(&env, &old),
    );
    assert!(
        out.stderr.contains(&format!(
            "sealed by key {old_id}, the key given is {new_id}, {other_id}"
        )),
        "{}",
        out.stderr
    );
    for secret in [&old, &new, &other] {
        assert!(!out.stderr.contains(secret.as_str()), "{}", out.stderr);
    }
    // --status still answers, and names what the ring lacks.
    let status = status(&wrong);
    assert_eq!(status["keys_not_in_ring"], json!([old_id]), "{status}");
    assert_eq!(status["pepper"]["in_ring"], false, "{status}");
    let text = wrong.run_ok(&["rekey", "--status"]);
    assert!(
        text.contains(&format!("{old_id} (NOT in the given keys)")),
        "{text}"
    );
    assert!(text.contains(&format!("{new_id} (sealing key)")), "{text}");
    // rekey itself refuses: it cannot open anything.
    let out = wrong.run(&["rekey"]);
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("does not open this database"),
        "{}",
        out.stderr
    );
}

/// A key file with several keys, blank lines and spaces, and a bad line,
/// and a `TOTPD_MASTER_KEY` list with a bad item: the key file's order
/// decides which key seals, and a bad entry is named by position, never shown.
#[tokio::test]
async fn a_key_file_or_variable_with_several_keys_is_a_ring_and_a_bad_entry_is_named_not_shown() {
    let env = Env::new(Backend::Sqlite).await;
    env.create_key("alice");
    let file = env.data_dir().join("master.key");
    let first = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    let new = random_master_key();
    std::fs::write(&file, format!("\n   {new}  \n\n\t{first}\n\n")).unwrap();
    set_private(&file);
    let ring = status(&env);
    assert_eq!(ring["ring"].as_array().unwrap().len(), 2, "{ring}");
    assert_eq!(ring["sealing_key_id"], key_id_of(&env, &new).as_str());
    env.run_ok(&["keys", "list"]);

    let bad = "c2hvcnQ=";
    std::fs::write(&file, format!("{new}\n{first}\n  \n{bad}\n")).unwrap();
    let out = env.run(&["keys", "list"]);
    assert!(!out.status.success());
    assert!(
        out.stderr.contains(&format!(
            "the master key file {} is invalid: line 4 is invalid: master key must be 32 bytes",
            file.display()
        )),
        "{}",
        out.stderr
    );
    std::fs::write(&file, format!("{first}\n{new}\n{first}\n")).unwrap();
    let out = env.run(&["keys", "list"]);
    assert!(
        out.stderr.contains("line 3 repeats line 1"),
        "{}",
        out.stderr
    );
    for text in [bad, first.as_str(), new.as_str()] {
        assert!(!out.stderr.contains(text));
    }

    let listed = env.with_master_key(Some(format!("{first}, not*base64")));
    let out = listed.run(&["keys", "list"]);
    assert!(!out.status.success());
    assert!(
        out.stderr.contains(
            "TOTPD_MASTER_KEY is invalid: key 2 is invalid: master key is not valid base64"
        ),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("not*base64") && !out.stderr.contains(first.as_str()));
    // The variable wins over the file, in its own order.
    let listed = env.with_master_key(Some(format!(" {new} ,{first},")));
    listed.run_ok(&["keys", "list"]);
    assert_eq!(
        status(&listed)["sealing_key_id"],
        key_id_of(&env, &new).as_str()
    );
}

fn set_private(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

/// The fixture of a previous version (associated data version 1, hash
/// version 1), as it is (SQLite) or moved to PostgreSQL by `totpd
/// migrate`: `rekey` brings every secret to the current associated data
/// under the same key, and the codes stay right.
async fn a_previous_version_database_is_upgraded_to_the_current_associated_data_by_rekey(
    backend: Backend,
) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let sqlite = Env::new(Backend::Sqlite).await;
    for name in ["totpd.db", "master.key"] {
        std::fs::copy(
            fixtures.join("v1-data").join(name),
            sqlite.data_dir().join(name),
        )
        .unwrap_or_else(|e| panic!("copy the fixture's {name}: {e}"));
    }
    set_private(&sqlite.data_dir().join("master.key"));
    let env = match backend {
        Backend::Sqlite => sqlite,
        Backend::Postgres => {
            let pg = Env::new(Backend::Postgres).await;
            // Brings the schema up to date (rows untouched): migrate reads
            // its source read-only.
            sqlite.run_ok(&["keys", "list"]);
            let from = format!("sqlite://{}", sqlite.sqlite_file().display());
            let out = crate::harness::run_totpd(&[
                "migrate",
                "--from",
                &from,
                "--to",
                pg.database_url().unwrap(),
            ]);
            assert!(out.status.success(), "migrate: {}", out.stderr);
            sqlite.on_database_of(&pg)
        }
    };
    let described: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("v1-data.json")).unwrap())
            .unwrap();

    let before = status(&env);
    let secrets = before["secrets"].as_array().unwrap();
    assert_eq!(secrets.len(), 1, "{before}");
    assert_eq!(secrets[0]["aad_version"], 1, "{before}");
    assert_eq!(secrets[0]["rows"], 3, "{before}");
    assert_eq!(secrets[0]["sealing"], true, "{before}");
    assert_eq!(before["secrets_to_reseal"], 3, "{before}");
    assert_eq!(before["pepper_to_reseal"], false, "{before}");
    assert!(
        env.run_ok(&["rekey", "--status"])
            .contains("sealed by mk1:"),
        "text status"
    );

    let keys = described["keys"].as_array().unwrap().len() as u64;
    let hashes = |status: &Value| -> Vec<(u64, u64)> {
        status["api_keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["hash_version"].as_u64().unwrap(),
                    c["rows"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(hashes(&before), [(1, keys)], "{before}");

    let out = env.run_ok(&["rekey"]);
    assert!(out.contains("re-sealed 3 secrets"), "{out}");
    assert!(
        out.contains(&format!("upgraded {keys} API-key hashes of version 1")),
        "{out}"
    );
    let after = status(&env);
    let secrets = after["secrets"].as_array().unwrap();
    assert_eq!(secrets.len(), 1, "{after}");
    assert_eq!(
        secrets[0]["aad_version"], after["current_aad_version"],
        "{after}"
    );
    assert_eq!(after["current_aad_version"], 2, "{after}");
    assert_eq!(after["secrets_to_reseal"], 0, "{after}");
    let current = after["current_hash_version"].as_u64().unwrap();
    assert_eq!(hashes(&after), [(current, keys)], "{after}");

    let server = TestServer::start_in(
        &env,
        Options {
            no_bootstrap: true,
            ..Options::keyless()
        },
    );
    for secret in described["secrets"].as_array().unwrap() {
        let account = secret["account"].as_str().unwrap();
        let key = described["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["account"] == account)
            .unwrap();
        let api = server.api_as(&crate::harness::ApiKey {
            key_id: key["key_id"].as_str().unwrap().to_owned(),
            secret: key["secret"].as_str().unwrap().to_owned(),
        });
        let alg = match secret["algorithm"].as_str().unwrap() {
            "SHA1" => Alg::Sha1,
            "SHA256" => Alg::Sha256,
            _ => Alg::Sha512,
        };
        let known = Known {
            key: secret["secret_ascii"].as_str().unwrap().as_bytes().to_vec(),
            alg,
            digits: u32::try_from(secret["digits"].as_u64().unwrap()).unwrap(),
            period: secret["period"].as_u64().unwrap(),
        };
        assert_code(&api, secret["id"].as_str().unwrap(), &known).await;
    }
}

/// `--help` of `rekey` describes every flag.
#[test]
fn rekey_help_describes_every_flag() {
    let help = crate::harness::run_totpd(&["rekey", "--help"]);
    assert!(help.status.success());
    for flag in [
        "--status",
        "--json",
        "--batch-size",
        "--data-dir",
        "--database",
        "--master-key-file",
        "--db-pool-size",
        "TOTPD_MASTER_KEY",
        "comma-separated",
        "one key per line",
    ] {
        assert!(
            help.stdout.contains(flag),
            "rekey --help lacks {flag}:\n{}",
            help.stdout
        );
    }
}
