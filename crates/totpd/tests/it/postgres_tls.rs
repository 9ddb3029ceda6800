//! The start-up warning for a PostgreSQL connection that would not
//! authenticate the server: a host other than this machine without
//! `sslmode=verify-full` or `verify-ca`.
//!
//! No test here reaches a host beyond loopback: the remote cases give a data
//! directory that cannot be created (it lies under a regular file), so the
//! command stops after resolving its settings and before connecting. The
//! warning comes first, precisely so that it is seen even when the
//! connection fails.

use crate::harness::{Backend, TestServer, on_postgres_only, run_totpd};

on_postgres_only! {
    a_loopback_postgres_host_gets_no_tls_warning
        => a_loopback_postgres_host_gets_no_tls_warning_on_postgres;
}

/// TEST-NET-1 (RFC 5737): never routed, and never contacted here.
const REMOTE: &str = "postgres://totpd:hunter2@192.0.2.1:5432/totpd";

/// Runs `totpd ARGS --data-dir <unusable> --database URL`: it must fail on
/// the data directory, before any connection. Returns its stderr.
fn stderr_before_connecting(args: &[&str], url: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-directory");
    std::fs::write(&blocker, b"").unwrap();
    let data_dir = blocker.join("data");
    let data_dir = data_dir.to_str().unwrap();
    let mut argv = args.to_vec();
    argv.extend(["--data-dir", data_dir, "--database", url]);
    let out = run_totpd(&argv);
    assert!(!out.status.success(), "totpd {} succeeded", args.join(" "));
    assert!(
        out.stderr.contains("could not create the data directory"),
        "totpd {} did not stop at the data directory:\n{}",
        args.join(" "),
        out.stderr
    );
    assert!(
        !out.stderr.contains("hunter2"),
        "the database password is on stderr"
    );
    out.stderr
}

#[test]
fn a_remote_postgres_host_with_sslmode_require_is_warned_about_before_connecting() {
    for args in [&["keys", "list"][..], &["serve", "--listen", "127.0.0.1:0"]] {
        let stderr = stderr_before_connecting(args, &format!("{REMOTE}?sslmode=require"));
        let warning = stderr
            .lines()
            .find(|line| line.contains("192.0.2.1") && line.contains("sslmode=require"))
            .unwrap_or_else(|| panic!("totpd {}: no TLS warning:\n{stderr}", args.join(" ")));
        assert!(
            warning.contains("WARN") || warning.starts_with("totpd: warning:"),
            "not a warning: {warning}"
        );
        assert!(warning.contains("verify-full"), "{warning}");
        assert!(!warning.contains("totpd:hunter2"), "{warning}");
    }
}

#[test]
fn a_remote_postgres_host_without_any_sslmode_is_warned_about() {
    let stderr = stderr_before_connecting(&["keys", "list"], REMOTE);
    assert!(
        stderr.contains("192.0.2.1") && stderr.contains("sslmode=prefer"),
        "no TLS warning for the default sslmode:\n{stderr}"
    );
}

#[test]
fn a_remote_postgres_host_with_verify_full_or_verify_ca_gets_no_warning() {
    for mode in ["verify-full", "verify-ca"] {
        let stderr =
            stderr_before_connecting(&["keys", "list"], &format!("{REMOTE}?sslmode={mode}"));
        assert!(
            !stderr.contains("sslmode"),
            "sslmode={mode} was warned about:\n{stderr}"
        );
    }
}

async fn a_loopback_postgres_host_gets_no_tls_warning() {
    let server = TestServer::start(Backend::Postgres).await;
    let log = server.log();
    assert!(
        !log.contains("sslmode"),
        "a loopback PostgreSQL host was warned about:\n{log}"
    );
}

#[test]
fn migrate_warns_about_a_remote_target_without_verify_full_before_connecting() {
    // The source is a SQLite file that does not exist: migrate opens it
    // read-only, first, and stops there, so the remote target is never
    // contacted.
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    let from = format!("sqlite://{}", missing.display());
    let to = format!("{REMOTE}?sslmode=require");
    let out = run_totpd(&["migrate", "--from", &from, "--to", &to]);
    assert!(!out.status.success(), "migrate succeeded:\n{}", out.stderr);
    assert!(
        out.stderr.contains("could not open the source database"),
        "migrate did not stop at the source:\n{}",
        out.stderr
    );
    let warning = out
        .stderr
        .lines()
        .find(|line| line.contains("192.0.2.1") && line.contains("sslmode=require"))
        .unwrap_or_else(|| panic!("no TLS warning for the target:\n{}", out.stderr));
    assert!(warning.contains("verify-full"), "{warning}");
    assert!(!out.stderr.contains("hunter2"), "the password is on stderr");
}
