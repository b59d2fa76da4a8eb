//! A YAML document as a tree of nodes that know where they are written: the
//! loader's one parse of a playbook file.
//!
//! libyaml's event parser ([`super::libyaml`], the parser serde_yaml 0.9
//! runs, so the syntax accepted is the same) feeds a small builder; scalars
//! are resolved as serde_yaml resolves them (the YAML 1.2 core schema as
//! serde_yaml applies it: `~`/`null`/empty, `true`/`false`, decimal, `0x`,
//! `0o`, `0b` integers, floats with `.inf`/`.nan`, a leading zero keeps digits
//! a string, `!!str`/`!!int`/`!!bool`/`!!float`/`!!null`, local `!tags`), so
//! the tree holds exactly what `serde_yaml::from_str::<serde_yaml::Value>`
//! returns ([`Node::to_serde_yaml`]; `tests/loader_props.rs` compares the two on
//! generated documents). Each node keeps its 1-based line and column.
//!
//! What serde_yaml refuses, [`parse`] refuses: a syntax error, more than one
//! document, an alias to an unknown anchor or to a node that contains it, more
//! than [`MAX_DEPTH`] nested collections (aliases included), a duplicate key,
//! an integer beyond 64 bits, a `!!int`/`!!bool`/`!!float`/`!!null` scalar that
//! is not one, and serde_yaml's own alias bound (more alias expansions than
//! 100 per event). The loader then asks serde_yaml for its message, so
//! messages stay serde_yaml's. Two rules are stricter than serde_yaml's:
//! - aliases may add at most [`MAX_ALIAS_NODES`] nodes to a playbook (all its
//!   files together): serde_yaml bounds the number of alias expansions, not
//!   their size, so one large anchor repeated can make billions of values;
//! - an alias may not name an anchor defined more than once before it:
//!   serde_yaml numbers anchors so that such an alias can read a value
//!   defined after it (YAML says: the latest before it), so the reading is
//!   ambiguous.
//!
//! A `&Node` is a serde `Deserializer` that behaves as serde_yaml's `&Value`
//! does (the same visitor calls and the same error messages), so the model's
//! derives see what they saw before.

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, EnumAccess, Expected, MapAccess, SeqAccess, Unexpected, VariantAccess, Visitor};
use serde::forward_to_deserialize_any;

use super::libyaml::{Event, Kind, Mark, Parser, ScalarStyle, SyntaxError};

/// Most collections nested in one another (serde_yaml's recursion limit).
pub const MAX_DEPTH: usize = 128;

/// Most nodes aliases may add to one playbook, all files together.
pub const MAX_ALIAS_NODES: u64 = 1_000_000;

// ---------------------------------------------------------------------------
// The tree
// ---------------------------------------------------------------------------

/// One node: a value and where it is written (1-based line and column; for
/// a block mapping, its first key; for a value made by an alias, the alias).
#[derive(Clone, Debug)]
pub struct Node {
    pub line: u32,
    pub column: u32,
    pub value: Value,
}

/// A YAML value, as serde_yaml's `Value` has it.
#[derive(Clone, Debug)]
pub enum Value {
    Null,
    Bool(bool),
    Number(Number),
    String(Str),
    Sequence(Box<[Node]>),
    /// Entries in the order written; keys are unique.
    Mapping(Box<[(Node, Node)]>),
    Tagged(Box<Tagged>),
}

/// A value with a local tag (`!name value`).
#[derive(Clone, Debug)]
pub struct Tagged {
    /// Without its leading `!` (a lone `!` stays `!`), as serde_yaml keeps it.
    pub tag: Str,
    pub value: Node,
}

/// A YAML number, as serde_yaml's `Number` has it.
#[derive(Clone, Copy, Debug)]
pub enum Number {
    PosInt(u64),
    NegInt(i64),
    Float(f64),
}

impl Number {
    fn from_i64(i: i64) -> Number {
        if i < 0 {
            Number::NegInt(i)
        } else {
            Number::PosInt(i as u64)
        }
    }
    fn from_f64(f: f64) -> Number {
        // YAML has one NaN (serde_yaml drops sign and payload).
        Number::Float(if f.is_nan() { f64::NAN } else { f })
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // As serde_yaml prints it (`1.0`, `.inf`, `.nan`).
        let n: serde_yaml::Number = match *self {
            Number::PosInt(u) => u.into(),
            Number::NegInt(i) => i.into(),
            Number::Float(x) => x.into(),
        };
        fmt::Display::fmt(&n, f)
    }
}

/// A string; up to 22 bytes are kept in the node itself (most keys and values
/// of a playbook), longer ones on the heap.
#[derive(Clone)]
pub struct Str(Repr);

const INLINE: usize = 22;

#[derive(Clone)]
enum Repr {
    Inline(u8, [u8; INLINE]),
    Heap(Box<str>),
}

impl Str {
    pub fn new(s: &str) -> Str {
        if s.len() <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..s.len()].copy_from_slice(s.as_bytes());
            Str(Repr::Inline(s.len() as u8, buf))
        } else {
            Str(Repr::Heap(s.into()))
        }
    }
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Built from a `&str` in `new`: always UTF-8.
            Repr::Inline(n, buf) => std::str::from_utf8(&buf[..usize::from(*n)]).unwrap_or_default(),
            Repr::Heap(s) => s,
        }
    }
}

impl From<String> for Str {
    fn from(s: String) -> Str {
        if s.len() <= INLINE {
            Str::new(&s)
        } else {
            Str(Repr::Heap(s.into_boxed_str()))
        }
    }
}

impl std::ops::Deref for Str {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq for Str {
    fn eq(&self, other: &Str) -> bool {
        self.as_str() == other.as_str()
    }
}

// The tree is most of a large playbook's memory: keep nodes small.
const _: () = assert!(std::mem::size_of::<Value>() <= 24 && std::mem::size_of::<Node>() <= 32);

impl Node {
    fn new(pos: (u32, u32), value: Value) -> Node {
        Node { line: pos.0, column: pos.1, value }
    }

    /// The node without its tags.
    pub fn untag(&self) -> &Node {
        let mut n = self;
        while let Value::Tagged(t) = &n.value {
            n = &t.value;
        }
        n
    }

    pub fn untag_mut(&mut self) -> &mut Node {
        match self.value {
            Value::Tagged(ref mut t) => t.value.untag_mut(),
            _ => self,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    /// The text of a string node (not through tags).
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// A mapping's entries (through tags).
    pub fn as_mapping(&self) -> Option<&[(Node, Node)]> {
        match &self.untag().value {
            Value::Mapping(m) => Some(m),
            _ => None,
        }
    }

    /// A sequence's items, to change (through tags).
    pub fn as_sequence_mut(&mut self) -> Option<&mut [Node]> {
        match &mut self.untag_mut().value {
            Value::Sequence(s) => Some(s),
            _ => None,
        }
    }

    /// A sequence's items (through tags).
    pub fn as_sequence(&self) -> Option<&[Node]> {
        match &self.untag().value {
            Value::Sequence(s) => Some(s),
            _ => None,
        }
    }

    /// The value of the entry whose key is the string `key` (through tags),
    /// as serde_yaml's `Value::get` finds it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_mapping()?.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v)
    }

    /// A scalar's text: a string as written, a number or boolean as serde_yaml prints it.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.untag().value {
            Value::String(s) => Some(s.to_string()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// A copy of this mapping without the entry whose key is the string `key`,
    /// removed as serde_yaml's `Mapping::remove` removes it (the last entry
    /// takes its place). `None` if this is not a mapping.
    pub fn without_key(&self, key: &str) -> Option<Node> {
        let Value::Mapping(m) = &self.value else { return None };
        let mut entries = m.to_vec();
        if let Some(i) = entries.iter().position(|(k, _)| k.as_str() == Some(key)) {
            entries.swap_remove(i);
        }
        Some(Node { line: self.line, column: self.column, value: Value::Mapping(entries.into_boxed_slice()) })
    }

    /// Takes the entry whose key is the string `key` out of this mapping
    /// (through tags), as serde_yaml's `Mapping::remove` does.
    pub fn remove_key(&mut self, key: &str) -> Option<(Node, Node)> {
        let Value::Mapping(m) = &mut self.untag_mut().value else { return None };
        let i = m.iter().position(|(k, _)| k.as_str() == Some(key))?;
        let mut entries = std::mem::take(m).into_vec();
        let removed = entries.swap_remove(i);
        *m = entries.into_boxed_slice();
        Some(removed)
    }

    /// The value of the entry whose key is the string `key` (not through tags).
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        match &mut self.untag_mut().value {
            Value::Mapping(m) => m.iter_mut().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v),
            _ => None,
        }
    }

    /// A null node at the start of a file.
    pub fn null() -> Node {
        Node { line: 1, column: 1, value: Value::Null }
    }

    /// How many nodes this one is, itself included.
    pub fn count(&self) -> u64 {
        1 + match &self.value {
            Value::Sequence(s) => s.iter().map(Node::count).sum(),
            Value::Mapping(m) => m.iter().map(|(k, v)| k.count() + v.count()).sum(),
            Value::Tagged(t) => t.value.count(),
            _ => 0,
        }
    }

    /// The value serde_yaml would have made of the same text.
    pub fn to_serde_yaml(&self) -> serde_yaml::Value {
        use serde_yaml::Value as Y;
        match &self.value {
            Value::Null => Y::Null,
            Value::Bool(b) => Y::Bool(*b),
            Value::Number(Number::PosInt(u)) => Y::Number((*u).into()),
            Value::Number(Number::NegInt(i)) => Y::Number((*i).into()),
            Value::Number(Number::Float(f)) => Y::Number((*f).into()),
            Value::String(s) => Y::String(s.to_string()),
            Value::Sequence(s) => Y::Sequence(s.iter().map(Node::to_serde_yaml).collect()),
            Value::Mapping(m) => {
                let mut out = serde_yaml::Mapping::new();
                for (k, v) in m.iter() {
                    out.insert(k.to_serde_yaml(), v.to_serde_yaml());
                }
                Y::Mapping(out)
            }
            Value::Tagged(t) => Y::Tagged(Box::new(serde_yaml::value::TaggedValue {
                tag: serde_yaml::value::Tag::new(t.tag.as_str()),
                value: t.value.to_serde_yaml(),
            })),
        }
    }

    /// A copy of this node with every position set to `pos` (what an alias makes).
    fn copy_at(&self, pos: (u32, u32)) -> Node {
        let value = match &self.value {
            Value::Sequence(s) => Value::Sequence(s.iter().map(|n| n.copy_at(pos)).collect()),
            Value::Mapping(m) => Value::Mapping(m.iter().map(|(k, v)| (k.copy_at(pos), v.copy_at(pos))).collect()),
            Value::Tagged(t) => Value::Tagged(Box::new(Tagged { tag: t.tag.clone(), value: t.value.copy_at(pos) })),
            v => v.clone(),
        };
        Node::new(pos, value)
    }
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

/// Why a text is not a document: serde_yaml refuses it too (its message is
/// the one to show), except [`ParseError::TooManyAliasNodes`].
#[derive(Debug, Clone, PartialEq)]
pub enum ParseError {
    Syntax(SyntaxError),
    MoreThanOneDocument,
    UnknownAnchor(Mark),
    /// More than [`MAX_DEPTH`] nested collections, or an alias inside the node it names.
    RecursionLimit(Mark),
    /// More alias expansions than serde_yaml allows (100 per event).
    RepetitionLimit,
    DuplicateKey(Mark),
    /// A scalar serde_yaml cannot make a value of (an integer beyond 64
    /// bits, `!!int x`, ...).
    BadScalar(Mark, String),
    /// Aliases would add more than [`MAX_ALIAS_NODES`] nodes (stricter than serde_yaml).
    TooManyAliasNodes(Mark),
    /// An alias names an anchor defined more than once (stricter than serde_yaml).
    RedefinedAnchor(Mark, String),
}

impl ParseError {
    /// Where the problem is, 1-based.
    pub fn position(&self) -> (usize, usize) {
        let m = match self {
            ParseError::Syntax(e) => e.problem_mark,
            ParseError::UnknownAnchor(m)
            | ParseError::RecursionLimit(m)
            | ParseError::DuplicateKey(m)
            | ParseError::BadScalar(m, _)
            | ParseError::TooManyAliasNodes(m)
            | ParseError::RedefinedAnchor(m, _) => *m,
            ParseError::MoreThanOneDocument | ParseError::RepetitionLimit => return (1, 1),
        };
        (m.line as usize + 1, m.column as usize + 1)
    }

    /// A message of our own, for when serde_yaml does not refuse the text.
    pub fn message(&self) -> String {
        match self {
            ParseError::Syntax(e) => match &e.context {
                Some(c) => format!("{}, {c}", e.problem),
                None => e.problem.clone(),
            },
            ParseError::MoreThanOneDocument => "deserializing from YAML containing more than one document is not supported".into(),
            ParseError::UnknownAnchor(_) => "unknown anchor".into(),
            ParseError::RecursionLimit(_) => "recursion limit exceeded".into(),
            ParseError::RepetitionLimit => "repetition limit exceeded".into(),
            ParseError::DuplicateKey(_) => "duplicate entry in YAML map".into(),
            ParseError::BadScalar(_, m) => m.clone(),
            ParseError::TooManyAliasNodes(_) => {
                format!("YAML aliases (`*name`) would add more than {MAX_ALIAS_NODES} values to the playbook")
            }
            ParseError::RedefinedAnchor(_, name) => format!("`*{name}` names the anchor `&{name}`, which is defined more than once before it"),
        }
    }

    /// A hint for the person who wrote it.
    pub fn hint(&self) -> &'static str {
        match self {
            ParseError::TooManyAliasNodes(_) => "write the values out, or share them with `defaults:` and includes",
            ParseError::RedefinedAnchor(..) => "give each anchor its own name",
            _ => "check the indentation and quoting around this point",
        }
    }

    /// serde_yaml reads what this refuses (one of the two stricter rules).
    pub fn stricter_than_serde_yaml(&self) -> bool {
        matches!(self, ParseError::TooManyAliasNodes(_) | ParseError::RedefinedAnchor(..))
    }
}

/// Parses `text` (one document) into a tree. `alias_budget` is how many nodes
/// aliases may still add; what this document's aliases add is taken from it.
pub fn parse(text: &str, alias_budget: &mut u64) -> Result<Node, ParseError> {
    let mut b = Builder {
        text: text.as_bytes(),
        stack: Vec::new(),
        scratch: Vec::new(),
        anchors: HashMap::new(),
        next_anchor: 0,
        root: None,
        jumps: 0,
        alias_budget,
    };
    let mut parser = Parser::new(text);
    let mut events: u64 = 0;
    loop {
        let event = match parser.next() {
            Some(Ok(e)) => e,
            Some(Err(e)) => return Err(ParseError::Syntax(e)),
            None => break,
        };
        match event.kind() {
            Kind::StreamStart => {}
            Kind::StreamEnd => break,
            Kind::DocumentStart => {}
            Kind::DocumentEnd => {
                // serde_yaml reads one more event: anything but the end of the
                // stream (another document, or an error) is refused.
                return match parser.next() {
                    Some(Ok(e)) if e.kind() == Kind::StreamEnd => b.finish(events),
                    _ => Err(ParseError::MoreThanOneDocument),
                };
            }
            _ => {
                events += 1;
                b.event(&event)?;
            }
        }
    }
    // A stream without any document: serde_yaml reads null.
    b.finish(events)
}

/// A collection being built.
struct Open {
    pos: (u32, u32),
    is_map: bool,
    /// Local tag (`!x`): the finished collection is wrapped in it.
    tag: Option<Str>,
    /// The anchor defined here and its definition number.
    anchor: Option<(Box<[u8]>, u64)>,
    /// Where its items (a mapping: keys and values, alternating) start on the builder's scratch stack.
    first: usize,
    /// Alias expansions serde_yaml makes reading what is inside so far.
    jumps: u64,
    /// Deepest nesting of collections below (0: none).
    height: u32,
    mark: Mark,
    /// Positioned at its first item (a sequence whose `-` is level with its key).
    at_first_item: bool,
}

/// A finished node with what serde_yaml's reading of it costs.
struct Anchored {
    node: Node,
    jumps: u64,
    /// Collections nested in it, itself included.
    height: u32,
    count: u64,
}

enum Slot {
    /// Defined on a collection not finished yet (definition number).
    Open(u64),
    Done(Box<Anchored>),
}

/// An anchor name: how often it has been defined, and its latest definition.
struct Anchor {
    definitions: u32,
    slot: Slot,
}

struct Builder<'t, 'b> {
    text: &'t [u8],
    stack: Vec<Open>,
    /// The items of every open collection, innermost last: a finished
    /// collection takes its own in one allocation of the exact size.
    scratch: Vec<Node>,
    anchors: HashMap<Box<[u8]>, Anchor>,
    next_anchor: u64,
    root: Option<Node>,
    /// serde_yaml's jump count for the root (finished nodes only).
    jumps: u64,
    alias_budget: &'b mut u64,
}

impl Builder<'_, '_> {
    fn event(&mut self, e: &Event) -> Result<(), ParseError> {
        match e.kind() {
            Kind::Scalar => {
                let (bytes, style) = e.scalar().unwrap_or((&[], ScalarStyle::Plain));
                let mut pos = self.position(e);
                // An empty value (`key:` and nothing) is reported where its
                // key is, not on whatever line follows.
                if style == ScalarStyle::Plain && bytes.is_empty() {
                    if let Some(k) = self.pending_key() {
                        pos = (k.line, k.column);
                    }
                }
                let mut value = resolve_scalar(bytes, style, e.tag()).map_err(|m| ParseError::BadScalar(e.start(), m))?;
                if let Value::Tagged(t) = &mut value {
                    (t.value.line, t.value.column) = pos;
                }
                let node = Node::new(pos, value);
                let anchored = e.anchor().map(|a| (a.to_vec().into_boxed_slice(), node.clone()));
                if let Some((name, copy)) = anchored {
                    self.next_anchor += 1;
                    let count = copy.count();
                    self.define(name, Slot::Done(Box::new(Anchored { node: copy, jumps: 0, height: 0, count })));
                }
                self.add(node, 0, 0, e.start())
            }
            Kind::SequenceStart | Kind::MappingStart => {
                if self.stack.len() >= MAX_DEPTH {
                    return Err(ParseError::RecursionLimit(e.start()));
                }
                let tag = e.tag().and_then(local_tag).map(Str::new);
                let anchor = e.anchor().map(|a| {
                    self.next_anchor += 1;
                    let name: Box<[u8]> = a.to_vec().into_boxed_slice();
                    self.define(name.clone(), Slot::Open(self.next_anchor));
                    (name, self.next_anchor)
                });
                self.stack.push(Open {
                    pos: self.position(e),
                    is_map: e.kind() == Kind::MappingStart,
                    tag,
                    anchor,
                    first: self.scratch.len(),
                    jumps: 0,
                    height: 0,
                    mark: e.start(),
                    at_first_item: e.kind() == Kind::SequenceStart
                        && self.text.get(e.start().index as usize) == Some(&b'-')
                        && e.end().index > e.start().index,
                });
                Ok(())
            }
            Kind::SequenceEnd | Kind::MappingEnd => {
                let Some(open) = self.stack.pop() else { return Ok(()) };
                let items = self.scratch.drain(open.first..);
                let value = if open.is_map {
                    let mut entries = Vec::with_capacity(items.len().div_ceil(2));
                    entries.extend(Pairs(items));
                    let entries = entries.into_boxed_slice();
                    if duplicate_key(&entries).is_some() {
                        return Err(ParseError::DuplicateKey(open.mark));
                    }
                    Value::Mapping(entries)
                } else {
                    Value::Sequence(items.collect())
                };
                let mut node = Node::new(open.pos, value);
                if let Some(tag) = open.tag {
                    node = Node::new(open.pos, Value::Tagged(Box::new(Tagged { tag, value: node })));
                }
                let height = open.height + 1;
                if let Some((name, id)) = open.anchor {
                    // Only if no later definition took the name meanwhile.
                    if let Some(a) = self.anchors.get_mut(&name).filter(|a| matches!(a.slot, Slot::Open(n) if n == id)) {
                        let count = node.count();
                        a.slot = Slot::Done(Box::new(Anchored { node: node.clone(), jumps: open.jumps, height, count }));
                    }
                }
                self.add(node, open.jumps, height, open.mark)
            }
            Kind::Alias => {
                let name = e.anchor().unwrap_or_default();
                let a = match self.anchors.get(name) {
                    None => return Err(ParseError::UnknownAnchor(e.start())),
                    Some(a) if a.definitions > 1 => return Err(ParseError::RedefinedAnchor(e.start(), String::from_utf8_lossy(name).into_owned())),
                    // Inside the node it names: serde_yaml recurses until its limit.
                    Some(Anchor { slot: Slot::Open(_), .. }) => return Err(ParseError::RecursionLimit(e.start())),
                    Some(Anchor { slot: Slot::Done(a), .. }) => a,
                };
                if self.stack.len() + a.height as usize > MAX_DEPTH {
                    return Err(ParseError::RecursionLimit(e.start()));
                }
                if a.count > *self.alias_budget {
                    return Err(ParseError::TooManyAliasNodes(e.start()));
                }
                *self.alias_budget -= a.count;
                let m = e.start();
                let node = a.node.copy_at((m.line as u32 + 1, m.column as u32 + 1));
                let (jumps, height) = (a.jumps.saturating_add(1), a.height);
                self.add(node, jumps, height, m)
            }
            _ => Ok(()),
        }
    }

    /// (Re)defines an anchor name.
    fn define(&mut self, name: Box<[u8]>, slot: Slot) {
        let a = self.anchors.entry(name).or_insert(Anchor { definitions: 0, slot: Slot::Open(0) });
        a.definitions += 1;
        a.slot = slot;
    }

    /// The key whose value comes next, if a mapping is waiting for one.
    fn pending_key(&self) -> Option<&Node> {
        let open = self.stack.last().filter(|o| o.is_map)?;
        let n = self.scratch.len() - open.first;
        (n % 2 == 1).then(|| &self.scratch[self.scratch.len() - 1])
    }

    /// Puts a finished node (whose event started at `start`) where it belongs.
    fn add(&mut self, node: Node, jumps: u64, height: u32, start: Mark) -> Result<(), ParseError> {
        let held = self.scratch.len();
        match self.stack.last_mut() {
            None => {
                self.jumps = self.jumps.saturating_add(jumps);
                self.root = Some(node);
            }
            Some(open) => {
                open.jumps = open.jumps.saturating_add(jumps);
                open.height = open.height.max(height);
                // An indentless sequence (`key:` then `- item` level with the
                // key) is where its first item is; a block mapping where its
                // first key's content is (past an anchor or tag the key has).
                if held == open.first && ((!open.is_map && open.at_first_item) || (open.is_map && start.index == open.mark.index)) {
                    open.pos = (node.line, node.column);
                }
                self.scratch.push(node);
            }
        }
        Ok(())
    }

    fn finish(self, events: u64) -> Result<Node, ParseError> {
        // serde_yaml: more jumps than 100 per event of the document is refused.
        if self.jumps > events.max(1).saturating_mul(100) {
            return Err(ParseError::RepetitionLimit);
        }
        Ok(self.root.unwrap_or(Node { line: 1, column: 1, value: Value::Null }))
    }

    /// Where a node's content starts: the event's start, past its anchor and
    /// tag if it has them (`key: &a value` is at `value`); a block scalar
    /// (`|`, `>`) at its first line of text.
    fn position(&self, e: &Event) -> (u32, u32) {
        let start = e.start();
        let mut at = Mark { index: start.index, line: start.line, column: start.column };
        if e.anchor().is_some() || e.tag().is_some() {
            if let Some(p) = skip_properties(self.text, start, e.end()) {
                at = p;
            }
        }
        if matches!(e.scalar(), Some((_, ScalarStyle::Literal | ScalarStyle::Folded))) {
            if let Some(p) = block_scalar_text(self.text, at, e.end()) {
                at = p;
            }
        }
        (at.line as u32 + 1, at.column as u32 + 1)
    }
}

/// Where the text of a block scalar whose indicator (`|`, `>`) is at
/// `start` begins: the first character of its first line that is not blank,
/// if there is one before `end`.
fn block_scalar_text(text: &[u8], start: Mark, end: Mark) -> Option<Mark> {
    let mut i = usize::try_from(start.index).ok()?;
    let end = usize::try_from(end.index).ok()?;
    let mut line = start.line;
    // The rest of the indicator's line.
    while !matches!(text.get(i), None | Some(b'\n' | b'\r')) {
        i += 1;
    }
    loop {
        match text.get(i) {
            Some(b'\r') => i += if text.get(i + 1) == Some(&b'\n') { 2 } else { 1 },
            Some(b'\n') => i += 1,
            _ => return None,
        }
        line += 1;
        let line_start = i;
        while text.get(i) == Some(&b' ') {
            i += 1;
        }
        match text.get(i) {
            None => return None,
            Some(b'\n' | b'\r') => continue,
            Some(_) if i < end => return Some(Mark { index: i as u64, line, column: (i - line_start) as u64 }),
            Some(_) => return None,
        }
    }
}

/// Keys and values, alternating, as entries.
struct Pairs<I>(I);

impl<I: Iterator<Item = Node>> Iterator for Pairs<I> {
    type Item = (Node, Node);
    fn next(&mut self) -> Option<(Node, Node)> {
        let k = self.0.next()?;
        // The parser always gives a mapping's key a value (an empty one at the least).
        let v = self.0.next().unwrap_or(Node { line: k.line, column: k.column, value: Value::Null });
        Some((k, v))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let (lo, hi) = self.0.size_hint();
        (lo.div_ceil(2), hi.map(|h| h.div_ceil(2)))
    }
}

/// The position of the content after the properties (`&anchor`, `!tag`)
/// that start at `start`, if there is content before `end`.
fn skip_properties(text: &[u8], start: Mark, end: Mark) -> Option<Mark> {
    let (mut i, mut line, mut col) = (usize::try_from(start.index).ok()?, start.line, start.column);
    let end = usize::try_from(end.index).ok()?;
    let is_char_start = |b: u8| b & 0xC0 != 0x80;
    while let Some(&first @ (b'&' | b'!')) = text.get(i) {
        // An anchor is `&` and [A-Za-z0-9_-]; a tag runs to a blank or flow indicator.
        i += 1;
        col += 1;
        while let Some(&c) = text.get(i) {
            let ends = if first == b'&' {
                !(c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
            } else {
                matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b',' | b'[' | b']' | b'{' | b'}')
            };
            if ends {
                break;
            }
            i += 1;
            col += u64::from(is_char_start(c));
        }
        // Separation: blanks, comments, line breaks.
        loop {
            match text.get(i) {
                Some(b' ' | b'\t') => {
                    i += 1;
                    col += 1;
                }
                Some(b'#') => {
                    while let Some(&c) = text.get(i) {
                        if c == b'\n' || c == b'\r' {
                            break;
                        }
                        i += 1;
                    }
                }
                Some(b'\r') => {
                    i += if text.get(i + 1) == Some(&b'\n') { 2 } else { 1 };
                    line += 1;
                    col = 0;
                }
                Some(b'\n') => {
                    i += 1;
                    line += 1;
                    col = 0;
                }
                _ => break,
            }
        }
    }
    (i <= end && i < text.len()).then_some(Mark { index: i as u64, line, column: col })
}

/// The tag of a node that makes it a tagged value, as serde_yaml decides:
/// a tag written `!name` (a lone `!` stays `!`). `!!str` and the like arrive
/// resolved (`tag:yaml.org,2002:str`) and are not local.
fn local_tag(tag: &[u8]) -> Option<&str> {
    let (first, rest) = tag.split_first()?;
    if *first != b'!' {
        return None;
    }
    std::str::from_utf8(if rest.is_empty() { tag } else { rest }).ok()
}

const TAG_NULL: &[u8] = b"tag:yaml.org,2002:null";
const TAG_BOOL: &[u8] = b"tag:yaml.org,2002:bool";
const TAG_INT: &[u8] = b"tag:yaml.org,2002:int";
const TAG_FLOAT: &[u8] = b"tag:yaml.org,2002:float";

/// A scalar's value, as serde_yaml's `Value` deserializer makes it.
fn resolve_scalar(bytes: &[u8], style: ScalarStyle, tag: Option<&[u8]>) -> Result<Value, String> {
    let Ok(v) = std::str::from_utf8(bytes) else {
        return Err("invalid type: byte array, expected any YAML value".into());
    };
    let Some(tag) = tag else {
        return if style == ScalarStyle::Plain { untagged_scalar(v) } else { Ok(Value::String(Str::new(v))) };
    };
    if let Some(local) = local_tag(tag) {
        // The tagged value's content: a plain scalar resolves as untagged.
        let inner = if style == ScalarStyle::Plain { untagged_scalar(v)? } else { Value::String(Str::new(v)) };
        return Ok(Value::Tagged(Box::new(Tagged { tag: Str::new(local), value: Node { line: 0, column: 0, value: inner } })));
    }
    let invalid = |what: &str| format!("invalid value: string {v:?}, expected {what}");
    if tag == TAG_BOOL {
        parse_bool(v).map(Value::Bool).ok_or_else(|| invalid("a boolean"))
    } else if tag == TAG_INT {
        match int_value(v) {
            Some(r) => r,
            None => Err(invalid("an integer")),
        }
    } else if tag == TAG_FLOAT {
        parse_f64(v).map(|f| Value::Number(Number::from_f64(f))).ok_or_else(|| invalid("a float"))
    } else if tag == TAG_NULL {
        if is_null(v) {
            Ok(Value::Null)
        } else {
            Err(invalid("null"))
        }
    } else if tag.starts_with(b"!") && style == ScalarStyle::Plain {
        untagged_scalar(v)
    } else {
        Ok(Value::String(Str::new(v)))
    }
}

fn untagged_scalar(v: &str) -> Result<Value, String> {
    if v.is_empty() || is_null(v) {
        return Ok(Value::Null);
    }
    if let Some(b) = parse_bool(v) {
        return Ok(Value::Bool(b));
    }
    if let Some(r) = int_value(v) {
        return r;
    }
    if !digits_but_not_number(v) {
        if let Some(f) = parse_f64(v) {
            return Ok(Value::Number(Number::from_f64(f)));
        }
    }
    Ok(Value::String(Str::new(v)))
}

/// An integer's value; `Some(Err)` for one beyond 64 bits, which serde_yaml's
/// `Value` refuses.
fn int_value(v: &str) -> Option<Result<Value, String>> {
    if let Some(u) = parse_unsigned_int(v, u64::from_str_radix) {
        return Some(Ok(Value::Number(Number::PosInt(u))));
    }
    if let Some(i) = parse_negative_int(v, i64::from_str_radix) {
        return Some(Ok(Value::Number(Number::from_i64(i))));
    }
    if let Some(u) = parse_unsigned_int(v, u128::from_str_radix) {
        return Some(Err(format!("invalid type: integer `{u}` as u128, expected any YAML value")));
    }
    if let Some(i) = parse_negative_int(v, i128::from_str_radix) {
        return Some(Err(format!("invalid type: integer `{i}` as i128, expected any YAML value")));
    }
    None
}

// The scalar rules below are serde_yaml 0.9's (src/de.rs), unchanged.

fn is_null(v: &str) -> bool {
    matches!(v, "null" | "Null" | "NULL" | "~")
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

fn parse_unsigned_int<T>(scalar: &str, from_str_radix: fn(&str, u32) -> Result<T, std::num::ParseIntError>) -> Option<T> {
    let unpositive = scalar.strip_prefix('+').unwrap_or(scalar);
    for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
        if let Some(rest) = unpositive.strip_prefix(prefix) {
            if rest.starts_with(['+', '-']) {
                return None;
            }
            if let Ok(int) = from_str_radix(rest, radix) {
                return Some(int);
            }
        }
    }
    if unpositive.starts_with(['+', '-']) {
        return None;
    }
    if digits_but_not_number(scalar) {
        return None;
    }
    from_str_radix(unpositive, 10).ok()
}

fn parse_negative_int<T>(scalar: &str, from_str_radix: fn(&str, u32) -> Result<T, std::num::ParseIntError>) -> Option<T> {
    for (prefix, radix) in [("-0x", 16), ("-0o", 8), ("-0b", 2)] {
        if let Some(rest) = scalar.strip_prefix(prefix) {
            let negative = format!("-{rest}");
            if let Ok(int) = from_str_radix(&negative, radix) {
                return Some(int);
            }
        }
    }
    if digits_but_not_number(scalar) {
        return None;
    }
    from_str_radix(scalar, 10).ok()
}

fn parse_f64(scalar: &str) -> Option<f64> {
    let unpositive = if let Some(unpositive) = scalar.strip_prefix('+') {
        if unpositive.starts_with(['+', '-']) {
            return None;
        }
        unpositive
    } else {
        scalar
    };
    if let ".inf" | ".Inf" | ".INF" = unpositive {
        return Some(f64::INFINITY);
    }
    if let "-.inf" | "-.Inf" | "-.INF" = scalar {
        return Some(f64::NEG_INFINITY);
    }
    if let ".nan" | ".NaN" | ".NAN" = scalar {
        return Some(f64::NAN.copysign(1.0));
    }
    if let Ok(float) = unpositive.parse::<f64>() {
        if float.is_finite() {
            return Some(float);
        }
    }
    None
}

fn digits_but_not_number(scalar: &str) -> bool {
    // Leading zero(s) followed by numeric characters is a string (YAML 1.2).
    let scalar = scalar.strip_prefix(['-', '+']).unwrap_or(scalar);
    scalar.len() > 1 && scalar.starts_with('0') && scalar[1..].bytes().all(|b| b.is_ascii_digit())
}

// ---------------------------------------------------------------------------
// Keys: serde_yaml's equality of values (a mapping's keys are unique)
// ---------------------------------------------------------------------------

fn nobang(tag: &str) -> &str {
    match tag.strip_prefix('!') {
        Some("") | None => tag,
        Some(rest) => rest,
    }
}

/// serde_yaml's `Value` equality: mappings compare without regard to order,
/// NaN equals NaN, tags compare without their `!`.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => match (x, y) {
            (Number::PosInt(x), Number::PosInt(y)) => x == y,
            (Number::NegInt(x), Number::NegInt(y)) => x == y,
            (Number::Float(x), Number::Float(y)) => (x.is_nan() && y.is_nan()) || x == y,
            _ => false,
        },
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Sequence(x), Value::Sequence(y)) => x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| same(&p.value, &q.value)),
        (Value::Mapping(x), Value::Mapping(y)) => {
            x.len() == y.len()
                && x.iter().all(|(k, v)| y.iter().find(|(k2, _)| same(&k.value, &k2.value)).is_some_and(|(_, v2)| same(&v.value, &v2.value)))
        }
        (Value::Tagged(x), Value::Tagged(y)) => nobang(&x.tag) == nobang(&y.tag) && same(&x.value.value, &y.value.value),
        _ => false,
    }
}

/// A hash consistent with [`same`].
fn key_hash(v: &Value) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    fn feed(v: &Value, h: &mut std::collections::hash_map::DefaultHasher) {
        std::mem::discriminant(v).hash(h);
        match v {
            Value::Null => {}
            Value::Bool(b) => b.hash(h),
            Value::Number(Number::PosInt(u)) => (0u8, u).hash(h),
            Value::Number(Number::NegInt(i)) => (1u8, i).hash(h),
            Value::Number(Number::Float(_)) => 2u8.hash(h),
            Value::String(s) => s.as_str().hash(h),
            Value::Sequence(s) => s.iter().for_each(|n| feed(&n.value, h)),
            Value::Mapping(m) => m.len().hash(h),
            Value::Tagged(t) => {
                nobang(&t.tag).hash(h);
                feed(&t.value.value, h);
            }
        }
    }
    feed(v, &mut h);
    h.finish()
}

/// The index of an entry whose key repeats an earlier one.
fn duplicate_key(entries: &[(Node, Node)]) -> Option<usize> {
    if entries.len() <= 16 {
        return (1..entries.len()).find(|&i| entries[..i].iter().any(|(k, _)| same(&k.value, &entries[i].0.value)));
    }
    let mut seen: HashMap<u64, Vec<usize>> = HashMap::with_capacity(entries.len());
    for (i, (k, _)) in entries.iter().enumerate() {
        let bucket = seen.entry(key_hash(&k.value)).or_default();
        if bucket.iter().any(|&j| same(&entries[j].0.value, &k.value)) {
            return Some(i);
        }
        bucket.push(i);
    }
    None
}

// ---------------------------------------------------------------------------
// Deserializing: a `&Node` reads as serde_yaml's `&Value` does
// ---------------------------------------------------------------------------

/// A deserialization error: the message serde_yaml's `Value` would give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeError(pub String);

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError(msg.to_string())
    }
}

impl Node {
    fn unexpected(&self) -> Unexpected<'_> {
        match &self.value {
            Value::Null => Unexpected::Unit,
            Value::Bool(b) => Unexpected::Bool(*b),
            Value::Number(Number::PosInt(u)) => Unexpected::Unsigned(*u),
            Value::Number(Number::NegInt(i)) => Unexpected::Signed(*i),
            Value::Number(Number::Float(f)) => Unexpected::Float(*f),
            Value::String(s) => Unexpected::Str(s),
            Value::Sequence(_) => Unexpected::Seq,
            Value::Mapping(_) => Unexpected::Map,
            Value::Tagged(_) => Unexpected::Enum,
        }
    }

    #[cold]
    fn invalid_type(&self, exp: &dyn Expected) -> DeError {
        de::Error::invalid_type(self.unexpected(), exp)
    }

    fn deserialize_number<'de, V: Visitor<'de>>(&'de self, visitor: V) -> Result<V::Value, DeError> {
        match &self.untag().value {
            Value::Number(n) => visit_number(*n, visitor),
            _ => Err(self.untag().invalid_type(&visitor)),
        }
    }
}

fn visit_number<'de, V: Visitor<'de>>(n: Number, visitor: V) -> Result<V::Value, DeError> {
    match n {
        Number::PosInt(u) => visitor.visit_u64(u),
        Number::NegInt(i) => visitor.visit_i64(i),
        Number::Float(f) => visitor.visit_f64(f),
    }
}

fn visit_sequence<'de, V: Visitor<'de>>(items: &'de [Node], visitor: V) -> Result<V::Value, DeError> {
    let len = items.len();
    let mut de = SeqDe { iter: items.iter() };
    let seq = visitor.visit_seq(&mut de)?;
    if de.iter.len() == 0 {
        Ok(seq)
    } else {
        Err(de::Error::invalid_length(len, &"fewer elements in sequence"))
    }
}

fn visit_mapping<'de, V: Visitor<'de>>(entries: &'de [(Node, Node)], visitor: V) -> Result<V::Value, DeError> {
    let len = entries.len();
    let mut de = MapDe { iter: entries.iter(), value: None };
    let map = visitor.visit_map(&mut de)?;
    if de.iter.len() == 0 {
        Ok(map)
    } else {
        Err(de::Error::invalid_length(len, &"fewer elements in map"))
    }
}

impl<'de> de::Deserializer<'de> for &'de Node {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => visit_number(*n, visitor),
            Value::String(s) => visitor.visit_borrowed_str(s.as_str()),
            Value::Sequence(s) => visit_sequence(s, visitor),
            Value::Mapping(m) => visit_mapping(m, visitor),
            Value::Tagged(t) => visitor.visit_enum(EnumDe { tag: nobang(&t.tag), value: Some(&t.value) }),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.untag().value {
            Value::Bool(b) => visitor.visit_bool(*b),
            _ => Err(self.untag().invalid_type(&visitor)),
        }
    }

    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_number(visitor)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_number(visitor)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_number(visitor)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_number(visitor)
    }
    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_number(visitor)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_number(visitor)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_number(visitor)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_number(visitor)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_number(visitor)
    }
    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_number(visitor)
    }
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_number(visitor)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_number(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.untag().value {
            Value::String(s) => visitor.visit_borrowed_str(s.as_str()),
            _ => Err(self.untag().invalid_type(&visitor)),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.untag().value {
            Value::String(s) => visitor.visit_borrowed_str(s.as_str()),
            Value::Sequence(s) => visit_sequence(s, visitor),
            _ => Err(self.untag().invalid_type(&visitor)),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.value {
            Value::Null => visitor.visit_unit(),
            _ => Err(self.invalid_type(&visitor)),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.untag().value {
            Value::Sequence(s) => visit_sequence(s, visitor),
            Value::Null => visit_sequence(&[], visitor),
            _ => Err(self.untag().invalid_type(&visitor)),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(self, _name: &'static str, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.untag().value {
            Value::Mapping(m) => visit_mapping(m, visitor),
            Value::Null => visitor.visit_map(&mut MapDe { iter: [].iter(), value: None }),
            _ => Err(self.untag().invalid_type(&visitor)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(self, _name: &'static str, _fields: &'static [&'static str], visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(self, _name: &str, _variants: &'static [&'static str], visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_enum(match &self.value {
            Value::Tagged(t) => EnumDe { tag: nobang(&t.tag), value: Some(&t.value) },
            Value::String(s) => EnumDe { tag: s.as_str(), value: None },
            _ => return Err(de::Error::invalid_type(self.unexpected(), &"a Value::Tagged enum")),
        })
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

struct SeqDe<'de> {
    iter: std::slice::Iter<'de, Node>,
}

impl<'de> SeqAccess<'de> for SeqDe<'de> {
    type Error = DeError;
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, DeError> {
        match self.iter.next() {
            Some(n) => seed.deserialize(n).map(Some),
            None => Ok(None),
        }
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

impl<'de> de::Deserializer<'de> for SeqDe<'de> {
    type Error = DeError;
    fn deserialize_any<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, DeError> {
        let len = self.iter.len();
        if len == 0 {
            return visitor.visit_unit();
        }
        let ret = visitor.visit_seq(&mut self)?;
        if self.iter.len() == 0 {
            Ok(ret)
        } else {
            Err(de::Error::invalid_length(len, &"fewer elements in sequence"))
        }
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 u8 u16 u32 u64 f32 f64 char str string bytes
        byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct
        map struct enum identifier
    }
}

struct MapDe<'de> {
    iter: std::slice::Iter<'de, (Node, Node)>,
    value: Option<&'de Node>,
}

impl<'de> MapAccess<'de> for MapDe<'de> {
    type Error = DeError;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DeError> {
        match self.iter.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(k).map(Some)
            }
            None => Ok(None),
        }
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        match self.value.take() {
            Some(v) => seed.deserialize(v),
            None => Err(de::Error::custom("a map value was read before its key")),
        }
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

impl<'de> de::Deserializer<'de> for MapDe<'de> {
    type Error = DeError;
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_map(self)
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 u8 u16 u32 u64 f32 f64 char str string bytes
        byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct
        map struct enum identifier
    }
}

struct EnumDe<'de> {
    tag: &'de str,
    value: Option<&'de Node>,
}

impl<'de> EnumAccess<'de> for EnumDe<'de> {
    type Error = DeError;
    type Variant = VariantDe<'de>;
    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, VariantDe<'de>), DeError> {
        let variant = seed.deserialize(de::value::BorrowedStrDeserializer::<DeError>::new(self.tag))?;
        Ok((variant, VariantDe { value: self.value }))
    }
}

struct VariantDe<'de> {
    value: Option<&'de Node>,
}

impl<'de> VariantAccess<'de> for VariantDe<'de> {
    type Error = DeError;
    fn unit_variant(self) -> Result<(), DeError> {
        match self.value {
            Some(v) => <() as de::Deserialize>::deserialize(v),
            None => Ok(()),
        }
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        match self.value {
            Some(v) => seed.deserialize(v),
            None => Err(de::Error::invalid_type(Unexpected::UnitVariant, &"newtype variant")),
        }
    }
    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            Some(v) => match &v.value {
                Value::Sequence(s) => de::Deserializer::deserialize_any(SeqDe { iter: s.iter() }, visitor),
                _ => Err(de::Error::invalid_type(v.unexpected(), &"tuple variant")),
            },
            None => Err(de::Error::invalid_type(Unexpected::UnitVariant, &"tuple variant")),
        }
    }
    fn struct_variant<V: Visitor<'de>>(self, _fields: &'static [&'static str], visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            Some(v) => match &v.value {
                Value::Mapping(m) => de::Deserializer::deserialize_any(MapDe { iter: m.iter(), value: None }, visitor),
                _ => Err(de::Error::invalid_type(v.unexpected(), &"struct variant")),
            },
            None => Err(de::Error::invalid_type(Unexpected::UnitVariant, &"struct variant")),
        }
    }
}

/// Deserializes `node` as a `T`; on failure, the path inside `node` where it
/// failed (serde_path_to_error's) and serde's message. The path is traced
/// only when there is an error (a second, identical pass).
pub fn deserialize<T: de::DeserializeOwned>(node: &Node) -> Result<T, (serde_path_to_error::Path, String)> {
    match T::deserialize(node) {
        Ok(t) => Ok(t),
        Err(plain) => match serde_path_to_error::deserialize::<_, T>(node) {
            Ok(t) => Ok(t),
            Err(e) => {
                debug_assert_eq!(e.inner().to_string(), plain.to_string());
                Err((e.path().clone(), e.inner().to_string()))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(text: &str) -> Node {
        parse(text, &mut MAX_ALIAS_NODES.clone()).unwrap_or_else(|e| panic!("{text:?}: {e:?}"))
    }

    fn same_as_serde_yaml(text: &str) {
        let ours = parse(text, &mut MAX_ALIAS_NODES.clone());
        let theirs = serde_yaml::from_str::<serde_yaml::Value>(text);
        match (ours, theirs) {
            (Ok(n), Ok(v)) => assert_eq!(n.to_serde_yaml(), v, "{text:?}"),
            (Err(_), Err(_)) => {}
            (o, t) => panic!("{text:?}: ours {o:?}, serde_yaml {t:?}"),
        }
    }

    #[test]
    fn nodes_are_small() {
        assert!(std::mem::size_of::<Node>() <= 32, "{}", std::mem::size_of::<Node>());
    }

    #[test]
    fn scalars_resolve_as_serde_yaml_resolves_them() {
        for s in [
            "~",
            "null",
            "Null",
            "NULL",
            "",
            "true",
            "True",
            "FALSE",
            "yes",
            "no",
            "on",
            "1",
            "-1",
            "+1",
            "0",
            "-0",
            "007",
            "-007",
            "0x1F",
            "-0x1F",
            "0o17",
            "0b101",
            "+0x1",
            "0x+1",
            "1.5",
            "-1.5",
            "1e3",
            "1e400",
            ".inf",
            "-.inf",
            "+.inf",
            ".nan",
            ".NaN",
            "1_000",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "99999999999999999999999999999999999999999",
            "1.",
            ".5",
            "0.",
            "'1'",
            "\"true\"",
            "!!str 1",
            "!!int 12",
            "!!int '12'",
            "!!int x",
            "!!bool true",
            "!!bool yes",
            "!!float 1",
            "!!float x",
            "!!null ~",
            "!!null x",
            "!!binary aGk=",
            "!x 1",
            "!x '1'",
            "! 1",
            "!x [1]",
            "!x {a: 1}",
            "|\n  text\n",
            ">-\n  folded\n  text\n",
            "a b",
            "- 1\n- 2",
            "{a: 1, b: [x, y]}",
            "0x",
            "0b2",
            "1e",
            "+",
            "-",
            ".",
            "NaN",
            "inf",
            "+-1",
        ] {
            same_as_serde_yaml(s);
            same_as_serde_yaml(&format!("k: {s}\n"));
        }
    }

    #[test]
    fn documents_and_refusals_match_serde_yaml() {
        for text in [
            "a: 1\n---\nb: 2\n",
            "---\na: 1\n...\n",
            "---\n",
            "# only a comment\n",
            "a: 1\n...\n---\n",
            "a: [1\n",
            "a: 1\na: 2\n",
            "a: 1\n\"a\": 2\n",
            "1: a\n'1': b\n",
            "? [a, b]\n: 1\n? [a, b]\n: 2\n",
            "? {a: 1, b: 2}\n: 1\n? {b: 2, a: 1}\n: 2\n",
            ".nan: 1\n.NaN: 2\n",
            "0.0: 1\n-0.0: 2\n",
            "a: *x\n",
            "a: &x [1, *x]\n",
            "a: &x 1\nb: *x\nc: &x 2\n",
            "a: &x [1, 2]\nb: [*x, *x]\n",
            "!t\na: 1\n",
            "%YAML 1.1\n---\na: 1\n",
            "a: !!int 99999999999999999999\n",
            "a:\n  - b\n  -\n  - c: d\n",
        ] {
            same_as_serde_yaml(text);
        }
    }

    #[test]
    fn nesting_and_aliases_are_bounded_as_serde_yaml_bounds_them() {
        for depth in [127, 128, 129, 200] {
            same_as_serde_yaml(&format!("{}{}", "[".repeat(depth), "]".repeat(depth)));
        }
        // An alias that nests a deep anchor deeper still.
        let deep = format!("a: &x {}1{}\nb: {}*x{}\n", "[".repeat(100), "]".repeat(100), "[".repeat(30), "]".repeat(30));
        same_as_serde_yaml(&deep);
        // serde_yaml's jump bound: 9 levels of 10 aliases (a billion laughs) is refused...
        let mut laughs = String::from("a: &a [\"lol\"]\n");
        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
        for w in names.windows(2) {
            laughs.push_str(&format!("{}: &{} [{}]\n", w[1], w[1], vec![format!("*{}", w[0]); 10].join(", ")));
        }
        let err = parse(&laughs, &mut MAX_ALIAS_NODES.clone()).unwrap_err();
        assert!(matches!(err, ParseError::TooManyAliasNodes(_) | ParseError::RepetitionLimit), "{err:?}");
        assert!(serde_yaml::from_str::<serde_yaml::Value>(&laughs).is_err());
        // ...and so is one big anchor repeated, which serde_yaml would expand.
        let big = format!("a: &a [{}]\nb: [{}]\n", vec!["x"; 2_000].join(", "), vec!["*a"; 1_000].join(", "));
        let mut budget = MAX_ALIAS_NODES;
        assert!(matches!(parse(&big, &mut budget), Err(ParseError::TooManyAliasNodes(_))));
        // The budget is shared: what one file's aliases add counts for the next.
        let small = "a: &a [1, 2, 3]\nb: *a\n";
        let mut budget = 4;
        assert!(parse(small, &mut budget).is_ok());
        assert_eq!(budget, 0);
        assert!(matches!(parse(small, &mut budget), Err(ParseError::TooManyAliasNodes(_))));
    }

    #[test]
    fn an_alias_to_an_anchor_defined_twice_is_refused() {
        // serde_yaml reads `*x` here as `~`, defined after it (its anchors are
        // numbered by how many names were defined, and a redefinition takes
        // the number the next new name takes too).
        let text = "d0: &x\n  id:\n    id: &x 0\n    kind: *x\nbody: {id: &y ~}\n";
        let v: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
        assert_eq!(v["d0"]["id"]["kind"], serde_yaml::Value::Null);
        let e = parse(text, &mut MAX_ALIAS_NODES.clone()).unwrap_err();
        assert!(matches!(&e, ParseError::RedefinedAnchor(m, name) if name == "x" && m.line == 3), "{e:?}");
        assert!(e.stricter_than_serde_yaml());
        assert!(parse("a: &x 1\nb: &x 2\n", &mut 10).is_ok(), "redefining alone is fine");
    }

    #[test]
    fn positions_are_where_the_content_is() {
        let t = tree("version: 1\nproviders:\n  bao:\n    kind: x\n    auth: { method: token, token: \"${env:T}\" }\ncredentials:\n  - id: a\n    empty:\n    anchored: &a !t  value\n    alias: *a\n");
        let at = |n: &Node| (n.line, n.column);
        assert_eq!(at(&t), (1, 1));
        let providers = t.get("providers").unwrap();
        assert_eq!(at(providers), (3, 3));
        let bao = providers.get("bao").unwrap();
        assert_eq!(at(bao), (4, 5));
        let auth = bao.get("auth").unwrap();
        assert_eq!(at(auth), (5, 11));
        assert_eq!(at(auth.get("token").unwrap()), (5, 35));
        let creds = t.get("credentials").unwrap();
        assert_eq!(at(creds), (7, 3));
        let c = &creds.as_sequence().unwrap()[0];
        assert_eq!(at(c), (7, 5));
        assert_eq!(at(c.get("empty").unwrap()), (8, 5));
        assert_eq!(at(c.get("anchored").unwrap()), (9, 22));
        assert_eq!(at(c.get("alias").unwrap()), (10, 12));
        // Keys are nodes too.
        let (k, _) = &c.as_mapping().unwrap()[1];
        assert_eq!((k.as_str(), at(k)), (Some("empty"), (8, 5)));
    }

    #[test]
    fn deserializes_as_serde_yaml_values_do() {
        #[derive(Debug, PartialEq, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct S {
            a: u32,
            b: Option<String>,
            #[serde(default)]
            c: Vec<String>,
            d: Option<bool>,
        }
        for text in [
            "a: 1\nb: x\nc: [p, q]\nd: true\n",
            "a: 1\n",
            "a: x\n",
            "a: -1\n",
            "a: 1.5\n",
            "a: 1\nz: 2\n",
            "b: x\n",
            "a: 1\nc: {}\n",
            "a: 1\nd: 'true'\n",
            "a: !t 1\n",
            "a: 1\nb: !t x\n",
            "[1]\n",
            "~\n",
        ] {
            let ours = deserialize::<S>(&tree(text)).map_err(|(p, m)| format!("{p}: {m}"));
            let v: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
            let theirs = serde_path_to_error::deserialize::<_, S>(&v).map_err(|e| format!("{}: {}", e.path(), e.inner()));
            assert_eq!(ours, theirs, "{text:?}");
        }
    }
}
