//! Never more privilege or life, and only Vault's own answers as facts:
//! a real OpenBao behind the fault-injecting proxy (tests/common/faultproxy.rs).
//! Every outcome is checked from a separate client talking to OpenBao directly.

mod common;

use std::time::Duration;

use common::faultproxy::{Fault, FaultProxy, Rule};
use keysweep::playbook::model::{HumanDuration, Limits, SecretRef, Target};
use keysweep::playbook::StoreLocation;
use keysweep::provider::{ErrorKind, Handle, Provider, Verdict};
use keysweep::providers::vault::config::{VaultApproleTarget, VaultAuth, VaultKvTarget, VaultProviderConfig, VaultTokenTarget};
use keysweep::providers::vault::VaultProvider;
use keysweep::secret::{Delivered, ExposeSecret, SecretString};
use serde_json::{json, Value};

/// The tests of this binary run one at a time: the accessor lists compared
/// before and after a test must not see another test's tokens.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn proxied() -> (FaultProxy, VaultProvider) {
    let b = tokio::task::spawn_blocking(common::bao).await.unwrap();
    let proxy = FaultProxy::start(&b.addr).await;
    let cfg = VaultProviderConfig {
        address: Some(proxy.endpoint.clone()),
        namespace: None,
        auth: Some(VaultAuth::Token { token: SecretRef::Env("KS_TEST_TOKEN".into()) }),
        pending_prefix: "keysweep-pending".into(),
        limits: Limits { max_attempts: Some(3), timeout: Some(HumanDuration(Duration::from_secs(3))), ..Default::default() },
        tls: Default::default(),
        allow_plaintext: false,
    };
    let p = VaultProvider::connect("bao", &cfg, &|_| Ok(SecretString::from(common::ROOT_TOKEN.to_string()))).await.unwrap();
    (proxy, p)
}

/// Runs a blocking call to OpenBao (curl, as root) off the runtime.
async fn bao<T: Send + 'static>(f: impl FnOnce(&'static common::Bao) -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(move || f(common::bao())).await.unwrap()
}

fn token_target(acc: &str, policies: Option<&[&str]>, ttl: Option<u64>) -> Target {
    Target::VaultToken(VaultTokenTarget {
        accessor: Some(acc.to_string()),
        policies: policies.map(|p| p.iter().map(|s| s.to_string()).collect()),
        ttl: ttl.map(|s| HumanDuration(Duration::from_secs(s))),
        role: None,
        orphan: None,
    })
}

fn acc_handle(acc: &str) -> Handle {
    Handle::from([("accessor".to_string(), acc.to_string())])
}

fn nonce(tag: &str) -> String {
    format!("20260101T000000Z-answers/{tag}-{}", uuid::Uuid::new_v4().simple())
}

/// Creates a token as root with exactly `body`; returns (token, accessor).
fn make_token(b: &common::Bao, body: Value) -> (String, String) {
    let (s, r) = b.call("POST", "auth/token/create-orphan", Some(body));
    assert_eq!(s, 200, "{r}");
    (r["auth"]["client_token"].as_str().unwrap().into(), r["auth"]["accessor"].as_str().unwrap().into())
}

fn accessors(b: &common::Bao) -> Vec<String> {
    let (s, r) = b.call("LIST", "auth/token/accessors", None);
    assert_eq!(s, 200, "{r}");
    let mut v: Vec<String> = r["data"]["keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_string()).collect();
    v.sort();
    v
}

fn lookup(b: &common::Bao, acc: &str) -> Value {
    let (s, r) = b.call("POST", "auth/token/lookup-accessor", Some(json!({ "accessor": acc })));
    assert_eq!(s, 200, "{r}");
    r["data"].clone()
}

fn policies_of(d: &Value) -> Vec<String> {
    let mut p: Vec<String> = d["policies"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect();
    p.sort();
    p
}

// ---------- the proxy itself ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fault_proxy_forwards_and_injects_each_fault() {
    let _g = SERIAL.lock().await;
    let b = tokio::task::spawn_blocking(common::bao).await.unwrap();
    bao(|b| b.kv_put("answers/proxy", json!({ "value": "proxied-value-for-the-proxy-test", "username": "svc" }))).await;
    let proxy = FaultProxy::start(&b.addr).await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/secret/data/answers/proxy", proxy.endpoint);
    let get = || http.get(&url).header("X-Vault-Token", common::ROOT_TOKEN).send();

    // Unchanged forwarding, keep-alive.
    for _ in 0..2 {
        let r = get().await.unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["data"]["data"]["username"], "svc");
    }
    proxy.add(Rule::new("html", Some("GET"), "answers/proxy$", Fault::Html(404)).once());
    let r = get().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(r.text().await.unwrap().contains("<html>"));
    assert_eq!(get().await.unwrap().status(), 200, "a `once` rule fired twice");

    proxy.add(Rule::new("trunc", Some("GET"), "answers/proxy$", Fault::Truncate).nth(1));
    let r = get().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(serde_json::from_slice::<Value>(&r.bytes().await.unwrap()).is_err(), "the truncated body parsed");

    proxy.add(Rule::new("429", None, "answers/proxy$", Fault::RateLimit { retry_after_secs: 7 }).once());
    let r = get().await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["retry-after"].to_str().unwrap()), (429, "7"));

    proxy.add(Rule::new("502", None, "answers/proxy$", Fault::ServerError(502)).once());
    assert_eq!(get().await.unwrap().status(), 502);

    proxy.add(Rule::new("echo", None, "answers/proxy$", Fault::Echo).once());
    let r = get().await.unwrap();
    assert_eq!(r.status(), 500);
    assert!(
        r.text().await.unwrap().to_ascii_lowercase().contains(&format!("x-vault-token: {}", common::ROOT_TOKEN)),
        "echo does not quote the token header"
    );

    proxy.add(Rule::new("reset", None, "answers/proxy$", Fault::ResetBefore).once());
    assert!(get().await.is_err(), "a reset connection gave an answer");

    // Reset after forwarding: the write happens, the answer is lost.
    proxy.add(Rule::new("lost", Some("POST"), "answers/proxy$", Fault::ResetAfter).once());
    let r = http.post(&url).header("X-Vault-Token", common::ROOT_TOKEN).json(&json!({ "data": { "value": "x", "username": "svc" } })).send().await;
    assert!(r.is_err(), "the answer after the server acted was not lost");
    let meta = bao(|b| b.kv_meta("answers/proxy").unwrap()).await;
    assert_eq!(meta["current_version"], 2, "the write behind the lost answer did not happen");

    // Stalls: the client's own timeout ends it.
    proxy.add(Rule::new("stall", None, "answers/proxy$", Fault::StallForever).once());
    let t0 = std::time::Instant::now();
    let r = http.get(&url).timeout(Duration::from_millis(500)).send().await;
    assert!(r.is_err() && t0.elapsed() < Duration::from_secs(5));

    for name in ["html", "trunc", "429", "502", "echo", "reset", "lost", "stall"] {
        assert_eq!(proxy.fired(name), 1, "rule {name}: {:?}", proxy.fired_log());
    }
    // Every request recorded, with its method and target.
    assert!(proxy.count("POST", "secret/data/answers/proxy") == 1 && proxy.count("GET", "secret/data/answers/proxy") >= 10);
}

// ---------- defect 1: never more privilege or life ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_old_token_without_declared_settings_mints_nothing() {
    let _g = SERIAL.lock().await;
    let (proxy, p) = proxied().await;
    let (_, acc) = bao(|b| make_token(b, json!({ "policies": ["app-a"], "ttl": "1s" }))).await;
    let mut before = bao(accessors).await;
    for _ in 0..100 {
        if !before.contains(&acc) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        before = bao(accessors).await;
    }
    assert!(!before.contains(&acc), "the old token did not expire");

    let n = nonce("expired");
    let e = p.mint(&token_target(&acc, None, None), &acc_handle(&acc), &n).await.expect_err("minted a replacement for an expired token");
    assert!(e.message.contains("declare `policies:` and `ttl:` for this credential"), "{e}");
    assert_eq!(proxy.count("POST", "auth/token/create"), 0, "a token was created");
    // Only policies declared: still not enough.
    let e = p.mint(&token_target(&acc, Some(&["app-a"]), None), &acc_handle(&acc), &n).await.expect_err("minted without a TTL");
    assert!(e.message.contains("declare `policies:` and `ttl:`"), "{e}");
    let after = bao(accessors).await;
    assert_eq!(before, after, "the accessor list changed: something was minted");

    // Declared in the playbook: minted with exactly that, and no more.
    let m = p.mint(&token_target(&acc, Some(&["app-a"]), Some(600)), &acc_handle(&acc), &n).await.unwrap();
    let new_acc = m.handle["accessor"].clone();
    let d = bao(move |b| lookup(b, &new_acc)).await;
    assert_eq!(policies_of(&d), ["app-a"], "{d}");
    assert!(d["creation_ttl"].as_u64().unwrap() > 0 && d["creation_ttl"].as_u64().unwrap() <= 600, "{d}");
    let t = m.delivered.value.expose_secret().to_string();
    let (s, by_value) = bao(move |b| b.call("POST", "auth/token/lookup", Some(json!({ "token": t })))).await;
    assert_eq!(s, 200, "the delivered token is not a live token");
    assert_eq!(by_value["data"]["accessor"], m.handle["accessor"].as_str(), "the delivered token is not the one checked");
    assert_eq!(policies_of(&by_value["data"]), ["app-a"]);
    bao(move |b| b.call("POST", "auth/token/revoke-accessor", Some(json!({ "accessor": m.handle["accessor"] })))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbled_lookup_of_the_old_token_never_mints() {
    let _g = SERIAL.lock().await;
    let (proxy, p) = proxied().await;
    let (_, acc) = bao(|b| make_token(b, json!({ "policies": ["app-b"], "no_default_policy": true, "ttl": "1h", "explicit_max_ttl": "2h" }))).await;
    let target = token_target(&acc, None, None);
    for (name, fault) in [("waf", Fault::Html(403)), ("lb", Fault::Html(404)), ("trunc", Fault::Truncate), ("plain502", Fault::ServerError(502))] {
        proxy.clear();
        proxy.add(Rule::new(name, Some("POST"), "auth/token/lookup-accessor$", fault));
        let before = bao(accessors).await;
        let n = nonce(name);
        let e = p.mint(&target, &acc_handle(&acc), &n).await.err().unwrap_or_else(|| panic!("{name}: minted from a garbled lookup"));
        assert!(e.is_temporary(), "{name}: {e}");
        assert!(proxy.fired(name) >= 2, "{name}: not retried ({})", proxy.fired(name));
        assert_eq!(proxy.count("POST", "auth/token/create"), 0, "{name}: a token was created");
        assert_eq!(bao(accessors).await, before, "{name}: the accessor list changed");
        let nn = n.clone();
        assert!(bao(move |b| b.tokens_with_meta("keysweep_nonce", &nn)).await.is_empty(), "{name}");
    }
    // A truncated answer once: the retry reads it whole and the replacement copies it exactly.
    proxy.clear();
    proxy.add(Rule::new("trunc-once", Some("POST"), "auth/token/lookup-accessor$", Fault::Truncate).once());
    let m = p.mint(&target, &acc_handle(&acc), &nonce("trunc-once")).await.unwrap();
    assert_eq!(proxy.fired("trunc-once"), 1);
    let new_acc = m.handle["accessor"].clone();
    let d = bao(move |b| lookup(b, &new_acc)).await;
    assert_eq!(policies_of(&d), ["app-b"], "no_default_policy of the old token not kept: {d}");
    // Without `default` the new token may not call lookup-self: its test is admin-side.
    let v = p.test(&target, &m.delivered, &m.handle).await;
    assert!(matches!(v, Verdict::Alive(_)), "{v:?}");
    assert!(d["creation_ttl"].as_u64().unwrap() <= 3600 && d["creation_ttl"].as_u64().unwrap() > 0, "{d}");
    assert!(d["explicit_max_ttl"].as_u64().unwrap() <= 7200 && d["explicit_max_ttl"].as_u64().unwrap() > 0, "{d}");
    bao(move |b| b.call("POST", "auth/token/revoke-accessor", Some(json!({ "accessor": m.handle["accessor"] })))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_old_token_is_never_replaced_by_a_root_token() {
    let _g = SERIAL.lock().await;
    let (proxy, p) = proxied().await;
    let (_, acc) = bao(|b| make_token(b, json!({ "policies": ["root"] }))).await;
    let e = p.mint(&token_target(&acc, None, None), &acc_handle(&acc), &nonce("root")).await.expect_err("replaced a root token");
    assert!(e.message.contains("never mints a root token") && e.message.contains("declare `policies:`"), "{e}");
    let e =
        p.mint(&token_target(&acc, Some(&["root"]), Some(60)), &acc_handle(&acc), &nonce("root2")).await.expect_err("minted a declared root token");
    assert!(e.message.contains("never mints a root token"), "{e}");
    let e = p.mint(&token_target(&acc, Some(&[]), Some(60)), &acc_handle(&acc), &nonce("empty")).await.expect_err("minted with empty policies");
    assert!(e.message.contains("no policies"), "{e}");
    assert_eq!(proxy.count("POST", "auth/token/create"), 0);
    bao(move |b| b.call("POST", "auth/token/revoke-accessor", Some(json!({ "accessor": acc })))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minted_token_wider_than_the_old_one_is_revoked_and_stage_fails() {
    let _g = SERIAL.lock().await;
    let (proxy, p) = proxied().await;
    let (old_tok, acc) = bao(|b| make_token(b, json!({ "policies": ["app-c"], "ttl": "1h" }))).await;

    // 1. Something between keysweep and Vault widens the request.
    proxy.add(Rule::new(
        "widen",
        Some("POST"),
        "auth/token/create-orphan$",
        Fault::RewriteRequest { from: r#""app-c""#.into(), to: r#""app-c","admin-x""#.into() },
    ));
    let n = nonce("widen");
    let before = bao(accessors).await;
    let e = p.mint(&token_target(&acc, None, None), &acc_handle(&acc), &n).await.expect_err("delivered a widened token");
    assert_eq!(proxy.fired("widen"), 1);
    assert_eq!(e.kind, ErrorKind::Conflict, "{e}");
    assert!(e.message.contains("admin-x") && e.message.contains("it was revoked"), "{e}");
    let nn = n.clone();
    assert!(bao(move |b| b.tokens_with_meta("keysweep_nonce", &nn)).await.is_empty(), "the widened token is still alive");
    assert_eq!(bao(accessors).await, before, "the widened token is still listed");
    proxy.clear();

    // 2. A token role that makes tokens periodic (renewable forever, 24h TTL).
    let (s, r) = bao(|b| b.call("POST", "auth/token/roles/answers-periodic", Some(json!({ "token_period": "24h", "orphan": true })))).await;
    assert!(s == 204 || s == 200, "{r}");
    let target = Target::VaultToken(VaultTokenTarget {
        accessor: Some(acc.clone()),
        policies: None,
        ttl: None,
        role: Some("answers-periodic".into()),
        orphan: None,
    });
    let n = nonce("role");
    let e = p.mint(&target, &acc_handle(&acc), &n).await.expect_err("delivered a periodic token for a 1h one");
    assert_eq!(e.kind, ErrorKind::Conflict, "{e}");
    assert!(e.message.contains("86400") && e.message.contains("it was revoked"), "{e}");
    assert_eq!(proxy.count("POST", "auth/token/create/answers-periodic"), 1);
    let nn = n.clone();
    assert!(bao(move |b| b.tokens_with_meta("keysweep_nonce", &nn)).await.is_empty(), "the periodic token is still alive");
    assert_eq!(bao(accessors).await, before);
    // The old token is untouched throughout.
    assert!(bao(move |b| b.token_works(&old_tok)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_secret_id_keeps_the_old_ones_limits() {
    let _g = SERIAL.lock().await;
    let (proxy, p) = proxied().await;
    let role = format!("answers-{}", uuid::Uuid::new_v4().simple());
    let r2 = role.clone();
    let acc = bao(move |b| {
        let (s, r) = b.call(
            "POST",
            &format!("auth/approle/role/{r2}"),
            Some(json!({ "token_policies": ["default"], "secret_id_num_uses": 10, "secret_id_ttl": "10h" })),
        );
        assert!(s == 204 || s == 200, "{r}");
        let (s, r) =
            b.call("POST", &format!("auth/approle/role/{r2}/secret-id"), Some(json!({ "num_uses": 3, "ttl": "1h", "cidr_list": ["127.0.0.1/32"] })));
        assert_eq!(s, 200, "{r}");
        r["data"]["secret_id_accessor"].as_str().unwrap().to_string()
    })
    .await;
    let target =
        Target::VaultApproleSecretId(VaultApproleTarget { mount: "approle".into(), role: role.clone(), secret_id_accessor: Some(acc.clone()) });
    let m = p.mint(&target, &acc_handle(&acc), &nonce("sid")).await.unwrap();
    let (r3, new_acc) = (role.clone(), m.handle["accessor"].clone());
    let d =
        bao(move |b| b.call("POST", &format!("auth/approle/role/{r3}/secret-id-accessor/lookup"), Some(json!({ "secret_id_accessor": new_acc }))).1)
            .await;
    assert_eq!(d["data"]["secret_id_num_uses"], 3, "{d}");
    assert_eq!(d["data"]["secret_id_ttl"], 3600, "{d}");
    assert_eq!(d["data"]["cidr_list"], json!(["127.0.0.1/32"]), "{d}");

    // The request widened on the way: the secret-id is destroyed, stage fails.
    proxy.add(Rule::new(
        "widen",
        Some("POST"),
        "/secret-id$",
        Fault::RewriteRequest { from: r#""num_uses":3"#.into(), to: r#""num_uses":9"#.into() },
    ));
    let e = p.mint(&target, &acc_handle(&acc), &nonce("sid-widen")).await.expect_err("delivered a widened secret-id");
    assert_eq!(proxy.fired("widen"), 1);
    assert!(e.message.contains("num_uses 9") && e.message.contains("it was destroyed"), "{e}");
    let r4 = role.clone();
    let live =
        bao(move |b| b.call("LIST", &format!("auth/approle/role/{r4}/secret-id"), None).1["data"]["keys"].as_array().map(|a| a.len()).unwrap_or(0))
            .await;
    assert_eq!(live, 2, "expected the old and the first replacement only");
}

// ---------- defect 4: answers not from the vendor are never facts ----------

fn kv_target(path: &str) -> Target {
    Target::VaultKvSecret(VaultKvTarget {
        mount: "secret".into(),
        path: path.into(),
        field: "value".into(),
        generate: Default::default(),
        destroy_old: true,
    })
}

fn loc(path: &str) -> StoreLocation {
    StoreLocation { provider: "bao".into(), mount: "secret".into(), path: path.into(), field: "value".into() }
}

/// `current_version` read by a client of its own, straight from OpenBao.
async fn current_version(path: &str) -> u64 {
    let url = format!("{}/v1/secret/metadata/{path}", common::bao().addr);
    let r = reqwest::Client::new().get(url).header("X-Vault-Token", common::ROOT_TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["data"]["current_version"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_html_404_on_a_kv_read_is_not_a_missing_secret() {
    let _g = SERIAL.lock().await;
    let (proxy, p) = proxied().await;
    let path = format!("answers/lb404-{}", uuid::Uuid::new_v4().simple());
    let p2 = path.clone();
    bao(move |b| b.kv_put(&p2, json!({ "value": "old-value-behind-a-load-balancer", "username": "svc" }))).await;
    proxy.add(Rule::new("lb", Some("GET"), &format!("/v1/secret/(data|metadata)/{path}$"), Fault::Html(404)));
    let store = p.as_store().unwrap();
    let e = store.read_current(&loc(&path)).await.expect_err("an HTML 404 was read as `no secret`");
    assert!(e.is_temporary() && e.message.contains("not an answer from Vault"), "{e}");
    let e = p.current_handle(&kv_target(&path), None).await.expect_err("an HTML 404 on metadata gave an empty handle");
    assert!(e.is_temporary(), "{e}");
    assert!(proxy.fired("lb") >= 6, "not retried: {}", proxy.fired("lb"));
    // Vault's own 404 is still a fact.
    proxy.clear();
    assert!(store.read_current(&loc("answers/never-written")).await.unwrap().is_none());
    assert!(p.current_handle(&kv_target("answers/never-written"), None).await.unwrap().is_empty());
    // And the value was there all along.
    assert_eq!(current_version(&path).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_kv_read_never_builds_a_new_version() {
    let _g = SERIAL.lock().await;
    let (proxy, p) = proxied().await;
    let path = format!("answers/trunc-{}", uuid::Uuid::new_v4().simple());
    let p2 = path.clone();
    bao(move |b| b.kv_put(&p2, json!({ "value": "old-value-truncated-read", "username": "svc", "host": "db.internal" }))).await;
    let store = p.as_store().unwrap();
    let n = nonce("trunc-kv");
    let new = Delivered::new(SecretString::from("new-value-truncated-read-Xy7".to_string()));
    store.stage(&loc(&path), &new, &n).await.unwrap();

    proxy.add(Rule::new("trunc", Some("GET"), &format!("^/v1/secret/data/{path}$"), Fault::Truncate));
    let e = store.promote(&loc(&path), &n).await.expect_err("promoted from a truncated read");
    assert!(e.is_temporary(), "{e}");
    assert!(proxy.fired("trunc") >= 2);
    assert_eq!(proxy.count("POST", &format!("secret/data/{path}")), 0, "a version was written");
    assert_eq!(current_version(&path).await, 1, "a new version was written from a partial read");

    // Truncated once: the retry reads it whole; the other fields survive.
    proxy.clear();
    proxy.add(Rule::new("trunc-once", Some("GET"), &format!("^/v1/secret/data/{path}$"), Fault::Truncate).once());
    store.promote(&loc(&path), &n).await.unwrap();
    assert_eq!(proxy.fired("trunc-once"), 1);
    assert_eq!(current_version(&path).await, 2);
    let p3 = path.clone();
    let cur = bao(move |b| b.kv_get(&p3).unwrap()).await;
    assert_eq!((cur["username"].as_str(), cur["host"].as_str()), (Some("svc"), Some("db.internal")), "fields lost");
    assert_eq!(cur["value"], "new-value-truncated-read-Xy7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_under_throttling_errors_and_foreign_pages_is_unknown_never_dead() {
    let _g = SERIAL.lock().await;
    let (proxy, p) = proxied().await;
    // A token that is really dead, and a secret-id that is really dead.
    let (tok, acc) = bao(|b| make_token(b, json!({ "policies": ["default"], "ttl": "1h" }))).await;
    let a2 = acc.clone();
    bao(move |b| b.call("POST", "auth/token/revoke-accessor", Some(json!({ "accessor": a2 })))).await;
    let role = format!("answers-v-{}", uuid::Uuid::new_v4().simple());
    let r2 = role.clone();
    let (sid, sacc) = bao(move |b| {
        b.create_role(&r2);
        let (sid, sacc) = b.create_secret_id(&r2);
        b.call("POST", &format!("auth/approle/role/{r2}/secret-id-accessor/destroy"), Some(json!({ "secret_id_accessor": sacc })));
        (sid, sacc)
    })
    .await;
    let tt = token_target(&acc, None, None);
    let st = Target::VaultApproleSecretId(VaultApproleTarget { mount: "approle".into(), role: role.clone(), secret_id_accessor: Some(sacc.clone()) });
    let (tok, sid) = (SecretString::from(tok), SecretString::from(sid));

    // Without faults both are proven dead.
    assert!(matches!(p.verify_dead(&tt, &acc_handle(&acc), Some(&tok)).await, Verdict::Dead(_)));
    assert!(matches!(p.verify_dead(&st, &acc_handle(&sacc), Some(&sid)).await, Verdict::Dead(_)));

    let faults = [
        ("429", Fault::RateLimit { retry_after_secs: 1 }),
        ("500", Fault::ServerError(500)),
        ("503-vault", Fault::VaultError(503)),
        ("html-404", Fault::Html(404)),
        ("html-400", Fault::Html(400)),
        ("html-403", Fault::Html(403)),
        ("trunc", Fault::Truncate),
    ];
    for (name, fault) in faults {
        proxy.clear();
        proxy.add(Rule::new(name, None, "(lookup-accessor|secret-id-accessor/lookup|lookup-self|approle/login|secret-id/lookup)$", fault));
        let v = p.verify_dead(&tt, &acc_handle(&acc), Some(&tok)).await;
        assert!(matches!(v, Verdict::Unknown(_)), "token under {name}: {v:?}");
        let v = p.verify_dead(&st, &acc_handle(&sacc), Some(&sid)).await;
        assert!(matches!(v, Verdict::Unknown(_)), "secret-id under {name}: {v:?}");
        assert!(proxy.fired(name) > 0, "{name} never fired");
    }
    // A destroyed KV version behind an HTML page on metadata: unknown too.
    let path = format!("answers/v-{}", uuid::Uuid::new_v4().simple());
    let p2 = path.clone();
    bao(move |b| {
        b.kv_put(&p2, json!({ "value": "one" }));
        b.kv_put(&p2, json!({ "value": "two" }));
        b.call("PUT", &format!("secret/destroy/{p2}"), Some(json!({ "versions": [1] })));
    })
    .await;
    let kvh = Handle::from([("version".to_string(), "1".to_string())]);
    proxy.clear();
    assert!(matches!(p.verify_dead(&kv_target(&path), &kvh, None).await, Verdict::Dead(_)));
    proxy.add(Rule::new("kv-html", Some("GET"), "/metadata/", Fault::Html(404)));
    let v = p.verify_dead(&kv_target(&path), &kvh, None).await;
    assert!(matches!(v, Verdict::Unknown(_)), "kv: {v:?}");
}

// ---------- through the binary ----------

#[test]
fn a_run_over_an_expired_token_fails_stage_and_mints_nothing() {
    let _g = SERIAL.blocking_lock();
    let b = common::bao();
    let (_, acc) = make_token(b, json!({ "policies": ["app-e2e"], "ttl": "1s" }));
    std::thread::sleep(Duration::from_millis(2500));
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "{}  - {{ id: expired-tok, owner: platform, provider: bao, target: {{ kind: vault_token, accessor: {acc} }}, deliver_to: [{{ provider: bao, path: \"answers/e2e/expired-tok\" }}], verify: {{ attempts: 2, interval: 100ms }} }}\n",
        common::PROVIDER_YAML
    );
    let pb = dir.path().join("playbook.yaml");
    std::fs::write(&pb, yaml).unwrap();
    let state = dir.path().join("state");
    let before = accessors(b);
    let out = common::keysweep(&state).args(["run", pb.to_str().unwrap()]).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_ne!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let r = common::report_json(&state);
    let row = &r["rows"][0];
    assert_ne!(row["outcome"], "rotated", "{row}");
    assert!(row.to_string().contains("declare `policies:` and `ttl:`"), "{row}");
    assert_eq!(accessors(b), before, "a token was minted");
    assert!(b.kv_get("answers/e2e/expired-tok").is_none(), "something was delivered");
}

/// Runs the binary on one KV credential at `path`, through `proxy`.
async fn run_kv_through(proxy: &FaultProxy, path: &str) -> (Option<i32>, String, Value) {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "{}  - {{ id: kv-lb, owner: data, provider: bao, target: {{ kind: vault_kv_secret, path: \"{path}\" }}, verify: {{ attempts: 2, interval: 100ms }} }}\n",
        common::PROVIDER_YAML.replace("limits: { concurrency: 16 }", "limits: { concurrency: 16, max_attempts: 3 }")
    );
    let pb = dir.path().join("playbook.yaml");
    std::fs::write(&pb, yaml).unwrap();
    let state = dir.path().join("state");
    let mut cmd = common::keysweep(&state);
    cmd.env("VAULT_ADDR", &proxy.endpoint).args(["run", pb.to_str().unwrap()]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    let text = format!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text, common::report_json(&state)["rows"][0].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_behind_a_load_balancer_404_never_reports_no_previous_secret() {
    let _g = SERIAL.lock().await;
    let b = tokio::task::spawn_blocking(common::bao).await.unwrap();
    let proxy = FaultProxy::start(&b.addr).await;

    // The load balancer answers 404 to every read of the secret: the old
    // version cannot be known, so nothing is rotated.
    let path = format!("answers/e2e-lb-{}", uuid::Uuid::new_v4().simple());
    let p2 = path.clone();
    bao(move |b| b.kv_put(&p2, json!({ "value": "old-value-behind-the-lb-Qw3", "username": "svc" }))).await;
    proxy.add(Rule::new("lb", Some("GET"), &format!("/v1/secret/(data|metadata)/{path}$"), Fault::Html(404)));
    let (code, text, row) = run_kv_through(&proxy, &path).await;
    assert_ne!(code, Some(0), "{text}");
    assert!(proxy.fired("lb") > 0, "the fault never fired");
    assert_ne!(row["outcome"], "rotated", "{row}");
    assert!(!row.to_string().contains("no previous secret") && !row.to_string().contains("no earlier version"), "{row}");
    // Separate client: the old value is still the current one, nothing written.
    assert_eq!(current_version(&path).await, 1);
    let p3 = path.clone();
    assert_eq!(bao(move |b| b.kv_get(&p3).unwrap()["value"].clone()).await, "old-value-behind-the-lb-Qw3");

    // The first two reads only (the store's value, then the metadata): read
    // as "absent" they made a run write a new version, destroy nothing and
    // report `rotated: no earlier version existed` with the old value alive.
    // Retried, they read Vault's answers and the old version is destroyed.
    proxy.clear();
    proxy.add(Rule::new("lb-twice", Some("GET"), &format!("/v1/secret/(data|metadata)/{path}$"), Fault::Html(404)).times(2));
    let (code, text, row) = run_kv_through(&proxy, &path).await;
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(proxy.fired("lb-twice"), 2);
    assert!(!row.to_string().contains("no earlier version"), "{row}");
    assert_eq!(row["outcome"], "rotated", "{row}");
    let p4 = path.clone();
    let meta = bao(move |b| b.kv_meta(&p4).unwrap()).await;
    assert_eq!(meta["current_version"], 2, "{meta}");
    assert_eq!(meta["versions"]["1"]["destroyed"], true, "the old value is still readable under `rotated`: {meta}");
    let p5 = path.clone();
    assert_eq!(bao(move |b| b.kv_get(&p5).unwrap()["username"].clone()).await, "svc");
}
