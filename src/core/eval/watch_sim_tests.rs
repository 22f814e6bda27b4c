//! Whole watches of a `compare` rule at the loader's defaults: a healthy canary is
//! re-tested at every poll, so the confidence must hold for the watch, not the poll.

use super::*;
use crate::core::rules::{load_str, LoadOptions};

/// A 30-minute watch polled every 15 s (120 polls), `for: 0s` (the first breaching
/// poll would roll back: the worst case of every `for`), every other key the default.
fn default_rule() -> crate::core::rules::Rule {
    let text = "watch:\n  duration: 30m\n  interval: 15s\nrollback:\n  command: [\"true\"]\nrules:\n  - name: errors\n    compare:\n      canary: a\n      stable: b\n      direction: increase\n      window: 10m\n    for: 0s\n";
    let (spec, _) = load_str("t.yaml", text, &LoadOptions::default()).expect("loads");
    spec.rules[0].clone()
}

/// SplitMix64: fixed seeds, the same draws on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (a, b) = (self.unit().max(1e-300), self.unit());
        (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()
    }
}

#[derive(Clone, Copy)]
enum Shape {
    /// p99 latencies per pod, log-normal around 100 ms.
    Latency,
    /// Per-pod error counts, 0 in 92% of the polls, else 1 to 3.
    ZeroInflated,
}

fn pods(rng: &mut Rng, shape: Shape, n: usize) -> Poll {
    Poll::Samples(
        (0..n)
            .map(|i| {
                let v = match shape {
                    Shape::Latency => 0.1 * (0.3 * rng.normal()).exp(),
                    Shape::ZeroInflated if rng.unit() < 0.08 => {
                        (1 + (rng.unit() * 3.0) as u32) as f64
                    }
                    Shape::ZeroInflated => 0.0,
                };
                Sample::new(&[("pod", &i.to_string())], v)
            })
            .collect(),
    )
}

/// Whether a watch of equal canary and stable pools (3 pods a side) fired.
fn healthy_watch_fires(params: Params, shape: Shape, seed: u64) -> bool {
    let mut rng = Rng(seed);
    let mut eval = RuleEval::new(params);
    (0..120u64).any(|k| {
        let (canary, stable) = (pods(&mut rng, shape, 3), pods(&mut rng, shape, 3));
        let extra = Extra {
            stable: Some(&stable),
            ..Default::default()
        };
        let out = eval.observe_with(Duration::from_secs(15 * k), &canary, extra);
        out.iter().any(|t| matches!(t, Transition::Fired { .. }))
    })
}

#[test]
fn a_healthy_canary_rolls_back_in_under_one_watch_in_a_hundred_at_the_defaults() {
    let rule = default_rule();
    let params = rule.params_over(Duration::from_secs(30 * 60));
    for (shape, name) in [
        (Shape::Latency, "latency"),
        (Shape::ZeroInflated, "zero-inflated"),
    ] {
        let fired = (0..300u64)
            .filter(|seed| healthy_watch_fires(params, shape, 0x5eed_0000 + seed))
            .count();
        assert!(
            fired < 3,
            "{name}: {fired} of 300 healthy watches rolled back"
        );
    }
}

#[test]
fn the_issues_zero_inflated_canary_still_breaches_over_a_watch() {
    // 64 of 210 samples non-zero against 17: p about 1e-9, far under
    // the watch's 0.01 / 120 per poll.
    let rule = default_rule();
    let params = rule.params_over(Duration::from_secs(30 * 60));
    let c = params.judge.compare.unwrap();
    assert_eq!((c.confidence, c.tests), (0.99, 120));
    // Non-zero samples spread evenly, alternately 3 and 1.
    let side = |nonzero: usize| -> Vec<f64> {
        let mut seen = 0;
        (0..210)
            .map(|i| {
                if i * nonzero % 210 < nonzero {
                    seen += 1;
                    if seen % 2 == 1 {
                        3.0
                    } else {
                        1.0
                    }
                } else {
                    0.0
                }
            })
            .collect()
    };
    let (canary, stable) = (side(64), side(17));
    assert_eq!(canary.iter().filter(|v| **v > 0.0).count(), 64);
    assert_eq!(stable.iter().filter(|v| **v > 0.0).count(), 17);
    let mut eval = RuleEval::new(params);
    let mut fired = false;
    // 210 samples a side arrive as 7 pods over 30 polls, inside the 10-minute window.
    for k in 0..30 {
        let poll = |v: &[f64]| {
            Poll::Samples(
                (0..7)
                    .map(|i| Sample::new(&[("pod", &i.to_string())], v[7 * k + i]))
                    .collect(),
            )
        };
        let stable = poll(&stable);
        let extra = Extra {
            stable: Some(&stable),
            ..Default::default()
        };
        let out = eval.observe_with(Duration::from_secs(15 * k as u64), &poll(&canary), extra);
        fired |= out.iter().any(|t| matches!(t, Transition::Fired { .. }));
    }
    assert!(fired, "{:?}", eval.notes().evidence);
    let e = &eval.notes().evidence[&Labels::new()];
    assert!(e.p_value.unwrap() < c.alpha(), "{e:?}");
}

#[test]
fn one_test_spends_the_whole_error_rate() {
    let rule = default_rule();
    let one = rule.params().judge.compare.unwrap();
    assert_eq!((one.tests, one.alpha()), (1, 1.0 - 0.99));
    let watch = rule
        .params_over(Duration::from_secs(30 * 60))
        .judge
        .compare
        .unwrap();
    assert!((watch.alpha() - 0.01 / 120.0).abs() < 1e-15);
    // A watch shorter than one interval is still one test.
    let short = rule
        .params_over(Duration::from_secs(1))
        .judge
        .compare
        .unwrap();
    assert_eq!(short.tests, 1);
}
