//! The PostgreSQL schema and its upgrades, versioned in `rollwatch_schema`: created
//! or migrated by whichever agent starts first, in one transaction under an advisory
//! lock (three agents starting at once do not race); a newer version than this build
//! knows is refused. Apart so that the layout of the shared database reads in one
//! place.

use super::errors::pg_err;
use crate::io::store::api::StoreError;
use deadpool_postgres::Object;

/// The schema version this build writes (`rollwatch_schema.version`).
pub const PG_SCHEMA_VERSION: i64 = 4;

/// Version 2 (outbox): notifications written in the transaction of the state change
/// they report; `due_ms` on the database's clock, as in SQLite's version 4.
const SCHEMA_V2: &str = "
CREATE TABLE IF NOT EXISTS outbox (
    id BIGSERIAL PRIMARY KEY,
    watch_id TEXT NOT NULL,
    channel BIGINT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    due_ms BIGINT NOT NULL,
    holder TEXT,
    done_ms BIGINT,
    result TEXT
);
CREATE INDEX IF NOT EXISTS outbox_open ON outbox(watch_id, channel, id) WHERE done_ms IS NULL;
";

/// Key of the advisory lock held while the schema is created or migrated.
const MIGRATION_LOCK: i64 = 0x726f_6c6c_7761_7463; // "rollwatc"

const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS watches (
    seq BIGSERIAL NOT NULL,
    id TEXT PRIMARY KEY,
    rules TEXT NOT NULL,
    rules_text TEXT NOT NULL,
    vars TEXT NOT NULL,
    duration_ms BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    state TEXT NOT NULL,
    outcome TEXT,
    exit_code INTEGER,
    detail TEXT,
    finished_ms BIGINT
);
CREATE INDEX IF NOT EXISTS watches_state ON watches(state, seq);
CREATE TABLE IF NOT EXISTS series (
    watch_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    labels TEXT NOT NULL,
    phase TEXT NOT NULL,
    since_ms BIGINT NOT NULL,
    last_value DOUBLE PRECISION,
    PRIMARY KEY (watch_id, rule, labels)
);
CREATE TABLE IF NOT EXISTS polls (
    watch_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    last_ms BIGINT NOT NULL,
    last_ok BOOLEAN NOT NULL,
    ever_ok BOOLEAN NOT NULL,
    ever_data BOOLEAN NOT NULL,
    PRIMARY KEY (watch_id, rule)
);
CREATE TABLE IF NOT EXISTS actions (
    id BIGSERIAL PRIMARY KEY,
    watch_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    rule TEXT NOT NULL,
    argv TEXT NOT NULL,
    env TEXT NOT NULL,
    state TEXT NOT NULL,
    result TEXT,
    succeeded BOOLEAN,
    started_ms BIGINT NOT NULL,
    finished_ms BIGINT,
    rerun_of BIGINT,
    pgid BIGINT,
    start_ticks BIGINT,
    boot_id TEXT,
    fencing_token BIGINT
);
CREATE INDEX IF NOT EXISTS actions_watch ON actions(watch_id);
CREATE UNIQUE INDEX IF NOT EXISTS actions_once ON actions(watch_id, kind) WHERE rerun_of IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS actions_rerun_once ON actions(rerun_of) WHERE rerun_of IS NOT NULL;
CREATE TABLE IF NOT EXISTS leases (
    watch_id TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    token BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS leases_holder ON leases(holder);
CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY,
    seen_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS baselines (
    watch_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    labels TEXT NOT NULL,
    value DOUBLE PRECISION,
    PRIMARY KEY (watch_id, rule, labels)
);
";

/// Version 3 (issue 19): the `breaches` windows of a rule's series, written with its
/// last poll (`PollMark::windows`, JSON). Version 2 is another change's.
const SCHEMA_V3: &str = "
ALTER TABLE polls ADD COLUMN IF NOT EXISTS windows TEXT;
";

/// Creates or upgrades the schema (`PgStore::migrate`).
pub(super) async fn migrate(mut c: Object, url: String) -> Result<(), StoreError> {
    let err = pg_err(&url, "create or upgrade the schema");
    let tx = c.transaction().await.map_err(&err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(&err)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS rollwatch_schema (version BIGINT NOT NULL)")
        .await
        .map_err(&err)?;
    let found: Option<i64> = tx
        .query_opt("SELECT max(version) FROM rollwatch_schema", &[])
        .await
        .map_err(&err)?
        .and_then(|r| r.get(0));
    let found = found.unwrap_or(0);
    if found > PG_SCHEMA_VERSION {
        return Err(StoreError::NewerPgSchema {
            url: url.clone(),
            found,
            known: PG_SCHEMA_VERSION,
        });
    }
    if found < 1 {
        tx.batch_execute(SCHEMA_V1).await.map_err(&err)?;
    }
    if found < 2 {
        tx.batch_execute(SCHEMA_V2).await.map_err(&err)?;
    }
    if found < 3 {
        tx.batch_execute(SCHEMA_V3).await.map_err(&err)?;
    }
    if found < 4 {
        tx.batch_execute(super::orders::SCHEMA_V4)
            .await
            .map_err(&err)?;
    }
    if found < PG_SCHEMA_VERSION {
        tx.execute("DELETE FROM rollwatch_schema", &[])
            .await
            .map_err(&err)?;
        tx.execute(
            "INSERT INTO rollwatch_schema (version) VALUES ($1)",
            &[&PG_SCHEMA_VERSION],
        )
        .await
        .map_err(&err)?;
    }
    // Notes an older build marked done instead of deleting (no version step:
    // the statement is idempotent and finds nothing once they are gone).
    tx.execute("DELETE FROM outbox WHERE done_ms IS NOT NULL", &[])
        .await
        .map_err(&err)?;
    tx.commit().await.map_err(&err)
}
