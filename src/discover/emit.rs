//! `discover --emit`: draft playbook entries for what the playbook misses.
//!
//! Every draft has `owner: FILL-ME`, which the loader refuses, so a draft
//! cannot be run until a person has named who answers for each credential.
//! Inactive items are drafted as revocations (the lesson of the credentials
//! "assumed unused"); the rest as rotations delivered to a store of the same
//! playbook, which a reviewer points at where consumers really read them.

use std::collections::BTreeSet;
use std::fmt::Write;

use super::{DiscoveryReport, FindingKind};
use crate::playbook::{Playbook, OWNER_MARKER};
use crate::provider::capabilities;
use crate::provider::kind::{self, yaml_str as q, StoreKind};

/// `[A-Za-z0-9._/-]` only, no empty segments.
fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '.' || c == '_' { c } else { '-' };
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
    }
    let t = out.trim_matches(|c| c == '-' || c == '.').to_string();
    if t.is_empty() {
        "item".into()
    } else {
        t
    }
}

/// The store a drafted rotation delivers to: the credential's own provider when
/// it is a store, else the first store provider of the playbook.
fn store_for(pb: &Playbook, provider: &str) -> Option<(String, StoreKind)> {
    let store = |name: &String| pb.providers.get(name).and_then(|p| kind::store_kind(p.config.kind())).map(|s| (name.clone(), s));
    store(&provider.to_string()).or_else(|| pb.providers.keys().find_map(store))
}

/// The `target:` of a drafted entry.
fn target(kind: &str, id: &str, details: &std::collections::BTreeMap<String, String>) -> String {
    match kind::kind_info(kind) {
        Some(k) => format!("{{ kind: {kind}, {} }}", (k.draft)(id, details)),
        None => format!("{{ kind: {kind}, id: {} }}", q(id)),
    }
}

/// The draft file for every unlisted item of `report`; `None` when there is none.
pub fn draft(pb: &Playbook, report: &DiscoveryReport) -> Option<String> {
    let unlisted: Vec<_> = report.of(FindingKind::Unlisted).collect();
    if unlisted.is_empty() {
        return None;
    }
    let has = |k: FindingKind, f: &super::Finding| report.of(k).any(|o| o.provider == f.provider && o.kind == f.kind && o.id == f.id);
    let mut ids: BTreeSet<String> = pb.credentials.iter().map(|c| c.id.clone()).collect();
    let mut s = String::new();
    let _ = writeln!(s, "# Drafted by `keysweep discover --emit` on {} from {}.", report.generated_at, report.playbook);
    let _ = writeln!(s, "# {} credential(s) the providers hold and the playbook did not list.", unlisted.len());
    let _ = writeln!(s, "#");
    let _ = writeln!(s, "# Before use: replace every `owner: {OWNER_MARKER}` with the person or team");
    let _ = writeln!(s, "# answerable for it (the playbook refuses to load until you do), check each");
    let _ = writeln!(s, "# action (inactive ones are drafted as revocations) and point deliver_to at");
    let _ = writeln!(s, "# where consumers read the secret. Then add this file to the playbook's `include:`.");
    let _ = writeln!(s, "version: 1");
    let _ = writeln!(s, "credentials:");
    for f in unlisted {
        if f.details.get("keysweep_login").is_some_and(|v| v == "true") {
            // Revoking it would lock keysweep out, and not every provider can
            // move keysweep's session to a new secret: a person decides.
            let _ = writeln!(
                s,
                "  # not drafted: {} {} on `{}` is keysweep's own login. Revoking it locks keysweep out; list it with action: rotate where the provider can move keysweep's session to the new secret (Vault, Okta), else rotate it from outside keysweep and add a `discovery.ignore` rule.",
                f.kind, f.id, f.provider
            );
            continue;
        }
        let caps = capabilities(&f.kind);
        let inactive = has(FindingKind::Inactive, f);
        let needs_store = caps.is_some_and(|c| c.needs_store);
        let store = store_for(pb, &f.provider);
        // Nowhere to deliver a new value: a revocation is the only entry that loads.
        let no_store = needs_store && store.is_none() && caps.is_some_and(|c| c.revoke);
        // No API re-issues it (an Okta API token): a rotation would need `manual:` steps.
        let no_api = caps.is_some_and(|c| !c.rotate);
        let revoke = (inactive || no_store || no_api) && caps.is_some_and(|c| c.revoke);
        // An id names the credential, not a key id (which the loader takes for a pasted secret).
        let name = kind::kind_info(&f.kind).map(|k| (k.draft_name)(&f.id, &f.details)).unwrap_or_else(|| f.id.clone());
        let base = format!("discovered/{}/{}", slug(&f.provider), slug(&name));
        let mut id = base.clone();
        let mut n = 2;
        while !ids.insert(id.clone()) {
            id = format!("{base}-{n}");
            n += 1;
        }
        let mut notes = vec![f.kind.clone(), f.detail.clone()];
        if inactive {
            notes.push(
                report.of(FindingKind::Inactive).find(|o| o.provider == f.provider && o.id == f.id).map(|o| o.detail.clone()).unwrap_or_default(),
            );
        }
        if has(FindingKind::Privileged, f) {
            notes.push("PRIVILEGED".into());
        }
        let _ = writeln!(s, "  # {}", notes.join("; ").replace('\n', " "));
        let _ = writeln!(s, "  - id: {}", q(&id));
        let _ = writeln!(s, "    owner: {OWNER_MARKER}  # who answers for this credential?");
        let _ = writeln!(s, "    provider: {}", q(&f.provider));
        let action = if revoke { "revoke" } else { "rotate" };
        let _ = writeln!(s, "    action: {action}");
        let _ = writeln!(s, "    target: {}", target(&f.kind, &f.id, &f.details));
        if !revoke && needs_store {
            if let Some((store, kind)) = store {
                let _ = writeln!(s, "    deliver_to: [{{ provider: {}, path: {} }}]  # where do consumers read it?", q(&store), q(kind.draft_path));
            }
        }
        if no_api && !inactive && revoke {
            let _ = writeln!(
                s,
                "    # no API re-issues it: drafted as a revocation; to rotate it instead, use action: rotate, add deliver_to and `manual:` steps for the person who re-issues it"
            );
        } else if no_store {
            let _ = writeln!(s, "    # this playbook has no store provider to deliver a new value to: drafted as a revocation");
        } else if revoke {
            let _ = writeln!(s, "    # inactive: revoking it is the safe default; change to rotate if someone claims it");
        }
    }
    Some(s)
}
