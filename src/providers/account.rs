//! What the database and directory providers share about the accounts they
//! rotate: the handle (`{"username": …}`) and the guard that a store's
//! `username` names only this credential's account or its alternate.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::playbook::model::{Action, SecretRef};
use crate::provider::kind::{CheckCx, Fields, Problem};
use crate::provider::{Capabilities, ErrorKind, Handle, ProviderError};
use crate::secret::GeneratePolicy;

/// The handle key, and the store field, naming the account in service.
pub const USERNAME: &str = "username";

/// The handle of an account.
pub fn one(user: &str) -> Handle {
    BTreeMap::from([(USERNAME.to_string(), user.to_string())])
}

/// Refuses an account that is not the target's (or its alternate): a store's
/// `username` must never steer keysweep to another account. `noun` is how the
/// system calls an account ("role", "ACL user").
pub fn check_in_pair(t: &DbAccountTarget, user: &str, op: &'static str, noun: &str) -> Result<(), ProviderError> {
    if t.in_pair(user) {
        return Ok(());
    }
    let expected = match &t.alternate_with {
        Some(a) => format!("`{}` or `{a}`", t.user),
        None => format!("`{}`", t.user),
    };
    Err(ProviderError::new(ErrorKind::Config, op, format!("{noun} `{user}` is not this credential's account (expected {expected})")))
}

/// An account that does not exist; for the alternate of a pair, says how
/// `create_clone` would create it (`clone_how`).
pub fn missing(op: &'static str, user: &str, t: &DbAccountTarget, noun: &str, clone_how: &str) -> ProviderError {
    let hint = if t.alternate_with.as_deref() == Some(user) && !t.create_clone {
        format!(" (set `create_clone: true` to create it {clone_how})")
    } else {
        String::new()
    };
    ProviderError::new(ErrorKind::NotFound, op, format!("{noun} `{user}` does not exist{hint}"))
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

/// The separate admin login a database provider rotates others with. The
/// password is a reference, never inline.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminLogin {
    pub user: String,
    pub password: SecretRef,
}

pub fn localhost() -> String {
    "127.0.0.1".into()
}

/// Passwords keysweep generates and the system accepts (ALTER ROLE, ACL
/// SETUSER, LDAP modify); revoke disables the account's login.
pub const CAPABILITIES: Capabilities = Capabilities { rotate: true, revoke: true, mints: false, verify_dead: true, needs_store: true };

/// The rules every account kind shares; `host_allowed`: the kind has a host
/// part (`'user'@'host'`), and `kind` names it in the message otherwise.
pub fn check(t: &DbAccountTarget, cx: &CheckCx, host_allowed: bool, host_kind: &str) -> Vec<Problem> {
    let mut out = vec![];
    if t.alternate_with.as_deref() == Some(t.user.as_str()) {
        out.push(Problem::new(
            &["alternate_with"],
            format!("`alternate_with` names `{}` itself; alternating users needs a second account", t.user),
            "name the clone account, e.g. `alternate_with: app_clone`",
        ));
    }
    if t.host.is_some() && !host_allowed {
        out.push(Problem::new(&["host"], format!("`host` applies to `{host_kind}` only"), "remove `host:`"));
    }
    if cx.action == Action::Revoke && t.alternate_with.is_some() {
        out.push(Problem::new(&["alternate_with"], "revoking an alternating pair is not supported; list each account as its own revocation", ""));
    }
    out
}

/// The items an account entry names: the account in service (from the
/// store's `username`, else the target's), then the other of a pair;
/// `name` makes an inventory id of an account.
pub fn claimed(t: &DbAccountTarget, stored: Option<&Fields>, name: &dyn Fn(&str) -> String) -> Vec<(String, bool)> {
    let empty = BTreeMap::new();
    let in_service = t.user_in(stored.unwrap_or(&empty)).to_string();
    let mut out = vec![(name(&in_service), true)];
    for u in [Some(t.user.as_str()), t.alternate_with.as_deref()].into_iter().flatten() {
        if u != in_service {
            out.push((name(u), false));
        }
    }
    out
}

/// Implements [`crate::provider::kind::Kind`] for an account kind of an adapter.
#[macro_export]
macro_rules! account_kind {
    ($Kind:ident, host_allowed: $host:expr, host_kind: $name:literal, name: $naming:expr, match_key: $mk:expr, draft: $draft:expr) => {
        pub struct $Kind;
        impl $crate::provider::kind::Kind for $Kind {
            type Target = $crate::providers::account::DbAccountTarget;
            fn capabilities() -> $crate::provider::Capabilities {
                $crate::providers::account::CAPABILITIES
            }
            fn generate_policy(t: &Self::Target) -> Option<&$crate::secret::GeneratePolicy> {
                Some(&t.generate)
            }
            fn check(t: &Self::Target, cx: &$crate::provider::kind::CheckCx) -> Vec<$crate::provider::kind::Problem> {
                $crate::providers::account::check(t, cx, $host, $name)
            }
            fn alternating(t: &Self::Target) -> bool {
                t.alternate_with.is_some()
            }
            fn same_account(t: &Self::Target) -> Option<&'static str> {
                t.alternate_with.is_none().then_some("use an alternating pair (`alternate_with`)")
            }
            fn identity_in_store(t: &Self::Target) -> bool {
                t.alternate_with.is_some()
            }
            fn claimed(t: &Self::Target, stored: Option<&$crate::provider::kind::Fields>) -> Vec<(String, bool)> {
                let naming: fn(&Self::Target, &str) -> String = $naming;
                $crate::providers::account::claimed(t, stored, &|u| naming(t, u))
            }
            fn match_key(id: &str) -> String {
                let mk: fn(&str) -> String = $mk;
                mk(id)
            }
            fn draft(id: &str, _details: &$crate::provider::kind::Fields) -> String {
                let d: fn(&str) -> String = $draft;
                d(id)
            }
        }
    };
}

/// A database host: no credentials in it, no link-local or metadata address.
pub fn host_problems(host: &str, allow_link_local: bool) -> Vec<Problem> {
    if host.contains('@') {
        return vec![Problem::new(
            &["host"],
            "`host` carries a user name or password (`user:…@host`); credentials never go in an address",
            "write the host alone; the login is the provider's `admin:` (`password: ${env:NAME}`)",
        )];
    }
    if allow_link_local {
        return vec![];
    }
    crate::playbook::rules::host_problem(host).map(|(m, h)| vec![Problem::new(&["host"], m, h)]).unwrap_or_default()
}

/// Implements [`crate::provider::kind::ProviderKind`] for a database or
/// directory provider: limits, the admin login's password reference, the
/// address rule `check` (`|config, allow_link_local| problems`) and a
/// connection that logs in as the admin.
#[macro_export]
macro_rules! account_provider_kind {
    ($Cfg:ty, $Prov:ty, check: $check:expr) => {
        $crate::account_provider_kind!($Cfg, $Prov, check: $check, warnings: |_| vec![]);
    };
    ($Cfg:ty, $Prov:ty, check: $check:expr, warnings: $warnings:expr) => {
        $crate::account_provider_kind!($Cfg, $Prov, check: $check, warnings: $warnings, from_env: |_, _| vec![]);
    };
    ($Cfg:ty, $Prov:ty, check: $check:expr, warnings: $warnings:expr, from_env: $from_env:expr) => {
        #[async_trait::async_trait]
        impl $crate::provider::kind::ProviderKind for $Cfg {
            fn limits(&self) -> &$crate::playbook::model::Limits {
                &self.limits
            }
            fn secret_refs(&self) -> Vec<&$crate::playbook::model::SecretRef> {
                vec![&self.admin.password]
            }
            fn check(&self, allow_link_local: bool) -> Vec<$crate::provider::kind::Problem> {
                let check: fn(&$Cfg, bool) -> Vec<$crate::provider::kind::Problem> = $check;
                check(self, allow_link_local)
            }
            fn warnings(&self) -> Vec<String> {
                let warnings: fn(&$Cfg) -> Vec<String> = $warnings;
                warnings(self)
            }
            fn from_env(&self, env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
                let from_env: fn(&$Cfg, &dyn Fn(&str) -> Option<String>) -> Vec<String> = $from_env;
                from_env(self, env)
            }
            async fn connect(
                &self,
                name: &str,
                resolve: &$crate::provider::kind::Resolve<'_>,
            ) -> Result<std::sync::Arc<dyn $crate::provider::Provider>, $crate::provider::ProviderError> {
                Ok(std::sync::Arc::new(<$Prov>::connect(name, self, resolve).await?))
            }
            fn secret_keys() -> &'static [&'static str] {
                &["password"]
            }
            fn adaptive_concurrency(&self) -> bool {
                false
            }
        }
    };
}
