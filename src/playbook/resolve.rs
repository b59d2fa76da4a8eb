//! Validation and resolution of the merged playbook: references between
//! providers, credentials and stores, duplicates, capabilities, dependency
//! cycles and store collisions; defaults applied, deliveries expanded. The
//! kinds' own rules come from their adapters.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::loader::*;
use super::locate::{Pos, YamlPath};
use super::model::{Action, CredentialSpec, Delivery, ProviderConfig};
use super::{Credential, Diagnostic, Discovery, Location, Playbook, ProviderEntry, StoreLocation, Verify};
use crate::provider::kind::{self, capabilities, CheckCx, CredentialCx};

impl Loader<'_> {
    // -- validation and resolution ---------------------------------------------

    pub(super) fn resolve(&mut self, root_path: &Path) -> Playbook {
        let files: Vec<PathBuf> = self.sources.iter().map(|s| s.path.clone()).collect();
        let fingerprint = self.fingerprint();
        let all_data: Vec<FileData> = self.sources.iter_mut().map(|s| std::mem::take(&mut s.data)).collect();

        // Versions.
        for (file, data) in all_data.iter().enumerate() {
            if let Some(v) = data.version.filter(|v| *v != VERSION) {
                self.error(
                    file,
                    &YamlPath::root().key("version"),
                    format!("playbook version {v} is not supported; this release reads version {VERSION}"),
                    Some(format!("set `version: {VERSION}`, or use the keysweep release this playbook was written for")),
                );
            }
        }

        // Providers, merged across files.
        let mut providers: BTreeMap<String, ProviderEntry> = BTreeMap::new();
        for (file, data) in all_data.iter().enumerate() {
            for (name, config) in &data.providers {
                let path = YamlPath::root().key("providers").key(name.clone());
                let location = self.at_key(file, &path);
                if let Some(first) = providers.get(name) {
                    let msg = format!("provider `{name}` is declared twice; first at {}", first.location);
                    let d = Diagnostic::new(Some(location), msg).hint("rename one of them or remove the duplicate");
                    self.diags.push(d);
                    continue;
                }
                self.check_limits(file, &path, config);
                self.check_provider(file, &path, name, config);
                providers.insert(name.clone(), ProviderEntry { name: name.clone(), config: config.clone(), location });
            }
        }

        // Where stores without check-and-set keep their claims: a store that keeps its own.
        for (file, data) in all_data.iter().enumerate() {
            for (name, config) in &data.providers {
                let Some(ci) = config.spec().claims_in() else { continue };
                let path = YamlPath::root().key("providers").key(name.clone()).key("claims_in");
                match providers.get(&ci.provider).map(|e| e.config.kind()) {
                    None => self.unknown_provider(file, &path.key("provider"), &ci.provider, &providers),
                    Some(k) if kind::store_kind(k).is_some_and(|s| s.holds_claims) => {
                        if let Some(m) = store_path_problem("mount", &ci.mount) {
                            self.error(file, &path.key("mount"), m, Some("write the store mount's name, e.g. `secret`".into()));
                        }
                    }
                    Some(k) => {
                        let holders: Vec<&str> = kind::store_kinds().into_iter().filter(|(_, s)| s.holds_claims).map(|(k, _)| k).collect();
                        self.error(
                            file,
                            &path.key("provider"),
                            format!("`claims_in` names `{}`, a `{k}` provider, which cannot keep claims", ci.provider),
                            Some(format!("claims need a store with check-and-set: name a provider of kind {}", list(&holders))),
                        )
                    }
                }
            }
        }

        // Defaults, checked once where they are written.
        for (file, data) in all_data.iter().enumerate() {
            let path = YamlPath::root().key("defaults");
            if let Some(v) = &data.defaults.verify {
                self.check_attempts(file, &path.key("verify").key("attempts"), v.attempts);
                self.check_duration(file, &path.key("verify").key("interval"), v.interval.map(|h| h.0), true, MAX_SHORT_DURATION);
            }
            let d = &data.defaults;
            self.check_duration(file, &path.key("max_age"), d.max_age.map(|h| h.0), false, MAX_LONG_DURATION);
            self.check_duration(file, &path.key("grace_period"), d.grace_period.map(|h| h.0), true, MAX_GRACE_PERIOD);
            self.check_duration(file, &path.key("inactive_after"), d.inactive_after.map(|h| h.0).filter(|d| !d.is_zero()), false, MAX_LONG_DURATION);
            if let Some(ds) = &data.defaults.deliver_to {
                for (j, d) in ds.iter().enumerate() {
                    self.check_delivery(file, &path.key("deliver_to").index(j), d, &providers);
                }
            }
        }

        let discovery = self.resolve_discovery(&all_data, &providers);

        // Credentials, each made from its spec (which it replaces, so that
        // the two are not both held for every credential).
        let mut all_data = all_data;
        let specs: Vec<Vec<(usize, Pos, CredentialSpec)>> = all_data.iter_mut().map(|d| std::mem::take(&mut d.credentials)).collect();
        let total = specs.iter().map(Vec::len).sum();
        let mut credentials: Vec<Credential> = Vec::with_capacity(total);
        let mut origins: Vec<Origin> = Vec::with_capacity(total);
        for (file, specs) in specs.into_iter().enumerate() {
            let data = &all_data[file];
            for (index, pos, spec) in specs {
                let base = YamlPath::root().key("credentials").index(index);
                let problem = id_problem(&spec.id);
                let (cred, deliveries) = self.resolve_credential(file, &base, pos, spec, data, &providers, &discovery);
                if let Some(problem) = problem {
                    self.error(file, &base.key("id"), problem, Some("use letters, digits and `._/-`".into()));
                }
                credentials.push(cred);
                origins.push(Origin { file, index, deliveries });
            }
        }
        let mut first_by_id: HashMap<&str, usize> = HashMap::with_capacity(credentials.len());
        for (n, c) in credentials.iter().enumerate() {
            first_by_id.entry(c.id.as_str()).or_insert(n);
        }

        self.check_duplicate_ids();
        self.check_dependencies(&credentials, &origins, &first_by_id);
        self.check_store_collisions(&credentials, &origins);
        drop(first_by_id);

        Playbook { root: root_path.to_path_buf(), files, fingerprint, providers, credentials, discovery }
    }

    /// `discovery:` merged across files: ignore rules add up; `inactive_after`
    /// may be set in one file only.
    pub(super) fn resolve_discovery(&mut self, all_data: &[FileData], providers: &BTreeMap<String, ProviderEntry>) -> Discovery {
        let mut out = Discovery::default();
        let mut set_at: Option<Location> = None;
        for (file, data) in all_data.iter().enumerate() {
            let Some(d) = &data.discovery else { continue };
            let path = YamlPath::root().key("discovery");
            if let Some(ia) = d.inactive_after {
                let here = self.at(file, &path.key("inactive_after"));
                if let Some(first) = &set_at {
                    self.error(
                        file,
                        &path.key("inactive_after"),
                        format!("`discovery.inactive_after` is set twice; first at {first}"),
                        Some("set it once, in the root playbook".into()),
                    );
                } else if ia.0.is_zero() {
                    self.error(file, &path.key("inactive_after"), "`inactive_after` must be longer than 0s", Some("write e.g. `90d`".into()));
                } else if ia.0 > MAX_LONG_DURATION {
                    self.check_duration(file, &path.key("inactive_after"), Some(ia.0), false, MAX_LONG_DURATION);
                } else {
                    out.inactive_after = ia.0;
                    set_at = Some(here);
                }
            }
            for (i, rule) in d.ignore.iter().enumerate() {
                let rp = path.key("ignore").index(i);
                match providers.get(&rule.provider) {
                    None => self.unknown_provider(file, &rp.key("provider"), &rule.provider, providers),
                    Some(p) => {
                        if let Some(kind) = &rule.kind {
                            let owned = kind::kinds_of(p.config.kind());
                            if !owned.contains(&kind.as_str()) {
                                self.error(
                                    file,
                                    &rp.key("kind"),
                                    format!("a `{}` provider holds no `{kind}` items", p.config.kind()),
                                    Some(format!("use one of: {}, or leave `kind` out", list(&owned))),
                                );
                            }
                        }
                    }
                }
                if rule.id.trim().is_empty() {
                    self.error(file, &rp.key("id"), "ignore `id` is empty", Some("write the id `keysweep discover` shows, or a `*` pattern".into()));
                }
                if rule.reason.trim().is_empty() {
                    self.error(file, &rp.key("reason"), "ignore `reason` is empty", Some("say why this playbook does not manage it".into()));
                }
            }
            out.ignore.extend(d.ignore.iter().cloned());
        }
        out
    }

    pub(super) fn fingerprint(&self) -> String {
        let root_dir = self.sources.first().map(|s| folder_of(&s.canonical)).unwrap_or_default();
        let mut h = Sha256::new();
        for s in &self.sources {
            // Relative to the root file's folder, so the same playbook has the
            // same fingerprint whatever the working directory.
            let rel = s.canonical.strip_prefix(&root_dir).unwrap_or(&s.canonical);
            let rel = rel.to_string_lossy();
            h.update((rel.len() as u64).to_le_bytes());
            h.update(rel.as_bytes());
            h.update((s.text.len() as u64).to_le_bytes());
            h.update(s.text.as_bytes());
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    pub(super) fn check_limits(&mut self, file: usize, path: &YamlPath, config: &ProviderConfig) {
        let limits = config.limits();
        let lp = path.key("limits");
        let at_least_one = [
            ("concurrency", limits.concurrency.map(|v| v as u64)),
            ("rate_per_second", limits.rate_per_second.map(u64::from)),
            ("burst", limits.burst.map(u64::from)),
            ("max_attempts", limits.max_attempts.map(u64::from)),
        ];
        for (field, value) in at_least_one {
            if value == Some(0) {
                self.error(file, &lp.key(field), format!("`{field}` must be at least 1"), Some(format!("remove `{field}` to use the default")));
            }
        }
        self.check_duration(file, &lp.key("timeout"), limits.timeout.map(|t| t.0), false, MAX_SHORT_DURATION);
        match (limits.burst, limits.rate_per_second) {
            (Some(b), Some(r)) if b > r => self.error(
                file,
                &lp.key("burst"),
                format!("`burst` is {b}, above `rate_per_second` {r}: the rate would be exceeded within a second"),
                Some(format!("a burst is at most the rate: write `burst: {r}` or less, or remove it")),
            ),
            (Some(_), None) => self.error(
                file,
                &lp.key("burst"),
                "`burst` without `rate_per_second` limits nothing",
                Some("add `rate_per_second:` or remove `burst:`".into()),
            ),
            _ => {}
        }
        if let Some(n) = limits.max_attempts.filter(|n| *n > 100) {
            self.error(file, &lp.key("max_attempts"), format!("`max_attempts` is {n}; it must be within 1..=100"), Some("the default is 5".into()));
        }
    }

    /// A target's `generate` policy must be able to produce a secret.
    pub(super) fn check_generate(&mut self, file: usize, base: &YamlPath, g: &crate::secret::GeneratePolicy) {
        if let Err(m) = g.check() {
            let field = if m.starts_with("length") { "length" } else { "exclude" };
            self.error(
                file,
                &base.key("target").key("generate").key(field),
                format!("generate policy cannot be used: {m}"),
                Some("use a `length` within 16..=1024 and leave at least 10 characters after `exclude`".into()),
            );
        }
    }

    pub(super) fn check_attempts(&mut self, file: usize, path: &YamlPath, attempts: Option<u32>) {
        if let Some(a) = attempts.filter(|a| !(1..=100).contains(a)) {
            self.error(file, path, format!("verify `attempts` is {a}; it must be within 1..=100"), Some("the default is 5".into()));
        }
    }

    /// Checks one delivery as written at `path`.
    pub(super) fn check_delivery(&mut self, file: usize, path: &YamlPath, d: &Delivery, providers: &BTreeMap<String, ProviderEntry>) {
        match providers.get(&d.provider) {
            Some(p) => match kind::store_kind(p.config.kind()) {
                Some(store) => self.report_problems(file, path, (store.check_delivery)(d)),
                None => {
                    let stores: Vec<&str> = kind::store_kinds().iter().map(|(_, s)| s.described).collect();
                    self.error(
                        file,
                        &path.key("provider"),
                        format!("`{}` is a `{}` provider, which cannot store secrets", d.provider, p.config.kind()),
                        Some(format!("deliver to {}", stores.join(" or "))),
                    );
                }
            },
            None => self.unknown_provider(file, &path.key("provider"), &d.provider, providers),
        }
        if d.path.trim().is_empty() {
            self.error(file, &path.key("path"), "delivery `path` is empty", Some("write e.g. `apps/{id}`".into()));
        }
        // A path whose interpolation failed was reported already.
        let interpolation_failed = self.sources[file].reported.contains(&path.key("path").to_string());
        for ph in unknown_placeholders(&d.path).into_iter().filter(|_| !interpolation_failed) {
            self.error(
                file,
                &path.key("path"),
                format!("unknown placeholder `{ph}` in delivery path"),
                Some("only `{id}` (the credential id) is expanded".into()),
            );
        }
    }

    pub(super) fn unknown_provider(&mut self, file: usize, path: &YamlPath, name: &str, providers: &BTreeMap<String, ProviderEntry>) {
        if self.incomplete || self.broken_providers.contains(name) {
            return; // declared somewhere we could not read: not this entry's fault
        }
        // The hint reads every provider: made once per unknown name.
        let hint = match self.provider_hints.get(name) {
            Some(h) => h.clone(),
            None => {
                let names: Vec<&str> = providers.keys().map(String::as_str).collect();
                let hint = if names.is_empty() {
                    "no providers are declared; add one under `providers:`".to_string()
                } else {
                    match closest(name, names.iter().copied()) {
                        Some(c) => format!("did you mean `{c}`? declared providers: {}", list(&names)),
                        None => format!("declared providers: {}", list(&names)),
                    }
                };
                self.provider_hints.insert(name.to_string(), hint.clone());
                hint
            }
        };
        self.error(file, path, format!("unknown provider `{name}`"), Some(hint));
    }

    /// Validates one credential and resolves it with its file's defaults.
    /// Returns it with, per delivery, the path it was written at (if in the credential).
    /// Validates one credential (written at `base`, `pos`) and resolves it with its file's defaults.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn resolve_credential(
        &mut self,
        file: usize,
        base: &YamlPath,
        pos: Pos,
        spec_owned: CredentialSpec,
        data: &FileData,
        providers: &BTreeMap<String, ProviderEntry>,
        discovery: &Discovery,
    ) -> (Credential, Deliveries) {
        let spec = &spec_owned;
        let defaults = &data.defaults;
        let kind = spec.target.kind();

        // The provider that owns it.
        match providers.get(&spec.provider) {
            None => self.unknown_provider(file, &base.key("provider"), &spec.provider, providers),
            Some(p) => match kind::kind_info(kind).map(|k| k.provider) {
                Some(owner) if owner != p.config.kind() => {
                    let owners: Vec<&str> = providers.values().filter(|e| e.config.kind() == owner).map(|e| e.name.as_str()).collect();
                    let hint = if owners.is_empty() {
                        format!("declare a `{owner}` provider and name it in `provider:`")
                    } else {
                        format!("`{owner}` providers: {}", list(&owners))
                    };
                    self.error(
                        file,
                        &base.key("target").key("kind"),
                        format!(
                            "`{kind}` credentials are owned by a `{owner}` provider, but `{}` is a `{}` provider",
                            spec.provider,
                            p.config.kind()
                        ),
                        Some(hint),
                    );
                }
                Some(_) => {}
                None => self.error(file, &base.key("target").key("kind"), format!("no provider kind is known to own `{kind}`"), None),
            },
        }

        // What to do with it, and whether the kind can.
        let action = spec.action.or(defaults.action).unwrap_or(Action::Rotate);
        let action_path = if spec.action.is_some() { base.key("action") } else { base.clone() };
        let caps = capabilities(kind);
        // A person re-issues a manual credential: rotation needs no API to mint.
        let manual = spec.manual.as_deref().map(str::trim).filter(|m| !m.is_empty()).map(str::to_string);
        if spec.manual.is_some() && manual.is_none() {
            self.error(file, &base.key("manual"), "`manual:` is empty", Some("write the steps a person takes to re-issue the secret".into()));
        }
        match caps {
            None => self.error(file, &base.key("target").key("kind"), format!("no capabilities are known for `{kind}`"), None),
            Some(c) if data.defaults_ok || spec.action.is_some() => {
                let (possible, other) = match action {
                    Action::Rotate => (c.rotate || manual.is_some(), "revoke"),
                    Action::Revoke => (c.revoke, "rotate"),
                };
                if !possible {
                    let hint = (action == Action::Rotate && c.revoke && c.verify_dead).then(|| {
                        "or keep action: rotate and describe in `manual:` how a person re-issues it (keysweep then tests the new value, revokes the old one and proves it dead)".to_string()
                    });
                    self.error(file, &action_path, format!("`{}` is not possible for kind {kind}; use action: {other}", action.as_str()), hint);
                }
                if manual.is_some() && action == Action::Rotate && !c.needs_store {
                    self.error(
                        file,
                        &base.key("manual"),
                        format!("`manual:` needs a kind whose new value is delivered to a store, and `{kind}` is itself a store entry"),
                        Some("write the new value into the store entry with the store's own tools, or remove `manual:`".into()),
                    );
                }
            }
            Some(_) => {}
        }
        if manual.is_some() && action == Action::Revoke {
            self.error(
                file,
                &base.key("manual"),
                format!("`manual:` describes how a person re-issues a secret, but `{}` is revoked", spec.id),
                Some("remove `manual:`, or use action: rotate".into()),
            );
        }

        // Where new values go.
        let own_entry = spec.target.spec().own_entry(&spec.provider);
        let (deliveries, delivery_origin): (Vec<Delivery>, Deliveries) = match (&spec.deliver_to, own_entry) {
            (Some(ds), _) => {
                for (j, d) in ds.iter().enumerate() {
                    let p = base.key("deliver_to").index(j);
                    self.check_delivery(file, &p, d, providers);
                }
                (ds.clone(), Deliveries::Written)
            }
            // A secret that is itself a store entry: by default the new value goes there.
            (None, Some(own)) => (vec![own], Deliveries::Target),
            (None, _) => (defaults.deliver_to.clone().unwrap_or_default(), Deliveries::Defaults),
        };
        let needs_store = caps.is_some_and(|c| c.needs_store);
        let defaults_known = data.defaults_ok || spec.deliver_to.is_some();
        if action == Action::Rotate && needs_store && deliveries.is_empty() && defaults_known {
            let path = if spec.deliver_to.is_some() { base.key("deliver_to") } else { base.clone() };
            self.error(
                file,
                &path,
                format!("`{}` is rotated but its new value is delivered nowhere (`{kind}` needs a store)", spec.id),
                Some("add deliver_to: [{ provider: <vault provider>, path: \"apps/{id}\" }] here or under `defaults:`, or use action: revoke".into()),
            );
        }

        // The kind's own rules.
        if let Some(g) = spec.target.generate_policy() {
            self.check_generate(file, base, g);
        }
        let problems = spec.target.spec().check(&CheckCx { id: &spec.id, action, manual: manual.is_some() });
        self.report_problems(file, &base.key("target"), problems);
        // The provider's rules for this credential (what its settings allow).
        let owned = providers.get(&spec.provider).filter(|p| kind::kind_info(kind).is_some_and(|k| k.provider == p.config.kind()));
        if let Some(p) = owned.filter(|_| defaults_known && (data.defaults_ok || spec.action.is_some())) {
            let cx = CredentialCx { id: &spec.id, action, manual: manual.is_some(), stored: !deliveries.is_empty() };
            let problems = p.config.spec().check_credential(&spec.target, &cx);
            self.report_problems(file, base, problems);
        }

        // Verification, field by field over the defaults.
        let cv = spec.verify.clone().unwrap_or_else(empty_verify);
        let dv = defaults.verify.clone().unwrap_or_else(empty_verify);
        self.check_attempts(file, &base.key("verify").key("attempts"), cv.attempts);
        self.check_duration(file, &base.key("verify").key("interval"), cv.interval.map(|h| h.0), true, MAX_SHORT_DURATION);
        self.check_duration(file, &base.key("max_age"), spec.max_age.map(|h| h.0), false, MAX_LONG_DURATION);
        self.check_duration(file, &base.key("grace_period"), spec.grace_period.map(|h| h.0), true, MAX_GRACE_PERIOD);
        self.check_duration(file, &base.key("inactive_after"), spec.inactive_after.map(|h| h.0).filter(|d| !d.is_zero()), false, MAX_LONG_DURATION);
        let fallback = Verify::default();
        let verify = Verify {
            attempts: cv.attempts.or(dv.attempts).unwrap_or(fallback.attempts),
            interval: cv.interval.or(dv.interval).map(|h| h.0).unwrap_or(fallback.interval),
            probe_old: cv.probe_old.or(dv.probe_old).unwrap_or(fallback.probe_old),
        };

        let mut tags = defaults.tags.clone();
        for t in &spec.tags {
            if !tags.contains(t) {
                tags.push(t.clone());
            }
        }
        let duration =
            |own: Option<super::model::HumanDuration>, def: Option<super::model::HumanDuration>| -> Option<Duration> { own.or(def).map(|h| h.0) };

        // Inactivity and what a hygiene run does about it.
        let inactive_after = duration(spec.inactive_after, defaults.inactive_after).unwrap_or(discovery.inactive_after);
        if inactive_after.is_zero() {
            let at = if spec.inactive_after.is_some() { base.key("inactive_after") } else { YamlPath::root().key("defaults").key("inactive_after") };
            self.error(file, &at, "`inactive_after` must be longer than 0s", Some("write e.g. `90d`".into()));
        }
        let revoke_inactive = spec.revoke_inactive.or(defaults.revoke_inactive).unwrap_or(false);
        if spec.revoke_inactive == Some(true) && caps.is_some_and(|c| !c.revoke) {
            self.error(
                file,
                &base.key("revoke_inactive"),
                format!("`revoke_inactive` needs a kind that can be revoked, and `{kind}` cannot"),
                Some("remove `revoke_inactive`; `discover` still reports it when inactive".into()),
            );
        }

        // An owner left as the `discover --emit` marker.
        let owner = spec.owner.clone().or_else(|| defaults.owner.clone());
        if owner.as_deref().is_some_and(|o| o.trim_start().starts_with(crate::playbook::OWNER_MARKER)) {
            let at = if spec.owner.is_some() { base.key("owner") } else { YamlPath::root().key("defaults").key("owner") };
            self.error(
                file,
                &at,
                format!("the owner of `{}` is still the `{}` marker of a drafted entry", spec.id, crate::playbook::OWNER_MARKER),
                Some("write the person or team answerable for this credential".into()),
            );
        }

        let deliver_to = deliveries.iter().map(|d| StoreLocation::from_delivery(d, &spec.id)).collect();
        let max_age = duration(spec.max_age, defaults.max_age);
        let grace_period = duration(spec.grace_period, defaults.grace_period).or_else(|| {
            // An alternating pair retires the account consumers may have
            // just read from the store: give them time to log in with it.
            let pair = spec.target.spec().alternating();
            (pair && action == Action::Rotate).then_some(super::DEFAULT_ALTERNATING_GRACE)
        });
        let location = self.loc(file, pos);
        let CredentialSpec { id, provider, target, depends_on, description, .. } = spec_owned;
        let cred = Credential {
            id,
            owner,
            provider,
            action,
            target,
            deliver_to,
            verify,
            tags,
            max_age,
            grace_period,
            depends_on,
            description,
            inactive_after,
            revoke_inactive,
            manual,
            location,
        };
        (cred, delivery_origin)
    }

    /// Ids are unique across all files; credentials that did not deserialize count too.
    pub(super) fn check_duplicate_ids(&mut self) {
        let ids = std::mem::take(&mut self.ids);
        let mut first: HashMap<&str, (usize, Pos)> = HashMap::with_capacity(ids.len());
        for (id, file, index, pos) in &ids {
            match first.get(id.as_str()) {
                Some(&(f, p)) => {
                    let msg = format!("duplicate credential id `{id}`; first defined at {}", self.loc(f, p));
                    let path = YamlPath::root().key("credentials").index(*index).key("id");
                    self.error(*file, &path, msg, Some("credential ids are unique across all included files".into()));
                }
                None => {
                    first.insert(id, (*file, *pos));
                }
            }
        }
    }

    pub(super) fn check_dependencies(&mut self, creds: &[Credential], origins: &[Origin], first_by_id: &HashMap<&str, usize>) {
        // Edges to known credentials; unknown ids are reported. A "did you
        // mean" reads every id: it is looked for once per unknown id, for at
        // most MAX_ID_SUGGESTIONS of them (5,000 references to one missing id
        // once took 41 s), among the ids in load order (ties: the first).
        let candidates: Vec<&str> =
            creds.iter().enumerate().filter(|(n, c)| first_by_id.get(c.id.as_str()) == Some(n)).map(|(_, c)| c.id.as_str()).collect();
        let mut suggestions: HashMap<&str, Option<&str>> = HashMap::new();
        let mut edges: Vec<Vec<(usize, usize)>> = vec![Vec::new(); creds.len()];
        for (n, c) in creds.iter().enumerate() {
            if first_by_id.get(c.id.as_str()) != Some(&n) {
                continue; // a duplicate, already reported
            }
            let o = &origins[n];
            for (j, dep) in c.depends_on.iter().enumerate() {
                match first_by_id.get(dep.as_str()) {
                    Some(&m) => edges[n].push((m, j)),
                    None if self.incomplete || self.broken_ids.contains(dep) => {}
                    None => {
                        let suggestion = match suggestions.get(dep.as_str()) {
                            Some(s) => *s,
                            None if suggestions.len() < MAX_ID_SUGGESTIONS => {
                                let s = closest(dep, candidates.iter().copied());
                                suggestions.insert(dep, s);
                                s
                            }
                            None => None,
                        };
                        let hint = match suggestion {
                            Some(c) => format!("did you mean `{c}`?"),
                            None => "`depends_on` lists ids of credentials in this playbook or its includes".into(),
                        };
                        self.error(
                            o.file,
                            &o.base().key("depends_on").index(j),
                            format!("`{}` depends on `{dep}`, which is not a credential id", c.id),
                            Some(hint),
                        );
                    }
                }
            }
        }

        // Cycles: every edge that closes one, found by depth-first search.
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            OnPath,
            Done,
        }
        let mut mark = vec![Mark::New; creds.len()];
        for start in 0..creds.len() {
            if mark[start] != Mark::New {
                continue;
            }
            // Iterative DFS: (node, next edge to follow).
            let mut path: Vec<(usize, usize)> = vec![(start, 0)];
            mark[start] = Mark::OnPath;
            while let Some(top) = path.last_mut() {
                let (node, next) = (top.0, top.1);
                let Some(&(to, j)) = edges[node].get(next) else {
                    mark[node] = Mark::Done;
                    path.pop();
                    continue;
                };
                top.1 += 1;
                match mark[to] {
                    Mark::New => {
                        mark[to] = Mark::OnPath;
                        path.push((to, 0));
                    }
                    Mark::OnPath => {
                        // `node` → `to` closes the cycle `to` → ... → `node`.
                        let from = path.iter().position(|(n, _)| *n == to).unwrap_or(0);
                        let mut chain = vec![creds[node].id.as_str()];
                        chain.extend(path[from..].iter().map(|(n, _)| creds[*n].id.as_str()));
                        let o = &origins[node];
                        self.error(
                            o.file,
                            &o.base().key("depends_on").index(j),
                            format!("dependency cycle: {}", chain.join(" → ")),
                            Some("remove one of these `depends_on` entries".into()),
                        );
                    }
                    Mark::Done => {}
                }
            }
        }
    }

    pub(super) fn check_store_collisions(&mut self, creds: &[Credential], origins: &[Origin]) {
        let mut seen: HashMap<&StoreLocation, usize> = HashMap::with_capacity(creds.len());
        for (n, c) in creds.iter().enumerate() {
            let o = &origins[n];
            for (j, loc) in c.deliver_to.iter().enumerate() {
                match seen.get(loc) {
                    Some(&m) if m == n => {
                        let at = o.delivery(j);
                        self.error(o.file, &at, format!("`{}` is delivered to {loc} twice", c.id), Some("remove the repeated delivery".into()));
                    }
                    Some(&m) => {
                        let at = o.delivery(j);
                        self.error(
                            o.file,
                            &at,
                            format!("`{}` is delivered to {loc}, where `{}` ({}) is delivered too", c.id, creds[m].id, creds[m].location),
                            Some("each credential needs its own store location; use `{id}` in the path".into()),
                        );
                    }
                    None => {
                        seen.insert(loc, n);
                    }
                }
            }
        }
    }
}

/// Where a resolved credential is written, to point at it when a check
/// across credentials fails: its file and index in that file's `credentials:`.
pub(super) struct Origin {
    file: usize,
    index: usize,
    deliveries: Deliveries,
}

/// Where a credential's deliveries come from.
pub(super) enum Deliveries {
    /// Its own `deliver_to:`.
    Written,
    /// Its target, a store entry itself.
    Target,
    /// Its file's `defaults:` (pointed at as the credential itself).
    Defaults,
}

impl Origin {
    fn base(&self) -> YamlPath {
        YamlPath::root().key("credentials").index(self.index)
    }
    /// The path of its `j`-th delivery.
    fn delivery(&self, j: usize) -> YamlPath {
        match self.deliveries {
            Deliveries::Written => self.base().key("deliver_to").index(j),
            Deliveries::Target if j == 0 => self.base().key("target"),
            _ => self.base(),
        }
    }
}

/// Unknown `depends_on` ids for which a close id is looked for.
const MAX_ID_SUGGESTIONS: usize = 32;

pub(super) fn empty_verify() -> super::model::VerifyPolicy {
    super::model::VerifyPolicy { attempts: None, interval: None, probe_old: None }
}
