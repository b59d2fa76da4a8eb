//! Secret values: redacting, zeroizing, and generated from a declared policy.
//!
//! Every secret that passes through keysweep lives in a [`SecretString`] (a
//! wrapper of the `secrecy` crate's): its `Debug` prints `[REDACTED]`, it has no
//! `Display`, and its memory is zeroized on drop. Reading the value needs an
//! explicit `expose_secret()`, which makes every use greppable.
//!
//! Creating a `SecretString` also *registers* its value with the process-wide
//! redactor (see [`redact`]): every text that leaves keysweep — provider
//! errors, logs, reports, journal records, panic messages — has every
//! registered value (raw, URL-encoded, JSON-escaped, base64) replaced by
//! `[REDACTED]`. This is redaction by value: it catches a secret a server
//! echoes back in an error body, whatever its shape. The pattern scrubber
//! [`scrub`] stays as a second line for secrets keysweep never held.

use std::sync::RwLock;

use rand::Rng;
pub use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// A secret string. Creating one registers its value for redaction by value
/// (values shorter than [`MIN_REDACT_LEN`] are not registered: they would
/// erase ordinary words from every message).
#[derive(Default)]
pub struct SecretString(secrecy::SecretString);

impl SecretString {
    pub fn new(value: Box<str>) -> Self {
        register_str(&value);
        SecretString(secrecy::SecretString::new(value))
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        register_str(&value);
        SecretString(secrecy::SecretString::from(value))
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        register_str(value);
        SecretString(secrecy::SecretString::from(value))
    }
}

impl Clone for SecretString {
    fn clone(&self) -> Self {
        SecretString(self.0.clone())
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretString([REDACTED])")
    }
}

impl ExposeSecret<str> for SecretString {
    fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(SecretString::from)
    }
}

/// Creates a secret from a value a server answered or keysweep generated, and
/// registers it for redaction (the same as `SecretString::from`).
pub fn new_secret(value: String) -> SecretString {
    SecretString::from(value)
}

/// Values shorter than this are not registered for redaction by value.
pub const MIN_REDACT_LEN: usize = 6;

const REDACTED: &str = "[REDACTED]";

/// Every registered form of every registered value, indexed by a hash of its
/// first [`MIN_REDACT_LEN`] bytes, so that [`redact`] costs one lookup per
/// byte of text however many values are registered (a run of thousands of
/// credentials redacts every journal record and log line). Percent-encoded
/// forms are indexed upper-cased and matched case-insensitively. Values are
/// zeroized when dropped; the index holds hashes, not bytes.
#[derive(Default)]
struct Registry {
    forms: Vec<Zeroizing<String>>,
    exact: std::collections::HashMap<u64, Vec<usize>, KeyIsHash>,
    folded: std::collections::HashMap<u64, Vec<usize>, KeyIsHash>,
}

/// The index's keys are already seeded hashes ([`prefix_key`]): the map uses
/// them as they are instead of hashing them a second time.
#[derive(Default, Clone, Copy)]
struct KeyIsHash;

impl std::hash::BuildHasher for KeyIsHash {
    type Hasher = PassThrough;
    fn build_hasher(&self) -> PassThrough {
        PassThrough(0)
    }
}

struct PassThrough(u64);

impl std::hash::Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

static REGISTRY: std::sync::LazyLock<RwLock<Registry>> = std::sync::LazyLock::new(Default::default);

/// A seeded hash of the first [`MIN_REDACT_LEN`] bytes (foldhash: one
/// multiply, where SipHash made redaction the run's largest cost).
fn prefix_key(b: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    static SEED: std::sync::OnceLock<foldhash::fast::RandomState> = std::sync::OnceLock::new();
    let mut w = [0u8; 8];
    w[..MIN_REDACT_LEN].copy_from_slice(&b[..MIN_REDACT_LEN]);
    SEED.get_or_init(Default::default).hash_one(u64::from_le_bytes(w))
}

/// Registers a secret held in a [`SecretString`] (a no-op for values created
/// through `SecretString::from`, which are registered already).
pub fn register(s: &SecretString) {
    register_str(s.expose_secret());
}

/// Registers a secret value: from now on [`redact`] replaces it (and its
/// URL-encoded, JSON-escaped and base64 forms) in any text.
pub fn register_str(value: &str) {
    if value.chars().count() < MIN_REDACT_LEN || value.trim().is_empty() {
        return;
    }
    let forms = forms_of(value);
    let mut reg = REGISTRY.write().unwrap_or_else(|e| e.into_inner());
    for f in forms {
        let folded = f.contains('%');
        let f = if folded { Zeroizing::new(f.to_ascii_uppercase()) } else { f };
        let key = prefix_key(f.as_bytes());
        let known = {
            let map = if folded { &reg.folded } else { &reg.exact };
            map.get(&key).is_some_and(|ids| ids.iter().any(|i| reg.forms[*i].as_str() == f.as_str()))
        };
        if known {
            continue;
        }
        let id = reg.forms.len();
        reg.forms.push(f);
        let map = if folded { &mut reg.folded } else { &mut reg.exact };
        map.entry(key).or_default().push(id);
    }
}

/// The forms in which a value shows up in text: raw, percent-encoded (URLs,
/// form bodies), JSON-escaped (Go's encoder also escapes `<>&`), base64.
fn forms_of(value: &str) -> Vec<Zeroizing<String>> {
    let mut out: Vec<Zeroizing<String>> = vec![Zeroizing::new(value.to_string())];
    let mut add = |f: Zeroizing<String>| {
        if f.len() >= MIN_REDACT_LEN && !out.iter().any(|o| o.as_str() == f.as_str()) {
            out.push(f);
        }
    };
    add(Zeroizing::new(percent_encode(value, false)));
    add(Zeroizing::new(percent_encode(value, true)));
    let json = Zeroizing::new(serde_json::to_string(value).unwrap_or_default());
    if json.len() >= 2 {
        let inner = Zeroizing::new(json[1..json.len() - 1].to_string());
        let go = Zeroizing::new(inner.replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026"));
        add(inner);
        add(go);
    }
    let b64 = Zeroizing::new(base64(value.as_bytes()));
    add(Zeroizing::new(b64.trim_end_matches('=').to_string()));
    out
}

/// Percent-encodes all but RFC 3986 unreserved characters; `plus` writes a
/// space as `+` (HTML form encoding).
pub fn percent_encode(s: &str, plus: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' if plus => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = (chunk[0] as u32) << 16 | (*chunk.get(1).unwrap_or(&0) as u32) << 8 | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Replaces every registered secret value (in any of its forms) in `text` with
/// `[REDACTED]`. Every text that leaves keysweep passes through this.
/// Overlapping occurrences of several values are replaced as one span.
pub fn redact(text: &str) -> String {
    let reg = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
    let raw = text.as_bytes();
    if raw.len() < MIN_REDACT_LEN || reg.forms.is_empty() {
        return text.to_string();
    }
    let upper = if reg.folded.is_empty() { None } else { Some(text.to_ascii_uppercase()) };
    let mut spans: Vec<(usize, usize)> = vec![];
    for i in 0..=raw.len() - MIN_REDACT_LEN {
        let mut end = 0;
        for (hay, map) in [(Some(raw), &reg.exact), (upper.as_deref().map(str::as_bytes), &reg.folded)] {
            let Some(hay) = hay else { continue };
            if let Some(ids) = map.get(&prefix_key(&hay[i..])) {
                for id in ids {
                    let f = reg.forms[*id].as_bytes();
                    if hay[i..].starts_with(f) {
                        end = end.max(i + f.len());
                    }
                }
            }
        }
        if end > 0 {
            match spans.last_mut() {
                Some(last) if i <= last.1 => last.1 = last.1.max(end),
                _ => spans.push((i, end)),
            }
        }
    }
    if spans.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (a, b) in spans {
        out.push_str(&text[last..a]);
        out.push_str(REDACTED);
        last = b;
    }
    out.push_str(&text[last..]);
    out
}

/// An `io::Write` that collects what is written and passes it, redacted, to
/// the inner writer when flushed or dropped. One per log event (tracing's
/// `MakeWriter`), so a value is never split between two writes.
pub struct RedactingWriter<W: std::io::Write> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: std::io::Write> RedactingWriter<W> {
    pub fn new(inner: W) -> Self {
        RedactingWriter { inner, buf: Vec::new() }
    }
}

impl<W: std::io::Write> std::io::Write for RedactingWriter<W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let text = redact(&String::from_utf8_lossy(&self.buf));
            self.buf.clear();
            self.inner.write_all(text.as_bytes())?;
        }
        self.inner.flush()
    }
}

impl<W: std::io::Write> Drop for RedactingWriter<W> {
    fn drop(&mut self) {
        let _ = std::io::Write::flush(self);
    }
}

/// The value a delivery store holds for one credential: the secret itself plus
/// public fields that travel with it (an accessor, a role id, a user name).
pub struct Delivered {
    pub value: SecretString,
    pub fields: std::collections::BTreeMap<String, String>,
}

impl std::fmt::Debug for Delivered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivered").field("value", &"[REDACTED]").field("fields", &self.fields).finish()
    }
}

impl Delivered {
    pub fn new(value: SecretString) -> Self {
        Delivered { value, fields: Default::default() }
    }
    pub fn with_field(mut self, k: &str, v: impl Into<String>) -> Self {
        self.fields.insert(k.to_string(), v.into());
        self
    }
}

/// How a new random secret is generated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GeneratePolicy {
    /// Number of characters (16..=1024).
    #[serde(default = "default_length")]
    pub length: usize,
    /// Character classes to draw from.
    #[serde(default)]
    pub charset: Charset,
    /// Characters never to use (for systems that choke on quotes, say).
    #[serde(default)]
    pub exclude: String,
}

fn default_length() -> usize {
    32
}

impl Default for GeneratePolicy {
    fn default() -> Self {
        GeneratePolicy { length: default_length(), charset: Charset::default(), exclude: String::new() }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Charset {
    /// A-Z a-z 0-9
    #[default]
    Alphanumeric,
    /// Alphanumeric plus punctuation that is safe in URLs and shells: `-_.~`
    UrlSafe,
    /// Alphanumeric plus `!#%+,-./:=@^_~`
    Printable,
    /// 0-9 a-f
    Hex,
}

impl Charset {
    fn alphabet(self) -> &'static str {
        const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        match self {
            Charset::Alphanumeric => ALNUM,
            Charset::UrlSafe => "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~",
            Charset::Printable => "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#%+,-./:=@^_~",
            Charset::Hex => "0123456789abcdef",
        }
    }
}

impl GeneratePolicy {
    /// Checks the policy can produce a secret; returns a human message if not.
    pub fn check(&self) -> Result<(), String> {
        if !(16..=1024).contains(&self.length) {
            return Err(format!("length {} is outside 16..=1024", self.length));
        }
        let n = self.alphabet().len();
        if n < 10 {
            return Err(format!("only {n} characters remain after `exclude`; allow at least 10"));
        }
        Ok(())
    }

    fn alphabet(&self) -> Vec<char> {
        self.charset.alphabet().chars().filter(|c| !self.exclude.contains(*c)).collect()
    }

    /// Generates a new secret from the OS-seeded CSPRNG.
    pub fn generate(&self) -> SecretString {
        let alphabet = self.alphabet();
        let mut rng = rand::rng();
        let s: String = (0..self.length).map(|_| alphabet[rng.random_range(0..alphabet.len())]).collect();
        // `from` registers it for redaction.
        SecretString::from(s)
    }
}

/// Replaces every occurrence of any of `secrets` in `text` with `[REDACTED]`.
/// Used on error text that comes back from a provider, which may echo a
/// statement or a request body (the Infisical lesson).
pub fn redact_all(text: &str, secrets: &[&SecretString]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        let v = s.expose_secret();
        if v.len() >= 4 {
            out = out.replace(v, "[REDACTED]");
        }
    }
    out
}

/// Shortens provider error text and strips anything that looks like a token,
/// so that messages stored in the journal and reports carry no secret even when
/// a provider echoes one we did not know about.
pub fn scrub(text: &str) -> String {
    // Known values first, so that the cut below never leaves half of one.
    let text = &redact(text);
    static PATTERNS: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = PATTERNS.get_or_init(|| {
        regex::Regex::new(
            r"(?x)
            \b(hvs\.|hvb\.|hvr\.|s\.|b\.)[A-Za-z0-9_\-]{20,}    # vault / openbao tokens (not `tls.insecure_skip_verify`)
          | (AKIA|ASIA)[A-Z0-9]{16}                           # aws key ids
          | gh[pousr]_[A-Za-z0-9]{20,}                        # github
          | xox[abprs]-[A-Za-z0-9\-]{10,}                     # slack
          | [0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}  # uuid-shaped secret ids
          | (?i:password|passwd|secret|token)\s*[=:]\s*\S+       # key=value echoes
          | [A-Za-z0-9+/_\-]{32,}                             # long opaque strings
            ",
        )
        .expect("static regex")
    });
    let mut s = re.replace_all(text, "[REDACTED]").into_owned();
    if s.len() > 400 {
        let mut cut = 400;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_pattern_takes_a_token_not_a_setting_name() {
        let token = format!("s.{}", "Ab3".repeat(8));
        assert_eq!(scrub(&format!("denied: {token}")), "denied: [REDACTED]");
        assert_eq!(scrub(&format!("\"{token}\"")), "\"[REDACTED]\"");
        let hint = "`tls.insecure_skip_verify: true` turns verification off";
        assert_eq!(scrub(hint), hint);
    }

    #[test]
    fn debug_of_secret_and_delivered_is_redacted() {
        let s = SecretString::from("hunter2-very-secret".to_string());
        assert!(!format!("{s:?}").contains("hunter2"));
        let d = Delivered::new(s).with_field("accessor", "abc");
        let dbg = format!("{d:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("abc"));
    }

    #[test]
    fn generate_honours_length_charset_and_exclusions() {
        let p = GeneratePolicy { length: 64, charset: Charset::Hex, exclude: "0a".into() };
        p.check().unwrap();
        let v = p.generate();
        let v = v.expose_secret();
        assert_eq!(v.len(), 64);
        assert!(v.chars().all(|c| "123456789bcdef".contains(c)), "{v}");
        assert_ne!(p.generate().expose_secret(), v);
    }

    #[test]
    fn bad_policies_are_refused() {
        assert!(GeneratePolicy { length: 8, ..Default::default() }.check().is_err());
        let p = GeneratePolicy { length: 32, charset: Charset::Hex, exclude: "0123456789".into() };
        assert!(p.check().is_err());
    }

    #[test]
    fn scrub_removes_token_shapes() {
        // Token shapes built at run time, so no credential-looking literal sits in the source.
        let t = format!("lookup failed for s.{}: password=hunter2 AKIA{}", "fpyj9xLBGEtpFyGcwGB2Xshn", "ABCDEFGHIJKLMNOP");
        let out = scrub(&t);
        assert!(!out.contains("fpyj9x"), "{out}");
        assert!(!out.contains("hunter2"), "{out}");
        assert!(!out.contains("AKIAABCD"), "{out}");
        assert!(out.contains("lookup failed"));
    }

    #[test]
    fn redact_replaces_registered_values_in_every_form() {
        // Built at run time; short and shaped like no known token.
        let v = format!("k{}/{}&{}", "9Qz", "x+Y", "p\"w");
        let s = SecretString::from(v.clone());
        let url = percent_encode(&v, false);
        let json = serde_json::to_string(&v).unwrap();
        let b64 = base64(v.as_bytes());
        let text = format!("a {v} b {url} c {} d {json} e {b64} f", url.to_lowercase());
        let out = redact(&text);
        for form in [&v, &url, &url.to_lowercase(), &json[1..json.len() - 1].to_string(), &b64.trim_end_matches('=').to_string()] {
            assert!(!out.contains(form.as_str()), "{form:?} left in {out}");
        }
        assert!(out.starts_with("a [REDACTED] b [REDACTED] c [REDACTED] d"), "{out}");
        assert!(out.contains(" e [REDACTED]"), "{out}");
        drop(s);
        // Still registered after the secret is dropped: it stays a secret.
        assert!(!redact(&v).contains(&v));
    }

    #[test]
    fn redact_registers_generated_values_and_8_char_tokens_but_not_tiny_words() {
        let g = GeneratePolicy { length: 16, ..Default::default() }.generate();
        let out = redact(&format!("echo: {{\"password\":\"{}\"}}", g.expose_secret()));
        assert!(!out.contains(g.expose_secret()), "{out}");
        let t = format!("{}{}", "tk", "7Hq2mZ");
        register_str(&t);
        assert_eq!(redact(&format!("X-Vault-Token was {t}.")), "X-Vault-Token was [REDACTED].");
        register_str("abc");
        assert_eq!(redact("abc def"), "abc def");
    }

    #[test]
    fn overlapping_values_are_cut_as_one_span_and_many_values_stay_cheap() {
        let (a, b) = (format!("{}{}", "ovlpA1", "XYZ"), format!("{}{}", "XYZ", "ovlpB2"));
        register_str(&a);
        register_str(&b);
        assert_eq!(redact(&format!("x ovlpA1XYZovlpB2 y ü{a}ü")), "x [REDACTED] y ü[REDACTED]ü");
        // Thousands of registered values: one pass over the text each time.
        for i in 0..5000 {
            register_str(&format!("bulk-value-{i:05}"));
        }
        let text = "a log line with nothing secret in it, repeated. ".repeat(200);
        let t = std::time::Instant::now();
        for _ in 0..20 {
            assert_eq!(redact(&text), text);
        }
        assert!(t.elapsed() < std::time::Duration::from_secs(5), "{:?}", t.elapsed());
        assert_eq!(redact("id bulk-value-04999."), "id [REDACTED].");
    }

    #[test]
    fn redacting_writer_redacts_what_it_flushes() {
        let t = format!("{}{}", "wr1ter-", "s3cret");
        register_str(&t);
        let mut out = Vec::new();
        {
            let mut w = RedactingWriter::new(&mut out);
            std::io::Write::write_all(&mut w, format!("got {t} back\n").as_bytes()).unwrap();
        }
        assert_eq!(String::from_utf8(out).unwrap(), "got [REDACTED] back\n");
    }

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn redact_all_replaces_known_values() {
        let s = SecretString::from("abcd1234".to_string());
        assert_eq!(redact_all("x abcd1234 y", &[&s]), "x [REDACTED] y");
    }
}
