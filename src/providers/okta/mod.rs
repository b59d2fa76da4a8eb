//! `okta`: API tokens and OAuth service-app client secrets of an Okta org,
//! through the management API (`/api/v1`) and a custom authorization
//! server's token endpoint. Works unchanged against a real org; the tests run
//! it against `sims/okta.py`, which follows Okta's published OpenAPI
//! description (okta/okta-management-openapi-spec).
//!
//! - **API tokens** (`okta_api_token`, shape "e"): Okta has no API that
//!   creates one. A rotation is re-issued by a person (`manual:`); keysweep
//!   identifies the value they supply (`GET /api/v1/users/me` with it, then
//!   the newest token of that user, which must be the old token's user),
//!   revokes the old one (`DELETE /api/v1/api-tokens/{id}`) and proves it
//!   dead. Last use is read from the sliding expiry: `expiresAt` −
//!   `tokenWindow`.
//! - **Client secrets** (`okta_client_secret`, dual): a second secret is
//!   created (`POST /api/v1/apps/{id}/credentials/secrets`; two at most),
//!   delivered, tested with `client_credentials`, then the old one is
//!   deactivated and deleted (an active secret cannot be deleted).
//!
//! Proof of death is Okta's own refusal only: `401` with `errorCode`
//! `E0000011` for a token, `401 invalid_client` for a client secret, or the
//! admin API's `404 E0000007` for the id. A `403` (a network zone, `E0000006`),
//! a 429 (`E0000047`), a 5xx or anything not shaped like Okta's JSON is unknown.

pub mod config;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;

use async_trait::async_trait;
use base64::Engine as _;
use reqwest::header::AUTHORIZATION;
use reqwest::Method;
use serde_json::{json, Value};

use crate::playbook::model::Target;
use crate::provider::http::{status_error, Answer, HttpClient, Paging, Request, VendorShape};
use crate::provider::{ErrorKind, Handle, InventoryItem, Minted, Provider, ProviderError, Verdict};
use crate::secret::{Delivered, ExposeSecret, SecretString};
use config::{OktaApiTokenTarget, OktaClientSecretTarget, OktaProviderConfig, SECRET_ID, TOKEN_ID};

const VENDOR: &str = "Okta";
/// Okta's default access-token lifetime: how long a token minted with a
/// client secret may outlive the secret (an authorization server's policy
/// can set 5 minutes to 24 hours).
const DERIVED_WINDOW: &str = "access tokens issued with it before it died stay valid until they expire (Okta's default: 1 hour; the authorization server's policy may set up to 24 hours)";

/// Okta's own error bodies: the management API's `errorCode`, OAuth's `error`.
fn okta_error(_status: u16, body: &Value) -> bool {
    body.get("errorCode").is_some_and(Value::is_string) || body.get("error").is_some_and(Value::is_string)
}

fn shape() -> VendorShape {
    VendorShape { error_body: okta_error, arrays: true }
}

fn error_code(a: &Answer) -> &str {
    a.body.get("errorCode").or_else(|| a.body.get("error")).and_then(Value::as_str).unwrap_or("")
}

fn ssws(token: &SecretString) -> SecretString {
    SecretString::from(format!("SSWS {}", token.expose_secret()))
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

/// An ISO 8601 duration of days/hours/minutes/seconds (`P30D`, `PT12H`).
fn iso_duration(s: &str) -> Option<chrono::Duration> {
    let rest = s.strip_prefix('P')?;
    let (days, time) = rest.split_once('T').unwrap_or((rest, ""));
    let mut total = chrono::Duration::zero();
    let mut num = String::new();
    for (part, in_time) in [(days, false), (time, true)] {
        for c in part.chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            let n: i64 = num.parse().ok()?;
            num.clear();
            total += match (c, in_time) {
                ('D', false) => chrono::Duration::days(n),
                ('W', false) => chrono::Duration::weeks(n),
                ('H', true) => chrono::Duration::hours(n),
                ('M', true) => chrono::Duration::minutes(n),
                ('S', true) => chrono::Duration::seconds(n),
                _ => return None,
            };
        }
    }
    num.is_empty().then_some(total)
}

pub struct OktaProvider {
    name: String,
    http: HttpClient,
    /// keysweep's own `SSWS` header; replaced when its own token is rotated.
    login: RwLock<SecretString>,
    /// The user keysweep's own token acts as.
    own_user: String,
    /// The token(s) that may be keysweep's own login (the newest-used of its user).
    own_tokens: BTreeSet<String>,
}

enum K<'a> {
    Token(&'a OktaApiTokenTarget),
    Secret(&'a OktaClientSecretTarget),
}

fn kind_of<'a>(t: &'a Target, op: &'static str) -> Result<K<'a>, ProviderError> {
    match t {
        Target::OktaApiToken(t) => Ok(K::Token(t)),
        Target::OktaClientSecret(t) => Ok(K::Secret(t)),
        other => Err(err(ErrorKind::Unsupported, op, format!("an okta provider does not hold `{}`", other.kind()))),
    }
}

impl OktaProvider {
    pub async fn connect(name: &str, cfg: &OktaProviderConfig, resolve: &crate::provider::kind::Resolve<'_>) -> Result<Self, ProviderError> {
        let token = resolve(&cfg.api_token)?;
        let http = HttpClient::new(VENDOR, &cfg.org_url, &[], &cfg.limits, shape(), &cfg.tls)?;
        let mut p =
            OktaProvider { name: name.to_string(), http, login: RwLock::new(ssws(&token)), own_user: String::new(), own_tokens: BTreeSet::new() };
        let me = p.admin(Method::GET, "/api/v1/users/me", "okta.connect").await?;
        if !me.ok() {
            return Err(err(
                if me.status == 401 { ErrorKind::Unauthenticated } else { ErrorKind::PermissionDenied },
                "okta.connect",
                format!("GET /api/v1/users/me answered {} {}", me.status, error_code(&me)),
            ));
        }
        p.own_user = str_at(&me.body, "id").unwrap_or_default().to_string();
        // Its own token is the newest-used of its user's (this listing used it).
        if let Ok(tokens) = p.tokens().await {
            let mine: Vec<&Value> = tokens.iter().filter(|t| str_at(t, "userId") == Some(p.own_user.as_str())).collect();
            if let Some(newest) = mine.iter().filter_map(|t| time_of(t, "lastUpdated")).max() {
                p.own_tokens = mine
                    .iter()
                    .filter(|t| time_of(t, "lastUpdated").is_some_and(|u| newest - u <= chrono::Duration::seconds(2)))
                    .filter_map(|t| str_at(t, "id").map(str::to_string))
                    .collect();
            }
        }
        Ok(p)
    }

    fn auth(&self) -> SecretString {
        let g = self.login.read().unwrap_or_else(|e| e.into_inner());
        SecretString::from(g.expose_secret().to_string())
    }

    /// One idempotent admin request (retried on anything temporary).
    async fn admin(&self, method: Method, target: &str, op: &'static str) -> Result<Answer, ProviderError> {
        let auth = self.auth();
        self.http.call(op, &Request::new(method, target).secret(AUTHORIZATION, &auth)).await
    }

    async fn admin_ok(&self, method: Method, target: &str, op: &'static str) -> Result<Answer, ProviderError> {
        let a = self.admin(method, target, op).await?;
        if a.ok() {
            Ok(a)
        } else {
            Err(status_error(op, VENDOR, a.status))
        }
    }

    async fn list(&self, first: &str, op: &'static str) -> Result<Vec<Value>, ProviderError> {
        let auth = self.auth();
        let pages = self.http.pages(op, Request::new(Method::GET, first).secret(AUTHORIZATION, &auth), Paging::Link).await?;
        Ok(pages.into_iter().flat_map(|a| a.body.as_array().cloned().unwrap_or_default()).collect())
    }

    async fn tokens(&self) -> Result<Vec<Value>, ProviderError> {
        self.list("/api/v1/api-tokens?limit=200", "okta.list_tokens").await
    }

    /// One probe with a secret: `GET /api/v1/users/me` as `SSWS value`.
    /// Never retried (a verification attempt is the engine's to repeat).
    async fn whoami(&self, value: &SecretString, op: &'static str) -> Result<Answer, Verdict> {
        let auth = ssws(value);
        self.http
            .send(op, &Request::new(Method::GET, "/api/v1/users/me").secret(AUTHORIZATION, &auth))
            .await
            .map_err(|e| Verdict::Unknown(e.to_string()))
    }

    fn token_verdict(a: &Answer, what: &str) -> Verdict {
        match (a.status, error_code(a)) {
            (200, _) => Verdict::Alive(format!("Okta accepted {what} as user {}", str_at(&a.body, "id").unwrap_or("?"))),
            (401, "E0000011") => Verdict::Dead(format!("Okta refused {what}: 401 E0000011 Invalid token provided")),
            (s, code) => Verdict::Unknown(format!(
                "Okta answered {s} {code} for {what}: not a refusal of the token itself (a network zone, a permission, a limit)"
            )),
        }
    }

    /// A client-credentials token request with `client_id:secret`; one attempt.
    async fn token_request(&self, t: &OktaClientSecretTarget, secret: &SecretString, op: &'static str) -> Result<Answer, Verdict> {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", t.app_id, secret.expose_secret()));
        let auth = SecretString::from(format!("Basic {basic}"));
        let target = format!("/oauth2/{}/v1/token", t.authorization_server);
        let mut form: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
        if let Some(s) = &t.scope {
            form.push(("scope", s));
        }
        let req = Request { form: Some(&form), ..Request::new(Method::POST, &target).secret(AUTHORIZATION, &auth) };
        let r = self.http.send(op, &req).await.map_err(|e| Verdict::Unknown(e.to_string()));
        if let Ok(a) = &r {
            // The access token itself is a secret too: never quoted, registered for redaction.
            if let Some(at) = str_at(&a.body, "access_token") {
                crate::secret::register_str(at);
            }
        }
        r
    }

    fn secret_verdict(a: &Answer, what: &str) -> Verdict {
        match (a.status, error_code(a)) {
            (200, _) if a.body.get("access_token").is_some() => Verdict::Alive(format!(
                "Okta issued an access token with {what} (expires_in {})",
                a.body.get("expires_in").and_then(Value::as_u64).unwrap_or(0)
            )),
            (401, "invalid_client") => Verdict::Dead(format!("Okta refused {what}: 401 invalid_client")),
            (s, code) => Verdict::Unknown(format!("Okta's token endpoint answered {s} {code} for {what}: not a refusal of the secret itself")),
        }
    }

    async fn secrets(&self, app: &str) -> Result<Vec<Value>, ProviderError> {
        let a = self.admin_ok(Method::GET, &format!("/api/v1/apps/{app}/credentials/secrets"), "okta.list_secrets").await?;
        Ok(a.body.as_array().cloned().unwrap_or_default())
    }

    /// Deactivates, then deletes a client secret; gone already is success.
    async fn delete_secret(&self, app: &str, id: &str) -> Result<(), ProviderError> {
        let base = format!("/api/v1/apps/{app}/credentials/secrets/{id}");
        let d = self.admin(Method::POST, &format!("{base}/lifecycle/deactivate"), "okta.deactivate_secret").await?;
        if !d.ok() && d.status != 404 {
            return Err(err(
                if d.status == 400 { ErrorKind::Conflict } else { status_error("okta.deactivate_secret", VENDOR, d.status).kind },
                "okta.deactivate_secret",
                format!("deactivating secret {id} of app {app}: {} {}", d.status, error_code(&d)),
            ));
        }
        let x = self.admin(Method::DELETE, &base, "okta.delete_secret").await?;
        if x.ok() || x.status == 404 {
            Ok(())
        } else {
            Err(status_error("okta.delete_secret", VENDOR, x.status))
        }
    }

    async fn user_details(&self, user: &str, cache: &mut BTreeMap<String, (String, Vec<String>)>) -> (String, Vec<String>) {
        if let Some(c) = cache.get(user) {
            return c.clone();
        }
        let login = match self.admin(Method::GET, &format!("/api/v1/users/{user}"), "okta.user").await {
            Ok(a) if a.ok() => a.body.pointer("/profile/login").and_then(Value::as_str).unwrap_or_default().to_string(),
            _ => String::new(),
        };
        let roles = match self.admin(Method::GET, &format!("/api/v1/users/{user}/roles"), "okta.roles").await {
            Ok(a) if a.ok() => {
                a.body.as_array().map(|r| r.iter().filter_map(|x| str_at(x, "type").map(str::to_string)).collect()).unwrap_or_default()
            }
            _ => vec![],
        };
        cache.insert(user.to_string(), (login.clone(), roles.clone()));
        (login, roles)
    }

    /// The id of the user with login `login`.
    async fn user_id(&self, login: &str) -> Result<String, ProviderError> {
        let enc: String = url_path(login);
        let a = self.admin_ok(Method::GET, &format!("/api/v1/users/{enc}"), "okta.user").await?;
        Ok(str_at(&a.body, "id").unwrap_or_default().to_string())
    }
}

fn url_path(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn token_id(h: &Handle) -> Option<&str> {
    h.get(TOKEN_ID).map(String::as_str).filter(|s| !s.is_empty())
}
fn secret_id(h: &Handle) -> Option<&str> {
    h.get(SECRET_ID).map(String::as_str).filter(|s| !s.is_empty())
}

#[async_trait]
impl Provider for OktaProvider {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "okta"
    }

    async fn current_handle(&self, target: &Target, stored: Option<&Handle>) -> Result<Handle, ProviderError> {
        match kind_of(target, "okta.current")? {
            K::Token(t) => {
                if let Some(id) = stored.and_then(token_id).or(t.token_id.as_deref()) {
                    return Ok(Handle::from([(TOKEN_ID.into(), id.to_string())]));
                }
                let name = t.name.as_deref().unwrap_or_default();
                let user = match &t.user {
                    Some(login) => Some(self.user_id(login).await?),
                    None => None,
                };
                let found: Vec<String> = self
                    .tokens()
                    .await?
                    .iter()
                    .filter(|x| str_at(x, "name") == Some(name) && user.as_deref().is_none_or(|u| str_at(x, "userId") == Some(u)))
                    .filter_map(|x| str_at(x, "id").map(str::to_string))
                    .collect();
                match found.as_slice() {
                    [one] => Ok(Handle::from([(TOKEN_ID.into(), one.clone())])),
                    [] => Err(err(ErrorKind::NotFound, "okta.current", format!("no active API token named `{name}`"))),
                    many => Err(err(
                        ErrorKind::Conflict,
                        "okta.current",
                        format!("{} active API tokens are named `{name}` ({}); name the one meant with `token_id:`", many.len(), many.join(", ")),
                    )),
                }
            }
            K::Secret(t) => {
                if let Some(id) = stored.and_then(secret_id) {
                    return Ok(Handle::from([(SECRET_ID.into(), id.to_string())]));
                }
                let active: Vec<String> = self
                    .secrets(&t.app_id)
                    .await?
                    .iter()
                    .filter(|s| str_at(s, "status") == Some("ACTIVE"))
                    .filter_map(|s| str_at(s, "id").map(str::to_string))
                    .collect();
                match active.as_slice() {
                    [one] => Ok(Handle::from([(SECRET_ID.into(), one.clone())])),
                    [] => Err(err(ErrorKind::NotFound, "okta.current", format!("app {} has no active client secret", t.app_id))),
                    _ => Err(err(
                        ErrorKind::Conflict,
                        "okta.current",
                        format!(
                            "app {} has two active client secrets ({}): consumers may use either; store the one in service with its `secret_id` field, or deactivate the other",
                            t.app_id,
                            active.join(", ")
                        ),
                    )),
                }
            }
        }
    }

    fn handle_from_fields(&self, target: &Target, fields: &BTreeMap<String, String>) -> Handle {
        let key = if matches!(target, Target::OktaClientSecret(_)) { SECRET_ID } else { TOKEN_ID };
        fields.get(key).map(|id| Handle::from([(key.to_string(), id.clone())])).unwrap_or_default()
    }

    async fn mint(&self, target: &Target, _old: &Handle, _nonce: &str) -> Result<Minted, ProviderError> {
        let K::Secret(t) = kind_of(target, "okta.mint")? else {
            return Err(err(ErrorKind::Unsupported, "okta.mint", "Okta has no API that creates an API token: a person re-issues it (`manual:`)"));
        };
        // Not retried: a second POST would add a second secret.
        let auth = self.auth();
        let body = json!({});
        let target_path = format!("/api/v1/apps/{}/credentials/secrets", t.app_id);
        let a = self.http.send("okta.create_secret", &Request::new(Method::POST, &target_path).secret(AUTHORIZATION, &auth).json(&body)).await?;
        if !a.ok() {
            let kind = match a.status {
                400 => ErrorKind::Conflict,
                429 => ErrorKind::RateLimited,
                s if s >= 500 => ErrorKind::Unavailable,
                s => status_error("okta.create_secret", VENDOR, s).kind,
            };
            return Err(err(kind, "okta.create_secret", format!("creating a client secret for app {}: {} {}", t.app_id, a.status, error_code(&a))));
        }
        let (Some(id), Some(value)) = (str_at(&a.body, "id"), str_at(&a.body, "client_secret")) else {
            return Err(err(ErrorKind::Other, "okta.create_secret", "Okta's answer holds no secret id or value"));
        };
        let value = SecretString::from(value.to_string());
        let fields = BTreeMap::from([("client_id".to_string(), t.app_id.clone()), (SECRET_ID.to_string(), id.to_string())]);
        Ok(Minted { delivered: Delivered { value, fields }, handle: Handle::from([(SECRET_ID.into(), id.to_string())]) })
    }

    async fn cleanup_minted(&self, target: &Target, old: &Handle, nonce: &str, keep: Option<&Handle>) -> Result<usize, ProviderError> {
        self.cleanup_minted_since(target, old, nonce, keep, None).await
    }

    async fn cleanup_minted_since(
        &self,
        target: &Target,
        old: &Handle,
        nonce: &str,
        keep: Option<&Handle>,
        since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<usize, ProviderError> {
        // Okta's secrets carry no tag: an orphan is told by its creation time.
        let K::Secret(t) = kind_of(target, "okta.cleanup")? else { return Ok(0) };
        let Some((from, until)) = crate::provider::orphan_window(nonce, since.map(|s| s.timestamp())) else { return Ok(0) };
        let spare: BTreeSet<&str> = [secret_id(old), keep.and_then(secret_id)].into_iter().flatten().collect();
        let mut n = 0;
        for s in self.secrets(&t.app_id).await? {
            let id = str_at(&s, "id").unwrap_or_default();
            let made = time_of(&s, "created").map(|c| c.timestamp());
            if !spare.contains(id) && made.is_some_and(|c| c >= from && until.is_none_or(|u| c <= u)) {
                tracing::warn!(provider = %self.name, app = %t.app_id, secret = %id, "deleting an orphan client secret minted by an interrupted run");
                self.delete_secret(&t.app_id, id).await?;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn apply(&self, _target: &Target, _new: &Delivered) -> Result<(), ProviderError> {
        Err(err(ErrorKind::Unsupported, "okta.apply", "Okta makes its secrets itself; nothing is applied"))
    }

    async fn identify(&self, target: &Target, new: &Delivered, old: &Handle) -> Result<Handle, ProviderError> {
        let K::Token(t) = kind_of(target, "okta.identify")? else {
            return Ok(self.handle_from_fields(target, &new.fields));
        };
        let me = match self.whoami(&new.value, "okta.identify").await {
            Ok(a) if a.ok() => a,
            Ok(a) => {
                return Err(err(ErrorKind::Unauthenticated, "okta.identify", format!("Okta does not accept it: {} {}", a.status, error_code(&a))))
            }
            Err(v) => return Err(err(ErrorKind::Unavailable, "okta.identify", v.evidence().to_string())),
        };
        let user = str_at(&me.body, "id").unwrap_or_default().to_string();
        let login = me.body.pointer("/profile/login").and_then(Value::as_str).unwrap_or_default();
        let tokens = self.tokens().await?;
        let old_id = token_id(old);
        let old_user = old_id.and_then(|o| tokens.iter().find(|x| str_at(x, "id") == Some(o))).and_then(|x| str_at(x, "userId"));
        // Never a token of another user: another user's roles may be wider.
        let expected = match (old_user, &t.user) {
            (Some(u), _) => Some(u.to_string()),
            (None, Some(l)) => Some(self.user_id(l).await?),
            (None, None) => None,
        };
        match expected {
            Some(u) if u != user => {
                return Err(err(
                    ErrorKind::Config,
                    "okta.identify",
                    format!("it acts as `{login}` ({user}), not as the old token's user ({u}): a replacement never acts as another user"),
                ))
            }
            None => return Err(err(
                ErrorKind::Config,
                "okta.identify",
                "the old token's user is unknown (gone from Okta and no `user:` in the playbook), so the replacement's privilege cannot be checked",
            )),
            Some(_) => {}
        }
        // Its id: the newest-used token of that user (the call above just used
        // it), the old one and keysweep's own login aside (listing just used
        // that). When rotating its own login, the old token *is* the login:
        // the other candidates (a token issued in the same second as the
        // login's last use) may be the supplied one.
        let session: BTreeSet<&str> = match old_id {
            Some(o) if self.own_tokens.contains(o) => BTreeSet::from([o]),
            _ => self.own_tokens.iter().map(String::as_str).collect(),
        };
        let mine: Vec<&Value> = tokens
            .iter()
            .filter(|x| str_at(x, "userId") == Some(user.as_str()))
            .filter(|x| str_at(x, "id").is_some_and(|id| Some(id) != old_id && !session.contains(id)))
            .collect();
        let newest = mine.iter().filter_map(|x| time_of(x, "lastUpdated")).max();
        let at_newest: Vec<&str> =
            mine.iter().filter(|x| newest.is_some() && time_of(x, "lastUpdated") == newest).filter_map(|x| str_at(x, "id")).collect();
        match at_newest.as_slice() {
            [one] => Ok(Handle::from([(TOKEN_ID.into(), one.to_string())])),
            _ => Err(err(
                ErrorKind::Conflict,
                "okta.identify",
                format!(
                    "{} tokens of `{login}` were used at the same instant; cannot tell which is the supplied one: supply it again",
                    at_newest.len()
                ),
            )),
        }
    }

    async fn test(&self, target: &Target, new: &Delivered, handle: &Handle) -> Verdict {
        match kind_of(target, "okta.test") {
            Err(e) => Verdict::Unknown(e.to_string()),
            Ok(K::Token(_)) => match self.whoami(&new.value, "okta.test").await {
                Ok(a) => Self::token_verdict(&a, &format!("new token {}", token_id(handle).unwrap_or("?"))),
                Err(v) => v,
            },
            Ok(K::Secret(t)) => match self.token_request(t, &new.value, "okta.test").await {
                Ok(a) => Self::secret_verdict(&a, &format!("new secret {}", secret_id(handle).unwrap_or("?"))),
                Err(v) => v,
            },
        }
    }

    async fn retire(&self, target: &Target, old: &Handle) -> Result<(), ProviderError> {
        match kind_of(target, "okta.retire")? {
            K::Token(_) => {
                let id = token_id(old).ok_or_else(|| err(ErrorKind::Config, "okta.retire", "no token id to revoke"))?;
                let a = self.admin(Method::DELETE, &format!("/api/v1/api-tokens/{id}"), "okta.revoke_token").await?;
                match a.status {
                    200..=299 => Ok(()),
                    404 if error_code(&a) == "E0000007" => Ok(()), // already gone
                    s => Err(err(
                        status_error("okta.revoke_token", VENDOR, s).kind,
                        "okta.revoke_token",
                        format!("revoking token {id}: {s} {}", error_code(&a)),
                    )),
                }
            }
            K::Secret(t) => {
                let id = secret_id(old).ok_or_else(|| err(ErrorKind::Config, "okta.retire", "no secret id to delete"))?;
                self.delete_secret(&t.app_id, id).await
            }
        }
    }

    async fn verify_dead(&self, target: &Target, old: &Handle, old_value: Option<&SecretString>) -> Verdict {
        match kind_of(target, "okta.verify") {
            Err(e) => Verdict::Unknown(e.to_string()),
            Ok(K::Token(_)) => {
                let id = token_id(old).unwrap_or("?");
                if let Some(v) = old_value {
                    return match self.whoami(v, "okta.verify").await {
                        Ok(a) => Self::token_verdict(&a, &format!("old token {id}")),
                        Err(v) => v,
                    };
                }
                match self.admin(Method::GET, &format!("/api/v1/api-tokens/{id}"), "okta.verify").await {
                    Ok(a) if a.status == 404 && error_code(&a) == "E0000007" => {
                        Verdict::Dead(format!("Okta lists no active API token {id}: 404 E0000007"))
                    }
                    Ok(a) if a.ok() => Verdict::Alive(format!("Okta lists API token {id} as active")),
                    Ok(a) => Verdict::Unknown(format!("Okta answered {} {} for token {id}", a.status, error_code(&a))),
                    Err(e) => Verdict::Unknown(e.to_string()),
                }
            }
            Ok(K::Secret(t)) => {
                let id = secret_id(old).unwrap_or("?");
                let v = match old_value {
                    Some(v) => match self.token_request(t, v, "okta.verify").await {
                        Ok(a) => Self::secret_verdict(&a, &format!("old secret {id}")),
                        Err(v) => v,
                    },
                    None => match self.admin(Method::GET, &format!("/api/v1/apps/{}/credentials/secrets/{id}", t.app_id), "okta.verify").await {
                        Ok(a) if a.status == 404 && error_code(&a) == "E0000007" => {
                            Verdict::Dead(format!("Okta holds no secret {id} for app {}: 404 E0000007", t.app_id))
                        }
                        Ok(a) if a.ok() => Verdict::Alive(format!("Okta still holds secret {id} ({})", str_at(&a.body, "status").unwrap_or("?"))),
                        Ok(a) => Verdict::Unknown(format!("Okta answered {} {} for secret {id}", a.status, error_code(&a))),
                        Err(e) => Verdict::Unknown(e.to_string()),
                    },
                };
                match v {
                    Verdict::Dead(e) => Verdict::Dead(format!("{e}; {DERIVED_WINDOW}")),
                    other => other,
                }
            }
        }
    }

    async fn inventory(&self) -> Result<Vec<InventoryItem>, ProviderError> {
        let mut out = vec![];
        let mut users = BTreeMap::new();
        for t in self.tokens().await? {
            let id = str_at(&t, "id").unwrap_or_default().to_string();
            let user = str_at(&t, "userId").unwrap_or_default().to_string();
            let (login, roles) = self.user_details(&user, &mut users).await;
            // Last use, from the sliding expiry: each use sets expiresAt to now + tokenWindow.
            let last_used = match (time_of(&t, "expiresAt"), str_at(&t, "tokenWindow").and_then(iso_duration)) {
                (Some(exp), Some(w)) => Some((exp - w).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                _ => None,
            };
            let mut details = BTreeMap::from([
                ("name".to_string(), str_at(&t, "name").unwrap_or_default().to_string()),
                ("user_id".to_string(), user.clone()),
                ("login".to_string(), login),
                ("roles".to_string(), roles.join(",")),
                ("privileged".to_string(), (!roles.is_empty()).to_string()),
            ]);
            if let Some(c) = str_at(&t, "clientName") {
                details.insert("client_name".into(), c.to_string());
            }
            // keysweep's own login: a long-lived credential like any other, so
            // listed (not a session that ends with the run); rotating it needs
            // `manual:` steps and its new value in a store its `api_token` reads.
            if self.own_tokens.contains(&id) {
                details.insert("keysweep_login".into(), "true".into());
            }
            let created = str_at(&t, "created").map(str::to_string);
            out.push(InventoryItem {
                kind: "okta_api_token".into(),
                id,
                created: created.clone(),
                rotated: created,
                last_used,
                usage_tracked: true,
                details,
            });
        }
        for app in self.list("/api/v1/apps?limit=200", "okta.list_apps").await? {
            let grants = app.pointer("/settings/oauthClient/grant_types").and_then(Value::as_array);
            let service = grants.is_some_and(|g| g.iter().any(|x| x == "client_credentials"));
            if str_at(&app, "signOnMode") != Some("OPENID_CONNECT") || !service {
                continue;
            }
            let id = str_at(&app, "id").unwrap_or_default().to_string();
            let secrets = self.secrets(&id).await?;
            let active: Vec<&Value> = secrets.iter().filter(|s| str_at(s, "status") == Some("ACTIVE")).collect();
            let rotated = active.iter().filter_map(|s| time_of(s, "created")).max().map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            let details = BTreeMap::from([
                ("label".to_string(), str_at(&app, "label").unwrap_or_default().to_string()),
                ("secrets".to_string(), secrets.len().to_string()),
                ("active_secrets".to_string(), active.len().to_string()),
            ]);
            out.push(InventoryItem {
                kind: "okta_client_secret".into(),
                id,
                created: str_at(&app, "created").map(str::to_string),
                rotated,
                last_used: None,
                usage_tracked: false,
                details,
            });
        }
        Ok(out)
    }

    fn is_own_login(&self, target: &Target, old: &Handle) -> bool {
        matches!(target, Target::OktaApiToken(_)) && token_id(old).is_some_and(|id| self.own_tokens.contains(id))
    }

    fn can_switch_login(&self, target: &Target) -> bool {
        matches!(target, Target::OktaApiToken(_))
    }

    async fn switch_login(&self, _target: &Target, new: &Delivered) -> Result<(), ProviderError> {
        match self.whoami(&new.value, "okta.switch_login").await {
            Ok(a) if a.ok() && str_at(&a.body, "id") == Some(self.own_user.as_str()) => {
                *self.login.write().unwrap_or_else(|e| e.into_inner()) = ssws(&new.value);
                Ok(())
            }
            Ok(a) => Err(err(ErrorKind::Unauthenticated, "okta.switch_login", format!("the new token answered {} {}", a.status, error_code(&a)))),
            Err(v) => Err(err(ErrorKind::Unavailable, "okta.switch_login", v.evidence().to_string())),
        }
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
    use super::iso_duration;

    #[test]
    fn token_windows() {
        assert_eq!(iso_duration("P30D"), Some(chrono::Duration::days(30)));
        assert_eq!(iso_duration("PT12H"), Some(chrono::Duration::hours(12)));
        assert_eq!(iso_duration("P1DT1H30M"), Some(chrono::Duration::minutes(24 * 60 + 90)));
        assert_eq!(iso_duration("30D"), None);
        assert_eq!(iso_duration("P3X"), None);
    }
}
