//! The core never names a credential kind: everything it knows about one
//! comes from the adapters' registration (`src/providers/mod.rs`). This reads
//! the core's source (unit-test modules aside) and fails on any registered
//! kind or provider kind written as a string, and on any match of a target
//! or provider variant.

use std::path::{Path, PathBuf};

const CORE: &[&str] = &["src/playbook", "src/plan.rs", "src/engine", "src/journal", "src/report", "src/discover", "src/cli", "src/lifecycle.rs"];

fn files(p: &Path, out: &mut Vec<PathBuf>) {
    if p.is_dir() {
        for e in std::fs::read_dir(p).unwrap() {
            files(&e.unwrap().path(), out);
        }
    } else if p.extension().is_some_and(|e| e == "rs") {
        out.push(p.to_path_buf());
    }
}

/// The source without its unit-test modules (`#[cfg(test)]` to the end of
/// the file, where this codebase keeps them) and without comments.
fn code(p: &Path) -> String {
    let s = std::fs::read_to_string(p).unwrap();
    let s = match s.find("#[cfg(test)]") {
        Some(i) => &s[..i],
        None => &s[..],
    };
    s.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

#[test]
fn the_core_names_no_kind_and_matches_no_variant() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut all = vec![];
    for c in CORE {
        files(&root.join(c), &mut all);
    }
    // discover/tests.rs is a unit-test module of its own.
    all.retain(|p| !p.ends_with("discover/tests.rs"));
    assert!(all.len() > 20, "the core's files were not found: {all:?}");
    let kinds: Vec<&str> =
        keysweep::providers::KINDS.iter().map(|k| k.kind).chain(keysweep::providers::PROVIDER_KINDS.iter().map(|p| p.kind)).collect();
    assert!(kinds.len() >= 10, "{kinds:?}");
    let mut found = vec![];
    for p in &all {
        let text = code(p);
        for k in &kinds {
            if text.contains(&format!("\"{k}\"")) || text.contains(&format!("\"{k}_")) {
                found.push(format!("{}: names the kind `{k}`", p.display()));
            }
        }
        for variant in ["Target::", "ProviderConfig::"] {
            for (i, _) in text.match_indices(variant) {
                let next = text[i + variant.len()..].chars().next().unwrap_or(' ');
                if next.is_ascii_uppercase() {
                    found.push(format!(
                        "{}: matches a variant (`{variant}{}…`)",
                        p.display(),
                        &text[i + variant.len()..][..8.min(text.len() - i - variant.len())]
                    ));
                }
            }
        }
    }
    assert!(found.is_empty(), "the core names kinds:\n{}", found.join("\n"));
}

#[test]
fn every_registered_kind_has_capabilities_and_an_owner() {
    for k in keysweep::providers::KINDS {
        assert!(keysweep::providers::PROVIDER_KINDS.iter().any(|p| p.kind == k.provider), "{}: owner `{}` is not registered", k.kind, k.provider);
        let caps = (k.capabilities)();
        assert!(caps.rotate || caps.revoke, "{}: can neither rotate nor revoke", k.kind);
    }
}
