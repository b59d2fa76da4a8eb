//! Round trips per credential, counted where the servers see them: a
//! counting proxy (tests/common/faultproxy.rs, no rules) in front of the real
//! OpenBao and moto. Each kind's lifecycle runs in process through the engine,
//! one credential at a time, and its requests are counted from the first
//! step to the outcome (the provider's login, before, is not the
//! credential's). A kind that makes more calls than its documented budget
//! fails here, with the calls it made listed beside the documented ones.
//! Separate clients then check the rotation is right (old dead, new works):
//! fewer calls must never mean less done.
//!
//! The budgets are the calls each lifecycle needs; the same lists are in the
//! notes for the README (`Round trips per credential`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use common::faultproxy::FaultProxy;
use common::moto::moto;
use keysweep::engine::{Engine, Quiet};
use keysweep::journal::Journal;
use keysweep::plan::{self, Selection};
use keysweep::report::Outcome;
use serde_json::json;

/// One kind's budget: the calls its lifecycle needs, in order.
struct Budget {
    kind: &'static str,
    calls: &'static [&'static str],
}

/// A Vault token delivered to Vault KV (claims kept in the pending entry).
const VAULT_TOKEN: Budget = Budget {
    kind: "vault_token → Vault KV",
    calls: &[
        "stage: GET pending entry (claim, staged value; 404 = free)",
        "stage: GET current value (the token in service, its accessor)",
        "stage: lookup-accessor of the old token (settings to copy)",
        "stage: write the claim `minting` (check-and-set)",
        "stage: create the token",
        "stage: lookup-accessor of the new token (never more privileged)",
        "stage: write the staged value with the claim (check-and-set)",
        "test: lookup-self with the new token",
        "promote: write the current value (check-and-set on the version read)",
        "promote: write the claim `promoted`, value dropped (check-and-set)",
        "retire: GET current value (is the old token still the one in service?)",
        "retire: revoke-accessor of the old token",
        "verify: lookup-accessor of the old token (admin side)",
        "verify: lookup-self with the old token (probe)",
        "release: DELETE the pending entry's metadata",
    ],
};

/// An AppRole secret-id delivered to Vault KV.
const VAULT_APPROLE: Budget = Budget {
    kind: "vault_approle_secret_id → Vault KV",
    calls: &[
        "stage: GET pending entry",
        "stage: GET current value",
        "stage: GET role-id",
        "stage: secret-id-accessor/lookup of the old secret-id (limits to copy)",
        "stage: write the claim `minting`",
        "stage: create the secret-id",
        "stage: secret-id-accessor/lookup of the new secret-id (never wider)",
        "stage: write the staged value with the claim",
        "test: read the role (do logins spend a use?) — once per lifecycle",
        "test: login with the new secret-id",
        "test: revoke-self the login's token",
        "promote: write the current value",
        "promote: write the claim `promoted`",
        "retire: GET current value (safety)",
        "retire: destroy the old secret-id by accessor",
        "verify: secret-id-accessor/lookup of the old one (admin side)",
        "verify: login with the old secret-id (probe; role read remembered)",
        "release: DELETE the pending entry's metadata",
    ],
};

/// A KV v2 secret rotated in place (generated value).
const VAULT_KV: Budget = Budget {
    kind: "vault_kv_secret",
    calls: &[
        "stage: GET pending entry",
        "stage: GET current value",
        "stage: write the staged value with the claim (check-and-set)",
        "promote: write the current value (check-and-set)",
        "promote: write the claim `promoted`",
        "retire: GET current value (safety)",
        "retire: destroy the old version",
        "verify: GET metadata (old version destroyed?)",
        "release: DELETE the pending entry's metadata",
    ],
};

/// An IAM access key delivered to Secrets Manager (no claims store).
const AWS_IAM_TO_SM: Budget = Budget {
    kind: "aws_iam_access_key → Secrets Manager",
    calls: &[
        "stage: GetSecretValue AWSCURRENT (the key in service)",
        "stage: GetSecretValue AWSPENDING (a value left staged?)",
        "stage: CreateAccessKey (ListAccessKeys only when IAM refuses a third key)",
        "stage: PutSecretValue AWSPENDING",
        "test: GetCallerIdentity with the new key",
        "promote: UpdateSecretVersionStage AWSCURRENT (from the version read)",
        "promote: UpdateSecretVersionStage AWSPENDING removed",
        "retire: GetSecretValue AWSCURRENT (safety)",
        "retire: DeleteAccessKey (UpdateAccessKey Inactive only if the delete is refused)",
        "verify: ListAccessKeys (admin side)",
        "verify: GetCallerIdentity with the old key (probe)",
    ],
};

/// A Secrets Manager secret rotated in place (value generated by keysweep).
const AWS_SM: Budget = Budget {
    kind: "aws_secretsmanager_secret",
    calls: &[
        "stage: GetSecretValue AWSCURRENT",
        "stage: GetSecretValue AWSPENDING",
        "stage: PutSecretValue AWSPENDING",
        "promote: UpdateSecretVersionStage AWSCURRENT",
        "promote: UpdateSecretVersionStage AWSPENDING removed",
        "retire: GetSecretValue AWSCURRENT (safety)",
        "verify: DescribeSecret (old version no longer AWSCURRENT)",
    ],
};

/// The same with `aws_random_password: true`: one GetRandomPassword more.
const AWS_SM_RANDOM: Budget = Budget {
    kind: "aws_secretsmanager_secret (aws_random_password)",
    calls: &[
        "stage: GetSecretValue AWSCURRENT",
        "stage: GetSecretValue AWSPENDING",
        "stage: GetRandomPassword",
        "stage: PutSecretValue AWSPENDING",
        "promote: UpdateSecretVersionStage AWSCURRENT",
        "promote: UpdateSecretVersionStage AWSPENDING removed",
        "retire: GetSecretValue AWSCURRENT (safety)",
        "verify: DescribeSecret",
    ],
};

fn check(b: &Budget, calls: &[String]) {
    let documented: String = b.calls.iter().enumerate().map(|(i, c)| format!("  {:>2}. {c}\n", i + 1)).collect();
    let made: String = calls.iter().enumerate().map(|(i, c)| format!("  {:>2}. {c}\n", i + 1)).collect();
    eprintln!("{}: {} calls (budget {})\n{made}", b.kind, calls.len(), b.calls.len());
    assert!(
        calls.len() <= b.calls.len(),
        "{}: {} calls, over its budget of {}.\nMade:\n{made}Documented:\n{documented}",
        b.kind,
        calls.len(),
        b.calls.len()
    );
}

const TOKEN_VAR: &str = "KEYSWEEP_RT_VAULT_TOKEN";

fn header(vault: &str, aws: &str) -> String {
    std::env::set_var(TOKEN_VAR, common::ROOT_TOKEN);
    format!(
        "version: 1
providers:
  bao:
    kind: vault
    address: {vault}
    auth: {{ method: token, token: \"${{env:{TOKEN_VAR}}}\" }}
  aws:
    kind: aws
    region: us-east-1
    endpoint_url: {aws}
defaults:
  owner: platform
  verify: {{ attempts: 3, interval: 100ms }}
credentials:
"
    )
}

fn run_id() -> String {
    format!("{}-rt{}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"), &uuid::Uuid::new_v4().simple().to_string()[..6])
}

/// Runs every credential of `yaml` through the engine, one at a time, and
/// returns the outcomes with the calls each proxy saw from the first step on.
async fn run(yaml: &str, proxies: &[&FaultProxy]) -> (BTreeMap<String, Outcome>, Vec<Vec<String>>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("playbook.yaml");
    std::fs::write(&path, yaml).unwrap();
    let pb = keysweep::playbook::loader::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let plan = plan::build(&pb, &Selection::parse(&[], &[]).unwrap());
    let needed: BTreeSet<String> = plan
        .selected()
        .map(|w| w.cred.provider.clone())
        .chain(plan.selected().flat_map(|w| w.cred.deliver_to.iter().map(|d| d.provider.clone())))
        .collect();
    let providers = keysweep::provider::registry::connect(&pb, &needed).await.unwrap();
    let journal = Arc::new(Journal::open(&dir.path().join("journal.db")).unwrap());
    let run_id = run_id();
    let engine = Arc::new(Engine {
        journal,
        providers,
        run_id: run_id.clone(),
        concurrency: 1,
        provider_concurrency: BTreeMap::new(),
        observer: Arc::new(Quiet),
        stop: Default::default(),
        own_logins: Default::default(),
        claims_in: BTreeMap::new(),
    });
    for p in proxies {
        p.reset_log();
    }
    let states = engine.execute(&Arc::new(plan)).await.unwrap();
    let calls = proxies.iter().map(|p| p.calls()).collect();
    engine.providers.close().await;
    let outcomes = states.into_iter().filter_map(|(id, s)| s.outcome.map(|o| (id, o))).collect();
    (outcomes, calls)
}

fn rotated(outcomes: &BTreeMap<String, Outcome>, id: &str) {
    match outcomes.get(id) {
        Some(Outcome::Rotated { .. }) => {}
        other => panic!("{id}: {other:?}"),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

fn tag() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_token_rotation_stays_within_its_budget() {
    let t = tag();
    let path = format!("rt-{t}/tokens/tok");
    let (old, p2) = blocking({
        let path = path.clone();
        move || {
            let b = common::bao();
            let (tok, acc) = b.create_token(&["default"], json!({ "app": "rt" }));
            b.kv_put(&path, json!({ "value": tok, "accessor": acc }));
            (tok, path)
        }
    })
    .await;
    let vault = FaultProxy::start(&common::bao().addr).await;
    let mut yaml = header(&vault.endpoint, "http://127.0.0.1:1");
    yaml += &format!("  - {{ id: tok, provider: bao, target: {{ kind: vault_token }}, deliver_to: [{{ provider: bao, path: \"{p2}\" }}] }}\n");
    let (outcomes, calls) = run(&yaml, &[&vault]).await;
    rotated(&outcomes, "tok");
    check(&VAULT_TOKEN, &calls[0]);
    blocking(move || {
        let b = common::bao();
        assert!(!b.token_works(&old), "the old token still works");
        let cur = b.kv_get(&path).expect("the store holds the new token");
        let new = cur["value"].as_str().unwrap().to_string();
        assert!(b.token_works(&new), "the new token does not work");
        assert!(b.kv_get(&format!("keysweep-pending/{path}")).is_none(), "pending entry left behind");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_approle_rotation_stays_within_its_budget() {
    let t = tag();
    let role = format!("rt-{t}");
    let path = format!("rt-{t}/approle/sid");
    let (role_id, old) = blocking({
        let (role, path) = (role.clone(), path.clone());
        move || {
            let b = common::bao();
            let role_id = b.create_role(&role);
            let (sid, acc) = b.create_secret_id(&role);
            b.kv_put(&path, json!({ "value": sid, "accessor": acc, "role_id": role_id }));
            (role_id, sid)
        }
    })
    .await;
    let vault = FaultProxy::start(&common::bao().addr).await;
    let mut yaml = header(&vault.endpoint, "http://127.0.0.1:1");
    yaml += &format!(
        "  - {{ id: sid, provider: bao, target: {{ kind: vault_approle_secret_id, role: {role} }}, deliver_to: [{{ provider: bao, path: \"{path}\" }}] }}\n"
    );
    let (outcomes, calls) = run(&yaml, &[&vault]).await;
    rotated(&outcomes, "sid");
    check(&VAULT_APPROLE, &calls[0]);
    blocking(move || {
        let b = common::bao();
        assert!(!b.secret_id_works(&role_id, &old), "the old secret-id still logs in");
        let new = b.kv_get(&path).unwrap()["value"].as_str().unwrap().to_string();
        assert!(b.secret_id_works(&role_id, &new), "the new secret-id does not log in");
        let (_, l) = b.call("LIST", &format!("auth/approle/role/{role}/secret-id"), None);
        assert_eq!(l["data"]["keys"].as_array().map(Vec::len), Some(1), "exactly one live secret-id: {l}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_kv_rotation_stays_within_its_budget() {
    let t = tag();
    let path = format!("rt-{t}/shared/db");
    let old = format!("old-kv-round-trips-{t}");
    blocking({
        let (path, old) = (path.clone(), old.clone());
        move || {
            common::bao().kv_put(&path, json!({ "value": old, "username": "svc" }));
        }
    })
    .await;
    let vault = FaultProxy::start(&common::bao().addr).await;
    let mut yaml = header(&vault.endpoint, "http://127.0.0.1:1");
    yaml += &format!("  - {{ id: kv, provider: bao, target: {{ kind: vault_kv_secret, path: \"{path}\", generate: {{ length: 40 }} }} }}\n");
    let (outcomes, calls) = run(&yaml, &[&vault]).await;
    rotated(&outcomes, "kv");
    check(&VAULT_KV, &calls[0]);
    blocking(move || {
        let b = common::bao();
        let cur = b.kv_get(&path).unwrap();
        assert_ne!(cur["value"], json!(old));
        assert_eq!(cur["value"].as_str().unwrap().len(), 40);
        assert_eq!(cur["username"], "svc", "other fields kept");
        let meta = b.kv_meta(&path).unwrap();
        assert_eq!(meta["current_version"], 2);
        assert_eq!(meta["versions"]["1"]["destroyed"], true);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_iam_key_into_secrets_manager_stays_within_its_budget() {
    let m = moto();
    m.set_admin_env();
    let t = tag();
    let user = format!("rt-{t}");
    let (kid, secret) = m.create_user_with_key(&user).await;
    let store = format!("rt-{t}/iam/key");
    m.sm().await.create_secret().name(&store).secret_string(json!({ "value": secret, "access_key_id": kid }).to_string()).send().await.unwrap();
    let aws = FaultProxy::start(&m.endpoint).await;
    let mut yaml = header("http://127.0.0.1:1", &aws.endpoint);
    yaml += &format!("  - {{ id: key, provider: aws, target: {{ kind: aws_iam_access_key, user: {user} }}, deliver_to: [{{ provider: aws, path: \"{store}\" }}] }}\n");
    let (outcomes, calls) = run(&yaml, &[&aws]).await;
    rotated(&outcomes, "key");
    check(&AWS_IAM_TO_SM, &calls[0]);
    assert!(!m.key_works(&kid, &secret).await, "the old key still authenticates");
    let cur = m.sm().await.get_secret_value().secret_id(&store).version_stage("AWSCURRENT").send().await.unwrap();
    let v: serde_json::Value = serde_json::from_str(cur.secret_string().unwrap()).unwrap();
    assert!(m.key_works(v["access_key_id"].as_str().unwrap(), v["value"].as_str().unwrap()).await, "the new key does not work");
    let keys = m.iam().await.list_access_keys().user_name(&user).send().await.unwrap();
    assert_eq!(keys.access_key_metadata().len(), 1, "one key left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_secrets_manager_secret_stays_within_its_budget() {
    let m = moto();
    m.set_admin_env();
    for (budget, random) in [(&AWS_SM, false), (&AWS_SM_RANDOM, true)] {
        let t = tag();
        let name = format!("rt-{t}/app/secret");
        let old = format!("old-sm-round-trips-{t}");
        m.sm().await.create_secret().name(&name).secret_string(&old).send().await.unwrap();
        let aws = FaultProxy::start(&m.endpoint).await;
        let mut yaml = header("http://127.0.0.1:1", &aws.endpoint);
        yaml += &format!(
            "  - {{ id: sm, provider: aws, target: {{ kind: aws_secretsmanager_secret, name: \"{name}\", aws_random_password: {random}, generate: {{ length: 24 }} }} }}\n"
        );
        let (outcomes, calls) = run(&yaml, &[&aws]).await;
        rotated(&outcomes, "sm");
        check(budget, &calls[0]);
        let cur = m.sm().await.get_secret_value().secret_id(&name).version_stage("AWSCURRENT").send().await.unwrap();
        assert_ne!(cur.secret_string(), Some(old.as_str()));
        assert_eq!(cur.secret_string().unwrap().len(), 24);
    }
}

/// IAM calls of one `keysweep discover` (the inventory `plan` and `run
/// --due` make too), by operation, with the process's AWS credentials
/// `creds` (key id, secret).
fn discover_iam_calls(aws: &FaultProxy, creds: (&str, &str), listed: (&str, &str)) -> (BTreeMap<String, usize>, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let pb = dir.path().join("playbook.yaml");
    std::fs::write(
        &pb,
        format!(
            "version: 1
providers:
  aws: {{ kind: aws, region: us-east-1, endpoint_url: {} }}
credentials:
  - {{ id: listed, owner: infra, provider: aws, action: revoke, target: {{ kind: aws_iam_access_key, user: {}, access_key_id: {} }} }}
",
            aws.endpoint, listed.0, listed.1
        ),
    )
    .unwrap();
    let mut cmd = common::keysweep(&dir.path().join("state"));
    moto().configure(&mut cmd);
    aws.reset_log();
    let out = cmd
        .env("AWS_ACCESS_KEY_ID", creds.0)
        .env("AWS_SECRET_ACCESS_KEY", creds.1)
        .args(["discover", pb.to_str().unwrap(), "--format", "json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(matches!(out.status.code(), Some(0 | 1)), "discover: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    const IAM: &[&str] = &[
        "GetAccountAuthorizationDetails",
        "ListUsers",
        "ListAttachedUserPolicies",
        "ListGroupsForUser",
        "ListAttachedGroupPolicies",
        "ListAccessKeys",
        "GetAccessKeyLastUsed",
    ];
    let mut by_op = BTreeMap::new();
    for c in aws.calls() {
        if IAM.contains(&c.as_str()) {
            *by_op.entry(c).or_default() += 1;
        }
    }
    (by_op, serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null))
}

async fn iam_users_and_keys() -> (usize, usize) {
    let iam = moto().iam().await;
    let users: Vec<String> = iam.list_users().max_items(1000).send().await.unwrap().users().iter().map(|u| u.user_name().to_string()).collect();
    let mut keys = 0;
    for u in &users {
        keys += iam.list_access_keys().user_name(u).send().await.map(|o| o.access_key_metadata().len()).unwrap_or(0);
    }
    (users.len(), keys)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_inventory_asks_iam_once_per_user_and_once_per_key() {
    // The budget of IAM's part of an inventory: one GetAccountAuthorizationDetails
    // per page of users and groups (with their attached policies), then one
    // ListAccessKeys per user and one GetAccessKeyLastUsed per key: IAM has no
    // account-wide call for either. Before: ListUsers, then per user
    // ListAttachedUserPolicies, ListGroupsForUser, ListAccessKeys and one
    // GetAccessKeyLastUsed per key, plus ListAttachedGroupPolicies per group.
    let m = moto();
    m.set_admin_env();
    let t = tag();
    let iam = m.iam().await;
    let group = format!("rt-admins-{t}");
    iam.create_group().group_name(&group).send().await.unwrap();
    iam.attach_group_policy().group_name(&group).policy_arn(common::moto::ADMIN_POLICY_ARN).send().await.unwrap();
    let mut keys = vec![];
    for i in 0..4 {
        let user = format!("rt-inv-{t}-{i}");
        keys.push((user.clone(), m.create_user_with_key(&user).await.0));
    }
    iam.add_user_to_group().group_name(&group).user_name(&keys[0].0).send().await.unwrap();
    // keysweep's login for the fallback: everything but GetAccountAuthorizationDetails.
    let limited = format!("rt-limited-{t}");
    let (lid, lsecret) = m.create_user_with_key(&limited).await;
    let policy = json!({ "Version": "2012-10-17", "Statement": [
        { "Effect": "Allow", "Action": "*", "Resource": "*" },
        { "Effect": "Deny", "Action": "iam:GetAccountAuthorizationDetails", "Resource": "*" },
    ] });
    iam.put_user_policy().user_name(&limited).policy_name("rt-no-gaad").policy_document(policy.to_string()).send().await.unwrap();

    let aws = FaultProxy::start(&m.endpoint).await;
    let privileged_key = |report: &serde_json::Value| {
        report["findings"].as_array().into_iter().flatten().any(|f| f["finding"] == "privileged" && f["id"] == json!(keys[0].1))
    };

    let (before_users, _) = iam_users_and_keys().await;
    let (calls, report) = discover_iam_calls(&aws, (&m.admin_key_id, &m.admin_secret), (&keys[1].0, &keys[1].1));
    let (after_users, after_keys) = iam_users_and_keys().await;
    eprintln!("inventory, GetAccountAuthorizationDetails allowed: {calls:?} ({before_users}..{after_users} users, {after_keys} keys)");
    assert_eq!(calls.get("GetAccountAuthorizationDetails"), Some(&1), "{calls:?}");
    for per_user in ["ListUsers", "ListAttachedUserPolicies", "ListGroupsForUser", "ListAttachedGroupPolicies"] {
        assert_eq!(calls.get(per_user), None, "{per_user} is answered by GetAccountAuthorizationDetails: {calls:?}");
    }
    let lak = calls.get("ListAccessKeys").copied().unwrap_or(0);
    assert!((before_users..=after_users).contains(&lak), "one ListAccessKeys per user: {calls:?}, {before_users}..{after_users} users");
    let total: usize = calls.values().sum();
    assert!(total <= 1 + after_users + after_keys, "IAM calls {total} over 1 + {after_users} users + {after_keys} keys: {calls:?}");
    assert!(privileged_key(&report), "the key of the user in the admin group is privileged (through its group)");

    // Refused: the same inventory, one user at a time.
    let (before_users, _) = iam_users_and_keys().await;
    let (calls, report) = discover_iam_calls(&aws, (&lid, &lsecret), (&keys[1].0, &keys[1].1));
    let (after_users, _) = iam_users_and_keys().await;
    eprintln!("inventory, GetAccountAuthorizationDetails refused: {calls:?}");
    assert_eq!(calls.get("GetAccountAuthorizationDetails"), Some(&1), "{calls:?}");
    assert_eq!(calls.get("ListUsers"), Some(&1), "{calls:?}");
    let per_user = calls.get("ListGroupsForUser").copied().unwrap_or(0);
    assert!((before_users..=after_users).contains(&per_user), "{calls:?}");
    assert!(privileged_key(&report), "the fallback finds the privileged key too");
}

/// Waits until `proxy` has seen a request whose call starts with `call`.
async fn seen_call(proxy: &FaultProxy, call: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !proxy.calls().iter().any(|c| c.starts_with(call)) {
        assert!(std::time::Instant::now() < deadline, "no `{call}` seen");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_edit_between_promote_and_retire_is_seen_and_nothing_is_retired() {
    // The memo never answers the retire-time check: someone puts the old
    // token back in the store during the grace period, and the run refuses
    // to retire it (it is what consumers read now).
    let t = tag();
    let path = format!("rt-{t}/tokens/hand");
    let (old, acc) = blocking({
        let path = path.clone();
        move || {
            let b = common::bao();
            let (tok, acc) = b.create_token(&["default"], json!({ "app": "rt" }));
            b.kv_put(&path, json!({ "value": tok, "accessor": acc }));
            (tok, acc)
        }
    })
    .await;
    let vault = Arc::new(FaultProxy::start(&common::bao().addr).await);
    let mut yaml = header(&vault.endpoint, "http://127.0.0.1:1");
    yaml += &format!(
        "  - {{ id: tok, provider: bao, grace_period: 2s, target: {{ kind: vault_token }}, deliver_to: [{{ provider: bao, path: \"{path}\" }}] }}\n"
    );
    let edit = tokio::spawn({
        let (vault, path, old, acc) = (vault.clone(), path.clone(), old.clone(), acc.clone());
        async move {
            // The promotion is the write of the current value.
            seen_call(&vault, &format!("POST /v1/secret/data/{path}")).await;
            blocking(move || common::bao().kv_put(&path, json!({ "value": old, "accessor": acc }))).await;
        }
    });
    let (outcomes, _) = run(&yaml, &[&vault]).await;
    edit.await.unwrap();
    match outcomes.get("tok") {
        Some(Outcome::Failed { step: keysweep::report::Step::Retire, reason }) => assert!(reason.contains("refused to retire"), "{reason}"),
        other => panic!("{other:?}"),
    }
    blocking(move || assert!(common::bao().token_works(&old), "the token put back in service was retired")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_edit_between_stage_and_promote_is_kept() {
    // Promotion writes with check-and-set on the version read at stage (the
    // memo's): a field added by hand meanwhile makes it refused, the secret
    // is read again and the new value is written beside the edit.
    let t = tag();
    let path = format!("rt-{t}/shared/edited");
    let old = format!("old-kv-hand-edit-{t}");
    blocking({
        let (path, old) = (path.clone(), old.clone());
        move || {
            common::bao().kv_put(&path, json!({ "value": old, "username": "svc" }));
        }
    })
    .await;
    let vault = Arc::new(FaultProxy::start(&common::bao().addr).await);
    // The promotion waits a second at the proxy: time for the hand edit.
    vault.add(
        common::faultproxy::Rule::new(
            "hold-promote",
            Some("POST"),
            &format!("^/v1/secret/data/{path}$"),
            common::faultproxy::Fault::Delay(std::time::Duration::from_secs(1)),
        )
        .body("keysweep_rotated_at")
        .once(),
    );
    let mut yaml = header(&vault.endpoint, "http://127.0.0.1:1");
    yaml += &format!("  - {{ id: kv, provider: bao, target: {{ kind: vault_kv_secret, path: \"{path}\", generate: {{ length: 40 }} }} }}\n");
    let edit = tokio::spawn({
        let (vault, path, old) = (vault.clone(), path.clone(), old.clone());
        async move {
            seen_call(&vault, &format!("POST /v1/secret/data/keysweep-pending/{path}")).await;
            blocking(move || common::bao().kv_put(&path, json!({ "value": old, "username": "svc", "note": "added by hand" }))).await;
        }
    });
    let (outcomes, calls) = run(&yaml, &[&vault]).await;
    edit.await.unwrap();
    rotated(&outcomes, "kv");
    assert_eq!(vault.fired("hold-promote"), 1);
    let promotes = calls[0].iter().filter(|c| *c == &format!("POST /v1/secret/data/{path}")).count();
    assert_eq!(promotes, 2, "the first promotion is refused by check-and-set, the second made after a fresh read: {:?}", calls[0]);
    blocking(move || {
        let cur = common::bao().kv_get(&path).unwrap();
        assert_eq!(cur["note"], "added by hand", "the hand edit is kept: {cur}");
        assert_eq!(cur["username"], "svc");
        assert_ne!(cur["value"], json!(old));
        assert_eq!(cur["value"].as_str().unwrap().len(), 40);
    })
    .await;
}
