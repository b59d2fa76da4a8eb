//! The playbook's typed model: what a YAML file may say, and nothing more
//! (`deny_unknown_fields` everywhere). `kind:` selects a provider's settings and
//! a credential's target in one step, so serde's error names the bad variant.
//!
//! The model has no YAML in it: `loader.rs` is the only module that parses.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::providers::{ProviderConfig, Target};

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
    /// How `discover`, `plan` and `run --due` judge what the providers hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<DiscoverySettings>,
}

/// Settings for discovery and hygiene runs.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscoverySettings {
    /// A credential not used for longer than this (or never used) is inactive;
    /// default `90d`. Credentials and `defaults:` may set their own.
    pub inactive_after: Option<HumanDuration>,
    /// What providers hold that this playbook deliberately does not manage
    /// (a bootstrap admin, a system account): left out of the unlisted
    /// findings and of the coverage figure, each with its reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<IgnoreRule>,
}

/// One item (or a `*` pattern of items) discovery leaves alone.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IgnoreRule {
    /// The provider holding it.
    pub provider: String,
    /// Its kind (e.g. `postgres_role`); default: any kind of that provider.
    pub kind: Option<String>,
    /// The id `discover` shows (accessor, key id, role name, DN, `mount/path`); `*` matches any run of characters.
    pub id: String,
    /// Why it is not managed here (shown in every discovery report).
    pub reason: String,
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
    pub inactive_after: Option<HumanDuration>,
    pub revoke_inactive: Option<bool>,
}

/// Throughput limits of one provider.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Credentials of this provider worked on at once, at most: the cap of its
    /// adaptive concurrency (default 256), which grows while the provider
    /// answers promptly and halves on 429/5xx/timeouts; for database and
    /// directory providers a fixed number (default 8).
    pub concurrency: Option<usize>,
    /// Requests per second sent to this provider (default unlimited).
    pub rate_per_second: Option<u32>,
    /// Requests sent back to back before the rate spaces them (default =
    /// rate_per_second, at most rate_per_second): at most `burst` in any
    /// `burst / rate_per_second` seconds. The rate is never exceeded in any
    /// one-second window, burst included.
    pub burst: Option<u32>,
    /// Timeout of one request (default 30s).
    pub timeout: Option<HumanDuration>,
    /// Attempts of one request on transient errors (default 5).
    pub max_attempts: Option<u32>,
}

/// A KV v2 mount of a Vault provider that holds claims for another store.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimsIn {
    /// The Vault provider (declared under `providers:`).
    pub provider: String,
    /// Its KV v2 mount (default `secret`).
    #[serde(default = "default_claims_mount")]
    pub mount: String,
}

fn default_claims_mount() -> String {
    "secret".into()
}

/// The separate admin login a database provider rotates others with. The
/// password is a reference, never inline.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminLogin {
    pub user: String,
    pub password: SecretRef,
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
    /// Inactive when not used for longer than this (default: `discovery.inactive_after`, else `90d`).
    pub inactive_after: Option<HumanDuration>,
    /// `run --due` revokes it instead of rotating when it is inactive (default false).
    pub revoke_inactive: Option<bool>,
    /// What a person does to re-issue this secret, where no API can (an Okta
    /// or Atlassian API token, a SaaS integration token made in a web UI).
    /// `run` reports it as awaiting a human with these instructions; once the
    /// person has given keysweep the new value (`keysweep supply`), the next
    /// `run` tests it, retires the old secret by API and proves it dead.
    pub manual: Option<String>,
}

pub fn default_mount() -> String {
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
/// `${env:VAR}` (an environment variable) or `${store:PROVIDER:PATH#FIELD}`
/// (the current value in a store provider: for Vault `PATH` is `mount/path`,
/// for AWS Secrets Manager the secret's name; `FIELD` is the JSON/KV key).
#[derive(Debug, Clone, PartialEq, Eq, Hash, JsonSchema)]
#[schemars(with = "String")]
pub enum SecretRef {
    Env(String),
    Store { provider: String, path: String, field: String },
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
        if let Some(inner) = t.strip_prefix("${store:").and_then(|r| r.strip_suffix('}')) {
            let parsed = inner.split_once(':').and_then(|(p, rest)| rest.rsplit_once('#').map(|(path, f)| (p, path, f)));
            return match parsed {
                Some((p, path, f)) if !p.is_empty() && !path.is_empty() && !f.is_empty() => {
                    Ok(SecretRef::Store { provider: p.to_string(), path: path.trim_matches('/').to_string(), field: f.to_string() })
                }
                _ => Err(format!("`${{store:{inner}}}` is not `${{store:PROVIDER:PATH#FIELD}}`")),
            };
        }
        Err("secrets are never written inline; reference one, e.g. `${env:VAULT_TOKEN}` or `${store:vault:secret/db/admin#password}`".into())
    }
}

pub fn is_env_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !s.starts_with(|c: char| c.is_ascii_digit())
}

impl std::fmt::Display for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretRef::Env(v) => write!(f, "${{env:{v}}}"),
            SecretRef::Store { provider, path, field } => write!(f, "${{store:{provider}:{path}#{field}}}"),
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
        humantime::parse_duration(s.trim())
            .map(HumanDuration)
            .map_err(|e| serde::de::Error::custom(format!("`{s}` is not a duration ({e}); write e.g. `90d`, `12h`, `30s`")))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::SecretRef;

    #[test]
    fn secret_refs_parse_env_and_store_forms_only() {
        assert_eq!(SecretRef::parse("${env:PG_PW}").unwrap(), SecretRef::Env("PG_PW".into()));
        let r = SecretRef::parse("${store:bao:secret/db/admin#password}").unwrap();
        assert_eq!(r, SecretRef::Store { provider: "bao".into(), path: "secret/db/admin".into(), field: "password".into() });
        assert_eq!(r.to_string(), "${store:bao:secret/db/admin#password}");
        let r = SecretRef::parse("${store:aws:prod/db#x#y}").unwrap();
        assert_eq!(r, SecretRef::Store { provider: "aws".into(), path: "prod/db#x".into(), field: "y".into() });
        assert!(SecretRef::parse("${store:bao:secret/db/admin}").is_err());
        assert!(SecretRef::parse("${store::p#f}").is_err());
        assert!(SecretRef::parse("hunter2").unwrap_err().contains("never written inline"));
        assert!(SecretRef::parse("${env:1BAD}").is_err());
    }
}
