//! People's orders in the real decision loop (`manual.rs`), under tokio's paused
//! clock with the scripted source and runner of `loop_tests`: what ran, when, and how
//! the watch ended. The rule file: `errors` rolls back after 30s above 0.5, polled
//! every 10s.

use super::loop_tests::{secs, spec, watch_ordered, Reply, QUICK};
use super::*;
use crate::core::control::{Control, ControlError, Order};
use crate::core::events::Event;
use std::time::Duration;

fn order(o: Order) -> Control {
    Control::new(o, "alice", "INC-7: checkout errors", 0).unwrap()
}

fn errors_rule(duration: &str) -> crate::core::rules::WatchSpec {
    spec(
        &format!("  duration: {duration}"),
        &[("errors", "    above: 0.5\n    for: 30s")],
    )
}

const HEALTHY: &[(u64, Reply)] = &[(0, Reply::Value(0.1))];
/// Breached from 20s on: the rule fires at 50s.
const BREACHED_AT_20: &[(u64, Reply)] = &[(0, Reply::Value(0.1)), (20, Reply::Value(0.9))];

fn names(events: &[(i64, Event)]) -> Vec<&'static str> {
    events.iter().map(|(_, e)| e.name()).collect()
}

#[tokio::test(start_paused = true)]
async fn a_manual_rollback_runs_the_command_once_at_once_and_names_the_person() {
    let (ran, replies, events) = watch_ordered(
        errors_rule("10m"),
        secs(600),
        &[("errors", HEALTHY)],
        None,
        QUICK,
        vec![(secs(25), order(Order::Rollback))],
    )
    .await;
    assert_eq!(ran.actions, vec![("rollback", secs(25))]);
    assert_eq!(
        ran.outcome,
        Outcome::RolledBack {
            rule: "manual:alice".into(),
            dry_run: false
        }
    );
    assert_eq!(ran.outcome.exit_code(), crate::core::exit::ROLLED_BACK);
    assert!(
        ran.outcome.describe().contains("alice ordered it"),
        "{}",
        ran.outcome.describe()
    );
    assert!(
        matches!(&replies[..], [Ok(t)] if t.contains("rollback command started")),
        "{replies:?}"
    );
    let manual = events.iter().find_map(|(_, e)| match e {
        Event::Manual {
            order, by, reason, ..
        } => Some((*order, by.clone(), reason.clone())),
        _ => None,
    });
    assert_eq!(
        manual,
        Some(("rollback", "alice".into(), "INC-7: checkout errors".into()))
    );
}

#[tokio::test(start_paused = true)]
async fn a_manual_and_an_automatic_rollback_never_both_run() {
    // The rule fires at 50s; the person presses at 50s too, and again at 55s.
    for at in [secs(50), secs(51)] {
        let (ran, replies, _) = watch_ordered(
            errors_rule("10m"),
            secs(600),
            &[("errors", BREACHED_AT_20)],
            None,
            Duration::from_secs(10),
            vec![
                (at, order(Order::Rollback)),
                (secs(55), order(Order::Rollback)),
            ],
        )
        .await;
        assert_eq!(ran.actions.len(), 1, "{at:?}: {:?}", ran.actions);
        assert!(
            replies.iter().filter(|r| r.is_ok()).count() <= 1,
            "{at:?}: {replies:?}"
        );
        assert!(replies.iter().any(|r| r.is_err()), "{at:?}: {replies:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_hold_keeps_a_breach_from_acting_until_it_ends_then_it_acts_if_it_still_fires() {
    // Held from 10s for 2m (until 130s); the rule fires at 50s: nothing runs, the
    // breach is reported at once, and the rollback starts when the hold ends.
    let (ran, replies, events) = watch_ordered(
        errors_rule("10m"),
        secs(600),
        &[("errors", BREACHED_AT_20)],
        None,
        QUICK,
        vec![(secs(10), order(Order::Hold(secs(120))))],
    )
    .await;
    assert!(replies[0].is_ok(), "{replies:?}");
    assert_eq!(
        ran.actions,
        vec![("rollback", secs(130))],
        "never during the hold"
    );
    assert_eq!(
        ran.outcome,
        Outcome::RolledBack {
            rule: "errors".into(),
            dry_run: false
        }
    );
    let held_back = events
        .iter()
        .find(|(_, e)| matches!(e, Event::HeldBack { .. }))
        .map(|(t, _)| *t);
    let t0 = super::loop_tests::T0_MS;
    assert_eq!(held_back, Some(t0 + 50_000), "reported when it fired");
    let n = names(&events);
    let ended = n.iter().position(|e| *e == "hold_ended").unwrap();
    let started = n.iter().position(|e| *e == "action_started").unwrap();
    assert!(ended < started, "{n:?}");
}

#[tokio::test(start_paused = true)]
async fn a_breach_that_resolves_during_a_hold_never_acts() {
    let script: &[(u64, Reply)] = &[
        (0, Reply::Value(0.1)),
        (20, Reply::Value(0.9)),
        (70, Reply::Value(0.1)),
    ];
    let (ran, _, events) = watch_ordered(
        errors_rule("5m"),
        secs(300),
        &[("errors", script)],
        None,
        QUICK,
        vec![(secs(10), order(Order::Hold(secs(120))))],
    )
    .await;
    assert!(ran.actions.is_empty(), "{:?}", ran.actions);
    assert_eq!(ran.outcome, Outcome::Healthy);
    assert!(names(&events).contains(&"held_back"));
}

#[tokio::test(start_paused = true)]
async fn a_release_ends_the_hold_and_what_still_fires_acts_then() {
    let (ran, replies, _) = watch_ordered(
        errors_rule("10m"),
        secs(600),
        &[("errors", BREACHED_AT_20)],
        None,
        QUICK,
        vec![
            (secs(10), order(Order::Hold(secs(600)))),
            (secs(90), order(Order::Release)),
        ],
    )
    .await;
    assert_eq!(replies.len(), 2);
    assert!(replies.iter().all(Result::is_ok), "{replies:?}");
    assert_eq!(ran.actions, vec![("rollback", secs(90))]);
}

#[tokio::test(start_paused = true)]
async fn a_hold_to_the_end_still_acts_at_the_end_never_ends_healthy_on_a_firing_rule() {
    let (ran, _, _) = watch_ordered(
        errors_rule("2m"),
        secs(120),
        &[("errors", BREACHED_AT_20)],
        None,
        QUICK,
        vec![(secs(5), order(Order::Hold(secs(3600))))],
    )
    .await;
    assert_eq!(ran.actions, vec![("rollback", secs(120))]);
}

#[tokio::test(start_paused = true)]
async fn an_extension_moves_the_end_and_a_breach_after_the_old_end_still_acts() {
    // 2m watch extended by 2m at 60s: a breach from 140s fires at 170s.
    let script: &[(u64, Reply)] = &[(0, Reply::Value(0.1)), (140, Reply::Value(0.9))];
    let (ran, replies, _) = watch_ordered(
        errors_rule("2m"),
        secs(120),
        &[("errors", script)],
        None,
        QUICK,
        vec![(secs(60), order(Order::Extend(secs(120))))],
    )
    .await;
    assert!(replies[0].is_ok(), "{replies:?}");
    assert_eq!(ran.actions, vec![("rollback", secs(170))]);
    // And healthy, it ends at the new end, not the old one.
    let (ran, _, _) = watch_ordered(
        errors_rule("2m"),
        secs(120),
        &[("errors", HEALTHY)],
        None,
        QUICK,
        vec![(secs(60), order(Order::Extend(secs(60))))],
    )
    .await;
    assert_eq!((ran.outcome, ran.ended), (Outcome::Healthy, secs(180)));
}

#[tokio::test(start_paused = true)]
async fn ending_as_healthy_is_the_persons_verdict_and_runs_nothing() {
    let (ran, _, _) = watch_ordered(
        errors_rule("10m"),
        secs(600),
        &[("errors", BREACHED_AT_20)],
        None,
        QUICK,
        vec![(secs(40), order(Order::End))],
    )
    .await;
    assert!(ran.actions.is_empty());
    assert_eq!(ran.ended, secs(40));
    assert_eq!(
        ran.outcome,
        Outcome::DeclaredHealthy {
            by: "alice".into(),
            reason: "INC-7: checkout errors".into()
        }
    );
    assert_eq!(ran.outcome.name(), "declared_healthy");
    assert_eq!(ran.outcome.exit_code(), crate::core::exit::HEALTHY);
}

#[tokio::test(start_paused = true)]
async fn orders_that_do_not_apply_are_refused_and_change_nothing() {
    let (ran, replies, _) = watch_ordered(
        errors_rule("2m"),
        secs(120),
        &[("errors", HEALTHY)],
        None,
        QUICK,
        vec![
            (secs(10), order(Order::Release)),
            (secs(20), order(Order::Pause)),
            (secs(30), order(Order::Pause)),
        ],
    )
    .await;
    assert!(matches!(&replies[0], Err(ControlError::Refused(m)) if m.contains("not held")));
    assert!(replies[1].is_ok(), "{replies:?}");
    assert!(matches!(&replies[2], Err(ControlError::Refused(m)) if m.contains("runs once")));
    assert_eq!(ran.actions, vec![("pause", secs(20))]);
    assert_eq!(
        ran.outcome,
        Outcome::Paused {
            rule: "manual:alice".into()
        }
    );
}

#[tokio::test(start_paused = true)]
async fn a_persons_rollback_is_answered_only_once_its_claim_committed() {
    // The store cannot record the claim: nothing runs, and the person is told so,
    // never "started".
    super::loop_tests::REFUSE_CLAIMS.with(|r| r.set(true));
    let (ran, replies, _) = watch_ordered(
        errors_rule("2m"),
        secs(120),
        &[("errors", HEALTHY)],
        None,
        QUICK,
        vec![(secs(10), order(Order::Rollback))],
    )
    .await;
    super::loop_tests::REFUSE_CLAIMS.with(|r| r.set(false));
    assert!(ran.actions.is_empty(), "{:?}", ran.actions);
    assert!(
        matches!(&replies[..], [Err(ControlError::Refused(m))] if m.contains("NOT started")),
        "{replies:?}"
    );
    assert!(
        matches!(ran.outcome, Outcome::RollbackFailed { .. }),
        "{:?}",
        ran.outcome
    );
}

#[tokio::test(start_paused = true)]
async fn a_hold_counts_from_when_it_was_given_not_from_when_it_reached_the_watch() {
    // Given at 10s for 60s, it reaches the loop only at 40s (an agent taking it over):
    // it still ends at 70s, as a restart folding the stored order would make it.
    let mut hold = order(Order::Hold(secs(60)));
    hold.at_ms = super::loop_tests::T0_MS + 10_000;
    let (ran, replies, _) = watch_ordered(
        errors_rule("10m"),
        secs(600),
        &[("errors", BREACHED_AT_20)],
        None,
        QUICK,
        vec![(secs(40), hold)],
    )
    .await;
    assert!(replies[0].is_ok(), "{replies:?}");
    // The rule fired at 50s during the hold; it acts when the hold ends, at 70s.
    assert_eq!(ran.actions, vec![("rollback", secs(70))]);
}

/// Held from 10s to 130s; the rule fires at 50s; its polls fail from 100s.
fn held_then_failing(after: &[(u64, Reply)]) -> Vec<(u64, Reply)> {
    let mut s = vec![
        (0, Reply::Value(0.1)),
        (20, Reply::Value(0.9)),
        (100, Reply::Fail),
    ];
    s.extend_from_slice(after);
    s
}

#[tokio::test(start_paused = true)]
async fn a_hold_that_ends_while_the_rules_polls_fail_acts_at_its_next_good_poll_if_it_still_fires()
{
    let script = held_then_failing(&[(150, Reply::Value(0.9))]);
    let (ran, _, events) = watch_ordered(
        errors_rule("10m"),
        secs(600),
        &[("errors", &script)],
        None,
        QUICK,
        vec![(secs(10), order(Order::Hold(secs(120))))],
    )
    .await;
    // Not at 130s on the value of 90s: at 150s, the first good poll, which still fires.
    assert_eq!(
        ran.actions,
        vec![("rollback", secs(150))],
        "{:?}",
        names(&events)
    );
}

#[tokio::test(start_paused = true)]
async fn a_breach_held_back_that_resolves_while_the_polls_failed_never_acts() {
    let script = held_then_failing(&[(150, Reply::Value(0.1))]);
    let (ran, _, _) = watch_ordered(
        errors_rule("5m"),
        secs(300),
        &[("errors", &script)],
        None,
        QUICK,
        vec![(secs(10), order(Order::Hold(secs(120))))],
    )
    .await;
    assert!(ran.actions.is_empty(), "{:?}", ran.actions);
    assert_eq!(ran.outcome, Outcome::Healthy);
}

#[tokio::test(start_paused = true)]
async fn a_breach_held_back_and_never_confirmed_after_the_hold_ends_inconclusive_not_healthy() {
    // The polls fail from 100s to the end (3m, within `max_blind`).
    let script = held_then_failing(&[]);
    let (ran, _, _) = watch_ordered(
        errors_rule("3m"),
        secs(180),
        &[("errors", &script)],
        None,
        QUICK,
        vec![(secs(10), order(Order::Hold(secs(120))))],
    )
    .await;
    assert!(ran.actions.is_empty(), "{:?}", ran.actions);
    match &ran.outcome {
        Outcome::Inconclusive { reason } => assert!(
            reason.contains("rule `errors` fired during a hold"),
            "{reason}"
        ),
        o => panic!("{o:?}"),
    }
}
