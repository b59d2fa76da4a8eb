//! The HTTP layer of HTTP adapters (`src/provider/http.rs`) against a real
//! HTTP server on loopback that answers as a vendor would (Okta-shaped
//! bodies and headers), and as what sits in front of vendors does: a 429
//! with `X-Rate-Limit-Reset`, a WAF's HTML page echoing the request, a `Link`
//! that points at another host.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keysweep::playbook::model::{HumanDuration, Limits};
use keysweep::provider::http::{HttpClient, Paging, Request, VendorShape};
use keysweep::provider::ErrorKind;
use keysweep::secret::{ExposeSecret, SecretString};
use reqwest::header::AUTHORIZATION;
use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const OKTA: VendorShape = VendorShape { error_body: |_, b| b["errorCode"].is_string(), arrays: true };

type Answer = (u16, Vec<(String, String)>, String);
type Handler = Arc<dyn Fn(&str, usize) -> Answer + Send + Sync>;

/// A server answering each request with `handler(path_and_query, nth request
/// to that path)`; it records every request head it receives.
struct Server {
    base: String,
    seen: Arc<Mutex<Vec<String>>>,
}

async fn serve(handler: Handler) -> Server {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = l.accept().await else { continue };
            let (handler, seen) = (handler.clone(), s2.clone());
            tokio::spawn(async move {
                loop {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).to_string();
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let nth = {
                        let mut s = seen.lock().unwrap();
                        s.push(head.clone());
                        s.iter().filter(|h| h.split_whitespace().nth(1) == Some(path.as_str())).count()
                    };
                    let (status, headers, body) = handler(&path, nth);
                    let mut out = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n", body.len());
                    for (k, v) in headers {
                        out.push_str(&format!("{k}: {v}\r\n"));
                    }
                    out.push_str("\r\n");
                    out.push_str(&body);
                    if sock.write_all(out.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Server { base, seen }
}

fn json() -> Vec<(String, String)> {
    vec![("content-type".into(), "application/json".into())]
}

fn limits(attempts: u32) -> Limits {
    Limits { max_attempts: Some(attempts), timeout: Some(HumanDuration(Duration::from_secs(5))), ..Default::default() }
}

#[tokio::test]
async fn pages_are_read_to_the_end_through_a_rate_limit() {
    let reset_at = Arc::new(Mutex::new(0u64));
    let r2 = reset_at.clone();
    let base = Arc::new(Mutex::new(String::new()));
    let b2 = base.clone();
    let s = serve(Arc::new(move |path, nth| {
        let base = b2.lock().unwrap().clone();
        let link = |next: &str| ("link".to_string(), format!("<{base}{next}>; rel=\"next\""));
        match path {
            "/api/v1/api-tokens?limit=2" => {
                (200, [json(), vec![link("/api/v1/api-tokens?after=b&limit=2")]].concat(), r#"[{"id":"a"},{"id":"b"}]"#.into())
            }
            "/api/v1/api-tokens?after=b&limit=2" if nth == 1 => {
                // Okta's 429: its error body and the epoch second the window resets.
                let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 2;
                *r2.lock().unwrap() = at;
                let mut h = json();
                h.push(("x-rate-limit-reset".into(), at.to_string()));
                h.push(("x-rate-limit-remaining".into(), "0".into()));
                (429, h, r#"{"errorCode":"E0000047","errorSummary":"API call exceeded rate limit due to too many requests."}"#.into())
            }
            "/api/v1/api-tokens?after=b&limit=2" => {
                (200, [json(), vec![link("/api/v1/api-tokens?after=d&limit=2")]].concat(), r#"[{"id":"c"},{"id":"d"}]"#.into())
            }
            "/api/v1/api-tokens?after=d&limit=2" => (200, json(), r#"[{"id":"e"}]"#.into()),
            _ => (404, json(), r#"{"errorCode":"E0000007","errorSummary":"Not found"}"#.into()),
        }
    }))
    .await;
    *base.lock().unwrap() = s.base.clone();
    let c = HttpClient::new("Okta", &s.base, &[], &limits(3), OKTA, &Default::default()).unwrap();
    let token = SecretString::from("00-test-api-token-value-aaaaaaaaaaaaaaaa".to_string());
    let started = Instant::now();
    let pages =
        c.pages("okta.list", Request::new(Method::GET, "/api/v1/api-tokens?limit=2").secret(AUTHORIZATION, &token), Paging::Link).await.unwrap();
    let ids: Vec<String> = pages.iter().flat_map(|p| p.body.as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_string())).collect();
    assert_eq!(ids, ["a", "b", "c", "d", "e"]);
    // The 429 was waited out until the reset the server named, not hammered.
    let reset = *reset_at.lock().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(now + 1 >= reset && started.elapsed() >= Duration::from_millis(900), "{:?}", started.elapsed());
    let seen = s.seen.lock().unwrap();
    assert_eq!(seen.len(), 4, "3 pages, one of them asked twice (its 429)");
    assert!(
        seen.iter().all(|h| h.to_ascii_lowercase().contains(&format!("authorization: {}", token.expose_secret()))),
        "the token went with every page"
    );
}

#[tokio::test]
async fn a_link_to_another_host_gets_no_secret() {
    let elsewhere = serve(Arc::new(|_, _| (200, json(), "[]".into()))).await;
    let other = elsewhere.base.clone();
    let s = serve(Arc::new(move |path, _| match path {
        "/api/v1/users?limit=1" => {
            (200, [json(), vec![("link".into(), format!("<{other}/steal>; rel=\"next\""))]].concat(), r#"[{"id":"u1"}]"#.into())
        }
        _ => (404, json(), r#"{"errorCode":"E0000007"}"#.into()),
    }))
    .await;
    let c = HttpClient::new("Okta", &s.base, &[], &limits(2), OKTA, &Default::default()).unwrap();
    let token = SecretString::from("00-test-api-token-value-bbbbbbbbbbbbbbbb".to_string());
    let e = c.pages("okta.list", Request::new(Method::GET, "/api/v1/users?limit=1").secret(AUTHORIZATION, &token), Paging::Link).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config);
    assert!(e.message.contains("not this provider's host"), "{}", e.message);
    assert!(elsewhere.seen.lock().unwrap().is_empty(), "the other host got a request");
}

#[tokio::test]
async fn a_waf_page_is_temporary_retried_within_the_bound_and_never_quoted() {
    let token = SecretString::from("00-test-api-token-value-cccccccccccccccc".to_string());
    let echoed = token.expose_secret().to_string();
    let s = serve(Arc::new(move |_, _| {
        // A WAF's block page that echoes the request, token included.
        (403, vec![("content-type".into(), "text/html".into())], format!("<html>Request blocked. Authorization: {echoed}</html>"))
    }))
    .await;
    let c = HttpClient::new("Okta", &s.base, &[], &limits(3), OKTA, &Default::default()).unwrap();
    let e = c.call("okta.me", &Request::new(Method::GET, "/api/v1/users/me").secret(AUTHORIZATION, &token)).await.unwrap_err();
    assert!(e.is_temporary(), "{e}");
    assert!(e.message.contains("not an answer from Okta"), "{}", e.message);
    assert!(!e.to_string().contains(token.expose_secret()), "the error quotes the echoed token");
    assert_eq!(s.seen.lock().unwrap().len(), 3, "retried exactly max_attempts times");
    assert_eq!(c.request_count(), 3);
}

#[tokio::test]
async fn the_vendors_own_refusal_is_an_answer() {
    let s = serve(Arc::new(|_, _| (401, json(), r#"{"errorCode":"E0000011","errorSummary":"Invalid token provided"}"#.into()))).await;
    let c = HttpClient::new("Okta", &s.base, &[], &limits(3), OKTA, &Default::default()).unwrap();
    let token = SecretString::from("00-test-api-token-value-dddddddddddddddd".to_string());
    let a = c.call("okta.me", &Request::new(Method::GET, "/api/v1/users/me").secret(AUTHORIZATION, &token)).await.unwrap();
    assert_eq!((a.status, a.body["errorCode"].as_str()), (401, Some("E0000011")));
    assert_eq!(s.seen.lock().unwrap().len(), 1, "a refusal is not retried");
}
