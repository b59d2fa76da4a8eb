//! The `slack` adapter's playbook side: its settings and its two credential
//! kinds.
//!
//! - `slack_token`: a bot (`xoxb-`) or user (`xoxp-`) token that does not
//!   rotate. No Slack API issues a replacement (a person reinstalls the app or
//!   re-authorizes), so a rotation needs `manual:`; a revocation is all API:
//!   `auth.revoke` presented with the token itself (Slack has no token ids),
//!   proven by `auth.test` answering `token_revoked`/`account_inactive`.
//! - `slack_rotating_token`: the access token of an app with token rotation
//!   on (`xoxe.xoxb-1-…`/`xoxe.xoxp-1-…`, 12 hours). keysweep refreshes it
//!   with `oauth.v2.access grant_type=refresh_token`; the single-use refresh
//!   token lives beside the access token in the store.

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::playbook::model::{Action, Limits, SecretRef};
use crate::playbook::rules::address_problem;
use crate::provider::kind::yaml_str as q;
use crate::provider::kind::{CheckCx, Fields, Kind, Problem, ProviderKind, Resolve};
use crate::provider::{Capabilities, InventoryItem, Provider, ProviderError};

/// A Slack workspace, through the Web API (`<api_url>/api/<method>`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlackProviderConfig {
    /// Slack's Web API address: `https://slack.com` (methods are called at
    /// `<api_url>/api/<method>`; a test names its simulator here).
    pub api_url: String,
    /// keysweep's own login (`${env:SLACK_TOKEN}`): a user token (`xoxp-`) of a
    /// workspace admin with `users:read` (the inventory's `users.list`) and
    /// `admin` (`team.integrationLogs`, `team.accessLogs`: install dates and
    /// last access; without it the inventory has neither).
    pub token: SecretRef,
    /// Apps with token rotation on whose tokens keysweep refreshes
    /// (`slack_rotating_token`): their OAuth client credentials.
    #[serde(default)]
    pub rotating_apps: Vec<SlackRotatingApp>,
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

/// One app with token rotation on.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlackRotatingApp {
    /// The app's id (`A…`), as `auth.test` and `users.list` name it.
    pub app_id: String,
    /// The app's OAuth client id (Basic Information › App Credentials).
    pub client_id: String,
    /// The app's client secret (`${env:…}` or `${store:…}`).
    pub client_secret: SecretRef,
}

#[async_trait]
impl ProviderKind for SlackProviderConfig {
    fn limits(&self) -> &Limits {
        &self.limits
    }
    fn secret_refs(&self) -> Vec<&SecretRef> {
        let mut v = vec![&self.token];
        v.extend(self.rotating_apps.iter().map(|a| &a.client_secret));
        v
    }
    fn check(&self, allow_link_local: bool) -> Vec<Problem> {
        let mut out = vec![];
        if let Some((m, h)) = address_problem(&self.api_url, &["http", "https"], allow_link_local) {
            out.push(Problem::new(&["api_url"], m, h));
        } else {
            out.extend(crate::provider::kind::plaintext_problems(&[(&["api_url"], &self.api_url)], self.allow_plaintext));
        }
        out.extend(self.tls.check_http(&["tls"]));
        let mut seen = std::collections::BTreeSet::new();
        for (i, a) in self.rotating_apps.iter().enumerate() {
            let at = i.to_string();
            if a.app_id.trim().is_empty() || a.client_id.trim().is_empty() {
                out.push(Problem::new(
                    &["rotating_apps", &at],
                    "`app_id` and `client_id` must not be empty",
                    "copy them from the app's Basic Information page",
                ));
            }
            if !seen.insert(a.app_id.clone()) {
                out.push(Problem::new(&["rotating_apps", &at, "app_id"], format!("app `{}` is listed twice", a.app_id), "list each app once"));
            }
        }
        out
    }
    fn warnings(&self) -> Vec<String> {
        let mut out =
            crate::provider::kind::plaintext_warnings(&[&self.api_url], self.allow_plaintext, "the tokens keysweep logs in with, revokes and probes");
        out.extend(self.tls.warnings());
        out
    }
    async fn connect(&self, name: &str, resolve: &Resolve<'_>) -> Result<Arc<dyn Provider>, ProviderError> {
        Ok(Arc::new(super::SlackProvider::connect(name, self, resolve).await?))
    }
    fn secret_keys() -> &'static [&'static str] {
        &["token", "client_secret"]
    }
}

/// Whose token it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenType {
    /// A bot token: it acts as the app's bot user.
    Bot,
    /// A user token: it acts as a person who authorized the app.
    User,
}

/// A Slack bot or user token that does not rotate by itself.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlackTokenTarget {
    /// The member the token acts as, as `auth.test` names it (`user_id`):
    /// the app's bot user (`U…`) for a bot token, the person for a user token.
    pub user_id: String,
    /// `bot` or `user`.
    pub token_type: TokenType,
    /// The app the token belongs to (`A…`). Required for a bot token: a
    /// replacement must belong to the same app (never one with other scopes).
    pub app_id: Option<String>,
    /// For a revocation when no store holds the token (a leaked value in
    /// hand): `${env:VAR}`. A stored token is named by `deliver_to`.
    pub token: Option<SecretRef>,
}

/// The access token of an app with token rotation on.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlackRotatingTokenTarget {
    /// The app (`A…`); its client credentials are in the provider's `rotating_apps`.
    pub app_id: String,
    /// The member the token acts as: the app's bot user, or the person of a user token.
    pub user_id: String,
    /// `bot` or `user`.
    pub token_type: TokenType,
}

/// Public fields keysweep keeps beside a Slack token in its store.
pub const TEAM_ID: &str = "team_id";
pub const USER_ID: &str = "user_id";
pub const APP_ID: &str = "app_id";
pub const BOT_ID: &str = "bot_id";
/// The first 16 hex digits of the token's SHA-256: which token, without the token.
pub const TOKEN_FP: &str = "token_fp";
/// The refresh token of a rotating access token: a secret, kept in the store only.
pub const REFRESH_TOKEN: &str = "refresh_token";
/// When a rotating access token expires (RFC 3339).
pub const EXPIRES_AT: &str = "expires_at";

fn check_ids(user_id: &str, app_id: Option<&str>) -> Vec<Problem> {
    let mut out = vec![];
    if !user_id.starts_with(['U', 'W']) || user_id.len() < 3 {
        out.push(Problem::new(
            &["user_id"],
            format!("`{user_id}` is not a Slack member id"),
            "write the `user_id` auth.test answers for the token (U…)",
        ));
    }
    if let Some(a) = app_id.filter(|a| !a.starts_with('A') || a.len() < 3) {
        out.push(Problem::new(&["app_id"], format!("`{a}` is not a Slack app id"), "write the app's id (A…)"));
    }
    out
}

/// Items of a user token are not listed by Slack (no API lists tokens):
/// such an entry names none until the inventory finds its member's API use.
fn claimed(token_type: TokenType, user_id: &str) -> Vec<(String, bool)> {
    match token_type {
        TokenType::Bot => vec![(user_id.to_string(), true)],
        TokenType::User => vec![],
    }
}

fn draft(id: &str, details: &Fields) -> String {
    let mut s = format!("user_id: {}, token_type: {}", q(id), if details.get("token_type").is_some_and(|t| t == "user") { "user" } else { "bot" });
    if let Some(a) = details.get(APP_ID).filter(|a| !a.is_empty()) {
        s.push_str(&format!(", app_id: {}", q(a)));
    }
    s
}

/// `slack_token`.
pub struct TokenKind;

impl Kind for TokenKind {
    type Target = SlackTokenTarget;
    /// Not rotatable by API (a person re-issues it: `manual:`); revoked by API.
    fn capabilities() -> Capabilities {
        Capabilities { rotate: false, revoke: true, mints: false, verify_dead: true, needs_store: true }
    }
    fn check(t: &SlackTokenTarget, cx: &CheckCx) -> Vec<Problem> {
        let mut out = check_ids(&t.user_id, t.app_id.as_deref());
        if t.token_type == TokenType::Bot && t.app_id.is_none() {
            out.push(Problem::new(
                &[],
                format!("`{}` is a bot token without `app_id`", cx.id),
                "add the app's id (A…): a replacement must belong to the same app",
            ));
        }
        match &t.token {
            Some(SecretRef::Store { .. }) => out.push(Problem::new(
                &["token"],
                "`token` reads the environment only",
                "name the store that holds the token with `deliver_to:`, or write `token: ${env:VAR}`",
            )),
            Some(SecretRef::Env(_)) if cx.action == Action::Rotate => out.push(Problem::new(
                &["token"],
                "`token` is for a revocation only",
                "a rotated token is read from, and delivered to, the store `deliver_to` names",
            )),
            _ => {}
        }
        out
    }
    fn identity_in_store(_t: &SlackTokenTarget) -> bool {
        true
    }
    fn claimed(t: &SlackTokenTarget, _stored: Option<&Fields>) -> Vec<(String, bool)> {
        claimed(t.token_type, &t.user_id)
    }
    fn takes_unnamed(t: &SlackTokenTarget, item: &InventoryItem) -> bool {
        t.token_type == TokenType::User && item.id == t.user_id
    }
    fn draft(id: &str, details: &Fields) -> String {
        draft(id, details)
    }
    fn draft_name(id: &str, details: &Fields) -> String {
        details.get("name").cloned().unwrap_or_else(|| id.to_string())
    }
}

/// `slack_rotating_token`.
pub struct RotatingTokenKind;

impl Kind for RotatingTokenKind {
    type Target = SlackRotatingTokenTarget;
    /// Rotated by API (refreshed). Not revocable alone: a revoked access
    /// token leaves Slack no admin-side trace to prove it dead by, and the
    /// installation lives on in its refresh token; to cut an app off, revoke
    /// its tokens as `slack_token` entries or uninstall it.
    fn capabilities() -> Capabilities {
        Capabilities { rotate: true, revoke: false, mints: true, verify_dead: true, needs_store: true }
    }
    fn check(t: &SlackRotatingTokenTarget, cx: &CheckCx) -> Vec<Problem> {
        let mut out = check_ids(&t.user_id, Some(&t.app_id));
        if cx.manual {
            out.push(Problem::new(
                &[],
                format!("`{}` is refreshed by keysweep itself: `manual:` does not apply to `slack_rotating_token`", cx.id),
                "remove `manual:`; a value a person re-issues would come without the refresh token keysweep needs (after a reinstall, store the new access and refresh tokens in the store yourself)",
            ));
        }
        out
    }
    fn identity_in_store(_t: &SlackRotatingTokenTarget) -> bool {
        true
    }
    fn claimed(t: &SlackRotatingTokenTarget, _stored: Option<&Fields>) -> Vec<(String, bool)> {
        claimed(t.token_type, &t.user_id)
    }
    fn takes_unnamed(t: &SlackRotatingTokenTarget, item: &InventoryItem) -> bool {
        t.token_type == TokenType::User && item.id == t.user_id
    }
    fn draft(id: &str, details: &Fields) -> String {
        draft(id, details)
    }
    fn draft_name(id: &str, details: &Fields) -> String {
        details.get("name").cloned().unwrap_or_else(|| id.to_string())
    }
}
