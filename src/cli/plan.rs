//! `plan`: the dry run. Changes nothing; reads providers only to report stuck
//! pending values (skip with --offline).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;

use super::{common, exit};
use crate::plan;
use crate::report::{render, Outcome, Report, Row};

#[derive(clap::Args, Debug)]
pub struct Args {
    pub playbook: PathBuf,
    #[command(flatten)]
    pub selection: common::SelectArgs,
    /// Do not contact providers (no stuck-pending check).
    #[arg(long)]
    pub offline: bool,
    /// text (default), markdown, json, html.
    #[arg(long, default_value = "text")]
    pub format: render::Format,
    /// Also list every selected credential with its steps (text format).
    #[arg(long, short)]
    pub verbose: bool,
}

pub async fn run(a: Args) -> Result<i32> {
    let pb = match common::load(&a.playbook) {
        Ok(pb) => pb,
        Err(code) => return Ok(code),
    };
    let selection = match a.selection.parse() {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let plan = plan::build(&pb, &selection);
    let mut warnings = plan.warnings.clone();

    if !a.offline {
        match crate::provider::registry::connect(&pb, &common::needed_providers(&plan)).await {
            Ok(providers) => {
                let mut mounts: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
                for w in plan.selected() {
                    for d in &w.cred.deliver_to {
                        mounts.entry(d.provider.clone()).or_default().insert(d.mount.clone());
                    }
                }
                for (prov, ms) in mounts {
                    let Some(store) = providers.store(&prov) else { continue };
                    for m in ms {
                        match store.list_pending(&m).await {
                            Ok(p) if !p.is_empty() => warnings.push(format!(
                                "{} pending value(s) left by an interrupted or failed run in {prov}:{m} ({}); `run` finishes or clears them",
                                p.len(),
                                p.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
                            )),
                            Ok(_) => {}
                            Err(e) => warnings.push(format!("could not list pending values in {prov}:{m}: {e}")),
                        }
                    }
                }
            }
            Err(e) => warnings.push(format!("providers not checked: {e:#}")),
        }
    }

    let rows: Vec<Row> = plan
        .items
        .iter()
        .map(|w| {
            let reason = match &w.skip {
                Some(r) => r.clone(),
                None => format!("dry run: would {} ({})", w.cred.action.as_str(), w.steps.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" → ")),
            };
            common::row(w, Outcome::Skipped { reason })
        })
        .collect();
    let mut report =
        Report::new("dry-run", "dry_run", &a.playbook.display().to_string(), &chrono::Utc::now().to_rfc3339(), selection.describe(), rows);
    report.warnings = warnings;

    match a.format {
        render::Format::Text => print!("{}", text(&plan, &report, a.verbose)),
        f => println!("{}", render::render(&report, f, false)),
    }
    Ok(exit::OK)
}

fn text(plan: &plan::Plan, report: &Report, verbose: bool) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let selected: Vec<_> = plan.selected().collect();
    let _ = writeln!(s, "{}", render::totals_line(&report.totals));
    let _ = writeln!(
        s,
        "dry run: {} of {} credential(s) selected, in {} wave(s); nothing was changed",
        selected.len(),
        plan.items.len(),
        plan.waves.len()
    );
    let mut by: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for w in &selected {
        *by.entry((w.cred.provider.clone(), w.cred.target.kind().to_string(), w.cred.action.as_str().to_string())).or_default() += 1;
    }
    let _ = writeln!(s, "\n  {:<16} {:<26} {:<8} {:>6}", "provider", "kind", "action", "count");
    for ((p, k, a), n) in &by {
        let _ = writeln!(s, "  {p:<16} {k:<26} {a:<8} {n:>6}");
    }
    if verbose {
        let _ = writeln!(s);
        for w in &selected {
            let steps: Vec<&str> = w.steps.iter().map(|s| s.as_str()).collect();
            let _ = writeln!(s, "  {}  {}/{}  {}", w.cred.id, w.cred.provider, w.cred.target.kind(), steps.join(" → "));
        }
    }
    if !report.warnings.is_empty() {
        let _ = writeln!(s, "\nwarnings:");
        for w in &report.warnings {
            let _ = writeln!(s, "  - {w}");
        }
    }
    s
}
