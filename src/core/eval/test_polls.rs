//! The compact poll notation of the evaluator's table tests, in one place:
//! `"a=0.2 b=0.01"` is a result with series `{s="a"}` and `{s="b"}`, `"v=1"` the
//! label-less series `{}`, `"-"` an empty result, `"err"` a failed query; a value may
//! be `nan` or `inf`.

use super::{Poll, Sample};

pub fn poll(spec: &str) -> Poll {
    match spec {
        "err" => Poll::Failed,
        "-" => Poll::Samples(vec![]),
        _ => Poll::Samples(
            spec.split_whitespace()
                .map(|item| {
                    let (name, v) = item.split_once('=').unwrap();
                    let value = match v {
                        "nan" => f64::NAN,
                        "inf" => f64::INFINITY,
                        _ => v.parse().unwrap(),
                    };
                    if name == "v" {
                        Sample::new(&[], value)
                    } else {
                        Sample::new(&[("s", name)], value)
                    }
                })
                .collect(),
        ),
    }
}
