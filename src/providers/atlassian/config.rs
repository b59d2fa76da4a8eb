//! The `atlassian` adapter's playbook side: its settings and its two
//! credential kinds, `atlassian_api_token` (a managed account's API token,
//! shape "e": only a person creates one) and
//! `atlassian_service_account_credential` (a service account's OAuth 2.0
//! client credentials: two can live side by side, but only a person creates
//! one, so a rotation is a manual re-issue, then the old client is deleted).

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::playbook::model::{Limits, SecretRef};
use crate::playbook::rules::address_problem;
use crate::provider::kind::yaml_str as q;
use crate::provider::kind::{claimed_by_id, CheckCx, Fields, Kind, Problem, ProviderKind, Resolve};
use crate::provider::{Capabilities, InventoryItem, Provider, ProviderError};

/// An Atlassian Cloud organization: its admin APIs, one site's REST API (where
/// an API token is proven alive or dead) and the OAuth 2.0 token endpoint.
/// Each address is a setting so that the adapter runs unchanged against
/// Atlassian and against a simulator; a secret is only ever sent to these three.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AtlassianProviderConfig {
    /// The organization's id (Atlassian Administration › Settings › API keys shows it).
    pub org_id: String,
    /// keysweep's own login: an organization API key, sent as a Bearer token
    /// to the admin APIs only (`${env:ATLASSIAN_ADMIN_KEY}`). Create it
    /// without scopes: the user management API (revoking API tokens) refuses scoped keys.
    pub api_key: SecretRef,
    /// The site whose REST API authenticates API tokens, e.g. `https://acme.atlassian.net`.
    pub site_url: String,
    /// The admin APIs (organizations, user management, API access). Default `https://api.atlassian.com`.
    #[serde(default = "default_admin_url")]
    pub admin_url: String,
    /// The OAuth 2.0 authorization server (`/oauth/token`). Default `https://auth.atlassian.com`.
    #[serde(default = "default_auth_url")]
    pub auth_url: String,
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

fn default_admin_url() -> String {
    "https://api.atlassian.com".into()
}
fn default_auth_url() -> String {
    "https://auth.atlassian.com".into()
}

#[async_trait]
impl ProviderKind for AtlassianProviderConfig {
    fn limits(&self) -> &Limits {
        &self.limits
    }
    fn secret_refs(&self) -> Vec<&SecretRef> {
        vec![&self.api_key]
    }
    fn check(&self, allow_link_local: bool) -> Vec<Problem> {
        let mut out = vec![];
        for (key, url) in [("admin_url", &self.admin_url), ("site_url", &self.site_url), ("auth_url", &self.auth_url)] {
            if let Some((m, h)) = address_problem(url, &["https", "http"], allow_link_local) {
                out.push(Problem::new(&[key], m, h));
            } else {
                out.extend(crate::provider::kind::plaintext_problems(&[(&[key], url)], self.allow_plaintext));
            }
        }
        out.extend(self.tls.check_http(&["tls"]));
        if !safe_id(&self.org_id) {
            out.push(Problem::new(&["org_id"], "`org_id` is not an organization id", "copy it from Atlassian Administration › Settings › API keys"));
        }
        out
    }
    fn warnings(&self) -> Vec<String> {
        let mut out = crate::provider::kind::plaintext_warnings(
            &[&self.admin_url, &self.site_url, &self.auth_url],
            self.allow_plaintext,
            "the admin key, API tokens and client secrets",
        );
        out.extend(self.tls.warnings());
        out
    }
    async fn connect(&self, name: &str, resolve: &Resolve<'_>) -> Result<Arc<dyn Provider>, ProviderError> {
        Ok(Arc::new(super::AtlassianProvider::connect(name, self, resolve).await?))
    }
    fn secret_keys() -> &'static [&'static str] {
        &["api_key"]
    }
}

/// Whether `s` can be one segment of a request path: letters, digits and
/// `-_:.~`, and not a dot segment. An id from a playbook or a store can
/// never move a request to another endpoint (`../` towards the org-wide
/// bulk revoke, say).
pub fn safe_id(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.' | '~')) && !s.chars().all(|c| c == '.')
}

fn id_problem(at: &str, v: Option<&String>, what: &str) -> Option<Problem> {
    v.filter(|v| !safe_id(v)).map(|_| {
        Problem::new(
            &[at],
            format!("`{at}` is not {what}"),
            "ids hold only letters, digits and `-_:.~`; copy it from Atlassian Administration or `keysweep discover`",
        )
    })
}

/// A managed account's API token (Basic `email:token` on a site's REST API).
/// Atlassian has no API that creates one: a rotation is re-issued by a person
/// (`manual:`), then keysweep revokes the old token through the user
/// management API and proves it dead; a revocation is all API.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AtlassianApiTokenTarget {
    /// The email address of the managed account that owns the token: the
    /// login its Basic authentication (and keysweep's probe) uses.
    pub email: String,
    /// The account's id (`712020:…`). Found from the organization's managed
    /// accounts when absent (one listing of them); a replacement must act as this account.
    pub account_id: Option<String>,
    /// The token's id as first listed; after a rotation the store's
    /// `token_id` field names the token in service.
    pub token_id: Option<String>,
    /// The token's label, to find it when no id is given (and to tell a
    /// re-issued token from the account's others).
    pub label: Option<String>,
}

/// A service account's OAuth 2.0 credential (client credentials). Creating
/// one is a UI action in Atlassian Administration, so a rotation is manual:
/// a person creates the second credential and supplies its secret with
/// `keysweep supply … --field client_id=…`; keysweep checks it belongs to the
/// same service account, tests it, promotes it, deletes the old client and
/// proves it dead. A revocation deletes the client.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AtlassianServiceAccountCredentialTarget {
    /// The service account's id (`id` in Atlassian's API Access listing of service accounts).
    pub service_account_id: String,
    /// The credential's OAuth client id as first listed; after a rotation the
    /// store's `client_id` field names the one in service. Absent: the
    /// service account's only credential.
    pub client_id: Option<String>,
}

pub const TOKEN_ID: &str = "token_id";
pub const ACCOUNT_ID: &str = "account_id";
pub const CLIENT_ID: &str = "client_id";

/// `atlassian_api_token`.
pub struct ApiTokenKind;

impl Kind for ApiTokenKind {
    type Target = AtlassianApiTokenTarget;
    fn capabilities() -> Capabilities {
        Capabilities { rotate: false, revoke: true, mints: false, verify_dead: true, needs_store: true }
    }
    fn check(t: &AtlassianApiTokenTarget, cx: &CheckCx) -> Vec<Problem> {
        let mut out = vec![];
        let e = t.email.trim();
        if e.is_empty() || !e.contains('@') || e.contains(':') || e.chars().any(char::is_whitespace) {
            out.push(Problem::new(
                &["email"],
                "`email` is not an email address",
                "write the managed account's email, e.g. `svc-smartsheet@acme.example`",
            ));
        }
        if t.token_id.is_none() && t.label.is_none() {
            out.push(Problem::new(&[], format!("`{}` names no token", cx.id), "add `token_id:` or the token's `label:`"));
        }
        out.extend(id_problem("token_id", t.token_id.as_ref(), "a token id"));
        out.extend(id_problem("account_id", t.account_id.as_ref(), "an account id"));
        out
    }
    fn identity_in_store(_t: &AtlassianApiTokenTarget) -> bool {
        true
    }
    fn claimed(t: &AtlassianApiTokenTarget, stored: Option<&Fields>) -> Vec<(String, bool)> {
        claimed_by_id(stored, TOKEN_ID, t.token_id.as_ref())
    }
    fn takes_unnamed(t: &AtlassianApiTokenTarget, item: &InventoryItem) -> bool {
        t.label.is_some()
            && item.details.get("label") == t.label.as_ref()
            && item.details.get("email").is_some_and(|e| e.eq_ignore_ascii_case(t.email.trim()))
    }
    fn unnamed_label(t: &AtlassianApiTokenTarget) -> Option<String> {
        t.label.as_ref().map(|l| format!("token labelled `{l}` of {}", t.email))
    }
    fn draft(id: &str, details: &Fields) -> String {
        let mut s = format!("email: {}, token_id: {}", q(details.get("email").map(String::as_str).unwrap_or("")), q(id));
        for key in [ACCOUNT_ID, "label"] {
            if let Some(v) = details.get(key).filter(|v| !v.is_empty()) {
                s.push_str(&format!(", {key}: {}", q(v)));
            }
        }
        s
    }
    fn draft_name(id: &str, details: &Fields) -> String {
        details.get("label").filter(|l| !l.is_empty()).cloned().unwrap_or_else(|| id.to_string())
    }
}

/// `atlassian_service_account_credential`.
pub struct ServiceAccountCredentialKind;

impl Kind for ServiceAccountCredentialKind {
    type Target = AtlassianServiceAccountCredentialTarget;
    /// No API creates a credential (rotation needs `manual:`); deleting one
    /// is the revocation, and the end of a rotation.
    fn capabilities() -> Capabilities {
        Capabilities { rotate: false, revoke: true, mints: false, verify_dead: true, needs_store: true }
    }
    fn check(t: &AtlassianServiceAccountCredentialTarget, _cx: &CheckCx) -> Vec<Problem> {
        let mut out = vec![];
        if !safe_id(&t.service_account_id) {
            out.push(Problem::new(
                &["service_account_id"],
                "`service_account_id` is not a service account id",
                "copy the `id` from Atlassian Administration › Directory › Service accounts or `keysweep discover`",
            ));
        }
        out.extend(id_problem(CLIENT_ID, t.client_id.as_ref(), "an OAuth client id"));
        out
    }
    fn identity_in_store(_t: &AtlassianServiceAccountCredentialTarget) -> bool {
        true
    }
    fn claimed(t: &AtlassianServiceAccountCredentialTarget, stored: Option<&Fields>) -> Vec<(String, bool)> {
        claimed_by_id(stored, CLIENT_ID, t.client_id.as_ref())
    }
    fn takes_unnamed(t: &AtlassianServiceAccountCredentialTarget, item: &InventoryItem) -> bool {
        item.details.get("service_account_id") == Some(&t.service_account_id)
    }
    fn unnamed_label(t: &AtlassianServiceAccountCredentialTarget) -> Option<String> {
        Some(format!("credential of service account {}", t.service_account_id))
    }
    fn draft(id: &str, details: &Fields) -> String {
        format!("service_account_id: {}, client_id: {}", q(details.get("service_account_id").map(String::as_str).unwrap_or("")), q(id))
    }
    fn draft_name(id: &str, details: &Fields) -> String {
        match (details.get("service_account"), details.get("name")) {
            (Some(sa), Some(n)) if !sa.is_empty() && !n.is_empty() => format!("{sa}-{n}"),
            _ => id.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::safe_id;

    #[test]
    fn ids_never_leave_their_path_segment() {
        for ok in ["712020:8b3f0c2a-1d7e-4c55-9a3e-2f6d1b0c9e11", "a1B2c3", "5b10ac8d82e05b22cc7d4ef5", "x.y"] {
            assert!(safe_id(ok), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "../../admin/api-access/v1/orgs/o/api-tokens", "a?b", "a#b", "a%2Fb", "a b"] {
            assert!(!safe_id(bad), "{bad}");
        }
    }
}
