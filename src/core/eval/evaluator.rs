//! The evaluator itself: `RuleEval`, its parameters and the transitions it returns.
//!
//! `mod.rs` says what the semantics are; this file holds them, so that the judges
//! (`judge.rs`) and the reading of a poll (`reading.rs`) take what they need from a
//! sibling rather than from the module that re-exports them.
//!
//! Why about 660 lines: `observe_with` and the per-series step it drives are one state
//! machine (pending, firing, resolved, `no_data`, `breaches` windows); the judges'
//! arithmetic is already in `judge.rs` and what a poll means in `reading.rs`.

use super::judge::{self, CompareParams, Evidence, Judging};
use crate::core::series::{label_map, Labels, Poll, Sample};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The condition a value must meet to count as breaching.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    /// Breached when the value is strictly above this.
    pub above: Option<f64>,
    /// Breached when the value is strictly below this.
    pub below: Option<f64>,
    /// `breach_when: present`: every returned series breaches, whatever its value
    /// (`above`/`below` are then `None`).
    pub present: bool,
}

impl Threshold {
    /// Breached when the value is above `above` or below `below` (either may be absent).
    pub fn band(above: Option<f64>, below: Option<f64>) -> Self {
        Threshold {
            above,
            below,
            present: false,
        }
    }

    /// Breached by any series the query returns (`breach_when: present`).
    pub fn present() -> Self {
        Threshold {
            above: None,
            below: None,
            present: true,
        }
    }

    pub fn breached(&self, value: f64) -> bool {
        self.present
            || self.above.is_some_and(|a| value > a)
            || self.below.is_some_and(|b| value < b)
    }

    /// How far past the threshold `value` is (positive when breached, the larger the
    /// worse): `value - above`, `below - value`, or for a band the larger of the two.
    /// Used to pick one value among duplicates of a label set.
    pub fn severity(&self, value: f64) -> f64 {
        let over = self.above.map(|a| value - a);
        let under = self.below.map(|b| b - value);
        match (over, under) {
            (Some(o), Some(u)) => o.max(u),
            (Some(d), None) | (None, Some(d)) => d,
            (None, None) => value,
        }
    }

    /// Whether `a` is more in breach than `b` (ties: the larger value), a total order
    /// on non-NaN values so the pick among duplicates is the same in any order.
    fn worse(&self, a: f64, b: f64) -> bool {
        match self.severity(a).total_cmp(&self.severity(b)) {
            std::cmp::Ordering::Equal => a.total_cmp(&b).is_gt(),
            o => o.is_gt(),
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.present {
            return write!(f, "present");
        }
        match (self.above, self.below) {
            (Some(a), None) => write!(f, "> {a}"),
            (None, Some(b)) => write!(f, "< {b}"),
            (Some(a), Some(b)) => write!(f, "< {b} or > {a}"),
            (None, None) => write!(f, "never"),
        }
    }
}

/// What an absent series (or an empty result) means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoData {
    Ok,
    Breach,
    Hold,
}

impl NoData {
    pub fn as_str(&self) -> &'static str {
        match self {
            NoData::Ok => "ok",
            NoData::Breach => "breach",
            NoData::Hold => "hold",
        }
    }
}

/// The parameters of one rule that the evaluator needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    pub threshold: Threshold,
    pub for_: Duration,
    pub no_data: NoData,
    /// The judges beyond the threshold (all off by default).
    pub judge: Judging,
}

/// A series' current phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Pending,
    Firing,
}

/// What the evaluator keeps for a series that is pending or firing.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesState {
    pub phase: Phase,
    /// Time of the first breaching poll of this run of breaches.
    pub since: Duration,
    /// The last value seen (None if the series was absent and counted by `no_data`).
    pub last_value: Option<f64>,
    /// `breaches: M of N`: the last N judged polls, oldest first (true = breach). A
    /// series restored without its stored window (`windows`) starts from one breach.
    pub window: VecDeque<bool>,
}

/// A `breaches` window as text, oldest poll first: `1` a breach, `0` a judged poll
/// that did not breach (at most N characters: compact enough to store every poll).
pub fn window_text(window: &VecDeque<bool>) -> String {
    window.iter().map(|b| if *b { '1' } else { '0' }).collect()
}

/// The window `window_text` wrote, keeping its last `n` polls; None if it is not one.
pub fn parse_window(text: &str, n: u32) -> Option<VecDeque<bool>> {
    let mut w = text
        .chars()
        .map(|c| match c {
            '1' => Some(true),
            '0' => Some(false),
            _ => None,
        })
        .collect::<Option<VecDeque<bool>>>()?;
    while w.len() > n as usize {
        w.pop_front();
    }
    Some(w)
}

/// A change worth logging or acting on, with the evidence it was decided on.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// The series breached for the first time in a run.
    Pending {
        labels: Labels,
        value: Option<f64>,
        evidence: Evidence,
    },
    /// The series has breached at every poll for `for` (or M of N): act.
    Fired {
        labels: Labels,
        value: Option<f64>,
        breached_for: Duration,
        evidence: Evidence,
    },
    /// The series stopped breaching.
    Resolved {
        labels: Labels,
        from: Phase,
        value: Option<f64>,
        breached_for: Duration,
        evidence: Evidence,
    },
}

impl Transition {
    /// The series it is about.
    pub fn labels(&self) -> &Labels {
        match self {
            Transition::Pending { labels, .. }
            | Transition::Fired { labels, .. }
            | Transition::Resolved { labels, .. } => labels,
        }
    }
}

/// The extra inputs of one poll, taken at the same instant as the rule's query: the
/// guard (`min_traffic`), the baseline (`offset:` this poll's, `before:` the stored
/// one) and the stable side (`compare`, whose canary side is the rule's own poll).
/// A judge the rule uses whose input is missing makes the poll count as failed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extra<'a> {
    pub guard: Option<&'a Poll>,
    pub baseline: Option<&'a Poll>,
    pub stable: Option<&'a Poll>,
}

/// What the last poll showed besides its transitions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PollNotes {
    /// The poll was judged (not failed, nor missing an input).
    pub judged: bool,
    /// Series judged at this poll.
    pub series_judged: usize,
    /// Series insufficient at this poll (for `compare`: 1 when the pools are too small).
    pub insufficient: usize,
    /// The evidence of each judged series at this poll that has any (a series judged
    /// by its threshold alone has none: nothing is kept for it, so a poll of 10,000
    /// healthy series copies no label set).
    pub evidence: BTreeMap<Labels, Evidence>,
    /// The poll returned at least one usable (not NaN) value: what a rule-level
    /// series (`{}`, "any data") reads (`onset`).
    pub any_value: bool,
    /// What most polls of most rules have none of, boxed once a poll has some: every
    /// rule of every watch keeps its last notes, and these took 112 of their 160
    /// bytes (issue 21). Read through the methods below.
    rare: Option<Box<RareNotes>>,
}

/// The notes of a poll that most polls have none of (`PollNotes::rare`).
#[derive(Debug, Clone, Default, PartialEq)]
struct RareNotes {
    no_baseline: Vec<Labels>,
    skipped: Vec<Labels>,
    compare_value: Option<f64>,
    guard_refused: Option<String>,
    pre_existing_over: Vec<(Labels, Option<f64>)>,
}

impl PollNotes {
    fn note(&mut self, labels: &Labels, evidence: Evidence) {
        if !evidence.is_empty() {
            self.evidence.insert(labels.clone(), evidence);
        }
    }

    /// The rare notes, boxed now if they were not yet.
    fn rare(&mut self) -> &mut RareNotes {
        self.rare.get_or_insert_with(Box::default)
    }

    /// Series that had no usable baseline, in label order.
    pub fn no_baseline(&self) -> &[Labels] {
        self.rare.as_ref().map_or(&[], |r| &r.no_baseline)
    }

    /// Series returned but not judged at this poll (insufficient traffic, a held
    /// baseline): usually none.
    pub fn skipped(&self) -> &[Labels] {
        self.rare.as_ref().map_or(&[], |r| &r.skipped)
    }

    /// The value a `compare` rule judged (the canary pool's median).
    pub fn compare_value(&self) -> Option<f64> {
        self.rare.as_ref().and_then(|r| r.compare_value)
    }

    /// Why the guard could not be matched with the rule's series, when the poll was
    /// refused for it (`judge::guard_problem`): a failed poll, to be logged.
    pub fn guard_refused(&self) -> Option<&str> {
        self.rare.as_ref().and_then(|r| r.guard_refused.as_deref())
    }

    /// Breaches carried over from before the watch that ended at this poll (the
    /// series, and its value then): from now on they are judged as any
    /// (`pre_existing.rs`).
    pub fn pre_existing_over(&self) -> &[(Labels, Option<f64>)] {
        self.rare.as_ref().map_or(&[], |r| &r.pre_existing_over)
    }
}

/// A `compare` rule's pools: (time, value) of the canary and stable sides.
#[derive(Debug, Clone, Default)]
struct Pools {
    canary: VecDeque<(Duration, f64)>,
    stable: VecDeque<(Duration, f64)>,
}

/// The evaluator of one rule.
#[derive(Debug, Clone)]
pub struct RuleEval {
    /// Shared by the watches that judge with equal parameters
    /// (`run::interner`): 472 bytes a rule otherwise.
    params: Arc<Params>,
    series: BTreeMap<Labels, SeriesState>,
    /// Series × polls judged, and insufficient, since the start.
    judged: u64,
    insufficient: u64,
    notes: PollNotes,
    /// `compare`: (time, value) pools of the canary and stable sides (boxed, and
    /// only for a `compare` rule once it has polled: 64 bytes a rule otherwise,
    /// issue 21).
    pools: Option<Box<Pools>>,
    /// What only some rules keep, boxed once one has any (issue 21: 48 bytes a rule
    /// of every watch otherwise).
    kept: Option<Box<Kept>>,
}

/// What a rule's evaluator keeps for only some rules.
#[derive(Debug, Clone, Default)]
struct Kept {
    /// `pre_existing: ignore | improve`: the series whose breach began before the
    /// watch and still runs, with their reference (`pre_existing.rs`).
    excused: super::pre_existing::Before,
    /// `slo:`: the burn evidence of each series at the last poll (`slo::view`).
    burn: BTreeMap<Labels, super::slo::SloEvidence>,
}

/// The breaches carried over of a rule that has none.
static NO_EXCUSED: super::pre_existing::Before = BTreeMap::new();

impl RuleEval {
    pub fn new(params: impl Into<Arc<Params>>) -> Self {
        Self::restore(params, BTreeMap::new())
    }

    /// An evaluator that continues from saved series state (what `serve` persisted
    /// before a restart). `since` must be on the same clock as the polls that follow.
    pub fn restore(params: impl Into<Arc<Params>>, series: BTreeMap<Labels, SeriesState>) -> Self {
        RuleEval {
            params: params.into(),
            series,
            judged: 0,
            insufficient: 0,
            notes: PollNotes::default(),
            pools: None,
            kept: None,
        }
    }

    /// Carries over the breaches that began before the watch (`read_before`), for the
    /// rule's `pre_existing` mode to apply while each lasts; nothing for `judge`
    /// (every breach judged as any). A restart gives the ones still running.
    pub fn excuse(&mut self, before: super::pre_existing::Before) {
        if self.params.judge.pre_existing != super::pre_existing::PreExisting::Judge
            && (!before.is_empty() || self.kept.is_some())
        {
            self.kept.get_or_insert_with(Box::default).excused = before;
        }
    }

    /// The breaches carried over from before the watch still running, with their
    /// reference values.
    pub fn excused(&self) -> &super::pre_existing::Before {
        self.kept.as_ref().map_or(&NO_EXCUSED, |k| &k.excused)
    }

    /// A series' breach as the rule's `pre_existing` mode has it: `raw` as judged,
    /// unless the series carries a breach over from before the watch. Then that breach
    /// ends at the first poll that does not breach (noted); while it lasts, `ignore`
    /// never breaches, and `improve` breaches only where the value got worse than
    /// before the deploy by the margin.
    fn carried_over(
        &mut self,
        labels: &Labels,
        value: Option<f64>,
        raw: bool,
        evidence: &mut Evidence,
    ) -> bool {
        use super::pre_existing::{worse_by, worse_for, PreExisting};
        let Some(reference) = self.excused().get(labels).copied() else {
            return raw;
        };
        if !raw {
            if let Some(k) = &mut self.kept {
                k.excused.remove(labels);
            }
            self.notes
                .rare()
                .pre_existing_over
                .push((labels.clone(), value));
            return false;
        }
        evidence.before_deploy = (!reference.is_nan()).then_some(reference);
        match self.params.judge.pre_existing {
            PreExisting::Judge => raw,
            PreExisting::Ignore => false,
            PreExisting::Improve { margin_pct } => value.is_some_and(|v| {
                worse_by(worse_for(&self.params, reference), v, reference, margin_pct)
            }),
        }
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Series currently pending or firing.
    pub fn series(&self) -> &BTreeMap<Labels, SeriesState> {
        &self.series
    }

    /// The series state, for `onset` (a sibling that moves a breach's start).
    pub(super) fn series_mut(&mut self) -> &mut BTreeMap<Labels, SeriesState> {
        &mut self.series
    }

    /// `breaches: M of N`: each pending or firing series' window, as
    /// `window_text` writes it (what `serve` stores with a rule's last poll, so that a
    /// restart continues the count); None for a rule without `breaches`.
    pub fn windows(&self) -> Option<Vec<(Labels, String)>> {
        self.params.judge.breaches?;
        Some(
            self.series
                .iter()
                .map(|(l, s)| (l.clone(), window_text(&s.window)))
                .collect(),
        )
    }

    /// Series × polls judged so far (a series insufficient at a poll is not judged).
    pub fn judged_count(&self) -> u64 {
        self.judged
    }

    /// Series × polls that were insufficient so far.
    pub fn insufficient_count(&self) -> u64 {
        self.insufficient
    }

    /// Whether every series at every usable poll so far was insufficient: the rule was
    /// not judged at all, which makes a watch inconclusive.
    pub fn never_judged(&self) -> bool {
        self.judged == 0 && self.insufficient > 0
    }

    /// What the last `observe` showed besides its transitions.
    pub fn notes(&self) -> &PollNotes {
        &self.notes
    }

    /// Feeds one poll taken at `at` (any monotonic origin) and returns what changed.
    pub fn observe(&mut self, at: Duration, poll: &Poll) -> Vec<Transition> {
        self.observe_with(at, poll, Extra::default())
    }

    /// `observe` with the judges' extra inputs of the same instant.
    pub fn observe_with(&mut self, at: Duration, poll: &Poll, extra: Extra) -> Vec<Transition> {
        let (view, burn) = super::slo::view(self.params.judge.slo.as_ref(), poll);
        self.observe_view(at, &view, burn, extra)
    }

    /// `observe_with` of a poll already seen through `slo::view` (the poll itself for
    /// a rule without `slo`), with the burn evidence of its series.
    pub(super) fn observe_view(
        &mut self,
        at: Duration,
        poll: &Poll,
        burn: BTreeMap<Labels, super::slo::SloEvidence>,
        extra: Extra,
    ) -> Vec<Transition> {
        self.notes = PollNotes::default();
        if !burn.is_empty() || self.kept.is_some() {
            self.kept.get_or_insert_with(Box::default).burn = burn;
        }
        let judge = self.params.judge;
        if let Some(c) = judge.compare {
            return self.observe_compare(at, poll, extra.stable, c);
        }
        let samples = match poll {
            Poll::Failed => return Vec::new(),
            Poll::Samples(s) => s,
        };
        let guard = match (judge.min_traffic, extra.guard) {
            (None, _) => None,
            (Some(min), Some(Poll::Samples(g))) => Some((min, g.as_slice())),
            (Some(_), _) => return Vec::new(),
        };
        let baseline = match (judge.baseline, extra.baseline) {
            (None, _) => None,
            (Some(b), Some(Poll::Samples(s))) => Some((b, judge::baselines(s))),
            (Some(_), _) => return Vec::new(),
        };
        if let Some((_, g)) = guard {
            let series = samples
                .iter()
                .filter(|s| !s.value.is_nan())
                .map(|s| &s.labels);
            if let Some(why) = judge::guard_problem(series, g, judge.guard_on) {
                // Never a silent sum: the poll counts as failed, and says why.
                self.notes.rare().guard_refused = Some(why);
                return Vec::new();
            }
        }
        self.notes.judged = true;
        let mut out = Vec::new();
        // A hash map: a poll of 10,000 series would spend most of its time comparing
        // label sets in a tree. The order transitions come out in is restored below.
        // Each entry: the value, and whether the series is followed (pending or firing).
        let mut seen = label_map::<(f64, bool)>(samples.len());
        let threshold = self.params.threshold;
        // A present rule counts a NaN sample as a series (Prometheus fires on it).
        for s in samples
            .iter()
            .filter(|s| threshold.present || !s.value.is_nan())
        {
            // Duplicates of a label set: the one most in breach (see the module doc).
            seen.entry(&s.labels)
                .and_modify(|(v, _)| {
                    // (Only a present rule sees NaN here: a number still wins.)
                    if !s.value.is_nan() && (v.is_nan() || threshold.worse(s.value, *v)) {
                        *v = s.value;
                    }
                })
                .or_insert((s.value, false));
        }
        // The followed series, marked in one pass over them (usually few): a series
        // not marked is looked up in no tree below, and a followed one not returned
        // is absent at this poll.
        let mut absent: Vec<Labels> = Vec::new();
        for l in self.series.keys() {
            match seen.get_mut(l) {
                Some((_, followed)) => *followed = true,
                None => absent.push(l.clone()),
            }
        }
        self.notes.any_value = seen.values().any(|(v, _)| !v.is_nan());
        for (labels, &(value, followed)) in &seen {
            let mut evidence = Evidence::default();
            if let Some(b) = self.kept.as_ref().and_then(|k| k.burn.get(*labels)) {
                evidence.burn = b.burn.clone();
                evidence.budget_spent = b.budget_spent;
            }
            if let Some((min, g)) = guard {
                let t = judge::traffic(labels, g, judge.guard_on);
                evidence.traffic = t;
                // Below `min`, or no guard series at all: not judged at this poll.
                if t.is_none_or(|t| t.is_nan() || t < min) {
                    self.insufficient += 1;
                    self.notes.insufficient += 1;
                    self.notes.rare().skipped.push((*labels).clone());
                    continue;
                }
            }
            let breaching = match &baseline {
                None => threshold.breached(value),
                Some((bp, b)) => match b.get(labels).copied() {
                    Some(base) => {
                        evidence.baseline = Some(base);
                        evidence.ratio = (base != 0.0).then(|| value / base);
                        judge::baseline_breached(value, base, bp, threshold.above, threshold.below)
                    }
                    None => {
                        self.notes.rare().no_baseline.push((*labels).clone());
                        match bp.no_baseline {
                            NoData::Hold => {
                                self.judged += 1;
                                self.notes.series_judged += 1;
                                self.notes.rare().skipped.push((*labels).clone());
                                continue;
                            }
                            NoData::Ok => false,
                            NoData::Breach => true,
                        }
                    }
                },
            };
            self.judged += 1;
            self.notes.series_judged += 1;
            let value = (!value.is_nan()).then_some(value);
            let breaching = self.carried_over(labels, value, breaching, &mut evidence);
            self.step_known(at, labels, value, breaching, evidence, followed, &mut out);
        }
        // Transitions and notes in label order, whatever order the map was walked in
        // (stable: a series' own transitions keep theirs).
        out.sort_by(|a: &Transition, b: &Transition| a.labels().cmp(b.labels()));
        if let Some(r) = &mut self.notes.rare {
            r.no_baseline.sort();
        }
        // A breach carried over from before the watch whose series is gone: over
        // where an absence is healthy; otherwise it goes on (never worse: no value).
        let gone: Vec<Labels> = self
            .excused()
            .keys()
            .filter(|l| !seen.contains_key(l) && !self.series.contains_key(*l))
            .cloned()
            .collect();
        for labels in gone {
            if threshold.present || self.params.no_data == NoData::Ok {
                if let Some(k) = &mut self.kept {
                    k.excused.remove(&labels);
                }
                self.notes.rare().pre_existing_over.push((labels, None));
            }
        }
        for labels in absent {
            if labels.is_empty() && !seen.is_empty() {
                // The rule-level "no data" series ends as soon as there is data.
                self.step(at, &labels, None, false, Evidence::default(), &mut out);
            } else {
                self.absent(at, &labels, &mut out);
            }
        }
        let nothing = Labels::new();
        // (A breach carried over from before the watch that goes on through this
        // absence is a series still followed, as a pending one is.)
        if seen.is_empty() && self.series.is_empty() && self.excused().is_empty() {
            self.absent(at, &nothing, &mut out);
        }
        self.with_counts(out)
    }

    /// Adds the rule's counts to the evidence of each transition.
    fn with_counts(&self, mut out: Vec<Transition>) -> Vec<Transition> {
        let judge = self.params.judge;
        if judge.min_traffic.is_some() || judge.compare.is_some() {
            for t in &mut out {
                let (Transition::Pending { evidence, .. }
                | Transition::Fired { evidence, .. }
                | Transition::Resolved { evidence, .. }) = t;
                evidence.insufficient = Some(self.insufficient);
            }
        }
        out
    }

    /// A `compare` rule: the canary side is `poll`, the stable side `stable`.
    fn observe_compare(
        &mut self,
        at: Duration,
        poll: &Poll,
        stable: Option<&Poll>,
        c: CompareParams,
    ) -> Vec<Transition> {
        let (Poll::Samples(cs), Some(Poll::Samples(ss))) = (poll, stable) else {
            return Vec::new();
        };
        self.notes.judged = true;
        self.pool(at, cs, ss, c.window);
        let values = |pool: Option<&VecDeque<(Duration, f64)>>| -> Vec<f64> {
            pool.into_iter().flatten().map(|(_, v)| *v).collect()
        };
        let pools = self.pools.as_deref();
        let canary = values(pools.map(|p| &p.canary));
        let stable = values(pools.map(|p| &p.stable));
        let result = crate::core::stats::compare_by(
            &canary,
            &stable,
            c.direction,
            1.0 - c.alpha(),
            c.min_effect,
            c.min_samples,
            c.effect,
        );
        let labels = Labels::new();
        let mut out = Vec::new();
        match result {
            crate::core::stats::Comparison::Insufficient { n_canary, n_stable } => {
                self.insufficient += 1;
                self.notes.insufficient = 1;
                self.notes.evidence.insert(
                    labels,
                    Evidence {
                        n_canary: Some(n_canary),
                        n_stable: Some(n_stable),
                        ..Default::default()
                    },
                );
                return Vec::new();
            }
            crate::core::stats::Comparison::Judged {
                n_canary,
                n_stable,
                p_value,
                shift,
                stable_median,
                effect,
                breached,
                ..
            } => {
                self.judged += 1;
                self.notes.series_judged = 1;
                let value = crate::core::stats::median(&canary);
                if value.is_some() {
                    self.notes.rare().compare_value = value;
                }
                let evidence = Evidence {
                    baseline: Some(stable_median),
                    p_value: Some(p_value),
                    effect: Some(effect),
                    effect_measure: Some(c.effect.as_str()),
                    shift: Some(shift),
                    n_canary: Some(n_canary),
                    n_stable: Some(n_stable),
                    ..Default::default()
                };
                self.step(at, &labels, value, breached, evidence, &mut out);
            }
        }
        self.with_counts(out)
    }

    /// Adds one poll's canary and stable samples to the pools and slides the window.
    fn pool(&mut self, at: Duration, cs: &[Sample], ss: &[Sample], window: Duration) {
        let pools = self.pools.get_or_insert_with(Default::default);
        for (pool, side) in [(&mut pools.canary, cs), (&mut pools.stable, ss)] {
            // NaN is no data; an infinity is a value, the extreme of its side
            // (`histogram_quantile` above the top bucket is the worst latency).
            pool.extend(
                side.iter()
                    .filter(|s| !s.value.is_nan())
                    .map(|s| (at, s.value)),
            );
            // The sliding window: samples of the last `window`, this poll's always.
            while pool
                .front()
                .is_some_and(|(t, _)| at.saturating_sub(*t) >= window && *t != at)
            {
                pool.pop_front();
            }
        }
    }

    /// `compare`: puts a poll that was already judged (before a restart) back into the
    /// pools, without judging it again: the agent refills them from Prometheus's
    /// history at resume, so the first poll after it compares the full window, as an
    /// uninterrupted watch would. Nothing for another rule, or a failed poll.
    pub fn refill(&mut self, at: Duration, canary: &Poll, stable: &Poll) {
        let (Some(c), Poll::Samples(cs), Poll::Samples(ss)) =
            (self.params.judge.compare, canary, stable)
        else {
            return;
        };
        self.pool(at, cs, ss, c.window);
    }

    fn absent(&mut self, at: Duration, labels: &Labels, out: &mut Vec<Transition>) {
        // For a present rule an absent series is the healthy state.
        let no_data = if self.params.threshold.present {
            NoData::Ok
        } else {
            self.params.no_data
        };
        let mut evidence = Evidence::default();
        match no_data {
            NoData::Ok => {
                self.carried_over(labels, None, false, &mut evidence);
                self.step(at, labels, None, false, evidence, out)
            }
            NoData::Breach => {
                let breaching = self.carried_over(labels, None, true, &mut evidence);
                self.step(at, labels, None, breaching, evidence, out)
            }
            NoData::Hold => {}
        }
    }

    /// One judged poll of one series (a slot, for `breaches`).
    fn step(
        &mut self,
        at: Duration,
        labels: &Labels,
        value: Option<f64>,
        breaching: bool,
        evidence: Evidence,
        out: &mut Vec<Transition>,
    ) {
        self.step_known(at, labels, value, breaching, evidence, true, out)
    }

    /// `step`, told whether the series may be followed: `false` only where the
    /// caller knows it is not (`observe_view` marks the followed ones), which spares a
    /// lookup in the tree for each of a poll's healthy series.
    #[allow(clippy::too_many_arguments)]
    fn step_known(
        &mut self,
        at: Duration,
        labels: &Labels,
        value: Option<f64>,
        breaching: bool,
        mut evidence: Evidence,
        maybe_followed: bool,
        out: &mut Vec<Transition>,
    ) {
        let breaches = self.params.judge.breaches;
        // When the series fires: `for` has elapsed, or M of the last N polls breached.
        let fires = |state: &SeriesState, at: Duration| match breaches {
            Some(b) => state.window.iter().filter(|x| **x).count() as u32 >= b.m,
            None => at.saturating_sub(state.since) >= self.params.for_,
        };
        let state = if maybe_followed {
            self.series.get_mut(labels)
        } else {
            debug_assert!(!self.series.contains_key(labels));
            None
        };
        match (state, breaching) {
            (None, false) => {
                if let Some(b) = breaches {
                    evidence.breaches = Some((0, b.n));
                }
                self.notes.note(labels, evidence);
            }
            (None, true) => {
                let mut state = SeriesState {
                    phase: Phase::Pending,
                    since: at,
                    last_value: value,
                    window: VecDeque::from([true]),
                };
                if let Some(b) = breaches {
                    evidence.breaches = Some((1, b.n));
                }
                out.push(Transition::Pending {
                    labels: labels.clone(),
                    value,
                    evidence: evidence.clone(),
                });
                if fires(&state, at) {
                    state.phase = Phase::Firing;
                    out.push(Transition::Fired {
                        labels: labels.clone(),
                        value,
                        breached_for: Duration::ZERO,
                        evidence: evidence.clone(),
                    });
                }
                self.notes.note(labels, evidence);
                self.series.insert(labels.clone(), state);
            }
            (Some(state), breaching) if breaches.is_some() => {
                let b = breaches.expect("checked");
                if state.window.is_empty() {
                    // Restored after a restart: it breached at least once.
                    state.window.push_back(true);
                }
                state.window.push_back(breaching);
                while state.window.len() > b.n as usize {
                    state.window.pop_front();
                }
                let count = state.window.iter().filter(|x| **x).count() as u32;
                evidence.breaches = Some((count, b.n));
                if breaching {
                    state.last_value = value;
                }
                let breached_for = at.saturating_sub(state.since);
                if count == 0 {
                    let from = state.phase;
                    self.series.remove(labels);
                    out.push(Transition::Resolved {
                        labels: labels.clone(),
                        from,
                        value,
                        breached_for,
                        evidence: evidence.clone(),
                    });
                } else if state.phase == Phase::Pending && fires(state, at) {
                    state.phase = Phase::Firing;
                    out.push(Transition::Fired {
                        labels: labels.clone(),
                        value,
                        breached_for,
                        evidence: evidence.clone(),
                    });
                }
                self.notes.note(labels, evidence);
            }
            (Some(state), true) => {
                state.last_value = value;
                let breached_for = at.saturating_sub(state.since);
                if state.phase == Phase::Pending && fires(state, at) {
                    state.phase = Phase::Firing;
                    out.push(Transition::Fired {
                        labels: labels.clone(),
                        value,
                        breached_for,
                        evidence: evidence.clone(),
                    });
                }
                self.notes.note(labels, evidence);
            }
            (Some(state), false) => {
                let from = state.phase;
                let breached_for = at.saturating_sub(state.since);
                self.series.remove(labels);
                out.push(Transition::Resolved {
                    labels: labels.clone(),
                    from,
                    value,
                    breached_for,
                    evidence: evidence.clone(),
                });
                self.notes.note(labels, evidence);
            }
        }
    }
}

#[cfg(test)]
#[path = "judge_tests.rs"]
mod judge_tests;
#[cfg(test)]
#[path = "tests.rs"]
mod tests;
#[cfg(test)]
#[path = "watch_sim_tests.rs"]
mod watch_sim_tests;
