//! The declarative `http` provider kind, driven by the recipes shipped in
//! `playbooks/recipes/` (loaded by keysweep's own loader, unchanged but for
//! the base URL) against the vendors' simulators (`sims/smartsheet.py`,
//! `sims/pagerduty.py`, `sims/moveworks.py`): the conformance trials, every
//! pagination style the recipes use, revocation and rotation proven by each
//! vendor's own refusal, ambiguous answers, 429 storms and 5xx never taken
//! for dead, the declared rate kept at the server, a secret never sent to a
//! host the recipe does not list, and `keysweep run` end to end with a Vault
//! store — every outcome checked in the simulator's own state.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use keysweep::playbook::model::{HumanDuration, Limits, ProviderConfig, SecretRef, Target};
use keysweep::provider::conformance::{self, Fixture};
use keysweep::provider::kind::ProviderKind;
use keysweep::provider::{ErrorKind, Handle, Provider, Verdict};
use keysweep::providers::declarative::config::{HttpProviderConfig, HttpTokenTarget, LinkPaging, Pagination};
use keysweep::secret::{Delivered, ExposeSecret, SecretString};
use serde_json::{json, Value};

use common::sim::{self, Sim};

fn recipe(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/recipes").join(format!("{name}.yaml"))
}

/// A shipped recipe, read by keysweep's loader with `base` as its URL.
fn load_recipe(name: &str, base: &str) -> HttpProviderConfig {
    let env = |k: &str| if k.ends_with("_URL") { Some(base.to_string()) } else { Some("unused".to_string()) };
    let pb = keysweep::playbook::loader::load_with_env(&recipe(name), &env).unwrap_or_else(|d| panic!("{name}: {d}"));
    match &pb.providers.values().next().expect("a provider").config {
        ProviderConfig::Http(c) => c.clone(),
        other => panic!("{name}: a `{}` provider", other.kind()),
    }
}

async fn connect(cfg: &HttpProviderConfig, login: &str) -> Arc<dyn Provider> {
    let login = login.to_string();
    cfg.connect("vendor", &move |_r: &SecretRef| Ok(SecretString::from(login.clone()))).await.unwrap_or_else(|e| panic!("connect: {e}"))
}

fn fast(mut cfg: HttpProviderConfig, attempts: u32) -> HttpProviderConfig {
    cfg.limits = Limits { max_attempts: Some(attempts), timeout: Some(HumanDuration(std::time::Duration::from_secs(3))), ..Default::default() };
    cfg
}

fn token_target(id: Option<&str>, name: Option<&str>, user: Option<&str>) -> Target {
    Target::HttpToken(HttpTokenTarget {
        token_id: id.map(str::to_string),
        name: name.map(str::to_string),
        user: user.map(str::to_string),
        privileged: false,
    })
}

fn delivered(v: &str) -> Delivered {
    Delivered::new(SecretString::from(v.to_string()))
}

fn n8() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}

// ---- Moveworks-style --------------------------------------------------------

/// Seeds the admin principal and keysweep's token; returns its value.
fn mw_admin(s: &Sim) -> String {
    let out = s.admin(
        "POST",
        "seed",
        Some(
            json!({ "principals": [{ "id": "keysweep-admin", "role": "admin" }], "tokens": [{ "principal": "keysweep-admin", "name": "keysweep" }] }),
        ),
    );
    let v = out["tokens"][0]["value"].as_str().unwrap().to_string();
    common::canary(&v);
    v
}

/// A token of a new integration principal: (id, value, principal, name).
fn mw_token(s: &Sim, role: &str) -> (String, String, String, String) {
    let n = n8();
    let (principal, name) = (format!("svc-{n}"), format!("itsm-{n}"));
    let out = s.admin(
        "POST",
        "seed",
        Some(json!({ "principals": [{ "id": principal, "role": role }], "tokens": [{ "principal": principal, "name": name }] })),
    );
    let t = &out["tokens"][0];
    let v = t["value"].as_str().unwrap().to_string();
    common::canary(&v);
    (t["id"].as_str().unwrap().to_string(), v, principal, name)
}

fn mw_state(s: &Sim, id: &str) -> Value {
    s.state()["tokens"].as_array().unwrap().iter().find(|t| t["id"] == id).cloned().unwrap_or(Value::Null)
}

struct MwTokens(Arc<Sim>);
#[async_trait]
impl Fixture for MwTokens {
    async fn create(&self) -> (Target, Handle, SecretString) {
        let (id, v, principal, name) = mw_token(&self.0, "integration");
        (token_target(Some(&id), Some(&name), Some(&principal)), Handle::from([("token_id".to_string(), id)]), SecretString::from(v))
    }
    async fn unreachable(&self) -> Option<Arc<dyn Provider>> {
        let s = sim::start("moveworks");
        let login = mw_admin(&s);
        let p = connect(&fast(load_recipe("moveworks", &s.base), 1), &login).await;
        drop(s);
        Some(p)
    }
}

#[tokio::test]
async fn moveworks_style_tokens_pass_the_conformance_trials() {
    let s = Arc::new(sim::start("moveworks"));
    let p = connect(&load_recipe("moveworks", &s.base), &mw_admin(&s)).await;
    let ran = conformance::run(p.as_ref(), &MwTokens(s.clone()), "http_token").await;
    assert!(ran.contains(&"revoke_and_prove_dead") && ran.contains(&"mint_and_cleanup_orphans_by_nonce"), "{ran:?}");
    assert!(ran.contains(&"outage_is_unknown_never_dead"), "{ran:?}");
}

// ---- Smartsheet -------------------------------------------------------------

fn ss_admin(s: &Sim) -> String {
    let out = s.admin(
        "POST",
        "seed",
        Some(json!({ "users": [{ "email": "admin@example.com", "admin": true }], "tokens": [{ "user": "admin@example.com", "name": "keysweep" }] })),
    );
    let v = out["tokens"][0]["value"].as_str().unwrap().to_string();
    common::canary(&v);
    v
}

/// A token of a new account: (sim id, value, email).
fn ss_token(s: &Sim, admin: bool) -> (u64, String, String) {
    let email = format!("svc-{}@example.com", n8());
    let out =
        s.admin("POST", "seed", Some(json!({ "users": [{ "email": email, "admin": admin }], "tokens": [{ "user": email, "name": "integration" }] })));
    let t = &out["tokens"][0];
    let v = t["value"].as_str().unwrap().to_string();
    common::canary(&v);
    (t["id"].as_u64().unwrap(), v, email)
}

fn ss_state(s: &Sim, id: u64) -> Value {
    s.state()["tokens"].as_array().unwrap().iter().find(|t| t["id"] == id).cloned().unwrap_or(Value::Null)
}

fn ss_url(s: &Sim) -> String {
    format!("{}/2.0", s.base)
}

// ---- PagerDuty --------------------------------------------------------------

fn pd_admin(s: &Sim) -> String {
    let out = s.admin("POST", "seed", Some(json!({ "users": [{ "email": "owner@example.com", "role": "owner" }], "keys": [{ "user": null, "description": "keysweep", "read_only": true }] })));
    let v = out["keys"][0]["value"].as_str().unwrap().to_string();
    common::canary(&v);
    v
}

fn pd_key(s: &Sim, email: &str, role: &str) -> (String, String) {
    let out =
        s.admin("POST", "seed", Some(json!({ "users": [{ "email": email, "role": role }], "keys": [{ "user": email, "description": "bot" }] })));
    let k = &out["keys"][0];
    let v = k["value"].as_str().unwrap().to_string();
    common::canary(&v);
    (k["id"].as_str().unwrap().to_string(), v)
}

fn pd_state(s: &Sim, id: &str) -> Value {
    s.state()["keys"].as_array().unwrap().iter().find(|k| k["id"] == id).cloned().unwrap_or(Value::Null)
}

// ---- inventory --------------------------------------------------------------

fn pages_of(s: &Sim, from: usize, path: &str) -> usize {
    s.log()[from..].iter().filter(|e| e["path"] == path && e["method"] == "GET").count()
}

#[tokio::test]
async fn inventory_reads_every_page_of_each_pagination_style() {
    // Moveworks-style: a cursor in the body (and, in a second listing, the Link header).
    let s = sim::start("moveworks");
    let login = mw_admin(&s);
    let tokens: Vec<Value> = (0..30)
        .map(|i| {
            json!({ "principal": "svc-inv", "name": format!("inv-{i}"), "created_at": "2026-01-05T10:00:00.000Z",
                          "last_used_at": if i == 0 { Value::Null } else { json!("2026-11-20T08:30:00.000Z") } })
        })
        .collect();
    s.admin("POST", "seed", Some(json!({ "principals": [{ "id": "svc-inv", "role": "integration" }], "tokens": tokens })));
    let mut cfg = load_recipe("moveworks", &s.base);
    cfg.inventory.as_mut().unwrap().path = "/api/v1/service-tokens?limit=7".into();
    for (style, paging) in [("cursor", None), ("link", Some(Pagination::Link(LinkPaging {})))] {
        let mut cfg = cfg.clone();
        if let Some(p) = paging {
            cfg.inventory.as_mut().unwrap().pagination = Some(p);
        }
        let p = connect(&cfg, &login).await;
        let from = s.log().len();
        let items = p.inventory().await.unwrap();
        assert_eq!(pages_of(&s, from, "/api/v1/service-tokens"), 5, "{style}: 31 tokens at 7 a page are 5 pages");
        assert_eq!(items.len(), 31, "{style}");
        let inv: Vec<_> = items.iter().filter(|i| i.details.get("name").is_some_and(|n| n.starts_with("inv-"))).collect();
        assert_eq!(inv.len(), 30, "{style}: every seeded token, once");
        let never = inv.iter().find(|i| i.details["name"] == "inv-0").unwrap();
        assert!(never.usage_tracked && never.last_used.is_none(), "{style}: never used, and the vendor records use");
        let used = inv.iter().find(|i| i.details["name"] == "inv-3").unwrap();
        assert_eq!(used.last_used.as_deref(), Some("2026-11-20T08:30:00.000Z"));
        assert_eq!(used.created.as_deref(), Some("2026-01-05T10:00:00.000Z"));
        assert_eq!(used.details["user"], "svc-inv");
        assert_eq!(used.details["privileged"], "false");
        let own = items.iter().find(|i| i.details["name"] == "keysweep").unwrap();
        assert_eq!(own.details["privileged"], "true", "an admin principal's token is privileged");
        assert_eq!(own.details.get("keysweep_login").map(String::as_str), Some("true"), "keysweep's own login is marked");
        assert_eq!(items.iter().filter(|i| i.details.contains_key("keysweep_login")).count(), 1);
        assert!(!serde_json::to_string(&items).unwrap().contains(&login));
    }

    // Smartsheet: page numbers, stopping at `totalPages` (no extra empty page).
    let s = sim::start("smartsheet");
    let login = ss_admin(&s);
    let users: Vec<Value> = (0..12).map(|i| json!({ "email": format!("user{i:02}@example.com"), "admin": i == 5 })).collect();
    s.admin("POST", "seed", Some(json!({ "users": users })));
    let mut cfg = load_recipe("smartsheet", &ss_url(&s));
    cfg.inventory.as_mut().unwrap().path = "/users?pageSize=4".into();
    let p = connect(&cfg, &login).await;
    let from = s.log().len();
    let items = p.inventory().await.unwrap();
    assert_eq!(pages_of(&s, from, "/2.0/users"), 4, "13 accounts at 4 a page: exactly 4 pages");
    assert_eq!(items.len(), 13);
    assert!(items.iter().all(|i| i.details["lists"] == "accounts" && !i.usage_tracked), "accounts, not tokens; no use claimed");
    let privileged: Vec<&str> = items.iter().filter(|i| i.details["privileged"] == "true").map(|i| i.id.as_str()).collect();
    assert_eq!(privileged, ["admin@example.com", "user05@example.com"]);

    // PagerDuty: offsets, until `more` is false.
    let s = sim::start("pagerduty");
    let login = pd_admin(&s);
    let users: Vec<Value> =
        (0..20).map(|i| json!({ "email": format!("u{i:02}@example.com"), "role": if i == 7 { "admin" } else { "user" } })).collect();
    s.admin("POST", "seed", Some(json!({ "users": users })));
    let mut cfg = load_recipe("pagerduty", &s.base);
    cfg.inventory.as_mut().unwrap().path = "/users?limit=6".into();
    let p = connect(&cfg, &login).await;
    let from = s.log().len();
    let items = p.inventory().await.unwrap();
    assert_eq!(pages_of(&s, from, "/users"), 4, "21 users at 6 a page: 4 pages");
    assert_eq!(items.len(), 21);
    let privileged: Vec<&str> = items.iter().filter(|i| i.details["privileged"] == "true").map(|i| i.id.as_str()).collect();
    assert_eq!(privileged, ["owner@example.com", "u07@example.com"]);
}

// ---- revocation proven by the vendor's refusal --------------------------------

#[tokio::test]
async fn a_smartsheet_token_is_revoked_with_itself_and_proven_dead_by_1002() {
    let s = sim::start("smartsheet");
    let p = connect(&load_recipe("smartsheet", &ss_url(&s)), &ss_admin(&s)).await;
    let (id, value, email) = ss_token(&s, false);
    let target = token_target(None, None, Some(&email));
    let old = p.current_handle(&target, None).await.unwrap();
    let value = SecretString::from(value);
    assert!(matches!(p.verify_dead(&target, &old, Some(&value)).await, Verdict::Alive(_)));
    assert!(p.retire_needs_value(&target), "Smartsheet revokes only the token presented");
    // Without the value nothing can be revoked, and nothing is.
    let e = p.retire(&target, &old).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config, "{e}");
    assert_eq!(ss_state(&s, id)["valid"], true);
    p.retire_with(&target, &old, Some(&known(value.clone()))).await.unwrap();
    assert_eq!(ss_state(&s, id)["revoked"], true, "the simulator's own state: revoked");
    let v = p.verify_dead(&target, &old, Some(&value)).await;
    assert!(matches!(&v, Verdict::Dead(e) if e.contains("1002") && e.contains("Your Access Token is invalid.")), "{v:?}");
    // Already gone (401 1002) is success; no admin-side proof exists.
    p.retire_with(&target, &old, Some(&known(value.clone()))).await.unwrap();
    assert!(matches!(p.verify_dead(&target, &old, None).await, Verdict::Unprovable(_)));
    // A value that is not the token named (another fingerprint) is never sent to be revoked.
    let (other_id, other, _) = ss_token(&s, false);
    let named = Handle::from([("fingerprint".to_string(), keysweep::providers::declarative::fingerprint(&value))]);
    let e = p.retire_with(&target, &named, Some(&known(SecretString::from(other)))).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict, "{e}");
    assert_eq!(ss_state(&s, other_id)["valid"], true);
}

#[tokio::test]
async fn a_pagerduty_key_deleted_by_a_person_is_proven_dead_by_2006() {
    let s = sim::start("pagerduty");
    let login = pd_admin(&s);
    let p = connect(&load_recipe("pagerduty", &s.base), &login).await;
    let (old_id, old_value) = pd_key(&s, "bot@example.com", "user");
    let target = token_target(None, None, Some("bot@example.com"));
    let old = p.current_handle(&target, None).await.unwrap();
    // The person re-issued a key for the same user: identified by fingerprint.
    let new = s.admin("POST", "issue_key", Some(json!({ "user": "bot@example.com", "description": "bot 2" })));
    let new_value = new["value"].as_str().unwrap().to_string();
    common::canary(&new_value);
    let h = p.identify(&target, &delivered(&new_value), &old).await.unwrap();
    assert!(h["fingerprint"].starts_with("sha256:"), "{h:?}");
    assert!(matches!(p.test(&target, &delivered(&new_value), &h).await, Verdict::Alive(_)));
    // Another user's key, an admin's key, an account-level key: refused.
    let (_, other) = pd_key(&s, "someone@example.com", "user");
    let e = p.identify(&target, &delivered(&other), &old).await.unwrap_err();
    assert!(e.message.contains("not as the old token's account"), "{e}");
    let admin_target = token_target(None, None, Some("boss@example.com"));
    let (_, boss) = pd_key(&s, "boss@example.com", "admin");
    let e = p.identify(&admin_target, &delivered(&boss), &p.current_handle(&admin_target, None).await.unwrap()).await.unwrap_err();
    assert!(e.message.contains("never a more privileged replacement"), "{e}");
    assert!(p.identify(&target, &delivered(&login), &old).await.is_err(), "a general access key acts as no user");

    // No API deletes a key: the retire step fails with the instructions until a person has.
    let value = SecretString::from(old_value);
    let e = p.retire_with(&target, &old, Some(&known(value.clone()))).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert!(e.message.contains("Integrations › Developer Tools › API Access Keys") && e.message.contains("still accepted"), "{e}");
    assert_eq!(pd_state(&s, &old_id)["valid"], true);
    s.admin("POST", "delete_key", Some(json!({ "id": old_id })));
    p.retire_with(&target, &old, Some(&known(value.clone()))).await.unwrap();
    let v = p.verify_dead(&target, &old, Some(&value)).await;
    assert!(matches!(&v, Verdict::Dead(e) if e.contains("2006")), "{v:?}");
    assert_eq!(pd_state(&s, &old_id)["deleted"], true);
}

#[tokio::test]
async fn a_minted_replacement_never_acts_as_another_or_a_more_privileged_principal() {
    let s = sim::start("moveworks");
    let p = connect(&load_recipe("moveworks", &s.base), &mw_admin(&s)).await;
    let (old_id, _v, principal, name) = mw_token(&s, "integration");
    let old = Handle::from([("token_id".to_string(), old_id.clone())]);
    let nonce = format!("{}-t/{}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"), n8());
    // The entry names another (admin) principal than the one the old token acts as.
    let wrong = token_target(Some(&old_id), Some(&name), Some("keysweep-admin"));
    let e = p.mint(&wrong, &old, &nonce).await.unwrap_err();
    assert!(e.message.contains("never acts as another account") && e.message.contains("revoked again"), "{e}");
    // The minted token was withdrawn at once: nothing minted stays alive.
    let st = s.state();
    let minted: Vec<&Value> =
        st["tokens"].as_array().unwrap().iter().filter(|t| t["description"].as_str().is_some_and(|d| d.contains(&nonce))).collect();
    assert_eq!(minted.len(), 1);
    assert_eq!(minted[0]["status"], "revoked");
    // The right entry mints for the old token's own principal.
    let right = token_target(Some(&old_id), Some(&name), Some(&principal));
    let m = p.mint(&right, &old, &nonce).await.unwrap();
    assert_eq!(mw_state(&s, &m.handle["token_id"])["principal"], principal.as_str());
    assert!(matches!(p.test(&right, &m.delivered, &m.handle).await, Verdict::Alive(_)));
}

// ---- ambiguous answers, storms, the declared rate ----------------------------

#[tokio::test]
async fn ambiguous_refusals_429_storms_and_5xx_are_unknown_never_dead() {
    // Smartsheet: a revoked token, hidden behind each fault in turn.
    let s = sim::start("smartsheet");
    let p = connect(&fast(load_recipe("smartsheet", &ss_url(&s)), 2), &ss_admin(&s)).await;
    let (_, value, email) = ss_token(&s, false);
    let target = token_target(None, None, Some(&email));
    let h = p.current_handle(&target, None).await.unwrap();
    let value = SecretString::from(value);
    p.retire_with(&target, &h, Some(&known(value.clone()))).await.unwrap();
    for fault in ["sso_required", "gateway_401", "waf", "503", "429", "drop"] {
        s.faults(json!([{ "path": "^/2.0/users/me", "answer": fault }]));
        let v = p.verify_dead(&target, &h, Some(&value)).await;
        assert!(matches!(v, Verdict::Unknown(_)), "smartsheet {fault}: {v:?}");
        let t = p.test(&target, &delivered(value.expose_secret()), &h).await;
        assert!(matches!(t, Verdict::Unknown(_)), "smartsheet {fault}: test gave {t:?}");
    }
    s.faults(json!([]));
    assert!(matches!(p.verify_dead(&target, &h, Some(&value)).await, Verdict::Dead(_)), "Smartsheet's own 1002");

    // Moveworks-style: with the value and admin-side.
    let s = sim::start("moveworks");
    let p = connect(&fast(load_recipe("moveworks", &s.base), 2), &mw_admin(&s)).await;
    let (id, value, principal, name) = mw_token(&s, "integration");
    let target = token_target(Some(&id), Some(&name), Some(&principal));
    let h = Handle::from([("token_id".to_string(), id.clone())]);
    let value = SecretString::from(value);
    p.retire(&target, &h).await.unwrap();
    assert_eq!(mw_state(&s, &id)["status"], "revoked");
    for fault in ["ip_not_allowed", "gateway_401", "waf", "503", "429", "drop"] {
        s.faults(json!([{ "path": "^/api/v1/(whoami|service-tokens/)", "answer": fault }]));
        for v in [p.verify_dead(&target, &h, Some(&value)).await, p.verify_dead(&target, &h, None).await] {
            assert!(matches!(v, Verdict::Unknown(_)), "moveworks {fault}: {v:?}");
        }
    }
    s.faults(json!([]));
    let v = p.verify_dead(&target, &h, Some(&value)).await;
    assert!(matches!(&v, Verdict::Dead(e) if e.contains("token_revoked")), "{v:?}");
    let v = p.verify_dead(&target, &h, None).await;
    assert!(matches!(&v, Verdict::Dead(e) if e.contains("token_not_found")), "{v:?}");

    // A 429 storm on the revocation: bounded, an error, never a retirement.
    let (id2, _v2, principal2, name2) = mw_token(&s, "integration");
    let t2 = token_target(Some(&id2), Some(&name2), Some(&principal2));
    let h2 = Handle::from([("token_id".to_string(), id2.clone())]);
    s.faults(json!([{ "path": "^/api/v1/service-tokens/", "answer": "429" }]));
    let n0 = s.log().len();
    let e = p.retire(&t2, &h2).await.unwrap_err();
    assert!(e.is_temporary(), "{e}");
    assert!(s.log().len() - n0 <= 2, "max_attempts 2 bounds the storm");
    assert_eq!(mw_state(&s, &id2)["status"], "active");
    // 5xx likewise.
    s.faults(json!([{ "path": "^/api/v1/service-tokens/", "answer": "503" }]));
    assert!(p.retire(&t2, &h2).await.is_err());
    assert_eq!(mw_state(&s, &id2)["status"], "active");

    // PagerDuty: a read-only key's 403 and a gateway's 401 are not 2006.
    let s = sim::start("pagerduty");
    let p = connect(&fast(load_recipe("pagerduty", &s.base), 2), &pd_admin(&s)).await;
    let (kid, kv) = pd_key(&s, "amb@example.com", "user");
    s.admin("POST", "delete_key", Some(json!({ "id": kid })));
    let target = token_target(None, None, Some("amb@example.com"));
    let h = p.current_handle(&target, None).await.unwrap();
    let kv = SecretString::from(kv);
    for fault in ["access_denied", "gateway_401", "waf", "502", "429"] {
        s.faults(json!([{ "path": "^/abilities", "answer": fault }]));
        let v = p.verify_dead(&target, &h, Some(&kv)).await;
        assert!(matches!(v, Verdict::Unknown(_)), "pagerduty {fault}: {v:?}");
    }
    s.faults(json!([]));
    assert!(matches!(p.verify_dead(&target, &h, Some(&kv)).await, Verdict::Dead(_)));
}

#[tokio::test]
async fn a_declared_rate_is_never_exceeded_at_the_server() {
    let s = sim::start("moveworks");
    let login = mw_admin(&s);
    let tokens: Vec<Value> = (0..40).map(|i| json!({ "principal": "svc-rate", "name": format!("r-{i}") })).collect();
    s.admin("POST", "seed", Some(json!({ "principals": [{ "id": "svc-rate" }], "tokens": tokens })));
    // The vendor answers 6 requests a second; the playbook declares 4.
    s.rate(Some(6));
    let mut cfg = load_recipe("moveworks", &s.base);
    cfg.inventory.as_mut().unwrap().path = "/api/v1/service-tokens?limit=2".into();
    cfg.limits = Limits { rate_per_second: Some(4), ..Default::default() };
    let p = connect(&cfg, &login).await;
    let before: u64 = s.arrivals().iter().sum();
    let items = p.inventory().await.unwrap();
    assert_eq!(items.len(), 41);
    let arrivals = s.arrivals();
    assert!(arrivals.iter().sum::<u64>() - before >= 21, "the listing took 21+ requests");
    assert!(arrivals.iter().all(|n| *n <= 4), "more than the declared 4 requests in one second at the server: {arrivals:?}");
    assert!(!s.log().iter().any(|e| e["status"] == 429), "never throttled: the declared rate is below the vendor's");
}

// ---- hosts -----------------------------------------------------------------

#[tokio::test]
async fn a_secret_is_never_sent_to_a_host_the_recipe_does_not_list() {
    let s = sim::start("moveworks");
    // Another origin (another port on loopback): it must never hear from keysweep.
    let elsewhere = sim::start("moveworks");
    let login = mw_admin(&s);
    let tokens: Vec<Value> = (0..5).map(|i| json!({ "principal": "svc-host", "name": format!("h-{i}") })).collect();
    s.admin("POST", "seed", Some(json!({ "principals": [{ "id": "svc-host" }], "tokens": tokens })));

    // A `Link` next page on another host: refused before anything is sent.
    s.admin("POST", "config", Some(json!({ "link_base": elsewhere.base })));
    let mut cfg = fast(load_recipe("moveworks", &s.base), 2);
    cfg.inventory.as_mut().unwrap().path = "/api/v1/service-tokens?limit=2".into();
    cfg.inventory.as_mut().unwrap().pagination = Some(Pagination::Link(LinkPaging {}));
    let p = connect(&cfg, &login).await;
    let e = p.inventory().await.unwrap_err();
    assert!(e.message.contains("not this provider's host"), "{e}");
    assert!(elsewhere.log().is_empty(), "a request reached the other host: {:?}", elsewhere.log());

    // A poll URL on another host: refused; the revocation is not taken as done.
    s.admin("POST", "config", Some(json!({ "poll_base": elsewhere.base })));
    let p = connect(&fast(load_recipe("moveworks", &s.base), 2), &login).await;
    let (id, value, principal, name) = mw_token(&s, "integration");
    let target = token_target(Some(&id), Some(&name), Some(&principal));
    let h = Handle::from([("token_id".to_string(), id.clone())]);
    let e = p.retire(&target, &h).await.unwrap_err();
    assert!(e.message.contains("not this provider's host"), "{e}");
    assert!(elsewhere.log().is_empty(), "a request reached the other host: {:?}", elsewhere.log());
    assert_ne!(mw_state(&s, &id)["status"], "revoked");
    assert!(matches!(p.verify_dead(&target, &h, Some(&SecretString::from(value))).await, Verdict::Alive(_)), "it still works, and says so");
}

#[tokio::test]
async fn a_202_that_never_completes_is_not_a_revocation() {
    let s = sim::start("moveworks");
    let mut cfg = load_recipe("moveworks", &s.base);
    if let Some(pd) = cfg.retire.pending.as_mut() {
        pd.interval = HumanDuration(std::time::Duration::from_millis(50));
        pd.max_polls = 4;
    }
    let p = connect(&cfg, &mw_admin(&s)).await;
    s.admin("POST", "config", Some(json!({ "stuck": true })));
    let (id, value, principal, name) = mw_token(&s, "integration");
    let target = token_target(Some(&id), Some(&name), Some(&principal));
    let h = Handle::from([("token_id".to_string(), id.clone())]);
    let e = p.retire(&target, &h).await.unwrap_err();
    assert!(e.message.contains("did not report it done within 4 polls"), "{e}");
    let ops = s.state()["operations"].as_array().unwrap().clone();
    assert_eq!(ops[0]["polls"], 4, "exactly the bound");
    let v = p.verify_dead(&target, &h, Some(&SecretString::from(value))).await;
    assert!(matches!(v, Verdict::Alive(_)), "{v:?}");
    // Once the vendor completes it, a new attempt confirms it.
    s.admin("POST", "config", Some(json!({ "stuck": false })));
    p.retire(&target, &h).await.unwrap();
    assert_eq!(mw_state(&s, &id)["status"], "revoked");
}

// ---- the recipes as a user meets them ------------------------------------------

fn recipe_env(c: &mut std::process::Command, ss: &str, mw: &str, pd: &str) {
    c.env("SMARTSHEET_URL", ss).env("MOVEWORKS_URL", mw).env("PAGERDUTY_URL", pd);
}

#[test]
fn every_recipe_validates_and_plans_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let pb = dir.path().join("recipes.yaml");
    let creds = [
        ("smartsheet", "{ kind: http_token, user: svc-sync@example.com }", "manual: \"Generate a new access token in the Smartsheet UI\""),
        ("moveworks", "{ kind: http_token, token_id: mwt_1, name: itsm, user: svc_itsm }", ""),
        ("pagerduty", "{ kind: http_token, user: bot@example.com }", "manual: \"Create a user API token in PagerDuty\""),
    ];
    let mut text = "version: 1\ninclude:\n".to_string();
    for (r, _, _) in creds {
        text.push_str(&format!("  - {}\n", recipe(r).display()));
    }
    text.push_str("providers:\n  vault: { kind: vault, address: \"${env:VAULT_ADDR}\", auth: { method: token, token: \"${env:VAULT_TOKEN}\" } }\ncredentials:\n");
    for (r, target, manual) in creds {
        text.push_str(&format!("  - id: {r}-token\n    owner: it\n    provider: {r}\n    target: {target}\n    deliver_to: [{{ provider: vault, path: \"{r}/{{id}}\" }}]\n"));
        if !manual.is_empty() {
            text.push_str(&format!("    {manual}\n"));
        }
    }
    std::fs::write(&pb, text).unwrap();
    let run = |args: &[&str]| {
        let mut c = common::keysweep(&dir.path().join("state"));
        recipe_env(&mut c, "https://api.smartsheet.com/2.0", "https://moveworks.example", "https://api.pagerduty.com");
        c.env("SMARTSHEET_ADMIN_TOKEN", "x").env("MOVEWORKS_ADMIN_TOKEN", "x").env("PAGERDUTY_API_KEY", "x");
        c.args(args).output().unwrap()
    };
    let out = run(&["validate", pb.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("valid — 3 credential(s), 4 provider(s), 4 file(s)"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = run(&["plan", "--offline", pb.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // Each recipe alone is a valid playbook file too.
    for r in ["smartsheet", "moveworks", "pagerduty"] {
        let out = run(&["validate", recipe(r).to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{r}: {}", String::from_utf8_lossy(&out.stderr));
    }
    // `keysweep schema` documents the kind.
    let out = run(&["schema"]);
    let schema = String::from_utf8_lossy(&out.stdout);
    assert!(schema.contains("http_token") && schema.contains("WAF"), "the schema describes the http kind and its rules");
}

#[test]
fn smartsheet_and_moveworks_tokens_are_revoked_and_rotated_end_to_end_with_a_vault_store() {
    let ss = sim::start("smartsheet");
    let mw = sim::start("moveworks");
    let b = common::bao();
    let ss_login = ss_admin(&ss);
    let mw_login = mw_admin(&mw);
    let run_id = n8();

    // Revocations: a Smartsheet token (revoked with itself) and a Moveworks-style one (202 + poll).
    let (ss_rev_id, ss_rev_value, ss_rev_user) = ss_token(&ss, false);
    b.kv_put(&format!("e2e-{run_id}/ss-revoke"), json!({ "value": ss_rev_value }));
    let (mw_rev_id, mw_rev_value, mw_rev_principal, mw_rev_name) = mw_token(&mw, "integration");
    b.kv_put(&format!("e2e-{run_id}/mw-revoke"), json!({ "value": mw_rev_value, "token_id": mw_rev_id }));
    // Rotations: a Moveworks-style token (minted) and a Smartsheet token (re-issued by a person).
    let (mw_rot_id, mw_rot_value, mw_rot_principal, mw_rot_name) = mw_token(&mw, "integration");
    b.kv_put(&format!("e2e-{run_id}/mw-rotate"), json!({ "value": mw_rot_value, "token_id": mw_rot_id }));
    let (ss_rot_id, ss_rot_value, ss_rot_user) = ss_token(&ss, false);
    b.kv_put(&format!("e2e-{run_id}/ss-rotate"), json!({ "value": ss_rot_value }));

    let dir = tempfile::tempdir().unwrap();
    let pb = dir.path().join("incident.yaml");
    std::fs::write(
        &pb,
        format!(
            "version: 1
include:
  - {ss_recipe}
  - {mw_recipe}
providers:
  bao:
    kind: vault
    address: ${{env:VAULT_ADDR}}
    auth: {{ method: token, token: \"${{env:VAULT_TOKEN}}\" }}
defaults:
  owner: it-security
  verify: {{ attempts: 3, interval: 300ms }}
credentials:
  - id: ss-revoke
    provider: smartsheet
    action: revoke
    target: {{ kind: http_token, user: {ss_rev_user} }}
    deliver_to: [{{ provider: bao, path: \"e2e-{run_id}/ss-revoke\" }}]
  - id: mw-revoke
    provider: moveworks
    action: revoke
    target: {{ kind: http_token, token_id: {mw_rev_id}, name: {mw_rev_name}, user: {mw_rev_principal} }}
    deliver_to: [{{ provider: bao, path: \"e2e-{run_id}/mw-revoke\" }}]
  - id: mw-rotate
    provider: moveworks
    target: {{ kind: http_token, token_id: {mw_rot_id}, name: {mw_rot_name}, user: {mw_rot_principal} }}
    deliver_to: [{{ provider: bao, path: \"e2e-{run_id}/mw-rotate\" }}]
  - id: ss-rotate
    provider: smartsheet
    target: {{ kind: http_token, user: {ss_rot_user} }}
    deliver_to: [{{ provider: bao, path: \"e2e-{run_id}/ss-rotate\" }}]
    manual: |
      Sign in to Smartsheet as {ss_rot_user}, Account › Apps & Integrations › API Access ›
      Generate new access token.
",
            ss_recipe = recipe("smartsheet").display(),
            mw_recipe = recipe("moveworks").display(),
        ),
    )
    .unwrap();
    let state_dir = dir.path().join("state");
    let ks = || {
        let mut c = common::keysweep(&state_dir);
        recipe_env(&mut c, &ss_url(&ss), &mw.base, "unused");
        c.env("SMARTSHEET_ADMIN_TOKEN", &ss_login).env("MOVEWORKS_ADMIN_TOKEN", &mw_login);
        c
    };

    // Run 1: three credentials done, the Smartsheet rotation waits for a person (exit 1).
    let out = ks().args(["run", pb.to_str().unwrap()]).output().unwrap();
    let text1 = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text1}");
    assert!(text1.contains("AWAITING A HUMAN") && text1.contains("Generate new access token"), "{text1}");
    let report = common::report_json(&state_dir);
    let outcome =
        |r: &Value, id: &str| r["rows"].as_array().unwrap().iter().find(|x| x["id"] == id).map(|x| x["outcome"].clone()).unwrap_or(Value::Null);
    assert_eq!(outcome(&report, "ss-revoke"), "revoked", "{report}");
    assert_eq!(outcome(&report, "mw-revoke"), "revoked", "{report}");
    assert_eq!(outcome(&report, "mw-rotate"), "rotated", "{report}");
    assert_eq!(outcome(&report, "ss-rotate"), "awaiting_human", "{report}");
    // The proof is each vendor's own refusal, as the recipe's rules name it.
    assert!(text1.contains("Smartsheet refused old token of") && text1.contains("401 /errorCode = 1002 (Your Access Token is invalid.)"), "{text1}");
    assert!(text1.contains("401 /error/code = \"token_revoked\""), "{text1}");

    // The vendors' own state: revoked where the report says so.
    assert_eq!(ss_state(&ss, ss_rev_id)["revoked"], true);
    assert_eq!(mw_state(&mw, &mw_rev_id)["status"], "revoked");
    assert_eq!(mw_state(&mw, &mw_rot_id)["status"], "revoked");
    assert_eq!(ss_state(&ss, ss_rot_id)["valid"], true, "awaiting a person: the old token stays in service");
    let cur = b.kv_get(&format!("e2e-{run_id}/mw-rotate")).unwrap();
    let new_id = cur["token_id"].as_str().unwrap().to_string();
    assert_ne!(new_id, mw_rot_id);
    let new_tok = mw_state(&mw, &new_id);
    assert_eq!(new_tok["status"], "active");
    assert_eq!(new_tok["principal"], mw_rot_principal.as_str(), "the replacement acts as the same principal");
    let (code, body) = mw.call("GET", "/api/v1/whoami", &[("Authorization", &format!("Bearer {}", cur["value"].as_str().unwrap()))], None);
    assert_eq!((code, body["token"]["id"].as_str()), (200, Some(new_id.as_str())), "the stored value is the new token");
    let (code, body) = mw.call("GET", "/api/v1/whoami", &[("Authorization", &format!("Bearer {mw_rot_value}"))], None);
    assert_eq!((code, body["error"]["code"].as_str()), (401, Some("token_revoked")));
    common::canary(cur["value"].as_str().unwrap());

    // A person re-issues the Smartsheet token; keysweep identifies, tests, promotes, revokes the old.
    let issued = ss.admin("POST", "issue_token", Some(json!({ "user": ss_rot_user, "name": "integration 2" })));
    let new_value = issued["value"].as_str().unwrap().to_string();
    common::canary(&new_value);
    common::supply(ks(), &pb, "ss-rotate", &new_value, &[]);
    let out = ks().args(["run", pb.to_str().unwrap()]).output().unwrap();
    let text2 = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text2}");
    assert_eq!(outcome(&common::report_json(&state_dir), "ss-rotate"), "rotated");
    assert_eq!(ss_state(&ss, ss_rot_id)["revoked"], true, "the old token was revoked (with itself)");
    assert_eq!(ss_state(&ss, issued["id"].as_u64().unwrap())["valid"], true);
    let cur = b.kv_get(&format!("e2e-{run_id}/ss-rotate")).unwrap();
    assert_eq!(cur["value"], new_value.as_str());
    assert!(cur["fingerprint"].as_str().is_some_and(|f| f.starts_with("sha256:")), "{cur}");

    for v in [&ss_login, &mw_login, &ss_rev_value, &mw_rev_value, &mw_rot_value, &ss_rot_value, &new_value] {
        assert!(!text1.contains(v.as_str()) && !text2.contains(v.as_str()), "a secret value in keysweep's output");
    }
}

/// A Smartsheet revocation killed right after the journal recorded "retire
/// started" (before `DELETE /token` was sent), then resumed: the resumed run
/// reads the token's value back from the store to revoke it with, and
/// proves it dead. Likewise killed after the revocation, before "done".
#[cfg(feature = "crash-hook")]
#[test]
fn a_self_revocation_interrupted_at_retire_is_finished_by_the_resumed_run() {
    let ss = sim::start("smartsheet");
    let b = common::bao();
    let login = ss_admin(&ss);
    for point in ["retire:started:1", "retire:done:1"] {
        let (id, value, user) = ss_token(&ss, false);
        let path = format!("crash-{}/ss", n8());
        b.kv_put(&path, json!({ "value": value }));
        let dir = tempfile::tempdir().unwrap();
        let pb = dir.path().join("p.yaml");
        std::fs::write(
            &pb,
            format!(
                "version: 1
include: [{}]
providers:
  bao: {{ kind: vault, address: \"${{env:VAULT_ADDR}}\", auth: {{ method: token, token: \"${{env:VAULT_TOKEN}}\" }} }}
credentials:
  - id: ss-revoke
    owner: it
    provider: smartsheet
    action: revoke
    target: {{ kind: http_token, user: {user} }}
    deliver_to: [{{ provider: bao, path: \"{path}\" }}]
    verify: {{ attempts: 3, interval: 200ms }}
",
                recipe("smartsheet").display()
            ),
        )
        .unwrap();
        let state_dir = dir.path().join("state");
        let ks = || {
            let mut c = common::keysweep(&state_dir);
            c.env("SMARTSHEET_URL", ss_url(&ss)).env("SMARTSHEET_ADMIN_TOKEN", &login);
            c
        };
        common::run_until_crash(ks(), &pb, point);
        let revoked_before = ss_state(&ss, id)["revoked"] == true;
        assert_eq!(revoked_before, point.ends_with("done:1"), "{point}: the crash came before/after DELETE /token");
        common::run_resumes(ks(), &pb, point);
        assert_eq!(ss_state(&ss, id)["revoked"], true, "{point}");
        assert_eq!(common::report_json(&state_dir)["rows"][0]["outcome"], "revoked", "{point}");
    }
}

/// A value as the engine hands it to `retire_with`: no fields beside it.
fn known(value: SecretString) -> keysweep::secret::Delivered {
    keysweep::secret::Delivered { value, fields: Default::default() }
}
