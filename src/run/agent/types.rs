//! The agent's shared vocabulary: the types its files (and the API above it) pass
//! around, and the small helpers they share. It imports nothing from the agent's
//! `mod.rs`, so every file of the agent can use it without an import cycle.

use super::source::SharedSource;
use crate::core::events::{now_ms, RuleState, Sink};
use crate::io::prom::PromClient;
use crate::io::store::{Ending, NewWatch, PollMark, WatchState};
use crate::run::channel;
use crate::run::watch::OutcomeKind;
use crate::run::watch::{Outcome, Signal};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::task::JoinHandle;

/// Queries in flight at once for the unauthenticated verdict routes, whatever
/// `--max-concurrent-queries` allows the watches.
pub const OPEN_VERDICT_QUERIES: usize = 4;

/// An id for this agent: `host:pid:start-ms`.
pub fn agent_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}:{}:{}", std::process::id(), now_ms())
}

/// Why a watch could not be created (each is a 4xx for the API).
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("{0}")]
    BadRequest(String),
    #[error("no rule file named `{0}` in the rules directory")]
    UnknownRules(String),
    #[error("a watch with id `{0}` exists with other rules or vars")]
    Conflict(String),
    #[error("the agent is shutting down")]
    ShuttingDown,
    /// The agent cannot answer (not the caller's fault): a 503 with this sentence.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] crate::io::store::StoreError),
}

/// The most watches one batch may create (`Agent::create_many`): one transaction,
/// one answer; above it a batch is refused whole, with this number in the error.
pub const MAX_BATCH: usize = 10_000;

/// A batch of `n` watches is refused whole unless it holds 1 to `MAX_BATCH`.
pub fn batch_size(n: usize) -> Result<(), CreateError> {
    if n == 0 || n > MAX_BATCH {
        return Err(CreateError::BadRequest(format!(
            "a batch holds 1 to {MAX_BATCH} watches, not {n}: split it into several requests"
        )));
    }
    Ok(())
}

/// Why a batch created nothing.
#[derive(Debug)]
pub enum BatchError {
    /// These items (index in the batch, why) were refused; nothing was stored.
    Refused(Vec<(usize, CreateError)>),
    /// The batch as a whole (too large, the agent stopping, the store failing).
    Whole(CreateError),
}

/// A request for a watch (the API's body, validated there for unknown fields).
#[derive(Debug, Clone)]
pub struct WatchRequest {
    pub rules: String,
    pub vars: BTreeMap<String, String>,
    pub duration: Option<Duration>,
    pub id: Option<String>,
}

/// When a collection that grows by one at a time sweeps out its dead entries: once it
/// has doubled since the last sweep (and holds at least 64), so that sweeping costs
/// O(1) an insert. Sweeping at every insert made starting 100,000 watches quadratic;
/// at fixed sizes, a collection of live entries just under one was swept at every
/// insert.
#[derive(Default)]
pub(super) struct Sweeps {
    left: usize,
}

impl Sweeps {
    /// Whether a collection of `len` entries is due a sweep.
    pub(super) fn due(&self, len: usize) -> bool {
        len >= 2 * self.left.max(32)
    }

    /// A sweep left `len` entries.
    pub(super) fn swept(&mut self, len: usize) {
        self.left = len;
    }
}

/// The watches' tasks, awaited at shutdown. Finished ones are dropped when due
/// (`Sweeps`: a quarter of a restart's CPU went to reading task states when every
/// spawn swept the list).
#[derive(Default)]
pub(super) struct Tasks {
    handles: Vec<JoinHandle<()>>,
    sweeps: Sweeps,
}

impl Tasks {
    pub(super) fn push(&mut self, h: JoinHandle<()>) {
        if self.sweeps.due(self.handles.len()) {
            self.handles.retain(|t| !t.is_finished());
            self.sweeps.swept(self.handles.len());
        }
        self.handles.push(h);
    }

    /// Every task, the list emptied.
    pub(super) fn take(&mut self) -> Vec<JoinHandle<()>> {
        self.sweeps.swept(0);
        std::mem::take(&mut self.handles)
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.handles.len()
    }
}

/// A rule's latest live state, for the API.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RuleLive {
    pub state: Option<RuleState>,
    #[serde(serialize_with = "crate::core::events::float::option")]
    pub value: Option<f64>,
    pub last_poll_ms: Option<i64>,
    pub error: Option<String>,
}

/// Each rule's live state, by rule name (a list: a handful of rules, and a map's node
/// held 11 slots, 1 KB a watch). The name is shared with the rule's last-poll marks.
pub(super) type Live = Arc<Mutex<Vec<(Arc<str>, RuleLive)>>>;

/// Makes one more sink for each watch the agent runs (e.g. the page's live record,
/// which lives on a floor above the agent). It is given the watch's definition with
/// its `rules_text` and `vars` already dropped (its snapshot holds them; the
/// `watch_started` event carries the vars in force).
pub type WatchSinkFactory = Arc<dyn Fn(&NewWatch) -> Box<dyn Sink> + Send + Sync>;

/// One client per (Prometheus URL, query timeout).
pub(super) type SourceKey = (String, Duration);

pub(super) struct Handle {
    pub(super) signal: channel::Sender<Signal>,
    /// Where people's orders reach the watch's decision loop (`orders.rs`).
    pub(super) orders: channel::Sender<crate::run::watch::OrderMsg>,
    pub(super) live: Live,
    /// Where the watch's clock is checked periodically: its Prometheus and its limit
    /// (set once the watch is judged here).
    pub(super) clock: Option<(Arc<SharedSource<PromClient>>, Duration)>,
}

/// Last polls waiting to be written, merged per (watch, rule). A mark's own names
/// become its key (shared, not copied: a mark a poll, tens of thousands a second at
/// 100,000 watches).
#[derive(Default)]
pub(super) struct PollBook(Mutex<HashMap<MarkKey, Merged, foldhash::fast::RandomState>>);

/// A last poll's key: (watch, rule).
type MarkKey = (Arc<str>, Arc<str>);

/// A mark without its key.
struct Merged {
    token: i64,
    at_ms: i64,
    ok: bool,
    data: bool,
    windows: Option<crate::io::store::Windows>,
}

impl PollBook {
    pub(super) fn mark(&self, p: PollMark) {
        let PollMark {
            id,
            token,
            rule,
            at_ms,
            ok,
            data,
            windows,
        } = p;
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match m.entry((id, rule)) {
            std::collections::hash_map::Entry::Occupied(mut o) => {
                let v = o.get_mut();
                if at_ms >= v.at_ms {
                    v.at_ms = at_ms;
                    v.ok = ok;
                    v.windows = windows;
                }
                v.data |= data;
                // Tokens only grow: a mark of a lease taken again carries the new one.
                v.token = v.token.max(token);
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(Merged {
                    token,
                    at_ms,
                    ok,
                    data,
                    windows,
                });
            }
        }
    }
    pub(super) fn take(&self) -> Vec<PollMark> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.drain()
            .map(|((id, rule), v)| PollMark {
                id,
                token: v.token,
                rule,
                at_ms: v.at_ms,
                ok: v.ok,
                data: v.data,
                windows: v.windows,
            })
            .collect()
    }
}

pub(super) fn unix(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The stored ending of an outcome.
pub(super) fn ending_of(outcome: &Outcome) -> Ending {
    Ending {
        state: WatchState::Finished,
        outcome: outcome.name().to_string(),
        exit_code: outcome.exit_code(),
        detail: outcome.describe(),
        at_ms: now_ms(),
    }
}

pub(super) fn cancelled() -> Ending {
    Ending {
        state: WatchState::Cancelled,
        outcome: OutcomeKind::Cancelled.name().into(),
        exit_code: crate::core::exit::SIGINT,
        detail: "cancelled through the API; no command ran because of it".into(),
        at_ms: now_ms(),
    }
}

/// `work` on every item, in order, off the runtime and split over the machine's cores
/// (at most 8 parts): loading a rule file is CPU work, about a millisecond a watch, and
/// a batch or a restart loads thousands. `what` names the work if a part is lost.
pub(super) async fn over_cores<T, R>(
    items: Vec<T>,
    work: impl Fn(T) -> R + Clone + Send + 'static,
    what: &'static str,
) -> Vec<R>
where
    T: Send + 'static,
    R: Send + 'static,
{
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = items.len().div_ceil(threads.clamp(1, 8)).max(1);
    let mut items = items.into_iter();
    let mut parts = Vec::new();
    loop {
        let part: Vec<T> = items.by_ref().take(per).collect();
        if part.is_empty() {
            break;
        }
        let work = work.clone();
        parts.push(tokio::task::spawn_blocking(move || {
            part.into_iter().map(&work).collect::<Vec<_>>()
        }));
    }
    let mut out = Vec::new();
    for p in parts {
        match p.await {
            Ok(part) => out.extend(part),
            Err(e) => match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(e) => panic!("{what} did not complete: {e}"),
            },
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::Tasks;

    /// Finished tasks do not pile up, running ones are all kept, and a spawn costs
    /// no sweep of the whole list.
    #[tokio::test]
    async fn the_task_list_drops_finished_tasks_and_keeps_running_ones() {
        let mut tasks = Tasks::default();
        let (tx, rx) = tokio::sync::watch::channel(());
        for _ in 0..100 {
            let mut rx = rx.clone();
            tasks.push(tokio::spawn(async move {
                let _ = rx.changed().await;
            }));
        }
        for _ in 0..10_000 {
            let h = tokio::spawn(async {});
            while !h.is_finished() {
                tokio::task::yield_now().await;
            }
            tasks.push(h);
        }
        assert!(tasks.len() < 2 * 100 + 64 + 1, "{} kept", tasks.len());
        tx.send(()).unwrap();
        let all = tasks.take();
        assert!(all.len() >= 100);
        for t in all {
            t.await.unwrap();
        }
        assert_eq!(tasks.len(), 0);
    }

    /// Marks of one (watch, rule) merge into one: the latest poll's time, result and
    /// windows (an older one arriving late changes none of them), data if any had
    /// it, the highest token; other rules and watches stay apart; a take empties it.
    #[test]
    fn poll_marks_merge_per_watch_and_rule() {
        use crate::io::store::PollMark;
        let mark = |id: &str, rule: &str, token, at_ms, ok, data, w: Option<&str>| PollMark {
            id: id.into(),
            token,
            rule: rule.into(),
            at_ms,
            ok,
            data,
            windows: w.map(|w| vec![(Default::default(), w.to_string())]),
        };
        let book = super::PollBook::default();
        book.mark(mark("a", "r", 1, 10, true, true, Some("1/2")));
        book.mark(mark("a", "r", 2, 20, false, false, Some("2/2")));
        book.mark(mark("a", "r", 1, 15, true, false, Some("late")));
        book.mark(mark("a", "s", 1, 5, true, false, None));
        book.mark(mark("b", "r", 3, 7, true, true, None));
        let mut got = book.take();
        got.sort_by(|x, y| (&x.id, &x.rule).cmp(&(&y.id, &y.rule)));
        let want = vec![
            mark("a", "r", 2, 20, false, true, Some("2/2")),
            mark("a", "s", 1, 5, true, false, None),
            mark("b", "r", 3, 7, true, true, None),
        ];
        assert_eq!(got, want);
        assert!(book.take().is_empty());
    }
}
