//! AWS: IAM access keys and Secrets Manager secrets as credentials, and Secrets
//! Manager as a delivery store (AWSPENDING → AWSCURRENT, the old version
//! becoming AWSPREVIOUS — the contract of AWS's own rotation functions).
//!
//! Built on the official SDK with the standard credential chain. The SDK's own
//! retries are off so that keysweep's bounded, jittered retry decides (and the
//! provider's rate limit counts every attempt); an operation timeout is always
//! set (the SDK sets none by default).
//!
//! Proof of death (from AWS's documentation): an access key is dead when STS
//! answers `InvalidClientTokenId`, corroborated by the key being gone from
//! ListAccessKeys. A deleted key can keep working for a few seconds (eventual
//! consistency): verification re-probes within the credential's bound and
//! reports `unverified`, not dead, if it is still accepted.

pub mod config;
pub mod iam;
mod sm;

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::provider::{ErrorKind, ProviderError};
use config::AwsProviderConfig;

pub struct AwsProvider {
    name: String,
    sdk: aws_config::SdkConfig,
    iam: aws_sdk_iam::Client,
    sm: aws_sdk_secretsmanager::Client,
    sts: aws_sdk_sts::Client,
    /// The limits layer: rate, timeout and the retry bound.
    gate: crate::provider::limits::Gate,
    requests: std::sync::atomic::AtomicU64,
    /// The access key id keysweep itself signs with, when it uses one.
    pub(crate) own_key_id: std::sync::OnceLock<String>,
}

impl AwsProvider {
    /// Loads the SDK configuration (no network call).
    pub async fn connect(name: &str, cfg: &AwsProviderConfig) -> Result<Self, ProviderError> {
        let limits = &cfg.limits;
        let gate = crate::provider::limits::Gate::new(limits);
        let timeout = gate.timeout();
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).retry_config(aws_config::retry::RetryConfig::disabled()).timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_timeout(timeout)
                .operation_attempt_timeout(timeout)
                .connect_timeout(timeout.min(Duration::from_secs(10)))
                .build(),
        );
        if let Some(r) = &cfg.region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        if let Some(u) = &cfg.endpoint_url {
            loader = loader.endpoint_url(u.clone());
        }
        if let Some(p) = &cfg.profile {
            loader = loader.profile_name(p.clone());
        }
        let bundle = cfg
            .ca_bundle
            .clone()
            .map(|p| ("ca_bundle".to_string(), p))
            .or_else(|| std::env::var("AWS_CA_BUNDLE").ok().filter(|p| !p.is_empty()).map(|p| ("ca_bundle (AWS_CA_BUNDLE)".to_string(), p)));
        if let Some(named) = bundle {
            loader = loader.http_client(http_client_trusting(named)?);
        }
        let sdk = loader.load().await;
        // keysweep's own AWS secrets, so an echoed signature context never prints them.
        for var in ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"] {
            std::env::var(var).map(|v| crate::secret::register_str(&v)).unwrap_or_default();
        }
        if sdk.region().is_none() {
            return Err(ProviderError::new(ErrorKind::Config, "aws.connect", "no AWS region: set `region:` or AWS_REGION"));
        }
        Ok(AwsProvider {
            name: name.to_string(),
            iam: aws_sdk_iam::Client::from_conf(aws_sdk_iam::config::Builder::from(&sdk).interceptor(WholeXmlAnswers).build()),
            sm: aws_sdk_secretsmanager::Client::new(&sdk),
            sts: aws_sdk_sts::Client::from_conf(aws_sdk_sts::config::Builder::from(&sdk).interceptor(WholeXmlAnswers).build()),
            sdk,
            gate,
            requests: std::sync::atomic::AtomicU64::new(0),
            own_key_id: std::sync::OnceLock::new(),
        })
    }

    /// Checks keysweep's own credentials with STS GetCallerIdentity.
    pub async fn check_login(&self) -> Result<String, ProviderError> {
        // Which access key is keysweep's own (so a playbook that lists it
        // never has it retired under the running session), and its secret key
        // and session token (from any source: env, profile, SSO) for redaction.
        if let Some(cp) = self.sdk.credentials_provider() {
            use aws_credential_types::provider::ProvideCredentials;
            if let Ok(c) = cp.provide_credentials().await {
                let _ = self.own_key_id.set(c.access_key_id().to_string());
                crate::secret::register_str(c.secret_access_key());
                c.session_token().map(crate::secret::register_str).unwrap_or_default();
            }
        }
        self.call("sts.get_caller_identity", || async {
            self.sts
                .get_caller_identity()
                .send()
                .await
                .map(|o| o.arn().unwrap_or_default().to_string())
                .map_err(|e| map_err("sts.get_caller_identity", e))
        })
        .await
    }

    pub fn request_count(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The adaptive concurrency limit its requests feed.
    pub fn adaptive(&self) -> std::sync::Arc<crate::provider::adaptive::AdaptiveLimit> {
        self.gate.adaptive().clone()
    }

    /// Waits for a concurrency slot and the rate limiter, counting the request.
    async fn permit(&self) -> crate::provider::limits::Admission<'_> {
        let a = self.gate.admit().await;
        self.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        a
    }

    /// One idempotent call `name`, rate-limited and retried on throttling/5xx/timeouts.
    async fn call<T, F, Fut>(&self, name: &'static str, mut op: F) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ProviderError>>,
    {
        crate::provider::limits::retry(self.gate.retry_policy(), || {
            let fut = op();
            async move {
                let admission = self.permit().await;
                let r = fut.await;
                admission.result(name, &r);
                r
            }
        })
        .await
    }

    /// One call `name` that must not be repeated blindly (minting), rate-limited.
    async fn call_once<T, Fut>(&self, name: &'static str, fut: Fut) -> Result<T, ProviderError>
    where
        Fut: std::future::Future<Output = Result<T, ProviderError>>,
    {
        let admission = self.permit().await;
        let r = fut.await;
        admission.result(name, &r);
        r
    }
}

/// Refuses a 2xx XML answer (IAM, STS: the Query protocol) that does not end
/// with its closing `</…Response>` element. The SDK's XML reader is lenient: a
/// `ListAccessKeys` answer cut short parses as a shorter list, and "the old key
/// is no longer listed" would then be read from half an answer. JSON answers
/// (Secrets Manager) fail to parse when cut, so they need no such check.
#[derive(Debug)]
pub(crate) struct WholeXmlAnswers;

impl aws_smithy_runtime_api::client::interceptors::Intercept for WholeXmlAnswers {
    fn name(&self) -> &'static str {
        "keysweep.whole_xml_answers"
    }
    fn read_after_deserialization(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::AfterDeserializationInterceptorContextRef<'_>,
        _rc: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        _cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let resp = context.response();
        if !resp.status().is_success() {
            return Ok(());
        }
        let Some(bytes) = resp.body().bytes() else { return Ok(()) };
        let text = String::from_utf8_lossy(bytes);
        let (head, tail) = (text.trim_start(), text.trim_end());
        if head.starts_with('<') && !tail.ends_with("Response>") {
            return Err(format!("a {}-byte XML answer that does not end with its closing element: truncated, or not from AWS", bytes.len()).into());
        }
        Ok(())
    }
}

/// The error code AWS gave, if any. When the SDK could not parse the error
/// body (moto's Query-protocol errors nest `<Error>` in `<Errors>`), the code is
/// read from the raw body's `<Code>` element — still the service's own answer,
/// but only from an XML error document (never from an HTML page that happens
/// to contain the text).
pub(crate) fn code_of<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> Option<String> {
    if let Some(c) = e.code() {
        return Some(c.to_string());
    }
    let raw = e.raw_response()?;
    if raw.status().as_u16() < 400 {
        return None;
    }
    let body = raw.body().bytes()?;
    let text = std::str::from_utf8(body).ok()?;
    let head = text.trim_start();
    if !(head.starts_with("<?xml") || head.starts_with("<ErrorResponse") || head.starts_with("<Response")) || !text.contains("<Error>") {
        return None;
    }
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text[start..].find("</Code>")?;
    let code = &text[start..start + len];
    (!code.is_empty() && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')).then(|| code.to_string())
}

/// An HTTPS client that trusts only the CA certificates of the PEM file
/// `named` (setting, path): read and checked now, so a wrong file is a
/// configuration error at connect, not a failed request later.
fn http_client_trusting(named: (String, String)) -> Result<aws_smithy_runtime_api::client::http::SharedHttpClient, ProviderError> {
    use aws_smithy_http_client::tls;
    let material = crate::provider::tls::Material { ca_cert: Some(named), ..Default::default() };
    let pem = material.ca_pem("aws.tls")?.unwrap_or_default();
    let store = tls::TrustStore::empty().with_native_roots(false).with_pem_certificate(pem);
    let ctx = tls::TlsContext::builder()
        .with_trust_store(store)
        .build()
        .map_err(|e| ProviderError::new(ErrorKind::Config, "aws.tls", format!("CA bundle: {e}")))?;
    Ok(aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
        .tls_context(ctx)
        .build_https())
}

/// The kind of an SDK error (see `map_err`).
pub(crate) fn kind_of<E>(e: &SdkError<E, HttpResponse>) -> ErrorKind
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = code_of(e).unwrap_or_default();
    match (e, code.as_str()) {
        (SdkError::TimeoutError(_) | SdkError::DispatchFailure(_), _) => ErrorKind::Unavailable,
        (_, "ThrottlingException" | "Throttling" | "TooManyRequestsException" | "RequestLimitExceeded" | "SlowDown") => ErrorKind::RateLimited,
        (_, "ServiceUnavailable" | "InternalFailure" | "InternalServiceError" | "InternalServiceErrorException" | "ServiceFailure") => {
            ErrorKind::Unavailable
        }
        (_, "NoSuchEntity" | "ResourceNotFoundException") => ErrorKind::NotFound,
        (_, "AccessDenied" | "AccessDeniedException") => ErrorKind::PermissionDenied,
        (_, "InvalidClientTokenId" | "SignatureDoesNotMatch" | "UnrecognizedClientException" | "ExpiredToken") => ErrorKind::Unauthenticated,
        (_, "LimitExceeded" | "LimitExceededException" | "ResourceExistsException" | "InvalidRequestException") => ErrorKind::Conflict,
        _ if status == Some(429) => ErrorKind::RateLimited,
        _ if status.is_some_and(|s| s >= 500) => ErrorKind::Unavailable,
        // An answer the SDK could not parse (a truncated or foreign body).
        (SdkError::ResponseError(_), _) => ErrorKind::Unavailable,
        // An HTTP answer without AWS's error code (a load balancer's or
        // proxy's page) is not AWS's answer: unknown, never "absent".
        _ if code.is_empty() && status.is_some() => ErrorKind::Unavailable,
        _ => ErrorKind::Other,
    }
}

/// Maps an SDK error to a provider error: throttling and 5xx/timeouts are
/// temporary; the message carries AWS's code and message, scrubbed.
pub(crate) fn map_err<E>(op: &'static str, e: SdkError<E, HttpResponse>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = code_of(&e).unwrap_or_default();
    let message = e.message().unwrap_or_default().to_string();
    let kind = kind_of(&e);

    let text = match (code.is_empty(), message.is_empty()) {
        (false, false) => format!("{code}: {message}"),
        (false, true) => code,
        _ => format!("{}", aws_smithy_types::error::display::DisplayErrorContext(&e)),
    };
    // A refused certificate is not temporary: retrying does not change it.
    if let Some(fix) = crate::provider::tls::refusal(&text, "ca_bundle") {
        // The fix first: the SDK's own text is long and the message is cut.
        return ProviderError::new(ErrorKind::Config, op, format!("{fix} (AWS_CA_BUNDLE is read when `ca_bundle` is not set); {text}"));
    }
    ProviderError::new(kind, op, text)
}

pub(crate) fn fmt_date(d: Option<&aws_smithy_types::DateTime>) -> Option<String> {
    d.and_then(|d| d.fmt(aws_smithy_types::date_time::Format::DateTime).ok())
}
