//! What one credential's lifecycle has already read or written, so that a
//! later step of the same lifecycle does not ask a store again for what an
//! earlier step just read or wrote (issue #12: the store was re-read at
//! every step).
//!
//! The memo lives exactly as long as one lifecycle: the engine opens it
//! with [`scope`] around each credential's work, and a store consults it with
//! [`get`] / fills it with [`put`] and [`absent`]. Outside a scope (`plan`,
//! `discover`, the conformance suite) there is none, and every read goes to
//! the server. It is never written to disk: a resumed run (after `kill -9`,
//! or by another machine) starts with an empty memo and reads everything
//! again, so correctness after a crash never depends on it.
//!
//! What may be answered from it, and why that is safe, is the caller's
//! business and documented there; the rules the stores keep are:
//! - every write built from a remembered read is a check-and-set against the
//!   version remembered (Vault KV `cas`, Secrets Manager `RemoveFromVersionId`),
//!   so a stale memo makes the write fail instead of overwriting anything; on
//!   such a failure the entry is forgotten and the store reads afresh;
//! - the engine's retire-time safety check ("is the old secret still the one
//!   in service?") is always read from the server, inside [`fresh`]: a hand
//!   edit between promote and retire must be seen.
//!
//! Values are held only as `secrecy::SecretBox<String>`: redacted in `Debug`
//! and zeroized (the whole buffer) when the entry is replaced or the
//! lifecycle ends. Nothing here is ever logged.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use secrecy::{ExposeSecret, SecretBox};

/// What the lifecycle knows about one place in a store.
pub enum Slot {
    /// The place holds `body` at `version` (its serialized value: a KV
    /// entry's data as JSON, a Secrets Manager version's SecretString), with
    /// the labels the store gave it (Secrets Manager staging labels).
    Held { version: String, labels: Vec<String>, body: SecretBox<String> },
    /// The place holds nothing; `version` is what a check-and-set write must
    /// name to create it (KV: the metadata's current version, `0` if none).
    Absent { version: String },
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Slot::Held { version, labels, .. } => {
                f.debug_struct("Held").field("version", version).field("labels", labels).field("body", &"[REDACTED]").finish()
            }
            Slot::Absent { version } => f.debug_struct("Absent").field("version", version).finish(),
        }
    }
}

/// The view of a slot a reader gets: borrowed, so a value is never copied
/// out of its zeroizing box except by the reader who parses it.
pub enum View<'a> {
    Held { version: &'a str, labels: &'a [String], body: &'a str },
    Absent { version: &'a str },
}

#[derive(Clone, Default)]
pub struct Memo {
    slots: Arc<Mutex<HashMap<String, Slot>>>,
    /// Reads inside [`fresh`] skip the memo (and still fill it).
    fresh: bool,
}

tokio::task_local! {
    static MEMO: Memo;
}

/// Runs `f` (one credential's lifecycle) with an empty memo of its own.
pub async fn scope<F: Future>(f: F) -> F::Output {
    MEMO.scope(Memo::default(), f).await
}

/// Runs `f` so that its reads go to the server whatever the memo holds;
/// what they find still updates the memo.
pub async fn fresh<F: Future>(f: F) -> F::Output {
    match MEMO.try_with(|m| Memo { slots: m.slots.clone(), fresh: true }) {
        Ok(m) => MEMO.scope(m, f).await,
        Err(_) => f.await,
    }
}

/// Whether a memo is open (a lifecycle is running) and may answer reads.
pub fn active() -> bool {
    MEMO.try_with(|m| !m.fresh).unwrap_or(false)
}

/// What the memo knows about `key`, handed to `read`; `None` when there is no
/// memo, reads must be fresh, or nothing is known.
pub fn get<R>(key: &str, read: impl FnOnce(View<'_>) -> R) -> Option<R> {
    MEMO.try_with(|m| {
        if m.fresh {
            return None;
        }
        let slots = m.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.get(key).map(|s| match s {
            Slot::Held { version, labels, body } => read(View::Held { version, labels, body: body.expose_secret() }),
            Slot::Absent { version } => read(View::Absent { version }),
        })
    })
    .ok()
    .flatten()
}

fn set(key: &str, slot: Slot) {
    let _ = MEMO.try_with(|m| {
        m.slots.lock().unwrap_or_else(|e| e.into_inner()).insert(key.to_string(), slot);
    });
}

/// Remembers that `key` holds `body` at `version` (the body moves into a
/// zeroizing box; the slot it replaces is zeroized).
pub fn put(key: &str, version: impl Into<String>, labels: Vec<String>, body: String) {
    if !in_scope() {
        drop(zeroize_string(body));
        return;
    }
    set(key, Slot::Held { version: version.into(), labels, body: SecretBox::new(Box::new(body)) });
}

/// Remembers that `key` holds nothing (a write creating it names `version`).
pub fn absent(key: &str, version: impl Into<String>) {
    set(key, Slot::Absent { version: version.into() });
}

/// Forgets `key` (after a write whose outcome is not known, or a refused
/// check-and-set): the next read goes to the server.
pub fn forget(key: &str) {
    let _ = MEMO.try_with(|m| {
        m.slots.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    });
}

/// Forgets every key that starts with `prefix`.
pub fn forget_prefix(prefix: &str) {
    let _ = MEMO.try_with(|m| {
        m.slots.lock().unwrap_or_else(|e| e.into_inner()).retain(|k, _| !k.starts_with(prefix));
    });
}

fn in_scope() -> bool {
    MEMO.try_with(|_| ()).is_ok()
}

/// A value that is not kept is still wiped.
fn zeroize_string(s: String) -> SecretBox<String> {
    SecretBox::new(Box::new(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_memo_lives_for_one_scope_only() {
        put("k", "1", vec![], "outside".into());
        assert!(get("k", |_| ()).is_none(), "no memo outside a lifecycle");
        scope(async {
            assert!(active());
            put("k", "3", vec!["AWSCURRENT".into()], r#"{"value":"s3cr3t-memo-value"}"#.into());
            let v = get("k", |v| match v {
                View::Held { version, labels, body } => (version.to_string(), labels.to_vec(), body.contains("s3cr3t")),
                View::Absent { .. } => unreachable!(),
            });
            assert_eq!(v, Some(("3".to_string(), vec!["AWSCURRENT".to_string()], true)));
            // A fresh read skips it, and what it finds is remembered.
            fresh(async {
                assert!(!active());
                assert!(get("k", |_| ()).is_none());
                absent("k", "4");
            })
            .await;
            assert!(matches!(get("k", |v| matches!(v, View::Absent { version: "4" })), Some(true)));
            forget("k");
            assert!(get("k", |_| ()).is_none());
            // Another lifecycle (a concurrent credential) has its own memo.
            put("shared", "1", vec![], "mine".into());
            scope(async { assert!(get("shared", |_| ()).is_none()) }).await;
            assert!(get("shared", |_| ()).is_some());
        })
        .await;
        assert!(get("shared", |_| ()).is_none(), "gone with its lifecycle");
    }

    #[test]
    fn debug_never_shows_a_value() {
        let s = Slot::Held { version: "2".into(), labels: vec![], body: SecretBox::new(Box::new("s3cr3t-memo-value".to_string())) };
        let d = format!("{s:?}");
        assert!(!d.contains("s3cr3t") && d.contains("REDACTED"), "{d}");
    }
}
