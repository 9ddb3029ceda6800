//! The answer a client gets and what the database holds agree: a create
//! that outlives the request timeout is either answered 200 and stored, or
//! answered 503 and not stored; a database that cannot take writes right
//! now (read-only, failing over) is 503 `unavailable`, never 500.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use sqlx::Connection as _;

use crate::harness::{
    Backend, Env, Options, TestServer, on_both_backends, on_postgres_only, random_master_key,
};

on_both_backends! {
    creates_that_outlive_the_request_timeout_are_stored_exactly_when_answered_200
        => creates_that_outlive_the_request_timeout_are_stored_exactly_when_answered_200_on_sqlite,
           creates_that_outlive_the_request_timeout_are_stored_exactly_when_answered_200_on_postgres;
}

on_postgres_only! {
    a_create_on_a_read_only_postgres_database_is_503_unavailable
        => a_create_on_a_read_only_postgres_database_is_503_unavailable_on_postgres;
}

/// Something outside the server that holds the write path up: SQLite's
/// write lock, or a PostgreSQL lock that conflicts with inserting secrets.
enum WriteBlocker {
    Sqlite(rusqlite::Connection),
    Postgres(sqlx::PgConnection),
}

impl WriteBlocker {
    async fn hold(env: &Env) -> WriteBlocker {
        match env.backend {
            Backend::Sqlite => {
                let conn = rusqlite::Connection::open(env.sqlite_file()).unwrap();
                conn.execute_batch("BEGIN IMMEDIATE").unwrap();
                WriteBlocker::Sqlite(conn)
            }
            Backend::Postgres => {
                let url = env.database_url().expect("a PostgreSQL database");
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::raw_sql("BEGIN; LOCK TABLE secrets IN SHARE MODE")
                    .execute(&mut conn)
                    .await
                    .unwrap();
                WriteBlocker::Postgres(conn)
            }
        }
    }

    async fn release(self) {
        match self {
            WriteBlocker::Sqlite(conn) => conn.execute_batch("COMMIT").unwrap(),
            WriteBlocker::Postgres(mut conn) => {
                sqlx::raw_sql("COMMIT").execute(&mut conn).await.unwrap();
                let _ = conn.close().await;
            }
        }
    }
}

async fn creates_that_outlive_the_request_timeout_are_stored_exactly_when_answered_200(
    backend: Backend,
) {
    let env = Env::new(backend).await;
    let options = Options {
        env: vec![("TOTPD_REQUEST_TIMEOUT".to_owned(), "1".to_owned())],
        ..Options::default()
    };
    let server = TestServer::start_in(&env, options);
    let api = server.api();
    api.create_ok(json!({"label": "before"})).await;

    // Creates start every 100 ms for 2.5 s; the write path is held for the
    // first 1.6 s. The first ones time out while they wait (503), the later
    // ones go through once it is free (200), and some are caught in between.
    let blocker = WriteBlocker::hold(&env).await;
    let creates: Vec<_> = (0..25)
        .map(|n| {
            let api = api.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100 * n)).await;
                let label = format!("late-{n}");
                let reply = api.create(json!({"label": label})).await;
                (label, reply)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1600)).await;
    blocker.release().await;

    let mut answered_ok = BTreeSet::new();
    let mut timed_out = 0;
    for create in creates {
        let (label, reply) = create.await.unwrap();
        match reply.status {
            200 => {
                answered_ok.insert(label);
            }
            503 => {
                reply.expect_error(503, "unavailable");
                timed_out += 1;
            }
            other => panic!("{label}: unexpected HTTP {other}: {}", reply.text),
        }
    }
    assert!(
        timed_out > 0,
        "no create timed out: the write path was not held up"
    );
    assert!(
        !answered_ok.is_empty(),
        "no create got through after the release"
    );

    // Whatever the writer still had queued has run by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stored: BTreeSet<String> = api
        .list_ok()
        .await
        .iter()
        .map(|s| s["label"].as_str().unwrap().to_owned())
        .filter(|label| label.starts_with("late-"))
        .collect();
    assert_eq!(
        stored, answered_ok,
        "stored creates differ from those answered 200 ({timed_out} answered 503)"
    );
}

#[tokio::test]
async fn a_create_on_a_read_only_sqlite_database_is_503_unavailable() {
    let master_key = random_master_key();
    let env = Env::new(Backend::Sqlite)
        .await
        .with_master_key(Some(master_key.clone()));
    let mut server = TestServer::start_in(&env, Options::default());
    let key = server.key.clone();
    server.api().create_ok(json!({"label": "kept"})).await;
    assert!(server.kill().success());

    let read_only = Env::with_database_url(
        Backend::Sqlite,
        &format!("sqlite://{}?mode=ro", env.sqlite_file().display()),
    )
    .with_master_key(Some(master_key));
    let server = TestServer::start_in(
        &read_only,
        Options {
            no_bootstrap: true,
            ..Options::keyless()
        },
    );
    let api = server.api_as(&key);
    assert_eq!(api.list_ok().await.len(), 1, "reads still work");
    api.create(json!({"label": "refused"}))
        .await
        .expect_error(503, "unavailable");
}

async fn a_create_on_a_read_only_postgres_database_is_503_unavailable() {
    let env = Env::new(Backend::Postgres).await;
    let server = TestServer::start_in(&env, Options::default());
    let api = server.api();
    api.create_ok(json!({"label": "kept"})).await;

    // As on a standby after a failover: every new session is read-only. The
    // server's sessions are ended so its pool opens new ones.
    env.pg_admin("ALTER DATABASE {db} SET default_transaction_read_only = on")
        .await;
    env.pg_admin(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = '{db}' AND pid <> pg_backend_pid()",
    )
    .await;
    for n in 0..5 {
        api.create(json!({"label": format!("refused-{n}")}))
            .await
            .expect_error(503, "unavailable");
    }
    assert_eq!(api.list_ok().await.len(), 1, "reads still work");
    env.pg_admin("ALTER DATABASE {db} SET default_transaction_read_only = off")
        .await;
}
