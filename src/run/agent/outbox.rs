//! Notifications that survive a crash: `serve`'s outbox.
//!
//! A notification reports a state change (a rollback ended, the watch ended, a notify
//! rule fired). `watch` sends it from memory, so a crash after the change is stored
//! and before the send loses it. `serve` instead renders it (`Herald`, a collecting
//! `Notifier`), writes it into the store in the SAME transaction as the change it
//! reports (`Store::write_noted`), and delivers it after the commit (`deliver_loop`),
//! oldest first per channel, with an idempotency key, marking it done once delivered.
//! A note taken by an agent that died is taken again when its lease on it ran out,
//! by the restarted agent or by any other agent on a shared store: at least once, and
//! a repeat carries the same key (`Idempotency-Key` for webhooks; Alertmanager alerts
//! are identified by their labels, so a repeat updates the same alert).
//!
//! The writers: `StoreSink` (the ending, a notify rule's firing series, and the notes
//! of events that change no state), `StoreJournal::finished` (an action's result), and
//! the resume paths (an action resolved at a restart, an ending decided by the rows).
//! A writer that puts an event's notes in its transaction renders the event *ahead*
//! of its emission; the sink then skips that event once.

use super::lease::LeaseBook;
use super::types::lock;
use super::Agent;
use crate::core::eval::{Phase, RuleEval};
use crate::core::events::{now_ms, Event, Sink};
use crate::core::rules::{Channel, WatchSpec};
use crate::io::notify::{Collected, Notifier, PostFailure};
use crate::io::store::{NewNote, NoteMark, NoteRow};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tracing::{info, warn};

/// How long a taken note is this agent's to deliver; then it is due again (a dead
/// agent's notes are delivered by whoever comes next; with SQLite, by the restarted
/// agent at once). Longer than an attempt can take (`ATTEMPT_CAP`) plus the reads
/// and the mark around it, so that no other agent takes a note still being sent.
const NOTE_LEASE: Duration = Duration::from_secs(90);
/// The longest one delivery attempt may take: a channel's `timeout` (5 s by default)
/// above it is cut to it, so that an attempt always ends inside its note's lease.
const ATTEMPT_CAP: Duration = Duration::from_secs(60);
/// The wait before a note whose watch could not be read (the store did not answer, its
/// rule snapshot did not load) is tried again.
const UNREADABLE_RETRY: Duration = Duration::from_secs(5);
/// Notes taken per round.
const NOTES_PER_ROUND: usize = 64;
/// How often the outbox is looked at when nothing woke the delivery task.
const IDLE_ROUND: Duration = Duration::from_secs(1);
/// The longest wait between two attempts of one note.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// One watch's notifications, rendered for the outbox.
pub struct Herald {
    notifier: Mutex<Notifier>,
    collected: Collected,
    /// Events already rendered by a writer (by name, in order): skipped once each.
    ahead: Mutex<VecDeque<&'static str>>,
    wake: Arc<Notify>,
    leases: Arc<LeaseBook>,
    id: String,
}

impl Herald {
    pub(super) fn new(
        channels: Vec<Channel>,
        report: String,
        wake: Arc<Notify>,
        leases: Arc<LeaseBook>,
        id: &str,
    ) -> Arc<Herald> {
        let (n, collected) = Notifier::collecting(channels);
        Arc::new(Herald {
            notifier: Mutex::new(n.with_report(report).with_watch_id(id)),
            collected,
            ahead: Mutex::default(),
            wake,
            leases,
            id: id.to_string(),
        })
    }

    /// Renders `event` (nothing for a watch whose lease this agent lost, whose new
    /// owner notifies, nor for "interrupted": a watch suspended to stop resumes at the
    /// next start, and a cancelled one was cancelled on purpose).
    fn render(&self, at_ms: i64, event: &Event) {
        if self.leases.trusted(&self.id).is_none() {
            return;
        }
        if let Event::WatchFinished {
            outcome: "interrupted",
            ..
        } = event
        {
            return;
        }
        lock(&self.notifier).emit(at_ms, event);
    }

    /// Everything rendered and not yet written, as notes.
    pub(super) fn take(&self) -> Vec<NewNote> {
        std::mem::take(&mut *lock(&self.collected))
            .into_iter()
            .map(|o| NewNote {
                channel: o.channel as i64,
                kind: o.kind,
                body: o.body.to_string(),
            })
            .collect()
    }

    /// Renders `event` before it is emitted, for a writer to store its notes with the
    /// change it reports; the sink skips it when it is emitted. Returns every note
    /// not written yet (this event's and any before it).
    pub(super) fn ahead(&self, at_ms: i64, event: &Event) -> Vec<NewNote> {
        self.render(at_ms, event);
        lock(&self.ahead).push_back(event.name());
        self.take()
    }

    /// A write with rendered-ahead events failed: they will not be emitted as planned.
    pub(super) fn forget_ahead(&self) {
        lock(&self.ahead).clear();
    }

    /// The watch resumes from the store (`restore`): the rules of `spec` with a
    /// series restored firing paged before the restart, and a pause that failed
    /// (`pause_failed`) keeps its alert open; the notifier is told, so that the end
    /// resolves the alerts opened before the restart too.
    pub(super) fn resumed(&self, spec: &WatchSpec, evals: &[RuleEval], pause_failed: Option<&str>) {
        let fired = spec
            .rules
            .iter()
            .zip(evals)
            .filter(|(_, e)| e.series().values().any(|s| s.phase == Phase::Firing))
            .map(|(r, _)| r.name.clone())
            .collect();
        let failed = pause_failed.into_iter().map(str::to_string).collect();
        lock(&self.notifier).resumed(fired, failed);
    }

    /// Tells the delivery task that notes were committed.
    pub(super) fn wake(&self) {
        self.wake.notify_one();
    }
}

/// The watch's notifications on its event bus: renders each event (one rendered ahead
/// by a writer is skipped once). It must come before `StoreSink`, which writes them.
pub(super) struct HeraldSink(pub(super) Arc<Herald>);

impl Sink for HeraldSink {
    fn emit(&mut self, at_ms: i64, event: &Event) {
        {
            let mut ahead = lock(&self.0.ahead);
            if ahead.front() == Some(&event.name()) {
                ahead.pop_front();
                return;
            }
        }
        self.0.render(at_ms, event);
    }
}

/// The `Idempotency-Key` of a note: the same at every attempt, by any agent, and
/// never the same for two notes (watch, its creation, the note's id).
pub fn note_key(watch: &str, created_ms: i64, note: i64) -> String {
    let w: String = watch
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("rollwatch-{w}-{created_ms}-{note}")
}

/// The wait before attempt `attempts + 1`: 0.5 s, doubling, at most `MAX_BACKOFF`.
fn backoff(attempts: i64) -> Duration {
    let exp = attempts.clamp(0, 16) as u32;
    (Duration::from_millis(500) * 2u32.pow(exp)).min(MAX_BACKOFF)
}

/// How long one attempt at a channel whose `timeout` is `timeout` may take.
fn attempt_timeout(timeout: Duration) -> Duration {
    timeout.min(ATTEMPT_CAP)
}

/// A watch's channels (from its rule snapshot: URLs are never stored in the outbox).
#[derive(Clone, Debug)]
enum Channels {
    /// Its creation time and channels: the only answer cached.
    Known(i64, Vec<Channel>),
    /// The watch does not exist: its notes are dropped.
    Gone,
    /// Not read this time (a store error, a snapshot that did not load): the note is
    /// tried again later, and nothing is cached.
    Unreadable(String),
}

/// What to do with one note, given what is known of its watch's channels.
#[derive(Debug)]
enum Plan {
    Send(i64, Channel),
    Drop(&'static str),
    Later(String),
}

fn plan(note: &NoteRow, chs: &Channels) -> Plan {
    match chs {
        Channels::Known(created_ms, chs) => {
            match usize::try_from(note.channel).ok().and_then(|i| chs.get(i)) {
                Some(ch) => Plan::Send(*created_ms, ch.clone()),
                None => Plan::Drop("dropped: the watch has no such channel"),
            }
        }
        Channels::Gone => Plan::Drop("dropped: the watch does not exist"),
        Channels::Unreadable(why) => Plan::Later(why.clone()),
    }
}

/// Delivers the outbox's notes for as long as the agent runs.
pub(super) async fn deliver_loop(agent: Arc<Agent>) {
    let http = crate::io::notify::client();
    let mut channels: HashMap<String, Channels> = HashMap::new();
    // Deliveries in flight: new notes are taken as soon as one ends or more are
    // committed, not when the slowest of a round ends (a note in flight is leased, and
    // its channel's later notes wait for it in the store).
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        while tasks.try_join_next().is_some() {}
        let room = NOTES_PER_ROUND.saturating_sub(tasks.len());
        let holder = agent.leases.holder.clone();
        let due = agent
            .store
            .call(move |s| {
                if room == 0 {
                    return Ok(Vec::new());
                }
                s.outbox_due(&holder, NOTE_LEASE, room)
            })
            .await;
        let notes = match due {
            Ok(n) => n,
            Err(e) => {
                agent.metrics.store_errors.inc();
                warn!(event = "store_error", error = %e, "cannot read the notifications to deliver; tried again");
                Vec::new()
            }
        };
        if notes.is_empty() {
            tokio::select! {
                _ = tokio::time::timeout(IDLE_ROUND, agent.outbox_wake.notified()) => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
            continue;
        }
        if channels.len() > 1024 {
            channels.clear();
        }
        for note in notes {
            let chs = match channels.get(&note.watch) {
                Some(c) => c.clone(),
                None => {
                    let c = watch_channels(&agent, &note.watch).await;
                    if matches!(c, Channels::Known(..)) {
                        channels.insert(note.watch.clone(), c.clone());
                    }
                    c
                }
            };
            tasks.spawn(deliver_note(agent.clone(), http.clone(), note, chs));
        }
    }
}

/// The creation time and channels of watch `id`, from its rule snapshot.
async fn watch_channels(agent: &Arc<Agent>, id: &str) -> Channels {
    let id = id.to_string();
    let rec = match agent.store.call(move |s| s.get(&id)).await {
        Ok(Some(rec)) => rec,
        Ok(None) => return Channels::Gone,
        Err(e) => {
            agent.metrics.store_errors.inc();
            return Channels::Unreadable(e.to_string());
        }
    };
    match super::snapshot::load_snapshot(&rec.def) {
        Ok(spec) => Channels::Known(rec.def.created_ms, spec.notify),
        Err(e) => Channels::Unreadable(format!("its rule snapshot does not load: {e}")),
    }
}

/// One attempt at one note, and its mark.
async fn deliver_note(agent: Arc<Agent>, http: reqwest::Client, note: NoteRow, chs: Channels) {
    let mark = |m: NoteMark<'static>| {
        let store = agent.store.clone();
        let metrics = agent.metrics.clone();
        async move {
            let r = store.call(move |s| s.outbox_mark(note.id, m)).await;
            if r.is_err() {
                metrics.store_errors.inc();
                warn!(event = "store_error", note = note.id, "cannot record a notification's delivery; it may be sent again (with the same idempotency key)");
            }
        }
    };
    let (created_ms, mut channel) = match plan(&note, &chs) {
        Plan::Send(created_ms, channel) => (created_ms, channel),
        Plan::Drop(result) => {
            warn!(event = "notification_failed", watch = %note.watch, kind = %note.kind, "the notification is {result}");
            mark(NoteMark::Done {
                at_ms: now_ms(),
                result,
            })
            .await;
            return;
        }
        Plan::Later(why) => {
            warn!(event = "notification_retry", watch = %note.watch, kind = %note.kind, error = %why, "the watch's channels cannot be read now; tried again in {UNREADABLE_RETRY:?}");
            mark(NoteMark::Retry {
                attempts: note.attempts,
                after: UNREADABLE_RETRY,
            })
            .await;
            return;
        }
    };
    let body: serde_json::Value = serde_json::from_str(&note.body).unwrap_or_default();
    let key = note_key(&note.watch, created_ms, note.id);
    channel.timeout = attempt_timeout(channel.timeout);
    let label = &channel.label;
    let sent = tokio::time::timeout(
        ATTEMPT_CAP,
        crate::io::notify::deliver_once(&http, &channel, &body, &key),
    )
    .await
    .unwrap_or_else(|_| {
        Err((
            PostFailure::Exhausted(format!("no answer within {ATTEMPT_CAP:?}")),
            Duration::ZERO,
        ))
    });
    match sent {
        Ok(()) => {
            info!(event = "notification_sent", watch = %note.watch, channel = %label, kind = %note.kind, attempt = note.attempts + 1, key = %key, "notification sent to {label}");
            mark(NoteMark::Done {
                at_ms: now_ms(),
                result: "delivered",
            })
            .await;
        }
        Err((PostFailure::Rejected(status), _)) => {
            warn!(event = "notification_failed", watch = %note.watch, channel = %label, kind = %note.kind, status, "{label} rejected the notification (HTTP {status}); not retried");
            mark(NoteMark::Done {
                at_ms: now_ms(),
                result: "rejected",
            })
            .await;
        }
        Err((PostFailure::Exhausted(last), asked)) => {
            let attempts = note.attempts + 1;
            if attempts > i64::from(channel.retries) {
                warn!(event = "notification_failed", watch = %note.watch, channel = %label, kind = %note.kind, error = %last, "notification to {label} failed after {attempts} attempts: {last}");
                mark(NoteMark::Done {
                    at_ms: now_ms(),
                    result: "failed",
                })
                .await;
            } else {
                // Or later, when the receiver asked for more (`Retry-After`).
                let after = backoff(note.attempts).max(asked);
                info!(event = "notification_retry", watch = %note.watch, channel = %label, kind = %note.kind, attempt = attempts, error = %last, "retrying {label} in {after:?}");
                mark(NoteMark::Retry { attempts, after }).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_key_is_stable_header_safe_and_unique_per_note() {
        assert_eq!(note_key("w-1", 5, 7), "rollwatch-w-1-5-7");
        assert_eq!(note_key("a b/é", 5, 7), "rollwatch-a_b__-5-7");
        assert_ne!(note_key("w", 5, 7), note_key("w", 5, 8));
        assert_ne!(note_key("w", 5, 7), note_key("w", 6, 7));
    }

    #[test]
    fn an_attempt_always_ends_inside_its_notes_lease() {
        for t in [1, 5, 60, 61, 3600] {
            let t = attempt_timeout(Duration::from_secs(t));
            assert!(t <= ATTEMPT_CAP);
            assert!(
                t + Duration::from_secs(15) < NOTE_LEASE,
                "an attempt of {t:?} with a {NOTE_LEASE:?} lease"
            );
        }
        assert_eq!(
            attempt_timeout(Duration::from_secs(5)),
            Duration::from_secs(5)
        );
    }

    fn note(channel: i64) -> NoteRow {
        NoteRow {
            id: 1,
            watch: "w".into(),
            channel,
            kind: "healthy".into(),
            body: "{}".into(),
            attempts: 0,
        }
    }

    #[test]
    fn a_note_is_dropped_only_when_its_watch_or_channel_does_not_exist() {
        assert!(matches!(
            plan(&note(0), &Channels::Unreadable("store down".into())),
            Plan::Later(_)
        ));
        assert!(matches!(plan(&note(0), &Channels::Gone), Plan::Drop(_)));
        assert!(matches!(
            plan(&note(3), &Channels::Known(5, Vec::new())),
            Plan::Drop(_)
        ));
    }

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        assert_eq!(backoff(0), Duration::from_millis(500));
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(30), MAX_BACKOFF);
    }
}
