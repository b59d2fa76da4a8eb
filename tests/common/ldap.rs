//! A throwaway OpenLDAP `slapd` per test binary, with its own config in a
//! temp dir and a watchdog that ends it (and removes the dir) when the test
//! process is gone. The directory (`dc=keysweep,dc=test`) runs the ppolicy
//! overlay with a default policy that locks nothing by itself (pwdMaxFailure 0)
//! but honours an admin-set `pwdAccountLockedTime`, so a test can lock an
//! account for real; a `strict` policy (two failed logins lock) is there for
//! accounts created with `create_strict_account`. `lastbind` is on, so a
//! successful bind records `pwdLastSuccess` (what `discover` reads as last use). Setup uses the ldap-utils client tools (installed with
//! slapd by scripts/install/ldap.sh), so it needs no async runtime.
//!
//! TLS: [`ldap`] offers it (an `ldaps://` listener and StartTLS on the
//! `ldap://` port, with a test certificate naming `localhost` only, signed
//! by the test CA in `ca_cert`) without requiring it. [`ldap_tls_required`]
//! is a second server that refuses every operation but StartTLS over a
//! connection without TLS (`security tls=1`: a plaintext bind answers 13,
//! confidentialityRequired), so a bind it accepts went over TLS; its setup
//! tools connect over `ldaps://`. [`ldap_without_tls`] offers no TLS at all
//! (StartTLS is refused).
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub struct Ld {
    /// `ldap://127.0.0.1:<port>` (plaintext, or StartTLS).
    pub url: String,
    pub base: String,
    pub admin_dn: String,
    pub admin_password: String,
    pub dir: PathBuf,
    pub port: u16,
    /// The `ldaps://` port (0: no TLS).
    pub tls_port: u16,
    /// The test CA that signed the server's certificate (TLS servers only).
    pub ca_cert: PathBuf,
    /// The URL and environment the ldap-utils setup tools use.
    tool_url: String,
    tool_env: Vec<(&'static str, String)>,
}

/// How a test slapd offers TLS.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tls {
    /// None: no `ldaps://` listener, StartTLS refused.
    Off,
    /// `ldaps://` and StartTLS offered; plaintext binds accepted.
    Offered,
    /// Offered, and required for everything (`security tls=1`).
    Required,
}

/// The base entries: the suffix, `ou=services`, `ou=groups`, and the default password policy.
fn base_ldif(base: &str) -> String {
    format!(
        "dn: {base}\nobjectClass: dcObject\nobjectClass: organization\ndc: keysweep\no: keysweep\n\n\
         dn: ou=services,{base}\nobjectClass: organizationalUnit\nou: services\n\n\
         dn: ou=groups,{base}\nobjectClass: organizationalUnit\nou: groups\n\n\
         dn: ou=policies,{base}\nobjectClass: organizationalUnit\nou: policies\n\n\
         dn: cn=default,ou=policies,{base}\nobjectClass: applicationProcess\nobjectClass: pwdPolicy\ncn: default\n\
         pwdAttribute: userPassword\npwdLockout: TRUE\npwdMaxFailure: 0\n\n\
         dn: cn=strict,ou=policies,{base}\nobjectClass: applicationProcess\nobjectClass: pwdPolicy\ncn: strict\n\
         pwdAttribute: userPassword\npwdLockout: TRUE\npwdMaxFailure: 2\n"
    )
}

fn sbin(name: &str, env: &str) -> PathBuf {
    if let Ok(p) = std::env::var(env) {
        return PathBuf::from(p);
    }
    for d in ["/usr/sbin", "/usr/local/sbin", "/usr/bin"] {
        let p = Path::new(d).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("no `{name}`: install OpenLDAP with scripts/install/ldap.sh (or set {env})");
}

/// The slapd of this test binary (started on first use); TLS offered, not required.
pub fn ldap() -> &'static Ld {
    static LD: OnceLock<Ld> = OnceLock::new();
    LD.get_or_init(|| start(Tls::Offered))
}

/// A slapd that refuses any operation (a bind included) over a connection
/// without TLS: `ldaps://` or StartTLS only.
pub fn ldap_tls_required() -> &'static Ld {
    static LD: OnceLock<Ld> = OnceLock::new();
    LD.get_or_init(|| start(Tls::Required))
}

/// A slapd without TLS: no `ldaps://` listener, StartTLS refused.
pub fn ldap_without_tls() -> &'static Ld {
    static LD: OnceLock<Ld> = OnceLock::new();
    LD.get_or_init(|| start(Tls::Off))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start(tls: Tls) -> Ld {
    let slapd = sbin("slapd", "KEYSWEEP_SLAPD_BIN");
    let dir = tempfile::Builder::new().prefix("keysweep-slapd-").tempdir().expect("tempdir").keep();
    std::fs::create_dir_all(dir.join("db")).unwrap();
    let port = free_port();
    let tls_port = if tls == Tls::Off { 0 } else { free_port() };
    let base = "dc=keysweep,dc=test".to_string();
    let admin_dn = format!("cn=admin,{base}");
    let admin_password = format!("admin-{}", uuid::Uuid::new_v4().simple());
    let schema = std::env::var("KEYSWEEP_LDAP_SCHEMA_DIR").unwrap_or_else(|_| "/etc/ldap/schema".into());
    let modules = std::env::var("KEYSWEEP_LDAP_MODULE_DIR").unwrap_or_else(|_| "/usr/lib/ldap".into());
    let d = dir.display();
    // slapd runs as this process's user, which owns the key (0600).
    let tls_conf = match tls {
        Tls::Off => String::new(),
        Tls::Offered | Tls::Required => {
            super::certs::server(&dir, &["localhost"]);
            let required = if tls == Tls::Required { "security tls=1\n" } else { "" };
            format!("TLSCACertificateFile {d}/ca.pem\nTLSCertificateFile {d}/server.pem\nTLSCertificateKeyFile {d}/server.key\n{required}")
        }
    };
    let conf = format!(
        "include {schema}/core.schema\n\
             include {schema}/cosine.schema\n\
             include {schema}/inetorgperson.schema\n\
             include {schema}/nis.schema\n\
             modulepath {modules}\n\
             moduleload back_mdb\n\
             moduleload ppolicy\n\
             pidfile {d}/slapd.pid\n\
             argsfile {d}/slapd.args\n\
             {tls_conf}\
             password-hash {{SSHA}}\n\
             database mdb\n\
             maxsize 67108864\n\
             suffix \"{base}\"\n\
             rootdn \"{admin_dn}\"\n\
             rootpw {admin_password}\n\
             directory {d}/db\n\
             lastbind on\n\
             index objectClass eq\n\
             index member,uniqueMember,memberUid eq\n\
             overlay ppolicy\n\
             ppolicy_default \"cn=default,ou=policies,{base}\"\n\
             ppolicy_hash_cleartext\n\
             access to attrs=userPassword by self =xw by anonymous auth by * none\n\
             access to * by self read by users read by * none\n"
    );
    let conf_path = dir.join("slapd.conf");
    std::fs::write(&conf_path, conf).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&conf_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let url = format!("ldap://127.0.0.1:{port}");
    let listeners = if tls == Tls::Off { format!("{url}/") } else { format!("{url}/ ldaps://127.0.0.1:{tls_port}/") };
    let me = std::process::id();
    // The watchdog ends slapd, and removes its directory, when this test process is gone.
    let script = format!(
        "'{}' -f '{d}/slapd.conf' -h '{listeners}' -d 0 >'{d}/slapd.log' 2>&1 & s=$!; \
             while kill -0 {me} 2>/dev/null && kill -0 $s 2>/dev/null; do sleep 1; done; kill $s 2>/dev/null; \
             for i in 1 2 3 4 5 6 7 8 9 10; do kill -0 $s 2>/dev/null || break; sleep 0.5; done; kill -9 $s 2>/dev/null; rm -rf '{d}'",
        slapd.display()
    );
    // Not waited for: the watchdog outlives this call by design and ends with the process.
    #[allow(clippy::zombie_processes)]
    Command::new("sh").arg("-c").arg(script).stdin(Stdio::null()).spawn().expect("start slapd");
    let (tool_url, tool_env) = if tls == Tls::Required {
        // libldap checks a certificate for `localhost` against the
        // machine's own host name, which the test certificate does not
        // carry: the setup tools check the chain only. (keysweep's own
        // connections are what the tests verify.)
        (
            format!("ldaps://127.0.0.1:{tls_port}"),
            vec![("LDAPTLS_CACERT", dir.join("ca.pem").display().to_string()), ("LDAPTLS_REQCERT", "allow".to_string())],
        )
    } else {
        (url.clone(), vec![])
    };
    let ld =
        Ld { url, base: base.clone(), admin_dn, admin_password, dir: dir.clone(), port, tls_port, ca_cert: dir.join("ca.pem"), tool_url, tool_env };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = ld
            .tool("ldapsearch")
            .args(["-x", "-s", "base", "-b", "", "-LLL", "namingContexts"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            break;
        }
        let log = std::fs::read_to_string(dir.join("slapd.log")).unwrap_or_default();
        assert!(Instant::now() < deadline, "slapd did not start on {}: {log}", ld.url);
        std::thread::sleep(Duration::from_millis(100));
    }
    ld.ldif("ldapadd", &base_ldif(&base));
    ld
}

impl Ld {
    /// An ldap-utils command (`-H` and the TLS environment set) on this server.
    fn tool(&self, name: &str) -> Command {
        let mut c = Command::new(name);
        c.envs(self.tool_env.iter().map(|(k, v)| (*k, v.as_str()))).args(["-H", &self.tool_url]);
        c
    }

    /// `ldaps://localhost:<tls port>`: the name the certificate carries.
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://localhost:{}", self.tls_port)
    }

    /// `ldap://localhost:<port>` (for StartTLS): the name the certificate carries.
    pub fn starttls_url(&self) -> String {
        format!("ldap://localhost:{}", self.port)
    }

    /// The server's log (slapd `-d 0`: errors only).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("slapd.log")).unwrap_or_default()
    }

    /// Runs `tool` (ldapadd/ldapmodify/ldapdelete) as the admin with `input` on stdin.
    pub fn ldif(&self, tool: &str, input: &str) {
        let (code, out) = self.ldif_status(tool, input);
        assert_eq!(code, 0, "{tool} failed: {out}\n--- input ---\n{input}");
    }

    /// Like `ldif`, returning the exit code (the LDAP result code) and output.
    pub fn ldif_status(&self, tool: &str, input: &str) -> (i32, String) {
        let mut child = self
            .tool(tool)
            .args(["-x", "-D", &self.admin_dn, "-w", &self.admin_password])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{tool}: {e} (install ldap-utils with scripts/install/ldap.sh)"));
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.code().unwrap_or(-1), text)
    }

    /// Creates `cn=<cn>,ou=services,<base>` (inetOrgPerson) with `password`
    /// (hashed by the server); returns its DN.
    pub fn create_account(&self, cn: &str, password: &str) -> String {
        self.create_account_with(cn, password, "")
    }

    /// Like `create_account`, under the `strict` password policy: two failed
    /// logins lock the account.
    pub fn create_strict_account(&self, cn: &str, password: &str) -> String {
        self.create_account_with(cn, password, &format!("pwdPolicySubentry: cn=strict,ou=policies,{}\n", self.base))
    }

    fn create_account_with(&self, cn: &str, password: &str, extra: &str) -> String {
        super::canary(password);
        let dn = format!("cn={cn},ou=services,{}", self.base);
        self.ldif(
            "ldapadd",
            &format!(
                "dn: {dn}\nobjectClass: inetOrgPerson\ncn: {cn}\nsn: {cn}\nuid: {cn}\ndescription: keysweep test account\nuserPassword: {password}\n{extra}"
            ),
        );
        dn
    }

    /// Does a simple bind as `dn` with `password` succeed? False only on
    /// invalidCredentials (49); any other failure panics.
    pub fn bind_works(&self, dn: &str, password: &str) -> bool {
        let out = self.tool("ldapwhoami").args(["-x", "-D", dn, "-w", password]).output().expect("ldapwhoami");
        match out.status.code() {
            Some(0) => true,
            Some(49) => false,
            other => panic!("bind as {dn}: exit {other:?}: {}", String::from_utf8_lossy(&out.stderr)),
        }
    }

    /// Searches as the admin; returns the LDIF (`-LLL`, values base64 where needed).
    pub fn search(&self, base: &str, scope: &str, filter: &str, attrs: &[&str]) -> String {
        let mut cmd = self.tool("ldapsearch");
        cmd.args(["-x", "-D", &self.admin_dn, "-w", &self.admin_password, "-LLL", "-o", "ldif-wrap=no", "-s", scope, "-b", base, filter]);
        cmd.args(attrs);
        let out = cmd.output().expect("ldapsearch");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Does the entry exist?
    pub fn exists(&self, dn: &str) -> bool {
        self.search(dn, "base", "(objectClass=*)", &["1.1"]).contains("dn:")
    }

    /// Locks the account the way ppolicy's administrators do (permanently).
    pub fn lock(&self, dn: &str) {
        self.ldif("ldapmodify", &format!("dn: {dn}\nchangetype: modify\nreplace: pwdAccountLockedTime\npwdAccountLockedTime: 000001010000Z\n"));
    }

    pub fn unlock(&self, dn: &str) {
        self.ldif("ldapmodify", &format!("dn: {dn}\nchangetype: modify\ndelete: pwdAccountLockedTime\n"));
    }

    pub fn delete(&self, dn: &str) {
        self.ldif("ldapdelete", &format!("{dn}\n"));
    }
}
