//! The signal channel: SIGINT and SIGTERM forwarded into a watch, installed before
//! anything runs.

use crate::run::channel;
use crate::run::watch::Signal;

/// Forwards SIGINT and SIGTERM into the watch. Installed before anything runs, so a
/// signal can never kill rollwatch half way through an action.
pub fn signal_channel() -> channel::Receiver<Signal> {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut tx, rx) = channel::channel(4);
    let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::spawn(async move {
        loop {
            let sig = tokio::select! {
                _ = int.recv() => Signal::Interrupt,
                _ = term.recv() => Signal::Terminate,
            };
            if tx.send(sig).await.is_err() {
                return;
            }
        }
    });
    rx
}
