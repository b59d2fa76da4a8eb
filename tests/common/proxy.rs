//! Test support: a counting, throttling HTTP/1.1 proxy in front of moto (or
//! any plain-HTTP upstream).
//!
//! It relays each request's bytes unchanged (request line, headers including
//! `Host` — SigV4 signs it — and body) to the upstream over a new connection,
//! and relays the response back. Only the hop-by-hop `Connection` header of a
//! response is dropped, so clients keep their connection alive although moto
//! closes its side after every response. The first `throttle_first` requests
//! are not forwarded: the proxy answers them itself with the throttling error
//! AWS sends for the request's protocol (JSON: `X-Amz-Target` header; Query:
//! everything else, e.g. IAM/STS form bodies with `Action=`).
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const MAX_HEAD: usize = 64 * 1024;

pub struct Proxy {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    state: Arc<State>,
    accept: JoinHandle<()>,
}

struct State {
    upstream: String,
    throttle_first: usize,
    arrivals: Mutex<Vec<Instant>>,
    throttled: Mutex<usize>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Proxy {
    /// Forwards every request to `upstream` (`http://host:port`) unchanged,
    /// counts requests with their arrival time, and answers the first
    /// `throttle_first` requests itself with a throttling error.
    pub async fn start(upstream: &str, throttle_first: usize) -> Proxy {
        let hostport = upstream
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("proxy upstream must be http://host:port, got {upstream}"))
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(State { upstream: hostport, throttle_first, arrivals: Mutex::new(Vec::new()), throttled: Mutex::new(0) });
        let st = state.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let _ = serve(sock, st).await;
                });
            }
        });
        Proxy { endpoint, state, accept }
    }

    /// Requests received (throttled ones included).
    pub fn count(&self) -> usize {
        self.state.arrivals.lock().unwrap().len()
    }

    /// Requests the proxy answered with a throttling error.
    pub fn throttled(&self) -> usize {
        *self.state.throttled.lock().unwrap()
    }

    /// Arrival time of every request, in arrival order.
    pub fn arrivals(&self) -> Vec<Instant> {
        self.state.arrivals.lock().unwrap().clone()
    }

    /// Largest number of requests that arrived within any window of `window`
    /// length (both ends included).
    pub fn max_in_window(&self, window: Duration) -> usize {
        let mut a = self.arrivals();
        a.sort();
        let mut best = 0;
        let mut lo = 0;
        for hi in 0..a.len() {
            while a[hi].duration_since(a[lo]) > window {
                lo += 1;
            }
            best = best.max(hi - lo + 1);
        }
        best
    }
}

/// A parsed message head: the raw bytes and the header fields.
struct Head {
    raw: Vec<u8>,
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
    fn content_length(&self) -> std::io::Result<Option<usize>> {
        match self.get("content-length") {
            None => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| bad("bad content-length")),
        }
    }
}

fn bad(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.to_string())
}

/// Reads a message head (up to and including the empty line). `None` on a
/// clean EOF before the first byte.
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
        // Tolerate blank lines before a request line (RFC 9112 2.2).
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
    Ok(Some(Head { raw, start_line, headers }))
}

/// How a message body is delimited.
enum Framing {
    None,
    Length(usize),
    Chunked,
    UntilEof,
}

/// Reads a body as raw bytes (chunked framing kept as is) into `out`.
async fn read_body<R: AsyncBufRead + Unpin>(r: &mut R, framing: &Framing, out: &mut Vec<u8>) -> std::io::Result<()> {
    match framing {
        Framing::None => Ok(()),
        Framing::Length(n) => {
            let start = out.len();
            out.resize(start + n, 0);
            r.read_exact(&mut out[start..]).await?;
            Ok(())
        }
        Framing::UntilEof => {
            r.read_to_end(out).await?;
            Ok(())
        }
        Framing::Chunked => loop {
            let before = out.len();
            if r.read_until(b'\n', out).await? == 0 {
                return Err(bad("eof in chunk size"));
            }
            let line = String::from_utf8_lossy(&out[before..]).to_string();
            let size_hex = line.trim().split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_hex, 16).map_err(|_| bad("bad chunk size"))?;
            if size == 0 {
                // Trailer fields, then the empty line.
                loop {
                    let b = out.len();
                    if r.read_until(b'\n', out).await? == 0 {
                        return Err(bad("eof in chunked trailer"));
                    }
                    if &out[b..] == b"\r\n" || &out[b..] == b"\n" {
                        return Ok(());
                    }
                }
            }
            let b = out.len();
            out.resize(b + size + 2, 0); // data + CRLF
            r.read_exact(&mut out[b..]).await?;
        },
    }
}

fn request_framing(h: &Head) -> std::io::Result<Framing> {
    if h.has_token("transfer-encoding", "chunked") {
        Ok(Framing::Chunked)
    } else {
        Ok(h.content_length()?.map(Framing::Length).unwrap_or(Framing::None))
    }
}

fn response_framing(h: &Head, request_method: &str) -> std::io::Result<Framing> {
    let status: u16 = h.start_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| bad("bad status line"))?;
    if request_method.eq_ignore_ascii_case("HEAD") || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Framing::None);
    }
    if h.has_token("transfer-encoding", "chunked") {
        return Ok(Framing::Chunked);
    }
    Ok(h.content_length()?.map(Framing::Length).unwrap_or(Framing::UntilEof))
}

/// Serves one client connection: any number of requests (keep-alive).
async fn serve(sock: TcpStream, st: Arc<State>) -> std::io::Result<()> {
    let _ = sock.set_nodelay(true);
    let (rd, mut wr) = sock.into_split();
    let mut rd = BufReader::new(rd);
    loop {
        let Some(head) = read_head(&mut rd).await? else { return Ok(()) };
        let index = {
            let mut a = st.arrivals.lock().unwrap();
            a.push(Instant::now());
            a.len() - 1
        };
        if head.has_token("expect", "100-continue") {
            wr.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
        }
        let mut request = head.raw.clone();
        read_body(&mut rd, &request_framing(&head)?, &mut request).await?;
        let client_closes = head.has_token("connection", "close") || head.start_line.ends_with("HTTP/1.0");

        if index < st.throttle_first {
            *st.throttled.lock().unwrap() += 1;
            wr.write_all(&throttling_response(&head)).await?;
            if client_closes {
                return Ok(());
            }
            continue;
        }

        let method = head.start_line.split_whitespace().next().unwrap_or("").to_string();
        let (resp, upstream_closed_unframed) = forward(&st.upstream, &request, &method).await?;
        wr.write_all(&resp).await?;
        if client_closes || upstream_closed_unframed {
            return Ok(());
        }
    }
}

/// Sends one request upstream on a new connection; returns the response bytes
/// (without the hop-by-hop `Connection` header when the body is framed) and
/// whether the body was delimited by EOF (then the client must see a close).
async fn forward(upstream: &str, request: &[u8], method: &str) -> std::io::Result<(Vec<u8>, bool)> {
    let up = TcpStream::connect(upstream).await?;
    let _ = up.set_nodelay(true);
    let (urd, mut uwr) = up.into_split();
    uwr.write_all(request).await?;
    let mut urd = BufReader::new(urd);
    let mut out = Vec::new();
    loop {
        let head = read_head(&mut urd).await?.ok_or_else(|| bad("upstream closed without a response"))?;
        let framing = response_framing(&head, method)?;
        let status_1xx = head.start_line.split_whitespace().nth(1).is_some_and(|s| s.starts_with('1'));
        if status_1xx {
            // Interim response (e.g. 100 Continue): relay, then read the final one.
            out.extend_from_slice(&head.raw);
            continue;
        }
        let until_eof = matches!(framing, Framing::UntilEof);
        if until_eof {
            out.extend_from_slice(&head.raw);
        } else {
            out.extend_from_slice(&strip_connection_header(&head));
        }
        read_body(&mut urd, &framing, &mut out).await?;
        return Ok((out, until_eof));
    }
}

/// The head without `Connection` fields (hop-by-hop: moto says `close` on
/// every response; the proxy keeps the client's connection open).
fn strip_connection_header(h: &Head) -> Vec<u8> {
    let mut out = Vec::with_capacity(h.raw.len());
    for line in h.raw.split_inclusive(|b| *b == b'\n') {
        let name = line.split(|b| *b == b':').next().unwrap_or(b"");
        if line.contains(&b':') && name.eq_ignore_ascii_case(b"connection") {
            continue;
        }
        out.extend_from_slice(line);
    }
    out
}

/// The throttling error AWS sends, in the request's protocol.
fn throttling_response(head: &Head) -> Vec<u8> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let is_json = head.get("x-amz-target").is_some();
    let (ctype, error_type_header, payload) = if is_json {
        ("application/x-amz-json-1.1", Some("ThrottlingException"), r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#.to_string())
    } else {
        // Query protocol (IAM, STS: form body with `Action=`); also the fallback.
        (
            "text/xml",
            None,
            format!(
                "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
            ),
        )
    };
    let mut r =
        format!("HTTP/1.1 400 Bad Request\r\nx-amzn-RequestId: {request_id}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n", payload.len());
    if let Some(t) = error_type_header {
        r += &format!("x-amzn-ErrorType: {t}\r\n");
    }
    r += "\r\n";
    r += &payload;
    r.into_bytes()
}
