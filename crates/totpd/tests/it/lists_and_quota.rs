//! Large accounts: a list is streamed page by page, so the server's memory
//! stays bounded whatever the account's size (and the document is the one
//! the Sendblue SDKs parse), and an account cannot grow past its secret
//! quota, even with creates racing each other.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection as _};
use uuid::Uuid;

use crate::harness::{Backend, Env, Options, Starting, TestServer, on_both_backends};

on_both_backends! {
    parallel_lists_of_a_100000_secret_account_keep_the_server_memory_bounded
        => parallel_lists_of_a_100000_secret_account_keep_the_server_memory_bounded_on_sqlite,
           parallel_lists_of_a_100000_secret_account_keep_the_server_memory_bounded_on_postgres;
    creates_beyond_the_account_quota_are_refused_even_when_they_race
        => creates_beyond_the_account_quota_are_refused_even_when_they_race_on_sqlite,
           creates_beyond_the_account_quota_are_refused_even_when_they_race_on_postgres;
}

/// Secrets copied into the account besides the one created over HTTP.
const SEEDED: u64 = 100_000;
/// Lists run at once.
const PARALLEL_LISTS: usize = 8;
/// How much the server's peak RSS may grow while the lists run. Building
/// the whole list in memory, as totpd once did, costs well over 100 MiB for
/// one list of 100,000 secrets (and eight at once several times that);
/// streamed, each list holds one page of 500.
const RSS_GROWTH_BOUND_KIB: u64 = 48 * 1024;

/// `VmHWM` (peak resident set) and `VmRSS` of a process, in KiB.
pub(crate) fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Copies the secret `template` `count` times into its account, straight in
/// the database (fast, and whatever columns the schema has): fresh ids, and
/// `created_at` values after the template's, three secrets per millisecond
/// so the list's tie-break by id is exercised. Returns every id of the
/// account, as the database has them.
async fn seed_copies(env: &Env, template: &str, count: u64) -> BTreeSet<String> {
    match env.backend {
        Backend::Sqlite => {
            let path = env.sqlite_file();
            let template = Uuid::parse_str(template).unwrap();
            tokio::task::spawn_blocking(move || {
                let conn = rusqlite::Connection::open(&path).unwrap();
                conn.busy_timeout(Duration::from_secs(20)).unwrap();
                let columns: Vec<String> = conn
                    .prepare("SELECT name FROM pragma_table_info('secrets')")
                    .unwrap()
                    .query_map([], |row| row.get(0))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                let values: Vec<String> = columns
                    .iter()
                    .map(|c| match c.as_str() {
                        "id" => "randomblob(16)".to_owned(),
                        "created_at" => "s.created_at + 1 + n.i / 3".to_owned(),
                        other => format!("s.\"{other}\""),
                    })
                    .collect();
                let names: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
                conn.execute(
                    &format!(
                        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?2) \
                         INSERT INTO secrets ({}) SELECT {} FROM n, secrets s WHERE s.id = ?1",
                        names.join(", "),
                        values.join(", ")
                    ),
                    rusqlite::params![template.as_bytes().as_slice(), i64::try_from(count).unwrap()],
                )
                .unwrap();
                let mut statement = conn
                    .prepare(
                        "SELECT id FROM secrets WHERE account_id = \
                         (SELECT account_id FROM secrets WHERE id = ?1)",
                    )
                    .unwrap();
                statement
                    .query_map([template.as_bytes().as_slice()], |row| {
                        row.get::<_, Vec<u8>>(0)
                    })
                    .unwrap()
                    .map(|bytes| Uuid::from_slice(&bytes.unwrap()).unwrap().to_string())
                    .collect()
            })
            .await
            .unwrap()
        }
        Backend::Postgres => {
            let url = env.database_url().expect("a PostgreSQL database");
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            let columns: Vec<String> = sqlx::query_scalar(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = 'public' AND table_name = 'secrets' ORDER BY ordinal_position",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap();
            let values: Vec<String> = columns
                .iter()
                .map(|c| match c.as_str() {
                    "id" => "gen_random_uuid()".to_owned(),
                    "created_at" => "s.created_at + 1 + n.i / 3".to_owned(),
                    other => format!("s.\"{other}\""),
                })
                .collect();
            let names: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
            let template = Uuid::parse_str(template).unwrap();
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO secrets ({}) SELECT {} FROM generate_series(0, $2 - 1) AS n(i), \
                 secrets s WHERE s.id = $1",
                names.join(", "),
                values.join(", ")
            )))
            .bind(template)
            .bind(i64::try_from(count).unwrap())
            .execute(&mut conn)
            .await
            .unwrap();
            // What autovacuum does soon after a bulk insert; without it the
            // planner still takes the table for tiny.
            sqlx::raw_sql("ANALYZE secrets")
                .execute(&mut conn)
                .await
                .unwrap();
            let ids: Vec<Uuid> = sqlx::query_scalar(
                "SELECT id FROM secrets WHERE account_id = \
                 (SELECT account_id FROM secrets WHERE id = $1)",
            )
            .bind(template)
            .fetch_all(&mut conn)
            .await
            .unwrap();
            let _ = conn.close().await;
            ids.iter().map(Uuid::to_string).collect()
        }
    }
}

/// Checks one list answer against the account's ids: every one exactly
/// once, ordered by `created_at`, then `id`, no secret material.
fn check_listed(body: &Value, expected: &BTreeSet<String>) {
    assert_eq!(body["status"], "OK");
    let listed = body["totp_secrets"]
        .as_array()
        .expect("a totp_secrets array");
    assert_eq!(listed.len(), expected.len(), "listed count");
    let mut previous: Option<(String, String)> = None;
    let mut ids = BTreeSet::new();
    for secret in listed {
        let key = (
            secret["created_at"].as_str().unwrap().to_owned(),
            secret["id"].as_str().unwrap().to_owned(),
        );
        if let Some(previous) = &previous {
            assert!(previous < &key, "out of order: {previous:?} then {key:?}");
        }
        assert!(
            secret.get("secret").is_none(),
            "a list never carries a secret"
        );
        ids.insert(key.1.clone());
        previous = Some(key);
    }
    assert!(&ids == expected, "the listed ids are not the account's ids");
}

async fn parallel_lists_of_a_100000_secret_account_keep_the_server_memory_bounded(
    backend: Backend,
) {
    let server = TestServer::start(backend).await;
    let api = server.api();
    let template = api
        .create_ok(json!({"label": "bulk@example.com", "issuer": "Bulk"}))
        .await;
    let expected = seed_copies(&server.env, template["id"].as_str().unwrap(), SEEDED).await;
    assert_eq!(u64::try_from(expected.len()).unwrap(), SEEDED + 1);

    let (peak_before, rss_before) = memory_kib(server.pid());
    for round in 0..2 {
        let lists: Vec<_> = (0..PARALLEL_LISTS)
            .map(|_| {
                // A client of its own per list: no kept-alive connection
                // that the server may have closed while idle is reused, and
                // patience for a busy machine (this is no timing test).
                let api = api.with_timeout(Duration::from_secs(120));
                tokio::spawn(async move { api.list().await })
            })
            .collect();
        for list in lists {
            let reply = list.await.unwrap();
            let body = reply.expect_ok();
            if round == 0 {
                check_listed(&body, &expected);
            }
        }
    }
    let (peak_after, rss_after) = memory_kib(server.pid());
    eprintln!(
        "server VmHWM {peak_before} -> {peak_after} KiB, VmRSS {rss_before} -> {rss_after} KiB"
    );
    assert!(
        peak_after.saturating_sub(peak_before) <= RSS_GROWTH_BOUND_KIB,
        "{PARALLEL_LISTS} parallel lists of {} secrets took the server's peak RSS from {peak_before} KiB to {peak_after} KiB",
        SEEDED + 1
    );
}

async fn creates_beyond_the_account_quota_are_refused_even_when_they_race(backend: Backend) {
    const QUOTA: usize = 5;
    let env = Env::new(backend).await;
    let options = Options {
        env: vec![(
            "TOTPD_MAX_SECRETS_PER_ACCOUNT".to_owned(),
            QUOTA.to_string(),
        )],
        ..Options::default()
    };
    let server = TestServer::start_in(&env, options);
    let api = server.api();
    for n in 0..2 {
        api.create_ok(json!({"label": format!("first-{n}")})).await;
    }
    let racing: Vec<_> = (0..24)
        .map(|n| {
            let api = api.clone();
            tokio::spawn(async move { api.create(json!({"label": format!("race-{n}")})).await })
        })
        .collect();
    let mut accepted = 0;
    for create in racing {
        let reply = create.await.unwrap();
        if reply.status == 200 {
            accepted += 1;
        } else {
            let body = reply.expect_error(403, "quota_exceeded");
            assert!(
                body["message"]
                    .as_str()
                    .unwrap()
                    .contains(&QUOTA.to_string()),
                "the message names the quota: {}",
                reply.text
            );
        }
    }
    assert_eq!(
        accepted,
        QUOTA - 2,
        "creates accepted while racing for the last places"
    );
    let listed = api.listed_ids().await;
    assert_eq!(listed.len(), QUOTA);

    // A delete makes room again; another account has a quota of its own.
    api.delete(&listed[0]).await.expect_ok();
    api.create_ok(json!({"label": "after-delete"})).await;
    api.create(json!({"label": "one-too-many"}))
        .await
        .expect_error(403, "quota_exceeded");
    let other = server.api_as(&env.create_key("other"));
    other.create_ok(json!({"label": "elsewhere"})).await;
}

#[tokio::test]
async fn a_secret_quota_out_of_range_stops_the_server_at_start() {
    let env = Env::new(Backend::Sqlite).await;
    for bad in ["0", "-1", "1000000001", "lots"] {
        let refused = Starting::spawn(
            &env,
            Options {
                env: vec![("TOTPD_MAX_SECRETS_PER_ACCOUNT".to_owned(), bad.to_owned())],
                ..Options::default()
            },
        )
        .refused();
        assert_eq!(refused.status.code(), Some(2), "{bad}: {}", refused.stderr);
        assert!(
            refused.stderr.contains("max-secrets-per-account"),
            "{bad}: the error names the setting: {}",
            refused.stderr
        );
    }
}
