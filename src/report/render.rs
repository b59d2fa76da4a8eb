//! Renderers of the completeness report: the totals line (always first), JSON
//! (the stable, documented shape), Markdown for an incident ticket, a terminal
//! summary and a self-contained HTML page.

use std::fmt::Write as _;
use std::str::FromStr;

use super::{Outcome, Report, Row, Totals};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Markdown,
    Text,
    Html,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "json" => Ok(Format::Json),
            "markdown" | "md" => Ok(Format::Markdown),
            "text" | "txt" => Ok(Format::Text),
            "html" => Ok(Format::Html),
            other => Err(format!("unknown format `{other}`; use one of: text, markdown, json, html")),
        }
    }
}

pub fn render(r: &Report, f: Format, color: bool) -> String {
    match f {
        Format::Json => json(r),
        Format::Markdown => markdown(r),
        Format::Text => text(r, color),
        Format::Html => html(r),
    }
}

/// The report's first line: every count, whether they add up, and the gaps.
pub fn totals_line(t: &Totals) -> String {
    let sum = t.rotated + t.revoked + t.unverified + t.failed + t.skipped;
    let check = if t.add_up() {
        format!("totals add up ({}+{}+{}+{}+{} = {})", t.rotated, t.revoked, t.unverified, t.failed, t.skipped, t.total)
    } else {
        format!("TOTALS DO NOT ADD UP (sum {sum} ≠ total {})", t.total)
    };
    let gaps = if t.gaps == 0 { "no gaps".to_string() } else { format!("{} gaps", t.gaps) };
    format!(
        "{} credentials: {} rotated, {} revoked, {} unverified, {} failed, {} skipped — {check}; {gaps}",
        t.total, t.rotated, t.revoked, t.unverified, t.failed, t.skipped
    )
}

pub fn json(r: &Report) -> String {
    serde_json::to_string_pretty(r).expect("a report always serialises")
}

/// Sections in reading order: gaps first.
const SECTIONS: [(&str, &str); 5] =
    [("failed", "Failed"), ("unverified", "Unverified"), ("rotated", "Rotated"), ("revoked", "Revoked"), ("skipped", "Skipped")];

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn step_of(row: &Row) -> &'static str {
    row.outcome.step().map(|s| s.as_str()).unwrap_or("")
}

/// Skipped rows that were not selected, collapsed by reason when numerous.
fn collapse_unselected(rows: &[&Row]) -> Option<Vec<(String, usize)>> {
    let unselected: Vec<&&Row> = rows.iter().filter(|r| !r.selected).collect();
    if unselected.len() <= 20 {
        return None;
    }
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for r in unselected {
        *counts.entry(r.outcome.detail().to_string()).or_default() += 1;
    }
    Some(counts.into_iter().collect())
}

pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "**{}**\n", totals_line(&r.totals));
    let _ = writeln!(s, "- run: `{}` ({})", r.run_id, r.mode);
    let _ = writeln!(s, "- playbook: `{}`", r.playbook);
    let _ = writeln!(s, "- started: {}", r.started_at);
    let _ = writeln!(s, "- finished: {}", r.finished_at.as_deref().unwrap_or("not finished"));
    let sel = if r.selection.is_empty() { "everything".to_string() } else { r.selection.join(", ") };
    let _ = writeln!(s, "- selection: {}", cell(&sel));
    for (name, title) in SECTIONS {
        let rows: Vec<&Row> = r.rows.iter().filter(|x| x.outcome.name() == name).collect();
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n## {title} ({})\n", rows.len());
        let collapsed = if name == "skipped" { collapse_unselected(&rows) } else { None };
        if let Some(c) = &collapsed {
            for (reason, n) in c {
                let _ = writeln!(s, "- {n} × {}", cell(reason));
            }
            let _ = writeln!(s);
        }
        let shown: Vec<&&Row> = rows.iter().filter(|x| collapsed.is_none() || x.selected).collect();
        if shown.is_empty() {
            continue;
        }
        let _ = writeln!(s, "| id | provider | kind | owner | step | detail |");
        let _ = writeln!(s, "|---|---|---|---|---|---|");
        for x in shown {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                cell(&x.id),
                cell(&x.provider),
                cell(&x.kind),
                cell(x.owner.as_deref().unwrap_or("")),
                step_of(x),
                cell(x.outcome.detail())
            );
        }
    }
    if !r.warnings.is_empty() {
        let _ = writeln!(s, "\n## Warnings\n");
        for w in &r.warnings {
            let _ = writeln!(s, "- {}", cell(w));
        }
    }
    s
}

pub fn text(r: &Report, color: bool) -> String {
    let paint = |code: &str, t: &str| if color { format!("\x1b[{code}m{t}\x1b[0m") } else { t.to_string() };
    let mut s = String::new();
    let line = totals_line(&r.totals);
    let _ = writeln!(s, "{}", if r.complete() { paint("32", &line) } else { paint("31;1", &line) });
    for x in &r.rows {
        let (label, code) = match &x.outcome {
            Outcome::Failed { .. } => ("FAILED    ", "31"),
            Outcome::Unverified { .. } => ("UNVERIFIED", "33"),
            Outcome::Skipped { .. } if x.selected => ("SKIPPED   ", "33"),
            _ => continue,
        };
        let _ = writeln!(
            s,
            "{}  {}  ({}/{})  at {}: {}",
            paint(code, label),
            x.id,
            x.provider,
            x.kind,
            step_of(x).to_string() + if step_of(x).is_empty() { "-" } else { "" },
            x.outcome.detail()
        );
    }
    let _ = writeln!(
        s,
        "{}",
        paint("32", &format!("{} rotated and {} revoked, old secrets proven dead", r.totals.rotated, r.totals.revoked))
    );
    for w in &r.warnings {
        let _ = writeln!(s, "{} {w}", paint("33", "warning:"));
    }
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

pub fn html(r: &Report) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>keysweep report {}</title><style>\
body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;margin-bottom:1.5em}}\
td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left;font-size:.9em}}th{{background:#f3f3f3}}\
.failed h2{{color:#b00}}.unverified h2{{color:#b70}}.totals{{font-weight:bold;font-size:1.1em}}</style></head><body>",
        esc(&r.run_id)
    );
    let _ = write!(s, "<p class=\"totals\">{}</p><ul>", esc(&totals_line(&r.totals)));
    let _ = write!(s, "<li>run: <code>{}</code> ({})</li>", esc(&r.run_id), esc(&r.mode));
    let _ = write!(s, "<li>playbook: <code>{}</code></li>", esc(&r.playbook));
    let _ = write!(s, "<li>started: {}</li><li>finished: {}</li>", esc(&r.started_at), esc(r.finished_at.as_deref().unwrap_or("not finished")));
    let _ = write!(s, "<li>selection: {}</li></ul>", esc(&if r.selection.is_empty() { "everything".into() } else { r.selection.join(", ") }));
    for (name, title) in SECTIONS {
        let rows: Vec<&Row> = r.rows.iter().filter(|x| x.outcome.name() == name).collect();
        if rows.is_empty() {
            continue;
        }
        let _ = write!(s, "<section class=\"{name}\"><h2>{title} ({})</h2>", rows.len());
        let collapsed = if name == "skipped" { collapse_unselected(&rows) } else { None };
        if let Some(c) = &collapsed {
            let _ = write!(s, "<ul>");
            for (reason, n) in c {
                let _ = write!(s, "<li>{n} × {}</li>", esc(reason));
            }
            let _ = write!(s, "</ul>");
        }
        let _ = write!(s, "<table><tr><th>id</th><th>provider</th><th>kind</th><th>owner</th><th>step</th><th>detail</th></tr>");
        for x in rows.iter().filter(|x| collapsed.is_none() || x.selected) {
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&x.id),
                esc(&x.provider),
                esc(&x.kind),
                esc(x.owner.as_deref().unwrap_or("")),
                step_of(x),
                esc(x.outcome.detail())
            );
        }
        let _ = write!(s, "</table></section>");
    }
    if !r.warnings.is_empty() {
        let _ = write!(s, "<h2>Warnings</h2><ul>");
        for w in &r.warnings {
            let _ = write!(s, "<li>{}</li>", esc(w));
        }
        let _ = write!(s, "</ul>");
    }
    s.push_str("</body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Step;

    fn row(id: &str, outcome: Outcome, selected: bool) -> Row {
        Row {
            id: id.into(),
            provider: "bao".into(),
            kind: "vault_token".into(),
            action: "rotate".into(),
            owner: Some("team".into()),
            tags: vec![],
            selected,
            outcome,
            old: Default::default(),
            new: Default::default(),
            duration_ms: Some(5),
        }
    }

    fn sample() -> Report {
        Report::new(
            "r1",
            "run",
            "p.yaml",
            "2026-01-01T00:00:00Z",
            vec!["tag=x".into()],
            vec![
                row("a", Outcome::Rotated { evidence: "lookup-accessor: HTTP 400 invalid accessor".into() }, true),
                row("b", Outcome::Revoked { evidence: "gone".into() }, true),
                row("c", Outcome::Unverified { step: Step::VerifyDead, reason: "HTTP 503".into() }, true),
                row("d|pipe", Outcome::Failed { step: Step::Test, reason: "refused <script>alert(1)</script>".into() }, true),
                row("e", Outcome::Skipped { reason: "not selected".into() }, false),
            ],
        )
    }

    #[test]
    fn totals_line_counts_and_adds_up() {
        let r = sample();
        let l = totals_line(&r.totals);
        assert_eq!(l, "5 credentials: 1 rotated, 1 revoked, 1 unverified, 1 failed, 1 skipped — totals add up (1+1+1+1+1 = 5); 2 gaps");
        let mut t = r.totals.clone();
        t.total += 1;
        assert!(totals_line(&t).contains("TOTALS DO NOT ADD UP (sum 5 ≠ total 6)"));
        let ok = Totals { total: 2, rotated: 2, ..Default::default() };
        assert!(totals_line(&ok).ends_with("no gaps"));
    }

    #[test]
    fn markdown_puts_gaps_first_and_escapes() {
        let m = markdown(&sample());
        assert!(m.starts_with("**5 credentials:"));
        let f = m.find("## Failed").unwrap();
        let u = m.find("## Unverified").unwrap();
        let r = m.find("## Rotated").unwrap();
        assert!(f < u && u < r);
        assert!(m.contains("d\\|pipe"));
    }

    #[test]
    fn html_escapes() {
        let h = html(&sample());
        assert!(!h.contains("<script>"));
        assert!(h.contains("&lt;script&gt;"));
    }

    #[test]
    fn json_round_trips() {
        let r = sample();
        let back: Report = serde_json::from_str(&json(&r)).unwrap();
        assert_eq!(back, r);
        let v: serde_json::Value = serde_json::from_str(&json(&r)).unwrap();
        assert_eq!(v["rows"][3]["outcome"], "failed");
        assert_eq!(v["rows"][3]["step"], "test");
    }

    #[test]
    fn text_lists_gaps() {
        let t = text(&sample(), false);
        assert!(t.lines().next().unwrap().starts_with("5 credentials"));
        assert!(t.contains("FAILED      d|pipe  (bao/vault_token)  at test: refused"));
        assert!(t.contains("UNVERIFIED  c"));
        assert!(!t.contains("  e  "));
    }

    #[test]
    fn formats_parse() {
        assert_eq!("md".parse::<Format>().unwrap(), Format::Markdown);
        assert_eq!("JSON".parse::<Format>().unwrap(), Format::Json);
        assert!("pdf".parse::<Format>().unwrap_err().contains("text, markdown, json, html"));
    }

    #[test]
    fn many_unselected_skips_collapse() {
        let mut rows: Vec<Row> = (0..30).map(|i| row(&format!("s{i}"), Outcome::Skipped { reason: "not selected (tag not in x)".into() }, false)).collect();
        rows.push(row("a", Outcome::Rotated { evidence: "dead".into() }, true));
        let r = Report::new("r", "run", "p", "t", vec![], rows);
        let m = markdown(&r);
        assert!(m.contains("- 30 × not selected (tag not in x)"));
        assert!(!m.contains("| s17 |"));
    }
}
