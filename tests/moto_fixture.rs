//! Self-test of the moto fixture (tests/common/moto.rs) and of the throttling
//! proxy (tests/common/proxy.rs): auth is really on, and the proxy's
//! throttling answers are parsed by the AWS SDK as throttling.
mod common;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use common::moto::{auth_error_code, moto};
use common::proxy::Proxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A well-formed access key id that no server knows (built at run time).
fn fake_key_id() -> String {
    format!("AKIA{}", "FAKE".repeat(4))
}

#[tokio::test]
async fn auth_is_on_and_deleted_keys_fail() {
    let m = moto();
    assert_eq!(m.region, "us-east-1");
    assert!(m.key_works(&m.admin_key_id, &m.admin_secret).await, "admin key refused");

    let (id, secret) = m.create_user_with_key("fixture-victim").await;
    assert!(m.key_works(&id, &secret).await, "new user's key refused");
    // A made-up key and a wrong secret are refused too.
    assert!(!m.key_works(&fake_key_id(), "nope").await);

    // What the SDK itself makes of moto's auth error (see moto.rs docs).
    let sts = aws_sdk_sts::Client::new(&m.sdk_config_with(&fake_key_id(), "nope").await);
    let e = sts.get_caller_identity().send().await.unwrap_err();
    eprintln!("STS unknown key: err.code()={:?}, fixture code={:?}", e.code(), auth_error_code(&e));
    assert_eq!(auth_error_code(&e).as_deref(), Some("InvalidClientTokenId"));

    // The signature is checked (right key id, wrong secret) ...
    let sts = aws_sdk_sts::Client::new(&m.sdk_config_with(&id, "wrong-secret").await);
    let e = sts.get_caller_identity().send().await.unwrap_err();
    assert_eq!(auth_error_code(&e).as_deref(), Some("SignatureDoesNotMatch"), "{e:?}");
    // ... and so are IAM policies: the user may only call sts:GetCallerIdentity.
    let sm = aws_sdk_secretsmanager::Client::new(&m.sdk_config_with(&id, &secret).await);
    let e = sm.list_secrets().send().await.unwrap_err();
    eprintln!("SM ListSecrets without permission: code={:?}", auth_error_code(&e));
    assert!(auth_error_code(&e).is_some_and(|c| c.starts_with("AccessDenied")), "{e:?}");

    m.iam().await.delete_access_key().user_name("fixture-victim").access_key_id(&id).send().await.expect("DeleteAccessKey");
    assert!(!m.key_works(&id, &secret).await, "deleted key still authenticates: auth is off");
    assert!(m.key_works(&m.admin_key_id, &m.admin_secret).await);

    // A second key for the same user (user exists already).
    let (id2, secret2) = m.create_user_with_key("fixture-victim").await;
    assert_ne!(id2, id);
    assert!(m.key_works(&id2, &secret2).await);

    // Unsigned-by-a-real-key requests to other services are refused as well.
    let sm = aws_sdk_secretsmanager::Client::new(&m.sdk_config_with(&id, &secret).await);
    let e = sm.list_secrets().send().await.unwrap_err();
    assert_eq!(auth_error_code(&e).as_deref(), Some("InvalidClientTokenId"), "{e:?}");

    let env = m.env();
    for k in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL"] {
        assert!(env.iter().any(|(n, v)| *n == k && !v.is_empty()), "{k} missing from env()");
    }
}

#[tokio::test]
async fn labels_follow_put_secret_value() {
    let m = moto();
    let sm = m.sm().await;
    let created = sm.create_secret().name("fixture/labels").secret_string("v1").send().await.expect("CreateSecret");
    let v1 = created.version_id().unwrap().to_string();
    let put = sm.put_secret_value().secret_id("fixture/labels").secret_string("v2").send().await.expect("PutSecretValue");
    let v2 = put.version_id().unwrap().to_string();
    let labels = m.labels("fixture/labels").await;
    assert_eq!(labels.get(&v2), Some(&vec!["AWSCURRENT".to_string()]), "{labels:?}");
    assert_eq!(labels.get(&v1), Some(&vec!["AWSPREVIOUS".to_string()]), "{labels:?}");
}

#[tokio::test]
async fn proxy_throttles_first_requests_then_forwards() {
    let m = moto();
    let proxy = Proxy::start(&m.endpoint, 2).await;
    let conf = m.sdk_config().await;
    let sm = aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(&conf).endpoint_url(&proxy.endpoint).retry_config(RetryConfig::disabled()).build(),
    );
    let iam = aws_sdk_iam::Client::from_conf(
        aws_sdk_iam::config::Builder::from(&conf).endpoint_url(&proxy.endpoint).retry_config(RetryConfig::disabled()).build(),
    );
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(&conf).endpoint_url(&proxy.endpoint).retry_config(RetryConfig::disabled()).build(),
    );

    let e = sm.create_secret().name("fixture/proxied").secret_string("s").send().await.unwrap_err();
    assert_eq!(e.code(), Some("ThrottlingException"), "{e:?}");
    assert_eq!(e.message(), Some("Rate exceeded"));
    let e = iam.list_users().send().await.unwrap_err();
    assert_eq!(e.code(), Some("Throttling"), "{e:?}");
    assert_eq!(e.message(), Some("Rate exceeded"));
    assert_eq!((proxy.count(), proxy.throttled()), (2, 2));

    // Third and later requests reach moto, signed for the proxy's Host, unchanged.
    sm.create_secret().name("fixture/proxied").secret_string("s").send().await.expect("CreateSecret via proxy");
    let users = iam.list_users().send().await.expect("ListUsers via proxy");
    assert!(users.users().iter().any(|u| u.user_name() == "keysweep-admin"));
    let who = sts.get_caller_identity().send().await.expect("GetCallerIdentity via proxy");
    assert!(who.arn().unwrap_or_default().ends_with("user/keysweep-admin"), "{who:?}");
    let got = sm.get_secret_value().secret_id("fixture/proxied").send().await.expect("GetSecretValue via proxy");
    assert_eq!(got.secret_string(), Some("s"));
    assert_eq!(proxy.count(), 6);
    assert_eq!(proxy.throttled(), 2);
    assert_eq!(proxy.arrivals().len(), 6);
    assert_eq!(proxy.max_in_window(Duration::from_secs(3600)), 6);
    assert!(proxy.max_in_window(Duration::ZERO) >= 1);

    // Auth errors pass through the proxy as moto sent them.
    let bad = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(&m.sdk_config_with(&fake_key_id(), "x").await).endpoint_url(&proxy.endpoint).build(),
    );
    let e = bad.get_caller_identity().send().await.unwrap_err();
    assert_eq!(auth_error_code(&e).as_deref(), Some("InvalidClientTokenId"), "{e:?}");
}

#[tokio::test]
async fn sdk_retries_proxy_throttling() {
    // With the SDK's default (standard) retries, a throttled call is retried
    // and succeeds: the SDK classifies the proxy's answer as throttling.
    let m = moto();
    let proxy = Proxy::start(&m.endpoint, 1).await;
    let conf = m.sdk_config().await;
    let sm = aws_sdk_secretsmanager::Client::from_conf(aws_sdk_secretsmanager::config::Builder::from(&conf).endpoint_url(&proxy.endpoint).build());
    sm.list_secrets().send().await.expect("ListSecrets retried past throttling");
    let iam = aws_sdk_iam::Client::from_conf(aws_sdk_iam::config::Builder::from(&conf).endpoint_url(&proxy.endpoint).build());
    iam.list_users().send().await.expect("ListUsers");
    assert_eq!((proxy.count(), proxy.throttled()), (3, 1));

    let proxy = Proxy::start(&m.endpoint, 1).await;
    let iam = aws_sdk_iam::Client::from_conf(aws_sdk_iam::config::Builder::from(&conf).endpoint_url(&proxy.endpoint).build());
    iam.list_users().send().await.expect("ListUsers retried past throttling");
    assert_eq!((proxy.count(), proxy.throttled()), (2, 1));
}

#[tokio::test]
async fn proxy_keeps_client_connections_alive() {
    let m = moto();
    let proxy = Proxy::start(&m.endpoint, 1).await;
    let addr = proxy.endpoint.strip_prefix("http://").unwrap().to_string();
    let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut statuses = vec![];
    for _ in 0..3 {
        c.write_all(format!("GET /moto-api/ HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()).await.unwrap();
        let (status, body) = read_response(&mut c).await;
        statuses.push(status);
        assert!(!body.is_empty());
    }
    // The first is throttled (Query-shaped fallback), the others forwarded, all on one connection.
    assert_eq!(statuses, vec![400, 200, 200]);
    assert_eq!((proxy.count(), proxy.throttled()), (3, 1));
}

/// Reads one Content-Length-framed response; returns (status, body).
async fn read_response(c: &mut tokio::net::TcpStream) -> (u16, Vec<u8>) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(c.read(&mut byte).await.unwrap(), 1, "connection closed: {}", String::from_utf8_lossy(&buf));
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    assert!(!head.to_ascii_lowercase().contains("connection: close"), "{head}");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let len: usize =
        head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap())).expect("content-length");
    let mut body = vec![0; len];
    c.read_exact(&mut body).await.unwrap();
    (status, body)
}
