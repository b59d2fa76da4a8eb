//! The shared conformance suite, run by the Vault provider against a real
//! OpenBao for each credential kind it owns, and for KV v2 as a store.

mod common;

use async_trait::async_trait;
use keysweep::playbook::model::{SecretRef, Target, VaultApproleTarget, VaultAuth, VaultKvTarget, VaultProviderConfig, VaultTokenTarget};
use keysweep::playbook::StoreLocation;
use keysweep::provider::conformance::{self, Fixture};
use keysweep::provider::{Handle, Provider};
use keysweep::providers::vault::VaultProvider;
use keysweep::secret::SecretString;
use serde_json::json;

async fn provider() -> VaultProvider {
    let b = common::bao();
    let cfg = VaultProviderConfig {
        address: b.addr.clone(),
        namespace: None,
        auth: VaultAuth::Token { token: SecretRef::Env("KS_TEST_TOKEN".into()) },
        pending_prefix: "keysweep-pending".into(),
        limits: Default::default(),
    };
    VaultProvider::connect("bao", &cfg, &|_| Ok(SecretString::from(common::ROOT_TOKEN.to_string()))).await.unwrap()
}

struct Tokens;
#[async_trait]
impl Fixture for Tokens {
    async fn create(&self) -> (Target, Handle, SecretString) {
        let (t, a) = tokio::task::spawn_blocking(|| common::bao().create_token(&["default"], json!({}))).await.unwrap();
        let target = Target::VaultToken(VaultTokenTarget { accessor: Some(a.clone()), policies: None, ttl: None, role: None, orphan: None });
        (target, Handle::from([("accessor".to_string(), a)]), SecretString::from(t))
    }
}

struct SecretIds;
#[async_trait]
impl Fixture for SecretIds {
    async fn create(&self) -> (Target, Handle, SecretString) {
        let role = format!("conf-{}", uuid::Uuid::new_v4().simple());
        let r2 = role.clone();
        let (s, a) = tokio::task::spawn_blocking(move || {
            common::bao().create_role(&r2);
            common::bao().create_secret_id(&r2)
        })
        .await
        .unwrap();
        let target = Target::VaultApproleSecretId(VaultApproleTarget { mount: "approle".into(), role, secret_id_accessor: Some(a.clone()) });
        (target, Handle::from([("accessor".to_string(), a)]), SecretString::from(s))
    }
}

struct KvSecrets;
#[async_trait]
impl Fixture for KvSecrets {
    async fn create(&self) -> (Target, Handle, SecretString) {
        let path = format!("conf/{}", uuid::Uuid::new_v4().simple());
        let p2 = path.clone();
        let v = tokio::task::spawn_blocking(move || common::bao().kv_put(&p2, json!({ "value": "kv-conformance-value" }))).await.unwrap();
        let target = Target::VaultKvSecret(VaultKvTarget {
            mount: "secret".into(),
            path,
            field: "value".into(),
            generate: Default::default(),
            destroy_old: true,
        });
        (target, Handle::from([("version".to_string(), v.to_string())]), SecretString::from("kv-conformance-value".to_string()))
    }
}

#[tokio::test]
async fn vault_token_conformance() {
    let p = provider().await;
    conformance::run(&p, &Tokens, "vault_token").await;
}

#[tokio::test]
async fn vault_approle_secret_id_conformance() {
    let p = provider().await;
    conformance::run(&p, &SecretIds, "vault_approle_secret_id").await;
}

#[tokio::test]
async fn vault_kv_secret_conformance() {
    let p = provider().await;
    conformance::run(&p, &KvSecrets, "vault_kv_secret").await;
}

#[tokio::test]
async fn vault_kv_store_conformance() {
    let p = provider().await;
    let loc = StoreLocation { provider: "bao".into(), mount: "secret".into(), path: format!("store/{}", uuid::Uuid::new_v4().simple()), field: "value".into() };
    conformance::store_contract(p.as_store().unwrap(), &loc).await;
}

#[tokio::test]
async fn a_policy_403_is_not_taken_for_a_dead_token() {
    // A live token whose policy does not allow lookup-self answers 403 to a
    // probe, like a revoked one. The admin-side proof must keep it Alive.
    let p = provider().await;
    let (tok, acc) = tokio::task::spawn_blocking(|| {
        let b = common::bao();
        b.call("PUT", "sys/policies/acl/nolookup", Some(json!({ "policy": "path \"secret/*\" { capabilities = [\"read\"] }" })));
        let (s, body) = b.call("POST", "auth/token/create-orphan", Some(json!({ "policies": ["nolookup"], "no_default_policy": true })));
        assert_eq!(s, 200, "{body}");
        (body["auth"]["client_token"].as_str().unwrap().to_string(), body["auth"]["accessor"].as_str().unwrap().to_string())
    })
    .await
    .unwrap();
    let target = Target::VaultToken(VaultTokenTarget { accessor: Some(acc.clone()), policies: None, ttl: None, role: None, orphan: None });
    let h = Handle::from([("accessor".to_string(), acc)]);
    let v = p.verify_dead(&target, &h, Some(&SecretString::from(tok))).await;
    assert!(matches!(v, keysweep::provider::Verdict::Alive(_)), "{v:?}");
}
