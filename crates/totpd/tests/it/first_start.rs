//! The first start of a data directory: nodes that start together on one
//! empty data directory (a compose file with two replicas, a systemd
//! template) agree on one master key and one bootstrap key; what totpd
//! creates is private, and what it finds accessible to other users is
//! warned about.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use serde_json::json;

use crate::harness::{
    Backend, Env, Known, Options, TestServer, assert_code, on_both_backends, random_bytes,
    run_totpd, start_together, the_one_bootstrap_key,
};
use crate::otp::{Alg, base32_encode};

on_both_backends! {
    nodes_started_together_on_an_empty_data_directory_agree_on_one_master_key
        => nodes_started_together_on_an_empty_data_directory_agree_on_one_master_key_on_sqlite,
           nodes_started_together_on_an_empty_data_directory_agree_on_one_master_key_on_postgres;
}

/// Nodes per round, and rounds: each round is a fresh, empty data directory.
const NODES: usize = 4;
const ROUNDS: usize = 6;

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

async fn nodes_started_together_on_an_empty_data_directory_agree_on_one_master_key(
    backend: Backend,
) {
    for round in 0..ROUNDS {
        let env = Env::new(backend).await;
        let nodes = vec![env.clone(); NODES];
        let mut servers = start_together(&nodes, &Options::keyless());
        let key = the_one_bootstrap_key(&servers, round);
        let log = servers[0].log();
        assert_eq!(
            log.matches("created a new master key").count(),
            1,
            "round {round}: not exactly one node created the master key:\n{log}"
        );

        let key_file = env.data_dir().join("master.key");
        let text = std::fs::read_to_string(&key_file).expect("a master key file");
        assert_eq!(
            text.trim().len(),
            44,
            "round {round}: master.key is not one key"
        );
        assert_eq!(mode_of(&key_file), 0o600, "round {round}: master.key mode");
        let leftovers: Vec<String> = std::fs::read_dir(env.data_dir())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.contains("master.key") && name != "master.key")
            .collect();
        assert!(
            leftovers.is_empty(),
            "round {round}: temporary key files left: {leftovers:?}"
        );

        // A secret stored through one node gives the same code on every other.
        let known = Known {
            key: random_bytes(20),
            alg: Alg::Sha1,
            digits: 6,
            period: 30,
        };
        let created = servers[round % NODES]
            .api_as(&key)
            .create_ok(json!({"label": "shared", "secret": base32_encode(&known.key)}))
            .await;
        let id = created["id"].as_str().unwrap().to_owned();
        for server in &mut servers {
            server.assert_healthy().await;
            assert_code(&server.api_as(&key), &id, &known).await;
        }
        assert!(
            !servers[0].log().contains(text.trim()),
            "round {round}: the master key appears in the log"
        );
    }
}

#[tokio::test]
async fn what_the_first_start_creates_is_private_and_warned_about_nothing() {
    // A data directory totpd creates itself is 0700.
    let parent = tempfile::tempdir().unwrap();
    let new_dir = parent.path().join("fresh");
    let out = run_totpd(&["keys", "list", "--data-dir", new_dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(mode_of(&new_dir), 0o700, "a new data directory's mode");
    assert_eq!(mode_of(&new_dir.join("totpd.db")), 0o600, "totpd.db mode");
    assert_eq!(
        mode_of(&new_dir.join("master.key")),
        0o600,
        "master.key mode"
    );
    assert!(
        !out.stderr.contains("accessible to other users"),
        "a fresh start warns about its own files:\n{}",
        out.stderr
    );

    // The same for serve, in a private directory the operator made.
    let env = Env::new(Backend::Sqlite).await;
    std::fs::set_permissions(env.data_dir(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let server = TestServer::start_in(&env, Options::default());
    assert_eq!(mode_of(&env.sqlite_file()), 0o600, "totpd.db mode");
    let wal = env.data_dir().join("totpd.db-wal");
    if wal.exists() {
        assert_eq!(mode_of(&wal), 0o600, "totpd.db-wal mode");
    }
    assert_eq!(mode_of(&env.data_dir().join("master.key")), 0o600);
    let log = server.log();
    assert!(
        !log.contains("accessible to other users"),
        "a fresh start warns about its own files:\n{log}"
    );
}

#[tokio::test]
async fn a_data_directory_and_files_accessible_to_others_are_warned_about_at_start() {
    let mut server = TestServer::start(Backend::Sqlite).await;
    server.kill();
    let env = server.env.clone();
    let chmod = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    chmod(env.data_dir(), 0o755);
    chmod(&env.data_dir().join("master.key"), 0o644);
    chmod(&env.sqlite_file(), 0o640);
    server.restart_with(Options::default());
    server.assert_healthy().await;
    let log = server.log();
    for (what, path, mode, fix) in [
        (
            "the data directory",
            env.data_dir().to_path_buf(),
            "755",
            "chmod 700",
        ),
        (
            "the master key file",
            env.data_dir().join("master.key"),
            "644",
            "chmod 600",
        ),
        ("the database file", env.sqlite_file(), "640", "chmod 600"),
    ] {
        let line = log
            .lines()
            .find(|line| {
                line.contains(what)
                    && line.contains(&path.display().to_string())
                    && line.contains("accessible to other users")
            })
            .unwrap_or_else(|| panic!("no warning about {what}:\n{log}"));
        assert!(line.contains("WARN"), "not a warning: {line}");
        assert!(line.contains(&format!("mode {mode}")), "{line}");
        assert!(line.contains(fix), "{line}");
    }
    // Warned about, not changed: the operator may share them on purpose.
    assert_eq!(mode_of(env.data_dir()), 0o755);
    assert_eq!(mode_of(&env.sqlite_file()), 0o640);

    // The CLI warns too, on standard error.
    let out = env.run(&["keys", "list"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stderr.contains("totpd: warning: the master key file")
            && out.stderr.contains("accessible to other users"),
        "keys list does not warn:\n{}",
        out.stderr
    );
}
