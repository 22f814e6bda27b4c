//! The page's login and logout: the token given is checked in constant time
//! (`Tokens::who`) and kept in an HttpOnly, SameSite=Strict cookie, so the page knows
//! whose orders it gives.

use super::shared::{csrf_ok, foreign_form, html_response, same_origin, Page, COOKIE};
use crate::show::page::{self, safe_next};
use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use std::collections::{BTreeMap, HashMap};

pub(super) fn login_html(p: &Page, next: &str, error: Option<&str>) -> String {
    page::login_html(p.token.as_ref().map(|_| p.csrf.as_str()), next, error)
}

pub(super) async fn login_form(
    State(p): State<Page>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let next = q.get("next").map_or("/", String::as_str);
    html_response(StatusCode::OK, login_html(&p, next, None))
}

pub(super) async fn login(
    State(p): State<Page>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let next = safe_next(form.get("next").map_or("/", String::as_str)).to_string();
    let Some(tokens) = &p.token else {
        return (StatusCode::SEE_OTHER, [(header::LOCATION, next)]).into_response();
    };
    if !same_origin(&headers) {
        return html_response(
            StatusCode::FORBIDDEN,
            login_html(
                &p,
                &next,
                Some("this form did not come from this agent's page"),
            ),
        );
    }
    let given = form.get("token").map_or("", |t| t.trim());
    let Some(who) = tokens.who(given) else {
        tracing::warn!(event = "login_refused", "a page login with a wrong token");
        return html_response(
            StatusCode::UNAUTHORIZED,
            login_html(&p, &next, Some("wrong token")),
        );
    };
    // The cookie keeps the token given (so the name it carries), base64url-encoded.
    let cookie = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(given);
    tracing::info!(event = "login", who = %who.as_deref().unwrap_or("(a token without a name)"), "page login");
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    let set = format!(
        "{COOKIE}={cookie}; HttpOnly; SameSite=Strict; Path=/{}",
        if secure { "; Secure" } else { "" }
    );
    (
        StatusCode::SEE_OTHER,
        [(header::SET_COOKIE, set), (header::LOCATION, next)],
    )
        .into_response()
}

pub(super) async fn logout(
    State(p): State<Page>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !csrf_ok(&p, &headers, &form) {
        return foreign_form(&p);
    }
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
            ),
            (header::LOCATION, "/login".to_string()),
        ],
    )
        .into_response()
}
