//! Who is asking, as middleware in front of every route but the static assets: a Bearer token,
//! the session cookie, or a one-time `?token=` that is exchanged for a session cookie (and
//! leaves the address bar at once). It refuses what is not signed in (401, naming how to sign
//! in), applies the CSRF rule ([`crate::csrf`]) to cookie POSTs, and hands the handlers a
//! [`PageCtx`] (user, role, groups, CSRF token).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::Request;
use axum::http::header::{self, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use sett_core::metrics as m;
use sett_store::now_ms;

use crate::app::App;
use crate::auth::{Lookup, SESSION_COOKIE, Session, User, cookie};
use crate::csrf;
use crate::html::PageCtx;
use crate::respond::error;

/// Who is asking.
enum Auth {
    Bearer(User),
    Session(Session),
    /// A valid `?token=`: exchange it for a session cookie.
    Exchange(User),
    /// A session cookie whose lifetime is over.
    Expired,
    None,
}

/// The request's query as decoded pairs (`+` and `%XX` decoded; the last of a repeated key).
pub(crate) fn query_of(req: &Request) -> HashMap<String, String> {
    axum::extract::Query::<HashMap<String, String>>::try_from_uri(req.uri()).map(|q| q.0).unwrap_or_default()
}

fn authenticate(req: &Request, query: &HashMap<String, String>, app: &App) -> Auth {
    if let Some(v) = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        return match v.strip_prefix("Bearer ").and_then(|t| app.users.lookup(t.trim())) {
            Some(user) => Auth::Bearer(user.clone()),
            None => Auth::None,
        };
    }
    if let Some(t) = query.get("token") {
        return match app.users.lookup(t) {
            Some(user) => Auth::Exchange(user.clone()),
            None => Auth::None,
        };
    }
    let session = req
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| cookie(h, SESSION_COOKIE))
        .map(|id| app.sessions.get(id));
    match session {
        Some(Lookup::Valid(s)) => Auth::Session(s),
        Some(Lookup::Expired) => Auth::Expired,
        Some(Lookup::Unknown) | None => Auth::None,
    }
}

/// The middleware: signs the request in (or refuses it), checks the CSRF proof of a cookie
/// POST, and passes a [`PageCtx`] on in the request's extensions.
pub(crate) async fn guard(Extension(app): Extension<Arc<App>>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let api = path.starts_with("/api/");
    let query = query_of(&req);
    let (user, role, groups, csrf) = match authenticate(&req, &query, &app) {
        Auth::Bearer(u) => (u.name().to_owned(), u.role(), u.groups().to_vec(), None),
        Auth::Session(s) => (s.user, s.role, s.groups, Some(s.csrf)),
        Auth::Exchange(user) => return exchange(&app, &req, &path, &query, &user, api),
        Auth::Expired => {
            metrics::counter!(m::CONSOLE_AUTH_FAILURES, "reason" => "expired_session").increment(1);
            let mut r = error(
                api,
                StatusCode::UNAUTHORIZED,
                &format!(
                    "your console session expired (sessions last {} from sign-in): open the URL 'sett console' printed again (it ends with ?token=…)",
                    humantime::format_duration(app.sessions.lifetime())
                ),
            );
            let h = r.headers_mut();
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            // Drop the dead cookie, so the browser stops sending it.
            h.insert(
                header::SET_COOKIE,
                HeaderValue::from_static("sett_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
            );
            return r;
        }
        Auth::None => {
            let presented = req.headers().contains_key(header::AUTHORIZATION)
                || query.contains_key("token")
                || req
                    .headers()
                    .get_all(header::COOKIE)
                    .iter()
                    .any(|v| v.to_str().is_ok_and(|h| cookie(h, SESSION_COOKIE).is_some()));
            let reason = if presented { "wrong_token" } else { "no_token" };
            metrics::counter!(m::CONSOLE_AUTH_FAILURES, "reason" => reason).increment(1);
            let mut r = error(
                api,
                StatusCode::UNAUTHORIZED,
                "a valid token is needed: open the URL 'sett console' printed (it ends with ?token=…), or send 'Authorization: Bearer <token>'",
            );
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
    };
    if req.method() == Method::POST
        && let Some(expected) = &csrf
        && !csrf::proven(req.headers(), expected)
    {
        metrics::counter!(m::CONSOLE_AUTH_FAILURES, "reason" => "csrf").increment(1);
        return error(api, StatusCode::FORBIDDEN, csrf::REFUSED);
    }
    req.extensions_mut().insert(PageCtx { user, role, groups, csrf, now_ms: now_ms() });
    next.run(req).await
}

/// A valid `?token=` on a GET: a session cookie, and a redirect to the same address without the
/// token (the token leaves the address bar, and the history, at once; the cookie carries on).
fn exchange(app: &App, req: &Request, path: &str, query: &HashMap<String, String>, user: &User, api: bool) -> Response {
    if req.method() != Method::GET {
        return error(
            api,
            StatusCode::FORBIDDEN,
            "a token in the URL only opens a session (GET); POST with the session cookie and the CSRF header, or with 'Authorization: Bearer'",
        );
    }
    let rest: Vec<String> =
        query.iter().filter(|(k, _)| k.as_str() != "token").map(|(k, v)| format!("{k}={v}")).collect();
    let mut location = if path.starts_with("//") { "/".to_owned() } else { path.to_owned() };
    if !rest.is_empty() {
        location = format!("{location}?{}", rest.join("&"));
    }
    let sid = app.sessions.open(user);
    let cookie = format!(
        "{SESSION_COOKIE}={sid}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        app.sessions.lifetime().as_secs()
    );
    let mut r = Response::new(axum::body::Body::empty());
    *r.status_mut() = StatusCode::SEE_OTHER;
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        h.insert(header::SET_COOKIE, v);
    }
    r
}
