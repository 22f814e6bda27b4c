//! The agent's HTTP API (axum): watches under `/api/v1`, plus `/metrics`, `/healthz`
//! and `/readyz`.
//!
//! A request can only *name* a rule file and give vars: the body is parsed with
//! `deny_unknown_fields`, so a `command` (or any other field the API does not know) is
//! a 400, never silently ignored. With a token, every `/api` request must carry it as
//! a bearer token, compared in constant time.
//!
//! # Verdicts (Argo Rollouts, Flagger)
//!
//! `GET /api/v1/watches/{id}/verdict` (a watch so far, or at its end) and
//! `POST /api/v1/verdict` (a rule file with vars, every rule queried once now, as
//! `gate`'s health check does) answer `{"verdict": "pass"|"fail"|"inconclusive",
//! "rules": [...]}`. The status is 200 for pass, 412 Precondition Failed for fail (the
//! precondition of promoting the release, healthy rules, does not hold) and 503 for
//! inconclusive (it cannot be judged now; a retry may). A Flagger webhook fails its
//! check on any non-2xx answer. Argo Rollouts' web provider counts a non-2xx answer
//! as a measurement *error*, not a failure, and never reads its body: its template
//! adds `?always_200=true` and tests `{$.verdict}` with `result == "pass"`.
//!
//! Both carry the API's bearer token, except with `serve --open-verdicts`: Flagger's
//! webhooks cannot send a header (fluxcd/flagger#1192), and a token in the Canary's
//! metadata or URL would be readable by anyone who can read the Canary. The verdict
//! routes only read (they store nothing and no command can run because of them), so
//! opening them alone, behind a NetworkPolicy, gives away far less than the token.
//!
//! `POST /api/v1/verdict` takes either `{"rules": NAME, "vars": {...}}` or Flagger's
//! webhook payload `{name, namespace, phase, checksum, metadata}`, whose `metadata`
//! holds `rules` (the rule file's name) and the vars. Both are parsed with
//! `deny_unknown_fields`, and the vars go through the same loader as a watch's, so an
//! unknown var is a 400.

use super::body::{create_error, summary, watch_request, ApiError, CreateBody};
use super::state::{Api, Caller};
use super::tokens::Tokens;
use crate::io::store::{WatchRecord, WatchState};
use crate::run::agent::{load_snapshot, Agent, CreateError};
use crate::run::verdict::{RuleStatus, Verdict};
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The largest body `POST /api/v1/watches` reads: room for a batch of `run::agent::MAX_BATCH`
/// watches of about 1.6 KB each (axum's default, 2 MB, would refuse a batch of
/// 10,000 with long vars).
const WATCHES_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// The body of `POST /api/v1/verdict` (Argo Rollouts' web provider, or by hand).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct VerdictBody {
    rules: String,
    #[serde(default)]
    vars: BTreeMap<String, String>,
}

/// Flagger's webhook payload; `metadata` holds `rules` and the vars.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FlaggerBody {
    #[allow(dead_code)]
    name: String,
    #[allow(dead_code)]
    namespace: String,
    #[allow(dead_code)]
    phase: Option<String>,
    #[allow(dead_code)]
    checksum: Option<String>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

/// The key of Flagger's `metadata` that names the rule file.
const FLAGGER_RULES_KEY: &str = "rules";

/// `?always_200=true`: answer 200 whatever the verdict (Argo Rollouts).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct VerdictQuery {
    #[serde(default)]
    always_200: bool,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    state: Option<WatchState>,
}

/// A store error on a route anyone may call (`--open-verdicts`): 503 "store
/// unavailable", the detail (user, host, database, path, reason) in the log only.
fn store_failed(e: crate::io::store::StoreError, open: bool) -> ApiError {
    if !open {
        return e.into();
    }
    tracing::warn!(event = "store_error", error = %e, "a verdict could not read the store");
    ApiError(StatusCode::SERVICE_UNAVAILABLE, "store unavailable".into())
}

pub use super::tokens::constant_time_eq;

/// The router; `token` guards every `/api` route, except the two verdict routes when
/// `open_verdicts` (Flagger's webhooks cannot send a header).
pub fn router(agent: Arc<Agent>, token: Option<Tokens>, open_verdicts: bool) -> Router {
    let api = Api {
        agent,
        token: token.map(Arc::new),
        open_verdicts,
    };
    let watches = Router::new()
        .route(
            "/api/v1/watches",
            get(list)
                .post(create)
                .layer(axum::extract::DefaultBodyLimit::max(WATCHES_BODY_LIMIT)),
        )
        .route("/api/v1/watches/{id}", get(show).delete(cancel))
        .route(
            "/api/v1/watches/{id}/orders",
            get(super::orders::orders).post(super::orders::order),
        );
    let verdicts = Router::new()
        .route("/api/v1/watches/{id}/verdict", get(watch_verdict))
        .route("/api/v1/verdict", axum::routing::post(verdict_once));
    let (guarded, open) = if open_verdicts {
        (watches, verdicts)
    } else {
        (watches.merge(verdicts), Router::new())
    };
    let guarded = guarded.route_layer(middleware::from_fn_with_state(api.clone(), auth));
    Router::new()
        .merge(guarded)
        .merge(open)
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(api)
}

async fn auth(State(api): State<Api>, mut req: Request, next: Next) -> Response {
    let mut caller = Caller(None);
    if let Some(token) = &api.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let who = token.who(given);
        if let Some(name) = &who {
            caller = Caller(name.clone());
        }
        if who.is_none() {
            let mut r = ApiError(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token".into(),
            )
            .into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                "Bearer".parse().expect("static header"),
            );
            return r;
        }
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

async fn ready(State(api): State<Api>) -> Response {
    if api.agent.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn metrics(State(api): State<Api>) -> Response {
    let counts = api.agent.store.call(|s| s.count_by_state()).await;
    if let Ok(counts) = counts {
        for s in [
            WatchState::Running,
            WatchState::Finished,
            WatchState::Cancelled,
        ] {
            let n = counts.iter().find(|(k, _)| *k == s).map_or(0, |(_, n)| *n);
            api.agent
                .metrics
                .watches
                .with_label_values(&[s.as_str()])
                .set(n);
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        api.agent.metrics.render(),
    )
        .into_response()
}

/// One watch (a JSON object) or a batch (a JSON array of them, all or nothing:
/// `Agent::create_many`).
async fn create(
    State(api): State<Api>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let _ = headers;
    let batch = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    if batch {
        return super::batch::create_batch(&api.agent, &body).await;
    }
    let body: CreateBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("invalid request: {e}")))?;
    let req = watch_request(body).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    match api.agent.create(req).await {
        Ok((rec, new, warnings)) => {
            let status = if new {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            let mut body = view(&api.agent, &rec, true).await?;
            if let Some(o) = body.as_object_mut() {
                o.insert("warnings".into(), serde_json::json!(warnings));
            }
            Ok((status, Json(body)).into_response())
        }
        Err(e) => Err(create_error(e)),
    }
}

async fn list(
    State(api): State<Api>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let recs = api.agent.store.call(move |s| s.list(q.state)).await?;
    let items: Vec<Value> = recs.iter().map(summary).collect();
    Ok(Json(json!({ "watches": items })).into_response())
}

async fn show(State(api): State<Api>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let idc = id.clone();
    let rec = api
        .agent
        .store
        .call(move |s| s.get(&idc))
        .await?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no watch `{id}`")))?;
    Ok(Json(view(&api.agent, &rec, true).await?).into_response())
}

async fn cancel(State(api): State<Api>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let (status, rec) = cancel_watch(&api.agent, &id)
        .await
        .map_err(|(s, m)| ApiError(s, m))?;
    Ok((status, Json(view(&api.agent, &rec, true).await?)).into_response())
}

/// Cancels a running watch; the API's `DELETE` and the page's cancel form share it, so
/// they make the same checks. 200 when it ended, 202 while a command that was already
/// running finishes first; 404 for no such watch, 409 for one not running.
pub async fn cancel_watch(
    agent: &Agent,
    id: &str,
) -> Result<(StatusCode, WatchRecord), (StatusCode, String)> {
    let internal =
        |e: crate::io::store::StoreError| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    let get = |id: &str| {
        let id = id.to_string();
        agent.store.call(move |s| s.get(&id))
    };
    let rec = get(id)
        .await
        .map_err(internal)?
        .ok_or_else(|| (StatusCode::NOT_FOUND, format!("no watch `{id}`")))?;
    if rec.state != WatchState::Running || !agent.cancel(id).await {
        if rec.state == WatchState::Running && agent.store.shared() {
            return Err((
                StatusCode::CONFLICT,
                format!("watch `{id}` runs on another agent (the holder of its lease): cancel it through that agent"),
            ));
        }
        return Err((
            StatusCode::CONFLICT,
            format!("watch `{id}` is not running (it is {})", rec.state.as_str()),
        ));
    }
    let rec = get(id).await.map_err(internal)?.unwrap_or(rec);
    let status = if rec.state == WatchState::Running {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, rec))
}

/// 200 for pass, 412 for fail, 503 for inconclusive (or 200 with `always_200`).
fn verdict_response(v: Verdict, rules: &[RuleStatus], always_200: bool, extra: Value) -> Response {
    let status = match (always_200, v) {
        (true, _) | (false, Verdict::Pass) => StatusCode::OK,
        (false, Verdict::Fail) => StatusCode::PRECONDITION_FAILED,
        (false, Verdict::Inconclusive) => StatusCode::SERVICE_UNAVAILABLE,
    };
    let mut body = json!({
        "verdict": v.as_str(),
        "rules": rules.iter().map(|r| r.to_json()).collect::<Vec<_>>(),
    });
    if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
        b.extend(e);
    }
    (status, Json(body)).into_response()
}

fn verdict_query(
    q: Result<Query<VerdictQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<VerdictQuery, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))
}

async fn watch_verdict(
    State(api): State<Api>,
    Path(id): Path<String>,
    q: Result<Query<VerdictQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let q = verdict_query(q)?;
    let open = api.open_verdicts;
    let idc = id.clone();
    let rec = api
        .agent
        .store
        .call(move |s| s.get(&idc))
        .await
        .map_err(|e| store_failed(e, open))?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no watch `{id}`")))?;
    let (v, fin, rules) = api
        .agent
        .watch_verdict(&rec, open)
        .await
        .map_err(|e| store_failed(e, open))?;
    Ok(verdict_response(
        v,
        &rules,
        q.always_200,
        json!({ "watch": id, "final": fin, "state": rec.state, "outcome": rec.outcome }),
    ))
}

/// The rule file and vars of a verdict request, from either body shape.
fn verdict_request(body: &[u8]) -> Result<(String, BTreeMap<String, String>), ApiError> {
    let bad = |e: String| ApiError(StatusCode::BAD_REQUEST, e);
    let v: Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("invalid request: {e}")))?;
    let flagger = v
        .as_object()
        .is_some_and(|o| o.contains_key("metadata") || o.contains_key("namespace"));
    if flagger {
        let mut b: FlaggerBody = serde_json::from_value(v)
            .map_err(|e| bad(format!("invalid Flagger webhook payload: {e}")))?;
        let rules = b.metadata.remove(FLAGGER_RULES_KEY).ok_or_else(|| {
            bad(format!(
                "the webhook's metadata must name the rule file as `{FLAGGER_RULES_KEY}`; the other keys are its vars"
            ))
        })?;
        Ok((rules, b.metadata))
    } else {
        let b: VerdictBody =
            serde_json::from_value(v).map_err(|e| bad(format!("invalid request: {e}")))?;
        Ok((b.rules, b.vars))
    }
}

async fn verdict_once(
    State(api): State<Api>,
    q: Result<Query<VerdictQuery>, axum::extract::rejection::QueryRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let q = verdict_query(q)?;
    let (rules, vars) = verdict_request(&body)?;
    let statuses = api
        .agent
        .verdict_once(&rules, vars, api.open_verdicts)
        .await
        .map_err(|e| match e {
            CreateError::Store(e) => store_failed(e, api.open_verdicts),
            e => create_error(e),
        })?;
    let v = crate::run::verdict::verdict_of(&statuses);
    tracing::info!(event = "verdict", rules = %rules, verdict = v.as_str(), "verdict evaluated once");
    Ok(verdict_response(
        v,
        &statuses,
        q.always_200,
        json!({ "rules_file": rules }),
    ))
}

async fn view(agent: &Agent, rec: &WatchRecord, detail: bool) -> Result<Value, ApiError> {
    let mut v = summary(rec);
    if !detail {
        return Ok(v);
    }
    let live = agent.live_or_stored(rec).await;
    let spec = load_snapshot(&rec.def).ok();
    let rules: Vec<Value> = spec
        .iter()
        .flat_map(|s| s.rules.iter())
        .map(|r| {
            let l = live.get(&r.name).cloned().unwrap_or_default();
            json!({
                "name": r.name,
                "query": r.query,
                "threshold": r.condition(),
                "for_s": r.for_.as_secs_f64(),
                "interval_s": r.interval.as_secs_f64(),
                "action": r.action,
                "state": l.state,
                "value": crate::core::events::float::json(l.value),
                "last_poll_ms": l.last_poll_ms,
                "error": l.error,
            })
        })
        .collect();
    let id = rec.def.id.clone();
    let (series, actions) = agent
        .store
        .call(move |s| Ok::<_, crate::io::store::StoreError>((s.series(&id)?, s.actions(&id)?)))
        .await?;
    let series: Vec<Value> = series
        .into_iter()
        .map(|s| {
            json!({
                "rule": s.rule,
                "labels": s.labels,
                "phase": s.phase,
                "since_ms": s.since_ms,
                "last_value": crate::core::events::float::json(s.last_value),
            })
        })
        .collect();
    v["rule_states"] = json!(rules);
    v["series"] = json!(series);
    v["actions"] = json!(actions);
    // What people's orders add up to now: a hold in force, the extensions.
    if rec.state == WatchState::Running {
        let control = agent.control_state(&rec.def).await?;
        let now = agent.clock_now_ms();
        v["held"] = match control.held_at(now) {
            Some(h) => json!({"until_ms": h.until_ms, "by": h.who, "reason": h.reason}),
            None => Value::Null,
        };
        v["ends_ms"] = json!(control.end_ms(
            rec.def.created_ms,
            std::time::Duration::from_millis(rec.def.duration_ms.max(0) as u64)
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_error_on_an_open_route_is_a_fixed_sentence() {
        let e = || crate::io::store::StoreError::Open {
            path: "/var/lib/rollwatch/state.db".into(),
            source: rusqlite::Error::InvalidQuery,
        };
        let ApiError(status, text) = store_failed(e(), true);
        assert_eq!(
            (status, text.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable")
        );
        let ApiError(status, text) = store_failed(e(), false);
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(text.contains("state.db"), "{text}");
    }

    #[test]
    fn constant_time_eq_matches_only_equal_tokens() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn a_verdict_request_takes_our_shape_or_flaggers() {
        let (r, v) = verdict_request(br#"{"rules":"checkout","vars":{"service":"a"}}"#).unwrap();
        assert_eq!((r.as_str(), v["service"].as_str()), ("checkout", "a"));
        let (r, v) = verdict_request(
            br#"{"name":"podinfo","namespace":"test","phase":"Progressing","checksum":"x","metadata":{"rules":"checkout","service":"a"}}"#,
        )
        .unwrap();
        assert_eq!(r, "checkout");
        assert_eq!(v.len(), 1);
        for bad in [
            &br#"{"rules":"x","command":["rm"]}"#[..],
            br#"{"name":"p","namespace":"t","metadata":{"service":"a"}}"#,
            br#"{"name":"p","namespace":"t","command":"rm","metadata":{"rules":"x"}}"#,
            br#"[1]"#,
        ] {
            let e = verdict_request(bad).expect_err("rejected");
            assert_eq!(e.0, StatusCode::BAD_REQUEST, "{}", e.1);
        }
    }

    #[test]
    fn a_command_in_the_body_is_rejected() {
        let e =
            serde_json::from_str::<CreateBody>(r#"{"rules":"x","command":["rm"]}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `command`"), "{e}");
    }
}
