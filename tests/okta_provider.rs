//! The `okta` adapter against the Okta simulator (`sims/okta.py`, a real HTTP
//! server following Okta's published OpenAPI description): the conformance
//! trials for both kinds, inventory across pages with last use read from the
//! sliding expiry, Okta's ambiguous refusals and 429 storms never taken for
//! dead, the declared rate kept at the server, and the two lifecycles end to
//! end through the binary — a client secret rotated by API, and an API token
//! re-issued by a person (`manual:` + `keysweep supply`) — with every outcome
//! checked in the simulator's own state, not in keysweep's counters.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use keysweep::playbook::model::{Limits, SecretRef, Target};
use keysweep::provider::conformance::{self, Fixture};
use keysweep::provider::kind::ProviderKind;
use keysweep::provider::{Handle, Provider, Verdict};
use keysweep::providers::okta::config::{OktaApiTokenTarget, OktaClientSecretTarget, OktaProviderConfig};
use keysweep::secret::{Delivered, SecretString};
use serde_json::{json, Value};

use common::sim::{self, Sim};

/// Seeds an admin user with an API token (keysweep's login); returns its value.
fn admin(s: &Sim) -> String {
    let out = s.admin(
        "POST",
        "seed",
        Some(json!({ "users": [{ "login": "keysweep-admin@example.com", "roles": ["SUPER_ADMIN"] }],
                      "tokens": [{ "user": "keysweep-admin@example.com", "name": "keysweep" }] })),
    );
    let v = out["tokens"][0]["value"].as_str().unwrap().to_string();
    common::canary(&v);
    v
}

async fn connect(s: &Sim, token: &str, limits: Limits) -> Arc<dyn Provider> {
    let cfg = OktaProviderConfig {
        org_url: s.base.clone(),
        api_token: SecretRef::Env("OKTA_API_TOKEN".into()),
        allow_plaintext: false,
        tls: Default::default(),
        limits,
    };
    let token = token.to_string();
    cfg.connect("okta", &move |_r: &SecretRef| Ok(SecretString::from(token.clone()))).await.unwrap_or_else(|e| panic!("connect: {e}"))
}

/// A provider whose org stops answering right after it connected.
async fn unreachable() -> Arc<dyn Provider> {
    let s = sim::start("okta");
    let t = admin(&s);
    let p = connect(
        &s,
        &t,
        Limits {
            max_attempts: Some(1),
            timeout: Some(keysweep::playbook::model::HumanDuration(std::time::Duration::from_secs(2))),
            ..Default::default()
        },
    )
    .await;
    drop(s);
    p
}

fn seed_token(s: &Sim, login: &str, roles: Value, name: &str) -> (String, String) {
    let out = s.admin("POST", "seed", Some(json!({ "users": [{ "login": login, "roles": roles }], "tokens": [{ "user": login, "name": name }] })));
    let t = &out["tokens"][0];
    let v = t["value"].as_str().unwrap().to_string();
    common::canary(&v);
    (t["id"].as_str().unwrap().to_string(), v)
}

fn seed_app(s: &Sim, label: &str) -> (String, String, String) {
    let out = s.admin("POST", "seed", Some(json!({ "apps": [{ "label": label, "secrets": 1 }] })));
    let a = &out["apps"][0];
    let v = a["secrets"][0]["client_secret"].as_str().unwrap().to_string();
    common::canary(&v);
    (a["id"].as_str().unwrap().to_string(), a["secrets"][0]["id"].as_str().unwrap().to_string(), v)
}

fn secret_target(app: &str) -> Target {
    Target::OktaClientSecret(OktaClientSecretTarget {
        app_id: app.into(),
        authorization_server: "default".into(),
        scope: Some("keysweep.test".into()),
    })
}

struct Tokens(Arc<Sim>);
#[async_trait]
impl Fixture for Tokens {
    async fn create(&self) -> (Target, Handle, SecretString) {
        let n = uuid::Uuid::new_v4().simple().to_string();
        let login = format!("svc-{}@example.com", &n[..8]);
        let (id, v) = seed_token(&self.0, &login, json!([]), &format!("integration-{}", &n[..8]));
        let t = Target::OktaApiToken(OktaApiTokenTarget { token_id: Some(id.clone()), name: None, user: Some(login) });
        (t, Handle::from([("token_id".to_string(), id)]), SecretString::from(v))
    }
    async fn unreachable(&self) -> Option<Arc<dyn Provider>> {
        Some(unreachable().await)
    }
}

struct Secrets(Arc<Sim>);
#[async_trait]
impl Fixture for Secrets {
    async fn create(&self) -> (Target, Handle, SecretString) {
        let (app, sid, v) = seed_app(&self.0, &format!("svc-app-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
        (secret_target(&app), Handle::from([("secret_id".to_string(), sid)]), SecretString::from(v))
    }
    async fn unreachable(&self) -> Option<Arc<dyn Provider>> {
        Some(unreachable().await)
    }
}

#[tokio::test]
async fn okta_api_token_conformance() {
    let s = Arc::new(sim::start("okta"));
    let p = connect(&s, &admin(&s), Limits::default()).await;
    conformance::run(p.as_ref(), &Tokens(s.clone()), "okta_api_token").await;
}

#[tokio::test]
async fn okta_client_secret_conformance() {
    let s = Arc::new(sim::start("okta"));
    let p = connect(&s, &admin(&s), Limits::default()).await;
    conformance::run(p.as_ref(), &Secrets(s.clone()), "okta_client_secret").await;
}

#[tokio::test]
async fn inventory_reads_every_page_and_last_use_from_the_sliding_expiry() {
    let s = sim::start("okta");
    let a = admin(&s);
    let tokens: Vec<Value> = (0..12)
        .map(|i| {
            json!({ "user": "svc-inv@example.com", "name": format!("inv-{i}"), "created": "2026-01-05T10:00:00.000Z",
                         "last_used": if i == 0 { Value::Null } else { json!("2026-11-20T08:30:00.000Z") } })
        })
        .collect();
    s.admin("POST", "seed", Some(json!({ "max_page": 5, "users": [{ "login": "svc-inv@example.com", "roles": ["ORG_ADMIN"] }], "tokens": tokens })));
    let p = connect(&s, &a, Limits::default()).await;
    let before = s.log().len();
    let items = p.inventory().await.unwrap();
    let pages = s.log()[before..].iter().filter(|e| e["path"] == "/api/v1/api-tokens").count();
    assert!(pages >= 3, "13 tokens at 5 per page take 3 pages; the inventory read {pages}");
    let inv: Vec<_> = items.iter().filter(|i| i.kind == "okta_api_token" && i.details["name"].starts_with("inv-")).collect();
    // inv-0 was never used after January: its 30-day window ran out and Okta
    // lists active tokens only.
    assert_eq!(inv.len(), 11, "every active seeded token is listed");
    assert!(!inv.iter().any(|i| i.details["name"] == "inv-0"));
    let used = inv.iter().find(|i| i.details["name"] == "inv-3").unwrap();
    assert_eq!(used.last_used.as_deref(), Some("2026-11-20T08:30:00Z"), "last use = expiresAt - tokenWindow");
    assert_eq!(used.details["privileged"], "true", "an ORG_ADMIN's token is privileged");
    assert_eq!(used.details["login"], "svc-inv@example.com");
    // keysweep's own token is listed like any other (a long-lived credential, not a session).
    let own: Vec<_> = items.iter().filter(|i| i.details.contains_key("keysweep_login")).collect();
    assert_eq!(own.len(), 1, "keysweep's own token is marked as its login");
    assert!(!items.iter().any(|i| i.details.contains_key("keysweep_session")));
    assert_eq!(own[0].details["name"], "keysweep");
}

#[tokio::test]
async fn ambiguous_refusals_and_429_storms_are_unknown_never_dead() {
    let s = sim::start("okta");
    let p = connect(&s, &admin(&s), Limits { max_attempts: Some(2), ..Default::default() }).await;
    let (id, value) = seed_token(&s, "svc-amb@example.com", json!([]), "amb");
    let target = Target::OktaApiToken(OktaApiTokenTarget { token_id: Some(id.clone()), name: None, user: None });
    let handle = Handle::from([("token_id".to_string(), id.clone())]);
    let value = SecretString::from(value);
    // Revoked: only Okta's own refusal may say so, and every fault below hides it.
    p.retire(&target, &handle).await.unwrap();
    for fault in ["network_zone", "access_denied", "waf", "503", "429", "drop"] {
        s.faults(json!([{ "path": "^/api/v1/(users/me|api-tokens/)" , "answer": fault }]));
        for v in [p.verify_dead(&target, &handle, Some(&value)).await, p.verify_dead(&target, &handle, None).await] {
            assert!(matches!(v, Verdict::Unknown(_)), "{fault}: {v:?}");
        }
        let t = p
            .test(
                &target,
                &Delivered {
                    value: SecretString::from(keysweep::secret::ExposeSecret::expose_secret(&value).to_string()),
                    fields: Default::default(),
                },
                &handle,
            )
            .await;
        assert!(matches!(t, Verdict::Unknown(_)), "{fault}: test gave {t:?}");
    }
    s.faults(json!([]));
    let v = p.verify_dead(&target, &handle, Some(&value)).await;
    assert!(matches!(v, Verdict::Dead(ref e) if e.contains("E0000011")), "Okta's own refusal: {v:?}");
    let v = p.verify_dead(&target, &handle, None).await;
    assert!(matches!(v, Verdict::Dead(ref e) if e.contains("E0000007")), "the admin API's 404: {v:?}");

    // Client secrets: a 403 from the token endpoint (network zone) is not invalid_client.
    let (app, sid, secret) = seed_app(&s, "amb-app");
    let st = secret_target(&app);
    let sh = Handle::from([("secret_id".to_string(), sid)]);
    s.faults(json!([{ "path": "^/oauth2/", "answer": "network_zone" }]));
    let v = p.verify_dead(&st, &sh, Some(&SecretString::from(secret))).await;
    assert!(matches!(v, Verdict::Unknown(_)), "{v:?}");
}

#[tokio::test]
async fn a_declared_rate_is_kept_at_the_server_through_a_429_storm() {
    let s = sim::start("okta");
    let a = admin(&s);
    let tokens: Vec<Value> = (0..40).map(|i| json!({ "user": "svc-rate@example.com", "name": format!("r-{i}") })).collect();
    s.admin("POST", "seed", Some(json!({ "max_page": 2, "users": [{ "login": "svc-rate@example.com", "roles": [] }], "tokens": tokens })));
    // The org answers 6 requests a second; the playbook declares 4.
    s.rate(Some(6));
    let p = connect(&s, &a, Limits { rate_per_second: Some(4), ..Default::default() }).await;
    let before: u64 = s.arrivals().iter().sum();
    let items = p.inventory().await.unwrap();
    assert!(items.len() >= 41);
    let arrivals = s.arrivals();
    assert!(arrivals.iter().sum::<u64>() - before >= 21, "the listing took 21+ requests");
    assert!(arrivals.iter().all(|n| *n <= 4), "more than the declared 4 requests in one second at the server: {arrivals:?}");

    // A storm: every request answered 429 with Okta's headers. Unknown, and bounded.
    s.rate(None);
    s.faults(json!([{ "path": "^/api/v1/", "answer": "429" }]));
    let target = Target::OktaApiToken(OktaApiTokenTarget { token_id: Some("00Tnothere".into()), name: None, user: None });
    let h = Handle::from([("token_id".to_string(), "00Tnothere".to_string())]);
    let n0 = s.log().len();
    let v = p.verify_dead(&target, &h, None).await;
    assert!(matches!(v, Verdict::Unknown(_)), "{v:?}");
    assert!(p.retire(&target, &h).await.is_err(), "a 429 storm is not a revocation");
    let sent = s.log().len() - n0;
    assert!(sent <= 10, "two calls of at most 5 attempts each (the default retry policy), not {sent}");
}

fn bao_store_yaml(sim: &Sim) -> String {
    format!(
        "version: 1
providers:
  okta:
    kind: okta
    org_url: {}
    api_token: ${{env:OKTA_API_TOKEN}}
  bao:
    kind: vault
    address: ${{env:VAULT_ADDR}}
    auth: {{ method: token, token: \"${{env:VAULT_TOKEN}}\" }}
defaults:
  owner: identity-team
  verify: {{ attempts: 3, interval: 200ms }}
credentials:
",
        sim.base
    )
}

fn state(s: &Sim) -> Value {
    s.state()
}

fn token_state(s: &Sim, id: &str) -> Value {
    state(s)["tokens"].as_array().unwrap().iter().find(|t| t["id"] == id).cloned().unwrap_or(Value::Null)
}

#[test]
fn an_api_token_is_reissued_by_a_person_then_revoked_and_proven_dead_end_to_end() {
    let s = sim::start("okta");
    let b = common::bao();
    let a = admin(&s);
    let (old_id, old_value) = seed_token(&s, "svc-moveworks@example.com", json!(["SUPER_ADMIN"]), "moveworks");
    let path = format!("okta/moveworks-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    b.kv_put(&path, json!({ "value": old_value, "token_id": old_id }));
    let dir = tempfile::tempdir().unwrap();
    let pb = dir.path().join("okta.yaml");
    std::fs::write(
        &pb,
        format!(
            "{}  - id: moveworks
    provider: okta
    target: {{ kind: okta_api_token, token_id: {old_id}, user: svc-moveworks@example.com }}
    deliver_to: [{{ provider: bao, path: \"{path}\" }}]
    manual: |
      Sign in to the Okta Admin Console as svc-moveworks, Security › API › Tokens › Create token, name it moveworks.
",
            bao_store_yaml(&s)
        ),
    )
    .unwrap();
    let state_dir = dir.path().join("state");
    let ks = || {
        let mut c = common::keysweep(&state_dir);
        c.env("OKTA_API_TOKEN", &a);
        c
    };

    // Run 1: awaiting a human, exit 1, the instructions in the report; nothing changed.
    let out = ks().args(["run", pb.to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("AWAITING A HUMAN") && text.contains("Security › API › Tokens"), "{text}");
    assert!(text.contains("1 awaiting a human"), "{text}");
    assert_eq!(token_state(&s, &old_id)["revoked"], false);

    // A person makes a token for another user by mistake and supplies it: refused, nothing revoked.
    let other = s.admin("POST", "seed", Some(json!({ "users": [{ "login": "someone-else@example.com", "roles": ["SUPER_ADMIN"] }], "tokens": [{ "user": "someone-else@example.com", "name": "x" }] })));
    let wrong = other["tokens"][0]["value"].as_str().unwrap().to_string();
    common::canary(&wrong);
    common::supply(ks(), &pb, "moveworks", &wrong, &[]);
    let out = ks().args(["run", pb.to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("not as the old token's user"), "{text}");
    assert_eq!(token_state(&s, &old_id)["revoked"], false, "nothing may be revoked for a wrong replacement");

    // The person re-issues it in the "Admin Console" and supplies it.
    let issued = s.admin("POST", "issue_token", Some(json!({ "user": "svc-moveworks@example.com", "name": "moveworks" })));
    let (new_id, new_value) = (issued["id"].as_str().unwrap().to_string(), issued["value"].as_str().unwrap().to_string());
    common::canary(&new_value);
    common::supply(ks(), &pb, "moveworks", &new_value, &[]);
    assert_eq!(b.kv_get(&path).unwrap()["value"], old_value, "supply stages; consumers still read the old value");
    let out = ks().args(["run", pb.to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}");
    // The simulator's own view: the old token revoked, the new one live; the store names the new.
    assert_eq!(token_state(&s, &old_id)["revoked"], true, "{text}");
    assert_eq!(token_state(&s, &new_id)["valid"], true);
    let cur = b.kv_get(&path).unwrap();
    assert_eq!(cur["value"], new_value);
    assert_eq!(cur["token_id"], new_id);
    let report = common::report_json(&state_dir);
    assert_eq!(report["rows"][0]["outcome"], "rotated", "{report}");
    for v in [&old_value, &new_value, &wrong, &a] {
        assert!(!text.contains(v.as_str()), "a secret value in keysweep's output");
    }
}

#[test]
fn a_client_secret_is_rotated_dual_and_the_old_one_deleted_end_to_end() {
    let s = sim::start("okta");
    let b = common::bao();
    let a = admin(&s);
    let (app, old_sid, old_secret) = seed_app(&s, "smartsheet-sync");
    let path = format!("okta/app-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    b.kv_put(&path, json!({ "value": old_secret, "secret_id": old_sid, "client_id": app }));
    let dir = tempfile::tempdir().unwrap();
    let pb = dir.path().join("okta.yaml");
    std::fs::write(
        &pb,
        format!(
            "{}  - id: smartsheet-sync
    provider: okta
    target: {{ kind: okta_client_secret, app_id: {app}, scope: okta.read }}
    deliver_to: [{{ provider: bao, path: \"{path}\" }}]
",
            bao_store_yaml(&s)
        ),
    )
    .unwrap();
    let state_dir = dir.path().join("state");
    let out = common::keysweep(&state_dir).env("OKTA_API_TOKEN", &a).args(["run", pb.to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("1 hour"), "the report states the window of derived access tokens: {text}");
    let st = state(&s);
    let appst = st["apps"].as_array().unwrap().iter().find(|x| x["id"] == app).unwrap().clone();
    let secrets = appst["secrets"].as_array().unwrap();
    assert_eq!(secrets.len(), 1, "exactly one secret is left: {appst}");
    assert_ne!(secrets[0]["id"], old_sid);
    assert_eq!(secrets[0]["status"], "ACTIVE");
    let cur = b.kv_get(&path).unwrap();
    assert_eq!(cur["secret_id"], secrets[0]["id"]);
    assert_ne!(cur["value"], old_secret);
    // Okta itself refuses the old secret now.
    let basic = format!("{app}:{old_secret}");
    let (code, body) = s.call(
        "POST",
        "/oauth2/default/v1/token",
        &[("Authorization", &format!("Basic {}", base64_encode(&basic))), ("Content-Type", "application/x-www-form-urlencoded")],
        Some("grant_type=client_credentials&scope=okta.read"),
    );
    assert_eq!((code, body["error"].as_str()), (401, Some("invalid_client")));
    assert!(!text.contains(&old_secret));
}

fn base64_encode(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// keysweep's own Okta token, re-issued by a person right after keysweep last
/// used it (so both were used within the same second): the supplied token is
/// identified (not taken for the login), tested, promoted; keysweep moves its
/// session to it, then revokes the old one and proves it dead.
#[test]
fn keysweeps_own_api_token_reissued_in_the_same_second_is_rotated_last_and_the_session_moves() {
    let s = sim::start("okta");
    let b = common::bao();
    let (old_id, old_value) = seed_token(&s, "keysweep-self@example.com", json!(["SUPER_ADMIN"]), "keysweep");
    let path = format!("okta/keysweep-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    b.kv_put(&path, json!({ "value": old_value, "token_id": old_id }));
    let dir = tempfile::tempdir().unwrap();
    let pb = dir.path().join("okta.yaml");
    let yaml = bao_store_yaml(&s).replace("${env:OKTA_API_TOKEN}", &format!("\"${{store:bao:secret/{path}#value}}\""))
        + &format!(
            "  - id: okta/keysweep
    provider: okta
    target: {{ kind: okta_api_token, name: keysweep, user: keysweep-self@example.com }}
    deliver_to: [{{ provider: bao, path: \"{path}\" }}]
    manual: Create a token named keysweep as keysweep-self.
"
        );
    std::fs::write(&pb, yaml).unwrap();
    let state_dir = dir.path().join("state");
    let ks = || common::keysweep(&state_dir);
    let out = ks().args(["run", pb.to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("1 awaiting a human"), "{text}");
    let issued = s.admin("POST", "issue_token", Some(json!({ "user": "keysweep-self@example.com", "name": "keysweep" })));
    let (new_id, new_value) = (issued["id"].as_str().unwrap().to_string(), issued["value"].as_str().unwrap().to_string());
    common::canary(&new_value);
    common::supply(ks(), &pb, "okta/keysweep", &new_value, &[]);
    let out = ks().args(["run", pb.to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(token_state(&s, &old_id)["revoked"], true, "{text}");
    assert_eq!(token_state(&s, &new_id)["valid"], true);
    let cur = b.kv_get(&path).unwrap();
    assert_eq!(cur["token_id"], new_id);
    // The next run logs in with the value now in the store.
    let out = ks().args(["plan", pb.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    for v in [&old_value, &new_value] {
        assert!(!text.contains(v.as_str()), "a secret value in keysweep's output");
    }
}

/// TLS to an HTTP API with a private CA (a gateway or proxy in front of the
/// vendor): trusted only through `tls.ca_cert`; the system's roots or another
/// CA refuse it with the fix in the message, as a configuration error (not
/// retried); verification off connects and is reported.
#[tokio::test]
async fn tls_with_a_private_ca() {
    use keysweep::provider::tls::TlsConfig;
    use keysweep::provider::ErrorKind;
    let dir = tempfile::tempdir().unwrap();
    common::certs::server(dir.path(), &["localhost"]);
    let other = tempfile::tempdir().unwrap();
    common::certs::server(other.path(), &["localhost"]);
    let s = sim::start_tls("okta", dir.path());
    let t = admin(&s);
    let (id, _) = seed_token(&s, "svc-tls@example.com", json!(["READ_ONLY_ADMIN"]), "svc-tls");
    let cfg = |tls: TlsConfig| OktaProviderConfig {
        org_url: s.base.clone(),
        api_token: SecretRef::Env("OKTA_API_TOKEN".into()),
        allow_plaintext: false,
        tls,
        limits: Limits { max_attempts: Some(2), ..Default::default() },
    };
    let conn = |c: OktaProviderConfig| {
        let t = t.clone();
        async move { c.connect("okta", &move |_r: &SecretRef| Ok(SecretString::from(t.clone()))).await }
    };

    let ca = dir.path().join("ca.pem").display().to_string();
    let good = cfg(TlsConfig { ca_cert: Some(ca), ..Default::default() });
    assert!(good.check(false).is_empty() && good.warnings().is_empty());
    let p = conn(good).await.unwrap_or_else(|e| panic!("connect over TLS with the CA: {e}"));
    let items = p.inventory().await.unwrap();
    assert!(items.iter().any(|i| i.id == id), "the seeded token is listed over TLS: {items:?}");
    // Every request reached the simulator over TLS (a plaintext request to its port fails).
    let plain = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://127.0.0.1:{}/api/v1/users", s.port))
        .output()
        .unwrap();
    assert_ne!(plain.stdout, b"200", "the simulator serves HTTPS only");

    for (what, tls) in [
        ("the system's roots", TlsConfig::default()),
        ("another CA", TlsConfig { ca_cert: Some(other.path().join("ca.pem").display().to_string()), ..Default::default() }),
    ] {
        let e = conn(cfg(tls)).await.err().unwrap_or_else(|| panic!("{what}: a certificate from an unknown CA was accepted"));
        assert_eq!(e.kind, ErrorKind::Config, "{what}: a refused certificate is not temporary: {e}");
        assert!(e.to_string().contains("tls.ca_cert"), "{what}: the message names the fix: {e}");
    }

    let insecure = cfg(TlsConfig { insecure_skip_verify: true, ..Default::default() });
    assert!(insecure.warnings().iter().any(|w| w.contains("verification is OFF")), "{:?}", insecure.warnings());
    conn(insecure).await.unwrap_or_else(|e| panic!("verification off connects: {e}"));
    let named = cfg(TlsConfig { server_name: Some("okta.internal".into()), ..Default::default() });
    assert!(named.check(false).iter().any(|p| p.at.iter().any(|a| a == "server_name")), "server_name is refused for an HTTP API at load");
}
