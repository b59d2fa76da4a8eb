//! `report` and `history`.

use std::path::Path;

use anyhow::Result;

use super::{common, exit};
use crate::journal::Journal;
use crate::report::{render, Report};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Run id (default: the latest run).
    pub run_id: Option<String>,
    /// text (default), markdown, json, html, junit (JUnit XML), sarif (SARIF 2.1.0).
    #[arg(long, default_value = "text")]
    pub format: render::Format,
}

#[derive(clap::Args, Debug)]
pub struct HistoryArgs {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args, state_dir: &Path) -> Result<i32> {
    let journal = Journal::open(&common::journal_path(state_dir))?;
    let record = match &a.run_id {
        Some(id) => journal.run(id)?,
        None => journal.runs()?.into_iter().find(|r| r.mode != "discover"),
    };
    let Some(record) = record else {
        eprintln!("keysweep: no such run in {}; see `keysweep history`", state_dir.display());
        return Ok(exit::INVALID);
    };
    if record.mode == "discover" {
        let Some(d) = record.report.and_then(|v| serde_json::from_value::<crate::discover::DiscoveryReport>(v).ok()) else {
            eprintln!("keysweep: discovery {} has no report", record.id);
            return Ok(exit::GAPS);
        };
        match a.format {
            render::Format::Json => println!("{}", crate::discover::render::json(&d)),
            render::Format::Markdown => print!("{}", crate::discover::render::markdown(&d)),
            f @ (render::Format::Junit | render::Format::Sarif) => {
                eprintln!("keysweep: {} is a discovery; its report has no {f} form (text, markdown, json)", record.id);
                return Ok(exit::INVALID);
            }
            _ => print!("{}", crate::discover::render::text(&d, 0)),
        }
        return Ok(if d.clean() { exit::OK } else { exit::GAPS });
    }
    // A finished run's report is in the journal. An unfinished one's is the
    // last one written to disk (a run writes it even when interrupted).
    let report: Report = match &record.report {
        Some(v) => serde_json::from_value(v.clone())?,
        None => {
            let p = state_dir.join("runs").join(&record.id).join("report.json");
            match std::fs::read_to_string(&p) {
                Ok(s) => serde_json::from_str(&s)?,
                Err(_) => {
                    eprintln!(
                        "keysweep: run {} has no report yet (it was killed before writing one); `keysweep resume {}` finishes it",
                        record.id, record.id
                    );
                    return Ok(exit::GAPS);
                }
            }
        }
    };
    println!("{}", render::render(&report, a.format, std::io::IsTerminal::is_terminal(&std::io::stdout())));
    Ok(if report.complete() && record.finished_at.is_some() { exit::OK } else { exit::GAPS })
}

pub fn history(a: HistoryArgs, state_dir: &Path) -> Result<i32> {
    let journal = Journal::open(&common::journal_path(state_dir))?;
    let runs = journal.runs()?;
    if a.json {
        let v: Vec<_> = runs
            .iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.id, "mode": r.mode, "playbook": r.playbook, "started_at": r.started_at, "finished_at": r.finished_at,
                    "selection": r.selection, "totals": r.report.as_ref().map(|x| x["totals"].clone()),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(exit::OK);
    }
    if runs.is_empty() {
        println!("no runs in {}", state_dir.display());
    }
    for r in runs {
        let discovery = r
            .report
            .as_ref()
            .filter(|_| r.mode == "discover")
            .and_then(|x| serde_json::from_value::<crate::discover::DiscoveryReport>(x.clone()).ok());
        let totals = match (discovery, r.report.as_ref().and_then(|x| serde_json::from_value::<crate::report::Totals>(x["totals"].clone()).ok())) {
            (Some(d), _) => format!("discover: {}", crate::discover::render::summary_line(&d)),
            (None, Some(t)) if r.mode == "run-due" => format!("run --due: {}", render::totals_line(&t)),
            (None, Some(t)) => render::totals_line(&t),
            (None, None) => "unfinished — `keysweep resume` continues it".to_string(),
        };
        println!("{}  {}  {}\n    {}", r.id, r.started_at, r.playbook, totals);
    }
    Ok(exit::OK)
}
