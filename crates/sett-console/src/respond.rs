//! Response helpers shared by the handlers: JSON and HTML bodies, and errors as JSON for the API
//! or as a page that says what is wrong and what to do.

use axum::http::StatusCode;
use axum::http::header::{self, HeaderValue};
use axum::response::Response;
use sett_core::metrics as m;

use crate::html;

pub(crate) fn respond(status: StatusCode, ctype: &'static str, body: impl Into<axum::body::Body>) -> Response {
    let mut r = Response::new(body.into());
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

pub(crate) fn json_resp(status: StatusCode, v: serde_json::Value) -> Response {
    respond(status, "application/json", v.to_string())
}

pub(crate) fn html_resp(status: StatusCode, page: String) -> Response {
    respond(status, "text/html; charset=utf-8", page)
}

/// An error as JSON for the API, as a page otherwise.
pub(crate) fn error(api: bool, status: StatusCode, msg: &str) -> Response {
    if api {
        json_resp(status, serde_json::json!({"error": msg}))
    } else {
        let title = status.canonical_reason().unwrap_or("Error");
        html_resp(status, html::message(title, msg))
    }
}

/// A request the signed-in user's role does not allow: 403, naming the role needed.
pub(crate) fn forbidden_role(why: &str) -> Response {
    metrics::counter!(m::CONSOLE_AUTH_FAILURES, "reason" => "role").increment(1);
    error(true, StatusCode::FORBIDDEN, why)
}

pub(crate) fn store_error(api: bool, e: &sett_store::StoreError) -> Response {
    error(
        api,
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("cannot read the blackboard: {e}; check that Redis is reachable, then reload"),
    )
}

/// What a handler answers: its response, or the error response that ended it early (`?`).
pub(crate) type Reply = Result<Response, Response>;

/// `.map_err(down(api))?` on a store read in a handler: the error as a 503 (`api`: as JSON).
pub(crate) fn down(api: bool) -> impl Fn(sett_store::StoreError) -> Response {
    move |e| store_error(api, &e)
}
