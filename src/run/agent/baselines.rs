//! A `baseline: before:` rule's samples, taken once: from the store when a restart
//! finds them, else from Prometheus's history before the watch was created (stored
//! then, so a restart never shifts them). Taking them is the pre-flight's
//! (`run::preflight::before_baselines`); reading and storing them is the agent's.

use super::Agent;
use crate::core::rules::WatchSpec;
use crate::core::series::{Labels, Sample};
use crate::io::store::{NewWatch, StoreError};
use crate::run::preflight::{self, Baseline};
use tracing::{info, warn};

impl Agent {
    /// The `baseline: before:` samples of each rule: the stored ones (a restart never
    /// shifts them), else taken now over the `D` before the watch was created (one
    /// range query through the shared source) and stored. A failed query is a warning
    /// (that rule's series follow `no_baseline`) and is not stored, so a restart tries
    /// again over the same window.
    pub(super) async fn before_baselines<H: crate::io::prom::HistorySource>(
        &self,
        spec: &WatchSpec,
        def: &NewWatch,
        source: &H,
    ) -> Vec<Option<Vec<crate::core::series::Sample>>> {
        if !preflight::wants_before(spec) {
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
        let found = preflight::before_baselines(spec, source, def.created_ms, &stored).await;
        for (rule, b) in spec.rules.iter().zip(&found) {
            match b {
                Baseline::Taken { samples, window } => {
                    info!(event = "baseline", watch = %def.id, rule = %rule.name, series = samples.len(), "baseline taken over the {} before the watch", humantime::format_duration(*window));
                    self.store_baseline(def, &rule.name, samples).await;
                }
                Baseline::Failed(e) => {
                    warn!(event = "baseline_failed", watch = %def.id, rule = %rule.name, error = %e, "the baseline could not be taken; this rule's series follow `no_baseline`");
                }
                Baseline::NotWanted | Baseline::Known(_) => {}
            }
        }
        found.iter().map(Baseline::samples).collect()
    }

    /// Stores a baseline just taken, fenced (a restart then uses it, never another).
    async fn store_baseline(&self, def: &NewWatch, rule: &str, samples: &[Sample]) {
        let values: Vec<(Labels, f64)> = samples
            .iter()
            .map(|s| (s.labels.clone(), s.value))
            .collect();
        let (id, name) = (def.id.clone(), rule.to_string());
        let Some(fence) = self.leases.fence(&def.id) else {
            self.write_fenced(
                &def.id,
                "the baseline",
                "this agent no longer trusts its lease",
            );
            return;
        };
        let put = self
            .store
            .call(move |s| s.put_baselines(&id, &fence, &name, &values))
            .await;
        if let Err(e @ StoreError::Fenced { .. }) = &put {
            self.write_fenced(&def.id, "the baseline", &e.to_string());
        } else if put.is_err() {
            self.metrics.store_errors.inc();
            warn!(event = "store_error", watch = %def.id, rule = %rule, "cannot store the baseline; a restart takes it again over the same window");
        }
    }
}
