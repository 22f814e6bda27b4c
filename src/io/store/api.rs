//! What the store promises, apart from how either backend keeps it: the `Store`
//! trait, the rows it reads and writes, and `StoreError`. Kept out of `mod.rs` so
//! that the backends (children of `io::store`) import these from a sibling, never
//! from the parent that re-exports them (no parent-child import cycle; see
//! `tests/architecture.rs`). The module's doc (`io/store/mod.rs`) says what lives here.

use super::orders::{NewOrder, OrderRow, OrderState, Ordered};
use super::{pgconn, statefile};
use crate::core::eval::{Labels, Phase};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the state store {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(transparent)]
    StateFile(#[from] statefile::StateFileError),
    #[error("state store: cannot {what}: {source}")]
    Sql {
        what: &'static str,
        source: rusqlite::Error,
    },
    #[error("the state store {path} has schema version {found}, newer than this rollwatch knows ({known}): run the newer rollwatch, or another state file")]
    NewerSchema {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("state store: {what} was already claimed for watch {id}; it is not run again")]
    AlreadyClaimed { what: String, id: String },
    #[error("the store's connection string: {0}")]
    PgUrl(pgconn::ConnStringError),
    /// A connection no retry can fix: a certificate, a TLS setting, a refused login.
    #[error("state store {url}: cannot {what}: {reason}")]
    PgRefused {
        /// As `pgconn::render` shows it: never the password.
        url: String,
        what: &'static str,
        reason: String,
    },
    #[error("state store {url}: cannot {what}: {reason}")]
    Pg {
        /// The URL with its password redacted.
        url: String,
        what: &'static str,
        reason: String,
    },
    #[error("the state store {url} has schema version {found}, newer than this rollwatch knows ({known}): run the newer rollwatch")]
    NewerPgSchema { url: String, found: i64, known: i64 },
    #[error("state store: the {what} for watch {id} was refused: this agent no longer holds the watch's lease (token {token}); another agent owns it and nothing runs or is written here")]
    Fenced {
        what: String,
        id: String,
        token: i64,
    },
    #[error("state store: corrupt {what} for watch {id}: {reason}")]
    Corrupt {
        what: &'static str,
        id: String,
        reason: String,
    },
}

/// Where a watch is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WatchState {
    /// Running, or to be resumed at the next start.
    Running,
    /// Ended with an outcome.
    Finished,
    /// Cancelled through the API; no command ran because of it.
    Cancelled,
}

impl WatchState {
    pub fn as_str(&self) -> &'static str {
        match self {
            WatchState::Running => "running",
            WatchState::Finished => "finished",
            WatchState::Cancelled => "cancelled",
        }
    }
    pub(super) fn parse(s: &str) -> Option<WatchState> {
        match s {
            "running" => Some(WatchState::Running),
            "finished" => Some(WatchState::Finished),
            "cancelled" => Some(WatchState::Cancelled),
            _ => None,
        }
    }
}

/// A watch as it was handed to the agent.
#[derive(Debug, Clone, PartialEq)]
pub struct NewWatch {
    pub id: String,
    /// The rule file's name (its stem in the rules directory).
    pub rules: String,
    /// The rule file's text when the watch was created: what runs.
    pub rules_text: String,
    pub vars: BTreeMap<String, String>,
    pub duration_ms: i64,
    pub created_ms: i64,
    /// `watch.key` with its vars (`orders.rs`, supersede): at most one running watch
    /// holds a key; creating another ends the older one as `superseded`.
    pub key: Option<String>,
}

impl NewWatch {
    /// Whether `stored` (a watch found with this one's id) is the same request made
    /// again: the same rule file and vars. Then creating it again is idempotent;
    /// otherwise it is a conflict. The one place this is decided (`create` in the
    /// agent, `create_many` in both stores).
    pub fn same_request(&self, stored: &NewWatch) -> bool {
        self.rules == stored.rules && self.vars == stored.vars
    }
}

/// A stored watch.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchRecord {
    pub def: NewWatch,
    /// The watch this one superseded: it starts judging once that one ended.
    pub after: Option<String>,
    pub state: WatchState,
    pub outcome: Option<String>,
    pub exit_code: Option<u8>,
    pub detail: Option<String>,
    pub finished_ms: Option<i64>,
}

/// How a watch ended, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Ending {
    pub state: WatchState,
    pub outcome: String,
    pub exit_code: u8,
    pub detail: String,
    pub at_ms: i64,
}

/// One series that is pending or firing.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesRow {
    pub rule: String,
    pub labels: Labels,
    pub phase: Phase,
    /// Unix ms of the first breaching poll of this run of breaches.
    pub since_ms: i64,
    pub last_value: Option<f64>,
}

/// Where an action is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionState {
    /// Written before the command started; no result yet.
    Started,
    /// The command ended; `result` says how.
    Finished,
    /// The agent died while it ran and it was not run again.
    Unknown,
    /// The agent died while it ran; it was run again (it is idempotent).
    Rerun,
}

impl ActionState {
    pub(super) fn as_str(&self) -> &'static str {
        match self {
            ActionState::Started => "started",
            ActionState::Finished => "finished",
            ActionState::Unknown => "unknown",
            ActionState::Rerun => "rerun",
        }
    }
    pub(super) fn parse(s: &str) -> Option<ActionState> {
        match s {
            "started" => Some(ActionState::Started),
            "finished" => Some(ActionState::Finished),
            "unknown" => Some(ActionState::Unknown),
            "rerun" => Some(ActionState::Rerun),
            _ => None,
        }
    }
}

/// An action about to run: what `claim_action` records.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAction {
    pub kind: String,
    pub rule: String,
    pub argv: Vec<String>,
    /// The `ROLLWATCH_*` environment it runs with (a re-run gets the same).
    pub env: Vec<(String, String)>,
    pub at_ms: i64,
}

/// A poll of one rule of one watch, as `save_polls` records it.
#[derive(Debug, Clone, PartialEq)]
pub struct PollMark {
    /// (Shared, as the rule's name: a mark is made at every poll, tens of thousands a
    /// second at 100,000 watches, and each was two strings copied.)
    pub id: std::sync::Arc<str>,
    /// The fencing token the writer holds the watch's lease with (see `Fence`).
    pub token: i64,
    pub rule: std::sync::Arc<str>,
    pub at_ms: i64,
    /// The query succeeded.
    pub ok: bool,
    /// It returned at least one usable sample.
    pub data: bool,
    /// `breaches: M of N`: the window of each pending or firing series after this
    /// poll (`core::eval::window_text`), stored with the last poll so that a restart
    /// continues the count (None: the rule has no `breaches`).
    pub windows: Option<Windows>,
}

/// A rule's `breaches` windows: (series, window as `core::eval::window_text` writes it).
pub type Windows = Vec<(Labels, String)>;

/// What a rule's polls have shown so far: what a restart needs to tell "judged" from
/// "never judged" without re-reading the whole watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PollState {
    pub last_ms: i64,
    pub last_ok: bool,
    pub ever_ok: bool,
    pub ever_data: bool,
}

/// What resuming a watch reads of its own rows (`Store::resume_reads`): what the
/// exactly-once rule (its actions), the restart rule (its series, last polls and
/// `breaches` windows) and people's orders (holds, extensions) need of it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResumeRead {
    pub actions: Vec<ActionRow>,
    pub windows: BTreeMap<String, Windows>,
    pub series: Vec<SeriesRow>,
    pub polls: BTreeMap<String, PollState>,
    pub orders: Vec<OrderRow>,
}

/// How an action ended, as `end_action` records it.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionEnd<'a> {
    pub state: ActionState,
    /// `succeeded`, `failed with exit code 3`, ...
    pub result: &'a str,
    pub succeeded: Option<bool>,
    pub at_ms: i64,
}

/// Which process ran an action's command: enough to tell, after a crash, whether it is
/// still running (its process group) and that a process with that id is still it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProcessId {
    /// The command's pid, which is also its process group id.
    pub pgid: i64,
    /// The leader's start time (clock ticks since boot, /proc/PID/stat field 22).
    pub start_ticks: Option<i64>,
    /// /proc/sys/kernel/random/boot_id: a process from another boot is gone.
    pub boot_id: Option<String>,
}

/// One action of a watch.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ActionRow {
    pub id: i64,
    pub kind: String,
    pub rule: String,
    pub argv: Vec<String>,
    pub state: ActionState,
    /// `succeeded`, `failed with exit code 3`, ...
    pub result: Option<String>,
    pub succeeded: Option<bool>,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    /// The action this one re-ran after a restart.
    pub rerun_of: Option<i64>,
    /// The environment the command ran with.
    #[serde(skip)]
    pub env: Vec<(String, String)>,
    /// The process that ran it, once it started.
    #[serde(skip)]
    pub process: Option<ProcessId>,
    /// The fencing token it was claimed with (SQLite: always 1, its one agent's; a
    /// PostgreSQL row from before tokens were stored: None). A claim's intent file
    /// is this claim's only if it carries the same token (`io::supervise`).
    #[serde(skip)]
    pub token: Option<i64>,
}

#[cfg(test)]
impl ActionRow {
    /// A row for the restart rule's table tests: action `id` of `kind` (its rule
    /// `<kind>-rule`, argv `x`, token 1), in `state`, with how it ended and what it re-ran.
    pub fn sample(
        id: i64,
        kind: &str,
        state: ActionState,
        succeeded: Option<bool>,
        rerun_of: Option<i64>,
    ) -> ActionRow {
        ActionRow {
            id,
            kind: kind.into(),
            rule: format!("{kind}-rule"),
            argv: vec!["x".into()],
            state,
            result: None,
            succeeded,
            started_ms: 0,
            finished_ms: None,
            rerun_of,
            env: Vec::new(),
            process: None,
            token: Some(1),
        }
    }
}

/// Whether `create` stored a new watch or found one with that id.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    New(WatchRecord),
    Existing(WatchRecord),
}

/// What `create_many` did.
#[derive(Debug, Clone, PartialEq)]
pub enum CreatedMany {
    /// ONE commit stored every new watch of the batch: one `Created` per watch, in
    /// the batch's order (`Existing` for an id already stored by the same request).
    Stored(Vec<Created>),
    /// Nothing was written: these watches (their index in the batch, and the watch
    /// stored with that id) name an id that exists with other rules or vars.
    Conflicts(Vec<(usize, WatchRecord)>),
}

/// Who may write a watch's state: the holder of its lease and the fencing token it
/// holds it with. Every write an owner makes to a running watch carries it, and the
/// store checks it in the write's own transaction (`Fenced` if the lease moved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub holder: String,
    pub token: i64,
}

/// A lease an agent holds on a running watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub watch: String,
    /// Increases at every change of holder; a claim must carry the current one.
    pub token: i64,
}

/// A notification to deliver once the state change it reports has committed: written
/// in that change's transaction (the outbox), so a crash after the commit never loses
/// it. The channel is the index of the watch's `notify:` entry; its URL (a secret) is
/// read from the watch's rule snapshot when the note is delivered, never stored here.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNote {
    pub channel: i64,
    /// `rollback`, `healthy`, `alerts` (Alertmanager), ...
    pub kind: String,
    /// The JSON body to post.
    pub body: String,
}

/// A note of the outbox not delivered yet.
#[derive(Debug, Clone, PartialEq)]
pub struct NoteRow {
    pub id: i64,
    pub watch: String,
    pub channel: i64,
    pub kind: String,
    pub body: String,
    /// Failed attempts so far (a crash during one does not count).
    pub attempts: i64,
}

/// What became of a note's delivery attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum NoteMark<'a> {
    /// Delivered (or refused for good, or given up after its retries): never sent again,
    /// and deleted from the outbox (`at_ms` and `result` are for the log).
    Done { at_ms: i64, result: &'a str },
    /// Failed: tried again after `after`.
    Retry { attempts: i64, after: Duration },
}

/// A state change of a watch that notes are written with (`write_noted`), in one
/// transaction: the same writes as the method named.
#[derive(Debug, Clone, PartialEq)]
pub enum Noted<'a> {
    /// `finish`.
    Finish(&'a Ending),
    /// `put_series`.
    PutSeries(&'a SeriesRow),
    /// `end_action`.
    EndAction {
        action: i64,
        end: &'a ActionEnd<'a>,
        ending: Option<&'a Ending>,
    },
    /// No state change: the notes alone (an alert update, a pending rule).
    Nothing,
}

impl Noted<'_> {
    /// What a refused (fenced) write of this change was, for `StoreError::Fenced`.
    pub fn what(&self) -> String {
        match self {
            Noted::Finish(_) => "write of how the watch ended".to_string(),
            Noted::PutSeries(_) => "write of a series' breach state".to_string(),
            Noted::EndAction { action, .. } => format!("write of action {action}'s result"),
            Noted::Nothing => "write of notifications".to_string(),
        }
    }

    /// What writing it does, for a store error's context.
    pub fn doing(&self) -> &'static str {
        match self {
            Noted::Finish(_) => "record how a watch ended",
            Noted::PutSeries(_) => "record a series' breach state",
            Noted::EndAction { .. } => "record an action's result",
            Noted::Nothing => "record notifications",
        }
    }
}

/// The agent's durable state.
pub trait Store: Send + Sync + 'static {
    /// Stores a new watch, or returns the one that already has its id.
    fn create(&self, w: &NewWatch) -> Result<Created, StoreError>;
    /// `create` for many watches in ONE transaction, all or nothing: every new
    /// watch is stored by one commit (durable when this returns `Stored`), an id
    /// already stored by the same request (`NewWatch::same_request`) is `Existing`,
    /// and if any id exists with other rules or vars nothing is written
    /// (`Conflicts`). An id repeated within `ws` is `Existing` after its first.
    /// Not fenced, as `create` is not: a new watch has no lease yet.
    fn create_many(&self, ws: &[NewWatch]) -> Result<CreatedMany, StoreError>;
    fn get(&self, id: &str) -> Result<Option<WatchRecord>, StoreError>;
    /// Watches (optionally in one state), oldest first.
    fn list(&self, state: Option<WatchState>) -> Result<Vec<WatchRecord>, StoreError>;
    /// The running watches among `ids` (oldest first), in one read: what an adoption
    /// needs of the watches it took, where `list` would read every running watch's
    /// record (100,000 rule files at scale) at each round that adopts one.
    fn running_among(&self, ids: &[String]) -> Result<Vec<WatchRecord>, StoreError> {
        let wanted: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
        Ok(self
            .list(Some(WatchState::Running))?
            .into_iter()
            .filter(|r| wanted.contains(r.def.id.as_str()))
            .collect())
    }
    /// How many watches are in each state.
    fn count_by_state(&self) -> Result<Vec<(WatchState, i64)>, StoreError>;
    /// Records how a watch ended and gives its lease back (only `fence`'s: never
    /// another holder's), fenced (`Fenced` if the lease moved).
    /// (`write_noted` with no notes: one write path, one fence check.)
    fn finish(&self, id: &str, fence: &Fence, ending: &Ending) -> Result<(), StoreError> {
        self.write_noted(id, fence, Noted::Finish(ending), &[])
    }
    /// Records that a series went pending or fired (keeps an existing `since`), fenced.
    fn put_series(&self, id: &str, fence: &Fence, row: &SeriesRow) -> Result<(), StoreError> {
        self.write_noted(id, fence, Noted::PutSeries(row), &[])
    }
    /// Records that a series stopped breaching, fenced.
    fn clear_series(
        &self,
        id: &str,
        fence: &Fence,
        rule: &str,
        labels: &Labels,
    ) -> Result<(), StoreError>;
    fn series(&self, id: &str) -> Result<Vec<SeriesRow>, StoreError>;
    /// The last poll of each (watch, rule), in one transaction; `ever_ok`/`ever_data`
    /// only ever go from false to true, and an older poll never replaces a newer one.
    /// Each mark is fenced by `holder` and its own `token`: a mark of a watch whose
    /// lease `holder` no longer holds with that token is not written. Returns the
    /// watches whose marks were refused so.
    fn save_polls(&self, holder: &str, polls: &[PollMark]) -> Result<Vec<String>, StoreError>;
    /// Rule name -> what its polls so far have shown.
    fn polls(&self, id: &str) -> Result<BTreeMap<String, PollState>, StoreError>;
    /// Rule name -> the `breaches` windows stored with its last poll (`PollMark::windows`;
    /// rules without any are absent).
    fn breach_windows(&self, id: &str) -> Result<BTreeMap<String, Windows>, StoreError>;
    /// Claims an action before its command runs, in ONE transaction with the series
    /// that fired: either both are recorded or neither is. At most one claim per
    /// (watch, kind) can ever commit (`AlreadyClaimed` otherwise). Returns its id.
    fn claim_action(
        &self,
        id: &str,
        action: &NewAction,
        fired: &[SeriesRow],
    ) -> Result<i64, StoreError>;
    /// Claims the re-run of an interrupted idempotent action, in one transaction with
    /// marking the old one `rerun`. At most one re-run of an action can commit.
    fn claim_rerun(&self, id: &str, old: i64, action: &NewAction) -> Result<i64, StoreError>;
    /// Records the process an action's command runs in, right after it started. Not
    /// fenced: the command runs whatever the lease says now, and whoever holds the
    /// watch must be able to find its process group.
    fn action_spawned(&self, action: i64, process: &ProcessId) -> Result<(), StoreError>;
    /// Records how action `action` of watch `id` ended and, if given, how the watch
    /// ended, in one transaction (so that no state is ever "action resolved, watch
    /// still running"), fenced: an agent that lost the lease (paused while its command
    /// ran) cannot overwrite what the new owner recorded.
    fn end_action(
        &self,
        id: &str,
        fence: &Fence,
        action: i64,
        end: &ActionEnd<'_>,
        ending: Option<&Ending>,
    ) -> Result<(), StoreError> {
        let change = Noted::EndAction {
            action,
            end,
            ending,
        };
        self.write_noted(id, fence, change, &[])
    }
    fn actions(&self, id: &str) -> Result<Vec<ActionRow>, StoreError>;
    /// `ResumeRead` of each of `ids` (empty for an id not stored), as one read: a
    /// restart or an adoption resumes thousands of watches at once, and five reads of
    /// each, each its own call and transaction, with SQLite under them made most of a
    /// quarter of a 100,000-watch restart's CPU (BENCHMARKS.md, issue 21). This
    /// default reads one watch after another; the stores read them together.
    fn resume_reads(
        &self,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, ResumeRead>, StoreError> {
        let mut out = std::collections::HashMap::with_capacity(ids.len());
        for id in ids {
            out.insert(
                id.clone(),
                ResumeRead {
                    actions: self.actions(id)?,
                    windows: self.breach_windows(id)?,
                    series: self.series(id)?,
                    polls: self.polls(id)?,
                    orders: self.orders(id)?,
                },
            );
        }
        Ok(out)
    }

    // ---- Baselines (issue 12, judges): a `baseline: before:` is taken once, when the
    // watch starts, and kept so that a restart does not shift it.

    /// Stores the `before:` baseline of `rule` (the per-series means; possibly none).
    /// A baseline already stored for (watch, rule) is kept: it never shifts.
    /// Fenced, as every owner's write.
    fn put_baselines(
        &self,
        id: &str,
        fence: &Fence,
        rule: &str,
        values: &[(Labels, f64)],
    ) -> Result<(), StoreError>;
    /// `put_baselines` for several rules of one watch, in one transaction where the
    /// store can (a new watch stores a reading for each of its rules at once: at
    /// 100,000 watches, one commit each was the store's bottleneck).
    fn put_baselines_many(
        &self,
        id: &str,
        fence: &Fence,
        rules: &[(String, Vec<(Labels, f64)>)],
    ) -> Result<(), StoreError> {
        for (rule, values) in rules {
            self.put_baselines(id, fence, rule, values)?;
        }
        Ok(())
    }
    /// Rule name -> its stored baseline (a rule whose baseline was taken without any
    /// series maps to an empty list; a rule not taken yet is absent).
    fn baselines(&self, id: &str) -> Result<BTreeMap<String, Vec<(Labels, f64)>>, StoreError>;

    // --- Leases (several agents on one store; see the module's doc) ---

    /// Whether several agents may share this store (then leases expire and move).
    fn shared(&self) -> bool;
    /// The store's clock, Unix ms: the one clock every agent sharing the store agrees
    /// on (PostgreSQL's `clock_timestamp()`; SQLite, one agent: this machine's). A
    /// watch's creation and elapsed time are read on it, never on an agent's own clock.
    fn clock_ms(&self) -> Result<i64, StoreError>;
    /// Records that `agent` is alive and returns how many agents were seen alive
    /// within `ttl` (itself included; the agent asks for two of its adoption rounds):
    /// each adopts about its share of the watches.
    fn heartbeat(&self, agent: &str, ttl: Duration) -> Result<usize, StoreError>;
    /// Takes the lease of watch `id` for `holder` if nobody holds it or it expired.
    /// `None`: another agent holds it.
    fn acquire_lease(
        &self,
        id: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError>;
    /// `acquire_lease` for each of `ids` in ONE statement where the store allows it
    /// (a batch of 10,000 new watches took their leases in 10,000 round trips, longer
    /// than the trust window they were all given at the first). Returns the leases
    /// taken; an id missing from the answer is held by another agent. All or nothing
    /// on an error.
    fn acquire_leases(
        &self,
        ids: &[String],
        holder: &str,
        ttl: Duration,
    ) -> Result<Vec<Lease>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        let mut seen = std::collections::HashSet::with_capacity(ids.len());
        for id in ids.iter().filter(|id| seen.insert(id.as_str())) {
            out.extend(self.acquire_lease(id, holder, ttl)?);
        }
        Ok(out)
    }
    /// Renews the unexpired leases of `holder` on the watches `ids` (those it still
    /// holds; never one it gave up, which must expire) in ONE statement and returns
    /// them; a lease missing from the answer is lost (expired or taken over).
    fn renew_leases(
        &self,
        holder: &str,
        ids: &[String],
        ttl: Duration,
    ) -> Result<Vec<Lease>, StoreError>;
    /// Takes over up to `max` running watches whose lease expired or that have none
    /// (each with a new, higher token); two agents never adopt the same watch.
    fn adopt_leases(
        &self,
        holder: &str,
        ttl: Duration,
        max: usize,
    ) -> Result<Vec<Lease>, StoreError>;
    /// Gives a lease back (the watch ended, or the agent stops): another agent may
    /// take it at once.
    fn release_lease(&self, id: &str, holder: &str) -> Result<(), StoreError>;
    /// `claim_action`, in one transaction with checking that `holder` still holds the
    /// watch's lease with `token`, unexpired on the store's clock (`Fenced` if not).
    fn claim_fenced(
        &self,
        id: &str,
        holder: &str,
        token: i64,
        action: &NewAction,
        fired: &[SeriesRow],
    ) -> Result<i64, StoreError>;
    /// `claim_rerun`, fenced the same way.
    fn claim_rerun_fenced(
        &self,
        id: &str,
        holder: &str,
        token: i64,
        old: i64,
        action: &NewAction,
    ) -> Result<i64, StoreError>;

    // --- The outbox (issue 19, item 8): notifications survive a crash after the state
    // change they report, and are delivered after its commit.

    /// Writes `change` of watch `id` and the notes that report it in ONE transaction.
    /// Fenced as the write it names is: refused when `fence` no longer holds the lease.
    fn write_noted(
        &self,
        id: &str,
        fence: &Fence,
        change: Noted<'_>,
        notes: &[NewNote],
    ) -> Result<(), StoreError>;
    /// Takes up to `max` notes due for delivery (oldest first) for `holder`, for
    /// `lease`: until then no other caller gets them. A note taken by an agent that
    /// died is due again when its lease ran out.
    fn outbox_due(
        &self,
        holder: &str,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<NoteRow>, StoreError>;
    /// Records what became of a note's delivery.
    fn outbox_mark(&self, note: i64, mark: NoteMark<'_>) -> Result<(), StoreError>;

    // --- People's orders (issue 22; `orders.rs`).

    /// Stores an order for running watch `id`, in one transaction with checking that
    /// it may be given: the watch runs, and for `rollback` and `pause` no person's
    /// order of that kind and no rule's claim of it exists (at most one such order per
    /// watch and kind can ever be stored, even when two agents ask at once).
    fn order(&self, id: &str, order: &NewOrder) -> Result<Ordered, StoreError>;
    /// The pending orders of the watches whose lease `holder` holds (SQLite: all),
    /// oldest first.
    fn orders_pending(&self, holder: &str) -> Result<Vec<OrderRow>, StoreError>;
    /// Records what became of pending order `order` of watch `id`: fenced by the
    /// watch's lease while the watch runs (`fence` None only for a watch that no
    /// longer runs: then no lease is held). An order already settled stays as it was.
    fn order_done(
        &self,
        id: &str,
        fence: Option<&Fence>,
        order: i64,
        state: OrderState,
        result: &str,
        at_ms: i64,
    ) -> Result<(), StoreError>;
    /// Every order of watch `id`, oldest first.
    fn orders(&self, id: &str) -> Result<Vec<OrderRow>, StoreError>;
}
