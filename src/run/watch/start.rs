//! What a watch is given and says about itself: its options, where it starts from
//! (fresh, or resumed by `serve`), the clock it is timed on, one poll's result, and
//! how a rule is described in events.

use super::journal::Journal;
use crate::core::control::{Control, ControlError, ControlState};
use crate::core::eval::{Labels, RuleEval};
use crate::core::events::RuleInfo;
use crate::core::rules::Rule;
use crate::core::series::Sample;
use crate::io::action::ActionStatus;
use crate::io::prom::{QueryError, QueryResult};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What a rule's polls have shown so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Judged {
    /// Its last query succeeded.
    pub last_ok: bool,
    /// One of its queries succeeded.
    pub ever_ok: bool,
    /// One of its queries returned a usable sample.
    pub ever_data: bool,
}

/// Options from the command line.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// How long the watch lasts (the file's `watch.duration` unless overridden).
    pub duration: Duration,
    /// Decide and log everything, run no command.
    pub dry_run: bool,
    /// The Prometheus base URL as it may be shown (no credentials): for reports and
    /// links to each query in Prometheus's graph UI.
    pub prometheus: String,
}

/// One poll's result, stamped with its scheduled time.
#[derive(Debug, Clone)]
pub struct PollDone {
    /// Index of the rule in `WatchSpec::rules`.
    pub rule: usize,
    /// When the query was issued, from the watch's start.
    pub at: Duration,
    pub wall: SystemTime,
    pub result: Result<QueryResult, QueryError>,
    /// The results of the rule's extra queries at the same instant, in the order of
    /// `Rule::extra_queries` (stable side, guard, offset baseline).
    pub extra: Vec<Result<QueryResult, QueryError>>,
}

/// Where a watch starts from. `Default` is a fresh watch, which is all `watch` uses;
/// `serve` resumes a watch it persisted, after a restart, with the rest.
///
/// The evaluator's clock is "time since the watch was created", so restored series
/// keep their `since` and `for` counts across the restart exactly as if the agent had
/// never stopped; what happened while it was down is given as `backlog` (polls
/// reconstructed from Prometheus history), never assumed.
#[derive(Default)]
pub struct Start {
    /// Where actions are claimed before they run (`serve`'s store); None: `NoJournal`.
    pub journal: Option<Box<dyn Journal>>,
    /// What each rule's polls before this start showed (`serve` resumes it), so a rule
    /// judged before a restart is not called "never judged" at the end.
    pub judged: Option<Vec<Judged>>,
    /// The rule whose pause command failed (or ended unknown) before this start: no
    /// pause is tried again, rollback rules still act, and the watch ends
    /// `pause_failed` unless a rollback decides it.
    pub pause_failed: Option<(String, ActionStatus)>,
    /// How much of the watch had elapsed before this start (0 for a fresh watch).
    /// Ignored when `origin` is given (then it is measured on `clock`).
    pub elapsed: Duration,
    /// When the watch was created, on the clock it is timed on (`serve`: the store's,
    /// which every agent sharing it agrees on). With it, the watch's elapsed time and
    /// the moment each poll asks Prometheus about are read on `clock`, never on this
    /// machine's wall clock, so an agent whose clock is off neither ends a watch early
    /// nor judges the wrong moments.
    pub origin: Option<SystemTime>,
    /// A reading of the clock the watch is timed on (None: this machine's wall clock).
    pub clock: Option<ClockAnchor>,
    /// Restored evaluators, one per rule in order; None for fresh ones.
    pub evals: Option<Vec<RuleEval>>,
    /// The rule whose pause command already ran.
    pub paused_by: Option<String>,
    /// Polls the watch missed, in time order, handled before any live poll (and
    /// before the end of the watch is considered, so a breach seen there still acts).
    pub backlog: Vec<PollDone>,
    /// Align each rule's polls to multiples of its interval in Unix time, shifted by
    /// `phase(query, interval)`, instead of starting them at the watch's start: the
    /// same query in many watches is then due at the same instant and can be shared,
    /// while different queries spread over the interval.
    pub aligned: Option<fn(&str, Duration) -> Duration>,
    /// The `baseline: before:` samples of each rule (indexed like `WatchSpec::rules`),
    /// taken once before the watch started (`io::prom::history::mean_before`); a rule
    /// with such a baseline but no entry here judges every series by `no_baseline`.
    pub baselines: Vec<Option<Vec<Sample>>>,
    /// Each rule's series already breaching through its `for` before the watch began
    /// (indexed like `WatchSpec::rules`; None: not read), read once
    /// (`run::preflight::pre_existing`); a resumed watch gives those still carried
    /// over. Reported at the start, and judged by each rule's `pre_existing` mode.
    pub pre_existing: Vec<Option<crate::core::eval::Before>>,
    /// How far ahead of Prometheus's clock the watch's clock may be (measured at the
    /// start): the confirming poll of a pending breach waits that much longer, so it
    /// never asks about an instant Prometheus has not reached.
    pub ahead: Duration,
    /// The data's resolution when the rule file does not set `watch.step` (what
    /// Prometheus says its scrape interval is; None: `defaults::STEP`).
    pub scrape: Option<Duration>,
    /// What people's orders before this start add up to (`ControlState::fold` of the
    /// stored record): a hold and extensions survive a restart.
    pub control: ControlState,
    /// The watch this one superseded (`watch.key`), and how it ended: told in the
    /// events right after the start.
    pub succeeds: Option<(String, String)>,
    /// Where people's orders arrive while the watch runs (None: nobody can give any).
    pub orders: Option<crate::run::channel::Receiver<OrderMsg>>,
}

/// A person's order to a running watch, and where its answer goes: `Ok` with what it
/// did (a command's order is answered when its command starts), or why it was
/// refused (nothing changed).
#[derive(Debug)]
pub struct OrderMsg {
    /// (Boxed: each watch's channel allocates 32 slots at a time.)
    pub control: Box<Control>,
    pub reply: tokio::sync::oneshot::Sender<Result<String, ControlError>>,
}

/// One reading of a clock other than this machine's wall clock (the store's): at the
/// monotonic instant `mono` it read `wall`. Time read from it afterwards advances on
/// the monotonic clock, so a step of this machine's wall clock never moves it.
#[derive(Debug, Clone, Copy)]
pub struct ClockAnchor {
    pub wall: SystemTime,
    pub mono: tokio::time::Instant,
}

impl ClockAnchor {
    /// The clock's time at the monotonic instant `at`.
    pub fn at(&self, at: tokio::time::Instant) -> SystemTime {
        match at.checked_duration_since(self.mono) {
            Some(d) => self.wall + d,
            None => self.wall - self.mono.duration_since(at),
        }
    }

    /// The clock's time now.
    pub fn now(&self) -> SystemTime {
        self.at(tokio::time::Instant::now())
    }

    /// The clock's time now, Unix ms.
    pub fn now_ms(&self) -> i64 {
        unix_ms(self.now())
    }
}

pub(super) fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as i64
}

pub(super) fn labels_json(labels: &Labels) -> String {
    serde_json::to_string(labels).unwrap_or_default()
}

pub(super) fn fmt_d(d: Duration) -> String {
    humantime::format_duration(Duration::from_millis(d.as_millis() as u64)).to_string()
}

/// How a rule is described in reports, events and notifications.
pub fn rule_info(rule: &Rule, prometheus: &str) -> RuleInfo {
    RuleInfo {
        name: rule.name.clone(),
        description: rule.description.clone(),
        query: rule.query.to_string(),
        above: rule.threshold.above,
        below: rule.threshold.below,
        worse: crate::core::eval::Worse::of(&rule.params()),
        threshold: rule.condition(),
        for_s: rule.for_.as_secs_f64(),
        interval_s: rule.interval.as_secs_f64(),
        no_data: rule.no_data.as_str(),
        action: rule.action.as_str(),
        graph_url: (!prometheus.is_empty())
            .then(|| crate::io::prom::graph_link(prometheus, &rule.query.sample())),
    }
}
