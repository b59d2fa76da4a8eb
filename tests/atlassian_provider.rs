//! The `atlassian` adapter against the Atlassian simulator (`sims/atlassian.py`,
//! a real HTTP server following Atlassian's published admin, Jira and OAuth
//! pages): the conformance trials for both kinds, inventory across pages of
//! managed accounts with last use and admin roles, Atlassian's ambiguous
//! answers (CAPTCHA, an anonymous 200, 429 storms, 5xx, a WAF) never taken
//! for dead, the declared rate kept at the server, the org-wide bulk revoke
//! never sent, and the lifecycles end to end through the binary with a Vault
//! store — an API token and an admin service account's OAuth credential each
//! re-issued by a person (`manual:` + `keysweep supply`), an API token
//! revoked — with every outcome checked in the simulator's own state.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use keysweep::playbook::model::{HumanDuration, Limits, SecretRef, Target};
use keysweep::provider::conformance::{self, Fixture};
use keysweep::provider::kind::ProviderKind;
use keysweep::provider::{Handle, Provider, Verdict};
use keysweep::providers::atlassian::config::{AtlassianApiTokenTarget, AtlassianProviderConfig, AtlassianServiceAccountCredentialTarget};
use keysweep::secret::{Delivered, SecretString};
use serde_json::{json, Value};

use common::sim::{self, Sim};

/// A seeded organization: the simulator's answer to `/_sim/seed`.
#[derive(Clone)]
struct Org {
    seed: Value,
}

impl Org {
    fn key(&self) -> String {
        self.seed["admin_api_key"].as_str().unwrap().to_string()
    }
    fn id(&self) -> String {
        self.seed["org"]["id"].as_str().unwrap().to_string()
    }
    fn user(&self, email: &str) -> &Value {
        self.seed["users"].as_array().unwrap().iter().find(|u| u["email"] == email).unwrap_or_else(|| panic!("no user {email}"))
    }
    fn sa(&self, name: &str) -> &Value {
        self.seed["service_accounts"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("no service account {name}"))
    }
}

/// Seeds the organization (replacing whatever the simulator held) and
/// registers every secret it made as a canary.
fn seed(s: &Sim, spec: Value) -> Org {
    let out = s.admin("POST", "seed", Some(spec));
    common::canary(out["admin_api_key"].as_str().unwrap());
    for u in out["users"].as_array().unwrap() {
        for t in u["tokens"].as_array().unwrap() {
            common::canary(t["value"].as_str().unwrap());
        }
    }
    for sa in out["service_accounts"].as_array().unwrap() {
        for c in sa["credentials"].as_array().unwrap() {
            common::canary(c["client_secret"].as_str().unwrap());
        }
    }
    Org { seed: out }
}

fn config(s: &Sim, org: &Org, limits: Limits) -> AtlassianProviderConfig {
    AtlassianProviderConfig {
        org_id: org.id(),
        api_key: SecretRef::Env("ATLASSIAN_ADMIN_KEY".into()),
        site_url: s.base.clone(),
        admin_url: s.base.clone(),
        auth_url: s.base.clone(),
        allow_plaintext: false,
        tls: Default::default(),
        limits,
    }
}

async fn connect(s: &Sim, org: &Org, limits: Limits) -> Arc<dyn Provider> {
    let key = org.key();
    config(s, org, limits)
        .connect("atlassian", &move |_r: &SecretRef| Ok(SecretString::from(key.clone())))
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"))
}

/// A person creates an API token in the UI (no API does); returns (id, value).
fn issue_token(s: &Sim, account: &str, label: &str) -> (String, String) {
    let t = s.admin("POST", "issue_token", Some(json!({ "account_id": account, "label": label })));
    let v = t["value"].as_str().unwrap().to_string();
    common::canary(&v);
    (t["id"].as_str().unwrap().to_string(), v)
}

/// A person creates an OAuth credential for a service account in the UI; returns (client_id, secret).
fn issue_credential(s: &Sim, account: &str, name: &str) -> (String, String) {
    let c = s.admin("POST", "issue_credential", Some(json!({ "account_id": account, "name": name })));
    let v = c["client_secret"].as_str().unwrap().to_string();
    common::canary(&v);
    (c["client_id"].as_str().unwrap().to_string(), v)
}

fn token_target(email: &str, account: Option<&str>, id: &str) -> Target {
    Target::AtlassianApiToken(AtlassianApiTokenTarget {
        email: email.into(),
        account_id: account.map(str::to_string),
        token_id: Some(id.into()),
        label: None,
    })
}

fn token_handle(id: &str, account: &str) -> Handle {
    Handle::from([("token_id".to_string(), id.to_string()), ("account_id".to_string(), account.to_string())])
}

fn client_target(sa_id: &str, client: &str) -> Target {
    Target::AtlassianServiceAccountCredential(AtlassianServiceAccountCredentialTarget {
        service_account_id: sa_id.into(),
        client_id: Some(client.into()),
    })
}

fn client_handle(client: &str) -> Handle {
    Handle::from([("client_id".to_string(), client.to_string())])
}

fn delivered(v: &str) -> Delivered {
    Delivered { value: SecretString::from(v.to_string()), fields: Default::default() }
}

fn base_spec() -> Value {
    json!({
        "org": "acme", "page_size": 3,
        "users": [
            { "email": "svc-jira@acme.example", "admin": false, "tokens": [] },
            { "email": "svc-admin@acme.example", "admin": true, "tokens": [] },
        ],
        "service_accounts": [{ "name": "ci-bot", "admin": false, "credentials": 0 }],
    })
}

/// No request of any kind ever reached the org-wide bulk revoke: the
/// simulator's request log and its own record of such calls agree.
fn assert_no_bulk_revoke(s: &Sim) {
    let hits: Vec<Value> = s
        .log()
        .into_iter()
        .filter(|e| {
            let p = e["path"].as_str().unwrap_or_default();
            e["method"] == "DELETE" && p.trim_end_matches('/').ends_with("/api-tokens")
        })
        .collect();
    assert!(hits.is_empty(), "a DELETE of a collection of API tokens was sent: {hits:?}");
    assert_eq!(s.state()["bulk_revoke_calls"], json!([]), "the simulator recorded a bulk revoke");
}

/// A provider whose organization stops answering right after it connected.
async fn unreachable() -> Arc<dyn Provider> {
    let s = sim::start("atlassian");
    let org = seed(&s, base_spec());
    let p =
        connect(&s, &org, Limits { max_attempts: Some(1), timeout: Some(HumanDuration(std::time::Duration::from_secs(2))), ..Default::default() })
            .await;
    drop(s);
    p
}

struct Tokens(Arc<Sim>, Org);
#[async_trait]
impl Fixture for Tokens {
    async fn create(&self) -> (Target, Handle, SecretString) {
        let u = self.1.user("svc-jira@acme.example");
        let acct = u["account_id"].as_str().unwrap();
        let (id, v) = issue_token(&self.0, acct, &format!("integration-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
        (token_target("svc-jira@acme.example", Some(acct), &id), token_handle(&id, acct), SecretString::from(v))
    }
    async fn unreachable(&self) -> Option<Arc<dyn Provider>> {
        Some(unreachable().await)
    }
}

struct Clients(Arc<Sim>, Org);
#[async_trait]
impl Fixture for Clients {
    async fn create(&self) -> (Target, Handle, SecretString) {
        let sa = self.1.sa("ci-bot");
        let (cid, v) =
            issue_credential(&self.0, sa["account_id"].as_str().unwrap(), &format!("cred-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
        (client_target(sa["id"].as_str().unwrap(), &cid), client_handle(&cid), SecretString::from(v))
    }
    async fn unreachable(&self) -> Option<Arc<dyn Provider>> {
        Some(unreachable().await)
    }
}

/// The conformance trials for `kind`, with the fixture `fixture` makes, then
/// the simulator's log: no bulk revoke.
async fn conformance_of<F: Fixture>(kind: &str, fixture: fn(Arc<Sim>, Org) -> F) {
    let s = Arc::new(sim::start("atlassian"));
    let org = seed(&s, base_spec());
    let p = connect(&s, &org, Limits::default()).await;
    let ran = conformance::run(p.as_ref(), &fixture(s.clone(), org), kind).await;
    assert!(ran.contains(&"revoke_and_prove_dead") && ran.contains(&"outage_is_unknown_never_dead"), "{kind}: {ran:?}");
    assert_no_bulk_revoke(&s);
}

#[tokio::test]
async fn atlassian_api_token_conformance() {
    conformance_of("atlassian_api_token", Tokens).await;
}

#[tokio::test]
async fn atlassian_service_account_credential_conformance() {
    conformance_of("atlassian_service_account_credential", Clients).await;
}

/// A revocation whose answer was lost after Atlassian acted is sent again,
/// taken as done (404: gone), and proven dead from Atlassian's own state.
#[tokio::test]
async fn a_revocation_whose_answer_was_lost_is_found_done() {
    let s = sim::start("atlassian");
    let org = seed(
        &s,
        json!({ "org": "acme", "users": [{ "email": "svc-lost@acme.example", "tokens": [{ "label": "lost" }] }],
                               "service_accounts": [{ "name": "bot", "credentials": 1 }] }),
    );
    let p = connect(&s, &org, Limits::default()).await;
    let u = org.user("svc-lost@acme.example");
    let (acct, id) = (u["account_id"].as_str().unwrap(), u["tokens"][0]["id"].as_str().unwrap());
    let value = SecretString::from(u["tokens"][0]["value"].as_str().unwrap().to_string());
    let target = token_target("svc-lost@acme.example", Some(acct), id);
    s.faults(json!([{ "method": "DELETE", "path": "/manage/api-tokens/", "answer": "after_act", "times": 1 }]));
    p.retire(&target, &token_handle(id, acct)).await.unwrap();
    assert_eq!(token_state(&s, id)["revoked_by"], "user-management");
    let v = p.verify_dead(&target, &token_handle(id, acct), Some(&value)).await;
    assert!(matches!(v, Verdict::Dead(_)), "{v:?}");
    let sa = org.sa("bot");
    let cid = sa["credentials"][0]["client_id"].as_str().unwrap();
    let secret = SecretString::from(sa["credentials"][0]["client_secret"].as_str().unwrap().to_string());
    let ct = client_target(sa["id"].as_str().unwrap(), cid);
    s.faults(json!([{ "method": "DELETE", "path": "/oauth-clients/", "answer": "after_act", "times": 1 }]));
    p.retire(&ct, &client_handle(cid)).await.unwrap();
    assert_eq!(client_state(&s, cid)["deleted_by"], "api-access");
    let v = p.verify_dead(&ct, &client_handle(cid), Some(&secret)).await;
    assert!(matches!(v, Verdict::Dead(_)), "{v:?}");
    let deletes = s.log().iter().filter(|e| e["method"] == "DELETE").count();
    assert_eq!(deletes, 4, "each revocation sent twice: once lost, once answered 404");
    assert_no_bulk_revoke(&s);
}

#[tokio::test]
async fn inventory_reads_every_page_of_managed_accounts_with_last_use_and_admin_roles() {
    let s = sim::start("atlassian");
    // 8 managed accounts at 3 a page; service accounts are listed apart.
    let mut users: Vec<Value> = (0..6)
        .map(|i| {
            json!({ "email": format!("u{i}@acme.example"), "tokens": [
                { "label": format!("laptop-{i}"), "created": "2026-01-05T10:00:00.000Z",
                  "last_access": if i == 0 { Value::Null } else { json!("2026-11-20T08:30:00.000Z") } }
            ] })
        })
        .collect();
    users.push(json!({ "email": "smartsheet@acme.example", "admin": true, "tokens": [{ "label": "smartsheet", "created": "2025-03-01T00:00:00.000Z", "last_access": "2026-11-30T12:00:00.000Z" }] }));
    users.push(json!({ "email": "no-tokens@acme.example", "tokens": [] }));
    let org = seed(
        &s,
        json!({ "org": "acme", "page_size": 3, "users": users,
                "service_accounts": [{ "name": "smartsheet-integration", "admin": true, "credentials": 2 },
                                     { "name": "reporting", "admin": false, "credentials": 1 }] }),
    );
    let p = connect(&s, &org, Limits::default()).await;
    let before = s.log().len();
    let items = p.inventory().await.unwrap();
    let user_pages =
        s.log()[before..].iter().filter(|e| e["path"].as_str().is_some_and(|p| p.ends_with("/users") && p.starts_with("/admin/v1/"))).count();
    assert_eq!(user_pages, 3, "8 managed accounts at 3 a page take 3 pages (links.next)");
    let tokens: Vec<_> = items.iter().filter(|i| i.kind == "atlassian_api_token").collect();
    assert_eq!(tokens.len(), 7, "every seeded token, across every page: {tokens:?}");
    let t3 = tokens.iter().find(|i| i.details["label"] == "laptop-3").unwrap();
    assert_eq!(t3.last_used.as_deref(), Some("2026-11-20T08:30:00.000Z"), "lastAccess is the last use");
    assert!(t3.usage_tracked);
    assert_eq!(t3.details["email"], "u3@acme.example");
    assert_eq!(t3.details["privileged"], "false");
    let never = tokens.iter().find(|i| i.details["label"] == "laptop-0").unwrap();
    assert_eq!(never.last_used, None, "never used: no lastAccess");
    assert!(never.usage_tracked, "Atlassian records use, so a missing lastAccess means never used");
    let admin = tokens.iter().find(|i| i.details["label"] == "smartsheet").unwrap();
    assert_eq!(admin.details["privileged"], "true", "an org admin's token is privileged: {:?}", admin.details);
    assert!(admin.details["roles"].contains("atlassian/org-admin"));
    assert_eq!(admin.details["account_id"], org.user("smartsheet@acme.example")["account_id"]);
    let creds: Vec<_> = items.iter().filter(|i| i.kind == "atlassian_service_account_credential").collect();
    assert_eq!(creds.len(), 3, "every OAuth credential of every service account");
    let sa = org.sa("smartsheet-integration");
    let smart: Vec<_> = creds.iter().filter(|i| i.details["service_account_id"] == sa["id"]).collect();
    assert_eq!(smart.len(), 2);
    assert!(smart.iter().all(|i| i.details["privileged"] == "true" && i.details["service_account"] == "smartsheet-integration"));
    assert!(smart.iter().any(|i| i.id == sa["credentials"][0]["client_id"]));
    assert!(creds.iter().any(|i| i.details["service_account"] == "reporting" && i.details["privileged"] == "false"));
    assert!(creds.iter().all(|i| i.created.is_some() && !i.usage_tracked));
    // No secret anywhere in the inventory.
    let text = serde_json::to_string(&items).unwrap();
    assert!(!text.contains(&org.key()));
    for u in org.seed["users"].as_array().unwrap() {
        for t in u["tokens"].as_array().unwrap() {
            assert!(!text.contains(t["value"].as_str().unwrap()));
        }
    }
    for c in sa["credentials"].as_array().unwrap() {
        assert!(!text.contains(c["client_secret"].as_str().unwrap()));
    }
}

#[tokio::test]
async fn captcha_anonymous_200_429_5xx_and_waf_are_unknown_never_dead() {
    let s = sim::start("atlassian");
    let org = seed(&s, base_spec());
    let p = connect(&s, &org, Limits { max_attempts: Some(2), ..Default::default() }).await;
    let acct = org.user("svc-jira@acme.example")["account_id"].as_str().unwrap().to_string();
    let (id, value) = issue_token(&s, &acct, "amb");
    let target = token_target("svc-jira@acme.example", Some(&acct), &id);
    let handle = token_handle(&id, &acct);
    let value = SecretString::from(value);
    // Revoked: only Atlassian's own refusal may say so, and every fault below hides it.
    p.retire(&target, &handle).await.unwrap();
    for fault in ["captcha", "seraph_failed_200", "waf", "503", "502", "429", "drop"] {
        s.faults(json!([{ "path": "/myself$", "answer": fault }]));
        let v = p.verify_dead(&target, &handle, Some(&value)).await;
        assert!(matches!(v, Verdict::Unknown(_)), "{fault}: {v:?}");
        if fault == "captcha" {
            assert!(v.evidence().contains("AUTHENTICATION_DENIED") && v.evidence().contains("CAPTCHA"), "{v:?}");
        }
        let t = p.test(&target, &delivered(keysweep::secret::ExposeSecret::expose_secret(&value)), &handle).await;
        assert!(matches!(t, Verdict::Unknown(_)), "{fault}: test gave {t:?}");
        // The admin side under the same kinds of fault.
        if fault != "captcha" && fault != "seraph_failed_200" {
            s.faults(json!([{ "path": "/manage/api-tokens$", "answer": fault }]));
            let v = p.verify_dead(&target, &handle, None).await;
            assert!(matches!(v, Verdict::Unknown(_)), "{fault} on the listing: {v:?}");
        }
    }
    s.faults(json!([]));
    let v = p.verify_dead(&target, &handle, Some(&value)).await;
    assert!(
        matches!(v, Verdict::Dead(ref e) if e.contains("AUTHENTICATED_FAILED") && e.contains("lists no token")),
        "Atlassian's own refusal: {v:?}"
    );
    let v = p.verify_dead(&target, &handle, None).await;
    assert!(matches!(v, Verdict::Dead(ref e) if e.contains("lists no token")), "the admin listing: {v:?}");

    // A CAPTCHA earned by failed logins (Jira's threshold) hides a live token as well as a dead one.
    let org = seed(&s, json!({ "org": "acme", "captcha_after": 2, "users": [{ "email": "svc-c@acme.example", "tokens": [{ "label": "live" }] }] }));
    let p = connect(&s, &org, Limits::default()).await;
    let u = org.user("svc-c@acme.example");
    let (acct, live_id) = (u["account_id"].as_str().unwrap(), u["tokens"][0]["id"].as_str().unwrap());
    let live = SecretString::from(u["tokens"][0]["value"].as_str().unwrap().to_string());
    let target = token_target("svc-c@acme.example", Some(acct), live_id);
    for _ in 0..2 {
        let wrong = keysweep::secret::GeneratePolicy::default().generate();
        assert!(!matches!(p.verify_dead(&target, &token_handle(live_id, acct), Some(&wrong)).await, Verdict::Dead(_)), "a wrong value is no proof");
    }
    assert_eq!(s.state()["captcha"]["required"], json!(["svc-c@acme.example"]), "the simulator now asks for a CAPTCHA");
    let v = p.verify_dead(&target, &token_handle(live_id, acct), Some(&live)).await;
    assert!(matches!(v, Verdict::Unknown(ref e) if e.contains("CAPTCHA")), "{v:?}");

    // A 401 for an email that is not the token's account's: the token is still listed, so no proof.
    let wrong_email = token_target("someone-else@acme.example", Some(acct), live_id);
    s.admin("POST", "captcha", Some(json!({ "email": "svc-c@acme.example", "clear": true })));
    let v = p.verify_dead(&wrong_email, &token_handle(live_id, acct), Some(&live)).await;
    assert!(matches!(v, Verdict::Unknown(ref e) if e.contains("still lists")), "{v:?}");

    // Client secrets: the token endpoint behind a WAF, a 5xx, a 429 is not access_denied.
    let org = seed(&s, json!({ "org": "acme", "service_accounts": [{ "name": "bot", "credentials": 1 }] }));
    let p = connect(&s, &org, Limits { max_attempts: Some(2), ..Default::default() }).await;
    let sa = org.sa("bot");
    let cid = sa["credentials"][0]["client_id"].as_str().unwrap();
    let secret = SecretString::from(sa["credentials"][0]["client_secret"].as_str().unwrap().to_string());
    let ct = client_target(sa["id"].as_str().unwrap(), cid);
    p.retire(&ct, &client_handle(cid)).await.unwrap();
    for fault in ["waf", "503", "429", "drop"] {
        s.faults(json!([{ "path": "^/oauth/token$", "answer": fault }]));
        let v = p.verify_dead(&ct, &client_handle(cid), Some(&secret)).await;
        assert!(matches!(v, Verdict::Unknown(_)), "{fault}: {v:?}");
        s.faults(json!([{ "path": "/oauth-clients/", "answer": fault }]));
        let v = p.verify_dead(&ct, &client_handle(cid), None).await;
        assert!(matches!(v, Verdict::Unknown(_)), "{fault} on the admin API: {v:?}");
    }
    s.faults(json!([]));
    let v = p.verify_dead(&ct, &client_handle(cid), Some(&secret)).await;
    assert!(matches!(v, Verdict::Dead(ref e) if e.contains("access_denied") && e.contains("60 minutes")), "{v:?}");
    assert_no_bulk_revoke(&s);
}

#[tokio::test]
async fn a_declared_rate_is_kept_at_the_server_through_a_429_storm() {
    let s = sim::start("atlassian");
    let users: Vec<Value> = (0..10).map(|i| json!({ "email": format!("r{i}@acme.example"), "tokens": [{ "label": format!("t{i}") }] })).collect();
    let org = seed(&s, json!({ "org": "acme", "page_size": 4, "users": users, "service_accounts": [{ "name": "bot", "credentials": 2 }] }));
    // The organization answers 6 requests a second; the playbook declares 4.
    s.rate(Some(6));
    let p = connect(&s, &org, Limits { rate_per_second: Some(4), ..Default::default() }).await;
    let before: u64 = s.arrivals().iter().sum();
    let items = p.inventory().await.unwrap();
    assert_eq!(items.len(), 12);
    let arrivals = s.arrivals();
    assert!(arrivals.iter().sum::<u64>() - before >= 25, "the listing took 25+ requests: {arrivals:?}");
    assert!(arrivals.iter().all(|n| *n <= 4), "more than the declared 4 requests in one second at the server: {arrivals:?}");

    // A storm: every request answered 429 with Atlassian's headers. Unknown, and bounded.
    s.rate(None);
    s.faults(json!([{ "path": "^/", "answer": "429" }]));
    let u = org.user("r0@acme.example");
    let (acct, id) = (u["account_id"].as_str().unwrap(), u["tokens"][0]["id"].as_str().unwrap());
    let value = SecretString::from(u["tokens"][0]["value"].as_str().unwrap().to_string());
    let target = token_target("r0@acme.example", Some(acct), id);
    let n0 = s.log().len();
    for v in [p.verify_dead(&target, &token_handle(id, acct), None).await, p.verify_dead(&target, &token_handle(id, acct), Some(&value)).await] {
        assert!(matches!(v, Verdict::Unknown(_)), "{v:?}");
    }
    assert!(p.retire(&target, &token_handle(id, acct)).await.is_err(), "a 429 storm is not a revocation");
    let sent = s.log().len() - n0;
    assert!(sent <= 11, "one probe and two calls of at most 5 attempts each, not {sent}");
    s.faults(json!([]));
    assert_eq!(s.state()["api_tokens"].as_array().unwrap().iter().find(|t| t["id"] == id).unwrap()["revoked"], false);
}

#[tokio::test]
async fn the_bulk_revoke_is_never_sent_not_even_for_an_id_that_points_at_it() {
    let s = sim::start("atlassian");
    let org = seed(&s, base_spec());
    let p = connect(&s, &org, Limits::default()).await;
    let acct = org.user("svc-admin@acme.example")["account_id"].as_str().unwrap().to_string();
    let (id, _v) = issue_token(&s, &acct, "keep-me");
    // Ids a playbook or a store could hold that would walk a request to the org-wide endpoint.
    let evil = [
        format!("../../admin/api-access/v1/orgs/{}/api-tokens", org.id()),
        "..".to_string(),
        format!("x/../../../admin/api-access/v1/orgs/{}/api-tokens", org.id()),
    ];
    for bad in &evil {
        let e = p.retire(&token_target("svc-admin@acme.example", Some(&acct), bad), &token_handle(bad, &acct)).await.unwrap_err();
        assert!(e.to_string().contains("not an Atlassian id"), "{e}");
        let e = p.retire(&token_target("svc-admin@acme.example", Some(bad), &id), &token_handle(&id, bad)).await.unwrap_err();
        assert!(e.to_string().contains("not an Atlassian id"), "{e}");
    }
    let st = s.state();
    assert!(st["api_tokens"].as_array().unwrap().iter().all(|t| t["revoked"] == false), "nothing was revoked: {st}");
    assert_no_bulk_revoke(&s);
}

fn bao_store_yaml(s: &Sim, org: &Org) -> String {
    format!(
        "version: 1
providers:
  atlassian:
    kind: atlassian
    org_id: {}
    api_key: ${{env:ATLASSIAN_ADMIN_KEY}}
    site_url: {base}
    admin_url: {base}
    auth_url: {base}
    limits: {{ rate_per_second: 20 }}
  bao:
    kind: vault
    address: ${{env:VAULT_ADDR}}
    auth: {{ method: token, token: \"${{env:VAULT_TOKEN}}\" }}
defaults:
  owner: it-automation
  verify: {{ attempts: 3, interval: 200ms }}
credentials:
",
        org.id(),
        base = s.base
    )
}

fn token_state(s: &Sim, id: &str) -> Value {
    s.state()["api_tokens"].as_array().unwrap().iter().find(|t| t["id"] == id).cloned().unwrap_or(Value::Null)
}

fn client_state(s: &Sim, id: &str) -> Value {
    s.state()["oauth_clients"].as_array().unwrap().iter().find(|c| c["client_id"] == id).cloned().unwrap_or(Value::Null)
}

fn run(ks: &dyn Fn() -> std::process::Command, pb: &std::path::Path) -> (Option<i32>, String) {
    let out = ks().args(["run", pb.to_str().unwrap()]).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr))
}

/// The Atlassian service account with admin rights (the Smartsheet
/// integration's): no API creates its OAuth credential, so a person creates
/// the second one, keysweep checks it belongs to the same service account,
/// tests, promotes, deletes the old client and proves it dead by Atlassian's
/// own refusal. Beside it, in the same run, an API token is revoked.
#[test]
fn an_admin_service_accounts_credential_is_reissued_by_a_person_and_the_old_client_proven_dead_end_to_end() {
    let s = sim::start("atlassian");
    let b = common::bao();
    let org = seed(
        &s,
        json!({ "org": "acme",
                "users": [{ "email": "svc-old-script@acme.example", "tokens": [{ "label": "old-script", "last_access": "2025-01-01T00:00:00Z" }] }],
                "service_accounts": [{ "name": "smartsheet-integration", "admin": true, "credentials": 1 },
                                     { "name": "reporting", "admin": false, "credentials": 0 }] }),
    );
    let sa = org.sa("smartsheet-integration");
    let (sa_id, sa_acct) = (sa["id"].as_str().unwrap().to_string(), sa["account_id"].as_str().unwrap().to_string());
    let old_cid = sa["credentials"][0]["client_id"].as_str().unwrap().to_string();
    let old_secret = sa["credentials"][0]["client_secret"].as_str().unwrap().to_string();
    let script = org.user("svc-old-script@acme.example");
    let (script_id, script_value) =
        (script["tokens"][0]["id"].as_str().unwrap().to_string(), script["tokens"][0]["value"].as_str().unwrap().to_string());
    let path = format!("atlassian/smartsheet-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    b.kv_put(&path, json!({ "value": old_secret, "client_id": old_cid }));
    // Where the script's token is kept: a revocation probes with it.
    let script_path = format!("atlassian/old-script-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    b.kv_put(&script_path, json!({ "value": script_value, "token_id": script_id }));
    let dir = tempfile::tempdir().unwrap();
    let pb = dir.path().join("atlassian.yaml");
    std::fs::write(
        &pb,
        format!(
            "{}  - id: atlassian/smartsheet-sa
    owner: finance-systems
    provider: atlassian
    target: {{ kind: atlassian_service_account_credential, service_account_id: \"{sa_id}\" }}
    deliver_to: [{{ provider: bao, path: \"{path}\" }}]
    manual: |
      Atlassian Administration › Directory › Service accounts › smartsheet-integration ›
      Create credentials › OAuth 2.0. Copy the client id and the secret.
  - id: atlassian/old-script
    provider: atlassian
    action: revoke
    target: {{ kind: atlassian_api_token, email: svc-old-script@acme.example, token_id: \"{script_id}\" }}
    deliver_to: [{{ provider: bao, path: \"{script_path}\" }}]
",
            bao_store_yaml(&s, &org)
        ),
    )
    .unwrap();
    let state_dir = dir.path().join("state");
    let key = org.key();
    let ks = || {
        let mut c = common::keysweep(&state_dir);
        c.env("ATLASSIAN_ADMIN_KEY", &key);
        c
    };
    let mut secrets = vec![old_secret.clone(), script_value.clone(), key.clone()];

    // Run 1: the credential awaits a person (exit 1, the instructions in the
    // report, nothing deleted); the API token is revoked and proven dead.
    let (code, text) = run(&ks, &pb);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("AWAITING A HUMAN") && text.contains("Create credentials"), "{text}");
    assert_eq!(client_state(&s, &old_cid)["deleted"], false);
    let tok = token_state(&s, &script_id);
    assert_eq!((tok["revoked"].clone(), tok["revoked_by"].clone()), (json!(true), json!("user-management")), "{tok}");
    let report = common::report_json(&state_dir);
    let row = report["rows"].as_array().unwrap().iter().find(|r| r["id"] == "atlassian/old-script").unwrap().clone();
    assert_eq!(row["outcome"], "revoked", "{row}");
    assert!(row.to_string().contains("AUTHENTICATED_FAILED"), "proven by the site's own refusal: {row}");
    // Atlassian itself refuses the revoked token now (an independent client).
    let basic = base64_encode(&format!("svc-old-script@acme.example:{script_value}"));
    let (code, _) = s.call("GET", "/rest/api/3/myself", &[("Authorization", &format!("Basic {basic}"))], None);
    assert_eq!(code, 401);

    // A person creates the credential on the wrong service account and supplies it: refused, nothing deleted.
    let (wrong_cid, wrong_secret) = issue_credential(&s, org.sa("reporting")["account_id"].as_str().unwrap(), "oops");
    secrets.push(wrong_secret.clone());
    common::supply(ks(), &pb, "atlassian/smartsheet-sa", &wrong_secret, &[&format!("client_id={wrong_cid}")]);
    let (code, text) = run(&ks, &pb);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("not a credential of service account"), "{text}");
    assert_eq!(client_state(&s, &old_cid)["deleted"], false, "nothing may be deleted for a wrong replacement");

    // The person creates it on the right service account and supplies it with its client id.
    let (new_cid, new_secret) = issue_credential(&s, &sa_acct, "smartsheet-2026-12");
    secrets.push(new_secret.clone());
    common::supply(ks(), &pb, "atlassian/smartsheet-sa", &new_secret, &[&format!("client_id={new_cid}")]);
    assert_eq!(b.kv_get(&path).unwrap()["value"], old_secret, "supply stages; consumers still read the old value");
    let (code, text) = run(&ks, &pb);
    assert_eq!(code, Some(0), "{text}");
    // The simulator's own view: the old client deleted through the API Access API, the new one live.
    let old = client_state(&s, &old_cid);
    assert_eq!((old["deleted"].clone(), old["deleted_by"].clone()), (json!(true), json!("api-access")), "{old}");
    assert_eq!(client_state(&s, &new_cid)["deleted"], false);
    assert_eq!(client_state(&s, &new_cid)["service_account"], sa_acct);
    let cur = b.kv_get(&path).unwrap();
    assert_eq!(cur["value"], new_secret);
    assert_eq!(cur["client_id"], new_cid);
    let report = common::report_json(&state_dir);
    let row = report["rows"].as_array().unwrap().iter().find(|r| r["id"] == "atlassian/smartsheet-sa").unwrap().clone();
    assert_eq!(row["outcome"], "rotated", "{row}");
    assert!(row.to_string().contains("access_denied") && row.to_string().contains("60 minutes"), "the derived-token window is reported: {row}");
    // Atlassian itself refuses the old secret now; the new one works.
    let token = |cid: &str, secret: &str| {
        s.call(
            "POST",
            "/oauth/token",
            &[],
            Some(&json!({ "grant_type": "client_credentials", "client_id": cid, "client_secret": secret }).to_string()),
        )
    };
    let (code, body) = token(&old_cid, &old_secret);
    assert_eq!((code, body["error"].as_str()), (401, Some("access_denied")));
    let (code, body) = token(&new_cid, &new_secret);
    assert_eq!(code, 200);
    common::canary(body["access_token"].as_str().unwrap());
    for v in &secrets {
        assert!(!text.contains(v.as_str()), "a secret value in keysweep's output");
    }
    assert_no_bulk_revoke(&s);
}

#[test]
fn an_api_token_is_reissued_by_a_person_then_revoked_and_proven_dead_end_to_end() {
    let s = sim::start("atlassian");
    let b = common::bao();
    let org = seed(
        &s,
        json!({ "org": "acme", "users": [
            { "email": "svc-smartsheet@acme.example", "admin": true, "tokens": [{ "label": "smartsheet", "last_access": "2026-11-30T00:00:00Z" },
                                                                               { "label": "other-script" }] },
            { "email": "someone-else@acme.example", "admin": true, "tokens": [] } ] }),
    );
    let u = org.user("svc-smartsheet@acme.example");
    let acct = u["account_id"].as_str().unwrap().to_string();
    let (old_id, old_value) = (u["tokens"][0]["id"].as_str().unwrap().to_string(), u["tokens"][0]["value"].as_str().unwrap().to_string());
    let other_id = u["tokens"][1]["id"].as_str().unwrap().to_string();
    let path = format!("atlassian/token-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    b.kv_put(&path, json!({ "value": old_value, "token_id": old_id }));
    let dir = tempfile::tempdir().unwrap();
    let pb = dir.path().join("atlassian.yaml");
    std::fs::write(
        &pb,
        format!(
            "{}  - id: atlassian/smartsheet-token
    provider: atlassian
    target: {{ kind: atlassian_api_token, email: svc-smartsheet@acme.example, label: smartsheet, token_id: \"{old_id}\" }}
    deliver_to: [{{ provider: bao, path: \"{path}\" }}]
    manual: |
      Sign in as svc-smartsheet@acme.example, id.atlassian.com › Security › API tokens › Create API token, label it smartsheet.
",
            bao_store_yaml(&s, &org)
        ),
    )
    .unwrap();
    let state_dir = dir.path().join("state");
    let key = org.key();
    let ks = || {
        let mut c = common::keysweep(&state_dir);
        c.env("ATLASSIAN_ADMIN_KEY", &key);
        c
    };
    let (code, text) = run(&ks, &pb);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("AWAITING A HUMAN") && text.contains("Create API token"), "{text}");

    // A token of another (admin) account supplied by mistake: refused, nothing revoked.
    let (_wid, wrong) = issue_token(&s, org.user("someone-else@acme.example")["account_id"].as_str().unwrap(), "smartsheet");
    common::supply(ks(), &pb, "atlassian/smartsheet-token", &wrong, &[]);
    let (code, text) = run(&ks, &pb);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("does not accept it as svc-smartsheet@acme.example"), "{text}");
    assert_eq!(token_state(&s, &old_id)["revoked"], false, "nothing may be revoked for a wrong replacement");

    // The person re-issues it as the right account and supplies it.
    let (new_id, new_value) = issue_token(&s, &acct, "smartsheet");
    common::supply(ks(), &pb, "atlassian/smartsheet-token", &new_value, &[]);
    let (code, text) = run(&ks, &pb);
    assert_eq!(code, Some(0), "{text}");
    let old = token_state(&s, &old_id);
    assert_eq!((old["revoked"].clone(), old["revoked_by"].clone()), (json!(true), json!("user-management")), "{old}");
    assert_eq!(token_state(&s, &new_id)["revoked"], false);
    assert_eq!(token_state(&s, &other_id)["revoked"], false, "the account's other token is untouched");
    let cur = b.kv_get(&path).unwrap();
    assert_eq!(cur["value"], new_value);
    assert_eq!(cur["token_id"], new_id, "the store names the re-issued token");
    assert_eq!(cur["account_id"], acct);
    let report = common::report_json(&state_dir);
    assert_eq!(report["rows"][0]["outcome"], "rotated", "{report}");
    for v in [&old_value, &new_value, &wrong, &key] {
        assert!(!text.contains(v.as_str()), "a secret value in keysweep's output");
    }
    assert_no_bulk_revoke(&s);
}

fn base64_encode(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}
