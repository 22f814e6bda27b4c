//! A `${var}` can never change a query's structure: proved on the parsed tree, not
//! trusted to the escaper.
//!
//! `template` escapes each value for the string literal or comment it sits in. That is
//! lexical: one mistake in tracking PromQL's syntax (a `#` comment with an apostrophe
//! once made the escaper escape for the wrong quote) and a value rewrites the query.
//! So the rendered query is also checked against the template, structurally:
//!
//! 1. The template is rendered with a unique stand-in for each placeholder: an ASCII
//!    word inside strings, comments and names, a distinctive integer for a number or
//!    duration. Parsed, that is the template's tree `P`.
//! 2. Each stand-in in `P` is replaced by its real value (a string or name by the raw
//!    value, a number, duration or `@` time by the value as PromQL reads it; a regex
//!    matcher is compiled again), giving the expected tree `E`.
//! 3. The real rendering is parsed to `R`. Unless `E == R` the value is refused.
//!
//! So a value can only ever be the literal its placeholder stands for: a label value, a
//! string, a number, a duration, or (part of) a name. Outside strings a value must be a
//! single number, duration or name, never a keyword (`or`, `by`, `offset`, ...).
//!
//! The guarantee is about the tree promql-parser builds; where Prometheus reads a raw
//! string differently (a backslash, a carriage return) such values are refused
//! (`template::fill_lexical`).
//!
//! Why one file of about 740 lines: rendering a query with stand-in values, settling
//! each value's class and comparing the two parse trees are one proof; each step's
//! invariant is what the next one relies on, so they are read together.

use super::template::{self, Context, Piece, TemplateError};
use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::token::{T_EQL_REGEX, T_NEQ_REGEX};
use promql_parser::parser::{
    AtModifier, BinModifier, Expr, LabelModifier, Offset, VectorMatchCardinality, VectorSelector,
};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, UNIX_EPOCH};

/// Why a query template could not be rendered.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryError {
    /// A placeholder's value was refused, or the placeholder sits where no value is safe.
    Placeholder(TemplateError),
    /// The template is not valid PromQL, whatever the values: what is wrong with it,
    /// to follow "the query of rule `x`".
    Template(String),
}

/// Words of PromQL that are never a value outside a string, even where the parser
/// would read them as a label name (`by (or)`): a value is data, not syntax.
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "atan2",
    "sum",
    "avg",
    "count",
    "min",
    "max",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "count_values",
    "quantile",
    "limitk",
    "limit_ratio",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "smoothed",
    "anchored",
    "fill",
    "fill_left",
    "fill_right",
    "start",
    "end",
];

/// The largest number accepted where PromQL reads it as seconds (ranges, offsets, `@`):
/// promql-parser panics converting a number of seconds past `u64::MAX` to a duration.
const MAX_SECONDS: f64 = 1e15;

/// Candidates for the stand-ins' prefix and the numbers' base; the first that the
/// template's own text does not contain is used, so a stand-in is never confused with
/// the template's text.
const PREFIXES: &[&str] = &["rwph", "rwqk", "rwzx", "rwvj"];
const BASES: &[u64] = &[3_987_654_000, 2_718_281_000, 1_618_033_000, 1_414_213_000];

/// What a value outside strings is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// A metric or label name, or part of one (`http_${kind}_total`).
    Name,
    /// A number or a duration (`5m` reads as 300 where a number goes).
    Numeric,
}

/// One placeholder occurrence.
struct Slot<'a> {
    name: &'a str,
    offset: usize,
    ctx: Context,
    /// The value (a stand-in for a free variable in `check`).
    value: String,
    /// The classes its value may take outside strings, preferred first; the current
    /// one is `classes[choice]`.
    classes: Vec<Class>,
    choice: usize,
    /// Unset in `check`: any value of the class that fits.
    free: bool,
}

impl Slot<'_> {
    fn class(&self) -> Option<Class> {
        (self.ctx == Context::Code).then(|| self.classes[self.choice])
    }

    fn error(&self, why: impl std::fmt::Display) -> QueryError {
        // The watch's clock has no one value: the message names the placeholder.
        let message = if super::query::is_clock(self.name) {
            format!("`${{{}}}` (the watch's clock) {why}", self.name)
        } else {
            format!("the value {:?} of `{}` {why}", self.value, self.name)
        };
        QueryError::Placeholder(TemplateError {
            offset: self.offset,
            message,
            token: format!("${{{}}}", self.name),
        })
    }
}

/// Substitutes values into a PromQL query and proves the result has the template's
/// structure. `free` names variables with no value (in `check`): each gets a stand-in
/// of the kind its place needs (its own name, or `1` where a number or duration goes).
pub fn render_query(
    pieces: &[Piece],
    vars: &BTreeMap<String, String>,
    free: &BTreeSet<String>,
) -> Result<String, QueryError> {
    render_query_numeric(pieces, vars, free, &BTreeSet::new())
}

/// [`render_query`], where the placeholders named in `numeric` must each stand alone
/// as a number or duration outside strings (never a name, never in a string or a
/// comment): the watch's clock (`query.rs`), whose value changes at every poll and so
/// must be proved to be one number token wherever it sits.
pub fn render_query_numeric(
    pieces: &[Piece],
    vars: &BTreeMap<String, String>,
    free: &BTreeSet<String>,
    numeric: &BTreeSet<String>,
) -> Result<String, QueryError> {
    let contexts = template::contexts(pieces).map_err(QueryError::Placeholder)?;
    let mut slots = Vec::new();
    for (piece, ctx) in pieces
        .iter()
        .filter(|p| matches!(p, Piece::Var { .. }))
        .zip(contexts)
    {
        let Piece::Var { name, offset } = piece else {
            unreachable!("filtered to placeholders")
        };
        let is_free = free.contains(name);
        let value = vars.get(name).cloned().unwrap_or_default();
        let mut slot = Slot {
            name,
            offset: *offset,
            ctx,
            value,
            classes: vec![Class::Name],
            choice: 0,
            free: is_free,
        };
        if numeric.contains(name.as_str()) {
            if ctx != Context::Code {
                return Err(slot.error(
                    "is a number that changes at every poll and cannot sit inside a string literal or a comment; put it where a duration or a number goes, e.g. `[${watch.elapsed}]` or `@ ${watch.start}`",
                ));
            }
            classify(&slot.value).map_err(|why| slot.error(why))?;
            slot.classes = vec![Class::Numeric];
        } else if ctx == Context::Code {
            slot.classes = if is_free {
                vec![Class::Name, Class::Numeric]
            } else {
                classify(&slot.value).map_err(|why| slot.error(why))?
            };
        } else if let Err(why) = template::fill_lexical(ctx, &slot.value) {
            return Err(slot.error(why));
        }
        slots.push(slot);
    }
    let lits: Vec<&str> = pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Lit(s) => Some(s.as_str()),
            Piece::Var { .. } => None,
        })
        .collect();
    let prefix = PREFIXES
        .iter()
        .copied()
        .find(|p| lits.iter().all(|l| !l.contains(p)))
        .ok_or_else(|| {
            QueryError::Template("contains every stand-in rollwatch uses to check it".into())
        })?;
    let base = BASES
        .iter()
        .copied()
        .find(|b| lits.iter().all(|l| !l.contains(&b.to_string()[..6])))
        .unwrap_or(BASES[0]);
    let stand_in = StandIn { prefix, base };

    let template = settle_classes(pieces, &mut slots, &stand_in)?;
    let values: Vec<Value> = slots.iter().map(Value::of).collect();

    // The whole rendering first; only when it differs, each value alone to name the
    // culprit.
    let real = render(pieces, &slots, &stand_in, Fill::Real);
    if let Ok(()) = compare(&template, &real, &slots, &values, &stand_in, None) {
        return Ok(real);
    }
    for i in 0..slots.len() {
        let one = render(pieces, &slots, &stand_in, Fill::One(i));
        compare(&template, &one, &slots, &values, &stand_in, Some(i))
            .map_err(|why| slots[i].error(why))?;
    }
    Err(slots
        .first()
        .map(|s| s.error("together with the other values would change the query's structure"))
        .unwrap_or_else(|| QueryError::Template("does not parse the same twice".into())))
}

/// Picks each code placeholder's class so that the template parses with its stand-in
/// and the stand-in stands alone as one literal; returns the template's tree.
fn settle_classes(
    pieces: &[Piece],
    slots: &mut [Slot],
    stand_in: &StandIn,
) -> Result<Expr, QueryError> {
    // Each placeholder moves to its next class at most once per class: this ends.
    loop {
        let text = render(pieces, slots, stand_in, Fill::StandIns);
        match parse(&text) {
            Ok(tree) => {
                let mut s = Subst::new(slots, stand_in, None);
                let mut probe = tree.clone();
                s.expr(&mut probe);
                let lost = (0..slots.len())
                    .find(|&i| slots[i].ctx != Context::Comment && s.counts[i] == 0);
                let Some(i) = lost else {
                    return Ok(tree);
                };
                if slots[i].choice + 1 < slots[i].classes.len() {
                    slots[i].choice += 1;
                    continue;
                }
                let placeholder = format!("`${{{}}}`", slots[i].name);
                return Err(slots[i].error(match slots[i].class() {
                    Some(Class::Numeric) => format!("is a number or duration, but {placeholder} does not stand alone as one there (it runs into the text around it)"),
                    Some(Class::Name) => format!("does not end up as (part of) one name where {placeholder} sits"),
                    None => format!("does not end up inside the string literal where {placeholder} sits"),
                }));
            }
            Err(err) => {
                // A value of another class, where the template would parse?
                if let Some(i) = (0..slots.len()).find(|&i| {
                    slots[i].choice + 1 < slots[i].classes.len() && {
                        slots[i].choice += 1;
                        let ok = parse(&render(pieces, slots, stand_in, Fill::StandIns)).is_ok();
                        slots[i].choice -= 1;
                        ok
                    }
                }) {
                    slots[i].choice += 1;
                    continue;
                }
                for i in 0..slots.len() {
                    if slots[i].ctx != Context::Code || slots[i].free {
                        continue;
                    }
                    let current = slots[i].class();
                    let other = match current {
                        Some(Class::Name) => Class::Numeric,
                        _ => Class::Name,
                    };
                    let (classes, choice) = (slots[i].classes.clone(), slots[i].choice);
                    slots[i].classes = vec![other];
                    slots[i].choice = 0;
                    let fits = parse(&render(pieces, slots, stand_in, Fill::StandIns)).is_ok();
                    slots[i].classes = classes;
                    slots[i].choice = choice;
                    if fits {
                        return Err(slots[i].error(match other {
                            Class::Numeric => "is a name, but a number or duration goes there",
                            Class::Name => "is a number or duration, but a name goes there",
                        }));
                    }
                }
                let how = if slots.is_empty() {
                    ""
                } else {
                    " (checked with a plain stand-in for each placeholder)"
                };
                return Err(QueryError::Template(format!(
                    "is not valid PromQL{how}: {}",
                    err.trim()
                )));
            }
        }
    }
}

/// Which placeholders a rendering fills with their real values (the others get stand-ins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fill {
    Real,
    StandIns,
    /// The real value of this placeholder only.
    One(usize),
}

/// Renders the template.
fn render(pieces: &[Piece], slots: &[Slot], stand_in: &StandIn, fill: Fill) -> String {
    let mut out = String::new();
    let mut i = 0;
    for p in pieces {
        match p {
            Piece::Lit(s) => out.push_str(s),
            Piece::Var { .. } => {
                let slot = &slots[i];
                if fill == Fill::Real || fill == Fill::One(i) {
                    out.push_str(&real_text(slot));
                } else {
                    out.push_str(&stand_in.text(i, slot.class()));
                }
                i += 1;
            }
        }
    }
    out
}

/// A placeholder's real text: its value escaped for where it sits.
fn real_text(slot: &Slot) -> String {
    if slot.free && slot.class() == Some(Class::Numeric) {
        return "1".into();
    }
    template::fill_lexical(slot.ctx, &slot.value).unwrap_or_default()
}

/// The stand-ins of one template.
struct StandIn<'a> {
    prefix: &'a str,
    base: u64,
}

impl StandIn<'_> {
    fn text(&self, i: usize, class: Option<Class>) -> String {
        match class {
            Some(Class::Numeric) => (self.base + i as u64).to_string(),
            _ => format!("{}{i}z", self.prefix),
        }
    }

    /// The placeholder whose numeric stand-in `x` is (or whose negation it is, with
    /// `true`).
    fn number(&self, x: f64, n: usize) -> Option<(usize, bool)> {
        let a = x.abs();
        let b = self.base as f64;
        (a.fract() == 0.0 && a >= b && a < b + n as f64).then_some(((a - b) as usize, x < 0.0))
    }

    fn seconds(&self, d: Duration, n: usize) -> Option<usize> {
        let s = d.as_secs();
        (d.subsec_nanos() == 0 && s >= self.base && s < self.base + n as u64)
            .then(|| (s - self.base) as usize)
    }
}

/// A value as each kind of literal reads it.
struct Value {
    text: String,
    number: Option<f64>,
    duration: Option<Duration>,
    at: Option<AtModifier>,
}

impl Value {
    fn of(slot: &Slot) -> Value {
        let text = if slot.free && slot.class() == Some(Class::Numeric) {
            "1".to_string()
        } else {
            slot.value.clone()
        };
        if slot.class() != Some(Class::Numeric) {
            return Value {
                text,
                number: None,
                duration: None,
                at: None,
            };
        }
        let number = number_of(&text);
        // Read as seconds only when promql-parser can do so without panicking.
        let in_range = number.is_some_and(|n| n.is_finite() && n.abs() <= MAX_SECONDS);
        let duration = in_range
            .then(|| match parse(&format!("x[{text}]")) {
                Ok(Expr::MatrixSelector(m)) => Some(m.range),
                _ => None,
            })
            .flatten();
        let at = in_range
            .then(|| match parse(&format!("x @ {text}")) {
                Ok(Expr::VectorSelector(v)) => v.at,
                _ => None,
            })
            .flatten();
        Value {
            text,
            number,
            duration,
            at,
        }
    }
}

/// The number a value is, as PromQL reads it alone (`5m` is 300).
fn number_of(value: &str) -> Option<f64> {
    match parse(value) {
        Ok(Expr::NumberLiteral(n)) => Some(n.val),
        _ => None,
    }
}

/// What a value outside strings may be, preferred first; or why it cannot be there.
fn classify(value: &str) -> Result<Vec<Class>, String> {
    if value.is_empty() {
        return Err("is empty, and sits outside a string literal, where a number, a duration or a name must stand".into());
    }
    let lower = value.to_ascii_lowercase();
    if KEYWORDS.contains(&lower.as_str()) {
        return Err(format!(
            "is the PromQL keyword `{lower}`, and sits outside a string literal, where only a number, a duration or a name may stand (a keyword would change the query's structure)"
        ));
    }
    let name_chars = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    let special = lower == "inf" || lower == "nan";
    // One number or duration token: starts like one, has no operator or space in it,
    // and PromQL reads it alone as a number.
    let number_chars = value.chars().enumerate().all(|(i, c)| {
        c.is_ascii_alphanumeric()
            || c == '.'
            || (matches!(c, '+' | '-') && i > 0 && matches!(value.as_bytes()[i - 1], b'e' | b'E'))
    });
    let numeric = special
        || (value.starts_with(|c: char| c.is_ascii_digit() || c == '.')
            && number_chars
            && number_of(value).is_some());
    let mut classes = Vec::new();
    if numeric {
        classes.push(Class::Numeric);
    }
    if name_chars && !special {
        classes.push(Class::Name);
    }
    if classes.is_empty() {
        return Err("sits outside a string literal, where only a number, a duration or a name may stand (anything else could change the query's structure)".into());
    }
    Ok(classes)
}

/// Parses PromQL, turning a panic of the parser (it has some, e.g. on `x[1e30]`) into
/// an error. Answers are kept by text (at most `PARSED_MAX`, then forgotten at once):
/// the proof parses the same stand-in renderings of a rule file for every watch made
/// of it, and the parser compiles each `=~` matcher's regex anew each time; at an
/// agent's start with 100,000 watches of one file that was most of its CPU.
pub fn parse(query: &str) -> Result<Expr, String> {
    let mut parsed = PARSED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(hit) = parsed.get(query) {
        return hit.clone();
    }
    drop(parsed);
    let answer = parse_anew(query);
    parsed = PARSED.lock().unwrap_or_else(|e| e.into_inner());
    if parsed.len() >= PARSED_MAX {
        parsed.clear();
    }
    parsed.insert(query.to_string(), answer.clone());
    answer
}

/// How many parsed queries `parse` keeps.
const PARSED_MAX: usize = 1024;

static PARSED: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<String, Result<Expr, String>>>,
> = std::sync::LazyLock::new(Default::default);

fn parse_anew(query: &str) -> Result<Expr, String> {
    quiet_panics();
    PARSING.with(|p| p.set(true));
    let parsed = std::panic::catch_unwind(|| promql_parser::parser::parse(query));
    PARSING.with(|p| p.set(false));
    parsed.unwrap_or_else(|_| {
        Err("the PromQL parser failed on this query (a number too large for a duration?)".into())
    })
}

thread_local! {
    /// This thread is inside the parser, whose panics `parse` turns into errors.
    static PARSING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Installs, once, a panic hook that stays silent for a panic of the parser caught by
/// `parse` (a user's query is answered with an error, never with "thread panicked"
/// and a backtrace) and reports every other panic as before.
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let before = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !PARSING.with(|p| p.get()) {
                before(info);
            }
        }));
    });
}

/// Parses a rendering and compares it with the template's tree, its stand-ins replaced
/// by the values (all of them, or only `only`'s).
fn compare(
    template: &Expr,
    rendered: &str,
    slots: &[Slot],
    values: &[Value],
    stand_in: &StandIn,
    only: Option<usize>,
) -> Result<(), String> {
    let mut expected = template.clone();
    let mut s = Subst::new(slots, stand_in, only);
    s.values = Some(values);
    s.expr(&mut expected);
    if let Some(why) = s.failure {
        return Err(why);
    }
    let actual = parse(rendered).map_err(|e| {
        format!(
            "would make the query invalid ({}), so it is not only the literal it stands for",
            e.trim()
        )
    })?;
    if actual == expected {
        Ok(())
    } else {
        Err("would change the query's structure: it must stay the one literal (label value, string, number, duration or name) its placeholder stands for".into())
    }
}

/// Replaces stand-ins in a tree by values (or only counts them, without values).
struct Subst<'a> {
    stand_in: &'a StandIn<'a>,
    n: usize,
    only: Option<usize>,
    values: Option<&'a [Value]>,
    counts: Vec<usize>,
    failure: Option<String>,
}

impl<'a> Subst<'a> {
    fn new(slots: &[Slot], stand_in: &'a StandIn<'a>, only: Option<usize>) -> Subst<'a> {
        Subst {
            stand_in,
            n: slots.len(),
            only,
            values: None,
            counts: vec![0; slots.len()],
            failure: None,
        }
    }

    fn wanted(&self, i: usize) -> bool {
        self.only.is_none_or(|o| o == i)
    }

    fn fail(&mut self, why: String) {
        self.failure.get_or_insert(why);
    }

    /// Replaces word stand-ins in a string; true if any was replaced.
    fn string(&mut self, s: &mut String) -> bool {
        let prefix = self.stand_in.prefix;
        if !s.contains(prefix) {
            return false;
        }
        let mut out = String::with_capacity(s.len());
        let mut rest = s.as_str();
        let mut changed = false;
        while let Some(at) = rest.find(prefix) {
            out.push_str(&rest[..at]);
            let after = &rest[at + prefix.len()..];
            let digits = after.bytes().take_while(u8::is_ascii_digit).count();
            let index = after[..digits]
                .parse::<usize>()
                .ok()
                .filter(|&i| i < self.n && after[digits..].starts_with('z'));
            match index {
                Some(i) => {
                    self.counts[i] += 1;
                    match self.values {
                        Some(values) if self.wanted(i) => {
                            out.push_str(&values[i].text);
                            changed = true;
                        }
                        _ => out.push_str(&rest[at..at + prefix.len() + digits + 1]),
                    }
                    rest = &after[digits + 1..];
                }
                None => {
                    out.push_str(prefix);
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        *s = out;
        changed
    }

    fn number(&mut self, x: &mut f64) {
        let Some((i, negated)) = self.stand_in.number(*x, self.n) else {
            return;
        };
        self.counts[i] += 1;
        let Some(values) = self.values.filter(|_| self.wanted(i)) else {
            return;
        };
        match values[i].number {
            Some(v) => *x = if negated { -v } else { v },
            None => self.fail(format!(
                "is not a number PromQL reads (as `{}`)",
                values[i].text
            )),
        }
    }

    fn duration(&mut self, d: &mut Duration) {
        let Some(i) = self.stand_in.seconds(*d, self.n) else {
            return;
        };
        self.counts[i] += 1;
        let Some(values) = self.values.filter(|_| self.wanted(i)) else {
            return;
        };
        match values[i].duration {
            Some(v) => *d = v,
            None => self.fail(
                "is not a duration PromQL accepts there (e.g. `5m`, `1h30m`, or seconds above 0)"
                    .into(),
            ),
        }
    }

    fn at(&mut self, at: &mut AtModifier) {
        let AtModifier::At(t) = at else { return };
        let Some(i) = t
            .duration_since(UNIX_EPOCH)
            .ok()
            .and_then(|d| self.stand_in.seconds(d, self.n))
        else {
            return;
        };
        self.counts[i] += 1;
        let Some(values) = self.values.filter(|_| self.wanted(i)) else {
            return;
        };
        match &values[i].at {
            Some(v) => *at = v.clone(),
            None => self.fail("is not a time PromQL accepts after `@`".into()),
        }
    }

    fn offset(&mut self, o: &mut Offset) {
        match o {
            Offset::Pos(d) | Offset::Neg(d) => self.duration(d),
        }
    }

    fn labels(&mut self, labels: &mut [String]) {
        for l in labels {
            self.string(l);
        }
    }

    fn label_modifier(&mut self, m: &mut LabelModifier) {
        match m {
            LabelModifier::Include(l) | LabelModifier::Exclude(l) => self.labels(&mut l.labels),
        }
    }

    fn bin_modifier(&mut self, m: &mut BinModifier) {
        match &mut m.card {
            VectorMatchCardinality::ManyToOne(l) | VectorMatchCardinality::OneToMany(l) => {
                self.labels(&mut l.labels)
            }
            VectorMatchCardinality::OneToOne | VectorMatchCardinality::ManyToMany => {}
        }
        if let Some(l) = &mut m.matching {
            self.label_modifier(l);
        }
        for v in [&mut m.fill_values.lhs, &mut m.fill_values.rhs]
            .into_iter()
            .flatten()
        {
            self.number(v);
        }
    }

    fn matcher(&mut self, m: &mut Matcher) {
        let changed = self.string(&mut m.name) | self.string(&mut m.value);
        if !changed {
            return;
        }
        // A regex matcher carries its compiled regex: build it again from the value.
        let id = match m.op {
            MatchOp::Re(_) => T_EQL_REGEX,
            MatchOp::NotRe(_) => T_NEQ_REGEX,
            MatchOp::Equal | MatchOp::NotEqual => return,
        };
        match Matcher::new_matcher(id, m.name.clone(), m.value.clone()) {
            Ok(rebuilt) => *m = rebuilt,
            Err(e) => self.fail(format!(
                "makes the regular expression of label `{}` invalid ({e})",
                m.name
            )),
        }
    }

    fn selector(&mut self, v: &mut VectorSelector) {
        if let Some(name) = &mut v.name {
            self.string(name);
        }
        for m in &mut v.matchers.matchers {
            self.matcher(m);
        }
        for group in &mut v.matchers.or_matchers {
            for m in group {
                self.matcher(m);
            }
        }
        if let Some(o) = &mut v.offset {
            self.offset(o);
        }
        if let Some(a) = &mut v.at {
            self.at(a);
        }
    }

    fn expr(&mut self, e: &mut Expr) {
        match e {
            Expr::Aggregate(a) => {
                self.expr(&mut a.expr);
                if let Some(p) = &mut a.param {
                    self.expr(p);
                }
                if let Some(m) = &mut a.modifier {
                    self.label_modifier(m);
                }
            }
            Expr::Unary(u) => self.expr(&mut u.expr),
            Expr::Binary(b) => {
                self.expr(&mut b.lhs);
                self.expr(&mut b.rhs);
                if let Some(m) = &mut b.modifier {
                    self.bin_modifier(m);
                }
            }
            Expr::Paren(p) => self.expr(&mut p.expr),
            Expr::Subquery(s) => {
                self.expr(&mut s.expr);
                self.duration(&mut s.range);
                if let Some(step) = &mut s.step {
                    self.duration(step);
                }
                if let Some(o) = &mut s.offset {
                    self.offset(o);
                }
                if let Some(a) = &mut s.at {
                    self.at(a);
                }
            }
            Expr::NumberLiteral(n) => self.number(&mut n.val),
            Expr::StringLiteral(s) => {
                self.string(&mut s.val);
            }
            Expr::VectorSelector(v) => self.selector(v),
            Expr::MatrixSelector(m) => {
                self.selector(&mut m.vs);
                self.duration(&mut m.range);
            }
            Expr::Call(c) => {
                for a in &mut c.args.args {
                    self.expr(a);
                }
            }
            // Never built by the parser; a stand-in in one would stay, so `E != R`.
            Expr::Extension(_) => {}
        }
    }
}

#[cfg(test)]
mod tests;
