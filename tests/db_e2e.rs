//! Databases and directories end to end through the binary: PostgreSQL,
//! MariaDB, Redis and OpenLDAP service accounts rotated single-user and as
//! alternating pairs, new values delivered to Vault KV; old passwords refused
//! and the store's current login accepted from separate clients; the
//! PostgreSQL admin credential read from the store and rotated last in the
//! same run; runs killed between apply and promote and between promote and
//! retire resume with nobody locked out.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use common::ldap::ldap;
use common::mysql::mysql;
use common::postgres::postgres;
use common::redis::redis;
use common::*;
use serde_json::json;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Db {
    Pg,
    My,
    Rd,
    Ld,
}

const ALL: [Db; 4] = [Db::Pg, Db::My, Db::Rd, Db::Ld];

impl Db {
    fn provider(self) -> &'static str {
        match self {
            Db::Pg => "pg",
            Db::My => "my",
            Db::Rd => "rd",
            Db::Ld => "ld",
        }
    }
    fn kind(self) -> &'static str {
        match self {
            Db::Pg => "postgres_role",
            Db::My => "mysql_user",
            Db::Rd => "redis_acl_user",
            Db::Ld => "ldap_account",
        }
    }
    /// Creates an account; returns the name keysweep knows it by (a DN for LDAP).
    fn create(self, name: &str, password: &str) -> String {
        match self {
            Db::Pg => {
                postgres().create_role(name, password);
                name.to_string()
            }
            Db::My => {
                mysql().create_user(name, password);
                name.to_string()
            }
            Db::Rd => {
                redis().create_user(name, password);
                name.to_string()
            }
            Db::Ld => ldap().create_account(name, password),
        }
    }
    fn works(self, user: &str, password: &str) -> bool {
        match self {
            Db::Pg => postgres().login_works(user, password),
            Db::My => mysql().login_works(user, password),
            Db::Rd => redis().login_works(user, password),
            Db::Ld => ldap().bind_works(user, password),
        }
    }
}

/// Runs SQL as the fixture's PostgreSQL admin.
fn pg_exec(sql: &str) {
    let pg = postgres();
    let conn = format!("host={} port={} user={} password={} dbname=postgres", pg.host, pg.port, pg.admin_user, pg.admin_password);
    let sql = sql.to_string();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async move {
            let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(connection);
            client.batch_execute(&sql).await.unwrap();
        })
    })
    .join()
    .unwrap();
}

/// The playbook's providers. keysweep's PostgreSQL admin is `pg_admin`, a
/// superuser of the test's own (so rotating it never disturbs the fixture or
/// another test), whose password is read from `secret/dbadmin/<pg_admin>`.
fn providers_yaml(pg_admin: &str) -> String {
    let (pg, my, rd, ld) = (postgres(), mysql(), redis(), ldap());
    format!(
        "version: 1
providers:
  bao:
    kind: vault
    address: ${{env:VAULT_ADDR}}
    auth: {{ method: token, token: \"${{env:VAULT_TOKEN}}\" }}
  pg:
    kind: postgres
    host: {}
    port: {}
    # keysweep's own admin password is read from the store it rotates it into.
    admin: {{ user: {pg_admin}, password: \"${{store:bao:secret/dbadmin/{pg_admin}#password}}\" }}
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
defaults:
  verify: {{ attempts: 3, interval: 100ms }}
credentials:
",
        pg.host, pg.port, my.host, my.port, my.admin_user, rd.host, rd.port, rd.admin_user, ld.url, ld.admin_dn
    )
}

fn ks(state: &std::path::Path) -> std::process::Command {
    let mut c = keysweep(state);
    c.env("KS_MY_ADMIN", &mysql().admin_password).env("KS_RD_ADMIN", &redis().admin_password).env("KS_LD_ADMIN", &ldap().admin_password);
    c
}

/// One credential per database and strategy. Returns the YAML and, per
/// credential: (db, id, store path, old user, old password).
/// (db, credential id, store path, old user, old password)
type Cred = (Db, String, String, String, String);

fn estate(p: &str, grace: &str) -> (String, Vec<Cred>) {
    let b = bao();
    let mut y = String::new();
    let mut creds = vec![];
    for db in ALL {
        for alt in [false, true] {
            let id = format!("{p}-{}-{}", db.provider(), if alt { "alt" } else { "single" });
            let kind = if alt { "alt" } else { "one" };
            let user = db.create(&format!("{p}_{}_{kind}1", db.provider()), &format!("old-{id}-pw-A1"));
            let old_pw = format!("old-{id}-pw-A1");
            let path = format!("{p}/db/{id}");
            // Delivered by an earlier rotation: the store holds the login in service.
            b.kv_put(&path, json!({ "value": old_pw, "username": user }));
            let alt_yaml = if alt {
                let clone = db.create(&format!("{p}_{}_{kind}2", db.provider()), &format!("old-{id}-pw-B0"));
                format!(", alternate_with: \"{clone}\"")
            } else {
                String::new()
            };
            y += &format!(
                "  - {{ id: {id}, owner: data, provider: {}, grace_period: {grace}, target: {{ kind: {}, user: \"{user}\"{alt_yaml} }}, deliver_to: [{{ provider: bao, path: \"{path}\" }}] }}\n",
                db.provider(),
                db.kind()
            );
            creds.push((db, id, path, user, old_pw));
        }
    }
    (y, creds)
}

fn store_login(path: &str) -> (String, String) {
    let cur = bao().kv_get(path).unwrap_or_else(|| panic!("nothing at {path}"));
    (cur["username"].as_str().unwrap().to_string(), cur["value"].as_str().unwrap().to_string())
}

fn assert_rotated(creds: &[Cred]) {
    for (db, id, path, old_user, old_pw) in creds {
        let (user, pw) = store_login(path);
        assert!(db.works(&user, &pw), "{id}: the store's current login ({user}) does not work");
        assert!(!db.works(old_user, old_pw), "{id}: the old password still works");
        if id.ends_with("-alt") {
            assert_ne!(&user, old_user, "{id}: alternating users did not flip");
        } else {
            assert_eq!(&user, old_user, "{id}");
        }
        assert!(bao().kv_get(&format!("keysweep-pending/{path}")).is_none(), "{id}: pending left");
    }
}

/// Creates a PostgreSQL admin for one test and stores its password where the
/// playbook reads it. Returns the password.
fn seed_pg_admin(name: &str) -> String {
    let pw = format!("pg-admin-{}", uuid::Uuid::new_v4().simple());
    pg_exec(&format!("CREATE ROLE {name} WITH LOGIN SUPERUSER PASSWORD '{pw}'"));
    bao().kv_put(&format!("dbadmin/{name}"), json!({ "password": pw, "username": name }));
    pw
}

#[test]
fn every_database_single_and_alternating_with_the_admin_rotated_last() {
    let first_admin_pw = seed_pg_admin("ks_admin_e2e");
    let (mut y, creds) = estate("e2e", "0s");
    // keysweep's own PostgreSQL admin, rotated after every other PostgreSQL credential.
    let deps: Vec<&str> = creds.iter().filter(|c| c.0 == Db::Pg).map(|c| c.1.as_str()).collect();
    y += &format!(
        "  - {{ id: pg-admin, owner: dba, provider: pg, depends_on: [{}], target: {{ kind: postgres_role, user: ks_admin_e2e }}, deliver_to: [{{ provider: bao, path: dbadmin/ks_admin_e2e, field: password }}] }}\n",
        deps.join(", ")
    );
    let dir = tempfile::tempdir().unwrap();
    let pb = dir.path().join("p.yaml");
    std::fs::write(&pb, providers_yaml("ks_admin_e2e") + &y).unwrap();
    let state = dir.path().join("state");
    let out = ks(&state).args(["run", pb.to_str().unwrap()]).env("RUST_LOG", "keysweep=debug").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("9 credentials: 9 rotated"), "{stdout}");
    assert_rotated(&creds);
    // The admin password moved too: the old one is refused, the stored one works.
    let admin = bao().kv_get("dbadmin/ks_admin_e2e").unwrap();
    let new_admin = admin["password"].as_str().unwrap().to_string();
    assert!(!postgres().login_works("ks_admin_e2e", &first_admin_pw), "old admin password still works");
    assert!(postgres().login_works("ks_admin_e2e", &new_admin));
    // No password (old or new) anywhere the run wrote.
    let mut secrets: Vec<String> = creds.iter().map(|c| c.4.clone()).collect();
    secrets.extend(creds.iter().map(|c| store_login(&c.2).1));
    secrets.push(first_admin_pw.clone());
    secrets.push(new_admin.clone());
    let mut written = all_files(&state);
    written.push(("stdout".into(), out.stdout.clone()));
    written.push(("stderr".into(), out.stderr.clone()));
    for (path, bytes) in &written {
        for s in &secrets {
            assert!(!contains(bytes, s), "a password appears in {}", path.display());
        }
    }
    // A second run connects with the rotated admin password (read from the
    // store) and flips every alternating pair back.
    let before: Vec<(String, String)> = creds.iter().map(|c| store_login(&c.2)).collect();
    let out = ks(&state).args(["run", pb.to_str().unwrap(), "--exclude", "id=pg-admin"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    for ((db, id, path, old_user, _), (prev_user, prev_pw)) in creds.iter().zip(before) {
        let (user, pw) = store_login(path);
        assert!(db.works(&user, &pw), "{id}: second run's login does not work");
        assert!(!db.works(&prev_user, &prev_pw), "{id}: the first run's password still works");
        if id.ends_with("-alt") {
            assert_eq!(&user, old_user, "{id}: the pair did not flip back");
        }
    }
}

#[test]
fn consumers_always_get_a_working_login_during_an_alternating_run() {
    let admin = "ks_admin_live";
    seed_pg_admin(admin);
    let (y, creds) = estate("live", "2s");
    let alt: Vec<_> = creds.into_iter().filter(|c| c.1.ends_with("-alt")).collect();
    let yaml: String = y.lines().filter(|l| l.contains("-alt,")).map(|l| format!("{l}\n")).collect();
    let dir = tempfile::tempdir().unwrap();
    let pb = dir.path().join("p.yaml");
    std::fs::write(&pb, providers_yaml(admin) + &yaml).unwrap();
    let state = dir.path().join("state");
    // Consumers: read the store, log in at once, over and over, while the run goes.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, bad) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let consumers: Vec<_> = alt
        .iter()
        .cloned()
        .map(|(db, id, path, _, _)| {
            let (stop, ok, bad) = (stop.clone(), ok.clone(), bad.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let (user, pw) = store_login(&path);
                    if db.works(&user, &pw) {
                        ok.fetch_add(1, Ordering::SeqCst);
                    } else {
                        bad.fetch_add(1, Ordering::SeqCst);
                        eprintln!("{id}: a consumer's login failed");
                    }
                }
            })
        })
        .collect();
    let out = ks(&state).args(["run", pb.to_str().unwrap()]).output().unwrap();
    stop.store(true, Ordering::SeqCst);
    for c in consumers {
        c.join().unwrap();
    }
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(ok.load(Ordering::SeqCst) > 20, "consumers barely ran");
    assert_eq!(bad.load(Ordering::SeqCst), 0, "a consumer holding the store's login was refused mid-run");
    assert_rotated(&alt);
}

#[test]
fn killed_between_apply_and_promote_or_promote_and_retire_resumes_without_lockout() {
    for point in ["apply:done:1", "promote:started:1", "promote:done:1", "retire:started:1", "retire:done:1"] {
        let p = format!("k{}", point.replace(':', "").replace("done1", "d").replace("started1", "s"));
        let admin = format!("ks_admin_{p}");
        seed_pg_admin(&admin);
        let (y, creds) = estate(&p, "0s");
        let dir = tempfile::tempdir().unwrap();
        let pb = dir.path().join("p.yaml");
        std::fs::write(&pb, providers_yaml(&admin) + &y).unwrap();
        let state = dir.path().join("state");
        run_until_crash(ks(&state), &pb, point);
        // While the run is down, every alternating pair's stored login works.
        for (db, id, path, _, _) in creds.iter().filter(|c| c.1.ends_with("-alt")) {
            let (user, pw) = store_login(path);
            assert!(db.works(&user, &pw), "{point}: {id}: the store's login is locked out while the run is down");
        }
        run_resumes(ks(&state), &pb, point);
        assert_rotated(&creds);
    }
}

#[test]
fn a_new_run_adopts_a_password_an_abandoned_run_applied() {
    // The first run dies right after applying a new password; a new run (not a
    // resume) finds that pending value, sees the system accepts it, and
    // finishes the rotation with it instead of locking the account out.
    let admin = "ks_admin_adopt";
    seed_pg_admin(admin);
    let (y, creds) = estate("adopt", "0s");
    let dir = tempfile::tempdir().unwrap();
    let pb = dir.path().join("p.yaml");
    std::fs::write(&pb, providers_yaml(admin) + &y).unwrap();
    let state = dir.path().join("state");
    let out = ks(&state).args(["run", pb.to_str().unwrap(), "--concurrency", "1"]).env("KEYSWEEP_CRASH_AT", "apply:done:1").output().unwrap();
    assert_ne!(out.status.code(), Some(0));
    let out = ks(&state).args(["run", pb.to_str().unwrap(), "--new"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}\n{}", String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout));
    assert_rotated(&creds);
}
