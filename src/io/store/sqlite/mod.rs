//! `SqliteStore`, the embedded store: one SQLite file in WAL mode with
//! `synchronous=FULL`, its schema versioned with `PRAGMA user_version` and upgraded in
//! place; claims are single transactions that unique indexes make happen at most once.
//!
//! Split by concern: `schema.rs` the layout and its upgrades, `reads.rs` and
//! `writes.rs` the statements (their values through the shared `io::store::codec`);
//! this file opens the file, holds the one agent's leases (in memory: one agent per
//! file) and checks the fence of every owner's write before it reaches `writes`.

mod orders;
mod reads;
mod schema;
mod writes;

pub use schema::SCHEMA_VERSION;

use crate::core::eval::Labels;
use crate::io::store::api::*;
use crate::io::store::statefile;
use rusqlite::Connection;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// The ids of the watches the one agent holds (seeded hashing: ids come from the API).
type Held = std::collections::HashSet<String, foldhash::fast::RandomState>;

/// The most memory SQLite's page cache takes, in KiB (`PRAGMA cache_size`): the
/// pages of about 100,000 watches' last polls and state. It grows only as pages are
/// read.
const PAGE_CACHE_KIB: i64 = 64 * 1024;

/// The embedded store: one SQLite file.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// One agent per state file, for as long as the store is open.
    _lock: statefile::StateLock,
    /// The watches whose (in-memory) lease the one agent holds: it holds every
    /// running watch, each with token 1, and nothing ever takes one over. (Hashed:
    /// every last poll's fence looks a watch up here, and in a tree of 100,000 ids
    /// each lookup was a score of string comparisons.)
    held: Mutex<Held>,
}

impl SqliteStore {
    /// Opens (or creates) the state file: first the exclusive lock (a second agent on
    /// the same file fails here, naming the holder), then owner-only modes on the file
    /// and its `-wal`/`-shm` siblings (see `statefile`), then SQLite.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let lock = statefile::lock(path)?;
        let warn_wide = |tightened: Vec<(PathBuf, u32)>| {
            for (file, mode) in tightened {
                tracing::warn!(event = "state_file_mode", path = %file.display(), was = %format!("{mode:o}"),
                    "{} was readable by others (mode {mode:o}); it is now readable by its owner only (600)", file.display());
            }
        };
        warn_wide(statefile::secure(path)?);
        let conn = Connection::open(path).map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        // SQLite gives -wal and -shm the database's mode; check them once they exist.
        warn_wide(statefile::secure(path)?);
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open_err)?;
        // SQLite's own page cache, at most this many KiB (its default is 2 MiB). The
        // last polls' flush and a restart's reads touch every watch's rows: at
        // 100,000 watches with 2 MiB, each statement read its pages back from the
        // kernel (`pread`, a tenth of the agent's CPU in a restart's profile).
        conn.pragma_update(None, "cache_size", -PAGE_CACHE_KIB)
            .map_err(open_err)?;
        let mut conn = conn;
        schema::migrate(&mut conn, path)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            _lock: lock,
            held: Mutex::default(),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `check_fence` for a write (the one agent holds every lease it took: trivially
    /// satisfied, but the same API as the shared store).
    fn fence(&self, id: &str, fence: &Fence, what: &str) -> Result<(), StoreError> {
        self.check_fence(id, &fence.holder, fence.token, what.to_string())
    }

    /// `Fenced` unless the one agent holds `id`'s lease with `token`.
    fn check_fence(
        &self,
        id: &str,
        holder: &str,
        token: i64,
        what: String,
    ) -> Result<(), StoreError> {
        let _ = holder;
        if holds(&self.held(), id, token) {
            Ok(())
        } else {
            Err(StoreError::Fenced {
                what,
                id: id.to_string(),
                token,
            })
        }
    }
}

/// Whether the one agent holds `id`'s lease with `token` (the fence of every write).
fn holds(held: &Held, id: &str, token: i64) -> bool {
    token == 1 && held.contains(id)
}

impl Store for SqliteStore {
    // A watch stored here is held by this agent from its commit on: the connection
    // stays locked until the held set names the new watches (connection, then held
    // set: the order `save_polls` takes them in), so that an adoption round between
    // the commit and the creator's `acquire_lease` can never take a new watch and
    // start it a second time.
    fn create(&self, w: &NewWatch) -> Result<Created, StoreError> {
        let mut conn = self.conn();
        let created = writes::create(&mut conn, w)?;
        if let Created::New(rec) = &created {
            self.held().insert(rec.def.id.clone());
        }
        Ok(created)
    }

    fn create_many(&self, ws: &[NewWatch]) -> Result<CreatedMany, StoreError> {
        let mut conn = self.conn();
        let created = writes::create_many(&mut conn, ws)?;
        if let CreatedMany::Stored(all) = &created {
            let mut held = self.held();
            for c in all {
                if let Created::New(rec) = c {
                    held.insert(rec.def.id.clone());
                }
            }
        }
        Ok(created)
    }

    fn get(&self, id: &str) -> Result<Option<WatchRecord>, StoreError> {
        reads::get(&self.conn(), id)
    }

    fn list(&self, state: Option<WatchState>) -> Result<Vec<WatchRecord>, StoreError> {
        reads::list(&self.conn(), state)
    }

    fn count_by_state(&self) -> Result<Vec<(WatchState, i64)>, StoreError> {
        reads::count_by_state(&self.conn())
    }

    fn clear_series(
        &self,
        id: &str,
        fence: &Fence,
        rule: &str,
        labels: &Labels,
    ) -> Result<(), StoreError> {
        self.fence(id, fence, "write of a resolved series")?;
        writes::clear_series(&self.conn(), id, rule, labels)
    }

    fn series(&self, id: &str) -> Result<Vec<SeriesRow>, StoreError> {
        reads::series(&self.conn(), id)
    }

    fn save_polls(&self, holder: &str, polls: &[PollMark]) -> Result<Vec<String>, StoreError> {
        if polls.is_empty() {
            return Ok(Vec::new());
        }
        let _ = holder;
        let mut conn = self.conn();
        // Every mark's fence checked at one instant, under the connection (the order
        // `create` takes them in), and the held set let go before the write: a
        // renewal or a new watch's lease never waits for the flush's transaction.
        let held: Vec<bool> = {
            let held = self.held();
            polls.iter().map(|p| holds(&held, &p.id, p.token)).collect()
        };
        writes::save_polls(&mut conn, polls, &held)
    }

    fn breach_windows(&self, id: &str) -> Result<BTreeMap<String, Windows>, StoreError> {
        reads::breach_windows(&self.conn(), id)
    }

    fn polls(&self, id: &str) -> Result<BTreeMap<String, PollState>, StoreError> {
        reads::polls(&self.conn(), id)
    }

    fn claim_action(
        &self,
        id: &str,
        a: &NewAction,
        fired: &[SeriesRow],
    ) -> Result<i64, StoreError> {
        writes::claim_action(&mut self.conn(), id, a, fired)
    }

    fn claim_rerun(&self, id: &str, old: i64, a: &NewAction) -> Result<i64, StoreError> {
        writes::claim_rerun(&mut self.conn(), id, old, a)
    }

    fn action_spawned(&self, action: i64, p: &ProcessId) -> Result<(), StoreError> {
        writes::action_spawned(&self.conn(), action, p)
    }

    fn write_noted(
        &self,
        id: &str,
        fence: &Fence,
        change: Noted<'_>,
        notes: &[NewNote],
    ) -> Result<(), StoreError> {
        self.fence(id, fence, &change.what())?;
        writes::write_noted(&mut self.conn(), id, change, notes)
    }

    fn outbox_due(
        &self,
        holder: &str,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<NoteRow>, StoreError> {
        writes::outbox_due(&mut self.conn(), holder, lease, max)
    }

    fn outbox_mark(&self, note: i64, mark: NoteMark<'_>) -> Result<(), StoreError> {
        writes::outbox_mark(&self.conn(), note, mark)
    }

    fn actions(&self, id: &str) -> Result<Vec<ActionRow>, StoreError> {
        reads::actions(&self.conn(), id)
    }

    // One lock of the connection and one read transaction for all of them (the
    // per-statement transactions' file locks and the calls were most of the cost).
    fn resume_reads(
        &self,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, ResumeRead>, StoreError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction()
            .map_err(crate::io::store::codec::sql("read the watches to resume"))?;
        let mut out = std::collections::HashMap::with_capacity(ids.len());
        for id in ids {
            let read = ResumeRead {
                actions: reads::actions(&tx, id)?,
                windows: reads::breach_windows(&tx, id)?,
                series: reads::series(&tx, id)?,
                polls: reads::polls(&tx, id)?,
                orders: orders::of_watch(&tx, id)?,
            };
            out.insert(id.clone(), read);
        }
        Ok(out)
    }

    fn put_baselines(
        &self,
        id: &str,
        fence: &Fence,
        rule: &str,
        values: &[(Labels, f64)],
    ) -> Result<(), StoreError> {
        self.put_baselines_many(id, fence, &[(rule.to_string(), values.to_vec())])
    }

    fn put_baselines_many(
        &self,
        id: &str,
        fence: &Fence,
        rules: &[(String, Vec<(Labels, f64)>)],
    ) -> Result<(), StoreError> {
        self.fence(id, fence, "write of a baseline")?;
        let mut conn = self.conn();
        let tx = conn
            .transaction()
            .map_err(crate::io::store::codec::sql("begin a transaction"))?;
        for (rule, values) in rules {
            writes::put_baselines_in(&tx, id, rule, values)?;
        }
        tx.commit()
            .map_err(crate::io::store::codec::sql("store a baseline"))
    }

    fn baselines(&self, id: &str) -> Result<BTreeMap<String, Vec<(Labels, f64)>>, StoreError> {
        reads::baselines(&self.conn(), id)
    }

    fn shared(&self) -> bool {
        false
    }

    fn clock_ms(&self) -> Result<i64, StoreError> {
        Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64))
    }

    fn heartbeat(&self, _agent: &str, _ttl: Duration) -> Result<usize, StoreError> {
        Ok(1)
    }

    fn acquire_lease(
        &self,
        id: &str,
        _holder: &str,
        _ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        self.held().insert(id.to_string());
        Ok(Some(Lease {
            watch: id.to_string(),
            token: 1,
        }))
    }

    fn renew_leases(
        &self,
        _holder: &str,
        ids: &[String],
        _ttl: Duration,
    ) -> Result<Vec<Lease>, StoreError> {
        let held = self.held();
        Ok(ids
            .iter()
            .filter(|w| held.contains(*w))
            .map(|w| Lease {
                watch: w.clone(),
                token: 1,
            })
            .collect())
    }

    fn adopt_leases(
        &self,
        _holder: &str,
        _ttl: Duration,
        max: usize,
    ) -> Result<Vec<Lease>, StoreError> {
        let running = reads::running_ids(&self.conn())?;
        let mut held = self.held();
        let mut out = Vec::new();
        for id in running {
            if out.len() >= max {
                break;
            }
            if !held.contains(&id) {
                held.insert(id.clone());
                out.push(Lease {
                    watch: id,
                    token: 1,
                });
            }
        }
        Ok(out)
    }

    fn release_lease(&self, id: &str, _holder: &str) -> Result<(), StoreError> {
        self.held().remove(id);
        Ok(())
    }

    fn claim_fenced(
        &self,
        id: &str,
        holder: &str,
        token: i64,
        action: &NewAction,
        fired: &[SeriesRow],
    ) -> Result<i64, StoreError> {
        self.check_fence(
            id,
            holder,
            token,
            format!("claim of the {} action", action.kind),
        )?;
        self.claim_action(id, action, fired)
    }

    fn claim_rerun_fenced(
        &self,
        id: &str,
        holder: &str,
        token: i64,
        old: i64,
        action: &NewAction,
    ) -> Result<i64, StoreError> {
        self.check_fence(
            id,
            holder,
            token,
            format!("claim of the re-run of action {old}"),
        )?;
        self.claim_rerun(id, old, action)
    }

    fn order(
        &self,
        id: &str,
        order: &crate::io::store::NewOrder,
    ) -> Result<crate::io::store::Ordered, StoreError> {
        orders::order(&mut self.conn(), id, order)
    }

    fn orders_pending(&self, holder: &str) -> Result<Vec<crate::io::store::OrderRow>, StoreError> {
        // One agent per file: every pending order is its own.
        let _ = holder;
        orders::pending(&self.conn())
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
        if let Some(f) = fence {
            self.fence(id, f, "write of an order's result")?;
        }
        orders::done(
            &mut self.conn(),
            id,
            fence.is_some(),
            order,
            state,
            result,
            at_ms,
        )
    }

    fn orders(&self, id: &str) -> Result<Vec<crate::io::store::OrderRow>, StoreError> {
        orders::of_watch(&self.conn(), id)
    }
}
