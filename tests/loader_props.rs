//! Property tests for the loader and the planner: whatever the bytes of a
//! playbook, loading never panics, finishes quickly, and every diagnostic
//! names `file:line:column`; what loads can be planned under any selection.
//! Inputs: the example playbooks with random edits, random bytes, deep
//! nesting, huge numbers. Case counts keep the file well under a minute.
//!
//! The loader's parser (`keysweep::playbook::doc`: libyaml's events, serde_yaml's
//! scalar rules) is held to serde_yaml itself: for any text, both accept it
//! with the same value, or both refuse it (the one exception, an alias bound
//! stricter than serde_yaml's, is allowed to refuse more); and what deserializes
//! from its tree is what deserializes from serde_yaml's `Value` (same result,
//! same error path and message). Inputs: generated documents (block and flow
//! collections, every kind of scalar, tags, anchors and aliases, duplicate
//! keys), the example playbooks with random edits, random bytes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use keysweep::playbook::doc;
use keysweep::playbook::loader::load_with_env;
use keysweep::playbook::model::PlaybookFile;
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

// ---------------------------------------------------------------------------
// The loader's parser against serde_yaml
// ---------------------------------------------------------------------------

/// Parses `text` both ways and checks they agree: the same value (compared
/// in order, floats by their bits, tags as written), or both refuse it; and
/// the same result deserializing the playbook model from either.
fn agrees_with_serde_yaml(text: &str) -> Result<(), TestCaseError> {
    let ours = doc::parse(text, &mut doc::MAX_ALIAS_NODES.clone());
    if matches!(ours, Err(doc::ParseError::TooManyAliasNodes(_))) {
        // serde_yaml may accept it, after building millions of values.
        return Ok(());
    }
    let theirs = serde_yaml::from_str::<serde_yaml::Value>(text);
    match (&ours, &theirs) {
        (Ok(node), Ok(value)) => {
            prop_assert_eq!(format!("{:?}", node.to_serde_yaml()), format!("{value:?}"), "values differ for {:?}", text);
            check_positions(node)?;
            // The model deserializes alike from both.
            let from_tree = doc::deserialize::<PlaybookFile>(node).map(|p| format!("{p:?}")).map_err(|(p, m)| format!("{p}: {m}"));
            let from_value = serde_path_to_error::deserialize::<_, PlaybookFile>(value)
                .map(|p| format!("{p:?}"))
                .map_err(|e| format!("{}: {}", e.path(), e.inner()));
            prop_assert_eq!(from_tree, from_value, "deserializing {:?}", text);
        }
        (Err(_), Err(_)) => {}
        (Err(e), Ok(_)) if e.stricter_than_serde_yaml() => {}
        (o, t) => prop_assert!(false, "{:?}: ours {:?}, serde_yaml {:?}", text, o.as_ref().map(|_| "accepted"), t.as_ref().map(|_| "accepted")),
    }
    Ok(())
}

fn check_positions(n: &doc::Node) -> Result<(), TestCaseError> {
    prop_assert!(n.line >= 1 && n.column >= 1, "node without a position: {:?}", n);
    match &n.value {
        doc::Value::Sequence(s) => s.iter().try_for_each(check_positions),
        doc::Value::Mapping(m) => m.iter().try_for_each(|(k, v)| check_positions(k).and_then(|()| check_positions(v))),
        doc::Value::Tagged(t) => check_positions(&t.value),
        _ => Ok(()),
    }
}

fn yaml_cases() -> u32 {
    std::env::var("KEYSWEEP_PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(2048)
}

/// A document to write out as YAML.
#[derive(Debug, Clone)]
enum Gen {
    Scalar(String),
    Seq(Vec<Gen>),
    Map(Vec<(String, Gen)>),
    /// `&aN` before the value.
    Anchored(u8, Box<Gen>),
    /// `*aN`.
    Alias(u8),
    /// `!tag` before the value.
    Tagged(String, Box<Gen>),
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "~", "null", "Null", "NULL", "", "true", "True", "FALSE", "yes", "off", "1", "-1", "+1", "0", "-0", "007", "-007", "0x1F", "-0x1f", "0o17",
            "-0o17", "0b101", "-0b1", "+0x1", "0x", "1.5", "-1.5", "1e3", "-1E-3", "1e400", ".inf", "-.Inf", "+.INF", ".nan", ".NaN", "1_000",
            "18446744073709551615", "18446744073709551616", "-9223372036854775808", "-9223372036854775809",
            "340282366920938463463374607431768211456", "'1'", "'true'", "\"~\"", "\"a\\tb\\u00e9\"", "'it''s'", "!!str 12", "!!str", "!!int 12",
            "!!int '0x10'", "!!int x", "!!int 99999999999999999999", "!!float 1", "!!float .nan", "!!float x", "!!bool yes", "!!bool 'true'",
            "!!null ~", "!!null ''", "!!binary aGk=", "!t x", "!t 1", "! 1", "!t 'q'", "|\n  lit\n", ">-\n  fold\n  ed\n", "a b", "a: b", "- x",
            "${env:X}", "apps/{id}", "hvs.ABCDEFGHIJKLMNOPQRSTUVWX", "é", "#", "x #c", "@x", "`x", "%x", "?", ":", "-", "[", "]", "{", "}", ",",
        ])
        .prop_map(str::to_string),
        3 => "[a-z0-9_./-]{1,10}",
        1 => "[ -~]{0,6}",
        1 => any::<i64>().prop_map(|i| i.to_string()),
        1 => any::<f64>().prop_map(|f| format!("{f:e}")),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "id", "kind", "a", "b", "1", "'1'", "1.0", "true", "~", "null", "\"a\"", "!t a", ".nan", "0.0", "-0.0", "? [a]", "? {a: 1}", "&k a",
        ])
        .prop_map(str::to_string),
        "[a-z]{1,3}",
    ]
}

fn gen() -> impl Strategy<Value = Gen> {
    let leaf = prop_oneof![4 => scalar().prop_map(Gen::Scalar), 1 => (0u8..4).prop_map(Gen::Alias)];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Gen::Seq),
            prop::collection::vec((key(), inner.clone()), 0..5).prop_map(Gen::Map),
            ((0u8..4), inner.clone()).prop_map(|(n, g)| Gen::Anchored(n, Box::new(g))),
            (prop::sample::select(vec!["!t", "!", "!!str", "!!map", "!!seq", "!x"]), inner)
                .prop_map(|(t, g)| Gen::Tagged(t.to_string(), Box::new(g))),
        ]
    })
}

/// Writes `g` at `indent`, in block style unless `flow`.
fn emit(g: &Gen, indent: usize, flow: bool, out: &mut String) {
    let pad = " ".repeat(indent);
    match g {
        Gen::Scalar(s) => out.push_str(s),
        Gen::Alias(n) => out.push_str(&format!("*a{n}")),
        Gen::Anchored(..) | Gen::Tagged(..) => {
            // A node has at most one anchor and one tag; an alias has neither.
            let (mut anchor, mut tag, mut g) = (None, None, g);
            loop {
                match g {
                    Gen::Anchored(n, inner) => {
                        anchor = anchor.or(Some(*n));
                        g = inner;
                    }
                    Gen::Tagged(t, inner) => {
                        tag = tag.or(Some(t));
                        g = inner;
                    }
                    _ => break,
                }
            }
            if !matches!(g, Gen::Alias(_)) {
                if let Some(n) = anchor {
                    out.push_str(&format!("&a{n} "));
                }
                if let Some(t) = tag {
                    out.push_str(t);
                    out.push(' ');
                }
            }
            emit(g, indent, flow, out);
        }
        Gen::Seq(items) if flow || items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                emit(item, indent, true, out);
            }
            out.push(']');
        }
        Gen::Map(entries) if flow || entries.is_empty() => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(k);
                out.push_str(": ");
                emit(v, indent, true, out);
            }
            out.push('}');
        }
        Gen::Seq(items) => {
            for item in items {
                out.push('\n');
                out.push_str(&pad);
                out.push_str("- ");
                emit(item, indent + 2, (indent + items.len()) % 3 == 0, out);
            }
        }
        Gen::Map(entries) => {
            for (k, v) in entries {
                out.push('\n');
                out.push_str(&pad);
                out.push_str(k);
                out.push(':');
                out.push(' ');
                emit(v, indent + 2, k.len() % 4 == 0, out);
            }
        }
    }
}

fn document(g: &Gen) -> String {
    let mut out = String::new();
    emit(g, 0, false, &mut out);
    out.push('\n');
    out
}

proptest! {
    // KEYSWEEP_PROPTEST_CASES=100000 for a longer search (a few minutes).
    #![proptest_config(ProptestConfig { cases: yaml_cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn generated_documents_read_as_serde_yaml_reads_them(defs in prop::collection::vec(gen(), 0..4), body in gen(), wrap in any::<bool>()) {
        // Anchors `&a0`... defined first, so that the aliases in the body find them.
        let mut entries: Vec<(String, Gen)> = defs.into_iter().enumerate().map(|(i, d)| (format!("d{i}"), Gen::Anchored(i as u8, Box::new(d)))).collect();
        let g = if wrap || !entries.is_empty() {
            entries.push(("body".to_string(), body));
            Gen::Map(entries)
        } else {
            body
        };
        agrees_with_serde_yaml(&document(&g))?;
    }

    #[test]
    fn edited_playbooks_read_as_serde_yaml_reads_them(seed in any::<prop::sample::Index>(), edits in prop::collection::vec(edit(), 0..6)) {
        let seeds = seeds();
        agrees_with_serde_yaml(&apply(&seeds[seed.index(seeds.len())], &edits))?;
    }

    #[test]
    fn random_text_reads_as_serde_yaml_reads_it(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        agrees_with_serde_yaml(&String::from_utf8_lossy(&bytes))?;
    }
}

#[test]
fn every_example_playbook_reads_as_serde_yaml_reads_it() {
    for text in seeds() {
        agrees_with_serde_yaml(&text).unwrap();
    }
}
