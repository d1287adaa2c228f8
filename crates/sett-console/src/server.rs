//! The HTTP server: authentication (Bearer, session cookie, one-time `?token=` exchange), CSRF
//! checks on POST, the pages, the JSON API under `/api/v1/` and the SSE event streams. Every
//! response carries a strict Content-Security-Policy and a `server-timing` header.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;
use sett_core::metrics as m;
use sett_core::{ArtifactId, InstanceName};
use sett_ops::answer::{AnswerError, AnswerInput, answer_question_as};
use sett_ops::fork::ForkInput;
use sett_store::{Redis, Store, now_ms};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::{CSRF_HEADER, Lookup, Role, SESSION_COOKIE, Session, Sessions, User, Users, cookie, ct_eq};
use crate::html::{self, PageCtx};
use crate::live::{Hubs, feed, parse_id};
use crate::{Config, data, graph};

/// The largest answer accepted, in bytes.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// The largest request body read (an answer plus its JSON quoting).
const MAX_BODY_BYTES: usize = 4 * MAX_ANSWER_BYTES;
/// How long a component's `/healthz` may take on the instances page.
const PROBE_TIMEOUT: Duration = Duration::from_millis(700);
/// A claim untouched this long counts as stuck (as `sett status` does).
const STUCK_AFTER: Duration = Duration::from_secs(600);
/// How long cached status reports are used at most, even when no event arrived.
const STATUS_FOR: Duration = Duration::from_secs(2);
/// How long cached workflow rows are used at most, even when no event arrived.
const ROWS_FOR: Duration = Duration::from_secs(5);
/// Claims whose bids the timeline shows (the most recent ones).
const TIMELINE_BIDS: usize = 200;

const CSS: &str = include_str!("../assets/console.css");
const JS: &str = include_str!("../assets/console.js");
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
                   form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

pub(crate) type Body = BoxBody<Bytes, Infallible>;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

fn respond(status: StatusCode, ctype: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder().status(status).header(header::CONTENT_TYPE, ctype).body(full(body)).expect("static response")
}

fn json_resp(status: StatusCode, v: serde_json::Value) -> Response<Body> {
    respond(status, "application/json", v.to_string())
}

fn html_resp(status: StatusCode, page: String) -> Response<Body> {
    respond(status, "text/html; charset=utf-8", page)
}

/// An error as JSON for the API, as a page otherwise.
fn error(api: bool, status: StatusCode, msg: &str) -> Response<Body> {
    if api {
        json_resp(status, json!({"error": msg}))
    } else {
        let title = status.canonical_reason().unwrap_or("Error");
        html_resp(status, html::message(title, msg))
    }
}

/// A request the signed-in user's role does not allow: 403, naming the role needed.
fn forbidden_role(why: &str) -> Response<Body> {
    metrics::counter!(m::CONSOLE_AUTH_FAILURES, "reason" => "role").increment(1);
    error(true, StatusCode::FORBIDDEN, why)
}

fn store_error(api: bool, e: &sett_store::StoreError) -> Response<Body> {
    error(
        api,
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("cannot read the blackboard: {e}; check that Redis is reachable, then reload"),
    )
}

/// State shared by every connection.
pub(crate) struct App {
    pub redis: Redis,
    pub instances: Option<Vec<InstanceName>>,
    pub users: Users,
    pub sessions: Sessions,
    pub hubs: Hubs,
    pub shutdown: CancellationToken,
    /// The last status reports, with the stream heads they were read at.
    status: std::sync::Mutex<Option<(String, Instant, Arc<Statuses>)>>,
    /// Workflow rows per instance, with the stream head they were read at.
    rows: std::sync::Mutex<HashMap<String, WorkflowRows>>,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

type WorkflowRows = (String, Instant, Arc<Vec<data::WorkflowRow>>);

impl App {
    pub(crate) fn new(redis: Redis, config: Config, shutdown: CancellationToken) -> Self {
        Self {
            hubs: Hubs::new(redis.clone(), shutdown.clone()),
            redis,
            instances: config.instances,
            users: config.users,
            sessions: Sessions::new(config.session_lifetime, config.clock.clone()),
            shutdown,
            rows: Default::default(),
            status: Default::default(),
            metrics: config.metrics,
        }
    }

    /// The instances shown: those named at start, else every one registered.
    pub(crate) async fn instance_names(&self) -> sett_store::Result<Vec<InstanceName>> {
        match &self.instances {
            Some(list) => Ok(list.clone()),
            None => Ok(self.redis.instances().await?.into_keys().collect()),
        }
    }

    /// The store of instance `raw` when it is one this console shows.
    async fn store(&self, raw: &str) -> sett_store::Result<Option<Store>> {
        let Ok(name) = InstanceName::parse(raw) else { return Ok(None) };
        let known = match &self.instances {
            Some(list) => list.contains(&name),
            None => self.redis.instance_record(&name).await?.is_some(),
        };
        Ok(known.then(|| self.redis.instance(&name)))
    }

    /// Where each instance's stream is now, for a page's live updates.
    async fn live(&self, stores: &[Store]) -> html::Live {
        let ids = futures::future::join_all(stores.iter().map(|s| s.last_event_id())).await;
        stores
            .iter()
            .zip(ids)
            .map(|(s, id)| (s.instance().to_string(), id.ok().flatten().unwrap_or_else(|| "0-0".into())))
            .collect()
    }
}

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

fn authenticate(req: &Request<Incoming>, query: &HashMap<String, String>, app: &App) -> Auth {
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

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    q.unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Serves one request, timing it.
pub(crate) async fn handle(req: Request<Incoming>, app: Arc<App>) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let label = route_label(req.uri().path());
    let mut resp = route(req, &app).await;
    let elapsed = started.elapsed();
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
    Ok(resp)
}

/// The route a path is, for metrics: a fixed set of names, never an instance or id.
fn route_label(path: &str) -> &'static str {
    let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        [] => "instances_page",
        ["questions"] => "inbox_page",
        ["instances", _] => "workflows_page",
        ["instances", _, "workflows", _] => "workflow_page",
        ["instances", _, "artifacts", _] => "artifact_page",
        ["assets", _] => "asset",
        ["metrics"] => "metrics",
        ["api", "v1", "instances"] => "api_instances",
        ["api", "v1", "questions"] | ["api", "v1", "instances", _, "questions"] => "api_questions",
        ["api", "v1", "instances", _, "questions", _, "context"] => "api_context",
        ["api", "v1", "instances", _, "questions", _, "answer"] => "api_answer",
        ["api", "v1", "instances", _, "workflows"] => "api_workflows",
        ["api", "v1", "instances", _, "artifacts", _] => "api_artifact",
        ["api", "v1", "instances", _, "events"] => "api_events",
        ["api", "v1", "instances", _, "workflows", _, _] | ["api", "v1", "instances", _, "artifacts", _, "fork"] => {
            "api_action"
        }
        _ => "other",
    }
}

async fn route(req: Request<Incoming>, app: &App) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let api = path.starts_with("/api/");
    if let Some(asset) = path.strip_prefix("/assets/") {
        let (ctype, body) = match asset {
            "console.css" => ("text/css; charset=utf-8", CSS),
            "console.js" => ("text/javascript; charset=utf-8", JS),
            _ => return error(false, StatusCode::NOT_FOUND, "no such asset"),
        };
        let mut r = respond(StatusCode::OK, ctype, body);
        r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=300"));
        return r;
    }
    let query = parse_query(req.uri().query());
    let (user, role, groups, csrf) = match authenticate(&req, &query, app) {
        Auth::Bearer(u) => (u.name().to_owned(), u.role(), u.groups().to_vec(), None),
        Auth::Session(s) => (s.user, s.role, s.groups, Some(s.csrf)),
        Auth::Exchange(user) => {
            if req.method() != Method::GET {
                return error(
                    api,
                    StatusCode::FORBIDDEN,
                    "a token in the URL only opens a session (GET); POST with the session cookie and the CSRF header, or with 'Authorization: Bearer'",
                );
            }
            // The token leaves the address bar (and the history) at once; the cookie carries on.
            let rest: Vec<String> =
                query.iter().filter(|(k, _)| k.as_str() != "token").map(|(k, v)| format!("{k}={v}")).collect();
            let mut location = if path.starts_with("//") { "/".to_owned() } else { path.clone() };
            if !rest.is_empty() {
                location = format!("{location}?{}", rest.join("&"));
            }
            let sid = app.sessions.open(&user);
            return Response::builder()
                .status(StatusCode::SEE_OTHER)
                .header(header::LOCATION, location)
                .header(
                    header::SET_COOKIE,
                    format!(
                        "{SESSION_COOKIE}={sid}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
                        app.sessions.lifetime().as_secs()
                    ),
                )
                .body(full(""))
                .expect("static response");
        }
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
    {
        // A cookie rides along with any request the browser makes, even one another site
        // triggers: only our own pages know the CSRF token to put in this header.
        let proof = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
        let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
        let cross_origin = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|o| o.split_once("://").map(|(_, h)| h) != Some(host));
        if cross_origin || !ct_eq(proof.as_bytes(), expected.as_bytes()) {
            metrics::counter!(m::CONSOLE_AUTH_FAILURES, "reason" => "csrf").increment(1);
            return error(
                api,
                StatusCode::FORBIDDEN,
                "missing or wrong CSRF proof: POST from the console's own pages (they send the x-sett-csrf header), or use 'Authorization: Bearer' from scripts",
            );
        }
    }
    let ctx = PageCtx { user, role, groups, csrf, now_ms: now_ms() };
    let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let method = req.method().clone();
    match (method, segs.as_slice()) {
        (Method::GET, []) => instances_page(app, &ctx).await,
        (Method::GET, ["questions"]) => inbox_page(app, &ctx, &query).await,
        (Method::GET, ["instances", name]) => workflows_page(app, &ctx, name, &query).await,
        (Method::GET, ["instances", name, "workflows", goal]) => workflow_page(app, &ctx, name, goal).await,
        (Method::GET, ["instances", name, "artifacts", id]) => artifact_page(app, &ctx, name, id).await,
        (Method::GET, ["metrics"]) => match &app.metrics {
            Some(h) => {
                h.run_upkeep();
                respond(StatusCode::OK, "text/plain; version=0.0.4", h.render())
            }
            None => error(false, StatusCode::NOT_FOUND, "metrics are not enabled in this console"),
        },
        (Method::GET, ["api", "v1", "instances"]) => api_instances(app).await,
        (Method::GET, ["api", "v1", "questions"]) => api_all_questions(app).await,
        (Method::GET, ["api", "v1", "instances", name, "questions"]) => api_questions(app, name).await,
        (Method::GET, ["api", "v1", "instances", name, "questions", id, "context"]) => api_context(app, name, id).await,
        (Method::GET, ["api", "v1", "instances", name, "workflows"]) => api_workflows(app, name).await,
        (Method::GET, ["api", "v1", "instances", name, "artifacts", id]) => api_artifact(app, name, id).await,
        (Method::GET, ["api", "v1", "instances", name, "events"]) => api_events(app, &req, &query, name).await,
        (Method::POST, ["api", "v1", "instances", name, "questions", id, "answer"]) => {
            if let Err(why) = ctx.role.require(Role::Answerer, "answering a question") {
                return forbidden_role(&why);
            }
            let (name, id) = (name.to_string(), id.to_string());
            api_answer(app, &ctx, req, &name, &id).await
        }
        (Method::POST, ["api", "v1", "instances", name, "workflows", id, verb]) => match Action::parse(verb) {
            Some(action) => {
                let (name, id) = (name.to_string(), id.to_string());
                api_action(app, &ctx, req, &name, &id, action).await
            }
            None => error(
                true,
                StatusCode::NOT_FOUND,
                &format!(
                    "no workflow action '{verb}'; the actions are {} (and POST …/artifacts/{{id}}/fork)",
                    Action::NAMES.join(", ")
                ),
            ),
        },
        (Method::POST, ["api", "v1", "instances", name, "artifacts", id, "fork"]) => {
            let (name, id) = (name.to_string(), id.to_string());
            api_action(app, &ctx, req, &name, &id, Action::Fork).await
        }
        (Method::GET, _) => {
            error(api, StatusCode::NOT_FOUND, "no such page; start from / or see docs/console.md for the API")
        }
        _ => error(
            api,
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET, POST …/questions/{id}/answer, POST …/workflows/{id}/{action} and POST …/artifacts/{id}/fork are served; see docs/console.md for the API",
        ),
    }
}

macro_rules! tryr {
    ($api:expr, $e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return store_error($api, &e),
        }
    };
}

async fn known(app: &App, api: bool, name: &str) -> Result<Store, Response<Body>> {
    match app.store(name).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(error(
            api,
            StatusCode::NOT_FOUND,
            &format!("no instance '{name}' here; the instances are listed at / (GET /api/v1/instances)"),
        )),
        Err(e) => Err(store_error(api, &e)),
    }
}

/// The instances' status reports, by name.
type Statuses = (Vec<String>, Vec<Result<sett_ops::status::StatusReport, String>>);

/// The status of every instance shown (as `sett status`: it reads every claim). Kept while no
/// instance's event stream has moved, for at most [`STATUS_FOR`] (component health changes
/// without events), so browsers refreshing on the same event share one read.
async fn statuses(app: &App) -> sett_store::Result<Arc<Statuses>> {
    let names = app.instance_names().await?;
    let stores: Vec<Store> = names.iter().map(|n| app.redis.instance(n)).collect();
    let heads = futures::future::try_join_all(stores.iter().map(|s| s.last_event_id())).await?;
    let key: String = names.iter().zip(&heads).map(|(n, h)| format!("{n}={} ", h.as_deref().unwrap_or(""))).collect();
    if let Some((k, at, cached)) = &*app.status.lock().expect("status lock")
        && *k == key
        && at.elapsed() < STATUS_FOR
    {
        return Ok(cached.clone());
    }
    let now = now_ms();
    let reports = futures::future::join_all(stores.iter().map(|store| async move {
        sett_ops::status::instance_status(store, now, STUCK_AFTER, PROBE_TIMEOUT).await.map_err(|e| e.to_string())
    }))
    .await;
    let got = Arc::new((names.iter().map(|n| n.to_string()).collect(), reports));
    *app.status.lock().expect("status lock") = Some((key, Instant::now(), got.clone()));
    Ok(got)
}

async fn instances_page(app: &App, ctx: &PageCtx) -> Response<Body> {
    let got = tryr!(false, statuses(app).await);
    let (names, reports) = &*got;
    let stores: Vec<Store> =
        names.iter().filter_map(|n| InstanceName::parse(n).ok()).map(|n| app.redis.instance(&n)).collect();
    let live = app.live(&stores).await;
    html_resp(StatusCode::OK, html::page("Instances", ctx, &live, &html::instances(reports, names)))
}

async fn api_instances(app: &App) -> Response<Body> {
    let got = tryr!(true, statuses(app).await);
    let (names, reports) = &*got;
    let list: Vec<serde_json::Value> = names
        .iter()
        .zip(reports)
        .map(|(n, r)| match r {
            Ok(s) => serde_json::to_value(s).unwrap_or_default(),
            Err(e) => json!({"instance": n, "error": e}),
        })
        .collect();
    json_resp(StatusCode::OK, json!(list))
}

/// Questions per inbox page.
pub(crate) const PAGE_SIZE: usize = 50;

/// One page of the inbox.
struct Inbox {
    stores: Vec<Store>,
    page: html::InboxPage,
    answered: Vec<data::AnsweredQuestion>,
    errors: Vec<String>,
}

/// One page of open questions across the instances shown (or the one named by `?instance=`),
/// soonest deadline first, and the recently answered ones. Only the page's questions are read
/// in full: the order comes from the light [`data::open_refs`].
async fn inbox(app: &App, query: &HashMap<String, String>, ctx: &PageCtx) -> sett_store::Result<Inbox> {
    let role = ctx.role;
    let mut names = app.instance_names().await?;
    let only = query.get("instance").filter(|i| !i.is_empty()).cloned();
    if let Some(only) = &only {
        names.retain(|n| n.as_str() == only);
    }
    // `?mine=1`: only what is addressed to the signed-in user.
    let mine = query.get("mine").is_some_and(|m| m == "1");
    let stores: Vec<Store> = names.iter().map(|n| app.redis.instance(n)).collect();
    let got = futures::future::join_all(stores.iter().map(|s| async move {
        let (refs, answered) =
            tokio::try_join!(data::open_refs(s), data::recently_answered(s, data::RECENTLY_ANSWERED))?;
        let refs = if mine { data::addressed_to(s, refs, &ctx.user, &ctx.groups).await? } else { refs };
        Ok::<_, sett_store::StoreError>((refs, answered))
    }))
    .await;
    let (mut all, mut answered, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    let mut short_ids = Vec::with_capacity(stores.len());
    for (n, (s, r)) in stores.iter().zip(got).enumerate() {
        match r {
            Ok((refs, a)) => {
                let ids: Vec<ArtifactId> = refs.iter().map(|r| r.id).collect();
                short_ids.push(sett_ops::resolve::unique_prefixes(&ids, 8));
                all.extend(refs.into_iter().map(|r| (n, r)));
                answered.extend(a);
            }
            Err(e) => {
                short_ids.push(HashMap::new());
                errors.push(format!("instance {}: {e}", s.instance()));
            }
        }
    }
    all.sort_by_key(|(n, r)| (data::inbox_key(r), *n));
    let total = all.len();
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    // `?q=ID` opens the page that has that question (links from notifications and timelines).
    let wanted = query.get("q").and_then(|q| all.iter().position(|(_, r)| r.id.to_string() == *q));
    let number = match wanted {
        Some(i) => i / PAGE_SIZE + 1,
        None => query.get("page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(1).clamp(1, pages),
    };
    let slice = &all[((number - 1) * PAGE_SIZE).min(total)..(number * PAGE_SIZE).min(total)];
    let loaded =
        futures::future::join_all(
            stores.iter().enumerate().map(|(n, s)| {
                let refs: Vec<_> = slice.iter().filter(|(m, _)| *m == n).map(|(_, r)| *r).collect();
                let short_ids = &short_ids[n];
                async move {
                    if refs.is_empty() { Ok(Vec::new()) } else { data::questions(s, &refs, short_ids, false).await }
                }
            }),
        )
        .await;
    let mut by_id: HashMap<(usize, String), data::Question> = HashMap::new();
    for (n, r) in loaded.into_iter().enumerate() {
        match r {
            Ok(qs) => by_id.extend(qs.into_iter().map(|q| ((n, q.id.clone()), q))),
            Err(e) => errors.push(format!("instance {}: {e}", stores[n].instance())),
        }
    }
    let questions = slice.iter().filter_map(|(n, r)| by_id.remove(&(*n, r.id.to_string()))).collect();
    answered.sort_by_key(|a| std::cmp::Reverse(a.record.answered_at_ms));
    answered.truncate(data::RECENTLY_ANSWERED);
    let page = html::InboxPage {
        questions,
        total,
        number,
        pages,
        per_page: PAGE_SIZE,
        instance: only,
        may_answer: role.may_answer(),
        mine,
    };
    Ok(Inbox { stores, page, answered, errors })
}

async fn inbox_page(app: &App, ctx: &PageCtx, query: &HashMap<String, String>) -> Response<Body> {
    let inbox = tryr!(false, inbox(app, query, ctx).await);
    let live = app.live(&inbox.stores).await;
    let total = inbox.page.total;
    let title = if total == 0 { "Questions".to_owned() } else { format!("({total}) Questions") };
    html_resp(
        StatusCode::OK,
        html::page(&title, ctx, &live, &html::inbox(&inbox.page, &inbox.answered, &inbox.errors, ctx.now_ms)),
    )
}

/// Open questions of every instance (in full, oldest first).
async fn api_all_questions(app: &App) -> Response<Body> {
    let stores: Vec<Store> = tryr!(true, app.instance_names().await).iter().map(|n| app.redis.instance(n)).collect();
    let got = futures::future::join_all(stores.iter().map(data::open_questions)).await;
    let mut open = Vec::new();
    for r in got {
        open.extend(tryr!(true, r));
    }
    open.sort_by_key(|q| q.asked_at_ms);
    json_resp(StatusCode::OK, json!(open))
}

/// A question's goal and context chain (the inbox loads it when a chain is opened).
async fn api_context(app: &App, name: &str, id: &str) -> Response<Body> {
    let store = match known(app, true, name).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Ok(id) = ArtifactId::parse(id) else {
        return error(
            true,
            StatusCode::BAD_REQUEST,
            "name the question by its full id (the 'id' field of GET …/questions)",
        );
    };
    match tryr!(true, data::context(&store, &id).await) {
        Some((goal, context)) => json_resp(StatusCode::OK, json!({"id": id, "goal": goal, "context": context})),
        None => error(true, StatusCode::NOT_FOUND, &format!("no artifact {id} in '{name}'")),
    }
}

async fn api_questions(app: &App, name: &str) -> Response<Body> {
    let store = match known(app, true, name).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let qs = tryr!(true, data::open_questions(&store).await);
    json_resp(StatusCode::OK, json!(qs))
}

/// The workflow rows of an instance. Grouping needs every artifact and claim, so the rows are
/// kept per instance and reused while the instance's event stream has not moved and for at
/// most [`ROWS_FOR`] (artifacts and state changes append events; a claim write without one is
/// picked up when the rows expire). The many browsers that refresh on the same event share
/// one read instead of each reading the whole instance.
async fn workflow_rows(app: &App, store: &Store) -> sett_store::Result<Arc<Vec<data::WorkflowRow>>> {
    let key = store.instance().to_string();
    let head = store.last_event_id().await?.unwrap_or_default();
    if let Some((h, at, rows)) = app.rows.lock().expect("rows lock").get(&key)
        && *h == head
        && at.elapsed() < ROWS_FOR
    {
        return Ok(rows.clone());
    }
    let rows: Arc<Vec<_>> = Arc::new(data::workflows(store).await?.iter().map(data::WorkflowRow::of).collect());
    app.rows.lock().expect("rows lock").insert(key, (head, Instant::now(), rows.clone()));
    Ok(rows)
}

async fn workflows_page(app: &App, ctx: &PageCtx, name: &str, query: &HashMap<String, String>) -> Response<Body> {
    let store = match known(app, false, name).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let live = app.live(std::slice::from_ref(&store)).await;
    let rows = tryr!(false, workflow_rows(app, &store).await);
    let pages = rows.len().div_ceil(PAGE_SIZE).max(1);
    let number = query.get("page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(1).clamp(1, pages);
    let slice = &rows[((number - 1) * PAGE_SIZE).min(rows.len())..(number * PAGE_SIZE).min(rows.len())];
    let p = html::Paging { total: rows.len(), number, pages, per_page: PAGE_SIZE, base: format!("/instances/{name}?") };
    html_resp(StatusCode::OK, html::page(name, ctx, &live, &html::workflows(name, slice, &p, ctx.now_ms)))
}

async fn api_workflows(app: &App, name: &str) -> Response<Body> {
    let store = match known(app, true, name).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let rows = tryr!(true, workflow_rows(app, &store).await);
    let list: Vec<serde_json::Value> = rows
        .iter()
        .map(|w| {
            json!({
                "goal_id": w.goal_id, "goal": w.goal, "state": w.state, "created_at_ms": w.created_at_ms,
                "updated_at_ms": w.updated_at_ms, "agents": w.agents, "artifacts": w.artifacts, "claims": w.claims,
                "usage": w.usage,
            })
        })
        .collect();
    json_resp(StatusCode::OK, json!(list))
}

async fn workflow_page(app: &App, ctx: &PageCtx, name: &str, goal: &str) -> Response<Body> {
    let store = match known(app, false, name).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Ok(goal) = ArtifactId::parse(goal) else {
        return error(false, StatusCode::BAD_REQUEST, "a workflow is named by its goal's full artifact id");
    };
    let live = app.live(std::slice::from_ref(&store)).await;
    let (flows, open) = tryr!(false, tokio::try_join!(data::workflows(&store), store.open_questions()));
    let Some(w) = flows.into_iter().find(|w| w.goal.id == goal) else {
        // Archived out of Redis: read from the archive, without the actions (nothing to steer).
        if let Some((w, segment)) = tryr!(false, data::archived_workflow(&store, &goal).await) {
            let svg =
                graph::svg(&w.artifacts, &w.claims, &HashSet::new(), |id| format!("/instances/{name}/artifacts/{id}"));
            let steer = html::Steering { role: Role::Viewer, cancelled: None, paused: None };
            let body = html::from_archive(name, &segment, &goal.to_string())
                + &html::workflow(name, &w, &svg, &BTreeMap::new(), &steer, ctx.now_ms);
            let title = format!("Workflow {} (archived)", sett_ops::feed::short(&goal.to_string()));
            return html_resp(StatusCode::OK, html::page(&title, ctx, &live, &body));
        }
        return error(
            false,
            StatusCode::NOT_FOUND,
            &format!("no workflow with goal {goal} in '{name}'; see /instances/{name}"),
        );
    };
    let open = html::open_set(&open);
    let svg = graph::svg(&w.artifacts, &w.claims, &open, |id| format!("/instances/{name}/artifacts/{id}"));
    let recent: Vec<_> = w.claims.iter().rev().take(TIMELINE_BIDS).map(|c| c.id).collect();
    let got = tryr!(false, futures::future::try_join_all(recent.iter().map(|c| store.bids(c))).await);
    let bids: BTreeMap<_, _> = recent.into_iter().zip(got).collect();
    let cancelled = tryr!(false, store.cancellation(&goal).await);
    let paused = tryr!(false, store.pause_of(&sett_store::PauseScope::Workflow(goal)).await);
    let steer = html::Steering { role: ctx.role, cancelled, paused };
    let title = format!("Workflow {}", sett_ops::feed::short(&goal.to_string()));
    html_resp(
        StatusCode::OK,
        html::page(&title, ctx, &live, &html::workflow(name, &w, &svg, &bids, &steer, ctx.now_ms)),
    )
}

async fn artifact_page(app: &App, ctx: &PageCtx, name: &str, id: &str) -> Response<Body> {
    let store = match known(app, false, name).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Ok(id) = ArtifactId::parse(id) else {
        return error(false, StatusCode::BAD_REQUEST, "an artifact is named by its full id");
    };
    let live = app.live(std::slice::from_ref(&store)).await;
    match tryr!(false, data::artifact(&store, &id).await) {
        Some(v) => html_resp(
            StatusCode::OK,
            html::page(
                &format!("{} {}", v.artifact.artifact_type, sett_ops::feed::short(&id.to_string())),
                ctx,
                &live,
                &html::artifact(name, &v, ctx.role),
            ),
        ),
        None => error(false, StatusCode::NOT_FOUND, &format!("no artifact {id} in '{name}'")),
    }
}

async fn api_artifact(app: &App, name: &str, id: &str) -> Response<Body> {
    let store = match known(app, true, name).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Ok(id) = ArtifactId::parse(id) else {
        return error(true, StatusCode::BAD_REQUEST, "an artifact is named by its full id (a UUID)");
    };
    match tryr!(true, data::artifact(&store, &id).await) {
        Some(v) => json_resp(StatusCode::OK, json!(v)),
        None => error(true, StatusCode::NOT_FOUND, &format!("no artifact {id} in '{name}'")),
    }
}

async fn api_events(app: &App, req: &Request<Incoming>, query: &HashMap<String, String>, name: &str) -> Response<Body> {
    let store = match known(app, true, name).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    // A reconnecting EventSource sends the last id it saw; a page passes where it was rendered.
    let resume = req.headers().get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let after = match resume.or_else(|| query.get("after").cloned()) {
        Some(a) if parse_id(&a).is_some() => a,
        Some(_) => {
            return error(
                true,
                StatusCode::BAD_REQUEST,
                "'after' / Last-Event-ID must be a stream id like 1700000000000-0",
            );
        }
        None => tryr!(true, store.last_event_id().await).unwrap_or_else(|| "0-0".into()),
    };
    let rx = tryr!(true, app.hubs.subscribe(store.instance()).await);
    let (tx, out) = tokio::sync::mpsc::channel::<Bytes>(256);
    let shutdown = app.shutdown.clone();
    tokio::spawn(async move {
        metrics::gauge!(m::CONSOLE_EVENT_STREAMS).increment(1.0);
        feed(store, rx, after, tx, shutdown).await;
        metrics::gauge!(m::CONSOLE_EVENT_STREAMS).decrement(1.0);
    });
    let stream = futures::stream::unfold(out, |mut out| async move {
        out.recv().await.map(|b| (Ok::<_, Infallible>(Frame::data(b)), out))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-store")
        .header("x-accel-buffering", "no")
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .expect("static response")
}

/// `{"answer": "text"}`, `{"answer": <JSON>}` for a structured question, or `{"fields": [[name,
/// value], …]}` as the console's form sends it.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerBody {
    answer: Option<serde_json::Value>,
    fields: Option<Vec<(String, String)>>,
}

async fn api_answer(app: &App, ctx: &PageCtx, req: Request<Incoming>, name: &str, id: &str) -> Response<Body> {
    let store = match known(app, true, name).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Ok(qid) = ArtifactId::parse(id) else {
        return error(
            true,
            StatusCode::BAD_REQUEST,
            "name the question by its full id (the 'id' field of GET …/questions)",
        );
    };
    let body = match Limited::new(req.into_body(), MAX_BODY_BYTES).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return error(
                true,
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the request is over {MAX_BODY_BYTES} bytes; answers are limited to {MAX_ANSWER_BYTES} bytes"),
            );
        }
    };
    let input = match serde_json::from_slice::<AnswerBody>(&body) {
        Ok(AnswerBody { answer: Some(serde_json::Value::String(text)), fields: None }) => AnswerInput::Text(text),
        Ok(AnswerBody { answer: Some(value), fields: None }) => AnswerInput::Json(value),
        Ok(AnswerBody { answer: None, fields: Some(pairs) }) => AnswerInput::Form(pairs),
        Ok(_) => {
            return error(
                true,
                StatusCode::BAD_REQUEST,
                "give either \"answer\" or \"fields\" (not both, not neither)",
            );
        }
        Err(e) => {
            return error(
                true,
                StatusCode::BAD_REQUEST,
                &format!(
                    "the body must be JSON {{\"answer\": \"…\"}} (or a JSON value for a structured question): {e}"
                ),
            );
        }
    };
    let size = match &input {
        AnswerInput::Text(t) => t.len(),
        _ => body.len(),
    };
    if size > MAX_ANSWER_BYTES {
        return error(
            true,
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "the answer is {size} bytes; answers are limited to {MAX_ANSWER_BYTES} bytes (64 KiB): shorten it, or put long material in the repository and point the agent at it"
            ),
        );
    }
    // Routing: only an addressee answers, by name or a group (sett.yml's, or the users file's).
    match answer_question_as(&store, &qid, &input, &ctx.user, &ctx.groups).await {
        Ok(a) => json_resp(
            StatusCode::OK,
            json!({"id": a.id, "answer_id": a.id, "question_id": a.question_id, "claim_id": a.claim_id, "answered_by": a.answered_by}),
        ),
        Err(AnswerError::Empty) => {
            error(true, StatusCode::BAD_REQUEST, "the answer is empty: an agent cannot act on an empty answer")
        }
        Err(e @ (AnswerError::NotFound(..) | AnswerError::NotAQuestion { .. })) => error(
            true,
            StatusCode::NOT_FOUND,
            &format!("{e}; list open questions with GET /api/v1/instances/{name}/questions"),
        ),
        Err(AnswerError::AlreadyAnswered { record, .. }) => json_resp(
            StatusCode::CONFLICT,
            json!({
                "error": format!("already answered by {} at {}", record.answered_by, html::time(record.answered_at_ms)),
                "answered_by": record.answered_by, "answered_at_ms": record.answered_at_ms,
                "answered_at": html::time(record.answered_at_ms), "answer_id": record.answer_id, "timed_out": record.timed_out,
            }),
        ),
        Err(e @ (AnswerError::Closed { .. } | AnswerError::NotWaiting(_) | AnswerError::TargetChanged { .. })) => {
            json_resp(StatusCode::CONFLICT, json!({"error": e.to_string()}))
        }
        Err(AnswerError::Invalid { problems, .. }) => json_resp(
            StatusCode::BAD_REQUEST,
            json!({
                "error": format!("the answer does not fit what the question asks; nothing was written: {}",
                    problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")),
                "problems": problems,
            }),
        ),
        Err(e @ AnswerError::NotAddressed { .. }) => error(
            true,
            StatusCode::FORBIDDEN,
            &format!("{e}; ask one of them to answer it (the users file's groups= puts people in groups)"),
        ),
        Err(AnswerError::Store(e)) => store_error(true, &e),
        Err(e) => error(true, StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// The largest action reason accepted, in bytes (it is recorded in the ledger).
const MAX_REASON_BYTES: usize = 4 * 1024;

/// What an operator can do to a workflow from the console (`POST …/workflows/{id}/{action}`),
/// or to one of its artifacts (`POST …/artifacts/{id}/fork`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Cancel,
    Pause,
    Resume,
    Retry,
    /// "Fork from here": a branch from the artifact (not a workflow verb: it names an artifact).
    Fork,
}

impl Action {
    /// The workflow verbs (`…/workflows/{id}/{verb}`).
    const NAMES: [&'static str; 4] = ["cancel", "pause", "resume", "retry"];

    fn parse(s: &str) -> Option<Self> {
        match s {
            "cancel" => Some(Self::Cancel),
            "pause" => Some(Self::Pause),
            "resume" => Some(Self::Resume),
            "retry" => Some(Self::Retry),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Cancel => "cancel",
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Retry => "retry",
            Self::Fork => "fork",
        }
    }

    /// The action as the subject of a refusal ("… needs the role 'operator'").
    fn doing(self) -> &'static str {
        match self {
            Self::Cancel => "cancelling a workflow",
            Self::Pause => "pausing a workflow",
            Self::Resume => "resuming a workflow",
            Self::Retry => "retrying a workflow",
            Self::Fork => "forking a workflow",
        }
    }
}

/// `{"reason": "…"}`, or an empty body; a fork also takes `payload` (a work product's new
/// payload; none: the same one, run again) or `answer` (a Question's different answer).
#[derive(Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    reason: Option<String>,
    #[serde(default)]
    payload: Option<String>,
    #[serde(default)]
    answer: Option<String>,
}

/// Reads a JSON request body of at most [`MAX_BODY_BYTES`]; an empty body is `T::default()`.
async fn json_body<T: serde::de::DeserializeOwned + Default>(
    req: Request<Incoming>,
    shape: &str,
) -> Result<T, Response<Body>> {
    let body = match Limited::new(req.into_body(), MAX_BODY_BYTES).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Err(error(
                true,
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the request is over {MAX_BODY_BYTES} bytes"),
            ));
        }
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&body)
        .map_err(|e| error(true, StatusCode::BAD_REQUEST, &format!("the body must be JSON {shape} (or empty): {e}")))
}

/// Counts an action's outcome by its response status.
fn count_action(action: Action, resp: &Response<Body>, no_op: bool) {
    let outcome = match resp.status() {
        StatusCode::OK if no_op => "no_op",
        StatusCode::OK => "done",
        StatusCode::CONFLICT => "refused",
        StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND | StatusCode::PAYLOAD_TOO_LARGE => "rejected",
        _ => return,
    };
    metrics::counter!(m::CONSOLE_ACTIONS, "action" => action.as_str(), "outcome" => outcome).increment(1);
}

/// `POST /api/v1/instances/{name}/workflows/{id}/{action}`: the action on the workflow `id`
/// (its goal or any artifact in it) as the signed-in operator, through the `sett_ops` function
/// the CLI calls. Needs the role `operator`.
async fn api_action(
    app: &App,
    ctx: &PageCtx,
    req: Request<Incoming>,
    name: &str,
    id: &str,
    action: Action,
) -> Response<Body> {
    if let Err(why) = ctx.role.require(Role::Operator, action.doing()) {
        return forbidden_role(&why);
    }
    let (resp, no_op) = act(app, ctx, req, name, id, action).await;
    count_action(action, &resp, no_op);
    resp
}

/// Runs `action`; the response and whether it was a no-op (cancelled twice).
async fn act(
    app: &App,
    ctx: &PageCtx,
    req: Request<Incoming>,
    name: &str,
    id: &str,
    action: Action,
) -> (Response<Body>, bool) {
    let store = match known(app, true, name).await {
        Ok(s) => s,
        Err(r) => return (r, false),
    };
    let Ok(target) = ArtifactId::parse(id) else {
        let what = if action == Action::Fork {
            "name the artifact to fork from by its full id (the 'id' of GET …/artifacts/{id})"
        } else {
            "name the workflow by the full id of its goal or of any artifact in it (the 'goal_id' field of GET …/workflows)"
        };
        return (error(true, StatusCode::BAD_REQUEST, what), false);
    };
    let shape = if action == Action::Fork {
        r#"{"payload": "…"} or {"answer": "…"}, with an optional "reason""#
    } else {
        r#"{"reason": "…"}"#
    };
    let body: ActionBody = match json_body(req, shape).await {
        Ok(b) => b,
        Err(r) => return (r, false),
    };
    if action != Action::Fork && (body.payload.is_some() || body.answer.is_some()) {
        return (
            error(true, StatusCode::BAD_REQUEST, "only a fork takes \"payload\" or \"answer\"; give just \"reason\""),
            false,
        );
    }
    if body.reason.as_ref().is_some_and(|r| r.len() > MAX_REASON_BYTES) {
        return (
            error(
                true,
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the reason is over {MAX_REASON_BYTES} bytes: say it in a sentence, and link to the rest"),
            ),
            false,
        );
    }
    let reason = body.reason.as_deref();
    match action {
        Action::Cancel => cancel(&store, &target, &ctx.user, reason).await,
        Action::Pause | Action::Resume => pause_or_resume(&store, &target, &ctx.user, reason, action).await,
        Action::Retry => retry(&store, &target, &ctx.user, reason).await,
        Action::Fork => {
            let input = match (body.payload.as_deref(), body.answer.as_deref()) {
                (Some(_), Some(_)) => {
                    return (
                        error(
                            true,
                            StatusCode::BAD_REQUEST,
                            "give either \"payload\" (a work product's new payload) or \"answer\" (a Question's different answer), not both",
                        ),
                        false,
                    );
                }
                (_, Some(answer)) => ForkInput::Answer(answer),
                (payload, None) => ForkInput::Payload(payload),
            };
            let size = body.payload.as_ref().or(body.answer.as_ref()).map_or(0, String::len);
            if size > MAX_ANSWER_BYTES {
                return (
                    error(
                        true,
                        StatusCode::PAYLOAD_TOO_LARGE,
                        &format!(
                            "the new payload or answer is {size} bytes; the console takes up to {MAX_ANSWER_BYTES} bytes (64 KiB): use 'sett fork' for more"
                        ),
                    ),
                    false,
                );
            }
            fork(&store, &target, input, &ctx.user, reason).await
        }
    }
}

/// An action's answer: its record as JSON, named by the action.
fn done(action: &str, record: impl serde::Serialize) -> (Response<Body>, bool) {
    let mut doc = json!(record);
    doc["action"] = json!(action);
    (json_resp(StatusCode::OK, doc), false)
}

/// A target that names no artifact: 404 saying where the workflows are listed.
fn no_such_target(store: &Store, e: &dyn std::fmt::Display) -> (Response<Body>, bool) {
    let name = store.instance();
    (
        error(true, StatusCode::NOT_FOUND, &format!("{e}; list workflows with GET /api/v1/instances/{name}/workflows")),
        false,
    )
}

async fn pause_or_resume(
    store: &Store,
    target: &ArtifactId,
    operator: &str,
    reason: Option<&str>,
    action: Action,
) -> (Response<Body>, bool) {
    use sett_ops::pause::{PauseError, pause, resume};
    let result = match action {
        Action::Pause => pause(store, Some(target), operator, reason).await.map(|d| json!(d)),
        _ => resume(store, Some(target), operator, reason).await.map(|d| json!(d)),
    };
    match result {
        Ok(doc) => done(action.as_str(), doc),
        Err(e @ (PauseError::AlreadyPaused { .. } | PauseError::NotPaused(_))) => {
            let doc = json!({"action": action.as_str(), "goal_id": target, "message": format!("nothing to do: {e}")});
            (json_resp(StatusCode::OK, doc), true)
        }
        Err(e @ (PauseError::Ended { .. } | PauseError::Busy(_))) => {
            (error(true, StatusCode::CONFLICT, &e.to_string()), false)
        }
        Err(e @ PauseError::NotFound(..)) => no_such_target(store, &e),
        Err(PauseError::Store(e)) => (store_error(true, &e), false),
    }
}

async fn retry(store: &Store, target: &ArtifactId, operator: &str, reason: Option<&str>) -> (Response<Body>, bool) {
    use sett_ops::retry::{RetryError, retry};
    match retry(store, target, operator, reason).await {
        Ok(r) => done("retry", r),
        Err(e @ RetryError::NotFound(..)) => no_such_target(store, &e),
        Err(RetryError::Store(e)) => (store_error(true, &e), false),
        Err(e) => (error(true, StatusCode::CONFLICT, &e.to_string()), false),
    }
}

async fn fork(
    store: &Store,
    target: &ArtifactId,
    input: ForkInput<'_>,
    operator: &str,
    reason: Option<&str>,
) -> (Response<Body>, bool) {
    use sett_ops::fork::{ForkError, fork};
    match fork(store, target, input, operator, reason).await {
        Ok(f) => done("fork", f),
        Err(e @ ForkError::NotFound(..)) => {
            let name = store.instance();
            (
                error(
                    true,
                    StatusCode::NOT_FOUND,
                    &format!("{e}; a workflow's artifacts are on its page (GET /api/v1/instances/{name}/workflows)"),
                ),
                false,
            )
        }
        Err(
            e @ (ForkError::Goal(_)
            | ForkError::QuestionNeedsAnswer(_)
            | ForkError::AnswerNeedsQuestion(..)
            | ForkError::NotForkable(..)),
        ) => {
            // The CLI's flags, in the API's words.
            let msg = e.to_string().replace("--answer", "\"answer\"").replace("--payload", "\"payload\"");
            (error(true, StatusCode::BAD_REQUEST, &msg), false)
        }
        Err(ForkError::Store(e)) => (store_error(true, &e), false),
        Err(e) => (error(true, StatusCode::CONFLICT, &e.to_string()), false),
    }
}

async fn cancel(store: &Store, target: &ArtifactId, operator: &str, reason: Option<&str>) -> (Response<Body>, bool) {
    use sett_ops::cancel::{CancelError, cancel_workflow};
    match cancel_workflow(store, target, operator, reason).await {
        Ok(c) => done("cancel", c),
        Err(e @ CancelError::AlreadyCancelled { .. }) => {
            let CancelError::AlreadyCancelled { goal, record } = &e else { unreachable!() };
            let doc = json!({
                "action": "cancel", "goal_id": goal, "already_cancelled": true, "operator": record.operator,
                "reason": record.reason, "at_ms": record.at_ms, "message": format!("nothing to do: {e}"),
            });
            (json_resp(StatusCode::OK, doc), true)
        }
        Err(e @ CancelError::Ended { .. }) => {
            (error(true, StatusCode::CONFLICT, &format!("{e}: there is nothing left to cancel")), false)
        }
        Err(e @ CancelError::Busy(_)) => (error(true, StatusCode::CONFLICT, &e.to_string()), false),
        Err(e @ CancelError::NotFound(..)) => no_such_target(store, &e),
        Err(CancelError::Store(e)) => (store_error(true, &e), false),
    }
}

/// Accepts connections until `shutdown` is cancelled, then lets open requests finish (bounded;
/// event streams end with the shutdown).
pub(crate) async fn serve(listener: TcpListener, app: Arc<App>, shutdown: CancellationToken) {
    sett_ops::health::serve_http(listener, shutdown, move |r| handle(r, app.clone())).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        let q = parse_query(Some("token=ab%2Fc&after=1-0&x"));
        assert_eq!(q["token"], "ab/c");
        assert_eq!(q["after"], "1-0");
        assert_eq!(q["x"], "");
        assert_eq!(percent_decode("a+b%41%"), "a bA%");
    }
}
