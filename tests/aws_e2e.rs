//! End to end with AWS (moto, IAM auth on) and Vault (OpenBao) in one run: the
//! binary rotates IAM keys into Secrets Manager, rotates Secrets Manager
//! secrets in place, delivers Vault-minted tokens into Secrets Manager, and
//! revokes a key; separate clients prove old secrets refused and new ones
//! accepted; the staging labels are exactly right after a run and after a run
//! aborted between each pair of steps and resumed.

mod common;

use common::moto::moto;
use common::*;
use serde_json::{json, Value};

struct AwsEstate {
    yaml: String,
    /// (credential id, user, old key id, old secret, store name)
    keys: Vec<(String, String, String, String, String)>,
    /// (credential id, secret name, old value, field)
    secrets: Vec<(String, String, String, Option<String>)>,
    /// (credential id, old token, store name)
    tokens: Vec<(String, String, String)>,
    /// (user, key id, secret) revoked
    revoked: Vec<(String, String, String)>,
    all_secrets: Vec<String>,
}

fn header() -> String {
    "version: 1
providers:
  aws:
    kind: aws
    region: us-east-1
    endpoint_url: ${env:KEYSWEEP_TEST_AWS_ENDPOINT}
    limits: { concurrency: 8 }
  bao:
    kind: vault
    address: ${env:VAULT_ADDR}
    auth: { method: token, token: \"${env:VAULT_TOKEN}\" }
defaults:
  verify: { attempts: 3, interval: 100ms }
credentials:
"
    .to_string()
}

async fn seed(p: &str, n_keys: usize, n_secrets: usize, n_tokens: usize, revoke: bool) -> AwsEstate {
    let m = moto();
    let sm = m.sm().await;
    let mut e = AwsEstate { yaml: header(), keys: vec![], secrets: vec![], tokens: vec![], revoked: vec![], all_secrets: vec![] };
    for i in 0..n_keys {
        let id = format!("{p}-key-{i}");
        let user = format!("{p}-user-{i}");
        let (kid, secret) = m.create_user_with_key(&user).await;
        let store = format!("{p}/iam/{id}");
        if i % 2 == 0 {
            // Delivered by an earlier rotation: the store names the key in service.
            let v = json!({ "value": secret, "access_key_id": kid }).to_string();
            sm.create_secret().name(&store).secret_string(v).send().await.unwrap();
            e.yaml += &format!("  - {{ id: {id}, owner: infra, provider: aws, tags: [{p}, iam], target: {{ kind: aws_iam_access_key, user: {user} }}, deliver_to: [{{ provider: aws, path: \"{store}\" }}] }}\n");
        } else {
            e.yaml += &format!("  - {{ id: {id}, owner: infra, provider: aws, tags: [{p}, iam], target: {{ kind: aws_iam_access_key, user: {user}, access_key_id: {kid} }}, deliver_to: [{{ provider: aws, path: \"{store}\" }}] }}\n");
        }
        e.all_secrets.push(secret.clone());
        e.keys.push((id, user, kid, secret, store));
    }
    for i in 0..n_secrets {
        let id = format!("{p}-sm-{i}");
        let name = format!("{p}/app/{id}");
        let old = format!("old-sm-value-{p}-{i}-Xk2");
        let (field, target) = match i % 3 {
            0 => (None, format!("{{ kind: aws_secretsmanager_secret, name: \"{name}\", generate: {{ length: 24 }} }}")),
            1 => (
                Some("password".to_string()),
                format!("{{ kind: aws_secretsmanager_secret, name: \"{name}\", field: password, generate: {{ length: 24 }} }}"),
            ),
            _ => (
                None,
                format!(
                    "{{ kind: aws_secretsmanager_secret, name: \"{name}\", aws_random_password: true, generate: {{ length: 24, exclude: \"'\" }} }}"
                ),
            ),
        };
        let body = match &field {
            Some(f) => json!({ f.as_str(): old, "username": "svc" }).to_string(),
            None => old.clone(),
        };
        sm.create_secret().name(&name).secret_string(body).send().await.unwrap();
        e.yaml += &format!("  - {{ id: {id}, owner: apps, provider: aws, tags: [{p}, sm], target: {target} }}\n");
        e.all_secrets.push(old.clone());
        e.secrets.push((id, name, old, field));
    }
    let b = bao();
    for i in 0..n_tokens {
        let id = format!("{p}-tok-{i}");
        let (tok, acc) = b.create_token(&["default"], json!({}));
        let store = format!("{p}/vault/{id}");
        e.yaml += &format!("  - {{ id: {id}, owner: ci, provider: bao, tags: [{p}, mixed], target: {{ kind: vault_token, accessor: {acc} }}, deliver_to: [{{ provider: aws, path: \"{store}\", field: token }}] }}\n");
        e.all_secrets.push(tok.clone());
        e.tokens.push((id, tok, store));
    }
    if revoke {
        let user = format!("{p}-unused");
        let (kid, secret) = m.create_user_with_key(&user).await;
        e.yaml += &format!("  - {{ id: {p}-unused-key, owner: sec, provider: aws, action: revoke, target: {{ kind: aws_iam_access_key, user: {user}, access_key_id: {kid} }} }}\n");
        e.all_secrets.push(secret.clone());
        e.revoked.push((user, kid, secret));
    }
    e
}

async fn current(name: &str) -> (String, String) {
    let o = moto().sm().await.get_secret_value().secret_id(name).version_stage("AWSCURRENT").send().await.unwrap();
    (o.secret_string().unwrap().to_string(), o.version_id().unwrap().to_string())
}

/// Exactly one AWSCURRENT (on `current_version`), no AWSPENDING, and AWSPREVIOUS
/// on the old version when there was one.
async fn assert_labels(name: &str, current_version: &str, had_old: bool, what: &str) {
    let labels = moto().labels(name).await;
    let all: Vec<&String> = labels.values().flatten().collect();
    assert_eq!(all.iter().filter(|l| l.as_str() == "AWSCURRENT").count(), 1, "{what}: {labels:?}");
    assert!(labels[current_version].contains(&"AWSCURRENT".to_string()), "{what}: {labels:?}");
    assert!(!all.iter().any(|l| l.as_str() == "AWSPENDING"), "{what}: AWSPENDING left: {labels:?}");
    let prev = all.iter().filter(|l| l.as_str() == "AWSPREVIOUS").count();
    assert_eq!(prev, usize::from(had_old), "{what}: {labels:?}");
}

impl AwsEstate {
    async fn assert_all_correct(&self) -> Vec<String> {
        let m = moto();
        let iam = m.iam().await;
        let mut news = vec![];
        for (id, user, old_kid, old_secret, store) in &self.keys {
            assert!(!m.key_works(old_kid, old_secret).await, "{id}: old key still authenticates");
            let (cur, ver) = current(store).await;
            let v: Value = serde_json::from_str(&cur).unwrap();
            let (kid, secret) = (v["access_key_id"].as_str().unwrap(), v["value"].as_str().unwrap());
            assert_ne!(kid, old_kid, "{id}: not rotated");
            assert!(m.key_works(kid, secret).await, "{id}: the key in the store does not work");
            let keys = iam.list_access_keys().user_name(user).send().await.unwrap();
            assert_eq!(keys.access_key_metadata().len(), 1, "{id}: {} keys (orphan or old left)", keys.access_key_metadata().len());
            // The old value, or the `{}` a new store secret starts with, is AWSPREVIOUS.
            assert_labels(store, &ver, true, id).await;
            news.push(secret.to_string());
        }
        for (id, name, old, field) in &self.secrets {
            let (cur, ver) = current(name).await;
            let value = match field {
                Some(f) => {
                    let v: Value = serde_json::from_str(&cur).unwrap();
                    assert_eq!(v["username"], "svc", "{id}: other keys lost");
                    v[f.as_str()].as_str().unwrap().to_string()
                }
                None => cur.clone(),
            };
            assert_ne!(&value, old, "{id}: not rotated");
            assert_eq!(value.len(), 24, "{id}: length not honoured");
            assert_labels(name, &ver, true, id).await;
            news.push(value);
        }
        let b = bao();
        for (id, old, store) in &self.tokens {
            assert!(!b.token_works(old), "{id}: old token still works");
            let (cur, ver) = current(store).await;
            let v: Value = serde_json::from_str(&cur).unwrap();
            let tok = v["token"].as_str().unwrap();
            assert!(b.token_works(tok), "{id}: the token in Secrets Manager does not work");
            assert_labels(store, &ver, true, id).await;
            news.push(tok.to_string());
        }
        for (user, kid, secret) in &self.revoked {
            assert!(!m.key_works(kid, secret).await, "{user}: revoked key still authenticates");
        }
        news
    }

    fn write(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let p = dir.join("playbook.yaml");
        std::fs::write(&p, &self.yaml).unwrap();
        p
    }
}

fn ks(state: &std::path::Path) -> std::process::Command {
    let mut c = keysweep(state);
    moto().configure(&mut c);
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn mixed_aws_and_vault_run_rotates_everything_and_leaks_nothing() {
    let e = seed("mix", 4, 3, 2, true).await;
    let dir = tempfile::tempdir().unwrap();
    let pb = e.write(dir.path());
    let state = dir.path().join("state");
    let out = ks(&state).args(["run", pb.to_str().unwrap()]).env("RUST_LOG", "keysweep=debug").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("10 credentials: 9 rotated, 1 revoked"), "{stdout}");
    let news = e.assert_all_correct().await;
    let mut secrets = e.all_secrets.clone();
    secrets.extend(news);
    let mut written = all_files(&state);
    written.push(("stdout".into(), out.stdout.clone()));
    written.push(("stderr".into(), out.stderr.clone()));
    for (path, bytes) in &written {
        for s in &secrets {
            assert!(!contains(bytes, s), "a secret value appears in {}", path.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn abort_between_each_pair_of_steps_then_resume_keeps_labels_right() {
    let points = [
        "stage:started:1",
        "mint:reached:1",
        "staged:reached:1",
        "stage:done:1",
        "apply:done:1",
        "test:done:1",
        "promote:started:1",
        "promote:done:1",
        "retire:started:1",
        "retire:done:1",
    ];
    for (i, point) in points.iter().enumerate() {
        let p = format!("ab{i}");
        let e = seed(&p, 2, 2, 1, false).await;
        let dir = tempfile::tempdir().unwrap();
        let pb = e.write(dir.path());
        let state = dir.path().join("state");
        run_until_crash(ks(&state), &pb, point);
        if *point == "staged:reached:1" {
            // The dry run reports the pending version the crash left behind.
            let plan = ks(&state).args(["plan", pb.to_str().unwrap()]).output().unwrap();
            let text = String::from_utf8_lossy(&plan.stdout);
            assert!(text.contains("pending value(s) or claim(s) left") && text.contains(&format!("{p}/iam/{p}-key-0")), "{text}");
        }
        run_resumes(ks(&state), &pb, point);
        let r = report_json(&state);
        assert_eq!(r["totals"]["rotated"], 5, "{point}: {}", r["totals"]);
        e.assert_all_correct().await;
    }
}

/// Secrets Manager has no check-and-set; with `claims_in`, the claims of the
/// credentials delivered to it live in Vault KV. Two runs on separate state
/// directories (two machines) over one AWS estate at the same instant: no
/// credential is worked by both at once — a credential one run finds held
/// is a gap naming the other — and every one ends correct.
#[tokio::test(flavor = "multi_thread")]
async fn two_runs_with_claims_in_vault_never_work_one_aws_credential_at_once() {
    let mut e = seed("smc", 4, 3, 2, false).await;
    e.yaml = e.yaml.replacen("    limits: { concurrency: 8 }\n", "    limits: { concurrency: 8 }\n    claims_in: { provider: bao }\n", 1);
    assert!(e.yaml.contains("claims_in"));
    let dir = tempfile::tempdir().unwrap();
    let pb = e.write(dir.path());
    let states = [dir.path().join("a"), dir.path().join("b")];
    let children: Vec<_> = states
        .iter()
        .map(|s| ks(s).args(["run", pb.to_str().unwrap()]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap())
        .collect();
    let outs: Vec<_> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    let reports: Vec<Value> = states.iter().map(|s| report_json(s)).collect();
    let ids: Vec<String> =
        e.keys.iter().map(|k| k.0.clone()).chain(e.secrets.iter().map(|s| s.0.clone())).chain(e.tokens.iter().map(|t| t.0.clone())).collect();
    let mut gaps = 0;
    for id in &ids {
        let mut rotated = 0;
        for r in &reports {
            let o = r["rows"].as_array().unwrap().iter().find(|c| c["id"] == id.as_str()).unwrap();
            match o["outcome"].as_str().unwrap() {
                "rotated" => rotated += 1,
                "failed" if o["reason"].as_str().is_some_and(|t| t.contains("held by run")) => gaps += 1,
                _ => panic!(
                    "{id}: {o}\nstderr a: {}\nstderr b: {}",
                    String::from_utf8_lossy(&outs[0].stderr),
                    String::from_utf8_lossy(&outs[1].stderr)
                ),
            }
        }
        assert!(rotated >= 1, "{id}: rotated by neither run");
    }
    eprintln!("two concurrent runs over {} AWS-delivered credentials: {gaps} held-by gaps", ids.len());
    // Independent clients: old keys/values/tokens refused, one key per user,
    // the stores' current values work, labels exactly right.
    e.assert_all_correct().await;
}

/// keysweep's own AWS login (its key comes from the SDK's credential chain,
/// which keysweep cannot move to a new key) listed for rotation: refused
/// before anything is minted, so the user holds exactly the one key it had.
#[tokio::test(flavor = "multi_thread")]
async fn own_aws_login_is_refused_before_a_key_is_minted() {
    let m = moto();
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "{}  - {{ id: own-admin-key, owner: infra, provider: aws, target: {{ kind: aws_iam_access_key, user: {}, access_key_id: {} }}, deliver_to: [{{ provider: aws, path: \"own/admin-key\" }}] }}\n",
        header(),
        common::moto::ADMIN_USER,
        m.admin_key_id
    );
    let pb = dir.path().join("own.yaml");
    std::fs::write(&pb, yaml).unwrap();
    let state = dir.path().join("state");
    let out = ks(&state).args(["run", pb.to_str().unwrap()]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("failed") && stdout.contains("keysweep's own login to `aws`"), "{stdout}");
    // Independently: IAM lists the admin's one key, nothing minted.
    let keys = m.iam().await.list_access_keys().user_name(common::moto::ADMIN_USER).send().await.unwrap();
    let ids: Vec<&str> = keys.access_key_metadata().iter().filter_map(|k| k.access_key_id()).collect();
    assert_eq!(ids, vec![m.admin_key_id.as_str()], "keysweep's own user holds only its login key");
}
