//! The SQLite schema and its upgrades: each version a statement batch applied once,
//! "if version < N", in one transaction; a newer file than this build knows is
//! refused. Apart from the store's calls so that every change of the file's layout
//! is read in one place.

use crate::io::store::api::StoreError;
use rusqlite::Connection;
use std::path::Path;

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
pub const SCHEMA_VERSION: i64 = 7;

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

/// Version 7 (issue 21): the last polls in a table clustered on its key (`WITHOUT
/// ROWID`). Every poll's mark is an upsert by (watch, rule), tens of thousands a
/// second at 100,000 watches; with a rowid each went through the key's index and
/// then the table, two B-tree searches where one does. The rows are copied as they
/// are.
const SCHEMA_V7: &str = "
CREATE TABLE polls_v7 (
    watch_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    last_ms INTEGER NOT NULL,
    last_ok INTEGER NOT NULL DEFAULT 0,
    ever_ok INTEGER NOT NULL DEFAULT 0,
    ever_data INTEGER NOT NULL DEFAULT 0,
    windows TEXT,
    PRIMARY KEY (watch_id, rule)
) WITHOUT ROWID;
INSERT INTO polls_v7 (watch_id, rule, last_ms, last_ok, ever_ok, ever_data, windows)
    SELECT watch_id, rule, last_ms, last_ok, ever_ok, ever_data, windows FROM polls;
DROP TABLE polls;
ALTER TABLE polls_v7 RENAME TO polls;
";

/// Creates or upgrades the schema, in one transaction; refuses a newer one.
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
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
    if version < 6 {
        tx.execute_batch(super::orders::SCHEMA_V6)
            .map_err(open_err)?;
    }
    if version < 7 {
        tx.execute_batch(SCHEMA_V7).map_err(open_err)?;
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
