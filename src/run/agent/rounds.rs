//! The agent's lifetime and its background rounds: `start` (read the store's clock,
//! adopt what is unowned, then start the rounds), the lease rounds (one renewal
//! statement per round, adoption in a task of its own, retried releases; `lease.rs`
//! is the book they keep), the last polls flushed every `POLL_FLUSH`, the watchdog
//! thread that stops a watch whose lease is past its trust window, and `shutdown`.

use super::exactly_once;
use super::lease;
use super::outbox;
use super::types::lock;
use super::{clock, Agent};
use crate::io::store::{Lease, ResumeRead, StoreError, WatchRecord, WatchState};
use crate::run::watch::Signal;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tracing::{error, info, warn};

/// How often the last poll of every rule is written (in one transaction). Transitions
/// and actions are written at once; a lost last-poll only makes the catch-up after a
/// crash re-read a few seconds of history.
const POLL_FLUSH: Duration = Duration::from_secs(2);

/// The fewest watches an adoption round tries to take (more when the agent holds less
/// than its share): an agent that has just died may still count as alive (see
/// `adopt_once`), so its watches are adopted even by agents that already hold their
/// share.
const ADOPT_MIN: usize = 64;

/// How many resumed watches' rows are read in one call (`Store::resume_reads`): one
/// SQLite transaction holds the connection for about as long as a chunk takes.
const RESUME_READ_CHUNK: usize = 2_000;

impl Agent {
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
        tokio::spawn(self.clone().orders_loop());
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
    pub(super) async fn adopt_once(&self) -> Result<(Vec<Lease>, Instant), StoreError> {
        let (holder, ttl) = (self.leases.holder.clone(), self.leases.ttl);
        let h = holder.clone();
        // Alive: seen within two adoption rounds, not a whole TTL. Every agent writes
        // its heartbeat each round, and a dead agent's leases lapse at least a TTL
        // less one round after its last renewal: counted for a TTL, it still counted
        // when they lapsed, every survivor's share of them came to nothing, and they
        // were taken 64 a round (`ADOPT_MIN`) until it stopped counting, a round or
        // more later (BENCHMARKS.md, issue 21). A live agent whose rounds run late
        // only has the others take a larger share of the leases that lapsed.
        let alive = self.leases.renew_every() * 2;
        let agents = self
            .store
            .call(move |s| s.heartbeat(&h, alive))
            .await?
            .max(1);
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
    pub(super) async fn give_back(&self, id: &str) {
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
    pub(super) async fn take_adopted(
        self: &Arc<Self>,
        adopted: Vec<Lease>,
        sent: Instant,
    ) -> usize {
        // Held (and trusted from the adoption's statement) at once, before their
        // records are read: that read may wait behind the watches' store calls, and
        // the renewals meanwhile must keep these leases. Held only after it, a slow
        // read let 10,000 adopted leases lapse before any renewal named them, and the
        // agents passed the watches round in a storm of adoptions (BENCHMARKS.md,
        // issue 21). A watch whose old loop here is still stopping is given back at
        // once: that loop must never write with the new token.
        let mut mine = Vec::new();
        let mut back = Vec::new();
        for l in adopted {
            if lock(&self.running).contains_key(&l.watch) {
                back.push(l.watch);
            } else {
                self.leases.hold(&l, sent);
                mine.push(l);
            }
        }
        for id in back {
            self.give_back(&id).await;
        }
        // The adopted watches' records in one read (not one per watch: an adoption
        // after an owner's death can be thousands of watches).
        if let Some(d) = super::lease::adopt_read_delay() {
            tokio::time::sleep(d).await;
        }
        let ids: Vec<String> = mine.iter().map(|l| l.watch.clone()).collect();
        let mut running: HashMap<String, WatchRecord> = match self
            .store
            .call(move |s| s.running_among(&ids))
            .await
        {
            Ok(recs) => recs.into_iter().map(|r| (r.def.id.clone(), r)).collect(),
            Err(e) => {
                self.metrics.store_errors.inc();
                error!(event = "store_error", error = %e, "cannot read the adopted watches; their leases are given back");
                for l in &mine {
                    self.leases.forget(&l.watch);
                    self.give_back(&l.watch).await;
                }
                return 0;
            }
        };
        let mut take = Vec::new();
        let mut ended = Vec::new();
        for l in mine {
            match running.remove(&l.watch) {
                Some(rec) => take.push((l, rec)),
                // Ended meanwhile: given back.
                None => ended.push(l.watch),
            }
        }
        for id in ended {
            self.leases.forget(&id);
            self.give_back(&id).await;
        }
        // Watches of the same rule file and vars ask the same queries: started next to
        // each other, their catch-up range queries are in flight together and sent
        // once (`SharedSource`) rather than each on its own.
        take.sort_by(|(_, a), (_, b)| {
            (&a.def.rules, &a.def.vars).cmp(&(&b.def.rules, &b.def.vars))
        });
        self.metrics.leases_held.set(self.leases.count() as i64);
        let n = take.len();
        // Each snapshot is loaded (about a millisecond of CPU a watch) off the
        // runtime, split over the cores: at 100,000 watches, on the runtime, this
        // alone held the agent's start for over a minute.
        let prepared = self
            .prepare_many(take.iter().map(|(_, rec)| rec.def.clone()).collect())
            .await;
        // Their rows (actions, series, last polls, orders) read together, a chunk at
        // a time, each chunk's watches started once it is read: five reads a watch,
        // each a call and a transaction of its own, with SQLite under them made most
        // of a quarter of a 100,000-watch restart's CPU.
        let mut items = take.into_iter().zip(prepared).peekable();
        while items.peek().is_some() {
            let chunk: Vec<_> = items.by_ref().take(RESUME_READ_CHUNK).collect();
            let ids: Vec<String> = chunk.iter().map(|((l, _), _)| l.watch.clone()).collect();
            let mut reads = self.resume_reads(ids).await;
            for ((l, rec), prepared) in chunk {
                let read = reads.remove(&rec.def.id).map(Box::new);
                self.start_adopted(l, rec, prepared, read);
            }
        }
        n
    }

    /// The rows of watches about to resume, read together. A chunk that cannot be
    /// read leaves its watches to read their own (and retry, as always).
    async fn resume_reads(&self, ids: Vec<String>) -> HashMap<String, ResumeRead> {
        match self.store.call(move |s| s.resume_reads(&ids)).await {
            Ok(r) => r,
            Err(e) => {
                self.metrics.store_errors.inc();
                warn!(event = "store_error", error = %e, "cannot read the resumed watches' rows together; each reads its own");
                HashMap::new()
            }
        }
    }

    /// Starts one adopted (or, at a start, one of this agent's own) watch.
    fn start_adopted(
        self: &Arc<Self>,
        l: Lease,
        rec: WatchRecord,
        prepared: Option<super::drive::Prepared>,
        read: Option<Box<ResumeRead>>,
    ) {
        if self.store.shared() {
            self.metrics.lease_adoptions.inc();
            info!(event = "lease_adopted", watch = %l.watch, token = l.token, holder = %self.leases.holder,
                "adopted a watch whose lease had expired (or that had none): resuming it from the store and Prometheus's history");
        }
        info!(event = "watch_resumed", watch = %rec.def.id, rules = %rec.def.rules, "resuming an unfinished watch");
        // Checked here, before the agent says it is ready: a watch that cannot be
        // resumed yet keeps it not ready until it can.
        if prepared.is_none() {
            self.metrics.resume_waiting.inc();
        }
        self.spawn(
            rec,
            super::drive::Begin::Resumed(prepared.map(Box::new), read),
        );
    }

    /// Renews this agent's leases, three rounds per TTL, and (in a task of its own, so
    /// that a long adoption never delays a renewal) adopts expired ones as often.
    pub(super) async fn lease_loop(self: Arc<Self>) {
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
    pub(super) async fn renew_round(&self) {
        let (holder, ttl) = (self.leases.holder.clone(), self.leases.ttl);
        let sent = Instant::now();
        let ids = self.leases.ids();
        // Apart from the watches' store calls (`call_apart`), and on the store's own
        // connection for it (`PgStore`): never queued behind a burst of them.
        let r = tokio::time::timeout(
            self.leases.trust_window(),
            self.store
                .call_apart(move |s| s.renew_leases(&holder, &ids, ttl)),
        )
        .await;
        if let Ok(answered) = &r {
            let took = sent.elapsed().as_secs_f64();
            self.metrics.lease_renewal_duration.observe(took);
            if answered.is_ok() && took > self.leases.trust_window().as_secs_f64() / 2.0 {
                warn!(event = "lease_renewal_slow", seconds = took, trust_window_s = self.leases.trust_window().as_secs_f64(),
                    "a lease renewal took over half the trust window to be answered; past it, this agent's watches stop here");
            }
        }
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
    pub(super) async fn retry_releases(&self) {
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

    pub(super) async fn adopt_round(self: &Arc<Self>) {
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
    pub(super) fn lose(&self, id: &str, why: &str) {
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

    pub(super) async fn flush_polls(&self) {
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
        let tasks = lock(&self.tasks).take();
        for t in tasks {
            let _ = t.await;
        }
        self.flush_polls().await;
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
