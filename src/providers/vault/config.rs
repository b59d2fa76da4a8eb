//! The Vault adapter's playbook side: the provider's settings, its three
//! credential kinds, their rules, and how discovery and `--emit` see them.

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::playbook::model::{default_field, default_mount, Delivery, HumanDuration, Limits, SecretRef};
use crate::playbook::rules::{address_problem, duration_problem, plaintext_address_problem, store_path_problem, MAX_LONG_DURATION};
use crate::playbook::StoreLocation;
use crate::provider::kind::yaml_str as q;
use crate::provider::kind::{claimed_by_id, CheckCx, Fields, Kind, Problem, ProviderKind, Resolve, StoreKind};
use crate::provider::{Capabilities, ErrorKind, InventoryItem, Provider, ProviderError};
use crate::secret::{ExposeSecret, GeneratePolicy, SecretString};

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VaultProviderConfig {
    /// Server address, e.g. `https://vault.internal:8200`. Left out: the
    /// `VAULT_ADDR` environment variable, as the vault CLI reads it.
    #[serde(default)]
    pub address: Option<String>,
    /// Enterprise/OpenBao namespace. Left out: `VAULT_NAMESPACE`, if set.
    #[serde(default)]
    pub namespace: Option<String>,
    /// How keysweep itself logs in. Left out: a token from `VAULT_TOKEN`,
    /// else from the vault CLI's token file `~/.vault-token`.
    #[serde(default)]
    pub auth: Option<VaultAuth>,
    /// Where staged (pending) values are kept, under each KV mount used as a store.
    #[serde(default = "default_pending_prefix")]
    pub pending_prefix: String,
    #[serde(default)]
    pub limits: Limits,
    /// TLS to the server (an `https://` address): verified by default,
    /// against `ca_cert`/`ca_path`, else `VAULT_CACERT`/`VAULT_CAPATH`, else
    /// the system's roots.
    #[serde(default)]
    pub tls: VaultTls,
    /// Allow an `http://` address to a host that is not loopback (127.0.0.0/8,
    /// `::1`, `localhost`). Without it such a playbook does not load: the
    /// login token would cross the network unencrypted. `plan` reports it.
    #[serde(default)]
    pub allow_plaintext: bool,
}

/// TLS settings of a `vault` provider (the shared `tls:` block; the CA
/// defaults to `VAULT_CACERT`/`VAULT_CAPATH`).
pub type VaultTls = crate::provider::tls::TlsConfig;

fn default_pending_prefix() -> String {
    "keysweep-pending".into()
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum VaultAuth {
    /// A token, e.g. `token: ${env:VAULT_TOKEN}`.
    Token { token: SecretRef },
    /// AppRole login.
    Approle {
        #[serde(default = "default_approle_mount")]
        mount: String,
        role_id: SecretRef,
        secret_id: SecretRef,
    },
    /// TLS certificate login (the `cert` auth method) with the provider's
    /// `tls.client_cert`/`client_key`; no secret in the playbook.
    Cert {
        #[serde(default = "default_cert_mount")]
        mount: String,
        /// The certificate role to log in against (default: any that matches).
        name: Option<String>,
    },
    /// Kubernetes service-account login (the `kubernetes` auth method): the
    /// pod's service-account token, read from `jwt_path` at each login.
    Kubernetes {
        #[serde(default = "default_kubernetes_mount")]
        mount: String,
        /// The Vault role of the auth mount to log in against.
        role: String,
        /// The service-account token file.
        #[serde(default = "default_kubernetes_jwt_path")]
        jwt_path: String,
    },
    /// JWT/OIDC login (the `jwt` auth method) with a JWT a CI system or an
    /// identity provider issued (GitHub Actions, GitLab ID tokens, ...):
    /// `jwt: ${env:…}` / `${store:…}`, or a file `jwt_path` read at each login.
    Jwt {
        #[serde(default = "default_jwt_mount")]
        mount: String,
        /// The Vault role (default: the mount's `default_role`).
        role: Option<String>,
        /// The JWT, as a secret reference.
        jwt: Option<SecretRef>,
        /// A file holding the JWT (read at each login, so a rotated file is followed).
        jwt_path: Option<String>,
    },
    /// AWS IAM login (the `aws` auth method, `auth_type=iam`): a signed
    /// `sts:GetCallerIdentity` request made with the AWS credential chain
    /// (environment, profile, SSO, web identity, container or instance role),
    /// which Vault forwards to STS to learn who keysweep is.
    Aws {
        #[serde(default = "default_aws_mount")]
        mount: String,
        /// The Vault role (default: the IAM principal's friendly name, as Vault does).
        role: Option<String>,
        /// Value of the `X-Vault-AWS-IAM-Server-ID` header, when the mount
        /// sets `iam_server_id_header_value`.
        header_value: Option<String>,
        /// The STS region the request is signed for (default `us-east-1`,
        /// the global endpoint, as the vault CLI does); another region needs
        /// the mount's `sts_endpoint`/`sts_region` set to match.
        region: Option<String>,
    },
}

fn default_cert_mount() -> String {
    "cert".into()
}

fn default_kubernetes_mount() -> String {
    "kubernetes".into()
}

/// Where Kubernetes mounts a pod's service-account token.
pub const KUBERNETES_JWT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

fn default_kubernetes_jwt_path() -> String {
    KUBERNETES_JWT_PATH.into()
}

fn default_jwt_mount() -> String {
    "jwt".into()
}

fn default_aws_mount() -> String {
    "aws".into()
}

impl VaultAuth {
    /// The auth mount the login goes to (token auth has none).
    pub fn mount(&self) -> Option<&str> {
        match self {
            VaultAuth::Token { .. } => None,
            VaultAuth::Approle { mount, .. }
            | VaultAuth::Cert { mount, .. }
            | VaultAuth::Kubernetes { mount, .. }
            | VaultAuth::Jwt { mount, .. }
            | VaultAuth::Aws { mount, .. } => Some(mount),
        }
    }

    /// A login that opens a session of keysweep's own (a token Vault issues
    /// at login, revoked by `close`), as opposed to a token it is given.
    pub fn opens_session(&self) -> bool {
        !matches!(self, VaultAuth::Token { .. })
    }
}

/// The environment variables a `vault` provider reads for what the playbook
/// leaves out (as the vault CLI does).
pub const ENV_ADDR: &str = "VAULT_ADDR";
pub const ENV_TOKEN: &str = "VAULT_TOKEN";
pub const ENV_NAMESPACE: &str = "VAULT_NAMESPACE";

/// Where keysweep's own token comes from when the playbook has no `auth:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImplicitToken {
    /// `VAULT_TOKEN`.
    Env,
    /// The vault CLI's token file (`$HOME/.vault-token`), at this path.
    File(String),
}

impl std::fmt::Display for ImplicitToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImplicitToken::Env => write!(f, "{ENV_TOKEN}"),
            ImplicitToken::File(p) => write!(f, "~/.vault-token ({p})"),
        }
    }
}

/// `value` set and not blank.
fn set(v: Option<String>) -> Option<String> {
    v.filter(|v| !v.trim().is_empty())
}

/// The problems of an address, at `["address"]` (`from`: the variable it came from, if any).
fn address_problems(address: &str, from: Option<&str>, allow_plaintext: bool, tls_set: bool, allow_link_local: bool) -> Vec<Problem> {
    let (lead, fix) = match from {
        Some(var) => (format!("`address` from {var}: "), format!("; or fix {var}")),
        None => (String::new(), String::new()),
    };
    let one = |(m, h): (String, String)| vec![Problem::new(&["address"], format!("{lead}{m}"), format!("{h}{fix}"))];
    if let Some(p) = address_problem(address, &["http", "https"], allow_link_local) {
        return one(p);
    }
    if let Some(p) = plaintext_address_problem(address, allow_plaintext) {
        return one(p);
    }
    if address.trim().starts_with("http://") && tls_set {
        return vec![Problem::new(
            &["tls"],
            format!("{lead}`tls` is set but the address is `http://`: nothing would use it"),
            format!("write the address as `https://…`, or remove `tls:`{fix}"),
        )];
    }
    vec![]
}

/// An address as `plan` may show it (no `user:…@` part).
fn shown_address(a: &str) -> String {
    match reqwest::Url::parse(a.trim()) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string().trim_end_matches('/').to_string()
        }
        Ok(_) => a.trim().to_string(),
        Err(_) => "(not a URL)".into(),
    }
}

impl VaultProviderConfig {
    /// The server address: the playbook's, else `VAULT_ADDR` (checked at
    /// connect like one written in the playbook: scheme, no credentials in
    /// it, no plaintext to a remote host without `allow_plaintext`). The
    /// link-local rule of an address from the environment is judged at load
    /// (see `check_env`), where `allow_link_local` is known.
    pub fn resolve_address(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<String, ProviderError> {
        const OP: &str = "vault.address";
        if let Some(a) = &self.address {
            return Ok(a.clone());
        }
        let Some(a) = set(env(ENV_ADDR)) else {
            return Err(ProviderError::new(ErrorKind::Config, OP, missing_address()));
        };
        if let Some(p) = address_problems(&a, Some(ENV_ADDR), self.allow_plaintext, self.tls.is_set(), true).into_iter().next() {
            return Err(ProviderError::new(ErrorKind::Config, OP, format!("{}: {}", p.message, p.hint.unwrap_or_default())));
        }
        Ok(a.trim().to_string())
    }

    /// The namespace: the playbook's, else `VAULT_NAMESPACE`.
    pub fn resolve_namespace(&self, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
        self.namespace.clone().or_else(|| set(env(ENV_NAMESPACE)).map(|n| n.trim().to_string()))
    }

    /// Where keysweep's token comes from when the playbook has no `auth:`:
    /// `VAULT_TOKEN`, else the vault CLI's `~/.vault-token` (if it exists).
    pub fn implicit_token_source(env: &dyn Fn(&str) -> Option<String>) -> Option<ImplicitToken> {
        if set(env(ENV_TOKEN)).is_some() {
            return Some(ImplicitToken::Env);
        }
        let home = set(env("HOME"))?;
        let path = std::path::Path::new(&home).join(".vault-token");
        path.is_file().then(|| ImplicitToken::File(path.display().to_string()))
    }
}

fn missing_address() -> String {
    format!("the provider has no `address` and {ENV_ADDR} is not set: write `address: https://…` in the provider, or set {ENV_ADDR}")
}

fn missing_token() -> String {
    format!(
        "the provider has no `auth` and there is no token to log in with: {ENV_TOKEN} is not set and there is no ~/.vault-token; write `auth:` in the provider (e.g. `{{ method: token, token: \"${{env:VAULT_TOKEN}}\" }}`, or `method: approle`/`kubernetes`/`jwt`/`aws`/`cert`), or set {ENV_TOKEN}"
    )
}

/// keysweep's token when the playbook has no `auth:`, with where it came from.
pub fn implicit_token(env: &dyn Fn(&str) -> Option<String>) -> Result<(SecretString, ImplicitToken), ProviderError> {
    const OP: &str = "vault.token";
    match VaultProviderConfig::implicit_token_source(env) {
        Some(ImplicitToken::Env) => Ok((SecretString::from(env(ENV_TOKEN).unwrap_or_default().trim().to_string()), ImplicitToken::Env)),
        Some(ImplicitToken::File(p)) => {
            let t =
                std::fs::read_to_string(&p).map_err(|e| ProviderError::new(ErrorKind::Config, OP, format!("reading ~/.vault-token ({p}): {e}")))?;
            let t = SecretString::from(t.trim().to_string());
            if t.expose_secret().is_empty() {
                return Err(ProviderError::new(ErrorKind::Config, OP, format!("~/.vault-token ({p}) is empty; {}", missing_token())));
            }
            Ok((t, ImplicitToken::File(p)))
        }
        None => Err(ProviderError::new(ErrorKind::Config, OP, missing_token())),
    }
}

fn default_approle_mount() -> String {
    "approle".into()
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VaultTokenTarget {
    /// Accessor of the token as first listed. After a rotation the store's
    /// `accessor` field names the current one.
    pub accessor: Option<String>,
    /// Policies of the replacement token (default: those of the old token).
    pub policies: Option<Vec<String>>,
    /// TTL of the replacement token (default: the old token's creation TTL).
    pub ttl: Option<HumanDuration>,
    /// Token role to create the replacement under.
    pub role: Option<String>,
    /// Create the replacement as an orphan (default true, so that revoking
    /// keysweep's own token never takes it along).
    pub orphan: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VaultApproleTarget {
    #[serde(default = "default_approle_mount")]
    pub mount: String,
    pub role: String,
    /// Accessor of the secret-id as first listed (after a rotation, the store's
    /// `accessor` field names the current one).
    pub secret_id_accessor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VaultKvTarget {
    #[serde(default = "default_mount")]
    pub mount: String,
    pub path: String,
    /// Field of the secret's data that holds the value.
    #[serde(default = "default_field")]
    pub field: String,
    #[serde(default)]
    pub generate: GeneratePolicy,
    /// After promotion, destroy the old version's data (default true). With
    /// `false` the old value stays readable in the version history, so its death
    /// cannot be proven and the outcome is `unverified`.
    #[serde(default = "yes")]
    pub destroy_old: bool,
}

fn yes() -> bool {
    true
}

/// Minted by Vault, delivered to a store, proven dead admin-side.
const MINTED: Capabilities = Capabilities { rotate: true, revoke: true, mints: true, verify_dead: true, needs_store: true };

/// KV v2 paths and mounts stay inside their mount.
fn kv_location_problems(at: &[&str], kv_path: Option<&str>, mount: Option<&str>) -> Vec<Problem> {
    let mut out = vec![];
    for (field, value) in [("path", kv_path), ("mount", mount)] {
        let Some(v) = value else { continue };
        if let Some(m) = store_path_problem(field, v) {
            let example = if field == "path" { "apps/{id}" } else { "secret" };
            let mut p: Vec<&str> = at.to_vec();
            p.push(field);
            out.push(Problem::new(
                &p,
                m,
                format!("a KV {field} names a place inside its mount: segments separated by single `/`, no `..`, e.g. `{example}`"),
            ));
        }
    }
    out
}

#[async_trait]
impl ProviderKind for VaultProviderConfig {
    fn limits(&self) -> &Limits {
        &self.limits
    }
    fn secret_refs(&self) -> Vec<&SecretRef> {
        match &self.auth {
            Some(VaultAuth::Token { token }) => vec![token],
            Some(VaultAuth::Approle { role_id, secret_id, .. }) => vec![role_id, secret_id],
            Some(VaultAuth::Jwt { jwt: Some(jwt), .. }) => vec![jwt],
            // A token from VAULT_TOKEN or ~/.vault-token (read at connect), a
            // certificate, a token file, the AWS credential chain: nothing in the playbook.
            None | Some(VaultAuth::Cert { .. } | VaultAuth::Kubernetes { .. } | VaultAuth::Jwt { jwt: None, .. } | VaultAuth::Aws { .. }) => vec![],
        }
    }
    fn check(&self, allow_link_local: bool) -> Vec<Problem> {
        let mut out = vec![];
        if let Some(a) = &self.address {
            out.extend(address_problems(a, None, self.allow_plaintext, self.tls.is_set(), allow_link_local));
        }
        out.extend(self.tls.check(&["tls"]));
        if let Some(m) = store_path_problem("pending_prefix", &self.pending_prefix) {
            out.push(Problem::new(&["pending_prefix"], m, "write a relative prefix such as `keysweep-pending`"));
        } else if self.pending_prefix.trim().is_empty() {
            out.push(Problem::new(&["pending_prefix"], "`pending_prefix` is empty", "remove it to use `keysweep-pending`"));
        }
        if let Some(mount) = self.auth.as_ref().and_then(VaultAuth::mount) {
            if let Some(m) = store_path_problem("mount", mount) {
                out.push(Problem::new(&["auth", "mount"], m, "write the auth mount's name, e.g. `approle`, `kubernetes` or `jwt`"));
            }
        }
        let blank = |v: &Option<String>| v.as_deref().is_some_and(|v| v.trim().is_empty());
        match &self.auth {
            Some(VaultAuth::Cert { .. }) if self.tls.client_cert.is_none() => out.push(Problem::new(
                &["auth"],
                "`method: cert` logs in with a TLS client certificate, and `tls.client_cert` is not set",
                "add `tls: { client_cert: …, client_key: … }` (PEM files) to the provider",
            )),
            Some(VaultAuth::Kubernetes { role, jwt_path, .. }) => {
                if role.trim().is_empty() {
                    out.push(Problem::new(&["auth", "role"], "`role` is empty", "name the role of the kubernetes auth mount keysweep logs in with"));
                }
                if jwt_path.trim().is_empty() {
                    out.push(Problem::new(
                        &["auth", "jwt_path"],
                        "`jwt_path` is empty",
                        format!("remove it to read the pod's token at `{KUBERNETES_JWT_PATH}`"),
                    ));
                }
            }
            Some(VaultAuth::Jwt { role, jwt, jwt_path, .. }) => {
                if blank(role) {
                    out.push(Problem::new(
                        &["auth", "role"],
                        "`role` is empty",
                        "name the role of the jwt auth mount, or remove `role` to use its `default_role`",
                    ));
                }
                match (jwt, jwt_path) {
                    (Some(_), Some(_)) => out.push(Problem::new(
                        &["auth"],
                        "`method: jwt` names both `jwt` and `jwt_path`",
                        "keep one: `jwt: ${env:…}` (a variable the CI job sets) or `jwt_path:` (a file, read at each login)",
                    )),
                    (None, None) => out.push(Problem::new(
                        &["auth"],
                        "`method: jwt` needs the JWT: neither `jwt` nor `jwt_path` is set",
                        "add `jwt: ${env:CI_JOB_JWT}` (the variable your CI puts the ID token in) or `jwt_path: /path/to/token`",
                    )),
                    (None, Some(p)) if p.trim().is_empty() => {
                        out.push(Problem::new(&["auth", "jwt_path"], "`jwt_path` is empty", "name the file that holds the JWT"))
                    }
                    _ => {}
                }
            }
            Some(VaultAuth::Aws { role, header_value, region, .. }) => {
                if blank(role) {
                    out.push(Problem::new(
                        &["auth", "role"],
                        "`role` is empty",
                        "name the role of the aws auth mount, or remove `role` to use the IAM principal's name",
                    ));
                }
                if header_value.as_deref().is_some_and(|h| h.trim().is_empty() || h.contains(['\r', '\n'])) {
                    out.push(Problem::new(
                        &["auth", "header_value"],
                        "`header_value` is empty or spans lines",
                        "write the mount's `iam_server_id_header_value` (e.g. `vault.example.com`), or remove it",
                    ));
                }
                if region.as_deref().is_some_and(|r| r.is_empty() || !r.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')) {
                    out.push(Problem::new(
                        &["auth", "region"],
                        "`region` is not an AWS region name",
                        "write e.g. `us-east-1`, or remove it to sign for the global STS endpoint",
                    ));
                }
            }
            _ => {}
        }
        out
    }
    fn check_env(&self, allow_link_local: bool, env: &dyn Fn(&str) -> Option<String>) -> Vec<Problem> {
        let mut out = vec![];
        if self.address.is_none() {
            match set(env(ENV_ADDR)) {
                Some(a) => out.extend(address_problems(&a, Some(ENV_ADDR), self.allow_plaintext, self.tls.is_set(), allow_link_local)),
                None => out.push(Problem::new(
                    &[],
                    format!("the provider has no `address` and {ENV_ADDR} is not set"),
                    format!("write `address: https://…` in the provider, or set {ENV_ADDR}"),
                )),
            }
        }
        if self.auth.is_none() && Self::implicit_token_source(env).is_none() {
            out.push(Problem::new(
                &[],
                format!("the provider has no `auth`, {ENV_TOKEN} is not set and there is no ~/.vault-token"),
                format!("write `auth:` in the provider (e.g. `{{ method: token, token: \"${{env:VAULT_TOKEN}}\" }}`), or set {ENV_TOKEN}"),
            ));
        }
        out
    }
    fn env_vars(&self) -> Vec<&'static str> {
        let mut out = vec![];
        if self.address.is_none() {
            out.push(ENV_ADDR);
        }
        if self.auth.is_none() {
            out.push(ENV_TOKEN);
        }
        out
    }
    fn warnings(&self) -> Vec<String> {
        let mut out = vec![];
        out.extend(self.tls.warnings());
        if let Some(a) = &self.address {
            out.extend(plaintext_warning(a, self.allow_plaintext));
        }
        out
    }
    fn from_env(&self, env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
        let mut out = vec![];
        let mut https = self.address.as_deref().is_some_and(|a| a.trim().starts_with("https://"));
        if self.address.is_none() {
            if let Some(a) = set(env(ENV_ADDR)) {
                https = a.trim().starts_with("https://");
                let mut line = format!("`address` from {ENV_ADDR} ({})", shown_address(&a));
                if let Some(w) = plaintext_warning(&a, self.allow_plaintext).into_iter().next() {
                    line.push_str(&format!("; WARNING: {w}"));
                }
                out.push(line);
            }
        }
        if self.namespace.is_none() {
            if let Some(n) = set(env(ENV_NAMESPACE)) {
                out.push(format!("`namespace` from {ENV_NAMESPACE} ({})", n.trim()));
            }
        }
        if self.auth.is_none() {
            // Never the token itself: only where it is read from.
            if let Some(src) = Self::implicit_token_source(env) {
                out.push(format!("`auth` token from {src}"));
            }
        }
        if https {
            if self.tls.ca_cert.is_none() {
                if let Some(p) = set(env("VAULT_CACERT")) {
                    out.push(format!("`tls.ca_cert` from VAULT_CACERT ({p})"));
                }
            }
            if self.tls.ca_path.is_none() {
                if let Some(p) = set(env("VAULT_CAPATH")) {
                    out.push(format!("`tls.ca_path` from VAULT_CAPATH ({p})"));
                }
            }
        }
        out
    }
    async fn connect(&self, name: &str, resolve: &Resolve<'_>) -> Result<Arc<dyn Provider>, ProviderError> {
        let p = super::VaultProvider::connect(name, self, resolve).await?;
        p.check_login().await?;
        Ok(Arc::new(p))
    }
    fn store() -> Option<StoreKind> {
        Some(StoreKind {
            entry_kind: "vault_kv_secret",
            described: "a `vault` provider (KV v2)",
            // `${store:p:mount/path#field}`: the first segment is the KV mount.
            location: |provider, path, field| {
                let (mount, path) = path.split_once('/').map(|(m, p)| (m.to_string(), p.to_string())).unwrap_or(("secret".into(), path.to_string()));
                StoreLocation { provider: provider.into(), mount, path, field: field.into() }
            },
            entry_id: |loc| format!("{}/{}", loc.mount, loc.path),
            check_delivery: |d| kv_location_problems(&[], Some(&d.path), d.mount.as_deref()),
            draft_path: "{id}",
            holds_claims: true,
        })
    }
    fn secret_keys() -> &'static [&'static str] {
        &["token", "secret_id", "role_id", "jwt"]
    }
}

/// The warning for an `http://` address to a remote host that `allow_plaintext` lets through.
fn plaintext_warning(address: &str, allow_plaintext: bool) -> Option<String> {
    (allow_plaintext && plaintext_address_problem(address, false).is_some())
        .then(|| "plaintext `http://` to a host that is not loopback (allow_plaintext: true): the login token and every secret cross the network unencrypted".to_string())
}

/// `vault_token`.
pub struct TokenKind;

impl Kind for TokenKind {
    type Target = VaultTokenTarget;
    fn capabilities() -> Capabilities {
        MINTED
    }
    fn check(t: &VaultTokenTarget, cx: &CheckCx) -> Vec<Problem> {
        let mut out = vec![];
        if let Some((m, h)) = duration_problem("ttl", t.ttl.map(|h| h.0), false, MAX_LONG_DURATION) {
            out.push(Problem::new(&["ttl"], m, h));
        }
        if cx.action == crate::playbook::model::Action::Revoke && t.accessor.as_deref().is_none_or(|a| a.trim().is_empty()) {
            out.push(Problem::new(
                &[],
                format!("revoking `{}` needs the token's `accessor`", cx.id),
                "add `accessor:` to the target (`vault token lookup` shows it); the token itself never goes in a playbook",
            ));
        }
        out
    }
    fn identity_in_store(_t: &VaultTokenTarget) -> bool {
        true
    }
    fn claimed(t: &VaultTokenTarget, stored: Option<&Fields>) -> Vec<(String, bool)> {
        claimed_by_id(stored, "accessor", t.accessor.as_ref())
    }
    fn draft(id: &str, _details: &Fields) -> String {
        format!("accessor: {}", q(id))
    }
}

/// `vault_approle_secret_id`.
pub struct SecretIdKind;

impl Kind for SecretIdKind {
    type Target = VaultApproleTarget;
    fn capabilities() -> Capabilities {
        MINTED
    }
    fn check(t: &VaultApproleTarget, _cx: &CheckCx) -> Vec<Problem> {
        kv_location_problems(&[], None, Some(&t.mount))
    }
    fn identity_in_store(_t: &VaultApproleTarget) -> bool {
        true
    }
    fn claimed(t: &VaultApproleTarget, stored: Option<&Fields>) -> Vec<(String, bool)> {
        claimed_by_id(stored, "accessor", t.secret_id_accessor.as_ref())
    }
    fn draft(id: &str, details: &Fields) -> String {
        format!(
            "mount: {}, role: {}, secret_id_accessor: {}",
            q(details.get("mount").map(String::as_str).unwrap_or("approle")),
            q(details.get("role").map(String::as_str).unwrap_or_default()),
            q(id)
        )
    }
}

/// `vault_kv_secret`: the value of a KV v2 entry is itself the credential.
pub struct KvKind;

impl Kind for KvKind {
    type Target = VaultKvTarget;
    fn capabilities() -> Capabilities {
        Capabilities { rotate: true, revoke: true, mints: false, verify_dead: true, needs_store: false }
    }
    fn generate_policy(t: &VaultKvTarget) -> Option<&GeneratePolicy> {
        Some(&t.generate)
    }
    fn check(t: &VaultKvTarget, _cx: &CheckCx) -> Vec<Problem> {
        kv_location_problems(&[], Some(&t.path), Some(&t.mount))
    }
    fn own_entry(t: &VaultKvTarget, provider: &str) -> Option<Delivery> {
        Some(Delivery { provider: provider.to_string(), path: t.path.clone(), mount: Some(t.mount.clone()), field: Some(t.field.clone()) })
    }
    fn keeps_old(t: &VaultKvTarget) -> Option<&'static str> {
        (!t.destroy_old).then_some("the old version stays readable in the KV history (destroy_old: false)")
    }
    fn claimed(t: &VaultKvTarget, _stored: Option<&Fields>) -> Vec<(String, bool)> {
        vec![(format!("{}/{}", t.mount, t.path), true)]
    }
    fn display_id(it: &InventoryItem) -> String {
        format!("{}/{}", it.details.get("mount").map(String::as_str).unwrap_or("secret"), it.id)
    }
    fn draft(id: &str, _details: &Fields) -> String {
        let (mount, path) = id.split_once('/').unwrap_or(("secret", id));
        format!("mount: {}, path: {}", q(mount), q(path))
    }
}
