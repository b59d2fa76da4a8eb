//! Where teams read results: JUnit XML and SARIF reports, the OpenMetrics
//! file of `run --metrics-file`, shell completions and the man page,
//! `validate --no-env`, and the scheduled CI examples that use them.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use quick_xml::events::Event;
use quick_xml::Reader;
use serde_yaml::Value as Yaml;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// keysweep with no environment but what it is given.
fn bare(state: &Path) -> Command {
    let mut c = Command::new(common::keysweep_bin());
    c.env_clear().env("KEYSWEEP_STATE_DIR", state).env("NO_COLOR", "1").current_dir(ROOT);
    c
}

fn ok(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(0), "stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// JUnit XML read back: the `<testsuites>` attributes and, per test case, its
/// name, classname and `failure`/`skipped`.
/// A test case read back: name, classname, and `passed`, `failure` or `skipped`.
type Case = (String, String, &'static str);

fn junit(xml: &str) -> (BTreeMap<String, String>, Vec<Case>) {
    let mut r = Reader::from_str(xml);
    let mut root = BTreeMap::new();
    let mut cases = vec![];
    loop {
        match r.read_event().unwrap_or_else(|e| panic!("not XML: {e}\n{xml}")) {
            Event::Start(e) | Event::Empty(e) => {
                let a: BTreeMap<String, String> = e
                    .attributes()
                    .map(|a| {
                        let a = a.unwrap();
                        (String::from_utf8(a.key.as_ref().to_vec()).unwrap(), String::from_utf8(a.value.to_vec()).unwrap())
                    })
                    .collect();
                match e.name().as_ref() {
                    b"testsuites" => root = a,
                    b"testcase" => cases.push((a["name"].clone(), a["classname"].clone(), "passed")),
                    b"failure" => cases.last_mut().unwrap().2 = "failure",
                    b"skipped" => cases.last_mut().unwrap().2 = "skipped",
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    (root, cases)
}

/// Every sample of an OpenMetrics text: name, labels, value. Panics on a
/// line that is neither a `# HELP|TYPE|UNIT` comment nor a sample, or when
/// `# EOF` is not the last line.
fn metrics(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    let sample = regex::Regex::new(r#"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$"#).unwrap();
    let label = regex::Regex::new(r#"([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)""#).unwrap();
    assert!(text.ends_with("\n# EOF\n"), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    lines[..lines.len() - 1]
        .iter()
        .filter(|l| {
            if let Some(c) = l.strip_prefix("# ") {
                assert!(c.starts_with("HELP ") || c.starts_with("TYPE ") || c.starts_with("UNIT "), "{l}");
                false
            } else {
                true
            }
        })
        .map(|l| {
            let c = sample.captures(l).unwrap_or_else(|| panic!("malformed sample: {l:?}"));
            let labels =
                c.get(2).map(|m| label.captures_iter(m.as_str()).map(|x| (x[1].to_string(), x[2].to_string())).collect()).unwrap_or_default();
            (c[1].to_string(), labels, c[3].parse().unwrap())
        })
        .collect()
}

#[test]
fn a_run_writes_junit_and_metrics_and_report_renders_sarif() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let prom = dir.path().join("keysweep.prom");
    let p = format!("{ROOT}/playbooks/memory.yaml");
    let out = bare(&state).args(["run", &p, "--quiet", "--format", "junit", "--metrics-file", prom.to_str().unwrap()]).output().unwrap();
    let xml = ok(&out);
    let (root, cases) = junit(&xml);
    assert_eq!(root["tests"], "4", "{xml}");
    assert_eq!(root["failures"], "0");
    assert_eq!(cases.len(), 4);
    assert!(cases.iter().all(|c| c.2 == "passed" && c.1 == "lab/memory_token"), "{cases:?}");

    let text = std::fs::read_to_string(&prom).unwrap();
    let m = metrics(&text);
    let sum = |n: &str| m.iter().filter(|s| s.0 == n).map(|s| s.2).sum::<f64>();
    assert_eq!(sum("keysweep_credentials"), 4.0);
    assert_eq!(m.iter().filter(|s| s.0 == "keysweep_credentials" && s.1["outcome"] == "rotated").map(|s| s.2).sum::<f64>(), 4.0);
    assert_eq!(sum("keysweep_gaps"), 0.0);
    assert_eq!(sum("keysweep_run_complete"), 1.0);
    assert!(sum("keysweep_last_run_timestamp_seconds") > 1.7e9);
    assert!(sum("keysweep_run_duration_seconds") >= 0.0);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&prom).unwrap().permissions().mode() & 0o777, 0o600);

    let out = bare(&state).args(["report", "--format", "sarif"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(v["version"], "2.1.0");
    assert_eq!(v["runs"][0]["results"].as_array().unwrap().len(), 0);
    assert_eq!(v["runs"][0]["tool"]["driver"]["name"], "keysweep");

    // A dry run: every credential skipped, nothing failed.
    let out = bare(&state).args(["plan", "--offline", &p, "--format", "junit"]).output().unwrap();
    let (root, cases) = junit(&ok(&out));
    assert_eq!((root["failures"].as_str(), root["skipped"].as_str()), ("0", "4"));
    assert!(cases.iter().all(|c| c.2 == "skipped"));
}

#[test]
fn gaps_are_junit_failures_and_sarif_results_at_the_credential() {
    let b = common::bao();
    let dir = tempfile::tempdir().unwrap();
    let (_tok, acc) = b.create_token(&["default"], serde_json::json!({}));
    b.kv_put("cigaps/kv", serde_json::json!({ "value": "v1-old-value-here" }));
    let pb = dir.path().join("p.yaml");
    std::fs::write(
        &pb,
        format!(
            "{}  - {{ id: tok, provider: bao, target: {{ kind: vault_token, accessor: {acc} }}, deliver_to: [{{ provider: bao, path: cigaps/tok }}] }}\n  - {{ id: keep-old, provider: bao, target: {{ kind: vault_kv_secret, path: cigaps/kv, destroy_old: false }}, verify: {{ attempts: 2, interval: 10ms }} }}\n  - {{ id: after, provider: bao, depends_on: [keep-old], target: {{ kind: vault_kv_secret, path: cigaps/after }} }}\n",
            common::PROVIDER_YAML
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let prom = dir.path().join("m.prom");
    let out =
        common::keysweep(&state).args(["run", pb.to_str().unwrap(), "--format", "junit", "--metrics-file", prom.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let (root, cases) = junit(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(root["failures"], "2");
    let outcome = |id: &str| cases.iter().find(|c| c.0 == id).unwrap().2;
    assert_eq!((outcome("tok"), outcome("keep-old"), outcome("after")), ("passed", "failure", "failure"));
    let m = metrics(&std::fs::read_to_string(&prom).unwrap());
    assert_eq!(m.iter().find(|s| s.0 == "keysweep_gaps").unwrap().2, 2.0);
    assert_eq!(m.iter().filter(|s| s.0 == "keysweep_credentials").map(|s| s.2).sum::<f64>(), 3.0);

    let out = common::keysweep(&state).args(["report", "--format", "sarif"]).current_dir(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["version"], "2.1.0");
    let results = v["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    let keep = results.iter().find(|r| r["properties"]["credential"] == "keep-old").unwrap();
    assert_eq!(keep["ruleId"], "keysweep/unverified");
    assert_eq!(keep["level"], "warning");
    let loc = &keep["locations"][0]["physicalLocation"];
    assert_eq!(loc["artifactLocation"]["uri"], "p.yaml", "relative to the working directory: {loc}");
    let line = loc["region"]["startLine"].as_u64().unwrap() as usize;
    assert!(std::fs::read_to_string(&pb).unwrap().lines().nth(line - 1).unwrap().contains("id: keep-old"), "line {line}");
    let after = results.iter().find(|r| r["properties"]["credential"] == "after").unwrap();
    assert_eq!((after["ruleId"].as_str(), after["level"].as_str()), (Some("keysweep/skipped"), Some("error")));
}

#[test]
fn completions_and_man_page_name_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let subs = ["validate", "discover", "plan", "run", "resume", "supply", "report", "history", "schema", "completions"];
    for shell in ["bash", "zsh", "fish"] {
        let s = ok(&bare(dir.path()).args(["completions", shell]).output().unwrap());
        assert!(s.len() > 500, "{shell}: {s}");
        for sub in subs {
            assert!(s.contains(sub), "{shell} completion lacks {sub}");
        }
        assert!(s.contains("metrics-file") && s.contains("no-env"), "{shell}: options complete too");
    }
    let out = bare(dir.path()).args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let man = ok(&bare(dir.path()).args(["man"]).output().unwrap());
    assert!(man.starts_with(".ie") || man.contains(".TH keysweep 1"), "{man}");
    assert!(man.contains(".SH SUBCOMMANDS"), "{man}");
    for sub in subs {
        assert!(man.contains(&format!("keysweep\\-{sub}(1)")), "man lacks {sub}");
    }
    let pages = dir.path().join("man");
    ok(&bare(dir.path()).args(["man", "--out-dir", pages.to_str().unwrap()]).output().unwrap());
    for sub in subs {
        let page = std::fs::read_to_string(pages.join(format!("keysweep-{sub}.1"))).unwrap();
        assert!(page.contains(".TH"), "{sub}");
    }
    assert!(std::fs::read_to_string(pages.join("keysweep-run.1")).unwrap().contains("metrics\\-file"));
}

#[test]
fn every_playbook_validates_without_its_environment() {
    let dir = tempfile::tempdir().unwrap();
    let mut files: Vec<_> = ["playbooks", "playbooks/recipes"]
        .iter()
        .filter_map(|d| std::fs::read_dir(Path::new(ROOT).join(d)).ok())
        .flatten()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 9, "{files:?}");
    assert!(files.iter().any(|f| f.ends_with("demo.yaml")));
    for f in &files {
        let s = ok(&bare(dir.path()).args(["validate", "--no-env", f.to_str().unwrap()]).output().unwrap());
        assert!(s.contains(": valid (structure)"), "{}: {s}", f.display());
        // Without --no-env the same empty environment is an error, where there are references.
        if s.contains("not checked:") {
            let out = bare(dir.path()).args(["validate", f.to_str().unwrap()]).output().unwrap();
            assert_eq!(out.status.code(), Some(2), "{}", f.display());
        }
    }
    let s = ok(&bare(dir.path()).args(["validate", "--no-env", "playbooks/incident-response.yaml"]).output().unwrap());
    assert!(s.contains("playbooks/incident-response.yaml:19:14: ${env:VAULT_ADDR} (not set; not checked)"), "{s}");
    // A set variable is still checked.
    let out = bare(dir.path()).env("VAULT_ADDR", "not a url").args(["validate", "--no-env", "playbooks/incident-response.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a URL"));
}

#[test]
fn no_env_still_reports_structural_errors() {
    let dir = tempfile::tempdir().unwrap();
    let pb = dir.path().join("p.yaml");
    std::fs::write(
        &pb,
        "version: 1\nproviders:\n  bao: { kind: vault, address: \"${env:VAULT_ADDR}\", auth: { method: token, token: \"${env:VAULT_TOKEN}\" } }\ncredentials:\n  - { id: a, provider: nope, target: { kind: vault_token, accessor: \"${env:ACC}\" }, deliver_to: [{ provider: bao, path: x }] }\n  - { id: b, provider: bao, colour: red, target: { kind: vault_token, accessor: x }, deliver_to: [{ provider: bao, path: y }] }\n  - { id: c, provider: bao, target: { kind: vault_token, accessor: x }, token: \"${store:bao:secret/x#v}\" }\n",
    )
    .unwrap();
    let out = bare(dir.path()).args(["validate", "--no-env", pb.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("nope"), "an unknown provider is still an error: {e}");
    assert!(e.contains("colour"), "an unknown field is still an error: {e}");
    assert!(!e.contains("VAULT_ADDR") && !e.contains("`ACC`"), "unset variables are not errors: {e}");
}

fn yaml(name: &str) -> Yaml {
    serde_yaml::from_str(&std::fs::read_to_string(format!("{ROOT}/examples/schedule/{name}")).unwrap()).unwrap()
}

/// The file a shell command redirects keysweep's standard output to.
fn redirect_target(cmd: &str) -> String {
    cmd.split('>').nth(1).and_then(|t| t.split_whitespace().next()).unwrap_or_else(|| panic!("no redirect in {cmd}")).to_string()
}

fn metrics_file_of(cmd: &str) -> String {
    let words: Vec<&str> = cmd.split_whitespace().collect();
    let i = words.iter().position(|w| *w == "--metrics-file").unwrap_or_else(|| panic!("no --metrics-file in {cmd}"));
    words[i + 1].to_string()
}

#[test]
fn github_actions_example_reports_junit_and_keeps_the_metrics() {
    let y = yaml("github-actions-hygiene.yml");
    let steps = y["jobs"]["hygiene"]["steps"].as_sequence().unwrap();
    let run_cmd = steps.iter().filter_map(|s| s["run"].as_str()).find(|r| r.contains("keysweep run ")).expect("a keysweep run step");
    assert!(run_cmd.contains("--due") && run_cmd.contains("--format junit"), "{run_cmd}");
    let (xml, prom) = (redirect_target(run_cmd), metrics_file_of(run_cmd));
    assert!(xml.ends_with(".xml") && prom.ends_with(".prom"), "{xml} {prom}");
    let reporter = steps.iter().find(|s| s["uses"].as_str().is_some_and(|u| u.starts_with("dorny/test-reporter@"))).expect("a JUnit reporter step");
    assert_eq!(reporter["with"]["path"].as_str(), Some(xml.as_str()));
    assert_eq!(reporter["with"]["reporter"].as_str(), Some("java-junit"));
    assert!(reporter["if"].as_str().is_some_and(|c| c.contains("cancelled()")), "runs after a failed rotation too");
    let upload = steps.iter().find(|s| s["uses"].as_str().is_some_and(|u| u.starts_with("actions/upload-artifact@"))).expect("an upload step");
    let paths: Vec<&str> = upload["with"]["path"].as_str().unwrap().lines().map(str::trim).collect();
    assert!(paths.contains(&xml.as_str()) && paths.contains(&prom.as_str()), "{paths:?}");
    assert_eq!(upload["if"].as_str(), Some("${{ always() }}"));
    assert_eq!(y["permissions"]["checks"].as_str(), Some("write"), "the reporter creates a check run");
}

#[test]
fn gitlab_example_reports_junit_and_keeps_the_metrics() {
    let y = yaml("gitlab-ci-hygiene.yml");
    let job = &y["keysweep-hygiene"];
    let script: Vec<&str> = job["script"].as_sequence().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    let run_cmd = script.iter().find(|l| l.contains("keysweep run ")).expect("a keysweep run line");
    assert!(run_cmd.contains("--due") && run_cmd.contains("--format junit"), "{run_cmd}");
    let (xml, prom) = (redirect_target(run_cmd), metrics_file_of(run_cmd));
    let artifacts = &job["artifacts"];
    assert_eq!(artifacts["when"].as_str(), Some("always"));
    assert_eq!(artifacts["reports"]["junit"].as_str(), Some(xml.as_str()));
    let paths: Vec<&str> = artifacts["paths"].as_sequence().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert!(paths.contains(&prom.as_str()), "{paths:?}");
}
