//! Redaction by value (issue 8, defect 7): a server (or proxy) that echoes the
//! request in a 500 body puts the generated value, the admin token and the
//! old token into the error text keysweep receives. None of them may reach
//! stdout, stderr, any report format, the journal's bytes or any file of the
//! state directory — even when they are short and shaped like no known token,
//! so that only redaction by value (not the pattern scrubber) can catch them.
//! Everything in the state directory is private (dirs 0700, files 0600).

mod common;

use std::os::unix::fs::PermissionsExt;

use common::canary::Canary;
use common::echo_proxy::{EchoProxy, Rule};
use common::*;
use serde_json::json;

/// A token id of our choosing: short, no `hvs.` prefix, nothing a pattern knows.
fn short_id(tag: &str) -> String {
    format!("{tag}{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

#[test]
fn canary_finds_every_form_without_printing_the_value() {
    common::canary::self_check();
}

#[test]
fn secrets_echoed_by_a_server_reach_no_output_report_journal_or_file() {
    let b = bao();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");

    // keysweep's own login: a root token with a short id.
    let admin = short_id("adm-");
    let (s, body) = b.call("POST", "auth/token/create-orphan", Some(json!({ "id": admin, "policies": ["root"], "ttl": "1h" })));
    assert_eq!(s, 200, "{body}");
    // The credential's old token, delivered in the store (keysweep reads it from there).
    let old_tok = short_id("old-");
    let (s, body) = b.call("POST", "auth/token/create-orphan", Some(json!({ "id": old_tok, "policies": ["default"], "ttl": "1h" })));
    assert_eq!(s, 200, "{body}");
    let old_acc = body["auth"]["accessor"].as_str().unwrap().to_string();
    b.kv_put("red/tokens/red-tok", json!({ "value": old_tok, "accessor": old_acc }));
    // A KV secret with a short old value.
    let old_kv = short_id("okv-");
    // Its field is `api_key`: the staging write's JSON keys are sorted, and the
    // value must come before keysweep's claim for the echoed text to show it
    // within the 400 characters a reason keeps.
    b.kv_put("red/kv", json!({ "api_key": old_kv, "username": "svc" }));

    // Echo the staging write of the KV secret (its body holds the generated
    // value) and every request presenting the old token.
    let proxy = EchoProxy::start(
        &b.addr,
        vec![
            // The staging write (it carries the value), not the claim written before it.
            Rule { method: "POST".into(), path_contains: "keysweep-pending/red/kv".into(), token: None, body_contains: "\"api_key\"".into() },
            Rule { method: String::new(), path_contains: "auth/token/lookup-self".into(), token: Some(old_tok.clone()), ..Default::default() },
        ],
    );
    let yaml = "version: 1
providers:
  bao:
    kind: vault
    address: ${env:VAULT_ADDR}
    auth: { method: token, token: \"${env:VAULT_TOKEN}\" }
    limits: { max_attempts: 2 }
credentials:
  - { id: red-kv, owner: data, provider: bao, target: { kind: vault_kv_secret, path: red/kv, field: api_key, generate: { length: 16 } }, verify: { attempts: 2, interval: 100ms } }
  - { id: red-tok, owner: platform, provider: bao, target: { kind: vault_token }, deliver_to: [{ provider: bao, path: \"red/tokens/{id}\" }], verify: { attempts: 2, interval: 100ms } }
";
    let pb = dir.path().join("playbook.yaml");
    std::fs::write(&pb, yaml).unwrap();
    let ks = || {
        let mut c = keysweep(&state);
        c.env("VAULT_ADDR", &proxy.endpoint).env("VAULT_TOKEN", &admin).env("RUST_LOG", "keysweep=debug");
        c
    };
    let out = ks().args(["run", pb.to_str().unwrap()]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "the echoed failures are gaps\nstdout:\n{stdout}\nstderr:\n{stderr}");

    // The proxy did echo both kinds of request, so the secrets were in the answers.
    let echoed = proxy.echoed();
    let staged: Vec<_> = echoed.iter().filter(|e| e.path.contains("keysweep-pending/red/kv")).collect();
    assert!(!staged.is_empty(), "the KV staging write was never echoed: {:?}", echoed.iter().map(|e| &e.path).collect::<Vec<_>>());
    let generated: Vec<String> = staged
        .iter()
        .filter_map(|e| serde_json::from_str::<serde_json::Value>(&e.body).ok()?["data"]["api_key"].as_str().map(str::to_string))
        .collect();
    assert!(!generated.is_empty(), "no echoed staging write carried a generated value");
    assert!(generated.iter().all(|g| g.len() == 16), "generated values are 16 characters");
    assert!(staged.iter().all(|e| e.token == admin), "the staging write presents keysweep's own token");
    assert!(echoed.iter().any(|e| e.token == old_tok), "nothing presented the old token: {:?}", echoed.iter().map(|e| &e.path).collect::<Vec<_>>());

    // The echoed text reached keysweep's outputs, with the values cut out.
    let r = report_json(&state);
    let kv_row = r["rows"].as_array().unwrap().iter().find(|r| r["id"] == "red-kv").unwrap().clone();
    let reason = kv_row["reason"].as_str().unwrap_or_default().to_string();
    assert_eq!(kv_row["outcome"], "failed", "{kv_row}");
    assert!(reason.contains("echo-proxy: X-Vault-Token header [REDACTED]"), "the admin token was not redacted in place: {reason}");
    assert!(reason.contains("\"api_key\":\"[REDACTED]\""), "the generated value was not redacted in place: {reason}");
    let tok_row = r["rows"].as_array().unwrap().iter().find(|r| r["id"] == "red-tok").unwrap().clone();
    assert_ne!(tok_row["outcome"], "rotated", "the old token's death was never proven: {tok_row}");

    // Every report format, from the run and from `report`.
    let mut outputs: Vec<(String, Vec<u8>)> = vec![("run stdout".into(), out.stdout.clone()), ("run stderr".into(), out.stderr.clone())];
    for f in ["text", "markdown", "json", "html"] {
        let o = ks().args(["report", "--format", f]).output().unwrap();
        // `report` exits 1 for a report with gaps, as `run` did.
        assert_eq!(o.status.code(), Some(1), "report --format {f}: {}", String::from_utf8_lossy(&o.stderr));
        outputs.push((format!("report --format {f} stdout"), o.stdout));
        outputs.push((format!("report --format {f} stderr"), o.stderr));
    }
    let hist = ks().args(["history"]).output().unwrap();
    outputs.push(("history".into(), hist.stdout));
    let all_out: Vec<u8> = outputs.iter().flat_map(|(_, b)| b.clone()).collect();
    assert!(common::contains(&all_out, "echo-proxy"), "no output carried the echoed error at all");

    let mut secrets = vec![admin.clone(), old_tok.clone(), old_kv.clone()];
    secrets.extend(generated);
    if let Some(cur) = b.kv_get("red/tokens/red-tok") {
        let v = cur["value"].as_str().unwrap().to_string();
        if v != old_tok {
            secrets.push(v); // the new token, if it was delivered
        }
    }
    let refs: Vec<(&str, &[u8])> = outputs.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
    let scanned = Canary::new(&secrets).assert_clean(&[&state], &refs);
    assert!(scanned.files >= 3, "expected the journal and two reports in the state dir, scanned {scanned:?}");

    // Everything in the state dir is the user's only.
    assert_private(&state);
}

/// Directories 0700, files 0600, everywhere under `dir` (and `dir` itself).
fn assert_private(dir: &std::path::Path) {
    let mut stack = vec![dir.to_path_buf()];
    let mut n = 0;
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let mode = m.permissions().mode() & 0o777;
        if m.is_dir() {
            assert_eq!(mode, 0o700, "{} is {mode:o}, not 0700", p.display());
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            assert_eq!(mode, 0o600, "{} is {mode:o}, not 0600", p.display());
        }
        n += 1;
    }
    assert!(n >= 4, "state dir has only {n} entries");
}
