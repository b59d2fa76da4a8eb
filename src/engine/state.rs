//! What the journal says about one credential in one run: the fold of its records.

use serde_json::Value;

use crate::provider::Handle;
use crate::report::Outcome;

#[derive(Debug, Clone, Default)]
pub struct CredState {
    pub outcome: Option<Outcome>,
    pub nonce: Option<String>,
    pub stage_started: bool,
    pub stage_done: bool,
    pub old_handle: Handle,
    pub old_version: Option<String>,
    pub new_handle: Handle,
    pub apply_done: bool,
    pub test_done: bool,
    pub promote_done: bool,
    pub retire_done: bool,
    /// Time of the first record, for durations.
    pub first_at: Option<String>,
    pub last_at: Option<String>,
}

fn handle(v: &Value) -> Handle {
    v.as_object().map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string()))).collect()).unwrap_or_default()
}

impl CredState {
    /// Folds one record in. `detail` is the record's JSON text, parsed only
    /// for the records whose details a state keeps (most records have none
    /// worth reading, and a 20,000-credential run has 200,000 of them).
    pub fn apply(&mut self, step: &str, status: &str, detail: &str, at: &str) {
        if step != "plan" {
            if self.first_at.is_none() {
                self.first_at = Some(at.to_string());
            }
            self.last_at = Some(at.to_string());
        }
        let parse = || serde_json::from_str::<Value>(detail).unwrap_or(Value::Null);
        match (step, status) {
            ("stage", "started") => {
                self.stage_started = true;
                if let Some(n) = parse()["nonce"].as_str() {
                    self.nonce = Some(n.to_string());
                }
            }
            ("stage", "done") => {
                let d = parse();
                self.stage_done = true;
                self.old_handle = handle(&d["old"]);
                self.new_handle = handle(&d["new"]);
                self.old_version = d["old_version"].as_str().map(str::to_string);
            }
            ("apply", "done") => self.apply_done = true,
            ("test", "done") => self.test_done = true,
            ("promote", "done") => self.promote_done = true,
            // A revocation records the handle it retires here.
            ("retire", "started") if !self.stage_done => self.old_handle = handle(&parse()["old"]),
            ("retire", "done") => self.retire_done = true,
            ("outcome", _) => {
                let mut d = parse();
                self.outcome = serde_json::from_value(d["outcome"].take()).ok();
                if let Some(h) = d.get("old") {
                    self.old_handle = handle(h);
                }
                if let Some(h) = d.get("new") {
                    self.new_handle = handle(h);
                }
            }
            _ => {}
        }
    }
}
