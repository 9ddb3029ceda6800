//! `totpd backup` while serve writes, and `totpd restore` into an empty
//! database of either backend: the restored installation lists the
//! backup's secrets and serves their codes; a non-empty target, a wrong
//! master key and an existing backup file are refused and change nothing.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinSet;

use crate::harness::{
    Backend, Env, Known, Options, TestServer, assert_code, backend_available, on_both_backends,
    random_master_key, run_totpd,
};
use crate::rekey::create_known;

on_both_backends! {
    a_restore_into_a_database_that_holds_data_is_refused_and_changes_nothing
        => a_restore_into_a_database_that_holds_data_is_refused_and_changes_nothing_on_sqlite,
           a_restore_into_a_database_that_holds_data_is_refused_and_changes_nothing_on_postgres;
    a_restore_with_the_wrong_master_key_is_refused_before_anything_is_copied
        => a_restore_with_the_wrong_master_key_is_refused_before_anything_is_copied_on_sqlite,
           a_restore_with_the_wrong_master_key_is_refused_before_anything_is_copied_on_postgres;
    a_backup_never_replaces_an_existing_file
        => a_backup_never_replaces_an_existing_file_on_sqlite,
           a_backup_never_replaces_an_existing_file_on_postgres;
}

#[tokio::test]
async fn a_backup_of_sqlite_under_write_load_restores_into_postgresql() {
    if backend_available(
        Backend::Postgres,
        "a_backup_of_sqlite_under_write_load_restores_into_postgresql",
    ) {
        backup_under_load_restores(Backend::Sqlite, Backend::Postgres).await;
    }
}

#[tokio::test]
async fn a_backup_of_postgresql_under_write_load_restores_into_sqlite() {
    if backend_available(
        Backend::Postgres,
        "a_backup_of_postgresql_under_write_load_restores_into_sqlite",
    ) {
        backup_under_load_restores(Backend::Postgres, Backend::Sqlite).await;
    }
}

#[tokio::test]
async fn a_backup_of_sqlite_under_write_load_restores_into_sqlite() {
    backup_under_load_restores(Backend::Sqlite, Backend::Sqlite).await;
}

/// The secret ids in a backup file, read through totpd's own store.
async fn ids_in_backup(file: &Path) -> BTreeSet<String> {
    let store = totpd_store::connect(
        &format!("sqlite://{}?mode=ro", file.display()),
        &totpd_store::ConnectOptions::default(),
    )
    .await
    .expect("open the backup");
    let mut snapshot = store.snapshot().await.unwrap();
    let mut ids = BTreeSet::new();
    let mut after = None;
    loop {
        let page = snapshot.secrets(after, 1_000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        ids.extend(page.iter().map(|s| s.id.to_string()));
    }
    ids
}

/// Names in `dir` other than `keep`.
fn others_in(dir: &Path, keep: &[&str]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !keep.contains(&name.as_str()))
        .collect()
}

/// A stopped installation with a few secrets, its backup file, and the
/// master key and API key to use it with.
struct Backed {
    _dir: tempfile::TempDir,
    file: PathBuf,
    master: String,
}

async fn small_backup() -> Backed {
    let master = random_master_key();
    let env = Env::new(Backend::Sqlite)
        .await
        .with_master_key(Some(master.clone()));
    let mut server = TestServer::start_in(&env, Options::default());
    for i in 0..3 {
        create_known(&server.api(), i).await;
    }
    server.kill();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("totpd.backup");
    let file_arg = file.to_string_lossy().into_owned();
    env.run_ok(&["backup", "--to", &file_arg]);
    Backed {
        _dir: dir,
        file,
        master,
    }
}

async fn backup_under_load_restores(from: Backend, to: Backend) {
    let master = random_master_key();
    let source = Env::new(from).await.with_master_key(Some(master.clone()));
    let server = TestServer::start_in(&source, Options::default());
    let key = server.key.clone();
    let api = server.api_as(&key);
    let created: Arc<Mutex<HashMap<String, Known>>> = Arc::default();
    for i in 0..100 {
        let (id, known) = create_known(&api, i).await;
        created.lock().unwrap().insert(id, known);
    }

    // Writers create secrets and delete some of them meanwhile.
    let deleting: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = JoinSet::new();
    for n in 0..4_usize {
        let (api, created, deleting, stop) =
            (api.clone(), created.clone(), deleting.clone(), stop.clone());
        load.spawn(async move {
            let mut i = 1000 * (n + 1);
            while !stop.load(Ordering::Relaxed) {
                let (id, known) = create_known(&api, i).await;
                created.lock().unwrap().insert(id.clone(), known);
                if i % 3 == 0 {
                    deleting.lock().unwrap().insert(id.clone());
                    let reply = api.delete(&id).await;
                    assert!(reply.status < 300, "delete {id}: {}", reply.status);
                }
                i += 1;
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let acked_before: BTreeSet<String> = created.lock().unwrap().keys().cloned().collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("totpd-backup.db");
    let file_arg = file.to_string_lossy().into_owned();
    let backup_env = source.clone();
    let out = tokio::task::spawn_blocking(move || backup_env.run(&["backup", "--to", &file_arg]))
        .await
        .unwrap();
    let deleted_by_end: BTreeSet<String> = deleting.lock().unwrap().clone();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    while let Some(done) = load.join_next().await {
        done.expect("a write failed while the backup ran");
    }
    assert!(
        out.status.success(),
        "backup failed: {}{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stdout.contains("backed up and verified"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains(&master) && !out.stderr.contains(&master));

    // One private, self-contained file, nothing else left behind.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "backup mode {mode:o}");
    }
    assert_eq!(
        others_in(dir.path(), &["totpd-backup.db"]),
        Vec::<String>::new()
    );
    let in_backup = ids_in_backup(&file).await;
    let ever: BTreeSet<String> = created.lock().unwrap().keys().cloned().collect();
    assert!(
        in_backup.is_subset(&ever),
        "the backup holds secrets nobody created"
    );
    let required: BTreeSet<String> = acked_before.difference(&deleted_by_end).cloned().collect();
    let missing: Vec<&String> = required.difference(&in_backup).collect();
    assert!(
        missing.is_empty(),
        "secrets acknowledged before the backup began are missing from it: {missing:?}"
    );
    drop(server);

    let target = Env::new(to).await.with_master_key(Some(master.clone()));
    let restored = target.run_ok(&["restore", "--from", &file.to_string_lossy()]);
    assert!(restored.contains("restored and verified"), "{restored}");
    // The audit log came along: a secret acknowledged before the backup
    // began has its secret.create event in it (one created while the
    // snapshot was taken may be in it without its event, which commits
    // just after the secret).
    for id in required.iter().take(5) {
        let events = target.run_ok(&[
            "audit",
            "--json",
            "--action",
            "secret.create",
            "--secret",
            id,
        ]);
        assert_eq!(
            events.lines().count(),
            1,
            "secret {id}: secret.create events in the restored audit log:\n{events}"
        );
    }
    let server = TestServer::start_in(
        &target,
        Options {
            no_bootstrap: true,
            ..Options::keyless()
        },
    );
    let api = server.api_as(&key);
    let listed: BTreeSet<String> = api.listed_ids().await.into_iter().collect();
    assert_eq!(
        listed, in_backup,
        "the restored installation lists other secrets"
    );
    let known = created.lock().unwrap().clone();
    for id in &in_backup {
        assert_code(&api, id, &known[id]).await;
    }
}

async fn a_restore_into_a_database_that_holds_data_is_refused_and_changes_nothing(
    backend: Backend,
) {
    let backed = small_backup().await;
    let target = Env::new(backend)
        .await
        .with_master_key(Some(backed.master.clone()));
    target.create_key("bob");
    let before = target.dump_rows().await;
    let out = target.run(&["restore", "--from", &backed.file.to_string_lossy()]);
    assert!(
        !out.status.success(),
        "restore into a used database succeeded"
    );
    assert!(out.stderr.contains("already holds data"), "{}", out.stderr);
    assert_eq!(
        target.dump_rows().await,
        before,
        "the refused restore changed the target"
    );
}

async fn a_restore_with_the_wrong_master_key_is_refused_before_anything_is_copied(
    backend: Backend,
) {
    let backed = small_backup().await;
    let file = backed.file.to_string_lossy().into_owned();
    let wrong = random_master_key();
    let target = Env::new(backend).await.with_master_key(Some(wrong.clone()));
    let out = target.run(&["restore", "--from", &file]);
    assert!(!out.status.success(), "restore with a wrong key succeeded");
    assert!(
        out.stderr.contains("does not open the backup")
            && out.stderr.contains("nothing was restored"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(&wrong) && !out.stderr.contains(&backed.master));
    // No key at all is refused too, and no key file is made up.
    let keyless = target.with_master_key(None);
    let out = keyless.run(&["restore", "--from", &file]);
    assert!(!out.status.success());
    assert!(out.stderr.contains("no master key"), "{}", out.stderr);
    assert!(!target.data_dir().join("master.key").exists());
    // The target was not even opened.
    match backend {
        Backend::Sqlite => assert!(!target.sqlite_file().exists()),
        Backend::Postgres => assert_eq!(target.dump_rows().await, Vec::<String>::new()),
    }
    // The right key restores.
    let right = target.with_master_key(Some(backed.master.clone()));
    right.run_ok(&["restore", "--from", &file]);
    assert_eq!(
        right
            .run_ok(&["keys", "list", "--json"])
            .matches("key_id")
            .count(),
        1
    );
}

async fn a_backup_never_replaces_an_existing_file(backend: Backend) {
    let env = Env::new(backend).await;
    env.create_key("alice");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("taken");
    std::fs::write(&file, b"something else").unwrap();
    let out = env.run(&["backup", "--to", &file.to_string_lossy()]);
    assert!(!out.status.success());
    assert!(out.stderr.contains("already exists"), "{}", out.stderr);
    assert_eq!(std::fs::read(&file).unwrap(), b"something else");
    assert_eq!(others_in(dir.path(), &["taken"]), Vec::<String>::new());
    // A database with no vault has nothing to back up.
    let empty = Env::new(backend).await;
    let fresh = dir.path().join("fresh");
    let out = empty.run(&["backup", "--to", &fresh.to_string_lossy()]);
    assert!(!out.status.success());
    assert!(!fresh.exists());
}

/// `--help` of `backup` and `restore` describes every flag.
#[test]
fn backup_and_restore_help_describe_every_flag() {
    for (command, own) in [("backup", "--to"), ("restore", "--from")] {
        let help = run_totpd(&[command, "--help"]);
        assert!(help.status.success());
        for flag in [
            own,
            "--data-dir",
            "--database",
            "--master-key-file",
            "--db-pool-size",
            "TOTPD_MASTER_KEY",
        ] {
            assert!(
                help.stdout.contains(flag),
                "{command} --help lacks {flag}:\n{}",
                help.stdout
            );
        }
    }
}
