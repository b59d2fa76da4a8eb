//! Faults of the SaaS providers that only show between processes, through the
//! real binary, with OpenBao as the store and the vendor simulators as the
//! owning systems. Every outcome is checked in the simulator's own state and
//! request log and in OpenBao (from separate clients), never in keysweep's
//! counters:
//!
//! - two runs on two machines (separate state directories) racing one Okta
//!   client secret and one Slack rotating token, one of them held inside its
//!   mint by a delayed answer so the other starts while it holds the claim:
//!   one mint (one refresh) in all, one run reports the credential worked,
//!   the other a gap naming it, and exactly one secret lives: the store's;
//! - `keysweep supply` while a run works the same credential (held between
//!   stage and promote): refused, nothing staged over the run's pending
//!   value; accepted once the run has ended;
//! - an Okta client-secret mint whose answer is lost after Okta created the
//!   secret: never `rotated`, nobody locked out, and the orphan retired — by
//!   the run itself when Okta can still be asked, else by a later run, with
//!   or without the state directory — so one minted secret survives.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use common::canary::Canary;
use common::sim::{self, Sim};

/// How long a delayed request holds a run inside one step. Long enough for
/// another keysweep process to start, connect and decide on a loaded machine.
const HOLD_SECS: f64 = 4.0;

// ---------------------------------------------------------------- helpers

/// A keysweep process this test started; killed (by its own handle) if the
/// test fails before it ends.
struct Running(Option<Child>);

impl Running {
    fn spawn(mut cmd: Command) -> Running {
        Running(Some(cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start keysweep")))
    }
    fn still_running(&mut self) -> bool {
        self.0.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }
    fn wait(mut self) -> Output {
        self.0.take().unwrap().wait_with_output().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn text(o: &Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}")).to_string()
}

/// Polls `f` every 50 ms until it gives something, for at most `secs`.
fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A KV v2 entry's data, read as root from a separate client; its secret
/// field (`value`) is registered with the canary scan.
fn kv(path: &str) -> Option<Value> {
    let (st, b) = common::bao().call("GET", &format!("secret/data/{path}"), None);
    if st != 200 {
        return None;
    }
    let d = b["data"]["data"].clone();
    if let Some(v) = d["value"].as_str() {
        common::canary(v);
    }
    Some(d)
}

fn kv_version(path: &str) -> u64 {
    common::bao().kv_meta(path).and_then(|m| m["current_version"].as_u64()).unwrap_or(0)
}

/// The claim kept beside the pending value of the credential stored at `path`.
fn claim(path: &str) -> Option<Value> {
    let d = kv(&format!("keysweep-pending/{path}"))?;
    serde_json::from_str(d["keysweep_claim"].as_str()?).ok()
}

fn unique(what: &str) -> String {
    format!("{what}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

fn row<'a>(r: &'a Value, id: &str) -> &'a Value {
    r["rows"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap_or_else(|| panic!("{id} not in report: {r}"))
}

/// Asserts that no secret value appears in the runs' outputs or in any file
/// under the state directories (raw, URL-encoded, JSON-escaped or base64).
fn assert_no_secret(secrets: &[String], states: &[&Path], outs: &[&Output]) {
    let mut captured: Vec<(String, &[u8])> = vec![];
    for (i, o) in outs.iter().enumerate() {
        captured.push((format!("run {i} stdout"), &o.stdout));
        captured.push((format!("run {i} stderr"), &o.stderr));
    }
    let named: Vec<(&str, &[u8])> = captured.iter().map(|(n, b)| (n.as_str(), *b)).collect();
    let existing: Vec<&Path> = states.iter().copied().filter(|p| p.exists()).collect();
    let scanned = Canary::new(secrets).assert_clean(&existing, &named);
    assert!(scanned.files >= existing.len(), "the journal and the reports were scanned: {scanned:?}");
}

// ------------------------------------------------------------------ Okta

/// keysweep's own Okta login: a super admin's API token.
fn okta_admin(sim: &Sim) -> String {
    let out = sim.admin(
        "POST",
        "seed",
        Some(json!({ "users": [{ "login": "keysweep-admin@example.com", "roles": ["SUPER_ADMIN"] }],
                      "tokens": [{ "user": "keysweep-admin@example.com", "name": "keysweep" }] })),
    );
    let v = s(&out["tokens"][0]["value"]);
    common::canary(&v);
    v
}

/// A service app with one client secret: (app id, secret id, secret).
fn okta_app(sim: &Sim, label: &str) -> (String, String, String) {
    let out = sim.admin("POST", "seed", Some(json!({ "apps": [{ "label": label, "secrets": 1 }] })));
    let a = &out["apps"][0];
    let v = s(&a["secrets"][0]["client_secret"]);
    common::canary(&v);
    (s(&a["id"]), s(&a["secrets"][0]["id"]), v)
}

fn okta_playbook(dir: &Path, sim: &Sim, creds: &str) -> PathBuf {
    okta_playbook_with(dir, sim, "", creds)
}

/// With `limits` (a line such as `    limits: { max_attempts: 2 }`) on the Okta provider.
fn okta_playbook_with(dir: &Path, sim: &Sim, limits: &str, creds: &str) -> PathBuf {
    let p = dir.join("okta.yaml");
    std::fs::write(
        &p,
        format!(
            "version: 1
providers:
  okta:
    kind: okta
    org_url: {}
    api_token: ${{env:OKTA_API_TOKEN}}
{limits}  bao:
    kind: vault
    address: ${{env:VAULT_ADDR}}
    auth: {{ method: token, token: \"${{env:VAULT_TOKEN}}\" }}
defaults:
  owner: identity-team
  verify: {{ attempts: 3, interval: 200ms }}
credentials:
{creds}",
            sim.base
        ),
    )
    .unwrap();
    p
}

fn client_secret_entry(id: &str, app: &str, path: &str) -> String {
    format!(
        "  - id: {id}
    provider: okta
    target: {{ kind: okta_client_secret, app_id: {app}, scope: okta.read }}
    deliver_to: [{{ provider: bao, path: \"{path}\" }}]
"
    )
}

/// The app's client secrets as the simulator holds them (id, status, created).
fn okta_secrets(sim: &Sim, app: &str) -> Vec<Value> {
    let st = sim.state();
    let a = st["apps"].as_array().unwrap().iter().find(|a| a["id"] == app).cloned().unwrap_or_else(|| panic!("no app {app}"));
    a["secrets"].as_array().cloned().unwrap_or_default()
}

/// What Okta's token endpoint answers to `client_credentials` with this
/// secret: (status, `error` or "ok").
fn okta_token(sim: &Sim, app: &str, secret: &str) -> (u16, String) {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{app}:{secret}"));
    let (code, body) = sim.call(
        "POST",
        "/oauth2/default/v1/token",
        &[("Authorization", &format!("Basic {basic}")), ("Content-Type", "application/x-www-form-urlencoded")],
        Some("grant_type=client_credentials&scope=okta.read"),
    );
    if let Some(at) = body["access_token"].as_str() {
        common::canary(at);
        return (code, "ok".into());
    }
    (code, body["error"].as_str().unwrap_or("?").to_string())
}

/// Requests the simulator logged with this method on exactly this path.
fn logged(sim: &Sim, method: &str, path: &str) -> Vec<Value> {
    sim.log().into_iter().filter(|e| e["method"] == method && e["path"] == path).collect()
}

fn okta_run(state: &Path, admin: &str, pb: &Path) -> Command {
    let mut c = common::keysweep(state);
    c.env("OKTA_API_TOKEN", admin).args(["run", pb.to_str().unwrap()]);
    c
}

/// The end state every Okta client-secret test wants, from Okta's and
/// OpenBao's own views: one secret, active, the one the store holds, which
/// works; the old one gone and refused. Returns the new secret value.
fn assert_one_live_client_secret(sim: &Sim, app: &str, path: &str, old_sid: &str, old: &str, what: &str) -> String {
    let secrets = okta_secrets(sim, app);
    assert_eq!(secrets.len(), 1, "{what}: exactly one client secret survives: {secrets:?}");
    assert_eq!(secrets[0]["status"], "ACTIVE", "{what}: {secrets:?}");
    assert_ne!(secrets[0]["id"], old_sid, "{what}: the old secret is the one left");
    let cur = kv(path).unwrap();
    assert_eq!(cur["secret_id"], secrets[0]["id"], "{what}: the surviving secret is not the store's current one");
    let new = s(&cur["value"]);
    assert_ne!(new, old, "{what}: the store still holds the old secret");
    assert_eq!(okta_token(sim, app, &new), (200, "ok".to_string()), "{what}: consumers locked out: the store's secret is refused");
    assert_eq!(okta_token(sim, app, old), (401, "invalid_client".to_string()), "{what}: the old secret still works");
    new
}

/// Two keysweep runs on two machines (separate state directories, one
/// OpenBao, one Okta org) rotate the same client secret at once. The first to
/// mint is held inside the mint (Okta answers the create 4 s late), so the
/// other run meets its claim: either it starts only once the claim says
/// `minting` ("gated"), or both start together and race for the claim
/// itself ("together", the check-and-set decides). Either way Okta sees one
/// create; one run rotates (exit 0), the other reports a gap naming the
/// holder (exit non-zero) and touched nothing at Okta; and exactly one secret
/// lives, the store's.
#[test]
fn two_runs_on_two_machines_mint_one_okta_client_secret() {
    let sim = sim::start("okta");
    let admin = okta_admin(&sim);
    for gated in [true, false] {
        let mode = if gated { "gated" } else { "together" };
        let (app, old_sid, old) = okta_app(&sim, &unique("race-app"));
        let path = format!("okta/{}", unique("race"));
        common::bao().kv_put(&path, json!({ "value": old, "secret_id": old_sid, "client_id": app }));
        let id = "okta-race";
        let dir = tempfile::tempdir().unwrap();
        let pb = okta_playbook(dir.path(), &sim, &client_secret_entry(id, &app, &path));
        let create = format!("/api/v1/apps/{app}/credentials/secrets");
        sim.faults(json!([{ "method": "POST", "path": format!("^{create}$"), "delay": HOLD_SECS, "times": 1 }]));
        let states = [dir.path().join("machine-a"), dir.path().join("machine-b")];

        let mut a = Running::spawn(okta_run(&states[0], &admin, &pb));
        // Gated: A holds the claim and is inside its mint; only now does B start.
        let held = gated.then(|| wait_for(&format!("{mode}: run A's `minting` claim"), 20, || claim(&path).filter(|c| c["phase"] == "minting")));
        let ob = Running::spawn(okta_run(&states[1], &admin, &pb)).wait();
        if gated {
            assert!(a.still_running(), "{mode}: run B ended after run A: the two never overlapped\n{}", text(&ob));
        }
        let oa = a.wait();
        let outs = [&oa, &ob];
        let reports = [common::report_json(&states[0]), common::report_json(&states[1])];
        let rows = [row(&reports[0], id), row(&reports[1], id)];
        let winner = rows
            .iter()
            .position(|r| r["outcome"] == "rotated")
            .unwrap_or_else(|| panic!("{mode}: neither run rotated it:\nA: {}\nB: {}\n{}\n{}", rows[0], rows[1], text(&oa), text(&ob)));
        let loser = 1 - winner;
        if gated {
            assert_eq!(winner, 0, "{mode}: run A held the claim, yet B rotated: {}", rows[1]);
            assert_eq!(held.as_ref().map(|h| s(&h["nonce"])), Some(format!("{}/{id}", s(&reports[0]["run_id"]))), "{mode}");
        }
        // The other run: a gap at stage naming the holder, and a non-zero exit.
        let lr = rows[loser];
        assert_eq!((lr["outcome"].as_str(), lr["step"].as_str()), (Some("failed"), Some("stage")), "{mode}: {lr}");
        let reason = s(&lr["reason"]);
        let holder = format!("held by run `{}`", s(&reports[winner]["run_id"]));
        assert!(reason.contains(&holder) && reason.contains(&keysweep::provider::this_host()), "{mode}: the gap does not name the holder: {reason}");
        assert_eq!(outs[winner].status.code(), Some(0), "{mode}: {}", text(outs[winner]));
        assert_eq!(outs[loser].status.code(), Some(1), "{mode}: a gap must exit non-zero: {}", text(outs[loser]));

        // Okta's own record: one create in all (held by the delay: the
        // winner's), and only the old secret deactivated and deleted.
        let creates = logged(&sim, "POST", &create);
        assert_eq!(creates.len(), 1, "{mode}: Okta saw {} client-secret creates for one rotation", creates.len());
        assert_eq!((creates[0]["status"].as_u64(), creates[0]["delayed"].as_f64()), (Some(201), Some(HOLD_SECS)), "{mode}: {}", creates[0]);
        let deactivated: Vec<String> = sim
            .log()
            .iter()
            .filter(|e| e["method"] == "POST" && s(&e["path"]).starts_with(&create) && s(&e["path"]).ends_with("/lifecycle/deactivate"))
            .map(|e| s(&e["path"]))
            .collect();
        assert_eq!(deactivated, vec![format!("{create}/{old_sid}/lifecycle/deactivate")], "{mode}");
        let deleted: Vec<Value> = sim.log().into_iter().filter(|e| e["method"] == "DELETE" && s(&e["path"]).starts_with(&create)).collect();
        assert_eq!(deleted.len(), 1, "{mode}: {deleted:?}");
        assert_eq!(deleted[0]["path"], format!("{create}/{old_sid}"), "{mode}");

        let new = assert_one_live_client_secret(&sim, &app, &path, &old_sid, &old, mode);
        assert_eq!(kv_version(&path), 2, "{mode}: one rotation writes one version");
        assert!(kv(&format!("keysweep-pending/{path}")).is_none(), "{mode}: the claim was not released");
        let state_paths: Vec<&Path> = states.iter().map(PathBuf::as_path).collect();
        assert_no_secret(&[admin.clone(), old.clone(), new], &state_paths, &outs);
    }
}

// ----------------------------------------------------------------- Slack

/// The same race on a Slack app with token rotation: there a second mint is
/// worse than a second secret — a refresh spends the stored refresh token,
/// and the loser's refresh would spend the winner's. The winner's refresh is
/// held 4 s; the other run meets its claim. Slack sees one refresh; the old
/// access token is revoked, the store's pair works.
#[test]
fn two_runs_on_two_machines_refresh_a_slack_rotating_token_once() {
    let sim = sim::start("slack");
    let out = sim.admin(
        "POST",
        "seed",
        Some(json!({ "refresh_grace_seconds": 0, "users": [{ "name": "keysweep-admin", "admin": true }],
                      "apps": [{ "name": "deploy-bot", "rotation": true, "scopes": ["chat:write"] }] })),
    );
    let admin = s(&out["users"][0]["token"]);
    let app = out["apps"][0].clone();
    let mut secrets = vec![admin.clone(), s(&app["token"]), s(&app["refresh_token"]), s(&app["client_secret"])];
    sim::canary_secrets(&out);
    let path = format!("slack/{}", unique("deploy-bot"));
    common::bao().kv_put(&path, json!({ "value": s(&app["token"]), "refresh_token": s(&app["refresh_token"]) }));
    let dir = tempfile::tempdir().unwrap();
    let pb = dir.path().join("slack.yaml");
    std::fs::write(
        &pb,
        format!(
            "version: 1
providers:
  slack:
    kind: slack
    api_url: {}
    token: ${{env:SLACK_TOKEN}}
    rotating_apps:
      - {{ app_id: {}, client_id: \"{}\", client_secret: \"${{env:DEPLOY_BOT_CLIENT_SECRET}}\" }}
  bao:
    kind: vault
    address: ${{env:VAULT_ADDR}}
    auth: {{ method: token, token: \"${{env:VAULT_TOKEN}}\" }}
defaults:
  owner: chatops
  verify: {{ attempts: 2, interval: 200ms }}
credentials:
  - id: deploy-bot
    provider: slack
    target: {{ kind: slack_rotating_token, token_type: bot, app_id: {}, user_id: {} }}
    deliver_to: [{{ provider: bao, path: \"{path}\" }}]
",
            sim.base,
            s(&app["app_id"]),
            s(&app["client_id"]),
            s(&app["app_id"]),
            s(&app["bot_user_id"])
        ),
    )
    .unwrap();
    sim.faults(json!([{ "path": "^/api/oauth\\.v2\\.access$", "delay": HOLD_SECS, "times": 1 }]));
    let run = |state: &Path| {
        let mut c = common::keysweep(state);
        c.env("SLACK_TOKEN", &admin).env("DEPLOY_BOT_CLIENT_SECRET", s(&app["client_secret"])).args(["run", pb.to_str().unwrap()]);
        c
    };
    let states = [dir.path().join("machine-a"), dir.path().join("machine-b")];
    let mut a = Running::spawn(run(&states[0]));
    let held = wait_for("run A's `minting` claim", 20, || claim(&path).filter(|c| c["phase"] == "minting"));
    let ob = Running::spawn(run(&states[1])).wait();
    assert!(a.still_running(), "run B ended after run A: the two never overlapped\n{}", text(&ob));
    let oa = a.wait();
    let (ra, rb) = (common::report_json(&states[0]), common::report_json(&states[1]));
    assert_eq!(row(&ra, "deploy-bot")["outcome"], "rotated", "{}\n{}", row(&ra, "deploy-bot"), text(&oa));
    let lr = row(&rb, "deploy-bot");
    assert_eq!((lr["outcome"].as_str(), lr["step"].as_str()), (Some("failed"), Some("stage")), "{lr}");
    assert!(s(&lr["reason"]).contains(&format!("held by run `{}`", s(&ra["run_id"]))), "{lr}");
    assert_eq!(s(&held["nonce"]), format!("{}/deploy-bot", s(&ra["run_id"])));
    assert_eq!((oa.status.code(), ob.status.code()), (Some(0), Some(1)), "{}\n{}", text(&oa), text(&ob));

    // Slack's own record: one refresh, with the stored refresh token.
    let st = sim.state();
    let calls = st["oauth_refresh_calls"].as_array().cloned().unwrap_or_default();
    assert_eq!(calls.len(), 1, "Slack saw {} refreshes for one rotation: {calls:?}", calls.len());
    assert_eq!((calls[0]["result"].as_str(), &calls[0]["refresh_token_id"]), (Some("ok"), &app["refresh_token_id"]), "{calls:?}");
    let token = |id: &Value| st["tokens"].as_array().unwrap().iter().find(|t| &t["id"] == id).cloned().unwrap_or(Value::Null);
    let old = token(&app["token_id"]);
    assert_eq!((old["revoked"].as_bool(), old["revoked_by"].as_str()), (Some(true), Some("auth.revoke")), "{old}");
    assert_eq!(token(&calls[0]["token_id"])["revoked"], false, "the refreshed access token is in service");
    let cur = kv(&path).unwrap();
    let (value, refresh) = (s(&cur["value"]), s(&cur["refresh_token"]));
    common::canary(&refresh);
    let (c, who) = sim.call("POST", "/api/auth.test", &[("Authorization", &format!("Bearer {value}"))], None);
    assert_eq!((c, who["ok"].as_bool(), who["user_id"].as_str()), (200, Some(true), app["bot_user_id"].as_str()), "{who}");
    let (c, who) = sim.call("POST", "/api/auth.test", &[("Authorization", &format!("Bearer {}", s(&app["token"])))], None);
    assert_eq!((c, who["error"].as_str()), (200, Some("token_revoked")), "{who}");
    assert_eq!(kv_version(&path), 2, "one rotation writes one version");
    assert!(kv(&format!("keysweep-pending/{path}")).is_none(), "the claim was not released");
    secrets.extend([value, refresh]);
    assert_no_secret(&secrets, &[&states[0], &states[1]], &[&oa, &ob]);
}

// ---------------------------------------------------------------- supply

/// `keysweep supply` with `value` on standard input; returns its output.
fn supply(state: &Path, admin: &str, pb: &Path, id: &str, value: &str) -> Output {
    let mut child = common::keysweep(state)
        .env("OKTA_API_TOKEN", admin)
        .args(["supply", pb.to_str().unwrap(), id])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{value}\n").as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// A person supplies a re-issued Okta API token; a run works it and is held
/// between stage and promote (Okta answers its test of the new token 4 s
/// late), its claim and staged value in the pending entry. Meanwhile the
/// person supplies another token: the README promises `supply` "refuses
/// while a run works the credential". It must exit non-zero naming the run,
/// and leave the pending entry (the run's staged value) exactly as it was;
/// the run then promotes the value it tested. Once the run has ended, the
/// same supply is accepted and the next run rotates to it.
#[test]
fn supply_while_a_run_works_the_credential_is_refused_and_changes_nothing() {
    let sim = sim::start("okta");
    let admin = okta_admin(&sim);
    let out = sim.admin(
        "POST",
        "seed",
        Some(json!({ "users": [{ "login": "svc-moveworks@example.com", "roles": ["SUPER_ADMIN"] }],
                      "tokens": [{ "user": "svc-moveworks@example.com", "name": "moveworks" }] })),
    );
    let (old_id, old) = (s(&out["tokens"][0]["id"]), s(&out["tokens"][0]["value"]));
    common::canary(&old);
    let path = format!("okta/{}", unique("moveworks"));
    common::bao().kv_put(&path, json!({ "value": old, "token_id": old_id }));
    let dir = tempfile::tempdir().unwrap();
    let id = "moveworks";
    let pb = okta_playbook(
        dir.path(),
        &sim,
        &format!(
            "  - id: {id}
    provider: okta
    target: {{ kind: okta_api_token, token_id: {old_id}, user: svc-moveworks@example.com }}
    deliver_to: [{{ provider: bao, path: \"{path}\" }}]
    manual: Security › API › Tokens › Create token as svc-moveworks, name it moveworks.
"
        ),
    );
    let state = dir.path().join("state");
    let issue = || {
        let t = sim.admin("POST", "issue_token", Some(json!({ "user": "svc-moveworks@example.com", "name": "moveworks" })));
        common::canary(&s(&t["value"]));
        (s(&t["id"]), s(&t["value"]))
    };
    let token_state = |tid: &str| sim.state()["tokens"].as_array().unwrap().iter().find(|t| t["id"] == tid).cloned().unwrap_or(Value::Null);

    let (first_id, first) = issue();
    let o0 = supply(&state, &admin, &pb, id, &first);
    assert_eq!(o0.status.code(), Some(0), "{}", text(&o0));
    // `GET /api/v1/users/me`: keysweep's login at connect, the supplied
    // token identified, then tested — the test is held.
    sim.faults(json!([{ "method": "GET", "path": "^/api/v1/users/me$", "skip": 2, "delay": HOLD_SECS, "times": 1 }]));
    let mut run = Running::spawn(okta_run(&state, &admin, &pb));
    let held = wait_for("the run's `staged` claim", 20, || claim(&path).filter(|c| c["phase"] == "staged"));
    let pending = format!("keysweep-pending/{path}");
    let (before_version, before) = (kv_version(&pending), kv(&pending).unwrap());
    assert_eq!(before["value"], first.as_str(), "the run staged the supplied value");

    // The person, impatient, re-issues again and supplies that one.
    let (second_id, second) = issue();
    let refused = supply(&dir.path().join("elsewhere"), &admin, &pb, id, &second);
    assert!(run.still_running(), "the run ended before the second supply: no overlap\n{}", text(&refused));
    let said = text(&refused);
    assert_eq!(refused.status.code(), Some(1), "supply while a run works the credential: {said}");
    assert!(said.contains(&format!("is being worked by {}", s(&held["holder"]))) && said.contains("nothing was staged"), "{said}");
    assert_eq!(kv_version(&pending), before_version, "supply wrote the pending entry of a run in progress");
    assert_eq!(kv(&pending).unwrap(), before, "the run's staged value and claim changed under it");

    let o = run.wait();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let me: Vec<Value> = logged(&sim, "GET", "/api/v1/users/me");
    let held_at = me.iter().position(|e| e["delayed"].as_f64() == Some(HOLD_SECS));
    assert_eq!(held_at, Some(2), "the delay did not hold the run's test of the supplied token: {me:?}");
    assert_eq!(row(&common::report_json(&state), id)["outcome"], "rotated");
    // OpenBao and Okta: the value the run tested is the one in service.
    let cur = kv(&path).unwrap();
    assert_eq!((cur["value"].as_str(), cur["token_id"].as_str()), (Some(first.as_str()), Some(first_id.as_str())), "the store's current value");
    assert_eq!(kv_version(&path), 2);
    assert!(kv(&pending).is_none(), "the claim was not released");
    assert_eq!(token_state(&old_id)["revoked"], true, "the old token is alive");
    assert_eq!(token_state(&first_id)["valid"], true, "the token in service was revoked");
    assert_eq!(token_state(&second_id)["valid"], true, "keysweep touched a token it was never given");

    // The run has ended: the same value is accepted now, and the next run
    // rotates to it, revoking the one the first run promoted.
    sim.faults(json!([]));
    let o2 = supply(&state, &admin, &pb, id, &second);
    assert_eq!(o2.status.code(), Some(0), "{}", text(&o2));
    let o3 = okta_run(&state, &admin, &pb).output().unwrap();
    assert_eq!(o3.status.code(), Some(0), "{}", text(&o3));
    let cur = kv(&path).unwrap();
    assert_eq!((cur["value"].as_str(), cur["token_id"].as_str()), (Some(second.as_str()), Some(second_id.as_str())));
    assert_eq!(kv_version(&path), 3);
    assert_eq!(token_state(&first_id)["revoked"], true);
    assert_eq!(token_state(&second_id)["valid"], true);
    assert_no_secret(&[admin, old, first, second], &[&state], &[&o0, &refused, &o, &o2, &o3]);
}

/// A person supplies a value, notices it is the wrong one (another token
/// they made by mistake) and supplies the right one before any run took the
/// first: no run works the credential, so nothing may refuse it, and the
/// next run rotates to the second value; the first, never in any store's
/// service, is left to the person (keysweep never touches a token it was not
/// asked to).
#[test]
fn a_value_supplied_again_before_any_run_replaces_the_first() {
    let sim = sim::start("okta");
    let admin = okta_admin(&sim);
    let out = sim.admin(
        "POST",
        "seed",
        Some(json!({ "users": [{ "login": "svc-sync@example.com", "roles": ["SUPER_ADMIN"] }],
                      "tokens": [{ "user": "svc-sync@example.com", "name": "sync" }] })),
    );
    let (old_id, old) = (s(&out["tokens"][0]["id"]), s(&out["tokens"][0]["value"]));
    common::canary(&old);
    let path = format!("okta/{}", unique("sync"));
    common::bao().kv_put(&path, json!({ "value": old, "token_id": old_id }));
    let dir = tempfile::tempdir().unwrap();
    let pb = okta_playbook(
        dir.path(),
        &sim,
        &format!(
            "  - id: sync
    provider: okta
    target: {{ kind: okta_api_token, token_id: {old_id}, user: svc-sync@example.com }}
    deliver_to: [{{ provider: bao, path: \"{path}\" }}]
    manual: Security › API › Tokens › Create token as svc-sync, name it sync.
"
        ),
    );
    let state = dir.path().join("state");
    let mut made = vec![];
    for _ in 0..2 {
        let t = sim.admin("POST", "issue_token", Some(json!({ "user": "svc-sync@example.com", "name": "sync" })));
        common::canary(&s(&t["value"]));
        made.push((s(&t["id"]), s(&t["value"])));
    }
    let pending = format!("keysweep-pending/{path}");
    let o1 = supply(&state, &admin, &pb, "sync", &made[0].1);
    assert_eq!(o1.status.code(), Some(0), "{}", text(&o1));
    let o2 = supply(&state, &admin, &pb, "sync", &made[1].1);
    assert_eq!(o2.status.code(), Some(0), "a second supply before any run: {}", text(&o2));
    assert_eq!(kv(&pending).unwrap()["value"], made[1].1.as_str(), "the second value is not the one pending");
    let o3 = okta_run(&state, &admin, &pb).output().unwrap();
    assert_eq!(o3.status.code(), Some(0), "{}", text(&o3));
    let cur = kv(&path).unwrap();
    assert_eq!((cur["value"].as_str(), cur["token_id"].as_str()), (Some(made[1].1.as_str()), Some(made[1].0.as_str())));
    let tokens = sim.state()["tokens"].as_array().cloned().unwrap();
    let tok = |id: &str| tokens.iter().find(|t| t["id"] == id).cloned().unwrap();
    assert_eq!(tok(&old_id)["revoked"], true);
    assert_eq!((tok(&made[0].0)["revoked"].as_bool(), tok(&made[1].0)["revoked"].as_bool()), (Some(false), Some(false)));
    assert_no_secret(&[admin, old, made[0].1.clone(), made[1].1.clone()], &[&state], &[&o1, &o2, &o3]);
}

// ----------------------------------------------------------- a lost mint

/// Okta creates the client secret and its answer is lost (the connection
/// drops after Okta acted). The run must not report `rotated`, and consumers
/// keep the secret in service. Where Okta can still be asked, the run
/// retires the orphan itself at once; where it cannot (the listing answers
/// 503), the orphan outlives the run, and so it does any later run that
/// still cannot list the app's secrets (each takes the abandoned claim over
/// and fails); the first later run that can — on the same state directory,
/// or with it deleted — finds it from what the store recorded and retires
/// it. Either way exactly one secret survives: the store's.
#[test]
fn an_okta_client_secret_mint_lost_after_okta_acted_leaves_no_orphan() {
    let sim = sim::start("okta");
    let admin = okta_admin(&sim);
    // (runs while Okta's listing is down, state directory deleted before each later run)
    for (down_runs, drop_state) in [(0, false), (1, false), (1, true), (2, true)] {
        let what = format!("{down_runs} run(s) with the listing down, state directory {}", if drop_state { "deleted" } else { "kept" });
        let (app, old_sid, old) = okta_app(&sim, &unique("lost-mint"));
        let path = format!("okta/{}", unique("lost-mint"));
        common::bao().kv_put(&path, json!({ "value": old, "secret_id": old_sid, "client_id": app }));
        let id = "okta-lost-mint";
        let dir = tempfile::tempdir().unwrap();
        // Fewer retries of the 503s than the default 5: the test is quicker, the paths the same.
        let pb = okta_playbook_with(dir.path(), &sim, "    limits: { max_attempts: 2 }\n", &client_secret_entry(id, &app, &path));
        let create = format!("/api/v1/apps/{app}/credentials/secrets");
        let mut rules = vec![json!({ "method": "POST", "path": format!("^{create}$"), "answer": "after_act", "times": 1 })];
        if down_runs > 0 {
            rules.push(json!({ "method": "GET", "path": format!("^{create}$"), "answer": "503" }));
        }
        sim.faults(Value::Array(rules));
        let state = dir.path().join("state");
        let mut outs = vec![];
        let mut orphan = None;
        let mut minting = None;

        // Run 1: the mint's answer is lost. Later runs while the listing is
        // still down: each a gap, with nothing minted and nobody locked out.
        for n in 1..=down_runs.max(1) {
            if n > 1 && drop_state {
                std::fs::remove_dir_all(&state).unwrap();
            }
            let o = okta_run(&state, &admin, &pb).output().unwrap();
            assert_eq!(o.status.code(), Some(1), "{what}: run {n}: {}", text(&o));
            let r = common::report_json(&state);
            let rw = row(&r, id);
            assert_eq!((rw["outcome"].as_str(), rw["step"].as_str()), (Some("failed"), Some("stage")), "{what}: run {n}: {rw}");
            let creates = logged(&sim, "POST", &create);
            assert_eq!(creates.len(), 1, "{what}: run {n}: {creates:?}");
            assert!(creates[0]["status"].is_null(), "{what}: the create's answer was not lost: {}", creates[0]);
            // Nobody locked out: the store still holds the old secret, which works.
            let cur = kv(&path).unwrap();
            assert_eq!((cur["value"].as_str(), cur["secret_id"].as_str()), (Some(old.as_str()), Some(old_sid.as_str())), "{what}: run {n}");
            assert_eq!(kv_version(&path), 1, "{what}: run {n}");
            assert_eq!(okta_token(&sim, &app, &old), (200, "ok".to_string()), "{what}: run {n}: the secret in service was disturbed");
            outs.push(o);
            let left = okta_secrets(&sim, &app);
            if down_runs == 0 {
                // The run retired the orphan of its own lost mint at once.
                assert_eq!(left.len(), 1, "{what}: the orphan was left: {left:?}");
                assert_eq!(left[0]["id"], old_sid.as_str(), "{what}");
                let gone: Vec<Value> = sim.log().into_iter().filter(|e| e["method"] == "DELETE" && s(&e["path"]).starts_with(&create)).collect();
                assert_eq!(gone.len(), 1, "{what}: {gone:?}");
                continue;
            }
            // The orphan lives on (Okta could not be asked).
            assert_eq!(left.len(), 2, "{what}: run {n}: {left:?}");
            let o = left.iter().find(|x| x["id"] != old_sid.as_str()).unwrap().clone();
            assert_eq!(o["status"], "ACTIVE", "{what}");
            orphan = Some(s(&o["id"]));
            // The store says a mint was under way, and when: run 1's record,
            // still there after a later run took the claim over and failed.
            let cl = claim(&path).unwrap_or_else(|| panic!("{what}: run {n}: no claim left in the store"));
            assert_eq!(cl["phase"], "minting", "{what}: run {n}: the store no longer says a mint was under way: {cl}");
            let lease = chrono::DateTime::parse_from_rfc3339(&s(&cl["lease_until"])).unwrap();
            assert!(lease <= chrono::Utc::now(), "{what}: run {n}: a failed run's claim must be left expired: {cl}");
            assert!(cl["since"].is_string(), "{what}: {cl}");
            let minting = minting.get_or_insert_with(|| cl.clone());
            assert_eq!((&cl["nonce"], &cl["since"]), (&minting["nonce"], &minting["since"]), "{what}: run {n}: run 1's record of its mint is gone");
        }
        // Okta answers again. The orphan's value, from Okta's listing, to prove it dead later.
        let orphan = orphan.map(|oid| {
            let (c, listed) = sim.call("GET", &create, &[("Authorization", &format!("SSWS {admin}"))], None);
            assert_eq!(c, 503, "{what}: the listing was up: {listed}");
            sim.faults(json!([]));
            let (_, listed) = sim.call("GET", &create, &[("Authorization", &format!("SSWS {admin}"))], None);
            let v = listed.as_array().unwrap().iter().find(|x| x["id"] == oid.as_str()).map(|x| s(&x["client_secret"])).unwrap();
            common::canary(&v);
            assert_eq!(okta_token(&sim, &app, &v), (200, "ok".to_string()), "{what}: the orphan is a live secret");
            (oid, v)
        });
        sim.faults(json!([]));

        // The next run (the state directory lost, as a variant).
        if drop_state {
            std::fs::remove_dir_all(&state).unwrap();
        }
        let last = okta_run(&state, &admin, &pb).output().unwrap();
        let r = common::report_json(&state);
        assert_eq!((last.status.code(), row(&r, id)["outcome"].as_str()), (Some(0), Some("rotated")), "{what}: {}\n{}", row(&r, id), text(&last));
        let new = assert_one_live_client_secret(&sim, &app, &path, &old_sid, &old, &what);
        assert_eq!(logged(&sim, "POST", &create).len(), 2, "{what}: one lost create and one more");
        assert_eq!(kv_version(&path), 2, "{what}");
        assert!(kv(&format!("keysweep-pending/{path}")).is_none(), "{what}: the claim was not released");
        let mut secrets = vec![admin.clone(), old.clone(), new];
        if let Some((oid, v)) = orphan {
            assert!(!okta_secrets(&sim, &app).iter().any(|x| x["id"] == oid.as_str()), "{what}: the orphan was not retired");
            assert_eq!(okta_token(&sim, &app, &v), (401, "invalid_client".to_string()), "{what}: the orphan still works");
            assert!(text(&last).contains("orphan"), "{what}: the last run does not say it retired an orphan: {}", text(&last));
            secrets.push(v);
        }
        outs.push(last);
        let outs: Vec<&Output> = outs.iter().collect();
        assert_no_secret(&secrets, &[&state], &outs);
    }
}

/// The process dies the instant Okta's answer to the create arrives (the
/// secret exists, no store holds it), and the run that resumes it on the same
/// machine cannot list the app's secrets either (503): it fails, nothing
/// rotated. Another machine's run later (its own state directory, Okta
/// answering again) must still find that orphan from what the store recorded,
/// retire it, and rotate: one secret survives, the store's.
#[cfg(feature = "crash-hook")]
#[test]
fn an_okta_mint_cut_off_by_a_crash_is_retired_even_after_a_failed_resume() {
    let sim = sim::start("okta");
    let admin = okta_admin(&sim);
    let (app, old_sid, old) = okta_app(&sim, &unique("crash-mint"));
    let path = format!("okta/{}", unique("crash-mint"));
    common::bao().kv_put(&path, json!({ "value": old, "secret_id": old_sid, "client_id": app }));
    let id = "okta-crash-mint";
    let dir = tempfile::tempdir().unwrap();
    let pb = okta_playbook(dir.path(), &sim, &client_secret_entry(id, &app, &path));
    let create = format!("/api/v1/apps/{app}/credentials/secrets");
    let state = dir.path().join("machine-a");
    let mut a = common::keysweep(&state);
    a.env("OKTA_API_TOKEN", &admin);
    common::run_until_crash(a, &pb, "mint:reached:1");
    let left = okta_secrets(&sim, &app);
    assert_eq!(left.len(), 2, "the crash should leave one orphan: {left:?}");
    let oid = s(&left.iter().find(|x| x["id"] != old_sid.as_str()).unwrap()["id"]);
    assert_eq!(claim(&path).map(|c| c["phase"].clone()), Some(json!("minting")));

    // The resume on the same machine: Okta's listing answers 503.
    sim.faults(json!([{ "method": "GET", "path": format!("^{create}$"), "answer": "503" }]));
    let o2 = okta_run(&state, &admin, &pb).output().unwrap();
    assert!(text(&o2).contains("resuming interrupted run"), "{}", text(&o2));
    assert_eq!(o2.status.code(), Some(1), "{}", text(&o2));
    assert_eq!(row(&common::report_json(&state), id)["outcome"], "failed");
    assert_eq!(okta_token(&sim, &app, &old), (200, "ok".to_string()), "the secret in service was disturbed");
    assert_eq!(okta_secrets(&sim, &app).len(), 2);
    let cl = claim(&path).unwrap();
    assert_eq!(cl["phase"], "minting", "the store no longer says a mint was under way: {cl}");

    // Another machine, later, with Okta answering.
    sim.faults(json!([]));
    let (_, listed) = sim.call("GET", &create, &[("Authorization", &format!("SSWS {admin}"))], None);
    let orphan = listed.as_array().unwrap().iter().find(|x| x["id"] == oid.as_str()).map(|x| s(&x["client_secret"])).unwrap();
    common::canary(&orphan);
    let other = dir.path().join("machine-b");
    let o3 = okta_run(&other, &admin, &pb).output().unwrap();
    let r = common::report_json(&other);
    assert_eq!((o3.status.code(), row(&r, id)["outcome"].as_str()), (Some(0), Some("rotated")), "{}\n{}", row(&r, id), text(&o3));
    let new = assert_one_live_client_secret(&sim, &app, &path, &old_sid, &old, "after the crash");
    assert_eq!(okta_token(&sim, &app, &orphan), (401, "invalid_client".to_string()), "the orphan still works");
    assert!(kv(&format!("keysweep-pending/{path}")).is_none(), "the claim was not released");
    assert_no_secret(&[admin, old, new, orphan], &[&state, &other], &[&o2, &o3]);
}
