//! People's orders over the API (issue 22): `POST /api/v1/watches/{id}/orders`
//! `{"order": "rollback"|"pause"|"hold"|"release"|"extend"|"end", "reason": ...,
//! "for": "15m" (hold, extend), "by": NAME}` and `GET` of the same path (every order
//! of the watch, oldest first). `rollwatch ctl` speaks this.
//!
//! Who gave an order: the name of the bearer token it came with (`name:token` lines
//! of `--token-file`); a token without a name, or an agent without tokens (loopback
//! only), takes `by` from the body. With a named token, a different `by` is refused:
//! nobody records an order in another person's name.
//!
//! Answers: 200 with the order once the watch's holder carried it out, 202 while it
//! is still to be (the holder looks every second, or a new one takes the watch), 409
//! when it was refused or cannot apply (another person's rollback, a rule's, a watch
//! that ended: the body says who and when), 400 for a bad order, 404 for no watch.

use super::body::ApiError;
use super::state::{Api, Caller};
use crate::core::control::{Control, Order};
use crate::core::events::rfc3339_ms;
use crate::io::store::{OrderState, Ordered};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderBody {
    order: String,
    reason: String,
    #[serde(default, rename = "for")]
    for_: Option<String>,
    #[serde(default)]
    by: Option<String>,
    /// The client's login name (`rollwatch ctl` sends `$USER`): who, only when neither
    /// the token nor `by` says.
    #[serde(default)]
    user: Option<String>,
}

fn bad(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, e.to_string())
}

/// The checked order of a request body.
fn control_of(body: &[u8], caller: &Caller, now_ms: i64) -> Result<Control, ApiError> {
    let b: OrderBody =
        serde_json::from_slice(body).map_err(|e| bad(format!("invalid order: {e}")))?;
    let d = b
        .for_
        .as_deref()
        .map(crate::core::rules::parse_duration)
        .transpose()
        .map_err(|e| bad(format!("invalid `for`: {e}")))?;
    let order = Order::parse(&b.order, d).map_err(bad)?;
    let who = match (&caller.0, &b.by) {
        (Some(name), Some(by)) if by.trim() != name => {
            return Err(bad(format!(
                "this token is {name}'s: an order made with it is recorded as {name}'s, not as {by:?}'s"
            )))
        }
        (Some(name), _) => name.clone(),
        (None, Some(by)) => by.clone(),
        (None, None) if b.user.is_some() => b.user.clone().unwrap_or_default(),
        (None, None) => {
            return Err(bad(
                "say who gives this order: `by` in the body (or use a named token, `name:token` in --token-file)",
            ))
        }
    };
    Control::new(order, &who, &b.reason, now_ms).map_err(bad)
}

pub(super) async fn order(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let control = control_of(&body, &caller, api.agent.clock_now_ms())?;
    let answered = api.agent.order(&id, &control).await?;
    let conflict = |msg: String, order: Option<serde_json::Value>| {
        (
            StatusCode::CONFLICT,
            Json(json!({ "error": msg, "order": order })),
        )
            .into_response()
    };
    Ok(match answered {
        Ordered::Queued(row) => {
            let status = match row.state {
                OrderState::Done => StatusCode::OK,
                OrderState::Pending => StatusCode::ACCEPTED,
                OrderState::Refused => {
                    let why = row.result.clone().unwrap_or_default();
                    return Ok(conflict(format!("refused: {why}"), Some(row.to_json())));
                }
            };
            (status, Json(json!({ "order": row.to_json() }))).into_response()
        }
        Ordered::Taken(row) => conflict(
            format!(
                "{} already ordered a {} of this watch at {} ({:?}); it runs once",
                row.order.who,
                row.order.kind,
                rfc3339_ms(row.order.at_ms),
                row.order.reason
            ),
            Some(row.to_json()),
        ),
        Ordered::Claimed { rule, at_ms } => {
            let by = match crate::core::control::manual_by(&rule) {
                Some(who) => format!("{who}'s order"),
                None => format!("rule `{rule}`"),
            };
            conflict(
                format!(
                    "{by} already started the {} command of this watch at {}; it runs once",
                    control.order,
                    rfc3339_ms(at_ms)
                ),
                None,
            )
        }
        Ordered::NoWatch => {
            return Err(ApiError(StatusCode::NOT_FOUND, format!("no watch `{id}`")))
        }
        Ordered::NotRunning(state) => conflict(
            format!("watch `{id}` is not running (it is {})", state.as_str()),
            None,
        ),
    })
}

pub(super) async fn orders(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let idc = id.clone();
    if api.agent.store.call(move |s| s.get(&idc)).await?.is_none() {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no watch `{id}`")));
    }
    let rows = api.agent.store.call(move |s| s.orders(&id)).await?;
    let list: Vec<serde_json::Value> = rows.iter().map(|r| r.to_json()).collect();
    Ok(Json(json!({ "orders": list })).into_response())
}
