//! The shared conformance suite, run by the Redis provider against a real
//! redis-server with ACLs (single user, and alternating users with and without
//! creating the clone), plus Redis-specific cases: awkward passwords, the
//! inventory, revocation proven with and without the old value, disabled
//! users, and keysweep's own login. The `tls` module connects to the same
//! server's TLS-only port (`rediss://`, the `tls:` block), whose certificate
//! names `localhost` only.

mod common;

use async_trait::async_trait;
use common::redis::{redis, Rd};
use keysweep::playbook::model::{SecretRef, Target};
use keysweep::provider::conformance::{self, Fixture};
use keysweep::provider::{ErrorKind, Handle, Provider, Verdict};
use keysweep::providers::account::{AdminLogin, DbAccountTarget};
use keysweep::providers::redis::RedisProvider;
use keysweep::providers::redis::RedisProviderConfig;
use keysweep::secret::{Delivered, ExposeSecret, SecretString};

async fn rd() -> &'static Rd {
    tokio::task::spawn_blocking(redis).await.unwrap()
}

/// Runs blocking fixture calls off the runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce(&'static Rd) -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(move || f(redis())).await.unwrap()
}

fn config(rd: &Rd, user: &str) -> RedisProviderConfig {
    RedisProviderConfig {
        url: None,
        host: Some(rd.host.clone()),
        port: Some(rd.port),
        admin: AdminLogin { user: user.to_string(), password: SecretRef::Env("KS_REDIS_ADMIN".into()) },
        limits: Default::default(),
        tls: Default::default(),
        allow_plaintext: false,
    }
}

async fn provider() -> RedisProvider {
    let rd = rd().await;
    RedisProvider::connect("cache", &config(rd, &rd.admin_user), &|_| Ok(SecretString::from(rd.admin_password.clone()))).await.unwrap()
}

fn uid() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

fn target(user: &str, alternate_with: Option<&str>, create_clone: bool) -> Target {
    Target::RedisAclUser(DbAccountTarget {
        user: user.into(),
        alternate_with: alternate_with.map(str::to_string),
        create_clone,
        generate: Default::default(),
        host: None,
    })
}

fn handle(user: &str) -> Handle {
    Handle::from([("username".to_string(), user.to_string())])
}

fn delivered(user: &str, value: &str) -> Delivered {
    Delivered::new(SecretString::from(value.to_string())).with_field("username", user)
}

/// The provider, logged in through a proxy that then drops every connection.
async fn down() -> RedisProvider {
    let rd = rd().await;
    common::faultproxy::behind_a_dead_proxy(&format!("{}:{}", rd.host, rd.port), async |host: &str, port: u16| {
        let mut c = config(rd, &rd.admin_user);
        (c.host, c.port) = (Some(host.to_string()), Some(port));
        c.limits.timeout = Some(keysweep::playbook::model::HumanDuration(std::time::Duration::from_secs(2)));
        RedisProvider::connect("cache", &c, &|_| Ok(SecretString::from(rd.admin_password.clone()))).await.unwrap()
    })
    .await
}

struct SingleUser;
#[async_trait]
impl Fixture for SingleUser {
    async fn create(&self) -> (Target, Handle, SecretString) {
        let user = format!("app-{}", uid());
        let pw = format!("old-{}-pw", uid());
        let (u, p) = (user.clone(), pw.clone());
        blocking(move |r| r.create_user(&u, &p)).await;
        (target(&user, None, false), handle(&user), SecretString::from(pw))
    }
    async fn unreachable(&self) -> Option<std::sync::Arc<dyn Provider>> {
        Some(std::sync::Arc::new(down().await))
    }
}

/// An alternating pair `<x>-a` (in service) / `<x>-b`; with `create_clone`
/// only `-a` exists and keysweep must create `-b`.
struct Pair {
    create_clone: bool,
}
#[async_trait]
impl Fixture for Pair {
    async fn create(&self) -> (Target, Handle, SecretString) {
        let base = format!("pair-{}", uid());
        let (a, b) = (format!("{base}-a"), format!("{base}-b"));
        let pw = format!("old-{}-pw", uid());
        let (a2, b2, p2, make_b) = (a.clone(), b.clone(), pw.clone(), !self.create_clone);
        blocking(move |r| {
            r.create_user(&a2, &p2);
            if make_b {
                r.create_user(&b2, &format!("{p2}-b"));
            }
        })
        .await;
        (target(&a, Some(&b), self.create_clone), handle(&a), SecretString::from(pw))
    }
    async fn unreachable(&self) -> Option<std::sync::Arc<dyn Provider>> {
        Some(std::sync::Arc::new(down().await))
    }
}

#[tokio::test]
async fn redis_acl_user_single_user_conformance() {
    let p = provider().await;
    conformance::run(&p, &SingleUser, "redis_acl_user").await;
}

#[tokio::test]
async fn redis_acl_user_alternating_users_conformance() {
    let p = provider().await;
    conformance::run(&p, &Pair { create_clone: false }, "redis_acl_user").await;
}

#[tokio::test]
async fn redis_acl_user_alternating_users_with_clone_creation_conformance() {
    let p = provider().await;
    conformance::run(&p, &Pair { create_clone: true }, "redis_acl_user").await;
}

#[tokio::test]
async fn a_password_with_spaces_quotes_and_markers_is_applied_exactly() {
    let p = provider().await;
    let (t, old, old_pw) = SingleUser.create().await;
    let user = old["username"].clone();
    // A leading '#' (the hashed-password marker), '>'/'<' (the add/remove
    // markers), spaces, both quotes, a tab, a backslash and shell-isms.
    let pw = "#not a hash >gt <lt it's \"quoted\"\tand \\ back $HOME `x` ~* +@all";
    let new = delivered(&user, pw);
    p.apply(&t, &new).await.unwrap();
    p.apply(&t, &new).await.unwrap();
    assert!(matches!(p.test(&t, &new, &handle(&user)).await, Verdict::Alive(_)));
    let (u, o) = (user.clone(), old_pw.expose_secret().to_string());
    let (works, trimmed, old_works, passwords, keys) = blocking(move |r| {
        (
            r.login_works(&u, pw),
            r.login_works(&u, pw.trim_start_matches('#')),
            r.login_works(&u, &o),
            r.getuser_field(&u, "passwords").unwrap(),
            r.getuser_field(&u, "keys").unwrap(),
        )
    })
    .await;
    assert!(works, "the exact password must log in from a separate client");
    assert!(!trimmed, "a mangled password must not log in");
    assert!(!old_works, "the old password must be refused");
    assert_eq!(passwords.split_whitespace().count(), 1, "exactly one password after apply: {passwords}");
    assert_eq!(keys, format!("~{user}:*"), "no part of the password was read as a rule");
}

#[tokio::test]
async fn inventory_marks_the_admin_privileged_and_holds_no_hash() {
    let p = provider().await;
    let (_, h, pw) = SingleUser.create().await;
    let user = h["username"].clone();
    let items = p.inventory().await.unwrap();
    let find = |id: &str| items.iter().find(|i| i.id == id).unwrap_or_else(|| panic!("{id} not in the inventory"));
    let admin = find(&rd().await.admin_user);
    assert_eq!(admin.kind, "redis_acl_user");
    assert_eq!(admin.details["privileged"], "true", "{:?}", admin.details);
    assert_eq!(admin.details["enabled"], "true");
    assert_eq!(admin.details["passwords"], "1");
    let app = find(&user);
    assert_eq!(app.details["privileged"], "false", "{:?}", app.details);
    assert_eq!(app.details["passwords"], "1");
    let default = find("default");
    assert_eq!(default.details["enabled"], "false", "{:?}", default.details);

    // No password, and no password hash (Redis keeps SHA-256 hex), anywhere.
    let json = serde_json::to_string(&items).unwrap();
    let hex64 = regex::Regex::new(r"[0-9a-fA-F]{64}").unwrap();
    assert!(!hex64.is_match(&json), "a hash-shaped string in the inventory: {json}");
    use sha2::Digest;
    let hash = format!("{:x}", sha2::Sha256::digest(pw.expose_secret().as_bytes()));
    assert!(!json.contains(&hash) && !json.contains(pw.expose_secret()));
    assert!(!json.contains(&rd().await.admin_password));
}

#[tokio::test]
async fn revoke_is_proven_dead_with_and_without_the_value_and_ends_open_sessions() {
    let p = provider().await;
    let (t, h, pw) = SingleUser.create().await;
    let user = h["username"].clone();
    let (u, v) = (user.clone(), pw.expose_secret().to_string());
    // A session that logged in before the revocation.
    let mut session = blocking(move |r| r.session(&u, &v)).await;

    assert!(matches!(p.verify_dead(&t, &h, Some(&pw)).await, Verdict::Alive(_)));
    let admin_before = p.verify_dead(&t, &h, None).await;
    assert!(matches!(admin_before, Verdict::Unprovable(_)), "a live user is not provably anything admin-side: {admin_before:?}");

    p.retire(&t, &h).await.unwrap();
    p.retire(&t, &h).await.unwrap();
    match p.verify_dead(&t, &h, Some(&pw)).await {
        Verdict::Dead(e) => assert!(e.contains("WRONGPASS"), "{e}"),
        v => panic!("not dead with its value: {v:?}"),
    }
    match p.verify_dead(&t, &h, None).await {
        Verdict::Dead(e) => assert!(e.contains("off"), "{e}"),
        v => panic!("not dead admin-side: {v:?}"),
    }
    let (u, v) = (user.clone(), pw.expose_secret().to_string());
    let (works, flags) = blocking(move |r| (r.login_works(&u, &v), r.getuser_field(&u, "flags").unwrap())).await;
    assert!(!works, "the revoked password still logs in");
    assert!(flags.split_whitespace().any(|f| f == "off"), "the user is not disabled: {flags}");
    let still = tokio::task::spawn_blocking(move || ::redis::cmd("PING").query::<String>(&mut session)).await.unwrap();
    assert!(still.is_err(), "a session opened before the revocation still works: {still:?}");
}

#[tokio::test]
async fn a_disabled_user_is_refused_with_wrongpass_even_with_its_own_password() {
    // What makes `off` safe to add to a retirement: Redis answers a disabled
    // user exactly as it answers a wrong password.
    let p = provider().await;
    let (t, h, pw) = SingleUser.create().await;
    let (u, v) = (h["username"].clone(), pw.expose_secret().to_string());
    let code = blocking(move |r| {
        r.admin(&["ACL", "SETUSER", &u, "off"]);
        let mut c = ::redis::Client::open(format!("redis://{}:{}", r.host, r.port)).unwrap().get_connection().unwrap();
        let e = ::redis::cmd("AUTH").arg(&u).arg(&v).query::<()>(&mut c).expect_err("a disabled user logged in");
        (e.code().map(str::to_string), e.detail().map(str::to_string))
    })
    .await;
    assert_eq!(code.0.as_deref(), Some("WRONGPASS"), "{code:?}");
    assert!(code.1.unwrap_or_default().contains("user is disabled"));
    assert!(matches!(p.verify_dead(&t, &h, Some(&pw)).await, Verdict::Dead(_)));
    assert!(matches!(p.verify_dead(&t, &h, None).await, Verdict::Dead(_)));

    // A user that does not exist is already retired, and dead both ways.
    let ghost = format!("ghost-{}", uid());
    let gt = target(&ghost, None, false);
    p.retire(&gt, &handle(&ghost)).await.unwrap();
    assert!(
        blocking({
            let g = ghost.clone();
            move |r| r.getuser(&g).is_none()
        })
        .await,
        "retire created a missing user"
    );
    assert!(matches!(p.verify_dead(&gt, &handle(&ghost), Some(&pw)).await, Verdict::Dead(_)));
    assert!(matches!(p.verify_dead(&gt, &handle(&ghost), None).await, Verdict::Dead(_)));
}

#[tokio::test]
async fn the_clone_copies_the_users_rules_and_an_existing_one_is_left_alone() {
    let p = provider().await;
    let base = format!("cl-{}", uid());
    let (a, b) = (format!("{base}-a"), format!("{base}-b"));
    let a2 = a.clone();
    blocking(move |r| {
        r.create_user_with(&a2, "old-pw-of-a", &["~app:*", "%R~ro:*", "&news:*", "-@all", "+get", "+set", "+ping", "+client|id", "(~h:* +hget)"]);
    })
    .await;

    // Without create_clone a missing alternate is an error, named with the fix.
    let t = target(&a, Some(&b), false);
    let e = p.new_fields(&t, &handle(&a)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    assert!(e.message.contains("create_clone"), "{e}");

    let t = target(&a, Some(&b), true);
    let fields = p.new_fields(&t, &handle(&a)).await.unwrap();
    assert_eq!(fields.get("username"), Some(&b));
    let new = Delivered { value: SecretString::from("new-pw-of-b-0123456789".to_string()), fields };
    p.apply(&t, &new).await.unwrap();
    let (a2, b2) = (a.clone(), b.clone());
    let (ua, ub) = blocking(move |r| (r.getuser(&a2).unwrap(), r.getuser(&b2).unwrap())).await;
    let field = |u: &Vec<(String, ::redis::Value)>, k: &str| u.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    for k in ["commands", "keys", "channels", "selectors"] {
        assert_eq!(field(&ua, k), field(&ub, k), "`{k}` not copied to the clone");
    }
    let (b2, a2) = (b.clone(), a.clone());
    let (b_works, a_works, b_flags) =
        blocking(move |r| (r.login_works(&b2, "new-pw-of-b-0123456789"), r.login_works(&a2, "old-pw-of-a"), r.getuser_field(&b2, "flags").unwrap()))
            .await;
    assert!(b_works && a_works, "both accounts work until the old one is retired");
    assert!(b_flags.split_whitespace().any(|f| f == "on"), "{b_flags}");

    // Next run: `b` is in service, `a` gets the new password; `a`'s rules stay its own.
    let fields = p.new_fields(&t, &handle(&b)).await.unwrap();
    assert_eq!(fields.get("username"), Some(&a));
    let a2 = a.clone();
    blocking(move |r| r.admin(&["ACL", "SETUSER", &a2, "+hset"])).await;
    p.apply(&t, &Delivered { value: SecretString::from("newer-pw-of-a-0123456789".to_string()), fields }).await.unwrap();
    let a2 = a.clone();
    let cmds = blocking(move |r| r.getuser_field(&a2, "commands").unwrap()).await;
    assert!(cmds.contains("+hset"), "an existing account's rules were rewritten: {cmds}");
}

#[tokio::test]
async fn the_store_names_the_account_in_service_and_nothing_else() {
    let p = provider().await;
    let t = target("svc-a", Some("svc-b"), false);
    assert_eq!(p.current_handle(&t, None).await.unwrap(), handle("svc-a"));
    let stored = Handle::from([("username".to_string(), "svc-b".to_string()), ("version".to_string(), "3".to_string())]);
    assert_eq!(p.current_handle(&t, Some(&stored)).await.unwrap(), handle("svc-b"));
    assert_eq!(p.current_handle(&t, Some(&Handle::from([("version".to_string(), "1".to_string())]))).await.unwrap(), handle("svc-a"));
    assert_eq!(p.handle_from_fields(&t, &stored), handle("svc-b"));

    // A store that names another account never steers keysweep to it.
    let evil = handle(&rd().await.admin_user);
    let e = p.current_handle(&t, Some(&evil)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config, "{e}");
    assert_eq!(p.retire(&t, &evil).await.unwrap_err().kind, ErrorKind::Config);
    assert!(p.apply(&t, &delivered(&rd().await.admin_user, "whatever-0123456789")).await.is_err());
    assert!(matches!(p.verify_dead(&t, &evil, None).await, Verdict::Unknown(_)));
    assert!(p.mint(&t, &evil, "n").await.is_err());
    assert_eq!(p.cleanup_minted(&t, &evil, "n", None).await.unwrap(), 0);
    assert_eq!(p.kind(), "redis");
}

#[tokio::test]
async fn connect_errors_are_classified_and_carry_no_password() {
    let rd = rd().await;
    let wrong = "not-the-admin-password-xyz";
    let e = RedisProvider::connect("cache", &config(rd, &rd.admin_user), &|_| Ok(SecretString::from(wrong.to_string()))).await.err().unwrap();
    assert_eq!(e.kind, ErrorKind::Unauthenticated, "{e}");
    assert!(e.to_string().contains("WRONGPASS"), "{e}");
    assert!(!e.to_string().contains(wrong), "{e}");

    let mut cfg = config(rd, &rd.admin_user);
    cfg.port = Some(std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port());
    let e = RedisProvider::connect("cache", &cfg, &|_| Ok(SecretString::from(rd.admin_password.clone()))).await.err().unwrap();
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
    assert!(e.is_temporary());
    assert!(!e.to_string().contains(&rd.admin_password), "{e}");
}

#[tokio::test]
async fn keysweep_rotating_its_own_admin_login_stays_logged_in() {
    let rd = rd().await;
    let admin2 = format!("admin2-{}", uid());
    let a2 = admin2.clone();
    blocking(move |r| r.create_user_with(&a2, "first-admin2-pw", &["~*", "&*", "+@all"])).await;
    let p = RedisProvider::connect("cache", &config(rd, &admin2), &|_| Ok(SecretString::from("first-admin2-pw".to_string()))).await.unwrap();
    let t = target(&admin2, None, false);
    let new = delivered(&admin2, "second-admin2-pw-0123456789");
    p.apply(&t, &new).await.unwrap();
    assert!(matches!(p.test(&t, &new, &handle(&admin2)).await, Verdict::Alive(_)));
    // Drop keysweep's admin session from outside: it must log in again, with the new password.
    let a2 = admin2.clone();
    blocking(move |r| r.admin(&["CLIENT", "KILL", "USER", &a2])).await;
    let mut ok = false;
    for _ in 0..3 {
        // The first call may find the dropped connection (Unavailable); the next logs in again.
        if p.inventory().await.is_ok() {
            ok = true;
            break;
        }
    }
    assert!(ok, "the provider did not log in again after its connection dropped");
}

mod tls {
    use std::path::Path;
    use std::time::Duration;

    use ::redis::Value;

    use super::*;
    use keysweep::playbook::model::HumanDuration;
    use keysweep::provider::kind::ProviderKind;
    use keysweep::provider::ProviderError;
    use keysweep::providers::redis::Endpoint;

    /// The provider's settings for `url`, with `ca` as `tls.ca_cert`.
    fn url_cfg(url: &str, ca: Option<&Path>) -> RedisProviderConfig {
        let rd = redis();
        let mut c = config(rd, &rd.admin_user);
        (c.url, c.host, c.port) = (Some(url.to_string()), None, None);
        c.tls.ca_cert = ca.map(|p| p.display().to_string());
        c.limits.timeout = Some(HumanDuration(Duration::from_secs(10)));
        c
    }

    fn tls_url(host: &str) -> String {
        format!("rediss://{host}:{}", redis().tls_port)
    }

    fn ca() -> Option<&'static Path> {
        Some(redis().ca_cert.as_path())
    }

    async fn connect_as(c: &RedisProviderConfig, user: &str, password: &str) -> Result<RedisProvider, ProviderError> {
        let mut c = c.clone();
        c.admin.user = user.to_string();
        let pw = password.to_string();
        RedisProvider::connect("cache", &c, &move |_| Ok(SecretString::from(pw.clone()))).await
    }

    async fn connect(c: &RedisProviderConfig) -> Result<RedisProvider, ProviderError> {
        let rd = rd().await;
        connect_as(c, &rd.admin_user, &rd.admin_password).await
    }

    /// The server-side port of every session of `user` (`CLIENT LIST`'s `laddr`).
    fn session_ports(r: &Rd, user: &str) -> Vec<u16> {
        let list = match r.admin(&["CLIENT", "LIST"]) {
            Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
            Value::VerbatimString { text, .. } => text,
            other => panic!("CLIENT LIST: {other:?}"),
        };
        list.lines()
            .filter(|l| l.split(' ').any(|f| f == format!("user={user}")))
            .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("laddr=")).and_then(|a| a.rsplit_once(':')).and_then(|(_, p)| p.parse().ok()))
            .collect()
    }

    #[tokio::test]
    async fn rediss_rotates_over_verified_tls_proven_by_an_independent_client() {
        let rd = rd().await;
        // keysweep logs in as an admin of this test's own, so the server's
        // view of that user's sessions is this test's alone.
        let admin = format!("tls-admin-{}", uid());
        let admin_pw = format!("adm-{}", uid());
        let (a, w) = (admin.clone(), admin_pw.clone());
        blocking(move |r| r.create_user_with(&a, &w, &["~*", "&*", "+@all"])).await;
        let c = url_cfg(&tls_url("localhost"), ca());
        assert!(c.check(false).is_empty(), "{:?}", c.check(false));
        assert!(c.warnings().is_empty(), "{:?}", c.warnings());
        let p = connect_as(&c, &admin, &admin_pw).await.unwrap_or_else(|e| panic!("{e}"));
        let (a, tls_port) = (admin.clone(), rd.tls_port);
        let ports = blocking(move |r| session_ports(r, &a)).await;
        assert!(
            !ports.is_empty() && ports.iter().all(|p| *p == tls_port),
            "keysweep's admin session is not (only) on the TLS port {tls_port}: {ports:?}"
        );

        // A rotation in place. The probes can reach the server only through
        // the TLS port (the URL's), which speaks nothing but TLS.
        let user = format!("tls-app-{}", uid());
        let old = format!("old-{}", uid());
        let (u, o) = (user.clone(), old.clone());
        blocking(move |r| r.create_user(&u, &o)).await;
        let t = target(&user, None, false);
        let h = p.current_handle(&t, None).await.unwrap();
        let new = delivered(&user, &format!("new-{}", uid()));
        p.apply(&t, &new).await.unwrap_or_else(|e| panic!("{e}"));
        let v = p.test(&t, &new, &h).await;
        assert!(matches!(v, Verdict::Alive(_)), "{v:?}");
        let v = p.verify_dead(&t, &h, Some(&SecretString::from(old.clone()))).await;
        assert!(matches!(v, Verdict::Dead(_)), "{v:?}");
        // The server itself, from a client of its own.
        let new_pw = new.value.expose_secret().to_string();
        blocking(move |r| {
            assert!(r.login_works(&user, &new_pw), "the new password does not log in");
            assert!(!r.login_works(&user, &old), "the old password still logs in");
        })
        .await;
    }

    #[tokio::test]
    async fn the_tls_port_refuses_plaintext() {
        // What makes the proofs above hold: plaintext to the TLS port gets nowhere.
        let rd = rd().await;
        let mut c = url_cfg(&format!("redis://127.0.0.1:{}", rd.tls_port), None);
        c.limits.timeout = Some(HumanDuration(Duration::from_secs(3)));
        let e = connect(&c).await.err().expect("a plaintext client must not get through the TLS port");
        assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
    }

    #[tokio::test]
    async fn a_certificate_for_another_name_is_refused_unless_server_name_says_it() {
        // The certificate names `localhost`; the address is 127.0.0.1.
        let e = connect(&url_cfg(&tls_url("127.0.0.1"), ca())).await.err().expect("a certificate for another name must be refused");
        assert_eq!(e.kind, ErrorKind::Config, "{e}");
        assert!(!e.is_temporary(), "{e}");
        assert!(e.message.contains("does not name this host") && e.message.contains("tls.server_name"), "{e}");
        let mut named = url_cfg(&tls_url("127.0.0.1"), ca());
        named.tls.server_name = Some("localhost".into());
        connect(&named).await.unwrap_or_else(|e| panic!("{e}"));
    }

    #[tokio::test]
    async fn a_certificate_from_another_ca_is_refused_with_the_setting_to_fix() {
        let other = blocking(|r| r.certs.join("other/ca.pem")).await;
        let e = connect(&url_cfg(&tls_url("localhost"), Some(&other))).await.err().expect("a wrong CA must be refused");
        assert_eq!(e.kind, ErrorKind::Config, "{e}");
        assert!(e.message.contains("`tls.ca_cert`"), "{e}");
        // No CA named: the system's roots, which do not hold the test CA.
        let e = connect(&url_cfg(&tls_url("localhost"), None)).await.err().expect("an unknown CA must be refused");
        assert!(e.message.contains("`tls.ca_cert`"), "{e}");
    }

    #[tokio::test]
    async fn insecure_skip_verify_connects_and_is_reported_loudly() {
        let mut c = url_cfg(&tls_url("127.0.0.1"), None);
        c.tls.insecure_skip_verify = true;
        assert!(c.check(false).is_empty(), "{:?}", c.check(false));
        connect(&c).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(c.warnings().iter().any(|w| w.contains("verification is OFF")), "{:?}", c.warnings());
    }

    #[tokio::test]
    async fn a_client_certificate_is_presented_when_named() {
        // The server takes no certificate, or one from its CA: a certificate
        // from another CA is refused, which shows it is sent at all.
        let certs = blocking(|r| r.certs.clone()).await;
        let with = |dir: &Path| {
            let mut c = url_cfg(&tls_url("localhost"), ca());
            c.tls.client_cert = Some(dir.join("client.pem").display().to_string());
            c.tls.client_key = Some(dir.join("client.key").display().to_string());
            c
        };
        connect(&with(&certs)).await.unwrap_or_else(|e| panic!("{e}"));
        let e = connect(&with(&certs.join("other"))).await.err().expect("a client certificate from another CA must be refused by the server");
        assert!(!e.message.contains(&rd().await.admin_password), "{e}");
    }

    fn problems(c: &RedisProviderConfig) -> Vec<String> {
        c.check(false).into_iter().map(|p| format!("{} ({})", p.message, p.hint.unwrap_or_default())).collect()
    }

    fn yaml(settings: &str) -> RedisProviderConfig {
        serde_yaml::from_str(&format!("{settings}\nadmin: {{ user: a, password: \"${{env:P}}\" }}")).unwrap()
    }

    #[test]
    fn plaintext_to_a_remote_host_is_refused_at_load_and_rediss_is_the_fix() {
        for s in ["host: redis.internal", "url: redis://redis.internal:6379"] {
            let p = problems(&yaml(s));
            assert!(
                p.iter().any(|m| m.contains("plaintext (`redis://`) to `redis.internal`, which is not loopback")
                    && m.contains("url: rediss://redis.internal:6379")
                    && m.contains("allow_plaintext: true")),
                "{s}: {p:?}"
            );
            let c = yaml(&format!("{s}\nallow_plaintext: true"));
            assert!(problems(&c).is_empty(), "{s}: {:?}", problems(&c));
            assert!(c.warnings().iter().any(|w| w.contains("unencrypted")), "{s}: {:?}", c.warnings());
        }
        // Loopback in plaintext loads, quietly.
        for s in ["host: 127.0.0.1", "url: redis://localhost:6380", "port: 7000"] {
            let c = yaml(s);
            assert!(problems(&c).is_empty() && c.warnings().is_empty(), "{s}: {:?}", problems(&c));
        }
        // TLS to a remote host loads; verification off is reported.
        let c = yaml("url: rediss://redis.internal:6380\ntls: { ca_cert: /etc/keysweep/redis-ca.pem }");
        assert!(problems(&c).is_empty() && c.warnings().is_empty(), "{:?}", problems(&c));
        assert_eq!(c.endpoint(), Some(Endpoint { tls: true, host: "redis.internal".into(), port: 6380 }));
        assert_eq!(yaml("url: rediss://[::1]").endpoint(), Some(Endpoint { tls: true, host: "::1".into(), port: 6379 }));
        let c = yaml("url: rediss://redis.internal\ntls: { insecure_skip_verify: true }");
        assert!(c.warnings().iter().any(|w| w.contains("verification is OFF")), "{:?}", c.warnings());
    }

    #[test]
    fn url_mistakes_are_refused_at_load() {
        let cases = [
            ("url: redis://127.0.0.1\ntls: { ca_cert: /etc/ca.pem }", "nothing would use it"),
            ("url: rediss://redis.internal/#insecure", "`#insecure`"),
            ("url: rediss://redis.internal/2", "path, query or fragment"),
            ("url: rediss://redis.internal\nhost: redis.internal", "both `url` and `host`/`port`"),
            ("url: https://redis.internal", "scheme `https`"),
            ("url: \"rediss://default:hunter22@redis.internal\"", "user name or password"),
            ("url: rediss://169.254.169.254", "metadata"),
            ("url: rediss://redis.internal\ntls: { client_key: /etc/k.pem }", "without `client_cert`"),
        ];
        for (s, want) in cases {
            let p = problems(&yaml(s));
            assert!(p.iter().any(|m| m.contains(want)), "{s}: want `{want}` in {p:?}");
            assert!(!p.iter().any(|m| m.contains("hunter22")), "{p:?}");
        }
    }
}
