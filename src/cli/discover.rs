//! `discover`: what the providers hold against what the playbook lists.
//! Reads only; changes nothing on any system.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{common, exit};
use crate::discover::{self, render, DiscoveryReport};
use crate::journal::{Journal, RunRecord};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Markdown,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    pub playbook: PathBuf,
    /// text (default), markdown or json.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Write draft playbook entries for every unlisted item to FILE (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    pub emit: Option<PathBuf>,
    /// List every finding in the terminal table (default: the first 25 of each kind).
    #[arg(long)]
    pub all: bool,
}

/// What changed since the previous discovery of the same playbook.
fn changes(prev: &DiscoveryReport, now: &DiscoveryReport) -> (Vec<String>, Vec<String>) {
    let key = |f: &discover::Finding| format!("{} {}  {}  {}", f.finding.as_str(), f.provider, f.kind, f.id);
    let a: BTreeSet<String> = prev.findings.iter().map(key).collect();
    let b: BTreeSet<String> = now.findings.iter().map(key).collect();
    (b.difference(&a).cloned().collect(), a.difference(&b).cloned().collect())
}

pub async fn run(a: Args, state_dir: &Path) -> Result<i32> {
    let pb = match common::load(&a.playbook) {
        Ok(pb) => pb,
        Err(code) => return Ok(code),
    };
    let playbook = common::playbook_key(&a.playbook);
    let journal = Journal::open(&common::journal_path(state_dir))?;
    let now = chrono::Utc::now();
    let (mut report, providers) = discover::discover(&pb, journal.last_rotations(&playbook)?, now).await;
    providers.close().await;
    report.playbook = a.playbook.display().to_string();

    // Keep it in the journal, so the next discovery (and `history`) can say what changed.
    let id = common::new_run_id();
    let prev = journal.previous_finished(&playbook, &["discover"], &id)?;
    let mut stored = report.clone();
    stored.credentials.clear();
    let record = RunRecord {
        id: id.clone(),
        mode: "discover".into(),
        playbook: playbook.clone(),
        fingerprint: pb.fingerprint.clone(),
        selection: vec![],
        started_at: now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        finished_at: None,
        report: None,
    };
    journal.start_run(record).await?;
    journal.finish_run(&id, &chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true), &serde_json::to_value(&stored)?).await?;

    match a.format {
        Format::Json => println!("{}", render::json(&report)),
        Format::Markdown => print!("{}", render::markdown(&report)),
        Format::Text => {
            print!("{}", render::text(&report, if a.all { 0 } else { 25 }));
            if let Some(prev) = prev.and_then(|p| p.report).and_then(|v| serde_json::from_value::<DiscoveryReport>(v).ok()) {
                let (new, gone) = changes(&prev, &report);
                println!("\nsince the previous discovery ({}): {} new finding(s), {} resolved", prev.generated_at, new.len(), gone.len());
                for n in new.iter().take(25) {
                    println!("  + {n}");
                }
                for g in gone.iter().take(25) {
                    println!("  - {g}");
                }
            }
        }
    }

    if let Some(path) = &a.emit {
        match discover::emit::draft(&pb, &report) {
            Some(text) if path.as_os_str() == "-" => print!("{text}"),
            Some(text) => {
                std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
                // keysweep's own logins are left as comments, not drafted.
                let n = text.lines().filter(|l| l.starts_with("  - id: ")).count();
                eprintln!(
                    "keysweep: wrote {n} draft entr{} to {}; fill in every owner, then add it to the playbook's include:",
                    if n == 1 { "y" } else { "ies" },
                    path.display()
                );
            }
            None => eprintln!("keysweep: nothing unlisted; no draft written"),
        }
    }

    Ok(if report.totals.providers_failed > 0 {
        exit::ERROR
    } else if report.totals.unlisted > 0 {
        exit::GAPS
    } else {
        exit::OK
    })
}
