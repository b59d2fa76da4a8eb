//! A small Vault/OpenBao HTTP client for the calls whose exact answer matters:
//! status, the `errors` body and `Retry-After` decide between dead, alive and
//! unknown, so they are kept rather than flattened into one error string.
//! (keysweep's own AppRole login goes through this client too; see `mod.rs`.)
//!
//! Only Vault's own answers are facts. An answer is Vault's when its body is
//! JSON (`Content-Type: application/json`) that parses whole into an object,
//! and, for a 4xx/5xx, carries Vault's `errors` array (or the `request_id` of a
//! logical response, as KV v2 sends with the 404 of a deleted version); an
//! empty body only with 204. Anything else — a load balancer's HTML 404, a
//! WAF's 403 page, a truncated 200, a proxy's plain-text 502 — never reaches a
//! caller as a `Resp`: `send` turns it into a temporary error (retried by
//! `admin`), so no "absent", "dead" or "invalid" is ever read from it and no
//! value is ever built from a partial read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::provider::http::{not_from_vendor, VendorShape};
use crate::provider::limits::retry;
use crate::provider::{ErrorKind, ProviderError};
use crate::secret::{ExposeSecret, SecretString};

/// A KV v2 version's data and its version number.
pub type KvData = (serde_json::Map<String, Value>, u64);

/// One answer from Vault.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub retry_after: Option<Duration>,
    /// The answer has Vault's shape (see the module doc). `send` returns only
    /// such answers; the field is kept so call sites can say so.
    pub vendor: bool,
}

/// Vault's documented answer shape: an error status carries `errors` (or, for
/// the 404 of a deleted KV version, a logical response's `request_id`).
pub const VAULT: VendorShape = VendorShape { error_body: |_, b| b["errors"].is_array() || b["request_id"].is_string(), arrays: false };

/// Whether an answer has Vault's documented shape: JSON content type and a
/// whole JSON object; an error status carries `errors` (or a logical
/// response's `request_id`); an empty body only with 204.
pub fn vendor_shaped(status: u16, content_type: Option<&str>, bytes: &[u8]) -> Option<Value> {
    crate::provider::http::vendor_shaped(&VAULT, status, content_type, bytes)
}

impl Resp {
    /// Vault's own "not found": a 404 with Vault's JSON body (never a load
    /// balancer's or a proxy's page).
    pub fn is_vendor_not_found(&self) -> bool {
        self.vendor && self.status == 404
    }
    /// Vault's own 2xx whose body is a JSON object with a `data` object.
    pub fn has_data(&self) -> bool {
        self.vendor && self.ok() && self.body["data"].is_object()
    }
    /// A KV v2 read (`<mount>/data/<path>`) as documented: Vault's 404 (no
    /// such secret, or a deleted/destroyed version) is `None`; a 2xx must carry
    /// `data.data` (an object) and `data.metadata.version`, else the answer is
    /// not whole and nothing may be built from it (temporary error).
    /// For store.rs `read_data`.
    pub fn kv_read(&self, operation: &'static str, path: &str) -> Result<Option<KvData>, ProviderError> {
        if self.is_vendor_not_found() {
            return Ok(None);
        }
        if !self.ok() {
            return Err(ProviderError::new(ErrorKind::Other, operation, format!("{path}: {}", self.describe())));
        }
        match (self.body["data"]["data"].as_object(), self.body["data"]["metadata"]["version"].as_u64()) {
            (Some(d), Some(v)) => Ok(Some((d.clone(), v))),
            _ => Err(ProviderError::new(
                ErrorKind::Unavailable,
                operation,
                format!(
                    "{path}: HTTP {} without `data.data` and `data.metadata.version`: not a whole KV answer; nothing is built from it",
                    self.status
                ),
            )),
        }
    }
    /// A KV v2 metadata read: Vault's 404 is version 0 (never written); a 2xx
    /// must carry `data.current_version`. For store.rs `current_version`.
    pub fn kv_current_version(&self, operation: &'static str, path: &str) -> Result<u64, ProviderError> {
        if self.is_vendor_not_found() {
            return Ok(0);
        }
        if !self.ok() {
            return Err(ProviderError::new(ErrorKind::Other, operation, format!("{path}: {}", self.describe())));
        }
        self.body["data"]["current_version"].as_u64().ok_or_else(|| {
            ProviderError::new(
                ErrorKind::Unavailable,
                operation,
                format!("{path}: HTTP {} without `data.current_version`: not a whole KV answer", self.status),
            )
        })
    }
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
    /// The limits layer: rate, timeout and the retry bound.
    gate: crate::provider::limits::Gate,
    requests: AtomicU64,
    /// When keysweep's own session token is due for `renew-self` (half its
    /// remaining TTL); `None` when it is not renewed (a token the operator
    /// gave, one that is not renewable, or one at its maximum TTL).
    renew_at: std::sync::Mutex<Option<std::time::Instant>>,
}

/// A session token with less TTL left than this after a renewal is at its
/// maximum TTL: renewing again would only shorten the interval.
const MIN_RENEWED_TTL: Duration = Duration::from_secs(4);

impl VaultHttp {
    pub fn new(
        base: &str,
        namespace: Option<String>,
        admin_token: SecretString,
        limits: &crate::playbook::model::Limits,
    ) -> Result<Self, ProviderError> {
        Self::with_tls(base, namespace, admin_token, limits, &super::config::VaultTls::default(), &|_| None)
    }

    /// A client whose TLS follows `tls` (see [`super::config::VaultTls`]);
    /// `env` reads `VAULT_CACERT`/`VAULT_CAPATH` when `tls` leaves the CA out.
    pub fn with_tls(
        base: &str,
        namespace: Option<String>,
        admin_token: SecretString,
        limits: &crate::playbook::model::Limits,
        tls: &super::config::VaultTls,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ProviderError> {
        let gate = crate::provider::limits::Gate::new(limits);
        let timeout = gate.timeout();
        let builder = reqwest::Client::builder().timeout(timeout).connect_timeout(timeout.min(Duration::from_secs(10))).pool_max_idle_per_host(64);
        let mut base = base.trim_end_matches('/').to_string();
        let builder = if base.starts_with("https://") {
            crate::provider::tls::reqwest_tls("vault.tls", builder, &mut base, tls, Some(("VAULT_CACERT", "VAULT_CAPATH")), env)?
        } else {
            builder
        };
        let http = builder.build().map_err(|e| ProviderError::new(ErrorKind::Config, "vault.client", error_chain(&e)))?;
        let admin_token = std::sync::RwLock::new(std::sync::Arc::new(admin_token));
        Ok(VaultHttp { base, namespace, http, admin_token, gate, requests: AtomicU64::new(0), renew_at: std::sync::Mutex::new(None) })
    }

    /// Keeps keysweep's own session alive for a run longer than its TTL:
    /// from now on, the first request with keysweep's token after half of
    /// `ttl` has passed renews it first (`auth/token/renew-self`), and so on
    /// with each renewal's TTL. Only for a session keysweep opened (a login);
    /// a renewal never goes past the token's own maximum TTL (Vault caps it).
    pub fn renew_session(&self, ttl: Duration, renewable: bool) {
        *self.renew_at.lock().unwrap_or_else(|e| e.into_inner()) = (renewable && ttl >= MIN_RENEWED_TTL).then(|| std::time::Instant::now() + ttl / 2);
    }

    async fn renew_if_due(&self) {
        let due = {
            let mut at = self.renew_at.lock().unwrap_or_else(|e| e.into_inner());
            match *at {
                // Taken by this request: one renewal at a time.
                Some(t) if std::time::Instant::now() >= t => at.take().is_some(),
                _ => false,
            }
        };
        if !due {
            return;
        }
        const OP: &str = "vault.token.renew_self";
        let token = self.admin_token();
        match self.send(OP, Method::POST, "auth/token/renew-self", Some(&token), Some(&serde_json::json!({}))).await {
            Ok(r) if r.ok() => {
                let ttl = Duration::from_secs(r.body["auth"]["lease_duration"].as_u64().unwrap_or(0));
                let renewable = r.body["auth"]["renewable"].as_bool().unwrap_or(false);
                tracing::debug!(ttl_secs = ttl.as_secs(), "renewed keysweep's own Vault session");
                if renewable && ttl < MIN_RENEWED_TTL {
                    tracing::warn!(ttl_secs = ttl.as_secs(), "keysweep's own Vault session is at its maximum TTL and ends soon");
                }
                self.renew_session(ttl, renewable);
            }
            Ok(r) => tracing::warn!(error = %r.describe(), "Vault refused to renew keysweep's own session; it ends at its TTL"),
            Err(e) => {
                // Not answered (a timeout, a proxy): tried again shortly.
                tracing::warn!(error = %e, "could not renew keysweep's own Vault session; trying again in 5 s");
                *self.renew_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(std::time::Instant::now() + Duration::from_secs(5));
            }
        }
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

    /// The adaptive concurrency limit its requests feed.
    pub fn adaptive(&self) -> std::sync::Arc<crate::provider::adaptive::AdaptiveLimit> {
        self.gate.adaptive().clone()
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
        let admission = self.gate.admit().await;
        let r = self.send_once(operation, method, path, token, body).await;
        admission.http(operation, &r, |a| (a.status, a.retry_after.is_some()));
        r
    }

    async fn send_once(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        token: Option<&SecretString>,
        body: Option<&Value>,
    ) -> Result<Resp, ProviderError> {
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
            let e = e.without_url();
            let text = error_chain(&e);
            match tls_refusal(&text) {
                // Not temporary: retrying does not change a certificate.
                Some(hint) => ProviderError::new(ErrorKind::Config, operation, format!("{path}: {text}; {hint}")),
                None => {
                    ProviderError::new(if e.is_builder() { ErrorKind::Config } else { ErrorKind::Unavailable }, operation, format!("{path}: {text}"))
                }
            }
        })?;
        let status = resp.status();
        let content_type = resp.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
        let retry_after = crate::provider::http::retry_after(resp.headers());
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ProviderError::new(ErrorKind::Unavailable, operation, format!("{path}: reading body: {}", e.without_url())))?;
        let status = status.as_u16();
        match vendor_shaped(status, content_type.as_deref(), &bytes) {
            Some(body) => Ok(Resp { status, body, retry_after, vendor: true }),
            None => Err(not_from_vault(operation, path, status, content_type.as_deref(), bytes.len(), retry_after)),
        }
    }

    /// One request with keysweep's own token, not retried (for calls that must
    /// not be repeated blindly, such as minting).
    pub async fn send_admin(&self, operation: &'static str, method: Method, path: &str, body: Option<&Value>) -> Result<Resp, ProviderError> {
        self.renew_if_due().await;
        let token = self.admin_token();
        self.send(operation, method, path, Some(&token), body).await
    }

    /// A request with keysweep's own token, retried on 429/5xx/network errors
    /// within the retry policy. 4xx answers are returned for the caller to read.
    pub async fn admin(&self, operation: &'static str, method: Method, path: &str, body: Option<Value>) -> Result<Resp, ProviderError> {
        self.renew_if_due().await;
        retry(self.gate.retry_policy(), || async {
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

pub use crate::provider::tls::error_chain;

/// The fix for a refused server certificate, if `text` is one.
pub fn tls_refusal(text: &str) -> Option<&'static str> {
    match crate::provider::tls::Refused::of(text)? {
        crate::provider::tls::Refused::WrongName => {
            Some("the server's TLS certificate does not name this host: set `tls.server_name` to the name it carries (or address the server by that name)")
        }
        crate::provider::tls::Refused::UnknownCa => Some("the server's TLS certificate was not accepted: set `tls.ca_cert` (or VAULT_CACERT) to the PEM of the CA that signed it; `tls.insecure_skip_verify: true` turns verification off, for a test server only"),
    }
}

/// The error for an answer that is not Vault's (see the module doc): never a
/// fact, always temporary (see `crate::provider::http::not_from_vendor`).
fn not_from_vault(
    operation: &'static str,
    path: &str,
    status: u16,
    content_type: Option<&str>,
    len: usize,
    retry_after: Option<Duration>,
) -> ProviderError {
    not_from_vendor("Vault/OpenBao", operation, path, status, content_type, len, retry_after)
}

/// 429 and 5xx become temporary errors (so `retry` retries them); anything
/// else is an answer.
pub fn classify_transient(operation: &'static str, path: &str, r: Resp) -> Result<Resp, ProviderError> {
    match crate::provider::http::transient(operation, r.status, r.retry_after, || format!("{path}: {}", r.describe())) {
        Some(e) => Err(e),
        None => Ok(r),
    }
}

pub fn list_method() -> Method {
    Method::from_bytes(b"LIST").expect("LIST is a valid method token")
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: Option<&str> = Some("application/json");

    #[test]
    fn vault_answers_are_recognised() {
        assert!(vendor_shaped(404, JSON, br#"{"errors":[]}"#).is_some());
        assert!(vendor_shaped(400, JSON, br#"{"errors":["1 error occurred:\n\t* invalid accessor\n\n"]}"#).is_some());
        // KV v2: the 404 of a deleted version is a logical response.
        assert!(vendor_shaped(404, JSON, br#"{"request_id":"x","data":{"data":null,"metadata":{"version":1}}}"#).is_some());
        assert!(vendor_shaped(200, Some("application/json; charset=utf-8"), br#"{"data":{}}"#).is_some());
        assert_eq!(vendor_shaped(204, None, b""), Some(Value::Null));
    }

    #[test]
    fn answers_from_anything_else_are_not() {
        // A load balancer's 404, a WAF's 403.
        assert!(vendor_shaped(404, Some("text/html"), b"<html><body>Not Found</body></html>").is_none());
        assert!(vendor_shaped(403, Some("text/html; charset=utf-8"), b"<html>Request blocked</html>").is_none());
        // JSON, but not Vault's error shape.
        assert!(vendor_shaped(404, JSON, br#"{"message":"no route"}"#).is_none());
        assert!(vendor_shaped(403, JSON, br#"{"error":"blocked"}"#).is_none());
        // A truncated 200, a 200 with no body, a JSON 200 that is not an object.
        assert!(vendor_shaped(200, JSON, br#"{"data":{"data":{"value":"#).is_none());
        assert!(vendor_shaped(200, JSON, b"").is_none());
        assert!(vendor_shaped(200, JSON, b"[1]").is_none());
        // Right body, wrong content type (a rewriting middlebox).
        assert!(vendor_shaped(404, Some("text/plain"), br#"{"errors":[]}"#).is_none());
        assert!(vendor_shaped(404, None, br#"{"errors":[]}"#).is_none());
    }

    fn resp(status: u16, body: Value) -> Resp {
        Resp { status, body, retry_after: None, vendor: true }
    }

    #[test]
    fn kv_reads_are_whole_or_errors() {
        assert!(resp(404, serde_json::json!({ "errors": [] })).kv_read("op", "p").unwrap().is_none());
        let deleted = serde_json::json!({ "request_id": "x", "data": { "data": null, "metadata": { "version": 3 } } });
        assert!(resp(404, deleted).kv_read("op", "p").unwrap().is_none());
        let whole = serde_json::json!({ "data": { "data": { "value": "v", "username": "svc" }, "metadata": { "version": 2 } } });
        let (d, v) = resp(200, whole).kv_read("op", "p").unwrap().unwrap();
        assert_eq!((d.len(), v), (2, 2));
        let partial = serde_json::json!({ "data": { "data": { "value": "v" } } });
        assert!(resp(200, partial).kv_read("op", "p").unwrap_err().is_temporary());
        assert!(resp(200, serde_json::json!({ "data": {} })).kv_current_version("op", "p").unwrap_err().is_temporary());
        assert_eq!(resp(404, serde_json::json!({ "errors": [] })).kv_current_version("op", "p").unwrap(), 0);
        assert_eq!(resp(200, serde_json::json!({ "data": { "current_version": 4 } })).kv_current_version("op", "p").unwrap(), 4);
    }

    #[test]
    fn foreign_answers_are_temporary_and_quote_nothing() {
        let e = not_from_vault("vault.kv.read", "secret/data/x", 404, Some("text/html"), 120, None);
        assert!(e.is_temporary());
        assert!(e.message.contains("HTTP 404") && e.message.contains("text/html") && e.message.contains("never as absent"), "{}", e.message);
        let e = not_from_vault("vault.kv.read", "secret/data/x", 429, Some("text/plain"), 5, Some(Duration::from_secs(3)));
        assert_eq!(e.kind, ErrorKind::RateLimited);
        assert_eq!(e.retry_after, Some(Duration::from_secs(3)));
    }
}
