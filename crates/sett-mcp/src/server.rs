//! The MCP handler: Sett's tools (forage, workflows, artifacts, questions, answer, status,
//! verify), its resources (`sett://<instance>/artifacts/<id>`, `sett://<instance>/questions`)
//! and the notifications a subscribed client gets when a question is asked or answered. Every
//! tool calls the library functions the CLI and the console use; errors carry the message the
//! CLI would print.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    Implementation, ListResourceTemplatesResult, ListResourcesResult, PaginatedRequestParams, ProtocolVersion,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource, ResourceContents, ResourceTemplate,
    ResourceUpdatedNotificationParam, ServerCapabilities, ServerConfig, SubscribeRequestParams,
    UnsubscribeRequestParams,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, Json, RoleServer, ServerHandler, tool, tool_handler, tool_router};
use sett_console::auth::Role;
use sett_core::ArtifactId;
use sett_core::answer_spec::StructuredQuestion;
use sett_ops::answer::{AnswerError, answer_question_as};
use sett_ops::forage::{ForageError, start_workflow};
use sett_ops::resolve::{IdQuery, Resolution, resolve_artifact};
use sett_store::Store;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::follow::QuestionEvent;
use crate::views::*;
use crate::{Config, MAX_ANSWER_BYTES, Operator};

/// What every session of one server shares.
pub(crate) struct Shared {
    pub(crate) store: Store,
    pub(crate) config: Config,
    pub(crate) questions: broadcast::Sender<QuestionEvent>,
    /// Cancelled when the server stops: ends every follower.
    pub(crate) shutdown: CancellationToken,
}

/// One client session (stdio has one; streamable HTTP one per `Mcp-Session-Id`).
#[derive(Clone)]
pub struct SettMcp {
    shared: Arc<Shared>,
    /// The resource URIs this session subscribed to.
    subscriptions: Arc<Mutex<HashSet<String>>>,
    /// The followers of the workflows this session subscribed to (by goal URI), stopped on
    /// unsubscribe.
    workflow_followers: Arc<Mutex<HashMap<String, CancellationToken>>>,
    tool_router: ToolRouter<Self>,
}

fn store_error(what: &str, e: impl std::fmt::Display) -> ErrorData {
    ErrorData::internal_error(format!("{what}: {e}"), None)
}

impl SettMcp {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            subscriptions: Arc::default(),
            workflow_followers: Arc::default(),
            tool_router: Self::tool_router(),
        }
    }

    fn lock_followers(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.workflow_followers.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn store(&self) -> &Store {
        &self.shared.store
    }

    fn instance(&self) -> String {
        self.shared.store.instance().to_string()
    }

    /// The artifact `raw` names: a full id, or a prefix matching exactly one artifact.
    async fn resolve(&self, raw: &str) -> Result<ArtifactId, ErrorData> {
        let query = IdQuery::parse(raw).map_err(|e| ErrorData::invalid_params(e, None))?;
        let instance = self.instance();
        match resolve_artifact(self.store(), &query).await.map_err(|e| store_error("reading the artifacts", e))? {
            Resolution::One(id) => Ok(id),
            Resolution::None => Err(ErrorData::resource_not_found(
                format!(
                    "no artifact matches '{raw}' in instance '{instance}'; list workflows with the list_workflows tool"
                ),
                None,
            )),
            Resolution::Ambiguous(ids) => Err(ambiguous(raw, &ids)),
        }
    }

    /// The token's user over HTTP; `None` over stdio (whoever launched the server).
    fn user<'c>(&self, ctx: &'c RequestContext<RoleServer>) -> Option<&'c sett_console::auth::User> {
        ctx.extensions.get::<hyper::http::request::Parts>().and_then(|p| p.extensions.get::<Operator>()).map(|o| &o.0)
    }

    /// Who an answer is recorded under: the token's operator over HTTP, else the configured one.
    fn operator(&self, ctx: &RequestContext<RoleServer>) -> String {
        self.user(ctx).map_or_else(|| self.shared.config.operator.clone(), |u| u.name().to_owned())
    }

    /// Refuses `what` when the token's role (users file `role=`) is below `needed`. Over stdio
    /// there is no token: the server's `allow_*` flags alone decide.
    fn require_role(&self, ctx: &RequestContext<RoleServer>, needed: Role, what: &str) -> Result<(), ErrorData> {
        match self.user(ctx) {
            Some(u) => u.role().require(needed, what).map_err(|why| ErrorData::invalid_request(why, None)),
            None => Ok(()),
        }
    }

    async fn artifact_detail(&self, id: &ArtifactId) -> Result<ArtifactDetail, ErrorData> {
        let instance = self.instance();
        let view = sett_console::data::artifact(self.store(), id)
            .await
            .map_err(|e| store_error("reading the artifact", e))?
            .ok_or_else(|| ErrorData::resource_not_found(format!("no artifact {id} in instance '{instance}'"), None))?;
        Ok(ArtifactDetail {
            artifact: ArtifactOut::of(&instance, &view.artifact),
            claim: view.claim.as_ref().map(ClaimOut::of),
            answer: view.answer.as_ref().map(AnswerRecordOut::of),
            open_question: view.open_question,
        })
    }

    async fn question_list(&self) -> Result<QuestionList, ErrorData> {
        let instance = self.instance();
        let questions = sett_console::data::open_questions(self.store())
            .await
            .map_err(|e| store_error(&format!("reading the open questions of '{instance}'"), e))?;
        Ok(QuestionList {
            questions: questions
                .into_iter()
                .map(|q| {
                    let spec = StructuredQuestion::from_payload(&q.text).ok().flatten();
                    QuestionOut {
                        question: spec.as_ref().map_or_else(|| q.text.clone(), |s| s.question.clone()),
                        answer_spec: spec.as_ref().and_then(|s| serde_json::to_value(s).ok()),
                        uri: artifact_uri(&instance, &q.id),
                        id: q.id,
                        short_id: q.short_id,
                        agent: q.agent,
                        claim_id: q.claim_id,
                        asked_at_ms: q.asked_at_ms,
                        age_ms: q.age_ms,
                        deadline_ms: q.deadline_ms,
                        time_left_ms: q.time_left_ms,
                        kind: q.kind.to_string(),
                        approval: spec.as_ref().and_then(|s| s.subject.clone()),
                        text: q.text,
                        goal_id: q.goal.as_ref().map(|g| g.id.clone()),
                        goal: q.goal.map(|g| g.excerpt),
                    }
                })
                .collect(),
            instance,
        })
    }

    /// Sends this session the notifications question events call for, until the client goes.
    pub(crate) fn forward_question_events(&self, peer: rmcp::Peer<RoleServer>) {
        let mut events = self.shared.questions.subscribe();
        let subscriptions = self.subscriptions.clone();
        let questions_uri = questions_uri(&self.instance());
        let instance = self.instance();
        tokio::spawn(async move {
            loop {
                let event = match events.recv().await {
                    Ok(e) => e,
                    // Fell behind: the list changed anyway; tell the client once.
                    Err(broadcast::error::RecvError::Lagged(_)) => QuestionEvent::Lagged,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let wanted: Vec<String> = {
                    let subs = subscriptions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    let mut uris = vec![questions_uri.clone()];
                    if let Some(q) = event.question() {
                        uris.push(artifact_uri(&instance, &q.to_string()));
                    }
                    uris.into_iter().filter(|u| subs.contains(u)).collect()
                };
                for uri in wanted {
                    if peer.notify_resource_updated(ResourceUpdatedNotificationParam::new(uri)).await.is_err() {
                        return;
                    }
                }
                if peer.notify_resource_list_changed().await.is_err() {
                    return;
                }
            }
        });
    }
}

fn ambiguous(raw: &str, ids: &[ArtifactId]) -> ErrorData {
    let list = ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    ErrorData::invalid_params(format!("'{raw}' matches several artifacts ({list}); give more of the id"), None)
}

#[tool_router]
impl SettMcp {
    #[tool(
        description = "Start a workflow: write a GoalDefined artifact with the goal's text, as `sett forage` does. The agents bid on it; follow it with show_workflow and list_questions. Needs `sett mcp --allow-actions`.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn forage(
        &self,
        Parameters(input): Parameters<ForageInput>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<Started>, ErrorData> {
        let instance = self.instance();
        if !self.shared.config.allow_actions {
            return Err(ErrorData::invalid_request(
                format!(
                    "starting workflows is not allowed: this MCP server is read-only. Restart it with 'sett mcp --allow-actions -n {instance}' to let MCP clients start workflows, or run 'sett forage --goal \"...\" -n {instance}'"
                ),
                None,
            ));
        }
        self.require_role(&ctx, Role::Operator, "starting a workflow")?;
        match start_workflow(self.store(), &input.goal).await {
            Ok(s) => Ok(Json(Started {
                uri: artifact_uri(&instance, &s.id.to_string()),
                id: s.id.to_string(),
                event_id: s.event_id,
                instance,
            })),
            Err(ForageError::Empty) => Err(ErrorData::invalid_params(
                "the goal is empty: pass goal: \"what the agents should achieve\"".to_owned(),
                None,
            )),
            Err(e) => Err(store_error("writing the goal", e)),
        }
    }

    #[tool(
        description = "List the workflows (one per goal), newest first, with their state: running, waiting_for_human, complete or failed.",
        annotations(read_only_hint = true)
    )]
    async fn list_workflows(
        &self,
        Parameters(input): Parameters<ListWorkflowsInput>,
    ) -> Result<Json<WorkflowList>, ErrorData> {
        let instance = self.instance();
        let flows = sett_console::data::workflows(self.store())
            .await
            .map_err(|e| store_error(&format!("reading the workflows of '{instance}'"), e))?;
        let total = flows.len();
        let limit = input.limit.unwrap_or(50) as usize;
        let workflows = flows
            .iter()
            .take(limit)
            .map(|w| {
                let row = sett_console::data::WorkflowRow::of(w);
                WorkflowSummary {
                    goal_id: row.goal_id.to_string(),
                    goal: row.goal,
                    state: state_name(row.state),
                    created_at_ms: row.created_at_ms,
                    updated_at_ms: row.updated_at_ms,
                    agents: row.agents.into_iter().collect(),
                    artifacts: row.artifacts,
                    claims: row.claims,
                }
            })
            .collect();
        Ok(Json(WorkflowList { instance, total, workflows }))
    }

    #[tool(
        description = "Show one workflow: its state, every artifact (goal first) and every claim, oldest first.",
        annotations(read_only_hint = true)
    )]
    async fn show_workflow(
        &self,
        Parameters(input): Parameters<ShowWorkflowInput>,
    ) -> Result<Json<WorkflowDetail>, ErrorData> {
        let goal = self.resolve(&input.goal).await?;
        let instance = self.instance();
        let flows = sett_console::data::workflows(self.store())
            .await
            .map_err(|e| store_error(&format!("reading the workflows of '{instance}'"), e))?;
        let Some(w) = flows.into_iter().find(|w| w.goal.id == goal) else {
            return Err(ErrorData::invalid_params(
                format!("artifact {goal} is not the goal of a workflow; list them with the list_workflows tool"),
                None,
            ));
        };
        Ok(Json(WorkflowDetail {
            goal_id: w.goal.id.to_string(),
            goal: w.goal.payload.clone(),
            state: state_name(w.state),
            artifacts: w.artifacts.iter().map(|a| ArtifactOut::of(&instance, a)).collect(),
            claims: w.claims.iter().map(ClaimOut::of).collect(),
            instance,
        }))
    }

    #[tool(
        description = "Get one artifact (payload, producer, sources, claim) and, for a question, its answer record. The same content as the resource sett://<instance>/artifacts/<id>.",
        annotations(read_only_hint = true)
    )]
    async fn get_artifact(
        &self,
        Parameters(input): Parameters<GetArtifactInput>,
    ) -> Result<Json<ArtifactDetail>, ErrorData> {
        let id = self.resolve(&input.id).await?;
        Ok(Json(self.artifact_detail(&id).await?))
    }

    #[tool(
        description = "List the questions agents are waiting on, oldest first, with the asking agent, the deadline and the workflow's goal. Subscribe to the resource sett://<instance>/questions to be told when one is asked.",
        annotations(read_only_hint = true)
    )]
    async fn list_questions(&self, Parameters(_): Parameters<NoInput>) -> Result<Json<QuestionList>, ErrorData> {
        Ok(Json(self.question_list().await?))
    }

    #[tool(
        description = "Answer an agent's question; the agent resumes with the answer. A question with an answer_spec takes one of its options (as `answer`, by text or number, or as `json`) or its form's object (`json`); a wrong answer is refused with every problem listed. Recorded with answered_by = this server's operator. Needs `sett mcp --allow-answers`.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn answer_question(
        &self,
        Parameters(input): Parameters<AnswerInput>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<AnsweredOut>, ErrorData> {
        let instance = self.instance();
        if !self.shared.config.allow_answers {
            return Err(ErrorData::invalid_request(
                format!(
                    "answering is not allowed: this MCP server is read-only. Restart it with 'sett mcp --allow-answers -n {instance}' to let MCP clients answer, or answer with 'sett answer {} \"...\" -n {instance}'",
                    input.question
                ),
                None,
            ));
        }
        self.require_role(&ctx, Role::Answerer, "answering a question")?;
        let answer = match (input.answer, input.json) {
            (Some(text), None) => sett_ops::answer::AnswerInput::Text(text),
            (None, Some(json)) => sett_ops::answer::AnswerInput::Json(json),
            _ => {
                return Err(ErrorData::invalid_params(
                    "give the answer as `answer` (text) or as `json` (a structured answer), not both".to_owned(),
                    None,
                ));
            }
        };
        let size = match &answer {
            sett_ops::answer::AnswerInput::Text(t) => t.len(),
            sett_ops::answer::AnswerInput::Json(v) => v.to_string().len(),
            sett_ops::answer::AnswerInput::Form(_) => 0,
        };
        if size > MAX_ANSWER_BYTES {
            return Err(ErrorData::invalid_params(
                format!("the answer is {size} bytes; at most {MAX_ANSWER_BYTES} are accepted"),
                None,
            ));
        }
        let query = IdQuery::parse(&input.question).map_err(|e| ErrorData::invalid_params(e, None))?;
        let qid = match sett_ops::answer::resolve_question(self.store(), &query)
            .await
            .map_err(|e| store_error("reading the questions", e))?
        {
            Resolution::One(id) => id,
            Resolution::None => {
                return Err(ErrorData::invalid_params(
                    format!(
                        "no question matches '{}' in instance '{instance}'\nList open questions with the list_questions tool",
                        input.question
                    ),
                    None,
                ));
            }
            Resolution::Ambiguous(ids) => return Err(ambiguous(&input.question, &ids)),
        };
        let operator = self.operator(&ctx);
        // Over HTTP the token's users-file groups count for routing, as in the console.
        let groups = self.user(&ctx).map(|u| u.groups().to_vec()).unwrap_or_default();
        match answer_question_as(self.store(), &qid, &answer, &operator, &groups).await {
            Ok(a) => Ok(Json(AnsweredOut {
                id: a.id.to_string(),
                question_id: a.question_id.to_string(),
                claim_id: a.claim_id.map(|c| c.to_string()),
                answered_by: a.answered_by,
            })),
            Err(e @ (AnswerError::Store(_) | AnswerError::Unexpected(_))) => {
                Err(ErrorData::internal_error(e.report(&instance), None))
            }
            Err(e) => Err(ErrorData::invalid_params(e.report(&instance), None)),
        }
    }

    #[tool(
        description = "Cancel a workflow, as `sett cancel`: end its claims and close its questions in one atomic step; its agents' running tools are stopped. Give its goal's id or the id of any artifact in it. Cancelling twice does nothing and says so. Needs `sett mcp --allow-actions`.",
        annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn cancel_workflow(
        &self,
        Parameters(input): Parameters<CancelInput>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<CancelledOut>, ErrorData> {
        use sett_ops::cancel::{CancelError, cancel_workflow};
        let instance = self.instance();
        if !self.shared.config.allow_actions {
            return Err(ErrorData::invalid_request(
                format!(
                    "cancelling workflows is not allowed: this MCP server is read-only. Restart it with 'sett mcp --allow-actions -n {instance}' to let MCP clients cancel, or run 'sett cancel {} -n {instance}'",
                    input.workflow
                ),
                None,
            ));
        }
        self.require_role(&ctx, Role::Operator, "cancelling a workflow")?;
        let id = self.resolve(&input.workflow).await?;
        let operator = self.operator(&ctx);
        match cancel_workflow(self.store(), &id, &operator, input.reason.as_deref()).await {
            Ok(c) => Ok(Json(CancelledOut {
                goal_id: c.goal_id.to_string(),
                already_cancelled: false,
                operator: c.operator,
                reason: c.reason,
                at_ms: c.at_ms,
                claims: c.claims.iter().map(ToString::to_string).collect(),
                questions: c.questions.iter().map(ToString::to_string).collect(),
                instance,
            })),
            Err(CancelError::AlreadyCancelled { goal, record }) => Ok(Json(CancelledOut {
                goal_id: goal.to_string(),
                already_cancelled: true,
                operator: record.operator,
                reason: record.reason,
                at_ms: record.at_ms,
                claims: Vec::new(),
                questions: Vec::new(),
                instance,
            })),
            Err(e @ CancelError::Ended { .. }) => Err(ErrorData::invalid_params(
                format!("{e}: there is nothing left to cancel\nSee how it went with 'sett watch -n {instance}'"),
                None,
            )),
            Err(e @ CancelError::NotFound(..)) => {
                Err(ErrorData::resource_not_found(format!("{e}\nList artifacts with 'sett hoard -n {instance}'"), None))
            }
            Err(CancelError::Store(e)) => Err(store_error("cancelling the workflow", e)),
            Err(e) => Err(ErrorData::internal_error(e.to_string(), None)),
        }
    }

    #[tool(
        description = "The health of the instance, as `sett status`: running, degraded, stopped or destroying; components, claims by status, open questions, the ledger head, and what to do when unhealthy.",
        annotations(read_only_hint = true)
    )]
    async fn status(&self, Parameters(_): Parameters<NoInput>) -> Result<Json<StatusOut>, ErrorData> {
        use sett_ops::status::{PROBE_TIMEOUT, STUCK_AFTER, advice, instance_status};
        let r = instance_status(self.store(), sett_store::now_ms(), STUCK_AFTER, PROBE_TIMEOUT)
            .await
            .map_err(|e| store_error("reading the status", e))?;
        Ok(Json(StatusOut {
            advice: advice(&r),
            instance: r.instance,
            health: r.health.as_str().to_owned(),
            claims_by_status: r.claims_by_status,
            open_questions: r.open_questions,
            stuck_claims: r.stuck_claims,
            ledger_head: r.ledger_head,
            components: r
                .components
                .into_iter()
                .map(|c| ComponentOut {
                    name: c.name,
                    healthy: c.healthy,
                    problem: c.problem,
                    pid: c.pid,
                    heartbeat_age_ms: c.heartbeat_age_ms,
                })
                .collect(),
        }))
    }

    #[tool(
        description = "Check the tamper-evident ledger, as `sett verify`: recompute every artifact hash and the event chain; return the head to record, or the first broken record.",
        annotations(read_only_hint = true)
    )]
    async fn verify(&self, Parameters(input): Parameters<VerifyInput>) -> Result<Json<VerifyOut>, ErrorData> {
        let head = match input.head.as_deref() {
            Some(raw) => Some(raw.parse::<sett_core::ledger::Head>().map_err(|e| {
                ErrorData::invalid_params(
                    format!("head '{raw}': {e} (expected <seq>:<hash>, as verify returns it)"),
                    None,
                )
            })?),
            None => None,
        };
        let instance = self.instance();
        let mut store = self.store().clone();
        let o = sett_ops::verify::verify(&mut store, head.as_ref())
            .await
            .map_err(|e| store_error(&format!("verifying instance '{instance}'"), e))?;
        Ok(Json(VerifyOut {
            intact: o.intact(),
            head: o.report.head.as_ref().map(ToString::to_string),
            broken_record: o.breach.as_ref().map(|b| b.record.clone()),
            problem: o.breach.as_ref().map(|b| b.problem.clone()),
            events: o.report.events,
            artifacts: o.report.artifacts,
            answers: o.report.answers,
            claims: o.report.claims,
            recorded_head_matches: o.report.recorded_head_matches,
            unverified_before: o.report.unverified_before(),
            instance,
        }))
    }
}

fn state_name(s: sett_console::data::WorkflowState) -> String {
    serde_json::to_value(s).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// `sett://<instance>/artifacts/<id>` → the id, for this server's instance.
fn parse_artifact_uri<'a>(uri: &'a str, instance: &str) -> Option<&'a str> {
    uri.strip_prefix("sett://")?.strip_prefix(instance)?.strip_prefix("/artifacts/")
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for SettMcp {
    fn get_info(&self) -> ServerConfig {
        let instance = self.instance();
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_resources_subscribe()
                .enable_resources_list_changed()
                .build(),
        )
        .with_server_info(Implementation::new("sett", env!("CARGO_PKG_VERSION")))
        .with_instructions(format!(
            "Sett instance '{instance}': start workflows of AI agents (forage{}), follow them (list_workflows, show_workflow, get_artifact), and answer the questions agents ask (list_questions, answer_question{}). Subscribe to {} to be told when a question is asked.",
            if self.shared.config.allow_actions { "" } else { ": disabled on this server" },
            if self.shared.config.allow_answers { "" } else { ": disabled on this server" },
            questions_uri(&instance)
        ))
    }

    /// The versions with the `initialize` handshake, whose `resources/subscribe` is how a
    /// client is told of new questions (2026-07-28 replaces it with `subscriptions/listen`,
    /// which this server does not implement yet).
    fn supported_protocol_versions(&self) -> std::borrow::Cow<'static, [ProtocolVersion]> {
        std::borrow::Cow::Borrowed(ProtocolVersion::known_up_to(&ProtocolVersion::V_2025_11_25))
    }

    async fn on_initialized(&self, ctx: rmcp::service::NotificationContext<RoleServer>) {
        self.forward_question_events(ctx.peer);
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let instance = self.instance();
        let mut resources = vec![
            Resource::new(questions_uri(&instance), "open-questions")
                .with_description("The questions agents are waiting on (JSON, as list_questions returns them)")
                .with_mime_type("application/json"),
        ];
        for q in self.question_list().await?.questions {
            resources.push(
                Resource::new(q.uri, format!("question {}", q.short_id))
                    .with_description(sett_core::text::excerpt(&q.text, 120))
                    .with_mime_type("application/json"),
            );
        }
        Ok(ListResourcesResult::with_all_items(resources))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let instance = self.instance();
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            ResourceTemplate::new(format!("sett://{instance}/artifacts/{{id}}"), "artifact")
                .with_description("One artifact with its claim and, for a question, its answer record (JSON)")
                .with_mime_type("application/json"),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let instance = self.instance();
        let uri = request.uri;
        let text = if uri == questions_uri(&instance) {
            serde_json::to_string_pretty(&self.question_list().await?)
        } else if let Some(raw) = parse_artifact_uri(&uri, &instance) {
            let id = ArtifactId::parse(raw)
                .map_err(|e| ErrorData::invalid_params(format!("{uri}: '{raw}' is not an artifact id ({e})"), None))?;
            serde_json::to_string_pretty(&self.artifact_detail(&id).await?)
        } else {
            return Err(ErrorData::resource_not_found(
                format!(
                    "unknown resource {uri}: this server serves sett://{instance}/artifacts/<id> and {}",
                    questions_uri(&instance)
                ),
                None,
            ));
        }
        .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        Ok(ReadResourceResult::new(vec![ResourceContents::text(text, uri).with_mime_type("application/json")]).into())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let instance = self.instance();
        let uri = request.uri;
        if uri != questions_uri(&instance) {
            let Some(raw) = parse_artifact_uri(&uri, &instance) else {
                return Err(ErrorData::resource_not_found(
                    format!(
                        "unknown resource {uri}: subscribe to {} or to sett://{instance}/artifacts/<id>",
                        questions_uri(&instance)
                    ),
                    None,
                ));
            };
            let id = ArtifactId::parse(raw)
                .map_err(|e| ErrorData::invalid_params(format!("{uri}: '{raw}' is not an artifact id ({e})"), None))?;
            let artifact =
                self.store().get_artifact(&id).await.map_err(|e| store_error("reading the artifact", e))?.ok_or_else(
                    || ErrorData::resource_not_found(format!("no artifact {id} in instance '{instance}'"), None),
                )?;
            // A goal: follow its workflow until it ends.
            let is_goal = artifact.source_artifacts.is_empty()
                && artifact.claim_id.is_none()
                && artifact.structural_type == sett_core::StructuralType::Standard;
            if is_goal {
                let stop = self.shared.shutdown.child_token();
                let previous = self.lock_followers().insert(uri.clone(), stop.clone());
                if let Some(p) = previous {
                    p.cancel();
                }
                tokio::spawn(crate::follow::follow_workflow(
                    self.store().clone(),
                    artifact,
                    ctx.peer,
                    uri.clone(),
                    stop,
                ));
            }
        }
        self.subscriptions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(uri);
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.subscriptions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&request.uri);
        if let Some(stop) = self.lock_followers().remove(&request.uri) {
            stop.cancel();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_uris_name_this_instance_only() {
        assert_eq!(parse_artifact_uri("sett://prod/artifacts/0190c2b4", "prod"), Some("0190c2b4"));
        assert_eq!(parse_artifact_uri("sett://prod/artifacts/", "prod"), Some(""));
        assert_eq!(parse_artifact_uri("sett://staging/artifacts/0190c2b4", "prod"), None);
        assert_eq!(parse_artifact_uri("sett://prod2/artifacts/0190c2b4", "prod"), None);
        assert_eq!(parse_artifact_uri("sett://prod/questions", "prod"), None);
        assert_eq!(parse_artifact_uri("http://prod/artifacts/x", "prod"), None);
    }
}
