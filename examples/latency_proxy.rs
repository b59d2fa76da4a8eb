//! A TCP proxy that adds a fixed delay to every request, for the benchmark
//! (scripts/bench.sh): a local server made to answer like one a cloud round
//! trip away. Bytes from the client are passed on `--delay-ms` after they
//! arrived, in order (so one request, in however many writes, reaches the
//! server that much later); answers come back at once. HTTP is not parsed,
//! except to count requests (chunks that start with a method), which it
//! prints, with the most in any one second, when it gets SIGTERM or SIGINT;
//! `--log-requests` also prints each request line (method and path) as it
//! arrives, to see what a client sends.
//!
//!   cargo run --release --example latency_proxy -- --listen 127.0.0.1:18250 \
//!       --upstream 127.0.0.1:18200 --delay-ms 50

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
struct Counts {
    requests: u64,
    arrivals: VecDeque<Instant>,
    most_in_a_second: usize,
}

impl Counts {
    fn arrived(&mut self, now: Instant) {
        self.requests += 1;
        self.arrivals.push_back(now);
        while self.arrivals.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1)) {
            self.arrivals.pop_front();
        }
        self.most_in_a_second = self.most_in_a_second.max(self.arrivals.len());
    }
}

fn is_request_start(b: &[u8]) -> bool {
    [&b"GET "[..], b"POST ", b"PUT ", b"DELETE ", b"LIST ", b"PATCH ", b"HEAD "].iter().any(|m| b.starts_with(m))
}

async fn relay(client: TcpStream, upstream: String, delay: Duration, counts: Arc<Mutex<Counts>>, log: bool) -> Result<()> {
    client.set_nodelay(true)?;
    let server = TcpStream::connect(&upstream).await.with_context(|| format!("connecting to {upstream}"))?;
    server.set_nodelay(true)?;
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    // Client to server, each chunk held until `delay` after it arrived.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let now = Instant::now();
            if is_request_start(&buf[..n]) {
                counts.lock().unwrap().arrived(now);
                if log {
                    let line = buf[..n].split(|b| *b == b'\r').next().unwrap_or_default();
                    eprintln!("{}", String::from_utf8_lossy(line));
                }
            }
            if tx.send((now + delay, buf[..n].to_vec())).is_err() {
                break;
            }
        }
    });
    let writer = tokio::spawn(async move {
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due.into()).await;
            if sw.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = sw.shutdown().await;
    });
    // Server to client, at once.
    let _ = tokio::io::copy(&mut sr, &mut cw).await;
    reader.abort();
    writer.abort();
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut listen = "127.0.0.1:18250".to_string();
    let mut upstream = "127.0.0.1:18200".to_string();
    let mut delay_ms = 50u64;
    let mut log = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut v = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--listen" => listen = v()?,
            "--upstream" => upstream = v()?.trim_start_matches("http://").trim_end_matches('/').to_string(),
            "--delay-ms" => delay_ms = v()?.parse()?,
            "--log-requests" => log = true,
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    let delay = Duration::from_millis(delay_ms);
    let listener = TcpListener::bind(&listen).await.with_context(|| format!("binding {listen}"))?;
    eprintln!("latency_proxy: {listen} -> {upstream}, +{delay_ms} ms per request");
    let counts = Arc::new(Mutex::new(Counts::default()));
    let c = counts.clone();
    let accept = tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else { continue };
            let (up, c) = (upstream.clone(), c.clone());
            tokio::spawn(async move {
                if let Err(e) = relay(sock, up, delay, c, log).await {
                    eprintln!("latency_proxy: {e:#}");
                }
            });
        }
    });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    accept.abort();
    let c = counts.lock().unwrap();
    println!("requests={} most_in_one_second={}", c.requests, c.most_in_a_second);
    Ok(())
}
