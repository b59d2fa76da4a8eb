//! The small languages of a recipe: templates with named placeholders
//! (`/api/v1/tokens/{id}`, `Bearer {secret}`), JSON-pointer conditions on an
//! answer's body, and the ordered rules that turn one answer into a verdict.
//! Pure functions, checked at load time and unit-tested below.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Lit(String),
    /// `{name}`.
    Ph(String),
}

/// Splits a template into literal text and `{name}` placeholders; `{{` and
/// `}}` write a literal brace. A placeholder name is lower-case letters,
/// digits and `_`.
pub fn parse(s: &str) -> Result<Vec<Piece>, String> {
    let mut out = vec![];
    let mut lit = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                lit.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                lit.push('}');
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => name.push(c),
                        None => return Err(format!("`{{{name}` has no closing `}}`")),
                    }
                }
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
                    return Err(format!(
                        "`{{{name}}}` is not a placeholder (a name of lower-case letters, digits and `_`); write `{{{{` for a literal brace"
                    ));
                }
                if !lit.is_empty() {
                    out.push(Piece::Lit(std::mem::take(&mut lit)));
                }
                out.push(Piece::Ph(name));
            }
            '}' => return Err("a `}` without its `{`; write `}}` for a literal brace".into()),
            c => lit.push(c),
        }
    }
    if !lit.is_empty() {
        out.push(Piece::Lit(lit));
    }
    Ok(out)
}

/// The placeholders a template uses, in order.
pub fn placeholders(s: &str) -> Result<Vec<String>, String> {
    Ok(parse(s)?
        .into_iter()
        .filter_map(|p| match p {
            Piece::Ph(n) => Some(n),
            Piece::Lit(_) => None,
        })
        .collect())
}

/// Every string inside a JSON template, with its place (`a.b[0]`).
pub fn json_strings(v: &Value) -> Vec<(String, &str)> {
    fn walk<'a>(v: &'a Value, at: String, out: &mut Vec<(String, &'a str)>) {
        match v {
            Value::String(s) => out.push((at, s)),
            Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| walk(x, format!("{at}[{i}]"), out)),
            Value::Object(m) => m.iter().for_each(|(k, x)| walk(x, if at.is_empty() { k.clone() } else { format!("{at}.{k}") }, out)),
            _ => {}
        }
    }
    let mut out = vec![];
    walk(v, String::new(), &mut out);
    out
}

/// Fills a template. `vars` gives a placeholder's value (`None`: unknown to
/// this request); `encode` percent-encodes values for a URL path or query.
pub fn render(s: &str, vars: &dyn Fn(&str) -> Option<String>, encode: bool) -> Result<String, String> {
    let mut out = String::new();
    for p in parse(s)? {
        match p {
            Piece::Lit(l) => out.push_str(&l),
            Piece::Ph(n) => {
                let v = vars(&n).ok_or_else(|| format!("`{{{n}}}` has no value here"))?;
                out.push_str(&if encode { crate::secret::percent_encode(&v, false) } else { v });
            }
        }
    }
    Ok(out)
}

/// Fills every string of a JSON template.
pub fn render_json(v: &Value, vars: &dyn Fn(&str) -> Option<String>) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) => Value::String(render(s, vars, false)?),
        Value::Array(a) => Value::Array(a.iter().map(|x| render_json(x, vars)).collect::<Result<_, _>>()?),
        Value::Object(m) => Value::Object(m.iter().map(|(k, x)| Ok((k.clone(), render_json(x, vars)?))).collect::<Result<_, String>>()?),
        other => other.clone(),
    })
}

/// A test of one value of an answer's JSON body, found by a JSON pointer
/// (RFC 6901: `/errorCode`, `/error/code`, `/data/0/id`; `""` is the whole
/// body). Exactly one of `equals`, `one_of`, `exists`, `empty` is given.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cond {
    /// Where the value is (a JSON pointer).
    pub pointer: String,
    /// The value is exactly this (numbers compare by value: `1002` and `1002.0` agree).
    pub equals: Option<Value>,
    /// The value is one of these.
    pub one_of: Option<Vec<Value>>,
    /// `true`: a value is there (not null); `false`: none is.
    pub exists: Option<bool>,
    /// `true`: the value is an empty array, object or string; `false`: a non-empty one.
    pub empty: Option<bool>,
}

fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if a.is_number() && b.is_number() => x == y,
        _ => a == b,
    }
}

impl Cond {
    /// What is wrong with it, if anything (pure, for the loader).
    pub fn problem(&self) -> Option<String> {
        if let Some(p) = pointer_problem(&self.pointer) {
            return Some(p);
        }
        let n = [self.equals.is_some(), self.one_of.is_some(), self.exists.is_some(), self.empty.is_some()].iter().filter(|b| **b).count();
        match n {
            1 => None,
            0 => Some(format!("the condition on `{}` tests nothing: give one of `equals`, `one_of`, `exists`, `empty`", self.pointer)),
            _ => Some(format!("the condition on `{}` gives {n} tests; give exactly one of `equals`, `one_of`, `exists`, `empty`", self.pointer)),
        }
    }

    pub fn matches(&self, body: &Value) -> bool {
        let v = body.pointer(&self.pointer).filter(|v| !v.is_null());
        if let Some(e) = &self.equals {
            return v.is_some_and(|v| same(v, e));
        }
        if let Some(set) = &self.one_of {
            return v.is_some_and(|v| set.iter().any(|e| same(v, e)));
        }
        if let Some(want) = self.exists {
            return v.is_some() == want;
        }
        if let Some(want) = self.empty {
            let empty = match v {
                Some(Value::Array(a)) => Some(a.is_empty()),
                Some(Value::Object(o)) => Some(o.is_empty()),
                Some(Value::String(s)) => Some(s.is_empty()),
                _ => None,
            };
            return empty == Some(want);
        }
        false
    }

    /// How the condition reads in evidence, e.g. `/errorCode = 1002`.
    pub fn describe(&self) -> String {
        if let Some(e) = &self.equals {
            return format!("{} = {e}", self.pointer);
        }
        if let Some(s) = &self.one_of {
            return format!("{} in {}", self.pointer, Value::Array(s.clone()));
        }
        if let Some(e) = self.exists {
            return format!("{} {}", self.pointer, if e { "present" } else { "absent" });
        }
        if let Some(e) = self.empty {
            return format!("{} {}", self.pointer, if e { "empty" } else { "not empty" });
        }
        self.pointer.clone()
    }
}

/// What is wrong with a JSON pointer, if anything.
pub fn pointer_problem(p: &str) -> Option<String> {
    (!p.is_empty() && !p.starts_with('/'))
        .then(|| format!("`{p}` is not a JSON pointer: it starts with `/` (e.g. `/errorCode`), or is empty for the whole body"))
}

/// Whether some string in the body contains `needle`.
pub fn body_contains(body: &Value, needle: &str) -> bool {
    match body {
        Value::String(s) => s.contains(needle),
        Value::Array(a) => a.iter().any(|v| body_contains(v, needle)),
        Value::Object(m) => m.iter().any(|(k, v)| k.contains(needle) || body_contains(v, needle)),
        _ => false,
    }
}

/// A string at a pointer (numbers as their decimal text).
pub fn text_at(body: &Value, pointer: &str) -> Option<String> {
    match body.pointer(pointer)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// What a matching rule says about the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleVerdict {
    /// The vendor accepted the secret.
    Alive,
    /// The vendor refused the secret itself, in its documented words.
    Dead,
    /// Not proof either way (an IP allow-list, a permission); stops the
    /// rules below from matching.
    Unknown,
}

/// One ordered rule of a probe or lookup: an answer with this status *and*
/// this body is `verdict`. The first rule that matches decides; an answer no
/// rule matches is unknown. An `alive` or `dead` rule must test the body (a
/// WAF's page with the same status is never proof), and never a 429 or 5xx.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The HTTP status.
    pub status: u16,
    /// A condition on the JSON body.
    pub body: Option<Cond>,
    /// Some string of the JSON body contains this text.
    pub body_contains: Option<String>,
    pub verdict: RuleVerdict,
    /// What the answer means in the vendor's words, quoted in the evidence
    /// (e.g. "Your Access Token is invalid.").
    pub means: Option<String>,
}

impl Rule {
    pub fn has_body_test(&self) -> bool {
        self.body.is_some() || self.body_contains.as_deref().is_some_and(|s| !s.is_empty())
    }

    pub fn matches(&self, status: u16, body: &Value) -> bool {
        status == self.status
            && self.body.as_ref().is_none_or(|c| c.matches(body))
            && self.body_contains.as_deref().is_none_or(|n| body_contains(body, n))
    }

    /// The rule as evidence: `401 /errorCode = 1002 (Your Access Token is invalid.)`.
    pub fn describe(&self) -> String {
        let mut s = self.status.to_string();
        if let Some(c) = &self.body {
            s.push_str(&format!(" {}", c.describe()));
        }
        if let Some(t) = &self.body_contains {
            s.push_str(&format!(" body contains {t:?}"));
        }
        if let Some(m) = &self.means {
            s.push_str(&format!(" ({m})"));
        }
        s
    }

    /// The rule as it matched `body`, with the value the vendor sent:
    /// `401 /error/code = "token_revoked"`.
    pub fn describe_match(&self, body: &Value) -> String {
        let mut s = self.status.to_string();
        if let Some(c) = &self.body {
            match body.pointer(&c.pointer).filter(|_| c.equals.is_some() || c.one_of.is_some()) {
                Some(v) => s.push_str(&format!(" {} = {v}", c.pointer)),
                None => s.push_str(&format!(" {}", c.describe())),
            }
        }
        if let Some(t) = &self.body_contains {
            s.push_str(&format!(" body contains {t:?}"));
        }
        if let Some(m) = &self.means {
            s.push_str(&format!(" ({m})"));
        }
        s
    }

    /// What is wrong with it, if anything.
    pub fn problem(&self) -> Option<(String, String)> {
        if let Some(p) = self.body.as_ref().and_then(Cond::problem) {
            return Some((p, "e.g. `body: { pointer: /errorCode, equals: 1002 }`".into()));
        }
        if !(100..=599).contains(&self.status) {
            return Some((format!("status {} is not an HTTP status", self.status), "write e.g. `status: 401`".into()));
        }
        if self.verdict == RuleVerdict::Unknown {
            return None;
        }
        let v = if self.verdict == RuleVerdict::Dead { "dead" } else { "alive" };
        if self.status == 429 || self.status >= 500 {
            return Some((
                format!("a `{v}` rule on status {}: a 429 or 5xx is never proof of anything", self.status),
                "remove the rule: such answers are unknown, retried and reported as unverified".into(),
            ));
        }
        if !self.has_body_test() {
            return Some((
                format!(
                    "a `{v}` rule on status {} without a body match: a WAF's or proxy's page with the same status would count as proof",
                    self.status
                ),
                "add `body: { pointer: …, equals: … }` or `body_contains: …` naming the vendor's own answer (e.g. its error code)".into(),
            ));
        }
        None
    }
}

/// The first matching rule, if any.
pub fn decide<'a>(rules: &'a [Rule], status: u16, body: &Value) -> Option<&'a Rule> {
    rules.iter().find(|r| r.matches(status, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_name_their_placeholders_and_escape_braces() {
        assert_eq!(placeholders("/api/v1/tokens/{id}/x/{user}").unwrap(), vec!["id", "user"]);
        assert_eq!(placeholders("Bearer {secret}").unwrap(), vec!["secret"]);
        assert_eq!(placeholders("{{literal}}").unwrap(), Vec::<String>::new());
        assert!(parse("/a/{id").unwrap_err().contains("no closing"));
        assert!(parse("/a/{Id}").unwrap_err().contains("not a placeholder"));
        assert!(parse("/a/}").is_err());
        let vars = |n: &str| (n == "id").then(|| "a b/c".to_string());
        assert_eq!(render("/t/{id}", &vars, true).unwrap(), "/t/a%20b%2Fc");
        assert_eq!(render("{{x}} {id}", &vars, false).unwrap(), "{x} a b/c");
        assert!(render("/t/{user}", &vars, true).unwrap_err().contains("no value"));
        let body = json!({ "name": "keysweep {id}", "n": 1, "l": ["{id}"] });
        assert_eq!(render_json(&body, &vars).unwrap(), json!({ "name": "keysweep a b/c", "n": 1, "l": ["a b/c"] }));
        assert_eq!(json_strings(&body).len(), 2);
    }

    #[test]
    fn conditions_test_one_value_each() {
        let b = json!({ "errorCode": 1002, "error": { "code": "token_revoked" }, "list": [], "role": "admin" });
        let c = |v: Value| serde_json::from_value::<Cond>(v).unwrap();
        assert!(c(json!({ "pointer": "/errorCode", "equals": 1002 })).matches(&b));
        assert!(c(json!({ "pointer": "/errorCode", "equals": 1002.0 })).matches(&b));
        assert!(!c(json!({ "pointer": "/errorCode", "equals": "1002" })).matches(&b));
        assert!(c(json!({ "pointer": "/error/code", "one_of": ["token_revoked", "token_expired"] })).matches(&b));
        assert!(c(json!({ "pointer": "/list", "empty": true })).matches(&b));
        assert!(!c(json!({ "pointer": "/missing", "empty": true })).matches(&b), "absent is not empty");
        assert!(c(json!({ "pointer": "/missing", "exists": false })).matches(&b));
        assert!(c(json!({ "pointer": "/role", "one_of": ["owner", "admin"] })).matches(&b));
        assert!(c(json!({ "pointer": "/x", "exists": true, "equals": 1 })).problem().unwrap().contains("exactly one"));
        assert!(c(json!({ "pointer": "errorCode", "equals": 1 })).problem().unwrap().contains("JSON pointer"));
    }

    #[test]
    fn proof_needs_status_and_body() {
        let r = |v: Value| serde_json::from_value::<Rule>(v).unwrap();
        assert!(r(json!({ "status": 401, "verdict": "dead" })).problem().unwrap().0.contains("without a body match"));
        assert!(r(json!({ "status": 429, "verdict": "dead", "body_contains": "x" })).problem().unwrap().0.contains("never proof"));
        assert!(r(json!({ "status": 403, "verdict": "unknown" })).problem().is_none());
        let rules = vec![
            r(json!({ "status": 401, "verdict": "unknown", "body": { "pointer": "/errorCode", "equals": 1001 } })),
            r(json!({ "status": 401, "verdict": "dead", "body": { "pointer": "/errorCode", "one_of": [1001, 1002] } })),
        ];
        assert_eq!(decide(&rules, 401, &json!({ "errorCode": 1002 })).unwrap().verdict, RuleVerdict::Dead);
        assert_eq!(decide(&rules, 401, &json!({ "errorCode": 1001 })).unwrap().verdict, RuleVerdict::Unknown, "the first match decides");
        assert!(decide(&rules, 401, &json!({ "message": "blocked" })).is_none());
        assert!(decide(&rules, 403, &json!({ "errorCode": 1002 })).is_none());
        assert!(body_contains(&json!({ "a": ["x token_revoked y"] }), "token_revoked"));
    }
}
