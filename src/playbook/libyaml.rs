//! libyaml's event parser (the `unsafe-libyaml` crate: libyaml 0.2.5
//! translated to Rust, the parser serde_yaml 0.9 runs), behind a safe API of
//! two types: a [`Parser`] over a `&str` and the [`Event`]s it yields.
//!
//! This file is the loader's only `unsafe` code. What it relies on:
//! - the `yaml_parser_t` is initialised before use, never moved afterwards
//!   (libyaml keeps a pointer to it in its own read handler: it lives in a
//!   `Box` from initialisation to `yaml_parser_delete`), and deleted once;
//! - the input outlives the parser (`Parser<'a>` borrows it for `'a`);
//! - `yaml_parser_parse` is never called after it failed or after the end of
//!   the stream (libyaml's own contract);
//! - an event owns the strings libyaml allocated for it; they are read only
//!   while the event is alive (borrows of `&Event`) and freed once, by
//!   `yaml_event_delete` in `Drop`;
//! - strings are read through their length (scalar values: pointer and
//!   length; anchors and tags: NUL-terminated, as libyaml writes them).

use std::ffi::{c_char, CStr};
use std::marker::PhantomData;
use std::mem::MaybeUninit;

#[allow(clippy::unsafe_removed_from_name)]
use unsafe_libyaml as sys;

/// A position in the input, 0-based, as libyaml counts: `index` in bytes,
/// `line` in line breaks, `column` in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub index: u64,
    pub line: u64,
    pub column: u64,
}

impl Mark {
    fn from_sys(m: sys::yaml_mark_t) -> Mark {
        Mark { index: m.index, line: m.line, column: m.column }
    }
}

/// Why libyaml stopped: its problem (and the context it was in), where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub problem: String,
    pub problem_mark: Mark,
    pub context: Option<String>,
}

/// The style a scalar is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScalarStyle {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Literal,
    Folded,
}

/// What an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    StreamStart,
    StreamEnd,
    DocumentStart,
    DocumentEnd,
    Alias,
    Scalar,
    SequenceStart,
    SequenceEnd,
    MappingStart,
    MappingEnd,
}

/// One parser event; owns what libyaml allocated for it.
pub(crate) struct Event {
    raw: sys::yaml_event_t,
    kind: Kind,
}

impl Event {
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Where the event starts (for a node with an anchor or tag: at the first of those).
    pub fn start(&self) -> Mark {
        Mark::from_sys(self.raw.start_mark)
    }

    pub fn end(&self) -> Mark {
        Mark::from_sys(self.raw.end_mark)
    }

    /// The anchor (`&name`) of a scalar, sequence or mapping, or the name an alias refers to.
    pub fn anchor(&self) -> Option<&[u8]> {
        // SAFETY: `kind` was read from `raw.type_` when the event was made, so
        // the union field read is the one libyaml wrote for this event type.
        let p = unsafe {
            match self.kind {
                Kind::Alias => self.raw.data.alias.anchor,
                Kind::Scalar => self.raw.data.scalar.anchor,
                Kind::SequenceStart => self.raw.data.sequence_start.anchor,
                Kind::MappingStart => self.raw.data.mapping_start.anchor,
                _ => return None,
            }
        };
        // SAFETY: null or a NUL-terminated string owned by this event, alive while `self` is.
        unsafe { c_bytes(p) }
    }

    /// The tag of a scalar, sequence or mapping, as libyaml resolved it
    /// (`!!str` is `tag:yaml.org,2002:str`; a local `!x` stays `!x`).
    pub fn tag(&self) -> Option<&[u8]> {
        // SAFETY: as in `anchor`: the union field matches the event type.
        let p = unsafe {
            match self.kind {
                Kind::Scalar => self.raw.data.scalar.tag,
                Kind::SequenceStart => self.raw.data.sequence_start.tag,
                Kind::MappingStart => self.raw.data.mapping_start.tag,
                _ => return None,
            }
        };
        // SAFETY: null or a NUL-terminated string owned by this event, alive while `self` is.
        unsafe { c_bytes(p) }
    }

    /// A scalar's value (bytes as libyaml produced them) and style.
    pub fn scalar(&self) -> Option<(&[u8], ScalarStyle)> {
        if self.kind != Kind::Scalar {
            return None;
        }
        // SAFETY: this is a scalar event, so `data.scalar` is the field libyaml wrote.
        let s = unsafe { self.raw.data.scalar };
        let value: &[u8] = if s.value.is_null() || s.length == 0 {
            &[]
        } else {
            // SAFETY: libyaml allocated `length` bytes at `value` for this
            // event; they stay valid until `yaml_event_delete` (our `Drop`).
            unsafe { std::slice::from_raw_parts(s.value, usize::try_from(s.length).ok()?) }
        };
        let style = match s.style {
            sys::YAML_SINGLE_QUOTED_SCALAR_STYLE => ScalarStyle::SingleQuoted,
            sys::YAML_DOUBLE_QUOTED_SCALAR_STYLE => ScalarStyle::DoubleQuoted,
            sys::YAML_LITERAL_SCALAR_STYLE => ScalarStyle::Literal,
            sys::YAML_FOLDED_SCALAR_STYLE => ScalarStyle::Folded,
            // The parser always reports one of the five; plain is the safe reading.
            _ => ScalarStyle::Plain,
        };
        Some((value, style))
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: `raw` was filled by a successful `yaml_parser_parse` and is
        // deleted exactly once, here.
        unsafe { sys::yaml_event_delete(&mut self.raw) }
    }
}

/// # Safety
/// `p` is null or points to a NUL-terminated string that lives at least as long as `'a`.
unsafe fn c_bytes<'a>(p: *const u8) -> Option<&'a [u8]> {
    if p.is_null() {
        return None;
    }
    // SAFETY: the caller's contract.
    Some(unsafe { CStr::from_ptr(p.cast::<c_char>()) }.to_bytes())
}

/// libyaml's parser over one UTF-8 text.
pub(crate) struct Parser<'a> {
    /// Boxed so that it never moves: libyaml points into it.
    raw: Box<MaybeUninit<sys::yaml_parser_t>>,
    done: bool,
    input: PhantomData<&'a [u8]>,
}

impl<'a> Parser<'a> {
    pub fn new(input: &'a str) -> Parser<'a> {
        let mut raw = Box::new(MaybeUninit::<sys::yaml_parser_t>::uninit());
        let p = raw.as_mut_ptr();
        // SAFETY: `p` points to memory for a `yaml_parser_t`, which
        // `yaml_parser_initialize` zeroes and fills; it allocates only its
        // small buffers, and fails only when allocation does (which aborts in
        // Rust before it could report it). The input pointer and length
        // describe `input`, which outlives the parser ('a).
        unsafe {
            if sys::yaml_parser_initialize(p).fail {
                panic!("libyaml could not initialise a parser");
            }
            sys::yaml_parser_set_encoding(p, sys::YAML_UTF8_ENCODING);
            sys::yaml_parser_set_input_string(p, input.as_ptr(), input.len() as u64);
        }
        Parser { raw, done: false, input: PhantomData }
    }

    /// The next event; `None` after the end of the stream or after an error.
    pub fn next(&mut self) -> Option<Result<Event, SyntaxError>> {
        if self.done {
            return None;
        }
        let p = self.raw.as_mut_ptr();
        let mut event = MaybeUninit::<sys::yaml_event_t>::uninit();
        // SAFETY: the parser was initialised in `new` and has not failed nor
        // ended (`done`); `event` is written in full by a successful parse.
        unsafe {
            if sys::yaml_parser_parse(p, event.as_mut_ptr()).fail {
                self.done = true;
                return Some(Err(syntax_error(p)));
            }
            let raw = event.assume_init();
            let kind = match raw.type_ {
                sys::YAML_STREAM_START_EVENT => Kind::StreamStart,
                sys::YAML_STREAM_END_EVENT => Kind::StreamEnd,
                sys::YAML_DOCUMENT_START_EVENT => Kind::DocumentStart,
                sys::YAML_DOCUMENT_END_EVENT => Kind::DocumentEnd,
                sys::YAML_ALIAS_EVENT => Kind::Alias,
                sys::YAML_SCALAR_EVENT => Kind::Scalar,
                sys::YAML_SEQUENCE_START_EVENT => Kind::SequenceStart,
                sys::YAML_SEQUENCE_END_EVENT => Kind::SequenceEnd,
                sys::YAML_MAPPING_START_EVENT => Kind::MappingStart,
                sys::YAML_MAPPING_END_EVENT => Kind::MappingEnd,
                _ => {
                    // YAML_NO_EVENT: libyaml has nothing more (it owns nothing here).
                    self.done = true;
                    return None;
                }
            };
            if kind == Kind::StreamEnd {
                self.done = true;
            }
            Some(Ok(Event { raw, kind }))
        }
    }
}

/// # Safety
/// `p` is an initialised parser whose last `yaml_parser_parse` failed.
unsafe fn syntax_error(p: *const sys::yaml_parser_t) -> SyntaxError {
    // SAFETY: the caller's contract; `problem` and `context` are null or
    // static NUL-terminated strings of libyaml's.
    unsafe {
        let parser: &sys::yaml_parser_t = &*p;
        let text = |s: *const u8| c_bytes(s).map(|b| String::from_utf8_lossy(b).into_owned());
        SyntaxError {
            problem: text(parser.problem.cast()).unwrap_or_else(|| "libyaml parser failed but there is no error".into()),
            problem_mark: Mark::from_sys(parser.problem_mark),
            context: text(parser.context.cast()),
        }
    }
}

impl Drop for Parser<'_> {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, deleted once, here; events already
        // handed out own their own allocations and do not point into the parser.
        unsafe { sys::yaml_parser_delete(self.raw.as_mut_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<Kind> {
        let mut p = Parser::new(text);
        let mut out = Vec::new();
        while let Some(Ok(e)) = p.next() {
            out.push(e.kind());
        }
        out
    }

    #[test]
    fn yields_events_with_values_anchors_tags_and_marks() {
        use Kind::*;
        assert_eq!(
            kinds("a: [1, *x]\n"),
            [StreamStart, DocumentStart, MappingStart, Scalar, SequenceStart, Scalar, Alias, SequenceEnd, MappingEnd, DocumentEnd, StreamEnd]
        );
        let mut p = Parser::new("k: &a !t 'v'\n");
        let mut scalars = Vec::new();
        while let Some(Ok(e)) = p.next() {
            if let Some((v, style)) = e.scalar() {
                scalars.push((v.to_vec(), style, e.anchor().map(<[u8]>::to_vec), e.tag().map(<[u8]>::to_vec), e.start()));
            }
        }
        assert_eq!(scalars[0].0, b"k");
        assert_eq!(scalars[1].0, b"v");
        assert_eq!(scalars[1].1, ScalarStyle::SingleQuoted);
        assert_eq!(scalars[1].2.as_deref(), Some(&b"a"[..]));
        assert_eq!(scalars[1].3.as_deref(), Some(&b"!t"[..]));
        assert_eq!((scalars[1].4.line, scalars[1].4.column), (0, 3));
    }

    #[test]
    fn stops_at_the_first_error_and_then_yields_nothing() {
        let mut p = Parser::new("a: [1\n");
        let mut err = None;
        while let Some(r) = p.next() {
            if let Err(e) = r {
                err = Some(e);
            }
        }
        let e = err.expect("an error");
        assert!(e.problem.contains("did not find expected"), "{e:?}");
        assert!(p.next().is_none());
        // An empty text is a stream with no document.
        assert_eq!(kinds(""), [Kind::StreamStart, Kind::StreamEnd]);
    }
}
