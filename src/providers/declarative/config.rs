//! The `http` provider kind's playbook side: a *recipe* that describes a
//! SaaS vendor's token API as data — how to list tokens (inventory), how to
//! ask which account a token acts as (identity), how to issue one (mint),
//! retire one (retire, with a bounded poll of an asynchronous 202), and one
//! probe shared by `test` and verify-dead, whose ordered rules name the
//! vendor's own answers. `playbooks/recipes/` ships recipes as playbook
//! fragments to include.
//!
//! The rules a recipe keeps, checked when the playbook loads (each error
//! names the file, line and column):
//! - an `alive` or `dead` rule matches a status *and* a body condition (a
//!   WAF's page with the same status is never proof), and never a 429/5xx;
//!   everything no rule matches is unknown;
//! - templates use only the placeholders their request has (`{id}`, `{user}`,
//!   `{name}`, `{nonce}`, `{operation}`; `{secret}`/`{basic}` in headers);
//! - every request goes to `base_url`'s host or one of `allowed_hosts`, and
//!   so does every URL an answer hands back (a `Link` next page, a poll URL):
//!   a secret is never sent anywhere else;
//! - a recipe without `mint:` rotates only with `manual:` steps and an
//!   `identity:` request that tells which account a supplied value acts as
//!   (a replacement never acts as another account); without `identity:` its
//!   credentials may only be revoked.

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::template::{self, Cond, Rule, RuleVerdict};
use crate::playbook::model::{Action, HumanDuration, Limits, SecretRef, Target};
use crate::playbook::rules::address_problem;
use crate::provider::kind::yaml_str as q;
use crate::provider::kind::{claimed_by_id, CheckCx, CredentialCx, Fields, Kind, Problem, ProviderKind, Resolve};
use crate::provider::{Capabilities, InventoryItem, Provider, ProviderError};

/// An HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum Method {
    GET,
    POST,
    PUT,
    PATCH,
    DELETE,
}

impl Method {
    pub fn reqwest(self) -> reqwest::Method {
        match self {
            Method::GET => reqwest::Method::GET,
            Method::POST => reqwest::Method::POST,
            Method::PUT => reqwest::Method::PUT,
            Method::PATCH => reqwest::Method::PATCH,
            Method::DELETE => reqwest::Method::DELETE,
        }
    }
}

fn get() -> Method {
    Method::GET
}
fn post() -> Method {
    Method::POST
}
fn delete() -> Method {
    Method::DELETE
}
fn authorization() -> String {
    "Authorization".into()
}

/// A provider described by a recipe: a SaaS vendor's token API.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpProviderConfig {
    /// The vendor's name, used in messages and evidence (e.g. `Smartsheet`).
    pub vendor: String,
    /// The API's address, e.g. `https://api.smartsheet.com/2.0`. Paths of the
    /// requests below are relative to it.
    pub base_url: String,
    /// Other origins (`https://host[:port]`) the vendor documents requests to
    /// (a poll URL on another host). Nothing is sent anywhere else: a `Link`
    /// or poll URL an answer names on another host is refused.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// keysweep's own login, sent with inventory, mint, retire (unless
    /// `authenticate: secret`) and lookup requests.
    pub auth: Auth,
    /// What the vendor's error bodies carry (e.g. `{ pointer: /errorCode,
    /// exists: true }`): an error status whose JSON body does not match is
    /// not the vendor's answer (a proxy, a load balancer, a WAF) and counts
    /// as unknown, never as absent or dead.
    pub error_body: Box<Cond>,
    /// How to list what the vendor holds (discovery; finding a token by name;
    /// the account an old token acts as; orphans of a lost mint).
    pub inventory: Option<Box<Inventory>>,
    /// A request made *with a credential's own secret* that says which
    /// account it acts as ("who am I"): how a value a person supplied is
    /// identified. Without it, rotation by `manual:` steps is refused.
    pub identity: Option<Box<Identity>>,
    /// How the vendor issues a new token. Without it a rotation needs `manual:` steps.
    pub mint: Option<Box<Mint>>,
    /// How a token is revoked.
    pub retire: Box<Retire>,
    /// The request made with a secret to test a new one and to prove an old
    /// one dead, and the ordered rules that read its answer.
    pub probe: Box<Probe>,
    /// An admin-side proof (a request by the token's id with keysweep's own
    /// login), used when no old value may be probed (`verify.probe_old: false`).
    pub lookup: Option<Box<Lookup>>,
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

/// keysweep's own login: one header, its value a template with `{secret}`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// Default `Authorization`.
    #[serde(default = "authorization")]
    pub header: String,
    /// E.g. `Bearer {secret}`, `Token token={secret}`.
    pub template: String,
    /// The login secret: `${env:VAR}` or `${store:PROVIDER:PATH#FIELD}`.
    pub token: SecretRef,
}

/// How a credential's own secret is presented.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Present {
    /// Default `Authorization`.
    #[serde(default = "authorization")]
    pub header: String,
    /// E.g. `Bearer {secret}`; `Basic {basic}` sends base64 of `user:secret`
    /// with the credential's `user`.
    pub template: String,
}

/// What the items of an inventory are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Lists {
    /// The tokens themselves.
    #[default]
    Tokens,
    /// The accounts that can hold tokens, where the vendor lists no tokens
    /// (an item's id is then the account, as a credential's `user` names it).
    Accounts,
}

/// A listing request and how to read its items.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    #[serde(default = "get")]
    pub method: Method,
    /// The first page, e.g. `/api/v1/service-tokens?limit=100`.
    pub path: String,
    /// Where the items are in each page (a JSON pointer; `""`: the body is the array).
    pub items: String,
    #[serde(default)]
    pub lists: Lists,
    /// How the listing pages; none: one page.
    pub pagination: Option<Pagination>,
    pub fields: ItemFields,
}

/// Where an item's facts are (JSON pointers into one item).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemFields {
    /// The id a credential's `token_id` (or, for accounts, `user`) names.
    pub id: String,
    pub name: Option<String>,
    /// The account a token acts as.
    pub user: Option<String>,
    /// Free text the vendor keeps with a token (where a mint leaves its nonce).
    pub description: Option<String>,
    /// Creation time (RFC 3339).
    pub created: Option<String>,
    /// Last use (RFC 3339); the vendor records use when this is given.
    pub last_used: Option<String>,
    /// When the item is privileged (admin, owner, wide scopes).
    pub privileged: Option<Cond>,
}

/// How a listing pages. `style:` selects it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "style", rename_all = "snake_case")]
pub enum Pagination {
    /// `Link: <…>; rel="next"` headers (RFC 8288).
    Link(LinkPaging),
    /// A cursor in the body, sent back as a query parameter.
    Cursor(CursorPaging),
    /// Page numbers, until a page is empty or the last page is reached.
    Page(PagePaging),
    /// An item offset, until a page is empty or the answer says no more follow.
    Offset(OffsetPaging),
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkPaging {}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CursorPaging {
    /// Where the next cursor is (JSON pointer); empty or absent: last page.
    pub cursor: String,
    /// The query parameter it is sent back in.
    pub param: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PagePaging {
    /// The query parameter of the page number.
    pub param: String,
    /// Where the number of pages is (JSON pointer), if the answer says.
    pub total_pages: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OffsetPaging {
    /// The query parameter of the offset.
    pub param: String,
    /// Where the answer says more items follow (JSON pointer to a boolean).
    pub more: Option<String>,
}

/// "Who am I", asked with a credential's own secret (presented as the probe presents it).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    #[serde(default = "get")]
    pub method: Method,
    pub path: String,
    /// The account it acts as (JSON pointer), compared with the credential's
    /// `user` (or the old token's account from the inventory).
    pub user: String,
    /// The token's own id, where the answer carries it.
    pub token_id: Option<String>,
    /// When the account is privileged.
    pub privileged: Option<Cond>,
}

/// How the vendor issues a token (`{nonce}` must appear in the path or body:
/// the vendor keeps it with the token, so an orphan of a crash is found again).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mint {
    #[serde(default = "post")]
    pub method: Method,
    pub path: String,
    /// A JSON body; its strings are templates (`{nonce}`, `{user}`, `{name}`, `{id}`: the old token's).
    pub body: Option<Value>,
    /// Where the new secret is in the answer (JSON pointer).
    pub value: String,
    /// Where the new token's id is in the answer (JSON pointer).
    pub id: String,
    /// Statuses of success (default 200, 201).
    #[serde(default = "mint_accepted")]
    pub accepted: Vec<u16>,
}

fn mint_accepted() -> Vec<u16> {
    vec![200, 201]
}
fn retire_accepted() -> Vec<u16> {
    vec![200, 204]
}

/// Who authenticates a retire request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Who {
    /// keysweep's own login (`auth:`); the path names the token (`{id}`).
    #[default]
    Admin,
    /// The retired secret itself (a self-revocation endpoint such as
    /// Smartsheet's `DELETE /token`): its value is read from the store.
    Secret,
}

/// How a token is revoked: a request (`path`), or, where the vendor has no
/// API for it, `manual` instructions (keysweep then proves the token dead
/// by the probe and fails the step until a person has deleted it).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retire {
    #[serde(default = "delete")]
    pub method: Method,
    /// E.g. `/api/v1/service-tokens/{id}`.
    pub path: Option<String>,
    pub body: Option<Value>,
    #[serde(default)]
    pub authenticate: Who,
    /// Statuses of success (default 200, 204).
    #[serde(default = "retire_accepted")]
    pub accepted: Vec<u16>,
    /// A condition a success's body must meet too (e.g. `resultCode` 0).
    pub done: Option<Cond>,
    /// Answers that mean the token is gone already (success): status and body.
    #[serde(default)]
    pub gone: Vec<Gone>,
    /// An asynchronous revocation (e.g. 202 Accepted) and how to wait for it.
    pub pending: Option<Pending>,
    /// What a person does, where no API revokes the token.
    pub manual: Option<String>,
}

/// An answer meaning "already gone": a status and the vendor's body.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Gone {
    pub status: u16,
    pub body: Option<Cond>,
    pub body_contains: Option<String>,
}

impl Gone {
    pub fn rule(&self) -> Rule {
        Rule { status: self.status, body: self.body.clone(), body_contains: self.body_contains.clone(), verdict: RuleVerdict::Dead, means: None }
    }
}

fn accepted_202() -> u16 {
    202
}
fn one_second() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(1))
}
fn ten() -> u32 {
    10
}

/// An accepted-but-not-done revocation, polled until done within a bound. A
/// poll that never says done leaves the step failed (the token may live),
/// never "retired".
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pending {
    /// Default 202.
    #[serde(default = "accepted_202")]
    pub status: u16,
    /// Where the answer names the operation to poll (JSON pointer), for `{operation}` in `path`.
    pub operation: Option<String>,
    /// Where the answer gives the poll URL itself (JSON pointer); it must be on an allowed host.
    pub url: Option<String>,
    /// The poll request's path (`{operation}`, `{id}`).
    pub path: Option<String>,
    /// The poll's answer when the revocation is done.
    pub done: Cond,
    /// The poll's answer when it failed.
    pub failed: Option<Cond>,
    /// Between polls (default 1s).
    #[serde(default = "one_second")]
    pub interval: HumanDuration,
    /// Polls before giving up (default 10).
    #[serde(default = "ten")]
    pub max_polls: u32,
}

/// The request made with a secret, shared by `test` and verify-dead.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    #[serde(default = "get")]
    pub method: Method,
    /// E.g. `/users/me` (`{id}`, `{user}` allowed).
    pub path: String,
    pub present: Present,
    /// Ordered: the first that matches decides; none: unknown.
    pub rules: Vec<Rule>,
}

/// An admin-side request by the token's id, and its ordered rules.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Lookup {
    #[serde(default = "get")]
    pub method: Method,
    /// E.g. `/api/v1/service-tokens/{id}`.
    pub path: String,
    pub rules: Vec<Rule>,
}

/// Placeholders each kind of request may use.
pub const PH_PROBE: &[&str] = &["id", "user"];
pub const PH_IDENTITY: &[&str] = &[];
pub const PH_INVENTORY: &[&str] = &[];
pub const PH_MINT: &[&str] = &["nonce", "user", "name", "id"];
pub const PH_RETIRE: &[&str] = &["id", "user"];
pub const PH_POLL: &[&str] = &["id", "operation"];
pub const PH_LOOKUP: &[&str] = &["id", "user"];

/// `scheme://host:port` of a URL.
pub fn origin_of(u: &reqwest::Url) -> String {
    format!("{}://{}:{}", u.scheme(), u.host_str().unwrap_or_default(), u.port_or_known_default().unwrap_or(0))
}

impl HttpProviderConfig {
    /// The origins a request may go to.
    pub fn origins(&self) -> Vec<String> {
        std::iter::once(self.base_url.as_str())
            .chain(self.allowed_hosts.iter().map(String::as_str))
            .filter_map(|s| reqwest::Url::parse(s.trim()).ok())
            .map(|u| origin_of(&u))
            .collect()
    }

    /// Whether credentials of this provider are identified by a fingerprint
    /// of their value (the vendor gives a token no id keysweep can read).
    pub fn by_fingerprint(&self) -> bool {
        self.identity.as_ref().is_none_or(|i| i.token_id.is_none())
    }

    /// Whether retiring needs the old secret's value.
    pub fn retire_needs_value(&self) -> bool {
        self.retire.manual.is_some() || self.retire.authenticate == Who::Secret
    }

    fn check_path(&self, out: &mut Vec<Problem>, at: &[&str], path: &str, allowed: &[&str]) {
        match template::placeholders(path) {
            Err(e) => out.push(Problem::new(at, format!("`{path}`: {e}"), "placeholders are written `{id}`")),
            Ok(phs) => {
                for ph in phs.iter().filter(|p| !allowed.contains(&p.as_str())) {
                    let hint = if allowed.is_empty() {
                        "this request takes no placeholders".to_string()
                    } else {
                        format!("here only {} are filled in", list(allowed))
                    };
                    out.push(Problem::new(at, format!("unknown placeholder `{{{ph}}}` in `{path}`"), hint));
                }
            }
        }
        if path.starts_with("http://") || path.starts_with("https://") {
            match reqwest::Url::parse(path) {
                Ok(u) if self.origins().contains(&origin_of(&u)) => {}
                Ok(u) => out.push(Problem::new(
                    at,
                    format!(
                        "`{path}` sends to {}, which is neither `base_url`'s host nor in `allowed_hosts`: a secret would go to another host",
                        origin_of(&u)
                    ),
                    "write a path relative to `base_url` (`/…`), or add the vendor's documented origin to `allowed_hosts`",
                )),
                Err(e) => out.push(Problem::new(at, format!("`{path}` is not a URL: {e}"), "write a path relative to `base_url`, e.g. `/users/me`")),
            }
        } else if !path.starts_with('/') {
            out.push(Problem::new(
                at,
                format!("`{path}` is neither a path (`/…`) nor a URL"),
                "write a path relative to `base_url`, e.g. `/users/me`",
            ));
        }
    }

    fn check_body(&self, out: &mut Vec<Problem>, at: &[&str], body: &Value, allowed: &[&str]) {
        for (place, s) in template::json_strings(body) {
            match template::placeholders(s) {
                Err(e) => out.push(Problem::new(at, format!("body `{place}`: {e}"), "placeholders are written `{nonce}`")),
                Ok(phs) => {
                    for ph in phs.iter().filter(|p| !allowed.contains(&p.as_str())) {
                        out.push(Problem::new(
                            at,
                            format!("unknown placeholder `{{{ph}}}` in body `{place}`"),
                            format!("here only {} are filled in", list(allowed)),
                        ));
                    }
                }
            }
        }
    }

    fn check_pointer(out: &mut Vec<Problem>, at: &[&str], p: &str) {
        if let Some(m) = template::pointer_problem(p) {
            out.push(Problem::new(at, m, "e.g. `/data` or `/error/code`"));
        }
    }

    fn check_cond(out: &mut Vec<Problem>, at: &[&str], c: &Cond) {
        if let Some(m) = c.problem() {
            out.push(Problem::new(at, m, "e.g. `{ pointer: /errorCode, equals: 1002 }`"));
        }
    }

    fn check_rules(out: &mut Vec<Problem>, at: &[&str], rules: &[Rule], what: &str) {
        for (i, r) in rules.iter().enumerate() {
            let idx = format!("[{i}]");
            let mut p: Vec<&str> = at.to_vec();
            p.push("rules");
            p.push(&idx);
            if let Some((m, h)) = r.problem() {
                out.push(Problem::new(&p, m, h));
            }
        }
        if !rules.iter().any(|r| r.verdict == RuleVerdict::Dead) {
            let mut p: Vec<&str> = at.to_vec();
            p.push("rules");
            out.push(Problem::new(
                &p,
                format!("the {what} has no `dead` rule: no answer could ever prove a secret dead"),
                "add the vendor's documented refusal, e.g. `{ status: 401, body: { pointer: /errorCode, equals: 1002 }, verdict: dead }`",
            ));
        }
    }

    fn check_template(out: &mut Vec<Problem>, at: &[&str], t: &str, allowed: &[&str], needs_one_of: &[&str]) {
        match template::placeholders(t) {
            Err(e) => out.push(Problem::new(at, format!("`{t}`: {e}"), "e.g. `Bearer {secret}`")),
            Ok(phs) => {
                for ph in phs.iter().filter(|p| !allowed.contains(&p.as_str())) {
                    out.push(Problem::new(
                        at,
                        format!("unknown placeholder `{{{ph}}}` in `{t}`"),
                        format!("here only {} are filled in", list(allowed)),
                    ));
                }
                if !phs.iter().any(|p| needs_one_of.contains(&p.as_str())) {
                    out.push(Problem::new(
                        at,
                        format!("`{t}` sends no secret"),
                        format!("use {} in the template, e.g. `Bearer {{secret}}`", list(needs_one_of)),
                    ));
                }
            }
        }
    }
}

fn list(items: &[&str]) -> String {
    items.iter().map(|i| format!("`{{{i}}}`")).collect::<Vec<_>>().join(", ")
}

fn header_ok(h: &str) -> bool {
    reqwest::header::HeaderName::from_bytes(h.as_bytes()).is_ok()
}

#[async_trait]
impl ProviderKind for HttpProviderConfig {
    fn limits(&self) -> &Limits {
        &self.limits
    }
    fn secret_refs(&self) -> Vec<&SecretRef> {
        vec![&self.auth.token]
    }
    fn secret_keys() -> &'static [&'static str] {
        &["token"]
    }

    fn check(&self, allow_link_local: bool) -> Vec<Problem> {
        let mut out = vec![];
        if self.vendor.trim().is_empty() {
            out.push(Problem::new(&["vendor"], "`vendor` is empty", "name the vendor, e.g. `Smartsheet`"));
        }
        if let Some((m, h)) = address_problem(&self.base_url, &["https", "http"], allow_link_local) {
            out.push(Problem::new(&["base_url"], m, h));
        } else {
            out.extend(crate::provider::kind::plaintext_problems(&[(&["base_url"], &self.base_url)], self.allow_plaintext));
        }
        out.extend(self.tls.check_http(&["tls"]));
        for (i, a) in self.allowed_hosts.iter().enumerate() {
            let idx = format!("[{i}]");
            let at = ["allowed_hosts", idx.as_str()];
            if let Some((m, h)) = address_problem(a, &["https", "http"], allow_link_local) {
                out.push(Problem::new(&at, m, h));
            } else if let Some((m, h)) = crate::playbook::rules::plaintext_address_problem(a, self.allow_plaintext) {
                out.push(Problem::new(&at, m, h));
            } else if reqwest::Url::parse(a.trim()).is_ok_and(|u| !u.path().trim_matches('/').is_empty() || u.query().is_some()) {
                out.push(Problem::new(&at, format!("`{a}` is not an origin: it has a path or query"), "write `https://host[:port]` only"));
            }
        }
        if !header_ok(&self.auth.header) {
            out.push(Problem::new(&["auth", "header"], format!("`{}` is not an HTTP header name", self.auth.header), "e.g. `Authorization`"));
        }
        Self::check_template(&mut out, &["auth", "template"], &self.auth.template, &["secret"], &["secret"]);
        Self::check_cond(&mut out, &["error_body"], &self.error_body);

        // The probe: the one request made with a secret, and its proof rules.
        let pr = &self.probe;
        if !header_ok(&pr.present.header) {
            out.push(Problem::new(
                &["probe", "present", "header"],
                format!("`{}` is not an HTTP header name", pr.present.header),
                "e.g. `Authorization`",
            ));
        }
        Self::check_template(&mut out, &["probe", "present", "template"], &pr.present.template, &["secret", "basic"], &["secret", "basic"]);
        self.check_path(&mut out, &["probe", "path"], &pr.path, PH_PROBE);
        Self::check_rules(&mut out, &["probe"], &pr.rules, "probe");

        if let Some(l) = &self.lookup {
            self.check_path(&mut out, &["lookup", "path"], &l.path, PH_LOOKUP);
            if !template::placeholders(&l.path).is_ok_and(|p| p.iter().any(|x| x == "id")) {
                out.push(Problem::new(
                    &["lookup", "path"],
                    format!("`{}` does not name the token: a lookup asks about one token by `{{id}}`", l.path),
                    "e.g. `/api/v1/tokens/{id}`",
                ));
            }
            Self::check_rules(&mut out, &["lookup"], &l.rules, "lookup");
        }

        if let Some(inv) = &self.inventory {
            self.check_path(&mut out, &["inventory", "path"], &inv.path, PH_INVENTORY);
            Self::check_pointer(&mut out, &["inventory", "items"], &inv.items);
            let f = &inv.fields;
            for (k, p) in [
                ("id", Some(&f.id)),
                ("name", f.name.as_ref()),
                ("user", f.user.as_ref()),
                ("description", f.description.as_ref()),
                ("created", f.created.as_ref()),
                ("last_used", f.last_used.as_ref()),
            ] {
                if let Some(p) = p {
                    Self::check_pointer(&mut out, &["inventory", "fields", k], p);
                }
            }
            if let Some(c) = &f.privileged {
                Self::check_cond(&mut out, &["inventory", "fields", "privileged"], c);
            }
            match &inv.pagination {
                Some(Pagination::Cursor(c)) => {
                    Self::check_pointer(&mut out, &["inventory", "pagination", "cursor"], &c.cursor);
                    if c.param.trim().is_empty() {
                        out.push(Problem::new(
                            &["inventory", "pagination", "param"],
                            "`param` is empty",
                            "the query parameter the cursor is sent back in, e.g. `cursor`",
                        ));
                    }
                }
                Some(Pagination::Page(p)) => {
                    if p.param.trim().is_empty() {
                        out.push(Problem::new(
                            &["inventory", "pagination", "param"],
                            "`param` is empty",
                            "the page number's query parameter, e.g. `page`",
                        ));
                    }
                    if let Some(t) = &p.total_pages {
                        Self::check_pointer(&mut out, &["inventory", "pagination", "total_pages"], t);
                    }
                }
                Some(Pagination::Offset(o)) => {
                    if o.param.trim().is_empty() {
                        out.push(Problem::new(
                            &["inventory", "pagination", "param"],
                            "`param` is empty",
                            "the offset's query parameter, e.g. `offset`",
                        ));
                    }
                    if let Some(m) = &o.more {
                        Self::check_pointer(&mut out, &["inventory", "pagination", "more"], m);
                    }
                }
                Some(Pagination::Link(_)) | None => {}
            }
        }

        if let Some(id) = &self.identity {
            self.check_path(&mut out, &["identity", "path"], &id.path, PH_IDENTITY);
            Self::check_pointer(&mut out, &["identity", "user"], &id.user);
            if let Some(t) = &id.token_id {
                Self::check_pointer(&mut out, &["identity", "token_id"], t);
            }
            if let Some(c) = &id.privileged {
                Self::check_cond(&mut out, &["identity", "privileged"], c);
            }
        }

        if let Some(m) = &self.mint {
            self.check_path(&mut out, &["mint", "path"], &m.path, PH_MINT);
            if let Some(b) = &m.body {
                self.check_body(&mut out, &["mint", "body"], b, PH_MINT);
            }
            Self::check_pointer(&mut out, &["mint", "value"], &m.value);
            Self::check_pointer(&mut out, &["mint", "id"], &m.id);
            let uses_nonce = template::placeholders(&m.path).is_ok_and(|p| p.iter().any(|x| x == "nonce"))
                || m.body.as_ref().is_some_and(|b| {
                    template::json_strings(b).iter().any(|(_, s)| template::placeholders(s).is_ok_and(|p| p.iter().any(|x| x == "nonce")))
                });
            if !uses_nonce {
                out.push(Problem::new(
                    &["mint"],
                    "the mint request carries no `{nonce}`: a token minted by a run that crashed before storing it could never be found again",
                    "put `{nonce}` where the vendor keeps it with the token (a name or description), and list that field in `inventory.fields`",
                ));
            }
            let findable =
                self.inventory.as_ref().is_some_and(|i| i.lists == Lists::Tokens && (i.fields.name.is_some() || i.fields.description.is_some()));
            if !findable {
                out.push(Problem::new(
                    &["mint"],
                    "minted tokens cannot be found again: the inventory lists no tokens with a `name` or `description`",
                    "add `inventory:` listing the tokens, with `fields.name` or `fields.description` (where the nonce is kept)",
                ));
            }
            if self.identity.is_none() {
                out.push(Problem::new(
                    &["mint"],
                    "a minted token's account cannot be checked: the recipe has no `identity:`",
                    "add `identity:` (a \"who am I\" request): a replacement must act as the same account, never a more privileged one",
                ));
            }
        }

        let r = &self.retire;
        match (&r.path, &r.manual) {
            (Some(_), Some(_)) => out.push(Problem::new(
                &["retire"],
                "`retire` has both `path` and `manual`",
                "give the request (`path`), or `manual` where the vendor has no API",
            )),
            (None, None) => out.push(Problem::new(
                &["retire"],
                "`retire` has neither `path` nor `manual`",
                "give the revocation request's `path`, or `manual` instructions where no API revokes a token",
            )),
            (None, Some(m)) if m.trim().is_empty() => {
                out.push(Problem::new(&["retire", "manual"], "`manual` is empty", "say what a person does to delete the token"))
            }
            (Some(p), None) => {
                self.check_path(&mut out, &["retire", "path"], p, PH_RETIRE);
                if let Some(b) = &r.body {
                    self.check_body(&mut out, &["retire", "body"], b, PH_RETIRE);
                }
                let names = template::placeholders(p).unwrap_or_default();
                let names_token = names.iter().any(|x| x == "id" || x == "user")
                    || r.body.as_ref().is_some_and(|b| {
                        template::json_strings(b).iter().any(|(_, s)| template::placeholders(s).is_ok_and(|p| p.iter().any(|x| x == "id")))
                    });
                if r.authenticate == Who::Admin && !names_token {
                    out.push(Problem::new(
                        &["retire", "path"],
                        format!("`{p}` is sent with keysweep's own login but names no token: it would revoke keysweep's own"),
                        "name the token with `{id}`, or set `authenticate: secret` for an endpoint that revokes the token presented",
                    ));
                }
            }
            _ => {}
        }
        if r.accepted.contains(&202) {
            out.push(Problem::new(
                &["retire", "accepted"],
                "202 is listed as a success: \"accepted for processing\" is not a revocation done",
                "remove 202 from `accepted` and describe how to wait for it under `pending:` (`status: 202`, the poll, its `done` answer)",
            ));
        }
        if let Some(c) = &r.done {
            Self::check_cond(&mut out, &["retire", "done"], c);
        }
        for (i, g) in r.gone.iter().enumerate() {
            let idx = format!("[{i}]");
            if let Some((m, h)) = g.rule().problem() {
                out.push(Problem::new(&["retire", "gone", &idx], m.replace("a `dead` rule", "a `gone` answer"), h));
            }
        }
        if let Some(pd) = &r.pending {
            match (&pd.url, &pd.path) {
                (Some(u), None) => Self::check_pointer(&mut out, &["retire", "pending", "url"], u),
                (None, Some(p)) => {
                    self.check_path(&mut out, &["retire", "pending", "path"], p, PH_POLL);
                    let uses_op = template::placeholders(p).is_ok_and(|x| x.iter().any(|n| n == "operation"));
                    if uses_op && pd.operation.is_none() {
                        out.push(Problem::new(
                            &["retire", "pending", "path"],
                            format!("`{p}` uses `{{operation}}` but `operation` says not where it is"),
                            "add `operation: /operation/id` (a JSON pointer into the 202 answer)",
                        ));
                    }
                }
                _ => out.push(Problem::new(
                    &["retire", "pending"],
                    "`pending` needs exactly one of `url` (a pointer to the poll URL in the answer) and `path`",
                    "e.g. `path: /operations/{operation}` with `operation: /operation/id`",
                )),
            }
            if let Some(o) = &pd.operation {
                Self::check_pointer(&mut out, &["retire", "pending", "operation"], o);
            }
            Self::check_cond(&mut out, &["retire", "pending", "done"], &pd.done);
            if let Some(f) = &pd.failed {
                Self::check_cond(&mut out, &["retire", "pending", "failed"], f);
            }
            if !(1..=100).contains(&pd.max_polls) {
                out.push(Problem::new(
                    &["retire", "pending", "max_polls"],
                    format!("`max_polls` is {}; it must be within 1..=100", pd.max_polls),
                    "the default is 10",
                ));
            }
            if pd.interval.0 > std::time::Duration::from_secs(300) || pd.interval.0.is_zero() {
                out.push(Problem::new(&["retire", "pending", "interval"], "`interval` must be within 1ms..=5m", "the default is 1s"));
            }
        }
        out
    }

    fn check_credential(&self, target: &Target, cx: &CredentialCx) -> Vec<Problem> {
        let Target::HttpToken(t) = target else { return vec![] };
        let mut out = vec![];
        let vendor = &self.vendor;
        let token_listed = self.inventory.as_ref().is_some_and(|i| i.lists == Lists::Tokens);
        let names_token =
            t.token_id.is_some() || (t.name.is_some() && token_listed && self.inventory.as_ref().is_some_and(|i| i.fields.name.is_some()));
        if cx.action == Action::Rotate {
            if self.mint.is_none() && !cx.manual {
                out.push(Problem::new(
                    &["action"],
                    format!("`{}`: {vendor} issues no token by API (the recipe has no `mint:`): a rotation needs a person", cx.id),
                    "describe in `manual:` how a person re-issues it (keysweep identifies, tests and promotes the value they supply, then revokes the old one), or use action: revoke",
                ));
            }
            if cx.manual || self.mint.is_some() {
                if self.identity.is_none() {
                    out.push(Problem::new(
                        &["action"],
                        format!("`{}`: the {vendor} recipe cannot tell which account a new value acts as (no `identity:`), so a replacement could act as another, more privileged account: rotation is refused", cx.id),
                        "use action: revoke, or add an `identity:` (\"who am I\") request to the provider",
                    ));
                } else if t.user.is_none()
                    && !(names_token && self.inventory.as_ref().is_some_and(|i| i.fields.user.is_some() && i.lists == Lists::Tokens))
                {
                    out.push(Problem::new(
                        &["target"],
                        format!("`{}` names no account: a replacement must act as the old token's account, and neither the entry nor {vendor}'s listing says which", cx.id),
                        "add `user:` (the account the token acts as, as the identity request reports it)",
                    ));
                }
            }
        }
        if self.retire_needs_value() && !cx.stored {
            let why = if self.retire.manual.is_some() {
                "proves a manually deleted token dead with its value"
            } else {
                "revokes a token only when presented with it"
            };
            out.push(Problem::new(
                &[],
                format!("`{}`: {vendor} {why}, and the entry names no store that holds the value", cx.id),
                "add `deliver_to:` naming the store entry that holds the token's current value",
            ));
        }
        if self.retire.path.is_some() && self.retire.authenticate == Who::Admin && !names_token {
            out.push(Problem::new(
                &["target"],
                format!("`{}` names no token to revoke", cx.id),
                if token_listed { "add `token_id:` (as the inventory lists it) or the token's `name:`" } else { "add `token_id:`" },
            ));
        }
        // The placeholders the recipe's requests fill in from the entry.
        let mut templates: Vec<&str> = vec![&self.probe.path, &self.probe.present.template];
        templates.extend(self.retire.path.as_deref());
        templates.extend(self.retire.body.iter().flat_map(|b| template::json_strings(b).into_iter().map(|(_, s)| s)));
        if cx.action == Action::Rotate && !cx.manual {
            if let Some(m) = &self.mint {
                templates.push(&m.path);
                templates.extend(m.body.iter().flat_map(|b| template::json_strings(b).into_iter().map(|(_, s)| s)));
            }
        }
        let used: Vec<String> = templates.iter().filter_map(|t| template::placeholders(t).ok()).flatten().collect();
        for (phs, field, have) in [(&["user", "basic"][..], "user", t.user.is_some()), (&["name"][..], "name", t.name.is_some())] {
            if let Some(ph) = phs.iter().find(|p| used.iter().any(|u| u == *p)).filter(|_| !have) {
                out.push(Problem::new(
                    &["target"],
                    format!("`{}`: the {vendor} recipe fills `{{{ph}}}` from the entry's `{field}`, and the entry has none", cx.id),
                    format!("add `{field}:`"),
                ));
            }
        }
        out
    }

    fn warnings(&self) -> Vec<String> {
        let hosts: Vec<&str> = std::iter::once(self.base_url.as_str()).chain(self.allowed_hosts.iter().map(String::as_str)).collect();
        let mut out = crate::provider::kind::plaintext_warnings(&hosts, self.allow_plaintext, "keysweep's login and every token");
        out.extend(self.tls.warnings());
        out
    }
    async fn connect(&self, name: &str, resolve: &Resolve<'_>) -> Result<Arc<dyn Provider>, ProviderError> {
        Ok(Arc::new(super::HttpProvider::connect(name, self, resolve).await?))
    }
}

/// A token of an `http` provider.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpTokenTarget {
    /// The token's id at the vendor, as its inventory lists it; after a
    /// rotation the store's `token_id` field names the token in service.
    pub token_id: Option<String>,
    /// The token's name, to find it in the inventory when no id is given.
    pub name: Option<String>,
    /// The account the token acts as, as the recipe's identity request
    /// reports it: a replacement must act as it too.
    pub user: Option<String>,
    /// The token is known to be privileged (an admin's): only then is a
    /// replacement the vendor reports as privileged accepted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
}

pub const TOKEN_ID: &str = "token_id";
/// Identity of a token the vendor gives no readable id: a prefix of the
/// SHA-256 of its value (never the value; journaled and stored beside it).
pub const FINGERPRINT: &str = "fingerprint";
/// The account a token without id or fingerprint is known by.
pub const ACCOUNT: &str = "account";

/// `http_token`.
pub struct TokenKind;

impl Kind for TokenKind {
    type Target = HttpTokenTarget;
    /// What a recipe can do decides the rest at load time: without `mint:`
    /// a rotation needs `manual:` steps and `identity:`.
    fn capabilities() -> Capabilities {
        Capabilities { rotate: true, revoke: true, mints: true, verify_dead: true, needs_store: true }
    }
    fn check(t: &HttpTokenTarget, cx: &CheckCx) -> Vec<Problem> {
        let mut out = vec![];
        for (k, v) in [("token_id", &t.token_id), ("name", &t.name), ("user", &t.user)] {
            if v.as_ref().is_some_and(|v| v.trim().is_empty()) {
                out.push(Problem::new(&[k], format!("`{k}` is empty"), "remove it or write the value"));
            }
        }
        if t.token_id.is_none() && t.name.is_none() && t.user.is_none() {
            out.push(Problem::new(&[], format!("`{}` names no token", cx.id), "add `token_id:`, the token's `name:`, or the `user:` it acts as"));
        }
        out
    }
    fn identity_in_store(_t: &HttpTokenTarget) -> bool {
        true
    }
    fn claimed(t: &HttpTokenTarget, stored: Option<&Fields>) -> Vec<(String, bool)> {
        let by_id = claimed_by_id(stored, TOKEN_ID, t.token_id.as_ref());
        if !by_id.is_empty() {
            return by_id;
        }
        // Vendors that list accounts, not tokens: the entry names its account.
        t.user.iter().filter(|_| t.name.is_none()).map(|u| (u.clone(), true)).collect()
    }
    fn takes_unnamed(t: &HttpTokenTarget, item: &InventoryItem) -> bool {
        t.name.is_some() && item.details.get("name") == t.name.as_ref()
    }
    fn unnamed_label(t: &HttpTokenTarget) -> Option<String> {
        t.name.as_ref().map(|n| format!("token named `{n}`"))
    }
    fn draft(id: &str, details: &Fields) -> String {
        if details.get("lists").map(String::as_str) == Some("accounts") {
            return format!("user: {}", q(id));
        }
        let mut s = format!("token_id: {}", q(id));
        for key in ["name", "user"] {
            if let Some(v) = details.get(key).filter(|v| !v.is_empty()) {
                s.push_str(&format!(", {key}: {}", q(v)));
            }
        }
        s
    }
    fn draft_name(id: &str, details: &Fields) -> String {
        details.get("name").filter(|n| !n.is_empty()).cloned().unwrap_or_else(|| id.to_string())
    }
}
