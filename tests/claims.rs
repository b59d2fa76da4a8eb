//! The store remembers what the journal may forget: each credential's claim
//! (a check-and-set lease kept beside its pending value in OpenBao) lets any
//! later run, on any machine and with or without the journal, tell a
//! half-finished rotation from a fresh one, finish it instead of undoing it,
//! retire the orphans of a mint whose answer was lost, and keep two runs off
//! one credential. Every check is made from a separate client.

mod common;

use std::process::Stdio;

use common::*;
use serde_json::{json, Value};

/// Live tokens keysweep minted for credential `id` in any run (their nonce
/// ends in `/<id>`).
fn live_minted_for(b: &Bao, id: &str) -> usize {
    let (_, l) = b.call("LIST", "auth/token/accessors", None);
    let mut n = 0;
    for a in l["data"]["keys"].as_array().cloned().unwrap_or_default() {
        let (s, d) = b.call("POST", "auth/token/lookup-accessor", Some(json!({ "accessor": a })));
        if s == 200 && d["data"]["meta"]["keysweep_nonce"].as_str().is_some_and(|n| n.ends_with(&format!("/{id}"))) {
            n += 1;
        }
    }
    n
}

fn run(state: &std::path::Path, pb: &std::path::Path) -> std::process::Output {
    keysweep(state).args(["run", pb.to_str().unwrap(), "--concurrency", "4"]).output().unwrap()
}

fn text(o: &std::process::Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn outcome<'a>(r: &'a Value, id: &str) -> &'a Value {
    r["rows"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap_or_else(|| panic!("{id} not in report: {r}"))
}

/// A crash right after a promotion, then the state directory lost: the next
/// run (a new run id, no journal) finds the promoted value by its nonce,
/// finishes that rotation (retires the original) and rotates nothing twice.
#[test]
fn crash_after_promote_with_journal_lost_is_finished_not_undone() {
    let b = bao();
    for kinds in [(1, 0, 0), (0, 1, 0), (0, 0, 1)] {
        let prefix = format!("clp{}{}{}", kinds.0, kinds.1, kinds.2);
        let dir = tempfile::tempdir().unwrap();
        let estate = Estate::seed(b, &prefix, kinds.0, kinds.1, kinds.2, false);
        let pb = estate.write(dir.path());
        let state = dir.path().join("state");
        run_until_crash(keysweep(&state), &pb, "promoted:reached:1");
        // The crash left the store holding the new value and the claim.
        std::fs::remove_dir_all(&state).unwrap();
        let out = run(&state, &pb);
        assert_eq!(out.status.code(), Some(0), "{prefix}: {}", text(&out));
        let r = report_json(&state);
        assert_eq!(r["totals"]["rotated"], 1, "{prefix}: {}", r["totals"]);
        estate.assert_all_correct(b, &prefix);
        for (id, _) in &estate.tokens {
            assert_eq!(live_minted_for(b, id), 1, "{prefix}: {id}: minted tokens alive");
        }
    }
}

fn estate_ids(e: &Estate) -> Vec<String> {
    e.tokens.iter().map(|t| t.0.clone()).chain(e.secret_ids.iter().map(|s| s.0.clone())).chain(e.kv.iter().map(|k| k.0.clone())).collect()
}

/// The server minted, the answer never arrived (the process died at that
/// instant), and the journal is gone: a later run finds the orphan by the
/// nonce its claim records and retires it; exactly one minted secret lives.
#[test]
fn orphan_of_a_lost_mint_is_retired_by_any_later_run() {
    let b = bao();
    for kinds in [(1, 0), (0, 1)] {
        let prefix = format!("clm{}{}", kinds.0, kinds.1);
        let dir = tempfile::tempdir().unwrap();
        let estate = Estate::seed(b, &prefix, kinds.0, kinds.1, 0, false);
        let pb = estate.write(dir.path());
        let state = dir.path().join("state");
        run_until_crash(keysweep(&state), &pb, "mint:reached:1");
        if let Some((id, _)) = estate.tokens.first() {
            assert_eq!(live_minted_for(b, id), 1, "the crash should leave one orphan token");
        }
        // `plan` shows what the abandoned run left behind.
        let plan = keysweep(&state).args(["plan", pb.to_str().unwrap()]).output().unwrap();
        assert!(text(&plan).contains(&format!("{prefix}/")), "plan does not name the abandoned entry: {}", text(&plan));
        // `discover` names the orphan as keysweep's, with its run and credential.
        let id = estate_ids(&estate)[0].clone();
        let d = keysweep(&state).args(["discover", pb.to_str().unwrap(), "--format", "json"]).output().unwrap();
        let dj: Value = serde_json::from_slice(&d.stdout).unwrap_or(Value::Null);
        let orphan = dj["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|f| f["detail"].as_str().is_some_and(|t| t.contains("an orphan keysweep minted") && t.contains(&format!("credential `{id}`"))));
        assert!(orphan, "{prefix}: discover does not name the orphan of {id}: {}", String::from_utf8_lossy(&d.stdout));
        std::fs::remove_dir_all(&state).unwrap();
        let out = run(&state, &pb);
        assert_eq!(out.status.code(), Some(0), "{prefix}: {}", text(&out));
        estate.assert_all_correct(b, &prefix);
        for (id, _) in &estate.tokens {
            assert_eq!(live_minted_for(b, id), 1, "{prefix}: {id}: orphan left alive");
        }
    }
}

fn claim_json(nonce: &str, host: &str, lease: chrono::DateTime<chrono::Utc>, phase: &str, old: Value) -> String {
    json!({ "nonce": nonce, "holder": format!("run `{nonce}` on {host} (pid 1)"), "lease_until": lease.to_rfc3339(), "phase": phase, "old": old, "host": host, "pid": 1 })
        .to_string()
}

/// A live claim by a run on another machine makes the credential a gap with
/// that reason, and nothing changes; once its lease has run out, a run takes
/// the credential over.
#[test]
fn live_claim_of_another_machine_is_a_gap_until_its_lease_ends() {
    let b = bao();
    let prefix = "cll";
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::seed(b, prefix, 1, 0, 1, false);
    let pb = estate.write(dir.path());
    let (tok_id, tok) = estate.tokens[0].clone();
    let (kv_id, kv_path, kv_old) = estate.kv[0].clone();
    let tok_pending = format!("keysweep-pending/{prefix}/tokens/{tok_id}");
    let kv_pending = format!("keysweep-pending/{kv_path}");
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    for (p, id) in [(&tok_pending, &tok_id), (&kv_pending, &kv_id)] {
        b.kv_put(p, json!({ "keysweep_claim": claim_json(&format!("otherrun/{id}"), "elsewhere.example", later, "claimed", json!({})) }));
    }
    let state = dir.path().join("state");
    let out = run(&state, &pb);
    assert_ne!(out.status.code(), Some(0), "a gap must not exit 0: {}", text(&out));
    let r = report_json(&state);
    assert_eq!(r["totals"]["rotated"], 0, "{}", r["totals"]);
    for id in [&tok_id, &kv_id] {
        let o = outcome(&r, id);
        assert_eq!(o["outcome"], "failed", "{o}");
        let d = o["reason"].as_str().unwrap_or_default().to_string();
        assert!(d.contains("held by run `otherrun/") && d.contains("elsewhere.example"), "{o}");
    }
    // Nothing changed: the old token works, the KV secret is at version 1 and
    // the other run's claims are untouched.
    assert!(b.token_works(&tok));
    assert_eq!(b.kv_meta(&kv_path).unwrap()["current_version"], 1);
    assert_eq!(b.kv_get(&kv_path).unwrap()["value"], kv_old.as_str());
    for p in [&tok_pending, &kv_pending] {
        assert!(b.kv_get(p).unwrap()["keysweep_claim"].as_str().unwrap().contains("otherrun/"));
    }

    // The other run's lease runs out: the next run settles and rotates.
    let past = chrono::Utc::now() - chrono::Duration::minutes(1);
    for (p, id) in [(&tok_pending, &tok_id), (&kv_pending, &kv_id)] {
        b.kv_put(p, json!({ "keysweep_claim": claim_json(&format!("otherrun/{id}"), "elsewhere.example", past, "claimed", json!({})) }));
    }
    std::fs::remove_dir_all(&state).unwrap();
    let out = run(&state, &pb);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    estate.assert_all_correct(b, prefix);
}

/// Whatever a store's record says, the secret the store holds as current is
/// never retired: an abandoned claim that names the secret in service as
/// "old" ends in a failure, and consumers keep working.
#[test]
fn never_retires_the_secret_the_store_says_is_current() {
    let b = bao();
    let prefix = "clg";
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::seed(b, prefix, 1, 0, 0, false);
    let pb = estate.write(dir.path());
    let (id, tok) = estate.tokens[0].clone();
    let path = format!("{prefix}/tokens/{id}");
    let cur = b.kv_get(&path).unwrap();
    let acc = cur["accessor"].as_str().unwrap().to_string();
    // The store says a run `ghost` promoted the current value, and its
    // (garbled) claim names that same secret as the one to retire.
    b.kv_put(&path, json!({ "value": tok, "accessor": acc, "keysweep_nonce": format!("ghost/{id}") }));
    let past = chrono::Utc::now() - chrono::Duration::minutes(5);
    b.kv_put(
        &format!("keysweep-pending/{path}"),
        json!({ "keysweep_claim": claim_json(&format!("ghost/{id}"), "elsewhere.example", past, "promoted", json!({ "accessor": acc })) }),
    );
    let state = dir.path().join("state");
    let out = run(&state, &pb);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    let r = report_json(&state);
    let o = outcome(&r, &id);
    assert_eq!(o["outcome"], "failed", "{o}");
    assert!(o.to_string().contains("in service"), "{o}");
    assert!(b.token_works(&tok), "the token consumers read was retired");
}

/// Two runs with separate state directories (two machines) over one estate
/// at the same instant: no credential is worked by both at once. Every one
/// ends correct, each rotation is complete, and a credential one run found
/// held by the other is reported as a gap naming that run.
#[test]
fn two_runs_on_separate_state_dirs_never_work_one_credential_at_once() {
    let b = bao();
    let prefix = "clc";
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::seed(b, prefix, 8, 4, 12, false);
    let pb = estate.write(dir.path());
    let states = [dir.path().join("a"), dir.path().join("b")];
    let children: Vec<_> = states
        .iter()
        .map(|s| keysweep(s).args(["run", pb.to_str().unwrap(), "--concurrency", "8"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap())
        .collect();
    let outs: Vec<_> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    for o in &outs {
        eprintln!("---- run stderr:\n{}", String::from_utf8_lossy(&o.stderr));
    }
    let reports: Vec<Value> = states.iter().map(|s| report_json(s)).collect();
    let ids = estate_ids(&estate);
    let mut gaps = 0;
    for id in &ids {
        let mut rotated = 0;
        for r in &reports {
            let o = outcome(r, id);
            match o["outcome"].as_str().unwrap() {
                "rotated" => rotated += 1,
                "failed" => {
                    assert!(
                        o.to_string().contains("held by run"),
                        "{id}: failed for another reason: {o}\nboth: {}\n{}",
                        outcome(&reports[0], id),
                        outcome(&reports[1], id)
                    );
                    gaps += 1;
                }
                other => panic!("{id}: {other}: {o}"),
            }
        }
        assert!(rotated >= 1, "{id}: rotated by neither run");
        // Sequential rotations are fine, interleaved ones are not: the KV
        // secret has one version per completed rotation, all but the current destroyed.
        if let Some((_, path, _)) = estate.kv.iter().find(|k| &k.0 == id) {
            let meta = b.kv_meta(path).unwrap();
            let cur = meta["current_version"].as_u64().unwrap();
            assert_eq!(cur, 1 + rotated as u64, "{id}: {rotated} rotation(s) reported, version {cur}");
            for v in 1..cur {
                assert_eq!(meta["versions"][v.to_string()]["destroyed"], true, "{id}: version {v} left readable");
            }
        }
    }
    for (i, o) in outs.iter().enumerate() {
        let want_zero = reports[i]["totals"]["rotated"] == ids.len();
        assert_eq!(o.status.code() == Some(0), want_zero, "run {i}: {}", String::from_utf8_lossy(&o.stderr));
    }
    eprintln!("two concurrent runs over {} credentials: {gaps} held-by gaps", ids.len());
    // Exactly one live secret per credential, old ones dead (independent client).
    for (id, old) in &estate.tokens {
        assert!(!b.token_works(old), "{id}: old token alive");
        assert_eq!(live_minted_for(b, id), 1, "{id}: minted tokens alive");
        let cur = b.kv_get(&format!("{prefix}/tokens/{id}")).unwrap();
        assert!(b.token_works(cur["value"].as_str().unwrap()), "{id}: consumers locked out");
    }
    for (id, role, role_id, old) in &estate.secret_ids {
        assert!(!b.secret_id_works(role_id, old), "{id}: old secret-id alive");
        let (_, l) = b.call("LIST", &format!("auth/approle/role/{role}/secret-id"), None);
        assert_eq!(l["data"]["keys"].as_array().map(|a| a.len()), Some(1), "{id}: live secret-ids");
        let cur = b.kv_get(&format!("{prefix}/approle/{id}")).unwrap();
        assert!(b.secret_id_works(role_id, cur["value"].as_str().unwrap()), "{id}: consumers locked out");
    }
    for (id, path, _) in &estate.kv {
        assert!(b.kv_get(&format!("keysweep-pending/{path}")).is_none(), "{id}: claim or pending left");
    }
}
