//! Test support: an HTTP/1.1 proxy in front of OpenBao that, for requests
//! matching a rule, does not forward but answers `500` with a Vault-shaped
//! error body that echoes the request — its body and its `X-Vault-Token`
//! header — as a misbehaving server or proxy would. Everything else is
//! relayed unchanged (one request per connection, `Connection: close`).
//! Every echoed request is kept, so a test learns values keysweep sent (a
//! generated value that never reached the server) and can scan for them.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// Which requests to echo: all given conditions must hold.
#[derive(Clone, Debug, Default)]
pub struct Rule {
    /// `GET`, `POST`…; empty for any.
    pub method: String,
    /// A substring of the request path.
    pub path_contains: String,
    /// Only when the request presents this token.
    pub token: Option<String>,
    /// Only when the request body contains this text (empty: any body).
    pub body_contains: String,
}

/// One echoed request.
#[derive(Clone, Debug)]
pub struct Echoed {
    pub method: String,
    pub path: String,
    pub token: String,
    pub body: String,
}

pub struct EchoProxy {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    echoed: Arc<Mutex<Vec<Echoed>>>,
    rules: Arc<Mutex<Vec<Rule>>>,
}

impl EchoProxy {
    /// Relays to `upstream` (`http://host:port`), echoing requests that match any of `rules`.
    pub fn start(upstream: &str, rules: Vec<Rule>) -> EchoProxy {
        let up = upstream.strip_prefix("http://").expect("upstream must be http://host:port").trim_end_matches('/').to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let echoed = Arc::new(Mutex::new(vec![]));
        let rules = Arc::new(Mutex::new(rules));
        let (seen, r) = (echoed.clone(), rules.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (up, rules, seen) = (up.clone(), r.clone(), seen.clone());
                std::thread::spawn(move || {
                    let rules = rules.lock().unwrap().clone();
                    let _ = handle(conn, &up, &rules, &seen);
                });
            }
        });
        EchoProxy { endpoint, echoed, rules }
    }

    /// Replaces the rules (an empty list relays everything).
    pub fn set_rules(&self, rules: Vec<Rule>) {
        *self.rules.lock().unwrap() = rules;
    }

    /// Requests echoed so far.
    pub fn echoed(&self) -> Vec<Echoed> {
        self.echoed.lock().unwrap().clone()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn handle(mut c: TcpStream, up: &str, rules: &[Rule], seen: &Mutex<Vec<Echoed>>) -> std::io::Result<()> {
    let mut buf = vec![];
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = c.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_string();
    let mut parts = request_line.split(' ');
    let (method, path) = (parts.next().unwrap_or_default().to_string(), parts.next().unwrap_or_default().to_string());
    let headers: Vec<(String, String)> =
        lines.filter(|l| !l.is_empty()).filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))).collect();
    let header = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    let len: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    while buf.len() < head_end + len {
        let n = c.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..]).to_string();
    let token = header("x-vault-token").unwrap_or_default();
    let hit = rules.iter().any(|r| {
        (r.method.is_empty() || r.method.eq_ignore_ascii_case(&method))
            && path.contains(&r.path_contains)
            && r.token.as_ref().is_none_or(|t| *t == token)
            && body.contains(&r.body_contains)
    });
    if hit {
        seen.lock().unwrap().push(Echoed { method: method.clone(), path: path.clone(), token: token.clone(), body: body.clone() });
        let text = format!("echo-proxy: X-Vault-Token header {token} with body {body} on {method} {path}");
        let answer = serde_json::json!({ "errors": [text] }).to_string();
        let resp = format!(
            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
            answer.len()
        );
        c.write_all(resp.as_bytes())?;
        return c.flush();
    }
    // Relay: the same request with `Connection: close`, then the whole answer.
    let mut out = format!("{request_line}\r\n");
    for (k, v) in &headers {
        if !k.eq_ignore_ascii_case("connection") {
            out += &format!("{k}: {v}\r\n");
        }
    }
    out += "Connection: close\r\n\r\n";
    let mut u = TcpStream::connect(up)?;
    u.write_all(out.as_bytes())?;
    u.write_all(&buf[head_end..])?;
    let mut answer = vec![];
    u.read_to_end(&mut answer)?;
    c.write_all(&answer)?;
    c.flush()
}
