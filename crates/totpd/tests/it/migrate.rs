//! `totpd migrate`: the source is copied as of one moment while it is being
//! written, a copy that fails its verification leaves the target empty, and
//! the URLs can come from the environment and never show their passwords.
//! (The full round trip, SQLite to PostgreSQL and served, is in `migrate_to_postgres`.)

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::{AssertSqlSafe, Connection as _};
use tokio::task::JoinSet;
use totpd_vault::{AccountRow, ApiKeyRow, SecretRow};
use uuid::Uuid;

use crate::harness::{
    Backend, CliOutput, Env, Options, PG_URL_ENV, TestServer, backend_available, on_both_backends,
    on_postgres_only, run_totpd, run_totpd_with_env,
};

on_both_backends! {
    a_migration_given_its_urls_only_in_the_environment_copies_everything
        => a_migration_given_its_urls_only_in_the_environment_copies_everything_on_sqlite,
           a_migration_given_its_urls_only_in_the_environment_copies_everything_on_postgres;
    a_failed_verification_leaves_the_target_empty_and_ready_for_another_run
        => a_failed_verification_leaves_the_target_empty_and_ready_for_another_run_on_sqlite,
           a_failed_verification_leaves_the_target_empty_and_ready_for_another_run_on_postgres;
    a_source_changed_between_the_copy_of_two_tables_is_copied_as_it_was_before
        => a_source_changed_between_the_copy_of_two_tables_is_copied_as_it_was_before_on_sqlite,
           a_source_changed_between_the_copy_of_two_tables_is_copied_as_it_was_before_on_postgres;
    a_migration_while_serve_creates_and_deletes_secrets_and_keys_copies_one_state_of_the_source
        => a_migration_while_serve_creates_and_deletes_secrets_and_keys_copies_one_state_of_the_source_on_sqlite,
           a_migration_while_serve_creates_and_deletes_secrets_and_keys_copies_one_state_of_the_source_on_postgres;
}

on_postgres_only! {
    no_message_of_a_migration_shows_a_password_of_its_urls
        => no_message_of_a_migration_shows_a_password_of_its_urls_on_postgres;
}

/// Every table, as totpd stores it.
#[derive(PartialEq)]
struct Tables {
    meta: Vec<(String, Vec<u8>)>,
    accounts: Vec<AccountRow>,
    keys: Vec<ApiKeyRow>,
    secrets: Vec<SecretRow>,
}

impl Tables {
    fn is_empty(&self) -> bool {
        self.meta.is_empty()
            && self.accounts.is_empty()
            && self.keys.is_empty()
            && self.secrets.is_empty()
    }

    /// Row counts, for messages (rows themselves print redacted anyway).
    fn summary(&self) -> String {
        format!(
            "{} meta, {} accounts, {} keys, {} secrets",
            self.meta.len(),
            self.accounts.len(),
            self.keys.len(),
            self.secrets.len()
        )
    }

    fn secret_ids(&self) -> BTreeSet<Uuid> {
        self.secrets.iter().map(|s| s.id).collect()
    }

    fn key_ids(&self) -> BTreeSet<String> {
        self.keys.iter().map(|k| k.key_id.clone()).collect()
    }
}

/// Every row of the database at `url`, read through totpd's own store (so
/// SQLite and PostgreSQL compare equal), as one snapshot.
async fn tables(url: &str) -> Tables {
    let store = totpd_store::connect(
        &totpd_store::read_only_url(url),
        &totpd_store::ConnectOptions::default(),
    )
    .await
    .expect("open the database to read it");
    let mut snapshot = store.snapshot().await.expect("a snapshot");
    let meta = snapshot.meta().await.unwrap();
    let accounts = snapshot.accounts().await.unwrap();
    let keys = snapshot.api_keys().await.unwrap();
    let mut secrets = Vec::new();
    let mut after = None;
    loop {
        let page = snapshot.secrets(after, 1_000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        secrets.extend(page);
    }
    Tables {
        meta,
        accounts,
        keys,
        secrets,
    }
}

fn url_of(env: &Env) -> String {
    match env.database_url() {
        Some(url) => url.to_owned(),
        None => format!("sqlite://{}", env.sqlite_file().display()),
    }
}

fn migrate(from: &str, to: &str) -> CliOutput {
    run_totpd(&["migrate", "--from", from, "--to", to])
}

fn assert_succeeded(out: &CliOutput, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed with {}:\n{}{}",
        out.status,
        out.stdout,
        out.stderr
    );
}

/// A SQLite installation with secrets in two accounts and a revoked key,
/// its server stopped.
async fn installation() -> Env {
    let env = Env::new(Backend::Sqlite).await;
    let mut server = TestServer::start_in(&env, Options::default());
    let other = env.create_key("other");
    for (key, n) in [(&server.key, 3), (&other, 2)] {
        let api = server.api_as(key);
        for i in 0..n {
            api.create_ok(json!({"label": format!("user{i}@example.com"), "issuer": "Example"}))
                .await;
        }
    }
    let revoked = env.create_key("other");
    env.run_ok(&["keys", "revoke", &revoked.key_id]);
    assert_eq!(server.kill().code(), Some(0));
    env
}

/// A migrated, empty database at `env`'s URL (the schema, no rows), for a
/// test to change before `totpd migrate` runs.
async fn empty_schema(env: &Env) {
    let store = totpd_store::connect(&url_of(env), &totpd_store::ConnectOptions::default())
        .await
        .expect("create the target's schema");
    assert!(store.is_empty().await.unwrap());
}

async fn pg_execute(url: &str, sql: &str) {
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .expect("connect to the test database");
    sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let _ = conn.close().await;
}

// ---------------------------------------------------------------------------
// URLs from the environment

async fn a_migration_given_its_urls_only_in_the_environment_copies_everything(target: Backend) {
    let source = installation().await;
    let target = Env::new(target).await;
    let (from, to) = (url_of(&source), url_of(&target));
    let out = run_totpd_with_env(
        &["migrate"],
        &[
            ("TOTPD_MIGRATE_FROM", from.as_str()),
            ("TOTPD_MIGRATE_TO", to.as_str()),
        ],
    );
    assert_succeeded(&out, "totpd migrate with TOTPD_MIGRATE_FROM/TO");
    let (copied, original) = (tables(&to).await, tables(&from).await);
    assert_eq!(original.secrets.len(), 5, "{}", original.summary());
    assert!(
        copied == original,
        "the target ({}) differs from the source ({})",
        copied.summary(),
        original.summary()
    );
    let help = run_totpd(&["migrate", "--help"]);
    for var in ["TOTPD_MIGRATE_FROM", "TOTPD_MIGRATE_TO"] {
        assert!(help.stdout.contains(var), "--help does not name {var}");
    }
}

/// A password in either URL, given either way, appears in no output: not in
/// the messages about URLs that are wrong (even mistyped so that the
/// password ends up in a database name the server then quotes back), and not
/// in `--help`, which shows which variables are set.
async fn no_message_of_a_migration_shows_a_password_of_its_urls() {
    let source = installation().await;
    let from = url_of(&source);
    let admin = std::env::var(PG_URL_ENV).unwrap();
    let (user, host, port) = server_of(&admin);
    let password = format!("pw{}", Uuid::new_v4().simple());
    let bad_targets = [
        // One slash short: no host part, so `user:password@host:port/db`
        // becomes the database name, and PostgreSQL says it does not exist.
        format!(
            "postgres:/{user}:{password}@{host}:{port}/totpd?host={host}&port={port}&user={user}"
        ),
        format!("postgres://{user}:{password}@{host}:{port}/totpd_no_such_database"),
        format!("postgres://{user}:{password}@{host}:99999/totpd"),
        format!("postgres://{user}@{host}:{port}/totpd_no_such_database?password={password}"),
        format!("postgress://{user}:{password}@{host}:{port}/totpd"),
    ];
    let mut leaks = Vec::new();
    for to in &bad_targets {
        let by_flag = migrate(&from, to);
        let by_env = run_totpd_with_env(
            &["migrate"],
            &[("TOTPD_MIGRATE_FROM", &from), ("TOTPD_MIGRATE_TO", to)],
        );
        for (how, out) in [("--to", &by_flag), ("TOTPD_MIGRATE_TO", &by_env)] {
            assert!(!out.status.success(), "migrate to a bad URL succeeded");
            assert!(
                out.stderr.contains("target") || out.stderr.contains("--to"),
                "the error does not point at the target: {}",
                out.stderr.replace(&password, "***")
            );
            if out.stderr.contains(&password) || out.stdout.contains(&password) {
                leaks.push(format!(
                    "{how}: {}",
                    out.stderr.trim().replace(&password, "<PASSWORD>")
                ));
            }
        }
    }
    // A bad source URL with a password, and --help with both variables set.
    let bad_source = format!("postgres:/{user}:{password}@{host}:{port}/x?host={host}&port={port}");
    let out = migrate(&bad_source, "sqlite:///nonexistent/target.db");
    assert!(!out.status.success());
    if out.stderr.contains(&password) {
        leaks.push(format!(
            "--from: {}",
            out.stderr.trim().replace(&password, "<PASSWORD>")
        ));
    }
    let help = run_totpd_with_env(
        &["migrate", "--help"],
        &[
            ("TOTPD_MIGRATE_FROM", &bad_source),
            ("TOTPD_MIGRATE_TO", &bad_targets[1]),
        ],
    );
    assert!(help.status.success());
    if help.stdout.contains(&password) {
        leaks.push("--help shows the value of a variable".to_owned());
    }
    assert!(leaks.is_empty(), "passwords shown:\n{}", leaks.join("\n"));
}

/// User, host and port of a `postgres://user[:pw]@host[:port]/db` URL.
fn server_of(url: &str) -> (String, String, String) {
    let rest = url.split_once("://").expect("a URL").1;
    let authority = rest.split(['/', '?']).next().unwrap();
    let (userinfo, hostport) = authority
        .rsplit_once('@')
        .unwrap_or(("postgres", authority));
    let user = userinfo.split(':').next().unwrap().to_owned();
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "5432"));
    (user, host.to_owned(), port.to_owned())
}

// ---------------------------------------------------------------------------
// A failed verification

/// A trigger on the target changes every secret as it is inserted, so the
/// rows read back differ from the source's: the copy fails its
/// verification after every row went in. Nothing of it may remain.
async fn a_failed_verification_leaves_the_target_empty_and_ready_for_another_run(target: Backend) {
    let source = installation().await;
    let target = Env::new(target).await;
    let (from, to) = (url_of(&source), url_of(&target));
    empty_schema(&target).await;
    match target.backend {
        Backend::Sqlite => {
            let conn = rusqlite::Connection::open(target.sqlite_file()).unwrap();
            conn.execute_batch(
                "CREATE TRIGGER tamper AFTER INSERT ON secrets BEGIN \
                 UPDATE secrets SET label = label || ' (changed)' WHERE id = NEW.id; END;",
            )
            .unwrap();
        }
        Backend::Postgres => {
            pg_execute(
                &to,
                "CREATE FUNCTION tamper() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN NEW.label := NEW.label || ' (changed)'; RETURN NEW; END $$; \
                 CREATE TRIGGER tamper BEFORE INSERT ON secrets \
                 FOR EACH ROW EXECUTE FUNCTION tamper();",
            )
            .await;
        }
    }

    let failed = migrate(&from, &to);
    assert!(
        !failed.status.success(),
        "a copy that reads back differently was accepted:\n{}",
        failed.stdout
    );
    let left = tables(&to).await;
    assert!(
        left.is_empty(),
        "a failed verification left rows in the target: {}",
        left.summary()
    );
    assert!(
        failed.stderr.contains("verification failed") && failed.stderr.contains("secrets"),
        "the error does not say the verification of the secrets failed:\n{}",
        failed.stderr
    );

    match target.backend {
        Backend::Sqlite => {
            let conn = rusqlite::Connection::open(target.sqlite_file()).unwrap();
            conn.execute_batch("DROP TRIGGER tamper").unwrap();
        }
        Backend::Postgres => pg_execute(&to, "DROP TRIGGER tamper ON secrets").await,
    }
    assert_succeeded(&migrate(&from, &to), "the second totpd migrate");
    assert!(
        tables(&to).await == tables(&from).await,
        "the second copy differs from its source"
    );
}

// ---------------------------------------------------------------------------
// One snapshot of the source

/// The copy into PostgreSQL is held up, by a lock, at the moment it inserts
/// API keys: accounts and keys are in, secrets not yet. Meanwhile the source
/// gets a new account with a key, a new secret, and loses a secret. The copy
/// must be of the source as it was when the migration started, whole, and
/// not accounts and keys of then with secrets of later.
async fn a_source_changed_between_the_copy_of_two_tables_is_copied_as_it_was_before(
    source_backend: Backend,
) {
    let name = "a_source_changed_between_the_copy_of_two_tables_is_copied_as_it_was_before";
    if !backend_available(Backend::Postgres, name) {
        return;
    }
    let source = Env::new(source_backend).await;
    let server = TestServer::start_in(&source, Options::default());
    let api = server.api();
    let mut ids = Vec::new();
    for i in 0..4 {
        let created = api.create_ok(json!({"label": format!("s{i}")})).await;
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    let target = Env::new(Backend::Postgres).await;
    let (from, to) = (url_of(&source), url_of(&target));
    empty_schema(&target).await;
    let before = tables(&from).await;

    // Inserting into api_keys waits for this lock; reading does not.
    let mut lock = sqlx::PgConnection::connect(&to).await.unwrap();
    sqlx::raw_sql("BEGIN; LOCK TABLE api_keys IN SHARE MODE")
        .execute(&mut lock)
        .await
        .unwrap();
    let (from_, to_) = (from.clone(), to.clone());
    let copy = tokio::task::spawn_blocking(move || migrate(&from_, &to_));
    wait_for_lock_waiter(&to, "api_keys").await;

    source.create_key("late");
    api.create_ok(json!({"label": "written during the copy"}))
        .await;
    api.delete(&ids[0]).await.expect_ok();
    let changed = tables(&from).await;
    assert!(changed.accounts.len() == before.accounts.len() + 1);
    assert!(changed.secret_ids() != before.secret_ids());

    sqlx::raw_sql("COMMIT").execute(&mut lock).await.unwrap();
    let _ = lock.close().await;
    let out = copy.await.unwrap();
    assert_succeeded(&out, "totpd migrate of a source written during the copy");
    let copied = tables(&to).await;
    assert!(
        copied == before,
        "the copy ({}) is not the source as it was ({})",
        copied.summary(),
        before.summary()
    );
}

/// Waits until some session waits for a lock on `table` of the database.
async fn wait_for_lock_waiter(url: &str, table: &str) {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
             WHERE c.relname = $1 AND NOT l.granted",
        )
        .bind(table)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "totpd migrate never came to insert into {table}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = conn.close().await;
}

/// One acknowledged write to the source.
enum Op {
    AddSecret(Uuid),
    DeleteSecret(Uuid),
    AddKey(String),
}

/// Secrets seeded before the migration: a few copy pages.
const SEEDED: usize = 2_500;

/// `serve` keeps creating and deleting secrets and `keys create` keeps
/// making keys (one writer, so the source goes through one known sequence
/// of states) while `totpd migrate` copies it. The copy must be one of
/// those states, exactly: not a mixture of pages or tables read at
/// different moments.
async fn a_migration_while_serve_creates_and_deletes_secrets_and_keys_copies_one_state_of_the_source(
    source_backend: Backend,
) {
    let source = Env::new(source_backend).await;
    let unlimited = Options {
        env: vec![("TOTPD_RATE_LIMIT_PER_KEY".to_owned(), "0".to_owned())],
        ..Options::default()
    };
    let server = TestServer::start_in(&source, unlimited);
    let api = server.api();
    let mut seeding = JoinSet::new();
    for worker in 0..16 {
        let api = api.clone();
        seeding.spawn(async move {
            for i in (worker..SEEDED).step_by(16) {
                api.create_ok(json!({"label": format!("seed{i}")})).await;
            }
        });
    }
    while let Some(done) = seeding.join_next().await {
        done.unwrap();
    }
    let target = Env::new(Backend::Sqlite).await;
    let (from, to) = (url_of(&source), url_of(&target));
    let start = tables(&from).await;
    let mut live: Vec<Uuid> = start.secrets.iter().map(|s| s.id).collect();
    assert_eq!(live.len(), SEEDED);

    let mut ops = Vec::new();
    let mut copy = None;
    let mut ops_before_copy = 0;
    let mut n = 0usize;
    loop {
        if copy.is_none() && ops.len() >= 6 {
            ops_before_copy = ops.len();
            let (from, to) = (from.clone(), to.clone());
            copy = Some(tokio::task::spawn_blocking(move || migrate(&from, &to)));
        }
        if copy.as_ref().is_some_and(|c| c.is_finished()) {
            break;
        }
        n += 1;
        if n.is_multiple_of(16) {
            let env = source.clone();
            let account = format!("acct{n}");
            let key = tokio::task::spawn_blocking(move || env.create_key(&account))
                .await
                .unwrap();
            ops.push(Op::AddKey(key.key_id));
        } else if n.is_multiple_of(2) {
            // Spread over the whole id range, so over every copy page.
            let victim = live.swap_remove((n * 7919) % live.len());
            api.delete(&victim.to_string()).await.expect_ok();
            ops.push(Op::DeleteSecret(victim));
        } else {
            let created = api.create_ok(json!({"label": format!("new{n}")})).await;
            let id: Uuid = created["id"].as_str().unwrap().parse().unwrap();
            live.push(id);
            ops.push(Op::AddSecret(id));
        }
    }
    let out = copy.unwrap().await.unwrap();
    assert_succeeded(&out, "totpd migrate of a source being written");
    let during = ops.len() - ops_before_copy;
    assert!(during >= 1, "no write happened during the copy");

    let copied = tables(&to).await;
    let (want_secrets, want_keys) = (copied.secret_ids(), copied.key_ids());
    let (mut secrets, mut keys) = (start.secret_ids(), start.key_ids());
    let mut matched = (secrets == want_secrets && keys == want_keys).then_some(0);
    for (i, op) in ops.iter().enumerate() {
        match op {
            Op::AddSecret(id) => secrets.insert(*id),
            Op::DeleteSecret(id) => secrets.remove(id),
            Op::AddKey(key_id) => keys.insert(key_id.clone()),
        };
        if matched.is_none() && secrets == want_secrets && keys == want_keys {
            matched = Some(i + 1);
        }
    }
    let Some(state) = matched else {
        panic!(
            "the copy ({}) is none of the {} states the source went through",
            copied.summary(),
            ops.len() + 1
        );
    };
    assert!(
        state >= ops_before_copy,
        "the copy is of state {state}, from before the migration started (state {ops_before_copy})"
    );
    let accounts: BTreeSet<Uuid> = copied.accounts.iter().map(|a| a.id).collect();
    assert!(
        copied
            .secrets
            .iter()
            .all(|s| accounts.contains(&s.account_id))
    );
    assert!(copied.keys.iter().all(|k| accounts.contains(&k.account_id)));
}
