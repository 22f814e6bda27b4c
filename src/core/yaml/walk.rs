//! Walking a spanned YAML tree while collecting diagnostics: the helpers every loader
//! of rollwatch (rule files, calendars) shares, so unknown keys, missing keys and
//! wrong types are reported the same way, with the same "did you mean".

use super::diag::{did_you_mean, Diagnostic, Severity};
use super::tree::{Node, Pos, Value};
use std::collections::BTreeMap;

/// The diagnostics collected while walking one file, and its text (to point inside
/// multi-line values).
pub(crate) struct Cx<'a> {
    pub source: &'a str,
    pub diags: Vec<Diagnostic>,
}

impl Cx<'_> {
    pub fn has_errors(&self) -> bool {
        self.diags.iter().any(|d| d.severity == Severity::Error)
    }
    pub fn error(&mut self, msg: impl Into<String>, pos: Pos) {
        self.diags.push(Diagnostic::error(msg, Some(pos)));
    }
    pub fn error_help(&mut self, msg: impl Into<String>, pos: Pos, help: impl Into<String>) {
        self.diags
            .push(Diagnostic::error(msg, Some(pos)).with_help(help));
    }
    /// Marks the last diagnostic as caused by a caller's value (`Diagnostic::with_public`).
    pub fn public(&mut self, public: impl Into<String>) {
        if let Some(d) = self.diags.last_mut() {
            d.public = Some(public.into());
        }
    }
    pub fn warn(&mut self, msg: impl Into<String>, pos: Pos, help: impl Into<String>) {
        self.diags
            .push(Diagnostic::warning(msg, Some(pos)).with_help(help));
    }

    /// The position of `token` at or after `from` in the source (to point at a
    /// placeholder inside a multi-line query); `from` itself when not found.
    pub fn locate(&self, from: Pos, token: &str) -> Pos {
        let Some(start) = from.offset.map(|o| o as usize) else {
            return from;
        };
        let Some(found) = self.source.get(start..).and_then(|s| s.find(token)) else {
            return from;
        };
        let at = start + found;
        let before = &self.source[..at];
        let line = before.matches('\n').count() as u64 + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Pos {
            line,
            column: before[line_start..].chars().count() as u64 + 1,
            len: token.chars().count() as u64,
            offset: Some(at as u64),
        }
    }
}

/// A mapping's entries by key, after reporting unknown keys.
pub(crate) struct Fields<'n> {
    entries: BTreeMap<String, (&'n Node, &'n Node)>,
    pub pos: Pos,
}

impl<'n> Fields<'n> {
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries.get(key).map(|(_, v)| *v)
    }
    pub fn key_pos(&self, key: &str) -> Pos {
        self.entries.get(key).map_or(self.pos, |(k, _)| k.pos)
    }
}

pub(crate) fn fields<'n>(
    cx: &mut Cx,
    node: &'n Node,
    what: &str,
    allowed: &[&str],
) -> Option<Fields<'n>> {
    let Value::Map(entries) = &node.value else {
        cx.error(
            format!("{what} must be a mapping of keys, found {}", node.kind()),
            node.pos,
        );
        return None;
    };
    let mut out = BTreeMap::new();
    for (k, v) in entries {
        let key = k.scalar_text().unwrap_or_default();
        if allowed.contains(&key.as_str()) {
            out.insert(key, (k, v));
        } else {
            let help = match did_you_mean(&key, allowed) {
                Some(near) => format!("did you mean `{near}`?"),
                None => format!("known keys here: {}", allowed.join(", ")),
            };
            cx.error_help(format!("unknown key `{key}` in {what}"), k.pos, help);
        }
    }
    Some(Fields {
        entries: out,
        pos: node.pos,
    })
}

pub(crate) fn required<'n>(
    cx: &mut Cx,
    f: &Fields<'n>,
    key: &str,
    what: &str,
    help: &str,
) -> Option<&'n Node> {
    let node = f.get(key);
    if node.is_none() {
        cx.error_help(format!("{what} has no `{key}`"), f.pos, help);
    }
    node
}

pub(crate) fn string(cx: &mut Cx, node: &Node, what: &str) -> Option<String> {
    match &node.value {
        Value::Str(s) => Some(s.clone()),
        _ => {
            cx.error(
                format!("{what} must be a string, found {}", node.kind()),
                node.pos,
            );
            None
        }
    }
}
