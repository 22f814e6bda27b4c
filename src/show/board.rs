//! What the agent's page draws from: an in-memory report `Record` per watch, fed by a
//! sink the agent adds to every watch (`Agent::add_watch_sink`), and the watch's
//! events as a timeline.
//!
//! The store keeps what a restart needs (breach state, last polls, actions), not every
//! poll, so the charts' history lives here, bounded: at most `MAX_SAMPLES` compact
//! polls per rule (8 bytes each: a time, a state's kind and a value, and no reference
//! unless the rule has one; once a rule has that many, neighbouring polls are merged
//! in pairs, keeping the worse value and state, so a peak or a breach is never thinned
//! away, only the resolution halves), the last `MAX_EVENTS` events per watch, and the
//! `KEEP_FINISHED` most recently finished watches. It is lost at a restart: a resumed
//! watch's chart starts again from the resume (the page says so), and its state and
//! actions still come from the store.
//!
//! That full history is kept only for the `FULL_WATCHES` watches most recently
//! viewed on the page (issue 21): at 5 rules, 240 polls each cost about 10 KB a watch,
//! too much for 100,000 watches nobody looks at. Every other watch keeps `LEAN_SAMPLES`
//! polls per rule (merged the same way, so its peaks and breaches stay; their room
//! taken at once, about 1.3 KB a watch of 5 rules) and `LEAN_EVENTS` events, dropping
//! the oldest of those that are not a breach, an action or the watch's start or end
//! (`KEPT_KINDS`). A watch viewed again keeps its full history from then on. A
//! record's rule texts (name, query, threshold, graph link) and its vars are shared
//! with every record of equal ones (`run::interner`): the watches of one rule file
//! and vars hold them once.

use crate::core::eval::Worse;
use crate::core::events::{Event, RuleState, Sink};
use crate::io::store::NewWatch;
use crate::run::agent::WatchSinkFactory;
use crate::show::report::{Record, SampleRecord};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Polls kept per rule of a watch before pairs are merged (a chart is 680 px wide).
pub const MAX_SAMPLES: usize = 240;
/// Events kept per watch for the timeline.
pub const MAX_EVENTS: usize = 500;
/// Finished watches whose record is kept.
pub const KEEP_FINISHED: usize = 200;
/// Watches that keep `MAX_SAMPLES` and `MAX_EVENTS`: the most recently viewed.
pub const FULL_WATCHES: usize = 100;
/// Polls kept per rule of any other watch.
pub const LEAN_SAMPLES: usize = 30;
/// Events kept per other watch.
pub const LEAN_EVENTS: usize = 50;
/// Timeline events never dropped while others can be: a breach, an action, the
/// watch's start and end.
const KEPT_KINDS: [&str; 5] = [
    "watch_started",
    "fired",
    "action_started",
    "action_finished",
    "watch_finished",
];

/// A `watch_started` this long after the watch was created is a resume.
const RESUMED_AFTER_MS: i64 = 5000;

/// One line of a watch's timeline.
#[derive(Debug, Clone)]
pub struct TimelineEvent {
    pub at_ms: i64,
    /// `pending`, `fired`, `action_started`, ...
    pub kind: &'static str,
    /// The event's main fields, `key=value`.
    pub text: String,
}

/// A rule's state at its last poll, in a few bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Ok,
    NoData,
    QueryError,
    Pending {
        for_s: f32,
        of_s: f32,
        /// (At most `MAX_BREACH_WINDOW`, 1,000 polls: `u16` holds them.)
        breaches: Option<[u16; 3]>,
    },
    Breached,
}

impl State {
    fn of(s: &RuleState) -> State {
        match s {
            RuleState::Ok => State::Ok,
            RuleState::NoData => State::NoData,
            RuleState::QueryError => State::QueryError,
            RuleState::Pending {
                for_s,
                of_s,
                breaches,
            } => State::Pending {
                for_s: *for_s as f32,
                of_s: *of_s as f32,
                breaches: breaches.map(|b| b.map(|n| u16::try_from(n).unwrap_or(u16::MAX))),
            },
            RuleState::Breached => State::Breached,
        }
    }
    fn full(self) -> RuleState {
        match self {
            State::Ok => RuleState::Ok,
            State::NoData => RuleState::NoData,
            State::QueryError => RuleState::QueryError,
            State::Pending {
                for_s,
                of_s,
                breaches,
            } => RuleState::Pending {
                for_s: for_s as f64,
                of_s: of_s as f64,
                breaches: breaches.map(|b| b.map(u32::from)),
            },
            State::Breached => RuleState::Breached,
        }
    }
}

/// An optional `f32` in 4 bytes: `None` is a NaN no value is stored as (a value that
/// is NaN is kept as the canonical NaN) (issue 21: the charts of 100,000 watches).
#[derive(Debug, Clone, Copy)]
struct Opt32(f32);

impl Opt32 {
    const NONE: u32 = 0x7fc0_0dea;
    fn new(v: Option<f64>) -> Opt32 {
        match v {
            None => Opt32(f32::from_bits(Self::NONE)),
            Some(v) if v.is_nan() => Opt32(f32::NAN),
            Some(v) => Opt32(v as f32),
        }
    }
    fn get(self) -> Option<f32> {
        (self.0.to_bits() != Self::NONE).then_some(self.0)
    }
}

impl PartialEq for Opt32 {
    fn eq(&self, other: &Opt32) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

/// A rule's state at a poll as its chart shades it: the kind alone, in one byte (a
/// pending rule's timer is kept for its last poll only, in `Kept::last`), ordered
/// from the least to the most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Ok,
    NoData,
    QueryError,
    Pending,
    Breached,
}

impl Kind {
    /// Every kind, by its number.
    const ALL: [Kind; 5] = [
        Kind::Ok,
        Kind::NoData,
        Kind::QueryError,
        Kind::Pending,
        Kind::Breached,
    ];

    fn of(s: &RuleState) -> Kind {
        match s {
            RuleState::Ok => Kind::Ok,
            RuleState::NoData => Kind::NoData,
            RuleState::QueryError => Kind::QueryError,
            RuleState::Pending { .. } => Kind::Pending,
            RuleState::Breached => Kind::Breached,
        }
    }
    /// The state a chart draws; a pending poll's timer is not kept (the chart shades
    /// the span, and the page's badge shows the last poll's timer).
    fn full(self) -> RuleState {
        match self {
            Kind::Ok => RuleState::Ok,
            Kind::NoData => RuleState::NoData,
            Kind::QueryError => RuleState::QueryError,
            Kind::Pending => RuleState::Pending {
                for_s: 0.0,
                of_s: 0.0,
                breaches: None,
            },
            Kind::Breached => RuleState::Breached,
        }
    }
}

/// Bits of `Compact::at` that hold the poll's kind.
const KIND_BITS: u32 = 3;
/// The most a poll's offset from its history's first poll can be, in its units.
const MAX_OFFSET: u64 = (1 << (32 - KIND_BITS)) - 1;
/// The coarsest unit a history's offsets are counted in (2^40 ms, 35 years): no
/// span of `i64` milliseconds needs more.
const MAX_SHIFT: u8 = 40;

/// One poll as the chart needs it: 8 bytes (48, then 32, then 16, before): its time
/// as an offset from its history's first poll with its kind in the low bits, and
/// its value.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Compact {
    /// `offset << KIND_BITS | kind`, the offset counted in `History::shift` units.
    at: u32,
    value: Opt32,
}

impl Compact {
    fn kind(self) -> Kind {
        Kind::ALL[(self.at & ((1 << KIND_BITS) - 1)) as usize % Kind::ALL.len()]
    }
    fn offset(self) -> u64 {
        u64::from(self.at >> KIND_BITS)
    }
    fn new(offset: u64, kind: Kind, value: Opt32) -> Compact {
        Compact {
            at: ((offset.min(MAX_OFFSET) as u32) << KIND_BITS) | kind as u32,
            value,
        }
    }
}

/// A rule's chart history: its polls, and their references (a baseline or a stable
/// side) index for index, only for a rule that ever had one: most rules have none,
/// and a reference in every poll took a quarter of it.
///
/// A poll's time is kept as its offset from the first poll (`base`), in units of
/// `2^shift` ms: whole milliseconds for a watch's first 6 days, then, each time the
/// span outgrows 29 bits, units twice as long (every offset halved), as the merging
/// of polls halves the chart's resolution. A poll before the first (a wall clock
/// stepped back) is drawn at the first.
#[derive(Debug, Clone, Default)]
struct History {
    polls: Vec<Compact>,
    /// Empty, or as long as `polls`.
    refs: Vec<Opt32>,
    /// The first poll's time (Unix ms); set by the first push.
    base: i64,
    shift: u8,
}

impl History {
    /// Adds a poll. A history with no room yet takes room for `room` polls at once
    /// (the most it keeps before it halves, plus the one that makes it halve), so a
    /// lean history neither doubles past its bound nor reallocates as it fills.
    fn push(
        &mut self,
        t: i64,
        value: Option<f64>,
        reference: Option<f64>,
        kind: Kind,
        room: usize,
    ) {
        if self.polls.capacity() == 0 {
            self.polls.reserve_exact(room);
        }
        if self.polls.is_empty() {
            self.base = t;
            self.shift = 0;
        }
        // (In `i128`, where no span of two `i64`s overflows; one below zero, a poll
        // before the first, counts as at the first.)
        let span = u64::try_from(i128::from(t) - i128::from(self.base)).unwrap_or(0);
        while self.shift < MAX_SHIFT && span >> self.shift > MAX_OFFSET {
            self.shift += 1;
            for c in &mut self.polls {
                *c = Compact::new(c.offset() >> 1, c.kind(), c.value);
            }
        }
        self.polls
            .push(Compact::new(span >> self.shift, kind, Opt32::new(value)));
        if reference.is_some() && self.refs.is_empty() {
            self.refs.reserve_exact(self.polls.capacity());
            self.refs.resize(self.polls.len() - 1, Opt32::new(None));
        }
        if !self.refs.is_empty() {
            self.refs.push(Opt32::new(reference));
        }
    }

    /// A poll's time, Unix ms.
    fn time(&self, c: Compact) -> i64 {
        let ms = i128::from(c.offset()) << self.shift;
        i64::try_from(i128::from(self.base) + ms).unwrap_or(i64::MAX)
    }

    /// Merges neighbouring polls in pairs, in place: the first one's time, the worse
    /// value (the rule's `Worse`: higher for `above` and `above_baseline`, lower for
    /// `below`), the more severe state, and the first reference there is.
    fn halve(&mut self, dir: Worse) {
        let n = self.polls.len();
        for i in 0..n.div_ceil(2) {
            // (Reads 2i and 2i + 1, never before i: nothing read is overwritten yet.)
            let a = self.polls[2 * i];
            self.polls[i] = match self.polls.get(2 * i + 1) {
                Some(b) => Compact::new(
                    a.offset(),
                    a.kind().max(b.kind()),
                    Opt32::new(dir.worse_of(a.value.get(), b.value.get()).map(f64::from)),
                ),
                None => a,
            };
            if !self.refs.is_empty() {
                let ra = self.refs[2 * i];
                self.refs[i] = match (ra.get(), self.refs.get(2 * i + 1)) {
                    (None, Some(rb)) => *rb,
                    _ => ra,
                };
            }
        }
        self.polls.truncate(n.div_ceil(2));
        if !self.refs.is_empty() {
            self.refs.truncate(n.div_ceil(2));
        }
    }

    /// Halves until at most `keep` polls are left, then gives back room beyond
    /// `keep + 1` (a full history that became lean).
    fn bound(&mut self, keep: usize, dir: Worse) {
        if self.polls.len() <= keep {
            return;
        }
        while self.polls.len() > keep {
            self.halve(dir);
        }
        self.polls.shrink_to(keep + 1);
        self.refs.shrink_to(keep + 1);
    }

    fn samples(&self) -> Vec<SampleRecord> {
        self.polls
            .iter()
            .enumerate()
            .map(|(i, &c)| SampleRecord {
                t: self.time(c),
                value: c.value.get().map(f64::from),
                state: c.kind().full(),
                series: Vec::new(),
                error: None,
                reference: self.refs.get(i).and_then(|r| r.get()).map(f64::from),
            })
            .collect()
    }
}

/// A watch as the board keeps it: the report's record without its samples, which are
/// kept compact beside it.
#[derive(Debug, Clone, Default)]
struct Kept {
    record: Record,
    /// Each rule's chart history, in the rule file's order.
    samples: Vec<History>,
    /// Each rule's last poll: its state (a pending rule's timer too), and its value
    /// exactly (the history keeps values as f32).
    last: Vec<Option<(State, Option<f64>)>>,
    events: VecDeque<TimelineEvent>,
    from_start: bool,
    version: u64,
    /// Among the `FULL_WATCHES` most recently viewed: keeps the full history.
    full: bool,
}

impl Kept {
    /// Thins its history to what it may keep (`full` or lean).
    fn bound(&mut self) {
        let (polls, events) = if self.full {
            (MAX_SAMPLES, MAX_EVENTS)
        } else {
            (LEAN_SAMPLES, LEAN_EVENTS)
        };
        for (list, r) in self.samples.iter_mut().zip(&self.record.rules) {
            list.bound(polls, r.info.worse);
        }
        while self.events.len() > events {
            match self
                .events
                .iter()
                .position(|e| !KEPT_KINDS.contains(&e.kind))
            {
                Some(i) => {
                    self.events.remove(i);
                }
                None => {
                    self.events.pop_front();
                }
            }
        }
    }
}

/// A watch as the page sees it.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    /// The report's record, samples included (rebuilt from the compact ones).
    pub record: Record,
    pub events: VecDeque<TimelineEvent>,
    /// The board saw the watch start (not only its end, or a part after a restart).
    pub from_start: bool,
    /// The board's version at this watch's last change.
    pub version: u64,
}

#[derive(Default)]
struct Inner {
    /// (Boxed: a map's free slots cost a slot's size, and a `Kept` is hundreds of
    /// bytes.)
    watches: HashMap<String, Box<Kept>, foldhash::fast::RandomState>,
    finished: VecDeque<String>,
    /// The watches with full history, least recently viewed first.
    viewed: VecDeque<String>,
}

/// A watch as the list of watches shows it (`Board::summary`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// The vars in force: the rule file's defaults overridden by the watch's own.
    pub vars: BTreeMap<String, String>,
    /// Each rule, in the rule file's order.
    pub rules: Vec<RuleLast>,
}

/// A rule's last poll as the board saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleLast {
    pub name: String,
    /// None: never polled.
    pub state: Option<RuleState>,
    pub value: Option<f64>,
    /// It fired during the watch (whatever its last poll said).
    pub fired: bool,
}

/// Every watch's live record, and a version that goes up at every change (what the
/// page's long polls wait on).
pub struct Board {
    inner: Mutex<Inner>,
    changed: tokio::sync::watch::Sender<u64>,
}

fn lock(b: &Board) -> std::sync::MutexGuard<'_, Inner> {
    b.inner.lock().unwrap_or_else(|e| e.into_inner())
}

/// The fields a timeline line shows, in this order, when the event has them.
const SHOWN: [&str; 12] = [
    "rule",
    "labels",
    "value",
    "threshold",
    "breached_for_s",
    "was",
    "action",
    "status",
    "outcome",
    "exit_code",
    "detail",
    "signal",
];

fn timeline_text(event: &Event) -> String {
    // A person's order reads as the sentence every face shows (who, what, why).
    if let Some(t) = crate::core::events::manual_text(event) {
        return t;
    }
    let v = serde_json::to_value(event).unwrap_or_default();
    let mut parts = Vec::new();
    for k in SHOWN {
        match v.get(k) {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::String(s)) => parts.push(format!("{k}={s}")),
            Some(serde_json::Value::Object(m)) if m.is_empty() => {}
            Some(x) => parts.push(format!("{k}={x}")),
        }
    }
    // What the judge saw (a baseline, a p-value, an `slo:` rule's burn rates), as the
    // log lines and notifications show it.
    let evidence = match event {
        Event::Pending { evidence, .. }
        | Event::Resolved { evidence, .. }
        | Event::Fired { evidence, .. }
        | Event::Notify { evidence, .. } => evidence.text(),
        _ => String::new(),
    };
    if !evidence.is_empty() {
        parts.push(evidence);
    }
    parts.join(" ")
}

impl Board {
    pub fn new() -> Arc<Board> {
        Arc::new(Board {
            inner: Mutex::default(),
            changed: tokio::sync::watch::Sender::new(0),
        })
    }

    /// The version now.
    pub fn version(&self) -> u64 {
        *self.changed.borrow()
    }

    /// Waits until the version is above `since` (or `timeout` passed); returns it.
    pub async fn wait_past(&self, since: u64, timeout: std::time::Duration) -> u64 {
        let mut rx = self.changed.subscribe();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|v| *v > since)).await;
        self.version()
    }

    /// The sink factory to hand to the agent.
    pub fn factory(self: &Arc<Self>) -> WatchSinkFactory {
        let board = self.clone();
        Arc::new(move |def: &NewWatch| {
            Box::new(BoardSink {
                id: def.id.clone(),
                created_ms: def.created_ms,
                board: board.clone(),
            }) as Box<dyn Sink>
        })
    }

    /// Records one event of watch `id`, created at `created_ms`.
    pub fn record(&self, id: &str, created_ms: i64, at_ms: i64, event: &Event) {
        let mut inner = lock(self);
        // (Looked up before a key is made: a poll's record finds its watch there,
        // and an id copied for every poll was an allocation and a free each.)
        if !inner.watches.contains_key(id) {
            inner.watches.insert(id.to_string(), Box::default());
        }
        let Some(e) = inner.watches.get_mut(id) else {
            return;
        };
        let started = matches!(event, Event::WatchStarted { .. });
        if started {
            // A resumed watch starts a new record from here.
            let events = std::mem::take(&mut e.events);
            **e = Kept {
                from_start: at_ms - created_ms < RESUMED_AFTER_MS,
                events,
                full: e.full,
                ..Kept::default()
            };
        }
        if let Event::Poll {
            rule,
            state,
            value,
            reference,
            ..
        } = event
        {
            // Straight to the compact list: the report's record would copy the
            // poll's series into a sample the board then drops, and keep the room
            // it grew for it (2 KB a watch at 10,000).
            e.record.ended_at = e.record.ended_at.max(at_ms);
            let i = e.record.rule_index(rule);
            if let Some(i) = i.filter(|&i| i < e.samples.len() && i < e.last.len()) {
                // (A full history grows as a list does; a lean one takes its room
                // at once, see `History::push`.)
                let room = if e.full { 0 } else { LEAN_SAMPLES + 1 };
                e.samples[i].push(at_ms, *value, *reference, Kind::of(state), room);
                e.last[i] = Some((State::of(state), *value));
            }
        } else {
            e.record.record(at_ms, event);
        }
        if started {
            // Its chart still spans the whole watch, from its creation.
            e.record.started_at = created_ms.min(at_ms);
            e.samples = vec![History::default(); e.record.rules.len()];
            e.last = vec![None; e.record.rules.len()];
        }
        if !matches!(event, Event::Poll { .. }) {
            e.events.push_back(TimelineEvent {
                at_ms,
                kind: event.name(),
                text: timeline_text(event),
            });
        }
        e.bound();
        let mut version = 0;
        self.changed.send_modify(|v| {
            *v += 1;
            version = *v;
        });
        e.version = version;
        if matches!(event, Event::WatchFinished { .. }) {
            inner.finished.push_back(id.to_string());
            while inner.finished.len() > KEEP_FINISHED {
                if let Some(old) = inner.finished.pop_front() {
                    inner.watches.remove(&old);
                    inner.viewed.retain(|v| *v != old);
                }
            }
        }
    }

    /// A copy of watch `id`'s entry; it is viewed, so it keeps its full history
    /// from now on (and the least recently viewed of the others, beyond
    /// `FULL_WATCHES`, is thinned to the lean bounds).
    pub fn get(&self, id: &str) -> Option<Entry> {
        let mut guard = lock(self);
        let inner = &mut *guard;
        let k = inner.watches.get_mut(id)?;
        if k.full {
            inner.viewed.retain(|v| v != id);
        }
        k.full = true;
        inner.viewed.push_back(id.to_string());
        while inner.viewed.len() > FULL_WATCHES {
            let Some(old) = inner.viewed.pop_front() else {
                break;
            };
            if let Some(o) = inner.watches.get_mut(&old) {
                o.full = false;
                o.bound();
            }
        }
        let k = inner.watches.get(id)?;
        let mut record = k.record.clone();
        for (r, list) in record.rules.iter_mut().zip(&k.samples) {
            r.samples = list.samples();
        }
        Some(Entry {
            record,
            events: k.events.clone(),
            from_start: k.from_start,
            version: k.version,
        })
    }

    /// What the list of watches shows of watch `id`: its vars in force and each rule's
    /// last state; None before the board saw it start. Not a view: the watch's history
    /// stays as it is bounded.
    pub fn summary(&self, id: &str) -> Option<Summary> {
        let inner = lock(self);
        let k = inner
            .watches
            .get(id)
            .filter(|k| !k.record.kind.is_empty())?;
        Some(Summary {
            vars: (*k.record.vars).clone(),
            rules: k
                .record
                .rules
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let last = k.last.get(i).copied().flatten();
                    RuleLast {
                        name: r.info.name.clone(),
                        state: last.map(|(state, _)| state.full()),
                        value: last.and_then(|(_, v)| v),
                        fired: r.fired(),
                    }
                })
                .collect(),
        })
    }

    /// The version at watch `id`'s last change.
    pub fn version_of(&self, id: &str) -> Option<u64> {
        lock(self).watches.get(id).map(|k| k.version)
    }
}

/// The sink the agent adds to each watch.
struct BoardSink {
    id: String,
    created_ms: i64,
    board: Arc<Board>,
}

impl Sink for BoardSink {
    fn emit(&mut self, at_ms: i64, event: &Event) {
        self.board.record(&self.id, self.created_ms, at_ms, event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::events::RuleState;

    fn poll(v: f64) -> Event {
        Event::Poll {
            rule: "r".into(),
            samples: vec![],
            error: None,
            warnings: vec![],
            state: RuleState::Ok,
            value: Some(v),
            reference: None,
            insufficient: 0,
            evidence: Default::default(),
            windows: None,
        }
    }

    fn poll_in(v: f64, state: RuleState) -> Event {
        match poll(v) {
            Event::Poll {
                rule,
                samples,
                error,
                warnings,
                value,
                reference,
                insufficient,
                evidence,
                windows,
                ..
            } => Event::Poll {
                rule,
                samples,
                error,
                warnings,
                state,
                value,
                reference,
                insufficient,
                evidence,
                windows,
            },
            _ => unreachable!(),
        }
    }

    fn event(kind: &str) -> Event {
        let rule = "r".to_string();
        match kind {
            "fired" => Event::Fired {
                rule,
                labels: Default::default(),
                value: Some(9.0),
                threshold: "> 1".into(),
                breached_for_s: 1.0,
                action: "rollback",
                evidence: Default::default(),
            },
            _ => Event::Resolved {
                rule,
                labels: Default::default(),
                value: Some(0.5),
                threshold: "> 1".into(),
                was: "pending",
                breached_for_s: 1.0,
                evidence: Default::default(),
            },
        }
    }

    fn started() -> Event {
        Event::WatchStarted {
            rules_file: "x".into(),
            prometheus: "p".into(),
            duration_s: 60.0,
            max_blind_s: 60.0,
            dry_run: false,
            vars: Default::default(),
            rules: vec![crate::core::events::RuleInfo {
                name: "r".into(),
                description: None,
                query: "q".into(),
                above: Some(1.0),
                below: None,
                worse: Worse::Higher,
                threshold: "> 1".into(),
                for_s: 0.0,
                interval_s: 1.0,
                no_data: "ok",
                action: "rollback",
                graph_url: None,
            }],
        }
    }

    fn finished() -> Event {
        Event::WatchFinished {
            outcome: "healthy",
            exit_code: 0,
            detail: "fine".into(),
            rule: None,
        }
    }

    /// A kept poll is 8 bytes (it was 48, then 32, then 16): 155 of them a watch
    /// nobody viewed; a history without references keeps none.
    #[test]
    fn a_kept_poll_is_small_and_keeps_none_apart_from_nan() {
        assert!(std::mem::size_of::<Compact>() <= 8);
        for v in [
            None,
            Some(f64::NAN),
            Some(0.25),
            Some(-1e300),
            Some(f64::INFINITY),
        ] {
            let got = Opt32::new(v).get().map(f64::from);
            match v {
                None => assert_eq!(got, None),
                Some(x) if x.is_nan() => assert!(got.is_some_and(f64::is_nan), "{got:?}"),
                Some(x) => assert_eq!(got, Some(x as f32 as f64)),
            }
        }
        // Any NaN a source hands over is a value, never taken for "none".
        let odd = f64::from_bits(0x7ff8_0dea_0000_0001);
        assert!(Opt32::new(Some(odd)).get().is_some());
        // The last poll keeps a pending rule's timer.
        let pending = RuleState::Pending {
            for_s: 30.0,
            of_s: 120.0,
            breaches: Some([3, 5, 1000]),
        };
        assert_eq!(State::of(&pending).full(), pending);
        // A history takes its room once, and references only once it has one.
        let mut h = History::default();
        for t in 0..5 {
            h.push(t, Some(1.0), None, Kind::Ok, LEAN_SAMPLES + 1);
        }
        assert_eq!(h.polls.capacity(), LEAN_SAMPLES + 1);
        assert_eq!(h.refs.capacity(), 0);
        h.push(5, Some(1.0), Some(0.5), Kind::Ok, LEAN_SAMPLES + 1);
        h.push(6, Some(1.0), None, Kind::Ok, LEAN_SAMPLES + 1);
        let refs: Vec<_> = h.samples().iter().map(|s| s.reference).collect();
        assert_eq!(refs, [None, None, None, None, None, Some(0.5), None]);
    }

    /// A poll's time is kept to the millisecond for a watch's first 6 days, then in
    /// units that double as its span does; a poll before the first (a wall clock
    /// stepped back) is drawn at the first; no time, however far, wraps or panics.
    #[test]
    fn a_kept_polls_time_is_exact_then_coarsens_and_never_wraps() {
        let times = |h: &History| h.samples().iter().map(|s| s.t).collect::<Vec<_>>();
        let kinds = |h: &History| h.polls.iter().map(|c| c.kind()).collect::<Vec<_>>();
        let t0 = 1_765_000_000_123;
        let mut h = History::default();
        // (Odd: coarsened, they show it.)
        let six_days = (MAX_OFFSET as i64) - 2;
        for (i, dt) in [0, 1, 15_001, six_days].into_iter().enumerate() {
            h.push(t0 + dt, Some(1.0), None, Kind::ALL[i], 0);
        }
        assert_eq!(times(&h), [t0, t0 + 1, t0 + 15_001, t0 + six_days]);
        assert_eq!(h.shift, 0);
        // Past 2^29 ms the unit doubles: times are then even offsets from the first,
        // and each poll keeps its kind.
        h.push(t0 + six_days + 4, Some(2.0), None, Kind::Breached, 0);
        assert_eq!(h.shift, 1);
        assert_eq!(
            times(&h),
            [t0, t0, t0 + 15_000, t0 + six_days - 1, t0 + six_days + 3]
        );
        use Kind::*;
        assert_eq!(kinds(&h), [Ok, NoData, QueryError, Pending, Breached]);
        // Before the first: drawn at the first.
        h.push(t0 - 60_000, Some(3.0), None, Kind::Ok, 0);
        assert_eq!(times(&h)[5], t0);
        // The extremes of `i64`.
        let mut h = History::default();
        for t in [i64::MIN, 0, i64::MAX, i64::MIN] {
            h.push(t, Some(1.0), None, Kind::Ok, 0);
        }
        let t = times(&h);
        assert_eq!(t[0], i64::MIN);
        assert!(t[1] <= 0 && t[1] > -(1 << 41), "{t:?}");
        assert!(t[2] > i64::MAX - (1 << 41), "{t:?}");
        assert_eq!(t[3], i64::MIN);
        assert!(t.windows(2).take(2).all(|w| w[0] <= w[1]), "{t:?}");
    }

    proptest::proptest! {
        /// Whatever the polls' times (steps of up to 40 days, now and then one back,
        /// from anywhere in `i64`), a history bounded as the board bounds it keeps
        /// each time as one a poll had, less than its unit early (one before the
        /// first is kept at the first); in order when the polls were; and its most
        /// severe state.
        #[test]
        fn a_kept_polls_time_is_one_a_poll_had(
            start in proptest::prelude::any::<i64>(),
            steps in proptest::collection::vec((-60_000i64..3_456_000_000, 0usize..5), 1..300),
            lean in proptest::prelude::any::<bool>(),
        ) {
            let keep = if lean { LEAN_SAMPLES } else { MAX_SAMPLES };
            let mut h = History::default();
            let mut t = start;
            let mut times = Vec::new();
            for &(step, kind) in &steps {
                t = t.saturating_add(step);
                times.push(t);
                h.push(t, Some(1.0), None, Kind::ALL[kind], 0);
                h.bound(keep, Worse::Higher);
            }
            let unit = 1i128 << h.shift;
            let kept: Vec<i64> = h.samples().iter().map(|s| s.t).collect();
            for &k in &kept {
                let had = times
                    .iter()
                    .any(|&p| i128::from(p) - unit < i128::from(k) && k <= p);
                proptest::prop_assert!(had, "{k} kept; polls at {times:?}, unit {unit}");
            }
            if times.windows(2).all(|w| w[0] <= w[1]) {
                proptest::prop_assert!(kept.windows(2).all(|w| w[0] <= w[1]), "{kept:?}");
            }
            let worst = steps.iter().map(|&(_, k)| Kind::ALL[k]).max();
            proptest::prop_assert_eq!(h.polls.iter().map(|c| c.kind()).max(), worst);
        }
    }

    fn history(polls: &[(i64, f64, Kind, Option<f64>)]) -> History {
        let mut h = History::default();
        for &(t, v, kind, r) in polls {
            h.push(t, Some(v), r, kind, 0);
        }
        h
    }

    fn points(h: &History) -> Vec<(i64, Option<f64>, Kind, Option<f64>)> {
        h.samples()
            .iter()
            .zip(&h.polls)
            .map(|(s, c)| (s.t, s.value, c.kind(), s.reference))
            .collect()
    }

    #[test]
    fn merging_keeps_the_worse_value_and_state() {
        use Kind::{Breached, Ok, Pending};
        let mut h = history(&[
            (0, 1.0, Ok, None),
            (1, 5.0, Breached, None),
            (2, 3.0, Pending, None),
            (3, 2.0, Ok, None),
            (4, 9.0, Ok, None),
        ]);
        h.halve(Worse::Higher);
        assert_eq!(
            points(&h),
            [
                (0, Some(5.0), Breached, None),
                (2, Some(3.0), Pending, None),
                (4, Some(9.0), Ok, None)
            ]
        );
        assert!(h.refs.is_empty());
        let mut h = history(&[(0, 1.0, Ok, None), (1, 5.0, Ok, None)]);
        h.halve(Worse::Lower);
        assert_eq!(
            points(&h),
            [(0, Some(1.0), Ok, None)],
            "lower is worse for `below`"
        );
        // A pair keeps the first reference it has, index for index with its polls.
        let mut h = history(&[
            (0, 1.0, Ok, None),
            (1, 1.0, Ok, Some(7.0)),
            (2, 1.0, Ok, Some(8.0)),
            (3, 1.0, Ok, Some(9.0)),
            (4, 1.0, Ok, None),
        ]);
        h.halve(Worse::Higher);
        let refs: Vec<_> = points(&h).iter().map(|p| p.3).collect();
        assert_eq!(refs, [Some(7.0), Some(8.0), None]);
        assert_eq!(h.refs.len(), h.polls.len());
        // Bounding a long history leaves room for one more poll and no more.
        let mut h = History::default();
        for t in 0..(MAX_SAMPLES as i64) {
            h.push(t, Some(t as f64), Some(1.0), Kind::Ok, 0);
        }
        h.bound(LEAN_SAMPLES, Worse::Higher);
        assert!(h.polls.len() <= LEAN_SAMPLES && h.polls.len() > LEAN_SAMPLES / 2);
        assert!(
            h.polls.capacity() <= LEAN_SAMPLES + 1,
            "{}",
            h.polls.capacity()
        );
        assert!(
            h.refs.capacity() <= LEAN_SAMPLES + 1,
            "{}",
            h.refs.capacity()
        );
        assert_eq!(
            h.samples().last().and_then(|s| s.value),
            Some((MAX_SAMPLES - 1) as f64)
        );
    }

    #[test]
    fn a_persons_order_reads_as_who_did_what_and_why_on_the_timeline() {
        let t = timeline_text(&Event::Manual {
            order: "rollback",
            by: "alice".into(),
            reason: "INC-9: payments failing".into(),
            until_ms: None,
            ends_ms: None,
        });
        assert_eq!(
            t,
            "alice ordered a rollback now: \"INC-9: payments failing\""
        );
    }

    #[test]
    fn the_timeline_shows_what_the_judge_saw_as_the_log_does() {
        let evidence = crate::core::eval::Evidence {
            burn: vec![
                crate::core::eval::slo::WindowBurn {
                    window: "1h".into(),
                    burn: 15.2,
                },
                crate::core::eval::slo::WindowBurn {
                    window: "5m".into(),
                    burn: 20.3,
                },
            ],
            budget_spent: Some(0.021),
            ..Default::default()
        };
        let t = timeline_text(&Event::Fired {
            rule: "availability".into(),
            labels: Default::default(),
            value: Some(1.05),
            threshold: "burn > 14.4 over 1h and 5m".into(),
            breached_for_s: 120.0,
            action: "rollback",
            evidence: evidence.clone(),
        });
        assert!(
            t.ends_with(" burn_1h=15.2 burn_5m=20.3 budget_spent=2.1%"),
            "{t}"
        );
        assert!(t.contains(&evidence.text()), "{t}");
    }

    /// Polls and events the board holds, over every watch.
    fn held(b: &Board) -> (usize, usize) {
        let inner = lock(b);
        let polls = inner
            .watches
            .values()
            .flat_map(|k| &k.samples)
            .map(|h| h.polls.len());
        let events = inner.watches.values().map(|k| k.events.len()).sum();
        (polls.sum(), events)
    }

    /// A poll goes straight to the compact list: the kept record holds no room for a
    /// full sample (nor a copy of the poll's series), and ends at the last poll.
    #[test]
    fn a_poll_is_kept_compact_only() {
        let b = Board::new();
        b.record("w", 1, 1, &started());
        let mut with_series = poll(3.0);
        if let Event::Poll { samples, .. } = &mut with_series {
            samples.push(crate::core::events::SeriesValue {
                labels: [("pod", "a")].into(),
                value: Some(3.0),
            });
        }
        b.record("w", 1, 2, &poll(1.0));
        b.record("w", 1, 3, &with_series);
        // A poll of a rule the watch does not have is ignored.
        let mut other = poll(7.0);
        if let Event::Poll { rule, .. } = &mut other {
            *rule = "nope".into();
        }
        b.record("w", 1, 4, &other);
        {
            let inner = lock(&b);
            let k = &inner.watches["w"];
            assert_eq!(k.record.rules[0].samples.capacity(), 0);
            assert_eq!(k.samples[0].polls.len(), 2);
            assert_eq!(k.last[0], Some((State::Ok, Some(3.0))));
            assert_eq!(k.record.ended_at, 4);
        }
        let e = b.get("w").unwrap();
        let values: Vec<_> = e.record.rules[0].samples.iter().map(|s| s.value).collect();
        assert_eq!(values, [Some(1.0), Some(3.0)]);
        assert!(e.record.rules[0]
            .samples
            .iter()
            .all(|s| s.series.is_empty()));
    }

    /// Watches of one rule file and vars share their rules' texts and their vars
    /// (issue 21: 3 KB a watch); a watch with other vars has its own.
    #[test]
    fn watches_of_one_rule_file_share_its_texts() {
        let b = Board::new();
        b.record("a", 1, 1, &started());
        b.record("b", 1, 1, &started());
        let mut other = started();
        if let Event::WatchStarted { vars, rules, .. } = &mut other {
            vars.insert("service".into(), "other".into());
            rules[0].query = "other_query".into();
        }
        b.record("c", 1, 1, &other);
        let (a, bb, c) = (
            b.get("a").unwrap(),
            b.get("b").unwrap(),
            b.get("c").unwrap(),
        );
        assert!(Arc::ptr_eq(
            &a.record.rules[0].info,
            &bb.record.rules[0].info
        ));
        assert!(Arc::ptr_eq(&a.record.vars, &bb.record.vars));
        assert!(!Arc::ptr_eq(
            &a.record.rules[0].info,
            &c.record.rules[0].info
        ));
        assert!(!Arc::ptr_eq(&a.record.vars, &c.record.vars));
        assert_eq!(c.record.rules[0].info.query, "other_query");
        assert_eq!(
            c.record.vars.get("service").map(String::as_str),
            Some("other")
        );
        let Event::WatchStarted { rules, .. } = started() else {
            unreachable!()
        };
        assert_eq!(*a.record.rules[0].info, rules[0]);
    }

    #[test]
    fn a_watch_nobody_viewed_keeps_a_lean_history_with_its_peak_and_breach() {
        let b = Board::new();
        b.record("w", 1, 1, &started());
        for i in 0..1000 {
            let (v, state) = match i {
                400 => (50.0, RuleState::Ok),
                700 => (2.0, RuleState::Breached),
                _ => (0.5, RuleState::Ok),
            };
            b.record("w", 1, 2 + i, &poll_in(v, state));
        }
        b.record("w", 1, 1500, &event("fired"));
        for i in 0..200 {
            b.record("w", 1, 2000 + i, &event("resolved"));
        }
        let (polls, events) = held(&b);
        assert!(polls <= LEAN_SAMPLES, "{polls} polls held");
        assert!(events <= LEAN_EVENTS, "{events} events held");
        let e = b.get("w").unwrap();
        let samples = &e.record.rules[0].samples;
        assert_eq!(samples[0].t, 2, "the chart still spans the watch");
        let peak = samples.iter().filter_map(|s| s.value).fold(0.0, f64::max);
        assert_eq!(peak, 50.0, "the peak is never thinned away");
        assert!(
            samples.iter().any(|s| s.state == RuleState::Breached),
            "nor the breach"
        );
        let kinds: Vec<&str> = e.events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds[..2], ["watch_started", "fired"], "{kinds:?}");
    }

    #[test]
    fn only_the_most_recently_viewed_watches_keep_their_full_history() {
        let b = Board::new();
        let n = FULL_WATCHES + 50;
        for w in 0..n {
            let id = format!("w{w}");
            b.record(&id, 1, 1, &started());
            b.get(&id).unwrap();
        }
        for i in 0..(MAX_SAMPLES as i64) {
            for w in 0..n {
                b.record(&format!("w{w}"), 1, 2 + i, &poll(i as f64));
            }
        }
        // The first 50 viewed were pushed out of the full set by the later views.
        let (polls, _) = held(&b);
        let bound = FULL_WATCHES * MAX_SAMPLES + 50 * LEAN_SAMPLES;
        assert!(polls <= bound, "{polls} polls held, bound {bound}");
        assert!(polls > FULL_WATCHES * MAX_SAMPLES / 2, "{polls}");
        let lean = b.get("w0").unwrap().record.rules[0].samples.len();
        assert!(lean <= LEAN_SAMPLES, "{lean}");
        let full = b.get(&format!("w{}", n - 1)).unwrap().record.rules[0]
            .samples
            .len();
        assert_eq!(full, MAX_SAMPLES, "the last viewed keeps every poll");
        // Viewing w0 again made it full, and thinned the least recently viewed now.
        for i in 0..(MAX_SAMPLES as i64) {
            b.record("w0", 1, 1000 + i, &poll(1.0));
        }
        assert!(b.get("w0").unwrap().record.rules[0].samples.len() > LEAN_SAMPLES);
        let (polls, _) = held(&b);
        assert!(polls <= bound, "{polls} polls held, bound {bound}");
    }

    #[test]
    fn the_summary_has_the_vars_in_force_and_each_rules_last_poll_without_a_view() {
        let b = Board::new();
        assert_eq!(b.summary("w"), None, "not seen");
        let mut start = started();
        if let Event::WatchStarted { vars, .. } = &mut start {
            vars.insert("region".into(), "eu".into());
        }
        b.record("w", 1, 1, &start);
        let s = b.summary("w").unwrap();
        assert_eq!(s.vars.get("region").map(String::as_str), Some("eu"));
        assert_eq!(s.rules[0].state, None, "not polled yet");
        // More polls than a lean watch keeps; the last one's value as it was.
        for i in 0..(LEAN_SAMPLES as i64 * 2) {
            let (v, state) = if i == 40 {
                (9.0, RuleState::Breached)
            } else {
                (0.3, RuleState::Ok)
            };
            b.record("w", 1, 2 + i, &poll_in(v, state));
        }
        b.record("w", 1, 500, &event("fired"));
        b.record("w", 1, 600, &finished());
        let s = b.summary("w").unwrap();
        assert_eq!(s.rules[0].name, "r");
        assert_eq!(s.rules[0].state, Some(RuleState::Ok));
        assert_eq!(s.rules[0].value, Some(0.3), "not 0.30000001 (f32)");
        assert!(s.rules[0].fired, "it fired during the watch");
        assert!(!lock(&b).watches["w"].full, "a summary is not a view");
    }

    /// The board's memory per watch with every chart full: 20,000 watches of 5
    /// rules, each polled `MAX_SAMPLES` times, 10 of them viewed (BENCHMARKS.md,
    /// issue 21). `cargo test --lib board_memory -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn board_memory_per_watch() {
        fn rss_kb() -> u64 {
            let s = std::fs::read_to_string("/proc/self/status").unwrap();
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap()
        }
        let mut start = started();
        if let Event::WatchStarted { rules, .. } = &mut start {
            let r = rules[0].clone();
            *rules = (0..5)
                .map(|i| crate::core::events::RuleInfo {
                    name: format!("r{i}"),
                    ..r.clone()
                })
                .collect();
        }
        let poll_of = |rule: usize, v: f64| match poll(v) {
            Event::Poll {
                samples,
                error,
                warnings,
                state,
                value,
                reference,
                insufficient,
                evidence,
                windows,
                ..
            } => Event::Poll {
                rule: format!("r{rule}"),
                samples,
                error,
                warnings,
                state,
                value,
                reference,
                insufficient,
                evidence,
                windows,
            },
            _ => unreachable!(),
        };
        let watches = 20_000;
        let before = rss_kb();
        let b = Board::new();
        for w in 0..watches {
            let id = format!("watch-{w}");
            b.record(&id, 1, 1, &start);
            if w % 2_000 == 0 {
                b.get(&id);
            }
            for i in 0..MAX_SAMPLES as i64 {
                for r in 0..5 {
                    b.record(&id, 1, 2 + i, &poll_of(r, i as f64));
                }
            }
        }
        let after = rss_kb();
        let (polls, events) = held(&b);
        println!(
            "{watches} watches: {} KB RSS, {:.1} KB a watch; {polls} polls and {events} events held",
            after - before,
            (after - before) as f64 / watches as f64
        );
    }

    #[test]
    fn the_board_is_bounded() {
        let b = Board::new();
        b.record("w", 1, 1, &started());
        b.get("w").expect("viewed: full history");
        for i in 0..(MAX_SAMPLES + 10) {
            b.record("w", 1, 2 + i as i64, &poll(i as f64));
        }
        let e = b.get("w").unwrap();
        assert!(e.from_start);
        let samples = &e.record.rules[0].samples;
        assert!(
            samples.len() <= MAX_SAMPLES && samples.len() > MAX_SAMPLES / 2,
            "{}",
            samples.len()
        );
        assert_eq!(samples[0].t, 2, "the chart still starts at the first poll");
        let peak = samples.iter().filter_map(|s| s.value).fold(0.0, f64::max);
        assert_eq!(
            peak,
            (MAX_SAMPLES + 9) as f64,
            "the peak is never merged away"
        );
        assert_eq!(e.events.len(), 1, "polls are not timeline events");
        for i in 0..(KEEP_FINISHED + 5) {
            let id = format!("f{i}");
            b.record(&id, 1, 1, &started());
            b.record(&id, 1, 2, &finished());
        }
        assert!(b.get("f0").is_none() && b.get("f4").is_none());
        assert!(b.get("f5").is_some() && b.get("w").is_some());
        b.record("late", 1, 60_000, &started());
        let late = b.get("late").unwrap();
        assert!(!late.from_start, "a resume");
        assert_eq!(late.record.started_at, 1, "the chart spans the whole watch");
        let e = b.get("f5").unwrap();
        assert_eq!(e.events[1].kind, "watch_finished");
        assert_eq!(e.events[1].text, "outcome=healthy exit_code=0 detail=fine");
    }

    /// The page's chart of a rule judged by `above_baseline:` alone (no `above:`),
    /// thinned past `MAX_SAMPLES`, keeps its highest values: the direction comes from
    /// `rule_info` (`Worse::of` the rule), not from whether `above:` is set.
    #[test]
    fn thinning_keeps_the_highest_values_of_an_above_baseline_rule() {
        let yaml = "watch:\n  duration: 5m\n  interval: 10s\nrollback:\n  command: [\"true\"]\nrules:\n  - name: r\n    query: rw_orders\n    baseline:\n      offset: 1w\n    above_baseline: 50%\n    for: 1m\n";
        let (spec, _) = crate::core::rules::load_str("r.yaml", yaml, &Default::default()).unwrap();
        let info = crate::run::watch::rule_info(&spec.rules[0], "");
        assert_eq!(info.above, None);
        let mut start = started();
        if let Event::WatchStarted { rules, .. } = &mut start {
            *rules = vec![info];
        }
        let b = Board::new();
        b.record("w", 1, 1, &start);
        b.get("w").expect("viewed: full history");
        for i in 0..(MAX_SAMPLES + 10) {
            let v = if i % 2 == 0 { 1.0 } else { 9.0 };
            b.record("w", 1, 2 + i as i64, &poll(v));
        }
        let e = b.get("w").unwrap();
        let samples = &e.record.rules[0].samples;
        assert!(samples.len() < MAX_SAMPLES + 10, "thinned");
        // Every merged pair held a 1 and a 9: the 9 is kept (the last, unmerged
        // samples may still be 1s).
        let merged = samples.len() - 10;
        assert!(
            samples[..merged].iter().all(|s| s.value == Some(9.0)),
            "{:?}",
            samples.iter().map(|s| s.value).collect::<Vec<_>>()
        );
    }
}
