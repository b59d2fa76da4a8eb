//! The AWS adapter's playbook side: the provider's settings, its two
//! credential kinds, their rules, and how discovery and `--emit` see them.

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::playbook::model::{Action, ClaimsIn, Delivery, Limits};
use crate::playbook::rules::address_problem;
use crate::provider::kind::yaml_str as q;
use crate::provider::kind::{claimed_by_id, CheckCx, Fields, Kind, Problem, ProviderKind, Resolve, StoreKind};
use crate::provider::{Capabilities, InventoryItem, Provider, ProviderError};
use crate::secret::GeneratePolicy;

use super::iam::KEY_ID;

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
    /// PEM file of the CA certificate(s) to trust for AWS's endpoints (only
    /// these; a VPC endpoint or a proxy with a private CA). Default:
    /// `AWS_CA_BUNDLE`, else the system's roots.
    pub ca_bundle: Option<String>,
    /// Allow `http://` to a host that is not loopback (keysweep's login and
    /// every secret then cross the network unencrypted; `plan` and every
    /// connection say so). Default: refused when the playbook loads.
    #[serde(default)]
    pub allow_plaintext: bool,
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

#[async_trait]
impl ProviderKind for AwsProviderConfig {
    fn limits(&self) -> &Limits {
        &self.limits
    }
    fn check(&self, allow_link_local: bool) -> Vec<Problem> {
        let Some(u) = self.endpoint_url.as_deref() else { return vec![] };
        match address_problem(u, &["http", "https"], allow_link_local) {
            Some((m, h)) => vec![Problem::new(&["endpoint_url"], m, h)],
            None => crate::provider::kind::plaintext_problems(&[(&["endpoint_url"], u)], self.allow_plaintext),
        }
    }
    fn warnings(&self) -> Vec<String> {
        crate::provider::kind::plaintext_warnings(
            &self.endpoint_url.iter().map(String::as_str).collect::<Vec<_>>(),
            self.allow_plaintext,
            "signed requests and every secret value",
        )
    }
    fn from_env(&self, env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
        match (&self.ca_bundle, env("AWS_CA_BUNDLE").filter(|v| !v.is_empty())) {
            (None, Some(v)) => vec![format!("`ca_bundle` from AWS_CA_BUNDLE ({v})")],
            _ => vec![],
        }
    }
    fn claims_in(&self) -> Option<&ClaimsIn> {
        self.claims_in.as_ref()
    }
    async fn connect(&self, name: &str, _resolve: &Resolve<'_>) -> Result<Arc<dyn Provider>, ProviderError> {
        let p = super::AwsProvider::connect(name, self).await?;
        p.check_login().await?;
        Ok(Arc::new(p))
    }
    fn store() -> Option<StoreKind> {
        Some(StoreKind::by_path("aws_secretsmanager_secret", "an `aws` provider (Secrets Manager)", "keysweep/{id}", false))
    }
    fn public_id_keys() -> &'static [&'static str] {
        &[KEY_ID]
    }
}

/// `aws_iam_access_key`.
pub struct AccessKeyKind;

impl Kind for AccessKeyKind {
    type Target = AwsIamKeyTarget;
    fn capabilities() -> Capabilities {
        Capabilities { rotate: true, revoke: true, mints: true, verify_dead: true, needs_store: true }
    }
    fn check(t: &AwsIamKeyTarget, cx: &CheckCx) -> Vec<Problem> {
        if cx.action == Action::Revoke && t.access_key_id.as_deref().is_none_or(|a| a.trim().is_empty()) {
            return vec![Problem::new(
                &[],
                format!("revoking `{}` needs the key's `access_key_id`", cx.id),
                "add `access_key_id: AKIA…` to the target (`aws iam list-access-keys` shows it); the secret key never goes in a playbook",
            )];
        }
        vec![]
    }
    fn identity_in_store(_t: &AwsIamKeyTarget) -> bool {
        true
    }
    fn claimed(t: &AwsIamKeyTarget, stored: Option<&Fields>) -> Vec<(String, bool)> {
        claimed_by_id(stored, KEY_ID, t.access_key_id.as_ref())
    }
    /// A key named by its user only (before its first rotation): every key of
    /// that user is the one the engine would take.
    fn takes_unnamed(t: &AwsIamKeyTarget, item: &InventoryItem) -> bool {
        item.details.get("user") == Some(&t.user)
    }
    fn unnamed_label(t: &AwsIamKeyTarget) -> Option<String> {
        Some(format!("(any key of {})", t.user))
    }
    fn draft(id: &str, details: &Fields) -> String {
        format!("user: {}, access_key_id: {}", q(details.get("user").map(String::as_str).unwrap_or_default()), q(id))
    }
    /// An id names the credential, not a key id (which the loader takes for a pasted secret).
    fn draft_name(id: &str, details: &Fields) -> String {
        format!("{}-key-{}", details.get("user").map(String::as_str).unwrap_or("user"), &id[id.len().saturating_sub(4)..])
    }
}

/// `aws_secretsmanager_secret`: a stored secret can be replaced, not revoked:
/// the old version stays as AWSPREVIOUS, and "dead" means no longer AWSCURRENT.
pub struct SecretKind;

impl Kind for SecretKind {
    type Target = AwsSecretTarget;
    fn capabilities() -> Capabilities {
        Capabilities { rotate: true, revoke: false, mints: false, verify_dead: true, needs_store: false }
    }
    fn generate_policy(t: &AwsSecretTarget) -> Option<&GeneratePolicy> {
        Some(&t.generate)
    }
    fn own_entry(t: &AwsSecretTarget, provider: &str) -> Option<Delivery> {
        Some(Delivery { provider: provider.to_string(), path: t.name.clone(), mount: None, field: Some(t.field.clone().unwrap_or_default()) })
    }
    fn claimed(t: &AwsSecretTarget, _stored: Option<&Fields>) -> Vec<(String, bool)> {
        vec![(t.name.clone(), true)]
    }
    fn draft(id: &str, _details: &Fields) -> String {
        format!("name: {}", q(id))
    }
}
