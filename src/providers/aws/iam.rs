//! IAM access keys.

use std::collections::BTreeMap;

use aws_credential_types::Credentials;
use aws_sdk_iam::types::StatusType;

use super::config::AwsIamKeyTarget;
use super::{code_of, fmt_date, map_err, AwsProvider};
use crate::provider::{ErrorKind, Handle, InventoryItem, Minted, ProviderError, Verdict};
use crate::secret::{Delivered, ExposeSecret, SecretString};

pub const KEY_ID: &str = "access_key_id";

/// AWS managed policies that make a key's user privileged (admin, or able to
/// grant itself anything).
const WIDE_POLICIES: &[&str] = &["AdministratorAccess", "IAMFullAccess", "PowerUserAccess"];

struct KeyMeta {
    id: String,
    active: bool,
    created_secs: Option<i64>,
}

impl AwsProvider {
    async fn list_keys(&self, user: &str) -> Result<Vec<KeyMeta>, ProviderError> {
        self.call("iam.list_access_keys", || async {
            let out = self.iam.list_access_keys().user_name(user).send().await.map_err(|e| map_err("iam.list_access_keys", e))?;
            Ok(out
                .access_key_metadata()
                .iter()
                .filter_map(|k| {
                    Some(KeyMeta {
                        id: k.access_key_id()?.to_string(),
                        active: k.status() == Some(&StatusType::Active),
                        created_secs: k.create_date().map(|d| d.secs()),
                    })
                })
                .collect())
        })
        .await
    }

    /// Deletes access key `id` of `user`; already gone is success. Only if
    /// IAM refuses the delete (not allowed, say) is the key deactivated
    /// instead, so it is at least out of service, and the refusal is still
    /// the answer (the key is not gone). A temporary error is just returned:
    /// the step is retried as a whole.
    async fn delete_key(&self, user: &str, id: &str) -> Result<(), ProviderError> {
        let deleted = self
            .call("iam.delete_access_key", || async {
                let r = self.iam.delete_access_key().user_name(user).access_key_id(id).send().await;
                r.map(|_| ()).map_err(|e| map_err("iam.delete_access_key", e))
            })
            .await;
        let refused = match deleted {
            Ok(()) => return Ok(()),
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(()), // already gone
            Err(e) if e.is_temporary() => return Err(e),
            Err(e) => e,
        };
        let deactivated = self
            .call("iam.update_access_key", || async {
                let r = self.iam.update_access_key().user_name(user).access_key_id(id).status(StatusType::Inactive).send().await;
                r.map(|_| ()).map_err(|e| map_err("iam.update_access_key", e))
            })
            .await;
        let then = match deactivated {
            Ok(()) => "it was deactivated instead; delete it by hand, or allow keysweep iam:DeleteAccessKey".to_string(),
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(()), // gone meanwhile
            Err(e) => format!("deactivating it failed too ({e})"),
        };
        Err(ProviderError::new(refused.kind, refused.operation, format!("{}; {then}", refused.message)))
    }

    /// CreateAccessKey, once (never repeated blindly: a lost answer leaves an
    /// orphan, found by `iam_cleanup`). `Ok(None)`: IAM refused a third key,
    /// told by its error code `LimitExceeded` (the SDK's error metadata, or
    /// the code element of IAM's own XML error body), and nothing was made.
    async fn create_key(&self, user: &str) -> Result<Option<aws_sdk_iam::operation::create_access_key::CreateAccessKeyOutput>, ProviderError> {
        self.call_once("iam.create_access_key", async {
            match self.iam.create_access_key().user_name(user).send().await {
                Ok(o) => Ok(Some(o)),
                Err(e) if code_of(&e).as_deref() == Some("LimitExceeded") => Ok(None),
                Err(e) => Err(map_err("iam.create_access_key", e)),
            }
        })
        .await
    }

    pub(super) async fn iam_mint(&self, t: &AwsIamKeyTarget, old: &Handle) -> Result<Minted, ProviderError> {
        let old_id = old.get(KEY_ID).map(String::as_str);
        // Create first: a user with one key (the usual case) needs no
        // listing. Only when IAM refuses a third key are the keys listed.
        let out = match self.create_key(&t.user).await? {
            Some(out) => out,
            None => {
                let keys = self.list_keys(&t.user).await?;
                // IAM allows two keys per user. Make room only if the playbook allows it.
                let spare = keys.iter().find(|k| !k.active && Some(k.id.as_str()) != old_id);
                match spare {
                    Some(k) if t.allow_delete_inactive => {
                        tracing::warn!(provider = %self.name, user = %t.user, key = %k.id, "deleting the inactive key to make room");
                        self.delete_key(&t.user, &k.id).await?;
                    }
                    _ => {
                        let ids: Vec<&str> = keys.iter().map(|k| k.id.as_str()).collect();
                        return Err(ProviderError::new(
                            ErrorKind::Conflict,
                            "iam.create_access_key",
                            format!(
                                "user `{}` already has two access keys ({}); IAM allows two. Delete one by hand, or set `allow_delete_inactive: true` to let keysweep delete an inactive one",
                                t.user,
                                ids.join(", ")
                            ),
                        ));
                    }
                }
                self.create_key(&t.user).await?.ok_or_else(|| {
                    ProviderError::new(
                        ErrorKind::Conflict,
                        "iam.create_access_key",
                        format!("user `{}` still has two access keys after the inactive one was deleted (another made meanwhile?)", t.user),
                    )
                })?
            }
        };
        let key = out.access_key().ok_or_else(|| ProviderError::new(ErrorKind::Other, "iam.create_access_key", "answer has no access key"))?;
        let id = key.access_key_id().to_string();
        if key.user_name() != t.user {
            // Never deliver a key of another user (another user's privileges).
            let owner = key.user_name().to_string();
            let cleanup = match self.delete_key(&owner, &id).await {
                Ok(()) => "it was deleted".to_string(),
                Err(e) => format!("deleting it failed too ({e}): delete access key {id} of `{owner}` by hand"),
            };
            return Err(ProviderError::new(
                ErrorKind::Conflict,
                "iam.create_access_key",
                format!(
                    "IAM answered with access key {id} of user `{owner}`, not of `{}`; {cleanup}. Check what sits between keysweep and IAM",
                    t.user
                ),
            ));
        }
        let secret = SecretString::from(key.secret_access_key().to_string());
        Ok(Minted {
            delivered: Delivered::new(secret).with_field(KEY_ID, id.clone()).with_field("user", t.user.clone()),
            handle: BTreeMap::from([(KEY_ID.to_string(), id)]),
        })
    }

    /// IAM keys carry no metadata to hold a nonce: an orphan is a key of the
    /// user, not the one kept, created while the mint could have been in
    /// flight: from `mint_sent` (the claim's record, when known; else the
    /// run's start) to `ORPHAN_WINDOW` after it, with `CLOCK_SLACK` for the
    /// difference between this host's clock and AWS's. A key someone else
    /// made outside that window is never touched.
    pub(super) async fn iam_cleanup(
        &self,
        t: &AwsIamKeyTarget,
        old: &Handle,
        nonce: &str,
        keep: Option<&Handle>,
        mint_sent: Option<i64>,
    ) -> Result<usize, ProviderError> {
        let Some((from, until)) = crate::provider::orphan_window(nonce, mint_sent) else { return Ok(0) };
        let keep = keep.and_then(|h| h.get(KEY_ID)).map(String::as_str);
        let old = old.get(KEY_ID).map(String::as_str);
        let mut n = 0;
        for k in self.list_keys(&t.user).await? {
            let spared = Some(k.id.as_str()) == keep || Some(k.id.as_str()) == old;
            if !spared && k.created_secs.is_some_and(|c| c >= from && until.is_none_or(|u| c <= u)) {
                tracing::warn!(provider = %self.name, user = %t.user, key = %k.id, "deleting an orphan key minted by an interrupted run");
                self.delete_key(&t.user, &k.id).await?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// STS GetCallerIdentity with the given key, from a separate client.
    async fn sts_probe(&self, user: &str, id: &str, secret: &SecretString) -> Verdict {
        let conf = aws_sdk_sts::config::Builder::from(&self.sdk)
            .interceptor(super::WholeXmlAnswers)
            .credentials_provider(Credentials::new(id, secret.expose_secret(), None, None, "keysweep-probe"))
            .build();
        let client = aws_sdk_sts::Client::from_conf(conf);
        let admission = self.permit().await;
        let r = client.get_caller_identity().send().await;
        admission.done(
            "sts.get_caller_identity",
            match &r {
                Ok(_) => crate::provider::adaptive::Signal::Answered,
                Err(e) => crate::provider::adaptive::Signal::of_error(super::kind_of(e)),
            },
        );
        match r {
            Ok(o) => {
                let arn = o.arn().unwrap_or_default();
                // arn:aws:iam::<account>:user[/<path>]/<user>, and exactly that user.
                let is_user = arn.split_once(":user/").is_some_and(|(_, rest)| rest == user || rest.ends_with(&format!("/{user}")));
                if is_user {
                    Verdict::Alive(format!("sts:GetCallerIdentity accepted key {id} as {arn}"))
                } else {
                    Verdict::Unknown(format!("sts:GetCallerIdentity accepted key {id} but as {arn}"))
                }
            }
            Err(e) if code_of(&e).as_deref() == Some("InvalidClientTokenId") => {
                Verdict::Dead(format!("sts:GetCallerIdentity refused key {id}: InvalidClientTokenId"))
            }
            Err(e) => Verdict::Unknown(map_err("sts.get_caller_identity", e).to_string()),
        }
    }

    pub(super) async fn iam_test(&self, t: &AwsIamKeyTarget, new: &Delivered, handle: &Handle) -> Verdict {
        let Some(id) = handle.get(KEY_ID) else { return Verdict::Unknown("no access key id for the new key".into()) };
        self.sts_probe(&t.user, id, &new.value).await
    }

    pub(super) async fn iam_retire(&self, t: &AwsIamKeyTarget, old: &Handle) -> Result<(), ProviderError> {
        match old.get(KEY_ID) {
            Some(id) => self.delete_key(&t.user, id).await,
            None => Ok(()),
        }
    }

    pub(super) async fn iam_verify_dead(&self, t: &AwsIamKeyTarget, old: &Handle, value: Option<&SecretString>) -> Verdict {
        let Some(id) = old.get(KEY_ID) else { return Verdict::Unknown("no access key id for the old key".into()) };
        let admin = match self.list_keys(&t.user).await {
            Ok(keys) => match keys.iter().find(|k| &k.id == id) {
                None => Verdict::Dead(format!("iam:ListAccessKeys no longer lists {id}")),
                Some(k) => Verdict::Alive(format!("iam:ListAccessKeys still lists {id} ({})", if k.active { "Active" } else { "Inactive" })),
            },
            // The user itself is gone: so are its keys.
            Err(e) if e.kind == ErrorKind::NotFound => Verdict::Dead(format!("user `{}` no longer exists", t.user)),
            Err(e) => Verdict::Unknown(e.to_string()),
        };
        let Some(value) = value else { return admin };
        match (admin, self.sts_probe(&t.user, id, value).await) {
            (_, Verdict::Alive(e)) => Verdict::Alive(format!("{e} (eventual consistency, or not deleted)")),
            (Verdict::Dead(a), Verdict::Dead(p)) => Verdict::Dead(format!("{a}; {p}")),
            (Verdict::Dead(_), other) => other,
            (other, _) => other,
        }
    }

    /// Managed policies attached to `user`, directly or through its groups
    /// (group answers cached in `groups`).
    async fn policies_of(&self, user: &str, groups: &mut BTreeMap<String, Vec<String>>) -> Result<Vec<String>, ProviderError> {
        let direct = self
            .call("iam.list_attached_user_policies", || async {
                self.iam.list_attached_user_policies().user_name(user).send().await.map_err(|e| map_err("iam.list_attached_user_policies", e))
            })
            .await?;
        let mut names: Vec<String> = direct.attached_policies().iter().filter_map(|p| p.policy_name().map(str::to_string)).collect();
        let gs = self
            .call("iam.list_groups_for_user", || async {
                self.iam.list_groups_for_user().user_name(user).send().await.map_err(|e| map_err("iam.list_groups_for_user", e))
            })
            .await?;
        for g in gs.groups() {
            let g = g.group_name().to_string();
            if !groups.contains_key(&g) {
                let out: Result<_, ProviderError> = self
                    .call("iam.list_attached_group_policies", || async {
                        self.iam
                            .list_attached_group_policies()
                            .group_name(&g)
                            .send()
                            .await
                            .map_err(|e| map_err("iam.list_attached_group_policies", e))
                    })
                    .await;
                let names = match out {
                    Ok(out) => out.attached_policies().iter().filter_map(|p| p.policy_name().map(str::to_string)).collect(),
                    // Deleted since the user's groups were listed: it grants nothing now.
                    Err(e) if e.kind == ErrorKind::NotFound => vec![],
                    Err(e) => return Err(e),
                };
                groups.insert(g.clone(), names);
            }
            names.extend(groups[&g].iter().cloned());
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Every user with the managed policies attached to it directly or
    /// through its groups, from `GetAccountAuthorizationDetails` (users and
    /// groups, one call per page of the whole account).
    async fn authorization_details(&self) -> Result<Vec<(String, Vec<String>)>, ProviderError> {
        use aws_sdk_iam::types::EntityType;
        let names =
            |ps: &[aws_sdk_iam::types::AttachedPolicy]| -> Vec<String> { ps.iter().filter_map(|p| p.policy_name().map(str::to_string)).collect() };
        let mut users: Vec<(String, Vec<String>, Vec<String>)> = vec![];
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut marker: Option<String> = None;
        loop {
            let m = marker.clone();
            let out = self
                .call("iam.get_account_authorization_details", || async {
                    self.iam
                        .get_account_authorization_details()
                        .filter(EntityType::User)
                        .filter(EntityType::Group)
                        .set_marker(m.clone())
                        .send()
                        .await
                        .map_err(|e| map_err("iam.get_account_authorization_details", e))
                })
                .await?;
            for u in out.user_detail_list() {
                let Some(name) = u.user_name() else { continue };
                users.push((name.to_string(), u.group_list().to_vec(), names(u.attached_managed_policies())));
            }
            for g in out.group_detail_list() {
                if let Some(name) = g.group_name() {
                    groups.insert(name.to_string(), names(g.attached_managed_policies()));
                }
            }
            match out.marker().filter(|_| out.is_truncated()) {
                Some(next) => marker = Some(next.to_string()),
                None => break,
            }
        }
        Ok(users
            .into_iter()
            .map(|(user, member_of, mut policies)| {
                for g in member_of {
                    // A group that is not listed grants nothing that is known.
                    policies.extend(groups.get(&g).into_iter().flatten().cloned());
                }
                policies.sort();
                policies.dedup();
                (user, policies)
            })
            .collect())
    }

    /// The same, one user at a time (ListUsers, then per user its attached
    /// policies and groups, per group its policies): where keysweep may not
    /// call `GetAccountAuthorizationDetails`.
    async fn authorization_per_user(&self) -> Result<Vec<(String, Vec<String>)>, ProviderError> {
        let mut users = vec![];
        let mut marker: Option<String> = None;
        loop {
            let m = marker.clone();
            let out = self
                .call("iam.list_users", || async {
                    self.iam.list_users().set_marker(m.clone()).send().await.map_err(|e| map_err("iam.list_users", e))
                })
                .await?;
            users.extend(out.users().iter().map(|u| u.user_name().to_string()));
            if !out.is_truncated() {
                break;
            }
            marker = out.marker().map(str::to_string);
        }
        let mut out = vec![];
        let mut group_policies: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for user in users {
            match self.policies_of(&user, &mut group_policies).await {
                // A user deleted between the list and the lookup is simply gone.
                Err(e) if e.kind == ErrorKind::NotFound => continue,
                r => out.push((user, r?)),
            }
        }
        Ok(out)
    }

    pub(super) async fn iam_inventory(&self) -> Result<Vec<InventoryItem>, ProviderError> {
        // Users, groups and attached policies in as few calls as the API
        // allows; refused (keysweep lacks iam:GetAccountAuthorizationDetails),
        // one user at a time as before. Access keys and their last use have
        // no account-wide call: one ListAccessKeys per user, one
        // GetAccessKeyLastUsed per key.
        let users = match self.authorization_details().await {
            Ok(u) => u,
            Err(e) if e.kind == ErrorKind::PermissionDenied => {
                tracing::info!(provider = %self.name, error = %e, "iam:GetAccountAuthorizationDetails refused; listing users and their policies one at a time");
                self.authorization_per_user().await?
            }
            Err(e) => return Err(e),
        };
        let mut items = vec![];
        for (user, policies) in users {
            // A user or key deleted between the list and the lookup is simply gone.
            let gone = |e: &ProviderError| e.kind == ErrorKind::NotFound;
            let privileged = policies.iter().any(|p| WIDE_POLICIES.contains(&p.as_str()));
            let out = match self
                .call("iam.list_access_keys", || async {
                    self.iam.list_access_keys().user_name(&user).send().await.map_err(|e| map_err("iam.list_access_keys", e))
                })
                .await
            {
                Err(e) if gone(&e) => continue,
                r => r?,
            };
            for k in out.access_key_metadata() {
                let Some(id) = k.access_key_id() else { continue };
                let last = match self
                    .call("iam.get_access_key_last_used", || async {
                        self.iam.get_access_key_last_used().access_key_id(id).send().await.map_err(|e| map_err("iam.get_access_key_last_used", e))
                    })
                    .await
                {
                    Err(e) if gone(&e) => continue,
                    r => r?,
                };
                let used = last.access_key_last_used();
                let mut details = BTreeMap::from([
                    ("user".to_string(), user.clone()),
                    ("status".to_string(), k.status().map(|s| s.as_str().to_string()).unwrap_or_default()),
                ]);
                details.insert("policies".into(), policies.join(","));
                details.insert("privileged".into(), privileged.to_string());
                if let Some(svc) = used.map(|u| u.service_name()).filter(|s| !s.is_empty() && *s != "N/A") {
                    details.insert("last_used_service".into(), svc.to_string());
                }
                // keysweep's own login (from the SDK's chain): listed like any
                // key, marked so discovery says whose it is.
                if self.own_key_id.get().is_some_and(|own| own == id) {
                    details.insert("keysweep_login".into(), "true".into());
                }
                items.push(InventoryItem {
                    kind: "aws_iam_access_key".into(),
                    id: id.to_string(),
                    created: fmt_date(k.create_date()),
                    rotated: fmt_date(k.create_date()),
                    last_used: fmt_date(used.and_then(|u| u.last_used_date())),
                    // IAM records the last use of every key; none means never used.
                    usage_tracked: true,
                    details,
                });
            }
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn run_start_parses_the_run_id() {
        let t = crate::provider::run_start("20261129T031521Z-bca1f1/ci-key").unwrap();
        assert_eq!(chrono::DateTime::from_timestamp(t, 0).unwrap().to_rfc3339(), "2026-11-29T03:15:21+00:00");
        let t = crate::provider::run_start("20261129T031521.407Z-bca1f1/ci-key").unwrap();
        assert_eq!(chrono::DateTime::from_timestamp(t, 0).unwrap().to_rfc3339(), "2026-11-29T03:15:21+00:00");
        assert!(crate::provider::run_start("conformance/xyz").is_none());
    }
}
