//! The cost of the judges per poll (issue 12), in the evaluator alone (no I/O):
//! `compare` for 100 pods a side over a 10-minute window at a 15 s poll (4,000
//! samples a side in the pools, 100 in and 100 out per poll), and for comparison the
//! threshold, `min_traffic` and `baseline` judges over 100 series.
//! `cargo bench --bench judges`.

use criterion::{criterion_group, criterion_main, Criterion};
use rollwatch::core::eval::{
    BaselineParams, CompareParams, Direction, Extra, Judging, NoData, Params, Poll, RuleEval,
    Sample, Threshold,
};
use std::hint::black_box;
use std::time::Duration;

const PODS: usize = 100;
const STEP: u64 = 15;

/// Latency-like values in seconds, rounded to 1 ms (so with ties), around `median`.
fn side(prefix: &str, k: u64, median: f64) -> Vec<Sample> {
    (0..PODS)
        .map(|p| {
            let x = ((p as u64 * 7919 + k * 104_729) % 1000) as f64 / 1000.0;
            let v = (median * (0.7 + 0.6 * x) * 1000.0).round() / 1000.0;
            Sample::new(&[("pod", &format!("{prefix}{p}"))], v)
        })
        .collect()
}

fn params(judge: Judging) -> Params {
    Params {
        threshold: Threshold::band(Some(0.5), None),
        // Never reached: the measured polls stay pending at worst.
        for_: Duration::MAX,
        no_data: NoData::Ok,
        judge,
    }
}

fn judges(c: &mut Criterion) {
    let mut g = c.benchmark_group("judge_per_poll_100");
    // compare: 100 pods a side, a 10-minute window at 15 s: pools primed with 40 polls.
    for (name, factor) in [("compare_same", 1.0), ("compare_double", 2.0)] {
        let mut eval = RuleEval::new(params(Judging {
            compare: Some(CompareParams {
                direction: Direction::Increase,
                confidence: 0.98,
                tests: 1,
                min_effect: 0.2,
                window: Duration::from_secs(600),
                min_samples: 20,
                effect: Default::default(),
            }),
            ..Default::default()
        }));
        let polls: Vec<(Poll, Poll)> = (0..40)
            .map(|k| {
                (
                    Poll::Samples(side("c", k, 0.1 * factor)),
                    Poll::Samples(side("s", k, 0.1)),
                )
            })
            .collect();
        let mut k = 0u64;
        let step = |eval: &mut RuleEval, k: &mut u64| {
            let (canary, stable) = &polls[(*k % 40) as usize];
            let extra = Extra {
                stable: Some(stable),
                ..Default::default()
            };
            let out = eval.observe_with(Duration::from_secs(*k * STEP), canary, extra);
            *k += 1;
            out
        };
        for _ in 0..40 {
            step(&mut eval, &mut k);
        }
        g.bench_function(name, |b| b.iter(|| black_box(step(&mut eval, &mut k))));
    }
    // The threshold alone, a guard, a baseline: 100 series.
    let main = Poll::Samples(side("p", 0, 0.1));
    let guard = Poll::Samples(side("p", 1, 10.0));
    let base = Poll::Samples(side("p", 2, 0.1));
    for (name, judge) in [
        ("threshold", Judging::default()),
        (
            "min_traffic",
            Judging {
                min_traffic: Some(0.5),
                ..Default::default()
            },
        ),
        (
            "baseline",
            Judging {
                baseline: Some(BaselineParams {
                    above_pct: Some(50.0),
                    below_pct: None,
                    no_baseline: NoData::Hold,
                }),
                ..Default::default()
            },
        ),
    ] {
        let mut eval = RuleEval::new(params(judge));
        let extra = Extra {
            guard: Some(&guard),
            baseline: Some(&base),
            stable: None,
        };
        let mut t = 0u64;
        g.bench_function(name, |b| {
            b.iter(|| {
                t += STEP;
                black_box(eval.observe_with(Duration::from_secs(t), &main, extra))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, judges);
criterion_main!(benches);
