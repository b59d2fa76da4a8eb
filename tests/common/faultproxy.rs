//! Test support: a fault-injecting HTTP/1.1 proxy in front of OpenBao, moto
//! or any plain-HTTP upstream.
//!
//! Each request is matched against the rules in order (method, a regex on the
//! request target — path and query — and an optional nth-match counter or a
//! limit on how often the rule fires). Every rule that matches counts the
//! request; the first one still allowed to fire applies its fault. Requests
//! no rule fires on are forwarded unchanged (the `Host` header included, so
//! SigV4 signatures still hold) over a fresh upstream connection, and the
//! answer is relayed re-framed with a `Content-Length`. Client connections are
//! kept alive.
//!
//! Rules can be added and removed while the proxy runs (the state is shared
//! behind a mutex), and the proxy records every request and every fault that
//! fired, for the test to assert on.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use regex::Regex;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const MAX_HEAD: usize = 64 * 1024;

/// What the proxy does to a request a rule fires on.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Reset the client connection before forwarding: the server never sees the request.
    ResetBefore,
    /// Forward, let the server act, then reset the client connection: the answer is lost.
    ResetAfter,
    /// Hold the request without an answer until the client gives up.
    StallForever,
    /// Wait this long, then forward.
    Delay(Duration),
    /// 429 with `Retry-After: secs` and a plain-text body (as a gateway sends it).
    RateLimit { retry_after_secs: u64 },
    /// This status (500, 502, 503...) with a plain-text body: not the server's answer.
    ServerError(u16),
    /// This status with the server's own error shape (`{"errors":[...]}`, JSON).
    VaultError(u16),
    /// AWS's own error answer of the Query protocol (IAM, STS): this status
    /// and `<ErrorResponse><Error><Code>` with this code, as AWS sends it
    /// (e.g. 403 `AccessDenied` for a call the caller may not make).
    AwsError(u16, String),
    /// An HTML error page with this status (a load balancer's 404, a WAF's 403).
    Html(u16),
    /// Forward, then cut the body in half; status, content type kept, the
    /// `Content-Length` says the half (the client sees a whole, short body).
    Truncate,
    /// Forward, then announce the full length but send half and close.
    CutOff,
    /// 500 whose JSON `errors` echo the request's head (every header, the
    /// token included) and body — a server or proxy that quotes requests.
    Echo,
    /// Forward with every occurrence of `from` in the request body replaced by `to`.
    RewriteRequest { from: String, to: String },
    /// Forward, then replace every occurrence of `from` in the response body by `to`.
    RewriteResponse { from: String, to: String },
}

/// One rule: which requests, and what to do to them.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub method: Option<String>,
    pub path: Regex,
    /// Fire only on the nth matching request (1-based).
    pub nth: Option<usize>,
    /// Fire at most this many times.
    pub times: Option<usize>,
    pub fault: Fault,
    /// Match only requests whose body matches this regex (AWS Query calls
    /// name their `Action` in the form body, not the path).
    pub body: Option<Regex>,
    /// Match only requests with this header whose value matches the regex
    /// (Secrets Manager names its operation in `X-Amz-Target`).
    pub header: Option<(String, Regex)>,
    /// Never fire on the first `skip` matching requests.
    pub skip: usize,
}

impl Rule {
    /// A rule on requests whose method is `method` (`None`: any) and whose
    /// target (path and query) matches the regex `path`.
    pub fn new(name: &str, method: Option<&str>, path: &str, fault: Fault) -> Rule {
        Rule {
            name: name.to_string(),
            method: method.map(str::to_string),
            path: Regex::new(path).unwrap_or_else(|e| panic!("rule {name}: bad path regex {path}: {e}")),
            nth: None,
            times: None,
            fault,
            body: None,
            header: None,
            skip: 0,
        }
    }
    /// Let the first `n` matching requests through.
    pub fn skip(mut self, n: usize) -> Rule {
        self.skip = n;
        self
    }
    /// Only requests whose body matches the regex `re`.
    pub fn body(mut self, re: &str) -> Rule {
        self.body = Some(Regex::new(re).unwrap_or_else(|e| panic!("rule {}: bad body regex {re}: {e}", self.name)));
        self
    }
    /// Only requests with header `name` whose value matches the regex `re`.
    pub fn header(mut self, name: &str, re: &str) -> Rule {
        self.header = Some((name.to_string(), Regex::new(re).unwrap_or_else(|e| panic!("rule {}: bad header regex {re}: {e}", self.name))));
        self
    }
    pub fn nth(mut self, n: usize) -> Rule {
        self.nth = Some(n);
        self
    }
    pub fn times(mut self, n: usize) -> Rule {
        self.times = Some(n);
        self
    }
    pub fn once(self) -> Rule {
        self.times(1)
    }
    fn matches(&self, method: &str, target: &str, headers: &[(String, String)], body: &str) -> bool {
        self.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self.path.is_match(target)
            && self.body.as_ref().is_none_or(|re| re.is_match(body))
            && self.header.as_ref().is_none_or(|(n, re)| headers.iter().any(|(k, v)| k.eq_ignore_ascii_case(n) && re.is_match(v)))
    }
}

struct RuleState {
    rule: Rule,
    matched: usize,
    fired: usize,
}

/// A fault that fired: (rule name, method, target).
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    pub rule: String,
    pub method: String,
    pub target: String,
}

#[derive(Default)]
struct Inner {
    rules: Vec<RuleState>,
    fired: Vec<Fired>,
    requests: Vec<(String, String)>,
    /// Per request, what it called: `METHOD /path?query`, or the
    /// AWS operation (`X-Amz-Target`'s, or a Query call's `Action=`).
    calls: Vec<String>,
}

pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    upstream: String,
    inner: Arc<Mutex<Inner>>,
    accept: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> FaultProxy {
        let hostport = upstream
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("fault proxy upstream must be http://host:port, got {upstream}"))
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind fault proxy");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let inner = Arc::new(Mutex::new(Inner::default()));
        let (st, up) = (inner.clone(), hostport.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let (st, up) = (st.clone(), up.clone());
                tokio::spawn(async move {
                    let _ = serve(sock, st, up).await;
                });
            }
        });
        FaultProxy { endpoint, upstream: hostport, inner, accept }
    }

    /// Adds a rule after the existing ones.
    pub fn add(&self, rule: Rule) {
        self.inner.lock().unwrap().rules.push(RuleState { rule, matched: 0, fired: 0 });
    }
    /// Removes the rules named `name`.
    pub fn remove(&self, name: &str) {
        self.inner.lock().unwrap().rules.retain(|r| r.rule.name != name);
    }
    /// Removes every rule (the record of requests and faults is kept).
    pub fn clear(&self) {
        self.inner.lock().unwrap().rules.clear();
    }
    /// How often the rule named `name` fired.
    pub fn fired(&self, name: &str) -> usize {
        self.inner.lock().unwrap().fired.iter().filter(|f| f.rule == name).count()
    }
    /// Every fault that fired, in order.
    pub fn fired_log(&self) -> Vec<Fired> {
        self.inner.lock().unwrap().fired.clone()
    }
    /// Every request received: (method, target).
    pub fn requests(&self) -> Vec<(String, String)> {
        self.inner.lock().unwrap().requests.clone()
    }
    /// What each request received called, in order: `GET /v1/secret/data/x`
    /// for a plain HTTP API, the operation name
    /// (`GetSecretValue`, `CreateAccessKey`) for an AWS one.
    pub fn calls(&self) -> Vec<String> {
        self.inner.lock().unwrap().calls.clone()
    }
    /// Requests with this method whose target contains `needle`.
    pub fn count(&self, method: &str, needle: &str) -> usize {
        self.requests().iter().filter(|(m, t)| m.eq_ignore_ascii_case(method) && t.contains(needle)).count()
    }
    /// Forgets the recorded requests and faults.
    pub fn reset_log(&self) {
        let mut i = self.inner.lock().unwrap();
        i.fired.clear();
        i.requests.clear();
        i.calls.clear();
    }

    /// Picks the fault for a request (and records it).
    fn decide(inner: &Mutex<Inner>, method: &str, target: &str, headers: &[(String, String)], body: &str) -> Option<Fault> {
        let mut i = inner.lock().unwrap();
        i.requests.push((method.to_string(), target.to_string()));
        i.calls.push(call_name(method, target, headers, body));
        let mut chosen = None;
        for r in i.rules.iter_mut() {
            if !r.rule.matches(method, target, headers, body) {
                continue;
            }
            r.matched += 1;
            let nth_ok = r.rule.nth.is_none_or(|n| n == r.matched) && r.matched > r.rule.skip;
            let times_ok = r.rule.times.is_none_or(|n| r.fired < n);
            if chosen.is_none() && nth_ok && times_ok {
                r.fired += 1;
                chosen = Some((r.rule.name.clone(), r.rule.fault.clone()));
            }
        }
        let (name, fault) = chosen?;
        i.fired.push(Fired { rule: name, method: method.to_string(), target: target.to_string() });
        Some(fault)
    }
}

/// What a request calls: the AWS operation when it names one (JSON
/// protocol: `X-Amz-Target: secretsmanager.GetSecretValue`; Query protocol:
/// `Action=CreateAccessKey` in the form body), else `METHOD /path`.
fn call_name(method: &str, target: &str, headers: &[(String, String)], body: &str) -> String {
    if let Some((_, v)) = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("x-amz-target")) {
        return v.rsplit('.').next().unwrap_or(v).to_string();
    }
    if let Some(a) = body.split('&').find_map(|kv| kv.strip_prefix("Action=")) {
        return a.to_string();
    }
    format!("{method} {target}")
}

/// A parsed message head.
struct Head {
    start_line: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn get(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).any(|(_, v)| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }
    fn status(&self) -> u16 {
        self.start_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
    }
    /// The head re-emitted without framing and connection fields, with a `Content-Length` for `len`.
    fn emit(&self, len: Option<usize>, extra: &[(&str, &str)]) -> Vec<u8> {
        let mut out = format!("{}\r\n", self.start_line);
        for (k, v) in &self.headers {
            let k_l = k.to_ascii_lowercase();
            if ["connection", "keep-alive", "content-length", "transfer-encoding", "expect", "proxy-connection"].contains(&k_l.as_str()) {
                continue;
            }
            out += &format!("{k}: {v}\r\n");
        }
        if let Some(n) = len {
            out += &format!("Content-Length: {n}\r\n");
        }
        for (k, v) in extra {
            out += &format!("{k}: {v}\r\n");
        }
        out += "\r\n";
        out.into_bytes()
    }
}

fn bad(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.to_string())
}

async fn read_head<R: AsyncBufRead + Unpin>(r: &mut R) -> std::io::Result<Option<Head>> {
    let mut raw = Vec::new();
    loop {
        let before = raw.len();
        let n = r.read_until(b'\n', &mut raw).await?;
        if n == 0 {
            return if raw.is_empty() { Ok(None) } else { Err(bad("eof inside message head")) };
        }
        if raw.len() > MAX_HEAD {
            return Err(bad("message head too large"));
        }
        let line = &raw[before..];
        if before == 0 && (line == b"\r\n" || line == b"\n") {
            raw.clear();
            continue;
        }
        if line == b"\r\n" || line == b"\n" {
            break;
        }
    }
    let text = String::from_utf8_lossy(&raw).to_string();
    let mut lines = text.split("\r\n").flat_map(|l| l.split('\n'));
    let start_line = lines.next().unwrap_or_default().to_string();
    let headers =
        lines.filter(|l| !l.is_empty()).filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))).collect();
    Ok(Some(Head { start_line, headers }))
}

enum Framing {
    None,
    Length(usize),
    Chunked,
    UntilEof,
}

/// Reads a body, de-chunked.
async fn read_body<R: AsyncBufRead + Unpin>(r: &mut R, framing: &Framing) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    match framing {
        Framing::None => {}
        Framing::Length(n) => {
            out.resize(*n, 0);
            r.read_exact(&mut out).await?;
        }
        Framing::UntilEof => {
            r.read_to_end(&mut out).await?;
        }
        Framing::Chunked => loop {
            let mut line = Vec::new();
            if r.read_until(b'\n', &mut line).await? == 0 {
                return Err(bad("eof in chunk size"));
            }
            let line = String::from_utf8_lossy(&line).to_string();
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("").trim(), 16).map_err(|_| bad("bad chunk size"))?;
            if size == 0 {
                loop {
                    let mut t = Vec::new();
                    if r.read_until(b'\n', &mut t).await? == 0 || t == b"\r\n" || t == b"\n" {
                        return Ok(out);
                    }
                }
            }
            let b = out.len();
            out.resize(b + size, 0);
            r.read_exact(&mut out[b..]).await?;
            let mut crlf = [0u8; 2];
            r.read_exact(&mut crlf).await?;
        },
    }
    Ok(out)
}

fn request_framing(h: &Head) -> std::io::Result<Framing> {
    if h.has_token("transfer-encoding", "chunked") {
        return Ok(Framing::Chunked);
    }
    match h.get("content-length") {
        None => Ok(Framing::None),
        Some(v) => v.trim().parse().map(Framing::Length).map_err(|_| bad("bad content-length")),
    }
}

fn response_framing(h: &Head, method: &str) -> std::io::Result<Framing> {
    let status = h.status();
    if method.eq_ignore_ascii_case("HEAD") || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Framing::None);
    }
    if h.has_token("transfer-encoding", "chunked") {
        return Ok(Framing::Chunked);
    }
    match h.get("content-length") {
        None => Ok(Framing::UntilEof),
        Some(v) => v.trim().parse().map(Framing::Length).map_err(|_| bad("bad content-length")),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}

fn response(status: u16, ctype: &str, body: &[u8], extra: &[(&str, String)]) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 {status} {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n", reason(status), body.len());
    for (k, v) in extra {
        r += &format!("{k}: {v}\r\n");
    }
    r += "\r\n";
    let mut out = r.into_bytes();
    out.extend_from_slice(body);
    out
}

/// Resets a connection (RST, not FIN). A zero linger never blocks on drop,
/// which is what the deprecation warns about.
#[allow(deprecated)]
fn reset(sock: TcpStream) {
    let _ = sock.set_linger(Some(Duration::ZERO));
    drop(sock);
}

/// Serves one client connection: any number of requests (keep-alive).
async fn serve(sock: TcpStream, st: Arc<Mutex<Inner>>, upstream: String) -> std::io::Result<()> {
    let _ = sock.set_nodelay(true);
    let mut rd = BufReader::new(sock);
    loop {
        let Some(head) = read_head(&mut rd).await? else { return Ok(()) };
        if head.has_token("expect", "100-continue") {
            rd.get_mut().write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
        }
        let mut body = read_body(&mut rd, &request_framing(&head)?).await?;
        let mut parts = head.start_line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let client_closes = head.has_token("connection", "close") || head.start_line.ends_with("HTTP/1.0");
        let fault = FaultProxy::decide(&st, &method, &target, &head.headers, &String::from_utf8_lossy(&body));

        let answer: Vec<u8> = match fault {
            Some(Fault::ResetBefore) => {
                reset(rd.into_inner());
                return Ok(());
            }
            Some(Fault::StallForever) => {
                // Until the client gives up (EOF or error).
                let mut buf = [0u8; 1024];
                while matches!(rd.read(&mut buf).await, Ok(n) if n > 0) {}
                return Ok(());
            }
            Some(Fault::RateLimit { retry_after_secs }) => {
                response(429, "text/plain", b"Too Many Requests\n", &[("Retry-After", retry_after_secs.to_string())])
            }
            Some(Fault::ServerError(s)) => response(s, "text/plain", format!("{s} {}\n", reason(s)).as_bytes(), &[]),
            Some(Fault::VaultError(s)) => response(s, "application/json", br#"{"errors":["injected by the fault proxy"]}"#, &[]),
            Some(Fault::AwsError(s, code)) => {
                let body = format!(
                    "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\">\n  <Error>\n    <Type>Sender</Type>\n    <Code>{code}</Code>\n    <Message>injected by the fault proxy</Message>\n  </Error>\n  <RequestId>00000000-0000-0000-0000-000000000000</RequestId>\n</ErrorResponse>\n"
                );
                response(s, "text/xml", body.as_bytes(), &[])
            }
            Some(Fault::Html(s)) => {
                let page = format!(
                    "<!DOCTYPE html>\n<html><head><title>{s} {r}</title></head><body><center><h1>{s} {r}</h1></center><hr><center>edge-lb</center></body></html>\n",
                    r = reason(s)
                );
                response(s, "text/html; charset=utf-8", page.as_bytes(), &[])
            }
            Some(Fault::Echo) => {
                let mut quoted = format!("{}\n", head.start_line);
                for (k, v) in &head.headers {
                    quoted += &format!("{k}: {v}\n");
                }
                quoted += &String::from_utf8_lossy(&body);
                let payload = serde_json::json!({ "errors": [format!("1 error occurred:\n\t* could not process request:\n{quoted}")] });
                response(500, "application/json", payload.to_string().as_bytes(), &[])
            }
            other => {
                if let Some(Fault::Delay(d)) = &other {
                    tokio::time::sleep(*d).await;
                }
                if let Some(Fault::RewriteRequest { from, to }) = &other {
                    body = String::from_utf8_lossy(&body).replace(from.as_str(), to).into_bytes();
                }
                let (rhead, mut rbody) = forward(&upstream, &head, &body, &method).await?;
                match other {
                    Some(Fault::ResetAfter) => {
                        reset(rd.into_inner());
                        return Ok(());
                    }
                    Some(Fault::Truncate) => {
                        rbody.truncate(rbody.len() / 2);
                        let mut out = rhead.emit(Some(rbody.len()), &[]);
                        out.extend_from_slice(&rbody);
                        out
                    }
                    Some(Fault::CutOff) => {
                        let mut out = rhead.emit(Some(rbody.len()), &[]);
                        out.extend_from_slice(&rbody[..rbody.len() / 2]);
                        let mut sock = rd.into_inner();
                        sock.write_all(&out).await?;
                        let _ = sock.shutdown().await;
                        return Ok(());
                    }
                    Some(Fault::RewriteResponse { from, to }) => {
                        rbody = String::from_utf8_lossy(&rbody).replace(from.as_str(), &to).into_bytes();
                        let mut out = rhead.emit(Some(rbody.len()), &[]);
                        out.extend_from_slice(&rbody);
                        out
                    }
                    _ => {
                        let framed = !matches!(response_framing(&rhead, &method)?, Framing::None);
                        let mut out = rhead.emit(framed.then_some(rbody.len()), &[]);
                        out.extend_from_slice(&rbody);
                        out
                    }
                }
            }
        };
        rd.get_mut().write_all(&answer).await?;
        if client_closes {
            return Ok(());
        }
    }
}

/// Sends one request upstream on a new connection; returns the final
/// response's head and de-chunked body.
async fn forward(upstream: &str, head: &Head, body: &[u8], method: &str) -> std::io::Result<(Head, Vec<u8>)> {
    let mut up = BufReader::new(TcpStream::connect(upstream).await?);
    let _ = up.get_ref().set_nodelay(true);
    let has_body = !body.is_empty() || head.get("content-length").is_some() || head.has_token("transfer-encoding", "chunked");
    let mut req = head.emit(has_body.then_some(body.len()), &[("Connection", "close")]);
    req.extend_from_slice(body);
    up.get_mut().write_all(&req).await?;
    loop {
        let h = read_head(&mut up).await?.ok_or_else(|| bad("upstream closed without a response"))?;
        if (100..200).contains(&h.status()) {
            continue; // interim response
        }
        let b = read_body(&mut up, &response_framing(&h, method)?).await?;
        return Ok((h, b));
    }
}

// ---------- a TCP-level fault proxy (PostgreSQL and other non-HTTP protocols) ----------

/// What the TCP proxy does when a client sends bytes a rule matches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TcpFault {
    /// Reset both connections before forwarding: the server never sees it.
    ResetBefore,
    /// Forward, let the server act and answer, drop that answer and reset
    /// the client: "the server acted, the answer was lost".
    ResetAfterAnswer,
    /// Forward nothing more either way until the client gives up.
    Stall,
}

/// A rule on client bytes: fires when a chunk the client sends contains
/// `needle` (PostgreSQL sends SQL text and startup parameters in clear).
#[derive(Debug, Clone)]
pub struct TcpRule {
    pub name: String,
    pub needle: Vec<u8>,
    pub fault: TcpFault,
    pub nth: Option<usize>,
    pub times: Option<usize>,
    /// Never fire on the first `skip` matches (e.g. a login at `test`
    /// before the ones at `verify_dead`).
    pub skip: usize,
}

impl TcpRule {
    pub fn new(name: &str, needle: &[u8], fault: TcpFault) -> TcpRule {
        TcpRule { name: name.to_string(), needle: needle.to_vec(), fault, nth: None, times: None, skip: 0 }
    }
    pub fn skip(mut self, n: usize) -> TcpRule {
        self.skip = n;
        self
    }
    pub fn nth(mut self, n: usize) -> TcpRule {
        self.nth = Some(n);
        self
    }
    pub fn times(mut self, n: usize) -> TcpRule {
        self.times = Some(n);
        self
    }
}

#[derive(Default)]
struct TcpInner {
    rules: Vec<(TcpRule, usize, usize)>,
    fired: Vec<String>,
    /// Every chunk is reset: the system is down.
    down: bool,
}

/// A TCP proxy to `upstream` that injects `TcpFault`s per byte pattern.
pub struct TcpFaultProxy {
    pub host: String,
    pub port: u16,
    inner: Arc<Mutex<TcpInner>>,
    accept: JoinHandle<()>,
}

impl Drop for TcpFaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl TcpFaultProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> TcpFaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind tcp fault proxy");
        let port = listener.local_addr().unwrap().port();
        let inner = Arc::new(Mutex::new(TcpInner::default()));
        let (st, up) = (inner.clone(), upstream.to_string());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let (st, up) = (st.clone(), up.clone());
                tokio::spawn(async move {
                    let _ = serve_tcp(sock, st, up).await;
                });
            }
        });
        TcpFaultProxy { host: "127.0.0.1".into(), port, inner, accept }
    }
    pub fn add(&self, rule: TcpRule) {
        self.inner.lock().unwrap().rules.push((rule, 0, 0));
    }
    pub fn clear(&self) {
        self.inner.lock().unwrap().rules.clear();
    }
    /// How often the rule named `name` fired.
    pub fn fired(&self, name: &str) -> usize {
        self.inner.lock().unwrap().fired.iter().filter(|f| *f == name).count()
    }
    /// From now on, resets every connection at its next bytes: the server is down.
    pub fn go_down(&self) {
        self.inner.lock().unwrap().down = true;
    }
    fn decide(inner: &Mutex<TcpInner>, chunk: &[u8]) -> Option<TcpFault> {
        let mut i = inner.lock().unwrap();
        if i.down {
            return Some(TcpFault::ResetBefore);
        }
        let mut chosen = None;
        for (rule, matched, fired) in i.rules.iter_mut() {
            if rule.needle.is_empty() || !chunk.windows(rule.needle.len()).any(|w| w == rule.needle.as_slice()) {
                continue;
            }
            *matched += 1;
            let nth_ok = rule.nth.is_none_or(|n| n == *matched) && *matched > rule.skip;
            let times_ok = rule.times.is_none_or(|n| *fired < n);
            if chosen.is_none() && nth_ok && times_ok {
                *fired += 1;
                chosen = Some((rule.name.clone(), rule.fault));
            }
        }
        let (name, fault) = chosen?;
        i.fired.push(name);
        Some(fault)
    }
}

/// Pumps one client connection through to a fresh upstream connection.
#[allow(deprecated)]
async fn serve_tcp(client: TcpStream, st: Arc<Mutex<TcpInner>>, upstream: String) -> std::io::Result<()> {
    let server = TcpStream::connect(&upstream).await?;
    // Zero linger: dropping the halves resets the client (RST, not FIN).
    let _ = client.set_linger(Some(Duration::ZERO));
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let (kill_tx, kill_rx) = tokio::sync::watch::channel(false);
    let drop_answer = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let kill = Arc::new(kill_tx);
    let (k1, mut r1, d1) = (kill.clone(), kill_rx.clone(), drop_answer.clone());
    let c2s = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            tokio::select! {
                n = cr.read(&mut buf) => {
                    let n = match n { Ok(0) | Err(_) => { let _ = sw.shutdown().await; return; } Ok(n) => n };
                    match TcpFaultProxy::decide(&st, &buf[..n]) {
                        Some(TcpFault::ResetBefore) => { let _ = k1.send(true); return; }
                        Some(TcpFault::ResetAfterAnswer) => {
                            d1.store(true, std::sync::atomic::Ordering::SeqCst);
                            if sw.write_all(&buf[..n]).await.is_err() { let _ = k1.send(true); return; }
                        }
                        Some(TcpFault::Stall) => {
                            // Swallow everything until the client gives up.
                            while matches!(cr.read(&mut buf).await, Ok(n) if n > 0) {}
                            let _ = k1.send(true);
                            return;
                        }
                        None => if sw.write_all(&buf[..n]).await.is_err() { let _ = k1.send(true); return; },
                    }
                }
                _ = r1.changed() => return,
            }
        }
    };
    let (k2, mut r2) = (kill.clone(), kill_rx.clone());
    let s2c = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            tokio::select! {
                n = sr.read(&mut buf) => {
                    let n = match n { Ok(0) | Err(_) => { let _ = k2.send(true); return; } Ok(n) => n };
                    if drop_answer.load(std::sync::atomic::Ordering::SeqCst) {
                        // The server acted and answered: the answer is lost.
                        let _ = k2.send(true);
                        return;
                    }
                    if cw.write_all(&buf[..n]).await.is_err() { let _ = k2.send(true); return; }
                }
                _ = r2.changed() => return,
            }
        }
    };
    tokio::join!(c2s, s2c);
    Ok(())
}

/// A provider connected through a TCP proxy that then goes down (for the
/// conformance outage trial): `connect` gets the proxy's host and port. The
/// proxy lives for the rest of the test binary.
pub async fn behind_a_dead_proxy<P>(upstream: &str, connect: impl AsyncFnOnce(&str, u16) -> P) -> P {
    let proxy: &'static TcpFaultProxy = Box::leak(Box::new(TcpFaultProxy::start(upstream).await));
    let p = connect(&proxy.host, proxy.port).await;
    proxy.go_down();
    p
}
