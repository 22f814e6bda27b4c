//! What the PostgreSQL store reads back: watches, breach state, last polls, actions
//! and baselines, each an async function run on the store's runtime (`PgStore::call`).
//! Each query reads its columns into the shared codec's rows (`io::store::codec`),
//! which decodes them exactly as the SQLite store does.

use super::errors::pg_err;
use crate::core::eval::Labels;
use crate::io::store::api::*;
use crate::io::store::codec::{
    baseline_of, windows_parse, ActionCols, SeriesCols, WatchCols, WATCH_COLS,
};
use deadpool_postgres::Object;
use std::collections::BTreeMap;

/// A row of `watches` (`WATCH_COLS`), decoded.
pub(super) fn watch_of(r: &tokio_postgres::Row) -> Result<WatchRecord, StoreError> {
    let exit_code: Option<i32> = r.get(8);
    WatchCols {
        id: r.get(0),
        rules: r.get(1),
        rules_text: r.get(2),
        vars: r.get(3),
        duration_ms: r.get(4),
        created_ms: r.get(5),
        state: r.get(6),
        outcome: r.get(7),
        exit_code: exit_code.map(i64::from),
        detail: r.get(9),
        finished_ms: r.get(10),
        key: r.get(11),
        after: r.get(12),
    }
    .decode()
}

pub(super) async fn get(
    c: Object,
    url: String,
    id: String,
) -> Result<Option<WatchRecord>, StoreError> {
    let row = c
        .query_opt(
            &format!("SELECT {WATCH_COLS} FROM watches WHERE id = $1"),
            &[&id],
        )
        .await
        .map_err(pg_err(&url, "read a watch"))?;
    row.as_ref().map(watch_of).transpose()
}

pub(super) async fn list(
    c: Object,
    url: String,
    state: Option<String>,
) -> Result<Vec<WatchRecord>, StoreError> {
    let rows = c
        .query(
            &format!("SELECT {WATCH_COLS} FROM watches WHERE $1::text IS NULL OR state = $1 ORDER BY seq"),
            &[&state],
        )
        .await
        .map_err(pg_err(&url, "list watches"))?;
    rows.iter().map(watch_of).collect()
}

/// `Store::running_among`: one read of the running watches with these ids.
pub(super) async fn running_among(
    c: Object,
    url: String,
    ids: Vec<String>,
) -> Result<Vec<WatchRecord>, StoreError> {
    let rows = c
        .query(
            &format!("SELECT {WATCH_COLS} FROM watches WHERE id = ANY($1) AND state = 'running' ORDER BY seq"),
            &[&ids],
        )
        .await
        .map_err(pg_err(&url, "read adopted watches"))?;
    rows.iter().map(watch_of).collect()
}

pub(super) async fn count_by_state(
    c: Object,
    url: String,
) -> Result<Vec<(WatchState, i64)>, StoreError> {
    let rows = c
        .query("SELECT state, count(*) FROM watches GROUP BY state", &[])
        .await
        .map_err(pg_err(&url, "count watches"))?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let s: String = r.get(0);
            WatchState::parse(&s).map(|s| (s, r.get::<_, i64>(1)))
        })
        .collect())
}

pub(super) async fn series(
    c: Object,
    url: String,
    id: String,
) -> Result<Vec<SeriesRow>, StoreError> {
    let rows = c
        .query(
            "SELECT rule, labels, phase, since_ms, last_value FROM series WHERE watch_id = $1 ORDER BY rule, labels",
            &[&id],
        )
        .await
        .map_err(pg_err(&url, "read breach state"))?;
    let mut out = Vec::new();
    for r in rows {
        let cols = SeriesCols {
            rule: r.get(0),
            labels: r.get(1),
            phase: r.get(2),
            since_ms: r.get(3),
            last_value: r.get(4),
        };
        out.push(cols.decode(&id)?);
    }
    Ok(out)
}

pub(super) async fn breach_windows(
    c: Object,
    url: String,
    id: String,
) -> Result<BTreeMap<String, Windows>, StoreError> {
    let rows = c
        .query(
            "SELECT rule, windows FROM polls WHERE watch_id = $1 AND windows IS NOT NULL",
            &[&id],
        )
        .await
        .map_err(pg_err(&url, "read breach windows"))?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let text: String = r.get(1);
            Some((r.get(0), windows_parse(&text)?))
        })
        .collect())
}

pub(super) async fn polls(
    c: Object,
    url: String,
    id: String,
) -> Result<BTreeMap<String, PollState>, StoreError> {
    let rows = c
        .query(
            "SELECT rule, last_ms, last_ok, ever_ok, ever_data FROM polls WHERE watch_id = $1",
            &[&id],
        )
        .await
        .map_err(pg_err(&url, "read last polls"))?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                PollState {
                    last_ms: r.get(1),
                    last_ok: r.get(2),
                    ever_ok: r.get(3),
                    ever_data: r.get(4),
                },
            )
        })
        .collect())
}

pub(super) async fn actions(
    c: Object,
    url: String,
    id: String,
) -> Result<Vec<ActionRow>, StoreError> {
    let rows = c
        .query(
            "SELECT id, kind, rule, argv, state, result, succeeded, started_ms, finished_ms, rerun_of,
                    env, pgid, start_ticks, boot_id, fencing_token
             FROM actions WHERE watch_id = $1 ORDER BY id",
            &[&id],
        )
        .await
        .map_err(pg_err(&url, "read actions"))?;
    let mut out = Vec::new();
    for r in rows {
        let cols = ActionCols {
            id: r.get(0),
            kind: r.get(1),
            rule: r.get(2),
            argv: r.get(3),
            state: r.get(4),
            result: r.get(5),
            succeeded: r.get(6),
            started_ms: r.get(7),
            finished_ms: r.get(8),
            rerun_of: r.get(9),
            env: r.get(10),
            process: r.get::<_, Option<i64>>(11).map(|pgid| ProcessId {
                pgid,
                start_ticks: r.get(12),
                boot_id: r.get(13),
            }),
            token: r.get(14),
        };
        out.push(cols.decode(&id)?);
    }
    Ok(out)
}

pub(super) async fn baselines(
    c: Object,
    url: String,
    id: String,
) -> Result<BTreeMap<String, Vec<(Labels, f64)>>, StoreError> {
    let rows = c
        .query(
            "SELECT rule, labels, value FROM baselines WHERE watch_id = $1 ORDER BY rule, labels",
            &[&id],
        )
        .await
        .map_err(pg_err(&url, "read baselines"))?;
    let mut out: BTreeMap<String, Vec<(Labels, f64)>> = BTreeMap::new();
    for r in &rows {
        let entry = out.entry(r.get::<_, String>(0)).or_default();
        let (labels, value): (String, Option<f64>) = (r.get(1), r.get(2));
        if let Some(b) = baseline_of(&labels, value) {
            entry.push(b);
        }
    }
    Ok(out)
}
