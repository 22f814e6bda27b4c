//! `POST /api/v1/watches` with a JSON array: a batch of watches (issue 21), created
//! all or nothing by `Agent::create_many` in ONE store transaction. Apart from the
//! one-watch route (`api`) because its answer differs: a summary per watch, in the
//! batch's order, and on a refusal every refused item's index and reason.

use super::body::{
    create_error, create_error_status, summary, watch_request, ApiError, CreateBody,
};
use crate::run::agent::{Agent, BatchError, CreateError};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;

/// `POST /api/v1/watches` with an array: 201 (200 if every watch already existed)
/// with each watch's summary, `new` and `warnings`, in the batch's order, sent after
/// the one commit that stored them all. Refused (nothing created): the status of the
/// first refused item, and every refused item's `index`, `status` and `error`.
pub(super) async fn create_batch(agent: &Arc<Agent>, body: &[u8]) -> Result<Response, ApiError> {
    let items: Vec<Value> = serde_json::from_slice(body)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("invalid request: {e}")))?;
    // A batch too large is refused before its items are parsed.
    crate::run::agent::batch_size(items.len()).map_err(create_error)?;
    let n = items.len();
    let mut reqs = Vec::with_capacity(n);
    let mut refused = Vec::new();
    for (i, v) in items.into_iter().enumerate() {
        let req = serde_json::from_value::<CreateBody>(v)
            .map_err(|e| CreateError::BadRequest(format!("invalid request: {e}")))
            .and_then(watch_request);
        match req {
            Ok(r) => reqs.push(r),
            Err(e) => refused.push((i, e)),
        }
    }
    let result = if refused.is_empty() {
        agent.create_many(reqs).await
    } else {
        Err(BatchError::Refused(refused))
    };
    match result {
        Ok(created) => {
            let status = if created.iter().any(|(_, new, _)| *new) {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            let watches: Vec<Value> = created
                .iter()
                .map(|(rec, new, warnings)| {
                    let mut v = summary(rec);
                    v["new"] = json!(new);
                    v["warnings"] = json!(warnings);
                    v
                })
                .collect();
            Ok((status, Json(json!({ "watches": watches }))).into_response())
        }
        Err(BatchError::Whole(e)) => Err(create_error(e)),
        Err(BatchError::Refused(items)) => {
            let status = items
                .first()
                .map_or(StatusCode::BAD_REQUEST, |(_, e)| create_error_status(e));
            let refused: Vec<Value> = items
                .iter()
                .map(|(i, e)| {
                    json!({ "index": i, "status": create_error_status(e).as_u16(), "error": e.to_string() })
                })
                .collect();
            let body = json!({
                "error": format!(
                    "{} of the batch's {n} watches refused; none was created",
                    refused.len()
                ),
                "refused": refused,
            });
            Ok((status, Json(body)).into_response())
        }
    }
}
