//! Abuse limits and TLS: HTTPS with a certificate made here, the connection
//! cap, header size and header-read (slowloris) limits, the body limit, the
//! per-key rate limit and the lockout of client addresses that keep failing
//! authentication.
//!
//! These limits live in the HTTP layer and in memory, not in storage, so the
//! tests run on SQLite only. Limits are set through their environment
//! variables or their flags (HTTPS, other listen addresses), on the shared
//! harness's server.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::harness::{
    Answer, ApiKey, Auth, Backend, Env, Options, Reply, SECRETS, TestServer, closed_within, metric,
    raw_exchange, read_answer,
};
pub(crate) use crate::harness::{client_from, send, with_key};

/// Every variable of the limits and TLS, which `serve --help` must name.
const LIMIT_VARS: [&str; 9] = [
    "TOTPD_TLS_CERT",
    "TOTPD_TLS_KEY",
    "TOTPD_MAX_HEADER_BYTES",
    "TOTPD_MAX_BODY_BYTES",
    "TOTPD_MAX_CONNECTIONS",
    "TOTPD_HEADER_READ_TIMEOUT",
    "TOTPD_RATE_LIMIT_PER_KEY",
    "TOTPD_AUTH_FAILURE_LIMIT",
    "TOTPD_AUTH_FAILURE_WINDOW",
];
/// `--auth-failure-limit`'s documented default.
const DEFAULT_AUTH_FAILURE_LIMIT: usize = 100;

/// A server on the harness, with limits set through the environment.
pub(crate) async fn server_with(vars: &[(&str, &str)]) -> TestServer {
    TestServer::with_env(Backend::Sqlite, vars).await
}

// ---------------------------------------------------------------------------
// A server started by this module: any listen address, flags, HTTPS.

/// A self-signed certificate for 127.0.0.1 and localhost, written as PEM
/// files into the data directory.
struct Certificate {
    cert: PathBuf,
    key: PathBuf,
    pem: String,
}

fn make_certificate(env: &Env) -> Certificate {
    let made =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("generate a certificate");
    let pem = made.cert.pem();
    let cert = env.data_dir().join("tls-cert.pem");
    let key = env.data_dir().join("tls-key.pem");
    std::fs::write(&cert, &pem).expect("write the certificate");
    std::fs::write(&key, made.signing_key.serialize_pem()).expect("write the key");
    Certificate { cert, key, pem }
}

fn https_client(ca_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("a PEM"))
        .timeout(Duration::from_secs(20))
        .build()
        .expect("an HTTPS client")
}

/// The `Retry-After` of a 429 `rate_limited` JSON answer: whole seconds, at least 1.
pub(crate) fn retry_after(reply: &Reply) -> u64 {
    reply.expect_error(429, "rate_limited");
    let value = reply
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("429 without Retry-After: {:?}", reply.headers));
    let seconds: u64 = value
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After {value:?} is not whole seconds"));
    assert!(seconds >= 1, "Retry-After {seconds}");
    seconds
}

// ---------------------------------------------------------------------------
// Raw HTTP/1.1 over TCP, for what reqwest hides: held connections, slow
// clients, oversized heads.

fn healthz_request(addr: &str) -> String {
    format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n")
}

// ---------------------------------------------------------------------------
// TLS

#[tokio::test]
async fn https_serves_the_api_with_a_certificate_made_in_the_test() {
    let env = Env::new(Backend::Sqlite).await;
    let certificate = make_certificate(&env);
    let cert = certificate.cert.to_str().unwrap();
    let key = certificate.key.to_str().unwrap();
    let mut server = TestServer::start_in(
        &env,
        Options::with_args(&[
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            cert,
            "--tls-key",
            key,
        ]),
    );
    assert!(
        server.base_url.starts_with("https://127.0.0.1:"),
        "listening line: {}",
        server.base_url
    );
    let base = format!("https://127.0.0.1:{}", server.port());
    let owner = server.key.clone();
    let client = https_client(&certificate.pem);

    let health = send(client.get(format!("{base}/healthz"))).await;
    assert_eq!(health.status, 200, "{}", health.text);
    let created = send(
        with_key(
            client.post(format!("{base}{SECRETS}")),
            &owner.key_id,
            &owner.secret,
        )
        .json(&json!({"label": "over TLS"})),
    )
    .await;
    let id = created.expect_ok()["totp_secret"]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let code = send(with_key(
        client.get(format!("{base}/api/v2/totp/code/{id}")),
        &owner.key_id,
        &owner.secret,
    ))
    .await;
    assert_eq!(code.expect_ok()["code"].as_str().map(str::len), Some(6));
    // A client that does not trust the certificate gets no answer.
    let untrusting = reqwest::Client::builder()
        .no_proxy()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    assert!(
        untrusting
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_err(),
        "an untrusted certificate was accepted"
    );
    // Graceful shutdown works the same over TLS.
    let status = server.stop_with("TERM");
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM: {status}; log:\n{}",
        server.log()
    );
}

#[tokio::test]
async fn plain_http_to_the_https_port_fails_cleanly_and_the_server_keeps_serving() {
    let env = Env::new(Backend::Sqlite).await;
    let certificate = make_certificate(&env);
    let server = TestServer::start_in(
        &env,
        Options::with_args(&[
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            certificate.cert.to_str().unwrap(),
            "--tls-key",
            certificate.key.to_str().unwrap(),
        ]),
    );
    let addr = format!("127.0.0.1:{}", server.port());
    // Plain HTTP: the server answers with a TLS alert (or nothing) and
    // closes; never an HTTP answer.
    for _ in 0..3 {
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        stream
            .write_all(healthz_request(&addr).as_bytes())
            .await
            .unwrap();
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer));
        assert!(
            read.await.is_ok(),
            "the server kept a plain-HTTP connection open"
        );
        assert!(
            !answer.starts_with(b"HTTP/"),
            "plain HTTP got an HTTP answer: {:?}",
            String::from_utf8_lossy(&answer)
        );
    }
    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    assert!(
        plain
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .is_err()
    );
    // Garbage and an abandoned handshake.
    let mut garbage = TcpStream::connect(&addr).await.unwrap();
    garbage
        .write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 0, 0, 0])
        .await
        .unwrap();
    drop(garbage);
    drop(TcpStream::connect(&addr).await.unwrap());

    let health = send(https_client(&certificate.pem).get(format!("https://{addr}/healthz"))).await;
    assert_eq!(health.status, 200, "{}", health.text);
    let log = server.log();
    assert!(
        !log.contains("ERROR") && !log.contains("\"level\":\"ERROR\""),
        "failed handshakes were logged as errors:\n{log}"
    );
}

#[tokio::test]
async fn tls_needs_both_the_certificate_and_the_key_and_refuses_bad_files() {
    let env = Env::new(Backend::Sqlite).await;
    let certificate = make_certificate(&env);
    let cert = certificate.cert.to_str().unwrap();
    let key = certificate.key.to_str().unwrap();

    let only_cert = env.serve_refused(&["--tls-cert", cert], &[]);
    assert!(!only_cert.status.success());
    assert!(
        only_cert.stderr.contains("--tls-key"),
        "the error does not name the missing --tls-key:\n{}",
        only_cert.stderr
    );
    let only_key_by_env = env.serve_refused(&[], &[("TOTPD_TLS_KEY", key)]);
    assert!(!only_key_by_env.status.success());
    assert!(
        only_key_by_env.stderr.contains("--tls-cert"),
        "the error does not name the missing --tls-cert:\n{}",
        only_key_by_env.stderr
    );
    for refused in [&only_cert, &only_key_by_env] {
        assert!(
            !refused.stdout.contains("listening on"),
            "it listened anyway: {}",
            refused.stdout
        );
    }

    let missing = env.data_dir().join("absent.pem");
    let missing = missing.to_str().unwrap();
    let no_file = env.serve_refused(&["--tls-cert", missing, "--tls-key", key], &[]);
    assert!(!no_file.status.success());
    assert!(no_file.stderr.contains("absent.pem"), "{}", no_file.stderr);

    let other_env = env.other_node();
    let other = make_certificate(&other_env);
    let other_key = env.data_dir().join("other-key.pem");
    std::fs::copy(&other.key, &other_key).unwrap();
    let mismatch = env.serve_refused(
        &["--tls-cert", cert, "--tls-key", other_key.to_str().unwrap()],
        &[],
    );
    assert!(
        !mismatch.status.success(),
        "a key of another certificate was accepted"
    );
    assert!(mismatch.stderr.contains("TLS"), "{}", mismatch.stderr);
}

#[tokio::test]
async fn listening_beyond_loopback_warns_without_tls_and_not_with_it() {
    const WARNING: &str = "listening beyond loopback without TLS";
    let env = Env::new(Backend::Sqlite).await;
    let server = TestServer::start_in(&env, Options::with_args(&["--listen", "0.0.0.0:0"]));
    assert!(
        server.base_url.starts_with("http://0.0.0.0:"),
        "{}",
        server.base_url
    );
    let reply = send(
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!("http://127.0.0.1:{}/healthz", server.port())),
    )
    .await;
    assert_eq!(reply.status, 200);
    let log = server.log();
    let warning = log
        .lines()
        .find(|l| l.contains(WARNING))
        .unwrap_or_else(|| panic!("no warning about clear text on 0.0.0.0:\n{log}"));
    assert!(warning.contains("WARN"), "not a warning: {warning}");
    drop(server);

    let env = Env::new(Backend::Sqlite).await;
    let certificate = make_certificate(&env);
    let server = TestServer::start_in(
        &env,
        Options::with_args(&[
            "--listen",
            "0.0.0.0:0",
            "--tls-cert",
            certificate.cert.to_str().unwrap(),
            "--tls-key",
            certificate.key.to_str().unwrap(),
        ]),
    );
    assert!(
        server.base_url.starts_with("https://0.0.0.0:"),
        "{}",
        server.base_url
    );
    let reply = send(
        https_client(&certificate.pem).get(format!("https://127.0.0.1:{}/healthz", server.port())),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert!(
        !server.log().contains(WARNING),
        "warned about clear text with TLS on:\n{}",
        server.log()
    );

    // Loopback without TLS: no warning either.
    let env = Env::new(Backend::Sqlite).await;
    let server = TestServer::start_in(&env, Options::with_args(&["--listen", "127.0.0.1:0"]));
    assert!(!server.log().contains(WARNING), "{}", server.log());
}

// ---------------------------------------------------------------------------
// Connection-level limits

#[tokio::test]
async fn headers_over_the_limit_are_answered_431_and_the_server_keeps_serving() {
    let mut server = server_with(&[("TOTPD_MAX_HEADER_BYTES", "4096")]).await;
    let head = |filler: usize| {
        format!(
            "GET /healthz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nX-Filler: {}\r\n",
            server.addr,
            "a".repeat(filler)
        )
    };
    let small = raw_exchange(&server.addr, &head(2_000), Vec::new()).await;
    assert_eq!(small.status, 200, "{}", small.text);
    let large = raw_exchange(&server.addr, &head(8_000), Vec::new()).await;
    assert_eq!(large.status, 431, "{}", large.text);
    // The default (16 KiB) applies without the variable.
    let mut default = server_with(&[]).await;
    let big = format!(
        "GET /healthz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nX-Filler: {}\r\n",
        default.addr,
        "a".repeat(20_000)
    );
    assert_eq!(
        raw_exchange(&default.addr, &big, Vec::new()).await.status,
        431
    );
    server.assert_healthy().await;
    default.assert_healthy().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let server = server_with(&[("TOTPD_MAX_CONNECTIONS", "2")]).await;
    let addr = server.addr.clone();
    let request = healthz_request(&addr);
    // Two keep-alive connections, served and held open.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(10), read_answer(&mut stream))
            .await
            .expect("a held connection is served");
        assert_eq!(answer.map(|a| a.status), Some(200));
        held.push(stream);
    }
    // A third connects (the kernel queues it) but is not served.
    let mut third = TcpStream::connect(&addr).await.unwrap();
    third.write_all(request.as_bytes()).await.unwrap();
    let early = tokio::time::timeout(Duration::from_millis(1500), read_answer(&mut third)).await;
    assert!(
        early.is_err(),
        "a third connection was served beyond the cap of 2: {early:?}"
    );
    // The held ones still are.
    let first = held.first_mut().unwrap();
    first.write_all(request.as_bytes()).await.unwrap();
    assert_eq!(read_answer(first).await.map(|a| a.status), Some(200));
    // Once one closes, the waiting connection is served.
    drop(held.remove(0));
    let answer = tokio::time::timeout(Duration::from_secs(5), read_answer(&mut third))
        .await
        .expect("the waiting connection was not served after a slot freed");
    assert_eq!(answer.map(|a| a.status), Some(200));
}

#[tokio::test]
async fn slow_header_connections_are_dropped_after_the_header_read_timeout() {
    let mut server = server_with(&[("TOTPD_HEADER_READ_TIMEOUT", "2")]).await;
    let addr = server.addr.clone();

    // Slowloris: the head trickles in, one header every 300 ms, forever.
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    let started = Instant::now();
    slow.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n").as_bytes())
        .await
        .unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 1024];
    let closed_after = loop {
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "a slow-header connection is still open after 8 s"
        );
        if slow.write_all(b"X-Slow: 1\r\n").await.is_err() {
            break started.elapsed();
        }
        match tokio::time::timeout(Duration::from_millis(300), slow.read(&mut chunk)).await {
            Ok(Ok(0) | Err(_)) => break started.elapsed(),
            Ok(Ok(n)) => answer.extend_from_slice(&chunk[..n]),
            Err(_) => {}
        }
    };
    assert!(
        closed_after >= Duration::from_millis(1500),
        "closed after {closed_after:?}, before the 2 s timeout"
    );
    assert!(
        !String::from_utf8_lossy(&answer).contains(" 200 "),
        "the slow request was served: {:?}",
        String::from_utf8_lossy(&answer)
    );

    // A connection that sends nothing at all is closed too.
    let mut silent = TcpStream::connect(&addr).await.unwrap();
    assert!(
        closed_within(&mut silent, Duration::from_secs(6)).await,
        "a silent connection is still open"
    );
    server.assert_healthy().await;
}

#[tokio::test]
async fn a_request_slower_than_the_request_timeout_is_answered_503() {
    let mut server = server_with(&[("TOTPD_REQUEST_TIMEOUT", "1")]).await;
    // The head arrives at once, the body never completes: the header-read
    // timeout does not apply, the request timeout does.
    let mut stream = TcpStream::connect(&server.addr).await.unwrap();
    let head = format!(
        "POST {SECRETS} HTTP/1.1\r\nHost: {}\r\n\
         sb-api-key-id: {}\r\nsb-api-secret-key: {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"label\": ",
        server.addr, server.key.key_id, server.key.secret
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let Answer { status, body, .. } =
        tokio::time::timeout(Duration::from_secs(8), read_answer(&mut stream))
            .await
            .expect("no answer 8 s into a request with a 1 s timeout")
            .expect("the connection closed without an answer");
    let elapsed = started.elapsed();
    assert_eq!(status, 503, "{body}");
    let body: Value = serde_json::from_str(&body).expect("a JSON error body");
    assert_eq!(body["error"], "unavailable", "{body}");
    assert!(
        elapsed >= Duration::from_millis(900),
        "answered after {elapsed:?}, before the timeout"
    );
    server.assert_healthy().await;
    assert!(server.api().list_ok().await.is_empty());
}

#[tokio::test]
async fn a_body_over_the_configured_limit_is_413_with_the_json_error_body() {
    let mut server = server_with(&[("TOTPD_MAX_BODY_BYTES", "2048")]).await;
    let api = server.api();
    let padded = |size: usize| json!({"label": "padded", "padding": "x".repeat(size)});
    api.create_ok(padded(1_500)).await;
    api.create(padded(3_000))
        .await
        .expect_error(413, "payload_too_large");
    // Over a raw connection with Content-Length, refused up front, same body.
    let body = serde_json::to_vec(&padded(10_000)).unwrap();
    let head = format!(
        "POST {SECRETS} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
         sb-api-key-id: {}\r\nsb-api-secret-key: {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        server.addr,
        server.key.key_id,
        server.key.secret,
        body.len()
    );
    raw_exchange(&server.addr, &head, body)
        .await
        .expect_error(413, "payload_too_large");
    server.assert_healthy().await;
    assert_eq!(api.list_ok().await.len(), 1);
}

// ---------------------------------------------------------------------------
// Per-key rate limit

#[tokio::test]
async fn a_key_over_its_rate_gets_429_with_retry_after_and_other_keys_do_not() {
    let server = server_with(&[("TOTPD_RATE_LIMIT_PER_KEY", "5")]).await;
    let other = server.env.create_key("other");
    let api = server.api();
    // 20 requests at once: at 5 per second with bursts of 5, most are refused.
    let started = Instant::now();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(async move { api.list().await })
        })
        .collect();
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert!(
        statuses.iter().all(|&s| s == 200 || s == 429),
        "{statuses:?}"
    );
    let served = statuses.iter().filter(|&&s| s == 200).count();
    let refused = statuses.len() - served;
    assert!(served >= 5, "the burst of 5 was not served: {statuses:?}");
    let allowed = 5 + (5.0 * elapsed).ceil() as usize;
    assert!(
        served <= allowed,
        "{served} served in {elapsed:.2} s at 5/s with bursts of 5: {statuses:?}"
    );
    assert!(refused >= 1, "nothing refused: {statuses:?}");
    let refusal = replies.iter().find(|r| r.status == 429).unwrap();
    let wait = retry_after(refusal);
    assert!(wait <= 1, "Retry-After {wait} s at 5 requests per second");

    // Another key of another account, and the health check, are unaffected.
    server.api_as(&other).list_ok().await;
    server.get_public("/healthz").await.expect_ok();
    // After the wait, the key is served again.
    tokio::time::sleep(Duration::from_secs(wait)).await;
    api.list_ok().await;

    let counted = metric(&server, "totpd_rate_limited_total{limit=\"per_key\"}").await;
    assert_eq!(counted, refused as u64, "metrics count of per-key 429s");
}

/// Answers of `total` list requests by `api`, `concurrency` at a time.
pub(crate) async fn statuses_under_load(
    api: &crate::harness::Api,
    total: usize,
    concurrency: usize,
) -> Vec<u16> {
    let per_task = total.div_ceil(concurrency);
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(async move {
                let mut statuses = Vec::with_capacity(per_task);
                for _ in 0..per_task {
                    statuses.push(api.list().await.status);
                }
                statuses
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.extend(task.await.unwrap());
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_turns_the_per_key_rate_limit_off() {
    // The load must be one a limit refuses: at 20 per second (bursts of
    // 20), 500 requests over 16 connections are partly answered 429...
    let limited = server_with(&[("TOTPD_RATE_LIMIT_PER_KEY", "20")]).await;
    let statuses = statuses_under_load(&limited.api(), 500, 16).await;
    assert!(
        statuses.iter().all(|&s| s == 200 || s == 429),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&429),
        "500 requests were all served at 20 per second"
    );
    drop(limited);
    // ...and with 0 the same load is served in full.
    let server = server_with(&[("TOTPD_RATE_LIMIT_PER_KEY", "0")]).await;
    let statuses = statuses_under_load(&server.api(), 500, 16).await;
    assert!(
        statuses.iter().all(|&s| s == 200),
        "not all served with the limit off: {statuses:?}"
    );
    let counted = metric(&server, "totpd_rate_limited_total{limit=\"per_key\"}").await;
    assert_eq!(counted, 0);
}

// ---------------------------------------------------------------------------
// Failed-authentication lockout per client address and key id

#[tokio::test]
async fn a_brute_force_from_one_address_is_locked_out_while_other_addresses_keep_working() {
    // The shipped defaults: no variable set.
    let server = server_with(&[]).await;
    let target = format!("http://{}{SECRETS}", server.addr);
    let valid = server.key.clone();

    // A well-behaved client on 127.0.0.1, polling while the attack runs.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let bystander = {
        let stop = std::sync::Arc::clone(&stop);
        let target = target.clone();
        let valid = valid.clone();
        tokio::spawn(async move {
            let client = client_from(Ipv4Addr::LOCALHOST);
            let mut answers = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || answers.is_empty() {
                let reply = send(with_key(client.get(&target), &valid.key_id, &valid.secret)).await;
                answers.push(reply.status);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            answers
        })
    };

    // The attacker on 127.0.0.2: 1,000 wrong secrets for a real key id.
    let attacker = client_from(Ipv4Addr::new(127, 0, 0, 2));
    let mut unauthorized_before_first_429 = None;
    let mut last_refusal = None;
    for i in 0..1000 {
        let guess = format!("guess{i:04}{}", "x".repeat(38));
        let reply = send(with_key(attacker.get(&target), &valid.key_id, &guess)).await;
        match reply.status {
            401 => reply.expect_error_body("unauthorized"),
            429 => {
                unauthorized_before_first_429.get_or_insert(i);
                last_refusal = Some(reply);
                Value::Null
            }
            other => panic!("guess {i} answered {other}: {}", reply.text),
        };
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let bystander = bystander.await.unwrap();

    let allowed =
        unauthorized_before_first_429.expect("1,000 wrong secrets were never refused with 429");
    assert!(
        allowed <= DEFAULT_AUTH_FAILURE_LIMIT,
        "{allowed} wrong secrets were checked before the first 429"
    );
    let locked = 1000 - allowed;
    let refusal = last_refusal.expect("a 429");
    let wait = retry_after(&refusal);
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    // The attacked key id stays locked out from that address: even the
    // right secret for it waits (it is not checked while locked out)...
    let right_from_attacker = send(with_key(
        attacker.get(&target),
        &valid.key_id,
        &valid.secret,
    ))
    .await;
    retry_after(&right_from_attacker);
    // ...but another key works from the attacker's address.
    let other = server.env.create_key("default");
    let other_from_attacker = send(with_key(
        attacker.get(&target),
        &other.key_id,
        &other.secret,
    ))
    .await;
    assert_eq!(
        other_from_attacker.status, 200,
        "{}",
        other_from_attacker.text
    );

    // 127.0.0.1 was served throughout, and a wrong secret from it is an
    // ordinary 401, not a 429.
    assert!(
        bystander.iter().all(|&s| s == 200),
        "the client at 127.0.0.1 was refused during the attack: {bystander:?}"
    );
    let wrong_from_bystander = send(with_key(
        client_from(Ipv4Addr::LOCALHOST).get(&target),
        &valid.key_id,
        "wrong",
    ))
    .await;
    wrong_from_bystander.expect_error(401, "unauthorized");

    let counted = metric(&server, "totpd_rate_limited_total{limit=\"auth_failures\"}").await;
    assert_eq!(counted, locked as u64 + 1, "metrics count of lockout 429s");
    assert!(
        server.log().contains("locked out"),
        "the lockout was not logged:\n{}",
        server.log()
    );
}

#[tokio::test]
async fn the_lockout_is_configurable_and_ends_with_its_window() {
    let server = server_with(&[
        ("TOTPD_AUTH_FAILURE_LIMIT", "3"),
        ("TOTPD_AUTH_FAILURE_WINDOW", "4"),
    ])
    .await;
    let wrong = ApiKey {
        key_id: server.key.key_id.clone(),
        secret: "wrong".to_owned(),
    };
    let api = server.api_with(Auth::Headers(wrong));
    for _ in 0..3 {
        api.list().await.expect_error(401, "unauthorized");
    }
    let locked = api.list().await;
    let wait = retry_after(&locked);
    assert!(wait <= 4, "Retry-After {wait} with a 4 s window");
    // Missing credentials are not guesses and are checked against nothing:
    // they stay a plain 401.
    server
        .api_with(Auth::None)
        .list()
        .await
        .expect_error(401, "unauthorized");
    // Unauthenticated routes stay open.
    server.get_public("/healthz").await.expect_ok();
    tokio::time::sleep(Duration::from_secs(wait)).await;
    api.list().await.expect_error(401, "unauthorized");
    server.api().list_ok().await;
}

#[tokio::test]
async fn missing_credentials_do_not_count_towards_the_lockout() {
    let server = server_with(&[("TOTPD_AUTH_FAILURE_LIMIT", "3")]).await;
    let anonymous = server.api_with(Auth::None);
    for _ in 0..20 {
        anonymous.list().await.expect_error(401, "unauthorized");
    }
    server.api().list_ok().await;
}

#[test]
fn serve_help_lists_every_limit_and_tls_flag_with_its_variable() {
    let help = crate::harness::serve_help();
    for flag in [
        "--tls-cert",
        "--tls-key",
        "--max-header-bytes",
        "--max-body-bytes",
        "--max-connections",
        "--header-read-timeout",
        "--request-timeout",
        "--rate-limit-per-key",
        "--auth-failure-limit",
        "--auth-failure-window",
    ] {
        assert!(help.contains(flag), "serve --help lacks {flag}");
    }
    for var in LIMIT_VARS.iter().chain(&["TOTPD_REQUEST_TIMEOUT"]) {
        assert!(help.contains(var), "serve --help lacks {var}");
    }
}
