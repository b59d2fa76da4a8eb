//! The shared conformance suite for the AWS provider, against a real moto
//! server with IAM authentication on; Secrets Manager's staging labels;
//! throttling and the declared rate limit, through a counting proxy.

mod common;

use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::moto::moto;
use common::proxy::Proxy;
use keysweep::playbook::model::{Limits, Target};
use keysweep::playbook::StoreLocation;
use keysweep::provider::conformance::{self, Fixture};
use keysweep::provider::{Handle, Provider, Verdict};
use keysweep::providers::aws::config::{AwsIamKeyTarget, AwsProviderConfig, AwsSecretTarget};
use keysweep::providers::aws::AwsProvider;
use keysweep::secret::{ExposeSecret, SecretString};

async fn provider_at(endpoint: &str, limits: Limits) -> AwsProvider {
    // The provider reads credentials from the standard chain: the environment.
    moto().set_admin_env();
    let cfg = AwsProviderConfig {
        region: Some(moto().region.clone()),
        endpoint_url: Some(endpoint.to_string()),
        profile: None,
        ca_bundle: None,
        allow_plaintext: false,
        limits,
        claims_in: None,
    };
    AwsProvider::connect("aws", &cfg).await.unwrap()
}

async fn provider() -> AwsProvider {
    provider_at(&moto().endpoint, Limits::default()).await
}

struct Keys;
#[async_trait]
impl Fixture for Keys {
    async fn create(&self) -> (Target, Handle, SecretString) {
        let user = format!("conf-{}", uuid::Uuid::new_v4().simple());
        let (id, secret) = moto().create_user_with_key(&user).await;
        let target = Target::AwsIamAccessKey(AwsIamKeyTarget { user, access_key_id: Some(id.clone()), allow_delete_inactive: false });
        (target, Handle::from([("access_key_id".to_string(), id)]), SecretString::from(secret))
    }
    async fn unreachable(&self) -> Option<std::sync::Arc<dyn Provider>> {
        Some(std::sync::Arc::new(down().await))
    }
}

/// A provider whose endpoint refuses every connection, trying once.
async fn down() -> AwsProvider {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let limits =
        Limits { max_attempts: Some(1), timeout: Some(keysweep::playbook::model::HumanDuration(Duration::from_secs(2))), ..Default::default() };
    provider_at(&format!("http://{closed}"), limits).await
}

/// Secrets Manager secrets whose value is itself the credential.
struct Secrets;
#[async_trait]
impl Fixture for Secrets {
    async fn create(&self) -> (Target, Handle, SecretString) {
        let name = format!("conf/{}", uuid::Uuid::new_v4().simple());
        let value = keysweep::secret::GeneratePolicy::default().generate();
        let out = moto().sm().await.create_secret().name(&name).secret_string(value.expose_secret()).send().await.unwrap();
        let version = out.version_id().unwrap().to_string();
        let target = Target::AwsSecretsmanagerSecret(AwsSecretTarget { name, field: None, generate: Default::default(), aws_random_password: false });
        (target, Handle::from([("version".to_string(), version)]), value)
    }
    async fn unreachable(&self) -> Option<std::sync::Arc<dyn Provider>> {
        Some(std::sync::Arc::new(down().await))
    }
}

#[tokio::test]
async fn aws_secretsmanager_secret_conformance() {
    let p = provider().await;
    conformance::run(&p, &Secrets, "aws_secretsmanager_secret").await;
}

#[tokio::test]
async fn aws_iam_access_key_conformance() {
    let p = provider().await;
    p.check_login().await.unwrap();
    conformance::run(&p, &Keys, "aws_iam_access_key").await;
}

#[tokio::test]
async fn secretsmanager_store_conformance_and_labels() {
    let p = provider().await;
    let name = format!("store/{}", uuid::Uuid::new_v4().simple());
    let loc = StoreLocation { provider: "aws".into(), mount: String::new(), path: name.clone(), field: "value".into() };
    conformance::store_contract(p.as_store().unwrap(), &loc, p.kind()).await;
    // After two promotions: one AWSCURRENT, one AWSPREVIOUS, no AWSPENDING.
    let labels = moto().labels(&name).await;
    let all: Vec<&String> = labels.values().flatten().collect();
    assert_eq!(all.iter().filter(|l| l.as_str() == "AWSCURRENT").count(), 1, "{labels:?}");
    assert_eq!(all.iter().filter(|l| l.as_str() == "AWSPREVIOUS").count(), 1, "{labels:?}");
    assert!(!all.iter().any(|l| l.as_str() == "AWSPENDING"), "{labels:?}");
}

#[tokio::test]
async fn two_keys_already_is_a_clear_failure_unless_allowed() {
    let p = provider().await;
    let user = format!("two-{}", uuid::Uuid::new_v4().simple());
    let (k1, _) = moto().create_user_with_key(&user).await;
    let (k2, _) = moto().create_user_with_key(&user).await;
    let mut t = AwsIamKeyTarget { user: user.clone(), access_key_id: Some(k1.clone()), allow_delete_inactive: false };
    let old = Handle::from([("access_key_id".to_string(), k1.clone())]);
    let e = p.mint(&Target::AwsIamAccessKey(t.clone()), &old, "20260101T000000Z-x/c").await.unwrap_err();
    assert!(e.to_string().contains("already has two access keys") && e.to_string().contains("allow_delete_inactive"), "{e}");
    // With the second key inactive and deletion allowed, keysweep makes room.
    moto().iam().await.update_access_key().user_name(&user).access_key_id(&k2).status(aws_sdk_iam::types::StatusType::Inactive).send().await.unwrap();
    t.allow_delete_inactive = true;
    let m = p.mint(&Target::AwsIamAccessKey(t), &old, "20260101T000000Z-x/c").await.unwrap();
    let keys = moto().iam().await.list_access_keys().user_name(&user).send().await.unwrap();
    let ids: Vec<&str> = keys.access_key_metadata().iter().filter_map(|k| k.access_key_id()).collect();
    assert!(ids.contains(&k1.as_str()) && ids.contains(&m.handle["access_key_id"].as_str()) && !ids.contains(&k2.as_str()), "{ids:?}");
}

#[tokio::test]
async fn a_deleted_key_is_refused_by_sts_and_proven_dead() {
    let p = provider().await;
    let user = format!("dead-{}", uuid::Uuid::new_v4().simple());
    let (id, secret) = moto().create_user_with_key(&user).await;
    let t = Target::AwsIamAccessKey(AwsIamKeyTarget { user, access_key_id: Some(id.clone()), allow_delete_inactive: false });
    let h = Handle::from([("access_key_id".to_string(), id.clone())]);
    let secret = SecretString::from(secret);
    assert!(matches!(p.verify_dead(&t, &h, Some(&secret)).await, Verdict::Alive(_)));
    p.retire(&t, &h).await.unwrap();
    let v = p.verify_dead(&t, &h, Some(&secret)).await;
    match v {
        Verdict::Dead(e) => assert!(e.contains("InvalidClientTokenId") && e.contains("ListAccessKeys"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(!moto().key_works(&id, secret.expose_secret()).await, "a separate client still authenticates");
}

#[tokio::test]
async fn throttling_is_retried_with_backoff_and_counted_once() {
    let proxy = Proxy::start(&moto().endpoint, 3).await;
    let p = provider_at(&proxy.endpoint, Limits { max_attempts: Some(5), ..Default::default() }).await;
    let start = Instant::now();
    let arn = p.check_login().await.expect("retried past three throttles");
    assert!(arn.contains("keysweep-admin"), "{arn}");
    assert_eq!(proxy.throttled(), 3);
    assert_eq!(proxy.count(), 4, "one call, three throttled attempts and one that passed");
    assert_eq!(p.request_count(), 4);
    assert!(start.elapsed() >= Duration::from_millis(30), "retries were not spaced out");

    // Throttled past the bound: a clear, temporary error, not a verdict.
    let proxy = Proxy::start(&moto().endpoint, 100).await;
    let p = provider_at(&proxy.endpoint, Limits { max_attempts: Some(2), ..Default::default() }).await;
    let e = p.check_login().await.unwrap_err();
    assert!(e.is_temporary(), "{e}");
    assert_eq!(proxy.count(), 2);
    // A probe that meets throttling is unknown, never dead.
    let user = format!("thr-{}", uuid::Uuid::new_v4().simple());
    let (id, secret) = moto().create_user_with_key(&user).await;
    let t = Target::AwsIamAccessKey(AwsIamKeyTarget { user, access_key_id: Some(id.clone()), allow_delete_inactive: false });
    let v = p.verify_dead(&t, &Handle::from([("access_key_id".to_string(), id)]), Some(&SecretString::from(secret))).await;
    assert!(matches!(v, Verdict::Unknown(_)), "{v:?}");
}

#[tokio::test]
async fn the_declared_rate_limit_is_never_exceeded() {
    // Measured where the server sees it: no one-second window holds more than
    // the rate, burst included. (The token bucket this replaced let a 20/s
    // limit pass 39 requests in its first second.)
    for (rate, burst, n) in [(10, None, 35), (10, Some(2), 24)] {
        let proxy = Proxy::start(&moto().endpoint, 0).await;
        let p = provider_at(&proxy.endpoint, Limits { rate_per_second: Some(rate), burst, ..Default::default() }).await;
        let start = Instant::now();
        let calls: Vec<_> = (0..n).map(|_| p.check_login()).collect();
        for r in futures::future::join_all(calls).await {
            r.unwrap();
        }
        assert_eq!(proxy.count(), n);
        let max = proxy.max_in_window(Duration::from_secs(1));
        assert!(max <= rate as usize, "{rate}/s burst {burst:?}: {max} requests arrived within one second");
        // n requests at `rate` need (n - rate) / rate seconds at least, however many run at once.
        let least = Duration::from_secs_f64((n as f64 - rate as f64) / rate as f64);
        assert!(start.elapsed() >= least, "{rate}/s: {n} requests in {:?}", start.elapsed());
    }
}

#[tokio::test]
async fn inventory_lists_keys_and_secrets() {
    let p = provider().await;
    let user = format!("inv-{}", uuid::Uuid::new_v4().simple());
    let (id, _) = moto().create_user_with_key(&user).await;
    let name = format!("inv/{}", uuid::Uuid::new_v4().simple());
    moto().sm().await.create_secret().name(&name).secret_string("inventory-secret-value").send().await.unwrap();
    let items = p.inventory().await.unwrap();
    let k = items.iter().find(|i| i.kind == "aws_iam_access_key" && i.id == id).expect("key listed");
    assert_eq!(k.details["user"], user);
    assert_eq!(k.details["status"], "Active");
    assert!(k.created.is_some());
    let s = items.iter().find(|i| i.kind == "aws_secretsmanager_secret" && i.id == name).expect("secret listed");
    assert_eq!(s.details["pending"], "false");
    assert!(!serde_json::to_string(&items).unwrap().contains("inventory-secret-value"));
}

/// IAM keys carry no nonce, so an orphan of a lost mint is told by when it
/// was created. With the claim's record of when the mint was sent, only a key
/// created in that window is taken for an orphan: a key someone else made
/// for the user at another time in a long run is never deleted.
#[tokio::test]
async fn orphan_cleanup_spares_a_key_made_outside_the_mint_window() {
    let p = provider().await;
    let (target, old, _) = Keys.create().await;
    let Target::AwsIamAccessKey(t) = &target else { unreachable!() };
    // Someone else creates a second key for the user, now.
    let iam = moto().iam().await;
    let other = iam.create_access_key().user_name(&t.user).send().await.unwrap();
    let other_id = other.access_key().unwrap().access_key_id().to_string();
    // The run began an hour ago; its mint was sent 20 minutes ago.
    let run = (chrono::Utc::now() - chrono::Duration::hours(1)).format("%Y%m%dT%H%M%S%.3fZ-abcdef");
    let nonce = format!("{run}/cred");
    let sent = chrono::Utc::now() - chrono::Duration::minutes(20);
    let n = p.cleanup_minted_since(&target, &old, &nonce, None, Some(sent)).await.unwrap();
    assert_eq!(n, 0, "a key made outside the mint window was taken for an orphan");
    let ids = |o: aws_sdk_iam::operation::list_access_keys::ListAccessKeysOutput| {
        o.access_key_metadata().iter().filter_map(|k| k.access_key_id().map(str::to_string)).collect::<Vec<_>>()
    };
    let keys = ids(iam.list_access_keys().user_name(&t.user).send().await.unwrap());
    assert!(keys.contains(&other_id) && keys.contains(&old["access_key_id"]), "{keys:?}");
    // Without the claim's record, the run's start bounds the window: the same
    // key would be taken for an orphan (the reason the claim records it).
    // With a mint sent just now, a key made now is the orphan and is deleted.
    let n = p.cleanup_minted_since(&target, &old, &nonce, None, Some(chrono::Utc::now())).await.unwrap();
    assert_eq!(n, 1);
    let keys = ids(iam.list_access_keys().user_name(&t.user).send().await.unwrap());
    assert_eq!(keys, vec![old["access_key_id"].clone()], "only the old key is left");
}

/// An AWS endpoint behind a private CA (a VPC endpoint or an inspecting
/// proxy): trusted through `ca_bundle` only; without it the certificate is
/// refused as a configuration error that names the fix, not retried as a
/// temporary failure. `AWS_CA_BUNDLE` stands in when the playbook has none.
#[tokio::test]
async fn a_private_ca_is_trusted_through_ca_bundle() {
    use keysweep::provider::kind::ProviderKind;
    use keysweep::provider::ErrorKind;
    let dir = tempfile::tempdir().unwrap();
    common::certs::server(dir.path(), &["localhost"]);
    let port = common::free_port();
    let me = std::process::id();
    let script = format!(
        "'{}' -H 127.0.0.1 -p {port} -c '{d}/server.pem' -k '{d}/server.key' >/dev/null 2>&1 & m=$!; while kill -0 {me} 2>/dev/null; do sleep 1; done; kill $m",
        common::moto::moto_bin().display(),
        d = dir.path().display()
    );
    #[allow(clippy::zombie_processes)]
    std::process::Command::new("sh").arg("-c").arg(script).stdin(std::process::Stdio::null()).spawn().unwrap();
    let ca = dir.path().join("ca.pem").display().to_string();
    let endpoint = format!("https://localhost:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::process::Command::new("curl")
        .args(["-sf", "-o", "/dev/null", "--cacert", &ca])
        .arg(format!("{endpoint}/moto-api/"))
        .status()
        .unwrap()
        .success()
    {
        assert!(Instant::now() < deadline, "moto with TLS did not start");
        std::thread::sleep(Duration::from_millis(200));
    }
    moto().set_admin_env();
    let cfg = |ca_bundle: Option<String>| AwsProviderConfig {
        region: Some(moto().region.clone()),
        endpoint_url: Some(endpoint.clone()),
        profile: None,
        ca_bundle,
        allow_plaintext: false,
        limits: Limits { max_attempts: Some(1), ..Default::default() },
        claims_in: None,
    };
    let p = AwsProvider::connect("aws", &cfg(Some(ca.clone()))).await.unwrap();
    p.check_login().await.unwrap_or_else(|e| panic!("over TLS with the CA bundle: {e}"));

    let p = AwsProvider::connect("aws", &cfg(None)).await.unwrap();
    let e = p.check_login().await.expect_err("a certificate from an unknown CA was accepted");
    assert_eq!(e.kind, ErrorKind::Config, "not temporary: {e}");
    assert!(e.message.contains("ca_bundle"), "names the fix: {e}");

    let e = AwsProvider::connect("aws", &cfg(Some("/nonexistent/ca.pem".into()))).await.err().expect("a missing bundle");
    assert!(e.message.contains("/nonexistent/ca.pem"), "{e}");

    let env = |k: &str| (k == "AWS_CA_BUNDLE").then(|| ca.clone());
    assert_eq!(cfg(None).from_env(&env), vec![format!("`ca_bundle` from AWS_CA_BUNDLE ({ca})")]);
    assert!(cfg(Some(ca.clone())).from_env(&env).is_empty(), "the playbook's own value wins");
}
