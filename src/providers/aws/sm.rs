//! Secrets Manager: a delivery store with AWS's staging labels, and secrets
//! whose value is itself the credential.
//!
//! A value is staged with PutSecretValue under the label AWSPENDING and a
//! ClientRequestToken derived from the run's nonce (so a resumed stage is the
//! same version, and the version id identifies the run). Promotion moves
//! AWSCURRENT to it — AWS then labels the old version AWSPREVIOUS — and removes
//! AWSPENDING. A JSON secret keeps its other keys. A store secret that does
//! not exist yet is created with `{}` as its current version, since AWS makes
//! the first version of a secret current whatever label it is given.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::config::AwsSecretTarget;
use super::iam::KEY_ID;
use super::{fmt_date, map_err, AwsProvider};
use crate::playbook::model::Target;
use crate::playbook::StoreLocation;
use crate::provider::seen;
use crate::provider::{ErrorKind, Handle, InventoryItem, Minted, Provider, ProviderError, Store, StoredValue, Verdict};
use crate::secret::{Delivered, ExposeSecret, SecretString};

const PENDING: &str = "AWSPENDING";
const CURRENT: &str = "AWSCURRENT";

/// The version id a value staged under `nonce` gets (a UUID, as AWS requires).
fn version_for(nonce: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("keysweep:{nonce}").as_bytes()).to_string()
}

/// Splits a SecretString into the value (`field`, or the whole string when
/// `field` is empty) and the other keys of a JSON object.
fn parse(s: &str, field: &str) -> Option<Delivered> {
    if field.is_empty() {
        return Some(Delivered::new(SecretString::from(s.to_string())));
    }
    let obj: Map<String, Value> = serde_json::from_str(s).ok()?;
    let value = obj.get(field)?.as_str()?.to_string();
    let fields = obj.iter().filter(|(k, _)| k.as_str() != field).filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string()))).collect();
    Some(Delivered { value: SecretString::from(value), fields })
}

/// One version of a secret as GetSecretValue answered it.
struct Got {
    version: String,
    stages: Vec<String>,
    /// The SecretString, in a zeroizing box (absent for a binary secret).
    string: Option<secrecy::SecretBox<String>>,
}

impl Got {
    fn string(&self) -> Option<&str> {
        use secrecy::ExposeSecret as _;
        self.string.as_ref().map(|s| s.expose_secret().as_str())
    }
}

impl AwsProvider {
    /// The key of one place of a secret in the lifecycle's memo (`seen`):
    /// `stage:AWSCURRENT`, `version:<id>`.
    fn sm_key(&self, secret: &str, place: &str) -> String {
        format!("sm|{}|{secret}|{place}", self.name)
    }

    fn sm_remember(&self, secret: &str, place: &str, got: &Got) {
        match got.string() {
            Some(body) => seen::put(&self.sm_key(secret, place), got.version.clone(), got.stages.clone(), body.to_string()),
            None => seen::forget(&self.sm_key(secret, place)),
        }
    }

    /// GetSecretValue by stage or version; `None` when there is no such
    /// secret/version. What this lifecycle already read or wrote there (see
    /// `crate::provider::seen`) answers without a request.
    async fn get(&self, secret: &str, stage: Option<&str>, version: Option<&str>) -> Result<Option<Got>, ProviderError> {
        let place = match (stage, version) {
            (Some(s), None) => Some(format!("stage:{s}")),
            (None, Some(v)) => Some(format!("version:{v}")),
            _ => None,
        };
        if let Some(place) = &place {
            let remembered: Option<Option<Got>> = seen::get(&self.sm_key(secret, place), |v| match v {
                seen::View::Held { version, labels, body } => Some(Got {
                    version: version.to_string(),
                    stages: labels.to_vec(),
                    string: Some(secrecy::SecretBox::new(Box::new(body.to_string()))),
                }),
                seen::View::Absent { .. } => None,
            });
            // Known: what was read or written there, or that nothing is there.
            if let Some(got) = remembered {
                return Ok(got);
            }
        }
        let r = self
            .call("secretsmanager.get_secret_value", || async {
                self.sm
                    .get_secret_value()
                    .secret_id(secret)
                    .set_version_stage(stage.map(str::to_string))
                    .set_version_id(version.map(str::to_string))
                    .send()
                    .await
                    .map_err(|e| map_err("secretsmanager.get_secret_value", e))
            })
            .await;
        match r {
            // A 2xx without the version id is not a whole answer: never read as a value.
            Ok(o) if o.version_id().is_none() => Err(ProviderError::new(
                ErrorKind::Unavailable,
                "secretsmanager.get_secret_value",
                format!("`{secret}`: the answer has no VersionId; retry, or check what sits between keysweep and Secrets Manager"),
            )),
            Ok(o) => {
                let got = Got {
                    version: o.version_id().unwrap_or_default().to_string(),
                    stages: o.version_stages().to_vec(),
                    string: o.secret_string().map(|s| secrecy::SecretBox::new(Box::new(s.to_string()))),
                };
                drop(o);
                if let Some(place) = &place {
                    self.sm_remember(secret, place, &got);
                }
                self.sm_remember(secret, &format!("version:{}", got.version), &got);
                Ok(Some(got))
            }
            Err(e) if e.kind == ErrorKind::NotFound => {
                if let Some(place) = &place {
                    seen::absent(&self.sm_key(secret, place), "");
                }
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Version id → staging labels; `None` when the secret does not exist.
    async fn stages(&self, secret: &str) -> Result<Option<HashMap<String, Vec<String>>>, ProviderError> {
        let r = self
            .call("secretsmanager.describe_secret", || async {
                self.sm.describe_secret().secret_id(secret).send().await.map_err(|e| map_err("secretsmanager.describe_secret", e))
            })
            .await;
        match r {
            Ok(o) => Ok(Some(o.version_ids_to_stages().cloned().unwrap_or_default())),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn move_label(&self, secret: &str, label: &str, to: Option<&str>, from: Option<&str>) -> Result<(), ProviderError> {
        self.call("secretsmanager.update_secret_version_stage", || async {
            self.sm
                .update_secret_version_stage()
                .secret_id(secret)
                .version_stage(label)
                .set_move_to_version_id(to.map(str::to_string))
                .set_remove_from_version_id(from.map(str::to_string))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| map_err("secretsmanager.update_secret_version_stage", e))
        })
        .await
    }

    fn labelled<'a>(stages: &'a HashMap<String, Vec<String>>, label: &str) -> Option<&'a str> {
        stages.iter().find(|(_, l)| l.iter().any(|x| x == label)).map(|(v, _)| v.as_str())
    }

    pub(super) async fn sm_current_handle(&self, t: &AwsSecretTarget, stored: Option<&Handle>) -> Result<Handle, ProviderError> {
        if let Some(v) = stored.and_then(|s| s.get("version")) {
            return Ok(BTreeMap::from([("version".to_string(), v.clone())]));
        }
        let stages = self.stages(&t.name).await?.unwrap_or_default();
        Ok(Self::labelled(&stages, CURRENT).map(|v| BTreeMap::from([("version".to_string(), v.to_string())])).unwrap_or_default())
    }

    pub(super) async fn sm_generate(&self, t: &AwsSecretTarget) -> Result<Option<SecretString>, ProviderError> {
        if !t.aws_random_password {
            return Ok(None);
        }
        let g = &t.generate;
        let out = self
            .call("secretsmanager.get_random_password", || async {
                self.sm
                    .get_random_password()
                    .password_length(g.length as i64)
                    .exclude_characters(g.exclude.clone())
                    .exclude_punctuation(!matches!(g.charset, crate::secret::Charset::Printable))
                    .send()
                    .await
                    .map_err(|e| map_err("secretsmanager.get_random_password", e))
            })
            .await?;
        out.random_password()
            .map(|p| Some(SecretString::from(p.to_string())))
            .ok_or_else(|| ProviderError::new(ErrorKind::Other, "secretsmanager.get_random_password", "answer has no password"))
    }

    /// The old version of a rotated secret is dead when it no longer carries AWSCURRENT.
    /// The new value is what the secret holds: staged as AWSPENDING or, once
    /// promoted, AWSCURRENT. The secret is its own owning system, so reading
    /// it back is the test; an answer that cannot be read is unknown.
    pub(super) async fn sm_test(&self, t: &AwsSecretTarget, new: &Delivered) -> Verdict {
        let field = t.field.clone().unwrap_or_default();
        // What this lifecycle wrote there (a PutSecretValue AWS answered)
        // counts as read back: the memo holds exactly what AWS accepted. A
        // resumed run reads it.
        for stage in [PENDING, CURRENT] {
            match self.get(&t.name, Some(stage), None).await {
                Ok(Some(o)) => {
                    let held = o.string().and_then(|s| parse(s, &field));
                    if held.is_some_and(|d| d.value.expose_secret() == new.value.expose_secret()) {
                        return Verdict::Alive(format!("the {stage} version of `{}` holds the new value", t.name));
                    }
                }
                Ok(None) => {}
                Err(e) => return Verdict::Unknown(e.to_string()),
            }
        }
        Verdict::Dead(format!("neither {PENDING} nor {CURRENT} of `{}` holds the new value", t.name))
    }

    pub(super) async fn sm_verify_dead(&self, t: &AwsSecretTarget, old: &Handle) -> Verdict {
        let Some(v) = old.get("version") else { return Verdict::Dead("no earlier version existed".into()) };
        match self.stages(&t.name).await {
            Ok(Some(stages)) => {
                let labels = stages.get(v).cloned().unwrap_or_default();
                if labels.iter().any(|l| l == CURRENT) {
                    Verdict::Alive(format!("version {v} is still AWSCURRENT"))
                } else {
                    let now = Self::labelled(&stages, CURRENT).unwrap_or("none");
                    let was = if labels.is_empty() { "no label".to_string() } else { labels.join(",") };
                    Verdict::Dead(format!("version {v} is no longer AWSCURRENT (now {was}); current is {now}"))
                }
            }
            Ok(None) => Verdict::Dead(format!("secret `{}` no longer exists", t.name)),
            Err(e) => Verdict::Unknown(e.to_string()),
        }
    }

    pub(super) async fn sm_inventory(&self) -> Result<Vec<InventoryItem>, ProviderError> {
        let mut items = vec![];
        let mut token: Option<String> = None;
        loop {
            let t = token.clone();
            let out = self
                .call("secretsmanager.list_secrets", || async {
                    self.sm.list_secrets().set_next_token(t.clone()).send().await.map_err(|e| map_err("secretsmanager.list_secrets", e))
                })
                .await?;
            for s in out.secret_list() {
                let Some(name) = s.name() else { continue };
                let mut details = BTreeMap::new();
                details.insert("rotation_enabled".to_string(), s.rotation_enabled().unwrap_or(false).to_string());
                if let Some(d) = fmt_date(s.last_changed_date()) {
                    details.insert("last_changed".into(), d);
                }
                let tags: Vec<String> =
                    s.tags().iter().map(|t| format!("{}={}", t.key().unwrap_or_default(), t.value().unwrap_or_default())).collect();
                if !tags.is_empty() {
                    details.insert("tags".into(), tags.join(","));
                }
                let pending = s
                    .secret_versions_to_stages()
                    .is_some_and(|m| m.values().any(|l| l.iter().any(|x| x == PENDING) && !l.iter().any(|x| x == CURRENT)));
                details.insert("pending".into(), pending.to_string());
                items.push(InventoryItem {
                    kind: "aws_secretsmanager_secret".into(),
                    id: name.to_string(),
                    created: fmt_date(s.created_date()),
                    // LastChangedDate moves on any change (tags too), so it can
                    // only make a secret look younger than it is; SM's own
                    // rotation date wins when there is one.
                    rotated: fmt_date(s.last_rotated_date()).or_else(|| fmt_date(s.last_changed_date())),
                    // "omitted if the secret has never been retrieved" (ListSecrets).
                    last_used: fmt_date(s.last_accessed_date()),
                    usage_tracked: true,
                    details,
                });
            }
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        Ok(items)
    }
}

#[async_trait]
impl Store for AwsProvider {
    async fn read_current(&self, loc: &StoreLocation) -> Result<Option<StoredValue>, ProviderError> {
        let Some(o) = self.get(&loc.path, Some(CURRENT), None).await? else { return Ok(None) };
        let version = o.version.clone();
        Ok(o.string().and_then(|s| parse(s, &loc.field)).map(|delivered| StoredValue { delivered, version }))
    }

    async fn read_version(&self, loc: &StoreLocation, version: &str) -> Result<Option<Delivered>, ProviderError> {
        let Some(o) = self.get(&loc.path, None, Some(version)).await? else { return Ok(None) };
        Ok(o.string().and_then(|s| parse(s, &loc.field)))
    }

    async fn read_pending(&self, loc: &StoreLocation) -> Result<Option<(Delivered, String)>, ProviderError> {
        let Some(o) = self.get(&loc.path, Some(PENDING), None).await? else { return Ok(None) };
        if o.stages.iter().any(|s| s == CURRENT) {
            return Ok(None); // a leftover label on the current version: nothing pending
        }
        let tag = o.version.clone();
        Ok(o.string().and_then(|s| parse(s, &loc.field)).map(|d| (d, tag)))
    }

    /// A version staged under a nonce has the version id derived from it.
    fn promoted_by(&self, current: &StoredValue, nonce: &str) -> bool {
        current.version == version_for(nonce)
    }

    fn tag_for(&self, nonce: &str) -> String {
        version_for(nonce)
    }

    async fn stage(&self, loc: &StoreLocation, value: &Delivered, nonce: &str) -> Result<(), ProviderError> {
        let current = self.get(&loc.path, Some(CURRENT), None).await;
        let exists = match &current {
            Ok(Some(_)) => true,
            Ok(None) => self.stages(&loc.path).await?.is_some(),
            Err(e) => return Err(e.clone()),
        };
        if !exists {
            // The first version of a secret always gets AWSCURRENT (AWS docs,
            // PutSecretValue). So that the new value is still staged as
            // AWSPENDING, and promoted only after its test, the secret is
            // created with an empty JSON object as its current version.
            let placeholder = if loc.field.is_empty() { "" } else { "{}" };
            let r = self
                .call("secretsmanager.create_secret", || async {
                    let mut req = self.sm.create_secret().name(&loc.path).description("managed by keysweep");
                    if !placeholder.is_empty() {
                        req = req.secret_string(placeholder);
                    }
                    req.send().await.map(|_| ()).map_err(|e| map_err("secretsmanager.create_secret", e))
                })
                .await;
            seen::forget_prefix(&self.sm_key(&loc.path, ""));
            match r {
                Ok(()) => {}
                Err(e) if e.kind == ErrorKind::Conflict => {} // created meanwhile
                Err(e) => return Err(e),
            }
        }
        let secret_string = if loc.field.is_empty() {
            value.value.expose_secret().to_string()
        } else {
            // Keep the secret's other keys; never write a version built
            // without them from a current value that is not a JSON object.
            let mut obj: Map<String, Value> = match current.ok().flatten() {
                None => Map::new(),
                Some(o) => match o.string().map(serde_json::from_str::<Map<String, Value>>) {
                    Some(Ok(m)) => m,
                    _ => {
                        return Err(ProviderError::new(
                            ErrorKind::Config,
                            "secretsmanager.stage",
                            format!(
                                "the current value of `{}` is not a JSON object, so its other keys cannot be kept beside field `{}`; set `field: \"\"` to rotate the whole string, or fix the secret",
                                loc.path, loc.field
                            ),
                        ))
                    }
                },
            };
            for (k, v) in &value.fields {
                obj.insert(k.clone(), Value::String(v.clone()));
            }
            obj.insert(loc.field.clone(), Value::String(value.value.expose_secret().to_string()));
            Value::Object(obj).to_string()
        };
        let version = version_for(nonce);
        let r = self
            .call("secretsmanager.put_secret_value", || async {
                self.sm
                    .put_secret_value()
                    .secret_id(&loc.path)
                    .client_request_token(&version)
                    .secret_string(secret_string.clone())
                    .version_stages(PENDING)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| map_err("secretsmanager.put_secret_value", e))
            })
            .await;
        // What AWS accepted is what AWSPENDING holds now.
        let got = Got { version: version.clone(), stages: vec![PENDING.to_string()], string: Some(secrecy::SecretBox::new(Box::new(secret_string))) };
        match &r {
            Ok(()) => {
                self.sm_remember(&loc.path, &format!("stage:{PENDING}"), &got);
                self.sm_remember(&loc.path, &format!("version:{version}"), &got);
            }
            Err(_) => {
                seen::forget(&self.sm_key(&loc.path, &format!("stage:{PENDING}")));
                seen::forget(&self.sm_key(&loc.path, &format!("version:{version}")));
            }
        }
        r
    }

    async fn promote(&self, loc: &StoreLocation, nonce: &str) -> Result<String, ProviderError> {
        let version = version_for(nonce);
        // This lifecycle staged `version` and read which version is
        // AWSCURRENT: move the label from exactly that one. AWS refuses the
        // move when `RemoveFromVersionId` is not the version the label is on
        // (someone changed the secret since), and the labels are then read.
        let seen_at = |stage: &str| {
            seen::get(&self.sm_key(&loc.path, &format!("stage:{stage}")), |v| match v {
                seen::View::Held { version, .. } => Some(version.to_string()),
                seen::View::Absent { .. } => None,
            })
            .flatten()
        };
        if let (Some(p), Some(c)) = (seen_at(PENDING), seen_at(CURRENT)) {
            if p == version && c != version {
                let moved = self.move_label(&loc.path, CURRENT, Some(&version), Some(&c)).await.is_ok()
                    && self.move_label(&loc.path, PENDING, None, Some(&version)).await.is_ok();
                if moved {
                    // The value staged (remembered) is now the current one.
                    let staged = self.get(&loc.path, Some(PENDING), None).await.ok().flatten();
                    seen::forget_prefix(&self.sm_key(&loc.path, "stage:"));
                    if let Some(mut got) = staged {
                        got.stages = vec![CURRENT.to_string()];
                        self.sm_remember(&loc.path, &format!("stage:{CURRENT}"), &got);
                    }
                    seen::absent(&self.sm_key(&loc.path, &format!("stage:{PENDING}")), "");
                    return Ok(version);
                }
            }
        }
        // Whatever the memo holds about labels: they are read now. (A
        // version's value never changes; those entries stay.)
        seen::forget_prefix(&self.sm_key(&loc.path, "stage:"));
        let stages = self.stages(&loc.path).await?.unwrap_or_default();
        let Some(labels) = stages.get(&version) else {
            return Err(ProviderError::new(
                ErrorKind::NotFound,
                "secretsmanager.promote",
                format!("no version staged by this run in `{}`", loc.path),
            ));
        };
        // Each move is checked against what took effect when it errs: an
        // answer lost after Secrets Manager moved the label makes the retry
        // fail (`AWSCURRENT not found in version …`) although the move is done.
        if !labels.iter().any(|l| l == CURRENT) {
            let current = Self::labelled(&stages, CURRENT);
            if let Err(e) = self.move_label(&loc.path, CURRENT, Some(&version), current).await {
                let now = self.stages(&loc.path).await?.unwrap_or_default();
                if Self::labelled(&now, CURRENT) != Some(version.as_str()) {
                    return Err(e);
                }
            }
        }
        if labels.iter().any(|l| l == PENDING) || Self::labelled(&stages, PENDING) == Some(version.as_str()) {
            if let Err(e) = self.move_label(&loc.path, PENDING, None, Some(&version)).await {
                let now = self.stages(&loc.path).await?.unwrap_or_default();
                if now.get(&version).is_some_and(|l| l.iter().any(|x| x == PENDING)) {
                    return Err(e);
                }
            }
        }
        Ok(version)
    }

    async fn discard_pending(&self, loc: &StoreLocation) -> Result<(), ProviderError> {
        seen::forget(&self.sm_key(&loc.path, &format!("stage:{PENDING}")));
        let Some(stages) = self.stages(&loc.path).await? else { return Ok(()) };
        if let Some(v) = Self::labelled(&stages, PENDING).map(str::to_string) {
            self.move_label(&loc.path, PENDING, None, Some(&v)).await?;
        }
        Ok(())
    }

    async fn list_pending(&self, _mount: &str) -> Result<Vec<String>, ProviderError> {
        Ok(self.sm_inventory().await?.into_iter().filter(|i| i.details.get("pending").map(String::as_str) == Some("true")).map(|i| i.id).collect())
    }
}

fn unsupported(op: &'static str, target: &Target) -> ProviderError {
    ProviderError::new(ErrorKind::Unsupported, op, format!("aws provider does not {op} `{}`", target.kind()))
}

#[async_trait]
impl Provider for AwsProvider {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "aws"
    }
    fn request_count(&self) -> Option<u64> {
        Some(AwsProvider::request_count(self))
    }

    fn adaptive(&self) -> Option<std::sync::Arc<crate::provider::adaptive::AdaptiveLimit>> {
        Some(AwsProvider::adaptive(self))
    }

    fn is_own_login(&self, target: &Target, old: &Handle) -> bool {
        matches!(target, Target::AwsIamAccessKey(_)) && self.own_key_id.get().is_some_and(|own| old.get(KEY_ID) == Some(own))
    }

    async fn current_handle(&self, target: &Target, stored: Option<&Handle>) -> Result<Handle, ProviderError> {
        match target {
            Target::AwsIamAccessKey(t) => {
                let id = stored.and_then(|s| s.get(KEY_ID)).cloned().or_else(|| t.access_key_id.clone()).ok_or_else(|| {
                    ProviderError::new(
                        ErrorKind::Config,
                        "aws.current_handle",
                        "no access key id known for the key in service: set target.access_key_id",
                    )
                })?;
                Ok(BTreeMap::from([(KEY_ID.to_string(), id)]))
            }
            Target::AwsSecretsmanagerSecret(t) => self.sm_current_handle(t, stored).await,
            other => Err(unsupported("current_handle", other)),
        }
    }

    fn handle_from_fields(&self, _target: &Target, fields: &BTreeMap<String, String>) -> Handle {
        fields.iter().filter(|(k, _)| k.as_str() == KEY_ID).map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    async fn mint(&self, target: &Target, old: &Handle, _nonce: &str) -> Result<Minted, ProviderError> {
        match target {
            Target::AwsIamAccessKey(t) => self.iam_mint(t, old).await,
            other => Err(unsupported("mint", other)),
        }
    }

    async fn cleanup_minted(&self, target: &Target, old: &Handle, nonce: &str, keep: Option<&Handle>) -> Result<usize, ProviderError> {
        self.cleanup_minted_since(target, old, nonce, keep, None).await
    }

    async fn cleanup_minted_since(
        &self,
        target: &Target,
        old: &Handle,
        nonce: &str,
        keep: Option<&Handle>,
        since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<usize, ProviderError> {
        match target {
            Target::AwsIamAccessKey(t) => self.iam_cleanup(t, old, nonce, keep, since.map(|s| s.timestamp())).await,
            _ => Ok(0),
        }
    }

    async fn generate(&self, target: &Target) -> Result<Option<SecretString>, ProviderError> {
        match target {
            Target::AwsSecretsmanagerSecret(t) => self.sm_generate(t).await,
            _ => Ok(None),
        }
    }

    async fn apply(&self, target: &Target, _new: &Delivered) -> Result<(), ProviderError> {
        match target {
            // The secret is its own owning system: promotion applies it.
            Target::AwsSecretsmanagerSecret(_) => Ok(()),
            other => Err(unsupported("apply", other)),
        }
    }

    async fn test(&self, target: &Target, new: &Delivered, handle: &Handle) -> Verdict {
        match target {
            Target::AwsIamAccessKey(t) => self.iam_test(t, new, handle).await,
            Target::AwsSecretsmanagerSecret(t) => self.sm_test(t, new).await,
            other => Verdict::Unknown(unsupported("test", other).to_string()),
        }
    }

    async fn retire(&self, target: &Target, old: &Handle) -> Result<(), ProviderError> {
        match target {
            Target::AwsIamAccessKey(t) => self.iam_retire(t, old).await,
            // AWS keeps the old version as AWSPREVIOUS; promotion retired it.
            Target::AwsSecretsmanagerSecret(_) => Ok(()),
            other => Err(unsupported("retire", other)),
        }
    }

    fn verify_uses_old_value(&self, target: &Target) -> bool {
        // A Secrets Manager version is proven dead from its labels alone.
        !matches!(target, Target::AwsSecretsmanagerSecret(_))
    }

    async fn verify_dead(&self, target: &Target, old: &Handle, old_value: Option<&SecretString>) -> Verdict {
        match target {
            Target::AwsIamAccessKey(t) => self.iam_verify_dead(t, old, old_value).await,
            Target::AwsSecretsmanagerSecret(t) => self.sm_verify_dead(t, old).await,
            other => Verdict::Unknown(unsupported("verify_dead", other).to_string()),
        }
    }

    async fn inventory(&self) -> Result<Vec<InventoryItem>, ProviderError> {
        let mut items = self.iam_inventory().await?;
        items.extend(self.sm_inventory().await?);
        Ok(items)
    }

    fn as_store(&self) -> Option<&dyn Store> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ids_are_stable_uuids_per_nonce() {
        let a = version_for("r1/x");
        assert_eq!(a, version_for("r1/x"));
        assert_ne!(a, version_for("r1/y"));
        assert!(uuid::Uuid::parse_str(&a).is_ok());
    }

    #[test]
    fn parses_plain_and_json_secrets() {
        let d = parse("plain-value", "").unwrap();
        assert_eq!(d.value.expose_secret(), "plain-value");
        let d = parse(r#"{"value":"v","access_key_id":"AKIA1","n":1}"#, "value").unwrap();
        assert_eq!(d.value.expose_secret(), "v");
        assert_eq!(d.fields.get("access_key_id").map(String::as_str), Some("AKIA1"));
        assert!(parse("not json", "value").is_none());
        assert!(parse(r#"{"other":"x"}"#, "value").is_none());
    }
}
