//! Adaptive concurrency, end to end in process: the engine against the
//! `memory` system, whose own counters (requests at work now, the most at
//! once, requests refused with 429 for being busy) are the witness;
//! keysweep's counters are not consulted. No timing is asserted.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use keysweep::engine::{Engine, Quiet};
use keysweep::journal::Journal;
use keysweep::plan::{self, Selection};
use keysweep::playbook::model::HumanDuration;
use keysweep::playbook::Playbook;
use keysweep::provider::adaptive::{self, Concurrency};
use keysweep::providers::memory::config::Faults;
use keysweep::providers::memory::world::World;
use keysweep::report::Outcome;
use keysweep::secret::ExposeSecret;

const LATENCY: &str = "20ms";

fn faults() -> Faults {
    Faults { latency: Some(HumanDuration(Duration::from_millis(20))), ..Default::default() }
}

/// `n` memory tokens in realm `realm`, each delivered to the same system's
/// store; `limits` as YAML flow (`{}`: none declared).
fn playbook(dir: &Path, realm: &str, n: usize, limits: &str) -> Playbook {
    let mut yaml = format!(
        r#"version: 1
providers:
  mem: {{ kind: memory, realm: {realm}, faults: {{ latency: {LATENCY} }}, limits: {limits} }}
defaults:
  owner: platform
  verify: {{ attempts: 5, interval: 50ms }}
  deliver_to: [{{ provider: mem, path: "apps/{{id}}" }}]
credentials:
"#
    );
    for i in 0..n {
        yaml.push_str(&format!("  - {{ id: c{i:04}, provider: mem, target: {{ kind: memory_token, account: svc-{i:04} }} }}\n"));
    }
    let path = dir.join("playbook.yaml");
    std::fs::write(&path, yaml).unwrap();
    keysweep::playbook::loader::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// The estate: one live token per account, current in the store.
fn estate(realm: &str, n: usize) -> Arc<World> {
    World::reset(realm);
    let world = World::get(realm, &faults());
    for i in 0..n {
        let (id, value) = world.issue_token(&format!("svc-{i:04}"));
        world.put(&format!("apps/c{i:04}"), &value, BTreeMap::from([("token_id".to_string(), id)]));
        assert!(!value.expose_secret().is_empty());
    }
    world
}

/// Runs every credential with what `keysweep run` gives the engine when no
/// `--concurrency` is set.
async fn run(pb: &Playbook, journal: &Path) -> std::collections::HashMap<String, Outcome> {
    let plan = plan::build(pb, &Selection::parse(&[], &[]).unwrap());
    let needed = pb.providers.keys().cloned().collect();
    let per: Vec<(String, Concurrency)> = pb.providers.iter().map(|(n, e)| (n.clone(), Concurrency::of(e.config.spec()))).collect();
    let e = Arc::new(Engine {
        journal: Arc::new(Journal::open(journal).unwrap()),
        providers: keysweep::provider::registry::connect(pb, &needed).await.unwrap(),
        run_id: "run-1".into(),
        concurrency: adaptive::global(None, &per),
        provider_concurrency: BTreeMap::new(),
        observer: Arc::new(Quiet),
        stop: Default::default(),
        own_logins: Default::default(),
        claims_in: BTreeMap::new(),
    });
    let states = e.execute(&Arc::new(plan)).await.unwrap();
    states.into_iter().filter_map(|(id, s)| s.outcome.map(|o| (id, o))).collect()
}

fn rotated(out: &std::collections::HashMap<String, Outcome>) -> usize {
    out.values().filter(|o| o.name() == "rotated").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_settings_requests_in_flight_rise_above_the_old_default_of_8() {
    let dir = tempfile::tempdir().unwrap();
    let n = 300;
    let pb = playbook(dir.path(), "adaptive-rise", n, "{}");
    let world = estate("adaptive-rise", n);
    let out = run(&pb, &dir.path().join("journal.db")).await;
    assert_eq!(rotated(&out), n, "{:?}", out.values().find(|o| o.name() != "rotated"));
    let peak = world.peak_in_flight();
    eprintln!("most requests at work at once, as the system counted them: {peak}");
    assert!(peak > 8, "the system never had more than {peak} requests at work at once");
    assert!(peak <= adaptive::DEFAULT_CAP, "{peak} at once, above the default cap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backs_off_when_the_system_starts_answering_429() {
    let dir = tempfile::tempdir().unwrap();
    let n = 600;
    let busy_at = 6;
    let pb = playbook(dir.path(), "adaptive-429", n, "{}");
    let world = estate("adaptive-429", n);
    // Once the system has seen well over 8 at once, it starts refusing
    // whatever finds `busy_at` requests at work (429 with Retry-After).
    let switched = Arc::new(AtomicBool::new(false));
    let answered_at_switch = Arc::new(AtomicU64::new(0));
    let watcher = {
        let (world, switched, at) = (world.clone(), switched.clone(), answered_at_switch.clone());
        tokio::spawn(async move {
            while world.peak_in_flight() <= 3 * 8 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            at.store(world.request_count(), Ordering::SeqCst);
            world.limit_in_flight(Some(busy_at));
            switched.store(true, Ordering::SeqCst);
        })
    };
    let out = run(&pb, &dir.path().join("journal.db")).await;
    watcher.abort();
    assert!(switched.load(Ordering::SeqCst), "requests in flight never rose above 24 (peak {})", world.peak_in_flight());
    let answered = world.request_count() - answered_at_switch.load(Ordering::SeqCst);
    let refused = world.refused_busy();
    eprintln!("after the system started refusing: {answered} requests answered, {refused} refused with 429");
    let mut per: std::collections::HashMap<(&str, String), usize> = Default::default();
    for op in world.refused_log() {
        *per.entry((op.op, op.about)).or_default() += 1;
    }
    let mut worst: Vec<_> = per.into_iter().collect();
    worst.sort_by_key(|w| std::cmp::Reverse(w.1));
    eprintln!("most refusals of one operation on one object: {:?}", &worst[..worst.len().min(5)]);
    // Refusals fall on different requests: probing the limit that was too
    // much again at once after each halving (no hold) refused the same
    // requests over and over, as they came back from their retries (4 or 5
    // times, all their attempts, in every run).
    if let Some(((op, about), n)) = worst.first() {
        assert!(*n <= 2, "`{op}` on {about} was refused {n} times");
    }
    assert_eq!(rotated(&out), n, "{:?}", out.values().find(|o| o.name() != "rotated"));
    // Without backing off (the limit kept where it was), about a quarter of
    // the requests after the switch were refused and credentials failed;
    // backing off, refusals are the few probes above what the system allows.
    assert!(answered > 0);
    assert!(refused * 10 < answered + refused, "{refused} of {} requests refused after the switch", answered + refused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_concurrency_cap_is_never_exceeded_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let n = 120;
    let pb = playbook(dir.path(), "adaptive-cap", n, "{ concurrency: 5 }");
    let world = estate("adaptive-cap", n);
    let out = run(&pb, &dir.path().join("journal.db")).await;
    assert_eq!(rotated(&out), n);
    let peak = world.peak_in_flight();
    eprintln!("most requests at work at once with `concurrency: 5`: {peak}");
    assert!(peak <= 5, "{peak} requests at work at once, above the declared 5");
    assert!(peak > 1, "the cap was not used at all");
}
