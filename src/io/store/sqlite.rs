//! `SqliteStore`, the embedded store: one SQLite file in WAL mode with
//! `synchronous=FULL`, its schema versioned with `PRAGMA user_version` and upgraded in
//! place; claims are single transactions that unique indexes make happen at most once.

use super::*;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// The embedded store: one SQLite file.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// One agent per state file, for as long as the store is open.
    _lock: statefile::StateLock,
    /// The watches whose (in-memory) lease the one agent holds: it holds every
    /// running watch, each with token 1, and nothing ever takes one over.
    held: Mutex<std::collections::BTreeSet<String>>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS watches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    rules TEXT NOT NULL,
    rules_text TEXT NOT NULL,
    vars TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    state TEXT NOT NULL,
    outcome TEXT,
    exit_code INTEGER,
    detail TEXT,
    finished_ms INTEGER
);
CREATE INDEX IF NOT EXISTS watches_state ON watches(state);
CREATE TABLE IF NOT EXISTS series (
    watch_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    labels TEXT NOT NULL,
    phase TEXT NOT NULL,
    since_ms INTEGER NOT NULL,
    last_value REAL,
    PRIMARY KEY (watch_id, rule, labels)
);
CREATE TABLE IF NOT EXISTS polls (
    watch_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    last_ms INTEGER NOT NULL,
    PRIMARY KEY (watch_id, rule)
);
CREATE TABLE IF NOT EXISTS actions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    watch_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    rule TEXT NOT NULL,
    argv TEXT NOT NULL,
    state TEXT NOT NULL,
    result TEXT,
    succeeded INTEGER,
    started_ms INTEGER NOT NULL,
    finished_ms INTEGER,
    rerun_of INTEGER
);
CREATE INDEX IF NOT EXISTS actions_watch ON actions(watch_id);
";

/// The schema version this build writes (`PRAGMA user_version`). 0 is the first
/// release's unversioned schema, which `migrate` upgrades in place.
pub const SCHEMA_VERSION: i64 = 5;

/// Version 2: an action's environment and process, and "at most one claim per
/// (watch, kind), at most one re-run per action" as unique indexes: the database,
/// not the timing of two writers, makes a second claim impossible. Rows that an older
/// agent wrote twice (the double rollback this version fixes) are kept, marked
/// `legacy` and left out of the indexes, so the upgrade never fails on them; the
/// first row of a kind still decides its watch.
const SCHEMA_V2: &str = "
ALTER TABLE actions ADD COLUMN env TEXT NOT NULL DEFAULT '[]';
ALTER TABLE actions ADD COLUMN pgid INTEGER;
ALTER TABLE actions ADD COLUMN start_ticks INTEGER;
ALTER TABLE actions ADD COLUMN boot_id TEXT;
ALTER TABLE actions ADD COLUMN legacy INTEGER NOT NULL DEFAULT 0;
ALTER TABLE polls ADD COLUMN last_ok INTEGER NOT NULL DEFAULT 0;
ALTER TABLE polls ADD COLUMN ever_ok INTEGER NOT NULL DEFAULT 0;
ALTER TABLE polls ADD COLUMN ever_data INTEGER NOT NULL DEFAULT 0;
UPDATE actions SET legacy = 1 WHERE rerun_of IS NULL AND id NOT IN
    (SELECT min(id) FROM actions WHERE rerun_of IS NULL GROUP BY watch_id, kind);
UPDATE actions SET legacy = 1 WHERE rerun_of IS NOT NULL AND id NOT IN
    (SELECT min(id) FROM actions WHERE rerun_of IS NOT NULL GROUP BY rerun_of);
CREATE UNIQUE INDEX actions_once ON actions(watch_id, kind)
    WHERE rerun_of IS NULL AND legacy = 0;
CREATE UNIQUE INDEX actions_rerun_once ON actions(rerun_of)
    WHERE rerun_of IS NOT NULL AND legacy = 0;
";

/// Version 3 (judges): the `baseline: before:` values of a watch, taken once at its
/// start. Each (watch, rule) that was taken has a marker row (`labels` empty, `value`
/// NULL), so "taken, no series" differs from "not taken yet".
const SCHEMA_V3: &str = "
CREATE TABLE IF NOT EXISTS baselines (
    watch_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    labels TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (watch_id, rule, labels)
);
";

/// Version 4 (outbox): notifications written in the transaction of the state change
/// they report, delivered after its commit. `due_ms` is when a note may be taken next
/// (a taken note is due again when its taker's lease on it ran out); `done_ms` is set
/// once it was delivered or given up.
const SCHEMA_V4: &str = "
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    watch_id TEXT NOT NULL,
    channel INTEGER NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    due_ms INTEGER NOT NULL,
    holder TEXT,
    done_ms INTEGER,
    result TEXT
);
CREATE INDEX IF NOT EXISTS outbox_open ON outbox(watch_id, channel, id) WHERE done_ms IS NULL;
";

/// Version 5 (issue 19): the `breaches` windows of a rule's series, written with its
/// last poll (`PollMark::windows`, JSON). Version 4 is another change's.
const SCHEMA_V5: &str = "
ALTER TABLE polls ADD COLUMN windows TEXT;
";

/// Creates or upgrades the schema, in one transaction; refuses a newer one.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let open_err = |source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    };
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(open_err)?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(open_err)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found: version,
            known: SCHEMA_VERSION,
        });
    }
    if version < 2 {
        tx.execute_batch(SCHEMA).map_err(open_err)?;
        tx.execute_batch(SCHEMA_V2).map_err(open_err)?;
    }
    if version < 3 {
        tx.execute_batch(SCHEMA_V3).map_err(open_err)?;
    }
    if version < 4 {
        tx.execute_batch(SCHEMA_V4).map_err(open_err)?;
    }
    if version < 5 {
        tx.execute_batch(SCHEMA_V5).map_err(open_err)?;
    }
    if version < SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(open_err)?;
    }
    // Notes an older build marked done instead of deleting (no version step: the
    // statement is idempotent and finds nothing once they are gone).
    tx.execute("DELETE FROM outbox WHERE done_ms IS NOT NULL", [])
        .map_err(open_err)?;
    tx.commit().map_err(open_err)
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
        let mut conn = conn;
        migrate(&mut conn, path)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            _lock: lock,
            held: Mutex::default(),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn held(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeSet<String>> {
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
        if token == 1 && self.held().contains(id) {
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

const WATCH_COLS: &str =
    "id, rules, rules_text, vars, duration_ms, created_ms, state, outcome, exit_code, detail, finished_ms";

fn watch_row(r: &rusqlite::Row) -> rusqlite::Result<(WatchRecord, String, String)> {
    let vars: String = r.get(3)?;
    let state: String = r.get(6)?;
    let exit_code: Option<i64> = r.get(8)?;
    Ok((
        WatchRecord {
            def: NewWatch {
                id: r.get(0)?,
                rules: r.get(1)?,
                rules_text: r.get(2)?,
                vars: BTreeMap::new(),
                duration_ms: r.get(4)?,
                created_ms: r.get(5)?,
            },
            state: WatchState::Running,
            outcome: r.get(7)?,
            exit_code: exit_code.map(|c| c.clamp(0, 255) as u8),
            detail: r.get(9)?,
            finished_ms: r.get(10)?,
        },
        vars,
        state,
    ))
}

fn decode_watch(
    (mut w, vars, state): (WatchRecord, String, String),
) -> Result<WatchRecord, StoreError> {
    let corrupt = |what, reason: String| StoreError::Corrupt {
        what,
        id: w.def.id.clone(),
        reason,
    };
    w.def.vars = serde_json::from_str(&vars).map_err(|e| corrupt("vars", e.to_string()))?;
    w.state = WatchState::parse(&state).ok_or_else(|| corrupt("state", state.clone()))?;
    Ok(w)
}

/// Records a watch's ending (inside the caller's transaction).
fn finish_in(conn: &Connection, id: &str, e: &Ending) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE watches SET state = ?2, outcome = ?3, exit_code = ?4, detail = ?5, finished_ms = ?6 WHERE id = ?1",
        params![id, e.state.as_str(), e.outcome, e.exit_code as i64, e.detail, e.at_ms],
    )
    .map_err(sql("record how a watch ended"))?;
    conn.execute("DELETE FROM polls WHERE watch_id = ?1", [id])
        .map_err(sql("record how a watch ended"))?;
    Ok(())
}

/// Records a pending or firing series, keeping an existing `since`.
fn upsert_series(conn: &Connection, id: &str, r: &SeriesRow) -> Result<(), StoreError> {
    let labels = serde_json::to_string(&r.labels).unwrap_or_else(|_| "{}".into());
    conn.prepare_cached(
        "INSERT INTO series (watch_id, rule, labels, phase, since_ms, last_value)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (watch_id, rule, labels)
         DO UPDATE SET phase = excluded.phase, last_value = excluded.last_value",
    )
    .and_then(|mut s| {
        s.execute(params![
            id,
            r.rule,
            labels,
            phase_str(r.phase),
            r.since_ms,
            r.last_value
        ])
    })
    .map_err(sql("record a series' breach state"))?;
    Ok(())
}

/// Inserts an action row as `started`; the unique indexes refuse a second claim.
fn insert_action(
    conn: &Connection,
    id: &str,
    a: &NewAction,
    rerun_of: Option<i64>,
) -> Result<i64, StoreError> {
    let argv = serde_json::to_string(&a.argv).unwrap_or_else(|_| "[]".into());
    let env = serde_json::to_string(&a.env).unwrap_or_else(|_| "[]".into());
    let r = conn.execute(
        "INSERT INTO actions (watch_id, kind, rule, argv, env, state, started_ms, rerun_of)
         VALUES (?1, ?2, ?3, ?4, ?5, 'started', ?6, ?7)",
        params![id, a.kind, a.rule, argv, env, a.at_ms, rerun_of],
    );
    match r {
        Ok(_) => Ok(conn.last_insert_rowid()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(StoreError::AlreadyClaimed {
                what: format!("the {} action", a.kind),
                id: id.to_string(),
            })
        }
        Err(e) => Err(StoreError::Sql {
            what: "record an action before it starts",
            source: e,
        }),
    }
}

/// Inserts the notes of a state change (inside its transaction).
fn insert_notes(conn: &Connection, id: &str, notes: &[NewNote]) -> Result<(), StoreError> {
    let now = crate::core::events::now_ms();
    for n in notes {
        conn.prepare_cached(
            "INSERT INTO outbox (watch_id, channel, kind, body, created_ms, due_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        )
        .and_then(|mut s| s.execute(params![id, n.channel, n.kind, n.body, now]))
        .map_err(sql("record a notification"))?;
    }
    Ok(())
}

fn phase_str(p: Phase) -> &'static str {
    match p {
        Phase::Pending => "pending",
        Phase::Firing => "firing",
    }
}

impl Store for SqliteStore {
    fn create(&self, w: &NewWatch) -> Result<Created, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sql("begin a transaction"))?;
        let existing = tx
            .query_row(
                &format!("SELECT {WATCH_COLS} FROM watches WHERE id = ?1"),
                [&w.id],
                watch_row,
            )
            .optional()
            .map_err(sql("read a watch"))?;
        if let Some(row) = existing {
            return Ok(Created::Existing(decode_watch(row)?));
        }
        let vars = serde_json::to_string(&w.vars).unwrap_or_else(|_| "{}".into());
        tx.execute(
            "INSERT INTO watches (id, rules, rules_text, vars, duration_ms, created_ms, state)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running')",
            params![
                w.id,
                w.rules,
                w.rules_text,
                vars,
                w.duration_ms,
                w.created_ms
            ],
        )
        .map_err(sql("store a watch"))?;
        tx.commit().map_err(sql("commit a watch"))?;
        Ok(Created::New(WatchRecord {
            def: w.clone(),
            state: WatchState::Running,
            outcome: None,
            exit_code: None,
            detail: None,
            finished_ms: None,
        }))
    }

    fn get(&self, id: &str) -> Result<Option<WatchRecord>, StoreError> {
        let row = self
            .conn()
            .query_row(
                &format!("SELECT {WATCH_COLS} FROM watches WHERE id = ?1"),
                [id],
                watch_row,
            )
            .optional()
            .map_err(sql("read a watch"))?;
        row.map(decode_watch).transpose()
    }

    fn list(&self, state: Option<WatchState>) -> Result<Vec<WatchRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {WATCH_COLS} FROM watches WHERE ?1 IS NULL OR state = ?1 ORDER BY seq"
            ))
            .map_err(sql("list watches"))?;
        let rows = stmt
            .query_map([state.map(|s| s.as_str())], watch_row)
            .map_err(sql("list watches"))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(decode_watch(row.map_err(sql("list watches"))?)?);
        }
        Ok(out)
    }

    fn count_by_state(&self) -> Result<Vec<(WatchState, i64)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT state, count(*) FROM watches GROUP BY state")
            .map_err(sql("count watches"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(sql("count watches"))?;
        let mut out = Vec::new();
        for row in rows {
            let (s, n) = row.map_err(sql("count watches"))?;
            if let Some(s) = WatchState::parse(&s) {
                out.push((s, n));
            }
        }
        Ok(out)
    }

    fn clear_series(
        &self,
        id: &str,
        fence: &Fence,
        rule: &str,
        labels: &Labels,
    ) -> Result<(), StoreError> {
        self.fence(id, fence, "write of a resolved series")?;
        let labels = serde_json::to_string(labels).unwrap_or_else(|_| "{}".into());
        self.conn()
            .prepare_cached("DELETE FROM series WHERE watch_id = ?1 AND rule = ?2 AND labels = ?3")
            .and_then(|mut s| s.execute(params![id, rule, labels]))
            .map_err(sql("clear a series' breach state"))?;
        Ok(())
    }

    fn series(&self, id: &str) -> Result<Vec<SeriesRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT rule, labels, phase, since_ms, last_value FROM series WHERE watch_id = ?1 ORDER BY rule, labels",
            )
            .map_err(sql("read breach state"))?;
        let rows = stmt
            .query_map([id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Option<f64>>(4)?,
                ))
            })
            .map_err(sql("read breach state"))?;
        let mut out = Vec::new();
        for row in rows {
            let (rule, labels, phase, since_ms, last_value) =
                row.map_err(sql("read breach state"))?;
            let corrupt = |reason: String| StoreError::Corrupt {
                what: "series",
                id: id.to_string(),
                reason,
            };
            let labels: Labels =
                serde_json::from_str(&labels).map_err(|e| corrupt(e.to_string()))?;
            let phase = match phase.as_str() {
                "pending" => Phase::Pending,
                "firing" => Phase::Firing,
                other => return Err(corrupt(format!("phase {other:?}"))),
            };
            out.push(SeriesRow {
                rule,
                labels,
                phase,
                since_ms,
                last_value,
            });
        }
        Ok(out)
    }

    fn save_polls(&self, holder: &str, polls: &[PollMark]) -> Result<Vec<String>, StoreError> {
        if polls.is_empty() {
            return Ok(Vec::new());
        }
        let mut refused = std::collections::BTreeSet::new();
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sql("begin a transaction"))?;
        {
            // Every right-hand side reads the row as it was before this update.
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO polls (watch_id, rule, last_ms, last_ok, ever_ok, ever_data, windows)
                     VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6)
                     ON CONFLICT (watch_id, rule) DO UPDATE SET
                         last_ok = CASE WHEN excluded.last_ms >= last_ms
                                        THEN excluded.last_ok ELSE last_ok END,
                         windows = CASE WHEN excluded.last_ms >= last_ms
                                        THEN excluded.windows ELSE windows END,
                         last_ms = max(last_ms, excluded.last_ms),
                         ever_ok = max(ever_ok, excluded.ever_ok),
                         ever_data = max(ever_data, excluded.ever_data)",
                )
                .map_err(sql("record last polls"))?;
            for p in polls {
                if self
                    .check_fence(&p.id, holder, p.token, String::new())
                    .is_err()
                {
                    refused.insert(p.id.clone());
                    continue;
                }
                let windows = super::windows_json(&p.windows);
                stmt.execute(params![p.id, p.rule, p.at_ms, p.ok, p.data, windows])
                    .map_err(sql("record last polls"))?;
            }
        }
        tx.commit().map_err(sql("record last polls"))?;
        Ok(refused.into_iter().collect())
    }

    fn breach_windows(&self, id: &str) -> Result<BTreeMap<String, Windows>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT rule, windows FROM polls WHERE watch_id = ?1 AND windows IS NOT NULL",
            )
            .map_err(sql("read breach windows"))?;
        let rows = stmt
            .query_map([id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(sql("read breach windows"))?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (rule, text) = row.map_err(sql("read breach windows"))?;
            if let Some(w) = super::windows_parse(&text) {
                out.insert(rule, w);
            }
        }
        Ok(out)
    }

    fn polls(&self, id: &str) -> Result<BTreeMap<String, PollState>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT rule, last_ms, last_ok, ever_ok, ever_data FROM polls WHERE watch_id = ?1",
            )
            .map_err(sql("read last polls"))?;
        let rows = stmt
            .query_map([id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    PollState {
                        last_ms: r.get(1)?,
                        last_ok: r.get(2)?,
                        ever_ok: r.get(3)?,
                        ever_data: r.get(4)?,
                    },
                ))
            })
            .map_err(sql("read last polls"))?;
        rows.collect::<Result<_, _>>()
            .map_err(sql("read last polls"))
    }

    fn claim_action(
        &self,
        id: &str,
        a: &NewAction,
        fired: &[SeriesRow],
    ) -> Result<i64, StoreError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql("begin a transaction"))?;
        for r in fired {
            upsert_series(&tx, id, r)?;
        }
        let action = insert_action(&tx, id, a, None)?;
        tx.commit().map_err(sql("commit an action's claim"))?;
        Ok(action)
    }

    fn claim_rerun(&self, id: &str, old: i64, a: &NewAction) -> Result<i64, StoreError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql("begin a transaction"))?;
        let changed = tx
            .execute(
                "UPDATE actions SET state = 'rerun', result = ?2, finished_ms = ?3
                 WHERE id = ?1 AND state = 'started'",
                params![
                    old,
                    "was running when the agent stopped; run again (idempotent)",
                    a.at_ms
                ],
            )
            .map_err(sql("mark an action re-run"))?;
        if changed != 1 {
            return Err(StoreError::AlreadyClaimed {
                what: format!("the re-run of action {old}"),
                id: id.to_string(),
            });
        }
        let action = insert_action(&tx, id, a, Some(old))?;
        tx.commit().map_err(sql("commit a re-run's claim"))?;
        Ok(action)
    }

    fn action_spawned(&self, action: i64, p: &ProcessId) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "UPDATE actions SET pgid = ?2, start_ticks = ?3, boot_id = ?4 WHERE id = ?1",
                params![action, p.pgid, p.start_ticks, p.boot_id],
            )
            .map_err(sql("record an action's process"))?;
        Ok(())
    }

    fn write_noted(
        &self,
        id: &str,
        fence: &Fence,
        change: Noted<'_>,
        notes: &[NewNote],
    ) -> Result<(), StoreError> {
        let (what, doing) = (change.what(), change.doing());
        self.fence(id, fence, &what)?;
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql("begin a transaction"))?;
        match change {
            Noted::Finish(e) => finish_in(&tx, id, e)?,
            Noted::PutSeries(r) => upsert_series(&tx, id, r)?,
            Noted::EndAction {
                action,
                end,
                ending,
            } => {
                tx.execute(
                    "UPDATE actions SET state = ?3, result = ?4, succeeded = ?5, finished_ms = ?6 WHERE id = ?1 AND watch_id = ?2",
                    params![action, id, end.state.as_str(), end.result, end.succeeded, end.at_ms],
                )
                .map_err(sql("record an action's result"))?;
                if let Some(e) = ending {
                    finish_in(&tx, id, e)?;
                }
            }
            Noted::Nothing => {}
        }
        insert_notes(&tx, id, notes)?;
        tx.commit().map_err(sql(doing))
    }

    fn outbox_due(
        &self,
        holder: &str,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<NoteRow>, StoreError> {
        let now = crate::core::events::now_ms();
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql("begin a transaction"))?;
        // Per (watch, channel) in order: a note waits for every earlier one. One agent
        // holds the file at a time: a note another holder took is a dead process's,
        // due at once (a restart does not wait for its lease to run out).
        let rows: Vec<NoteRow> = {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT o.id, o.watch_id, o.channel, o.kind, o.body, o.attempts FROM outbox o
                     WHERE o.done_ms IS NULL AND (o.due_ms <= ?1 OR o.holder IS NOT ?3)
                       AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.done_ms IS NULL
                           AND p.watch_id = o.watch_id AND p.channel = o.channel AND p.id < o.id)
                     ORDER BY o.id LIMIT ?2",
                )
                .map_err(sql("read the outbox"))?;
            let mapped = stmt
                .query_map(params![now, max as i64, holder], |r| {
                    Ok(NoteRow {
                        id: r.get(0)?,
                        watch: r.get(1)?,
                        channel: r.get(2)?,
                        kind: r.get(3)?,
                        body: r.get(4)?,
                        attempts: r.get(5)?,
                    })
                })
                .map_err(sql("read the outbox"))?;
            mapped
                .collect::<Result<_, _>>()
                .map_err(sql("read the outbox"))?
        };
        for r in &rows {
            tx.execute(
                "UPDATE outbox SET holder = ?2, due_ms = ?3 WHERE id = ?1",
                params![r.id, holder, now + lease.as_millis() as i64],
            )
            .map_err(sql("take a notification"))?;
        }
        tx.commit().map_err(sql("take notifications"))?;
        Ok(rows)
    }

    fn outbox_mark(&self, note: i64, mark: NoteMark<'_>) -> Result<(), StoreError> {
        let now = crate::core::events::now_ms();
        let conn = self.conn();
        match mark {
            // Done: deleted, body and all (the outbox stays as small as what is
            // pending; the log says what became of it). Ids are never reused.
            NoteMark::Done { .. } => {
                conn.execute("DELETE FROM outbox WHERE id = ?1", params![note])
            }
            NoteMark::Retry { attempts, after } => conn.execute(
                "UPDATE outbox SET attempts = ?2, due_ms = ?3 WHERE id = ?1",
                params![note, attempts, now + after.as_millis() as i64],
            ),
        }
        .map_err(sql("record a notification's delivery"))?;
        Ok(())
    }

    fn actions(&self, id: &str) -> Result<Vec<ActionRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, kind, rule, argv, state, result, succeeded, started_ms, finished_ms, rerun_of,
                        env, pgid, start_ticks, boot_id
                 FROM actions WHERE watch_id = ?1 ORDER BY id",
            )
            .map_err(sql("read actions"))?;
        let rows = stmt
            .query_map([id], |r| {
                Ok((
                    ActionRow {
                        id: r.get(0)?,
                        kind: r.get(1)?,
                        rule: r.get(2)?,
                        argv: Vec::new(),
                        state: ActionState::Started,
                        result: r.get(5)?,
                        succeeded: r.get(6)?,
                        started_ms: r.get(7)?,
                        finished_ms: r.get(8)?,
                        rerun_of: r.get(9)?,
                        env: Vec::new(),
                        // One agent per file, holding every lease with token 1.
                        token: Some(1),
                        process: r.get::<_, Option<i64>>(11)?.map(|pgid| ProcessId {
                            pgid,
                            start_ticks: r.get(12).ok().flatten(),
                            boot_id: r.get(13).ok().flatten(),
                        }),
                    },
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(10)?,
                ))
            })
            .map_err(sql("read actions"))?;
        let mut out = Vec::new();
        for row in rows {
            let (mut a, argv, state, env) = row.map_err(sql("read actions"))?;
            let corrupt = |reason: String| StoreError::Corrupt {
                what: "action",
                id: id.to_string(),
                reason,
            };
            a.argv = serde_json::from_str(&argv).map_err(|e| corrupt(e.to_string()))?;
            a.env = serde_json::from_str(&env).map_err(|e| corrupt(e.to_string()))?;
            a.state = ActionState::parse(&state).ok_or_else(|| corrupt(state.clone()))?;
            out.push(a);
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
        self.fence(id, fence, "write of a baseline")?;
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sql("begin a transaction"))?;
        let taken: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM baselines WHERE watch_id = ?1 AND rule = ?2)",
                params![id, rule],
                |r| r.get(0),
            )
            .map_err(sql("read a baseline"))?;
        if taken {
            return Ok(());
        }
        tx.execute(
            "INSERT INTO baselines (watch_id, rule, labels, value) VALUES (?1, ?2, '', NULL)",
            params![id, rule],
        )
        .map_err(sql("store a baseline"))?;
        for (labels, value) in values {
            let labels = serde_json::to_string(labels).unwrap_or_else(|_| "{}".into());
            tx.execute(
                "INSERT OR REPLACE INTO baselines (watch_id, rule, labels, value) VALUES (?1, ?2, ?3, ?4)",
                params![id, rule, labels, value],
            )
            .map_err(sql("store a baseline"))?;
        }
        tx.commit().map_err(sql("store a baseline"))
    }

    fn baselines(&self, id: &str) -> Result<BTreeMap<String, Vec<(Labels, f64)>>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT rule, labels, value FROM baselines WHERE watch_id = ?1 ORDER BY rule, labels",
            )
            .map_err(sql("read baselines"))?;
        let rows = stmt
            .query_map([id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<f64>>(2)?,
                ))
            })
            .map_err(sql("read baselines"))?;
        let mut out: BTreeMap<String, Vec<(Labels, f64)>> = BTreeMap::new();
        for row in rows {
            let (rule, labels, value) = row.map_err(sql("read baselines"))?;
            let entry = out.entry(rule).or_default();
            if let (Some(v), Ok(l)) = (value, serde_json::from_str::<Labels>(&labels)) {
                entry.push((l, v));
            }
        }
        Ok(out)
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
        let running = self.list(Some(WatchState::Running))?;
        let mut held = self.held();
        let mut out = Vec::new();
        for w in running {
            if out.len() >= max {
                break;
            }
            if held.insert(w.def.id.clone()) {
                out.push(Lease {
                    watch: w.def.id,
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
}
