//! `${env:VAR}` interpolation, and the shapes of secrets pasted where a
//! reference belongs (pure functions, unit-tested in `loader.rs`).

use std::sync::LazyLock;

use regex::Regex;

use super::locate::{Seg, YamlPath};
use super::model::is_env_name;
use super::{Diagnostic, Location};

// ---------------------------------------------------------------------------
// Interpolation and secret detection (pure functions, unit-tested below)
// ---------------------------------------------------------------------------

/// A problem with one `${...}` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InterpError {
    /// `${env:VAR}` with `VAR` unset.
    Missing(String),
    /// `${env:...}` whose name is not an environment variable name.
    BadName(String),
    /// `${...}` of another kind than `env:`.
    Unknown(String),
    /// `${` without its `}`.
    Unterminated,
}

impl InterpError {
    pub(super) fn diagnostic(&self, at: Location) -> Diagnostic {
        match self {
            InterpError::Missing(v) => {
                Diagnostic::new(Some(at), format!("environment variable `{v}` is not set")).hint(format!("export {v}=... or remove the reference"))
            }
            InterpError::BadName(n) => Diagnostic::new(Some(at), format!("`{n}` is not an environment variable name"))
                .hint("write ${env:NAME} with NAME made of letters, digits and `_`"),
            InterpError::Unknown(r) => Diagnostic::new(Some(at), format!("unknown reference `${{{r}}}`"))
                .hint("only ${env:NAME} is interpolated; write $${ for a literal ${"),
            InterpError::Unterminated => Diagnostic::new(Some(at), "`${` without a closing `}`").hint("write ${env:NAME}, or $${ for a literal ${"),
        }
    }
}

/// Replaces every `${env:VAR}` in `s` with the variable's value; `$${` writes `${`.
pub(crate) fn interpolate(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, Vec<InterpError>> {
    let mut out = String::with_capacity(s.len());
    let mut errors = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(r) = rest.strip_prefix("$${") {
            out.push_str("${");
            rest = r;
        } else if let Some(r) = rest.strip_prefix("${") {
            let Some(end) = r.find('}') else {
                errors.push(InterpError::Unterminated);
                out.push_str(rest);
                rest = "";
                break;
            };
            let inner = &r[..end];
            match inner.strip_prefix("env:") {
                Some(name) if is_env_name(name) => match env(name) {
                    Some(v) => out.push_str(&v),
                    None => errors.push(InterpError::Missing(name.to_string())),
                },
                Some(name) => errors.push(InterpError::BadName(name.to_string())),
                None => errors.push(InterpError::Unknown(inner.to_string())),
            }
            rest = &r[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

pub(super) static SECRET_SHAPES: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        (r"\b(?:hvs|hvb|s)\.[A-Za-z0-9]{20,}", "a Vault token"),
        (r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b", "an AWS access key id"),
        (r"\b(?:ghp|gho|ghs|ghu|ghr)_[A-Za-z0-9]{20,}", "a GitHub token"),
        (r"\bgithub_pat_[A-Za-z0-9_]{20,}", "a GitHub token"),
        (r"\bxox[abprs]-[A-Za-z0-9-]{8,}", "a Slack token"),
        (r"-----BEGIN", "a PEM block (key material)"),
    ]
    .into_iter()
    .map(|(re, what)| (Regex::new(re).expect("secret pattern"), what))
    .collect()
});

/// What kind of secret `s` looks like, if it looks like one.
pub(crate) fn looks_like_secret(s: &str) -> Option<&'static str> {
    if let Some(what) = SECRET_SHAPES.iter().find(|(re, _)| re.is_match(s)).map(|(_, what)| *what) {
        // A key id next to a 40-character key is the pair, secret and all.
        if what == "an AWS access key id" && has_aws_secret_key_shape(s) {
            return Some("an AWS secret access key");
        }
        return Some(what);
    }
    None
}

/// Like [`looks_like_secret`], for free text (descriptions, owners, tags),
/// where any 40-character run of base64 characters mixing upper and lower case
/// is taken for an AWS secret access key (a 40-digit hex commit id is not).
pub(crate) fn looks_like_secret_in_text(s: &str) -> Option<&'static str> {
    looks_like_secret(s).or_else(|| has_aws_secret_key_shape(s).then_some("an AWS secret access key"))
}

/// A run of exactly 40 characters of `[A-Za-z0-9/+=]` with upper and lower case letters in it.
pub(super) fn has_aws_secret_key_shape(s: &str) -> bool {
    let is_b64 = |c: char| c.is_ascii_alphanumeric() || c == '/' || c == '+' || c == '=';
    s.split(|c: char| !is_b64(c)).any(|run| {
        run.len() == 40
            && run.chars().any(|c| c.is_ascii_uppercase())
            && run.chars().any(|c| c.is_ascii_lowercase())
            && run.chars().any(|c| c.is_ascii_digit() || c == '/' || c == '+')
    })
}

/// The field name when `path` is a free-text field: printed in plans and
/// reports, never used to reach a system (`${env:}` is not expanded there).
pub(super) fn free_text_field(path: &YamlPath) -> Option<&str> {
    use Seg::{Index, Key};
    let segs = path.0.as_slice();
    let field = match segs {
        [Key(c), Index(_), Key(f)] if c == "credentials" && ["owner", "description", "id"].contains(&f.as_str()) => f,
        [Key(c), Index(_), Key(f), Index(_)] if c == "credentials" && ["tags", "depends_on"].contains(&f.as_str()) => f,
        [Key(d), Key(f)] if d == "defaults" && f == "owner" => f,
        [Key(d), Key(f), Index(_)] if d == "defaults" && f == "tags" => f,
        [Key(d), Key(i), Index(_), Key(f)] if d == "discovery" && i == "ignore" && f == "reason" => f,
        _ => return None,
    };
    Some(field.as_str())
}

/// `$${` in free text writes `${`; any `${...}` reference is refused: the
/// interpolation scan with no variable defined, so every reference errs.
pub(super) fn unescape_free_text(s: &str) -> Result<String, ()> {
    interpolate(s, &|_| None).map_err(|_| ())
}
