//! The fault matrix (issue #8, first check): the real binary against a real
//! OpenBao, moto (IAM auth on) and PostgreSQL, each behind the
//! fault-injecting proxy (tests/common/faultproxy.rs), one fault on one
//! step's request per cell.
//!
//! Each cell seeds one credential of its kind under a prefix of its own,
//! runs `keysweep run` once with the fault active, then once more with no
//! fault (half the cells in the same state directory, half in a fresh one:
//! the journal lost), and checks with clients of its own, straight to the
//! real servers (tests/common/independent.rs), after each run:
//!
//! 1. `old-dead`   — every credential the report calls rotated/revoked has its old secret refused;
//! 2. `no-wider`   — the replacement allows no more than its original (token policies/TTL,
//!    secret-id uses/TTL, IAM key of the same user, PostgreSQL role attributes);
//! 3. `consumer`   — the store's current value works (nobody locked out);
//! 4. `no-orphan`  — no secret minted for the credential is alive unless the store holds it;
//! 5. `once`       — nothing rotated twice (the store's version history);
//! 6. `exit`       — exit 0 only if every credential is rotated/revoked, and the totals add up;
//! 7. `finishes`   — the clean run after the faulty one ends rotated, exit 0.
//!
//! The matrix (fault × step × kind → holds / VIOLATED) is printed to stdout
//! and stderr; the test fails on any VIOLATED cell and on any cell whose
//! fault never fired (a combination not produced is not reported as holding).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::faultproxy::{Fault, FaultProxy, Rule, TcpFault, TcpFaultProxy, TcpRule};
use common::independent::{self as ind, Vd};
use common::moto::moto;
use common::postgres::postgres;
use serde_json::{json, Value};

/// Checks that a known keysweep defect still violates, kept out of the
/// verdict so the rest of the matrix guards what holds; the matrix prints
/// them as `KNOWN DEFECT`. Each entry: (kind, step, fault, check). Empty: the
/// one entry it had (IAM key, DeleteAccessKey refused throughout the faulty
/// run: the next run could not tell the half-finished rotation without a
/// claim in the Secrets Manager store) holds since the AWS provider keeps its
/// claims in Vault KV (`claims_in`).
const KNOWN_DEFECTS: &[(&str, &str, &str, &str)] = &[];

/// Worker threads running cells at once (each cell is mostly waiting on
/// timeouts and child processes).
const WORKERS: usize = 6;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Token,
    SecretId,
    Kv,
    Iam,
    Pg,
    /// `action: revoke` of a Vault token.
    TokenRevoke,
    /// `action: revoke` of an IAM access key.
    IamRevoke,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Token => "vault_token",
            Kind::SecretId => "vault_approle_secret_id",
            Kind::Kv => "vault_kv_secret",
            Kind::Iam => "aws_iam_access_key",
            Kind::Pg => "postgres_role",
            Kind::TokenRevoke => "vault_token (revoke)",
            Kind::IamRevoke => "aws_iam_access_key (revoke)",
        }
    }
    fn short(self) -> &'static str {
        match self {
            Kind::Token => "tok",
            Kind::SecretId => "sid",
            Kind::Kv => "kv",
            Kind::Iam => "iam",
            Kind::Pg => "pg",
            Kind::TokenRevoke => "rtok",
            Kind::IamRevoke => "riam",
        }
    }
    fn aws(self) -> bool {
        matches!(self, Kind::Iam | Kind::IamRevoke)
    }
}

/// Where a fault hits: the request of one step. `{store}`, `{kv}`, `{role}`
/// in `path` are the cell's store path, KV path and AppRole role.
#[derive(Clone, Copy)]
struct Spot {
    step: &'static str,
    method: Option<&'static str>,
    path: &'static str,
    body: Option<&'static str>,
    /// `{kid}` in the header regex is the credential's old access key id.
    header: Option<(&'static str, &'static str)>,
    /// Matching requests let through before the fault fires.
    skip: usize,
}

const fn spot(step: &'static str, method: Option<&'static str>, path: &'static str) -> Spot {
    Spot { step, method, path, body: None, header: None, skip: 0 }
}
const fn spot_body(step: &'static str, method: Option<&'static str>, path: &'static str, body: &'static str) -> Spot {
    Spot { step, method, path, body: Some(body), header: None, skip: 0 }
}
/// An IAM Query API call: `Action=` in the form body.
const fn iam(step: &'static str, action: &'static str) -> Spot {
    Spot { step, method: Some("POST"), path: "^/", body: Some(action), header: None, skip: 0 }
}
/// A Secrets Manager call: the operation in `X-Amz-Target`.
const fn sm(step: &'static str, op: &'static str) -> Spot {
    Spot { step, method: Some("POST"), path: "^/", body: None, header: Some(("x-amz-target", op)), skip: 0 }
}

// Vault store requests (the credential's KV store at `{store}`).
const STAGE_WRITE: Spot = spot_body("stage: write pending", Some("POST"), "^/v1/secret/data/keysweep-pending/{store}$", "staged");
const PROMOTE_WRITE: Spot = spot_body("promote: write current", Some("POST"), "^/v1/secret/data/{store}$", "keysweep_rotated_at");
const MINTING_WRITE: Spot = spot_body("stage: write minting claim", Some("POST"), "^/v1/secret/data/keysweep-pending/{store}$", "minting");
const PENDING_DELETE: Spot = spot("promote: delete pending", Some("DELETE"), "^/v1/secret/metadata/keysweep-pending/{store}$");
const STORE_READ: Spot = spot("stage: read current", Some("GET"), "^/v1/secret/data/{store}$");

/// A fault on an HTTP request, or on the bytes of a TCP stream (PostgreSQL).
#[derive(Clone)]
enum AnyFault {
    Http(Fault),
    /// The fault, and how many matches to let through first.
    Tcp(TcpFault, usize),
}

struct Cell {
    kind: Kind,
    /// For a TCP fault, `spot.path` is the byte pattern (with `{role}`).
    spot: Spot,
    fault_name: &'static str,
    fault: AnyFault,
    /// `None`: every matching request of the faulty run.
    times: Option<usize>,
    /// The clean run gets a fresh state directory (the journal lost).
    fresh: bool,
}

fn cells() -> Vec<Cell> {
    use Kind::*;
    let once = Some(1);
    let all = None;
    let lookup = spot("stage: lookup old", Some("POST"), "^/v1/auth/token/lookup-accessor$");
    let create = spot("stage: mint", Some("POST"), "^/v1/auth/token/create");
    let revoke = spot("retire", Some("POST"), "^/v1/auth/token/revoke-accessor$");
    let sid_lookup = spot("stage: lookup old", Some("POST"), "^/v1/auth/approle/role/{role}/secret-id-accessor/lookup$");
    let sid_mint = spot("stage: mint", Some("POST"), "^/v1/auth/approle/role/{role}/secret-id$");
    let sid_destroy = spot("retire", Some("POST"), "^/v1/auth/approle/role/{role}/secret-id-accessor/destroy$");
    let sid_login = spot("test: login", Some("POST"), "^/v1/auth/approle/login$");
    let kv_destroy = spot("retire: destroy old", None, "^/v1/secret/destroy/{kv}$");
    let kv_meta = spot("verify: metadata", Some("GET"), "^/v1/secret/metadata/{kv}$");
    let v: Vec<(Kind, Spot, &'static str, Fault, Option<usize>)> = vec![
        // vault_token delivered to a KV store
        (Token, lookup, "html-403", Fault::Html(403), all),
        (Token, lookup, "truncated-200", Fault::Truncate, once),
        (Token, lookup, "reset-before", Fault::ResetBefore, all),
        (Token, create, "lost-answer", Fault::ResetAfter, once),
        (Token, create, "lost-answer", Fault::ResetAfter, all),
        (Token, create, "stall", Fault::StallForever, once),
        (Token, create, "truncated-200", Fault::Truncate, once),
        (Token, create, "echo-500", Fault::Echo, once),
        (Token, lookup, "lb-404", Fault::Html(404), all),
        // The slot is taken by the `minting` claim (it was read free): refused throughout, nothing is minted.
        (Token, MINTING_WRITE, "503", Fault::ServerError(503), all),
        (Token, MINTING_WRITE, "lost-answer", Fault::ResetAfter, once),
        (Token, create, "cut-off", Fault::CutOff, once),
        (Token, STAGE_WRITE, "lost-answer", Fault::ResetAfter, once),
        (Token, STAGE_WRITE, "503", Fault::ServerError(503), all),
        (Token, PROMOTE_WRITE, "lost-answer", Fault::ResetAfter, once),
        (Token, PROMOTE_WRITE, "stall", Fault::StallForever, all),
        (Token, PROMOTE_WRITE, "lb-404", Fault::Html(404), all),
        (Token, PROMOTE_WRITE, "truncated-200", Fault::Truncate, once),
        (Token, Spot { skip: 1, ..spot("test: lookup-self", Some("GET"), "^/v1/auth/token/lookup-self$") }, "waf-403", Fault::Html(403), all),
        (Token, PENDING_DELETE, "503", Fault::ServerError(503), all),
        (Token, PENDING_DELETE, "lost-answer", Fault::ResetAfter, once),
        (Token, revoke, "lost-answer", Fault::ResetAfter, once),
        (Token, revoke, "503", Fault::ServerError(503), all),
        (Token, revoke, "429", Fault::RateLimit { retry_after_secs: 1 }, once),
        // AppRole secret-id delivered to a KV store
        (SecretId, sid_lookup, "waf-403", Fault::Html(403), all),
        (SecretId, sid_mint, "lost-answer", Fault::ResetAfter, once),
        (SecretId, sid_mint, "truncated-200", Fault::Truncate, once),
        (SecretId, sid_mint, "503", Fault::ServerError(503), all),
        (SecretId, STAGE_WRITE, "lost-answer", Fault::ResetAfter, once),
        (SecretId, PROMOTE_WRITE, "lost-answer", Fault::ResetAfter, once),
        (SecretId, PENDING_DELETE, "503", Fault::ServerError(503), all),
        (SecretId, sid_destroy, "lost-answer", Fault::ResetAfter, once),
        (SecretId, sid_destroy, "503", Fault::ServerError(503), all),
        (SecretId, sid_login, "429", Fault::RateLimit { retry_after_secs: 1 }, once),
        // KV secret rotated in place
        (Kv, STORE_READ, "lb-404", Fault::Html(404), all),
        (Kv, STORE_READ, "truncated-200", Fault::Truncate, once),
        // The slot is taken by the write of the staged value with the claim in it.
        (Kv, STAGE_WRITE, "503", Fault::ServerError(503), all),
        (Kv, STAGE_WRITE, "lost-answer", Fault::ResetAfter, once),
        (Kv, PROMOTE_WRITE, "429", Fault::RateLimit { retry_after_secs: 1 }, once),
        (Kv, PROMOTE_WRITE, "lost-answer", Fault::ResetAfter, once),
        (Kv, PROMOTE_WRITE, "503", Fault::ServerError(503), all),
        (Kv, PROMOTE_WRITE, "echo-500", Fault::Echo, once),
        (Kv, PENDING_DELETE, "503", Fault::ServerError(503), all),
        (Kv, kv_destroy, "lost-answer", Fault::ResetAfter, once),
        (Kv, kv_destroy, "503", Fault::ServerError(503), all),
        (Kv, kv_meta, "lb-404", Fault::Html(404), all),
        // IAM access key delivered to Secrets Manager
        (Iam, iam("stage: mint", "Action=CreateAccessKey"), "lost-answer", Fault::ResetAfter, once),
        (Iam, iam("stage: mint", "Action=CreateAccessKey"), "lost-answer", Fault::ResetAfter, all),
        (Iam, iam("stage: mint", "Action=CreateAccessKey"), "waf-403", Fault::Html(403), all),
        (Iam, iam("stage: mint", "Action=CreateAccessKey"), "truncated-200", Fault::Truncate, once),
        (Iam, sm("stage: PutSecretValue", "secretsmanager.PutSecretValue"), "lost-answer", Fault::ResetAfter, once),
        (Iam, sm("stage: PutSecretValue", "secretsmanager.PutSecretValue"), "503", Fault::ServerError(503), all),
        (Iam, sm("promote: UpdateSecretVersionStage", "secretsmanager.UpdateSecretVersionStage"), "lost-answer", Fault::ResetAfter, once),
        (Iam, sm("promote: UpdateSecretVersionStage", "secretsmanager.UpdateSecretVersionStage"), "503", Fault::ServerError(503), all),
        (Iam, sm("stage: GetSecretValue", "secretsmanager.GetSecretValue"), "lb-404", Fault::Html(404), all),
        (Iam, iam("retire: delete", "Action=DeleteAccessKey"), "stall", Fault::StallForever, once),
        // IAM refuses the delete: the key is deactivated instead, the step fails, the next run deletes it.
        (Iam, iam("retire: delete", "Action=DeleteAccessKey"), "access-denied", Fault::AwsError(403, "AccessDenied".into()), all),
        (Iam, iam("retire: delete", "Action=DeleteAccessKey"), "lost-answer", Fault::ResetAfter, once),
        (Iam, iam("retire: delete", "Action=DeleteAccessKey"), "429", Fault::RateLimit { retry_after_secs: 1 }, once),
        (Iam, iam("retire: delete", "Action=DeleteAccessKey"), "503", Fault::ServerError(503), all),
        (Iam, Spot { skip: 1, ..iam("test: sts with the new key", "Action=GetCallerIdentity") }, "waf-403", Fault::Html(403), all),
        (
            Iam,
            Spot { header: Some(("authorization", "Credential={kid}/")), ..iam("verify: sts with the old key", "Action=GetCallerIdentity") },
            "503",
            Fault::ServerError(503),
            all,
        ),
        // revocations
        (TokenRevoke, revoke, "lost-answer", Fault::ResetAfter, once),
        (TokenRevoke, revoke, "503", Fault::ServerError(503), all),
        (TokenRevoke, spot("verify: lookup-accessor", Some("POST"), "^/v1/auth/token/lookup-accessor$"), "lb-404", Fault::Html(404), all),
        (TokenRevoke, spot("verify: lookup-accessor", Some("POST"), "^/v1/auth/token/lookup-accessor$"), "truncated-200", Fault::Truncate, all),
        (IamRevoke, iam("retire: delete", "Action=DeleteAccessKey"), "503", Fault::ServerError(503), all),
        (IamRevoke, iam("retire: delete", "Action=DeleteAccessKey"), "access-denied", Fault::AwsError(403, "AccessDenied".into()), all),
        (IamRevoke, iam("retire: delete", "Action=DeleteAccessKey"), "lost-answer", Fault::ResetAfter, once),
        (IamRevoke, iam("verify: ListAccessKeys", "Action=ListAccessKeys"), "truncated-200", Fault::Truncate, all),
        // PostgreSQL password delivered to a Vault KV store
        (Pg, STORE_READ, "lb-404", Fault::Html(404), all),
        (Pg, STAGE_WRITE, "lost-answer", Fault::ResetAfter, once),
        (Pg, PROMOTE_WRITE, "lost-answer", Fault::ResetAfter, once),
        (Pg, PROMOTE_WRITE, "503", Fault::ServerError(503), all),
        (Pg, PENDING_DELETE, "503", Fault::ServerError(503), all),
    ];
    // PostgreSQL itself, through the TCP fault proxy: the admin's ALTER ROLE,
    // and the logins as the role (startup message `user\0<role>\0`: the
    // first is `test`, the later ones `verify_dead`).
    let alter = spot("apply: ALTER ROLE", None, "ALTER ROLE");
    let login = spot("test: login as the role", None, "user\0{role}\0");
    let verify = spot("verify: login with old pw", None, "user\0{role}\0");
    let tcp: Vec<(Kind, Spot, &'static str, AnyFault, Option<usize>)> = vec![
        (Pg, alter, "tcp-reset-before", AnyFault::Tcp(TcpFault::ResetBefore, 0), all),
        (Pg, alter, "tcp-lost-answer", AnyFault::Tcp(TcpFault::ResetAfterAnswer, 0), once),
        (Pg, alter, "tcp-lost-answer", AnyFault::Tcp(TcpFault::ResetAfterAnswer, 0), all),
        (Pg, alter, "tcp-stall", AnyFault::Tcp(TcpFault::Stall, 0), once),
        (Pg, login, "tcp-reset-before", AnyFault::Tcp(TcpFault::ResetBefore, 0), all),
        (Pg, login, "tcp-lost-answer", AnyFault::Tcp(TcpFault::ResetAfterAnswer, 0), once),
        (Pg, verify, "tcp-reset-before", AnyFault::Tcp(TcpFault::ResetBefore, 1), all),
        (Pg, verify, "tcp-stall", AnyFault::Tcp(TcpFault::Stall, 1), once),
    ];
    v.into_iter()
        .map(|(kind, spot, fault_name, fault, times)| (kind, spot, fault_name, AnyFault::Http(fault), times))
        .chain(tcp)
        .enumerate()
        .map(|(i, (kind, spot, fault_name, fault, times))| Cell { kind, spot, fault_name, fault, times, fresh: i % 2 == 1 })
        .collect()
}

// ---------- seeding ----------

/// What a cell seeded and what the independent checks compare with.
struct Seeded {
    kind: Kind,
    id: String,
    /// The credential's store: a KV path (Vault) or a secret name (AWS).
    store: String,
    /// The AppRole role, the IAM user or the PostgreSQL role.
    account: String,
    role_id: String,
    old: String,
    /// Token: the old token's lookup; secret-id: its accessor; IAM: the old key id;
    /// PostgreSQL: the role's attributes.
    old_meta: Value,
    yaml: String,
    /// A KV secret in the same estate (Vault and PostgreSQL cells) whose
    /// requests no fault matches: (id, path, old value). It must be rotated
    /// by each run, whatever the fault did to its neighbour.
    bystander: Option<(String, String, String)>,
}

const OLD_SID_USES: u64 = 5;
const OLD_SID_TTL: u64 = 3600;

fn header(kind: Kind) -> String {
    let mut h = "version: 1\nproviders:\n".to_string();
    if !kind.aws() {
        h += "  bao:
    kind: vault
    address: ${env:VAULT_ADDR}
    auth: { method: token, token: \"${env:VAULT_TOKEN}\" }
    limits: { concurrency: 4, timeout: 2s, max_attempts: 2 }
";
    }
    if kind == Kind::Pg {
        let pg = postgres();
        h += &format!(
            "  pg:
    kind: postgres
    host: {}
    port: {{PGPORT}}
    admin: {{ user: {}, password: \"${{env:KS_PG_ADMIN}}\" }}
    limits: {{ timeout: 2s, max_attempts: 2 }}
",
            pg.host, pg.admin_user
        );
    }
    if kind.aws() {
        // Secrets Manager has no check-and-set: the claims of the credentials
        // delivered to it live in a Vault KV (not behind the proxy).
        h += "  claims:
    kind: vault
    address: ${env:VAULT_ADDR}
    auth: { method: token, token: \"${env:VAULT_TOKEN}\" }
  aws:
    kind: aws
    region: us-east-1
    endpoint_url: ${env:KEYSWEEP_TEST_AWS_ENDPOINT}
    limits: { concurrency: 4, timeout: 2s, max_attempts: 2 }
    claims_in: { provider: claims }
";
    }
    h += "defaults:\n  verify: { attempts: 3, interval: 200ms }\ncredentials:\n";
    h
}

async fn seed(kind: Kind, p: &str) -> Seeded {
    let vd = Vd::new();
    let id = format!("{p}-{}", kind.short());
    let mut s = Seeded {
        kind,
        id: id.clone(),
        store: String::new(),
        account: String::new(),
        role_id: String::new(),
        old: String::new(),
        old_meta: Value::Null,
        yaml: header(kind),
        bystander: None,
    };
    if !kind.aws() {
        let (bid, bpath, bold) = (format!("{p}-bystander"), format!("{p}/bystander"), format!("old-bystander-{}", uuid::Uuid::new_v4().simple()));
        put(&vd, &bpath, json!({ "value": bold, "username": "svc" })).await;
        s.yaml += &format!(
            "  - {{ id: {bid}, owner: data, provider: bao, target: {{ kind: vault_kv_secret, path: \"{bpath}\", generate: {{ length: 40 }} }} }}\n"
        );
        s.bystander = Some((bid, bpath, bold));
    }
    match kind {
        Kind::Token => {
            s.store = format!("{p}/tokens/{id}");
            let (st, r) = vd
                .call(
                    "POST",
                    "auth/token/create-orphan",
                    Some(json!({ "policies": ["fm-app", "default"], "meta": { "app": id }, "ttl": "1h", "explicit_max_ttl": "2h" })),
                )
                .await;
            assert_eq!(st, 200, "{r}");
            s.old = r["auth"]["client_token"].as_str().unwrap().into();
            let acc = r["auth"]["accessor"].as_str().unwrap().to_string();
            s.old_meta = vd.token_lookup(&s.old).await.expect("the seeded token is alive");
            put(&vd, &s.store, json!({ "value": s.old, "accessor": acc })).await;
            s.yaml += &format!(
                "  - {{ id: {id}, owner: platform, provider: bao, target: {{ kind: vault_token }}, deliver_to: [{{ provider: bao, path: \"{}\" }}] }}\n",
                s.store
            );
        }
        Kind::SecretId => {
            s.store = format!("{p}/approle/{id}");
            s.account = format!("{p}-role");
            let (st, r) = vd.call("POST", &format!("auth/approle/role/{}", s.account), Some(json!({ "token_policies": ["default"] }))).await;
            assert!(st == 200 || st == 204, "{r}");
            let (_, r) = vd.call("GET", &format!("auth/approle/role/{}/role-id", s.account), None).await;
            s.role_id = r["data"]["role_id"].as_str().unwrap().into();
            let (st, r) = vd
                .call("POST", &format!("auth/approle/role/{}/secret-id", s.account), Some(json!({ "num_uses": OLD_SID_USES, "ttl": OLD_SID_TTL })))
                .await;
            assert_eq!(st, 200, "{r}");
            s.old = r["data"]["secret_id"].as_str().unwrap().into();
            let acc = r["data"]["secret_id_accessor"].as_str().unwrap().to_string();
            s.old_meta = json!(acc);
            put(&vd, &s.store, json!({ "value": s.old, "accessor": acc, "role_id": s.role_id })).await;
            s.yaml += &format!(
                "  - {{ id: {id}, owner: apps, provider: bao, target: {{ kind: vault_approle_secret_id, role: {} }}, deliver_to: [{{ provider: bao, path: \"{}\" }}] }}\n",
                s.account, s.store
            );
        }
        Kind::Kv => {
            s.store = format!("{p}/shared/{id}");
            s.old = format!("old-kv-{p}-Zq8-{}", uuid::Uuid::new_v4().simple());
            put(&vd, &s.store, json!({ "value": s.old, "username": "svc" })).await;
            s.yaml += &format!(
                "  - {{ id: {id}, owner: data, provider: bao, target: {{ kind: vault_kv_secret, path: \"{}\", generate: {{ length: 40 }} }} }}\n",
                s.store
            );
        }
        Kind::Iam => {
            s.account = format!("{p}-user");
            s.store = format!("{p}/iam/{id}");
            let (kid, secret) = moto().create_user_with_key(&s.account).await;
            s.old = secret.clone();
            s.old_meta = json!(kid);
            let v = json!({ "value": secret, "access_key_id": kid }).to_string();
            moto().sm().await.create_secret().name(&s.store).secret_string(v).send().await.unwrap();
            s.yaml += &format!(
                "  - {{ id: {id}, owner: infra, provider: aws, target: {{ kind: aws_iam_access_key, user: {} }}, deliver_to: [{{ provider: aws, path: \"{}\" }}] }}\n",
                s.account, s.store
            );
        }
        Kind::TokenRevoke => {
            let (st, r) =
                vd.call("POST", "auth/token/create-orphan", Some(json!({ "policies": ["fm-app"], "meta": { "app": id }, "ttl": "1h" }))).await;
            assert_eq!(st, 200, "{r}");
            s.old = r["auth"]["client_token"].as_str().unwrap().into();
            let acc = r["auth"]["accessor"].as_str().unwrap().to_string();
            s.yaml += &format!("  - {{ id: {id}, owner: sec, provider: bao, action: revoke, target: {{ kind: vault_token, accessor: {acc} }} }}\n");
            s.old_meta = json!(acc);
        }
        Kind::IamRevoke => {
            s.account = format!("{p}-user");
            let (kid, secret) = moto().create_user_with_key(&s.account).await;
            s.old = secret;
            s.old_meta = json!(kid);
            s.yaml += &format!(
                "  - {{ id: {id}, owner: sec, provider: aws, action: revoke, target: {{ kind: aws_iam_access_key, user: {}, access_key_id: {kid} }} }}\n",
                s.account
            );
        }
        Kind::Pg => {
            s.account = format!("{}_role", p.replace('-', "_"));
            s.store = format!("{p}/db/{id}");
            s.old = format!("old-pg-{}", uuid::Uuid::new_v4().simple());
            let (acct, old) = (s.account.clone(), s.old.clone());
            tokio::task::spawn_blocking(move || postgres().create_role(&acct, &old)).await.unwrap();
            s.old_meta = json!(pg_attrs(&s.account).await);
            put(&vd, &s.store, json!({ "value": s.old, "username": s.account })).await;
            s.yaml += &format!(
                "  - {{ id: {id}, owner: data, provider: pg, target: {{ kind: postgres_role, user: \"{}\" }}, deliver_to: [{{ provider: bao, path: \"{}\" }}] }}\n",
                s.account, s.store
            );
        }
    }
    s
}

async fn put(vd: &Vd, path: &str, data: Value) {
    let (st, r) = vd.call("POST", &format!("secret/data/{path}"), Some(json!({ "data": data }))).await;
    assert_eq!(st, 200, "seed {path}: {r}");
}

/// A PostgreSQL role's privileges as the catalog says: attributes and memberships.
async fn pg_attrs(role: &str) -> String {
    let q = format!(
        "SELECT concat_ws(',', rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolbypassrls, rolconnlimit, rolvaliduntil, \
         (SELECT string_agg(m.roleid::regrole::text, ',' ORDER BY 1) FROM pg_auth_members m WHERE m.member = r.oid)) FROM pg_roles r WHERE rolname = {}",
        common::postgres::quote_literal(role)
    );
    tokio::task::spawn_blocking(move || postgres().query_one_text(&q).unwrap_or_default()).await.unwrap()
}

async fn pg_login(user: &str, pw: &str) -> bool {
    let (u, p) = (user.to_string(), pw.to_string());
    tokio::task::spawn_blocking(move || postgres().login_works(&u, &p)).await.unwrap()
}

/// The old access key id of an IAM cell (empty for others).
fn s_kid(s: &Seeded) -> &str {
    if s.kind.aws() {
        s.old_meta.as_str().unwrap_or_default()
    } else {
        ""
    }
}

// ---------- running the binary ----------

struct RunOut {
    /// The cell's credential (the estate may hold a bystander too).
    id: String,
    code: Option<i32>,
    timed_out: bool,
    report: Option<Value>,
    run_dir: Option<PathBuf>,
}

impl RunOut {
    fn row(&self, id: &str) -> Option<&Value> {
        self.report.as_ref()?["rows"].as_array()?.iter().find(|r| r["id"] == id)
    }
    fn outcome_of(&self, id: &str) -> String {
        self.row(id).and_then(|r| r["outcome"].as_str().map(str::to_string)).unwrap_or_else(|| "no report".into())
    }
    fn outcome(&self) -> String {
        self.outcome_of(&self.id)
    }
    fn done(&self) -> bool {
        matches!(self.outcome().as_str(), "rotated" | "revoked")
    }
    /// Every row of the report rotated or revoked.
    fn all_done(&self) -> bool {
        self.report
            .as_ref()
            .and_then(|r| r["rows"].as_array())
            .is_some_and(|rows| rows.iter().all(|r| matches!(r["outcome"].as_str(), Some("rotated" | "revoked"))))
    }
    fn summary(&self) -> String {
        let code = match (self.timed_out, self.code) {
            (true, _) => "hung".to_string(),
            (_, Some(c)) => c.to_string(),
            (_, None) => "signal".into(),
        };
        let o = self.outcome();
        let step = self.row(&self.id).and_then(|r| r["step"].as_str().map(str::to_string));
        match step {
            Some(s) if o != "rotated" => format!("{code} {o}@{s}"),
            _ => format!("{code} {o}"),
        }
    }
}

fn command(kind: Kind, state: &Path, endpoint: &str) -> Command {
    let mut c = common::keysweep(state);
    match kind {
        Kind::Iam | Kind::IamRevoke => {
            moto().configure(&mut c);
            c.env("KEYSWEEP_TEST_AWS_ENDPOINT", endpoint).env("AWS_ENDPOINT_URL", endpoint);
        }
        _ => {
            c.env("VAULT_ADDR", endpoint);
        }
    }
    if kind == Kind::Pg {
        c.env("KS_PG_ADMIN", &postgres().admin_password);
    }
    c
}

/// Runs `keysweep run` (bounded: a hang is a result, not a stuck test).
#[allow(clippy::too_many_arguments)]
fn run_ks(kind: Kind, id: &str, endpoint: &str, playbook: &Path, state: &Path, logs: &Path, tag: &str, not: Option<&Path>) -> RunOut {
    let out = std::fs::File::create(logs.join(format!("{tag}.stdout"))).unwrap();
    let err = std::fs::File::create(logs.join(format!("{tag}.stderr"))).unwrap();
    let mut child = command(kind, state, endpoint)
        .args(["run", playbook.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("start keysweep");
    let deadline = Instant::now() + Duration::from_secs(150);
    let (code, timed_out) = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break (st.code(), false);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break (None, true);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // The report of this run: the run directory that is not `not`'s.
    let mut dirs: Vec<PathBuf> =
        std::fs::read_dir(state.join("runs")).map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
    dirs.retain(|d| Some(d.as_path()) != not);
    dirs.sort();
    let run_dir = dirs.pop();
    let report = run_dir.as_ref().and_then(|d| std::fs::read_to_string(d.join("report.json")).ok()).and_then(|s| serde_json::from_str(&s).ok());
    RunOut { id: id.to_string(), code, timed_out, report, run_dir }
}

// ---------- the independent checks ----------

#[derive(Clone, Copy, PartialEq)]
enum After {
    Faulty,
    Clean,
}

/// A violated check: (check name, what was seen).
type Violation = (&'static str, String);

/// Check 6: the exit code says done only when every row is, and the totals add up.
fn check_exit(r: &RunOut, when: &str, v: &mut Vec<Violation>) {
    if r.timed_out {
        v.push(("exit", format!("{when}: keysweep did not end within 150s")));
        return;
    }
    let Some(rep) = &r.report else {
        v.push(("exit", format!("{when}: no report.json (exit {:?})", r.code)));
        return;
    };
    if (r.code == Some(0)) != r.all_done() {
        v.push(("exit", format!("{when}: exit {:?} with outcome {} (all rows done: {})", r.code, r.outcome(), r.all_done())));
    }
    let t = &rep["totals"];
    let n = |k: &str| t[k].as_u64().unwrap_or(u64::MAX);
    let sum = n("rotated") + n("revoked") + n("unverified") + n("failed") + n("skipped");
    let rows = rep["rows"].as_array().map(|a| a.len() as u64).unwrap_or(0);
    let gaps = rep["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["selected"] != false && !matches!(r["outcome"].as_str(), Some("rotated" | "revoked")))
        .count() as u64;
    if sum != n("total") || n("total") != rows || n("gaps") != gaps {
        v.push(("exit", format!("{when}: totals do not add up: {t}")));
    }
}

/// The store's current value after a faulty run that ended (`value`, the
/// non-secret fields, and `version` for a KV secret): the clean run rotates it
/// again, so it must be dead afterwards too, and it is what the clean run replaced.
async fn snapshot(s: &Seeded) -> Option<Value> {
    let vd = Vd::new();
    match s.kind {
        Kind::Iam => ind::sm_current(&s.store).await.and_then(|c| serde_json::from_str(&c).ok()),
        Kind::TokenRevoke | Kind::IamRevoke => None,
        _ => {
            let mut cur = vd.kv_get(&s.store).await?;
            cur["version"] = json!(vd.kv_meta(&s.store).await?["current_version"].as_u64()?);
            Some(cur)
        }
    }
}

async fn check_state(s: &Seeded, when: After, run: &RunOut, mid: Option<&Value>, v: &mut Vec<Violation>) {
    let vd = Vd::new();
    let tag = if when == After::Faulty { "after the faulty run" } else { "after the clean run" };
    let rotated = run.done();
    if let Some((bid, bpath, bold)) = &s.bystander {
        // Rotated by every run: version 2 after the faulty one, 3 after the clean one.
        let expect = if when == After::Faulty { 2 } else { 3 };
        let cv = vd.kv_meta(bpath).await.and_then(|m| m["current_version"].as_u64()).unwrap_or(0);
        let cur = vd.kv_get(bpath).await;
        let bad_value = cur.as_ref().is_none_or(|c| c["value"] == bold.as_str() || c["username"] != "svc");
        let old_readable = futures::future::join_all((1..expect).map(|n| vd.kv_version_readable(bpath, n))).await.into_iter().any(|r| r);
        if run.outcome_of(bid) != "rotated" || cv != expect || bad_value || old_readable {
            v.push((
                "bystander",
                format!(
                    "{tag}: the credential beside the faulty one ended {} at version {cv} (expected rotated at {expect}, earlier versions destroyed)",
                    run.outcome_of(bid)
                ),
            ));
        }
    }
    // The faulty run's replacement, rotated again by the clean run.
    let mid = mid.filter(|_| when == After::Clean && rotated);
    let mid_value = mid.and_then(|m| m["value"].as_str()).filter(|m| *m != s.old).map(str::to_string);
    match s.kind {
        Kind::TokenRevoke => {
            if rotated && vd.token_alive(&s.old).await {
                v.push(("old-dead", format!("{tag}: reported {} but the token is alive", run.outcome())));
            }
        }
        Kind::IamRevoke => {
            let kid = s.old_meta.as_str().unwrap_or_default();
            if rotated && (ind::aws_key_user(kid, &s.old).await.is_some() || ind::aws_user_keys(&s.account).await.iter().any(|(k, _)| k == kid)) {
                v.push(("old-dead", format!("{tag}: reported {} but the key is alive or listed", run.outcome())));
            }
        }
        Kind::Token => {
            let Some(cur) = vd.kv_get(&s.store).await else {
                v.push(("consumer", format!("{tag}: the store is empty")));
                return;
            };
            let cur_tok = cur["value"].as_str().unwrap_or_default().to_string();
            let cur_acc = cur["accessor"].as_str().unwrap_or_default().to_string();
            match vd.token_lookup(&cur_tok).await {
                None => v.push(("consumer", format!("{tag}: the store's token is dead (consumers locked out)"))),
                Some(d) => {
                    if d["accessor"] != cur_acc.as_str() {
                        v.push(("consumer", format!("{tag}: the store's accessor does not name its token")));
                    }
                    if cur_tok != s.old {
                        let excess = ind::token_excess(&s.old_meta, &d);
                        if !excess.is_empty() {
                            v.push(("no-wider", format!("{tag}: the replacement token allows more: {}", excess.join("; "))));
                        }
                    }
                }
            }
            if rotated && vd.token_alive(&s.old).await {
                v.push(("old-dead", format!("{tag}: reported {} but the old token is alive", run.outcome())));
            }
            if let Some(m) = &mid_value {
                if vd.token_alive(m).await {
                    v.push(("old-dead", format!("{tag}: reported {} but the faulty run's token (rotated again) is alive", run.outcome())));
                }
            }
            // Every live token minted for this credential (metadata copied, or keysweep's nonce).
            let live = vd.tokens_with_meta("app", &s.id).await;
            let stray: Vec<String> = live
                .iter()
                .filter_map(|d| d["accessor"].as_str().map(str::to_string))
                .filter(|a| *a != cur_acc && Some(a.as_str()) != s.old_meta["accessor"].as_str())
                .collect();
            if when == After::Clean && !stray.is_empty() {
                v.push(("no-orphan", format!("{tag}: {} live token(s) no store holds: {stray:?}", stray.len())));
            }
            for d in &live {
                let ex = ind::token_excess(&s.old_meta, d);
                if !ex.is_empty() && d["accessor"] != s.old_meta["accessor"] {
                    v.push(("no-wider", format!("{tag}: a live token of this credential allows more: {}", ex.join("; "))));
                }
            }
            check_store_versions(&vd, s, when, rotated, mid.is_some(), tag, v).await;
        }
        Kind::SecretId => {
            let Some(cur) = vd.kv_get(&s.store).await else {
                v.push(("consumer", format!("{tag}: the store is empty")));
                return;
            };
            let cur_sid = cur["value"].as_str().unwrap_or_default().to_string();
            let cur_acc = cur["accessor"].as_str().unwrap_or_default().to_string();
            if !vd.secret_id_works(cur["role_id"].as_str().unwrap_or(&s.role_id), &cur_sid).await {
                v.push(("consumer", format!("{tag}: the store's secret-id does not log in (consumers locked out)")));
            }
            let live = vd.secret_id_accessors(&s.account).await;
            for acc in &live {
                if Some(acc.as_str()) == s.old_meta.as_str() {
                    continue;
                }
                if let Some(d) = vd.secret_id_lookup(&s.account, acc).await {
                    let ex = ind::secret_id_excess(OLD_SID_USES, OLD_SID_TTL, &d);
                    if !ex.is_empty() {
                        v.push(("no-wider", format!("{tag}: a live secret-id of this role allows more: {}", ex.join("; "))));
                    }
                }
            }
            if rotated && vd.secret_id_works(&s.role_id, &s.old).await {
                v.push(("old-dead", format!("{tag}: reported {} but the old secret-id logs in", run.outcome())));
            }
            if let Some(m) = &mid_value {
                if vd.secret_id_works(&s.role_id, m).await {
                    v.push(("old-dead", format!("{tag}: reported {} but the faulty run's secret-id (rotated again) logs in", run.outcome())));
                }
            }
            let stray: Vec<&String> = live.iter().filter(|a| **a != cur_acc && Some(a.as_str()) != s.old_meta.as_str()).collect();
            if when == After::Clean && !stray.is_empty() {
                v.push(("no-orphan", format!("{tag}: {} live secret-id(s) no store holds", stray.len())));
            }
            check_store_versions(&vd, s, when, rotated, mid.is_some(), tag, v).await;
        }
        Kind::Kv => {
            let Some(cur) = vd.kv_get(&s.store).await else {
                v.push(("consumer", format!("{tag}: the secret has no readable current version")));
                return;
            };
            let value = cur["value"].as_str().unwrap_or_default();
            if value.is_empty() || cur["username"] != "svc" {
                v.push(("consumer", format!("{tag}: the current version lost its value or its other fields")));
            }
            if value != s.old && value.len() != 40 {
                v.push(("consumer", format!("{tag}: the new value is not the one generated (length {})", value.len())));
            }
            if rotated && (value == s.old || vd.kv_version_readable(&s.store, 1).await) {
                v.push(("old-dead", format!("{tag}: reported {} but the old version is readable", run.outcome())));
            }
            if let Some(mv) = mid.and_then(|m| m["version"].as_u64()) {
                if mid_value.is_some() && vd.kv_version_readable(&s.store, mv).await {
                    v.push(("old-dead", format!("{tag}: reported {} but the faulty run's version {mv} (rotated again) is readable", run.outcome())));
                }
            }
            check_store_versions(&vd, s, when, rotated, mid.is_some(), tag, v).await;
        }
        Kind::Iam => {
            let Some(cur) = ind::sm_current(&s.store).await.and_then(|c| serde_json::from_str::<Value>(&c).ok()) else {
                v.push(("consumer", format!("{tag}: no readable AWSCURRENT in the store")));
                return;
            };
            let (kid, secret) = (cur["access_key_id"].as_str().unwrap_or_default(), cur["value"].as_str().unwrap_or_default());
            match ind::aws_key_user(kid, secret).await {
                None => v.push(("consumer", format!("{tag}: the store's key is refused by STS (consumers locked out)"))),
                Some(u) if u != s.account => v.push(("no-wider", format!("{tag}: the store's key belongs to another user `{u}`"))),
                Some(_) => {}
            }
            let old_kid = s.old_meta.as_str().unwrap_or_default();
            let keys = ind::aws_user_keys(&s.account).await;
            if rotated && (ind::aws_key_user(old_kid, &s.old).await.is_some() || keys.iter().any(|(k, _)| k == old_kid)) {
                v.push(("old-dead", format!("{tag}: reported {} but the old key is alive or listed", run.outcome())));
            }
            let mid_kid = mid.and_then(|m| m["access_key_id"].as_str()).filter(|k| *k != old_kid);
            if let (Some(mk), Some(mv)) = (mid_kid, &mid_value) {
                if ind::aws_key_user(mk, mv).await.is_some() || keys.iter().any(|(k, _)| k == mk) {
                    v.push(("old-dead", format!("{tag}: reported {} but the faulty run's key (rotated again) is alive or listed", run.outcome())));
                }
            }
            let pending_kid = ind::sm_pending(&s.store)
                .await
                .and_then(|p| serde_json::from_str::<Value>(&p).ok())
                .and_then(|p| p["access_key_id"].as_str().map(str::to_string));
            let stray: Vec<&String> = keys.iter().map(|(k, _)| k).filter(|k| k.as_str() != kid && k.as_str() != old_kid).collect();
            if when == After::Clean && !stray.is_empty() {
                v.push(("no-orphan", format!("{tag}: {} key(s) of the user no store holds as current", stray.len())));
            }
            if when == After::Faulty {
                let unheld: Vec<&&String> = stray.iter().filter(|k| Some(k.as_str()) != pending_kid.as_deref()).collect();
                if !unheld.is_empty() {
                    v.push(("no-orphan", format!("{tag}: {} key(s) of the user no store holds at all", unheld.len())));
                }
            }
            if when == After::Clean {
                // Rotated once: AWSPREVIOUS is the original key, AWSCURRENT its direct replacement.
                let labels = moto().labels(&s.store).await;
                let all: Vec<&String> = labels.values().flatten().collect();
                if all.iter().any(|l| l.as_str() == "AWSPENDING") {
                    v.push(("no-orphan", format!("{tag}: AWSPENDING left: {labels:?}")));
                }
                if rotated {
                    let prev = labels.iter().find(|(_, ls)| ls.iter().any(|l| l == "AWSPREVIOUS")).map(|(vid, _)| vid.clone());
                    let prev_kid = match prev {
                        Some(vid) => {
                            let o = moto().sm().await.get_secret_value().secret_id(&s.store).version_id(vid).send().await.ok();
                            o.and_then(|o| o.secret_string().map(str::to_string))
                                .and_then(|p| serde_json::from_str::<Value>(&p).ok())
                                .and_then(|p| p["access_key_id"].as_str().map(str::to_string))
                        }
                        None => None,
                    };
                    // What the clean run replaced: the faulty run's key if that run finished, else the original.
                    let replaced = mid_kid.unwrap_or(old_kid);
                    if prev_kid.as_deref() != Some(replaced) {
                        v.push((
                            "once",
                            format!("{tag}: AWSPREVIOUS is not the key the run replaced ({prev_kid:?}, expected {replaced}): rotated more than once"),
                        ));
                    }
                }
            }
        }
        Kind::Pg => {
            let Some(cur) = vd.kv_get(&s.store).await else {
                v.push(("consumer", format!("{tag}: the store is empty")));
                return;
            };
            let (user, pw) = (cur["username"].as_str().unwrap_or_default(), cur["value"].as_str().unwrap_or_default());
            if !pg_login(user, pw).await {
                // Between apply and promote the pending value is the documented way back.
                let pending = vd.kv_get(&format!("keysweep-pending/{}", s.store)).await;
                let pending_works = match &pending {
                    Some(p) if p["value"].is_string() => pg_login(&s.account, p["value"].as_str().unwrap()).await,
                    _ => false,
                };
                if when == After::Clean || !pending_works {
                    v.push(("consumer", format!("{tag}: the store's login is refused (consumers locked out)")));
                }
            }
            if pg_attrs(&s.account).await != s.old_meta.as_str().unwrap_or_default() {
                v.push(("no-wider", format!("{tag}: the role's attributes or memberships changed")));
            }
            if rotated && pg_login(&s.account, &s.old).await {
                v.push(("old-dead", format!("{tag}: reported {} but the old password logs in", run.outcome())));
            }
            if let Some(m) = &mid_value {
                if pg_login(&s.account, m).await {
                    v.push(("old-dead", format!("{tag}: reported {} but the faulty run's password (rotated again) logs in", run.outcome())));
                }
            }
            check_store_versions(&vd, s, when, rotated, mid.is_some(), tag, v).await;
        }
    }
}

/// KV stores (and KV secrets): promoted at most once, a leftover pending
/// value is not an orphan after the clean run.
async fn check_store_versions(vd: &Vd, s: &Seeded, when: After, rotated: bool, again: bool, tag: &str, v: &mut Vec<Violation>) {
    // Seeded at 1; the faulty run's rotation makes 2; a clean run after a
    // finished faulty one rotates anew (3), after an unfinished one it finishes (2).
    let expect = if again { 3 } else { 2 };
    let cv = vd.kv_meta(&s.store).await.and_then(|m| m["current_version"].as_u64()).unwrap_or(0);
    if cv > expect || (when == After::Clean && rotated && cv != expect) {
        v.push(("once", format!("{tag}: {} is at version {cv}, expected {expect} (seeded at 1, one version per rotation)", s.store)));
    }
    if when == After::Clean {
        if let Some(p) = vd.kv_get(&format!("keysweep-pending/{}", s.store)).await {
            if p["value"].is_string() {
                v.push(("no-orphan", format!("{tag}: a pending value is left at keysweep-pending/{}", s.store)));
            }
        }
    }
}

// ---------- one cell ----------

struct CellResult {
    /// The cell's prefix (estate names, kept logs).
    prefix: String,
    kind: Kind,
    step: &'static str,
    fault: String,
    fresh: bool,
    fired: usize,
    faulty: String,
    clean: String,
    violations: Vec<Violation>,
    known: Vec<Violation>,
}

fn run_cell(rt: &tokio::runtime::Runtime, n: usize, cell: &Cell) -> CellResult {
    let p = format!("fm{n:02}-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let seeded = rt.block_on(seed(cell.kind, &p));
    let upstream = match cell.kind {
        Kind::Iam | Kind::IamRevoke => moto().endpoint.clone(),
        _ => common::bao().addr.clone(),
    };
    let proxy = rt.block_on(FaultProxy::start(&upstream));
    let path = cell.spot.path.replace("{store}", &seeded.store).replace("{kv}", &seeded.store).replace("{role}", &seeded.account);
    let mut tcp: Option<TcpFaultProxy> = None;
    match &cell.fault {
        AnyFault::Http(fault) => {
            let mut rule = Rule::new("fault", cell.spot.method, &path, fault.clone());
            if let Some(b) = cell.spot.body {
                rule = rule.body(b);
            }
            if let Some((h, re)) = cell.spot.header {
                rule = rule.header(h, &re.replace("{kid}", s_kid(&seeded)));
            }
            rule = rule.skip(cell.spot.skip);
            if let Some(t) = cell.times {
                rule = rule.times(t);
            }
            proxy.add(rule);
        }
        AnyFault::Tcp(fault, skip) => {
            let pg = postgres();
            let t = rt.block_on(TcpFaultProxy::start(&format!("{}:{}", pg.host, pg.port)));
            let mut rule = TcpRule::new("fault", path.as_bytes(), *fault).skip(*skip);
            if let Some(n) = cell.times {
                rule = rule.times(n);
            }
            t.add(rule);
            tcp = Some(t);
        }
    }
    let fired_now = |proxy: &FaultProxy, tcp: &Option<TcpFaultProxy>| match tcp {
        Some(t) => t.fired("fault"),
        None => proxy.fired("fault"),
    };

    let dir = tempfile::tempdir().unwrap();
    let pb = dir.path().join("playbook.yaml");
    let pg_port = tcp.as_ref().map(|t| t.port).unwrap_or_else(|| postgres().port);
    std::fs::write(&pb, seeded.yaml.replace("{PGPORT}", &pg_port.to_string())).unwrap();
    let state1 = dir.path().join("state");
    let faulty = run_ks(cell.kind, &seeded.id, &proxy.endpoint, &pb, &state1, dir.path(), "faulty", None);
    let fired = fired_now(&proxy, &tcp);
    proxy.clear();
    if let Some(t) = &tcp {
        t.clear();
    }

    let mut v = vec![];
    check_exit(&faulty, "faulty run", &mut v);
    rt.block_on(check_state(&seeded, After::Faulty, &faulty, None, &mut v));
    // A faulty run that reached its end (rotated, or unverified at verify_dead)
    // released its claim: the clean run rotates anew what it left in service.
    let ended = matches!(faulty.outcome().as_str(), "rotated" | "revoked" | "unverified");
    let mid = if ended { rt.block_on(snapshot(&seeded)) } else { None };

    let state2 = if cell.fresh { dir.path().join("state-fresh") } else { state1.clone() };
    // The clean run has no stall to cut short: roomier limits keep a loaded
    // machine from failing it (the same playbook file, so the journal's
    // playbook key is the same).
    std::fs::write(&pb, std::fs::read_to_string(&pb).unwrap().replace("timeout: 2s, max_attempts: 2", "timeout: 15s, max_attempts: 3")).unwrap();
    let clean = run_ks(cell.kind, &seeded.id, &proxy.endpoint, &pb, &state2, dir.path(), "clean", faulty.run_dir.as_deref().filter(|_| !cell.fresh));
    check_exit(&clean, "clean run", &mut v);
    if !clean.done() || clean.code != Some(0) {
        v.push(("finishes", format!("the clean run after the fault ended {}", clean.summary())));
    }
    rt.block_on(check_state(&seeded, After::Clean, &clean, mid.as_ref(), &mut v));

    let fault = format!("{}{}", cell.fault_name, if cell.times == Some(1) { " ×1" } else { " ×all" });
    let (known, violations): (Vec<Violation>, Vec<Violation>) = v.into_iter().partition(|(check, _)| {
        KNOWN_DEFECTS.iter().any(|(k, st, f, c)| *k == cell.kind.name() && *st == cell.spot.step && *f == fault && c == check)
    });
    if !violations.is_empty() {
        // Keep the logs of a violated cell for the reader (no secret values: keysweep's own output).
        let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fault-matrix-logs/{p}"));
        let _ = std::fs::create_dir_all(&keep);
        for f in ["faulty.stdout", "faulty.stderr", "clean.stdout", "clean.stderr"] {
            let _ = std::fs::copy(dir.path().join(f), keep.join(f));
        }
    }
    CellResult {
        prefix: p.clone(),
        kind: cell.kind,
        step: cell.spot.step,
        fault,
        fresh: cell.fresh,
        fired,
        faulty: faulty.summary(),
        clean: clean.summary(),
        violations,
        known,
    }
}

fn table(results: &[CellResult]) -> String {
    let mut out = String::new();
    out += &format!(
        "{:<27} {:<36} {:<22} {:<6} {:>5}  {:<28} {:<18} {}\n",
        "kind", "step", "fault", "state", "fired", "faulty run (exit outcome)", "clean run", "holds?"
    );
    for r in results {
        let verdict = if r.violations.is_empty() {
            if r.known.is_empty() {
                "holds".to_string()
            } else {
                format!("holds except KNOWN DEFECT ({})", r.known.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(","))
            }
        } else {
            let mut checks: Vec<&str> = r.violations.iter().map(|(c, _)| *c).collect();
            checks.dedup();
            format!("VIOLATED ({})", checks.join(","))
        };
        out += &format!(
            "{:<27} {:<36} {:<22} {:<6} {:>5}  {:<28} {:<18} {}\n",
            r.kind.name(),
            r.step,
            r.fault,
            if r.fresh { "fresh" } else { "same" },
            r.fired,
            r.faulty,
            r.clean,
            verdict
        );
    }
    out
}

#[test]
fn fault_matrix() {
    let rt = Arc::new(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap());
    // Start the shared servers once, before the workers race for them.
    common::bao();
    rt.block_on(async {
        tokio::task::spawn_blocking(|| {
            moto();
            postgres();
        })
        .await
        .unwrap()
    });
    let only = std::env::var("KEYSWEEP_FAULT_MATRIX_ONLY").ok();
    let cells: Vec<(usize, Cell)> = cells()
        .into_iter()
        .enumerate()
        .filter(|(_, c)| only.as_deref().is_none_or(|o| c.kind.name().contains(o) || c.spot.step.contains(o)))
        .collect();
    let cells = Arc::new(cells);
    let next = Arc::new(AtomicUsize::new(0));
    let results: Arc<Mutex<Vec<(usize, CellResult)>>> = Arc::new(Mutex::new(vec![]));
    let t0 = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (rt, cells, next, results) = (rt.clone(), cells.clone(), next.clone(), results.clone());
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((n, cell)) = cells.get(i) else { return };
                let r = run_cell(&rt, *n, cell);
                results.lock().unwrap().push((*n, r));
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a cell panicked");
    }
    let mut results = std::mem::take(&mut *results.lock().unwrap());
    results.sort_by_key(|(n, _)| *n);
    let results: Vec<CellResult> = results.into_iter().map(|(_, r)| r).collect();

    // A fault that never fired did not produce its combination: not in the table.
    let (produced, not_produced): (Vec<CellResult>, Vec<CellResult>) = results.into_iter().partition(|r| r.fired > 0);
    let mut text = format!("fault matrix: {} cells in {:.0?}\n", produced.len(), t0.elapsed());
    text += &table(&produced);
    for r in &produced {
        for (c, d) in r.violations.iter().chain(r.known.iter()) {
            let known = if r.known.iter().any(|(k, _)| k == c) { "KNOWN DEFECT " } else { "" };
            text += &format!("  {known}{} / {} / {}: {c}: {d}\n", r.kind.name(), r.step, r.fault);
            if known.is_empty() {
                text += &format!("    (keysweep's output kept in {}/fault-matrix-logs/{})\n", env!("CARGO_TARGET_TMPDIR"), r.prefix);
            }
        }
    }
    for (k, st, f, c) in KNOWN_DEFECTS {
        if !produced.iter().any(|r| r.kind.name() == *k && r.step == *st && r.fault == *f && r.known.iter().any(|(kc, _)| kc == c)) {
            text += &format!("  KNOWN DEFECT NOT SEEN (fixed? then remove it from KNOWN_DEFECTS): {k} / {st} / {f}: {c}\n");
        }
    }
    for r in &not_produced {
        text += &format!("  NOT PRODUCED (the fault never fired, left out of the matrix): {} / {} / {}\n", r.kind.name(), r.step, r.fault);
    }
    println!("{text}");
    eprintln!("{text}");
    // Kept where a passing run (whose output the harness swallows) can be read.
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fault_matrix.txt");
    let _ = std::fs::write(&keep, &text);
    eprintln!("(matrix written to {})", keep.display());
    let violated = produced.iter().filter(|r| !r.violations.is_empty()).count();
    assert_eq!(violated, 0, "{violated} cell(s) VIOLATED (see the matrix above)");
    assert!(not_produced.is_empty(), "{} cell(s) whose fault never fired: their request patterns are wrong", not_produced.len());
}

/// A fake report of one row with this outcome (and the exit code that goes with it).
fn fake_run(outcome: &str, code: i32) -> RunOut {
    let done = matches!(outcome, "rotated" | "revoked");
    let n = |o: &str| u64::from(o == outcome);
    let report = json!({
        "totals": { "total": 1, "rotated": n("rotated"), "revoked": n("revoked"), "unverified": n("unverified"), "failed": n("failed"), "skipped": n("skipped"), "gaps": u64::from(!done) },
        "rows": [ { "id": "x", "selected": true, "outcome": outcome } ],
    });
    RunOut { id: "x".into(), code: Some(code), timed_out: false, report: Some(report), run_dir: None }
}

fn checks_of(v: &[Violation]) -> Vec<&'static str> {
    let mut c: Vec<&'static str> = v.iter().map(|(c, _)| *c).collect();
    c.sort();
    c.dedup();
    c
}

/// A seeded credential without its bystander (the controls check one credential).
async fn seed_alone(kind: Kind, p: &str) -> Seeded {
    let mut s = seed(kind, p).await;
    s.bystander = None;
    s
}

/// The checks are not vacuous: each one, given the state it guards against
/// (built by hand on the real servers), reports it.
#[test]
fn the_independent_checks_catch_what_they_guard() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    common::bao();
    rt.block_on(async {
        tokio::task::spawn_blocking(|| {
            moto();
            postgres();
        })
        .await
        .unwrap()
    });
    rt.block_on(async {
        let vd = Vd::new();

        // Exit code and totals.
        let mut v = vec![];
        check_exit(&fake_run("failed", 0), "control", &mut v);
        assert_eq!(checks_of(&v), ["exit"], "{v:?}");
        let mut bad = fake_run("rotated", 0);
        bad.report.as_mut().unwrap()["totals"]["rotated"] = json!(2);
        let mut v = vec![];
        check_exit(&bad, "control", &mut v);
        assert_eq!(checks_of(&v), ["exit"], "{v:?}");

        // vault_token: "rotated" with the old token alive; then a wider
        // token in the store, an orphan beside it and two rotations' worth
        // of store versions.
        let s = seed_alone(Kind::Token, &format!("ctl-{}", &uuid::Uuid::new_v4().simple().to_string()[..6])).await;
        let mut v = vec![];
        check_state(&s, After::Faulty, &fake_run("rotated", 0), None, &mut v).await;
        assert_eq!(checks_of(&v), ["old-dead"], "{v:?}");
        let (st, r) = vd.call("POST", "auth/token/create-orphan", Some(json!({ "policies": ["fm-app", "admin-x"], "meta": { "app": s.id } }))).await;
        assert_eq!(st, 200, "{r}");
        let (wide, wide_acc) = (r["auth"]["client_token"].as_str().unwrap().to_string(), r["auth"]["accessor"].as_str().unwrap().to_string());
        let (st, r) =
            vd.call("POST", "auth/token/create-orphan", Some(json!({ "policies": ["fm-app"], "ttl": "1h", "meta": { "app": s.id } }))).await;
        assert_eq!(st, 200, "{r}");
        put(&vd, &s.store, json!({ "value": wide, "accessor": wide_acc })).await;
        put(&vd, &s.store, json!({ "value": wide, "accessor": wide_acc })).await;
        let mut v = vec![];
        check_state(&s, After::Clean, &fake_run("rotated", 0), None, &mut v).await;
        assert_eq!(checks_of(&v), ["no-orphan", "no-wider", "old-dead", "once"], "{v:?}");
        // A store naming a dead token: consumers locked out.
        vd.call("POST", "auth/token/revoke-accessor", Some(json!({ "accessor": wide_acc }))).await;
        let mut v = vec![];
        check_state(&s, After::Faulty, &fake_run("failed", 1), None, &mut v).await;
        assert!(checks_of(&v).contains(&"consumer"), "{v:?}");

        // vault_approle_secret_id: a replacement with more uses, and an orphan.
        let s = seed_alone(Kind::SecretId, &format!("ctl-{}", &uuid::Uuid::new_v4().simple().to_string()[..6])).await;
        let (st, r) = vd.call("POST", &format!("auth/approle/role/{}/secret-id", s.account), Some(json!({ "num_uses": 50 }))).await;
        assert_eq!(st, 200, "{r}");
        let mut v = vec![];
        check_state(&s, After::Clean, &fake_run("failed", 1), None, &mut v).await;
        assert_eq!(checks_of(&v), ["no-orphan", "no-wider"], "{v:?}");

        // vault_kv_secret: "rotated" with version 1 readable; a pending value left.
        let s = seed_alone(Kind::Kv, &format!("ctl-{}", &uuid::Uuid::new_v4().simple().to_string()[..6])).await;
        put(&vd, &format!("keysweep-pending/{}", s.store), json!({ "value": "left-behind" })).await;
        let mut v = vec![];
        check_state(&s, After::Clean, &fake_run("rotated", 0), None, &mut v).await;
        assert_eq!(checks_of(&v), ["no-orphan", "old-dead", "once"], "{v:?}");

        // aws_iam_access_key: "rotated" with the old key alive, and a second key no store holds.
        let s = seed_alone(Kind::Iam, &format!("ctl-{}", &uuid::Uuid::new_v4().simple().to_string()[..6])).await;
        moto().iam().await.create_access_key().user_name(&s.account).send().await.unwrap();
        let mut v = vec![];
        check_state(&s, After::Faulty, &fake_run("rotated", 0), None, &mut v).await;
        assert_eq!(checks_of(&v), ["no-orphan", "old-dead"], "{v:?}");

        // postgres_role: "rotated" with the old password working; a role made superuser.
        let s = seed_alone(Kind::Pg, &format!("ctl-{}", &uuid::Uuid::new_v4().simple().to_string()[..6])).await;
        let role = s.account.clone();
        tokio::task::spawn_blocking(move || postgres().exec(&format!("ALTER ROLE {} CREATEDB", common::postgres::quote_ident(&role)))).await.unwrap();
        let mut v = vec![];
        check_state(&s, After::Faulty, &fake_run("rotated", 0), None, &mut v).await;
        assert_eq!(checks_of(&v), ["no-wider", "old-dead"], "{v:?}");
        // A bystander the run did not rotate.
        let s = seed(Kind::Kv, &format!("ctl-{}", &uuid::Uuid::new_v4().simple().to_string()[..6])).await;
        let mut v = vec![];
        check_state(&s, After::Faulty, &fake_run("failed", 1), None, &mut v).await;
        assert_eq!(checks_of(&v), ["bystander"], "{v:?}");
        let s = seed_alone(Kind::Pg, &format!("ctl-{}", &uuid::Uuid::new_v4().simple().to_string()[..6])).await;
        let role = s.account.clone();
        tokio::task::spawn_blocking(move || postgres().exec(&format!("ALTER ROLE {} CREATEDB", common::postgres::quote_ident(&role)))).await.unwrap();
        // The store's password refused, no pending value to fall back on: locked out.
        put(&vd, &s.store, json!({ "value": "not-the-password", "username": s.account })).await;
        let mut v = vec![];
        check_state(&s, After::Faulty, &fake_run("failed", 1), None, &mut v).await;
        assert!(checks_of(&v).contains(&"consumer"), "{v:?}");
    });
}

/// Found by the matrix (its logs showed "deleting an orphan key minted by an
/// interrupted run" for keys no run had minted): IAM keys carry no nonce, so
/// after a failed mint keysweep deletes the user's keys created since the run
/// started. A mint refused before anything was sent (the user already has two
/// keys) minted nothing: a key someone else made meanwhile must survive.
#[test]
fn a_mint_refused_before_sending_deletes_no_key_of_the_user() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    common::bao();
    let p = format!("fmk-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let s = rt.block_on(seed(Kind::Iam, &p));
    // A second key of the user, made by someone else just before the run.
    let other = rt.block_on(async { moto().iam().await.create_access_key().user_name(&s.account).send().await.unwrap() });
    let other_kid = other.access_key().unwrap().access_key_id().to_string();
    let dir = tempfile::tempdir().unwrap();
    let pb = dir.path().join("playbook.yaml");
    std::fs::write(&pb, &s.yaml).unwrap();
    let r = run_ks(Kind::Iam, &s.id, &moto().endpoint, &pb, &dir.path().join("state"), dir.path(), "run", None);
    let err = std::fs::read_to_string(dir.path().join("run.stdout")).unwrap_or_default();
    assert_eq!(r.outcome(), "failed", "{err}");
    assert!(r.row(&s.id).unwrap()["reason"].as_str().unwrap_or_default().contains("already has two access keys"), "{err}");
    let keys = rt.block_on(ind::aws_user_keys(&s.account));
    assert!(keys.iter().any(|(k, _)| *k == other_kid), "the other key was deleted by a run that minted nothing: {keys:?}");
    assert!(keys.iter().any(|(k, _)| Some(k.as_str()) == s.old_meta.as_str()), "the key in service was deleted: {keys:?}");
}
