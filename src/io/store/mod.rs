//! The agent's durable state, behind a trait.
//!
//! Everything a restart needs lives here: each watch's definition (a snapshot of the
//! rule file's text and the vars, so editing the file later changes nothing), the
//! breach state of every pending or firing series, the last poll of every rule, and
//! every action, written *before* its command starts. That last row is what makes
//! "exactly once" survive a `kill -9`: on restart a row still `started` means the
//! command may or may not have taken effect.
//!
//! The trait is synchronous and small so that a shared store (for several replicas)
//! can replace SQLite later; `SqliteStore` is the embedded default. SQLite runs in WAL
//! mode with `synchronous=FULL`, so a committed action row survives a power cut, not
//! only a crash.

pub mod statefile;

use crate::core::eval::{Labels, Phase};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the state store {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(transparent)]
    StateFile(#[from] statefile::StateFileError),
    #[error("state store: cannot {what}: {source}")]
    Sql {
        what: &'static str,
        source: rusqlite::Error,
    },
    #[error("the state store {path} has schema version {found}, newer than this rollwatch knows ({known}): run the newer rollwatch, or another state file")]
    NewerSchema {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("state store: {what} was already claimed for watch {id}; it is not run again")]
    AlreadyClaimed { what: String, id: String },
    #[error("state store: corrupt {what} for watch {id}: {reason}")]
    Corrupt {
        what: &'static str,
        id: String,
        reason: String,
    },
}

fn sql(what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sql { what, source }
}

/// Where a watch is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WatchState {
    /// Running, or to be resumed at the next start.
    Running,
    /// Ended with an outcome.
    Finished,
    /// Cancelled through the API; no command ran because of it.
    Cancelled,
}

impl WatchState {
    pub fn as_str(&self) -> &'static str {
        match self {
            WatchState::Running => "running",
            WatchState::Finished => "finished",
            WatchState::Cancelled => "cancelled",
        }
    }
    fn parse(s: &str) -> Option<WatchState> {
        match s {
            "running" => Some(WatchState::Running),
            "finished" => Some(WatchState::Finished),
            "cancelled" => Some(WatchState::Cancelled),
            _ => None,
        }
    }
}

/// A watch as it was handed to the agent.
#[derive(Debug, Clone, PartialEq)]
pub struct NewWatch {
    pub id: String,
    /// The rule file's name (its stem in the rules directory).
    pub rules: String,
    /// The rule file's text when the watch was created: what runs.
    pub rules_text: String,
    pub vars: BTreeMap<String, String>,
    pub duration_ms: i64,
    pub created_ms: i64,
}

/// A stored watch.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchRecord {
    pub def: NewWatch,
    pub state: WatchState,
    pub outcome: Option<String>,
    pub exit_code: Option<u8>,
    pub detail: Option<String>,
    pub finished_ms: Option<i64>,
}

/// How a watch ended, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Ending {
    pub state: WatchState,
    pub outcome: String,
    pub exit_code: u8,
    pub detail: String,
    pub at_ms: i64,
}

/// One series that is pending or firing.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesRow {
    pub rule: String,
    pub labels: Labels,
    pub phase: Phase,
    /// Unix ms of the first breaching poll of this run of breaches.
    pub since_ms: i64,
    pub last_value: Option<f64>,
}

/// Where an action is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionState {
    /// Written before the command started; no result yet.
    Started,
    /// The command ended; `result` says how.
    Finished,
    /// The agent died while it ran and it was not run again.
    Unknown,
    /// The agent died while it ran; it was run again (it is idempotent).
    Rerun,
}

impl ActionState {
    fn as_str(&self) -> &'static str {
        match self {
            ActionState::Started => "started",
            ActionState::Finished => "finished",
            ActionState::Unknown => "unknown",
            ActionState::Rerun => "rerun",
        }
    }
    fn parse(s: &str) -> Option<ActionState> {
        match s {
            "started" => Some(ActionState::Started),
            "finished" => Some(ActionState::Finished),
            "unknown" => Some(ActionState::Unknown),
            "rerun" => Some(ActionState::Rerun),
            _ => None,
        }
    }
}

/// An action about to run: what `claim_action` records.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAction {
    pub kind: String,
    pub rule: String,
    pub argv: Vec<String>,
    /// The `ROLLWATCH_*` environment it runs with (a re-run gets the same).
    pub env: Vec<(String, String)>,
    pub at_ms: i64,
}

/// A poll of one rule of one watch, as `save_polls` records it.
#[derive(Debug, Clone, PartialEq)]
pub struct PollMark {
    pub id: String,
    pub rule: String,
    pub at_ms: i64,
    /// The query succeeded.
    pub ok: bool,
    /// It returned at least one usable sample.
    pub data: bool,
}

/// What a rule's polls have shown so far: what a restart needs to tell "judged" from
/// "never judged" without re-reading the whole watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PollState {
    pub last_ms: i64,
    pub last_ok: bool,
    pub ever_ok: bool,
    pub ever_data: bool,
}

/// How an action ended, as `end_action` records it.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionEnd<'a> {
    pub state: ActionState,
    /// `succeeded`, `failed with exit code 3`, ...
    pub result: &'a str,
    pub succeeded: Option<bool>,
    pub at_ms: i64,
}

/// Which process ran an action's command: enough to tell, after a crash, whether it is
/// still running (its process group) and that a process with that id is still it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProcessId {
    /// The command's pid, which is also its process group id.
    pub pgid: i64,
    /// The leader's start time (clock ticks since boot, /proc/PID/stat field 22).
    pub start_ticks: Option<i64>,
    /// /proc/sys/kernel/random/boot_id: a process from another boot is gone.
    pub boot_id: Option<String>,
}

/// One action of a watch.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ActionRow {
    pub id: i64,
    pub kind: String,
    pub rule: String,
    pub argv: Vec<String>,
    pub state: ActionState,
    /// `succeeded`, `failed with exit code 3`, ...
    pub result: Option<String>,
    pub succeeded: Option<bool>,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    /// The action this one re-ran after a restart.
    pub rerun_of: Option<i64>,
    /// The environment the command ran with.
    #[serde(skip)]
    pub env: Vec<(String, String)>,
    /// The process that ran it, once it started.
    #[serde(skip)]
    pub process: Option<ProcessId>,
}

/// Whether `create` stored a new watch or found one with that id.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    New(WatchRecord),
    Existing(WatchRecord),
}

/// The agent's durable state.
pub trait Store: Send + Sync + 'static {
    /// Stores a new watch, or returns the one that already has its id.
    fn create(&self, w: &NewWatch) -> Result<Created, StoreError>;
    fn get(&self, id: &str) -> Result<Option<WatchRecord>, StoreError>;
    /// Watches (optionally in one state), oldest first.
    fn list(&self, state: Option<WatchState>) -> Result<Vec<WatchRecord>, StoreError>;
    /// How many watches are in each state.
    fn count_by_state(&self) -> Result<Vec<(WatchState, i64)>, StoreError>;
    fn finish(&self, id: &str, ending: &Ending) -> Result<(), StoreError>;
    /// Records that a series went pending or fired (keeps an existing `since`).
    fn put_series(&self, id: &str, row: &SeriesRow) -> Result<(), StoreError>;
    /// Records that a series stopped breaching.
    fn clear_series(&self, id: &str, rule: &str, labels: &Labels) -> Result<(), StoreError>;
    fn series(&self, id: &str) -> Result<Vec<SeriesRow>, StoreError>;
    /// The last poll of each (watch, rule), in one transaction; `ever_ok`/`ever_data`
    /// only ever go from false to true, and an older poll never replaces a newer one.
    fn save_polls(&self, polls: &[PollMark]) -> Result<(), StoreError>;
    /// Rule name -> what its polls so far have shown.
    fn polls(&self, id: &str) -> Result<BTreeMap<String, PollState>, StoreError>;
    /// Claims an action before its command runs, in ONE transaction with the series
    /// that fired: either both are recorded or neither is. At most one claim per
    /// (watch, kind) can ever commit (`AlreadyClaimed` otherwise). Returns its id.
    fn claim_action(
        &self,
        id: &str,
        action: &NewAction,
        fired: &[SeriesRow],
    ) -> Result<i64, StoreError>;
    /// Claims the re-run of an interrupted idempotent action, in one transaction with
    /// marking the old one `rerun`. At most one re-run of an action can commit.
    fn claim_rerun(&self, id: &str, old: i64, action: &NewAction) -> Result<i64, StoreError>;
    /// Records the process an action's command runs in, right after it started.
    fn action_spawned(&self, action: i64, process: &ProcessId) -> Result<(), StoreError>;
    /// Records how an action ended and, if given, how its watch ended, in one
    /// transaction (so that no state is ever "action resolved, watch still running").
    fn end_action(
        &self,
        id: &str,
        action: i64,
        end: &ActionEnd<'_>,
        ending: Option<&Ending>,
    ) -> Result<(), StoreError>;
    fn action_ended(
        &self,
        action: i64,
        state: ActionState,
        result: &str,
        succeeded: Option<bool>,
        at_ms: i64,
    ) -> Result<(), StoreError>;
    fn actions(&self, id: &str) -> Result<Vec<ActionRow>, StoreError>;
}

/// The embedded store: one SQLite file.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// One agent per state file, for as long as the store is open.
    _lock: statefile::StateLock,
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
pub const SCHEMA_VERSION: i64 = 2;

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
    if version < SCHEMA_VERSION {
        tx.execute_batch(SCHEMA).map_err(open_err)?;
        tx.execute_batch(SCHEMA_V2).map_err(open_err)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(open_err)?;
    }
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
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
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

    fn finish(&self, id: &str, e: &Ending) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sql("begin a transaction"))?;
        finish_in(&tx, id, e)?;
        tx.commit().map_err(sql("record how a watch ended"))
    }

    fn put_series(&self, id: &str, r: &SeriesRow) -> Result<(), StoreError> {
        upsert_series(&self.conn(), id, r)
    }

    fn clear_series(&self, id: &str, rule: &str, labels: &Labels) -> Result<(), StoreError> {
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

    fn save_polls(&self, polls: &[PollMark]) -> Result<(), StoreError> {
        if polls.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sql("begin a transaction"))?;
        {
            // Every right-hand side reads the row as it was before this update.
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO polls (watch_id, rule, last_ms, last_ok, ever_ok, ever_data)
                     VALUES (?1, ?2, ?3, ?4, ?4, ?5)
                     ON CONFLICT (watch_id, rule) DO UPDATE SET
                         last_ok = CASE WHEN excluded.last_ms >= last_ms
                                        THEN excluded.last_ok ELSE last_ok END,
                         last_ms = max(last_ms, excluded.last_ms),
                         ever_ok = max(ever_ok, excluded.ever_ok),
                         ever_data = max(ever_data, excluded.ever_data)",
                )
                .map_err(sql("record last polls"))?;
            for p in polls {
                stmt.execute(params![p.id, p.rule, p.at_ms, p.ok, p.data])
                    .map_err(sql("record last polls"))?;
            }
        }
        tx.commit().map_err(sql("record last polls"))
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

    fn end_action(
        &self,
        id: &str,
        action: i64,
        end: &ActionEnd<'_>,
        ending: Option<&Ending>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql("begin a transaction"))?;
        tx.execute(
            "UPDATE actions SET state = ?2, result = ?3, succeeded = ?4, finished_ms = ?5 WHERE id = ?1",
            params![action, end.state.as_str(), end.result, end.succeeded, end.at_ms],
        )
        .map_err(sql("record an action's result"))?;
        if let Some(e) = ending {
            finish_in(&tx, id, e)?;
        }
        tx.commit().map_err(sql("commit an action's result"))
    }

    fn action_ended(
        &self,
        action: i64,
        state: ActionState,
        result: &str,
        succeeded: Option<bool>,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "UPDATE actions SET state = ?2, result = ?3, succeeded = ?4, finished_ms = ?5 WHERE id = ?1",
                params![action, state.as_str(), result, succeeded, at_ms],
            )
            .map_err(sql("record an action's result"))?;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("state.db")).unwrap();
        (dir, s)
    }

    fn new_action(kind: &str, at_ms: i64) -> NewAction {
        NewAction {
            kind: kind.into(),
            rule: "r".into(),
            argv: vec!["true".into()],
            env: vec![("ROLLWATCH_RULE".into(), "r".into())],
            at_ms,
        }
    }

    fn new_watch(id: &str) -> NewWatch {
        NewWatch {
            id: id.into(),
            rules: "checkout".into(),
            rules_text: "watch: {}".into(),
            vars: [("service".to_string(), "checkout".to_string())].into(),
            duration_ms: 60_000,
            created_ms: 1_000,
        }
    }

    #[test]
    fn create_is_idempotent_by_id() {
        let (_d, s) = store();
        assert!(matches!(
            s.create(&new_watch("a")).unwrap(),
            Created::New(_)
        ));
        match s.create(&new_watch("a")).unwrap() {
            Created::Existing(w) => assert_eq!(w.def, new_watch("a")),
            other => panic!("{other:?}"),
        }
        assert_eq!(s.list(None).unwrap().len(), 1);
    }

    #[test]
    fn series_keep_since_when_they_fire_and_go_when_resolved() {
        let (_d, s) = store();
        s.create(&new_watch("a")).unwrap();
        let labels: Labels = [("pod".to_string(), "p1".to_string())].into();
        let mut row = SeriesRow {
            rule: "r".into(),
            labels: labels.clone(),
            phase: Phase::Pending,
            since_ms: 5_000,
            last_value: Some(0.9),
        };
        s.put_series("a", &row).unwrap();
        row.phase = Phase::Firing;
        row.since_ms = 9_999;
        s.put_series("a", &row).unwrap();
        let got = s.series("a").unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].phase, Phase::Firing);
        assert_eq!(got[0].since_ms, 5_000, "firing keeps the original since");
        s.clear_series("a", "r", &labels).unwrap();
        assert!(s.series("a").unwrap().is_empty());
    }

    #[test]
    fn actions_and_endings_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let s = SqliteStore::open(&path).unwrap();
            s.create(&new_watch("a")).unwrap();
            s.claim_action("a", &new_action("rollback", 7), &[])
                .unwrap();
            let mark = |at_ms, ok, data| PollMark {
                id: "a".into(),
                rule: "r".into(),
                at_ms,
                ok,
                data,
            };
            s.save_polls(&[mark(40, true, true)]).unwrap();
            s.save_polls(&[mark(42, false, false)]).unwrap();
            s.save_polls(&[mark(41, true, false)]).unwrap();
        }
        let s = SqliteStore::open(&path).unwrap();
        let actions = s.actions("a").unwrap();
        assert_eq!(actions.len(), 1);
        assert_eq!(actions[0].state, ActionState::Started);
        assert_eq!(actions[0].argv, vec!["true".to_string()]);
        assert_eq!(
            s.polls("a").unwrap().get("r"),
            Some(&PollState {
                last_ms: 42,
                last_ok: false,
                ever_ok: true,
                ever_data: true,
            }),
            "the last poll never goes back; what was ever seen stays seen"
        );
        s.finish(
            "a",
            &Ending {
                state: WatchState::Finished,
                outcome: "rolled_back".into(),
                exit_code: 1,
                detail: "x".into(),
                at_ms: 9,
            },
        )
        .unwrap();
        assert!(s.list(Some(WatchState::Running)).unwrap().is_empty());
        assert_eq!(s.get("a").unwrap().unwrap().exit_code, Some(1));
    }

    fn firing(rule: &str, since_ms: i64) -> SeriesRow {
        SeriesRow {
            rule: rule.into(),
            labels: [("pod".to_string(), "p1".to_string())].into(),
            phase: Phase::Firing,
            since_ms,
            last_value: Some(0.9),
        }
    }

    #[test]
    fn a_claim_records_the_firing_series_and_the_action_together_once() {
        let (_d, s) = store();
        s.create(&new_watch("a")).unwrap();
        let id = s
            .claim_action("a", &new_action("rollback", 7), &[firing("r", 5)])
            .unwrap();
        assert_eq!(s.series("a").unwrap(), vec![firing("r", 5)]);
        let actions = s.actions("a").unwrap();
        assert_eq!(actions.len(), 1);
        assert_eq!(actions[0].id, id);
        assert_eq!(actions[0].state, ActionState::Started);
        assert_eq!(actions[0].env, new_action("rollback", 7).env);
        // A second claim of the same kind is refused by the database, and writes nothing.
        let err = s
            .claim_action("a", &new_action("rollback", 8), &[firing("other", 6)])
            .unwrap_err();
        assert!(matches!(err, StoreError::AlreadyClaimed { .. }), "{err}");
        assert_eq!(s.actions("a").unwrap().len(), 1);
        assert_eq!(
            s.series("a").unwrap().len(),
            1,
            "the refused claim's series was rolled back with it"
        );
        // Another kind is its own claim.
        s.claim_action("a", &new_action("pause", 9), &[]).unwrap();
    }

    #[test]
    fn a_rerun_is_claimed_once_and_marks_the_original() {
        let (_d, s) = store();
        s.create(&new_watch("a")).unwrap();
        let first = s
            .claim_action("a", &new_action("rollback", 7), &[])
            .unwrap();
        let second = s
            .claim_rerun("a", first, &new_action("rollback", 8))
            .unwrap();
        let actions = s.actions("a").unwrap();
        assert_eq!(actions[0].state, ActionState::Rerun);
        assert_eq!(actions[1].rerun_of, Some(first));
        assert_eq!(actions[1].id, second);
        assert!(matches!(
            s.claim_rerun("a", first, &new_action("rollback", 9)),
            Err(StoreError::AlreadyClaimed { .. })
        ));
        assert_eq!(s.actions("a").unwrap().len(), 2);
    }

    #[test]
    fn ending_an_action_can_end_its_watch_in_the_same_transaction() {
        let (_d, s) = store();
        s.create(&new_watch("a")).unwrap();
        let id = s
            .claim_action("a", &new_action("rollback", 7), &[])
            .unwrap();
        s.action_spawned(
            id,
            &ProcessId {
                pgid: 4242,
                start_ticks: Some(99),
                boot_id: Some("b".into()),
            },
        )
        .unwrap();
        let ending = Ending {
            state: WatchState::Finished,
            outcome: "rollback_unknown".into(),
            exit_code: 3,
            detail: "x".into(),
            at_ms: 9,
        };
        let end = ActionEnd {
            state: ActionState::Unknown,
            result: "unknown",
            succeeded: None,
            at_ms: 9,
        };
        s.end_action("a", id, &end, Some(&ending)).unwrap();
        let w = s.get("a").unwrap().unwrap();
        assert_eq!(w.state, WatchState::Finished);
        assert_eq!(w.outcome.as_deref(), Some("rollback_unknown"));
        let a = &s.actions("a").unwrap()[0];
        assert_eq!(a.state, ActionState::Unknown);
        assert_eq!(a.process.as_ref().map(|p| p.pgid), Some(4242));
    }

    /// The first release's schema, with a watch in it, as an agent left it.
    const V0: &str = "
        CREATE TABLE watches (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
            rules TEXT NOT NULL, rules_text TEXT NOT NULL, vars TEXT NOT NULL,
            duration_ms INTEGER NOT NULL, created_ms INTEGER NOT NULL, state TEXT NOT NULL,
            outcome TEXT, exit_code INTEGER, detail TEXT, finished_ms INTEGER);
        CREATE TABLE actions (id INTEGER PRIMARY KEY AUTOINCREMENT, watch_id TEXT NOT NULL,
            kind TEXT NOT NULL, rule TEXT NOT NULL, argv TEXT NOT NULL, state TEXT NOT NULL,
            result TEXT, succeeded INTEGER, started_ms INTEGER NOT NULL, finished_ms INTEGER,
            rerun_of INTEGER);
        INSERT INTO watches (id, rules, rules_text, vars, duration_ms, created_ms, state)
            VALUES ('old', 'checkout', 'watch: {}', '{}', 60000, 1, 'running');
        INSERT INTO actions (watch_id, kind, rule, argv, state, started_ms)
            VALUES ('old', 'rollback', 'r', '[\"true\"]', 'started', 5);
    ";

    #[test]
    fn an_unversioned_state_file_is_upgraded_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        Connection::open(&path).unwrap().execute_batch(V0).unwrap();
        let s = SqliteStore::open(&path).unwrap();
        let a = s.actions("old").unwrap();
        assert_eq!(a.len(), 1, "the old rows are kept");
        assert_eq!(a[0].state, ActionState::Started);
        assert!(a[0].env.is_empty());
        assert!(matches!(
            s.claim_action("old", &new_action("rollback", 9), &[]),
            Err(StoreError::AlreadyClaimed { .. })
        ));
        drop(s);
        let v: i64 = Connection::open(&path)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        SqliteStore::open(&path).expect("opens again at the current version");
    }

    #[test]
    fn an_old_state_file_with_the_old_double_rollback_still_opens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(V0).unwrap();
        conn.execute_batch(
            "UPDATE actions SET state = 'finished', succeeded = 1;
             INSERT INTO actions (watch_id, kind, rule, argv, state, succeeded, started_ms)
                 VALUES ('old', 'rollback', 'r', '[]', 'finished', 1, 9);",
        )
        .unwrap();
        drop(conn);
        let s = SqliteStore::open(&path).expect("the upgrade keeps both rows");
        let a = s.actions("old").unwrap();
        assert_eq!(a.len(), 2);
        assert!(matches!(
            s.claim_action("old", &new_action("rollback", 10), &[]),
            Err(StoreError::AlreadyClaimed { .. })
        ));
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let err = SqliteStore::open(&path).err().expect("refused");
        assert!(matches!(err, StoreError::NewerSchema { .. }), "{err}");
        assert!(err.to_string().contains("newer"), "{err}");
    }
}
