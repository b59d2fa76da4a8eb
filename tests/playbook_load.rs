//! Playbook loading: a corpus of bad playbooks (one mistake per file, each
//! stating the messages and the position it must produce) and a good
//! multi-file playbook whose resolved form is checked field by field.
//!
//! Corpus headers, at the top of each `tests/bad_playbooks/*.yaml`:
//!   `# expect: <text>`       the diagnostics' Display contains <text> (one or more)
//!   `# at: [file:]line:col`  the first diagnostic is there (file defaults to the corpus file)
//!   `# errors: <n>`          exactly n diagnostics (optional)
//!   `# not: <text>`          the Display never contains <text> (e.g. a pasted secret)

use std::path::{Path, PathBuf};
use std::time::Duration;

use keysweep::playbook::loader::load_with_env;
use keysweep::playbook::model::{Action, Target};
use keysweep::playbook::StoreLocation;

fn env(k: &str) -> Option<String> {
    match k {
        "VAULT_ADDR" => Some("http://127.0.0.1:8200".into()),
        "VAULT_TOKEN" => Some("test-token-from-env".into()),
        _ => None,
    }
}

fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

struct Case {
    name: String,
    expect: Vec<String>,
    not: Vec<String>,
    at: String,
    errors: Option<usize>,
}

fn read_case(path: &Path) -> Case {
    let text = std::fs::read_to_string(path).unwrap();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let header = |tag: &str| -> Vec<String> { text.lines().filter_map(|l| l.strip_prefix(tag)).map(|v| v.trim().to_string()).collect() };
    let expect = header("# expect:");
    assert!(!expect.is_empty(), "{name}: no `# expect:` line");
    let at = header("# at:").pop().unwrap_or_else(|| panic!("{name}: no `# at:` line"));
    // `line:col` alone refers to the corpus file itself; `file:line:col` to
    // another (a helper in a subfolder), relative to the corpus folder.
    let at = if at.matches(':').count() == 1 { format!("{name}:{at}") } else { at };
    let errors = header("# errors:").pop().map(|n| n.parse().unwrap());
    Case { name, expect, not: header("# not:"), at, errors }
}

#[test]
fn every_bad_playbook_is_refused_with_the_expected_diagnostics() {
    let dir = tests_dir().join("bad_playbooks");
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml")).collect();
    files.sort();
    assert!(files.len() >= 20, "corpus has only {} files", files.len());

    let mut failures = Vec::new();
    for path in &files {
        let case = read_case(path);
        let out = match load_with_env(path, &env) {
            Ok(_) => {
                failures.push(format!("{}: loaded without error", case.name));
                continue;
            }
            Err(d) => {
                if let Some(n) = case.errors {
                    if d.0.len() != n {
                        failures.push(format!("{}: {} errors, expected {n}:\n{d}", case.name, d.0.len()));
                    }
                }
                d.to_string()
            }
        };
        for e in &case.expect {
            if !out.contains(e.as_str()) {
                failures.push(format!("{}: missing `{e}` in:\n{out}", case.name));
            }
        }
        for n in &case.not {
            if out.contains(n.as_str()) {
                failures.push(format!("{}: must not contain `{n}`:\n{out}", case.name));
            }
        }
        // The first diagnostic names the file and position given by `# at:`.
        let first = out.lines().next().unwrap_or_default();
        let want = format!("{}: error:", case.at);
        if !first.contains(&want) {
            failures.push(format!("{}: first diagnostic is not at `{}`:\n{out}", case.name, case.at));
        }
    }
    assert!(failures.is_empty(), "{} problem(s):\n\n{}", failures.len(), failures.join("\n\n"));
}

#[test]
fn the_multi_problem_file_reports_them_all_in_file_order() {
    let path = tests_dir().join("bad_playbooks/many_problems.yaml");
    let d = load_with_env(&path, &env).unwrap_err();
    assert!(d.0.len() >= 3, "{d}");
    let lines: Vec<usize> = d.0.iter().map(|x| x.location.as_ref().unwrap().line).collect();
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "not sorted: {lines:?}");
    assert!(d.to_string().ends_with(&format!("{} error(s); nothing was changed on any system", d.0.len())));
}

#[test]
fn an_unreadable_playbook_names_its_path() {
    let d = load_with_env(Path::new("/nonexistent/keysweep/playbook.yaml"), &env).unwrap_err();
    assert_eq!(d.0.len(), 1);
    assert!(d.to_string().contains("cannot read playbook `/nonexistent/keysweep/playbook.yaml`"), "{d}");
}

#[test]
fn the_good_playbook_resolves_defaults_includes_and_interpolation() {
    let root = tests_dir().join("good_playbooks/main.yaml");
    let pb = load_with_env(&root, &env).unwrap_or_else(|d| panic!("{d}"));

    assert_eq!(pb.root, root);
    let names: Vec<String> = pb.files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["main.yaml", "payments.yaml", "search.yaml"]);
    assert_eq!(pb.fingerprint.len(), 64);
    assert!(pb.fingerprint.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(load_with_env(&root, &env).unwrap().fingerprint, pb.fingerprint, "fingerprint is stable");

    // Providers from both files, with interpolated settings and their locations.
    assert_eq!(pb.providers.keys().collect::<Vec<_>>(), ["bao", "bao-eu"]);
    let bao = &pb.providers["bao"];
    assert_eq!((bao.location.line, bao.location.column), (4, 3));
    assert!(bao.location.file.ends_with("main.yaml"));
    let keysweep::playbook::model::ProviderConfig::Vault(v) = &bao.config else { panic!("not a vault provider") };
    assert_eq!(v.address.as_deref(), Some("http://127.0.0.1:8200"));
    assert_eq!(v.namespace.as_deref(), Some("${literal}/ops"), "$${{ writes a literal ${{");
    assert_eq!(pb.providers["bao-eu"].config.limits().concurrency, Some(2));

    let ids: Vec<&str> = pb.credentials.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["ci-token", "deploy-approle", "payments/db", "search/legacy-token"]);
    let cred = |id: &str| pb.credentials.iter().find(|c| c.id == id).unwrap();

    // The root file's defaults: owner, tags (defaults first), delivery with `{id}`, verify.
    let ci = cred("ci-token");
    assert_eq!(ci.owner.as_deref(), Some("platform"));
    assert_eq!(ci.tags, ["managed", "ci"]);
    assert_eq!(ci.action, Action::Rotate);
    assert_eq!(
        ci.deliver_to,
        [StoreLocation { provider: "bao".into(), mount: "secret".into(), path: "apps/ci-token".into(), field: "value".into() }]
    );
    assert_eq!(ci.verify.attempts, 3);
    assert_eq!(ci.verify.interval, Duration::from_secs(2));
    assert!(ci.verify.probe_old);
    assert_eq!(ci.max_age, Some(Duration::from_secs(90 * 86400)));
    assert_eq!(ci.grace_period, None);
    assert_eq!((ci.location.line, ci.location.column), (17, 5));
    assert!(matches!(&ci.target, Target::VaultToken(t) if t.accessor.as_deref() == Some("abc123")));

    // A credential's own values win over the defaults, field by field.
    let ar = cred("deploy-approle");
    assert_eq!(ar.owner.as_deref(), Some("deploy-team"));
    assert_eq!(ar.tags, ["managed"]);
    assert_eq!(ar.verify.attempts, 3);
    assert!(!ar.verify.probe_old);
    assert_eq!(ar.deliver_to.len(), 2);
    assert_eq!(ar.deliver_to[0].path, "deploy/deploy-approle/secret-id");
    assert_eq!((ar.deliver_to[1].mount.as_str(), ar.deliver_to[1].field.as_str()), ("kv", "secret_id"));
    assert_eq!(ar.depends_on, ["ci-token"]);

    // An included file does not inherit the includer's defaults; a KV secret
    // without deliver_to is delivered to itself.
    let db = cred("payments/db");
    assert_eq!(db.owner, None);
    assert!(db.tags.is_empty());
    assert_eq!(db.verify, keysweep::playbook::Verify::default());
    assert_eq!(
        db.deliver_to,
        [StoreLocation { provider: "bao-eu".into(), mount: "kv".into(), path: "payments/db".into(), field: "password".into() }]
    );
    assert!(db.location.file.ends_with("teams/payments.yaml"));
    assert_eq!(db.grace_period, Some(Duration::from_secs(600)));

    // The glob-included file has its own defaults.
    let legacy = cred("search/legacy-token");
    assert_eq!(legacy.action, Action::Revoke);
    assert_eq!(legacy.owner.as_deref(), Some("search"));
    assert!(legacy.deliver_to.is_empty());
}

#[test]
fn secret_references_stay_references_and_env_values_are_not_flagged() {
    // The token's value looks exactly like a Vault token: it comes from the
    // environment, so it is neither flagged nor copied into the playbook.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.yaml");
    std::fs::write(
        &path,
        "version: 1\nproviders:\n  bao:\n    kind: vault\n    address: ${env:VAULT_ADDR}\n    auth: { method: token, token: \"${env:REAL}\" }\n",
    )
    .unwrap();
    let real = |k: &str| match k {
        "VAULT_ADDR" => Some("http://127.0.0.1:8200".to_string()),
        "REAL" => Some("hvs.CAESIFAKEfakeFAKEfake0123456789".to_string()),
        _ => None,
    };
    let pb = load_with_env(&path, &real).unwrap_or_else(|d| panic!("{d}"));
    let keysweep::playbook::model::ProviderConfig::Vault(v) = &pb.providers["bao"].config else { panic!("not a vault provider") };
    assert!(matches!(&v.auth, Some(keysweep::providers::vault::config::VaultAuth::Token { token }) if token.to_string() == "${env:REAL}"));
}

// ---------------------------------------------------------------------------
// Hostile input and the defaults of issue 8 (built at run time: FIFOs, BOMs,
// thousands of files cannot live in the corpus).
// ---------------------------------------------------------------------------

const PROVIDER: &str =
    "version: 1\nproviders:\n  bao:\n    kind: vault\n    address: ${env:VAULT_ADDR}\n    auth: { method: token, token: \"${env:VAULT_TOKEN}\" }\n";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn a_fifo_include_is_refused_without_waiting_for_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.yaml");
    let st = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    let root = write(dir.path(), "p.yaml", &format!("{PROVIDER}include: [pipe.yaml, \"*.yaml\"]\n"));
    let started = std::time::Instant::now();
    let d = load_with_env(&root, &env).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    let s = d.to_string();
    assert!(s.contains("p.yaml:7:11: error: included file `") && s.contains("pipe.yaml` is a FIFO (named pipe), not a regular file"), "{s}");
    // The glob matches the FIFO too; it is refused the same way, at the glob's entry.
    assert!(s.contains("p.yaml:7:22: error: included file `"), "{s}");
    // The root playbook itself may not be a FIFO either.
    let d = load_with_env(&fifo, &env).unwrap_err();
    assert!(d.to_string().contains("is a FIFO (named pipe), not a regular file"), "{d}");
}

#[test]
fn an_oversized_file_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.yaml");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(keysweep::playbook::loader::MAX_FILE_BYTES + 1).unwrap(); // sparse: nothing is written
    let root = write(dir.path(), "p.yaml", &format!("{PROVIDER}include: [big.yaml]\n"));
    let d = load_with_env(&root, &env).unwrap_err();
    let s = d.to_string();
    assert!(s.contains("p.yaml:7:11: error: included file `") && s.contains("big.yaml` is larger than 8 MiB"), "{s}");
}

#[test]
fn a_glob_matching_too_many_files_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let many = dir.path().join("many");
    std::fs::create_dir(&many).unwrap();
    for i in 0..=keysweep::playbook::loader::MAX_FILES {
        std::fs::File::create(many.join(format!("{i}.yaml"))).unwrap();
    }
    let root = write(dir.path(), "p.yaml", &format!("{PROVIDER}include: [\"many/*.yaml\"]\n"));
    let started = std::time::Instant::now();
    let d = load_with_env(&root, &env).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    assert_eq!(d.0.len(), 1, "{d}");
    assert!(d.to_string().contains("p.yaml:7:11: error: include `many/*.yaml` matches more than 10000 files"), "{d}");
}

#[test]
fn a_byte_order_mark_is_accepted_and_positions_are_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let inc =
        write(dir.path(), "inc.yaml", "\u{feff}version: 1\ncredentials:\n  - { id: a, provider: bao, target: { kind: vault_kv_secret, path: a } }\n");
    let root = write(dir.path(), "p.yaml", &format!("\u{feff}{PROVIDER}include: [inc.yaml]\n"));
    let pb = load_with_env(&root, &env).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(pb.credentials.len(), 1);
    assert_eq!((pb.credentials[0].location.line, pb.credentials[0].location.column), (3, 5));
    // An error on the first line of a file with a BOM is at column 1, not 2.
    std::fs::write(&inc, "\u{feff}versio: 1\n").unwrap();
    let d = load_with_env(&root, &env).unwrap_err();
    assert!(d.to_string().contains("inc.yaml:1:1: error: unknown field `versio`"), "{d}");
}

#[test]
fn link_local_addresses_pass_only_with_the_opt_in() {
    let dir = tempfile::tempdir().unwrap();
    let text = "version: 1\nproviders:\n  bao:\n    kind: vault\n    address: http://169.254.10.1:8200\n    allow_link_local: true\n    allow_plaintext: true\n    auth: { method: token, token: \"${env:VAULT_TOKEN}\" }\n";
    let root = write(dir.path(), "p.yaml", text);
    load_with_env(&root, &env).unwrap_or_else(|d| panic!("{d}"));
    std::fs::write(&root, text.replace("    allow_link_local: true\n", "")).unwrap();
    let d = load_with_env(&root, &env).unwrap_err();
    assert!(d.to_string().contains("p.yaml:5:14: error: `169.254.10.1` is a link-local address"), "{d}");
}

#[test]
fn an_address_from_the_environment_is_checked_and_its_password_not_shown() {
    let dir = tempfile::tempdir().unwrap();
    let root = write(dir.path(), "p.yaml", PROVIDER);
    let env2 = |k: &str| match k {
        "VAULT_ADDR" => Some("https://ops:s3cr3t-pw@vault.internal".to_string()),
        k => env(k),
    };
    let d = load_with_env(&root, &env2).unwrap_err();
    let s = d.to_string();
    assert!(s.contains("p.yaml:5:14: error: the address carries a user name or password"), "{s}");
    assert!(s.contains("login reference"), "{s}");
    assert!(!s.contains("s3cr3t-pw"), "{s}");
}

#[test]
fn alternating_pairs_get_the_default_grace_period_and_literal_text_stays() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{PROVIDER}  pg:\n    kind: postgres\n    admin: {{ user: postgres, password: \"${{env:VAULT_TOKEN}}\" }}\ncredentials:\n  \
         - {{ id: duo, provider: pg, description: \"costs $$5, see $${{HOME}}\", target: {{ kind: postgres_role, user: a, alternate_with: b }}, deliver_to: [{{ provider: bao, path: \"db/{{id}}\" }}] }}\n  \
         - {{ id: single, provider: pg, target: {{ kind: postgres_role, user: c }}, deliver_to: [{{ provider: bao, path: \"db/{{id}}\" }}] }}\n  \
         - {{ id: quick, provider: pg, grace_period: 0s, target: {{ kind: postgres_role, user: d, alternate_with: e }}, deliver_to: [{{ provider: bao, path: \"db/{{id}}\" }}] }}\n"
    );
    let root = write(dir.path(), "p.yaml", &text);
    let pb = load_with_env(&root, &env).unwrap_or_else(|d| panic!("{d}"));
    let c = |id: &str| pb.credentials.iter().find(|c| c.id == id).unwrap().clone();
    assert_eq!(c("duo").grace_period, Some(keysweep::playbook::DEFAULT_ALTERNATING_GRACE));
    assert_eq!(keysweep::playbook::DEFAULT_ALTERNATING_GRACE, Duration::from_secs(30));
    assert_eq!(c("single").grace_period, None);
    assert_eq!(c("quick").grace_period, Some(Duration::ZERO), "an explicit grace period wins");
    assert_eq!(c("duo").description.as_deref(), Some("costs $$5, see ${HOME}"));

    // The plan warns about the short one, and about nothing else of the kind.
    let plan = keysweep::plan::build(&pb, &keysweep::plan::Selection::default());
    let w = plan.warnings.iter().find(|w| w.contains("grace_period shorter than the default 30s")).expect("no grace warning");
    assert!(w.contains("quick (0s)") && !w.contains("duo"), "{w}");
    assert!(w.contains("open sessions of the retired account are ended after the grace period"), "{w}");
}

#[test]
fn plan_warns_when_death_can_never_be_proven() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{PROVIDER}  pg:\n    kind: postgres\n    admin: {{ user: postgres, password: \"${{env:VAULT_TOKEN}}\" }}\ncredentials:\n  \
         - {{ id: blind, provider: pg, verify: {{ probe_old: false }}, target: {{ kind: postgres_role, user: a }}, deliver_to: [{{ provider: bao, path: \"db/{{id}}\" }}] }}\n  \
         - {{ id: probed, provider: pg, target: {{ kind: postgres_role, user: c }}, deliver_to: [{{ provider: bao, path: \"db/{{id}}\" }}] }}\n  \
         - {{ id: duo, provider: pg, verify: {{ probe_old: false }}, target: {{ kind: postgres_role, user: d, alternate_with: e }}, deliver_to: [{{ provider: bao, path: \"db/{{id}}\" }}] }}\n"
    );
    let root = write(dir.path(), "p.yaml", &text);
    let pb = load_with_env(&root, &env).unwrap_or_else(|d| panic!("{d}"));
    let plan = keysweep::plan::build(&pb, &keysweep::plan::Selection::default());
    let w = plan.warnings.iter().find(|w| w.contains("death can never be proven")).expect("no warning");
    assert!(w.starts_with("1 credential(s)") && w.contains("blind") && !w.contains("probed") && !w.contains("duo"), "{w}");
    let c = |id: &str| pb.credentials.iter().find(|c| c.id == id).unwrap().clone();
    assert!(keysweep::plan::death_provable(&c("blind")).is_err());
    assert!(keysweep::plan::death_provable(&c("probed")).is_ok());
    // Without the old value in a store, a single-user rotation cannot be proven; a pair can (admin-side).
    assert!(keysweep::plan::death_provable_with(&c("probed"), false).unwrap_err().contains("no store holds the old password"));
    assert!(keysweep::plan::death_provable_with(&c("duo"), false).is_ok());
}

/// Secrets pasted into free-text fields are flagged at their position and
/// never echoed. The values are made at run time (random filler), so no
/// file of the repository holds anything shaped like a live credential.
#[test]
fn secrets_in_free_text_are_flagged_at_their_position_and_not_echoed() {
    let fill = |n: usize| -> String {
        let a = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..n).map(|_| a[rand::random::<u32>() as usize % a.len()] as char).collect()
    };
    // An AWS secret access key (40 characters, `/` inside), a Slack bot
    // token and a fine-grained GitHub token.
    let aws = format!("{}/{}/{}", fill(13), fill(7), fill(18));
    let slack = format!("xox{}-{}-{}", "b", 100000000 + rand::random::<u32>() % 899999999, fill(8).to_lowercase());
    let github = format!("github_{}_11{}", "pat", fill(31));
    let text = format!(
        "{PROVIDER}credentials:\n  - id: api\n    provider: bao\n    description: \"leaked: {aws}\"\n    owner: \"{slack}\"\n    tags: [\"{github}\"]\n    target: {{ kind: vault_token, accessor: abc123 }}\n    deliver_to: [{{ provider: bao, path: \"apps/{{id}}\" }}]\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let root = write(dir.path(), "p.yaml", &text);
    let s = load_with_env(&root, &env).unwrap_err().to_string();
    for want in [
        "p.yaml:10:18: error: this looks like an AWS secret access key written inline",
        "p.yaml:11:12: error: this looks like a Slack token written inline",
        "p.yaml:12:12: error: this looks like a GitHub token written inline",
        "3 error(s)",
    ] {
        assert!(s.contains(want), "missing `{want}` in:\n{s}");
    }
    for (what, v) in [("AWS key", &aws), ("Slack token", &slack), ("GitHub token", &github)] {
        assert!(!s.contains(&v[..12]), "the {what} is echoed in:\n{s}");
    }
}
