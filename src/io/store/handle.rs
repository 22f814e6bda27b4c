//! `StoreHandle`: the one way async code reaches the (synchronous) store.
//!
//! The `Store` trait is synchronous: SQLite is, and `PgStore` waits for its own small
//! runtime. A store call made straight from a task would hold an executor thread for
//! as long as the database takes (a slow or unreachable PostgreSQL: up to its call
//! timeout), stalling every other task on that thread. So async code never calls the
//! trait itself: it calls `StoreHandle::call`, which runs the closure on tokio's
//! blocking pool and resumes a panic in the caller, as if the call had been made
//! there.
//!
//! A few contexts are synchronous by nature: the watch loop's `Sink`s and `Journal`
//! (called from the decision loop, between awaits) and code already on a blocking
//! thread. They use `blocking()`, which on the multi-threaded runtime tells tokio the
//! thread is about to block (`block_in_place`, so other tasks move off it) and
//! elsewhere (a plain thread, a blocking-pool thread, a current-thread test runtime)
//! simply calls the store.

use super::Store;
use std::sync::Arc;

/// A shared store, called from async code without blocking the runtime.
#[derive(Clone)]
pub struct StoreHandle(Arc<dyn Store>);

impl StoreHandle {
    pub fn new(store: Arc<dyn Store>) -> StoreHandle {
        StoreHandle(store)
    }

    /// Runs `f` with the store on tokio's blocking pool and returns its result. A
    /// panic in `f` is resumed here (as if `f` had run in the caller).
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> R + Send + 'static,
    ) -> R {
        let store = self.0.clone();
        match tokio::task::spawn_blocking(move || f(&*store)).await {
            Ok(r) => r,
            Err(e) => match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                // A blocking task is never cancelled (it is not aborted here, and
                // the runtime waits for it at shutdown), so this is a runtime torn
                // down under the caller: nothing sensible is left to return.
                Err(e) => panic!("a store call did not complete: {e}"),
            },
        }
    }

    /// Runs `f` with the store on this thread, for the few synchronous contexts (see
    /// the module's doc): on a worker of the multi-threaded runtime, through
    /// `block_in_place`, so that the runtime moves its other tasks off this thread.
    pub fn blocking<R>(&self, f: impl FnOnce(&dyn Store) -> R) -> R {
        let on_worker = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if on_worker {
            tokio::task::block_in_place(|| f(&*self.0))
        } else {
            f(&*self.0)
        }
    }

    /// Whether the store is shared by several agents (no I/O: a property of the
    /// backend).
    pub fn shared(&self) -> bool {
        self.0.shared()
    }
}

impl std::fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreHandle")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::store::SqliteStore;

    fn handle() -> (tempfile::TempDir, StoreHandle) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("state.db")).unwrap();
        (dir, StoreHandle::new(Arc::new(store)))
    }

    #[tokio::test(flavor = "current_thread")]
    async fn call_runs_off_the_runtime_thread() {
        let (_dir, h) = handle();
        let caller = std::thread::current().id();
        let (ran_on, n) = h
            .call(|s| (std::thread::current().id(), s.list(None).map(|l| l.len())))
            .await;
        assert_ne!(ran_on, caller, "the store call ran on the runtime's thread");
        assert_eq!(n.unwrap(), 0);
    }

    #[tokio::test(flavor = "current_thread")]
    #[should_panic(expected = "boom in the store")]
    async fn call_resumes_a_panic() {
        let (_dir, h) = handle();
        h.call(|_| -> () { panic!("boom in the store") }).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blocking_works_on_a_worker_and_off_the_runtime() {
        let (_dir, h) = handle();
        assert_eq!(h.blocking(|s| s.list(None).unwrap().len()), 0);
        let h2 = h.clone();
        let n = std::thread::spawn(move || h2.blocking(|s| s.list(None).unwrap().len()))
            .join()
            .unwrap();
        assert_eq!(n, 0);
    }
}
