//! What both forms of `POST /api/v1/watches` share (the one-watch route in `api`,
//! the batch in `batch`): the request body and how it becomes a `WatchRequest`, the
//! error answer and the status of each `CreateError`, and a watch's summary.

use crate::io::store::WatchRecord;
use crate::run::agent::{CreateError, WatchRequest};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The body of `POST /api/v1/watches`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateBody {
    rules: String,
    #[serde(default)]
    vars: BTreeMap<String, String>,
    duration: Option<String>,
    id: Option<String>,
}

/// An error answer: a status and a sentence.
#[derive(Debug)]
pub(super) struct ApiError(pub(super) StatusCode, pub(super) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<crate::io::store::StoreError> for ApiError {
    fn from(e: crate::io::store::StoreError) -> Self {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

/// A request body, its duration parsed (a bad one is a `BadRequest`).
pub(super) fn watch_request(body: CreateBody) -> Result<WatchRequest, CreateError> {
    let duration = body
        .duration
        .as_deref()
        .map(crate::core::rules::parse_duration)
        .transpose()
        .map_err(|e| CreateError::BadRequest(format!("invalid duration: {e}")))?;
    Ok(WatchRequest {
        rules: body.rules,
        vars: body.vars,
        duration,
        id: body.id,
    })
}

pub(super) fn create_error(e: CreateError) -> ApiError {
    ApiError(create_error_status(&e), e.to_string())
}

pub(super) fn create_error_status(e: &CreateError) -> StatusCode {
    match e {
        CreateError::BadRequest(_) => StatusCode::BAD_REQUEST,
        CreateError::UnknownRules(_) => StatusCode::NOT_FOUND,
        CreateError::Conflict(_) => StatusCode::CONFLICT,
        CreateError::ShuttingDown | CreateError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        CreateError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

pub(super) fn summary(rec: &WatchRecord) -> Value {
    let d = &rec.def;
    json!({
        "id": d.id,
        "rules": d.rules,
        "vars": d.vars,
        "duration_s": d.duration_ms as f64 / 1000.0,
        "created": crate::core::events::rfc3339_ms(d.created_ms),
        "created_ms": d.created_ms,
        "state": rec.state,
        "outcome": rec.outcome,
        "exit_code": rec.exit_code,
        "detail": rec.detail,
        "finished_ms": rec.finished_ms,
        "key": d.key,
        "after": rec.after,
    })
}
