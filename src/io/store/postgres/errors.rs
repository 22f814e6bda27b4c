//! How a failed PostgreSQL call reads: the store as shown (never its password), what
//! it was doing, and the reason; `PgRefused` for what no retry can fix. Shared by the
//! statement files, apart from them so that none imports from its parent.

use crate::io::store::api::StoreError;
use crate::io::store::pgtls;

pub(super) fn pg_err(
    url: &str,
    what: &'static str,
) -> impl Fn(tokio_postgres::Error) -> StoreError {
    let url = url.to_string();
    move |e| StoreError::Pg {
        url: url.clone(),
        what,
        reason: pgtls::describe(&e).0,
    }
}

/// A connection that could not be had: `PgRefused` when no retry can fix it (a
/// certificate, TLS setting or login the server refuses), else `Pg`.
pub(super) fn pool_err(
    url: &str,
    what: &'static str,
    e: deadpool_postgres::PoolError,
) -> StoreError {
    use deadpool_postgres::PoolError;
    let (reason, permanent) = match &e {
        PoolError::Backend(e) => pgtls::describe(e),
        PoolError::Timeout(_) => ("no connection within the pool's timeout".to_string(), false),
        other => (other.to_string(), false),
    };
    let reason = format!("cannot connect: {reason}");
    let url = url.to_string();
    if permanent {
        StoreError::PgRefused { url, what, reason }
    } else {
        StoreError::Pg { url, what, reason }
    }
}

pub(super) fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}
