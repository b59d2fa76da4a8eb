//! The README's incident demo (`scripts/demo.sh --incident`, the Okta breach
//! shaped like Cloudflare's) run as a user would, in a throwaway stack
//! directory, with outcomes checked in each system's own state: every
//! "assumed unused" token discover found is revoked in Okta, every old
//! credential is dead there, and exactly one live token serves each listed
//! integration.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

fn sim_url(work: &std::path::Path, name: &str) -> String {
    let out = std::fs::read_to_string(work.join(format!("{name}.out"))).unwrap();
    format!("http://{}", out.lines().find_map(|l| l.strip_prefix("listening on ")).unwrap())
}

fn get(url: &str) -> Value {
    let out = Command::new("curl").args(["-fsS", url]).output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{url}: {}", String::from_utf8_lossy(&out.stdout)))
}

struct Stack(std::path::PathBuf);
impl Drop for Stack {
    fn drop(&mut self) {
        let root = env!("CARGO_MANIFEST_DIR");
        let _ = Command::new(format!("{root}/scripts/stack.sh")).arg("down").env("KEYSWEEP_STACK_DIR", &self.0).output();
    }
}

#[test]
fn the_incident_demo_revokes_the_assumed_unused_and_ends_with_exit_0() {
    let root = env!("CARGO_MANIFEST_DIR");
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack(dir.path().join("stack"));
    let out = Command::new(format!("{root}/scripts/demo.sh"))
        .arg("--incident")
        .current_dir(root)
        .env("KEYSWEEP_STACK_DIR", &stack.0)
        .env("KEYSWEEP_BIN", env!("CARGO_BIN_EXE_keysweep"))
        .env("KEYSWEEP_BAO_PORT", common::free_port().to_string())
        .output()
        .unwrap();
    let work = stack.0.join("incident");
    // The seeded values (keysweep's AWS login among them) are secrets: the output is scanned for them.
    let env = std::fs::read_to_string(work.join("env")).unwrap_or_default();
    for line in env.lines() {
        if let Some(v) = line.strip_prefix("export AWS_SECRET_ACCESS_KEY=") {
            common::canary(v);
        }
    }
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("discover exit status 1"), "discover reports the unlisted tokens: {text}");
    assert!(text.contains("5 awaiting a human"), "{text}");
    assert!(text.contains("no gaps"), "{text}");

    // Okta's own view.
    let okta = get(&format!("{}/_sim/state", sim_url(&work, "okta")));
    let mut by_name: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for t in okta["tokens"].as_array().unwrap() {
        by_name.entry(t["name"].as_str().unwrap().to_string()).or_default().push(t);
    }
    for unused in ["smartsheet-2022", "workflows-poc"] {
        let ts = &by_name[unused];
        assert!(ts.iter().all(|t| t["revoked"] == true), "the assumed-unused `{unused}` is revoked in Okta: {ts:?}");
    }
    for listed in ["moveworks", "smartsheet-sync", "keysweep"] {
        let ts = &by_name[listed];
        let live: Vec<_> = ts.iter().filter(|t| t["valid"] == true).collect();
        assert_eq!(live.len(), 1, "one live `{listed}` token (the re-issued one): {ts:?}");
        assert_eq!(ts.iter().filter(|t| t["revoked"] == true).count(), 1, "the old `{listed}` token is revoked: {ts:?}");
    }
    let secrets = okta["apps"][0]["secrets"].as_array().unwrap();
    assert_eq!(secrets.len(), 1, "the service app holds only its new secret: {secrets:?}");

    // Atlassian's own view: the fourth assumed-unused credential, an admin
    // service user's API token, is revoked; the admin service account's old
    // OAuth client is deleted and the one a person made is its only live one;
    // the org-wide bulk revoke was never called.
    let atl = get(&format!("{}/_sim/state", sim_url(&work, "atlassian")));
    let t = atl["api_tokens"].as_array().unwrap().iter().find(|t| t["label"] == "smartsheet-2023").unwrap();
    assert_eq!(t["revoked"], true, "the assumed-unused Atlassian token is revoked: {t}");
    let clients = atl["oauth_clients"].as_array().unwrap();
    let live: Vec<_> = clients.iter().filter(|c| c["deleted"] == false).collect();
    assert_eq!(live.len(), 1, "{clients:?}");
    assert_eq!(live[0]["name"], "smartsheet-2026-12", "the credential a person made is the one in service");
    assert_eq!(atl["bulk_revoke_calls"], serde_json::json!([]));

    // The Moveworks-style service token nobody listed (the first of the
    // four) is revoked; the ITSM connector's old token is revoked and one
    // live token of its principal serves; keysweep's own is untouched.
    let mw = get(&format!("{}/_sim/state", sim_url(&work, "moveworks")));
    let tokens = mw["tokens"].as_array().unwrap();
    let of = |name: &str| tokens.iter().filter(|t| t["name"] == name).collect::<Vec<_>>();
    assert!(of("hr-bot").iter().all(|t| t["status"] == "revoked"), "{tokens:?}");
    let itsm = of("itsm-connector");
    assert_eq!(itsm.iter().filter(|t| t["status"] == "active").count(), 1, "{itsm:?}");
    assert!(itsm.iter().any(|t| t["status"] == "revoked"), "{itsm:?}");
    assert!(of("keysweep").iter().all(|t| t["status"] == "active"));

    // Smartsheet: the old okta-sync token revoked, the one a person made in service.
    let ss = get(&format!("{}/_sim/state", sim_url(&work, "smartsheet")));
    let sync: Vec<&Value> = ss["tokens"].as_array().unwrap().iter().filter(|t| t["name"] == "okta-sync").collect();
    assert_eq!(sync.iter().filter(|t| t["valid"] == true).count(), 1, "{sync:?}");
    assert_eq!(sync.iter().filter(|t| t["revoked"] == true).count(), 1, "{sync:?}");

    // Slack: the PagerDuty bot's token revoked by auth.revoke; keysweep's login live.
    let sl = get(&format!("{}/_sim/state", sim_url(&work, "slack")));
    for t in sl["tokens"].as_array().unwrap() {
        let bot = t["kind"] == "bot";
        assert_eq!(t["revoked"], bot, "the bot token revoked, keysweep's user token not: {t}");
    }
}
