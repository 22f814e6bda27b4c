//! The spanned tree itself: YAML parsed into nodes that keep their line and column.
//!
//! Apart from `mod.rs` so that `diag` and `walk` take `Pos` and `Node` from a sibling,
//! not from the module that re-exports them.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

/// Where a node sits in the source: 1-based line and column, and its length in chars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
    pub len: u64,
    /// Byte offset in the source, when known.
    pub offset: Option<u64>,
}

impl Pos {
    fn of<T>(s: &Spanned<T>) -> Pos {
        let loc = s.referenced;
        Pos {
            line: loc.line(),
            column: loc.column(),
            len: loc.span().len(),
            offset: loc.span().byte_offset(),
        }
    }
}

/// A YAML value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// A value with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub pos: Pos,
}

impl Node {
    /// What kind of value this is, for error messages ("expected a string, found a list").
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "nothing (null)",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The scalar as text (for keys, var values and messages); None for lists and maps.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Null => Some(String::new()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Str(s) => Some(s.clone()),
            Value::Seq(_) | Value::Map(_) => None,
        }
    }
}

/// Parses a YAML document. Syntax errors carry serde-saphyr's message and location.
///
/// YAML 1.2 booleans only (`true`/`false`): `on:`, `yes` and `no` stay strings, so a
/// channel's `on:` key is not read as `true` (the "Norway problem").
///
/// An empty document after a `---` (a trailing `---`, normal in Kubernetes YAML) is
/// no document; a second real document is refused with a sentence, since one file is
/// one watch.
/// How deep a document may nest. A rule file, a calendar or a PrometheusRule manifest
/// nests fewer than ten levels (eight at most in a PrometheusRule manifest); the parser's own default (64) let a fuzzed file of
/// nested `{{{` flow maps overflow a 2 MiB thread's stack in a debug build (the
/// agent's tokio workers have 2 MiB too), so the limit is well under it.
pub const MAX_DEPTH: usize = 16;

fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        strict_booleans: true,
        budget: serde_saphyr::budget! { max_depth: MAX_DEPTH },
    }
}

pub fn parse(text: &str) -> Result<Node, (String, Option<Pos>)> {
    let options = options();
    let first = match serde_saphyr::from_str_with_options::<Spanned<RawValue>>(text, options) {
        Ok(s) => return Ok(to_node(s)),
        Err(e) => error_of(&e),
    };
    // The single-document parser refuses any `---` after the first document, empty
    // or not: count the real documents.
    match parse_all(text) {
        Ok(mut docs) if docs.len() <= 1 => Ok(docs.pop().unwrap_or(Node {
            value: Value::Null,
            pos: Pos::default(),
        })),
        Ok(docs) => Err((
            format!(
                "this file holds {} YAML documents (separated by `---`), but a rule file is one document: put each watch in a file of its own",
                docs.len()
            ),
            Some(docs[1].pos),
        )),
        // The single-document parser stopped at the `---` with advice for programmers:
        // the stream's own error (in the second document) says what is wrong, and where.
        Err(all) if first.0.contains("multiple YAML documents") => Err(all),
        Err(_) => Err(first),
    }
}

/// Parses every document of a multi-document YAML stream, skipping empty ones.
pub fn parse_all(text: &str) -> Result<Vec<Node>, (String, Option<Pos>)> {
    let options = options();
    serde_saphyr::from_multiple_with_options::<Spanned<RawValue>>(text, options)
        .map(|docs| docs.into_iter().map(to_node).collect())
        .map_err(|e| error_of(&e))
}

fn error_of(e: &serde_saphyr::Error) -> (String, Option<Pos>) {
    let pos = e.location().map(|loc| Pos {
        line: loc.line(),
        column: loc.column(),
        len: 1,
        offset: loc.span().byte_offset(),
    });
    (clean_message(&e.without_snippet().to_string()), pos)
}

/// The parser's message without its own location (shown separately) or advice meant
/// for programmers using the library.
fn clean_message(msg: &str) -> String {
    if msg.contains("budget breached: Depth") {
        return format!(
            "nested more than {MAX_DEPTH} levels deep (a rule file needs a handful): a bracket left open?"
        );
    }
    let mut m = msg.replace(", set DuplicateKeyPolicy in Options if acceptable", "");
    if let Some(i) = m.rfind(" at line ") {
        if m[i..].contains(", column ") {
            m.truncate(i);
        }
    }
    m.trim().to_string()
}

fn to_node(s: Spanned<RawValue>) -> Node {
    let pos = Pos::of(&s);
    let value = match s.value {
        RawValue::Null => Value::Null,
        RawValue::Bool(b) => Value::Bool(b),
        RawValue::Int(i) => Value::Int(i),
        RawValue::Float(f) => Value::Float(f),
        RawValue::Str(s) => Value::Str(s),
        RawValue::Seq(items) => Value::Seq(items.into_iter().map(to_node).collect()),
        RawValue::Map(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (to_node(k), to_node(v)))
                .collect(),
        ),
    };
    Node { value, pos }
}

/// The shape serde produces; converted to `Node` once parsed.
enum RawValue {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<RawValue>>),
    Map(Vec<(Spanned<RawValue>, Spanned<RawValue>)>),
}

impl<'de> Deserialize<'de> for RawValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = RawValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<RawValue, E> {
        Ok(RawValue::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<RawValue, E> {
        Ok(RawValue::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<RawValue, D::Error> {
        RawValue::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawValue, E> {
        Ok(RawValue::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawValue, E> {
        Ok(RawValue::Int(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawValue, E> {
        Ok(RawValue::Int(v.into()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<RawValue, E> {
        Ok(RawValue::Int(v))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<RawValue, E> {
        Ok(i128::try_from(v).map_or(RawValue::Float(v as f64), RawValue::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawValue, E> {
        Ok(RawValue::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawValue, E> {
        Ok(RawValue::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<RawValue, E> {
        Ok(RawValue::Str(v))
    }
    fn visit_char<E: de::Error>(self, v: char) -> Result<RawValue, E> {
        Ok(RawValue::Str(v.to_string()))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<RawValue, E> {
        Ok(RawValue::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<RawValue>>()? {
            items.push(item);
        }
        Ok(RawValue::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawValue, A::Error> {
        let mut entries = Vec::new();
        while let Some(k) = map.next_key::<Spanned<RawValue>>()? {
            let v = map.next_value::<Spanned<RawValue>>()?;
            entries.push((k, v));
        }
        Ok(RawValue::Map(entries))
    }
}
