//! The shared conformance suite, run by the PostgreSQL provider against a real
//! PostgreSQL (one server per test binary, `common::postgres`), for single
//! roles and alternating pairs, plus what PostgreSQL itself does that the
//! provider relies on: the password is checked before `rolcanlogin`, so a
//! retired role still answers 28P01, and 28000 is never taken for dead.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::postgres::{postgres, quote_ident, quote_literal};
use keysweep::playbook::model::{HumanDuration, Limits, SecretRef, Target};
use keysweep::provider::conformance::{self, Fixture};
use keysweep::provider::{ErrorKind, Handle, Provider, Verdict};
use keysweep::providers::account::{AdminLogin, DbAccountTarget};
use keysweep::providers::postgres::PostgresProvider;
use keysweep::providers::postgres::PostgresProviderConfig;
use keysweep::secret::{Delivered, ExposeSecret, SecretString};

fn cfg(user: &str, host: &str, port: u16, timeout: Option<Duration>) -> PostgresProviderConfig {
    PostgresProviderConfig {
        host: Some(host.to_string()),
        port: Some(port),
        database: Some("postgres".into()),
        admin: AdminLogin { user: user.to_string(), password: SecretRef::Env("KS_TEST_PG_ADMIN".into()) },
        limits: Limits { timeout: timeout.map(HumanDuration), concurrency: Some(8), ..Default::default() },
        sslmode: None,
        sslrootcert: None,
        sslcert: None,
        sslkey: None,
        allow_plaintext: false,
    }
}

async fn connect_as(user: &str, password: &str) -> Result<PostgresProvider, keysweep::provider::ProviderError> {
    let pg = postgres();
    let pw = password.to_string();
    PostgresProvider::connect("pg", &cfg(user, &pg.host, pg.port, None), &move |_| Ok(SecretString::from(pw.clone()))).await
}

/// The provider logged in as the fixture's superuser admin.
async fn provider() -> PostgresProvider {
    let pg = blocking(postgres).await;
    connect_as(&pg.admin_user, &pg.admin_password).await.unwrap()
}

/// Runs fixture setup (blocking SQL) off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

fn secret() -> String {
    format!("pw-{}", uuid::Uuid::new_v4().simple())
}

fn target(user: &str, alternate_with: Option<&str>, create_clone: bool) -> Target {
    Target::PostgresRole(DbAccountTarget {
        user: user.to_string(),
        alternate_with: alternate_with.map(str::to_string),
        create_clone,
        generate: Default::default(),
        host: None,
    })
}

fn handle(user: &str) -> Handle {
    Handle::from([("username".to_string(), user.to_string())])
}

fn delivered(user: &str, pw: &str) -> Delivered {
    Delivered::new(SecretString::from(pw.to_string())).with_field("username", user)
}

/// The provider, logged in through a proxy that then drops every connection.
async fn down() -> PostgresProvider {
    let pg = blocking(postgres).await;
    let pw = pg.admin_password.clone();
    common::faultproxy::behind_a_dead_proxy(&format!("{}:{}", pg.host, pg.port), async |host: &str, port: u16| {
        let c = cfg(&pg.admin_user, host, port, Some(Duration::from_secs(2)));
        PostgresProvider::connect("pg", &c, &move |_| Ok(SecretString::from(pw.clone()))).await.unwrap()
    })
    .await
}

/// One login role with a live password.
struct SingleRoles;
#[async_trait]
impl Fixture for SingleRoles {
    async fn create(&self) -> (Target, Handle, SecretString) {
        let (user, pw) = (unique("conf_single"), secret());
        let (u, p) = (user.clone(), pw.clone());
        blocking(move || postgres().create_role(&u, &p)).await;
        (target(&user, None, false), handle(&user), SecretString::from(pw))
    }
    async fn unreachable(&self) -> Option<std::sync::Arc<dyn Provider>> {
        Some(std::sync::Arc::new(down().await))
    }
}

/// An alternating pair whose second role does not exist yet (`create_clone`):
/// the roles are created by `creator`, so a CREATEROLE admin manages them.
struct Pairs {
    creator: (String, String),
}
#[async_trait]
impl Fixture for Pairs {
    async fn create(&self) -> (Target, Handle, SecretString) {
        let (user, pw) = (unique("conf_pair"), secret());
        let clone = format!("{user}_b");
        let (u, p, c) = (user.clone(), pw.clone(), self.creator.clone());
        blocking(move || {
            postgres().try_exec_as(&c.0, &c.1, &format!("CREATE ROLE {} WITH LOGIN PASSWORD {}", quote_ident(&u), quote_literal(&p))).unwrap()
        })
        .await;
        (target(&user, Some(&clone), true), handle(&user), SecretString::from(pw))
    }
    async fn unreachable(&self) -> Option<std::sync::Arc<dyn Provider>> {
        Some(std::sync::Arc::new(down().await))
    }
}

#[tokio::test]
async fn postgres_role_single_user_conformance() {
    let p = provider().await;
    conformance::run(&p, &SingleRoles, "postgres_role").await;
}

#[tokio::test]
async fn postgres_role_alternating_users_conformance_with_a_createrole_admin() {
    // keysweep's admin here is no superuser: CREATEROLE is all it needs.
    let (admin, admin_pw) = (unique("ks_createrole"), secret());
    let (a, ap) = (admin.clone(), admin_pw.clone());
    blocking(move || postgres().exec(&format!("CREATE ROLE {a} WITH LOGIN CREATEROLE PASSWORD {}", quote_literal(&ap)))).await;
    let p = connect_as(&admin, &admin_pw).await.unwrap();
    let f = Pairs { creator: (admin.clone(), admin_pw.clone()) };
    conformance::run(&p, &f, "postgres_role").await;

    // The clone was created as a login member of its partner, and the pair
    // flips back: the next rotation goes to the first role again.
    let (t, old, old_pw) = f.create().await;
    let Target::PostgresRole(dt) = &t else { unreachable!() };
    let (user, clone) = (dt.user.clone(), dt.alternate_with.clone().unwrap());
    let fields = p.new_fields(&t, &old).await.unwrap();
    assert_eq!(fields["username"], clone);
    let (c, u) = (clone.clone(), user.clone());
    let member =
        blocking(move || postgres().query_one_text(&format!("SELECT pg_has_role({}, {}, 'USAGE')::text", quote_literal(&c), quote_literal(&u))))
            .await;
    assert_eq!(member.as_deref(), Some("true"), "the clone does not have its partner's privileges");
    let new_pw = secret();
    p.apply(&t, &delivered(&clone, &new_pw)).await.unwrap();
    assert!(matches!(p.test(&t, &delivered(&clone, &new_pw), &handle(&clone)).await, Verdict::Alive(_)));
    p.retire(&t, &old).await.unwrap();
    assert!(matches!(p.verify_dead(&t, &old, Some(&old_pw)).await, Verdict::Dead(_)));
    let back = p.new_fields(&t, &handle(&clone)).await.unwrap();
    assert_eq!(back["username"], user, "the pair did not flip back");
    let again = secret();
    p.apply(&t, &delivered(&user, &again)).await.unwrap();
    let (u, a2) = (user.clone(), again.clone());
    assert!(blocking(move || postgres().login_works(&u, &a2)).await, "a retired role did not log in again after apply (LOGIN)");
}

#[tokio::test]
async fn postgresql_checks_the_password_before_rolcanlogin() {
    // What the provider's proof of death rests on, asked of the real server.
    let (nologin, pw) = (unique("order_nologin"), secret());
    let expired = unique("order_expired");
    let (n, p, e) = (nologin.clone(), pw.clone(), expired.clone());
    let codes = blocking(move || {
        let pg = postgres();
        pg.exec(&format!("CREATE ROLE {n} WITH NOLOGIN PASSWORD {}", quote_literal(&p)));
        pg.exec(&format!("CREATE ROLE {e} WITH LOGIN PASSWORD {} VALID UNTIL '2000-01-01'", quote_literal(&p)));
        let nopw = unique("order_nopw");
        pg.exec(&format!("CREATE ROLE {nopw} WITH LOGIN"));
        [
            pg.login_error(&n, &p),
            pg.login_error(&n, "wrong-password"),
            pg.login_error(&unique("order_missing"), "wrong-password"),
            pg.login_error(&e, &p),
            pg.login_error(&nopw, "anything"),
        ]
    })
    .await;
    assert_eq!(codes[0].as_deref(), Some("28000"), "right password, NOLOGIN");
    assert_eq!(codes[1].as_deref(), Some("28P01"), "wrong password, NOLOGIN: the password must be checked first");
    assert_eq!(codes[2].as_deref(), Some("28P01"), "a role that does not exist");
    assert_eq!(codes[3].as_deref(), Some("28P01"), "VALID UNTIL passed");
    assert_eq!(codes[4].as_deref(), Some("28P01"), "no password at all (PASSWORD NULL)");
}

#[tokio::test]
async fn a_28000_is_unknown_not_dead() {
    // A NOLOGIN role with its right password gets 28000, which pg_hba.conf
    // rejections share: never proof of a dead password, never proof of a live one.
    let p = provider().await;
    let (user, pw) = (unique("nologin"), secret());
    let (u, pp) = (user.clone(), pw.clone());
    blocking(move || postgres().exec(&format!("CREATE ROLE {u} WITH NOLOGIN PASSWORD {}", quote_literal(&pp)))).await;
    let t = target(&user, None, false);
    let v = p.test(&t, &delivered(&user, &pw), &handle(&user)).await;
    assert!(matches!(&v, Verdict::Unknown(e) if e.contains("28000")), "{v:?}");
    let v = p.verify_dead(&t, &handle(&user), Some(&SecretString::from(pw.clone()))).await;
    assert!(matches!(&v, Verdict::Unknown(e) if e.contains("28000")), "{v:?}");
    assert!(!v.evidence().contains(&pw), "{v:?}");
    // The wrong password of the same role is a documented refusal.
    let v = p.verify_dead(&t, &handle(&user), Some(&SecretString::from("not-its-password".to_string()))).await;
    assert!(matches!(&v, Verdict::Dead(e) if e.contains("28P01")), "{v:?}");
}

#[tokio::test]
async fn tricky_passwords_are_applied_exactly_and_never_leaked() {
    let pg = blocking(postgres).await;
    // A dedicated admin whose statements the server logs, to see what reaches the log.
    let (admin, admin_pw) = (unique("ks_logged"), secret());
    let (a, ap) = (admin.clone(), admin_pw.clone());
    blocking(move || {
        let pg = postgres();
        pg.exec(&format!("CREATE ROLE {a} WITH LOGIN SUPERUSER PASSWORD {}", quote_literal(&ap)));
        pg.exec(&format!("ALTER ROLE {a} SET log_statement = 'all'"));
    })
    .await;
    let p = connect_as(&admin, &admin_pw).await.unwrap();
    let ascii = r#"it's "quoted" \back\slash $$dollar$$ $tag$ ;-- /* x"#;
    // Non-ASCII: sent as a literal for the server to hash (SASLprep), as E'…'.
    let non_ascii = r"pässwörd'\x00\' $$ ünïcode";
    let plain_non_ascii = "naïve'quote $$";
    for (i, pw) in [ascii, non_ascii, plain_non_ascii].into_iter().enumerate() {
        let user = unique(&format!("tricky{i}"));
        let u = user.clone();
        blocking(move || postgres().create_role(&u, "initial-password")).await;
        let t = target(&user, None, false);
        let new = delivered(&user, pw);
        p.apply(&t, &new).await.unwrap_or_else(|e| panic!("apply {pw:?}: {e}"));
        p.apply(&t, &new).await.unwrap_or_else(|e| panic!("apply again {pw:?}: {e}"));
        let v = p.test(&t, &new, &handle(&user)).await;
        assert!(matches!(v, Verdict::Alive(_)), "{pw:?}: {v:?}");
        let (u, pw2) = (user.clone(), pw.to_string());
        let works = blocking(move || {
            let pg = postgres();
            (pg.login_works(&u, &pw2), pg.login_works(&u, "initial-password"))
        })
        .await;
        assert!(works.0, "{pw:?}: a separate client cannot log in with the exact password");
        assert!(!works.1, "{pw:?}: the old password still works");
    }
    // The ASCII password went as a SCRAM verifier: not in the server's statement log.
    let log = pg.server_log();
    assert!(log.contains("ALTER ROLE"), "log_statement did not log the admin's statements");
    assert!(log.contains("SCRAM-SHA-256$4096:"), "the ASCII password was not sent as a verifier");
    assert!(!log.contains("dollar$$ $tag$"), "the ASCII password reached the server's log");

    // Refusals never carry the password: a NUL in it, a role that is not there.
    let user = unique("tricky_nul");
    let t = target(&user, None, false);
    let nul = "secret-with-\0-nul-inside";
    let e = p.apply(&t, &delivered(&user, nul)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config, "{e}");
    assert!(!e.to_string().contains("secret-with"), "{e}");
    let e = p.apply(&t, &delivered(&user, ascii)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    assert!(!e.to_string().contains("dollar"), "{e}");
    assert!(!format!("{e:?}").contains("dollar"), "{e:?}");
}

#[tokio::test]
async fn inventory_flags_privileged_roles_and_holds_no_password() {
    let p = provider().await;
    let (sup, app, nolog, pw) = (unique("inv_super"), unique("inv_app"), unique("inv_nologin"), secret());
    let (s, a, n, pp) = (sup.clone(), app.clone(), nolog.clone(), pw.clone());
    blocking(move || {
        let pg = postgres();
        pg.exec(&format!("CREATE ROLE {s} WITH LOGIN SUPERUSER PASSWORD {}", quote_literal(&pp)));
        pg.exec(&format!("CREATE ROLE {a} WITH LOGIN PASSWORD {} VALID UNTIL '2099-01-01 00:00:00+00'", quote_literal(&pp)));
        pg.exec(&format!("CREATE ROLE {n} WITH NOLOGIN PASSWORD {}", quote_literal(&pp)));
    })
    .await;
    let items = p.inventory().await.unwrap();
    let find = |id: &str| items.iter().find(|i| i.id == id).unwrap_or_else(|| panic!("{id} not listed"));
    let s = find(&sup);
    assert_eq!(s.kind, "postgres_role");
    assert_eq!(s.details["superuser"], "true");
    assert_eq!(s.details["privileged"], "true", "{:?}", s.details);
    let a = find(&app);
    assert_eq!(a.details["superuser"], "false");
    assert_eq!(a.details["createrole"], "false");
    assert_eq!(a.details["privileged"], "false", "{:?}", a.details);
    assert!(a.details["valid_until"].starts_with("2099-01-01"), "{:?}", a.details);
    assert!(items.iter().all(|i| i.id != nolog), "a NOLOGIN role was listed");
    let admin = find(&postgres().admin_user);
    assert_eq!(admin.details["privileged"], "true");
    let json = serde_json::to_string(&items).unwrap();
    assert!(!json.contains(&pw), "a password in the inventory");
    assert!(!json.contains("SCRAM-SHA-256"), "a password hash in the inventory");
    assert!(!json.contains("md5"), "a password hash in the inventory");
}

#[tokio::test]
async fn revoke_is_proven_admin_side_without_the_value_and_ends_open_sessions() {
    let p = provider().await;
    let (user, pw) = (unique("revoke"), secret());
    let (u, pp) = (user.clone(), pw.clone());
    blocking(move || postgres().create_role(&u, &pp)).await;
    let t = target(&user, None, false);
    let h = p.current_handle(&t, None).await.unwrap();
    assert_eq!(h, handle(&user));

    // A session opened before the revocation.
    let pg = postgres();
    let mut c = tokio_postgres::Config::new();
    c.host(&pg.host).port(pg.port).user(&user).password(pw.as_str()).dbname("postgres");
    let (session, conn) = c.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    session.simple_query("SELECT 1").await.unwrap();

    let v = p.verify_dead(&t, &h, None).await;
    assert!(matches!(v, Verdict::Unprovable(_)), "a live role is not dead admin-side: {v:?}");
    p.retire(&t, &h).await.unwrap();
    p.retire(&t, &h).await.unwrap();
    let v = p.verify_dead(&t, &h, None).await;
    assert!(matches!(&v, Verdict::Dead(e) if e.contains("rolcanlogin = false")), "{v:?}");
    let (u, pp) = (user.clone(), pw.clone());
    let (works, can_login, exists) = blocking(move || {
        let pg = postgres();
        (pg.login_works(&u, &pp), pg.can_login(&u), pg.role_exists(&u))
    })
    .await;
    assert!(!works, "the revoked password still logs in");
    assert_eq!(can_login, Some(false));
    assert!(exists, "retire must not drop the role (its objects and grants stay)");
    // The session from before is gone too.
    let deadline = Instant::now() + Duration::from_secs(5);
    while session.simple_query("SELECT 1").await.is_ok() {
        assert!(Instant::now() < deadline, "the revoked role's open session still works");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A role that does not exist is already retired, and proven so.
    let gone = unique("never_existed");
    let tg = target(&gone, None, false);
    p.retire(&tg, &handle(&gone)).await.unwrap();
    let v = p.verify_dead(&tg, &handle(&gone), None).await;
    assert!(matches!(&v, Verdict::Dead(e) if e.contains("no role")), "{v:?}");
}

#[tokio::test]
async fn a_stored_username_outside_the_pair_is_refused() {
    let p = provider().await;
    let t = target("app_a", Some("app_b"), false);
    let e = p.current_handle(&t, Some(&handle("keysweep_admin"))).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config, "{e}");
    assert_eq!(p.current_handle(&t, Some(&handle("app_b"))).await.unwrap(), handle("app_b"));
    assert_eq!(p.current_handle(&t, None).await.unwrap(), handle("app_a"));
    let e = p.apply(&t, &delivered("keysweep_admin", "whatever-password")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config, "{e}");
    let e = p.retire(&t, &handle("postgres")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config, "{e}");
    // Without create_clone, a missing alternate is a clear failure.
    let (user, pw) = (unique("noclone"), secret());
    let (u, pp) = (user.clone(), pw.clone());
    blocking(move || postgres().create_role(&u, &pp)).await;
    let t = target(&user, Some(&format!("{user}_b")), false);
    let e = p.new_fields(&t, &handle(&user)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    assert!(e.message.contains("create_clone"), "{e}");
    // handle_from_fields: the stored username, or the target's own user.
    assert_eq!(p.handle_from_fields(&t, &BTreeMap::new()), handle(&user));
    assert_eq!(p.handle_from_fields(&t, &BTreeMap::from([("username".to_string(), "x".to_string())])), handle("x"));
}

#[tokio::test]
async fn keysweep_rotates_its_own_admin_and_logs_in_again_with_the_new_password() {
    let (admin, first) = (unique("ks_self"), secret());
    let (a, f) = (admin.clone(), first.clone());
    blocking(move || postgres().exec(&format!("CREATE ROLE {a} WITH LOGIN SUPERUSER PASSWORD {}", quote_literal(&f)))).await;
    let p = connect_as(&admin, &first).await.unwrap();
    let t = target(&admin, None, false);
    let next = secret();
    p.apply(&t, &delivered(&admin, &next)).await.unwrap();
    assert!(matches!(p.test(&t, &delivered(&admin, &next), &handle(&admin)).await, Verdict::Alive(_)));
    // The admin connection drops (server restart, network): the provider logs in again, with the new password.
    let a = admin.clone();
    blocking(move || {
        postgres().exec(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = {} AND application_name = 'keysweep'",
            quote_literal(&a)
        ))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let items = p.inventory().await.unwrap();
    assert!(items.iter().any(|i| i.id == admin));
}

#[tokio::test]
async fn concurrent_rotations_share_one_admin_login() {
    let p = provider().await;
    let mut roles = vec![];
    for i in 0..12 {
        let (u, pw) = (unique(&format!("conc{i}")), secret());
        let (uu, pp) = (u.clone(), pw.clone());
        blocking(move || postgres().create_role(&uu, &pp)).await;
        roles.push((u, pw));
    }
    let p = &p;
    let results = futures::future::join_all(roles.iter().map(|(u, old)| async move {
        let t = target(u, None, false);
        let new = secret();
        p.apply(&t, &delivered(u, &new)).await.unwrap();
        let alive = p.test(&t, &delivered(u, &new), &handle(u)).await;
        let dead = p.verify_dead(&t, &handle(u), Some(&SecretString::from(old.clone()))).await;
        (alive, dead)
    }))
    .await;
    for (alive, dead) in results {
        assert!(matches!(alive, Verdict::Alive(_)), "{alive:?}");
        assert!(matches!(dead, Verdict::Dead(_)), "{dead:?}");
    }
}

#[tokio::test]
async fn admin_login_failures_are_classified_and_secret_free() {
    let pg = blocking(postgres).await;
    let e = connect_as(&pg.admin_user, "wrong-admin-password-xyz").await.err().expect("a wrong admin password must fail");
    assert_eq!(e.kind, ErrorKind::Unauthenticated, "{e}");
    assert!(e.to_string().contains("28P01"), "{e}");
    assert!(!e.to_string().contains("wrong-admin-password-xyz"), "{e}");

    // Nothing listening: refused, temporary.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let r = PostgresProvider::connect("pg", &cfg("x", "127.0.0.1", port, Some(Duration::from_secs(2))), &|_| {
        Ok(SecretString::from("pw-refused".to_string()))
    })
    .await;
    let e = r.err().expect("nothing listens there");
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
    assert!(e.is_temporary());

    // A server that accepts the connection and never answers: the timeout holds.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let started = Instant::now();
    let r = PostgresProvider::connect("pg", &cfg("x", "127.0.0.1", port, Some(Duration::from_secs(1))), &|_| {
        Ok(SecretString::from("pw-silent".to_string()))
    })
    .await;
    let e = r.err().expect("a silent server must time out");
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
    assert!(started.elapsed() < Duration::from_secs(10), "the timeout did not hold: {:?}", started.elapsed());
    drop(silent);

    // The provider's value types never print the admin password.
    let p = connect_as(&pg.admin_user, &pg.admin_password).await.unwrap();
    let v = p.verify_dead(&target("nobody_here", None, false), &handle("nobody_here"), Some(&SecretString::from("probe-pw-123".to_string()))).await;
    assert!(matches!(&v, Verdict::Dead(e) if e.contains("28P01")), "{v:?}");
    assert!(!v.evidence().contains("probe-pw-123") && !v.evidence().contains(&pg.admin_password), "{v:?}");
}

#[test]
fn identifiers_and_literals_are_quoted() {
    use keysweep::providers::postgres::{quote_ident, quote_literal};
    assert_eq!(quote_ident("app").unwrap(), "\"app\"");
    assert_eq!(quote_ident("we\"ird").unwrap(), "\"we\"\"ird\"");
    assert!(quote_ident("").is_err());
    assert!(quote_ident("a\0b").is_err());
    assert!(quote_ident(&"x".repeat(64)).is_err(), "the server would truncate it to another name");
    assert!(quote_ident(&"x".repeat(63)).is_ok());
    assert_eq!(quote_literal("it's").unwrap(), "'it''s'");
    assert_eq!(quote_literal(r"a\'b$$").unwrap(), r"E'a\\''b$$'");
    assert!(quote_literal("a\0b").unwrap_err().contains("NUL"));
}

#[test]
fn scram_verifier_matches_rfc7677() {
    // RFC 7677's example: password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, 4096 iterations.
    // The ServerKey below gives that example's ServerSignature
    // (v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=); both keys were also computed
    // independently (Python's hashlib.pbkdf2_hmac and hmac).
    let salt = [0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e, 0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81];
    assert_eq!(
        keysweep::providers::postgres::scram_sha_256_verifier(b"pencil", &salt),
        "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
    );
    // Salts of every length mod 3 encode (base64 padding).
    for n in [1usize, 2, 3, 16, 17] {
        let v = keysweep::providers::postgres::scram_sha_256_verifier(b"x", &vec![7u8; n]);
        assert!(v.starts_with("SCRAM-SHA-256$4096:"), "{v}");
    }
}

#[test]
fn server_text_echoing_a_password_is_redacted() {
    // What apply does with a server error that echoes its statement.
    use keysweep::secret::{redact_all, scrub};
    let pw = SecretString::from(r"s3cr'et\pw$$".to_string());
    let text = format!("ERROR: syntax error at or near \"{0}\" STATEMENT: ALTER ROLE x PASSWORD '{0}'", pw.expose_secret());
    let out = scrub(&redact_all(&text, &[&pw]));
    assert!(!out.contains(pw.expose_secret()), "{out}");
    let e = keysweep::provider::ProviderError::new(ErrorKind::Other, "postgres.apply", out);
    assert!(!e.to_string().contains("s3cr"), "{e}");
}

mod tls {
    use super::*;
    use keysweep::provider::kind::ProviderKind;
    use keysweep::providers::pg_tls::SslMode;

    fn tls_cfg(host: &str, mode: Option<SslMode>, rootcert: Option<String>) -> PostgresProviderConfig {
        let pg = postgres();
        let mut c = cfg(&pg.admin_user, host, pg.port, Some(Duration::from_secs(10)));
        c.limits.max_attempts = Some(1);
        c.sslmode = mode;
        c.sslrootcert = rootcert;
        c
    }

    async fn connect(c: PostgresProviderConfig) -> Result<PostgresProvider, keysweep::provider::ProviderError> {
        let pw = postgres().admin_password.clone();
        PostgresProvider::connect("pg", &c, &move |_| Ok(SecretString::from(pw.clone()))).await
    }

    fn ca() -> Option<String> {
        Some(postgres().ca_cert.display().to_string())
    }

    /// Sessions of `role` the server sees, (over TLS, in plaintext).
    fn sessions_of(role: &str) -> (usize, usize) {
        let n = |ssl: bool| -> usize {
            postgres()
                .query_one_text(&format!(
                    "SELECT count(*)::text FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE ssl = {ssl} AND usename = {}",
                    quote_literal(role)
                ))
                .unwrap()
                .parse()
                .unwrap()
        };
        (n(true), n(false))
    }

    #[tokio::test]
    async fn verify_full_with_the_right_ca_connects_over_tls() {
        // keysweep logs in as a role of its own here, so the server's view
        // of that role's sessions is this test's alone.
        let admin = unique("tls_admin");
        let admin_pw = secret();
        let (a, w) = (admin.clone(), admin_pw.clone());
        blocking(move || postgres().create_role(&a, &w)).await;
        let mut c = tls_cfg("localhost", Some(SslMode::VerifyFull), ca());
        c.admin.user = admin.clone();
        let pw = admin_pw.clone();
        let p = PostgresProvider::connect("pg", &c, &move |_| Ok(SecretString::from(pw.clone()))).await.unwrap_or_else(|e| panic!("{e}"));
        let a = admin.clone();
        assert_eq!(blocking(move || sessions_of(&a)).await, (1, 0), "keysweep's admin session is not (only) over TLS");
        // A password login (a proof of death's probe, through the same TLS settings) works too.
        let role = unique("tls_probe");
        let pw = secret();
        let (r, w) = (role.clone(), pw.clone());
        blocking(move || postgres().create_role(&r, &w)).await;
        let t = target(&role, None, false);
        let v = p.verify_dead(&t, &Handle::new(), Some(&SecretString::from(pw))).await;
        assert!(matches!(v, Verdict::Alive(_)), "{v:?}");
    }

    #[tokio::test]
    async fn verify_full_refuses_a_certificate_for_another_host_name() {
        blocking(postgres).await;
        // The certificate names `localhost`; the address is 127.0.0.1.
        let e = connect(tls_cfg("127.0.0.1", Some(SslMode::VerifyFull), ca())).await.err().expect("a wrong host name must be refused");
        assert_eq!(e.kind, ErrorKind::Config, "{e}");
        assert!(!e.is_temporary(), "{e}");
        assert!(e.message.contains("does not name this host"), "{e}");
        // verify-ca checks the chain only: the same address connects.
        connect(tls_cfg("127.0.0.1", Some(SslMode::VerifyCa), ca())).await.unwrap_or_else(|e| panic!("{e}"));
    }

    #[tokio::test]
    async fn a_server_certificate_from_an_unknown_ca_is_refused() {
        blocking(postgres).await;
        // No sslrootcert: the system's roots, which do not hold the test CA.
        let e = connect(tls_cfg("localhost", Some(SslMode::VerifyFull), None)).await.err().expect("an unknown CA must be refused");
        assert_eq!(e.kind, ErrorKind::Config, "{e}");
        assert!(e.message.contains("sslrootcert"), "{e}");
        // A missing CA file is named.
        let e = connect(tls_cfg("localhost", Some(SslMode::VerifyFull), Some("/nonexistent/ca.pem".into()))).await.err().unwrap();
        assert!(e.message.contains("/nonexistent/ca.pem"), "{e}");
    }

    #[tokio::test]
    async fn require_connects_unverified_and_is_reported() {
        blocking(postgres).await;
        let c = tls_cfg("127.0.0.1", Some(SslMode::Require), None);
        connect(c.clone()).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(c.warnings().iter().any(|w| w.contains("verification is OFF")), "{:?}", c.warnings());
        assert!(tls_cfg("localhost", Some(SslMode::VerifyFull), ca()).warnings().is_empty());
    }

    #[test]
    fn the_default_is_verify_full_for_a_remote_host_and_plaintext_there_is_refused() {
        let mut c = cfg("keysweep_admin", "db.internal", 5432, None);
        assert_eq!(c.effective_sslmode(), SslMode::VerifyFull);
        assert!(c.check(false).is_empty());
        assert_eq!(cfg("keysweep_admin", "127.0.0.1", 5432, None).effective_sslmode(), SslMode::Disable);
        c.sslmode = Some(SslMode::Disable);
        let msgs: Vec<String> = c.check(false).into_iter().map(|p| p.message).collect();
        assert!(msgs.iter().any(|m| m.contains("not loopback")), "{msgs:?}");
        c.allow_plaintext = true;
        assert!(c.check(false).is_empty());
        assert!(c.warnings().iter().any(|w| w.contains("unencrypted")));
        // `require` with a CA named would check nothing: refused, not silently unverified.
        let mut r = cfg("keysweep_admin", "db.internal", 5432, None);
        r.sslmode = Some(SslMode::Require);
        r.sslrootcert = Some("/etc/ca.pem".into());
        assert!(r.check(false).iter().any(|p| p.message.contains("verifies nothing")));
    }

    /// A role that must present a client certificate (`hostssl …
    /// clientcert=verify-full`): keysweep logs in with `sslcert`/`sslkey`;
    /// without them the server refuses the same password.
    #[tokio::test]
    async fn a_client_certificate_is_presented() {
        use common::postgres::CERT_USER;
        blocking(postgres).await;
        let pg = postgres();
        let mut c = tls_cfg("localhost", Some(SslMode::VerifyFull), ca());
        c.admin.user = CERT_USER.into();
        let e = connect(c.clone()).await.err().expect("the server requires the certificate");
        assert_eq!(e.kind, ErrorKind::Unauthenticated, "{e}");
        c.sslcert = Some(pg.client_cert.display().to_string());
        c.sslkey = Some(pg.client_key.display().to_string());
        assert!(c.check(false).is_empty());
        let p = connect(c).await.unwrap_or_else(|e| panic!("with the client certificate: {e}"));
        let role = unique("cert_probe");
        let pw = secret();
        let (r, w) = (role.clone(), pw.clone());
        blocking(move || postgres().create_role(&r, &w)).await;
        let v = p.verify_dead(&target(&role, None, false), &Handle::new(), Some(&SecretString::from(pw))).await;
        assert!(matches!(v, Verdict::Alive(_)), "a probe through the same TLS settings: {v:?}");
    }

    /// libpq's environment fills in what the playbook leaves out, says so,
    /// and is held to the same TLS rules; what the playbook says wins.
    #[tokio::test]
    async fn libpq_environment_fills_in_what_the_playbook_leaves_out() {
        blocking(postgres).await;
        let pg = postgres();
        let mut c = cfg(&pg.admin_user, "unused", 1, Some(Duration::from_secs(10)));
        c.host = None;
        c.port = None;
        c.database = None;
        c.limits.max_attempts = Some(1);
        let ca = pg.ca_cert.display().to_string();
        let port = pg.port.to_string();
        let vars: Vec<(&str, &str)> = vec![("PGHOST", "localhost"), ("PGPORT", &port), ("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", &ca)];
        let env = |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
        let (filled, from) = c.with_env(&env).unwrap();
        assert_eq!(from.len(), 4, "{from:?}");
        assert!(from.iter().any(|f| f == "`host` from PGHOST (localhost)"), "{from:?}");
        assert!(from.iter().any(|f| f.starts_with("`sslmode` from PGSSLMODE")), "{from:?}");
        assert_eq!(c.from_env(&env), from, "plan shows the same");
        // verify-full against the test CA from PGSSLROOTCERT (the system's roots would refuse it).
        connect(filled).await.unwrap_or_else(|e| panic!("from the environment: {e}"));

        // The playbook's own values win.
        let mut written = c.clone();
        written.host = Some("127.0.0.1".into());
        written.sslmode = Some(SslMode::VerifyCa);
        let (w, from) = written.with_env(&env).unwrap();
        assert_eq!((w.host.as_deref(), w.sslmode), (Some("127.0.0.1"), Some(SslMode::VerifyCa)));
        assert!(!from.iter().any(|f| f.contains("PGHOST") || f.contains("PGSSLMODE")), "{from:?}");

        // Plaintext to a remote PGHOST is refused like the same playbook would be;
        // libpq's silent fallbacks are refused outright.
        for (vars, says) in [
            (vec![("PGHOST", "db.example.com"), ("PGSSLMODE", "disable")], "not loopback"),
            (vec![("PGSSLMODE", "prefer")], "does not fall back to plaintext"),
            (vec![("PGPORT", "fifty")], "not a port number"),
        ] {
            let env = |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
            let e = c.with_env(&env).err().unwrap_or_else(|| panic!("{vars:?} accepted"));
            assert_eq!(e.kind, ErrorKind::Config, "{e}");
            assert!(e.message.contains(says), "{vars:?}: {e}");
            assert!(c.from_env(&env).iter().any(|l| l.contains(says)), "plan says it is refused");
        }
    }
}
