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
    /// A PostgreSQL server (login roles).
    Postgres(PostgresProviderConfig),
    /// A MySQL or MariaDB server (users).
    Mysql(MysqlProviderConfig),
    /// A Redis server (ACL users).
    Redis(RedisProviderConfig),
    /// An LDAP directory (service accounts' userPassword).
    Ldap(LdapProviderConfig),
}

impl ProviderConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderConfig::Vault(_) => "vault",
            ProviderConfig::Aws(_) => "aws",
            ProviderConfig::Postgres(_) => "postgres",
            ProviderConfig::Mysql(_) => "mysql",
            ProviderConfig::Redis(_) => "redis",
            ProviderConfig::Ldap(_) => "ldap",
        }
    }
    pub fn limits(&self) -> &Limits {
        match self {
            ProviderConfig::Vault(v) => &v.limits,
            ProviderConfig::Aws(a) => &a.limits,
            ProviderConfig::Postgres(c) => &c.limits,
            ProviderConfig::Mysql(c) => &c.limits,
            ProviderConfig::Redis(c) => &c.limits,
            ProviderConfig::Ldap(c) => &c.limits,
        }
    }
    /// The secret references in this provider's settings.
    pub fn secret_refs(&self) -> Vec<&SecretRef> {
        match self {
            ProviderConfig::Vault(v) => match &v.auth {
                VaultAuth::Token { token } => vec![token],
                VaultAuth::Approle { role_id, secret_id, .. } => vec![role_id, secret_id],
            },
            ProviderConfig::Aws(_) => vec![],
            ProviderConfig::Postgres(c) => vec![&c.admin.password],
            ProviderConfig::Mysql(c) => vec![&c.admin.password],
            ProviderConfig::Redis(c) => vec![&c.admin.password],
            ProviderConfig::Ldap(c) => vec![&c.admin.password],
        }
    }
    /// Every provider kind this release knows.
    pub const KINDS: &'static [&'static str] = &["vault", "aws", "postgres", "mysql", "redis", "ldap"];
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
    /// Where to keep the claims (per-credential leases, written with
    /// check-and-set) of credentials delivered first to this provider's
    /// Secrets Manager, which has no check-and-set of its own: a Vault
    /// provider's KV v2 mount. Without it, only the state-directory lock
    /// keeps runs apart, so run such credentials from one place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims_in: Option<ClaimsIn>,
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

fn localhost() -> String {
    "127.0.0.1".into()
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresProviderConfig {
    #[serde(default = "localhost")]
    pub host: String,
    #[serde(default = "pg_port")]
    pub port: u16,
    /// Database to connect to (default `postgres`).
    #[serde(default = "pg_db")]
    pub database: String,
    pub admin: AdminLogin,
    #[serde(default)]
    pub limits: Limits,
}
fn pg_port() -> u16 {
    5432
}
fn pg_db() -> String {
    "postgres".into()
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MysqlProviderConfig {
    #[serde(default = "localhost")]
    pub host: String,
    #[serde(default = "mysql_port")]
    pub port: u16,
    pub admin: AdminLogin,
    #[serde(default)]
    pub limits: Limits,
}
fn mysql_port() -> u16 {
    3306
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisProviderConfig {
    #[serde(default = "localhost")]
    pub host: String,
    #[serde(default = "redis_port")]
    pub port: u16,
    pub admin: AdminLogin,
    #[serde(default)]
    pub limits: Limits,
}
fn redis_port() -> u16 {
    6379
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LdapProviderConfig {
    /// e.g. `ldap://127.0.0.1:389`
    pub url: String,
    /// The admin bind: `user` is a DN here.
    pub admin: AdminLogin,
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
    /// Inactive when not used for longer than this (default: `discovery.inactive_after`, else `90d`).
    pub inactive_after: Option<HumanDuration>,
    /// `run --due` revokes it instead of rotating when it is inactive (default false).
    pub revoke_inactive: Option<bool>,
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
    /// A PostgreSQL login role's password.
    PostgresRole(DbAccountTarget),
    /// A MySQL/MariaDB user's password (`'user'@'host'`).
    MysqlUser(DbAccountTarget),
    /// A Redis ACL user's password.
    RedisAclUser(DbAccountTarget),
    /// An LDAP entry's `userPassword` (the account is its DN).
    LdapAccount(DbAccountTarget),
}

impl Target {
    pub fn kind(&self) -> &'static str {
        match self {
            Target::VaultToken(_) => "vault_token",
            Target::VaultApproleSecretId(_) => "vault_approle_secret_id",
            Target::VaultKvSecret(_) => "vault_kv_secret",
            Target::AwsIamAccessKey(_) => "aws_iam_access_key",
            Target::AwsSecretsmanagerSecret(_) => "aws_secretsmanager_secret",
            Target::PostgresRole(_) => "postgres_role",
            Target::MysqlUser(_) => "mysql_user",
            Target::RedisAclUser(_) => "redis_acl_user",
            Target::LdapAccount(_) => "ldap_account",
        }
    }
    /// How a generated value is made, for kinds that generate rather than mint.
    pub fn generate_policy(&self) -> Option<&GeneratePolicy> {
        match self {
            Target::VaultKvSecret(t) => Some(&t.generate),
            Target::AwsSecretsmanagerSecret(t) => Some(&t.generate),
            Target::PostgresRole(t) | Target::MysqlUser(t) | Target::RedisAclUser(t) | Target::LdapAccount(t) => Some(&t.generate),
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
        ("postgres_role", "postgres"),
        ("mysql_user", "mysql"),
        ("redis_acl_user", "redis"),
        ("ldap_account", "ldap"),
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

impl DbAccountTarget {
    /// The other account of an alternating pair, if `user` is one of the pair.
    pub fn partner(&self, user: &str) -> Option<&str> {
        let alt = self.alternate_with.as_deref()?;
        if user == self.user {
            Some(alt)
        } else if user == alt {
            Some(self.user.as_str())
        } else {
            None
        }
    }
    /// `user` is this credential's account or its alternate.
    pub fn in_pair(&self, user: &str) -> bool {
        user == self.user || self.alternate_with.as_deref() == Some(user)
    }
    /// The account a handle (or a stored value's fields) names in `username`,
    /// or the target's own.
    pub fn user_in<'a>(&'a self, h: &'a std::collections::BTreeMap<String, String>) -> &'a str {
        h.get("username").map(String::as_str).filter(|s| !s.is_empty()).unwrap_or(self.user.as_str())
    }
}

/// An account whose password keysweep sets (PostgreSQL role, Redis ACL user,
/// LDAP DN). With `alternate_with`, two accounts with the same grants take
/// turns: each run rotates the one not in service and flips the store to it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DbAccountTarget {
    /// The account (role name, ACL user, or DN for LDAP).
    pub user: String,
    /// The second account of an alternating pair (zero-downtime rotation).
    pub alternate_with: Option<String>,
    /// Create `alternate_with` with `user`'s grants if it does not exist.
    #[serde(default)]
    pub create_clone: bool,
    #[serde(default)]
    pub generate: GeneratePolicy,
    /// MySQL/MariaDB only: the host part of `'user'@'host'` (default `%`),
    /// for both accounts of a pair.
    pub host: Option<String>,
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
