//! Creating a watch: the request's names checked, the rule file read and loaded with
//! the request's vars, the pre-flight (programs, never-fires lint, clock against
//! Prometheus), the record stored, its lease taken and the watch spawned; and the
//! Prometheus sources watches and verdicts share (`source_for`, `source_in`).

use super::snapshot::{refused, valid_name};
use super::source::SharedSource;
use super::types::{lock, CreateError, WatchRequest};
use super::{clock, Agent};
use crate::core::rules::{self, WatchSpec};
use crate::io::prom::PromClient;
use crate::io::store::{Created, NewWatch, WatchRecord};
use crate::run::preflight::{self, PreflightWarning, WatchClock};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::time::Instant;
use tracing::{error, info, warn};

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
                outside: Some(&crate::io::host::HOST),
                sets: &sets,
                check: false,
            },
        )
        .map_err(|e| refused(&def.rules, &e, false))?;
        if let Some(e) = preflight::programs(&spec).into_iter().next() {
            return Err(CreateError::BadRequest(format!(
                "{e} on the agent; a watch that cannot roll back must not start"
            )));
        }
        let source = self.source_for(&spec).map_err(CreateError::BadRequest)?;
        let duration = req.duration.unwrap_or(spec.duration);
        def.duration_ms = duration.as_millis() as i64;
        if def.duration_ms <= 0 {
            return Err(CreateError::BadRequest(
                "the duration must be longer than 0s".into(),
            ));
        }
        let mut warnings: Vec<String> = preflight::never_fires(&spec, duration)
            .iter()
            .map(|n| format!("{n}; {}", n.help()))
            .collect();
        // The clock check (`run::preflight`): polls ask Prometheus about "now" by the
        // clock the watch is timed on. The same check runs at a resume, an adoption
        // and every `clock::CHECK_EVERY` while the watch runs.
        let measured = self
            .watch_clock_skew(&source)
            .await
            .map_err(|e| e.to_string());
        match preflight::judge_clock(measured, WatchClock::Store, spec.max_blind, duration) {
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
