//! The completeness report: one row per credential, exactly one outcome each,
//! totals that add up, in JSON (stable, documented shape), Markdown (for an
//! incident ticket) and a terminal summary.

pub mod ci;
pub mod metrics;
pub mod render;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::lifecycle::{Outcome, Step};

/// One credential's line in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub id: String,
    pub provider: String,
    /// Credential kind (`vault_token`, ...).
    pub kind: String,
    /// `rotate` or `revoke`.
    pub action: String,
    pub owner: Option<String>,
    pub tags: Vec<String>,
    /// Whether the run's selection included it.
    pub selected: bool,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Non-secret identity of the old and new secret (accessor, version...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub old: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub new: BTreeMap<String, String>,
    /// Wall-clock time spent on it in this run, in milliseconds.
    pub duration_ms: Option<u64>,
    /// In a hygiene run (`run --due`): why it was due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<String>,
    /// Where the playbook defines it (SARIF points there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defined_at: Option<DefinedAt>,
}

/// A credential's place in the playbook: the file (as the loader read it) and
/// the 1-based line of its entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefinedAt {
    pub file: String,
    pub line: usize,
}

impl Row {
    /// A gap: selected and not rotated/revoked, in a real run (a dry run has none).
    pub fn is_gap(&self, mode: &str) -> bool {
        mode != "dry_run" && self.selected && !self.outcome.is_verified()
    }
}

/// Counts per outcome; `total` equals their sum, always.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub total: usize,
    pub rotated: usize,
    pub revoked: usize,
    pub unverified: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Waiting for a person to re-issue a secret (`manual:` steps).
    #[serde(default)]
    pub awaiting_human: usize,
    /// Selected credentials that did not reach rotated/revoked (a skip of a
    /// selected credential, e.g. because a dependency failed, is a gap too).
    pub gaps: usize,
}

impl Totals {
    pub fn of(rows: &[Row]) -> Totals {
        let mut t = Totals::default();
        for r in rows {
            t.count(r);
        }
        t
    }
    /// Counts one more row.
    pub fn count(&mut self, r: &Row) {
        self.total += 1;
        match r.outcome {
            Outcome::Rotated { .. } => self.rotated += 1,
            Outcome::Revoked { .. } => self.revoked += 1,
            Outcome::Unverified { .. } => self.unverified += 1,
            Outcome::Failed { .. } => self.failed += 1,
            Outcome::Skipped { .. } => self.skipped += 1,
            Outcome::AwaitingHuman { .. } => self.awaiting_human += 1,
        }
        if r.selected && !r.outcome.is_verified() {
            self.gaps += 1;
        }
    }
    /// The sum of the outcome counts equals the total.
    pub fn add_up(&self) -> bool {
        self.rotated + self.revoked + self.unverified + self.failed + self.skipped + self.awaiting_human == self.total
    }
}

/// A run's report. `schema` versions the JSON shape (documented in the README).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    pub run_id: String,
    /// `run` or `dry_run`.
    pub mode: String,
    pub playbook: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// The selection expressions the run was given.
    pub selection: Vec<String>,
    pub totals: Totals,
    pub rows: Vec<Row>,
    /// Warnings that are not per-credential (stuck pending values found, coverage notes).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Provider settings the playbook leaves out, taken from the owning
    /// system's standard environment (`VAULT_ADDR`, `PGHOST`, …): where each came from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_env: Vec<String>,
    /// A dry run's comparison of the playbook with what the providers hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<crate::discover::DiscoveryReport>,
    /// What changed since the previous finished run of the same playbook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Changes>,
}

/// The difference between a run's outcomes and the previous run's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Changes {
    pub previous_run: String,
    /// Credentials in this run and not the previous one.
    pub added: Vec<String>,
    /// Credentials in the previous run and not this one.
    pub removed: Vec<String>,
    /// Credentials whose outcome differs.
    pub changed: Vec<OutcomeChange>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomeChange {
    pub id: String,
    pub from: String,
    pub to: String,
}

impl Changes {
    /// `now` compared with `prev`.
    pub fn between(prev: &Report, now: &Report) -> Changes {
        let before: BTreeMap<&str, &Row> = prev.rows.iter().map(|r| (r.id.as_str(), r)).collect();
        let after: BTreeMap<&str, &Row> = now.rows.iter().map(|r| (r.id.as_str(), r)).collect();
        let name = |r: &Row| match &r.outcome {
            Outcome::Skipped { reason } if reason.starts_with("not due") => "skipped (not due)".to_string(),
            o => o.name().to_string(),
        };
        Changes {
            previous_run: prev.run_id.clone(),
            added: after.keys().filter(|k| !before.contains_key(*k)).map(|k| k.to_string()).collect(),
            removed: before.keys().filter(|k| !after.contains_key(*k)).map(|k| k.to_string()).collect(),
            changed: after
                .iter()
                .filter_map(|(k, r)| {
                    let p = before.get(k)?;
                    let (from, to) = (name(p), name(r));
                    (from != to).then(|| OutcomeChange { id: k.to_string(), from, to })
                })
                .collect(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Every outcome's name, in the report's order.
pub const SECTION_OUTCOMES: [&str; 6] = ["rotated", "revoked", "unverified", "failed", "skipped", "awaiting_human"];

pub const REPORT_SCHEMA: &str = "keysweep.report/v1";

/// Every string of a JSON value (not the keys) with known secret values removed.
pub fn redact_value(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => {
            let r = crate::secret::redact(s);
            if r != *s {
                *s = r;
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(redact_value),
        serde_json::Value::Object(o) => o.values_mut().for_each(redact_value),
        _ => {}
    }
}

impl Report {
    /// This report with every known secret value removed from its text
    /// (reasons, evidence, warnings, handles…). Renderers print this.
    pub fn redacted(&self) -> Report {
        let Ok(mut v) = serde_json::to_value(self) else { return self.clone() };
        redact_value(&mut v);
        serde_json::from_value(v).unwrap_or_else(|_| self.clone())
    }

    pub fn new(run_id: &str, mode: &str, playbook: &str, started_at: &str, selection: Vec<String>, rows: Vec<Row>) -> Self {
        Report::with_totals(run_id, mode, playbook, started_at, selection, Totals::of(&rows), rows)
    }
    /// Like [`Report::new`], with the totals of rows already counted (`rows`
    /// may hold none of them: a report printed as its totals alone).
    pub fn with_totals(
        run_id: &str,
        mode: &str,
        playbook: &str,
        started_at: &str,
        selection: Vec<String>,
        mut totals: Totals,
        rows: Vec<Row>,
    ) -> Self {
        if mode == "dry_run" {
            // Nothing was meant to happen: a dry run has no gaps, only skips.
            totals.gaps = 0;
        }
        Report {
            schema: REPORT_SCHEMA.to_string(),
            run_id: run_id.to_string(),
            mode: mode.to_string(),
            playbook: playbook.to_string(),
            started_at: started_at.to_string(),
            finished_at: None,
            selection,
            totals,
            rows,
            warnings: vec![],
            from_env: vec![],
            discovery: None,
            changes: None,
        }
    }
    /// True when every selected credential reached rotated or revoked (exit 0).
    pub fn complete(&self) -> bool {
        self.totals.gaps == 0
    }
}
