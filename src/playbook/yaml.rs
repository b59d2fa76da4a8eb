//! YAML mechanics of the loader: nodes and their paths, reading files and
//! expanding globs within bounds, and turning serde's errors into the node
//! that caused them with a hint.

use std::collections::VecDeque;
use std::path::{Component, Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;

use super::doc::{Node, Value};
use super::loader::*;
use super::locate::YamlPath;
pub(super) use super::locate::{key_string, node_at};

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

/// Breadth-first search below `start` (itself included) for a node, or for a
/// map entry whose key satisfies `key_pred`.
pub(super) fn search(
    root: &Node,
    start: &YamlPath,
    node_pred: &dyn Fn(&YamlPath, &Node) -> bool,
    key_pred: &dyn Fn(&str) -> bool,
) -> Option<YamlPath> {
    let mut queue = VecDeque::new();
    queue.push_back((start.clone(), node_at(root, start)?));
    while let Some((p, v)) = queue.pop_front() {
        if node_pred(&p, v) {
            return Some(p);
        }
        match &v.untag().value {
            Value::Mapping(m) => {
                for (k, child) in m.iter() {
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
pub(super) fn quoted_after<'a>(msg: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = &msg[msg.find(prefix)? + prefix.len()..];
    rest.find('`').map(|end| &rest[..end])
}

/// Every text in backticks or double quotes in `msg`.
pub(super) fn quoted_tokens(msg: &str) -> Vec<String> {
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

/// The edit distance of `a` and `b` if it is at most `limit` (stops early
/// otherwise: once a whole row exceeds it, or when the lengths alone do).
fn levenshtein_within(a: &[char], b: &str, limit: usize) -> Option<usize> {
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > limit {
        return None;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = Vec::with_capacity(b.len() + 1);
    for (i, ca) in a.iter().enumerate() {
        cur.clear();
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        if cur.iter().min().is_some_and(|m| *m > limit) {
            return None;
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    Some(prev[b.len()]).filter(|d| *d <= limit)
}

/// The candidate closest to `word`, if it is close enough to be a likely
/// typo (the first of the closest).
pub(super) fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let w: Vec<char> = word.chars().collect();
    let limit = (w.len() / 3).max(2);
    candidates.into_iter().filter_map(|c| levenshtein_within(&w, c, limit).map(|d| (d, c))).min_by_key(|(d, _)| *d).map(|(_, c)| c)
}

pub(super) fn list(names: &[&str]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

/// Removes `.` and resolves `..` lexically, so that paths read well in messages.
pub(super) fn normalize(p: &Path) -> PathBuf {
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

pub(super) fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Placeholders in a delivery path other than `{id}`.
pub(super) fn unknown_placeholders(path: &str) -> Vec<String> {
    static PLACEHOLDER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\{[^}]*\}").expect("regex"));
    PLACEHOLDER.find_iter(path).map(|m| m.as_str().to_string()).filter(|m| m != "{id}").collect()
}

pub(super) fn id_problem(id: &str) -> Option<String> {
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
    pub(super) fn message(&self) -> String {
        match self {
            ReadError::Io(e) => format!("cannot be read: {e}"),
            ReadError::NotAFile(what) => format!("is {what}, not a regular file"),
            ReadError::TooLarge { len, cap } if len > cap => format!("is larger than {} (the most a playbook may read)", human_bytes(*cap)),
            ReadError::TooLarge { cap, .. } => format!("is larger than {}", human_bytes(*cap)),
            ReadError::NotUtf8 { offset, .. } => format!("is not UTF-8 text (invalid byte at offset {offset})"),
        }
    }
    pub(super) fn hint(&self) -> String {
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

pub(super) fn human_bytes(n: u64) -> String {
    if n % (1024 * 1024) == 0 {
        format!("{} MiB", n / (1024 * 1024))
    } else {
        format!("{n} bytes")
    }
}

pub(super) fn file_type_name(ft: &std::fs::FileType) -> &'static str {
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

pub(super) fn folder_of(p: &Path) -> PathBuf {
    p.parent().map(Path::to_path_buf).unwrap_or_default()
}

pub(super) fn concat(a: &YamlPath, b: &YamlPath) -> YamlPath {
    let mut v = a.0.clone();
    v.extend(b.0.iter().cloned());
    YamlPath(v)
}

pub(super) fn join_serde_path(base: &YamlPath, p: &serde_path_to_error::Path) -> YamlPath {
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
pub(super) fn tag_of(v: &Node, tag: &str) -> Option<String> {
    v.get(tag).and_then(Node::scalar_text)
}

/// The error of deserializing a tagged mapping without its tag as the
/// variant's own settings (`de`, given by the registry), to learn the precise
/// path of an error that serde reported at the enum.
pub(super) fn inner_error(v: &Node, tag: &str, de: impl Fn(&Node) -> Option<(serde_path_to_error::Path, String)>) -> Option<(YamlPath, String)> {
    let without = v.untag().without_key(tag)?;
    de(&without).map(|(p, msg)| (join_serde_path(&YamlPath::root(), &p), msg))
}

/// Moves an error's path from where serde stopped tracking to the node that
/// caused it; `true` when it names a key rather than a value.
pub(super) fn refine(root: &Node, path: YamlPath, msg: &str) -> (YamlPath, bool) {
    if let Some(field) = quoted_after(msg, "unknown field `") {
        if path.last_key() == Some(field) {
            return (path, true);
        }
        let found = search(root, &path, &|_, _| false, &|k| k == field);
        return (found.unwrap_or(path), true);
    }
    if let Some(variant) = quoted_after(msg, "unknown variant `") {
        let is_variant = |_: &YamlPath, v: &Node| v.scalar_text().as_deref() == Some(variant);
        let tag_first = search(root, &path, &|p, v| is_variant(p, v) && matches!(p.last_key(), Some("kind" | "method")), &|_| false);
        let found = tag_first.or_else(|| search(root, &path, &is_variant, &|_| false));
        return (found.unwrap_or(path), false);
    }
    if msg.starts_with("missing field") {
        return (path, false);
    }
    let is_container = matches!(node_at(root, &path).map(|n| &n.untag().value), Some(Value::Mapping(_) | Value::Sequence(_)));
    if is_container {
        for token in quoted_tokens(msg) {
            let found = search(root, &path, &|_, v| v.scalar_text().as_deref() == Some(token.as_str()), &|_| false);
            if let Some(p) = found {
                return (p, false);
            }
        }
    }
    (path, false)
}

/// A hint for a serde message: the likely intended field or variant, or how to
/// write the expected type.
pub(super) fn serde_hint(msg: &str, key: Option<&str>) -> Option<String> {
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
