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

/// `Store::acquire_lease`: `acquire_leases` of one watch (one statement either way).
pub(super) async fn acquire_lease(
    c: Object,
    url: String,
    id: String,
    holder: String,
    ttl: Duration,
) -> Result<Option<Lease>, StoreError> {
    Ok(acquire_leases(c, url, vec![id], holder, ttl).await?.pop())
}

/// How the statements that lock lease rows share them (one place, so that the
/// fencing reads as a whole):
/// - a takeover (`acquire_leases`, `adopt_leases`) locks the lapsed rows it takes
///   `FOR UPDATE` before it writes them, and takes only those: it waits for (or, in
///   an adoption, skips) every fenced write of the old holder still open;
/// - a fenced write locks its row `FOR UPDATE` (`check_fence`), or, the batched poll
///   flush, its rows `FOR KEY SHARE` (`writes::save_polls`);
/// - a renewal locks its own rows `FOR NO KEY UPDATE` (`renew_leases`): it waits for
///   a claim, but never for a flush, which conflicts only with `FOR UPDATE`.
///
/// (A takeover's upsert alone would lock its row `FOR NO KEY UPDATE`: no column of
/// `leases` but `watch_id` is a key, so it would not wait for a flush.) Every
/// statement that locks many rows locks them in `watch_id` order, so that two of them
/// never deadlock; a takeover's upsert is given only the rows it locked and watches
/// with no lease row at all. (Given a row it did not lock, `ON CONFLICT` waits for
/// that row's lock while the takeover holds locks on rows after it: a renewal and an
/// adoption deadlocked so, `postgres_renewals_flushes_and_adoptions_of_thousands_of_leases_never_deadlock`.)
///
/// `Store::acquire_leases`: one statement for the batch.
pub(super) async fn acquire_leases(
    c: Object,
    url: String,
    ids: Vec<String>,
    holder: String,
    ttl: Duration,
) -> Result<Vec<Lease>, StoreError> {
    let rows = c
        .query(
            "WITH d AS MATERIALIZED (SELECT DISTINCT id FROM unnest($1::text[]) AS t(id)),
             lapsed AS MATERIALIZED (
                 SELECT l.watch_id FROM leases l JOIN d ON d.id = l.watch_id
                 WHERE l.expires_at <= clock_timestamp()
                 ORDER BY l.watch_id
                 FOR UPDATE OF l
             )
             INSERT INTO leases AS l (watch_id, holder, expires_at, token)
             SELECT id, $2, clock_timestamp() + $3::bigint * interval '1 millisecond', 1
             FROM d
             WHERE (SELECT count(*) FROM lapsed) >= 0
               AND (id IN (SELECT watch_id FROM lapsed)
                    OR NOT EXISTS (SELECT 1 FROM leases x WHERE x.watch_id = d.id))
             ORDER BY id
             ON CONFLICT (watch_id) DO UPDATE SET holder = excluded.holder,
                 expires_at = excluded.expires_at, token = l.token + 1
             WHERE l.watch_id IN (SELECT watch_id FROM lapsed)
             RETURNING watch_id, token",
            &[&ids, &holder, &ms(ttl)],
        )
        .await
        .map_err(pg_err(&url, "take watches' leases"))?;
    Ok(leases_of(rows))
}

pub(super) async fn renew_leases(
    c: Object,
    url: String,
    holder: String,
    ids: Vec<String>,
    ttl: Duration,
) -> Result<Vec<Lease>, StoreError> {
    // The rows are locked first, in `watch_id` order (a locking read sorted, then
    // the update of what it locked): in whatever order each plan happened to scan
    // them, a renewal and a flush (then `FOR SHARE`) deadlocked at 33,000 leases an
    // agent. `FOR NO KEY UPDATE`, the lock the update takes anyway: a flush's
    // `FOR KEY SHARE` never holds it back (see `acquire_leases`).
    let rows = c
        .query(
            "WITH mine AS MATERIALIZED (
                 SELECT watch_id FROM leases
                 WHERE holder = $1 AND watch_id = ANY($3) AND expires_at > clock_timestamp()
                 ORDER BY watch_id
                 FOR NO KEY UPDATE
             )
             UPDATE leases l SET expires_at = clock_timestamp() + $2::bigint * interval '1 millisecond'
             FROM mine
             WHERE l.watch_id = mine.watch_id AND l.holder = $1 AND l.expires_at > clock_timestamp()
             RETURNING l.watch_id, l.token",
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
    // adoption skips them), then their lapsed lease rows `FOR UPDATE` (see
    // `acquire_leases`), SKIP LOCKED too: a lease whose old holder's write is still
    // open is taken at a later round, never while the write may commit. Only the
    // rows so locked are taken over (a lease that lapsed a moment later, unlocked,
    // waits for the next round). The oldest watches are the candidates, but their
    // lease rows are locked and written in `watch_id` order, the order of every
    // statement that locks many of them: in `seq` order, an adoption and another
    // agent's renewal deadlocked.
    let rows = c
        .query(
            "WITH cand AS (
                 SELECT w.id, w.seq FROM watches w LEFT JOIN leases l ON l.watch_id = w.id
                 WHERE w.state = 'running' AND (l.watch_id IS NULL OR l.expires_at <= clock_timestamp())
                 ORDER BY w.seq LIMIT $3
                 FOR UPDATE OF w SKIP LOCKED
             ),
             lapsed AS MATERIALIZED (
                 SELECT l.watch_id FROM leases l JOIN cand ON cand.id = l.watch_id
                 WHERE l.expires_at <= clock_timestamp()
                 ORDER BY l.watch_id
                 FOR UPDATE OF l SKIP LOCKED
             )
             INSERT INTO leases AS l (watch_id, holder, expires_at, token)
             SELECT id, $1, clock_timestamp() + $2::bigint * interval '1 millisecond', 1 FROM cand
             WHERE (SELECT count(*) FROM lapsed) >= 0
               AND (id IN (SELECT watch_id FROM lapsed)
                    OR NOT EXISTS (SELECT 1 FROM leases x WHERE x.watch_id = cand.id))
             ORDER BY id
             ON CONFLICT (watch_id) DO UPDATE SET holder = excluded.holder,
                 expires_at = excluded.expires_at, token = l.token + 1
             WHERE l.watch_id IN (SELECT watch_id FROM lapsed)
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
