//! The agent: runs every watch handed to it, persists what a restart needs, and
//! resumes unfinished watches when it starts again.
//!
//! Each watch runs the same loop as `rollwatch watch` (`watch::run_from`), with two
//! sinks the agent adds: `StoreSink`, which writes breach state and actions to the
//! store as the loop decides them (an action row is written by `ActionStarted`, which
//! the loop emits *before* the command starts), and the agent's log.
//!
//! # The restart rule
//! Time the agent was down is judged from Prometheus's history, never assumed:
//! - A resumed watch keeps its clock (time since it was created), its restored series
//!   (`since` unchanged, and the `breaches` window stored with the rule's last poll:
//!   `StoreSink` sends it with every poll mark, batched) and its pause flag. A
//!   `compare` rule's pools are refilled from history over the `window` up to the last
//!   poll (`resume::refill_pools`), never stored.
//! - For each rule, the polls missed between the last persisted poll and now (or the
//!   watch's end, if it ended meanwhile) are rebuilt from a range query at the rule's
//!   interval on the same grid the live polls use, and fed to the restored evaluator
//!   before any live poll (`Start::backlog`). A breach that lasted through the outage
//!   keeps its `since` and fires on time; one that ended resolves; one that began and
//!   lasted `for` during the outage fires at once. So a restart neither invents a
//!   breach (the data must show it) nor hides one (the data is read).
//! - If a rule's history cannot be read, its pending series are dropped (a breach must
//!   be seen again for a full `for`): the agent never assumes a breach continued
//!   through time it could not see. Firing series are kept, so a pause or a
//!   notification is not repeated.
//!
//! # Exactly once
//! An action row still `started` at resume means the agent died while the command ran.
//! It is not run again blindly: the watch ends `rollback_unknown` (or `pause_unknown`),
//! and a `*_failed` notification goes out, unless the rule file marks the command
//! `idempotent: true`; then it is re-run once (the old row becomes `rerun`, the new row
//! points at it, and a re-run that is itself interrupted is never run a third time).
//! A rollback row that *ended* (or a failed pause) on a watch still marked running
//! means the agent died before writing the watch's outcome: the outcome is taken from
//! the row, and nothing runs again.
//!
//! # Where things are
//! This file holds the agent (creating, cancelling, driving and stopping watches);
//! `resume` applies the two rules above at a restart; `sinks` are the agent's own
//! sinks (the store, its log, notifications); `exactly_once` is the claim-before-run
//! protocol and its crash points; `source` shares one Prometheus source between
//! watches; `metrics` are the agent's own; `lease` is which watches this agent owns.
//!
//! # Several agents (a shared store)
//! An agent runs only the watches whose lease it holds: the ones created through it
//! (unless another agent adopted one first) and the ones it adopts, about its share,
//! when their owner's lease expired. An adopted watch is resumed exactly as at a
//! restart (above): the time it was unowned is judged from Prometheus's history.
//! Leases are renewed in one statement per round (`lease_loop`); a watch whose lease
//! is lost, or not renewed within the trust window, stops on this agent at once and
//! writes nothing more (`watchdog`). With SQLite the one agent holds every lease.

mod clock;
pub mod exactly_once;
pub mod lease;
pub mod metrics;
pub mod outbox;
mod resume;
mod sinks;
pub mod source;

use crate::core::events::{now_ms, RuleState, Sink, Sinks};
use crate::core::rules::{self, WatchSpec};
use crate::io::prom::{Connection, PromClient};
use crate::io::store::{
    Created, Ending, Lease, NewNote, NewWatch, PollMark, Store, StoreError, StoreHandle,
    WatchRecord, WatchState,
};
use crate::run::verdict::{self, RuleStatus, Verdict};
use crate::run::watch::{self, Outcome, Signal, Start, WatchOptions, WatchSinks};
use exactly_once::StoreJournal;
use lease::LeaseBook;
use metrics::Metrics;
use outbox::{Herald, HeraldSink};
use resume::Resolution;
use sinks::{AgentLog, StoreSink};
use source::{phase, SharedSource};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

/// How often the last poll of every rule is written (in one transaction). Transitions
/// and actions are written at once; a lost last-poll only makes the catch-up after a
/// crash re-read a few seconds of history.
const POLL_FLUSH: Duration = Duration::from_secs(2);

/// How the agent is set up.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub rules_dir: PathBuf,
    pub prom: Connection,
    /// Bound on concurrent requests to Prometheus, across all watches.
    pub max_queries: usize,
    /// Share identical in-flight queries between watches.
    pub share_queries: bool,
    /// This agent's id in the store (unique per process).
    pub holder: String,
    /// How long a lease lasts without renewal (adoption happens after it).
    pub lease_ttl: Duration,
    /// A private directory where commands' supervisors record their exits, so that
    /// a restarted agent (or one adopting on the same host) knows how a command that
    /// outlived its agent ended (`io::supervise`). None: commands run unsupervised.
    pub action_dir: Option<PathBuf>,
}

/// The fewest watches an adoption round tries to take (more when the agent holds less
/// than its share): an agent that has just died still counts as alive for a TTL, so
/// its watches are adopted even by agents that already hold their share.
const ADOPT_MIN: usize = 64;

/// Queries in flight at once for the unauthenticated verdict routes, whatever
/// `--max-concurrent-queries` allows the watches.
pub const OPEN_VERDICT_QUERIES: usize = 4;

/// An id for this agent: `host:pid:start-ms`.
pub fn agent_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}:{}:{}", std::process::id(), now_ms())
}

/// Why a watch could not be created (each is a 4xx for the API).
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("{0}")]
    BadRequest(String),
    #[error("no rule file named `{0}` in the rules directory")]
    UnknownRules(String),
    #[error("a watch with id `{0}` exists with other rules or vars")]
    Conflict(String),
    #[error("the agent is shutting down")]
    ShuttingDown,
    /// The agent cannot answer (not the caller's fault): a 503 with this sentence.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] crate::io::store::StoreError),
}

/// A request for a watch (the API's body, validated there for unknown fields).
#[derive(Debug, Clone)]
pub struct WatchRequest {
    pub rules: String,
    pub vars: BTreeMap<String, String>,
    pub duration: Option<Duration>,
    pub id: Option<String>,
}

/// A rule's latest live state, for the API.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RuleLive {
    pub state: Option<RuleState>,
    #[serde(serialize_with = "crate::core::events::float::option")]
    pub value: Option<f64>,
    pub last_poll_ms: Option<i64>,
    pub error: Option<String>,
}

type Live = Arc<Mutex<BTreeMap<String, RuleLive>>>;

/// Makes one more sink for each watch the agent runs (e.g. the page's live record,
/// which lives on a floor above the agent).
pub type WatchSinkFactory = Arc<dyn Fn(&NewWatch) -> Box<dyn Sink> + Send + Sync>;

/// One client per (Prometheus URL, query timeout).
type SourceKey = (String, Duration);

struct Handle {
    signal: mpsc::Sender<Signal>,
    live: Live,
    /// Where the watch's clock is checked periodically: its Prometheus and its limit
    /// (set once the watch is judged here).
    clock: Option<(Arc<SharedSource<PromClient>>, Duration)>,
}

/// Last polls waiting to be written, merged per (watch, rule).
#[derive(Default)]
struct PollBook(Mutex<HashMap<(String, String), PollMark>>);

impl PollBook {
    fn mark(&self, p: PollMark) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match m.get_mut(&(p.id.clone(), p.rule.clone())) {
            Some(v) => {
                if p.at_ms >= v.at_ms {
                    v.at_ms = p.at_ms;
                    v.ok = p.ok;
                    v.windows = p.windows;
                }
                v.data |= p.data;
                // Tokens only grow: a mark of a lease taken again carries the new one.
                v.token = v.token.max(p.token);
            }
            None => {
                m.insert((p.id.clone(), p.rule.clone()), p);
            }
        }
    }
    fn take(&self) -> Vec<PollMark> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.drain().map(|(_, p)| p).collect()
    }
}

/// The running agent.
pub struct Agent {
    /// The store, reached from async code through `StoreHandle::call` only.
    pub store: StoreHandle,
    pub metrics: Metrics,
    pub leases: Arc<LeaseBook>,
    /// Poked when notifications were committed to the outbox (`outbox::deliver_loop`).
    outbox_wake: Arc<tokio::sync::Notify>,
    cfg: AgentConfig,
    limit: Arc<Semaphore>,
    sources: Mutex<HashMap<SourceKey, Arc<SharedSource<PromClient>>>>,
    /// The open verdict routes' own query limit and sources (`--open-verdicts`): a
    /// flood of unauthenticated verdicts waits on these, never on the watches' limit.
    open_limit: Arc<Semaphore>,
    open_sources: Mutex<HashMap<SourceKey, Arc<SharedSource<PromClient>>>>,
    running: Mutex<HashMap<String, Handle>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    polls: PollBook,
    create: tokio::sync::Mutex<()>,
    shutting_down: AtomicBool,
    ready: AtomicBool,
    ids: AtomicU64,
    extra_sinks: Mutex<Vec<WatchSinkFactory>>,
    /// The clock watches are timed on: the store's, as last read (see `clock`).
    clock: Mutex<crate::run::watch::ClockAnchor>,
    /// Until when this agent adopts nothing, after its clock was found off.
    clock_backoff: Mutex<Option<Instant>>,
}

fn unix(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A valid rule-file name or watch id: letters, digits, `-`, `_`, `.` (and `:` for ids).
fn valid_name(s: &str, extra: &[char]) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('.')
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') || extra.contains(&c)
        })
}

/// Loads a watch's snapshot (never the file as it is now).
pub fn load_snapshot(def: &NewWatch) -> Result<WatchSpec, String> {
    let sets: Vec<(String, String)> = def.vars.clone().into_iter().collect();
    let shown = format!("{}.yaml (snapshot of watch {})", def.rules, def.id);
    rules::load_str(
        &shown,
        &def.rules_text,
        &rules::LoadOptions {
            sets: &sets,
            check: false,
        },
    )
    .map(|(spec, _)| spec)
    .map_err(|e| e.to_string())
}

/// A rule file that does not load for an API request. A caller of a route that may be
/// open to anyone (`open`: the verdict routes) is told only the request's bad fields
/// (`LoadError::public_message`), never the file's patterns or its other variables;
/// a caller with the token gets every error's message (`api_message`). Neither gets
/// a line of the file (a command line may hold a secret) or a `--set` hint. The
/// agent's log says which rule file and what, without quoting the file.
fn refused(rules: &str, e: &rules::LoadError, open: bool) -> CreateError {
    let why: Vec<&str> = e.errors().map(|d| d.message.as_str()).collect();
    let public = if open {
        e.public_message()
    } else {
        e.api_message()
    };
    if e.errors().all(|d| d.public.is_some()) {
        info!(event = "request_refused", rules = %rules, reasons = ?why, "a request's vars do not fit the rule file");
    } else {
        warn!(event = "rule_file_invalid", rules = %rules, errors = why.len(), "a rule file does not load; run `rollwatch check` on it");
    }
    CreateError::BadRequest(public)
}

impl Agent {
    pub fn new(store: Arc<dyn Store>, metrics: Metrics, cfg: AgentConfig) -> Arc<Agent> {
        let leases = Arc::new(LeaseBook::new(
            cfg.holder.clone(),
            cfg.lease_ttl,
            store.shared(),
        ));
        Arc::new(Agent {
            store: StoreHandle::new(store),
            metrics,
            leases,
            outbox_wake: Arc::default(),
            limit: Arc::new(Semaphore::new(cfg.max_queries.max(1))),
            open_limit: Arc::new(Semaphore::new(OPEN_VERDICT_QUERIES)),
            cfg,
            sources: Mutex::default(),
            open_sources: Mutex::default(),
            running: Mutex::default(),
            tasks: Mutex::default(),
            polls: PollBook::default(),
            create: tokio::sync::Mutex::new(()),
            shutting_down: AtomicBool::new(false),
            ready: AtomicBool::new(false),
            ids: AtomicU64::new(0),
            extra_sinks: Mutex::default(),
            clock: Mutex::new(crate::run::watch::ClockAnchor {
                wall: SystemTime::now(),
                mono: Instant::now(),
            }),
            clock_backoff: Mutex::default(),
        })
    }

    /// Ready: started, not stopping, and every unfinished watch resumed (one waiting
    /// for a file that is not there yet keeps the agent out of its load balancer).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
            && !self.shutting_down.load(Ordering::SeqCst)
            && self.metrics.resume_waiting.get() == 0
    }

    /// Adds a sink to every watch started from now on (call it before `start`, so
    /// resumed watches get it too).
    pub fn add_watch_sink(&self, make: WatchSinkFactory) {
        lock(&self.extra_sinks).push(make);
    }

    /// The live per-rule state of a running watch.
    pub fn live(&self, id: &str) -> Option<BTreeMap<String, RuleLive>> {
        lock(&self.running).get(id).map(|h| lock(&h.live).clone())
    }

    /// `live` where the watch runs here; with a shared store, for a running watch
    /// another agent owns, the per-rule state its owner recorded (last polls, a few
    /// seconds old, and firing series; no values).
    pub async fn live_or_stored(&self, rec: &WatchRecord) -> BTreeMap<String, RuleLive> {
        if let Some(l) = self.live(&rec.def.id) {
            return l;
        }
        if !self.store.shared() || rec.state != WatchState::Running {
            return BTreeMap::new();
        }
        let id = rec.def.id.clone();
        let (Ok(polls), Ok(series)) = self
            .store
            .call(move |s| (s.polls(&id), s.series(&id)))
            .await
        else {
            return BTreeMap::new();
        };
        polls
            .into_iter()
            .map(|(rule, p)| {
                let firing = series
                    .iter()
                    .any(|s| s.rule == rule && s.phase == crate::core::eval::Phase::Firing);
                let (state, error) = if !p.last_ok {
                    (
                        RuleState::QueryError,
                        Some(
                            "the last query failed (as recorded by the agent running the watch)"
                                .into(),
                        ),
                    )
                } else if firing {
                    (RuleState::Breached, None)
                } else {
                    (RuleState::Ok, None)
                };
                let l = RuleLive {
                    state: Some(state),
                    value: None,
                    last_poll_ms: Some(p.last_ms),
                    error,
                };
                (rule, l)
            })
            .collect()
    }

    /// Resumes the unfinished watches this agent takes (with SQLite: all of them),
    /// starts renewing and adopting leases, and writing last polls.
    pub async fn start(self: &Arc<Self>) -> Result<usize, crate::io::store::StoreError> {
        *lock(&self.clock) = self.store.call(clock::read_store_clock).await?;
        self.reread_clock().await;
        let (adopted, sent) = self.adopt_once().await?;
        self.metrics.store_up.set(1);
        let n = self.take_adopted(adopted, sent).await;
        let agent = self.clone();
        tokio::spawn(async move { agent.lease_loop().await });
        tokio::spawn(outbox::deliver_loop(self.clone()));
        let weak = Arc::downgrade(self);
        let _ = std::thread::Builder::new()
            .name("rollwatch-lease-watchdog".into())
            .spawn(move || watchdog(weak));
        let agent = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(clock::check_every());
            tick.tick().await;
            loop {
                tick.tick().await;
                agent.clock_round().await;
            }
        });
        let agent = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL_FLUSH);
            loop {
                tick.tick().await;
                agent.flush_polls().await;
            }
        });
        self.ready.store(true, Ordering::SeqCst);
        Ok(n)
    }

    /// One adoption round: a heartbeat, then up to this agent's share of the running
    /// watches that nobody holds. Returns them and when it was sent.
    async fn adopt_once(&self) -> Result<(Vec<Lease>, Instant), StoreError> {
        let (holder, ttl) = (self.leases.holder.clone(), self.leases.ttl);
        let h = holder.clone();
        let agents = self.store.call(move |s| s.heartbeat(&h, ttl)).await?.max(1);
        if self.clock_backing_off() {
            return Ok((Vec::new(), Instant::now()));
        }
        let leases = self.leases.clone();
        self.store
            .call(move |s| {
                let running = s
                    .count_by_state()?
                    .into_iter()
                    .find(|(s, _)| *s == WatchState::Running)
                    .map(|(_, n)| n.max(0) as usize)
                    .unwrap_or(0);
                let want = running
                    .div_ceil(agents)
                    .saturating_sub(leases.count())
                    .max(ADOPT_MIN);
                let sent = Instant::now();
                Ok((s.adopt_leases(&holder, ttl, want)?, sent))
            })
            .await
    }

    /// Gives a lease just adopted back (or leaves it to the lease loop's retries).
    async fn give_back(&self, id: &str) {
        let (idc, holder) = (id.to_string(), self.leases.holder.clone());
        if self
            .store
            .call(move |s| s.release_lease(&idc, &holder))
            .await
            .is_err()
        {
            self.leases.release_failed(id);
        }
    }

    /// Starts the watches of leases just taken (resumed, as at a restart). Returns how
    /// many.
    async fn take_adopted(self: &Arc<Self>, adopted: Vec<Lease>, sent: Instant) -> usize {
        // The adopted watches' records in one read (not one per watch: an adoption
        // after an owner's death can be thousands of watches).
        let mut running: HashMap<String, WatchRecord> = match self
            .store
            .call(|s| s.list(Some(WatchState::Running)))
            .await
        {
            Ok(recs) => recs.into_iter().map(|r| (r.def.id.clone(), r)).collect(),
            Err(e) => {
                self.metrics.store_errors.inc();
                error!(event = "store_error", error = %e, "cannot read the adopted watches; their leases are given back");
                for l in &adopted {
                    self.give_back(&l.watch).await;
                }
                return 0;
            }
        };
        // Held (and trusted) at once, before any is started, so that the renewals
        // running meanwhile keep them all.
        let mut take = Vec::new();
        let mut back = Vec::new();
        for l in adopted {
            match running.remove(&l.watch) {
                Some(rec) if !lock(&self.running).contains_key(&l.watch) => {
                    self.leases.hold(&l, sent);
                    take.push((l, rec));
                }
                // Ended meanwhile, or its old loop here is still stopping: given back
                // for a later round.
                _ => back.push(l.watch),
            }
        }
        for id in back {
            self.give_back(&id).await;
        }
        self.metrics.leases_held.set(self.leases.count() as i64);
        let n = take.len();
        for (l, rec) in take {
            if self.store.shared() {
                self.metrics.lease_adoptions.inc();
                info!(event = "lease_adopted", watch = %l.watch, token = l.token, holder = %self.leases.holder,
                    "adopted a watch whose lease had expired (or that had none): resuming it from the store and Prometheus's history");
            }
            info!(event = "watch_resumed", watch = %rec.def.id, rules = %rec.def.rules, "resuming an unfinished watch");
            // Checked here, before the agent says it is ready: a watch that cannot be
            // resumed yet keeps it not ready until it can.
            let waiting = self.prepare(&rec.def).is_err();
            if waiting {
                self.metrics.resume_waiting.inc();
            }
            self.spawn(rec, Some(waiting));
        }
        n
    }

    /// Renews this agent's leases, three rounds per TTL, and (in a task of its own, so
    /// that a long adoption never delays a renewal) adopts expired ones as often.
    async fn lease_loop(self: Arc<Self>) {
        let adopter = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(adopter.leases.renew_every());
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if adopter.shutting_down.load(Ordering::SeqCst) {
                    return;
                }
                adopter.adopt_round().await;
            }
        });
        let mut tick = tokio::time::interval(self.leases.renew_every());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if self.shutting_down.load(Ordering::SeqCst) {
                return;
            }
            self.renew_round().await;
            self.retry_releases().await;
            self.metrics.leases_held.set(self.leases.count() as i64);
        }
    }

    /// One renewal round: ONE statement for all of this agent's leases, trusted from
    /// when it was sent; a held lease missing from the answer is lost.
    async fn renew_round(&self) {
        let (holder, ttl) = (self.leases.holder.clone(), self.leases.ttl);
        let sent = Instant::now();
        let ids = self.leases.ids();
        let r = tokio::time::timeout(
            self.leases.trust_window(),
            self.store.call(move |s| s.renew_leases(&holder, &ids, ttl)),
        )
        .await;
        let why = match r {
            Ok(Ok(renewed)) => {
                if let Some(d) = lease::renewal_delay() {
                    tokio::time::sleep(d).await;
                }
                self.metrics.store_up.set(1);
                self.metrics.lease_renewals.with_label_values(&["ok"]).inc();
                for id in self.leases.renewed(sent, &renewed) {
                    self.lose(&id, "its lease expired or was taken over by another agent");
                }
                return;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no answer within the trust window".to_string(),
        };
        self.metrics.store_up.set(0);
        self.metrics.store_errors.inc();
        self.metrics
            .lease_renewals
            .with_label_values(&["failed"])
            .inc();
        error!(event = "lease_renewal_failed", error = %why, held = self.leases.count(),
            "cannot renew this agent's leases; no action runs without a committed claim, and past the trust window its watches stop here");
    }

    /// Releases again the leases whose release failed (a watch given up while the
    /// store was down): another agent may adopt them at once, not only at expiry.
    async fn retry_releases(&self) {
        if self.leases.unreleased() == 0 {
            return;
        }
        let leases = self.leases.clone();
        self.store
            .call(move |s| {
                let holder = leases.holder.clone();
                leases.retry_releases(|id| s.release_lease(id, &holder));
            })
            .await;
    }

    async fn adopt_round(self: &Arc<Self>) {
        match self.adopt_once().await {
            Ok((adopted, sent)) => {
                if !adopted.is_empty() {
                    self.take_adopted(adopted, sent).await;
                }
                self.metrics.store_up.set(1)
            }
            Err(e) => {
                self.metrics.store_up.set(0);
                error!(event = "store_error", error = %e, "cannot look for watches to adopt");
            }
        }
    }

    /// Stops acting on watch `id` at once: its claims are refused, its loop stops and
    /// writes nothing more; whoever holds the lease next resumes it.
    fn lose(&self, id: &str, why: &str) {
        self.leases.mark_lost(id);
        warn!(event = "lease_lost", watch = %id, holder = %self.leases.holder, "stopped acting on this watch: {why}");
        if let Some(h) = lock(&self.running).get(id) {
            let _ = h.signal.try_send(Signal::Terminate);
        }
        self.metrics.leases_held.set(self.leases.count() as i64);
    }

    /// A write this agent may no longer make (see `exactly_once::write_fenced`); the
    /// watch's loop here stops.
    pub(super) fn write_fenced(&self, id: &str, what: &str, why: &str) {
        exactly_once::write_fenced(&self.metrics, &self.leases, id, what, why);
        if let Some(h) = lock(&self.running).get(id) {
            let _ = h.signal.try_send(Signal::Terminate);
        }
    }

    async fn flush_polls(&self) {
        // A watch that stopped here (lease lost, clock refused) writes nothing more:
        // its marks go (its new owner writes its own).
        let mut batch = self.polls.take();
        batch.retain(|p| self.leases.trusted(&p.id) == Some(p.token));
        if batch.is_empty() {
            return;
        }
        let holder = self.leases.holder.clone();
        let r = self
            .store
            .call(move |s| s.save_polls(&holder, &batch))
            .await;
        match r {
            Err(e) => error!(event = "store_error", error = %e, "cannot record last polls"),
            Ok(refused) => {
                for id in refused {
                    self.write_fenced(
                        &id,
                        "the last polls",
                        "the store refused them: the lease moved",
                    );
                }
            }
        }
    }

    /// The `baseline: before:` samples of each rule: the stored ones (a restart never
    /// shifts them), else taken now over the `D` before the watch was created (one
    /// range query through the shared source) and stored. A failed query is a warning
    /// (that rule's series follow `no_baseline`) and is not stored, so a restart tries
    /// again over the same window.
    async fn before_baselines<H: crate::io::prom::HistorySource>(
        &self,
        spec: &WatchSpec,
        def: &crate::io::store::NewWatch,
        source: &H,
    ) -> Vec<Option<Vec<crate::core::series::Sample>>> {
        use crate::core::rules::BaselineSource;
        if !spec
            .rules
            .iter()
            .any(|r| matches!(r.baseline, Some(BaselineSource::Before(_))))
        {
            return Vec::new();
        }
        let id = def.id.clone();
        let stored = match self.store.call(move |s| s.baselines(&id)).await {
            Ok(m) => m,
            Err(e) => {
                self.metrics.store_errors.inc();
                warn!(event = "store_error", watch = %def.id, error = %e, "cannot read the stored baselines; taking them again");
                Default::default()
            }
        };
        let mut out = Vec::with_capacity(spec.rules.len());
        for rule in &spec.rules {
            let Some(BaselineSource::Before(d)) = rule.baseline else {
                out.push(None);
                continue;
            };
            if let Some(values) = stored.get(&rule.name) {
                out.push(Some(
                    values
                        .iter()
                        .map(|(labels, value)| crate::core::series::Sample {
                            labels: labels.clone(),
                            value: *value,
                        })
                        .collect(),
                ));
                continue;
            }
            match crate::io::prom::history::mean_before(source, rule, d, def.created_ms).await {
                Ok(samples) => {
                    info!(event = "baseline", watch = %def.id, rule = %rule.name, series = samples.len(), "baseline taken over the {} before the watch", humantime::format_duration(d));
                    let values: Vec<(crate::core::series::Labels, f64)> = samples
                        .iter()
                        .map(|s| (s.labels.clone(), s.value))
                        .collect();
                    let (id, name) = (def.id.clone(), rule.name.clone());
                    let Some(fence) = self.leases.fence(&def.id) else {
                        self.write_fenced(
                            &def.id,
                            "the baseline",
                            "this agent no longer trusts its lease",
                        );
                        out.push(Some(samples));
                        continue;
                    };
                    let put = self
                        .store
                        .call(move |s| s.put_baselines(&id, &fence, &name, &values))
                        .await;
                    if let Err(e @ StoreError::Fenced { .. }) = &put {
                        self.write_fenced(&def.id, "the baseline", &e.to_string());
                    } else if put.is_err() {
                        self.metrics.store_errors.inc();
                        warn!(event = "store_error", watch = %def.id, rule = %rule.name, "cannot store the baseline; a restart takes it again over the same window");
                    }
                    out.push(Some(samples));
                }
                Err(e) => {
                    warn!(event = "baseline_failed", watch = %def.id, rule = %rule.name, error = %e, "the baseline could not be taken; this rule's series follow `no_baseline`");
                    out.push(Some(Vec::new()));
                }
            }
        }
        out
    }

    /// The text of the rule file `name` (a stem) in the rules directory.
    fn rule_file(&self, name: &str) -> Result<String, CreateError> {
        let path = ["yaml", "yml"]
            .iter()
            .map(|ext| self.cfg.rules_dir.join(format!("{name}.{ext}")))
            .find(|p| p.is_file())
            .ok_or_else(|| CreateError::UnknownRules(name.to_string()))?;
        std::fs::read_to_string(&path).map_err(|e| {
            // The path and the OS's reason go to the log only: callers may be anyone.
            warn!(event = "rule_file_unreadable", path = %path.display(), error = %e, "cannot read a rule file");
            CreateError::Unavailable(format!(
                "the rule file `{name}` cannot be read (the agent's log says why)"
            ))
        })
    }

    /// The rule file `rules` with `vars`, loaded by the same loader as a watch (so an
    /// unknown var or one its `pattern` refuses is a `BadRequest`), every rule queried
    /// once now. Nothing is stored and no command can run. `open`: the caller may be
    /// anyone (`--open-verdicts`), so a refusal names only the request's bad fields.
    pub async fn verdict_once(
        &self,
        rules: &str,
        vars: BTreeMap<String, String>,
        open: bool,
    ) -> Result<Vec<RuleStatus>, CreateError> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(CreateError::ShuttingDown);
        }
        if !valid_name(rules, &[]) {
            return Err(CreateError::BadRequest(format!(
                "invalid rule file name {rules:?}: use the file's stem (letters, digits, `-`, `_`, `.`)"
            )));
        }
        let text = self.rule_file(rules)?;
        let sets: Vec<(String, String)> = vars.into_iter().collect();
        let (spec, _) = rules::load_str(
            &format!("{rules}.yaml"),
            &text,
            &rules::LoadOptions {
                sets: &sets,
                check: false,
            },
        )
        .map_err(|e| refused(rules, &e, open))?;
        let source = self.source_in(&spec, open).map_err(|e| {
            if open {
                warn!(event = "verdict_source_failed", rules = %rules, error = %e, "cannot query Prometheus for a verdict");
                CreateError::Unavailable(
                    "the agent cannot query Prometheus for this rule file".into(),
                )
            } else {
                CreateError::BadRequest(e)
            }
        })?;
        Ok(verdict::evaluate_once(&spec, &*source, open).await)
    }

    /// A watch's verdict so far (running) or at its end: `(verdict, final, rules)`.
    /// Running: a rule that fired (or any action taken) fails it, a rule whose last
    /// poll failed or that has not been polled yet makes it inconclusive, else it
    /// passes so far. Ended: from its outcome (healthy passes; any action or an
    /// action of unknown effect fails; cancelled, interrupted or inconclusive is
    /// inconclusive).
    ///
    /// `open`: the caller may be anyone: a failed query is said, not quoted.
    pub async fn watch_verdict(
        &self,
        rec: &WatchRecord,
        open: bool,
    ) -> Result<(Verdict, bool, Vec<RuleStatus>), crate::io::store::StoreError> {
        let live = self.live_or_stored(rec).await;
        let spec = load_snapshot(&rec.def).ok();
        let rules: Vec<RuleStatus> = spec
            .iter()
            .flat_map(|s| s.rules.iter())
            .map(|r| {
                let l = live.get(&r.name).cloned().unwrap_or_default();
                let error = match (&l.state, rec.state) {
                    (Some(RuleState::QueryError), _) if open => {
                        Some("the last query failed (the agent's log says why)".into())
                    }
                    (Some(RuleState::QueryError), _) => {
                        Some(l.error.clone().unwrap_or_else(|| "the query failed".into()))
                    }
                    (None, WatchState::Running) => Some("not polled yet".into()),
                    _ => None,
                };
                RuleStatus {
                    name: r.name.clone(),
                    value: l.value,
                    threshold: r.condition(),
                    breached: l.state == Some(RuleState::Breached),
                    error,
                    evidence: Default::default(),
                }
            })
            .collect();
        let (v, fin) = match rec.state {
            WatchState::Running => {
                let id = rec.def.id.clone();
                let acted = !self.store.call(move |s| s.actions(&id)).await?.is_empty();
                let v = if acted {
                    Verdict::Fail
                } else {
                    verdict::verdict_of(&rules)
                };
                (v, false)
            }
            WatchState::Cancelled => (Verdict::Inconclusive, true),
            WatchState::Finished => {
                let v = match rec.outcome.as_deref() {
                    Some("healthy") => Verdict::Pass,
                    Some(
                        "rolled_back" | "rollback_failed" | "paused" | "pause_failed"
                        | "rollback_unknown" | "pause_unknown",
                    ) => Verdict::Fail,
                    _ => Verdict::Inconclusive,
                };
                (v, true)
            }
        };
        Ok((v, fin, rules))
    }

    /// Validates and stores a watch, then starts it. `Ok((record, true, warnings))` if
    /// it is new; the warnings (a rule that can never fire in the watch's duration, a
    /// clock off Prometheus's) are logged and returned to the caller.
    pub async fn create(
        self: &Arc<Self>,
        req: WatchRequest,
    ) -> Result<(WatchRecord, bool, Vec<String>), CreateError> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(CreateError::ShuttingDown);
        }
        if !valid_name(&req.rules, &[]) {
            return Err(CreateError::BadRequest(format!(
                "invalid rule file name {:?}: use the file's stem (letters, digits, `-`, `_`, `.`)",
                req.rules
            )));
        }
        if let Some(id) = &req.id {
            if !valid_name(id, &[':']) {
                return Err(CreateError::BadRequest(format!(
                    "invalid id {id:?}: up to 128 letters, digits, `-`, `_`, `.`, `:`"
                )));
            }
        }
        let text = self.rule_file(&req.rules)?;
        // On the store's clock (see `clock`): every agent times the watch the same.
        // Before `start` has read it, it is read now.
        if !self.ready.load(Ordering::SeqCst) {
            *lock(&self.clock) = self.store.call(clock::read_store_clock).await?;
        }
        let created_ms = self.clock_now_ms();
        let id = req.id.clone().unwrap_or_else(|| {
            let n = self.ids.fetch_add(1, Ordering::SeqCst);
            format!("{}-{created_ms}-{n}", req.rules)
        });
        let mut def = NewWatch {
            id,
            rules: req.rules.clone(),
            rules_text: text,
            vars: req.vars.clone(),
            duration_ms: 0,
            created_ms,
        };
        let sets: Vec<(String, String)> = def.vars.clone().into_iter().collect();
        let (spec, _) = rules::load_str(
            &format!("{}.yaml", def.rules),
            &def.rules_text,
            &rules::LoadOptions {
                sets: &sets,
                check: false,
            },
        )
        .map_err(|e| refused(&def.rules, &e, false))?;
        for (section, cmd) in [("rollback", &spec.rollback), ("pause", &spec.pause)] {
            if let Some(cmd) = cmd {
                if crate::io::action::find_program(&cmd.argv[0]).is_none() {
                    return Err(CreateError::BadRequest(format!(
                        "the {section} command's program `{}` is not found or not executable on the agent; a watch that cannot roll back must not start",
                        cmd.argv[0]
                    )));
                }
            }
        }
        let source = self.source_for(&spec).map_err(CreateError::BadRequest)?;
        let duration = req.duration.unwrap_or(spec.duration);
        def.duration_ms = duration.as_millis() as i64;
        if def.duration_ms <= 0 {
            return Err(CreateError::BadRequest(
                "the duration must be longer than 0s".into(),
            ));
        }
        let mut warnings: Vec<String> = rules::lint::never_fires(&spec, duration)
            .iter()
            .map(|n| format!("{n}; {}", n.help()))
            .collect();
        // The clock check (`clock`): polls ask Prometheus about "now" by the clock
        // the watch is timed on. The same check runs at a resume, an adoption and
        // every `clock::CHECK_EVERY` while the watch runs.
        let limit = clock::limit(spec.max_blind, duration);
        match self.watch_clock_skew(&source).await {
            Ok(skew) => match skew.judge(limit) {
                crate::io::prom::SkewVerdict::Fine => {}
                crate::io::prom::SkewVerdict::Warn => warnings.push(format!(
                    "{}: every poll asks Prometheus about a moment that far off; sync the store's and Prometheus's clocks (NTP)",
                    clock::describe(&skew)
                )),
                crate::io::prom::SkewVerdict::Refuse => {
                    self.metrics.clock_refusals.inc();
                    return Err(CreateError::BadRequest(format!(
                        "{}, more than the watch's max_blind or duration ({}): every poll would judge the wrong moment; sync the store's and Prometheus's clocks (NTP)",
                        clock::describe(&skew),
                        humantime::format_duration(limit)
                    )))
                }
            },
            Err(e) => warnings.push(format!(
                "cannot compare the agent's clock with Prometheus's ({e}); watching anyway"
            )),
        }
        // One creation at a time: two POSTs with one id can't both start a watch.
        let _guard = self.create.lock().await;
        let d = def.clone();
        let created = self.store.call(move |s| s.create(&d)).await?;
        match created {
            Created::New(rec) => {
                info!(event = "watch_created", watch = %rec.def.id, rules = %rec.def.rules, vars = ?rec.def.vars, "watch created");
                for w in &warnings {
                    warn!(event = "watch_warning", watch = %rec.def.id, "{w}");
                }
                let (id, holder, ttl) = (
                    rec.def.id.clone(),
                    self.leases.holder.clone(),
                    self.leases.ttl,
                );
                let sent = Instant::now();
                let lease = self
                    .store
                    .call(move |s| s.acquire_lease(&id, &holder, ttl))
                    .await;
                match lease {
                    Ok(Some(l)) => {
                        self.leases.hold(&l, sent);
                        self.metrics.leases_held.set(self.leases.count() as i64);
                        self.spawn(rec.clone(), None);
                    }
                    Ok(None) => {
                        info!(event = "watch_owned_elsewhere", watch = %rec.def.id, "another agent took this watch's lease first; it runs there")
                    }
                    Err(e) => {
                        self.metrics.store_errors.inc();
                        error!(event = "store_error", watch = %rec.def.id, error = %e, "cannot take the new watch's lease; an agent adopts it at its next round")
                    }
                }
                Ok((rec, true, warnings))
            }
            Created::Existing(rec) => {
                if rec.def.rules != def.rules || rec.def.vars != def.vars {
                    return Err(CreateError::Conflict(rec.def.id));
                }
                Ok((rec, false, Vec::new()))
            }
        }
    }

    /// Cancels a running watch; no command starts because of it (one already running
    /// finishes first). Returns false if it is not running.
    pub async fn cancel(&self, id: &str) -> bool {
        let tx = lock(&self.running).get(id).map(|h| h.signal.clone());
        let Some(tx) = tx else {
            return false;
        };
        let _ = tx.send(Signal::Interrupt).await;
        // Bounded wait for it to end, so the answer usually shows it cancelled.
        for _ in 0..40 {
            if !lock(&self.running).contains_key(id) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }

    /// Stops every watch (a running command finishes first) and persists; watches
    /// stay `running` in the store and resume at the next start.
    pub async fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        let senders: Vec<_> = lock(&self.running)
            .values()
            .map(|h| h.signal.clone())
            .collect();
        for tx in senders {
            let _ = tx.try_send(Signal::Terminate);
        }
        let tasks = std::mem::take(&mut *lock(&self.tasks));
        for t in tasks {
            let _ = t.await;
        }
        self.flush_polls().await;
    }

    fn source_for(&self, spec: &WatchSpec) -> Result<Arc<SharedSource<PromClient>>, String> {
        self.source_in(spec, false)
    }

    /// The source of `spec`'s Prometheus under the watches' query limit, or, `open`,
    /// under the open verdict routes' own.
    fn source_in(
        &self,
        spec: &WatchSpec,
        open: bool,
    ) -> Result<Arc<SharedSource<PromClient>>, String> {
        let (sources, limit) = if open {
            (&self.open_sources, &self.open_limit)
        } else {
            (&self.sources, &self.limit)
        };
        let url = self
            .cfg
            .prom
            .prometheus
            .clone()
            .or_else(|| spec.prometheus.clone())
            .unwrap_or_default();
        let key = (url, spec.query_timeout);
        if let Some(s) = lock(sources).get(&key) {
            return Ok(s.clone());
        }
        let client = self
            .cfg
            .prom
            .client(spec.prometheus.as_deref(), spec.query_timeout)?;
        let s = Arc::new(SharedSource::new(
            client,
            limit.clone(),
            self.cfg.share_queries,
            self.metrics.clone(),
        ));
        lock(sources).insert(key, s.clone());
        Ok(s)
    }

    /// Runs a watch; `resumed` is Some(already counted as waiting) at a restart.
    fn spawn(self: &Arc<Self>, rec: WatchRecord, resumed: Option<bool>) {
        let (tx, rx) = mpsc::channel(4);
        let live: Live = Arc::default();
        lock(&self.running).insert(
            rec.def.id.clone(),
            Handle {
                signal: tx,
                live: live.clone(),
                clock: None,
            },
        );
        let agent = self.clone();
        let h = tokio::spawn(async move {
            let id = rec.def.id.clone();
            agent.drive(&rec, resumed, rx, live).await;
            lock(&agent.running).remove(&id);
            // Ended, suspended or lost here: the lease goes back (if this agent still
            // holds it), so that another agent may take the watch at once.
            agent.leases.forget(&id);
            agent.leases.clear_lost(&id);
            agent.metrics.leases_held.set(agent.leases.count() as i64);
            let holder = agent.leases.holder.clone();
            let idc = id.clone();
            let r = match lease::release_fault() {
                true => None,
                false => Some(
                    agent
                        .store
                        .call(move |s| s.release_lease(&idc, &holder))
                        .await,
                ),
            };
            if !matches!(r, Some(Ok(()))) {
                // Not renewed (only held leases are), so it expires at worst; the lease
                // loop releases it again meanwhile so another agent may adopt it sooner.
                agent.leases.release_failed(&id);
            }
        });
        let mut tasks = lock(&self.tasks);
        tasks.retain(|t| !t.is_finished());
        tasks.push(h);
    }

    /// Records how a watch ended (retried a few times: an ending that cannot be
    /// written leaves the watch to be resumed, and its action rows still decide it).
    async fn record_ending(&self, id: &str, e: &Ending) -> bool {
        self.record_ending_noted(id, e, Vec::new()).await
    }

    /// `record_ending`, with the notifications that report it in its transaction.
    async fn record_ending_noted(&self, id: &str, e: &Ending, notes: Vec<NewNote>) -> bool {
        for attempt in 1..=3 {
            let Some(fence) = self.leases.fence(id) else {
                self.write_fenced(
                    id,
                    "how the watch ended",
                    "this agent no longer holds (or trusts) the watch's lease",
                );
                return false;
            };
            let (id2, e2, notes2) = (id.to_string(), e.clone(), notes.clone());
            let r = self
                .store
                .call(move |s| {
                    s.write_noted(&id2, &fence, crate::io::store::Noted::Finish(&e2), &notes2)
                })
                .await;
            match r {
                Ok(()) => {
                    exactly_once::crash_point("ending_saved");
                    if !notes.is_empty() {
                        self.outbox_wake.notify_one();
                    }
                    return true;
                }
                Err(e @ StoreError::Fenced { .. }) => {
                    self.write_fenced(id, "how the watch ended", &e.to_string());
                    return false;
                }
                Err(e) => {
                    self.metrics.store_errors.inc();
                    error!(event = "store_error", watch = %id, attempt, error = %e, "cannot record how the watch ended");
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        false
    }

    /// Waits before a resume is tried again, counting the watch as waiting (the agent
    /// is not ready meanwhile). False if a signal came first: the watch is then
    /// cancelled (Interrupt) or left for the next start (Terminate).
    async fn wait_to_retry(
        &self,
        id: &str,
        waiting: &mut bool,
        signals: &mut mpsc::Receiver<Signal>,
    ) -> bool {
        if !*waiting {
            *waiting = true;
            self.metrics.resume_waiting.inc();
        }
        let sig = tokio::select! {
            sig = signals.recv() => sig,
            _ = tokio::time::sleep(RESUME_RETRY) => return true,
        };
        self.metrics.resume_waiting.dec();
        *waiting = false;
        if sig == Some(Signal::Interrupt) {
            self.record_ending(id, &cancelled()).await;
        }
        false
    }

    /// The snapshot and the Prometheus source of a watch.
    fn prepare(
        &self,
        def: &NewWatch,
    ) -> Result<(WatchSpec, Arc<SharedSource<PromClient>>), String> {
        let spec = load_snapshot(def)?;
        let source = self.source_for(&spec)?;
        Ok((spec, source))
    }

    /// Runs one watch to its end and records its ending (or leaves it to resume at the
    /// next start, when the agent stops).
    async fn drive(
        self: &Arc<Self>,
        rec: &WatchRecord,
        resumed: Option<bool>,
        mut signals: mpsc::Receiver<Signal>,
        live: Live,
    ) {
        let def = &rec.def;
        let id = def.id.as_str();
        // At a restart, what fails here may be transient (a token or CA file not
        // mounted yet): the watch stays unfinished, the agent is not ready, and it is
        // tried again. A new watch was checked when it was created.
        let mut waiting = resumed == Some(true);
        let resumed = resumed.is_some();
        let (spec, source) = loop {
            match self.prepare(def) {
                Ok(p) => break p,
                Err(detail) if !resumed => {
                    error!(event = "watch_invalid", watch = %id, "{detail}");
                    let ending = Ending {
                        state: WatchState::Finished,
                        outcome: "invalid".into(),
                        exit_code: crate::core::exit::USAGE,
                        detail,
                        at_ms: now_ms(),
                    };
                    self.record_ending(id, &ending).await;
                    return;
                }
                Err(e) => {
                    error!(event = "resume_waiting", watch = %id, error = %e, retry_s = RESUME_RETRY.as_secs(),
                        "cannot resume this watch yet: it stays unfinished and is tried again (the agent is not ready meanwhile)");
                    if self.wait_to_retry(id, &mut waiting, &mut signals).await {
                        continue;
                    }
                    return;
                }
            }
        };
        if waiting {
            self.metrics.resume_waiting.dec();
            info!(event = "watch_resumed", watch = %id, "the watch could be resumed");
        }
        let limit = clock::limit(
            spec.max_blind,
            Duration::from_millis(def.duration_ms.max(0) as u64),
        );
        // A resumed or adopted watch runs the creation's clock check first: an agent
        // whose watch clock is off Prometheus's does not judge it (nor end it).
        if resumed && !self.clock_allows(id, &source, limit).await {
            self.leases.mark_lost(id);
            return;
        }
        if let Some(h) = lock(&self.running).get_mut(id) {
            h.clock = Some((source.clone(), limit));
        }
        let opts = WatchOptions {
            duration: Duration::from_millis(def.duration_ms.max(0) as u64),
            dry_run: false,
            prometheus: source.inner().shown_url().to_string(),
        };
        let mut others = Sinks::default();
        others.push(AgentLog { id: id.to_string() });
        for make in lock(&self.extra_sinks).iter() {
            others.0.push(make(def));
        }
        // Notifications go through the store's outbox (`outbox`): rendered first,
        // written with the state change they report, delivered after its commit.
        let deliveries = None;
        let herald = (!spec.notify.is_empty()).then(|| {
            Herald::new(
                spec.notify.clone(),
                // The agent's own record of the watch (`GET` it on the agent's address).
                format!("/api/v1/watches/{id}"),
                self.outbox_wake.clone(),
                self.leases.clone(),
                id,
            )
        });
        if let Some(h) = &herald {
            others.0.insert(0, Box::new(HeraldSink(h.clone())));
        }
        let store_sink = StoreSink {
            id: id.to_string(),
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            agent: self.clone(),
            live,
            windows: Default::default(),
            herald: herald.clone(),
            notify_fired: Vec::new(),
        };
        let mut from = Start {
            aligned: Some(phase),
            journal: Some(Box::new(StoreJournal {
                store: self.store.clone(),
                metrics: self.metrics.clone(),
                id: id.to_string(),
                created_ms: def.created_ms,
                action: None,
                leases: self.leases.clone(),
                token: None,
                herald: herald.clone(),
                status_dir: self.cfg.action_dir.clone(),
            })),
            ..Start::default()
        };
        if resumed {
            let mut waiting = false;
            loop {
                let resolved = self
                    .resolve_actions(&spec, def, &mut others, &opts, herald.as_ref())
                    .await;
                let restored = match resolved {
                    Ok(Resolution::Continue {
                        paused_by,
                        pause_failed,
                    }) => {
                        from.paused_by = paused_by;
                        from.pause_failed = pause_failed;
                        // Read after the resolution (a re-run can take minutes): the
                        // catch-up covers the time up to here, on the watch clock.
                        self.restore(&spec, def, &source, self.clock_now_ms()).await
                    }
                    Ok(Resolution::End { outcome, recorded }) => {
                        if waiting {
                            self.metrics.resume_waiting.dec();
                        }
                        if !recorded {
                            // The ending's notifications go in its transaction.
                            let notes = herald.as_ref().map_or_else(Vec::new, |h| {
                                h.ahead(now_ms(), &outcome.finished_event())
                            });
                            if !self
                                .record_ending_noted(id, &ending_of(&outcome), notes)
                                .await
                            {
                                if let Some(h) = &herald {
                                    h.forget_ahead();
                                }
                            }
                        }
                        let mut sinks = WatchSinks {
                            sinks: others,
                            deliveries,
                        };
                        finish_sinks(&mut sinks, &outcome).await;
                        return;
                    }
                    Err(e) => Err(e),
                };
                let e = match restored {
                    Ok(r) => {
                        from.evals = Some(r.evals);
                        from.backlog = r.backlog;
                        from.judged = Some(r.judged);
                        break;
                    }
                    Err(e) => e,
                };
                // The store could not be read or written: nothing is decided and
                // nothing runs. The watch stays unfinished, the agent not ready, and
                // it is tried again.
                self.metrics.store_errors.inc();
                error!(event = "store_error", watch = %id, error = %e, retry_s = RESUME_RETRY.as_secs(),
                    "cannot read this watch's state to resume it; it stays unfinished and is tried again (the agent is not ready meanwhile)");
                if self.wait_to_retry(id, &mut waiting, &mut signals).await {
                    continue;
                }
                return;
            }
            if waiting {
                self.metrics.resume_waiting.dec();
            }
        }
        // The watch's clock is the store's: its elapsed time is read on it when the
        // live loop starts, then on the monotonic clock (`clock`).
        from.origin = Some(unix(def.created_ms));
        from.clock = Some(self.clock_anchor());
        from.baselines = self.before_baselines(&spec, def, &*source).await;
        let mut sinks = WatchSinks {
            sinks: others,
            deliveries,
        };
        // The ending is recorded by `StoreSink` before any sink after it sees it; the
        // notifications are rendered just before it (`HeraldSink`, first), so that it
        // writes them in the same transaction.
        let at = usize::from(herald.is_some());
        sinks.sinks.0.insert(at, Box::new(store_sink));
        watch::run_session(&spec, source, &opts, from, &mut signals, &mut sinks).await;
    }
}

/// Stops, at once, every watch whose lease is past its trust window: on its own
/// thread, so that a busy or blocked runtime cannot delay it.
fn watchdog(agent: std::sync::Weak<Agent>) {
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let Some(agent) = agent.upgrade() else {
            return;
        };
        for id in agent.leases.expired(Instant::now()) {
            agent.lose(
                &id,
                "its lease was not renewed within the trust window (the store did not answer in time, or this agent was paused)",
            );
        }
    }
}

/// How long a watch that cannot be resumed yet waits before it is tried again.
const RESUME_RETRY: Duration = Duration::from_secs(5);

/// The stored ending of an outcome.
fn ending_of(outcome: &Outcome) -> Ending {
    Ending {
        state: WatchState::Finished,
        outcome: outcome.name().to_string(),
        exit_code: outcome.exit_code(),
        detail: outcome.describe(),
        at_ms: now_ms(),
    }
}

fn cancelled() -> Ending {
    Ending {
        state: WatchState::Cancelled,
        outcome: "cancelled".into(),
        exit_code: crate::core::exit::SIGINT,
        detail: "cancelled through the API; no command ran because of it".into(),
        at_ms: now_ms(),
    }
}

async fn finish_sinks(sinks: &mut WatchSinks, outcome: &Outcome) {
    sinks.sinks.emit(now_ms(), &outcome.finished_event());
    sinks.finish().await;
}
