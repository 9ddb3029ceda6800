//! `totpd import` (DESIGN §2.5, §5): files into an account of the database
//! `serve` uses, while it runs; a summary per file, duplicates on a second
//! run, dry runs, and the password file of an encrypted export.

use serde_json::Value;

use crate::harness::{Backend, TestServer, on_both_backends};

on_both_backends! {
    import_stores_each_file_once_while_serve_runs
        => import_stores_each_file_once_while_serve_runs_on_sqlite,
           import_stores_each_file_once_while_serve_runs_on_postgres;
}

/// A fixture of `totpd-import`, written by an independent tool.
fn fixture(path: &str) -> String {
    format!(
        "{}/../totpd-import/tests/data/{path}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The one JSON object `--json` prints for each file, in order.
fn objects(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect()
}

async fn import_stores_each_file_once_while_serve_runs(backend: Backend) {
    let server = TestServer::start(backend).await;
    let api = server.api();
    let aegis = fixture("aegis/aegis_plain.json");
    let two_fas = fixture("2fas/2fas_plain.2fas");

    // A dry run stores nothing and says what would be stored.
    let dry = objects(&server.env.run_ok(&[
        "import",
        &aegis,
        "--account",
        "default",
        "--dry-run",
        "--json",
    ]));
    assert_eq!(dry[0]["dry_run"], true);
    let would = dry[0]["created"].as_u64().unwrap();
    assert!(would >= 4, "{dry:?}");
    assert!(api.list_ok().await.is_empty());

    // Both files: the table names each with its counts and lists the
    // entries it could not take.
    let table = server
        .env
        .run_ok(&["import", &aegis, &two_fas, "--account", "default"]);
    assert!(table.starts_with("file"), "{table}");
    assert!(table.contains("aegis_plain.json"), "{table}");
    assert!(table.contains("is invalid: a steam entry"), "{table}");
    let listed = api.list_ok().await;
    let created = usize::try_from(would).unwrap();
    // 2FAS holds the same accounts as the Aegis file: all duplicates.
    assert_eq!(listed.len(), created, "{table}");

    // Again: every entry is a duplicate, nothing is stored.
    let again = objects(
        &server
            .env
            .run_ok(&["import", &aegis, "--account", "default", "--json"]),
    );
    assert_eq!(again[0]["created"], 0);
    assert_eq!(again[0]["duplicates"].as_u64().unwrap(), would + 1);
    assert_eq!(api.list_ok().await.len(), created);

    // An encrypted export with its password file; a wrong one fails the
    // file (exit 1) with the reason and stores nothing.
    let password = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(password.path(), "wrong\n").unwrap();
    let encrypted = fixture("andotp/andotp_encrypted.json.aes");
    let password_arg = password.path().to_str().unwrap();
    let out = server.env.run(&[
        "import",
        &encrypted,
        "--account",
        "other",
        "--password-file",
        password_arg,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stdout
            .contains("the password does not open this andotp export"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("wrong") && !out.stderr.contains("wrong"));
    // The password the fixture's script used (make_andotp.py).
    std::fs::write(password.path(), "andotp test password ✓\n").unwrap();
    let opened = objects(&server.env.run_ok(&[
        "import",
        &encrypted,
        "--account",
        "other",
        "--password-file",
        password_arg,
        "--json",
    ]));
    assert!(opened[0]["created"].as_u64().unwrap() >= 4, "{opened:?}");
    // Another account: the default one is unchanged.
    assert_eq!(api.list_ok().await.len(), created);
}
