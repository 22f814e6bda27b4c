//! A series' label set, built once and then shared, hashed and compared cheaply.
//!
//! Why not the `BTreeMap<String, String>` it replaces: a poll of 10,000 series built
//! ten strings and a tree node per series, hashed each set string by string twice
//! (the decoder's duplicate count and the evaluator's map) and compared them label by
//! label; together about half of a poll's cost (BENCHMARKS.md, issue 21). Here a set
//! is one reference-counted block of bytes, allocated once: its hash (computed at
//! build), where each name and value ends, and their text. A clone is a reference
//! count; hashing writes the stored hash; equality is the pointer or the block's
//! bytes (the hash first among them).
//!
//! It behaves as the map did wherever the program can tell: the pairs are kept sorted
//! by name with one value per name (of a repeated name, the last, as the map's insert
//! kept it), the order between sets is the map's (pair by pair, names then values),
//! and it reads, writes and prints as a map. It cannot be changed once built: a
//! series' identity never is.

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use smallvec::SmallVec;
use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, LazyLock};

/// A series' identity: its label pairs, sorted by name, one value per name.
/// The empty set holds no block (`Labels::new()` allocates nothing).
#[derive(Clone, Default)]
pub struct Labels(Option<Arc<[u8]>>);

/// The block's layout: the hash (8 bytes), the number of names and values `m` (4),
/// where each of them ends in the text (`m` × 4: name 0, value 0, name 1, ...), then
/// the text, every name and value one after another. Integers little-endian.
const HASH: usize = 8;
const HEAD: usize = HASH + 4;

/// Seeded at random once per process, as the maps' own hashers are, so that no
/// input can be crafted to collide.
static SEED: LazyLock<foldhash::fast::RandomState> = LazyLock::new(Default::default);

impl Labels {
    /// The empty label set.
    pub const fn new() -> Self {
        Labels(None)
    }

    /// How many labels the set holds.
    pub fn len(&self) -> usize {
        self.set().map_or(0, |s| s.strings() / 2)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The value of label `name`, if the set has it.
    pub fn get(&self, name: &str) -> Option<&str> {
        let s = self.set()?;
        let i = s.search(name).ok()?;
        Some(s.value(i))
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The same set without label `name` (itself, shared, when it has no such label).
    pub fn without(&self, name: &str) -> Labels {
        if !self.contains_key(name) {
            return self.clone();
        }
        Self::build(self.iter().filter(|(k, _)| *k != name))
    }

    /// The pairs, sorted by name.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            set: self.set(),
            front: 0,
            back: self.len(),
        }
    }

    fn set(&self) -> Option<Set<'_>> {
        self.0.as_deref().map(Set)
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator {
        self.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator {
        self.iter().map(|(_, v)| v)
    }

    /// The set of `pairs`, in any order; of a repeated name, the last value is kept.
    ///
    /// `pairs` is reordered in place. Pairs already sorted with distinct names (as
    /// Prometheus writes them) are only checked, never sorted.
    pub fn from_pairs<K: AsRef<str>, V: AsRef<str>>(pairs: &mut [(K, V)]) -> Self {
        if pairs.is_empty() {
            return Labels(None);
        }
        let sorted = pairs
            .windows(2)
            .all(|w| name_order(w[0].0.as_ref(), w[1].0.as_ref()).is_lt());
        if sorted {
            return Self::build(pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())));
        }
        // Stable: equal names keep their order, so the last of them is the last given.
        pairs.sort_by(|a, b| name_order(a.0.as_ref(), b.0.as_ref()));
        let keep =
            |i: usize| i + 1 == pairs.len() || pairs[i].0.as_ref() != pairs[i + 1].0.as_ref();
        Self::build(
            (0..pairs.len())
                .filter(|&i| keep(i))
                .map(|i| (pairs[i].0.as_ref(), pairs[i].1.as_ref())),
        )
    }

    /// From pairs known sorted by name and distinct.
    fn build<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)> + Clone) -> Self {
        let (mut n, mut len) = (0usize, 0usize);
        for (k, v) in pairs.clone() {
            n += 1;
            len += k.len() + v.len();
        }
        if n == 0 {
            return Labels(None);
        }
        // Every label set comes from a bounded input (a Prometheus answer of at most
        // 64 MiB, an API body of at most 16 MiB, the store's own records), so the
        // 32-bit offsets never overflow; were one to, this is a crash, not a wrong set.
        let offset = |x: usize| u32::try_from(x).expect("a label set under 4 GiB");
        let strings = HEAD + 8 * n;
        // Allocated once, at its size (an iterator of known length), then filled in
        // place: the `Arc` is still only this one's.
        let mut block: Arc<[u8]> = std::iter::repeat_n(0u8, strings + len).collect();
        let b = Arc::get_mut(&mut block).expect("a new Arc is unshared");
        b[HASH..HEAD].copy_from_slice(&offset(2 * n).to_le_bytes());
        let (mut at, mut end) = (HEAD, strings);
        for (k, v) in pairs {
            for s in [k, v] {
                b[end..end + s.len()].copy_from_slice(s.as_bytes());
                end += s.len();
                b[at..at + 4].copy_from_slice(&offset(end - strings).to_le_bytes());
                at += 4;
            }
        }
        let hash = SEED.hash_one(&b[HASH..]);
        b[..HASH].copy_from_slice(&hash.to_le_bytes());
        Labels(Some(block))
    }
}

/// `a.cmp(b)`, deciding by the first byte where it differs (label names nearly
/// always do) without the call to `memcmp` a string comparison makes.
#[inline]
fn name_order(a: &str, b: &str) -> Ordering {
    match (a.as_bytes().first(), b.as_bytes().first()) {
        (Some(x), Some(y)) if x != y => x.cmp(y),
        _ => a.cmp(b),
    }
}

/// A view of a set's block.
#[derive(Clone, Copy)]
struct Set<'a>(&'a [u8]);

impl<'a> Set<'a> {
    fn hash(self) -> u64 {
        u64::from_le_bytes(self.0[..HASH].try_into().expect("8 bytes"))
    }

    /// Names and values: twice the labels.
    fn strings(self) -> usize {
        u32::from_le_bytes(self.0[HASH..HEAD].try_into().expect("4 bytes")) as usize
    }

    /// Where string `i` ends in the text.
    #[inline]
    fn end(self, i: usize) -> usize {
        let at = HEAD + 4 * i;
        u32::from_le_bytes(self.0[at..at + 4].try_into().expect("4 bytes")) as usize
    }

    fn text(self) -> &'a [u8] {
        &self.0[HEAD + 4 * self.strings()..]
    }

    /// String `i` (name 0, value 0, name 1, ...) as bytes.
    #[inline]
    fn bytes(self, i: usize) -> &'a [u8] {
        let start = if i == 0 { 0 } else { self.end(i - 1) };
        &self.text()[start..self.end(i)]
    }

    /// String `i` as text. Only whole `&str`s were written, at these boundaries, so
    /// this never fails; were it to, it reads as empty rather than panic.
    #[inline]
    fn str(self, i: usize) -> &'a str {
        std::str::from_utf8(self.bytes(i)).unwrap_or_default()
    }

    fn name(self, i: usize) -> &'a str {
        self.str(2 * i)
    }

    fn value(self, i: usize) -> &'a str {
        self.str(2 * i + 1)
    }

    /// The pair order, read as the sequence name, value, name, ... of each set: the
    /// first string that differs decides, else the shorter set comes first (bytes
    /// order, as `str` has).
    ///
    /// The strings before the first whose end differs between the two have the same
    /// lengths in both, so their text compares as one slice: usually all the names
    /// and values up to the one that tells two series apart.
    fn cmp_strings(self, other: Set) -> Ordering {
        let m = self.strings().min(other.strings());
        let k = (0..m).find(|&i| self.end(i) != other.end(i)).unwrap_or(m);
        let same = if k == 0 { 0 } else { self.end(k - 1) };
        match self.text()[..same].cmp(&other.text()[..same]) {
            Ordering::Equal => {}
            o => return o,
        }
        for i in k..m {
            match self.bytes(i).cmp(other.bytes(i)) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        self.strings().cmp(&other.strings())
    }

    fn search(self, name: &str) -> Result<usize, usize> {
        let (mut lo, mut hi) = (0, self.strings() / 2);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.name(mid).cmp(name) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }
}

/// The pairs of a `Labels`, sorted by name.
#[derive(Clone)]
pub struct Iter<'a> {
    set: Option<Set<'a>>,
    front: usize,
    back: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        if self.front == self.back {
            return None;
        }
        let s = self.set?;
        let i = self.front;
        self.front += 1;
        Some((s.name(i), s.value(i)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.back - self.front;
        (n, Some(n))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.front == self.back {
            return None;
        }
        let s = self.set?;
        self.back -= 1;
        Some((s.name(self.back), s.value(self.back)))
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// `labels["pod"]`: the value, or a panic when the set has no such label (as the map's).
/// For tests only: the program reads a label with `get`, so no input can make it panic.
#[cfg(test)]
impl std::ops::Index<&str> for Labels {
    type Output = str;

    fn index(&self, name: &str) -> &str {
        self.get(name)
            .unwrap_or_else(|| panic!("no label {name:?} in {self:?}"))
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = (&'a str, &'a str);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for Labels {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut pairs: Vec<(K, V)> = iter.into_iter().collect();
        Labels::from_pairs(&mut pairs)
    }
}

impl<K: AsRef<str>, V: AsRef<str>, const N: usize> From<[(K, V); N]> for Labels {
    fn from(mut pairs: [(K, V); N]) -> Self {
        Labels::from_pairs(&mut pairs)
    }
}

impl PartialEq for Labels {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            // The block is a function of the set: equal sets, equal bytes.
            (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a[..] == b[..],
            _ => false,
        }
    }
}

impl Eq for Labels {}

impl Hash for Labels {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.set().map_or(0, |s| s.hash()));
    }
}

/// The map's order: pair by pair (name, then value); a set that is a prefix of the
/// other comes first.
impl Ord for Labels {
    fn cmp(&self, other: &Self) -> Ordering {
        match (&self.0, &other.0) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(a), Some(b)) if Arc::ptr_eq(a, b) => Ordering::Equal,
            (Some(a), Some(b)) => Set(a).cmp_strings(Set(b)),
        }
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// As the map printed: `{"name": "value", ...}`.
impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// A JSON object of strings, names sorted, as the map wrote it.
impl Serialize for Labels {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

/// A map of strings, with the map's errors and its rule for a repeated name (the
/// last value). Names and values are borrowed from the input where it allows, so a
/// set costs its one block.
impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct LabelsVisitor;

        impl<'de> Visitor<'de> for LabelsVisitor {
            type Value = Labels;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                // What the map's read said (serde's map visitor).
                f.write_str("a map")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Labels, A::Error> {
                // On the stack for the usual few labels: nothing allocated but the set.
                let mut pairs: SmallVec<[(Cow<'de, str>, Cow<'de, str>); 12]> = SmallVec::new();
                while let Some((k, v)) = map.next_entry::<CowStr<'de>, CowStr<'de>>()? {
                    pairs.push((k.0, v.0));
                }
                Ok(Labels::from_pairs(&mut pairs))
            }
        }

        d.deserialize_map(LabelsVisitor)
    }
}

/// A string read borrowed from the input where it allows (no escape in it);
/// otherwise as `String` reads one, with its errors. The label sets' names and
/// values, and the decoder's value strings, are read through it.
pub struct CowStr<'de>(pub Cow<'de, str>);

impl<'de> Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;

        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<CowStr<'de>, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<CowStr<'de>, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<CowStr<'de>, E> {
                Ok(CowStr(Cow::Owned(v)))
            }

            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<CowStr<'de>, E> {
                match std::str::from_utf8(v) {
                    Ok(s) => Ok(CowStr(Cow::Owned(s.to_owned()))),
                    Err(_) => Err(E::invalid_value(serde::de::Unexpected::Bytes(v), &self)),
                }
            }

            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<CowStr<'de>, E> {
                match String::from_utf8(v) {
                    Ok(s) => Ok(CowStr(Cow::Owned(s))),
                    Err(e) => Err(E::invalid_value(
                        serde::de::Unexpected::Bytes(&e.into_bytes()),
                        &self,
                    )),
                }
            }
        }

        d.deserialize_string(V)
    }
}

#[cfg(test)]
#[path = "labels_tests.rs"]
mod labels_tests;
