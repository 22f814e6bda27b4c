//! The leases this agent holds, and how far it may trust each.
//!
//! A lease is valid on the database's clock until the expiry its last renewal set.
//! The agent cannot read that clock, so it trusts a lease only for the *trust window*
//! (TTL minus a safety margin), timed on its own monotonic clock from the moment the
//! renewal was *sent*: the database set the expiry after that moment, so the lease is
//! certainly still valid inside the window, whatever the two wall clocks say. Past the
//! window (a renewal that failed or did not answer, a process that was paused) the
//! agent stops acting on the watch at once: its claims are refused here, before the
//! store is asked, and the store's fencing check refuses them again if the window was
//! misjudged (a pause between this check and the claim's transaction).

use crate::io::store::{Fence, Lease};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The default lease TTL.
pub const DEFAULT_TTL: Duration = Duration::from_secs(15);

struct Held {
    trust: Arc<Trust>,
    /// `trust`'s window, kept here too: the watchdog goes through every lease ten
    /// times a second, and reading each one's window behind its pointer made that
    /// scan a twenty-fifth of the agent's CPU at 100,000 watches. Both change
    /// together, under the book's lock (`Held::extend`).
    until: Instant,
    /// When this agent recorded the lease (its answer arrived): a renewal sent before
    /// this moment may have run before the lease existed, so it says nothing about it.
    recorded: Instant,
}

impl Held {
    fn new(token: i64, zero: Instant, until: Instant) -> Held {
        Held {
            trust: Arc::new(Trust::new(token, zero, until)),
            until,
            recorded: Instant::now(),
        }
    }

    fn extend(&mut self, until: Instant) {
        self.until = self.until.max(until);
        self.trust.extend(until);
    }
}

/// One held lease's token and how long it is trusted, shared with the watch's sink
/// (`LeaseBook::trust`): a poll reads it without the book's lock and without a
/// look-up among 100,000 ids (issue 21: that look-up, under a lock a renewal holds
/// while it goes through every lease, was a twentieth of the agent's CPU). It is the
/// book's entry itself: the book extends it, and marks it gone the moment the entry
/// leaves the book or is replaced (a new token), after which the sink asks again.
pub struct Trust {
    token: i64,
    /// The book's time zero: `until` counts nanoseconds from it.
    zero: Instant,
    until: AtomicU64,
    current: AtomicBool,
}

impl Trust {
    fn new(token: i64, zero: Instant, until: Instant) -> Trust {
        let t = Trust {
            token,
            zero,
            until: AtomicU64::new(0),
            current: AtomicBool::new(true),
        };
        t.extend(until);
        t
    }

    fn until(&self) -> Instant {
        self.zero + Duration::from_nanos(self.until.load(Ordering::Acquire))
    }

    /// Trusted until `until` at least (never shortened).
    fn extend(&self, until: Instant) {
        let ns = until.saturating_duration_since(self.zero).as_nanos();
        self.until
            .fetch_max(u64::try_from(ns).unwrap_or(u64::MAX), Ordering::AcqRel);
    }

    fn drop_from_book(&self) {
        self.current.store(false, Ordering::Release);
    }

    /// Whether this is still the book's entry for its watch (if not, ask the book).
    pub fn is_current(&self) -> bool {
        self.current.load(Ordering::Acquire)
    }

    /// The token if the lease is still inside its trust window (as `LeaseBook::trusted`
    /// while `is_current`).
    pub fn token_now(&self) -> Option<i64> {
        (self.is_current() && Instant::now() < self.until()).then_some(self.token)
    }
}

/// This agent's leases.
pub struct LeaseBook {
    /// This agent's id in the store (`host:pid:start`).
    pub holder: String,
    pub ttl: Duration,
    /// False with an embedded store: one agent, no one to fence it, trusted always.
    pub shared: bool,
    /// Time zero of every `Trust`'s clock.
    zero: Instant,
    held: Mutex<HashMap<String, Held, foldhash::fast::RandomState>>,
    /// Watches whose lease was lost while their loop ran: they stop without writing
    /// anything to the store or notifying anyone (the new owner does).
    lost: Mutex<HashSet<String, foldhash::fast::RandomState>>,
    /// Leases this agent gave back but whose release failed (the store was down):
    /// released again from the lease loop, or the lease would stay this agent's until
    /// it expired, and nobody could adopt the watch meanwhile.
    unreleased: Mutex<HashSet<String, foldhash::fast::RandomState>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl LeaseBook {
    pub fn new(holder: String, ttl: Duration, shared: bool) -> LeaseBook {
        LeaseBook {
            holder,
            ttl,
            shared,
            zero: Instant::now(),
            held: Mutex::default(),
            lost: Mutex::default(),
            unreleased: Mutex::default(),
        }
    }

    /// The safety margin: a fifth of the TTL, at least 200 ms.
    pub fn margin(&self) -> Duration {
        (self.ttl / 5)
            .max(Duration::from_millis(200))
            .min(self.ttl / 2)
    }

    /// How long after a renewal was sent its leases are trusted.
    pub fn trust_window(&self) -> Duration {
        self.ttl - self.margin()
    }

    fn trusted_from(&self, sent: Instant) -> Instant {
        if self.shared {
            sent + self.trust_window()
        } else {
            sent + Duration::from_secs(10 * 365 * 86_400)
        }
    }

    /// How often leases are renewed: three rounds per TTL, so that one failed round
    /// does not lose them.
    pub fn renew_every(&self) -> Duration {
        (self.ttl / 3).max(Duration::from_millis(100))
    }

    /// Records a lease taken or adopted by a statement sent at `sent`.
    pub fn hold(&self, lease: &Lease, sent: Instant) {
        lock(&self.lost).remove(&lease.watch);
        lock(&self.unreleased).remove(&lease.watch);
        let entry = Held::new(lease.token, self.zero, self.trusted_from(sent));
        let mut held = lock(&self.held);
        let old = held.insert(lease.watch.clone(), entry);
        // (Under the book's lock, as every other change of an entry.)
        if let Some(old) = old {
            old.trust.drop_from_book();
        }
    }

    /// The fence of this agent's writes to watch `id` (its holder id and token), if
    /// its lease is held and still inside its trust window.
    pub fn fence(&self, id: &str) -> Option<Fence> {
        self.trusted(id).map(|token| Fence {
            holder: self.holder.clone(),
            token,
        })
    }

    /// The token of watch `id`'s lease if it is held and still inside its trust window.
    pub fn trusted(&self, id: &str) -> Option<i64> {
        let held = lock(&self.held);
        held.get(id)?.trust.token_now()
    }

    /// Watch `id`'s entry, to read again without the book (`Trust::token_now`) for
    /// as long as it `is_current`.
    pub fn trust(&self, id: &str) -> Option<Arc<Trust>> {
        lock(&self.held).get(id).map(|h| h.trust.clone())
    }

    /// A renewal sent at `sent` answered `renewed`: extends their trust and returns the
    /// held watches it did not renew (lost: expired or taken over), now forgotten.
    ///
    /// Only leases recorded *before* the renewal was sent are judged: one taken while
    /// it was in flight (a creation racing the round) may have been written after the
    /// renewal's statement ran, so its absence from the answer proves nothing; it keeps
    /// the trust its own statement gave it, and the next round judges it.
    pub fn renewed(&self, sent: Instant, renewed: &[Lease]) -> Vec<String> {
        let by_id: HashMap<&str, i64> = renewed
            .iter()
            .map(|l| (l.watch.as_str(), l.token))
            .collect();
        let until = self.trusted_from(sent);
        let mut held = lock(&self.held);
        let mut lost = Vec::new();
        held.retain(
            |id, h| match renewal_says(h, sent, by_id.get(id.as_str()).copied()) {
                Renewal::Renewed => {
                    h.extend(until);
                    true
                }
                Renewal::Newer => true,
                Renewal::Lost => {
                    h.trust.drop_from_book();
                    lost.push(id.clone());
                    false
                }
            },
        );
        lost
    }

    /// Held watches whose trust window has passed, now forgotten.
    pub fn expired(&self, now: Instant) -> Vec<String> {
        let mut held = lock(&self.held);
        let mut out = Vec::new();
        held.retain(|id, h| {
            if now >= h.until {
                h.trust.drop_from_book();
                out.push(id.clone());
                false
            } else {
                true
            }
        });
        out
    }

    /// The watches whose leases this agent holds: the only ones a renewal renews (a
    /// lease given up and not released yet must expire, not be renewed).
    pub fn ids(&self) -> Vec<String> {
        lock(&self.held).keys().cloned().collect()
    }

    /// The release of watch `id`'s lease failed: it is tried again by
    /// `retry_releases` (unless this agent takes the lease again meanwhile).
    pub fn release_failed(&self, id: &str) {
        if !self.is_held(id) {
            lock(&self.unreleased).insert(id.to_string());
        }
    }

    /// How many leases wait to be released again.
    pub fn unreleased(&self) -> usize {
        lock(&self.unreleased).len()
    }

    /// Releases again, with `release`, every lease whose release failed and that this
    /// agent has not taken again; those that fail again stay for the next round.
    pub fn retry_releases<E>(&self, mut release: impl FnMut(&str) -> Result<(), E>) {
        let ids: Vec<String> = lock(&self.unreleased).drain().collect();
        for id in ids {
            if self.is_held(&id) {
                continue;
            }
            if release(&id).is_err() {
                self.release_failed(&id);
            }
        }
    }

    pub fn forget(&self, id: &str) {
        if let Some(h) = lock(&self.held).remove(id) {
            h.trust.drop_from_book();
        }
    }

    pub fn count(&self) -> usize {
        lock(&self.held).len()
    }

    pub fn is_held(&self, id: &str) -> bool {
        lock(&self.held).contains_key(id)
    }

    /// Marks watch `id` lost: its loop stops and writes nothing more.
    pub fn mark_lost(&self, id: &str) {
        if let Some(h) = lock(&self.held).remove(id) {
            h.trust.drop_from_book();
        }
        lock(&self.lost).insert(id.to_string());
    }

    pub fn is_lost(&self, id: &str) -> bool {
        lock(&self.lost).contains(id)
    }

    pub fn clear_lost(&self, id: &str) {
        lock(&self.lost).remove(id);
    }
}

/// What a renewal's answer says about one held lease.
#[derive(Debug, PartialEq, Eq)]
enum Renewal {
    /// Renewed with the token held: trusted for longer.
    Renewed,
    /// Recorded after the renewal was sent: the answer says nothing about it.
    Newer,
    /// Held before the renewal was sent and missing from its answer (or renewed with
    /// another token): lost.
    Lost,
}

/// The pure comparison: a renewal sent at `sent` that answered `answered` (the token
/// it renewed this watch with, if it did) about lease `h`.
fn renewal_says(h: &Held, sent: Instant, answered: Option<i64>) -> Renewal {
    match answered {
        Some(token) if token == h.trust.token => Renewal::Renewed,
        _ if h.recorded >= sent => Renewal::Newer,
        _ => Renewal::Lost,
    }
}

/// Test builds only: `ROLLWATCH_RENEW_DELAY_MS=N` holds every renewal's answer for N ms
/// before it is compared with the leases held, so that creations land in the window
/// between a renewal's statement and its comparison (the race of issue 19, item 9).
#[cfg(feature = "crash-points")]
pub fn renewal_delay() -> Option<Duration> {
    env_ms("ROLLWATCH_RENEW_DELAY_MS")
}

/// A test hook's delay: the variable `name`, in ms (none if unset or not a number).
#[cfg(feature = "crash-points")]
fn env_ms(name: &str) -> Option<Duration> {
    let ms: u64 = std::env::var(name).ok()?.parse().ok()?;
    Some(Duration::from_millis(ms))
}

#[cfg(not(feature = "crash-points"))]
#[inline(always)]
pub fn renewal_delay() -> Option<Duration> {
    None
}

/// Test builds only: `ROLLWATCH_ADOPT_READ_DELAY_MS=N` holds an adoption's read of the
/// watches it took for N ms, as a read queued behind the watches' store calls waits
/// (the lease storm of 3 agents × 100,000 watches, issue 21).
#[cfg(feature = "crash-points")]
pub fn adopt_read_delay() -> Option<Duration> {
    env_ms("ROLLWATCH_ADOPT_READ_DELAY_MS")
}

#[cfg(not(feature = "crash-points"))]
#[inline(always)]
pub fn adopt_read_delay() -> Option<Duration> {
    None
}

/// Test builds only: `ROLLWATCH_FAIL_RELEASES=N` makes the first N releases at the end
/// of a watch's loop fail as a store error would (review 2, hole 4).
#[cfg(feature = "crash-points")]
pub fn release_fault() -> bool {
    use std::sync::atomic::{AtomicU64, Ordering};
    static FAILED: AtomicU64 = AtomicU64::new(0);
    let Some(n) = std::env::var("ROLLWATCH_FAIL_RELEASES")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return false;
    };
    FAILED.fetch_add(1, Ordering::SeqCst) < n
}

#[cfg(not(feature = "crash-points"))]
#[inline(always)]
pub fn release_fault() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(w: &str, token: i64) -> Lease {
        Lease {
            watch: w.into(),
            token,
        }
    }

    #[test]
    fn a_failed_release_is_retried_until_it_succeeds_unless_the_lease_is_taken_again() {
        let book = LeaseBook::new("a".into(), Duration::from_secs(3), true);
        book.release_failed("w");
        book.release_failed("again");
        book.hold(&lease("again", 2), Instant::now());
        let mut calls = Vec::new();
        book.retry_releases(|id| {
            calls.push(id.to_string());
            Err(())
        });
        assert_eq!(calls, ["w"], "a lease taken again is not released");
        assert_eq!(book.unreleased(), 1, "a release that failed again stays");
        book.retry_releases(|id| {
            calls.push(id.to_string());
            Ok::<(), ()>(())
        });
        assert_eq!(calls, ["w", "w"]);
        assert_eq!(book.unreleased(), 0, "released: not tried again");
        book.retry_releases(|_| -> Result<(), ()> { panic!("nothing left to release") });
        let mut ids = book.ids();
        ids.sort();
        assert_eq!(ids, ["again"], "only held leases are renewed");
    }

    #[test]
    fn trust_is_timed_from_when_the_renewal_was_sent() {
        let book = LeaseBook::new("a".into(), Duration::from_secs(15), true);
        assert_eq!(book.trust_window(), Duration::from_secs(12));
        assert_eq!(book.renew_every(), Duration::from_secs(5));
        let long_ago = Instant::now() - Duration::from_secs(13);
        book.hold(&lease("w", 3), long_ago);
        assert_eq!(book.trusted("w"), None, "sent 13 s ago: past the window");
        book.hold(&lease("w", 3), Instant::now());
        assert_eq!(book.trusted("w"), Some(3));
        // A renewal whose answer came late still counts from when it was sent.
        assert!(book.renewed(long_ago, &[lease("w", 3)]).is_empty());
        assert_eq!(
            book.trusted("w"),
            Some(3),
            "an older renewal never shortens trust"
        );
    }

    #[test]
    fn a_lease_missing_from_a_renewal_or_with_another_token_is_lost() {
        let book = LeaseBook::new("a".into(), Duration::from_secs(3), true);
        let now = Instant::now();
        for w in ["x", "y", "z"] {
            book.hold(&lease(w, 1), now);
        }
        let sent = Instant::now();
        let mut lost = book.renewed(sent, &[lease("x", 1), lease("y", 2)]);
        lost.sort();
        assert_eq!(lost, ["y", "z"]);
        assert_eq!(book.count(), 1);
        assert_eq!(book.trusted("y"), None);
        let later = now + Duration::from_secs(3);
        assert_eq!(book.expired(later), ["x"]);
        assert_eq!(book.count(), 0);
    }

    /// A sink's kept entry says what the book says, at every change of the book.
    #[test]
    fn a_kept_trust_answers_as_the_book_does() {
        let book = LeaseBook::new("a".into(), Duration::from_secs(3), true);
        let same = |id: &str, kept: &Arc<Trust>| {
            let read = if kept.is_current() {
                kept.token_now()
            } else {
                book.trusted(id)
            };
            assert_eq!(read, book.trusted(id), "{id}");
            read
        };
        let sent = Instant::now();
        for w in ["x", "y", "z", "w"] {
            book.hold(&lease(w, 1), sent);
        }
        let kept: Vec<Arc<Trust>> = ["x", "y", "z", "w"]
            .iter()
            .map(|w| book.trust(w).expect("held"))
            .collect();
        assert!(kept.iter().all(|t| t.token_now() == Some(1)));
        // Renewed: trusted longer, through the same entry.
        std::thread::sleep(Duration::from_millis(2));
        let next = Instant::now();
        let before = kept[0].until();
        let lost = book.renewed(next, &[lease("x", 1), lease("y", 1), lease("w", 1)]);
        assert_eq!(lost, ["z"]);
        assert!(kept[0].until() > before, "a renewal extends the kept entry");
        assert!(
            book.expired(before).is_empty(),
            "and the window the watchdog reads with it"
        );
        assert!(!kept[2].is_current(), "a lost lease's entry is gone");
        assert_eq!(same("z", &kept[2]), None);
        // Taken again with a new token: the kept entry is no longer the book's.
        book.hold(&lease("y", 2), Instant::now());
        assert!(!kept[1].is_current());
        assert_eq!(same("y", &kept[1]), Some(2));
        // Forgotten, marked lost, expired.
        book.forget("x");
        assert!(!kept[0].is_current());
        assert_eq!(same("x", &kept[0]), None);
        book.mark_lost("w");
        assert!(!kept[3].is_current());
        assert_eq!(same("w", &kept[3]), None);
        let y = book.trust("y").expect("held");
        assert_eq!(book.expired(Instant::now() + Duration::from_secs(3)), ["y"]);
        assert!(!y.is_current());
        assert_eq!(same("y", &y), None);
    }

    #[test]
    fn a_renewal_judges_only_leases_held_before_it_was_sent() {
        let now = Instant::now();
        let h = |token, recorded| Held {
            recorded,
            ..Held::new(token, now, now + Duration::from_secs(10))
        };
        let before = now - Duration::from_millis(5);
        let after = now + Duration::from_millis(5);
        assert_eq!(renewal_says(&h(1, before), now, Some(1)), Renewal::Renewed);
        assert_eq!(renewal_says(&h(1, before), now, None), Renewal::Lost);
        assert_eq!(renewal_says(&h(1, before), now, Some(2)), Renewal::Lost);
        assert_eq!(
            renewal_says(&h(1, after), now, None),
            Renewal::Newer,
            "taken while the renewal was in flight: not lost"
        );
        assert_eq!(renewal_says(&h(3, after), now, Some(2)), Renewal::Newer);
        assert_eq!(renewal_says(&h(3, after), now, Some(3)), Renewal::Renewed);
    }

    #[test]
    fn a_lease_taken_while_a_renewal_was_in_flight_is_kept() {
        let book = LeaseBook::new("a".into(), Duration::from_secs(3), true);
        book.hold(&lease("old", 1), Instant::now());
        // The renewal is sent; then a creation takes a lease, which the renewal's
        // statement (run before the creation's) does not return.
        let sent = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        book.hold(&lease("new", 1), Instant::now());
        assert!(book.renewed(sent, &[lease("old", 1)]).is_empty());
        assert_eq!(book.trusted("new"), Some(1));
        // The next round, sent after it was taken, judges it.
        let next = Instant::now();
        assert_eq!(book.renewed(next, &[lease("old", 1)]), ["new"]);
    }
}
