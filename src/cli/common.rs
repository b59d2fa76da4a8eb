//! Pieces the subcommands share.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::engine::state::CredState;
use crate::plan::Plan;
use crate::playbook::Playbook;
use crate::report::{Outcome, Report, Row};

/// `--select` / `--exclude`, shared by `plan` and `run`.
#[derive(clap::Args, Debug)]
pub struct SelectArgs {
    /// Only credentials matching key=value (tag, owner, provider, kind, action, id; `*` wildcards).
    /// Same key: any of them; different keys: all of them.
    #[arg(long = "select", value_name = "KEY=VALUE")]
    pub select: Vec<String>,
    /// Leave out credentials matching key=value (e.g. tag=canary for honeytokens).
    #[arg(long = "exclude", value_name = "KEY=VALUE")]
    pub exclude: Vec<String>,
}

impl SelectArgs {
    /// The selection; on a bad expression prints why and returns the exit code.
    pub fn parse(&self) -> Result<crate::plan::Selection, i32> {
        crate::plan::Selection::parse(&self.select, &self.exclude).map_err(|e| {
            eprintln!("keysweep: {e}");
            super::exit::INVALID
        })
    }
}

impl SelectArgs {
    /// The selection, checked against the playbook: an expression that matches
    /// no credential, or a selection that leaves none selected, is refused with
    /// the nearest existing values (exit 2, nothing changed).
    pub fn parse_against(&self, pb: &Playbook) -> Result<crate::plan::Selection, i32> {
        let s = self.parse()?;
        s.check_matches(pb).map_err(|e| {
            for line in e.lines() {
                eprintln!("keysweep: error: {line}");
            }
            eprintln!("  hint: check the spelling; `keysweep plan --offline -v` lists every credential. Nothing was changed on any system");
            super::exit::INVALID
        })?;
        Ok(s)
    }
}

/// A credential's report row with the given outcome (handles and duration empty).
pub fn row(w: &crate::plan::WorkItem, outcome: Outcome) -> Row {
    Row {
        id: w.cred.id.clone(),
        provider: w.cred.provider.clone(),
        kind: w.cred.target.kind().to_string(),
        action: w.cred.action.as_str().to_string(),
        owner: w.cred.owner.clone(),
        tags: w.cred.tags.clone(),
        selected: w.selected(),
        outcome,
        old: Default::default(),
        new: Default::default(),
        duration_ms: None,
        due: None,
        defined_at: Some(crate::report::DefinedAt { file: w.cred.location.file.display().to_string(), line: w.cred.location.line }),
    }
}

/// Loads a playbook; on errors prints them and returns the exit code.
pub fn load(path: &Path) -> Result<Playbook, i32> {
    crate::playbook::load(path).map_err(|d| {
        eprintln!("{d}");
        super::exit::INVALID
    })
}

pub fn new_run_id() -> String {
    // Milliseconds, so two runs started in the same second still sort in order.
    let now = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let tail: String = uuid::Uuid::new_v4().simple().to_string()[..6].to_string();
    format!("{now}-{tail}")
}

/// How the journal names a playbook: its canonical path (as given when that fails).
pub fn playbook_key(path: &Path) -> String {
    std::fs::canonicalize(path).unwrap_or(path.to_path_buf()).display().to_string()
}

pub fn journal_path(state_dir: &Path) -> PathBuf {
    state_dir.join("journal.db")
}

/// Providers a plan needs: those owning selected credentials and their stores.
pub fn needed_providers(plan: &Plan) -> BTreeSet<String> {
    let mut s = BTreeSet::new();
    for w in plan.selected() {
        s.insert(w.cred.provider.clone());
        for d in &w.cred.deliver_to {
            s.insert(d.provider.clone());
        }
    }
    s
}

fn duration_ms(st: &CredState) -> Option<u64> {
    let a = chrono::DateTime::parse_from_rfc3339(st.first_at.as_deref()?).ok()?;
    let b = chrono::DateTime::parse_from_rfc3339(st.last_at.as_deref()?).ok()?;
    Some((b - a).num_milliseconds().max(0) as u64)
}

/// One row per credential of the plan, each with exactly one outcome.
pub fn rows(plan: &Plan, states: &HashMap<String, CredState>, run_id: &str) -> Vec<Row> {
    plan.items
        .iter()
        .map(|w| {
            let st = states.get(&w.cred.id);
            let outcome = match (&w.skip, st.and_then(|s| s.outcome.clone())) {
                (Some(reason), _) => Outcome::Skipped { reason: reason.clone() },
                (None, Some(o)) => o,
                (None, None) => {
                    let step = st
                        .map(|s| {
                            use crate::report::Step::*;
                            if s.retire_done {
                                VerifyDead
                            } else if s.promote_done {
                                Retire
                            } else if s.test_done {
                                Promote
                            } else if s.stage_done {
                                Test
                            } else {
                                Stage
                            }
                        })
                        .unwrap_or(w.steps[0]);
                    let reason = format!("run interrupted before this credential finished; `keysweep resume {run_id}` continues it");
                    Outcome::Failed { step, reason }
                }
            };
            Row {
                old: st.map(|s| s.old_handle.clone()).unwrap_or_default(),
                new: st.map(|s| s.new_handle.clone()).unwrap_or_default(),
                duration_ms: st.and_then(duration_ms),
                ..row(w, outcome)
            }
        })
        .collect()
}

/// Writes report.json and report.md under `<state>/runs/<id>/`.
pub fn write_reports(state_dir: &Path, report: &Report) -> Result<PathBuf> {
    let dir = state_dir.join("runs").join(&report.run_id);
    crate::lock::create_private_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    crate::lock::write_private(&dir.join("report.json"), crate::report::render::json(report)).context("writing report.json")?;
    crate::lock::write_private(&dir.join("report.md"), crate::report::render::markdown(report)).context("writing report.md")?;
    Ok(dir)
}
