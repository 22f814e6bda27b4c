//! The agent's metrics source: one Prometheus client shared by every watch, with
//! identical queries sent once, a global bound on concurrent requests, and the
//! agent's query metrics.
//!
//! Thousands of watches of the same services ask Prometheus the same questions. The
//! agent aligns every rule's polls to its interval plus a phase derived from the query
//! text (`phase`), so the same query in many watches is due at the same instant, and
//! this layer shares one in-flight request per (query, scheduled time) between them:
//! 5,000 watches of 500 services cost 500 requests a tick, not 5,000. Different queries
//! get different phases, so they spread over the interval instead of arriving at
//! Prometheus in the same millisecond. The semaphore bounds what is left.

use super::metrics::Metrics;
use crate::io::prom::{
    ClockSkew, HistorySource, MetricsSource, QueryError, QueryResult, RangeResult,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{OnceCell, Semaphore};
use tokio::time::Instant;

type Answer = Result<QueryResult, QueryError>;

/// How long an answer is kept for late pollers of the same tick.
const KEEP: Duration = Duration::from_secs(5);

/// A range answer is kept for later askers only if its newest step was at least this
/// old when it was asked (unix ms): samples of the last seconds may not be searchable
/// yet, and an answer read before they were must not stand in for one read after.
/// A `${watch.elapsed}` rule asks each step as its own one-point query with the same
/// key at its onset and at every confirmation: reusing the onset's answer for the
/// newest step, read before its sample was in, restarted `for` at every confirmation.
const SETTLED_MS: i64 = KEEP.as_millis() as i64;

/// A poll's phase within its interval: a stable hash of the query text (FNV-1a, the
/// same in every process and after every restart), so identical queries coincide and
/// different ones spread.
pub fn phase(query: &str, interval: Duration) -> Duration {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in query.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let ms = interval.as_millis().max(1) as u64;
    Duration::from_millis(h % ms)
}

type TickKey = (String, i64);
/// A range query: (query, start, end, step), all unix ms.
type RangeKey = (String, i64, i64, i64);
type RangeAnswer = Result<RangeResult, QueryError>;

struct Entry<A> {
    answer: Arc<OnceCell<A>>,
    created: Instant,
    /// Whether its answer, once in, may serve later askers (in flight it is always
    /// shared: those askers would have read the same).
    keep: bool,
}

/// Answers by key, kept `KEEP` for late askers; swept at most once a second.
struct Cache<K, A> {
    map: HashMap<K, Entry<A>, foldhash::fast::RandomState>,
    last_sweep: Instant,
}

impl<K: std::hash::Hash + Eq, A> Cache<K, A> {
    fn new() -> Self {
        Cache {
            map: HashMap::default(),
            last_sweep: Instant::now(),
        }
    }

    fn cell(&mut self, key: K) -> Arc<OnceCell<A>> {
        self.cell_kept(key, true)
    }

    /// The cell for `key`: the one in flight or kept, else a new one, kept for later
    /// askers once answered only if `keep`.
    fn cell_kept(&mut self, key: K, keep: bool) -> Arc<OnceCell<A>> {
        let now = Instant::now();
        if now.duration_since(self.last_sweep) > Duration::from_secs(1) {
            self.map.retain(|_, e| now.duration_since(e.created) < KEEP);
            self.last_sweep = now;
        }
        let fresh = || Entry {
            answer: Arc::new(OnceCell::new()),
            created: now,
            keep,
        };
        let entry = self.map.entry(key).or_insert_with(fresh);
        if !entry.keep && entry.answer.initialized() {
            *entry = fresh();
        }
        entry.answer.clone()
    }
}

/// Shares, limits and measures queries to one Prometheus.
pub struct SharedSource<S> {
    inner: S,
    limit: Arc<Semaphore>,
    share: bool,
    metrics: Metrics,
    /// In-flight and recent answers by (query, tick in unix ms).
    inflight: Mutex<Cache<TickKey, Answer>>,
    /// The same for range queries (the catch-up after a restart, where watches of the
    /// same query resume from the same last tick).
    ranges: Mutex<Cache<RangeKey, RangeAnswer>>,
    /// Prometheus's scrape interval, asked once (`PromClient::scrape_interval`).
    scrape: OnceCell<Option<Duration>>,
    /// The last measurement of Prometheus's clock and when it was taken: reused for
    /// `SKEW_REUSE` (see `clock_skew`).
    skew: tokio::sync::Mutex<Option<(Instant, Result<ClockSkew, QueryError>)>>,
    /// How far the watch clock was last found ahead of this Prometheus's
    /// (`ClockSkew::ahead`, ms): a watch started here waits that much more before its
    /// confirming polls.
    ahead_ms: std::sync::atomic::AtomicU64,
}

impl<S> SharedSource<S> {
    /// `limit` is shared by every source of the agent; `share: false` sends every
    /// poll on its own (for comparison in the benchmark).
    pub fn new(inner: S, limit: Arc<Semaphore>, share: bool, metrics: Metrics) -> Self {
        SharedSource {
            inner,
            limit,
            share,
            metrics,
            inflight: Mutex::new(Cache::new()),
            ranges: Mutex::new(Cache::new()),
            scrape: OnceCell::new(),
            skew: tokio::sync::Mutex::new(None),
            ahead_ms: Default::default(),
        }
    }

    /// Records how far the watch clock was found ahead of this Prometheus's.
    pub fn note_ahead(&self, ahead: Duration) {
        self.ahead_ms.store(
            ahead.as_millis() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// How far the watch clock was last found ahead (zero before any measurement).
    pub fn ahead(&self) -> Duration {
        Duration::from_millis(self.ahead_ms.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// The source this one wraps.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The cell shared by every poll of `query` at the tick `at_ms`.
    fn cell(&self, query: &str, at_ms: i64) -> Arc<OnceCell<Answer>> {
        self.inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .cell((query.to_string(), at_ms))
    }
}

/// How long a measurement of Prometheus's clock serves the clock checks that follow.
const SKEW_REUSE: Duration = Duration::from_secs(1);

impl SharedSource<crate::io::prom::PromClient> {
    /// Prometheus's clock against this machine's (`PromClient::clock_skew`), measured
    /// at most once a `SKEW_REUSE`: the clock checks of many watches at once (a
    /// restart resumes 100,000, each checked before it is judged) share one request,
    /// where each asked its own, outside the query limit, and a restart opened
    /// thousands of connections to Prometheus at once (BENCHMARKS.md, issue 21).
    pub async fn clock_skew(&self) -> Result<ClockSkew, QueryError> {
        let mut last = self.skew.lock().await;
        if let Some((at, measured)) = &*last {
            if at.elapsed() < SKEW_REUSE {
                return measured.clone();
            }
        }
        let measured = self.inner.clock_skew().await;
        *last = Some((Instant::now(), measured.clone()));
        measured
    }

    /// Prometheus's global scrape interval (the data's resolution when a rule file
    /// does not set `watch.step`), asked once per Prometheus, then kept.
    pub async fn scrape_interval(&self) -> Option<Duration> {
        *self
            .scrape
            .get_or_init(|| self.inner.scrape_interval())
            .await
    }
}

impl<S: MetricsSource> SharedSource<S> {
    async fn send(&self, query: &str, at: SystemTime) -> Answer {
        let _permit = self.limit.acquire().await;
        let started = Instant::now();
        self.metrics
            .queries_sent
            .with_label_values(&["instant"])
            .inc();
        let answer = self.inner.query(query, at).await;
        self.metrics
            .query_latency
            .with_label_values(&["instant"])
            .observe(started.elapsed().as_secs_f64());
        if answer.is_err() {
            self.metrics
                .query_errors
                .with_label_values(&["instant"])
                .inc();
        }
        answer
    }
}

impl<S: MetricsSource> MetricsSource for SharedSource<S> {
    async fn query(&self, query: &str, at: SystemTime) -> Answer {
        if let Ok(lag) = SystemTime::now().duration_since(at) {
            self.metrics.schedule_lag.observe(lag.as_secs_f64());
        }
        // (The request boxed: it is 2 KB of a future every poll allocates, and most
        // polls only wait for an answer another watch's poll asks for. Issue 21.)
        if !self.share {
            return Box::pin(self.send(query, at)).await;
        }
        let at_ms = at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as i64;
        let cell = self.cell(query, at_ms);
        let mut sent = false;
        let answer = cell
            .get_or_init(|| {
                sent = true;
                Box::pin(self.send(query, at))
            })
            .await
            .clone();
        if !sent {
            self.metrics.queries_shared.inc();
        }
        answer
    }
}

impl<S: HistorySource> SharedSource<S> {
    async fn send_range(
        &self,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> RangeAnswer {
        let _permit = self.limit.acquire().await;
        let started = Instant::now();
        self.metrics
            .queries_sent
            .with_label_values(&["range"])
            .inc();
        let answer = self
            .inner
            .query_range(query, start_ms, end_ms, step_ms)
            .await;
        self.metrics
            .query_latency
            .with_label_values(&["range"])
            .observe(started.elapsed().as_secs_f64());
        if answer.is_err() {
            self.metrics
                .query_errors
                .with_label_values(&["range"])
                .inc();
        }
        answer
    }
}

impl<S: HistorySource> HistorySource for SharedSource<S> {
    async fn query_range(
        &self,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> RangeAnswer {
        if !self.share {
            return self.send_range(query, start_ms, end_ms, step_ms).await;
        }
        let settled = crate::core::events::now_ms() - end_ms >= SETTLED_MS;
        let cell = self
            .ranges
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .cell_kept((query.to_string(), start_ms, end_ms, step_ms), settled);
        let mut sent = false;
        let answer = cell
            .get_or_init(|| {
                sent = true;
                self.send_range(query, start_ms, end_ms, step_ms)
            })
            .await
            .clone();
        if !sent {
            self.metrics.queries_shared.inc();
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting(AtomicUsize);

    impl MetricsSource for Counting {
        async fn query(&self, _q: &str, _at: SystemTime) -> Answer {
            self.0.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(QueryResult::default())
        }
    }

    impl HistorySource for Counting {
        async fn query_range(&self, _q: &str, _s: i64, _e: i64, _st: i64) -> RangeAnswer {
            self.0.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(RangeResult::default())
        }
    }

    #[tokio::test]
    async fn identical_catch_up_range_queries_are_sent_once() {
        let s = source(true);
        let mut tasks = Vec::new();
        for i in 0..20 {
            let s = s.clone();
            // Two distinct windows, ten watches each.
            let start = 1_000 + (i % 2) * 15_000;
            tasks.push(tokio::spawn(async move {
                s.query_range("up", start, 90_000, 15_000).await
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap().is_ok());
        }
        assert_eq!(s.inner.0.load(Ordering::SeqCst), 2);
    }

    use crate::core::events::now_ms;

    #[tokio::test]
    async fn a_range_answer_read_before_its_newest_samples_settled_is_not_reused() {
        let s = source(true);
        // One-point queries at a step of the last second (a `${watch.elapsed}` rule's
        // onset, then its confirmation): the second reads again.
        let end = now_ms() - 500;
        s.query_range("increase(x[7s])", end, end, 1_000)
            .await
            .unwrap();
        s.query_range("increase(x[7s])", end, end, 1_000)
            .await
            .unwrap();
        assert_eq!(s.inner.0.load(Ordering::SeqCst), 2, "asked again");
        // Settled history (a catch-up's older steps): asked once.
        let old = now_ms() - 60_000;
        for _ in 0..3 {
            s.query_range("increase(x[7s])", old, old, 1_000)
                .await
                .unwrap();
        }
        assert_eq!(s.inner.0.load(Ordering::SeqCst), 3, "kept");
    }

    #[tokio::test]
    async fn concurrent_askers_of_fresh_data_share_the_one_in_flight() {
        let s = source(true);
        let end = now_ms();
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                s.query_range("up", end - 15_000, end, 15_000).await
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap().is_ok());
        }
        assert_eq!(s.inner.0.load(Ordering::SeqCst), 1);
    }

    /// A poll's query future stays small whatever the client's request costs: the
    /// request is boxed and sent by one poll of those that share it (issue 21: the
    /// request was 2 KB of the future every poll allocates and copies).
    #[test]
    fn a_polls_query_future_is_small() {
        let cfg = crate::io::prom::PromConfig {
            url: "http://127.0.0.1:9".into(),
            timeout: Duration::from_secs(1),
            ..Default::default()
        };
        let client = crate::io::prom::PromClient::new(&cfg).unwrap();
        for share in [true, false] {
            let s = SharedSource::new(
                client.clone(),
                Arc::new(Semaphore::new(4)),
                share,
                Metrics::new(prometheus::Registry::new()).unwrap(),
            );
            let size = std::mem::size_of_val(&s.query("up", UNIX_EPOCH));
            assert!(size <= 512, "a poll's query future is {size} bytes");
        }
    }

    fn source(share: bool) -> Arc<SharedSource<Counting>> {
        let m = Metrics::new(prometheus::Registry::new()).unwrap();
        Arc::new(SharedSource::new(
            Counting(AtomicUsize::new(0)),
            Arc::new(Semaphore::new(4)),
            share,
            m,
        ))
    }

    async fn burst(s: &Arc<SharedSource<Counting>>, query: &str, at: SystemTime, n: usize) {
        let mut tasks = Vec::new();
        for _ in 0..n {
            let s = s.clone();
            let q = query.to_string();
            tasks.push(tokio::spawn(async move { s.query(&q, at).await }));
        }
        for t in tasks {
            assert!(t.await.unwrap().is_ok());
        }
    }

    #[tokio::test]
    async fn identical_queries_at_the_same_tick_are_sent_once() {
        let s = source(true);
        let tick = UNIX_EPOCH + Duration::from_secs(1_000);
        burst(&s, "up", tick, 50).await;
        assert_eq!(s.inner.0.load(Ordering::SeqCst), 1);
        burst(&s, "down", tick, 10).await;
        burst(&s, "up", tick + Duration::from_secs(15), 10).await;
        assert_eq!(
            s.inner.0.load(Ordering::SeqCst),
            3,
            "other query or tick: sent"
        );
        assert_eq!(s.metrics.queries_shared.get(), 49 + 9 + 9);
    }

    #[tokio::test]
    async fn without_sharing_every_poll_is_sent() {
        let s = source(false);
        burst(&s, "up", UNIX_EPOCH, 20).await;
        assert_eq!(s.inner.0.load(Ordering::SeqCst), 20);
    }

    #[test]
    fn phase_is_stable_and_within_the_interval() {
        let iv = Duration::from_secs(15);
        assert_eq!(phase("up", iv), phase("up", iv));
        assert!(phase("up", iv) < iv);
        let spread: std::collections::BTreeSet<_> = (0..100)
            .map(|i| phase(&format!("rate(x{{svc=\"s{i}\"}}[5m])"), iv).as_millis() / 1000)
            .collect();
        assert!(
            spread.len() >= 10,
            "phases spread over the interval: {spread:?}"
        );
    }
}
