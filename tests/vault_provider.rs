//! The shared conformance suite, run by the Vault provider against a real
//! OpenBao for each credential kind it owns, and for KV v2 as a store.

mod common;

use async_trait::async_trait;
use keysweep::playbook::model::{SecretRef, Target};
use keysweep::playbook::StoreLocation;
use keysweep::provider::conformance::{self, Fixture};
use keysweep::provider::{Handle, Provider};
use keysweep::providers::vault::config::{VaultApproleTarget, VaultAuth, VaultKvTarget, VaultProviderConfig, VaultTokenTarget};
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
        tls: Default::default(),
        allow_plaintext: false,
    };
    VaultProvider::connect("bao", &cfg, &|_| Ok(SecretString::from(common::ROOT_TOKEN.to_string()))).await.unwrap()
}

/// A provider whose address refuses every connection, trying once.
async fn down() -> VaultProvider {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let cfg = VaultProviderConfig {
        address: format!("http://{closed}"),
        namespace: None,
        auth: VaultAuth::Token { token: SecretRef::Env("KS_TEST_TOKEN".into()) },
        pending_prefix: "keysweep-pending".into(),
        limits: keysweep::playbook::model::Limits { max_attempts: Some(1), ..Default::default() },
        tls: Default::default(),
        allow_plaintext: false,
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
    async fn unreachable(&self) -> Option<std::sync::Arc<dyn Provider>> {
        Some(std::sync::Arc::new(down().await))
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
    async fn unreachable(&self) -> Option<std::sync::Arc<dyn Provider>> {
        Some(std::sync::Arc::new(down().await))
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
    async fn unreachable(&self) -> Option<std::sync::Arc<dyn Provider>> {
        Some(std::sync::Arc::new(down().await))
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
    let loc = StoreLocation {
        provider: "bao".into(),
        mount: "secret".into(),
        path: format!("store/{}", uuid::Uuid::new_v4().simple()),
        field: "value".into(),
    };
    conformance::store_contract(p.as_store().unwrap(), &loc, p.kind()).await;
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

#[tokio::test]
async fn keysweep_logs_in_with_approle() {
    let role_id_and_secret = tokio::task::spawn_blocking(|| {
        let b = common::bao();
        b.call(
            "PUT",
            "sys/policies/acl/keysweep-admin",
            Some(json!({ "policy": "path \"*\" { capabilities = [\"create\",\"read\",\"update\",\"delete\",\"list\",\"sudo\"] }" })),
        );
        b.call("POST", "auth/approle/role/keysweep-admin", Some(json!({ "token_policies": ["keysweep-admin"] })));
        let (_, r) = b.call("GET", "auth/approle/role/keysweep-admin/role-id", None);
        let (_, s) = b.call("POST", "auth/approle/role/keysweep-admin/secret-id", Some(json!({})));
        (r["data"]["role_id"].as_str().unwrap().to_string(), s["data"]["secret_id"].as_str().unwrap().to_string())
    })
    .await
    .unwrap();
    let cfg = VaultProviderConfig {
        address: common::bao().addr.clone(),
        namespace: None,
        auth: VaultAuth::Approle { mount: "approle".into(), role_id: SecretRef::Env("R".into()), secret_id: SecretRef::Env("S".into()) },
        pending_prefix: "keysweep-pending".into(),
        limits: Default::default(),
        tls: Default::default(),
        allow_plaintext: false,
    };
    let (rid, sid) = role_id_and_secret;
    let p =
        VaultProvider::connect("bao", &cfg, &|r| Ok(SecretString::from(if *r == SecretRef::Env("R".into()) { rid.clone() } else { sid.clone() })))
            .await
            .unwrap();
    p.check_login().await.unwrap();
    // And it can do the work: the revoke cases pass under the AppRole login.
    conformance::revoke_and_prove_dead(&p, &Tokens, "vault_token").await;

    // Its own session token is marked in the inventory (discovery ignores it),
    // and `close` revokes it when a command ends.
    let items = keysweep::provider::Provider::inventory(&p).await.unwrap();
    assert_eq!(items.iter().filter(|i| i.details.get("keysweep_session").is_some_and(|v| v == "true")).count(), 1);
    keysweep::provider::Provider::close(&p).await;
    assert!(p.check_login().await.is_err(), "the session token is revoked");

    // A wrong secret-id is refused with a clear, secret-free error.
    let bad = VaultProvider::connect("bao", &cfg, &|_| Ok(SecretString::from("not-the-secret-id".to_string()))).await;
    let e = bad.err().expect("login with a wrong secret-id must fail");
    assert_eq!(e.kind, keysweep::provider::ErrorKind::Unauthenticated, "{e}");
    assert!(!e.to_string().contains("not-the-secret-id"), "{e}");
}

#[tokio::test]
async fn the_declared_rate_limit_is_never_exceeded() {
    // 20/s with the default burst, measured at a proxy in front of OpenBao: no
    // one-second window holds more than 20 (the token bucket this replaced
    // let 39 through in the first second).
    let b = common::bao();
    let proxy = common::proxy::Proxy::start(&b.addr, 0).await;
    let cfg = VaultProviderConfig {
        address: proxy.endpoint.clone(),
        namespace: None,
        auth: VaultAuth::Token { token: SecretRef::Env("T".into()) },
        pending_prefix: "keysweep-pending".into(),
        limits: keysweep::playbook::model::Limits { rate_per_second: Some(20), ..Default::default() },
        tls: Default::default(),
        allow_plaintext: false,
    };
    let p = VaultProvider::connect("bao", &cfg, &|_| Ok(SecretString::from(common::ROOT_TOKEN.to_string()))).await.unwrap();
    let start = std::time::Instant::now();
    let futs: Vec<_> = (0..61).map(|_| p.check_login()).collect();
    for r in futures::future::join_all(futs).await {
        r.unwrap();
    }
    let took = start.elapsed();
    assert_eq!(p.request_count(), 61);
    assert_eq!(proxy.count(), 61);
    let max = proxy.max_in_window(std::time::Duration::from_secs(1));
    assert!(max <= 20, "{max} requests arrived within one second at a 20/s limit");
    assert!(took >= std::time::Duration::from_secs(2), "61 requests in {took:?} exceed 20/s");
}

#[tokio::test]
async fn inventory_lists_tokens_secret_ids_and_kv_paths() {
    let (acc, sacc, path) = tokio::task::spawn_blocking(|| {
        let b = common::bao();
        let (_, acc) = b.create_token(&["default"], json!({ "app": "inv" }));
        b.create_role("inv-role");
        let (_, sacc) = b.create_secret_id("inv-role");
        let path = format!("inv/{}", uuid::Uuid::new_v4().simple());
        b.kv_put(&path, json!({ "value": "x-inventory-value" }));
        (acc, sacc, path)
    })
    .await
    .unwrap();
    let p = provider().await;
    let items = p.inventory().await.unwrap();
    let find = |kind: &str, id: &str| items.iter().find(|i| i.kind == kind && i.id == id).cloned();
    let t = find("vault_token", &acc).expect("token in inventory");
    assert!(t.created.is_some());
    assert_eq!(t.details["privileged"], "false");
    let root = items.iter().filter(|i| i.kind == "vault_token" && i.details["privileged"] == "true").count();
    assert!(root >= 1, "the root token is listed as privileged");
    let s = find("vault_approle_secret_id", &sacc).expect("secret-id in inventory");
    assert_eq!(s.details["role"], "inv-role");
    let k = find("vault_kv_secret", &path).expect("kv path in inventory");
    assert_eq!(k.details["current_version"], "1");
    let json = serde_json::to_string(&items).unwrap();
    assert!(!json.contains("x-inventory-value"), "inventory carries a secret value");
}

#[tokio::test]
async fn use_limited_secrets_are_tested_without_spending_a_use() {
    let p = provider().await;
    // A token that allows one use, and a role whose secret-ids allow one login.
    let (tok, acc, sid_acc, role) = tokio::task::spawn_blocking(|| {
        let b = common::bao();
        let (s, t) = b.call("POST", "auth/token/create-orphan", Some(json!({ "policies": ["default"], "num_uses": 1 })));
        assert_eq!(s, 200);
        let role = format!("once-{}", uuid::Uuid::new_v4().simple());
        b.call("POST", &format!("auth/approle/role/{role}"), Some(json!({ "secret_id_num_uses": 1 })));
        let (_, sacc) = b.create_secret_id(&role);
        (t["auth"]["client_token"].as_str().unwrap().to_string(), t["auth"]["accessor"].as_str().unwrap().to_string(), sacc, role)
    })
    .await
    .unwrap();
    let _ = tok;

    let target = Target::VaultToken(VaultTokenTarget { accessor: Some(acc.clone()), policies: None, ttl: None, role: None, orphan: None });
    let minted = p.mint(&target, &Handle::from([("accessor".to_string(), acc)]), "once-tok").await.unwrap();
    assert_eq!(minted.handle.get("uses_limited").map(String::as_str), Some("true"));
    let v = p.test(&target, &minted.delivered, &minted.handle).await;
    assert!(matches!(v, keysweep::provider::Verdict::Alive(_)), "{v:?}");

    let starget =
        Target::VaultApproleSecretId(VaultApproleTarget { mount: "approle".into(), role: role.clone(), secret_id_accessor: Some(sid_acc.clone()) });
    let sminted = p.mint(&starget, &Handle::from([("accessor".to_string(), sid_acc)]), "once-sid").await.unwrap();
    let v = p.test(&starget, &sminted.delivered, &sminted.handle).await;
    assert!(matches!(v, keysweep::provider::Verdict::Alive(_)), "{v:?}");

    // The one use of each is still there for the consumer.
    use keysweep::secret::ExposeSecret;
    let new_tok = minted.delivered.value.expose_secret().to_string();
    let new_sid = sminted.delivered.value.expose_secret().to_string();
    let role_id = sminted.delivered.fields["role_id"].clone();
    tokio::task::spawn_blocking(move || {
        let b = common::bao();
        assert!(b.token_works(&new_tok), "the test spent the new token's only use");
        assert!(b.secret_id_works(&role_id, &new_sid), "the test spent the new secret-id's only login");
    })
    .await
    .unwrap();
}

mod tls {
    use super::*;
    use keysweep::providers::vault::config::VaultTls;
    use keysweep::providers::vault::http::VaultHttp;

    fn cfg(address: &str, tls: VaultTls) -> VaultProviderConfig {
        VaultProviderConfig {
            address: address.to_string(),
            namespace: None,
            auth: VaultAuth::Token { token: SecretRef::Env("T".into()) },
            pending_prefix: "keysweep-pending".into(),
            limits: keysweep::playbook::model::Limits { max_attempts: Some(1), ..Default::default() },
            tls,
            allow_plaintext: false,
        }
    }

    fn root() -> SecretString {
        SecretString::from(common::ROOT_TOKEN.to_string())
    }

    fn ca() -> String {
        common::bao_tls().1.join("vault-ca.pem").display().to_string()
    }

    async fn lookup_self(h: &VaultHttp) -> Result<u16, keysweep::provider::ProviderError> {
        h.send("vault.lookup_self", reqwest::Method::GET, "auth/token/lookup-self", Some(&root()), None).await.map(|r| r.status)
    }

    #[tokio::test]
    async fn the_servers_certificate_is_verified_against_the_named_ca() {
        let (addr, _) = tokio::task::spawn_blocking(common::bao_tls).await.unwrap().clone();
        // `ca_cert` named: logs in and works.
        let p = VaultProvider::connect("bao", &cfg(&addr, VaultTls { ca_cert: Some(ca()), ..Default::default() }), &|_| Ok(root())).await.unwrap();
        p.check_login().await.unwrap();
        keysweep::provider::Provider::inventory(&p).await.unwrap();

        // No CA named (and no VAULT_CACERT): the test CA is no system root, so
        // the connection is refused, with the fix named, and not retried as temporary.
        let h = VaultHttp::with_tls(&addr, None, root(), &Default::default(), &VaultTls::default(), &|_| None).unwrap();
        let e = lookup_self(&h).await.unwrap_err();
        assert_eq!(e.kind, keysweep::provider::ErrorKind::Config, "{e}");
        assert!(!e.is_temporary(), "{e}");
        assert!(e.message.contains("certificate") && e.message.contains("tls.ca_cert") && e.message.contains("VAULT_CACERT"), "{e}");
    }

    #[tokio::test]
    async fn vault_cacert_and_vault_capath_are_honoured_when_the_playbook_names_no_ca() {
        let (addr, dir) = tokio::task::spawn_blocking(common::bao_tls).await.unwrap().clone();
        let ca = ca();
        let env = move |k: &str| (k == "VAULT_CACERT").then(|| ca.clone());
        let h = VaultHttp::with_tls(&addr, None, root(), &Default::default(), &VaultTls::default(), &env).unwrap();
        assert_eq!(lookup_self(&h).await.unwrap(), 200);

        // VAULT_CAPATH: a directory of PEM files.
        let capath = tempfile::tempdir().unwrap();
        std::fs::copy(dir.join("vault-ca.pem"), capath.path().join("test-ca.pem")).unwrap();
        let cp = capath.path().display().to_string();
        let env = move |k: &str| (k == "VAULT_CAPATH").then(|| cp.clone());
        let h = VaultHttp::with_tls(&addr, None, root(), &Default::default(), &VaultTls::default(), &env).unwrap();
        assert_eq!(lookup_self(&h).await.unwrap(), 200);

        // A missing CA file is a configuration error naming the file.
        let env = |k: &str| (k == "VAULT_CACERT").then(|| "/nonexistent/ca.pem".to_string());
        let e = VaultHttp::with_tls(&addr, None, root(), &Default::default(), &VaultTls::default(), &env).err().unwrap();
        assert!(e.message.contains("VAULT_CACERT") && e.message.contains("/nonexistent/ca.pem"), "{e}");
    }

    #[tokio::test]
    async fn the_server_name_is_verified_and_can_be_set() {
        let (addr, _) = tokio::task::spawn_blocking(common::bao_tls).await.unwrap().clone();
        // The certificate names `localhost`: checked against that name while
        // connecting to the address's 127.0.0.1.
        let good = VaultTls { ca_cert: Some(ca()), server_name: Some("localhost".into()), ..Default::default() };
        let h = VaultHttp::with_tls(&addr, None, root(), &Default::default(), &good, &|_| None).unwrap();
        assert_eq!(lookup_self(&h).await.unwrap(), 200);
        // A name the certificate does not carry is refused, with the fix named.
        let wrong = VaultTls { ca_cert: Some(ca()), server_name: Some("vault.example.com".into()), ..Default::default() };
        let h = VaultHttp::with_tls(&addr, None, root(), &Default::default(), &wrong, &|_| None).unwrap();
        let e = lookup_self(&h).await.unwrap_err();
        assert_eq!(e.kind, keysweep::provider::ErrorKind::Config, "{e}");
        assert!(e.message.contains("tls.server_name"), "{e}");
    }

    #[tokio::test]
    async fn insecure_skip_verify_connects_without_a_ca_and_says_so() {
        let (addr, _) = tokio::task::spawn_blocking(common::bao_tls).await.unwrap().clone();
        let c = cfg(&addr, VaultTls { insecure_skip_verify: true, ..Default::default() });
        let p = VaultProvider::connect("bao", &c, &|_| Ok(root())).await.unwrap();
        p.check_login().await.unwrap();
        use keysweep::provider::kind::ProviderKind;
        let w = c.warnings();
        assert!(w.iter().any(|w| w.contains("verification is OFF")), "{w:?}");
        assert!(cfg(&addr, VaultTls { ca_cert: Some(ca()), ..Default::default() }).warnings().is_empty());
    }

    /// A CA and a client certificate signed by it (`openssl` CLI) in `dir`.
    fn client_cert(dir: &std::path::Path, cn: &str) -> (String, String, String) {
        let script = format!(
            "set -e; cd '{}'; \
             openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem -days 2 \
               -subj /CN=client-ca -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign; \
             openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout client.key -out client.csr -subj /CN={cn}; \
             printf 'basicConstraints=CA:FALSE\\nextendedKeyUsage=clientAuth\\nkeyUsage=critical,digitalSignature\\n' > client.ext; \
             openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2 -extfile client.ext",
            dir.display()
        );
        let out = std::process::Command::new("sh").arg("-c").arg(&script).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let f = |n: &str| dir.join(n).display().to_string();
        (f("ca.pem"), f("client.pem"), f("client.key"))
    }

    #[tokio::test]
    async fn keysweep_logs_in_with_a_client_certificate() {
        let (addr, _) = tokio::task::spawn_blocking(common::bao_tls).await.unwrap().clone();
        let d = tempfile::tempdir().unwrap();
        let (client_ca, cert, key) = client_cert(d.path(), "keysweep");
        // As root: a `cert` auth mount trusting the client CA.
        let mount = format!("cert-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let admin = VaultHttp::with_tls(&addr, None, root(), &Default::default(), &VaultTls { ca_cert: Some(ca()), ..Default::default() }, &|_| None)
            .unwrap();
        let r =
            admin.send("setup", reqwest::Method::POST, &format!("sys/auth/{mount}"), Some(&root()), Some(&json!({ "type": "cert" }))).await.unwrap();
        assert!(r.ok(), "{}", r.describe());
        let pem = std::fs::read_to_string(&client_ca).unwrap();
        let r = admin
            .send(
                "setup",
                reqwest::Method::POST,
                &format!("auth/{mount}/certs/keysweep"),
                Some(&root()),
                Some(&json!({ "certificate": pem, "token_policies": "default" })),
            )
            .await
            .unwrap();
        assert!(r.ok(), "{}", r.describe());

        let mut c = cfg(&addr, VaultTls { ca_cert: Some(ca()), client_cert: Some(cert), client_key: Some(key), ..Default::default() });
        c.auth = VaultAuth::Cert { mount: mount.clone(), name: Some("keysweep".into()) };
        use keysweep::provider::kind::ProviderKind;
        assert!(c.check(false).is_empty(), "{:?}", c.check(false).iter().map(|p| &p.message).collect::<Vec<_>>());
        let p = VaultProvider::connect("bao", &c, &|_| unreachable!("cert auth resolves no secret")).await.unwrap_or_else(|e| panic!("{e}"));
        p.check_login().await.unwrap();

        // A certificate from a CA the mount does not trust is refused.
        let other = tempfile::tempdir().unwrap();
        let (_, cert2, key2) = client_cert(other.path(), "intruder");
        let mut bad = c.clone();
        bad.tls.client_cert = Some(cert2);
        bad.tls.client_key = Some(key2);
        let e = VaultProvider::connect("bao", &bad, &|_| unreachable!()).await.err().expect("an untrusted client certificate must be refused");
        assert_eq!(e.kind, keysweep::provider::ErrorKind::Unauthenticated, "{e}");

        // `method: cert` without a client certificate does not load.
        let mut none = c.clone();
        none.tls.client_cert = None;
        none.tls.client_key = None;
        assert!(none.check(false).iter().any(|p| p.message.contains("tls.client_cert")));
    }

    #[test]
    fn plaintext_to_a_remote_host_and_half_a_client_certificate_are_refused() {
        use keysweep::provider::kind::ProviderKind;
        let msgs = |c: &VaultProviderConfig| c.check(false).into_iter().map(|p| p.message).collect::<Vec<_>>().join(" | ");
        assert_eq!(msgs(&cfg("http://127.0.0.1:8200", VaultTls::default())), "");
        assert!(msgs(&cfg("http://vault.internal:8200", VaultTls::default())).contains("not loopback"));
        let mut allowed = cfg("http://vault.internal:8200", VaultTls::default());
        allowed.allow_plaintext = true;
        assert_eq!(msgs(&allowed), "");
        assert!(allowed.warnings().iter().any(|w| w.contains("unencrypted")));
        let half = cfg("https://vault.internal:8200", VaultTls { client_cert: Some("c.pem".into()), ..Default::default() });
        assert!(msgs(&half).contains("without `client_key`"));
    }
}
