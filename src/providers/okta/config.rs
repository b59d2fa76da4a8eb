//! The `okta` adapter's playbook side: its settings and its two credential
//! kinds, `okta_api_token` (shape "e": no API mints one, a person does) and
//! `okta_client_secret` (dual: a second secret is added, tested and promoted,
//! then the old one deactivated and deleted).

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::playbook::model::{Limits, SecretRef};
use crate::playbook::rules::address_problem;
use crate::provider::kind::yaml_str as q;
use crate::provider::kind::{claimed_by_id, plaintext_problems, plaintext_warnings, CheckCx, Fields, Kind, Problem, ProviderKind, Resolve};
use crate::provider::{Capabilities, InventoryItem, Provider, ProviderError};

/// An Okta org (the management API and its authorization servers).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OktaProviderConfig {
    /// The org's address, e.g. `https://acme.okta.com`.
    pub org_url: String,
    /// keysweep's own login: an API token of an admin allowed to list and
    /// revoke API tokens and manage apps (`${env:OKTA_API_TOKEN}`), sent as `SSWS`.
    pub api_token: SecretRef,
    /// Allow `http://` to a host that is not loopback (keysweep's login and
    /// every secret then cross the network unencrypted; `plan` and every
    /// connection say so). Default: refused when the playbook loads.
    #[serde(default)]
    pub allow_plaintext: bool,
    /// TLS to the API: the CA to trust (a proxy or gateway with a private
    /// CA), a client certificate, or verification off (reported loudly).
    /// Default: the system's roots.
    #[serde(default)]
    pub tls: crate::provider::tls::TlsConfig,
    #[serde(default)]
    pub limits: Limits,
}

#[async_trait]
impl ProviderKind for OktaProviderConfig {
    fn limits(&self) -> &Limits {
        &self.limits
    }
    fn secret_refs(&self) -> Vec<&SecretRef> {
        vec![&self.api_token]
    }
    fn check(&self, allow_link_local: bool) -> Vec<Problem> {
        let mut out = match address_problem(&self.org_url, &["http", "https"], allow_link_local) {
            Some((m, h)) => vec![Problem::new(&["org_url"], m, h)],
            None => plaintext_problems(&[(&["org_url"], &self.org_url)], self.allow_plaintext),
        };
        out.extend(self.tls.check_http(&["tls"]));
        out
    }
    fn warnings(&self) -> Vec<String> {
        let mut out = plaintext_warnings(&[&self.org_url], self.allow_plaintext, "the API tokens keysweep logs in with and probes");
        out.extend(self.tls.warnings());
        out
    }
    async fn connect(&self, name: &str, resolve: &Resolve<'_>) -> Result<Arc<dyn Provider>, ProviderError> {
        Ok(Arc::new(super::OktaProvider::connect(name, self, resolve).await?))
    }
    fn secret_keys() -> &'static [&'static str] {
        &["api_token"]
    }
}

/// An Okta API token (SSWS). Okta has no API that creates one: a rotation is
/// re-issued by a person (`manual:`), then keysweep revokes the old token by
/// API and proves it dead; a revocation is all API.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OktaApiTokenTarget {
    /// The token's id (`00T…`) as first listed; after a rotation the store's
    /// `token_id` field names the token in service.
    pub token_id: Option<String>,
    /// The token's name in the Admin Console, to find it when no id is given.
    pub name: Option<String>,
    /// The login of the user the token acts as: checked, and a replacement
    /// must act as the same user (never a more privileged one).
    pub user: Option<String>,
}

/// An OAuth 2.0 service app's client secret.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OktaClientSecretTarget {
    /// The app's id (`0oa…`), which is also its OAuth `client_id`.
    pub app_id: String,
    /// The custom authorization server whose token endpoint tests a secret
    /// (client secrets do not authenticate at the org server). Default `default`.
    #[serde(default = "default_server")]
    pub authorization_server: String,
    /// A scope the app is granted, asked for in the test token request
    /// (default: the authorization server's default scopes).
    pub scope: Option<String>,
}

fn default_server() -> String {
    "default".into()
}

pub const TOKEN_ID: &str = "token_id";
pub const SECRET_ID: &str = "secret_id";

/// `okta_api_token`.
pub struct ApiTokenKind;

impl Kind for ApiTokenKind {
    type Target = OktaApiTokenTarget;
    fn capabilities() -> Capabilities {
        Capabilities { rotate: false, revoke: true, mints: false, verify_dead: true, needs_store: true }
    }
    fn check(t: &OktaApiTokenTarget, cx: &CheckCx) -> Vec<Problem> {
        if t.token_id.is_none() && t.name.is_none() {
            return vec![Problem::new(&[], format!("`{}` names no token", cx.id), "add `token_id:` (00T…) or the token's `name:`")];
        }
        vec![]
    }
    fn identity_in_store(_t: &OktaApiTokenTarget) -> bool {
        true
    }
    fn claimed(t: &OktaApiTokenTarget, stored: Option<&Fields>) -> Vec<(String, bool)> {
        claimed_by_id(stored, TOKEN_ID, t.token_id.as_ref())
    }
    fn takes_unnamed(t: &OktaApiTokenTarget, item: &InventoryItem) -> bool {
        t.name.is_some() && item.details.get("name") == t.name.as_ref()
    }
    fn unnamed_label(t: &OktaApiTokenTarget) -> Option<String> {
        t.name.as_ref().map(|n| format!("token named `{n}`"))
    }
    fn draft(id: &str, details: &Fields) -> String {
        let mut s = format!("token_id: {}", q(id));
        for (key, field) in [("name", "name"), ("user", "login")] {
            if let Some(v) = details.get(field) {
                s.push_str(&format!(", {key}: {}", q(v)));
            }
        }
        s
    }
    fn draft_name(id: &str, details: &Fields) -> String {
        details.get("name").cloned().unwrap_or_else(|| id.to_string())
    }
}

/// `okta_client_secret`.
pub struct ClientSecretKind;

impl Kind for ClientSecretKind {
    type Target = OktaClientSecretTarget;
    /// Not revocable alone: Okta refuses to deactivate an app's only active
    /// secret. A rotation retires the old one once the new one is in service;
    /// to cut an app off, deactivate the app itself.
    fn capabilities() -> Capabilities {
        Capabilities { rotate: true, revoke: false, mints: true, verify_dead: true, needs_store: true }
    }
    fn check(t: &OktaClientSecretTarget, _cx: &CheckCx) -> Vec<Problem> {
        let mut out = vec![];
        if t.app_id.trim().is_empty() {
            out.push(Problem::new(&["app_id"], "`app_id` is empty", "write the app's id (0oa…), also its client_id"));
        }
        if t.authorization_server.trim().is_empty() || t.authorization_server.contains('/') {
            out.push(Problem::new(&["authorization_server"], "`authorization_server` must be one server id", "e.g. `default`"));
        }
        out
    }
    fn identity_in_store(_t: &OktaClientSecretTarget) -> bool {
        true
    }
    fn claimed(t: &OktaClientSecretTarget, _stored: Option<&Fields>) -> Vec<(String, bool)> {
        vec![(t.app_id.clone(), true)]
    }
    fn draft(id: &str, _details: &Fields) -> String {
        format!("app_id: {}", q(id))
    }
    fn draft_name(id: &str, details: &Fields) -> String {
        details.get("label").cloned().unwrap_or_else(|| id.to_string())
    }
}
