//! An internal error keeps its cause chain to the log: a secret the store
//! cannot read answers 500 with the generic body, and the server's log
//! line names the vault's context, the store's class and context, and the
//! database driver's own error.

use std::time::Duration;

use serde_json::json;
use sqlx::{AssertSqlSafe, Connection as _};

use crate::harness::{Backend, Env, TestServer, on_both_backends};
use crate::otp::base32_encode;

on_both_backends! {
    an_unreadable_secret_logs_the_whole_cause_chain
        => an_unreadable_secret_logs_the_whole_cause_chain_on_sqlite,
           an_unreadable_secret_logs_the_whole_cause_chain_on_postgres;
}

/// Makes the `digits` of the secrets unreadable: on PostgreSQL the column
/// becomes text, which the store cannot decode as its integer; SQLite's
/// strict table takes no text, so there the column is renamed away and the
/// store's statement cannot be run.
async fn corrupt_digits(env: &Env) {
    match (env.backend, env.database_url()) {
        (Backend::Postgres, Some(url)) => {
            let mut conn = sqlx::PgConnection::connect(url)
                .await
                .unwrap_or_else(|e| panic!("connect to the test database: {e}"));
            let sql = "ALTER TABLE secrets ALTER COLUMN digits TYPE TEXT USING 'six'";
            sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            let _ = conn.close().await;
        }
        _ => {
            let conn = rusqlite::Connection::open(env.sqlite_file()).expect("open the database");
            conn.busy_timeout(Duration::from_secs(10)).unwrap();
            let sql = "ALTER TABLE secrets RENAME COLUMN digits TO digits_gone";
            conn.execute_batch(sql)
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }
}

/// The log line of the request's internal error.
fn internal_error_line(log: &str) -> Option<&str> {
    log.lines().find(|line| line.contains("internal error"))
}

async fn an_unreadable_secret_logs_the_whole_cause_chain(backend: Backend) {
    let server = TestServer::start(backend).await;
    let api = server.api();
    let secret = base32_encode(&crate::harness::random_bytes(20));
    let created = api
        .create_ok(json!({"label": "decoded once", "secret": secret}))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    api.code(&id).await.expect_ok();
    assert!(
        internal_error_line(&server.log()).is_none(),
        "{}",
        server.log()
    );

    corrupt_digits(&server.env).await;
    let reply = api.code(&id).await;
    let request_id = reply
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("the 500 names its request id")
        .to_owned();
    let body = reply.expect_error(500, "internal");
    assert_eq!(
        body["message"], "the server failed to handle this request",
        "the body names no internals: {body}"
    );

    // The line is written as the response is: wait for it briefly.
    let mut log = server.log();
    for _ in 0..50 {
        if internal_error_line(&log).is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        log = server.log();
    }
    let line = internal_error_line(&log)
        .unwrap_or_else(|| panic!("no internal error logged:\n{log}"))
        .to_owned();
    // Outer: the vault's context; then the store's class and context; then
    // the driver's own error, naming the column it could not decode.
    assert!(
        line.contains("internal error: the store failed: "),
        "{line}"
    );
    // The operator finds the line from the id the client was answered with.
    assert!(line.contains(&format!("request_id={request_id}")), "{line}");
    // PostgreSQL: a connection that had prepared the statement before the
    // change is refused by the server; a fresh one decodes the text and fails.
    let expected: &[(&str, &str)] = match backend {
        Backend::Sqlite => &[(
            "database error: SQLite refused the statement: ",
            "no such column: digits",
        )],
        Backend::Postgres => &[
            (
                "corrupt row: a PostgreSQL value cannot be decoded: ",
                "mismatched types; Rust type `i64` (as SQL type `INT8`) is not compatible with \
                 SQL type `TEXT`",
            ),
            (
                "database error: PostgreSQL refused the statement: ",
                "cached plan must not change result type",
            ),
        ],
    };
    assert!(
        expected
            .iter()
            .any(|(store, driver)| line.contains(store) && line.contains(driver)),
        "{line}"
    );
    assert!(!line.contains(&secret), "{line}");
    assert!(!body.to_string().contains("digits"), "{body}");
    assert!(!body.to_string().contains("SQL"), "{body}");
}
