//! `beside`: the decision loop and its poller in one task, each polled only when
//! something it waits for has woken it.
//!
//! A plain `select` of the two polls both at every wake of the task. The poller
//! wakes the task several times a poll (each rule's tick, the shared answer), and
//! the loop, polled each time, looks into its three channels and its timers, all
//! cold in memory when an agent holds 100,000 watches: a quarter of the agent's CPU
//! went to those empty looks (BENCHMARKS.md, issue 21). Here each future gets a
//! waker of its own that marks it woken, and only marked ones are polled. When the
//! poller hands a poll to the loop (its channel wakes the loop), the loop is polled
//! in the same run of the task instead of a second one.
//!
//! (`futures-concurrency`'s `race` also wakes by branch, but it polls its branches in
//! a random order and ends with whichever finishes first; the loop must come first,
//! and a poller that ends, a watch with no rules, must not end the watch.)

use futures_util::task::AtomicWaker;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

/// How many times one run of the task may go round its two futures. A resource out
/// of tokio's budget for this run answers Pending and wakes its waker at once; after
/// this many rounds the task yields and runs again (never a spin).
const ROUNDS: usize = 4;

/// Which of the two futures were woken since they were last polled, and the task to
/// wake.
struct Woken {
    flags: [AtomicBool; 2],
    task: AtomicWaker,
}

/// The waker handed to one of the two futures.
struct Branch {
    woken: Arc<Woken>,
    which: usize,
}

impl Wake for Branch {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.flags[self.which].store(true, Ordering::Release);
        self.woken.task.wake();
    }
}

/// Runs `main` to its end with `side` polled beside it, in the caller's task;
/// `main` goes on alone if `side` ends first. `main` is polled before `side` in each
/// round. Both are pinned by the caller, so that its future holds each once (taken
/// by value, they would be held here a second time: a watch's whole loop).
pub(super) async fn beside<F: Future, G: Future<Output = ()>>(
    mut main: Pin<&mut F>,
    mut side: Pin<&mut G>,
) -> F::Output {
    let mut side_done = false;
    let woken = Arc::new(Woken {
        flags: [AtomicBool::new(true), AtomicBool::new(true)],
        task: AtomicWaker::new(),
    });
    let wakers: [Waker; 2] = [0, 1].map(|which| {
        Waker::from(Arc::new(Branch {
            woken: woken.clone(),
            which,
        }))
    });
    poll_fn(|cx| {
        // Nothing wakes the task while it runs: a future woken meanwhile (the poller's
        // channel waking the loop) only sets its flag, and is polled in a next round.
        drop(woken.task.take());
        for _ in 0..ROUNDS {
            if woken.flags[0].swap(false, Ordering::AcqRel) {
                let mut own = Context::from_waker(&wakers[0]);
                if let Poll::Ready(out) = main.as_mut().poll(&mut own) {
                    return Poll::Ready(out);
                }
            }
            if !side_done && woken.flags[1].swap(false, Ordering::AcqRel) {
                let mut own = Context::from_waker(&wakers[1]);
                side_done = side.as_mut().poll(&mut own).is_ready();
            }
            // Registered before the flags are read: a wake from another thread after
            // the reads finds the task registered and wakes it; one before, its flag.
            woken.task.register(cx.waker());
            let again = woken.flags[0].load(Ordering::Acquire)
                || (!side_done && woken.flags[1].load(Ordering::Acquire));
            if !again {
                return Poll::Pending;
            }
            drop(woken.task.take());
        }
        // Still woken after every round: run again later, never spin here.
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::beside;
    use std::pin::pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::sync::mpsc;

    /// Counts its polls and waits on a channel: how often `beside` polled it.
    async fn counted(polls: Arc<AtomicUsize>, mut rx: mpsc::Receiver<u32>, want: u32) -> u32 {
        let mut sum = 0;
        let mut got = 0;
        std::future::poll_fn(|cx| {
            polls.fetch_add(1, Ordering::SeqCst);
            while let std::task::Poll::Ready(v) = rx.poll_recv(cx) {
                let Some(v) = v else {
                    return std::task::Poll::Ready(());
                };
                sum += v;
                got += 1;
                if got == want {
                    return std::task::Poll::Ready(());
                }
            }
            std::task::Poll::Pending
        })
        .await;
        sum
    }

    #[tokio::test(start_paused = true)]
    async fn the_main_future_is_polled_only_when_woken() {
        let polls = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel(4);
        let main = counted(polls.clone(), rx, 3);
        // The side wakes itself ten times (its timer) and sends three values.
        let side = async move {
            for i in 0..10u32 {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                if i % 4 == 0 {
                    tx.send(i).await.unwrap();
                }
            }
        };
        assert_eq!(beside(pin!(main), pin!(side)).await, 4 + 8);
        // Its first poll and one for each value: never for the side's own wakes.
        assert_eq!(polls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn the_main_future_goes_on_when_the_side_ends_first() {
        let polls = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel(4);
        let main = counted(polls.clone(), rx, 2);
        let late = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            late.send(2).await.unwrap();
        });
        let side = async move {
            tx.send(1).await.unwrap();
        };
        assert_eq!(beside(pin!(main), pin!(side)).await, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn the_side_is_dropped_when_the_main_future_ends() {
        let (tx, rx) = mpsc::channel(4);
        let (drop_tx, mut drop_rx) = mpsc::channel::<()>(1);
        struct OnDrop(mpsc::Sender<()>);
        impl Drop for OnDrop {
            fn drop(&mut self) {
                let _ = self.0.try_send(());
            }
        }
        let side = async move {
            let _guard = OnDrop(drop_tx);
            tx.send(7).await.unwrap();
            std::future::pending::<()>().await
        };
        let main = counted(Arc::new(AtomicUsize::new(0)), rx, 1);
        assert_eq!(beside(pin!(main), pin!(side)).await, 7);
        assert_eq!(drop_rx.recv().await, Some(()));
    }

    /// A wake from another thread while the task waits is never lost: a value sent
    /// from a plain thread reaches the main future.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wake_from_another_thread_is_never_lost() {
        for _ in 0..200 {
            let (tx, rx) = mpsc::channel(1);
            let thread = std::thread::spawn(move || tx.blocking_send(5).unwrap());
            let main = counted(Arc::new(AtomicUsize::new(0)), rx, 1);
            let got = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                beside(pin!(main), pin!(std::future::pending())),
            )
            .await;
            assert_eq!(got, Ok(5));
            thread.join().unwrap();
        }
    }
}
