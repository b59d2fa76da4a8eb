//! The command line: one file per subcommand.

mod common;
mod completions;
mod discover;
mod plan;
mod report;
mod run;
mod schema;
pub mod supply;
mod validate;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Exit codes (documented in the README).
pub mod exit {
    /// Every selected credential reached a verified outcome (or: valid playbook, plan printed).
    pub const OK: i32 = 0;
    /// The run finished with gaps: failed, unverified, or skipped selected credentials.
    pub const GAPS: i32 = 1;
    /// Invalid playbook, selection or arguments; nothing was changed.
    pub const INVALID: i32 = 2;
    /// keysweep could not do its job (provider unreachable, login refused, journal unwritable).
    pub const ERROR: i32 = 3;
    /// Interrupted (Ctrl-C); the run is resumable.
    pub const INTERRUPTED: i32 = 130;
}

#[derive(Parser, Debug)]
#[command(name = "keysweep", version, about = "Rotate or revoke every credential in a playbook, prove the old ones dead, account for all of them.")]
pub struct Cli {
    /// Where the journal and reports live.
    #[arg(long, global = true, env = "KEYSWEEP_STATE_DIR", default_value = ".keysweep")]
    pub state_dir: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check a playbook: every error with file:line:column and a hint. Exit 2 if invalid.
    Validate(validate::Args),
    /// Compare what every provider holds with the playbook: unlisted, stale, inactive, overdue, privileged.
    /// Exit 1 when anything is unlisted, 3 when a provider could not be inventoried. Changes nothing.
    Discover(discover::Args),
    /// Dry run: what would happen, with coverage warnings. Changes nothing.
    Plan(plan::Args),
    /// Rotate/revoke the selected credentials, verify, report. Resumes an interrupted run of the same playbook.
    Run(run::RunArgs),
    /// Continue an interrupted run.
    Resume(run::ResumeArgs),
    /// Give keysweep the value a person re-issued for a credential with `manual:` steps
    /// (hidden prompt, or standard input): staged as pending; the next `run` tests it,
    /// revokes the old secret and proves it dead.
    Supply(supply::Args),
    /// Print the report of a run (default: the latest).
    Report(report::Args),
    /// List runs and their totals.
    History(report::HistoryArgs),
    /// Print the JSON Schema of the playbook format (for editors).
    Schema,
    /// Print a shell completion script: bash, zsh, fish (also elvish, powershell).
    Completions(completions::Args),
    /// Print keysweep's man page (roff), generated from this command line: `keysweep man > keysweep.1`,
    /// or every page with `--out-dir`.
    #[command(hide = true)]
    Man(completions::ManArgs),
}

/// Runs the command; returns the process exit code.
pub async fn main(cli: Cli) -> i32 {
    let r = match cli.command {
        Command::Validate(a) => validate::run(a),
        Command::Discover(a) => discover::run(a, &cli.state_dir).await,
        Command::Plan(a) => plan::run(a, &cli.state_dir).await,
        Command::Run(a) => run::run(a, &cli.state_dir).await,
        Command::Resume(a) => run::resume(a, &cli.state_dir).await,
        Command::Supply(a) => supply::run(a).await,
        Command::Report(a) => report::run(a, &cli.state_dir),
        Command::History(a) => report::history(a, &cli.state_dir),
        Command::Schema => schema::run(),
        Command::Completions(a) => completions::run(a),
        Command::Man(a) => completions::man(a),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            // Errors are built from scrubbed provider text and our own words; no secret values.
            eprintln!("keysweep: error: {}", crate::secret::redact(&format!("{e:#}")));
            exit::ERROR
        }
    }
}
