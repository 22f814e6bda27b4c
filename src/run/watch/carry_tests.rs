//! Breaches already there before the watch (`carry.rs`, `pre_existing`) through the
//! real loop under tokio's paused clock: the scripted source answers the time before
//! the start with the value of its first second, so a rule breaching at 0s breached
//! through its `for` before the watch, as `watch` reads it (`run::preflight`).

use super::loop_tests::{secs, spec, watch_ordered, Reply, QUICK, READ_BEFORE, T0_MS};
use super::Outcome;
use crate::core::events::Event;

#[tokio::test(start_paused = true)]
async fn an_ignored_breach_never_acts_and_once_over_a_new_one_does() {
    READ_BEFORE.with(|r| r.set(true));
    // Breaching before the start and until 100s; healthy at 100s; breaching from
    // 120s: `ignore` never acts on the first, the second rolls back at 150s.
    let spec = spec(
        "  duration: 10m",
        &[(
            "errors",
            "    above: 0.5\n    for: 30s\n    pre_existing: ignore",
        )],
    );
    let script: &[(u64, Reply)] = &[
        (0, Reply::Value(0.9)),
        (100, Reply::Value(0.1)),
        (120, Reply::Value(0.9)),
    ];
    let (ran, _, events) = watch_ordered(
        spec,
        secs(600),
        &[("errors", script)],
        None,
        QUICK,
        Vec::new(),
    )
    .await;
    assert_eq!(
        ran.outcome,
        Outcome::RolledBack {
            rule: "errors".into(),
            dry_run: false
        }
    );
    assert_eq!(ran.actions, vec![("rollback", secs(150))]);
    let said: Vec<(i64, String)> = events
        .iter()
        .filter_map(|(at, e)| match e {
            Event::PreExisting { mode, series, .. } => {
                Some((*at, format!("{mode} {:?}", series[0].value)))
            }
            Event::PreExistingOver { value, .. } => Some((*at, format!("over {value:?}"))),
            Event::Pending { .. } => Some((*at, "pending".into())),
            _ => None,
        })
        .collect();
    assert_eq!(
        said.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>(),
        ["ignore Some(0.9)", "over Some(0.1)", "pending"],
        "{said:?}"
    );
    assert_eq!(said[1].0, T0_MS + 100_000);
}

#[tokio::test(start_paused = true)]
async fn judge_acts_as_before_and_says_the_breach_was_there_first() {
    READ_BEFORE.with(|r| r.set(true));
    let spec = spec(
        "  duration: 10m",
        &[("errors", "    above: 0.5\n    for: 30s")],
    );
    let script: &[(u64, Reply)] = &[(0, Reply::Value(0.9))];
    let (ran, _, events) = watch_ordered(
        spec,
        secs(600),
        &[("errors", script)],
        None,
        QUICK,
        Vec::new(),
    )
    .await;
    // `for` counts from the watch's start, as before `pre_existing` existed.
    assert_eq!(ran.actions, vec![("rollback", secs(30))]);
    assert!(
        events
            .iter()
            .any(|(_, e)| matches!(e, Event::PreExisting { mode, .. } if mode == "judge")),
        "{events:?}"
    );
}
