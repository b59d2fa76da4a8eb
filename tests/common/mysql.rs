//! A real MariaDB server per test binary (like `bao()`): a throwaway data
//! directory made by `mariadb-install-db`, `mariadbd` on a free port bound to
//! 127.0.0.1 (grant tables on: logins are checked for real), and a watchdog
//! shell that ends the server and removes its directory when the test process
//! exits.
//!
//! keysweep logs in as `keysweep_admin`@`%` (ALL PRIVILEGES WITH GRANT OPTION).
//! The helpers here talk to the server with the `mariadb` command-line client,
//! each call a connection of its own, so what they see does not depend on the
//! code under test. Setup statements run as `root`@`localhost` over the unix
//! socket (`--auth-root-authentication-method=normal`: no password there).
//!
//! TLS is on (`--ssl-ca/--ssl-cert/--ssl-key`) on the same port, offered, not
//! required: loopback tests log in in plaintext too; an account created
//! `REQUIRE SSL` proves a login came over TLS. The server's certificate, from
//! a test CA (`ca_cert`), names `localhost` only, not 127.0.0.1; `client.pem`
//! / `client.key` in `certs` is a client certificate (CN `keysweep-client`)
//! from that CA, and `other/ca.pem` a CA that signed nothing here.
//!
//! Run as root (as CI does), the server is started with `--user=root`; as
//! another user, it runs as that user. `scripts/install/mysql.sh` installs the
//! packages; `KEYSWEEP_MARIADBD_BIN`, `KEYSWEEP_MARIADB_INSTALL_DB_BIN` and
//! `KEYSWEEP_MARIADB_CLIENT_BIN` override the binaries.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const MYSQL_ADMIN_USER: &str = "keysweep_admin";
pub const MYSQL_ADMIN_PASSWORD: &str = "adm1n-MariaDB-pw-for-tests";

pub struct My {
    pub host: String,
    pub port: u16,
    pub admin_user: String,
    pub admin_password: String,
    socket: PathBuf,
    dir: PathBuf,
    /// The directory of the test certificates (see the module notes).
    pub certs: PathBuf,
    /// The CA that signed the server's certificate (PEM).
    pub ca_cert: PathBuf,
}

fn find_bin(env: &str, names: &[&str]) -> PathBuf {
    if let Ok(p) = std::env::var(env) {
        return PathBuf::from(p);
    }
    for n in names {
        for d in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
            let p = Path::new(d).join(n);
            if p.exists() {
                return p;
            }
        }
    }
    panic!("no `{}`: run scripts/install/mysql.sh (or set {env})", names[0]);
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// `s` as an SQL string literal (default sql_mode: backslash escapes on).
pub fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// The MariaDB server of this test binary (started on first use).
pub fn mysql() -> &'static My {
    static MY: OnceLock<My> = OnceLock::new();
    MY.get_or_init(|| {
        let port = super::free_port();
        let me = std::process::id();
        let dir = std::env::temp_dir().join(format!("keysweep-mariadb-{me}-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mariadb dir");
        let data = dir.join("data");
        let socket = dir.join("sock");
        let certs = dir.join("certs");
        std::fs::create_dir_all(certs.join("other")).expect("certs dir");
        super::certs::server(&certs, &["localhost"]);
        super::certs::client(&certs, "client", "keysweep-client");
        super::certs::server(&certs.join("other"), &["localhost"]);
        let root = is_root();
        let user_arg: &[&str] = if root { &["--user=root"] } else { &[] };

        let install = find_bin("KEYSWEEP_MARIADB_INSTALL_DB_BIN", &["mariadb-install-db", "mysql_install_db"]);
        let out = Command::new(&install)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db")
            .args(user_arg)
            .stdin(Stdio::null())
            .output()
            .expect("run mariadb-install-db");
        assert!(out.status.success(), "mariadb-install-db failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));

        let d = dir.display();
        // The watchdog ends the server when this test process is gone.
        let script = format!(
            "'{}' --no-defaults --datadir='{}' --port={port} --bind-address=127.0.0.1 --socket='{}' --pid-file='{d}/mariadbd.pid' \
             --log-error='{d}/error.log' --skip-name-resolve --skip-log-bin --innodb-buffer-pool-size=32M --max-connections=300 {} \
             --ssl-ca='{c}/ca.pem' --ssl-cert='{c}/server.pem' --ssl-key='{c}/server.key' \
             >/dev/null 2>&1 & b=$!; \
             while kill -0 {me} 2>/dev/null; do sleep 1; done; kill $b; wait $b; rm -rf '{d}'",
            find_bin("KEYSWEEP_MARIADBD_BIN", &["mariadbd", "mysqld"]).display(),
            data.display(),
            socket.display(),
            user_arg.join(" "),
            c = certs.display(),
        );
        // Not waited for: the watchdog outlives this call by design and ends with the process.
        #[allow(clippy::zombie_processes)]
        Command::new("sh").arg("-c").arg(script).stdin(Stdio::null()).spawn().expect("start mariadbd");

        let my = My {
            host: "127.0.0.1".into(),
            port,
            admin_user: MYSQL_ADMIN_USER.into(),
            admin_password: MYSQL_ADMIN_PASSWORD.into(),
            socket,
            dir: dir.clone(),
            ca_cert: certs.join("ca.pem"),
            certs,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while my.root_sql("SELECT 1").is_err() {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
                panic!("mariadbd did not start on port {port}; its log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let tls = my.sql("SHOW GLOBAL VARIABLES LIKE 'have_ssl'");
        assert!(
            tls.contains("YES"),
            "mariadbd did not turn TLS on (have_ssl: {tls}); its log:\n{}",
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
        my.sql(&format!(
            "CREATE USER '{MYSQL_ADMIN_USER}'@'%' IDENTIFIED BY {pw}; \
             GRANT ALL PRIVILEGES ON *.* TO '{MYSQL_ADMIN_USER}'@'%' WITH GRANT OPTION; \
             CREATE DATABASE IF NOT EXISTS keysweep_test; \
             CREATE TABLE IF NOT EXISTS keysweep_test.t (id INT PRIMARY KEY)",
            pw = lit(MYSQL_ADMIN_PASSWORD)
        ));
        my
    })
}

/// A port nothing listens on (for refused-connection cases).
pub fn closed_port() -> u16 {
    super::free_port()
}

fn client() -> PathBuf {
    find_bin("KEYSWEEP_MARIADB_CLIENT_BIN", &["mariadb", "mysql"])
}

/// The error code in the client's `ERROR 1045 (28000) …` line.
fn error_code(stderr: &str) -> Option<u16> {
    let i = stderr.find("ERROR ")?;
    stderr[i + 6..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

impl My {
    /// Runs `sql` as root over the socket; tab-separated rows, or the client's error.
    pub fn root_sql(&self, sql: &str) -> Result<String, String> {
        let out = Command::new(client())
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.socket.display()))
            .args(["-uroot", "-N", "-B", "-e", sql])
            .env_remove("MYSQL_PWD")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).to_string())
        }
    }

    /// Runs `sql` as root; panics on an error.
    pub fn sql(&self, sql: &str) -> String {
        self.root_sql(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Creates `'name'@'%'` with `password` and SELECT on the test database.
    pub fn create_user(&self, name: &str, password: &str) {
        self.create_user_at(name, "%", password);
    }

    /// Creates `'name'@'host'` with `password` and SELECT on the test database.
    pub fn create_user_at(&self, name: &str, host: &str, password: &str) {
        super::canary(password);
        self.sql(&format!(
            "CREATE USER {u}@{h} IDENTIFIED BY {p}; GRANT SELECT ON keysweep_test.* TO {u}@{h}",
            u = lit(name),
            h = lit(host),
            p = lit(password)
        ));
    }

    /// A plaintext login over TCP, on a connection of its own: the error code,
    /// if refused. (The `mariadb` client turns TLS on by itself when the
    /// server offers it; `--skip-ssl` keeps this one plaintext.)
    pub fn login(&self, user: &str, password: &str) -> Result<(), u16> {
        let out = Command::new(client())
            .arg("--no-defaults")
            .arg("--skip-ssl")
            .args(["-h", &self.host, "-P", &self.port.to_string(), "--protocol=TCP", "-u", user, "-N", "-B", "-e", "SELECT 1"])
            .env("MYSQL_PWD", password)
            .stdin(Stdio::null())
            .output()
            .expect("run the mariadb client");
        if out.status.success() {
            return Ok(());
        }
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        Err(error_code(&err).unwrap_or_else(|| panic!("login as {user}: no error code in: {err}")))
    }

    /// A login over TLS to `localhost` (the name the certificate carries),
    /// verified against the test CA, on a connection of its own: the
    /// session's `Ssl_cipher`, or the error code if refused.
    pub fn login_tls(&self, user: &str, password: &str) -> Result<String, u16> {
        let out = Command::new(client())
            .arg("--no-defaults")
            .args(["-h", "localhost", "-P", &self.port.to_string(), "--protocol=TCP", "-u", user, "-N", "-B"])
            .arg("--ssl")
            .arg(format!("--ssl-ca={}", self.ca_cert.display()))
            .arg("--ssl-verify-server-cert")
            .args(["-e", "SHOW SESSION STATUS LIKE 'Ssl_cipher'"])
            .env("MYSQL_PWD", password)
            .stdin(Stdio::null())
            .output()
            .expect("run the mariadb client");
        if out.status.success() {
            let row = String::from_utf8_lossy(&out.stdout).to_string();
            return Ok(row.split_whitespace().nth(1).unwrap_or_default().to_string());
        }
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        Err(error_code(&err).unwrap_or_else(|| panic!("TLS login as {user}: no error code in: {err}")))
    }

    /// Does `user` log in with `password`? False only on 1045 (access denied);
    /// any other refusal is a test-setup problem and panics.
    pub fn login_works(&self, user: &str, password: &str) -> bool {
        match self.login(user, password) {
            Ok(()) => true,
            Err(1045) => false,
            Err(code) => panic!("login as {user}: unexpected error {code}"),
        }
    }

    /// Does `'user'@'host'` exist, and is it locked? `None` if absent.
    pub fn locked(&self, user: &str, host: &str) -> Option<bool> {
        let out = self.sql(&format!(
            "SELECT IFNULL(JSON_VALUE(Priv, '$.account_locked'), '0') FROM mysql.global_priv WHERE User = {} AND Host = {}",
            lit(user),
            lit(host)
        ));
        let v = out.trim();
        (!v.is_empty()).then(|| v == "true" || v == "1")
    }

    /// `SHOW GRANTS FOR 'user'@'host'`, one line each.
    pub fn grants(&self, user: &str, host: &str) -> Vec<String> {
        self.sql(&format!("SHOW GRANTS FOR {}@{}", lit(user), lit(host))).lines().map(str::to_string).collect()
    }

    /// The server's data directory (removed by the watchdog).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
