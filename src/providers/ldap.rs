//! LDAP directories (OpenLDAP, 389-ds, and Active Directory for binds):
//! service accounts' passwords, credential kind `ldap_account`. The account is
//! its DN; the handle is `{"username": <DN>}`.
//!
//! - **apply** sets the password with the Password Modify extended operation
//!   (RFC 3062) when the root DSE offers it, so the server hashes it by its own
//!   `password-hash`; otherwise it replaces `userPassword` (on Active Directory:
//!   `unicodePwd`, which AD accepts only over TLS; written from Microsoft's
//!   documentation, not tested against a real AD here). A replaced
//!   `userPassword` is stored as the server stores any write of it: in clear
//!   unless it hashes writes (OpenLDAP: `ppolicy_hash_cleartext`). keysweep's
//!   admin bind is the only connection that writes. A re-run that a password
//!   policy refuses (`pwdInHistory`: the same value twice) succeeds when the
//!   value already binds.
//! - **test** binds as the account with the new password on a *new* connection
//!   (never on the admin's), then unbinds.
//! - **retire** deletes the account's `userPassword`/`authPassword`: with no
//!   password attribute no simple bind can succeed, and the admin can *see* that
//!   (the admin-side proof of death). Where the schema requires the attribute
//!   (`simpleSecurityObject`) or the server refuses the deletion, it is replaced
//!   by a random value nobody knows, and death can only be proven with the old
//!   value. An entry that is gone is retired.
//! - **create_clone** (alternating pairs): when the account a new password is for
//!   does not exist, it is created from the other account of the pair: the same
//!   objectClasses and user attributes, never a credential-bearing one (any
//!   `*password*`/`*pwd*` attribute, Kerberos keys, SSH keys, certificates);
//!   values equal to the source's RDN value take the clone's; and the clone is
//!   added to every group (`member`, `uniqueMember`, `memberUid`) the source is in.
//!
//! Proof of death (DESIGN.md "Proving death"): a bind refused with result 49
//! (invalidCredentials) is proof only when nothing says the account is locked,
//! expired or disabled: Active Directory's `data 52e` (bad password) and `525`
//! (no such user) are; `775` (locked), `532`/`533` (expired/disabled), `530`,
//! `531`, `701`, `773` are not; a password-policy response saying
//! `accountLocked`/`passwordExpired` is not; nor is a 49 for an entry whose admin
//! view shows a lock (`pwdAccountLockedTime`, 389-ds `nsAccountLock: true` or
//! `accountUnlockTime`, AD `lockoutTime` > 0 or a disabled `userAccountControl`).
//! Admin-side: the entry is gone (result 32), or it holds no password attribute.
//! Without the old value, an entry that still has a password is `Unknown`:
//! plain LDAP gives the admin no way to tell which password it holds.
//! Everything else (timeouts, busy, unavailable, other codes) is `Unknown`.
//!
//! What the admin bind needs: write access to the accounts' password
//! attributes, read access to the entries and to the lock attributes above
//! (a directory that hides an entry from it answers noSuchObject, which reads
//! as "gone"), and compare access to `userPassword` (used to see whether it is
//! present without reading it). keysweep never reads a password value: searches
//! ask for attribute names or non-secret attributes only.
//!
//! TLS: an `ldaps://` URL (TLS from the first byte) or `starttls: true` on an
//! `ldap://` URL (upgraded before the bind; a server that refuses StartTLS
//! is an error, never a plaintext connection), with the shared `tls:` block
//! (`crate::provider::tls`): the server's certificate is verified against
//! `tls.ca_cert`/`ca_path` (else the system's roots) and the URL's host (or
//! `tls.server_name`). Every connection, the admin's and each probe bind, is
//! secured the same way. Plaintext (`ldap://` without `starttls`) to a host
//! that is not loopback does not load unless `allow_plaintext: true`;
//! `insecure_skip_verify` and allowed plaintext are reported by `plan` and at
//! every connection. A refused certificate or StartTLS is a configuration
//! error; a probe that cannot connect is `Unknown`, never proof of death.
//! An empty password is never sent: a simple bind with a DN and no
//! password is an "unauthenticated bind" that some servers accept.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use ldap3::controls::RawControl;
use ldap3::exop::PasswordModify;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Mod, Scope, SearchEntry};
use zeroize::Zeroizing;

use super::account::DbAccountTarget;
use super::account::{one, USERNAME};
use crate::playbook::model::Target;
use crate::provider::{ErrorKind, Handle, InventoryItem, Minted, Provider, ProviderError, Verdict};
use crate::secret::{Delivered, ExposeSecret, GeneratePolicy, SecretString};

/// RFC 3062 Password Modify.
const PASSMOD_OID: &str = "1.3.6.1.4.1.4203.1.11.1";
/// draft-behera-ldap-password-policy request control (answered by OpenLDAP's ppolicy, 389-ds, ...).
const PPOLICY_OID: &str = "1.3.6.1.4.1.42.2.27.8.5.1";
/// LDAP_CAP_ACTIVE_DIRECTORY_OID in the root DSE's supportedCapabilities.
const AD_CAP_OID: &str = "1.2.840.113556.1.4.800";
/// Attributes that tell whether an account is locked, expired or disabled (none secret).
const LOCK_ATTRS: &[&str] = &["pwdAccountLockedTime", "nsAccountLock", "accountUnlockTime", "lockoutTime", "userAccountControl", "loginDisabled"];
/// What a refused bind proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindRefusal {
    /// The directory's own refusal of a wrong password.
    WrongPassword,
    /// A refusal that says nothing about the password (locked, expired,
    /// disabled, not a credentials error at all): never proof of death.
    NotProof(String),
}

/// Classifies a refused simple bind from its result code, diagnostic message
/// and the password-policy response's error (0 passwordExpired, 1 accountLocked),
/// if the server sent one. Only result 49 with nothing that says "locked",
/// "expired" or "disabled" is [`BindRefusal::WrongPassword`].
pub fn classify_bind_refusal(rc: u32, text: &str, ppolicy_error: Option<u8>) -> BindRefusal {
    if rc != 49 {
        return BindRefusal::NotProof(format!("result {rc} ({}) is not a credentials refusal", rc_name(rc)));
    }
    match ppolicy_error {
        Some(0) => return BindRefusal::NotProof("49 with password-policy error passwordExpired".into()),
        Some(1) => return BindRefusal::NotProof("49 with password-policy error accountLocked".into()),
        _ => {}
    }
    let t = text.to_ascii_lowercase();
    // Active Directory: "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 52e, v4563"
    if let Some(code) = ad_data_code(&t) {
        return match code.as_str() {
            "52e" => BindRefusal::WrongPassword,
            "525" => BindRefusal::WrongPassword, // no such user
            "775" => BindRefusal::NotProof("49 with AD data 775 (account locked out)".into()),
            "532" => BindRefusal::NotProof("49 with AD data 532 (password expired)".into()),
            "533" => BindRefusal::NotProof("49 with AD data 533 (account disabled)".into()),
            "701" => BindRefusal::NotProof("49 with AD data 701 (account expired)".into()),
            "773" => BindRefusal::NotProof("49 with AD data 773 (user must reset password)".into()),
            "530" | "531" => BindRefusal::NotProof(format!("49 with AD data {code} (logon time or workstation restriction)")),
            other => BindRefusal::NotProof(format!("49 with AD data {other} (not a documented bad-password code)")),
        };
    }
    const NOT_PROOF: &[&str] = &[
        "lock",          // "Account locked", "account is locked"
        "expired",       // "password expired", "account expired"
        "disabled",      // "account disabled"
        "inactivated",   // 389-ds: "Account inactivated. Contact system administrator."
        "retry limit",   // 389-ds: "Exceed password retry limit."
        "must change",   // "password must be changed"
        "must be reset", //
        "reset",         // "password reset required"
    ];
    if let Some(w) = NOT_PROOF.iter().find(|w| t.contains(**w)) {
        return BindRefusal::NotProof(format!("49 whose message mentions `{w}`"));
    }
    BindRefusal::WrongPassword
}

/// The hex code after `data ` in an Active Directory bind message.
fn ad_data_code(lower: &str) -> Option<String> {
    let i = lower.find("data ")?;
    let code: String = lower[i + 5..].chars().take_while(|c| c.is_ascii_hexdigit()).collect();
    (!code.is_empty()).then_some(code)
}

/// The `error` of a password-policy response control value, if present.
/// PasswordPolicyResponseValue ::= SEQUENCE { warning [0] ... OPTIONAL, error [1] ENUMERATED OPTIONAL }
pub fn ppolicy_error(val: &[u8]) -> Option<u8> {
    fn len_at(b: &[u8], i: usize) -> Option<(usize, usize)> {
        let first = *b.get(i)?;
        if first < 0x80 {
            return Some((first as usize, 1));
        }
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let mut l = 0usize;
        for k in 0..n {
            l = (l << 8) | *b.get(i + 1 + k)? as usize;
        }
        Some((l, 1 + n))
    }
    if val.first() != Some(&0x30) {
        return None;
    }
    let (total, ll) = len_at(val, 1)?;
    let mut i = 1 + ll;
    let end = (i + total).min(val.len());
    while i < end {
        let tag = val[i];
        let (l, ll) = len_at(val, i + 1)?;
        let start = i + 1 + ll;
        if tag == 0x81 && l >= 1 {
            return val.get(start + l - 1).copied();
        }
        i = start + l;
    }
    None
}

fn rc_name(rc: u32) -> &'static str {
    match rc {
        0 => "success",
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        7 => "authMethodNotSupported",
        8 => "strongerAuthRequired",
        10 => "referral",
        11 => "adminLimitExceeded",
        13 => "confidentialityRequired",
        16 => "noSuchAttribute",
        17 => "undefinedAttributeType",
        19 => "constraintViolation",
        20 => "attributeOrValueExists",
        21 => "invalidAttributeSyntax",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        64 => "namingViolation",
        65 => "objectClassViolation",
        68 => "entryAlreadyExists",
        80 => "other",
        _ => "unknown",
    }
}

/// The error kind of a non-zero result code of an admin operation.
fn rc_kind(rc: u32) -> ErrorKind {
    match rc {
        3 | 51 | 52 => ErrorKind::Unavailable,
        11 => ErrorKind::RateLimited,
        49 => ErrorKind::Unauthenticated,
        50 => ErrorKind::PermissionDenied,
        32 => ErrorKind::NotFound,
        8 | 13 | 34 => ErrorKind::Config,
        19 | 20 | 65 | 68 => ErrorKind::Conflict,
        _ => ErrorKind::Other,
    }
}

/// Maps an ldap3 error to a provider error (text scrubbed by `ProviderError::new`).
fn map_err(op: &'static str, e: LdapError) -> ProviderError {
    match e {
        LdapError::LdapResult { result } => {
            ProviderError::new(rc_kind(result.rc), op, format!("result {} ({}): {}", result.rc, rc_name(result.rc), result.text))
        }
        LdapError::UrlParsing { .. } | LdapError::UnknownScheme(_) | LdapError::EmptyUnixPath | LdapError::PortInUnixPath => {
            ProviderError::new(ErrorKind::Config, op, e.to_string())
        }
        LdapError::FilterParsing | LdapError::AddNoValues | LdapError::DecodingUTF8 => ProviderError::new(ErrorKind::Other, op, e.to_string()),
        // I/O, timeouts, TLS, a closed connection: may pass.
        other => ProviderError::new(ErrorKind::Unavailable, op, other.to_string()),
    }
}

/// A result code that is not success, as an error.
fn rc_err(op: &'static str, r: &ldap3::LdapResult) -> ProviderError {
    ProviderError::new(rc_kind(r.rc), op, format!("result {} ({}): {}", r.rc, rc_name(r.rc), r.text))
}

/// Case- and space-insensitive form of a DN, for comparing two spellings.
pub fn norm_dn(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    let mut chars = dn.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push('\\');
                if let Some(n) = chars.next() {
                    out.extend(n.to_lowercase());
                }
            }
            ',' | '=' | '+' => {
                while out.ends_with(' ') {
                    out.pop();
                }
                out.push(c);
                while chars.peek() == Some(&' ') {
                    chars.next();
                }
            }
            _ => out.extend(c.to_lowercase()),
        }
    }
    out
}

fn same_dn(a: &str, b: &str) -> bool {
    norm_dn(a) == norm_dn(b)
}

/// The components of a DN's first RDN (attribute, unescaped value).
fn first_rdn(dn: &str) -> Vec<(String, String)> {
    let mut comps = vec![];
    let mut cur = String::new();
    let mut escaped = false;
    let mut parts: Vec<String> = vec![];
    for c in dn.chars() {
        if escaped {
            cur.push('\\');
            cur.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            ',' => break,
            '+' => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    parts.push(cur);
    for p in parts {
        if let Some((a, v)) = p.split_once('=') {
            comps.push((a.trim().to_string(), unescape_dn_value(v.trim())));
        }
    }
    comps
}

/// Undoes RFC 4514 escapes (`\,` and `\2C` forms).
fn unescape_dn_value(v: &str) -> String {
    let b = v.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if i + 2 < b.len() {
                if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
            }
            out.push(b[i + 1]);
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An attribute that carries authentication material: never copied, never read.
fn is_credential_attr(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("password")
        || n.contains("pwd")
        || n.starts_with("krb")
        || n == "sshpublickey"
        || n.starts_with("usercertificate")
        || n == "userpkcs12"
        || n.starts_with("usersmimecertificate")
        || n == "supplementalcredentials"
        || n == "ntpwdhistory"
        || n == "lmpwdhistory"
}

/// LDAP generalized time (`20240102030405Z`, `20240102030405.0Z`) as RFC 3339.
fn generalized_to_rfc3339(s: &str) -> Option<String> {
    let digits: String = s.chars().take_while(|c| c.is_ascii_digit()).collect();
    if digits.len() < 14 || !s.ends_with('Z') {
        return None;
    }
    let dt = chrono::NaiveDateTime::parse_from_str(&digits[..14], "%Y%m%d%H%M%S").ok()?;
    Some(dt.and_utc().to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// Active Directory's FILETIME (100 ns since 1601) as RFC 3339; 0 means never.
fn filetime_to_rfc3339(s: &str) -> Option<String> {
    let ft: i64 = s.trim().parse().ok().filter(|v| *v > 0)?;
    let secs = ft / 10_000_000 - 11_644_473_600;
    chrono::DateTime::from_timestamp(secs, 0).map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// A lock, expiry or disablement the entry's attributes show, if any.
fn lock_in(attrs: &HashMap<String, Vec<String>>) -> Option<String> {
    for (k, vals) in attrs {
        let key = k.to_ascii_lowercase();
        let first = vals.first().map(String::as_str).unwrap_or("");
        match key.as_str() {
            "pwdaccountlockedtime" => return Some(format!("pwdAccountLockedTime is set ({first})")),
            "nsaccountlock" if vals.iter().any(|v| v.eq_ignore_ascii_case("true")) => return Some("nsAccountLock: true".into()),
            "accountunlocktime" => return Some(format!("accountUnlockTime is set ({first})")),
            "lockouttime" if vals.iter().any(|v| v.trim().parse::<i64>().map(|n| n > 0).unwrap_or(false)) => {
                return Some("lockoutTime is set (AD lockout)".into())
            }
            "useraccountcontrol" if vals.iter().any(|v| v.trim().parse::<u32>().map(|n| n & 0x2 != 0).unwrap_or(false)) => {
                return Some("userAccountControl has ACCOUNTDISABLE".into())
            }
            "logindisabled" if vals.iter().any(|v| v.eq_ignore_ascii_case("true")) => return Some("loginDisabled: TRUE".into()),
            _ => {}
        }
    }
    None
}

/// What the admin sees of an account.
struct EntryState {
    has_password: bool,
    lock: Option<String>,
}

/// The answer of one probe bind.
enum Probe {
    Accepted,
    Refused { rc: u32, text: String, ppolicy: Option<u8> },
    Failed(String),
}

/// Features of the directory, from its root DSE.
#[derive(Default)]
struct Dse {
    passmod: bool,
    active_directory: bool,
}

pub struct LdapProvider {
    name: String,
    url: String,
    /// How every connection (admin and probes) is secured.
    transport: Transport,
    admin_dn: String,
    // Kept to reconnect when the admin connection drops; never printed.
    admin_password: SecretString,
    timeout: Duration,
    admin: tokio::sync::Mutex<Ldap>,
    dse: Dse,
    /// The limits layer: rate, timeout and the retry bound.
    gate: crate::provider::limits::Gate,
}

impl LdapProvider {
    /// Connects and logs in with the admin credential.
    pub async fn connect(name: &str, cfg: &LdapProviderConfig, resolve: &crate::provider::kind::Resolve<'_>) -> Result<Self, ProviderError> {
        let gate = crate::provider::limits::Gate::new(&cfg.limits);
        let timeout = gate.timeout();
        if cfg.admin.user.trim().is_empty() {
            return Err(ProviderError::new(ErrorKind::Config, "ldap.connect", "admin.user (the admin bind DN) is empty"));
        }
        // The load refuses it; a configuration built in code is held to the same rule.
        if let Some(p) = cfg.plaintext_problem() {
            return Err(ProviderError::new(ErrorKind::Config, "ldap.connect", format!("{}; {}", p.message, p.hint.unwrap_or_default())));
        }
        let transport = Transport::of(cfg)?;
        let password = resolve(&cfg.admin.password)?;
        // The login and the root DSE read are requests at the server like
        // any other: each takes its place in the declared rate.
        let mut ldap = {
            let _sent = gate.pace().await;
            admin_bind(&cfg.url, &transport, &cfg.admin.user, &password, timeout).await?
        };
        let dse = {
            let _sent = gate.pace().await;
            read_dse(&mut ldap, timeout).await?
        };
        Ok(LdapProvider {
            name: name.to_string(),
            url: cfg.url.clone(),
            transport,
            admin_dn: cfg.admin.user.clone(),
            admin_password: password,
            timeout,
            admin: tokio::sync::Mutex::new(ldap),
            dse,
            gate,
        })
    }

    async fn permit(&self) -> crate::provider::limits::Sent<'_> {
        self.gate.pace().await
    }

    /// A handle on the admin connection (reconnected if it was closed), for
    /// one operation: it holds the operation's place in the rate limit until
    /// dropped, so drop it before asking for another.
    async fn admin(&self) -> Result<Admin<'_>, ProviderError> {
        let mut l = {
            let mut guard = self.admin.lock().await;
            if guard.is_closed() {
                // The new login is a request of its own in the rate, taken
                // (and answered) before the operation's place is asked for.
                let _bind = self.permit().await;
                *guard = admin_bind(&self.url, &self.transport, &self.admin_dn, &self.admin_password, self.timeout).await?;
            }
            guard.clone()
        };
        let sent = self.permit().await;
        l.with_timeout(self.timeout);
        Ok(Admin { ldap: l, _sent: sent })
    }

    /// The account named by a handle or the new value's fields, checked against the pair.
    fn account<'a>(&self, t: &'a DbAccountTarget, named: Option<&str>, op: &'static str) -> Result<&'a str, ProviderError> {
        let Some(dn) = named.filter(|s| !s.trim().is_empty()) else { return Ok(&t.user) };
        if same_dn(dn, &t.user) {
            return Ok(&t.user);
        }
        if let Some(alt) = t.alternate_with.as_deref().filter(|a| same_dn(dn, a)) {
            return Ok(alt);
        }
        Err(ProviderError::new(
            ErrorKind::Config,
            op,
            format!(
                "account `{dn}` is neither target.user `{}` nor target.alternate_with{}",
                t.user,
                t.alternate_with.as_deref().map(|a| format!(" `{a}`")).unwrap_or_default()
            ),
        ))
    }

    /// The lock attributes of an entry; `None` if the entry does not exist.
    async fn read_lock(&self, dn: &str) -> Result<Option<Option<String>>, ProviderError> {
        let mut l = self.admin().await?;
        let r = l.search(dn, Scope::Base, "(objectClass=*)", LOCK_ATTRS.to_vec()).await.map_err(|e| map_err("ldap.read_entry", e))?;
        if r.1.rc == 32 {
            return Ok(None);
        }
        if r.1.rc != 0 {
            return Err(rc_err("ldap.read_entry", &r.1));
        }
        let Some(e) = r.0.into_iter().next() else { return Ok(None) };
        let e = SearchEntry::construct(e);
        Ok(Some(lock_in(&e.attrs)))
    }

    /// Whether `attr` is present on the entry, without reading it: a Compare
    /// with a random candidate answers compareFalse/True when present,
    /// noSuchAttribute/undefinedAttributeType when absent, noSuchObject when
    /// the entry is gone (`None`).
    async fn has_attr(&self, dn: &str, attr: &str) -> Result<Option<bool>, ProviderError> {
        let candidate = GeneratePolicy { length: 48, ..Default::default() }.generate();
        let mut l = self.admin().await?;
        let r = l.compare(dn, attr, candidate.expose_secret().as_bytes()).await.map_err(|e| map_err("ldap.compare", e))?;
        match r.0.rc {
            5 | 6 => Ok(Some(true)),
            16 | 17 => Ok(Some(false)),
            32 => Ok(None),
            _ => Err(rc_err("ldap.compare", &r.0)),
        }
    }

    /// Whether the account exists, holds a password, and shows a lock.
    async fn entry_state(&self, dn: &str) -> Result<Option<EntryState>, ProviderError> {
        let Some(lock) = self.read_lock(dn).await? else { return Ok(None) };
        if self.dse.active_directory {
            // unicodePwd is never readable nor comparable: assume a password.
            return Ok(Some(EntryState { has_password: true, lock }));
        }
        let mut has_password = false;
        for attr in ["userPassword", "authPassword"] {
            match self.has_attr(dn, attr).await? {
                None => return Ok(None),
                Some(p) => has_password |= p,
            }
        }
        Ok(Some(EntryState { has_password, lock }))
    }

    /// Binds as `dn` with `password` on a new connection, then unbinds.
    async fn probe(&self, dn: &str, password: &SecretString) -> Probe {
        if password.expose_secret().is_empty() {
            return Probe::Failed("empty password: a bind with it would be an unauthenticated bind and proves nothing".into());
        }
        if dn.trim().is_empty() {
            return Probe::Failed("empty DN: a bind with it would be anonymous and proves nothing".into());
        }
        let _sent = self.permit().await;
        let work = async {
            // The same TLS as the admin's: a probe never falls back to plaintext either.
            let mut ldap = match open(&self.url, &self.transport, self.timeout, "ldap.probe_connect").await {
                Ok(l) => l,
                Err(e) => return Probe::Failed(e.to_string()),
            };
            let ctrl = RawControl { ctype: PPOLICY_OID.to_string(), crit: false, val: None };
            let r = ldap.with_controls(ctrl).with_timeout(self.timeout).simple_bind(dn, password.expose_secret()).await;
            let out = match r {
                Ok(res) if res.rc == 0 => Probe::Accepted,
                Ok(res) => {
                    let ppolicy = res.ctrls.iter().find(|c| c.1.ctype == PPOLICY_OID).and_then(|c| c.1.val.as_deref()).and_then(ppolicy_error);
                    Probe::Refused { rc: res.rc, text: res.text, ppolicy }
                }
                Err(e) => Probe::Failed(map_err("ldap.probe_bind", e).to_string()),
            };
            let _ = ldap.unbind().await;
            out
        };
        match tokio::time::timeout(self.timeout + Duration::from_secs(1), work).await {
            Ok(p) => p,
            Err(_) => Probe::Failed(format!("bind as {dn}: no answer within {:?}", self.timeout)),
        }
    }

    /// Probes `dn` with `password`: Alive on success, Dead only on a refusal
    /// that proves a wrong password while the admin sees no lock on the entry
    /// (before or after the bind), Unknown otherwise.
    async fn probe_verdict(&self, dn: &str, password: &SecretString, lock_before: Option<&str>) -> Verdict {
        match self.probe(dn, password).await {
            Probe::Accepted => Verdict::Alive(format!("bind as {dn} accepted")),
            Probe::Failed(e) => Verdict::Unknown(crate::secret::scrub(&e)),
            Probe::Refused { rc, text, ppolicy } => {
                let what = crate::secret::redact_all(&text, &[password]);
                match classify_bind_refusal(rc, &what, ppolicy) {
                    BindRefusal::NotProof(why) => Verdict::Unknown(crate::secret::scrub(&format!("bind as {dn} refused: {why}: {what}"))),
                    BindRefusal::WrongPassword => {
                        if let Some(l) = lock_before {
                            return Verdict::Unknown(format!("bind as {dn} refused with 49, but the account shows a lock: {l}"));
                        }
                        match self.read_lock(dn).await {
                            Ok(Some(Some(l))) => Verdict::Unknown(format!("bind as {dn} refused with 49, but the account shows a lock: {l}")),
                            Ok(_) => Verdict::Dead(crate::secret::scrub(&format!(
                                "bind as {dn} refused: result 49 (invalidCredentials){}",
                                if what.is_empty() { String::new() } else { format!(": {what}") }
                            ))),
                            Err(e) => Verdict::Unknown(format!("bind as {dn} refused with 49, but the account's lock state is unreadable: {e}")),
                        }
                    }
                }
            }
        }
    }

    /// Sets the password of `dn` to `value`.
    async fn set_password(&self, dn: &str, value: &SecretString, op: &'static str) -> Result<(), ProviderError> {
        let mut l = self.admin().await?;
        if self.dse.active_directory {
            // AD: unicodePwd is the quoted password in UTF-16LE; AD accepts it over TLS only.
            let quoted = Zeroizing::new(format!("\"{}\"", value.expose_secret()));
            let bytes: Zeroizing<Vec<u8>> = Zeroizing::new(quoted.encode_utf16().flat_map(|u| u.to_le_bytes()).collect());
            let mods = vec![Mod::Replace(b"unicodePwd".to_vec(), HashSet::from([bytes.to_vec()]))];
            let r = l.modify(dn, mods).await.map_err(|e| map_err(op, e))?;
            return if r.rc == 0 { Ok(()) } else { Err(rc_err(op, &r)) };
        }
        if self.dse.passmod {
            let pm = PasswordModify { user_id: Some(dn), old_pass: None, new_pass: Some(value.expose_secret()) };
            let r = l.extended(pm).await.map_err(|e| map_err(op, e))?;
            return if r.1.rc == 0 { Ok(()) } else { Err(rc_err(op, &r.1)) };
        }
        let mods = vec![Mod::Replace("userPassword".as_bytes(), HashSet::from([value.expose_secret().as_bytes()]))];
        let r = l.modify(dn, mods).await.map_err(|e| map_err(op, e))?;
        if r.rc == 0 {
            Ok(())
        } else {
            Err(rc_err(op, &r))
        }
    }

    /// The directory's naming contexts (search bases).
    async fn naming_contexts(&self) -> Result<Vec<String>, ProviderError> {
        let mut l = self.admin().await?;
        let (entries, _) = l
            .search("", Scope::Base, "(objectClass=*)", vec!["namingContexts"])
            .await
            .and_then(|r| r.success())
            .map_err(|e| map_err("ldap.root_dse", e))?;
        let mut out = vec![];
        for e in entries {
            let e = SearchEntry::construct(e);
            for (k, v) in e.attrs {
                if k.eq_ignore_ascii_case("namingContexts") {
                    out.extend(v);
                }
            }
        }
        Ok(out)
    }

    /// DNs of the entries under every naming context matching `filter`.
    async fn search_dns(&self, filter: &str) -> Result<Vec<String>, ProviderError> {
        let mut out = vec![];
        for base in self.naming_contexts().await? {
            let mut l = self.admin().await?;
            let r = l.search(&base, Scope::Subtree, filter, vec!["1.1"]).await.map_err(|e| map_err("ldap.search", e))?;
            if r.1.rc != 0 && r.1.rc != 32 {
                return Err(rc_err("ldap.search", &r.1));
            }
            out.extend(r.0.into_iter().map(|e| SearchEntry::construct(e).dn));
        }
        Ok(out)
    }

    /// Creates `dn` as a copy of `src` (see the module docs), and adds it to
    /// the groups `src` is in. Idempotent.
    async fn clone_account(&self, src: &str, dn: &str) -> Result<(), ProviderError> {
        const OP: &str = "ldap.create_clone";
        let mut l = self.admin().await?;
        // The source's attribute names only, then the values of the non-secret ones.
        let r = l
            .with_search_options(ldap3::SearchOptions::new().typesonly(true))
            .search(src, Scope::Base, "(objectClass=*)", vec!["*"])
            .await
            .map_err(|e| map_err(OP, e))?;
        if r.1.rc == 32 || r.0.is_empty() {
            return Err(ProviderError::new(ErrorKind::NotFound, OP, format!("neither `{dn}` nor `{src}`, the account to clone it from, exists")));
        }
        if r.1.rc != 0 {
            return Err(rc_err(OP, &r.1));
        }
        let e = SearchEntry::construct(r.0.into_iter().next().expect("one entry"));
        let names: Vec<String> = e.attrs.keys().chain(e.bin_attrs.keys()).filter(|n| !is_credential_attr(n)).cloned().collect();
        drop(l);
        let mut l = self.admin().await?;
        let r = l.search(src, Scope::Base, "(objectClass=*)", names).await.and_then(|r| r.success()).map_err(|e| map_err(OP, e))?;
        let e =
            SearchEntry::construct(r.0.into_iter().next().ok_or_else(|| ProviderError::new(ErrorKind::NotFound, OP, format!("`{src}` vanished")))?);
        let mut attrs: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
        for (k, vs) in e.attrs {
            attrs.entry(k).or_default().extend(vs.into_iter().map(String::into_bytes));
        }
        for (k, vs) in e.bin_attrs {
            attrs.entry(k).or_default().extend(vs);
        }
        attrs.retain(|k, _| !is_credential_attr(k));

        let src_rdn = first_rdn(src);
        let dst_rdn = first_rdn(dn);
        let Some((_, dst_val)) = dst_rdn.first().cloned() else {
            return Err(ProviderError::new(ErrorKind::Config, OP, format!("`{dn}` has no RDN")));
        };
        // Values naming the source take the clone's name (cn, uid, sn, displayName...).
        if let Some((_, src_val)) = src_rdn.first() {
            for vs in attrs.values_mut() {
                for v in vs.iter_mut() {
                    if String::from_utf8_lossy(v).eq_ignore_ascii_case(src_val) {
                        *v = dst_val.clone().into_bytes();
                    }
                }
            }
        }
        for (a, v) in &dst_rdn {
            let key = attrs.keys().find(|k| k.eq_ignore_ascii_case(a)).cloned().unwrap_or_else(|| a.clone());
            let vs = attrs.entry(key).or_default();
            if !vs.iter().any(|x| String::from_utf8_lossy(x).eq_ignore_ascii_case(v)) {
                vs.push(v.clone().into_bytes());
            }
        }
        let clone_uid = first_value(&attrs, "uid");
        let add: Vec<(Vec<u8>, HashSet<Vec<u8>>)> =
            attrs.iter().map(|(k, vs)| (k.clone().into_bytes(), vs.iter().cloned().collect::<HashSet<_>>())).filter(|(_, v)| !v.is_empty()).collect();
        drop(l);
        let mut l = self.admin().await?;
        let r = l.add(dn, add).await.map_err(|e| map_err(OP, e))?;
        drop(l);
        if r.rc != 0 && r.rc != 68 {
            return Err(rc_err(OP, &r));
        }
        // Group memberships: the grants of the source.
        for attr in ["member", "uniqueMember"] {
            let filter = format!("({attr}={})", ldap3::ldap_escape(src));
            for g in self.search_dns(&filter).await? {
                self.add_value(&g, attr, dn).await?;
            }
        }
        // posixGroup memberUid names the uid: the source's, and the clone's after renaming.
        let src_uid_orig = self.first_attr(src, "uid").await?;
        if let (Some(old_uid), Some(new_uid)) = (src_uid_orig, clone_uid) {
            if !old_uid.eq_ignore_ascii_case(&new_uid) {
                let filter = format!("(memberUid={})", ldap3::ldap_escape(old_uid.as_str()));
                for g in self.search_dns(&filter).await? {
                    self.add_value(&g, "memberUid", &new_uid).await?;
                }
            }
        }
        tracing::info!(provider = %self.name, source = src, clone = dn, "created the alternate account from its pair");
        Ok(())
    }

    async fn first_attr(&self, dn: &str, attr: &str) -> Result<Option<String>, ProviderError> {
        let mut l = self.admin().await?;
        let r = l.search(dn, Scope::Base, "(objectClass=*)", vec![attr]).await.map_err(|e| map_err("ldap.read_entry", e))?;
        if r.1.rc != 0 {
            return Ok(None);
        }
        Ok(r.0.into_iter().next().and_then(|e| {
            let e = SearchEntry::construct(e);
            e.attrs.into_iter().find(|(k, _)| k.eq_ignore_ascii_case(attr)).and_then(|(_, v)| v.into_iter().next())
        }))
    }

    /// Adds one value to an attribute; already there is success.
    async fn add_value(&self, dn: &str, attr: &str, value: &str) -> Result<(), ProviderError> {
        let mut l = self.admin().await?;
        let r = l.modify(dn, vec![Mod::Add(attr.as_bytes(), HashSet::from([value.as_bytes()]))]).await.map_err(|e| map_err("ldap.add_member", e))?;
        match r.rc {
            0 | 20 => Ok(()),
            _ => Err(rc_err("ldap.add_member", &r)),
        }
    }
}

/// The admin connection for one operation, holding its place in the rate
/// limit (see [`crate::provider::limits::RateWindow`]) until dropped.
struct Admin<'a> {
    ldap: Ldap,
    _sent: crate::provider::limits::Sent<'a>,
}

impl std::ops::Deref for Admin<'_> {
    type Target = Ldap;
    fn deref(&self) -> &Ldap {
        &self.ldap
    }
}

impl std::ops::DerefMut for Admin<'_> {
    fn deref_mut(&mut self) -> &mut Ldap {
        &mut self.ldap
    }
}

/// Accounts per page of the inventory's search (RFC 2696 paged results).
const INVENTORY_PAGE: i32 = 500;
/// The paged-results control (RFC 2696).
const PAGED_RESULTS_OID: &str = "1.2.840.113556.1.4.319";

/// The cookie of a paged-results control's value (RFC 2696: `SEQUENCE {
/// size INTEGER, cookie OCTET STRING }`), or `None` if the value cannot be
/// read. ldap3's own parser panics on a garbled value; a directory's (or a
/// middlebox's) answer must never stop the run that way.
fn page_cookie(val: Option<&[u8]>) -> Option<Vec<u8>> {
    /// One BER tag-length-value at the start of `b`: (tag, value, rest).
    fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, b) = b.split_first()?;
        let (&first, mut b) = b.split_first()?;
        let len = if first < 0x80 {
            first as usize
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 || b.len() < n {
                return None;
            }
            let len = b[..n].iter().fold(0usize, |acc, &x| (acc << 8) | x as usize);
            b = &b[n..];
            len
        };
        (b.len() >= len).then(|| (tag, &b[..len], &b[len..]))
    }
    let (tag, seq, _) = tlv(val?)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, _size, rest) = tlv(seq)?;
    if tag != 0x02 {
        return None;
    }
    let (tag, cookie, _) = tlv(rest)?;
    (tag == 0x04).then(|| cookie.to_vec())
}

fn first_value(attrs: &BTreeMap<String, Vec<Vec<u8>>>, name: &str) -> Option<String> {
    attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).and_then(|(_, v)| v.first()).map(|v| String::from_utf8_lossy(v).into_owned())
}

/// How connections to the directory are secured: from the URL's scheme,
/// `starttls` and the `tls:` block. There is no fallback: with TLS settings,
/// TLS or no connection.
#[derive(Clone)]
struct Transport {
    /// `None`: plaintext (`ldap://` without `starttls`).
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// Upgrade an `ldap://` connection with StartTLS (mandatory).
    starttls: bool,
    /// The name the certificate is checked against (and sent as SNI) instead
    /// of the URL's host.
    server_name: Option<String>,
}

impl Transport {
    fn of(cfg: &LdapProviderConfig) -> Result<Transport, ProviderError> {
        use crate::provider::tls;
        if !cfg.uses_tls() {
            return Ok(Transport { tls: None, starttls: false, server_name: None });
        }
        let config = tls::rustls_config("ldap.tls", cfg.tls.verify(), &tls::Material::of(&cfg.tls))?;
        Ok(Transport {
            tls: Some(config),
            starttls: cfg.starttls && !cfg.is_ldaps(),
            server_name: cfg.tls.server_name.clone().filter(|n| !n.trim().is_empty()),
        })
    }
}

/// Opens a connection to `url`, secured as `t` says, and spawns its driver.
async fn open(url: &str, t: &Transport, timeout: Duration, op: &'static str) -> Result<Ldap, ProviderError> {
    let mut settings = LdapConnSettings::new().set_conn_timeout(timeout);
    let mut dial = url.to_string();
    if let Some(config) = &t.tls {
        settings = settings.set_config(config.clone()).set_starttls(t.starttls);
        if let Some(name) = &t.server_name {
            // ldap3 verifies (and sends as SNI) the URL's host: connect to the
            // URL's address here, and give ldap3 the URL with the name as host.
            let (stream, renamed) = dial_as(url, name, timeout, op).await?;
            settings = settings.set_std_stream(ldap3::StdStream::Tcp(stream));
            dial = renamed;
        }
    }
    let (conn, ldap) = LdapConnAsync::with_settings(settings, &dial).await.map_err(|e| connect_err(op, url, t, e))?;
    tokio::spawn(async move {
        let _ = conn.drive().await;
    });
    Ok(ldap)
}

/// A TCP connection to the host and port of `url`, and `url` with its host
/// replaced by `name`.
async fn dial_as(url: &str, name: &str, timeout: Duration, op: &'static str) -> Result<(std::net::TcpStream, String), ProviderError> {
    let mut u = reqwest::Url::parse(url.trim()).map_err(|e| ProviderError::new(ErrorKind::Config, op, format!("url: {e}")))?;
    let ldaps = u.scheme().eq_ignore_ascii_case("ldaps");
    let port = u.port().unwrap_or(if ldaps { 636 } else { 389 });
    let host = u.host_str().unwrap_or_default().to_string();
    let stream = match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(format!("{host}:{port}"))).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(ProviderError::new(ErrorKind::Unavailable, op, format!("{url}: {e}"))),
        Err(_) => return Err(ProviderError::new(ErrorKind::Unavailable, op, format!("{url}: no connection within {timeout:?}"))),
    };
    let stream = stream.into_std().map_err(|e| ProviderError::new(ErrorKind::Unavailable, op, format!("{url}: {e}")))?;
    u.set_host(Some(name)).map_err(|e| ProviderError::new(ErrorKind::Config, op, format!("`tls.server_name` `{name}`: {e}")))?;
    if u.port().is_none() {
        let _ = u.set_port(Some(port));
    }
    Ok((stream, u.to_string()))
}

/// A failed connection attempt as an error: a refused certificate or a
/// refused StartTLS is a configuration error (retrying changes neither), with
/// the fix; anything else is `map_err`'s.
fn connect_err(op: &'static str, url: &str, t: &Transport, e: LdapError) -> ProviderError {
    if t.tls.is_some() {
        let text = crate::provider::tls::error_chain(&e);
        if let Some(fix) = crate::provider::tls::refusal(&text, "tls.ca_cert") {
            return ProviderError::new(ErrorKind::Config, op, format!("{url}: TLS: {text}; {fix}"));
        }
        // Before the bind, the only operation on the connection is StartTLS.
        if let (true, LdapError::LdapResult { result }) = (t.starttls, &e) {
            return ProviderError::new(
                ErrorKind::Config,
                op,
                format!(
                    "{url}: the server refused StartTLS: result {} ({}): {}; keysweep does not continue in plaintext: turn TLS on in the directory server (a certificate and key), or use an `ldaps://` URL",
                    result.rc,
                    rc_name(result.rc),
                    result.text
                ),
            );
        }
    }
    let mut err = map_err(op, e);
    err.message = format!("{url}: {}", err.message);
    err
}

/// Opens a connection and binds as the admin.
async fn admin_bind(url: &str, t: &Transport, dn: &str, password: &SecretString, timeout: Duration) -> Result<Ldap, ProviderError> {
    const OP: &str = "ldap.connect";
    if password.expose_secret().is_empty() {
        // An empty simple bind is an unauthenticated (anonymous) bind.
        return Err(ProviderError::new(ErrorKind::Config, OP, "the admin password is empty"));
    }
    let work = async {
        let mut ldap = open(url, t, timeout, OP).await?;
        let r = ldap.with_timeout(timeout).simple_bind(dn, password.expose_secret()).await.map_err(|e| map_err(OP, e))?;
        match r.rc {
            0 => Ok(ldap),
            49 => Err(ProviderError::new(
                ErrorKind::Unauthenticated,
                OP,
                format!("the directory refused the admin bind as `{dn}`: result 49 (invalidCredentials)"),
            )),
            8 | 13 if t.tls.is_none() => Err(ProviderError::new(
                ErrorKind::Unauthenticated,
                OP,
                format!(
                    "the directory refused the admin bind as `{dn}` over plaintext: result {} ({}): {}; it requires a secured connection: use an `ldaps://` URL or `starttls: true`",
                    r.rc,
                    rc_name(r.rc),
                    r.text
                ),
            )),
            53 | 48 | 8 | 13 => Err(ProviderError::new(
                ErrorKind::Unauthenticated,
                OP,
                format!("the directory refused the admin bind as `{dn}`: result {} ({}): {}", r.rc, rc_name(r.rc), r.text),
            )),
            _ => Err(rc_err(OP, &r)),
        }
    };
    match tokio::time::timeout(timeout + Duration::from_secs(1), work).await {
        Ok(r) => r,
        Err(_) => Err(ProviderError::new(ErrorKind::Unavailable, OP, format!("no answer from {url} within {timeout:?}"))),
    }
}

async fn read_dse(ldap: &mut Ldap, timeout: Duration) -> Result<Dse, ProviderError> {
    let r = ldap
        .with_timeout(timeout)
        .search("", Scope::Base, "(objectClass=*)", vec!["supportedExtension", "supportedCapabilities"])
        .await
        .map_err(|e| map_err("ldap.root_dse", e))?;
    let mut dse = Dse::default();
    for e in r.0 {
        let e = SearchEntry::construct(e);
        for (k, vs) in e.attrs {
            if k.eq_ignore_ascii_case("supportedExtension") {
                dse.passmod |= vs.iter().any(|v| v == PASSMOD_OID);
            }
            if k.eq_ignore_ascii_case("supportedCapabilities") {
                dse.active_directory |= vs.iter().any(|v| v == AD_CAP_OID);
            }
        }
    }
    Ok(dse)
}

fn ldap_target<'a>(t: &'a Target, op: &'static str) -> Result<&'a DbAccountTarget, ProviderError> {
    match t {
        Target::LdapAccount(a) => Ok(a),
        other => Err(ProviderError::new(ErrorKind::Unsupported, op, format!("the ldap provider does not own `{}` credentials", other.kind()))),
    }
}

fn username(h: &Handle) -> Option<&str> {
    h.get(USERNAME).map(String::as_str).filter(|s| !s.is_empty())
}

#[async_trait]
impl Provider for LdapProvider {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "ldap"
    }

    async fn current_handle(&self, target: &Target, stored: Option<&Handle>) -> Result<Handle, ProviderError> {
        let t = ldap_target(target, "ldap.current_handle")?;
        let dn = self.account(t, stored.and_then(username), "ldap.current_handle")?;
        Ok(one(dn))
    }

    fn handle_from_fields(&self, _target: &Target, fields: &BTreeMap<String, String>) -> Handle {
        fields.get(USERNAME).filter(|s| !s.is_empty()).map(|dn| one(dn)).unwrap_or_default()
    }

    async fn mint(&self, target: &Target, _old: &Handle, _nonce: &str) -> Result<Minted, ProviderError> {
        Err(ProviderError::new(
            ErrorKind::Unsupported,
            "ldap.mint",
            format!("a directory does not mint `{}` passwords: keysweep generates them", target.kind()),
        ))
    }

    async fn cleanup_minted(&self, _t: &Target, _o: &Handle, _n: &str, _k: Option<&Handle>) -> Result<usize, ProviderError> {
        Ok(0)
    }

    async fn new_fields(&self, target: &Target, old: &Handle) -> Result<BTreeMap<String, String>, ProviderError> {
        let t = ldap_target(target, "ldap.new_fields")?;
        let dn = match &t.alternate_with {
            None => t.user.as_str(),
            Some(alt) => {
                let cur = self.account(t, username(old), "ldap.new_fields")?;
                if same_dn(cur, &t.user) {
                    alt.as_str()
                } else {
                    t.user.as_str()
                }
            }
        };
        Ok(BTreeMap::from([(USERNAME.to_string(), dn.to_string())]))
    }

    async fn apply(&self, target: &Target, new: &Delivered) -> Result<(), ProviderError> {
        const OP: &str = "ldap.apply";
        let t = ldap_target(target, OP)?;
        let dn = self.account(t, new.fields.get(USERNAME).map(String::as_str), OP)?;
        if new.value.expose_secret().is_empty() {
            return Err(ProviderError::new(ErrorKind::Config, OP, "refusing to set an empty password"));
        }
        if t.create_clone {
            if let Some(alt) = t.alternate_with.as_deref() {
                let src = if same_dn(dn, alt) { t.user.as_str() } else { alt };
                if self.read_lock(dn).await?.is_none() {
                    self.clone_account(src, dn).await?;
                }
            }
        }
        match self.set_password(dn, &new.value, OP).await {
            Ok(()) => Ok(()),
            // A re-run after a crash may meet a password policy that refuses the
            // same value twice (pwdInHistory): if the value already works, the step took effect.
            Err(e) if e.kind == ErrorKind::Conflict => match self.probe(dn, &new.value).await {
                Probe::Accepted => Ok(()),
                _ => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    async fn test(&self, target: &Target, new: &Delivered, handle: &Handle) -> Verdict {
        let t = match ldap_target(target, "ldap.test") {
            Ok(t) => t,
            Err(e) => return Verdict::Unknown(e.to_string()),
        };
        let named = new.fields.get(USERNAME).map(String::as_str).filter(|s| !s.is_empty()).or_else(|| username(handle));
        let dn = match self.account(t, named, "ldap.test") {
            Ok(d) => d,
            Err(e) => return Verdict::Unknown(e.to_string()),
        };
        self.probe_verdict(dn, &new.value, None).await
    }

    /// Retried here (the engine adds no retry of its own): retiring is idempotent.
    async fn retire(&self, target: &Target, old: &Handle) -> Result<(), ProviderError> {
        crate::provider::limits::retry(self.gate.retry_policy(), || self.retire_once(target, old)).await
    }

    async fn verify_dead(&self, target: &Target, old: &Handle, old_value: Option<&SecretString>) -> Verdict {
        let t = match ldap_target(target, "ldap.verify_dead") {
            Ok(t) => t,
            Err(e) => return Verdict::Unknown(e.to_string()),
        };
        let dn = match self.account(t, username(old), "ldap.verify_dead") {
            Ok(d) => d,
            Err(e) => return Verdict::Unknown(e.to_string()),
        };
        let state = match self.entry_state(dn).await {
            Ok(s) => s,
            Err(e) => return Verdict::Unknown(format!("cannot read {dn}: {e}")),
        };
        match (state, old_value) {
            (None, None) => Verdict::Dead(format!("{dn} no longer exists (noSuchObject)")),
            // Gone as the admin sees it; the old value, if known, must agree.
            (None, Some(v)) => match self.probe_verdict(dn, v, None).await {
                Verdict::Dead(e) => Verdict::Dead(format!("{dn} no longer exists (noSuchObject); {e}")),
                other => other,
            },
            (Some(s), _) if !s.has_password => Verdict::Dead(format!("{dn} holds no userPassword/authPassword: no simple bind as it can succeed")),
            (Some(s), Some(v)) => self.probe_verdict(dn, v, s.lock.as_deref()).await,
            (Some(_), None) => {
                Verdict::Unprovable(format!("{dn} still holds a password; without the old value LDAP gives the admin no way to tell which one"))
            }
        }
    }

    async fn inventory(&self) -> Result<Vec<InventoryItem>, ProviderError> {
        const OP: &str = "ldap.inventory";
        let (filter, attrs): (&str, Vec<&str>) = if self.dse.active_directory {
            (
                "(sAMAccountType=805306368)",
                vec!["whenCreated", "whenChanged", "pwdLastSet", "lastLogonTimestamp", "userAccountControl", "lockoutTime"],
            )
        } else {
            (
                "(|(userPassword=*)(authPassword=*))",
                vec![
                    "createTimestamp",
                    "modifyTimestamp",
                    "pwdChangedTime",
                    "pwdLastSuccess",
                    "authTimestamp",
                    "pwdAccountLockedTime",
                    "nsAccountLock",
                    "accountUnlockTime",
                ],
            )
        };
        let mut items = vec![];
        for base in self.naming_contexts().await? {
            // Page by page, each page a search of its own that takes its own
            // place in the rate limit: a directory of 5,000 accounts is ten
            // requests at the server, and a declared rate counts all ten.
            let mut cookie: Vec<u8> = vec![];
            loop {
                let mut l = self.admin().await?;
                let paged = ldap3::controls::PagedResults { size: INVENTORY_PAGE, cookie: cookie.clone() };
                let ldap3::SearchResult(entries, r) =
                    l.with_controls(paged).search(&base, Scope::Subtree, filter, attrs.clone()).await.map_err(|e| map_err(OP, e))?;
                drop(l);
                if r.rc != 0 && r.rc != 32 {
                    return Err(rc_err(OP, &r));
                }
                let had_entries = !entries.is_empty();
                for e in entries.into_iter().filter(|e| !e.is_ref() && !e.is_intermediate()) {
                    let e = SearchEntry::construct(e);
                    let get = |name: &str| e.attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).and_then(|(_, v)| v.first()).cloned();
                    let mut details = BTreeMap::new();
                    let (created, last_used) = if self.dse.active_directory {
                        if let Some(v) = get("pwdLastSet").and_then(|v| filetime_to_rfc3339(&v)) {
                            details.insert("password_changed".into(), v);
                        }
                        if let Some(v) = get("whenChanged").and_then(|v| generalized_to_rfc3339(&v)) {
                            details.insert("modified".into(), v);
                        }
                        (get("whenCreated").and_then(|v| generalized_to_rfc3339(&v)), get("lastLogonTimestamp").and_then(|v| filetime_to_rfc3339(&v)))
                    } else {
                        if let Some(v) = get("pwdChangedTime").and_then(|v| generalized_to_rfc3339(&v)) {
                            details.insert("password_changed".into(), v);
                        }
                        if let Some(v) = get("modifyTimestamp").and_then(|v| generalized_to_rfc3339(&v)) {
                            details.insert("modified".into(), v);
                        }
                        // Last successful bind: `pwdLastSuccess` (2.5 `lastbind on`), or
                        // `authTimestamp` (the 2.4 lastbind overlay).
                        let bound = get("pwdLastSuccess").or_else(|| get("authTimestamp"));
                        (get("createTimestamp").and_then(|v| generalized_to_rfc3339(&v)), bound.and_then(|v| generalized_to_rfc3339(&v)))
                    };
                    if let Some(l) = lock_in(&e.attrs) {
                        details.insert("locked".into(), l);
                    }
                    details.insert("base".into(), base.clone());
                    let rotated = details.get("password_changed").cloned();
                    items.push(InventoryItem {
                        kind: "ldap_account".into(),
                        id: e.dn,
                        created,
                        rotated,
                        last_used,
                        usage_tracked: self.dse.active_directory,
                        details,
                    });
                }
                let next = r.ctrls.iter().find(|c| c.1.ctype == PAGED_RESULTS_OID).map(|c| page_cookie(c.1.val.as_deref()));
                cookie = match next {
                    // No paging control (a directory that ignores it answers
                    // everything at once) or an empty cookie: the last page.
                    None => break,
                    Some(Some(c)) if c.is_empty() => break,
                    Some(None) => return Err(ProviderError::new(ErrorKind::Other, OP, "the directory's paged-results answer cannot be read")),
                    Some(Some(c)) if c == cookie && !had_entries => {
                        return Err(ProviderError::new(
                            ErrorKind::Other,
                            OP,
                            "the directory's paging does not advance (the same cookie on an empty page)",
                        ))
                    }
                    Some(Some(c)) => c,
                };
            }
        }
        // OpenLDAP records binds (pwdLastSuccess / authTimestamp) only with `lastbind` on, and
        // the setting is not readable without cn=config access: a directory
        // where some entry carries authTimestamp records them, and there a
        // missing one means never bound. Otherwise use stays unknown.
        if !self.dse.active_directory && items.iter().any(|i| i.last_used.is_some()) {
            for i in &mut items {
                i.usage_tracked = true;
            }
        }
        Ok(items)
    }
}

// -- the playbook side ----------------------------------------------------

#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LdapProviderConfig {
    /// `ldaps://ldap.internal` (TLS from the first byte, port 636 by
    /// default) or `ldap://ldap.internal` (port 389: with `starttls: true`
    /// upgraded to TLS before anything is sent; without it plaintext, which
    /// is refused to a host that is not loopback unless `allow_plaintext`).
    pub url: String,
    /// Upgrade the `ldap://` connection with the StartTLS extended operation
    /// before the bind. Mandatory once set: a server that refuses StartTLS is
    /// an error, never a plaintext connection.
    #[serde(default)]
    pub starttls: bool,
    /// TLS (`ldaps://` or `starttls: true`): verified by default against
    /// `ca_cert`/`ca_path`, else the system's roots, and against the URL's
    /// host (or `server_name`).
    #[serde(default)]
    pub tls: crate::provider::tls::TlsConfig,
    /// Allow a plaintext `ldap://` URL (no `starttls`) to a host that is not
    /// loopback (127.0.0.0/8, `::1`, `localhost`). Without it such a playbook
    /// does not load: the admin bind and every password set would cross the
    /// network unencrypted. `plan` and every connection report it.
    #[serde(default)]
    pub allow_plaintext: bool,
    /// The admin bind: `user` is a DN here.
    pub admin: crate::providers::account::AdminLogin,
    #[serde(default)]
    pub limits: crate::playbook::model::Limits,
}

impl LdapProviderConfig {
    /// Whether connections are TLS (`ldaps://`, or `ldap://` with `starttls`).
    pub fn uses_tls(&self) -> bool {
        self.is_ldaps() || self.starttls
    }

    fn is_ldaps(&self) -> bool {
        self.url.trim().get(..8).is_some_and(|s| s.eq_ignore_ascii_case("ldaps://"))
    }

    /// The host of a plaintext URL that is not loopback (what
    /// `allow_plaintext` must allow), if the connection is one.
    fn remote_plaintext_host(&self) -> Option<String> {
        if self.uses_tls() {
            return None;
        }
        let url = reqwest::Url::parse(self.url.trim()).ok()?;
        let host = url.host_str()?.to_string();
        (!crate::playbook::rules::is_loopback_host(&host)).then_some(host)
    }

    /// The refusal of plaintext to a remote host (at load, and again at connect).
    fn plaintext_problem(&self) -> Option<crate::provider::kind::Problem> {
        if self.allow_plaintext {
            return None;
        }
        let host = self.remote_plaintext_host()?;
        Some(crate::provider::kind::Problem::new(
            &["url"],
            format!("`ldap://` without `starttls` to `{host}`, which is not loopback: keysweep's admin bind and every password it sets would cross the network unencrypted"),
            format!(
                "write the URL as `ldaps://{host}` (TLS from the first byte, port 636) or add `starttls: true`, and name the server's CA in `tls.ca_cert`; if this network path really is trusted, set `allow_plaintext: true` on the provider, which `plan` then reports"
            ),
        ))
    }
}

fn check_config(c: &LdapProviderConfig, allow_link_local: bool) -> Vec<crate::provider::kind::Problem> {
    use crate::provider::kind::Problem;
    if let Some((m, h)) = crate::playbook::rules::address_problem(&c.url, &["ldap", "ldaps"], allow_link_local) {
        return vec![Problem::new(&["url"], m, h)];
    }
    let mut out: Vec<Problem> = c.plaintext_problem().into_iter().collect();
    if c.is_ldaps() && c.starttls {
        out.push(Problem::new(
            &["starttls"],
            "`starttls: true` with an `ldaps://` URL: that connection is TLS from its first byte, there is nothing to upgrade",
            "remove `starttls` (keep `ldaps://`), or write the URL as `ldap://…` to upgrade the connection with StartTLS",
        ));
    }
    if !c.uses_tls() && c.tls.is_set() {
        out.push(Problem::new(
            &["tls"],
            "`tls` is set but the connection is plaintext (`ldap://` without `starttls`): nothing would use it",
            "write the URL as `ldaps://…` or add `starttls: true`; or remove `tls:`",
        ));
    }
    out.extend(c.tls.check(&["tls"]));
    out
}

fn config_warnings(c: &LdapProviderConfig) -> Vec<String> {
    let mut out = vec![];
    if c.uses_tls() {
        out.extend(c.tls.warnings());
    }
    if let Some(host) = c.remote_plaintext_host() {
        out.push(format!(
            "plaintext `ldap://` to `{host}` (no `starttls`; allow_plaintext: true): the admin bind and every password set cross the network unencrypted"
        ));
    }
    out
}

crate::account_provider_kind!(LdapProviderConfig, LdapProvider, check: check_config, warnings: config_warnings);

crate::account_kind!(AccountKind, host_allowed: false, host_kind: "mysql_user", name: |_t, u| u.to_string(), match_key: norm_dn, draft: |id| format!("user: {}", crate::provider::kind::yaml_str(id)));

impl LdapProvider {
    async fn retire_once(&self, target: &Target, old: &Handle) -> Result<(), ProviderError> {
        const OP: &str = "ldap.retire";
        let t = ldap_target(target, OP)?;
        let dn = self.account(t, username(old), OP)?;
        if self.dse.active_directory {
            // unicodePwd cannot be removed: replace it with a value nobody knows.
            let random = GeneratePolicy { length: 64, ..Default::default() }.generate();
            return match self.set_password(dn, &random, OP).await {
                Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
                r => r,
            };
        }
        let mut removed = true;
        for attr in ["userPassword", "authPassword"] {
            match self.has_attr(dn, attr).await? {
                None => return Ok(()), // the entry is gone: nothing can bind as it
                Some(false) => continue,
                Some(true) => {}
            }
            let mut l = self.admin().await?;
            let r = l.modify(dn, vec![Mod::Delete(attr.as_bytes(), HashSet::new())]).await.map_err(|e| map_err(OP, e))?;
            match r.rc {
                0 | 16 | 32 => {}
                // The schema requires it (simpleSecurityObject) or the server will not remove it.
                19 | 53 | 65 => removed = false,
                _ => return Err(rc_err(OP, &r)),
            }
        }
        if !removed {
            let random = GeneratePolicy { length: 64, ..Default::default() }.generate();
            self.set_password(dn, &random, OP).await?;
            tracing::warn!(provider = %self.name, account = dn, "the directory keeps a password attribute on this entry: replaced it with a random value; its death can be proven only with the old value");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::page_cookie;
    use ldap3::controls::{PagedResults, RawControl};

    #[test]
    fn the_page_cookie_is_read_as_ldap3_writes_it() {
        for cookie in [vec![], vec![7u8; 3], vec![1u8; 200], vec![2u8; 70_000]] {
            let raw: RawControl = PagedResults { size: 500, cookie: cookie.clone() }.into();
            assert_eq!(page_cookie(raw.val.as_deref()), Some(cookie));
        }
    }

    #[test]
    fn a_garbled_page_control_is_unreadable_never_a_panic() {
        assert_eq!(page_cookie(None), None);
        assert_eq!(page_cookie(Some(&[])), None);
        assert_eq!(page_cookie(Some(&[0x30, 0x05, 0x02, 0x01])), None, "shorter than it says");
        assert_eq!(page_cookie(Some(&[0x31, 0x03, 0x02, 0x01, 0x00])), None, "not a SEQUENCE");
        assert_eq!(page_cookie(Some(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff])), None, "a length past the end");
        proptest::proptest!(|(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64))| {
            let _ = page_cookie(Some(&bytes));
        });
    }
}
