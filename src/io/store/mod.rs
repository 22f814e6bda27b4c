//! The agent's durable state, behind a trait.
//!
//! Everything a restart needs lives here: each watch's definition (a snapshot of the
//! rule file's text and the vars, so editing the file later changes nothing), the
//! breach state of every pending or firing series, the last poll of every rule, and
//! every action, written *before* its command starts. That last row is what makes
//! "exactly once" survive a `kill -9`: on restart a row still `started` means the
//! command may or may not have taken effect.
//!
//! The trait is synchronous and small; `SqliteStore` is the embedded default (WAL
//! mode with `synchronous=FULL`, so a committed action row survives a power cut, not
//! only a crash) and `PgStore` the shared one, for several agents on one PostgreSQL.
//!
//! # Leases
//! With a shared store each running watch is owned by one agent through a lease: a
//! holder, an expiry on the *database's* clock and a fencing token that increases at
//! every change of holder. An action is claimed with `claim_fenced`, which checks the
//! caller's token against the lease in the claim's own transaction, so an agent that
//! lost its lease (paused, cut off) cannot claim anything, whatever its clock says.
//! Every other write an owner makes about a running watch carries a `Fence` (holder
//! and token), checked the same way in the write's own transaction.
//! SQLite has one agent per file (the file lock): that agent holds every lease, with
//! token 1, and the same methods keep one agent loop for both stores.

mod api;
mod codec;
mod handle;
mod orders;
pub mod pgconn;
mod pgtls;
mod postgres;
mod sqlite;
pub mod statefile;
pub use handle::StoreHandle;

pub use api::*;
pub use orders::{NewOrder, OrderRow, OrderState, Ordered};
pub use postgres::{PgStore, PG_SCHEMA_VERSION};
pub use sqlite::{SqliteStore, SCHEMA_VERSION};

#[cfg(test)]
mod tests;
