//! The plan: which credentials a run acts on, with which steps, in what order.
//! Pure: it never talks to a provider.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::{bail, Result};

use crate::playbook::model::Action;
use crate::playbook::{Credential, Playbook};
use crate::provider::capabilities;
use crate::report::Step;

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
pub fn glob_match(pattern: &str, s: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == s;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = s;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else { return false };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(pos) => rest = &rest[pos + part.len()..],
                None => return false,
            }
        }
    }
    true
}

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

impl Selection {
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
}

pub fn steps_for(c: &Credential) -> Vec<Step> {
    match c.action {
        Action::Revoke => vec![Step::Retire, Step::VerifyDead],
        Action::Rotate => {
            let mints = capabilities(c.target.kind()).is_some_and(|k| k.mints);
            let mut s = vec![Step::Stage];
            if !mints {
                s.push(Step::Apply);
            }
            s.extend([Step::Test, Step::Promote, Step::Retire, Step::VerifyDead]);
            s
        }
    }
}

pub fn build(playbook: &Playbook, selection: &Selection) -> Plan {
    let items: Vec<WorkItem> = playbook
        .credentials
        .iter()
        .map(|c| WorkItem { cred: Arc::new(c.clone()), skip: selection.reason_excluded(c), steps: steps_for(c) })
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

    let mut warnings = vec![];
    let no_probe: Vec<&str> = items.iter().filter(|w| w.selected() && !w.cred.verify.probe_old).map(|w| w.cred.id.as_str()).collect();
    if !no_probe.is_empty() {
        warnings.push(format!(
            "{} credential(s) have verify.probe_old: false; death is proven admin-side only: {}",
            no_probe.len(),
            abbreviate(&no_probe)
        ));
    }
    let unverifiable: Vec<&str> = items
        .iter()
        .filter(|w| w.selected())
        .filter(|w| matches!(&w.cred.target, crate::playbook::model::Target::VaultKvSecret(t) if !t.destroy_old))
        .map(|w| w.cred.id.as_str())
        .collect();
    if !unverifiable.is_empty() {
        warnings.push(format!(
            "{} KV secret(s) keep their old version (destroy_old: false) and will end `unverified`: {}",
            unverifiable.len(),
            abbreviate(&unverifiable)
        ));
    }
    Plan { items, waves, warnings }
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
