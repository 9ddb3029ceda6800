//! Schema upgrades: a database at schema version 1, as the release before
//! version 2 left it, is migrated in place and every row reads back with the
//! versions that mark it as written by that release.

use sqlx::{AssertSqlSafe, Connection as _};
use uuid::Uuid;

use crate::db::{PgDatabase, options, postgres_server};

const SQLITE_V1: &str = include_str!("../../migrations/sqlite/0001_init.sql");
const POSTGRES_V1: &str = include_str!("../../migrations/postgres/0001_init.sql");

/// Rows in the shape schema 1 had: no version columns.
fn v1_rows(account: Uuid, secret: Uuid, uuid: &dyn Fn(Uuid) -> String) -> String {
    format!(
        "INSERT INTO accounts (id, name, created_at) VALUES ({a}, 'alice', 1);
         INSERT INTO api_keys (key_id, account_id, secret_hash, role, created_at, revoked_at)
             VALUES ('tk_old', {a}, {hash}, 'owner', 2, NULL);
         INSERT INTO secrets (id, account_id, label, issuer, algorithm, digits, period,
             created_at, key_id, nonce, ciphertext)
             VALUES ({s}, {a}, 'old', NULL, 'SHA1', 6, 30, 3, 'mk1:00', {hash}, {hash});",
        a = uuid(account),
        s = uuid(secret),
        hash = uuid(Uuid::nil()),
    )
}

async fn check_migrated(url: &str, account: Uuid, secret: Uuid) {
    let store = totpd_store::connect(url, &options()).await.unwrap();
    let key = store.api_key("tk_old").await.unwrap().unwrap();
    assert_eq!((key.account_id, key.hash_version), (account, 1));
    let row = store.secret(account, secret).await.unwrap().unwrap();
    assert_eq!((row.digits, row.aad_version), (6, 1));
    // The sealing key id moved to `sealed_by` (schema 6) with its value.
    assert_eq!(row.sealed_by, "mk1:00");
    assert_eq!(
        (
            row.otp_type.as_str(),
            row.counter,
            row.skew,
            row.hotp_window
        ),
        ("totp", 0, 1, 10)
    );
    assert_eq!(
        (row.last_step, row.failed_verifies, row.failed_since),
        (None, 0, None)
    );
    // Opening it again finds nothing left to do.
    drop(store);
    totpd_store::connect(url, &options()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_1_sqlite_database_is_migrated_and_its_rows_read_as_version_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("totpd.db");
    let (account, secret) = (Uuid::new_v4(), Uuid::new_v4());
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(SQLITE_V1).unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);
             INSERT INTO schema_migrations VALUES (1, 0);",
        )
        .unwrap();
        let blob = |id: Uuid| format!("X'{}'", id.simple());
        conn.execute_batch(&v1_rows(account, secret, &blob))
            .unwrap();
    }
    check_migrated(&format!("sqlite://{}", path.display()), account, secret).await;
    let conn = rusqlite::Connection::open(&path).unwrap();
    let versions: Vec<i64> = conn
        .prepare("SELECT version FROM schema_migrations ORDER BY version")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6, 7, 8]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_1_postgres_database_is_migrated_and_its_rows_read_as_version_1() {
    let test = "a_schema_1_postgres_database_is_migrated_and_its_rows_read_as_version_1";
    let Some(server) = postgres_server(test) else {
        return;
    };
    let database = PgDatabase::create(&server, "totpd_store").await;
    let (account, secret) = (Uuid::new_v4(), Uuid::new_v4());
    {
        let mut conn = sqlx::PgConnection::connect(database.url()).await.unwrap();
        let text = |id: Uuid| format!("'{id}'");
        let hex = format!("'\\x{}'", Uuid::nil().simple());
        let setup = format!(
            "{POSTGRES_V1}
             CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL);
             INSERT INTO schema_migrations VALUES (1, 0);
             {}",
            v1_rows(account, secret, &text).replace(&text(Uuid::nil()), &hex)
        );
        sqlx::raw_sql(AssertSqlSafe(setup))
            .execute(&mut conn)
            .await
            .unwrap();
        let _ = conn.close().await;
    }
    check_migrated(database.url(), account, secret).await;
    let mut conn = sqlx::PgConnection::connect(database.url()).await.unwrap();
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM schema_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6, 7, 8]);
    let _ = conn.close().await;
}

/// Schema 5 (the audit log), the last before HOTP and verification.
const SQLITE_V5: [&str; 5] = [
    SQLITE_V1,
    include_str!("../../migrations/sqlite/0002_binding_versions.sql"),
    include_str!("../../migrations/sqlite/0003_secret_count_and_list_order.sql"),
    include_str!("../../migrations/sqlite/0004_key_scopes.sql"),
    include_str!("../../migrations/sqlite/0005_audit.sql"),
];
const POSTGRES_V5: [&str; 5] = [
    POSTGRES_V1,
    include_str!("../../migrations/postgres/0002_binding_versions.sql"),
    include_str!("../../migrations/postgres/0003_secret_count.sql"),
    include_str!("../../migrations/postgres/0004_key_scopes.sql"),
    include_str!("../../migrations/postgres/0005_audit.sql"),
];

/// A secret as schema 5 stored it (sealed with associated data version 2).
fn v5_secret(account: Uuid, secret: Uuid, uuid: &dyn Fn(Uuid) -> String) -> String {
    format!(
        "INSERT INTO accounts (id, name, created_at) VALUES ({a}, 'alice', 1);
         INSERT INTO secrets (id, account_id, label, issuer, algorithm, digits, period,
             created_at, key_id, nonce, ciphertext, aad_version)
             VALUES ({s}, {a}, 'old', NULL, 'SHA256', 8, 60, 3, 'mk1:00', {hash}, {hash}, 2);",
        a = uuid(account),
        s = uuid(secret),
        hash = uuid(Uuid::nil()),
    )
}

/// A secret of schema 5 reads as a TOTP secret with the default skew, a
/// counter of 0, no accepted step and no failed verification.
async fn check_v5_migrated(url: &str, account: Uuid, secret: Uuid) {
    let store = totpd_store::connect(url, &options()).await.unwrap();
    let row = store.secret(account, secret).await.unwrap().unwrap();
    assert_eq!((row.digits, row.period, row.aad_version), (8, 60, 2));
    assert_eq!(
        (
            row.otp_type.as_str(),
            row.counter,
            row.skew,
            row.hotp_window
        ),
        ("totp", 0, 1, 10)
    );
    assert_eq!(
        (row.last_step, row.failed_verifies, row.failed_since),
        (None, 0, None)
    );
    // A TOTP row hands out no HOTP counter.
    assert_eq!(
        store
            .take_hotp_counter(account, secret, &crate::audit::record(0, Some(account)))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_5_sqlite_database_is_migrated_and_its_secrets_read_as_totp() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("totpd.db");
    let (account, secret) = (Uuid::new_v4(), Uuid::new_v4());
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        for step in SQLITE_V5 {
            conn.execute_batch(step).unwrap();
        }
        conn.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);
             INSERT INTO schema_migrations VALUES (1, 0), (2, 0), (3, 0), (4, 0), (5, 0);",
        )
        .unwrap();
        let blob = |id: Uuid| format!("X'{}'", id.simple());
        conn.execute_batch(&v5_secret(account, secret, &blob))
            .unwrap();
    }
    check_v5_migrated(&format!("sqlite://{}", path.display()), account, secret).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_5_postgres_database_is_migrated_and_its_secrets_read_as_totp() {
    let test = "a_schema_5_postgres_database_is_migrated_and_its_secrets_read_as_totp";
    let Some(server) = postgres_server(test) else {
        return;
    };
    let database = PgDatabase::create(&server, "totpd_store").await;
    let (account, secret) = (Uuid::new_v4(), Uuid::new_v4());
    {
        let mut conn = sqlx::PgConnection::connect(database.url()).await.unwrap();
        let text = |id: Uuid| format!("'{id}'");
        let hex = format!("'\\x{}'", Uuid::nil().simple());
        let setup = format!(
            "{}
             CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL);
             INSERT INTO schema_migrations VALUES (1, 0), (2, 0), (3, 0), (4, 0), (5, 0);
             {}",
            POSTGRES_V5.join("\n"),
            v5_secret(account, secret, &text).replace(&text(Uuid::nil()), &hex)
        );
        sqlx::raw_sql(AssertSqlSafe(setup))
            .execute(&mut conn)
            .await
            .unwrap();
        let _ = conn.close().await;
    }
    check_v5_migrated(database.url(), account, secret).await;
}
