//! Renderers of the completeness report: the totals line (always first), JSON
//! (the stable, documented shape), Markdown for an incident ticket, a terminal
//! summary and a self-contained HTML page.
//!
//! Every renderer starts with [`totals_line`], lists the gaps (failed, then
//! unverified) before the successes, and says loudly when the totals do not add
//! up or do not match the rows. Text that comes from providers (reasons,
//! evidence) is escaped for the target: `|` and newlines in Markdown cells,
//! HTML entities in HTML, control characters on a terminal.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::str::FromStr;

use super::{Outcome, Report, Row, Totals};

/// Output format of a rendered report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Markdown,
    Text,
    Html,
    /// JUnit XML, for a CI's test view.
    Junit,
    /// SARIF 2.1.0, for code scanning.
    Sarif,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Markdown => "markdown",
            Format::Text => "text",
            Format::Html => "html",
            Format::Junit => "junit",
            Format::Sarif => "sarif",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(Format::Json),
            "markdown" | "md" => Ok(Format::Markdown),
            "text" | "txt" => Ok(Format::Text),
            "html" => Ok(Format::Html),
            "junit" | "junit-xml" => Ok(Format::Junit),
            "sarif" => Ok(Format::Sarif),
            _ => Err(format!("unknown report format `{}`; accepted: text (or txt), markdown (or md), json, html, junit, sarif", s.escape_debug())),
        }
    }
}

/// Every renderer removes known secret values twice: from the report's text
/// before rendering (so escaping cannot hide one) and from what it produced.
pub fn render(r: &Report, f: Format, color: bool) -> String {
    match f {
        Format::Json => json(r),
        Format::Markdown => markdown(r),
        Format::Text => text(r, color),
        Format::Html => html(r),
        Format::Junit => super::ci::junit(r),
        Format::Sarif => super::ci::sarif(r),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The report's first line: every count, whether they add up, and the gaps.
pub fn totals_line(t: &Totals) -> String {
    // Credentials waiting for a person are named only when there are any.
    let (human, human_term) = match t.awaiting_human {
        0 => (String::new(), String::new()),
        n => (format!(", {n} awaiting a human"), format!("+{n}")),
    };
    let check = if t.add_up() {
        format!("totals add up ({}+{}+{}+{}+{}{human_term} = {})", t.rotated, t.revoked, t.unverified, t.failed, t.skipped, t.total)
    } else {
        format!("TOTALS DO NOT ADD UP (sum {} ≠ total {})", sum(t), t.total)
    };
    let gaps = if t.gaps == 0 { "no gaps".to_string() } else { plural(t.gaps, "gap", "gaps") };
    format!(
        "{}: {} rotated, {} revoked, {} unverified, {} failed, {} skipped{human} — {check}; {gaps}",
        plural(t.total, "credential", "credentials"),
        t.rotated,
        t.revoked,
        t.unverified,
        t.failed,
        t.skipped
    )
}

fn sum(t: &Totals) -> usize {
    t.rotated + t.revoked + t.unverified + t.failed + t.skipped + t.awaiting_human
}

/// When the totals' counts are not those of the rows (a tampered or truncated
/// report), a loud sentence saying what the rows actually hold. `gaps` is not
/// compared: a dry run reports none by design.
fn rows_mismatch(r: &Report) -> Option<String> {
    let c = Totals::of(&r.rows);
    let t = &r.totals;
    let same = (c.total, c.rotated, c.revoked, c.unverified, c.failed, c.skipped, c.awaiting_human)
        == (t.total, t.rotated, t.revoked, t.unverified, t.failed, t.skipped, t.awaiting_human);
    (!same).then(|| {
        format!(
            "TOTALS DO NOT MATCH THE ROWS: the report lists {}: {} rotated, {} revoked, {} unverified, {} failed, {} skipped, {} awaiting a human",
            plural(c.total, "row", "rows"),
            c.rotated,
            c.revoked,
            c.unverified,
            c.failed,
            c.skipped,
            c.awaiting_human
        )
    })
}

/// Pretty JSON in the documented `keysweep.report/v1` shape.
pub fn json(r: &Report) -> String {
    crate::secret::redact(&json_unredacted(&r.redacted()))
}

fn json_unredacted(r: &Report) -> String {
    serde_json::to_string_pretty(r).unwrap_or_else(|e| {
        // Unreachable with these types (string keys only); still never panic on a report.
        serde_json::json!({ "schema": r.schema, "run_id": r.run_id, "error": format!("report not serialisable: {e}") }).to_string()
    })
}

/// Sections in reading order: gaps first.
const SECTIONS: [(&str, &str); 6] = [
    ("failed", "Failed"),
    ("awaiting_human", "Awaiting a human"),
    ("unverified", "Unverified"),
    ("rotated", "Rotated"),
    ("revoked", "Revoked"),
    ("skipped", "Skipped"),
];

/// Collapse unselected skips into count lines above this many.
const COLLAPSE_ABOVE: usize = 20;

/// One outcome's section: the rows shown in the table, and the unselected
/// skips collapsed into `(reason, count)` lines.
struct Section<'a> {
    name: &'static str,
    title: &'static str,
    count: usize,
    rows: Vec<&'a Row>,
    collapsed: Vec<(&'a str, usize)>,
}

fn sections(r: &Report) -> Vec<Section<'_>> {
    let mut out = Vec::new();
    for (name, title) in SECTIONS {
        let mut rows: Vec<&Row> = r.rows.iter().filter(|x| x.outcome.name() == name).collect();
        if rows.is_empty() {
            continue;
        }
        let count = rows.len();
        let mut collapsed = Vec::new();
        if name == "skipped" {
            // Selected skips are gaps: they come first and are never collapsed.
            rows.sort_by_key(|x| !x.selected);
            let unselected = rows.iter().filter(|x| !x.selected).count();
            if unselected > COLLAPSE_ABOVE {
                let mut by_reason: BTreeMap<&str, usize> = BTreeMap::new();
                for x in rows.iter().filter(|x| !x.selected) {
                    // A hygiene run's reasons carry each credential's age: count them as one.
                    let d = x.outcome.detail();
                    let key = if d.starts_with("not due") { "not due" } else { d };
                    *by_reason.entry(key).or_default() += 1;
                }
                collapsed = by_reason.into_iter().collect();
                collapsed.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
                rows.retain(|x| x.selected);
            }
        }
        out.push(Section { name, title, count, rows, collapsed });
    }
    out
}

fn step_of(row: &Row) -> &'static str {
    row.outcome.step().map(|s| s.as_str()).unwrap_or("")
}

fn selection_of(r: &Report) -> String {
    if r.selection.is_empty() {
        "everything in the playbook".to_string()
    } else {
        r.selection.join(", ")
    }
}

// ---------- Markdown ----------

/// A Markdown table cell: `|` escaped, line breaks as `<br>`, other control
/// characters as spaces.
fn cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '|' => out.push_str("\\|"),
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str("<br>");
            }
            '\n' => out.push_str("<br>"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Inline text on one Markdown line (a list item): no line breaks.
fn inline(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// A Markdown code span that survives backticks in its content.
fn code(s: &str) -> String {
    let s = inline(s);
    let longest = s.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') { " " } else { "" };
    format!("{fence}{pad}{s}{pad}{fence}")
}

/// The report for an incident ticket.
pub fn markdown(r: &Report) -> String {
    crate::secret::redact(&markdown_unredacted(&r.redacted()))
}

fn markdown_unredacted(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "**{}**\n", totals_line(&r.totals));
    if let Some(m) = rows_mismatch(r) {
        let _ = writeln!(s, "**{m}**\n");
    }
    let _ = writeln!(s, "- run id: {}", code(&r.run_id));
    let _ = writeln!(s, "- mode: {}", code(&r.mode));
    let _ = writeln!(s, "- playbook: {}", code(&r.playbook));
    let _ = writeln!(s, "- started: {}", inline(&r.started_at));
    let _ = writeln!(s, "- finished: {}", r.finished_at.as_deref().map(inline).unwrap_or_else(|| "not finished".into()));
    let _ = writeln!(s, "- selection: {}", inline(&selection_of(r)));
    for sec in sections(r) {
        let _ = writeln!(s, "\n## {} ({})\n", sec.title, sec.count);
        if !sec.rows.is_empty() {
            let _ = writeln!(s, "| id | provider | kind | owner | step | detail |");
            let _ = writeln!(s, "|---|---|---|---|---|---|");
            for x in &sec.rows {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} |",
                    cell(&x.id),
                    cell(&x.provider),
                    cell(&x.kind),
                    cell(x.owner.as_deref().unwrap_or("")),
                    step_of(x),
                    cell(&match &x.due {
                        Some(d) => format!("{} (due: {d})", x.outcome.detail()),
                        None => x.outcome.detail().to_string(),
                    })
                );
            }
        }
        if !sec.collapsed.is_empty() {
            if !sec.rows.is_empty() {
                let _ = writeln!(s);
            }
            for (reason, n) in &sec.collapsed {
                let _ = writeln!(s, "- {n} × {}", inline(reason));
            }
        }
    }
    if let Some(c) = &r.changes {
        let _ = writeln!(s, "\n## Changes since run {}\n", code(&c.previous_run));
        if c.is_empty() {
            let _ = writeln!(s, "- none");
        }
        for id in &c.added {
            let _ = writeln!(s, "- added: {}", code(id));
        }
        for id in &c.removed {
            let _ = writeln!(s, "- removed: {}", code(id));
        }
        for ch in &c.changed {
            let _ = writeln!(s, "- {}: {} → {}", code(&ch.id), inline(&ch.from), inline(&ch.to));
        }
    }
    if !r.warnings.is_empty() {
        let _ = writeln!(s, "\n## Warnings\n");
        for w in &r.warnings {
            let _ = writeln!(s, "- {}", inline(w));
        }
    }
    s
}

// ---------- terminal ----------

/// Provider text made safe for a terminal: no escape sequences, no line
/// breaks, no bidi overrides.
fn term(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\n' | '\r' | '\t' => ' ',
            '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => '\u{FFFD}',
            c if c.is_control() => '\u{FFFD}',
            c => c,
        })
        .collect()
}

const RED: &str = "31";
const BOLD_RED: &str = "1;31";
const YELLOW: &str = "33";
const GREEN: &str = "32";

/// A terminal summary: the totals line, one line per gap, a count of the
/// verified ones, the warnings.
pub fn text(r: &Report, color: bool) -> String {
    crate::secret::redact(&text_unredacted(&r.redacted(), color))
}

fn text_unredacted(r: &Report, color: bool) -> String {
    let paint = |code: &str, t: &str| if color { format!("\x1b[{code}m{t}\x1b[0m") } else { t.to_string() };
    let t = &r.totals;
    let mismatch = rows_mismatch(r);
    let mut s = String::new();
    let headline = if !t.add_up() || mismatch.is_some() || t.failed > 0 {
        BOLD_RED
    } else if t.gaps > 0 || t.unverified > 0 {
        YELLOW
    } else {
        GREEN
    };
    let _ = writeln!(s, "{}", paint(headline, &totals_line(t)));
    if let Some(m) = &mismatch {
        let _ = writeln!(s, "{}", paint(BOLD_RED, m));
    }
    let dry_run = r.mode == "dry_run";
    for x in &r.rows {
        let (label, code) = match &x.outcome {
            Outcome::Failed { .. } => ("FAILED", RED),
            Outcome::Unverified { .. } => ("UNVERIFIED", YELLOW),
            Outcome::AwaitingHuman { .. } => ("AWAITING A HUMAN", YELLOW),
            // A selected credential skipped in a real run (a dependency failed) is a gap too.
            Outcome::Skipped { .. } if x.selected && !dry_run => ("SKIPPED", YELLOW),
            _ => continue,
        };
        let at = match x.outcome.step() {
            Some(step) => format!("  at {}", step.as_str()),
            None => String::new(),
        };
        let _ = writeln!(
            s,
            "{}  {}  ({}/{}){at}: {}",
            paint(code, &format!("{label:<10}")),
            term(&x.id),
            term(&x.provider),
            term(&x.kind),
            term(x.outcome.detail())
        );
    }
    let mut done = format!("{} rotated, {} revoked: old secrets proven dead", t.rotated, t.revoked);
    if t.skipped > 0 {
        let _ = write!(done, "; {} skipped", t.skipped);
    }
    let _ = writeln!(s, "{}", paint(GREEN, &done));
    if let Some(c) = &r.changes {
        if c.is_empty() {
            let _ = writeln!(s, "since run {}: no change", term(&c.previous_run));
        } else {
            let _ = writeln!(
                s,
                "since run {}: {} added, {} removed, {} changed outcome",
                term(&c.previous_run),
                c.added.len(),
                c.removed.len(),
                c.changed.len()
            );
            for ch in c.changed.iter().take(20) {
                let _ = writeln!(s, "  {}: {} → {}", term(&ch.id), term(&ch.from), term(&ch.to));
            }
        }
    }
    for w in &r.warnings {
        let _ = writeln!(s, "{} {}", paint(YELLOW, "warning:"), term(w));
    }
    s
}

// ---------- HTML ----------

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\r' | '\t' => out.push(c),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:80em}\
.totals{font-weight:bold;font-size:1.1em;padding:.5em .8em;border-radius:4px}\
.ok{background:#e6f4ea;color:#14532d}.gaps{background:#fff4e0;color:#7a4b00}.bad{background:#fde8e8;color:#9b1c1c}\
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dt{font-weight:bold}dd{margin:0}\
table{border-collapse:collapse;margin-bottom:1.5em}\
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top;font-size:.9em}\
th{background:#f3f3f3}td{white-space:pre-wrap}\
.failed h2{color:#b00}.unverified h2,.awaiting_human h2{color:#b70}.rotated h2,.revoked h2{color:#176b2c}";

/// A self-contained HTML page with the same content as [`markdown`].
pub fn html(r: &Report) -> String {
    crate::secret::redact(&html_unredacted(&r.redacted()))
}

fn html_unredacted(r: &Report) -> String {
    let t = &r.totals;
    let mismatch = rows_mismatch(r);
    let class = if !t.add_up() || mismatch.is_some() || t.failed > 0 {
        "bad"
    } else if t.gaps > 0 || t.unverified > 0 {
        "gaps"
    } else {
        "ok"
    };
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>keysweep report {}</title><style>{CSS}</style></head><body>\n",
        esc(&r.run_id)
    );
    let _ = writeln!(s, "<p class=\"totals {class}\">{}</p>", esc(&totals_line(t)));
    if let Some(m) = &mismatch {
        let _ = writeln!(s, "<p class=\"totals bad\">{}</p>", esc(m));
    }
    let _ = writeln!(s, "<dl>");
    let finished = r.finished_at.as_deref().unwrap_or("not finished");
    for (k, v) in [
        ("run id", r.run_id.as_str()),
        ("mode", r.mode.as_str()),
        ("playbook", r.playbook.as_str()),
        ("started", r.started_at.as_str()),
        ("finished", finished),
        ("selection", &selection_of(r)),
    ] {
        let _ = writeln!(s, "<dt>{k}</dt><dd>{}</dd>", esc(v));
    }
    let _ = writeln!(s, "</dl>");
    for sec in sections(r) {
        let _ = writeln!(s, "<section class=\"{}\"><h2>{} ({})</h2>", sec.name, sec.title, sec.count);
        if !sec.rows.is_empty() {
            let _ = writeln!(
                s,
                "<table><thead><tr><th>id</th><th>provider</th><th>kind</th><th>owner</th><th>step</th><th>detail</th></tr></thead><tbody>"
            );
            for x in &sec.rows {
                let _ = writeln!(
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
            let _ = writeln!(s, "</tbody></table>");
        }
        if !sec.collapsed.is_empty() {
            let _ = writeln!(s, "<ul>");
            for (reason, n) in &sec.collapsed {
                let _ = writeln!(s, "<li>{n} × {}</li>", esc(reason));
            }
            let _ = writeln!(s, "</ul>");
        }
        let _ = writeln!(s, "</section>");
    }
    if !r.warnings.is_empty() {
        let _ = writeln!(s, "<section class=\"warnings\"><h2>Warnings</h2><ul>");
        for w in &r.warnings {
            let _ = writeln!(s, "<li>{}</li>", esc(w));
        }
        let _ = writeln!(s, "</ul></section>");
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
            old: [("accessor".to_string(), "acc-1".to_string())].into(),
            new: Default::default(),
            duration_ms: Some(5),
            due: None,
            defined_at: None,
        }
    }

    /// One row per outcome kind.
    fn sample() -> Report {
        let mut r = Report::new(
            "r1",
            "run",
            "p.yaml",
            "2026-01-01T00:00:00Z",
            vec!["tag=x".into()],
            vec![
                row("a", Outcome::Rotated { evidence: "lookup-accessor: HTTP 400 invalid accessor".into() }, true),
                row("b", Outcome::Revoked { evidence: "gone".into() }, true),
                row("c", Outcome::Unverified { step: Step::VerifyDead, reason: "HTTP 503\nretry later".into() }, true),
                row("d|pipe", Outcome::Failed { step: Step::Test, reason: "refused <script>alert(1)</script>".into() }, true),
                row("e", Outcome::Skipped { reason: "not selected".into() }, false),
            ],
        );
        r.finished_at = Some("2026-01-01T00:01:00Z".into());
        r.warnings.push("stuck AWSPENDING on db/app".into());
        r
    }

    fn tampered() -> Report {
        let mut r = sample();
        r.totals.total += 1;
        r
    }

    #[test]
    fn totals_line_counts_and_adds_up() {
        let r = sample();
        assert_eq!(
            totals_line(&r.totals),
            "5 credentials: 1 rotated, 1 revoked, 1 unverified, 1 failed, 1 skipped — totals add up (1+1+1+1+1 = 5); 2 gaps"
        );
        let big = Totals { total: 2000, rotated: 1990, revoked: 4, unverified: 3, failed: 2, skipped: 1, gaps: 5, awaiting_human: 0 };
        assert_eq!(
            totals_line(&big),
            "2000 credentials: 1990 rotated, 4 revoked, 3 unverified, 2 failed, 1 skipped — totals add up (1990+4+3+2+1 = 2000); 5 gaps"
        );
        let ok = Totals { total: 2, rotated: 2, ..Default::default() };
        assert!(totals_line(&ok).ends_with("totals add up (2+0+0+0+0 = 2); no gaps"));
    }

    #[test]
    fn tampered_totals_are_loud_everywhere() {
        let r = tampered();
        let line = totals_line(&r.totals);
        assert!(line.contains("TOTALS DO NOT ADD UP (sum 5 ≠ total 6)"), "{line}");
        assert!(!line.contains("totals add up"));
        assert!(markdown(&r).starts_with("**6 credentials:"));
        assert!(markdown(&r).lines().next().unwrap().contains("TOTALS DO NOT ADD UP"));
        assert!(text(&r, false).lines().next().unwrap().contains("TOTALS DO NOT ADD UP (sum 5 ≠ total 6)"));
        assert!(html(&r).contains("TOTALS DO NOT ADD UP (sum 5 ≠ total 6)"));
        assert!(html(&r).contains("class=\"totals bad\""));
        // Totals that add up but are not the rows' counts are caught too.
        let mut r = sample();
        r.totals.rotated += 1;
        r.totals.total += 1;
        assert!(r.totals.add_up());
        assert!(markdown(&r).contains("TOTALS DO NOT MATCH THE ROWS: the report lists 5 rows"));
        assert!(text(&r, false).lines().nth(1).unwrap().contains("TOTALS DO NOT MATCH THE ROWS"));
        assert!(rows_mismatch(&sample()).is_none());
    }

    #[test]
    fn markdown_puts_gaps_first_and_escapes() {
        let m = markdown(&sample());
        assert!(m.starts_with("**5 credentials: 1 rotated,"));
        for k in [
            "- run id: `r1`",
            "- mode: `run`",
            "- playbook: `p.yaml`",
            "- started: 2026-01-01T00:00:00Z",
            "- finished: 2026-01-01T00:01:00Z",
            "- selection: tag=x",
        ] {
            assert!(m.contains(k), "missing {k} in\n{m}");
        }
        let pos = |h: &str| m.find(h).unwrap_or_else(|| panic!("no {h}"));
        assert!(pos("## Failed (1)") < pos("## Unverified (1)"));
        assert!(pos("## Unverified") < pos("## Rotated (1)"));
        assert!(pos("## Rotated") < pos("## Revoked (1)"));
        assert!(pos("## Revoked") < pos("## Skipped (1)"));
        assert!(pos("## Skipped") < pos("## Warnings"));
        assert!(m.contains("| d\\|pipe | bao | vault_token | team | test | refused <script>alert(1)</script> |"));
        assert!(m.contains("| c | bao | vault_token | team | verify_dead | HTTP 503<br>retry later |"));
        assert!(m.contains("- stuck AWSPENDING on db/app"));
        // Empty sections are left out.
        let mut r = sample();
        r.rows.retain(|x| x.outcome.is_verified());
        r.totals = Totals::of(&r.rows);
        assert!(!markdown(&r).contains("## Failed"));
    }

    #[test]
    fn markdown_cells_and_code_spans() {
        assert_eq!(cell("a|b\r\nc\nd\te"), "a\\|b<br>c<br>d e");
        assert_eq!(code("run`1"), "``run`1``");
        assert_eq!(code("`x"), "`` `x ``");
    }

    #[test]
    fn many_unselected_skips_collapse() {
        let mut rows: Vec<Row> =
            (0..30).map(|i| row(&format!("s{i}"), Outcome::Skipped { reason: "not selected (tag not in x)".into() }, false)).collect();
        rows.push(row("dep", Outcome::Skipped { reason: "dependency db failed".into() }, true));
        rows.push(row("a", Outcome::Rotated { evidence: "dead".into() }, true));
        let r = Report::new("r", "run", "p", "t", vec![], rows);
        let m = markdown(&r);
        assert!(m.contains("## Skipped (31)"));
        assert!(m.contains("- 30 × not selected (tag not in x)"));
        assert!(!m.contains("| s17 |"));
        assert!(m.contains("| dep | bao |"), "selected skips stay listed");
        assert!(m.contains("- selection: everything in the playbook"));
        let h = html(&r);
        assert!(h.contains("<li>30 × not selected (tag not in x)</li>"));
        assert!(!h.contains("<td>s17</td>"));
        // 20 or fewer are listed one by one.
        let few: Vec<Row> = (0..20).map(|i| row(&format!("s{i}"), Outcome::Skipped { reason: "not selected".into() }, false)).collect();
        assert!(markdown(&Report::new("r", "run", "p", "t", vec![], few)).contains("| s17 |"));
    }

    #[test]
    fn html_is_self_contained_and_escaped() {
        let h = html(&sample());
        assert!(h.starts_with("<!DOCTYPE html>"));
        assert!(h.contains("<style>") && !h.contains("<link") && !h.contains("<script"));
        assert!(h.contains("refused &lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(h.contains("<td>d|pipe</td>"));
        let (f, rot) = (h.find("Failed (1)").unwrap(), h.find("Rotated (1)").unwrap());
        assert!(f < rot);
        assert!(h.contains("5 credentials: 1 rotated"));
        assert!(h.contains("<li>stuck AWSPENDING on db/app</li>"));
        assert!(h.trim_end().ends_with("</html>"));
        let mut r = sample();
        r.run_id = "\"><img src=x onerror=alert(1)>".into();
        assert!(!html(&r).contains("<img"));
    }

    #[test]
    fn json_round_trips() {
        let r = sample();
        let back: Report = serde_json::from_str(&json(&r)).unwrap();
        assert_eq!(back, r);
        let v: serde_json::Value = serde_json::from_str(&json(&r)).unwrap();
        assert_eq!(v["schema"], "keysweep.report/v1");
        assert_eq!(v["rows"][3]["outcome"], "failed");
        assert_eq!(v["rows"][3]["step"], "test");
        assert!(json(&r).contains("\n  \"run_id\": \"r1\""), "pretty-printed");
    }

    #[test]
    fn text_lists_gaps() {
        let t = text(&sample(), false);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("5 credentials"));
        assert_eq!(lines[1], "UNVERIFIED  c  (bao/vault_token)  at verify_dead: HTTP 503 retry later");
        assert_eq!(lines[2], "FAILED      d|pipe  (bao/vault_token)  at test: refused <script>alert(1)</script>");
        assert_eq!(lines[3], "1 rotated, 1 revoked: old secrets proven dead; 1 skipped");
        assert_eq!(lines[4], "warning: stuck AWSPENDING on db/app");
        assert_eq!(lines.len(), 5);
        assert!(!t.contains('\x1b'));
    }

    #[test]
    fn text_colors_and_strips_escapes() {
        let mut r = sample();
        r.rows[3].outcome = Outcome::Failed { step: Step::Apply, reason: "boom\x1b[2Jcleared".into() };
        let t = text(&r, true);
        assert!(t.starts_with("\x1b[1;31m5 credentials"));
        assert!(t.contains("\x1b[31mFAILED    \x1b[0m"));
        assert!(t.contains("\x1b[33mUNVERIFIED\x1b[0m"));
        assert!(t.contains("\x1b[32m1 rotated, 1 revoked"));
        assert!(t.contains("boom\u{FFFD}[2Jcleared"));
        assert!(!t.contains("\x1b[2J"));
        let ok = Report::new("r", "run", "p", "t", vec![], vec![row("a", Outcome::Rotated { evidence: "dead".into() }, true)]);
        assert!(text(&ok, true).starts_with("\x1b[32m1 credential: 1 rotated"));
    }

    #[test]
    fn text_lists_selected_skips_outside_dry_runs() {
        let rows = vec![row("dep", Outcome::Skipped { reason: "dependency db failed".into() }, true)];
        let r = Report::new("r", "run", "p", "t", vec![], rows.clone());
        assert!(text(&r, false).contains("SKIPPED     dep  (bao/vault_token): dependency db failed"));
        let dry = Report::new("r", "dry_run", "p", "t", vec![], rows);
        assert!(!text(&dry, false).contains("SKIPPED "));
    }

    #[test]
    fn every_format_removes_known_secret_values_even_escaped() {
        // `|`, `<` and `&` are escaped differently by each format.
        let v = format!("{}|{}<{}&", "rep0rt", "Val", "ue");
        let _s = crate::secret::SecretString::from(v.clone());
        let mut r = sample();
        r.rows[3].outcome = Outcome::Failed { step: Step::Test, reason: format!("HTTP 500 echo: {v}") };
        r.warnings.push(format!("pending holds {v}"));
        for f in [Format::Text, Format::Markdown, Format::Json, Format::Html, Format::Junit, Format::Sarif] {
            let out = render(&r, f, false);
            assert!(!out.contains("rep0rt"), "{f}: {out}");
            assert!(out.contains("[REDACTED]"), "{f}: {out}");
        }
    }

    #[test]
    fn formats_parse() {
        assert_eq!("json".parse::<Format>(), Ok(Format::Json));
        assert_eq!("markdown".parse::<Format>(), Ok(Format::Markdown));
        assert_eq!("md".parse::<Format>(), Ok(Format::Markdown));
        assert_eq!("text".parse::<Format>(), Ok(Format::Text));
        assert_eq!("TXT".parse::<Format>(), Ok(Format::Text));
        assert_eq!("html".parse::<Format>(), Ok(Format::Html));
        let e = "pdf".parse::<Format>().unwrap_err();
        assert!(e.contains("`pdf`") && e.contains("text (or txt), markdown (or md), json, html, junit, sarif"), "{e}");
        for f in [Format::Json, Format::Markdown, Format::Text, Format::Html, Format::Junit, Format::Sarif] {
            assert_eq!(f.to_string().parse::<Format>(), Ok(f));
        }
        let r = sample();
        assert_eq!(render(&r, Format::Markdown, true), markdown(&r));
        assert_eq!(render(&r, Format::Text, false), text(&r, false));
    }
}
