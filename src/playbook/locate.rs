//! Where things are in a playbook file: an index from a path such as
//! `credentials[3].target.kind` or `providers.bao.address` to the 1-based line
//! and column of the node (and, for map entries, of the key too).
//!
//! serde_yaml parses values but forgets positions once a value is built, so the
//! loader reads the same text a second time with yaml-rust2's event parser,
//! which reports a marker for every node.

use std::collections::HashMap;
use std::fmt;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    /// The start of a file, used when nothing better is known.
    pub const START: Pos = Pos { line: 1, column: 1 };

    fn from_marker(m: Marker) -> Pos {
        // yaml-rust2 counts lines from 1 and columns from 0.
        Pos { line: m.line().max(1), column: m.col() + 1 }
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
}

fn is_plain_key(k: &str) -> bool {
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

/// Positions of every node of one YAML document, by path.
#[derive(Debug, Clone, Default)]
pub struct LocationIndex {
    values: HashMap<String, Pos>,
    keys: HashMap<String, Pos>,
}

impl LocationIndex {
    /// Indexes `src`. Parsing stops at the first syntax error; what was read
    /// before it stays indexed (the loader reports syntax errors from serde_yaml).
    pub fn build(src: &str) -> LocationIndex {
        let mut b = Builder::default();
        let mut parser = Parser::new_from_str(src);
        let _ = parser.load(&mut b, false);
        b.index
    }

    /// Where the node at `path` starts (for a map entry: its value).
    pub fn value(&self, path: &YamlPath) -> Option<Pos> {
        self.values.get(&path.to_string()).copied()
    }

    /// Where the key of the map entry at `path` is.
    pub fn key(&self, path: &YamlPath) -> Option<Pos> {
        self.keys.get(&path.to_string()).copied()
    }

    /// The position of `path`, or of its nearest ancestor that is indexed.
    pub fn nearest(&self, path: &YamlPath) -> Pos {
        let mut p = Some(path.clone());
        while let Some(q) = p {
            if let Some(pos) = self.value(&q) {
                return pos;
            }
            p = q.parent();
        }
        Pos::START
    }

    /// The key's position if `path` is a map entry, else the node's (or the
    /// nearest ancestor's).
    pub fn key_or_nearest(&self, path: &YamlPath) -> Pos {
        self.key(path).unwrap_or_else(|| self.nearest(path))
    }

    /// Number of indexed nodes (for tests).
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

enum Frame {
    Map {
        path: YamlPath,
        /// Marker of the `MappingStart` event, until the first key settles
        /// whether this is a block mapping (whose marker lies after its first key).
        start: Option<Marker>,
        /// The key awaiting its value; `None` when a key comes next.
        key: Option<(String, Pos)>,
        /// This map is itself a key of its parent (a "complex key").
        is_key: bool,
    },
    Seq {
        path: YamlPath,
        next: usize,
        is_key: bool,
    },
}

#[derive(Default)]
struct Builder {
    index: LocationIndex,
    stack: Vec<Frame>,
}

/// What the node an event starts is, relative to its parent.
enum Role {
    Root,
    Key,
    Value(YamlPath, Option<Pos>),
}

impl Builder {
    /// Settles the role of the node starting now, advancing the parent frame.
    fn role(&mut self) -> Role {
        match self.stack.last_mut() {
            None => Role::Root,
            Some(Frame::Seq { path, next, .. }) => {
                let p = path.index(*next);
                *next += 1;
                Role::Value(p, None)
            }
            Some(Frame::Map { path, key, .. }) => match key.take() {
                None => Role::Key,
                Some((k, kpos)) => Role::Value(path.key(k), Some(kpos)),
            },
        }
    }

    /// Records a key of the innermost map, settling the map's own position on its first key.
    fn on_key(&mut self, name: String, mark: Marker) {
        let kpos = Pos::from_marker(mark);
        if let Some(Frame::Map { path, start, key, .. }) = self.stack.last_mut() {
            if let Some(s) = start.take() {
                // A block mapping's start marker lies after its first key; a
                // flow mapping's points at its `{`.
                let pos = if mark.index() < s.index() { kpos } else { Pos::from_marker(s) };
                self.index.values.insert(path.to_string(), pos);
            }
            self.index.keys.insert(path.key(name.clone()).to_string(), kpos);
            *key = Some((name, kpos));
        }
    }

    /// The path of a map or sequence starting now. A complex key (a map or
    /// sequence used as a key) is indexed under `?`, where nothing looks.
    fn open(&mut self, mark: Marker) -> (YamlPath, bool) {
        match self.role() {
            Role::Root => (YamlPath::root(), false),
            Role::Value(p, _) => (p, false),
            Role::Key => {
                // Settle the parent map's position as a plain key would.
                self.on_key("?".into(), mark);
                let path = match self.stack.last_mut() {
                    Some(Frame::Map { path, key, .. }) => {
                        *key = None;
                        path.key("?")
                    }
                    _ => YamlPath::root().key("?"),
                };
                (path, true)
            }
        }
    }

    /// After a map or sequence that was a key, its parent map expects the value.
    fn close(&mut self, was_key: bool, mark: Marker) {
        if was_key {
            if let Some(Frame::Map { key, .. }) = self.stack.last_mut() {
                *key = Some(("?".into(), Pos::from_marker(mark)));
            }
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(text, style, ..) => match self.role() {
                Role::Key => self.on_key(text, mark),
                Role::Root => {
                    self.index.values.insert(String::new(), Pos::from_marker(mark));
                }
                Role::Value(path, kpos) => {
                    // An empty value (`key:` and nothing) is reported on the
                    // next line; the key is the better place to point at.
                    let pos = match (style, text.is_empty(), kpos) {
                        (TScalarStyle::Plain, true, Some(k)) => k,
                        _ => Pos::from_marker(mark),
                    };
                    self.index.values.insert(path.to_string(), pos);
                }
            },
            Event::Alias(_) => match self.role() {
                Role::Key => self.on_key("*".into(), mark),
                Role::Root => {}
                Role::Value(path, _) => {
                    self.index.values.insert(path.to_string(), Pos::from_marker(mark));
                }
            },
            Event::MappingStart(..) => {
                let (path, is_key) = self.open(mark);
                self.stack.push(Frame::Map { path, start: Some(mark), key: None, is_key });
            }
            Event::SequenceStart(..) => {
                let (path, is_key) = self.open(mark);
                self.index.values.insert(path.to_string(), Pos::from_marker(mark));
                self.stack.push(Frame::Seq { path, next: 0, is_key });
            }
            Event::MappingEnd => {
                if let Some(Frame::Map { path, start, is_key, .. }) = self.stack.pop() {
                    if let Some(s) = start {
                        // An empty mapping: no key settled its position.
                        self.index.values.insert(path.to_string(), Pos::from_marker(s));
                    }
                    self.close(is_key, mark);
                }
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq { is_key, .. }) = self.stack.pop() {
                    self.close(is_key, mark);
                }
            }
            _ => {}
        }
    }
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

    #[test]
    fn indexes_keys_and_values() {
        let ix = LocationIndex::build(DOC);
        let at = |s: &str| ix.value(&p(s)).map(|p| (p.line, p.column));
        assert_eq!(at("version"), Some((1, 10)));
        assert_eq!(ix.key(&p("version")).map(|p| (p.line, p.column)), Some((1, 1)));
        assert_eq!(at("providers.bao"), Some((4, 5)));
        assert_eq!(at("providers.bao.address"), Some((5, 14)));
        assert_eq!(at("providers.bao.auth"), Some((6, 11)));
        assert_eq!(at("providers.bao.auth.token"), Some((6, 35)));
        assert_eq!(ix.key(&p("providers.bao.auth.token")).map(|p| (p.line, p.column)), Some((6, 28)));
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
    fn nearest_walks_up_to_an_indexed_ancestor() {
        let ix = LocationIndex::build(DOC);
        let pos = ix.nearest(&p("credentials[0].target.nonexistent.deeper"));
        assert_eq!((pos.line, pos.column), (10, 13));
        assert_eq!(ix.nearest(&p("nothing.here")), Pos::START);
    }

    #[test]
    fn survives_complex_keys_aliases_and_syntax_errors() {
        let ix = LocationIndex::build("a: &x {b: 1}\n? [k1, k2]\n: v\nc: *x\nd: 2\n");
        assert_eq!(ix.value(&p("d")).map(|p| (p.line, p.column)), Some((5, 4)));
        assert_eq!(ix.value(&p("c")).map(|p| (p.line, p.column)), Some((4, 4)));
        let ix = LocationIndex::build("a: 1\nb: [unclosed\n");
        assert_eq!(ix.value(&p("a")).map(|p| (p.line, p.column)), Some((1, 4)));
    }
}
