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
use crate::provider::{Capabilities, InventoryItem, Provider, ProviderError};
use crate::secret::GeneratePolicy;

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
}

fn default_cert_mount() -> String {
    "cert".into()
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
            VaultAuth::Token { token } => vec![token],
            VaultAuth::Approle { role_id, secret_id, .. } => vec![role_id, secret_id],
            VaultAuth::Cert { .. } => vec![],
        }
    }
    fn check(&self, allow_link_local: bool) -> Vec<Problem> {
        let mut out = vec![];
        if let Some((m, h)) = address_problem(&self.address, &["http", "https"], allow_link_local) {
            out.push(Problem::new(&["address"], m, h));
        } else if let Some((m, h)) = plaintext_address_problem(&self.address, self.allow_plaintext) {
            out.push(Problem::new(&["address"], m, h));
        } else if self.address.trim().starts_with("http://") && self.tls.is_set() {
            out.push(Problem::new(
                &["tls"],
                "`tls` is set but the address is `http://`: nothing would use it",
                "write the address as `https://…`, or remove `tls:`",
            ));
        }
        out.extend(self.tls.check(&["tls"]));
        if let Some(m) = store_path_problem("pending_prefix", &self.pending_prefix) {
            out.push(Problem::new(&["pending_prefix"], m, "write a relative prefix such as `keysweep-pending`"));
        } else if self.pending_prefix.trim().is_empty() {
            out.push(Problem::new(&["pending_prefix"], "`pending_prefix` is empty", "remove it to use `keysweep-pending`"));
        }
        if let VaultAuth::Approle { mount, .. } | VaultAuth::Cert { mount, .. } = &self.auth {
            if let Some(m) = store_path_problem("mount", mount) {
                out.push(Problem::new(&["auth", "mount"], m, "write the auth mount's name, e.g. `approle` or `cert`"));
            }
        }
        if matches!(self.auth, VaultAuth::Cert { .. }) && self.tls.client_cert.is_none() {
            out.push(Problem::new(
                &["auth"],
                "`method: cert` logs in with a TLS client certificate, and `tls.client_cert` is not set",
                "add `tls: { client_cert: …, client_key: … }` (PEM files) to the provider",
            ));
        }
        out
    }
    fn warnings(&self) -> Vec<String> {
        let mut out = vec![];
        out.extend(self.tls.warnings());
        if self.allow_plaintext && plaintext_address_problem(&self.address, false).is_some() {
            out.push("plaintext `http://` to a host that is not loopback (allow_plaintext: true): the login token and every secret cross the network unencrypted".into());
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
        &["token", "secret_id", "role_id"]
    }
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
