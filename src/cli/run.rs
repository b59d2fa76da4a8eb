//! `run` and `resume`.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use serde_json::json;

use super::common;
use super::exit;
use crate::discover::Due;
use crate::engine::Engine;
use crate::journal::{Journal, RunRecord};
use crate::plan::{self, Selection};
use crate::playbook::model::Action;
use crate::playbook::Playbook;
use crate::progress::Progress;
use crate::provider::adaptive::{self, Concurrency};
use crate::report::{render, Changes, Report, Row};

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The playbook file.
    pub playbook: PathBuf,
    #[command(flatten)]
    pub selection: common::SelectArgs,
    /// Start a new run even if an interrupted run of this playbook exists.
    #[arg(long)]
    pub new: bool,
    /// Hygiene run: act only on credentials past their max_age, and revoke inactive
    /// ones where the playbook says `revoke_inactive: true`; the rest are `skipped (not due)`.
    #[arg(long)]
    pub due: bool,
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
    /// Credentials worked on at once across all providers. Default: no cap
    /// beyond each provider's own (adaptive up to `limits.concurrency`,
    /// default 256; fixed at 8 for database and directory providers). A value
    /// below a provider's cap is reported at the start of the run.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub concurrency: Option<u64>,
    /// Report format on standard output: text, markdown, json, html, junit (JUnit XML), sarif (SARIF 2.1.0).
    #[arg(long, default_value = "text")]
    pub format: render::Format,
    /// Only print gaps and the totals line (for cron). A JUnit or SARIF report
    /// is printed whole all the same: a CI reads it.
    #[arg(long, short)]
    pub quiet: bool,
    /// Also write the run's metrics (OpenMetrics text: credentials per outcome
    /// and provider, gaps, duration, end time) to this file, atomically, for the
    /// node exporter's textfile collector (name it `*.prom`).
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,
}

pub async fn run(a: RunArgs, state_dir: &Path) -> Result<i32> {
    let pb = match common::load(&a.playbook) {
        Ok(pb) => pb,
        Err(code) => return Ok(code),
    };
    let selection = match a.selection.parse_against(&pb) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    if let Err(e) = crate::lock::hold(state_dir, "run") {
        eprintln!("keysweep: {e}");
        return Ok(exit::ERROR);
    }
    let journal = Arc::new(Journal::open(&common::journal_path(state_dir))?);
    let mode = if a.due { MODE_DUE } else { MODE_RUN };
    if !a.new {
        if let Some(prev) = journal.unfinished(&pb.fingerprint, mode)? {
            if prev.selection == selection.describe() {
                eprintln!("keysweep: resuming interrupted run {} of this playbook (use --new to start over)", prev.id);
                let due = recorded_due(&journal, &prev)?;
                return execute(pb, selection, journal, prev, a.exec, state_dir, due).await;
            }
            eprintln!(
                "keysweep: note: run {} of this playbook is unfinished with another selection; `keysweep resume {}` continues it",
                prev.id, prev.id
            );
        }
    }
    let playbook = common::playbook_key(&a.playbook);
    let due = if a.due {
        // Decide what is due before anything is recorded or changed.
        let now = chrono::Utc::now();
        let (d, providers) = crate::discover::discover(&pb, journal.last_rotations(&playbook)?, now).await;
        providers.close().await;
        if let Some(p) = d.providers.iter().find(|p| p.error.is_some()) {
            anyhow::bail!("cannot tell what is due: provider `{}` could not be inventoried: {}", p.provider, p.error.as_deref().unwrap_or_default());
        }
        for n in &d.notes {
            eprintln!("keysweep: note: {n}");
        }
        if d.totals.unlisted > 0 {
            eprintln!("keysweep: note: {} item(s) held by providers are not in the playbook; `keysweep discover` lists them", d.totals.unlisted);
        }
        let by_id: HashMap<&str, &crate::discover::CredentialStatus> = d.credentials.iter().map(|s| (s.id.as_str(), s)).collect();
        Some(pb.credentials.iter().filter_map(|c| by_id.get(c.id.as_str()).map(|st| (c.id.clone(), crate::discover::due(c, st, now)))).collect())
    } else {
        None
    };
    let record = RunRecord {
        id: common::new_run_id(),
        mode: mode.into(),
        playbook,
        fingerprint: pb.fingerprint.clone(),
        selection: selection.describe(),
        started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        finished_at: None,
        report: None,
    };
    execute(pb, selection, journal, record, a.exec, state_dir, due).await
}

const MODE_RUN: &str = "run";
const MODE_DUE: &str = "run-due";

/// A hygiene run's decisions, as its plan records wrote them (for resuming it).
fn recorded_due(journal: &Journal, record: &RunRecord) -> Result<Option<HashMap<String, Due>>> {
    if record.mode != MODE_DUE {
        return Ok(None);
    }
    let mut out = HashMap::new();
    for e in journal.events(&record.id)?.into_iter().filter(|e| e.step == "plan") {
        let d = &e.detail;
        // The decision as recorded, typed.
        if let Ok(decision) = serde_json::from_value::<Due>(d["decision"].clone()) {
            if d["selected"].as_bool() == Some(true) || matches!(decision, Due::NotDue(_)) {
                out.insert(e.cred_id, decision);
            }
            continue;
        }
        // A run planned by a release before decisions were recorded typed.
        let why = d["due"].as_str().unwrap_or_default().to_string();
        let decision = if d["selected"].as_bool() == Some(true) {
            let action = if d["action"] == "revoke" { Action::Revoke } else { Action::Rotate };
            Due::Act(action, why)
        } else {
            match d["skip"].as_str() {
                Some(r) if r.starts_with("not due") => Due::NotDue(r.to_string()),
                _ => continue, // not selected by --select: the selection says so again
            }
        };
        out.insert(e.cred_id, decision);
    }
    Ok(Some(out))
}

/// Applies a hygiene run's decisions to the plan: not-due credentials are
/// skipped, inactive ones to revoke become revocations.
fn apply_due(plan: &mut plan::Plan, due: &HashMap<String, Due>) -> HashMap<String, String> {
    let mut notes = HashMap::new();
    for w in plan.items.iter_mut().filter(|w| w.selected()) {
        match due.get(&w.cred.id) {
            Some(Due::NotDue(why)) => w.skip = Some(why.clone()),
            Some(Due::Act(action, why)) => {
                if *action != w.cred.action {
                    let mut c = (*w.cred).clone();
                    c.action = *action;
                    w.steps = plan::steps_for(&c);
                    w.cred = Arc::new(c);
                }
                notes.insert(w.cred.id.clone(), why.clone());
            }
            None => w.skip = Some("not due: discovery has no status for it".into()),
        }
    }
    // Waves hold selected items only.
    let items = &plan.items;
    for wave in &mut plan.waves {
        wave.retain(|i| items[*i].selected());
    }
    plan.waves.retain(|w| !w.is_empty());
    notes
}

pub async fn resume(a: ResumeArgs, state_dir: &Path) -> Result<i32> {
    if let Err(e) = crate::lock::hold(state_dir, "resume") {
        eprintln!("keysweep: {e}");
        return Ok(exit::ERROR);
    }
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
    let due = recorded_due(&journal, &record)?;
    execute(pb, selection, journal, record, a.exec, state_dir, due).await
}

async fn execute(
    pb: Playbook,
    selection: Selection,
    journal: Arc<Journal>,
    record: RunRecord,
    exec: ExecArgs,
    state_dir: &Path,
    due: Option<HashMap<String, Due>>,
) -> Result<i32> {
    crate::lock::set_run_id(&record.id);
    let mut plan = plan::build(&pb, &selection);
    let due_notes = due.as_ref().map(|d| apply_due(&mut plan, d)).unwrap_or_default();
    // Connect before anything is recorded: an unreachable provider or a
    // refused login changes nothing.
    let mut needed = common::needed_providers(&plan);
    // The providers that keep claims for stores without check-and-set.
    for n in needed.clone() {
        if let Some(ci) = pb.providers.get(&n).and_then(|e| e.config.spec().claims_in()) {
            needed.insert(ci.provider.clone());
        }
    }
    let providers = crate::provider::registry::connect(&pb, &needed).await?;

    let run_id = record.id.clone();
    let started_at = record.started_at.clone();
    let fresh = journal.run(&run_id)?.is_none();
    if fresh {
        journal.start_run(record.clone()).await?;
        let events = plan
            .items
            .iter()
            .map(|w| {
                let detail = json!({
                    "selected": w.selected(), "skip": w.skip, "steps": w.steps,
                    "action": w.cred.action.as_str(), "due": due_notes.get(&w.cred.id),
                    "decision": due.as_ref().and_then(|d| d.get(&w.cred.id)),
                });
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
    // Each provider's own concurrency decides; a global cap set below one is said.
    let per_provider: Vec<(String, Concurrency)> =
        needed.iter().filter_map(|n| pb.providers.get(n).map(|e| (n.clone(), Concurrency::of(e.config.spec())))).collect();
    let set = exec.concurrency.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    for note in adaptive::global_notes(set, &per_provider) {
        eprintln!("keysweep: note: {note}");
    }
    if !exec.quiet {
        let each: Vec<String> = per_provider.iter().map(|(n, c)| format!("{n} {c}")).collect();
        let global = match set {
            Some(g) => format!("at most {g} in all (--concurrency)"),
            None => "no global cap".into(),
        };
        eprintln!("keysweep: concurrency per provider: {}; {global}", each.join("; "));
    }
    let progress = Arc::new(Progress::new(exec.quiet));
    let engine = Arc::new(Engine {
        journal: journal.clone(),
        providers,
        run_id: run_id.clone(),
        concurrency: adaptive::global(set, &per_provider),
        provider_concurrency,
        observer: progress.clone(),
        stop: stop.clone(),
        own_logins: Default::default(),
        claims_in: pb
            .providers
            .iter()
            .filter_map(|(n, e)| e.config.spec().claims_in().map(|ci| (n.clone(), (ci.provider.clone(), ci.mount.clone()))))
            .collect(),
    });
    let plan = Arc::new(plan);
    let began = std::time::Instant::now();
    let states = engine.execute(&plan).await;
    let took = began.elapsed();
    if !exec.quiet {
        if states.is_ok() {
            // Credentials that reached an outcome in this sitting, over the
            // engine's time alone: loading, connecting and the reports are not in it.
            let worked = progress.finished_now();
            eprintln!(
                "keysweep: {worked} credential(s) worked in {:.2} s ({:.0} per second)",
                took.as_secs_f64(),
                worked as f64 / took.as_secs_f64().max(1e-9)
            );
        }
        let reached: Vec<String> = per_provider
            .iter()
            .filter_map(|(n, _)| engine.providers.get(n).and_then(|p| p.adaptive()).map(|a| (n, a.summary())))
            .map(|(n, s)| format!("{n} up to {} of {} ({} halving(s), {} at the end)", s.peak, s.cap, s.halvings, s.limit))
            .collect();
        if !reached.is_empty() {
            eprintln!("keysweep: adaptive concurrency reached: {}", reached.join("; "));
        }
    }
    engine.providers.close().await;
    // The engine fails only when it cannot read the journal back: say so,
    // and which file (SQLite's own words name neither).
    let states = states.with_context(|| format!("reading the journal {}", journal.path().display()))?;
    let interrupted = stop.load(Ordering::SeqCst);

    let rows = common::rows(&plan, &states, &run_id).into_iter().map(|r| Row { due: due_notes.get(&r.id).cloned(), ..r }).collect();
    let mut report = Report::new(&run_id, "run", &record.playbook, &started_at, selection.describe(), rows);
    report.warnings = plan.warnings.clone();
    report.from_env = plan.from_env.clone();
    if let Some(prev) = journal.previous_finished(&record.playbook, &[MODE_RUN, MODE_DUE], &run_id)? {
        if let Some(p) = prev.report.and_then(|v| serde_json::from_value::<Report>(v).ok()) {
            report.changes = Some(Changes::between(&p, &report));
        }
    }
    if !interrupted {
        let finished = chrono::Utc::now().to_rfc3339();
        report.finished_at = Some(finished.clone());
        journal.finish_run(&run_id, &finished, &serde_json::to_value(&report)?).await?;
    }
    let dir = common::write_reports(state_dir, &report).context("writing the report")?;
    if let Some(m) = &exec.metrics_file {
        crate::report::metrics::write(m, &report).with_context(|| format!("writing the metrics file {}", m.display()))?;
    }
    let color = std::io::stdout().is_terminal();
    let whole = matches!(exec.format, render::Format::Junit | render::Format::Sarif);
    if exec.quiet && report.complete() && !whole {
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
