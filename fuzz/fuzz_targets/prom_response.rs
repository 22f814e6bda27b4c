//! Any bytes, as the body of a Prometheus answer with any of a few statuses, decode to
//! samples or an error; never a panic. Decoded samples also go through the evaluator,
//! as a poll would. And `decode` (which reads the usual shape by hand) gives what the
//! general serde reader gives.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rollwatch::core::eval::{NoData, Params, Poll, RuleEval, Threshold};
use rollwatch::io::prom::decode::{decode, decode_general, decode_range};
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    for status in [200, 400, 422, 500, 503] {
        let general = decode_general(status, data);
        match decode(status, data) {
            Ok(r) => {
                let g = general.expect("decode read what the general reader refuses");
                assert_eq!(g.warnings, r.warnings);
                assert_eq!(g.samples.len(), r.samples.len());
                for (a, b) in g.samples.iter().zip(&r.samples) {
                    assert_eq!(a.labels, b.labels);
                    assert!(
                        a.value.to_bits() == b.value.to_bits()
                            || a.value.is_nan() && b.value.is_nan()
                    );
                }
                let mut eval = RuleEval::new(Params {
                    threshold: Threshold::band(Some(0.5), Some(-0.5)),
                    for_: Duration::from_secs(1),
                    no_data: NoData::Breach,
                    judge: Default::default(),
                });
                let poll = Poll::Samples(r.samples);
                for s in 0..3 {
                    eval.observe(Duration::from_secs(s), &poll);
                }
            }
            Err(e) => assert_eq!(
                e.to_string(),
                general.expect_err("decode refused").to_string()
            ),
        }
        if let Err(e) = decode_range(status, data) {
            drop(e.to_string());
        }
    }
});
