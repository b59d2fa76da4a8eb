//! The playbook's typed model: what a YAML file may say, and nothing more
//! (`deny_unknown_fields` everywhere). `kind:` selects a provider's settings and
//! a credential's target in one step, so serde's error names the bad variant.
//!
//! The model has no YAML in it: `loader.rs` is the only module that parses.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::secret::GeneratePolicy;

/// One playbook file as written.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaybookFile {
    /// Format version; this release reads `1`.
    pub version: u32,
    /// Other playbook files to load (paths or globs, relative to this file).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Values applied to every credential of this file that does not set its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<Defaults>,
    /// Named connections to owning systems and stores.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Every credential, with the system that owns it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credentials: Vec<CredentialSpec>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    pub owner: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub action: Option<Action>,
    pub max_age: Option<HumanDuration>,
    pub deliver_to: Option<Vec<Delivery>>,
    pub verify: Option<VerifyPolicy>,
    pub grace_period: Option<HumanDuration>,
}

/// Throughput limits of one provider.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Credentials of this provider worked on at once (default 8).
    pub concurrency: Option<usize>,
    /// Requests per second sent to this provider (default unlimited).
    pub rate_per_second: Option<u32>,
    /// Requests allowed in a burst above the rate (default = rate_per_second).
    pub burst: Option<u32>,
    /// Timeout of one request (default 30s).
    pub timeout: Option<HumanDuration>,
    /// Attempts of one request on transient errors (default 5).
    pub max_attempts: Option<u32>,
}

/// A provider: a named connection to an owning system. `kind:` picks the adapter.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProviderConfig {
    /// HashiCorp Vault or OpenBao.
    Vault(VaultProviderConfig),
    /// AWS: IAM access keys, Secrets Manager secrets, and Secrets Manager as a store.
    Aws(AwsProviderConfig),
}

impl ProviderConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderConfig::Vault(_) => "vault",
            ProviderConfig::Aws(_) => "aws",
        }
    }
    pub fn limits(&self) -> &Limits {
        match self {
            ProviderConfig::Vault(v) => &v.limits,
            ProviderConfig::Aws(a) => &a.limits,
        }
    }
    /// Every provider kind this release knows.
    pub const KINDS: &'static [&'static str] = &["vault", "aws"];
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VaultProviderConfig {
    /// Server address, e.g. `${env:VAULT_ADDR}`.
    pub address: String,
    /// Enterprise/OpenBao namespace.
    pub namespace: Option<String>,
    /// How keysweep itself logs in.
    pub auth: VaultAuth,
    /// Where staged (pending) values are kept, under each KV mount used as a store.
    #[serde(default = "default_pending_prefix")]
    pub pending_prefix: String,
    #[serde(default)]
    pub limits: Limits,
}

fn default_pending_prefix() -> String {
    "keysweep-pending".into()
}

/// AWS. Credentials come from the standard chain (environment, `profile`, SSO,
/// instance or container roles), never from the playbook.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsProviderConfig {
    /// Region (default: from the environment or profile).
    pub region: Option<String>,
    /// Endpoint override (a VPC endpoint, or a local test server).
    pub endpoint_url: Option<String>,
    /// Named profile from ~/.aws/config.
    pub profile: Option<String>,
    #[serde(default)]
    pub limits: Limits,
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
}

fn default_approle_mount() -> String {
    "approle".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Issue a new secret, deliver it, retire the old one, prove it dead.
    Rotate,
    /// Retire the secret and prove it dead; nothing replaces it.
    Revoke,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Rotate => "rotate",
            Action::Revoke => "revoke",
        }
    }
}

/// One credential the organisation holds.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialSpec {
    /// Unique across all included files.
    pub id: String,
    /// Person or team answerable for it.
    pub owner: Option<String>,
    /// Name of the provider (under `providers:`) that owns it.
    pub provider: String,
    /// `rotate` (default) or `revoke`.
    pub action: Option<Action>,
    /// What the credential is, in the owning system. `kind:` selects it.
    pub target: Target,
    /// Stores the new value is delivered to; the first is primary.
    pub deliver_to: Option<Vec<Delivery>>,
    pub verify: Option<VerifyPolicy>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Rotate when older than this (e.g. `90d`).
    pub max_age: Option<HumanDuration>,
    /// Wait this long between promoting the new value and retiring the old.
    pub grace_period: Option<HumanDuration>,
    /// Credentials that must finish before this one starts.
    #[serde(default)]
    pub depends_on: Vec<String>,
    pub description: Option<String>,
}

/// What a credential is, in its owning system.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// A Vault/OpenBao token, known by its accessor.
    VaultToken(VaultTokenTarget),
    /// An AppRole secret-id, known by role and secret-id accessor.
    VaultApproleSecretId(VaultApproleTarget),
    /// A KV v2 secret whose value is itself the credential (a shared password, say).
    VaultKvSecret(VaultKvTarget),
    /// An IAM user's access key.
    AwsIamAccessKey(AwsIamKeyTarget),
    /// A Secrets Manager secret whose value is itself the credential.
    AwsSecretsmanagerSecret(AwsSecretTarget),
}

impl Target {
    pub fn kind(&self) -> &'static str {
        match self {
            Target::VaultToken(_) => "vault_token",
            Target::VaultApproleSecretId(_) => "vault_approle_secret_id",
            Target::VaultKvSecret(_) => "vault_kv_secret",
            Target::AwsIamAccessKey(_) => "aws_iam_access_key",
            Target::AwsSecretsmanagerSecret(_) => "aws_secretsmanager_secret",
        }
    }
    /// How a generated value is made, for kinds that generate rather than mint.
    pub fn generate_policy(&self) -> Option<&GeneratePolicy> {
        match self {
            Target::VaultKvSecret(t) => Some(&t.generate),
            Target::AwsSecretsmanagerSecret(t) => Some(&t.generate),
            _ => None,
        }
    }
    /// Every credential kind this release knows, with the provider kind that owns it.
    pub const KINDS: &'static [(&'static str, &'static str)] = &[
        ("vault_token", "vault"),
        ("vault_approle_secret_id", "vault"),
        ("vault_kv_secret", "vault"),
        ("aws_iam_access_key", "aws"),
        ("aws_secretsmanager_secret", "aws"),
    ];
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
    #[serde(default = "default_kv_mount")]
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

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsIamKeyTarget {
    /// The IAM user that owns the key.
    pub user: String,
    /// The key in service as first listed (after a rotation the store's
    /// `access_key_id` field names the current one).
    pub access_key_id: Option<String>,
    /// IAM allows two keys per user. If the user already has two, delete the
    /// *inactive* one to make room (default false: fail and say so).
    #[serde(default)]
    pub allow_delete_inactive: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsSecretTarget {
    /// Name or ARN of the secret (the API's SecretId).
    pub name: String,
    /// JSON key holding the value; absent = the whole SecretString is the value.
    pub field: Option<String>,
    #[serde(default)]
    pub generate: GeneratePolicy,
    /// Generate with Secrets Manager's GetRandomPassword (honouring `generate`'s
    /// length and exclusions) instead of locally.
    #[serde(default)]
    pub aws_random_password: bool,
}

pub fn default_kv_mount() -> String {
    "secret".into()
}
pub fn default_field() -> String {
    "value".into()
}

/// Where a new value is delivered.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    /// A provider that can act as a store (kind `vault`: KV v2).
    pub provider: String,
    /// Path of the secret in the store (may use `{id}` for the credential id).
    pub path: String,
    /// KV mount (Vault); default `secret`.
    pub mount: Option<String>,
    /// Field that receives the value; default `value`.
    pub field: Option<String>,
}

/// How hard to try to prove the old secret dead.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyPolicy {
    /// Probes of the old secret before giving up as `unverified` (default 5).
    pub attempts: Option<u32>,
    /// Wait between probes (default 1s); systems with eventual consistency need more.
    pub interval: Option<HumanDuration>,
    /// Authenticate with the old secret as part of the proof (default true).
    /// Set false for honeytokens or accounts with lockout: an admin-side proof is used alone.
    pub probe_old: Option<bool>,
}

/// A reference to a secret held elsewhere. Secrets never appear inline:
/// `${env:VAR}` is the only form this release reads.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[schemars(with = "String")]
pub enum SecretRef {
    Env(String),
}

impl SecretRef {
    pub fn parse(s: &str) -> Result<SecretRef, String> {
        let t = s.trim();
        if let Some(inner) = t.strip_prefix("${env:").and_then(|r| r.strip_suffix('}')) {
            if is_env_name(inner) {
                return Ok(SecretRef::Env(inner.to_string()));
            }
            return Err(format!("`{inner}` is not an environment variable name"));
        }
        Err("secrets are never written inline; reference one, e.g. `${env:VAULT_TOKEN}`".into())
    }
}

pub fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

impl std::fmt::Display for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretRef::Env(v) => write!(f, "${{env:{v}}}"),
        }
    }
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        SecretRef::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for SecretRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// A duration written as `90d`, `12h`, `30s`, `1h 30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[schemars(with = "String")]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(s.trim()).map(HumanDuration).map_err(|e| {
            serde::de::Error::custom(format!("`{s}` is not a duration ({e}); write e.g. `90d`, `12h`, `30s`"))
        })
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}
