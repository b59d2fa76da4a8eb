//! MySQL / MariaDB: user passwords (`mysql_user`), set with `ALTER USER`.
//!
//! The account is `'user'@'host'` (`target.host`, default `%`). keysweep logs
//! in with a separate admin account, which needs the global CREATE USER
//! privilege (ALTER USER, CREATE USER), SELECT on `mysql.user` and
//! `mysql.global_priv`, and for `create_clone` every privilege it copies WITH
//! GRANT OPTION. The admin password is resolved once and kept only inside the
//! connection pool's options, which are never printed.
//!
//! Proof of death, checked against MariaDB 10.11 (`tests/mysql_provider.rs`):
//! - A login with the old password refused with error **1045** (access denied)
//!   is proof. MariaDB checks the password *before* the account lock: a locked
//!   account answers 1045 to a wrong password and **4151** (`this account is
//!   locked`) only to the right one. So retiring an account (scramble its
//!   password *and* `ACCOUNT LOCK`) keeps 1045 as the answer to the old
//!   password, and a 4151 means the probed password is still the account's
//!   password: not proof. (MySQL's code for it is 3118; only MariaDB is
//!   tested here.)
//! - Not proof, always unknown: 4151/3118 (locked, right password), 4150
//!   (MariaDB `max_password_errors` block) and 3955 (MySQL
//!   `FAILED_LOGIN_ATTEMPTS` temporary lock), which both come whatever the
//!   password, 1129 (host blocked), 1040 (too many connections), timeouts and
//!   network errors. Each `verify_dead`/`test` call makes exactly one login, so
//!   the engine's `verify.attempts` bounds how many failed logins a credential
//!   can cost (they count towards those lockouts).
//! - A 1045 is proof only for the account the server would pick for the probe:
//!   accounts are matched by the client's address (`'user'@'host'` patterns,
//!   most specific first). When the account's host does not admit keysweep's
//!   address (as `USER()` shows it), or a more specific account of the same
//!   name (or an anonymous one) also admits it, the refusal is unknown; a
//!   `test` login must land on exactly `'user'@'host'` (`CURRENT_USER()`).
//! - Admin side (no old value): the account no longer exists, or it is locked
//!   (`mysql.global_priv` `account_locked` on MariaDB, `mysql.user.account_locked`
//!   on MySQL), is proof; an unlocked account is unknown (its password cannot
//!   be checked without the value).
//!
//! Statements that hold a password cannot use parameters (MariaDB refuses
//! `IDENTIFIED BY ?` in a prepared statement), so literals are escaped for the session's
//! `sql_mode` (with or without `NO_BACKSLASH_ESCAPES`), the statement lives in
//! a zeroized string, and the server's error text is redacted (the raw and the
//! escaped password) before it is kept. A syntax error's text, which quotes the
//! statement, is withheld entirely.
//!
//! TLS (`ssl_mode` and the shared `tls:` block, see [`super::mysql_tls`]):
//! `verify_identity` by default for a host that is not loopback. The admin
//! pool and every probe login use the same settings, and never fall back to
//! plaintext. A refused certificate is a `Config` error naming the setting to
//! fix; met by a probe, it is unknown, never dead.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Pool, PoolConstraints, PoolOpts, SslOpts};

use super::account::DbAccountTarget;
use super::account::{one, USERNAME};
use super::mysql_tls::{self, SslMode};
use crate::playbook::model::Target;
use crate::provider::{ErrorKind, Handle, InventoryItem, Minted, Provider, ProviderError, Verdict};
use crate::secret::{Delivered, ExposeSecret, GeneratePolicy, SecretString};

/// Access denied (wrong password or no such account): the documented refusal.
const ER_ACCESS_DENIED: u16 = 1045;

pub struct MysqlProvider {
    name: String,
    pool: Pool,
    host: String,
    port: u16,
    timeout: Duration,
    mariadb: bool,
    /// Where keysweep connects from, as the server sees it (the host part of
    /// `USER()`): which account a probe login lands on depends on it.
    client_host: String,
    /// The limits layer: rate, timeout and the retry bound.
    gate: crate::provider::limits::Gate,
    /// TLS for every connection (admin pool and probes); `None`: `ssl_mode: disabled`.
    ssl: Option<SslOpts>,
}

/// What the server holds for one account.
enum Account {
    Absent,
    Present { locked: bool },
}

/// How string literals are written on one connection.
#[derive(Clone, Copy)]
struct Quoting {
    no_backslash_escapes: bool,
}

impl Quoting {
    /// `s` as an SQL string literal, quotes included.
    fn lit(self, s: &str) -> Result<String, ProviderError> {
        if s.contains('\0') {
            return Err(ProviderError::new(ErrorKind::Config, "mysql.quote", "a NUL character cannot be written in a MySQL string literal"));
        }
        let mut out = String::with_capacity(s.len() + 2);
        out.push('\'');
        for c in s.chars() {
            match c {
                '\'' => out.push_str("''"),
                '\\' if !self.no_backslash_escapes => out.push_str("\\\\"),
                '\n' if !self.no_backslash_escapes => out.push_str("\\n"),
                '\r' if !self.no_backslash_escapes => out.push_str("\\r"),
                '\u{1a}' if !self.no_backslash_escapes => out.push_str("\\Z"),
                c => out.push(c),
            }
        }
        out.push('\'');
        Ok(out)
    }
    fn account(self, user: &str, host: &str) -> Result<String, ProviderError> {
        Ok(format!("{}@{}", self.lit(user)?, self.lit(host)?))
    }
}

/// A lock flag as the servers print it: MariaDB's JSON_VALUE gives `1` (or
/// `true`), MySQL's `account_locked` column `Y`.
fn truthy(v: &str) -> bool {
    matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "y")
}

fn host_of(t: &DbAccountTarget) -> &str {
    t.host.as_deref().filter(|h| !h.is_empty()).unwrap_or("%")
}

fn target_of<'a>(target: &'a Target, op: &'static str) -> Result<&'a DbAccountTarget, ProviderError> {
    match target {
        Target::MysqlUser(t) => Ok(t),
        other => Err(ProviderError::new(ErrorKind::Unsupported, op, format!("the mysql provider does not handle `{}`", other.kind()))),
    }
}

/// The user named by `h`, if it is one of the target's accounts.
fn known_user<'a>(t: &'a DbAccountTarget, name: Option<&str>, op: &'static str) -> Result<&'a str, ProviderError> {
    match name.filter(|s| !s.is_empty()) {
        None => Ok(&t.user),
        Some(n) if n == t.user => Ok(&t.user),
        Some(n) if t.alternate_with.as_deref() == Some(n) => Ok(t.alternate_with.as_deref().unwrap_or_default()),
        Some(n) => Err(ProviderError::new(
            ErrorKind::Config,
            op,
            format!("the store names user `{n}`, which is neither `user` ({}) nor `alternate_with` of this credential", t.user),
        )),
    }
}

fn io_or_driver(op: &'static str, e: &mysql_async::Error, secrets: &[&SecretString]) -> ProviderError {
    let msg = crate::secret::redact_all(&e.to_string(), secrets);
    if let Some(fix) = mysql_tls::refusal(&msg) {
        // Not temporary: retrying does not change a certificate.
        return ProviderError::new(ErrorKind::Config, op, format!("{msg}; {fix}"));
    }
    match e {
        mysql_async::Error::Server(s) => server_error(op, s, secrets),
        mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => ProviderError::new(ErrorKind::Unavailable, op, msg),
        _ => ProviderError::new(ErrorKind::Other, op, msg),
    }
}

fn server_error(op: &'static str, s: &mysql_async::ServerError, secrets: &[&SecretString]) -> ProviderError {
    let kind = match s.code {
        1045 | 4150 | 4151 | 3118 | 3955 | 1862 => ErrorKind::Unauthenticated,
        1044 | 1142 | 1143 | 1227 | 1370 | 1410 | 1133 => ErrorKind::PermissionDenied,
        1396 => ErrorKind::NotFound,
        1040 | 1203 | 1205 | 1213 | 1290 | 2002 | 2003 | 2006 | 2013 => ErrorKind::Unavailable,
        _ => ErrorKind::Other,
    };
    // A syntax error quotes the statement from the point it failed: withhold it.
    let text = if s.code == 1064 || s.code == 1149 {
        "syntax error (the server's message quotes the statement and is withheld)".to_string()
    } else {
        crate::secret::redact_all(&s.message, secrets)
    };
    ProviderError::new(kind, op, format!("ERROR {} ({}): {}", s.code, s.state, text))
}

fn timed_out(op: &'static str, d: Duration) -> ProviderError {
    ProviderError::new(ErrorKind::Unavailable, op, format!("no answer within {}s", d.as_secs_f32()))
}

/// The verdict of one refused login attempt.
fn refusal_verdict(who: &str, e: &mysql_async::Error) -> Verdict {
    match e {
        mysql_async::Error::Server(s) if s.code == ER_ACCESS_DENIED => {
            Verdict::Dead(format!("login as {who} refused: ERROR {} ({}): access denied", s.code, s.state))
        }
        mysql_async::Error::Server(s) => {
            let why = match s.code {
                4151 | 3118 => " (account locked: the password itself was accepted, not proof)",
                4150 => " (blocked after too many password errors: not proof)",
                3955 => " (temporarily locked after failed logins: not proof)",
                1129 => " (host blocked: not proof)",
                _ => "",
            };
            Verdict::Unknown(format!("login as {who}: ERROR {} ({}){why}: {}", s.code, s.state, crate::secret::scrub(&s.message)))
        }
        e => {
            let text = crate::secret::scrub(&e.to_string());
            match mysql_tls::refusal(&text) {
                Some(fix) => Verdict::Unknown(format!("login as {who}: {text}; {fix}")),
                None => Verdict::Unknown(format!("login as {who}: {text}")),
            }
        }
    }
}

impl MysqlProvider {
    /// Connects and logs in with the admin credential.
    pub async fn connect(name: &str, cfg: &MysqlProviderConfig, resolve: &crate::provider::kind::Resolve<'_>) -> Result<Self, ProviderError> {
        let password = resolve(&cfg.admin.password)?;
        let limits = &cfg.limits;
        let gate = crate::provider::limits::Gate::new(&cfg.limits);
        let timeout = gate.timeout();
        let size = limits.concurrency.unwrap_or(8).max(1);
        let constraints = PoolConstraints::new(0, size).expect("0 <= size, size > 0");
        let ssl = mysql_tls::ssl_opts(cfg.effective_ssl_mode(), &cfg.tls)?;
        // Never Debug-print these options: they hold the admin password.
        let opts = OptsBuilder::default()
            .ip_or_hostname(cfg.host.clone())
            .tcp_port(cfg.port)
            .user(Some(cfg.admin.user.clone()))
            .pass(Some(password.expose_secret().to_string()))
            .prefer_socket(false)
            .ssl_opts(ssl.clone())
            .pool_opts(PoolOpts::default().with_constraints(constraints));
        let mut p = MysqlProvider {
            name: name.to_string(),
            pool: Pool::new(opts),
            host: cfg.host.clone(),
            port: cfg.port,
            timeout,
            mariadb: true,
            client_host: String::new(),
            gate,
            ssl,
        };
        let op = "mysql.connect";
        let mut conn = p.conn(op, &[&password]).await?;
        let row: Option<(i64, String, String)> =
            p.within(op, conn.query_first("SELECT 1, VERSION(), USER()")).await?.map_err(|e| io_or_driver(op, &e, &[&password]))?;
        let (_, version, me) = row.unwrap_or_default();
        p.client_host = me.rsplit_once('@').map(|(_, h)| h.to_string()).unwrap_or_default();
        p.mariadb = version.to_ascii_lowercase().contains("mariadb");
        tracing::debug!(provider = %p.name, server = %version, "mysql: logged in");
        Ok(p)
    }

    async fn pace(&self) -> crate::provider::limits::Sent<'_> {
        self.gate.pace().await
    }

    /// Runs `f` within the provider's timeout.
    async fn within<T>(&self, op: &'static str, f: impl std::future::Future<Output = T>) -> Result<T, ProviderError> {
        tokio::time::timeout(self.timeout, f).await.map_err(|_| timed_out(op, self.timeout))
    }

    /// An admin connection from the pool.
    async fn conn(&self, op: &'static str, secrets: &[&SecretString]) -> Result<Conn, ProviderError> {
        let _sent = self.pace().await;
        self.within(op, self.pool.get_conn()).await?.map_err(|e| io_or_driver(op, &e, secrets))
    }

    /// An admin connection and how literals are written on it.
    async fn conn_quoting(&self, op: &'static str) -> Result<(Conn, Quoting), ProviderError> {
        let mut conn = self.conn(op, &[]).await?;
        let mode: Option<String> = self.within(op, conn.query_first("SELECT @@SESSION.sql_mode")).await?.map_err(|e| io_or_driver(op, &e, &[]))?;
        let no_backslash_escapes = mode.unwrap_or_default().to_ascii_uppercase().contains("NO_BACKSLASH_ESCAPES");
        Ok((conn, Quoting { no_backslash_escapes }))
    }

    /// Runs one statement that holds `secret`; errors are redacted.
    async fn exec_secret(
        &self,
        conn: &mut Conn,
        op: &'static str,
        stmt: &SecretString,
        secret: &SecretString,
        q: Quoting,
    ) -> Result<(), ProviderError> {
        let escaped = SecretString::from(q.lit(secret.expose_secret())?);
        let _sent = self.pace().await;
        self.within(op, conn.query_drop(stmt.expose_secret())).await?.map_err(|e| io_or_driver(op, &e, &[secret, &escaped]))
    }

    /// Is the account there, and is it locked?
    async fn account(&self, conn: &mut Conn, op: &'static str, user: &str, host: &str) -> Result<Account, ProviderError> {
        let sql = if self.mariadb {
            "SELECT JSON_VALUE(Priv, '$.account_locked') FROM mysql.global_priv WHERE User = ? AND Host = ?"
        } else {
            "SELECT account_locked FROM mysql.user WHERE User = ? AND Host = ?"
        };
        let _sent = self.pace().await;
        let row: Option<(Option<String>,)> = self.within(op, conn.exec_first(sql, (user, host))).await?.map_err(|e| io_or_driver(op, &e, &[]))?;
        Ok(match row {
            None => Account::Absent,
            Some((v,)) => Account::Present { locked: v.as_deref().is_some_and(truthy) },
        })
    }

    /// One login as `user` with `password`, on a new connection of its own.
    /// `test`: Alive only if the server logged us in as exactly
    /// `'user'@'host'`. Otherwise (verify) any accepted login is Alive: the
    /// password still opens a door.
    async fn login(&self, user: &str, host: &str, password: &SecretString, test: bool) -> Verdict {
        let who = format!("'{user}'@'{host}'");
        // Never Debug-print these options: they hold the probed password.
        let opts = OptsBuilder::default()
            .ip_or_hostname(self.host.clone())
            .tcp_port(self.port)
            .user(Some(user.to_string()))
            .pass(Some(password.expose_secret().to_string()))
            .prefer_socket(false)
            .ssl_opts(self.ssl.clone());
        let _sent = self.pace().await;
        let attempt = async {
            let mut c = Conn::new(opts).await?;
            let r: Result<Option<String>, _> = c.query_first("SELECT CURRENT_USER()").await;
            let _ = c.disconnect().await;
            Ok::<_, mysql_async::Error>(r)
        };
        let v = match tokio::time::timeout(self.timeout, attempt).await {
            Err(_) => return Verdict::Unknown(format!("login as {who}: no answer within {}s", self.timeout.as_secs_f32())),
            Ok(Err(e)) => refusal_verdict(&who, &e),
            Ok(Ok(Ok(cur))) => {
                let cur = cur.unwrap_or_default();
                let exact = cur.rsplit_once('@').is_some_and(|(u, h)| u == user && h == host);
                if test && !exact {
                    return Verdict::Unknown(format!("login as {who} was accepted, but as account {cur}: not the one tested"));
                }
                Verdict::Alive(format!("login as {who} accepted (as {cur})"))
            }
            // Logged in, but the session cannot work (an expired password, say).
            Ok(Ok(Err(e))) if test => {
                return Verdict::Unknown(format!(
                    "login as {who} accepted but unusable: {}",
                    crate::secret::redact_all(&crate::secret::scrub(&e.to_string()), &[password])
                ))
            }
            Ok(Ok(Err(_))) => Verdict::Alive(format!("login as {who} accepted (the session then failed)")),
        };
        match v {
            Verdict::Dead(e) => match self.probe_scope(user, host).await {
                Ok(()) => Verdict::Dead(e),
                Err(why) => Verdict::Unknown(format!("{e}, but {why}")),
            },
            // Redact whatever the server echoed (nothing known does, but be sure).
            Verdict::Unknown(e) => Verdict::Unknown(crate::secret::redact_all(&e, &[password])),
            v => v,
        }
    }

    /// Whether a 1045 to a login as `user` from here is about `'user'@'host'`:
    /// the server picks the most specific account whose host admits the
    /// client, so a refusal proves nothing when the account's host does not
    /// admit keysweep's address, or when a more specific account of the same
    /// name (or an anonymous one) may have been picked instead.
    async fn probe_scope(&self, user: &str, host: &str) -> Result<(), String> {
        let op = "mysql.probe_scope";
        let mut conn = self.conn(op, &[]).await.map_err(|e| format!("its scope could not be checked: {e}"))?;
        let _sent = self.pace().await;
        let matching: Vec<(String, String)> = self
            .within(
                op,
                conn.exec("SELECT User, Host FROM mysql.user WHERE (User = ? OR User = '') AND ? LIKE Host", (user, self.client_host.as_str())),
            )
            .await
            .and_then(|r| r.map_err(|e| io_or_driver(op, &e, &[])))
            .map_err(|e| format!("its scope could not be checked: {e}"))?;
        let admits: Option<(i64,)> = self
            .within(op, conn.exec_first("SELECT ? LIKE ?", (self.client_host.as_str(), host)))
            .await
            .and_then(|r| r.map_err(|e| io_or_driver(op, &e, &[])))
            .map_err(|e| format!("its scope could not be checked: {e}"))?;
        if admits.map(|a| a.0) != Some(1) {
            return Err(format!(
                "keysweep connects from '{}', which host '{host}' does not admit: only an admin-side proof can count",
                self.client_host
            ));
        }
        // A host without wildcards is the most specific there is: nothing beats
        // it (an anonymous account of the same host loses to a named one).
        // Otherwise any other admitting account but a `%` one may win.
        if host.contains(['%', '_']) {
            let rivals: Vec<String> =
                matching.into_iter().filter(|(u, h)| !(u == user && h == host) && h != "%").map(|(u, h)| format!("'{u}'@'{h}'")).collect();
            if !rivals.is_empty() {
                return Err(format!("the server may have matched {} instead", rivals.join(", ")));
            }
        }
        Ok(())
    }

    /// Creates `clone` with the grants of `source` (same host part), or
    /// finishes a clone an interrupted run left without its grants.
    ///
    /// Copied: every line `SHOW GRANTS FOR source` lists — global, database,
    /// table, column and routine privileges, `PROXY` grants, granted roles and
    /// the default role, with `GRANT OPTION`, TLS requirements (`REQUIRE`) and
    /// resource limits where the server lists them on a grant line. Not copied:
    /// the password / authentication plugin (`IDENTIFIED …` is dropped: the
    /// clone gets its own password when the rotation applies one), and password
    /// expiry or lock settings. The clone is created locked with a random
    /// password nobody knows, so it cannot be used before `apply`.
    async fn ensure_clone(&self, source: &str, clone: &str, host: &str) -> Result<(), ProviderError> {
        let op = "mysql.create_clone";
        let (mut conn, q) = self.conn_quoting(op).await?;
        let src = q.account(source, host)?;
        let dst = q.account(clone, host)?;
        let existing = self.account(&mut conn, op, clone, host).await?;
        match existing {
            Account::Present { locked: false } => return Ok(()),
            Account::Present { locked: true } => {
                // A clone of ours whose grants never got copied (a crash between
                // CREATE and GRANT) holds USAGE only; anything else is left alone.
                let grants = self.show_grants(&mut conn, op, &dst).await?;
                if grants.len() > 1 || grants.iter().any(|g| !g.starts_with("GRANT USAGE ON *.* TO")) {
                    return Ok(());
                }
            }
            Account::Absent => {
                if let Account::Absent = self.account(&mut conn, op, source, host).await? {
                    return Err(ProviderError::new(ErrorKind::NotFound, op, format!("cannot clone '{source}'@'{host}': it does not exist")));
                }
                let scratch = GeneratePolicy { length: 40, ..GeneratePolicy::default() }.generate();
                let stmt = SecretString::from(format!("CREATE USER {dst} IDENTIFIED BY {} ACCOUNT LOCK", q.lit(scratch.expose_secret())?));
                self.exec_secret(&mut conn, op, &stmt, &scratch, q).await?;
            }
        }
        let from = grantee_forms(source, host);
        let to = grantee_forms(clone, host).remove(0);
        let mut copied = 0;
        for line in self.show_grants(&mut conn, op, &src).await? {
            let Some(stmt) = rewrite_grant(&line, &from, &to) else {
                tracing::warn!(provider = %self.name, "create_clone: a grant line of '{source}'@'{host}' was not understood and not copied");
                continue;
            };
            let _sent = self.pace().await;
            self.within(op, conn.query_drop(stmt.as_str())).await?.map_err(|e| io_or_driver(op, &e, &[]))?;
            copied += 1;
        }
        tracing::info!(provider = %self.name, "created '{clone}'@'{host}' with the {copied} grant line(s) of '{source}'@'{host}'");
        Ok(())
    }

    async fn show_grants(&self, conn: &mut Conn, op: &'static str, account: &str) -> Result<Vec<String>, ProviderError> {
        let _sent = self.pace().await;
        let rows: Vec<String> = self.within(op, conn.query(format!("SHOW GRANTS FOR {account}"))).await?.map_err(|e| io_or_driver(op, &e, &[]))?;
        Ok(rows)
    }
}

/// The ways a server may print `'user'@'host'` in SHOW GRANTS (backticks first).
fn grantee_forms(user: &str, host: &str) -> Vec<String> {
    vec![
        format!("`{}`@`{}`", user.replace('`', "``"), host.replace('`', "``")),
        format!("'{}'@'{}'", user.replace('\'', "''"), host.replace('\'', "''")),
    ]
}

/// A grant line of the source account, made into the same grant for `to`, with
/// any `IDENTIFIED …` part removed. `None` for a line that is not a grant of
/// the source (nothing is replayed that was not understood).
fn rewrite_grant(line: &str, from: &[String], to: &str) -> Option<String> {
    let line = line.trim();
    if !(line.starts_with("GRANT ") || line.starts_with("SET DEFAULT ROLE ")) {
        return None;
    }
    let mut s = line.to_string();
    if let Some(i) = s.find(" IDENTIFIED ") {
        let rest = &s[i + 1..];
        let end = [" REQUIRE ", " WITH "].iter().filter_map(|k| rest.find(k)).min().map(|j| i + 1 + j).unwrap_or(s.len());
        s.replace_range(i..end, "");
    }
    for f in from {
        for kw in [" TO ", " FOR "] {
            let pat = format!("{kw}{f}");
            if let Some(i) = s.find(&pat) {
                s.replace_range(i..i + pat.len(), &format!("{kw}{to}"));
                return Some(s);
            }
        }
    }
    None
}

#[async_trait]
impl Provider for MysqlProvider {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "mysql"
    }

    async fn current_handle(&self, target: &Target, stored: Option<&Handle>) -> Result<Handle, ProviderError> {
        let op = "mysql.current_handle";
        let t = target_of(target, op)?;
        let user = known_user(t, stored.and_then(|s| s.get(USERNAME)).map(String::as_str), op)?;
        Ok(one(user))
    }

    fn handle_from_fields(&self, target: &Target, fields: &BTreeMap<String, String>) -> Handle {
        match fields.get(USERNAME).filter(|u| !u.is_empty()) {
            Some(u) => one(u),
            // A value stored without a username belongs to the playbook's user.
            None => match target {
                Target::MysqlUser(t) => one(&t.user),
                _ => Handle::new(),
            },
        }
    }

    async fn mint(&self, target: &Target, _old: &Handle, _nonce: &str) -> Result<Minted, ProviderError> {
        Err(ProviderError::new(
            ErrorKind::Unsupported,
            "mysql.mint",
            format!("`{}` passwords are generated by keysweep, not minted by the server", target.kind()),
        ))
    }

    async fn cleanup_minted(&self, _t: &Target, _old: &Handle, _nonce: &str, _keep: Option<&Handle>) -> Result<usize, ProviderError> {
        Ok(0)
    }

    async fn new_fields(&self, target: &Target, old: &Handle) -> Result<BTreeMap<String, String>, ProviderError> {
        let op = "mysql.new_fields";
        let t = target_of(target, op)?;
        let in_service = known_user(t, old.get(USERNAME).map(String::as_str), op)?.to_string();
        let Some(alt) = t.alternate_with.as_deref().filter(|a| !a.is_empty()) else { return Ok(one(&t.user)) };
        let next = if in_service == t.user { alt.to_string() } else { t.user.clone() };
        let host = host_of(t);
        if t.create_clone {
            self.ensure_clone(&in_service, &next, host).await?;
        } else {
            let mut conn = self.conn(op, &[]).await?;
            if let Account::Absent = self.account(&mut conn, op, &next, host).await? {
                return Err(ProviderError::new(
                    ErrorKind::NotFound,
                    op,
                    format!("the alternate account '{next}'@'{host}' does not exist: create it with the grants of '{in_service}'@'{host}', or set `create_clone: true`"),
                ));
            }
        }
        Ok(one(&next))
    }

    async fn apply(&self, target: &Target, new: &Delivered) -> Result<(), ProviderError> {
        let op = "mysql.apply";
        let t = target_of(target, op)?;
        let user = known_user(t, new.fields.get(USERNAME).map(String::as_str), op)?;
        let (mut conn, q) = self.conn_quoting(op).await?;
        let stmt = SecretString::from(format!(
            "ALTER USER {} IDENTIFIED BY {} ACCOUNT UNLOCK",
            q.account(user, host_of(t))?,
            q.lit(new.value.expose_secret())?
        ));
        self.exec_secret(&mut conn, op, &stmt, &new.value, q).await
    }

    async fn test(&self, target: &Target, new: &Delivered, handle: &Handle) -> Verdict {
        let op = "mysql.test";
        let t = match target_of(target, op) {
            Ok(t) => t,
            Err(e) => return Verdict::Unknown(e.to_string()),
        };
        // The value's own fields name its account; the handle is the fallback.
        let name = new.fields.get(USERNAME).or_else(|| handle.get(USERNAME)).map(String::as_str);
        let user = match known_user(t, name, op) {
            Ok(u) => u,
            Err(e) => return Verdict::Unknown(e.to_string()),
        };
        self.login(user, host_of(t), &new.value, true).await
    }

    /// Retried here (the engine adds no retry of its own): retiring is idempotent.
    async fn retire(&self, target: &Target, old: &Handle) -> Result<(), ProviderError> {
        crate::provider::limits::retry(self.gate.retry_policy(), || self.retire_once(target, old)).await
    }

    async fn verify_dead(&self, target: &Target, old: &Handle, old_value: Option<&SecretString>) -> Verdict {
        let op = "mysql.verify_dead";
        let t = match target_of(target, op) {
            Ok(t) => t,
            Err(e) => return Verdict::Unknown(e.to_string()),
        };
        let user = match known_user(t, old.get(USERNAME).map(String::as_str), op) {
            Ok(u) => u,
            Err(e) => return Verdict::Unknown(e.to_string()),
        };
        let host = host_of(t);
        if let Some(v) = old_value {
            return self.login(user, host, v, false).await;
        }
        let mut conn = match self.conn(op, &[]).await {
            Ok(c) => c,
            Err(e) => return Verdict::Unknown(e.to_string()),
        };
        match self.account(&mut conn, op, user, host).await {
            Ok(Account::Absent) => Verdict::Dead(format!("account '{user}'@'{host}' no longer exists")),
            Ok(Account::Present { locked: true }) => Verdict::Dead(format!("account '{user}'@'{host}' is locked (no login possible)")),
            Ok(Account::Present { locked: false }) => Verdict::Unprovable(format!(
                "account '{user}'@'{host}' exists and is not locked; without the old value its password cannot be checked"
            )),
            Err(e) => Verdict::Unknown(e.to_string()),
        }
    }

    async fn inventory(&self) -> Result<Vec<InventoryItem>, ProviderError> {
        let op = "mysql.inventory";
        let mut conn = self.conn(op, &[]).await?;
        // Never a password hash: only names, privilege flags and dates.
        let sql = if self.mariadb {
            "SELECT u.User, u.Host, u.Super_priv, u.Grant_priv, u.Create_user_priv, \
                    JSON_VALUE(g.Priv, '$.account_locked'), JSON_VALUE(g.Priv, '$.password_last_changed') \
             FROM mysql.user u JOIN mysql.global_priv g ON g.User = u.User AND g.Host = u.Host \
             WHERE u.is_role <> 'Y' ORDER BY u.User, u.Host"
        } else {
            "SELECT User, Host, Super_priv, Grant_priv, Create_user_priv, account_locked, \
                    CAST(UNIX_TIMESTAMP(password_last_changed) AS CHAR) \
             FROM mysql.user ORDER BY User, Host"
        };
        let _sent = self.pace().await;
        #[allow(clippy::type_complexity)]
        let rows: Vec<(String, String, String, String, String, Option<String>, Option<String>)> =
            self.within(op, conn.query(sql)).await?.map_err(|e| io_or_driver(op, &e, &[]))?;
        let yes = |s: &str| s.eq_ignore_ascii_case("y");
        let mut items = vec![];
        for (user, host, sup, grant, create_user, locked, changed) in rows {
            let locked = locked.as_deref().is_some_and(truthy);
            let mut details = BTreeMap::new();
            details.insert("user".to_string(), user.clone());
            details.insert("host".to_string(), host.clone());
            details.insert("super".to_string(), yes(&sup).to_string());
            details.insert("grant".to_string(), yes(&grant).to_string());
            details.insert("create_user".to_string(), yes(&create_user).to_string());
            details.insert("privileged".to_string(), (yes(&sup) || yes(&grant) || yes(&create_user)).to_string());
            details.insert("account_locked".to_string(), locked.to_string());
            let changed = changed
                .and_then(|c| c.split('.').next().and_then(|s| s.parse::<i64>().ok()))
                .filter(|s| *s > 0)
                .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
                .map(|d| d.to_rfc3339());
            items.push(InventoryItem {
                kind: "mysql_user".into(),
                id: format!("{user}@{host}"),
                created: None,
                rotated: changed,
                last_used: None,
                usage_tracked: false,
                details,
            });
        }
        Ok(items)
    }
}

// -- the playbook side ----------------------------------------------------

#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MysqlProviderConfig {
    #[serde(default = "crate::providers::account::localhost")]
    pub host: String,
    #[serde(default = "mysql_port")]
    pub port: u16,
    pub admin: crate::providers::account::AdminLogin,
    #[serde(default)]
    pub limits: crate::playbook::model::Limits,
    /// TLS, as MySQL's `ssl_mode`: `disabled`, `required` (encrypted, the
    /// server not verified: reported by `plan`), `verify_ca`,
    /// `verify_identity` (the upper-case spellings too). Default:
    /// `verify_identity` for a host that is not loopback, `disabled` for
    /// loopback (127.0.0.0/8, `::1`, `localhost`).
    pub ssl_mode: Option<SslMode>,
    /// The CA to verify the server against (`ca_cert`/`ca_path`, else the
    /// system's roots), a client certificate (`client_cert`/`client_key`),
    /// and the name the certificate is checked against (`server_name`,
    /// `verify_identity` only).
    #[serde(default)]
    pub tls: crate::provider::tls::TlsConfig,
    /// Allow `ssl_mode: disabled` to a host that is not loopback. Without it
    /// such a playbook does not load: the admin login would cross the network
    /// unencrypted. `plan` reports it.
    #[serde(default)]
    pub allow_plaintext: bool,
}
fn mysql_port() -> u16 {
    3306
}

impl MysqlProviderConfig {
    /// The `ssl_mode` in force: as written, else `verify_identity` for a host
    /// that is not loopback and `disabled` for loopback.
    pub fn effective_ssl_mode(&self) -> SslMode {
        self.ssl_mode.unwrap_or(if crate::playbook::rules::is_loopback_host(&self.host) { SslMode::Disabled } else { SslMode::VerifyIdentity })
    }
}

fn check_config(c: &MysqlProviderConfig, allow_link_local: bool) -> Vec<crate::provider::kind::Problem> {
    use crate::provider::kind::Problem;
    let mut out = crate::providers::account::host_problems(&c.host, allow_link_local);
    let mode = c.effective_ssl_mode();
    let remote = !crate::playbook::rules::is_loopback_host(&c.host);
    if mode == SslMode::Disabled && remote && !c.allow_plaintext {
        out.push(Problem::new(
            &["ssl_mode"],
            format!("`ssl_mode: disabled` to `{}`, which is not loopback: keysweep's admin login and every password it sets would cross the network unencrypted", c.host),
            "remove `ssl_mode` (`verify_identity` is the default for a remote host) and name the server's CA in `tls: { ca_cert: … }`; if this network path really is trusted, set `allow_plaintext: true` on the provider, which `plan` then reports",
        ));
    }
    out.extend(c.tls.check(&["tls"]));
    let t = &c.tls;
    if mode == SslMode::Disabled && t.is_set() {
        out.push(Problem::new(
            &["tls"],
            "`tls` is set but TLS is off (`ssl_mode: disabled`): nothing would use it",
            "remove `ssl_mode: disabled` (or write `verify_identity`), or remove `tls:`",
        ));
    } else if t.insecure_skip_verify {
        out.push(Problem::new(
            &["tls", "insecure_skip_verify"],
            "MySQL turns verification off with `ssl_mode: required`, not `tls.insecure_skip_verify`",
            "remove `insecure_skip_verify` and name the server's CA in `tls.ca_cert` (`verify_identity`), or, for a test server only, write `ssl_mode: required`",
        ));
    } else if mode == SslMode::Required && (t.ca_cert.is_some() || t.ca_path.is_some()) {
        let at = if t.ca_cert.is_some() { "ca_cert" } else { "ca_path" };
        out.push(Problem::new(
            &["ssl_mode"],
            format!("`tls.{at}` is set but `ssl_mode: required` verifies nothing: the CA would not be checked"),
            "write `ssl_mode: verify_identity` (or `verify_ca`) to have the server's certificate checked against it",
        ));
    }
    if t.server_name.is_some() && matches!(mode, SslMode::Required | SslMode::VerifyCa) {
        out.push(Problem::new(
            &["tls", "server_name"],
            format!("`tls.server_name` is set but `ssl_mode: {}` checks no name: it would not be used", mode.as_str()),
            "write `ssl_mode: verify_identity` to have the certificate checked against that name, or remove `server_name`",
        ));
    }
    out
}

fn config_warnings(c: &MysqlProviderConfig) -> Vec<String> {
    match c.effective_ssl_mode() {
        SslMode::Required => vec![REQUIRED_WARNING.into()],
        SslMode::Disabled if !crate::playbook::rules::is_loopback_host(&c.host) => vec![format!(
            "plaintext to `{}` (ssl_mode: disabled, allow_plaintext: true): the admin login and every password set cross the network unencrypted",
            c.host
        )],
        _ => vec![],
    }
}

/// Reported by `plan` and at every connection with `ssl_mode: required`.
pub const REQUIRED_WARNING: &str =
    "TLS certificate verification is OFF (ssl_mode: required): anyone on the network path can pose as the server and read the admin login; use `verify_identity` with `tls.ca_cert`";

crate::account_provider_kind!(MysqlProviderConfig, MysqlProvider, check: check_config, warnings: config_warnings);

crate::account_kind!(UserKind, host_allowed: true, host_kind: "mysql_user", name: |t, u| format!("{u}@{}", t.host.as_deref().unwrap_or("%")), match_key: |id| id.to_string(), draft: |id| { let (user, host) = id.rsplit_once('@').unwrap_or((id, "%")); format!("user: {}, host: {}", crate::provider::kind::yaml_str(user), crate::provider::kind::yaml_str(host)) });

impl MysqlProvider {
    async fn retire_once(&self, target: &Target, old: &Handle) -> Result<(), ProviderError> {
        let op = "mysql.retire";
        let t = target_of(target, op)?;
        let user = known_user(t, old.get(USERNAME).map(String::as_str), op)?;
        let host = host_of(t);
        let (mut conn, q) = self.conn_quoting(op).await?;
        if let Account::Absent = self.account(&mut conn, op, user, host).await? {
            return Ok(());
        }
        // A password nobody knows, and the lock. A wrong password is still
        // answered with 1045 on a locked account, so the lock does not hide the
        // proof; it only adds that even a leaked new value could not log in.
        let scratch = GeneratePolicy { length: 40, ..GeneratePolicy::default() }.generate();
        let stmt =
            SecretString::from(format!("ALTER USER {} IDENTIFIED BY {} ACCOUNT LOCK", q.account(user, host)?, q.lit(scratch.expose_secret())?));
        match self.exec_secret(&mut conn, op, &stmt, &scratch, q).await {
            // Dropped between the look and the ALTER: retired all the same.
            Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }
}
