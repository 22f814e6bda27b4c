//! Any bytes, as the body of a Prometheus answer with any of a few statuses, decode to
//! samples or an error; never a panic. Decoded samples also go through the evaluator,
//! as a poll would.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rollwatch::core::eval::{NoData, Params, Poll, RuleEval, Threshold};
use rollwatch::io::prom::decode::{decode, decode_range};
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    for status in [200, 400, 422, 500, 503] {
        match decode(status, data) {
            Ok(r) => {
                let mut eval = RuleEval::new(Params {
                    threshold: Threshold::band(Some(0.5), Some(-0.5)),
                    for_: Duration::from_secs(1),
                    no_data: NoData::Breach,
                });
                let poll = Poll::Samples(r.samples);
                for s in 0..3 {
                    eval.observe(Duration::from_secs(s), &poll);
                }
            }
            Err(e) => drop(e.to_string()),
        }
        if let Err(e) = decode_range(status, data) {
            drop(e.to_string());
        }
    }
});
