//! The table list that drives copying, its verification and the emptiness
//! check names exactly the tables of each backend's migrated schema, so a
//! table added to a migration but not to the list fails here.

use sqlx::Connection as _;
use totpd_store::Table;

use crate::db::{TestDb, for_each_backend};

for_each_backend!(the_table_list_is_every_table_of_the_schema);

async fn the_table_list_is_every_table_of_the_schema(db: &TestDb) {
    let mut schema: Vec<String> = match db.sqlite_file() {
        Some(file) => {
            let conn = rusqlite::Connection::open(file).unwrap();
            let mut statement = conn
                .prepare(
                    "SELECT name FROM sqlite_schema WHERE type = 'table' \
                     AND name NOT LIKE 'sqlite_%'",
                )
                .unwrap();
            statement
                .query_map([], |row| row.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        }
        None => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            let names = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap();
            let _ = conn.close().await;
            names
        }
    };
    schema.retain(|name| name != "schema_migrations");
    schema.sort_unstable();
    let mut listed: Vec<&str> = Table::ALL.iter().map(|table| table.name()).collect();
    listed.sort_unstable();
    assert_eq!(schema, listed);
}
