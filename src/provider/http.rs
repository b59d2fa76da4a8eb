//! The HTTP layer of HTTP adapters: one place that decides what an answer is.
//!
//! - **Only the vendor's own answers are facts.** An answer counts when its
//!   body is whole JSON of the vendor's documented shape (the adapter says
//!   what its error bodies look like, [`VendorShape`]); a load balancer's HTML
//!   404, a WAF's 403 page, a truncated 200 or a proxy's plain-text 502 never
//!   reaches the adapter: it becomes a temporary error, retried and, if it
//!   persists, unknown — never "absent", "dead" or "invalid".
//! - **429 and 5xx are temporary**, with the wait the server asked for:
//!   `Retry-After` (seconds or an HTTP date), or the `X-RateLimit-Reset` /
//!   `X-Rate-Limit-Reset` / `RateLimit-Reset` headers (epoch seconds, a
//!   delta, or a time such as Jira's `2026-12-03T06:20Z`), so a rate limit is
//!   waited out rather than hammered.
//! - **Every request passes the limits layer** ([`Gate`]): the declared rate,
//!   the timeout, one bounded retry.
//! - **A secret goes only to its provider's host.** Requests (and the `next`
//!   links of paginated answers) to any other scheme, host or port are refused
//!   before anything is sent.
//! - **Nothing an answer echoes is quoted.** Errors name the status, content
//!   type and length, and the vendor's error text only through
//!   [`crate::secret::scrub`], which removes every secret value keysweep holds.
//! - **Pagination**: `Link: <…>; rel="next"` (RFC 8288), a cursor or the next
//!   page's URL in the body, or page numbers, bounded by a page limit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde_json::Value;

use super::limits::Gate;
use crate::playbook::model::Limits;
use crate::provider::{ErrorKind, ProviderError};
use crate::secret::{ExposeSecret, SecretString};

/// What a vendor's own answers look like, besides being whole JSON.
#[derive(Clone, Copy)]
pub struct VendorShape {
    /// Whether the JSON body of an error status (4xx/5xx) is the vendor's
    /// documented error shape (e.g. Okta's `errorCode`, Vault's `errors`).
    pub error_body: fn(status: u16, body: &Value) -> bool,
    /// Whether a 2xx body may be a JSON array (list endpoints), not only an object.
    pub arrays: bool,
}

/// Whether an answer is the vendor's: JSON content type and a whole JSON
/// object (or array, where the vendor lists that way); an error status
/// carries the vendor's error shape; an empty body only with 204.
pub fn vendor_shaped(shape: &VendorShape, status: u16, content_type: Option<&str>, bytes: &[u8]) -> Option<Value> {
    if bytes.is_empty() {
        return (status == 204).then_some(Value::Null);
    }
    let json_type = content_type
        .map(|c| {
            let t = c.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            t == "application/json" || (t.starts_with("application/") && t.ends_with("+json"))
        })
        .unwrap_or(false);
    if !json_type {
        return None;
    }
    let body: Value = serde_json::from_slice(bytes).ok()?;
    let whole = body.is_object() || (shape.arrays && body.is_array() && (200..300).contains(&status));
    if !whole {
        return None;
    }
    if status >= 400 && !(shape.error_body)(status, &body) {
        return None;
    }
    Some(body)
}

/// How long the server asked to wait: `Retry-After` (delta seconds or an HTTP
/// date), else a rate-limit reset header (epoch seconds, a delta when small,
/// or a time). Capped at ten minutes.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let now = std::time::SystemTime::now();
    let cap = |d: Duration| d.min(Duration::from_secs(600));
    if let Some(v) = text("retry-after") {
        if let Ok(secs) = v.parse::<u64>() {
            return Some(cap(Duration::from_secs(secs)));
        }
        if let Ok(at) = httpdate(v) {
            return Some(cap(at.duration_since(now).unwrap_or_default()));
        }
    }
    for name in ["x-ratelimit-reset", "x-rate-limit-reset", "ratelimit-reset"] {
        let Some(v) = text(name) else { continue };
        // A time of day (Jira: `2026-12-03T06:20Z`, to the minute; or RFC 3339).
        if let Some(at) = reset_time(v) {
            return Some(cap((at - chrono::Utc::now()).to_std().unwrap_or_default()));
        }
        let Some(n) = v.parse::<f64>().ok() else { continue };
        if !n.is_finite() || n < 0.0 {
            continue;
        }
        // An epoch second (Okta, GitHub) or seconds from now (IETF RateLimit).
        let secs = if n > 1_000_000_000.0 {
            let epoch = now.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64();
            (n - epoch).max(0.0)
        } else {
            n
        };
        return Some(cap(Duration::from_secs_f64(secs)));
    }
    None
}

/// A reset header written as a time: RFC 3339, or Jira's `yyyy-MM-ddTHH:mmZ`.
fn reset_time(v: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Some(t.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%MZ").ok().map(|t| t.and_utc())
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form servers send.
fn httpdate(s: &str) -> Result<std::time::SystemTime, ()> {
    let t = chrono::DateTime::parse_from_rfc2822(s).map_err(|_| ())?;
    let secs = u64::try_from(t.timestamp()).map_err(|_| ())?;
    Ok(std::time::UNIX_EPOCH + Duration::from_secs(secs))
}

/// The `rel="next"` target of a `Link` header (RFC 8288).
pub fn next_link(headers: &HeaderMap) -> Option<String> {
    for v in headers.get_all(reqwest::header::LINK).iter().filter_map(|v| v.to_str().ok()) {
        for part in v.split(',') {
            let mut pieces = part.split(';');
            let target = pieces.next()?.trim();
            let is_next = pieces.any(|p| {
                let p = p.trim().to_ascii_lowercase();
                p == "rel=\"next\""
                    || p == "rel=next"
                    || (p.starts_with("rel=\"") && p.trim_end_matches('"').split_whitespace().any(|r| r.trim_start_matches("rel=\"") == "next"))
            });
            if is_next && target.starts_with('<') && target.ends_with('>') {
                return Some(target[1..target.len() - 1].to_string());
            }
        }
    }
    None
}

/// The error for an answer that is not the vendor's: temporary, so it is
/// retried and, if it persists, the step ends unknown instead of acting on
/// it. The body is never quoted (a proxy that echoes the request would put
/// the token into the error).
pub fn not_from_vendor(
    vendor: &str,
    operation: &'static str,
    what: &str,
    status: u16,
    content_type: Option<&str>,
    len: usize,
    retry_after: Option<Duration>,
) -> ProviderError {
    let kind = if status == 429 { ErrorKind::RateLimited } else { ErrorKind::Unavailable };
    let ctype = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "no content type".into());
    let body = if status < 300 {
        format!("a body that is not whole {vendor} JSON (truncated or rewritten?)")
    } else {
        format!("no {vendor} JSON error body")
    };
    ProviderError::new(
        kind,
        operation,
        format!(
            "{what}: HTTP {status} ({ctype}, {len} bytes) with {body}: not an answer from {vendor} — a proxy, load balancer or WAF in between? \
             Taken as unknown, never as absent or dead"
        ),
    )
    .with_retry_after(retry_after)
}

/// One answer of the vendor.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    /// The headers an adapter may read (rate-limit state, `Link`, ids).
    pub headers: HeaderMap,
    pub retry_after: Option<Duration>,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// One request: method, path (relative to the base) or absolute URL, the
/// headers that carry a secret (sent, never logged), and a JSON or form body.
pub struct Request<'a> {
    pub method: Method,
    pub target: &'a str,
    pub secret_headers: Vec<(HeaderName, &'a SecretString)>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub json: Option<&'a Value>,
    pub form: Option<&'a [(&'a str, &'a str)]>,
}

impl<'a> Request<'a> {
    pub fn new(method: Method, target: &'a str) -> Self {
        Request { method, target, secret_headers: vec![], headers: vec![], json: None, form: None }
    }
    /// An `Authorization`-style header whose value is a secret.
    pub fn secret(mut self, name: HeaderName, value: &'a SecretString) -> Self {
        self.secret_headers.push((name, value));
        self
    }
    pub fn json(mut self, body: &'a Value) -> Self {
        self.json = Some(body);
        self
    }
}

/// How a list endpoint pages.
pub enum Paging<'a> {
    /// `Link: <…>; rel="next"` headers (Okta, GitHub).
    Link,
    /// A cursor in the body at a JSON pointer, sent back as a query parameter
    /// (Slack: `/response_metadata/next_cursor` → `cursor`).
    Cursor { pointer: &'a str, param: &'a str },
    /// Page numbers in a query parameter, until a page holds no items.
    Page { param: &'a str, items: &'a str },
    /// The next page's whole URL in the body at a JSON pointer (Atlassian's
    /// `links.next`). Like a `Link` header, it must name the provider's host.
    NextUrl { pointer: &'a str },
}

/// An HTTP client bound to one provider: its base URL and allowed hosts, its
/// limits, and its vendor's answer shape.
pub struct HttpClient {
    vendor: &'static str,
    base: Url,
    /// `scheme://host:port` a secret may be sent to.
    allowed: Vec<String>,
    http: reqwest::Client,
    gate: Gate,
    shape: VendorShape,
    requests: AtomicU64,
    /// Most pages one listing reads.
    pub max_pages: usize,
}

fn origin(u: &Url) -> String {
    format!("{}://{}:{}", u.scheme(), u.host_str().unwrap_or_default(), u.port_or_known_default().unwrap_or(0))
}

impl HttpClient {
    /// `base` is the provider's address; `also_allowed` other origins the
    /// vendor documents (e.g. a token endpoint on another host).
    /// `tls` names the CA and client certificate of an `https://` base (the
    /// system's roots otherwise).
    pub fn new(
        vendor: &'static str,
        base: &str,
        also_allowed: &[&str],
        limits: &Limits,
        shape: VendorShape,
        tls: &crate::provider::tls::TlsConfig,
    ) -> Result<Self, ProviderError> {
        let parse = |s: &str| Url::parse(s).map_err(|e| ProviderError::new(ErrorKind::Config, "http.client", format!("`{s}` is not a URL: {e}")));
        let base = parse(base.trim_end_matches('/'))?;
        let mut allowed = vec![origin(&base)];
        for a in also_allowed {
            allowed.push(origin(&parse(a)?));
        }
        let gate = Gate::new(limits);
        let builder = reqwest::Client::builder()
            .timeout(gate.timeout())
            .connect_timeout(gate.timeout().min(Duration::from_secs(10)))
            // A redirect could carry the secret header to another host: never follow.
            .redirect(reqwest::redirect::Policy::none());
        if tls.server_name.is_some() {
            // The allowed hosts are the addresses as written; see `TlsConfig::check_http`.
            return Err(ProviderError::new(ErrorKind::Config, "http.tls", "`tls.server_name` is not supported by this provider"));
        }
        let mut unused = base.to_string();
        let builder = crate::provider::tls::reqwest_tls("http.tls", builder, &mut unused, tls, None, &|_| None)?;
        let http = builder.build().map_err(|e| ProviderError::new(ErrorKind::Config, "http.client", e.to_string()))?;
        Ok(HttpClient { vendor, base, allowed, http, gate, shape, requests: AtomicU64::new(0), max_pages: 10_000 })
    }

    pub fn request_count(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The adaptive concurrency limit its requests feed.
    pub fn adaptive(&self) -> std::sync::Arc<super::adaptive::AdaptiveLimit> {
        self.gate.adaptive().clone()
    }

    /// The absolute URL of `target`, if a secret may be sent there.
    pub fn url(&self, operation: &'static str, target: &str) -> Result<Url, ProviderError> {
        let url = if target.starts_with("http://") || target.starts_with("https://") {
            Url::parse(target).map_err(|e| ProviderError::new(ErrorKind::Config, operation, format!("`{target}` is not a URL: {e}")))?
        } else {
            let mut u = self.base.clone();
            let path = format!("{}/{}", self.base.path().trim_end_matches('/'), target.trim_start_matches('/'));
            let (p, q) = path.split_once('?').map(|(p, q)| (p.to_string(), Some(q.to_string()))).unwrap_or((path, None));
            u.set_path(&p);
            u.set_query(q.as_deref());
            u
        };
        if !self.allowed.contains(&origin(&url)) {
            return Err(ProviderError::new(
                ErrorKind::Config,
                operation,
                format!("refusing to send a request to {}: not this provider's host ({})", origin(&url), self.allowed.join(", ")),
            ));
        }
        Ok(url)
    }

    /// One attempt: admitted by the rate limit; the vendor's answer, or a
    /// temporary error for anything else. 4xx answers are returned.
    pub async fn send(&self, operation: &'static str, req: &Request<'_>) -> Result<Answer, ProviderError> {
        self.send_documented(operation, req, |_, _| false).await
    }

    /// [`HttpClient::send`], where the vendor also documents answers without
    /// a JSON body that its headers identify (Jira's refused Basic login: a
    /// text 401 with `X-Seraph-LoginReason`). `documented(status, headers)`
    /// says which; such an answer comes back with a `Null` body (never read,
    /// never quoted), for the adapter to judge by status and headers.
    pub async fn send_documented(
        &self,
        operation: &'static str,
        req: &Request<'_>,
        documented: fn(u16, &HeaderMap) -> bool,
    ) -> Result<Answer, ProviderError> {
        let url = self.url(operation, req.target)?;
        let admission = self.gate.admit().await;
        let r = self.send_once(operation, req, url, documented).await;
        admission.http(operation, &r, |a| (a.status, a.retry_after.is_some()));
        r
    }

    async fn send_once(
        &self,
        operation: &'static str,
        req: &Request<'_>,
        url: Url,
        documented: fn(u16, &HeaderMap) -> bool,
    ) -> Result<Answer, ProviderError> {
        let what = url.path().to_string();
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut r = self.http.request(req.method.clone(), url);
        for (k, v) in &req.secret_headers {
            let mut hv = HeaderValue::from_str(v.expose_secret())
                .map_err(|_| ProviderError::new(ErrorKind::Config, operation, "a secret header value is not valid in HTTP"))?;
            hv.set_sensitive(true);
            r = r.header(k.clone(), hv);
        }
        for (k, v) in &req.headers {
            r = r.header(k.clone(), v.clone());
        }
        r = r.header(reqwest::header::ACCEPT, "application/json");
        if let Some(b) = req.json {
            r = r.json(b);
        }
        if let Some(f) = req.form {
            r = r.form(f);
        }
        // reqwest's error text names the URL (no secret: secrets go in headers or bodies).
        let resp = r.send().await.map_err(|e| {
            let e = e.without_url();
            let text = crate::provider::tls::error_chain(&e);
            match crate::provider::tls::refusal(&text, "tls.ca_cert") {
                // Not temporary: retrying does not change a certificate.
                Some(fix) => ProviderError::new(ErrorKind::Config, operation, format!("{what}: {text}; {fix}")),
                None => {
                    let kind = if e.is_builder() { ErrorKind::Config } else { ErrorKind::Unavailable };
                    ProviderError::new(kind, operation, format!("{what}: {text}"))
                }
            }
        })?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let content_type = headers.get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
        let wait = retry_after(&headers);
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ProviderError::new(ErrorKind::Unavailable, operation, format!("{what}: reading the answer: {}", e.without_url())))?;
        match vendor_shaped(&self.shape, status, content_type.as_deref(), &bytes) {
            Some(body) => Ok(Answer { status, body, headers, retry_after: wait }),
            None if documented(status, &headers) => Ok(Answer { status, body: Value::Null, headers, retry_after: wait }),
            None => Err(not_from_vendor(self.vendor, operation, &what, status, content_type.as_deref(), bytes.len(), wait)),
        }
    }

    /// A request retried within the limits on anything temporary (429, 5xx,
    /// network, a foreign answer); the vendor's 4xx answers are returned. For
    /// idempotent requests only.
    pub async fn call(&self, operation: &'static str, req: &Request<'_>) -> Result<Answer, ProviderError> {
        super::limits::retry(self.gate.retry_policy(), || async {
            let a = self.send(operation, req).await?;
            match transient(operation, a.status, a.retry_after, || format!("HTTP {} from {}", a.status, self.vendor)) {
                Some(e) => Err(e),
                None => Ok(a),
            }
        })
        .await
    }

    /// Every page of a listing, first to last (each page retried like
    /// [`HttpClient::call`]); a non-2xx page is an error of its kind. Stops at
    /// `max_pages` with an error rather than returning part of a list as if whole.
    pub async fn pages(&self, operation: &'static str, first: Request<'_>, paging: Paging<'_>) -> Result<Vec<Answer>, ProviderError> {
        let mut out: Vec<Answer> = vec![];
        let mut target = first.target.to_string();
        let mut page = 1u64;
        loop {
            if out.len() >= self.max_pages {
                return Err(ProviderError::new(
                    ErrorKind::Other,
                    operation,
                    format!("more than {} pages: listing stopped, not taken as complete", self.max_pages),
                ));
            }
            let req = Request {
                target: &target,
                secret_headers: first.secret_headers.clone(),
                headers: first.headers.clone(),
                ..Request::new(first.method.clone(), "")
            };
            let a = self.call(operation, &req).await?;
            if !a.ok() {
                return Err(status_error(operation, self.vendor, a.status));
            }
            let next = match &paging {
                Paging::Link => next_link(&a.headers),
                Paging::Cursor { pointer, param } => {
                    a.body.pointer(pointer).and_then(Value::as_str).filter(|c| !c.is_empty()).map(|c| with_param(first.target, param, c))
                }
                Paging::NextUrl { pointer } => a.body.pointer(pointer).and_then(Value::as_str).filter(|u| !u.is_empty()).map(str::to_string),
                Paging::Page { param, items } => {
                    let has = a.body.pointer(items).and_then(Value::as_array).is_some_and(|v| !v.is_empty());
                    page += 1;
                    has.then(|| with_param(first.target, param, &page.to_string()))
                }
            };
            out.push(a);
            match next {
                Some(n) => target = n,
                None => return Ok(out),
            }
        }
    }
}

/// `target` with query parameter `param` set to `value`.
pub fn with_param(target: &str, param: &str, value: &str) -> String {
    let enc: String = url_encode(value);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut kept: Vec<String> = query.split('&').filter(|p| !p.is_empty() && !p.starts_with(&format!("{param}="))).map(str::to_string).collect();
    kept.push(format!("{param}={enc}"));
    format!("{path}?{}", kept.join("&"))
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A 429 or 5xx answer as the temporary error that retries it (with the
/// wait the server asked for); `None` for any other status. `describe`
/// says what the answer was, for the error's text.
pub fn transient(operation: &'static str, status: u16, retry_after: Option<Duration>, describe: impl FnOnce() -> String) -> Option<ProviderError> {
    let kind = match status {
        429 => ErrorKind::RateLimited,
        500..=599 => ErrorKind::Unavailable,
        _ => return None,
    };
    Some(ProviderError::new(kind, operation, describe()).with_retry_after(retry_after))
}

/// A vendor's 4xx/5xx as an error of the matching kind.
pub fn status_error(operation: &'static str, vendor: &str, status: u16) -> ProviderError {
    let kind = match status {
        401 => ErrorKind::Unauthenticated,
        403 => ErrorKind::PermissionDenied,
        404 => ErrorKind::NotFound,
        409 | 412 => ErrorKind::Conflict,
        429 => ErrorKind::RateLimited,
        500..=599 => ErrorKind::Unavailable,
        _ => ErrorKind::Other,
    };
    ProviderError::new(kind, operation, format!("HTTP {status} from {vendor}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OKTA_LIKE: VendorShape = VendorShape { error_body: |_, b| b["errorCode"].is_string(), arrays: true };

    #[test]
    fn only_the_vendors_answers_are_answers() {
        let json = Some("application/json");
        assert!(vendor_shaped(&OKTA_LIKE, 401, json, br#"{"errorCode":"E0000011","errorSummary":"Invalid token provided"}"#).is_some());
        assert!(vendor_shaped(&OKTA_LIKE, 200, Some("application/json; charset=utf-8"), br#"[{"id":"a"}]"#).is_some());
        assert!(vendor_shaped(&OKTA_LIKE, 200, Some("application/vnd.github+json"), br#"{"id":1}"#).is_some());
        // A WAF's 403 page, a load balancer's JSON 404 without the vendor's shape, a truncated 200.
        assert!(vendor_shaped(&OKTA_LIKE, 403, Some("text/html"), b"<html>blocked</html>").is_none());
        assert!(vendor_shaped(&OKTA_LIKE, 404, json, br#"{"message":"no route"}"#).is_none());
        assert!(vendor_shaped(&OKTA_LIKE, 200, json, br#"[{"id":"a"},{"#).is_none());
        assert!(vendor_shaped(&OKTA_LIKE, 200, json, b"").is_none());
        assert_eq!(vendor_shaped(&OKTA_LIKE, 204, None, b""), Some(Value::Null));
        // An array where the vendor never sends one.
        let objects_only = VendorShape { arrays: false, ..OKTA_LIKE };
        assert!(vendor_shaped(&objects_only, 200, json, b"[1]").is_none());
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_wait_the_server_asked_for_is_read_from_every_usual_header() {
        assert_eq!(retry_after(&headers(&[("retry-after", "7")])), Some(Duration::from_secs(7)));
        let epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 30;
        let w = retry_after(&headers(&[("x-rate-limit-reset", &epoch.to_string())])).unwrap();
        assert!(w > Duration::from_secs(25) && w <= Duration::from_secs(31), "{w:?}");
        assert_eq!(retry_after(&headers(&[("ratelimit-reset", "12")])), Some(Duration::from_secs(12)));
        let w = retry_after(&headers(&[("x-ratelimit-reset", &epoch.to_string())])).unwrap();
        assert!(w > Duration::from_secs(25), "{w:?}");
        assert_eq!(retry_after(&headers(&[("retry-after", "99999")])), Some(Duration::from_secs(600)), "capped");
        let date = (chrono::Utc::now() + chrono::Duration::seconds(40)).to_rfc2822();
        let w = retry_after(&headers(&[("retry-after", &date)])).unwrap();
        assert!(w > Duration::from_secs(35) && w <= Duration::from_secs(41), "{w:?}");
        assert_eq!(retry_after(&headers(&[])), None);
        // Jira writes the reset as a time, to the minute.
        let at = (chrono::Utc::now() + chrono::Duration::minutes(3)).format("%Y-%m-%dT%H:%MZ").to_string();
        let w = retry_after(&headers(&[("x-ratelimit-reset", &at)])).unwrap();
        assert!(w > Duration::from_secs(115) && w <= Duration::from_secs(180), "{w:?}");
        let past = (chrono::Utc::now() - chrono::Duration::minutes(3)).format("%Y-%m-%dT%H:%MZ").to_string();
        assert_eq!(retry_after(&headers(&[("x-ratelimit-reset", &past)])), Some(Duration::ZERO));
        assert_eq!(retry_after(&headers(&[("retry-after", "2"), ("x-ratelimit-reset", &at)])), Some(Duration::from_secs(2)), "Retry-After first");
    }

    #[test]
    fn next_links_are_found_among_others() {
        let h = headers(&[(
            "link",
            r#"<https://x.okta.com/api/v1/users?limit=2>; rel="self", <https://x.okta.com/api/v1/users?after=00u2&limit=2>; rel="next""#,
        )]);
        assert_eq!(next_link(&h).as_deref(), Some("https://x.okta.com/api/v1/users?after=00u2&limit=2"));
        assert_eq!(next_link(&headers(&[("link", r#"<https://x/a>; rel="self""#)])), None);
        let two = headers(&[("link", r#"<https://x/a>; rel="self""#), ("link", r#"<https://x/b>; rel="next""#)]);
        assert_eq!(next_link(&two).as_deref(), Some("https://x/b"));
    }

    #[test]
    fn a_secret_goes_only_to_the_providers_host() {
        let c = HttpClient::new("Okta", "https://example.okta.com", &[], &Limits::default(), OKTA_LIKE, &Default::default()).unwrap();
        assert!(c.url("t", "/api/v1/users/me").is_ok());
        assert_eq!(c.url("t", "/api/v1/users?limit=2").unwrap().as_str(), "https://example.okta.com/api/v1/users?limit=2");
        assert!(c.url("t", "https://example.okta.com:443/api/v1/users?after=x").is_ok());
        for elsewhere in
            ["https://evil.example/api", "http://example.okta.com/api", "https://example.okta.com:8443/api", "https://example.okta.com.evil.example/"]
        {
            let e = c.url("t", elsewhere).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Config, "{elsewhere}");
            assert!(e.message.contains("not this provider's host"), "{}", e.message);
        }
    }

    #[test]
    fn query_parameters_are_replaced_not_repeated() {
        assert_eq!(with_param("/api/x?limit=5&cursor=a", "cursor", "b c"), "/api/x?limit=5&cursor=b%20c");
        assert_eq!(with_param("/api/x", "page", "2"), "/api/x?page=2");
    }

    #[test]
    fn foreign_answers_are_temporary_and_quote_nothing() {
        let e = not_from_vendor("Okta", "okta.list", "/api/v1/users", 403, Some("text/html"), 120, None);
        assert!(e.is_temporary());
        assert!(e.message.contains("HTTP 403") && e.message.contains("text/html") && e.message.contains("never as absent"), "{}", e.message);
    }
}
