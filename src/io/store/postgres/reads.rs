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

/// The rows of `ids` (the first column is `watch_id`), grouped by watch, each group in
/// the query's order. The readers below are each one query for many watches: a
/// restart or an adoption resumes thousands of watches at once (`resume_reads`); a
/// single watch's read is the same query for one id.
async fn grouped<T>(
    c: &impl deadpool_postgres::GenericClient,
    url: &str,
    sql: &str,
    what: &'static str,
    ids: &[String],
    mut decode: impl FnMut(&str, &tokio_postgres::Row) -> Result<Option<T>, StoreError>,
) -> Result<std::collections::HashMap<String, Vec<T>>, StoreError> {
    let rows = c.query(sql, &[&ids]).await.map_err(pg_err(url, what))?;
    let mut out: std::collections::HashMap<String, Vec<T>> = std::collections::HashMap::new();
    for r in &rows {
        let id: String = r.get(0);
        if let Some(v) = decode(&id, r)? {
            out.entry(id).or_default().push(v);
        }
    }
    Ok(out)
}

/// One watch's part of a reader's answer for many (empty if it has no rows).
fn one<V: Default>(mut all: std::collections::HashMap<String, V>, id: &str) -> V {
    all.remove(id).unwrap_or_default()
}

pub(super) async fn series_of(
    c: &impl deadpool_postgres::GenericClient,
    url: &str,
    ids: &[String],
) -> Result<std::collections::HashMap<String, Vec<SeriesRow>>, StoreError> {
    grouped(
        c,
        url,
        "SELECT watch_id, rule, labels, phase, since_ms, last_value FROM series WHERE watch_id = ANY($1) ORDER BY watch_id, rule, labels",
        "read breach state",
        ids,
        |id, r| {
            let cols = SeriesCols {
                rule: r.get(1),
                labels: r.get(2),
                phase: r.get(3),
                since_ms: r.get(4),
                last_value: r.get(5),
            };
            cols.decode(id).map(Some)
        },
    )
    .await
}

pub(super) async fn series(
    c: Object,
    url: String,
    id: String,
) -> Result<Vec<SeriesRow>, StoreError> {
    let ids = [id];
    Ok(one(series_of(&c, &url, &ids).await?, &ids[0]))
}

pub(super) async fn breach_windows_of(
    c: &impl deadpool_postgres::GenericClient,
    url: &str,
    ids: &[String],
) -> Result<std::collections::HashMap<String, BTreeMap<String, Windows>>, StoreError> {
    let rows = grouped(
        c,
        url,
        "SELECT watch_id, rule, windows FROM polls WHERE watch_id = ANY($1) AND windows IS NOT NULL",
        "read breach windows",
        ids,
        |_, r| {
            let text: String = r.get(2);
            Ok(windows_parse(&text).map(|w| (r.get::<_, String>(1), w)))
        },
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, w)| (id, w.into_iter().collect()))
        .collect())
}

pub(super) async fn breach_windows(
    c: Object,
    url: String,
    id: String,
) -> Result<BTreeMap<String, Windows>, StoreError> {
    let ids = [id];
    Ok(one(breach_windows_of(&c, &url, &ids).await?, &ids[0]))
}

pub(super) async fn polls_of(
    c: &impl deadpool_postgres::GenericClient,
    url: &str,
    ids: &[String],
) -> Result<std::collections::HashMap<String, BTreeMap<String, PollState>>, StoreError> {
    let rows = grouped(
        c,
        url,
        "SELECT watch_id, rule, last_ms, last_ok, ever_ok, ever_data FROM polls WHERE watch_id = ANY($1)",
        "read last polls",
        ids,
        |_, r| {
            Ok(Some((
                r.get::<_, String>(1),
                PollState {
                    last_ms: r.get(2),
                    last_ok: r.get(3),
                    ever_ok: r.get(4),
                    ever_data: r.get(5),
                },
            )))
        },
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, p)| (id, p.into_iter().collect()))
        .collect())
}

pub(super) async fn polls(
    c: Object,
    url: String,
    id: String,
) -> Result<BTreeMap<String, PollState>, StoreError> {
    let ids = [id];
    Ok(one(polls_of(&c, &url, &ids).await?, &ids[0]))
}

pub(super) async fn actions_of(
    c: &impl deadpool_postgres::GenericClient,
    url: &str,
    ids: &[String],
) -> Result<std::collections::HashMap<String, Vec<ActionRow>>, StoreError> {
    grouped(
        c,
        url,
        "SELECT watch_id, id, kind, rule, argv, state, result, succeeded, started_ms, finished_ms, rerun_of,
                env, pgid, start_ticks, boot_id, fencing_token
         FROM actions WHERE watch_id = ANY($1) ORDER BY watch_id, id",
        "read actions",
        ids,
        |id, r| {
            let cols = ActionCols {
                id: r.get(1),
                kind: r.get(2),
                rule: r.get(3),
                argv: r.get(4),
                state: r.get(5),
                result: r.get(6),
                succeeded: r.get(7),
                started_ms: r.get(8),
                finished_ms: r.get(9),
                rerun_of: r.get(10),
                env: r.get(11),
                process: r.get::<_, Option<i64>>(12).map(|pgid| ProcessId {
                    pgid,
                    start_ticks: r.get(13),
                    boot_id: r.get(14),
                }),
                token: r.get(15),
            };
            cols.decode(id).map(Some)
        },
    )
    .await
}

pub(super) async fn actions(
    c: Object,
    url: String,
    id: String,
) -> Result<Vec<ActionRow>, StoreError> {
    let ids = [id];
    Ok(one(actions_of(&c, &url, &ids).await?, &ids[0]))
}

/// `Store::resume_reads`: five queries for all of `ids`, in one snapshot (a
/// repeatable-read transaction, so no watch's rows are read half before and half
/// after another agent's write).
pub(super) async fn resume_reads(
    mut c: Object,
    url: String,
    ids: Vec<String>,
) -> Result<std::collections::HashMap<String, ResumeRead>, StoreError> {
    let what = "read the watches to resume";
    let tx = c
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(pg_err(&url, what))?;
    let mut actions = actions_of(&tx, &url, &ids).await?;
    let mut windows = breach_windows_of(&tx, &url, &ids).await?;
    let mut series = series_of(&tx, &url, &ids).await?;
    let mut polls = polls_of(&tx, &url, &ids).await?;
    let mut orders = super::orders::of_watches(&tx, &url, &ids).await?;
    tx.commit().await.map_err(pg_err(&url, what))?;
    Ok(ids
        .into_iter()
        .map(|id| {
            let read = ResumeRead {
                actions: actions.remove(&id).unwrap_or_default(),
                windows: windows.remove(&id).unwrap_or_default(),
                series: series.remove(&id).unwrap_or_default(),
                polls: polls.remove(&id).unwrap_or_default(),
                orders: orders.remove(&id).unwrap_or_default(),
            };
            (id, read)
        })
        .collect())
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
