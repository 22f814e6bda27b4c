use super::*;
use proptest::prelude::*;

struct Case {
    name: &'static str,
    canary: &'static [f64],
    stable: &'static [f64],
    /// scipy's statistic (U1 for x = canary; the same for every alternative).
    u: f64,
    p_greater: f64,
    p_less: f64,
    p_two_sided: f64,
    /// numpy.median(numpy.subtract.outer(canary, stable))
    hl: f64,
}

// Generated with scipy 1.17.1, numpy 2.4.6 (Python 3.11), for each alternative ALT in
// "greater", "less", "two-sided":
//   scipy.stats.mannwhitneyu(x=canary, y=stable, alternative=ALT, use_continuity=True,
//                            method='asymptotic')
//   hl = numpy.median(numpy.subtract.outer(canary, stable))
// "scipy_doc_males_females" is the example of scipy's mannwhitneyu documentation
// (males = [19, 22, 16, 29, 24], females = [20, 11, 17, 12]; the docs give U = 17.0 and, with
// method="exact", p = 0.1111; the asymptotic values below are scipy's own).
#[allow(clippy::approx_constant)] // 3.14 below is a latency sample, not an approximate pi
const CASES: &[Case] = &[
    Case {
        name: "no_ties_8_9",
        canary: &[1.83, 0.5, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06],
        stable: &[0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.061, 3.14, 1.292],
        u: 51.0,
        p_greater: 0.08146824992232865,
        p_less: 0.9320833159158225,
        p_two_sided: 0.1629364998446573,
        hl: 0.6044999999999999,
    },
    Case {
        name: "int_ties_10_12",
        canary: &[3.0, 4.0, 2.0, 6.0, 2.0, 5.0, 4.0, 4.0, 3.0, 5.0],
        stable: &[6.0, 7.0, 5.0, 8.0, 5.0, 6.0, 9.0, 6.0, 7.0, 4.0, 5.0, 8.0],
        u: 12.0,
        p_greater: 0.9993991532638737,
        p_less: 0.0007577340088256995,
        p_two_sided: 0.001515468017651399,
        hl: -2.5,
    },
    Case {
        name: "latency_ties_20_25",
        canary: &[
            0.12, 0.16, 0.15, 0.15, 0.2, 0.08, 0.1, 0.08, 0.12, 0.16, 0.12, 0.14, 0.07, 0.13, 0.09,
            0.2, 0.16, 0.16, 0.12, 0.14,
        ],
        stable: &[
            0.12, 0.09, 0.09, 0.1, 0.08, 0.08, 0.09, 0.08, 0.13, 0.06, 0.13, 0.08, 0.08, 0.07, 0.1,
            0.09, 0.11, 0.09, 0.1, 0.17, 0.11, 0.08, 0.13, 0.1, 0.12,
        ],
        u: 381.5,
        p_greater: 0.001297410501473976,
        p_less: 0.9987975284527019,
        p_two_sided: 0.002594821002947952,
        hl: 0.035,
    },
    Case {
        name: "double_30_30",
        canary: &[
            0.226, 0.185, 0.136, 0.187, 0.223, 0.185, 0.218, 0.243, 0.179, 0.256, 0.277, 0.248,
            0.252, 0.249, 0.314, 0.208, 0.2, 0.226, 0.167, 0.147, 0.168, 0.215, 0.22, 0.147, 0.137,
            0.188, 0.193, 0.198, 0.229, 0.256,
        ],
        stable: &[
            0.105, 0.113, 0.08, 0.079, 0.105, 0.114, 0.116, 0.113, 0.117, 0.118, 0.07, 0.086, 0.11,
            0.113, 0.074, 0.126, 0.092, 0.095, 0.106, 0.116, 0.075, 0.122, 0.102, 0.086, 0.095,
            0.065, 0.088, 0.104, 0.087, 0.094,
        ],
        u: 900.0,
        p_greater: 1.4986099627925897e-11,
        p_less: 0.9999999999864472,
        p_two_sided: 2.9972199255851795e-11,
        hl: 0.11,
    },
    Case {
        name: "constant_stable_12_15",
        canary: &[5.0, 6.0, 5.0, 7.5, 8.0, 5.0, 9.0, 6.5, 5.0, 7.0, 10.0, 5.5],
        stable: &[
            5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0,
        ],
        u: 150.0,
        p_greater: 0.00016186217017759543,
        p_less: 0.9998718919374563,
        p_two_sided: 0.00032372434035519087,
        hl: 1.25,
    },
    Case {
        name: "scipy_doc_males_females",
        canary: &[19.0, 22.0, 16.0, 29.0, 24.0],
        stable: &[20.0, 11.0, 17.0, 12.0],
        u: 17.0,
        p_greater: 0.055673443266570206,
        p_less: 0.9669037101389033,
        p_two_sided: 0.11134688653314041,
        hl: 7.0,
    },
    Case {
        name: "identical_8_8",
        canary: &[0.11, 0.12, 0.12, 0.15, 0.09, 0.3, 0.12, 0.1],
        stable: &[0.11, 0.12, 0.12, 0.15, 0.09, 0.3, 0.12, 0.1],
        u: 32.0,
        p_greater: 0.5215828453290823,
        p_less: 0.5215828453290823,
        p_two_sided: 1.0,
        hl: 0.0,
    },
    Case {
        name: "unequal_3_30",
        canary: &[0.05, 0.07, 0.06],
        stable: &[
            0.097, 0.101, 0.12, 0.1, 0.095, 0.111, 0.142, 0.093, 0.11, 0.068, 0.127, 0.113, 0.127,
            0.099, 0.079, 0.118, 0.115, 0.083, 0.071, 0.109, 0.097, 0.152, 0.088, 0.089, 0.098,
            0.067, 0.082, 0.133, 0.097, 0.088,
        ],
        u: 2.0,
        p_greater: 0.9967892307506809,
        p_less: 0.0038748050091437056,
        p_two_sided: 0.007749610018287411,
        hl: -0.04,
    },
    Case {
        name: "around_zero_10_11",
        canary: &[-0.5, 0.0, 0.25, 1.0, 0.75, 0.0, 0.5, 1.25, -0.25, 0.5],
        stable: &[0.0, -1.0, 0.5, 0.0, -0.5, 0.25, 0.0, -0.25, 0.0, 1.0, -0.75],
        u: 77.0,
        p_greater: 0.06232139973734299,
        p_less: 0.9459724269863495,
        p_two_sided: 0.12464279947468598,
        hl: 0.5,
    },
    Case {
        name: "all_equal_5_6",
        canary: &[1.0, 1.0, 1.0, 1.0, 1.0],
        stable: &[1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
        u: 15.0,
        p_greater: 1.0,
        p_less: 1.0,
        p_two_sided: 1.0,
        hl: 0.0,
    },
];

#[test]
fn u_and_p_values_match_scipy() {
    for case in CASES {
        for (direction, expected) in [
            (Direction::Increase, case.p_greater),
            (Direction::Decrease, case.p_less),
            (Direction::Either, case.p_two_sided),
        ] {
            let got = mann_whitney(case.canary, case.stable, direction).unwrap();
            assert_eq!(got.u, case.u, "{} {direction:?}: U", case.name);
            assert!(
                (got.p_value - expected).abs() < 1e-9,
                "{} {direction:?}: p = {} but scipy says {expected}",
                case.name,
                got.p_value
            );
        }
    }
}

#[test]
fn tiny_p_values_keep_their_precision() {
    // scipy: 1.4986099627925897e-11 (greater). Relative precision, not just 1e-9 absolute.
    let case = CASES.iter().find(|c| c.name == "double_30_30").unwrap();
    let got = mann_whitney(case.canary, case.stable, Direction::Increase).unwrap();
    assert!(
        (got.p_value / case.p_greater - 1.0).abs() < 1e-6,
        "{}",
        got.p_value
    );
}

#[test]
fn textbook_u_of_the_scipy_docs_example() {
    let males = [19.0, 22.0, 16.0, 29.0, 24.0];
    let females = [20.0, 11.0, 17.0, 12.0];
    let got = mann_whitney(&males, &females, Direction::Either).unwrap();
    assert_eq!(got.u, 17.0);
    // The other way round U2 = n1 * n2 - U1 = 3.
    assert_eq!(
        mann_whitney(&females, &males, Direction::Either).unwrap().u,
        3.0
    );
}

#[test]
fn hodges_lehmann_matches_numpy() {
    for case in CASES {
        let got = hodges_lehmann(case.canary, case.stable).unwrap();
        assert!(
            (got - case.hl).abs() < 1e-12,
            "{}: HL = {got} but numpy says {}",
            case.name,
            case.hl
        );
    }
}

#[test]
fn empty_sides() {
    assert_eq!(mann_whitney(&[], &[1.0], Direction::Increase), None);
    assert_eq!(mann_whitney(&[1.0], &[], Direction::Either), None);
    assert_eq!(hodges_lehmann(&[], &[1.0]), None);
    assert_eq!(hodges_lehmann(&[1.0], &[]), None);
    assert_eq!(median(&[]), None);
    assert_eq!(
        compare(&[], &[], Direction::Increase, 0.98, 0.2, 0),
        Comparison::Insufficient {
            n_canary: 0,
            n_stable: 0
        }
    );
}

#[test]
fn medians() {
    assert_eq!(median(&[3.0]), Some(3.0));
    assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
    assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    assert_eq!(median(&[1.0, 1.0, 5.0, 5.0]), Some(3.0));
    assert_eq!(median(&[f64::MAX, f64::MAX]), Some(f64::MAX));
}

#[test]
fn too_few_samples_are_insufficient() {
    let canary = [1.0; 19];
    let stable = [1.0; 25];
    assert_eq!(
        compare(&canary, &stable, Direction::Increase, 0.98, 0.2, 20),
        Comparison::Insufficient {
            n_canary: 19,
            n_stable: 25
        }
    );
    assert_eq!(
        compare(&stable, &canary, Direction::Increase, 0.98, 0.2, 20),
        Comparison::Insufficient {
            n_canary: 25,
            n_stable: 19
        }
    );
}

fn judged(c: Comparison) -> (f64, f64, f64, f64, bool) {
    match c {
        Comparison::Judged {
            p_value,
            shift,
            stable_median,
            effect,
            breached,
            ..
        } => (p_value, shift, stable_median, effect, breached),
        other => panic!("expected a verdict, got {other:?}"),
    }
}

/// 40 latency-like values around `base` seconds, rounded to 1 ms (so with ties).
fn latencies(base: f64, seed: u64) -> Vec<f64> {
    let mut rng = SplitMix64(seed);
    (0..40)
        .map(|_| {
            let jitter = (rng.next() % 1000) as f64 / 1000.0; // 0..1
            ((base * (0.8 + 0.4 * jitter)) * 1000.0).round() / 1000.0
        })
        .collect()
}

#[test]
fn a_canary_with_double_the_latency_breaches() {
    let stable = latencies(0.100, 1);
    let canary = latencies(0.200, 2);
    let (p, shift, stable_median, effect, breached) = judged(compare(
        &canary,
        &stable,
        Direction::Increase,
        0.98,
        0.2,
        20,
    ));
    assert!(p < 1e-6, "p = {p}");
    assert!(shift > 0.08 && shift < 0.12, "shift = {shift}");
    assert!((stable_median - 0.1).abs() < 0.02, "{stable_median}");
    assert!(effect > 0.8, "effect = {effect}");
    assert!(breached);
    // Either catches it too; Decrease does not (wrong direction).
    assert!(judged(compare(&canary, &stable, Direction::Either, 0.98, 0.2, 20)).4);
    assert!(
        !judged(compare(
            &canary,
            &stable,
            Direction::Decrease,
            0.98,
            0.2,
            20
        ))
        .4
    );
    // A drop is caught by Decrease.
    let (p, _, _, effect, breached) = judged(compare(
        &stable,
        &canary,
        Direction::Decrease,
        0.98,
        0.2,
        20,
    ));
    assert!(
        p < 1e-6 && effect < -0.4 && breached,
        "p = {p}, effect = {effect}"
    );
}

#[test]
fn significant_but_small_differences_do_not_breach() {
    let stable = latencies(0.100, 3);
    let canary: Vec<f64> = stable.iter().map(|v| v + 0.005).collect(); // +5 %
    let (p, _, _, effect, breached) = judged(compare(
        &canary,
        &stable,
        Direction::Increase,
        0.98,
        0.2,
        20,
    ));
    assert!(effect > 0.0 && effect < 0.2, "effect = {effect}, p = {p}");
    assert!(!breached);
    // With min_effect 0 the same data does breach when the test rejects.
    let big: Vec<f64> = stable.iter().map(|v| v + 0.03).collect();
    let (p, _, _, _, breached) = judged(compare(&big, &stable, Direction::Increase, 0.98, 0.0, 20));
    assert!(p < 0.02 && breached, "p = {p}");
}

#[test]
fn equal_data_never_breaches() {
    let stable = latencies(0.100, 4);
    let constant = vec![0.1; 40];
    let zeros = vec![0.0; 40];
    let pairs: [(&[f64], &[f64]); 5] = [
        (&stable, &stable),     // identical samples
        (&constant, &constant), // constant, equal on both sides
        (&zeros, &zeros),       // constant zero: stable median 0, shift 0
        (&constant, &stable),   // one side constant, at the other's centre
        (&stable, &constant),
    ];
    for (canary, stable) in pairs {
        for direction in [Direction::Increase, Direction::Decrease, Direction::Either] {
            for min_effect in [0.0, 0.2] {
                let (p, shift, _, effect, breached) =
                    judged(compare(canary, stable, direction, 0.98, min_effect, 20));
                assert!(
                    !breached,
                    "{direction:?} min_effect {min_effect}: p {p} shift {shift}"
                );
                if canary == stable {
                    assert_eq!((shift, effect), (0.0, 0.0));
                    assert!(p > 0.5, "p = {p}");
                }
            }
        }
    }
    // Every value equal: zero variance, p = 1.
    let (p, shift, median, effect, breached) = judged(compare(
        &constant,
        &constant,
        Direction::Either,
        0.98,
        0.2,
        20,
    ));
    assert_eq!(
        (p, shift, median, effect, breached),
        (1.0, 0.0, 0.1, 0.0, false)
    );
}

/// Per-pod error counts, 0 most of the time: `nonzero` (count, value) pairs among 210.
fn zero_inflated(nonzero: &[(usize, f64)], offset: usize) -> Vec<f64> {
    let mut v = vec![0.0; 210];
    let mut i = offset;
    for &(n, val) in nonzero {
        for _ in 0..n {
            v[(i * 97) % 210] = val;
            i += 1;
        }
    }
    v
}

const ALL: [EffectMeasure; 3] = [
    EffectMeasure::MeanRatio,
    EffectMeasure::HodgesLehmann,
    EffectMeasure::Exceedance,
];

#[test]
fn each_effect_measure_on_the_issues_zero_inflated_canary() {
    // 64 of 210 non-zero (mean 0.66) against 17 of 210 (mean 0.15).
    let canary = zero_inflated(&[(9, 1.0), (35, 2.0), (20, 3.0)], 0);
    let stable = zero_inflated(&[(7, 1.0), (5, 2.0), (5, 3.0)], 0);
    // (measure, breached, effect within)
    let table = [
        (EffectMeasure::MeanRatio, true, (3.3, 3.4)),
        (EffectMeasure::HodgesLehmann, false, (0.0, 0.0)),
        (EffectMeasure::Exceedance, true, (0.22, 0.24)),
    ];
    for (measure, want, (lo, hi)) in table {
        let c = compare_by(
            &canary,
            &stable,
            Direction::Increase,
            0.98,
            0.2,
            20,
            measure,
        );
        let (p, shift, _, effect, breached) = judged(c);
        assert!(p < 1e-6, "{measure:?}: p = {p}");
        assert_eq!(shift, 0.0, "the Hodges–Lehmann shift of such data");
        assert!(
            (lo..=hi).contains(&effect),
            "{measure:?}: effect = {effect}"
        );
        assert_eq!(breached, want, "{measure:?}");
    }
    // The default is the one that sees it.
    assert_eq!(EffectMeasure::default(), EffectMeasure::MeanRatio);
}

#[test]
fn no_effect_measure_breaches_on_identical_or_noisy_equal_pools() {
    // (canary, stable, whether exceedance is held to it): two draws of one
    // distribution are significant by chance at 2% a test, and then their rank
    // effect (what exceedance measures) is large too; the mean ratio and the
    // Hodges–Lehmann shift measure magnitude, which stays small.
    let mut pairs: Vec<(Vec<f64>, Vec<f64>)> = Vec::new();
    let mut noisy: Vec<(Vec<f64>, Vec<f64>)> = Vec::new();
    for seed in 0..8 {
        let a = latencies(0.100, 100 + seed);
        pairs.push((a.clone(), a));
        noisy.push((latencies(0.100, 200 + seed), latencies(0.100, 300 + seed)));
    }
    for (canary, stable) in &noisy {
        for measure in [EffectMeasure::MeanRatio, EffectMeasure::HodgesLehmann] {
            for direction in [Direction::Increase, Direction::Decrease, Direction::Either] {
                let c = compare_by(canary, stable, direction, 0.98, 0.2, 20, measure);
                let (p, _, _, effect, breached) = judged(c);
                assert!(
                    !breached,
                    "{measure:?} {direction:?}: p {p} effect {effect}"
                );
            }
        }
    }
    // Zero-inflated, the same rate on both sides, spread differently.
    let errs = [(7, 1.0), (5, 2.0), (5, 3.0)];
    pairs.push((zero_inflated(&errs, 0), zero_inflated(&errs, 0)));
    pairs.push((zero_inflated(&errs, 0), zero_inflated(&errs, 50)));
    pairs.push((vec![0.0; 60], vec![0.0; 60]));
    for (canary, stable) in &pairs {
        for measure in ALL {
            for direction in [Direction::Increase, Direction::Decrease, Direction::Either] {
                let c = compare_by(canary, stable, direction, 0.98, 0.2, 20, measure);
                let (p, _, _, effect, breached) = judged(c);
                assert!(
                    !breached,
                    "{measure:?} {direction:?}: p {p} effect {effect}"
                );
            }
        }
    }
}

#[test]
fn an_infinite_canary_is_the_worst_value_and_nan_is_no_data() {
    let stable = latencies(0.100, 7);
    let mut canary = latencies(0.100, 8);
    for v in canary.iter_mut().step_by(2) {
        *v = f64::INFINITY;
    }
    for measure in ALL {
        let (p, _, _, effect, breached) = judged(compare_by(
            &canary,
            &stable,
            Direction::Increase,
            0.98,
            0.2,
            20,
            measure,
        ));
        assert!(
            p < 1e-3 && effect.is_finite() && breached,
            "{measure:?}: p {p} effect {effect}"
        );
        // The good direction for a `decrease` rule.
        let c = compare_by(
            &canary,
            &stable,
            Direction::Decrease,
            0.98,
            0.2,
            20,
            measure,
        );
        assert!(!judged(c).4, "{measure:?}");
    }
    // +Inf on both sides alike is no difference.
    let both: Vec<f64> = stable
        .iter()
        .map(|v| if *v > 0.1 { f64::INFINITY } else { *v })
        .collect();
    for measure in ALL {
        let c = compare_by(&both, &both, Direction::Either, 0.98, 0.0, 20, measure);
        assert!(!judged(c).4, "{measure:?}");
    }
    // NaN is dropped: 40 NaN leave too few samples.
    assert_eq!(
        compare_by(
            &[f64::NAN; 40],
            &stable,
            Direction::Increase,
            0.98,
            0.2,
            20,
            EffectMeasure::MeanRatio
        ),
        Comparison::Insufficient {
            n_canary: 0,
            n_stable: 40
        }
    );
}

#[test]
fn a_zero_stable_median_gives_an_infinite_effect() {
    let stable = vec![0.0; 30];
    let canary = vec![0.5; 30];
    let (p, shift, median, effect, breached) = judged(compare(
        &canary,
        &stable,
        Direction::Increase,
        0.98,
        0.2,
        20,
    ));
    assert_eq!((shift, median, effect), (0.5, 0.0, f64::INFINITY));
    assert!(p < 1e-9 && breached, "p = {p}");
    let (_, shift, _, effect, breached) = judged(compare(
        &stable,
        &canary,
        Direction::Increase,
        0.98,
        0.2,
        20,
    ));
    assert_eq!((shift, effect, breached), (-0.5, -0.5 / 0.5, false));
    let neg = vec![-0.5; 30];
    let (_, _, _, effect, breached) =
        judged(compare(&neg, &stable, Direction::Decrease, 0.98, 0.2, 20));
    assert_eq!((effect, breached), (f64::NEG_INFINITY, true));
}

#[test]
fn infinities_next_to_the_largest_finite_values_give_no_nan() {
    // Stable near f64::MAX, the canary mostly +Inf: the stand-in must not overflow.
    let stable: Vec<f64> = (0..20).map(|i| 1e308 - i as f64 * 1e300).collect();
    let mut canary = stable.clone();
    canary[..16].fill(f64::INFINITY);
    for measure in [
        EffectMeasure::MeanRatio,
        EffectMeasure::HodgesLehmann,
        EffectMeasure::Exceedance,
    ] {
        let r = compare_by(
            &canary,
            &stable,
            Direction::Increase,
            0.95,
            0.0,
            10,
            measure,
        );
        let Comparison::Judged {
            p_value,
            shift,
            stable_median,
            effect,
            breached,
            ..
        } = r
        else {
            panic!("{r:?}");
        };
        assert!(
            !p_value.is_nan() && !shift.is_nan() && !effect.is_nan(),
            "{measure:?}: {r:?}"
        );
        assert!(effect > 0.0 && breached, "{measure:?}: {r:?}");
        assert_eq!(stable_median, median(&stable).unwrap());
        let r = compare_by(
            &stable,
            &canary,
            Direction::Increase,
            0.95,
            0.0,
            10,
            measure,
        );
        assert!(
            matches!(
                r,
                Comparison::Judged {
                    breached: false,
                    ..
                }
            ),
            "{r:?}"
        );
    }
}

#[test]
fn extreme_finite_inputs_do_not_panic() {
    let canary = [f64::MAX, -f64::MAX, 0.0, f64::MIN_POSITIVE, 1e300, -0.0];
    let stable = [-f64::MAX, f64::MAX, 5e-324, -1e300];
    for direction in [Direction::Increase, Direction::Decrease, Direction::Either] {
        let r = compare(&canary, &stable, direction, 0.98, 0.2, 1);
        assert!(matches!(r, Comparison::Judged { .. }));
    }
    assert!(hodges_lehmann(&canary, &stable).is_some());
    assert!(hodges_lehmann(&[f64::MAX], &[-f64::MAX])
        .unwrap()
        .is_infinite());
    let _ = compare(&[1.0], &[2.0], Direction::Either, 2.0, -1.0, 0);
    let _ = compare(&[1.0], &[2.0], Direction::Either, f64::NAN, f64::NAN, 0);
}

/// The definition: materialise every pairwise difference and take their median.
fn hodges_lehmann_brute(canary: &[f64], stable: &[f64]) -> f64 {
    let mut diffs: Vec<f64> = canary
        .iter()
        .flat_map(|c| stable.iter().map(move |s| c - s))
        .collect();
    diffs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = diffs.len();
    if n % 2 == 1 {
        diffs[n / 2]
    } else {
        diffs[n / 2 - 1].midpoint(diffs[n / 2])
    }
}

/// Mann–Whitney U1 by its definition: pairs where canary wins, ties counting one half.
fn u_brute(canary: &[f64], stable: &[f64]) -> f64 {
    let mut u = 0.0;
    for c in canary {
        for s in stable {
            u += if c > s {
                1.0
            } else if c == s {
                0.5
            } else {
                0.0
            };
        }
    }
    u
}

/// Small values from a few levels, so that ties are many.
/// Latencies in seconds (0.01 to 0.5), some at +Inf.
fn unit_side(max_len: usize) -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(
        prop_oneof![9 => 0.01f64..0.5, 1 => Just(f64::INFINITY)],
        5..max_len,
    )
}

fn tied_side(max_len: usize) -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec((-4i32..=4).prop_map(|v| v as f64 * 0.5), 1..max_len)
}

fn any_side(max_len: usize) -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(-1e6f64..1e6, 1..max_len)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn hodges_lehmann_equals_brute_force_with_ties(c in tied_side(40), s in tied_side(40)) {
        prop_assert_eq!(hodges_lehmann(&c, &s).unwrap(), hodges_lehmann_brute(&c, &s));
    }

    #[test]
    fn hodges_lehmann_equals_brute_force(c in any_side(60), s in any_side(60)) {
        prop_assert_eq!(hodges_lehmann(&c, &s).unwrap(), hodges_lehmann_brute(&c, &s));
    }

    #[test]
    fn hodges_lehmann_equals_brute_force_past_the_gather_size(
        c in tied_side(200), s in prop::collection::vec((0i32..50).prop_map(f64::from), 100..150)
    ) {
        prop_assert_eq!(hodges_lehmann(&c, &s).unwrap(), hodges_lehmann_brute(&c, &s));
    }

    #[test]
    fn u_is_the_count_of_wins(c in tied_side(30), s in tied_side(30)) {
        let r = mann_whitney(&c, &s, Direction::Either).unwrap();
        prop_assert_eq!(r.u, u_brute(&c, &s));
        prop_assert!((0.0..=1.0).contains(&r.p_value));
        let up = mann_whitney(&c, &s, Direction::Increase).unwrap().p_value;
        let down = mann_whitney(&c, &s, Direction::Decrease).unwrap().p_value;
        prop_assert!((0.0..=1.0).contains(&up) && (0.0..=1.0).contains(&down));
    }

    #[test]
    fn the_verdict_does_not_depend_on_the_unit(
        c in unit_side(40), s in unit_side(40), min_effect in prop::sample::select(vec![0.0, 0.1, 0.2]),
    ) {
        let scaled = |xs: &[f64]| xs.iter().map(|v| v * 1000.0).collect::<Vec<_>>();
        let (cm, sm) = (scaled(&c), scaled(&s));
        for measure in [EffectMeasure::MeanRatio, EffectMeasure::HodgesLehmann, EffectMeasure::Exceedance] {
            for direction in [Direction::Increase, Direction::Decrease, Direction::Either] {
                let a = compare_by(&c, &s, direction, 0.95, min_effect, 5, measure);
                let b = compare_by(&cm, &sm, direction, 0.95, min_effect, 5, measure);
                let (Comparison::Judged { p_value: pa, effect: ea, breached: ba, .. },
                     Comparison::Judged { p_value: pb, effect: eb, breached: bb, .. }) = (&a, &b) else {
                    prop_assert!(a == Comparison::Insufficient { n_canary: c.len(), n_stable: s.len() }, "{a:?}");
                    continue;
                };
                prop_assert_eq!(pa, pb);
                prop_assert!(ea == eb || (ea - eb).abs() <= 1e-9 * ea.abs().max(1.0), "{measure:?}: {ea} vs {eb}");
                prop_assert_eq!(ba, bb, "{:?} {:?}: {:?} vs {:?}", measure, direction, a, b);
            }
        }
    }

    fn identical_samples_never_breach(c in any_side(50), min_effect in 0.0f64..1.0) {
        for direction in [Direction::Increase, Direction::Decrease, Direction::Either] {
            let r = compare(&c, &c, direction, 0.98, min_effect, 1);
            prop_assert!(matches!(r, Comparison::Judged { breached: false, .. }), "{:?}", r);
        }
    }
}
