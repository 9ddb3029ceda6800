//! The unauthenticated endpoints: `/readyz` asks the database at most about
//! once a second however often it is called, and `/metrics` can be moved to
//! a listen address of its own or put behind a bearer token.

use std::time::{Duration, Instant};

use crate::harness::{
    Auth, Backend, TestServer, metric, on_both_backends, on_postgres_only, random_bytes,
};

/// The readiness probes counted by `/metrics`.
const PROBES: &str = "totpd_readiness_probes_total";

async fn server_with(backend: Backend, vars: &[(&str, String)]) -> TestServer {
    TestServer::with_env(backend, vars).await
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("an HTTP client")
}

// ---------------------------------------------------------------------------
// /readyz

on_both_backends! {
    a_flood_of_readyz_asks_the_database_about_once_a_second => a_flood_of_readyz_asks_the_database_about_once_a_second_on_sqlite, a_flood_of_readyz_asks_the_database_about_once_a_second_on_postgres;
    readyz_asks_the_database_again_once_its_answer_is_a_second_old => readyz_asks_the_database_again_once_its_answer_is_a_second_old_on_sqlite, readyz_asks_the_database_again_once_its_answer_is_a_second_old_on_postgres;
}

async fn a_flood_of_readyz_asks_the_database_about_once_a_second(backend: Backend) {
    let server = server_with(backend, &[]).await;
    let before = metric(&server, PROBES).await;
    let started = Instant::now();
    // 8 clients, 40 requests each.
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let api = server.api_with(Auth::None);
            tokio::spawn(async move {
                for _ in 0..40 {
                    api.get("/readyz").await.expect_ok();
                }
            })
        })
        .collect();
    for client in clients {
        client.await.expect("a client task");
    }
    let elapsed = started.elapsed();
    let probes = metric(&server, PROBES).await - before;
    // One probe per started second of the flood (plus one for a second
    // boundary at each end), not one per request.
    let allowed = elapsed.as_secs() + 2;
    assert!(
        (1..=allowed).contains(&probes),
        "320 /readyz in {elapsed:?} made {probes} database probes (at most {allowed} expected)"
    );
}

async fn readyz_asks_the_database_again_once_its_answer_is_a_second_old(backend: Backend) {
    let server = server_with(backend, &[]).await;
    server.get_public("/readyz").await.expect_ok();
    let first = metric(&server, PROBES).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    server.get_public("/readyz").await.expect_ok();
    assert_eq!(
        metric(&server, PROBES).await,
        first + 1,
        "a /readyz 1.3 s after the last probe did not probe again"
    );
}

on_postgres_only! {
    readyz_reports_a_database_outage_and_its_end_within_seconds => readyz_reports_a_database_outage_and_its_end_within_seconds_on_postgres;
}

/// Polls `/readyz` until it answers `status`; how long that took.
async fn readyz_turns(server: &TestServer, status: u16, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let reply = server.get_public("/readyz").await;
        if reply.status == status {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "/readyz still answers {} after {within:?}: {}",
            reply.status,
            reply.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The cached answer never hides an outage for long: the database refuses
/// connections, /readyz turns 503 within seconds; it accepts them again,
/// /readyz turns 200.
async fn readyz_reports_a_database_outage_and_its_end_within_seconds() {
    let server = server_with(Backend::Postgres, &[]).await;
    server.get_public("/readyz").await.expect_ok();
    server
        .env
        .pg_admin("ALTER DATABASE {db} WITH ALLOW_CONNECTIONS false")
        .await;
    server
        .env
        .pg_admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'")
        .await;
    let down = readyz_turns(&server, 503, Duration::from_secs(10)).await;
    server
        .get_public("/readyz")
        .await
        .expect_error(503, "unavailable");
    server
        .env
        .pg_admin("ALTER DATABASE {db} WITH ALLOW_CONNECTIONS true")
        .await;
    let up = readyz_turns(&server, 200, Duration::from_secs(10)).await;
    eprintln!("/readyz turned 503 after {down:?}, 200 again after {up:?}");
}

// ---------------------------------------------------------------------------
// /metrics

#[tokio::test]
async fn with_a_metrics_listen_address_metrics_are_served_there_and_not_on_the_main_listener() {
    let server = server_with(
        Backend::Sqlite,
        &[("TOTPD_METRICS_LISTEN", "127.0.0.1:0".to_owned())],
    )
    .await;
    let metrics_url = server
        .run_stdout()
        .iter()
        .find_map(|l| {
            l.trim()
                .strip_prefix("totpd metrics on ")
                .map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("no \"totpd metrics on\" line: {:?}", server.run_stdout()));
    assert!(metrics_url.ends_with("/metrics"), "{metrics_url}");
    let metrics_base = metrics_url.trim_end_matches("/metrics").to_owned();
    assert_ne!(metrics_base, format!("http://{}", server.addr));

    // The main listener: no metrics, the API as usual.
    server
        .get_public("/metrics")
        .await
        .expect_error(404, "not_found");
    server.api().list_ok().await;

    // The metrics listener: the metrics, and nothing else.
    let client = http();
    let reply = client.get(&metrics_url).send().await.expect("an answer");
    assert_eq!(reply.status(), 200);
    let text = reply.text().await.unwrap();
    assert!(
        text.lines()
            .any(|line| line.starts_with("totpd_http_requests_total{")
                && line.contains("route=\"/api/v2/totp/secrets\"")),
        "the metrics listener does not count the main listener's requests:\n{text}"
    );
    for path in ["/healthz", "/api/v2/totp/secrets", "/openapi.json"] {
        let reply = client
            .get(format!("{metrics_base}{path}"))
            .header("sb-api-key-id", &server.key.key_id)
            .header("sb-api-secret-key", &server.key.secret)
            .send()
            .await
            .expect("an answer");
        assert_eq!(reply.status(), 404, "{path} on the metrics listener");
    }
}

#[tokio::test]
async fn with_a_metrics_token_metrics_need_it_as_a_bearer_token() {
    let token = random_bytes(24)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let mut server = server_with(Backend::Sqlite, &[("TOTPD_METRICS_TOKEN", token.clone())]).await;
    let client = http();
    let url = server.url("/metrics");

    let none = server.get_public("/metrics").await;
    none.expect_error(401, "unauthorized");
    let wrong = client
        .get(&url)
        .bearer_auth(format!("{}x", &token[..token.len() - 1]))
        .send()
        .await
        .expect("an answer");
    assert_eq!(wrong.status(), 401);
    // An API key is not the metrics token.
    let api_key = client
        .get(&url)
        .header("sb-api-key-id", &server.key.key_id)
        .header("sb-api-secret-key", &server.key.secret)
        .send()
        .await
        .expect("an answer");
    assert_eq!(api_key.status(), 401);

    let right = client
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .expect("an answer");
    assert_eq!(right.status(), 200);
    let text = right.text().await.unwrap();
    assert!(text.contains("totpd_http_requests_total"), "{text}");
    assert!(!text.contains(&token), "the metrics show the token");

    // The health checks stay open.
    server.assert_healthy().await;
    server.get_public("/readyz").await.expect_ok();
    let status = server.kill();
    assert!(status.success());
    assert!(!server.log().contains(&token), "the log shows the token");
}

#[tokio::test]
async fn a_metrics_listener_asks_for_the_token_too() {
    let token = "metrics-token-0123456789".to_owned();
    let server = server_with(
        Backend::Sqlite,
        &[
            ("TOTPD_METRICS_LISTEN", "127.0.0.1:0".to_owned()),
            ("TOTPD_METRICS_TOKEN", token.clone()),
        ],
    )
    .await;
    let metrics_url = server
        .run_stdout()
        .iter()
        .find_map(|l| {
            l.trim()
                .strip_prefix("totpd metrics on ")
                .map(str::to_owned)
        })
        .expect("a metrics address");
    let client = http();
    let anonymous = client.get(&metrics_url).send().await.expect("an answer");
    assert_eq!(anonymous.status(), 401);
    let with_token = client
        .get(&metrics_url)
        .bearer_auth(&token)
        .send()
        .await
        .expect("an answer");
    assert_eq!(with_token.status(), 200);
}
