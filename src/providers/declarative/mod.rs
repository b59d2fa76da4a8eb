//! `http`: a provider kind described by data. A playbook's `providers:` entry
//! of `kind: http` is a *recipe* for one SaaS vendor's token API (see
//! [`config`]): how to list tokens, ask which account a token acts as, issue
//! one, revoke one (waiting out a 202 within a bound), and one probe whose
//! ordered rules read the vendor's answers. Recipes ship as playbook
//! fragments in `playbooks/recipes/` (Smartsheet, PagerDuty, a
//! Moveworks-style service-token API) and are tested against simulators.
//!
//! What this adapter guarantees whatever a recipe says:
//! - **Proof is the vendor's own answer.** A verdict comes from the first rule
//!   matching the status *and* body; an error status whose body lacks the
//!   vendor's error shape (`error_body`) is not the vendor's; 429, 5xx,
//!   timeouts, network errors and answers no rule matches are unknown.
//! - **A secret goes only to the hosts listed** (`base_url`, `allowed_hosts`),
//!   through [`HttpClient`], which refuses any other origin — also for URLs an
//!   answer names (`Link` next pages, poll URLs) — and follows no redirect.
//! - **A replacement never acts as another account** (identity is asked of
//!   the vendor with the new value), and one the vendor reports privileged
//!   is accepted only where the old one is known to be.
//! - **Retired means confirmed**: a success status (and body), or the
//!   vendor's "already gone"; a 202 whose poll never says done is a failed
//!   step, never a retirement.
//! - Values read from answers (minted tokens) are registered for redaction;
//!   evidence quotes statuses, the recipe's rules and ids, never a body.

pub mod config;
pub mod template;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;
use reqwest::header::HeaderName;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::playbook::model::Target;
use crate::provider::http::{next_link, not_from_vendor, status_error, transient, with_param, Answer, HttpClient, Request, VendorShape};
use crate::provider::limits::{Gate, RetryPolicy};
use crate::provider::{ErrorKind, Handle, InventoryItem, Minted, Provider, ProviderError, Verdict};
use crate::secret::{Delivered, ExposeSecret, SecretString};
use config::{HttpProviderConfig, HttpTokenTarget, Lists, Method, Pagination, Who, ACCOUNT, FINGERPRINT, TOKEN_ID};
use template::{decide, render, render_json, text_at, Rule, RuleVerdict};

/// Most pages one listing reads before it stops (an error, never a partial list).
const MAX_PAGES: usize = 10_000;

fn err(kind: ErrorKind, op: &'static str, msg: impl Into<String>) -> ProviderError {
    ProviderError::new(kind, op, msg.into())
}

/// The fingerprint of a value: SHA-256, first 16 hex digits. Identifies a
/// token the vendor gives no readable id; never reveals the value.
pub fn fingerprint(value: &SecretString) -> String {
    let d = Sha256::digest(value.expose_secret().as_bytes());
    format!("sha256:{}", d.iter().take(8).map(|b| format!("{b:02x}")).collect::<String>())
}

/// A vendor name that lives as long as the process (the HTTP layer names
/// vendors in its errors with a `&'static str`); each name is kept once.
fn vendor_name(v: &str) -> &'static str {
    static NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(n) = names.get(v) {
        return n;
    }
    let n: &'static str = Box::leak(v.to_string().into_boxed_str());
    names.insert(n);
    n
}

pub struct HttpProvider {
    name: String,
    cfg: HttpProviderConfig,
    vendor: &'static str,
    http: HttpClient,
    retry: RetryPolicy,
    login_header: HeaderName,
    login: SecretString,
    /// keysweep's own token, where the identity request names tokens: its
    /// login is a credential too (listed as such, and never retired while in use).
    own_token: Option<String>,
}

fn target_of<'a>(t: &'a Target, op: &'static str) -> Result<&'a HttpTokenTarget, ProviderError> {
    match t {
        Target::HttpToken(t) => Ok(t),
        other => Err(err(ErrorKind::Unsupported, op, format!("an http provider does not hold `{}`", other.kind()))),
    }
}

fn token_id(h: &Handle) -> Option<&str> {
    h.get(TOKEN_ID).map(String::as_str).filter(|s| !s.is_empty())
}

/// What the evidence calls the token of `h`.
fn what(h: &Handle) -> String {
    if let Some(id) = token_id(h) {
        format!("token {id}")
    } else if let Some(f) = h.get(FINGERPRINT) {
        format!("token {f}")
    } else if let Some(a) = h.get(ACCOUNT) {
        format!("token of {a}")
    } else {
        "the token".into()
    }
}

impl HttpProvider {
    pub async fn connect(name: &str, cfg: &HttpProviderConfig, resolve: &crate::provider::kind::Resolve<'_>) -> Result<Self, ProviderError> {
        let token = resolve(&cfg.auth.token)?;
        let vendor = vendor_name(cfg.vendor.trim());
        // The recipe's `error_body` decides what an error answer is; the HTTP
        // layer only asks for whole JSON here.
        let shape = VendorShape { error_body: |_, _| true, arrays: true };
        let also: Vec<&str> = cfg.allowed_hosts.iter().map(String::as_str).collect();
        let http = HttpClient::new(vendor, &cfg.base_url, &also, &cfg.limits, shape, &cfg.tls)?;
        let login_header = HeaderName::from_bytes(cfg.auth.header.as_bytes())
            .map_err(|_| err(ErrorKind::Config, "http.connect", format!("`{}` is not an HTTP header name", cfg.auth.header)))?;
        let value = render(&cfg.auth.template, &|n| (n == "secret").then(|| token.expose_secret().to_string()), false)
            .map_err(|e| err(ErrorKind::Config, "http.connect", format!("auth.template: {e}")))?;
        let mut p = HttpProvider {
            name: name.to_string(),
            cfg: cfg.clone(),
            vendor,
            http,
            retry: Gate::new(&cfg.limits).retry_policy(),
            login_header,
            login: SecretString::from(value),
            own_token: None,
        };
        // The login is checked where the recipe lists something with it.
        if let Some(inv) = &p.cfg.inventory {
            let a = p.call(Some(&p.admin()), "http.connect", inv.method, &inv.path, None).await?;
            if !a.ok() {
                let kind = if a.status == 401 { ErrorKind::Unauthenticated } else { status_error("http.connect", vendor, a.status).kind };
                return Err(err(
                    kind,
                    "http.connect",
                    format!("{vendor} answered {} to keysweep's login ({} {})", a.status, method_str(inv.method), inv.path),
                ));
            }
        }
        // Which token is keysweep's own login, where the vendor says (best effort).
        if let Some(idn) = p.cfg.identity.as_ref().filter(|i| i.token_id.is_some()) {
            if let Ok(a) = p.call(Some(&p.admin()), "http.connect", idn.method, &idn.path, None).await {
                p.own_token = idn.token_id.as_deref().and_then(|t| text_at(&a.body, t)).filter(|s| !s.is_empty() && a.ok());
            }
        }
        Ok(p)
    }

    fn admin(&self) -> (HeaderName, SecretString) {
        (self.login_header.clone(), self.login.clone())
    }

    /// The header a credential's own secret is presented in.
    fn present(&self, t: &HttpTokenTarget, value: &SecretString, op: &'static str) -> Result<(HeaderName, SecretString), ProviderError> {
        let p = &self.cfg.probe.present;
        let h = HeaderName::from_bytes(p.header.as_bytes())
            .map_err(|_| err(ErrorKind::Config, op, format!("`{}` is not an HTTP header name", p.header)))?;
        let v = render(
            &p.template,
            &|n| match n {
                "secret" => Some(value.expose_secret().to_string()),
                "basic" => t.user.as_ref().map(|u| crate::secret::base64(format!("{u}:{}", value.expose_secret()).as_bytes())),
                _ => None,
            },
            false,
        )
        .map_err(|e| err(ErrorKind::Config, op, format!("probe.present.template: {e}")))?;
        Ok((h, SecretString::from(v)))
    }

    /// Whether an answer is the vendor's: an error status carries its error shape.
    fn vendor_shaped(&self, a: &Answer) -> bool {
        a.status < 400 || self.cfg.error_body.matches(&a.body)
    }

    /// One attempt (admitted by the rate limit): the vendor's answer, or a
    /// temporary error for anything that is not its.
    async fn send(
        &self,
        auth: Option<&(HeaderName, SecretString)>,
        op: &'static str,
        method: Method,
        target: &str,
        body: Option<&Value>,
    ) -> Result<Answer, ProviderError> {
        let mut req = Request::new(method.reqwest(), target);
        if let Some((h, v)) = auth {
            req = req.secret(h.clone(), v);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let a = self.http.send(op, &req).await?;
        if !self.vendor_shaped(&a) {
            let len = a.body.to_string().len();
            return Err(not_from_vendor(self.vendor, op, &path_only(target), a.status, Some("application/json"), len, a.retry_after));
        }
        Ok(a)
    }

    /// An idempotent request, retried within the limits on anything
    /// temporary (429, 5xx, network, an answer not the vendor's).
    async fn call(
        &self,
        auth: Option<&(HeaderName, SecretString)>,
        op: &'static str,
        method: Method,
        target: &str,
        body: Option<&Value>,
    ) -> Result<Answer, ProviderError> {
        crate::provider::limits::retry(self.retry, || async {
            let a = self.send(auth, op, method, target, body).await?;
            match transient(op, a.status, a.retry_after, || format!("HTTP {} from {}", a.status, self.vendor)) {
                Some(e) => Err(e),
                None => Ok(a),
            }
        })
        .await
    }

    /// Every item of the inventory, first page to last.
    async fn list(&self, op: &'static str) -> Result<Vec<Value>, ProviderError> {
        let inv =
            self.cfg.inventory.as_ref().ok_or_else(|| err(ErrorKind::Unsupported, op, format!("the {} recipe has no `inventory:`", self.vendor)))?;
        let auth = self.admin();
        let mut out = vec![];
        let mut target = inv.path.clone();
        let (mut page, mut offset) = (1u64, 0u64);
        for _ in 0..MAX_PAGES {
            let a = self.call(Some(&auth), op, inv.method, &target, None).await?;
            if !a.ok() {
                return Err(status_error(op, self.vendor, a.status));
            }
            let items = a.body.pointer(&inv.items).and_then(Value::as_array).ok_or_else(|| {
                err(
                    ErrorKind::Unavailable,
                    op,
                    format!("a page of {}'s listing holds no list at `{}`: not taken as complete", self.vendor, inv.items),
                )
            })?;
            let n = items.len() as u64;
            out.extend(items.iter().cloned());
            let next = match &inv.pagination {
                None => None,
                Some(Pagination::Link(_)) => next_link(&a.headers),
                Some(Pagination::Cursor(c)) => text_at(&a.body, &c.cursor).filter(|c| !c.is_empty()).map(|cur| with_param(&inv.path, &c.param, &cur)),
                Some(Pagination::Page(p)) => {
                    let last =
                        p.total_pages.as_deref().and_then(|t| text_at(&a.body, t)).and_then(|t| t.parse::<u64>().ok()).is_some_and(|t| page >= t);
                    page += 1;
                    (n > 0 && !last).then(|| with_param(&inv.path, &p.param, &page.to_string()))
                }
                Some(Pagination::Offset(o)) => {
                    offset += n;
                    let more = o.more.as_deref().is_none_or(|m| a.body.pointer(m).and_then(Value::as_bool) == Some(true));
                    (n > 0 && more).then(|| with_param(&inv.path, &o.param, &offset.to_string()))
                }
            };
            match next {
                Some(n) => target = n,
                None => return Ok(out),
            }
        }
        Err(err(ErrorKind::Other, op, format!("more than {MAX_PAGES} pages: listing stopped, not taken as complete")))
    }

    /// The listed item with id `id`, if the inventory lists tokens.
    async fn listed_token(&self, id: &str, op: &'static str) -> Result<Option<Value>, ProviderError> {
        let Some(inv) = self.cfg.inventory.as_ref().filter(|i| i.lists == Lists::Tokens) else { return Ok(None) };
        Ok(self.list(op).await?.into_iter().find(|it| text_at(it, &inv.fields.id).as_deref() == Some(id)))
    }

    fn vars<'a>(&self, t: &'a HttpTokenTarget, h: &'a Handle) -> impl Fn(&str) -> Option<String> + 'a {
        move |n: &str| match n {
            "id" => token_id(h).map(str::to_string).or_else(|| t.token_id.clone()),
            "user" => t.user.clone(),
            "name" => t.name.clone(),
            _ => None,
        }
    }

    /// The probe with `value`: the verdict of the first rule its answer
    /// matches; unknown otherwise. One attempt (the engine repeats probes).
    async fn probe(&self, t: &HttpTokenTarget, h: &Handle, value: &SecretString, what: &str, op: &'static str) -> Verdict {
        let pr = &self.cfg.probe;
        let path = match render(&pr.path, &self.vars(t, h), true) {
            Ok(p) => p,
            Err(e) => return Verdict::Unknown(format!("probe path: {e}")),
        };
        let auth = match self.present(t, value, op) {
            Ok(a) => a,
            Err(e) => return Verdict::Unknown(e.to_string()),
        };
        match self.send(Some(&auth), op, pr.method, &path, None).await {
            Err(e) => Verdict::Unknown(e.to_string()),
            Ok(a) => self.verdict(&pr.rules, &a, what, "probe"),
        }
    }

    fn verdict(&self, rules: &[Rule], a: &Answer, what: &str, how: &str) -> Verdict {
        let v = self.vendor;
        match decide(rules, a.status, &a.body) {
            Some(r) if r.verdict == RuleVerdict::Dead => Verdict::Dead(format!("{v} refused {what} ({how}): {}", r.describe_match(&a.body))),
            Some(r) if r.verdict == RuleVerdict::Alive => Verdict::Alive(format!("{v} accepted {what} ({how}): {}", r.describe_match(&a.body))),
            Some(r) => Verdict::Unknown(format!("{v} answered {what} ({how}) with {}: not proof either way", r.describe_match(&a.body))),
            None => Verdict::Unknown(format!(
                "{v} answered HTTP {} for {what} ({how}), which no rule of the recipe matches: not proof either way",
                a.status
            )),
        }
    }

    /// Asks which account `value` acts as: (account, privileged, token id).
    async fn whoami(&self, t: &HttpTokenTarget, value: &SecretString, op: &'static str) -> Result<(String, bool, Option<String>), ProviderError> {
        let idn =
            self.cfg.identity.as_ref().ok_or_else(|| err(ErrorKind::Unsupported, op, format!("the {} recipe has no `identity:`", self.vendor)))?;
        let auth = self.present(t, value, op)?;
        let a = self.call(Some(&auth), op, idn.method, &idn.path, None).await?;
        if !a.ok() {
            let refused = decide(&self.cfg.probe.rules, a.status, &a.body).filter(|r| r.verdict == RuleVerdict::Dead);
            return Err(match refused {
                Some(r) => err(ErrorKind::Unauthenticated, op, format!("{} does not accept it: {}", self.vendor, r.describe_match(&a.body))),
                None => err(
                    status_error(op, self.vendor, a.status).kind,
                    op,
                    format!("{} answered HTTP {} to the identity request", self.vendor, a.status),
                ),
            });
        }
        let user = text_at(&a.body, &idn.user)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| err(ErrorKind::Unavailable, op, format!("{}'s identity answer names no account at `{}`", self.vendor, idn.user)))?;
        let privileged = idn.privileged.as_ref().is_some_and(|c| c.matches(&a.body));
        let id = idn.token_id.as_deref().and_then(|p| text_at(&a.body, p)).filter(|s| !s.is_empty());
        Ok((user, privileged, id))
    }

    /// The account the token `old` acts as, and whether it is privileged, as
    /// far as the playbook and the vendor's listing say.
    async fn old_account(&self, t: &HttpTokenTarget, old: &Handle, op: &'static str) -> Result<(Option<String>, bool), ProviderError> {
        let inv = self.cfg.inventory.as_ref().filter(|i| i.lists == Lists::Tokens);
        if let (Some(inv), Some(id)) = (inv, token_id(old).or(t.token_id.as_deref())) {
            if let Some(item) = self.listed_token(id, op).await? {
                let user = inv.fields.user.as_deref().and_then(|p| text_at(&item, p));
                let privileged = inv.fields.privileged.as_ref().is_some_and(|c| c.matches(&item));
                if user.is_some() {
                    return Ok((user, privileged || t.privileged));
                }
            }
        }
        Ok((t.user.clone(), t.privileged))
    }

    /// Checks that `value` acts as the old token's account and is no more
    /// privileged; returns its handle.
    async fn check_identity(&self, t: &HttpTokenTarget, value: &SecretString, old: &Handle, op: &'static str) -> Result<Handle, ProviderError> {
        let (user, privileged, id) = self.whoami(t, value, op).await?;
        let (expected, old_privileged) = self.old_account(t, old, op).await?;
        let Some(expected) = expected else {
            return Err(err(
                ErrorKind::Config,
                op,
                format!("the old token's account is unknown (not in {}'s listing, and no `user:` in the playbook), so the replacement's account cannot be checked", self.vendor),
            ));
        };
        if !user.eq_ignore_ascii_case(expected.trim()) {
            return Err(err(
                ErrorKind::Config,
                op,
                format!("it acts as `{user}`, not as the old token's account `{expected}`: a replacement never acts as another account"),
            ));
        }
        if privileged && !old_privileged {
            return Err(err(
                ErrorKind::Config,
                op,
                format!("{} reports `{user}` privileged with it, and the old token is not known to be: never a more privileged replacement (if the old one is an admin's token, declare `privileged: true` in the entry)", self.vendor),
            ));
        }
        Ok(match id {
            Some(id) => Handle::from([(TOKEN_ID.to_string(), id)]),
            None => Handle::from([(FINGERPRINT.to_string(), fingerprint(value))]),
        })
    }

    /// Revokes the token of `old` by the recipe's request (admin or self).
    async fn revoke(&self, t: &HttpTokenTarget, old: &Handle, value: Option<&SecretString>) -> Result<(), ProviderError> {
        const OP: &str = "http.retire";
        let r = &self.cfg.retire;
        let v = self.vendor;
        let w = what(old);
        if let Some(instructions) = &r.manual {
            // No API revokes it: a person does; keysweep proves it with the value.
            let Some(value) = value else {
                return Err(err(
                    ErrorKind::Config,
                    OP,
                    format!("{v} has no API that revokes {w}, and no value of it is held to prove it deleted: {}", instructions.trim()),
                ));
            };
            return match self.probe(t, old, value, &w, OP).await {
                Verdict::Dead(_) => Ok(()),
                Verdict::Alive(_) => Err(err(
                    ErrorKind::Conflict,
                    OP,
                    format!(
                        "{v} has no API that revokes {w}, and it is still accepted. {} — then run again: keysweep proves it dead",
                        instructions.trim()
                    ),
                )),
                other => Err(err(ErrorKind::Unavailable, OP, format!("whether a person deleted {w} is not known: {}", other.evidence()))),
            };
        }
        let path = r.path.as_deref().unwrap_or_default();
        let path = render(path, &self.vars(t, old), true).map_err(|e| err(ErrorKind::Config, OP, format!("retire.path: {e}")))?;
        let body = match &r.body {
            Some(b) => Some(render_json(b, &self.vars(t, old)).map_err(|e| err(ErrorKind::Config, OP, format!("retire.body: {e}")))?),
            None => None,
        };
        let auth = match r.authenticate {
            Who::Admin => self.admin(),
            Who::Secret => {
                let Some(value) = value else {
                    return Err(err(
                        ErrorKind::Config,
                        OP,
                        format!("{v} revokes a token only when presented with it, and no value of {w} is held (the store no longer has it)"),
                    ));
                };
                if let Some(fp) = old.get(FINGERPRINT) {
                    if fingerprint(value) != *fp {
                        return Err(err(
                            ErrorKind::Conflict,
                            OP,
                            format!("the value held for {w} is another token's (its fingerprint differs): nothing was revoked"),
                        ));
                    }
                }
                self.present(t, value, OP)?
            }
        };
        let a = self.call(Some(&auth), OP, r.method, &path, body.as_ref()).await?;
        if r.accepted.contains(&a.status) && r.done.as_ref().is_none_or(|c| c.matches(&a.body)) {
            return Ok(());
        }
        if let Some(pd) = r.pending.as_ref().filter(|pd| pd.status == a.status) {
            return self.poll(t, old, pd, &a, &w).await;
        }
        if r.gone.iter().any(|g| g.rule().matches(a.status, &a.body)) {
            return Ok(()); // already gone, in the vendor's own words
        }
        let kind = match a.status {
            s if r.accepted.contains(&s) => ErrorKind::Other,
            s => status_error(OP, v, s).kind,
        };
        Err(err(kind, OP, format!("{v} answered HTTP {} to the revocation of {w}: not a confirmed revocation", a.status)))
    }

    /// Polls an accepted revocation until the vendor says done, within the bound.
    async fn poll(&self, t: &HttpTokenTarget, old: &Handle, pd: &config::Pending, accepted: &Answer, w: &str) -> Result<(), ProviderError> {
        const OP: &str = "http.retire_poll";
        let v = self.vendor;
        let target = match (&pd.url, &pd.path) {
            (Some(p), _) => text_at(&accepted.body, p)
                .ok_or_else(|| err(ErrorKind::Unavailable, OP, format!("{v}'s {} answer names no poll URL at `{p}`", accepted.status)))?,
            (None, Some(path)) => {
                let op_id = pd.operation.as_deref().and_then(|p| text_at(&accepted.body, p));
                let vars = self.vars(t, old);
                render(path, &|n| if n == "operation" { op_id.clone() } else { vars(n) }, true)
                    .map_err(|e| err(ErrorKind::Unavailable, OP, format!("retire.pending.path: {e} in {v}'s {} answer", accepted.status)))?
            }
            (None, None) => return Err(err(ErrorKind::Config, OP, "retire.pending names no poll URL or path")),
        };
        // Refused before anything is sent if it names another host.
        self.http.url(OP, &target)?;
        let auth = self.admin();
        for _ in 0..pd.max_polls {
            tokio::time::sleep(pd.interval.0).await;
            let a = self.call(Some(&auth), OP, Method::GET, &target, None).await?;
            if a.ok() && pd.done.matches(&a.body) {
                return Ok(());
            }
            if pd.failed.as_ref().is_some_and(|f| f.matches(&a.body)) {
                return Err(err(
                    ErrorKind::Other,
                    OP,
                    format!("{v} reports the revocation of {w} failed ({})", pd.failed.as_ref().map(|f| f.describe()).unwrap_or_default()),
                ));
            }
        }
        Err(err(
            ErrorKind::Unavailable,
            OP,
            format!(
                "{v} accepted the revocation of {w} (HTTP {}) but did not report it done within {} polls: it may still work; not taken as retired",
                accepted.status, pd.max_polls
            ),
        ))
    }
}

fn method_str(m: Method) -> &'static str {
    match m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
    }
}

/// A request target without its query (errors never quote query strings).
fn path_only(target: &str) -> String {
    let t = target.split('?').next().unwrap_or(target);
    match reqwest::Url::parse(t) {
        Ok(u) => u.path().to_string(),
        Err(_) => t.to_string(),
    }
}

#[async_trait]
impl Provider for HttpProvider {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "http"
    }

    async fn current_handle(&self, target: &Target, stored: Option<&Handle>) -> Result<Handle, ProviderError> {
        const OP: &str = "http.current";
        let t = target_of(target, OP)?;
        if let Some(h) = stored {
            for key in [TOKEN_ID, FINGERPRINT] {
                if let Some(v) = h.get(key).filter(|v| !v.is_empty()) {
                    return Ok(Handle::from([(key.to_string(), v.clone())]));
                }
            }
        }
        if let Some(id) = &t.token_id {
            return Ok(Handle::from([(TOKEN_ID.to_string(), id.clone())]));
        }
        let inv = self.cfg.inventory.as_ref().filter(|i| i.lists == Lists::Tokens);
        if let (Some(name), Some(inv)) = (&t.name, inv) {
            if let Some(np) = &inv.fields.name {
                let found: Vec<String> = self
                    .list(OP)
                    .await?
                    .iter()
                    .filter(|it| text_at(it, np).as_deref() == Some(name.as_str()))
                    .filter(|it| match (&t.user, &inv.fields.user) {
                        (Some(u), Some(up)) => text_at(it, up).is_some_and(|x| x.eq_ignore_ascii_case(u)),
                        _ => true,
                    })
                    .filter_map(|it| text_at(it, &inv.fields.id))
                    .collect();
                return match found.as_slice() {
                    [one] => Ok(Handle::from([(TOKEN_ID.to_string(), one.clone())])),
                    [] => Err(err(ErrorKind::NotFound, OP, format!("{} lists no token named `{name}`", self.vendor))),
                    many => Err(err(
                        ErrorKind::Conflict,
                        OP,
                        format!(
                            "{} tokens are named `{name}` at {} ({}); name the one meant with `token_id:`",
                            many.len(),
                            self.vendor,
                            many.join(", ")
                        ),
                    )),
                };
            }
        }
        // A token the vendor gives no id: known by its account until its
        // first rotation stores its fingerprint beside the value.
        match &t.user {
            Some(u) => Ok(Handle::from([(ACCOUNT.to_string(), u.clone())])),
            None => Err(err(ErrorKind::NotFound, OP, "the entry names no token (`token_id`, `name`) or account (`user`)")),
        }
    }

    fn handle_from_fields(&self, _target: &Target, fields: &BTreeMap<String, String>) -> Handle {
        for key in [TOKEN_ID, FINGERPRINT] {
            if let Some(v) = fields.get(key).filter(|v| !v.is_empty()) {
                return Handle::from([(key.to_string(), v.clone())]);
            }
        }
        Handle::new()
    }

    async fn mint(&self, target: &Target, old: &Handle, nonce: &str) -> Result<Minted, ProviderError> {
        const OP: &str = "http.mint";
        let t = target_of(target, OP)?;
        let v = self.vendor;
        let Some(m) = &self.cfg.mint else {
            return Err(err(ErrorKind::Unsupported, OP, format!("{v} issues no token by API: a person re-issues it (`manual:`)")));
        };
        let base = self.vars(t, old);
        let vars = |n: &str| if n == "nonce" { Some(nonce.to_string()) } else { base(n) };
        let path = render(&m.path, &vars, true).map_err(|e| err(ErrorKind::Config, OP, format!("mint.path: {e}")))?;
        let body = match &m.body {
            Some(b) => Some(render_json(b, &vars).map_err(|e| err(ErrorKind::Config, OP, format!("mint.body: {e}")))?),
            None => None,
        };
        // Never retried: a second request would issue a second token.
        let a = self.send(Some(&self.admin()), OP, m.method, &path, body.as_ref()).await?;
        if !m.accepted.contains(&a.status) {
            let kind = match a.status {
                429 => ErrorKind::RateLimited,
                s if s >= 500 => ErrorKind::Unavailable,
                s => status_error(OP, v, s).kind,
            };
            return Err(err(kind, OP, format!("{v} answered HTTP {} to the mint", a.status)));
        }
        // Registered for redaction as soon as it is read.
        let value = text_at(&a.body, &m.value).filter(|s| !s.is_empty()).map(SecretString::from);
        let id = text_at(&a.body, &m.id).filter(|s| !s.is_empty());
        let (Some(value), Some(id)) = (value, id) else {
            return Err(err(ErrorKind::Other, OP, format!("{v}'s mint answer holds no token value at `{}` or id at `{}`", m.value, m.id)));
        };
        let handle = Handle::from([(TOKEN_ID.to_string(), id.clone())]);
        // The new token must act as the old one's account, no more privileged.
        if let Err(e) = self.check_identity(t, &value, old, OP).await {
            let withdrawn = match self.revoke(t, &handle, Some(&value)).await {
                Ok(()) => "it was revoked again".to_string(),
                Err(r) => format!("revoking it failed ({r}); it carries the nonce, so a later run finds it"),
            };
            return Err(err(e.kind, OP, format!("the minted token {id}: {}; {withdrawn}", e.message)));
        }
        Ok(Minted { delivered: Delivered { value, fields: BTreeMap::from([(TOKEN_ID.to_string(), id)]) }, handle })
    }

    async fn cleanup_minted(&self, target: &Target, old: &Handle, nonce: &str, keep: Option<&Handle>) -> Result<usize, ProviderError> {
        const OP: &str = "http.cleanup";
        let t = target_of(target, OP)?;
        if self.cfg.mint.is_none() || nonce.is_empty() {
            return Ok(0);
        }
        let Some(inv) = self.cfg.inventory.as_ref().filter(|i| i.lists == Lists::Tokens) else { return Ok(0) };
        let spare: BTreeSet<&str> = [token_id(old), keep.and_then(token_id)].into_iter().flatten().collect();
        let tagged =
            |it: &Value| [&inv.fields.name, &inv.fields.description].into_iter().flatten().any(|p| text_at(it, p).is_some_and(|s| s.contains(nonce)));
        let orphans: Vec<String> = self
            .list(OP)
            .await?
            .iter()
            .filter(|it| tagged(it))
            .filter_map(|it| text_at(it, &inv.fields.id))
            .filter(|id| !spare.contains(id.as_str()))
            .collect();
        for id in &orphans {
            tracing::warn!(provider = %self.name, token = %id, "revoking an orphan token minted by an interrupted run");
            let h = Handle::from([(TOKEN_ID.to_string(), id.clone())]);
            if self.cfg.retire.authenticate == Who::Secret || self.cfg.retire.manual.is_some() {
                return Err(err(
                    ErrorKind::Unsupported,
                    OP,
                    format!("orphan token {id} needs its own value to be revoked, and no store holds it: revoke it at {}", self.vendor),
                ));
            }
            self.revoke(t, &h, None).await?;
        }
        Ok(orphans.len())
    }

    async fn apply(&self, _target: &Target, _new: &Delivered) -> Result<(), ProviderError> {
        Err(err(ErrorKind::Unsupported, "http.apply", format!("{} issues its tokens itself (or a person does); nothing is applied", self.vendor)))
    }

    async fn identify(&self, target: &Target, new: &Delivered, old: &Handle) -> Result<Handle, ProviderError> {
        let t = target_of(target, "http.identify")?;
        self.check_identity(t, &new.value, old, "http.identify").await
    }

    async fn test(&self, target: &Target, new: &Delivered, handle: &Handle) -> Verdict {
        match target_of(target, "http.test") {
            Err(e) => Verdict::Unknown(e.to_string()),
            Ok(t) => self.probe(t, handle, &new.value, &format!("new {}", what(handle)), "http.test").await,
        }
    }

    async fn retire(&self, target: &Target, old: &Handle) -> Result<(), ProviderError> {
        self.retire_with(target, old, None).await
    }

    fn retire_needs_value(&self, _target: &Target) -> bool {
        self.cfg.retire_needs_value()
    }

    async fn retire_with(&self, target: &Target, old: &Handle, known: Option<&Delivered>) -> Result<(), ProviderError> {
        let t = target_of(target, "http.retire")?;
        self.revoke(t, old, known.map(|d| &d.value)).await
    }

    async fn verify_dead(&self, target: &Target, old: &Handle, old_value: Option<&SecretString>) -> Verdict {
        let t = match target_of(target, "http.verify") {
            Ok(t) => t,
            Err(e) => return Verdict::Unknown(e.to_string()),
        };
        let w = format!("old {}", what(old));
        if let Some(value) = old_value {
            if let Some(fp) = old.get(FINGERPRINT) {
                if fingerprint(value) != *fp {
                    return Verdict::Unknown(format!(
                        "the value held for {w} is another token's (its fingerprint differs): probing it proves nothing"
                    ));
                }
            }
            return self.probe(t, old, value, &w, "http.verify").await;
        }
        match (&self.cfg.lookup, token_id(old).or(t.token_id.as_deref())) {
            (Some(l), Some(_)) => {
                let path = match render(&l.path, &self.vars(t, old), true) {
                    Ok(p) => p,
                    Err(e) => return Verdict::Unknown(format!("lookup path: {e}")),
                };
                match self.send(Some(&self.admin()), "http.verify", l.method, &path, None).await {
                    Ok(a) => self.verdict(&l.rules, &a, &w, "admin lookup"),
                    Err(e) => Verdict::Unknown(e.to_string()),
                }
            }
            _ => Verdict::Unprovable(format!(
                "{} has no admin-side proof in its recipe (`lookup:`) for {w}, and no old value may be probed",
                self.vendor
            )),
        }
    }

    async fn inventory(&self) -> Result<Vec<InventoryItem>, ProviderError> {
        let Some(inv) = &self.cfg.inventory else { return Ok(vec![]) };
        let f = &inv.fields;
        let lists = match inv.lists {
            Lists::Tokens => "tokens",
            Lists::Accounts => "accounts",
        };
        let mut out = vec![];
        for it in self.list("http.inventory").await? {
            let Some(id) = text_at(&it, &f.id).filter(|s| !s.is_empty()) else { continue };
            let at = |p: &Option<String>| p.as_deref().and_then(|p| text_at(&it, p)).filter(|s| !s.is_empty());
            let mut details = BTreeMap::from([
                ("vendor".to_string(), self.vendor.to_string()),
                ("lists".to_string(), lists.to_string()),
                ("privileged".to_string(), f.privileged.as_ref().is_some_and(|c| c.matches(&it)).to_string()),
            ]);
            for (k, v) in [("name", at(&f.name)), ("user", at(&f.user))] {
                if let Some(v) = v {
                    details.insert(k.to_string(), v);
                }
            }
            // keysweep's own login: a long-lived credential like any other.
            if self.own_token.as_deref() == Some(id.as_str()) {
                details.insert("keysweep_login".into(), "true".into());
            }
            let created = at(&f.created);
            out.push(InventoryItem {
                kind: "http_token".into(),
                id,
                created: created.clone(),
                rotated: created.filter(|_| inv.lists == Lists::Tokens),
                last_used: at(&f.last_used),
                usage_tracked: f.last_used.is_some(),
                details,
            });
        }
        Ok(out)
    }

    /// The token of `old` is keysweep's own login: rotating it is worked
    /// last, and its old value is never retired while this session uses it
    /// (this adapter cannot move its session, so such a rotation stops there).
    fn is_own_login(&self, _target: &Target, old: &Handle) -> bool {
        self.own_token.as_deref().is_some_and(|own| token_id(old) == Some(own))
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
    fn fingerprints_name_a_value_without_revealing_it() {
        let a = SecretString::from("value-one-aaaaaaaaaaaaaaaa".to_string());
        let b = SecretString::from("value-two-bbbbbbbbbbbbbbbb".to_string());
        assert_eq!(fingerprint(&a), fingerprint(&SecretString::from("value-one-aaaaaaaaaaaaaaaa".to_string())));
        assert_ne!(fingerprint(&a), fingerprint(&b));
        assert!(fingerprint(&a).starts_with("sha256:") && fingerprint(&a).len() == 7 + 16);
        assert!(!fingerprint(&a).contains("value"));
        assert_eq!(path_only("https://x.example/a/b?cursor=zz"), "/a/b");
        assert_eq!(path_only("/a/b?x=1"), "/a/b");
    }
}
