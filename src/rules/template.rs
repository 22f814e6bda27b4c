//! `${name}` placeholders in queries and command arguments.
//!
//! In a command argument the value is inserted as is: commands run without a shell, so a
//! value can only ever be one argument's text. In a PromQL query the value is escaped for
//! the string literal it sits in (double, single or backtick quotes), so a value can
//! never close the string and change the query's structure. Outside a string literal
//! only numbers, durations and names are accepted (`[${window}]`, `${metric}`): anything
//! else is refused rather than trusted.
//!
//! `$${` writes a literal `${`.

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
            if !is_name(name) {
                return Err(TemplateError {
                    offset: offset + i,
                    message: format!(
                        "`${{{name}}}` is not a valid placeholder: names are letters, digits and `_`, not starting with a digit"
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

/// Where in a PromQL query a placeholder sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    Code,
    Double,
    Single,
    Backtick,
}

/// Substitutes values into a PromQL query, escaping each for where it sits.
pub fn render_promql(
    pieces: &[Piece],
    vars: &BTreeMap<String, String>,
) -> Result<String, TemplateError> {
    let mut out = String::new();
    let mut ctx = Context::Code;
    let mut escaped = false;
    for p in pieces {
        match p {
            Piece::Lit(s) => {
                for c in s.chars() {
                    (ctx, escaped) = advance(ctx, escaped, c);
                    out.push(c);
                }
            }
            Piece::Var { name, offset } => {
                let value = vars.get(name).map_or("", String::as_str);
                let fail = |why: String| TemplateError {
                    offset: *offset,
                    message: why,
                    token: format!("${{{name}}}"),
                };
                match ctx {
                    Context::Double => out.push_str(&escape_quoted(value, '"')),
                    Context::Single => out.push_str(&escape_quoted(value, '\'')),
                    Context::Backtick => {
                        if value.contains('`') {
                            return Err(fail(format!(
                                "the value {value:?} of `{name}` contains a backtick and sits in a raw (backtick) string, where it cannot be escaped"
                            )));
                        }
                        out.push_str(value);
                    }
                    Context::Code => {
                        if !is_safe_token(value) {
                            return Err(fail(format!(
                                "the value {value:?} of `{name}` is used outside a string literal, where only numbers, durations and names are allowed (anything else could change the query's structure)"
                            )));
                        }
                        out.push_str(value);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Tracks string literals in PromQL as characters go by.
fn advance(ctx: Context, escaped: bool, c: char) -> (Context, bool) {
    match ctx {
        Context::Code => match c {
            '"' => (Context::Double, false),
            '\'' => (Context::Single, false),
            '`' => (Context::Backtick, false),
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

/// A value that cannot change a query's structure outside a string: a number, a
/// duration or a metric/label name.
fn is_safe_token(value: &str) -> bool {
    !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '.'))
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

    #[test]
    fn query_values_are_escaped_for_their_string_literal() {
        let t = parse(r#"up{a="${v}",b='${v}',c=`${w}`}"#).unwrap();
        let q = render_promql(&t, &vars(&[("v", r#"x"}' or vector(1) \"#), ("w", "ok")])).unwrap();
        assert_eq!(
            q,
            r#"up{a="x\"}' or vector(1) \\",b='x"}\' or vector(1) \\',c=`ok`}"#
        );
        let parsed = promql_parser::parser::parse(&q).expect("escaped query parses");
        // The whole value stays one label matcher value: the selector has 3 matchers.
        assert!(matches!(
            parsed,
            promql_parser::parser::Expr::VectorSelector(_)
        ));
    }

    #[test]
    fn escaped_quote_inside_literal_keeps_context() {
        let t = parse(r#"up{a="q\"${v}"}"#).unwrap();
        assert_eq!(
            render_promql(&t, &vars(&[("v", "\"")])).unwrap(),
            r#"up{a="q\"\""}"#
        );
    }

    #[test]
    fn outside_strings_only_safe_tokens_pass() {
        let t = parse("rate(x[${w}]) > ${n}").unwrap();
        assert_eq!(
            render_promql(&t, &vars(&[("w", "5m"), ("n", "0.5")])).unwrap(),
            "rate(x[5m]) > 0.5"
        );
        let err = render_promql(&t, &vars(&[("w", "5m]) or vector(1"), ("n", "1")])).unwrap_err();
        assert!(
            err.message.contains("outside a string literal"),
            "{}",
            err.message
        );
        assert!(render_promql(&t, &vars(&[("w", ""), ("n", "1")])).is_err());
    }

    #[test]
    fn backtick_value_with_backtick_is_refused() {
        let t = parse("up{a=`${v}`}").unwrap();
        assert!(render_promql(&t, &vars(&[("v", "a`b")])).is_err());
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
