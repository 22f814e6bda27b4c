//! Diagnostics for rule files (and calendars, imports): a message, where it points, and a hint.
//!
//! Rendered the way `just` and rustc do it, so an engineer sees the offending line
//! with a caret under the offending value, and `file:line:column` for their editor.

use super::tree::Pos;
use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    pub pos: Option<Pos>,
    pub help: Option<String>,
    /// What a caller of the API may be told: a short sentence naming the request's
    /// bad field, for a diagnostic caused by a value the caller gave. It never quotes
    /// the file (no source line, no other variable's name, no pattern), and it is None
    /// for a fault of the file itself (see `LoadError::public_message`).
    pub public: Option<String>,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>, pos: Option<Pos>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            pos,
            help: None,
            public: None,
        }
    }

    pub fn warning(message: impl Into<String>, pos: Option<Pos>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            message: message.into(),
            pos,
            help: None,
            public: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Marks the diagnostic as caused by a caller's value, with what the caller may see.
    pub fn with_public(mut self, public: impl Into<String>) -> Self {
        self.public = Some(public.into());
        self
    }

    /// Renders the diagnostic against the file it came from.
    pub fn render(&self, path: &str, source: &str) -> String {
        let mut out = String::new();
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let _ = writeln!(out, "{label}: {}", self.message);
        let mut pad = " ".to_string();
        match self.pos {
            Some(pos) if pos.line > 0 => {
                let num = pos.line.to_string();
                pad = " ".repeat(num.len());
                let _ = writeln!(out, "{pad}--> {path}:{}:{}", pos.line, pos.column);
                if let Some(line) = source.lines().nth(pos.line as usize - 1) {
                    let col = pos.column.max(1) as usize - 1;
                    let rest = line.chars().count().saturating_sub(col).max(1);
                    let width = (pos.len as usize).clamp(1, rest);
                    let _ = writeln!(out, "{pad} |");
                    let _ = writeln!(out, "{num} | {line}");
                    let _ = writeln!(out, "{pad} | {}{}", " ".repeat(col), "^".repeat(width));
                }
            }
            _ => {
                let _ = writeln!(out, "{pad}--> {path}");
            }
        }
        if let Some(help) = &self.help {
            let _ = writeln!(out, "{pad} = help: {help}");
        }
        out
    }
}

/// The closest of `candidates` to `given`, if close enough to be a likely typo: a
/// small edit distance (transpositions count as one edit, so `jbo` finds `job`) or a
/// high Jaro-Winkler similarity (shared prefix, e.g. `for_duraton` finds `for`).
pub fn did_you_mean<'a>(given: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let max_edits = (given.chars().count() / 4).max(1);
    candidates
        .iter()
        .map(|c| {
            (
                strsim::osa_distance(given, c),
                strsim::jaro_winkler(given, c),
                *c,
            )
        })
        .filter(|(edits, jw, _)| *edits <= max_edits || *jw > 0.8)
        .min_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)))
        .map(|(_, _, c)| c)
}

#[cfg(test)]
mod tests {
    use super::did_you_mean;

    #[test]
    fn suggests_near_misses_only() {
        let keys = [
            "name", "query", "above", "below", "for", "interval", "no_data", "action",
        ];
        assert_eq!(did_you_mean("intervl", &keys), Some("interval"));
        assert_eq!(did_you_mean("for_duraton", &keys), Some("for"));
        assert_eq!(did_you_mean("qeury", &keys), Some("query"));
        assert_eq!(did_you_mean("jbo", &["job", "service"]), Some("job"));
        assert_eq!(did_you_mean("threshold", &keys), None);
    }
}
