//! The credential lifecycle in one place: its steps in order, the one
//! outcome each credential ends with, and the typed decision of a hygiene run.
//! The plan lists a credential's steps with [`steps`]; the engine runs them;
//! the report and the journal name them with [`Step::as_str`].

use serde::{Deserialize, Serialize};

use crate::playbook::model::Action;

/// The lifecycle steps, in order. A revocation runs `retire` and `verify_dead` only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Stage,
    Apply,
    Test,
    Promote,
    Retire,
    VerifyDead,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Stage => "stage",
            Step::Apply => "apply",
            Step::Test => "test",
            Step::Promote => "promote",
            Step::Retire => "retire",
            Step::VerifyDead => "verify_dead",
        }
    }
    pub fn parse(s: &str) -> Option<Step> {
        Some(match s {
            "stage" => Step::Stage,
            "apply" => Step::Apply,
            "test" => Step::Test,
            "promote" => Step::Promote,
            "retire" => Step::Retire,
            "verify_dead" => Step::VerifyDead,
            _ => return None,
        })
    }
}

/// The one final outcome of a credential in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// New secret works and is current; old secret proven dead.
    Rotated { evidence: String },
    /// Old secret proven dead.
    Revoked { evidence: String },
    /// The action was done but death of the old secret was not proven.
    Unverified { step: Step, reason: String },
    /// The action did not complete; `step` is where it stopped.
    Failed { step: Step, reason: String },
    /// Not acted on, and why (not selected, dry run, dependency failed...).
    Skipped { reason: String },
    /// A step no API offers (re-issuing a secret in a vendor's UI) waits for
    /// a person: the playbook's `manual:` instructions. A gap until a later
    /// run has tested the value they supplied and proven the old one dead.
    AwaitingHuman { step: Step, instructions: String },
}

impl Outcome {
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Rotated { .. } => "rotated",
            Outcome::Revoked { .. } => "revoked",
            Outcome::Unverified { .. } => "unverified",
            Outcome::Failed { .. } => "failed",
            Outcome::Skipped { .. } => "skipped",
            Outcome::AwaitingHuman { .. } => "awaiting_human",
        }
    }
    /// Reached a verified end (rotated or revoked).
    pub fn is_verified(&self) -> bool {
        matches!(self, Outcome::Rotated { .. } | Outcome::Revoked { .. })
    }
    /// The evidence or reason, whichever the outcome has.
    pub fn detail(&self) -> &str {
        match self {
            Outcome::Rotated { evidence } | Outcome::Revoked { evidence } => evidence,
            Outcome::Unverified { reason, .. } | Outcome::Failed { reason, .. } | Outcome::Skipped { reason } => reason,
            Outcome::AwaitingHuman { instructions, .. } => instructions,
        }
    }
    pub fn step(&self) -> Option<Step> {
        match self {
            Outcome::Unverified { step, .. } | Outcome::Failed { step, .. } | Outcome::AwaitingHuman { step, .. } => Some(*step),
            _ => None,
        }
    }
}

/// The steps of a credential's lifecycle, in order. A rotation stages the
/// new secret (durably, before any system accepts it), makes the system
/// accept it (unless the system minted it), tests it, promotes it, and only
/// then retires the old one and proves it dead; a revocation retires and
/// proves dead.
pub fn steps(action: Action, mints: bool) -> Vec<Step> {
    match action {
        Action::Revoke => vec![Step::Retire, Step::VerifyDead],
        Action::Rotate => {
            let mut s = vec![Step::Stage];
            if !mints {
                s.push(Step::Apply);
            }
            s.extend([Step::Test, Step::Promote, Step::Retire, Step::VerifyDead]);
            s
        }
    }
}

/// What `run --due` does with one credential.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "due", content = "why", rename_all = "snake_case")]
pub enum Due {
    /// Act now, with this action, for this reason.
    Act(Action, String),
    /// Leave it; why.
    NotDue(String),
}
