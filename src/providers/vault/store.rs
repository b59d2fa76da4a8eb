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
use crate::provider::{Claim, ClaimPhase, ErrorKind, InventoryItem, ProviderError, Store, StoredValue};
use crate::secret::{Delivered, ExposeSecret, SecretString};

const ROTATED_AT_KEY: &str = "keysweep_rotated_at";
/// The claim (lease and rotation record) kept in the pending entry, as JSON.
const CLAIM_KEY: &str = "keysweep_claim";

/// The claim a pending entry records. An entry staged before claims existed
/// (nonce, no claim) reads as an abandoned claim in phase `staged`.
fn claim_of(data: &Map<String, Value>) -> Option<Claim> {
    if let Some(c) = data.get(CLAIM_KEY).and_then(|v| v.as_str()).and_then(|s| serde_json::from_str::<Claim>(s).ok()) {
        return Some(c);
    }
    let nonce = data.get(NONCE_KEY)?.as_str()?.to_string();
    Some(Claim {
        nonce,
        holder: "an earlier keysweep run".into(),
        lease_until: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
        phase: ClaimPhase::Staged,
        old: Default::default(),
        old_version: None,
        host: String::new(),
        pid: 0,
        since: None,
    })
}

fn cas_mismatch(r: &super::http::Resp) -> bool {
    r.status == 400 && r.error_contains("check-and-set")
}

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
        // Vault's own 404 (no secret, or a deleted/destroyed version) is
        // absent; a 2xx must be a whole KV answer or nothing is built from it.
        self.http.admin("vault.kv.read", Method::GET, path, None).await?.kv_read("vault.kv.read", path)
    }

    /// The pending entry's data (a staged value and/or a claim) and the
    /// version to check-and-set against (0: the slot has never been written,
    /// or its metadata was deleted).
    ///
    /// KV v2 does not write a version and its metadata atomically: a read
    /// racing another run's write can find the metadata at version N and no
    /// data for it. Taking that for "empty" would let a check-and-set on N
    /// overwrite the other run's claim, so an entry is empty only when its
    /// metadata says so (no version, or the current one deleted/destroyed);
    /// a torn read is read again.
    async fn pending_entry(&self, loc: &StoreLocation) -> Result<(Option<Map<String, Value>>, u64), ProviderError> {
        let meta_path = format!("{}/metadata/{}/{}", loc.mount, self.pending_prefix, loc.path);
        for attempt in 0..8u64 {
            if let Some((d, v)) = self.read_data(&self.pending_path(loc)).await? {
                return Ok((Some(d), v));
            }
            let r = self.http.admin("vault.kv.metadata", Method::GET, &meta_path, None).await?;
            let d = &r.body["data"];
            let cv = match r.status {
                _ if r.is_vendor_not_found() => return Ok((None, 0)),
                s if (200..300).contains(&s) && d["current_version"].is_u64() => d["current_version"].as_u64().unwrap_or(0),
                _ => return Err(ProviderError::new(ErrorKind::Unavailable, "vault.kv.metadata", format!("{meta_path}: {}", r.describe()))),
            };
            let v = &d["versions"][cv.to_string()];
            let gone = cv == 0 || v["destroyed"].as_bool() == Some(true) || v["deletion_time"].as_str().is_some_and(|t| !t.is_empty());
            if gone {
                return Ok((None, cv));
            }
            tokio::time::sleep(std::time::Duration::from_millis(10 * (attempt + 1))).await;
        }
        Err(ProviderError::new(
            ErrorKind::Unavailable,
            "vault.kv.read",
            format!("{loc}: the pending entry's metadata names a version its data read does not return (a write in progress?)"),
        ))
    }

    /// After promotion: the staged value is no longer needed, but a claim
    /// stays (phase `promoted`, claim-only) until the run releases it, so a
    /// run that dies before retiring the old secret leaves the record a later
    /// run finishes from. An entry with no claim is simply dropped.
    async fn clear_promoted(&self, loc: &StoreLocation, nonce: &str) -> Result<(), ProviderError> {
        let (entry, cas) = self.pending_entry(loc).await?;
        let Some(entry) = entry else { return Ok(()) };
        match entry.get(CLAIM_KEY).and_then(|_| claim_of(&entry)) {
            Some(mut c) if c.nonce == nonce => {
                if c.phase == ClaimPhase::Promoted && !entry.contains_key(&loc.field) {
                    return Ok(());
                }
                c.phase = ClaimPhase::Promoted;
                let data = json!({ NONCE_KEY: nonce, CLAIM_KEY: serde_json::to_string(&c).unwrap_or_default() });
                let r = self
                    .http
                    .admin("vault.kv.claim", Method::POST, &self.pending_path(loc), Some(json!({ "options": { "cas": cas }, "data": data })))
                    .await?;
                if !r.ok() {
                    return Err(ProviderError::new(ErrorKind::Conflict, "vault.kv.claim", format!("{loc}: {}", r.describe())));
                }
                Ok(())
            }
            Some(_) => Ok(()), // someone else's claim: never touched
            None => self.discard_pending(loc).await,
        }
    }

    async fn current_version(&self, loc: &StoreLocation) -> Result<u64, ProviderError> {
        let path = format!("{}/metadata/{}", loc.mount, loc.path);
        self.http.admin("vault.kv.metadata", Method::GET, &path, None).await?.kv_current_version("vault.kv.metadata", &path)
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
            d.fields.remove(CLAIM_KEY);
            (d, nonce)
        }))
    }

    async fn stage(&self, loc: &StoreLocation, value: &Delivered, nonce: &str) -> Result<(), ProviderError> {
        // Check-and-set on the pending entry: a value is staged only into a
        // slot that is free or claimed under this nonce, never over another
        // run's claim (the cross-machine lease).
        let (entry, cas) = self.pending_entry(loc).await?;
        let mut claim = entry.as_ref().and_then(claim_of);
        if let Some(c) = &claim {
            if c.nonce != nonce && entry.as_ref().is_some_and(|d| d.contains_key(CLAIM_KEY)) {
                return Err(ProviderError::new(
                    ErrorKind::Conflict,
                    "vault.kv.stage",
                    format!("{loc} is claimed by {} (nonce {})", c.holder, c.nonce),
                ));
            }
        }
        let mut data = Map::new();
        for (k, v) in &value.fields {
            data.insert(k.clone(), Value::String(v.clone()));
        }
        data.insert(loc.field.clone(), Value::String(value.value.expose_secret().to_string()));
        data.insert(NONCE_KEY.into(), Value::String(nonce.to_string()));
        if let Some(c) = claim.as_mut().filter(|c| c.nonce == nonce && entry.as_ref().is_some_and(|d| d.contains_key(CLAIM_KEY))) {
            c.phase = ClaimPhase::Staged;
            data.insert(CLAIM_KEY.into(), Value::String(serde_json::to_string(c).unwrap_or_default()));
        }
        let r = self
            .http
            .admin("vault.kv.stage", Method::POST, &self.pending_path(loc), Some(json!({ "options": { "cas": cas }, "data": data })))
            .await?;
        tracing::debug!(store = %loc, nonce, cas, claim = ?claim.as_ref().map(|c| &c.nonce), status = r.status, "stage");
        drop(data);
        if cas_mismatch(&r) {
            return Err(ProviderError::new(ErrorKind::Conflict, "vault.kv.stage", format!("{loc}: another run wrote the pending entry meanwhile")));
        }
        if !r.ok() {
            return Err(ProviderError::new(ErrorKind::Other, "vault.kv.stage", format!("{loc}: {}", r.describe())));
        }
        Ok(())
    }

    async fn promote(&self, loc: &StoreLocation, nonce: &str) -> Result<String, ProviderError> {
        let current_path = format!("{}/data/{}", loc.mount, loc.path);
        let current = self.read_data(&current_path).await?;
        if let Some((data, version)) = &current {
            if data.get(NONCE_KEY).and_then(|v| v.as_str()) == Some(nonce) {
                // Already promoted by an interrupted attempt: finish by clearing pending.
                self.clear_promoted(loc, nonce).await?;
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
        // The write took effect; its answer must still say which version it made.
        let version = match r.body["data"]["version"].as_u64() {
            Some(v) => v.to_string(),
            None => self.current_version(loc).await?.to_string(),
        };
        crate::journal::crash_point("promoted");
        self.clear_promoted(loc, nonce).await?;
        Ok(version)
    }

    async fn discard_pending(&self, loc: &StoreLocation) -> Result<(), ProviderError> {
        tracing::debug!(store = %loc, "discard_pending");
        let path = format!("{}/metadata/{}/{}", loc.mount, self.pending_prefix, loc.path);
        self.http.admin_ok("vault.kv.discard_pending", Method::DELETE, &path, None).await.map(|_| ())
    }

    fn supports_claims(&self) -> bool {
        true
    }

    async fn read_claim(&self, loc: &StoreLocation) -> Result<Option<Claim>, ProviderError> {
        let (entry, _) = self.pending_entry(loc).await?;
        Ok(entry.as_ref().and_then(claim_of))
    }

    async fn write_claim(&self, loc: &StoreLocation, claim: &Claim, replacing: Option<&str>) -> Result<Option<Claim>, ProviderError> {
        let (entry, cas) = self.pending_entry(loc).await?;
        let existing = entry.as_ref().and_then(claim_of);
        match &existing {
            None => {}
            Some(e) if e.nonce == claim.nonce => {}
            // Taking over an abandoned claim: what it staged stays, under its
            // own nonce, for the new holder to settle.
            Some(e) if Some(e.nonce.as_str()) == replacing => {}
            Some(e) => return Ok(Some(e.clone())),
        }
        let mut data = entry.unwrap_or_default();
        data.insert(CLAIM_KEY.into(), Value::String(serde_json::to_string(claim).unwrap_or_default()));
        let r = self
            .http
            .admin("vault.kv.claim", Method::POST, &self.pending_path(loc), Some(json!({ "options": { "cas": cas }, "data": data })))
            .await?;
        tracing::debug!(store = %loc, nonce = %claim.nonce, cas, existing = ?existing.as_ref().map(|e| &e.nonce), status = r.status, "write_claim");
        drop(data);
        if cas_mismatch(&r) {
            // Someone wrote the slot between our read and our write.
            let (entry, _) = self.pending_entry(loc).await?;
            return match entry.as_ref().and_then(claim_of) {
                Some(c) if c.nonce == claim.nonce => Ok(None),
                Some(c) => Ok(Some(c)),
                None => Err(ProviderError::new(
                    ErrorKind::Unavailable,
                    "vault.kv.claim",
                    format!("{loc}: the pending entry changed meanwhile; try again"),
                )),
            };
        }
        if !r.ok() {
            return Err(ProviderError::new(ErrorKind::Other, "vault.kv.claim", format!("{loc}: {}", r.describe())));
        }
        Ok(None)
    }

    async fn release(&self, loc: &StoreLocation, nonce: &str) -> Result<(), ProviderError> {
        let (entry, _) = self.pending_entry(loc).await?;
        match entry.as_ref().and_then(claim_of) {
            Some(c) if c.nonce == nonce => {
                tracing::debug!(store = %loc, nonce, "release");
                self.discard_pending(loc).await
            }
            _ => Ok(()),
        }
    }

    async fn list_pending(&self, mount: &str) -> Result<Vec<String>, ProviderError> {
        let mut out = vec![];
        let mut queue = vec![format!("{}/", self.pending_prefix)];
        while let Some(dir) = queue.pop() {
            let r = self.http.admin("vault.kv.list", list_method(), &format!("{mount}/metadata/{dir}"), None).await?;
            if r.is_vendor_not_found() {
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
