//! `run` and `resume`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use serde_json::json;

use super::common;
use super::exit;
use crate::engine::Engine;
use crate::journal::{Journal, RunRecord};
use crate::plan::{self, Selection};
use crate::playbook::Playbook;
use crate::progress::Progress;
use crate::report::{render, Report};

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The playbook file.
    pub playbook: PathBuf,
    #[command(flatten)]
    pub selection: common::SelectArgs,
    /// Start a new run even if an interrupted run of this playbook exists.
    #[arg(long)]
    pub new: bool,
    #[command(flatten)]
    pub exec: ExecArgs,
}

#[derive(clap::Args, Debug)]
pub struct ResumeArgs {
    /// The run to continue (see `keysweep history`).
    pub run_id: String,
    /// Resume even though the playbook files changed since the run started.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub exec: ExecArgs,
}

#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// Credentials worked on at once across all providers.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Terminal report format: text, markdown, json, html.
    #[arg(long, default_value = "text")]
    pub format: render::Format,
    /// Only print gaps and the totals line (for cron).
    #[arg(long, short)]
    pub quiet: bool,
}

pub async fn run(a: RunArgs, state_dir: &Path) -> Result<i32> {
    let pb = match common::load(&a.playbook) {
        Ok(pb) => pb,
        Err(code) => return Ok(code),
    };
    let selection = match a.selection.parse() {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let journal = Arc::new(Journal::open(&common::journal_path(state_dir))?);
    if !a.new {
        if let Some(prev) = journal.unfinished(&pb.fingerprint)? {
            if prev.selection == selection.describe() {
                eprintln!("keysweep: resuming interrupted run {} of this playbook (use --new to start over)", prev.id);
                return execute(pb, selection, journal, prev, a.exec, state_dir).await;
            }
            eprintln!(
                "keysweep: note: run {} of this playbook is unfinished with another selection; `keysweep resume {}` continues it",
                prev.id, prev.id
            );
        }
    }
    let record = RunRecord {
        id: common::new_run_id(),
        mode: "run".into(),
        playbook: std::fs::canonicalize(&a.playbook).unwrap_or(a.playbook.clone()).display().to_string(),
        fingerprint: pb.fingerprint.clone(),
        selection: selection.describe(),
        started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        finished_at: None,
        report: None,
    };
    execute(pb, selection, journal, record, a.exec, state_dir).await
}

pub async fn resume(a: ResumeArgs, state_dir: &Path) -> Result<i32> {
    let journal = Arc::new(Journal::open(&common::journal_path(state_dir))?);
    let Some(record) = journal.run(&a.run_id)? else {
        eprintln!("keysweep: no run `{}` in {}; see `keysweep history`", a.run_id, state_dir.display());
        return Ok(exit::INVALID);
    };
    if record.finished_at.is_some() {
        eprintln!("keysweep: run {} already finished; `keysweep report {}` shows it", record.id, record.id);
        return Ok(exit::INVALID);
    }
    let pb = match common::load(Path::new(&record.playbook)) {
        Ok(pb) => pb,
        Err(code) => return Ok(code),
    };
    if pb.fingerprint != record.fingerprint && !a.force {
        eprintln!("keysweep: the playbook changed since run {} started; resume with --force to continue it with the current files", record.id);
        return Ok(exit::INVALID);
    }
    let (sel, exc): (Vec<String>, Vec<String>) = record.selection.iter().cloned().partition(|s| !s.starts_with('!'));
    let exc: Vec<String> = exc.into_iter().map(|s| s[1..].to_string()).collect();
    let selection = Selection::parse(&sel, &exc)?;
    execute(pb, selection, journal, record, a.exec, state_dir).await
}

async fn execute(pb: Playbook, selection: Selection, journal: Arc<Journal>, record: RunRecord, exec: ExecArgs, state_dir: &Path) -> Result<i32> {
    let plan = plan::build(&pb, &selection);
    // Connect before anything is recorded: an unreachable provider or a
    // refused login changes nothing.
    let providers = crate::provider::registry::connect(&pb, &common::needed_providers(&plan)).await?;

    let run_id = record.id.clone();
    let started_at = record.started_at.clone();
    let fresh = journal.run(&run_id)?.is_none();
    if fresh {
        journal.start_run(record.clone()).await?;
        let events = plan
            .items
            .iter()
            .map(|w| {
                let detail = json!({ "selected": w.selected(), "skip": w.skip, "steps": w.steps });
                (w.cred.id.clone(), "plan".to_string(), "info".to_string(), detail)
            })
            .collect();
        journal.record_many(&run_id, events).await?;
    }
    eprintln!("keysweep: run {run_id}: {} of {} credential(s) selected", plan.selected().count(), plan.items.len());

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\nkeysweep: stopping once the credentials in flight finish (Ctrl-C again to quit now; the run stays resumable)");
                stop.store(true, Ordering::SeqCst);
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(exit::INTERRUPTED);
                }
            }
        });
    }

    let provider_concurrency: BTreeMap<String, usize> =
        pb.providers.iter().filter_map(|(n, e)| e.config.limits().concurrency.map(|c| (n.clone(), c))).collect();
    let engine = Engine {
        journal: journal.clone(),
        providers,
        run_id: run_id.clone(),
        concurrency: exec.concurrency,
        provider_concurrency,
        observer: Arc::new(Progress::new(exec.quiet)),
        stop: stop.clone(),
    };
    let states = engine.execute(&plan).await?;
    let interrupted = stop.load(Ordering::SeqCst);

    let mut report = Report::new(&run_id, "run", &record.playbook, &started_at, selection.describe(), common::rows(&plan, &states, &run_id));
    report.warnings = plan.warnings.clone();
    if !interrupted {
        let finished = chrono::Utc::now().to_rfc3339();
        report.finished_at = Some(finished.clone());
        journal.finish_run(&run_id, &finished, &serde_json::to_value(&report)?).await?;
    }
    let dir = common::write_reports(state_dir, &report).context("writing the report")?;
    let color = std::io::stdout().is_terminal();
    if exec.quiet && report.complete() {
        println!("{}", render::totals_line(&report.totals));
    } else {
        println!("{}", render::render(&report, exec.format, color));
    }
    eprintln!("keysweep: reports in {}", dir.display());
    if interrupted {
        eprintln!("keysweep: run {run_id} interrupted; `keysweep resume {run_id}` continues it");
        return Ok(exit::INTERRUPTED);
    }
    Ok(if report.complete() { exit::OK } else { exit::GAPS })
}
