//! A run killed at any instant resumes to a correct end: the real binary is
//! killed with SIGKILL mid-run (and aborted at every step boundary), resumed,
//! and every credential is checked from separate clients: old secret dead,
//! the store's current secret working (nobody locked out), nothing done twice.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn outcome_count(journal: &std::path::Path) -> i64 {
    let Ok(c) = rusqlite::Connection::open_with_flags(journal, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY) else { return 0 };
    c.query_row("SELECT COUNT(*) FROM events WHERE step = 'outcome'", [], |r| r.get(0)).unwrap_or(0)
}

fn only_run_id(state: &std::path::Path) -> String {
    let out = keysweep(state).args(["history", "--json"]).output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = v.as_array().unwrap();
    assert_eq!(runs.len(), 1, "{v}");
    runs[0]["id"].as_str().unwrap().to_string()
}

/// Live tokens minted by keysweep in run `run_id` (they carry its nonce).
fn live_minted_tokens(b: &Bao, run_id: &str) -> usize {
    let (_, l) = b.call("LIST", "auth/token/accessors", None);
    let mut n = 0;
    for a in l["data"]["keys"].as_array().cloned().unwrap_or_default() {
        let (s, d) = b.call("POST", "auth/token/lookup-accessor", Some(serde_json::json!({ "accessor": a })));
        if s == 200 && d["data"]["meta"]["keysweep_nonce"].as_str().is_some_and(|n| n.starts_with(&format!("{run_id}/"))) {
            n += 1;
        }
    }
    n
}

#[test]
fn sigkill_mid_run_of_500_then_resume() {
    let b = bao();
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::seed(b, "kill", 300, 100, 100, false);
    let pb = estate.write(dir.path());
    let state = dir.path().join("state");
    let journal = state.join("journal.db");

    let mut child =
        keysweep(&state).args(["run", pb.to_str().unwrap(), "--concurrency", "16"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while outcome_count(&journal) < 120 {
        assert!(child.try_wait().unwrap().is_none(), "run ended before it could be killed");
        assert!(Instant::now() < deadline, "run made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let done_at_kill = outcome_count(&journal);
    assert!(done_at_kill < 500, "killed too late to prove anything ({done_at_kill} done)");

    // The report of the interrupted run cannot exist yet; history shows it unfinished.
    let id = only_run_id(&state);
    let out = keysweep(&state).args(["resume", &id, "--concurrency", "16"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let r = report_json(&state);
    assert_eq!(r["run_id"], id.as_str());
    assert_eq!(r["totals"]["total"], 500);
    assert_eq!(r["totals"]["rotated"], 500, "{}", r["totals"]);

    let news = estate.assert_all_correct(b, "kill");
    assert_eq!(news.len(), 500);
    // None done twice and no orphans: one live minted token per token credential.
    assert_eq!(live_minted_tokens(b, &id), 300);
    // Each credential has exactly one outcome record, even across the kill.
    let c = rusqlite::Connection::open(&journal).unwrap();
    let dup: i64 = c
        .query_row("SELECT COUNT(*) FROM (SELECT cred_id FROM events WHERE step='outcome' GROUP BY cred_id HAVING COUNT(*) > 1)", [], |r| r.get(0))
        .unwrap();
    assert_eq!(dup, 0);
}

/// Abort at each boundary between steps (and between a mint and the store
/// write), resume, and check the end state.
#[test]
fn abort_at_every_step_boundary_then_resume() {
    let b = bao();
    let points = [
        "stage:started:1",
        "mint:reached:1",
        "staged:reached:1",
        "stage:done:1",
        "apply:started:1",
        "apply:done:1",
        "test:done:1",
        "promote:started:1",
        // Promoted, its `done` not yet on disk (it is not waited for).
        "promoted:reached:1",
        "promote:done:1",
        "retire:started:1",
        // Retired, its `done` not yet on disk.
        "retired:reached:1",
        "retire:done:1",
        "outcome:done:1",
    ];
    for (i, point) in points.iter().enumerate() {
        let prefix = format!("crash{i}");
        let dir = tempfile::tempdir().unwrap();
        let estate = Estate::seed(b, &prefix, 2, 1, 1, true);
        let pb = estate.write(dir.path());
        let state = dir.path().join("state");
        run_until_crash(keysweep(&state), &pb, point);
        if *point == "staged:reached:1" {
            // The dry run reports the pending value the crash left behind.
            let plan = keysweep(&state).args(["plan", pb.to_str().unwrap()]).output().unwrap();
            let text = String::from_utf8_lossy(&plan.stdout);
            assert!(text.contains("pending value(s) or claim(s) left") && text.contains(&format!("{prefix}/tokens/{prefix}-tok-0")), "{text}");
        }
        // `run` again finds the interrupted run and resumes it.
        run_resumes(keysweep(&state), &pb, point);
        let r = report_json(&state);
        assert_eq!(r["totals"]["rotated"], 4, "{point}: {}", r["totals"]);
        assert_eq!(r["totals"]["revoked"], 2, "{point}: {}", r["totals"]);
        estate.assert_all_correct(b, &prefix);
        for (id, _) in estate.tokens.iter().filter(|(id, _)| !id.ends_with("revoke-tok")) {
            let live = b.tokens_with_meta("keysweep_nonce", &format!("{}/{id}", r["run_id"].as_str().unwrap()));
            assert_eq!(live.len(), 1, "{point}: {id}: {} live tokens minted for it", live.len());
        }
    }
}
