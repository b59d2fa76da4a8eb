//! The report for CI and code scanning: JUnit XML (one test case per
//! credential, gaps as failures, unselected credentials skipped) and SARIF
//! 2.1.0 (one result per gap, pointing at the credential in the playbook).
//!
//! Both render the scrubbed report ([`Report::redacted`]) and scrub their
//! output again, like every other format.

use std::path::Path;

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;
use serde_json::{json, Value};

use super::render::totals_line;
use super::{Outcome, Report, Row};

/// Text XML 1.0 can hold: control characters other than tab, newline and
/// carriage return are not allowed even escaped, so they become U+FFFD.
fn xml_text(s: &str) -> String {
    s.chars().map(|c| if c.is_control() && !matches!(c, '\t' | '\n' | '\r') { '\u{FFFD}' } else { c }).collect()
}

/// Seconds between two RFC 3339 times, when both parse.
fn seconds_between(a: &str, b: Option<&str>) -> Option<f64> {
    let a = chrono::DateTime::parse_from_rfc3339(a).ok()?;
    let b = chrono::DateTime::parse_from_rfc3339(b?).ok()?;
    Some(((b - a).num_milliseconds().max(0) as f64) / 1000.0)
}

/// The run's wall-clock duration in seconds (0 when unfinished).
pub fn run_seconds(r: &Report) -> f64 {
    seconds_between(&r.started_at, r.finished_at.as_deref()).unwrap_or(0.0)
}

/// A gap's one-line message: outcome, step, detail.
fn gap_message(x: &Row) -> String {
    let at = x.outcome.step().map(|s| format!(" at {}", s.as_str())).unwrap_or_default();
    format!("{}{at}: {}", x.outcome.name(), x.outcome.detail())
}

// ---------- JUnit XML ----------

/// JUnit XML: one `<testcase>` per credential (classname `provider/kind`,
/// name the credential id); a gap is a `<failure>` with its reason, an
/// unselected credential (or any credential of a dry run) `<skipped>`.
pub fn junit(r: &Report) -> String {
    crate::secret::redact(&junit_unredacted(&r.redacted()))
}

fn junit_unredacted(r: &Report) -> String {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    let t = &r.totals;
    let gaps = r.rows.iter().filter(|x| x.is_gap(&r.mode)).count();
    let skipped = r.rows.iter().filter(|x| !x.is_gap(&r.mode) && (!x.selected || !x.outcome.is_verified())).count();
    let tests = r.rows.len().to_string();
    let (gaps_s, skipped_s, time) = (gaps.to_string(), skipped.to_string(), format!("{:.3}", run_seconds(r)));
    let suite_name = xml_text(&format!("keysweep {} {}", r.mode, r.playbook));
    let ev = |w: &mut Writer<Vec<u8>>, e: Event<'_>| w.write_event(e).expect("writing to memory");

    ev(&mut w, Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
    let mut root = BytesStart::new("testsuites");
    root.push_attribute(("name", "keysweep"));
    root.push_attribute(("tests", tests.as_str()));
    root.push_attribute(("failures", gaps_s.as_str()));
    root.push_attribute(("errors", "0"));
    root.push_attribute(("skipped", skipped_s.as_str()));
    root.push_attribute(("time", time.as_str()));
    ev(&mut w, Event::Start(root));

    let mut suite = BytesStart::new("testsuite");
    suite.push_attribute(("name", suite_name.as_str()));
    suite.push_attribute(("tests", tests.as_str()));
    suite.push_attribute(("failures", gaps_s.as_str()));
    suite.push_attribute(("errors", "0"));
    suite.push_attribute(("skipped", skipped_s.as_str()));
    suite.push_attribute(("time", time.as_str()));
    let started = xml_text(&r.started_at);
    suite.push_attribute(("timestamp", started.as_str()));
    ev(&mut w, Event::Start(suite));

    ev(&mut w, Event::Start(BytesStart::new("properties")));
    let selection = if r.selection.is_empty() { "everything in the playbook".to_string() } else { r.selection.join(", ") };
    let finished = r.finished_at.clone().unwrap_or_else(|| "not finished".into());
    for (k, v) in [
        ("run_id", r.run_id.as_str()),
        ("mode", r.mode.as_str()),
        ("playbook", r.playbook.as_str()),
        ("finished_at", finished.as_str()),
        ("selection", selection.as_str()),
        ("totals", &totals_line(t)),
    ] {
        let mut p = BytesStart::new("property");
        let v = xml_text(v);
        p.push_attribute(("name", k));
        p.push_attribute(("value", v.as_str()));
        ev(&mut w, Event::Empty(p));
    }
    ev(&mut w, Event::End(BytesEnd::new("properties")));

    for x in &r.rows {
        let mut tc = BytesStart::new("testcase");
        let (name, class) = (xml_text(&x.id), xml_text(&format!("{}/{}", x.provider, x.kind)));
        tc.push_attribute(("name", name.as_str()));
        tc.push_attribute(("classname", class.as_str()));
        let secs = format!("{:.3}", x.duration_ms.unwrap_or(0) as f64 / 1000.0);
        tc.push_attribute(("time", secs.as_str()));
        if let Some(d) = &x.defined_at {
            let file = xml_text(&d.file);
            let line = d.line.to_string();
            tc.push_attribute(("file", file.as_str()));
            tc.push_attribute(("line", line.as_str()));
        }
        let verified_and_selected = x.selected && x.outcome.is_verified() && r.mode != "dry_run";
        if verified_and_selected {
            ev(&mut w, Event::Empty(tc));
            continue;
        }
        ev(&mut w, Event::Start(tc));
        if x.is_gap(&r.mode) {
            let mut f = BytesStart::new("failure");
            let msg = xml_text(&gap_message(x));
            f.push_attribute(("type", x.outcome.name()));
            f.push_attribute(("message", msg.as_str()));
            ev(&mut w, Event::Start(f));
            let mut body =
                format!("credential: {}\nprovider: {}\nkind: {}\naction: {}\noutcome: {}\n", x.id, x.provider, x.kind, x.action, x.outcome.name());
            if let Some(s) = x.outcome.step() {
                body.push_str(&format!("step: {}\n", s.as_str()));
            }
            if let Some(o) = &x.owner {
                body.push_str(&format!("owner: {o}\n"));
            }
            if let Some(d) = &x.due {
                body.push_str(&format!("due: {d}\n"));
            }
            body.push_str(&format!("detail: {}\n", x.outcome.detail()));
            ev(&mut w, Event::Text(BytesText::new(&xml_text(&body))));
            ev(&mut w, Event::End(BytesEnd::new("failure")));
        } else {
            let mut s = BytesStart::new("skipped");
            let msg = xml_text(x.outcome.detail());
            s.push_attribute(("message", msg.as_str()));
            ev(&mut w, Event::Empty(s));
        }
        ev(&mut w, Event::End(BytesEnd::new("testcase")));
    }

    let mut out = totals_line(t);
    for warning in &r.warnings {
        out.push_str("\nwarning: ");
        out.push_str(warning);
    }
    ev(&mut w, Event::Start(BytesStart::new("system-out")));
    ev(&mut w, Event::Text(BytesText::new(&xml_text(&out))));
    ev(&mut w, Event::End(BytesEnd::new("system-out")));
    ev(&mut w, Event::End(BytesEnd::new("testsuite")));
    ev(&mut w, Event::End(BytesEnd::new("testsuites")));
    let mut s = String::from_utf8(w.into_inner()).unwrap_or_default();
    s.push('\n');
    s
}

// ---------- SARIF ----------

/// The SARIF rules: one per gap outcome, with its level.
const RULES: [(&str, &str, &str, &str); 4] = [
    ("keysweep/failed", "error", "Credential not rotated or revoked", "keysweep could not finish this credential: the old secret may still work. The result names the step and the reason; fix it and run again (or `keysweep resume`)."),
    (
        "keysweep/unverified",
        "warning",
        "Old secret not proven dead",
        "The credential was rotated or revoked but keysweep could not prove the old secret dead. Check it by hand or run again.",
    ),
    ("keysweep/awaiting-human", "warning", "Waiting for a person", "A person has to re-issue this credential (`manual:` steps); `keysweep supply` gives keysweep the new value."),
    ("keysweep/skipped", "error", "Selected credential skipped", "The credential was selected but not worked on (a dependency failed, or the run stopped)."),
];

fn rule_of(o: &Outcome) -> usize {
    match o {
        Outcome::Failed { .. } => 0,
        Outcome::Unverified { .. } => 1,
        Outcome::AwaitingHuman { .. } => 2,
        _ => 3,
    }
}

/// `path` as a URI relative to `base` when it lies under it (GitHub code
/// scanning wants repository-relative paths), else a `file://` URI.
fn artifact_location(path: &str, base: Option<&Path>) -> Value {
    let p = Path::new(path);
    if p.is_relative() {
        return json!({ "uri": uri_path(path), "uriBaseId": "%SRCROOT%" });
    }
    if let Some(rel) = base.and_then(|b| p.strip_prefix(b).ok()) {
        return json!({ "uri": uri_path(&rel.display().to_string()), "uriBaseId": "%SRCROOT%" });
    }
    json!({ "uri": format!("file://{}", uri_path(path)) })
}

/// Percent-encodes what a URI path cannot hold as is.
fn uri_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => out.push(b as char),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// SARIF 2.1.0 with the working directory as `%SRCROOT%`.
pub fn sarif(r: &Report) -> String {
    let cwd = std::env::current_dir().ok();
    sarif_with_base(r, cwd.as_deref())
}

/// SARIF 2.1.0: one result per gap (rule per outcome, level error or
/// warning), located at the credential's line in the playbook when the report
/// knows it, else at the playbook file. Paths under `base` are relative to it.
pub fn sarif_with_base(r: &Report, base: Option<&Path>) -> String {
    crate::secret::redact(&sarif_unredacted(&r.redacted(), base))
}

fn sarif_unredacted(r: &Report, base: Option<&Path>) -> String {
    let rules: Vec<Value> = RULES
        .iter()
        .map(|(id, level, short, full)| {
            json!({
                "id": id,
                "name": id.trim_start_matches("keysweep/"),
                "shortDescription": { "text": short },
                "fullDescription": { "text": full },
                "defaultConfiguration": { "level": level },
                "help": { "text": full },
            })
        })
        .collect();
    let results: Vec<Value> = r
        .rows
        .iter()
        .filter(|x| x.is_gap(&r.mode))
        .map(|x| {
            let i = rule_of(&x.outcome);
            let mut physical = match &x.defined_at {
                Some(d) => json!({ "artifactLocation": artifact_location(&d.file, base), "region": { "startLine": d.line.max(1) } }),
                None => json!({ "artifactLocation": artifact_location(&r.playbook, base) }),
            };
            if physical.get("region").is_none() {
                physical["region"] = json!({ "startLine": 1 });
            }
            json!({
                "ruleId": RULES[i].0,
                "ruleIndex": i,
                "level": RULES[i].1,
                "message": { "text": format!("{} ({}/{}): {}", x.id, x.provider, x.kind, gap_message(x)) },
                "locations": [{
                    "physicalLocation": physical,
                    "logicalLocations": [{ "name": x.id, "fullyQualifiedName": format!("{}/{}", x.provider, x.id), "kind": "credential" }],
                }],
                // Stable across runs: code scanning tracks the same credential's gap as one alert.
                "partialFingerprints": { "keysweepCredential/v1": format!("{}/{}", x.provider, x.id) },
                "properties": {
                    "credential": x.id, "provider": x.provider, "kind": x.kind, "action": x.action,
                    "outcome": x.outcome.name(), "step": x.outcome.step().map(|s| s.as_str()), "owner": x.owner,
                },
            })
        })
        .collect();
    let mut run = json!({
        "tool": { "driver": {
            "name": "keysweep",
            "version": env!("CARGO_PKG_VERSION"),
            "rules": rules,
        }},
        "automationDetails": { "id": format!("keysweep/{}/", r.mode) },
        "invocations": [{
            "executionSuccessful": r.finished_at.is_some(),
            "startTimeUtc": r.started_at,
            "endTimeUtc": r.finished_at,
            "toolExecutionNotifications": r.warnings.iter().map(|w| json!({ "level": "warning", "message": { "text": w } })).collect::<Vec<_>>(),
        }],
        "properties": { "run_id": r.run_id, "playbook": r.playbook, "totals": r.totals, "summary": totals_line(&r.totals) },
        "results": results,
    });
    if let Some(b) = base {
        let mut uri = format!("file://{}", uri_path(&b.display().to_string()));
        if !uri.ends_with('/') {
            uri.push('/');
        }
        run["originalUriBaseIds"] = json!({ "%SRCROOT%": { "uri": uri } });
    }
    if r.finished_at.is_none() {
        run["invocations"][0].as_object_mut().map(|o| o.remove("endTimeUtc"));
    }
    let doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [run],
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

#[cfg(test)]
pub(crate) mod tests {
    use quick_xml::events::Event;
    use quick_xml::Reader;

    use super::*;
    use crate::report::{DefinedAt, Step};

    pub(crate) fn row(id: &str, provider: &str, outcome: Outcome, selected: bool) -> Row {
        Row {
            id: id.into(),
            provider: provider.into(),
            kind: "vault_token".into(),
            action: "rotate".into(),
            owner: Some("team".into()),
            tags: vec![],
            selected,
            outcome,
            old: Default::default(),
            new: Default::default(),
            duration_ms: Some(1500),
            due: None,
            defined_at: Some(DefinedAt { file: "/repo/playbooks/p.yaml".into(), line: 10 + id.len() }),
        }
    }

    /// Every outcome, a selected skip (a gap), an unselected skip, and text
    /// that needs escaping.
    pub(crate) fn sample() -> Report {
        let mut r = Report::new(
            "r1",
            "run",
            "/repo/playbooks/p.yaml",
            "2026-01-01T00:00:00Z",
            vec!["tag=x".into()],
            vec![
                row("a", "bao", Outcome::Rotated { evidence: "dead".into() }, true),
                row("b", "aws", Outcome::Revoked { evidence: "gone".into() }, true),
                row("c", "bao", Outcome::Unverified { step: Step::VerifyDead, reason: "HTTP 503\nretry \"later\"".into() }, true),
                row("d<&>\"'", "aws", Outcome::Failed { step: Step::Test, reason: "refused <x>&amp; \u{1b}[2J".into() }, true),
                row("e", "bao", Outcome::Skipped { reason: "dependency d failed".into() }, true),
                row("f", "bao", Outcome::Skipped { reason: "not selected".into() }, false),
                row("g", "aws", Outcome::AwaitingHuman { step: Step::Stage, instructions: "re-issue it".into() }, true),
            ],
        );
        r.finished_at = Some("2026-01-01T00:01:02.5Z".into());
        r.warnings.push("stuck <pending>".into());
        r
    }

    #[derive(Debug, Default)]
    struct Case {
        name: String,
        classname: String,
        failure: Option<(String, String)>,
        skipped: bool,
    }

    /// Reads JUnit XML back: the root's attributes and every test case.
    fn parse_junit(xml: &str) -> (BTreeMap<String, String>, Vec<Case>) {
        let mut reader = Reader::from_str(xml);
        let mut root = BTreeMap::new();
        let mut cases: Vec<Case> = vec![];
        let attrs = |e: &quick_xml::events::BytesStart<'_>| -> BTreeMap<String, String> {
            e.attributes()
                .map(|a| {
                    let a = a.unwrap();
                    (
                        String::from_utf8(a.key.as_ref().to_vec()).unwrap(),
                        a.normalized_value(quick_xml::XmlVersion::Explicit1_0).unwrap().into_owned(),
                    )
                })
                .collect()
        };
        loop {
            match reader.read_event().unwrap() {
                Event::Start(e) | Event::Empty(e) => {
                    let a = attrs(&e);
                    match e.name().as_ref() {
                        b"testsuites" => root = a,
                        b"testcase" => cases.push(Case { name: a["name"].clone(), classname: a["classname"].clone(), ..Default::default() }),
                        b"failure" => cases.last_mut().unwrap().failure = Some((a["type"].clone(), a["message"].clone())),
                        b"skipped" => cases.last_mut().unwrap().skipped = true,
                        _ => {}
                    }
                }
                Event::Eof => break,
                _ => {}
            }
        }
        (root, cases)
    }
    use std::collections::BTreeMap;

    #[test]
    fn junit_has_one_case_per_credential_and_gaps_as_failures() {
        let r = sample();
        let xml = junit(&r);
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
        let (root, cases) = parse_junit(&xml);
        assert_eq!(cases.len(), r.rows.len());
        assert_eq!(root["tests"], "7");
        assert_eq!(root["failures"], r.totals.gaps.to_string());
        assert_eq!(r.totals.gaps, 4);
        assert_eq!(root["skipped"], "1");
        assert_eq!(root["time"], "62.500");
        let failed: Vec<&Case> = cases.iter().filter(|c| c.failure.is_some()).collect();
        assert_eq!(failed.len(), 4);
        let d = cases.iter().find(|c| c.name == "d<&>\"'").expect("escaped name reads back");
        assert_eq!(d.classname, "aws/vault_token");
        let (ty, msg) = d.failure.clone().unwrap();
        assert_eq!(ty, "failed");
        assert_eq!(msg, "failed at test: refused <x>&amp; \u{FFFD}[2J");
        assert!(!xml.contains('\u{1b}'), "no control characters in XML");
        assert!(cases.iter().find(|c| c.name == "e").unwrap().failure.is_some(), "a selected skip is a gap");
        assert!(cases.iter().find(|c| c.name == "f").unwrap().skipped);
        let a = cases.iter().find(|c| c.name == "a").unwrap();
        assert!(a.failure.is_none() && !a.skipped);
        assert!(xml.contains("stuck &lt;pending&gt;"));
    }

    #[test]
    fn junit_of_a_dry_run_skips_everything() {
        let rows = vec![row("a", "bao", Outcome::Skipped { reason: "dry run: would rotate".into() }, true)];
        let r = Report::new("dry-run", "dry_run", "p.yaml", "2026-01-01T00:00:00Z", vec![], rows);
        let (root, cases) = parse_junit(&junit(&r));
        assert_eq!(root["failures"], "0");
        assert_eq!(root["skipped"], "1");
        assert!(cases[0].skipped);
    }

    #[test]
    fn sarif_has_one_result_per_gap_at_the_credential() {
        let r = sample();
        let v: Value = serde_json::from_str(&sarif_with_base(&r, Some(Path::new("/repo")))).unwrap();
        assert_eq!(v["version"], "2.1.0");
        let results = v["runs"][0]["results"].as_array().unwrap();
        assert_eq!(results.len(), r.totals.gaps);
        let rules: Vec<&str> = v["runs"][0]["tool"]["driver"]["rules"].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap()).collect();
        for res in results {
            let i = res["ruleIndex"].as_u64().unwrap() as usize;
            assert_eq!(rules[i], res["ruleId"].as_str().unwrap());
        }
        let by = |id: &str| results.iter().find(|x| x["properties"]["credential"] == id).unwrap();
        let d = by("d<&>\"'");
        assert_eq!(d["ruleId"], "keysweep/failed");
        assert_eq!(d["level"], "error");
        let loc = &d["locations"][0]["physicalLocation"];
        assert_eq!(loc["artifactLocation"]["uri"], "playbooks/p.yaml");
        assert_eq!(loc["artifactLocation"]["uriBaseId"], "%SRCROOT%");
        assert_eq!(loc["region"]["startLine"], 10 + "d<&>\"'".len());
        assert_eq!(v["runs"][0]["originalUriBaseIds"]["%SRCROOT%"]["uri"], "file:///repo/");
        assert_eq!(by("c")["level"], "warning");
        assert_eq!(by("e")["ruleId"], "keysweep/skipped");
        assert_eq!(by("g")["ruleId"], "keysweep/awaiting-human");
        // Without a known line: the playbook, outside the base as a file URI.
        let mut r = sample();
        r.rows.iter_mut().for_each(|x| x.defined_at = None);
        let v: Value = serde_json::from_str(&sarif_with_base(&r, Some(Path::new("/elsewhere")))).unwrap();
        let loc = &v["runs"][0]["results"][0]["locations"][0]["physicalLocation"];
        assert_eq!(loc["artifactLocation"]["uri"], "file:///repo/playbooks/p.yaml");
        assert_eq!(loc["region"]["startLine"], 1);
    }

    #[test]
    fn sarif_of_a_complete_run_has_no_results() {
        let r = Report::new("r", "run", "p.yaml", "t", vec![], vec![row("a", "bao", Outcome::Rotated { evidence: "dead".into() }, true)]);
        let v: Value = serde_json::from_str(&sarif_with_base(&r, None)).unwrap();
        assert_eq!(v["runs"][0]["results"].as_array().unwrap().len(), 0);
        assert_eq!(v["runs"][0]["results"], json!([]));
    }
}
