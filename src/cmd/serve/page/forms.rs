//! The page's forms that act on a watch: cancel, and a person's orders
//! (`/watches/{id}/order/{order}`), each behind a confirmation step and the page's
//! Origin and anti-CSRF checks, through the API's own paths (`api::cancel_watch`,
//! `Agent::order`) and checks (`core::control`).

use super::shared::{
    caller, csrf_ok, error_page, foreign_form, get_watch, html_response, shell, Page,
};
use crate::cmd::serve::api::cancel_watch;
use crate::io::store::WatchState;
use crate::show::page::{self, encode_path};
use axum::extract::{Form, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;

/// The page of an error unless watch `id` is running (the cancel and order
/// confirmation steps ask it alike).
pub(super) async fn running_watch(p: &Page, id: &str) -> Result<(), Response> {
    let rec = get_watch(p, id)
        .await
        .map_err(|f| error_page(p, f.0, &f.1))?;
    if rec.state != WatchState::Running {
        return Err(error_page(
            p,
            StatusCode::CONFLICT,
            &format!("watch `{id}` is not running (it is {})", rec.state.as_str()),
        ));
    }
    Ok(())
}

pub(super) async fn cancel_confirm(State(p): State<Page>, Path(id): Path<String>) -> Response {
    if let Err(r) = running_watch(&p, &id).await {
        return r;
    }
    let main = page::cancel_main(&id, &p.csrf);
    html_response(StatusCode::OK, shell(&p, "cancel a watch", &main, None))
}

pub(super) async fn cancel(
    State(p): State<Page>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !csrf_ok(&p, &headers, &form) {
        return foreign_form(&p);
    }
    match cancel_watch(&p.agent, &id).await {
        Ok(_) => {
            tracing::info!(event = "watch_cancel_requested", watch = %id, via = "page", "cancel requested from the page");
            (
                StatusCode::SEE_OTHER,
                [(header::LOCATION, format!("/watches/{}", encode_path(&id)))],
            )
                .into_response()
        }
        Err((status, msg)) => error_page(&p, status, &msg),
    }
}

/// The confirmation step of a person's order (`/watches/{id}/order/{order}`): what it
/// does, a required reason, a duration for `hold` and `extend`, and the person's name
/// when their token has none.
pub(super) async fn order_confirm(
    State(p): State<Page>,
    Path((id, order)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !crate::core::control::Order::NAMES.contains(&order.as_str()) {
        return error_page(&p, StatusCode::NOT_FOUND, &format!("no order {order:?}"));
    }
    if let Err(r) = running_watch(&p, &id).await {
        return r;
    }
    let named = caller(&p, &headers).flatten();
    let main = page::order_main(&id, &order, &p.csrf, named.as_deref());
    html_response(StatusCode::OK, shell(&p, "order a watch", &main, None))
}

/// A person's order from the page: the same checks as the API's (`core::control`),
/// after the page's CSRF and Origin checks; recorded as the logged-in token's name.
pub(super) async fn order_give(
    State(p): State<Page>,
    Path((id, order)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !csrf_ok(&p, &headers, &form) {
        return foreign_form(&p);
    }
    let who = match caller(&p, &headers).flatten() {
        Some(name) => name,
        None => form.get("by").cloned().unwrap_or_default(),
    };
    let d = match form.get("for").map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => None,
        Some(t) => match crate::core::rules::parse_duration(t) {
            Ok(d) => Some(d),
            Err(e) => {
                return error_page(
                    &p,
                    StatusCode::BAD_REQUEST,
                    &format!("invalid duration: {e}"),
                )
            }
        },
    };
    let reason = form.get("reason").map_or("", String::as_str);
    let control = crate::core::control::Order::parse(&order, d)
        .and_then(|o| crate::core::control::Control::new(o, &who, reason, p.agent.clock_now_ms()));
    let control = match control {
        Ok(c) => c,
        Err(e) => return error_page(&p, StatusCode::BAD_REQUEST, &e.to_string()),
    };
    use crate::io::store::{OrderState, Ordered};
    let refused = |msg: String| error_page(&p, StatusCode::CONFLICT, &msg);
    match p.agent.order(&id, &control).await {
        Ok(Ordered::Queued(row)) if row.state == OrderState::Refused => {
            refused(format!("refused: {}", row.result.unwrap_or_default()))
        }
        Ok(Ordered::Queued(_)) => {
            tracing::info!(event = "order_given", watch = %id, order = %order, by = %control.who, via = "page", "order given from the page");
            (
                StatusCode::SEE_OTHER,
                [(header::LOCATION, format!("/watches/{}", encode_path(&id)))],
            )
                .into_response()
        }
        Ok(Ordered::Taken(row)) => refused(format!(
            "{} already ordered a {} of this watch at {} ({:?}); it runs once",
            row.order.who,
            row.order.kind,
            crate::core::events::rfc3339_ms(row.order.at_ms),
            row.order.reason
        )),
        Ok(Ordered::Claimed { rule, at_ms }) => refused(format!(
            "{} already started the {order} command of this watch at {}; it runs once",
            match crate::core::control::manual_by(&rule) {
                Some(who) => format!("{who}'s order"),
                None => format!("rule `{rule}`"),
            },
            crate::core::events::rfc3339_ms(at_ms)
        )),
        Ok(Ordered::NoWatch) => error_page(&p, StatusCode::NOT_FOUND, &format!("no watch `{id}`")),
        Ok(Ordered::NotRunning(s)) => refused(format!(
            "watch `{id}` is not running (it is {})",
            s.as_str()
        )),
        Err(e) => error_page(&p, StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}
