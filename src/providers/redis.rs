//! Redis: ACL users' passwords (`redis_acl_user`), Redis 6 and later.
//!
//! keysweep logs in as a separate admin ACL user (`AUTH <user> <password>` on a
//! multiplexed connection, checked with `PING`) and rotates other users with
//! `ACL SETUSER <u> on resetpass ><new>`: afterwards the new password is the
//! only one the user has. The password travels as its own argument of the
//! command (redis-rs sends every argument as a length-prefixed bulk string), so
//! spaces, quotes or a leading `#` in it are harmless.
//!
//! Proof of death, from the server's own answers (checked against Redis
//! 7.0.15): `AUTH` answers `WRONGPASS invalid username-password pair or user is
//! disabled.` to a wrong password, to a user that is `off` (with its right
//! password as well as a wrong one), and to a user that does not exist. So
//! disabling an account does not change the refusal code, and `retire` both
//! scrambles the password and turns the user `off`. Only `WRONGPASS` counts as
//! dead; anything else (timeouts, refused connections, `LOADING`, other errors)
//! is unknown. Admin-side, `ACL GETUSER` showing the user `off`, with no
//! password (and not `nopass`), or gone, is proof too.
//!
//! `off` and `resetpass` leave sessions that already authenticated as the user
//! working (checked: a `PING` on such a session still answers `PONG`), so
//! `retire` also ends them with `CLIENT KILL USER <u>` (which spares
//! keysweep's own connection).
//!
//! Every probe (`test`, `verify_dead` with a value) uses a new connection that
//! logs in with an explicit `AUTH` rather than redis-rs' built-in handshake,
//! which folds every refusal into one "authentication failed" and would hide
//! the `WRONGPASS` code. No connection settings ever hold a password, and
//! error text is redacted of the passwords involved before it is kept.
//!
//! TLS: `url: rediss://host:port` with the shared `tls:` block. keysweep makes
//! the TLS connection itself (rustls, with the verifier every provider uses:
//! the CA named, else the system's roots; `server_name`; a client
//! certificate) and hands it to redis-rs, for the admin connection and every
//! probe alike; there is no fallback to plaintext. Plaintext (`redis://`, or
//! `host:`/`port:`) to a host that is not loopback does not load unless
//! `allow_plaintext: true`, which `plan` and every connection report.
//!
//! Changes are made in memory; when the server keeps its users in an ACL file
//! (`aclfile`), `ACL SAVE` writes them there (a server without one answers an
//! error, which is ignored). Users defined by `user` lines of `redis.conf`
//! need `CONFIG REWRITE`, which keysweep does not run: a restart would bring
//! back the passwords those lines hold.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, RedisConnectionInfo, RedisError, Value};
use rustls::pki_types::ServerName;

use super::account::DbAccountTarget;
use super::account::{check_in_pair, missing, one, USERNAME};
use crate::playbook::model::Target;
use crate::provider::{ErrorKind, Handle, InventoryItem, Minted, Provider, ProviderError, Verdict};
use crate::secret::{redact_all, scrub, Delivered, ExposeSecret, GeneratePolicy, SecretString};

/// The handle key (and store field) naming the ACL user a password belongs to.
const NOUN: &str = "ACL user";
const CLONE_HOW: &str = "with the rules of the other account";

/// Commands that administer the server or its users: a user allowed any of
/// them is reported `privileged` by `inventory`.
const DANGEROUS_COMMANDS: &[&str] = &[
    "acl",
    "config",
    "module",
    "debug",
    "shutdown",
    "replicaof",
    "slaveof",
    "failover",
    "flushall",
    "flushdb",
    "client",
    "monitor",
    "cluster",
    "sync",
    "psync",
    "migrate",
    "restore",
    "save",
    "bgsave",
    "bgrewriteaof",
];

/// `CLIENT` subcommands that only concern the caller's own connection.
const HARMLESS_CLIENT_SUBCOMMANDS: &[&str] = &["id", "info", "getname", "setname", "setinfo", "reply", "no-touch"];

/// A Redis server. Holds keysweep's admin login; never `Debug`-printed.
pub struct RedisProvider {
    name: String,
    host: String,
    port: u16,
    timeout: Duration,
    admin_user: String,
    /// Kept to log in again should the admin connection drop (and updated
    /// when keysweep rotates its own admin user's password).
    admin_password: StdMutex<SecretString>,
    admin: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    /// The limits layer: rate, timeout and the retry bound.
    gate: crate::provider::limits::Gate,
    /// TLS for every connection (admin and probes), with the name the
    /// certificate is checked against; `None`: plaintext (`redis://`).
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
}

/// What one login attempt on a fresh connection got.
enum Login {
    Accepted(String),
    WrongPass(String),
    Other(String),
}

impl RedisProvider {
    /// Connects and logs in with the admin credential (`AUTH user pass`, then
    /// `PING`). A refused login is `Unauthenticated`; a server that cannot be
    /// reached (refused, timed out) is `Unavailable`.
    pub async fn connect(name: &str, cfg: &RedisProviderConfig, resolve: &crate::provider::kind::Resolve<'_>) -> Result<Self, ProviderError> {
        let password = resolve(&cfg.admin.password)?;
        let limits = &cfg.limits;
        let gate = crate::provider::limits::Gate::new(limits);
        let op = "redis.connect";
        let Some(at) = cfg.endpoint() else {
            return Err(ProviderError::new(
                ErrorKind::Config,
                op,
                "the provider's `url` is not a `redis://` or `rediss://` address (see `keysweep validate`)",
            ));
        };
        let tls = if at.tls {
            use crate::provider::tls::{rustls_config, Material};
            let config = rustls_config("redis.tls", cfg.tls.verify(), &Material::of(&cfg.tls))?;
            let n = cfg.tls.server_name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| at.host.clone());
            let name = ServerName::try_from(n.clone())
                .map_err(|e| ProviderError::new(ErrorKind::Config, op, format!("`{n}` cannot be checked against a TLS certificate: {e}")))?;
            Some((config, name))
        } else {
            None
        };
        let p = RedisProvider {
            name: name.to_string(),
            host: at.host,
            port: at.port,
            timeout: gate.timeout(),
            admin_user: cfg.admin.user.clone(),
            admin_password: StdMutex::new(password),
            admin: tokio::sync::Mutex::new(None),
            gate,
            tls,
        };
        p.admin_conn(op).await?;
        Ok(p)
    }

    fn admin_password(&self) -> SecretString {
        let g = self.admin_password.lock().unwrap_or_else(|e| e.into_inner());
        SecretString::from(g.expose_secret().to_string())
    }

    async fn permit(&self) -> crate::provider::limits::Sent<'_> {
        self.gate.pace().await
    }

    /// A new connection that has not logged in. Its settings hold no password.
    /// With TLS, the handshake is rustls's with the provider's settings (the
    /// shared `tls:` block); never a fallback to plaintext.
    async fn open(&self) -> Result<MultiplexedConnection, RedisError> {
        let cfg = AsyncConnectionConfig::new().set_connection_timeout(self.timeout).set_response_timeout(self.timeout);
        let Some((config, name)) = &self.tls else {
            let info = ConnectionInfo { addr: ConnectionAddr::Tcp(self.host.clone(), self.port), redis: RedisConnectionInfo::default() };
            return Client::open(info)?.get_multiplexed_async_connection_with_config(&cfg).await;
        };
        let handshake = async {
            let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port)).await?;
            tcp.set_nodelay(true)?;
            tokio_rustls::TlsConnector::from(config.clone()).connect(name.clone(), tcp).await
        };
        let stream = match tokio::time::timeout(self.timeout, handshake).await {
            Ok(s) => s?,
            Err(_) => {
                let what = format!("TLS connection: no answer within {:?}", self.timeout);
                return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, what).into());
            }
        };
        let (conn, driver) = MultiplexedConnection::new_with_config(&RedisConnectionInfo::default(), stream, cfg).await?;
        tokio::spawn(driver);
        Ok(conn)
    }

    /// The admin connection, logging in (again) if there is none.
    async fn admin_conn(&self, op: &'static str) -> Result<MultiplexedConnection, ProviderError> {
        let mut slot = self.admin.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let pw = self.admin_password();
        let login = self.permit().await;
        let mut conn = self.open().await.map_err(|e| self.err(op, &e, &[&pw]))?;
        auth(&mut conn, &self.admin_user, &pw).await.map_err(|e| {
            let mut err = self.err(op, &e, &[&pw]);
            if e.code() == Some("WRONGPASS") {
                err = ProviderError::new(
                    ErrorKind::Unauthenticated,
                    op,
                    format!("{}: the admin login `{}` was refused: {}", self.addr(), self.admin_user, describe(&e, &[&pw])),
                );
            } else if describe(&e, &[&pw]).contains("wrong number of arguments for 'auth'") {
                err.kind = ErrorKind::Unsupported;
                err.message = format!("{}: the server has no ACL users (Redis 6 or later is needed): {}", self.addr(), err.message);
            }
            err
        })?;
        drop(login);
        let _sent = self.permit().await;
        redis::cmd("PING").query_async::<()>(&mut conn).await.map_err(|e| self.err(op, &e, &[&pw]))?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    fn addr(&self) -> String {
        let scheme = if self.tls.is_some() { "rediss" } else { "redis" };
        format!("{scheme}://{}:{}", host_in_url(&self.host), self.port)
    }

    /// A `ProviderError` from a redis-rs error, its text redacted of `secrets`.
    fn err(&self, op: &'static str, e: &RedisError, secrets: &[&SecretString]) -> ProviderError {
        let text = describe(e, secrets);
        if let Some(fix) = tls_refusal(&text) {
            // Not temporary: retrying does not change a certificate.
            return ProviderError::new(ErrorKind::Config, op, format!("{}: {text}; {fix}", self.addr()));
        }
        let kind = if e.is_io_error() || e.is_timeout() || e.is_connection_refusal() || e.is_connection_dropped() {
            ErrorKind::Unavailable
        } else {
            match e.code() {
                Some("WRONGPASS") | Some("NOAUTH") => ErrorKind::Unauthenticated,
                Some("NOPERM") => ErrorKind::PermissionDenied,
                Some("LOADING") | Some("BUSY") | Some("MASTERDOWN") | Some("TRYAGAIN") | Some("CLUSTERDOWN") => ErrorKind::Unavailable,
                _ => ErrorKind::Other,
            }
        };
        ProviderError::new(kind, op, format!("{}: {text}", self.addr()))
    }

    /// Runs one command as the admin. A broken connection is dropped, so the
    /// next command logs in again.
    async fn admin_query(&self, op: &'static str, cmd: &redis::Cmd, secrets: &[&SecretString]) -> Result<Value, ProviderError> {
        let mut conn = self.admin_conn(op).await?;
        let _sent = self.permit().await;
        match cmd.query_async::<Value>(&mut conn).await {
            Ok(v) => Ok(v),
            Err(e) => {
                if e.is_io_error() || e.is_unrecoverable_error() {
                    *self.admin.lock().await = None;
                }
                Err(self.err(op, &e, secrets))
            }
        }
    }

    async fn getuser(&self, op: &'static str, user: &str) -> Result<Option<AclUser>, ProviderError> {
        let v = self.admin_query(op, redis::cmd("ACL").arg("GETUSER").arg(user), &[]).await?;
        Ok(match v {
            Value::Nil => None,
            v => Some(AclUser::parse(&v)),
        })
    }

    /// Persists the ACLs when the server keeps them in an ACL file.
    async fn acl_save(&self, op: &'static str) -> Result<(), ProviderError> {
        match self.admin_query(op, &redis::cmd("ACL").arg("SAVE").clone(), &[]).await {
            Ok(_) => Ok(()),
            Err(e) if e.message.contains("not configured to use an ACL file") => Ok(()),
            Err(e) => Err(ProviderError {
                message: format!("the change is made in memory, but ACL SAVE failed, so a restart would undo it: {}", e.message),
                ..e
            }),
        }
    }

    /// Logs in as `user` on a new connection.
    async fn try_login(&self, user: &str, password: &SecretString) -> Login {
        let _sent = self.permit().await;
        let mut conn = match self.open().await {
            Ok(c) => c,
            Err(e) => {
                let text = describe(&e, &[password]);
                let fix = tls_refusal(&text).map(|f| format!("; {f}")).unwrap_or_default();
                return Login::Other(format!("connecting to {}: {text}{fix}", self.addr()));
            }
        };
        match auth(&mut conn, user, password).await {
            Ok(()) => {
                let ping = match redis::cmd("PING").query_async::<String>(&mut conn).await {
                    Ok(p) => p,
                    Err(e) => describe(&e, &[password]),
                };
                Login::Accepted(format!("AUTH as `{user}` accepted by {} (PING: {ping})", self.addr()))
            }
            Err(e) if e.code() == Some("WRONGPASS") => {
                Login::WrongPass(format!("AUTH as `{user}` refused by {}: {}", self.addr(), describe(&e, &[password])))
            }
            Err(e) => Login::Other(format!("AUTH as `{user}` at {}: {}", self.addr(), describe(&e, &[password]))),
        }
    }

    /// Makes sure `user` exists; creates the other account of an alternating
    /// pair from its partner's rules when `create_clone` allows it.
    async fn ensure_account(&self, t: &DbAccountTarget, user: &str, op: &'static str) -> Result<(), ProviderError> {
        if self.getuser(op, user).await?.is_some() {
            return Ok(());
        }
        let Some(source) = t.partner(user).filter(|_| t.create_clone) else { return Err(missing(op, user, t, NOUN, CLONE_HOW)) };
        let Some(src) = self.getuser(op, source).await? else {
            return Err(ProviderError::new(ErrorKind::NotFound, op, format!("neither ACL user `{user}` nor `{source}` exists")));
        };
        let mut cmd = redis::cmd("ACL");
        cmd.arg("SETUSER").arg(user);
        for rule in src.clone_rules() {
            cmd.arg(rule);
        }
        self.admin_query(op, &cmd, &[]).await?;
        self.acl_save(op).await?;
        tracing::info!(provider = %self.name, user, from = source, "created the alternate ACL user with its partner's rules (off, no password)");
        Ok(())
    }
}

/// `AUTH user password` on a connection that has not logged in.
async fn auth(conn: &mut MultiplexedConnection, user: &str, password: &SecretString) -> Result<(), RedisError> {
    redis::cmd("AUTH").arg(user).arg(password.expose_secret()).query_async::<()>(conn).await
}

/// The fix for a refused TLS connection, if `text` is one.
fn tls_refusal(text: &str) -> Option<String> {
    crate::provider::tls::refusal(text, "tls.ca_cert")
}

/// A host as written in a URL (an IPv6 address in brackets).
fn host_in_url(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// Error text of redis-rs, redacted of the secrets involved and scrubbed.
fn describe(e: &RedisError, secrets: &[&SecretString]) -> String {
    scrub(&redact_all(&e.to_string(), secrets))
}

fn db<'a>(target: &'a Target, op: &'static str) -> Result<&'a DbAccountTarget, ProviderError> {
    match target {
        Target::RedisAclUser(t) => Ok(t),
        other => Err(ProviderError::new(ErrorKind::Unsupported, op, format!("redis provider does not handle `{}`", other.kind()))),
    }
}

// ---- ACL GETUSER, as RESP2 (alternating keys and values) or RESP3 (a map).

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Okay => Some("OK".into()),
        _ => None,
    }
}

fn pairs(v: &Value) -> Vec<(String, &Value)> {
    match v {
        Value::Array(a) => a.chunks(2).filter_map(|c| Some((text(&c[0])?, c.get(1)?))).collect(),
        Value::Map(m) => m.iter().filter_map(|(k, v)| Some((text(k)?, v))).collect(),
        _ => vec![],
    }
}

/// A list answer (Redis 6: arrays) or a space-separated string (Redis 7).
fn words(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) | Value::Set(a) => a.iter().filter_map(text).collect(),
        Value::Nil => vec![],
        other => text(other).map(|s| s.split_whitespace().map(str::to_string).collect()).unwrap_or_default(),
    }
}

/// The permission rules of a user or of one of its selectors.
#[derive(Debug, Clone, Default, PartialEq)]
struct Rules {
    commands: Vec<String>,
    keys: Vec<String>,
    channels: Vec<String>,
}

impl Rules {
    fn parse(fields: &[(String, &Value)]) -> Rules {
        let mut r = Rules::default();
        for (k, v) in fields {
            match k.as_str() {
                "commands" => r.commands = words(v),
                // Redis 6 lists bare patterns; Redis 7 gives them with their prefix.
                "keys" => {
                    r.keys = words(v)
                        .into_iter()
                        .map(|p| if p.starts_with('~') || p.starts_with('%') || p == "allkeys" { p } else { format!("~{p}") })
                        .collect()
                }
                "channels" => {
                    r.channels = words(v).into_iter().map(|p| if p.starts_with('&') || p == "allchannels" { p } else { format!("&{p}") }).collect()
                }
                _ => {}
            }
        }
        r
    }
    fn all(&self) -> impl Iterator<Item = &String> {
        self.keys.iter().chain(&self.channels).chain(&self.commands)
    }
}

/// What `ACL GETUSER` says of a user. Password hashes are counted, never kept.
#[derive(Debug, Clone, Default)]
struct AclUser {
    flags: Vec<String>,
    passwords: usize,
    rules: Rules,
    selectors: Vec<Rules>,
}

impl AclUser {
    fn parse(v: &Value) -> AclUser {
        let fields = pairs(v);
        let mut u = AclUser { rules: Rules::parse(&fields), ..Default::default() };
        for (k, v) in &fields {
            match k.as_str() {
                "flags" => u.flags = words(v),
                "passwords" => {
                    u.passwords = match v {
                        Value::Array(a) | Value::Set(a) => a.len(),
                        _ => 0,
                    }
                }
                "selectors" => {
                    if let Value::Array(a) = v {
                        u.selectors = a.iter().map(|s| Rules::parse(&pairs(s))).collect();
                    }
                }
                _ => {}
            }
        }
        u
    }
    fn flag(&self, f: &str) -> bool {
        self.flags.iter().any(|x| x == f)
    }
    fn enabled(&self) -> bool {
        self.flag("on") && !self.flag("off")
    }
    /// May run every command, or commands that administer the server or its users.
    fn privileged(&self) -> bool {
        if self.flag("allcommands") {
            return true;
        }
        self.rules.commands.iter().chain(self.selectors.iter().flat_map(|s| s.commands.iter())).any(|c| {
            let Some(c) = c.strip_prefix('+') else { return false };
            let c = c.to_ascii_lowercase();
            match c.strip_prefix('@') {
                Some(cat) => matches!(cat, "all" | "admin" | "dangerous"),
                None => {
                    let (cmd, sub) = c.split_once('|').unwrap_or((c.as_str(), ""));
                    DANGEROUS_COMMANDS.contains(&cmd) && !(cmd == "client" && HARMLESS_CLIENT_SUBCOMMANDS.contains(&sub))
                }
            }
        })
    }
    /// `ACL SETUSER` rules giving a new user this user's permissions: its
    /// command rules, key patterns (with their read/write prefixes), pub/sub
    /// channel patterns, selectors, and the payload-sanitizing flag. Not
    /// copied: passwords and `nopass` (the clone gets its own password when it
    /// is rotated), and `on` — the clone starts `off`.
    fn clone_rules(&self) -> Vec<String> {
        let mut out: Vec<String> = vec!["reset".into(), "resetchannels".into()];
        out.extend(
            self.flags
                .iter()
                .filter(|f| matches!(f.as_str(), "allkeys" | "allchannels" | "allcommands" | "skip-sanitize-payload" | "sanitize-payload"))
                .cloned(),
        );
        out.extend(self.rules.all().cloned());
        for s in &self.selectors {
            out.push(format!("({})", s.all().cloned().collect::<Vec<_>>().join(" ")));
        }
        out
    }
}

#[async_trait]
impl Provider for RedisProvider {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn current_handle(&self, target: &Target, stored: Option<&Handle>) -> Result<Handle, ProviderError> {
        let t = db(target, "redis.current_handle")?;
        let user = stored.map(|s| t.user_in(s)).unwrap_or(t.user.as_str());
        check_in_pair(t, user, "redis.current_handle", NOUN)?;
        Ok(one(user))
    }

    fn handle_from_fields(&self, target: &Target, fields: &BTreeMap<String, String>) -> Handle {
        match target {
            Target::RedisAclUser(t) => one(t.user_in(fields)),
            _ => Handle::new(),
        }
    }

    async fn mint(&self, target: &Target, _old: &Handle, _nonce: &str) -> Result<Minted, ProviderError> {
        Err(ProviderError::new(
            ErrorKind::Unsupported,
            "redis.mint",
            format!("redis does not mint `{}`: keysweep generates the password", target.kind()),
        ))
    }

    async fn cleanup_minted(&self, _t: &Target, _o: &Handle, _n: &str, _k: Option<&Handle>) -> Result<usize, ProviderError> {
        Ok(0)
    }

    /// Single user: the same account. Alternating users: the account not in
    /// service. That account must exist, unless `create_clone` lets `apply`
    /// create it.
    async fn new_fields(&self, target: &Target, old: &Handle) -> Result<BTreeMap<String, String>, ProviderError> {
        let op = "redis.new_fields";
        let t = db(target, op)?;
        let current = t.user_in(old);
        check_in_pair(t, current, op, NOUN)?;
        let user = match &t.alternate_with {
            None => t.user.as_str(),
            Some(_) => t.partner(current).unwrap_or(t.user.as_str()),
        };
        if self.getuser(op, user).await?.is_none() && !(t.create_clone && t.partner(user).is_some()) {
            return Err(missing(op, user, t, NOUN, CLONE_HOW));
        }
        Ok(one(user))
    }

    /// `ACL SETUSER <u> on resetpass ><new>`: afterwards the new password is
    /// the user's only one. Idempotent.
    async fn apply(&self, target: &Target, new: &Delivered) -> Result<(), ProviderError> {
        let op = "redis.apply";
        let t = db(target, op)?;
        let user = t.user_in(&new.fields);
        check_in_pair(t, user, op, NOUN)?;
        if new.value.expose_secret().is_empty() {
            return Err(ProviderError::new(ErrorKind::Config, op, "refusing to set an empty password"));
        }
        self.ensure_account(t, user, op).await?;
        let mut cmd = redis::cmd("ACL");
        cmd.arg("SETUSER").arg(user).arg("on").arg("resetpass");
        {
            let rule = zeroize::Zeroizing::new(format!(">{}", new.value.expose_secret()));
            cmd.arg(rule.as_str());
        }
        let r = self.admin_query(op, &cmd, &[&new.value]).await;
        drop(cmd);
        r?;
        self.acl_save(op).await?;
        if user == self.admin_user {
            // keysweep's own login changed: log in with the new one from now on.
            *self.admin_password.lock().unwrap_or_else(|e| e.into_inner()) = SecretString::from(new.value.expose_secret().to_string());
        }
        Ok(())
    }

    /// A new connection: `AUTH <u> <new>`. Accepted → alive; `WRONGPASS` → dead.
    async fn test(&self, target: &Target, new: &Delivered, handle: &Handle) -> Verdict {
        let Target::RedisAclUser(t) = target else { return Verdict::Unknown(format!("redis provider does not handle `{}`", target.kind())) };
        let user = new.fields.get(USERNAME).map(String::as_str).filter(|s| !s.is_empty()).unwrap_or_else(|| t.user_in(handle));
        if !t.in_pair(user) {
            return Verdict::Unknown(format!("ACL user `{user}` is not this credential's account"));
        }
        match self.try_login(user, &new.value).await {
            Login::Accepted(e) => Verdict::Alive(e),
            Login::WrongPass(e) => Verdict::Dead(e),
            Login::Other(e) => Verdict::Unknown(e),
        }
    }

    /// `ACL SETUSER <u> off resetpass ><random>` (disabling does not change
    /// the refusal code: still `WRONGPASS`), then `CLIENT KILL USER <u>` to end
    /// the sessions that logged in before. A missing user is already retired.
    /// Retried here (the engine adds no retry of its own): retiring is idempotent.
    async fn retire(&self, target: &Target, old: &Handle) -> Result<(), ProviderError> {
        crate::provider::limits::retry(self.gate.retry_policy(), || self.retire_once(target, old)).await
    }

    /// With the old value: `AUTH` on a new connection (`WRONGPASS` → dead,
    /// accepted → alive). Without: `ACL GETUSER` — gone, `off`, or no password
    /// (and not `nopass`) → dead; `on` with `nopass` → alive; else unknown.
    async fn verify_dead(&self, target: &Target, old: &Handle, old_value: Option<&SecretString>) -> Verdict {
        let Target::RedisAclUser(t) = target else { return Verdict::Unknown(format!("redis provider does not handle `{}`", target.kind())) };
        let user = t.user_in(old);
        if !t.in_pair(user) {
            return Verdict::Unknown(format!("ACL user `{user}` is not this credential's account"));
        }
        if let Some(v) = old_value {
            return match self.try_login(user, v).await {
                Login::Accepted(e) => Verdict::Alive(e),
                Login::WrongPass(e) => Verdict::Dead(e),
                Login::Other(e) => Verdict::Unknown(e),
            };
        }
        match self.getuser("redis.verify_dead", user).await {
            Err(e) => Verdict::Unknown(e.to_string()),
            Ok(None) => Verdict::Dead(format!("ACL GETUSER: no user `{user}` on {}", self.addr())),
            Ok(Some(u)) if !u.enabled() => Verdict::Dead(format!("ACL GETUSER: `{user}` is off (AUTH answers WRONGPASS)")),
            Ok(Some(u)) if u.flag("nopass") => Verdict::Alive(format!("ACL GETUSER: `{user}` is on with nopass (any password is accepted)")),
            Ok(Some(u)) if u.passwords == 0 => Verdict::Dead(format!("ACL GETUSER: `{user}` has no password left")),
            Ok(Some(u)) => Verdict::Unprovable(format!(
                "ACL GETUSER: `{user}` is on with {} password(s); which ones cannot be told without the old value",
                u.passwords
            )),
        }
    }

    /// Every ACL user (`ACL USERS` + `ACL GETUSER`): flags, how many
    /// passwords (never the hashes), whether it is privileged, its rules.
    async fn inventory(&self) -> Result<Vec<InventoryItem>, ProviderError> {
        let op = "redis.inventory";
        let users = words(&self.admin_query(op, &redis::cmd("ACL").arg("USERS").clone(), &[]).await?);
        let mut items = vec![];
        for user in users {
            let Some(u) = self.getuser(op, &user).await? else { continue };
            let mut details = BTreeMap::new();
            details.insert("flags".into(), u.flags.join(" "));
            details.insert("enabled".into(), u.enabled().to_string());
            details.insert("nopass".into(), u.flag("nopass").to_string());
            details.insert("passwords".into(), u.passwords.to_string());
            details.insert("privileged".into(), u.privileged().to_string());
            details.insert("commands".into(), u.rules.commands.join(" "));
            details.insert("keys".into(), u.rules.keys.join(" "));
            details.insert("channels".into(), u.rules.channels.join(" "));
            if !u.selectors.is_empty() {
                details.insert("selectors".into(), u.selectors.len().to_string());
            }
            items.push(InventoryItem {
                kind: "redis_acl_user".into(),
                id: user,
                created: None,
                rotated: None,
                last_used: None,
                usage_tracked: false,
                details,
            });
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn getuser_of_redis7_is_parsed_and_cloned_without_passwords() {
        let v = Value::Array(vec![
            bulk("flags"),
            Value::Array(vec![bulk("on"), bulk("sanitize-payload")]),
            bulk("passwords"),
            Value::Array(vec![bulk("c592df4a86933b92addc9842402ddf198c638ea9be58916ee6e3734e1e3152f8")]),
            bulk("commands"),
            bulk("-@all +set +get"),
            bulk("keys"),
            bulk("%R~ro:* ~app:*"),
            bulk("channels"),
            bulk("&chan*"),
            bulk("selectors"),
            Value::Array(vec![Value::Array(vec![bulk("commands"), bulk("-@all +hget"), bulk("keys"), bulk("~h:*"), bulk("channels"), bulk("")])]),
        ]);
        let u = AclUser::parse(&v);
        assert!(u.enabled());
        assert_eq!(u.passwords, 1);
        assert!(!u.privileged());
        let rules = u.clone_rules().join(" ");
        assert_eq!(rules, "reset resetchannels sanitize-payload %R~ro:* ~app:* &chan* -@all +set +get (~h:* -@all +hget)");
        assert!(!format!("{u:?}").contains("c592df4a"));
    }

    #[test]
    fn getuser_of_redis6_patterns_get_their_prefix() {
        let v = Value::Array(vec![
            bulk("flags"),
            Value::Array(vec![bulk("off"), bulk("allcommands")]),
            bulk("passwords"),
            Value::Array(vec![]),
            bulk("commands"),
            bulk("+@all"),
            bulk("keys"),
            Value::Array(vec![bulk("app:*")]),
            bulk("channels"),
            Value::Array(vec![bulk("news")]),
        ]);
        let u = AclUser::parse(&v);
        assert!(!u.enabled());
        assert!(u.privileged());
        assert_eq!(u.rules.keys, vec!["~app:*"]);
        assert_eq!(u.rules.channels, vec!["&news"]);
    }

    #[test]
    fn privileged_means_admin_or_dangerous_commands() {
        let u = |cmds: &str| AclUser {
            rules: Rules { commands: cmds.split(' ').map(String::from).collect(), ..Default::default() },
            ..Default::default()
        };
        assert!(u("+@all").privileged());
        assert!(u("-@all +@admin").privileged());
        assert!(u("-@all +config|get").privileged());
        assert!(u("-@all +ACL").privileged());
        assert!(!u("-@all +@read +@write -flushall").privileged());
        assert!(!u("-@all +get +client|id +client|setname").privileged());
        assert!(u("-@all +client|kill").privileged());
    }
}

// -- the playbook side ----------------------------------------------------

#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisProviderConfig {
    /// The server as a URL: `rediss://host:port` (TLS, verified against
    /// `tls.ca_cert`, else the system's roots) or `redis://host:port`
    /// (plaintext). Instead of `host`/`port`. No user, password, database or
    /// `#insecure` in it.
    pub url: Option<String>,
    /// The server's host, reached in plaintext (as `redis://host:port`);
    /// default `127.0.0.1`. A host that is not loopback needs `url: rediss://…`
    /// (or `allow_plaintext: true`).
    pub host: Option<String>,
    /// Default 6379.
    pub port: Option<u16>,
    pub admin: crate::providers::account::AdminLogin,
    #[serde(default)]
    pub limits: crate::playbook::model::Limits,
    /// TLS settings of a `rediss://` URL: the CA (`ca_cert`/`ca_path`), a
    /// client certificate (`client_cert`/`client_key`), `server_name`, and
    /// `insecure_skip_verify` (reported by `plan` and at every connection).
    #[serde(default)]
    pub tls: crate::provider::tls::TlsConfig,
    /// Allow plaintext (`redis://`, or `host:`) to a host that is not
    /// loopback. Without it such a playbook does not load: the admin login
    /// would cross the network unencrypted. `plan` reports it.
    #[serde(default)]
    pub allow_plaintext: bool,
}

const REDIS_PORT: u16 = 6379;

/// Where a Redis provider connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `rediss://`.
    pub tls: bool,
    /// Without brackets (an IPv6 address as it is).
    pub host: String,
    pub port: u16,
}

impl RedisProviderConfig {
    /// Where keysweep connects, and whether with TLS: the `url`, else `host`
    /// and `port` in plaintext. `None`: the `url` is not usable (`check`
    /// says why).
    pub fn endpoint(&self) -> Option<Endpoint> {
        let Some(u) = &self.url else {
            return Some(Endpoint {
                tls: false,
                host: self.host.clone().unwrap_or_else(crate::providers::account::localhost),
                port: self.port.unwrap_or(REDIS_PORT),
            });
        };
        let url = reqwest::Url::parse(u.trim()).ok()?;
        let tls = match url.scheme() {
            "rediss" => true,
            "redis" => false,
            _ => return None,
        };
        let host = url.host_str().filter(|h| !h.is_empty())?.trim_start_matches('[').trim_end_matches(']').to_string();
        Some(Endpoint { tls, host, port: url.port().unwrap_or(REDIS_PORT) })
    }
}

fn check_config(c: &RedisProviderConfig, allow_link_local: bool) -> Vec<crate::provider::kind::Problem> {
    use crate::provider::kind::Problem;
    let mut out = vec![];
    let at: &[&str] = if c.url.is_some() { &["url"] } else { &["host"] };
    match &c.url {
        Some(u) => {
            if c.host.is_some() || c.port.is_some() {
                out.push(Problem::new(
                    &["url"],
                    "both `url` and `host`/`port` are set",
                    "keep one: `url: rediss://host:port` (TLS), or `host:`/`port:` (plaintext)",
                ));
            }
            if let Some((m, h)) = crate::playbook::rules::address_problem(u, &["rediss", "redis"], allow_link_local) {
                out.push(Problem::new(&["url"], m, h.replace("vault.internal:8200", "redis.internal:6379")));
                return out;
            }
            if let Ok(url) = reqwest::Url::parse(u.trim()) {
                if url.fragment() == Some("insecure") {
                    out.push(Problem::new(
                        &["url"],
                        "`#insecure` in the URL would turn certificate verification off silently",
                        "remove it; name the server's CA in `tls.ca_cert` (or, for a test server only, set `tls.insecure_skip_verify: true`, which `plan` reports)",
                    ));
                } else if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
                    out.push(Problem::new(
                        &["url"],
                        "the URL has a path, query or fragment: keysweep uses only the scheme, host and port (ACL users belong to the whole server)",
                        "write `rediss://host:port`",
                    ));
                }
            }
        }
        None => out
            .extend(crate::providers::account::host_problems(&c.host.clone().unwrap_or_else(crate::providers::account::localhost), allow_link_local)),
    }
    let Some(e) = c.endpoint() else { return out };
    if !e.tls && !crate::playbook::rules::is_loopback_host(&e.host) && !c.allow_plaintext {
        out.push(Problem::new(
            at,
            format!("plaintext (`redis://`) to `{}`, which is not loopback: keysweep's admin login and every password it sets would cross the network unencrypted", e.host),
            format!("write `url: rediss://{}:{}` (the server's TLS port) and name its CA in `tls: {{ ca_cert: … }}`; if this network path really is trusted, set `allow_plaintext: true` on the provider, which `plan` then reports", host_in_url(&e.host), e.port),
        ));
    }
    if !e.tls && c.tls.is_set() {
        out.push(Problem::new(
            &["tls"],
            "`tls` is set but the connection is plaintext (`redis://`): nothing would use it",
            "write the server as `url: rediss://host:port`, or remove `tls:`",
        ));
    }
    out.extend(c.tls.check(&["tls"]));
    out
}

fn config_warnings(c: &RedisProviderConfig) -> Vec<String> {
    let Some(e) = c.endpoint() else { return vec![] };
    if e.tls {
        c.tls.warnings()
    } else if !crate::playbook::rules::is_loopback_host(&e.host) {
        vec![format!(
            "plaintext `redis://` to `{}` (allow_plaintext: true): the admin login and every password set cross the network unencrypted",
            e.host
        )]
    } else {
        vec![]
    }
}

crate::account_provider_kind!(RedisProviderConfig, RedisProvider, check: check_config, warnings: config_warnings);

crate::account_kind!(AclUserKind, host_allowed: false, host_kind: "mysql_user", name: |_t, u| u.to_string(), match_key: |id| id.to_string(), draft: |id| format!("user: {}", crate::provider::kind::yaml_str(id)));

impl RedisProvider {
    async fn retire_once(&self, target: &Target, old: &Handle) -> Result<(), ProviderError> {
        let op = "redis.retire";
        let t = db(target, op)?;
        let user = t.user_in(old);
        check_in_pair(t, user, op, NOUN)?;
        if self.getuser(op, user).await?.is_none() {
            return Ok(());
        }
        let scramble = GeneratePolicy { length: 64, ..Default::default() }.generate();
        let mut cmd = redis::cmd("ACL");
        cmd.arg("SETUSER").arg(user).arg("off").arg("resetpass");
        {
            let rule = zeroize::Zeroizing::new(format!(">{}", scramble.expose_secret()));
            cmd.arg(rule.as_str());
        }
        let r = self.admin_query(op, &cmd, &[&scramble]).await;
        drop(cmd);
        r?;
        self.acl_save(op).await?;
        match self.admin_query(op, redis::cmd("CLIENT").arg("KILL").arg("USER").arg(user), &[]).await {
            Ok(Value::Int(n)) if n > 0 => {
                tracing::info!(provider = %self.name, user, sessions = n, "ended the retired ACL user's open sessions")
            }
            Ok(_) => {}
            Err(e) if e.is_temporary() => return Err(e),
            // "No such user" (deleted meanwhile), or the admin may not run CLIENT KILL.
            Err(e) => {
                tracing::warn!(provider = %self.name, user, error = %e, "could not end the retired ACL user's open sessions")
            }
        }
        Ok(())
    }
}
