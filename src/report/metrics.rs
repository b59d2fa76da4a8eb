//! An OpenMetrics textfile of a run, for the node exporter's textfile
//! collector (`run --metrics-file`): credentials per outcome and provider,
//! gaps, the run's duration and when it ended. Counts and provider names only:
//! no credential id, owner, reason or secret.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use super::{Report, SECTION_OUTCOMES};

/// A label value escaped as OpenMetrics requires (`\`, `"`, newline).
fn label(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The run's end (or `now` when it has none) in Unix seconds.
fn ended_at(r: &Report, now: chrono::DateTime<chrono::Utc>) -> f64 {
    r.finished_at
        .as_deref()
        .and_then(|f| chrono::DateTime::parse_from_rfc3339(f).ok())
        .map(|t| t.timestamp_millis() as f64 / 1000.0)
        .unwrap_or(now.timestamp_millis() as f64 / 1000.0)
}

/// The OpenMetrics text of a run, ending with `# EOF`. Every outcome of every
/// provider in the run has a sample (zeros included), so a series that was
/// non-zero yesterday reads 0 today instead of disappearing.
pub fn openmetrics(r: &Report, now: chrono::DateTime<chrono::Utc>) -> String {
    let mut per: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
    let mut gaps: BTreeMap<&str, usize> = BTreeMap::new();
    for x in &r.rows {
        *per.entry(&x.provider).or_default().entry(x.outcome.name()).or_default() += 1;
        *gaps.entry(&x.provider).or_default() += usize::from(x.is_gap(&r.mode));
    }
    let mut s = String::new();
    let _ = writeln!(s, "# HELP keysweep_credentials Credentials in keysweep's last run, by outcome and provider.");
    let _ = writeln!(s, "# TYPE keysweep_credentials gauge");
    for (p, by) in &per {
        for o in SECTION_OUTCOMES {
            let _ = writeln!(s, "keysweep_credentials{{outcome=\"{o}\",provider=\"{}\"}} {}", label(p), by.get(o).copied().unwrap_or(0));
        }
    }
    let _ = writeln!(s, "# HELP keysweep_gaps Selected credentials of the last run that did not end rotated or revoked.");
    let _ = writeln!(s, "# TYPE keysweep_gaps gauge");
    let _ = writeln!(s, "keysweep_gaps {}", r.totals.gaps);
    let _ = writeln!(s, "# HELP keysweep_provider_gaps Gaps of the last run, by provider.");
    let _ = writeln!(s, "# TYPE keysweep_provider_gaps gauge");
    for (p, n) in &gaps {
        let _ = writeln!(s, "keysweep_provider_gaps{{provider=\"{}\"}} {n}", label(p));
    }
    let _ = writeln!(s, "# HELP keysweep_run_complete 1 when the last run finished with every selected credential rotated or revoked.");
    let _ = writeln!(s, "# TYPE keysweep_run_complete gauge");
    let _ = writeln!(s, "keysweep_run_complete {}", u8::from(r.finished_at.is_some() && r.complete()));
    let _ = writeln!(s, "# HELP keysweep_run_duration_seconds Wall-clock duration of the last run.");
    let _ = writeln!(s, "# TYPE keysweep_run_duration_seconds gauge");
    let _ = writeln!(s, "# UNIT keysweep_run_duration_seconds seconds");
    let _ = writeln!(s, "keysweep_run_duration_seconds {:.3}", super::ci::run_seconds(r));
    let _ = writeln!(s, "# HELP keysweep_last_run_timestamp_seconds When the last run ended (Unix time).");
    let _ = writeln!(s, "# TYPE keysweep_last_run_timestamp_seconds gauge");
    let _ = writeln!(s, "# UNIT keysweep_last_run_timestamp_seconds seconds");
    let _ = writeln!(s, "keysweep_last_run_timestamp_seconds {:.3}", ended_at(r, now));
    let _ = writeln!(s, "# HELP keysweep_run_info The last run: its id, mode and playbook.");
    let _ = writeln!(s, "# TYPE keysweep_run_info gauge");
    let _ = writeln!(s, "keysweep_run_info{{mode=\"{}\",playbook=\"{}\",run_id=\"{}\"}} 1", label(&r.mode), label(&r.playbook), label(&r.run_id));
    s.push_str("# EOF\n");
    crate::secret::redact(&s)
}

/// Mode of the metrics file: owner-only, like every file keysweep writes
/// (counts and names are not secrets, but the rule has no exceptions). A
/// collector running as another user is given a copy by the job (see the
/// README), which is that operator's explicit choice.
pub const METRICS_FILE_MODE: u32 = 0o600;

/// Writes the metrics to `path` atomically: a temporary file in the same
/// directory, synced, then renamed over `path` (the collector never reads a
/// half-written file).
pub fn write(path: &Path, r: &Report) -> std::io::Result<()> {
    crate::lock::write_atomic(path, openmetrics(r, chrono::Utc::now()), METRICS_FILE_MODE)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::report::ci::tests::sample;

    /// A parsed sample line: name, labels, value.
    type Sample = (String, BTreeMap<String, String>, f64);

    /// Parses OpenMetrics text strictly enough for the textfile collector:
    /// every line a comment (`# HELP|TYPE|UNIT name ...`) or a well-formed sample,
    /// `# EOF` last and only there, every sample's family declared by `# TYPE`.
    pub(crate) fn parse(text: &str) -> Vec<Sample> {
        let name_re = regex::Regex::new(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$").unwrap();
        let sample_re =
            regex::Regex::new(r#"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*)\})? (\S+)$"#).unwrap();
        let label_re = regex::Regex::new(r#"([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)""#).unwrap();
        assert!(text.ends_with("# EOF\n"), "ends with # EOF and a newline");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.iter().filter(|l| **l == "# EOF").count(), 1);
        let mut typed = std::collections::BTreeSet::new();
        let mut out = vec![];
        for l in &lines[..lines.len() - 1] {
            if let Some(rest) = l.strip_prefix("# ") {
                let parts: Vec<&str> = rest.splitn(3, ' ').collect();
                assert!(matches!(parts[0], "HELP" | "TYPE" | "UNIT"), "{l}");
                assert!(name_re.is_match(parts[1]), "{l}");
                if parts[0] == "TYPE" {
                    assert!(matches!(parts[2], "gauge" | "counter"), "{l}");
                    assert!(typed.insert(parts[1].to_string()), "family typed twice: {l}");
                }
                continue;
            }
            let c = sample_re.captures(l).unwrap_or_else(|| panic!("malformed sample line: {l:?}"));
            let name = c[1].to_string();
            assert!(typed.contains(&name), "sample before its # TYPE: {l}");
            let labels =
                c.get(2).map(|m| label_re.captures_iter(m.as_str()).map(|x| (x[1].to_string(), x[2].to_string())).collect()).unwrap_or_default();
            let v: f64 = c[3].parse().unwrap_or_else(|_| panic!("bad value in {l}"));
            out.push((name, labels, v));
        }
        out
    }

    #[test]
    fn metrics_parse_and_totals_add_up() {
        let r = sample();
        let text = openmetrics(&r, chrono::Utc::now());
        let samples = parse(&text);
        let sum = |name: &str, f: &dyn Fn(&BTreeMap<String, String>) -> bool| -> f64 {
            samples.iter().filter(|(n, l, _)| n == name && f(l)).map(|s| s.2).sum()
        };
        assert_eq!(sum("keysweep_credentials", &|_| true) as usize, r.totals.total);
        for (o, n) in [("rotated", 1), ("revoked", 1), ("unverified", 1), ("failed", 1), ("skipped", 2), ("awaiting_human", 1)] {
            assert_eq!(sum("keysweep_credentials", &|l| l["outcome"] == o) as usize, n, "{o}");
        }
        assert_eq!(sum("keysweep_credentials", &|l| l["provider"] == "aws"), 3.0);
        assert_eq!(sum("keysweep_gaps", &|_| true) as usize, r.totals.gaps);
        assert_eq!(sum("keysweep_provider_gaps", &|_| true) as usize, r.totals.gaps);
        assert_eq!(sum("keysweep_run_duration_seconds", &|_| true), 62.5);
        assert_eq!(sum("keysweep_last_run_timestamp_seconds", &|_| true), 1_767_225_662.5);
        assert_eq!(sum("keysweep_run_complete", &|_| true), 0.0);
        // Nothing that names a credential.
        assert!(!text.contains("d<&>") && !text.contains("refused"));
    }

    #[test]
    fn label_values_are_escaped() {
        let mut r = sample();
        r.rows[0].provider = "we\"ird\\name\nx".into();
        r.playbook = "/p\"q.yaml".into();
        let text = openmetrics(&r, chrono::Utc::now());
        assert!(text.contains(r#"provider="we\"ird\\name\nx""#), "{text}");
        parse(&text);
    }

    #[test]
    fn written_atomically_with_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keysweep.prom");
        std::fs::write(&p, "old").unwrap();
        write(&p, &sample()).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        parse(&text);
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, METRICS_FILE_MODE);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left.len(), 1, "no temporary file left: {left:?}");
        assert!(write(&dir.path().join("missing/x.prom"), &sample()).is_err());
    }
}
