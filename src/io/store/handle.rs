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

    /// `call` on a thread of its own, not tokio's blocking pool: for the lease
    /// renewal, which must never wait behind the watches' own store calls. At
    /// 33,000 watches an agent, a burst of creations filled the blocking pool's 512
    /// threads (each waiting for one of the store's connections); a renewal queued
    /// behind them outlasted the trust window, and every watch stopped as "lease
    /// lost" (BENCHMARKS.md, issue 21). One thread a call: a renewal is one call
    /// every few seconds.
    pub async fn call_apart<R: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> R + Send + 'static,
    ) -> R {
        let store = self.0.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("rollwatch-store-apart".into())
            .spawn(move || {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&*store)));
                let _ = tx.send(r);
            });
        if let Err(e) = spawned {
            panic!("cannot start a thread for a store call: {e}");
        }
        match rx.await {
            Ok(Ok(r)) => r,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => panic!("a store call's thread ended without an answer"),
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

    /// The blocking pool full (its one thread held by a store call that waits), a
    /// `call_apart` still runs and answers; a `call` would wait for the pool.
    #[test]
    fn call_apart_answers_while_the_blocking_pool_is_full() {
        let (_dir, h) = handle();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (release, held) = std::sync::mpsc::channel::<()>();
            let (started, is_held) = tokio::sync::oneshot::channel();
            let hold = h.clone();
            let holder = tokio::spawn(async move {
                hold.call(move |_| {
                    let _ = started.send(());
                    held.recv().ok();
                })
                .await
            });
            is_held.await.unwrap();
            let pooled = tokio::time::timeout(
                std::time::Duration::from_millis(300),
                h.call(|s| s.shared()),
            )
            .await;
            assert!(
                pooled.is_err(),
                "the pool was not full: the test proves nothing"
            );
            let apart = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                h.call_apart(|s| s.list(None).map(|l| l.len())),
            )
            .await
            .expect("call_apart waited for the full pool");
            assert_eq!(apart.unwrap(), 0);
            release.send(()).unwrap();
            holder.await.unwrap();
        });
    }

    #[tokio::test(flavor = "current_thread")]
    #[should_panic(expected = "boom apart")]
    async fn call_apart_resumes_a_panic() {
        let (_dir, h) = handle();
        h.call_apart(|_| -> () { panic!("boom apart") }).await;
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
