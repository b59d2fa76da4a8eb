//! `memory`: an in-process owning system and delivery store, usable in
//! playbooks (`kind: memory`). Instant unless told otherwise, with settings
//! for the faults real systems have: latency, temporary refusals, answers
//! lost after the system acted, ambiguous refusals of a probe, revocations
//! that take a while to reach every node, and a server-side rate limit.
//!
//! Two credential kinds: `memory_token` (minted by the system, like a Vault
//! token or an API token, known by `token_id`) and `memory_password` (a value
//! keysweep generates and the system accepts, like a database password).
//! It keeps its store entries, pending values and claims with check-and-set,
//! like the Vault store. Its state lives in this process only, shared by
//! providers that name the same `realm`; [`world::World`] gives tests an
//! independent view of it.
//!
//! Proof of death: an admin-side lookup of a token id answers "no such
//! token" (after `revoke_lag`); a login with an old password or token is
//! refused. An ambiguous refusal is never taken for either.

pub mod config;
pub mod world;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::playbook::model::Target;
use crate::playbook::StoreLocation;
use crate::provider::limits::Gate;
use crate::provider::{Claim, ClaimPhase, ErrorKind, Handle, InventoryItem, Minted, Provider, ProviderError, Store, StoredValue, Verdict};
use crate::secret::{Delivered, ExposeSecret, SecretString};
use config::{MemoryPasswordTarget, MemoryProviderConfig, MemoryTokenTarget, TOKEN_ID};
use world::{copy, random_value, Account, Token, Version, World};

const NONCE_KEY: &str = "keysweep_nonce";
const USERNAME: &str = "username";

pub struct MemoryProvider {
    name: String,
    world: Arc<World>,
    gate: Gate,
}

enum Kind<'a> {
    Token(&'a MemoryTokenTarget),
    Password(&'a MemoryPasswordTarget),
}

fn kind_of<'a>(target: &'a Target, op: &'static str) -> Result<Kind<'a>, ProviderError> {
    match target {
        Target::MemoryToken(t) => Ok(Kind::Token(t)),
        Target::MemoryPassword(t) => Ok(Kind::Password(t)),
        other => Err(ProviderError::new(ErrorKind::Unsupported, op, format!("a memory provider does not hold `{}`", other.kind()))),
    }
}

fn not_for_tokens(op: &'static str) -> ProviderError {
    ProviderError::new(ErrorKind::Unsupported, op, "a memory token is minted by the system, not set")
}

fn key(loc: &StoreLocation) -> String {
    loc.path.clone()
}

impl MemoryProvider {
    pub fn new(name: &str, cfg: &MemoryProviderConfig) -> Self {
        let realm = cfg.realm.clone().unwrap_or_else(|| name.to_string());
        MemoryProvider { name: name.to_string(), world: World::get(&realm, &cfg.faults), gate: Gate::new(&cfg.limits) }
    }

    /// The system behind this provider (for tests: an independent view).
    pub fn world(&self) -> &Arc<World> {
        &self.world
    }

    /// One request to the system: paced and retried by the limits layer.
    async fn call<T>(&self, op: &'static str, about: &str, act: impl Fn(&World) -> Result<T, ProviderError>) -> Result<T, ProviderError> {
        self.gate
            .call(op, || async {
                self.world.request(op, about).await?;
                let out = act(&self.world)?;
                self.world.answer(op)?;
                Ok(out)
            })
            .await
    }

    /// One probe (never retried: a verification attempt is the engine's to repeat).
    async fn probe(&self, op: &'static str, about: &str) -> Result<(), Verdict> {
        let admission = self.gate.admit().await;
        let r = self.world.request(op, about).await;
        admission.result(op, &r);
        match r {
            Err(e) => Err(Verdict::Unknown(e.to_string())),
            Ok(()) if self.world.ambiguous() => Err(Verdict::Unknown("403 from a proxy in front of the system (injected ambiguous refusal)".into())),
            Ok(()) => Ok(()),
        }
    }

    fn token_id(h: &Handle) -> Option<&str> {
        h.get(TOKEN_ID).map(String::as_str).filter(|s| !s.is_empty())
    }
}

#[async_trait]
impl Provider for MemoryProvider {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn current_handle(&self, target: &Target, stored: Option<&Handle>) -> Result<Handle, ProviderError> {
        match kind_of(target, "memory.current")? {
            Kind::Token(t) => {
                if let Some(id) = stored.and_then(Self::token_id).or(t.token_id.as_deref()) {
                    return Ok(Handle::from([(TOKEN_ID.to_string(), id.to_string())]));
                }
                // The account's newest live token; the estate holds one from the start.
                let account = t.account.clone();
                let id = self
                    .call("memory.current", &account, |w| {
                        let mut s = w.lock();
                        let newest = s.newest_live_token(&account);
                        Ok(match newest {
                            Some(id) => id,
                            None => {
                                let id = s.new_id();
                                let token = Token {
                                    account: account.clone(),
                                    value: random_value(),
                                    created: chrono::Utc::now(),
                                    nonce: None,
                                    revoked: None,
                                };
                                s.insert_token(id.clone(), token);
                                id
                            }
                        })
                    })
                    .await?;
                Ok(Handle::from([(TOKEN_ID.to_string(), id)]))
            }
            Kind::Password(t) => {
                let account = t.account.clone();
                self.call("memory.current", &account, |w| {
                    let mut s = w.lock();
                    s.accounts.entry(account.clone()).or_insert_with(|| Account {
                        password: random_value(),
                        changed: chrono::Utc::now(),
                        disabled: false,
                    });
                    Ok(())
                })
                .await?;
                Ok(Handle::from([(USERNAME.to_string(), t.account.clone())]))
            }
        }
    }

    fn handle_from_fields(&self, target: &Target, fields: &BTreeMap<String, String>) -> Handle {
        match target {
            Target::MemoryPassword(t) => Handle::from([(USERNAME.to_string(), t.account.clone())]),
            _ => fields.get(TOKEN_ID).map(|id| Handle::from([(TOKEN_ID.to_string(), id.clone())])).unwrap_or_default(),
        }
    }

    async fn mint(&self, target: &Target, old: &Handle, nonce: &str) -> Result<Minted, ProviderError> {
        let Kind::Token(t) = kind_of(target, "memory.mint")? else {
            return Err(ProviderError::new(ErrorKind::Unsupported, "memory.mint", "passwords are generated, not minted"));
        };
        let account = t.account.clone();
        let old_id = Self::token_id(old).map(str::to_string);
        let (id, value) = self
            .call("memory.mint", &account, |w| {
                let mut s = w.lock();
                // Never more than the old one: a replacement acts as the same account.
                if let Some(o) = old_id.as_ref().and_then(|o| s.tokens.get(o)) {
                    if o.account != account {
                        return Err(ProviderError::new(
                            ErrorKind::Config,
                            "memory.mint",
                            format!("token {} acts as another account", old_id.as_deref().unwrap_or_default()),
                        ));
                    }
                }
                let id = s.new_id();
                let value = random_value();
                s.insert_token(
                    id.clone(),
                    Token {
                        account: account.clone(),
                        value: copy(&value),
                        created: chrono::Utc::now(),
                        nonce: Some(nonce.to_string()),
                        revoked: None,
                    },
                );
                Ok((id, value))
            })
            .await?;
        crate::journal::crash_point("minted");
        Ok(Minted { delivered: Delivered::new(value).with_field(TOKEN_ID, id.clone()), handle: Handle::from([(TOKEN_ID.to_string(), id)]) })
    }

    async fn cleanup_minted(&self, target: &Target, old: &Handle, nonce: &str, keep: Option<&Handle>) -> Result<usize, ProviderError> {
        let Kind::Token(_) = kind_of(target, "memory.cleanup")? else { return Ok(0) };
        let spare: Vec<String> = [Self::token_id(old), keep.and_then(Self::token_id)].into_iter().flatten().map(str::to_string).collect();
        let nonce = nonce.to_string();
        self.call("memory.cleanup", &nonce, |w| {
            let mut s = w.lock();
            let mut n = 0;
            for (id, t) in s.tokens.iter_mut() {
                if t.nonce.as_deref() == Some(nonce.as_str()) && t.revoked.is_none() && !spare.contains(id) {
                    t.revoked = Some(std::time::Instant::now());
                    n += 1;
                }
            }
            Ok(n)
        })
        .await
    }

    async fn apply(&self, target: &Target, new: &Delivered) -> Result<(), ProviderError> {
        let Kind::Password(t) = kind_of(target, "memory.apply")? else { return Err(not_for_tokens("memory.apply")) };
        let account = t.account.clone();
        self.call("memory.apply", &account, |w| {
            let mut s = w.lock();
            let a = s
                .accounts
                .get_mut(&account)
                .ok_or_else(|| ProviderError::new(ErrorKind::NotFound, "memory.apply", format!("no account `{account}`")))?;
            a.password = copy(&new.value);
            a.changed = chrono::Utc::now();
            Ok(())
        })
        .await
    }

    /// A token a person issued: the live token with this value (a "who am I"
    /// call), which must act as the old token's account.
    async fn identify(&self, target: &Target, new: &Delivered, _old: &Handle) -> Result<Handle, ProviderError> {
        match kind_of(target, "memory.identify")? {
            Kind::Password(t) => Ok(Handle::from([(USERNAME.to_string(), t.account.clone())])),
            Kind::Token(t) => {
                let (account, value) = (t.account.clone(), copy(&new.value));
                let (id, owner) = self
                    .call("memory.identify", &account, |w| {
                        let s = w.lock();
                        let found = s.tokens.iter().find(|(_, k)| k.revoked.is_none() && k.value.expose_secret() == value.expose_secret());
                        found.map(|(id, k)| (id.clone(), k.account.clone())).ok_or_else(|| {
                            ProviderError::new(
                                ErrorKind::Unauthenticated,
                                "memory.identify",
                                "401 invalid token: the system knows no live token with this value",
                            )
                        })
                    })
                    .await?;
                if owner != account {
                    return Err(ProviderError::new(
                        ErrorKind::Config,
                        "memory.identify",
                        format!("token {id} acts as `{owner}`, not `{account}`: a replacement never acts as another account"),
                    ));
                }
                Ok(Handle::from([(TOKEN_ID.to_string(), id)]))
            }
        }
    }

    async fn test(&self, target: &Target, new: &Delivered, handle: &Handle) -> Verdict {
        let value = new.value.expose_secret();
        match kind_of(target, "memory.test") {
            Err(e) => Verdict::Unknown(e.to_string()),
            Ok(Kind::Token(_)) => {
                let Some(id) = Self::token_id(handle) else { return Verdict::Unknown("no token id for the new token".into()) };
                if let Err(v) = self.probe("memory.login", id).await {
                    return v;
                }
                if self.world.token_accepts(id, value) {
                    Verdict::Alive(format!("token {id} accepted"))
                } else {
                    Verdict::Dead(format!("token {id} refused: 401 invalid token"))
                }
            }
            Ok(Kind::Password(t)) => {
                if let Err(v) = self.probe("memory.login", &t.account).await {
                    return v;
                }
                if self.world.password_accepts(&t.account, value) {
                    Verdict::Alive(format!("login as {} accepted", t.account))
                } else {
                    Verdict::Dead(format!("login as {} refused: 401 bad password", t.account))
                }
            }
        }
    }

    async fn retire(&self, target: &Target, old: &Handle) -> Result<(), ProviderError> {
        match kind_of(target, "memory.retire")? {
            Kind::Token(_) => {
                let Some(id) = Self::token_id(old).map(str::to_string) else {
                    return Err(ProviderError::new(ErrorKind::Config, "memory.retire", "no token id to revoke"));
                };
                self.call("memory.revoke", &id, |w| {
                    let mut s = w.lock();
                    if let Some(t) = s.tokens.get_mut(&id) {
                        t.revoked.get_or_insert_with(std::time::Instant::now);
                    }
                    Ok(()) // already gone is success
                })
                .await
            }
            Kind::Password(t) => {
                let account = t.account.clone();
                self.call("memory.disable", &account, |w| {
                    if let Some(a) = w.lock().accounts.get_mut(&account) {
                        a.disabled = true;
                    }
                    Ok(())
                })
                .await
            }
        }
    }

    async fn verify_dead(&self, target: &Target, old: &Handle, old_value: Option<&SecretString>) -> Verdict {
        match kind_of(target, "memory.verify") {
            Err(e) => Verdict::Unknown(e.to_string()),
            Ok(Kind::Token(_)) => {
                let Some(id) = Self::token_id(old) else { return Verdict::Unknown("no token id for the old token".into()) };
                if let Err(v) = self.probe("memory.lookup", id).await {
                    return v;
                }
                let works = self.world.lock().tokens.get(id).map(|t| self.world.token_works(t));
                match (works, old_value) {
                    (Some(true), Some(v)) if self.world.token_accepts(id, v.expose_secret()) => Verdict::Alive(format!("token {id} still accepted")),
                    (Some(true), _) => Verdict::Alive(format!("token {id} is live (lookup)")),
                    (Some(false) | None, _) => Verdict::Dead(format!("lookup of token {id}: 404 no such token")),
                }
            }
            Ok(Kind::Password(t)) => {
                if let Err(v) = self.probe("memory.login", &t.account).await {
                    return v;
                }
                let disabled = self.world.lock().accounts.get(&t.account).is_none_or(|a| a.disabled);
                match old_value {
                    _ if disabled => Verdict::Dead(format!("account {} cannot log in (disabled or gone)", t.account)),
                    Some(v) if self.world.password_accepts(&t.account, v.expose_secret()) => {
                        Verdict::Alive(format!("login as {} with the old password accepted", t.account))
                    }
                    Some(_) => Verdict::Dead(format!("login as {} with the old password refused: 401 bad password", t.account)),
                    None => Verdict::Unprovable(format!("account {} is in service and no old password is at hand to try", t.account)),
                }
            }
        }
    }

    async fn inventory(&self) -> Result<Vec<InventoryItem>, ProviderError> {
        self.call("memory.inventory", "", |w| {
            let s = w.lock();
            let tokens = s.tokens.iter().filter(|(_, t)| w.token_works(t)).map(|(id, t)| InventoryItem {
                kind: "memory_token".into(),
                id: id.clone(),
                created: Some(t.created.to_rfc3339()),
                rotated: Some(t.created.to_rfc3339()),
                last_used: None,
                usage_tracked: false,
                details: BTreeMap::from([("account".to_string(), t.account.clone())]),
            });
            let accounts = s.accounts.iter().filter(|(_, a)| !a.disabled).map(|(name, a)| InventoryItem {
                kind: "memory_password".into(),
                id: name.clone(),
                created: None,
                rotated: Some(a.changed.to_rfc3339()),
                last_used: None,
                usage_tracked: false,
                details: BTreeMap::new(),
            });
            Ok(tokens.chain(accounts).collect())
        })
        .await
    }

    fn as_store(&self) -> Option<&dyn Store> {
        Some(self)
    }

    fn request_count(&self) -> Option<u64> {
        Some(self.world.request_count())
    }

    fn adaptive(&self) -> Option<Arc<crate::provider::adaptive::AdaptiveLimit>> {
        Some(self.gate.adaptive().clone())
    }
}

fn delivered(v: &Version) -> Delivered {
    Delivered { value: copy(&v.value), fields: v.fields.clone() }
}

#[async_trait]
impl Store for MemoryProvider {
    async fn read_current(&self, loc: &StoreLocation) -> Result<Option<StoredValue>, ProviderError> {
        let k = key(loc);
        self.call("memory.store.read", &k, |w| {
            let s = w.lock();
            Ok(s.entries
                .get(&k)
                .and_then(|e| e.versions.last().map(|v| StoredValue { delivered: delivered(v), version: e.versions.len().to_string() })))
        })
        .await
    }

    async fn read_version(&self, loc: &StoreLocation, version: &str) -> Result<Option<Delivered>, ProviderError> {
        let k = key(loc);
        let n: usize = version.parse().unwrap_or(0);
        self.call("memory.store.read_version", &k, |w| {
            Ok(w.lock().entries.get(&k).and_then(|e| n.checked_sub(1).and_then(|i| e.versions.get(i)).map(delivered)))
        })
        .await
    }

    async fn read_pending(&self, loc: &StoreLocation) -> Result<Option<(Delivered, String)>, ProviderError> {
        let k = key(loc);
        self.call("memory.store.read_pending", &k, |w| {
            Ok(w.lock().entries.get(&k).and_then(|e| e.pending.as_ref().map(|(v, n)| (delivered(v), n.clone()))))
        })
        .await
    }

    async fn stage(&self, loc: &StoreLocation, value: &Delivered, nonce: &str) -> Result<(), ProviderError> {
        let k = key(loc);
        self.call("memory.store.stage", &k, |w| {
            let mut s = w.lock();
            let e = s.entries.entry(k.clone()).or_default();
            if let Some(c) = e.claim.as_mut() {
                if c.nonce != nonce {
                    return Err(ProviderError::new(
                        ErrorKind::Conflict,
                        "memory.store.stage",
                        format!("{k} is claimed by {} (nonce {})", c.holder, c.nonce),
                    ));
                }
                c.phase = ClaimPhase::Staged;
            }
            e.pending = Some((Version { value: copy(&value.value), fields: value.fields.clone() }, nonce.to_string()));
            Ok(())
        })
        .await
    }

    async fn promote(&self, loc: &StoreLocation, nonce: &str) -> Result<String, ProviderError> {
        let k = key(loc);
        let version = self
            .call("memory.store.promote", &k, |w| {
                let mut s = w.lock();
                let e = s.entries.entry(k.clone()).or_default();
                if e.versions.last().is_some_and(|v| v.fields.get(NONCE_KEY).map(String::as_str) == Some(nonce)) {
                    // Promoted by an interrupted attempt: only the pending value is left to clear.
                    if e.pending.as_ref().is_some_and(|(_, n)| n == nonce) {
                        e.pending = None;
                    }
                    return Ok(e.versions.len().to_string());
                }
                let Some((pending, tag)) = e.pending.take() else {
                    return Err(ProviderError::new(ErrorKind::NotFound, "memory.store.promote", format!("no pending value at {k}")));
                };
                if tag != nonce {
                    let err = ProviderError::new(
                        ErrorKind::Conflict,
                        "memory.store.promote",
                        format!("pending value at {k} belongs to another run ({tag})"),
                    );
                    e.pending = Some((pending, tag));
                    return Err(err);
                }
                let mut fields = e.versions.last().map(|v| v.fields.clone()).unwrap_or_default();
                fields.extend(pending.fields);
                fields.insert(NONCE_KEY.into(), nonce.to_string());
                e.versions.push(Version { value: pending.value, fields });
                if let Some(c) = e.claim.as_mut().filter(|c| c.nonce == nonce) {
                    c.phase = ClaimPhase::Promoted;
                }
                Ok(e.versions.len().to_string())
            })
            .await?;
        crate::journal::crash_point("promoted");
        Ok(version)
    }

    async fn discard_pending(&self, loc: &StoreLocation) -> Result<(), ProviderError> {
        let k = key(loc);
        self.call("memory.store.discard", &k, |w| {
            if let Some(e) = w.lock().entries.get_mut(&k) {
                e.pending = None;
                e.claim = None;
            }
            Ok(())
        })
        .await
    }

    async fn list_pending(&self, _mount: &str) -> Result<Vec<String>, ProviderError> {
        self.call("memory.store.list_pending", "", |w| {
            Ok(w.lock().entries.iter().filter(|(_, e)| e.pending.is_some()).map(|(k, _)| k.clone()).collect())
        })
        .await
    }

    fn supports_claims(&self) -> bool {
        true
    }

    async fn read_claim(&self, loc: &StoreLocation) -> Result<Option<Claim>, ProviderError> {
        let k = key(loc);
        self.call("memory.store.read_claim", &k, |w| Ok(w.lock().entries.get(&k).and_then(|e| e.claim.clone()))).await
    }

    async fn write_claim(&self, loc: &StoreLocation, claim: &Claim, replacing: Option<&str>) -> Result<Option<Claim>, ProviderError> {
        let k = key(loc);
        self.call("memory.store.claim", &k, |w| {
            let mut s = w.lock();
            let e = s.entries.entry(k.clone()).or_default();
            match &e.claim {
                Some(c) if c.nonce != claim.nonce && Some(c.nonce.as_str()) != replacing => return Ok(Some(c.clone())),
                _ => e.claim = Some(claim.clone()),
            }
            Ok(None)
        })
        .await
    }

    async fn release(&self, loc: &StoreLocation, nonce: &str) -> Result<(), ProviderError> {
        let k = key(loc);
        self.call("memory.store.release", &k, |w| {
            if let Some(e) = w.lock().entries.get_mut(&k) {
                if e.claim.as_ref().is_some_and(|c| c.nonce == nonce) {
                    e.claim = None;
                    e.pending = None;
                }
            }
            Ok(())
        })
        .await
    }
}
