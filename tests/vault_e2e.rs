//! End to end against a real OpenBao: the keysweep binary rotates and revokes
//! every Vault credential kind; separate clients prove old secrets dead and new
//! ones working; nothing the run wrote contains a secret value.

mod common;

use common::*;

#[test]
fn rotates_and_revokes_every_vault_kind_and_leaks_nothing() {
    let b = bao();
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::seed(b, "e2e", 6, 3, 3, true);
    let pb = estate.write(dir.path());
    let state = dir.path().join("state");

    let out = keysweep(&state).args(["run", pb.to_str().unwrap()]).env("RUST_LOG", "keysweep=debug").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");

    // The report: first line is the totals, and they add up.
    let first = stdout.lines().next().unwrap();
    assert!(first.starts_with("14 credentials: 12 rotated, 2 revoked"), "{first}");
    assert!(first.contains("add up"), "{first}");
    let r = report_json(&state);
    assert_eq!(r["schema"], "keysweep.report/v1");
    assert_eq!(r["totals"]["total"], 14);
    assert_eq!(r["totals"]["rotated"], 12);
    assert_eq!(r["totals"]["revoked"], 2);
    assert_eq!(r["totals"]["gaps"], 0);
    for row in r["rows"].as_array().unwrap() {
        let o = row["outcome"].as_str().unwrap();
        assert!(o == "rotated" || o == "revoked", "{row}");
    }

    // Separate clients: every old secret refused, every new one accepted.
    let news = estate.assert_all_correct(b, "e2e");
    assert_eq!(news.len(), 12);

    // No secret value (old or new) anywhere the run wrote.
    let mut secrets = estate.secrets.clone();
    secrets.extend(news);
    let mut written = all_files(&state);
    written.push(("stdout".into(), out.stdout.clone()));
    written.push(("stderr".into(), out.stderr.clone()));
    let report_cmd = keysweep(&state).args(["report", "--format", "markdown"]).output().unwrap();
    written.push(("report --format markdown".into(), report_cmd.stdout.clone()));
    assert!(written.len() >= 5, "expected journal + reports + outputs, got {}", written.len());
    for (path, bytes) in &written {
        for s in &secrets {
            assert!(!contains(bytes, s), "a secret value appears in {}", path.display());
        }
    }

    // A second run of the same playbook rotates again (it is not a no-op) and
    // finds the current secrets through the store.
    let out2 = keysweep(&state).args(["run", pb.to_str().unwrap(), "--select", "kind=vault_token", "--exclude", "action=revoke"]).output().unwrap();
    assert_eq!(out2.status.code(), Some(0), "{}", String::from_utf8_lossy(&out2.stderr));
    let r2 = report_json(&state);
    assert_eq!(r2["totals"]["rotated"], 6, "{}", r2["totals"]);
    assert_eq!(r2["totals"]["skipped"], 8);
}

#[test]
fn an_unknown_verdict_is_never_reported_dead() {
    // A token listed by an accessor that keysweep cannot look up because the
    // address of the server is wrong: connection errors are unknown, and the
    // run fails before changing anything, exit 3.
    let dir = tempfile::tempdir().unwrap();
    let pb = dir.path().join("p.yaml");
    std::fs::write(
        &pb,
        "version: 1\nproviders:\n  bao:\n    kind: vault\n    address: http://127.0.0.1:1\n    auth: { method: token, token: \"${env:VAULT_TOKEN}\" }\n    limits: { timeout: 2s, max_attempts: 2 }\ncredentials:\n  - { id: t, provider: bao, action: revoke, target: { kind: vault_token, accessor: abc } }\n",
    )
    .unwrap();
    let out = keysweep(&dir.path().join("s")).args(["run", pb.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("connecting to provider `bao`") || err.contains("login"), "{err}");
}
