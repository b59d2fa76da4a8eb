//! The engine's invariants, in process, against the `memory` system: a new
//! secret is stored before the system accepts it, the old one is retired only
//! after the new one passed its test and was promoted, an unknown verdict is
//! never taken for dead, and a crash at every journal record boundary resumes
//! to a correct end. The system's own request log and state are the
//! independent witness; keysweep's counters are not consulted.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use keysweep::engine::{Engine, Quiet};
use keysweep::journal::Journal;
use keysweep::plan::{self, Selection};
use keysweep::playbook::Playbook;
use keysweep::providers::memory::world::{Op, World};
use keysweep::report::Outcome;
use keysweep::secret::{ExposeSecret, SecretString};

/// A playbook of one token and one password in memory realm `realm`, each
/// delivered to the same memory system's store; `faults` as YAML flow.
fn playbook(dir: &Path, realm: &str, faults: &str) -> Playbook {
    let yaml = format!(
        r#"version: 1
providers:
  mem: {{ kind: memory, realm: {realm}, faults: {faults} }}
defaults:
  owner: platform
  verify: {{ attempts: 3, interval: 10ms }}
credentials:
  - {{ id: tok, provider: mem, target: {{ kind: memory_token, account: svc-tok }}, deliver_to: [{{ provider: mem, path: "apps/{{id}}" }}] }}
  - {{ id: pw, provider: mem, target: {{ kind: memory_password, account: svc-pw }}, deliver_to: [{{ provider: mem, path: "apps/{{id}}" }}] }}
"#
    );
    let path = dir.join("playbook.yaml");
    std::fs::write(&path, yaml).unwrap();
    keysweep::playbook::loader::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// The estate before the run: a live token and password, each current in the store.
struct Estate {
    world: Arc<World>,
    old_token: (String, SecretString),
    old_password: SecretString,
}

fn estate(realm: &str, faults: &keysweep::providers::memory::config::Faults) -> Estate {
    World::reset(realm);
    let world = World::get(realm, faults);
    let old_token = world.issue_token("svc-tok");
    world.put("apps/tok", &old_token.1, BTreeMap::from([("token_id".to_string(), old_token.0.clone())]));
    let old_password = world.create_account("svc-pw");
    world.put("apps/pw", &old_password, BTreeMap::from([("username".to_string(), "svc-pw".to_string())]));
    common::canary(old_token.1.expose_secret());
    common::canary(old_password.expose_secret());
    Estate { world, old_token, old_password }
}

async fn engine(pb: &Playbook, journal: Arc<Journal>) -> Arc<Engine> {
    let needed = pb.providers.keys().cloned().collect();
    Arc::new(Engine {
        journal,
        providers: keysweep::provider::registry::connect(pb, &needed).await.unwrap(),
        run_id: "run-1".into(),
        concurrency: 1,
        provider_concurrency: BTreeMap::new(),
        observer: Arc::new(Quiet),
        stop: Default::default(),
        own_logins: Default::default(),
        claims_in: BTreeMap::new(),
    })
}

async fn run(pb: &Playbook, journal: &Path) -> std::collections::HashMap<String, Outcome> {
    let plan = Arc::new(plan::build(pb, &Selection::parse(&[], &[]).unwrap()));
    let e = engine(pb, Arc::new(Journal::open(journal).unwrap())).await;
    let states = e.execute(&plan).await.unwrap();
    states.into_iter().filter_map(|(id, s)| s.outcome.map(|o| (id, o))).collect()
}

fn at(log: &[Op], op: &str, about: &str) -> Vec<usize> {
    log.iter().enumerate().filter(|(_, o)| o.op == op && o.about == about).map(|(i, _)| i).collect()
}

/// What the system itself says after a run: the old secrets refused, the
/// store's current values accepted, one live token for the account.
fn assert_rotated_in_the_system(e: &Estate) {
    let w = &e.world;
    assert!(!w.token_accepts(&e.old_token.0, e.old_token.1.expose_secret()), "the old token still works");
    assert!(!w.password_accepts("svc-pw", e.old_password.expose_secret()), "the old password still works");
    let s = w.lock();
    let tok = s.entries["apps/tok"].versions.last().unwrap().clone();
    let pw = s.entries["apps/pw"].versions.last().unwrap().clone();
    let live: Vec<String> = s.tokens.iter().filter(|(_, t)| t.account == "svc-tok" && t.revoked.is_none()).map(|(id, _)| id.clone()).collect();
    drop(s);
    let id = &tok.fields["token_id"];
    assert!(w.token_accepts(id, tok.value.expose_secret()), "the stored token does not work");
    assert!(w.password_accepts("svc-pw", pw.value.expose_secret()), "the stored password does not work");
    assert_eq!(live, vec![id.clone()], "exactly the stored token is live (no orphan, no lockout)");
    assert!(s_pending_free(w), "a pending value or claim was left behind");
}

fn s_pending_free(w: &World) -> bool {
    w.lock().entries.values().all(|e| e.pending.is_none() && e.claim.is_none())
}

#[tokio::test]
async fn stored_before_accepted_retired_after_tested_and_promoted() {
    let dir = tempfile::tempdir().unwrap();
    let pb = playbook(dir.path(), "order", "{}");
    let e = estate("order", &Default::default());
    let out = run(&pb, &dir.path().join("journal.db")).await;
    assert_eq!(out["tok"].name(), "rotated", "{:?}", out["tok"]);
    assert_eq!(out["pw"].name(), "rotated", "{:?}", out["pw"]);
    assert_rotated_in_the_system(&e);

    let log = e.world.log();
    // A generated password: staged in the store before the system accepts it.
    let stage = at(&log, "memory.store.stage", "apps/pw");
    let apply = at(&log, "memory.apply", "svc-pw");
    assert!(!stage.is_empty() && !apply.is_empty() && stage[0] < apply[0], "password applied before it was stored: {log:?}");
    // A minted token: minted after the claim recorded the mint, staged before the
    // new token is tested, promoted before the old one is revoked.
    let claim = at(&log, "memory.store.claim", "apps/tok");
    let mint = at(&log, "memory.mint", "svc-tok");
    let stage = at(&log, "memory.store.stage", "apps/tok");
    let promote = at(&log, "memory.store.promote", "apps/tok");
    let revoke = at(&log, "memory.revoke", &e.old_token.0);
    assert!(claim[0] < mint[0] && mint[0] < stage[0], "{log:?}");
    let new_id = e.world.lock().entries["apps/tok"].versions.last().unwrap().fields["token_id"].clone();
    let tested = at(&log, "memory.login", &new_id);
    assert!(!tested.is_empty() && tested[0] < revoke[0], "old token revoked before the new one was tested: {log:?}");
    assert!(promote[0] < revoke[0], "old token revoked before the new one was promoted: {log:?}");
    // The old password is retired by the new one; its death is proven by a refused login.
    assert!(out["pw"].detail().contains("refused"), "{:?}", out["pw"]);
}

#[tokio::test]
async fn unknown_is_never_dead() {
    // Every probe is an ambiguous refusal: nothing can be proven either way.
    let dir = tempfile::tempdir().unwrap();
    let faults = keysweep::providers::memory::config::Faults { ambiguous: Some(1.0), ..Default::default() };
    let pb = playbook(dir.path(), "ambiguous", "{ ambiguous: 1.0 }");
    let e = estate("ambiguous", &faults);
    let out = run(&pb, &dir.path().join("journal.db")).await;
    for id in ["tok", "pw"] {
        assert!(!out[id].is_verified(), "{id}: an ambiguous answer was taken for proof: {:?}", out[id]);
    }
    // Nothing was retired on an unproven test: the old secrets still work.
    assert!(e.world.token_accepts(&e.old_token.0, e.old_token.1.expose_secret()), "old token retired without a passed test");
}

#[tokio::test]
async fn a_revocation_that_has_not_reached_every_node_is_unverified_not_dead() {
    let dir = tempfile::tempdir().unwrap();
    let faults = keysweep::providers::memory::config::Faults {
        revoke_lag: Some(keysweep::playbook::model::HumanDuration(Duration::from_secs(30))),
        ..Default::default()
    };
    let pb = playbook(dir.path(), "lag", "{ revoke_lag: 30s }");
    let e = estate("lag", &faults);
    let out = run(&pb, &dir.path().join("journal.db")).await;
    assert_eq!(out["tok"].name(), "unverified", "{:?}", out["tok"]);
    assert!(e.world.token_accepts(&e.old_token.0, e.old_token.1.expose_secret()), "the lagging revocation is still live, as the report says");
}

#[tokio::test]
async fn lost_answers_and_temporary_errors_end_correctly() {
    let dir = tempfile::tempdir().unwrap();
    let faults = keysweep::providers::memory::config::Faults { temporary: Some(0.2), lost_after_act: Some(0.2), seed: Some(7), ..Default::default() };
    let pb = playbook(dir.path(), "flaky", "{ temporary: 0.2, lost_after_act: 0.2, seed: 7 }");
    let e = estate("flaky", &faults);
    let journal = dir.path().join("journal.db");
    // The faults may end a first run in failure; a second run finishes it, and
    // never with a lost secret or a lockout.
    let mut out = run(&pb, &journal).await;
    for _ in 0..3 {
        if out.values().all(Outcome::is_verified) {
            break;
        }
        let _ = std::fs::remove_file(&journal);
        out = run(&pb, &journal).await;
    }
    assert!(out.values().all(Outcome::is_verified), "{out:?}");
    assert_rotated_in_the_system(&e);
}

/// Every record boundary of both lifecycles: the run is dropped right after
/// the record is durable (as `kill -9` would leave it), then resumed.
#[tokio::test]
async fn a_crash_at_every_step_boundary_resumes_to_a_correct_end() {
    let points = [
        ("stage", "started"),
        ("stage", "done"),
        ("apply", "started"),
        ("apply", "done"),
        ("test", "done"),
        ("promote", "started"),
        ("promote", "done"),
        ("retire", "started"),
        ("retire", "done"),
    ];
    for (i, (step, status)) in points.iter().enumerate() {
        for n in [1, 2] {
            let realm = format!("crash-{i}-{n}");
            let dir = tempfile::tempdir().unwrap();
            let pb = playbook(dir.path(), &realm, "{}");
            let e = estate(&realm, &Default::default());
            let journal = dir.path().join("journal.db");
            let plan = Arc::new(plan::build(&pb, &Selection::parse(&[], &[]).unwrap()));
            let (j, crashed) = Journal::open_crashing(&journal, step, status, n).unwrap();
            let eng = engine(&pb, Arc::new(j)).await;
            let reached = tokio::select! {
                r = eng.execute(&plan) => { r.unwrap(); false }
                _ = async { while !crashed.load(Ordering::SeqCst) { tokio::time::sleep(Duration::from_millis(1)).await } } => true,
            };
            drop(eng);
            // `apply` is the password's only; the token has one `stage` record each.
            if !reached {
                assert!(*step == "apply" && n == 2, "{step}:{status}:{n} was never reached");
                continue;
            }
            let out = run(&pb, &journal).await;
            for id in ["tok", "pw"] {
                assert_eq!(out[id].name(), "rotated", "after a crash at {step}:{status}:{n}: {id}: {:?}", out[id]);
            }
            assert_rotated_in_the_system(&e);
        }
    }
}

/// A playbook of one manual token: no API re-issues it, a person does.
fn manual_playbook(dir: &Path, realm: &str) -> Playbook {
    let yaml = format!(
        r#"version: 1
providers:
  mem: {{ kind: memory, realm: {realm} }}
defaults:
  owner: platform
  verify: {{ attempts: 2, interval: 10ms }}
credentials:
  - id: tok
    provider: mem
    target: {{ kind: memory_token, account: svc-tok }}
    deliver_to: [{{ provider: mem, path: "apps/{{id}}" }}]
    manual: "Admin console › Tokens › Create token for svc-tok"
"#
    );
    let path = dir.join("manual.yaml");
    std::fs::write(&path, yaml).unwrap();
    keysweep::playbook::loader::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// What `keysweep supply` does (its staging step, without the prompt).
async fn supply(pb: &Playbook, value: &SecretString) {
    let e = engine(pb, Arc::new(Journal::open(&tempfile::tempdir().unwrap().path().join("j.db")).unwrap())).await;
    let loc = pb.credentials[0].deliver_to[0].clone();
    let v = SecretString::from(value.expose_secret().to_string());
    keysweep::cli::supply::stage(e.providers.store("mem").unwrap(), &loc, "tok", v).await.unwrap().unwrap();
}

fn live_tokens(w: &World, account: &str) -> Vec<String> {
    w.lock().tokens.iter().filter(|(_, t)| t.account == account && t.revoked.is_none()).map(|(id, _)| id.clone()).collect()
}

#[tokio::test]
async fn a_manual_credential_waits_for_a_person_then_is_tested_revoked_and_proven_dead() {
    let dir = tempfile::tempdir().unwrap();
    let pb = manual_playbook(dir.path(), "manual");
    let e = estate("manual", &Default::default());
    let w = &e.world;

    // Run 1: nothing re-issues it; the report says what a person must do, and nothing changed.
    let out = run(&pb, &dir.path().join("j1.db")).await;
    let Outcome::AwaitingHuman { instructions, .. } = &out["tok"] else { panic!("{:?}", out["tok"]) };
    assert!(instructions.contains("Create token for svc-tok") && instructions.contains("keysweep supply"), "{instructions}");
    assert_eq!(live_tokens(w, "svc-tok"), vec![e.old_token.0.clone()], "nothing was minted or revoked");
    assert!(s_pending_free(w));

    // The person supplies the old value by mistake: refused, nothing revoked.
    supply(&pb, &e.old_token.1).await;
    let out = run(&pb, &dir.path().join("j2.db")).await;
    assert_eq!(out["tok"].name(), "failed", "{:?}", out["tok"]);
    assert!(out["tok"].detail().contains("is the secret in service"), "{}", out["tok"].detail());
    assert!(w.token_accepts(&e.old_token.0, e.old_token.1.expose_secret()));

    // A token of another (say, more privileged) account: refused, nothing revoked.
    let (_, admin) = w.issue_token("admin");
    common::canary(admin.expose_secret());
    supply(&pb, &admin).await;
    let out = run(&pb, &dir.path().join("j3.db")).await;
    assert_eq!(out["tok"].name(), "failed", "{:?}", out["tok"]);
    assert!(out["tok"].detail().contains("not `svc-tok`"), "{}", out["tok"].detail());
    assert!(w.token_accepts(&e.old_token.0, e.old_token.1.expose_secret()));

    // The person re-issues it in the "UI" and supplies it: tested, promoted, old revoked and proven dead.
    let (new_id, new_value) = w.issue_token("svc-tok");
    common::canary(new_value.expose_secret());
    supply(&pb, &new_value).await;
    let out = run(&pb, &dir.path().join("j4.db")).await;
    assert_eq!(out["tok"].name(), "rotated", "{:?}", out["tok"]);
    assert!(!w.token_accepts(&e.old_token.0, e.old_token.1.expose_secret()), "the old token still works");
    assert!(w.token_accepts(&new_id, new_value.expose_secret()));
    assert_eq!(live_tokens(w, "svc-tok"), vec![new_id.clone()]);
    let cur = w.lock().entries["apps/tok"].versions.last().unwrap().clone();
    assert_eq!(cur.value.expose_secret(), new_value.expose_secret(), "consumers read the new value");
    assert_eq!(cur.fields["token_id"], new_id, "the store names the new token, for the next rotation");
    assert!(s_pending_free(w));
    // The test came before the revocation of the old token, in the system's own log.
    let log = w.log();
    let test = at(&log, "memory.login", &new_id);
    let revoke = at(&log, "memory.revoke", &e.old_token.0);
    assert!(!test.is_empty() && !revoke.is_empty() && test[0] < revoke[0], "test {test:?} before revoke {revoke:?}");

    // The next run asks a person again (the new token is now the old one).
    let out = run(&pb, &dir.path().join("j5.db")).await;
    assert_eq!(out["tok"].name(), "awaiting_human", "{:?}", out["tok"]);
}

#[tokio::test]
async fn a_supplied_value_the_system_refuses_is_discarded_and_the_old_one_kept() {
    let dir = tempfile::tempdir().unwrap();
    let pb = manual_playbook(dir.path(), "manual-bad");
    let e = estate("manual-bad", &Default::default());
    let junk = SecretString::from("not-a-token-anyone-issued".to_string());
    supply(&pb, &junk).await;
    let out = run(&pb, &dir.path().join("j.db")).await;
    assert_eq!(out["tok"].name(), "failed", "{:?}", out["tok"]);
    assert!(e.world.token_accepts(&e.old_token.0, e.old_token.1.expose_secret()), "the old token must stay in service");
    let cur = e.world.lock().entries["apps/tok"].versions.last().unwrap().clone();
    assert_eq!(cur.value.expose_secret(), e.old_token.1.expose_secret(), "consumers still read the old value");
}
