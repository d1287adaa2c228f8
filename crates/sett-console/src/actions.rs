//! The workflow actions an operator takes from the console: cancel, pause, resume, retry
//! (`POST …/workflows/{id}/{verb}`) and "fork from here" (`POST …/artifacts/{id}/fork`), each
//! through the `sett_ops` function the CLI calls, recorded under the operator's name.

use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;
use sett_core::ArtifactId;
use sett_core::metrics as m;
use sett_ops::fork::ForkInput;
use sett_store::Store;

use crate::api::{MAX_ANSWER_BYTES, read_body};
use crate::app::App;
use crate::auth::Role;
use crate::html::PageCtx;
use crate::respond::{error, forbidden_role, json_resp, store_error};

/// The largest action reason accepted, in bytes (it is recorded in the ledger).
const MAX_REASON_BYTES: usize = 4 * 1024;

/// What an operator can do to a workflow from the console (`POST …/workflows/{id}/{action}`),
/// or to one of its artifacts (`POST …/artifacts/{id}/fork`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Cancel,
    Pause,
    Resume,
    Retry,
    /// "Fork from here": a branch from the artifact (not a workflow verb: it names an artifact).
    Fork,
}

impl Action {
    /// The workflow verbs (`…/workflows/{id}/{verb}`).
    pub(crate) const NAMES: [&'static str; 4] = ["cancel", "pause", "resume", "retry"];

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

/// Reads a JSON request body of at most [`crate::api::MAX_BODY_BYTES`]; an empty body is `T::default()`.
async fn json_body<T: serde::de::DeserializeOwned + Default>(body: Body, shape: &str) -> Result<T, Response> {
    let body = read_body(body, "").await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&body)
        .map_err(|e| error(true, StatusCode::BAD_REQUEST, &format!("the body must be JSON {shape} (or empty): {e}")))
}

/// Counts an action's outcome by its response status.
fn count_action(action: Action, resp: &Response, no_op: bool) {
    let outcome = match resp.status() {
        StatusCode::OK if no_op => "no_op",
        StatusCode::OK => "done",
        StatusCode::CONFLICT => "refused",
        StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND | StatusCode::PAYLOAD_TOO_LARGE => "rejected",
        _ => return,
    };
    metrics::counter!(m::CONSOLE_ACTIONS, "action" => action.as_str(), "outcome" => outcome).increment(1);
}

/// `POST /api/v1/instances/{name}/workflows/{id}/{verb}`: the action on the workflow `id` (its
/// goal or any artifact in it) as the signed-in operator, through the `sett_ops` function the
/// CLI calls. Needs the role `operator`.
pub(crate) async fn workflow(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<PageCtx>,
    Path((name, id, verb)): Path<(String, String, String)>,
    body: Body,
) -> Response {
    match Action::parse(&verb) {
        Some(action) => run(&app, &ctx, body, &name, &id, action).await,
        None => error(
            true,
            StatusCode::NOT_FOUND,
            &format!(
                "no workflow action '{verb}'; the actions are {} (and POST …/artifacts/{{id}}/fork)",
                Action::NAMES.join(", ")
            ),
        ),
    }
}

/// `POST /api/v1/instances/{name}/artifacts/{id}/fork`: "fork from here". Needs the role `operator`.
pub(crate) async fn fork_from(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<PageCtx>,
    Path((name, id)): Path<(String, String)>,
    body: Body,
) -> Response {
    run(&app, &ctx, body, &name, &id, Action::Fork).await
}

async fn run(app: &App, ctx: &PageCtx, body: Body, name: &str, id: &str, action: Action) -> Response {
    if let Err(why) = ctx.role.require(Role::Operator, action.doing()) {
        return forbidden_role(&why);
    }
    let (resp, no_op) = act(app, ctx, body, name, id, action).await;
    count_action(action, &resp, no_op);
    resp
}

/// Runs `action`; the response and whether it was a no-op (cancelled twice).
async fn act(app: &App, ctx: &PageCtx, body: Body, name: &str, id: &str, action: Action) -> (Response, bool) {
    let how = if action == Action::Fork {
        "name the artifact to fork from by its full id (the 'id' of GET …/artifacts/{id})"
    } else {
        "name the workflow by the full id of its goal or of any artifact in it (the 'goal_id' field of GET …/workflows)"
    };
    let (store, target) = match app.known_artifact(true, name, id, how).await {
        Ok(found) => found,
        Err(r) => return (r, false),
    };
    let shape = if action == Action::Fork {
        r#"{"payload": "…"} or {"answer": "…"}, with an optional "reason""#
    } else {
        r#"{"reason": "…"}"#
    };
    let body: ActionBody = match json_body(body, shape).await {
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
fn done(action: &str, record: impl serde::Serialize) -> (Response, bool) {
    let mut doc = json!(record);
    doc["action"] = json!(action);
    (json_resp(StatusCode::OK, doc), false)
}

/// A target that names no artifact: 404 saying where the workflows are listed.
fn no_such_target(store: &Store, e: &dyn std::fmt::Display) -> (Response, bool) {
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
) -> (Response, bool) {
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

async fn retry(store: &Store, target: &ArtifactId, operator: &str, reason: Option<&str>) -> (Response, bool) {
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
) -> (Response, bool) {
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

async fn cancel(store: &Store, target: &ArtifactId, operator: &str, reason: Option<&str>) -> (Response, bool) {
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
