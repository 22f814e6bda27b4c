//! A watch's breaches that began before it (`pre_existing`), read once: from the
//! store when a restart finds the reading, else from Prometheus's history over each
//! rule's `for` before the watch was created (stored then, beside the `before:`
//! baselines, so a restart never reads another window). Reading them is the
//! pre-flight's (`run::preflight::pre_existing`); storing them is the agent's. The
//! end of each carried-over breach is stored as it happens (`StoreSink`), so a
//! restart carries over only those still running.

use super::Agent;
use crate::core::eval::Before;
use crate::core::rules::WatchSpec;
use crate::core::series::Sample;
use crate::io::store::{NewWatch, StoreError};
use crate::run::preflight::{self, PreDeploy};
use std::time::Duration;
use tracing::warn;

impl Agent {
    /// Each rule's breaches carried over from before the watch (None: not read): the
    /// stored reading less the ones that ended, else read now and stored. A failed
    /// reading is a warning (that rule judges every breach as any) and is not stored,
    /// so a restart reads the same window again.
    pub(super) async fn pre_existing<H: crate::io::prom::HistorySource>(
        &self,
        spec: &WatchSpec,
        def: &NewWatch,
        source: &H,
        scrape: Option<Duration>,
        baselines: &[Option<Vec<Sample>>],
    ) -> Vec<Option<Before>> {
        if !spec.rules.iter().any(preflight::reads_before) {
            return Vec::new();
        }
        let id = def.id.clone();
        let stored = match self.store.call(move |s| s.baselines(&id)).await {
            Ok(m) => m,
            Err(e) => {
                self.metrics.store_errors.inc();
                warn!(event = "store_error", watch = %def.id, error = %e, "cannot read the stored reading of the breaches before the watch; reading it again");
                Default::default()
            }
        };
        let found =
            preflight::pre_existing(spec, source, def.created_ms, scrape, baselines, &stored).await;
        let mut taken = Vec::new();
        for (rule, p) in spec.rules.iter().zip(&found) {
            match p {
                PreDeploy::Taken { before, .. } => taken.push((&rule.name, before)),
                PreDeploy::Failed(e) => {
                    warn!(event = "pre_existing_failed", watch = %def.id, rule = %rule.name, error = %e, "could not read whether this rule was already breaching before the watch; every breach of it is judged as any");
                }
                PreDeploy::NotRead | PreDeploy::Known(_) => {}
            }
        }
        if !taken.is_empty() {
            self.store_readings(def, &taken).await;
        }
        found.iter().map(|p| p.before().cloned()).collect()
    }

    /// Stores the readings just taken, fenced, in one transaction (a restart then uses
    /// them, never another).
    async fn store_readings(&self, def: &NewWatch, taken: &[(&String, &Before)]) {
        let readings: Vec<(String, Vec<_>)> = taken
            .iter()
            .map(|(rule, before)| {
                (
                    preflight::pre_existing_key(rule),
                    before.iter().map(|(l, v)| (l.clone(), *v)).collect(),
                )
            })
            .collect();
        let id = def.id.clone();
        let Some(fence) = self.leases.fence(&def.id) else {
            self.write_fenced(
                &def.id,
                "the breaches before the watch",
                "this agent no longer trusts its lease",
            );
            return;
        };
        let put = self
            .store
            .call(move |s| s.put_baselines_many(&id, &fence, &readings))
            .await;
        if let Err(e @ StoreError::Fenced { .. }) = &put {
            self.write_fenced(&def.id, "the breaches before the watch", &e.to_string());
        } else if put.is_err() {
            self.metrics.store_errors.inc();
            warn!(event = "store_error", watch = %def.id, "cannot store the breaches before the watch; a restart reads them again over the same window");
        }
    }
}
