//! A real redis-server per test binary (like `bao()`): a free port, no
//! persistence, a throwaway directory, and a watchdog shell that ends the
//! server (and removes its directory) when the test process exits.
//!
//! ACLs are on for real: keysweep logs in as the admin ACL user
//! `keysweep_admin` (`~* &* +@all`), and the `default` user is turned off, so
//! a connection that has not logged in can do nothing.
//!
//! The server also listens with TLS on `tls_port` (TLS only there: a
//! plaintext client is dropped), with a certificate from a test CA
//! (`ca_cert`) that names `localhost` only, not 127.0.0.1. Client
//! certificates are optional (`tls-auth-clients optional`): none is needed,
//! but one that is presented must come from the test CA. In `certs`:
//! `client.pem`/`client.key` (from the test CA) and `other/` (a CA of its
//! own, with `other/client.pem`/`client.key` signed by it).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ::redis::{Client, ConnectionAddr, ConnectionInfo, RedisConnectionInfo, RedisResult, Value};

pub const REDIS_ADMIN_USER: &str = "keysweep_admin";
pub const REDIS_ADMIN_PASSWORD: &str = "adm1n-Redis-pw-for-tests";

pub struct Rd {
    pub host: String,
    pub port: u16,
    /// The TLS-only port.
    pub tls_port: u16,
    /// The directory of the test certificates (see the module notes).
    pub certs: PathBuf,
    /// The CA that signed the server's certificate (PEM).
    pub ca_cert: PathBuf,
    pub admin_user: String,
    pub admin_password: String,
}

fn redis_bin() -> PathBuf {
    if let Ok(p) = std::env::var("KEYSWEEP_REDIS_BIN") {
        return PathBuf::from(p);
    }
    if Command::new("redis-server").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success()) {
        return PathBuf::from("redis-server");
    }
    for p in ["/usr/bin/redis-server", "/usr/local/bin/redis-server", "/usr/sbin/redis-server"] {
        if std::path::Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("no `redis-server`: run scripts/install/redis.sh (or set KEYSWEEP_REDIS_BIN)");
}

/// A new connection to `port` that has not logged in.
fn raw(host: &str, port: u16) -> RedisResult<::redis::Connection> {
    let info = ConnectionInfo { addr: ConnectionAddr::Tcp(host.to_string(), port), redis: RedisConnectionInfo::default() };
    Client::open(info)?.get_connection_with_timeout(Duration::from_secs(5))
}

/// The redis-server of this test binary (started on first use).
pub fn redis() -> &'static Rd {
    static RD: OnceLock<Rd> = OnceLock::new();
    RD.get_or_init(|| {
        let port = super::free_port();
        let me = std::process::id();
        let tls_port = super::free_port();
        let dir = std::env::temp_dir().join(format!("keysweep-redis-{me}-{port}"));
        let certs = dir.join("certs");
        std::fs::create_dir_all(certs.join("other")).expect("redis dir");
        super::certs::server(&certs, &["localhost"]);
        super::certs::client(&certs, "client", "keysweep-client");
        super::certs::server(&certs.join("other"), &["localhost"]);
        super::certs::client(&certs.join("other"), "client", "keysweep-client");
        let d = dir.display();
        let c = certs.display();
        // The watchdog ends the server when this test process is gone.
        let script = format!(
            "'{}' --port {port} --tls-port {tls_port} --bind 127.0.0.1 --save '' --appendonly no --dir '{d}' --logfile '{d}/redis.log' \
             --tls-cert-file '{c}/server.pem' --tls-key-file '{c}/server.key' --tls-ca-cert-file '{c}/ca.pem' --tls-auth-clients optional \
             >/dev/null 2>&1 & b=$!; \
             while kill -0 {me} 2>/dev/null; do sleep 1; done; kill $b; sleep 1; rm -rf '{d}'",
            redis_bin().display()
        );
        // Not waited for: the watchdog outlives this call by design and ends with the process.
        #[allow(clippy::zombie_processes)]
        Command::new("sh").arg("-c").arg(script).stdin(Stdio::null()).spawn().expect("start redis-server");
        let deadline = Instant::now() + Duration::from_secs(30);
        // Until the admin exists, the default user has no password.
        let mut c = loop {
            if let Ok(mut c) = raw("127.0.0.1", port) {
                if ::redis::cmd("PING").query::<String>(&mut c).is_ok() {
                    break c;
                }
            }
            assert!(Instant::now() < deadline, "redis-server did not start on port {port} (log: {d}/redis.log)");
            std::thread::sleep(Duration::from_millis(100));
        };
        ::redis::cmd("ACL")
            .arg("SETUSER")
            .arg(REDIS_ADMIN_USER)
            .arg("reset")
            .arg("on")
            .arg(format!(">{REDIS_ADMIN_PASSWORD}"))
            .arg("~*")
            .arg("&*")
            .arg("+@all")
            .query::<()>(&mut c)
            .expect("create the admin ACL user");
        // From now on every connection must log in.
        ::redis::cmd("ACL").arg("SETUSER").arg("default").arg("off").arg("resetpass").query::<()>(&mut c).expect("turn default off");
        drop(c);
        let mut anon = raw("127.0.0.1", port).expect("connect");
        let e = ::redis::cmd("PING").query::<String>(&mut anon).expect_err("an anonymous PING must be refused");
        assert_eq!(e.code(), Some("NOAUTH"), "{e}");
        drop(anon);
        let mut c = raw("127.0.0.1", port).expect("connect");
        ::redis::cmd("AUTH").arg(REDIS_ADMIN_USER).arg(REDIS_ADMIN_PASSWORD).query::<()>(&mut c).expect("AUTH as the admin");
        let tls: Vec<String> = ::redis::cmd("CONFIG").arg("GET").arg("tls-port").query(&mut c).unwrap_or_else(|e| panic!("CONFIG GET tls-port: {e}"));
        assert_eq!(
            tls.get(1).map(String::as_str),
            Some(tls_port.to_string().as_str()),
            "redis-server is not listening with TLS (is it built with TLS?); log: {d}/redis.log"
        );
        Rd {
            host: "127.0.0.1".into(),
            port,
            tls_port,
            ca_cert: certs.join("ca.pem"),
            certs,
            admin_user: REDIS_ADMIN_USER.into(),
            admin_password: REDIS_ADMIN_PASSWORD.into(),
        }
    })
}

impl Rd {
    /// A new connection logged in as `user` (panics if refused).
    pub fn session(&self, user: &str, password: &str) -> ::redis::Connection {
        let mut c = raw(&self.host, self.port).expect("connect to redis");
        ::redis::cmd("AUTH").arg(user).arg(password).query::<()>(&mut c).unwrap_or_else(|e| panic!("AUTH as {user}: {e}"));
        c
    }

    /// Runs one command as the admin.
    pub fn try_admin(&self, args: &[&str]) -> RedisResult<Value> {
        let mut c = self.session(&self.admin_user, &self.admin_password);
        let mut cmd = ::redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query::<Value>(&mut c)
    }

    /// Runs one command as the admin; panics on an error answer.
    pub fn admin(&self, args: &[&str]) -> Value {
        self.try_admin(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    /// Creates (or resets) an enabled ACL user with `password` and the
    /// permissions of a typical application: its own keys and channels,
    /// reading and writing data.
    pub fn create_user(&self, name: &str, password: &str) {
        let keys = format!("~{name}:*");
        let chans = format!("&{name}:*");
        self.create_user_with(name, password, &[&keys, &chans, "-@all", "+@read", "+@write", "+ping"]);
    }

    /// Creates (or resets) an enabled ACL user with `password` and `rules`.
    pub fn create_user_with(&self, name: &str, password: &str, rules: &[&str]) {
        super::canary(password);
        let pw = format!(">{password}");
        let mut args = vec!["ACL", "SETUSER", name, "reset", "on", pw.as_str()];
        args.extend_from_slice(rules);
        self.admin(&args);
    }

    /// Does `password` log `user` in (from a new connection)? False only on
    /// WRONGPASS; any other answer panics.
    pub fn login_works(&self, user: &str, password: &str) -> bool {
        let mut c = raw(&self.host, self.port).expect("connect to redis");
        match ::redis::cmd("AUTH").arg(user).arg(password).query::<()>(&mut c) {
            Ok(()) => true,
            Err(e) if e.code() == Some("WRONGPASS") => false,
            Err(e) => panic!("AUTH as {user}: unexpected answer: {e}"),
        }
    }

    /// `ACL GETUSER` as (field, value) pairs, or None if there is no such user.
    pub fn getuser(&self, name: &str) -> Option<Vec<(String, Value)>> {
        match self.admin(&["ACL", "GETUSER", name]) {
            Value::Nil => None,
            Value::Array(a) => Some(
                a.chunks(2)
                    .map(|c| {
                        let k = match &c[0] {
                            Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                            other => format!("{other:?}"),
                        };
                        (k, c[1].clone())
                    })
                    .collect(),
            ),
            other => panic!("ACL GETUSER {name}: {other:?}"),
        }
    }

    /// One field of `ACL GETUSER` as text (arrays joined by spaces).
    pub fn getuser_field(&self, name: &str, field: &str) -> Option<String> {
        let u = self.getuser(name)?;
        let v = u.into_iter().find(|(k, _)| k == field)?.1;
        fn t(v: &Value) -> String {
            match v {
                Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                Value::SimpleString(s) => s.clone(),
                Value::Array(a) => a.iter().map(t).collect::<Vec<_>>().join(" "),
                other => format!("{other:?}"),
            }
        }
        Some(t(&v))
    }
}
