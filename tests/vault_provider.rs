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
        address: Some(b.addr.clone()),
        namespace: None,
        auth: Some(VaultAuth::Token { token: SecretRef::Env("KS_TEST_TOKEN".into()) }),
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
        address: Some(format!("http://{closed}")),
        namespace: None,
        auth: Some(VaultAuth::Token { token: SecretRef::Env("KS_TEST_TOKEN".into()) }),
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

/// An AppRole `role` (with `settings`) whose tokens may do anything, one
/// secret-id of it, and a provider configuration that logs in with them
/// (`R` and `S` resolve to the role-id and secret-id).
async fn approle_login(role: &'static str, settings: serde_json::Value) -> (VaultProviderConfig, String, String) {
    let (rid, sid) = tokio::task::spawn_blocking(move || {
        let b = common::bao();
        b.call(
            "PUT",
            "sys/policies/acl/keysweep-admin",
            Some(json!({ "policy": "path \"*\" { capabilities = [\"create\",\"read\",\"update\",\"delete\",\"list\",\"sudo\"] }" })),
        );
        b.call("POST", &format!("auth/approle/role/{role}"), Some(settings));
        let (_, r) = b.call("GET", &format!("auth/approle/role/{role}/role-id"), None);
        let (_, s) = b.call("POST", &format!("auth/approle/role/{role}/secret-id"), Some(json!({})));
        let sid = s["data"]["secret_id"].as_str().unwrap().to_string();
        common::canary(&sid);
        (r["data"]["role_id"].as_str().unwrap().to_string(), sid)
    })
    .await
    .unwrap();
    let cfg = VaultProviderConfig {
        address: Some(common::bao().addr.clone()),
        namespace: None,
        auth: Some(VaultAuth::Approle { mount: "approle".into(), role_id: SecretRef::Env("R".into()), secret_id: SecretRef::Env("S".into()) }),
        pending_prefix: "keysweep-pending".into(),
        limits: Default::default(),
        tls: Default::default(),
        allow_plaintext: false,
    };
    (cfg, rid, sid)
}

#[tokio::test]
async fn keysweep_logs_in_with_approle() {
    let (cfg, rid, sid) = approle_login("keysweep-admin", json!({ "token_policies": ["keysweep-admin"] })).await;
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

/// A run longer than the TTL of the session keysweep's login opened keeps
/// it alive: the session is renewed (`renew-self`) before half its TTL has
/// passed, so keysweep's requests 9 s into a 5 s session still work, and
/// OpenBao itself shows the session alive past its first TTL.
#[tokio::test]
async fn keysweeps_own_session_is_renewed_through_a_run_longer_than_its_ttl() {
    let settings = json!({ "token_policies": ["keysweep-admin"], "token_ttl": "5s", "token_max_ttl": "10m" });
    let (cfg, rid, sid) = approle_login("keysweep-short", settings).await;
    let p =
        VaultProvider::connect("bao", &cfg, &|r| Ok(SecretString::from(if *r == SecretRef::Env("R".into()) { rid.clone() } else { sid.clone() })))
            .await
            .unwrap();
    p.check_login().await.unwrap();
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(9) {
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        p.check_login().await.unwrap_or_else(|e| panic!("{:.1} s into a 5 s session: {e}", start.elapsed().as_secs_f64()));
    }
    // From OpenBao directly: the role's session, issued more than 5 s ago,
    // is alive with TTL left.
    let sessions = tokio::task::spawn_blocking(|| {
        let b = common::bao();
        let (_, l) = b.call("LIST", "auth/token/accessors", None);
        l["data"]["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| {
                let (st, d) = b.call("POST", "auth/token/lookup-accessor", Some(json!({ "accessor": a })));
                (st == 200 && d["data"]["meta"]["role_name"] == "keysweep-short").then(|| d["data"].clone())
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert_eq!(sessions.len(), 1, "one session of the role: {sessions:?}");
    let s = &sessions[0];
    assert_eq!(s["creation_ttl"], 5, "{s}");
    assert!(s["ttl"].as_u64().unwrap() > 0, "{s}");
    let issued = chrono::DateTime::parse_from_rfc3339(s["issue_time"].as_str().unwrap()).unwrap();
    assert!(chrono::Utc::now().signed_duration_since(issued).num_seconds() >= 8, "{s}");
    keysweep::provider::Provider::close(&p).await;
}

#[tokio::test]
async fn the_declared_rate_limit_is_never_exceeded() {
    // 20/s with the default burst, measured at a proxy in front of OpenBao: no
    // one-second window holds more than 20 (the token bucket this replaced
    // let 39 through in the first second).
    let b = common::bao();
    let proxy = common::proxy::Proxy::start(&b.addr, 0).await;
    let cfg = VaultProviderConfig {
        address: Some(proxy.endpoint.clone()),
        namespace: None,
        auth: Some(VaultAuth::Token { token: SecretRef::Env("T".into()) }),
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
            address: Some(address.to_string()),
            namespace: None,
            auth: Some(VaultAuth::Token { token: SecretRef::Env("T".into()) }),
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
        c.auth = Some(VaultAuth::Cert { mount: mount.clone(), name: Some("keysweep".into()) });
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

/// keysweep's own logins beyond a token and AppRole (Kubernetes, JWT/OIDC,
/// AWS IAM) and the Vault environment conventions (`VAULT_ADDR`,
/// `VAULT_TOKEN`, `VAULT_NAMESPACE`, `~/.vault-token`), against OpenBao.
mod logins {
    use super::*;
    use base64::Engine;
    use keysweep::provider::kind::ProviderKind;
    use keysweep::provider::ErrorKind;
    use serde_json::Value;
    use std::path::{Path, PathBuf};

    const ADMIN_POLICY: &str = r#"path "*" { capabilities = ["create", "read", "update", "patch", "delete", "list", "sudo"] }"#;

    fn admin_policy() {
        let (s, v) = common::bao().call("PUT", "sys/policies/acl/ks-login-admin", Some(json!({ "policy": ADMIN_POLICY })));
        assert!(s == 200 || s == 204, "{v}");
    }

    fn unique(p: &str) -> String {
        format!("{p}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
    }

    fn setup(method: &str, path: &str, body: Value) {
        let (s, v) = common::bao().call(method, path, Some(body));
        assert!(s == 200 || s == 204, "{path}: HTTP {s} {v}");
    }

    fn cfg(auth: Option<VaultAuth>) -> VaultProviderConfig {
        VaultProviderConfig {
            address: Some(common::bao().addr.clone()),
            namespace: None,
            auth,
            pending_prefix: "keysweep-pending".into(),
            limits: keysweep::playbook::model::Limits { max_attempts: Some(1), ..Default::default() },
            tls: Default::default(),
            allow_plaintext: false,
        }
    }

    fn no_secret(_: &SecretRef) -> Result<SecretString, keysweep::provider::ProviderError> {
        panic!("this login resolves no secret reference")
    }

    /// keysweep's own session token, as the inventory marks it.
    async fn session_accessor(p: &VaultProvider) -> String {
        let items = p.inventory().await.unwrap();
        let own: Vec<_> = items.iter().filter(|i| i.details.get("keysweep_session").is_some_and(|v| v == "true")).collect();
        assert_eq!(own.len(), 1, "one session token");
        own[0].id.clone()
    }

    /// The session opened by a login is keysweep's own: listed as a
    /// credential, it is never rotated or revoked under the run (the engine
    /// refuses it before minting), and `close` revokes it.
    async fn session_is_kept_and_closed(p: &VaultProvider) {
        let acc = session_accessor(p).await;
        let t = Target::VaultToken(VaultTokenTarget { accessor: Some(acc.clone()), policies: None, ttl: None, role: None, orphan: None });
        let h = Handle::from([("accessor".to_string(), acc.clone())]);
        assert!(p.is_own_login(&t, &h), "the session token is not recognised as keysweep's own");
        assert!(!p.can_switch_login(&t), "a session token would be replaced by a minted one and then revoked by close");
        // A secret-id of an AppRole role is never taken for it.
        let sid = Target::VaultApproleSecretId(VaultApproleTarget {
            mount: "approle".into(),
            role: "keysweep".into(),
            secret_id_accessor: Some("x".into()),
        });
        assert!(!p.is_own_login(&sid, &Handle::from([("accessor".to_string(), "x".to_string())])));
        let a2 = acc.clone();
        let (s, _) = tokio::task::spawn_blocking(move || common::bao().call("POST", "auth/token/lookup-accessor", Some(json!({ "accessor": a2 }))))
            .await
            .unwrap();
        assert_eq!(s, 200, "the session is alive before close");
        p.close().await;
        let (s, v) = tokio::task::spawn_blocking(move || common::bao().call("POST", "auth/token/lookup-accessor", Some(json!({ "accessor": acc }))))
            .await
            .unwrap();
        assert_eq!(s, 400, "close did not revoke the session token: {v}");
    }

    fn b64url(b: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    }

    /// An RSA key pair (openssl CLI) in `dir`: the private key's path and the public key's PEM.
    fn rsa_pair(dir: &Path) -> (PathBuf, String) {
        let key = dir.join("jwt-signer.key");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "set -e; openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out '{k}' 2>/dev/null; openssl pkey -in '{k}' -pubout",
                k = key.display()
            ))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        (key, String::from_utf8(out.stdout).unwrap())
    }

    /// A JWT with `claims`, signed RS256 with `key` (openssl CLI).
    fn sign_jwt(key: &Path, claims: &Value) -> String {
        use std::io::Write;
        let input = format!("{}.{}", b64url(br#"{"alg":"RS256","typ":"JWT"}"#), b64url(claims.to_string().as_bytes()));
        let mut child = std::process::Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(key)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let jwt = format!("{input}.{}", b64url(&out.stdout));
        common::canary(&jwt);
        jwt
    }

    const ISSUER: &str = "https://ci.example.test";
    const SUBJECT: &str = "repo:acme/infra:ref:refs/heads/main";

    /// The claims of a CI job's ID token for `aud`, expiring `exp_in` seconds from now.
    fn ci_claims(aud: &str, exp_in: i64) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({ "iss": ISSUER, "sub": SUBJECT, "aud": aud, "iat": now - 5, "nbf": now - 5, "exp": now + exp_in, "ref": "refs/heads/main" })
    }

    /// A `jwt` auth mount that trusts `public_pem` and has a role `keysweep`
    /// for the CI job's subject and the audience `keysweep`.
    fn jwt_mount(public_pem: &str) -> String {
        let m = unique("jwt");
        setup("POST", &format!("sys/auth/{m}"), json!({ "type": "jwt" }));
        setup("POST", &format!("auth/{m}/config"), json!({ "jwt_validation_pubkeys": [public_pem], "bound_issuer": ISSUER }));
        setup(
            "POST",
            &format!("auth/{m}/role/keysweep"),
            json!({ "role_type": "jwt", "user_claim": "sub", "bound_audiences": ["keysweep"], "bound_subject": SUBJECT, "token_policies": ["ks-login-admin"], "token_ttl": "1h" }),
        );
        m
    }

    #[tokio::test]
    async fn keysweep_logs_in_with_a_jwt_and_does_the_work() {
        let dir = tempfile::tempdir().unwrap();
        let (key, public) = rsa_pair(dir.path());
        let m = tokio::task::spawn_blocking(move || {
            admin_policy();
            jwt_mount(&public)
        })
        .await
        .unwrap();
        let good = sign_jwt(&key, &ci_claims("keysweep", 300));
        let jwt_auth =
            |jwt: Option<SecretRef>, jwt_path: Option<String>| VaultAuth::Jwt { mount: m.clone(), role: Some("keysweep".into()), jwt, jwt_path };

        // From a secret reference (a CI job's variable).
        let c = cfg(Some(jwt_auth(Some(SecretRef::Env("CI_JOB_JWT".into())), None)));
        assert!(c.check(false).is_empty(), "{:?}", c.check(false));
        assert_eq!(c.secret_refs(), vec![&SecretRef::Env("CI_JOB_JWT".into())]);
        let g = good.clone();
        let p = VaultProvider::connect("bao", &c, &move |_| Ok(SecretString::from(g.clone()))).await.unwrap_or_else(|e| panic!("{e}"));
        p.check_login().await.unwrap();
        // Logged in as the CI job (OpenBao's own view of the session), and it does the work.
        let acc = session_accessor(&p).await;
        let (s, l) = tokio::task::spawn_blocking(move || common::bao().call("POST", "auth/token/lookup-accessor", Some(json!({ "accessor": acc }))))
            .await
            .unwrap();
        assert_eq!(s, 200);
        assert_eq!(l["data"]["meta"]["role"], "keysweep", "{l}");
        assert!(l["data"]["policies"].as_array().unwrap().iter().any(|p| p == "ks-login-admin"), "{l}");
        conformance::run(&p, &KvSecrets, "vault_kv_secret").await;
        session_is_kept_and_closed(&p).await;

        // From a file, read at each login: a replaced file is followed.
        let file = dir.path().join("id-token");
        std::fs::write(&file, format!("{good}\n")).unwrap();
        let cf = cfg(Some(jwt_auth(None, Some(file.display().to_string()))));
        assert!(cf.check(false).is_empty());
        let p = VaultProvider::connect("bao", &cf, &no_secret).await.unwrap_or_else(|e| panic!("{e}"));
        p.check_login().await.unwrap();
        p.close().await;
        let other_aud = sign_jwt(&key, &ci_claims("someone-else", 300));
        std::fs::write(&file, &other_aud).unwrap();
        let e = VaultProvider::connect("bao", &cf, &no_secret).await.err().expect("a JWT for another audience must be refused");
        assert_eq!(e.kind, ErrorKind::Unauthenticated, "{e}");
        assert!(e.to_string().contains("aud"), "the refusal does not say why: {e}");

        // An expired JWT is refused, saying so.
        let expired = sign_jwt(&key, &ci_claims("keysweep", -600));
        let x = expired.clone();
        let e2 = VaultProvider::connect("bao", &c, &move |_| Ok(SecretString::from(x.clone()))).await.err().expect("an expired JWT must be refused");
        assert_eq!(e2.kind, ErrorKind::Unauthenticated, "{e2}");
        assert!(e2.to_string().contains("expired"), "{e2}");

        // A JWT signed by another key is refused.
        let stranger_dir = tempfile::tempdir().unwrap();
        let (stranger, _) = rsa_pair(stranger_dir.path());
        let forged = sign_jwt(&stranger, &ci_claims("keysweep", 300));
        let f = forged.clone();
        let e3 = VaultProvider::connect("bao", &c, &move |_| Ok(SecretString::from(f.clone())))
            .await
            .err()
            .expect("a JWT of another signer must be refused");
        assert_eq!(e3.kind, ErrorKind::Unauthenticated, "{e3}");

        // No refusal carries a JWT, in any form.
        let errors = format!("{e}\n{e2}\n{e3}\n{e:?}\n{e2:?}\n{e3:?}");
        common::canary::Canary::new(&[&good, &other_aud, &expired, &forged]).assert_clean(&[], &[("login errors", errors.as_bytes())]);

        // Neither or both of `jwt`/`jwt_path`: the playbook does not load.
        let msgs = |a: VaultAuth| cfg(Some(a)).check(false).into_iter().map(|p| p.message).collect::<Vec<_>>().join(" | ");
        assert!(msgs(jwt_auth(None, None)).contains("needs the JWT"));
        assert!(msgs(jwt_auth(Some(SecretRef::Env("J".into())), Some("/f".into()))).contains("both"));
    }

    #[tokio::test]
    async fn keysweep_logs_in_with_a_kubernetes_service_account_token() {
        let sim = tokio::task::spawn_blocking(|| common::sim::start("kube_tokenreview")).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        common::certs::server(dir.path(), &["kubernetes.default.svc"]);
        let kube_ca = std::fs::read_to_string(dir.path().join("ca.pem")).unwrap();
        let m = unique("k8s");
        let base = sim.base.clone();
        let m2 = m.clone();
        tokio::task::spawn_blocking(move || {
            admin_policy();
            setup("POST", &format!("sys/auth/{m2}"), json!({ "type": "kubernetes" }));
            // The client's own token reviews itself (no reviewer JWT, no local CA JWT).
            setup("POST", &format!("auth/{m2}/config"), json!({ "kubernetes_host": base, "kubernetes_ca_cert": kube_ca, "disable_local_ca_jwt": true }));
            setup(
                "POST",
                &format!("auth/{m2}/role/keysweep"),
                json!({ "bound_service_account_names": ["keysweep"], "bound_service_account_namespaces": ["ci"], "token_policies": ["ks-login-admin"], "token_ttl": "1h" }),
            );
        })
        .await
        .unwrap();
        let uid = sim.admin("POST", "serviceaccounts", Some(json!({ "namespace": "ci", "name": "keysweep", "auth_delegator": true })))["uid"]
            .as_str()
            .unwrap()
            .to_string();
        let token = sim.admin("POST", "token", Some(json!({ "namespace": "ci", "name": "keysweep", "pod": "keysweep-cron-28514" })))["token"]
            .as_str()
            .unwrap()
            .to_string();
        common::canary(&token);
        let file = dir.path().join("token");
        std::fs::write(&file, &token).unwrap();

        let k8s = |jwt_path: &str| VaultAuth::Kubernetes { mount: m.clone(), role: "keysweep".into(), jwt_path: jwt_path.to_string() };
        let c = cfg(Some(k8s(&file.display().to_string())));
        assert!(c.check(false).is_empty(), "{:?}", c.check(false));
        assert!(c.secret_refs().is_empty());
        let p = VaultProvider::connect("bao", &c, &no_secret).await.unwrap_or_else(|e| panic!("{e}"));
        p.check_login().await.unwrap();
        // OpenBao asked the cluster: one TokenReview, authenticated, for that account.
        let st = sim.state();
        let reviews = st["reviews"].as_array().unwrap();
        assert_eq!(reviews.len(), 1, "{st}");
        assert_eq!(reviews[0]["subject"], "system:serviceaccount:ci:keysweep");
        assert_eq!(reviews[0]["authenticated"], true);
        let acc = session_accessor(&p).await;
        let (_, l) = tokio::task::spawn_blocking(move || common::bao().call("POST", "auth/token/lookup-accessor", Some(json!({ "accessor": acc }))))
            .await
            .unwrap();
        assert_eq!(l["data"]["meta"]["service_account_uid"], uid.as_str(), "{l}");
        // It does the work, and its session is its own.
        conformance::revoke_and_prove_dead(&p, &Tokens, "vault_token").await;
        session_is_kept_and_closed(&p).await;

        // The account deleted in the cluster: the same token is refused.
        sim.admin("POST", "delete_serviceaccount", Some(json!({ "namespace": "ci", "name": "keysweep" })));
        let e = VaultProvider::connect("bao", &c, &no_secret).await.err().expect("a token of a deleted account must be refused");
        assert_eq!(e.kind, ErrorKind::Unauthenticated, "{e}");
        // Recreated without the auth-delegator role: its new token cannot review itself.
        sim.admin("POST", "serviceaccounts", Some(json!({ "namespace": "ci", "name": "keysweep" })));
        let t2 = sim.admin("POST", "token", Some(json!({ "namespace": "ci", "name": "keysweep" })))["token"].as_str().unwrap().to_string();
        common::canary(&t2);
        std::fs::write(&file, &t2).unwrap();
        let e2 = VaultProvider::connect("bao", &c, &no_secret).await.err().expect("a reviewer without auth-delegator must be refused");
        assert_eq!(e2.kind, ErrorKind::Unauthenticated, "{e2}");
        // The cluster refused the reviews themselves: 401 (the reviewing token's
        // account is gone), then 403 (no auth-delegator role); only the first login got a review.
        let statuses: Vec<Value> =
            sim.log().iter().filter(|r| r["path"] == "/apis/authentication.k8s.io/v1/tokenreviews").map(|r| r["status"].clone()).collect();
        assert_eq!(statuses, vec![json!(201), json!(401), json!(403)]);
        assert_eq!(sim.state()["reviews"].as_array().unwrap().len(), 1);
        let errors = format!("{e}\n{e2}\n{e:?}\n{e2:?}");
        common::canary::Canary::new(&[&token, &t2]).assert_clean(&[], &[("login errors", errors.as_bytes())]);

        // Not in a pod: the default token file is missing, and the error says so.
        let d = cfg(Some(k8s(keysweep::providers::vault::config::KUBERNETES_JWT_PATH)));
        if !Path::new(keysweep::providers::vault::config::KUBERNETES_JWT_PATH).exists() {
            let e = VaultProvider::connect("bao", &d, &no_secret).await.err().expect("no token file");
            assert_eq!(e.kind, ErrorKind::Config, "{e}");
            assert!(e.to_string().contains("/var/run/secrets/kubernetes.io/serviceaccount/token") && e.to_string().contains("jwt_path"), "{e}");
        }
        // An empty role or path does not load.
        let bad = cfg(Some(VaultAuth::Kubernetes { mount: m.clone(), role: " ".into(), jwt_path: String::new() }));
        assert_eq!(bad.check(false).len(), 2, "{:?}", bad.check(false));
    }

    /// Submits a login's signed request the way Vault's `aws` auth method
    /// does (openbao-plugins `auth/aws/path_login.go`, `buildHttpRequest`):
    /// to its `sts_endpoint` followed by `/` and the signed URL's request
    /// URI, with the signed URL's host as `Host`, every signed header and
    /// the body. Returns (status, body).
    fn submit_as_vault(sts_endpoint: &str, data: &Value, edit: impl Fn(&mut serde_json::Map<String, Value>)) -> (u16, String) {
        let dec = |k: &str| base64::engine::general_purpose::STANDARD.decode(data[k].as_str().unwrap()).unwrap();
        let url = reqwest::Url::parse(std::str::from_utf8(&dec("iam_request_url")).unwrap()).unwrap();
        let mut headers: serde_json::Map<String, Value> = serde_json::from_slice(&dec("iam_request_headers")).unwrap();
        edit(&mut headers);
        let target = format!("{sts_endpoint}/{}", url.path());
        let mut cmd = std::process::Command::new("curl");
        cmd.args(["-s", "-X", data["iam_http_request_method"].as_str().unwrap(), "-w", "\n%{http_code}", "-H"])
            .arg(format!("Host: {}", url.host_str().unwrap()));
        for (k, vals) in &headers {
            for v in vals.as_array().unwrap() {
                cmd.arg("-H").arg(format!("{k}: {}", v.as_str().unwrap()));
            }
        }
        cmd.arg("--data-binary").arg(String::from_utf8(dec("iam_request_body")).unwrap()).arg(target);
        let out = cmd.output().unwrap();
        let s = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = s.rsplit_once('\n').unwrap();
        (code.trim().parse().unwrap(), body.to_string())
    }

    #[tokio::test]
    async fn the_aws_iam_login_request_is_one_sts_answers_with_keysweeps_identity() {
        use aws_credential_types::Credentials;
        use keysweep::providers::vault::aws_login::{login_data, sts_url, DEFAULT_REGION};
        let moto = tokio::task::spawn_blocking(common::moto::moto).await.unwrap();
        let user = unique("vault-login");
        let (kid, secret) = moto.create_user_with_key(&user).await;
        let creds = Credentials::new(&kid, &secret, None, None, "test");
        let sign = || login_data(&creds, &sts_url(DEFAULT_REGION), DEFAULT_REGION, Some("vault.example.test"), std::time::SystemTime::now()).unwrap();
        let data = sign();
        let text = data.to_string();
        assert!(!text.contains(&secret), "the secret key is in the login data");

        // STS (moto, with IAM authentication on) checks the signature and
        // answers with the caller: the ARN Vault binds roles to.
        let (d, e) = (data.clone(), moto.endpoint.clone());
        let (status, body) = tokio::task::spawn_blocking(move || submit_as_vault(&e, &d, |_| {})).await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(
            body.contains("<GetCallerIdentityResponse") && body.contains(&format!("arn:aws:iam::{}:user/{user}", common::moto::ACCOUNT_ID)),
            "{body}"
        );

        // The server-id header is covered by the signature: another value fails it.
        let (d, e) = (data.clone(), moto.endpoint.clone());
        let (status, body) = tokio::task::spawn_blocking(move || {
            submit_as_vault(&e, &d, |h| {
                h.insert("X-Vault-Aws-Iam-Server-Id".into(), json!(["another-vault.example.test"]));
            })
        })
        .await
        .unwrap();
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("SignatureDoesNotMatch"), "{body}");

        // Signed by a deleted key, it is refused.
        let iam = moto.iam().await;
        iam.delete_access_key().user_name(&user).access_key_id(&kid).send().await.unwrap();
        let (d, e) = (sign(), moto.endpoint.clone());
        let (status, body) = tokio::task::spawn_blocking(move || submit_as_vault(&e, &d, |_| {})).await.unwrap();
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("InvalidClientTokenId"), "{body}");

        // OpenBao ships no `aws` auth method (it is an external plugin), so
        // no login goes end to end here; if a release adds it, this fails
        // and the end-to-end test should be written.
        let (s, v) =
            tokio::task::spawn_blocking(|| common::bao().call("POST", &format!("sys/auth/{}", unique("aws")), Some(json!({ "type": "aws" }))))
                .await
                .unwrap();
        assert_eq!(s, 400, "{v}");
        assert!(v.to_string().contains("plugin not found in the catalog: aws"), "{v}");
    }

    #[tokio::test]
    async fn address_token_and_namespace_come_from_the_vault_environment() {
        let ns = unique("team");
        let n2 = ns.clone();
        let (tok, _) = tokio::task::spawn_blocking(move || {
            admin_policy();
            setup("POST", &format!("sys/namespaces/{n2}"), json!({}));
            setup("POST", &format!("{n2}/sys/mounts/secret"), json!({ "type": "kv", "options": { "version": "2" } }));
            setup("POST", &format!("{n2}/secret/data/only-in-the-namespace"), json!({ "data": { "value": "namespaced-value-7Qx" } }));
            common::bao().create_token(&["ks-login-admin"], json!({}))
        })
        .await
        .unwrap();
        let addr = common::bao().addr.clone();
        let bare = VaultProviderConfig { address: None, ..cfg(None) };
        let (a, t, n) = (addr.clone(), tok.clone(), ns.clone());
        let env = move |k: &str| match k {
            "VAULT_ADDR" => Some(a.clone()),
            "VAULT_TOKEN" => Some(t.clone()),
            "VAULT_NAMESPACE" => Some(n.clone()),
            _ => None,
        };
        // What `plan` shows: where each value came from, never the token.
        assert_eq!(
            bare.from_env(&env),
            vec![
                format!("`address` from VAULT_ADDR ({addr})"),
                format!("`namespace` from VAULT_NAMESPACE ({ns})"),
                "`auth` token from VAULT_TOKEN".to_string(),
            ]
        );
        assert!(bare.check(false).is_empty() && bare.check_env(false, &env).is_empty());
        // It logs in with them and works inside the namespace.
        let p = VaultProvider::connect_with_env("bao", &bare, &no_secret, &env).await.unwrap_or_else(|e| panic!("{e}"));
        p.check_login().await.unwrap();
        let items = p.inventory().await.unwrap_or_else(|e| panic!("{e}"));
        assert!(items.iter().any(|i| i.kind == "vault_kv_secret" && i.id == "only-in-the-namespace"), "not in the namespace: {items:?}");

        // The playbook's own settings win.
        let (t, n) = (tok.clone(), ns.clone());
        let wrong_addr = move |k: &str| match k {
            "VAULT_ADDR" => Some("http://127.0.0.1:1".to_string()),
            "VAULT_TOKEN" => Some(t.clone()),
            "VAULT_NAMESPACE" => Some(n.clone()),
            _ => None,
        };
        let with_address = cfg(None);
        assert_eq!(with_address.from_env(&wrong_addr).len(), 2, "{:?}", with_address.from_env(&wrong_addr));
        let p = VaultProvider::connect_with_env("bao", &with_address, &no_secret, &wrong_addr).await.unwrap_or_else(|e| panic!("{e}"));
        p.check_login().await.unwrap();

        // No address anywhere: an error naming both fixes, at load and at connect.
        let t = tok.clone();
        let no_addr = move |k: &str| (k == "VAULT_TOKEN").then(|| t.clone());
        let e = VaultProvider::connect_with_env("bao", &bare, &no_secret, &no_addr).await.err().expect("no address");
        assert_eq!(e.kind, ErrorKind::Config);
        assert!(e.message.contains("no `address`") && e.message.contains("set VAULT_ADDR") && e.message.contains("write `address:"), "{e}");
        let at_load = bare.check_env(false, &no_addr);
        assert!(at_load.len() == 1 && at_load[0].message.contains("VAULT_ADDR"), "{at_load:?}");

        // VAULT_ADDR is held to the playbook's rules: no plaintext to a remote host.
        let t = tok.clone();
        let remote = move |k: &str| match k {
            "VAULT_ADDR" => Some("http://vault.remote.example:8200".to_string()),
            "VAULT_TOKEN" => Some(t.clone()),
            _ => None,
        };
        let e = VaultProvider::connect_with_env("bao", &bare, &no_secret, &remote).await.err().expect("plaintext to a remote host");
        assert_eq!(e.kind, ErrorKind::Config);
        assert!(e.message.contains("`address` from VAULT_ADDR") && e.message.contains("not loopback"), "{e}");
        assert!(bare.check_env(false, &remote).iter().any(|p| p.message.contains("not loopback")));
        let allowed = VaultProviderConfig { allow_plaintext: true, ..bare.clone() };
        assert!(allowed.check_env(false, &remote).is_empty());
        assert!(allowed.from_env(&remote)[0].contains("WARNING: plaintext"), "{:?}", allowed.from_env(&remote));
        // ... nor a metadata address unless the provider allows link-local ones (judged at load).
        let meta = |k: &str| (k == "VAULT_ADDR").then(|| "http://169.254.169.254".to_string());
        assert!(!allowed.check_env(false, &meta).is_empty());

        // No `auth`: VAULT_TOKEN, else the vault CLI's ~/.vault-token, else an error naming the fixes.
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join(".vault-token"), format!("{tok}\n")).unwrap();
        let (a, h) = (addr.clone(), home.path().display().to_string());
        let file_env = move |k: &str| match k {
            "VAULT_ADDR" => Some(a.clone()),
            "HOME" => Some(h.clone()),
            _ => None,
        };
        assert_eq!(bare.from_env(&file_env)[1], format!("`auth` token from ~/.vault-token ({}/.vault-token)", home.path().display()));
        let p = VaultProvider::connect_with_env("bao", &bare, &no_secret, &file_env).await.unwrap_or_else(|e| panic!("{e}"));
        p.check_login().await.unwrap();
        let a = addr.clone();
        let nothing = move |k: &str| (k == "VAULT_ADDR").then(|| a.clone());
        let e = VaultProvider::connect_with_env("bao", &bare, &no_secret, &nothing).await.err().expect("no token");
        assert!(e.message.contains("VAULT_TOKEN is not set") && e.message.contains("write `auth:`"), "{e}");
        assert!(bare.check_env(false, &nothing).iter().any(|p| p.message.contains("no `auth`")));
        let texts = format!("{:?}{:?}", bare.from_env(&file_env), bare.from_env(&env));
        common::canary::Canary::new(&[&tok]).assert_clean(&[], &[("from_env", texts.as_bytes())]);
    }

    /// Runs the keysweep binary (state in `state`, HOME in `home`) with `args`, after `f` edits its environment.
    fn keysweep_cli(state: &Path, home: &Path, args: &[&str], f: impl FnOnce(&mut std::process::Command)) -> std::process::Output {
        let mut c = common::keysweep(state);
        c.env("HOME", home).env_remove("VAULT_NAMESPACE").env_remove("VAULT_CACERT").env_remove("VAULT_CAPATH");
        f(&mut c);
        c.args(args).output().unwrap()
    }

    fn text(out: &std::process::Output) -> String {
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    }

    /// A playbook whose one provider is `provider_yaml` (indented under
    /// `bao:`), rotating one KV secret at `path`.
    fn kv_playbook(dir: &Path, provider_yaml: &str, path: &str) -> PathBuf {
        let pb = dir.join("playbook.yaml");
        std::fs::write(
            &pb,
            format!(
                "version: 1\nproviders:\n  bao:\n    kind: vault\n{provider_yaml}credentials:\n  - id: app-db\n    owner: platform\n    provider: bao\n    target: {{ kind: vault_kv_secret, path: \"{path}\" }}\n    verify: {{ attempts: 3, interval: 100ms }}\n"
            ),
        )
        .unwrap();
        pb
    }

    #[test]
    fn plan_and_run_take_the_vault_environment_and_say_where_from() {
        let b = common::bao();
        admin_policy();
        let (tok, _) = b.create_token(&["ks-login-admin"], json!({}));
        let path = format!("envrun/{}", uuid::Uuid::new_v4().simple());
        let old = "old-env-run-value-Hq4z";
        b.kv_put(&path, json!({ "value": old }));
        let dir = tempfile::tempdir().unwrap();
        let home = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let pb = kv_playbook(dir.path(), "", &path);
        let pbs = pb.to_str().unwrap();
        let mut outputs = vec![];

        // `plan` says where each setting came from, never the token.
        let out = keysweep_cli(&state, home.path(), &["plan", "--offline", pbs], |c| {
            c.env("VAULT_TOKEN", &tok);
        });
        let s = text(&out);
        assert_eq!(out.status.code(), Some(0), "{s}");
        assert!(s.contains("settings from the environment:"), "{s}");
        assert!(s.contains(&format!("provider `bao`: `address` from VAULT_ADDR ({})", b.addr)), "{s}");
        assert!(s.contains("provider `bao`: `auth` token from VAULT_TOKEN"), "{s}");
        outputs.push(out);
        let out = keysweep_cli(&state, home.path(), &["plan", "--offline", "--format", "json", pbs], |c| {
            c.env("VAULT_TOKEN", &tok);
        });
        let r: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
        assert_eq!(
            r["from_env"],
            json!([format!("provider `bao`: `address` from VAULT_ADDR ({})", b.addr), "provider `bao`: `auth` token from VAULT_TOKEN"]),
            "{r}"
        );
        outputs.push(out);

        // `run` logs in with them and rotates.
        let out = keysweep_cli(&state, home.path(), &["run", pbs], |c| {
            c.env("VAULT_TOKEN", &tok);
        });
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert_eq!(common::report_json(&state)["totals"]["rotated"], 1);
        assert_eq!(b.kv_meta(&path).unwrap()["current_version"], 2);
        outputs.push(out);

        // No VAULT_ADDR: the playbook does not load, and the error names both fixes;
        // `validate --no-env` passes it and lists VAULT_ADDR as not checked.
        let out = keysweep_cli(&state, home.path(), &["validate", pbs], |c| {
            c.env("VAULT_TOKEN", &tok).env_remove("VAULT_ADDR");
        });
        let s = text(&out);
        assert_eq!(out.status.code(), Some(2), "{s}");
        assert!(
            s.contains("no `address` and VAULT_ADDR is not set") && s.contains("write `address: https://…` in the provider, or set VAULT_ADDR"),
            "{s}"
        );
        let out = keysweep_cli(&state, home.path(), &["validate", "--no-env", pbs], |c| {
            c.env_remove("VAULT_TOKEN").env_remove("VAULT_ADDR");
        });
        let s = text(&out);
        assert_eq!(out.status.code(), Some(0), "{s}");
        assert!(s.contains("not checked: 2 unset environment variable(s): VAULT_ADDR, VAULT_TOKEN"), "{s}");
        let out = keysweep_cli(&state, home.path(), &["run", pbs], |c| {
            c.env("VAULT_TOKEN", &tok).env_remove("VAULT_ADDR");
        });
        assert_ne!(out.status.code(), Some(0));
        assert!(text(&out).contains("VAULT_ADDR"), "{}", text(&out));
        outputs.push(out);

        // A plaintext VAULT_ADDR to a remote host is refused like one in the playbook.
        let out = keysweep_cli(&state, home.path(), &["validate", pbs], |c| {
            c.env("VAULT_TOKEN", &tok).env("VAULT_ADDR", "http://vault.remote.example:8200");
        });
        let s = text(&out);
        assert_eq!(out.status.code(), Some(2), "{s}");
        assert!(s.contains("`address` from VAULT_ADDR: `http://` to `vault.remote.example`, which is not loopback"), "{s}");

        // No VAULT_TOKEN: the vault CLI's ~/.vault-token, said by `plan`, used by `run`.
        std::fs::write(home.path().join(".vault-token"), format!("{tok}\n")).unwrap();
        let out = keysweep_cli(&state, home.path(), &["plan", "--offline", pbs], |c| {
            c.env_remove("VAULT_TOKEN");
        });
        assert!(text(&out).contains(&format!("`auth` token from ~/.vault-token ({}/.vault-token)", home.path().display())), "{}", text(&out));
        outputs.push(out);
        let out = keysweep_cli(&state, home.path(), &["run", pbs], |c| {
            c.env_remove("VAULT_TOKEN");
        });
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert_eq!(b.kv_meta(&path).unwrap()["current_version"], 3);
        outputs.push(out);
        // Neither: the error names `auth` and VAULT_TOKEN.
        std::fs::remove_file(home.path().join(".vault-token")).unwrap();
        let out = keysweep_cli(&state, home.path(), &["validate", pbs], |c| {
            c.env_remove("VAULT_TOKEN");
        });
        let s = text(&out);
        assert_eq!(out.status.code(), Some(2), "{s}");
        assert!(s.contains("no `auth`, VAULT_TOKEN is not set and there is no ~/.vault-token"), "{s}");

        let outs: Vec<(String, Vec<u8>)> = outputs
            .iter()
            .enumerate()
            .flat_map(|(i, o)| [(format!("stdout {i}"), o.stdout.clone()), (format!("stderr {i}"), o.stderr.clone())])
            .collect();
        let named: Vec<(&str, &[u8])> = outs.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
        let scanned = common::canary::Canary::new(&[tok.as_str(), old]).assert_clean(&[state.as_path()], &named);
        assert!(scanned.files > 0 && scanned.bytes > 0);
    }

    #[test]
    fn a_ci_job_runs_keysweep_with_its_id_token() {
        let dir = tempfile::tempdir().unwrap();
        let (key, public) = rsa_pair(dir.path());
        admin_policy();
        let m = jwt_mount(&public);
        let b = common::bao();
        let path = format!("jwtrun/{}", uuid::Uuid::new_v4().simple());
        let old = "old-ci-run-value-Zt8k";
        b.kv_put(&path, json!({ "value": old }));
        let pb = kv_playbook(dir.path(), &format!("    auth: {{ method: jwt, mount: {m}, role: keysweep, jwt: \"${{env:CI_JOB_JWT}}\" }}\n"), &path);
        let pbs = pb.to_str().unwrap();
        let home = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let good = sign_jwt(&key, &ci_claims("keysweep", 300));
        // No VAULT_TOKEN at all: the JWT is the only way in.
        let out = keysweep_cli(&state, home.path(), &["run", pbs], |c| {
            c.env_remove("VAULT_TOKEN").env("CI_JOB_JWT", &good);
        });
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert_eq!(common::report_json(&state)["rows"][0]["outcome"], "rotated");
        assert_eq!(b.kv_meta(&path).unwrap()["current_version"], 2);
        let new = b.kv_get(&path).unwrap()["value"].as_str().unwrap().to_string();
        let plan = keysweep_cli(&state, home.path(), &["plan", "--offline", pbs], |c| {
            c.env_remove("VAULT_TOKEN").env("CI_JOB_JWT", &good);
        });
        assert!(text(&plan).contains("`address` from VAULT_ADDR") && !text(&plan).contains("`auth` token from"), "{}", text(&plan));
        // An expired one is refused, saying so.
        let expired = sign_jwt(&key, &ci_claims("keysweep", -600));
        let state2 = dir.path().join("state2");
        let bad = keysweep_cli(&state2, home.path(), &["run", pbs], |c| {
            c.env_remove("VAULT_TOKEN").env("CI_JOB_JWT", &expired);
        });
        assert_ne!(bad.status.code(), Some(0));
        assert!(text(&bad).contains("refused keysweep's own login") && text(&bad).contains("expired"), "{}", text(&bad));
        common::canary::Canary::new(&[good.as_str(), expired.as_str(), old, new.as_str()]).assert_clean(
            &[state.as_path(), state2.as_path()],
            &[
                ("run stdout", &out.stdout),
                ("run stderr", &out.stderr),
                ("plan", &plan.stdout),
                ("refused stdout", &bad.stdout),
                ("refused stderr", &bad.stderr),
            ],
        );
    }

    #[test]
    fn an_aws_login_signs_with_the_credential_chain_and_reports_vaults_answer() {
        let dir = tempfile::tempdir().unwrap();
        let home = tempfile::tempdir().unwrap();
        let pb = kv_playbook(dir.path(), "    auth: { method: aws, role: keysweep, header_value: vault.example.test }\n", "awsrun/x");
        let pbs = pb.to_str().unwrap();
        let state = dir.path().join("state");
        // Made-up keys (built at run time: no credential-shaped literal in the source).
        let key_id = format!("AKIA{}", "KEYSWEEPTEST0001");
        let secret = format!("{}/{}", "made-up-secret-access-key", uuid::Uuid::new_v4().simple());
        let no_aws_files = |c: &mut std::process::Command| {
            c.env("AWS_CONFIG_FILE", "/dev/null")
                .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .env_remove("AWS_PROFILE")
                .env_remove("AWS_SESSION_TOKEN")
                .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
                .env_remove("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
                .env_remove("AWS_CONTAINER_CREDENTIALS_FULL_URI");
        };
        // Keys in the environment: the request is signed and posted; OpenBao,
        // which has no `aws` auth method, answers as for any unmounted path,
        // and the error says what that means.
        let out = keysweep_cli(&state, home.path(), &["run", pbs], |c| {
            no_aws_files(c);
            c.env("AWS_ACCESS_KEY_ID", &key_id).env("AWS_SECRET_ACCESS_KEY", &secret);
        });
        let s = text(&out);
        assert_ne!(out.status.code(), Some(0), "{s}");
        assert!(s.contains("auth/aws/login: HTTP 403 permission denied") && s.contains("no auth method is enabled"), "{s}");
        // No credentials anywhere: said before anything is sent.
        let out2 = keysweep_cli(&state, home.path(), &["run", pbs], |c| {
            no_aws_files(c);
            c.env_remove("AWS_ACCESS_KEY_ID").env_remove("AWS_SECRET_ACCESS_KEY");
        });
        let s2 = text(&out2);
        assert_ne!(out2.status.code(), Some(0), "{s2}");
        assert!(s2.contains("no AWS credentials found"), "{s2}");
        common::canary::Canary::new(&[secret.as_str()]).assert_clean(
            &[state.as_path()],
            &[("stdout", &out.stdout), ("stderr", &out.stderr), ("stdout 2", &out2.stdout), ("stderr 2", &out2.stderr)],
        );
    }
}
