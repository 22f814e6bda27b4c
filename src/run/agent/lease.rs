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

use crate::io::store::Lease;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The default lease TTL.
pub const DEFAULT_TTL: Duration = Duration::from_secs(15);

struct Held {
    token: i64,
    trusted_until: Instant,
}

/// This agent's leases.
pub struct LeaseBook {
    /// This agent's id in the store (`host:pid:start`).
    pub holder: String,
    pub ttl: Duration,
    /// False with an embedded store: one agent, no one to fence it, trusted always.
    pub shared: bool,
    held: Mutex<HashMap<String, Held>>,
    /// Watches whose lease was lost while their loop ran: they stop without writing
    /// anything to the store or notifying anyone (the new owner does).
    lost: Mutex<HashSet<String>>,
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
            held: Mutex::default(),
            lost: Mutex::default(),
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
        lock(&self.held).insert(
            lease.watch.clone(),
            Held {
                token: lease.token,
                trusted_until: self.trusted_from(sent),
            },
        );
    }

    /// The token of watch `id`'s lease if it is held and still inside its trust window.
    pub fn trusted(&self, id: &str) -> Option<i64> {
        let held = lock(&self.held);
        let h = held.get(id)?;
        (Instant::now() < h.trusted_until).then_some(h.token)
    }

    /// A renewal sent at `sent` answered `renewed`: extends their trust and returns the
    /// held watches it did not renew (lost: expired or taken over), now forgotten.
    pub fn renewed(&self, sent: Instant, renewed: &[Lease]) -> Vec<String> {
        let by_id: HashMap<&str, i64> = renewed
            .iter()
            .map(|l| (l.watch.as_str(), l.token))
            .collect();
        let until = self.trusted_from(sent);
        let mut held = lock(&self.held);
        let mut lost = Vec::new();
        held.retain(|id, h| match by_id.get(id.as_str()) {
            Some(&token) if token == h.token => {
                h.trusted_until = h.trusted_until.max(until);
                true
            }
            _ => {
                lost.push(id.clone());
                false
            }
        });
        lost
    }

    /// Held watches whose trust window has passed, now forgotten.
    pub fn expired(&self, now: Instant) -> Vec<String> {
        let mut held = lock(&self.held);
        let mut out = Vec::new();
        held.retain(|id, h| {
            if now >= h.trusted_until {
                out.push(id.clone());
                false
            } else {
                true
            }
        });
        out
    }

    pub fn forget(&self, id: &str) {
        lock(&self.held).remove(id);
    }

    pub fn count(&self) -> usize {
        lock(&self.held).len()
    }

    pub fn is_held(&self, id: &str) -> bool {
        lock(&self.held).contains_key(id)
    }

    /// Marks watch `id` lost: its loop stops and writes nothing more.
    pub fn mark_lost(&self, id: &str) {
        lock(&self.held).remove(id);
        lock(&self.lost).insert(id.to_string());
    }

    pub fn is_lost(&self, id: &str) -> bool {
        lock(&self.lost).contains(id)
    }

    pub fn clear_lost(&self, id: &str) {
        lock(&self.lost).remove(id);
    }
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
        let mut lost = book.renewed(now, &[lease("x", 1), lease("y", 2)]);
        lost.sort();
        assert_eq!(lost, ["y", "z"]);
        assert_eq!(book.count(), 1);
        assert_eq!(book.trusted("y"), None);
        let later = now + Duration::from_secs(3);
        assert_eq!(book.expired(later), ["x"]);
        assert_eq!(book.count(), 0);
    }
}
