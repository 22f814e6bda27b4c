//! promtool's expanding notation for input series (`0x20 1+1x20 _ stale`), parsed
//! exactly as promtool's series description grammar reads it, so a test file means
//! here what it means to `promtool test rules`.
//!
//! Items are separated by whitespace:
//! - `a`: one sample of value `a`;
//! - `axN`: `a` repeated, N + 1 samples (promtool adds one for time 0);
//! - `a+bxN`, `a-bxN`: N + 1 samples `a, a+b, a+2b, ...` (added step by step, as
//!   promtool does, so float rounding matches);
//! - `_`: one missing sample; `_xN`: N missing samples (not N + 1);
//! - `stale`: a staleness marker (also `stalexN`).
//!
//! Numbers are decimal with an optional fraction and exponent and an optional sign, or
//! `Inf` / `NaN` in any case; hexadecimal is refused, as in promtool's series.

use std::fmt;

/// One sample slot of a series, `interval` after the previous one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Point {
    Value(f64),
    /// `_`: no sample at this slot.
    Missing,
    /// `stale`: a staleness marker.
    Stale,
}

/// Why a values string could not be read: the offending item, where it starts (0-based
/// character index in the string) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotationError {
    pub token: String,
    pub at: usize,
    pub message: String,
}

impl fmt::Display for NotationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.token, self.message)
    }
}

impl std::error::Error for NotationError {}

/// The most samples one values string may expand to (promtool has no limit, but a
/// typo like `0x1000000000` must be an error, not an exhausted memory).
pub const MAX_POINTS: u64 = 1_000_000;

const HELP: &str =
    "expected `a`, `axN`, `a+bxN`, `a-bxN`, `_`, `_xN` or `stale` (a: a number, Inf or NaN)";

/// Parses a whole values string into its sample slots.
pub fn parse(values: &str) -> Result<Vec<Point>, NotationError> {
    let mut out = Vec::new();
    let mut chars = values.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut end = values.len();
        while let Some(&(i, c)) = chars.peek() {
            if c.is_whitespace() {
                end = i;
                break;
            }
            chars.next();
        }
        let token = &values[start..end];
        let at = values[..start].chars().count();
        let err = |message: String| NotationError {
            token: token.to_string(),
            at,
            message,
        };
        let item = item(token).map_err(err)?;
        if out.len() as u64 + item.count() > MAX_POINTS {
            return Err(err(format!(
                "expands past {MAX_POINTS} samples in all; is the count a typo?"
            )));
        }
        item.expand(&mut out);
    }
    Ok(out)
}

/// One item of the notation, before expansion.
#[derive(Debug, Clone, Copy)]
enum Item {
    Missing(u64),
    Repeat {
        start: Point,
        delta: f64,
        times: u64,
    },
}

impl Item {
    fn count(&self) -> u64 {
        match *self {
            Item::Missing(n) => n,
            Item::Repeat { times, .. } => times.saturating_add(1),
        }
    }

    fn expand(self, out: &mut Vec<Point>) {
        match self {
            Item::Missing(n) => out.extend((0..n).map(|_| Point::Missing)),
            Item::Repeat {
                start: Point::Value(mut v),
                delta,
                times,
            } => {
                for _ in 0..=times {
                    out.push(Point::Value(v));
                    v += delta;
                }
            }
            Item::Repeat { start, times, .. } => out.extend((0..=times).map(|_| start)),
        }
    }
}

fn item(token: &str) -> Result<Item, String> {
    if let Some(rest) = token.strip_prefix('_') {
        return match rest {
            "" => Ok(Item::Missing(1)),
            _ => match rest.strip_prefix('x') {
                Some(n) => Ok(Item::Missing(count(n)?)),
                None => Err(format!("`_` is followed by `{rest}`; {HELP}")),
            },
        };
    }
    let (start, rest) = if let Some(rest) = token.strip_prefix("stale") {
        (Point::Stale, rest)
    } else {
        let (v, rest) = number(token).ok_or_else(|| format!("no number at the start; {HELP}"))?;
        (Point::Value(v), rest)
    };
    if rest.is_empty() {
        return Ok(Item::Repeat {
            start,
            delta: 0.0,
            times: 0,
        });
    }
    if let Some(n) = rest.strip_prefix('x') {
        return Ok(Item::Repeat {
            start,
            delta: 0.0,
            times: count(n)?,
        });
    }
    if rest.starts_with(['+', '-']) {
        if start == Point::Stale {
            return Err("`stale` cannot grow by a step; write `stalexN`".into());
        }
        let (delta, after) =
            number(rest).ok_or_else(|| format!("no number after `{}`; {HELP}", &rest[..1]))?;
        return match after.strip_prefix('x') {
            Some(n) => Ok(Item::Repeat {
                start,
                delta,
                times: count(n)?,
            }),
            None if after.is_empty() => Err(format!("a step needs a count: write `{token}x<N>`")),
            None => Err(format!("unexpected `{after}`; {HELP}")),
        };
    }
    Err(format!("unexpected `{rest}`; {HELP}"))
}

/// A repetition count: decimal digits only.
fn count(text: &str) -> Result<u64, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "`x` must be followed by a whole number of repetitions, found `{text}`"
        ));
    }
    text.parse::<u64>()
        .map_err(|_| format!("the repetition count `{text}` is too large"))
}

/// A number at the start of `text` (optional sign; decimal with fraction and exponent,
/// or `Inf`/`NaN` in any case), and what follows it.
fn number(text: &str) -> Option<(f64, &str)> {
    let b = text.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let body = &text[i..];
    for word in ["inf", "nan"] {
        if body.get(..3).is_some_and(|w| w.eq_ignore_ascii_case(word)) {
            let v: f64 = match word {
                "inf" => f64::INFINITY,
                _ => f64::NAN,
            };
            let v = if b[0] == b'-' { -v } else { v };
            return Some((v, &body[3..]));
        }
    }
    let digits = |i: &mut usize| {
        let s = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - s
    };
    let mut n = digits(&mut i);
    if i < b.len() && b[i] == b'.' {
        i += 1;
        n += digits(&mut i);
    }
    if n == 0 {
        return None;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        if digits(&mut j) > 0 {
            i = j;
        }
    }
    text[..i].parse::<f64>().ok().map(|v| (v, &text[i..]))
}

#[cfg(test)]
mod tests;
