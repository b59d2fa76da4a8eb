//! The shared conformance suite and MariaDB-specific cases, run by the mysql
//! provider against a real MariaDB server (one per test binary, see
//! `tests/common/mysql.rs`). Logins are checked from a separate client (the
//! `mariadb` command-line tool), never only through the code under test.
//! The `tls` module connects over TLS (`ssl_mode`, the `tls:` block) to the
//! same server, whose certificate names `localhost` only.

mod common;

use std::collections::BTreeMap;

use async_trait::async_trait;
use keysweep::playbook::model::{Limits, SecretRef, Target};
use keysweep::provider::conformance::{self, Fixture};
use keysweep::provider::{ErrorKind, Handle, Provider, Verdict};
use keysweep::providers::account::{AdminLogin, DbAccountTarget};
use keysweep::providers::mysql::MysqlProvider;
use keysweep::providers::mysql::MysqlProviderConfig;
use keysweep::secret::{Delivered, SecretString};

use common::mysql::{lit, mysql};

fn config(port: u16, limits: Limits) -> MysqlProviderConfig {
    let m = mysql();
    MysqlProviderConfig {
        host: m.host.clone(),
        port,
        admin: AdminLogin { user: m.admin_user.clone(), password: SecretRef::Env("KS_TEST_MYSQL_ADMIN".into()) },
        limits,
        ssl_mode: None,
        tls: Default::default(),
        allow_plaintext: false,
    }
}

async fn provider() -> MysqlProvider {
    let m = tokio::task::spawn_blocking(mysql).await.unwrap();
    let cfg = config(m.port, Limits { concurrency: Some(4), ..Default::default() });
    MysqlProvider::connect("maria", &cfg, &|_| Ok(SecretString::from(m.admin_password.clone()))).await.unwrap()
}

fn uniq(prefix: &str) -> String {
    format!("{prefix}_{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

fn target(user: &str, alternate_with: Option<&str>, create_clone: bool) -> Target {
    Target::MysqlUser(DbAccountTarget {
        user: user.to_string(),
        alternate_with: alternate_with.map(str::to_string),
        create_clone,
        generate: Default::default(),
        host: None,
    })
}

/// A single user at a host part other than `%`.
fn target_at(user: &str, host: &str) -> Target {
    Target::MysqlUser(DbAccountTarget {
        user: user.to_string(),
        alternate_with: None,
        create_clone: false,
        generate: Default::default(),
        host: Some(host.to_string()),
    })
}

fn user_handle(u: &str) -> Handle {
    Handle::from([("username".to_string(), u.to_string())])
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// The provider, logged in through a proxy that then drops every connection.
async fn down() -> MysqlProvider {
    let m = tokio::task::spawn_blocking(mysql).await.unwrap();
    common::faultproxy::behind_a_dead_proxy(&format!("{}:{}", m.host, m.port), async |_host: &str, port: u16| {
        let cfg =
            config(port, Limits { timeout: Some(keysweep::playbook::model::HumanDuration(std::time::Duration::from_secs(2))), ..Default::default() });
        MysqlProvider::connect("maria", &cfg, &|_| Ok(SecretString::from(m.admin_password.clone()))).await.unwrap()
    })
    .await
}

/// A single user with a live password.
struct SingleUser;
#[async_trait]
impl Fixture for SingleUser {
    async fn create(&self) -> (Target, Handle, SecretString) {
        let user = uniq("ks_single");
        let pw = format!("Old-{}", uuid::Uuid::new_v4().simple());
        let (u, p) = (user.clone(), pw.clone());
        blocking(move || mysql().create_user(&u, &p)).await;
        (target(&user, None, false), user_handle(&user), SecretString::from(pw))
    }
    async fn unreachable(&self) -> Option<std::sync::Arc<dyn Provider>> {
        Some(std::sync::Arc::new(down().await))
    }
}

/// An alternating pair whose second account does not exist yet (`create_clone`).
struct AlternatingUsers;
#[async_trait]
impl Fixture for AlternatingUsers {
    async fn create(&self) -> (Target, Handle, SecretString) {
        let user = uniq("ks_alt");
        let clone = format!("{user}_b");
        let pw = format!("Old-{}", uuid::Uuid::new_v4().simple());
        let (u, p) = (user.clone(), pw.clone());
        blocking(move || mysql().create_user(&u, &p)).await;
        (target(&user, Some(&clone), true), user_handle(&user), SecretString::from(pw))
    }
    async fn unreachable(&self) -> Option<std::sync::Arc<dyn Provider>> {
        Some(std::sync::Arc::new(down().await))
    }
}

#[tokio::test]
async fn mysql_user_single_conformance() {
    let p = provider().await;
    conformance::run(&p, &SingleUser, "mysql_user").await;
}

#[tokio::test]
async fn mysql_user_alternating_conformance() {
    let p = provider().await;
    conformance::run(&p, &AlternatingUsers, "mysql_user").await;
}

#[tokio::test]
async fn alternating_users_take_turns_and_the_clone_gets_the_grants() {
    let p = provider().await;
    let user = uniq("ks_turns");
    let clone = format!("{user}_b");
    let (u, c) = (user.clone(), clone.clone());
    blocking(move || {
        let m = mysql();
        m.create_user(&u, "first-Password-1");
        m.sql(&format!("GRANT INSERT, UPDATE ON keysweep_test.t TO {}@'%'", lit(&u)));
        m.sql(&format!("GRANT SELECT (id) ON keysweep_test.t TO {}@'%' WITH GRANT OPTION", lit(&u)));
        assert_eq!(m.locked(&c, "%"), None, "the clone must not exist yet");
    })
    .await;
    let t = target(&user, Some(&clone), true);

    // Turn 1: the clone is created with the user's grants, locked until apply.
    let old = p.current_handle(&t, None).await.unwrap();
    assert_eq!(old, user_handle(&user));
    let fields = p.new_fields(&t, &old).await.unwrap();
    assert_eq!(fields.get("username"), Some(&clone));
    let (u, c) = (user.clone(), clone.clone());
    blocking(move || {
        let m = mysql();
        assert_eq!(m.locked(&c, "%"), Some(true), "a fresh clone stays locked until a password is applied");
        let strip = |g: &[String], who: &str| -> Vec<String> {
            let mut v: Vec<String> = g
                .iter()
                .map(|l| l.replace(&format!("`{who}`@`%`"), "`X`@`%`"))
                .map(|l| match l.find(" IDENTIFIED ") {
                    Some(i) => l[..i].to_string(),
                    None => l,
                })
                .collect();
            v.sort();
            v
        };
        let (gu, gc) = (m.grants(&u, "%"), m.grants(&c, "%"));
        assert_eq!(strip(&gu, &u), strip(&gc, &c), "the clone's grants differ: {gu:?} vs {gc:?}");
        assert!(gc.iter().any(|g| g.contains("INSERT, UPDATE ON `keysweep_test`.`t`")), "{gc:?}");
        assert!(gc.iter().any(|g| g.contains("SELECT (`id`)") && g.contains("WITH GRANT OPTION")), "{gc:?}");
        let user_hash =
            gu.iter().find_map(|g| g.split("IDENTIFIED BY PASSWORD '").nth(1)).and_then(|h| h.split('\'').next()).expect("the user has a hash");
        assert!(!gc.iter().any(|g| g.contains(user_hash)), "the clone got the user's password hash: {gc:?}");
    })
    .await;
    // new_fields again (a resumed stage) changes nothing.
    assert_eq!(p.new_fields(&t, &old).await.unwrap().get("username"), Some(&clone));

    let v1 = SecretString::from("second-Password-2".to_string());
    let d1 = Delivered { value: v1, fields: fields.clone() };
    p.apply(&t, &d1).await.unwrap();
    let h1 = p.handle_from_fields(&t, &d1.fields);
    assert!(matches!(p.test(&t, &d1, &h1).await, Verdict::Alive(_)));
    p.retire(&t, &old).await.unwrap();
    let (u, c) = (user.clone(), clone.clone());
    blocking(move || {
        let m = mysql();
        assert!(!m.login_works(&u, "first-Password-1"), "the retired account still logs in");
        assert!(m.login_works(&c, "second-Password-2"), "the account in service does not log in");
        assert_eq!(m.locked(&u, "%"), Some(true));
    })
    .await;

    // Turn 2: the store now names the clone; the user is rotated and unlocked.
    let stored = BTreeMap::from([("username".to_string(), clone.clone()), ("version".to_string(), "2".to_string())]);
    let old2 = p.current_handle(&t, Some(&stored)).await.unwrap();
    assert_eq!(old2, user_handle(&clone));
    let fields2 = p.new_fields(&t, &old2).await.unwrap();
    assert_eq!(fields2.get("username"), Some(&user));
    let d2 = Delivered { value: SecretString::from("third-Password-3".to_string()), fields: fields2 };
    p.apply(&t, &d2).await.unwrap();
    assert!(matches!(p.test(&t, &d2, &Handle::new()).await, Verdict::Alive(_)), "test must find the account in the value's fields");
    assert!(matches!(p.verify_dead(&t, &old2, Some(&d1.value)).await, Verdict::Alive(_)));
    p.retire(&t, &old2).await.unwrap();
    assert!(matches!(p.verify_dead(&t, &old2, Some(&d1.value)).await, Verdict::Dead(_)));
    let (u, c) = (user.clone(), clone.clone());
    blocking(move || {
        let m = mysql();
        assert!(m.login_works(&u, "third-Password-3"));
        assert!(!m.login_works(&c, "second-Password-2"));
        assert_eq!(m.locked(&u, "%"), Some(false));
    })
    .await;

    // A store naming an account outside the pair is refused, not guessed.
    let foreign = BTreeMap::from([("username".to_string(), "someone_else".to_string())]);
    let e = p.current_handle(&t, Some(&foreign)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config, "{e}");
}

#[tokio::test]
async fn an_interrupted_clone_gets_its_grants_on_resume() {
    let p = provider().await;
    let user = uniq("ks_resume");
    let clone = format!("{user}_b");
    let (u, c) = (user.clone(), clone.clone());
    blocking(move || {
        let m = mysql();
        m.create_user(&u, "resume-Password-1");
        // As if a run died between CREATE USER and the grants.
        m.sql(&format!("CREATE USER {}@'%' IDENTIFIED BY 'whatever-x1' ACCOUNT LOCK", lit(&c)));
    })
    .await;
    let t = target(&user, Some(&clone), true);
    p.new_fields(&t, &user_handle(&user)).await.unwrap();
    let c = clone.clone();
    let g = blocking(move || mysql().grants(&c, "%")).await;
    assert!(g.iter().any(|l| l.contains("SELECT ON `keysweep_test`.*")), "grants not completed: {g:?}");

    // Without create_clone, a missing alternate is a clear error.
    let t = target(&user, Some("ks_nobody_here"), false);
    let e = p.new_fields(&t, &user_handle(&user)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    assert!(e.message.contains("create_clone"), "{e}");
}

#[tokio::test]
async fn passwords_with_quotes_backslashes_and_percent_are_applied_and_never_leaked() {
    let p = provider().await;
    let nasty = [r"it's\a%pass'word\\'; DROP TABLE x; --", r"\'%_\n\0 end\", "''\\\\%%"];
    let user = uniq("ks_nasty");
    let u = user.clone();
    blocking(move || mysql().create_user(&u, "plain-Password-1")).await;
    let t = target(&user, None, false);
    for pw in nasty {
        let d = Delivered { value: SecretString::from(pw.to_string()), fields: user_handle(&user) };
        p.apply(&t, &d).await.unwrap_or_else(|e| panic!("apply {pw:?}: {e}"));
        assert!(matches!(p.test(&t, &d, &user_handle(&user)).await, Verdict::Alive(_)), "{pw:?} does not work through keysweep");
        let (u, pw2) = (user.clone(), pw.to_string());
        assert!(blocking(move || mysql().login_works(&u, &pw2)).await, "{pw:?} was not stored verbatim");
    }

    // Under NO_BACKSLASH_ESCAPES a backslash is an ordinary character: a
    // provider connected then must still write the password verbatim.
    blocking(|| mysql().sql("SET GLOBAL sql_mode = CONCAT(@@GLOBAL.sql_mode, ',NO_BACKSLASH_ESCAPES')")).await;
    let p2 = provider().await;
    let pw = r"back\slash'quote\\%";
    let d = Delivered { value: SecretString::from(pw.to_string()), fields: user_handle(&user) };
    let r = p2.apply(&t, &d).await;
    blocking(|| mysql().sql("SET GLOBAL sql_mode = REPLACE(@@GLOBAL.sql_mode, 'NO_BACKSLASH_ESCAPES', '')")).await;
    r.unwrap();
    let u = user.clone();
    assert!(blocking(move || mysql().login_works(&u, r"back\slash'quote\\%")).await, "NO_BACKSLASH_ESCAPES: not stored verbatim");

    // Errors never carry the password: an absent account...
    let secret = r"Leak'Me\Not%-0123456789";
    let d = Delivered { value: SecretString::from(secret.to_string()), fields: user_handle("ks_absent_user") };
    let e = p.apply(&target("ks_absent_user", None, false), &d).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    for shown in [e.to_string(), format!("{e:?}")] {
        assert!(!shown.contains("Leak"), "{shown}");
        assert!(!shown.contains("0123456789"), "{shown}");
    }
    // ...nor a NUL that cannot be written in a literal.
    let d = Delivered { value: SecretString::from("Leak\0Me-0123456789".to_string()), fields: user_handle(&user) };
    let e = p.apply(&t, &d).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config, "{e}");
    assert!(!format!("{e} {e:?}").contains("Leak"), "{e:?}");
}

#[tokio::test]
async fn a_locked_account_with_the_right_password_is_unknown_not_dead() {
    // MariaDB answers 4151 ("this account is locked") only when the password
    // is right; a wrong one still gets 1045. So 4151 is never proof of death.
    let p = provider().await;
    let user = uniq("ks_locked");
    let u = user.clone();
    let codes = blocking(move || {
        let m = mysql();
        m.create_user(&u, "locked-Password-1");
        m.sql(&format!("ALTER USER {}@'%' ACCOUNT LOCK", lit(&u)));
        (m.login(&u, "locked-Password-1"), m.login(&u, "wrong-Password-9"))
    })
    .await;
    assert_eq!(codes, (Err(4151), Err(1045)), "MariaDB's answers to a locked account changed");
    let t = target(&user, None, false);
    let value = SecretString::from("locked-Password-1".to_string());
    let v = p.verify_dead(&t, &user_handle(&user), Some(&value)).await;
    assert!(matches!(&v, Verdict::Unknown(e) if e.contains("4151")), "{v:?}");
    let d = Delivered { value, fields: user_handle(&user) };
    let v = p.test(&t, &d, &user_handle(&user)).await;
    assert!(matches!(&v, Verdict::Unknown(_)), "{v:?}");
    // A wrong password on the same locked account: the documented refusal.
    let v = p.verify_dead(&t, &user_handle(&user), Some(&SecretString::from("wrong-Password-9".to_string()))).await;
    assert!(matches!(&v, Verdict::Dead(e) if e.contains("1045")), "{v:?}");
}

#[tokio::test]
async fn an_account_blocked_after_failed_probes_is_unknown_and_apply_unblocks_it() {
    // MariaDB's answer to MySQL's FAILED_LOGIN_ATTEMPTS: after
    // `max_password_errors` wrong passwords an account is blocked (4150) for
    // every password, the right one too. A live password must not look dead.
    // The limit is global: 3 leaves every other test of this binary (at most
    // two failed logins per account) untouched.
    let p = provider().await;
    let user = uniq("ks_blocked");
    let u = user.clone();
    blocking(move || {
        mysql().create_user(&u, "blocked-Password-1");
        mysql().sql("SET GLOBAL max_password_errors = 3");
    })
    .await;
    let t = target(&user, None, false);
    let h = user_handle(&user);
    let wrong = SecretString::from("wrong-Password-9".to_string());
    let right = SecretString::from("blocked-Password-1".to_string());
    let mut verdicts = vec![];
    for _ in 0..3 {
        verdicts.push(p.verify_dead(&t, &h, Some(&wrong)).await);
    }
    let blocked_right = p.verify_dead(&t, &h, Some(&right)).await;
    let blocked_test = p.test(&t, &Delivered { value: SecretString::from("blocked-Password-1".to_string()), fields: h.clone() }, &h).await;
    let u = user.clone();
    let code = blocking(move || {
        let m = mysql();
        let code = m.login(&u, "blocked-Password-1");
        m.sql("SET GLOBAL max_password_errors = DEFAULT");
        code
    })
    .await;
    assert!(verdicts.iter().all(|v| matches!(v, Verdict::Dead(_))), "{verdicts:?}");
    assert_eq!(code, Err(4150), "MariaDB's answer to a blocked account changed");
    assert!(matches!(&blocked_right, Verdict::Unknown(e) if e.contains("4150")), "{blocked_right:?}");
    assert!(matches!(&blocked_test, Verdict::Unknown(_)), "{blocked_test:?}");
    // ALTER USER (apply) clears the block.
    let d = Delivered { value: SecretString::from("unblocked-Password-2".to_string()), fields: h.clone() };
    p.apply(&t, &d).await.unwrap();
    assert!(matches!(p.test(&t, &d, &h).await, Verdict::Alive(_)));
}

#[tokio::test]
async fn revoke_is_proven_dead_from_outside_and_is_idempotent() {
    let p = provider().await;
    let user = uniq("ks_revoke");
    let u = user.clone();
    blocking(move || mysql().create_user(&u, "revoke-Password-1")).await;
    let t = target(&user, None, false);
    let h = p.current_handle(&t, None).await.unwrap();
    let old = SecretString::from("revoke-Password-1".to_string());
    assert!(matches!(p.verify_dead(&t, &h, None).await, Verdict::Unprovable(_)), "a live account is never dead admin-side");
    p.retire(&t, &h).await.unwrap();
    p.retire(&t, &h).await.unwrap();
    assert!(matches!(p.verify_dead(&t, &h, Some(&old)).await, Verdict::Dead(_)));
    assert!(matches!(p.verify_dead(&t, &h, None).await, Verdict::Dead(_)));
    let u = user.clone();
    blocking(move || {
        let m = mysql();
        assert_eq!(m.login("ks_no_such", "x"), Err(1045));
        assert_eq!(m.login(&u, "revoke-Password-1"), Err(1045), "the old password must be refused with 1045");
        assert_eq!(m.locked(&u, "%"), Some(true));
        m.sql(&format!("DROP USER {}@'%'", lit(&u)));
    })
    .await;
    // Gone entirely: retire is a no-op and death is proven admin-side.
    p.retire(&t, &h).await.unwrap();
    let v = p.verify_dead(&t, &h, None).await;
    assert!(matches!(&v, Verdict::Dead(e) if e.contains("no longer exists")), "{v:?}");
}

#[tokio::test]
async fn an_account_with_a_host_part_is_rotated_there() {
    let p = provider().await;
    let user = uniq("ks_host");
    let u = user.clone();
    blocking(move || mysql().create_user_at(&u, "127.0.0.1", "host-Password-1")).await;
    let t = target_at(&user, "127.0.0.1");
    let d = Delivered { value: SecretString::from("host-Password-2".to_string()), fields: user_handle(&user) };
    p.apply(&t, &d).await.unwrap();
    assert!(matches!(p.test(&t, &d, &user_handle(&user)).await, Verdict::Alive(_)));
    let v = p.verify_dead(&t, &user_handle(&user), Some(&SecretString::from("host-Password-1".to_string()))).await;
    assert!(matches!(v, Verdict::Dead(_)), "{v:?}");
    // The same name at `%` does not exist: applying there is NotFound.
    let e = p.apply(&target(&user, None, false), &d).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
}

#[tokio::test]
async fn a_refusal_is_proof_only_for_the_account_the_server_would_pick() {
    // keysweep connects from 127.0.0.1. A more specific account of the same
    // name wins the match, and an account whose host does not admit
    // 127.0.0.1 is never reached by a probe: a 1045 then proves nothing.
    let p = provider().await;
    let user = uniq("ks_scope");
    let far = uniq("ks_far");
    let (u, f) = (user.clone(), far.clone());
    blocking(move || {
        let m = mysql();
        m.create_user(&u, "wide-Password-1");
        m.create_user_at(&u, "127.0.0.1", "narrow-Password-2");
        m.create_user_at(&f, "10.250.%", "far-Password-3");
    })
    .await;
    let wide = target(&user, None, false);
    let h = user_handle(&user);
    let v = p.verify_dead(&wide, &h, Some(&SecretString::from("wide-Password-1".to_string()))).await;
    assert!(matches!(&v, Verdict::Unknown(e) if e.contains("127.0.0.1")), "a rival account's refusal was taken as proof: {v:?}");
    // The rival's password logs in, but as the rival: not a test of '%'.
    let d = Delivered { value: SecretString::from("narrow-Password-2".to_string()), fields: h.clone() };
    let v = p.test(&wide, &d, &h).await;
    assert!(matches!(&v, Verdict::Unknown(e) if e.contains("not the one tested")), "{v:?}");
    // The narrow account itself (exact host) is proven either way.
    let narrow = target_at(&user, "127.0.0.1");
    assert!(matches!(p.test(&narrow, &d, &h).await, Verdict::Alive(_)));
    let v = p.verify_dead(&narrow, &h, Some(&SecretString::from("wide-Password-1".to_string()))).await;
    assert!(matches!(v, Verdict::Dead(_)), "{v:?}");

    let far_t = target_at(&far, "10.250.%");
    let v = p.verify_dead(&far_t, &user_handle(&far), Some(&SecretString::from("far-Password-3".to_string()))).await;
    assert!(matches!(&v, Verdict::Unknown(e) if e.contains("does not admit")), "{v:?}");
    // Admin-side proof still works there: retire, then the account is locked.
    p.retire(&far_t, &user_handle(&far)).await.unwrap();
    assert!(matches!(p.verify_dead(&far_t, &user_handle(&far), None).await, Verdict::Dead(_)));
}

#[tokio::test]
async fn inventory_marks_the_admin_privileged_and_holds_no_hash() {
    let p = provider().await;
    let user = uniq("ks_inv");
    let u = user.clone();
    let hashes = blocking(move || {
        let m = mysql();
        m.create_user(&u, "inventory-Password-1");
        m.sql("SELECT JSON_VALUE(Priv, '$.authentication_string') FROM mysql.global_priv")
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| l.len() > 8 && l != "NULL")
            .collect::<Vec<_>>()
    })
    .await;
    assert!(!hashes.is_empty(), "the test needs some hashes to look for");
    let items = p.inventory().await.unwrap();
    let find = |id: &str| items.iter().find(|i| i.id == id).unwrap_or_else(|| panic!("{id} not in the inventory"));
    let admin = find("keysweep_admin@%");
    assert_eq!(admin.kind, "mysql_user");
    assert_eq!(admin.details["privileged"], "true");
    assert_eq!(admin.details["grant"], "true");
    assert_eq!(admin.details["account_locked"], "false");
    assert!(admin.rotated.is_some(), "the password change date: {:?}", admin);
    let plain = find(&format!("{user}@%"));
    assert_eq!(plain.details["privileged"], "false");
    assert_eq!(plain.details["super"], "false");
    assert!(find("mariadb.sys@localhost").details["account_locked"] == "true");
    let json = serde_json::to_string(&items).unwrap();
    for h in &hashes {
        assert!(!json.contains(h.as_str()), "a password hash leaked into the inventory");
    }
    assert!(!json.contains("inventory-Password-1"));
    assert!(!json.contains("authentication_string"));
}

#[tokio::test]
async fn connect_errors_are_classified_and_secret_free() {
    let m = blocking(mysql).await;
    // A wrong admin password: Unauthenticated, and the password is not in the error.
    let cfg = config(m.port, Limits::default());
    let e = MysqlProvider::connect("maria", &cfg, &|_| Ok(SecretString::from("Wrong-Admin-Secret-77".to_string())))
        .await
        .err()
        .expect("a wrong admin password must be refused");
    assert_eq!(e.kind, ErrorKind::Unauthenticated, "{e}");
    assert!(!format!("{e} {e:?}").contains("Wrong-Admin-Secret-77"), "{e:?}");
    // Nothing listening: Unavailable (temporary).
    let closed = common::mysql::closed_port();
    let cfg =
        config(closed, Limits { timeout: Some(keysweep::playbook::model::HumanDuration(std::time::Duration::from_secs(5))), ..Default::default() });
    let e = MysqlProvider::connect("maria", &cfg, &|_| Ok(SecretString::from(m.admin_password.clone()))).await.err().expect("nothing listens there");
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
    assert!(e.is_temporary());
    // The right one works, and mint is not this kind's business.
    let p = provider().await;
    let t = target("anyone", None, false);
    let e = p.mint(&t, &Handle::new(), "n").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported);
    assert_eq!(p.cleanup_minted(&t, &Handle::new(), "n", None).await.unwrap(), 0);
    assert_eq!(p.kind(), "mysql");
}

mod tls {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use keysweep::playbook::model::HumanDuration;
    use keysweep::provider::kind::ProviderKind;
    use keysweep::provider::ProviderError;
    use keysweep::providers::mysql_tls::SslMode;

    fn tls_cfg(host: &str, mode: SslMode, ca: Option<&Path>) -> MysqlProviderConfig {
        let m = mysql();
        let limits =
            Limits { timeout: Some(HumanDuration(Duration::from_secs(10))), max_attempts: Some(1), concurrency: Some(4), ..Default::default() };
        let mut c = config(m.port, limits);
        c.host = host.to_string();
        c.ssl_mode = Some(mode);
        c.tls.ca_cert = ca.map(|p| p.display().to_string());
        c
    }

    fn ca() -> Option<&'static Path> {
        Some(mysql().ca_cert.as_path())
    }

    async fn connect_as(c: &MysqlProviderConfig, user: &str, password: &str) -> Result<MysqlProvider, ProviderError> {
        let mut c = c.clone();
        c.admin.user = user.to_string();
        let pw = password.to_string();
        MysqlProvider::connect("maria", &c, &move |_| Ok(SecretString::from(pw.clone()))).await
    }

    async fn connect(c: &MysqlProviderConfig) -> Result<MysqlProvider, ProviderError> {
        let m = blocking(mysql).await;
        connect_as(c, &m.admin_user, &m.admin_password).await
    }

    /// An admin account of this test's own that may log in over TLS only
    /// (`REQUIRE SSL`, or `require` as written), checked from outside: a
    /// plaintext login with its right password is refused.
    async fn tls_only_admin(require: &'static str) -> (String, String) {
        let (user, pw) = (uniq("ks_tlsadm"), format!("Adm-{}", uuid::Uuid::new_v4().simple()));
        let (u, p) = (user.clone(), pw.clone());
        blocking(move || {
            let m = mysql();
            m.create_user(&u, &p);
            m.sql(&format!("GRANT ALL PRIVILEGES ON *.* TO {}@'%' WITH GRANT OPTION; ALTER USER {}@'%' REQUIRE {require}", lit(&u), lit(&u)));
            assert_eq!(m.login(&u, &p), Err(1045), "a plaintext login of a REQUIRE {require} account must be refused");
        })
        .await;
        (user, pw)
    }

    #[tokio::test]
    async fn verify_identity_rotates_over_tls_proven_by_an_independent_client() {
        // keysweep's admin may log in over TLS only: connecting proves the pool's TLS.
        let (admin, admin_pw) = tls_only_admin("SSL").await;
        let c = tls_cfg("localhost", SslMode::VerifyIdentity, ca());
        assert!(c.check(false).is_empty(), "{:?}", c.check(false));
        assert!(c.warnings().is_empty(), "{:?}", c.warnings());
        let p = connect_as(&c, &admin, &admin_pw).await.unwrap_or_else(|e| panic!("{e}"));

        // An application account that logs in over TLS only, rotated in place.
        let user = uniq("ks_tlsapp");
        let old = format!("Old-{}", uuid::Uuid::new_v4().simple());
        let (u, o) = (user.clone(), old.clone());
        blocking(move || {
            let m = mysql();
            m.create_user(&u, &o);
            m.sql(&format!("ALTER USER {}@'%' REQUIRE SSL", lit(&u)));
            assert!(!m.login_tls(&u, &o).unwrap().is_empty(), "the independent client's session is not over TLS");
        })
        .await;
        let t = target(&user, None, false);
        let h = p.current_handle(&t, None).await.unwrap();
        let new =
            Delivered { value: SecretString::from(format!("New-{}", uuid::Uuid::new_v4().simple())), fields: p.new_fields(&t, &h).await.unwrap() };
        p.apply(&t, &new).await.unwrap_or_else(|e| panic!("{e}"));
        // The probes log in as a REQUIRE SSL account: accepted only over TLS.
        let v = p.test(&t, &new, &h).await;
        assert!(matches!(v, Verdict::Alive(_)), "{v:?}");
        let v = p.verify_dead(&t, &h, Some(&SecretString::from(old.clone()))).await;
        assert!(matches!(v, Verdict::Dead(_)), "{v:?}");

        // The server itself, from a client of its own.
        let new_pw = keysweep::secret::ExposeSecret::expose_secret(&new.value).to_string();
        blocking(move || {
            let m = mysql();
            let cipher = m.login_tls(&user, &new_pw).unwrap_or_else(|code| panic!("the new password does not log in over TLS: {code}"));
            assert!(!cipher.is_empty(), "no TLS cipher on the independent session");
            assert_eq!(m.login_tls(&user, &old), Err(1045), "the old password still logs in");
            assert_eq!(m.login(&user, &new_pw), Err(1045), "the account must stay TLS-only");
        })
        .await;
    }

    #[tokio::test]
    async fn verify_identity_refuses_an_address_the_certificate_does_not_name_and_verify_ca_accepts_it() {
        // The certificate names `localhost`; the address is 127.0.0.1.
        let e = connect(&tls_cfg("127.0.0.1", SslMode::VerifyIdentity, ca())).await.err().expect("a certificate for another name must be refused");
        assert_eq!(e.kind, ErrorKind::Config, "{e}");
        assert!(!e.is_temporary(), "{e}");
        assert!(e.message.contains("does not name this host") && e.message.contains("verify_ca"), "{e}");
        // `tls.server_name` names what the certificate carries: accepted.
        let mut named = tls_cfg("127.0.0.1", SslMode::VerifyIdentity, ca());
        named.tls.server_name = Some("localhost".into());
        connect(&named).await.unwrap_or_else(|e| panic!("{e}"));
        // verify_ca checks the chain only: the same address connects, over TLS
        // (the admin may log in over TLS only).
        let (admin, admin_pw) = tls_only_admin("SSL").await;
        let p = connect_as(&tls_cfg("127.0.0.1", SslMode::VerifyCa, ca()), &admin, &admin_pw).await.unwrap_or_else(|e| panic!("{e}"));
        p.inventory().await.unwrap();
    }

    #[tokio::test]
    async fn a_certificate_from_another_ca_is_refused_with_the_setting_to_fix() {
        let other = blocking(|| mysql().certs.join("other/ca.pem")).await;
        for mode in [SslMode::VerifyIdentity, SslMode::VerifyCa] {
            // verify_ca too: skipping the name never skips the chain.
            let e = connect(&tls_cfg("localhost", mode, Some(&other))).await.err().unwrap_or_else(|| panic!("{mode:?}: a wrong CA must be refused"));
            assert_eq!(e.kind, ErrorKind::Config, "{mode:?}: {e}");
            assert!(e.message.contains("`tls.ca_cert`"), "{mode:?}: {e}");
        }
        // No CA named: the system's roots, which do not hold the test CA.
        let e = connect(&tls_cfg("localhost", SslMode::VerifyIdentity, None)).await.err().expect("an unknown CA must be refused");
        assert!(e.message.contains("`tls.ca_cert`"), "{e}");
        // A missing CA file is named, with its setting.
        let e = connect(&tls_cfg("localhost", SslMode::VerifyIdentity, Some(Path::new("/nonexistent/ca.pem")))).await.err().unwrap();
        assert_eq!(e.kind, ErrorKind::Config, "{e}");
        assert!(e.message.contains("tls.ca_cert") && e.message.contains("/nonexistent/ca.pem"), "{e}");
    }

    #[tokio::test]
    async fn required_connects_unverified_over_tls_and_is_reported() {
        let (admin, admin_pw) = tls_only_admin("SSL").await;
        let c = tls_cfg("127.0.0.1", SslMode::Required, None);
        connect_as(&c, &admin, &admin_pw).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(c.warnings().iter().any(|w| w.contains("verification is OFF") && w.contains("ssl_mode: required")), "{:?}", c.warnings());
        // Plaintext to a TLS-only account is refused: the connection above was TLS.
        let plain = tls_cfg("127.0.0.1", SslMode::Disabled, None);
        let e = connect_as(&plain, &admin, &admin_pw).await.err().expect("a plaintext login of a REQUIRE SSL admin must be refused");
        assert_eq!(e.kind, ErrorKind::Unauthenticated, "{e}");
    }

    #[tokio::test]
    async fn a_client_certificate_is_presented_when_named() {
        // An admin that must present a certificate with this subject.
        let (admin, admin_pw) = tls_only_admin("SUBJECT '/CN=keysweep-client'").await;
        let certs = blocking(|| mysql().certs.clone()).await;
        let without = tls_cfg("localhost", SslMode::VerifyIdentity, ca());
        let e = connect_as(&without, &admin, &admin_pw).await.err().expect("no client certificate: refused");
        assert_eq!(e.kind, ErrorKind::Unauthenticated, "{e}");
        let mut with = without.clone();
        with.tls.client_cert = Some(certs.join("client.pem").display().to_string());
        with.tls.client_key = Some(certs.join("client.key").display().to_string());
        assert!(with.check(false).is_empty(), "{:?}", with.check(false));
        connect_as(&with, &admin, &admin_pw).await.unwrap_or_else(|e| panic!("{e}"));
        // A missing key file is named by its setting.
        with.tls.client_key = Some("/nonexistent/client.key".into());
        let e = connect_as(&with, &admin, &admin_pw).await.err().unwrap();
        assert!(e.message.contains("tls.client_key"), "{e}");
    }

    fn problems(c: &MysqlProviderConfig) -> Vec<String> {
        c.check(false).into_iter().map(|p| format!("{} ({})", p.message, p.hint.unwrap_or_default())).collect()
    }

    #[test]
    fn ssl_mode_defaults_and_load_time_refusals() {
        let remote = |mode: Option<SslMode>| {
            let mut c = config(3306, Limits::default());
            c.host = "db.internal".into();
            c.ssl_mode = mode;
            c
        };
        // The default: verify_identity for a remote host, disabled for loopback.
        assert_eq!(remote(None).effective_ssl_mode(), SslMode::VerifyIdentity);
        assert!(problems(&remote(None)).is_empty());
        assert!(remote(None).warnings().is_empty());
        for h in ["127.0.0.1", "localhost", "::1"] {
            let mut c = remote(None);
            c.host = h.into();
            assert_eq!(c.effective_ssl_mode(), SslMode::Disabled, "{h}");
            assert!(problems(&c).is_empty() && c.warnings().is_empty(), "{h}");
        }
        // Plaintext to a remote host: refused, unless allowed, and then reported.
        let mut c = remote(Some(SslMode::Disabled));
        let p = problems(&c);
        assert!(
            p.iter().any(|m| m.contains("`ssl_mode: disabled` to `db.internal`, which is not loopback") && m.contains("allow_plaintext: true")),
            "{p:?}"
        );
        c.allow_plaintext = true;
        assert!(problems(&c).is_empty());
        assert!(c.warnings().iter().any(|w| w.contains("unencrypted")), "{:?}", c.warnings());
        // `tls` with TLS off.
        c.tls.ca_cert = Some("/etc/ca.pem".into());
        assert!(problems(&c).iter().any(|m| m.contains("TLS is off")), "{:?}", problems(&c));
        // A CA that `required` would not check.
        let mut c = remote(Some(SslMode::Required));
        c.tls.ca_cert = Some("/etc/ca.pem".into());
        assert!(problems(&c).iter().any(|m| m.contains("verifies nothing") && m.contains("verify_identity")), "{:?}", problems(&c));
        // A server name that verify_ca would not check.
        let mut c = remote(Some(SslMode::VerifyCa));
        c.tls.server_name = Some("db".into());
        assert!(problems(&c).iter().any(|m| m.contains("checks no name")), "{:?}", problems(&c));
        // MySQL's way to turn verification off is `ssl_mode: required`.
        let mut c = remote(None);
        c.tls.insecure_skip_verify = true;
        assert!(problems(&c).iter().any(|m| m.contains("ssl_mode: required")), "{:?}", problems(&c));
        // The shared `tls:` rules apply.
        let mut c = remote(None);
        c.tls.client_cert = Some("/etc/c.pem".into());
        assert!(problems(&c).iter().any(|m| m.contains("without `client_key`")), "{:?}", problems(&c));
        // `required` is reported.
        assert!(remote(Some(SslMode::Required)).warnings().iter().any(|w| w.contains("verification is OFF")));
    }

    #[test]
    fn ssl_mode_is_read_in_mysql_s_own_spellings() {
        for (text, mode) in [
            ("disabled", SslMode::Disabled),
            ("REQUIRED", SslMode::Required),
            ("verify_ca", SslMode::VerifyCa),
            ("VERIFY_CA", SslMode::VerifyCa),
            ("VERIFY_IDENTITY", SslMode::VerifyIdentity),
        ] {
            let c: MysqlProviderConfig =
                serde_yaml::from_str(&format!("host: db.internal\nssl_mode: {text}\nadmin: {{ user: a, password: \"${{env:P}}\" }}")).unwrap();
            assert_eq!(c.ssl_mode, Some(mode), "{text}");
        }
        // PREFERRED (plaintext when the server offers no TLS) is not offered.
        let e = serde_yaml::from_str::<MysqlProviderConfig>("ssl_mode: preferred\nadmin: { user: a, password: \"${env:P}\" }").unwrap_err();
        assert!(e.to_string().contains("unknown variant"), "{e}");
    }
}
