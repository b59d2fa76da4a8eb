//! A real PostgreSQL server per test binary (like `bao()`): `initdb` on a
//! throwaway directory, a free port on 127.0.0.1, and a watchdog shell that
//! stops the server (and removes its directory) when the test process exits.
//!
//! PostgreSQL refuses to run as root, so when the tests run as root the
//! server runs as the `postgres` system user that Debian's package creates
//! (`nobody` if there is none), through `runuser`; otherwise as the current
//! user. Binaries: `$KEYSWEEP_PG_BIN_DIR`, else `/usr/lib/postgresql/15/bin`,
//! else `pg_config --bindir`, else any `/usr/lib/postgresql/*/bin`, else PATH
//! (`scripts/install/postgres.sh` installs them).
//!
//! Authentication is real: TCP connections need a password
//! (`scram-sha-256` in `pg_hba.conf`); only the Unix socket in the temporary
//! directory trusts local users, for the fixture's own setup. keysweep's tests
//! log in over TCP as `keysweep_admin`, a superuser (the fixture and the end
//! to end tests create other superusers through it).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio_postgres::NoTls;

pub const PG_ADMIN_USER: &str = "keysweep_admin";
pub const PG_ADMIN_PASSWORD: &str = "adm1n-Pg-pw-for-tests";
/// The bootstrap superuser `initdb` creates (reached only over the socket).
const BOOTSTRAP_USER: &str = "postgres";

pub struct Pg {
    pub host: String,
    pub port: u16,
    pub admin_user: String,
    pub admin_password: String,
    /// Directory of the server's Unix socket (trust auth: setup only).
    pub socket_dir: PathBuf,
    /// The server's log (statements logged with `log_statement` land here).
    pub log_path: PathBuf,
    /// The test CA (PEM) that signed the server's certificate. The server runs
    /// with `ssl = on` (TLS offered, not required: loopback tests connect in
    /// plaintext too); its certificate names `localhost` only, not 127.0.0.1.
    pub ca_cert: PathBuf,
    /// A client certificate (CN [`CERT_USER`]) and its key, signed by the
    /// test CA: [`CERT_USER`] logs in over TLS only, with its password and
    /// this certificate (`hostssl … clientcert=verify-full`).
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// A superuser that must present a client certificate (see [`Pg::client_cert`]).
pub const CERT_USER: &str = "keysweep_certadmin";

/// A test CA and a server certificate for `localhost` (only) signed by it,
/// in `dir`: `ca.pem`, `server.pem`, `server.key`.
fn make_certs(dir: &Path) {
    super::certs::server(dir, &["localhost"]);
}

fn has_server(dir: &Path) -> bool {
    dir.join("initdb").exists() && dir.join("postgres").exists()
}

/// The directory of `initdb` and `postgres`, or `None` to use PATH.
fn bin_dir() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("KEYSWEEP_PG_BIN_DIR") {
        return Some(PathBuf::from(p));
    }
    let debian = PathBuf::from("/usr/lib/postgresql/15/bin");
    if has_server(&debian) {
        return Some(debian);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").stderr(Stdio::null()).output() {
        let d = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_server(&d) {
            return Some(d);
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|d| has_server(d))
        .collect();
    versions.sort();
    versions.pop()
}

fn bin(name: &str) -> String {
    match bin_dir() {
        Some(d) => d.join(name).display().to_string(),
        None => name.to_string(),
    }
}

fn id_of(user: &str, flag: &str) -> Option<u32> {
    let out = Command::new("id").args([flag, user]).stderr(Stdio::null()).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok().filter(|_| out.status.success())
}

/// The account the server runs as when we are root: `postgres`, else `nobody`.
fn server_user() -> Option<(String, u32, u32)> {
    if !is_root() {
        return None;
    }
    for u in ["postgres", "nobody"] {
        if let (Some(uid), Some(gid)) = (id_of(u, "-u"), id_of(u, "-g")) {
            return Some((u.to_string(), uid, gid));
        }
    }
    panic!("running as root, and there is neither a `postgres` nor a `nobody` user to run PostgreSQL as");
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// A shell prefix that runs a command as `user` (root only).
fn as_user(user: &str) -> String {
    if Path::new("/usr/sbin/runuser").exists() || Path::new("/sbin/runuser").exists() {
        format!("runuser -u {user} --")
    } else {
        // `su -s` also works for accounts whose shell is nologin.
        format!("su -s /bin/sh {user} -c exec")
    }
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Runs `f` on a thread of its own with a small runtime, so the helpers work
/// from plain `#[test]`s and from inside `#[tokio::test]`s alike.
fn block<T: Send + 'static>(f: impl std::future::Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f))
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// The PostgreSQL server of this test binary (started on first use).
pub fn postgres() -> &'static Pg {
    static PG: OnceLock<Pg> = OnceLock::new();
    PG.get_or_init(|| {
        let port = super::free_port();
        let me = std::process::id();
        let run_as = server_user();
        let base = if run_as.is_some() { PathBuf::from("/tmp") } else { std::env::temp_dir() };
        let dir = base.join(format!("keysweep-pg-{me}-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("postgres dir");
        let prefix = match &run_as {
            Some((user, uid, gid)) => {
                std::os::unix::fs::chown(&dir, Some(*uid), Some(*gid)).expect("chown the postgres dir");
                format!("{} ", as_user(user))
            }
            None => String::new(),
        };
        let data = dir.join("data");
        let log = dir.join("postgres.log");
        make_certs(&dir);
        super::certs::client(&dir, "client", CERT_USER);
        if let Some((_, uid, gid)) = &run_as {
            for f in ["server.key", "server.pem", "ca.pem"] {
                std::os::unix::fs::chown(dir.join(f), Some(*uid), Some(*gid)).expect("chown the server's certificate");
            }
        }

        // initdb: trust on the socket (setup only), scram-sha-256 over TCP.
        let init = format!(
            "cd {d} && {prefix}{initdb} -D {data} -U {BOOTSTRAP_USER} --auth-local=trust --auth-host=scram-sha-256 \
             --no-sync -E UTF8 --locale=C >{d}/initdb.log 2>&1",
            d = sh_quote(&dir.display().to_string()),
            initdb = sh_quote(&bin("initdb")),
            data = sh_quote(&data.display().to_string()),
        );
        let st = Command::new("sh").arg("-c").arg(&init).status().expect("run initdb");
        assert!(
            st.success(),
            "initdb failed ({st}); run scripts/install/postgres.sh (or set KEYSWEEP_PG_BIN_DIR): {}",
            std::fs::read_to_string(dir.join("initdb.log")).unwrap_or_default()
        );

        // CERT_USER: TLS with a verified client certificate naming it, and its password.
        let hba = data.join("pg_hba.conf");
        let rest = std::fs::read_to_string(&hba).expect("read pg_hba.conf");
        std::fs::write(
            &hba,
            format!("hostssl all {CERT_USER} 127.0.0.1/32 scram-sha-256 clientcert=verify-full\nhost all {CERT_USER} all reject\n{rest}"),
        )
        .expect("write pg_hba.conf");

        // The watchdog stops the server (fast shutdown) when this test process
        // is gone, then removes its directory.
        let q = |p: &Path| sh_quote(&p.display().to_string());
        let script = format!(
            "cd {d} && {prefix}{postgres} -D {data} -p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={d} \
               -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 \
               -c password_encryption=scram-sha-256 \
               -c ssl=on -c ssl_cert_file={d}/server.pem -c ssl_key_file={d}/server.key -c ssl_ca_file={d}/ca.pem >{log} 2>&1 & \
             while kill -0 {me} 2>/dev/null; do sleep 1; done; \
             kill -INT $(head -1 {data}/postmaster.pid 2>/dev/null) 2>/dev/null; \
             i=0; while [ -f {data}/postmaster.pid ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; \
             rm -rf {d}",
            d = q(&dir),
            postgres = sh_quote(&bin("postgres")),
            data = q(&data),
            log = q(&log),
        );
        // Not waited for: the watchdog outlives this call by design and ends with the process.
        #[allow(clippy::zombie_processes)]
        Command::new("sh").arg("-c").arg(script).stdin(Stdio::null()).spawn().expect("start postgres");

        let socket = dir.clone();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = socket.clone();
            let ready = block(async move {
                let mut c = tokio_postgres::Config::new();
                c.host_path(&s).port(port).user(BOOTSTRAP_USER).dbname("postgres").connect_timeout(Duration::from_secs(2));
                match c.connect(NoTls).await {
                    Ok((client, conn)) => {
                        tokio::spawn(conn);
                        client.simple_query("SELECT 1").await.is_ok()
                    }
                    Err(_) => false,
                }
            });
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "postgres did not start on port {port}: {}", std::fs::read_to_string(&log).unwrap_or_default());
            std::thread::sleep(Duration::from_millis(100));
        }
        let pg = Pg {
            host: "127.0.0.1".into(),
            port,
            admin_user: PG_ADMIN_USER.into(),
            admin_password: PG_ADMIN_PASSWORD.into(),
            socket_dir: socket,
            log_path: log.clone(),
            ca_cert: dir.join("ca.pem"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
        };
        pg.socket_exec(&format!("CREATE ROLE {} WITH LOGIN SUPERUSER PASSWORD {}", quote_ident(CERT_USER), quote_literal(PG_ADMIN_PASSWORD)));
        pg.socket_exec(&format!("CREATE ROLE {} WITH LOGIN SUPERUSER PASSWORD {}", quote_ident(PG_ADMIN_USER), quote_literal(PG_ADMIN_PASSWORD)));
        assert!(pg.login_works(PG_ADMIN_USER, PG_ADMIN_PASSWORD), "the fixture's admin cannot log in over TCP");
        assert_eq!(pg.login_error(PG_ADMIN_USER, "not-the-password").as_deref(), Some("28P01"), "TCP logins are not password-checked");
        pg
    })
}

/// `"name"` with `"` doubled.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `'text'` with `'` doubled (standard_conforming_strings is on: `\` is plain).
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

impl Pg {
    /// Runs SQL over the trusted socket as the bootstrap superuser (setup only).
    fn socket_exec(&self, sql: &str) {
        let (dir, port, sql) = (self.socket_dir.clone(), self.port, sql.to_string());
        block(async move {
            let mut c = tokio_postgres::Config::new();
            c.host_path(&dir).port(port).user(BOOTSTRAP_USER).dbname("postgres");
            let (client, conn) = c.connect(NoTls).await.expect("connect over the socket");
            tokio::spawn(conn);
            client.batch_execute(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        })
    }

    /// A `Config` for a TCP login as `user`.
    fn tcp(&self, user: &str, password: &str) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(&self.host).port(self.port).user(user).password(password).dbname("postgres").connect_timeout(Duration::from_secs(10));
        c
    }

    /// Runs SQL as the admin over TCP; the server's error if it fails.
    pub fn try_exec(&self, sql: &str) -> Result<(), String> {
        self.try_exec_as(&self.admin_user, &self.admin_password, sql)
    }

    /// Runs SQL over TCP logged in as `user`; the server's error if it fails.
    pub fn try_exec_as(&self, user: &str, password: &str, sql: &str) -> Result<(), String> {
        let (c, sql) = (self.tcp(user, password), sql.to_string());
        block(async move {
            let (client, conn) = c.connect(NoTls).await.map_err(|e| format!("{e}"))?;
            tokio::spawn(conn);
            client.batch_execute(&sql).await.map_err(|e| match e.as_db_error() {
                Some(d) => format!("{}: {}", d.code().code(), d.message()),
                None => e.to_string(),
            })
        })
    }

    /// Runs SQL as the admin over TCP; panics if it fails.
    pub fn exec(&self, sql: &str) {
        self.try_exec(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// What the server has logged so far.
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// One row of one text column (or NULL) as the admin.
    pub fn query_one_text(&self, sql: &str) -> Option<String> {
        let (c, sql) = (self.tcp(&self.admin_user, &self.admin_password), sql.to_string());
        block(async move {
            let (client, conn) = c.connect(NoTls).await.expect("admin login");
            tokio::spawn(conn);
            let rows = client.simple_query(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
            rows.into_iter().find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
                _ => None,
            })?
        })
    }

    /// Creates a login role with `password` (or resets an existing one to it).
    pub fn create_role(&self, name: &str, password: &str) {
        super::canary(password);
        let verb = if self.role_exists(name) { "ALTER" } else { "CREATE" };
        self.exec(&format!("{verb} ROLE {} WITH LOGIN PASSWORD {}", quote_ident(name), quote_literal(password)));
    }

    /// The SQLSTATE a TCP login as `user` with `password` is refused with;
    /// `None` if it is accepted. Panics when no server answer came at all.
    pub fn login_error(&self, user: &str, password: &str) -> Option<String> {
        let c = self.tcp(user, password);
        block(async move {
            match c.connect(NoTls).await {
                Ok((client, conn)) => {
                    let h = tokio::spawn(conn);
                    client.simple_query("SELECT 1").await.expect("a logged-in session runs SELECT 1");
                    drop(client);
                    let _ = h.await;
                    None
                }
                Err(e) => match e.code() {
                    Some(code) => Some(code.code().to_string()),
                    None => panic!("login as {} got no answer from the server: {e:?}", c.get_user().unwrap_or_default()),
                },
            }
        })
    }

    /// Does a new TCP login as `user` with `password` work? Panics on any
    /// refusal other than 28P01 (wrong password).
    pub fn login_works(&self, user: &str, password: &str) -> bool {
        match self.login_error(user, password) {
            None => true,
            Some(code) if code == "28P01" => false,
            Some(code) => panic!("login as {user}: unexpected SQLSTATE {code}"),
        }
    }

    pub fn role_exists(&self, name: &str) -> bool {
        self.query_one_text(&format!("SELECT rolname::text FROM pg_roles WHERE rolname = {}", quote_literal(name))).is_some()
    }

    /// `rolcanlogin` of a role (`None`: no such role).
    pub fn can_login(&self, name: &str) -> Option<bool> {
        self.query_one_text(&format!("SELECT rolcanlogin::text FROM pg_roles WHERE rolname = {}", quote_literal(name))).map(|v| v == "true")
    }
}
