//! Leases on the database's clock: which agent owns each running watch, until when,
//! with which fencing token; the heartbeat that says how many agents share the work;
//! and `check_fence`, the check every owner's write makes in its own transaction.
//! Apart from the reads and writes so that the rules of ownership are in one file.

use super::errors::pg_err;
use crate::io::store::api::*;
use deadpool_postgres::Object;
use std::time::Duration;

pub(super) fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

/// Locks the lease row and checks that `holder` holds it with `token`, unexpired on
/// the database's clock at this moment (`clock_timestamp()`, not the transaction's
/// start). The row lock makes a takeover wait for this claim's commit, and a claim
/// that comes after a takeover see the new holder.
pub(super) async fn check_fence(
    c: &impl deadpool_postgres::GenericClient,
    url: &str,
    id: &str,
    holder: &str,
    token: i64,
    what: String,
) -> Result<(), StoreError> {
    let held = c
        .query_opt(
            "SELECT 1 FROM leases WHERE watch_id = $1 AND holder = $2 AND token = $3
                 AND expires_at > clock_timestamp() FOR UPDATE",
            &[&id, &holder, &token],
        )
        .await
        .map_err(pg_err(url, "check the watch's lease"))?;
    match held {
        Some(_) => Ok(()),
        None => Err(StoreError::Fenced {
            what,
            id: id.to_string(),
            token,
        }),
    }
}

fn leases_of(rows: Vec<tokio_postgres::Row>) -> Vec<Lease> {
    rows.iter()
        .map(|r| Lease {
            watch: r.get(0),
            token: r.get(1),
        })
        .collect()
}

pub(super) async fn clock_ms(c: Object, url: String) -> Result<i64, StoreError> {
    let r = c
        .query_one(
            "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
            &[],
        )
        .await
        .map_err(pg_err(&url, "read the database's clock"))?;
    Ok(r.get(0))
}

pub(super) async fn heartbeat(
    c: Object,
    url: String,
    agent: String,
    ttl: Duration,
) -> Result<usize, StoreError> {
    let err = pg_err(&url, "record the agent's heartbeat");
    c.execute(
        "INSERT INTO agents (id, seen_at) VALUES ($1, clock_timestamp())
         ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
        &[&agent],
    )
    .await
    .map_err(&err)?;
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM agents WHERE seen_at > clock_timestamp() - $1::bigint * interval '1 millisecond'",
            &[&ms(ttl)],
        )
        .await
        .map_err(&err)?
        .get(0);
    Ok(n.max(1) as usize)
}

pub(super) async fn acquire_lease(
    c: Object,
    url: String,
    id: String,
    holder: String,
    ttl: Duration,
) -> Result<Option<Lease>, StoreError> {
    let row = c
        .query_opt(
            "INSERT INTO leases AS l (watch_id, holder, expires_at, token)
             VALUES ($1, $2, clock_timestamp() + $3::bigint * interval '1 millisecond', 1)
             ON CONFLICT (watch_id) DO UPDATE SET holder = excluded.holder,
                 expires_at = excluded.expires_at, token = l.token + 1
             WHERE l.expires_at <= clock_timestamp()
             RETURNING watch_id, token",
            &[&id, &holder, &ms(ttl)],
        )
        .await
        .map_err(pg_err(&url, "take a watch's lease"))?;
    Ok(row.map(|r| Lease {
        watch: r.get(0),
        token: r.get(1),
    }))
}

pub(super) async fn renew_leases(
    c: Object,
    url: String,
    holder: String,
    ids: Vec<String>,
    ttl: Duration,
) -> Result<Vec<Lease>, StoreError> {
    let rows = c
        .query(
            "UPDATE leases SET expires_at = clock_timestamp() + $2::bigint * interval '1 millisecond'
             WHERE holder = $1 AND watch_id = ANY($3) AND expires_at > clock_timestamp()
             RETURNING watch_id, token",
            &[&holder, &ms(ttl), &ids],
        )
        .await
        .map_err(pg_err(&url, "renew leases"))?;
    Ok(leases_of(rows))
}

pub(super) async fn adopt_leases(
    c: Object,
    url: String,
    holder: String,
    ttl: Duration,
    max: i64,
) -> Result<Vec<Lease>, StoreError> {
    // The candidates' watch rows are locked (SKIP LOCKED: another agent's
    // adoption skips them); the upsert re-checks the expiry on the row as it
    // is at that moment, so a lease renewed or taken meanwhile is left alone.
    let rows = c
        .query(
            "WITH cand AS (
                 SELECT w.id, w.seq FROM watches w LEFT JOIN leases l ON l.watch_id = w.id
                 WHERE w.state = 'running' AND (l.watch_id IS NULL OR l.expires_at <= clock_timestamp())
                 ORDER BY w.seq LIMIT $3
                 FOR UPDATE OF w SKIP LOCKED
             )
             INSERT INTO leases AS l (watch_id, holder, expires_at, token)
             SELECT id, $1, clock_timestamp() + $2::bigint * interval '1 millisecond', 1 FROM cand ORDER BY seq
             ON CONFLICT (watch_id) DO UPDATE SET holder = excluded.holder,
                 expires_at = excluded.expires_at, token = l.token + 1
             WHERE l.expires_at <= clock_timestamp()
             RETURNING watch_id, token",
            &[&holder, &ms(ttl), &max],
        )
        .await
        .map_err(pg_err(&url, "adopt expired leases"))?;
    Ok(leases_of(rows))
}

pub(super) async fn release_lease(
    c: Object,
    url: String,
    id: String,
    holder: String,
) -> Result<(), StoreError> {
    c.execute(
        "DELETE FROM leases WHERE watch_id = $1 AND holder = $2",
        &[&id, &holder],
    )
    .await
    .map(|_| ())
    .map_err(pg_err(&url, "release a lease"))
}
