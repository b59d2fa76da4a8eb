//! A TLS-intercepting proxy appears mid-run: keysweep talks to OpenBao
//! through a TLS front whose certificate is signed by the CA the playbook
//! trusts; after a few credentials are done the front drops every
//! connection and from then on presents a certificate for the same names
//! signed by another CA (a corporate interceptor, or an attacker). Every
//! request after that is refused by keysweep's TLS client.
//!
//! Expected, checked against OpenBao directly (not through the front, not
//! from keysweep's counters): the run exits non-zero; no credential ends
//! `rotated` or `revoked` on an answer it could not have had (none whose
//! outcome was recorded well after the switch); every credential reported
//! `rotated` has its old token dead and its new one working; and no consumer
//! is locked out: whatever a credential's store says is current works.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};

fn server_config(dir: &Path) -> Arc<rustls::ServerConfig> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.pem")).unwrap().collect::<Result<_, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
    )
}

/// The TLS front: terminates TLS with `real` until `switched`, then with
/// `rogue`; relays the plain bytes to `upstream`. At the switch every open
/// connection is cut (keysweep's client keeps connections alive).
async fn front(
    listener: TcpListener,
    upstream: String,
    real: Arc<rustls::ServerConfig>,
    rogue: Arc<rustls::ServerConfig>,
    switched: Arc<AtomicBool>,
) {
    let (cut, _) = tokio::sync::broadcast::channel::<()>(1);
    let cut = Arc::new(cut);
    let watcher = {
        let (cut, switched) = (cut.clone(), switched.clone());
        tokio::spawn(async move {
            while !switched.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let _ = cut.send(());
        })
    };
    loop {
        let Ok((client, _)) = listener.accept().await else { break };
        let config = if switched.load(Ordering::SeqCst) { rogue.clone() } else { real.clone() };
        let upstream = upstream.clone();
        let mut cut_rx = cut.subscribe();
        tokio::spawn(async move {
            let Ok(mut tls) = tokio_rustls::TlsAcceptor::from(config).accept(client).await else { return };
            let Ok(mut up) = TcpStream::connect(&upstream).await else { return };
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut tls, &mut up) => {}
                _ = cut_rx.recv() => {}
            }
        });
    }
    watcher.abort();
}

/// The TLS front of [`front`], which switches by itself: once the answer to
/// the first request whose bytes hold `trigger` has been relayed to the
/// client, every connection is cut and the rogue certificate presented from
/// then on. Lands the switch between two requests of one lifecycle.
async fn front_switching_after(
    listener: TcpListener,
    upstream: String,
    real: Arc<rustls::ServerConfig>,
    rogue: Arc<rustls::ServerConfig>,
    trigger: &'static [u8],
    switched: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (cut, _) = tokio::sync::broadcast::channel::<()>(1);
    let cut = Arc::new(cut);
    loop {
        let Ok((client, _)) = listener.accept().await else { break };
        let config = if switched.load(Ordering::SeqCst) { rogue.clone() } else { real.clone() };
        let (upstream, cut, switched) = (upstream.clone(), cut.clone(), switched.clone());
        let mut cut_rx = cut.subscribe();
        tokio::spawn(async move {
            let Ok(tls) = tokio_rustls::TlsAcceptor::from(config).accept(client).await else { return };
            let Ok(up) = TcpStream::connect(&upstream).await else { return };
            let (mut cr, mut cw) = tokio::io::split(tls);
            let (mut ur, mut uw) = up.into_split();
            let armed = Arc::new(AtomicBool::new(false));
            let arm = armed.clone();
            let to_server = async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match cr.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if buf[..n].windows(trigger.len()).any(|w| w == trigger) {
                        arm.store(true, Ordering::SeqCst);
                    }
                    if uw.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            };
            let to_client = async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match ur.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if cw.write_all(&buf[..n]).await.is_err() || cw.flush().await.is_err() {
                        return;
                    }
                    if armed.load(Ordering::SeqCst) && !switched.swap(true, Ordering::SeqCst) {
                        let _ = cut.send(());
                    }
                }
            };
            tokio::select! {
                _ = async { tokio::join!(to_server, to_client) } => {}
                _ = cut_rx.recv() => {}
            }
        });
    }
}

/// What both interceptor tests start from: two CAs, each with a
/// certificate for the same names (the playbook trusts `real_dir`'s), the
/// TLS configurations presenting them, a listener for the front, and the
/// OpenBao it relays to.
struct Fronts {
    _certs: tempfile::TempDir,
    real_dir: std::path::PathBuf,
    real: Arc<rustls::ServerConfig>,
    rogue: Arc<rustls::ServerConfig>,
    listener: TcpListener,
    port: u16,
    upstream: String,
    switched: Arc<AtomicBool>,
}

async fn fronts(b: &Bao) -> Fronts {
    let certs = tempfile::tempdir().unwrap();
    let (real_dir, rogue_dir) = (certs.path().join("real"), certs.path().join("rogue"));
    for d in [&real_dir, &rogue_dir] {
        std::fs::create_dir_all(d).unwrap();
        common::certs::server(d, &["IP:127.0.0.1", "localhost"]);
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (real, rogue) = (server_config(&real_dir), server_config(&rogue_dir));
    let upstream = b.addr.trim_start_matches("http://").to_string();
    Fronts { _certs: certs, real_dir, real, rogue, listener, port, upstream, switched: Arc::new(AtomicBool::new(false)) }
}

fn outcome_times(journal: &Path) -> Vec<(String, String, chrono::DateTime<chrono::Utc>)> {
    let c = rusqlite::Connection::open_with_flags(journal, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut st = c.prepare("SELECT cred_id, json_extract(detail, '$.outcome.outcome'), at FROM events WHERE step = 'outcome'").unwrap();
    st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))
        .unwrap()
        .map(|r| {
            let (id, o, at) = r.unwrap();
            (id, o, chrono::DateTime::parse_from_rfc3339(&at).unwrap().with_timezone(&chrono::Utc))
        })
        .collect()
}

fn outcome_count(journal: &Path) -> usize {
    rusqlite::Connection::open_with_flags(journal, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .ok()
        .and_then(|c| c.query_row("SELECT COUNT(*) FROM events WHERE step = 'outcome'", [], |r| r.get::<_, i64>(0)).ok())
        .unwrap_or(0) as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interceptor_with_another_ca_mid_run_is_never_taken_for_an_answer() {
    let b = bao();
    let Fronts { _certs, real_dir, real, rogue, listener, port, upstream, switched } = fronts(b).await;
    let front = tokio::spawn(front(listener, upstream, real, rogue, switched.clone()));

    let n = 60;
    let estate = Estate::seed(b, "mitm", n, 0, 0, false);
    let yaml = estate.yaml.replace(
        "    address: ${env:VAULT_ADDR}\n",
        &format!("    address: https://127.0.0.1:{port}\n    tls: {{ ca_cert: \"{}\" }}\n", real_dir.join("ca.pem").display()),
    );
    // One at a time at first, so that the switch finds most of them still to do.
    let yaml = yaml.replace("limits: { concurrency: 16 }", "limits: { concurrency: 2 }");
    assert!(yaml.contains(&format!("127.0.0.1:{port}")), "the playbook was not pointed at the front");
    let dir = tempfile::tempdir().unwrap();
    let pb = dir.path().join("playbook.yaml");
    std::fs::write(&pb, yaml).unwrap();
    let state = dir.path().join("state");
    let journal = state.join("journal.db");

    let mut child = keysweep(&state).args(["run", pb.to_str().unwrap(), "--quiet"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while outcome_count(&journal) < 5 {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before the interceptor appeared");
        assert!(Instant::now() < deadline, "no outcome within 120 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let switch_at = chrono::Utc::now();
    switched.store(true, Ordering::SeqCst);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    front.abort();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "exit 0 over credentials it could not finish: {stderr}");

    let outcomes = outcome_times(&journal);
    let before = outcomes.iter().filter(|(_, _, at)| *at < switch_at).count();
    assert!(before >= 5 && before < n, "{before} of {n} done before the switch");
    // No verified outcome on an answer that could not have come: after the
    // switch only the credentials already past their last request (at most
    // the 2 worked at once) can still end verified.
    let verified_after: Vec<_> = outcomes.iter().filter(|(_, o, at)| *at >= switch_at && (o == "rotated" || o == "revoked")).collect();
    assert!(verified_after.len() <= 2, "verified after the interceptor took over at {switch_at}: {verified_after:?}");
    let r = report_json(&state);
    let after: Vec<_> =
        outcomes.iter().filter(|(_, _, at)| *at >= switch_at).map(|(_, o, at)| (o.as_str(), (*at - switch_at).num_milliseconds())).collect();
    eprintln!("{before} outcomes before the switch; after it (outcome, ms after): {after:?}");
    eprintln!("totals: {}", r["totals"]);
    if let Some(row) = r["rows"].as_array().unwrap().iter().find(|row| row["outcome"] != "rotated") {
        eprintln!("e.g. {row}");
    }
    let unfinished = r["totals"]["failed"].as_u64().unwrap_or(0) + r["totals"]["unverified"].as_u64().unwrap_or(0);
    assert!(unfinished > 0, "{}", r["totals"]);
    let text = serde_json::to_string(&r).unwrap();
    assert!(text.contains("tls.ca_cert"), "the report never names the fix for a refused certificate");
    // The hint survives the pattern scrubber whole (its `s.insecure…` once read as a Vault token).
    assert!(text.contains("`tls.insecure_skip_verify: true`"), "the hint was mangled: {text}");
    // From OpenBao directly: rotated means the old one is dead and the new
    // one works; whatever the store holds works (nobody locked out).
    for (id, old) in &estate.tokens {
        let row = r["rows"].as_array().unwrap().iter().find(|row| row["id"] == id.as_str()).unwrap_or_else(|| panic!("{id}: no row"));
        let outcome = row["outcome"].as_str().unwrap_or_default();
        if outcome == "rotated" {
            assert!(!b.token_works(old), "{id}: reported rotated, old token alive");
        }
        if let Some(cur) = b.kv_get(&format!("mitm/tokens/{id}")) {
            let v = cur["value"].as_str().unwrap();
            assert!(b.token_works(v), "{id} ({outcome}): the value its store says is current does not work");
        }
    }
    for s in &estate.secrets {
        assert!(!stderr.contains(s.as_str()), "a secret in stderr");
    }
}

/// The interceptor appears exactly between a credential's retirement and its
/// proof of death: the old token is revoked (the answer came back through
/// the trusted front), and every request of the proof meets the rogue
/// certificate. The proof cannot be had, so that credential ends
/// `unverified`, never `rotated`; no later credential is touched; the run
/// exits non-zero. Checked from OpenBao directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interceptor_during_the_proof_of_death_leaves_it_unverified() {
    let b = bao();
    let Fronts { _certs, real_dir, real, rogue, listener, port, upstream, switched } = fronts(b).await;
    let front = tokio::spawn(front_switching_after(listener, upstream, real, rogue, b"/v1/auth/token/revoke-accessor", switched.clone()));

    let estate = Estate::seed(b, "mitmv", 4, 0, 0, false);
    let yaml = estate.yaml.replace(
        "    address: ${env:VAULT_ADDR}\n",
        &format!("    address: https://127.0.0.1:{port}\n    tls: {{ ca_cert: \"{}\" }}\n", real_dir.join("ca.pem").display()),
    );
    assert!(yaml.contains(&format!("127.0.0.1:{port}")), "the playbook was not pointed at the front");
    let dir = tempfile::tempdir().unwrap();
    let pb = dir.path().join("playbook.yaml");
    std::fs::write(&pb, yaml).unwrap();
    let state = dir.path().join("state");
    let out = tokio::task::spawn_blocking({
        let (state, pb) = (state.clone(), pb.clone());
        move || keysweep(&state).args(["run", pb.to_str().unwrap(), "--concurrency", "1", "--quiet"]).output().unwrap()
    })
    .await
    .unwrap();
    front.abort();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(switched.load(Ordering::SeqCst), "no revocation went through the front: {stderr}");
    assert_ne!(out.status.code(), Some(0), "exit 0 without a proof of death: {stderr}");
    let r = report_json(&state);
    let rows = r["rows"].as_array().unwrap();
    eprintln!("totals: {}", r["totals"]);
    assert_eq!(r["totals"]["rotated"], 0, "rotated without a proof of death: {}", r["totals"]);
    // The one retired behind the interceptor: revoked in fact, unverified in the report.
    let retired: Vec<_> = estate.tokens.iter().filter(|(_, old)| !b.token_works(old)).collect();
    assert_eq!(retired.len(), 1, "one old token was revoked before the switch: {retired:?}");
    let (id, _) = retired[0];
    let row = rows.iter().find(|row| row["id"] == id.as_str()).unwrap();
    assert_eq!(row["outcome"], "unverified", "{row}");
    let text = serde_json::to_string(row).unwrap();
    assert!(text.contains("tls.ca_cert") || text.to_lowercase().contains("certificate"), "the reason does not name the certificate: {row}");
    // Its new token is current in its store and works: nobody is locked out.
    // (Some of the estate's tokens have no store: their consumers hold the old one.)
    let mut stored = 0;
    for (id, old) in &estate.tokens {
        let Some(cur) = b.kv_get(&format!("mitmv/tokens/{id}")) else {
            assert!(b.token_works(old), "{id}: no store and its old token is dead: locked out");
            continue;
        };
        stored += 1;
        let v = cur["value"].as_str().unwrap();
        assert!(b.token_works(v), "{id}: the value its store says is current does not work");
        if b.token_works(old) {
            // Never started (or stopped at stage behind the interceptor): untouched.
            assert_eq!(v, old.as_str(), "{id}: its old token works but the store holds another");
        }
    }
    assert!(stored > 0, "no token of the estate has a store to check");
    for s in &estate.secrets {
        assert!(!stderr.contains(s.as_str()), "a secret in stderr");
    }
}
