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
use crate::provider::seen::{self, View};
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

/// A KV v2 path as this lifecycle knows it: its data at a version, or
/// nothing, with the version a check-and-set write creating it must name.
enum Kv {
    Data(Map<String, Value>, u64),
    Absent(u64),
}

impl Kv {
    fn split(self) -> (Option<Map<String, Value>>, u64) {
        match self {
            Kv::Data(d, v) => (Some(d), v),
            Kv::Absent(v) => (None, v),
        }
    }
}

/// Whether `entry` holds exactly the claim serialized as `claim` (our own
/// write, whose answer may have been lost).
fn holds_claim(entry: Option<&Map<String, Value>>, claim: &str) -> bool {
    entry.and_then(|e| e.get(CLAIM_KEY)).and_then(|v| v.as_str()) == Some(claim)
}

impl VaultProvider {
    fn pending_path(&self, loc: &StoreLocation) -> String {
        format!("{}/data/{}/{}", loc.mount, self.pending_prefix, loc.path)
    }

    /// The key of an API path in the lifecycle's memo (`seen`).
    pub(super) fn memo_key(&self, path: &str) -> String {
        format!("vault|{}|{}", self.name, path)
    }

    /// Reads a KV v2 path: what this lifecycle already read or wrote there
    /// (see `crate::provider::seen`), else one GET. Vault's own 404 is
    /// absent, with the version a deleted entry's 404 names (else 0: a
    /// check-and-set write on it fails if that was wrong, and the writer
    /// reads again); a 2xx must be a whole KV answer or nothing is built
    /// from it.
    async fn kv_get(&self, path: &str) -> Result<Kv, ProviderError> {
        let remembered = seen::get(&self.memo_key(path), |v| match v {
            View::Held { version, body, .. } => {
                serde_json::from_str::<Map<String, Value>>(body).ok().zip(version.parse::<u64>().ok()).map(|(d, v)| Kv::Data(d, v))
            }
            View::Absent { version } => version.parse::<u64>().ok().map(Kv::Absent),
        })
        .flatten();
        if let Some(kv) = remembered {
            return Ok(kv);
        }
        let r = self.http.admin("vault.kv.read", Method::GET, path, None).await?;
        let kv = match r.kv_read("vault.kv.read", path)? {
            Some((d, v)) => Kv::Data(d, v),
            None => Kv::Absent(r.body["data"]["metadata"]["version"].as_u64().unwrap_or(0)),
        };
        self.remember(path, &kv);
        Ok(kv)
    }

    /// Notes what `path` holds. A version's data never changes, so a read of
    /// the current value is also remembered as `path?version=N`.
    fn remember(&self, path: &str, kv: &Kv) {
        match kv {
            Kv::Data(d, v) => {
                let body = serde_json::to_string(d).unwrap_or_default();
                if !path.contains('?') {
                    seen::put(&self.memo_key(&format!("{path}?version={v}")), v.to_string(), vec![], body.clone());
                }
                seen::put(&self.memo_key(path), v.to_string(), vec![], body);
            }
            Kv::Absent(v) => seen::absent(&self.memo_key(path), v.to_string()),
        }
    }

    /// A check-and-set write of `data` at `path`. What it did updates the
    /// memo: written, the data at the version Vault answers; anything else
    /// (refused, an error, an answer without the version) forgets the path,
    /// so the next read goes to Vault.
    async fn kv_write(&self, op: &'static str, path: &str, data: Map<String, Value>, cas: u64) -> Result<super::http::Resp, ProviderError> {
        let remembered = serde_json::to_string(&data).unwrap_or_default();
        let r = self.http.admin(op, Method::POST, path, Some(json!({ "options": { "cas": cas }, "data": data }))).await;
        match r.as_ref().ok().filter(|r| r.ok()).and_then(|r| r.body["data"]["version"].as_u64()) {
            Some(v) => {
                seen::put(&self.memo_key(&format!("{path}?version={v}")), v.to_string(), vec![], remembered.clone());
                seen::put(&self.memo_key(path), v.to_string(), vec![], remembered);
            }
            None => {
                drop(secrecy::SecretBox::new(Box::new(remembered)));
                seen::forget(&self.memo_key(path));
            }
        }
        r
    }

    async fn read_data(&self, path: &str) -> Result<Option<(Map<String, Value>, u64)>, ProviderError> {
        Ok(match self.kv_get(path).await? {
            Kv::Data(d, v) => Some((d, v)),
            Kv::Absent(_) => None,
        })
    }

    /// The pending entry's data (a staged value and/or a claim) and the
    /// version to check-and-set against (0: the slot has never been written,
    /// or its metadata was deleted), as this lifecycle last saw or wrote it,
    /// else from one read. Every write built from it is a check-and-set, so
    /// a stale or torn view makes the write fail, and the writer then reads
    /// it exactly ([`Self::pending_entry_exact`]).
    async fn pending_entry(&self, loc: &StoreLocation) -> Result<(Option<Map<String, Value>>, u64), ProviderError> {
        Ok(self.kv_get(&self.pending_path(loc)).await?.split())
    }

    /// The pending entry, read from Vault whatever the memo holds.
    ///
    /// KV v2 does not write a version and its metadata atomically: a read
    /// racing another run's write can find the metadata at version N and no
    /// data for it. Taking that for "empty" would let a check-and-set on N
    /// overwrite the other run's claim, so an entry is empty only when its
    /// metadata says so (no version, or the current one deleted/destroyed);
    /// a torn read is read again.
    async fn pending_entry_exact(&self, loc: &StoreLocation) -> Result<(Option<Map<String, Value>>, u64), ProviderError> {
        let path = self.pending_path(loc);
        let meta_path = format!("{}/metadata/{}/{}", loc.mount, self.pending_prefix, loc.path);
        for attempt in 0..8u64 {
            if let Kv::Data(d, v) = seen::fresh(self.kv_get(&path)).await? {
                return Ok((Some(d), v));
            }
            let r = self.http.admin("vault.kv.metadata", Method::GET, &meta_path, None).await?;
            let d = &r.body["data"];
            let cv = match r.status {
                _ if r.is_vendor_not_found() => 0,
                s if (200..300).contains(&s) && d["current_version"].is_u64() => d["current_version"].as_u64().unwrap_or(0),
                _ => return Err(ProviderError::new(ErrorKind::Unavailable, "vault.kv.metadata", format!("{meta_path}: {}", r.describe()))),
            };
            let v = &d["versions"][cv.to_string()];
            let gone = cv == 0 || v["destroyed"].as_bool() == Some(true) || v["deletion_time"].as_str().is_some_and(|t| !t.is_empty());
            if gone {
                self.remember(&path, &Kv::Absent(cv));
                return Ok((None, cv));
            }
            tokio::time::sleep(std::time::Duration::from_millis(10 * (attempt + 1))).await;
        }
        seen::forget(&self.memo_key(&path));
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
        for exact in [false, true] {
            let (entry, cas) = if exact { self.pending_entry_exact(loc).await? } else { self.pending_entry(loc).await? };
            let Some(entry) = entry else { return Ok(()) };
            let mut c = match entry.get(CLAIM_KEY).and_then(|_| claim_of(&entry)) {
                Some(c) if c.nonce == nonce => c,
                Some(_) => return Ok(()), // someone else's claim: never touched
                None => return self.discard_pending(loc).await,
            };
            if c.phase == ClaimPhase::Promoted && !entry.contains_key(&loc.field) {
                return Ok(());
            }
            c.phase = ClaimPhase::Promoted;
            let mut data = Map::new();
            data.insert(NONCE_KEY.into(), Value::String(nonce.to_string()));
            data.insert(CLAIM_KEY.into(), Value::String(serde_json::to_string(&c).unwrap_or_default()));
            let r = self.kv_write("vault.kv.claim", &self.pending_path(loc), data, cas).await?;
            if r.ok() {
                return Ok(());
            }
            if !cas_mismatch(&r) || exact {
                return Err(ProviderError::new(ErrorKind::Conflict, "vault.kv.claim", format!("{loc}: {}", r.describe())));
            }
        }
        Ok(())
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

impl VaultProvider {
    /// The data a staged value is written as: its public fields, the value,
    /// the nonce and, when given, the claim (serialized).
    fn staged_data(loc: &StoreLocation, value: &Delivered, nonce: &str, claim: Option<&str>) -> Map<String, Value> {
        let mut data = Map::new();
        for (k, v) in &value.fields {
            data.insert(k.clone(), Value::String(v.clone()));
        }
        data.insert(loc.field.clone(), Value::String(value.value.expose_secret().to_string()));
        data.insert(NONCE_KEY.into(), Value::String(nonce.to_string()));
        if let Some(c) = claim {
            data.insert(CLAIM_KEY.into(), Value::String(c.to_string()));
        }
        data
    }

    /// Whether `entry` is the staged value `value` under `nonce` (our own
    /// write, whose answer may have been lost).
    fn holds_staged(entry: Option<&Map<String, Value>>, loc: &StoreLocation, value: &Delivered, nonce: &str) -> bool {
        entry.is_some_and(|e| {
            e.get(NONCE_KEY).and_then(|v| v.as_str()) == Some(nonce)
                && e.get(&loc.field).and_then(|v| v.as_str()) == Some(value.value.expose_secret())
        })
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
        // run's claim (the cross-machine lease). The entry is the one this
        // lifecycle last saw; if the check-and-set refuses it, it is read
        // again from Vault, once.
        for exact in [false, true] {
            let (entry, cas) = if exact { self.pending_entry_exact(loc).await? } else { self.pending_entry(loc).await? };
            if exact && Self::holds_staged(entry.as_ref(), loc, value, nonce) {
                return Ok(()); // our write took effect; its answer was lost
            }
            let mut claim = entry.as_ref().and_then(claim_of);
            let claimed = entry.as_ref().is_some_and(|d| d.contains_key(CLAIM_KEY));
            if let Some(c) = &claim {
                if c.nonce != nonce && claimed {
                    return Err(ProviderError::new(
                        ErrorKind::Conflict,
                        "vault.kv.stage",
                        format!("{loc} is claimed by {} (nonce {})", c.holder, c.nonce),
                    ));
                }
            }
            let claim_json = claim.as_mut().filter(|c| c.nonce == nonce && claimed).map(|c| {
                c.phase = ClaimPhase::Staged;
                serde_json::to_string(c).unwrap_or_default()
            });
            let data = Self::staged_data(loc, value, nonce, claim_json.as_deref());
            let r = self.kv_write("vault.kv.stage", &self.pending_path(loc), data, cas).await?;
            tracing::debug!(store = %loc, nonce, cas, claim = ?claim.as_ref().map(|c| &c.nonce), status = r.status, "stage");
            if r.ok() {
                return Ok(());
            }
            if !cas_mismatch(&r) {
                return Err(ProviderError::new(ErrorKind::Other, "vault.kv.stage", format!("{loc}: {}", r.describe())));
            }
        }
        Err(ProviderError::new(ErrorKind::Conflict, "vault.kv.stage", format!("{loc}: another run wrote the pending entry meanwhile")))
    }

    async fn stage_claimed(&self, loc: &StoreLocation, value: &Delivered, nonce: &str, claim: &Claim) -> Result<Option<Claim>, ProviderError> {
        // The staged value and the claim in one check-and-set write: the slot
        // must be free (or this run's), as when the claim is written alone.
        let claim = Claim { phase: ClaimPhase::Staged, ..claim.clone() };
        let claim_json = serde_json::to_string(&claim).unwrap_or_default();
        for exact in [false, true] {
            let (entry, cas) = if exact { self.pending_entry_exact(loc).await? } else { self.pending_entry(loc).await? };
            if exact && holds_claim(entry.as_ref(), &claim_json) && Self::holds_staged(entry.as_ref(), loc, value, nonce) {
                return Ok(None); // our write took effect; its answer was lost
            }
            if let Some(other) = entry.as_ref().and_then(claim_of).filter(|c| c.nonce != nonce) {
                return Ok(Some(other));
            }
            if entry.as_ref().is_some_and(|e| e.contains_key(&loc.field)) {
                // A value is staged here already (ours, from an earlier write):
                // the caller stages with the claim written first.
                return Err(ProviderError::new(ErrorKind::Conflict, "vault.kv.stage", format!("{loc}: a value is staged here already")));
            }
            let data = Self::staged_data(loc, value, nonce, Some(&claim_json));
            let r = self.kv_write("vault.kv.stage", &self.pending_path(loc), data, cas).await?;
            tracing::debug!(store = %loc, nonce, cas, status = r.status, "stage with claim");
            if r.ok() {
                return Ok(None);
            }
            if !cas_mismatch(&r) {
                return Err(ProviderError::new(ErrorKind::Other, "vault.kv.stage", format!("{loc}: {}", r.describe())));
            }
        }
        match self.pending_entry_exact(loc).await?.0.as_ref().and_then(claim_of) {
            Some(c) if c.nonce != nonce => Ok(Some(c)),
            _ => Err(ProviderError::new(ErrorKind::Unavailable, "vault.kv.stage", format!("{loc}: the pending entry changed meanwhile; try again"))),
        }
    }

    async fn promote(&self, loc: &StoreLocation, nonce: &str) -> Result<String, ProviderError> {
        let current_path = format!("{}/data/{}", loc.mount, loc.path);
        // First from what this lifecycle read at `stage`: the write is a
        // check-and-set on that version, so if anyone wrote the secret
        // since, it is refused and the current value is read again (once).
        for exact in [false, true] {
            let current = if exact { seen::fresh(self.kv_get(&current_path)).await? } else { self.kv_get(&current_path).await? };
            if let Kv::Data(data, version) = &current {
                if data.get(NONCE_KEY).and_then(|v| v.as_str()) == Some(nonce) {
                    // Already promoted (an interrupted attempt, or a lost answer): finish by clearing pending.
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
            // cas on the version read: 0 means "must not exist yet". A deleted
            // latest version reads as absent but still has a version number.
            let (data, cas) = match current {
                Kv::Data(d, v) => (d, v),
                Kv::Absent(v) if !exact => (Map::new(), v),
                Kv::Absent(_) => (Map::new(), self.current_version(loc).await?),
            };
            // Keep the secret's other fields; overlay ours.
            let mut data = data;
            for (k, v) in &pending.fields {
                data.insert(k.clone(), Value::String(v.clone()));
            }
            data.insert(loc.field.clone(), Value::String(pending.value.expose_secret().to_string()));
            data.insert(NONCE_KEY.into(), Value::String(nonce.to_string()));
            data.insert(ROTATED_AT_KEY.into(), Value::String(chrono::Utc::now().to_rfc3339()));
            let r = self.kv_write("vault.kv.promote", &current_path, data, cas).await?;
            if !r.ok() {
                if cas_mismatch(&r) && !exact {
                    continue;
                }
                return Err(ProviderError::new(ErrorKind::Conflict, "vault.kv.promote", format!("{loc}: {}", r.describe())));
            }
            // The write took effect; its answer must still say which version it made.
            let version = match r.body["data"]["version"].as_u64() {
                Some(v) => v.to_string(),
                None => self.current_version(loc).await?.to_string(),
            };
            crate::journal::crash_point("promoted");
            self.clear_promoted(loc, nonce).await?;
            return Ok(version);
        }
        Err(ProviderError::new(ErrorKind::Conflict, "vault.kv.promote", format!("{loc}: the secret changed while it was promoted")))
    }

    async fn discard_pending(&self, loc: &StoreLocation) -> Result<(), ProviderError> {
        tracing::debug!(store = %loc, "discard_pending");
        let path = format!("{}/metadata/{}/{}", loc.mount, self.pending_prefix, loc.path);
        let r = self.http.admin_ok("vault.kv.discard_pending", Method::DELETE, &path, None).await;
        match &r {
            // Metadata gone: the slot is as never written.
            Ok(_) => self.remember(&self.pending_path(loc), &Kv::Absent(0)),
            Err(_) => seen::forget(&self.memo_key(&self.pending_path(loc))),
        }
        r.map(|_| ())
    }

    fn supports_claims(&self) -> bool {
        true
    }

    async fn read_claim(&self, loc: &StoreLocation) -> Result<Option<Claim>, ProviderError> {
        let (entry, _) = self.pending_entry(loc).await?;
        Ok(entry.as_ref().and_then(claim_of))
    }

    async fn write_claim(&self, loc: &StoreLocation, claim: &Claim, replacing: Option<&str>) -> Result<Option<Claim>, ProviderError> {
        let claim_json = serde_json::to_string(claim).unwrap_or_default();
        // First against the entry this lifecycle last saw; a refused
        // check-and-set reads it from Vault and decides again, once.
        for exact in [false, true] {
            let (entry, cas) = if exact { self.pending_entry_exact(loc).await? } else { self.pending_entry(loc).await? };
            if exact && holds_claim(entry.as_ref(), &claim_json) {
                return Ok(None); // our write took effect; its answer was lost
            }
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
            data.insert(CLAIM_KEY.into(), Value::String(claim_json.clone()));
            let r = self.kv_write("vault.kv.claim", &self.pending_path(loc), data, cas).await?;
            tracing::debug!(store = %loc, nonce = %claim.nonce, cas, existing = ?existing.as_ref().map(|e| &e.nonce), status = r.status, "write_claim");
            if r.ok() {
                return Ok(None);
            }
            if !cas_mismatch(&r) {
                return Err(ProviderError::new(ErrorKind::Other, "vault.kv.claim", format!("{loc}: {}", r.describe())));
            }
        }
        // Someone wrote the slot between our read and our write, twice.
        let (entry, _) = self.pending_entry_exact(loc).await?;
        match entry.as_ref().and_then(claim_of) {
            Some(c) if c.nonce == claim.nonce => Ok(None),
            Some(c) => Ok(Some(c)),
            None => {
                Err(ProviderError::new(ErrorKind::Unavailable, "vault.kv.claim", format!("{loc}: the pending entry changed meanwhile; try again")))
            }
        }
    }

    async fn release(&self, loc: &StoreLocation, nonce: &str) -> Result<(), ProviderError> {
        // The entry as this lifecycle last read or wrote it (every write of
        // ours that did not surely take effect made it forget the entry, so
        // what it remembers includes all our claims). Not ours: nothing to
        // release. Ours, with well over a minute of lease left: no other run
        // may take the slot while it is live (a taker needs it abandoned), so
        // it is dropped without reading it again. Ours with the lease nearly
        // out: read from Vault first, and dropped only if still ours.
        let margin = chrono::Duration::seconds(60);
        let (entry, _) = self.pending_entry(loc).await?;
        let ours = |e: &Option<Map<String, Value>>| e.as_ref().and_then(claim_of).filter(|c| c.nonce == nonce);
        let Some(c) = ours(&entry) else { return Ok(()) };
        if c.lease_until <= chrono::Utc::now() + margin && ours(&self.pending_entry_exact(loc).await?.0).is_none() {
            return Ok(());
        }
        tracing::debug!(store = %loc, nonce, "release");
        self.discard_pending(loc).await
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
