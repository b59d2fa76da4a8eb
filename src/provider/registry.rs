//! Builds provider adapters from the playbook's `providers:` (by `kind:`), and
//! resolves the secret references their settings hold.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anyhow::{Context, Result};

use super::{ErrorKind, Provider, ProviderError, Store};
use crate::playbook::model::{ProviderConfig, SecretRef};
use crate::playbook::Playbook;
use crate::providers::aws::AwsProvider;
use crate::providers::vault::VaultProvider;
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
pub(crate) fn store_location(kind: &str, provider: &str, path: &str, field: &str) -> crate::playbook::StoreLocation {
    let (mount, path) = match kind {
        // Vault: the first segment is the KV mount.
        "vault" => path.split_once('/').map(|(m, p)| (m.to_string(), p.to_string())).unwrap_or(("secret".into(), path.to_string())),
        _ => (String::new(), path.to_string()),
    };
    crate::playbook::StoreLocation { provider: provider.into(), mount, path, field: field.into() }
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
    vault: BTreeMap<String, Arc<VaultProvider>>,
    aws: BTreeMap<String, Arc<AwsProvider>>,
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
    /// Requests sent per provider so far (Vault providers count theirs).
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        let v = self.vault.iter().map(|(k, v)| (k.clone(), v.request_count()));
        v.chain(self.aws.iter().map(|(k, a)| (k.clone(), a.request_count()))).collect()
    }
    pub fn insert(&mut self, name: &str, p: Arc<dyn Provider>) {
        self.map.insert(name.to_string(), p);
    }
}

fn connect_error(name: &str, at: &crate::playbook::Location, e: ProviderError) -> anyhow::Error {
    let what = if e.is_temporary() { "cannot be reached" } else { "refused keysweep's own login" };
    anyhow::anyhow!("connecting to provider `{name}` ({at}): it {what}: {e}")
}

/// Connects (and logs in to) every provider named in `needed`, and the store
/// providers their `${store:…}` references read from — those first.
pub async fn connect(playbook: &Playbook, needed: &BTreeSet<String>) -> Result<Providers> {
    // Close `needed` over store references.
    let mut needed = needed.clone();
    loop {
        let mut more = BTreeSet::new();
        for name in &needed {
            let entry = playbook.providers.get(name).with_context(|| format!("provider `{name}` is not declared"))?;
            for (r, store) in store_refs(&entry.config) {
                match playbook.providers.get(store) {
                    None => anyhow::bail!("{r} in provider `{name}` ({}) names no declared provider", entry.location),
                    Some(s) if !matches!(s.config.kind(), "vault" | "aws") => {
                        anyhow::bail!(
                            "{r} in provider `{name}` ({}): `{store}` is a `{}` provider, which holds no secrets to read",
                            entry.location,
                            s.config.kind()
                        )
                    }
                    Some(_) if !needed.contains(store) => {
                        more.insert(store.to_string());
                    }
                    Some(_) => {}
                }
            }
        }
        if more.is_empty() {
            break;
        }
        needed.extend(more);
    }
    // Order: a provider after the stores it reads its own credentials from.
    let mut order: Vec<String> = vec![];
    while order.len() < needed.len() {
        let before = order.len();
        for name in &needed {
            if order.contains(name) {
                continue;
            }
            let cfg = &playbook.providers[name].config;
            if store_refs(cfg).iter().all(|(_, s)| order.iter().any(|o| o == s)) {
                order.push(name.clone());
            }
        }
        if order.len() == before {
            let rest: Vec<&String> = needed.iter().filter(|n| !order.contains(n)).collect();
            anyhow::bail!("providers read their credentials from each other in a cycle: {rest:?}");
        }
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
    let mut out = Providers::default();
    let mut failed: BTreeMap<String, String> = BTreeMap::new();
    let mut pending: Vec<&String> = needed.iter().collect();
    // Stores first, as `connect` orders them; a provider whose store failed fails too.
    while !pending.is_empty() {
        let before = pending.len();
        let mut next = vec![];
        for name in pending {
            let Some(entry) = playbook.providers.get(name) else {
                failed.insert(name.clone(), format!("provider `{name}` is not declared"));
                continue;
            };
            let stores: Vec<&str> = store_refs(&entry.config).into_iter().map(|(_, s)| s).collect();
            if let Some(bad) = stores.iter().find(|s| failed.contains_key(**s) || !playbook.providers.contains_key(**s)) {
                failed.insert(name.clone(), format!("its store provider `{bad}` could not be connected"));
            } else if stores.iter().all(|s| out.map.contains_key(*s)) {
                if let Err(e) = connect_one(playbook, name, &mut out).await {
                    failed.insert(name.clone(), format!("{e:#}"));
                }
            } else if stores.iter().all(|s| needed.contains(*s)) {
                next.push(name);
            } else {
                failed.insert(name.clone(), "reads its credentials from a store provider that is not connected".into());
            }
        }
        if next.len() == before {
            for n in next {
                failed.insert(n.clone(), "providers read their credentials from each other in a cycle".into());
            }
            break;
        }
        pending = next;
    }
    (out, failed)
}

async fn connect_one(playbook: &Playbook, name: &String, out: &mut Providers) -> Result<()> {
    {
        let entry = &playbook.providers[name];
        // Read this provider's store references from the stores connected before it.
        let mut from_stores: Vec<(SecretRef, SecretString)> = vec![];
        for (r, store_name) in store_refs(&entry.config) {
            let SecretRef::Store { path, field, .. } = r else { continue };
            let kind = playbook.providers[store_name].config.kind();
            let loc = store_location(kind, store_name, path, field);
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
        match &entry.config {
            ProviderConfig::Vault(cfg) => {
                let p = VaultProvider::connect(name, cfg, &resolve)
                    .await
                    .with_context(|| format!("connecting to provider `{name}` (kind vault, {})", entry.location))?;
                if let Err(e) = p.check_login().await {
                    let what = if e.is_temporary() { "cannot be reached" } else { "refused keysweep's own login" };
                    anyhow::bail!("connecting to provider `{name}` ({}): it {what}: {e}", entry.location);
                }
                let p = Arc::new(p);
                out.vault.insert(name.clone(), p.clone());
                out.map.insert(name.clone(), p);
            }
            ProviderConfig::Aws(cfg) => {
                let p = AwsProvider::connect(name, cfg)
                    .await
                    .with_context(|| format!("connecting to provider `{name}` (kind aws, {})", entry.location))?;
                if let Err(e) = p.check_login().await {
                    let what = if e.is_temporary() { "cannot be reached" } else { "refused keysweep's own credentials" };
                    anyhow::bail!("connecting to provider `{name}` ({}): it {what}: {e}", entry.location);
                }
                let p = Arc::new(p);
                out.aws.insert(name.clone(), p.clone());
                out.map.insert(name.clone(), p);
            }
            // Database and directory providers log in as their admin when they connect.
            ProviderConfig::Postgres(cfg) => {
                let p = crate::providers::postgres::PostgresProvider::connect(name, cfg, &resolve).await;
                out.map.insert(name.clone(), Arc::new(p.map_err(|e| connect_error(name, &entry.location, e))?));
            }
            ProviderConfig::Mysql(cfg) => {
                let p = crate::providers::mysql::MysqlProvider::connect(name, cfg, &resolve).await;
                out.map.insert(name.clone(), Arc::new(p.map_err(|e| connect_error(name, &entry.location, e))?));
            }
            ProviderConfig::Redis(cfg) => {
                let p = crate::providers::redis::RedisProvider::connect(name, cfg, &resolve).await;
                out.map.insert(name.clone(), Arc::new(p.map_err(|e| connect_error(name, &entry.location, e))?));
            }
            ProviderConfig::Ldap(cfg) => {
                let p = crate::providers::ldap::LdapProvider::connect(name, cfg, &resolve).await;
                out.map.insert(name.clone(), Arc::new(p.map_err(|e| connect_error(name, &entry.location, e))?));
            }
        }
    }
    Ok(())
}
