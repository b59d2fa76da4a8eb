//! Independent checks for the fault matrix (tests/fault_matrix.rs): clients
//! of their own, talking to the real servers directly — never through the
//! fault proxy, never from keysweep's report. Vault through the `vaultrs`
//! client library (a Vault client written by others: token lookups, AppRole
//! logins and KV reads) and reqwest with the root token for the rest, AWS through a fresh SDK client per check (moto), PostgreSQL
//! through new TCP logins (tests/common/postgres.rs).
//!
//! Every function answers a question about the real server's state; the
//! matrix turns the answers into `holds` / `VIOLATED`.
#![allow(dead_code)]

use std::collections::BTreeSet;

use serde_json::{json, Value};

/// A Vault client of its own (root token, straight to the server).
pub struct Vd {
    addr: String,
    http: reqwest::Client,
}

/// A `vaultrs` client for `addr` presenting `token`.
fn vaultrs_client(addr: &str, token: &str) -> vaultrs::client::VaultClient {
    let settings = vaultrs::client::VaultClientSettingsBuilder::default().address(addr).token(token).build().expect("vaultrs settings");
    vaultrs::client::VaultClient::new(settings).expect("vaultrs client")
}

/// The HTTP status of a `vaultrs` error that is Vault's own answer.
fn vaultrs_status(e: &vaultrs::error::ClientError) -> Option<u16> {
    match e {
        vaultrs::error::ClientError::APIError { code, .. } => Some(*code),
        _ => None,
    }
}

impl Vd {
    pub fn new() -> Vd {
        Vd { addr: super::bao().addr.clone(), http: reqwest::Client::builder().timeout(std::time::Duration::from_secs(20)).build().unwrap() }
    }

    pub async fn call_as(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut r = self.http.request(m, format!("{}/v1/{path}", self.addr)).header("X-Vault-Token", token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap_or_else(|e| panic!("independent vault client: {method} {path}: {e}"));
        let s = resp.status().as_u16();
        let b = resp.bytes().await.unwrap_or_default();
        (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(super::ROOT_TOKEN, method, path, body).await
    }

    /// Is this token alive? (admin-side `auth/token/lookup` by value.)
    pub async fn token_alive(&self, token: &str) -> bool {
        let root = vaultrs_client(&self.addr, super::ROOT_TOKEN);
        match vaultrs::token::lookup(&root, token).await {
            Ok(_) => true,
            Err(e) if matches!(vaultrs_status(&e), Some(400 | 403)) => false,
            Err(e) => panic!("vaultrs token lookup: unexpected answer: {e}"),
        }
    }

    /// The token's lookup data by value (None: not alive).
    pub async fn token_lookup(&self, token: &str) -> Option<Value> {
        let (s, b) = self.call("POST", "auth/token/lookup", Some(json!({ "token": token }))).await;
        (s == 200).then(|| b["data"].clone())
    }

    /// The lookup data of every live token whose metadata has `key=value`.
    pub async fn tokens_with_meta(&self, key: &str, value: &str) -> Vec<Value> {
        let (s, b) = self.call("LIST", "auth/token/accessors", None).await;
        assert_eq!(s, 200, "LIST auth/token/accessors: {b}");
        let accs: Vec<String> =
            b["data"]["keys"].as_array().cloned().unwrap_or_default().iter().filter_map(|a| a.as_str().map(str::to_string)).collect();
        let mut out = vec![];
        for chunk in accs.chunks(32) {
            let looks =
                futures::future::join_all(chunk.iter().map(|a| self.call("POST", "auth/token/lookup-accessor", Some(json!({ "accessor": a })))))
                    .await;
            for (s, l) in looks {
                if s == 200 && l["data"]["meta"][key] == value {
                    out.push(l["data"].clone());
                }
            }
        }
        out
    }

    /// Does this secret-id log in? (The token it gets is revoked at once.)
    pub async fn secret_id_works(&self, role_id: &str, secret_id: &str) -> bool {
        let anon = vaultrs_client(&self.addr, "");
        match vaultrs::auth::approle::login(&anon, "approle", role_id, secret_id).await {
            Ok(auth) => {
                self.call_as(&auth.client_token, "POST", "auth/token/revoke-self", None).await;
                true
            }
            Err(e) if matches!(vaultrs_status(&e), Some(400 | 403)) => false,
            Err(e) => panic!("vaultrs approle login: unexpected answer: {e}"),
        }
    }

    /// Accessors of every live secret-id of `role`.
    pub async fn secret_id_accessors(&self, role: &str) -> BTreeSet<String> {
        let (s, b) = self.call("LIST", &format!("auth/approle/role/{role}/secret-id"), None).await;
        assert!(s == 200 || s == 404, "LIST secret-ids of {role}: HTTP {s} {b}");
        b["data"]["keys"].as_array().cloned().unwrap_or_default().iter().filter_map(|a| a.as_str().map(str::to_string)).collect()
    }

    pub async fn secret_id_lookup(&self, role: &str, accessor: &str) -> Option<Value> {
        let (s, b) =
            self.call("POST", &format!("auth/approle/role/{role}/secret-id-accessor/lookup"), Some(json!({ "secret_id_accessor": accessor }))).await;
        (s == 200).then(|| b["data"].clone())
    }

    /// The current data of a KV v2 secret (None: absent, deleted or destroyed).
    pub async fn kv_get(&self, path: &str) -> Option<Value> {
        let root = vaultrs_client(&self.addr, super::ROOT_TOKEN);
        match vaultrs::kv2::read::<Value>(&root, "secret", path).await {
            Ok(v) => v.is_object().then_some(v),
            // 404: absent, or its latest version deleted or destroyed.
            Err(e) if vaultrs_status(&e) == Some(404) => None,
            Err(e) => panic!("vaultrs kv2 read {path}: unexpected answer: {e}"),
        }
    }

    pub async fn kv_meta(&self, path: &str) -> Option<Value> {
        let (s, b) = self.call("GET", &format!("secret/metadata/{path}"), None).await;
        (s == 200).then(|| b["data"].clone())
    }

    /// Is version `v` of `path` still readable?
    pub async fn kv_version_readable(&self, path: &str, v: u64) -> bool {
        let (s, b) = self.call("GET", &format!("secret/data/{path}?version={v}"), None).await;
        s == 200 && b["data"]["data"].is_object()
    }
}

impl Default for Vd {
    fn default() -> Self {
        Vd::new()
    }
}

/// Sorted strings of a JSON array (policies).
pub fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array().into_iter().flatten().filter_map(|p| p.as_str().map(str::to_string)).collect()
}

/// What a replacement token allows beyond the old one (empty: nothing).
pub fn token_excess(old: &Value, new: &Value) -> Vec<String> {
    let mut out = vec![];
    let (op, np) = (strings(&old["policies"]), strings(&new["policies"]));
    if np.is_empty() {
        out.push("no policies (Vault would give it the caller's)".into());
    }
    if np.contains("root") {
        out.push("root policy".into());
    }
    let extra: Vec<&String> = np.difference(&op).collect();
    if !extra.is_empty() {
        out.push(format!("extra policies {extra:?}"));
    }
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap_or(0);
    if n(new, "creation_ttl") == 0 && n(old, "creation_ttl") > 0 {
        out.push("no TTL where the old token had one".into());
    }
    if n(old, "creation_ttl") > 0 && n(new, "creation_ttl") > n(old, "creation_ttl") {
        out.push(format!("creation_ttl {} > {}", n(new, "creation_ttl"), n(old, "creation_ttl")));
    }
    if n(old, "explicit_max_ttl") > 0 && (n(new, "explicit_max_ttl") == 0 || n(new, "explicit_max_ttl") > n(old, "explicit_max_ttl")) {
        out.push(format!("explicit_max_ttl {} beyond {}", n(new, "explicit_max_ttl"), n(old, "explicit_max_ttl")));
    }
    if n(new, "period") > n(old, "period") {
        out.push(format!("period {} where the old had {}", n(new, "period"), n(old, "period")));
    }
    if n(old, "num_uses") > 0 && (n(new, "num_uses") == 0 || n(new, "num_uses") > n(old, "num_uses")) {
        out.push(format!("num_uses {} beyond {}", n(new, "num_uses"), n(old, "num_uses")));
    }
    out
}

/// What a replacement secret-id allows beyond the old one's limits.
pub fn secret_id_excess(old_num_uses: u64, old_ttl: u64, new: &Value) -> Vec<String> {
    let mut out = vec![];
    let uses = new["secret_id_num_uses"].as_u64().unwrap_or(0);
    let ttl = new["secret_id_ttl"].as_u64().unwrap_or(0);
    if old_num_uses > 0 && (uses == 0 || uses > old_num_uses) {
        out.push(format!("num_uses {uses} beyond {old_num_uses}"));
    }
    if old_ttl > 0 && (ttl == 0 || ttl > old_ttl) {
        out.push(format!("ttl {ttl} beyond {old_ttl}"));
    }
    out
}

/// AWS: the user a key authenticates as (`sts:GetCallerIdentity` from a
/// fresh client); `None` when STS refuses it (`InvalidClientTokenId`).
pub async fn aws_key_user(key_id: &str, secret: &str) -> Option<String> {
    let m = super::moto::moto();
    let sts = aws_sdk_sts::Client::new(&m.sdk_config_with(key_id, secret).await);
    match sts.get_caller_identity().send().await {
        Ok(o) => Some(o.arn().unwrap_or_default().rsplit('/').next().unwrap_or_default().to_string()),
        Err(e) => match super::moto::auth_error_code(&e).as_deref() {
            Some("InvalidClientTokenId") => None,
            _ => panic!("GetCallerIdentity with {key_id}: unexpected error: {e:?}"),
        },
    }
}

/// AWS: the access key ids IAM lists for `user` (active or not).
pub async fn aws_user_keys(user: &str) -> Vec<(String, String)> {
    let iam = super::moto::moto().iam().await;
    let out = iam.list_access_keys().user_name(user).send().await.unwrap_or_else(|e| panic!("ListAccessKeys {user}: {e:?}"));
    out.access_key_metadata()
        .iter()
        .map(|k| (k.access_key_id().unwrap_or_default().to_string(), k.status().map(|s| s.as_str().to_string()).unwrap_or_default()))
        .collect()
}

/// AWS: the `AWSCURRENT` SecretString of a Secrets Manager secret.
pub async fn sm_current(name: &str) -> Option<String> {
    let sm = super::moto::moto().sm().await;
    sm.get_secret_value().secret_id(name).version_stage("AWSCURRENT").send().await.ok().and_then(|o| o.secret_string().map(str::to_string))
}

/// AWS: the `AWSPENDING` SecretString, if a version carries the label.
pub async fn sm_pending(name: &str) -> Option<String> {
    let sm = super::moto::moto().sm().await;
    sm.get_secret_value().secret_id(name).version_stage("AWSPENDING").send().await.ok().and_then(|o| o.secret_string().map(str::to_string))
}
