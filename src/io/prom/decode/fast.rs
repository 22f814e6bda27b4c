//! The shape nearly every instant answer has, read without serde:
//! `{"status":"success","data":{"resultType":"vector","result":[{"metric":{..},"value":[t,"v"]},..]}}`,
//! with any JSON whitespace between tokens.
//!
//! Why: serde_json's reader spends most of a 10,000-series decode driving visitors
//! (a call per key, per string, per element), about 3 ms of a poll's 5. This reader
//! walks the bytes once, borrows every name and value from the body, and builds each
//! label set at once.
//!
//! It never decides anything the general reader (serde, `data.rs`) would decide
//! differently: it accepts only that one shape, with no escape or control byte in
//! any string, keys in that order, no other key, a time that is a plain decimal
//! number, and a value `parse_value` reads. Anything else, valid or not, returns
//! `None` and the whole body goes to the general reader, which gives the answer or
//! the error it always gave. `fast_tests.rs` checks that whatever this accepts, the
//! general reader decodes to the same samples (the fuzz corpus, mutations of it, and
//! generated bodies).
//!
//! A body that differs only after its samples (Prometheus writes `warnings` and
//! `infos` after `data`) is read twice, by this reader and then by serde: at worst
//! the cost of this reader again (about half of serde's), and only for such answers.

use super::value::parse_value;
use crate::core::series::{Labels, Sample};
use smallvec::SmallVec;

/// The samples of `body` if it has the one shape (see the module doc); `None` for
/// anything else.
pub(super) fn vector(body: &[u8]) -> Option<Vec<Sample>> {
    // Checked once for the whole body: every string below is cut at ASCII quotes,
    // which are always character boundaries.
    let text = std::str::from_utf8(body).ok()?;
    let mut c = Cursor { text, at: 0 };
    for token in [
        "{",
        "\"status\"",
        ":",
        "\"success\"",
        ",",
        "\"data\"",
        ":",
        "{",
        "\"resultType\"",
        ":",
        "\"vector\"",
        ",",
        "\"result\"",
        ":",
        "[",
    ] {
        c.eat(token)?;
    }
    let mut samples = Vec::new();
    if !c.eat_if(b']') {
        loop {
            samples.push(c.sample()?);
            if !c.eat_if(b',') {
                c.eat("]")?;
                break;
            }
        }
    }
    c.eat("}")?;
    c.eat("}")?;
    c.ws();
    (c.at == body.len()).then_some(samples)
}

struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// Skips JSON whitespace.
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes().get(self.at) {
            self.at += 1;
        }
    }

    /// The exact token `t` after any whitespace.
    fn eat(&mut self, t: &str) -> Option<()> {
        self.ws();
        // Byte by byte: the tokens are a few bytes, shorter than a call to `memcmp`.
        let rest = &self.bytes()[self.at..];
        if rest.len() >= t.len() && t.bytes().zip(rest).all(|(a, &b)| a == b) {
            self.at += t.len();
            Some(())
        } else {
            None
        }
    }

    /// Whether the next byte after any whitespace is `b` (then taken).
    fn eat_if(&mut self, b: u8) -> bool {
        self.ws();
        if self.bytes().get(self.at) == Some(&b) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// A string with no escape and no control byte, borrowed.
    fn string(&mut self) -> Option<&'a str> {
        self.ws();
        let b = self.bytes();
        if b.get(self.at) != Some(&b'"') {
            return None;
        }
        let start = self.at + 1;
        let len = b[start..]
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
        let end = start + len;
        if b[end] != b'"' {
            return None;
        }
        self.at = end + 1;
        self.text.get(start..end)
    }

    /// A number the general reader reads as an `f64` whatever it is:
    /// `-?(0|[1-9][0-9]*)(.[0-9]+)?`, at most 40 bytes (no exponent, so never out
    /// of range). Its value is not kept: an instant sample's time is not used.
    fn number(&mut self) -> Option<()> {
        self.ws();
        let b = self.bytes();
        let start = self.at;
        let mut i = start;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        let digits = |i: usize| b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        let int = digits(i);
        if int == 0 || (int > 1 && b[i] == b'0') {
            return None;
        }
        i += int;
        if b.get(i) == Some(&b'.') {
            let frac = digits(i + 1);
            if frac == 0 {
                return None;
            }
            i += 1 + frac;
        }
        if i - start > 40 || matches!(b.get(i), Some(b'e' | b'E')) {
            return None;
        }
        self.at = i;
        Some(())
    }

    /// `{"metric":{...},"value":[t,"v"]}`.
    fn sample(&mut self) -> Option<Sample> {
        self.eat("{")?;
        self.eat("\"metric\"")?;
        self.eat(":")?;
        let labels = self.labels()?;
        self.eat(",")?;
        self.eat("\"value\"")?;
        self.eat(":")?;
        self.eat("[")?;
        self.number()?;
        self.eat(",")?;
        let value = parse_value(self.string()?).ok()?;
        self.eat("]")?;
        self.eat("}")?;
        Some(Sample { labels, value })
    }

    /// `{"name":"value",...}`: a repeated name keeps its last value, as the general
    /// reader does (`Labels::from_pairs`).
    fn labels(&mut self) -> Option<Labels> {
        self.eat("{")?;
        let mut pairs: SmallVec<[(&str, &str); 12]> = SmallVec::new();
        if !self.eat_if(b'}') {
            loop {
                let name = self.string()?;
                self.eat(":")?;
                pairs.push((name, self.string()?));
                if !self.eat_if(b',') {
                    self.eat("}")?;
                    break;
                }
            }
        }
        Some(Labels::from_pairs(&mut pairs))
    }
}
