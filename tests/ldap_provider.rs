//! The shared conformance suite run by the LDAP provider against a real
//! OpenLDAP slapd (one per test binary), for single-user and alternating-users
//! `ldap_account` credentials; plus the refusals that are not proof of death
//! (locked accounts, AD's data codes), inventory, revocation and create_clone.

mod common;

use async_trait::async_trait;
use keysweep::playbook::model::{Limits, SecretRef, Target};
use keysweep::provider::conformance::{self, Fixture};
use keysweep::provider::{ErrorKind, Handle, Provider, Verdict};
use keysweep::providers::account::{AdminLogin, DbAccountTarget};
use keysweep::providers::ldap::LdapProviderConfig;
use keysweep::providers::ldap::{classify_bind_refusal, ppolicy_error, BindRefusal, LdapProvider};
use keysweep::secret::{Delivered, SecretString};

use common::ldap::ldap;

fn cfg(url: &str) -> LdapProviderConfig {
    let l = ldap();
    LdapProviderConfig {
        url: url.to_string(),
        starttls: false,
        tls: Default::default(),
        allow_plaintext: false,
        admin: AdminLogin { user: l.admin_dn.clone(), password: SecretRef::Env("KS_LDAP_ADMIN".into()) },
        limits: Limits { timeout: Some(keysweep::playbook::model::HumanDuration(std::time::Duration::from_secs(5))), ..Default::default() },
    }
}

async fn provider() -> LdapProvider {
    let l = tokio::task::spawn_blocking(ldap).await.unwrap();
    let pw = l.admin_password.clone();
    LdapProvider::connect("dir", &cfg(&l.url), &|_| Ok(SecretString::from(pw.clone()))).await.unwrap()
}

fn uniq(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

fn target(user: &str, alternate: Option<&str>, create_clone: bool) -> Target {
    Target::LdapAccount(DbAccountTarget {
        user: user.to_string(),
        alternate_with: alternate.map(str::to_string),
        create_clone,
        generate: Default::default(),
        host: None,
    })
}

fn handle(dn: &str) -> Handle {
    Handle::from([("username".to_string(), dn.to_string())])
}

async fn blocking<T: Send + 'static>(f: impl FnOnce(&'static common::ldap::Ld) -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(move || f(ldap())).await.unwrap()
}

/// The provider, logged in through a proxy that then drops every connection.
async fn down() -> LdapProvider {
    let l = tokio::task::spawn_blocking(ldap).await.unwrap();
    let pw = l.admin_password.clone();
    let upstream = l.url.trim_start_matches("ldap://").to_string();
    common::faultproxy::behind_a_dead_proxy(&upstream, async |host: &str, port: u16| {
        LdapProvider::connect("dir", &cfg(&format!("ldap://{host}:{port}")), &|_| Ok(SecretString::from(pw.clone()))).await.unwrap()
    })
    .await
}

/// One account whose password is rotated in place.
struct SingleUser;
#[async_trait]
impl Fixture for SingleUser {
    async fn create(&self) -> (Target, Handle, SecretString) {
        let pw = format!("Old-{}", uuid::Uuid::new_v4().simple());
        let p2 = pw.clone();
        let dn = blocking(move |l| l.create_account(&uniq("svc"), &p2)).await;
        (target(&dn, None, false), handle(&dn), SecretString::from(pw))
    }
    async fn unreachable(&self) -> Option<std::sync::Arc<dyn Provider>> {
        Some(std::sync::Arc::new(down().await))
    }
}

/// Two accounts taking turns: the first is in service.
struct AlternatingUsers;
#[async_trait]
impl Fixture for AlternatingUsers {
    async fn create(&self) -> (Target, Handle, SecretString) {
        let pw = format!("Old-{}", uuid::Uuid::new_v4().simple());
        let p2 = pw.clone();
        let (a, b) = blocking(move |l| {
            let n = uniq("pair");
            (l.create_account(&format!("{n}-a"), &p2), l.create_account(&format!("{n}-b"), &format!("B-{}", uuid::Uuid::new_v4().simple())))
        })
        .await;
        (target(&a, Some(&b), false), handle(&a), SecretString::from(pw))
    }
    async fn unreachable(&self) -> Option<std::sync::Arc<dyn Provider>> {
        Some(std::sync::Arc::new(down().await))
    }
}

#[tokio::test]
async fn ldap_account_conformance_single_user() {
    let p = provider().await;
    conformance::run(&p, &SingleUser, "ldap_account").await;
}

#[tokio::test]
async fn ldap_account_conformance_alternating_users() {
    let p = provider().await;
    conformance::run(&p, &AlternatingUsers, "ldap_account").await;
}

#[tokio::test]
async fn the_conformance_cases_see_the_real_directory() {
    // Beside the provider's own verdicts, a separate client sees the same.
    let p = provider().await;
    let (t, h, old) = SingleUser.create().await;
    let Target::LdapAccount(a) = &t else { unreachable!() };
    let dn = a.user.clone();
    let fields = p.new_fields(&t, &h).await.unwrap();
    assert_eq!(fields["username"], dn, "a single-user target keeps its DN");
    let new = Delivered { value: SecretString::from(format!("New-{}", uuid::Uuid::new_v4().simple())), fields };
    p.apply(&t, &new).await.unwrap();
    use keysweep::secret::ExposeSecret;
    let (old_s, new_s) = (old.expose_secret().to_string(), new.value.expose_secret().to_string());
    let d2 = dn.clone();
    blocking(move |l| {
        assert!(l.bind_works(&d2, &new_s), "the applied password does not bind");
        assert!(!l.bind_works(&d2, &old_s), "the old password still binds");
        // The server hashed it (Password Modify): no clear text is stored.
        let e = l.search(&d2, "base", "(objectClass=*)", &["userPassword"]);
        assert!(!e.contains(&new_s), "the password is stored in clear");
        assert!(e.contains("userPassword:: e1NTSEF9"), "not hashed by the server ({{SSHA}}): {e}");
    })
    .await;
}

#[test]
fn refusals_that_do_not_prove_a_wrong_password() {
    // Active Directory's 49s, by their `data` code (DESIGN: "Proving death").
    let ad = |code: &str| format!("80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data {code}, v4563\u{0}");
    assert_eq!(classify_bind_refusal(49, &ad("52e"), None), BindRefusal::WrongPassword);
    assert_eq!(classify_bind_refusal(49, &ad("525"), None), BindRefusal::WrongPassword);
    for code in ["775", "532", "533", "701", "773", "530", "531", "52f"] {
        assert!(matches!(classify_bind_refusal(49, &ad(code), None), BindRefusal::NotProof(_)), "AD data {code} taken for a wrong password");
    }
    // Messages that name a lock, an expiry or a disablement (389-ds, others).
    for text in [
        "Account locked",
        "Exceed password retry limit. Please try later.",
        "Account inactivated. Contact system administrator.",
        "password expired!",
        "account is disabled",
    ] {
        assert!(matches!(classify_bind_refusal(49, text, None), BindRefusal::NotProof(_)), "`{text}` taken for a wrong password");
    }
    // A password-policy response: passwordExpired (0) and accountLocked (1).
    assert!(matches!(classify_bind_refusal(49, "", Some(1)), BindRefusal::NotProof(_)));
    assert!(matches!(classify_bind_refusal(49, "", Some(0)), BindRefusal::NotProof(_)));
    // A plain 49 (OpenLDAP) is a wrong password; nothing else ever is.
    assert_eq!(classify_bind_refusal(49, "", None), BindRefusal::WrongPassword);
    for rc in [1, 32, 50, 51, 52, 53, 80] {
        assert!(matches!(classify_bind_refusal(rc, "", None), BindRefusal::NotProof(_)), "result {rc} taken for a wrong password");
    }
    // PasswordPolicyResponseValue: SEQUENCE { error [1] accountLocked }, and one with a warning first.
    assert_eq!(ppolicy_error(&[0x30, 0x03, 0x81, 0x01, 0x01]), Some(1));
    assert_eq!(ppolicy_error(&[0x30, 0x09, 0xa0, 0x04, 0x80, 0x02, 0x01, 0x00, 0x81, 0x01, 0x00]), Some(0));
    assert_eq!(ppolicy_error(&[0x30, 0x00]), None);
    assert_eq!(ppolicy_error(&[0x04, 0x00]), None);
}

#[tokio::test]
async fn a_locked_account_is_never_proven_dead() {
    // OpenLDAP's ppolicy answers a locked account's binds with a plain 49, even
    // with the right password: only the admin view shows the lock.
    let p = provider().await;
    let (t, h, value) = SingleUser.create().await;
    let Target::LdapAccount(a) = &t else { unreachable!() };
    let dn = a.user.clone();
    let d2 = dn.clone();
    blocking(move |l| l.lock(&d2)).await;
    let v = p.verify_dead(&t, &h, Some(&value)).await;
    assert!(matches!(v, Verdict::Unknown(_)), "a locked live account was judged {v:?}");
    assert!(v.evidence().contains("pwdAccountLockedTime"), "{v:?}");
    let wrong = SecretString::from("Wrong-password-0000000000".to_string());
    let v = p.verify_dead(&t, &h, Some(&wrong)).await;
    assert!(matches!(v, Verdict::Unknown(_)), "a 49 from a locked account was judged {v:?}");
    let t_new =
        Delivered { value: SecretString::from(keysweep::secret::ExposeSecret::expose_secret(&value).to_string()), fields: Default::default() };
    let v = p.test(&t, &t_new, &h).await;
    assert!(matches!(v, Verdict::Unknown(_)), "test of a locked account was judged {v:?}");
    // Unlocked, the same password is alive again: the 49 was no proof.
    let d2 = dn.clone();
    blocking(move |l| l.unlock(&d2)).await;
    let v = p.verify_dead(&t, &h, Some(&value)).await;
    assert!(matches!(v, Verdict::Alive(_)), "{v:?}");
}

#[tokio::test]
async fn revoke_is_proven_dead_with_the_value_and_admin_side() {
    let p = provider().await;
    let (t, h, value) = SingleUser.create().await;
    let Target::LdapAccount(a) = &t else { unreachable!() };
    let dn = a.user.clone();
    assert!(matches!(p.verify_dead(&t, &h, None).await, Verdict::Unprovable(_)), "a live password has no admin-side proof either way");
    p.retire(&t, &h).await.unwrap();
    let v = p.verify_dead(&t, &h, Some(&value)).await;
    assert!(matches!(v, Verdict::Dead(_)), "{v:?}");
    let v = p.verify_dead(&t, &h, None).await;
    assert!(matches!(v, Verdict::Dead(_)), "{v:?}");
    use keysweep::secret::ExposeSecret;
    let s = value.expose_secret().to_string();
    let d2 = dn.clone();
    blocking(move |l| {
        assert!(!l.bind_works(&d2, &s), "the revoked password still binds");
        assert!(l.exists(&d2), "revoke removed the entry itself");
        assert!(!l.search(&d2, "base", "(objectClass=*)", &["userPassword"]).contains("userPassword"), "a password remains");
    })
    .await;

    // An account that is gone altogether: retired, and dead.
    let (t2, h2, v2) = SingleUser.create().await;
    let Target::LdapAccount(a2) = &t2 else { unreachable!() };
    let dn2 = a2.user.clone();
    blocking(move |l| l.delete(&dn2)).await;
    p.retire(&t2, &h2).await.unwrap();
    assert!(matches!(p.verify_dead(&t2, &h2, None).await, Verdict::Dead(_)));
    assert!(matches!(p.verify_dead(&t2, &h2, Some(&v2)).await, Verdict::Dead(_)));
}

#[tokio::test]
async fn a_pending_value_never_applied_tests_dead_and_an_empty_one_proves_nothing() {
    // The engine discards another run's pending value only if `test` proves it
    // was never applied; it calls test with an empty handle and the value's fields.
    let p = provider().await;
    let (t, _h, _value) = SingleUser.create().await;
    let Target::LdapAccount(a) = &t else { unreachable!() };
    let never = Delivered::new(SecretString::from("Never-applied-000000000000".to_string())).with_field("username", &a.user);
    assert!(matches!(p.test(&t, &never, &Handle::new()).await, Verdict::Dead(_)));
    let empty = Delivered::new(SecretString::from(String::new())).with_field("username", &a.user);
    assert!(matches!(p.test(&t, &empty, &Handle::new()).await, Verdict::Unknown(_)), "an empty password must never test");
    assert!(p.apply(&t, &empty).await.is_err(), "an empty password must never be set");
}

#[tokio::test]
async fn handles_name_only_the_accounts_of_the_pair() {
    let p = provider().await;
    let (t, h, _) = AlternatingUsers.create().await;
    let Target::LdapAccount(a) = &t else { unreachable!() };
    let b = a.alternate_with.clone().unwrap();
    assert_eq!(p.current_handle(&t, None).await.unwrap(), handle(&a.user));
    // The store's username wins, in any spelling of the same DN.
    let stored = Handle::from([("username".to_string(), b.to_uppercase().replace(',', ", ")), ("version".to_string(), "3".to_string())]);
    assert_eq!(p.current_handle(&t, Some(&stored)).await.unwrap(), handle(&b));
    assert_eq!(p.new_fields(&t, &h).await.unwrap()["username"], b);
    assert_eq!(p.new_fields(&t, &handle(&b)).await.unwrap()["username"], a.user);
    let foreign = Handle::from([("username".to_string(), "cn=someone-else,ou=services,dc=keysweep,dc=test".to_string())]);
    let e = p.current_handle(&t, Some(&foreign)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config, "{e}");
    let fields = std::collections::BTreeMap::from([("username".to_string(), b.clone()), ("version".to_string(), "1".to_string())]);
    assert_eq!(p.handle_from_fields(&t, &fields), handle(&b));
    assert!(p.handle_from_fields(&t, &Default::default()).is_empty());
    assert_eq!(p.kind(), "ldap");
    assert!(p.mint(&t, &h, "n").await.is_err());
    assert_eq!(p.cleanup_minted(&t, &h, "n", None).await.unwrap(), 0);
}

#[tokio::test]
async fn inventory_lists_accounts_and_never_a_password() {
    let pw = format!("Inventory-{}", uuid::Uuid::new_v4().simple());
    let p2 = pw.clone();
    let (dn, hash) = blocking(move |l| {
        let dn = l.create_account(&uniq("inv"), &p2);
        // The stored (hashed) value, as the admin reads it: it must not leak either.
        let e = l.search(&dn, "base", "(objectClass=*)", &["userPassword"]);
        let hash = e.lines().find_map(|x| x.strip_prefix("userPassword:: ")).unwrap().to_string();
        (dn, hash)
    })
    .await;
    let p = provider().await;
    let items = p.inventory().await.unwrap();
    let it = items.iter().find(|i| i.id.eq_ignore_ascii_case(&dn)).unwrap_or_else(|| panic!("{dn} not in inventory"));
    assert_eq!(it.kind, "ldap_account");
    let created = it.created.as_deref().expect("created from createTimestamp");
    assert!(chrono::DateTime::parse_from_rfc3339(created).is_ok(), "{created}");
    assert!(!items.iter().any(|i| i.id.starts_with("ou=")), "entries without a password are not accounts");
    let json = serde_json::to_string(&items).unwrap();
    assert!(!json.contains(&pw), "inventory carries a password");
    assert!(!json.contains(&hash), "inventory carries a password hash");
    assert!(!json.to_ascii_lowercase().contains("{ssha}"), "inventory carries a password hash");
}

#[tokio::test]
async fn create_clone_copies_the_account_and_its_groups_but_no_password() {
    let p = provider().await;
    let pw = format!("Src-{}", uuid::Uuid::new_v4().simple());
    let p2 = pw.clone();
    let n = uniq("clone");
    let n2 = n.clone();
    let (a, b, group) = blocking(move |l| {
        let a = l.create_account(&format!("{n2}-a"), &p2);
        let b = format!("cn={n2}-b,ou=services,{}", l.base);
        let group = format!("cn={n2}-readers,ou=groups,{}", l.base);
        l.ldif("ldapadd", &format!("dn: {group}\nobjectClass: groupOfNames\ncn: {n2}-readers\nmember: {a}\n"));
        (a, b, group)
    })
    .await;
    let t = target(&a, Some(&b), true);
    let fields = p.new_fields(&t, &handle(&a)).await.unwrap();
    assert_eq!(fields["username"], b);
    let new = Delivered { value: SecretString::from(format!("Clone-{}", uuid::Uuid::new_v4().simple())), fields };
    p.apply(&t, &new).await.unwrap();
    p.apply(&t, &new).await.unwrap();
    assert!(matches!(p.test(&t, &new, &handle(&b)).await, Verdict::Alive(_)));
    let (b2, g2) = (b.clone(), group.clone());
    let n3 = n.clone();
    blocking(move |l| {
        let e = l.search(&b2, "base", "(objectClass=*)", &["*"]);
        assert!(e.contains("objectClass: inetOrgPerson"), "{e}");
        assert!(e.contains(&format!("uid: {n3}-b")) && e.contains(&format!("sn: {n3}-b")), "the clone keeps the source's names: {e}");
        assert!(e.contains("description: keysweep test account"), "{e}");
        assert!(!e.contains(&format!("{n3}-a")), "the clone still names its source: {e}");
        let g = l.search(&g2, "base", "(objectClass=*)", &["member"]);
        assert!(g.to_ascii_lowercase().contains(&format!("member: {}", b2.to_ascii_lowercase())), "the clone is not in the source's group: {g}");
        assert!(l.bind_works(&a, &pw), "cloning disturbed the source account");
    })
    .await;
    // Without create_clone, a missing alternate account is a clear failure.
    let t2 = target(&a_dn_fresh().await, Some(&format!("cn={}-missing,ou=services,dc=keysweep,dc=test", uniq("x"))), false);
    let f2 = p.new_fields(&t2, &p.current_handle(&t2, None).await.unwrap()).await.unwrap();
    let e = p.apply(&t2, &Delivered { value: SecretString::from("Whatever-000000000000".to_string()), fields: f2 }).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
}

async fn a_dn_fresh() -> String {
    let (t, _, _) = SingleUser.create().await;
    let Target::LdapAccount(a) = t else { unreachable!() };
    a.user
}

#[tokio::test]
async fn the_admin_login_fails_clearly_and_without_the_secret() {
    let l = tokio::task::spawn_blocking(ldap).await.unwrap();
    let bad = LdapProvider::connect("dir", &cfg(&l.url), &|_| Ok(SecretString::from("Not-the-admin-password-123".to_string()))).await;
    let e = bad.err().expect("a wrong admin password must fail");
    assert_eq!(e.kind, ErrorKind::Unauthenticated, "{e}");
    assert!(!e.to_string().contains("Not-the-admin-password-123"), "{e}");
    let empty = LdapProvider::connect("dir", &cfg(&l.url), &|_| Ok(SecretString::from(String::new()))).await;
    assert_eq!(empty.err().expect("an empty admin password must be refused").kind, ErrorKind::Config);
    // Nothing listens there: unavailable (temporary), not a login failure.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let pw = l.admin_password.clone();
    let down = LdapProvider::connect("dir", &cfg(&format!("ldap://127.0.0.1:{port}")), &|_| Ok(SecretString::from(pw.clone()))).await;
    let e = down.err().expect("no server");
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
    assert!(e.is_temporary());
}

#[tokio::test]
async fn admin_side_checks_never_count_as_failed_logins() {
    // Under a policy where two failed logins lock the account, the admin-side
    // checks (verify_dead without a value, retire's look at the entry) may run
    // any number of times: they are no login, and the account stays usable.
    let p = provider().await;
    let pw = format!("Strict-{}", uuid::Uuid::new_v4().simple());
    let p2 = pw.clone();
    let dn = blocking(move |l| l.create_strict_account(&uniq("strict"), &p2)).await;
    let t = target(&dn, None, false);
    for _ in 0..5 {
        let v = p.verify_dead(&t, &handle(&dn), None).await;
        assert!(matches!(v, Verdict::Unprovable(_)), "{v:?}");
    }
    let v = p.verify_dead(&t, &handle(&dn), Some(&SecretString::from(pw.clone()))).await;
    assert!(matches!(v, Verdict::Alive(_)), "the admin-side checks locked the account: {v:?}");
    // The policy is real: two wrong passwords lock it, and then even the right one is no proof of death.
    let wrong = SecretString::from("Wrong-password-1111111111".to_string());
    let first = p.verify_dead(&t, &handle(&dn), Some(&wrong)).await;
    assert!(matches!(first, Verdict::Dead(_)), "{first:?}");
    let _ = p.verify_dead(&t, &handle(&dn), Some(&wrong)).await;
    let (d2, p3) = (dn.clone(), pw.clone());
    let locked = blocking(move |l| !l.bind_works(&d2, &p3)).await;
    assert!(locked, "the strict policy did not lock the account");
    let v = p.verify_dead(&t, &handle(&dn), Some(&SecretString::from(pw))).await;
    assert!(matches!(v, Verdict::Unknown(_)), "a policy-locked account's 49 was judged {v:?}");
}

/// A TCP proxy in front of slapd that records each LDAP request as it
/// arrives: its time and its protocolOp tag (0x60 bind, 0x63 search, 0x66
/// modify, 0x77 extended...), read from the BER framing of the client's bytes.
struct OpCounter {
    port: u16,
    ops: std::sync::Arc<std::sync::Mutex<Vec<(std::time::Instant, u8)>>>,
}

impl OpCounter {
    async fn start(upstream: String) -> OpCounter {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let ops = std::sync::Arc::new(std::sync::Mutex::new(vec![]));
        let seen = ops.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (seen, upstream) = (seen.clone(), upstream.clone());
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else { return };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut sr, &mut cw).await;
                    });
                    let (mut buf, mut chunk) = (Vec::<u8>::new(), vec![0u8; 65536]);
                    loop {
                        let n = match cr.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some((op, len)) = ldap_message(&buf) {
                            seen.lock().unwrap().push((std::time::Instant::now(), op));
                            buf.drain(..len);
                        }
                        if sw.write_all(&chunk[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        OpCounter { port, ops }
    }

    /// The most requests of kind `op` (any kind: `None`) that arrived within
    /// any one second. An unbind (0x42) is not counted: it has no answer and
    /// only closes a connection.
    fn most_in_a_second(&self, op: Option<u8>) -> usize {
        let t: Vec<_> = self.ops.lock().unwrap().iter().filter(|(_, o)| *o != 0x42 && op.is_none_or(|x| x == *o)).map(|(t, _)| *t).collect();
        (0..t.len()).map(|i| t[i..].iter().take_while(|x| x.duration_since(t[i]) < std::time::Duration::from_secs(1)).count()).max().unwrap_or(0)
    }

    fn count(&self, op: u8) -> usize {
        self.ops.lock().unwrap().iter().filter(|(_, o)| *o == op).count()
    }
}

/// One whole LDAPMessage at the start of `b` (`SEQUENCE { messageID INTEGER,
/// protocolOp ... }`): its protocolOp tag and its length in bytes.
fn ldap_message(b: &[u8]) -> Option<(u8, usize)> {
    fn len_at(b: &[u8]) -> Option<(usize, usize)> {
        let first = *b.first()?;
        if first < 0x80 {
            return Some((first as usize, 1));
        }
        let n = (first & 0x7f) as usize;
        let bytes = b.get(1..1 + n)?;
        Some((bytes.iter().fold(0usize, |a, &x| (a << 8) | x as usize), 1 + n))
    }
    assert_eq!(b.first().copied().unwrap_or(0x30), 0x30, "not an LDAPMessage");
    let (len, l) = len_at(b.get(1..)?)?;
    let total = 1 + l + len;
    if b.len() < total {
        return None;
    }
    let body = &b[1 + l..total];
    assert_eq!(body[0], 0x02, "messageID");
    let (id_len, il) = len_at(&body[1..])?;
    Some((body[1 + il + id_len], total))
}

/// An inventory of more accounts than one page holds is one search per
/// page, each taking its place in the declared rate: at the server, no one
/// second ever sees more requests than `rate_per_second` (the bind of the
/// admin login included), and every account is listed.
#[tokio::test(flavor = "multi_thread")]
async fn inventory_pages_keep_the_declared_rate_at_the_server() {
    let tag = uniq("page");
    let created = blocking(move |l| {
        let mut ldif = String::new();
        for i in 0..1100 {
            let cn = format!("{tag}-{i}");
            let pw = format!("Page-{}", uuid::Uuid::new_v4().simple());
            ldif.push_str(&format!("dn: cn={cn},ou=services,{}\nobjectClass: inetOrgPerson\ncn: {cn}\nsn: {cn}\nuserPassword: {pw}\n\n", l.base));
        }
        l.ldif("ldapadd", &ldif);
        tag
    })
    .await;
    let l = tokio::task::spawn_blocking(ldap).await.unwrap();
    let counter = OpCounter::start(l.url.trim_start_matches("ldap://").to_string()).await;
    let mut c = cfg(&format!("ldap://127.0.0.1:{}", counter.port));
    c.limits.rate_per_second = Some(2);
    let pw = l.admin_password.clone();
    let p = LdapProvider::connect("dir", &c, &|_| Ok(SecretString::from(pw.clone()))).await.unwrap();
    let items = p.inventory().await.unwrap();
    let listed = items.iter().filter(|i| i.id.starts_with(&format!("cn={created}-"))).count();
    assert_eq!(listed, 1100, "every account of every page is listed");
    let searches = counter.count(0x63);
    assert!(searches >= 4, "1,100 accounts at 500 a page are 3 pages beside the root DSE reads; saw {searches} searches");
    let binds = counter.count(0x60);
    assert!(binds >= 1, "the admin login is counted too; saw no bind");
    let most = counter.most_in_a_second(None);
    assert!(most <= 2, "{most} requests arrived within one second at the server; the declared rate is 2");
}
