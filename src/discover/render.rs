//! The discovery report as a terminal table, Markdown (for a ticket) or JSON.

use std::fmt::Write;

use super::{DiscoveryReport, FindingKind, ProviderCoverage};

fn pct(c: Option<f64>) -> String {
    match c {
        Some(v) => format!("{:.1}%", v * 100.0),
        None => "—".into(),
    }
}

/// One line: what was held, what was listed, what is missing.
pub fn summary_line(r: &DiscoveryReport) -> String {
    let t = &r.totals;
    let mut s = format!(
        "{} item(s) held: {} listed, {} store entr{}, {} ignored, {} unlisted; {} stale, {} inactive, {} overdue, {} privileged; coverage {}",
        t.discovered,
        t.listed,
        t.stores,
        if t.stores == 1 { "y" } else { "ies" },
        t.ignored,
        t.unlisted,
        t.stale,
        t.inactive,
        t.overdue,
        t.privileged,
        pct(t.coverage)
    );
    if t.providers_failed > 0 {
        let _ = write!(s, "; INCOMPLETE: {} provider(s) not inventoried", t.providers_failed);
    }
    s
}

fn provider_row(p: &ProviderCoverage) -> [String; 9] {
    [
        p.provider.clone(),
        p.provider_kind.clone(),
        p.discovered.to_string(),
        p.listed.to_string(),
        p.stores.to_string(),
        p.ignored.to_string(),
        p.unlisted.to_string(),
        p.stale.to_string(),
        if p.error.is_some() { "error".into() } else { pct(p.coverage) },
    ]
}

const HEAD: [&str; 9] = ["provider", "kind", "discovered", "listed", "stores", "ignored", "unlisted", "stale", "coverage"];

fn heading(k: FindingKind) -> &'static str {
    match k {
        FindingKind::Unlisted => "unlisted — held by a provider, not in the playbook",
        FindingKind::Stale => "stale — in the playbook, not held by its provider",
        FindingKind::Inactive => "inactive — unused for longer than inactive_after, or never used",
        FindingKind::Overdue => "overdue — older than max_age",
        FindingKind::Privileged => "privileged — admin, superuser or wide scopes",
    }
}

/// The terminal form; at most `limit` findings per kind (0: all).
pub fn text(r: &DiscoveryReport, limit: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}", summary_line(r));
    let _ = writeln!(s, "discovery of {} at {}\n", r.playbook, r.generated_at);
    let rows: Vec<[String; 9]> = r.providers.iter().map(provider_row).collect();
    let mut w = HEAD.map(str::len);
    for row in &rows {
        for (i, c) in row.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| if i < 2 { format!("{c:<w$}", w = w[i]) } else { format!("{c:>w$}", w = w[i]) })
            .collect::<Vec<_>>()
            .join("  ")
    };
    let _ = writeln!(s, "  {}", line(&HEAD.map(String::from)));
    for row in &rows {
        let _ = writeln!(s, "  {}", line(row));
    }
    for p in r.providers.iter().filter(|p| p.error.is_some()) {
        let _ = writeln!(s, "  ! {}: {}", p.provider, p.error.as_deref().unwrap_or_default());
    }
    for k in FindingKind::ALL {
        let fs: Vec<_> = r.of(k).collect();
        if fs.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n{} ({}):", heading(k), fs.len());
        let shown = if limit == 0 { fs.len() } else { limit.min(fs.len()) };
        for f in &fs[..shown] {
            let who = f.credential.as_deref().map(|c| format!(" [{c}]")).unwrap_or_default();
            let _ = writeln!(s, "  {}  {}  {}{}  {}", f.provider, f.kind, f.id, who, f.detail);
        }
        if shown < fs.len() {
            let _ = writeln!(s, "  … and {} more (--format json or markdown lists all)", fs.len() - shown);
        }
    }
    if !r.ignored.is_empty() {
        let _ = writeln!(s, "\nignored by the playbook ({}):", r.ignored.len());
        for i in &r.ignored {
            let _ = writeln!(s, "  {}  {}  {}  — {}", i.provider, i.kind, i.id, i.reason);
        }
    }
    limits_text(&mut s, r, "\n", "  - ");
    for n in &r.notes {
        let _ = writeln!(s, "\nnote: {n}");
    }
    s
}

fn limits_text(s: &mut String, r: &DiscoveryReport, lead: &str, bullet: &str) {
    let l = &r.limits;
    let lists = [
        ("can be rotated but not revoked", &l.cannot_revoke),
        ("can be revoked but not rotated", &l.cannot_rotate),
        ("death of the old secret cannot be proven (ends `unverified`)", &l.cannot_verify),
    ];
    if lists.iter().all(|(_, v)| v.is_empty()) && l.usage_unknown.is_empty() {
        return;
    }
    let _ = writeln!(s, "{lead}limits of what keysweep can do:");
    for (what, ids) in lists {
        if !ids.is_empty() {
            let shown: Vec<&str> = ids.iter().take(10).map(String::as_str).collect();
            let more = if ids.len() > 10 { format!(" … and {} more", ids.len() - 10) } else { String::new() };
            let _ = writeln!(s, "{bullet}{} credential(s) {what}: {}{more}", ids.len(), shown.join(", "));
        }
    }
    if !l.usage_unknown.is_empty() {
        let _ = writeln!(s, "{bullet}last use is not recorded for: {} (inactivity cannot be judged there)", l.usage_unknown.join(", "));
    }
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The Markdown form: every finding, for an incident ticket.
pub fn markdown(r: &DiscoveryReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# keysweep discovery\n");
    let _ = writeln!(s, "Playbook `{}`, {}.\n", md_cell(&r.playbook), r.generated_at);
    let _ = writeln!(s, "**{}**\n", md_cell(&summary_line(r)));
    let _ = writeln!(s, "| {} |", HEAD.join(" | "));
    let _ = writeln!(s, "|{}", "---|".repeat(HEAD.len()));
    for p in &r.providers {
        let _ = writeln!(s, "| {} |", provider_row(p).map(|c| md_cell(&c)).join(" | "));
    }
    for p in r.providers.iter().filter(|p| p.error.is_some()) {
        let _ = writeln!(s, "\n> `{}` could not be inventoried: {}", p.provider, md_cell(p.error.as_deref().unwrap_or_default()));
    }
    for k in FindingKind::ALL {
        let fs: Vec<_> = r.of(k).collect();
        if fs.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n## {} ({})\n", heading(k), fs.len());
        let _ = writeln!(s, "| provider | kind | id | credential | owner | detail |\n|---|---|---|---|---|---|");
        for f in fs {
            let _ = writeln!(
                s,
                "| {} | {} | `{}` | {} | {} | {} |",
                md_cell(&f.provider),
                md_cell(&f.kind),
                md_cell(&f.id),
                f.credential.as_deref().map(md_cell).unwrap_or_default(),
                f.owner.as_deref().map(md_cell).unwrap_or_default(),
                md_cell(&f.detail)
            );
        }
    }
    if !r.ignored.is_empty() {
        let _ = writeln!(s, "\n## ignored by the playbook ({})\n\n| provider | kind | id | reason |\n|---|---|---|---|", r.ignored.len());
        for i in &r.ignored {
            let _ = writeln!(s, "| {} | {} | `{}` | {} |", md_cell(&i.provider), md_cell(&i.kind), md_cell(&i.id), md_cell(&i.reason));
        }
    }
    limits_text(&mut s, r, "\n## ", "- ");
    for n in &r.notes {
        let _ = writeln!(s, "\n> note: {}", md_cell(n));
    }
    s
}

pub fn json(r: &DiscoveryReport) -> String {
    serde_json::to_string_pretty(r).expect("serializable")
}
