//! The model of a watch: the `WatchSpec` a rule file becomes (rules, commands,
//! channels, vars) and the defaults of what a file may leave out. Apart from `mod.rs`
//! so that the loader (`load.rs`), which builds these, imports them from a sibling
//! and not from the parent that re-exports its `load`.

use super::query::Query;
use crate::core::eval::{Judging, NoData, Params, Threshold};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Defaults for keys a file may leave out.
pub mod defaults {
    use std::time::Duration;
    /// A watch is inconclusive after this long without any successful query.
    pub const MAX_BLIND: Duration = Duration::from_secs(300);
    /// Every query gives up after this long.
    pub const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
    /// A rollback or pause command is killed after this long.
    pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
    /// The data's resolution when `watch.step` is not given and Prometheus does not
    /// say its scrape interval (at most the rule's interval): Prometheus's usual
    /// scrape interval.
    pub const STEP: Duration = Duration::from_secs(15);
    /// How long after an instant its samples are taken to be in Prometheus (the
    /// confirming poll of a pending breach asks about `since + for` this much later).
    pub const LAG: Duration = Duration::from_millis(100);
}

/// The longest value a variable may have, in bytes. Values name services, versions
/// and namespaces; anything longer is a mistake or an attack on a query or command.
pub const MAX_VAR_LEN: usize = 1024;

/// A declared variable: its default, and what a caller (`--set`, the API's `vars`)
/// may give it. Written `name: default`, or as a mapping
/// `name: {default: prod, pattern: "^[a-z0-9-]+$", allow_option: false, description: ...}`.
///
/// Whoever writes the rule file decides what the commands run; whoever starts a watch
/// only names the release. So every value (default or given) must be one line of
/// text (no control characters) of at most `MAX_VAR_LEN` bytes, must match `pattern`
/// when there is one, and must not begin a command argument with `-` (where the
/// program would read it as an option, e.g. `--all-namespaces`) unless the file
/// declares `allow_option: true`.
#[derive(Debug, Clone)]
pub struct VarDecl {
    pub default: Option<String>,
    /// A regex the value must match, used as written (write `^...$` to anchor it).
    pub pattern: Option<regex::Regex>,
    /// The value may start a command argument with `-`.
    pub allow_option: bool,
    pub description: Option<String>,
}

/// A validated watch, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchSpec {
    pub path: PathBuf,
    /// Effective variable values (defaults overridden by `--set`).
    pub vars: BTreeMap<String, String>,
    pub duration: Duration,
    pub interval: Duration,
    pub max_blind: Duration,
    pub query_timeout: Duration,
    /// `watch.step`: the resolution at which a breach's start and its `for` are read
    /// in the data (`core::eval::onset`); None: the scrape interval, or
    /// `defaults::STEP`.
    pub step: Option<Duration>,
    /// `watch.lag`: how long after an instant its samples are queried.
    pub lag: Duration,
    /// `watch.key` with its vars: the release line this watch guards (one live
    /// watch per key in an agent's store: a new one supersedes the old).
    pub key: Option<String>,
    /// `watch.prometheus` from the file, if given.
    pub prometheus: Option<String>,
    pub rollback: Option<CommandSpec>,
    pub pause: Option<CommandSpec>,
    pub rules: Vec<Rule>,
    /// Notification channels (`notify:`).
    pub notify: Vec<Channel>,
}

impl WatchSpec {
    /// The resolution at which `rule`'s breaches are read in the data: `watch.step`,
    /// else the scrape interval when known, else `defaults::STEP`; never coarser than
    /// the rule's own interval.
    pub fn step_for(&self, rule: &Rule, scrape: Option<Duration>) -> Duration {
        self.step
            .or(scrape)
            .unwrap_or(defaults::STEP)
            .min(rule.interval)
            .max(Duration::from_millis(1))
    }
}

/// The kinds of notification a channel can subscribe to with `on:`.
pub const NOTIFY_KINDS: &[&str] = &[
    "rollback",
    "rollback_failed",
    "pause",
    "pause_failed",
    "notify",
    "inconclusive",
    "interrupted",
    "healthy",
    "emergency_change",
    "manual",
    "held",
    "superseded",
];

/// Where notifications go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// A generic JSON POST.
    Webhook,
    /// A Slack incoming webhook (`{"text": ...}`).
    Slack,
    /// Alertmanager's v2 API: alerts for pending and fired rules, the action and the
    /// outcome, resolved when the watch ends. `url` is Alertmanager's base URL.
    Alertmanager,
    /// PagerDuty's Events API v2: a trigger per fired rule and its action, resolved
    /// when the watch ends. `url` is the enqueue endpoint, `secret` the routing key.
    PagerDuty,
    /// A Microsoft Teams workflow webhook: an adaptive card per notification.
    Teams,
    /// Grafana annotations (`POST {url}/api/annotations`): the watch's start, each
    /// action and its end. `url` is Grafana's base URL, `secret` a service-account token.
    Grafana,
}

/// PagerDuty's Events API v2 endpoint: a `pagerduty` channel's default `url`.
pub const PAGERDUTY_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// A notification channel. Its URL is a secret: it is never logged or shown; messages
/// name the channel by `label` (e.g. `slack #2`).
#[derive(Clone, PartialEq)]
pub struct Channel {
    pub kind: ChannelKind,
    pub url: String,
    pub label: String,
    /// Kinds (from `NOTIFY_KINDS`) this channel receives.
    pub on: Vec<String>,
    /// Per-attempt timeout of a delivery.
    pub timeout: Duration,
    /// Attempts after the first one fails (with backoff 0.5s, 1s, 2s, ...).
    pub retries: u32,
    /// Extra labels on every alert (alertmanager channels only).
    pub labels: BTreeMap<String, String>,
    /// The PagerDuty routing key or the Grafana token: a secret, added to a request
    /// only when it is sent (never rendered into a stored notification).
    pub secret: Option<String>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("kind", &self.kind)
            .field("url", &"<secret>")
            .field("label", &self.label)
            .field("on", &self.on)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("labels", &self.labels)
            .field("secret", &self.secret.as_ref().map(|_| "<secret>"))
            .finish()
    }
}

/// A command to run: argv (no shell) with placeholders substituted.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandSpec {
    pub argv: Vec<String>,
    pub timeout: Duration,
    /// `idempotent: true`: running it twice does no harm, so `serve` may run it again
    /// when it died while the command ran (otherwise that watch ends `*_unknown`).
    pub idempotent: bool,
    /// `silence:` (rollback only): an Alertmanager silence created when it starts.
    pub silence: Option<SilenceSpec>,
}

/// An Alertmanager silence a rollback creates when it starts, so that the service's own
/// alerts stay quiet while it runs and for `for_` in all; it expires by itself.
#[derive(Clone, PartialEq)]
pub struct SilenceSpec {
    /// Alertmanager's base URL: a secret, never shown.
    pub url: String,
    /// Label name to the exact value it must equal (`${var}` substituted).
    pub matchers: BTreeMap<String, String>,
    pub for_: Duration,
}

impl std::fmt::Debug for SilenceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SilenceSpec")
            .field("url", &"<secret>")
            .field("matchers", &self.matchers)
            .field("for_", &self.for_)
            .finish()
    }
}

/// What a rule does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Rollback,
    Pause,
    Notify,
}

impl Action {
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Rollback => "rollback",
            Action::Pause => "pause",
            Action::Notify => "notify",
        }
    }
}

/// A validated rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub description: Option<String>,
    /// The query with variables substituted and escaped; with `${watch.elapsed}` or
    /// `${watch.start}`, rendered at each instant (`Query::at`).
    pub query: Query,
    pub threshold: Threshold,
    pub for_: Duration,
    pub interval: Duration,
    pub no_data: NoData,
    /// `expect_data: true`: a rule that never returns a series makes the watch
    /// inconclusive instead of passing on `no_data` (a renamed metric or label).
    pub expect_data: bool,
    pub action: Action,
    /// The judges beyond the threshold (`breaches`, `min_traffic.min`, the baseline's
    /// percentages, `compare`'s statistics), read as a `Judging`.
    pub judging: Judges,
    /// `min_traffic.query`, substituted and escaped like `query`.
    pub guard: Option<Query>,
    /// `baseline:`: where the baseline comes from (the query is the rule's own).
    pub baseline: Option<BaselineSource>,
    /// `compare.stable`, substituted and escaped like `query` (which holds
    /// `compare.canary` for a compare rule).
    pub stable: Option<Query>,
    /// `max_window`: the longest `${watch.elapsed}` is written (each query carries it
    /// too); the watch's duration when not given.
    pub max_window: Duration,
}

/// A rule's judges beyond its threshold, boxed only when it has any (`Judges::new`):
/// a `Judging` is 408 bytes, most rules have none, and a rule file's snapshot is
/// held for every watch of its own vars (issue 21). Reads as a `Judging` (`Deref`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Judges(Option<Box<Judging>>);

/// The judges of a rule that has none.
static NO_JUDGES: Judging = Judging {
    breaches: None,
    min_traffic: None,
    guard_on: None,
    baseline: None,
    compare: None,
    pre_existing: crate::core::eval::PreExisting::Judge,
    slo: None,
};

impl Judges {
    pub fn new(judging: Judging) -> Judges {
        Judges((judging != NO_JUDGES).then(|| Box::new(judging)))
    }
}

impl std::ops::Deref for Judges {
    type Target = Judging;
    fn deref(&self) -> &Judging {
        self.0.as_deref().unwrap_or(&NO_JUDGES)
    }
}

/// Where a rule's baseline comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaselineSource {
    /// `offset: D`: the same query evaluated at `t - D`, at every poll.
    Offset(Duration),
    /// `before: D`: the per-series mean of the query over the D before the watch
    /// started, taken once with a range query.
    Before(Duration),
}

impl Rule {
    pub fn params(&self) -> Params {
        Params {
            threshold: self.threshold,
            for_: self.for_,
            no_data: self.no_data,
            judge: *self.judging,
        }
    }

    /// [`Rule::params`] for a watch of `duration`: a `compare` rule's confidence is
    /// spent over the polls it makes in that time (`gate` and a verdict, one test,
    /// use `params`).
    pub fn params_over(&self, duration: Duration) -> Params {
        let mut p = self.params();
        p.judge.compare = p.judge.compare.map(|c| c.over(duration, self.interval));
        p
    }

    /// The condition a value breaches, in words: the threshold (`> 0.05`), the
    /// baseline's (`< baseline -30%`, with an absolute floor `and < 45`), or a
    /// comparison (`canary > stable (p < 0.02 per watch, effect >= 20%)`).
    pub fn condition(&self) -> String {
        use crate::core::eval::Direction;
        if let Some(s) = self.judging.slo {
            return s.condition();
        }
        if let Some(c) = self.judging.compare {
            let dir = match c.direction {
                Direction::Increase => ">",
                Direction::Decrease => "<",
                Direction::Either => "!=",
            };
            let measure = match c.effect {
                crate::core::eval::EffectMeasure::MeanRatio => "",
                crate::core::eval::EffectMeasure::HodgesLehmann => " by Hodges–Lehmann",
                crate::core::eval::EffectMeasure::Exceedance => " by exceedance",
            };
            return format!(
                "canary {dir} stable (p < {} per watch, effect >= {}%{measure})",
                crate::core::events::float::text(((1.0 - c.confidence) * 1e9).round() / 1e9),
                crate::core::events::float::text((c.min_effect * 1e9).round() / 1e7)
            );
        }
        let Some(b) = self.judging.baseline else {
            return self.threshold.to_string();
        };
        let side = |pct: Option<f64>, op: &str, sign: &str, abs: Option<f64>| match (pct, abs) {
            (Some(p), Some(a)) => Some(format!("{op} baseline {sign}{p}% and {op} {a}")),
            (Some(p), None) => Some(format!("{op} baseline {sign}{p}%")),
            (None, Some(a)) => Some(format!("{op} {a}")),
            (None, None) => None,
        };
        let parts: Vec<String> = [
            side(b.below_pct, "<", "-", self.threshold.below),
            side(b.above_pct, ">", "+", self.threshold.above),
        ]
        .into_iter()
        .flatten()
        .collect();
        parts.join(" or ")
    }

    /// Every query a poll of this rule runs at the same instant, in the order of
    /// `PollDone::extra` after the rule's own: the stable side, the guard, the offset
    /// baseline (the rule's own query, at `t - offset`) with its offset. Each is
    /// rendered with the poll's clock (an offset baseline with the poll's
    /// `${watch.elapsed}`: the same window length, `offset` earlier).
    pub fn extra_queries(&self) -> Vec<(ExtraKind, Query, Duration)> {
        let mut out = Vec::new();
        if let Some(s) = &self.stable {
            out.push((ExtraKind::Stable, s.clone(), Duration::ZERO));
        }
        if let Some(g) = &self.guard {
            out.push((ExtraKind::Guard, g.clone(), Duration::ZERO));
        }
        if let Some(BaselineSource::Offset(d)) = self.baseline {
            out.push((ExtraKind::Baseline, self.query.clone(), d));
        }
        out
    }
}

/// What an extra query of a poll is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtraKind {
    Stable,
    Guard,
    Baseline,
}
