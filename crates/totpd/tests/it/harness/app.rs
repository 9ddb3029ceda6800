//! The in-process app: the real router (`totpd_api::router`) on a real
//! store, served on `127.0.0.1:0` inside the test's own runtime. For API
//! tests that need no process (no signals, CLI, logs or restarts): it
//! starts in milliseconds and speaks through the same client as
//! [`TestServer`](super::TestServer).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinHandle;
use totpd_api::{AppState, Limits, Metrics};
use totpd_vault::{Clock, MasterKey, SystemClock, Vault};

use super::env::ApiKey;
use super::http::{Api, Auth, Reply, http_client, send, with_key};
use totpd_testkit::db::FreshDatabase;

use super::{Backend, PG_URL_ENV, Serves, pg};

/// The API served in-process on a fresh store of one backend.
#[derive(Debug)]
pub struct TestApp {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The bootstrap key: an owner key of the `default` account.
    pub key: ApiKey,
    /// The vault behind the router, for what a test sets up directly.
    pub vault: Arc<Vault>,
    http: reqwest::Client,
    serving: JoinHandle<()>,
    master: MasterKey,
    clock: Arc<dyn Clock>,
    url: String,
    // Dropped after the task is aborted (fields drop in order): the store's
    // file or database outlives the server.
    _database: FreshDatabase,
}

/// Serves the real router with default limits on a fresh store of
/// `backend`: a SQLite file in a temporary directory, or a PostgreSQL
/// database of its own.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, Limits::default()).await
}

/// [`spawn_app`] with other request limits.
pub async fn spawn_app_with(backend: Backend, limits: Limits) -> TestApp {
    spawn_app_with_clock(backend, limits, Arc::new(SystemClock)).await
}

/// [`spawn_app_with`] whose handlers read `clock` (e.g. a
/// [`totpd_vault::ManualClock`], to decide time-dependent answers without
/// sleeping). Keys are still made at the system clock's time.
pub async fn spawn_app_with_clock(
    backend: Backend,
    limits: Limits,
    clock: Arc<dyn Clock>,
) -> TestApp {
    let database = match backend {
        Backend::Sqlite => FreshDatabase::sqlite(),
        Backend::Postgres => {
            let admin = pg::admin_url()
                .unwrap_or_else(|| panic!("{PG_URL_ENV} must be set for a PostgreSQL test"));
            FreshDatabase::postgres(&admin, "totpd_app").await
        }
    };
    let store = totpd_store::connect(database.url(), &totpd_store::ConnectOptions::default())
        .await
        .unwrap_or_else(|e| panic!("open the {backend:?} store: {e}"));
    let master = MasterKey::generate().expect("a random master key");
    let vault = Arc::new(
        Vault::open(store, master.clone())
            .await
            .expect("open the vault"),
    );
    let bootstrap = vault
        .bootstrap(clock.now())
        .await
        .expect("bootstrap the vault")
        .expect("a fresh vault makes a bootstrap key");
    let key = ApiKey {
        key_id: bootstrap.key_id,
        secret: bootstrap.secret.expose().to_owned(),
    };
    let (addr, serving) = serve(Arc::clone(&vault), Arc::clone(&clock), &limits).await;
    TestApp {
        addr,
        key,
        vault,
        http: http_client(),
        serving,
        master,
        clock,
        url: database.url().to_owned(),
        _database: database,
    }
}

/// Serves the router over `vault` on `127.0.0.1:0`.
async fn serve(
    vault: Arc<Vault>,
    clock: Arc<dyn Clock>,
    limits: &Limits,
) -> (String, JoinHandle<()>) {
    let state = AppState::new(vault, clock, Arc::new(Metrics::default()), limits.clone());
    let app = totpd_api::router(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("the bound address");
    let serving = tokio::spawn(async move {
        // As the real server does: each request carries the peer address.
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("serve the app");
    });
    (addr.to_string(), serving)
}

/// A second node of the same installation: its own store connection (pool,
/// or SQLite writer), vault and router on the same database, master key and
/// clock, as another `totpd serve` would be. Its `key` is the first node's.
#[derive(Debug)]
pub struct SiblingNode {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    key: ApiKey,
    http: reqwest::Client,
    serving: JoinHandle<()>,
}

impl Serves for SiblingNode {
    fn api_with(&self, auth: Auth) -> Api {
        Api {
            http: self.http.clone(),
            base: format!("http://{}", self.addr),
            auth,
        }
    }

    fn key(&self) -> &ApiKey {
        &self.key
    }
}

impl Drop for SiblingNode {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

impl TestApp {
    /// Starts another node on this app's database (see [`SiblingNode`]).
    pub async fn sibling(&self) -> SiblingNode {
        let store = totpd_store::connect(&self.url, &totpd_store::ConnectOptions::default())
            .await
            .unwrap_or_else(|e| panic!("open the store again: {e}"));
        let vault = Arc::new(
            Vault::open(store, self.master.clone())
                .await
                .expect("open the vault again"),
        );
        let (addr, serving) = serve(vault, Arc::clone(&self.clock), &Limits::default()).await;
        SiblingNode {
            addr,
            key: self.key.clone(),
            http: http_client(),
            serving,
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The API as the `default` account's owner key, in the SDKs' header form.
    pub fn api(&self) -> Api {
        Serves::api(self)
    }

    /// The API as `key`.
    pub fn api_as(&self, key: &ApiKey) -> Api {
        Serves::api_as(self, key)
    }

    /// The API with any kind of credentials.
    pub fn api_with(&self, auth: Auth) -> Api {
        Api {
            http: self.http.clone(),
            base: format!("http://{}", self.addr),
            auth,
        }
    }

    /// A new owner key of `account` (created if needed), as
    /// `totpd keys create --account` makes it.
    pub async fn create_key(&self, account: &str) -> ApiKey {
        let made = self
            .vault
            .create_api_key(
                &totpd_vault::AccountName::parse(account).expect("a valid account name"),
                SystemClock.now(),
            )
            .await
            .unwrap_or_else(|e| panic!("create a key of {account:?}: {e}"));
        ApiKey {
            key_id: made.key_id,
            secret: made.secret.expose().to_owned(),
        }
    }

    /// `GET path` without credentials.
    pub async fn get_public(&self, path: &str) -> Reply {
        self.api_with(Auth::None).get(path).await
    }

    /// Asserts the app still serves and answers `/healthz`.
    pub async fn assert_healthy(&mut self) {
        assert!(!self.serving.is_finished(), "the in-process app stopped");
        let reply = self.get_public("/healthz").await;
        assert_eq!(reply.status, 200, "/healthz: {}", reply.text);
    }
}

impl Serves for TestApp {
    fn api_with(&self, auth: Auth) -> Api {
        TestApp::api_with(self, auth)
    }

    fn key(&self) -> &ApiKey {
        &self.key
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

/// The app gives each request its peer address, as the real server does:
/// without it the failed-authentication lockout would not apply.
#[tokio::test]
async fn the_in_process_app_knows_the_peer_address_so_the_lockout_applies() {
    let limits = Limits {
        auth_failure_limit: 3,
        auth_failure_window: std::time::Duration::from_secs(60),
        ..Limits::default()
    };
    let app = spawn_app_with(Backend::Sqlite, limits).await;
    let client = http_client();
    let url = app.url("/api/v2/totp/secrets");
    let right = send(with_key(client.get(&url), &app.key.key_id, &app.key.secret)).await;
    right.expect_ok();
    for _ in 0..3 {
        send(with_key(client.get(&url), &app.key.key_id, "wrong"))
            .await
            .expect_error(401, "unauthorized");
    }
    send(with_key(client.get(&url), &app.key.key_id, &app.key.secret))
        .await
        .expect_error(429, "rate_limited");
}
