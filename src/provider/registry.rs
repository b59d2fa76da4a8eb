//! Builds provider adapters from the playbook's `providers:` (by `kind:`), and
//! resolves the secret references their settings hold.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anyhow::{Context, Result};

use super::{ErrorKind, Provider, ProviderError, Store};
use crate::playbook::model::{ProviderConfig, SecretRef};
use crate::playbook::Playbook;
use crate::secret::SecretString;

/// Resolves an environment reference (`${env:VAR}`) to its value. Store
/// references are read when providers connect (see [`connect`]).
pub fn resolve_secret(r: &SecretRef) -> Result<SecretString, ProviderError> {
    match r {
        SecretRef::Env(var) => std::env::var(var)
            .map(SecretString::from)
            .map_err(|_| ProviderError::new(ErrorKind::Config, "resolve_secret", format!("environment variable `{var}` is not set"))),
        SecretRef::Store { .. } => {
            Err(ProviderError::new(ErrorKind::Config, "resolve_secret", format!("{r} is read from its store when providers connect")))
        }
    }
}

/// Where a `${store:…}` reference points, for a store provider of `kind`.
pub(crate) fn store_location(kind: &str, provider: &str, path: &str, field: &str) -> Option<crate::playbook::StoreLocation> {
    super::kind::store_kind(kind).map(|s| (s.location)(provider, path, field))
}

fn store_refs(cfg: &ProviderConfig) -> Vec<(&SecretRef, &str)> {
    cfg.secret_refs()
        .into_iter()
        .filter_map(|r| match r {
            SecretRef::Store { provider, .. } => Some((r, provider.as_str())),
            SecretRef::Env(_) => None,
        })
        .collect()
}

/// The connected providers of one run, by name.
#[derive(Clone, Default)]
pub struct Providers {
    map: BTreeMap<String, Arc<dyn Provider>>,
}

impl Providers {
    /// Ends every provider's own session (see `Provider::close`).
    pub async fn close(&self) {
        for p in self.map.values() {
            p.close().await;
        }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.map.get(name)
    }
    pub fn store(&self, name: &str) -> Option<&dyn Store> {
        self.map.get(name).and_then(|p| p.as_store())
    }
    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.map.keys()
    }
    /// Requests sent per provider so far (by the adapters that count them).
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.map.iter().filter_map(|(k, p)| p.request_count().map(|n| (k.clone(), n))).collect()
    }
    pub fn insert(&mut self, name: &str, p: Arc<dyn Provider>) {
        self.map.insert(name.to_string(), p);
    }
}

fn connect_error(name: &str, kind: &str, at: &crate::playbook::Location, e: ProviderError) -> anyhow::Error {
    let what = if e.is_temporary() {
        "cannot be reached"
    } else {
        match e.kind {
            // A certificate refused, a setting missing: keysweep's side, not the login.
            ErrorKind::Config => "cannot be used as configured",
            ErrorKind::Unauthenticated | ErrorKind::PermissionDenied => "refused keysweep's own login",
            _ => "failed",
        }
    };
    anyhow::anyhow!("connecting to provider `{name}` (kind {kind}, {at}): it {what}: {e}")
}

/// Connects (and logs in to) every provider named in `needed`, and the store
/// providers their `${store:…}` references read from — those first.
pub async fn connect(playbook: &Playbook, needed: &BTreeSet<String>) -> Result<Providers> {
    let (order, problems) = connect_order(playbook, needed);
    // Every problem of the configuration is found before anything connects.
    if let Some((_, first)) = problems.into_iter().next() {
        anyhow::bail!(first);
    }
    let mut out = Providers::default();
    for name in &order {
        connect_one(playbook, name, &mut out).await?;
    }
    Ok(out)
}

/// Like `connect`, but a provider that cannot be connected (or whose store
/// could not be) is reported by name instead of ending the whole call.
pub async fn connect_each(playbook: &Playbook, needed: &BTreeSet<String>) -> (Providers, BTreeMap<String, String>) {
    let (order, problems) = connect_order(playbook, needed);
    let mut failed: BTreeMap<String, String> = BTreeMap::new();
    for (name, why) in problems {
        failed.entry(name).or_insert(why);
    }
    let mut out = Providers::default();
    for name in &order {
        if failed.contains_key(name) {
            continue;
        }
        let stores = store_refs(&playbook.providers[name].config);
        if let Some((_, bad)) = stores.iter().find(|(_, s)| failed.contains_key(*s)) {
            failed.insert(name.clone(), format!("its store provider `{bad}` could not be connected"));
        } else if let Err(e) = connect_one(playbook, name, &mut out).await {
            failed.insert(name.clone(), format!("{e:#}"));
        }
    }
    (out, failed)
}

/// `needed`, closed over the stores their `${store:…}` references read from,
/// in connection order (a provider after those stores); and, in the order
/// found, what is wrong with any of them (an undeclared provider, a reference
/// to one that holds no secrets, a cycle of references).
fn connect_order(playbook: &Playbook, needed: &BTreeSet<String>) -> (Vec<String>, Vec<(String, String)>) {
    let mut problems: Vec<(String, String)> = vec![];
    let mut needed = needed.clone();
    let mut frontier: Vec<String> = needed.iter().cloned().collect();
    frontier.reverse();
    while let Some(name) = frontier.pop() {
        let Some(entry) = playbook.providers.get(&name) else {
            problems.push((name.clone(), format!("provider `{name}` is not declared")));
            continue;
        };
        for (r, store) in store_refs(&entry.config) {
            match playbook.providers.get(store) {
                None => problems.push((name.clone(), format!("{r} in provider `{name}` ({}) names no declared provider", entry.location))),
                Some(s) if super::kind::store_kind(s.config.kind()).is_none() => problems.push((
                    name.clone(),
                    format!(
                        "{r} in provider `{name}` ({}): `{store}` is a `{}` provider, which holds no secrets to read",
                        entry.location,
                        s.config.kind()
                    ),
                )),
                Some(_) if needed.insert(store.to_string()) => frontier.push(store.to_string()),
                Some(_) => {}
            }
        }
    }
    // A provider after the stores it reads its own credentials from. Names
    // with a problem are placed at once: they will not be connected anyway.
    let placed_early = |n: &String| problems.iter().any(|(p, _)| p == n);
    let mut order: Vec<String> = needed.iter().filter(|n| placed_early(n)).cloned().collect();
    let mut rest: Vec<&String> = needed.iter().filter(|n| !placed_early(n)).collect();
    while !rest.is_empty() {
        let before = rest.len();
        rest.retain(|name| {
            let ready = store_refs(&playbook.providers[*name].config).iter().all(|(_, s)| order.iter().any(|o| o == s));
            if ready {
                order.push((*name).clone());
            }
            !ready
        });
        if rest.len() == before {
            let why = format!("providers read their credentials from each other in a cycle: {rest:?}");
            problems.extend(rest.iter().map(|n| ((*n).clone(), why.clone())));
            break;
        }
    }
    (order, problems)
}

async fn connect_one(playbook: &Playbook, name: &String, out: &mut Providers) -> Result<()> {
    {
        let entry = &playbook.providers[name];
        // Read this provider's store references from the stores connected before it.
        let mut from_stores: Vec<(SecretRef, SecretString)> = vec![];
        for (r, store_name) in store_refs(&entry.config) {
            let SecretRef::Store { path, field, .. } = r else { continue };
            let kind = playbook.providers[store_name].config.kind();
            let loc = store_location(kind, store_name, path, field).with_context(|| format!("provider `{store_name}` is not a store"))?;
            let store = out.store(store_name).with_context(|| format!("store provider `{store_name}` is not connected"))?;
            let cur = store.read_current(&loc).await.with_context(|| format!("reading {r} for provider `{name}`"))?;
            let Some(cur) = cur else { anyhow::bail!("{r} for provider `{name}` ({}): no current value at {loc}", entry.location) };
            from_stores.push((r.clone(), cur.delivered.value));
        }
        let resolve = |r: &SecretRef| -> Result<SecretString, ProviderError> {
            match from_stores.iter().find(|(k, _)| k == r) {
                Some((_, v)) => Ok(SecretString::from(crate::secret::ExposeSecret::expose_secret(v).to_string())),
                None => resolve_secret(r),
            }
        };
        // Verification off, plaintext allowed: said at every connection (and by `plan`).
        for w in entry.config.spec().warnings() {
            eprintln!("keysweep: WARNING: provider `{name}`: {w}");
        }
        let p = entry.config.spec().connect(name, &resolve).await.map_err(|e| connect_error(name, entry.config.kind(), &entry.location, e))?;
        out.map.insert(name.clone(), p);
    }
    Ok(())
}
