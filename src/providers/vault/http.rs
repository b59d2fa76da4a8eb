//! A small Vault/OpenBao HTTP client for the calls whose exact answer matters:
//! status, the `errors` body and `Retry-After` decide between dead, alive and
//! unknown, so they are kept rather than flattened into one error string.
//! (keysweep's own login uses vaultrs; see `mod.rs`.)

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::engine::retry::{retry, RetryPolicy};
use crate::provider::{ErrorKind, ProviderError};
use crate::secret::{ExposeSecret, SecretString};

/// One answer from Vault.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub retry_after: Option<Duration>,
}

impl Resp {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
    /// The `errors` array joined, or `data.error` (some AppRole endpoints).
    pub fn error_text(&self) -> String {
        let mut parts: Vec<String> =
            self.body["errors"].as_array().map(|a| a.iter().filter_map(|e| e.as_str().map(str::to_string)).collect()).unwrap_or_default();
        if let Some(e) = self.body["data"]["error"].as_str() {
            parts.push(e.to_string());
        }
        parts.join("; ")
    }
    pub fn error_contains(&self, needle: &str) -> bool {
        self.error_text().contains(needle)
    }
    /// A short, scrubbed description for evidence and errors.
    pub fn describe(&self) -> String {
        let t = self.error_text();
        let t = t.replace("1 error occurred:", "").replace(['\n', '\t', '*'], " ");
        let t = t.split_whitespace().collect::<Vec<_>>().join(" ");
        if t.is_empty() {
            format!("HTTP {}", self.status)
        } else {
            crate::secret::scrub(&format!("HTTP {} {}", self.status, t))
        }
    }
}

pub struct VaultHttp {
    base: String,
    namespace: Option<String>,
    http: reqwest::Client,
    /// keysweep's own token. Replaced (not mutated) when keysweep rotates
    /// its own login and switches to the new one before retiring the old.
    admin_token: std::sync::RwLock<std::sync::Arc<SecretString>>,
    limiter: Option<DefaultDirectRateLimiter>,
    pub retry: RetryPolicy,
    requests: AtomicU64,
}

impl VaultHttp {
    pub fn new(
        base: &str,
        namespace: Option<String>,
        admin_token: SecretString,
        timeout: Duration,
        rate_per_second: Option<u32>,
        burst: Option<u32>,
        retry: RetryPolicy,
    ) -> Result<Self, ProviderError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| ProviderError::new(ErrorKind::Config, "vault.client", e.to_string()))?;
        let limiter = rate_per_second.and_then(std::num::NonZeroU32::new).map(|r| {
            let burst = burst.and_then(std::num::NonZeroU32::new).unwrap_or(r);
            RateLimiter::direct(Quota::per_second(r).allow_burst(burst))
        });
        let admin_token = std::sync::RwLock::new(std::sync::Arc::new(admin_token));
        Ok(VaultHttp { base: base.trim_end_matches('/').to_string(), namespace, http, admin_token, limiter, retry, requests: AtomicU64::new(0) })
    }

    fn admin_token(&self) -> std::sync::Arc<SecretString> {
        self.admin_token.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Makes `token` keysweep's own token from the next request on.
    pub fn switch_admin_token(&self, token: SecretString) {
        *self.admin_token.write().unwrap_or_else(|e| e.into_inner()) = std::sync::Arc::new(token);
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn namespace(&self) -> Option<String> {
        self.namespace.clone()
    }

    /// Requests sent so far (for tests and the benchmark).
    pub fn request_count(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// One request, no retry. `token` is the token to present (admin or a probe).
    pub async fn send(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        token: Option<&SecretString>,
        body: Option<&Value>,
    ) -> Result<Resp, ProviderError> {
        if let Some(l) = &self.limiter {
            l.until_ready().await;
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let url = format!("{}/v1/{}", self.base, path.trim_start_matches('/'));
        let mut req = self.http.request(method, &url);
        if let Some(ns) = &self.namespace {
            req = req.header("X-Vault-Namespace", ns);
        }
        if let Some(t) = token {
            req = req.header("X-Vault-Token", t.expose_secret());
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        // reqwest's error text names the URL, never headers or body: safe to keep.
        let resp = req.send().await.map_err(|e| {
            let kind = if e.is_builder() { ErrorKind::Config } else { ErrorKind::Unavailable };
            ProviderError::new(kind, operation, format!("{path}: {}", e.without_url()))
        })?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ProviderError::new(ErrorKind::Unavailable, operation, format!("{path}: reading body: {}", e.without_url())))?;
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        Ok(Resp { status: status.as_u16(), body, retry_after })
    }

    /// One request with keysweep's own token, not retried (for calls that must
    /// not be repeated blindly, such as minting).
    pub async fn send_admin(&self, operation: &'static str, method: Method, path: &str, body: Option<&Value>) -> Result<Resp, ProviderError> {
        let token = self.admin_token();
        self.send(operation, method, path, Some(&token), body).await
    }

    /// A request with keysweep's own token, retried on 429/5xx/network errors
    /// within the retry policy. 4xx answers are returned for the caller to read.
    pub async fn admin(&self, operation: &'static str, method: Method, path: &str, body: Option<Value>) -> Result<Resp, ProviderError> {
        retry(self.retry, || async {
            let token = self.admin_token();
            let r = self.send(operation, method.clone(), path, Some(&token), body.as_ref()).await?;
            classify_transient(operation, path, r)
        })
        .await
    }

    /// Like `admin`, but any non-2xx answer is an error of the matching kind.
    pub async fn admin_ok(&self, operation: &'static str, method: Method, path: &str, body: Option<Value>) -> Result<Resp, ProviderError> {
        let r = self.admin(operation, method, path, body).await?;
        if r.ok() {
            return Ok(r);
        }
        let kind = match r.status {
            401 => ErrorKind::Unauthenticated,
            403 => ErrorKind::PermissionDenied,
            404 => ErrorKind::NotFound,
            400 | 409 | 412 => ErrorKind::Conflict,
            _ => ErrorKind::Other,
        };
        Err(ProviderError::new(kind, operation, format!("{path}: {}", r.describe())))
    }
}

/// 429 and 5xx become temporary errors (so `retry` retries them); anything
/// else is an answer.
pub fn classify_transient(operation: &'static str, path: &str, r: Resp) -> Result<Resp, ProviderError> {
    let s = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if s == StatusCode::TOO_MANY_REQUESTS {
        return Err(ProviderError::new(ErrorKind::RateLimited, operation, format!("{path}: {}", r.describe())).with_retry_after(r.retry_after));
    }
    if s.is_server_error() {
        return Err(ProviderError::new(ErrorKind::Unavailable, operation, format!("{path}: {}", r.describe())).with_retry_after(r.retry_after));
    }
    Ok(r)
}

pub fn list_method() -> Method {
    Method::from_bytes(b"LIST").expect("LIST is a valid method token")
}
