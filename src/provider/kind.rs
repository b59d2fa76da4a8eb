//! What an adapter declares about the kinds it owns, so that the core
//! (`playbook/`, `plan`, `engine/`, `journal/`, `report/`, `discover/`, `cli/`)
//! never names a kind or matches a target variant.
//!
//! An adapter provides:
//! - its provider settings type, implementing [`ProviderKind`]: limits, the
//!   secret references it holds, its pure rules, whether it is a store
//!   ([`StoreKind`]), and how it connects;
//! - one [`Kind`] per credential kind it owns: the target's settings type,
//!   capabilities, pure rules, how discovery matches an inventory item and how
//!   `discover --emit` drafts an entry.
//!
//! `register_adapters!` (used once, in `src/providers/mod.rs`) turns the list
//! of adapters into the tagged `ProviderConfig` and `Target` enums, the kind
//! tables and the dispatch the core uses.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Capabilities, InventoryItem, Provider, ProviderError};
use crate::playbook::model::{Action, ClaimsIn, Delivery, Limits, SecretRef};
use crate::playbook::StoreLocation;
use crate::secret::{GeneratePolicy, SecretString};

/// Public fields a store keeps beside a value (an accessor, a user name).
pub type Fields = BTreeMap<String, String>;

/// One broken rule of a playbook entry, found by an adapter. `at` is the path
/// below the entry's `target:` (or the provider's settings), key by key.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub at: Vec<String>,
    pub message: String,
    pub hint: Option<String>,
}

impl Problem {
    pub fn new(at: &[&str], message: impl Into<String>, hint: impl Into<String>) -> Self {
        let hint = hint.into();
        Problem { at: at.iter().map(|s| s.to_string()).collect(), message: message.into(), hint: (!hint.is_empty()).then_some(hint) }
    }
}

/// What a kind's rules may look at besides the target itself.
pub struct CheckCx<'a> {
    /// The credential's id.
    pub id: &'a str,
    pub action: Action,
    /// The entry has `manual:` steps (a person re-issues the secret).
    pub manual: bool,
}

/// What a provider's rules for one credential may look at (see
/// [`ProviderKind::check_credential`]).
pub struct CredentialCx<'a> {
    /// The credential's id.
    pub id: &'a str,
    pub action: Action,
    /// It has `manual:` steps (a person re-issues it).
    pub manual: bool,
    /// It names (or inherits) a delivery store that holds its value.
    pub stored: bool,
}

/// Looks up a secret reference's value (environment, or a store read earlier).
pub type Resolve<'a> = dyn Fn(&SecretRef) -> Result<SecretString, ProviderError> + Send + Sync + 'a;

/// One credential kind of an adapter. `Target` is what a playbook's `target:`
/// says (serde with `deny_unknown_fields`, and a JSON Schema).
pub trait Kind: Send + Sync + 'static {
    type Target: Clone + PartialEq + Debug + Serialize + DeserializeOwned + JsonSchema + Send + Sync + 'static;

    /// What the kind can do; the loader refuses an action it lacks and the
    /// conformance trials are chosen from it.
    fn capabilities() -> Capabilities;

    /// How a value keysweep generates for it is made (kinds that accept a
    /// generated value rather than mint one).
    fn generate_policy(_t: &Self::Target) -> Option<&GeneratePolicy> {
        None
    }

    /// The kind's own rules for one entry (pure: no I/O).
    fn check(_t: &Self::Target, _cx: &CheckCx) -> Vec<Problem> {
        vec![]
    }

    /// Where a rotated value goes when the entry names no store: kinds whose
    /// secret is itself a store entry deliver to that entry.
    fn own_entry(_t: &Self::Target, _provider: &str) -> Option<Delivery> {
        None
    }

    /// Two accounts taking turns (an alternating pair).
    fn alternating(_t: &Self::Target) -> bool {
        false
    }

    /// Why the old value stays readable after a rotation (so its death cannot
    /// be proven), when the entry's settings keep it.
    fn keeps_old(_t: &Self::Target) -> Option<&'static str> {
        None
    }

    /// A rotation that keeps the same account in service, so that only a
    /// login with the old password can show it refused: `Some(how else its
    /// death could be proven)` (may be empty), `None` for other rotations.
    fn same_account(_t: &Self::Target) -> Option<&'static str> {
        None
    }

    /// The identity of the secret in service can move into the store on
    /// rotation (a new accessor, key id, or the other account of a pair).
    fn identity_in_store(_t: &Self::Target) -> bool {
        false
    }

    /// The inventory items this entry names, as (display id, in service):
    /// the store's public fields of the current value (`stored`) win over
    /// the playbook. The core matches them through [`Kind::match_key`].
    fn claimed(t: &Self::Target, stored: Option<&Fields>) -> Vec<(String, bool)>;

    /// For an entry that names no item yet (before its first rotation): which
    /// items it would take, and how to name the gap when there is none.
    fn takes_unnamed(_t: &Self::Target, _item: &InventoryItem) -> bool {
        false
    }
    fn unnamed_label(_t: &Self::Target) -> Option<String> {
        None
    }

    /// How `discover` shows an item of this kind.
    fn display_id(it: &InventoryItem) -> String {
        it.id.clone()
    }

    /// The key an item is matched by (e.g. a DN in normal form).
    fn match_key(display_id: &str) -> String {
        display_id.to_string()
    }

    /// The fields of a drafted `target:` after `kind:`, in YAML flow style
    /// (`accessor: "…"`), for an item `discover --emit` found.
    fn draft(display_id: &str, details: &Fields) -> String;

    /// The name a drafted entry's id is built from (never a secret-shaped id).
    fn draft_name(display_id: &str, _details: &Fields) -> String {
        display_id.to_string()
    }
}

/// The object-safe face of a [`Kind`], bound to one target: what the core asks
/// of a credential's `target`.
pub trait TargetSpec: Send + Sync {
    fn kind(&self) -> &'static str;
    fn capabilities(&self) -> Capabilities;
    fn generate_policy(&self) -> Option<&GeneratePolicy>;
    fn check(&self, cx: &CheckCx) -> Vec<Problem>;
    fn own_entry(&self, provider: &str) -> Option<Delivery>;
    fn alternating(&self) -> bool;
    fn keeps_old(&self) -> Option<&'static str>;
    fn same_account(&self) -> Option<&'static str>;
    fn identity_in_store(&self) -> bool;
    fn claimed(&self, stored: Option<&Fields>) -> Vec<(String, bool)>;
    fn takes_unnamed(&self, item: &InventoryItem) -> bool;
    fn unnamed_label(&self) -> Option<String>;
}

/// A target of kind `K`, as a [`TargetSpec`].
pub struct Bound<'a, K: Kind> {
    pub kind: &'static str,
    pub target: &'a K::Target,
}

impl<K: Kind> TargetSpec for Bound<'_, K> {
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn capabilities(&self) -> Capabilities {
        K::capabilities()
    }
    fn generate_policy(&self) -> Option<&GeneratePolicy> {
        K::generate_policy(self.target)
    }
    fn check(&self, cx: &CheckCx) -> Vec<Problem> {
        K::check(self.target, cx)
    }
    fn own_entry(&self, provider: &str) -> Option<Delivery> {
        K::own_entry(self.target, provider)
    }
    fn alternating(&self) -> bool {
        K::alternating(self.target)
    }
    fn keeps_old(&self) -> Option<&'static str> {
        K::keeps_old(self.target)
    }
    fn same_account(&self) -> Option<&'static str> {
        K::same_account(self.target)
    }
    fn identity_in_store(&self) -> bool {
        K::identity_in_store(self.target)
    }
    fn claimed(&self, stored: Option<&Fields>) -> Vec<(String, bool)> {
        K::claimed(self.target, stored)
    }
    fn takes_unnamed(&self, item: &InventoryItem) -> bool {
        K::takes_unnamed(self.target, item)
    }
    fn unnamed_label(&self) -> Option<String> {
        K::unnamed_label(self.target)
    }
}

/// A provider kind whose providers are delivery stores.
#[derive(Clone, Copy)]
pub struct StoreKind {
    /// The credential kind of its entries, as inventories list them.
    pub entry_kind: &'static str,
    /// How an error message names it, e.g. "a `vault` provider (KV v2)".
    pub described: &'static str,
    /// Where `${store:PROVIDER:PATH#FIELD}` points.
    pub location: fn(provider: &str, path: &str, field: &str) -> StoreLocation,
    /// How its inventory names the entry at `loc`.
    pub entry_id: fn(loc: &StoreLocation) -> String,
    /// Rules for a `deliver_to:` naming it (e.g. a KV path stays in its mount).
    pub check_delivery: fn(d: &Delivery) -> Vec<Problem>,
    /// The `path` a drafted entry delivers to.
    pub draft_path: &'static str,
    /// It keeps claims with check-and-set for itself and can hold them for
    /// other stores (`claims_in`).
    pub holds_claims: bool,
}

impl StoreKind {
    /// A store whose entries are named by their path alone (no mount).
    pub fn by_path(entry_kind: &'static str, described: &'static str, draft_path: &'static str, holds_claims: bool) -> StoreKind {
        StoreKind {
            entry_kind,
            described,
            location: |provider, path, field| StoreLocation {
                provider: provider.into(),
                mount: String::new(),
                path: path.into(),
                field: field.into(),
            },
            entry_id: |loc| loc.path.clone(),
            check_delivery: |_| vec![],
            draft_path,
            holds_claims,
        }
    }
}

/// One provider kind: the settings under `providers:` with its `kind:`.
#[async_trait]
pub trait ProviderKind: Send + Sync + 'static {
    fn limits(&self) -> &Limits;

    /// The secret references its settings hold (keysweep's own login).
    fn secret_refs(&self) -> Vec<&SecretRef> {
        vec![]
    }

    /// Its own rules (addresses, prefixes); pure. `allow_link_local` is the
    /// entry's permission to name a link-local or metadata address.
    fn check(&self, _allow_link_local: bool) -> Vec<Problem> {
        vec![]
    }

    /// Rules for the settings the playbook leaves to the owning system's
    /// standard environment (see [`ProviderKind::from_env`]): a value found
    /// there is checked like one written in the playbook, and a missing one
    /// is an error naming both fixes. The loader calls it with the
    /// playbook's environment; `validate --no-env` does not, and lists the
    /// unset [`ProviderKind::env_vars`] as not checked instead. Pure apart from `env`.
    fn check_env(&self, _allow_link_local: bool, _env: &dyn Fn(&str) -> Option<String>) -> Vec<Problem> {
        vec![]
    }

    /// The environment variables [`ProviderKind::check_env`] reads.
    fn env_vars(&self) -> Vec<&'static str> {
        vec![]
    }

    /// What `plan` and every connection report about this provider's
    /// settings: certificate verification turned off, plaintext allowed to a
    /// remote host.
    fn warnings(&self) -> Vec<String> {
        vec![]
    }

    /// Settings the playbook leaves out that connecting takes from the
    /// owning system's standard environment (read through `env`), each as
    /// "`setting` from VAR", for `plan`. Pure apart from `env`.
    #[allow(clippy::wrong_self_convention)] // "settings from the environment", not a constructor
    fn from_env(&self, _env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
        vec![]
    }

    /// Rules a credential of this provider keeps that depend on the
    /// provider's settings (a recipe that issues no token by API needs
    /// `manual:` steps for a rotation); pure. `at` is below the credential's
    /// entry (`["target", "user"]`, `["action"]`, or `[]` for the entry).
    fn check_credential(&self, _target: &crate::playbook::model::Target, _cx: &CredentialCx) -> Vec<Problem> {
        vec![]
    }

    /// Where claims of credentials stored here are kept, if elsewhere.
    fn claims_in(&self) -> Option<&ClaimsIn> {
        None
    }

    /// Whether its providers' concurrency adapts to their answers (see
    /// `provider::adaptive`); `false`: a fixed `limits.concurrency`, default 8
    /// (the database and directory adapters, over a few connections, whose
    /// refused connections are not a load signal). Agrees with
    /// `Provider::adaptive` of the connected provider.
    fn adaptive_concurrency(&self) -> bool {
        true
    }

    /// Connects and logs in (checking that the login is accepted).
    async fn connect(&self, name: &str, resolve: &Resolve<'_>) -> Result<Arc<dyn Provider>, ProviderError>;

    /// Whether this kind's providers are stores, and how.
    fn store() -> Option<StoreKind>
    where
        Self: Sized,
    {
        None
    }

    /// Keys of its settings that hold secret references.
    fn secret_keys() -> &'static [&'static str]
    where
        Self: Sized,
    {
        &[]
    }

    /// Keys of its targets whose values are public ids that look like
    /// secrets (an AWS access key id): not refused as pasted secrets.
    fn public_id_keys() -> &'static [&'static str]
    where
        Self: Sized,
    {
        &[]
    }
}

/// A credential kind, as the registry lists it.
pub struct KindInfo {
    pub kind: &'static str,
    /// The provider kind that owns it.
    pub provider: &'static str,
    pub capabilities: fn() -> Capabilities,
    pub display_id: fn(&InventoryItem) -> String,
    pub match_key: fn(&str) -> String,
    pub draft: fn(&str, &Fields) -> String,
    pub draft_name: fn(&str, &Fields) -> String,
}

/// A provider kind, as the registry lists it.
pub struct ProviderKindInfo {
    pub kind: &'static str,
    pub store: fn() -> Option<StoreKind>,
    pub secret_keys: fn() -> &'static [&'static str],
    pub public_id_keys: fn() -> &'static [&'static str],
}

/// Generates, from the list of adapters, the `ProviderConfig` and `Target`
/// enums (tagged by `kind:`), the kind tables, the loader's precise-error
/// dispatch and the spec accessors. Used once, in `src/providers/mod.rs`.
#[macro_export]
macro_rules! register_adapters {
    ($(
        $(#[doc = $pdoc:literal])*
        $pkind:literal => $PVar:ident($PCfg:ty) {
            $( $(#[doc = $tdoc:literal])* $tkind:literal => $TVar:ident($TKind:ty) ),* $(,)?
        }
    ),* $(,)?) => {
        /// A provider: a named connection to an owning system. `kind:` picks the adapter.
        #[derive(Debug, Clone, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
        #[serde(tag = "kind")]
        pub enum ProviderConfig {
            $( $(#[doc = $pdoc])* #[serde(rename = $pkind)] $PVar($PCfg), )*
        }

        /// What a credential is, in its owning system. `kind:` selects it.
        #[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
        #[serde(tag = "kind")]
        pub enum Target {
            $( $( $(#[doc = $tdoc])* #[serde(rename = $tkind)] $TVar(<$TKind as $crate::provider::kind::Kind>::Target), )* )*
        }

        impl ProviderConfig {
            pub fn kind(&self) -> &'static str {
                match self { $( ProviderConfig::$PVar(_) => $pkind, )* }
            }
            /// The adapter's side of these settings.
            pub fn spec(&self) -> &dyn $crate::provider::kind::ProviderKind {
                match self { $( ProviderConfig::$PVar(c) => c, )* }
            }
            pub fn limits(&self) -> &$crate::playbook::model::Limits {
                self.spec().limits()
            }
            pub fn secret_refs(&self) -> Vec<&$crate::playbook::model::SecretRef> {
                self.spec().secret_refs()
            }
        }

        impl Target {
            pub fn kind(&self) -> &'static str {
                match self { $( $( Target::$TVar(_) => $tkind, )* )* }
            }
            /// The adapter's side of this target.
            pub fn spec(&self) -> Box<dyn $crate::provider::kind::TargetSpec + '_> {
                match self {
                    $( $( Target::$TVar(t) => Box::new($crate::provider::kind::Bound::<$TKind> { kind: $tkind, target: t }), )* )*
                }
            }
            pub fn generate_policy(&self) -> Option<&$crate::secret::GeneratePolicy> {
                match self {
                    $( $( Target::$TVar(t) => <$TKind as $crate::provider::kind::Kind>::generate_policy(t), )* )*
                }
            }
        }

        /// Every credential kind, with the provider kind that owns it.
        pub static KINDS: &[$crate::provider::kind::KindInfo] = &[
            $( $( $crate::provider::kind::KindInfo {
                kind: $tkind,
                provider: $pkind,
                capabilities: <$TKind as $crate::provider::kind::Kind>::capabilities,
                display_id: <$TKind as $crate::provider::kind::Kind>::display_id,
                match_key: <$TKind as $crate::provider::kind::Kind>::match_key,
                draft: <$TKind as $crate::provider::kind::Kind>::draft,
                draft_name: <$TKind as $crate::provider::kind::Kind>::draft_name,
            }, )* )*
        ];

        /// Every provider kind.
        pub static PROVIDER_KINDS: &[$crate::provider::kind::ProviderKindInfo] = &[
            $( $crate::provider::kind::ProviderKindInfo {
                kind: $pkind,
                store: <$PCfg as $crate::provider::kind::ProviderKind>::store,
                secret_keys: <$PCfg as $crate::provider::kind::ProviderKind>::secret_keys,
                public_id_keys: <$PCfg as $crate::provider::kind::ProviderKind>::public_id_keys,
            }, )*
        ];

        /// Deserializes `v` as the settings of provider kind `kind`, for an
        /// error message with the path inside it (serde loses the path inside
        /// an internally tagged enum). `None`: no such kind, or no error.
        pub fn provider_error(kind: &str, v: &$crate::playbook::doc::Node) -> Option<(serde_path_to_error::Path, String)> {
            match kind {
                $( $pkind => $crate::provider::kind::inner_error::<$PCfg>(v), )*
                _ => None,
            }
        }

        /// Like [`provider_error`], for a credential's `target:`.
        pub fn target_error(kind: &str, v: &$crate::playbook::doc::Node) -> Option<(serde_path_to_error::Path, String)> {
            match kind {
                $( $( $tkind => $crate::provider::kind::inner_error::<<$TKind as $crate::provider::kind::Kind>::Target>(v), )* )*
                _ => None,
            }
        }
    };
}

/// The error of deserializing `v` (without its `kind` key) as a `T`.
pub fn inner_error<T: DeserializeOwned>(v: &crate::playbook::doc::Node) -> Option<(serde_path_to_error::Path, String)> {
    let without = v.untag().without_key("kind")?;
    crate::playbook::doc::deserialize::<T>(&without).err()
}

/// The registry's entry for credential kind `kind`.
pub fn kind_info(kind: &str) -> Option<&'static KindInfo> {
    crate::providers::KINDS.iter().find(|k| k.kind == kind)
}

/// The capabilities of credential kind `kind`.
pub fn capabilities(kind: &str) -> Option<Capabilities> {
    kind_info(kind).map(|k| (k.capabilities)())
}

/// The credential kinds a provider kind owns.
pub fn kinds_of(provider_kind: &str) -> Vec<&'static str> {
    crate::providers::KINDS.iter().filter(|k| k.provider == provider_kind).map(|k| k.kind).collect()
}

/// Provider kind `kind` as a store, if it is one.
pub fn store_kind(provider_kind: &str) -> Option<StoreKind> {
    crate::providers::PROVIDER_KINDS.iter().find(|p| p.kind == provider_kind).and_then(|p| (p.store)())
}

/// Every provider kind whose providers are stores.
pub fn store_kinds() -> Vec<(&'static str, StoreKind)> {
    crate::providers::PROVIDER_KINDS.iter().filter_map(|p| (p.store)().map(|s| (p.kind, s))).collect()
}

/// Whether `key`, in any provider's settings, holds a secret reference.
pub fn is_secret_key(key: &str) -> bool {
    crate::providers::PROVIDER_KINDS.iter().any(|p| (p.secret_keys)().contains(&key))
}

/// Whether `key`, in a target, holds a public id shaped like a secret.
pub fn is_public_id_key(key: &str) -> bool {
    crate::providers::PROVIDER_KINDS.iter().any(|p| (p.public_id_keys)().contains(&key))
}

/// How `discover` names an item (by its kind's rule).
pub fn display_id(it: &InventoryItem) -> String {
    kind_info(&it.kind).map(|k| (k.display_id)(it)).unwrap_or_else(|| it.id.clone())
}

/// The key an item of `kind` is matched by.
pub fn match_key(kind: &str, display_id: &str) -> String {
    kind_info(kind).map(|k| (k.match_key)(display_id)).unwrap_or_else(|| display_id.to_string())
}

/// The one item an entry names by an id field: the store's public field
/// `key` of the current value, else the id the playbook lists; nothing when
/// neither says (see [`Kind::claimed`]).
pub fn claimed_by_id(stored: Option<&Fields>, key: &str, listed: Option<&String>) -> Vec<(String, bool)> {
    stored.and_then(|s| s.get(key)).filter(|v| !v.is_empty()).or(listed).map(|id| vec![(id.clone(), true)]).unwrap_or_default()
}

/// A YAML scalar for a drafted entry: JSON's double-quoted strings are valid YAML.
pub fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// The load-time refusals of plaintext (`http://`) URLs to hosts that are not
/// loopback, one per URL setting (`(path, url)`), unless the provider says
/// `allow_plaintext: true`.
pub fn plaintext_problems(urls: &[(&[&str], &str)], allow_plaintext: bool) -> Vec<Problem> {
    urls.iter()
        .filter_map(|(at, u)| crate::playbook::rules::plaintext_address_problem(u, allow_plaintext).map(|(m, h)| Problem::new(at, m, h)))
        .collect()
}

/// The warning `plan` and every connection give when `allow_plaintext: true`
/// lets one of `urls` cross the network unencrypted.
pub fn plaintext_warnings(urls: &[&str], allow_plaintext: bool, what: &str) -> Vec<String> {
    let remote: Vec<&str> = urls.iter().copied().filter(|u| crate::playbook::rules::plaintext_address_problem(u, false).is_some()).collect();
    if !allow_plaintext || remote.is_empty() {
        return vec![];
    }
    vec![format!(
        "plaintext `http://` to a host that is not loopback ({}; allow_plaintext: true): {what} cross the network unencrypted",
        remote.join(", ")
    )]
}
