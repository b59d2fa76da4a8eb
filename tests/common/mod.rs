//! Test support: a real OpenBao dev server per test binary, and helpers to
//! seed credentials in it. Each test binary gets its own server on a free
//! port, so binaries never see each other's state; a watchdog shell kills the
//! server when the test process exits.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const ROOT_TOKEN: &str = "root";

pub struct Bao {
    pub addr: String,
}

fn bao_bin() -> PathBuf {
    if let Ok(p) = std::env::var("KEYSWEEP_BAO_BIN") {
        return PathBuf::from(p);
    }
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/venv/bin/bao");
    if local.exists() {
        return local;
    }
    panic!("no `bao` binary: run the tests through scripts/test.sh (it installs OpenBao into .cache/)");
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The OpenBao server of this test binary (started on first use).
pub fn bao() -> &'static Bao {
    static BAO: OnceLock<Bao> = OnceLock::new();
    BAO.get_or_init(|| {
        let port = free_port();
        let addr = format!("http://127.0.0.1:{port}");
        let bin = bao_bin();
        let me = std::process::id();
        // The watchdog ends the server when this test process is gone.
        let script = format!(
            "'{}' server -dev -dev-root-token-id={ROOT_TOKEN} -dev-listen-address=127.0.0.1:{port} >/dev/null 2>&1 & b=$!; \
             while kill -0 {me} 2>/dev/null; do sleep 1; done; kill $b",
            bin.display()
        );
        // Not waited for: the watchdog outlives this call by design and ends with the process.
        #[allow(clippy::zombie_processes)]
        Command::new("sh").arg("-c").arg(script).stdin(Stdio::null()).spawn().expect("start openbao");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = ureq_get(&format!("{addr}/v1/sys/health")) {
                if r.0 == 200 {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "openbao did not start on {addr}");
            std::thread::sleep(Duration::from_millis(100));
        }
        let b = Bao { addr };
        b.call("POST", "sys/auth/approle", Some(json!({ "type": "approle" })));
        b
    })
}

/// An OpenBao dev server of this test binary with its own TLS listener
/// (`-dev-tls`): its address (`https://127.0.0.1:PORT`) and the directory
/// holding the CA it generated (`vault-ca.pem`; the certificate names
/// `localhost` and 127.0.0.1, not other names).
pub fn bao_tls() -> &'static (String, PathBuf) {
    static BAO_TLS: OnceLock<(String, PathBuf)> = OnceLock::new();
    BAO_TLS.get_or_init(|| {
        let port = free_port();
        let addr = format!("https://127.0.0.1:{port}");
        let dir = std::env::temp_dir().join(format!("keysweep-bao-tls-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let me = std::process::id();
        let script = format!(
            "'{}' server -dev -dev-tls -dev-tls-cert-dir='{}' -dev-root-token-id={ROOT_TOKEN} -dev-listen-address=127.0.0.1:{port} >/dev/null 2>&1 & b=$!; \
             while kill -0 {me} 2>/dev/null; do sleep 1; done; kill $b",
            bao_bin().display(),
            dir.display()
        );
        #[allow(clippy::zombie_processes)]
        Command::new("sh").arg("-c").arg(script).stdin(Stdio::null()).spawn().expect("start openbao with TLS");
        let ca = dir.join("vault-ca.pem");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if ca.exists() {
                let out = Command::new("curl")
                    .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
                    .arg(&ca)
                    .arg(format!("{addr}/v1/sys/health"))
                    .output()
                    .unwrap();
                if out.stdout == b"200" {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "openbao with TLS did not start on {addr}");
            std::thread::sleep(Duration::from_millis(100));
        }
        (addr, dir)
    })
}

/// A tiny blocking HTTP client (curl), so test setup needs no runtime.
fn ureq_get(url: &str) -> Result<(u16, String), String> {
    let out = Command::new("curl").args(["-s", "-o", "-", "-w", "\n%{http_code}", url]).output().map_err(|e| e.to_string())?;
    let s = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = s.rsplit_once('\n').ok_or("no status")?;
    Ok((code.trim().parse().map_err(|_| "bad status")?, body.to_string()))
}

impl Bao {
    /// Calls the API as root (or with `token`) and returns (status, body).
    pub fn call_as(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-X", method, "-H", &format!("X-Vault-Token: {token}"), "-w", "\n%{http_code}"]);
        if let Some(b) = body {
            cmd.args(["-d", &b.to_string()]);
        }
        cmd.arg(format!("{}/v1/{path}", self.addr));
        let out = cmd.output().expect("curl");
        let s = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = s.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), serde_json::from_str(body).unwrap_or(Value::Null))
    }
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(ROOT_TOKEN, method, path, body)
    }

    /// Creates a token; returns (token, accessor).
    pub fn create_token(&self, policies: &[&str], meta: Value) -> (String, String) {
        let (s, b) = self.call("POST", "auth/token/create-orphan", Some(json!({ "policies": policies, "meta": meta, "ttl": "24h" })));
        assert_eq!(s, 200, "{b}");
        canary(b["auth"]["client_token"].as_str().unwrap_or_default());
        (b["auth"]["client_token"].as_str().unwrap().into(), b["auth"]["accessor"].as_str().unwrap().into())
    }

    /// Creates an AppRole role; returns its role_id.
    pub fn create_role(&self, role: &str) -> String {
        let (s, b) = self.call("POST", &format!("auth/approle/role/{role}"), Some(json!({ "token_policies": ["default"] })));
        assert!(s == 204 || s == 200, "{b}");
        let (_, b) = self.call("GET", &format!("auth/approle/role/{role}/role-id"), None);
        b["data"]["role_id"].as_str().unwrap().into()
    }

    /// Creates a secret-id; returns (secret_id, accessor).
    pub fn create_secret_id(&self, role: &str) -> (String, String) {
        let (s, b) = self.call("POST", &format!("auth/approle/role/{role}/secret-id"), Some(json!({})));
        assert_eq!(s, 200, "{b}");
        canary(b["data"]["secret_id"].as_str().unwrap_or_default());
        (b["data"]["secret_id"].as_str().unwrap().into(), b["data"]["secret_id_accessor"].as_str().unwrap().into())
    }

    /// Writes a KV v2 secret; returns the version.
    pub fn kv_put(&self, path: &str, data: Value) -> u64 {
        canary_json(&data);
        let (s, b) = self.call("POST", &format!("secret/data/{path}"), Some(json!({ "data": data })));
        assert_eq!(s, 200, "{b}");
        b["data"]["version"].as_u64().unwrap()
    }

    /// Reads the current data of a KV v2 secret.
    pub fn kv_get(&self, path: &str) -> Option<Value> {
        let (s, b) = self.call("GET", &format!("secret/data/{path}"), None);
        canary_json(&b["data"]["data"]);
        (s == 200).then(|| b["data"]["data"].clone())
    }

    pub fn kv_meta(&self, path: &str) -> Option<Value> {
        let (s, b) = self.call("GET", &format!("secret/metadata/{path}"), None);
        (s == 200).then(|| b["data"].clone())
    }

    /// Does `token` still work? (lookup-self from a separate client)
    pub fn token_works(&self, token: &str) -> bool {
        self.call_as(token, "GET", "auth/token/lookup-self", None).0 == 200
    }

    /// Does this secret-id still log in?
    pub fn secret_id_works(&self, role_id: &str, secret_id: &str) -> bool {
        let (s, b) = self.call_as("", "POST", "auth/approle/login", Some(json!({ "role_id": role_id, "secret_id": secret_id })));
        if s == 200 {
            let t = b["auth"]["client_token"].as_str().unwrap_or_default().to_string();
            self.call_as(&t, "POST", "auth/token/revoke-self", None);
        }
        s == 200
    }

    /// Every token accessor whose metadata has `key=value`.
    pub fn tokens_with_meta(&self, key: &str, value: &str) -> Vec<String> {
        let (_, b) = self.call("LIST", "auth/token/accessors", None);
        let mut out = vec![];
        for a in b["data"]["keys"].as_array().cloned().unwrap_or_default() {
            let a = a.as_str().unwrap().to_string();
            let (s, l) = self.call("POST", "auth/token/lookup-accessor", Some(json!({ "accessor": a })));
            if s == 200 && l["data"]["meta"][key] == value {
                out.push(a);
            }
        }
        out
    }
}

/// Records a secret value the tests created or read back, for the canary
/// scan `scripts/test.sh` runs over the whole test output afterwards
/// (`scripts/canary_scan.py`). Stored hex-encoded, so the list never matches
/// itself; no-op unless `KEYSWEEP_CANARY_FILE` is set.
pub fn canary(value: &str) {
    use std::io::Write;
    let Ok(path) = std::env::var("KEYSWEEP_CANARY_FILE") else { return };
    if value.len() < 8 {
        return;
    }
    let hex: String = value.bytes().map(|b| format!("{b:02x}")).collect();
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "{hex}");
    }
}

/// Records every string in a JSON value (a KV secret's data) as a canary.
pub fn canary_json(v: &Value) {
    match v {
        Value::String(s) => canary(s),
        Value::Object(m) => m.values().for_each(canary_json),
        Value::Array(a) => a.iter().for_each(canary_json),
        _ => {}
    }
}

/// Path of the keysweep binary built for the tests.
pub fn keysweep_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_keysweep"))
}

/// A command for the keysweep binary talking to this binary's OpenBao.
pub fn keysweep(state_dir: &std::path::Path) -> Command {
    let mut c = Command::new(keysweep_bin());
    c.env("VAULT_ADDR", &bao().addr)
        .env("VAULT_TOKEN", ROOT_TOKEN)
        .env("KEYSWEEP_STATE_DIR", state_dir)
        .env_remove("KEYSWEEP_CRASH_AT")
        .env("NO_COLOR", "1");
    c
}

/// A seeded Vault estate: what the playbook lists and the secrets the test knows.
#[derive(Default)]
pub struct Estate {
    pub yaml: String,
    /// (credential id, old token) for tokens.
    pub tokens: Vec<(String, String)>,
    /// (credential id, role, role_id, old secret-id).
    pub secret_ids: Vec<(String, String, String, String)>,
    /// (credential id, kv path, old value).
    pub kv: Vec<(String, String, String)>,
    /// Every secret value the test created (to scan output for).
    pub secrets: Vec<String>,
}

pub const PROVIDER_YAML: &str = "version: 1
providers:
  bao:
    kind: vault
    address: ${env:VAULT_ADDR}
    auth: { method: token, token: \"${env:VAULT_TOKEN}\" }
    limits: { concurrency: 16 }
credentials:
";

impl Estate {
    /// `n_tok` rotated tokens (the first half already delivered to the store),
    /// `n_sid` rotated secret-ids, `n_kv` rotated KV secrets, and one revocation
    /// of each kind. `prefix` keeps estates of several tests apart.
    pub fn seed(b: &Bao, prefix: &str, n_tok: usize, n_sid: usize, n_kv: usize, with_revokes: bool) -> Estate {
        let mut e = Estate { yaml: PROVIDER_YAML.to_string(), ..Default::default() };
        let mut y = String::new();
        for i in 0..n_tok {
            let id = format!("{prefix}-tok-{i}");
            let (tok, acc) = b.create_token(&["default"], json!({ "app": id }));
            if i % 2 == 0 {
                b.kv_put(&format!("{prefix}/tokens/{id}"), json!({ "value": tok, "accessor": acc }));
                y += &format!(
                    "  - {{ id: {id}, owner: platform, provider: bao, tags: [{prefix}, token], target: {{ kind: vault_token }}, deliver_to: [{{ provider: bao, path: \"{prefix}/tokens/{{id}}\" }}], verify: {{ attempts: 3, interval: 100ms }} }}\n"
                );
            } else {
                y += &format!(
                    "  - {{ id: {id}, owner: platform, provider: bao, tags: [{prefix}, token], target: {{ kind: vault_token, accessor: {acc} }}, deliver_to: [{{ provider: bao, path: \"{prefix}/tokens/{{id}}\" }}], verify: {{ attempts: 3, interval: 100ms }} }}\n"
                );
            }
            e.secrets.push(tok.clone());
            e.tokens.push((id, tok));
        }
        for i in 0..n_sid {
            let id = format!("{prefix}-sid-{i}");
            let role = format!("{prefix}-role-{i}");
            let role_id = b.create_role(&role);
            let (sid, acc) = b.create_secret_id(&role);
            b.kv_put(&format!("{prefix}/approle/{id}"), json!({ "value": sid, "accessor": acc, "role_id": role_id }));
            y += &format!(
                "  - {{ id: {id}, owner: apps, provider: bao, tags: [{prefix}, approle], target: {{ kind: vault_approle_secret_id, role: {role} }}, deliver_to: [{{ provider: bao, path: \"{prefix}/approle/{{id}}\" }}], verify: {{ attempts: 3, interval: 100ms }} }}\n"
            );
            e.secrets.push(sid.clone());
            e.secret_ids.push((id, role, role_id, sid));
        }
        for i in 0..n_kv {
            let id = format!("{prefix}-kv-{i}");
            let path = format!("{prefix}/shared/{id}");
            let old = format!("old-shared-password-{prefix}-{i}-Zq8");
            b.kv_put(&path, json!({ "value": old, "username": "svc" }));
            y += &format!(
                "  - {{ id: {id}, owner: data, provider: bao, tags: [{prefix}, kv], target: {{ kind: vault_kv_secret, path: \"{path}\", generate: {{ length: 40 }} }}, verify: {{ attempts: 3, interval: 100ms }} }}\n"
            );
            e.secrets.push(old.clone());
            e.kv.push((id, path, old));
        }
        if with_revokes {
            let (tok, acc) = b.create_token(&["default"], json!({}));
            y += &format!(
                "  - {{ id: {prefix}-revoke-tok, owner: sec, provider: bao, action: revoke, target: {{ kind: vault_token, accessor: {acc} }} }}\n"
            );
            e.secrets.push(tok.clone());
            e.tokens.push((format!("{prefix}-revoke-tok"), tok));
            let role = format!("{prefix}-revrole");
            let role_id = b.create_role(&role);
            let (sid, sacc) = b.create_secret_id(&role);
            y += &format!("  - {{ id: {prefix}-revoke-sid, owner: sec, provider: bao, action: revoke, target: {{ kind: vault_approle_secret_id, role: {role}, secret_id_accessor: {sacc} }} }}\n");
            e.secrets.push(sid.clone());
            e.secret_ids.push((format!("{prefix}-revoke-sid"), role, role_id, sid));
        }
        e.yaml += &y;
        e
    }

    pub fn write(&self, dir: &std::path::Path) -> PathBuf {
        let p = dir.join("playbook.yaml");
        std::fs::write(&p, &self.yaml).unwrap();
        p
    }

    /// Asserts every credential is in its correct end state, from separate
    /// clients: old secrets refused, the store's current secret works, exactly
    /// one live secret per rotated credential. Returns the new secret values.
    pub fn assert_all_correct(&self, b: &Bao, prefix: &str) -> Vec<String> {
        let mut news = vec![];
        for (id, old) in &self.tokens {
            assert!(!b.token_works(old), "{id}: old token still works");
            if id.ends_with("revoke-tok") {
                continue;
            }
            let cur = b.kv_get(&format!("{prefix}/tokens/{id}")).unwrap_or_else(|| panic!("{id}: nothing in the store"));
            let new = cur["value"].as_str().unwrap().to_string();
            assert_ne!(&new, old, "{id}: not rotated");
            assert!(b.token_works(&new), "{id}: new token (from the store) does not work");
            assert!(b.kv_get(&format!("keysweep-pending/{prefix}/tokens/{id}")).is_none(), "{id}: pending left behind");
            news.push(new);
        }
        for (id, role, role_id, old) in &self.secret_ids {
            assert!(!b.secret_id_works(role_id, old), "{id}: old secret-id still logs in");
            let (_, l) = b.call("LIST", &format!("auth/approle/role/{role}/secret-id"), None);
            let live = l["data"]["keys"].as_array().map(|a| a.len()).unwrap_or(0);
            if id.ends_with("revoke-sid") {
                assert_eq!(live, 0, "{id}: secret-ids remain");
                continue;
            }
            assert_eq!(live, 1, "{id}: expected exactly one live secret-id, found {live}");
            let cur = b.kv_get(&format!("{prefix}/approle/{id}")).unwrap();
            let new = cur["value"].as_str().unwrap().to_string();
            assert!(b.secret_id_works(role_id, &new), "{id}: new secret-id does not log in");
            news.push(new);
        }
        for (id, path, old) in &self.kv {
            let cur = b.kv_get(path).unwrap();
            let new = cur["value"].as_str().unwrap().to_string();
            assert_ne!(&new, old, "{id}: kv not rotated");
            assert_eq!(new.len(), 40, "{id}: generate.length not honoured");
            assert_eq!(cur["username"], "svc", "{id}: other fields of the secret lost");
            let meta = b.kv_meta(path).unwrap();
            assert_eq!(meta["current_version"], 2, "{id}: rotated more than once");
            assert_eq!(meta["versions"]["1"]["destroyed"], true, "{id}: old version not destroyed");
            news.push(new);
        }
        news
    }
}

/// Reads the JSON report a run wrote.
pub fn report_json(state_dir: &std::path::Path) -> Value {
    let runs = state_dir.join("runs");
    let mut dirs: Vec<_> = std::fs::read_dir(&runs).unwrap().map(|e| e.unwrap().path()).collect();
    dirs.sort();
    let p = dirs.last().unwrap().join("report.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// Every file under `dir`, read as bytes.
pub fn all_files(dir: &std::path::Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

pub fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}
pub mod canary;
pub mod certs;
pub mod echo_proxy;
pub mod faultproxy;
pub mod independent;
pub mod ldap;
pub mod moto;
pub mod mysql;
pub mod postgres;
pub mod proxy;
pub mod redis;
pub mod sim;

/// Runs `cmd run <playbook> --concurrency 1` with `KEYSWEEP_CRASH_AT=point`
/// and asserts that the binary aborted there.
pub fn run_until_crash(mut cmd: Command, playbook: &std::path::Path, point: &str) {
    let out = cmd.args(["run", playbook.to_str().unwrap(), "--concurrency", "1"]).env("KEYSWEEP_CRASH_AT", point).output().unwrap();
    assert_ne!(out.status.code(), Some(0), "{point}: the crash hook did not fire");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("KEYSWEEP_CRASH_AT"), "{point}: {err}");
}

/// Runs `cmd run <playbook>` again and asserts it found the interrupted run,
/// resumed it and ended with exit 0.
pub fn run_resumes(mut cmd: Command, playbook: &std::path::Path, point: &str) {
    let out = cmd.args(["run", playbook.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{point}: {err}\n{}", String::from_utf8_lossy(&out.stdout));
    assert!(err.contains("resuming interrupted run"), "{point}: {err}");
}

/// `keysweep supply <playbook> <id> [--field K=V]...` with `value` on standard
/// input (as a person pipes it from a password manager): it must succeed and
/// never echo the value.
pub fn supply(mut cmd: Command, pb: &std::path::Path, id: &str, value: &str, fields: &[&str]) {
    use std::io::Write;
    use std::process::Stdio;
    cmd.args(["supply", pb.to_str().unwrap(), id]);
    for f in fields {
        cmd.args(["--field", f]);
    }
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(format!("{value}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains(value), "supply echoed the value");
}
