//! `rollwatch demo`: a watch catching a bad release, on any machine, in about a minute.
//!
//! It needs no Prometheus: it starts an in-process **stand-in** that answers the
//! Prometheus instant-query API for one simulated service (`checkout`) whose error ratio
//! jumps from 0.4% to 9% twenty seconds after the "release". The stand-in is not
//! Prometheus and evaluates no PromQL: it only recognises the demo rule file's two
//! queries. Everything else is the real thing: the rule file is loaded and validated
//! like any other, the real HTTP client polls the stand-in, the real evaluator decides,
//! and the real action runner runs a harmless, visible rollback command (`echo`).

use crate::io::prom::{PromClient, PromConfig};
use crate::run::watch::{Outcome, WatchOptions};
use axum::extract::{Form, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// When the simulated release goes bad, after the watch starts.
    #[arg(long, default_value = "20s", value_parser = crate::core::rules::parse_duration, hide = true)]
    pub breach_after: Duration,
    /// The demo rule's `for`.
    #[arg(long = "for", default_value = "20s", value_parser = crate::core::rules::parse_duration, hide = true)]
    pub for_: Duration,
    #[command(flatten)]
    pub outputs: crate::cmd::args::OutputArgs,
}

const RULES: &str = r#"# The demo's rule file: the same format as any rule file.
vars:
  service: checkout
watch:
  duration: 3m
  interval: 2s
rollback:
  # Harmless and visible: prints what a real rollback would run.
  command: ["echo", "[demo rollback] kubectl rollout undo deployment/${service} (simulated: nothing was changed)"]
  timeout: 30s
rules:
  - name: error-ratio
    description: share of 5xx responses
    query: |
      sum(rate(http_requests_total{service="${service}",code=~"5.."}[1m]))
        / sum(rate(http_requests_total{service="${service}"}[1m]))
    above: 0.05
    for: FOR
  - name: p99-latency
    description: 99th percentile latency in seconds
    query: |
      histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{service="${service}"}[5m])))
    above: 0.5
    for: 1m
"#;

#[derive(Clone)]
struct Sim {
    /// When the simulated release happened (Unix seconds).
    start_unix: f64,
    breach_after: Duration,
}

impl Sim {
    /// The simulated value of `query` at Unix time `at` (seconds), None for a query
    /// the stand-in does not know.
    fn value(&self, query: &str, at: f64) -> Option<f64> {
        let t = Duration::from_secs_f64((at - self.start_unix).max(0.0));
        if query.contains("histogram_quantile") {
            Some(0.21 + 0.01 * ((t.as_secs() % 3) as f64))
        } else if query.contains("5..") {
            Some(if t < self.breach_after {
                0.004 + 0.001 * ((t.as_secs() % 2) as f64)
            } else {
                0.09
            })
        } else {
            None
        }
    }

    fn now() -> f64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64()
    }

    /// An instant query's answer at `time` (now when absent).
    fn answer(&self, p: &HashMap<String, String>) -> serde_json::Value {
        let query = p.get("query").map_or("", String::as_str);
        let at = p
            .get("time")
            .and_then(|t| t.parse::<f64>().ok())
            .unwrap_or_else(Self::now);
        let result = match self.value(query, at) {
            Some(v) => serde_json::json!([
                {"metric": {"service": "checkout"}, "value": [at, v.to_string()]}
            ]),
            None => serde_json::json!([]),
        };
        serde_json::json!({"status": "success", "data": {"resultType": "vector", "result": result}})
    }

    /// A range query's answer: the value at every step (where a breach began is read
    /// in the steps, as against Prometheus).
    fn range(&self, p: &HashMap<String, String>) -> serde_json::Value {
        let query = p.get("query").map_or("", String::as_str);
        let num = |k: &str| p.get(k).and_then(|v| v.parse::<f64>().ok());
        let (Some(start), Some(end), Some(step)) = (num("start"), num("end"), num("step")) else {
            return serde_json::json!({"status": "error", "errorType": "bad_data", "error": "start, end and step are required"});
        };
        let mut values = Vec::new();
        let mut t = start;
        while t <= end && step > 0.0 && values.len() < 11_000 {
            if let Some(v) = self.value(query, t) {
                values.push(serde_json::json!([t, v.to_string()]));
            }
            t += step;
        }
        let result = if values.is_empty() {
            serde_json::json!([])
        } else {
            serde_json::json!([{"metric": {"service": "checkout"}, "values": values}])
        };
        serde_json::json!({"status": "success", "data": {"resultType": "matrix", "result": result}})
    }
}

async fn query_get(
    State(sim): State<Sim>,
    Query(p): Query<HashMap<String, String>>,
) -> Json<serde_json::Value> {
    Json(sim.answer(&p))
}

async fn query_post(
    State(sim): State<Sim>,
    Form(p): Form<HashMap<String, String>>,
) -> Json<serde_json::Value> {
    Json(sim.answer(&p))
}

async fn range_get(
    State(sim): State<Sim>,
    Query(p): Query<HashMap<String, String>>,
) -> Json<serde_json::Value> {
    Json(sim.range(&p))
}

async fn range_post(
    State(sim): State<Sim>,
    Form(p): Form<HashMap<String, String>>,
) -> Json<serde_json::Value> {
    Json(sim.range(&p))
}

pub async fn run(args: DemoArgs) -> u8 {
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot open a loopback port for the stand-in: {e}");
            return crate::core::exit::USAGE;
        }
    };
    let addr = listener
        .local_addr()
        .expect("bound listener has an address");
    let sim = Sim {
        start_unix: Sim::now(),
        breach_after: args.breach_after,
    };
    let app = Router::new()
        .route("/api/v1/query", get(query_get).post(query_post))
        .route("/api/v1/query_range", get(range_get).post(range_post))
        .with_state(sim);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let for_ = humantime::format_duration(args.for_)
        .to_string()
        .replace(' ', "");
    let text = RULES.replace("FOR", &for_);
    let (spec, _) = crate::core::rules::load_str("demo.yaml", &text, &Default::default())
        .expect("the demo rule file is valid");
    println!("rollwatch demo");
    println!("==============");
    println!("A simulated service `checkout` was just released. Its error ratio is 0.4%;");
    println!(
        "{} after the release it jumps to 9%. The watch below uses this rule file:\n",
        humantime::format_duration(args.breach_after)
    );
    for line in text.lines() {
        println!("    {line}");
    }
    println!();
    println!("Prometheus: an in-process STAND-IN at http://{addr} that answers the query API");
    println!("for the simulated service only (it is not Prometheus; it evaluates no PromQL).");
    println!(
        "Expect the rollback about {} after the jump.\n",
        humantime::format_duration(args.for_)
    );

    let client = PromClient::new(&PromConfig {
        url: format!("http://{addr}"),
        timeout: spec.query_timeout,
        ..Default::default()
    })
    .expect("loopback URL is valid");
    let mut signals = crate::cmd::signals::signal_channel();
    let opts = WatchOptions {
        duration: spec.duration,
        dry_run: false,
        prometheus: client.shown_url().to_string(),
    };
    let outcome = match crate::cmd::session::run_watch(
        &spec,
        client,
        &opts,
        &args.outputs,
        &mut signals,
        Duration::ZERO,
        None,
    )
    .await
    {
        Ok(o) => o,
        Err(code) => return code,
    };
    println!();
    match outcome {
        Outcome::RolledBack { .. } => {
            println!("The watch caught the bad release and rolled back, exactly once.");
            println!(
                "A pipeline would have seen exit code {} (rolled back).",
                outcome.exit_code()
            );
            println!("Next: write your own rules (see rules/ and README.md), then `rollwatch check` them.");
            crate::core::exit::HEALTHY
        }
        other => {
            println!("The demo did not end as expected: {}", other.name());
            other.exit_code()
        }
    }
}
