//! Property tests for the loader and the planner: whatever the bytes of a
//! playbook, loading never panics, finishes quickly, and every diagnostic
//! names `file:line:column`; what loads can be planned under any selection.
//! Inputs: the example playbooks with random edits, random bytes, deep
//! nesting, huge numbers. Case counts keep the file well under a minute.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use keysweep::playbook::loader::load_with_env;
use proptest::prelude::*;

/// Every variable is set, to a value that is a valid address too.
fn env(_: &str) -> Option<String> {
    Some("http://127.0.0.1:8200".into())
}

fn seeds() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in ["playbooks", "tests/good_playbooks", "tests/bad_playbooks"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(dir)).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        for f in files.into_iter().filter(|f| f.extension().is_some_and(|e| e == "yaml")) {
            out.push(std::fs::read_to_string(f).unwrap());
        }
    }
    assert!(out.len() >= 10);
    out
}

/// Loads `text` as a playbook file and checks the loader's promises.
fn check(text: &[u8]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.yaml");
    std::fs::write(&path, text).unwrap();
    let started = Instant::now();
    let result = load_with_env(&path, &env);
    let took = started.elapsed();
    prop_assert!(took < Duration::from_secs(10), "load took {took:?}");
    match result {
        Ok(pb) => {
            // What loads can be planned, under any selection that parses.
            let ids: Vec<String> = pb.credentials.iter().map(|c| format!("id={}", c.id)).collect();
            for sel in [vec![], ids.iter().take(1).cloned().collect(), vec!["tag=*".to_string()]] {
                let s = keysweep::plan::Selection::parse(&sel, &[]).unwrap();
                let _ = s.check_matches(&pb);
                let plan = keysweep::plan::build(&pb, &s);
                prop_assert_eq!(plan.items.len(), pb.credentials.len());
                let in_waves: usize = plan.waves.iter().map(Vec::len).sum();
                prop_assert_eq!(in_waves, plan.selected().count());
            }
        }
        Err(d) => {
            prop_assert!(!d.0.is_empty());
            for diag in &d.0 {
                let loc = diag.location.as_ref();
                prop_assert!(loc.is_some(), "diagnostic without a position: {}", diag);
                let loc = loc.unwrap();
                prop_assert!(loc.line >= 1 && loc.column >= 1, "bad position in {}", diag);
                let shown = diag.to_string();
                let prefix = format!("{}:{}:{}: error: ", loc.file.display(), loc.line, loc.column);
                prop_assert!(shown.starts_with(&prefix), "not `file:line:column: error:`: {}", shown);
            }
        }
    }
    Ok(())
}

/// One random edit of a text.
#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, String),
    DuplicateLine(usize),
    Replace(usize, char),
}

fn edit() -> impl Strategy<Value = Edit> {
    let snippet = prop_oneof![
        Just(": ".to_string()),
        Just("\n  - ".to_string()),
        Just("{".to_string()),
        Just("]".to_string()),
        Just("&a ".to_string()),
        Just("*a".to_string()),
        Just("${env:X}".to_string()),
        Just("${".to_string()),
        Just("$${".to_string()),
        Just("\t".to_string()),
        Just("include: [\"/**\"]\n".to_string()),
        Just("include: [/dev/zero]\n".to_string()),
        Just("\u{feff}".to_string()),
        Just("99999999999999999999999999".to_string()),
        Just("-1".to_string()),
        Just("0s".to_string()),
        Just("9999999999y".to_string()),
        Just("../..".to_string()),
        Just("http://169.254.169.254".to_string()),
        Just("!!binary ".to_string()),
        Just("? ".to_string()),
        "[ -~]{0,12}",
        any::<String>().prop_map(|s| s.chars().take(8).collect()),
    ];
    prop_oneof![
        (any::<usize>(), 0usize..40).prop_map(|(a, n)| Edit::Delete(a, n)),
        (any::<usize>(), snippet).prop_map(|(a, s)| Edit::Insert(a, s)),
        any::<usize>().prop_map(Edit::DuplicateLine),
        (any::<usize>(), any::<char>()).prop_map(|(a, c)| Edit::Replace(a, c)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for e in edits {
        let n = chars.len().max(1);
        match e {
            Edit::Delete(a, len) => {
                let a = a % n;
                let b = (a + len).min(chars.len());
                if a < b {
                    chars.drain(a..b);
                }
            }
            Edit::Insert(a, s) => {
                let a = (a % (chars.len() + 1)).min(chars.len());
                chars.splice(a..a, s.chars());
            }
            Edit::DuplicateLine(a) => {
                let s: String = chars.iter().collect();
                let lines: Vec<&str> = s.split('\n').collect();
                let i = a % lines.len();
                let mut out: Vec<&str> = lines[..=i].to_vec();
                out.push(lines[i]);
                out.extend(&lines[i + 1..]);
                chars = out.join("\n").chars().collect();
            }
            Edit::Replace(a, c) => {
                if !chars.is_empty() {
                    let i = a % chars.len();
                    chars[i] = *c;
                }
            }
        }
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn edited_example_playbooks_never_panic(seed in any::<prop::sample::Index>(), edits in prop::collection::vec(edit(), 1..8)) {
        let seeds = seeds();
        let text = apply(&seeds[seed.index(seeds.len())], &edits);
        check(text.as_bytes())?;
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        check(&bytes)?;
    }

}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn deep_nesting_is_refused_quickly(depth in 1usize..20_000, style in 0u8..4) {
        let text = match style {
            0 => format!("version: 1\ncredentials: {}{}\n", "[".repeat(depth), "]".repeat(depth)),
            1 => format!("version: 1\ndefaults: {}{}\n", "{a: ".repeat(depth), "}".repeat(depth)),
            2 => {
                // Quadratic in size: 300 levels is 90 kB of indentation.
                let depth = depth.min(300);
                let mut s = String::from("version: 1\ndiscovery:\n");
                for i in 0..depth {
                    s.push_str(&" ".repeat(2 * (i + 1)));
                    s.push_str("k:\n");
                }
                s
            }
            _ => format!("version: 1\nproviders:\n  bao: {}\n", "- ".repeat(depth.min(5_000))),
        };
        check(text.as_bytes())?;
    }

    #[test]
    fn huge_and_odd_numbers_are_diagnosed(n in prop_oneof![
        Just("99999999999999999999999999999".to_string()),
        Just("-1".to_string()),
        Just("1e400".to_string()),
        Just(".nan".to_string()),
        Just("0x7fffffffffffffff".to_string()),
        Just("18446744073709551616".to_string()),
        any::<i64>().prop_map(|i| i.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
    ], field in 0u8..6) {
        let cred = "  - { id: a, provider: bao, target: { kind: vault_kv_secret, path: a }";
        let text = match field {
            0 => format!("version: {n}\n"),
            1 => format!("version: 1\nproviders:\n  bao: {{ kind: vault, address: \"${{env:A}}\", auth: {{ method: token, token: \"${{env:T}}\" }}, limits: {{ concurrency: {n} }} }}\n"),
            2 => format!("version: 1\nproviders:\n  bao: {{ kind: vault, address: \"${{env:A}}\", auth: {{ method: token, token: \"${{env:T}}\" }} }}\ncredentials:\n{cred}, verify: {{ attempts: {n} }} }}\n"),
            3 => format!("version: 1\nproviders:\n  bao: {{ kind: vault, address: \"${{env:A}}\", auth: {{ method: token, token: \"${{env:T}}\" }} }}\ncredentials:\n{cred}, max_age: {n}d }}\n"),
            4 => format!("version: 1\nproviders:\n  bao: {{ kind: postgres, port: {n}, admin: {{ user: u, password: \"${{env:T}}\" }} }}\n"),
            _ => format!("version: 1\nproviders:\n  bao: {{ kind: vault, address: \"${{env:A}}\", auth: {{ method: token, token: \"${{env:T}}\" }} }}\ncredentials:\n{cred}, grace_period: {n}s }}\n"),
        };
        check(text.as_bytes())?;
    }
}
