//! Scheduled hygiene against the real stack: `run --due` rotates what is past
//! its max_age (ages from OpenBao's and IAM's own dates, and, for PostgreSQL,
//! which records none, from the journal), revokes never-used IAM keys where
//! the playbook says `revoke_inactive: true`, and leaves the rest `skipped
//! (not due)`; a listed Redis revocation is revoked once. Run again at once,
//! it does nothing and exits 0.
//!
//! The estate is aged in real time: max_age and inactive_after are seconds
//! long and the test waits them out once.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::moto::moto;
use common::postgres::postgres;
use common::redis::redis;
use common::*;
use serde_json::{json, Value};

/// max_age and inactive_after of the estate. A run of this estate takes a few
/// seconds, far less than this, so the second run finds everything fresh.
const AGE: u64 = 25;

fn ks(state: &Path) -> Command {
    let mut c = keysweep(state);
    moto().configure(&mut c);
    c.env("KS_PG_ADMIN", &postgres().admin_password).env("KS_RD_ADMIN", &redis().admin_password);
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hygiene_runs_in_a_row_the_second_does_nothing() {
    let (b, m, pg, rd) = (bao(), moto(), postgres(), redis());
    let mut y = format!(
        "version: 1
providers:
  bao:
    kind: vault
    address: ${{env:VAULT_ADDR}}
    auth: {{ method: token, token: \"${{env:VAULT_TOKEN}}\" }}
  aws:
    kind: aws
    region: us-east-1
    endpoint_url: ${{env:KEYSWEEP_TEST_AWS_ENDPOINT}}
  pg:
    kind: postgres
    host: {}
    port: {}
    admin: {{ user: {}, password: \"${{env:KS_PG_ADMIN}}\" }}
  rd:
    kind: redis
    host: {}
    port: {}
    admin: {{ user: {}, password: \"${{env:KS_RD_ADMIN}}\" }}
discovery:
  inactive_after: {AGE}s
defaults:
  owner: platform
  max_age: {AGE}s
  verify: {{ attempts: 3, interval: 100ms }}
credentials:
",
        pg.host, pg.port, pg.admin_user, rd.host, rd.port, rd.admin_user
    );
    // A listed revocation: revoked by the first run; switched off, it is not due again.
    rd.create_user("hyg_leaver", "Leaver-pw-7q");
    y += "  - { id: rd-leaver, provider: rd, action: revoke, target: { kind: redis_acl_user, user: hyg_leaver } }\n";
    for i in 0..4 {
        let (_, acc) = b.create_token(&["default"], json!({ "hyg": i }));
        y += &format!("  - {{ id: tok-{i}, provider: bao, target: {{ kind: vault_token, accessor: {acc} }}, deliver_to: [{{ provider: bao, path: \"hyg/{{id}}\" }}] }}\n");
    }
    // One with a max_age of its own, far from reached.
    let (_, young) = b.create_token(&["default"], json!({ "hyg": "young" }));
    y += &format!("  - {{ id: tok-young, provider: bao, max_age: 90d, target: {{ kind: vault_token, accessor: {young} }}, deliver_to: [{{ provider: bao, path: \"hyg/{{id}}\" }}] }}\n");
    let mut keys = vec![];
    for i in 0..3 {
        let user = format!("hyg-{i}");
        let (kid, secret) = m.create_user_with_key(&user).await;
        y += &format!(
            "  - {{ id: key-{i}, provider: aws, revoke_inactive: true, target: {{ kind: aws_iam_access_key, user: {user}, access_key_id: {kid} }}, deliver_to: [{{ provider: bao, path: \"hyg/{{id}}\" }}] }}\n"
        );
        keys.push((kid, secret));
    }
    for i in 0..2 {
        let pw = format!("Hyg-pw-{i}-x9Q");
        pg.create_role(&format!("hygapp{i}"), &pw);
        // Consumers read the password from the store (so the old one can be probed dead).
        b.kv_put(&format!("hyg/pg-{i}"), json!({ "value": pw }));
        y += &format!("  - {{ id: pg-{i}, provider: pg, target: {{ kind: postgres_role, user: hygapp{i} }}, deliver_to: [{{ provider: bao, path: \"hyg/{{id}}\" }}] }}\n");
    }
    let dir = tempfile::tempdir().unwrap();
    let pb = dir.path().join("hygiene.yaml");
    std::fs::write(&pb, y).unwrap();
    let state = dir.path().join("state");

    // Age the estate past max_age and inactive_after; key-2 is in use throughout.
    std::thread::sleep(Duration::from_secs(AGE + 1));
    assert!(m.key_works(&keys[2].0, &keys[2].1).await);

    let out = ks(&state).args(["run", "--due", pb.to_str().unwrap()]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let r = report_json(&state);
    let outcome = |id: &str| -> (String, String, String) {
        let row = r["rows"].as_array().unwrap().iter().find(|x| x["id"] == id).unwrap_or_else(|| panic!("{id}"));
        (
            row["outcome"].as_str().unwrap().into(),
            row["action"].as_str().unwrap().into(),
            row["due"].as_str().or(row["reason"].as_str()).unwrap_or_default().into(),
        )
    };
    for i in 0..4 {
        let (o, a, why) = outcome(&format!("tok-{i}"));
        assert_eq!((o.as_str(), a.as_str()), ("rotated", "rotate"), "{why}");
        assert!(why.starts_with("overdue: last rotated"), "the token's own creation date: {why}");
    }
    let (o, _, why) = outcome("tok-young");
    assert_eq!(o, "skipped");
    assert!(why.starts_with("not due: rotated") && why.contains("due in"), "{why}");
    // Never used since creation, longer than inactive_after: revoked, and proven dead.
    for (i, key) in keys.iter().enumerate().take(2) {
        let (o, a, why) = outcome(&format!("key-{i}"));
        assert_eq!((o.as_str(), a.as_str()), ("revoked", "revoke"), "{why}");
        assert!(why.starts_with("inactive: never used; created"), "{why}");
        assert!(!m.key_works(&key.0, &key.1).await, "the inactive key is dead");
    }
    // In use, but past max_age: rotated, not revoked.
    let (o, a, why) = outcome("key-2");
    assert_eq!((o.as_str(), a.as_str()), ("rotated", "rotate"), "{why}");
    // PostgreSQL records no date and the journal has none yet: unknown age is due.
    for i in 0..2 {
        let (o, _, why) = outcome(&format!("pg-{i}"));
        assert_eq!(o, "rotated", "{why}");
        assert!(why.contains("age unknown"), "{why}");
    }
    assert_eq!(r["totals"]["rotated"], 7, "{}", r["totals"]);
    assert_eq!(r["totals"]["revoked"], 3);
    let (o, _, why) = outcome("rd-leaver");
    assert_eq!(o, "revoked", "{why}");
    assert!(!rd.login_works("hyg_leaver", "Leaver-pw-7q"));
    assert_eq!(r["totals"]["gaps"], 0);

    // Again, at once: nothing is due; quiet prints one line; exit 0.
    let out = ks(&state).args(["run", "--due", "--quiet", pb.to_str().unwrap()]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.lines().count(), 1, "quiet on success: {stdout}");
    let r2: Value = report_json(&state);
    assert_ne!(r2["run_id"], r["run_id"]);
    let t = &r2["totals"];
    assert_eq!(
        (t["rotated"].as_u64(), t["revoked"].as_u64(), t["skipped"].as_u64(), t["gaps"].as_u64()),
        (Some(0), Some(0), Some(11), Some(0)),
        "{t}"
    );
    for row in r2["rows"].as_array().unwrap() {
        let why = row["reason"].as_str().unwrap();
        assert!(why.starts_with("not due"), "{row}");
    }
    // The PostgreSQL roles' age now comes from the journal; the revoked keys are gone.
    let pg0 = r2["rows"].as_array().unwrap().iter().find(|x| x["id"] == "pg-0").unwrap();
    assert!(pg0["reason"].as_str().unwrap().contains("due in"), "{pg0}");
    let key0 = r2["rows"].as_array().unwrap().iter().find(|x| x["id"] == "key-0").unwrap();
    assert!(key0["reason"].as_str().unwrap().contains("not found"), "{key0}");
    // And the report says what changed since the first run.
    let changed = r2["changes"]["changed"].as_array().unwrap();
    assert_eq!(changed.len(), 10, "{}", r2["changes"]);
    let leaver = r2["rows"].as_array().unwrap().iter().find(|x| x["id"] == "rd-leaver").unwrap();
    assert!(leaver["reason"].as_str().unwrap().contains("already disabled"), "{leaver}");
    assert!(changed.iter().all(|c| c["to"] == "skipped (not due)"));

    // history shows both hygiene runs.
    let h = ks(&state).args(["history"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&h.stdout).matches("run --due: ").count(), 2);
}
