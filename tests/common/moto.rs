//! Test support: a real moto server (AWS IAM, STS, Secrets Manager) per test
//! binary, with IAM authentication ON. Like `bao()`, each test binary gets
//! its own server on a free loopback port, and a watchdog shell kills it when
//! the test process exits.
//!
//! Setup, while auth is still off: an admin user `keysweep-admin` with one
//! access key and `AdministratorAccess` attached. Then `POST
//! /moto-api/reset-auth 0` turns authentication on: from then on every request
//! must be signed by an existing access key, and a deleted key fails
//! `sts:GetCallerIdentity` with `InvalidClientTokenId`.
//!
//! Note on moto's error shape: its authentication errors (InvalidClientTokenId,
//! SignatureDoesNotMatch, AccessDenied) are `<ErrorResponse><Errors><Error>`
//! with an `X-Amzn-ErrorType` header. The SDK's Query-protocol parser (IAM,
//! STS) only reads `<ErrorResponse><Error>` (what AWS sends), so for IAM/STS
//! `err.code()` is `None` against moto; the JSON protocol (Secrets Manager)
//! reads the header and gets the code. `key_works` therefore also looks at the
//! raw response. See [`auth_error_code`].
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

pub const ADMIN_USER: &str = "keysweep-admin";
pub const ADMIN_POLICY_ARN: &str = "arn:aws:iam::aws:policy/AdministratorAccess";
pub const REGION: &str = "us-east-1";
/// moto's default account.
pub const ACCOUNT_ID: &str = "123456789012";

pub struct Moto {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    /// `us-east-1`
    pub region: String,
    pub admin_key_id: String,
    pub admin_secret: String,
}

pub fn moto_bin() -> PathBuf {
    if let Ok(p) = std::env::var("KEYSWEEP_MOTO_BIN") {
        return PathBuf::from(p);
    }
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/venv/bin/moto_server");
    if local.exists() {
        return local;
    }
    panic!("no `moto_server` binary: run the tests through scripts/test.sh (it installs moto[server] into .cache/)");
}

/// A blocking curl call; returns (status, body).
fn curl(args: &[&str], url: &str) -> Result<(u16, String), String> {
    let out = Command::new("curl").args(["-s", "-o", "-", "-w", "\n%{http_code}"]).args(args).arg(url).output().map_err(|e| format!("curl: {e}"))?;
    let s = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = s.rsplit_once('\n').ok_or("no status")?;
    Ok((code.trim().parse().map_err(|_| "bad status")?, body.to_string()))
}

/// An IAM Query API call while auth is off (moto routes by the credential
/// scope of the Authorization header; the signature is not checked yet).
fn iam_query_unauthenticated(endpoint: &str, params: &[(&str, &str)]) -> String {
    let mut args: Vec<String> = vec![
        "-H".into(),
        // Any well-formed key id will do while auth is off (built at run time).
        format!(
            "Authorization: AWS4-HMAC-SHA256 Credential=AKIA{}/20240101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
            "SETUPONLY0000000"
        ),
        "--data-urlencode".into(),
        "Version=2010-05-08".into(),
    ];
    for (k, v) in params {
        args.push("--data-urlencode".into());
        args.push(format!("{k}={v}"));
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let (status, body) = curl(&a, &format!("{endpoint}/")).unwrap_or_else(|e| panic!("moto setup {params:?}: {e}"));
    assert_eq!(status, 200, "moto setup {params:?}: {body}");
    body
}

fn xml_text<'a>(xml: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open).unwrap_or_else(|| panic!("no <{tag}> in {xml}")) + open.len();
    let end = xml[start..].find(&close).unwrap_or_else(|| panic!("no </{tag}> in {xml}")) + start;
    &xml[start..end]
}

/// The moto server of this test binary (started on first use).
pub fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| {
        let port = super::free_port();
        let endpoint = format!("http://127.0.0.1:{port}");
        let bin = moto_bin();
        let me = std::process::id();
        // KEYSWEEP_MOTO_LOG=path keeps moto's request log (for debugging).
        let log = std::env::var("KEYSWEEP_MOTO_LOG").unwrap_or_else(|_| "/dev/null".into());
        // AWS managed policies (AdministratorAccess, ...) are only loaded on request.
        // The watchdog ends the server when this test process is gone.
        let script = format!(
            "MOTO_IAM_LOAD_MANAGED_POLICIES=true '{}' -H 127.0.0.1 -p {port} >>'{log}' 2>&1 & m=$!; \
             while kill -0 {me} 2>/dev/null; do sleep 1; done; kill $m",
            bin.display()
        );
        // Not waited for: the watchdog outlives this call by design and ends with the process.
        #[allow(clippy::zombie_processes)]
        Command::new("sh").arg("-c").arg(script).stdin(Stdio::null()).spawn().expect("start moto_server");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((200, _)) = curl(&[], &format!("{endpoint}/moto-api/")) {
                break;
            }
            assert!(Instant::now() < deadline, "moto_server did not start on {endpoint}");
            std::thread::sleep(Duration::from_millis(100));
        }

        iam_query_unauthenticated(&endpoint, &[("Action", "CreateUser"), ("UserName", ADMIN_USER)]);
        let key = iam_query_unauthenticated(&endpoint, &[("Action", "CreateAccessKey"), ("UserName", ADMIN_USER)]);
        let admin_key_id = xml_text(&key, "AccessKeyId").to_string();
        let admin_secret = xml_text(&key, "SecretAccessKey").to_string();
        iam_query_unauthenticated(&endpoint, &[("Action", "AttachUserPolicy"), ("UserName", ADMIN_USER), ("PolicyArn", ADMIN_POLICY_ARN)]);

        // Authentication on, from the next request.
        let (status, body) =
            curl(&["-X", "POST", "-H", "Content-Type: text/plain", "--data-binary", "0"], &format!("{endpoint}/moto-api/reset-auth"))
                .expect("reset-auth");
        assert_eq!(status, 200, "moto reset-auth: {body}");

        Moto { endpoint, region: REGION.to_string(), admin_key_id, admin_secret }
    })
}

/// The error code of a failed SDK call (of any AWS service client): the
/// parsed one, else the one moto put in its `X-Amzn-ErrorType` header or
/// `<Errors><Error><Code>` body, which the Query-protocol parser (IAM, STS)
/// does not read (see the module docs).
pub fn auth_error_code<E: ProvideErrorMetadata>(err: &aws_sdk_sts::error::SdkError<E>) -> Option<String> {
    if let Some(code) = err.code() {
        return Some(code.to_string());
    }
    let raw = err.raw_response()?;
    if let Some(h) = raw.headers().get("x-amzn-errortype") {
        let h = h.split(':').next().unwrap_or(h);
        let h = h.rsplit('#').next().unwrap_or(h);
        if !h.is_empty() {
            return Some(h.to_string());
        }
    }
    let body = String::from_utf8_lossy(raw.body().bytes()?).to_string();
    let start = body.find("<Code>")? + "<Code>".len();
    let end = body[start..].find("</Code>")? + start;
    Some(body[start..end].to_string())
}

impl Moto {
    /// An SDK config with the admin credentials, pointed at this moto.
    pub async fn sdk_config(&self) -> SdkConfig {
        self.sdk_config_with(&self.admin_key_id, &self.admin_secret).await
    }

    /// An SDK config with other credentials; every call builds a separate
    /// config (own HTTP client, own identity cache). Reads no ~/.aws files and
    /// no AWS_* credentials/region/endpoint from the environment.
    #[allow(deprecated)] // ProfileFiles: aws-runtime (its new home) is not a dependency.
    pub async fn sdk_config_with(&self, key_id: &str, secret: &str) -> SdkConfig {
        use aws_config::profile::profile_file::{ProfileFileKind, ProfileFiles};
        let no_files = ProfileFiles::builder().with_contents(ProfileFileKind::Config, "").build();
        aws_config::defaults(BehaviorVersion::latest())
            .profile_files(no_files)
            .credentials_provider(Credentials::new(key_id, secret, None, None, "test"))
            .region(Region::new(self.region.clone()))
            .endpoint_url(&self.endpoint)
            .load()
            .await
    }

    pub async fn iam(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&self.sdk_config().await)
    }

    pub async fn sm(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.sdk_config().await)
    }

    pub async fn sts(&self) -> aws_sdk_sts::Client {
        aws_sdk_sts::Client::new(&self.sdk_config().await)
    }

    /// Creates `user` (if absent) and one new access key for it; the user may
    /// call `sts:GetCallerIdentity` (an inline policy `keysweep-whoami`).
    /// Returns (access key id, secret access key).
    pub async fn create_user_with_key(&self, user: &str) -> (String, String) {
        let iam = self.iam().await;
        match iam.create_user().user_name(user).send().await {
            Ok(_) => {}
            Err(e) if e.code() == Some("EntityAlreadyExists") => {}
            Err(e) => panic!("CreateUser {user}: {e:?}"),
        }
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:GetCallerIdentity","Resource":"*"}]}"#;
        iam.put_user_policy()
            .user_name(user)
            .policy_name("keysweep-whoami")
            .policy_document(policy)
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutUserPolicy {user}: {e:?}"));
        let out = iam.create_access_key().user_name(user).send().await.unwrap_or_else(|e| panic!("CreateAccessKey {user}: {e:?}"));
        let k = out.access_key().expect("CreateAccessKey returned no key");
        super::canary(k.secret_access_key());
        (k.access_key_id().to_string(), k.secret_access_key().to_string())
    }

    /// Does this key authenticate? STS GetCallerIdentity from a fresh client:
    /// Ok => true; InvalidClientTokenId => false; any other error panics.
    pub async fn key_works(&self, key_id: &str, secret: &str) -> bool {
        let sts = aws_sdk_sts::Client::new(&self.sdk_config_with(key_id, secret).await);
        match sts.get_caller_identity().send().await {
            Ok(_) => true,
            Err(e) => match auth_error_code(&e).as_deref() {
                Some("InvalidClientTokenId") => false,
                _ => panic!("GetCallerIdentity with {key_id}: unexpected error: {e:?}"),
            },
        }
    }

    /// Secrets Manager staging labels of a secret: version id -> stages
    /// (ListSecretVersionIds with IncludeDeprecated=true, every page).
    pub async fn labels(&self, secret_id: &str) -> BTreeMap<String, Vec<String>> {
        let sm = self.sm().await;
        let mut out = BTreeMap::new();
        let mut token: Option<String> = None;
        loop {
            let page = sm
                .list_secret_version_ids()
                .secret_id(secret_id)
                .include_deprecated(true)
                .set_next_token(token.take())
                .send()
                .await
                .unwrap_or_else(|e| panic!("ListSecretVersionIds {secret_id}: {e:?}"));
            for v in page.versions() {
                if let Some(id) = v.version_id() {
                    out.insert(id.to_string(), v.version_stages().to_vec());
                }
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        out
    }

    /// Environment for a child `keysweep` process: admin credentials, region,
    /// and this moto as the endpoint of every AWS service.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", self.admin_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.admin_secret.clone()),
            ("AWS_REGION", self.region.clone()),
            ("AWS_DEFAULT_REGION", self.region.clone()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
        ]
    }

    /// Sets this process's environment to moto's admin credentials (the
    /// standard chain an in-process provider reads; its endpoint comes from
    /// the provider config), with no shared AWS files.
    pub fn set_admin_env(&self) {
        for (k, v) in self.env() {
            if k != "AWS_ENDPOINT_URL" {
                std::env::set_var(k, v);
            }
        }
        std::env::set_var("AWS_CONFIG_FILE", "/dev/null");
        std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    }

    /// Points a child `keysweep` at this moto: `env()`, the endpoint for a
    /// playbook's `${env:KEYSWEEP_TEST_AWS_ENDPOINT}`, and no shared AWS files.
    pub fn configure(&self, c: &mut std::process::Command) {
        c.envs(self.env())
            .env("KEYSWEEP_TEST_AWS_ENDPOINT", &self.endpoint)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    }
}
