//! Creating a watch: the request's names checked, the rule file read and loaded with
//! the request's vars, the pre-flight (programs, never-fires lint, clock against
//! Prometheus), the record stored, its lease taken and the watch spawned; and the
//! Prometheus sources watches and verdicts share (`source_for`, `source_in`).
//!
//! A batch (`create_many`, issue 21) makes the same checks per item (`check`, one
//! path for both) and stores every watch in ONE transaction: with `synchronous=FULL`
//! each commit is an fsync, so 10,000 single creations cost 10,000 of them and a
//! batch one. All or nothing: a refused item (its index and reason returned) stores
//! none of the batch, so a caller never has to find out which half exists.

use super::drive::Prepared;
use super::snapshot::{refused, valid_name};
use super::source::SharedSource;
use super::types::{batch_size, lock, over_cores, BatchError, CreateError, WatchRequest};
use super::{clock, Agent};
use crate::core::rules::WatchSpec;
use crate::io::prom::ClockSkew;
use crate::io::prom::PromClient;
use crate::io::store::{Created, CreatedMany, Lease, NewWatch, WatchRecord};
use crate::run::preflight::{self, PreflightWarning, WatchClock};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use tokio::time::Instant;
use tracing::{error, info, warn};

/// A request that passed every check, ready to store.
struct Checked {
    def: NewWatch,
    /// Logged and returned to the caller.
    warnings: Vec<String>,
    /// The snapshot as checked, and its source: what the watch runs on.
    prepared: Prepared,
}

/// What the items of one batch share: each rule file's text, read once, and each
/// Prometheus's clock, measured once.
#[derive(Default)]
struct Memo {
    texts: Texts,
    skews: Vec<(Arc<SharedSource<PromClient>>, Measured)>,
}

/// Rule file texts read so far in a batch (its loads run on several threads).
type Texts = Arc<Mutex<HashMap<String, String>>>;

/// A request past every check but the clock's: what that one still needs.
struct Loaded {
    def: NewWatch,
    warnings: Vec<String>,
    spec: Arc<WatchSpec>,
    source: Arc<SharedSource<PromClient>>,
    duration: std::time::Duration,
}

/// A clock measurement against one Prometheus, as `preflight::judge_clock` takes it.
type Measured = Result<ClockSkew, String>;

impl Agent {
    /// The text of the rule file `name` (a stem) in the rules directory.
    pub(super) fn rule_file(&self, name: &str) -> Result<String, CreateError> {
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

    /// Validates and stores a watch, then starts it. `Ok((record, true, warnings))` if
    /// it is new; the warnings (a rule that can never fire in the watch's duration, a
    /// clock off Prometheus's) are logged and returned to the caller.
    pub async fn create(
        self: &Arc<Self>,
        req: WatchRequest,
    ) -> Result<(WatchRecord, bool, Vec<String>), CreateError> {
        self.before_creating().await?;
        let checked = self.check(req, &mut Memo::default()).await?;
        // One creation at a time: two POSTs with one id can't both start a watch.
        let _guard = self.create.lock().await;
        let d = checked.def.clone();
        let created = self.store.call(move |s| s.create(&d)).await?;
        match created {
            Created::New(rec) => {
                let started = [(rec, checked.warnings, checked.prepared)];
                self.start_new(&started).await;
                let [(rec, warnings, _)] = started;
                Ok((rec, true, warnings))
            }
            Created::Existing(rec) => {
                if !checked.def.same_request(&rec.def) {
                    return Err(CreateError::Conflict(rec.def.id));
                }
                Ok((rec, false, Vec::new()))
            }
        }
    }

    /// `create` for a batch (at most `types::MAX_BATCH`), all or nothing: every item is
    /// checked as `create` checks one (the clock once per Prometheus), and if any is
    /// refused nothing is stored and every refusal is returned with its index
    /// (`BatchError::Refused`). Otherwise ONE store transaction stores every new
    /// watch (an id already stored by the same request is returned as it is, `false`);
    /// the answer comes after its commit, and the new watches start after it.
    pub async fn create_many(
        self: &Arc<Self>,
        reqs: Vec<WatchRequest>,
    ) -> Result<Vec<(WatchRecord, bool, Vec<String>)>, BatchError> {
        batch_size(reqs.len()).map_err(BatchError::Whole)?;
        let began = Instant::now();
        self.before_creating().await.map_err(BatchError::Whole)?;
        let mut memo = Memo::default();
        let loaded = self.load_many(reqs, &memo.texts).await;
        let mut checked = Vec::with_capacity(loaded.len());
        let mut refused = Vec::new();
        let mut first_of: HashMap<String, usize> = HashMap::new();
        // One watch per `watch.key` in a batch: a second would supersede the first
        // before it ever judged.
        let mut key_of: HashMap<String, usize> = HashMap::new();
        for (i, l) in loaded.into_iter().enumerate() {
            let c = match l {
                Ok(l) => self.judge_clock_of(l, &mut memo).await,
                Err(e) => Err(e),
            };
            let c = match c {
                Ok(c) => match c.def.key.as_ref().and_then(|k| key_of.get(k)) {
                    Some(j) => Err(CreateError::BadRequest(format!(
                        "watch.key {:?} is also item {j}'s: a batch holds one watch per key",
                        c.def.key.as_deref().unwrap_or_default()
                    ))),
                    None => {
                        if let Some(k) = &c.def.key {
                            key_of.insert(k.clone(), i);
                        }
                        Ok(c)
                    }
                },
                e => e,
            };
            match c {
                Ok(c) => match first_of.get(&c.def.id) {
                    Some(j) => refused.push((
                        i,
                        CreateError::BadRequest(format!(
                            "id {:?} is also item {j}'s: each watch of a batch needs its own id",
                            c.def.id
                        )),
                    )),
                    None => {
                        first_of.insert(c.def.id.clone(), i);
                        checked.push(c);
                    }
                },
                Err(
                    e @ (CreateError::BadRequest(_)
                    | CreateError::UnknownRules(_)
                    | CreateError::Conflict(_)),
                ) => refused.push((i, e)),
                Err(e) => return Err(BatchError::Whole(e)),
            }
        }
        if !refused.is_empty() {
            return Err(BatchError::Refused(refused));
        }
        let checked_in = began.elapsed();
        let _guard = self.create.lock().await;
        let defs: Vec<NewWatch> = checked.iter().map(|c| c.def.clone()).collect();
        let created = self
            .store
            .call(move |s| s.create_many(&defs))
            .await
            .map_err(|e| BatchError::Whole(e.into()))?;
        let created = match created {
            CreatedMany::Stored(c) => c,
            CreatedMany::Conflicts(c) => {
                return Err(BatchError::Refused(
                    c.into_iter()
                        .map(|(i, rec)| (i, CreateError::Conflict(rec.def.id)))
                        .collect(),
                ))
            }
        };
        let new: Vec<(WatchRecord, Vec<String>, Prepared)> = created
            .iter()
            .zip(&checked)
            .filter_map(|(c, ch)| match c {
                Created::New(rec) => Some((rec.clone(), ch.warnings.clone(), ch.prepared.clone())),
                Created::Existing(_) => None,
            })
            .collect();
        let stored_in = began.elapsed();
        self.start_new(&new).await;
        info!(
            event = "watches_created",
            watches = new.len(),
            batch = created.len(),
            checked_ms = checked_in.as_millis() as u64,
            stored_ms = stored_in.as_millis() as u64,
            started_ms = began.elapsed().as_millis() as u64,
            "a batch of watches created"
        );
        Ok(created
            .into_iter()
            .zip(checked)
            .map(|(c, ch)| match c {
                Created::New(rec) => (rec, true, ch.warnings),
                Created::Existing(rec) => (rec, false, Vec::new()),
            })
            .collect())
    }

    /// `load_request` for every request of a batch, in order, off the runtime and
    /// split over the machine's cores (`over_cores`).
    async fn load_many(
        self: &Arc<Self>,
        reqs: Vec<WatchRequest>,
        texts: &Texts,
    ) -> Vec<Result<Loaded, CreateError>> {
        let (agent, texts) = (self.clone(), texts.clone());
        over_cores(
            reqs,
            move |r| agent.load_request(r, &texts),
            "a batch's checks",
        )
        .await
    }

    /// Refuses while shutting down; before `start` has read the store's clock (what
    /// watches are timed on, see `clock`), reads it now.
    async fn before_creating(&self) -> Result<(), CreateError> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(CreateError::ShuttingDown);
        }
        if !self.ready.load(Ordering::SeqCst) {
            *lock(&self.clock) = self.store.call(clock::read_store_clock).await?;
        }
        Ok(())
    }

    /// Every check of one request before it is stored: its names, the rule file
    /// loaded with its vars, the pre-flight (programs, never-fires lint, the clock
    /// against Prometheus). `memo` keeps what a batch's items share.
    async fn check(&self, req: WatchRequest, memo: &mut Memo) -> Result<Checked, CreateError> {
        let loaded = self.load_request(req, &memo.texts)?;
        self.judge_clock_of(loaded, memo).await
    }

    /// The checks of `check` before the clock's: no I/O but reading the rule file
    /// (once per batch: `texts`), CPU only (the rule file's load), so that a batch
    /// runs them off the runtime, on several threads.
    fn load_request(&self, req: WatchRequest, texts: &Texts) -> Result<Loaded, CreateError> {
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
        let known = lock(texts).get(&req.rules).cloned();
        let text = match known {
            Some(t) => t,
            None => {
                let t = self.rule_file(&req.rules)?;
                lock(texts).insert(req.rules.clone(), t.clone());
                t
            }
        };
        // On the store's clock (see `clock`): every agent times the watch the same.
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
            key: None,
        };
        // (Shared with the running watches of the same file and vars: `SpecCache`.)
        let spec = self
            .specs
            .load(&def)
            .map_err(|e| refused(&def.rules, &e, false))?;
        if let Some(e) = preflight::programs(&spec).into_iter().next() {
            return Err(CreateError::BadRequest(format!(
                "{e} on the agent; a watch that cannot roll back must not start"
            )));
        }
        let source = self.source_for(&spec).map_err(CreateError::BadRequest)?;
        let duration = req.duration.unwrap_or(spec.duration);
        def.duration_ms = duration.as_millis() as i64;
        def.key = spec.key.clone();
        if def.duration_ms <= 0 {
            return Err(CreateError::BadRequest(
                "the duration must be longer than 0s".into(),
            ));
        }
        let warnings: Vec<String> = preflight::never_fires(&spec, duration)
            .iter()
            .map(|n| format!("{n}; {}", n.help()))
            .collect();
        Ok(Loaded {
            def,
            warnings,
            spec,
            source,
            duration,
        })
    }

    /// The clock check of a loaded request, against its Prometheus (measured once
    /// per batch: `memo`).
    async fn judge_clock_of(&self, l: Loaded, memo: &mut Memo) -> Result<Checked, CreateError> {
        let Loaded {
            def,
            mut warnings,
            spec,
            source,
            duration,
        } = l;
        let max_blind = spec.max_blind;
        // The clock check (`run::preflight`): polls ask Prometheus about "now" by the
        // clock the watch is timed on. The same check runs at a resume, an adoption
        // and every `clock::CHECK_EVERY` while the watch runs. A batch measures each
        // Prometheus once.
        let measured = match memo.skews.iter().find(|(s, _)| Arc::ptr_eq(s, &source)) {
            Some((_, m)) => m.clone(),
            None => {
                let m = self
                    .watch_clock_skew(&source)
                    .await
                    .map_err(|e| e.to_string());
                memo.skews.push((source.clone(), m.clone()));
                m
            }
        };
        match preflight::judge_clock(measured, WatchClock::Store, max_blind, duration) {
            Ok(None) => {}
            Ok(Some(w @ PreflightWarning::ClockSkew { .. })) => {
                warnings.push(format!("{w}; {}", WatchClock::Store.help()))
            }
            Ok(Some(w)) => warnings.push(w.to_string()),
            Err(e) => {
                self.metrics.clock_refusals.inc();
                return Err(CreateError::BadRequest(format!(
                    "{e}; {}",
                    WatchClock::Store.help()
                )));
            }
        }
        Ok(Checked {
            def,
            warnings,
            prepared: (spec, source),
        })
    }

    /// Starts watches just stored (their commit is done): logs each with its
    /// warnings, takes their leases (in one store call) and spawns the ones it got.
    async fn start_new(self: &Arc<Self>, recs: &[(WatchRecord, Vec<String>, Prepared)]) {
        if recs.is_empty() {
            return;
        }
        if recs.iter().any(|(r, _, _)| r.after.is_some()) {
            // An older watch of the same key got a `supersede` order: its holder (this
            // agent, perhaps) looks at once.
            self.orders_wake.notify_one();
        }
        let ids: Vec<String> = recs.iter().map(|(r, _, _)| r.def.id.clone()).collect();
        let (holder, ttl) = (self.leases.holder.clone(), self.leases.ttl);
        // One statement for the batch (one per lease outlasted the trust window at
        // 10,000), trusted from the moment it is sent: taken on the store's thread,
        // after any wait for one, so that a queue of store calls ahead of it never
        // counts against the leases' trust (the database dates them later still).
        let (sent, taken) = self
            .store
            .call(move |s| (Instant::now(), s.acquire_leases(&ids, &holder, ttl)))
            .await;
        let failed = taken.is_err();
        let mut taken: HashMap<String, Lease> = match taken {
            Ok(ls) => ls.into_iter().map(|l| (l.watch.clone(), l)).collect(),
            Err(e) => {
                self.metrics.store_errors.inc();
                error!(event = "store_error", watches = recs.len(), error = %e, "cannot take the new watches' leases; an agent adopts them at its next round");
                HashMap::new()
            }
        };
        for (rec, warnings, prepared) in recs {
            info!(event = "watch_created", watch = %rec.def.id, rules = %rec.def.rules, vars = ?rec.def.vars, "watch created");
            for w in warnings {
                warn!(event = "watch_warning", watch = %rec.def.id, "{w}");
            }
            match taken.remove(&rec.def.id) {
                Some(l) => {
                    self.leases.hold(&l, sent);
                    let begin = super::drive::Begin::New(Box::new(prepared.clone()));
                    self.spawn(rec.clone(), begin);
                }
                None if failed => {}
                None => {
                    info!(event = "watch_owned_elsewhere", watch = %rec.def.id, "another agent took this watch's lease first; it runs there")
                }
            }
        }
        self.metrics.leases_held.set(self.leases.count() as i64);
    }

    pub(super) fn source_for(
        &self,
        spec: &WatchSpec,
    ) -> Result<Arc<SharedSource<PromClient>>, String> {
        self.source_in(spec, false)
    }

    /// The source of `spec`'s Prometheus under the watches' query limit, or, `open`,
    /// under the open verdict routes' own.
    pub(super) fn source_in(
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
}
