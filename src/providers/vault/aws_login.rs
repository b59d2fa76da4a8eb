//! keysweep's own login to Vault's `aws` auth method, IAM type.
//!
//! As Vault's documentation and its CLI (`awsutil.GenerateLoginData`) do it:
//! sign an `sts:GetCallerIdentity` request (`POST`, body
//! `Action=GetCallerIdentity&Version=2011-06-15`) with the AWS credential
//! chain, and post to `auth/<mount>/login` its method
//! (`iam_http_request_method`), its URL, body and headers, each base64
//! (`iam_request_url`, `iam_request_body`, `iam_request_headers`: a JSON
//! object of header name to a list of values). Vault sends that request to
//! STS (its configured `sts_endpoint`, with the `Host` of the signed URL) and
//! learns keysweep's IAM principal from the answer; keysweep never calls STS
//! itself. An optional `X-Vault-AWS-IAM-Server-ID` header is signed with the
//! rest, so a request signed for one Vault cannot be replayed to another.
//!
//! The signed request is a bearer credential for the few minutes AWS accepts
//! its date: every part of it is registered for redaction, and none is logged.

use std::time::{Duration, SystemTime};

use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::Credentials;
use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};

use super::http::VaultHttp;
use crate::provider::{ErrorKind, ProviderError};
use crate::secret::SecretString;

const OP: &str = "vault.aws_login";

/// The header whose value the mount's `iam_server_id_header_value` requires.
pub const IAM_SERVER_ID_HEADER: &str = "X-Vault-AWS-IAM-Server-ID";

/// The signed body: only `Action` and `Version` are accepted by Vault.
pub const GET_CALLER_IDENTITY: &str = "Action=GetCallerIdentity&Version=2011-06-15";

/// The region requests are signed for unless the playbook names one (the
/// vault CLI's default, and the one Vault's default STS endpoint expects).
pub const DEFAULT_REGION: &str = "us-east-1";

/// The STS URL a request for `region` is signed for: the global endpoint for
/// `us-east-1` (as the vault CLI signs), the regional one otherwise (the
/// mount must then name it in `sts_endpoint`).
pub fn sts_url(region: &str) -> String {
    if region == DEFAULT_REGION {
        "https://sts.amazonaws.com/".to_string()
    } else if region.starts_with("cn-") {
        format!("https://sts.{region}.amazonaws.com.cn/")
    } else {
        format!("https://sts.{region}.amazonaws.com/")
    }
}

/// The login data (without `role`) for a `GetCallerIdentity` request to
/// `url`, signed for `region` at `time` with `creds`; `header_value`, when
/// given, is sent and signed as `X-Vault-AWS-IAM-Server-ID`. Every part that
/// could let someone replay the request is registered for redaction.
pub fn login_data(creds: &Credentials, url: &str, region: &str, header_value: Option<&str>, time: SystemTime) -> Result<Value, ProviderError> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;

    let content_type = "application/x-www-form-urlencoded; charset=utf-8";
    let mut headers: Vec<(&str, &str)> = vec![("Content-Type", content_type)];
    if let Some(h) = header_value {
        headers.push((IAM_SERVER_ID_HEADER, h));
    }
    let identity = creds.clone().into();
    let params: aws_sigv4::http_request::SigningParams = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| ProviderError::new(ErrorKind::Config, OP, format!("signing parameters: {e}")))?
        .into();
    let signable = SignableRequest::new("POST", url, headers.iter().copied(), SignableBody::Bytes(GET_CALLER_IDENTITY.as_bytes()))
        .map_err(|e| ProviderError::new(ErrorKind::Config, OP, format!("the STS request to sign: {e}")))?;
    let (instructions, signature) =
        sign(signable, &params).map_err(|e| ProviderError::new(ErrorKind::Config, OP, format!("signing the STS request: {e}")))?.into_parts();
    crate::secret::register_str(&signature);
    // Header name → list of values, as Go's `http.Header` marshals (what Vault parses).
    let mut map = serde_json::Map::new();
    for (k, v) in headers.iter().copied().chain(instructions.headers()) {
        if k.eq_ignore_ascii_case("authorization") || k.eq_ignore_ascii_case("x-amz-security-token") {
            crate::secret::register_str(v);
        }
        map.insert(canonical_name(k), json!([v]));
    }
    let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    let headers_b64 = b64(Value::Object(map).to_string().as_bytes());
    crate::secret::register_str(&headers_b64);
    Ok(json!({
        "iam_http_request_method": "POST",
        "iam_request_url": b64(url.as_bytes()),
        "iam_request_body": b64(GET_CALLER_IDENTITY.as_bytes()),
        "iam_request_headers": headers_b64,
    }))
}

/// `x-amz-date` → `X-Amz-Date` (Go's canonical header form; Vault reads
/// headers case-insensitively, and the signature does not depend on it).
fn canonical_name(k: &str) -> String {
    k.split('-')
        .map(|part| {
            let mut c = part.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + &c.as_str().to_ascii_lowercase(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// keysweep's AWS credentials from the standard chain (environment,
/// profile, SSO, web identity, container or instance role), within the
/// provider's timeout. Registered for redaction.
pub async fn chain_credentials(region: &str, timeout: Duration) -> Result<Credentials, ProviderError> {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()))
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder().operation_timeout(timeout).connect_timeout(timeout.min(Duration::from_secs(10))).build(),
        )
        .load()
        .await;
    let Some(provider) = sdk.credentials_provider() else {
        return Err(ProviderError::new(ErrorKind::Config, OP, "no AWS credential provider is configured"));
    };
    let creds = match tokio::time::timeout(timeout, provider.provide_credentials()).await {
        Err(_) => return Err(ProviderError::new(ErrorKind::Unavailable, OP, format!("the AWS credential chain gave no answer within {timeout:?}"))),
        Ok(Err(aws_credential_types::provider::error::CredentialsError::CredentialsNotLoaded(_))) => {
            return Err(ProviderError::new(
                ErrorKind::Config,
                OP,
                "no AWS credentials found (environment, profile, SSO, web identity, container or instance role): `method: aws` signs with them; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or run where a role is attached",
            ))
        }
        Ok(Err(e)) => return Err(ProviderError::new(ErrorKind::Unavailable, OP, format!("the AWS credential chain failed: {}", crate::provider::tls::error_chain(&e)))),
        Ok(Ok(c)) => c,
    };
    crate::secret::register_str(creds.secret_access_key());
    if let Some(t) = creds.session_token() {
        crate::secret::register_str(t);
    }
    Ok(creds)
}

/// Logs in at `auth/<mount>/login` with a freshly signed request; returns
/// the session token.
pub(super) async fn login(
    http: &VaultHttp,
    mount: &str,
    role: Option<&str>,
    header_value: Option<&str>,
    region: Option<&str>,
    limits: &crate::playbook::model::Limits,
) -> Result<SecretString, ProviderError> {
    let region = region.unwrap_or(DEFAULT_REGION);
    let timeout = crate::provider::limits::Gate::new(limits).timeout();
    let creds = chain_credentials(region, timeout).await?;
    let mut body = login_data(&creds, &sts_url(region), region, header_value, SystemTime::now())?;
    if let Some(r) = role {
        body["role"] = json!(r);
    }
    let path = format!("auth/{}/login", mount.trim_matches('/'));
    let r = http.send(OP, Method::POST, &path, None, Some(&body)).await?;
    super::login_token(OP, &path, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signed_request_has_what_vault_reads_and_hides_nothing_it_needs() {
        let creds = Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None, None, "test");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let d = login_data(&creds, &sts_url(DEFAULT_REGION), DEFAULT_REGION, Some("vault.example.com"), t).unwrap();
        let dec = |k: &str| String::from_utf8(base64::engine::general_purpose::STANDARD.decode(d[k].as_str().unwrap()).unwrap()).unwrap();
        assert_eq!(d["iam_http_request_method"], "POST");
        assert_eq!(dec("iam_request_url"), "https://sts.amazonaws.com/");
        assert_eq!(dec("iam_request_body"), GET_CALLER_IDENTITY);
        let h: Value = serde_json::from_str(&dec("iam_request_headers")).unwrap();
        assert_eq!(h["X-Vault-Aws-Iam-Server-Id"], json!(["vault.example.com"]));
        assert_eq!(h["X-Amz-Date"], json!(["20231114T221320Z"]));
        let auth = h["Authorization"][0].as_str().unwrap();
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/us-east-1/sts/aws4_request"), "{auth}");
        // The server-id header is signed (Vault refuses it otherwise), and so is the host.
        assert!(auth.contains("SignedHeaders=content-type;host;x-amz-date;x-vault-aws-iam-server-id,"), "{auth}");
        assert!(!h.to_string().contains("wJalrXUtnFEMI"), "the secret key is in the request");
        // A region of its own is signed for its regional endpoint.
        let d = login_data(&creds, &sts_url("eu-west-1"), "eu-west-1", None, t).unwrap();
        let h: Value = serde_json::from_str(
            &String::from_utf8(base64::engine::general_purpose::STANDARD.decode(d["iam_request_headers"].as_str().unwrap()).unwrap()).unwrap(),
        )
        .unwrap();
        assert!(h["Authorization"][0].as_str().unwrap().contains("/eu-west-1/sts/aws4_request"));
        assert!(h.get("X-Vault-Aws-Iam-Server-Id").is_none());
        assert_eq!(sts_url("eu-west-1"), "https://sts.eu-west-1.amazonaws.com/");
    }

    #[test]
    fn header_names_take_gos_canonical_form() {
        assert_eq!(canonical_name("x-amz-date"), "X-Amz-Date");
        assert_eq!(canonical_name("X-Vault-AWS-IAM-Server-ID"), "X-Vault-Aws-Iam-Server-Id");
        assert_eq!(canonical_name("authorization"), "Authorization");
    }
}
