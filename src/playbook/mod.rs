//! Playbooks: the typed model, the loader (the only module that touches YAML),
//! and the resolved form the planner works from.

pub mod doc;
mod interpolate;
pub mod libyaml;
pub mod loader;
pub mod locate;
pub mod model;
mod resolve;
pub mod rules;
mod yaml;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use loader::load;
pub use loader::{load_structure, Unchecked, NO_ENV_PLACEHOLDER};
use model::{Action, Delivery, ProviderConfig, Target};

/// A place in a playbook file (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// One problem found in a playbook: where, what, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub location: Option<Location>,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(location: Option<Location>, message: impl Into<String>) -> Self {
        Diagnostic { location, message: message.into(), hint: None }
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(l) => write!(f, "{l}: error: {}", self.message)?,
            None => write!(f, "error: {}", self.message)?,
        }
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

/// All the problems of a playbook, collected rather than stopping at the first.
#[derive(Debug, Clone)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        write!(f, "{} error(s); nothing was changed on any system", self.0.len())
    }
}

impl std::error::Error for Diagnostics {}

/// A provider as declared, with where it was declared.
#[derive(Debug, Clone)]
pub struct ProviderEntry {
    pub name: String,
    pub config: ProviderConfig,
    pub location: Location,
}

/// How hard verification tries, with defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Verify {
    pub attempts: u32,
    pub interval: Duration,
    pub probe_old: bool,
}

impl Default for Verify {
    fn default() -> Self {
        Verify { attempts: 5, interval: Duration::from_secs(1), probe_old: true }
    }
}

/// A delivery target with defaults filled in and `{id}` expanded.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct StoreLocation {
    pub provider: String,
    pub mount: String,
    pub path: String,
    pub field: String,
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}#{}", self.provider, self.mount, self.path, self.field)
    }
}

impl StoreLocation {
    pub fn from_delivery(d: &Delivery, id: &str) -> Self {
        StoreLocation {
            provider: d.provider.clone(),
            mount: d.mount.clone().unwrap_or_else(model::default_mount),
            path: d.path.replace("{id}", id),
            field: d.field.clone().unwrap_or_else(model::default_field),
        }
    }
}

/// One credential after defaults, with every reference checked.
#[derive(Debug, Clone)]
pub struct Credential {
    pub id: String,
    pub owner: Option<String>,
    pub provider: String,
    pub action: Action,
    pub target: Target,
    /// Where new values go; the first is primary. Empty only for `revoke`.
    pub deliver_to: Vec<StoreLocation>,
    pub verify: Verify,
    pub tags: Vec<String>,
    pub max_age: Option<Duration>,
    pub grace_period: Option<Duration>,
    pub depends_on: Vec<String>,
    pub description: Option<String>,
    /// Inactive when unused for longer than this (resolved; default 90 days).
    pub inactive_after: Duration,
    /// `run --due` revokes it when inactive.
    pub revoke_inactive: bool,
    /// A person re-issues the secret (the playbook's instructions); keysweep
    /// tests the value they supply, retires the old one and proves it dead.
    pub manual: Option<String>,
    pub location: Location,
}

/// The default of `inactive_after`.
pub const DEFAULT_INACTIVE_AFTER: Duration = Duration::from_secs(90 * 86_400);

/// The grace period of an alternating pair that sets none: how long the
/// previous account keeps working after the store names the other one.
/// Measured with a consumer re-reading the store before every login, 0s lost
/// 5 logins in 1,519 and 3s none in 26,750; 30s is ten times that margin, for
/// consumers slower to pick up the store (connection pools, retries), and
/// short enough that a run of many pairs is not held up for long.
/// Open sessions of the retired account are ended after it: pools must recycle within it.
pub const DEFAULT_ALTERNATING_GRACE: Duration = Duration::from_secs(30);

/// The owner `discover --emit` writes for a person to replace; the loader refuses it.
pub const OWNER_MARKER: &str = "FILL-ME";

/// Discovery settings, merged across files.
#[derive(Debug, Clone)]
pub struct Discovery {
    pub inactive_after: Duration,
    pub ignore: Vec<model::IgnoreRule>,
}

impl Default for Discovery {
    fn default() -> Self {
        Discovery { inactive_after: DEFAULT_INACTIVE_AFTER, ignore: vec![] }
    }
}

/// A loaded, validated playbook (all included files merged).
#[derive(Debug, Clone)]
pub struct Playbook {
    /// The file named on the command line.
    pub root: PathBuf,
    /// Every file read, root first.
    pub files: Vec<PathBuf>,
    /// SHA-256 over the files' contents, to recognise the same playbook on resume.
    pub fingerprint: String,
    pub providers: BTreeMap<String, ProviderEntry>,
    /// In file order, root file first, then includes in the order listed.
    pub credentials: Vec<Credential>,
    pub discovery: Discovery,
}
