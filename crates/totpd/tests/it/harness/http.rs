//! The HTTP API as one caller, and its fully read replies.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;

use super::env::ApiKey;

pub(super) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("an HTTP client")
}

/// A plain HTTP client whose connections come from `local`.
pub fn client_from(local: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .local_address(IpAddr::V4(local))
        .timeout(Duration::from_secs(20))
        .build()
        .expect("an HTTP client")
}

/// Sends a request built by hand and reads the whole answer.
pub async fn send(request: reqwest::RequestBuilder) -> Reply {
    let response = request.send().await.expect("an answer");
    read_reply(response).await.expect("a readable body")
}

async fn read_reply(response: reqwest::Response) -> Result<Reply, String> {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response
        .text()
        .await
        .map_err(|e| format!("unreadable body: {e}"))?;
    Ok(Reply {
        status,
        headers,
        text,
    })
}

/// `request` with an API key in the SDKs' header form.
pub fn with_key(
    request: reqwest::RequestBuilder,
    key_id: &str,
    secret: &str,
) -> reqwest::RequestBuilder {
    request
        .header("sb-api-key-id", key_id)
        .header("sb-api-secret-key", secret)
}

/// How a request authenticates.
#[derive(Clone, Debug)]
pub enum Auth {
    None,
    /// `sb-api-key-id` and `sb-api-secret-key`, as the SDKs send them.
    Headers(ApiKey),
    /// `Authorization: Bearer <key_id>.<secret>`.
    Bearer(ApiKey),
    /// Arbitrary headers.
    Raw(Vec<(&'static str, String)>),
}

/// A request body.
#[derive(Clone, Debug)]
pub enum Body {
    None,
    Json(Value),
    Raw {
        content_type: Option<&'static str>,
        bytes: Vec<u8>,
    },
}

/// An HTTP answer, fully read.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| {
            panic!(
                "HTTP {} answer is not JSON ({e}): {}",
                self.status, self.text
            )
        })
    }

    /// A 200 whose body is a JSON object with `"status": "OK"`.
    pub fn expect_ok(&self) -> Value {
        assert_eq!(self.status, 200, "expected 200, got: {}", self.text);
        let body = self.json();
        assert_eq!(body["status"], "OK", "success body: {}", self.text);
        body
    }

    /// The JSON error body `{"status":"ERROR","error":code,"message":...}`
    /// with this HTTP status.
    pub fn expect_error(&self, status: u16, code: &str) -> Value {
        assert_eq!(
            self.status, status,
            "expected {status} {code}, got: {}",
            self.text
        );
        self.expect_error_body(code)
    }

    /// The JSON error body, whatever the status.
    pub fn expect_error_body(&self, code: &str) -> Value {
        let content_type = self
            .headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            content_type.starts_with("application/json"),
            "HTTP {} error has Content-Type {content_type:?}: {}",
            self.status,
            self.text
        );
        let body = self.json();
        let object = body
            .as_object()
            .unwrap_or_else(|| panic!("error body is not an object: {}", self.text));
        assert_eq!(
            object.get("status"),
            Some(&Value::from("ERROR")),
            "{}",
            self.text
        );
        assert_eq!(
            object.get("error"),
            Some(&Value::from(code)),
            "{}",
            self.text
        );
        let message = object
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("error body has no message: {}", self.text));
        assert!(!message.trim().is_empty(), "empty message: {}", self.text);
        body
    }

    /// The JSON error body with one of `statuses`; the `error` code is the
    /// one DESIGN §1 names for that status, or at least snake_case.
    pub fn expect_refusal(&self, statuses: &[u16]) -> Value {
        assert!(
            statuses.contains(&self.status),
            "expected HTTP {statuses:?}, got {}: {}",
            self.status,
            self.text
        );
        let code = self.json()["error"].as_str().unwrap_or_default().to_owned();
        let named = match self.status {
            400 => Some("invalid_request"),
            401 => Some("unauthorized"),
            403 => Some("forbidden"),
            404 => Some("not_found"),
            429 => Some("rate_limited"),
            500 => Some("internal"),
            503 => Some("unavailable"),
            _ => None,
        };
        if let Some(named) = named {
            assert_eq!(
                code, named,
                "HTTP {} error code: {}",
                self.status, self.text
            );
        }
        assert!(
            !code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "error code {code:?} is not snake_case: {}",
            self.text
        );
        self.expect_error_body(&code)
    }

    /// The `message` of an error body.
    pub fn message(&self) -> String {
        self.json()["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// The HTTP API of one server, as one caller.
#[derive(Clone, Debug)]
pub struct Api {
    pub(super) http: reqwest::Client,
    pub(super) base: String,
    pub(super) auth: Auth,
}

pub const SECRETS: &str = "/api/v2/totp/secrets";

/// The value of one sample of `/metrics` (unauthenticated), named as it is
/// printed: `totpd_x_total` or `totpd_x_total{label="value"}`.
pub async fn metric(server: &impl super::Serves, sample: &str) -> u64 {
    let reply = server.api_with(Auth::None).get("/metrics").await;
    assert_eq!(reply.status, 200, "/metrics: {}", reply.text);
    reply
        .text
        .lines()
        .find_map(|line| {
            line.strip_prefix(sample)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("/metrics has no {sample}:\n{}", reply.text))
}

pub fn secret_path(id: &str) -> String {
    format!("{SECRETS}/{id}")
}

pub fn code_path(id: &str) -> String {
    format!("/api/v2/totp/code/{id}")
}

impl Api {
    /// The same caller with its own client that gives up after `timeout`
    /// (the default is 20 s).
    pub fn with_timeout(&self, timeout: Duration) -> Api {
        Api {
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(timeout)
                .build()
                .expect("an HTTP client"),
            ..self.clone()
        }
    }

    pub async fn request(&self, method: Method, path: &str, body: Body) -> Reply {
        self.try_request(method.clone(), path, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// A request that may get no answer at all (e.g. during a shutdown).
    pub async fn try_request(
        &self,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<Reply, String> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        request = match &self.auth {
            Auth::None => request,
            Auth::Headers(key) => with_key(request, &key.key_id, &key.secret),
            Auth::Bearer(key) => request.header(
                "authorization",
                format!("Bearer {}.{}", key.key_id, key.secret),
            ),
            Auth::Raw(headers) => headers
                .iter()
                .fold(request, |r, (name, value)| r.header(*name, value)),
        };
        request = match body {
            Body::None => request,
            Body::Json(value) => request.json(&value),
            Body::Raw {
                content_type,
                bytes,
            } => {
                let request = match content_type {
                    Some(ct) => request.header("content-type", ct),
                    None => request,
                };
                request.body(bytes)
            }
        };
        let response = request
            .send()
            .await
            .map_err(|e| format!("no answer: {e}"))?;
        read_reply(response).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request(Method::GET, path, Body::None).await
    }

    pub async fn create(&self, body: Value) -> Reply {
        self.request(Method::POST, SECRETS, Body::Json(body)).await
    }

    /// Creates a secret that must be accepted; returns `totp_secret`.
    pub async fn create_ok(&self, body: Value) -> Value {
        let reply = self.create(body).await;
        let answer = reply.expect_ok();
        let created = answer["totp_secret"].clone();
        assert!(created.is_object(), "create answer: {}", reply.text);
        created
    }

    pub async fn list(&self) -> Reply {
        self.get(SECRETS).await
    }

    /// The account's secrets, which must be listable.
    pub async fn list_ok(&self) -> Vec<Value> {
        let reply = self.list().await;
        reply.expect_ok()["totp_secrets"]
            .as_array()
            .unwrap_or_else(|| panic!("list answer has no totp_secrets array: {}", reply.text))
            .clone()
    }

    /// The ids in the account's list.
    pub async fn listed_ids(&self) -> Vec<String> {
        self.list_ok()
            .await
            .iter()
            .map(|s| s["id"].as_str().expect("listed id").to_owned())
            .collect()
    }

    pub async fn code(&self, id: &str) -> Reply {
        self.get(&code_path(id)).await
    }

    pub async fn delete(&self, id: &str) -> Reply {
        self.request(Method::DELETE, &secret_path(id), Body::None)
            .await
    }
}

/// One HTTP/1.1 exchange over a raw TCP connection: the request is written by
/// a separate task while the answer is read, so an early answer (a 413 sent
/// before the body is complete, then a reset) is still seen. reqwest gives
/// up with "error sending request" when its body write fails, before it
/// reads such an answer.
pub async fn raw_exchange(addr: &str, head: &str, body: Vec<u8>) -> Reply {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    let (mut reader, mut writer) = stream.into_split();
    let request = [head.as_bytes(), b"\r\n", &body].concat();
    let write = tokio::spawn(async move {
        // The server may stop reading and reset: that is its right.
        let _ = writer.write_all(&request).await;
        let _ = writer.flush().await;
        writer
    });
    let mut answer = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let read = async {
        loop {
            match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .unwrap_or_else(|_| panic!("no complete answer within 20 s"));
    write.abort();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer (got {} bytes: {text:?})", answer.len()));
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = HeaderMap::new();
    for line in lines {
        if let Some((name, value)) = line.split_once(':')
            && let (Ok(name), Ok(value)) = (
                reqwest::header::HeaderName::from_bytes(name.trim().as_bytes()),
                reqwest::header::HeaderValue::from_str(value.trim()),
            )
        {
            headers.append(name, value);
        }
    }
    let body = match headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        Some(len) => body.get(..len).unwrap_or(body).to_owned(),
        None => body.to_owned(),
    };
    Reply {
        status,
        headers,
        text: body,
    }
}

/// Asserts that each of `nodes` (one caller on each node of a deployment,
/// all with a key just revoked) refuses `GET path` within a second from now.
pub async fn assert_refused_by_every_node_within_a_second(nodes: &[&Api], path: &str) {
    let revoked_at = Instant::now();
    let mut after = Vec::new();
    for api in nodes {
        after.push(refused_after(api, path, revoked_at).await);
    }
    assert!(
        after.iter().all(|&took| took <= Duration::from_secs(1)),
        "the revoked key was refused after {after:?} on the nodes in turn"
    );
}

/// Polls `GET path` as `api` until it is refused with the 401 body; returns
/// how long after `since` that happened. Panics if it is still accepted
/// after 5 s.
pub async fn refused_after(api: &Api, path: &str, since: Instant) -> Duration {
    loop {
        let reply = api.get(path).await;
        if reply.status == 401 {
            reply.expect_error_body("unauthorized");
            return since.elapsed();
        }
        reply.expect_ok();
        assert!(
            since.elapsed() < Duration::from_secs(5),
            "a revoked key is still accepted after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
