//! The executor: runs each selected credential through its steps with bounded
//! global and per-provider concurrency, journaling every transition first.
//!
//! Invariants kept here (DESIGN.md, "The lifecycle of one credential"):
//! - a new secret is staged in the primary store (durably) before any system
//!   relies on it; a secret the system mints is journaled (`stage started`,
//!   with a nonce) before the mint, and orphans of a crash are cleaned up;
//! - the old secret is retired only after the new one passed `test`;
//! - every step is re-runnable: on resume, a step that was started but not
//!   recorded done is run again, after checking what already took effect;
//! - a "dead" verdict comes only from the provider's own refusal; anything
//!   else is retried within the credential's bound, then reported `unverified`.

pub mod state;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::journal::Journal;
use crate::plan::{Plan, WorkItem};
use crate::playbook::{Credential, StoreLocation};
use crate::provider::adaptive::{AdaptiveLimit, Slot};
use crate::provider::registry::Providers;
use crate::provider::{capabilities, Claim, ClaimPhase, ErrorKind, Handle, Provider, ProviderError, Store, StoredValue, Verdict};
use crate::report::{Outcome, Step};
use crate::secret::{Delivered, ExposeSecret};
use state::CredState;

/// The per-provider cap of an adapter without an adaptive limit, where the
/// playbook sets none.
pub const FIXED_DEFAULT: usize = 8;

/// Room for a provider's credentials: its adaptive limit (see
/// `provider::adaptive`), or a fixed cap.
#[derive(Clone)]
enum Room {
    Adaptive(Arc<AdaptiveLimit>),
    Fixed(Arc<Semaphore>),
}

/// A credential's place in its provider's [`Room`], held for its lifecycle.
enum Place {
    Adaptive { _slot: Slot },
    Fixed { _permit: tokio::sync::OwnedSemaphorePermit },
}

impl Room {
    async fn enter(&self) -> Place {
        match self {
            Room::Adaptive(a) => Place::Adaptive { _slot: a.lifecycle().await },
            Room::Fixed(s) => Place::Fixed { _permit: s.clone().acquire_owned().await.expect("semaphore open") },
        }
    }
}

/// Told about progress as credentials finish.
pub trait Observer: Send + Sync {
    fn begin(&self, _per_provider: &BTreeMap<String, usize>, _already_done: &BTreeMap<String, usize>) {}
    fn step(&self, _provider: &str, _id: &str, _step: Step) {}
    fn finished(&self, _provider: &str, _id: &str, _outcome: &Outcome) {}
    fn end(&self) {}
}

/// An observer that says nothing.
pub struct Quiet;
impl Observer for Quiet {}

pub struct Engine {
    pub journal: Arc<Journal>,
    pub providers: Providers,
    pub run_id: String,
    /// Credentials worked on at once, across providers (the CLI's default is
    /// the sum of the providers' caps: it never caps a provider by itself).
    pub concurrency: usize,
    /// The declared caps (`limits.concurrency`) of providers without an
    /// adaptive limit ([`FIXED_DEFAULT`] where none is declared). An adapter
    /// with an adaptive limit carries its cap in it.
    pub provider_concurrency: BTreeMap<String, usize>,
    pub observer: Arc<dyn Observer>,
    /// Set to stop starting new credentials (Ctrl-C); in-flight ones finish their step.
    pub stop: Arc<AtomicBool>,
    /// keysweep's own logins met in this run, worked after everything else.
    pub own_logins: OwnLogins,
    /// Per store provider without check-and-set (Secrets Manager): the Vault
    /// provider and KV mount its claims are kept in (`claims_in`).
    pub claims_in: BTreeMap<String, (String, String)>,
}

/// Credentials that are keysweep's own login to their provider. Rotating one
/// while other credentials still need that login would lock the run out
/// halfway, so they are set aside and worked one at a time at the end.
#[derive(Default)]
pub struct OwnLogins {
    last_wave: AtomicBool,
    deferred: std::sync::Mutex<Vec<String>>,
}

/// A step that failed: where and why. Becomes `Outcome::Failed`.
struct StepFail {
    step: Step,
    reason: String,
    /// Not a failure: keysweep's own login, set aside for the last wave.
    defer: bool,
}

fn fail(step: Step, e: impl std::fmt::Display) -> StepFail {
    StepFail { step, reason: crate::secret::scrub(&e.to_string()), defer: false }
}

/// The gap a credential held by another run's live claim becomes.
fn held_by(f: &Claim) -> StepFail {
    fail(
        Step::Stage,
        format!(
            "held by {} until {} (claim `{}`, {:?}); not touched. Run again after it ends, or after its lease runs out if it died",
            f.holder,
            f.lease_until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            f.nonce,
            f.phase
        ),
    )
}

/// The handle fields a stored value carries, with its version.
fn stored_handle_of(cur: &StoredValue) -> Handle {
    let mut h = cur.delivered.fields.clone();
    h.insert("version".into(), cur.version.clone());
    h
}

/// Whether two handles name the same secret: every field both carry agrees,
/// and they carry at least one in common (`version` aside: a store's version
/// is not the secret's identity unless it is all a handle has).
fn same_secret(a: &Handle, b: &Handle) -> bool {
    let common: Vec<&String> = a.keys().filter(|k| b.contains_key(*k)).collect();
    let ids: Vec<&&String> = common.iter().filter(|k| k.as_str() != "version").collect();
    let keys: Vec<&String> = if ids.is_empty() { common.clone() } else { ids.into_iter().copied().collect() };
    !keys.is_empty() && keys.iter().all(|k| a.get(*k) == b.get(*k))
}

/// The end of the verify-dead step, the same for a rotation and a
/// revocation: only the system's own refusal is proof (`verified`); a secret
/// still accepted, an unknown answer or an unprovable death is `unverified`.
fn proven(v: Verdict, attempts: u32, verified: impl FnOnce(String) -> Outcome) -> Outcome {
    let reason = match v {
        Verdict::Dead(e) => return verified(e),
        Verdict::Alive(e) => format!("old secret still accepted after {attempts} probe(s): {e}"),
        Verdict::Unknown(e) => format!("death not proven after {attempts} probe(s): {e}"),
        Verdict::Unprovable(e) => format!(
            "death cannot be proven with what keysweep holds, so no further probe was spent: {e}; keep the old value readable in a store (verify.probe_old) or check by hand"
        ),
    };
    Outcome::Unverified { step: Step::VerifyDead, reason }
}

/// How long a claim holds: long enough for every step of one credential,
/// grace period and probe windows included, with a wide margin.
fn lease_for(c: &Credential) -> chrono::Duration {
    let probes = c.verify.interval.max(Duration::from_millis(10)) * c.verify.attempts.max(1) * 2;
    let total = Duration::from_secs(600) + c.grace_period.unwrap_or_default() + probes;
    chrono::Duration::from_std(total).unwrap_or(chrono::Duration::hours(24))
}

fn handle_json(h: &Handle) -> Value {
    serde_json::to_value(h).unwrap_or(Value::Null)
}

impl Engine {
    async fn rec(&self, id: &str, step: &str, status: &str, detail: Value) -> Result<(), StepFail> {
        self.journal.record(&self.run_id, id, step, status, detail).await.map_err(|e| fail(Step::Stage, format!("journal: {e:#}")))
    }

    /// Waits until every record sent so far is on disk (before changing a
    /// system after [`Engine::done`] records).
    async fn sync(&self) -> Result<(), StepFail> {
        self.journal.sync().await.map_err(|e| fail(Step::Stage, format!("journal: {e:#}")))
    }

    /// A step's `done`, not waited for: only where the next change to any
    /// system waits for a `started` record (or the outcome) first, which the
    /// journal writes after it ([`Journal::note`]). A rotation waits for the
    /// disk 5 times instead of 8 (6 instead of 10 with an apply step).
    fn done(&self, id: &str, step: &str, detail: Value) -> Result<(), StepFail> {
        self.journal.note(&self.run_id, id, step, "done", detail).map_err(|e| fail(Step::Stage, format!("journal: {e:#}")))
    }

    /// Runs every selected credential of `plan` that has no outcome yet.
    /// Returns the per-credential states after the run (from the journal).
    /// Each credential is a task of its own on the runtime's worker threads
    /// (one task polling them all kept the engine on one core).
    pub async fn execute(self: &Arc<Self>, plan: &Arc<Plan>) -> Result<HashMap<String, CredState>> {
        let mut states = self.states()?;
        let mut total: BTreeMap<String, usize> = BTreeMap::new();
        let mut done: BTreeMap<String, usize> = BTreeMap::new();
        for w in plan.selected() {
            *total.entry(w.cred.provider.clone()).or_default() += 1;
            if states.get(&w.cred.id).is_some_and(|s| s.outcome.is_some()) {
                *done.entry(w.cred.provider.clone()).or_default() += 1;
            }
        }
        self.observer.begin(&total, &done);

        let global = Arc::new(Semaphore::new(self.concurrency.clamp(1, Semaphore::MAX_PERMITS)));
        let mut per_provider: HashMap<String, Room> = HashMap::new();
        for name in self.providers.names() {
            per_provider.insert(name.clone(), self.room(name));
        }

        // Credentials left alone once the journal could no longer be written.
        let not_started = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for (w, wave) in plan.waves.iter().enumerate() {
            let mut tasks = tokio::task::JoinSet::new();
            for &i in wave {
                let item = &plan.items[i];
                let st = states.get(&item.cred.id).cloned().unwrap_or_default();
                if st.outcome.is_some() {
                    continue;
                }
                // A dependency that did not reach a verified end holds this one back.
                let blocked = item.cred.depends_on.iter().find_map(|d| {
                    let o = states.get(d).and_then(|s| s.outcome.as_ref())?;
                    (!o.is_verified()).then(|| format!("dependency `{d}` ended {}", o.name()))
                });
                let global = global.clone();
                let prov = per_provider.get(&item.cred.provider).cloned();
                let (me, plan, not_started) = (self.clone(), plan.clone(), not_started.clone());
                tasks.spawn(async move {
                    let item = &plan.items[i];
                    if let Some(reason) = blocked {
                        me.finish(item, Outcome::Skipped { reason }).await;
                        return;
                    }
                    let _p = match &prov {
                        Some(p) => Some(p.enter().await),
                        None => None,
                    };
                    let _g = global.acquire().await.expect("semaphore open");
                    if me.stop.load(Ordering::SeqCst) {
                        return; // left without outcome: a resume continues it
                    }
                    if me.journal.is_broken() {
                        // Nothing it did could be recorded: not started,
                        // left for the run that resumes once the journal
                        // is mended (or, without it, the store's claims).
                        not_started.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                    if let Some(o) = me.process(item, st).await {
                        me.finish(item, o).await;
                    }
                });
            }
            while let Some(r) = tasks.join_next().await {
                if let Err(e) = r {
                    if e.is_panic() {
                        // As before tasks: a panic ends the run (the journal
                        // holds where each credential stopped).
                        std::panic::resume_unwind(e.into_panic());
                    }
                }
            }
            // The states are read back only where a later wave needs them.
            if w + 1 < plan.waves.len() {
                states = self.states()?;
            }
            if self.stop.load(Ordering::SeqCst) || self.journal.is_broken() {
                break;
            }
        }
        if self.journal.is_broken() {
            let n = not_started.load(Ordering::SeqCst);
            tracing::error!(
                journal = %self.journal.path().display(),
                "the journal cannot be written: {n} credential(s) of this wave were not started, nor any later wave; \
                 mend the journal and run again to resume (or, if it is lost, run afresh: the claims in the stores carry on)"
            );
        }
        let mut states = self.states()?;
        // keysweep's own logins, last and one at a time: each switches the
        // provider's session to its new secret before retiring the old one.
        self.own_logins.last_wave.store(true, Ordering::SeqCst);
        let deferred = std::mem::take(&mut *self.own_logins.deferred.lock().unwrap_or_else(|e| e.into_inner()));
        for id in deferred {
            if self.stop.load(Ordering::SeqCst) || self.journal.is_broken() {
                break;
            }
            let Some(item) = plan.items.iter().find(|w| w.cred.id == id) else { continue };
            let st = states.get(&id).cloned().unwrap_or_default();
            if let Some(o) = self.process(item, st).await {
                self.finish(item, o).await;
            }
            states = self.states()?;
        }
        self.observer.end();
        Ok(states)
    }

    /// How many of provider `name`'s credentials may be worked on at once:
    /// its adaptive limit, or a fixed cap for an adapter without one.
    fn room(&self, name: &str) -> Room {
        match self.providers.get(name).and_then(|p| p.adaptive()) {
            Some(a) => Room::Adaptive(a),
            None => Room::Fixed(Arc::new(Semaphore::new(self.provider_concurrency.get(name).copied().unwrap_or(FIXED_DEFAULT).max(1)))),
        }
    }

    /// Folds the journal into per-credential states.
    pub fn states(&self) -> Result<HashMap<String, CredState>> {
        let mut m: HashMap<String, CredState> = HashMap::new();
        self.journal.fold(&self.run_id, |cred_id, step, status, detail, at| match m.get_mut(cred_id) {
            Some(st) => st.apply(step, status, detail, at),
            None => m.entry(cred_id.to_string()).or_default().apply(step, status, detail, at),
        })?;
        Ok(m)
    }

    async fn finish(&self, item: &WorkItem, o: Outcome) {
        let detail = json!({ "outcome": o });
        if let Err(e) = self.journal.record(&self.run_id, &item.cred.id, "outcome", "done", detail).await {
            tracing::error!(credential = %item.cred.id, error = %format!("{e:#}"), "could not journal the outcome");
            return;
        }
        self.observer.finished(&item.cred.provider, &item.cred.id, &o);
    }

    /// One credential, from wherever the journal says it stopped. `None` when
    /// stopped early (Ctrl-C) without an outcome.
    async fn process(&self, item: &WorkItem, st: CredState) -> Option<Outcome> {
        let c = &item.cred;
        let Some(provider) = self.providers.get(&c.provider).cloned() else {
            return Some(Outcome::Failed { step: item.steps[0], reason: format!("provider `{}` is not connected", c.provider) });
        };
        let nonce = st.nonce.clone().unwrap_or_else(|| format!("{}/{}", self.run_id, c.id));
        // The plan's step list is the lifecycle run: a rotation starts by
        // staging a new secret, a revocation by retiring the old one.
        let rotation = item.steps.first() == Some(&Step::Stage);
        // One memo per lifecycle (`provider::seen`): no step asks a store
        // again for what an earlier step of this lifecycle just read or
        // wrote. It starts empty here, so a resumed run reads everything again.
        let r = crate::provider::seen::scope(async {
            let r = if rotation { self.rotate(c, provider.as_ref(), st, &item.steps).await } else { self.revoke(c, provider.as_ref(), st).await };
            if rotation && !r.as_ref().is_err_and(|f| f.defer) {
                // Ran to its end: the claim goes. Failed: it is left expired, with
                // what it records, for the next run to settle. Either way a
                // change to the store: the `done` records before it go to
                // disk first (a rotation that ran to its end waited for its
                // last one already).
                if r.is_err() {
                    let _ = self.sync().await;
                }
                self.end_claim(c, &nonce, r.is_ok()).await;
            }
            r
        })
        .await;
        if let Err(f) = &r {
            if f.defer {
                self.own_logins.deferred.lock().unwrap_or_else(|e| e.into_inner()).push(c.id.clone());
                return None;
            }
        }
        Some(match r {
            Ok(o) => o,
            Err(f) => Outcome::Failed { step: f.step, reason: f.reason },
        })
    }

    fn store(&self, loc: &StoreLocation, step: Step) -> Result<&dyn Store, StepFail> {
        self.providers.store(&loc.provider).ok_or_else(|| fail(step, format!("store provider `{}` is not connected", loc.provider)))
    }

    async fn rotate(&self, c: &Credential, p: &dyn Provider, mut st: CredState, steps: &[Step]) -> Result<Outcome, StepFail> {
        let caps = capabilities(c.target.kind()).ok_or_else(|| fail(Step::Stage, "unknown credential kind"))?;
        let primary = c.deliver_to.first().ok_or_else(|| fail(Step::Stage, "no delivery store"))?.clone();
        let id = c.id.as_str();

        if st.stage_done {
            self.defer_own_login(c, p, &st.old_handle)?;
        }

        // ---- stage: produce the new secret and store it as pending.
        let mut carried = None;
        if !st.stage_done {
            self.observer.step(&c.provider, id, Step::Stage);
            let resumed = st.stage_started;
            let nonce = st.nonce.clone().unwrap_or_else(|| format!("{}/{}", self.run_id, id));
            if !resumed {
                self.rec(id, "stage", "started", json!({ "nonce": nonce })).await?;
            }
            let store = self.store(&primary, Step::Stage)?;
            // The store's claim on this credential: another run's live claim
            // makes it a gap; an abandoned one is settled and taken over.
            let foreign = match self.claim_loc(c) {
                Some((cs, cl)) => cs.read_claim(&cl).await.map_err(|e| fail(Step::Stage, e))?.filter(|cl| cl.nonce != nonce),
                None => None,
            };
            if let Some(f) = foreign.as_ref().filter(|f| f.live(chrono::Utc::now())) {
                return Err(held_by(f));
            }
            let current = store.read_current(&primary).await.map_err(|e| fail(Step::Stage, e))?;
            let stored_handle: Option<Handle> = current.as_ref().map(stored_handle_of);

            // Another run promoted its new value and stopped before retiring
            // the old one (a crash, a lost answer, a lost journal): the value
            // in service is that run's. Finish its rotation; never retire
            // what is current, never rotate it twice.
            let promoted_by: Option<Claim> = foreign.clone().filter(|f| current.as_ref().is_some_and(|cur| store.promoted_by(cur, &f.nonce)));
            let mut finish = None;
            let mut released = false;
            if let Some(f) = promoted_by {
                let (old, old_version) = if f.old.is_empty() {
                    self.previous_of(c, p, store, &primary, current.as_ref()).await?
                } else {
                    (f.old.clone(), f.old_version.clone())
                };
                // A claim left only because its release failed (the run
                // retired the old secret and ended): its lease was never
                // ended (a failed run ends it) and the old secret is already
                // dead. That rotation is over; this run rotates the secret
                // now in service, as asked, instead of reporting the earlier
                // rotation as its own. A failed run's claim is finished as before.
                // One probe, with the old value where the store still has it
                // (a single-user password is proven dead only by its value).
                let old_value = match f.lease_until > chrono::Utc::now() {
                    true => self.old_value(c, p, store, &primary, old_version.as_deref(), &old).await,
                    false => None,
                };
                let over = f.lease_until > chrono::Utc::now()
                    && !old.is_empty()
                    && matches!(p.verify_dead(&c.target, &old, old_value.as_ref().map(|d| &d.value)).await, Verdict::Dead(_));
                drop(old_value);
                if over {
                    tracing::warn!(credential = id, store = %primary, "the claim of run `{}` outlived its finished rotation; releasing it", f.nonce);
                    if let Some((cs, cl)) = self.claim_loc(c) {
                        cs.release(&cl, &f.nonce).await.map_err(|e| fail(Step::Stage, e))?;
                    }
                    released = true;
                } else {
                    finish = Some((f, old, old_version));
                }
            }
            let foreign = if released { None } else { foreign };
            if let Some((f, old, old_version)) = finish {
                let f = &f;
                let new_handle = p.current_handle(&c.target, stored_handle.as_ref()).await.map_err(|e| fail(Step::Stage, e))?;
                drop(current);
                self.defer_own_login(c, p, &old)?;
                self.claim(c, &nonce, ClaimPhase::Promoted, &old, old_version.as_deref(), Some(&f.nonce)).await?;
                tracing::warn!(credential = id, store = %primary, "finishing the rotation run `{}` promoted and left unfinished", f.nonce);
                self.done(
                    id,
                    "stage",
                    json!({ "nonce": nonce, "old": handle_json(&old), "old_version": old_version, "new": handle_json(&new_handle), "adopted_from": f.nonce }),
                )?;
                for step in ["apply", "test", "promote"] {
                    self.done(id, step, json!({ "adopted_from": f.nonce }))?;
                }
                st.stage_done = true;
                st.apply_done = true;
                st.test_done = true;
                st.promote_done = true;
                st.nonce = Some(nonce.clone());
                st.old_handle = old;
                st.old_version = old_version;
                st.new_handle = new_handle;
            } else {
                carried = Some((resumed, nonce, foreign, current, stored_handle));
            }
        }
        if let Some((resumed, nonce, foreign, current, stored_handle)) = carried {
            let store = self.store(&primary, Step::Stage)?;
            let old = p.current_handle(&c.target, stored_handle.as_ref()).await.map_err(|e| fail(Step::Stage, e))?;
            let old_version = current.as_ref().map(|c| c.version.clone());
            // The value in service, kept only as long as the stage needs it:
            // a supplied value is compared with it, and a mint may need what
            // is stored beside it (a refresh token).
            let current: Option<Delivered> = current.map(|c| c.delivered);
            self.defer_own_login(c, p, &old)?;
            // Where the claim is kept beside the pending value (a Vault KV
            // primary store) and the slot was read free in this lifecycle (no
            // claim, nothing staged, not a resumed stage), the slot is taken
            // by the first write rather than by a write of its own: the
            // `minting` claim before a mint, or the staged value with the
            // claim in it. Both are check-and-set on the slot as read, so a
            // run that took it meanwhile makes them fail before anything is
            // minted or staged, as the claim write alone would.
            let claims_beside = self.claim_loc(c).is_some_and(|(_, cl)| cl == primary);
            let early_pending = match claims_beside && foreign.is_none() && !resumed {
                true => Some(store.read_pending(&primary).await.map_err(|e| fail(Step::Stage, e))?),
                false => None,
            };
            let first_write_claims = matches!(early_pending, Some(None));
            // A resumed stage whose own claim says a mint was under way keeps
            // saying so, with when it was sent, until that mint's orphans have
            // been looked for: a `claimed` record would leave no run able to
            // find them if this one fails (or dies) before that.
            let own_mint = match self.claim_loc(c) {
                Some((cs, cl)) if resumed && caps.mints && !first_write_claims => {
                    cs.read_claim(&cl).await.map_err(|e| fail(Step::Stage, e))?.filter(|m| m.nonce == nonce && m.phase == ClaimPhase::Minting)
                }
                _ => None,
            };
            if let (Some(m), Some((cs, cl))) = (&own_mint, self.claim_loc(c)) {
                let again = Claim { since: m.since, ..self.claim_record(c, &nonce, ClaimPhase::Minting, &old, old_version.as_deref()) };
                if let Some(other) = cs.write_claim(&cl, &again, None).await.map_err(|e| fail(Step::Stage, e))? {
                    return Err(held_by(&other));
                }
            } else if !first_write_claims {
                // Take the slot (check-and-set): from here no other run works this credential.
                self.claim(c, &nonce, ClaimPhase::Claimed, &old, old_version.as_deref(), foreign.as_ref().map(|f| f.nonce.as_str())).await?;
            }
            // An abandoned mint of another run may have left secrets no store holds.
            if caps.mints {
                if let Some(f) = foreign.as_ref().filter(|f| matches!(f.phase, ClaimPhase::Minting | ClaimPhase::Staged)) {
                    let since = f.since.filter(|_| f.phase == ClaimPhase::Minting);
                    let n = match p.cleanup_minted_since(&c.target, &f.old, &f.nonce, None, since).await {
                        Ok(n) => n,
                        Err(e) => {
                            // That claim is the only record of the mint (its
                            // nonce, when it was sent): put it back, abandoned
                            // as it was, so the next run looks for its orphans
                            // again rather than finding only this run's claim.
                            if let Some((cs, cl)) = self.claim_loc(c) {
                                let back = Claim { lease_until: f.lease_until.min(chrono::Utc::now()), ..f.clone() };
                                if let Err(we) = cs.write_claim(&cl, &back, Some(&nonce)).await {
                                    tracing::warn!(credential = id, error = %we, "could not put back the claim of run `{}`; its orphans may outlive it", f.nonce);
                                }
                            }
                            return Err(fail(Step::Stage, format!("looking for orphans of run `{}`'s mint: {e}; nothing was minted", f.nonce)));
                        }
                    };
                    if n > 0 {
                        tracing::warn!(credential = id, retired = n, "retired orphan secrets minted by abandoned run `{}`", f.nonce);
                    }
                }
            }

            let pending = match early_pending {
                Some(p) => p,
                None => store.read_pending(&primary).await.map_err(|e| fail(Step::Stage, e))?,
            };
            let supplied_tag = store.tag_for(&supplied_nonce(id));
            let new_handle: Handle = match pending {
                // The value a person re-issued and gave keysweep (`keysweep
                // supply`): which secret it is, asked of the system; never
                // the old one again, never one acting as another account.
                Some((mut d, n)) if c.manual.is_some() && n == supplied_tag => {
                    // The very value consumers read now is never taken for its replacement.
                    if current.as_ref().is_some_and(|cur| cur.value.expose_secret() == d.value.expose_secret()) {
                        return Err(fail(
                            Step::Stage,
                            format!("the value supplied for `{id}` is the secret in service (the value the store holds at {primary}), not a re-issued one; nothing changed: supply the new value"),
                        ));
                    }
                    let h = p.identify(&c.target, &d, &old).await.map_err(|e| fail(Step::Stage, format!("the value supplied for `{id}`: {e}")))?;
                    if !old.is_empty() && (h.is_empty() || same_secret(&h, &old)) {
                        return Err(fail(
                            Step::Stage,
                            format!("the value supplied for `{id}` is the secret in service ({old:?}), not a re-issued one; nothing changed: supply the new value"),
                        ));
                    }
                    // Its public identity goes beside it, so the next rotation knows what to retire.
                    d.fields.extend(h.iter().filter(|(k, _)| k.as_str() != "version").map(|(k, v)| (k.clone(), v.clone())));
                    self.stage_all(c, &d, &nonce).await?;
                    h
                }
                Some((d, n)) if n == store.tag_for(&nonce) => {
                    // Our own staged value survived the crash: continue with it.
                    let h: Handle = p.handle_from_fields(&c.target, &d.fields);
                    for sec in &c.deliver_to[1..] {
                        self.store(sec, Step::Stage)?.stage(sec, &d, &nonce).await.map_err(|e| fail(Step::Stage, e))?;
                    }
                    h
                }
                other => {
                    let adopted = match other {
                        Some((d, foreign)) => {
                            let adopted = self.settle_foreign_pending(c, p, &primary, d, &foreign, &old).await?;
                            if adopted.is_none() {
                                // Discarding the foreign value dropped the entry our claim was in.
                                self.claim(c, &nonce, ClaimPhase::Claimed, &old, old_version.as_deref(), None).await?;
                            }
                            adopted
                        }
                        None => None,
                    };
                    if let Some(d) = adopted {
                        // Finish what the earlier run started: its value is what the system holds.
                        self.stage_all(c, &d, &nonce).await?;
                        p.handle_from_fields(&c.target, &d.fields)
                    } else if let Some(instructions) = &c.manual {
                        // No API re-issues it: a person does, and a later run goes on.
                        return Ok(Outcome::AwaitingHuman {
                            step: Step::Stage,
                            instructions: format!(
                                "{instructions}\nThen give keysweep the new value with `keysweep supply <playbook> {id}` (it is staged at {primary}, where consumers do not read it yet) and run again: keysweep tests it, promotes it, revokes the old secret and proves it dead."
                            ),
                        });
                    } else if caps.mints {
                        if resumed {
                            // A mint may have happened with no store write after it;
                            // our own claim says when it was sent.
                            let since = match self.claim_loc(c) {
                                Some((cs, cl)) => cs
                                    .read_claim(&cl)
                                    .await
                                    .ok()
                                    .flatten()
                                    .filter(|cl| cl.nonce == nonce && cl.phase == ClaimPhase::Minting)
                                    .and_then(|cl| cl.since),
                                None => None,
                            };
                            let n = p.cleanup_minted_since(&c.target, &old, &nonce, None, since).await.map_err(|e| fail(Step::Stage, e))?;
                            if n > 0 {
                                tracing::warn!(credential = id, retired = n, "retired orphan secrets of an interrupted mint");
                            }
                        }
                        // The store records that a mint is under way before it happens,
                        // so any later run finds its orphans if the answer is lost.
                        let mint_sent = chrono::Utc::now();
                        self.claim(c, &nonce, ClaimPhase::Minting, &old, old_version.as_deref(), None).await?;
                        let minted = match p.mint_from(&c.target, &old, current.as_ref(), &nonce).await {
                            Ok(m) => m,
                            // A refusal decided before or instead of minting (two IAM
                            // keys already, no such user, not allowed...) minted
                            // nothing: no orphan search, which for IAM (keys carry no
                            // nonce) would delete keys others made since the run began.
                            Err(e)
                                if matches!(
                                    e.kind,
                                    ErrorKind::Conflict
                                        | ErrorKind::Config
                                        | ErrorKind::Unsupported
                                        | ErrorKind::NotFound
                                        | ErrorKind::PermissionDenied
                                        | ErrorKind::Unauthenticated
                                ) =>
                            {
                                return Err(fail(Step::Stage, e));
                            }
                            Err(e) => {
                                // The server may have minted before the answer was lost.
                                match p.cleanup_minted_since(&c.target, &old, &nonce, None, Some(mint_sent)).await {
                                    Ok(n) if n > 0 => tracing::warn!(credential = id, retired = n, "retired secrets of a mint whose answer was lost"),
                                    Ok(_) => {}
                                    Err(ce) => {
                                        tracing::warn!(credential = id, error = %ce, "could not look for orphans of a failed mint; the next run will")
                                    }
                                }
                                return Err(fail(Step::Stage, e));
                            }
                        };
                        crate::journal::crash_point("mint");
                        if let Err(e) = self.stage_all(c, &minted.delivered, &nonce).await {
                            // Never leave a minted secret that no store holds.
                            let _ = p.retire_with(&c.target, &minted.handle, Some(&minted.delivered)).await;
                            return Err(e);
                        }
                        crate::journal::crash_point("staged");
                        minted.handle
                    } else {
                        let value = match p.generate(&c.target).await.map_err(|e| fail(Step::Stage, e))? {
                            Some(v) => v,
                            None => c.target.generate_policy().cloned().unwrap_or_default().generate(),
                        };
                        let fields = p.new_fields(&c.target, &old).await.map_err(|e| fail(Step::Stage, e))?;
                        let value = Delivered { value, fields };
                        if first_write_claims {
                            self.stage_claimed_all(c, &value, &nonce, &old, old_version.as_deref()).await?;
                        } else {
                            self.stage_all(c, &value, &nonce).await?;
                        }
                        p.handle_from_fields(&c.target, &value.fields)
                    }
                }
            };
            self.done(id, "stage", json!({ "nonce": nonce, "old": handle_json(&old), "old_version": old_version, "new": handle_json(&new_handle) }))?;
            st.stage_done = true;
            st.nonce = Some(nonce);
            st.old_handle = old;
            st.old_version = old_version;
            st.new_handle = new_handle;
        }
        let nonce = st.nonce.clone().unwrap_or_default();
        let store = self.store(&primary, Step::Test)?;

        // ---- apply: make the owning system accept a generated secret.
        if steps.contains(&Step::Apply) && !st.apply_done && !st.promote_done {
            self.observer.step(&c.provider, id, Step::Apply);
            self.rec(id, "apply", "started", json!({})).await?;
            let (d, n) = self.pending_or_fail(store, &primary, Step::Apply).await?;
            if n != store.tag_for(&nonce) {
                return Err(fail(Step::Apply, "the pending value belongs to another run"));
            }
            p.apply(&c.target, &d).await.map_err(|e| fail(Step::Apply, e))?;
            self.done(id, "apply", json!({}))?;
        }

        // ---- test: the new secret must work before anything else changes.
        if !st.test_done && !st.promote_done {
            self.observer.step(&c.provider, id, Step::Test);
            let (d, _) = self.pending_or_fail(store, &primary, Step::Test).await?;
            let v = self.probe_until(c, |_| async { p.test(&c.target, &d, &st.new_handle).await }, true).await;
            match v {
                Verdict::Alive(e) => self.done(id, "test", json!({ "evidence": e }))?,
                Verdict::Dead(e) if c.manual.is_some() => {
                    // A value a person supplied that the system refuses: nothing was applied.
                    self.sync().await?;
                    for loc in &c.deliver_to {
                        let _ = self.store(loc, Step::Test)?.discard_pending(loc).await;
                    }
                    return Err(fail(
                        Step::Test,
                        format!("the value supplied for `{id}` is refused by the system ({e}); it was discarded and the old secret left in service: supply a working one"),
                    ));
                }
                // (A mint that spent what the old secret needed is kept below.)
                Verdict::Dead(e) if caps.mints && !p.mint_spends_old(&c.target) => {
                    // The new secret does not work: withdraw it, keep the old.
                    self.sync().await?;
                    let _ = p.retire_with(&c.target, &st.new_handle, Some(&d)).await;
                    for loc in &c.deliver_to {
                        let _ = self.store(loc, Step::Test)?.discard_pending(loc).await;
                    }
                    return Err(fail(Step::Test, format!("new secret refused ({e}); it was withdrawn and the old one left in service")));
                }
                Verdict::Dead(e) => {
                    // An applied secret may be the only one the system now
                    // accepts: its pending value is the way back. Keep it.
                    return Err(fail(
                        Step::Test,
                        format!("new secret refused after it was applied ({e}); the pending value is kept in the store for recovery or resume"),
                    ));
                }
                Verdict::Unknown(e) | Verdict::Unprovable(e) => {
                    return Err(fail(
                        Step::Test,
                        format!("could not prove the new secret works ({e}); old secret left in service, pending value kept for resume"),
                    ))
                }
            }
        }

        // ---- promote: consumers now read the new value (secondaries first, primary last).
        if !st.promote_done {
            self.observer.step(&c.provider, id, Step::Promote);
            self.rec(id, "promote", "started", json!({})).await?;
            let mut version = String::new();
            for loc in c.deliver_to.iter().skip(1).chain(std::iter::once(&primary)) {
                version = self.store(loc, Step::Promote)?.promote(loc, &nonce).await.map_err(|e| fail(Step::Promote, e))?;
            }
            crate::journal::crash_point("promoted");
            self.done(id, "promote", json!({ "new_version": version }))?;
        }

        // ---- retire the old secret (after the grace period).
        if !st.retire_done {
            self.observer.step(&c.provider, id, Step::Retire);
            if let Some(g) = c.grace_period {
                tokio::time::sleep(g).await;
            }
            if p.is_own_login(&c.target, &st.old_handle) {
                // keysweep's own login: move this session onto the new secret
                // first, or retiring the old one would lock the run out.
                let cur = store
                    .read_current(&primary)
                    .await
                    .map_err(|e| fail(Step::Retire, e))?
                    .ok_or_else(|| fail(Step::Retire, format!("the new value of keysweep's own login is not at {primary}")))?;
                p.switch_login(&c.target, &cur.delivered).await.map_err(|e| {
                    fail(
                        Step::Retire,
                        format!("keysweep could not log in with the new secret of its own login ({e}); the old one is left in service"),
                    )
                })?;
                tracing::warn!(
                    credential = id,
                    provider = %c.provider,
                    "rotated keysweep's own login: this run switched to the new secret; later runs must log in with the value now at {primary}"
                );
            }
            self.rec(id, "retire", "started", json!({ "old": handle_json(&st.old_handle) })).await?;
            // Same account (a single-user password rotation): applying the new
            // password already replaced the old one; there is nothing else to retire.
            let same_account = !caps.mints && !st.new_handle.is_empty() && st.new_handle == st.old_handle;
            if !st.old_handle.is_empty() && !same_account {
                // Never retire what consumers read now: whatever led here
                // (a foreign record, a store changed by hand), that is a lockout.
                if self.is_current(c, p, &st.old_handle).await? {
                    return Err(fail(
                        Step::Retire,
                        format!("refused to retire {:?}: the store says it is the secret in service; nothing was retired", st.old_handle),
                    ));
                }
                // Its value, where the store still holds it: some systems revoke a secret only when it is presented.
                let known = match p.retire_needs_value(&c.target) {
                    true => self.stored_old(c, p, store, &primary, st.old_version.as_deref(), &st.old_handle).await,
                    false => None,
                };
                p.retire_with(&c.target, &st.old_handle, known.as_ref()).await.map_err(|e| fail(Step::Retire, e))?;
                crate::journal::crash_point("retired");
            }
            // Waited for: the claim is released next, and with it every
            // record of this rotation must be on disk.
            self.rec(id, "retire", "done", json!({})).await?;
        }

        // ---- verify-dead.
        self.observer.step(&c.provider, id, Step::VerifyDead);
        if st.old_handle.is_empty() {
            return Ok(Outcome::Rotated { evidence: "new secret works; no previous secret existed".into() });
        }
        let old_value = match p.verify_uses_old_value(&c.target) {
            true => self.old_value(c, p, store, &primary, st.old_version.as_deref(), &st.old_handle).await,
            false => None,
        };
        let v = self.probe_until(c, |_| async { p.verify_dead(&c.target, &st.old_handle, old_value.as_ref().map(|d| &d.value)).await }, false).await;
        Ok(proven(v, c.verify.attempts, |evidence| Outcome::Rotated { evidence }))
    }

    async fn revoke(&self, c: &Credential, p: &dyn Provider, st: CredState) -> Result<Outcome, StepFail> {
        let id = c.id.as_str();
        let primary = c.deliver_to.first();
        let (old, old_value) = if st.retire_done || !st.old_handle.is_empty() {
            // Resumed. A system that revokes a secret only when it is
            // presented gets the store's current value (for the retire and
            // the proof after it), if that is still the secret named: asked
            // of the provider, never assumed from fields that may be empty.
            let value = match (primary, p.retire_needs_value(&c.target)) {
                (Some(loc), true) => match self.store(loc, Step::Retire)?.read_current(loc).await.map_err(|e| fail(Step::Retire, e))? {
                    Some(cur) => {
                        let h = p.current_handle(&c.target, Some(&stored_handle_of(&cur))).await.map_err(|e| fail(Step::Retire, e))?;
                        same_secret(&h, &st.old_handle).then_some(cur.delivered)
                    }
                    None => None,
                },
                _ => None,
            };
            (st.old_handle.clone(), value)
        } else {
            let current = match primary {
                Some(loc) => self.store(loc, Step::Retire)?.read_current(loc).await.map_err(|e| fail(Step::Retire, e))?,
                None => None,
            };
            let stored: Option<Handle> = current.as_ref().map(stored_handle_of);
            let old = p.current_handle(&c.target, stored.as_ref()).await.map_err(|e| fail(Step::Retire, e))?;
            (old, current.map(|c| c.delivered))
        };
        self.defer_own_login(c, p, &old)?;
        if !st.retire_done {
            self.observer.step(&c.provider, id, Step::Retire);
            self.rec(id, "retire", "started", json!({ "old": handle_json(&old) })).await?;
            p.retire_with(&c.target, &old, old_value.as_ref()).await.map_err(|e| fail(Step::Retire, e))?;
            self.done(id, "retire", json!({}))?;
        }
        self.observer.step(&c.provider, id, Step::VerifyDead);
        let probe_value = if c.verify.probe_old { old_value.as_ref().map(|d| &d.value) } else { None };
        let v = self.probe_until(c, |_| async { p.verify_dead(&c.target, &old, probe_value).await }, false).await;
        Ok(proven(v, c.verify.attempts, |evidence| Outcome::Revoked { evidence }))
    }

    /// Sets keysweep's own login aside until every other credential is done.
    /// One this provider cannot move its session off (AWS: the SDK's
    /// credential chain) is refused before anything is minted: a new secret
    /// nobody could switch to would only be one more live secret.
    fn defer_own_login(&self, c: &Credential, p: &dyn Provider, old: &Handle) -> Result<(), StepFail> {
        if !p.is_own_login(&c.target, old) {
            return Ok(());
        }
        if !p.can_switch_login(&c.target) {
            return Err(fail(
                Step::Stage,
                format!(
                    "this is keysweep's own login to `{}`, and this provider cannot move keysweep's session to a new `{}`; nothing was changed: rotate it from outside the run (or have keysweep log in as another identity)",
                    c.provider,
                    c.target.kind()
                ),
            ));
        }
        if self.own_logins.last_wave.load(Ordering::SeqCst) {
            return Ok(());
        }
        tracing::info!(credential = %c.id, provider = %c.provider, "keysweep's own login: worked after every other credential");
        Err(StepFail { step: Step::Stage, reason: String::new(), defer: true })
    }

    /// Where a credential's claim is kept: its primary store, when that store
    /// has check-and-set, or the Vault KV mount its provider names in
    /// `claims_in` (`<pending_prefix>/keysweep-claims/<provider>/<path>`).
    /// `None`: no claims (the state-directory lock alone keeps runs apart).
    fn claim_loc(&self, c: &Credential) -> Option<(&dyn Store, StoreLocation)> {
        let primary = c.deliver_to.first()?;
        let store = self.providers.store(&primary.provider)?;
        if store.supports_claims() {
            return Some((store, primary.clone()));
        }
        let (vault, mount) = self.claims_in.get(&primary.provider)?;
        let cs = self.providers.store(vault).filter(|s| s.supports_claims())?;
        let path = format!("keysweep-claims/{}/{}", primary.provider, primary.path.trim_matches('/'));
        Some((cs, StoreLocation { provider: vault.clone(), mount: mount.clone(), path, field: primary.field.clone() }))
    }

    /// Takes or updates this run's claim on `loc` (check-and-set in the
    /// store), replacing the abandoned claim `replacing` if given. Another
    /// run's claim there makes this credential a gap.
    #[allow(clippy::too_many_arguments)]
    async fn claim(
        &self,
        c: &Credential,
        nonce: &str,
        phase: ClaimPhase,
        old: &Handle,
        old_version: Option<&str>,
        replacing: Option<&str>,
    ) -> Result<(), StepFail> {
        let Some((store, loc)) = self.claim_loc(c) else { return Ok(()) };
        let claim = self.claim_record(c, nonce, phase, old, old_version);
        match store.write_claim(&loc, &claim, replacing).await.map_err(|e| fail(Step::Stage, e))? {
            Some(other) => Err(held_by(&other)),
            None => Ok(()),
        }
    }

    /// This run's claim on credential `c`, in `phase`.
    fn claim_record(&self, c: &Credential, nonce: &str, phase: ClaimPhase, old: &Handle, old_version: Option<&str>) -> Claim {
        let host = crate::provider::this_host();
        let pid = std::process::id();
        Claim {
            nonce: nonce.to_string(),
            holder: format!("run `{}` on {host} (pid {pid})", self.run_id),
            lease_until: chrono::Utc::now() + lease_for(c),
            phase,
            old: old.clone(),
            old_version: old_version.map(str::to_string),
            host,
            pid,
            since: Some(chrono::Utc::now()),
        }
    }

    /// Stages `value` in every delivery store, taking the claim with the
    /// primary's write (the claim is kept beside the pending value there,
    /// and the slot was read free: see `rotate`). Another run's claim found
    /// by that write makes this credential a gap, with nothing staged.
    async fn stage_claimed_all(
        &self,
        c: &Credential,
        value: &Delivered,
        nonce: &str,
        old: &Handle,
        old_version: Option<&str>,
    ) -> Result<(), StepFail> {
        let Some((store, loc)) = self.claim_loc(c) else { return self.stage_all(c, value, nonce).await };
        let claim = self.claim_record(c, nonce, ClaimPhase::Staged, old, old_version);
        if let Some(other) = store.stage_claimed(&loc, value, nonce, &claim).await.map_err(|e| fail(Step::Stage, e))? {
            return Err(held_by(&other));
        }
        for sec in c.deliver_to.iter().filter(|l| **l != loc) {
            self.store(sec, Step::Stage)?.stage(sec, value, nonce).await.map_err(|e| fail(Step::Stage, e))?;
        }
        Ok(())
    }

    /// Ends this run's claim on a credential's primary store: released after
    /// a rotation ran to its end, expired (kept, so the next run settles what
    /// it holds at once) after a failure. Best effort: an unreleased claim
    /// only delays the next run until its lease ends.
    async fn end_claim(&self, c: &Credential, nonce: &str, release: bool) {
        let Some((store, loc)) = self.claim_loc(c) else { return };
        let loc = &loc;
        let r = if release {
            store.release(loc, nonce).await
        } else {
            match store.read_claim(loc).await {
                Ok(Some(mut cl)) if cl.nonce == nonce => {
                    cl.lease_until = chrono::Utc::now();
                    store.write_claim(loc, &cl, None).await.map(|_| ())
                }
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            }
        };
        if let Err(e) = r {
            tracing::warn!(credential = %c.id, store = %loc, error = %e, "could not end this run's claim; it lapses when its lease runs out");
        }
    }

    /// The secret a promoted value replaced, from the store's previous
    /// version, when no claim recorded it (a rotation staged by an older
    /// keysweep). Empty when the current version is the first.
    async fn previous_of(
        &self,
        c: &Credential,
        p: &dyn Provider,
        store: &dyn Store,
        loc: &StoreLocation,
        current: Option<&StoredValue>,
    ) -> Result<(Handle, Option<String>), StepFail> {
        let Some(cur) = current else { return Ok((Handle::new(), None)) };
        let Some(prev) = cur.version.parse::<u64>().ok().filter(|v| *v > 1).map(|v| (v - 1).to_string()) else {
            return Ok((Handle::new(), None));
        };
        match store.read_version(loc, &prev).await.map_err(|e| fail(Step::Stage, e))? {
            Some(d) => {
                let mut h = d.fields.clone();
                h.insert("version".into(), prev.clone());
                let old = p.current_handle(&c.target, Some(&h)).await.map_err(|e| fail(Step::Stage, e))?;
                Ok((old, Some(prev)))
            }
            None => Err(fail(
                Step::Stage,
                format!("a rotation by an earlier run is promoted at {loc}, but version {prev} (the secret it replaced) is no longer readable; retire that secret by hand, then clear the pending entry"),
            )),
        }
    }

    /// The old secret's value, to probe with, where the policy allows it and
    /// the store still holds `version` — and only if that value belongs to
    /// the `old` handle.
    async fn old_value(
        &self,
        c: &Credential,
        p: &dyn Provider,
        store: &dyn Store,
        loc: &StoreLocation,
        version: Option<&str>,
        old: &Handle,
    ) -> Option<Delivered> {
        let v = version.filter(|_| c.verify.probe_old)?;
        self.stored_old(c, p, store, loc, Some(v), old).await
    }

    /// The store's version `version` of the old secret (value and fields),
    /// if it still holds it and it is that secret's — whatever `probe_old`
    /// says: retiring may need the value presented (see `Provider::retire_with`).
    async fn stored_old(
        &self,
        c: &Credential,
        p: &dyn Provider,
        store: &dyn Store,
        loc: &StoreLocation,
        version: Option<&str>,
        old: &Handle,
    ) -> Option<Delivered> {
        store.read_version(loc, version?).await.ok().flatten().filter(|d| {
            let h = p.handle_from_fields(&c.target, &d.fields);
            h.iter().all(|(k, v)| old.get(k) == Some(v))
        })
    }

    /// Whether `h` names the secret the primary store says is current.
    async fn is_current(&self, c: &Credential, p: &dyn Provider, h: &Handle) -> Result<bool, StepFail> {
        let Some(loc) = c.deliver_to.first() else { return Ok(false) };
        let store = self.store(loc, Step::Retire)?;
        // Always asked of the store, never answered from the lifecycle's
        // memo: someone may have changed the store by hand since promotion
        // (during the grace period, say), and retiring what consumers now
        // read would lock them out. The one read a rotation spends on safety.
        let cur = crate::provider::seen::fresh(store.read_current(loc)).await.map_err(|e| fail(Step::Retire, e))?;
        let Some(cur) = cur else { return Ok(false) };
        let in_service = p.current_handle(&c.target, Some(&stored_handle_of(&cur))).await.map_err(|e| fail(Step::Retire, e))?;
        Ok(same_secret(h, &in_service))
    }

    /// Stages `value` as pending in every delivery store, primary first.
    async fn stage_all(&self, c: &Credential, value: &Delivered, nonce: &str) -> Result<(), StepFail> {
        for loc in &c.deliver_to {
            self.store(loc, Step::Stage)?.stage(loc, value, nonce).await.map_err(|e| fail(Step::Stage, e))?;
        }
        Ok(())
    }

    async fn pending_or_fail(&self, store: &dyn Store, loc: &StoreLocation, step: Step) -> Result<(Delivered, String), StepFail> {
        store.read_pending(loc).await.map_err(|e| fail(step, e))?.ok_or_else(|| fail(step, format!("the staged value at {loc} is gone")))
    }

    /// A pending value left by another run (a failed or abandoned rotation).
    /// A minted one was never promoted, so no consumer has it: withdraw it. A
    /// generated one may already be applied: if the system accepts it, it is
    /// adopted (returned) and this run finishes that rotation; it is discarded
    /// only when the system proves it was never applied (DESIGN: discard only
    /// on proof); if that cannot be told, the step fails and nothing changes.
    async fn settle_foreign_pending(
        &self,
        c: &Credential,
        p: &dyn Provider,
        primary: &StoreLocation,
        d: Delivered,
        foreign: &str,
        in_service: &Handle,
    ) -> Result<Option<Delivered>, StepFail> {
        let caps = capabilities(c.target.kind()).expect("known kind");
        // A mint that spent what the secret in service needs to be replaced
        // (a single-use refresh token) left the only way forward: adopt it if
        // it works, keep it otherwise; never withdraw it.
        let spent = caps.mints && p.mint_spends_old(&c.target);
        if caps.mints && !spent {
            let h: Handle = p.handle_from_fields(&c.target, &d.fields);
            // A leftover of a promotion is the secret in service: drop the entry only.
            if !h.is_empty() && !same_secret(&h, in_service) {
                p.retire_with(&c.target, &h, Some(&d)).await.map_err(|e| fail(Step::Stage, e))?;
            }
        } else {
            let h = p.handle_from_fields(&c.target, &d.fields);
            match p.test(&c.target, &d, &h).await {
                Verdict::Dead(e) if spent => {
                    return Err(fail(
                        Step::Stage,
                        format!("a pending value minted by run `{foreign}` is refused ({e}), and minting it spent what the secret in service needed to be replaced: it is kept, not withdrawn; settle it by hand"),
                    ))
                }
                Verdict::Dead(_) => {}
                // A stored secret's pending value is applied only by promotion.
                Verdict::Alive(_) if !caps.needs_store => {}
                Verdict::Alive(_) => {
                    tracing::warn!(credential = %c.id, store = %primary, "adopting the applied pending value left by run {foreign}");
                    return Ok(Some(d));
                }
                Verdict::Unknown(e) | Verdict::Unprovable(e) => {
                    return Err(fail(
                        Step::Stage,
                        format!("a pending value from run `{foreign}` may be in use ({e}); it is kept: resume that run or clear it by hand"),
                    ))
                }
            }
        }
        for loc in &c.deliver_to {
            self.store(loc, Step::Stage)?.discard_pending(loc).await.map_err(|e| fail(Step::Stage, e))?;
        }
        tracing::warn!(credential = %c.id, store = %primary, "cleared a pending value left by run {foreign}");
        Ok(None)
    }

    /// Probes up to `verify.attempts` times, `verify.interval` apart. Stops at
    /// the first `Alive` when `want_alive`, else at the first `Dead`. Returns
    /// the last verdict.
    async fn probe_until<F, Fut>(&self, c: &Credential, mut probe: F, want_alive: bool) -> Verdict
    where
        F: FnMut(u32) -> Fut,
        Fut: std::future::Future<Output = Verdict>,
    {
        let attempts = c.verify.attempts.max(1);
        let mut last = Verdict::Unknown("not probed".into());
        for attempt in 1..=attempts {
            last = probe(attempt).await;
            // A new secret refused may not have propagated yet (IAM): only
            // Alive ends a test early. An old one accepted may not have either.
            let stop = match &last {
                Verdict::Alive(_) => want_alive,
                Verdict::Dead(_) => !want_alive,
                Verdict::Unknown(_) => false,
                // Probing again cannot change it.
                Verdict::Unprovable(_) => true,
            };
            if stop {
                return last;
            }
            if attempt < attempts {
                tokio::time::sleep(c.verify.interval.max(Duration::from_millis(10))).await;
            }
        }
        last
    }
}

/// The nonce a value a person supplied for credential `id` is staged under
/// (`keysweep supply`): the run that finds it pending adopts it.
pub fn supplied_nonce(id: &str) -> String {
    format!("keysweep-supply/{id}")
}

/// Turns a provider error into the reason text of a failure.
pub fn reason(e: &ProviderError) -> String {
    e.to_string()
}
