//! The comparison without servers: a playbook, crafted inventories, and what
//! discovery and `run --due` make of them.

use std::collections::{BTreeMap, HashMap};

use chrono::{Duration, Utc};

use super::*;
use crate::provider::InventoryItem;

const PLAYBOOK: &str = r#"
version: 1
discovery:
  inactive_after: 30d
  ignore:
    - { provider: pg, id: postgres, reason: "bootstrap superuser, break-glass only" }
providers:
  bao: { kind: vault, address: "http://127.0.0.1:1", auth: { method: token, token: "${env:KEYSWEEP_UNIT_DISCOVER}" } }
  pg: { kind: postgres, host: 127.0.0.1, port: 1, database: postgres, admin: { user: postgres, password: "${env:KEYSWEEP_UNIT_DISCOVER}" } }
  aws: { kind: aws, region: us-east-1 }
defaults:
  owner: platform
credentials:
  - { id: tok, provider: bao, max_age: 10d, target: { kind: vault_token, accessor: acc-old }, deliver_to: [{ provider: bao, path: "apps/{id}" }] }
  - { id: app, provider: pg, target: { kind: postgres_role, user: app, alternate_with: app_b }, deliver_to: [{ provider: bao, path: "db/{id}" }] }
  - { id: gone, provider: pg, max_age: 10d, target: { kind: postgres_role, user: gone }, deliver_to: [{ provider: bao, path: "db/{id}" }] }
  - { id: key, provider: aws, max_age: 90d, revoke_inactive: true, target: { kind: aws_iam_access_key, user: ci }, deliver_to: [{ provider: aws, path: "ci/{id}" }] }
  - { id: byuser, provider: aws, target: { kind: aws_iam_access_key, user: deploy }, deliver_to: [{ provider: aws, path: "ci/{id}" }] }
  - { id: fresh, provider: aws, revoke_inactive: true, target: { kind: aws_iam_access_key, user: new, access_key_id: AKIAFRESH }, deliver_to: [{ provider: aws, path: "ci/{id}" }] }
"#;

fn item(kind: &str, id: &str, details: &[(&str, &str)]) -> InventoryItem {
    InventoryItem {
        kind: kind.into(),
        id: id.into(),
        created: None,
        rotated: None,
        last_used: None,
        usage_tracked: false,
        details: details.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    }
}

fn ago(days: i64) -> Option<String> {
    Some((Utc::now() - Duration::days(days)).to_rfc3339())
}

fn load(dir: &std::path::Path, name: &str, text: &str) -> Result<Playbook, String> {
    std::env::set_var("KEYSWEEP_UNIT_DISCOVER", "unit-test-token");
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    crate::playbook::load(&p).map_err(|d| d.to_string())
}

fn gathered() -> Gathered {
    let tok = |id: &str, days: i64, root: bool| InventoryItem {
        created: ago(days),
        rotated: ago(days),
        ..item("vault_token", id, &[("privileged", if root { "true" } else { "false" }), ("policies", if root { "[\"root\"]" } else { "[]" })])
    };
    let kv = |path: &str| item("vault_kv_secret", path, &[("mount", "secret")]);
    let key = |id: &str, user: &str, created: i64, used: Option<i64>| InventoryItem {
        created: ago(created),
        rotated: ago(created),
        last_used: used.and_then(ago),
        usage_tracked: true,
        ..item("aws_iam_access_key", id, &[("user", user), ("privileged", "false")])
    };
    let role = |name: &str, sup: bool| {
        item("postgres_role", name, &[("privileged", if sup { "true" } else { "false" }), ("superuser", if sup { "true" } else { "false" })])
    };
    let mut inventories = BTreeMap::new();
    inventories.insert(
        "bao".to_string(),
        Ok(vec![tok("acc-new", 20, false), tok("acc-extra", 3, true), kv("apps/tok"), kv("db/app"), kv("db/gone"), kv("other/config")]),
    );
    inventories.insert("pg".to_string(), Ok(vec![role("app", false), role("app_b", false), role("postgres", true), role("stray", false)]));
    inventories.insert(
        "aws".to_string(),
        Ok(vec![
            key("AKIACI", "ci", 100, None),
            key("AKIAOTHER", "other", 5, Some(1)),
            key("AKIAFRESH", "new", 1, None),
            key("AKIADEPLOY", "deploy", 2, Some(1)),
            item("aws_secretsmanager_secret", "ci/key", &[]),
        ]),
    );
    let stored = HashMap::from([
        ("tok".to_string(), BTreeMap::from([("accessor".to_string(), "acc-new".to_string())])),
        ("app".to_string(), BTreeMap::from([("username".to_string(), "app_b".to_string())])),
        ("key".to_string(), BTreeMap::from([("access_key_id".to_string(), "AKIACI".to_string())])),
    ]);
    let journal = HashMap::from([("tok".to_string(), ago(20).unwrap())]);
    Gathered { inventories, stored, journal, notes: vec![] }
}

fn ids(r: &DiscoveryReport, k: FindingKind) -> Vec<String> {
    let mut v: Vec<String> = r.of(k).map(|f| format!("{}:{}", f.provider, f.id)).collect();
    v.sort();
    v
}

#[test]
fn finds_unlisted_stale_inactive_overdue_and_privileged() {
    let dir = tempfile::tempdir().unwrap();
    let pb = load(dir.path(), "p.yaml", PLAYBOOK).unwrap();
    let r = compare(&pb, &gathered(), Utc::now());

    // The rotated token is matched through its store (acc-old is history),
    // the pair through both accounts, the key through its store.
    assert_eq!(ids(&r, FindingKind::Unlisted), ["aws:AKIAOTHER", "bao:acc-extra", "bao:secret/other/config", "pg:stray"]);
    assert_eq!(ids(&r, FindingKind::Stale), ["pg:gone"]);
    // Never used: the listed old key and the fresh one; AKIAOTHER was used yesterday.
    assert_eq!(ids(&r, FindingKind::Inactive), ["aws:AKIACI", "aws:AKIAFRESH"]);
    // tok: rotated 20 days ago, max_age 10d. The key (100 days, max_age 90d) too.
    assert_eq!(ids(&r, FindingKind::Overdue), ["aws:AKIACI", "bao:acc-new"]);
    // The unlisted root token; the ignored superuser is not reported.
    assert_eq!(ids(&r, FindingKind::Privileged), ["bao:acc-extra"]);
    assert_eq!(r.ignored.len(), 1);
    assert_eq!(r.ignored[0].reason, "bootstrap superuser, break-glass only");

    let pg = r.providers.iter().find(|p| p.provider == "pg").unwrap();
    assert_eq!((pg.discovered, pg.listed, pg.ignored, pg.unlisted, pg.stale), (4, 2, 1, 1, 1));
    assert_eq!(pg.coverage, Some(2.0 / 3.0));
    let bao = r.providers.iter().find(|p| p.provider == "bao").unwrap();
    // Store entries of listed credentials count as covered; db/gone is the store of a stale entry.
    assert_eq!((bao.discovered, bao.listed, bao.stores, bao.unlisted), (6, 1, 3, 2));
    let aws = r.providers.iter().find(|p| p.provider == "aws").unwrap();
    // The key of `deploy` is matched by its user alone.
    assert_eq!((aws.discovered, aws.listed, aws.stores, aws.unlisted), (5, 3, 1, 1));
    let t = &r.totals;
    assert_eq!(t.discovered, 15);
    assert_eq!(t.listed + t.stores + t.ignored + t.unlisted, t.discovered, "every item is accounted for once");
    assert_eq!(t.coverage, Some(10.0 / 14.0));
    assert!(!r.clean());
    assert_eq!(r.limits.usage_unknown, ["aws_secretsmanager_secret", "postgres_role", "vault_kv_secret", "vault_token"]);

    let app = r.credentials.iter().find(|c| c.id == "app").unwrap();
    assert_eq!(app.items, ["app_b", "app"], "the account in service first");
}

#[test]
fn due_acts_on_overdue_and_inactive_and_leaves_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let pb = load(dir.path(), "p.yaml", PLAYBOOK).unwrap();
    let g = gathered();
    let now = Utc::now();
    let r = compare(&pb, &g, now);
    let due_of = |id: &str| {
        let c = pb.credentials.iter().find(|c| c.id == id).unwrap();
        due(c, r.credentials.iter().find(|s| s.id == id).unwrap(), now)
    };
    assert!(matches!(due_of("tok"), Due::Act(Action::Rotate, ref w) if w.starts_with("overdue: last rotated 20 days ago")), "{:?}", due_of("tok"));
    // Never used for 100 days, revoke_inactive: revoked rather than rotated.
    assert!(matches!(due_of("key"), Due::Act(Action::Revoke, ref w) if w.contains("never used")), "{:?}", due_of("key"));
    // Never used but created yesterday: it gets inactive_after to be picked up.
    assert!(
        matches!(due_of("fresh"), Due::NotDue(ref w) if w.contains("created 1 days ago") || w.contains("created 24 hours ago")),
        "{:?}",
        due_of("fresh")
    );
    assert!(matches!(due_of("app"), Due::NotDue(ref w) if w == "not due: no max_age set"));
    assert!(matches!(due_of("gone"), Due::NotDue(ref w) if w.contains("stale")));

    // A listed revocation: acted on while the account can log in, not once it is switched off.
    let mut c = pb.credentials.iter().find(|c| c.id == "app").unwrap().clone();
    c.action = Action::Revoke;
    let mut st = r.credentials.iter().find(|s| s.id == "app").unwrap().clone();
    assert!(matches!(due(&c, &st, now), Due::Act(Action::Revoke, _)));
    st.disabled = true;
    assert!(matches!(due(&c, &st, now), Due::NotDue(ref w) if w.contains("already disabled")));
}

#[test]
fn emitted_drafts_load_only_once_owners_are_filled_in() {
    let dir = tempfile::tempdir().unwrap();
    let pb = load(dir.path(), "p.yaml", PLAYBOOK).unwrap();
    let r = compare(&pb, &gathered(), Utc::now());
    let draft = emit::draft(&pb, &r).unwrap();
    assert_eq!(draft.matches("    owner: FILL-ME").count(), 4, "{draft}");
    std::fs::write(dir.path().join("drafts.yaml"), &draft).unwrap();
    let with_include = format!("include: [drafts.yaml]\n{PLAYBOOK}");
    let err = load(dir.path(), "root.yaml", &with_include).unwrap_err();
    assert_eq!(err.matches("is still the `FILL-ME` marker").count(), 4, "{err}");
    assert!(err.contains("drafts.yaml:"), "errors name the draft file: {err}");

    std::fs::write(dir.path().join("drafts.yaml"), draft.replace("owner: FILL-ME", "owner: team-sec")).unwrap();
    let pb2 = load(dir.path(), "root.yaml", &with_include).unwrap();
    assert_eq!(pb2.credentials.len(), pb.credentials.len() + 4);
    // The drafts now cover what was unlisted.
    let r2 = compare(&pb2, &gathered(), Utc::now());
    assert!(ids(&r2, FindingKind::Unlisted).is_empty(), "{:?}", ids(&r2, FindingKind::Unlisted));
    // The never-used key of the other user was used yesterday: drafted as a rotation; the root token too.
    let tok = pb2.credentials.iter().find(|c| c.id.contains("acc-extra")).unwrap();
    assert_eq!(tok.action, Action::Rotate);
}
