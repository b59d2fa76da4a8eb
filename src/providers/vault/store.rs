//! KV v2 as a delivery store.
//!
//! KV v2 has no version labels, so a staged value lives beside the real one,
//! at `<mount>/data/<pending_prefix>/<path>`, tagged with the run's nonce.
//! Promotion writes it as a new version of `<mount>/data/<path>` with
//! check-and-set on the version it read (so a concurrent writer is never
//! overwritten), then deletes the pending entry. Each half is idempotent: the
//! current value carries the nonce, so a resumed promotion can tell it
//! already happened. Other fields of the secret are kept.

use std::collections::BTreeMap;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::http::list_method;
use super::{VaultProvider, NONCE_KEY};
use crate::playbook::StoreLocation;
use crate::provider::{ErrorKind, InventoryItem, ProviderError, Store, StoredValue};
use crate::secret::{Delivered, ExposeSecret, SecretString};

const ROTATED_AT_KEY: &str = "keysweep_rotated_at";

/// Splits KV data into the secret field and the public ones.
fn to_delivered(data: &Map<String, Value>, field: &str) -> Option<Delivered> {
    let value = data.get(field)?.as_str()?;
    let fields: BTreeMap<String, String> =
        data.iter().filter(|(k, _)| k.as_str() != field).filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string()))).collect();
    Some(Delivered { value: SecretString::from(value.to_string()), fields })
}

impl VaultProvider {
    fn pending_path(&self, loc: &StoreLocation) -> String {
        format!("{}/data/{}/{}", loc.mount, self.pending_prefix, loc.path)
    }

    async fn read_data(&self, path: &str) -> Result<Option<(Map<String, Value>, u64)>, ProviderError> {
        let r = self.http.admin("vault.kv.read", Method::GET, path, None).await?;
        if r.status == 404 {
            return Ok(None);
        }
        if !r.ok() {
            return Err(ProviderError::new(ErrorKind::Other, "vault.kv.read", format!("{path}: {}", r.describe())));
        }
        let version = r.body["data"]["metadata"]["version"].as_u64().unwrap_or(0);
        match r.body["data"]["data"].as_object() {
            Some(d) => Ok(Some((d.clone(), version))),
            None => Ok(None), // deleted or destroyed version
        }
    }

    async fn current_version(&self, loc: &StoreLocation) -> Result<u64, ProviderError> {
        let r = self.http.admin("vault.kv.metadata", Method::GET, &format!("{}/metadata/{}", loc.mount, loc.path), None).await?;
        match r.status {
            404 => Ok(0),
            s if (200..300).contains(&s) => Ok(r.body["data"]["current_version"].as_u64().unwrap_or(0)),
            _ => Err(ProviderError::new(ErrorKind::Other, "vault.kv.metadata", r.describe())),
        }
    }

    pub(super) async fn kv_inventory(&self) -> Result<Vec<InventoryItem>, ProviderError> {
        let mounts = self.http.admin_ok("vault.list_mounts", Method::GET, "sys/mounts", None).await?;
        let mut items = vec![];
        let Some(m) = mounts.body["data"].as_object() else { return Ok(items) };
        for (path, info) in m {
            if info["type"] != "kv" || info["options"]["version"] != "2" {
                continue;
            }
            let mount = path.trim_end_matches('/').to_string();
            let mut queue = vec![String::new()];
            while let Some(dir) = queue.pop() {
                let r = self.http.admin("vault.kv.list", list_method(), &format!("{mount}/metadata/{dir}"), None).await?;
                for key in r.body["data"]["keys"].as_array().into_iter().flatten().filter_map(|v| v.as_str()) {
                    let full = format!("{dir}{key}");
                    if key.ends_with('/') {
                        if full.trim_end_matches('/') != self.pending_prefix {
                            queue.push(full);
                        }
                        continue;
                    }
                    let md = self.http.admin("vault.kv.metadata", Method::GET, &format!("{mount}/metadata/{full}"), None).await?;
                    let d = &md.body["data"];
                    let details =
                        BTreeMap::from([("mount".to_string(), mount.clone()), ("current_version".to_string(), d["current_version"].to_string())]);
                    items.push(InventoryItem {
                        kind: "vault_kv_secret".into(),
                        id: full,
                        created: d["created_time"].as_str().map(str::to_string),
                        // The current version's creation, when it is still held.
                        rotated: d["versions"][d["current_version"].to_string()]["created_time"]
                            .as_str()
                            .or(d["updated_time"].as_str())
                            .map(str::to_string),
                        last_used: None,
                        usage_tracked: false,
                        details: details
                            .into_iter()
                            .chain([("updated_time".to_string(), d["updated_time"].as_str().unwrap_or_default().to_string())])
                            .collect(),
                    });
                }
            }
        }
        Ok(items)
    }
}

#[async_trait]
impl Store for VaultProvider {
    async fn read_current(&self, loc: &StoreLocation) -> Result<Option<StoredValue>, ProviderError> {
        let Some((data, version)) = self.read_data(&format!("{}/data/{}", loc.mount, loc.path)).await? else { return Ok(None) };
        Ok(to_delivered(&data, &loc.field).map(|delivered| StoredValue { delivered, version: version.to_string() }))
    }

    async fn read_version(&self, loc: &StoreLocation, version: &str) -> Result<Option<Delivered>, ProviderError> {
        let Some((data, _)) = self.read_data(&format!("{}/data/{}?version={version}", loc.mount, loc.path)).await? else { return Ok(None) };
        Ok(to_delivered(&data, &loc.field))
    }

    async fn read_pending(&self, loc: &StoreLocation) -> Result<Option<(Delivered, String)>, ProviderError> {
        let Some((data, _)) = self.read_data(&self.pending_path(loc)).await? else { return Ok(None) };
        let nonce = data.get(NONCE_KEY).and_then(|v| v.as_str()).unwrap_or_default().to_string();
        Ok(to_delivered(&data, &loc.field).map(|mut d| {
            d.fields.remove(NONCE_KEY);
            (d, nonce)
        }))
    }

    async fn stage(&self, loc: &StoreLocation, value: &Delivered, nonce: &str) -> Result<(), ProviderError> {
        let mut data = Map::new();
        for (k, v) in &value.fields {
            data.insert(k.clone(), Value::String(v.clone()));
        }
        data.insert(loc.field.clone(), Value::String(value.value.expose_secret().to_string()));
        data.insert(NONCE_KEY.into(), Value::String(nonce.to_string()));
        self.http.admin_ok("vault.kv.stage", Method::POST, &self.pending_path(loc), Some(json!({ "data": data }))).await.map(|_| ())
    }

    async fn promote(&self, loc: &StoreLocation, nonce: &str) -> Result<String, ProviderError> {
        let current_path = format!("{}/data/{}", loc.mount, loc.path);
        let current = self.read_data(&current_path).await?;
        if let Some((data, version)) = &current {
            if data.get(NONCE_KEY).and_then(|v| v.as_str()) == Some(nonce) {
                // Already promoted by an interrupted attempt: finish by clearing pending.
                self.discard_pending(loc).await?;
                return Ok(version.to_string());
            }
        }
        let Some((pending, pending_nonce)) = self.read_pending(loc).await? else {
            return Err(ProviderError::new(ErrorKind::NotFound, "vault.kv.promote", format!("no pending value at {loc}")));
        };
        if pending_nonce != nonce {
            return Err(ProviderError::new(
                ErrorKind::Conflict,
                "vault.kv.promote",
                format!("pending value at {loc} belongs to another run ({pending_nonce})"),
            ));
        }
        // Keep the secret's other fields; overlay ours.
        let mut data = current.as_ref().map(|(d, _)| d.clone()).unwrap_or_default();
        for (k, v) in &pending.fields {
            data.insert(k.clone(), Value::String(v.clone()));
        }
        data.insert(loc.field.clone(), Value::String(pending.value.expose_secret().to_string()));
        data.insert(NONCE_KEY.into(), Value::String(nonce.to_string()));
        data.insert(ROTATED_AT_KEY.into(), Value::String(chrono::Utc::now().to_rfc3339()));
        // cas on the version we read: 0 means "must not exist yet". A deleted
        // latest version reads as None but still has a version number.
        let cas = match &current {
            Some((_, v)) => *v,
            None => self.current_version(loc).await?,
        };
        let r = self.http.admin("vault.kv.promote", Method::POST, &current_path, Some(json!({ "options": { "cas": cas }, "data": data }))).await?;
        if !r.ok() {
            return Err(ProviderError::new(ErrorKind::Conflict, "vault.kv.promote", format!("{loc}: {}", r.describe())));
        }
        let version = r.body["data"]["version"].as_u64().unwrap_or(0).to_string();
        self.discard_pending(loc).await?;
        Ok(version)
    }

    async fn discard_pending(&self, loc: &StoreLocation) -> Result<(), ProviderError> {
        let path = format!("{}/metadata/{}/{}", loc.mount, self.pending_prefix, loc.path);
        self.http.admin_ok("vault.kv.discard_pending", Method::DELETE, &path, None).await.map(|_| ())
    }

    async fn list_pending(&self, mount: &str) -> Result<Vec<String>, ProviderError> {
        let mut out = vec![];
        let mut queue = vec![format!("{}/", self.pending_prefix)];
        while let Some(dir) = queue.pop() {
            let r = self.http.admin("vault.kv.list", list_method(), &format!("{mount}/metadata/{dir}"), None).await?;
            if r.status == 404 {
                continue;
            }
            for key in r.body["data"]["keys"].as_array().into_iter().flatten().filter_map(|v| v.as_str()) {
                let full = format!("{dir}{key}");
                if key.ends_with('/') {
                    queue.push(full);
                } else {
                    out.push(full.trim_start_matches(&format!("{}/", self.pending_prefix)).to_string());
                }
            }
        }
        Ok(out)
    }
}
