//! What the SQLite store reads back: watches, breach state, last polls, actions and
//! baselines. Each query reads its columns into the shared codec's rows
//! (`io::store::codec`), which decodes them as the PostgreSQL store does. Apart from
//! the writes so that a restart's reads are in one short file.

use crate::core::eval::Labels;
use crate::io::store::api::*;
use crate::io::store::codec::{
    baseline_of, sql, windows_parse, ActionCols, SeriesCols, WatchCols, WATCH_COLS,
};
use rusqlite::{Connection, OptionalExtension};
use std::collections::BTreeMap;

/// A row of `watches` (`WATCH_COLS`), not decoded yet.
pub(super) fn watch_row(r: &rusqlite::Row) -> rusqlite::Result<WatchCols> {
    Ok(WatchCols {
        id: r.get(0)?,
        rules: r.get(1)?,
        rules_text: r.get(2)?,
        vars: r.get(3)?,
        duration_ms: r.get(4)?,
        created_ms: r.get(5)?,
        state: r.get(6)?,
        outcome: r.get(7)?,
        exit_code: r.get(8)?,
        detail: r.get(9)?,
        finished_ms: r.get(10)?,
        key: r.get(11)?,
        after: r.get(12)?,
    })
}

/// The watch `id`, if stored (in the caller's transaction or not).
pub(super) fn get(conn: &Connection, id: &str) -> Result<Option<WatchRecord>, StoreError> {
    let row = conn
        .query_row(
            &format!("SELECT {WATCH_COLS} FROM watches WHERE id = ?1"),
            [id],
            watch_row,
        )
        .optional()
        .map_err(sql("read a watch"))?;
    row.map(WatchCols::decode).transpose()
}

pub(super) fn list(
    conn: &Connection,
    state: Option<WatchState>,
) -> Result<Vec<WatchRecord>, StoreError> {
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
        out.push(row.map_err(sql("list watches"))?.decode()?);
    }
    Ok(out)
}

/// The ids of the running watches, oldest first: all an adoption round needs (not
/// their records: at 100,000 watches, decoding every row each round cost more than
/// the polls).
pub(super) fn running_ids(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT id FROM watches WHERE state = ?1 ORDER BY seq")
        .map_err(sql("list running watches"))?;
    let rows = stmt
        .query_map([WatchState::Running.as_str()], |r| r.get::<_, String>(0))
        .map_err(sql("list running watches"))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row.map_err(sql("list running watches"))?);
    }
    Ok(out)
}

pub(super) fn count_by_state(conn: &Connection) -> Result<Vec<(WatchState, i64)>, StoreError> {
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

pub(super) fn series(conn: &Connection, id: &str) -> Result<Vec<SeriesRow>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT rule, labels, phase, since_ms, last_value FROM series WHERE watch_id = ?1 ORDER BY rule, labels",
        )
        .map_err(sql("read breach state"))?;
    let rows = stmt
        .query_map([id], |r| {
            Ok(SeriesCols {
                rule: r.get(0)?,
                labels: r.get(1)?,
                phase: r.get(2)?,
                since_ms: r.get(3)?,
                last_value: r.get(4)?,
            })
        })
        .map_err(sql("read breach state"))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row.map_err(sql("read breach state"))?.decode(id)?);
    }
    Ok(out)
}

pub(super) fn breach_windows(
    conn: &Connection,
    id: &str,
) -> Result<BTreeMap<String, Windows>, StoreError> {
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
        if let Some(w) = windows_parse(&text) {
            out.insert(rule, w);
        }
    }
    Ok(out)
}

pub(super) fn polls(
    conn: &Connection,
    id: &str,
) -> Result<BTreeMap<String, PollState>, StoreError> {
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

pub(super) fn actions(conn: &Connection, id: &str) -> Result<Vec<ActionRow>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, kind, rule, argv, state, result, succeeded, started_ms, finished_ms, rerun_of,
                    env, pgid, start_ticks, boot_id
             FROM actions WHERE watch_id = ?1 ORDER BY id",
        )
        .map_err(sql("read actions"))?;
    let rows = stmt
        .query_map([id], |r| {
            Ok(ActionCols {
                id: r.get(0)?,
                kind: r.get(1)?,
                rule: r.get(2)?,
                argv: r.get(3)?,
                state: r.get(4)?,
                result: r.get(5)?,
                succeeded: r.get(6)?,
                started_ms: r.get(7)?,
                finished_ms: r.get(8)?,
                rerun_of: r.get(9)?,
                env: r.get(10)?,
                process: r.get::<_, Option<i64>>(11)?.map(|pgid| ProcessId {
                    pgid,
                    start_ticks: r.get(12).ok().flatten(),
                    boot_id: r.get(13).ok().flatten(),
                }),
                // One agent per file, holding every lease with token 1.
                token: Some(1),
            })
        })
        .map_err(sql("read actions"))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row.map_err(sql("read actions"))?.decode(id)?);
    }
    Ok(out)
}

pub(super) fn baselines(
    conn: &Connection,
    id: &str,
) -> Result<BTreeMap<String, Vec<(Labels, f64)>>, StoreError> {
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
        if let Some(b) = baseline_of(&labels, value) {
            entry.push(b);
        }
    }
    Ok(out)
}
