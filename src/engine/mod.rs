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

pub mod retry;
pub mod state;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::journal::Journal;
use crate::plan::{Plan, WorkItem};
use crate::playbook::model::Action;
use crate::playbook::{Credential, StoreLocation};
use crate::provider::registry::Providers;
use crate::provider::{capabilities, Handle, Provider, ProviderError, Store, Verdict};
use crate::report::{Outcome, Step};
use crate::secret::Delivered;
use state::CredState;

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
    /// Credentials worked on at once, across providers.
    pub concurrency: usize,
    /// Default per-provider cap where the playbook sets none.
    pub provider_concurrency: BTreeMap<String, usize>,
    pub observer: Arc<dyn Observer>,
    /// Set to stop starting new credentials (Ctrl-C); in-flight ones finish their step.
    pub stop: Arc<AtomicBool>,
}

/// A step that failed: where and why. Becomes `Outcome::Failed`.
struct StepFail {
    step: Step,
    reason: String,
}

fn fail(step: Step, e: impl std::fmt::Display) -> StepFail {
    StepFail { step, reason: crate::secret::scrub(&e.to_string()) }
}

fn handle_json(h: &Handle) -> Value {
    serde_json::to_value(h).unwrap_or(Value::Null)
}

impl Engine {
    async fn rec(&self, id: &str, step: &str, status: &str, detail: Value) -> Result<(), StepFail> {
        self.journal.record(&self.run_id, id, step, status, detail).await.map_err(|e| fail(Step::Stage, format!("journal: {e:#}")))
    }

    /// Runs every selected credential of `plan` that has no outcome yet.
    /// Returns the per-credential states after the run (from the journal).
    pub async fn execute(&self, plan: &Plan) -> Result<HashMap<String, CredState>> {
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

        let global = Arc::new(Semaphore::new(self.concurrency.max(1)));
        let mut per_provider: HashMap<String, Arc<Semaphore>> = HashMap::new();
        for name in self.providers.names() {
            let n = self.provider_concurrency.get(name).copied().unwrap_or(8).max(1);
            per_provider.insert(name.clone(), Arc::new(Semaphore::new(n)));
        }

        for wave in &plan.waves {
            let mut futs = FuturesUnordered::new();
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
                futs.push(async move {
                    if let Some(reason) = blocked {
                        self.finish(item, Outcome::Skipped { reason }).await;
                        return;
                    }
                    let _p = match &prov {
                        Some(p) => Some(p.acquire().await.expect("semaphore open")),
                        None => None,
                    };
                    let _g = global.acquire().await.expect("semaphore open");
                    if self.stop.load(Ordering::SeqCst) {
                        return; // left without outcome: a resume continues it
                    }
                    if let Some(o) = self.process(item, st).await {
                        self.finish(item, o).await;
                    }
                });
            }
            while futs.next().await.is_some() {}
            states = self.states()?;
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
        }
        self.observer.end();
        Ok(states)
    }

    /// Folds the journal into per-credential states.
    pub fn states(&self) -> Result<HashMap<String, CredState>> {
        let mut m: HashMap<String, CredState> = HashMap::new();
        for e in self.journal.events(&self.run_id)? {
            m.entry(e.cred_id.clone()).or_default().apply(&e);
        }
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
        let r = match c.action {
            Action::Rotate => self.rotate(c, provider.as_ref(), st).await,
            Action::Revoke => self.revoke(c, provider.as_ref(), st).await,
        };
        Some(match r {
            Ok(o) => o,
            Err(f) => Outcome::Failed { step: f.step, reason: f.reason },
        })
    }

    fn store(&self, loc: &StoreLocation, step: Step) -> Result<&dyn Store, StepFail> {
        self.providers.store(&loc.provider).ok_or_else(|| fail(step, format!("store provider `{}` is not connected", loc.provider)))
    }

    async fn rotate(&self, c: &Credential, p: &dyn Provider, mut st: CredState) -> Result<Outcome, StepFail> {
        let caps = capabilities(c.target.kind()).ok_or_else(|| fail(Step::Stage, "unknown credential kind"))?;
        let primary = c.deliver_to.first().ok_or_else(|| fail(Step::Stage, "no delivery store"))?.clone();
        let id = c.id.as_str();

        // ---- stage: produce the new secret and store it as pending.
        if !st.stage_done {
            self.observer.step(&c.provider, id, Step::Stage);
            let resumed = st.stage_started;
            let nonce = st.nonce.clone().unwrap_or_else(|| format!("{}/{}", self.run_id, id));
            if !resumed {
                self.rec(id, "stage", "started", json!({ "nonce": nonce })).await?;
            }
            let store = self.store(&primary, Step::Stage)?;
            let current = store.read_current(&primary).await.map_err(|e| fail(Step::Stage, e))?;
            let stored_handle: Option<Handle> = current.as_ref().map(|cur| {
                let mut h = cur.delivered.fields.clone();
                h.insert("version".into(), cur.version.clone());
                h
            });
            let old = p.current_handle(&c.target, stored_handle.as_ref()).await.map_err(|e| fail(Step::Stage, e))?;
            let old_version = current.as_ref().map(|c| c.version.clone());
            drop(current);

            let pending = store.read_pending(&primary).await.map_err(|e| fail(Step::Stage, e))?;
            let new_handle: Handle = match pending {
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
                        Some((d, foreign)) => self.settle_foreign_pending(c, p, &primary, d, &foreign).await?,
                        None => None,
                    };
                    if let Some(d) = adopted {
                        // Finish what the earlier run started: its value is what the system holds.
                        self.stage_all(c, &d, &nonce).await?;
                        p.handle_from_fields(&c.target, &d.fields)
                    } else if caps.mints {
                        if resumed {
                            // A mint may have happened with no store write after it.
                            let n = p.cleanup_minted(&c.target, &old, &nonce, None).await.map_err(|e| fail(Step::Stage, e))?;
                            if n > 0 {
                                tracing::warn!(credential = id, retired = n, "retired orphan secrets of an interrupted mint");
                            }
                        }
                        let minted = p.mint(&c.target, &old, &nonce).await.map_err(|e| fail(Step::Stage, e))?;
                        crate::journal::crash_point("mint");
                        if let Err(e) = self.stage_all(c, &minted.delivered, &nonce).await {
                            // Never leave a minted secret that no store holds.
                            let _ = p.retire(&c.target, &minted.handle).await;
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
                        self.stage_all(c, &value, &nonce).await?;
                        p.handle_from_fields(&c.target, &value.fields)
                    }
                }
            };
            self.rec(
                id,
                "stage",
                "done",
                json!({ "nonce": nonce, "old": handle_json(&old), "old_version": old_version, "new": handle_json(&new_handle) }),
            )
            .await?;
            st.stage_done = true;
            st.nonce = Some(nonce);
            st.old_handle = old;
            st.old_version = old_version;
            st.new_handle = new_handle;
        }
        let nonce = st.nonce.clone().unwrap_or_default();
        let store = self.store(&primary, Step::Test)?;

        // ---- apply: make the owning system accept a generated secret.
        if !caps.mints && !st.apply_done && !st.promote_done {
            self.observer.step(&c.provider, id, Step::Apply);
            self.rec(id, "apply", "started", json!({})).await?;
            let (d, n) = self.pending_or_fail(store, &primary, Step::Apply).await?;
            if n != store.tag_for(&nonce) {
                return Err(fail(Step::Apply, "the pending value belongs to another run"));
            }
            p.apply(&c.target, &d).await.map_err(|e| fail(Step::Apply, e))?;
            self.rec(id, "apply", "done", json!({})).await?;
        }

        // ---- test: the new secret must work before anything else changes.
        if !st.test_done && !st.promote_done {
            self.observer.step(&c.provider, id, Step::Test);
            let (d, _) = self.pending_or_fail(store, &primary, Step::Test).await?;
            let v = self.probe_until(c, |_| async { p.test(&c.target, &d, &st.new_handle).await }, true).await;
            match v {
                Verdict::Alive(e) => self.rec(id, "test", "done", json!({ "evidence": e })).await?,
                Verdict::Dead(e) if caps.mints => {
                    // The new secret does not work: withdraw it, keep the old.
                    let _ = p.retire(&c.target, &st.new_handle).await;
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
                Verdict::Unknown(e) => {
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
            self.rec(id, "promote", "done", json!({ "new_version": version })).await?;
        }

        // ---- retire the old secret (after the grace period).
        if !st.retire_done {
            self.observer.step(&c.provider, id, Step::Retire);
            if let Some(g) = c.grace_period {
                tokio::time::sleep(g).await;
            }
            self.rec(id, "retire", "started", json!({ "old": handle_json(&st.old_handle) })).await?;
            // Same account (a single-user password rotation): applying the new
            // password already replaced the old one; there is nothing else to retire.
            let same_account = !st.new_handle.is_empty() && st.new_handle == st.old_handle;
            if !st.old_handle.is_empty() && !same_account {
                retry::retry(retry::RetryPolicy::default(), || p.retire(&c.target, &st.old_handle)).await.map_err(|e| fail(Step::Retire, e))?;
            }
            self.rec(id, "retire", "done", json!({})).await?;
        }

        // ---- verify-dead.
        self.observer.step(&c.provider, id, Step::VerifyDead);
        if st.old_handle.is_empty() {
            return Ok(Outcome::Rotated { evidence: "new secret works; no previous secret existed".into() });
        }
        let old_value = match (&st.old_version, c.verify.probe_old) {
            (Some(v), true) => store
                .read_version(&primary, v)
                .await
                .ok()
                .flatten()
                // Probe only with the value that belongs to the old handle.
                .filter(|d| {
                    let h = p.handle_from_fields(&c.target, &d.fields);
                    h.iter().all(|(k, v)| st.old_handle.get(k) == Some(v))
                }),
            _ => None,
        };
        let v = self.probe_until(c, |_| async { p.verify_dead(&c.target, &st.old_handle, old_value.as_ref().map(|d| &d.value)).await }, false).await;
        Ok(match v {
            Verdict::Dead(e) => Outcome::Rotated { evidence: e },
            Verdict::Alive(e) => {
                Outcome::Unverified { step: Step::VerifyDead, reason: format!("old secret still accepted after {} probe(s): {e}", c.verify.attempts) }
            }
            Verdict::Unknown(e) => {
                Outcome::Unverified { step: Step::VerifyDead, reason: format!("death not proven after {} probe(s): {e}", c.verify.attempts) }
            }
        })
    }

    async fn revoke(&self, c: &Credential, p: &dyn Provider, st: CredState) -> Result<Outcome, StepFail> {
        let id = c.id.as_str();
        let primary = c.deliver_to.first();
        let (old, old_value) = if st.retire_done || !st.old_handle.is_empty() {
            (st.old_handle.clone(), None)
        } else {
            let current = match primary {
                Some(loc) => self.store(loc, Step::Retire)?.read_current(loc).await.map_err(|e| fail(Step::Retire, e))?,
                None => None,
            };
            let stored: Option<Handle> = current.as_ref().map(|cur| {
                let mut h = cur.delivered.fields.clone();
                h.insert("version".into(), cur.version.clone());
                h
            });
            let old = p.current_handle(&c.target, stored.as_ref()).await.map_err(|e| fail(Step::Retire, e))?;
            (old, current.map(|c| c.delivered))
        };
        if !st.retire_done {
            self.observer.step(&c.provider, id, Step::Retire);
            self.rec(id, "retire", "started", json!({ "old": handle_json(&old) })).await?;
            retry::retry(retry::RetryPolicy::default(), || p.retire(&c.target, &old)).await.map_err(|e| fail(Step::Retire, e))?;
            self.rec(id, "retire", "done", json!({})).await?;
        }
        self.observer.step(&c.provider, id, Step::VerifyDead);
        let probe_value = if c.verify.probe_old { old_value.as_ref().map(|d| &d.value) } else { None };
        let v = self.probe_until(c, |_| async { p.verify_dead(&c.target, &old, probe_value).await }, false).await;
        Ok(match v {
            Verdict::Dead(e) => Outcome::Revoked { evidence: e },
            Verdict::Alive(e) => {
                Outcome::Unverified { step: Step::VerifyDead, reason: format!("still accepted after {} probe(s): {e}", c.verify.attempts) }
            }
            Verdict::Unknown(e) => {
                Outcome::Unverified { step: Step::VerifyDead, reason: format!("death not proven after {} probe(s): {e}", c.verify.attempts) }
            }
        })
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
    ) -> Result<Option<Delivered>, StepFail> {
        let caps = capabilities(c.target.kind()).expect("known kind");
        if caps.mints {
            let h: Handle = p.handle_from_fields(&c.target, &d.fields);
            if !h.is_empty() {
                p.retire(&c.target, &h).await.map_err(|e| fail(Step::Stage, e))?;
            }
        } else {
            let h = p.handle_from_fields(&c.target, &d.fields);
            match p.test(&c.target, &d, &h).await {
                Verdict::Dead(_) => {}
                // A stored secret's pending value is applied only by promotion.
                Verdict::Alive(_) if !caps.needs_store => {}
                Verdict::Alive(_) => {
                    tracing::warn!(credential = %c.id, store = %primary, "adopting the applied pending value left by run {foreign}");
                    return Ok(Some(d));
                }
                Verdict::Unknown(e) => {
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

/// Turns a provider error into the reason text of a failure.
pub fn reason(e: &ProviderError) -> String {
    e.to_string()
}
