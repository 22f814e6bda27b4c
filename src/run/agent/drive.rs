//! Running one watch: `spawn` starts its task (and gives its lease back at the end),
//! `drive` prepares it (snapshot, source, clock check at a resume), resolves its
//! action rows at a restart (`resume`), adds the agent's sinks and runs the loop;
//! its ending is recorded with the notifications that report it
//! (`record_ending_noted`); `cancel` stops it through its signal channel.

use super::exactly_once::{self, StoreJournal};
use super::lease;
use super::outbox::{Herald, HeraldSink};
use super::resume::Resolution;
use super::sinks::{AgentLog, SinkLink, StoreSink};
use super::source::{phase, SharedSource};
use super::types::{cancelled, ending_of, lock, over_cores, unix, Handle, Live};
use super::Agent;
use crate::core::events::{now_ms, Sinks};
use crate::core::rules::WatchSpec;
use crate::io::prom::PromClient;
use crate::io::store::{Ending, NewNote, NewWatch, StoreError, WatchRecord};
use crate::run::channel;
use crate::run::watch::{self, Outcome, Signal, Start, WatchOptions, WatchSinks};
use std::sync::Arc;
use std::time::Duration;
use tracing::{error, info};

/// A watch's rule snapshot, loaded (shared with the watches of the same rule file
/// and vars: `SpecCache`), and the shared source it polls.
pub(super) type Prepared = (Arc<WatchSpec>, Arc<SharedSource<PromClient>>);

/// How a watch's loop begins.
pub(super) enum Begin {
    /// Created here, with the snapshot its creation loaded and checked.
    New(Box<Prepared>),
    /// Resumed at a start or adopted, with its snapshot loaded, or None when it could
    /// not be yet (a file it names not there): it is counted as waiting, keeps the
    /// agent not ready, and is tried again. With its rows, when they were read with
    /// the others' (`Store::resume_reads`); a retry reads them again.
    Resumed(
        Option<Box<Prepared>>,
        Option<Box<crate::io::store::ResumeRead>>,
    ),
}

/// What a watch's task is started with (`spawn`), handed whole to `drive`.
pub(super) struct Beginning {
    pub(super) rec: WatchRecord,
    pub(super) begin: Begin,
    pub(super) signals: channel::Receiver<Signal>,
    pub(super) orders: channel::Receiver<crate::run::watch::OrderMsg>,
    /// The watch's own sinks stop its loop through it (a write the store fenced).
    pub(super) stop: channel::Sender<Signal>,
    pub(super) live: Live,
}

/// A prepared watch: the future that runs it to its end, owning all it runs on.
pub(super) type Running = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

impl Agent {
    /// Cancels a running watch; no command starts because of it (one already running
    /// finishes first). Returns false if it is not running.
    pub async fn cancel(&self, id: &str) -> bool {
        let tx = lock(&self.running).get(id).map(|h| h.signal.clone());
        let Some(mut tx) = tx else {
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

    /// Runs a watch, new or resumed (a resume's snapshot is loaded before the agent is
    /// ready, and not loaded twice: see `Begin`).
    pub(super) fn spawn(self: &Arc<Self>, mut rec: WatchRecord, begin: Begin) {
        // A watch whose snapshot is loaded never reads its rule file's text or its
        // vars again (the snapshot holds them; a resume that could not load it yet
        // retries with them): 1 to 2 KB a watch, and 540 bytes for a map's node.
        if matches!(&begin, Begin::New(_) | Begin::Resumed(Some(_), _)) {
            rec.def.rules_text = String::new();
            rec.def.vars = Default::default();
        }
        let (tx, rx) = channel::channel(4);
        // The watch's own sinks stop its loop through it (a write the store fenced).
        let stop = tx.clone();
        let (orders, orders_rx) = channel::channel(8);
        let live: Live = Arc::default();
        lock(&self.running).insert(
            rec.def.id.clone(),
            Handle {
                signal: tx,
                orders,
                live: live.clone(),
                clock: None,
            },
        );
        let id = rec.def.id.clone();
        // Boxed: what the preparation takes is not kept in the task while it runs.
        let beginning = Box::new(Beginning {
            rec,
            begin,
            signals: rx,
            orders: orders_rx,
            stop,
            live,
        });
        let h = tokio::spawn(self.clone().watch_task(id, beginning));
        lock(&self.tasks).push(h);
    }

    /// A watch's task: prepares it, runs it to its end, then gives its lease back.
    /// Each step is boxed, so the task itself holds a few pointers while its watch
    /// runs (`a_waiting_watch_holds_little`).
    pub(super) async fn watch_task(self: Arc<Self>, id: String, beginning: Box<Beginning>) {
        if let Some(running) = Box::pin(self.drive(beginning)).await {
            running.await;
        }
        Box::pin(self.watch_gone(id)).await;
    }

    /// A watch ended, suspended or lost here: the lease goes back (if this agent
    /// still holds it), so that another agent may take the watch at once.
    async fn watch_gone(&self, id: String) {
        lock(&self.running).remove(&id);
        self.leases.forget(&id);
        self.leases.clear_lost(&id);
        self.metrics.leases_held.set(self.leases.count() as i64);
        let holder = self.leases.holder.clone();
        let idc = id.clone();
        let r = match lease::release_fault() {
            true => None,
            false => Some(
                self.store
                    .call(move |s| s.release_lease(&idc, &holder))
                    .await,
            ),
        };
        if !matches!(r, Some(Ok(()))) {
            // Not renewed (only held leases are), so it expires at worst; the lease
            // loop releases it again meanwhile so another agent may adopt it sooner.
            self.leases.release_failed(&id);
        }
    }

    /// Records how a watch ended (retried a few times: an ending that cannot be
    /// written leaves the watch to be resumed, and its action rows still decide it).
    pub(super) async fn record_ending(&self, id: &str, e: &Ending) -> bool {
        self.record_ending_noted(id, e, Vec::new()).await
    }

    /// `record_ending`, with the notifications that report it in its transaction.
    pub(super) async fn record_ending_noted(
        &self,
        id: &str,
        e: &Ending,
        notes: Vec<NewNote>,
    ) -> bool {
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
    pub(super) async fn wait_to_retry(
        &self,
        id: &str,
        waiting: &mut bool,
        signals: &mut channel::Receiver<Signal>,
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

    /// `prepare` for each watch, in order (None: not yet, see `drive`), off the
    /// runtime and split over the machine's cores.
    pub(super) async fn prepare_many(
        self: &Arc<Self>,
        defs: Vec<NewWatch>,
    ) -> Vec<Option<Prepared>> {
        let agent = self.clone();
        over_cores(
            defs,
            move |d| agent.prepare(&d).ok(),
            "loading the resumed watches",
        )
        .await
    }

    /// The snapshot and the Prometheus source of a watch.
    pub(super) fn prepare(&self, def: &NewWatch) -> Result<Prepared, String> {
        let spec = self.specs.load(def).map_err(|e| e.to_string())?;
        let source = self.source_for(&spec)?;
        Ok((spec, source))
    }

    /// Prepares one watch to run (its snapshot, its state at a resume, its sinks): the
    /// future that runs it to its end and records its ending (or leaves it to resume
    /// at the next start, when the agent stops), or None when it ended or stopped
    /// before its loop began. That future owns all it runs on, so the watch's task
    /// holds nothing of this preparation while it runs (issue 21: the task was 1.6 KB
    /// a watch, sized for the preparation's largest step).
    pub(super) async fn drive(self: &Arc<Self>, begin: Box<Beginning>) -> Option<Running> {
        let Beginning {
            rec,
            begin,
            mut signals,
            orders,
            stop,
            live,
        } = *begin;
        let rec = &rec;
        let def = &rec.def;
        let id = def.id.as_str();
        // A new watch runs on the snapshot its creation loaded and checked. At a
        // restart, what fails here may be transient (a token or CA file not mounted
        // yet): the watch stays unfinished, the agent is not ready, and it is tried
        // again.
        let (resumed, mut prepared, mut read) = match begin {
            Begin::New(p) => (false, Some(*p), None),
            Begin::Resumed(p, read) => (true, p.map(|p| *p), read),
        };
        let mut waiting = resumed && prepared.is_none();
        let (spec, source) = loop {
            match prepared.take().map_or_else(|| self.prepare(def), Ok) {
                Ok(p) => break p,
                Err(e) => {
                    error!(event = "resume_waiting", watch = %id, error = %e, retry_s = RESUME_RETRY.as_secs(),
                        "cannot resume this watch yet: it stays unfinished and is tried again (the agent is not ready meanwhile)");
                    // Its rows are read again when it can resume (it may wait for long).
                    read = None;
                    if Box::pin(self.wait_to_retry(id, &mut waiting, &mut signals)).await {
                        continue;
                    }
                    return None;
                }
            }
        };
        if waiting {
            self.metrics.resume_waiting.dec();
            info!(event = "watch_resumed", watch = %id, "the watch could be resumed");
        }
        let duration = Duration::from_millis(def.duration_ms.max(0) as u64);
        let limit = crate::run::preflight::clock_limit(spec.max_blind, duration);
        // A resumed or adopted watch runs the creation's clock check first: an agent
        // whose watch clock is off Prometheus's does not judge it (nor end it).
        if resumed && !Box::pin(self.clock_allows(id, &source, spec.max_blind, duration)).await {
            self.leases.mark_lost(id);
            return None;
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
        let store_sink = Box::new(StoreSink {
            id: id.into(),
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            link: SinkLink {
                leases: self.leases.clone(),
                polls: self.polls.clone(),
                stopping: self.shutting_down.clone(),
                stop,
            },
            live,
            windows: Default::default(),
            herald: herald.clone(),
            notify_fired: Vec::new(),
            trust: None,
        });
        let scrape = match spec.step {
            Some(_) => None,
            None => Box::pin(source.scrape_interval()).await,
        };
        // Boxed, as is everything large held across this function's awaits: a
        // future keeps a slot for each such local for the whole life of the watch.
        let mut from = Box::new(Start {
            aligned: Some(phase),
            scrape,
            ahead: source.ahead(),
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
        });
        // People's orders as the resume read them (the loop that settles orders has
        // not started, so they still hold), or None: read below.
        let mut control = None;
        if resumed {
            let mut waiting = false;
            loop {
                let resolved = Box::pin(self.resolve_actions(
                    &spec,
                    def,
                    &mut others,
                    &opts,
                    herald.as_ref(),
                    &mut read,
                ))
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
                        Box::pin(self.restore(
                            &spec,
                            def,
                            &source,
                            self.clock_now_ms(),
                            read.take(),
                        ))
                        .await
                    }
                    Ok(Resolution::End { outcome, recorded }) => {
                        if waiting {
                            self.metrics.resume_waiting.dec();
                        }
                        Box::pin(self.end_before_start(
                            id,
                            &outcome,
                            !recorded,
                            herald.as_deref(),
                            others,
                        ))
                        .await;
                        return None;
                    }
                    Err(e) => Err(e),
                };
                let e = match restored {
                    Ok(r) => {
                        if let Some(h) = &herald {
                            h.resumed(
                                &spec,
                                &r.evals,
                                from.pause_failed.as_ref().map(|p| p.0.as_str()),
                            );
                        }
                        from.evals = Some(r.evals);
                        from.backlog = r.backlog;
                        from.judged = Some(r.judged);
                        control = Some(r.control);
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
                if Box::pin(self.wait_to_retry(id, &mut waiting, &mut signals)).await {
                    continue;
                }
                return None;
            }
            if waiting {
                self.metrics.resume_waiting.dec();
            }
        }
        // The watch's clock is the store's: its elapsed time is read on it when the
        // live loop starts, then on the monotonic clock (`clock`).
        from.origin = Some(unix(def.created_ms));
        from.clock = Some(self.clock_anchor());
        from.orders = Some(orders);
        // A hold or an extension given before a restart or an adoption still holds:
        // a watch whose orders cannot be read does not start (it could act through a
        // hold a person gave), it waits and is tried again, as a resume does.
        let mut waiting = false;
        from.control = loop {
            if let Some(c) = control.take() {
                break c;
            }
            match Box::pin(self.control_state(def)).await {
                Ok(c) => break c,
                Err(e) => {
                    self.metrics.store_errors.inc();
                    error!(event = "store_error", watch = %id, error = %e, retry_s = RESUME_RETRY.as_secs(),
                        "cannot read people's orders for this watch; it waits and is tried again");
                    if Box::pin(self.wait_to_retry(id, &mut waiting, &mut signals)).await {
                        continue;
                    }
                    return None;
                }
            }
        };
        if waiting {
            self.metrics.resume_waiting.dec();
        }
        // An `end` or a `supersede` that was carried out (settled) before a crash, whose
        // ending was not written yet: the watch ends so now, never judges on.
        if let Some(e) = from.control.ended.clone() {
            let outcome = if e.superseded {
                Outcome::Superseded { reason: e.reason }
            } else {
                Outcome::DeclaredHealthy {
                    by: e.who,
                    reason: e.reason,
                }
            };
            info!(event = "ended_by_order", watch = %id, outcome = outcome.name(), "the watch was ended by an order before this start");
            Box::pin(self.end_before_start(id, &outcome, true, herald.as_deref(), others)).await;
            return None;
        }
        from.baselines = Box::pin(self.before_baselines(&spec, def, &*source)).await;
        from.pre_existing =
            Box::pin(self.pre_existing(&spec, def, &*source, from.scrape, &from.baselines)).await;
        let mut sinks = WatchSinks {
            sinks: others,
            deliveries,
        };
        // The ending is recorded by `StoreSink` before any sink after it sees it; the
        // notifications are rendered just before it (`HeraldSink`, first), so that it
        // writes them in the same transaction.
        let at = usize::from(herald.is_some());
        sinks.sinks.0.insert(at, store_sink);
        // A watch that superseded another (`watch.key`) judges once that one ended:
        // never two watches of one key judging at once.
        if let Some(old) = &rec.after {
            match Box::pin(self.await_predecessor(id, old, &mut signals)).await {
                Some(outcome) => from.succeeds = Some((old.clone(), outcome)),
                None => return None,
            }
        }
        Some(Box::pin(async move {
            watch::run_session(&spec, source, &opts, from, &mut signals, &mut sinks).await;
        }))
    }
}

impl Agent {
    /// Ends a watch that was decided before its loop started (an action resolved at a
    /// restart, an order carried out before a crash): its ending (with `record`) and
    /// the notifications that report it in one transaction, then its other sinks.
    async fn end_before_start(
        &self,
        id: &str,
        outcome: &Outcome,
        record: bool,
        herald: Option<&Herald>,
        others: Sinks,
    ) {
        if record {
            let notes =
                herald.map_or_else(Vec::new, |h| h.ahead(now_ms(), &outcome.finished_event()));
            if !self
                .record_ending_noted(id, &ending_of(outcome), notes)
                .await
            {
                if let Some(h) = herald {
                    h.forget_ahead();
                }
            }
        }
        let mut sinks = WatchSinks {
            sinks: others,
            deliveries: None,
        };
        finish_sinks(&mut sinks, outcome).await;
    }
}

/// How long a watch that cannot be resumed yet waits before it is tried again.
const RESUME_RETRY: Duration = Duration::from_secs(5);

async fn finish_sinks(sinks: &mut WatchSinks, outcome: &Outcome) {
    sinks.sinks.emit(now_ms(), &outcome.finished_event());
    sinks.finish().await;
}
