//! The one PostgreSQL fixture: a uniquely named database per test on the
//! server `TOTPD_TEST_POSTGRES_URL` names, dropped when the test is done
//! (even if it fails).

use std::time::Duration;

use sqlx::{AssertSqlSafe, Connection as _};

/// Admin URL of the PostgreSQL server that PostgreSQL tests use.
pub const PG_URL_ENV: &str = "TOTPD_TEST_POSTGRES_URL";

/// How long PostgreSQL may take to accept a connection before the test fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The admin URL from `TOTPD_TEST_POSTGRES_URL`, if set.
pub fn admin_url() -> Option<String> {
    std::env::var(PG_URL_ENV)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// The admin URL, or a loud skip of `test` ([`crate::or_skip`]: a failure
/// under CI) when none is configured.
pub fn admin_url_or_skip(test: &str) -> Option<String> {
    crate::or_skip(
        test,
        admin_url().ok_or_else(|| {
            format!(
                "needs PostgreSQL: {PG_URL_ENV} is not set \
                 (e.g. {PG_URL_ENV}=postgres://postgres@127.0.0.1:5432/postgres)"
            )
        }),
    )
}

/// `url` with the password of its user info replaced by `***`.
pub fn redact_password(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((userinfo, host)) = rest.split_once('@')
        && let Some((user, _)) = userinfo.split_once(':')
    {
        return format!("{scheme}://{user}:***@{host}");
    }
    url.to_owned()
}

/// A connection to `url`; the test fails (naming the server, never its
/// password) if PostgreSQL refuses or does not answer in 10 s.
pub async fn connect(url: &str) -> sqlx::PgConnection {
    match tokio::time::timeout(CONNECT_TIMEOUT, sqlx::PgConnection::connect(url)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => fail(format!(
            "PostgreSQL at {} is unreachable ({PG_URL_ENV}): {e}",
            redact_password(url)
        )),
        Err(_) => fail(format!(
            "PostgreSQL at {} did not answer within 10 s ({PG_URL_ENV})",
            redact_password(url)
        )),
    }
}

/// Runs `sql` (one or more statements) on `url`, failing the test on error.
pub async fn execute(url: &str, sql: &str) {
    let mut conn = connect(url).await;
    if let Err(e) = sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
    {
        fail(format!("SQL failed: {e}"));
    }
    let _ = conn.close().await;
}

// A test-support crate: the panic is the test's failure.
#[allow(clippy::panic)]
fn fail(message: String) -> ! {
    panic!("{message}")
}

/// `admin_url` with its database replaced by `name`, parameters kept.
pub fn database_url(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (admin_url, String::new()),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |i| after_scheme + i);
    format!("{}/{name}{query}", &base[..host_end])
}

/// A database created for one test and dropped (best effort) when this
/// value is dropped.
#[derive(Debug)]
pub struct PgDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PgDatabase {
    /// A new, empty database (no schema) on the server at `admin_url`, named
    /// `<prefix>_<random>`.
    pub async fn create(admin_url: &str, prefix: &str) -> PgDatabase {
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        execute(admin_url, &format!("CREATE DATABASE {name}")).await;
        PgDatabase {
            admin_url: admin_url.to_owned(),
            url: database_url(admin_url, &name),
            name,
        }
    }

    /// The database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL of the server's admin database it was created from.
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop is synchronous and may run inside a runtime, which cannot
        // block on itself: a thread with its own runtime does the drop.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                let connect = sqlx::PgConnection::connect(&admin_url);
                if let Ok(Ok(mut conn)) = tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
                    let _ = sqlx::raw_sql(AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_keep_the_server_and_parameters() {
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432/postgres", "t"),
            "postgres://postgres@127.0.0.1:5432/t"
        );
        assert_eq!(
            database_url("postgres://u@h/db?sslmode=disable", "t"),
            "postgres://u@h/t?sslmode=disable"
        );
        assert_eq!(database_url("postgres://u@h:1", "t"), "postgres://u@h:1/t");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_password("postgres://u:hunter2@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redact_password("postgres://u@h/db"), "postgres://u@h/db");
    }
}
