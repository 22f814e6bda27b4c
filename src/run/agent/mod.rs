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
//! This file holds the `Agent` itself and its configuration; each concern is a file
//! of its own: `create` (a new watch and its pre-flight), `drive` (running one watch
//! to its end), `rounds` (start, lease renewal and adoption, flushing last polls,
//! the watchdog, shutdown), `views` (the live view and verdicts), `baselines`
//! (`before:` samples), `resume` (the two rules above at a restart), `sinks` (the
//! agent's own sinks: the store, its log), `exactly_once` (the claim-before-run
//! protocol and its crash points), `source` (one Prometheus source shared between
//! watches), `metrics`, `lease` (which watches this agent owns), `clock`, `outbox`,
//! and `types`/`snapshot` (what they all share; neither imports this file).
//!
//! # Several agents (a shared store)
//! An agent runs only the watches whose lease it holds: the ones created through it
//! (unless another agent adopted one first) and the ones it adopts, about its share,
//! when their owner's lease expired. An adopted watch is resumed exactly as at a
//! restart (above): the time it was unowned is judged from Prometheus's history.
//! Leases are renewed in one statement per round (`lease_loop`); a watch whose lease
//! is lost, or not renewed within the trust window, stops on this agent at once and
//! writes nothing more (`watchdog`). With SQLite the one agent holds every lease.

mod baselines;
mod catch_up;
mod clock;
mod create;
mod drive;
pub mod exactly_once;
pub mod lease;
pub mod metrics;
mod old_command;
mod orders;
pub mod outbox;
mod pre_existing;
mod resume;
mod rounds;
mod sinks;
mod snapshot;
pub mod source;
mod types;
mod views;

pub use snapshot::load_snapshot;
pub use types::{
    agent_id, batch_size, BatchError, CreateError, RuleLive, WatchRequest, WatchSinkFactory,
    MAX_BATCH, OPEN_VERDICT_QUERIES,
};

use crate::io::prom::{Connection, PromClient};
use crate::io::store::{Store, StoreHandle};
use lease::LeaseBook;
use metrics::Metrics;
use source::SharedSource;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use types::{lock, Handle, PollBook, SourceKey};

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

/// The running agent.
pub struct Agent {
    /// The store, reached from async code through `StoreHandle::call` only.
    pub store: StoreHandle,
    pub metrics: Metrics,
    pub leases: Arc<LeaseBook>,
    /// Poked when notifications were committed to the outbox (`outbox::deliver_loop`).
    outbox_wake: Arc<tokio::sync::Notify>,
    /// Wakes `orders_loop` when an order reached this agent directly.
    orders_wake: tokio::sync::Notify,
    /// Orders already handed to a watch by this process (`orders.rs`).
    delivered: Mutex<std::collections::HashSet<i64>>,
    cfg: AgentConfig,
    limit: Arc<Semaphore>,
    sources: Mutex<HashMap<SourceKey, Arc<SharedSource<PromClient>>>>,
    /// The open verdict routes' own query limit and sources (`--open-verdicts`): a
    /// flood of unauthenticated verdicts waits on these, never on the watches' limit.
    open_limit: Arc<Semaphore>,
    open_sources: Mutex<HashMap<SourceKey, Arc<SharedSource<PromClient>>>>,
    running: Mutex<HashMap<String, Handle>>,
    tasks: Mutex<types::Tasks>,
    polls: Arc<PollBook>,
    /// The running watches' rule snapshots, one per rule file text and vars.
    specs: snapshot::SpecCache,
    create: tokio::sync::Mutex<()>,
    shutting_down: Arc<AtomicBool>,
    ready: AtomicBool,
    ids: AtomicU64,
    extra_sinks: Mutex<Vec<WatchSinkFactory>>,
    /// The clock watches are timed on: the store's, as last read (see `clock`).
    clock: Mutex<crate::run::watch::ClockAnchor>,
    /// Until when this agent adopts nothing, after its clock was found off.
    clock_backoff: Mutex<Option<Instant>>,
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
            orders_wake: tokio::sync::Notify::new(),
            delivered: Mutex::default(),
            limit: Arc::new(Semaphore::new(cfg.max_queries.max(1))),
            open_limit: Arc::new(Semaphore::new(OPEN_VERDICT_QUERIES)),
            cfg,
            sources: Mutex::default(),
            open_sources: Mutex::default(),
            running: Mutex::default(),
            tasks: Mutex::default(),
            polls: Arc::default(),
            specs: snapshot::SpecCache::default(),
            create: tokio::sync::Mutex::new(()),
            shutting_down: Arc::default(),
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
}
