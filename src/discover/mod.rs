//! Discovery: what every provider actually holds, compared with the playbook.
//!
//! Each provider's `inventory()` is matched against the credentials that name
//! it. A rotated credential's identity (a token accessor, an access key id,
//! the account of an alternating pair in service) lives in its primary
//! store's current value, not in the playbook, so that value's public fields
//! are read first. What is left over is **unlisted**; a credential whose item
//! is gone is **stale**; use, age and privilege come from the provider's own
//! records and the journal's history.
//!
//! The comparison itself (`compare`) is pure, so it is tested without servers.

pub mod emit;
pub mod render;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::playbook::model::{Action, ProviderConfig, SecretRef};
use crate::playbook::{Credential, Playbook};
use crate::provider::registry::Providers;
use crate::provider::{capabilities, InventoryItem};

pub const SCHEMA: &str = "keysweep.discovery/v1";

/// What discovery says about an item or a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// The provider holds it; the playbook does not list it.
    Unlisted,
    /// The playbook lists it; the provider does not hold it.
    Stale,
    /// Not used for longer than `inactive_after`, or never used.
    Inactive,
    /// Older than its `max_age` (or of unknown age, with a `max_age`).
    Overdue,
    /// Admin, superuser or wide scopes, as the provider reports.
    Privileged,
}

impl FindingKind {
    pub const ALL: [FindingKind; 5] =
        [FindingKind::Unlisted, FindingKind::Stale, FindingKind::Inactive, FindingKind::Overdue, FindingKind::Privileged];
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Unlisted => "unlisted",
            FindingKind::Stale => "stale",
            FindingKind::Inactive => "inactive",
            FindingKind::Overdue => "overdue",
            FindingKind::Privileged => "privileged",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub finding: FindingKind,
    pub provider: String,
    pub kind: String,
    /// The item as `discover` names it: accessor, key id, role, `user@host`, DN, `mount/path`.
    pub id: String,
    /// The playbook credential, when listed.
    pub credential: Option<String>,
    pub owner: Option<String>,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<String>,
    /// What a playbook entry for an unlisted item needs besides its id (AppRole mount and role, IAM user).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
}

/// Coverage of one provider: listed ÷ discovered, ignored items left out of both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderCoverage {
    pub provider: String,
    pub provider_kind: String,
    /// Items the provider holds.
    pub discovered: usize,
    /// Items a credential of the playbook names.
    pub listed: usize,
    /// Items that are delivery stores of listed credentials (counted as listed).
    pub stores: usize,
    /// Items `discovery.ignore` acknowledges.
    pub ignored: usize,
    pub unlisted: usize,
    /// Credentials of this provider whose item is gone.
    pub stale: usize,
    /// (listed + stores) ÷ (discovered − ignored); none when nothing was discovered.
    pub coverage: Option<f64>,
    /// Why this provider could not be inventoried (then its figures are 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub discovered: usize,
    pub listed: usize,
    pub stores: usize,
    pub ignored: usize,
    pub unlisted: usize,
    pub stale: usize,
    pub inactive: usize,
    pub overdue: usize,
    pub privileged: usize,
    pub coverage: Option<f64>,
    /// Providers that could not be inventoried: the comparison is incomplete.
    pub providers_failed: usize,
}

/// What discovery knows about one listed credential (used by `run --due`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CredentialStatus {
    pub id: String,
    pub provider: String,
    pub kind: String,
    /// Whether the provider holds it; none when it could not be told.
    pub found: Option<bool>,
    /// Why `found` is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_because: Option<String>,
    /// The items it was matched to (the one in service first).
    pub items: Vec<String>,
    /// When the secret in service was set (the provider's date or the journal's last rotation, the later).
    pub last_rotated: Option<String>,
    pub max_age_secs: Option<u64>,
    /// Past `max_age`, or of unknown age with a `max_age`; none without a `max_age`.
    pub overdue: Option<bool>,
    pub created: Option<String>,
    pub last_used: Option<String>,
    pub usage_tracked: bool,
    pub inactive: bool,
    pub inactive_after_secs: u64,
    pub privileged: bool,
    /// The account in service is locked / switched off (how MariaDB and Redis
    /// accounts look once revoked): it cannot log in.
    #[serde(default)]
    pub disabled: bool,
}

/// An item left alone by a `discovery.ignore` rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ignored {
    pub provider: String,
    pub kind: String,
    pub id: String,
    pub reason: String,
}

/// Credentials whose kind limits what keysweep can do with them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Can be rotated only: revoking (and `revoke_inactive`) is impossible.
    pub cannot_revoke: Vec<String>,
    /// Can be revoked only.
    pub cannot_rotate: Vec<String>,
    /// Death of the old secret cannot be proven (they end `unverified`).
    pub cannot_verify: Vec<String>,
    /// Kinds whose system records no last use: inactivity cannot be judged.
    pub usage_unknown: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscoveryReport {
    pub schema: String,
    pub playbook: String,
    pub generated_at: String,
    pub providers: Vec<ProviderCoverage>,
    pub totals: Totals,
    pub findings: Vec<Finding>,
    #[serde(default)]
    pub ignored: Vec<Ignored>,
    #[serde(default)]
    pub limits: Limits,
    /// Notes about the comparison itself (a store that could not be read...).
    #[serde(default)]
    pub notes: Vec<String>,
    /// Per listed credential (left out of `plan`'s report).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credentials: Vec<CredentialStatus>,
}

impl DiscoveryReport {
    pub fn of(&self, kind: FindingKind) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.finding == kind)
    }
    /// Discovery was complete and found nothing unlisted.
    pub fn clean(&self) -> bool {
        self.totals.unlisted == 0 && self.totals.providers_failed == 0
    }
}

/// What the providers said, gathered before the pure comparison.
pub struct Gathered {
    /// Provider → its inventory, or why there is none.
    pub inventories: BTreeMap<String, Result<Vec<InventoryItem>, String>>,
    /// Credential id → the public fields of its primary store's current value.
    pub stored: HashMap<String, BTreeMap<String, String>>,
    /// Credential id → last `rotated` outcome in the journal.
    pub journal: HashMap<String, String>,
    pub notes: Vec<String>,
}

/// Asks every provider in `providers` (the connected ones) for its inventory,
/// and every store for the public fields of the credentials' current values.
pub async fn gather(
    pb: &Playbook,
    providers: &Providers,
    failed: &BTreeMap<String, String>,
    journal: HashMap<String, String>,
    concurrency: usize,
) -> Gathered {
    let mut inventories: BTreeMap<String, Result<Vec<InventoryItem>, String>> = BTreeMap::new();
    for (name, why) in failed {
        inventories.insert(name.clone(), Err(why.clone()));
    }
    let names: Vec<String> = pb.providers.keys().filter(|n| !failed.contains_key(*n)).cloned().collect();
    let results = futures::stream::iter(names.into_iter().map(|name| async move {
        let r = match providers.get(&name) {
            Some(p) => p.inventory().await.map_err(|e| e.to_string()),
            None => Err("not connected".to_string()),
        };
        (name, r)
    }))
    .buffer_unordered(concurrency.max(1))
    .collect::<Vec<_>>()
    .await;
    inventories.extend(results);

    let mut notes = vec![];
    let wanted: Vec<&Credential> =
        pb.credentials.iter().filter(|c| c.target.spec().identity_in_store() && !c.deliver_to.is_empty() && c.action == Action::Rotate).collect();
    let reads = futures::stream::iter(wanted.into_iter().map(|c| async move {
        let loc = &c.deliver_to[0];
        let Some(store) = providers.store(&loc.provider) else { return (c.id.clone(), Err(format!("store `{}` is not connected", loc.provider))) };
        // Only the public fields are kept; the value is dropped (and zeroized) here.
        let r = store.read_current(loc).await.map(|v| v.map(|v| v.delivered.fields.clone())).map_err(|e| e.to_string());
        (c.id.clone(), r)
    }))
    .buffer_unordered(concurrency.max(1))
    .collect::<Vec<_>>()
    .await;
    let mut stored = HashMap::new();
    let mut unread = vec![];
    for (id, r) in reads {
        match r {
            Ok(Some(f)) => {
                stored.insert(id, f);
            }
            Ok(None) => {}
            Err(e) => unread.push(format!("{id} ({e})")),
        }
    }
    if !unread.is_empty() {
        unread.sort();
        notes.push(format!(
            "{} credential(s) matched by their playbook entry only; their store could not be read: {}",
            unread.len(),
            abbreviate(&unread)
        ));
    }
    Gathered { inventories, stored, journal, notes }
}

fn abbreviate(items: &[String]) -> String {
    if items.len() <= 6 {
        items.join(", ")
    } else {
        format!("{} … and {} more", items[..6].join(", "), items.len() - 6)
    }
}

/// How `discover` names an item (by its kind's rule, e.g. KV secrets as `mount/path`).
pub fn display_id(it: &InventoryItem) -> String {
    crate::provider::kind::display_id(it)
}

/// The key an item is matched by: its display id, as its kind normalises it.
fn key_of(kind: &str, id: &str) -> String {
    crate::provider::kind::match_key(kind, id)
}

/// The items a credential names: (kind, key, in service).
fn claims(c: &Credential, stored: Option<&BTreeMap<String, String>>) -> Vec<(String, String, bool)> {
    let kind = c.target.kind();
    c.target.spec().claimed(stored).into_iter().map(|(id, in_service)| (kind.to_string(), key_of(kind, &id), in_service)).collect()
}

/// Store entries the playbook uses: delivery targets and `${store:…}` references.
fn store_keys(pb: &Playbook) -> Vec<(String, String, String, String)> {
    let mut out = vec![];
    let store_of = |provider: &str| pb.providers.get(provider).and_then(|p| crate::provider::kind::store_kind(p.config.kind()));
    for c in &pb.credentials {
        for d in &c.deliver_to {
            let Some(store) = store_of(&d.provider) else { continue };
            out.push((d.provider.clone(), store.entry_kind.to_string(), (store.entry_id)(d), format!("delivery store of `{}`", c.id)));
        }
    }
    for (name, entry) in &pb.providers {
        for r in provider_refs(&entry.config) {
            if let SecretRef::Store { provider, path, field } = r {
                let Some(store) = store_of(provider) else { continue };
                let loc = (store.location)(provider, path, field);
                out.push((provider.clone(), store.entry_kind.to_string(), (store.entry_id)(&loc), format!("holds provider `{name}`'s login")));
            }
        }
    }
    out
}

fn provider_refs(cfg: &ProviderConfig) -> Vec<&SecretRef> {
    cfg.secret_refs()
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

/// "3 days", "5 hours", "40 seconds".
pub fn human(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..=119 => format!("{s} seconds"),
        120..=7199 => format!("{} minutes", s / 60),
        7200..=172_799 => format!("{} hours", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

/// A playbook duration as a chrono one (a duration too long for chrono is "forever").
fn span(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

fn std_human(d: Duration) -> String {
    human(span(d))
}

/// Inactivity of an item (or pair): `(inactive, detail)`. Only where the
/// system records use; a missing last use is then "never used".
fn inactivity(last_used: Option<&str>, created: Option<&str>, tracked: bool, after: Duration, now: DateTime<Utc>) -> (bool, String) {
    if !tracked {
        return (false, String::new());
    }
    let after_c = span(after);
    match last_used.and_then(parse_time) {
        Some(t) if now - t > after_c => (true, format!("last used {} ago (inactive after {})", human(now - t), std_human(after))),
        Some(_) => (false, String::new()),
        None => {
            let since = created.and_then(parse_time).map(|c| format!(" (created {} ago)", human(now - c))).unwrap_or_default();
            (true, format!("never used{since}"))
        }
    }
}

/// The pure comparison of a playbook with what its providers hold.
pub fn compare(pb: &Playbook, g: &Gathered, now: DateTime<Utc>) -> DiscoveryReport {
    // Index every inventory item by (provider, kind, key).
    struct Slot<'a> {
        item: &'a InventoryItem,
        claimed_by: Option<&'a Credential>,
        store_of: Option<String>,
    }
    let mut slots: BTreeMap<(String, String, String), Slot> = BTreeMap::new();
    for (prov, inv) in &g.inventories {
        if let Ok(items) = inv {
            for it in items {
                slots.insert((prov.clone(), it.kind.clone(), key_of(&it.kind, &display_id(it))), Slot { item: it, claimed_by: None, store_of: None });
            }
        }
    }
    let inventoried = |p: &str| matches!(g.inventories.get(p), Some(Ok(_)));
    let mut findings: Vec<Finding> = vec![];
    let mut statuses: Vec<CredentialStatus> = vec![];
    let mut stale_per: BTreeMap<String, usize> = BTreeMap::new();

    for c in &pb.credentials {
        let kind = c.target.kind().to_string();
        let mut cl = claims(c, g.stored.get(&c.id));
        // An entry that names no item yet (before its first rotation): the
        // items its kind says it would take.
        if cl.is_empty() {
            let spec = c.target.spec();
            cl = slots
                .iter()
                .filter(|((p, k, _), s)| *p == c.provider && *k == kind && spec.takes_unnamed(s.item))
                .map(|((_, k, key), _)| (k.clone(), key.clone(), true))
                .collect();
            if let (true, Some(label)) = (cl.is_empty(), spec.unnamed_label()) {
                // Nothing at all: stale, named by the label.
                cl.push((kind.clone(), label, true));
            }
        }
        let mut st = CredentialStatus {
            id: c.id.clone(),
            provider: c.provider.clone(),
            kind: kind.clone(),
            found: None,
            unknown_because: None,
            items: vec![],
            last_rotated: None,
            max_age_secs: c.max_age.map(|d| d.as_secs()),
            overdue: None,
            created: None,
            last_used: None,
            usage_tracked: false,
            inactive: false,
            inactive_after_secs: c.inactive_after.as_secs(),
            privileged: false,
            disabled: false,
        };
        let mut matched: Vec<&InventoryItem> = vec![];
        if !inventoried(&c.provider) {
            st.unknown_because = Some(format!("provider `{}` could not be inventoried", c.provider));
        } else if cl.is_empty() {
            st.unknown_because = Some("its identity (accessor / key id) is in neither the playbook nor its store yet".into());
        } else {
            let mut in_service_found = false;
            for (k, key, in_service) in &cl {
                if let Some(slot) = slots.get_mut(&(c.provider.clone(), k.clone(), key.clone())) {
                    slot.claimed_by = Some(c);
                    st.items.push(display_id(slot.item));
                    matched.push(slot.item);
                    in_service_found |= *in_service;
                }
            }
            st.found = Some(in_service_found);
            if !in_service_found {
                let (_, key, _) = cl.iter().find(|(_, _, s)| *s).unwrap_or(&cl[0]);
                *stale_per.entry(c.provider.clone()).or_default() += 1;
                let detail = match c.action {
                    Action::Revoke => "listed for revocation and no longer held: already revoked or deleted; the entry can go".to_string(),
                    Action::Rotate => format!("`{}` holds no such {kind}: deleted outside keysweep, or the entry names the wrong item", c.provider),
                };
                findings.push(Finding {
                    finding: FindingKind::Stale,
                    provider: c.provider.clone(),
                    kind: kind.clone(),
                    id: key.clone(),
                    credential: Some(c.id.clone()),
                    owner: c.owner.clone(),
                    detail,
                    created: None,
                    last_used: None,
                    details: BTreeMap::new(),
                });
            }
        }

        // The secret in service: its dates, use and privilege.
        let current = matched.first().copied();
        if let Some(it) = current {
            st.created = it.created.clone();
            st.disabled = it.details.get("account_locked").is_some_and(|v| v == "true") || it.details.get("enabled").is_some_and(|v| v == "false");
        }
        let provider_date = current.and_then(|it| it.rotated.clone());
        let journal_date = g.journal.get(&c.id).cloned();
        st.last_rotated = match (provider_date.as_deref().and_then(parse_time), journal_date.as_deref().and_then(parse_time)) {
            (Some(a), Some(b)) => Some(a.max(b).to_rfc3339()),
            (Some(a), None) | (None, Some(a)) => Some(a.to_rfc3339()),
            (None, None) => None,
        };
        st.usage_tracked = !matched.is_empty() && matched.iter().all(|i| i.usage_tracked);
        st.last_used = matched.iter().filter_map(|i| i.last_used.as_deref().and_then(parse_time)).max().map(|t| t.to_rfc3339());
        st.privileged = matched.iter().any(|i| i.details.get("privileged").is_some_and(|v| v == "true"));
        if st.found == Some(true) {
            let (inactive, why) = inactivity(st.last_used.as_deref(), st.created.as_deref(), st.usage_tracked, c.inactive_after, now);
            st.inactive = inactive;
            let f = |finding, detail: String| Finding {
                finding,
                provider: c.provider.clone(),
                kind: kind.clone(),
                id: st.items[0].clone(),
                credential: Some(c.id.clone()),
                owner: c.owner.clone(),
                detail,
                created: st.created.clone(),
                last_used: st.last_used.clone(),
                details: BTreeMap::new(),
            };
            if inactive {
                findings.push(f(FindingKind::Inactive, why));
            }
            if let Some(max) = c.max_age {
                let max_c = span(max);
                let (overdue, detail) = match st.last_rotated.as_deref().and_then(parse_time) {
                    Some(t) => (now - t > max_c, format!("last rotated {} ago; max_age {}", human(now - t), std_human(max))),
                    None => (
                        true,
                        format!("age unknown (`{}` records no date for it and the journal has no rotation); max_age {}", c.provider, std_human(max)),
                    ),
                };
                st.overdue = Some(overdue);
                if overdue {
                    findings.push(f(FindingKind::Overdue, detail));
                }
            }
            if st.privileged {
                let it = current.expect("found");
                findings.push(f(FindingKind::Privileged, privilege_detail(it)));
            }
        }
        statuses.push(st);
    }

    // Store entries the playbook uses.
    for (prov, kind, key, why) in store_keys(pb) {
        if let Some(slot) = slots.get_mut(&(prov, kind.clone(), key_of(&kind, &key))) {
            if slot.claimed_by.is_none() && slot.store_of.is_none() {
                slot.store_of = Some(why);
            }
        }
    }

    // The rest: ignored or unlisted.
    let mut ignored = vec![];
    let mut per: BTreeMap<String, ProviderCoverage> = BTreeMap::new();
    for (name, entry) in &pb.providers {
        per.insert(
            name.clone(),
            ProviderCoverage {
                provider: name.clone(),
                provider_kind: entry.config.kind().to_string(),
                discovered: 0,
                listed: 0,
                stores: 0,
                ignored: 0,
                unlisted: 0,
                stale: stale_per.get(name).copied().unwrap_or(0),
                coverage: None,
                error: g.inventories.get(name).and_then(|r| r.as_ref().err().cloned()),
            },
        );
    }
    for ((prov, kind, _), slot) in &slots {
        let pc = per.get_mut(prov).expect("declared provider");
        pc.discovered += 1;
        if slot.claimed_by.is_some() {
            pc.listed += 1;
            continue;
        }
        if slot.store_of.is_some() {
            pc.stores += 1;
            continue;
        }
        let id = display_id(slot.item);
        if slot.item.details.get("keysweep_session").is_some_and(|v| v == "true") {
            pc.ignored += 1;
            ignored.push(Ignored {
                provider: prov.clone(),
                kind: kind.clone(),
                id,
                reason: "keysweep's own login session (revoked when it exits)".into(),
            });
            continue;
        }
        if let Some(rule) = pb.discovery.ignore.iter().find(|r| {
            r.provider == *prov
                && r.kind.as_deref().is_none_or(|k| k == kind)
                && crate::playbook::rules::glob_match(&key_of(kind, &r.id), &key_of(kind, &id))
        }) {
            pc.ignored += 1;
            ignored.push(Ignored { provider: prov.clone(), kind: kind.clone(), id, reason: rule.reason.clone() });
            continue;
        }
        pc.unlisted += 1;
        let it = slot.item;
        let f = |finding, detail: String| Finding {
            finding,
            provider: prov.clone(),
            kind: kind.clone(),
            id: id.clone(),
            credential: None,
            owner: None,
            detail,
            created: it.created.clone(),
            last_used: it.last_used.clone(),
            details: it
                .details
                .iter()
                // What a draft entry names it by, and whose login it is.
                .filter(|(k, _)| {
                    matches!(k.as_str(), "mount" | "role" | "user" | "name" | "login" | "label" | "keysweep_login" | "app_id" | "token_type")
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        let mut d = vec![];
        if let Some(c) = &it.created {
            d.push(format!("created {c}"));
        }
        if let Some(u) = &it.last_used {
            d.push(format!("last used {u}"));
        }
        // A secret keysweep minted that no store holds: the orphan of a mint
        // whose answer (or store write) was lost.
        if let Some(n) = it.details.get("keysweep_nonce") {
            let (run, cred) = n.split_once('/').unwrap_or((n.as_str(), "?"));
            d.insert(
                0,
                format!("an orphan keysweep minted (run `{run}`, credential `{cred}`) that no store holds: the next `run` of `{cred}` revokes it, or revoke it by hand"),
            );
        }
        findings.push(f(
            FindingKind::Unlisted,
            if d.is_empty() { "not in the playbook".into() } else { format!("not in the playbook; {}", d.join(", ")) },
        ));
        let (inactive, why) = inactivity(it.last_used.as_deref(), it.created.as_deref(), it.usage_tracked, pb.discovery.inactive_after, now);
        if inactive {
            findings.push(f(FindingKind::Inactive, why));
        }
        if it.details.get("privileged").is_some_and(|v| v == "true") {
            findings.push(f(FindingKind::Privileged, privilege_detail(it)));
        }
    }
    for pc in per.values_mut() {
        let denom = pc.discovered - pc.ignored;
        pc.coverage = (denom > 0 && pc.error.is_none()).then(|| (pc.listed + pc.stores) as f64 / denom as f64);
    }

    findings.sort_by(|a, b| (a.finding, &a.provider, &a.kind, &a.id).cmp(&(b.finding, &b.provider, &b.kind, &b.id)));
    let providers: Vec<ProviderCoverage> = per.into_values().collect();
    let count = |k: FindingKind| findings.iter().filter(|f| f.finding == k).count();
    let mut totals = Totals {
        discovered: providers.iter().map(|p| p.discovered).sum(),
        listed: providers.iter().map(|p| p.listed).sum(),
        stores: providers.iter().map(|p| p.stores).sum(),
        ignored: providers.iter().map(|p| p.ignored).sum(),
        unlisted: count(FindingKind::Unlisted),
        stale: count(FindingKind::Stale),
        inactive: count(FindingKind::Inactive),
        overdue: count(FindingKind::Overdue),
        privileged: count(FindingKind::Privileged),
        coverage: None,
        providers_failed: providers.iter().filter(|p| p.error.is_some()).count(),
    };
    let denom = totals.discovered - totals.ignored;
    totals.coverage = (denom > 0).then(|| (totals.listed + totals.stores) as f64 / denom as f64);

    DiscoveryReport {
        schema: SCHEMA.into(),
        playbook: pb.root.display().to_string(),
        generated_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        providers,
        totals,
        findings,
        ignored,
        limits: limits(pb, g),
        notes: g.notes.clone(),
        credentials: statuses,
    }
}

fn privilege_detail(it: &InventoryItem) -> String {
    let facts: Vec<String> = ["superuser", "createrole", "replication", "bypassrls", "super", "grant", "create_user"]
        .iter()
        .filter(|k| it.details.get(**k).is_some_and(|v| v == "true"))
        .map(|k| k.to_string())
        .chain(it.details.get("policies").filter(|p| !p.is_empty() && *p != "[]").map(|p| format!("policies {p}")))
        .collect();
    if facts.is_empty() {
        "privileged (as the provider reports)".into()
    } else {
        format!("privileged: {}", facts.join(", "))
    }
}

/// Credentials whose kind (or settings) limit what a run can do.
pub fn limits(pb: &Playbook, g: &Gathered) -> Limits {
    let mut l = Limits::default();
    for c in &pb.credentials {
        let Some(caps) = capabilities(c.target.kind()) else { continue };
        if !caps.revoke {
            l.cannot_revoke.push(c.id.clone());
        }
        if !caps.rotate {
            l.cannot_rotate.push(c.id.clone());
        }
        let keeps_old = c.target.spec().keeps_old().is_some();
        if !caps.verify_dead || keeps_old {
            l.cannot_verify.push(c.id.clone());
        }
    }
    let mut kinds: BTreeSet<String> = BTreeSet::new();
    for items in g.inventories.values().flatten() {
        for it in items.iter().filter(|i| !i.usage_tracked) {
            kinds.insert(it.kind.clone());
        }
    }
    l.usage_unknown = kinds.into_iter().collect();
    l
}

pub use crate::lifecycle::Due;

/// Whether a hygiene run acts on `c`, given what discovery knows about it.
pub fn due(c: &Credential, st: &CredentialStatus, now: DateTime<Utc>) -> Due {
    let caps = capabilities(c.target.kind());
    if st.found == Some(false) {
        return match c.action {
            Action::Revoke => Due::NotDue("not due: already gone".into()),
            Action::Rotate => Due::NotDue(format!("not due: not found in `{}` (stale entry; see `keysweep discover`)", c.provider)),
        };
    }
    if c.action == Action::Revoke && st.disabled {
        return Due::NotDue("not due: already disabled (it cannot log in)".into());
    }
    if c.action == Action::Revoke {
        return Due::Act(Action::Revoke, "listed for revocation and still held".into());
    }
    let pair = c.target.spec().alternating();
    if c.revoke_inactive && st.inactive && caps.is_some_and(|k| k.revoke) && !pair {
        // A never-used secret gets `inactive_after` from its creation to be picked up.
        let idle_since = st.last_used.as_deref().or(st.created.as_deref()).and_then(parse_time);
        let after = span(c.inactive_after);
        match idle_since {
            Some(t) if now - t > after => {
                let what = if st.last_used.is_some() { "last used" } else { "never used; created" };
                return Due::Act(Action::Revoke, format!("inactive: {what} {} ago (inactive_after {})", human(now - t), std_human(c.inactive_after)));
            }
            Some(t) if st.overdue != Some(true) => {
                return Due::NotDue(format!(
                    "not due: never used, but created {} ago; revoked once unused for {}",
                    human(now - t),
                    std_human(c.inactive_after)
                ));
            }
            _ => {}
        }
    }
    match (c.max_age, st.overdue) {
        (Some(max), Some(true)) => {
            let why = match st.last_rotated.as_deref().and_then(parse_time) {
                Some(t) => format!("overdue: last rotated {} ago, max_age {}", human(now - t), std_human(max)),
                None => format!("overdue: age unknown, max_age {}", std_human(max)),
            };
            Due::Act(Action::Rotate, why)
        }
        (Some(_), None) if st.found.is_none() => Due::Act(Action::Rotate, "age unknown (not matched in the inventory)".into()),
        (Some(max), _) => {
            let next = st
                .last_rotated
                .as_deref()
                .and_then(parse_time)
                .map(|t| {
                    let left = t + span(max) - now;
                    format!("rotated {} ago, due in {}", human(now - t), human(left))
                })
                .unwrap_or_else(|| "within max_age".into());
            Due::NotDue(format!("not due: {next}"))
        }
        (None, _) => Due::NotDue("not due: no max_age set".into()),
    }
}

/// Connects to every provider it can and runs discovery (for `discover`, `plan` and `run --due`).
pub async fn discover(pb: &Playbook, journal: HashMap<String, String>, now: DateTime<Utc>) -> (DiscoveryReport, Providers) {
    let all: BTreeSet<String> = pb.providers.keys().cloned().collect();
    let (providers, failed) = crate::provider::registry::connect_each(pb, &all).await;
    let g = gather(pb, &providers, &failed, journal, 16).await;
    (compare(pb, &g, now), providers)
}

#[cfg(test)]
mod tests;
