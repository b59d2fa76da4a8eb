//! `atlassian`: managed accounts' API tokens and service accounts' OAuth 2.0
//! credentials of an Atlassian Cloud organization. Three hosts, each a
//! setting: the admin APIs (`api.atlassian.com`: organizations, user
//! management, API access), the site (`<site>.atlassian.net`, Jira's REST API)
//! and the OAuth 2.0 authorization server (`auth.atlassian.com`). One HTTP
//! client (one rate limit, one retry bound) serves all three and refuses any
//! other host; the admin key goes only to the admin APIs, a token only to the
//! site, a client secret only to the token endpoint. The tests run it against
//! `sims/atlassian.py`, which names the Atlassian pages it follows.
//!
//! - **API tokens** (`atlassian_api_token`, shape "e"): no API creates one. A
//!   rotation is re-issued by a person (`manual:`); keysweep identifies the
//!   supplied value (Basic `email:value` on `/rest/api/3/myself` must answer
//!   as the old token's account, then the account's token the login just
//!   used), revokes the old one (`DELETE /users/{account_id}/manage/api-tokens/{tokenId}`)
//!   and proves it dead. Listed per managed account with `lastAccess` as last use.
//! - **Service-account credentials** (`atlassian_service_account_credential`,
//!   dual): creating one is UI-only ("a session-only endpoint"), so a person
//!   creates the second one and supplies its secret with its client id; the
//!   new client must belong to the same service account (the API Access
//!   listing of that account's clients says so — the credential's scopes may
//!   not reach any product API that could tell), works at `/oauth/token`, is
//!   promoted, then the old client is deleted (`DELETE …/oauth-clients/{clientId}`).
//!
//! **Proof of death is Atlassian's own refusal, confirmed admin-side.** A
//! token is dead when the site answers its Basic login `401` with
//! `X-Seraph-LoginReason: AUTHENTICATED_FAILED` *and* the user management API
//! no longer lists it (a 401 alone also follows a wrong email or a
//! deactivated account); a client secret when `/oauth/token` answers `401
//! access_denied` *and* the client is gone (`404`). Without the old value, the
//! admin side alone: the token unlisted for its account, the client `404`.
//! Never proof: `403` with `X-Seraph-LoginReason: AUTHENTICATION_DENIED` (a
//! CAPTCHA: the login was refused without the token being checked), a `200`
//! carrying `AUTHENTICATED_FAILED` (the request ran anonymously), 429, 5xx,
//! or anything not shaped like Atlassian's answers (a WAF's page). Each probe
//! with a dead token is a failed login that counts towards the account's
//! CAPTCHA, so a verification probes at most once per attempt and stops at
//! the first proof; `verify: { probe_old: false }` proves admin-side only.
//!
//! **The org-wide bulk revoke** (`DELETE /admin/api-access/v1/orgs/{orgId}/api-tokens`,
//! "revokes all managed user API tokens") is not implemented, and the
//! adapter refuses to send any `DELETE` to a collection of API tokens, so no
//! id read from a playbook or a store can turn a revocation into it.

pub mod config;

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use base64::Engine as _;
use reqwest::header::{HeaderMap, AUTHORIZATION};
use reqwest::Method;
use serde_json::{json, Value};

use crate::playbook::model::Target;
use crate::provider::http::{status_error, Answer, HttpClient, Paging, Request, VendorShape};
use crate::provider::{ErrorKind, Handle, InventoryItem, Minted, Provider, ProviderError, Verdict};
use crate::secret::{Delivered, ExposeSecret, SecretString};
use config::{safe_id, AtlassianApiTokenTarget, AtlassianProviderConfig, AtlassianServiceAccountCredentialTarget, ACCOUNT_ID, CLIENT_ID, TOKEN_ID};

const VENDOR: &str = "Atlassian";
/// How long a secret's derived access tokens outlive it.
const DERIVED_WINDOW: &str = "access tokens issued with it before it died stay valid until they expire (Atlassian: 60 minutes)";
/// Roles that administer something: a token or credential of an account holding one is privileged.
const ADMIN_ROLES: &[&str] = &["atlassian/org-admin", "atlassian/site-admin", "atlassian/user-access-admin", "atlassian/admin"];
/// How recent a token's `lastAccess` must be for `identify` to take it for
/// the login it just made (Atlassian may record use with some delay).
const JUST_USED: i64 = 300;

/// Atlassian's own error bodies: the API gateway's `{code, message}`, OAuth's
/// `error`, Jira's `errorMessages`.
fn atlassian_error(_status: u16, b: &Value) -> bool {
    (b.get("code").is_some_and(Value::is_number) && b.get("message").is_some_and(Value::is_string))
        || b.get("error").is_some_and(Value::is_string)
        || b.get("errorMessages").is_some_and(Value::is_array)
}

fn shape() -> VendorShape {
    VendorShape { error_body: atlassian_error, arrays: true }
}

/// Jira's security layer marks every answer to a login it judged, JSON or
/// not (its 401 is plain text, its CAPTCHA refusal an HTML page).
fn seraph_answer(_status: u16, h: &HeaderMap) -> bool {
    h.contains_key("x-seraph-loginreason")
}

fn seraph(a: &Answer) -> String {
    a.headers.get("x-seraph-loginreason").and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_uppercase()
}

/// A gateway `404 {"code":404,…}`: the admin API says the thing does not exist.
fn gone(a: &Answer) -> bool {
    a.status == 404 && a.body.get("code").and_then(Value::as_u64) == Some(404)
}

fn err(kind: ErrorKind, op: &'static str, msg: impl Into<String>) -> ProviderError {
    ProviderError::new(kind, op, msg.into())
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn time_of(v: &Value, key: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    str_at(v, key).and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok()).map(|t| t.with_timezone(&chrono::Utc))
}

/// An epoch-milliseconds field (the API Access API's `createdAt`) as RFC 3339.
fn millis(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_i64).and_then(chrono::DateTime::from_timestamp_millis).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// `s` as one path segment, or a refusal (see [`safe_id`]).
fn seg<'a>(s: &'a str, what: &str, op: &'static str) -> Result<&'a str, ProviderError> {
    if safe_id(s) {
        Ok(s)
    } else {
        Err(err(ErrorKind::Config, op, format!("{what} `{}` is not an Atlassian id: refused before sending", s.chars().take(40).collect::<String>())))
    }
}

/// A `DELETE` of a whole collection of API tokens: the org-wide bulk revoke
/// (`/admin/api-access/v1/orgs/{orgId}/api-tokens`), or anything shaped like it.
fn is_bulk_revoke(method: &Method, path: &str) -> bool {
    method == Method::DELETE && path.trim_end_matches('/').rsplit('/').next() == Some("api-tokens")
}

fn token_id(h: &Handle) -> Option<&str> {
    h.get(TOKEN_ID).map(String::as_str).filter(|s| !s.is_empty())
}
fn client_id(h: &Handle) -> Option<&str> {
    h.get(CLIENT_ID).map(String::as_str).filter(|s| !s.is_empty())
}

pub struct AtlassianProvider {
    name: String,
    http: HttpClient,
    /// `Bearer <admin key>`, for the admin APIs only.
    key: SecretString,
    org: String,
    /// The site's and the authorization server's base URLs.
    site: String,
    auth: String,
}

enum K<'a> {
    Token(&'a AtlassianApiTokenTarget),
    Client(&'a AtlassianServiceAccountCredentialTarget),
}

fn kind_of<'a>(t: &'a Target, op: &'static str) -> Result<K<'a>, ProviderError> {
    match t {
        Target::AtlassianApiToken(t) => Ok(K::Token(t)),
        Target::AtlassianServiceAccountCredential(t) => Ok(K::Client(t)),
        other => Err(err(ErrorKind::Unsupported, op, format!("an atlassian provider does not hold `{}`", other.kind()))),
    }
}

/// One probe's outcome for an API token, before the admin side is asked.
enum Login {
    /// Accepted, as this account id.
    As(String),
    /// Atlassian's own refusal of the login (401, `AUTHENTICATED_FAILED`).
    Refused,
    /// No proof either way.
    Unknown(String),
}

impl AtlassianProvider {
    pub async fn connect(name: &str, cfg: &AtlassianProviderConfig, resolve: &crate::provider::kind::Resolve<'_>) -> Result<Self, ProviderError> {
        let key = resolve(&cfg.api_key)?;
        let trim = |u: &str| u.trim().trim_end_matches('/').to_string();
        let (site, auth) = (trim(&cfg.site_url), trim(&cfg.auth_url));
        let http = HttpClient::new(VENDOR, &trim(&cfg.admin_url), &[&site, &auth], &cfg.limits, shape(), &cfg.tls)?;
        let org = seg(&cfg.org_id, "org_id", "atlassian.connect")?.to_string();
        let p =
            AtlassianProvider { name: name.to_string(), http, key: SecretString::from(format!("Bearer {}", key.expose_secret())), org, site, auth };
        let a = p.admin(Method::GET, &format!("/admin/v1/orgs/{}", p.org), "atlassian.connect").await?;
        match a.status {
            200 => Ok(p),
            401 => Err(err(ErrorKind::Unauthenticated, "atlassian.connect", "the admin API refused the API key (401)")),
            403 | 404 => Err(err(
                ErrorKind::Config,
                "atlassian.connect",
                format!(
                    "the API key does not reach organization {} ({}): check `org_id`, and that the key belongs to that organization",
                    p.org, a.status
                ),
            )),
            s => Err(status_error("atlassian.connect", VENDOR, s)),
        }
    }

    /// One idempotent admin request (retried on anything temporary). Never the bulk revoke.
    async fn admin(&self, method: Method, target: &str, op: &'static str) -> Result<Answer, ProviderError> {
        let url = self.http.url(op, target)?;
        if is_bulk_revoke(&method, url.path()) {
            return Err(err(
                ErrorKind::Unsupported,
                op,
                "refused: a DELETE of a whole collection of API tokens (the org-wide bulk revoke) is never sent; tokens are revoked one by one",
            ));
        }
        self.http.call(op, &Request::new(method, target).secret(AUTHORIZATION, &self.key)).await
    }

    /// Every item of a paged admin listing.
    async fn list(&self, first: &str, paging: Paging<'_>, items: &str, op: &'static str) -> Result<Vec<Value>, ProviderError> {
        let pages = self.http.pages(op, Request::new(Method::GET, first).secret(AUTHORIZATION, &self.key), paging).await?;
        Ok(pages.into_iter().flat_map(|a| a.body.pointer(items).and_then(Value::as_array).cloned().unwrap_or_default()).collect())
    }

    /// The organization's managed accounts (`links.next` is the next page's URL).
    async fn users(&self) -> Result<Vec<Value>, ProviderError> {
        self.list(&format!("/admin/v1/orgs/{}/users", self.org), Paging::NextUrl { pointer: "/links/next" }, "/data", "atlassian.list_users").await
    }

    /// The account id of the managed account with `email`.
    async fn account_by_email(&self, email: &str) -> Result<String, ProviderError> {
        let users = self.users().await?;
        let found: Vec<&str> = users
            .iter()
            .filter(|u| str_at(u, "email").is_some_and(|e| e.eq_ignore_ascii_case(email.trim())))
            .filter_map(|u| str_at(u, "account_id"))
            .collect();
        match found.as_slice() {
            [one] => Ok(one.to_string()),
            [] => Err(err(ErrorKind::NotFound, "atlassian.account", format!("no managed account with email {email} in organization {}", self.org))),
            _ => Err(err(
                ErrorKind::Conflict,
                "atlassian.account",
                format!("several managed accounts have email {email}: name the one meant with `account_id:`"),
            )),
        }
    }

    /// The account a token target's secret belongs to: the handle's, the playbook's, or looked up by email.
    async fn account_of(&self, t: &AtlassianApiTokenTarget, h: Option<&Handle>, op: &'static str) -> Result<String, ProviderError> {
        let id = match h.and_then(|h| h.get(ACCOUNT_ID)).filter(|s| !s.is_empty()).or(t.account_id.as_ref()) {
            Some(a) => a.clone(),
            None => self.account_by_email(&t.email).await?,
        };
        seg(&id, "account id", op)?;
        Ok(id)
    }

    /// The API tokens of an account (the user management API); `None` when
    /// Atlassian knows no such account.
    async fn tokens_of(&self, account: &str, op: &'static str) -> Result<Option<Vec<Value>>, ProviderError> {
        let a = self.admin(Method::GET, &format!("/users/{}/manage/api-tokens", seg(account, "account id", op)?), op).await?;
        if gone(&a) {
            return Ok(None);
        }
        if !a.ok() {
            return Err(status_error(op, VENDOR, a.status));
        }
        match a.body.as_array() {
            Some(rows) => Ok(Some(rows.clone())),
            None => Err(err(ErrorKind::Unavailable, op, "the token listing is not a list: not taken as empty")),
        }
    }

    /// Whether `id` is a usable token in `rows`: listed, and not past its expiry.
    fn listed_live(rows: &[Value], id: &str) -> Option<Result<(), String>> {
        let row = rows.iter().find(|r| str_at(r, "id") == Some(id))?;
        match time_of(row, "expiry") {
            Some(exp) if exp < chrono::Utc::now() => Some(Err(exp.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))),
            _ => Some(Ok(())),
        }
    }

    /// Roles an account holds anywhere in the organization (v2 role assignments, all directories).
    async fn roles(&self, account: &str) -> Result<Vec<String>, ProviderError> {
        let op = "atlassian.roles";
        let first = format!("/admin/v2/orgs/{}/directories/-/users/{}/role-assignments", self.org, seg(account, "account id", op)?);
        let rows = self.list(&first, Paging::Cursor { pointer: "/links/next", param: "cursor" }, "/data", op).await?;
        let mut roles = BTreeSet::new();
        for r in &rows {
            for x in r.get("roleAssignments").and_then(Value::as_array).into_iter().flatten() {
                roles.extend(str_at(x, "role").map(str::to_string));
            }
            for x in r.get("roles").and_then(Value::as_array).into_iter().flatten() {
                roles.extend(x.as_str().map(str::to_string));
            }
        }
        Ok(roles.into_iter().collect())
    }

    /// One Basic login with a token: `GET /rest/api/3/myself` on the site, as
    /// `email:value`. Never retried (a verification attempt is the engine's to
    /// repeat, and each failed login counts towards a CAPTCHA).
    async fn login(&self, email: &str, value: &SecretString, op: &'static str) -> Login {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", email.trim(), value.expose_secret()));
        let auth = SecretString::from(format!("Basic {basic}"));
        let url = format!("{}/rest/api/3/myself", self.site);
        let a = match self.http.send_documented(op, &Request::new(Method::GET, &url).secret(AUTHORIZATION, &auth), seraph_answer).await {
            Ok(a) => a,
            Err(e) => return Login::Unknown(e.to_string()),
        };
        let reason = seraph(&a);
        match a.status {
            200 if reason.contains("AUTHENTICATED_FAILED") || reason.contains("AUTHENTICATION_DENIED") => Login::Unknown(format!(
                "the site answered 200 with X-Seraph-LoginReason {reason}: the request ran anonymously, which proves nothing about the token"
            )),
            200 => match str_at(&a.body, "accountId") {
                Some(acct) => Login::As(acct.to_string()),
                None => Login::Unknown("the site answered 200 without an accountId".into()),
            },
            401 if reason.contains("AUTHENTICATED_FAILED") => Login::Refused,
            403 if reason.contains("AUTHENTICATION_DENIED") => Login::Unknown(format!(
                "the site refused the login without checking the token (403, X-Seraph-LoginReason: AUTHENTICATION_DENIED: a CAPTCHA after failed logins); \
                 not proof. Sign in to {} in a browser as {} to clear it",
                self.site,
                email.trim()
            )),
            s => Login::Unknown(format!("the site answered {s} (X-Seraph-LoginReason: {}): not a refusal of the token itself", if reason.is_empty() { "none" } else { &reason })),
        }
    }

    /// A client-credentials token request at the authorization server (the
    /// secret in the JSON body, as Atlassian documents it); one attempt.
    async fn token_request(&self, client: &str, secret: &SecretString, op: &'static str) -> Result<Answer, Verdict> {
        let body = json!({ "grant_type": "client_credentials", "client_id": client, "client_secret": secret.expose_secret() });
        let url = format!("{}/oauth/token", self.auth);
        let r = self.http.send(op, &Request::new(Method::POST, &url).json(&body)).await.map_err(|e| Verdict::Unknown(e.to_string()));
        if let Ok(a) = &r {
            // The access token is a secret too: never quoted, registered for redaction.
            if let Some(at) = str_at(&a.body, "access_token") {
                crate::secret::register_str(at);
            }
        }
        r
    }

    fn secret_verdict(a: &Answer, what: &str) -> Verdict {
        match (a.status, str_at(&a.body, "error").unwrap_or("")) {
            (200, _) if a.body.get("access_token").is_some_and(Value::is_string) => Verdict::Alive(format!(
                "Atlassian issued an access token for {what} (expires_in {})",
                a.body.get("expires_in").and_then(Value::as_u64).unwrap_or(0)
            )),
            (401, "access_denied") => Verdict::Dead(format!("Atlassian refused {what}: 401 access_denied")),
            (s, code) => Verdict::Unknown(format!("Atlassian's token endpoint answered {s} {code} for {what}: not a refusal of the secret itself")),
        }
    }

    /// The OAuth clients of a service account (API Access API).
    async fn clients_of(&self, sa: &str, op: &'static str) -> Result<Vec<Value>, ProviderError> {
        let first = format!("/admin/api-access/v1/orgs/{}/service-accounts/{}/oauth-clients", self.org, seg(sa, "service account id", op)?);
        self.list(&first, Paging::Cursor { pointer: "/links/next", param: "cursor" }, "/data", op).await
    }

    /// One OAuth client by id: `Some(true)` held, `Some(false)` gone (404), `None` no answer.
    async fn client_exists(&self, client: &str, op: &'static str) -> Result<bool, String> {
        let target = format!("/admin/api-access/v1/orgs/{}/oauth-clients/{}", self.org, seg(client, "client id", op).map_err(|e| e.to_string())?);
        match self.admin(Method::GET, &target, op).await {
            Ok(a) if a.ok() => Ok(true),
            Ok(a) if gone(&a) => Ok(false),
            Ok(a) => Err(format!("the admin API answered {} for OAuth client {client}", a.status)),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn verify_token(&self, t: &AtlassianApiTokenTarget, old: &Handle, old_value: Option<&SecretString>) -> Verdict {
        let op = "atlassian.verify";
        let id = token_id(old).unwrap_or("?");
        let refused = match old_value {
            Some(v) => match self.login(&t.email, v, op).await {
                Login::As(acct) => return Verdict::Alive(format!("the site accepted old token {id} as account {acct}")),
                Login::Unknown(why) => return Verdict::Unknown(format!("old token {id}: {why}")),
                Login::Refused => true,
            },
            None => false,
        };
        let account = match self.account_of(t, Some(old), op).await {
            Ok(a) => a,
            Err(e) => return Verdict::Unknown(format!("old token {id}: its account is unknown ({e})")),
        };
        let refusal = if refused {
            format!("the site refused old token {id} as {} (401, X-Seraph-LoginReason: AUTHENTICATED_FAILED) and ", t.email.trim())
        } else {
            String::new()
        };
        match self.tokens_of(&account, op).await {
            Ok(Some(rows)) => match Self::listed_live(&rows, id) {
                None => Verdict::Dead(format!("{refusal}Atlassian lists no token {id} for account {account}")),
                Some(Err(expired)) => Verdict::Dead(format!("{refusal}Atlassian lists token {id} of account {account} as expired at {expired}")),
                Some(Ok(())) if refused => Verdict::Unknown(format!(
                    "the site refused old token {id} as {}, but Atlassian still lists it for account {account}: the email may not be that account's, or the account is deactivated",
                    t.email.trim()
                )),
                Some(Ok(())) => Verdict::Alive(format!("Atlassian lists token {id} of account {account}")),
            },
            Ok(None) => Verdict::Unknown(format!("Atlassian knows no account {account} (404): the playbook's account may be wrong; not taken as proof")),
            Err(e) => Verdict::Unknown(format!("old token {id}: {e}")),
        }
    }

    async fn verify_client(&self, old: &Handle, old_value: Option<&SecretString>) -> Verdict {
        let op = "atlassian.verify";
        let Some(id) = client_id(old) else { return Verdict::Unknown("no client id to prove dead".into()) };
        let refusal = match old_value {
            Some(v) => match self.token_request(id, v, op).await {
                Ok(a) => match Self::secret_verdict(&a, &format!("old client {id}")) {
                    Verdict::Dead(e) => format!("{e}, and "),
                    other => return other,
                },
                Err(v) => return v,
            },
            None => String::new(),
        };
        match self.client_exists(id, op).await {
            Ok(false) => Verdict::Dead(format!("{refusal}Atlassian holds no OAuth client {id} (404); {DERIVED_WINDOW}")),
            Ok(true) if refusal.is_empty() => Verdict::Alive(format!("Atlassian still holds OAuth client {id}")),
            Ok(true) => Verdict::Unknown(format!(
                "the token endpoint refused old client {id}, but Atlassian still holds it: the stored secret may be wrong, or the service account deactivated"
            )),
            Err(e) => Verdict::Unknown(format!("old client {id}: {e}")),
        }
    }

    async fn identify_token(&self, t: &AtlassianApiTokenTarget, new: &Delivered, old: &Handle) -> Result<Handle, ProviderError> {
        let op = "atlassian.identify";
        let before = chrono::Utc::now();
        let acct = match self.login(&t.email, &new.value, op).await {
            Login::As(a) => a,
            Login::Refused => {
                return Err(err(
                    ErrorKind::Unauthenticated,
                    op,
                    format!("the site does not accept it as {} (401): a token of another account, mistyped, or revoked", t.email.trim()),
                ))
            }
            Login::Unknown(why) => return Err(err(ErrorKind::Unavailable, op, why)),
        };
        // Never a token of another account: another account's roles may be wider.
        let expected = self.account_of(t, Some(old), op).await?;
        if acct != expected {
            return Err(err(
                ErrorKind::Config,
                op,
                format!("it acts as account {acct}, not as the old token's account {expected}: a replacement never acts as another account"),
            ));
        }
        let rows = self.tokens_of(&acct, op).await?.ok_or_else(|| err(ErrorKind::NotFound, op, format!("Atlassian knows no account {acct}")))?;
        let old_id = token_id(old);
        let old_created = old_id.and_then(|o| rows.iter().find(|r| str_at(r, "id") == Some(o))).and_then(|r| time_of(r, "createdAt"));
        let mut cands: Vec<&Value> = rows.iter().filter(|r| str_at(r, "id").is_some_and(|id| Some(id) != old_id)).collect();
        if let Some(label) = &t.label {
            if cands.iter().any(|r| str_at(r, "label") == Some(label)) {
                cands.retain(|r| str_at(r, "label") == Some(label));
            }
        }
        // The token the login above just used: the most recent use, if recent.
        let newest = cands.iter().filter_map(|r| time_of(r, "lastAccess")).max().filter(|u| *u >= before - chrono::Duration::seconds(JUST_USED));
        let mut picked: Vec<&Value> = match newest {
            Some(n) => cands.iter().filter(|r| time_of(r, "lastAccess") == Some(n)).copied().collect(),
            None => vec![],
        };
        if picked.is_empty() {
            // Use not recorded yet: the one token made after the old one.
            picked = cands.iter().filter(|r| old_created.is_none_or(|oc| time_of(r, "createdAt").is_some_and(|c| c > oc))).copied().collect();
        }
        match picked.as_slice() {
            [one] => Ok(Handle::from([
                (TOKEN_ID.to_string(), str_at(one, "id").unwrap_or_default().to_string()),
                (ACCOUNT_ID.to_string(), acct),
            ])),
            other => Err(err(
                ErrorKind::Conflict,
                op,
                format!(
                    "{} tokens of {} could be the supplied one; cannot tell which: delete the unused ones (or label the new one `{}`) and supply it again",
                    other.len(),
                    t.email.trim(),
                    t.label.as_deref().unwrap_or("as the playbook says")
                ),
            )),
        }
    }

    async fn identify_client(&self, t: &AtlassianServiceAccountCredentialTarget, new: &Delivered, old: &Handle) -> Result<Handle, ProviderError> {
        let op = "atlassian.identify";
        let Some(client) = new.fields.get(CLIENT_ID).filter(|c| !c.is_empty()) else {
            return Err(err(
                ErrorKind::Config,
                op,
                "no client id came with the secret: supply it with `keysweep supply <playbook> <credential> --field client_id=<the new credential's client id>`",
            ));
        };
        seg(client, "client id", op)?;
        match self.token_request(client, &new.value, op).await {
            Ok(a) if a.ok() && a.body.get("access_token").is_some_and(Value::is_string) => {}
            Ok(a) => {
                return Err(err(
                    ErrorKind::Unauthenticated,
                    op,
                    format!("Atlassian issues no token for client {client} with it: {} {}", a.status, str_at(&a.body, "error").unwrap_or("")),
                ))
            }
            Err(v) => return Err(err(ErrorKind::Unavailable, op, v.evidence().to_string())),
        }
        // Never a credential of another service account: another account's roles may be wider.
        let clients = self.clients_of(&t.service_account_id, op).await?;
        let ids: BTreeSet<&str> = clients.iter().filter_map(|c| str_at(c, "clientId")).collect();
        if !ids.contains(client.as_str()) {
            return Err(err(
                ErrorKind::Config,
                op,
                format!(
                    "client {client} is not a credential of service account {}: a replacement never acts as another account",
                    t.service_account_id
                ),
            ));
        }
        if let Some(o) = client_id(old) {
            if !ids.contains(o) && self.client_exists(o, op).await.unwrap_or(false) {
                return Err(err(
                    ErrorKind::Config,
                    op,
                    format!("the old client {o} is not a credential of service account {}: check `service_account_id`", t.service_account_id),
                ));
            }
        }
        Ok(Handle::from([(CLIENT_ID.to_string(), client.clone())]))
    }

    async fn inventory_tokens(&self, out: &mut Vec<InventoryItem>) -> Result<(), ProviderError> {
        let op = "atlassian.inventory";
        for u in self.users().await? {
            let Some(acct) = str_at(&u, "account_id") else { continue };
            let Some(rows) = self.tokens_of(acct, op).await? else { continue };
            if rows.is_empty() {
                continue;
            }
            let roles = self.roles(acct).await?;
            let privileged = roles.iter().any(|r| ADMIN_ROLES.contains(&r.as_str()));
            for r in rows {
                let Some(id) = str_at(&r, "id") else { continue };
                let mut details = BTreeMap::from([
                    ("label".to_string(), str_at(&r, "label").unwrap_or_default().to_string()),
                    ("email".to_string(), str_at(&u, "email").unwrap_or_default().to_string()),
                    (ACCOUNT_ID.to_string(), acct.to_string()),
                    ("account_status".to_string(), str_at(&u, "account_status").unwrap_or_default().to_string()),
                    ("roles".to_string(), roles.join(",")),
                    ("privileged".to_string(), privileged.to_string()),
                ]);
                if let Some(e) = str_at(&r, "expiry") {
                    details.insert("expiry".into(), e.to_string());
                }
                let created = str_at(&r, "createdAt").map(str::to_string);
                out.push(InventoryItem {
                    kind: "atlassian_api_token".into(),
                    id: id.to_string(),
                    created: created.clone(),
                    rotated: created,
                    last_used: str_at(&r, "lastAccess").map(str::to_string),
                    usage_tracked: true,
                    details,
                });
            }
        }
        Ok(())
    }

    async fn inventory_clients(&self, out: &mut Vec<InventoryItem>) -> Result<(), ProviderError> {
        let op = "atlassian.inventory";
        let first = format!("/admin/api-access/v1/orgs/{}/service-accounts", self.org);
        for sa in self.list(&first, Paging::Cursor { pointer: "/links/next", param: "cursor" }, "/items", op).await? {
            let Some(sa_id) = str_at(&sa, "id") else { continue };
            let clients = self.clients_of(sa_id, op).await?;
            if clients.is_empty() {
                continue;
            }
            let roles = match str_at(&sa, "atlassianId") {
                Some(a) => self.roles(a).await?,
                None => vec![],
            };
            let privileged = roles.iter().any(|r| ADMIN_ROLES.contains(&r.as_str()));
            for c in clients {
                let Some(id) = str_at(&c, "clientId") else { continue };
                let details = BTreeMap::from([
                    ("name".to_string(), str_at(&c, "name").unwrap_or_default().to_string()),
                    ("status".to_string(), str_at(&c, "status").unwrap_or_default().to_string()),
                    ("service_account".to_string(), str_at(&sa, "displayName").unwrap_or_default().to_string()),
                    ("service_account_id".to_string(), sa_id.to_string()),
                    ("email".to_string(), str_at(&sa, "email").unwrap_or_default().to_string()),
                    ("roles".to_string(), roles.join(",")),
                    ("privileged".to_string(), privileged.to_string()),
                ]);
                let created = millis(&c, "createdAt");
                out.push(InventoryItem {
                    kind: "atlassian_service_account_credential".into(),
                    id: id.to_string(),
                    created: created.clone(),
                    rotated: created,
                    // The API Access API records no use of a credential.
                    last_used: None,
                    usage_tracked: false,
                    details,
                });
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Provider for AtlassianProvider {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "atlassian"
    }

    async fn current_handle(&self, target: &Target, stored: Option<&Handle>) -> Result<Handle, ProviderError> {
        let op = "atlassian.current";
        match kind_of(target, op)? {
            K::Token(t) => {
                let account = stored.and_then(|s| s.get(ACCOUNT_ID)).filter(|a| !a.is_empty()).or(t.account_id.as_ref());
                if let Some(id) = stored.and_then(token_id).or(t.token_id.as_deref()) {
                    let mut h = Handle::from([(TOKEN_ID.to_string(), id.to_string())]);
                    h.extend(account.map(|a| (ACCOUNT_ID.to_string(), a.clone())));
                    return Ok(h);
                }
                let label = t.label.as_deref().unwrap_or_default();
                let account = self.account_of(t, stored, op).await?;
                let rows = self
                    .tokens_of(&account, op)
                    .await?
                    .ok_or_else(|| err(ErrorKind::NotFound, op, format!("Atlassian knows no account {account}")))?;
                let found: Vec<&str> = rows.iter().filter(|r| str_at(r, "label") == Some(label)).filter_map(|r| str_at(r, "id")).collect();
                match found.as_slice() {
                    [one] => Ok(Handle::from([(TOKEN_ID.to_string(), one.to_string()), (ACCOUNT_ID.to_string(), account)])),
                    [] => Err(err(ErrorKind::NotFound, op, format!("{} holds no API token labelled `{label}`", t.email.trim()))),
                    many => Err(err(
                        ErrorKind::Conflict,
                        op,
                        format!(
                            "{} API tokens of {} are labelled `{label}` ({}); name the one meant with `token_id:`",
                            many.len(),
                            t.email.trim(),
                            many.join(", ")
                        ),
                    )),
                }
            }
            K::Client(t) => {
                if let Some(id) = stored.and_then(client_id).or(t.client_id.as_deref()) {
                    return Ok(Handle::from([(CLIENT_ID.to_string(), id.to_string())]));
                }
                let clients = self.clients_of(&t.service_account_id, op).await?;
                let ids: Vec<&str> = clients.iter().filter_map(|c| str_at(c, "clientId")).collect();
                match ids.as_slice() {
                    [one] => Ok(Handle::from([(CLIENT_ID.to_string(), one.to_string())])),
                    [] => Err(err(ErrorKind::NotFound, op, format!("service account {} has no OAuth credential", t.service_account_id))),
                    many => Err(err(
                        ErrorKind::Conflict,
                        op,
                        format!(
                            "service account {} has {} OAuth credentials ({}): consumers may use any; name the one in service with `client_id:` or the store's `client_id` field",
                            t.service_account_id,
                            many.len(),
                            many.join(", ")
                        ),
                    )),
                }
            }
        }
    }

    fn handle_from_fields(&self, target: &Target, fields: &BTreeMap<String, String>) -> Handle {
        let keys: &[&str] = if matches!(target, Target::AtlassianServiceAccountCredential(_)) { &[CLIENT_ID] } else { &[TOKEN_ID, ACCOUNT_ID] };
        keys.iter().filter_map(|k| fields.get(*k).filter(|v| !v.is_empty()).map(|v| (k.to_string(), v.clone()))).collect()
    }

    async fn mint(&self, _target: &Target, _old: &Handle, _nonce: &str) -> Result<Minted, ProviderError> {
        Err(err(
            ErrorKind::Unsupported,
            "atlassian.mint",
            "Atlassian has no API that creates an API token or a service-account credential: a person re-issues it (`manual:`)",
        ))
    }

    async fn cleanup_minted(&self, _target: &Target, _old: &Handle, _nonce: &str, _keep: Option<&Handle>) -> Result<usize, ProviderError> {
        Ok(0)
    }

    async fn apply(&self, _target: &Target, _new: &Delivered) -> Result<(), ProviderError> {
        Err(err(ErrorKind::Unsupported, "atlassian.apply", "Atlassian makes its secrets itself; nothing is applied"))
    }

    async fn identify(&self, target: &Target, new: &Delivered, old: &Handle) -> Result<Handle, ProviderError> {
        match kind_of(target, "atlassian.identify")? {
            K::Token(t) => self.identify_token(t, new, old).await,
            K::Client(t) => self.identify_client(t, new, old).await,
        }
    }

    async fn test(&self, target: &Target, new: &Delivered, handle: &Handle) -> Verdict {
        match kind_of(target, "atlassian.test") {
            Err(e) => Verdict::Unknown(e.to_string()),
            Ok(K::Token(t)) => {
                let id = token_id(handle).unwrap_or("?");
                match self.login(&t.email, &new.value, "atlassian.test").await {
                    Login::As(acct) => match handle.get(ACCOUNT_ID).or(t.account_id.as_ref()) {
                        Some(want) if *want != acct => Verdict::Unknown(format!("new token {id} logs in as account {acct}, not {want}")),
                        _ => Verdict::Alive(format!("the site accepted new token {id} as account {acct}")),
                    },
                    Login::Refused => Verdict::Dead(format!("the site refused new token {id} as {} (401, AUTHENTICATED_FAILED)", t.email.trim())),
                    Login::Unknown(why) => Verdict::Unknown(format!("new token {id}: {why}")),
                }
            }
            Ok(K::Client(_)) => {
                let Some(id) = client_id(handle).or(new.fields.get(CLIENT_ID).map(String::as_str)) else {
                    return Verdict::Unknown("no client id to test the secret with".into());
                };
                match self.token_request(id, &new.value, "atlassian.test").await {
                    Ok(a) => Self::secret_verdict(&a, &format!("new client {id}")),
                    Err(v) => v,
                }
            }
        }
    }

    async fn retire(&self, target: &Target, old: &Handle) -> Result<(), ProviderError> {
        let op = "atlassian.revoke";
        match kind_of(target, op)? {
            K::Token(t) => {
                let id = seg(token_id(old).ok_or_else(|| err(ErrorKind::Config, op, "no token id to revoke"))?, "token id", op)?;
                let account = self.account_of(t, Some(old), op).await?;
                let a = self.admin(Method::DELETE, &format!("/users/{account}/manage/api-tokens/{id}"), op).await?;
                if a.ok() || gone(&a) {
                    // Gone already is success; verify-dead proves it either way.
                    Ok(())
                } else {
                    Err(err(status_error(op, VENDOR, a.status).kind, op, format!("revoking token {id} of account {account}: {}", a.status)))
                }
            }
            K::Client(t) => {
                let id = seg(client_id(old).ok_or_else(|| err(ErrorKind::Config, op, "no client id to delete"))?, "client id", op)?;
                // Only a credential of this service account is ever deleted: an
                // id from a mistaken playbook could name another integration's.
                let clients = self.clients_of(&t.service_account_id, op).await?;
                if !clients.iter().any(|c| str_at(c, "clientId") == Some(id)) {
                    return match self.client_exists(id, op).await {
                        Ok(false) => Ok(()),
                        Ok(true) => Err(err(
                            ErrorKind::Config,
                            op,
                            format!("OAuth client {id} is not a credential of service account {}: nothing deleted", t.service_account_id),
                        )),
                        Err(e) => Err(err(ErrorKind::Unavailable, op, e)),
                    };
                }
                let a = self.admin(Method::DELETE, &format!("/admin/api-access/v1/orgs/{}/oauth-clients/{id}", self.org), op).await?;
                if a.ok() || gone(&a) {
                    Ok(())
                } else {
                    Err(err(status_error(op, VENDOR, a.status).kind, op, format!("deleting OAuth client {id}: {}", a.status)))
                }
            }
        }
    }

    async fn verify_dead(&self, target: &Target, old: &Handle, old_value: Option<&SecretString>) -> Verdict {
        match kind_of(target, "atlassian.verify") {
            Err(e) => Verdict::Unknown(e.to_string()),
            Ok(K::Token(t)) => self.verify_token(t, old, old_value).await,
            Ok(K::Client(_)) => self.verify_client(old, old_value).await,
        }
    }

    async fn inventory(&self) -> Result<Vec<InventoryItem>, ProviderError> {
        let mut out = vec![];
        self.inventory_tokens(&mut out).await?;
        self.inventory_clients(&mut out).await?;
        Ok(out)
    }

    fn request_count(&self) -> Option<u64> {
        Some(self.http.request_count())
    }

    fn adaptive(&self) -> Option<std::sync::Arc<crate::provider::adaptive::AdaptiveLimit>> {
        Some(self.http.adaptive())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bulk_revoke_and_its_look_alikes_are_refused() {
        assert!(is_bulk_revoke(&Method::DELETE, "/admin/api-access/v1/orgs/o-1/api-tokens"));
        assert!(is_bulk_revoke(&Method::DELETE, "/admin/api-access/v1/orgs/o-1/api-tokens/"));
        assert!(is_bulk_revoke(&Method::DELETE, "/users/712020:a/manage/api-tokens"));
        assert!(!is_bulk_revoke(&Method::GET, "/admin/api-access/v1/orgs/o-1/api-tokens"));
        assert!(!is_bulk_revoke(&Method::DELETE, "/users/712020:a/manage/api-tokens/3f1c"));
        assert!(!is_bulk_revoke(&Method::DELETE, "/admin/api-access/v1/orgs/o-1/oauth-clients/abc"));
    }

    #[test]
    fn only_atlassians_error_shapes_are_answers() {
        assert!(atlassian_error(404, &json!({ "code": 404, "message": "Not Found" })));
        assert!(atlassian_error(401, &json!({ "error": "access_denied", "error_description": "Unauthorized" })));
        assert!(atlassian_error(429, &json!({ "errorMessages": ["Rate limit exceeded."], "errors": {} })));
        assert!(!atlassian_error(404, &json!({ "message": "no route" })));
        assert!(!atlassian_error(403, &json!({ "code": "403" })));
    }
}
