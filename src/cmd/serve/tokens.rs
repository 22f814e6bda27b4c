//! The API's bearer tokens (`--token-file`): one per line, `name:token` to say whose
//! it is (the name is who a manual order is recorded as), or a bare `token`. Blank
//! lines and lines starting with `#` are skipped.
//!
//! A line `alice:s3cret` also accepts `alice:s3cret` whole (as alice's: the whole line
//! names alice as much as the split does, so it cannot be used to record an order in
//! another name), so a token file written before names existed (a single token that
//! happens to hold a `:`) keeps working. Such a token is then also accepted by its part
//! after the first `:`, a shorter secret: `serve` says at start which lines were read
//! as named (`named_lines`), never showing a token. Every comparison is constant-time and every line is compared,
//! so the time taken does not say which line (or how much of one) matched.

/// Equal in time that depends only on the longer length, not on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().max(b.len());
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for i in 0..n {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// The longest name a token line may give.
const MAX_NAME: usize = 64;

#[derive(Debug, Clone)]
struct Entry {
    name: Option<String>,
    token: String,
    /// The whole line, when it was split into a name and a token.
    whole: Option<String>,
}

/// The tokens of a token file.
#[derive(Debug, Clone)]
pub struct Tokens(Vec<Entry>);

/// Whether `name` can be a person's name before a `:` (letters, digits, `.`, `_`,
/// `-`, `@`).
fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

impl Tokens {
    /// The tokens of a file's text; None when it holds none.
    pub fn parse(text: &str) -> Option<Tokens> {
        let entries: Vec<Entry> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| match l.split_once(':') {
                Some((name, token)) if is_name(name) && !token.trim().is_empty() => Entry {
                    name: Some(name.to_string()),
                    token: token.trim().to_string(),
                    whole: Some(l.to_string()),
                },
                _ => Entry {
                    name: None,
                    token: l.to_string(),
                    whole: None,
                },
            })
            .collect();
        (!entries.is_empty()).then_some(Tokens(entries))
    }

    /// The names of the lines read as `name:token` (with their place among the
    /// tokens), for `serve`'s start-up log: never a token.
    pub fn named_lines(&self) -> Vec<(usize, String)> {
        self.0
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.name.clone().map(|n| (i + 1, n)))
            .collect()
    }

    /// Who `given` belongs to: None if it is no token; Some(None) for a token
    /// without a name.
    pub fn who(&self, given: &str) -> Option<Option<String>> {
        let given = given.trim().as_bytes();
        let mut found: Option<Option<String>> = None;
        for e in &self.0 {
            let named = constant_time_eq(given, e.token.as_bytes());
            let whole = e
                .whole
                .as_ref()
                .is_some_and(|w| constant_time_eq(given, w.as_bytes()));
            if found.is_none() && (named || whole) {
                found = Some(e.name.clone());
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_and_bare_tokens_each_say_whose_they_are() {
        let t =
            Tokens::parse("# on-call\nalice:s3cret\n\nbob:tok:with:colons\nbare-token\n").unwrap();
        assert_eq!(t.who("s3cret"), Some(Some("alice".into())));
        assert_eq!(t.who("tok:with:colons"), Some(Some("bob".into())));
        assert_eq!(t.who("bare-token"), Some(None));
        assert_eq!(
            t.who("alice:s3cret"),
            Some(Some("alice".into())),
            "the whole line, as before names, is still alice's (never a nameless token whose `by` could name anyone)"
        );
        assert_eq!(
            t.named_lines(),
            [(1, "alice".to_string()), (2, "bob".to_string())]
        );
        assert_eq!(t.who("alice"), None);
        assert_eq!(t.who(""), None);
        assert_eq!(t.who("s3cre"), None);
    }

    #[test]
    fn a_line_whose_head_is_no_name_is_a_bare_token() {
        let t = Tokens::parse("a b:c\n:x\nalice:\n").unwrap();
        assert_eq!(t.who("a b:c"), Some(None));
        assert_eq!(t.who(":x"), Some(None));
        assert_eq!(t.who("alice:"), Some(None));
        assert_eq!(t.who("c"), None);
        assert!(Tokens::parse("\n# nothing\n").is_none());
    }
}
