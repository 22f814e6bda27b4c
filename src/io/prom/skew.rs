//! Prometheus's clock against this machine's: how a watch measures and judges the
//! skew (pure; `PromClient::clock_skew` takes the measurement).

use std::time::Duration;

/// Prometheus's clock against this machine's, from one instant query of `time()`.
///
/// Every poll asks Prometheus for the value at *this machine's* now. A runner whose
/// clock is ahead asks about a moment Prometheus has no samples for yet (past the
/// lookback the answer is empty, which `no_data: ok` calls healthy); one behind judges
/// the past. Measured once when a watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockSkew {
    /// Prometheus's clock minus this machine's, in milliseconds (positive: Prometheus
    /// is ahead; negative: this machine is ahead).
    pub skew_ms: i64,
    /// Half the round trip: the true skew lies within `skew_ms ± uncertainty_ms`.
    pub uncertainty_ms: i64,
}

/// Skew smaller than this (beyond the measurement's uncertainty) is not worth a word:
/// polls are seconds apart and scrapes land anywhere between them.
pub const SKEW_WARN: Duration = Duration::from_secs(2);

/// What a watch makes of a measured skew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkewVerdict {
    /// Within `SKEW_WARN`.
    Fine,
    /// Noticeable: say so, and watch anyway.
    Warn,
    /// Larger than the watch's `max_blind`: every poll would judge the wrong moment,
    /// so the watch must not start.
    Refuse,
}

impl ClockSkew {
    /// The skew from a query sent at `sent_ms` and answered at `received_ms` (this
    /// machine's clock, Unix ms), whose answer says Prometheus's clock read `server_ms`:
    /// taken against the midpoint of the round trip, which bounds the error.
    pub fn measure(sent_ms: i64, received_ms: i64, server_ms: i64) -> ClockSkew {
        let (sent, received) = (sent_ms.min(received_ms), sent_ms.max(received_ms));
        let round_trip = received - sent;
        ClockSkew {
            skew_ms: server_ms - (sent + round_trip / 2),
            uncertainty_ms: (round_trip + 1) / 2,
        }
    }

    /// How far apart the clocks are at least (the skew less its uncertainty).
    pub fn at_least(&self) -> Duration {
        let ms = self
            .skew_ms
            .unsigned_abs()
            .saturating_sub(self.uncertainty_ms.unsigned_abs());
        Duration::from_millis(ms)
    }

    /// How far this machine's clock may be ahead of Prometheus's (the skew plus its
    /// uncertainty when Prometheus's reads earlier, else the uncertainty): a poll
    /// that must see an instant's samples waits that much after it.
    pub fn ahead(&self) -> Duration {
        let ms = (-self.skew_ms).max(0) + self.uncertainty_ms.abs();
        Duration::from_millis(ms as u64)
    }

    /// Warn above `SKEW_WARN`, refuse above `max_blind`, counting only the skew that is
    /// certain (a slow round trip never turns into a refusal).
    pub fn judge(&self, max_blind: Duration) -> SkewVerdict {
        let skew = self.at_least();
        if skew > max_blind {
            SkewVerdict::Refuse
        } else if skew > SKEW_WARN {
            SkewVerdict::Warn
        } else {
            SkewVerdict::Fine
        }
    }

    /// The skew in seconds, Prometheus's clock minus this machine's.
    pub fn seconds(&self) -> f64 {
        self.skew_ms as f64 / 1000.0
    }
}

impl std::fmt::Display for ClockSkew {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = if self.skew_ms > 0 {
            "behind"
        } else {
            "ahead of"
        };
        write!(
            f,
            "this machine's clock is {:.3}s {how} Prometheus's (±{:.3}s)",
            self.skew_ms.unsigned_abs() as f64 / 1000.0,
            self.uncertainty_ms as f64 / 1000.0
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_is_taken_against_the_midpoint_of_the_round_trip() {
        // Sent at 1000, answered at 1200: the server read its clock at about 1100.
        let s = ClockSkew::measure(1_000, 1_200, 1_100);
        assert_eq!(
            s,
            ClockSkew {
                skew_ms: 0,
                uncertainty_ms: 100
            }
        );
        // Prometheus 10 minutes behind this machine.
        let s = ClockSkew::measure(1_000_000, 1_000_040, 1_000_020 - 600_000);
        assert_eq!(s.skew_ms, -600_000);
        assert_eq!(s.uncertainty_ms, 20);
        assert_eq!(s.at_least(), Duration::from_millis(599_980));
        assert_eq!(s.seconds(), -600.0);
        assert_eq!(
            s.to_string(),
            "this machine's clock is 600.000s ahead of Prometheus's (±0.020s)"
        );
        // Prometheus ahead; an odd round trip rounds the uncertainty up.
        let s = ClockSkew::measure(0, 3, 5_001);
        assert_eq!(
            s,
            ClockSkew {
                skew_ms: 5_000,
                uncertainty_ms: 2
            }
        );
        assert!(s.to_string().contains("5.000s behind Prometheus's"), "{s}");
        // A clock stepping back during the query does not make a negative round trip.
        assert_eq!(ClockSkew::measure(1_200, 1_000, 1_100).uncertainty_ms, 100);
    }

    #[test]
    fn skew_warns_above_two_seconds_and_refuses_above_max_blind() {
        let blind = Duration::from_secs(300);
        let judge = |skew_ms, uncertainty_ms| {
            ClockSkew {
                skew_ms,
                uncertainty_ms,
            }
            .judge(blind)
        };
        assert_eq!(judge(0, 0), SkewVerdict::Fine);
        assert_eq!(judge(2_000, 0), SkewVerdict::Fine);
        assert_eq!(judge(-2_001, 0), SkewVerdict::Warn);
        assert_eq!(judge(5_000, 0), SkewVerdict::Warn);
        // Only the certain part counts: 5s measured over a 6s round trip may be 2s.
        assert_eq!(judge(5_000, 3_000), SkewVerdict::Fine);
        assert_eq!(judge(300_000, 0), SkewVerdict::Warn);
        assert_eq!(judge(300_001, 0), SkewVerdict::Refuse);
        assert_eq!(judge(-600_000, 50), SkewVerdict::Refuse);
        assert_eq!(judge(-600_000, 400_000), SkewVerdict::Warn);
    }
}
