//! Loads playbook files: the only module that parses YAML.
//!
//! A file goes through these steps, and every problem found on the way becomes
//! a [`Diagnostic`] pointing at `file:line:column` (nothing stops at the first):
//!
//! 1. read and parse into a `serde_yaml::Value` (syntax errors carry serde_yaml's
//!    position); index every node's position with yaml-rust2 ([`super::locate`]);
//! 2. refuse strings that look like pasted secrets (checked on the text as
//!    written, so values that come from the environment are never flagged);
//! 3. check secret references (`token:`, `secret_id:`, `role_id:`, `password:`
//!    stay `${env:VAR}` and are resolved later) and interpolate `${env:VAR}`
//!    everywhere else (`$${` writes a literal `${`);
//! 4. deserialize into the model piece by piece (top level, `defaults`, each
//!    provider, each credential) so that one bad credential does not hide the next;
//! 5. follow `include:` (paths or globs relative to the including file).
//!
//! Then the merged playbook is validated as a whole (references, duplicates,
//! capabilities, dependency cycles, store collisions) and resolved: defaults
//! applied, deliveries expanded.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Component, Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;
use serde::de::DeserializeOwned;
use serde_yaml::Value;
use sha2::{Digest, Sha256};

use super::locate::{LocationIndex, Pos, Seg, YamlPath};
use super::model::{is_env_name, Action, CredentialSpec, Defaults, Delivery, PlaybookFile, ProviderConfig, SecretRef};
pub use super::rules::{
    address_problem, duration_problem, host_problem, store_path_problem, MAX_GRACE_PERIOD, MAX_LONG_DURATION, MAX_SHORT_DURATION,
};
use super::{Credential, Diagnostic, Diagnostics, Discovery, Location, Playbook, ProviderEntry, StoreLocation, Verify};
use crate::provider::kind::{self, capabilities, CheckCx, Problem};

/// The playbook format version this release reads.
pub const VERSION: u32 = 1;

/// Largest playbook file read (a playbook is text a person writes; anything
/// larger is a mistake, or `/dev/zero`).
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;
/// Largest total of all files of one playbook.
pub const MAX_TOTAL_BYTES: u64 = 64 * 1024 * 1024;
/// Most files one playbook may read, and most a glob may match.
pub const MAX_FILES: usize = 10_000;
/// Deepest chain of includes (a includes b includes c ...).
pub const MAX_INCLUDE_DEPTH: usize = 32;
/// Deepest folder level below its fixed prefix that a `**` glob descends to.
pub const MAX_GLOB_DEPTH: usize = 16;
/// Most directory entries a glob looks at before giving up.
pub const MAX_GLOB_VISITS: usize = 100_000;

const INLINE_HINT: &str = "secrets are never written inline; put it in an environment variable and write ${env:NAME}";

/// Loads and validates the playbook at `path`, reading `${env:VAR}` from the process environment.
pub fn load(path: &Path) -> Result<Playbook, Diagnostics> {
    load_with_env(path, &|k| std::env::var(k).ok())
}

/// Loads and validates the playbook at `path`, reading `${env:VAR}` through `env`.
pub fn load_with_env(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Playbook, Diagnostics> {
    let mut loader = Loader::new(env);
    loader.load_file(path.to_path_buf(), None);
    let playbook = loader.resolve(path);
    let mut diags = loader.diags;
    if diags.is_empty() {
        return Ok(playbook);
    }
    sort_diagnostics(&mut diags);
    Err(Diagnostics(diags))
}

fn sort_diagnostics(diags: &mut Vec<Diagnostic>) {
    diags.sort_by(|a, b| {
        let key = |d: &Diagnostic| d.location.as_ref().map(|l| (l.file.clone(), l.line, l.column));
        key(a).cmp(&key(b))
    });
    diags.dedup();
}

// ---------------------------------------------------------------------------
// Interpolation and secret detection (pure functions, unit-tested below)
// ---------------------------------------------------------------------------

/// A problem with one `${...}` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InterpError {
    /// `${env:VAR}` with `VAR` unset.
    Missing(String),
    /// `${env:...}` whose name is not an environment variable name.
    BadName(String),
    /// `${...}` of another kind than `env:`.
    Unknown(String),
    /// `${` without its `}`.
    Unterminated,
}

impl InterpError {
    fn diagnostic(&self, at: Location) -> Diagnostic {
        match self {
            InterpError::Missing(v) => {
                Diagnostic::new(Some(at), format!("environment variable `{v}` is not set")).hint(format!("export {v}=... or remove the reference"))
            }
            InterpError::BadName(n) => Diagnostic::new(Some(at), format!("`{n}` is not an environment variable name"))
                .hint("write ${env:NAME} with NAME made of letters, digits and `_`"),
            InterpError::Unknown(r) => Diagnostic::new(Some(at), format!("unknown reference `${{{r}}}`"))
                .hint("only ${env:NAME} is interpolated; write $${ for a literal ${"),
            InterpError::Unterminated => Diagnostic::new(Some(at), "`${` without a closing `}`").hint("write ${env:NAME}, or $${ for a literal ${"),
        }
    }
}

/// Replaces every `${env:VAR}` in `s` with the variable's value; `$${` writes `${`.
pub(crate) fn interpolate(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, Vec<InterpError>> {
    let mut out = String::with_capacity(s.len());
    let mut errors = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(r) = rest.strip_prefix("$${") {
            out.push_str("${");
            rest = r;
        } else if let Some(r) = rest.strip_prefix("${") {
            let Some(end) = r.find('}') else {
                errors.push(InterpError::Unterminated);
                out.push_str(rest);
                rest = "";
                break;
            };
            let inner = &r[..end];
            match inner.strip_prefix("env:") {
                Some(name) if is_env_name(name) => match env(name) {
                    Some(v) => out.push_str(&v),
                    None => errors.push(InterpError::Missing(name.to_string())),
                },
                Some(name) => errors.push(InterpError::BadName(name.to_string())),
                None => errors.push(InterpError::Unknown(inner.to_string())),
            }
            rest = &r[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

static SECRET_SHAPES: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        (r"\b(?:hvs|hvb|s)\.[A-Za-z0-9]{20,}", "a Vault token"),
        (r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b", "an AWS access key id"),
        (r"\b(?:ghp|gho|ghs|ghu|ghr)_[A-Za-z0-9]{20,}", "a GitHub token"),
        (r"\bgithub_pat_[A-Za-z0-9_]{20,}", "a GitHub token"),
        (r"\bxox[abprs]-[A-Za-z0-9-]{8,}", "a Slack token"),
        (r"-----BEGIN", "a PEM block (key material)"),
    ]
    .into_iter()
    .map(|(re, what)| (Regex::new(re).expect("secret pattern"), what))
    .collect()
});

/// What kind of secret `s` looks like, if it looks like one.
pub(crate) fn looks_like_secret(s: &str) -> Option<&'static str> {
    if let Some(what) = SECRET_SHAPES.iter().find(|(re, _)| re.is_match(s)).map(|(_, what)| *what) {
        // A key id next to a 40-character key is the pair, secret and all.
        if what == "an AWS access key id" && has_aws_secret_key_shape(s) {
            return Some("an AWS secret access key");
        }
        return Some(what);
    }
    None
}

/// Like [`looks_like_secret`], for free text (descriptions, owners, tags),
/// where any 40-character run of base64 characters mixing upper and lower case
/// is taken for an AWS secret access key (a 40-digit hex commit id is not).
pub(crate) fn looks_like_secret_in_text(s: &str) -> Option<&'static str> {
    looks_like_secret(s).or_else(|| has_aws_secret_key_shape(s).then_some("an AWS secret access key"))
}

/// A run of exactly 40 characters of `[A-Za-z0-9/+=]` with upper and lower case letters in it.
fn has_aws_secret_key_shape(s: &str) -> bool {
    let is_b64 = |c: char| c.is_ascii_alphanumeric() || c == '/' || c == '+' || c == '=';
    s.split(|c: char| !is_b64(c)).any(|run| {
        run.len() == 40
            && run.chars().any(|c| c.is_ascii_uppercase())
            && run.chars().any(|c| c.is_ascii_lowercase())
            && run.chars().any(|c| c.is_ascii_digit() || c == '/' || c == '+')
    })
}

/// The field name when `path` is a free-text field: printed in plans and
/// reports, never used to reach a system (`${env:}` is not expanded there).
fn free_text_field(path: &YamlPath) -> Option<&str> {
    use Seg::{Index, Key};
    let segs = path.0.as_slice();
    let field = match segs {
        [Key(c), Index(_), Key(f)] if c == "credentials" && ["owner", "description", "id"].contains(&f.as_str()) => f,
        [Key(c), Index(_), Key(f), Index(_)] if c == "credentials" && ["tags", "depends_on"].contains(&f.as_str()) => f,
        [Key(d), Key(f)] if d == "defaults" && f == "owner" => f,
        [Key(d), Key(f), Index(_)] if d == "defaults" && f == "tags" => f,
        [Key(d), Key(i), Index(_), Key(f)] if d == "discovery" && i == "ignore" && f == "reason" => f,
        _ => return None,
    };
    Some(field.as_str())
}

/// `$${` in free text writes `${`; any `${...}` reference is refused: the
/// interpolation scan with no variable defined, so every reference errs.
fn unescape_free_text(s: &str) -> Result<String, ()> {
    interpolate(s, &|_| None).map_err(|_| ())
}

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

/// A map key as the location index spells it.
fn key_string(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "~".into(),
        Value::Tagged(t) => key_string(&t.value),
        _ => "?".into(),
    }
}

fn untag(v: &Value) -> &Value {
    match v {
        Value::Tagged(t) => untag(&t.value),
        v => v,
    }
}

fn value_at<'a>(root: &'a Value, path: &YamlPath) -> Option<&'a Value> {
    let mut v = untag(root);
    for s in &path.0 {
        v = match s {
            Seg::Key(k) => v.as_mapping()?.iter().find(|(kk, _)| key_string(kk) == *k)?.1,
            Seg::Index(i) => v.as_sequence()?.get(*i)?,
        };
        v = untag(v);
    }
    Some(v)
}

fn scalar_text(v: &Value) -> Option<String> {
    match untag(v) {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Breadth-first search below `start` (itself included) for a node, or for a
/// map entry whose key satisfies `key_pred`.
fn search(root: &Value, start: &YamlPath, node_pred: &dyn Fn(&YamlPath, &Value) -> bool, key_pred: &dyn Fn(&str) -> bool) -> Option<YamlPath> {
    let mut queue = VecDeque::new();
    queue.push_back((start.clone(), value_at(root, start)?));
    while let Some((p, v)) = queue.pop_front() {
        if node_pred(&p, v) {
            return Some(p);
        }
        match untag(v) {
            Value::Mapping(m) => {
                for (k, child) in m {
                    let ks = key_string(k);
                    if key_pred(&ks) {
                        return Some(p.key(ks));
                    }
                    queue.push_back((p.key(ks), child));
                }
            }
            Value::Sequence(s) => {
                for (i, child) in s.iter().enumerate() {
                    queue.push_back((p.index(i), child));
                }
            }
            _ => {}
        }
    }
    None
}

/// The text between the backticks that follow `prefix` in `msg`.
fn quoted_after<'a>(msg: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = &msg[msg.find(prefix)? + prefix.len()..];
    rest.find('`').map(|end| &rest[..end])
}

/// Every text in backticks or double quotes in `msg`.
fn quoted_tokens(msg: &str) -> Vec<String> {
    static QUOTED: LazyLock<Regex> = LazyLock::new(|| Regex::new(r#"`([^`]*)`|"([^"]*)""#).expect("regex"));
    QUOTED.captures_iter(msg).filter_map(|c| c.get(1).or_else(|| c.get(2)).map(|m| m.as_str().to_string())).filter(|s| !s.is_empty()).collect()
}

pub(crate) fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The candidate closest to `word`, if it is close enough to be a likely typo.
fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates.into_iter().map(|c| (levenshtein(word, c), c)).filter(|(d, _)| *d <= limit).min_by_key(|(d, _)| *d).map(|(_, c)| c)
}

fn list(names: &[&str]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

/// Removes `.` and resolves `..` lexically, so that paths read well in messages.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if matches!(out.components().next_back(), Some(Component::Normal(_))) {
                    out.pop();
                } else {
                    out.push("..");
                }
            }
            c => out.push(c.as_os_str()),
        }
    }
    out
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Placeholders in a delivery path other than `{id}`.
fn unknown_placeholders(path: &str) -> Vec<String> {
    static PLACEHOLDER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\{[^}]*\}").expect("regex"));
    PLACEHOLDER.find_iter(path).map(|m| m.as_str().to_string()).filter(|m| m != "{id}").collect()
}

fn id_problem(id: &str) -> Option<String> {
    if id.is_empty() {
        return Some("credential id is empty".into());
    }
    if let Some(c) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || "._/-".contains(*c))) {
        return Some(format!("credential id `{id}` contains `{c}`; ids use only [A-Za-z0-9._/-]"));
    }
    if id.starts_with('/') || id.ends_with('/') || id.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Some(format!("credential id `{id}` has an empty, `.` or `..` path segment"));
    }
    None
}

// ---------------------------------------------------------------------------
// Reading files and expanding globs, bounded (hostile input must not exhaust the host)
// ---------------------------------------------------------------------------

/// Why a playbook file was not read.
#[derive(Debug)]
pub(crate) enum ReadError {
    Io(std::io::Error),
    /// Not a regular file: what it is instead.
    NotAFile(&'static str),
    TooLarge {
        len: u64,
        cap: u64,
    },
    NotUtf8 {
        offset: usize,
        line: usize,
        column: usize,
    },
}

impl ReadError {
    fn message(&self) -> String {
        match self {
            ReadError::Io(e) => format!("cannot be read: {e}"),
            ReadError::NotAFile(what) => format!("is {what}, not a regular file"),
            ReadError::TooLarge { len, cap } if len > cap => format!("is larger than {} (the most a playbook may read)", human_bytes(*cap)),
            ReadError::TooLarge { cap, .. } => format!("is larger than {}", human_bytes(*cap)),
            ReadError::NotUtf8 { offset, .. } => format!("is not UTF-8 text (invalid byte at offset {offset})"),
        }
    }
    fn hint(&self) -> String {
        match self {
            ReadError::NotAFile(_) => "playbooks and includes are regular YAML files; devices, FIFOs, sockets and folders are never read".into(),
            ReadError::TooLarge { .. } => format!(
                "a playbook file is at most {}, all files together at most {}; split it, or check the path names a playbook",
                human_bytes(MAX_FILE_BYTES),
                human_bytes(MAX_TOTAL_BYTES)
            ),
            ReadError::NotUtf8 { .. } => "save the file as UTF-8 (a byte-order mark at the start is accepted)".into(),
            ReadError::Io(_) => String::new(),
        }
    }
}

fn human_bytes(n: u64) -> String {
    if n % (1024 * 1024) == 0 {
        format!("{} MiB", n / (1024 * 1024))
    } else {
        format!("{n} bytes")
    }
}

fn file_type_name(ft: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() {
        "a folder"
    } else if ft.is_fifo() {
        "a FIFO (named pipe)"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Reads a playbook file: a regular file only (checked before opening, and
/// opened non-blocking so a FIFO swapped in between cannot hang), at most
/// [`MAX_FILE_BYTES`] and `budget`, UTF-8, a leading byte-order mark dropped.
pub(crate) fn read_playbook_file(path: &Path, budget: u64) -> Result<String, ReadError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let meta = std::fs::metadata(path).map_err(ReadError::Io)?;
    if !meta.file_type().is_file() {
        return Err(ReadError::NotAFile(file_type_name(&meta.file_type())));
    }
    let cap = MAX_FILE_BYTES.min(budget);
    if meta.len() > cap {
        return Err(ReadError::TooLarge { len: meta.len(), cap });
    }
    // O_NONBLOCK (the same value on every Linux architecture): opening a FIFO
    // does not wait for a writer.
    #[cfg(target_os = "linux")]
    const O_NONBLOCK: i32 = 0o4000;
    #[cfg(not(target_os = "linux"))]
    const O_NONBLOCK: i32 = 0x0004;
    let f = std::fs::OpenOptions::new().read(true).custom_flags(O_NONBLOCK).open(path).map_err(ReadError::Io)?;
    let meta = f.metadata().map_err(ReadError::Io)?;
    if !meta.file_type().is_file() {
        return Err(ReadError::NotAFile(file_type_name(&meta.file_type())));
    }
    let mut buf = Vec::new();
    f.take(cap + 1).read_to_end(&mut buf).map_err(ReadError::Io)?;
    if buf.len() as u64 > cap {
        return Err(ReadError::TooLarge { len: buf.len() as u64, cap });
    }
    let mut text = String::from_utf8(buf).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let valid = std::str::from_utf8(&e.as_bytes()[..offset]).unwrap_or_default();
        let valid = valid.strip_prefix('\u{feff}').unwrap_or(valid);
        let line = valid.matches('\n').count() + 1;
        let column = valid.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ReadError::NotUtf8 { offset, line, column }
    })?;
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    Ok(text)
}

/// Why a glob was not expanded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum GlobError {
    Invalid(String),
    RootedAtRoot,
    TooManyMatches,
    TooManyVisits,
}

/// Expands `pattern` (a path with `*`, `?`, `[...]`, `**`) with bounds: it
/// never starts at `/`, descends at most [`MAX_GLOB_DEPTH`] folders below its
/// fixed prefix, looks at most at [`MAX_GLOB_VISITS`] entries, and matches at
/// most [`MAX_FILES`] files. Symlinked folders are not descended into.
/// Returns what matched that is not a folder, sorted, and unreadable folders.
pub(crate) fn expand_glob(pattern: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>), GlobError> {
    let text = pattern.to_string_lossy();
    let compiled = glob::Pattern::new(&text).map_err(|e| GlobError::Invalid(e.msg.to_string()))?;
    let mut prefix = PathBuf::new();
    let mut rest: Vec<String> = Vec::new();
    for c in pattern.components() {
        let part = c.as_os_str().to_string_lossy().into_owned();
        if rest.is_empty() && !is_glob(&part) {
            prefix.push(c.as_os_str());
        } else {
            rest.push(part);
        }
    }
    if rest.is_empty() {
        return Ok((if pattern.exists() { vec![pattern.to_path_buf()] } else { vec![] }, vec![]));
    }
    if pattern.is_absolute() && prefix.parent().is_none() {
        return Err(GlobError::RootedAtRoot);
    }
    let depth = if rest.iter().any(|p| p.contains("**")) { MAX_GLOB_DEPTH } else { rest.len() };
    let opts = glob::MatchOptions { case_sensitive: true, require_literal_separator: true, require_literal_leading_dot: false };
    let start = if prefix.as_os_str().is_empty() { PathBuf::from(".") } else { prefix.clone() };
    let mut found = Vec::new();
    let mut unreadable = Vec::new();
    let mut visits = 0usize;
    let mut queue: VecDeque<(PathBuf, usize)> = VecDeque::from([(start, 0)]);
    while let Some((dir, level)) = queue.pop_front() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(_) if level == 0 => continue,
            Err(_) => {
                unreadable.push(dir);
                continue;
            }
        };
        for entry in entries {
            visits += 1;
            if visits > MAX_GLOB_VISITS {
                return Err(GlobError::TooManyVisits);
            }
            let Ok(entry) = entry else { continue };
            let name = entry.file_name();
            let p = if prefix.as_os_str().is_empty() { PathBuf::from(&name) } else { dir.join(&name) };
            let Ok(ft) = entry.file_type() else { continue };
            if ft.is_dir() {
                if level + 1 < depth {
                    queue.push_back((p, level + 1));
                }
                continue;
            }
            if compiled.matches_path_with(&p, opts) {
                if ft.is_symlink() && std::fs::metadata(&p).is_ok_and(|m| m.is_dir()) {
                    continue;
                }
                found.push(p);
                if found.len() > MAX_FILES {
                    return Err(GlobError::TooManyMatches);
                }
            }
        }
    }
    found.sort();
    Ok((found, unreadable))
}

// ---------------------------------------------------------------------------
// The loader
// ---------------------------------------------------------------------------

/// One file read.
struct Source {
    /// As displayed in messages (the path given, or joined to the includer's folder).
    path: PathBuf,
    canonical: PathBuf,
    text: String,
    index: LocationIndex,
    /// Paths (in this file) already reported, whose serde errors would repeat them.
    reported: HashSet<String>,
    /// What deserialized from this file.
    data: FileData,
}

#[derive(Default)]
struct FileData {
    /// `Some` when the top level deserialized.
    version: Option<u32>,
    defaults: Defaults,
    /// `false` when `defaults:` did not deserialize: checks that depend on it are skipped.
    defaults_ok: bool,
    providers: Vec<(String, ProviderConfig)>,
    credentials: Vec<(usize, CredentialSpec)>,
    discovery: Option<crate::playbook::model::DiscoverySettings>,
}

struct Loader<'e> {
    env: &'e dyn Fn(&str) -> Option<String>,
    sources: Vec<Source>,
    /// Canonical paths of the files being loaded (the include chain), with their source index.
    stack: Vec<(PathBuf, usize)>,
    diags: Vec<Diagnostic>,
    /// A file could not be read or parsed: references into it cannot be checked.
    incomplete: bool,
    /// Names of providers and ids of credentials that exist but did not deserialize.
    broken_providers: HashSet<String>,
    broken_ids: HashSet<String>,
    /// Every readable credential id in load order, with where it is written
    /// (file, path of the credential), for the duplicate check.
    ids: Vec<(String, usize, YamlPath)>,
    /// Bytes read so far, over all files.
    total_bytes: u64,
    /// Per provider name: `allow_link_local: true` was set (taken out before deserializing).
    allow_link_local: HashMap<String, bool>,
}

impl<'e> Loader<'e> {
    fn new(env: &'e dyn Fn(&str) -> Option<String>) -> Self {
        Loader {
            env,
            sources: Vec::new(),
            stack: Vec::new(),
            diags: Vec::new(),
            incomplete: false,
            broken_providers: HashSet::new(),
            broken_ids: HashSet::new(),
            ids: Vec::new(),
            total_bytes: 0,
            allow_link_local: HashMap::new(),
        }
    }

    fn loc(&self, file: usize, pos: Pos) -> Location {
        Location { file: self.sources[file].path.clone(), line: pos.line, column: pos.column }
    }

    /// The location of the node at `path` (or its nearest ancestor).
    fn at(&self, file: usize, path: &YamlPath) -> Location {
        self.loc(file, self.sources[file].index.nearest(path))
    }

    /// The location of the key of the map entry at `path`.
    fn at_key(&self, file: usize, path: &YamlPath) -> Location {
        self.loc(file, self.sources[file].index.key_or_nearest(path))
    }

    fn error(&mut self, file: usize, path: &YamlPath, msg: impl Into<String>, hint: Option<String>) {
        let mut d = Diagnostic::new(Some(self.at(file, path)), msg);
        d.hint = hint;
        self.sources[file].reported.insert(path.to_string());
        self.diags.push(d);
    }

    // -- reading ------------------------------------------------------------

    /// Loads `path` and, depth first, what it includes. `site` is the include
    /// entry that named it (`None` for the root file).
    fn load_file(&mut self, path: PathBuf, site: Option<(usize, YamlPath)>) {
        let site_loc = site.as_ref().map(|(f, p)| self.at(*f, p));
        let read_error = |e: std::io::Error| {
            let what = if site.is_some() { "included file" } else { "playbook" };
            let d = Diagnostic::new(site_loc.clone(), format!("cannot read {what} `{}`: {e}", path.display()));
            match &site {
                Some((f, _)) => {
                    d.hint(format!("include paths are relative to the including file's folder (`{}`)", folder_of(&self.sources[*f].path).display()))
                }
                None => d,
            }
        };
        let canonical = match std::fs::canonicalize(&path) {
            Ok(c) => c,
            Err(e) => {
                let mut d = read_error(e);
                d.location = d.location.or_else(|| Some(Location { file: path.clone(), line: 1, column: 1 }));
                self.diags.push(d);
                self.incomplete = true;
                return;
            }
        };
        if let Some(start) = self.stack.iter().position(|(c, _)| *c == canonical) {
            let mut chain: Vec<String> = self.stack[start..].iter().map(|(_, i)| self.sources[*i].path.display().to_string()).collect();
            chain.push(self.sources[self.stack[start].1].path.display().to_string());
            let d = Diagnostic::new(site_loc, format!("include cycle: {}", chain.join(" → ")))
                .hint("remove one of these includes; a file cannot include itself, directly or not");
            self.diags.push(d);
            return;
        }
        if self.sources.iter().any(|s| s.canonical == canonical) {
            return; // already loaded through another include: load once
        }
        if self.stack.len() >= MAX_INCLUDE_DEPTH {
            let d = Diagnostic::new(site_loc.clone(), format!("includes nest deeper than {MAX_INCLUDE_DEPTH} files at `{}`", path.display()))
                .hint("include the files from one top-level playbook instead of chaining them");
            self.diags.push(d);
            self.incomplete = true;
            return;
        }
        if self.sources.len() >= MAX_FILES {
            let d = Diagnostic::new(site_loc.clone(), format!("a playbook may read at most {MAX_FILES} files; `{}` is one more", path.display()))
                .hint("narrow the include globs");
            self.diags.push(d);
            self.incomplete = true;
            return;
        }
        let what = if site.is_some() { "included file" } else { "playbook" };
        let text = match read_playbook_file(&path, MAX_TOTAL_BYTES.saturating_sub(self.total_bytes)) {
            Ok(t) => t,
            Err(ReadError::Io(e)) => {
                let mut d = read_error(e);
                d.location = d.location.or_else(|| Some(Location { file: path.clone(), line: 1, column: 1 }));
                self.diags.push(d);
                self.incomplete = true;
                return;
            }
            Err(e) => {
                // Bad bytes are shown where they are; anything else where the
                // file is named (the root file: its start).
                let at = match &e {
                    ReadError::NotUtf8 { line, column, .. } => Some(Location { file: path.clone(), line: *line, column: *column }),
                    _ => site_loc.clone().or_else(|| Some(Location { file: path.clone(), line: 1, column: 1 })),
                };
                let d = Diagnostic::new(at, format!("{what} `{}` {}", path.display(), e.message())).hint(e.hint());
                self.diags.push(d);
                self.incomplete = true;
                return;
            }
        };
        self.total_bytes += text.len() as u64;
        let file = self.sources.len();
        self.sources.push(Source {
            path: path.clone(),
            canonical: canonical.clone(),
            // Built once serde_yaml has accepted the text: it bounds the
            // nesting, and yaml-rust2's loader recurses once per level.
            index: LocationIndex::default(),
            text,
            reported: HashSet::new(),
            data: FileData::default(),
        });
        self.stack.push((canonical, file));
        let includes = self.parse_file(file);
        for (k, pattern) in includes {
            self.include(file, k, &pattern);
        }
        self.stack.pop();
    }

    /// Parses, checks and deserializes one file; returns its `include:` entries.
    fn parse_file(&mut self, file: usize) -> Vec<(usize, String)> {
        let mut root: Value = match serde_yaml::from_str(&self.sources[file].text) {
            Ok(v) => v,
            Err(e) => {
                let pos = e.location().map(|l| Pos { line: l.line(), column: l.column() }).unwrap_or(Pos::START);
                static AT: LazyLock<Regex> = LazyLock::new(|| Regex::new(r" at line \d+ column \d+").expect("regex"));
                let msg = AT.replace(&e.to_string(), "").into_owned();
                let d = Diagnostic::new(Some(self.loc(file, pos)), format!("YAML syntax error: {msg}"))
                    .hint("check the indentation and quoting around this point");
                self.diags.push(d);
                self.incomplete = true;
                return Vec::new();
            }
        };
        self.sources[file].index = LocationIndex::build(&self.sources[file].text);
        match untag(&root) {
            Value::Mapping(_) => {}
            Value::Null => {
                let d = Diagnostic::new(Some(self.loc(file, Pos::START)), "the playbook file is empty").hint("a playbook starts with `version: 1`");
                self.diags.push(d);
                return Vec::new();
            }
            _ => {
                self.error(file, &YamlPath::root(), "a playbook file is a mapping (`version:`, `providers:`, `credentials:`)", None);
                self.incomplete = true;
                return Vec::new();
            }
        }
        self.check_strings(file, &YamlPath::root(), &mut root, None);
        self.take_allow_link_local(file, &mut root);
        self.deserialize_file(file, &root);
        // Includes are read from the value itself, so a mistake elsewhere at
        // the top level does not hide the included files.
        match untag(&root).get("include").map(untag) {
            Some(Value::Sequence(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(k, v)| match untag(v) {
                    Value::String(s) => Some((k, s.clone())),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Walks every string: refuses inline secrets, checks secret references,
    /// interpolates `${env:VAR}`.
    fn check_strings(&mut self, file: usize, path: &YamlPath, v: &mut Value, key: Option<&str>) {
        match v {
            Value::String(s) => self.check_string(file, path, s, key),
            Value::Sequence(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.check_strings(file, &path.index(i), item, None);
                }
            }
            Value::Mapping(m) => {
                for (k, item) in m.iter_mut() {
                    let ks = key_string(k);
                    self.check_strings(file, &path.key(ks.clone()), item, Some(&ks));
                }
            }
            Value::Tagged(t) => self.check_strings(file, path, &mut t.value, key),
            _ => {}
        }
    }

    fn check_string(&mut self, file: usize, path: &YamlPath, s: &mut String, key: Option<&str>) {
        let is_secret_ref = key.is_some_and(kind::is_secret_key);
        // A public id shaped like a secret (an IAM access key id: AWS calls it
        // "not secret") names a key; a target lists it, and so may a
        // discovery ignore rule.
        let key_id_field = key.is_some_and(kind::is_public_id_key) || (key == Some("id") && path.to_string().starts_with("discovery.ignore["));
        let free_text = free_text_field(path).map(str::to_string);
        let shape = if free_text.is_some() { looks_like_secret_in_text(s) } else { looks_like_secret(s) };
        if let Some(what) = shape.filter(|w| !(key_id_field && *w == "an AWS access key id")) {
            self.error(file, path, format!("this looks like {what} written inline"), Some(INLINE_HINT.into()));
            // Never echo it in a later message.
            *s = if is_secret_ref { "${env:REDACTED}".into() } else { "<redacted>".into() };
            return;
        }
        if is_secret_ref {
            let key = key.unwrap_or_default();
            match SecretRef::parse(s) {
                Ok(SecretRef::Env(var)) => {
                    if (self.env)(&var).is_none() {
                        let d = InterpError::Missing(var).diagnostic(self.at(file, path));
                        self.sources[file].reported.insert(path.to_string());
                        self.diags.push(d);
                    }
                }
                // Checked when providers connect: the store provider must be declared and able to store.
                Ok(SecretRef::Store { .. }) => {}
                Err(m) => {
                    let msg = if s.trim().starts_with("${") { format!("`{key}`: {m}") } else { format!("`{key}` holds a secret written inline") };
                    self.error(file, path, msg, Some(INLINE_HINT.into()));
                    *s = "${env:REDACTED}".into();
                }
            }
            return;
        }
        if !s.contains('$') {
            return;
        }
        if let Some(field) = free_text {
            match unescape_free_text(s) {
                Ok(out) => *s = out,
                Err(()) => self.error(
                    file,
                    path,
                    format!("`${{...}}` is not expanded in `{field}`: it is free text, printed as written in plans and reports"),
                    Some("write the text itself; ${env:NAME} is read only where keysweep uses the value (addresses, paths, accessors, logins); $${ writes a literal ${".into()),
                ),
            }
            return;
        }
        match interpolate(s, self.env) {
            Ok(out) => *s = out,
            Err(errors) => {
                let at = self.at(file, path);
                self.sources[file].reported.insert(path.to_string());
                for e in errors {
                    self.diags.push(e.diagnostic(at.clone()));
                }
            }
        }
    }

    /// Takes `allow_link_local` out of each provider before it deserializes
    /// (it is the loader's to judge addresses with, not the adapter's).
    fn take_allow_link_local(&mut self, file: usize, root: &mut Value) {
        let Some(Value::Mapping(providers)) = root.as_mapping_mut().and_then(|m| m.get_mut("providers")) else { return };
        let mut found = Vec::new();
        for (k, v) in providers.iter_mut() {
            let name = key_string(k);
            if let Some(m) = v.as_mapping_mut() {
                if let Some(flag) = m.remove("allow_link_local") {
                    found.push((name, flag));
                }
            }
        }
        for (name, flag) in found {
            match untag(&flag) {
                Value::Bool(b) => {
                    self.allow_link_local.insert(name, *b);
                }
                _ => self.error(
                    file,
                    &YamlPath::root().key("providers").key(name).key("allow_link_local"),
                    "`allow_link_local` is true or false",
                    Some("write true or false, without quotes".into()),
                ),
            }
        }
    }

    /// The adapter's own rules for one provider (addresses, prefixes).
    fn check_provider(&mut self, file: usize, path: &YamlPath, name: &str, config: &ProviderConfig) {
        let allow = self.allow_link_local.get(name).copied().unwrap_or(false);
        let problems = config.spec().check(allow);
        self.report_problems(file, path, problems);
    }

    /// Problems an adapter found, each at its path below `base`.
    fn report_problems(&mut self, file: usize, base: &YamlPath, problems: Vec<Problem>) {
        for p in problems {
            let at = p.at.iter().fold(base.clone(), |at, k| at.key(k.clone()));
            self.error(file, &at, p.message, p.hint);
        }
    }

    /// A duration within bounds: not zero unless `zero_ok`, at most `max`.
    fn check_duration(&mut self, file: usize, path: &YamlPath, d: Option<Duration>, zero_ok: bool, max: Duration) {
        let field = path.last_key().unwrap_or("duration").to_string();
        if let Some((msg, hint)) = duration_problem(&field, d, zero_ok, max) {
            self.error(file, path, msg, Some(hint));
        }
    }

    // -- deserializing --------------------------------------------------------

    /// Deserializes the node at `path` of `root` as a `T`, reporting a failure.
    fn de<T: DeserializeOwned>(&mut self, file: usize, root: &Value, path: &YamlPath) -> Option<T> {
        let v = value_at(root, path).unwrap_or(&Value::Null);
        match serde_path_to_error::deserialize::<_, T>(v) {
            Ok(t) => Some(t),
            Err(e) => {
                let at = join_serde_path(path, e.path());
                let msg = e.inner().to_string();
                self.serde_error(file, root, at, msg);
                None
            }
        }
    }

    /// Reports a deserialization error, pointing as close to its cause as possible.
    fn serde_error(&mut self, file: usize, root: &Value, path: YamlPath, msg: String) {
        let (path, is_key) = refine(root, path, &msg);
        if self.sources[file].reported.contains(&path.to_string()) {
            return; // already reported (a missing variable, an inline secret...)
        }
        let hint = serde_hint(&msg, path.last_key());
        let at = if is_key { self.at_key(file, &path) } else { self.at(file, &path) };
        let mut d = Diagnostic::new(Some(at), msg);
        d.hint = hint;
        self.sources[file].reported.insert(path.to_string());
        self.diags.push(d);
    }

    fn deserialize_file(&mut self, file: usize, root: &Value) {
        let top = YamlPath::root();
        let Some(map) = untag(root).as_mapping() else { return };
        let mut data = FileData { defaults_ok: true, ..FileData::default() };

        // The top level without the parts deserialized one by one below.
        let mut skeleton = map.clone();
        for k in ["providers", "credentials", "defaults"] {
            skeleton.remove(k);
        }
        match serde_path_to_error::deserialize::<_, PlaybookFile>(&Value::Mapping(skeleton)) {
            Ok(pf) => {
                data.version = Some(pf.version);
                data.discovery = pf.discovery;
            }
            Err(e) => {
                let at = join_serde_path(&top, e.path());
                self.serde_error(file, root, at, e.inner().to_string());
            }
        }

        let defaults_path = top.key("defaults");
        if map.contains_key("defaults") {
            match self.de::<Option<Defaults>>(file, root, &defaults_path) {
                Some(d) => data.defaults = d.unwrap_or_default(),
                None => data.defaults_ok = false,
            }
        }

        let providers_path = top.key("providers");
        match map.get("providers").map(untag) {
            None | Some(Value::Null) => {}
            Some(Value::Mapping(m)) if m.keys().all(|k| matches!(untag(k), Value::String(_))) => {
                for (k, _) in m {
                    let name = key_string(k);
                    let p = providers_path.key(name.clone());
                    match self.de_provider(file, root, &p) {
                        Some(cfg) => data.providers.push((name, cfg)),
                        None => {
                            self.broken_providers.insert(name);
                        }
                    }
                }
            }
            Some(_) => {
                // Not a mapping of names: let serde say what is wrong.
                self.de::<BTreeMap<String, ProviderConfig>>(file, root, &providers_path);
            }
        }

        let credentials_path = top.key("credentials");
        match map.get("credentials").map(untag) {
            None | Some(Value::Null) => {}
            Some(Value::Sequence(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let p = credentials_path.index(i);
                    let id = untag(item).get("id").and_then(scalar_text);
                    if let Some(id) = &id {
                        self.ids.push((id.clone(), file, p.clone()));
                    }
                    match self.de_credential(file, root, &p) {
                        Some(spec) => data.credentials.push((i, spec)),
                        None => self.broken_ids.extend(id),
                    }
                }
            }
            Some(_) => {
                self.de::<Vec<CredentialSpec>>(file, root, &credentials_path);
            }
        }
        self.sources[file].data = data;
    }

    /// Deserializes a provider. serde loses the path inside an internally tagged
    /// enum, so on failure the variant's own struct is tried for a precise one.
    fn de_provider(&mut self, file: usize, root: &Value, path: &YamlPath) -> Option<ProviderConfig> {
        let v = value_at(root, path).unwrap_or(&Value::Null);
        match serde_path_to_error::deserialize::<_, ProviderConfig>(v) {
            Ok(cfg) => Some(cfg),
            Err(e) => {
                let precise = tag_of(v, "kind").and_then(|k| inner_error(v, "kind", |u| crate::providers::provider_error(&k, u)));
                let (sub, msg) = precise.unwrap_or_else(|| (join_serde_path(path, e.path()), e.inner().to_string()));
                let sub = if sub.0.starts_with(&path.0) { sub } else { concat(path, &sub) };
                self.serde_error(file, root, sub, msg);
                None
            }
        }
    }

    /// Deserializes a credential, with a precise path for errors inside `target:`.
    fn de_credential(&mut self, file: usize, root: &Value, path: &YamlPath) -> Option<CredentialSpec> {
        let v = value_at(root, path).unwrap_or(&Value::Null);
        match serde_path_to_error::deserialize::<_, CredentialSpec>(v) {
            Ok(spec) => Some(spec),
            Err(e) => {
                let mut at = join_serde_path(path, e.path());
                let mut msg = e.inner().to_string();
                let target_path = path.key("target");
                if at == target_path {
                    let t = value_at(root, &target_path).unwrap_or(&Value::Null);
                    let precise = tag_of(t, "kind").and_then(|k| inner_error(t, "kind", |u| crate::providers::target_error(&k, u)));
                    if let Some((sub, m)) = precise {
                        at = concat(&target_path, &sub);
                        msg = m;
                    }
                }
                self.serde_error(file, root, at, msg);
                None
            }
        }
    }

    // -- includes -------------------------------------------------------------

    fn include(&mut self, file: usize, k: usize, pattern: &str) {
        let site = YamlPath::root().key("include").index(k);
        let folder = folder_of(&self.sources[file].path);
        if pattern.trim().is_empty() {
            self.error(file, &site, "empty include path", Some("write a path or glob relative to this file".into()));
            return;
        }
        let joined = normalize(&folder.join(pattern));
        if !is_glob(pattern) {
            self.load_file(joined, Some((file, site)));
            return;
        }
        let (matches, unreadable) = match expand_glob(&joined) {
            Ok(m) => m,
            Err(e) => {
                let (msg, hint) = match e {
                    GlobError::Invalid(m) => (format!("`{pattern}` is not a valid glob: {m}"), "globs use `*`, `?`, `[abc]` and `**`".to_string()),
                    GlobError::RootedAtRoot => (
                        format!("include `{pattern}` would search the whole file system from `/`"),
                        "name the folder that holds the playbook files, e.g. `teams/*.yaml` or `/etc/keysweep/teams/*.yaml`".to_string(),
                    ),
                    GlobError::TooManyMatches => (
                        format!("include `{pattern}` matches more than {MAX_FILES} files"),
                        "narrow the glob to the folder of playbook files".to_string(),
                    ),
                    GlobError::TooManyVisits => (
                        format!("include `{pattern}` looks at more than {MAX_GLOB_VISITS} folder entries"),
                        format!("narrow the glob; `**` descends at most {MAX_GLOB_DEPTH} folders"),
                    ),
                };
                self.error(file, &site, msg, Some(hint));
                self.incomplete = true;
                return;
            }
        };
        for dir in unreadable {
            self.error(file, &site, format!("cannot read `{}` while expanding `{pattern}`", dir.display()), None);
        }
        let me = self.sources[file].canonical.clone();
        let mut found = Vec::new();
        for p in matches {
            // A glob such as `*.yaml` next to the including file matches it too.
            if std::fs::canonicalize(&p).is_ok_and(|c| c == me) {
                continue;
            }
            found.push(normalize(&p));
        }
        if found.is_empty() {
            self.error(
                file,
                &site,
                format!("include `{pattern}` matches no file"),
                Some(format!("the glob is relative to this file's folder (`{}`)", folder.display())),
            );
            return;
        }
        found.sort();
        for p in found {
            self.load_file(p, Some((file, site.clone())));
        }
    }

    // -- validation and resolution ---------------------------------------------

    fn resolve(&mut self, root_path: &Path) -> Playbook {
        let files: Vec<PathBuf> = self.sources.iter().map(|s| s.path.clone()).collect();
        let fingerprint = self.fingerprint();
        let all_data: Vec<FileData> = self.sources.iter_mut().map(|s| std::mem::take(&mut s.data)).collect();

        // Versions.
        for (file, data) in all_data.iter().enumerate() {
            if let Some(v) = data.version.filter(|v| *v != VERSION) {
                self.error(
                    file,
                    &YamlPath::root().key("version"),
                    format!("playbook version {v} is not supported; this release reads version {VERSION}"),
                    Some(format!("set `version: {VERSION}`, or use the keysweep release this playbook was written for")),
                );
            }
        }

        // Providers, merged across files.
        let mut providers: BTreeMap<String, ProviderEntry> = BTreeMap::new();
        for (file, data) in all_data.iter().enumerate() {
            for (name, config) in &data.providers {
                let path = YamlPath::root().key("providers").key(name.clone());
                let location = self.at_key(file, &path);
                if let Some(first) = providers.get(name) {
                    let msg = format!("provider `{name}` is declared twice; first at {}", first.location);
                    let d = Diagnostic::new(Some(location), msg).hint("rename one of them or remove the duplicate");
                    self.diags.push(d);
                    continue;
                }
                self.check_limits(file, &path, config);
                self.check_provider(file, &path, name, config);
                providers.insert(name.clone(), ProviderEntry { name: name.clone(), config: config.clone(), location });
            }
        }

        // Where stores without check-and-set keep their claims: a store that keeps its own.
        for (file, data) in all_data.iter().enumerate() {
            for (name, config) in &data.providers {
                let Some(ci) = config.spec().claims_in() else { continue };
                let path = YamlPath::root().key("providers").key(name.clone()).key("claims_in");
                match providers.get(&ci.provider).map(|e| e.config.kind()) {
                    None => self.unknown_provider(file, &path.key("provider"), &ci.provider, &providers),
                    Some(k) if kind::store_kind(k).is_some_and(|s| s.holds_claims) => {
                        if let Some(m) = store_path_problem("mount", &ci.mount) {
                            self.error(file, &path.key("mount"), m, Some("write the store mount's name, e.g. `secret`".into()));
                        }
                    }
                    Some(k) => {
                        let holders: Vec<&str> = kind::store_kinds().into_iter().filter(|(_, s)| s.holds_claims).map(|(k, _)| k).collect();
                        self.error(
                            file,
                            &path.key("provider"),
                            format!("`claims_in` names `{}`, a `{k}` provider, which cannot keep claims", ci.provider),
                            Some(format!("claims need a store with check-and-set: name a provider of kind {}", list(&holders))),
                        )
                    }
                }
            }
        }

        // Defaults, checked once where they are written.
        for (file, data) in all_data.iter().enumerate() {
            let path = YamlPath::root().key("defaults");
            if let Some(v) = &data.defaults.verify {
                self.check_attempts(file, &path.key("verify").key("attempts"), v.attempts);
                self.check_duration(file, &path.key("verify").key("interval"), v.interval.map(|h| h.0), true, MAX_SHORT_DURATION);
            }
            let d = &data.defaults;
            self.check_duration(file, &path.key("max_age"), d.max_age.map(|h| h.0), false, MAX_LONG_DURATION);
            self.check_duration(file, &path.key("grace_period"), d.grace_period.map(|h| h.0), true, MAX_GRACE_PERIOD);
            self.check_duration(file, &path.key("inactive_after"), d.inactive_after.map(|h| h.0).filter(|d| !d.is_zero()), false, MAX_LONG_DURATION);
            if let Some(ds) = &data.defaults.deliver_to {
                for (j, d) in ds.iter().enumerate() {
                    self.check_delivery(file, &path.key("deliver_to").index(j), d, &providers);
                }
            }
        }

        let discovery = self.resolve_discovery(&all_data, &providers);

        // Credentials.
        let mut credentials: Vec<Credential> = Vec::new();
        // Per credential: file and item path, and the path of each delivery (None when not written there).
        let mut origins: Vec<(usize, YamlPath, Vec<Option<YamlPath>>)> = Vec::new();
        let mut first_by_id: HashMap<String, usize> = HashMap::new();
        for (file, data) in all_data.iter().enumerate() {
            for (i, spec) in &data.credentials {
                let base = YamlPath::root().key("credentials").index(*i);
                let (cred, delivery_paths) = self.resolve_credential(file, &base, spec, data, &providers, &discovery);
                if let Some(problem) = id_problem(&spec.id) {
                    self.error(file, &base.key("id"), problem, Some("use letters, digits and `._/-`".into()));
                }
                first_by_id.entry(spec.id.clone()).or_insert(credentials.len());
                credentials.push(cred);
                origins.push((file, base, delivery_paths));
            }
        }

        self.check_duplicate_ids();
        self.check_dependencies(&credentials, &origins, &first_by_id);
        self.check_store_collisions(&credentials, &origins);

        Playbook { root: root_path.to_path_buf(), files, fingerprint, providers, credentials, discovery }
    }

    /// `discovery:` merged across files: ignore rules add up; `inactive_after`
    /// may be set in one file only.
    fn resolve_discovery(&mut self, all_data: &[FileData], providers: &BTreeMap<String, ProviderEntry>) -> Discovery {
        let mut out = Discovery::default();
        let mut set_at: Option<Location> = None;
        for (file, data) in all_data.iter().enumerate() {
            let Some(d) = &data.discovery else { continue };
            let path = YamlPath::root().key("discovery");
            if let Some(ia) = d.inactive_after {
                let here = self.at(file, &path.key("inactive_after"));
                if let Some(first) = &set_at {
                    self.error(
                        file,
                        &path.key("inactive_after"),
                        format!("`discovery.inactive_after` is set twice; first at {first}"),
                        Some("set it once, in the root playbook".into()),
                    );
                } else if ia.0.is_zero() {
                    self.error(file, &path.key("inactive_after"), "`inactive_after` must be longer than 0s", Some("write e.g. `90d`".into()));
                } else if ia.0 > MAX_LONG_DURATION {
                    self.check_duration(file, &path.key("inactive_after"), Some(ia.0), false, MAX_LONG_DURATION);
                } else {
                    out.inactive_after = ia.0;
                    set_at = Some(here);
                }
            }
            for (i, rule) in d.ignore.iter().enumerate() {
                let rp = path.key("ignore").index(i);
                match providers.get(&rule.provider) {
                    None => self.unknown_provider(file, &rp.key("provider"), &rule.provider, providers),
                    Some(p) => {
                        if let Some(kind) = &rule.kind {
                            let owned = kind::kinds_of(p.config.kind());
                            if !owned.contains(&kind.as_str()) {
                                self.error(
                                    file,
                                    &rp.key("kind"),
                                    format!("a `{}` provider holds no `{kind}` items", p.config.kind()),
                                    Some(format!("use one of: {}, or leave `kind` out", list(&owned))),
                                );
                            }
                        }
                    }
                }
                if rule.id.trim().is_empty() {
                    self.error(file, &rp.key("id"), "ignore `id` is empty", Some("write the id `keysweep discover` shows, or a `*` pattern".into()));
                }
                if rule.reason.trim().is_empty() {
                    self.error(file, &rp.key("reason"), "ignore `reason` is empty", Some("say why this playbook does not manage it".into()));
                }
            }
            out.ignore.extend(d.ignore.iter().cloned());
        }
        out
    }

    fn fingerprint(&self) -> String {
        let root_dir = self.sources.first().map(|s| folder_of(&s.canonical)).unwrap_or_default();
        let mut h = Sha256::new();
        for s in &self.sources {
            // Relative to the root file's folder, so the same playbook has the
            // same fingerprint whatever the working directory.
            let rel = s.canonical.strip_prefix(&root_dir).unwrap_or(&s.canonical);
            let rel = rel.to_string_lossy();
            h.update((rel.len() as u64).to_le_bytes());
            h.update(rel.as_bytes());
            h.update((s.text.len() as u64).to_le_bytes());
            h.update(s.text.as_bytes());
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    fn check_limits(&mut self, file: usize, path: &YamlPath, config: &ProviderConfig) {
        let limits = config.limits();
        let lp = path.key("limits");
        let at_least_one = [
            ("concurrency", limits.concurrency.map(|v| v as u64)),
            ("rate_per_second", limits.rate_per_second.map(u64::from)),
            ("burst", limits.burst.map(u64::from)),
            ("max_attempts", limits.max_attempts.map(u64::from)),
        ];
        for (field, value) in at_least_one {
            if value == Some(0) {
                self.error(file, &lp.key(field), format!("`{field}` must be at least 1"), Some(format!("remove `{field}` to use the default")));
            }
        }
        self.check_duration(file, &lp.key("timeout"), limits.timeout.map(|t| t.0), false, MAX_SHORT_DURATION);
        match (limits.burst, limits.rate_per_second) {
            (Some(b), Some(r)) if b > r => self.error(
                file,
                &lp.key("burst"),
                format!("`burst` is {b}, above `rate_per_second` {r}: the rate would be exceeded within a second"),
                Some(format!("a burst is at most the rate: write `burst: {r}` or less, or remove it")),
            ),
            (Some(_), None) => self.error(
                file,
                &lp.key("burst"),
                "`burst` without `rate_per_second` limits nothing",
                Some("add `rate_per_second:` or remove `burst:`".into()),
            ),
            _ => {}
        }
        if let Some(n) = limits.max_attempts.filter(|n| *n > 100) {
            self.error(file, &lp.key("max_attempts"), format!("`max_attempts` is {n}; it must be within 1..=100"), Some("the default is 5".into()));
        }
    }

    /// A target's `generate` policy must be able to produce a secret.
    fn check_generate(&mut self, file: usize, base: &YamlPath, g: &crate::secret::GeneratePolicy) {
        if let Err(m) = g.check() {
            let field = if m.starts_with("length") { "length" } else { "exclude" };
            self.error(
                file,
                &base.key("target").key("generate").key(field),
                format!("generate policy cannot be used: {m}"),
                Some("use a `length` within 16..=1024 and leave at least 10 characters after `exclude`".into()),
            );
        }
    }

    fn check_attempts(&mut self, file: usize, path: &YamlPath, attempts: Option<u32>) {
        if let Some(a) = attempts.filter(|a| !(1..=100).contains(a)) {
            self.error(file, path, format!("verify `attempts` is {a}; it must be within 1..=100"), Some("the default is 5".into()));
        }
    }

    /// Checks one delivery as written at `path`.
    fn check_delivery(&mut self, file: usize, path: &YamlPath, d: &Delivery, providers: &BTreeMap<String, ProviderEntry>) {
        match providers.get(&d.provider) {
            Some(p) => match kind::store_kind(p.config.kind()) {
                Some(store) => self.report_problems(file, path, (store.check_delivery)(d)),
                None => {
                    let stores: Vec<&str> = kind::store_kinds().iter().map(|(_, s)| s.described).collect();
                    self.error(
                        file,
                        &path.key("provider"),
                        format!("`{}` is a `{}` provider, which cannot store secrets", d.provider, p.config.kind()),
                        Some(format!("deliver to {}", stores.join(" or "))),
                    );
                }
            },
            None => self.unknown_provider(file, &path.key("provider"), &d.provider, providers),
        }
        if d.path.trim().is_empty() {
            self.error(file, &path.key("path"), "delivery `path` is empty", Some("write e.g. `apps/{id}`".into()));
        }
        // A path whose interpolation failed was reported already.
        let interpolation_failed = self.sources[file].reported.contains(&path.key("path").to_string());
        for ph in unknown_placeholders(&d.path).into_iter().filter(|_| !interpolation_failed) {
            self.error(
                file,
                &path.key("path"),
                format!("unknown placeholder `{ph}` in delivery path"),
                Some("only `{id}` (the credential id) is expanded".into()),
            );
        }
    }

    fn unknown_provider(&mut self, file: usize, path: &YamlPath, name: &str, providers: &BTreeMap<String, ProviderEntry>) {
        if self.incomplete || self.broken_providers.contains(name) {
            return; // declared somewhere we could not read: not this entry's fault
        }
        let names: Vec<&str> = providers.keys().map(String::as_str).collect();
        let hint = if names.is_empty() {
            "no providers are declared; add one under `providers:`".to_string()
        } else {
            match closest(name, names.iter().copied()) {
                Some(c) => format!("did you mean `{c}`? declared providers: {}", list(&names)),
                None => format!("declared providers: {}", list(&names)),
            }
        };
        self.error(file, path, format!("unknown provider `{name}`"), Some(hint));
    }

    /// Validates one credential and resolves it with its file's defaults.
    /// Returns it with, per delivery, the path it was written at (if in the credential).
    fn resolve_credential(
        &mut self,
        file: usize,
        base: &YamlPath,
        spec: &CredentialSpec,
        data: &FileData,
        providers: &BTreeMap<String, ProviderEntry>,
        discovery: &Discovery,
    ) -> (Credential, Vec<Option<YamlPath>>) {
        let defaults = &data.defaults;
        let kind = spec.target.kind();

        // The provider that owns it.
        match providers.get(&spec.provider) {
            None => self.unknown_provider(file, &base.key("provider"), &spec.provider, providers),
            Some(p) => match kind::kind_info(kind).map(|k| k.provider) {
                Some(owner) if owner != p.config.kind() => {
                    let owners: Vec<&str> = providers.values().filter(|e| e.config.kind() == owner).map(|e| e.name.as_str()).collect();
                    let hint = if owners.is_empty() {
                        format!("declare a `{owner}` provider and name it in `provider:`")
                    } else {
                        format!("`{owner}` providers: {}", list(&owners))
                    };
                    self.error(
                        file,
                        &base.key("target").key("kind"),
                        format!(
                            "`{kind}` credentials are owned by a `{owner}` provider, but `{}` is a `{}` provider",
                            spec.provider,
                            p.config.kind()
                        ),
                        Some(hint),
                    );
                }
                Some(_) => {}
                None => self.error(file, &base.key("target").key("kind"), format!("no provider kind is known to own `{kind}`"), None),
            },
        }

        // What to do with it, and whether the kind can.
        let action = spec.action.or(defaults.action).unwrap_or(Action::Rotate);
        let action_path = if spec.action.is_some() { base.key("action") } else { base.clone() };
        let caps = capabilities(kind);
        match caps {
            None => self.error(file, &base.key("target").key("kind"), format!("no capabilities are known for `{kind}`"), None),
            Some(c) if data.defaults_ok || spec.action.is_some() => {
                let (possible, other) = match action {
                    Action::Rotate => (c.rotate, "revoke"),
                    Action::Revoke => (c.revoke, "rotate"),
                };
                if !possible {
                    self.error(file, &action_path, format!("`{}` is not possible for kind {kind}; use action: {other}", action.as_str()), None);
                }
            }
            Some(_) => {}
        }

        // Where new values go.
        let mut delivery_paths = Vec::new();
        let deliveries: Vec<Delivery> = match (&spec.deliver_to, &spec.target) {
            (Some(ds), _) => {
                for (j, d) in ds.iter().enumerate() {
                    let p = base.key("deliver_to").index(j);
                    self.check_delivery(file, &p, d, providers);
                    delivery_paths.push(Some(p));
                }
                ds.clone()
            }
            // A secret that is itself a store entry: by default the new value goes there.
            (None, t) if t.spec().own_entry(&spec.provider).is_some() => {
                delivery_paths.push(Some(base.key("target")));
                t.spec().own_entry(&spec.provider).into_iter().collect()
            }
            (None, _) => {
                let ds = defaults.deliver_to.clone().unwrap_or_default();
                delivery_paths.extend(ds.iter().map(|_| None));
                ds
            }
        };
        let needs_store = caps.is_some_and(|c| c.needs_store);
        let defaults_known = data.defaults_ok || spec.deliver_to.is_some();
        if action == Action::Rotate && needs_store && deliveries.is_empty() && defaults_known {
            let path = if spec.deliver_to.is_some() { base.key("deliver_to") } else { base.clone() };
            self.error(
                file,
                &path,
                format!("`{}` is rotated but its new value is delivered nowhere (`{kind}` needs a store)", spec.id),
                Some("add deliver_to: [{ provider: <vault provider>, path: \"apps/{id}\" }] here or under `defaults:`, or use action: revoke".into()),
            );
        }

        // The kind's own rules.
        if let Some(g) = spec.target.generate_policy() {
            self.check_generate(file, base, g);
        }
        let problems = spec.target.spec().check(&CheckCx { id: &spec.id, action });
        self.report_problems(file, &base.key("target"), problems);

        // Verification, field by field over the defaults.
        let cv = spec.verify.clone().unwrap_or_else(empty_verify);
        let dv = defaults.verify.clone().unwrap_or_else(empty_verify);
        self.check_attempts(file, &base.key("verify").key("attempts"), cv.attempts);
        self.check_duration(file, &base.key("verify").key("interval"), cv.interval.map(|h| h.0), true, MAX_SHORT_DURATION);
        self.check_duration(file, &base.key("max_age"), spec.max_age.map(|h| h.0), false, MAX_LONG_DURATION);
        self.check_duration(file, &base.key("grace_period"), spec.grace_period.map(|h| h.0), true, MAX_GRACE_PERIOD);
        self.check_duration(file, &base.key("inactive_after"), spec.inactive_after.map(|h| h.0).filter(|d| !d.is_zero()), false, MAX_LONG_DURATION);
        let fallback = Verify::default();
        let verify = Verify {
            attempts: cv.attempts.or(dv.attempts).unwrap_or(fallback.attempts),
            interval: cv.interval.or(dv.interval).map(|h| h.0).unwrap_or(fallback.interval),
            probe_old: cv.probe_old.or(dv.probe_old).unwrap_or(fallback.probe_old),
        };

        let mut tags = defaults.tags.clone();
        for t in &spec.tags {
            if !tags.contains(t) {
                tags.push(t.clone());
            }
        }
        let duration =
            |own: Option<super::model::HumanDuration>, def: Option<super::model::HumanDuration>| -> Option<Duration> { own.or(def).map(|h| h.0) };

        // Inactivity and what a hygiene run does about it.
        let inactive_after = duration(spec.inactive_after, defaults.inactive_after).unwrap_or(discovery.inactive_after);
        if inactive_after.is_zero() {
            let at = if spec.inactive_after.is_some() { base.key("inactive_after") } else { YamlPath::root().key("defaults").key("inactive_after") };
            self.error(file, &at, "`inactive_after` must be longer than 0s", Some("write e.g. `90d`".into()));
        }
        let revoke_inactive = spec.revoke_inactive.or(defaults.revoke_inactive).unwrap_or(false);
        if spec.revoke_inactive == Some(true) && caps.is_some_and(|c| !c.revoke) {
            self.error(
                file,
                &base.key("revoke_inactive"),
                format!("`revoke_inactive` needs a kind that can be revoked, and `{kind}` cannot"),
                Some("remove `revoke_inactive`; `discover` still reports it when inactive".into()),
            );
        }

        // An owner left as the `discover --emit` marker.
        let owner = spec.owner.clone().or_else(|| defaults.owner.clone());
        if owner.as_deref().is_some_and(|o| o.trim_start().starts_with(crate::playbook::OWNER_MARKER)) {
            let at = if spec.owner.is_some() { base.key("owner") } else { YamlPath::root().key("defaults").key("owner") };
            self.error(
                file,
                &at,
                format!("the owner of `{}` is still the `{}` marker of a drafted entry", spec.id, crate::playbook::OWNER_MARKER),
                Some("write the person or team answerable for this credential".into()),
            );
        }

        let cred = Credential {
            id: spec.id.clone(),
            owner,
            provider: spec.provider.clone(),
            action,
            target: spec.target.clone(),
            deliver_to: deliveries.iter().map(|d| StoreLocation::from_delivery(d, &spec.id)).collect(),
            verify,
            tags,
            max_age: duration(spec.max_age, defaults.max_age),
            grace_period: duration(spec.grace_period, defaults.grace_period).or_else(|| {
                // An alternating pair retires the account consumers may have
                // just read from the store: give them time to log in with it.
                let pair = spec.target.spec().alternating();
                (pair && action == Action::Rotate).then_some(super::DEFAULT_ALTERNATING_GRACE)
            }),
            depends_on: spec.depends_on.clone(),
            description: spec.description.clone(),
            inactive_after,
            revoke_inactive,
            location: self.at(file, base),
        };
        (cred, delivery_paths)
    }

    /// Ids are unique across all files; credentials that did not deserialize count too.
    fn check_duplicate_ids(&mut self) {
        let mut first: HashMap<String, Location> = HashMap::new();
        for (id, file, base) in std::mem::take(&mut self.ids) {
            match first.get(&id) {
                Some(at) => {
                    let msg = format!("duplicate credential id `{id}`; first defined at {at}");
                    self.error(file, &base.key("id"), msg, Some("credential ids are unique across all included files".into()));
                }
                None => {
                    first.insert(id, self.at(file, &base));
                }
            }
        }
    }

    fn check_dependencies(
        &mut self,
        creds: &[Credential],
        origins: &[(usize, YamlPath, Vec<Option<YamlPath>>)],
        first_by_id: &HashMap<String, usize>,
    ) {
        // Edges to known credentials; unknown ids are reported.
        let mut edges: Vec<Vec<(usize, usize)>> = vec![Vec::new(); creds.len()];
        for (n, c) in creds.iter().enumerate() {
            if first_by_id.get(&c.id) != Some(&n) {
                continue; // a duplicate, already reported
            }
            let (file, base, _) = &origins[n];
            for (j, dep) in c.depends_on.iter().enumerate() {
                match first_by_id.get(dep) {
                    Some(&m) => edges[n].push((m, j)),
                    None if self.incomplete || self.broken_ids.contains(dep) => {}
                    None => {
                        let hint = match closest(dep, first_by_id.keys().map(String::as_str)) {
                            Some(c) => format!("did you mean `{c}`?"),
                            None => "`depends_on` lists ids of credentials in this playbook or its includes".into(),
                        };
                        self.error(
                            *file,
                            &base.key("depends_on").index(j),
                            format!("`{}` depends on `{dep}`, which is not a credential id", c.id),
                            Some(hint),
                        );
                    }
                }
            }
        }

        // Cycles: every edge that closes one, found by depth-first search.
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            OnPath,
            Done,
        }
        let mut mark = vec![Mark::New; creds.len()];
        for start in 0..creds.len() {
            if mark[start] != Mark::New {
                continue;
            }
            // Iterative DFS: (node, next edge to follow).
            let mut path: Vec<(usize, usize)> = vec![(start, 0)];
            mark[start] = Mark::OnPath;
            while let Some(top) = path.last_mut() {
                let (node, next) = (top.0, top.1);
                let Some(&(to, j)) = edges[node].get(next) else {
                    mark[node] = Mark::Done;
                    path.pop();
                    continue;
                };
                top.1 += 1;
                match mark[to] {
                    Mark::New => {
                        mark[to] = Mark::OnPath;
                        path.push((to, 0));
                    }
                    Mark::OnPath => {
                        // `node` → `to` closes the cycle `to` → ... → `node`.
                        let from = path.iter().position(|(n, _)| *n == to).unwrap_or(0);
                        let mut chain = vec![creds[node].id.as_str()];
                        chain.extend(path[from..].iter().map(|(n, _)| creds[*n].id.as_str()));
                        let (file, base, _) = &origins[node];
                        self.error(
                            *file,
                            &base.key("depends_on").index(j),
                            format!("dependency cycle: {}", chain.join(" → ")),
                            Some("remove one of these `depends_on` entries".into()),
                        );
                    }
                    Mark::Done => {}
                }
            }
        }
    }

    fn check_store_collisions(&mut self, creds: &[Credential], origins: &[(usize, YamlPath, Vec<Option<YamlPath>>)]) {
        let mut seen: HashMap<&StoreLocation, usize> = HashMap::new();
        for (n, c) in creds.iter().enumerate() {
            let (file, base, paths) = &origins[n];
            for (j, loc) in c.deliver_to.iter().enumerate() {
                let at = paths.get(j).cloned().flatten().unwrap_or_else(|| base.clone());
                match seen.get(loc) {
                    Some(&m) if m == n => {
                        self.error(*file, &at, format!("`{}` is delivered to {loc} twice", c.id), Some("remove the repeated delivery".into()));
                    }
                    Some(&m) => {
                        self.error(
                            *file,
                            &at,
                            format!("`{}` is delivered to {loc}, where `{}` ({}) is delivered too", c.id, creds[m].id, creds[m].location),
                            Some("each credential needs its own store location; use `{id}` in the path".into()),
                        );
                    }
                    None => {
                        seen.insert(loc, n);
                    }
                }
            }
        }
    }
}

fn empty_verify() -> super::model::VerifyPolicy {
    super::model::VerifyPolicy { attempts: None, interval: None, probe_old: None }
}

fn folder_of(p: &Path) -> PathBuf {
    p.parent().map(Path::to_path_buf).unwrap_or_default()
}

fn concat(a: &YamlPath, b: &YamlPath) -> YamlPath {
    let mut v = a.0.clone();
    v.extend(b.0.iter().cloned());
    YamlPath(v)
}

fn join_serde_path(base: &YamlPath, p: &serde_path_to_error::Path) -> YamlPath {
    use serde_path_to_error::Segment;
    let mut out = base.clone();
    for seg in p.iter() {
        match seg {
            Segment::Seq { index } => out = out.index(*index),
            Segment::Map { key } => out = out.key(key.clone()),
            Segment::Enum { .. } => {}
            Segment::Unknown => break,
        }
    }
    out
}

/// The value of a tag field (`kind`, `method`) of a mapping.
fn tag_of(v: &Value, tag: &str) -> Option<String> {
    untag(v).get(tag).and_then(scalar_text)
}

/// The error of deserializing a tagged mapping without its tag as the
/// variant's own settings (`de`, given by the registry), to learn the precise
/// path of an error that serde reported at the enum.
fn inner_error(v: &Value, tag: &str, de: impl Fn(&Value) -> Option<(serde_path_to_error::Path, String)>) -> Option<(YamlPath, String)> {
    let mut m = untag(v).as_mapping()?.clone();
    m.remove(tag);
    de(&Value::Mapping(m)).map(|(p, msg)| (join_serde_path(&YamlPath::root(), &p), msg))
}

/// Moves an error's path from where serde stopped tracking to the node that
/// caused it; `true` when it names a key rather than a value.
fn refine(root: &Value, path: YamlPath, msg: &str) -> (YamlPath, bool) {
    if let Some(field) = quoted_after(msg, "unknown field `") {
        if path.last_key() == Some(field) {
            return (path, true);
        }
        let found = search(root, &path, &|_, _| false, &|k| k == field);
        return (found.unwrap_or(path), true);
    }
    if let Some(variant) = quoted_after(msg, "unknown variant `") {
        let is_variant = |_: &YamlPath, v: &Value| scalar_text(v).as_deref() == Some(variant);
        let tag_first = search(root, &path, &|p, v| is_variant(p, v) && matches!(p.last_key(), Some("kind" | "method")), &|_| false);
        let found = tag_first.or_else(|| search(root, &path, &is_variant, &|_| false));
        return (found.unwrap_or(path), false);
    }
    if msg.starts_with("missing field") {
        return (path, false);
    }
    let is_container = matches!(value_at(root, &path), Some(Value::Mapping(_) | Value::Sequence(_)));
    if is_container {
        for token in quoted_tokens(msg) {
            let found = search(root, &path, &|_, v| scalar_text(v).as_deref() == Some(token.as_str()), &|_| false);
            if let Some(p) = found {
                return (p, false);
            }
        }
    }
    (path, false)
}

/// A hint for a serde message: the likely intended field or variant, or how to
/// write the expected type.
fn serde_hint(msg: &str, key: Option<&str>) -> Option<String> {
    let wrong = quoted_after(msg, "unknown field `").or_else(|| quoted_after(msg, "unknown variant `"));
    if let Some(wrong) = wrong {
        let expected = msg.split_once(", expected").map(|(_, e)| quoted_tokens(e)).unwrap_or_default();
        return closest(wrong, expected.iter().map(String::as_str)).map(|c| format!("did you mean `{c}`?"));
    }
    if let Some(field) = quoted_after(msg, "missing field `") {
        return Some(format!("add `{field}:` here"));
    }
    let expected = msg.split_once("expected ").map(|(_, e)| e)?;
    let how = if ["u8", "u16", "u32", "u64", "usize", "i32", "i64"].iter().any(|t| expected.starts_with(t)) {
        "write a whole number, without quotes".to_string()
    } else if expected.starts_with("a boolean") {
        "write true or false, without quotes".to_string()
    } else if expected.starts_with("a sequence") {
        "write a list: `[a, b]`, or one `- item` per line".to_string()
    } else if expected.starts_with("a string") {
        "write text; quote it if it could be read as a number or boolean".to_string()
    } else if expected.starts_with("struct") || expected.starts_with("a map") {
        match key {
            Some(k) => {
                format!("`{k}` holds a mapping of settings (`name: value` lines indented below it)")
            }
            None => "write a mapping of settings (`name: value` lines)".to_string(),
        }
    } else {
        return None;
    };
    Some(how)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "A" => Some("alpha".into()),
            "B_2" => Some("beta".into()),
            _ => None,
        }
    }

    #[test]
    fn interpolates_several_references_and_escapes() {
        assert_eq!(interpolate("x ${env:A}/${env:B_2} y", &env).unwrap(), "x alpha/beta y");
        assert_eq!(interpolate("$${env:A} costs $5", &env).unwrap(), "${env:A} costs $5");
        assert_eq!(interpolate("plain", &env).unwrap(), "plain");
        assert_eq!(interpolate("${env:A}", &env).unwrap(), "alpha");
    }

    #[test]
    fn interpolation_reports_every_problem() {
        let errs = interpolate("${env:NOPE} ${env:1BAD} ${vault:x} ${env:A}", &env).unwrap_err();
        assert_eq!(errs, vec![InterpError::Missing("NOPE".into()), InterpError::BadName("1BAD".into()), InterpError::Unknown("vault:x".into()),]);
        assert_eq!(interpolate("${env:A", &env).unwrap_err(), vec![InterpError::Unterminated]);
    }

    #[test]
    fn recognises_pasted_secrets_only() {
        // Token shapes built at run time, so no credential-looking literal sits in the source.
        assert_eq!(looks_like_secret(&format!("hvs.{}", "CAESIJ3bZl0DpQ8xA7nTYkEXAMPLEtoken12")), Some("a Vault token"));
        assert_eq!(looks_like_secret(&format!("s.{}", "x".repeat(24))), Some("a Vault token"));
        let key_id = format!("AKIA{}", "ABCDEFGHIJKLMNOP");
        assert_eq!(looks_like_secret(&key_id), Some("an AWS access key id"));
        assert_eq!(looks_like_secret("ghp_abcdefghijklmnopqrstuvwxyz0123456789"), Some("a GitHub token"));
        assert_eq!(looks_like_secret("xoxb-1234-5678-abcdef"), Some("a Slack token"));
        assert!(looks_like_secret("-----BEGIN RSA PRIVATE KEY-----").is_some());
        for fine in ["apps/ci-token", "${env:VAULT_TOKEN}", "secrets.example.com", "rotate the ghp_ tokens", "AKIA"] {
            assert_eq!(looks_like_secret(fine), None, "{fine}");
        }
    }

    #[test]
    fn suggests_close_names() {
        assert_eq!(closest("ownr", ["id", "owner", "provider"]), Some("owner"));
        assert_eq!(closest("zzzzzz", ["id", "owner"]), None);
        let msg = "unknown variant `vault_tokn`, expected one of `vault_token`, `vault_kv_secret`";
        assert_eq!(serde_hint(msg, None).as_deref(), Some("did you mean `vault_token`?"));
    }

    #[test]
    fn ids_are_checked() {
        assert!(id_problem("ci/deploy-token.v2").is_none());
        assert!(id_problem("").is_some());
        assert!(id_problem("has space").is_some());
        assert!(id_problem("../escape").is_some());
        assert!(id_problem("/lead").is_some());
    }

    #[test]
    fn refine_finds_the_offending_node() {
        let root: Value = serde_yaml::from_str("a:\n  b: {kind: nope, x: 1}\n  c: [1, \"5x\"]\n").unwrap();
        let p = YamlPath::root().key("a");
        let (q, key) = refine(&root, p.clone(), "unknown field `x`, expected `y`");
        assert_eq!((q.to_string(), key), ("a.b.x".to_string(), true));
        let (q, _) = refine(&root, p.clone(), "unknown variant `nope`, expected `vault`");
        assert_eq!(q.to_string(), "a.b.kind");
        let (q, _) = refine(&root, p, "`5x` is not a duration");
        assert_eq!(q.to_string(), "a.c[1]");
    }

    const PROVIDER: &str =
        "version: 1\nproviders:\n  bao:\n    kind: vault\n    address: http://127.0.0.1:8200\n    auth: { method: token, token: \"${env:A}\" }\n";

    /// Loads `files` (name, text) from a temporary folder, the first as root.
    fn load_files(files: &[(&str, &str)]) -> Result<Playbook, String> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        load_with_env(&dir.path().join(files[0].0), &env).map_err(|d| d.to_string())
    }

    fn errors_of(files: &[(&str, &str)]) -> String {
        match load_files(files) {
            Ok(_) => panic!("loaded without error: {:?}", files[0]),
            Err(e) => e,
        }
    }

    #[test]
    fn edge_cases_point_at_the_cause() {
        let cases: &[(&str, &str, &str)] = &[
            ("", "p.yaml:1:1: error: the playbook file is empty", "1 error"),
            ("- a\n- b\n", "p.yaml:1:1: error: a playbook file is a mapping", "1 error"),
            (
                "version: 1\nproviders:\n  bao:\n    kind: vault\n    address: http://127.0.0.1:8200\n    auth: { method: token, tokn: x }\n",
                "p.yaml:6:28: error: unknown field `tokn`",
                "1 error",
            ),
            (
                "version: 1\nproviders:\n  bao:\n    kind: vault\n    address: http://127.0.0.1:8200\n    auth: { method: token, token: \"${env:A}\" }\n    limits: { concurrency: x }\n",
                "p.yaml:7:28: error: invalid type: string \"x\", expected usize",
                "1 error",
            ),
            (
                "version: 1\ncredentials:\n  - id: a\n    provider: bao\n    target: { path: p }\n",
                "p.yaml:5:13: error: missing field `kind`",
                "1 error",
            ),
            ("version: 1\ninclude: [nope.yaml]\n", "p.yaml:2:11: error: cannot read included file", "1 error"),
            ("version: 1\ncredentials: {}\n", "p.yaml:2:14: error: invalid type: map, expected a sequence", "1 error"),
            (
                "version: 1\nproviders:\n  bao:\n    kind: vault\n    address: http://127.0.0.1:8200\n    auth: { method: token, token: hvs.AAAAAAAAAAAAAAAAAAAAAAAA }\n",
                "p.yaml:6:35: error: this looks like a Vault token written inline",
                "1 error",
            ),
            (
                "version: 1\nproviders:\n  bao:\n    kind: vault\n    address: http://127.0.0.1:8200\n    auth: { method: token, token: \"${env:lower-case}\" }\n",
                "p.yaml:6:35: error: `token`: `lower-case` is not an environment variable name",
                "1 error",
            ),
            (
                "version: 1\ndefaults:\n  deliver_to: [{ provider: nope, path: \"a/{name}\" }]\n",
                "p.yaml:3:28: error: unknown provider `nope`",
                "2 error",
            ),
        ];
        for (text, want, count) in cases {
            let out = errors_of(&[("p.yaml", text)]);
            assert!(out.contains(want), "want `{want}` in:\n{out}");
            assert!(out.contains(count), "want {count} in:\n{out}");
            assert!(!out.contains("AAAAAAAA"), "secret echoed:\n{out}");
        }
    }

    #[test]
    fn a_glob_skips_the_including_file_and_diamonds_load_once() {
        let main = format!("{PROVIDER}include: [\"*.yaml\", sub/x.yaml]\n");
        let x = "version: 1\ninclude: [../y.yaml]\ncredentials:\n  - { id: x, provider: bao, target: { kind: vault_kv_secret, path: x } }\n";
        let y = "version: 1\ncredentials:\n  - { id: y, provider: bao, target: { kind: vault_kv_secret, path: y } }\n";
        let pb = load_files(&[("main.yaml", &main), ("sub/x.yaml", x), ("y.yaml", y)]).unwrap();
        let ids: Vec<&str> = pb.credentials.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["y", "x"]);
        assert_eq!(pb.files.len(), 3);
        assert!(pb.files[1].ends_with("y.yaml") && pb.files[2].ends_with("sub/x.yaml"), "{:?}", pb.files);
    }

    #[test]
    fn a_self_dependency_is_a_cycle() {
        let text =
            format!("{PROVIDER}credentials:\n  - id: a\n    provider: bao\n    target: {{ kind: vault_kv_secret, path: a }}\n    depends_on: [a]\n");
        let out = errors_of(&[("p.yaml", &text)]);
        assert!(out.contains("p.yaml:11:18: error: dependency cycle: a → a"), "{out}");
    }

    #[test]
    fn normalizes_include_paths() {
        assert_eq!(normalize(Path::new("a/./b/../c.yaml")), PathBuf::from("a/c.yaml"));
        assert_eq!(normalize(Path::new("../x.yaml")), PathBuf::from("../x.yaml"));
    }
}
