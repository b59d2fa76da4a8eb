//! `slack`: bot and user tokens of a Slack workspace, through the Web API
//! (`<api_url>/api/<method>`). Works unchanged against `https://slack.com`;
//! the tests run it against `sims/slack.py`, which follows Slack's method
//! pages (auth.test, auth.revoke, oauth.v2.access, users.list, users.info,
//! bots.info, team.integrationLogs, team.accessLogs) and its token-rotation
//! guide.
//!
//! **What Slack offers, and what follows from it.**
//! - Slack lists no tokens and gives them no ids. A token is known by what
//!   `auth.test` says it acts as (team, member, and for a bot its app) and by
//!   a fingerprint keysweep keeps beside it in the store (`token_fp`: the
//!   first 16 hex digits of its SHA-256; never the token).
//! - `auth.revoke` revokes the token it is *presented with*; there is no
//!   admin call that revokes someone else's token by id. So retiring needs
//!   the old value: the store's version of it (the engine hands it over,
//!   see `Provider::retire_with`), or `token: ${env:VAR}` in the target for a
//!   leaked token in hand. Before revoking, keysweep asks `auth.test` who the
//!   value acts as and revokes only a token of the credential's own member
//!   and app.
//! - Dead is Slack's own refusal, HTTP 200 `{"ok":false}` with `token_revoked`
//!   or `account_inactive` — and `token_expired` for a rotating access token,
//!   which Slack never accepts again once expired. `invalid_auth` is *not*:
//!   Slack also answers it to a live token used from outside an IP
//!   allow-list. `ratelimited`/429, 5xx, `internal_error`, `fatal_error` and
//!   anything not shaped like Slack's `{"ok":…}` JSON are unknown.
//!   Admin-side, a revoked (non-rotating) bot token deactivates its bot user:
//!   `users.info` showing the bot user `deleted` proves its token dead; a
//!   user token leaves no admin-side trace (unprovable without its value).
//! - **Non-rotating tokens** (`slack_token`) have no API that issues a
//!   replacement: a rotation is a person's (`manual:`), then `identify` asks
//!   `auth.test` who the supplied value is — the same team, member and app as
//!   the old one, never another, never a rotating token, never keysweep's own.
//! - **Rotating tokens** (`slack_rotating_token`): `oauth.v2.access` with
//!   `grant_type=refresh_token` and the app's client credentials (HTTP Basic,
//!   as Slack recommends) returns a new access token *and* a new refresh
//!   token; the one used is spent (after a short grace). The refresh token in
//!   service is read from the store's `refresh_token` field beside the access
//!   token (`Provider::mint_from`); the new pair is the minted value (access
//!   token as the value, refresh token as a field) that the engine stages
//!   before anything relies on it, and the claim records the mint before it is
//!   sent. Because the refresh spends the old refresh token, a pending pair
//!   another run left is adopted, never withdrawn (`mint_spends_old`). A
//!   refresh whose answer is lost is retried within the limits (inside Slack's
//!   grace the same refresh token mints again); a refresh token Slack refuses
//!   is reported as spent with what to do (reinstall the app), never retried
//!   as if nothing happened.
//!
//! This adapter uses keysweep's own login (an admin's user token) only for
//! `auth.test` at connect, the inventory, and the admin-side proof
//! (`users.info`, `bots.info`); every other call presents the credential's
//! own token.

pub mod config;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, RwLock};

use async_trait::async_trait;
use base64::Engine as _;
use reqwest::header::AUTHORIZATION;
use reqwest::Method;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::playbook::model::{SecretRef, Target};
use crate::provider::http::{Answer, HttpClient, Paging, Request, VendorShape};
use crate::provider::limits::{Gate, RetryPolicy};
use crate::provider::{ErrorKind, Handle, InventoryItem, Minted, Provider, ProviderError, Verdict};
use crate::secret::{Delivered, ExposeSecret, SecretString};
use config::{
    SlackProviderConfig, SlackRotatingTokenTarget, SlackTokenTarget, TokenType, APP_ID, EXPIRES_AT, REFRESH_TOKEN, TEAM_ID, TOKEN_FP, USER_ID,
};

const VENDOR: &str = "Slack";
/// A handle's `token_fp` when the store kept the token without keysweep's
/// fields (its first rotation): the token is told by its value then.
const UNRECORDED: &str = "unrecorded";

/// Slack's own answers: `{"ok": false, "error": "<code>"}` for errors (429 and
/// `unknown_method` included).
fn slack_error(_status: u16, body: &Value) -> bool {
    body.get("ok") == Some(&Value::Bool(false)) && body.get("error").is_some_and(Value::is_string)
}

fn shape() -> VendorShape {
    VendorShape { error_body: slack_error, arrays: false }
}

fn err(kind: ErrorKind, op: &'static str, msg: impl Into<String>) -> ProviderError {
    ProviderError::new(kind, op, msg.into())
}

/// The first 16 hex digits of a token's SHA-256: names it without holding it.
pub fn fingerprint(value: &str) -> String {
    let d = Sha256::digest(value.as_bytes());
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Slack's `ok`, if the answer carries it.
fn ok_of(a: &Answer) -> Option<bool> {
    a.body.get("ok").and_then(Value::as_bool)
}

/// Slack's error code, only if it looks like one (never quoting a body).
fn code(a: &Answer) -> &str {
    match str_at(&a.body, "error") {
        Some(c) if !c.is_empty() && c.len() <= 64 && c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit()) => c,
        Some(_) => "(unrecognised error code)",
        None => "",
    }
}

/// Errors Slack answers when it could not act now: worth another attempt.
fn transient_code(c: &str) -> bool {
    matches!(c, "ratelimited" | "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout" | "team_added_to_org")
}

fn rfc3339(epoch: i64) -> Option<String> {
    chrono::DateTime::from_timestamp(epoch, 0).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// Whether an access-log user agent is a program's rather than a person's
/// Slack client or browser (a token in use by a script or service).
fn api_user_agent(ua: &str) -> bool {
    let l = ua.to_ascii_lowercase();
    !(l.is_empty()
        || l.starts_with("mozilla/")
        || l.contains("slack_ssb")
        || l.contains("slackdesktop")
        || l.contains("electron")
        || l.contains("com.tinyspeck")
        || l.starts_with("slack/"))
}

/// Who a token acts as, from `auth.test`.
#[derive(Debug, Clone, Default)]
struct Identity {
    team_id: String,
    user_id: String,
    bot_id: Option<String>,
    app_id: Option<String>,
}

enum K<'a> {
    Token(&'a SlackTokenTarget),
    Rotating(&'a SlackRotatingTokenTarget),
}

impl K<'_> {
    fn user_id(&self) -> &str {
        match self {
            K::Token(t) => &t.user_id,
            K::Rotating(t) => &t.user_id,
        }
    }
    fn app_id(&self) -> Option<&str> {
        match self {
            K::Token(t) => t.app_id.as_deref(),
            K::Rotating(t) => Some(&t.app_id),
        }
    }
    fn token_type(&self) -> TokenType {
        match self {
            K::Token(t) => t.token_type,
            K::Rotating(t) => t.token_type,
        }
    }
}

fn kind_of<'a>(t: &'a Target, op: &'static str) -> Result<K<'a>, ProviderError> {
    match t {
        Target::SlackToken(t) => Ok(K::Token(t)),
        Target::SlackRotatingToken(t) => Ok(K::Rotating(t)),
        other => Err(err(ErrorKind::Unsupported, op, format!("a slack provider does not hold `{}`", other.kind()))),
    }
}

fn fp_of(h: &Handle) -> Option<&str> {
    h.get(TOKEN_FP).map(String::as_str).filter(|s| !s.is_empty() && *s != UNRECORDED)
}

pub struct SlackProvider {
    name: String,
    http: HttpClient,
    retry: RetryPolicy,
    /// keysweep's own token; replaced when its own token is rotated.
    login: RwLock<SecretString>,
    /// Who keysweep's own token acts as (its team is the workspace's).
    own: Identity,
    own_fp: RwLock<String>,
    /// Client credentials of the apps with token rotation on, by app id.
    apps: BTreeMap<String, (String, SecretString)>,
    /// The newest refresh token this process was given per installation
    /// (app, member): it supersedes the store's, which that refresh spent.
    newest_refresh: Mutex<BTreeMap<(String, String), SecretString>>,
    /// Access tokens this process minted, by nonce, for `cleanup_minted`.
    minted: Mutex<BTreeMap<String, Vec<(String, SecretString)>>>,
}

impl SlackProvider {
    pub async fn connect(name: &str, cfg: &SlackProviderConfig, resolve: &crate::provider::kind::Resolve<'_>) -> Result<Self, ProviderError> {
        let token = resolve(&cfg.token)?;
        let mut apps = BTreeMap::new();
        for a in &cfg.rotating_apps {
            apps.insert(a.app_id.clone(), (a.client_id.clone(), resolve(&a.client_secret)?));
        }
        let http = HttpClient::new(VENDOR, &cfg.api_url, &[], &cfg.limits, shape(), &cfg.tls)?;
        let mut p = SlackProvider {
            name: name.to_string(),
            http,
            retry: Gate::new(&cfg.limits).retry_policy(),
            own_fp: RwLock::new(fingerprint(token.expose_secret())),
            login: RwLock::new(token),
            own: Identity::default(),
            apps,
            newest_refresh: Mutex::new(BTreeMap::new()),
            minted: Mutex::new(BTreeMap::new()),
        };
        let login = p.auth();
        let a = p.method("auth.test", &login, &[], "slack.connect", true).await?;
        if ok_of(&a) != Some(true) {
            return Err(err(ErrorKind::Unauthenticated, "slack.connect", format!("auth.test with keysweep's own token answered `{}`", code(&a))));
        }
        p.own = p.identity_of(&a).await;
        if p.own.team_id.is_empty() || p.own.user_id.is_empty() {
            return Err(err(ErrorKind::Unavailable, "slack.connect", "auth.test answered without team_id/user_id"));
        }
        Ok(p)
    }

    fn auth(&self) -> SecretString {
        self.login.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// One Slack method called with `token` (Bearer) and form arguments.
    /// `retried`: 429/5xx, Slack's transient errors and foreign answers are
    /// retried within the limits (for idempotent calls only). The answer
    /// carries Slack's `ok`, or this is an error.
    async fn method(
        &self,
        method: &str,
        token: &SecretString,
        form: &[(&str, &str)],
        op: &'static str,
        retried: bool,
    ) -> Result<Answer, ProviderError> {
        let bearer = &SecretString::from(format!("Bearer {}", token.expose_secret()));
        let target = &format!("/api/{method}");
        let once = move || async move {
            let req = Request { form: Some(form), ..Request::new(Method::POST, target).secret(AUTHORIZATION, bearer) };
            let a = self.http.send(op, &req).await?;
            if ok_of(&a).is_none() {
                return Err(err(
                    ErrorKind::Unavailable,
                    op,
                    format!("{method}: HTTP {} JSON without Slack's `ok`: not an answer from Slack", a.status),
                ));
            }
            if let Some(e) =
                crate::provider::http::transient(op, a.status, a.retry_after, || format!("{method}: HTTP {} `{}` from Slack", a.status, code(&a)))
            {
                return Err(e);
            }
            if ok_of(&a) == Some(false) && transient_code(code(&a)) {
                return Err(err(ErrorKind::Unavailable, op, format!("{method}: Slack answered `{}`", code(&a))).with_retry_after(a.retry_after));
            }
            Ok(a)
        };
        if retried {
            crate::provider::limits::retry(self.retry, once).await
        } else {
            once().await
        }
    }

    /// `auth.test` with `value`, one attempt (a probe: the engine repeats).
    async fn probe(&self, value: &SecretString, op: &'static str) -> Result<Answer, Verdict> {
        self.method("auth.test", value, &[], op, false).await.map_err(|e| Verdict::Unknown(e.to_string()))
    }

    /// Who an `ok:true` auth.test answer says the token acts as. A bot's app
    /// comes from the answer, else from `bots.info`.
    async fn identity_of(&self, a: &Answer) -> Identity {
        let mut id = Identity {
            team_id: str_at(&a.body, "team_id").unwrap_or_default().to_string(),
            user_id: str_at(&a.body, "user_id").unwrap_or_default().to_string(),
            bot_id: str_at(&a.body, "bot_id").map(str::to_string),
            app_id: str_at(&a.body, "app_id").map(str::to_string),
        };
        if id.app_id.is_none() {
            if let Some(bot) = id.bot_id.clone() {
                let login = self.auth();
                if let Ok(b) = self.method("bots.info", &login, &[("bot", &bot)], "slack.bots_info", true).await {
                    id.app_id = b.body.pointer("/bot/app_id").and_then(Value::as_str).map(str::to_string);
                }
            }
        }
        id
    }

    /// Whether `id` is the credential's: its team, member, kind of token and
    /// (where known) app. `Err(why not)`.
    fn same_identity(&self, k: &K<'_>, old: &Handle, id: &Identity) -> Result<(), String> {
        let team = old.get(TEAM_ID).map(String::as_str).unwrap_or(&self.own.team_id);
        if id.team_id != team {
            return Err(format!("it belongs to team {}, not {team}", id.team_id));
        }
        if id.user_id != k.user_id() {
            return Err(format!("it acts as {}, not as {}", id.user_id, k.user_id()));
        }
        let is_bot = id.bot_id.is_some();
        match (k.token_type(), is_bot) {
            (TokenType::Bot, false) => return Err("it is a user token, not a bot token".into()),
            (TokenType::User, true) => return Err("it is a bot token, not a user token".into()),
            _ => {}
        }
        if let (Some(want), true) = (k.app_id(), is_bot) {
            if id.app_id.as_deref() != Some(want) {
                return Err(format!("it belongs to app {}, not {want}", id.app_id.as_deref().unwrap_or("?")));
            }
        }
        Ok(())
    }

    /// Slack's verdict on a probe's answer.
    fn verdict(a: &Answer, what: &str) -> Verdict {
        match (a.status, ok_of(a), code(a)) {
            (200, Some(true), _) => Verdict::Alive(format!("Slack accepted {what} (auth.test as {})", str_at(&a.body, "user_id").unwrap_or("?"))),
            (200, Some(false), c @ ("token_revoked" | "account_inactive")) => {
                Verdict::Dead(format!("Slack refused {what}: auth.test answered `{c}`"))
            }
            (200, Some(false), "token_expired") => Verdict::Dead(format!(
                "Slack refused {what}: auth.test answered `token_expired` (an expired rotating access token is never accepted again)"
            )),
            (200, Some(false), "invalid_auth") => Verdict::Unknown(format!(
                "Slack answered `invalid_auth` for {what}: also its answer to a live token used from outside an IP allow-list, so not proof"
            )),
            (s, _, c) => Verdict::Unknown(format!("Slack answered HTTP {s} `{c}` for {what}: not a refusal of the token itself")),
        }
    }

    /// The handle of a token keysweep holds, from what auth.test said.
    fn handle_of(id: &Identity, value: &SecretString, k: &K<'_>) -> Handle {
        let mut h = Handle::from([
            (TEAM_ID.to_string(), id.team_id.clone()),
            (USER_ID.to_string(), id.user_id.clone()),
            (TOKEN_FP.to_string(), fingerprint(value.expose_secret())),
        ]);
        if let Some(a) = id.app_id.clone().or_else(|| k.app_id().map(str::to_string)) {
            h.insert(APP_ID.into(), a);
        }
        h
    }

    /// The value to present for the token `old` names: the one keysweep
    /// holds (`known`, checked against the handle's fingerprint), else the
    /// target's `token: ${env:…}`.
    fn value_for(&self, k: &K<'_>, old: &Handle, known: Option<&Delivered>, op: &'static str) -> Result<SecretString, ProviderError> {
        let from_env = match k {
            K::Token(t) => match &t.token {
                Some(r @ SecretRef::Env(_)) => Some(crate::provider::registry::resolve_secret(r)?),
                _ => None,
            },
            K::Rotating(_) => None,
        };
        let candidates = known.map(|d| d.value.clone()).into_iter().chain(from_env);
        let mut mismatched = false;
        for v in candidates {
            match fp_of(old) {
                Some(fp) if fp != fingerprint(v.expose_secret()) => mismatched = true,
                _ => return Ok(v),
            }
        }
        Err(err(
            ErrorKind::Config,
            op,
            if mismatched {
                "the value keysweep holds is not the token this credential names (its fingerprint differs): nothing presented to Slack".to_string()
            } else {
                "Slack revokes a token only when it is presented (auth.revoke), and no store holds this one: name the store that holds it with `deliver_to:` (its current value), or give a leaked token as `token: ${env:VAR}`".to_string()
            },
        ))
    }

    /// `auth.revoke` with `value`; gone already is success. `who` names it in errors.
    async fn revoke_value(&self, value: &SecretString, who: &str, op: &'static str) -> Result<(), ProviderError> {
        let a = self.method("auth.revoke", value, &[], op, true).await?;
        match (ok_of(&a), code(&a)) {
            (Some(true), _) => Ok(()),
            (Some(false), "token_revoked" | "account_inactive" | "token_expired") => Ok(()),
            (_, c) => Err(err(
                if c == "invalid_auth" { ErrorKind::Unauthenticated } else { ErrorKind::Other },
                op,
                format!("auth.revoke of {who} answered `{c}`; nothing was revoked"),
            )),
        }
    }

    fn remember_minted(&self, nonce: &str, fp: String, value: &SecretString) {
        self.minted.lock().unwrap_or_else(|e| e.into_inner()).entry(nonce.to_string()).or_default().push((fp, value.clone()));
    }

    /// Whether `refresh` is the newest refresh token this process holds for
    /// the installation (the only live one after a refresh).
    fn is_newest_refresh(&self, key: &(String, String), refresh: &str) -> bool {
        self.newest_refresh.lock().unwrap_or_else(|e| e.into_inner()).get(key).is_some_and(|r| r.expose_secret() == refresh)
    }

    /// `oauth.v2.access grant_type=refresh_token`: attempts within the
    /// limits. An attempt whose answer never came may have been acted on
    /// (the refresh token spent); inside Slack's grace the same refresh token
    /// mints again, after it Slack refuses it and this says so.
    async fn refresh(&self, t: &SlackRotatingTokenTarget, refresh: &SecretString, op: &'static str) -> Result<Answer, ProviderError> {
        let (client_id, client_secret) = self.apps.get(&t.app_id).ok_or_else(|| {
            err(
                ErrorKind::Config,
                op,
                format!(
                    "app {} is not among provider `{}`'s `rotating_apps`: keysweep has no client credentials to refresh its token with",
                    t.app_id, self.name
                ),
            )
        })?;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:{}", client_secret.expose_secret()));
        let basic = SecretString::from(format!("Basic {basic}"));
        let form: [(&str, &str); 2] = [("grant_type", "refresh_token"), ("refresh_token", refresh.expose_secret())];
        let mut lost = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let req = Request { form: Some(&form), ..Request::new(Method::POST, "/api/oauth.v2.access").secret(AUTHORIZATION, &basic) };
            let outcome = match self.http.send(op, &req).await {
                Ok(a) if ok_of(&a).is_none() => {
                    Err((true, err(ErrorKind::Unavailable, op, format!("oauth.v2.access: HTTP {} JSON without Slack's `ok`", a.status))))
                }
                Ok(a) if a.status == 429 || a.status >= 500 || (ok_of(&a) == Some(false) && transient_code(code(&a))) => {
                    // Slack's own "not now": it did not act.
                    let kind = if a.status == 429 || code(&a) == "ratelimited" { ErrorKind::RateLimited } else { ErrorKind::Unavailable };
                    Err((false, err(kind, op, format!("oauth.v2.access: HTTP {} `{}`", a.status, code(&a))).with_retry_after(a.retry_after)))
                }
                Ok(a) => Ok(a),
                // No answer, or not Slack's: Slack may have acted.
                Err(e) => Err((e.is_temporary(), e)),
            };
            match outcome {
                Ok(a) if ok_of(&a) == Some(true) => return Ok(a),
                Ok(a) => {
                    let c = code(&a);
                    let e = match c {
                        "invalid_refresh_token" if lost => err(
                            ErrorKind::Conflict,
                            op,
                            format!(
                                "Slack spent the refresh token of app {} for {} on a refresh whose answer was lost on the way, and now refuses it (`invalid_refresh_token`): the new tokens never reached keysweep. The installation can no longer be refreshed: reinstall the app and store its new access and refresh tokens; the access token in service keeps working until it expires (12 hours at most)",
                                t.app_id, t.user_id
                            ),
                        ),
                        "invalid_refresh_token" => err(
                            ErrorKind::Conflict,
                            op,
                            format!(
                                "Slack refuses the refresh token stored for app {} / {} (`invalid_refresh_token`): it was spent by a refresh whose new tokens were never stored (a run stopped between the refresh and the store write, or the app refreshed by itself), or revoked. It can no longer be refreshed: reinstall the app and store its new access and refresh tokens; the access token in service works until it expires (12 hours at most)",
                                t.app_id, t.user_id
                            ),
                        ),
                        "invalid_client_id" | "bad_client_secret" | "invalid_grant_type" | "invalid_code" => {
                            err(ErrorKind::Config, op, format!("oauth.v2.access refused app {}'s client credentials or grant: `{c}`", t.app_id))
                        }
                        _ => err(ErrorKind::Other, op, format!("oauth.v2.access answered `{c}`")),
                    };
                    return Err(e);
                }
                Err((maybe_acted, e)) => {
                    lost |= maybe_acted;
                    if !e.is_temporary() || attempt >= self.retry.max_attempts {
                        if lost {
                            return Err(err(
                                e.kind,
                                op,
                                format!(
                                    "{e}; a refresh of app {} may have reached Slack without its answer reaching keysweep: if so the stored refresh token is spent and the next run reports it (reinstall the app then)",
                                    t.app_id
                                ),
                            ));
                        }
                        return Err(e);
                    }
                    tokio::time::sleep(self.retry.delay(attempt, e.retry_after)).await;
                }
            }
        }
    }
}

#[async_trait]
impl Provider for SlackProvider {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "slack"
    }

    /// From the playbook's ids, and from the store's `token_fp` where it
    /// records one (a token stored without it is `unrecorded`, told by its value).
    async fn current_handle(&self, target: &Target, stored: Option<&Handle>) -> Result<Handle, ProviderError> {
        let k = kind_of(target, "slack.current")?;
        let mut h = Handle::from([(TEAM_ID.to_string(), self.own.team_id.clone()), (USER_ID.to_string(), k.user_id().to_string())]);
        if let Some(a) = k.app_id() {
            h.insert(APP_ID.into(), a.to_string());
        }
        if let Some(s) = stored {
            if let Some(r) = s.get(REFRESH_TOKEN) {
                crate::secret::register_str(r);
            }
            for key in [TEAM_ID, USER_ID, APP_ID] {
                if let (Some(want), Some(got)) = (h.get(key), s.get(key)) {
                    if want != got {
                        return Err(err(
                            ErrorKind::Conflict,
                            "slack.current",
                            format!("the store's value is for {key} {got}, the playbook names {want}: fix the entry or the store"),
                        ));
                    }
                }
            }
            let fp = s.get(TOKEN_FP).filter(|f| !f.is_empty()).cloned().unwrap_or_else(|| UNRECORDED.to_string());
            h.insert(TOKEN_FP.into(), fp);
        }
        Ok(h)
    }

    fn handle_from_fields(&self, _target: &Target, fields: &BTreeMap<String, String>) -> Handle {
        // A refresh token beside the value is a secret: redacted from here on.
        if let Some(r) = fields.get(REFRESH_TOKEN) {
            crate::secret::register_str(r);
        }
        [TEAM_ID, USER_ID, APP_ID, TOKEN_FP].iter().filter_map(|k| fields.get(*k).map(|v| (k.to_string(), v.clone()))).collect()
    }

    async fn mint(&self, target: &Target, old: &Handle, nonce: &str) -> Result<Minted, ProviderError> {
        self.mint_from(target, old, None, nonce).await
    }

    async fn mint_from(&self, target: &Target, old: &Handle, current: Option<&Delivered>, nonce: &str) -> Result<Minted, ProviderError> {
        let op = "slack.refresh";
        let K::Rotating(t) = kind_of(target, op)? else {
            return Err(err(
                ErrorKind::Unsupported,
                op,
                "Slack has no API that issues a replacement for a non-rotating token: a person re-issues it (`manual:`)",
            ));
        };
        let key = (t.app_id.clone(), t.user_id.clone());
        let held = self.newest_refresh.lock().unwrap_or_else(|e| e.into_inner()).get(&key).cloned();
        let refresh = match held {
            Some(r) => r,
            None => {
                let r = current.and_then(|c| c.fields.get(REFRESH_TOKEN)).filter(|r| !r.is_empty()).ok_or_else(|| {
                    err(
                        ErrorKind::Config,
                        op,
                        format!("the store's current value for app {} / {} has no `{REFRESH_TOKEN}` field: store the refresh token beside the access token", t.app_id, t.user_id),
                    )
                })?;
                SecretString::from(r.clone())
            }
        };
        let a = self.refresh(t, &refresh, op).await?;
        // Both new tokens are secrets from here on (registered for redaction).
        let access = str_at(&a.body, "access_token").map(|s| SecretString::from(s.to_string()));
        let next = str_at(&a.body, "refresh_token").map(|s| SecretString::from(s.to_string()));
        let (Some(access), Some(next)) = (access, next) else {
            return Err(err(ErrorKind::Other, op, "oauth.v2.access answered ok without an access token and a refresh token"));
        };
        // From here the refresh token used is spent: the new one is the only way on.
        self.newest_refresh.lock().unwrap_or_else(|e| e.into_inner()).insert(key, next.clone());
        let team = a.body.pointer("/team/id").and_then(Value::as_str).unwrap_or_default().to_string();
        let member = match str_at(&a.body, "token_type") {
            Some("bot") => str_at(&a.body, "bot_user_id"),
            _ => a.body.pointer("/authed_user/id").and_then(Value::as_str),
        }
        .unwrap_or_default()
        .to_string();
        let want_type = if t.token_type == TokenType::Bot { "bot" } else { "user" };
        let expected_team = old.get(TEAM_ID).cloned().unwrap_or_else(|| self.own.team_id.clone());
        let mismatch = if str_at(&a.body, "app_id") != Some(t.app_id.as_str()) {
            Some(format!("app {}", str_at(&a.body, "app_id").unwrap_or("?")))
        } else if str_at(&a.body, "token_type") != Some(want_type) {
            Some(format!("a {} token", str_at(&a.body, "token_type").unwrap_or("?")))
        } else if member != t.user_id {
            Some(format!("member {member}"))
        } else if team != expected_team {
            Some(format!("team {team}"))
        } else {
            None
        };
        if let Some(what) = mismatch {
            let _ = self.revoke_value(&access, "a token minted for another installation", op).await;
            return Err(err(
                ErrorKind::Conflict,
                op,
                format!("oauth.v2.access answered with tokens for {what}, not app {} / {}: revoked, not delivered", t.app_id, t.user_id),
            ));
        }
        let fp = fingerprint(access.expose_secret());
        self.remember_minted(nonce, fp.clone(), &access);
        let expires = a.body.get("expires_in").and_then(Value::as_i64).and_then(|s| rfc3339(chrono::Utc::now().timestamp() + s));
        let mut fields = BTreeMap::from([
            (TEAM_ID.to_string(), team.clone()),
            (USER_ID.to_string(), member.clone()),
            (APP_ID.to_string(), t.app_id.clone()),
            (TOKEN_FP.to_string(), fp.clone()),
            (REFRESH_TOKEN.to_string(), next.expose_secret().to_string()),
            ("token_type".to_string(), want_type.to_string()),
        ]);
        if let Some(e) = expires {
            fields.insert(EXPIRES_AT.into(), e);
        }
        let handle = Handle::from([(TEAM_ID.into(), team), (USER_ID.into(), member), (APP_ID.into(), t.app_id.clone()), (TOKEN_FP.into(), fp)]);
        Ok(Minted { delivered: Delivered { value: access, fields }, handle })
    }

    fn mint_spends_old(&self, target: &Target) -> bool {
        matches!(target, Target::SlackRotatingToken(_))
    }

    /// Orphans this process minted under `nonce` (their values are known
    /// only here): revoked. Slack lists no tokens, so orphans of another
    /// process cannot be found; they expire within 12 hours.
    async fn cleanup_minted(&self, target: &Target, old: &Handle, nonce: &str, keep: Option<&Handle>) -> Result<usize, ProviderError> {
        if !matches!(target, Target::SlackRotatingToken(_)) {
            return Ok(0);
        }
        let spare: BTreeSet<&str> = [fp_of(old), keep.and_then(fp_of)].into_iter().flatten().collect();
        let mine = self.minted.lock().unwrap_or_else(|e| e.into_inner()).get(nonce).cloned().unwrap_or_default();
        if mine.is_empty() {
            tracing::warn!(provider = %self.name, "Slack lists no tokens: access tokens a stopped run may have minted cannot be found; they expire within 12 hours");
        }
        let mut n = 0;
        let mut left = vec![];
        for (fp, v) in mine {
            if spare.contains(fp.as_str()) {
                left.push((fp, v));
                continue;
            }
            self.revoke_value(&v, "an orphan access token", "slack.cleanup").await?;
            n += 1;
        }
        self.minted.lock().unwrap_or_else(|e| e.into_inner()).insert(nonce.to_string(), left);
        Ok(n)
    }

    async fn apply(&self, _target: &Target, _new: &Delivered) -> Result<(), ProviderError> {
        Err(err(ErrorKind::Unsupported, "slack.apply", "Slack issues its tokens itself; nothing is applied"))
    }

    async fn identify(&self, target: &Target, new: &Delivered, old: &Handle) -> Result<Handle, ProviderError> {
        let op = "slack.identify";
        let k = kind_of(target, op)?;
        if let K::Rotating(_) = k {
            return Err(err(
                ErrorKind::Unsupported,
                op,
                "a rotating token is refreshed by keysweep itself: a person's re-issued value would come without the refresh token keysweep needs; remove `manual:`",
            ));
        }
        if fp_of(old).is_none() && old.get(TOKEN_FP).map(String::as_str) != Some(UNRECORDED) {
            return Err(err(
                ErrorKind::Config,
                op,
                "no store holds the token in service: keysweep needs its value to revoke it (auth.revoke takes the token itself); write it to the store `deliver_to` names first",
            ));
        }
        if new.value.expose_secret().starts_with("xoxe.") {
            return Err(err(
                ErrorKind::Config,
                op,
                "it is a rotating access token (xoxe.…): its refresh token would be needed too; such apps are `slack_rotating_token` entries",
            ));
        }
        let fp = fingerprint(new.value.expose_secret());
        if fp_of(old) == Some(fp.as_str()) {
            return Err(err(ErrorKind::Conflict, op, "it is the token in service, not a re-issued one"));
        }
        if fp == *self.own_fp.read().unwrap_or_else(|e| e.into_inner()) && !self.is_own_login(target, old) {
            return Err(err(ErrorKind::Config, op, "it is keysweep's own login token, not a replacement for this credential"));
        }
        let a = match self.method("auth.test", &new.value, &[], op, true).await {
            Ok(a) => a,
            Err(e) => return Err(err(ErrorKind::Unavailable, op, format!("auth.test with it: {e}"))),
        };
        if ok_of(&a) != Some(true) {
            return Err(err(ErrorKind::Unauthenticated, op, format!("Slack does not accept it: auth.test answered `{}`", code(&a))));
        }
        let id = self.identity_of(&a).await;
        // Never another member, app or team: their scopes may be wider.
        self.same_identity(&k, old, &id).map_err(|why| err(ErrorKind::Config, op, format!("{why}: a replacement never acts as another identity")))?;
        Ok(Self::handle_of(&id, &new.value, &k))
    }

    async fn test(&self, target: &Target, new: &Delivered, handle: &Handle) -> Verdict {
        let k = match kind_of(target, "slack.test") {
            Ok(k) => k,
            Err(e) => return Verdict::Unknown(e.to_string()),
        };
        let what = format!("the new token ({})", fp_of(handle).unwrap_or("?"));
        let a = match self.probe(&new.value, "slack.test").await {
            Ok(a) => a,
            Err(v) => return v,
        };
        match Self::verdict(&a, &what) {
            Verdict::Alive(e) => {
                let id = self.identity_of(&a).await;
                match self.same_identity(&k, handle, &id) {
                    Ok(()) => Verdict::Alive(e),
                    Err(why) => Verdict::Unknown(format!("Slack accepted {what}, but {why}")),
                }
            }
            other => other,
        }
    }

    async fn retire(&self, target: &Target, old: &Handle) -> Result<(), ProviderError> {
        self.retire_with(target, old, None).await
    }

    fn retire_needs_value(&self, _target: &Target) -> bool {
        true
    }

    /// `auth.revoke` presented with the old token, after `auth.test` showed
    /// it is this credential's (a revoked one is already retired). For a
    /// rotating token, its spent refresh token is revoked too (closing
    /// Slack's grace), unless it is the newest this process holds.
    async fn retire_with(&self, target: &Target, old: &Handle, known: Option<&Delivered>) -> Result<(), ProviderError> {
        let op = "slack.revoke";
        let k = kind_of(target, op)?;
        let value = self.value_for(&k, old, known, op)?;
        let a = self.method("auth.test", &value, &[], op, true).await?;
        match (ok_of(&a), code(&a)) {
            (Some(true), _) => {
                let id = self.identity_of(&a).await;
                self.same_identity(&k, old, &id)
                    .map_err(|why| err(ErrorKind::Config, op, format!("refusing to revoke the value held for this credential: {why}")))?;
                if fingerprint(value.expose_secret()) == *self.own_fp.read().unwrap_or_else(|e| e.into_inner()) {
                    return Err(err(ErrorKind::Conflict, op, "refusing to revoke keysweep's own login token while it is in use"));
                }
                self.revoke_value(&value, &format!("the token of {}", k.user_id()), op).await?;
            }
            (Some(false), "token_revoked" | "account_inactive" | "token_expired") => {} // already gone
            (_, c) => {
                return Err(err(
                    ErrorKind::Unauthenticated,
                    op,
                    format!("auth.test answered `{c}` before the revocation (`invalid_auth` is also an IP allow-list refusal): nothing was revoked"),
                ))
            }
        }
        if let (K::Rotating(t), Some(r)) = (&k, known.and_then(|d| d.fields.get(REFRESH_TOKEN))) {
            let key = (t.app_id.clone(), t.user_id.clone());
            if self.is_newest_refresh(&key, r) {
                tracing::error!(
                    provider = %self.name, app = %t.app_id, member = %t.user_id,
                    "the refreshed tokens of this installation were not stored; Slack already spent the refresh token in service, so it can no longer be refreshed: reinstall the app before its access token expires"
                );
            } else {
                let r = SecretString::from(r.clone());
                if let Err(e) = self.revoke_value(&r, "the spent refresh token", op).await {
                    tracing::debug!(error = %e, "the old refresh token was not revoked (it is spent anyway)");
                }
            }
        }
        Ok(())
    }

    async fn verify_dead(&self, target: &Target, old: &Handle, old_value: Option<&SecretString>) -> Verdict {
        let op = "slack.verify";
        let k = match kind_of(target, op) {
            Ok(k) => k,
            Err(e) => return Verdict::Unknown(e.to_string()),
        };
        let what = format!("the old token of {} ({})", k.user_id(), fp_of(old).unwrap_or(UNRECORDED));
        let known = old_value.map(|v| Delivered { value: v.clone(), fields: BTreeMap::new() });
        if let Ok(v) = self.value_for(&k, old, known.as_ref(), op) {
            return match self.probe(&v, op).await {
                Ok(a) => Self::verdict(&a, &what),
                Err(v) => v,
            };
        }
        // Admin-side: only a bot token's revocation leaves a trace.
        match (&k, k.token_type()) {
            (K::Token(_), TokenType::Bot) => {
                let login = self.auth();
                match self.method("users.info", &login, &[("user", k.user_id())], op, false).await {
                    Ok(a) if ok_of(&a) == Some(true) => match a.body.pointer("/user/deleted").and_then(Value::as_bool) {
                        Some(true) => Verdict::Dead(format!(
                            "users.info shows bot user {} deactivated (Slack deactivates a bot user when its token is revoked): its token gets `account_inactive`",
                            k.user_id()
                        )),
                        Some(false) => Verdict::Unknown(format!(
                            "bot user {} is active; Slack shows nothing of one token admin-side: keep the old value in a store to prove it with auth.test",
                            k.user_id()
                        )),
                        None => Verdict::Unknown("users.info answered without `deleted`".into()),
                    },
                    Ok(a) => Verdict::Unknown(format!("users.info answered `{}`", code(&a))),
                    Err(e) => Verdict::Unknown(e.to_string()),
                }
            }
            _ => {
                // Said only of a Slack that answers: an outage is unknown.
                let login = self.auth();
                match self.method("auth.test", &login, &[], op, false).await {
                    Ok(a) if ok_of(&a) == Some(true) => Verdict::Unprovable(format!(
                        "Slack shows no admin-side trace of {what}, and no store holds its value to present to auth.test"
                    )),
                    Ok(a) => Verdict::Unknown(format!("keysweep's own auth.test answered `{}`", code(&a))),
                    Err(e) => Verdict::Unknown(e.to_string()),
                }
            }
        }
    }

    /// Bot users (each holds its app's bot token; a rotating one when the app
    /// is among `rotating_apps`), keysweep's own login, and the members whose
    /// `team.accessLogs` entries show a program's user agent (a user token in
    /// use). Install dates from `team.integrationLogs`. Slack lists no
    /// tokens: a user token never used from a program is not found.
    async fn inventory(&self) -> Result<Vec<InventoryItem>, ProviderError> {
        let login = self.auth();
        let pages = self
            .http
            .pages(
                "slack.users_list",
                Request::new(Method::GET, "/api/users.list?limit=200")
                    .secret(AUTHORIZATION, &SecretString::from(format!("Bearer {}", login.expose_secret()))),
                Paging::Cursor { pointer: "/response_metadata/next_cursor", param: "cursor" },
            )
            .await?;
        let mut members: Vec<Value> = vec![];
        for p in pages {
            if ok_of(&p) != Some(true) {
                return Err(err(
                    if transient_code(code(&p)) { ErrorKind::Unavailable } else { ErrorKind::PermissionDenied },
                    "slack.users_list",
                    format!("users.list answered `{}`", code(&p)),
                ));
            }
            members.extend(p.body.get("members").and_then(Value::as_array).cloned().unwrap_or_default());
        }
        let installed = self.install_dates().await;
        let api_use = self.api_use().await;
        let mut out = vec![];
        for m in &members {
            let id = str_at(m, "id").unwrap_or_default().to_string();
            if id.is_empty() || id == "USLACKBOT" || m.get("deleted") == Some(&Value::Bool(true)) {
                continue;
            }
            let name = str_at(m, "name").unwrap_or_default().to_string();
            let mut details = BTreeMap::from([("name".to_string(), name)]);
            if m.get("is_bot") == Some(&Value::Bool(true)) {
                let app = m.pointer("/profile/api_app_id").and_then(Value::as_str).unwrap_or_default().to_string();
                details.insert("token_type".into(), "bot".into());
                details.insert(APP_ID.into(), app.clone());
                details.insert("bot_id".into(), m.pointer("/profile/bot_id").and_then(Value::as_str).unwrap_or_default().to_string());
                details.insert("privileged".into(), "false".into());
                let kind = if self.apps.contains_key(&app) { "slack_rotating_token" } else { "slack_token" };
                let created = installed.get(&app).cloned();
                out.push(InventoryItem {
                    kind: kind.into(),
                    id,
                    created: created.clone(),
                    rotated: None,
                    last_used: None,
                    usage_tracked: false,
                    details,
                });
                continue;
            }
            let own = id == self.own.user_id;
            let used = api_use.get(&id);
            if !own && used.is_none() {
                continue;
            }
            let admin = m.get("is_admin") == Some(&Value::Bool(true)) || m.get("is_owner") == Some(&Value::Bool(true));
            details.insert("token_type".into(), "user".into());
            details.insert("privileged".into(), admin.to_string());
            if used.is_some() {
                details.insert("seen_in".into(), "team.accessLogs (a program's user agent)".into());
            }
            if own {
                // keysweep's own login: a long-lived credential like any other.
                details.insert("keysweep_login".into(), "true".into());
            }
            out.push(InventoryItem {
                kind: "slack_token".into(),
                id,
                created: None,
                rotated: None,
                // The member's latest access from a program: not one token's, so use is not tracked.
                last_used: used.and_then(|t| rfc3339(*t)),
                usage_tracked: false,
                details,
            });
        }
        Ok(out)
    }

    /// keysweep's own token: by its fingerprint, or — stored without one —
    /// a user token of keysweep's own member (worked last, and the session
    /// moves only to a token `auth.test` shows acts as that member).
    fn is_own_login(&self, target: &Target, old: &Handle) -> bool {
        let Target::SlackToken(t) = target else { return false };
        match fp_of(old) {
            Some(fp) => fp == *self.own_fp.read().unwrap_or_else(|e| e.into_inner()),
            None => t.token_type == TokenType::User && t.user_id == self.own.user_id && old.get(TOKEN_FP).is_some(),
        }
    }

    fn can_switch_login(&self, target: &Target) -> bool {
        matches!(target, Target::SlackToken(_))
    }

    async fn switch_login(&self, _target: &Target, new: &Delivered) -> Result<(), ProviderError> {
        let a = self.method("auth.test", &new.value, &[], "slack.switch_login", true).await?;
        if ok_of(&a) != Some(true) || str_at(&a.body, "user_id") != Some(self.own.user_id.as_str()) {
            return Err(err(
                ErrorKind::Unauthenticated,
                "slack.switch_login",
                format!("the new token answered `{}` or acts as another member", code(&a)),
            ));
        }
        *self.login.write().unwrap_or_else(|e| e.into_inner()) = new.value.clone();
        *self.own_fp.write().unwrap_or_else(|e| e.into_inner()) = fingerprint(new.value.expose_secret());
        Ok(())
    }

    fn request_count(&self) -> Option<u64> {
        Some(self.http.request_count())
    }

    fn adaptive(&self) -> Option<std::sync::Arc<crate::provider::adaptive::AdaptiveLimit>> {
        Some(self.http.adaptive())
    }
}

impl SlackProvider {
    /// When each app was last installed (`team.integrationLogs`, admin only):
    /// when its bot token was issued. Empty without the `admin` scope.
    async fn install_dates(&self) -> BTreeMap<String, String> {
        let login = self.auth();
        let bearer = SecretString::from(format!("Bearer {}", login.expose_secret()));
        let pages = self
            .http
            .pages(
                "slack.integration_logs",
                Request::new(Method::GET, "/api/team.integrationLogs?count=100").secret(AUTHORIZATION, &bearer),
                Paging::Page { param: "page", items: "/logs" },
            )
            .await;
        let mut out: BTreeMap<String, String> = BTreeMap::new();
        let Ok(pages) = pages else { return out };
        for p in pages.iter().take_while(|p| ok_of(p) == Some(true)) {
            for l in p.body.get("logs").and_then(Value::as_array).into_iter().flatten() {
                let (Some(app), Some("added")) = (str_at(l, "app_id"), str_at(l, "change_type")) else { continue };
                let date = str_at(l, "date").and_then(|d| d.parse::<i64>().ok()).and_then(rfc3339);
                if let Some(d) = date {
                    let e = out.entry(app.to_string()).or_default();
                    if d > *e {
                        *e = d;
                    }
                }
            }
        }
        out
    }

    /// Members whose `team.accessLogs` entries show a program's user agent,
    /// with the latest such access (epoch seconds). Empty without the `admin`
    /// scope or on a free plan (`paid_only`).
    async fn api_use(&self) -> BTreeMap<String, i64> {
        let login = self.auth();
        let bearer = SecretString::from(format!("Bearer {}", login.expose_secret()));
        let pages = self
            .http
            .pages(
                "slack.access_logs",
                Request::new(Method::GET, "/api/team.accessLogs?limit=1000").secret(AUTHORIZATION, &bearer),
                Paging::Cursor { pointer: "/response_metadata/next_cursor", param: "cursor" },
            )
            .await;
        let mut out: BTreeMap<String, i64> = BTreeMap::new();
        let Ok(pages) = pages else { return out };
        for p in pages.iter().take_while(|p| ok_of(p) == Some(true)) {
            for l in p.body.get("logins").and_then(Value::as_array).into_iter().flatten() {
                let (Some(user), Some(last)) = (str_at(l, "user_id"), l.get("date_last").and_then(Value::as_i64)) else { continue };
                if api_user_agent(str_at(l, "user_agent").unwrap_or_default()) {
                    let e = out.entry(user.to_string()).or_default();
                    *e = (*e).max(last);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_name_a_token_without_holding_it() {
        let f = fingerprint("xoxb-1-2-abc");
        assert_eq!(f.len(), 16);
        assert_eq!(f, fingerprint("xoxb-1-2-abc"));
        assert_ne!(f, fingerprint("xoxb-1-2-abd"));
        assert!(!f.contains("xoxb"));
    }

    #[test]
    fn programs_not_people_in_access_logs() {
        for ua in ["Python/3.11 slack_sdk/3.27", "curl/8.5.0", "Go-http-client/2.0", "@slack/web-api:7.0"] {
            assert!(api_user_agent(ua), "{ua}");
        }
        for ua in ["", "Mozilla/5.0 (Macintosh) AppleWebKit", "Slack/4.36 (darwin) Electron/27", "com.tinyspeck.chatlyio/23.10", "Slack_SSB/4.29"] {
            assert!(!api_user_agent(ua), "{ua}");
        }
    }

    fn answer(status: u16, body: Value) -> Answer {
        Answer { status, body, headers: Default::default(), retry_after: None }
    }

    #[test]
    fn only_slacks_own_refusals_are_dead() {
        let v = |s, b| SlackProvider::verdict(&answer(s, b), "t");
        assert!(matches!(v(200, serde_json::json!({"ok": false, "error": "token_revoked"})), Verdict::Dead(_)));
        assert!(matches!(v(200, serde_json::json!({"ok": false, "error": "account_inactive"})), Verdict::Dead(_)));
        assert!(matches!(v(200, serde_json::json!({"ok": true, "user_id": "U1"})), Verdict::Alive(_)));
        // An expired rotating access token: Slack's own refusal, and it never works again.
        assert!(matches!(v(200, serde_json::json!({"ok": false, "error": "token_expired"})), Verdict::Dead(_)));
        for (s, c) in [
            (200, "invalid_auth"),
            (200, "not_authed"),
            (200, "internal_error"),
            (200, "fatal_error"),
            (429, "ratelimited"),
            (503, "service_unavailable"),
        ] {
            assert!(matches!(v(s, serde_json::json!({"ok": false, "error": c})), Verdict::Unknown(_)), "{s} {c}");
        }
        // A refusal on a non-200 status is not Slack's documented shape of it.
        assert!(matches!(v(401, serde_json::json!({"ok": false, "error": "token_revoked"})), Verdict::Unknown(_)));
        // Error codes are never quoted unless they look like one.
        let a = answer(200, serde_json::json!({"ok": false, "error": "xoxb-123 <html>"}));
        assert_eq!(code(&a), "(unrecognised error code)");
    }
}
