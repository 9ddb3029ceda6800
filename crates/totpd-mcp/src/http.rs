//! [`HttpBackend`]: the tools over the REST API of a running totpd, as one
//! API key. What `totpd mcp` uses: it never opens the database or the
//! master key, so it runs wherever the agent runs.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::backend::{
    AddOutcome, BackendError, ErrorBody, IssuedCode, NewSecretInput, SecretSummary, TotpBackend,
    error_from_status, outcome_from_create, outcome_from_import,
};

/// Time a request may take (a code waited for with `min_remaining` gets
/// that much more).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the server is and which key to use.
#[derive(Debug)]
pub struct ClientConfig {
    /// Base URL, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// The API key's id.
    pub key_id: String,
    /// The API key's secret.
    pub secret: Zeroizing<String>,
}

/// Why `totpd mcp` cannot start. Never holds the key's secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL is not an http(s) URL.
    #[error("--url must be an http:// or https:// URL, e.g. http://127.0.0.1:8080")]
    BadUrl,
    /// The key cannot go in a header.
    #[error("the API key id or secret holds characters an HTTP header cannot carry")]
    BadKey,
    /// No answer from the server.
    #[error("cannot reach totpd at {url}: {reason}")]
    Unreachable {
        /// The server's URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The server refused the key.
    #[error(
        "totpd at {url} refused the API key (wrong, expired or revoked); check TOTPD_KEY_ID/TOTPD_KEY_SECRET or TOTPD_API_KEY"
    )]
    Refused {
        /// The server's URL.
        url: String,
    },
    /// Something answered, but not as totpd does.
    #[error("unexpected answer from {url}: {reason}")]
    Unexpected {
        /// The server's URL.
        url: String,
        /// What was wrong with it.
        reason: String,
    },
}

/// The REST client backend.
#[derive(Debug, Clone)]
pub struct HttpBackend {
    client: reqwest::Client,
    base: String,
}

/// Why a transport error happened, without the URL (which the caller
/// knows) and without any header.
fn transport_reason(error: &reqwest::Error) -> String {
    let mut reason = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "connection failed".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(error);
    // The innermost cause says the most (connection refused, DNS failure).
    let mut innermost = None;
    while let Some(cause) = source {
        innermost = Some(cause.to_string());
        source = cause.source();
    }
    if let Some(cause) = innermost {
        reason.push_str(": ");
        reason.push_str(&cause);
    }
    reason
}

#[derive(Deserialize)]
struct ListAnswer {
    totp_secrets: Vec<SecretSummary>,
    #[serde(default)]
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct VerifyAnswer {
    valid: bool,
}

impl HttpBackend {
    /// A client of the server at `config.url` (not contacted yet: see
    /// [`HttpBackend::probe`]).
    pub fn new(config: &ClientConfig) -> Result<HttpBackend, ClientError> {
        let base = config.url.trim().trim_end_matches('/').to_owned();
        let parsed = reqwest::Url::parse(&base).map_err(|_| ClientError::BadUrl)?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(ClientError::BadUrl);
        }
        let mut headers = HeaderMap::new();
        let id = HeaderValue::from_str(config.key_id.trim()).map_err(|_| ClientError::BadKey)?;
        let mut secret =
            HeaderValue::from_str(config.secret.trim()).map_err(|_| ClientError::BadKey)?;
        // Keeps the secret out of any debug output of the request.
        secret.set_sensitive(true);
        headers.insert("sb-api-key-id", id);
        headers.insert("sb-api-secret-key", secret);
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("totpd-mcp/", env!("CARGO_PKG_VERSION")))
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ClientError::Unexpected {
                url: base.clone(),
                reason: transport_reason(&e),
            })?;
        Ok(HttpBackend { client, base })
    }

    /// Checks once that the server answers and accepts the key (one page
    /// of one secret). A key whose role may not list is still a key the
    /// server accepts: the tools will say what it may do.
    pub async fn probe(&self) -> Result<(), ClientError> {
        let answer = self
            .request(Method::GET, "/api/v2/totp/secrets")
            .query(&[("limit", "1")])
            .send()
            .await
            .map_err(|e| ClientError::Unreachable {
                url: self.base.clone(),
                reason: transport_reason(&e),
            })?;
        match answer.status() {
            status if status.is_success() || status == StatusCode::FORBIDDEN => Ok(()),
            StatusCode::UNAUTHORIZED => Err(ClientError::Refused {
                url: self.base.clone(),
            }),
            status => {
                let message = answer
                    .json::<ErrorBody>()
                    .await
                    .ok()
                    .and_then(|body| body.message);
                Err(ClientError::Unexpected {
                    url: self.base.clone(),
                    reason: match message {
                        Some(message) => format!("HTTP {}: {message}", status.as_u16()),
                        None => format!("HTTP {} (is this a totpd server?)", status.as_u16()),
                    },
                })
            }
        }
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    /// Sends a request and reads a 2xx JSON answer; anything else becomes
    /// the [`BackendError`] of its status and message.
    async fn send(&self, request: RequestBuilder) -> Result<Value, BackendError> {
        let answer = request
            .send()
            .await
            .map_err(|e| BackendError::Unavailable(transport_reason(&e)))?;
        let status = answer.status();
        if status.is_success() {
            return answer.json::<Value>().await.map_err(|e| {
                BackendError::Other(format!("unreadable answer: {}", transport_reason(&e)))
            });
        }
        let message = answer
            .json::<ErrorBody>()
            .await
            .ok()
            .and_then(|body| body.message);
        Err(error_from_status(status.as_u16(), message))
    }
}

fn read<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, BackendError> {
    serde_json::from_value(value)
        .map_err(|e| BackendError::Other(format!("unexpected answer from totpd: {e}")))
}

#[async_trait::async_trait]
impl TotpBackend for HttpBackend {
    async fn list(
        &self,
        query: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<SecretSummary>, bool), BackendError> {
        let limit = limit.clamp(1, 1000).to_string();
        let mut params = vec![("limit", limit.as_str())];
        if let Some(q) = query {
            params.push(("q", q));
        }
        let answer: ListAnswer = read(
            self.send(
                self.request(Method::GET, "/api/v2/totp/secrets")
                    .query(&params),
            )
            .await?,
        )?;
        Ok((answer.totp_secrets, answer.next_cursor.is_some()))
    }

    async fn code(&self, id: Uuid, min_remaining: Option<u64>) -> Result<IssuedCode, BackendError> {
        let mut request = self.request(Method::GET, &format!("/api/v2/totp/code/{id}"));
        if let Some(seconds) = min_remaining {
            request = request
                .query(&[("min_remaining", seconds)])
                .timeout(REQUEST_TIMEOUT + Duration::from_secs(seconds));
        }
        read(self.send(request).await?)
    }

    async fn add(&self, input: NewSecretInput) -> Result<AddOutcome, BackendError> {
        match input {
            NewSecretInput::Uri(uri) => {
                let body = Zeroizing::new(json!({ "uri": uri.as_str() }).to_string());
                let answer = self
                    .send(
                        self.request(Method::POST, "/api/v2/totp/secrets")
                            .header("content-type", "application/json")
                            .body(body.as_bytes().to_vec()),
                    )
                    .await?;
                outcome_from_create(&answer)
            }
            NewSecretInput::Fields {
                secret,
                label,
                issuer,
            } => {
                let body = Zeroizing::new(
                    json!({ "secret": secret.as_str(), "label": label, "issuer": issuer })
                        .to_string(),
                );
                let answer = self
                    .send(
                        self.request(Method::POST, "/api/v2/totp/secrets")
                            .header("content-type", "application/json")
                            .body(body.as_bytes().to_vec()),
                    )
                    .await?;
                outcome_from_create(&answer)
            }
            NewSecretInput::QrImage { bytes, media_type } => {
                let answer = self
                    .send(
                        self.request(Method::POST, "/api/v2/totp/secrets/import")
                            .query(&[("format", "qr")])
                            .header("content-type", media_type)
                            .body(bytes),
                    )
                    .await?;
                Ok(outcome_from_import(&answer))
            }
        }
    }

    async fn verify(&self, id: Uuid, code: &str) -> Result<bool, BackendError> {
        let answer: VerifyAnswer = read(
            self.send(
                self.request(Method::POST, &format!("/api/v2/totp/secrets/{id}/verify"))
                    .json(&json!({ "code": code })),
            )
            .await?,
        )?;
        Ok(answer.valid)
    }

    async fn delete(&self, id: Uuid) -> Result<(), BackendError> {
        self.send(self.request(Method::DELETE, &format!("/api/v2/totp/secrets/{id}")))
            .await
            .map(|_| ())
    }
}
