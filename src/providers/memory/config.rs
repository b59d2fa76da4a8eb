//! The `memory` adapter's playbook side: its settings (with the faults it
//! injects) and its two credential kinds.

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::playbook::model::{Action, HumanDuration, Limits};
use crate::provider::kind::yaml_str as q;
use crate::provider::kind::{claimed_by_id, CheckCx, Fields, Kind, Problem, ProviderKind, Resolve, StoreKind};
use crate::provider::{Capabilities, Provider, ProviderError};
use crate::secret::GeneratePolicy;

/// An in-process owning system and store: instant, with injected faults.
/// For trying playbooks, the quick demo, tests and benchmarks; it holds
/// nothing outside the process.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoryProviderConfig {
    /// Providers naming the same realm share one system (default: the provider's name).
    pub realm: Option<String>,
    #[serde(default)]
    pub faults: Faults,
    #[serde(default)]
    pub limits: Limits,
}

/// What the in-process system does wrong, on purpose.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Added to every request.
    pub latency: Option<HumanDuration>,
    /// Share of requests refused with a temporary error before acting (0..=1).
    pub temporary: Option<f64>,
    /// Share of requests that act and then lose their answer (0..=1).
    pub lost_after_act: Option<f64>,
    /// Share of verification probes answered with an ambiguous refusal (0..=1).
    pub ambiguous: Option<f64>,
    /// How long a revoked token keeps working (eventual consistency).
    pub revoke_lag: Option<HumanDuration>,
    /// Requests per second the system answers; more get 429 with Retry-After.
    pub server_rate: Option<u32>,
    /// Requests the system works on at once; one more gets 429 with
    /// Retry-After (a server's concurrency limit).
    pub max_in_flight: Option<u32>,
    /// Seed of the fault dice (default fixed: runs repeat).
    pub seed: Option<u64>,
}

#[async_trait]
impl ProviderKind for MemoryProviderConfig {
    fn limits(&self) -> &Limits {
        &self.limits
    }
    fn check(&self, _allow_link_local: bool) -> Vec<Problem> {
        let f = &self.faults;
        [("temporary", f.temporary), ("lost_after_act", f.lost_after_act), ("ambiguous", f.ambiguous)]
            .into_iter()
            .filter(|(_, p)| p.is_some_and(|p| !(0.0..=1.0).contains(&p)))
            .map(|(k, _)| Problem::new(&["faults", k], format!("`{k}` is a share of requests: 0 to 1"), "write e.g. `0.1`"))
            .collect()
    }
    async fn connect(&self, name: &str, _resolve: &Resolve<'_>) -> Result<Arc<dyn Provider>, ProviderError> {
        Ok(Arc::new(super::MemoryProvider::new(name, self)))
    }
    fn store() -> Option<StoreKind> {
        Some(StoreKind::by_path("memory_entry", "a `memory` provider", "{id}", true))
    }
}

/// A token the system mints (like a Vault token or an API token).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoryTokenTarget {
    /// The account the token acts as.
    pub account: String,
    /// The token in service as first listed (after a rotation the store's
    /// `token_id` field names the current one). Default: the account's newest
    /// live token, one being issued if it has none.
    pub token_id: Option<String>,
}

/// A password the system accepts (like a database role's).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoryPasswordTarget {
    pub account: String,
    #[serde(default)]
    pub generate: GeneratePolicy,
}

pub const TOKEN_ID: &str = "token_id";

/// `memory_token`.
pub struct TokenKind;

impl Kind for TokenKind {
    type Target = MemoryTokenTarget;
    fn capabilities() -> Capabilities {
        Capabilities { rotate: true, revoke: true, mints: true, verify_dead: true, needs_store: true }
    }
    fn check(t: &MemoryTokenTarget, cx: &CheckCx) -> Vec<Problem> {
        if cx.action == Action::Revoke && t.token_id.is_none() {
            return vec![Problem::new(&[], format!("revoking `{}` needs the token's `token_id`", cx.id), "add `token_id:` to the target")];
        }
        vec![]
    }
    fn identity_in_store(_t: &MemoryTokenTarget) -> bool {
        true
    }
    fn claimed(t: &MemoryTokenTarget, stored: Option<&Fields>) -> Vec<(String, bool)> {
        claimed_by_id(stored, TOKEN_ID, t.token_id.as_ref())
    }
    fn takes_unnamed(t: &MemoryTokenTarget, item: &crate::provider::InventoryItem) -> bool {
        item.details.get("account") == Some(&t.account)
    }
    fn draft(id: &str, details: &Fields) -> String {
        format!("account: {}, token_id: {}", q(details.get("account").map(String::as_str).unwrap_or_default()), q(id))
    }
}

/// `memory_password`.
pub struct PasswordKind;

impl Kind for PasswordKind {
    type Target = MemoryPasswordTarget;
    fn capabilities() -> Capabilities {
        Capabilities { rotate: true, revoke: true, mints: false, verify_dead: true, needs_store: true }
    }
    fn generate_policy(t: &MemoryPasswordTarget) -> Option<&GeneratePolicy> {
        Some(&t.generate)
    }
    fn same_account(_t: &MemoryPasswordTarget) -> Option<&'static str> {
        Some("")
    }
    fn claimed(t: &MemoryPasswordTarget, _stored: Option<&Fields>) -> Vec<(String, bool)> {
        vec![(t.account.clone(), true)]
    }
    fn draft(id: &str, _details: &Fields) -> String {
        format!("account: {}", q(id))
    }
}
