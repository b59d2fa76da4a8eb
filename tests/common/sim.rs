//! Test support: a vendor simulator (`sims/<vendor>.py`, a real HTTP server
//! on loopback) per call, killed when the handle drops or the test process
//! exits. Its `/_sim/*` admin endpoints are the independent view a test
//! checks outcomes against: the simulator's own state, not keysweep's counters.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

pub struct Sim {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub port: u16,
    /// The CA `curl` trusts for an HTTPS simulator.
    ca: Option<PathBuf>,
}

pub fn sims_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sims")
}

/// Starts `sims/<vendor>.py` on a free port and waits until it listens.
pub fn start(vendor: &str) -> Sim {
    start_with(vendor, &[])
}

/// Like [`start`], serving HTTPS with the `server.pem`/`server.key` of `dir`
/// (see `certs::server`); `base` is then `https://localhost:PORT`.
pub fn start_tls(vendor: &str, dir: &std::path::Path) -> Sim {
    let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
    let mut s = start_with(vendor, &["--tls-cert", &cert.display().to_string(), "--tls-key", &key.display().to_string()]);
    s.base = format!("https://localhost:{}", s.port);
    s.ca = Some(dir.join("ca.pem"));
    s
}

fn start_with(vendor: &str, extra: &[&str]) -> Sim {
    let script = sims_dir().join(format!("{vendor}.py"));
    let mut child = Command::new("python3")
        .arg("-u")
        .arg(&script)
        .args(["--port", "0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .stdin(Stdio::null())
        .spawn()
        .expect("start simulator");
    // The watchdog ends the simulator when this test process is gone (a
    // panicking test may never drop the handle).
    let (me, pid) = (std::process::id(), child.id());
    #[allow(clippy::zombie_processes)]
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!("while kill -0 {me} 2>/dev/null && kill -0 {pid} 2>/dev/null; do sleep 1; done; kill {pid} 2>/dev/null"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn();
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("simulator output");
    let port: u16 =
        line.trim().rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("simulator {vendor} did not start: {line:?}"));
    Sim { child, base: format!("http://127.0.0.1:{port}"), port, ca: None }
}

impl Sim {
    /// Calls the simulator (vendor API or `/_sim/...`) with curl; returns (status, JSON body).
    pub fn call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> (u16, Value) {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-X", method, "-w", "\n%{http_code}"]);
        if let Some(ca) = &self.ca {
            cmd.arg("--cacert").arg(ca);
        }
        for (k, v) in headers {
            cmd.args(["-H", &format!("{k}: {v}")]);
        }
        if let Some(b) = body {
            if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
                cmd.args(["-H", "Content-Type: application/json"]);
            }
            cmd.args(["--data-binary", b]);
        }
        cmd.arg(format!("{}{path}", self.base));
        let out = cmd.output().expect("curl");
        let s = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = s.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), serde_json::from_str(body).unwrap_or(Value::String(body.to_string())))
    }
    pub fn admin(&self, method: &str, what: &str, body: Option<Value>) -> Value {
        let b = body.map(|b| b.to_string());
        let (s, v) = self.call(method, &format!("/_sim/{what}"), &[], b.as_deref());
        assert_eq!(s, 200, "simulator admin {what}: {v}");
        v
    }
    pub fn state(&self) -> Value {
        self.admin("GET", "state", None)
    }
    /// Installs fault rules (see `sims/simbase.py`).
    pub fn faults(&self, rules: Value) {
        self.admin("POST", "faults", Some(serde_json::json!({ "rules": rules })));
    }
    pub fn rate(&self, per_second: Option<u32>) {
        self.admin("POST", "rate", Some(serde_json::json!({ "per_second": per_second })));
    }
    pub fn log(&self) -> Vec<Value> {
        self.admin("GET", "log", None).as_array().cloned().unwrap_or_default()
    }
    /// Requests that arrived in each wall-clock second.
    pub fn arrivals(&self) -> Vec<u64> {
        self.admin("GET", "arrivals", None).as_object().map(|m| m.values().filter_map(Value::as_u64).collect()).unwrap_or_default()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Records every secret a simulator's seed answered (tokens, refresh
/// tokens, client secrets, at any depth) with the canary scan.
pub fn canary_secrets(v: &Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("token" | "refresh_token" | "client_secret", Value::String(s)) => super::canary(s),
                    _ => canary_secrets(x),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(canary_secrets),
        _ => {}
    }
}
