//! Test support: a value-based canary scan. Given the secret values a test
//! created or saw, it searches files, directories and captured outputs for
//! each value in the forms text can carry it in — raw, URL-encoded (either
//! hex case), JSON-escaped, base64 (standard and URL-safe, at any alignment
//! inside a longer encoded text) — and fails naming where and at which byte
//! offset, never printing the value itself (so a failing test leaks nothing).
//!
//! ```ignore
//! let c = Canary::new(&secrets);
//! c.assert_clean(&[state_dir], &[("stdout", &out.stdout), ("stderr", &out.stderr)]);
//! ```
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Values shorter than this are not scanned for (they match ordinary text);
/// keysweep's redaction skips them too.
pub const MIN_LEN: usize = 6;

pub struct Canary {
    /// (secret index, form name, bytes, case-insensitive)
    needles: Vec<(usize, &'static str, Vec<u8>, bool)>,
    count: usize,
}

/// One place a secret was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub place: String,
    pub offset: usize,
    /// Index of the secret in the list given to [`Canary::new`].
    pub secret: usize,
    pub form: &'static str,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "secret #{} ({} form) in {} at byte offset {}", self.secret, self.form, self.place, self.offset)
    }
}

fn b64(data: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = (chunk[0] as u32) << 16 | (*chunk.get(1).unwrap_or(&0) as u32) << 8 | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..=chunk.len() {
            out.push(alphabet[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// The base64 characters that encode only `value`'s bits when it starts `k`
/// bytes into a longer encoded text (k = 0, 1, 2).
fn b64_cores(value: &[u8], alphabet: &[u8; 64]) -> Vec<String> {
    (0..3usize)
        .map(|k| {
            let mut data = vec![0u8; k];
            data.extend_from_slice(value);
            let enc = b64(&data, alphabet);
            let start = (8 * k).div_ceil(6);
            let end = (8 * (k + value.len())) / 6;
            enc[start..end.min(enc.len())].to_string()
        })
        .collect()
}

fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Canary {
    /// Secrets shorter than [`MIN_LEN`] are refused: a canary that cannot
    /// tell a secret from ordinary text proves nothing.
    pub fn new<S: AsRef<str>>(secrets: &[S]) -> Canary {
        const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut needles = vec![];
        for (i, s) in secrets.iter().enumerate() {
            let s = s.as_ref();
            assert!(s.len() >= MIN_LEN, "canary: secret #{i} is shorter than {MIN_LEN} bytes; use longer test secrets");
            let mut add = |form: &'static str, v: String, ci: bool| {
                // Base64 cores shorter than this would match by chance.
                if v.len() >= MIN_LEN && !needles.iter().any(|(j, _, n, _): &(usize, &str, Vec<u8>, bool)| *j == i && n == v.as_bytes()) {
                    needles.push((i, form, v.into_bytes(), ci));
                }
            };
            add("raw", s.to_string(), false);
            add("url-encoded", pct(s), true);
            let json = serde_json::to_string(s).unwrap();
            add("json-escaped", json[1..json.len() - 1].to_string(), false);
            for core in b64_cores(s.as_bytes(), STD) {
                add("base64", core, false);
            }
            for core in b64_cores(s.as_bytes(), URL) {
                add("base64url", core, false);
            }
        }
        Canary { needles, count: secrets.len() }
    }

    /// Every place `bytes` holds a secret; `place` names it in the findings.
    pub fn scan_bytes(&self, place: &str, bytes: &[u8]) -> Vec<Finding> {
        let upper: Vec<u8> = bytes.to_ascii_uppercase();
        let mut out = vec![];
        for (i, form, needle, ci) in &self.needles {
            let (hay, n): (&[u8], Vec<u8>) = if *ci { (&upper, needle.to_ascii_uppercase()) } else { (bytes, needle.clone()) };
            if let Some(off) = hay.windows(n.len()).position(|w| w == n.as_slice()) {
                out.push(Finding { place: place.to_string(), offset: off, secret: *i, form });
            }
        }
        out
    }

    /// Scans a file, or every file under a directory (recursively).
    pub fn scan_path(&self, path: &Path) -> Vec<Finding> {
        let mut out = vec![];
        for f in files_under(path) {
            match std::fs::read(&f) {
                Ok(bytes) => out.extend(self.scan_bytes(&f.display().to_string(), &bytes)),
                Err(e) => panic!("canary: cannot read {}: {e}", f.display()),
            }
        }
        out
    }

    /// Fails the test naming every finding (never the value) in `paths` and
    /// the captured `outputs` (name, bytes). Returns how much it scanned.
    pub fn assert_clean(&self, paths: &[&Path], outputs: &[(&str, &[u8])]) -> Scanned {
        let mut findings = vec![];
        let mut scanned = Scanned { secrets: self.count, files: 0, bytes: 0 };
        for p in paths {
            for f in files_under(p) {
                scanned.files += 1;
                scanned.bytes += std::fs::metadata(&f).map(|m| m.len() as usize).unwrap_or(0);
            }
            findings.extend(self.scan_path(p));
        }
        for (name, bytes) in outputs {
            scanned.bytes += bytes.len();
            findings.extend(self.scan_bytes(name, bytes));
        }
        if !findings.is_empty() {
            let list: Vec<String> = findings.iter().map(|f| format!("  - {f}")).collect();
            panic!("canary: {} secret occurrence(s) found:\n{}", findings.len(), list.join("\n"));
        }
        scanned
    }
}

/// What a clean scan covered (for asserting it covered something).
#[derive(Debug, Clone, Copy)]
pub struct Scanned {
    pub secrets: usize,
    pub files: usize,
    pub bytes: usize,
}

fn files_under(p: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&d) else { continue };
        if meta.is_dir() {
            for e in std::fs::read_dir(&d).unwrap() {
                stack.push(e.unwrap().path());
            }
        } else if meta.is_file() {
            out.push(d);
        }
    }
    out.sort();
    out
}

/// The canary finds each form, and names place and offset without the value.
pub fn self_check() {
    let s = format!("{}{}", "canary-", "S3cr\"t/x");
    let c = Canary::new(std::slice::from_ref(&s));
    let json = serde_json::to_string(&s).unwrap();
    for (form, text) in [
        ("raw", format!("xx{s}")),
        ("url-encoded", format!("q={}", pct(&s).to_lowercase())),
        ("json-escaped", json.clone()),
        ("base64", format!("Basic {}", b64(format!("user:{s}").as_bytes(), b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"))),
    ] {
        let f = c.scan_bytes("t", text.as_bytes());
        assert!(f.iter().any(|f| f.form == form), "canary missed the {form} form: {f:?}");
        let shown = f.iter().map(|f| f.to_string()).collect::<Vec<_>>().join(" ");
        assert!(!shown.contains("S3cr"), "a finding printed the value");
    }
    assert!(c.scan_bytes("t", b"nothing [REDACTED] here").is_empty());
}
