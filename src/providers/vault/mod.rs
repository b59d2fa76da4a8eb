//! Vault / OpenBao: tokens, AppRole secret-ids and KV v2 secrets as credentials,
//! and KV v2 as a delivery store.
//!
//! Proof of death, from the API's own answers (checked against OpenBao 2.7):
//! - token: `POST auth/token/lookup-accessor` answers 400 `invalid accessor`
//!   (admin side). A probe with the old token answers 403 `permission denied`,
//!   which a policy problem also gives, so the probe alone never proves death;
//!   a 200 to it proves life.
//! - AppRole secret-id: `secret-id-accessor/lookup` answers 404 `failed to find
//!   accessor entry`; a login with the old secret-id answers 400
//!   `invalid role or secret ID` (the role id having just been proven good).
//! - KV secret: the old version is destroyed (`destroyed: true` in metadata).
//!
//! Anything else (429, 5xx, timeouts, other bodies) is unknown, and so is any
//! answer that is not Vault's own JSON (an HTML error page of a load balancer
//! or WAF, a truncated or rewritten body): see `http.rs`.
//!
//! Never more privilege or life: a replacement token is minted only from the
//! old token's settings as Vault reports them (a well-formed lookup-accessor
//! answer) or from `policies:`/`ttl:` declared in the playbook, never with
//! empty policies (Vault would give it keysweep's own), and read back after
//! minting: policies beyond the old ones, a longer or missing TTL, max TTL,
//! period or use count, and it is revoked and `stage` fails. A replacement
//! secret-id keeps the old one's `num_uses`, `ttl` and CIDR bindings and is
//! checked the same way.

pub mod aws_login;
pub mod config;
pub mod http;
mod store;

use std::collections::BTreeMap;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{json, Value};

use crate::playbook::model::Target;
use crate::provider::seen;
use crate::provider::{ErrorKind, Handle, InventoryItem, Minted, Provider, ProviderError, Store, Verdict};
use crate::secret::{Delivered, ExposeSecret, SecretString};
use config::{VaultAuth, VaultProviderConfig};
use http::{list_method, VaultHttp};

pub const NONCE_KEY: &str = "keysweep_nonce";

pub struct VaultProvider {
    name: String,
    pub(crate) http: VaultHttp,
    pending_prefix: String,
    /// Logged in through a login method (AppRole, cert, Kubernetes, JWT,
    /// AWS): the token is keysweep's own session, revoked by `close`.
    session: bool,
    /// What keysweep's own login is, as read at `check_login`.
    own: std::sync::RwLock<OwnLogin>,
    /// The AppRole login settings, to log in again with a rotated secret-id.
    approle: Option<(String, SecretString)>,
}

/// keysweep's own login to a Vault: the accessor of the token it presents
/// (token auth), or the AppRole role and secret-id it logged in with.
#[derive(Debug, Default, Clone)]
struct OwnLogin {
    token_accessor: Option<String>,
    approle_mount: Option<String>,
    approle_role: Option<String>,
    secret_id_accessor: Option<String>,
}

impl VaultProvider {
    /// Connects and logs in, reading what the playbook leaves out from the
    /// process environment (see [`VaultProvider::connect_with_env`]).
    pub async fn connect(name: &str, cfg: &VaultProviderConfig, resolve: &crate::provider::kind::Resolve<'_>) -> Result<Self, ProviderError> {
        Self::connect_with_env(name, cfg, resolve, &|k| std::env::var(k).ok()).await
    }

    /// Connects and logs in — a token (the playbook's, else `VAULT_TOKEN`,
    /// else `~/.vault-token`), AppRole, a TLS client certificate, a
    /// Kubernetes service-account token, a JWT, or AWS IAM — all through the
    /// provider's own client and its TLS settings. `address` and `namespace`
    /// left out of the playbook come from `VAULT_ADDR` and `VAULT_NAMESPACE`,
    /// read through `env` (as are `VAULT_CACERT`/`VAULT_CAPATH`).
    pub async fn connect_with_env(
        name: &str,
        cfg: &VaultProviderConfig,
        resolve: &crate::provider::kind::Resolve<'_>,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<Self, ProviderError> {
        let limits = &cfg.limits;
        let address = cfg.resolve_address(env)?;
        // The registry says the settings' warnings at every connection; this
        // one depends on the environment, so it is said here.
        if cfg.address.is_none() && cfg.allow_plaintext && crate::playbook::rules::plaintext_address_problem(&address, false).is_some() {
            eprintln!("keysweep: WARNING: provider `{name}`: plaintext `http://` (from VAULT_ADDR) to a host that is not loopback (allow_plaintext: true): the login token and every secret cross the network unencrypted");
        }
        let http = VaultHttp::with_tls(&address, cfg.resolve_namespace(env), SecretString::from(String::new()), limits, &cfg.tls, env)?;
        let token = match &cfg.auth {
            None => config::implicit_token(env)?.0,
            Some(VaultAuth::Token { token }) => resolve(token)?,
            Some(VaultAuth::Approle { mount, role_id, secret_id }) => {
                let role_id = resolve(role_id)?;
                let secret_id = resolve(secret_id)?;
                approle_login(&http, mount, &role_id, &secret_id).await?
            }
            Some(VaultAuth::Cert { mount, name }) => cert_login(&http, mount, name.as_deref()).await?,
            Some(VaultAuth::Kubernetes { mount, role, jwt_path }) => {
                let jwt = read_jwt("vault.kubernetes_login", "jwt_path", jwt_path)?;
                jwt_login(&http, "vault.kubernetes_login", mount, Some(role), &jwt).await?
            }
            Some(VaultAuth::Jwt { mount, role, jwt, jwt_path }) => {
                let jwt = match (jwt, jwt_path) {
                    (Some(r), _) => resolve(r)?,
                    (None, Some(p)) => read_jwt("vault.jwt_login", "jwt_path", p)?,
                    (None, None) => return Err(ProviderError::new(ErrorKind::Config, "vault.jwt_login", "`method: jwt` needs `jwt` or `jwt_path`")),
                };
                jwt_login(&http, "vault.jwt_login", mount, role.as_deref(), &jwt).await?
            }
            Some(VaultAuth::Aws { mount, role, header_value, region }) => {
                aws_login::login(&http, mount, role.as_deref(), header_value.as_deref(), region.as_deref(), limits).await?
            }
        };
        http.switch_admin_token(token);
        let session = cfg.auth.as_ref().is_some_and(VaultAuth::opens_session);
        let (own, approle) = match &cfg.auth {
            Some(VaultAuth::Approle { mount, role_id, .. }) => (
                OwnLogin { approle_mount: Some(mount.trim_matches('/').to_string()), ..Default::default() },
                Some((mount.clone(), resolve(role_id)?)),
            ),
            _ => (OwnLogin::default(), None),
        };
        Ok(VaultProvider {
            name: name.to_string(),
            http,
            pending_prefix: cfg.pending_prefix.trim_matches('/').to_string(),
            session,
            own: std::sync::RwLock::new(own),
            approle,
        })
    }

    /// Checks that keysweep's own token is accepted, and notes what that
    /// login is (so a playbook that lists it is worked safely): the token's
    /// accessor (a token it was given, or the session token a login opened),
    /// and for AppRole the role.
    pub async fn check_login(&self) -> Result<(), ProviderError> {
        let r = self.http.admin_ok("vault.lookup_self", Method::GET, "auth/token/lookup-self", None).await?;
        let d = &r.body["data"];
        let mut own = self.own.write().unwrap_or_else(|e| e.into_inner());
        if self.approle.is_some() {
            own.approle_role = d["meta"]["role_name"].as_str().map(str::to_string);
        }
        let accessor = d["accessor"].as_str().filter(|a| !a.is_empty()).map(str::to_string);
        let new_session = own.token_accessor != accessor;
        own.token_accessor = accessor;
        if self.session && new_session {
            // A session keysweep opened is kept alive for as long as the run
            // needs it (within its maximum TTL), from its first check on (a
            // login again with a rotated secret-id is a new session); a token
            // the operator gave is left as it is.
            self.http.renew_session(std::time::Duration::from_secs(d["ttl"].as_u64().unwrap_or(0)), d["renewable"].as_bool().unwrap_or(false));
        }
        Ok(())
    }

    pub fn request_count(&self) -> u64 {
        self.http.request_count()
    }

    async fn token_lookup_accessor(&self, accessor: &str) -> Result<http::Resp, ProviderError> {
        self.http.admin("vault.token.lookup_accessor", Method::POST, "auth/token/lookup-accessor", Some(json!({ "accessor": accessor }))).await
    }

    async fn secret_id_lookup(&self, mount: &str, role: &str, accessor: &str) -> Result<http::Resp, ProviderError> {
        self.http
            .admin(
                "vault.approle.lookup_accessor",
                Method::POST,
                &format!("auth/{mount}/role/{role}/secret-id-accessor/lookup"),
                Some(json!({ "secret_id_accessor": accessor })),
            )
            .await
    }

    /// The role's id: read once per lifecycle (a mint reads it, the proof
    /// of death logs in with it).
    async fn role_id(&self, mount: &str, role: &str) -> Result<String, ProviderError> {
        let path = format!("auth/{mount}/role/{role}/role-id");
        let key = self.memo_key(&path);
        if let Some(id) = seen::get(&key, |v| match v {
            seen::View::Held { body, .. } => Some(body.to_string()),
            seen::View::Absent { .. } => None,
        })
        .flatten()
        {
            return Ok(id);
        }
        let r = self.http.admin_ok("vault.approle.role_id", Method::GET, &path, None).await?;
        let id = r.body["data"]["role_id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| ProviderError::new(ErrorKind::Other, "vault.approle.role_id", "answer has no role_id"))?;
        seen::put(&key, "", vec![], id.clone());
        Ok(id)
    }

    /// Logs in with an AppRole secret-id; revokes the token it gets at once.
    async fn approle_probe(&self, mount: &str, role_id: &str, secret_id: &SecretString) -> Verdict {
        let body = json!({ "role_id": role_id, "secret_id": secret_id.expose_secret() });
        let r = match self.http.send("vault.approle.login", Method::POST, &format!("auth/{mount}/login"), None, Some(&body)).await {
            Ok(r) => r,
            Err(e) => return Verdict::Unknown(e.to_string()),
        };
        if r.ok() {
            let Some(t) = r.body["auth"]["client_token"].as_str() else {
                return Verdict::Unknown(format!("auth/{mount}/login: HTTP {} without `auth.client_token`", r.status));
            };
            let t = SecretString::from(t.to_string());
            let _ = self.http.send("vault.token.revoke_self", Method::POST, "auth/token/revoke-self", Some(&t), None).await;
            return Verdict::Alive(format!("auth/{mount}/login accepted it (HTTP {})", r.status));
        }
        if r.status == 400 && r.error_contains("invalid role or secret ID") {
            return Verdict::Dead(format!("auth/{mount}/login refused it: {}", r.describe()));
        }
        Verdict::Unknown(format!("auth/{mount}/login: {}", r.describe()))
    }

    /// Whether the role limits secret-id uses (then a test login would spend
    /// one). Read once per lifecycle: the test and the proof of death both ask.
    async fn secret_id_uses_limited(&self, mount: &str, role: &str) -> Result<bool, ProviderError> {
        let path = format!("auth/{mount}/role/{role}");
        let key = self.memo_key(&format!("{path}#secret_id_num_uses"));
        if let Some(limited) = seen::get(&key, |v| match v {
            seen::View::Held { version, .. } => Some(version == "limited"),
            seen::View::Absent { .. } => None,
        })
        .flatten()
        {
            return Ok(limited);
        }
        let r = self.http.admin_ok("vault.approle.read_role", Method::GET, &path, None).await?;
        // Missing, it is not "unlimited": a test login could spend a use.
        let limited = r.body["data"]["secret_id_num_uses"].as_u64().map(|n| n > 0).ok_or_else(|| {
            ProviderError::new(
                ErrorKind::Unavailable,
                "vault.approle.read_role",
                format!("auth/{mount}/role/{role}: the answer has no `data.secret_id_num_uses` number"),
            )
        })?;
        seen::put(&key, if limited { "limited" } else { "unlimited" }, vec![], String::new());
        Ok(limited)
    }

    /// Admin-side check of a secret-id by value: 200 = exists, 204 = not found.
    async fn secret_id_lookup_by_value(&self, mount: &str, role: &str, secret_id: &SecretString) -> Verdict {
        let path = format!("auth/{mount}/role/{role}/secret-id/lookup");
        let body = json!({ "secret_id": secret_id.expose_secret() });
        match self.http.send_admin("vault.approle.lookup_secret_id", Method::POST, &path, Some(&body)).await {
            Ok(r) if r.status == 200 => Verdict::Alive("secret-id/lookup finds it (role limits uses: no login spent)".into()),
            Ok(r) if r.status == 204 => Verdict::Dead("secret-id/lookup: HTTP 204 (no such secret-id)".into()),
            Ok(r) => Verdict::Unknown(format!("secret-id/lookup: {}", r.describe())),
            Err(e) => Verdict::Unknown(e.to_string()),
        }
    }

    /// Finds every accessor under `list_path` whose metadata carries `nonce`.
    async fn find_by_nonce(&self, kind: &str, mount: &str, role: &str, nonce: &str) -> Result<Vec<String>, ProviderError> {
        let (list_path, is_token) = match kind {
            "token" => ("auth/token/accessors".to_string(), true),
            _ => (format!("auth/{mount}/role/{role}/secret-id"), false),
        };
        let r = self.http.admin("vault.list_accessors", list_method(), &list_path, None).await?;
        if r.is_vendor_not_found() {
            return Ok(vec![]);
        }
        if !r.ok() {
            return Err(ProviderError::new(ErrorKind::Other, "vault.list_accessors", r.describe()));
        }
        // Only reached after a crash between mint and store: a scan of every
        // accessor, sixteen lookups at a time.
        use futures::{StreamExt, TryStreamExt};
        // A 2xx without `data.keys` is not a whole answer: "no orphan" is never read from it.
        let Some(keys) = r.body["data"]["keys"].as_array() else {
            return Err(ProviderError::new(
                ErrorKind::Unavailable,
                "vault.list_accessors",
                format!("{list_path}: HTTP {} without `data.keys`", r.status),
            ));
        };
        let accessors: Vec<String> = keys.iter().filter_map(|v| v.as_str().map(str::to_string)).collect();
        let found: Vec<Option<String>> = futures::stream::iter(accessors)
            .map(|acc| async move {
                let l = if is_token { self.token_lookup_accessor(&acc).await? } else { self.secret_id_lookup(mount, role, &acc).await? };
                let meta = if is_token { &l.body["data"]["meta"] } else { &l.body["data"]["metadata"] };
                Ok::<_, ProviderError>((l.ok() && meta[NONCE_KEY].as_str() == Some(nonce)).then_some(acc))
            })
            .buffer_unordered(16)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn revoke_token_accessor(&self, accessor: &str) -> Result<(), ProviderError> {
        // 2xx whether or not the token still exists (OpenBao warns "No token
        // found"); a revocation racing another (a killed run's, still in
        // flight) can answer 400 "token not found" / "invalid accessor": gone
        // is success here, and verify_dead proves it either way.
        let r =
            self.http.admin("vault.token.revoke_accessor", Method::POST, "auth/token/revoke-accessor", Some(json!({ "accessor": accessor }))).await?;
        if r.ok() || (r.status == 400 && r.vendor && (r.error_contains("token not found") || r.error_contains("invalid accessor"))) {
            return Ok(());
        }
        Err(ProviderError::new(
            if r.status == 403 { ErrorKind::PermissionDenied } else { ErrorKind::Other },
            "vault.token.revoke_accessor",
            format!("auth/token/revoke-accessor: {}", r.describe()),
        ))
    }

    async fn destroy_secret_id(&self, mount: &str, role: &str, accessor: &str) -> Result<(), ProviderError> {
        let path = format!("auth/{mount}/role/{role}/secret-id-accessor/destroy");
        let body = json!({ "secret_id_accessor": accessor });
        // Destroy at once (one request, not retried): the usual case. Any
        // other answer, a network error included, is looked into: destroying
        // an accessor that is already gone answers 500, so a lookup tells
        // "gone" (success) from a real failure, which is then retried as usual.
        if let Ok(r) = self.http.send_admin("vault.approle.destroy_accessor", Method::POST, &path, Some(&body)).await {
            if r.ok() {
                return Ok(());
            }
        }
        let l = self.secret_id_lookup(mount, role, accessor).await?;
        if l.is_vendor_not_found() || (!l.ok() && l.error_contains("failed to find accessor entry")) {
            return Ok(());
        }
        self.http
            .admin_ok(
                "vault.approle.destroy_accessor",
                Method::POST,
                &format!("auth/{mount}/role/{role}/secret-id-accessor/destroy"),
                Some(json!({ "secret_id_accessor": accessor })),
            )
            .await
            .map(|_| ())
    }
}

/// TLS certificate login (`cert` auth) with the client's certificate.
async fn cert_login(http: &VaultHttp, mount: &str, name: Option<&str>) -> Result<SecretString, ProviderError> {
    const OP: &str = "vault.cert_login";
    let body = match name {
        Some(n) => json!({ "name": n }),
        None => json!({}),
    };
    let path = format!("auth/{}/login", mount.trim_matches('/'));
    let r = http.send(OP, Method::POST, &path, None, Some(&body)).await?;
    login_token(OP, &path, r)
}

/// Reads a JWT from `path` (the `field` setting): at each login, so a token
/// file Kubernetes or a CI runner refreshes is followed. Errors name the file,
/// never its content.
fn read_jwt(op: &'static str, field: &str, path: &str) -> Result<SecretString, ProviderError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound && path == config::KUBERNETES_JWT_PATH {
            " (keysweep is not running in a Kubernetes pod with a service-account token mounted; set `jwt_path`)"
        } else {
            ""
        };
        ProviderError::new(ErrorKind::Config, op, format!("`{field}` `{path}`: {e}{hint}"))
    })?;
    let jwt = SecretString::from(text.trim().to_string());
    if jwt.expose_secret().is_empty() {
        return Err(ProviderError::new(ErrorKind::Config, op, format!("`{field}` `{path}` is empty")));
    }
    Ok(jwt)
}

/// Login with a JWT (`kubernetes` and `jwt` auth: `POST auth/<mount>/login
/// {role, jwt}`), over the provider's own client.
async fn jwt_login(http: &VaultHttp, op: &'static str, mount: &str, role: Option<&str>, jwt: &SecretString) -> Result<SecretString, ProviderError> {
    let mut body = json!({ "jwt": jwt.expose_secret() });
    if let Some(r) = role {
        body["role"] = json!(r);
    }
    let path = format!("auth/{}/login", mount.trim_matches('/'));
    let r = http.send(op, Method::POST, &path, None, Some(&body)).await?;
    login_token(op, &path, r)
}

/// The token of a login answer, or the refusal as an error of its kind.
fn login_token(op: &'static str, path: &str, r: http::Resp) -> Result<SecretString, ProviderError> {
    if !r.ok() {
        let kind = match r.status {
            429 => ErrorKind::RateLimited,
            s if s >= 500 => ErrorKind::Unavailable,
            _ => ErrorKind::Unauthenticated,
        };
        // Logins need no token: Vault's bare `permission denied` to one means
        // nothing answers at that path (or the login was refused without a reason).
        let hint = if r.status == 403 && r.error_text().trim() == "permission denied" {
            " (Vault answers this to a login at a path where no auth method is enabled: check the auth method is enabled at this `mount`)"
        } else {
            ""
        };
        return Err(ProviderError::new(kind, op, format!("{path}: {}{hint}", r.describe())));
    }
    match r.body["auth"]["client_token"].as_str().filter(|t| !t.is_empty()) {
        Some(t) => Ok(SecretString::from(t.to_string())),
        None => Err(ProviderError::new(ErrorKind::Unavailable, op, format!("{path}: HTTP {} without `auth.client_token`", r.status))),
    }
}

/// AppRole login over the provider's own client (its TLS settings apply).
async fn approle_login(http: &VaultHttp, mount: &str, role_id: &SecretString, secret_id: &SecretString) -> Result<SecretString, ProviderError> {
    const OP: &str = "vault.approle_login";
    let body = json!({ "role_id": role_id.expose_secret(), "secret_id": secret_id.expose_secret() });
    let path = format!("auth/{}/login", mount.trim_matches('/'));
    let r = http.send(OP, Method::POST, &path, None, Some(&body)).await?;
    login_token(OP, &path, r)
}

fn unsupported(op: &'static str, target: &Target) -> ProviderError {
    ProviderError::new(ErrorKind::Unsupported, op, format!("vault provider does not {op} `{}`", target.kind()))
}

fn handle_get<'a>(h: &'a Handle, k: &str) -> Option<&'a str> {
    h.get(k).map(String::as_str).filter(|s| !s.is_empty())
}

fn one(k: &str, v: impl Into<String>) -> Handle {
    BTreeMap::from([(k.to_string(), v.into())])
}

/// A token's settings, as lookup-accessor reports them.
#[derive(Debug, Clone)]
struct TokenSettings {
    policies: Vec<String>,
    creation_ttl: u64,
    explicit_max_ttl: u64,
    period: u64,
    num_uses: u64,
    renewable: bool,
    meta: serde_json::Map<String, Value>,
    display_name: Option<String>,
}

/// The most a replacement token may carry.
#[derive(Debug, Clone)]
struct TokenBounds {
    policies: Vec<String>,
    ttl: Option<u64>,
    explicit_max_ttl: Option<u64>,
    period: Option<u64>,
    num_uses: Option<u64>,
    renewable: bool,
}

impl TokenSettings {
    /// Parses a lookup-accessor answer; every field keysweep bounds the
    /// replacement by must be there and of the documented type.
    fn parse(r: &http::Resp) -> Result<TokenSettings, String> {
        if !r.has_data() {
            return Err("no `data` object".into());
        }
        let d = &r.body["data"];
        let policies = d["policies"].as_array().ok_or("no `data.policies` array")?;
        let policies: Vec<String> =
            policies.iter().map(|p| p.as_str().map(str::to_string)).collect::<Option<_>>().ok_or("`data.policies` holds a non-string")?;
        let num = |k: &str| d[k].as_u64().ok_or(format!("no `data.{k}` number"));
        let meta = match &d["meta"] {
            Value::Null => serde_json::Map::new(),
            Value::Object(m) => m.clone(),
            _ => return Err("`data.meta` is neither null nor an object".into()),
        };
        Ok(TokenSettings {
            policies,
            creation_ttl: num("creation_ttl")?,
            explicit_max_ttl: num("explicit_max_ttl")?,
            // Only periodic tokens report a period.
            period: if d["period"].is_null() { 0 } else { num("period")? },
            num_uses: num("num_uses")?,
            renewable: d["renewable"].as_bool().ok_or("no `data.renewable` boolean")?,
            meta,
            display_name: d["display_name"].as_str().map(|s| s.trim_start_matches("token-").to_string()),
        })
    }

    /// The bounds of a replacement: the old token's settings (`None`: Vault
    /// no longer knows it), overridden by what the playbook declares.
    fn bounds(old: Option<&TokenSettings>, declared_policies: Option<&[String]>, declared_ttl: Option<u64>) -> Result<TokenBounds, String> {
        let Some(old) = old else {
            let (Some(policies), Some(ttl)) = (declared_policies, declared_ttl) else {
                return Err("Vault no longer knows the old token (lookup-accessor: invalid accessor — it expired or was revoked), so there are no policies or TTL to copy from it: declare `policies:` and `ttl:` for this credential".into());
            };
            return Self::checked(TokenBounds {
                policies: policies.to_vec(),
                ttl: Some(ttl),
                explicit_max_ttl: None,
                period: None,
                num_uses: None,
                renewable: true,
            });
        };
        let policies = match declared_policies {
            Some(p) => p.to_vec(),
            None => {
                let p: Vec<String> = old.policies.iter().filter(|p| *p != "root").cloned().collect();
                if p.is_empty() && old.policies.iter().any(|p| p == "root") {
                    return Err("the old token's only policy is `root`, and keysweep never mints a root token (a replacement needs its own policies): declare `policies:` and `ttl:` for this credential".into());
                }
                p
            }
        };
        let pos = |n: u64| (n > 0).then_some(n);
        Self::checked(TokenBounds {
            policies,
            ttl: declared_ttl.or(pos(old.creation_ttl)),
            explicit_max_ttl: pos(old.explicit_max_ttl),
            period: pos(old.period),
            num_uses: pos(old.num_uses),
            renewable: old.renewable,
        })
    }

    fn checked(b: TokenBounds) -> Result<TokenBounds, String> {
        if b.policies.is_empty() {
            // Vault gives a token created with no policies the creator's own: keysweep's.
            return Err(
                "the replacement would have no policies, and Vault would then give it keysweep's own: declare `policies:` for this credential".into(),
            );
        }
        if b.policies.iter().any(|p| p == "root") {
            return Err("`policies:` lists `root`, and keysweep never mints a root token (list the policies the consumer needs instead)".into());
        }
        if b.ttl == Some(0) {
            return Err("`ttl:` is 0, which Vault reads as \"no TTL\": declare a positive `ttl:`".into());
        }
        Ok(b)
    }

    /// What `minted` carries beyond `bounds`, in words (empty: nothing).
    fn excess(&self, b: &TokenBounds) -> Vec<String> {
        let mut out = vec![];
        let extra: Vec<&str> = self.policies.iter().filter(|p| !b.policies.contains(p)).map(String::as_str).collect();
        if !extra.is_empty() {
            out.push(format!("policies {extra:?} beyond {:?}", b.policies));
        }
        let over = |name: &str, got: u64, max: Option<u64>, out: &mut Vec<String>| {
            if let Some(max) = max {
                if got == 0 || got > max {
                    out.push(format!("{name} {} where at most {max}s", if got == 0 { "none (unbounded)".to_string() } else { format!("{got}s") }));
                }
            }
        };
        over("ttl", self.creation_ttl, b.ttl, &mut out);
        over("explicit_max_ttl", self.explicit_max_ttl, b.explicit_max_ttl, &mut out);
        match b.period {
            Some(_) => over("period", self.period, b.period, &mut out),
            None if self.period > 0 => out.push(format!("period {}s (renewable forever) where the old token had none", self.period)),
            None => {}
        }
        if let Some(max) = b.num_uses {
            if self.num_uses == 0 || self.num_uses > max {
                out.push(format!(
                    "num_uses {} where at most {max}",
                    if self.num_uses == 0 { "unlimited".to_string() } else { self.num_uses.to_string() }
                ));
            }
        }
        if self.renewable && !b.renewable {
            out.push("renewable where the old token was not".into());
        }
        out
    }
}

impl VaultProvider {
    /// Reads back a token just minted and checks it carries no more privilege
    /// or life than `bounds`.
    async fn check_minted_token(&self, accessor: &str, bounds: &TokenBounds) -> Result<(), ProviderError> {
        let op = "vault.token.check_minted";
        let r = self.token_lookup_accessor(accessor).await?;
        if !r.ok() {
            return Err(ProviderError::new(
                ErrorKind::Unavailable,
                op,
                format!("could not read back the token just minted ({accessor}): {}; it is not delivered unchecked", r.describe()),
            ));
        }
        let minted = TokenSettings::parse(&r).map_err(|why| {
            ProviderError::new(
                ErrorKind::Unavailable,
                op,
                format!("the read-back of the token just minted ({accessor}) is not well-formed ({why}); it is not delivered unchecked"),
            )
        })?;
        let excess = minted.excess(bounds);
        if excess.is_empty() {
            return Ok(());
        }
        Err(ProviderError::new(
            ErrorKind::Conflict,
            op,
            format!(
                "the token Vault minted ({accessor}) carries more than the one it replaces: {}. A token role, or something between keysweep and Vault, widened it; declare narrower `policies:`/`ttl:` or fix the role",
                excess.join("; ")
            ),
        ))
    }
}

/// A secret-id's limits, as secret-id-accessor/lookup reports them.
#[derive(Debug, Clone)]
struct SecretIdSettings {
    num_uses: u64,
    ttl: u64,
    cidr_list: Vec<String>,
    token_bound_cidrs: Vec<String>,
    metadata: serde_json::Map<String, Value>,
}

impl SecretIdSettings {
    fn parse(r: &http::Resp) -> Result<SecretIdSettings, String> {
        if !r.has_data() {
            return Err("no `data` object".into());
        }
        let d = &r.body["data"];
        let num = |k: &str| d[k].as_u64().ok_or(format!("no `data.{k}` number"));
        let list = |k: &str| -> Result<Vec<String>, String> {
            match &d[k] {
                Value::Null => Ok(vec![]),
                Value::Array(a) => {
                    a.iter().map(|v| v.as_str().map(str::to_string)).collect::<Option<_>>().ok_or(format!("`data.{k}` holds a non-string"))
                }
                _ => Err(format!("`data.{k}` is not a list")),
            }
        };
        let metadata = match &d["metadata"] {
            Value::Null => serde_json::Map::new(),
            Value::Object(m) => m.clone(),
            _ => return Err("`data.metadata` is neither null nor an object".into()),
        };
        Ok(SecretIdSettings {
            num_uses: num("secret_id_num_uses")?,
            ttl: num("secret_id_ttl")?,
            cidr_list: list("cidr_list")?,
            token_bound_cidrs: list("token_bound_cidrs")?,
            metadata,
        })
    }

    /// What `self` (a new secret-id) allows beyond `old`, in words.
    fn excess(&self, old: &SecretIdSettings) -> Vec<String> {
        let mut out = vec![];
        for (name, got, max) in [("num_uses", self.num_uses, old.num_uses), ("ttl", self.ttl, old.ttl)] {
            if max > 0 && (got == 0 || got > max) {
                out.push(format!("{name} {} where at most {max}", if got == 0 { "unlimited".to_string() } else { got.to_string() }));
            }
        }
        for (name, got, max) in
            [("cidr_list", &self.cidr_list, &old.cidr_list), ("token_bound_cidrs", &self.token_bound_cidrs, &old.token_bound_cidrs)]
        {
            if !max.is_empty() && (got.is_empty() || got.iter().any(|c| !max.contains(c))) {
                out.push(format!("{name} {got:?} where the old secret-id was bound to {max:?}"));
            }
        }
        out
    }
}

impl VaultProvider {
    /// Reads back a secret-id just minted and checks it allows no more than the old one.
    async fn check_minted_secret_id(&self, mount: &str, role: &str, accessor: &str, old: &SecretIdSettings) -> Result<(), ProviderError> {
        let op = "vault.approle.check_minted";
        let r = self.secret_id_lookup(mount, role, accessor).await?;
        let minted = if r.ok() { SecretIdSettings::parse(&r).ok() } else { None };
        let Some(minted) = minted else {
            return Err(ProviderError::new(
                ErrorKind::Unavailable,
                op,
                format!("could not read back the secret-id just minted ({accessor}): {}; it is not delivered unchecked", r.describe()),
            ));
        };
        let excess = minted.excess(old);
        if excess.is_empty() {
            return Ok(());
        }
        Err(ProviderError::new(
            ErrorKind::Conflict,
            op,
            format!(
                "the secret-id Vault minted ({accessor}) allows more than the one it replaces: {}; check role `{role}`'s secret-id settings",
                excess.join("; ")
            ),
        ))
    }
}

#[async_trait]
impl Provider for VaultProvider {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "vault"
    }
    fn request_count(&self) -> Option<u64> {
        Some(self.http.request_count())
    }

    fn adaptive(&self) -> Option<std::sync::Arc<crate::provider::adaptive::AdaptiveLimit>> {
        Some(self.http.adaptive())
    }

    async fn current_handle(&self, target: &Target, stored: Option<&Handle>) -> Result<Handle, ProviderError> {
        let from_store = |k: &str| stored.and_then(|s| handle_get(s, k)).map(str::to_string);
        match target {
            Target::VaultToken(t) => {
                let acc = from_store("accessor").or_else(|| t.accessor.clone()).ok_or_else(|| {
                    ProviderError::new(ErrorKind::Config, "vault.current_handle", "no accessor known for the token in service: set target.accessor")
                })?;
                Ok(one("accessor", acc))
            }
            Target::VaultApproleSecretId(t) => {
                let acc = from_store("accessor").or_else(|| t.secret_id_accessor.clone()).ok_or_else(|| {
                    ProviderError::new(
                        ErrorKind::Config,
                        "vault.current_handle",
                        "no accessor known for the secret-id in service: set target.secret_id_accessor",
                    )
                })?;
                Ok(one("accessor", acc))
            }
            Target::VaultKvSecret(t) => {
                if let Some(v) = from_store("version") {
                    return Ok(one("version", v));
                }
                let r = self.http.admin("vault.kv.metadata", Method::GET, &format!("{}/metadata/{}", t.mount, t.path), None).await?;
                if r.is_vendor_not_found() {
                    return Ok(Handle::new());
                }
                if !r.ok() {
                    return Err(ProviderError::new(ErrorKind::Other, "vault.kv.metadata", r.describe()));
                }
                match r.body["data"]["current_version"].as_u64() {
                    Some(v) => Ok(one("version", v.to_string())),
                    None => Err(ProviderError::new(
                        ErrorKind::Unavailable,
                        "vault.kv.metadata",
                        format!(
                            "{}/metadata/{}: the answer has no `data.current_version` number; retry, or check what sits between keysweep and Vault",
                            t.mount, t.path
                        ),
                    )),
                }
            }
            other => Err(unsupported("current_handle", other)),
        }
    }

    fn handle_from_fields(&self, _target: &Target, fields: &BTreeMap<String, String>) -> Handle {
        fields.iter().filter(|(k, _)| k.as_str() == "accessor").map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    async fn mint(&self, target: &Target, old: &Handle, nonce: &str) -> Result<Minted, ProviderError> {
        match target {
            Target::VaultToken(t) => {
                // What the replacement may carry at most: the old token's
                // settings, read from Vault's own well-formed answer, or what
                // the playbook declares. Never guessed, never empty.
                let acc = handle_get(old, "accessor");
                let old_settings = match acc {
                    Some(acc) => {
                        let l = self.token_lookup_accessor(acc).await?;
                        if l.status == 400 && l.error_contains("invalid accessor") {
                            None // expired or revoked: nothing left to copy
                        } else if l.ok() {
                            Some(TokenSettings::parse(&l).map_err(|why| {
                                ProviderError::new(
                                    ErrorKind::Unavailable,
                                    "vault.token.lookup_accessor",
                                    format!(
                                        "lookup-accessor {acc}: the answer is not a well-formed token lookup ({why}); not minting a replacement from it. Retry; if it persists, check what sits between keysweep and Vault"
                                    ),
                                )
                            })?)
                        } else {
                            return Err(ProviderError::new(
                                if l.status == 403 { ErrorKind::PermissionDenied } else { ErrorKind::Other },
                                "vault.token.lookup_accessor",
                                format!(
                                    "lookup-accessor {acc}: {}; keysweep copies the old token's policies and TTL from this answer and mints nothing without it. Grant keysweep `update` on auth/token/lookup-accessor",
                                    l.describe()
                                ),
                            ));
                        }
                    }
                    None => None,
                };
                let bounds = TokenSettings::bounds(old_settings.as_ref(), t.policies.as_deref(), t.ttl.map(|d| d.0.as_secs())).map_err(|why| {
                    ProviderError::new(
                        ErrorKind::Config,
                        "vault.token.create",
                        format!("not minting a replacement for token {}: {why}", acc.unwrap_or("?")),
                    )
                })?;
                let mut meta = old_settings.as_ref().map(|o| o.meta.clone()).unwrap_or_default();
                meta.insert(NONCE_KEY.into(), Value::String(nonce.to_string()));
                let mut body = json!({
                    "policies": bounds.policies,
                    // Vault adds `default` unless told not to: never more than the old token had.
                    "no_default_policy": !bounds.policies.iter().any(|p| p == "default"),
                    "meta": meta,
                    "renewable": bounds.renewable,
                });
                if let Some(ttl) = bounds.ttl {
                    body["ttl"] = json!(format!("{ttl}s"));
                }
                if let Some(p) = bounds.period {
                    body["period"] = json!(format!("{p}s"));
                }
                if let Some(m) = bounds.explicit_max_ttl {
                    body["explicit_max_ttl"] = json!(format!("{m}s"));
                }
                if let Some(n) = bounds.num_uses {
                    body["num_uses"] = json!(n);
                }
                if let Some(d) = old_settings.as_ref().and_then(|o| o.display_name.clone()).filter(|d| !d.is_empty()) {
                    body["display_name"] = Value::String(d);
                }
                let limited = bounds.num_uses.is_some();
                let path = match (&t.role, t.orphan.unwrap_or(true)) {
                    (Some(role), _) => format!("auth/token/create/{role}"),
                    (None, true) => "auth/token/create-orphan".to_string(),
                    (None, false) => "auth/token/create".to_string(),
                };
                // Not retried: a retry after a lost answer would mint a second
                // token. A lost answer leaves an orphan that cleanup_minted finds.
                let r = self.http.send_admin("vault.token.create", Method::POST, &path, Some(&body)).await?;
                let r = http::classify_transient("vault.token.create", &path, r)?;
                if !r.ok() {
                    return Err(ProviderError::new(ErrorKind::Other, "vault.token.create", r.describe()));
                }
                let token = r.body["auth"]["client_token"].as_str().map(|s| SecretString::from(s.to_string()));
                let acc = r.body["auth"]["accessor"].as_str().map(str::to_string);
                match (token, acc) {
                    (Some(token), Some(acc)) => {
                        // Read back what Vault actually minted before anyone gets it.
                        if let Err(e) = self.check_minted_token(&acc, &bounds).await {
                            let revoked = match self.revoke_token_accessor(&acc).await {
                                Ok(()) => "it was revoked".to_string(),
                                Err(r) => format!("revoking it failed too ({r}): revoke accessor {acc} by hand"),
                            };
                            return Err(ProviderError::new(e.kind, e.operation, format!("{}; {revoked}", e.message)));
                        }
                        let mut handle = one("accessor", acc.clone());
                        if limited {
                            // Every use counts: test it admin-side, not with lookup-self.
                            handle.insert("uses_limited".into(), "true".into());
                        } else if !bounds.policies.iter().any(|p| p == "default") {
                            // Without the `default` policy a token may not call
                            // lookup-self (403): test it admin-side.
                            handle.insert("no_default_policy".into(), "true".into());
                        }
                        Ok(Minted { delivered: Delivered::new(token).with_field("accessor", acc), handle })
                    }
                    _ => Err(ProviderError::new(ErrorKind::Other, "vault.token.create", "answer has no client_token/accessor")),
                }
            }
            Target::VaultApproleSecretId(t) => {
                let role_id = self.role_id(&t.mount, &t.role).await?;
                // The old secret-id's limits bound the new one's; a secret-id
                // Vault proves gone leaves the role's own limits (which Vault
                // caps every secret-id of the role by).
                let old_settings = match handle_get(old, "accessor") {
                    Some(acc) => {
                        let l = self.secret_id_lookup(&t.mount, &t.role, acc).await?;
                        if l.status == 404 && l.error_contains("failed to find accessor entry") {
                            tracing::warn!(provider = %self.name, role = %t.role, accessor = %acc, "the old secret-id is gone: the replacement gets the role's limits");
                            None
                        } else if l.ok() {
                            Some(SecretIdSettings::parse(&l).map_err(|why| {
                                ProviderError::new(
                                    ErrorKind::Unavailable,
                                    "vault.approle.lookup_accessor",
                                    format!("secret-id-accessor/lookup {acc}: the answer is not well-formed ({why}); not minting a replacement from it. Retry; if it persists, check what sits between keysweep and Vault"),
                                )
                            })?)
                        } else {
                            return Err(ProviderError::new(
                                if l.status == 403 { ErrorKind::PermissionDenied } else { ErrorKind::Other },
                                "vault.approle.lookup_accessor",
                                format!("secret-id-accessor/lookup {acc}: {}; keysweep copies the old secret-id's limits from this answer and mints nothing without it", l.describe()),
                            ));
                        }
                    }
                    None => None,
                };
                let mut meta = old_settings.as_ref().map(|o| o.metadata.clone()).unwrap_or_default();
                meta.insert(NONCE_KEY.into(), Value::String(nonce.to_string()));
                let path = format!("auth/{}/role/{}/secret-id", t.mount, t.role);
                let mut body = json!({ "metadata": Value::Object(meta).to_string() });
                if let Some(o) = &old_settings {
                    if o.num_uses > 0 {
                        body["num_uses"] = json!(o.num_uses);
                    }
                    if o.ttl > 0 {
                        body["ttl"] = json!(format!("{}s", o.ttl));
                    }
                    if !o.cidr_list.is_empty() {
                        body["cidr_list"] = json!(o.cidr_list);
                    }
                    if !o.token_bound_cidrs.is_empty() {
                        body["token_bound_cidrs"] = json!(o.token_bound_cidrs);
                    }
                }
                let r = self.http.send_admin("vault.approle.secret_id", Method::POST, &path, Some(&body)).await?;
                let r = http::classify_transient("vault.approle.secret_id", &path, r)?;
                if !r.ok() {
                    return Err(ProviderError::new(ErrorKind::Other, "vault.approle.secret_id", r.describe()));
                }
                let sid = r.body["data"]["secret_id"].as_str().map(|s| SecretString::from(s.to_string()));
                let acc = r.body["data"]["secret_id_accessor"].as_str().map(str::to_string);
                match (sid, acc) {
                    (Some(sid), Some(acc)) => {
                        if let Some(o) = &old_settings {
                            if let Err(e) = self.check_minted_secret_id(&t.mount, &t.role, &acc, o).await {
                                let destroyed = match self.destroy_secret_id(&t.mount, &t.role, &acc).await {
                                    Ok(()) => "it was destroyed".to_string(),
                                    Err(d) => format!("destroying it failed too ({d}): destroy secret-id accessor {acc} by hand"),
                                };
                                return Err(ProviderError::new(e.kind, e.operation, format!("{}; {destroyed}", e.message)));
                            }
                        }
                        Ok(Minted {
                            delivered: Delivered::new(sid).with_field("accessor", acc.clone()).with_field("role_id", role_id),
                            handle: one("accessor", acc),
                        })
                    }
                    _ => Err(ProviderError::new(ErrorKind::Other, "vault.approle.secret_id", "answer has no secret_id/accessor")),
                }
            }
            other => Err(unsupported("mint", other)),
        }
    }

    async fn cleanup_minted(&self, target: &Target, _old: &Handle, nonce: &str, keep: Option<&Handle>) -> Result<usize, ProviderError> {
        let keep_acc = keep.and_then(|h| handle_get(h, "accessor"));
        let (kind, mount, role) = match target {
            Target::VaultToken(_) => ("token", "", ""),
            Target::VaultApproleSecretId(t) => ("secret_id", t.mount.as_str(), t.role.as_str()),
            _ => return Ok(0),
        };
        let mut n = 0;
        for acc in self.find_by_nonce(kind, mount, role, nonce).await? {
            if Some(acc.as_str()) == keep_acc {
                continue;
            }
            if kind == "token" {
                self.revoke_token_accessor(&acc).await?;
            } else {
                self.destroy_secret_id(mount, role, &acc).await?;
            }
            tracing::warn!(provider = %self.name, accessor = %acc, "retired an orphan minted by an interrupted run");
            n += 1;
        }
        Ok(n)
    }

    async fn apply(&self, target: &Target, _new: &Delivered) -> Result<(), ProviderError> {
        match target {
            // The KV secret is its own owning system: promotion is what applies it.
            Target::VaultKvSecret(_) => Ok(()),
            other => Err(unsupported("apply", other)),
        }
    }

    async fn test(&self, target: &Target, new: &Delivered, handle: &Handle) -> Verdict {
        match target {
            Target::VaultToken(_) if handle_get(handle, "uses_limited").is_some() || handle_get(handle, "no_default_policy").is_some() => {
                let Some(acc) = handle_get(handle, "accessor") else { return Verdict::Unknown("no accessor for the new token".into()) };
                match self.token_lookup_accessor(acc).await {
                    Ok(r) if r.ok() => {
                        Verdict::Alive("new token found by lookup-accessor (use-limited or without `default`: tested admin-side)".into())
                    }
                    Ok(r) if r.status == 400 && r.error_contains("invalid accessor") => Verdict::Dead(format!("lookup-accessor: {}", r.describe())),
                    Ok(r) => Verdict::Unknown(format!("lookup-accessor: {}", r.describe())),
                    Err(e) => Verdict::Unknown(e.to_string()),
                }
            }
            Target::VaultToken(_) => {
                let r = match self.http.send("vault.token.lookup_self", Method::GET, "auth/token/lookup-self", Some(&new.value), None).await {
                    Ok(r) => r,
                    Err(e) => return Verdict::Unknown(e.to_string()),
                };
                if r.ok() {
                    let acc = r.body["data"]["accessor"].as_str().unwrap_or_default();
                    if Some(acc) == handle_get(handle, "accessor") {
                        return Verdict::Alive("new token accepted by auth/token/lookup-self".into());
                    }
                    return Verdict::Unknown("lookup-self accepted the token but named another accessor".into());
                }
                if r.status == 403 {
                    return Verdict::Dead(format!("new token refused by lookup-self: {}", r.describe()));
                }
                Verdict::Unknown(format!("lookup-self: {}", r.describe()))
            }
            Target::VaultApproleSecretId(t) => {
                let Some(role_id) = new.fields.get("role_id") else { return Verdict::Unknown("staged value has no role_id".into()) };
                match self.secret_id_uses_limited(&t.mount, &t.role).await {
                    Ok(false) => self.approle_probe(&t.mount, role_id, &new.value).await,
                    Ok(true) => self.secret_id_lookup_by_value(&t.mount, &t.role, &new.value).await,
                    Err(e) => Verdict::Unknown(e.to_string()),
                }
            }
            // The secret is its own owning system: the test is that the entry
            // holds the new value, staged (pending) or, once promoted, current.
            Target::VaultKvSecret(t) => {
                let loc = crate::playbook::StoreLocation {
                    provider: self.name.clone(),
                    mount: t.mount.clone(),
                    path: t.path.clone(),
                    field: t.field.clone(),
                };
                // What this lifecycle wrote there (a check-and-set write Vault
                // answered with its version) counts as read back: the memo
                // holds exactly what Vault accepted. A resumed run reads it.
                let is_new = |d: &Delivered| d.value.expose_secret() == new.value.expose_secret();
                match self.read_pending(&loc).await {
                    Ok(Some((d, _))) if is_new(&d) => return Verdict::Alive(format!("the pending value at {loc} holds the new value")),
                    Ok(_) => {}
                    Err(e) => return Verdict::Unknown(e.to_string()),
                }
                match self.read_current(&loc).await {
                    Ok(Some(cur)) if is_new(&cur.delivered) => Verdict::Alive(format!("the current value at {loc} is the new value")),
                    Ok(_) => Verdict::Dead(format!("neither the pending nor the current value at {loc} is the new value")),
                    Err(e) => Verdict::Unknown(e.to_string()),
                }
            }
            other => Verdict::Unknown(unsupported("test", other).to_string()),
        }
    }

    async fn retire(&self, target: &Target, old: &Handle) -> Result<(), ProviderError> {
        match target {
            Target::VaultToken(_) => match handle_get(old, "accessor") {
                Some(acc) => self.revoke_token_accessor(acc).await,
                None => Ok(()),
            },
            Target::VaultApproleSecretId(t) => match handle_get(old, "accessor") {
                Some(acc) => self.destroy_secret_id(&t.mount, &t.role, acc).await,
                None => Ok(()),
            },
            Target::VaultKvSecret(t) => {
                let Some(v) = handle_get(old, "version").and_then(|v| v.parse::<u64>().ok()) else { return Ok(()) };
                if !t.destroy_old || v == 0 {
                    return Ok(());
                }
                seen::forget(&self.memo_key(&format!("{}/data/{}?version={v}", t.mount, t.path)));
                self.http
                    .admin_ok("vault.kv.destroy", Method::PUT, &format!("{}/destroy/{}", t.mount, t.path), Some(json!({ "versions": [v] })))
                    .await
                    .map(|_| ())
            }
            other => Err(unsupported("retire", other)),
        }
    }

    fn verify_uses_old_value(&self, target: &Target) -> bool {
        // A KV version is proven dead from its metadata alone.
        !matches!(target, Target::VaultKvSecret(_))
    }

    async fn verify_dead(&self, target: &Target, old: &Handle, old_value: Option<&SecretString>) -> Verdict {
        match target {
            Target::VaultToken(_) => {
                let Some(acc) = handle_get(old, "accessor") else { return Verdict::Unknown("no accessor known for the old token".into()) };
                let admin = match self.token_lookup_accessor(acc).await {
                    Ok(r) if r.status == 400 && r.error_contains("invalid accessor") => Verdict::Dead(format!("lookup-accessor: {}", r.describe())),
                    Ok(r) if r.ok() => Verdict::Alive("lookup-accessor still finds the old token".into()),
                    Ok(r) => Verdict::Unknown(format!("lookup-accessor: {}", r.describe())),
                    Err(e) => Verdict::Unknown(e.to_string()),
                };
                let Some(old_value) = old_value else { return admin };
                let probe = match self.http.send("vault.token.lookup_self", Method::GET, "auth/token/lookup-self", Some(old_value), None).await {
                    Ok(r) if r.ok() => return Verdict::Alive("old token still accepted by lookup-self".into()),
                    Ok(r) if r.status == 403 => {
                        format!("lookup-self with the old token: {}", r.describe())
                    }
                    Ok(r) => return Verdict::Unknown(format!("lookup-self with the old token: {}", r.describe())),
                    Err(e) => return Verdict::Unknown(e.to_string()),
                };
                match admin {
                    Verdict::Dead(e) => Verdict::Dead(format!("{e}; {probe}")),
                    other => other,
                }
            }
            Target::VaultApproleSecretId(t) => {
                let Some(acc) = handle_get(old, "accessor") else { return Verdict::Unknown("no accessor known for the old secret-id".into()) };
                let admin = match self.secret_id_lookup(&t.mount, &t.role, acc).await {
                    Ok(r) if r.status == 404 && r.error_contains("failed to find accessor entry") => {
                        Verdict::Dead(format!("secret-id-accessor/lookup: {}", r.describe()))
                    }
                    Ok(r) if r.ok() => Verdict::Alive("secret-id-accessor/lookup still finds the old secret-id".into()),
                    Ok(r) => Verdict::Unknown(format!("secret-id-accessor/lookup: {}", r.describe())),
                    Err(e) => Verdict::Unknown(e.to_string()),
                };
                let Some(old_value) = old_value else { return admin };
                if !matches!(admin, Verdict::Dead(_)) {
                    return admin; // a login now could spend a use of a live secret-id
                }
                let probe = match self.secret_id_uses_limited(&t.mount, &t.role).await {
                    Ok(true) => self.secret_id_lookup_by_value(&t.mount, &t.role, old_value).await,
                    Ok(false) => match self.role_id(&t.mount, &t.role).await {
                        Ok(role_id) => self.approle_probe(&t.mount, &role_id, old_value).await,
                        Err(e) => Verdict::Unknown(e.to_string()),
                    },
                    Err(e) => Verdict::Unknown(e.to_string()),
                };
                match (admin, probe) {
                    (_, Verdict::Alive(e)) => Verdict::Alive(e),
                    (Verdict::Dead(a), Verdict::Dead(p)) => Verdict::Dead(format!("{a}; {p}")),
                    (Verdict::Dead(_), other) => other,
                    (other, _) => other,
                }
            }
            Target::VaultKvSecret(t) => {
                // Dead only from a read-back of the version's metadata.
                let Some(v) = handle_get(old, "version") else { return Verdict::Unknown("the old handle names no KV version to read back".into()) };
                let r = match self.http.admin("vault.kv.metadata", Method::GET, &format!("{}/metadata/{}", t.mount, t.path), None).await {
                    Ok(r) if r.ok() => r,
                    Ok(r) => return Verdict::Unknown(format!("metadata: {}", r.describe())),
                    Err(e) => return Verdict::Unknown(e.to_string()),
                };
                let (Some(current), Some(destroyed)) =
                    (r.body["data"]["current_version"].as_u64(), r.body["data"]["versions"][v]["destroyed"].as_bool())
                else {
                    return Verdict::Unknown(format!("metadata: the answer has no `current_version` or no `versions.{v}.destroyed`"));
                };
                let current = current.to_string();
                if destroyed {
                    Verdict::Dead(format!("version {v} destroyed (current version {current})"))
                } else if current == v {
                    Verdict::Alive(format!("version {v} is current and readable"))
                } else {
                    Verdict::Unknown(format!("version {v} superseded by {current} but still readable (destroy_old is off)"))
                }
            }
            other => Verdict::Unknown(unsupported("verify_dead", other).to_string()),
        }
    }

    fn is_own_login(&self, target: &Target, old: &Handle) -> bool {
        let own = self.own.read().unwrap_or_else(|e| e.into_inner()).clone();
        match target {
            Target::VaultToken(_) => own.token_accessor.is_some() && handle_get(old, "accessor") == own.token_accessor.as_deref(),
            // Without the accessor of the secret-id keysweep logged in with,
            // every secret-id of its role counts as its own: worked last, safely.
            Target::VaultApproleSecretId(t) => {
                own.approle_mount.as_deref() == Some(t.mount.trim_matches('/'))
                    && own.approle_role.as_deref() == Some(t.role.as_str())
                    && (own.secret_id_accessor.is_none() || handle_get(old, "accessor") == own.secret_id_accessor.as_deref())
            }
            _ => false,
        }
    }

    fn can_switch_login(&self, target: &Target) -> bool {
        match target {
            // A token keysweep was given can be replaced by a new one; a
            // session token a login opened cannot (it is revoked by `close`,
            // and the next run logs in afresh): rotating it is refused.
            Target::VaultToken(_) => !self.session,
            Target::VaultApproleSecretId(_) => self.approle.is_some(),
            _ => false,
        }
    }

    async fn switch_login(&self, target: &Target, new: &Delivered) -> Result<(), ProviderError> {
        match target {
            Target::VaultToken(_) => {
                // The new token must be accepted before it replaces keysweep's own.
                let r = self.http.send("vault.lookup_self", Method::GET, "auth/token/lookup-self", Some(&new.value), None).await?;
                if !r.ok() {
                    return Err(ProviderError::new(
                        ErrorKind::Unauthenticated,
                        "vault.switch_login",
                        format!("the new token is refused: {}", r.describe()),
                    ));
                }
                let acc = r.body["data"]["accessor"].as_str().map(str::to_string);
                self.http.switch_admin_token(new.value.clone());
                self.own.write().unwrap_or_else(|e| e.into_inner()).token_accessor = acc;
                Ok(())
            }
            Target::VaultApproleSecretId(_) => {
                let Some((mount, role_id)) = &self.approle else { return Err(unsupported("switch_login", target)) };
                let token = approle_login(&self.http, mount, role_id, &new.value).await?;
                // The session opened with the old secret-id ends now; the new one is keysweep's.
                if let Err(e) = self.http.admin_ok("vault.revoke_self", Method::POST, "auth/token/revoke-self", None).await {
                    tracing::warn!(provider = %self.name, error = %e, "could not revoke the session opened with the old secret-id");
                }
                self.http.switch_admin_token(token);
                self.own.write().unwrap_or_else(|e| e.into_inner()).secret_id_accessor =
                    handle_get(&self.handle_from_fields(target, &new.fields), "accessor").map(str::to_string);
                // The session token is a new one too: note its accessor.
                if let Err(e) = self.check_login().await {
                    tracing::warn!(provider = %self.name, error = %e, "could not look up the session opened with the new secret-id");
                }
                Ok(())
            }
            other => Err(unsupported("switch_login", other)),
        }
    }

    async fn close(&self) {
        if self.session {
            // Best effort: an AppRole login's token would otherwise live out its TTL.
            if let Err(e) = self.http.admin_ok("vault.revoke_self", Method::POST, "auth/token/revoke-self", None).await {
                tracing::debug!(provider = %self.name, error = %e, "could not revoke keysweep's own session token");
            }
        }
    }

    async fn inventory(&self) -> Result<Vec<InventoryItem>, ProviderError> {
        let mut items = vec![];
        // keysweep's own AppRole session token is not an estate credential.
        let own = if self.session {
            self.http.admin_ok("vault.lookup_self", Method::GET, "auth/token/lookup-self", None).await?.body["data"]["accessor"]
                .as_str()
                .map(str::to_string)
        } else {
            None
        };
        // Tokens. Vault answers a LIST with nothing in it with its 404 (a
        // namespace whose tokens were all made elsewhere).
        let r = self.http.admin("vault.list_accessors", list_method(), "auth/token/accessors", None).await?;
        if !r.ok() && !r.is_vendor_not_found() {
            return Err(ProviderError::new(
                if r.status == 403 { ErrorKind::PermissionDenied } else { ErrorKind::Other },
                "vault.list_accessors",
                format!("auth/token/accessors: {}", r.describe()),
            ));
        }
        for acc in r.body["data"]["keys"].as_array().into_iter().flatten().filter_map(|v| v.as_str()) {
            let l = self.token_lookup_accessor(acc).await?;
            if !l.ok() {
                continue;
            }
            let d = &l.body["data"];
            let mut details = BTreeMap::new();
            details.insert("policies".into(), d["policies"].to_string());
            details.insert("display_name".into(), d["display_name"].as_str().unwrap_or_default().to_string());
            if let Some(e) = d["expire_time"].as_str() {
                details.insert("expire_time".into(), e.to_string());
            }
            let root = d["policies"].as_array().is_some_and(|p| p.iter().any(|p| p == "root"));
            details.insert("privileged".into(), root.to_string());
            if own.as_deref() == Some(acc) {
                details.insert("keysweep_session".into(), "true".into());
            }
            if let Some(n) = d["meta"][NONCE_KEY].as_str() {
                details.insert(NONCE_KEY.into(), n.to_string());
            }
            items.push(InventoryItem {
                kind: "vault_token".into(),
                id: acc.to_string(),
                created: d["creation_time"].as_i64().and_then(|t| chrono::DateTime::from_timestamp(t, 0)).map(|t| t.to_rfc3339()),
                rotated: d["creation_time"].as_i64().and_then(|t| chrono::DateTime::from_timestamp(t, 0)).map(|t| t.to_rfc3339()),
                last_used: None,
                usage_tracked: false,
                details,
            });
        }
        // AppRole secret-ids, for every approle mount.
        let mounts = self.http.admin_ok("vault.list_auth", Method::GET, "sys/auth", None).await?;
        if let Some(m) = mounts.body["data"].as_object() {
            for (path, info) in m {
                if info["type"] != "approle" {
                    continue;
                }
                let mount = path.trim_end_matches('/');
                let roles = self.http.admin("vault.approle.list_roles", list_method(), &format!("auth/{mount}/role"), None).await?;
                for role in roles.body["data"]["keys"].as_array().into_iter().flatten().filter_map(|v| v.as_str()) {
                    let ids = self.http.admin("vault.approle.list", list_method(), &format!("auth/{mount}/role/{role}/secret-id"), None).await?;
                    for acc in ids.body["data"]["keys"].as_array().into_iter().flatten().filter_map(|v| v.as_str()) {
                        let l = self.secret_id_lookup(mount, role, acc).await?;
                        if !l.ok() {
                            continue; // destroyed between the list and the lookup
                        }
                        let d = &l.body["data"];
                        let mut details = BTreeMap::from([("mount".to_string(), mount.to_string()), ("role".to_string(), role.to_string())]);
                        if let Some(e) = d["expiration_time"].as_str() {
                            details.insert("expiration_time".into(), e.to_string());
                        }
                        if let Some(n) = d["metadata"][NONCE_KEY].as_str() {
                            details.insert(NONCE_KEY.into(), n.to_string());
                        }
                        items.push(InventoryItem {
                            kind: "vault_approle_secret_id".into(),
                            id: acc.to_string(),
                            created: d["creation_time"].as_str().map(str::to_string),
                            rotated: d["creation_time"].as_str().map(str::to_string),
                            // last_updated_time moves on changes to the secret-id, not on logins.
                            last_used: None,
                            usage_tracked: false,
                            details,
                        });
                    }
                }
            }
        }
        items.extend(self.kv_inventory().await?);
        Ok(items)
    }

    fn as_store(&self) -> Option<&dyn Store> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(policies: &[&str], ttl: u64) -> TokenSettings {
        TokenSettings {
            policies: policies.iter().map(|s| s.to_string()).collect(),
            creation_ttl: ttl,
            explicit_max_ttl: 0,
            period: 0,
            num_uses: 0,
            renewable: true,
            meta: Default::default(),
            display_name: None,
        }
    }

    #[test]
    fn bounds_never_come_out_empty_or_root() {
        let e = TokenSettings::bounds(None, None, None).unwrap_err();
        assert!(e.contains("declare `policies:` and `ttl:` for this credential"), "{e}");
        assert!(TokenSettings::bounds(None, Some(&["a".into()]), None).is_err(), "minted with no TTL for an unknown old token");
        assert!(TokenSettings::bounds(Some(&settings(&["root"], 0)), None, None).unwrap_err().contains("never mints a root token"));
        assert!(TokenSettings::bounds(Some(&settings(&[], 60)), None, None).unwrap_err().contains("no policies"));
        assert!(TokenSettings::bounds(Some(&settings(&["a"], 60)), Some(&[]), None).unwrap_err().contains("no policies"));
        let b = TokenSettings::bounds(Some(&settings(&["a", "root"], 60)), None, None).unwrap();
        assert_eq!((b.policies, b.ttl), (vec!["a".to_string()], Some(60)));
        let b = TokenSettings::bounds(None, Some(&["a".into()]), Some(30)).unwrap();
        assert_eq!((b.policies, b.ttl), (vec!["a".to_string()], Some(30)));
    }

    #[test]
    fn excess_names_every_widening() {
        let old = settings(&["a", "default"], 3600);
        let b =
            TokenSettings::bounds(Some(&TokenSettings { explicit_max_ttl: 7200, num_uses: 5, renewable: false, ..old.clone() }), None, None).unwrap();
        assert!(TokenSettings { explicit_max_ttl: 7200, num_uses: 5, renewable: false, ..old.clone() }.excess(&b).is_empty());
        let wide = TokenSettings { policies: vec!["a".into(), "admin".into()], creation_ttl: 0, explicit_max_ttl: 0, period: 60, num_uses: 0, ..old };
        let x = wide.excess(&b).join("; ");
        for w in ["\"admin\"", "ttl none", "explicit_max_ttl none", "period 60s", "num_uses unlimited", "renewable"] {
            assert!(x.contains(w), "{w} not named in: {x}");
        }
    }
}
