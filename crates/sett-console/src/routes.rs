//! The one route table: every URL the console serves, with its method, its handler and its
//! metrics label, in [`table`]. The router, the metrics labels and the route list that tests
//! compare with docs/console.md all come from it. Around every route: the security headers
//! (a strict Content-Security-Policy: no inline script, no foreign origin), `server-timing`,
//! and request metrics; around all but the static assets, sign-in and the CSRF rule
//! ([`crate::access`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Request};
use axum::handler::Handler;
use axum::http::header::{self, HeaderValue};
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::{Next, from_fn, map_response};
use axum::response::Response;
use axum::routing::{MethodFilter, MethodRouter, on};
use axum::{Extension, Router};
use sett_core::metrics as m;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::respond::{error, respond};
use crate::{access, actions, api, pages};

const CSS: &str = include_str!("../assets/console.css");
const JS: &str = include_str!("../assets/console.js");
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
                   form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// One route of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    pub method: Method,
    /// The path pattern (`{name}` a segment).
    pub path: &'static str,
    /// The route's name in metrics: a fixed set, never an instance or an id.
    pub label: &'static str,
    /// Whether a request needs to be signed in (all but the static assets).
    pub guarded: bool,
}

/// The metrics label of the route that answered, carried out on the response.
#[derive(Debug, Clone, Copy)]
struct Label(&'static str);

/// The table being built: the router and the list of its routes.
struct Table {
    router: Router<Arc<App>>,
    routes: Vec<Route>,
}

impl Table {
    fn add<H, T>(&mut self, method: Method, path: &'static str, label: &'static str, guarded: bool, handler: H)
    where
        H: Handler<T, Arc<App>>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("a method the router knows");
        let mut service: MethodRouter<Arc<App>> = on(filter, handler).fallback(unmatched);
        if guarded {
            service = service.layer(from_fn(access::guard));
        }
        // Outside the guard: a refused request counts under its route too.
        let service = service.layer(map_response(move |mut r: Response| async move {
            r.extensions_mut().insert(Label(label));
            r
        }));
        let router = std::mem::take(&mut self.router);
        self.router = router.route(path, service);
        self.routes.push(Route { method, path, label, guarded });
    }
}

/// Every route the console serves, and the router that serves them.
pub(crate) fn table() -> (Router<Arc<App>>, Vec<Route>) {
    let mut t = Table { router: Router::new(), routes: Vec::new() };
    let (get, post) = (Method::GET, Method::POST);
    t.add(get.clone(), "/assets/{*name}", "asset", false, asset);
    t.add(get.clone(), "/", "instances_page", true, pages::instances);
    t.add(get.clone(), "/questions", "inbox_page", true, pages::inbox);
    t.add(get.clone(), "/instances/{name}", "workflows_page", true, pages::workflows);
    t.add(get.clone(), "/instances/{name}/workflows/{goal}", "workflow_page", true, pages::workflow);
    t.add(get.clone(), "/instances/{name}/artifacts/{id}", "artifact_page", true, pages::artifact);
    t.add(get.clone(), "/metrics", "metrics", true, pages::metrics);
    t.add(get.clone(), "/api/v1/instances", "api_instances", true, api::instances);
    t.add(get.clone(), "/api/v1/questions", "api_questions", true, api::all_questions);
    t.add(get.clone(), "/api/v1/instances/{name}/questions", "api_questions", true, api::questions);
    t.add(get.clone(), "/api/v1/instances/{name}/questions/{id}/context", "api_context", true, api::context);
    t.add(post.clone(), "/api/v1/instances/{name}/questions/{id}/answer", "api_answer", true, api::answer);
    t.add(get.clone(), "/api/v1/instances/{name}/workflows", "api_workflows", true, api::workflows);
    t.add(post.clone(), "/api/v1/instances/{name}/workflows/{id}/{verb}", "api_action", true, actions::workflow);
    t.add(get.clone(), "/api/v1/instances/{name}/artifacts/{id}", "api_artifact", true, api::artifact);
    t.add(post, "/api/v1/instances/{name}/artifacts/{id}/fork", "api_action", true, actions::fork_from);
    t.add(get, "/api/v1/instances/{name}/events", "api_events", true, api::events);
    // Anything else: signed in first (an unknown URL tells nothing to a stranger), then 404/405.
    let router = t.router.fallback(unmatched.layer(from_fn(access::guard)));
    (router.layer(from_fn(frame)), t.routes)
}

/// `GET /assets/{name}`: the stylesheet and the script (no sign-in: they hold no data).
async fn asset(Path(name): Path<String>) -> Response {
    let (ctype, body) = match name.as_str() {
        "console.css" => ("text/css; charset=utf-8", CSS),
        "console.js" => ("text/javascript; charset=utf-8", JS),
        _ => return error(false, StatusCode::NOT_FOUND, "no such asset"),
    };
    let mut r = respond(StatusCode::OK, ctype, body);
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=300"));
    r
}

/// No route for the URL, or not for its method: 404 for a GET, 405 otherwise.
async fn unmatched(method: Method, uri: Uri) -> Response {
    let api = uri.path().starts_with("/api/");
    if method == Method::GET {
        error(api, StatusCode::NOT_FOUND, "no such page; start from / or see docs/console.md for the API")
    } else {
        error(
            api,
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET, POST …/questions/{id}/answer, POST …/workflows/{id}/{action} and POST …/artifacts/{id}/fork are served; see docs/console.md for the API",
        )
    }
}

/// Around every request: times and counts it by route, and sets the security headers.
async fn frame(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let mut resp = next.run(req).await;
    let elapsed = started.elapsed();
    let label = resp.extensions().get::<Label>().map_or("other", |l| l.0);
    metrics::counter!(m::CONSOLE_REQUESTS, "route" => label, "status" => resp.status().as_u16().to_string())
        .increment(1);
    metrics::histogram!(m::CONSOLE_REQUEST_SECONDS, "route" => label).record(elapsed.as_secs_f64());
    if label == "api_answer" {
        let outcome = match resp.status() {
            StatusCode::OK => Some("answered"),
            StatusCode::CONFLICT => Some("already_answered"),
            StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND | StatusCode::PAYLOAD_TOO_LARGE => Some("rejected"),
            _ => None,
        };
        if let Some(outcome) = outcome {
            metrics::counter!(m::CONSOLE_ANSWERS, "outcome" => outcome).increment(1);
        }
    }
    let h = resp.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!("app;dur={:.3}", elapsed.as_secs_f64() * 1000.0)) {
        h.insert("server-timing", v);
    }
    resp
}

/// How long open requests may finish after `shutdown` (event streams end with it).
const DRAIN: Duration = Duration::from_secs(2);

/// Serves the table on `listener` until `shutdown` is cancelled, then lets open requests finish
/// for at most [`DRAIN`].
pub(crate) async fn serve(listener: TcpListener, app: Arc<App>, shutdown: CancellationToken) {
    let (router, _) = table();
    // The guard finds the state in the request (the table is built without one, for its tests).
    let router = router.layer(Extension(app.clone())).with_state(app);
    let server = axum::serve(listener, router).with_graceful_shutdown(shutdown.clone().cancelled_owned());
    tokio::select! {
        _ = async move { server.await } => {}
        () = async {
            shutdown.cancelled().await;
            tokio::time::sleep(DRAIN).await;
        } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/console.md's API table names every API route of the table (the workflow verbs one
    /// by one), and every route there is in the table: the docs cannot drift from the router.
    #[test]
    fn the_documented_api_is_the_route_table() {
        let docs = include_str!("../../../docs/console.md");
        let (_, routes) = table();
        let mut served = Vec::new();
        for r in routes.iter().filter(|r| r.path.starts_with("/api/")) {
            if r.path.ends_with("/{verb}") {
                for verb in crate::actions::Action::NAMES {
                    served.push(format!("{} {}", r.method, r.path.replace("{verb}", verb)));
                }
            } else {
                served.push(format!("{} {}", r.method, r.path));
            }
        }
        for s in &served {
            let (method, path) = s.split_once(' ').unwrap();
            let short = path.rsplit_once('/').map(|(_, last)| format!("…/{last}")).unwrap_or_default();
            assert!(
                docs.contains(&format!("`{s}")) || (method == "POST" && docs.contains(&short)),
                "docs/console.md does not document {s}"
            );
        }
        let documented: Vec<&str> = docs
            .lines()
            .filter(|l| l.starts_with("| `GET /api/") || l.starts_with("| `POST /api/"))
            .filter_map(|l| l.strip_prefix("| `")?.split('`').next())
            .collect();
        assert!(documented.len() >= 10, "found the API table in docs/console.md: {documented:?}");
        for d in documented {
            assert!(served.iter().any(|s| s == d), "docs/console.md documents {d}, which the table does not serve");
        }
    }

    /// Paths are unique per method, and every route but the assets needs sign-in.
    #[test]
    fn routes_are_unique_and_guarded() {
        let (_, routes) = table();
        let mut seen = std::collections::HashSet::new();
        for r in &routes {
            assert!(seen.insert((r.method.clone(), r.path)), "{} {} twice", r.method, r.path);
            assert_eq!(r.guarded, !r.path.starts_with("/assets/"), "{} {}", r.method, r.path);
        }
    }
}
