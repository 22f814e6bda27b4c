//! The `data` of a query answer, `{"resultType": ..., "result": ...}`, read straight
//! into the few types `decode` converts, with value strings borrowed from the body.
//!
//! Why by hand: the derived adjacently tagged enum used before
//! (`#[serde(tag = "resultType", content = "result")]`) reads `result` directly only
//! when `resultType` comes first (as Prometheus and VictoriaMetrics write it); when
//! `result` comes first (JSON key order is free, and a proxy may re-serialise the
//! body) it buffers the whole of `result` into serde's private `Content` tree, one
//! allocation per string and number, before it can build anything. Here `result` is
//! then kept as its borrowed raw text (`RawValue`: no copy, no tree) and read once
//! `resultType` is known.
//!
//! Every rule of the derived code is kept, so any body decodes, or fails, as before
//! (`reference_tests.rs` checks this against the old derived types): keys other than
//! the two are skipped; a repeated one, or a missing one, is an error; the array form
//! `["vector", [...]]` is accepted; and a `result` read before its type is checked the
//! way `Content` checked it (every number in range, nesting within serde_json's limit)
//! even where its value is then ignored.

use crate::core::series::{CowStr, Labels};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

const TAG: &str = "resultType";
const CONTENT: &str = "result";

/// The `data` of an instant query.
pub(super) enum Data<'a> {
    Vector(Vec<VectorSample<'a>>),
    Scalar(Point<'a>),
    Matrix,
    String,
}

/// The `data` of a range query: only a matrix is of use.
pub(super) enum RangeData<'a> {
    Matrix(Vec<MatrixSeries<'a>>),
    Other,
}

#[derive(Deserialize)]
pub(super) struct VectorSample<'a> {
    #[serde(default)]
    pub metric: Labels,
    #[serde(borrow)]
    pub value: Point<'a>,
}

#[derive(Deserialize)]
pub(super) struct MatrixSeries<'a> {
    #[serde(default)]
    pub metric: Labels,
    #[serde(default, borrow)]
    pub values: Vec<Point<'a>>,
}

/// `[time, "value"]`. The value string is borrowed from the body (no allocation)
/// unless it holds an escape. Read as the `(f64, String)` it replaces was.
pub(super) struct Point<'a> {
    pub time: f64,
    pub value: Cow<'a, str>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Point<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_tuple(2, PointVisitor(PhantomData))
    }
}

struct PointVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for PointVisitor<'a> {
    type Value = Point<'a>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a tuple of size 2")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Point<'a>, A::Error> {
        let Some(time) = seq.next_element::<f64>()? else {
            return Err(de::Error::invalid_length(0, &self));
        };
        let Some(CowStr(value)) = seq.next_element::<CowStr<'de>>()? else {
            return Err(de::Error::invalid_length(1, &self));
        };
        Ok(Point { time, value })
    }
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum InstantType {
    Vector,
    Scalar,
    Matrix,
    String,
}

/// The same names in the order the old `RangeData` listed them (the order an
/// "unknown variant" error names them in).
#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum RangeType {
    Matrix,
    Vector,
    Scalar,
    String,
}

/// What differs between the two `data` types.
trait Tagged<'de>: Sized {
    /// The name the derived enum had, as its errors say it.
    const NAME: &'static str;
    const EXPECTING: &'static str;
    type Tag: Deserialize<'de> + Copy;
    /// `result`, read as the type `resultType` names.
    fn content<D: Deserializer<'de>>(tag: Self::Tag, d: D) -> Result<Self, D::Error>;
}

impl<'de> Tagged<'de> for Data<'de> {
    const NAME: &'static str = "Data";
    const EXPECTING: &'static str = "adjacently tagged enum Data";
    type Tag = InstantType;

    fn content<D: Deserializer<'de>>(tag: InstantType, d: D) -> Result<Self, D::Error> {
        Ok(match tag {
            InstantType::Vector => Data::Vector(Deserialize::deserialize(d)?),
            InstantType::Scalar => Data::Scalar(Deserialize::deserialize(d)?),
            InstantType::Matrix => IgnoredAny::deserialize(d).map(|_| Data::Matrix)?,
            InstantType::String => IgnoredAny::deserialize(d).map(|_| Data::String)?,
        })
    }
}

impl<'de> Tagged<'de> for RangeData<'de> {
    const NAME: &'static str = "RangeData";
    const EXPECTING: &'static str = "adjacently tagged enum RangeData";
    type Tag = RangeType;

    fn content<D: Deserializer<'de>>(tag: RangeType, d: D) -> Result<Self, D::Error> {
        Ok(match tag {
            RangeType::Matrix => RangeData::Matrix(Deserialize::deserialize(d)?),
            RangeType::Vector | RangeType::Scalar | RangeType::String => {
                IgnoredAny::deserialize(d).map(|_| RangeData::Other)?
            }
        })
    }
}

impl<'de> Deserialize<'de> for Data<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_struct(Self::NAME, &[TAG, CONTENT], TaggedVisitor(PhantomData))
    }
}

impl<'de> Deserialize<'de> for RangeData<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_struct(Self::NAME, &[TAG, CONTENT], TaggedVisitor(PhantomData))
    }
}

struct ContentSeed<T, G>(G, PhantomData<T>);

impl<'de, T: Tagged<'de>> DeserializeSeed<'de> for ContentSeed<T, T::Tag> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        T::content(self.0, d)
    }
}

#[derive(PartialEq)]
enum Key {
    Tag,
    Content,
}

/// The next key that is `resultType` or `result`, skipping (and their values) any other.
fn next_key<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<Key>, A::Error> {
    while let Some(key) = map.next_key::<Cow<'de, str>>()? {
        match &*key {
            TAG => return Ok(Some(Key::Tag)),
            CONTENT => return Ok(Some(Key::Content)),
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
    }
    Ok(None)
}

/// After both keys: the rest may not repeat either.
fn finish<'de, A: MapAccess<'de>, T>(map: &mut A, value: T) -> Result<T, A::Error> {
    match next_key(map)? {
        Some(Key::Tag) => Err(de::Error::duplicate_field(TAG)),
        Some(Key::Content) => Err(de::Error::duplicate_field(CONTENT)),
        None => Ok(value),
    }
}

struct TaggedVisitor<T>(PhantomData<T>);

impl<'de, T: Tagged<'de>> Visitor<'de> for TaggedVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        match next_key(&mut map)? {
            Some(Key::Tag) => {
                let tag: T::Tag = map.next_value()?;
                match next_key(&mut map)? {
                    Some(Key::Tag) => Err(de::Error::duplicate_field(TAG)),
                    Some(Key::Content) => {
                        let value = map.next_value_seed(ContentSeed::<T, _>(tag, PhantomData))?;
                        finish(&mut map, value)
                    }
                    None => Err(de::Error::missing_field(CONTENT)),
                }
            }
            Some(Key::Content) => {
                // Its type is not known yet: keep the raw text, checked as `Content`
                // would have checked it while buffering.
                let raw: &'de RawValue = map.next_value()?;
                Check { depth: 1 }
                    .deserialize(raw)
                    .map_err(|e| de::Error::custom(message(&e)))?;
                match next_key(&mut map)? {
                    Some(Key::Tag) => {
                        let tag: T::Tag = map.next_value()?;
                        let value =
                            T::content(tag, raw).map_err(|e| de::Error::custom(message(&e)))?;
                        finish(&mut map, value)
                    }
                    Some(Key::Content) => Err(de::Error::duplicate_field(CONTENT)),
                    None => Err(de::Error::missing_field(TAG)),
                }
            }
            None => Err(de::Error::missing_field(TAG)),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<T, A::Error> {
        let Some(tag) = seq.next_element::<T::Tag>()? else {
            return Err(de::Error::invalid_length(0, &self));
        };
        match seq.next_element_seed(ContentSeed::<T, _>(tag, PhantomData))? {
            Some(value) => Ok(value),
            None => Err(de::Error::invalid_length(1, &self)),
        }
    }
}

/// serde_json's message without its position: the position in the raw `result` is
/// not the position in the body; the body's parser adds its own.
fn message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let at = format!(" at line {} column {}", e.line(), e.column());
    match text.strip_suffix(&at) {
        Some(m) if e.line() != 0 => m.to_string(),
        _ => text,
    }
}

/// How deep `Content` could nest `result`: serde_json allows 128 levels in a body,
/// and the envelope and `data` take two.
const MAX_DEPTH: usize = 126;

/// Reads a value fully (every number parsed, every string unescaped) and keeps
/// nothing: what buffering it into `Content` rejected, this rejects.
struct Check {
    depth: usize,
}

impl Check {
    fn enter<E: de::Error>(&self) -> Result<Check, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom("recursion limit exceeded"));
        }
        Ok(Check {
            depth: self.depth + 1,
        })
    }
}

impl<'de> DeserializeSeed<'de> for Check {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Check {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.enter()?;
        while seq
            .next_element_seed(Check { depth: inner.depth })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = self.enter()?;
        while map.next_key_seed(Check { depth: 0 })?.is_some() {
            map.next_value_seed(Check { depth: inner.depth })?;
        }
        Ok(())
    }
}
