//! The conformance suite every provider runs against its real server (or the
//! simulator of a SaaS API, or the in-process `memory` system): named trials,
//! chosen from the kind's capabilities. A revoke-only kind runs the revoke and
//! verify trials, a minting kind the mint and orphan-cleanup trials too, a
//! kind whose secret is its own store entry the rotation of that entry, a
//! store the staging contract.
//!
//! A provider's test supplies a [`Fixture`] that creates real, live secrets.
//! Every trial asserts (panics) with a message naming the kind and the trial.
//! [`run`] records which trials a kind ran: printed, and appended to the file
//! `KEYSWEEP_CONFORMANCE_LOG` names, where `scripts/test.sh` checks that every
//! registered kind ran at least one.

use std::sync::Arc;

use async_trait::async_trait;

use super::{capabilities, Capabilities, Handle, Provider, Store, Verdict};
use crate::playbook::model::Target;
use crate::playbook::StoreLocation;
use crate::secret::{Delivered, ExposeSecret, SecretString};

/// Creates live secrets of one kind in the system under test.
#[async_trait]
pub trait Fixture: Send + Sync {
    /// A new live secret: its target description, handle and value.
    async fn create(&self) -> (Target, Handle, SecretString);
    /// A provider of the same kind whose system does not answer (stopped, or
    /// behind a proxy that drops everything), for the outage trial.
    async fn unreachable(&self) -> Option<Arc<dyn Provider>> {
        None
    }
}

/// A fixture's secret as a store holds it: its value, and its handle standing
/// for the fields kept beside it (what `retire_with` and `mint_from` are given).
fn known(value: &SecretString, handle: &Handle) -> Delivered {
    Delivered { value: SecretString::from(value.expose_secret().to_string()), fields: handle.clone() }
}

fn is_dead(v: &Verdict) -> bool {
    matches!(v, Verdict::Dead(_))
}

/// One named trial and the capabilities that call for it.
pub struct Trial {
    pub name: &'static str,
    pub applies: fn(&Capabilities) -> bool,
}

/// Every trial of [`run`], in the order run.
pub const TRIALS: &[Trial] = &[
    Trial { name: "current_handle", applies: |_| true },
    Trial { name: "inventory_lists_the_fixture_and_no_secret", applies: |_| true },
    Trial { name: "errors_and_verdicts_are_secret_free", applies: |_| true },
    Trial { name: "outage_is_unknown_never_dead", applies: |c| c.verify_dead },
    Trial { name: "revoke_and_prove_dead", applies: |c| c.revoke && c.verify_dead },
    Trial { name: "mint_and_cleanup_orphans_by_nonce", applies: |c| c.rotate && c.mints },
    Trial { name: "accept_a_generated_value", applies: |c| c.rotate && !c.mints && c.needs_store },
    Trial { name: "rotate_its_own_store_entry", applies: |c| c.rotate && !c.mints && !c.needs_store },
];

/// Runs every trial the kind's capabilities call for; returns their names.
/// A kind no trial applies to fails. The outage trial needs the fixture's
/// `unreachable` provider; without one it is reported as not run.
pub async fn run(p: &dyn Provider, f: &dyn Fixture, kind: &str) -> Vec<&'static str> {
    let caps = capabilities(kind).unwrap_or_else(|| panic!("{kind}: no capabilities declared"));
    let mut ran = vec![];
    for t in TRIALS.iter().filter(|t| (t.applies)(&caps)) {
        let done = match t.name {
            "current_handle" => current_handle(p, f, kind).await,
            "inventory_lists_the_fixture_and_no_secret" => inventory_lists_the_fixture(p, f, kind).await,
            "errors_and_verdicts_are_secret_free" => secret_free(p, f, kind).await,
            "outage_is_unknown_never_dead" => outage_is_unknown(f, kind).await,
            "revoke_and_prove_dead" => {
                revoke_and_prove_dead(p, f, kind).await;
                true
            }
            "mint_and_cleanup_orphans_by_nonce" => {
                mint_test_and_cleanup_orphans(p, f, kind).await;
                true
            }
            "accept_a_generated_value" => {
                apply_test_and_prove_old_dead(p, f, kind).await;
                true
            }
            "rotate_its_own_store_entry" => rotate_own_entry(p, f, kind).await,
            other => panic!("{kind}: trial `{other}` has no body"),
        };
        if done {
            ran.push(t.name);
        }
    }
    assert!(!ran.is_empty(), "{kind}: no conformance trial ran");
    record(kind, &ran);
    ran
}

/// Prints the trials a kind ran and appends them to `KEYSWEEP_CONFORMANCE_LOG`.
pub fn record(kind: &str, ran: &[&str]) {
    eprintln!("conformance {kind}: {} trial(s): {}", ran.len(), ran.join(", "));
    if let Ok(path) = std::env::var("KEYSWEEP_CONFORMANCE_LOG") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let lines: String = ran.iter().map(|t| format!("{kind} {t}\n")).collect();
            let _ = f.write_all(lines.as_bytes());
        }
    }
}

/// The handle of a live secret, found from the playbook's target alone (no
/// store record) and from the store's record: both name the fixture's secret.
async fn current_handle(p: &dyn Provider, f: &dyn Fixture, kind: &str) -> bool {
    let (target, handle, _value) = f.create().await;
    for stored in [None, Some(&handle)] {
        let h = p.current_handle(&target, stored).await.unwrap_or_else(|e| panic!("{kind}: current_handle: {e}"));
        assert!(!h.is_empty(), "{kind}: current_handle gave an empty handle");
        let common: Vec<&String> = h.keys().filter(|k| handle.contains_key(*k)).collect();
        assert!(!common.is_empty(), "{kind}: current_handle {h:?} shares nothing with the fixture's {handle:?}");
        assert!(common.iter().all(|k| h[*k] == handle[*k]), "{kind}: current_handle {h:?} disagrees with the fixture's {handle:?}");
    }
    true
}

/// The inventory holds the fixture (matched the way discovery matches it) and
/// no secret value anywhere in it.
async fn inventory_lists_the_fixture(p: &dyn Provider, f: &dyn Fixture, kind: &str) -> bool {
    let (target, handle, value) = f.create().await;
    let items = p.inventory().await.unwrap_or_else(|e| panic!("{kind}: inventory: {e}"));
    let json = serde_json::to_string(&items).expect("inventory serializes");
    assert!(!json.contains(value.expose_secret()), "{kind}: the inventory holds a secret value");
    let claimed: Vec<String> = target.spec().claimed(Some(&handle)).into_iter().map(|(k, _)| super::kind::match_key(kind, &k)).collect();
    let listed = items.iter().any(|it| it.kind == kind && claimed.contains(&super::kind::match_key(kind, &super::kind::display_id(it))));
    assert!(listed, "{kind}: the inventory does not list the fixture ({claimed:?}) among {} item(s)", items.len());
    true
}

/// A wrong value, and a secret that does not exist: the answers say so
/// without echoing either value.
async fn secret_free(p: &dyn Provider, f: &dyn Fixture, kind: &str) -> bool {
    let (target, handle, value) = f.create().await;
    let wrong = crate::secret::GeneratePolicy::default().generate();
    let wrong_d = Delivered { value: SecretString::from(wrong.expose_secret().to_string()), fields: handle.clone() };
    let verdicts = [p.test(&target, &wrong_d, &handle).await, p.verify_dead(&target, &handle, Some(&wrong)).await];
    for v in &verdicts {
        for secret in [&value, &wrong] {
            assert!(!v.evidence().contains(secret.expose_secret()), "{kind}: a verdict echoes a secret: {v:?}");
        }
    }
    assert!(!matches!(verdicts[0], Verdict::Alive(_)), "{kind}: a wrong value tested Alive: {:?}", verdicts[0]);
    true
}

/// A system that does not answer never makes a secret dead: unknown.
async fn outage_is_unknown(f: &dyn Fixture, kind: &str) -> bool {
    let Some(down) = f.unreachable().await else {
        eprintln!("conformance {kind}: outage_is_unknown_never_dead not run: the fixture has no unreachable provider");
        return false;
    };
    let (target, handle, value) = f.create().await;
    for v in [down.verify_dead(&target, &handle, Some(&value)).await, down.verify_dead(&target, &handle, None).await] {
        assert!(matches!(v, Verdict::Unknown(_)), "{kind}: an unreachable system gave {v:?}, not Unknown");
    }
    let t = down.test(&target, &Delivered { value, fields: handle.clone() }, &handle).await;
    assert!(!is_dead(&t), "{kind}: testing against an unreachable system gave {t:?}");
    true
}

/// A secret that is its own store entry: a new value staged and promoted in
/// that entry, the old one retired and proven dead, the new one alive.
async fn rotate_own_entry(p: &dyn Provider, f: &dyn Fixture, kind: &str) -> bool {
    let (target, old, old_value) = f.create().await;
    let store = p.as_store().unwrap_or_else(|| panic!("{kind}: its provider is not a store"));
    let d = target.spec().own_entry(p.name()).unwrap_or_else(|| panic!("{kind}: no own store entry"));
    let loc = StoreLocation::from_delivery(&d, "conformance");
    let before = p.verify_dead(&target, &old, Some(&old_value)).await;
    assert!(!is_dead(&before), "{kind}: the value in service verified Dead: {before:?}");
    let value = target.generate_policy().cloned().unwrap_or_default().generate();
    let nonce = format!("conformance-{}", uuid::Uuid::new_v4().simple());
    store
        .stage(&loc, &Delivered::new(SecretString::from(value.expose_secret().to_string())), &nonce)
        .await
        .unwrap_or_else(|e| panic!("{kind}: stage: {e}"));
    let version = store.promote(&loc, &nonce).await.unwrap_or_else(|e| panic!("{kind}: promote: {e}"));
    let new_handle = Handle::from([("version".to_string(), version)]);
    let cur = store.read_current(&loc).await.unwrap().unwrap_or_else(|| panic!("{kind}: nothing current after promote"));
    assert_eq!(cur.delivered.value.expose_secret(), value.expose_secret(), "{kind}: promote did not make the new value current");
    let t = p.test(&target, &cur.delivered, &new_handle).await;
    assert!(matches!(t, Verdict::Alive(_)), "{kind}: the new value must test Alive: {t:?}");
    if capabilities(kind).is_some_and(|c| c.revoke) {
        p.retire_with(&target, &old, Some(&known(&old_value, &old))).await.unwrap_or_else(|e| panic!("{kind}: retire: {e}"));
    }
    let after = p.verify_dead(&target, &old, Some(&old_value)).await;
    assert!(is_dead(&after), "{kind}: the old value is not proven dead after the rotation: {after:?}");
    true
}

/// retire makes a live secret dead, is idempotent, and death is proven both
/// with and without the old value; a live secret is never reported dead.
pub async fn revoke_and_prove_dead(p: &dyn Provider, f: &dyn Fixture, kind: &str) {
    let (target, handle, value) = f.create().await;
    let before = p.verify_dead(&target, &handle, Some(&value)).await;
    assert!(matches!(before, Verdict::Alive(_)), "{kind}: a live secret must verify Alive, got {before:?}");
    let before_admin = p.verify_dead(&target, &handle, None).await;
    assert!(!is_dead(&before_admin), "{kind}: a live secret verified Dead admin-side: {before_admin:?}");
    let k = known(&value, &handle);
    p.retire_with(&target, &handle, Some(&k)).await.unwrap_or_else(|e| panic!("{kind}: retire: {e}"));
    p.retire_with(&target, &handle, Some(&k)).await.unwrap_or_else(|e| panic!("{kind}: retire is not idempotent: {e}"));
    let after = p.verify_dead(&target, &handle, Some(&value)).await;
    assert!(is_dead(&after), "{kind}: retired secret not proven dead with its value: {after:?}");
    let after_admin = p.verify_dead(&target, &handle, None).await;
    assert!(is_dead(&after_admin), "{kind}: retired secret not proven dead admin-side: {after_admin:?}");
}

/// mint gives a working secret tagged with the nonce; cleanup_minted retires
/// the orphan of a crash (a mint whose store write never happened) and keeps
/// the one named. Never more than two secrets exist at once (IAM's limit).
pub async fn mint_test_and_cleanup_orphans(p: &dyn Provider, f: &dyn Fixture, kind: &str) {
    let (target, old, old_value) = f.create().await;
    // Nonces look like the engine's: `<run-id>/<credential>`, the run id starting with its time.
    let nonce = format!("{}-conformance/{}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"), uuid::Uuid::new_v4().simple());
    // The process "died" after this mint: nothing stored it.
    let current = known(&old_value, &old);
    let orphan = p.mint_from(&target, &old, Some(&current), &nonce).await.unwrap_or_else(|e| panic!("{kind}: mint: {e}"));
    assert_ne!(orphan.delivered.value.expose_secret(), old_value.expose_secret(), "{kind}: mint returned the old value");
    let n = p.cleanup_minted(&target, &old, &nonce, None).await.unwrap_or_else(|e| panic!("{kind}: cleanup_minted: {e}"));
    assert_eq!(n, 1, "{kind}: cleanup_minted should retire exactly the orphan");
    let v = p.verify_dead(&target, &orphan.handle, Some(&orphan.delivered.value)).await;
    assert!(is_dead(&v), "{kind}: orphan not dead after cleanup: {v:?}");
    let v = p.verify_dead(&target, &old, Some(&old_value)).await;
    assert!(matches!(v, Verdict::Alive(_)), "{kind}: orphan cleanup disturbed the old secret: {v:?}");

    // The resumed mint: kept, tested, and spared by cleanup.
    let kept = p.mint_from(&target, &old, Some(&current), &nonce).await.unwrap_or_else(|e| panic!("{kind}: mint: {e}"));
    let t = p.test(&target, &kept.delivered, &kept.handle).await;
    assert!(matches!(t, Verdict::Alive(_)), "{kind}: a freshly minted secret must test Alive: {t:?}");
    let n = p.cleanup_minted(&target, &old, &nonce, Some(&kept.handle)).await.unwrap();
    assert_eq!(n, 0, "{kind}: cleanup_minted retired the kept secret");
    let t = p.test(&target, &kept.delivered, &kept.handle).await;
    assert!(matches!(t, Verdict::Alive(_)), "{kind}: cleanup retired the kept secret: {t:?}");
    let v = p.verify_dead(&target, &old, Some(&old_value)).await;
    assert!(matches!(v, Verdict::Alive(_)), "{kind}: minting disturbed the old secret: {v:?}");
    p.retire_with(&target, &kept.handle, Some(&kept.delivered)).await.unwrap();
    // Clean-up only: a system may refuse to retire the last secret of an
    // account (Okta keeps an app's only active client secret).
    let _ = p.retire_with(&target, &old, Some(&current)).await;
}

/// A generated secret: `new_fields` picks the account (the same one, or the
/// other of an alternating pair), `apply` makes the system accept the value
/// (twice: idempotent), `test` proves it works, and the old secret is proven
/// dead — after `retire` when it belongs to another account.
pub async fn apply_test_and_prove_old_dead(p: &dyn Provider, f: &dyn Fixture, kind: &str) {
    let (target, old, old_value) = f.create().await;
    let fields = p.new_fields(&target, &old).await.unwrap_or_else(|e| panic!("{kind}: new_fields: {e}"));
    let value = target.generate_policy().cloned().unwrap_or_default().generate();
    let new = Delivered { value, fields };
    let new_handle = p.handle_from_fields(&target, &new.fields);
    assert!(!new_handle.is_empty(), "{kind}: the new value's fields name no account");
    p.apply(&target, &new).await.unwrap_or_else(|e| panic!("{kind}: apply: {e}"));
    p.apply(&target, &new).await.unwrap_or_else(|e| panic!("{kind}: apply is not idempotent: {e}"));
    let t = p.test(&target, &new, &new_handle).await;
    assert!(matches!(t, Verdict::Alive(_)), "{kind}: the applied secret must test Alive: {t:?}");
    if new_handle != old {
        // Alternating users: the old account stays valid until it is retired.
        let v = p.verify_dead(&target, &old, Some(&old_value)).await;
        assert!(matches!(v, Verdict::Alive(_)), "{kind}: the other account should still work before retire: {v:?}");
        p.retire_with(&target, &old, Some(&known(&old_value, &old))).await.unwrap_or_else(|e| panic!("{kind}: retire: {e}"));
    }
    let v = p.verify_dead(&target, &old, Some(&old_value)).await;
    assert!(is_dead(&v), "{kind}: the old secret is not proven dead: {v:?}");
    let t = p.test(&target, &new, &new_handle).await;
    assert!(matches!(t, Verdict::Alive(_)), "{kind}: proving the old secret dead disturbed the new one: {t:?}");
}

/// The staging contract of a store: pending is invisible to consumers until
/// promoted; promotion is idempotent and keeps the old version readable; a
/// pending value of another nonce is never promoted.
pub async fn store_contract(s: &dyn Store, loc: &StoreLocation, provider_kind: &str) {
    let v1 = Delivered::new(SecretString::from("conformance-value-one-aaaaaaaa".to_string())).with_field("accessor", "acc-1");
    s.stage(loc, &v1, "n1").await.unwrap();
    s.promote(loc, "n1").await.unwrap();
    let cur = s.read_current(loc).await.unwrap().expect("current after first promote");
    assert_eq!(cur.delivered.value.expose_secret(), "conformance-value-one-aaaaaaaa");
    let first_version = cur.version.clone();

    let v2 = Delivered::new(SecretString::from("conformance-value-two-bbbbbbbb".to_string())).with_field("accessor", "acc-2");
    s.stage(loc, &v2, "n2").await.unwrap();
    let (p, n) = s.read_pending(loc).await.unwrap().expect("pending");
    assert_eq!(n, s.tag_for("n2"));
    assert_eq!(p.value.expose_secret(), "conformance-value-two-bbbbbbbb");
    assert_eq!(p.fields.get("accessor").map(String::as_str), Some("acc-2"));
    let cur = s.read_current(loc).await.unwrap().unwrap();
    assert_eq!(cur.delivered.value.expose_secret(), "conformance-value-one-aaaaaaaa", "staging changed what consumers read");

    assert!(s.promote(loc, "other-nonce").await.is_err(), "promoted a pending value of another nonce");
    let v_a = s.promote(loc, "n2").await.unwrap();
    let v_b = s.promote(loc, "n2").await.unwrap();
    assert_eq!(v_a, v_b, "promote is not idempotent");
    assert!(s.read_pending(loc).await.unwrap().is_none(), "pending left after promote");
    let cur = s.read_current(loc).await.unwrap().unwrap();
    assert_eq!(cur.delivered.value.expose_secret(), "conformance-value-two-bbbbbbbb");
    let old = s.read_version(loc, &first_version).await.unwrap().expect("old version readable");
    assert_eq!(old.value.expose_secret(), "conformance-value-one-aaaaaaaa");

    s.stage(loc, &v1, "n3").await.unwrap();
    let pending = s.list_pending(&loc.mount).await.unwrap();
    assert!(pending.iter().any(|p| p.ends_with(&loc.path)), "list_pending does not list {} among {pending:?}", loc.path);
    s.discard_pending(loc).await.unwrap();
    s.discard_pending(loc).await.unwrap();
    assert!(s.read_pending(loc).await.unwrap().is_none());
    let pending = s.list_pending(&loc.mount).await.unwrap();
    assert!(!pending.iter().any(|p| p.ends_with(&loc.path)), "list_pending still lists a discarded entry: {pending:?}");
    record(&format!("store:{provider_kind}"), &["store_contract_and_list_pending"]);
}
