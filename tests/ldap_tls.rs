//! TLS for the `ldap` provider against a real OpenLDAP slapd: `ldaps://`
//! and StartTLS, verified against the test CA by default. The server here
//! requires TLS for everything (`security tls=1`): a plaintext bind is
//! refused (checked below), so every bind it accepts went over TLS. Its
//! certificate names `localhost` only. Plus the load-time rules (plaintext to
//! a remote host, `tls:` where nothing would use it) and the warnings.

mod common;

use async_trait::async_trait;
use keysweep::playbook::model::{HumanDuration, Limits, SecretRef, Target};
use keysweep::provider::conformance::{self, Fixture};
use keysweep::provider::kind::ProviderKind;
use keysweep::provider::tls::TlsConfig;
use keysweep::provider::{ErrorKind, Handle, Provider, ProviderError, Verdict};
use keysweep::providers::account::{AdminLogin, DbAccountTarget};
use keysweep::providers::ldap::{LdapProvider, LdapProviderConfig};
use keysweep::secret::{Delivered, ExposeSecret, SecretString};

use common::ldap::{ldap_tls_required, ldap_without_tls, Ld};

/// The TLS-only server (started on first use, off the async runtime).
async fn ld() -> &'static Ld {
    tokio::task::spawn_blocking(ldap_tls_required).await.unwrap()
}

async fn blocking<T: Send + 'static>(f: impl FnOnce(&'static Ld) -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(move || f(ldap_tls_required())).await.unwrap()
}

fn cfg(url: &str, starttls: bool, tls: TlsConfig) -> LdapProviderConfig {
    LdapProviderConfig {
        url: url.to_string(),
        starttls,
        tls,
        allow_plaintext: false,
        admin: AdminLogin { user: "cn=admin,dc=keysweep,dc=test".into(), password: SecretRef::Env("KS_LDAP_ADMIN".into()) },
        limits: Limits { timeout: Some(HumanDuration(std::time::Duration::from_secs(5))), max_attempts: Some(1), ..Default::default() },
    }
}

/// Verified against the server's CA.
fn ca(l: &Ld) -> TlsConfig {
    TlsConfig { ca_cert: Some(l.ca_cert.display().to_string()), ..Default::default() }
}

async fn connect_as(c: &LdapProviderConfig, l: &Ld) -> Result<LdapProvider, ProviderError> {
    let pw = l.admin_password.clone();
    common::canary(&pw);
    LdapProvider::connect("dir", c, &move |_| Ok(SecretString::from(pw.clone()))).await
}

/// The two ways to TLS, each with its verified configuration.
#[derive(Clone, Copy, Debug)]
enum Via {
    Ldaps,
    StartTls,
}

impl Via {
    /// To `host:port` (the server's `ldaps://` or `ldap://` port).
    fn cfg(self, host: &str, port: u16, tls: TlsConfig) -> LdapProviderConfig {
        match self {
            Via::Ldaps => cfg(&format!("ldaps://{host}:{port}"), false, tls),
            Via::StartTls => cfg(&format!("ldap://{host}:{port}"), true, tls),
        }
    }
    fn port(self, l: &Ld) -> u16 {
        match self {
            Via::Ldaps => l.tls_port,
            Via::StartTls => l.port,
        }
    }
    /// Verified, by the name the certificate carries.
    fn verified(self, l: &Ld) -> LdapProviderConfig {
        self.cfg("localhost", self.port(l), ca(l))
    }
}

async fn provider(via: Via) -> LdapProvider {
    let l = ld().await;
    let c = via.verified(l);
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    connect_as(&c, l).await.unwrap_or_else(|e| panic!("{via:?}: {e}"))
}

fn uniq(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

fn target(user: &str) -> Target {
    Target::LdapAccount(DbAccountTarget {
        user: user.to_string(),
        alternate_with: None,
        create_clone: false,
        generate: Default::default(),
        host: None,
    })
}

fn handle(dn: &str) -> Handle {
    Handle::from([("username".to_string(), dn.to_string())])
}

/// A new account with a live password on the TLS-only server.
async fn account() -> (String, SecretString) {
    let pw = format!("Old-{}", uuid::Uuid::new_v4().simple());
    let p2 = pw.clone();
    let dn = blocking(move |l| l.create_account(&uniq("tls"), &p2)).await;
    (dn, SecretString::from(pw))
}

/// One account rotated in place, over `via`.
struct TlsUser(Via);
#[async_trait]
impl Fixture for TlsUser {
    async fn create(&self) -> (Target, Handle, SecretString) {
        let (dn, pw) = account().await;
        (target(&dn), handle(&dn), pw)
    }
    /// Through a proxy (by address, so `tls.server_name` names the
    /// certificate's host) that then drops every connection.
    async fn unreachable(&self) -> Option<std::sync::Arc<dyn Provider>> {
        let l = ld().await;
        let via = self.0;
        let upstream = format!("127.0.0.1:{}", via.port(l));
        let p = common::faultproxy::behind_a_dead_proxy(&upstream, async |host: &str, port: u16| {
            let tls = TlsConfig { server_name: Some("localhost".into()), ..ca(l) };
            connect_as(&via.cfg(host, port, tls), l).await.unwrap_or_else(|e| panic!("{via:?} through the proxy: {e}"))
        })
        .await;
        Some(std::sync::Arc::new(p))
    }
}

#[tokio::test]
async fn the_tls_only_server_refuses_a_plaintext_bind() {
    // What makes every success below proof of TLS: this server refuses a
    // bind without it, from an independent client and from keysweep.
    let l = ld().await;
    let (dn, pw) = account().await;
    let out = std::process::Command::new("ldapwhoami").args(["-x", "-H", &l.url, "-D", &dn, "-w", pw.expose_secret()]).output().expect("ldapwhoami");
    assert_eq!(
        out.status.code(),
        Some(13),
        "a plaintext bind was not refused with confidentialityRequired: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // keysweep to the same port in plaintext (loopback: allowed at load) is refused, and told how to fix it.
    let c = cfg(&l.url, false, TlsConfig::default());
    assert!(c.check(false).is_empty(), "plaintext to loopback should load: {:?}", c.check(false).iter().map(|p| &p.message).collect::<Vec<_>>());
    let e = connect_as(&c, l).await.err().expect("the TLS-only server accepted a plaintext admin bind");
    assert!(e.message.contains("confidentialityRequired"), "{e}");
    assert!(e.message.contains("ldaps://") && e.message.contains("starttls: true"), "no fix in: {e}");
    assert!(!e.to_string().contains(&l.admin_password), "{e}");
}

/// A full rotation of one account through `p`, with an independent client
/// (ldap-utils over `ldaps://`) seeing the same: the new password binds, the old one is refused.
async fn rotate_and_check(p: &LdapProvider) {
    let (dn, old) = account().await;
    let t = target(&dn);
    let h = handle(&dn);
    assert!(matches!(p.verify_dead(&t, &h, Some(&old)).await, Verdict::Alive(_)), "the live password does not probe alive");
    let fields = p.new_fields(&t, &h).await.unwrap();
    let new = Delivered { value: SecretString::from(format!("New-{}", uuid::Uuid::new_v4().simple())), fields };
    common::canary(new.value.expose_secret());
    p.apply(&t, &new).await.unwrap_or_else(|e| panic!("apply: {e}"));
    let v = p.test(&t, &new, &h).await;
    assert!(matches!(v, Verdict::Alive(_)), "the new password does not test alive: {v:?}");
    let v = p.verify_dead(&t, &h, Some(&old)).await;
    assert!(matches!(v, Verdict::Dead(_)), "the old password is not proven dead: {v:?}");
    let (old_s, new_s, d) = (old.expose_secret().to_string(), new.value.expose_secret().to_string(), dn.clone());
    blocking(move |l| {
        assert!(l.bind_works(&d, &new_s), "an independent client cannot bind with the new password");
        assert!(!l.bind_works(&d, &old_s), "an independent client still binds with the old password");
    })
    .await;
    // And revoked: the password attribute is gone (admin side), and the value is refused.
    p.retire(&t, &h).await.unwrap_or_else(|e| panic!("retire: {e}"));
    let v = p.verify_dead(&t, &h, Some(&new.value)).await;
    assert!(matches!(v, Verdict::Dead(_)), "{v:?}");
    let (new_s, d) = (new.value.expose_secret().to_string(), dn.clone());
    assert!(!blocking(move |l| l.bind_works(&d, &new_s)).await, "the revoked password still binds");
}

#[tokio::test]
async fn ldaps_verified_rotation_and_the_old_password_is_dead() {
    let p = provider(Via::Ldaps).await;
    rotate_and_check(&p).await;
}

#[tokio::test]
async fn starttls_verified_rotation_and_the_old_password_is_dead() {
    let p = provider(Via::StartTls).await;
    rotate_and_check(&p).await;
}

#[tokio::test]
async fn ldap_account_conformance_over_ldaps() {
    let p = provider(Via::Ldaps).await;
    let ran = conformance::run(&p, &TlsUser(Via::Ldaps), "ldap_account").await;
    assert!(ran.contains(&"outage_is_unknown_never_dead"), "{ran:?}");
}

#[tokio::test]
async fn ldap_account_conformance_over_starttls() {
    let p = provider(Via::StartTls).await;
    let ran = conformance::run(&p, &TlsUser(Via::StartTls), "ldap_account").await;
    assert!(ran.contains(&"outage_is_unknown_never_dead"), "{ran:?}");
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused_unless_server_name_names_it() {
    let l = ld().await;
    for via in [Via::Ldaps, Via::StartTls] {
        // The certificate names `localhost`; the address is 127.0.0.1.
        let e = connect_as(&via.cfg("127.0.0.1", via.port(l), ca(l)), l).await.err().unwrap_or_else(|| panic!("{via:?}: a wrong name was accepted"));
        assert_eq!(e.kind, ErrorKind::Config, "{via:?}: {e}");
        assert!(!e.is_temporary(), "{via:?}: {e}");
        assert!(e.message.contains("does not name this host") && e.message.contains("tls.server_name"), "{via:?}: no fix in: {e}");
        assert!(!e.to_string().contains(&l.admin_password), "{e}");
        // With the certificate's name, the same address connects, and a probe (a new connection) too.
        let tls = TlsConfig { server_name: Some("localhost".into()), ..ca(l) };
        let p = connect_as(&via.cfg("127.0.0.1", via.port(l), tls), l).await.unwrap_or_else(|e| panic!("{via:?}: {e}"));
        let (dn, pw) = account().await;
        let v = p.verify_dead(&target(&dn), &handle(&dn), Some(&pw)).await;
        assert!(matches!(v, Verdict::Alive(_)), "{via:?}: {v:?}");
        // A server name the certificate does not carry is refused just the same.
        let tls = TlsConfig { server_name: Some("ldap.example.com".into()), ..ca(l) };
        let e = connect_as(&via.cfg("localhost", via.port(l), tls), l).await.err().unwrap_or_else(|| panic!("{via:?}: server_name not checked"));
        assert!(e.message.contains("does not name this host"), "{via:?}: {e}");
    }
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_with_the_fix() {
    let l = ld().await;
    // Another CA, which did not sign the server's certificate.
    let other = tempfile::tempdir().unwrap();
    let dir = other.path().to_path_buf();
    tokio::task::spawn_blocking(move || common::certs::server(&dir, &["localhost"])).await.unwrap();
    let wrong = TlsConfig { ca_cert: Some(other.path().join("ca.pem").display().to_string()), ..Default::default() };
    for via in [Via::Ldaps, Via::StartTls] {
        for (what, tls) in [("another CA", wrong.clone()), ("the system's roots", TlsConfig::default())] {
            let e = connect_as(&via.cfg("localhost", via.port(l), tls), l).await.err().unwrap_or_else(|| panic!("{via:?}: {what} accepted"));
            assert_eq!(e.kind, ErrorKind::Config, "{via:?}, {what}: {e}");
            assert!(!e.is_temporary(), "{e}");
            assert!(e.message.contains("`tls.ca_cert`"), "{via:?}, {what}: the fix is not named: {e}");
            assert!(!e.to_string().contains(&l.admin_password), "{e}");
        }
    }
    // A CA file that is not there is named.
    let missing = TlsConfig { ca_cert: Some("/nonexistent/ldap-ca.pem".into()), ..Default::default() };
    let e = connect_as(&Via::Ldaps.cfg("localhost", l.tls_port, missing), l).await.err().unwrap();
    assert_eq!(e.kind, ErrorKind::Config, "{e}");
    assert!(e.message.contains("/nonexistent/ldap-ca.pem"), "{e}");
}

#[tokio::test]
async fn insecure_skip_verify_connects_and_is_reported() {
    let l = ld().await;
    for via in [Via::Ldaps, Via::StartTls] {
        // By address, no CA: nothing is verified, and it is said.
        let c = via.cfg("127.0.0.1", via.port(l), TlsConfig { insecure_skip_verify: true, ..Default::default() });
        assert!(c.check(false).is_empty());
        assert!(c.warnings().iter().any(|w| w.contains("verification is OFF")), "{via:?}: {:?}", c.warnings());
        let p = connect_as(&c, l).await.unwrap_or_else(|e| panic!("{via:?}: {e}"));
        let (dn, pw) = account().await;
        assert!(matches!(p.verify_dead(&target(&dn), &handle(&dn), Some(&pw)).await, Verdict::Alive(_)));
    }
}

#[tokio::test]
async fn a_refused_starttls_is_an_error_never_plaintext() {
    // A server without TLS answers StartTLS with an error; keysweep stops
    // there (the admin password is never sent) instead of binding in plaintext.
    let l = tokio::task::spawn_blocking(ldap_without_tls).await.unwrap();
    let c = cfg(&format!("ldap://localhost:{}", l.port), true, TlsConfig::default());
    let e = connect_as(&c, l).await.err().expect("a refused StartTLS must fail the connection");
    assert_eq!(e.kind, ErrorKind::Config, "{e}");
    assert!(e.message.contains("refused StartTLS") && e.message.contains("does not continue in plaintext"), "{e}");
    assert!(!e.to_string().contains(&l.admin_password), "{e}");
    // The same server in plaintext (loopback) works: the refusal is StartTLS's, not the login's.
    connect_as(&cfg(&l.url, false, TlsConfig::default()), l).await.unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn ldaps_to_a_plaintext_port_is_unavailable_not_a_login_failure() {
    // TLS spoken to a server that does not answer it: a connection failure,
    // never a refused login.
    let l = tokio::task::spawn_blocking(ldap_without_tls).await.unwrap();
    let e = connect_as(&cfg(&format!("ldaps://localhost:{}", l.port), false, TlsConfig::default()), l).await.err().expect("no TLS there");
    assert_ne!(e.kind, ErrorKind::Unauthenticated, "{e}");
    assert!(!e.to_string().contains(&l.admin_password), "{e}");
}

// -- the load-time rules --------------------------------------------------

fn messages(c: &LdapProviderConfig) -> Vec<String> {
    c.check(false).into_iter().map(|p| format!("{} ({})", p.message, p.hint.unwrap_or_default())).collect()
}

#[test]
fn plaintext_to_a_remote_host_is_refused_at_load_unless_allowed() {
    let mut c = cfg("ldap://ldap.internal", false, TlsConfig::default());
    let m = messages(&c);
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(m[0].contains("not loopback") && m[0].contains("`ldaps://ldap.internal`") && m[0].contains("starttls: true"), "{m:?}");
    assert!(m[0].contains("allow_plaintext: true"), "{m:?}");
    // The opt-in loads, and is reported.
    c.allow_plaintext = true;
    assert!(messages(&c).is_empty(), "{:?}", messages(&c));
    assert!(c.warnings().iter().any(|w| w.contains("plaintext") && w.contains("ldap.internal") && w.contains("unencrypted")), "{:?}", c.warnings());
    // TLS, either way, loads without a word.
    for c in [cfg("ldaps://ldap.internal", false, TlsConfig::default()), cfg("ldap://ldap.internal", true, TlsConfig::default())] {
        assert!(messages(&c).is_empty(), "{}: {:?}", c.url, messages(&c));
        assert!(c.warnings().is_empty(), "{}: {:?}", c.url, c.warnings());
    }
    // Loopback in plaintext loads, unreported.
    for url in ["ldap://127.0.0.1:3389", "ldap://localhost", "ldap://[::1]:389"] {
        let c = cfg(url, false, TlsConfig::default());
        assert!(messages(&c).is_empty() && c.warnings().is_empty(), "{url}: {:?} {:?}", messages(&c), c.warnings());
    }
}

#[tokio::test]
async fn a_remote_plaintext_configuration_built_in_code_is_refused_at_connect() {
    // The rule holds for a configuration that never went through the loader:
    // refused before any connection (nothing listens at ldap.invalid anyway).
    let c = cfg("ldap://ldap.invalid:389", false, TlsConfig::default());
    let e = LdapProvider::connect("dir", &c, &|_| Ok(SecretString::from("Admin-pw-not-shown-1234".to_string()))).await.err().unwrap();
    assert_eq!(e.kind, ErrorKind::Config, "{e}");
    assert!(e.message.contains("not loopback"), "{e}");
    assert!(!e.to_string().contains("Admin-pw-not-shown-1234"), "{e}");
}

#[test]
fn tls_settings_where_nothing_would_use_them_are_refused() {
    let ca = TlsConfig { ca_cert: Some("/etc/keysweep/ldap-ca.pem".into()), ..Default::default() };
    let m = messages(&cfg("ldap://127.0.0.1:389", false, ca.clone()));
    assert!(m.iter().any(|m| m.contains("`tls` is set but the connection is plaintext") && m.contains("starttls: true")), "{m:?}");
    let m = messages(&cfg("ldaps://ldap.internal", true, ca.clone()));
    assert!(m.iter().any(|m| m.contains("`starttls: true` with an `ldaps://` URL")), "{m:?}");
    assert!(messages(&cfg("ldaps://ldap.internal", false, ca.clone())).is_empty());
    assert!(messages(&cfg("ldap://ldap.internal", true, ca)).is_empty());
    // The shared block's own rules apply (a CA with verification off checks nothing).
    let both = TlsConfig { insecure_skip_verify: true, ca_cert: Some("/ca.pem".into()), ..Default::default() };
    assert!(messages(&cfg("ldaps://ldap.internal", false, both)).iter().any(|m| m.contains("insecure_skip_verify")));
    // Verification off is reported only where TLS is used (elsewhere it is refused above).
    let off = TlsConfig { insecure_skip_verify: true, ..Default::default() };
    assert!(cfg("ldaps://ldap.internal", false, off.clone()).warnings().iter().any(|w| w.contains("verification is OFF")));
    assert!(!messages(&cfg("ldap://127.0.0.1", false, off)).is_empty());
}
