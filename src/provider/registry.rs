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

/// Resolves a secret reference (`${env:VAR}`) to its value.
pub fn resolve_secret(r: &SecretRef) -> Result<SecretString, ProviderError> {
    match r {
        SecretRef::Env(var) => std::env::var(var).map(SecretString::from).map_err(|_| {
            ProviderError::new(ErrorKind::Config, "resolve_secret", format!("environment variable `{var}` is not set"))
        }),
    }
}

/// The connected providers of one run, by name.
#[derive(Clone, Default)]
pub struct Providers {
    map: BTreeMap<String, Arc<dyn Provider>>,
    vault: BTreeMap<String, Arc<VaultProvider>>,
    aws: BTreeMap<String, Arc<AwsProvider>>,
}

impl Providers {
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

/// Connects (and logs in to) every provider named in `needed`.
pub async fn connect(playbook: &Playbook, needed: &BTreeSet<String>) -> Result<Providers> {
    let mut out = Providers::default();
    for name in needed {
        let entry = playbook.providers.get(name).with_context(|| format!("provider `{name}` is not declared"))?;
        match &entry.config {
            ProviderConfig::Vault(cfg) => {
                let p = VaultProvider::connect(name, cfg, &resolve_secret)
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
        }
    }
    Ok(out)
}
