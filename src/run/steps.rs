//! Reading a rule's data step by step, for `for` counted in the data
//! (`core::eval::onset`): the range queries a watch, its replay and the agent's
//! catch-up ask when a breach begins and when it is about to fire, and nowhere else.
//!
//! Every range here is on a grid of absolute multiples of its step (Unix time), so the
//! same breach seen by many watches of one service asks Prometheus the same question,
//! which the agent's source then sends once; and so a watch and its replay evaluate
//! the very same instants.

use crate::core::eval::{
    Extra, Labels, Phase, Poll, Reading, RuleEval, RuleState, Sample, StepPoll, Transition,
};
use crate::core::history::{polls_on_grid, shift_forward};
use crate::core::rules::{BaselineSource, Rule};
use crate::core::series::RangeSeries;
use crate::io::prom::history::{fetch_at, MAX_POINTS_PER_QUERY};
use crate::io::prom::{HistorySource, QueryError};
use std::collections::BTreeMap;
use std::time::Duration;

/// The finer look at the step before a breach's first breaching step is this many
/// points, so the breach's start is found within 1/FINE of a step (the sample's own
/// timestamp, give or take 0.2 % of a scrape).
pub const FINE: i64 = 500;

/// At most this many points (series × steps) in the finer look: a rule returning many
/// series looks less finely (and one returning more than FINE_BUDGET / 2 not at all:
/// `for` then counts from the step, up to a step later, never earlier).
pub const FINE_BUDGET: i64 = 50_000;

/// A rule whose queries read the watch's clock (`${watch.elapsed}`, `${watch.start}`)
/// has its own query text at every step, so `io::prom::history` asks it one step at a
/// time: its looks take at most this many steps (a coarser multiple of the step
/// beyond: a breach's start found later, never earlier), and it has no finer look
/// (`for` counts from the step).
pub const CLOCK_STEPS: i64 = 60;

/// Whether any query of `rule` reads the watch's clock.
fn uses_clock(rule: &Rule) -> bool {
    rule.query.uses_clock()
        || rule.guard.as_ref().is_some_and(|q| q.uses_clock())
        || rule.stable.as_ref().is_some_and(|q| q.uses_clock())
}

/// The step of a look over `span_ms`: `step_ms`, or for a rule with the watch's clock
/// the smallest multiple of it that covers the span in `CLOCK_STEPS` steps.
fn look_step(rule: &Rule, span_ms: i64, step_ms: i64) -> i64 {
    if !uses_clock(rule) {
        return step_ms;
    }
    let steps = span_ms.max(0) / step_ms + 1;
    step_ms * ((steps + CLOCK_STEPS - 1) / CLOCK_STEPS).max(1)
}

/// Where a rule's evaluator clock starts, in Unix ms (its `Duration::ZERO`).
#[derive(Debug, Clone, Copy)]
pub struct Origin(pub i64);

impl Origin {
    pub fn ms(&self, at: Duration) -> i64 {
        self.0 + at.as_millis() as i64
    }
    pub fn at(&self, ms: i64) -> Duration {
        Duration::from_millis((ms - self.0).max(0) as u64)
    }
}

/// The first multiple of `step` strictly after `ms`.
fn grid_after(ms: i64, step: i64) -> i64 {
    ms.div_euclid(step) * step + step
}

/// The first multiple of `step` at or after `ms`.
fn grid_from(ms: i64, step: i64) -> i64 {
    let k = ms.div_euclid(step) * step;
    if k == ms {
        ms
    } else {
        k + step
    }
}

/// The rule's query and its judges' (guard, `offset:` baseline) at every multiple of
/// `step` in `[start, end]` (Unix ms), as step polls on `origin`'s clock. Empty when
/// the span holds no grid point.
pub async fn fetch_steps<H: HistorySource>(
    source: &H,
    rule: &Rule,
    origin: Origin,
    start: i64,
    end: i64,
    step: i64,
) -> Result<Vec<StepPoll>, QueryError> {
    let step = step.max(1);
    let start = grid_from(start, step);
    if start > end {
        return Ok(Vec::new());
    }
    let end = end - (end - start) % step;
    let (n, main) = polls_on_grid(
        start,
        end,
        step,
        &fetch_at(source, rule, &rule.query, origin.0, start, end, step).await?,
    );
    let guard = match &rule.guard {
        Some(q) => Some(
            polls_on_grid(
                start,
                end,
                step,
                &fetch_at(source, rule, q, origin.0, start, end, step).await?,
            )
            .1,
        ),
        None => None,
    };
    let baseline = match rule.baseline {
        Some(BaselineSource::Offset(d)) => {
            let d = d.as_millis() as i64;
            let back = fetch_at(
                source,
                rule,
                &rule.query,
                origin.0 - d,
                start - d,
                end - d,
                step,
            )
            .await?;
            Some(polls_on_grid(start, end, step, &shift_forward(back, d)).1)
        }
        _ => None,
    };
    let at_step = |m: &BTreeMap<usize, Vec<Sample>>, k: usize| {
        Poll::Samples(m.get(&k).cloned().unwrap_or_default())
    };
    Ok((0..n)
        .map(|k| StepPoll {
            at: origin.at(start + k as i64 * step),
            poll: at_step(&main, k),
            guard: guard.as_ref().map(|g| at_step(g, k)),
            baseline: baseline.as_ref().map(|b| at_step(b, k)),
        })
        .collect())
}

/// Onset, after the poll at `at` was read: for the series that began to breach at it,
/// reads the steps since the previous poll (`prev`; None for the first poll, where
/// nothing is looked back over) to find where the breach began, then looks finer at the step before
/// that to stand on the sample's own timestamp; fires what has now breached for `for`.
/// A failed range query leaves `for` counted from the poll (later, never earlier).
#[allow(clippy::too_many_arguments)]
pub async fn onset<H: HistorySource>(
    source: &H,
    rule: &Rule,
    eval: &mut RuleEval,
    origin: Origin,
    prev: Option<Duration>,
    at: Duration,
    step: Duration,
    fixed_baseline: Option<&Poll>,
) -> Vec<Transition> {
    // At the first poll there is nothing to look back over: a breach already there
    // when the watch started counts from its start (a breach that began before the
    // release is not the release's; the first poll is where the watch began).
    let Some(prev) = prev else {
        return Vec::new();
    };
    let began = eval.began_at(at);
    if began.is_empty() {
        return Vec::new();
    }
    let at_ms = origin.ms(at);
    let lo = origin.ms(prev);
    let step_ms = look_step(rule, at_ms - lo, step.as_millis().max(1) as i64);
    let mut fired = Vec::new();
    let series;
    // (Each range query boxed: `read` is in every poll's future, and an answer
    // read inline made that future 8 KB, allocated and copied at every poll, to
    // look back only when a breach began. Issue 21.)
    match Box::pin(fetch_steps(
        source,
        rule,
        origin,
        grid_after(lo, step_ms),
        at_ms,
        step_ms,
    ))
    .await
    {
        Ok(steps) => {
            series = steps
                .iter()
                .map(|s| match &s.poll {
                    Poll::Samples(v) => v.len(),
                    Poll::Failed => 0,
                })
                .max()
                .unwrap_or(1)
                .max(1) as i64;
            fired.extend(eval.extend_back(at, &began, &steps, fixed_baseline))
        }
        Err(e) => {
            tracing::warn!(rule = %rule.name, error = %e, "could not read where the breach began; `for` counts from this poll");
            return fired;
        }
    }
    // The finer look: within the step before each breach's start (never before the
    // previous poll), at 1/FINE of a step (coarser for a rule of many series).
    let points = (FINE_BUDGET / series).min(FINE);
    if points < 2 || uses_clock(rule) {
        return fired;
    }
    let fine = (step_ms / points).max(1);
    // (Those that fired already are no longer pending.)
    let pending: Vec<(Labels, Duration)> = began
        .iter()
        .filter_map(|l| eval.series().get(l).map(|s| (l.clone(), s)))
        .filter(|(_, s)| s.phase == Phase::Pending)
        .map(|(l, s)| (l, s.since))
        .collect();
    let Some(earliest) = pending.iter().map(|(_, s)| *s).min() else {
        return fired;
    };
    let since_ms = origin.ms(earliest);
    let from = grid_after((since_ms - step_ms).max(lo), fine);
    match Box::pin(fetch_steps(source, rule, origin, from, since_ms - 1, fine)).await {
        Ok(steps) => {
            let labels: Vec<Labels> = pending.into_iter().map(|(l, _)| l).collect();
            fired.extend(eval.extend_back(at, &labels, &steps, fixed_baseline));
        }
        Err(e) => {
            tracing::warn!(rule = %rule.name, error = %e, "could not read the breach's start finer than a step; `for` counts from the step");
        }
    }
    fired
}

/// The steps a confirmation at `c` checks: every grid point from the earliest pending
/// series' start up to (not including) `c`.
pub async fn confirm_steps<H: HistorySource>(
    source: &H,
    rule: &Rule,
    eval: &RuleEval,
    origin: Origin,
    c: Duration,
    step: Duration,
) -> Result<Vec<StepPoll>, QueryError> {
    let Some(since) = eval.pending_since() else {
        return Ok(Vec::new());
    };
    let step_ms = step.as_millis().max(1) as i64;
    // One query's worth of steps at most: a `for` longer than 10,000 steps is checked
    // at a multiple of the step (still on the same grid).
    let span = c.saturating_sub(since).as_millis() as i64;
    let k = (span / step_ms).div_euclid(MAX_POINTS_PER_QUERY - 1) + 1;
    fetch_steps(
        source,
        rule,
        origin,
        origin.ms(since),
        origin.ms(c) - 1,
        look_step(rule, span, step_ms * k),
    )
    .await
}

/// One poll read with `for` counted in the data: when `for` has elapsed at `at`, the
/// pending span's steps are checked first (`RuleEval::confirm`); then the poll is read
/// (`RuleEval::read`, the one interpretation); then, for a breach that begins at it,
/// where it began (`onset`). The watch loop, replay and the agent's catch-up all read
/// their polls through this.
#[allow(clippy::too_many_arguments)]
pub async fn read<H: HistorySource>(
    source: &H,
    rule: &Rule,
    eval: &mut RuleEval,
    origin: Origin,
    step: Duration,
    prev: Option<Duration>,
    at: Duration,
    poll: &Poll,
    extra: Extra<'_>,
    fixed_baseline: Option<&Poll>,
) -> Reading {
    if eval.next_due().is_some_and(|c| c <= at) && !matches!(poll, Poll::Failed) {
        // (Boxed, as `onset`'s range queries are: asked only when `for` is due.)
        match Box::pin(confirm_steps(source, rule, eval, origin, at, step)).await {
            Ok(steps) => {
                for (labels, healthy) in eval.confirm(at, &steps, fixed_baseline) {
                    tracing::info!(event = "pending_restarted", rule = %rule.name,
                        labels = %serde_json::to_string(&labels).unwrap_or_default(),
                        healthy_at = origin.ms(healthy),
                        "the breach did not hold at one step of its pending span; `for` starts again");
                }
            }
            Err(e) => {
                tracing::warn!(rule = %rule.name, error = %e, "could not read the steps of the pending span; the poll alone decides");
            }
        }
    }
    let mut reading = eval.read(at, poll, extra);
    let began = onset(source, rule, eval, origin, prev, at, step, fixed_baseline).await;
    if !began.is_empty() {
        reading.transitions.extend(began);
        reading.state = RuleState::of(eval, at, poll);
    }
    reading
}

/// The rule's query and its judges' at the single instant `at` (a replay's confirming
/// poll, from history).
pub async fn instant<H: HistorySource>(
    source: &H,
    rule: &Rule,
    origin: Origin,
    at: Duration,
) -> Result<StepPoll, QueryError> {
    let ms = origin.ms(at);
    let mut steps = fetch_steps(source, rule, origin, ms, ms, 1).await?;
    Ok(steps.pop().unwrap_or(StepPoll {
        at,
        poll: Poll::Samples(Vec::new()),
        guard: None,
        baseline: None,
    }))
}

/// Whether a rule's breaches before the watch are read (`pre_existing`): a rule with
/// `for` counted in the data (not `breaches`, not `compare`), whose queries do not
/// read the watch's clock (which has no meaning before the watch).
pub fn reads_before(rule: &Rule) -> bool {
    let j = &rule.judging;
    j.breaches.is_none() && j.compare.is_none() && !uses_clock(rule)
}

/// The series breaching through the `for` before `start_ms` (`core::eval::read_before`):
/// the rule's queries over `[start − for, start]` on the grid of `step` (one range
/// query each), judged with `params` and a `before:` baseline (`fixed`). Returns the
/// reading and the window read.
pub async fn before_start<H: HistorySource>(
    source: &H,
    rule: &Rule,
    params: &crate::core::eval::Params,
    start_ms: i64,
    step: Duration,
    fixed: Option<&Poll>,
) -> Result<(crate::core::eval::Before, Duration), QueryError> {
    let step = step.as_millis().max(1) as i64;
    let from = (start_ms - rule.for_.as_millis() as i64).div_euclid(step) * step;
    let steps = fetch_steps(source, rule, Origin(from), from, start_ms, step).await?;
    Ok((
        crate::core::eval::read_before(params, &steps, fixed),
        Duration::from_millis((start_ms - from).max(0) as u64),
    ))
}

/// Replays one rule over `[from, to]` (Unix ms) as a watch polling at `poll_step`
/// would have judged it: each grid poll (from `series`, the window's history) read
/// through [`read`], and the confirming poll of each pending breach made at the
/// instant its `for` elapsed, from history (`instant`), exactly as the watch makes it.
#[allow(clippy::too_many_arguments)]
pub async fn replay<H: HistorySource>(
    source: &H,
    rule: &Rule,
    params: crate::core::eval::Params,
    from: i64,
    to: i64,
    poll_step: i64,
    data_step: Duration,
    series: &[RangeSeries],
    judges: &crate::core::history::JudgeHistory,
) -> crate::core::history::RuleHistory {
    let mut r = crate::core::history::Replaying::new(params, from, to, poll_step, series, judges);
    let origin = Origin(from);
    let fixed = r.fixed_baseline().cloned();
    // A breach already there when the window began gets what the rule's
    // `pre_existing` mode says, as in a watch begun then (read only for a mode that
    // changes anything; a failed reading judges every breach as any, as a watch does).
    if params.judge.pre_existing != crate::core::eval::PreExisting::Judge && reads_before(rule) {
        match before_start(source, rule, &params, from, data_step, fixed.as_ref()).await {
            Ok((before, _)) => r.eval.excuse(before),
            Err(e) => {
                tracing::warn!(rule = %rule.name, error = %e, "could not read whether this rule was already breaching before the window; every breach of it is judged as any");
            }
        }
    }
    let mut prev = None;
    while let Some(at) = r.next_at() {
        // Confirmations due before this poll, each at its own instant.
        let mut last = None;
        while let Some(c) = r.eval.next_due().filter(|c| *c < at && Some(*c) != last) {
            last = Some(c);
            let Ok(s) = instant(source, rule, origin, c).await else {
                break;
            };
            let extra = Extra {
                guard: s.guard.as_ref(),
                stable: None,
                baseline: s.baseline.as_ref().or(fixed.as_ref()),
            };
            let reading = read(
                source,
                rule,
                &mut r.eval,
                origin,
                data_step,
                prev,
                c,
                &s.poll,
                extra,
                fixed.as_ref(),
            )
            .await;
            prev = Some(c);
            r.record(c, reading);
        }
        let (at, poll, guard, stable, baseline) = r.grid_poll();
        let extra = Extra {
            guard: guard.as_ref(),
            stable: stable.as_ref(),
            baseline: baseline.as_ref().or(fixed.as_ref()),
        };
        let reading = read(
            source,
            rule,
            &mut r.eval,
            origin,
            data_step,
            prev,
            at,
            &poll,
            extra,
            fixed.as_ref(),
        )
        .await;
        prev = Some(at);
        r.record(at, reading);
    }
    r.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::rules::{load_str, LoadOptions};

    fn rule(query: &str) -> Rule {
        let text = format!("watch:\n  duration: 2h\n  interval: 15s\nrollback:\n  command: [\"undo\"]\nrules:\n  - name: r\n    query: '{query}'\n    above: 1\n    for: 1h\n");
        load_str("s.yaml", &text, &LoadOptions::default())
            .unwrap()
            .0
            .rules
            .remove(0)
    }

    /// Reading a poll is in every poll's future: its range queries, asked only when
    /// a breach begins or its `for` is due, are boxed, so the future stays small
    /// whatever the client's request costs (issue 21: it was 3.3 KB, inside an 8 KB
    /// future allocated and copied at every poll).
    #[test]
    fn reading_a_poll_is_a_small_future() {
        use crate::io::prom::{PromClient, PromConfig};
        let cfg = PromConfig {
            url: "http://127.0.0.1:9".into(),
            timeout: Duration::from_secs(1),
            ..Default::default()
        };
        let client = PromClient::new(&cfg).unwrap();
        let r = rule("x");
        let mut eval = RuleEval::new(crate::run::interner::params_over(
            &r,
            Duration::from_secs(7200),
        ));
        let poll = Poll::Samples(Vec::new());
        let reading = read(
            &client,
            &r,
            &mut eval,
            Origin(0),
            Duration::from_secs(15),
            Some(Duration::ZERO),
            Duration::from_secs(15),
            &poll,
            Extra::default(),
            None,
        );
        let size = std::mem::size_of_val(&reading);
        assert!(size <= 1024, "reading a poll is a future of {size} bytes");
    }

    #[test]
    fn a_rule_with_the_clock_looks_at_most_clock_steps_per_read() {
        let fixed = rule("increase(x[5m])");
        let clock = rule("increase(x[${watch.elapsed}])");
        // (span ms, step ms, the step of a fixed query, of one with the clock)
        let cases: &[(i64, i64, i64, i64)] = &[
            (15_000, 15_000, 15_000, 15_000),
            (885_000, 15_000, 15_000, 15_000),
            // 61 steps: two steps' worth each.
            (900_000, 15_000, 15_000, 30_000),
            // `for: 1h` at 15s: 241 steps, looked at every minute and 15s.
            (3_600_000, 15_000, 15_000, 75_000),
            (0, 1_000, 1_000, 1_000),
        ];
        for &(span, step, want_fixed, want_clock) in cases {
            assert_eq!(look_step(&fixed, span, step), want_fixed, "{span} {step}");
            assert_eq!(look_step(&clock, span, step), want_clock, "{span} {step}");
            assert!(span / look_step(&clock, span, step) < CLOCK_STEPS);
        }
    }
}
