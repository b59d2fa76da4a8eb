//! The plan: which credentials a run acts on, with which steps, in what order.
//! Pure: it never talks to a provider.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::{bail, Result};

use crate::lifecycle::Step;
use crate::playbook::model::Action;
use crate::playbook::{Credential, Playbook};
use crate::provider::capabilities;

/// Which credentials a run takes. Expressions are `key=value` with keys
/// `tag`, `owner`, `provider`, `kind`, `action` and `id` (`*` matches any run of
/// characters). Expressions with the same key are OR-ed, different keys AND-ed;
/// `exclude` removes whatever it matches.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub select: Vec<(String, String)>,
    pub exclude: Vec<(String, String)>,
}

const KEYS: &[&str] = &["tag", "owner", "provider", "kind", "action", "id"];

fn parse_expr(s: &str) -> Result<(String, String)> {
    let Some((k, v)) = s.split_once('=') else {
        bail!("selection `{s}` is not key=value (keys: {})", KEYS.join(", "));
    };
    let k = k.trim();
    if !KEYS.contains(&k) {
        bail!("selection key `{k}` is unknown; use one of: {}", KEYS.join(", "));
    }
    Ok((k.to_string(), v.trim().to_string()))
}

/// `*` matches any run of characters; anything else matches itself.
pub use crate::playbook::rules::glob_match;

fn matches(c: &Credential, key: &str, value: &str) -> bool {
    match key {
        "tag" => c.tags.iter().any(|t| glob_match(value, t)),
        "owner" => c.owner.as_deref().is_some_and(|o| glob_match(value, o)),
        "provider" => glob_match(value, &c.provider),
        "kind" => glob_match(value, c.target.kind()),
        "action" => value == c.action.as_str(),
        "id" => glob_match(value, &c.id),
        _ => false,
    }
}

/// Every value credentials of `pb` have for selection key `key`.
fn values_of(pb: &Playbook, key: &str) -> Vec<String> {
    let mut v: Vec<String> = pb
        .credentials
        .iter()
        .flat_map(|c| -> Vec<String> {
            match key {
                "tag" => c.tags.clone(),
                "owner" => c.owner.iter().cloned().collect(),
                "provider" => vec![c.provider.clone()],
                "kind" => vec![c.target.kind().to_string()],
                "action" => vec![c.action.as_str().to_string()],
                "id" => vec![c.id.clone()],
                _ => vec![],
            }
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Up to three values nearest to `wanted` (edit distance), nearest first.
fn nearest<'a>(wanted: &str, values: &'a [String]) -> Vec<&'a str> {
    let plain = wanted.replace('*', "");
    let mut scored: Vec<(usize, &str)> = values.iter().map(|v| (crate::playbook::loader::levenshtein(&plain, v), v.as_str())).collect();
    scored.sort();
    scored.into_iter().take(3).map(|(_, v)| v).collect()
}

impl Selection {
    /// Refuses a selection that acts on nothing: an expression that matches no
    /// credential of `pb` (a typo must not pass as "no gaps"), or a selection
    /// that leaves no credential selected. The message names the expression
    /// and the nearest existing values.
    pub fn check_matches(&self, pb: &Playbook) -> std::result::Result<(), String> {
        if self.select.is_empty() && self.exclude.is_empty() {
            return Ok(());
        }
        let mut problems = Vec::new();
        for (flag, exprs) in [("--select", &self.select), ("--exclude", &self.exclude)] {
            for (k, v) in exprs {
                if pb.credentials.iter().any(|c| matches(c, k, v)) {
                    continue;
                }
                let values = values_of(pb, k);
                let near = nearest(v, &values);
                let detail = if near.is_empty() {
                    format!("no credential of this playbook has any {k}")
                } else {
                    format!("nearest {k}s: {}", near.join(", "))
                };
                problems.push(format!("{flag} {k}={v} matches no credential of the playbook ({detail})"));
            }
        }
        if problems.is_empty() && !pb.credentials.is_empty() && pb.credentials.iter().all(|c| self.reason_excluded(c).is_some()) {
            problems.push(format!(
                "the selection {} leaves none of the playbook's {} credential(s) selected",
                self.describe().join(" "),
                pb.credentials.len()
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    }

    pub fn parse(select: &[String], exclude: &[String]) -> Result<Selection> {
        Ok(Selection {
            select: select.iter().map(|s| parse_expr(s)).collect::<Result<_>>()?,
            exclude: exclude.iter().map(|s| parse_expr(s)).collect::<Result<_>>()?,
        })
    }

    /// The expressions as given, for the report.
    pub fn describe(&self) -> Vec<String> {
        let sel = self.select.iter().map(|(k, v)| format!("{k}={v}"));
        let exc = self.exclude.iter().map(|(k, v)| format!("!{k}={v}"));
        sel.chain(exc).collect()
    }

    /// Whether `c` is selected; `None` when it is, else the reason it is not.
    pub fn reason_excluded(&self, c: &Credential) -> Option<String> {
        let mut by_key: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (k, v) in &self.select {
            by_key.entry(k).or_default().push(v);
        }
        for (k, vals) in &by_key {
            if !vals.iter().any(|v| matches(c, k, v)) {
                return Some(format!("not selected ({k} not in {})", vals.join("|")));
            }
        }
        for (k, v) in &self.exclude {
            if matches(c, k, v) {
                return Some(format!("excluded ({k}={v})"));
            }
        }
        None
    }
}

/// One credential's place in the plan.
#[derive(Debug, Clone)]
pub struct WorkItem {
    pub cred: Arc<Credential>,
    /// `None` when selected; else why not.
    pub skip: Option<String>,
    pub steps: Vec<Step>,
}

impl WorkItem {
    pub fn selected(&self) -> bool {
        self.skip.is_none()
    }
}

/// The validated, expanded list of work, in dependency waves.
#[derive(Debug, Clone)]
pub struct Plan {
    pub items: Vec<WorkItem>,
    /// Indexes into `items` of selected credentials, wave by wave: a
    /// credential's dependencies are all in earlier waves.
    pub waves: Vec<Vec<usize>>,
    /// Notes for the dry-run report (coverage gaps that need no provider to see).
    pub warnings: Vec<String>,
    /// Provider settings taken from the environment, and from which variable.
    pub from_env: Vec<String>,
}

/// The steps of `c`'s lifecycle, as the engine runs them.
pub fn steps_for(c: &Credential) -> Vec<Step> {
    // A person re-issues a manual credential: nothing for keysweep to apply.
    crate::lifecycle::steps(c.action, c.manual.is_some() || capabilities(c.target.kind()).is_some_and(|k| k.mints))
}

pub fn build(playbook: &Playbook, selection: &Selection) -> Plan {
    assemble(playbook.credentials.iter().map(|c| Arc::new(c.clone())), playbook, selection)
}

/// Like [`build`], moving the playbook's credentials into the plan instead
/// of copying them (for a large playbook, half the memory): `playbook` is left
/// without credentials.
pub fn build_taking(playbook: &mut Playbook, selection: &Selection) -> Plan {
    let credentials = std::mem::take(&mut playbook.credentials);
    assemble(credentials.into_iter().map(Arc::new), playbook, selection)
}

fn assemble(credentials: impl Iterator<Item = Arc<Credential>>, playbook: &Playbook, selection: &Selection) -> Plan {
    let items: Vec<WorkItem> = credentials
        .map(|c| {
            let (skip, steps) = (selection.reason_excluded(&c), steps_for(&c));
            WorkItem { cred: c, skip, steps }
        })
        .collect();
    let index: HashMap<&str, usize> = items.iter().enumerate().map(|(i, w)| (w.cred.id.as_str(), i)).collect();

    // Depth of each selected item = 1 + max depth of its selected dependencies
    // (the loader already refused cycles). Unselected dependencies are outside
    // this run and do not hold it back.
    let mut depth: Vec<Option<usize>> = vec![None; items.len()];
    fn depth_of(i: usize, items: &[WorkItem], index: &HashMap<&str, usize>, depth: &mut Vec<Option<usize>>, guard: usize) -> usize {
        if let Some(d) = depth[i] {
            return d;
        }
        let mut d = 0;
        if guard < items.len() {
            for dep in &items[i].cred.depends_on {
                if let Some(&j) = index.get(dep.as_str()) {
                    if items[j].selected() {
                        d = d.max(1 + depth_of(j, items, index, depth, guard + 1));
                    }
                }
            }
        }
        depth[i] = Some(d);
        d
    }
    let mut waves: Vec<Vec<usize>> = vec![];
    for i in 0..items.len() {
        if !items[i].selected() {
            continue;
        }
        let d = depth_of(i, &items, &index, &mut depth, 0);
        if waves.len() <= d {
            waves.resize(d + 1, vec![]);
        }
        waves[d].push(i);
    }

    let env = |k: &str| std::env::var(k).ok();
    let from_env: Vec<String> = playbook
        .providers
        .iter()
        .flat_map(|(name, p)| p.config.spec().from_env(&env).into_iter().map(move |s| format!("provider `{name}`: {s}")))
        .collect();
    let mut warnings = vec![];
    for (name, p) in &playbook.providers {
        for w in p.config.spec().warnings() {
            warnings.push(format!("provider `{name}`: {w}"));
        }
    }
    let no_probe: Vec<&str> = items.iter().filter(|w| w.selected() && !w.cred.verify.probe_old).map(|w| w.cred.id.as_str()).collect();
    if !no_probe.is_empty() {
        warnings.push(format!(
            "{} credential(s) have verify.probe_old: false; death is proven admin-side only: {}",
            no_probe.len(),
            abbreviate(&no_probe)
        ));
    }
    let unverifiable: Vec<(&str, &'static str)> =
        items.iter().filter(|w| w.selected()).filter_map(|w| w.cred.target.spec().keeps_old().map(|why| (w.cred.id.as_str(), why))).collect();
    if !unverifiable.is_empty() {
        let ids: Vec<&str> = unverifiable.iter().map(|(id, _)| *id).collect();
        warnings.push(format!(
            "{} credential(s) keep their old value readable and will end `unverified`: {} — {}",
            ids.len(),
            abbreviate(&ids),
            unverifiable[0].1
        ));
    }
    let short_grace: Vec<String> = items
        .iter()
        .filter(|w| w.selected() && is_alternating(&w.cred) && w.cred.action == Action::Rotate)
        .filter(|w| w.cred.grace_period.unwrap_or_default() < crate::playbook::DEFAULT_ALTERNATING_GRACE)
        .map(|w| format!("{} ({})", w.cred.id, humantime::format_duration(w.cred.grace_period.unwrap_or_default())))
        .collect();
    if !short_grace.is_empty() {
        let ids: Vec<&str> = short_grace.iter().map(String::as_str).collect();
        warnings.push(format!(
            "{} alternating pair(s) have a grace_period shorter than the default {}: a consumer that read the store just before the flip may fail to log in, and open sessions of the retired account are ended after the grace period: {}",
            ids.len(),
            humantime::format_duration(crate::playbook::DEFAULT_ALTERNATING_GRACE),
            abbreviate(&ids)
        ));
    }
    let mut unprovable: Vec<(String, String)> = Vec::new();
    for w in items.iter().filter(|w| w.selected()) {
        // Secrets keeping their old value have their own warning above.
        if w.cred.target.spec().keeps_old().is_some() {
            continue;
        }
        if let Err(why) = death_provable(&w.cred) {
            unprovable.push((w.cred.id.clone(), why));
        }
    }
    if !unprovable.is_empty() {
        let ids: Vec<&str> = unprovable.iter().map(|(id, _)| id.as_str()).collect();
        warnings.push(format!(
            "{} credential(s) whose death can never be proven (they will end `unverified`): {} — {}",
            ids.len(),
            abbreviate(&ids),
            unprovable[0].1
        ));
    }
    Plan { items, waves, warnings, from_env }
}

fn is_alternating(c: &Credential) -> bool {
    c.target.spec().alternating()
}

/// Whether the death of `c`'s old secret can be proven at all, judged from the
/// playbook alone (assuming the store holds the old value where one is needed).
/// `Err` says why not; probing such a credential cannot change the verdict.
pub fn death_provable(c: &Credential) -> std::result::Result<(), String> {
    death_provable_with(c, true)
}

/// Like [`death_provable`], knowing whether the old value is available (read
/// from the primary store's previous version): a rotation that keeps its
/// account in service (a single database user, say) can be proven only by a
/// login attempt with the old password being refused.
pub fn death_provable_with(c: &Credential, old_value_available: bool) -> std::result::Result<(), String> {
    let spec = c.target.spec();
    if let (Some(why), Action::Rotate) = (spec.keeps_old(), c.action) {
        return Err(why.into());
    }
    if let (Some(other_way), Action::Rotate) = (spec.same_account(), c.action) {
        let other_way = if other_way.is_empty() { String::new() } else { format!(", or {other_way}") };
        if !c.verify.probe_old {
            return Err(format!(
                "a single-user `{}` rotation keeps the account in service, and with verify.probe_old: false no login with the old password proves it refused; use probe_old: true{other_way}",
                c.target.kind()
            ));
        }
        if !old_value_available {
            return Err(format!(
                "a single-user `{}` rotation keeps the account in service, and no store holds the old password to prove it refused; deliver the current password to the store first{other_way}",
                c.target.kind()
            ));
        }
    }
    Ok(())
}

fn abbreviate(ids: &[&str]) -> String {
    if ids.len() <= 8 {
        ids.join(", ")
    } else {
        format!("{} … and {} more", ids[..8].join(", "), ids.len() - 8)
    }
}

impl Plan {
    pub fn selected(&self) -> impl Iterator<Item = &WorkItem> {
        self.items.iter().filter(|w| w.selected())
    }
    /// Selected credentials per provider.
    pub fn per_provider(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for w in self.selected() {
            *m.entry(w.cred.provider.clone()).or_insert(0) += 1;
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob() {
        assert!(glob_match("ci-*", "ci-deploy"));
        assert!(glob_match("*-prod", "db-prod"));
        assert!(glob_match("a*c*e", "abcde"));
        assert!(!glob_match("a*c*e", "abcd"));
        assert!(glob_match("x", "x"));
        assert!(!glob_match("x", "xy"));
    }

    #[test]
    fn bad_selection_is_refused() {
        assert!(Selection::parse(&["colour=red".into()], &[]).is_err());
        assert!(Selection::parse(&["tag".into()], &[]).is_err());
        assert!(Selection::parse(&["tag=a".into()], &["owner=b".into()]).is_ok());
    }
}
