//! keysweep's own login listed as a credential: it is worked after every
//! other credential, the run switches its session to the new secret before
//! retiring the old one, and nothing is locked out — neither the rest of the
//! run nor the consumers. Checked from separate clients against OpenBao.

mod common;

use common::*;
use serde_json::{json, Value};

const ADMIN_POLICY: &str = r#"path "*" { capabilities = ["create", "read", "update", "patch", "delete", "list", "sudo"] }"#;

fn admin_policy(b: &Bao) {
    let (s, v) = b.call("PUT", "sys/policies/acl/ks-admin", Some(json!({ "policy": ADMIN_POLICY })));
    assert!(s == 204 || s == 200, "{v}");
}

fn outcomes_in_order(state: &std::path::Path) -> Vec<String> {
    let c = rusqlite::Connection::open(state.join("journal.db")).unwrap();
    let mut q = c.prepare("SELECT cred_id FROM events WHERE step = 'outcome' ORDER BY rowid").unwrap();
    let rows = q.query_map([], |r| r.get::<_, String>(0)).unwrap();
    rows.map(Result::unwrap).collect()
}

fn row<'a>(r: &'a Value, id: &str) -> &'a Value {
    r["rows"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap()
}

/// Token auth: the playbook lists the very token keysweep logs in with.
#[test]
fn own_token_is_rotated_last_and_the_run_switches_to_the_new_one() {
    let b = bao();
    admin_policy(b);
    let prefix = "own";
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::seed(b, prefix, 4, 2, 3, false);
    let (admin, admin_acc) = b.create_token(&["ks-admin"], json!({ "app": "keysweep" }));
    b.kv_put("ops/keysweep-login", json!({ "value": admin, "accessor": admin_acc }));
    // Listed first, so only the engine's ordering can put it last.
    let own = "  - { id: keysweep-own-login, owner: sec, provider: bao, target: { kind: vault_token }, deliver_to: [{ provider: bao, path: ops/keysweep-login }], verify: { attempts: 3, interval: 100ms } }\n";
    let yaml = estate.yaml.replacen("credentials:\n", &format!("credentials:\n{own}"), 1);
    let pb = dir.path().join("playbook.yaml");
    std::fs::write(&pb, yaml).unwrap();
    let state = dir.path().join("state");
    let out = keysweep(&state).env("VAULT_TOKEN", &admin).args(["run", pb.to_str().unwrap(), "--concurrency", "8"]).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{text}");
    let r = report_json(&state);
    assert_eq!(r["totals"]["rotated"], 10, "{}", r["totals"]);
    assert_eq!(row(&r, "keysweep-own-login")["outcome"], "rotated");
    // Worked after every other credential.
    assert_eq!(outcomes_in_order(&state).last().map(String::as_str), Some("keysweep-own-login"));
    assert!(text.contains("rotated keysweep's own login"), "{text}");
    // The old admin token is dead, the new one (from the store) works with
    // the same policies and no longer life, and everything else is correct.
    assert!(!b.token_works(&admin), "the old admin token is alive");
    let new = b.kv_get("ops/keysweep-login").unwrap()["value"].as_str().unwrap().to_string();
    assert_ne!(new, admin);
    let (s, l) = b.call_as(&new, "GET", "auth/token/lookup-self", None);
    assert_eq!(s, 200);
    let mut pol: Vec<String> = l["data"]["policies"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect();
    pol.sort();
    assert_eq!(pol, vec!["default".to_string(), "ks-admin".to_string()], "{l}");
    assert!(l["data"]["ttl"].as_u64().unwrap() <= 24 * 3600, "{l}");
    estate.assert_all_correct(b, prefix);

    // The next run logs in with the value the store now holds: no lockout.
    std::fs::remove_dir_all(&state).unwrap();
    let out = keysweep(&state).env("VAULT_TOKEN", &new).args(["run", pb.to_str().unwrap(), "--select", "id=keysweep-own-login"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!b.token_works(&new));
    assert!(b.token_works(b.kv_get("ops/keysweep-login").unwrap()["value"].as_str().unwrap()));
}

/// AppRole auth: the playbook lists the secret-id keysweep logged in with.
#[test]
fn own_approle_secret_id_is_rotated_last_and_the_session_moves_to_the_new_one() {
    let b = bao();
    admin_policy(b);
    let prefix = "ownar";
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::seed(b, prefix, 2, 1, 2, false);
    let (s, v) = b.call("POST", "auth/approle/role/ks-self", Some(json!({ "token_policies": ["ks-admin"], "token_ttl": "1h" })));
    assert!(s == 204 || s == 200, "{v}");
    let role_id = b.call("GET", "auth/approle/role/ks-self/role-id", None).1["data"]["role_id"].as_str().unwrap().to_string();
    let (sid, acc) = b.create_secret_id("ks-self");
    b.kv_put("ops/keysweep-approle", json!({ "value": sid, "accessor": acc, "role_id": role_id }));
    let own = "  - { id: keysweep-own-sid, owner: sec, provider: bao, target: { kind: vault_approle_secret_id, role: ks-self }, deliver_to: [{ provider: bao, path: ops/keysweep-approle }], verify: { attempts: 3, interval: 100ms } }\n";
    let yaml = estate
        .yaml
        .replace(
            "auth: { method: token, token: \"${env:VAULT_TOKEN}\" }",
            "auth: { method: approle, role_id: \"${env:KS_ROLE_ID}\", secret_id: \"${env:KS_SECRET_ID}\" }",
        )
        .replacen("credentials:\n", &format!("credentials:\n{own}"), 1);
    assert!(yaml.contains("method: approle"));
    let pb = dir.path().join("playbook.yaml");
    std::fs::write(&pb, yaml).unwrap();
    let state = dir.path().join("state");
    let out = keysweep(&state)
        .env("KS_ROLE_ID", &role_id)
        .env("KS_SECRET_ID", &sid)
        .args(["run", pb.to_str().unwrap(), "--concurrency", "8"])
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{text}");
    let r = report_json(&state);
    assert_eq!(r["totals"]["rotated"], 6, "{}", r["totals"]);
    assert_eq!(outcomes_in_order(&state).last().map(String::as_str), Some("keysweep-own-sid"));
    assert!(!b.secret_id_works(&role_id, &sid), "the old login secret-id still logs in");
    let new = b.kv_get("ops/keysweep-approle").unwrap()["value"].as_str().unwrap().to_string();
    assert!(b.secret_id_works(&role_id, &new), "the new login secret-id does not log in");
    estate.assert_all_correct(b, prefix);
}
