//! PostgreSQL: login roles' passwords (`postgres_role`).
//!
//! keysweep logs in as a separate admin role (superuser, or `CREATEROLE` for
//! roles that are not superusers; from PostgreSQL 16 on, `CREATEROLE` also
//! needs `ADMIN OPTION` on each role it rotates, which it has on the roles it
//! created, clones included) over one connection that concurrent
//! credentials share (tokio-postgres pipelines their statements; a dropped
//! connection is opened again on next use), and sets passwords with
//! `ALTER ROLE "<role>" WITH LOGIN PASSWORD '…'`. `ALTER ROLE` takes no bind
//! parameters, so the statement is built here: the role name is quoted as an
//! identifier (`"` doubled; NUL and names longer than PostgreSQL's 63 bytes
//! refused, which the server would otherwise silently truncate to another
//! name), and the password is not sent at all when it can be avoided:
//! - when the server's `password_encryption` is `scram-sha-256` (the default
//!   since PostgreSQL 14) and the password is ASCII, keysweep computes the
//!   SCRAM-SHA-256 verifier itself (random 16-byte salt, 4096 iterations, as
//!   libpq's `PQencryptPasswordConn` and psql's `\password` do) and sends only
//!   that. PostgreSQL logs a failing statement with its text (`STATEMENT:
//!   ALTER ROLE … PASSWORD '…'`, checked on 15.18), and `log_statement` or
//!   `pg_stat_statements` may keep successful ones: a verifier there is no
//!   login. ASCII passwords need no SASLprep (PostgreSQL and the clients use
//!   them as they are), so the verifier is the one the server would compute;
//! - otherwise (an `md5` server, whose older clients may not speak SCRAM, or a
//!   non-ASCII password, which needs SASLprep) the password is sent as a
//!   string literal, `'` doubled, and as `E'…'` with `\` doubled when it holds
//!   a backslash, so it reads the same whatever `standard_conforming_strings`
//!   says. A password with a NUL character is refused.
//!
//! Errors are redacted of the passwords (and verifiers) involved before they
//! are kept, and the server's text is shortened and scrubbed.
//!
//! Proof of death, from the server's own answers (checked against PostgreSQL
//! 15.18 with `scram-sha-256` in `pg_hba.conf`): a login with a wrong password
//! is refused with SQLSTATE `28P01` (`password authentication failed`), and so
//! is a login as a role that does not exist, one with no password, one whose
//! `VALID UNTIL` has passed, and a `NOLOGIN` role with a *wrong* password:
//! the password is checked before `rolcanlogin`. Only the right password of a
//! `NOLOGIN` role gets `28000` (`role "…" is not permitted to log in`) — the
//! code `pg_hba.conf` rejections share, so `28000` is never proof. So
//! `retire` both removes the password (`PASSWORD NULL`: no value at all can
//! match it, and there is no new secret to keep) and sets `NOLOGIN` without
//! changing the refusal code of the old password. Only `28P01` counts as
//! dead; anything else (timeouts, refused connections, `57P03` starting up,
//! `53300` too many connections, `28000`, other errors) is unknown.
//! Admin-side (no old value to probe with), `pg_roles` showing the role gone,
//! `rolcanlogin = false`, or its `VALID UNTIL` passed is proof; a role that
//! can still log in is unknown.
//!
//! `NOLOGIN` and a new password leave sessions that logged in before working,
//! so `retire` also ends them with `pg_terminate_backend` (sparing keysweep's
//! own session). That needs superuser, or membership in `pg_signal_backend`
//! for sessions of roles that are not superusers; without it the sessions are
//! left and a warning says so.
//!
//! `create_clone` creates the missing `alternate_with` role as
//! `CREATE ROLE "<clone>" WITH LOGIN INHERIT [CREATEDB] [CONNECTION LIMIT n];
//! GRANT "<user>" TO "<clone>"`: membership gives the clone every privilege of
//! `user` (including those of the objects `user` owns, and of the roles
//! `user` inherits from), which is what copying grants one by one would aim
//! for. What membership does not carry: role attributes other than those two
//! (`SUPERUSER`, `CREATEROLE`, `REPLICATION`, `BYPASSRLS` are not copied),
//! per-role settings (`ALTER ROLE … SET`), and ownership (objects the clone
//! creates belong to the clone). The clone has no password until `apply`.

use std::collections::BTreeMap;
use std::error::Error as _;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tokio_postgres::{Client, Config, NoTls};
use zeroize::Zeroize;

use super::account::DbAccountTarget;
use super::account::{check_in_pair, missing, one, USERNAME};
use super::pg_tls::{self, SslMode};
use crate::playbook::model::Target;
use crate::provider::{ErrorKind, Handle, InventoryItem, Minted, Provider, ProviderError, Verdict};
use crate::secret::{redact_all, scrub, Delivered, ExposeSecret, SecretString};

/// The handle key (and store field) naming the role a password belongs to.
const NOUN: &str = "role";
const CLONE_HOW: &str = "as a member of the other role";

/// PostgreSQL's longest identifier (NAMEDATALEN - 1 bytes); longer names are truncated by the server.
const MAX_IDENT_BYTES: usize = 63;

const SCRAM_ITERATIONS: u32 = 4096;

/// A PostgreSQL server. Holds keysweep's admin login; never `Debug`-printed.
pub struct PostgresProvider {
    name: String,
    host: String,
    port: u16,
    database: String,
    timeout: Duration,
    admin_user: String,
    /// Kept to log in again should the admin connection drop (and updated
    /// when keysweep rotates its own admin role's password).
    admin_password: StdMutex<SecretString>,
    admin: tokio::sync::Mutex<Option<Arc<Client>>>,
    /// The limits layer: rate, timeout and the retry bound.
    gate: crate::provider::limits::Gate,
    /// The server hashes passwords with SCRAM-SHA-256 (`password_encryption`):
    /// keysweep sends verifiers it computed rather than passwords.
    scram: bool,
    /// TLS for every connection (admin and probes); `None`: `sslmode: disable`.
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// Why a connection attempt got nowhere.
enum ConnectFail {
    Pg(tokio_postgres::Error),
    Timeout,
}

/// What one login attempt on a fresh connection got.
enum Login {
    Accepted(String),
    /// SQLSTATE 28P01.
    WrongPassword(String),
    Other(String),
}

impl PostgresProvider {
    /// Connects and logs in with the admin credential (checked with
    /// `SELECT 1`). A refused login (SQLSTATE 28P01/28000) is
    /// `Unauthenticated`; a server that cannot be reached (refused, timed
    /// out, starting up, out of connections) is `Unavailable`.
    pub async fn connect(name: &str, cfg: &PostgresProviderConfig, resolve: &crate::provider::kind::Resolve<'_>) -> Result<Self, ProviderError> {
        let (cfg, _) = cfg.with_env(&|k| std::env::var(k).ok())?;
        let cfg = &cfg;
        let password = resolve(&cfg.admin.password)?;
        let limits = &cfg.limits;
        let gate = crate::provider::limits::Gate::new(limits);
        let mode = cfg.effective_sslmode();
        let tls = match mode {
            SslMode::Disable => None,
            m => Some(pg_tls::client_config(
                m,
                &pg_tls::TlsFiles { root_cert: cfg.sslrootcert.clone(), cert: cfg.sslcert.clone(), key: cfg.sslkey.clone() },
            )?),
        };
        let mut p = PostgresProvider {
            name: name.to_string(),
            host: cfg.host().to_string(),
            port: cfg.port.unwrap_or(5432),
            database: cfg.database.clone().unwrap_or_else(|| "postgres".into()),
            timeout: gate.timeout(),
            admin_user: cfg.admin.user.clone(),
            admin_password: StdMutex::new(password),
            admin: tokio::sync::Mutex::new(None),
            gate,
            scram: true,
            tls,
        };
        let op = "postgres.connect";
        p.admin_client(op).await?;
        let rows = p.admin_simple(op, "SHOW password_encryption").await?;
        let enc = rows.first().cloned().flatten().unwrap_or_default();
        p.scram = enc.eq_ignore_ascii_case("scram-sha-256");
        if !p.scram {
            tracing::info!(provider = %p.name, password_encryption = %enc, "the server does not hash with SCRAM-SHA-256: new passwords are sent for it to hash");
        }
        Ok(p)
    }

    fn admin_password(&self) -> SecretString {
        let g = self.admin_password.lock().unwrap_or_else(|e| e.into_inner());
        SecretString::from(g.expose_secret().to_string())
    }

    async fn permit(&self) -> crate::provider::limits::Sent<'_> {
        self.gate.pace().await
    }

    fn addr(&self) -> String {
        format!("postgres {}:{}", self.host, self.port)
    }

    /// A new connection logged in as `user`; its connection task is spawned.
    /// The `Config` (which holds the password) lives only in this call.
    async fn open(&self, user: &str, password: &SecretString) -> Result<(Client, tokio::task::JoinHandle<()>), ConnectFail> {
        let mut c = Config::new();
        c.host(&self.host)
            .port(self.port)
            .dbname(&self.database)
            .user(user)
            .password(password.expose_secret())
            .application_name("keysweep")
            .connect_timeout(self.timeout);
        let _sent = self.permit().await;
        let addr = self.addr();
        // Never falls back to plaintext: with TLS settings, TLS or no connection.
        match &self.tls {
            None => {
                c.ssl_mode(tokio_postgres::config::SslMode::Disable);
                connect_with(c, NoTls, self.timeout, addr).await
            }
            Some(tls) => {
                c.ssl_mode(tokio_postgres::config::SslMode::Require);
                connect_with(c, pg_tls::MakeRustls(tls.clone()), self.timeout, addr).await
            }
        }
    }

    /// The admin connection, logging in (again) if there is none or it closed.
    async fn admin_client(&self, op: &'static str) -> Result<Arc<Client>, ProviderError> {
        let mut slot = self.admin.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        *slot = None;
        let pw = self.admin_password();
        let (client, _task) = self.open(&self.admin_user, &pw).await.map_err(|f| match f {
            ConnectFail::Timeout => self.timeout_err(op, "logging in as the admin"),
            ConnectFail::Pg(e) => {
                let mut err = self.err(op, &e, &[&pw]);
                if err.kind == ErrorKind::Unauthenticated {
                    err.message = format!("{}: the admin login `{}` was refused: {}", self.addr(), self.admin_user, describe(&e, &[&pw]));
                }
                err
            }
        })?;
        match tokio::time::timeout(self.timeout, client.simple_query("SELECT 1")).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(self.err(op, &e, &[&pw])),
            Err(_) => return Err(self.timeout_err(op, "SELECT 1 as the admin")),
        }
        let c = Arc::new(client);
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Forgets the admin connection (after a timeout or a closed connection).
    async fn drop_admin(&self) {
        *self.admin.lock().await = None;
    }

    fn timeout_err(&self, op: &'static str, what: &str) -> ProviderError {
        ProviderError::new(ErrorKind::Unavailable, op, format!("{}: {what}: no answer within {:?}", self.addr(), self.timeout))
    }

    /// A `ProviderError` from a tokio-postgres error, its text redacted of `secrets`.
    fn err(&self, op: &'static str, e: &tokio_postgres::Error, secrets: &[&SecretString]) -> ProviderError {
        let text = describe(e, secrets);
        match pg_tls::tls_refusal(&text) {
            // Not temporary: retrying does not change a certificate.
            Some(hint) => ProviderError::new(ErrorKind::Config, op, format!("{}: {text}; {hint}", self.addr())),
            None => ProviderError::new(kind_of(e), op, format!("{}: {text}", self.addr())),
        }
    }

    /// Awaits one call on the admin connection within the timeout; forgets
    /// the connection when it broke or timed out. `what` names the call in a
    /// timeout error; `secrets` are redacted from any error text.
    async fn admin_call<T>(
        &self,
        op: &'static str,
        what: &str,
        secrets: &[&SecretString],
        call: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, ProviderError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                if e.is_closed() || e.code().is_none() {
                    self.drop_admin().await;
                }
                Err(self.err(op, &e, secrets))
            }
            Err(_) => {
                self.drop_admin().await;
                Err(self.timeout_err(op, what))
            }
        }
    }

    /// Runs statements (simple query protocol) as the admin. `secrets` are
    /// redacted from any error (the statement text may be echoed).
    async fn admin_batch(&self, op: &'static str, sql: &SecretString, secrets: &[&SecretString]) -> Result<(), ProviderError> {
        let c = self.admin_client(op).await?;
        let _sent = self.permit().await;
        self.admin_call(op, "statement", secrets, c.batch_execute(sql.expose_secret())).await
    }

    /// One query with bind parameters as the admin.
    async fn admin_query(
        &self,
        op: &'static str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, ProviderError> {
        let c = self.admin_client(op).await?;
        let _sent = self.permit().await;
        self.admin_call(op, "query", &[], c.query(sql, params)).await
    }

    /// A query without parameters; the first column of each row, as text.
    async fn admin_simple(&self, op: &'static str, sql: &str) -> Result<Vec<Option<String>>, ProviderError> {
        let c = self.admin_client(op).await?;
        let _sent = self.permit().await;
        let msgs = self.admin_call(op, sql, &[], c.simple_query(sql)).await?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
                _ => None,
            })
            .collect())
    }

    /// Logs in as `user` with `password` on a new connection, then closes it.
    async fn try_login(&self, user: &str, password: &SecretString) -> Login {
        if password.expose_secret().contains('\0') {
            return Login::Other("the value holds a NUL character, which no PostgreSQL password can".into());
        }
        let (client, task) = match self.open(user, password).await {
            Ok(x) => x,
            Err(ConnectFail::Timeout) => return Login::Other(format!("login as `{user}` at {}: no answer within {:?}", self.addr(), self.timeout)),
            Err(ConnectFail::Pg(e)) => {
                let text = format!("login as `{user}` refused by {}: {}", self.addr(), describe(&e, &[password]));
                return match e.code().map(|c| c.code()) {
                    Some("28P01") => Login::WrongPassword(text),
                    _ => Login::Other(text),
                };
            }
        };
        let who = match tokio::time::timeout(self.timeout, client.simple_query("SELECT session_user")).await {
            Ok(Ok(msgs)) => msgs.into_iter().find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                _ => None,
            }),
            _ => None,
        };
        drop(client);
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        match who {
            Some(w) if w == user => Login::Accepted(format!("login as `{user}` accepted by {} (session_user = {w})", self.addr())),
            Some(w) => Login::Other(format!("login as `{user}` at {} became session user `{w}`", self.addr())),
            None => Login::Accepted(format!("login as `{user}` accepted by {}", self.addr())),
        }
    }

    /// `(exists, rolcanlogin, VALID UNTIL passed, valid_until)` of a role.
    async fn role_state(&self, op: &'static str, user: &str) -> Result<Option<(bool, bool, Option<String>)>, ProviderError> {
        let rows = self
            .admin_query(
                op,
                "SELECT rolcanlogin, COALESCE(rolvaliduntil < now(), false), rolvaliduntil::text FROM pg_catalog.pg_roles WHERE rolname = $1",
                &[&user],
            )
            .await?;
        Ok(rows.first().map(|r| (r.get::<_, bool>(0), r.get::<_, bool>(1), r.get::<_, Option<String>>(2))))
    }

    /// Makes sure the account a new password goes to exists; creates the
    /// `alternate_with` role of a pair from `user` when `create_clone` allows it.
    async fn ensure_account(&self, t: &DbAccountTarget, user: &str, op: &'static str) -> Result<(), ProviderError> {
        if self.role_state(op, user).await?.is_some() {
            return Ok(());
        }
        if !(t.create_clone && t.alternate_with.as_deref() == Some(user)) {
            return Err(missing(op, user, t, NOUN, CLONE_HOW));
        }
        let rows = self.admin_query(op, "SELECT rolcreatedb, rolconnlimit FROM pg_catalog.pg_roles WHERE rolname = $1", &[&t.user]).await?;
        let Some(src) = rows.first() else {
            return Err(ProviderError::new(ErrorKind::NotFound, op, format!("neither role `{user}` nor `{}` exists", t.user)));
        };
        let (createdb, connlimit): (bool, i32) = (src.get(0), src.get(1));
        let clone = ident(user, op)?;
        let source = ident(&t.user, op)?;
        let mut sql = format!("CREATE ROLE {clone} WITH LOGIN INHERIT");
        if createdb {
            sql += " CREATEDB";
        }
        if connlimit >= 0 {
            sql += &format!(" CONNECTION LIMIT {connlimit}");
        }
        sql += &format!("; GRANT {source} TO {clone};");
        // One simple-query message: both statements or neither (implicit transaction).
        match self.admin_batch(op, &SecretString::from(sql), &[]).await {
            Ok(()) => {}
            // Created meanwhile by another run.
            Err(e) if e.kind == ErrorKind::Conflict => return Ok(()),
            Err(e) => return Err(e),
        }
        tracing::info!(provider = %self.name, role = user, from = %t.user, "created the alternate role as a member of its partner (LOGIN, no password yet)");
        Ok(())
    }

    /// Ends the sessions `user` has open (other than keysweep's own).
    async fn end_sessions(&self, op: &'static str, user: &str) {
        let sql = "SELECT count(*) FILTER (WHERE pg_catalog.pg_terminate_backend(pid)) FROM pg_catalog.pg_stat_activity \
                   WHERE usename = $1 AND pid <> pg_catalog.pg_backend_pid()";
        match self.admin_query(op, sql, &[&user]).await {
            Ok(rows) => {
                let n: i64 = rows.first().map(|r| r.get(0)).unwrap_or(0);
                if n > 0 {
                    tracing::info!(provider = %self.name, role = user, sessions = n, "ended the retired role's open sessions");
                }
            }
            Err(e) => {
                tracing::warn!(provider = %self.name, role = user, error = %e, "could not end the retired role's open sessions (keysweep's admin needs pg_signal_backend)")
            }
        }
    }
}

/// The SQLSTATE-based kind of an error; no server answer at all is `Unavailable`.
fn kind_of(e: &tokio_postgres::Error) -> ErrorKind {
    if let Some(code) = e.code() {
        let c = code.code();
        return match c {
            "28P01" | "28000" => ErrorKind::Unauthenticated,
            "42501" => ErrorKind::PermissionDenied,
            "42704" => ErrorKind::NotFound,
            "3D000" => ErrorKind::Config,
            "42710" => ErrorKind::Conflict,
            // serialization failure, deadlock, lock not available, query canceled
            "40001" | "40P01" | "55P03" | "57014" => ErrorKind::Unavailable,
            // connection exceptions, insufficient resources (53300 too many
            // connections), operator intervention (57P01 shutdown, 57P03 starting up)
            _ if c.starts_with("08") || c.starts_with("53") || c.starts_with("57P") || c.starts_with("58") => ErrorKind::Unavailable,
            _ => ErrorKind::Other,
        };
    }
    let mut src = e.source();
    while let Some(s) = src {
        if s.is::<std::io::Error>() {
            return ErrorKind::Unavailable;
        }
        src = s.source();
    }
    let text = e.to_string();
    if e.is_closed() || text.starts_with("error connecting") || text.starts_with("error communicating") || text.starts_with("timeout") {
        ErrorKind::Unavailable
    } else if text.starts_with("authentication error") {
        ErrorKind::Unauthenticated
    } else {
        ErrorKind::Other
    }
}

/// Error text of tokio-postgres (with the server's SQLSTATE, severity,
/// message, detail and hint), redacted of `secrets` and scrubbed.
fn describe(e: &tokio_postgres::Error, secrets: &[&SecretString]) -> String {
    let text = match e.as_db_error() {
        Some(d) => {
            let mut s = format!("SQLSTATE {} {}: {}", d.code().code(), d.severity(), d.message());
            if let Some(x) = d.detail() {
                s += &format!(" (detail: {x})");
            }
            if let Some(x) = d.hint() {
                s += &format!(" (hint: {x})");
            }
            s
        }
        None => {
            let mut s = e.to_string();
            let mut src = e.source();
            while let Some(x) = src {
                s += &format!(": {x}");
                src = x.source();
            }
            s
        }
    };
    scrub(&redact_all(&text, secrets))
}

fn db<'a>(target: &'a Target, op: &'static str) -> Result<&'a DbAccountTarget, ProviderError> {
    match target {
        Target::PostgresRole(t) => Ok(t),
        other => Err(ProviderError::new(ErrorKind::Unsupported, op, format!("postgres provider does not handle `{}`", other.kind()))),
    }
}

/// `"name"` with `"` doubled. Refuses what PostgreSQL cannot hold or would truncate.
pub fn quote_ident(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("an empty role name".into());
    }
    if name.contains('\0') {
        return Err("a role name with a NUL character".into());
    }
    if name.len() > MAX_IDENT_BYTES {
        return Err(format!("role name `{name}` is longer than PostgreSQL's {MAX_IDENT_BYTES} bytes (the server would truncate it to another name)"));
    }
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

fn ident(name: &str, op: &'static str) -> Result<String, ProviderError> {
    quote_ident(name).map_err(|m| ProviderError::new(ErrorKind::Config, op, m))
}

/// A string literal that reads back as `s` whatever `standard_conforming_strings`
/// says: `'…'` with `'` doubled, or `E'…'` with `\` doubled too when `s` has a
/// backslash (as libpq's `PQescapeLiteral`). Refuses NUL, which no text holds.
pub fn quote_literal(s: &str) -> Result<String, String> {
    if s.contains('\0') {
        return Err("the value holds a NUL character, which PostgreSQL cannot store".into());
    }
    if s.contains('\\') {
        Ok(format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''")))
    } else {
        Ok(format!("'{}'", s.replace('\'', "''")))
    }
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut ipad = [0x36u8; 64];
    let mut opad = [0x5cu8; 64];
    for i in 0..64 {
        ipad[i] ^= k[i];
        opad[i] ^= k[i];
    }
    let inner = Sha256::new().chain_update(ipad).chain_update(msg).finalize();
    let out: [u8; 32] = Sha256::new().chain_update(opad).chain_update(inner).finalize().into();
    k.zeroize();
    ipad.zeroize();
    opad.zeroize();
    out
}

/// PBKDF2-HMAC-SHA-256, one block: SCRAM's `Hi()` (RFC 5802).
fn scram_hi(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut first = salt.to_vec();
    first.extend_from_slice(&1u32.to_be_bytes());
    let mut u = hmac_sha256(password, &first);
    let mut out = u;
    for _ in 1..iterations {
        u = hmac_sha256(password, &u);
        for (o, x) in out.iter_mut().zip(u.iter()) {
            *o ^= x;
        }
    }
    u.zeroize();
    out
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        s.push(A[(n >> 18) as usize & 63] as char);
        s.push(A[(n >> 12) as usize & 63] as char);
        s.push(if c.len() > 1 { A[(n >> 6) as usize & 63] as char } else { '=' });
        s.push(if c.len() > 2 { A[n as usize & 63] as char } else { '=' });
    }
    s
}

/// The SCRAM-SHA-256 verifier PostgreSQL stores for `password` with `salt`
/// and 4096 iterations, as `SCRAM-SHA-256$4096:<salt>$<StoredKey>:<ServerKey>`
/// (base64). No SASLprep is applied: keysweep uses this for ASCII passwords
/// only, which PostgreSQL and its clients use as they are.
pub fn scram_sha_256_verifier(password: &[u8], salt: &[u8]) -> String {
    let mut salted = scram_hi(password, salt, SCRAM_ITERATIONS);
    let mut client_key = hmac_sha256(&salted, b"Client Key");
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac_sha256(&salted, b"Server Key");
    salted.zeroize();
    client_key.zeroize();
    format!("SCRAM-SHA-256${SCRAM_ITERATIONS}:{}${}:{}", base64(salt), base64(&stored_key), base64(&server_key))
}

fn scram_verifier(password: &[u8]) -> String {
    use rand::RngCore;
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    scram_sha_256_verifier(password, &salt)
}

#[async_trait]
impl Provider for PostgresProvider {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn current_handle(&self, target: &Target, stored: Option<&Handle>) -> Result<Handle, ProviderError> {
        let op = "postgres.current_handle";
        let t = db(target, op)?;
        let user = stored.map(|s| t.user_in(s)).unwrap_or(t.user.as_str());
        check_in_pair(t, user, op, NOUN)?;
        Ok(one(user))
    }

    fn handle_from_fields(&self, target: &Target, fields: &BTreeMap<String, String>) -> Handle {
        match target {
            Target::PostgresRole(t) => one(t.user_in(fields)),
            _ => fields.iter().filter(|(k, _)| k.as_str() == USERNAME).map(|(k, v)| (k.clone(), v.clone())).collect(),
        }
    }

    async fn mint(&self, target: &Target, _old: &Handle, _nonce: &str) -> Result<Minted, ProviderError> {
        Err(ProviderError::new(
            ErrorKind::Unsupported,
            "postgres.mint",
            format!("PostgreSQL does not mint `{}` secrets: keysweep generates them", target.kind()),
        ))
    }

    async fn cleanup_minted(&self, _t: &Target, _o: &Handle, _n: &str, _k: Option<&Handle>) -> Result<usize, ProviderError> {
        Ok(0)
    }

    /// The role the new password is for: the same one (single user), or the
    /// other of the pair, created first when `create_clone` allows it.
    async fn new_fields(&self, target: &Target, old: &Handle) -> Result<BTreeMap<String, String>, ProviderError> {
        let op = "postgres.new_fields";
        let t = db(target, op)?;
        let current = t.user_in(old);
        check_in_pair(t, current, op, NOUN)?;
        let next = match t.partner(current) {
            None => current.to_string(),
            Some(other) => {
                self.ensure_account(t, other, op).await?;
                other.to_string()
            }
        };
        Ok(one(&next))
    }

    /// `ALTER ROLE "<role>" WITH LOGIN PASSWORD '<SCRAM verifier or literal>'`.
    /// Idempotent (the same password, a new salt).
    async fn apply(&self, target: &Target, new: &Delivered) -> Result<(), ProviderError> {
        let op = "postgres.apply";
        let t = db(target, op)?;
        let user = t.user_in(&new.fields);
        check_in_pair(t, user, op, NOUN)?;
        let role = ident(user, op)?;
        let pw = new.value.expose_secret();
        let literal = if self.scram && pw.is_ascii() && !pw.contains('\0') {
            SecretString::from(format!("'{}'", scram_verifier(pw.as_bytes())))
        } else {
            SecretString::from(
                quote_literal(pw).map_err(|m| ProviderError::new(ErrorKind::Config, op, format!("the new password for `{user}`: {m}")))?,
            )
        };
        let sql = SecretString::from(format!("ALTER ROLE {role} WITH LOGIN PASSWORD {}", literal.expose_secret()));
        match self.admin_batch(op, &sql, &[&new.value, &literal]).await {
            Ok(()) => {}
            Err(e) if e.kind == ErrorKind::NotFound => return Err(missing(op, user, t, NOUN, CLONE_HOW)),
            Err(e) => return Err(e),
        }
        if user == self.admin_user {
            // keysweep rotated its own admin role: log in with the new password from now on.
            *self.admin_password.lock().unwrap_or_else(|e| e.into_inner()) = SecretString::from(pw.to_string());
        }
        Ok(())
    }

    /// A new connection as the role with the new password: accepted is
    /// `Alive`, 28P01 `Dead`, anything else (28000 included) `Unknown`.
    async fn test(&self, target: &Target, new: &Delivered, handle: &Handle) -> Verdict {
        let t = match db(target, "postgres.test") {
            Ok(t) => t,
            Err(e) => return Verdict::Unknown(e.to_string()),
        };
        let user = handle.get(USERNAME).filter(|s| !s.is_empty()).map(String::as_str).unwrap_or_else(|| t.user_in(&new.fields));
        if !t.in_pair(user) {
            return Verdict::Unknown(format!("role `{user}` is not this credential's account"));
        }
        match self.try_login(user, &new.value).await {
            Login::Accepted(e) => Verdict::Alive(e),
            Login::WrongPassword(e) => Verdict::Dead(e),
            Login::Other(e) => Verdict::Unknown(e),
        }
    }

    /// `ALTER ROLE "<role>" WITH NOLOGIN PASSWORD NULL`, then ends the role's
    /// open sessions. A role that does not exist is already retired.
    /// Retried here (the engine adds no retry of its own): retiring is idempotent.
    async fn retire(&self, target: &Target, old: &Handle) -> Result<(), ProviderError> {
        crate::provider::limits::retry(self.gate.retry_policy(), || self.retire_once(target, old)).await
    }

    /// With the old value: one login (28P01 is `Dead`, accepted is `Alive`,
    /// anything else `Unknown`). Without: `pg_roles` (role gone, `NOLOGIN`,
    /// or `VALID UNTIL` passed is `Dead`; otherwise `Unknown`).
    async fn verify_dead(&self, target: &Target, old: &Handle, old_value: Option<&SecretString>) -> Verdict {
        let op = "postgres.verify_dead";
        let t = match db(target, op) {
            Ok(t) => t,
            Err(e) => return Verdict::Unknown(e.to_string()),
        };
        let user = t.user_in(old);
        if !t.in_pair(user) {
            return Verdict::Unknown(format!("role `{user}` is not this credential's account"));
        }
        if let Some(v) = old_value {
            return match self.try_login(user, v).await {
                Login::Accepted(e) => Verdict::Alive(format!("the old password still logs in: {e}")),
                Login::WrongPassword(e) => Verdict::Dead(e),
                Login::Other(e) => Verdict::Unknown(e),
            };
        }
        match self.role_state(op, user).await {
            Ok(None) => Verdict::Dead(format!("pg_roles has no role `{user}` ({}): nothing logs in as it", self.addr())),
            Ok(Some((false, _, _))) => {
                Verdict::Dead(format!("pg_roles: `{user}` has rolcanlogin = false (NOLOGIN) on {}: no password logs in as it", self.addr()))
            }
            Ok(Some((true, true, until))) => Verdict::Dead(format!(
                "pg_roles: the password of `{user}` expired (VALID UNTIL {}) on {}: PostgreSQL refuses every password login",
                until.unwrap_or_default(),
                self.addr()
            )),
            Ok(Some((true, false, _))) => Verdict::Unprovable(format!(
                "pg_roles: `{user}` can still log in on {}; without the old value its password cannot be checked",
                self.addr()
            )),
            Err(e) => Verdict::Unknown(e.to_string()),
        }
    }

    /// Login roles from `pg_roles` (never a password hash: `pg_roles` masks
    /// them and none is selected). `privileged` when the role is superuser or
    /// can create roles, replicate the cluster or bypass row security.
    async fn inventory(&self) -> Result<Vec<InventoryItem>, ProviderError> {
        let op = "postgres.inventory";
        let rows = self
            .admin_query(
                op,
                "SELECT rolname::text, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolvaliduntil::text \
                 FROM pg_catalog.pg_roles WHERE rolcanlogin ORDER BY rolname",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let (superuser, createrole, createdb, replication, bypassrls): (bool, bool, bool, bool, bool) =
                    (r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
                let mut details = BTreeMap::from([
                    ("superuser".to_string(), superuser.to_string()),
                    ("createrole".to_string(), createrole.to_string()),
                    ("createdb".to_string(), createdb.to_string()),
                    ("replication".to_string(), replication.to_string()),
                    ("bypassrls".to_string(), bypassrls.to_string()),
                    ("privileged".to_string(), (superuser || createrole || replication || bypassrls).to_string()),
                ]);
                if let Some(v) = r.get::<_, Option<String>>(6) {
                    details.insert("valid_until".into(), v);
                }
                InventoryItem {
                    kind: "postgres_role".into(),
                    id: r.get(0),
                    created: None,
                    rotated: None,
                    last_used: None,
                    usage_tracked: false,
                    details,
                }
            })
            .collect())
    }
}

// -- the playbook side ----------------------------------------------------

#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresProviderConfig {
    /// Default: `PGHOST`, else `localhost`.
    pub host: Option<String>,
    /// Default: `PGPORT`, else 5432.
    pub port: Option<u16>,
    /// Database to connect to. Default: `PGDATABASE`, else `postgres`.
    pub database: Option<String>,
    pub admin: crate::providers::account::AdminLogin,
    #[serde(default)]
    pub limits: crate::playbook::model::Limits,
    /// TLS, as libpq's `sslmode`: `disable`, `require` (encrypted, the
    /// server not verified: reported by `plan`), `verify-ca`, `verify-full`.
    /// Default: `PGSSLMODE`, else `verify-full` for a host that is not
    /// loopback and `disable` for loopback (127.0.0.0/8, `::1`, `localhost`)
    /// and Unix sockets.
    pub sslmode: Option<SslMode>,
    /// PEM file of the CA that signed the server's certificate (`verify-ca`,
    /// `verify-full`); `system`: the system's roots. Default: `PGSSLROOTCERT`,
    /// else the system's roots.
    pub sslrootcert: Option<String>,
    /// PEM client certificate presented to the server; needs `sslkey`.
    /// Default: `PGSSLCERT`.
    pub sslcert: Option<String>,
    /// PEM private key of `sslcert`. Default: `PGSSLKEY`.
    pub sslkey: Option<String>,
    /// Allow `sslmode: disable` to a host that is not loopback. Without it
    /// such a playbook does not load: the admin login would cross the network
    /// unencrypted. `plan` reports it.
    #[serde(default)]
    pub allow_plaintext: bool,
}

impl PostgresProviderConfig {
    /// The host: as written (or filled in by [`with_env`](Self::with_env)), else `localhost`.
    pub fn host(&self) -> &str {
        self.host.as_deref().unwrap_or("localhost")
    }

    /// The `sslmode` in force: as written, else `verify-full` for a host that
    /// is not loopback and `disable` for loopback and Unix sockets.
    pub fn effective_sslmode(&self) -> SslMode {
        self.sslmode.unwrap_or(if is_local(self.host()) { SslMode::Disable } else { SslMode::VerifyFull })
    }

    /// These settings with what the playbook leaves out taken from libpq's
    /// environment (`PGHOST`, `PGPORT`, `PGDATABASE`, `PGSSLMODE`,
    /// `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY`), read through `env`, and
    /// one line per value taken ("`host` from PGHOST (db.internal)"). The
    /// TLS rules are checked again on the result: a `PGSSLMODE=disable` to a
    /// remote `PGHOST` is refused like the same playbook would be. libpq's
    /// `allow` and `prefer`, which fall back to plaintext without a word,
    /// are refused.
    pub fn with_env(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<(PostgresProviderConfig, Vec<String>), ProviderError> {
        let mut c = self.clone();
        let mut from = vec![];
        let mut take = |field: &str, var: &str, slot: &mut Option<String>| {
            if slot.is_none() {
                if let Some(v) = env(var).filter(|v| !v.trim().is_empty()) {
                    from.push(format!("`{field}` from {var} ({v})"));
                    *slot = Some(v);
                }
            }
        };
        take("host", "PGHOST", &mut c.host);
        take("database", "PGDATABASE", &mut c.database);
        take("sslrootcert", "PGSSLROOTCERT", &mut c.sslrootcert);
        take("sslcert", "PGSSLCERT", &mut c.sslcert);
        take("sslkey", "PGSSLKEY", &mut c.sslkey);
        // Typed settings: taken as text only where the playbook leaves them out.
        let (mut port, mut mode) = (c.port.map(|p| p.to_string()), c.sslmode.map(|m| m.as_str().to_string()));
        take("port", "PGPORT", &mut port);
        take("sslmode", "PGSSLMODE", &mut mode);
        let bad = |var: &str, v: &str, fix: &str| ProviderError::new(ErrorKind::Config, "postgres.env", format!("{var}={v}: {fix}"));
        if let Some(p) = port {
            c.port = Some(p.trim().parse().map_err(|_| bad("PGPORT", &p, "not a port number"))?);
        }
        if let Some(m) = mode {
            c.sslmode = Some(match m.trim() {
                "disable" => SslMode::Disable,
                "require" => SslMode::Require,
                "verify-ca" => SslMode::VerifyCa,
                "verify-full" => SslMode::VerifyFull,
                "allow" | "prefer" => {
                    return Err(bad(
                        "PGSSLMODE",
                        &m,
                        "keysweep does not fall back to plaintext silently: set `sslmode` in the playbook (verify-full, verify-ca, require or disable), or PGSSLMODE to one of those",
                    ))
                }
                _ => return Err(bad("PGSSLMODE", &m, "not an sslmode: write verify-full, verify-ca, require or disable")),
            });
        }
        if let Some(p) = check_tls(&c).into_iter().next() {
            let hint = p.hint.clone().unwrap_or_default();
            let msg = if from.is_empty() { p.message.clone() } else { format!("{} (with {})", p.message, from.join(", ")) };
            return Err(ProviderError::new(ErrorKind::Config, "postgres.env", format!("{msg}; {hint}")));
        }
        Ok((c, from))
    }
}

/// Loopback, or a Unix socket directory.
fn is_local(host: &str) -> bool {
    host.starts_with('/') || crate::playbook::rules::is_loopback_host(host)
}

fn check_config(c: &PostgresProviderConfig, allow_link_local: bool) -> Vec<crate::provider::kind::Problem> {
    let mut out = match &c.host {
        Some(h) => crate::providers::account::host_problems(h, allow_link_local),
        None => vec![],
    };
    out.extend(check_tls(c));
    out
}

/// The TLS rules (also checked at connect, on the settings taken from the environment).
fn check_tls(c: &PostgresProviderConfig) -> Vec<crate::provider::kind::Problem> {
    use crate::provider::kind::Problem;
    let mut out = vec![];
    let mode = c.effective_sslmode();
    if mode == SslMode::Disable && !is_local(c.host()) && !c.allow_plaintext {
        out.push(Problem::new(
            &["sslmode"],
            format!("`sslmode: disable` to `{}`, which is not loopback: keysweep's admin login and every password it sets would cross the network unencrypted", c.host()),
            "remove `sslmode` (`verify-full` is the default for a remote host) and name the server's CA in `sslrootcert`; if this network path really is trusted, set `allow_plaintext: true` on the provider, which `plan` then reports",
        ));
    }
    match (&c.sslcert, &c.sslkey) {
        (Some(_), None) => {
            out.push(Problem::new(&["sslcert"], "`sslcert` without `sslkey`", "add `sslkey:` (the PEM private key of the certificate)"))
        }
        (None, Some(_)) => out.push(Problem::new(&["sslkey"], "`sslkey` without `sslcert`", "add `sslcert:` (the PEM certificate of the key)")),
        _ => {}
    }
    if mode == SslMode::Require && c.sslrootcert.is_some() {
        out.push(Problem::new(
            &["sslmode"],
            "`sslrootcert` is set but `sslmode: require` verifies nothing: the CA would not be checked",
            "write `sslmode: verify-full` (or `verify-ca`) to have the server's certificate checked against it",
        ));
    }
    if mode == SslMode::Disable {
        for (field, v) in [("sslrootcert", &c.sslrootcert), ("sslcert", &c.sslcert)] {
            if v.is_some() {
                out.push(Problem::new(
                    &[field],
                    format!("`{field}` is set but TLS is off (`sslmode: disable`): nothing would use it"),
                    "set `sslmode: verify-full`, or remove it",
                ));
            }
        }
    }
    out
}

fn config_warnings(c: &PostgresProviderConfig) -> Vec<String> {
    match c.effective_sslmode() {
        SslMode::Require => vec![REQUIRE_WARNING.into()],
        SslMode::Disable if !is_local(c.host()) => {
            vec![format!(
                "plaintext to `{}` (sslmode: disable, allow_plaintext: true): the admin login and every password set cross the network unencrypted",
                c.host()
            )]
        }
        _ => vec![],
    }
}

/// Reported by `plan` and at every connection with `sslmode: require`.
pub const REQUIRE_WARNING: &str =
    "TLS certificate verification is OFF (sslmode: require): anyone on the network path can pose as the server and read the admin login; use `verify-full` with `sslrootcert`";

fn from_env(c: &PostgresProviderConfig, env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    match c.with_env(env) {
        Ok((_, from)) => from,
        Err(e) => vec![format!("refused at connect: {}", e.message)],
    }
}

crate::account_provider_kind!(PostgresProviderConfig, PostgresProvider, check: check_config, warnings: config_warnings, from_env: from_env);

crate::account_kind!(RoleKind, host_allowed: false, host_kind: "mysql_user", name: |_t, u| u.to_string(), match_key: |id| id.to_string(), draft: |id| format!("user: {}", crate::provider::kind::yaml_str(id)));

impl PostgresProvider {
    async fn retire_once(&self, target: &Target, old: &Handle) -> Result<(), ProviderError> {
        let op = "postgres.retire";
        let t = db(target, op)?;
        let user = t.user_in(old);
        check_in_pair(t, user, op, NOUN)?;
        let role = ident(user, op)?;
        if user == self.admin_user {
            tracing::warn!(provider = %self.name, role = user, "retiring keysweep's own admin role: this provider cannot log in again");
        }
        let sql = SecretString::from(format!("ALTER ROLE {role} WITH NOLOGIN PASSWORD NULL"));
        match self.admin_batch(op, &sql, &[]).await {
            Ok(()) => {}
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
        self.end_sessions(op, user).await;
        Ok(())
    }
}
/// Connects with `tls` (plaintext or TLS) within `timeout` and spawns the
/// connection task. `c` (which holds the password) is dropped once connected.
async fn connect_with<T>(c: Config, tls: T, timeout: Duration, addr: String) -> Result<(Client, tokio::task::JoinHandle<()>), ConnectFail>
where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>,
    T::Stream: Send + 'static,
{
    let (client, conn) = match tokio::time::timeout(timeout, c.connect(tls)).await {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return Err(ConnectFail::Pg(e)),
        Err(_) => return Err(ConnectFail::Timeout),
    };
    drop(c);
    let h = tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(server = %addr, error = %describe(&e, &[]), "a postgres connection ended with an error");
        }
    });
    Ok((client, h))
}
