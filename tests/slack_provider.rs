//! The `slack` adapter against the Slack simulator (`sims/slack.py`, a real
//! HTTP server following Slack's method pages and token-rotation guide): the
//! conformance trials for both kinds, inventory across `users.list` pages,
//! Slack's ambiguous answers (`invalid_auth` from an IP allow-list, 429
//! storms, 5xx, `internal_error`, WAF pages) never taken for dead, the
//! declared rate kept at the server, and end to end through the binary with
//! a Vault store: a bot token and a leaked user token revoked, a user token
//! re-issued by a person (`manual:` + `keysweep supply`), a rotating app's
//! tokens refreshed twice in a row, a refresh whose answer was lost reported
//! (never silently dropped), and a pending refreshed pair adopted by a later
//! run. Every outcome is checked in the simulator's own state.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use keysweep::playbook::model::{HumanDuration, Limits, SecretRef, Target};
use keysweep::provider::conformance::{self, Fixture};
use keysweep::provider::kind::ProviderKind;
use keysweep::provider::{Handle, Provider, Verdict};
use keysweep::providers::slack::config::{SlackProviderConfig, SlackRotatingApp, SlackRotatingTokenTarget, SlackTokenTarget, TokenType};
use keysweep::providers::slack::fingerprint;
use keysweep::secret::{Delivered, SecretString};
use serde_json::{json, Value};

use common::sim::{self, Sim};

/// A seeded workspace whose first user is keysweep's admin.
struct Seeded {
    out: Value,
    admin: String,
}

impl Seeded {
    fn app(&self, name: &str) -> Value {
        self.out["apps"].as_array().unwrap().iter().find(|a| a["name"] == name).cloned().unwrap_or_else(|| panic!("no app {name}"))
    }
    fn user(&self, name: &str) -> Value {
        self.out["users"].as_array().unwrap().iter().find(|a| a["name"] == name).cloned().unwrap_or_else(|| panic!("no user {name}"))
    }
    fn team(&self) -> String {
        self.out["team"]["id"].as_str().unwrap().to_string()
    }
}

fn seed(s: &Sim, mut spec: Value) -> Seeded {
    let users = spec["users"].as_array().cloned().unwrap_or_default();
    let mut all = vec![json!({ "name": "keysweep-admin", "admin": true })];
    all.extend(users);
    spec["users"] = Value::Array(all);
    let out = s.admin("POST", "seed", Some(spec));
    sim::canary_secrets(&out);
    let admin = out["users"][0]["token"].as_str().unwrap().to_string();
    Seeded { out, admin }
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}")).to_string()
}

/// The provider, logged in with the admin's token; rotating apps get their client credentials.
async fn connect(sim: &Sim, seeded: &Seeded, limits: Limits) -> Arc<dyn Provider> {
    let mut env: HashMap<String, String> = HashMap::from([("SLACK_TOKEN".to_string(), seeded.admin.clone())]);
    let mut apps = vec![];
    for a in seeded.out["apps"].as_array().unwrap().iter().filter(|a| a["rotation"] == true) {
        let var = format!("SLACK_CLIENT_SECRET_{}", s(&a["app_id"]));
        env.insert(var.clone(), s(&a["client_secret"]));
        apps.push(SlackRotatingApp { app_id: s(&a["app_id"]), client_id: s(&a["client_id"]), client_secret: SecretRef::Env(var) });
    }
    let cfg = SlackProviderConfig {
        api_url: sim.base.clone(),
        token: SecretRef::Env("SLACK_TOKEN".into()),
        rotating_apps: apps,
        allow_plaintext: false,
        tls: Default::default(),
        limits,
    };
    cfg.connect("slack", &move |r: &SecretRef| match r {
        SecretRef::Env(v) => Ok(SecretString::from(env[v].clone())),
        other => panic!("unexpected {other}"),
    })
    .await
    .unwrap_or_else(|e| panic!("connect: {e}"))
}

/// A provider whose workspace stops answering right after it connected.
async fn unreachable() -> Arc<dyn Provider> {
    let s = sim::start("slack");
    let seeded = seed(&s, json!({}));
    let p =
        connect(&s, &seeded, Limits { max_attempts: Some(1), timeout: Some(HumanDuration(std::time::Duration::from_secs(2))), ..Default::default() })
            .await;
    drop(s);
    p
}

fn bot_target(app: &Value) -> Target {
    Target::SlackToken(SlackTokenTarget { user_id: s(&app["bot_user_id"]), token_type: TokenType::Bot, app_id: Some(s(&app["app_id"])), token: None })
}

fn rotating_target(app: &Value) -> Target {
    Target::SlackRotatingToken(SlackRotatingTokenTarget { app_id: s(&app["app_id"]), user_id: s(&app["bot_user_id"]), token_type: TokenType::Bot })
}

fn handle(team: &str, user: &str, app: Option<&str>, value: &str) -> Handle {
    let mut h = Handle::from([
        ("team_id".to_string(), team.to_string()),
        ("user_id".to_string(), user.to_string()),
        ("token_fp".to_string(), fingerprint(value)),
    ]);
    if let Some(a) = app {
        h.insert("app_id".into(), a.to_string());
    }
    h
}

fn known(value: &str, fields: &Handle) -> Delivered {
    Delivered { value: SecretString::from(value.to_string()), fields: fields.clone() }
}

/// Apps seeded before the provider connects, handed out one per `create`
/// (a seed replaces the whole workspace, keysweep's login included).
struct Pool {
    team: String,
    apps: Mutex<Vec<Value>>,
}

struct Bots(Pool);
#[async_trait]
impl Fixture for Bots {
    async fn create(&self) -> (Target, Handle, SecretString) {
        let a = self.0.apps.lock().unwrap().pop().expect("enough seeded bot apps");
        let v = s(&a["token"]);
        (bot_target(&a), handle(&self.0.team, &s(&a["bot_user_id"]), Some(&s(&a["app_id"])), &v), SecretString::from(v))
    }
    async fn unreachable(&self) -> Option<Arc<dyn Provider>> {
        Some(unreachable().await)
    }
}

/// Rotating apps: the handle stands for the store's fields, so it carries
/// the refresh token beside the access token, as a store entry does.
struct Rotating(Pool);
#[async_trait]
impl Fixture for Rotating {
    async fn create(&self) -> (Target, Handle, SecretString) {
        let a = self.0.apps.lock().unwrap().pop().expect("enough seeded rotating apps");
        let v = s(&a["token"]);
        let mut h = handle(&self.0.team, &s(&a["bot_user_id"]), Some(&s(&a["app_id"])), &v);
        h.insert("refresh_token".into(), s(&a["refresh_token"]));
        (rotating_target(&a), h, SecretString::from(v))
    }
    async fn unreachable(&self) -> Option<Arc<dyn Provider>> {
        Some(unreachable().await)
    }
}

fn apps_spec(prefix: &str, n: usize, rotation: bool) -> Vec<Value> {
    (0..n).map(|i| json!({ "name": format!("{prefix}-{i}"), "rotation": rotation, "scopes": ["chat:write"] })).collect()
}

#[tokio::test]
async fn slack_token_conformance() {
    let sim = sim::start("slack");
    let seeded = seed(&sim, json!({ "apps": apps_spec("bot", 6, false) }));
    let p = connect(&sim, &seeded, Limits::default()).await;
    let pool = Pool { team: seeded.team(), apps: Mutex::new(seeded.out["apps"].as_array().unwrap().clone()) };
    let ran = conformance::run(p.as_ref(), &Bots(pool), "slack_token").await;
    assert!(ran.contains(&"revoke_and_prove_dead") && ran.contains(&"outage_is_unknown_never_dead"), "{ran:?}");
}

#[tokio::test]
async fn slack_rotating_token_conformance() {
    let sim = sim::start("slack");
    let seeded = seed(&sim, json!({ "apps": apps_spec("rot", 6, true) }));
    let p = connect(&sim, &seeded, Limits::default()).await;
    let pool = Pool { team: seeded.team(), apps: Mutex::new(seeded.out["apps"].as_array().unwrap().clone()) };
    let ran = conformance::run(p.as_ref(), &Rotating(pool), "slack_rotating_token").await;
    assert!(ran.contains(&"mint_and_cleanup_orphans_by_nonce"), "{ran:?}");
    // Slack's own view: the conformance mints were real refreshes.
    let st = sim.state();
    let ok = st["oauth_refresh_calls"].as_array().unwrap().iter().filter(|c| c["result"] == "ok").count();
    assert_eq!(ok, 2, "the orphan and the kept secret: two refreshes, {st}");
}

#[tokio::test]
async fn inventory_reads_every_users_list_page_and_finds_bots_and_programs() {
    let sim = sim::start("slack");
    let mut users: Vec<Value> = (0..430).map(|i| json!({ "name": format!("person-{i}"), "user_token": false })).collect();
    users.push(json!({ "name": "svc-script" }));
    users.push(json!({ "name": "browser-person" }));
    let seeded = seed(
        &sim,
        json!({ "users": users, "apps": [
            { "name": "pagerduty-bot", "scopes": ["chat:write"], "installed_days_ago": 40 },
            { "name": "deploy-bot", "rotation": true, "scopes": ["chat:write"] },
            { "name": "old-bot", "scopes": ["chat:write"] } ] }),
    );
    sim.admin("POST", "deactivate", Some(json!({ "user": "old-bot" })));
    // A script calls Slack with svc-script's token; a person only signs in with a browser.
    let bearer = |n: &str| format!("Bearer {}", s(&seeded.user(n)["token"]));
    let (code, body) = sim.call("POST", "/api/auth.test", &[("Authorization", &bearer("svc-script")), ("User-Agent", "python-requests/2.31")], None);
    assert_eq!((code, body["ok"].as_bool()), (200, Some(true)));
    sim.call("POST", "/api/auth.test", &[("Authorization", &bearer("browser-person")), ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64)")], None);

    let p = connect(&sim, &seeded, Limits::default()).await;
    let before = sim.log().len();
    let items = p.inventory().await.unwrap();
    let pages = sim.log()[before..].iter().filter(|e| e["path"] == "/api/users.list").count();
    assert!(pages >= 3, "438 members at 200 a page take 3 pages; the inventory read {pages}");
    let json = serde_json::to_string(&items).unwrap();
    for a in seeded.out["apps"].as_array().unwrap() {
        assert!(!json.contains(&s(&a["token"])), "a token in the inventory");
    }
    assert!(!json.contains(&seeded.admin));

    let by_id = |id: &Value| items.iter().find(|i| i.id == s(id));
    let pd = seeded.app("pagerduty-bot");
    let it = by_id(&pd["bot_user_id"]).expect("a bot user holds its app's bot token");
    assert_eq!(
        (it.kind.as_str(), it.details["app_id"].as_str(), it.details["token_type"].as_str()),
        ("slack_token", s(&pd["app_id"]).as_str(), "bot")
    );
    assert!(it.created.is_some(), "the install date from team.integrationLogs: {it:?}");
    assert!(!it.usage_tracked, "Slack documents no per-bot-token activity");
    let deploy = by_id(&seeded.app("deploy-bot")["bot_user_id"]).expect("the rotating app's bot");
    assert_eq!(deploy.kind, "slack_rotating_token", "an app in rotating_apps");
    assert!(by_id(&seeded.app("old-bot")["bot_user_id"]).is_none(), "a deactivated bot holds no live token");
    assert!(!items.iter().any(|i| i.id == "USLACKBOT"));

    let admin = by_id(&seeded.user("keysweep-admin")["id"]).expect("keysweep's own login is listed");
    assert_eq!(admin.details.get("keysweep_login").map(String::as_str), Some("true"));
    assert_eq!(admin.details["privileged"], "true", "a workspace admin's token is privileged");
    let script = by_id(&seeded.user("svc-script")["id"]).expect("a member whose token a program uses");
    assert_eq!((script.kind.as_str(), script.details["privileged"].as_str()), ("slack_token", "false"));
    assert!(script.last_used.is_some() && !script.usage_tracked, "last access from team.accessLogs, not a per-token record: {script:?}");
    assert!(by_id(&seeded.user("browser-person")["id"]).is_none(), "a browser sign-in is not a token");
    assert!(by_id(&seeded.user("person-7")["id"]).is_none(), "Slack lists no user tokens");
}

#[tokio::test]
async fn ambiguous_answers_429_5xx_and_waf_pages_are_unknown_never_dead() {
    let sim = sim::start("slack");
    let seeded = seed(&sim, json!({ "apps": [ { "name": "amb-bot", "scopes": ["chat:write"] }, { "name": "live-bot", "scopes": ["chat:write"] } ] }));
    let p = connect(&sim, &seeded, Limits { max_attempts: Some(2), ..Default::default() }).await;
    let team = seeded.team();
    let app = seeded.app("amb-bot");
    let (target, value) = (bot_target(&app), s(&app["token"]));
    let h = handle(&team, &s(&app["bot_user_id"]), Some(&s(&app["app_id"])), &value);
    let live = seeded.app("live-bot");
    let (live_t, live_v) = (bot_target(&live), s(&live["token"]));
    let live_h = handle(&team, &s(&live["bot_user_id"]), Some(&s(&live["app_id"])), &live_v);

    // An IP allow-list refusal (`invalid_auth`) on a live token: unknown, and nothing is revoked.
    sim.faults(json!([{ "path": "^/api/", "answer": "ip_allowlist" }]));
    let v = p.verify_dead(&live_t, &live_h, Some(&SecretString::from(live_v.clone()))).await;
    assert!(matches!(v, Verdict::Unknown(ref e) if e.contains("invalid_auth")), "{v:?}");
    assert!(p.retire_with(&live_t, &live_h, Some(&known(&live_v, &live_h))).await.is_err(), "invalid_auth is no licence to revoke");
    sim.faults(json!([]));
    let rec = sim.state()["tokens"].as_array().unwrap().iter().find(|t| t["id"] == live["token_id"]).cloned().unwrap();
    assert_eq!(rec["revoked"], false);

    // Revoked: only Slack's own refusal may say so, and every fault below hides it.
    p.retire_with(&target, &h, Some(&known(&value, &h))).await.unwrap();
    let faults = [
        json!("ip_allowlist"),
        json!("internal_error"),
        json!("fatal_error"),
        json!("service_unavailable"),
        json!("waf"),
        json!("503"),
        json!("502"),
        json!("429"),
        json!("drop"),
        json!({ "status": 200, "body": { "hello": "a proxy's JSON" } }),
        json!({ "status": 200, "body": "{\"ok\":false,\"error\":\"token_rev", "content_type": "application/json" }),
    ];
    let secret = SecretString::from(value.clone());
    for f in &faults {
        sim.faults(json!([{ "path": "^/api/(auth\\.test|users\\.info)$", "answer": f }]));
        for v in [p.verify_dead(&target, &h, Some(&secret)).await, p.verify_dead(&target, &h, None).await] {
            assert!(matches!(v, Verdict::Unknown(_)), "{f}: {v:?}");
            assert!(!v.evidence().contains(&value));
        }
        let t = p.test(&target, &known(&value, &h), &h).await;
        assert!(matches!(t, Verdict::Unknown(_)), "{f}: test gave {t:?}");
    }
    sim.faults(json!([]));
    let v = p.verify_dead(&target, &h, Some(&secret)).await;
    assert!(matches!(v, Verdict::Dead(ref e) if e.contains("token_revoked")), "Slack's own refusal: {v:?}");
    let v = p.verify_dead(&target, &h, None).await;
    assert!(matches!(v, Verdict::Dead(ref e) if e.contains("deactivated")), "the bot user deactivated by the revocation: {v:?}");
    let st = sim.state();
    let rec = st["tokens"].as_array().unwrap().iter().find(|t| t["id"] == app["token_id"]).unwrap();
    assert_eq!((rec["revoked"].as_bool(), rec["revoked_by"].as_str()), (Some(true), Some("auth.revoke")));
}

#[tokio::test]
async fn a_declared_rate_is_kept_at_the_server_through_a_429_storm() {
    let sim = sim::start("slack");
    let seeded = seed(&sim, json!({ "apps": apps_spec("rate", 16, false) }));
    // The workspace answers 6 requests a second; the playbook declares 4.
    sim.rate(Some(6));
    let p = connect(&sim, &seeded, Limits { rate_per_second: Some(4), ..Default::default() }).await;
    let team = seeded.team();
    let probes: Vec<(Target, Handle, SecretString)> = seeded.out["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (bot_target(a), handle(&team, &s(&a["bot_user_id"]), Some(&s(&a["app_id"])), &s(&a["token"])), SecretString::from(s(&a["token"]))))
        .collect();
    let before: u64 = sim.arrivals().iter().sum();
    let verdicts = futures::future::join_all(probes.iter().map(|(t, h, v)| p.verify_dead(t, h, Some(v)))).await;
    assert!(verdicts.iter().all(|v| matches!(v, Verdict::Alive(_))), "{verdicts:?}");
    let items = p.inventory().await.unwrap();
    assert!(items.len() >= 16);
    let arrivals = sim.arrivals();
    assert!(arrivals.iter().sum::<u64>() - before >= 18, "16 probes and the inventory's calls arrived");
    assert!(arrivals.iter().all(|n| *n <= 4), "more than the declared 4 requests in one second at the server: {arrivals:?}");

    // A storm: every request answered 429 with Slack's Retry-After. Unknown, and bounded.
    sim.rate(None);
    sim.faults(json!([{ "path": "^/api/", "answer": "429" }]));
    let (t, h, v) = &probes[0];
    let n0 = sim.log().len();
    let verdict = p.verify_dead(t, h, Some(v)).await;
    assert!(matches!(verdict, Verdict::Unknown(_)), "{verdict:?}");
    let k = Delivered { value: v.clone(), fields: h.clone() };
    assert!(p.retire_with(t, h, Some(&k)).await.is_err(), "a 429 storm is not a revocation");
    let sent = sim.log().len() - n0;
    assert!(sent <= 6, "one probe and one call of at most 5 attempts (the default retry policy), not {sent}");
    sim.faults(json!([]));
    assert_eq!(sim.state()["tokens"].as_array().unwrap().iter().filter(|t| t["revoked"] == true).count(), 0);
}

// ---- end to end, through the binary, with a Vault store

fn playbook_head(sim: &Sim, rotating: &[(String, String, String)]) -> String {
    let mut apps = String::new();
    for (app, client_id, var) in rotating {
        apps.push_str(&format!("      - {{ app_id: {app}, client_id: \"{client_id}\", client_secret: \"${{env:{var}}}\" }}\n"));
    }
    let apps = if apps.is_empty() { String::new() } else { format!("    rotating_apps:\n{apps}") };
    format!(
        "version: 1
providers:
  slack:
    kind: slack
    api_url: {}
    token: ${{env:SLACK_TOKEN}}
{apps}  bao:
    kind: vault
    address: ${{env:VAULT_ADDR}}
    auth: {{ method: token, token: \"${{env:VAULT_TOKEN}}\" }}
defaults:
  owner: chatops
  verify: {{ attempts: 2, interval: 200ms }}
credentials:
",
        sim.base
    )
}

fn token_rec(sim: &Sim, id: &Value) -> Value {
    sim.state()["tokens"].as_array().unwrap().iter().find(|t| &t["id"] == id).cloned().unwrap_or(Value::Null)
}

fn output(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

fn no_secret_in(text: &str, secrets: &[&str]) {
    for v in secrets {
        assert!(!text.contains(v), "a secret value in keysweep's output");
    }
}

fn kv_path(what: &str) -> String {
    format!("slack/{what}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

#[test]
fn a_bot_token_and_a_leaked_user_token_are_revoked_and_proven_dead_end_to_end() {
    let sim = sim::start("slack");
    let b = common::bao();
    let seeded = seed(
        &sim,
        json!({ "users": [{ "name": "leaky-dev" }], "apps": [
            { "name": "pagerduty-bot", "scopes": ["chat:write"] }, { "name": "unrelated-bot", "scopes": ["chat:write"] } ] }),
    );
    let pd = seeded.app("pagerduty-bot");
    let dev = seeded.user("leaky-dev");
    let path = kv_path("pagerduty");
    b.kv_put(&path, json!({ "value": s(&pd["token"]) }));
    let dir = tempfile::tempdir().unwrap();
    let pb = dir.path().join("slack.yaml");
    std::fs::write(
        &pb,
        format!(
            "{}  - id: pagerduty-slack-bot
    provider: slack
    action: revoke
    target: {{ kind: slack_token, token_type: bot, user_id: {}, app_id: {} }}
    deliver_to: [{{ provider: bao, path: \"{path}\" }}]
  - id: leaked-dev-token
    provider: slack
    action: revoke
    target: {{ kind: slack_token, token_type: user, user_id: {}, token: \"${{env:LEAKED_SLACK_TOKEN}}\" }}
",
            playbook_head(&sim, &[]),
            s(&pd["bot_user_id"]),
            s(&pd["app_id"]),
            s(&dev["id"])
        ),
    )
    .unwrap();
    let state_dir = dir.path().join("state");
    let out = common::keysweep(&state_dir)
        .env("SLACK_TOKEN", &seeded.admin)
        .env("LEAKED_SLACK_TOKEN", s(&dev["token"]))
        .args(["run", pb.to_str().unwrap()])
        .output()
        .unwrap();
    let text = output(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    // Slack's own view: both revoked by auth.revoke, the bot user deactivated, nothing else touched.
    let bot = token_rec(&sim, &pd["token_id"]);
    assert_eq!((bot["revoked"].as_bool(), bot["revoked_by"].as_str()), (Some(true), Some("auth.revoke")), "{bot}");
    let user = token_rec(&sim, &dev["token_id"]);
    assert_eq!((user["revoked"].as_bool(), user["revoked_by"].as_str()), (Some(true), Some("auth.revoke")), "{user}");
    let st = sim.state();
    let bot_user = st["users"].as_array().unwrap().iter().find(|u| u["id"] == pd["bot_user_id"]).unwrap();
    assert_eq!(bot_user["deleted"], true);
    assert_eq!(token_rec(&sim, &seeded.app("unrelated-bot")["token_id"])["revoked"], false);
    assert_eq!(token_rec(&sim, &seeded.user("keysweep-admin")["token_id"])["revoked"], false);
    let report = common::report_json(&state_dir);
    let rows = report["rows"].as_array().unwrap();
    assert!(rows.iter().all(|r| r["outcome"] == "revoked"), "{report}");
    assert!(rows.iter().all(|r| r["evidence"].as_str().unwrap_or_default().contains("token_revoked")), "{report}");
    no_secret_in(&text, &[&s(&pd["token"]), &s(&dev["token"]), &seeded.admin]);
}

#[test]
fn a_user_token_is_reissued_by_a_person_then_revoked_and_proven_dead_end_to_end() {
    let sim = sim::start("slack");
    let b = common::bao();
    let seeded = seed(&sim, json!({ "users": [{ "name": "svc-moveworks" }, { "name": "someone-else", "admin": true }] }));
    let svc = seeded.user("svc-moveworks");
    let old = s(&svc["token"]);
    let path = kv_path("moveworks");
    // Stored as a person would first store it: the value alone, no keysweep fields.
    b.kv_put(&path, json!({ "value": old }));
    let dir = tempfile::tempdir().unwrap();
    let pb = dir.path().join("slack.yaml");
    std::fs::write(
        &pb,
        format!(
            "{}  - id: moveworks-slack
    provider: slack
    target: {{ kind: slack_token, token_type: user, user_id: {} }}
    deliver_to: [{{ provider: bao, path: \"{path}\" }}]
    manual: |
      Sign in to Slack as svc-moveworks, reinstall the Moveworks app (OAuth & Permissions) and copy the User OAuth Token.
",
            playbook_head(&sim, &[]),
            s(&svc["id"])
        ),
    )
    .unwrap();
    let state_dir = dir.path().join("state");
    let ks = || {
        let mut c = common::keysweep(&state_dir);
        c.env("SLACK_TOKEN", &seeded.admin);
        c
    };
    let run = || {
        let out = ks().args(["run", pb.to_str().unwrap()]).output().unwrap();
        (out.status.code(), output(&out))
    };

    // Run 1: awaiting a human, nothing changed.
    let (code, text) = run();
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("AWAITING A HUMAN") && text.contains("reinstall the Moveworks app"), "{text}");
    assert_eq!(token_rec(&sim, &svc["token_id"])["revoked"], false);

    // Another person's token (an admin's: wider) is refused; so is the old one again.
    let other = s(&seeded.user("someone-else")["token"]);
    common::supply(ks(), &pb, "moveworks-slack", &other, &[]);
    let (code, text) = run();
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("a replacement never acts as another identity"), "{text}");
    common::supply(ks(), &pb, "moveworks-slack", &old, &[]);
    let (code, text) = run();
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("not a re-issued one"), "{text}");
    assert_eq!(token_rec(&sim, &svc["token_id"])["revoked"], false, "nothing is revoked for a wrong replacement");

    // The person re-issues it in Slack and supplies it.
    let issued = sim.admin("POST", "issue_token", Some(json!({ "user": "svc-moveworks" })));
    let new = s(&issued["token"]);
    common::canary(&new);
    common::supply(ks(), &pb, "moveworks-slack", &new, &[]);
    assert_eq!(b.kv_get(&path).unwrap()["value"], old, "supply stages; consumers still read the old value");
    let (code, text) = run();
    assert_eq!(code, Some(0), "{text}");
    let old_rec = token_rec(&sim, &svc["token_id"]);
    assert_eq!((old_rec["revoked"].as_bool(), old_rec["revoked_by"].as_str()), (Some(true), Some("auth.revoke")), "{old_rec}");
    assert_eq!(token_rec(&sim, &issued["token_id"])["revoked"], false);
    let cur = b.kv_get(&path).unwrap();
    assert_eq!(cur["value"], new);
    assert_eq!((cur["user_id"].as_str(), cur["token_fp"].as_str()), (Some(s(&svc["id"]).as_str()), Some(fingerprint(&new).as_str())));
    let report = common::report_json(&state_dir);
    assert_eq!(report["rows"][0]["outcome"], "rotated", "{report}");
    no_secret_in(&text, &[&old, &new, &other, &seeded.admin]);
}

/// A workspace with one rotating app, its tokens in Vault as a person first stores them.
fn rotating_estate(sim: &Sim, grace: u32) -> (Seeded, Value, String, tempfile::TempDir, std::path::PathBuf) {
    let seeded = seed(sim, json!({ "refresh_grace_seconds": grace, "apps": [{ "name": "deploy-bot", "rotation": true, "scopes": ["chat:write"] }] }));
    let app = seeded.app("deploy-bot");
    let path = kv_path("deploy-bot");
    common::bao().kv_put(&path, json!({ "value": s(&app["token"]), "refresh_token": s(&app["refresh_token"]) }));
    let dir = tempfile::tempdir().unwrap();
    let pb = dir.path().join("slack.yaml");
    std::fs::write(
        &pb,
        format!(
            "{}  - id: deploy-bot
    provider: slack
    target: {{ kind: slack_rotating_token, token_type: bot, app_id: {}, user_id: {} }}
    deliver_to: [{{ provider: bao, path: \"{path}\" }}]
",
            playbook_head(sim, &[(s(&app["app_id"]), s(&app["client_id"]), "DEPLOY_BOT_CLIENT_SECRET".into())]),
            s(&app["app_id"]),
            s(&app["bot_user_id"])
        ),
    )
    .unwrap();
    (seeded, app, path, dir, pb)
}

fn run_rotating(seeded: &Seeded, app: &Value, pb: &std::path::Path, state_dir: &std::path::Path) -> (Option<i32>, String) {
    let out = common::keysweep(state_dir)
        .env("SLACK_TOKEN", &seeded.admin)
        .env("DEPLOY_BOT_CLIENT_SECRET", s(&app["client_secret"]))
        .args(["run", pb.to_str().unwrap()])
        .output()
        .unwrap();
    (out.status.code(), output(&out))
}

fn refresh_calls(sim: &Sim) -> Vec<Value> {
    sim.state()["oauth_refresh_calls"].as_array().cloned().unwrap_or_default()
}

fn refresh_rec(sim: &Sim, id: &Value) -> Value {
    sim.state()["refresh_tokens"].as_array().unwrap().iter().find(|t| &t["id"] == id).cloned().unwrap_or(Value::Null)
}

#[test]
fn a_rotating_apps_tokens_are_refreshed_twice_and_a_lost_refresh_is_reported_end_to_end() {
    let sim = sim::start("slack");
    let b = common::bao();
    let (seeded, app, path, dir, pb) = rotating_estate(&sim, 0);
    let state_dir = dir.path().join("state");
    let mut secrets = vec![s(&app["token"]), s(&app["refresh_token"]), s(&app["client_secret"]), seeded.admin.clone()];

    // Two rotations in a row: the second refreshes with the refresh token the first stored.
    let mut previous = (app["token_id"].clone(), app["refresh_token_id"].clone());
    for round in 1..=2 {
        let (code, text) = run_rotating(&seeded, &app, &pb, &state_dir);
        assert_eq!(code, Some(0), "round {round}: {text}");
        let calls = refresh_calls(&sim);
        assert_eq!(calls.len(), round, "one refresh per rotation: {calls:?}");
        let call = calls.last().unwrap();
        assert_eq!((call["result"].as_str(), &call["refresh_token_id"]), (Some("ok"), &previous.1), "refreshed with the stored refresh token");
        // Slack's own view: the old access token revoked by keysweep, the used refresh token spent, the new pair live.
        let old = token_rec(&sim, &previous.0);
        assert_eq!((old["revoked"].as_bool(), old["revoked_by"].as_str()), (Some(true), Some("auth.revoke")), "round {round}: {old}");
        assert_eq!(refresh_rec(&sim, &previous.1)["revoked"], true);
        let new = token_rec(&sim, &call["token_id"]);
        assert_eq!(new["revoked"], false, "{new}");
        assert_eq!(refresh_rec(&sim, &call["new_refresh_token_id"])["used"], false);
        // The store holds the new pair: the access token works, as its bot.
        let cur = b.kv_get(&path).unwrap();
        let (value, refresh) = (s(&cur["value"]), s(&cur["refresh_token"]));
        secrets.extend([value.clone(), refresh.clone()]);
        let (c, who) = sim.call("POST", "/api/auth.test", &[("Authorization", &format!("Bearer {value}"))], None);
        assert_eq!((c, who["user_id"].as_str()), (200, Some(s(&app["bot_user_id"]).as_str())), "{who}");
        assert_eq!(cur["token_fp"].as_str(), Some(fingerprint(&value).as_str()));
        let report = common::report_json(&state_dir);
        assert_eq!(report["rows"][0]["outcome"], "rotated", "{report}");
        let secret_refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
        no_secret_in(&text, &secret_refs);
        previous = (call["token_id"].clone(), call["new_refresh_token_id"].clone());
    }

    // The refresh reaches Slack and its answer is lost: with no grace, the
    // refresh token is spent for tokens keysweep never saw. Reported, and
    // the store and its access token are left as they were.
    let before = b.kv_get(&path).unwrap();
    sim.faults(json!([{ "path": "^/api/oauth\\.v2\\.access$", "answer": "after_act", "times": 1 }]));
    let (code, text) = run_rotating(&seeded, &app, &pb, &state_dir);
    assert_eq!(code, Some(1), "{text}");
    let report = common::report_json(&state_dir);
    let row = &report["rows"][0];
    assert_eq!((row["outcome"].as_str(), row["step"].as_str()), (Some("failed"), Some("stage")), "{report}");
    let reason = row["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("answer was lost") && reason.contains("reinstall the app"), "{reason}");
    assert_eq!(refresh_rec(&sim, &previous.1)["revoked"], true, "Slack did spend it");
    assert_eq!(b.kv_get(&path).unwrap(), before, "nothing stored from a lost answer");
    assert_eq!(token_rec(&sim, &previous.0)["revoked"], false, "the access token in service still works");
    let secret_refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    no_secret_in(&text, &secret_refs);
    // Access and refresh tokens, client secret: in no journal, report or file
    // of the state directory, raw or encoded.
    let scanned = common::canary::Canary::new(&secrets).assert_clean(&[&state_dir], &[]);
    assert!(scanned.files >= 2 && scanned.secrets >= 8, "the journal and the reports were scanned: {scanned:?}");
}

#[test]
fn inside_slacks_grace_a_lost_refresh_is_retried_and_rotated() {
    let sim = sim::start("slack");
    let (seeded, app, path, dir, pb) = rotating_estate(&sim, 30);
    sim.faults(json!([{ "path": "^/api/oauth\\.v2\\.access$", "answer": "after_act", "times": 1 }]));
    let (code, text) = run_rotating(&seeded, &app, &pb, &dir.path().join("state"));
    assert_eq!(code, Some(0), "{text}");
    let calls = refresh_calls(&sim);
    assert_eq!(calls.len(), 2, "the lost refresh and its retry: {calls:?}");
    assert!(calls.iter().all(|c| c["refresh_token_id"] == app["refresh_token_id"]));
    let cur = common::bao().kv_get(&path).unwrap();
    let (c, who) = sim.call("POST", "/api/auth.test", &[("Authorization", &format!("Bearer {}", s(&cur["value"])))], None);
    assert_eq!((c, who["ok"].as_bool()), (200, Some(true)));
    assert_eq!(token_rec(&sim, &calls[1]["token_id"])["revoked"], false, "the retry's tokens are the stored ones");
    assert_eq!(token_rec(&sim, &app["token_id"])["revoked"], true, "the old access token is dead");
}

#[test]
fn a_refreshed_pair_left_pending_is_adopted_by_a_later_run_never_withdrawn() {
    let sim = sim::start("slack");
    let b = common::bao();
    let (seeded, app, path, dir, pb) = rotating_estate(&sim, 0);
    // Slack cannot say whether the new token works (503 on auth.test): run 1
    // stops at test. (The first auth.test, keysweep's own login at connect,
    // gets Slack's answer for it.)
    let admin_ok = json!({ "status": 200, "content_type": "application/json",
        "body": { "ok": true, "team_id": seeded.team(), "user_id": seeded.user("keysweep-admin")["id"], "user": "keysweep-admin", "team": "acme" } });
    sim.faults(json!([
        { "path": "^/api/auth\\.test$", "times": 1, "answer": admin_ok },
        { "path": "^/api/auth\\.test$", "answer": "service_unavailable" },
    ]));
    let (code, text) = run_rotating(&seeded, &app, &pb, &dir.path().join("state-1"));
    assert_eq!(code, Some(1), "{text}");
    let report = common::report_json(&dir.path().join("state-1"));
    assert_eq!((report["rows"][0]["outcome"].as_str(), report["rows"][0]["step"].as_str()), (Some("failed"), Some("test")), "{report}");
    let calls = refresh_calls(&sim);
    assert_eq!(calls.len(), 1);
    assert_eq!(refresh_rec(&sim, &app["refresh_token_id"])["revoked"], true, "the refresh spent the stored refresh token");
    assert_eq!(b.kv_get(&path).unwrap()["value"], app["token"], "consumers still read the old access token");

    // Run 2, on another machine (no journal): the pending pair is the only way
    // on. It is adopted and finished, not withdrawn and refreshed again.
    sim.faults(json!([]));
    let (code, text) = run_rotating(&seeded, &app, &pb, &dir.path().join("state-2"));
    assert_eq!(code, Some(0), "{text}");
    let calls = refresh_calls(&sim);
    assert_eq!(calls.len(), 1, "no second refresh: {calls:?}");
    let cur = b.kv_get(&path).unwrap();
    let (c, who) = sim.call("POST", "/api/auth.test", &[("Authorization", &format!("Bearer {}", s(&cur["value"])))], None);
    assert_eq!((c, who["ok"].as_bool()), (200, Some(true)), "{who}");
    assert_eq!(token_rec(&sim, &calls[0]["token_id"])["revoked"], false, "run 1's token is in service");
    assert_eq!(refresh_rec(&sim, &calls[0]["new_refresh_token_id"])["used"], false, "and its refresh token is stored, unspent");
    assert_eq!(token_rec(&sim, &app["token_id"])["revoked"], true, "the old access token is dead");
    assert_eq!(common::report_json(&dir.path().join("state-2"))["rows"][0]["outcome"], "rotated");
}

#[test]
fn keysweeps_own_slack_login_is_reissued_worked_last_and_the_session_moves_end_to_end() {
    let sim = sim::start("slack");
    let b = common::bao();
    let seeded = seed(&sim, json!({ "apps": [{ "name": "old-integration", "scopes": ["chat:write"] }] }));
    let admin = seeded.user("keysweep-admin");
    let bot = seeded.app("old-integration");
    // keysweep logs in with the token the store holds, stored as a person first stores it.
    let path = kv_path("keysweep");
    b.kv_put(&path, json!({ "value": seeded.admin }));
    let dir = tempfile::tempdir().unwrap();
    let pb = dir.path().join("slack.yaml");
    let head = playbook_head(&sim, &[]).replace("${env:SLACK_TOKEN}", &format!("\"${{store:bao:secret/{path}#value}}\""));
    std::fs::write(
        &pb,
        format!(
            "{head}  - id: slack/keysweep
    provider: slack
    target: {{ kind: slack_token, token_type: user, user_id: {} }}
    deliver_to: [{{ provider: bao, path: \"{path}\" }}]
    manual: |
      Sign in to Slack as keysweep-admin and re-authorize the keysweep app; copy the User OAuth Token.
  - id: old-integration
    provider: slack
    action: revoke
    target: {{ kind: slack_token, token_type: bot, user_id: {}, app_id: {}, token: \"${{env:OLD_BOT_TOKEN}}\" }}
",
            s(&admin["id"]),
            s(&bot["bot_user_id"]),
            s(&bot["app_id"])
        ),
    )
    .unwrap();
    let state_dir = dir.path().join("state");
    let ks = || {
        let mut c = common::keysweep(&state_dir);
        c.env("OLD_BOT_TOKEN", s(&bot["token"]));
        c
    };
    let run = || {
        let out = ks().args(["run", pb.to_str().unwrap()]).output().unwrap();
        (out.status.code(), output(&out))
    };
    let (code, text) = run();
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("AWAITING A HUMAN"), "{text}");
    assert_eq!(token_rec(&sim, &bot["token_id"])["revoked"], true, "the other credential is done meanwhile");

    let issued = sim.admin("POST", "issue_token", Some(json!({ "user": "keysweep-admin" })));
    let new = s(&issued["token"]);
    common::canary(&new);
    common::supply(ks(), &pb, "slack/keysweep", &new, &[]);
    let (code, text) = run();
    assert_eq!(code, Some(0), "{text}");
    // Slack's own view: keysweep's old token revoked (after its session moved: the run finished), the new one live.
    let old_rec = token_rec(&sim, &admin["token_id"]);
    assert_eq!((old_rec["revoked"].as_bool(), old_rec["revoked_by"].as_str()), (Some(true), Some("auth.revoke")), "{old_rec}");
    assert_eq!(token_rec(&sim, &issued["token_id"])["revoked"], false);
    assert_eq!(b.kv_get(&path).unwrap()["value"], new);
    // A later command logs in with the new token, from the store.
    let out = ks().args(["discover", pb.to_str().unwrap()]).output().unwrap();
    let text2 = output(&out);
    assert!(!text2.contains("refused keysweep's own login") && out.status.code() != Some(3), "{text2}");
    no_secret_in(&(text + &text2), &[&seeded.admin, &new, &s(&bot["token"])]);
}

#[test]
fn discover_finds_unlisted_bot_and_program_tokens_and_drafts_entries_that_name_them() {
    let sim = sim::start("slack");
    let seeded = seed(&sim, json!({ "users": [{ "name": "svc-script" }], "apps": [{ "name": "forgotten-bot", "scopes": ["chat:write"] }] }));
    let script = seeded.user("svc-script");
    let (c, _) = sim.call(
        "POST",
        "/api/auth.test",
        &[("Authorization", &format!("Bearer {}", s(&script["token"]))), ("User-Agent", "Go-http-client/2.0")],
        None,
    );
    assert_eq!(c, 200);
    let bot = seeded.app("forgotten-bot");
    let dir = tempfile::tempdir().unwrap();
    let pb = dir.path().join("slack.yaml");
    std::fs::write(&pb, format!("{}  []\n", playbook_head(&sim, &[])).replace("credentials:\n  []", "credentials: []")).unwrap();
    let drafts = dir.path().join("drafts.yaml");
    let out = common::keysweep(&dir.path().join("state"))
        .env("SLACK_TOKEN", &seeded.admin)
        .args(["discover", pb.to_str().unwrap(), "--emit", drafts.to_str().unwrap()])
        .output()
        .unwrap();
    let text = output(&out);
    assert_eq!(out.status.code(), Some(1), "unlisted tokens: {text}");
    let d = std::fs::read_to_string(&drafts).unwrap();
    let bot_draft = format!("kind: slack_token, user_id: \"{}\", token_type: bot, app_id: \"{}\"", s(&bot["bot_user_id"]), s(&bot["app_id"]));
    assert!(d.contains(&bot_draft), "{d}");
    let user_draft = format!("kind: slack_token, user_id: \"{}\", token_type: user", s(&script["id"]));
    assert!(d.contains(&user_draft), "{d}");
    assert!(!d.contains(&format!("user_id: \"{}\"", s(&seeded.user("keysweep-admin")["id"]))), "keysweep's own login is never drafted: {d}");
    no_secret_in(&(text + &d), &[&seeded.admin, &s(&script["token"]), &s(&bot["token"])]);
}
