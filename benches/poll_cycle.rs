//! The cost of one poll cycle: decoding Prometheus's answer and feeding it to the
//! evaluator (`evaluate`: `observe`; `read`: `observe` plus what the poll means, as the
//! watch loop and replay call it), for answers of 1, 100 and 10,000 series.
//! `cargo bench --bench poll_cycle`.
//!
//! The body is shaped like a real `/api/v1/query` answer (labels, timestamps, value
//! strings). The evaluator is primed with one poll first, so the measured poll is the
//! steady state: every series already known, the breaching tenth pending.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// The allocator the binary runs with (`src/main.rs`): a poll's cost is mostly its
/// label sets' allocations, so timing them under glibc's malloc would measure a
/// program no one runs (BENCHMARKS.md gives both; remove these two lines to compare).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use rollwatch::core::eval::{Extra, NoData, Params, Poll, RuleEval, Threshold};
use rollwatch::io::prom::decode::decode;
use std::hint::black_box;
use std::time::Duration;

/// An instant-query answer with `n` series; every 10th one breaches 0.5. Its label
/// names are out of order (a set is then sorted as it is read); `sorted_body` lists
/// them sorted, as Prometheus writes them (Go's JSON encoder sorts a map's keys).
fn body(n: usize) -> Vec<u8> {
    answer(n, |i| {
        format!(
            r#""__name__":"http_requests_error_ratio","namespace":"shop","service":"checkout","pod":"checkout-7d9f8b6c5-{i:05}","instance":"10.0.{}.{}:8080""#,
            i / 256,
            i % 256
        )
    })
}

fn sorted_body(n: usize) -> Vec<u8> {
    answer(n, |i| {
        format!(
            r#""__name__":"http_requests_error_ratio","instance":"10.0.{}.{}:8080","namespace":"shop","pod":"checkout-7d9f8b6c5-{i:05}","service":"checkout""#,
            i / 256,
            i % 256
        )
    })
}

fn answer(n: usize, metric: impl Fn(usize) -> String) -> Vec<u8> {
    let mut s = String::from(r#"{"status":"success","data":{"resultType":"vector","result":["#);
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        let v = if i % 10 == 0 {
            0.9
        } else {
            0.01 * (i % 7) as f64
        };
        s.push_str(&format!(
            r#"{{"metric":{{{}}},"value":[1700000000.123,"{v}"]}}"#,
            metric(i)
        ));
    }
    s.push_str("]}}");
    s.into_bytes()
}

fn params() -> Params {
    Params {
        threshold: Threshold::band(Some(0.5), None),
        // Never reached: the measured polls keep the breaching series pending.
        for_: Duration::MAX,
        no_data: NoData::Ok,
        judge: Default::default(),
    }
}

fn poll_cycle(c: &mut Criterion) {
    for n in [1usize, 100, 10_000] {
        let body = body(n);
        let mut g = c.benchmark_group(format!("{n}_series"));
        g.throughput(Throughput::Elements(n as u64));
        if n >= 10_000 {
            g.sample_size(30);
        }
        g.bench_with_input(BenchmarkId::new("decode", n), &body, |b, body| {
            b.iter(|| decode(200, black_box(body)).unwrap())
        });
        let samples = decode(200, &body).unwrap().samples;
        let mut eval = RuleEval::new(params());
        eval.observe(Duration::ZERO, &Poll::Samples(samples.clone()));
        let poll = Poll::Samples(samples);
        let mut t = 0u64;
        g.bench_function(BenchmarkId::new("evaluate", n), |b| {
            b.iter(|| {
                t += 15;
                eval.observe(Duration::from_secs(t), black_box(&poll))
            })
        });
        // What the watch loop and replay call since issue 20: `observe` plus what the
        // poll means (worst series, value, evidence, state), measured beside it.
        let mut eval = RuleEval::new(params());
        eval.observe(Duration::ZERO, &poll);
        g.bench_function(BenchmarkId::new("read", n), |b| {
            b.iter(|| {
                t += 15;
                eval.read(Duration::from_secs(t), black_box(&poll), Extra::default())
            })
        });
        let mut eval = RuleEval::new(params());
        eval.observe(Duration::ZERO, &poll);
        g.bench_with_input(BenchmarkId::new("decode+evaluate", n), &body, |b, body| {
            b.iter(|| {
                t += 15;
                let r = decode(200, black_box(body)).unwrap();
                eval.observe(Duration::from_secs(t), &Poll::Samples(r.samples))
            })
        });
        if n >= 10_000 {
            // The same poll with the names in the order Prometheus writes them.
            let sorted = sorted_body(n);
            let mut eval = RuleEval::new(params());
            eval.observe(
                Duration::ZERO,
                &Poll::Samples(decode(200, &sorted).unwrap().samples),
            );
            g.bench_with_input(
                BenchmarkId::new("decode+evaluate, names sorted", n),
                &sorted,
                |b, body| {
                    b.iter(|| {
                        t += 15;
                        let r = decode(200, black_box(body)).unwrap();
                        eval.observe(Duration::from_secs(t), &Poll::Samples(r.samples))
                    })
                },
            );
        }
        g.finish();
    }
}

criterion_group!(benches, poll_cycle);
criterion_main!(benches);
