//! A rule's query as each evaluation instant asks it: `${watch.elapsed}` and
//! `${watch.start}` filled in from the watch's clock (issue 22).
//!
//! `increase(payment_failures_total[${watch.elapsed}])` counts the failures since this
//! release, not across it: a counter reset by the deploy, or failures of the previous
//! version, stay out of the window. The user's `${vars}` are rendered once, at load,
//! through the structure proof (`structure`); the two clock placeholders are proved
//! there too (`load/common.rs::compile_query`), as numbers that must stand alone
//! where a number or duration goes, with two different values of every form they
//! take. So per instant this module only substitutes digits (`754s`, `1765000000`)
//! where the proof put a number token: a pure substitution that cannot change the
//! query's structure.
//!
//! This is the one place that decides the rendering: the poller and the confirming
//! poll (`run/watch/poller.rs`), the history of replay, catch-up and the verdict
//! (`io/prom/history.rs`) and `check` all call [`Query::at`].

use std::time::Duration;

/// The placeholder of the time since the watch began, as a PromQL duration.
pub const ELAPSED: &str = "watch.elapsed";
/// The placeholder of the watch's start, in Unix seconds.
pub const START: &str = "watch.start";
/// Placeholder names rollwatch fills itself: no variable may take them.
pub const RESERVED: &[&str] = &[ELAPSED, START];

/// Whether a placeholder name is one rollwatch fills from the watch's clock.
pub fn is_clock(name: &str) -> bool {
    RESERVED.contains(&name)
}

/// A part of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Text as the loader rendered it (the user's variables already in).
    Text(String),
    Elapsed,
    Start,
    /// An `slo:` window (`core::eval::slo`): `${watch.elapsed}` capped at the window
    /// `cap` instead of `max_window`, and at least `floor` (one step of the data).
    Window {
        cap: Duration,
        floor: Duration,
    },
    /// `${watch.elapsed}` as a plain number of seconds (`754.000`, `3.453`), for
    /// arithmetic.
    ElapsedSecs,
}

/// Where on a watch's clock a query is asked: both in Unix ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    /// When the watch began.
    pub start_ms: i64,
    /// The evaluation instant.
    pub at_ms: i64,
}

impl Clock {
    /// The clock of a watch that began `window` before `at_ms`: what `gate`, a verdict
    /// and `check` ask, having no watch (the longest window the rule allows).
    pub fn began_before(at_ms: i64, window: Duration) -> Clock {
        Clock {
            start_ms: at_ms - window.as_millis() as i64,
            at_ms,
        }
    }
}

/// A rule's query (or one of its judges'): fixed text, or text with the watch's clock
/// in it. Reads as its text as written (`${watch.elapsed}` shown as such) wherever it
/// is shown; [`Query::at`] is what is sent to Prometheus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// As written, the user's variables substituted: what reports and pages show.
    text: String,
    /// Empty for a fixed query (then `text` is sent as is).
    parts: Vec<Part>,
    /// `max_window`: the longest `${watch.elapsed}` is ever written.
    max_window: Duration,
}

impl Query {
    /// A query without the watch's clock.
    pub fn fixed(text: impl Into<String>) -> Query {
        Query {
            text: text.into(),
            parts: Vec::new(),
            max_window: Duration::ZERO,
        }
    }

    /// A query of parts, shown with the placeholders as written. Only the loader builds
    /// one, after the structure proof.
    pub(crate) fn with_clock(parts: Vec<Part>) -> Query {
        if !parts.iter().any(|p| !matches!(p, Part::Text(_))) {
            let text = parts
                .into_iter()
                .map(|p| match p {
                    Part::Text(t) => t,
                    _ => String::new(),
                })
                .collect::<String>();
            return Query::fixed(text);
        }
        let text = parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.clone(),
                Part::Elapsed => format!("${{{ELAPSED}}}"),
                Part::Start => format!("${{{START}}}"),
                // Shown as the window a watch longer than it asks.
                Part::Window { cap, .. } => crate::core::eval::slo::window_label(*cap),
                Part::ElapsedSecs => format!("${{{ELAPSED}_seconds}}"),
            })
            .collect();
        Query {
            text,
            parts,
            max_window: Duration::ZERO,
        }
    }

    /// The same query capped at `max_window`.
    pub fn capped(mut self, max_window: Duration) -> Query {
        self.max_window = max_window;
        self
    }

    /// The query as written (the placeholders shown, never sent).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the query reads the watch's clock (then it differs from one instant to
    /// the next, and one range query cannot ask it).
    pub fn uses_clock(&self) -> bool {
        !self.parts.is_empty()
    }

    /// Its parts (a fixed query: its text), for the loader to compose a query of
    /// queries it proved (`load/slo.rs`).
    pub(crate) fn parts(&self) -> Vec<Part> {
        if self.parts.is_empty() {
            vec![Part::Text(self.text.clone())]
        } else {
            self.parts.clone()
        }
    }

    /// The cap of `${watch.elapsed}`.
    pub fn max_window(&self) -> Duration {
        self.max_window
    }

    /// The query to send for the instant `clock.at_ms` of a watch that began at
    /// `clock.start_ms` (a fixed query borrowed: it is asked at every poll).
    pub fn at(&self, clock: Clock) -> std::borrow::Cow<'_, str> {
        if self.parts.is_empty() {
            return std::borrow::Cow::Borrowed(&self.text);
        }
        let mut out = String::with_capacity(self.text.len());
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Elapsed => out.push_str(&duration_text(elapsed(clock, self.max_window))),
                Part::Start => out.push_str(&start_text(clock.start_ms)),
                Part::Window { cap, floor } => {
                    let w = elapsed(clock, *cap).max((*floor).min(*cap));
                    out.push_str(&duration_text(w));
                }
                Part::ElapsedSecs => {
                    // To the millisecond, like the windows it multiplies.
                    let e = elapsed(clock, self.max_window);
                    out.push_str(&format!("{}.{:03}", e.as_secs(), e.subsec_millis()))
                }
            }
        }
        std::borrow::Cow::Owned(out)
    }

    /// The query as a watch would ask it after running `max_window` (what is checked
    /// offline and shown by `check`).
    pub fn sample(&self) -> String {
        self.at(Clock::began_before(
            self.max_window.as_millis() as i64,
            self.max_window,
        ))
        .into_owned()
    }
}

/// `${watch.elapsed}` at `clock`: the time since the start to the millisecond, so that
/// the window `(t - elapsed, t]` reaches exactly back to the start at every instant (a
/// poll between two seconds and a step of a range read on a whole second see the same
/// window: a sample of the old version just before the start is in neither); at least
/// 1ms (PromQL refuses an empty range); at most `cap` (a zero cap: no cap).
pub fn elapsed(clock: Clock, cap: Duration) -> Duration {
    let ms = (clock.at_ms - clock.start_ms).max(1) as u64;
    let d = Duration::from_millis(ms);
    if cap.is_zero() {
        d
    } else {
        d.min(cap.max(Duration::from_millis(1)))
    }
}

/// A duration as `${watch.elapsed}` writes it: whole seconds and the milliseconds left
/// (`754s`, `3s453ms`, `453ms`), one PromQL duration token that Prometheus,
/// VictoriaMetrics and the parser rollwatch proves queries with all read.
pub fn duration_text(d: Duration) -> String {
    let (s, ms) = (d.as_secs(), d.subsec_millis());
    match (s, ms) {
        (s, 0) => format!("{s}s"),
        (0, ms) => format!("{ms}ms"),
        (s, ms) => format!("{s}s{ms}ms"),
    }
}

/// The start as `${watch.start}` writes it: Unix seconds, rounded down (the same side as
/// `elapsed`: `time() - ${watch.start}` covers the whole watch).
pub fn start_text(start_ms: i64) -> String {
    start_ms.div_euclid(1000).max(0).to_string()
}

impl std::ops::Deref for Query {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

impl std::fmt::Display for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl serde::Serialize for Query {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl From<&str> for Query {
    fn from(s: &str) -> Query {
        Query::fixed(s)
    }
}

impl From<String> for Query {
    fn from(s: String) -> Query {
        Query::fixed(s)
    }
}

impl PartialEq<str> for Query {
    fn eq(&self, other: &str) -> bool {
        self.text == other
    }
}

impl PartialEq<&str> for Query {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(start_ms: i64, at_ms: i64) -> Clock {
        Clock { start_ms, at_ms }
    }

    #[test]
    fn elapsed_is_exact_to_the_millisecond_at_least_one_and_capped() {
        let h = Duration::from_secs(3600);
        // (start, at, cap, expected ms)
        let cases: &[(i64, i64, Duration, u64)] = &[
            (0, 0, h, 1),
            (0, 1, h, 1),
            (0, 999, h, 999),
            (0, 1000, h, 1000),
            (0, 1001, h, 1001),
            (10_000, 764_000, h, 754_000),
            (10_000, 764_001, h, 754_001),
            (5_000, 1_000, h, 1),
            (0, 7_200_000, h, 3_600_000),
            (0, 3_600_001, h, 3_600_000),
            (0, 7_200_000, Duration::ZERO, 7_200_000),
            (0, 7_200_000, Duration::from_millis(500), 500),
        ];
        for &(s, a, cap, want) in cases {
            assert_eq!(
                elapsed(clock(s, a), cap),
                Duration::from_millis(want),
                "start {s} at {a} cap {cap:?}"
            );
        }
    }

    #[test]
    fn a_poll_and_a_step_reach_back_to_the_same_instant() {
        // The window `(t - elapsed, t]` starts at the watch's start whether `t` falls
        // on a whole second (a step of a range read) or between two (a poll).
        let start = 1_796_559_446_186;
        for at in [1_796_559_449_000, 1_796_559_449_453, 1_796_559_446_187] {
            let e = elapsed(clock(start, at), Duration::ZERO);
            assert_eq!(at - e.as_millis() as i64, start, "at {at}");
        }
    }

    #[test]
    fn durations_are_written_as_one_token_prometheus_reads() {
        let cases: &[(u64, &str)] = &[
            (1, "1ms"),
            (453, "453ms"),
            (1_000, "1s"),
            (3_453, "3s453ms"),
            (754_000, "754s"),
            (3_155_760_000_999, "3155760000s999ms"),
        ];
        for &(ms, want) in cases {
            let text = duration_text(Duration::from_millis(ms));
            assert_eq!(text, want);
            let q = format!("increase(x[{text}])");
            let parsed = promql_parser::parser::parse(&q).unwrap();
            let promql_parser::parser::Expr::Call(call) = parsed else {
                panic!("{q}: not a call")
            };
            let promql_parser::parser::Expr::MatrixSelector(m) = &*call.args.args[0] else {
                panic!("{q}: not a range")
            };
            assert_eq!(m.range, Duration::from_millis(ms), "{q}");
        }
    }

    #[test]
    fn renders_each_instant_by_substitution_only() {
        let q = Query::with_clock(vec![
            Part::Text("increase(x[".into()),
            Part::Elapsed,
            Part::Text("]) and x @ ".into()),
            Part::Start,
        ])
        .capped(Duration::from_secs(3600));
        assert!(q.uses_clock());
        assert_eq!(
            q.text(),
            "increase(x[${watch.elapsed}]) and x @ ${watch.start}"
        );
        assert_eq!(
            q.at(clock(1_765_000_000_500, 1_765_000_754_000)),
            "increase(x[753s500ms]) and x @ 1765000000"
        );
        assert_eq!(
            q.at(clock(1_765_000_000_000, 1_765_009_000_000)),
            "increase(x[3600s]) and x @ 1765000000"
        );
        assert_eq!(q.sample(), "increase(x[3600s]) and x @ 0");
        let f = Query::fixed("up");
        assert!(!f.uses_clock());
        assert_eq!(f.at(clock(0, 5_000)), "up");
        assert_eq!(
            Query::with_clock(vec![Part::Text("up".into())]),
            Query::fixed("up")
        );
    }
}
