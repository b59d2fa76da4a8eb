//! Discovery against the real stack: OpenBao, moto (IAM + Secrets Manager),
//! PostgreSQL, MariaDB, Redis and OpenLDAP, every credential kind. An estate
//! of more than 1,000 credentials, of which a handful are left out of the
//! playbook, a few listed ones are deleted, and some are never used;
//! `discover` finds exactly those, and `--emit` drafts validate once their
//! owners are filled in (and then close the coverage gap).

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::ldap::ldap;
use common::moto::moto;
use common::mysql::mysql;
use common::postgres::postgres;
use common::redis::redis;
use common::*;
use serde_json::{json, Value};

const TOKENS: usize = 820;

fn ks(state: &Path) -> Command {
    let mut c = keysweep(state);
    moto().configure(&mut c);
    c.env("KS_PG_ADMIN", &postgres().admin_password)
        .env("KS_MY_ADMIN", &mysql().admin_password)
        .env("KS_RD_ADMIN", &redis().admin_password)
        .env("KS_LD_ADMIN", &ldap().admin_password);
    c
}

fn providers_yaml() -> String {
    let (pg, my, rd, ld) = (postgres(), mysql(), redis(), ldap());
    format!(
        "version: 1
providers:
  bao:
    kind: vault
    address: ${{env:VAULT_ADDR}}
    auth: {{ method: token, token: \"${{env:VAULT_TOKEN}}\" }}
  aws:
    kind: aws
    region: us-east-1
    endpoint_url: ${{env:KEYSWEEP_TEST_AWS_ENDPOINT}}
  pg:
    kind: postgres
    host: {}
    port: {}
    admin: {{ user: {}, password: \"${{env:KS_PG_ADMIN}}\" }}
  my:
    kind: mysql
    host: {}
    port: {}
    admin: {{ user: {}, password: \"${{env:KS_MY_ADMIN}}\" }}
  rd:
    kind: redis
    host: {}
    port: {}
    admin: {{ user: {}, password: \"${{env:KS_RD_ADMIN}}\" }}
  ld:
    kind: ldap
    url: {}
    admin: {{ user: \"{}\", password: \"${{env:KS_LD_ADMIN}}\" }}
",
        pg.host, pg.port, pg.admin_user, my.host, my.port, my.admin_user, rd.host, rd.port, rd.admin_user, ld.url, ld.admin_dn
    )
}

fn discover_json(state: &Path, pb: &Path) -> (i32, Value) {
    let out = ks(state).args(["discover", pb.to_str().unwrap(), "--format", "json"]).output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), v)
}

fn findings(v: &Value, kind: &str) -> BTreeSet<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["finding"] == kind)
        .map(|f| format!("{}:{}", f["provider"].as_str().unwrap(), f["id"].as_str().unwrap()))
        .collect()
}

fn set<const N: usize>(items: [Vec<String>; N]) -> BTreeSet<String> {
    items.into_iter().flatten().collect()
}

/// What the test planted, as `provider:id` the way `discover` names items.
#[derive(Default)]
struct Planted {
    yaml: String,
    listed: usize,
    unlisted: Vec<String>,
    stale: Vec<String>,
    never_used: Vec<String>,
    privileged: Vec<String>,
    /// Listed credentials whose system records no date (their age is unknown).
    age_unknown: Vec<String>,
}

impl Planted {
    fn entry(&mut self, line: String) {
        self.yaml += &line;
        self.listed += 1;
    }
}

async fn seed() -> Planted {
    let b = bao();
    let mut p = Planted::default();

    // Vault tokens: most listed (created in parallel), three unlisted (one root), two deleted after listing.
    let accessors: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|t| {
                s.spawn(move || (0..TOKENS).filter(|i| i % 8 == t).map(|i| b.create_token(&["default"], json!({ "n": i })).1).collect::<Vec<_>>())
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    for (i, acc) in accessors.iter().enumerate() {
        p.entry(format!(
            "  - {{ id: tok-{i}, provider: bao, target: {{ kind: vault_token, accessor: {acc} }}, deliver_to: [{{ provider: bao, path: \"tokens/{{id}}\" }}] }}\n"
        ));
    }
    for i in 0..2 {
        p.unlisted.push(format!("bao:{}", b.create_token(&["default"], json!({ "stray": i })).1));
    }
    let root = b.create_token(&["root"], json!({ "stray": "root" })).1;
    p.unlisted.push(format!("bao:{root}"));
    p.privileged.push(format!("bao:{root}"));
    for i in 0..2 {
        let (tok, acc) = b.create_token(&["default"], json!({ "gone": i }));
        p.entry(format!(
            "  - {{ id: tok-gone-{i}, provider: bao, target: {{ kind: vault_token, accessor: {acc} }}, deliver_to: [{{ provider: bao, path: \"tokens/{{id}}\" }}] }}\n"
        ));
        let (s, body) = b.call("POST", "auth/token/revoke", Some(json!({ "token": tok })));
        assert_eq!(s, 204, "{body}");
        p.stale.push(format!("bao:{acc}"));
    }

    // AppRole secret-ids: listed, one unlisted, one destroyed after listing.
    for i in 0..12 {
        let role = format!("disc-role-{i}");
        b.create_role(&role);
        let (sid, acc) = b.create_secret_id(&role);
        p.entry(format!(
            "  - {{ id: sid-{i}, provider: bao, target: {{ kind: vault_approle_secret_id, role: {role}, secret_id_accessor: {acc} }}, deliver_to: [{{ provider: bao, path: \"approle/{{id}}\" }}] }}\n"
        ));
        if i == 0 {
            p.unlisted.push(format!("bao:{}", b.create_secret_id(&role).1));
        }
        if i == 1 {
            let (s, body) = b.call("POST", &format!("auth/approle/role/{role}/secret-id/destroy"), Some(json!({ "secret_id": sid })));
            assert_eq!(s, 204, "{body}");
            p.stale.push(format!("bao:{acc}"));
        }
    }

    // KV secrets: listed, one unlisted, one deleted (metadata and all) after listing.
    for i in 0..12 {
        b.kv_put(&format!("shared/db-{i}"), json!({ "value": format!("kv-old-{i}") }));
        p.entry(format!("  - {{ id: kv-{i}, provider: bao, target: {{ kind: vault_kv_secret, path: \"shared/db-{i}\" }} }}\n"));
    }
    b.kv_put("legacy/forgotten", json!({ "value": "x" }));
    p.unlisted.push("bao:secret/legacy/forgotten".into());
    let (s, body) = b.call("DELETE", "secret/metadata/shared/db-11", None);
    assert_eq!(s, 204, "{body}");
    p.stale.push("bao:secret/shared/db-11".into());

    // IAM access keys: listed and used (STS), three never used, one of an
    // administrator, one unlisted (used), one deleted after listing.
    let m = moto();
    let iam = m.iam().await;
    for i in 0..30 {
        let user = format!("svc-{i}");
        let (kid, secret) = m.create_user_with_key(&user).await;
        p.entry(format!(
            "  - {{ id: key-{i}, provider: aws, target: {{ kind: aws_iam_access_key, user: {user}, access_key_id: {kid} }}, deliver_to: [{{ provider: bao, path: \"aws/{{id}}\" }}] }}\n"
        ));
        if i < 3 {
            p.never_used.push(format!("aws:{kid}"));
        } else {
            assert!(m.key_works(&kid, &secret).await);
        }
        if i == 3 {
            iam.attach_user_policy().user_name(&user).policy_arn("arn:aws:iam::aws:policy/AdministratorAccess").send().await.unwrap();
            p.privileged.push(format!("aws:{kid}"));
        }
        if i == 4 {
            let (kid2, secret2) = m.create_user_with_key(&user).await;
            assert!(m.key_works(&kid2, &secret2).await);
            p.unlisted.push(format!("aws:{kid2}"));
        }
        if i == 5 {
            iam.delete_access_key().user_name(&user).access_key_id(&kid).send().await.unwrap();
            p.stale.push(format!("aws:{kid}"));
        }
    }
    // Secrets Manager secrets (moto never records LastAccessedDate, so every
    // one is "never used" — as AWS reports a secret nobody has retrieved).
    let sm = m.sm().await;
    for i in 0..8 {
        let name = format!("app/secret-{i}");
        sm.create_secret().name(&name).secret_string(format!("{{\"value\":\"sm-old-{i}\"}}")).send().await.unwrap();
        p.entry(format!("  - {{ id: sm-{i}, provider: aws, target: {{ kind: aws_secretsmanager_secret, name: \"{name}\", field: value }} }}\n"));
        if i == 7 {
            sm.delete_secret().secret_id(&name).force_delete_without_recovery(true).send().await.unwrap();
            p.stale.push(format!("aws:{name}"));
        } else {
            p.never_used.push(format!("aws:{name}"));
        }
    }
    sm.create_secret().name("legacy/partner-api").secret_string("{\"value\":\"x\"}").send().await.unwrap();
    p.unlisted.push("aws:legacy/partner-api".into());
    p.never_used.push("aws:legacy/partner-api".into());

    // Databases and the directory: listed accounts, one or two unlisted, one deleted after listing.
    let (pg, my, rd, ld) = (postgres(), mysql(), redis(), ldap());
    for i in 0..40 {
        let pw = format!("Pw-{i}-q9Xz");
        pg.create_role(&format!("pgapp{i}"), &pw);
        p.entry(format!("  - {{ id: pg-{i}, provider: pg, target: {{ kind: postgres_role, user: pgapp{i} }}, deliver_to: [{{ provider: bao, path: \"pg/{{id}}\" }}] }}\n"));
        my.create_user(&format!("myapp{i}"), &pw);
        p.entry(format!("  - {{ id: my-{i}, provider: my, target: {{ kind: mysql_user, user: myapp{i} }}, deliver_to: [{{ provider: bao, path: \"my/{{id}}\" }}] }}\n"));
        rd.create_user(&format!("rdapp{i}"), &pw);
        p.entry(format!("  - {{ id: rd-{i}, provider: rd, target: {{ kind: redis_acl_user, user: rdapp{i} }}, deliver_to: [{{ provider: bao, path: \"rd/{{id}}\" }}] }}\n"));
        let dn = ld.create_account(&format!("ldapp{i}"), &pw);
        p.entry(format!("  - {{ id: ld-{i}, provider: ld, target: {{ kind: ldap_account, user: \"{dn}\" }}, deliver_to: [{{ provider: bao, path: \"ld/{{id}}\" }}] }}\n"));
        // Binds are recorded (lastbind): two accounts never log in.
        if i < 2 {
            p.never_used.push(format!("ld:{dn}"));
        } else {
            assert!(ld.bind_works(&dn, &pw));
        }
        if i == 39 {
            pg.exec("DROP ROLE pgapp39");
            my.root_sql("DROP USER 'myapp39'@'%'").unwrap();
            rd.admin(&["ACL", "DELUSER", "rdapp39"]);
            ld.delete(&dn);
            p.stale.extend([format!("pg:pgapp{i}"), format!("my:myapp{i}@%"), format!("rd:rdapp{i}"), format!("ld:{dn}")]);
        } else {
            // slapd's ppolicy sets pwdChangedTime on a password change, not on an add.
            p.age_unknown.extend([format!("pg:pgapp{i}"), format!("rd:rdapp{i}"), format!("ld:{dn}")]);
        }
    }
    pg.create_role("stray_pg", "Stray-pw-1x");
    pg.create_role("stray_pg_root", "Stray-pw-2x");
    pg.exec("ALTER ROLE stray_pg_root SUPERUSER");
    my.create_user("my_stray", "Stray-pw-3x");
    rd.create_user("rd_stray", "Stray-pw-4x");
    let stray_dn = ld.create_account("ld_stray", "Stray-pw-5x");
    assert!(ld.bind_works(&stray_dn, "Stray-pw-5x"));
    p.unlisted.extend(["pg:stray_pg".into(), "pg:stray_pg_root".into(), "my:my_stray@%".into(), "rd:rd_stray".into(), format!("ld:{stray_dn}")]);
    p.privileged.push("pg:stray_pg_root".into());
    p
}

#[tokio::test(flavor = "multi_thread")]
async fn discover_finds_exactly_the_unlisted_stale_and_never_used_in_an_estate_of_over_1000() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");

    // What the servers hold before the estate (their own admins, system
    // accounts, the dev root token): acknowledged with `discovery.ignore`.
    let empty = dir.path().join("empty.yaml");
    std::fs::write(&empty, providers_yaml()).unwrap();
    let (code, base) = discover_json(&state, &empty);
    assert_eq!(code, 1, "the fixtures' own accounts are unlisted: {base}");
    let mut ignore = String::from("discovery:\n  ignore:\n");
    for f in base["findings"].as_array().unwrap().iter().filter(|f| f["finding"] == "unlisted") {
        ignore += &format!(
            "    - {{ provider: {}, kind: {}, id: {}, reason: \"the test fixture's own account\" }}\n",
            f["provider"].as_str().unwrap(),
            f["kind"].as_str().unwrap(),
            serde_json::to_string(f["id"].as_str().unwrap()).unwrap()
        );
    }

    let p = seed().await;
    assert!(p.listed >= 1000, "estate of {} listed credentials", p.listed);
    let pb = dir.path().join("estate.yaml");
    std::fs::write(&pb, format!("{}{ignore}defaults:\n  owner: platform\n  max_age: 30d\ncredentials:\n{}", providers_yaml(), p.yaml)).unwrap();

    let started = std::time::Instant::now();
    let (code, v) = discover_json(&state, &pb);
    eprintln!("discover of {} listed credentials took {:?}", p.listed, started.elapsed());
    assert_eq!(code, 1, "something is unlisted: exit 1");
    let t = &v["totals"];
    assert_eq!(t["providers_failed"], 0, "{t}");

    assert_eq!(findings(&v, "unlisted"), set([p.unlisted.clone()]), "unlisted");
    assert_eq!(findings(&v, "stale"), set([p.stale.clone()]), "stale");
    assert_eq!(findings(&v, "inactive"), set([p.never_used.clone()]), "inactive (never used)");
    assert_eq!(findings(&v, "privileged"), set([p.privileged.clone()]), "privileged");
    // Nothing is older than 30 days, but PostgreSQL and Redis record no date,
    // the directory none for a password set at creation, and the journal has
    // no rotation yet: their age is unknown, so overdue.
    assert_eq!(findings(&v, "overdue"), set([p.age_unknown.clone()]), "overdue");

    // Every item accounted for exactly once, per provider and overall.
    let found_listed = p.listed - p.stale.len();
    assert_eq!(t["listed"].as_u64().unwrap() as usize, found_listed, "{t}");
    assert_eq!(t["unlisted"].as_u64().unwrap() as usize, p.unlisted.len());
    for pc in v["providers"].as_array().unwrap() {
        let n = |k: &str| pc[k].as_u64().unwrap();
        assert_eq!(n("listed") + n("stores") + n("ignored") + n("unlisted"), n("discovered"), "{pc}");
        assert!(pc["coverage"].as_f64().unwrap() > 0.9 && pc["coverage"].as_f64().unwrap() < 1.0, "{pc}");
    }
    assert!(v["limits"]["cannot_revoke"].as_array().unwrap().iter().any(|x| x == "sm-0"), "{}", v["limits"]);

    // The text and Markdown forms say the same.
    let text = ks(&state).args(["discover", pb.to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(text.starts_with(&format!("{} item(s) held: {found_listed} listed", t["discovered"])), "{text}");
    assert!(text.contains("since the previous discovery"), "the second discovery compares with the first: {text}");
    let md = ks(&state).args(["discover", pb.to_str().unwrap(), "--format", "markdown"]).output().unwrap();
    let md = String::from_utf8_lossy(&md.stdout).to_string();
    for u in &p.unlisted {
        let id = u.split_once(':').unwrap().1;
        assert!(md.contains(&format!("`{id}`")), "markdown lists {id}");
    }

    // No secret value in anything discovery printed or wrote (the KV and
    // Secrets Manager values and the account passwords all carry these marks).
    let mut written = all_files(&state);
    written.push(("json".into(), serde_json::to_vec(&v).unwrap()));
    written.push(("text".into(), text.clone().into_bytes()));
    written.push(("markdown".into(), md.clone().into_bytes()));
    for (path, bytes) in &written {
        for mark in ["kv-old-", "sm-old-", "-q9Xz", "Stray-pw-"] {
            assert!(!contains(bytes, mark), "a secret value ({mark}…) appears in {}", path.display());
        }
    }

    // --emit: drafts that refuse to load until owners are filled in.
    let drafts = dir.path().join("discovered.yaml");
    let out = ks(&state).args(["discover", pb.to_str().unwrap(), "--emit", drafts.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let draft = std::fs::read_to_string(&drafts).unwrap();
    assert_eq!(draft.matches("    owner: FILL-ME").count(), p.unlisted.len(), "{draft}");
    let root = dir.path().join("root.yaml");
    std::fs::write(&root, "include: [estate.yaml, discovered.yaml]\nversion: 1\n").unwrap();
    let out = ks(&state).args(["validate", root.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.matches("still the `FILL-ME` marker").count(), p.unlisted.len(), "{err}");
    std::fs::write(&drafts, draft.replace("owner: FILL-ME", "owner: team-security")).unwrap();
    let out = ks(&state).args(["validate", root.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // With the drafts included nothing is unlisted any more.
    let (code, v2) = discover_json(&state, &root);
    assert_eq!(code, 0, "{}", v2["totals"]);
    assert_eq!(v2["totals"]["unlisted"], 0);

    // `plan` carries the comparison and the coverage figure.
    let out = ks(&state).args(["plan", pb.to_str().unwrap(), "--format", "json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["discovery"]["totals"]["unlisted"].as_u64().unwrap() as usize, p.unlisted.len());
    assert_eq!(plan["discovery"]["totals"]["coverage"], t["coverage"]);
    let out = ks(&state).args(["plan", pb.to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("coverage: ") && text.contains("can be rotated but not revoked"), "{text}");

    // History lists the discoveries.
    let h = ks(&state).args(["history"]).output().unwrap();
    assert!(String::from_utf8_lossy(&h.stdout).matches("discover: ").count() >= 4);
}
