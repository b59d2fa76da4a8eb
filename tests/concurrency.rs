//! One process at a time on a state directory (issue 8, defect 5, first half):
//! a second `run` (or `resume`) while another holds the lock exits 3 naming
//! the holder's pid, host and run id, and changes nothing; once the holder
//! ends, a new run proceeds; a holder killed with SIGKILL leaves a lock file
//! whose lock the kernel released, and the next run takes it over.
//!
//! The first run is held in its verify step by a proxy that answers OpenBao's
//! `lookup-accessor` with 500s until the test lets it through.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::echo_proxy::{EchoProxy, Rule};
use common::*;
use serde_json::{json, Value};

fn hold_verify() -> Vec<Rule> {
    vec![Rule { method: "POST".into(), path_contains: "auth/token/lookup-accessor".into(), token: None, ..Default::default() }]
}

/// A playbook revoking one fresh token, with a long verify window.
fn playbook(dir: &std::path::Path, id: &str) -> std::path::PathBuf {
    let (_tok, acc) = bao().create_token(&["default"], json!({ "app": id }));
    let yaml = format!(
        "version: 1
providers:
  bao:
    kind: vault
    address: ${{env:VAULT_ADDR}}
    auth: {{ method: token, token: \"${{env:VAULT_TOKEN}}\" }}
    limits: {{ max_attempts: 1 }}
credentials:
  - {{ id: {id}, owner: sec, provider: bao, action: revoke, target: {{ kind: vault_token, accessor: {acc} }}, verify: {{ attempts: 100, interval: 300ms }} }}
"
    );
    let p = dir.join("playbook.yaml");
    std::fs::write(&p, yaml).unwrap();
    p
}

fn start(state: &std::path::Path, proxy: &EchoProxy, args: &[&str]) -> Child {
    keysweep(state).env("VAULT_ADDR", &proxy.endpoint).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

/// The lock file's holder once it names a run and the run is in its verify step.
fn wait_for_holder(state: &std::path::Path, proxy: &EchoProxy, child: &mut Child) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                std::io::Read::read_to_string(&mut e, &mut err).unwrap();
            }
            panic!("the first run ended early ({st}): {err}");
        }
        let h: Value = std::fs::read_to_string(state.join("lock")).ok().and_then(|s| serde_json::from_str(&s).ok()).unwrap_or(Value::Null);
        if h["run_id"].is_string() && !proxy.echoed().is_empty() {
            return h;
        }
        assert!(Instant::now() < deadline, "the first run never reached its verify step; lock file: {h}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string()
}

#[test]
fn a_second_process_exits_3_naming_the_holder_and_runs_once_the_holder_ends() {
    let b = bao();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let pb = playbook(dir.path(), "conc-a");
    let proxy = EchoProxy::start(&b.addr, hold_verify());
    let mut first = start(&state, &proxy, &["run", pb.to_str().unwrap()]);
    let holder = wait_for_holder(&state, &proxy, &mut first);
    let run_id = holder["run_id"].as_str().unwrap().to_string();
    assert_eq!(holder["pid"], first.id(), "{holder}");
    assert_eq!(holder["host"], hostname(), "{holder}");

    for args in [vec!["run", pb.to_str().unwrap()], vec!["run", pb.to_str().unwrap(), "--new"], vec!["resume", run_id.as_str()]] {
        let out = keysweep(&state).env("VAULT_ADDR", &proxy.endpoint).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {err}");
        assert!(err.contains(&format!("pid {}", first.id())), "{args:?}: {err}");
        assert!(err.contains(&format!("host {}", hostname())), "{args:?}: {err}");
        assert!(err.contains(&format!("run {run_id}")), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}: printed a report");
    }
    // The refused processes recorded nothing: only the first run is known.
    let out = keysweep(&state).args(["history"]).output().unwrap();
    let hist = String::from_utf8_lossy(&out.stdout);
    assert_eq!(hist.lines().filter(|l| !l.starts_with(' ')).count(), 1, "{hist}");

    // Let the first run finish: it proves the token dead.
    proxy.set_rules(vec![]);
    let out = first.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "first run: {}", String::from_utf8_lossy(&out.stderr));
    let r = report_json(&state);
    assert_eq!(r["run_id"], run_id);
    assert_eq!(r["rows"][0]["outcome"], "revoked", "{r}");

    // Now a new run on the same state dir proceeds.
    let out = keysweep(&state).env("VAULT_ADDR", &proxy.endpoint).args(["run", pb.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(3), "{err}");
    assert!(!err.contains("in use by"), "{err}");
    assert_ne!(report_json(&state)["run_id"], run_id, "no new run was made: {err}");
}

#[test]
fn a_killed_holders_lock_is_taken_over_and_its_run_resumed() {
    let b = bao();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let pb = playbook(dir.path(), "conc-b");
    let proxy = EchoProxy::start(&b.addr, hold_verify());
    let mut first = start(&state, &proxy, &["run", pb.to_str().unwrap()]);
    let holder = wait_for_holder(&state, &proxy, &mut first);
    let run_id = holder["run_id"].as_str().unwrap().to_string();
    first.kill().unwrap(); // SIGKILL: no destructor, no cleanup
    first.wait().unwrap();
    // The dead holder's description stays in the file; its lock does not.
    let stale: Value = serde_json::from_str(&std::fs::read_to_string(state.join("lock")).unwrap()).unwrap();
    assert_eq!(stale["pid"], holder["pid"]);

    proxy.set_rules(vec![]);
    let second = start(&state, &proxy, &["run", pb.to_str().unwrap()]);
    let pid = second.id();
    let out = second.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains(&format!("resuming interrupted run {run_id}")), "{err}");
    // The taker wrote itself in over the dead holder.
    let now: Value = serde_json::from_str(&std::fs::read_to_string(state.join("lock")).unwrap()).unwrap();
    assert_eq!(now["pid"], pid, "lock file still names the dead holder: {now}");
    assert_eq!(now["run_id"], run_id.as_str());
    assert_eq!(report_json(&state)["rows"][0]["outcome"], "revoked");
}
