//! Loads playbook files: the only module that parses YAML. It reads,
//! parses and deserializes each file and follows includes; the rest is split:
//! `yaml.rs` (nodes and paths, bounded file reading and globs, serde errors
//! mapped to the node that caused them), `interpolate.rs` (`${env:…}` and
//! pasted-secret shapes), `resolve.rs` (validation and resolution of the
//! merged playbook) and `rules.rs` (pure value rules shared with adapters).
//! Each credential kind's own rules are its adapter's (`Kind::check`).
//!
//! A file goes through these steps, and every problem found on the way becomes
//! a [`Diagnostic`] pointing at `file:line:column` (nothing stops at the first):
//!
//! 1. read and parse, once, into a tree whose nodes know their line and column
//!    ([`super::doc`]: libyaml's parser, serde_yaml's values; a text it refuses
//!    is reported with serde_yaml's message and position);
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

use std::cell::OnceCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;
use serde::de::DeserializeOwned;

use super::doc::{self, Node, Str, Value};
use super::locate::{self, Pos, Seg, YamlPath};
use super::model::{CredentialSpec, Defaults, PlaybookFile, ProviderConfig, SecretRef};
pub use super::rules::{
    address_problem, duration_problem, host_problem, store_path_problem, MAX_GRACE_PERIOD, MAX_LONG_DURATION, MAX_SHORT_DURATION,
};
use super::{Diagnostic, Diagnostics, Location, Playbook};
use crate::provider::kind::{self, Problem};

pub(super) use super::interpolate::*;
pub(crate) use super::yaml::levenshtein;
pub(super) use super::yaml::*;

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

/// An `${env:VAR}` reference that [`load_structure`] did not check because
/// `VAR` is not set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unchecked {
    pub var: String,
    pub location: Location,
}

/// The text an unset variable stands for when only the structure is checked.
pub const NO_ENV_PLACEHOLDER: &str = "keysweep-no-env-placeholder";

/// Loads and validates the playbook's structure without needing its
/// environment (`validate --no-env`): an unset `${env:VAR}` is not an error
/// but an [`Unchecked`] reference, and what a value made from one would be
/// checked for (an address's shape, an id's form) is not checked. Every other
/// error still is one. `${store:...}` references are never read here, as in
/// [`load`].
pub fn load_structure(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<(Playbook, Vec<Unchecked>), Diagnostics> {
    let mut loader = Loader::new(env);
    loader.no_env = true;
    loader.load_file(path.to_path_buf(), None);
    let playbook = loader.resolve(path);
    let unchecked = std::mem::take(&mut loader.unchecked);
    let mut diags = loader.diags;
    // Errors about a value an unset variable would have given are not the structure's.
    diags.retain(|d| !d.location.as_ref().is_some_and(|l| loader.placeholder_at.contains(l)));
    let mut unchecked: Vec<Unchecked> = unchecked.into_iter().map(|(var, location)| Unchecked { var, location }).collect();
    unchecked.sort_by(|a, b| (&a.location.file, a.location.line, a.location.column).cmp(&(&b.location.file, b.location.line, b.location.column)));
    unchecked.dedup();
    if diags.is_empty() {
        return Ok((playbook, unchecked));
    }
    sort_diagnostics(&mut diags);
    Err(Diagnostics(diags))
}

/// `path` is below `discovery.ignore[`: an ignore rule's field.
fn in_discovery_ignore(path: &YamlPath) -> bool {
    match path.0.as_slice() {
        [Seg::Key(d), Seg::Key(i), third, ..] if d == "discovery" && i == "ignore" => match third {
            Seg::Index(_) => true,
            // Printed `discovery.ignore["..."]`.
            Seg::Key(k) => !locate::is_plain_key(k),
        },
        _ => false,
    }
}

fn sort_diagnostics(diags: &mut Vec<Diagnostic>) {
    fn key(d: &Diagnostic) -> Option<(&Path, usize, usize)> {
        d.location.as_ref().map(|l| (l.file.as_path(), l.line, l.column))
    }
    // Stable: problems at one place keep the order they were found in.
    diags.sort_by(|a, b| key(a).cmp(&key(b)));
    diags.dedup();
}

// ---------------------------------------------------------------------------
// The loader
// ---------------------------------------------------------------------------

/// One file read.
pub(super) struct Source {
    /// As displayed in messages (the path given, or joined to the includer's folder).
    pub(super) path: PathBuf,
    pub(super) canonical: PathBuf,
    pub(super) text: String,
    /// The file's tree, once parsed (`None` if it did not parse). Once a
    /// credential is deserialized, its node is emptied (`stripped`): a
    /// position inside one is then read from `full_tree`, the file parsed
    /// again, which only a reported problem needs.
    pub(super) tree: Option<Node>,
    pub(super) stripped: bool,
    pub(super) full_tree: OnceCell<Option<Node>>,
    /// Paths (in this file) already reported, whose serde errors would repeat them.
    pub(super) reported: HashSet<String>,
    /// What deserialized from this file.
    pub(super) data: FileData,
}

#[derive(Default)]
pub(super) struct FileData {
    /// `Some` when the top level deserialized.
    pub(super) version: Option<u32>,
    pub(super) defaults: Defaults,
    /// `false` when `defaults:` did not deserialize: checks that depend on it are skipped.
    pub(super) defaults_ok: bool,
    pub(super) providers: Vec<(String, ProviderConfig)>,
    /// Each credential that deserialized: its index in `credentials:`, where it is, what it says.
    pub(super) credentials: Vec<(usize, Pos, CredentialSpec)>,
    pub(super) discovery: Option<crate::playbook::model::DiscoverySettings>,
}

pub(super) struct Loader<'e> {
    pub(super) env: &'e dyn Fn(&str) -> Option<String>,
    pub(super) sources: Vec<Source>,
    /// Canonical paths of the files being loaded (the include chain), with their source index.
    pub(super) stack: Vec<(PathBuf, usize)>,
    pub(super) diags: Vec<Diagnostic>,
    /// A file could not be read or parsed: references into it cannot be checked.
    pub(super) incomplete: bool,
    /// Names of providers and ids of credentials that exist but did not deserialize.
    pub(super) broken_providers: HashSet<String>,
    pub(super) broken_ids: HashSet<String>,
    /// Every readable credential id in load order, with where it is written
    /// (file, index in its `credentials:`, position), for the duplicate check.
    pub(super) ids: Vec<(String, usize, usize, Pos)>,
    /// Bytes read so far, over all files.
    pub(super) total_bytes: u64,
    /// Per provider name: `allow_link_local: true` was set (taken out before deserializing).
    pub(super) allow_link_local: HashMap<String, bool>,
    /// `validate --no-env`: an unset variable is recorded, not an error.
    pub(super) no_env: bool,
    /// Unset variables met in that mode, with where they are referenced.
    pub(super) unchecked: Vec<(String, Location)>,
    /// Locations (value and key) of nodes whose value holds a placeholder.
    pub(super) placeholder_at: HashSet<Location>,
    /// How many nodes YAML aliases may still add (all files together).
    pub(super) alias_budget: u64,
    /// Canonical paths of the files read.
    pub(super) loaded: HashSet<PathBuf>,
    /// The hint for an unknown provider name, once made (providers are known by then).
    pub(super) provider_hints: HashMap<String, String>,
}

impl<'e> Loader<'e> {
    pub(super) fn new(env: &'e dyn Fn(&str) -> Option<String>) -> Self {
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
            no_env: false,
            unchecked: Vec::new(),
            placeholder_at: HashSet::new(),
            alias_budget: doc::MAX_ALIAS_NODES,
            loaded: HashSet::new(),
            provider_hints: HashMap::new(),
        }
    }

    pub(super) fn loc(&self, file: usize, pos: Pos) -> Location {
        Location { file: self.sources[file].path.clone(), line: pos.line, column: pos.column }
    }

    /// The file's tree for finding positions: all of it (parsed again if
    /// credentials were stripped from the one kept).
    fn positions(&self, file: usize) -> Option<&Node> {
        let s = &self.sources[file];
        if s.stripped {
            // The same text, accepted once already: the same tree.
            s.full_tree
                .get_or_init(|| {
                    let mut unbounded = u64::MAX;
                    doc::parse(&s.text, &mut unbounded).ok()
                })
                .as_ref()
        } else {
            s.tree.as_ref()
        }
    }

    /// The location of the node at `path` (or its nearest ancestor).
    pub(super) fn at(&self, file: usize, path: &YamlPath) -> Location {
        let pos = self.positions(file).map_or(Pos::START, |t| locate::nearest(t, path));
        self.loc(file, pos)
    }

    /// The location of the key of the map entry at `path`.
    pub(super) fn at_key(&self, file: usize, path: &YamlPath) -> Location {
        let pos = self.positions(file).map_or(Pos::START, |t| locate::key_or_nearest(t, path));
        self.loc(file, pos)
    }

    pub(super) fn error(&mut self, file: usize, path: &YamlPath, msg: impl Into<String>, hint: Option<String>) {
        let at = self.at(file, path);
        self.error_at(file, path, at, msg, hint);
    }

    /// Reports a problem of the node at `path`, which is at `at`.
    pub(super) fn error_at(&mut self, file: usize, path: &YamlPath, at: Location, msg: impl Into<String>, hint: Option<String>) {
        let mut d = Diagnostic::new(Some(at), msg);
        d.hint = hint;
        self.sources[file].reported.insert(path.to_string());
        self.diags.push(d);
    }

    // -- reading ------------------------------------------------------------

    /// Loads `path` and, depth first, what it includes. `site` is the include
    /// entry that named it (`None` for the root file).
    pub(super) fn load_file(&mut self, path: PathBuf, site: Option<(usize, YamlPath)>) {
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
        if self.loaded.contains(&canonical) {
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
        self.loaded.insert(canonical.clone());
        self.sources.push(Source {
            path: path.clone(),
            canonical: canonical.clone(),
            tree: None,
            stripped: false,
            full_tree: OnceCell::new(),
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
    pub(super) fn parse_file(&mut self, file: usize) -> Vec<(usize, String)> {
        let mut root = match doc::parse(&self.sources[file].text, &mut self.alias_budget) {
            Ok(root) => root,
            Err(refused) => {
                self.syntax_error(file, &refused);
                return Vec::new();
            }
        };
        match &root.untag().value {
            Value::Mapping(_) => {}
            Value::Null => {
                let d = Diagnostic::new(Some(self.loc(file, Pos::START)), "the playbook file is empty").hint("a playbook starts with `version: 1`");
                self.diags.push(d);
                self.sources[file].tree = Some(root);
                return Vec::new();
            }
            _ => {
                let at = self.loc(file, Pos::of(&root));
                self.error_at(file, &YamlPath::root(), at, "a playbook file is a mapping (`version:`, `providers:`, `credentials:`)", None);
                self.incomplete = true;
                self.sources[file].tree = Some(root);
                return Vec::new();
            }
        }
        self.check_strings(file, &mut YamlPath::root(), &mut root);
        self.take_allow_link_local(file, &mut root);
        self.rebase_tls_paths(file, &mut root);
        self.deserialize_file(file, &mut root);
        // Includes are read from the value itself, so a mistake elsewhere at
        // the top level does not hide the included files.
        let includes = match root.get("include").map(|n| &n.untag().value) {
            Some(Value::Sequence(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(k, v)| match &v.untag().value {
                    Value::String(s) => Some((k, s.to_string())),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        self.sources[file].tree = Some(root);
        includes
    }

    /// A text that is not one YAML document: serde_yaml's message and position
    /// (the parser is serde_yaml's; it refuses the same texts), or ours where
    /// our bound is the stricter.
    pub(super) fn syntax_error(&mut self, file: usize, refused: &doc::ParseError) {
        let from_serde = match serde_yaml::from_str::<serde_yaml::Value>(&self.sources[file].text) {
            Err(e) if !refused.stricter_than_serde_yaml() => {
                let pos = e.location().map(|l| Pos { line: l.line(), column: l.column() }).unwrap_or(Pos::START);
                static AT: LazyLock<Regex> = LazyLock::new(|| Regex::new(r" at line \d+ column \d+").expect("regex"));
                Some((pos, AT.replace(&e.to_string(), "").into_owned()))
            }
            _ => None,
        };
        let d = match from_serde {
            Some((pos, msg)) => Diagnostic::new(Some(self.loc(file, pos)), format!("YAML syntax error: {msg}"))
                .hint("check the indentation and quoting around this point"),
            None => {
                let (line, column) = refused.position();
                // Our own rule (or, should serde_yaml accept what doc refuses, our own reading).
                let msg = if refused.stricter_than_serde_yaml() { refused.message() } else { format!("YAML syntax error: {}", refused.message()) };
                Diagnostic::new(Some(self.loc(file, Pos { line, column })), msg).hint(refused.hint())
            }
        };
        self.diags.push(d);
        self.incomplete = true;
    }

    /// Walks every string: refuses inline secrets, checks secret references,
    /// interpolates `${env:VAR}`. `path` is the node's path (restored on return).
    pub(super) fn check_strings(&mut self, file: usize, path: &mut YamlPath, node: &mut Node) {
        self.check_strings_in(file, path, node, None, &mut Vec::new());
    }

    /// `spare`: key strings the path no longer holds, reused for the next keys.
    fn check_strings_in(&mut self, file: usize, path: &mut YamlPath, node: &mut Node, key_pos: Option<Pos>, spare: &mut Vec<String>) {
        let pos = Pos::of(node);
        match &mut node.value {
            Value::String(s) => self.check_string(file, path, pos, key_pos, s),
            Value::Sequence(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    path.push_index(i);
                    self.check_strings_in(file, path, item, None, spare);
                    path.pop();
                }
            }
            Value::Mapping(m) => {
                for (k, item) in m.iter_mut() {
                    let mut name = spare.pop().unwrap_or_default();
                    name.clear();
                    match k.untag().as_str() {
                        Some(s) => name.push_str(s),
                        None => name.push_str(&locate::key_string(k)),
                    }
                    path.0.push(Seg::Key(name));
                    self.check_strings_in(file, path, item, Some(Pos::of(k)), spare);
                    if let Some(Seg::Key(name)) = path.0.pop() {
                        spare.push(name);
                    }
                }
            }
            Value::Tagged(t) => self.check_strings_in(file, path, &mut t.value, key_pos, spare),
            _ => {}
        }
    }

    /// Checks one string: `pos` is where it is, `key_pos` where its key is (a map entry's value).
    pub(super) fn check_string(&mut self, file: usize, path: &YamlPath, pos: Pos, key_pos: Option<Pos>, s: &mut Str) {
        let key = path.last_key();
        let is_secret_ref = key.is_some_and(kind::is_secret_key);
        // A public id shaped like a secret (an IAM access key id: AWS calls it
        // "not secret") names a key; a target lists it, and so may a
        // discovery ignore rule.
        let key_id_field = key.is_some_and(kind::is_public_id_key) || (key == Some("id") && in_discovery_ignore(path));
        let free_text = free_text_field(path).map(str::to_string);
        let shape = if free_text.is_some() { looks_like_secret_in_text(s) } else { looks_like_secret(s) };
        let at = self.loc(file, pos);
        if let Some(what) = shape.filter(|w| !(key_id_field && *w == "an AWS access key id")) {
            self.error_at(file, path, at, format!("this looks like {what} written inline"), Some(INLINE_HINT.into()));
            // Never echo it in a later message.
            *s = Str::new(if is_secret_ref { "${env:REDACTED}" } else { "<redacted>" });
            return;
        }
        if is_secret_ref {
            let key = key.unwrap_or_default();
            match SecretRef::parse(s) {
                Ok(SecretRef::Env(var)) => {
                    if (self.env)(&var).is_none() && self.no_env {
                        self.unchecked.push((var, at));
                    } else if (self.env)(&var).is_none() {
                        let d = InterpError::Missing(var).diagnostic(at);
                        self.sources[file].reported.insert(path.to_string());
                        self.diags.push(d);
                    }
                }
                // Checked when providers connect: the store provider must be declared and able to store.
                Ok(SecretRef::Store { .. }) => {}
                Err(m) => {
                    let msg = if s.trim().starts_with("${") { format!("`{key}`: {m}") } else { format!("`{key}` holds a secret written inline") };
                    self.error_at(file, path, at, msg, Some(INLINE_HINT.into()));
                    *s = Str::new("${env:REDACTED}");
                }
            }
            return;
        }
        if !s.contains('$') {
            return;
        }
        if let Some(field) = free_text {
            match unescape_free_text(s) {
                Ok(out) => *s = Str::from(out),
                Err(()) => self.error_at(
                    file,
                    path,
                    at,
                    format!("`${{...}}` is not expanded in `{field}`: it is free text, printed as written in plans and reports"),
                    Some("write the text itself; ${env:NAME} is read only where keysweep uses the value (addresses, paths, accessors, logins); $${ writes a literal ${".into()),
                ),
            }
            return;
        }
        let missing = std::cell::RefCell::new(Vec::new());
        let no_env_lookup = |k: &str| {
            (self.env)(k).or_else(|| {
                missing.borrow_mut().push(k.to_string());
                Some(NO_ENV_PLACEHOLDER.to_string())
            })
        };
        let env: &dyn Fn(&str) -> Option<String> = if self.no_env { &no_env_lookup } else { self.env };
        let result = interpolate(s, env);
        let missing = missing.into_inner();
        if !missing.is_empty() {
            let key_at = self.loc(file, key_pos.unwrap_or(pos));
            self.placeholder_at.insert(at.clone());
            self.placeholder_at.insert(key_at);
            self.unchecked.extend(missing.into_iter().map(|v| (v, at.clone())));
        }
        match result {
            Ok(out) => *s = Str::from(out),
            Err(errors) => {
                self.sources[file].reported.insert(path.to_string());
                for e in errors {
                    self.diags.push(e.diagnostic(at.clone()));
                }
            }
        }
    }

    /// Takes `allow_link_local` out of each provider before it deserializes
    /// (it is the loader's to judge addresses with, not the adapter's).
    pub(super) fn take_allow_link_local(&mut self, file: usize, root: &mut Node) {
        let Some(Node { value: Value::Mapping(providers), .. }) = root.get_mut("providers") else { return };
        let mut found = Vec::new();
        for (k, v) in providers.iter_mut() {
            let name = locate::key_string(k);
            if let Some((_, flag)) = v.remove_key("allow_link_local") {
                found.push((name, flag));
            }
        }
        for (name, flag) in found {
            match &flag.untag().value {
                Value::Bool(b) => {
                    self.allow_link_local.insert(name, *b);
                }
                _ => {
                    let at = self.loc(file, Pos::of(&flag));
                    self.error_at(
                        file,
                        &YamlPath::root().key("providers").key(name).key("allow_link_local"),
                        at,
                        "`allow_link_local` is true or false",
                        Some("write true or false, without quotes".into()),
                    )
                }
            }
        }
    }

    /// Makes relative TLS file paths in each provider's settings relative to
    /// this file's folder (not to wherever keysweep is run from).
    pub(super) fn rebase_tls_paths(&mut self, file: usize, root: &mut Node) {
        let Some(dir) = self.sources[file].canonical.parent().map(std::path::Path::to_path_buf) else { return };
        let Some(Node { value: Value::Mapping(providers), .. }) = root.get_mut("providers") else { return };
        for (_, v) in providers.iter_mut() {
            crate::provider::tls::rebase_paths(v, &dir, 0);
        }
    }

    /// The adapter's own rules for one provider (addresses, prefixes).
    pub(super) fn check_provider(&mut self, file: usize, path: &YamlPath, name: &str, config: &ProviderConfig) {
        let allow = self.allow_link_local.get(name).copied().unwrap_or(false);
        let problems = config.spec().check(allow);
        self.report_problems(file, path, problems);
        // Settings left to the environment (VAULT_ADDR, ...): checked with it,
        // or, with `--no-env`, listed as not checked when it lacks them.
        let unset: Vec<&str> = config.spec().env_vars().into_iter().filter(|v| (self.env)(v).is_none()).collect();
        if self.no_env && !unset.is_empty() {
            let at = self.at_key(file, path);
            self.unchecked.extend(unset.into_iter().map(|v| (v.to_string(), at.clone())));
            return;
        }
        let problems = config.spec().check_env(allow, self.env);
        self.report_problems(file, path, problems);
    }

    /// Problems an adapter found, each at its path below `base`.
    pub(super) fn report_problems(&mut self, file: usize, base: &YamlPath, problems: Vec<Problem>) {
        for p in problems {
            // `[N]` is the N-th item of a list.
            let at =
                p.at.iter().fold(base.clone(), |at, k| match k.strip_prefix('[').and_then(|r| r.strip_suffix(']')).and_then(|n| n.parse().ok()) {
                    Some(i) => at.index(i),
                    None => at.key(k.clone()),
                });
            self.error(file, &at, p.message, p.hint);
        }
    }

    /// A duration within bounds: not zero unless `zero_ok`, at most `max`.
    pub(super) fn check_duration(&mut self, file: usize, path: &YamlPath, d: Option<Duration>, zero_ok: bool, max: Duration) {
        let field = path.last_key().unwrap_or("duration").to_string();
        if let Some((msg, hint)) = duration_problem(&field, d, zero_ok, max) {
            self.error(file, path, msg, Some(hint));
        }
    }

    // -- deserializing --------------------------------------------------------

    /// Deserializes `node`, at `path` of `root`, as a `T`, reporting a failure.
    pub(super) fn de<T: DeserializeOwned>(&mut self, file: usize, root: &Node, path: &YamlPath, node: &Node) -> Option<T> {
        match doc::deserialize::<T>(node) {
            Ok(t) => Some(t),
            Err((p, msg)) => {
                let at = join_serde_path(path, &p);
                self.serde_error(file, root, at, msg);
                None
            }
        }
    }

    /// Reports a deserialization error, pointing as close to its cause as possible.
    pub(super) fn serde_error(&mut self, file: usize, root: &Node, path: YamlPath, msg: String) {
        let (path, is_key) = refine(root, path, &msg);
        if self.sources[file].reported.contains(&path.to_string()) {
            return; // already reported (a missing variable, an inline secret...)
        }
        let hint = serde_hint(&msg, path.last_key());
        let pos = if is_key { locate::key_or_nearest(root, &path) } else { locate::nearest(root, &path) };
        let mut d = Diagnostic::new(Some(self.loc(file, pos)), msg);
        d.hint = hint;
        self.sources[file].reported.insert(path.to_string());
        self.diags.push(d);
    }

    pub(super) fn deserialize_file(&mut self, file: usize, root: &mut Node) {
        let top = YamlPath::root();
        let Some(map) = root.as_mapping() else { return };
        let mut data = FileData { defaults_ok: true, ..FileData::default() };

        // The top level without the parts deserialized one by one below
        // (taken out as serde_yaml's `Mapping::remove` takes them, so the
        // entries left are in the same order as before).
        let parts = ["providers", "credentials", "defaults"];
        let mut skeleton: Vec<(Node, Node)> =
            map.iter().map(|(k, v)| (k.clone(), if k.as_str().is_some_and(|k| parts.contains(&k)) { Node::null() } else { v.clone() })).collect();
        for k in parts {
            if let Some(i) = skeleton.iter().position(|(key, _)| key.as_str() == Some(k)) {
                skeleton.swap_remove(i);
            }
        }
        let skeleton = Node { line: root.line, column: root.column, value: Value::Mapping(skeleton.into_boxed_slice()) };
        match doc::deserialize::<PlaybookFile>(&skeleton) {
            Ok(pf) => {
                data.version = Some(pf.version);
                data.discovery = pf.discovery;
            }
            Err((p, msg)) => {
                let at = join_serde_path(&top, &p);
                self.serde_error(file, root, at, msg);
            }
        }

        let defaults_path = top.key("defaults");
        if let Some(defaults) = root.get("defaults") {
            let node = locate::node_at(root, &defaults_path).unwrap_or(defaults);
            match self.de::<Option<Defaults>>(file, root, &defaults_path, node) {
                Some(d) => data.defaults = d.unwrap_or_default(),
                None => data.defaults_ok = false,
            }
        }

        let providers_path = top.key("providers");
        match root.get("providers").map(|n| (n, &n.untag().value)) {
            None | Some((_, Value::Null)) => {}
            Some((_, Value::Mapping(m))) if m.iter().all(|(k, _)| matches!(k.untag().value, Value::String(_))) => {
                for (k, v) in m.iter() {
                    let name = locate::key_string(k);
                    let p = providers_path.key(name.clone());
                    match self.de_provider(file, root, &p, v) {
                        Some(cfg) => data.providers.push((name, cfg)),
                        None => {
                            self.broken_providers.insert(name);
                        }
                    }
                }
            }
            Some((n, _)) => {
                // Not a mapping of names: let serde say what is wrong.
                self.de::<BTreeMap<String, ProviderConfig>>(file, root, &providers_path, n);
            }
        }

        let credentials_path = top.key("credentials");
        let count = match root.get("credentials").map(|n| &n.untag().value) {
            None | Some(Value::Null) => 0,
            Some(Value::Sequence(items)) => items.len(),
            Some(_) => {
                let n = root.get("credentials").unwrap_or(root);
                self.de::<Vec<CredentialSpec>>(file, root, &credentials_path, n);
                0
            }
        };
        for i in 0..count {
            let Some(item) = root.get("credentials").and_then(Node::as_sequence).and_then(|s| s.get(i)) else { break };
            let p = credentials_path.index(i);
            let pos = Pos::of(item);
            let id = item.get("id").and_then(Node::scalar_text);
            if let Some(id) = &id {
                self.ids.push((id.clone(), file, i, pos));
            }
            match self.de_credential(file, root, &p, item) {
                Some(spec) => data.credentials.push((i, pos, spec)),
                None => self.broken_ids.extend(id),
            }
            // Nothing reads the item again but a position for a problem
            // found later, and that reads the file again: free it now.
            if let Some(item) = root.get_mut("credentials").and_then(Node::as_sequence_mut).and_then(|s| s.get_mut(i)) {
                item.value = Value::Null;
                self.sources[file].stripped = true;
            }
        }
        self.sources[file].data = data;
    }

    /// Deserializes a provider. serde loses the path inside an internally tagged
    /// enum, so on failure the variant's own struct is tried for a precise one.
    pub(super) fn de_provider(&mut self, file: usize, root: &Node, path: &YamlPath, v: &Node) -> Option<ProviderConfig> {
        match doc::deserialize::<ProviderConfig>(v) {
            Ok(cfg) => Some(cfg),
            Err((p, msg)) => {
                let precise = tag_of(v, "kind").and_then(|k| inner_error(v, "kind", |u| crate::providers::provider_error(&k, u)));
                let (sub, msg) = precise.unwrap_or_else(|| (join_serde_path(path, &p), msg));
                let sub = if sub.0.starts_with(&path.0) { sub } else { concat(path, &sub) };
                self.serde_error(file, root, sub, msg);
                None
            }
        }
    }

    /// Deserializes a credential, with a precise path for errors inside `target:`.
    pub(super) fn de_credential(&mut self, file: usize, root: &Node, path: &YamlPath, v: &Node) -> Option<CredentialSpec> {
        match doc::deserialize::<CredentialSpec>(v) {
            Ok(spec) => Some(spec),
            Err((p, msg)) => {
                let mut at = join_serde_path(path, &p);
                let mut msg = msg;
                let target_path = path.key("target");
                if at == target_path {
                    let null = Node::null();
                    let t = locate::node_at(root, &target_path).unwrap_or(&null);
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

    pub(super) fn include(&mut self, file: usize, k: usize, pattern: &str) {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn env(k: &str) -> Option<String> {
        match k {
            "A" => Some("alpha".into()),
            "B_2" => Some("beta".into()),
            _ => None,
        }
    }

    #[test]
    pub(super) fn interpolates_several_references_and_escapes() {
        assert_eq!(interpolate("x ${env:A}/${env:B_2} y", &env).unwrap(), "x alpha/beta y");
        assert_eq!(interpolate("$${env:A} costs $5", &env).unwrap(), "${env:A} costs $5");
        assert_eq!(interpolate("plain", &env).unwrap(), "plain");
        assert_eq!(interpolate("${env:A}", &env).unwrap(), "alpha");
    }

    #[test]
    pub(super) fn interpolation_reports_every_problem() {
        let errs = interpolate("${env:NOPE} ${env:1BAD} ${vault:x} ${env:A}", &env).unwrap_err();
        assert_eq!(errs, vec![InterpError::Missing("NOPE".into()), InterpError::BadName("1BAD".into()), InterpError::Unknown("vault:x".into()),]);
        assert_eq!(interpolate("${env:A", &env).unwrap_err(), vec![InterpError::Unterminated]);
    }

    #[test]
    pub(super) fn recognises_pasted_secrets_only() {
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
    pub(super) fn suggests_close_names() {
        assert_eq!(closest("ownr", ["id", "owner", "provider"]), Some("owner"));
        assert_eq!(closest("zzzzzz", ["id", "owner"]), None);
        let msg = "unknown variant `vault_tokn`, expected one of `vault_token`, `vault_kv_secret`";
        assert_eq!(serde_hint(msg, None).as_deref(), Some("did you mean `vault_token`?"));
    }

    #[test]
    pub(super) fn ids_are_checked() {
        assert!(id_problem("ci/deploy-token.v2").is_none());
        assert!(id_problem("").is_some());
        assert!(id_problem("has space").is_some());
        assert!(id_problem("../escape").is_some());
        assert!(id_problem("/lead").is_some());
    }

    #[test]
    pub(super) fn refine_finds_the_offending_node() {
        let root = doc::parse("a:\n  b: {kind: nope, x: 1}\n  c: [1, \"5x\"]\n", &mut 0).unwrap();
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
    pub(super) fn load_files(files: &[(&str, &str)]) -> Result<Playbook, String> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        load_with_env(&dir.path().join(files[0].0), &env).map_err(|d| d.to_string())
    }

    pub(super) fn errors_of(files: &[(&str, &str)]) -> String {
        match load_files(files) {
            Ok(_) => panic!("loaded without error: {:?}", files[0]),
            Err(e) => e,
        }
    }

    #[test]
    pub(super) fn edge_cases_point_at_the_cause() {
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
    pub(super) fn a_glob_skips_the_including_file_and_diamonds_load_once() {
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
    pub(super) fn a_self_dependency_is_a_cycle() {
        let text =
            format!("{PROVIDER}credentials:\n  - id: a\n    provider: bao\n    target: {{ kind: vault_kv_secret, path: a }}\n    depends_on: [a]\n");
        let out = errors_of(&[("p.yaml", &text)]);
        assert!(out.contains("p.yaml:11:18: error: dependency cycle: a → a"), "{out}");
    }

    #[test]
    pub(super) fn unknown_dependencies_are_suggested_once_per_id_and_within_a_bound() {
        // 3,000 credentials naming one missing id (a typo of `svc-1`), then 40 other typos.
        let mut text = format!("{PROVIDER}credentials:\n");
        for i in 0..3_000 {
            text.push_str(&format!("  - {{ id: svc-{i}, provider: bao, target: {{ kind: vault_kv_secret, path: p{i} }}, depends_on: [svc_1] }}\n"));
        }
        for i in 0..40 {
            text.push_str(&format!(
                "  - {{ id: odd-{i}, provider: bao, target: {{ kind: vault_kv_secret, path: o{i} }}, depends_on: [odd-{i}x] }}\n"
            ));
        }
        let out = errors_of(&[("p.yaml", &text)]);
        assert_eq!(out.matches("which is not a credential id\n  hint: did you mean `svc-1`?").count(), 3_000, "{}", &out[..2000]);
        // The first 32 distinct missing ids are looked for (svc_1 and 31 more), the rest get the general hint.
        assert!(out.contains("`odd-30` depends on `odd-30x`, which is not a credential id\n  hint: did you mean `odd-30`?"), "{out}");
        assert!(out.contains("`odd-31` depends on `odd-31x`, which is not a credential id\n  hint: `depends_on` lists ids"), "{out}");
        assert_eq!(out.matches("`depends_on` lists ids of credentials").count(), 40 - 31);
    }

    #[test]
    pub(super) fn normalizes_include_paths() {
        assert_eq!(normalize(Path::new("a/./b/../c.yaml")), PathBuf::from("a/c.yaml"));
        assert_eq!(normalize(Path::new("../x.yaml")), PathBuf::from("../x.yaml"));
    }
}
