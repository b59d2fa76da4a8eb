//! Where things are in a playbook file: a path such as
//! `credentials[3].target.kind` or `providers.bao.address`, and the 1-based
//! line and column of the node it leads to in the file's tree
//! ([`super::doc`], whose nodes carry their positions), or of the key of a
//! map entry.

use std::fmt;

use super::doc::Node;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    /// The start of a file, used when nothing better is known.
    pub const START: Pos = Pos { line: 1, column: 1 };

    /// Where a node is.
    pub fn of(n: &Node) -> Pos {
        Pos { line: n.line as usize, column: n.column as usize }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One step of a [`YamlPath`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A path to a node of a YAML document, written `credentials[3].target.kind`.
/// Keys that are not plain words are quoted: `providers["bao.prod"].address`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct YamlPath(pub Vec<Seg>);

impl YamlPath {
    /// The document's root node.
    pub fn root() -> YamlPath {
        YamlPath(Vec::new())
    }
    /// This path extended by a map key.
    pub fn key(&self, k: impl Into<String>) -> YamlPath {
        let mut v = self.0.clone();
        v.push(Seg::Key(k.into()));
        YamlPath(v)
    }
    /// This path extended by a sequence index.
    pub fn index(&self, i: usize) -> YamlPath {
        let mut v = self.0.clone();
        v.push(Seg::Index(i));
        YamlPath(v)
    }
    /// The path one step up, or `None` at the root.
    pub fn parent(&self) -> Option<YamlPath> {
        if self.0.is_empty() {
            None
        } else {
            Some(YamlPath(self.0[..self.0.len() - 1].to_vec()))
        }
    }
    /// The last key of the path, if it ends in one.
    pub fn last_key(&self) -> Option<&str> {
        match self.0.last() {
            Some(Seg::Key(k)) => Some(k),
            _ => None,
        }
    }
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
    /// Extends this path by a map key in place (undone by [`YamlPath::pop`]).
    pub fn push_key(&mut self, k: impl Into<String>) {
        self.0.push(Seg::Key(k.into()));
    }
    /// Extends this path by a sequence index in place.
    pub fn push_index(&mut self, i: usize) {
        self.0.push(Seg::Index(i));
    }
    pub fn pop(&mut self) {
        self.0.pop();
    }
}

pub(crate) fn is_plain_key(k: &str) -> bool {
    !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl fmt::Display for YamlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Seg::Key(k) if is_plain_key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                Seg::Key(k) => write!(f, "[{k:?}]")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A map key as paths spell it: a string as written, a number or boolean as
/// serde_yaml prints it, `~` for null, `?` for a collection.
pub(crate) fn key_string(k: &Node) -> String {
    use super::doc::Value;
    match &k.untag().value {
        Value::String(s) => s.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "~".into(),
        _ => "?".into(),
    }
}

fn key_is(k: &Node, name: &str) -> bool {
    match k.untag().as_str() {
        Some(s) => s == name,
        None => key_string(k) == name,
    }
}

/// One step down from `n`: the value of an entry whose key is `k` (the
/// first, or with `last` the last, should two keys print alike), or item `i`.
fn step<'a>(n: &'a Node, seg: &Seg, last: bool) -> Option<(&'a Node, Option<&'a Node>)> {
    match seg {
        Seg::Key(k) => {
            let entries = n.as_mapping()?;
            let found = if last { entries.iter().rev().find(|(key, _)| key_is(key, k)) } else { entries.iter().find(|(key, _)| key_is(key, k)) };
            found.map(|(key, v)| (v, Some(key)))
        }
        Seg::Index(i) => n.as_sequence()?.get(*i).map(|v| (v, None)),
    }
}

/// The node at `path`, if there is one.
pub(crate) fn node_at<'a>(root: &'a Node, path: &YamlPath) -> Option<&'a Node> {
    let mut n = root;
    for s in &path.0 {
        n = step(n, s, false)?.0;
    }
    Some(n)
}

/// Where the node at `path` is, or its nearest ancestor that exists.
pub fn nearest(root: &Node, path: &YamlPath) -> Pos {
    let mut n = root;
    for s in &path.0 {
        match step(n, s, true) {
            Some((next, _)) => n = next,
            None => break,
        }
    }
    Pos::of(n)
}

/// Where the key of the map entry at `path` is; else as [`nearest`].
pub fn key_or_nearest(root: &Node, path: &YamlPath) -> Pos {
    if let Some((last @ Seg::Key(_), parent)) = path.0.split_last() {
        let mut n = Some(root);
        for s in parent {
            n = n.and_then(|n| step(n, s, true)).map(|(v, _)| v);
        }
        if let Some((_, Some(k))) = n.and_then(|p| step(p, last, true)) {
            return Pos::of(k);
        }
    }
    nearest(root, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> YamlPath {
        // Test helper: parse `a.b[2].c` (plain keys only).
        let mut path = YamlPath::root();
        for part in s.split('.') {
            let (name, rest) = part.split_once('[').map(|(a, b)| (a, Some(b))).unwrap_or((part, None));
            if !name.is_empty() {
                path = path.key(name);
            }
            if let Some(rest) = rest {
                for idx in rest.split('[') {
                    path = path.index(idx.trim_end_matches(']').parse().unwrap());
                }
            }
        }
        path
    }

    const DOC: &str = "\
version: 1
providers:
  bao:
    kind: vault
    address: ${env:VAULT_ADDR}
    auth: { method: token, token: \"${env:VAULT_TOKEN}\" }
credentials:
  - id: ci-token
    tags: [a, b]
    target: { kind: vault_token, accessor: abc123 }
  -   id: x
      empty:
      deliver_to:
      - provider: bao
        path: apps/{id}
";

    #[test]
    fn paths_display_like_the_docs() {
        assert_eq!(p("credentials[3].target.kind").to_string(), "credentials[3].target.kind");
        assert_eq!(YamlPath::root().key("providers").key("bao.prod").key("address").to_string(), "providers[\"bao.prod\"].address");
        assert_eq!(p("a.b[1]").parent().unwrap().to_string(), "a.b");
        assert_eq!(YamlPath::root().to_string(), "");
    }

    fn tree(text: &str) -> Node {
        super::super::doc::parse(text, &mut 1_000_000).unwrap()
    }

    #[test]
    fn finds_keys_and_values() {
        let t = tree(DOC);
        let at = |s: &str| node_at(&t, &p(s)).map(|n| (n.line as usize, n.column as usize));
        let key = |s: &str| key_or_nearest(&t, &p(s));
        assert_eq!(at("version"), Some((1, 10)));
        assert_eq!((key("version").line, key("version").column), (1, 1));
        assert_eq!(at("providers.bao"), Some((4, 5)));
        assert_eq!(at("providers.bao.address"), Some((5, 14)));
        assert_eq!(at("providers.bao.auth"), Some((6, 11)));
        assert_eq!(at("providers.bao.auth.token"), Some((6, 35)));
        assert_eq!((key("providers.bao.auth.token").line, key("providers.bao.auth.token").column), (6, 28));
        assert_eq!(at("credentials"), Some((8, 3)));
        assert_eq!(at("credentials[0]"), Some((8, 5)));
        assert_eq!(at("credentials[0].id"), Some((8, 9)));
        assert_eq!(at("credentials[0].tags[1]"), Some((9, 15)));
        assert_eq!(at("credentials[0].target.kind"), Some((10, 21)));
        assert_eq!(at("credentials[1]"), Some((11, 7)));
        // An empty value points at its key, not at the next line.
        assert_eq!(at("credentials[1].empty"), Some((12, 7)));
        assert_eq!(at("credentials[1].deliver_to[0].path"), Some((15, 15)));
        assert_eq!(at(""), Some((1, 1)));
    }

    #[test]
    fn nearest_walks_up_to_an_existing_ancestor() {
        let t = tree(DOC);
        let pos = nearest(&t, &p("credentials[0].target.nonexistent.deeper"));
        assert_eq!((pos.line, pos.column), (10, 13));
        assert_eq!(nearest(&t, &p("nothing.here")), Pos::START);
    }

    #[test]
    fn complex_keys_and_aliases() {
        let t = tree("a: &x {b: 1}\n? [k1, k2]\n: v\nc: *x\nd: 2\n");
        let at = |s: &str| node_at(&t, &p(s)).map(|n| (n.line as usize, n.column as usize));
        assert_eq!(at("d"), Some((5, 4)));
        assert_eq!(at("c"), Some((4, 4)));
        // Inside what an alias made: the alias.
        assert_eq!(at("c.b"), Some((4, 4)));
        assert_eq!(at("a.b"), Some((1, 11)));
    }
}
