//! The conformance suite every provider runs against its real server (or the
//! simulator of a SaaS API). Cases are chosen from the kind's capabilities:
//! a revoke-only kind runs the revoke/verify cases, a minting kind the mint
//! and orphan-cleanup cases too, a store the staging contract.
//!
//! A provider's test supplies a [`Fixture`] that creates real, live secrets.
//! Every case asserts (panics) with a message naming the kind and the case.

use async_trait::async_trait;

use super::{capabilities, Handle, Provider, Store, Verdict};
use crate::playbook::model::Target;
use crate::playbook::StoreLocation;
use crate::secret::{Delivered, ExposeSecret, SecretString};

/// Creates live secrets of one kind in the system under test.
#[async_trait]
pub trait Fixture: Send + Sync {
    /// A new live secret: its target description, handle and value.
    async fn create(&self) -> (Target, Handle, SecretString);
}

fn is_dead(v: &Verdict) -> bool {
    matches!(v, Verdict::Dead(_))
}

/// Runs every case the kind's capabilities call for.
pub async fn run(p: &dyn Provider, f: &dyn Fixture, kind: &str) {
    let caps = capabilities(kind).unwrap_or_else(|| panic!("{kind}: no capabilities declared"));
    if caps.revoke && caps.verify_dead {
        revoke_and_prove_dead(p, f, kind).await;
    }
    if caps.rotate && caps.mints {
        mint_test_and_cleanup_orphans(p, f, kind).await;
    }
    if caps.rotate && !caps.mints && caps.needs_store {
        apply_test_and_prove_old_dead(p, f, kind).await;
    }
}

/// retire makes a live secret dead, is idempotent, and death is proven both
/// with and without the old value; a live secret is never reported dead.
pub async fn revoke_and_prove_dead(p: &dyn Provider, f: &dyn Fixture, kind: &str) {
    let (target, handle, value) = f.create().await;
    let before = p.verify_dead(&target, &handle, Some(&value)).await;
    assert!(matches!(before, Verdict::Alive(_)), "{kind}: a live secret must verify Alive, got {before:?}");
    let before_admin = p.verify_dead(&target, &handle, None).await;
    assert!(!is_dead(&before_admin), "{kind}: a live secret verified Dead admin-side: {before_admin:?}");
    p.retire(&target, &handle).await.unwrap_or_else(|e| panic!("{kind}: retire: {e}"));
    p.retire(&target, &handle).await.unwrap_or_else(|e| panic!("{kind}: retire is not idempotent: {e}"));
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
    let orphan = p.mint(&target, &old, &nonce).await.unwrap_or_else(|e| panic!("{kind}: mint: {e}"));
    assert_ne!(orphan.delivered.value.expose_secret(), old_value.expose_secret(), "{kind}: mint returned the old value");
    let n = p.cleanup_minted(&target, &old, &nonce, None).await.unwrap_or_else(|e| panic!("{kind}: cleanup_minted: {e}"));
    assert_eq!(n, 1, "{kind}: cleanup_minted should retire exactly the orphan");
    let v = p.verify_dead(&target, &orphan.handle, Some(&orphan.delivered.value)).await;
    assert!(is_dead(&v), "{kind}: orphan not dead after cleanup: {v:?}");
    let v = p.verify_dead(&target, &old, Some(&old_value)).await;
    assert!(matches!(v, Verdict::Alive(_)), "{kind}: orphan cleanup disturbed the old secret: {v:?}");

    // The resumed mint: kept, tested, and spared by cleanup.
    let kept = p.mint(&target, &old, &nonce).await.unwrap_or_else(|e| panic!("{kind}: mint: {e}"));
    let t = p.test(&target, &kept.delivered, &kept.handle).await;
    assert!(matches!(t, Verdict::Alive(_)), "{kind}: a freshly minted secret must test Alive: {t:?}");
    let n = p.cleanup_minted(&target, &old, &nonce, Some(&kept.handle)).await.unwrap();
    assert_eq!(n, 0, "{kind}: cleanup_minted retired the kept secret");
    let t = p.test(&target, &kept.delivered, &kept.handle).await;
    assert!(matches!(t, Verdict::Alive(_)), "{kind}: cleanup retired the kept secret: {t:?}");
    let v = p.verify_dead(&target, &old, Some(&old_value)).await;
    assert!(matches!(v, Verdict::Alive(_)), "{kind}: minting disturbed the old secret: {v:?}");
    p.retire(&target, &kept.handle).await.unwrap();
    p.retire(&target, &old).await.unwrap();
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
        p.retire(&target, &old).await.unwrap_or_else(|e| panic!("{kind}: retire: {e}"));
    }
    let v = p.verify_dead(&target, &old, Some(&old_value)).await;
    assert!(is_dead(&v), "{kind}: the old secret is not proven dead: {v:?}");
    let t = p.test(&target, &new, &new_handle).await;
    assert!(matches!(t, Verdict::Alive(_)), "{kind}: proving the old secret dead disturbed the new one: {t:?}");
}

/// The staging contract of a store: pending is invisible to consumers until
/// promoted; promotion is idempotent and keeps the old version readable; a
/// pending value of another nonce is never promoted.
pub async fn store_contract(s: &dyn Store, loc: &StoreLocation) {
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
    s.discard_pending(loc).await.unwrap();
    s.discard_pending(loc).await.unwrap();
    assert!(s.read_pending(loc).await.unwrap().is_none());
}
