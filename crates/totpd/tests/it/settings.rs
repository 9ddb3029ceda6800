//! Settings ranges: every numeric and duration setting of `serve` is
//! checked at start; a value out of range stops it with an error naming the
//! setting and a non-zero exit, never a panic, and changes nothing on disk.
//! Values at the edges of the ranges are accepted and serve.

use crate::harness::{Backend, Env, Options, Starting, TestServer};

/// (flag, value) pairs that must be refused.
const OUT_OF_RANGE: &[(&str, &str)] = &[
    ("--request-timeout", "18446744073709551615"),
    ("--request-timeout", "0"),
    ("--request-timeout", "3601"),
    ("--header-read-timeout", "18446744073709551615"),
    ("--header-read-timeout", "0"),
    ("--keep-alive-timeout", "18446744073709551615"),
    ("--keep-alive-timeout", "3601"),
    ("--max-connections", "0"),
    ("--max-connections", "4294967295"),
    ("--max-connections-per-address", "0"),
    ("--max-connections-per-address", "18446744073709551615"),
    ("--max-header-bytes", "0"),
    ("--max-header-bytes", "4294967295"),
    ("--max-body-bytes", "0"),
    ("--max-body-bytes", "4294967295"),
    ("--max-body-bytes", "18446744073709551615"),
    ("--db-pool-size", "0"),
    ("--db-pool-size", "4294967295"),
    ("--auth-failure-window", "0"),
    ("--auth-failure-window", "18446744073709551615"),
    ("--rate-limit-per-key", "18446744073709551615"),
    ("--auth-failure-limit", "18446744073709551615"),
    ("--metrics-token", "tok3n-xyz"),
    ("--metrics-token", "sixteen or more but with spaces"),
];

/// The same through environment variables (a few: the variables share the
/// flags' parsers).
const OUT_OF_RANGE_ENV: &[(&str, &str, &str)] = &[
    (
        "TOTPD_REQUEST_TIMEOUT",
        "18446744073709551615",
        "--request-timeout",
    ),
    (
        "TOTPD_HEADER_READ_TIMEOUT",
        "18446744073709551615",
        "--header-read-timeout",
    ),
    (
        "TOTPD_AUTH_FAILURE_WINDOW",
        "18446744073709551615",
        "--auth-failure-window",
    ),
    (
        "TOTPD_KEEP_ALIVE_TIMEOUT",
        "18446744073709551615",
        "--keep-alive-timeout",
    ),
    (
        "TOTPD_MAX_CONNECTIONS_PER_ADDRESS",
        "0",
        "--max-connections-per-address",
    ),
    ("TOTPD_METRICS_TOKEN", "tok3n-xyz", "--metrics-token"),
];

fn assert_refused_cleanly(what: &str, flag: &str, code: Option<i32>, stderr: &str, env: &Env) {
    assert!(
        matches!(code, Some(1 | 2)),
        "{what}: exit code {code:?}, expected 1 or 2; stderr:\n{stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{what} panicked:\n{stderr}"
    );
    assert!(
        stderr.contains(flag),
        "{what}: the error does not name {flag}:\n{stderr}"
    );
    assert!(
        !env.sqlite_file().exists(),
        "{what}: a refused start created the database"
    );
}

#[tokio::test]
async fn every_out_of_range_setting_stops_serve_with_a_clear_error_and_no_panic() {
    for (flag, value) in OUT_OF_RANGE {
        let env = Env::new(Backend::Sqlite).await;
        let out = env.run(&["serve", "--listen", "127.0.0.1:0", flag, value]);
        let what = format!("serve {flag} {value}");
        assert_refused_cleanly(&what, flag, out.status.code(), &out.stderr, &env);
        assert!(
            !out.stdout.contains("listening"),
            "{what} started: {}",
            out.stdout
        );
        if *flag == "--metrics-token" {
            assert!(
                !out.stderr.contains(value),
                "{what}: the error repeats the token"
            );
        }
    }
    for (var, value, flag) in OUT_OF_RANGE_ENV {
        let env = Env::new(Backend::Sqlite).await;
        let options = Options {
            env: vec![((*var).to_owned(), (*value).to_owned())],
            ..Options::default()
        };
        let out = Starting::spawn(&env, options).refused();
        let what = format!("serve with {var}={value}");
        // The error names the variable's flag (clap names both).
        assert_refused_cleanly(&what, flag, out.status.code(), &out.stderr, &env);
        if *var == "TOTPD_METRICS_TOKEN" {
            assert!(
                !out.stderr.contains(value),
                "{what}: the error repeats the token"
            );
        }
    }
}

#[tokio::test]
async fn settings_at_the_edges_of_their_ranges_are_accepted() {
    let edges = [
        ("TOTPD_REQUEST_TIMEOUT", "3600"),
        ("TOTPD_HEADER_READ_TIMEOUT", "3600"),
        ("TOTPD_KEEP_ALIVE_TIMEOUT", "3600"),
        ("TOTPD_MAX_CONNECTIONS", "1048576"),
        ("TOTPD_MAX_CONNECTIONS_PER_ADDRESS", "1048576"),
        ("TOTPD_MAX_HEADER_BYTES", "1048576"),
        ("TOTPD_MAX_BODY_BYTES", "16777216"),
        ("TOTPD_AUTH_FAILURE_WINDOW", "86400"),
        ("TOTPD_METRICS_TOKEN", "0123456789abcdef"),
    ];
    let env = Env::new(Backend::Sqlite).await;
    let options = Options {
        env: edges
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..Options::default()
    };
    let mut server = TestServer::start_in(&env, options);
    server.assert_healthy().await;
    server.api().list_ok().await;
    let status = server.kill();
    assert!(status.success(), "SIGTERM: {status}; {}", server.log());

    // And the low edges.
    let low = [
        ("TOTPD_REQUEST_TIMEOUT", "1"),
        ("TOTPD_HEADER_READ_TIMEOUT", "1"),
        ("TOTPD_KEEP_ALIVE_TIMEOUT", "0"),
        ("TOTPD_MAX_CONNECTIONS", "1"),
        ("TOTPD_MAX_CONNECTIONS_PER_ADDRESS", "1"),
        ("TOTPD_MAX_BODY_BYTES", "1024"),
        ("TOTPD_DB_POOL_SIZE", "1"),
        ("TOTPD_AUTH_FAILURE_WINDOW", "1"),
    ];
    server.restart_with(Options {
        env: low
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..Options::default()
    });
    server.assert_healthy().await;
    server.api().list_ok().await;
}

#[test]
fn serve_help_names_the_connection_and_metrics_settings_with_their_variables() {
    let help = crate::harness::serve_help();
    for (flag, var) in [
        (
            "--max-connections-per-address",
            "TOTPD_MAX_CONNECTIONS_PER_ADDRESS",
        ),
        ("--keep-alive-timeout", "TOTPD_KEEP_ALIVE_TIMEOUT"),
        ("--metrics-listen", "TOTPD_METRICS_LISTEN"),
        ("--metrics-token", "TOTPD_METRICS_TOKEN"),
    ] {
        assert!(help.contains(flag), "serve --help lacks {flag}");
        assert!(help.contains(var), "serve --help lacks {var}");
    }
}
