//! Only AWS's own answers are facts: moto behind the fault-injecting proxy
//! (tests/common/faultproxy.rs). Outcomes checked with separate moto clients.

mod common;

use common::faultproxy::{Fault, FaultProxy, Rule};
use common::moto::moto;
use keysweep::playbook::model::{Limits, Target};
use keysweep::playbook::StoreLocation;
use keysweep::provider::{Handle, Provider, Verdict};
use keysweep::providers::aws::config::{AwsIamKeyTarget, AwsProviderConfig};
use keysweep::providers::aws::AwsProvider;
use keysweep::secret::{Delivered, SecretString};

async fn provider_at(endpoint: &str) -> AwsProvider {
    moto().set_admin_env();
    let limits = Limits { max_attempts: Some(2), ..Default::default() };
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_error_pages_are_never_absent_or_dead() {
    let proxy = FaultProxy::start(&moto().endpoint).await;
    let p = provider_at(&proxy.endpoint).await;

    // A Secrets Manager store value behind a load balancer's 404.
    let name = format!("answers/{}", uuid::Uuid::new_v4().simple());
    moto().sm().await.create_secret().name(&name).secret_string(r#"{"value":"old-aws-answers-value","username":"svc"}"#).send().await.unwrap();
    let loc = StoreLocation { provider: "aws".into(), mount: String::new(), path: name.clone(), field: "value".into() };
    proxy.add(Rule::new("lb", Some("POST"), "^/$", Fault::Html(404)));
    let e = p.as_store().unwrap().read_current(&loc).await.expect_err("an HTML 404 was read as `no secret`");
    assert!(e.is_temporary(), "{e}");
    // Nor staged over: nothing written while the answers are foreign.
    let staged =
        p.as_store().unwrap().stage(&loc, &Delivered::new(SecretString::from("new-aws-answers-value".to_string())), "20260101T000000Z-a/b").await;
    assert!(staged.is_err());
    assert!(proxy.fired("lb") >= 2, "not retried");

    // A live key whose user lookup meets foreign answers: unknown, never
    // "user no longer exists" (any Dead here would be false).
    let user = format!("answers-{}", uuid::Uuid::new_v4().simple());
    let (id, secret) = moto().create_user_with_key(&user).await;
    let t = Target::AwsIamAccessKey(AwsIamKeyTarget { user, access_key_id: Some(id.clone()), allow_delete_inactive: false });
    let h = Handle::from([("access_key_id".to_string(), id.clone())]);
    for (i, fault) in [Fault::Html(404), Fault::Html(403), Fault::Truncate, Fault::ServerError(502)].into_iter().enumerate() {
        proxy.clear();
        let name = format!("fault-{i}");
        proxy.add(Rule::new(&name, Some("POST"), "^/$", fault.clone()));
        let v = p.verify_dead(&t, &h, Some(&SecretString::from(secret.clone()))).await;
        assert!(matches!(v, Verdict::Unknown(_)), "{fault:?}: {v:?}");
        let v = p.verify_dead(&t, &h, None).await;
        assert!(matches!(v, Verdict::Unknown(_)), "{fault:?}, admin side only: {v:?}");
        assert!(proxy.fired(&name) > 0);
    }
    proxy.clear();
    // The values were there all along (a separate client).
    let cur = moto().sm().await.get_secret_value().secret_id(&name).send().await.unwrap();
    assert!(cur.secret_string().unwrap().contains("old-aws-answers-value"));
    assert_eq!(moto().labels(&name).await.len(), 1, "a version was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_proven_only_for_exactly_its_user() {
    let p = provider_at(&moto().endpoint).await;
    let base = format!("answers-u{}", uuid::Uuid::new_v4().simple());
    let longer = format!("{base}x");
    let (id, secret) = moto().create_user_with_key(&longer).await;
    // The key of `<base>x` is not a key of `<base>`.
    let t = Target::AwsIamAccessKey(AwsIamKeyTarget { user: base, access_key_id: None, allow_delete_inactive: false });
    let new = Delivered::new(SecretString::from(secret.clone()));
    let v = p.test(&t, &new, &Handle::from([("access_key_id".to_string(), id.clone())])).await;
    assert!(!matches!(v, Verdict::Alive(_)), "another user's key passed as this user's: {v:?}");
    // And for its own user it is.
    let t = Target::AwsIamAccessKey(AwsIamKeyTarget { user: longer, access_key_id: None, allow_delete_inactive: false });
    let v = p.test(&t, &new, &Handle::from([("access_key_id".to_string(), id)])).await;
    assert!(matches!(v, Verdict::Alive(_)), "{v:?}");
}
