//! `PgStore`, the shared store: several agents on one PostgreSQL database.
//!
//! The schema is created and migrated by the agent under one advisory lock (three
//! agents starting at once do not race) and versioned in `rollwatch_schema`; a newer
//! version than this build knows is refused. Leases live in `leases` (holder, expiry on
//! the database's clock, fencing token); `agents` holds one heartbeat row per agent.
//!
//! The `Store` trait is synchronous (its callers are the watch loop's synchronous
//! sinks and journal), so the store runs the async client on its own small runtime and
//! each call waits for its answer, bounded by `CALL_TIMEOUT`: a database that does not
//! answer is an error, never a hang.
//!
//! Split by concern: `schema.rs` (layout, migration), `leases.rs` (ownership and the
//! fence), `writes.rs`, `reads.rs`, `outbox.rs` (the statements, their values through
//! the shared `io::store::codec`), `errors.rs`; this file connects and carries each
//! trait call, its arguments owned, onto the store's runtime.

mod errors;
mod leases;
mod orders;
mod outbox;
mod reads;
mod schema;
mod writes;

pub use schema::PG_SCHEMA_VERSION;

use super::pgconn::{self, Target};
use super::pgtls::{self, Connector};
use crate::core::eval::Labels;
use crate::io::store::api::*;
use crate::io::store::codec::labels_text;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use errors::{pg_err, pool_err};
use leases::ms;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;
use writes::NotedOwned;

/// The longest one store call may take (pool wait, connect and statements).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The shared store: a pool of connections to one PostgreSQL database.
pub struct PgStore {
    pool: Pool,
    /// A connection of its own for the lease renewal, which must never wait behind
    /// the watches' calls for one of `pool`'s (see `StoreHandle::call_apart`).
    lease_pool: Pool,
    /// The store as messages show it (`pgconn::render`: never the password).
    url: String,
    /// The runtime the client's connections run on (see the module's doc).
    rt: Option<tokio::runtime::Runtime>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Dropping a runtime may block; this may run inside the agent's runtime.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl PgStore {
    /// A store on `url`: a `postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?...]` URL or
    /// libpq's key=value pairs (see `pgconn`; TLS as `pgtls` says). Nothing is
    /// connected yet: `migrate` is the first round trip. The TLS files are read here,
    /// so a missing or bad one is an error before any connection.
    pub fn connect(url: &str) -> Result<PgStore, StoreError> {
        let Target {
            config: mut cfg,
            tls,
            shown,
        } = pgconn::parse(url).map_err(StoreError::PgUrl)?;
        let bad = |reason: String| StoreError::PgRefused {
            url: shown.clone(),
            what: "set up the connection",
            reason,
        };
        let connector = pgtls::connector(&tls).map_err(|e| bad(e.to_string()))?;
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(Duration::from_secs(5));
        }
        cfg.application_name("rollwatch");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("rollwatch-pg")
            .enable_all()
            .build()
            .map_err(|e| bad(format!("cannot start the client's runtime: {e}")))?;
        let fallback_warned = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let pool_of = |size: usize| {
            let mgr = Manager::from_connect(
                cfg.clone(),
                Connector {
                    tls: connector.clone(),
                    fallback_warned: fallback_warned.clone(),
                },
                ManagerConfig {
                    recycling_method: RecyclingMethod::Fast,
                },
            );
            Pool::builder(mgr)
                .max_size(size)
                .runtime(Runtime::Tokio1)
                .wait_timeout(Some(CALL_TIMEOUT))
                .create_timeout(Some(Duration::from_secs(5)))
                .recycle_timeout(Some(Duration::from_secs(5)))
                .build()
                .map_err(|e| bad(format!("{e}")))
        };
        let pool = pool_of(8)?;
        let lease_pool = pool_of(1)?;
        Ok(PgStore {
            pool,
            lease_pool,
            url: shown,
            rt: Some(rt),
        })
    }

    /// `connect` and `migrate`.
    pub fn open(url: &str) -> Result<PgStore, StoreError> {
        let s = PgStore::connect(url)?;
        s.migrate()?;
        Ok(s)
    }

    /// The store as messages show it: never the password.
    pub fn shown_url(&self) -> &str {
        &self.url
    }

    /// Runs `f` with a pooled client on the store's runtime and waits for it (never
    /// longer than `CALL_TIMEOUT`). Safe from any thread, async or not.
    fn call<T, F, Fut>(&self, what: &'static str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(deadpool_postgres::Object) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send,
    {
        self.call_in(&self.pool, what, f)
    }

    /// `call` with a connection of `pool`.
    fn call_in<T, F, Fut>(&self, pool: &Pool, what: &'static str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(deadpool_postgres::Object) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send,
    {
        let pool = pool.clone();
        let url = self.url.clone();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let rt = self
            .rt
            .as_ref()
            .expect("the runtime lives as long as the store");
        rt.spawn(async move {
            let work = async {
                let client = pool.get().await.map_err(|e| pool_err(&url, what, e))?;
                f(client).await
            };
            let r = match tokio::time::timeout(CALL_TIMEOUT, work).await {
                Ok(r) => r,
                Err(_) => Err(StoreError::Pg {
                    url,
                    what,
                    reason: format!("no answer within {}s", CALL_TIMEOUT.as_secs()),
                }),
            };
            let _ = tx.send(r);
        });
        rx.recv().unwrap_or_else(|_| {
            Err(StoreError::Pg {
                url: self.url.clone(),
                what,
                reason: "the call was dropped".into(),
            })
        })
    }

    /// Creates or upgrades the schema in one transaction, under an advisory lock;
    /// refuses a newer schema (`NewerPgSchema`).
    pub fn migrate(&self) -> Result<(), StoreError> {
        let url = self.url.clone();
        self.call("create or upgrade the schema", move |c| {
            schema::migrate(c, url)
        })
    }

    /// A round trip to the database (`SELECT 1`).
    pub fn ping(&self) -> Result<(), StoreError> {
        let url = self.url.clone();
        self.call("reach the database", move |c| async move {
            c.simple_query("SELECT 1")
                .await
                .map(|_| ())
                .map_err(pg_err(&url, "reach the database"))
        })
    }
}

impl Store for PgStore {
    fn create(&self, w: &NewWatch) -> Result<Created, StoreError> {
        let (url, w) = (self.url.clone(), w.clone());
        self.call("store a watch", move |c| writes::create(c, url, w))
    }

    fn create_many(&self, ws: &[NewWatch]) -> Result<CreatedMany, StoreError> {
        let (url, ws) = (self.url.clone(), ws.to_vec());
        self.call("store watches", move |c| writes::create_many(c, url, ws))
    }

    fn get(&self, id: &str) -> Result<Option<WatchRecord>, StoreError> {
        let (url, id) = (self.url.clone(), id.to_string());
        self.call("read a watch", move |c| reads::get(c, url, id))
    }

    fn list(&self, state: Option<WatchState>) -> Result<Vec<WatchRecord>, StoreError> {
        let url = self.url.clone();
        let state = state.map(|s| s.as_str().to_string());
        self.call("list watches", move |c| reads::list(c, url, state))
    }

    fn running_among(&self, ids: &[String]) -> Result<Vec<WatchRecord>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let (url, ids) = (self.url.clone(), ids.to_vec());
        self.call("read adopted watches", move |c| {
            reads::running_among(c, url, ids)
        })
    }

    fn resume_reads(
        &self,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, ResumeRead>, StoreError> {
        if ids.is_empty() {
            return Ok(Default::default());
        }
        let (url, ids) = (self.url.clone(), ids.to_vec());
        self.call("read the watches to resume", move |c| {
            reads::resume_reads(c, url, ids)
        })
    }

    fn count_by_state(&self) -> Result<Vec<(WatchState, i64)>, StoreError> {
        let url = self.url.clone();
        self.call("count watches", move |c| reads::count_by_state(c, url))
    }

    fn clear_series(
        &self,
        id: &str,
        fence: &Fence,
        rule: &str,
        labels: &Labels,
    ) -> Result<(), StoreError> {
        let (url, id, fence, rule, labels) = (
            self.url.clone(),
            id.to_string(),
            fence.clone(),
            rule.to_string(),
            labels_text(labels),
        );
        self.call("clear a series' breach state", move |c| {
            writes::clear_series(c, url, id, fence, rule, labels)
        })
    }

    fn series(&self, id: &str) -> Result<Vec<SeriesRow>, StoreError> {
        let (url, id) = (self.url.clone(), id.to_string());
        self.call("read breach state", move |c| reads::series(c, url, id))
    }

    fn save_polls(&self, holder: &str, polls: &[PollMark]) -> Result<Vec<String>, StoreError> {
        if polls.is_empty() {
            return Ok(Vec::new());
        }
        let (url, holder, polls) = (self.url.clone(), holder.to_string(), polls.to_vec());
        self.call("record last polls", move |c| {
            writes::save_polls(c, url, holder, polls)
        })
    }

    fn breach_windows(&self, id: &str) -> Result<BTreeMap<String, Windows>, StoreError> {
        let (url, id) = (self.url.clone(), id.to_string());
        self.call("read breach windows", move |c| {
            reads::breach_windows(c, url, id)
        })
    }

    fn polls(&self, id: &str) -> Result<BTreeMap<String, PollState>, StoreError> {
        let (url, id) = (self.url.clone(), id.to_string());
        self.call("read last polls", move |c| reads::polls(c, url, id))
    }

    fn claim_action(
        &self,
        id: &str,
        action: &NewAction,
        fired: &[SeriesRow],
    ) -> Result<i64, StoreError> {
        let (url, id, a, fired) = (
            self.url.clone(),
            id.to_string(),
            action.clone(),
            fired.to_vec(),
        );
        self.call("claim an action", move |c| {
            writes::claim_in(c, url, id, None, a, fired)
        })
    }

    fn claim_rerun(&self, id: &str, old: i64, action: &NewAction) -> Result<i64, StoreError> {
        let (url, id, a) = (self.url.clone(), id.to_string(), action.clone());
        self.call("claim a re-run", move |c| {
            writes::rerun_in(c, url, id, None, old, a)
        })
    }

    fn action_spawned(&self, action: i64, p: &ProcessId) -> Result<(), StoreError> {
        let (url, p) = (self.url.clone(), p.clone());
        self.call("record an action's process", move |c| {
            writes::action_spawned(c, url, action, p)
        })
    }

    fn actions(&self, id: &str) -> Result<Vec<ActionRow>, StoreError> {
        let (url, id) = (self.url.clone(), id.to_string());
        self.call("read actions", move |c| reads::actions(c, url, id))
    }

    fn put_baselines(
        &self,
        id: &str,
        fence: &Fence,
        rule: &str,
        values: &[(Labels, f64)],
    ) -> Result<(), StoreError> {
        let (url, id, fence, rule) = (
            self.url.clone(),
            id.to_string(),
            fence.clone(),
            rule.to_string(),
        );
        let rows: Vec<(String, f64)> = values.iter().map(|(l, v)| (labels_text(l), *v)).collect();
        self.call("store a baseline", move |c| {
            writes::put_baselines(c, url, id, fence, rule, rows)
        })
    }

    fn baselines(&self, id: &str) -> Result<BTreeMap<String, Vec<(Labels, f64)>>, StoreError> {
        let (url, id) = (self.url.clone(), id.to_string());
        self.call("read baselines", move |c| reads::baselines(c, url, id))
    }

    fn shared(&self) -> bool {
        true
    }

    fn clock_ms(&self) -> Result<i64, StoreError> {
        let url = self.url.clone();
        self.call("read the database's clock", move |c| {
            leases::clock_ms(c, url)
        })
    }

    fn heartbeat(&self, agent: &str, ttl: Duration) -> Result<usize, StoreError> {
        let (url, agent) = (self.url.clone(), agent.to_string());
        self.call("record the agent's heartbeat", move |c| {
            leases::heartbeat(c, url, agent, ttl)
        })
    }

    fn acquire_lease(
        &self,
        id: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let (url, id, holder) = (self.url.clone(), id.to_string(), holder.to_string());
        self.call("take a watch's lease", move |c| {
            leases::acquire_lease(c, url, id, holder, ttl)
        })
    }

    fn acquire_leases(
        &self,
        ids: &[String],
        holder: &str,
        ttl: Duration,
    ) -> Result<Vec<Lease>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let (url, holder, ids) = (self.url.clone(), holder.to_string(), ids.to_vec());
        self.call("take watches' leases", move |c| {
            leases::acquire_leases(c, url, ids, holder, ttl)
        })
    }

    fn renew_leases(
        &self,
        holder: &str,
        ids: &[String],
        ttl: Duration,
    ) -> Result<Vec<Lease>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let (url, holder, ids) = (self.url.clone(), holder.to_string(), ids.to_vec());
        self.call_in(&self.lease_pool, "renew leases", move |c| {
            leases::renew_leases(c, url, holder, ids, ttl)
        })
    }

    fn adopt_leases(
        &self,
        holder: &str,
        ttl: Duration,
        max: usize,
    ) -> Result<Vec<Lease>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let (url, holder) = (self.url.clone(), holder.to_string());
        let max = max.min(i64::MAX as usize) as i64;
        self.call("adopt expired leases", move |c| {
            leases::adopt_leases(c, url, holder, ttl, max)
        })
    }

    fn release_lease(&self, id: &str, holder: &str) -> Result<(), StoreError> {
        let (url, id, holder) = (self.url.clone(), id.to_string(), holder.to_string());
        self.call("release a lease", move |c| {
            leases::release_lease(c, url, id, holder)
        })
    }

    fn claim_fenced(
        &self,
        id: &str,
        holder: &str,
        token: i64,
        action: &NewAction,
        fired: &[SeriesRow],
    ) -> Result<i64, StoreError> {
        let (url, id, a, fired) = (
            self.url.clone(),
            id.to_string(),
            action.clone(),
            fired.to_vec(),
        );
        let fence = Some((holder.to_string(), token));
        self.call("claim an action", move |c| {
            writes::claim_in(c, url, id, fence, a, fired)
        })
    }

    fn claim_rerun_fenced(
        &self,
        id: &str,
        holder: &str,
        token: i64,
        old: i64,
        action: &NewAction,
    ) -> Result<i64, StoreError> {
        let (url, id, a) = (self.url.clone(), id.to_string(), action.clone());
        let fence = Some((holder.to_string(), token));
        self.call("claim a re-run", move |c| {
            writes::rerun_in(c, url, id, fence, old, a)
        })
    }

    fn write_noted(
        &self,
        id: &str,
        fence: &Fence,
        change: Noted<'_>,
        notes: &[NewNote],
    ) -> Result<(), StoreError> {
        let (what, doing) = (change.what(), change.doing());
        let (url, id, fence, change, notes) = (
            self.url.clone(),
            id.to_string(),
            fence.clone(),
            NotedOwned::of(&change),
            notes.to_vec(),
        );
        self.call(doing, move |c| {
            writes::write_noted(c, url, id, fence, change, notes, (what, doing))
        })
    }

    fn outbox_due(
        &self,
        holder: &str,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<NoteRow>, StoreError> {
        let (url, holder, lease, max) =
            (self.url.clone(), holder.to_string(), ms(lease), max as i64);
        self.call("take notifications", move |c| {
            outbox::outbox_due(c, url, holder, lease, max)
        })
    }

    fn outbox_mark(&self, note: i64, mark: NoteMark<'_>) -> Result<(), StoreError> {
        let url = self.url.clone();
        let (done, attempts, after) = match mark {
            NoteMark::Done { .. } => (true, 0, 0),
            NoteMark::Retry { attempts, after } => (false, attempts, ms(after)),
        };
        self.call("record a notification's delivery", move |c| {
            outbox::outbox_mark(c, url, note, done, attempts, after)
        })
    }

    fn order(
        &self,
        id: &str,
        order: &crate::io::store::NewOrder,
    ) -> Result<crate::io::store::Ordered, StoreError> {
        let (url, id, o) = (self.url.clone(), id.to_string(), order.clone());
        self.call("store an order", move |c| orders::order(c, url, id, o))
    }

    fn orders_pending(&self, holder: &str) -> Result<Vec<crate::io::store::OrderRow>, StoreError> {
        let (url, holder) = (self.url.clone(), holder.to_string());
        self.call("read pending orders", move |c| {
            orders::pending(c, url, holder)
        })
    }

    fn order_done(
        &self,
        id: &str,
        fence: Option<&Fence>,
        order: i64,
        state: crate::io::store::OrderState,
        result: &str,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        let (url, id, fence, result) = (
            self.url.clone(),
            id.to_string(),
            fence.cloned(),
            result.to_string(),
        );
        self.call("settle an order", move |c| {
            orders::done(c, url, id, fence, order, state, result, at_ms)
        })
    }

    fn orders(&self, id: &str) -> Result<Vec<crate::io::store::OrderRow>, StoreError> {
        let (url, id) = (self.url.clone(), id.to_string());
        self.call("read orders", move |c| orders::of_watch(c, url, id))
    }
}
