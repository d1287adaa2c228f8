//! The JSON API under `/api/v1/` (reads, the live event stream, answering); the workflow actions
//! are in [`crate::actions`]. docs/console.md, "The JSON API", describes each route.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::header::{self, HeaderValue};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;
use sett_core::metrics as m;
use sett_ops::answer::{AnswerError, AnswerInput, answer_question_as};
use sett_store::Store;

use crate::app::App;
use crate::auth::Role;
use crate::data;
use crate::html::{self, PageCtx};
use crate::live::{feed, parse_id};
use crate::respond::{Reply, down, error, forbidden_role, json_resp, store_error};

/// The largest answer accepted, in bytes.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// The largest request body read (an answer plus its JSON quoting).
pub(crate) const MAX_BODY_BYTES: usize = 4 * MAX_ANSWER_BYTES;

/// Reads a request body of at most [`MAX_BODY_BYTES`]; over it, `too_large` says what to do.
pub(crate) async fn read_body(body: Body, too_large: &str) -> Result<Bytes, Response> {
    axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| {
        error(true, StatusCode::PAYLOAD_TOO_LARGE, &format!("the request is over {MAX_BODY_BYTES} bytes{too_large}"))
    })
}

/// `GET /api/v1/instances`: each instance's status report.
pub(crate) async fn instances(State(app): State<Arc<App>>) -> Reply {
    let got = app.statuses().await.map_err(down(true))?;
    let (names, reports) = &*got;
    let list: Vec<serde_json::Value> = names
        .iter()
        .zip(reports)
        .map(|(n, r)| match r {
            Ok(s) => serde_json::to_value(s).unwrap_or_default(),
            Err(e) => json!({"instance": n, "error": e}),
        })
        .collect();
    Ok(json_resp(StatusCode::OK, json!(list)))
}

/// `GET /api/v1/questions`: open questions of every instance (in full, oldest first).
pub(crate) async fn all_questions(State(app): State<Arc<App>>) -> Reply {
    let stores: Vec<Store> =
        app.instance_names().await.map_err(down(true))?.iter().map(|n| app.redis.instance(n)).collect();
    let got = futures::future::join_all(stores.iter().map(data::open_questions)).await;
    let mut open = Vec::new();
    for r in got {
        open.extend(r.map_err(down(true))?);
    }
    open.sort_by_key(|q| q.asked_at_ms);
    Ok(json_resp(StatusCode::OK, json!(open)))
}

/// How to name a question when its id does not parse.
const QUESTION_ID: &str = "name the question by its full id (the 'id' field of GET …/questions)";

/// `GET /api/v1/instances/{name}/questions`: an instance's open questions.
pub(crate) async fn questions(State(app): State<Arc<App>>, Path(name): Path<String>) -> Reply {
    let store = app.known(true, &name).await?;
    let qs = data::open_questions(&store).await.map_err(down(true))?;
    Ok(json_resp(StatusCode::OK, json!(qs)))
}

/// `GET …/questions/{id}/context`: a question's goal and context chain (the inbox loads it when
/// a chain is opened).
pub(crate) async fn context(State(app): State<Arc<App>>, Path((name, id)): Path<(String, String)>) -> Reply {
    let (store, id) = app.known_artifact(true, &name, &id, QUESTION_ID).await?;
    Ok(match data::context(&store, &id).await.map_err(down(true))? {
        Some((goal, context)) => json_resp(StatusCode::OK, json!({"id": id, "goal": goal, "context": context})),
        None => error(true, StatusCode::NOT_FOUND, &format!("no artifact {id} in '{name}'")),
    })
}

/// `GET /api/v1/instances/{name}/workflows`: one object per goal, newest first.
pub(crate) async fn workflows(State(app): State<Arc<App>>, Path(name): Path<String>) -> Reply {
    let store = app.known(true, &name).await?;
    let rows = app.workflow_rows(&store).await.map_err(down(true))?;
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
    Ok(json_resp(StatusCode::OK, json!(list)))
}

/// `GET /api/v1/instances/{name}/artifacts/{id}`: the artifact, its claim, a question's answer.
pub(crate) async fn artifact(State(app): State<Arc<App>>, Path((name, id)): Path<(String, String)>) -> Reply {
    let (store, id) = app.known_artifact(true, &name, &id, "an artifact is named by its full id (a UUID)").await?;
    Ok(match data::artifact(&store, &id).await.map_err(down(true))? {
        Some(v) => json_resp(StatusCode::OK, json!(v)),
        None => error(true, StatusCode::NOT_FOUND, &format!("no artifact {id} in '{name}'")),
    })
}

/// `GET /api/v1/instances/{name}/events`: the ledger as server-sent events, resumed after
/// `Last-Event-ID` or `?after=`, else from the end.
pub(crate) async fn events(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Reply {
    let store = app.known(true, &name).await?;
    // A reconnecting EventSource sends the last id it saw; a page passes where it was rendered.
    let resume = headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let after = match resume.or_else(|| query.get("after").cloned()) {
        Some(a) if parse_id(&a).is_some() => a,
        Some(_) => {
            return Err(error(
                true,
                StatusCode::BAD_REQUEST,
                "'after' / Last-Event-ID must be a stream id like 1700000000000-0",
            ));
        }
        None => store.last_event_id().await.map_err(down(true))?.unwrap_or_else(|| "0-0".into()),
    };
    let rx = app.hubs.subscribe(store.instance()).await.map_err(down(true))?;
    let (tx, out) = tokio::sync::mpsc::channel::<Bytes>(256);
    let shutdown = app.shutdown.clone();
    tokio::spawn(async move {
        metrics::gauge!(m::CONSOLE_EVENT_STREAMS).increment(1.0);
        feed(store, rx, after, tx, shutdown).await;
        metrics::gauge!(m::CONSOLE_EVENT_STREAMS).decrement(1.0);
    });
    let stream =
        futures::stream::unfold(out, |mut out| async move { out.recv().await.map(|b| (Ok::<_, Infallible>(b), out)) });
    let mut r = Response::new(Body::from_stream(stream));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(r)
}

/// `{"answer": "text"}`, `{"answer": <JSON>}` for a structured question, or `{"fields": [[name,
/// value], …]}` as the console's form sends it.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerBody {
    answer: Option<serde_json::Value>,
    fields: Option<Vec<(String, String)>>,
}

/// `POST …/questions/{id}/answer`: answers as the signed-in user. Needs the role `answerer`.
pub(crate) async fn answer(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<PageCtx>,
    Path((name, id)): Path<(String, String)>,
    body: Body,
) -> Reply {
    if let Err(why) = ctx.role.require(Role::Answerer, "answering a question") {
        return Err(forbidden_role(&why));
    }
    let (store, qid) = app.known_artifact(true, &name, &id, QUESTION_ID).await?;
    let body = read_body(body, &format!("; answers are limited to {MAX_ANSWER_BYTES} bytes")).await?;
    let input = match serde_json::from_slice::<AnswerBody>(&body) {
        Ok(AnswerBody { answer: Some(serde_json::Value::String(text)), fields: None }) => AnswerInput::Text(text),
        Ok(AnswerBody { answer: Some(value), fields: None }) => AnswerInput::Json(value),
        Ok(AnswerBody { answer: None, fields: Some(pairs) }) => AnswerInput::Form(pairs),
        Ok(_) => {
            return Err(error(
                true,
                StatusCode::BAD_REQUEST,
                "give either \"answer\" or \"fields\" (not both, not neither)",
            ));
        }
        Err(e) => {
            return Err(error(
                true,
                StatusCode::BAD_REQUEST,
                &format!(
                    "the body must be JSON {{\"answer\": \"…\"}} (or a JSON value for a structured question): {e}"
                ),
            ));
        }
    };
    let size = match &input {
        AnswerInput::Text(t) => t.len(),
        _ => body.len(),
    };
    if size > MAX_ANSWER_BYTES {
        return Err(error(
            true,
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "the answer is {size} bytes; answers are limited to {MAX_ANSWER_BYTES} bytes (64 KiB): shorten it, or put long material in the repository and point the agent at it"
            ),
        ));
    }
    // Routing: only an addressee answers, by name or a group (sett.yml's, or the users file's).
    Ok(match answer_question_as(&store, &qid, &input, &ctx.user, &ctx.groups).await {
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
    })
}
