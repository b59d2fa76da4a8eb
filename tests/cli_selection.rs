//! A `--select`/`--exclude` that matches nothing is a mistake, not "no gaps":
//! `plan` and `run` exit 2 naming the expression and the nearest existing
//! values, before any provider is contacted or any journal written.

use std::path::Path;
use std::process::{Command, Output};

fn keysweep(state: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_keysweep"));
    c.env("KEYSWEEP_STATE_DIR", state)
        .env("NO_COLOR", "1")
        .env("CI_TOKEN_ACCESSOR", "accessor-ci")
        .env("LEGACY_TOKEN_ACCESSOR", "accessor-legacy")
        .env("CANARY_TOKEN_ACCESSOR", "accessor-canary")
        // Nothing listens here: a run that got past the selection would exit 3.
        .env("VAULT_ADDR", "http://127.0.0.1:1")
        .env("VAULT_TOKEN", "unused");
    c
}

fn playbook() -> String {
    format!("{}/playbooks/incident-response.yaml", env!("CARGO_MANIFEST_DIR"))
}

fn run(state: &Path, args: &[&str]) -> Output {
    keysweep(state).args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_select_that_matches_nothing_exits_2_with_the_nearest_values() {
    let dir = tempfile::tempdir().unwrap();
    let pb = playbook();
    let out = run(dir.path(), &["plan", "--offline", &pb, "--select", "tag=okta-exposd"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(e.contains("--select tag=okta-exposd matches no credential of the playbook (nearest tags: okta-exposed"), "{e}");
    assert!(e.contains("Nothing was changed on any system"), "{e}");
    assert!(out.stdout.is_empty(), "a refused plan printed a plan: {}", String::from_utf8_lossy(&out.stdout));

    // `run` refuses the same way, before it connects (exit 3) or writes a journal.
    let out = run(dir.path(), &["run", &pb, "--select", "id=ci-deploy-tokn"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(e.contains("--select id=ci-deploy-tokn matches no credential of the playbook (nearest ids: ci-deploy-token"), "{e}");
    assert!(!dir.path().join("journal.db").exists(), "a refused run wrote a journal");
}

#[test]
fn an_exclude_that_matches_nothing_and_an_empty_intersection_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let pb = playbook();
    let out = run(dir.path(), &["run", &pb, "--exclude", "owner=securty"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--exclude owner=securty matches no credential of the playbook (nearest owners: security"), "{}", stderr(&out));

    // Each expression matches something, but together they select nothing.
    let out = run(dir.path(), &["plan", "--offline", &pb, "--select", "owner=ci", "--select", "tag=canary"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("the selection owner=ci tag=canary leaves none of the playbook's 5 credential(s) selected"), "{}", stderr(&out));

    let out = run(dir.path(), &["plan", "--offline", &pb, "--exclude", "kind=vault_*"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!dir.path().join("journal.db").exists());
}

#[test]
fn a_selection_that_matches_still_plans() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["plan", "--offline", &playbook(), "--select", "owner=ci", "--exclude", "tag=canary"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("dry run: 1 of 5 credential(s) selected"), "{s}");
}
