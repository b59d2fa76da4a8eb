//! keysweep: a credential rotation orchestrator.
//!
//! ```text
//! playbook files ──load/validate──▶ Plan ──execute──▶ Journal ──summarise──▶ Report
//! ```
//! See the README for the playbook format and `DESIGN` notes in the docs.

pub mod discover;
pub mod lifecycle;
pub mod plan;
pub mod playbook;
pub mod progress;
pub mod provider;
pub mod report;
pub mod secret;

pub mod cli;
pub mod engine;
pub mod journal;
pub mod lock;
pub mod providers;
