//! The bounded channels a watch holds for its whole life: its signals, people's
//! orders, and the polls its poller hands its loop.
//!
//! Why not tokio's `mpsc`: a tokio channel allocates its first block of 32 slots and
//! two cache-padded halves when it is made, 576 bytes to over 1 KB each, and a watch
//! holds three (issue 21: about 2.7 KB a watch, 270 MB at 100,000 watches). The
//! channel of `futures-channel` allocates about 150 bytes and one node a message in
//! flight. This module gives it tokio's shape (`send`, `try_send`, `recv() ->
//! Option`), so the code that uses it reads as it did; `send` and `ready` take
//! `&mut`, since futures' sender keeps one waiting task.
//!
//! What it keeps of tokio's: a send waits while the channel is full (the bound is
//! the capacity given plus one slot for each sender, as futures' channel counts it);
//! `recv` is cancel-safe (a message is taken only when `recv` returns it), so it may
//! be one branch of a `select!`; `recv` answers None once every sender is gone and
//! the channel is empty; a send to a dropped receiver fails with its message.

use futures_channel::mpsc;
use futures_util::StreamExt;
use std::future::poll_fn;
use std::sync::{Mutex, MutexGuard};

/// Makes a bounded channel for `capacity` messages (plus one for each sender).
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let (tx, rx) = mpsc::channel(capacity);
    (Sender(Mutex::new(tx)), Receiver(rx))
}

/// The sending half; clone it for each holder.
#[derive(Debug)]
pub struct Sender<T>(Mutex<mpsc::Sender<T>>);

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender(Mutex::new(self.inner().clone()))
    }
}

/// Why a send failed, with the message it carried back.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError<T> {
    /// The channel is full (only `try_send` says so).
    Full(T),
    /// The receiver is gone.
    Closed(T),
}

impl<T> SendError<T> {
    fn of(e: mpsc::TrySendError<T>) -> Self {
        if e.is_disconnected() {
            SendError::Closed(e.into_inner())
        } else {
            SendError::Full(e.into_inner())
        }
    }
}

impl<T> Sender<T> {
    fn inner(&self) -> MutexGuard<'_, mpsc::Sender<T>> {
        // A panic while the lock was held left the sender as it was: a send either
        // went through or did not.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `msg`, waiting while the channel is full. Fails only when the
    /// receiver is gone. (`&mut`: futures' sender keeps one waiting task, so a
    /// handle waits for one sender at a time; clone it for another.)
    pub async fn send(&mut self, msg: T) -> Result<(), SendError<T>> {
        match self.ready().await {
            // Ready: this sender has room, so this cannot be Full.
            Ok(()) => self.try_send(msg),
            Err(()) => Err(SendError::Closed(msg)),
        }
    }

    /// Waits until this sender may send one message at once (`try_send` then takes
    /// it), or Err when the receiver is gone. Taking a message only after this, not
    /// in a future a `select!` may drop, loses nothing when another branch wins.
    pub async fn ready(&mut self) -> Result<(), ()> {
        let tx = self.0.get_mut().unwrap_or_else(|p| p.into_inner());
        poll_fn(|cx| tx.poll_ready(cx)).await.map_err(|_| ())
    }

    /// Sends `msg` if there is room now.
    pub fn try_send(&self, msg: T) -> Result<(), SendError<T>> {
        self.inner().try_send(msg).map_err(SendError::of)
    }
}

/// Why `try_recv` had nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing yet.
    Empty,
    /// Nothing, and every sender is gone.
    Closed,
}

/// The receiving half.
#[derive(Debug)]
pub struct Receiver<T>(mpsc::Receiver<T>);

impl<T> Receiver<T> {
    /// The next message, or None once every sender is gone and none is left.
    /// Cancel-safe.
    pub async fn recv(&mut self) -> Option<T> {
        self.0.next().await
    }

    /// The next message if one is there now.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        self.0.try_recv().map_err(|e| match e {
            mpsc::TryRecvError::Empty => TryRecvError::Empty,
            mpsc::TryRecvError::Closed => TryRecvError::Closed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn messages_arrive_in_order_and_recv_ends_when_every_sender_is_gone() {
        let (mut tx, mut rx) = channel(4);
        let mut tx2 = tx.clone();
        tx.send(1).await.unwrap();
        tx2.send(2).await.unwrap();
        tx.try_send(3).unwrap();
        drop((tx, tx2));
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(rx.try_recv(), Ok(2));
        assert_eq!(rx.recv().await, Some(3));
        assert_eq!(rx.recv().await, None);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
    }

    #[tokio::test]
    async fn a_send_to_a_dropped_receiver_gives_its_message_back() {
        let (mut tx, rx) = channel(4);
        drop(rx);
        assert_eq!(tx.send(7).await, Err(SendError::Closed(7)));
        assert_eq!(tx.try_send(8), Err(SendError::Closed(8)));
        assert_eq!(tx.ready().await, Err(()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_channel_holds_its_sender_until_a_message_is_taken() {
        // Capacity 1, plus one slot for the one sender: two messages, then it waits.
        let (mut tx, mut rx) = channel(1);
        tx.try_send(1).unwrap();
        tx.try_send(2).unwrap();
        assert_eq!(tx.try_send(3), Err(SendError::Full(3)));
        let waiting = tokio::spawn(async move { tx.send(3).await });
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!waiting.is_finished(), "a send into a full channel waited");
        assert_eq!(rx.recv().await, Some(1));
        waiting.await.unwrap().unwrap();
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(rx.recv().await, Some(3));
    }

    #[tokio::test]
    async fn a_recv_a_select_drops_loses_no_message() {
        let (mut tx, mut rx) = channel(8);
        for i in 0..100 {
            // A receive that loses to a ready branch, then a message, then a receive.
            tokio::select! {
                biased;
                _ = std::future::ready(()) => {}
                _ = rx.recv() => panic!("nothing was sent yet"),
            }
            tx.send(i).await.unwrap();
            tokio::select! {
                biased;
                m = rx.recv() => assert_eq!(m, Some(i)),
                _ = std::future::pending::<()>() => unreachable!(),
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_send_from_another_thread_wakes_the_receiver() {
        let (tx, mut rx) = channel(2);
        let sender = std::thread::spawn(move || {
            for i in 0..1000 {
                while let Err(SendError::Full(_)) = tx.try_send(i) {
                    std::thread::yield_now();
                }
            }
        });
        for i in 0..1000 {
            assert_eq!(rx.recv().await, Some(i));
        }
        sender.join().unwrap();
        assert_eq!(rx.recv().await, None);
    }
}
