//! Watch scenarios written once, generic over the metrics backend
//! (`harness::backend::Backend`), and instantiated on the shared Prometheus and on the
//! shared VictoriaMetrics: what a watch decides must not depend on which of the two
//! answers its queries. Each instance owns one series, `rw_value{test="<name>"}`.

use crate::harness::backend::Backend;
use crate::harness::rule_file::{logged_actions as actions, logging_actions as rules, series};
use crate::harness::victoria::victoria;
use crate::harness::{now_ms, prometheus, start, Scratch};
use std::time::Duration;

/// A breach held past `for: 6s` rolls back once, never before `for` from the breach
/// itself, and within a scrape and a round trip of it.
fn sustained_breach(b: &impl Backend, name: &str) {
    let s = Scratch::new();
    b.set(&series(name), 0.1);
    let file = s.rules(&rules(
        name,
        "    above: 0.5\n    for: 6s\n    interval: 1s",
        "  duration: 60s\n  interval: 1s",
    ));
    let mut w = start(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        b.url(),
    ]);
    w.await_event("poll", Duration::from_secs(10));
    assert!(w.events("clock_skew").is_empty(), "{}", w.dump());
    let breach_start = now_ms();
    b.exporter().set(&series(name), 0.9);
    // Scraped within 1s, searchable within about 1s more.
    let pending = w.await_event("pending", Duration::from_secs(10));
    let fired = w.await_event("fired", Duration::from_secs(15));
    assert_eq!(w.wait(Duration::from_secs(30)), 1, "{}", w.dump());

    let actions = actions(&s);
    assert_eq!(actions.len(), 1, "exactly one rollback: {actions:?}");
    assert_eq!(
        (actions[0].0.as_str(), actions[0].1.as_str()),
        ("rollback", "r")
    );
    let pending_ms = pending["unix_ms"].as_u64().unwrap();
    let fired_ms = fired["unix_ms"].as_u64().unwrap();
    assert!(
        pending_ms - breach_start <= 5000,
        "pending {}ms after the breach began",
        pending_ms - breach_start
    );
    // Never before `for` from the breach itself (`for` counts from where the breach
    // began in the data, which may be before the poll that first saw it: issue 21).
    assert!(
        fired_ms >= breach_start + 6000,
        "fired {}ms after the breach began",
        fired_ms - breach_start
    );
    assert!(
        actions[0].2 >= breach_start + 6000,
        "acted {}ms after the breach began",
        actions[0].2 - breach_start
    );
    // And as soon as the data allows: `for` after the breach, plus the scrape that
    // makes it visible (1s), the time to be searchable (up to 1s on VictoriaMetrics)
    // and `watch.lag` with a round trip, not at the next poll after `for`.
    assert!(
        fired_ms <= breach_start + 6000 + 2000 + 250,
        "fired {}ms after the breach began",
        fired_ms - breach_start
    );
    assert_eq!(w.events("fired").len(), 1);
}

/// A breach shorter than `for` resolves: the watch ends healthy and runs nothing.
fn transient_spike(b: &impl Backend, name: &str) {
    let s = Scratch::new();
    b.set(&series(name), 0.1);
    let file = s.rules(&rules(
        name,
        "    above: 0.5\n    for: 10s\n    interval: 1s",
        "  duration: 14s\n  interval: 1s",
    ));
    let mut w = start(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        b.url(),
    ]);
    w.await_event("poll", Duration::from_secs(10));
    b.exporter().set(&series(name), 0.9);
    w.await_event("pending", Duration::from_secs(10));
    b.exporter().set(&series(name), 0.1);
    w.await_event("resolved", Duration::from_secs(10));
    assert_eq!(w.wait(Duration::from_secs(30)), 0, "{}", w.dump());
    assert!(s.lines("actions.log").is_empty());
    assert!(w.events("fired").is_empty());
}

mod on_prometheus {
    use super::*;

    #[test]
    fn sustained_breach_rolls_back_exactly_once_never_before_for() {
        sustained_breach(prometheus(), "sustained");
    }

    #[test]
    fn transient_spike_exits_healthy_and_runs_nothing() {
        transient_spike(prometheus(), "spike");
    }
}

mod on_victoria {
    use super::*;

    #[test]
    fn sustained_breach_rolls_back_exactly_once_never_before_for() {
        sustained_breach(victoria(), "vm-sustained");
    }

    #[test]
    fn transient_spike_exits_healthy_and_runs_nothing() {
        transient_spike(victoria(), "vm-spike");
    }
}
