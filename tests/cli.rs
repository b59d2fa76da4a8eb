//! The command line as a user meets it: example playbooks validate, the schema
//! is printed, a bad playbook changes nothing, exit codes are as documented.

mod common;

use common::*;

fn example_env(c: &mut std::process::Command) -> &mut std::process::Command {
    c.env("CI_TOKEN_ACCESSOR", "accessor-ci")
        .env("LEGACY_TOKEN_ACCESSOR", "accessor-legacy")
        .env("CANARY_TOKEN_ACCESSOR", "accessor-canary")
        .env("METRICS_TOKEN_ACCESSOR", "accessor-metrics")
        .env("PAYMENTS_TOKEN_ACCESSOR", "accessor-payments")
        .env("MARIADB_ADMIN_PASSWORD", "x")
        .env("CI_DEPLOYER_KEY_ID", format!("AKIA{}", "EXAMPLECIDEPLOY1"))
        .env("LEGACY_SYNC_KEY_ID", format!("AKIA{}", "EXAMPLELEGACY001"))
        .env("REDIS_ADMIN_PASSWORD", "x")
        .env("LDAP_ADMIN_PASSWORD", "x")
        .env("KEYSWEEP_ROLE_ID", "role")
        .env("KEYSWEEP_SECRET_ID", "secret")
        .env("OKTA_URL", "https://acme.okta.com")
        .env("OKTA_APP_ID", "0oa1example")
        .env("ATLASSIAN_ORG_ID", "8c1f2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b")
        .env("ATLASSIAN_ADMIN_KEY", "x")
        .env("ATLASSIAN_URL", "https://acme.atlassian.net")
        .env("ATLASSIAN_SMARTSHEET_SA_ID", "0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6")
        .env("SLACK_API_URL", "https://slack.com")
        .env("SLACK_PAGERDUTY_BOT_USER", "U0PAGERDTY")
        .env("SLACK_PAGERDUTY_APP", "A0PAGERDTY")
        .env("SMARTSHEET_URL", "https://api.smartsheet.com/2.0")
        .env("SMARTSHEET_ADMIN_TOKEN", "x")
        .env("MOVEWORKS_URL", "https://api.moveworks.example")
        .env("MOVEWORKS_ADMIN_TOKEN", "x")
        .env("VAULT_ADDR", "http://127.0.0.1:1")
        .env("VAULT_TOKEN", "unused")
}

#[test]
fn example_playbooks_validate_and_plan_offline() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "incident-response.yaml",
        "hygiene.yaml",
        "coverage.yaml",
        "aws-iam-to-secretsmanager.yaml",
        "vault-to-secretsmanager.yaml",
        "databases-hygiene.yaml",
        "memory.yaml",
        "incident-okta.yaml",
    ] {
        let p = format!("{}/playbooks/{name}", env!("CARGO_MANIFEST_DIR"));
        let out = example_env(&mut keysweep(dir.path())).args(["validate", &p]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("valid"), "{name}");
        let out = example_env(&mut keysweep(dir.path())).args(["plan", "--offline", &p]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let s = String::from_utf8_lossy(&out.stdout);
        assert!(s.lines().next().unwrap().contains("totals add up"), "{name}: {s}");
        assert!(s.contains("nothing was changed"), "{name}: {s}");
    }
    // The coverage example warns about what cannot be proven dead.
    let p = format!("{}/playbooks/coverage.yaml", env!("CARGO_MANIFEST_DIR"));
    let out = example_env(&mut keysweep(dir.path())).args(["plan", "--offline", &p]).output().unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("destroy_old: false") && s.contains("wiki-bot-password"), "{s}");
    assert!(s.contains("probe_old: false") && s.contains("canary-token"), "{s}");
    // Selection narrows the plan.
    let p = format!("{}/playbooks/incident-response.yaml", env!("CARGO_MANIFEST_DIR"));
    let out = example_env(&mut keysweep(dir.path()))
        .args(["plan", "--offline", &p, "--select", "owner=ci", "--select", "owner=it", "--format", "json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let selected: Vec<&str> = v["rows"].as_array().unwrap().iter().filter(|r| r["selected"] == true).map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(selected, vec!["ci-deploy-token", "legacy-integration-token"]);
    assert!(!dir.path().join("journal.db").exists(), "plan wrote a journal");
}

#[test]
fn schema_is_json_schema_of_the_playbook() {
    let dir = tempfile::tempdir().unwrap();
    let out = keysweep(dir.path()).arg("schema").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["title"], "PlaybookFile");
    let s = v.to_string();
    for k in ["credentials", "providers", "vault_token", "vault_approle_secret_id", "vault_kv_secret", "deliver_to"] {
        assert!(s.contains(k), "schema lacks {k}");
    }
}

#[test]
fn an_invalid_playbook_changes_nothing_and_exits_2() {
    let b = bao();
    let (tok, acc) = b.create_token(&["default"], serde_json::json!({}));
    let dir = tempfile::tempdir().unwrap();
    let pb = dir.path().join("bad.yaml");
    // A valid revocation, plus one mistake elsewhere: nothing may run.
    std::fs::write(
        &pb,
        format!(
            "{PROVIDER_YAML}  - {{ id: doomed, provider: bao, action: revoke, target: {{ kind: vault_token, accessor: {acc} }} }}\n  - {{ id: other, provider: bao, action: revoke, target: {{ kind: vault_token, acessor: x }} }}\n"
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let out = keysweep(&state).args(["run", pb.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml:10:") && err.contains("unknown field `acessor`") && err.contains("did you mean `accessor`"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert!(b.token_works(&tok), "an invalid playbook revoked a token");
    assert!(!state.join("journal.db").exists(), "an invalid playbook started a run");
    // A bad selection is refused the same way.
    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        format!("{PROVIDER_YAML}  - {{ id: doomed, provider: bao, action: revoke, target: {{ kind: vault_token, accessor: {acc} }} }}\n"),
    )
    .unwrap();
    let out = keysweep(&state).args(["run", good.to_str().unwrap(), "--select", "colour=red"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("selection key `colour` is unknown"));
    assert!(b.token_works(&tok));
}

#[test]
fn gaps_exit_1_and_the_report_says_why() {
    let b = bao();
    let dir = tempfile::tempdir().unwrap();
    // One token that rotates fine, one KV secret that keeps its old version
    // (death not provable: unverified), and one credential depending on the
    // unverified one (skipped: a gap too).
    let (_tok, acc) = b.create_token(&["default"], serde_json::json!({}));
    b.kv_put("gaps/kv", serde_json::json!({ "value": "v1-old-value-here" }));
    let pb = dir.path().join("p.yaml");
    std::fs::write(
        &pb,
        format!(
            "{PROVIDER_YAML}  - {{ id: tok, provider: bao, target: {{ kind: vault_token, accessor: {acc} }}, deliver_to: [{{ provider: bao, path: gaps/tok }}] }}\n  - {{ id: keep-old, provider: bao, target: {{ kind: vault_kv_secret, path: gaps/kv, destroy_old: false }}, verify: {{ attempts: 2, interval: 10ms }} }}\n  - {{ id: after, provider: bao, depends_on: [keep-old], target: {{ kind: vault_kv_secret, path: gaps/after }} }}\n"
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let out = keysweep(&state).args(["run", pb.to_str().unwrap()]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.lines().next().unwrap().starts_with("3 credentials: 1 rotated, 0 revoked, 1 unverified, 0 failed, 1 skipped"), "{stdout}");
    assert!(stdout.contains("2 gaps"), "{stdout}");
    let r = report_json(&state);
    let row = |id: &str| r["rows"].as_array().unwrap().iter().find(|x| x["id"] == id).unwrap().clone();
    assert_eq!(row("keep-old")["outcome"], "unverified");
    assert_eq!(row("keep-old")["step"], "verify_dead");
    assert!(row("keep-old")["reason"].as_str().unwrap().contains("still readable"));
    assert_eq!(row("after")["outcome"], "skipped");
    assert!(row("after")["reason"].as_str().unwrap().contains("dependency `keep-old` ended unverified"));
    // `report` and `history` agree with the run.
    let out = keysweep(&state).args(["report", "--format", "markdown"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(md.find("## Unverified").unwrap() < md.find("## Rotated").unwrap(), "{md}");
    let out = keysweep(&state).args(["history"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 credentials: 1 rotated"));
}

#[test]
fn the_memory_playbook_runs_with_no_server() {
    // Everything in process: every credential rotated, every old secret proven dead, exit 0.
    let dir = tempfile::tempdir().unwrap();
    let p = format!("{}/playbooks/memory.yaml", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(common::keysweep_bin())
        .args(["run", &p, "--format", "json"])
        .env("KEYSWEEP_STATE_DIR", dir.path())
        .env("NO_COLOR", "1")
        .env_remove("VAULT_ADDR")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(report["totals"]["rotated"], 4, "{report}");
}

#[test]
fn plan_reports_tls_verification_turned_off_and_plaintext_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let pb = dir.path().join("p.yaml");
    std::fs::write(
        &pb,
        "version: 1\nproviders:\n  bao:\n    kind: vault\n    address: https://vault.internal:8200\n    tls: { insecure_skip_verify: true }\n    auth: { method: token, token: \"${env:VAULT_TOKEN}\" }\n  lab:\n    kind: vault\n    address: http://vault.lab:8200\n    allow_plaintext: true\n    auth: { method: token, token: \"${env:VAULT_TOKEN}\" }\n  pg:\n    kind: postgres\n    host: db.internal\n    sslmode: require\n    admin: { user: keysweep_admin, password: \"${env:VAULT_TOKEN}\" }\ncredentials:\n  - id: t\n    provider: bao\n    action: revoke\n    target: { kind: vault_token, accessor: acc }\n",
    )
    .unwrap();
    let out = example_env(&mut keysweep(dir.path())).args(["plan", "--offline", pb.to_str().unwrap()]).output().unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{s}{}", String::from_utf8_lossy(&out.stderr));
    assert!(s.contains("provider `bao`: TLS certificate verification is OFF (tls.insecure_skip_verify: true)"), "{s}");
    assert!(s.contains("provider `lab`: plaintext `http://`"), "{s}");
    assert!(s.contains("provider `pg`: TLS certificate verification is OFF (sslmode: require)"), "{s}");
}

#[test]
fn plan_says_which_settings_come_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let pb = dir.path().join("p.yaml");
    std::fs::write(
        &pb,
        "version: 1\nproviders:\n  pg:\n    kind: postgres\n    admin: { user: keysweep_admin, password: \"${env:PG_ADMIN_PW}\" }\ncredentials:\n  - id: app\n    provider: pg\n    action: revoke\n    target: { kind: postgres_role, user: app }\n",
    )
    .unwrap();
    let run = |extra: &[(&str, &str)], format: &str| {
        let mut c = keysweep(dir.path());
        c.env("PG_ADMIN_PW", "x").env_remove("PGHOST").env_remove("PGSSLMODE").env_remove("PGSSLROOTCERT");
        for (k, v) in extra {
            c.env(k, v);
        }
        let out = c.args(["plan", "--offline", pb.to_str().unwrap(), "--format", format]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let s = run(&[("PGHOST", "db.internal"), ("PGSSLROOTCERT", "/etc/ssl/db-ca.pem")], "text");
    assert!(s.contains("settings from the environment:"), "{s}");
    assert!(s.contains("provider `pg`: `host` from PGHOST (db.internal)"), "{s}");
    assert!(s.contains("provider `pg`: `sslrootcert` from PGSSLROOTCERT (/etc/ssl/db-ca.pem)"), "{s}");
    let j: serde_json::Value = serde_json::from_str(&run(&[("PGHOST", "db.internal")], "json")).unwrap();
    assert_eq!(j["from_env"][0], "provider `pg`: `host` from PGHOST (db.internal)", "{j}");
    // A remote PGHOST with PGSSLMODE=disable: plan says connecting will refuse it.
    let s = run(&[("PGHOST", "db.internal"), ("PGSSLMODE", "disable")], "text");
    assert!(s.contains("refused at connect") && s.contains("not loopback"), "{s}");
    // Nothing from the environment: no such section.
    assert!(!run(&[], "text").contains("settings from the environment"));
}
