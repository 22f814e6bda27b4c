//! The decision loop (`run_from`): runs the poller beside it, and owns the watch until it
//! ends: signals first, then the end, then blindness, then each poll in turn.

use super::act;
use super::beside::beside;
use super::journal::NoJournal;
use super::manual::next_order;
use super::outcome::{Outcome, Signal};
use super::poller::{aligned_first, poll_rules, LazyTimer, Polled};
use super::start::{fmt_d, unix_ms, Judged, PollDone, Start, WatchOptions};
use super::state::{Blind, RuleLoop, Watch};
use crate::core::eval::{Poll, RuleEval};
use crate::core::events::{now_ms, Event, Sinks};
use crate::core::rules::WatchSpec;
use crate::io::action::ActionRunner;
use crate::io::prom::{HistorySource, MetricsSource};
use crate::run::channel;
use std::collections::BTreeSet;
use std::pin::pin;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::time::{sleep_until, Instant};
use tracing::error;

/// Runs a watch to its end from a given `Start` (see there; the default for a new
/// watch, what `serve` restores to resume one). `signals` delivers SIGINT/SIGTERM (or
/// a test's stand-in); every decision goes to `sinks`.
pub async fn run_from<S: MetricsSource + HistorySource, R: ActionRunner>(
    spec: &WatchSpec,
    source: Arc<S>,
    runner: &R,
    opts: &WatchOptions,
    from: Box<Start>,
    signals: &mut channel::Receiver<Signal>,
    sinks: &mut Sinks,
) -> Outcome {
    // Taken apart at once, and every part consumed before the first await: the box
    // is freed here and no part is kept in the watch's future (issue 21: 504 bytes a
    // watch for its whole life otherwise).
    let Start {
        journal,
        judged,
        pause_failed,
        elapsed: from_elapsed,
        origin,
        clock,
        evals,
        paused_by,
        backlog,
        aligned,
        baselines,
        pre_existing,
        ahead,
        scrape,
        control,
        succeeds,
        orders,
    } = {
        let boxed = from;
        *boxed
    };
    let start = Instant::now();
    let now_wall = match &clock {
        Some(c) => c.at(start),
        None => SystemTime::now(),
    };
    let elapsed = match origin {
        Some(origin) => now_wall.duration_since(origin).unwrap_or_default(),
        None => from_elapsed,
    };
    // The watch's own origin: when it was created, `elapsed` ago.
    let start_wall = now_wall.checked_sub(elapsed).unwrap_or(now_wall);
    let max_blind = spec.max_blind.min(opts.duration);
    // (Boxed: a channel's slots are allocated 32 at a time, and a watch holds one.)
    let (tx, mut rx) = channel::channel::<Box<PollDone>>(64);
    let polled = spec
        .rules
        .iter()
        .map(|rule| Polled {
            query: &rule.query,
            extras: rule.extra_queries(),
            interval: rule.interval,
            first: match aligned {
                Some(phase) => aligned_first(
                    start,
                    now_wall,
                    rule.interval,
                    phase(&rule.query, rule.interval),
                ),
                None => start,
            },
        })
        .collect();
    // The poller runs beside the loop in the watch's own task (`select` below), not
    // in a task of its own (issue 21: 800 bytes a watch, and a second task woken at
    // every poll). It still asks while the loop waits on a command.
    let poller = poll_rules(polled, source.clone(), tx, start, start_wall, elapsed);
    sinks.emit(now_ms(), &act::watch_started(spec, opts));
    if let Some((watch, outcome)) = succeeds {
        sinks.emit(now_ms(), &Event::Succeeds { watch, outcome });
    }
    let judged = match judged {
        Some(j) if j.len() == spec.rules.len() => j,
        _ => vec![Judged::default(); spec.rules.len()],
    };
    let lag = spec.lag + ahead;
    let per_rule = spec
        .rules
        .iter()
        .zip(&judged)
        .map(|(r, j)| RuleLoop {
            step: spec.step_for(r, scrape),
            last_at: None,
            tried: None,
            judged: *j,
        })
        .collect();
    let mut w = Watch {
        spec,
        source: source.clone(),
        start,
        elapsed,
        origin: crate::run::steps::Origin(unix_ms(start_wall)),
        per_rule,
        lag,
        clock,
        runner,
        opts,
        signals,
        sinks,
        evals: match evals {
            Some(evals) if evals.len() == spec.rules.len() => evals,
            _ => spec
                .rules
                .iter()
                .map(|r| RuleEval::new(crate::run::interner::params_over(r, opts.duration)))
                .collect(),
        },
        paused_by,
        pause_failed,
        journal: journal.unwrap_or_else(|| Box::new(NoJournal)),
        deferred_signal: None,
        before: spec
            .rules
            .iter()
            .zip(baselines.into_iter().chain(std::iter::repeat(None)))
            .map(|(r, b)| match r.baseline {
                Some(crate::core::rules::BaselineSource::Before(_)) => {
                    Some(Poll::Samples(b.unwrap_or_default()))
                }
                _ => None,
            })
            .collect(),
        warned_no_baseline: BTreeSet::new(),
        warned_guard: BTreeSet::new(),
        silences: Vec::new(),
        control,
        orders,
        answer: None,
        owed: BTreeSet::new(),
    };
    // (Read into `w`: not kept in the future for the watch's life.)
    drop(judged);
    // Breaches already there before the watch: said, and given to each rule's mode.
    w.carry_over(pre_existing);
    // `max_blind` counts on the watch's clock from the last successful query, or from
    // this start (a resumed watch gets a full `max_blind` from its resumption, never
    // the time it was down).
    let mut blind = Blind {
        start,
        elapsed,
        last_ok: elapsed,
        max_blind,
    };
    let body = async {
        // (Boxed: what judging the backlog holds is not kept in the loop's future
        // for the watch's life.)
        let mut backlog_outcome = Box::pin(w.handle_backlog(backlog)).await;
        // One timer for the end and for blindness, moved only when the earlier of the
        // two comes sooner than it is set for (a person ended the watch early) or
        // after it rang: a new pair each turn cost four trips through tokio's timer
        // lock a poll (BENCHMARKS.md, issue 21). Set for a time that has since moved
        // later (a good poll pushed blindness back), it rings early, and is set again.
        let mut alarm = pin!(sleep_until(w.end_instant().min(blind.deadline())));
        // A pending breach's confirming poll and a hold's end each keep a timer too,
        // made the first time it is needed and moved only when its time changes: one
        // made at every turn (the branch disabled or not) was built, moved and
        // dropped at every poll. A timer set for a time already past rings at once,
        // as a new one would.
        let mut confirm_timer = LazyTimer::default();
        let mut hold_timer = LazyTimer::default();
        'watch: loop {
            if let Some(outcome) = backlog_outcome.take() {
                break outcome;
            }
            if let Some(sig) = w.deferred_signal {
                break Outcome::Interrupted(sig);
            }
            let confirm = w.confirm_deadline();
            // (Read again at every turn: a person may extend the watch or hold it.)
            let end = w.end_instant();
            let hold = w.hold_deadline();
            let due = end.min(blind.deadline());
            if alarm.is_elapsed() || due < alarm.deadline() {
                alarm.as_mut().reset(due);
            }
            let armed = alarm.deadline();
            let confirm = confirm.filter(|&c| c < end);
            confirm_timer.aim(confirm);
            let hold = hold.filter(|&h| h < end);
            hold_timer.aim(hold);
            tokio::select! {
                biased;
                Some(sig) = w.signals.recv() => {
                    w.sinks.emit(now_ms(), &Event::Signal { signal: format!("{sig:?}"), during_action: false });
                    break Outcome::Interrupted(sig);
                }
                // The end before blindness, as when each had its own timer.
                _ = &mut alarm => {
                    if armed >= end {
                        // Polls taken before the end that queued while a command ran are
                        // judged first: a breach they show still acts.
                        if let Some(o) = Box::pin(w.drain(&mut rx, &mut blind, Some(w.duration()))).await {
                            break 'watch o;
                        }
                        if let Some(sig) = w.deferred_signal {
                            break Outcome::Interrupted(sig);
                        }
                        // A hold that lasts to the end ends there: what still fires acts,
                        // never left behind a "healthy" ending.
                        if w.control.hold.is_some() {
                            if let Some(o) = Box::pin(w.hold_over(None)).await {
                                break 'watch o;
                            }
                        }
                        break w.finish();
                    }
                    if armed < blind.deadline() {
                        // Rang for a time that has moved later: set again at the next turn.
                        continue;
                    }
                    // Good polls may be waiting in the queue (a slow pause command held the
                    // loop): they count before the watch is called blind.
                    if let Some(o) = Box::pin(w.drain(&mut rx, &mut blind, Some(w.duration()))).await {
                        break 'watch o;
                    }
                    if w.deferred_signal.is_some() {
                        continue;
                    }
                    if Instant::now() < blind.deadline() {
                        continue;
                    }
                    let reason = format!(
                        "no query has succeeded for {} (max_blind); the release cannot be judged",
                        fmt_d(max_blind)
                    );
                    error!(event = "blind", "{reason}");
                    break Outcome::Inconclusive { reason };
                }
                // A pending breach's `for` has elapsed in the data: its confirming poll,
                // now rather than at the rule's next tick (`confirm.rs`). Never past the
                // end: the end branch comes first.
                _ = confirm_timer.ring(), if confirm.is_some() => {
                    if let Some(outcome) = Box::pin(w.confirm_now()).await {
                        break outcome;
                    }
                }
                // A person's order (`manual.rs`): before the polls queued behind it.
                Some(msg) = next_order(&mut w.orders) => {
                    if let Some(outcome) = Box::pin(w.order(msg)).await {
                        break outcome;
                    }
                }
                // A hold ran out: what still fires acts now.
                _ = hold_timer.ring(), if hold.is_some() => {
                    if let Some(outcome) = Box::pin(w.hold_over(None)).await {
                        break outcome;
                    }
                }
                Some(done) = rx.recv() => {
                    blind.saw(&done);
                    if let Some(outcome) = Box::pin(w.handle(*done)).await {
                        break outcome;
                    }
                }
            }
        }
    };
    // The loop runs to its end with the poller polled beside it, each only when woken
    // (`beside.rs`), the loop first (each pinned here once: an async fn taking them
    // would hold them twice); the poller stops with the loop (dropped here), or ends
    // first when no rule is left.
    let outcome = beside(pin!(body), pin!(poller)).await;
    let warnings = w.warnings();
    // Silences already made are told before the ending; one still being made (a slow
    // Alertmanager) never holds the ending back: it is awaited, bounded, after it.
    Box::pin(w.report_silences(false)).await;
    w.sinks
        .emit(now_ms(), &outcome.finished_event_with(&warnings));
    Box::pin(w.report_silences(true)).await;
    outcome
}
