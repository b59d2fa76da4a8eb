//! The shared conformance suite, run by the in-process `memory` provider for
//! both its kinds and for its store, like every other adapter.

use std::sync::Arc;

use async_trait::async_trait;
use keysweep::playbook::model::Target;
use keysweep::playbook::StoreLocation;
use keysweep::provider::conformance::{self, Fixture};
use keysweep::provider::{Handle, Provider};
use keysweep::providers::memory::config::{Faults, MemoryPasswordTarget, MemoryProviderConfig, MemoryTokenTarget};
use keysweep::providers::memory::MemoryProvider;
use keysweep::secret::SecretString;

fn provider(realm: &str, faults: Faults) -> MemoryProvider {
    MemoryProvider::new("mem", &MemoryProviderConfig { realm: Some(realm.into()), faults, limits: Default::default() })
}

/// A system that refuses every request with a temporary error, tried once.
fn down(realm: &str) -> Arc<dyn Provider> {
    let limits = keysweep::playbook::model::Limits { max_attempts: Some(1), ..Default::default() };
    Arc::new(MemoryProvider::new(
        "mem",
        &MemoryProviderConfig { realm: Some(format!("{realm}-down")), faults: Faults { temporary: Some(1.0), ..Default::default() }, limits },
    ))
}

struct Tokens(&'static str);
#[async_trait]
impl Fixture for Tokens {
    async fn create(&self) -> (Target, Handle, SecretString) {
        let w = provider(self.0, Faults::default()).world().clone();
        let account = format!("svc-{}", uuid::Uuid::new_v4().simple());
        let (id, value) = w.issue_token(&account);
        (Target::MemoryToken(MemoryTokenTarget { account, token_id: Some(id.clone()) }), Handle::from([("token_id".to_string(), id)]), value)
    }
    async fn unreachable(&self) -> Option<Arc<dyn Provider>> {
        Some(down(self.0))
    }
}

struct Passwords(&'static str);
#[async_trait]
impl Fixture for Passwords {
    async fn create(&self) -> (Target, Handle, SecretString) {
        let w = provider(self.0, Faults::default()).world().clone();
        let account = format!("svc-{}", uuid::Uuid::new_v4().simple());
        let value = w.create_account(&account);
        let target = Target::MemoryPassword(MemoryPasswordTarget { account: account.clone(), generate: Default::default() });
        (target, Handle::from([("username".to_string(), account)]), value)
    }
    async fn unreachable(&self) -> Option<Arc<dyn Provider>> {
        Some(down(self.0))
    }
}

#[tokio::test]
async fn memory_token_conformance() {
    let p = provider("conf-tokens", Faults::default());
    conformance::run(&p, &Tokens("conf-tokens"), "memory_token").await;
}

#[tokio::test]
async fn memory_password_conformance() {
    let p = provider("conf-passwords", Faults::default());
    conformance::run(&p, &Passwords("conf-passwords"), "memory_password").await;
}

#[tokio::test]
async fn memory_store_conformance() {
    let p = provider("conf-store", Faults::default());
    let loc = StoreLocation { provider: "mem".into(), mount: String::new(), path: "store/one".into(), field: "value".into() };
    conformance::store_contract(p.as_store().unwrap(), &loc, p.kind()).await;
}

#[tokio::test]
async fn a_server_rate_limit_is_retried_within_the_bound_and_counted() {
    // 5 requests/s at the server, 30 inventory calls: the limits layer waits out
    // each 429's Retry-After; every call succeeds within its attempts.
    let p = provider("rate", Faults { server_rate: Some(5), ..Default::default() });
    let started = std::time::Instant::now();
    for _ in 0..12 {
        p.inventory().await.unwrap();
    }
    assert!(started.elapsed() >= std::time::Duration::from_secs(2), "12 calls at 5/s took {:?}", started.elapsed());
    assert_eq!(p.world().log().iter().filter(|o| o.op == "memory.inventory").count(), 12, "each call answered once");
}
