//! Secret values: redacting, zeroizing, and generated from a declared policy.
//!
//! Every secret that passes through keysweep lives in a [`SecretString`] (from the
//! `secrecy` crate): its `Debug` prints `[REDACTED]`, it has no `Display`, and its
//! memory is zeroized on drop. Reading the value needs an explicit
//! `expose_secret()`, which makes every use greppable.

use rand::Rng;
pub use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

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
    static PATTERNS: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = PATTERNS.get_or_init(|| {
        regex::Regex::new(
            r"(?x)
            (hvs\.|hvb\.|hvr\.|s\.|b\.)[A-Za-z0-9_\-]{20,}      # vault / openbao tokens
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
    fn redact_all_replaces_known_values() {
        let s = SecretString::from("abcd1234".to_string());
        assert_eq!(redact_all("x abcd1234 y", &[&s]), "x [REDACTED] y");
    }
}
