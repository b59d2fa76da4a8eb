//! `plan`: the dry run. Changes nothing; reads providers to compare the
//! playbook with what they hold (coverage) and to report stuck pending values
//! (skip both with --offline).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;

use super::{common, exit};
use crate::discover;
use crate::plan;
use crate::report::{render, Outcome, Report, Row, Totals};

#[derive(clap::Args, Debug)]
pub struct Args {
    pub playbook: PathBuf,
    #[command(flatten)]
    pub selection: common::SelectArgs,
    /// Do not contact providers (no coverage comparison, no stuck-pending check).
    #[arg(long)]
    pub offline: bool,
    /// text (default), markdown, json, html, junit (JUnit XML), sarif (SARIF 2.1.0).
    #[arg(long, default_value = "text")]
    pub format: render::Format,
    /// Also list every selected credential with its steps (text format).
    #[arg(long, short)]
    pub verbose: bool,
    /// The global cap a run would be given (`run --concurrency`): plan says
    /// which providers it would hold below their own cap.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub concurrency: Option<u64>,
}

pub async fn run(a: Args, state_dir: &std::path::Path) -> Result<i32> {
    let mut pb = match common::load(&a.playbook) {
        Ok(pb) => pb,
        Err(code) => return Ok(code),
    };
    let selection = match a.selection.parse_against(&pb) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    // What needs the playbook's credentials comes first: the plan then takes
    // them rather than copying them. Its warnings come first in the report.
    let mut later_warnings = Vec::new();
    let mut discovered = None;
    if a.offline {
        // Without providers: only what the playbook itself says about its kinds.
        let g = discover::Gathered { inventories: Default::default(), stored: Default::default(), journal: Default::default(), notes: vec![] };
        let l = discover::limits(&pb, &g);
        for (what, ids) in [("can be rotated but not revoked", &l.cannot_revoke), ("can be revoked but not rotated", &l.cannot_rotate)] {
            if !ids.is_empty() {
                later_warnings.push(format!("{} credential(s) {what}: {}", ids.len(), ids.join(", ")));
            }
        }
    } else {
        let playbook = common::playbook_key(&a.playbook);
        // A dry run reads the journal's history but never creates one.
        let jp = common::journal_path(state_dir);
        let history = if jp.exists() { crate::journal::Journal::open(&jp)?.last_rotations(&playbook)? } else { Default::default() };
        discovered = Some(discover::discover(&pb, history, chrono::Utc::now()).await);
    }
    let plan = plan::build_taking(&mut pb, &selection);
    let mut warnings = plan.warnings.clone();
    warnings.append(&mut later_warnings);
    let mut discovery = None;

    if let Some((mut d, providers)) = discovered {
        d.playbook = a.playbook.display().to_string();
        d.credentials.clear();
        for p in d.providers.iter().filter(|p| p.error.is_some()) {
            warnings.push(format!("provider `{}` not checked: {}", p.provider, p.error.as_deref().unwrap_or_default()));
        }
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
                        "{} pending value(s) or claim(s) left by a run that is still going, was interrupted or failed, in {prov}:{m} ({}); `run` reports a credential held by a live run as a gap, and finishes or clears what an abandoned one left (retiring the orphans of a mint whose answer was lost)",
                        p.len(),
                        p.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
                    )),
                    Ok(_) => {}
                    Err(e) => warnings.push(format!("could not list pending values in {prov}:{m}: {e}")),
                }
            }
        }
        // A single-user account rotation proves the old password dead only by
        // logging in with it: warn when no store holds it.
        for w in plan.selected() {
            let Some(primary) = w.cred.deliver_to.first() else { continue };
            if plan::death_provable(&w.cred).is_err() || plan::death_provable_with(&w.cred, false).is_ok() {
                continue;
            }
            let Some(store) = providers.store(&primary.provider) else { continue };
            if let Ok(None) = store.read_current(primary).await {
                if let Err(why) = plan::death_provable_with(&w.cred, false) {
                    warnings.push(format!("`{}`: its death cannot be proven: {why} ({primary} is empty)", w.cred.id));
                }
            }
        }
        providers.close().await;
        discovery = Some(d);
    }

    // The text format prints the rows' totals, not the rows: they are counted
    // one at a time and not kept (for a large playbook, most of the memory).
    let keep_rows = a.format != render::Format::Text;
    let mut totals = Totals::default();
    let mut rows: Vec<Row> = Vec::with_capacity(if keep_rows { plan.items.len() } else { 0 });
    for w in &plan.items {
        let reason = match &w.skip {
            Some(r) => r.clone(),
            None => format!("dry run: would {} ({})", w.cred.action.as_str(), w.steps.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" → ")),
        };
        let row = common::row(w, Outcome::Skipped { reason });
        totals.count(&row);
        if keep_rows {
            rows.push(row);
        }
    }
    let mut report = Report::with_totals(
        "dry-run",
        "dry_run",
        &a.playbook.display().to_string(),
        &chrono::Utc::now().to_rfc3339(),
        selection.describe(),
        totals,
        rows,
    );
    report.warnings = warnings;
    report.from_env = plan.from_env.clone();
    report.discovery = discovery;

    match a.format {
        render::Format::Text => {
            print!("{}", text(&plan, &report, a.verbose));
            print!("{}", concurrency_text(&pb, &plan, a.concurrency.map(|n| usize::try_from(n).unwrap_or(usize::MAX))));
            if let Some(d) = &report.discovery {
                print!("\ncoverage: {}", discover::render::text(d, if a.verbose { 0 } else { 10 }));
            }
        }
        render::Format::Markdown => {
            println!("{}", render::render(&report, render::Format::Markdown, false));
            if let Some(d) = &report.discovery {
                print!("\n{}", discover::render::markdown(d).replacen("# keysweep discovery", "## Coverage", 1));
            }
        }
        f => println!("{}", render::render(&report, f, false)),
    }
    Ok(exit::OK)
}

/// How many credentials of each provider a run would work on at once, and
/// what a global cap would take from them.
fn concurrency_text(pb: &crate::playbook::Playbook, plan: &plan::Plan, set: Option<usize>) -> String {
    use crate::provider::adaptive::{self, Concurrency};
    use std::fmt::Write;
    let names: std::collections::BTreeSet<String> = common::needed_providers(plan);
    let per: Vec<(String, Concurrency)> =
        names.iter().filter_map(|n| pb.providers.get(n).map(|e| (n.clone(), Concurrency::of(e.config.spec())))).collect();
    if per.is_empty() {
        return String::new();
    }
    let mut s = String::new();
    let _ = writeln!(s, "\nconcurrency (credentials of a provider worked on at once):");
    for (n, c) in &per {
        let _ = writeln!(s, "  {n:<16} {c}");
    }
    if per.iter().any(|(_, c)| matches!(c, Concurrency::Adaptive { .. })) {
        let _ = writeln!(
            s,
            "  adaptive: grows while answers stay near their usual time, halves on 429/Retry-After/5xx/timeouts or answers well above it"
        );
    }
    match set {
        None => {
            let _ = writeln!(s, "  global: no cap beyond the providers' own (run --concurrency N sets one)");
        }
        Some(g) => {
            let _ = writeln!(s, "  global: at most {g} in all (--concurrency)");
            for note in adaptive::global_notes(set, &per) {
                let _ = writeln!(s, "  note: {note}");
            }
        }
    }
    s
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
    if !report.from_env.is_empty() {
        let _ = writeln!(s, "\nsettings from the environment:");
        for f in &report.from_env {
            let _ = writeln!(s, "  - {f}");
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
