//! `${name}` placeholders in queries and command arguments.
//!
//! In a command argument the value is inserted as is: commands run without a shell, so a
//! value can only ever be one argument's text. In a PromQL query each placeholder's
//! context is tracked the way PromQL's lexer reads the template (string literals of
//! three kinds, escapes, `#` comments to the end of the line), and the value is escaped
//! for a string literal or refused where it cannot be made safe (`fill_lexical`). Values
//! outside string literals, and the proof that no value changed the query's tree, are
//! the job of `structure`: this lexical layer is the first line, not the guarantee.
//!
//! `$${` writes a literal `${`. `${watch.elapsed}` and `${watch.start}` are the
//! watch's clock, filled at each poll (`query.rs`), in queries only.

use std::collections::BTreeMap;

/// A part of a template.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Lit(String),
    /// A placeholder and its byte offset in the template (of the `$`).
    Var {
        name: String,
        offset: usize,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct TemplateError {
    pub offset: usize,
    pub message: String,
    /// The placeholder's text as written, to find it in the source.
    pub token: String,
}

/// Splits a template into literal text and placeholders.
pub fn parse(template: &str) -> Result<Vec<Piece>, TemplateError> {
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut rest = template;
    let mut offset = 0;
    while let Some(i) = rest.find('$') {
        lit.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(tail) = after.strip_prefix("$${") {
            lit.push_str("${");
            rest = tail;
            offset += i + 3;
        } else if let Some(body) = after.strip_prefix("${") {
            let Some(end) = body.find('}') else {
                return Err(TemplateError {
                    offset: offset + i,
                    message: "unclosed `${`: a placeholder is written `${name}`".into(),
                    token: "${".into(),
                });
            };
            let name = &body[..end];
            if !is_name(name) && !crate::core::rules::query::is_clock(name) {
                return Err(TemplateError {
                    offset: offset + i,
                    message: format!(
                        "`${{{name}}}` is not a valid placeholder: names are letters, digits and `_`, not starting with a digit (or `watch.elapsed`, `watch.start` in a query)"
                    ),
                    token: format!("${{{name}}}"),
                });
            }
            if !lit.is_empty() {
                pieces.push(Piece::Lit(std::mem::take(&mut lit)));
            }
            pieces.push(Piece::Var {
                name: name.to_owned(),
                offset: offset + i,
            });
            rest = &body[end + 1..];
            offset += i + 2 + end + 1;
        } else {
            lit.push('$');
            rest = &after[1..];
            offset += i + 1;
        }
    }
    lit.push_str(rest);
    if !lit.is_empty() {
        pieces.push(Piece::Lit(lit));
    }
    Ok(pieces)
}

/// A valid variable name.
pub fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Names used by a template, in order, with their offsets.
pub fn names(pieces: &[Piece]) -> impl Iterator<Item = (&str, usize)> {
    pieces.iter().filter_map(|p| match p {
        Piece::Var { name, offset } => Some((name.as_str(), *offset)),
        Piece::Lit(_) => None,
    })
}

/// Substitutes values as plain text (command arguments). Unknown names must have been
/// reported before; they are left empty here.
pub fn render_plain(pieces: &[Piece], vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    for p in pieces {
        match p {
            Piece::Lit(s) => out.push_str(s),
            Piece::Var { name, .. } => out.push_str(vars.get(name).map_or("", String::as_str)),
        }
    }
    out
}

/// Where in a PromQL query a placeholder sits, as PromQL's lexer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// Outside any string literal and comment.
    Code,
    Double,
    Single,
    /// A raw string: no escapes.
    Backtick,
    /// After a `#` in code, up to the end of the line.
    Comment,
}

/// The context of each placeholder, in order. Only the template's own text decides it:
/// a value is made to fit its context (escaped, or refused), so it never moves the
/// context of what follows.
pub fn contexts(pieces: &[Piece]) -> Result<Vec<Context>, TemplateError> {
    let mut out = Vec::new();
    let mut ctx = Context::Code;
    let mut escaped = false;
    for p in pieces {
        match p {
            Piece::Lit(s) => {
                for c in s.chars() {
                    (ctx, escaped) = advance(ctx, escaped, c);
                }
            }
            Piece::Var { name, offset } => {
                if escaped {
                    return Err(TemplateError {
                        offset: *offset,
                        message: format!(
                            "`${{{name}}}` follows a backslash inside a string literal, so the first character of its value would be read as an escape sequence; remove the backslash or double it (`\\\\`)"
                        ),
                        token: format!("${{{name}}}"),
                    });
                }
                out.push(ctx);
            }
        }
    }
    Ok(out)
}

/// Tracks string literals and comments in PromQL as characters go by (the rules of
/// Prometheus's lexer: `#` in code starts a comment that a line break ends; in `"` and
/// `'` strings a backslash escapes the next character; a backtick string has no escapes).
fn advance(ctx: Context, escaped: bool, c: char) -> (Context, bool) {
    match ctx {
        Context::Code => match c {
            '"' => (Context::Double, false),
            '\'' => (Context::Single, false),
            '`' => (Context::Backtick, false),
            '#' => (Context::Comment, false),
            _ => (Context::Code, false),
        },
        Context::Double | Context::Single => {
            let quote = if ctx == Context::Double { '"' } else { '\'' };
            if escaped {
                (ctx, false)
            } else if c == '\\' {
                (ctx, true)
            } else if c == quote {
                (Context::Code, false)
            } else {
                (ctx, false)
            }
        }
        Context::Backtick => {
            if c == '`' {
                (Context::Code, false)
            } else {
                (ctx, false)
            }
        }
        Context::Comment => {
            if c == '\n' || c == '\r' {
                (Context::Code, false)
            } else {
                (ctx, false)
            }
        }
    }
}

/// A value's text for a string literal or a comment, or why it cannot go there. Code
/// context is for `structure`, which knows PromQL's tokens.
pub fn fill_lexical(ctx: Context, value: &str) -> Result<String, String> {
    if value.contains('\0') {
        return Err("contains a NUL character, which is never allowed in a query".into());
    }
    match ctx {
        Context::Double => Ok(escape_quoted(value, '"')),
        Context::Single => Ok(escape_quoted(value, '\'')),
        Context::Backtick => {
            if value.contains('`') {
                Err("contains a backtick and sits in a raw (backtick) string, where it cannot be escaped; use a double-quoted string".into())
            } else if value.contains('\\') {
                Err("contains a backslash and sits in a raw (backtick) string, which Prometheus keeps as is but rollwatch's PromQL parser reads as an escape, so the two could disagree about where the string ends; use a double-quoted string".into())
            } else if value.chars().any(char::is_control) {
                Err("contains a control character and sits in a raw (backtick) string, which cannot escape it (Prometheus even drops carriage returns there); use a double-quoted string".into())
            } else {
                Ok(value.to_owned())
            }
        }
        Context::Comment => {
            if value.chars().any(char::is_control) {
                Err("contains a line break or another control character and sits in a `#` comment, which a line break would end, turning the rest of the value into query text".into())
            } else {
                Ok(value.to_owned())
            }
        }
        Context::Code => Ok(value.to_owned()),
    }
}

/// Escapes a value for a PromQL (Go-style) quoted string.
pub fn escape_quoted(value: &str, quote: char) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_placeholders_and_literal_dollars() {
        let p = parse("a${x}b$ ${y}c$d").unwrap();
        assert_eq!(
            p,
            vec![
                Piece::Lit("a".into()),
                Piece::Var {
                    name: "x".into(),
                    offset: 1
                },
                Piece::Lit("b$ ".into()),
                Piece::Var {
                    name: "y".into(),
                    offset: 8
                },
                Piece::Lit("c$d".into()),
            ]
        );
        assert_eq!(parse("$${x}").unwrap(), vec![Piece::Lit("${x}".into())]);
    }

    #[test]
    fn rejects_malformed_placeholders() {
        assert!(parse("${x").unwrap_err().message.contains("unclosed"));
        assert!(parse("${1x}").unwrap_err().message.contains("not a valid"));
        assert!(parse("${a-b}").is_err());
    }

    fn ctx_of(template: &str) -> Result<Vec<Context>, String> {
        contexts(&parse(template).unwrap()).map_err(|e| e.message)
    }

    #[test]
    fn a_comment_runs_to_the_end_of_the_line_and_hides_quotes() {
        use Context::*;
        // The apostrophe in the comment must not open a string (issue 10).
        assert_eq!(
            ctx_of("# don't page\nx{a=\"${v}\"}[${w}]").unwrap(),
            vec![Double, Code]
        );
        assert_eq!(ctx_of("up # it's ${v}\r${w}").unwrap(), vec![Comment, Code]);
        // Inside a string `#` is text.
        assert_eq!(ctx_of("x{a=\"#${v}\"} ${w}").unwrap(), vec![Double, Code]);
        assert_eq!(
            ctx_of("x{a='${v}'} `${w}`").unwrap(),
            vec![Single, Backtick]
        );
        // A backtick string has no escapes.
        assert_eq!(ctx_of("x{a=`\\`} ${v}").unwrap(), vec![Code]);
    }

    #[test]
    fn escaped_quote_inside_literal_keeps_context() {
        assert_eq!(ctx_of(r#"up{a="q\"${v}"}"#).unwrap(), vec![Context::Double]);
        assert_eq!(ctx_of(r#"up{a='q\'${v}'}"#).unwrap(), vec![Context::Single]);
        assert_eq!(ctx_of(r#"up{a="q\\"} ${v}"#).unwrap(), vec![Context::Code]);
    }

    #[test]
    fn a_placeholder_right_after_a_backslash_is_refused() {
        let err = ctx_of(r#"up{a="q\${v}"}"#).unwrap_err();
        assert!(err.contains("follows a backslash"), "{err}");
    }

    #[test]
    fn lexical_fill_escapes_strings_and_refuses_what_cannot_be_escaped() {
        use Context::*;
        assert_eq!(
            fill_lexical(Double, "a\"b'c\\d\ne#}").unwrap(),
            r#"a\"b'c\\d\ne#}"#
        );
        assert_eq!(
            fill_lexical(Single, "a\"b'c\u{1}").unwrap(),
            r#"a"b\'c\u0001"#
        );
        assert!(fill_lexical(Backtick, "a`b").is_err());
        assert!(fill_lexical(Backtick, "a\\b").is_err());
        assert!(fill_lexical(Backtick, "a\rb").is_err());
        assert_eq!(fill_lexical(Backtick, "a\"'b").unwrap(), "a\"'b");
        assert!(fill_lexical(Comment, "a\nup").is_err());
        assert!(fill_lexical(Comment, "a\rup").is_err());
        assert_eq!(
            fill_lexical(Comment, "it's \"fine\"").unwrap(),
            "it's \"fine\""
        );
        for ctx in [Double, Single, Backtick, Comment, Code] {
            assert!(fill_lexical(ctx, "a\0b").unwrap_err().contains("NUL"));
        }
    }

    #[test]
    fn plain_rendering_inserts_values_verbatim() {
        let t = parse("deployment/${s}").unwrap();
        assert_eq!(
            render_plain(&t, &vars(&[("s", "a b;rm -rf /")])),
            "deployment/a b;rm -rf /"
        );
    }
}
