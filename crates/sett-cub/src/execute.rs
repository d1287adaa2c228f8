//! Executing one grant `(claim, seq)`: take it once, assemble the tool's stdin, run the tool
//! under the contract's limits, and write exactly ONE artifact — the tool's output (or its
//! Question), or a `ToolExecutionFailure`. The artifact id is derived from `(claim, seq)`, so a
//! retry after a crash is refused as a duplicate instead of producing a twin. The daemon and the
//! worker process (`sett-cub --execute-claim`) share this code.

use std::time::{Duration, Instant};

use backon::Retryable;
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceState};
use sett_core::claim::Grant;
use sett_core::failure::{FailurePayload, ToolRunEnd};
use sett_core::metrics::{TOOL_EXECUTIONS, TOOL_SECONDS};
use sett_core::record::ExecutionRecord;
use sett_core::tool::{QuestionAnswer, ToolInput, ToolOutput, looks_like_commit_hash, parse_tool_output};
use sett_core::trace::{OTEL_TARGET, SpanSubject, TraceId, traceparent, workflow_trace};
use sett_core::{Artifact, ArtifactId, Claim, ClaimId, ClaimStatus, ClaimType, StructuralType};
use sett_store::{CreateOutcome, Store};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::process::{self, Captured, Ended, EnvIdentity, OUTPUT_CAP};
use crate::{CubError, CubSettings, context};

/// The artifact type of every failed run.
pub const FAILURE_TYPE: &str = "ToolExecutionFailure";

/// How much of stdout/stderr a Failure artifact (and a log line) keeps.
const TAIL: usize = 4 * 1024;

/// How long `git cat-file` may take.
const GIT_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a write that lost a version race is retried with the next version.
const VERSION_ATTEMPTS: usize = 3;

/// How long blackboard calls are retried while Redis fails (a failover, a restart) before the
/// grant is taken. Afterwards they are retried until the grant's deadline: giving up on a taken
/// grant loses it (nobody else may run it), so the cub waits out the failover instead.
const PATIENCE: Duration = Duration::from_secs(30);

/// The longest pause between two attempts of a failing blackboard call.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The `outcome` label of a tool run stopped because its workflow was cancelled.
const CANCELLED: &str = "cancelled";

/// What became of a grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutionOutcome {
    /// Not executed: the claim is unknown or final, the grant is not this agent's current one,
    /// or it was taken before (a redelivered grant, a restart, a second process).
    Skipped { reason: String },
    /// The tool succeeded; its artifact (any structural type but Failure, a Question included)
    /// is written.
    Produced { artifact_id: ArtifactId, structural_type: StructuralType },
    /// The run failed; a `ToolExecutionFailure` artifact is written.
    Failed { artifact_id: ArtifactId, reason: String },
    /// The workflow was cancelled while the tool ran: it was stopped and nothing is written
    /// (the claim is terminated already).
    Cancelled,
}

impl ExecutionOutcome {
    /// A worker process's exit code: 1 when it wrote a Failure, else 0.
    pub fn exit_code(&self) -> u8 {
        match self {
            // Skipped: another process holds the grant (or it is no longer current); that
            // process reports the outcome, so this worker did nothing wrong.
            Self::Produced { .. } | Self::Skipped { .. } | Self::Cancelled => 0,
            Self::Failed { .. } => 1,
        }
    }
}

/// Why a run failed, as written into the Failure artifact's payload.
#[derive(Debug)]
struct Failure {
    reason: String,
    exit_code: Option<i32>,
    stdout_tail: String,
    stderr_tail: String,
    /// The `outcome` label of the executions metric.
    outcome: &'static str,
}

impl Failure {
    fn plain(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            exit_code: None,
            stdout_tail: String::new(),
            stderr_tail: String::new(),
            outcome: "failure",
        }
    }

    fn of_run(reason: String, exit_code: Option<i32>, out: &Captured, err: &Captured, outcome: &'static str) -> Self {
        Self { reason, exit_code, stdout_tail: out.tail(TAIL), stderr_tail: err.tail(TAIL), outcome }
    }
}

/// Executes grant `(claim_id, seq)` for `cub`'s agent. `cancel` kills a running tool (shutdown
/// after the grace period); the kill is reported as a Failure. Errors are returned only when
/// the blackboard cannot be read before the grant is taken, or when not even a Failure can be
/// written afterwards.
pub async fn execute_grant(
    store: &Store,
    cub: &CubSettings,
    claim_id: ClaimId,
    seq: u64,
    cancel: CancellationToken,
) -> Result<ExecutionOutcome, CubError> {
    execute_grant_stoppable(store, cub, claim_id, seq, cancel, CancellationToken::new()).await
}

/// [`execute_grant`], also ended by `stop` (the grant's workflow was cancelled): the tool gets
/// SIGTERM, SIGKILL after `process::STOP_GRACE`, and nothing is written.
pub async fn execute_grant_stoppable(
    store: &Store,
    cub: &CubSettings,
    claim_id: ClaimId,
    seq: u64,
    cancel: CancellationToken,
    stop: CancellationToken,
) -> Result<ExecutionOutcome, CubError> {
    execute(store, cub, claim_id, seq, None, cancel, stop).await
}

/// [`execute_grant_stoppable`] for a grant announced by its `claim_granted` event, which names
/// the claim's artifact: the tool's target is read in the same round trip as the claim and the
/// take (issue 29: one round trip less per grant), instead of after them.
pub async fn execute_announced_grant(
    store: &Store,
    cub: &CubSettings,
    claim_id: ClaimId,
    seq: u64,
    artifact_id: ArtifactId,
    cancel: CancellationToken,
    stop: CancellationToken,
) -> Result<ExecutionOutcome, CubError> {
    execute(store, cub, claim_id, seq, Some(artifact_id), cancel, stop).await
}

/// Executes grant `(claim_id, seq)`; `announced_target` is the claim's artifact when the caller
/// knows it (from the grant's event), read with the claim.
async fn execute(
    store: &Store,
    cub: &CubSettings,
    claim_id: ClaimId,
    seq: u64,
    announced_target: Option<ArtifactId>,
    cancel: CancellationToken,
    stop: CancellationToken,
) -> Result<ExecutionOutcome, CubError> {
    let agent = &cub.agent.name;
    let skip = |reason: &str| {
        tracing::info!(%reason, "grant skipped");
        Ok(ExecutionOutcome::Skipped { reason: reason.to_owned() })
    };
    let before_take = Instant::now() + PATIENCE;
    let now = sett_store::now_ms();
    let record = ExecutionRecord {
        agent: Some(agent.clone()),
        pid: Some(std::process::id()),
        worker: cub.worker_mode,
        taken_at_ms: now,
        taken_at_us: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64),
    };
    // The take travels with the claim read (one round trip instead of two). Taking a grant that
    // turns out superseded or final is harmless: the record only says the grant was taken, and
    // such a grant is never run by anyone.
    // The same record on every attempt: an attempt whose reply was lost (the HSETNX took
    // effect, the connection dropped) is recognised as ours instead of "taken before", which
    // would leave the grant to nobody (found by the cluster failover soak).
    // The target too, when the grant's event named it: a read that fails here is made again
    // below, with the claim's own artifact id.
    let announced = async {
        match announced_target {
            Some(id) => store.get_artifact(&id).await.ok().flatten(),
            None => None,
        }
    };
    let (claim, first_take, announced) = tokio::join!(
        patiently(before_take, &cancel, || store.get_claim(&claim_id)),
        store.take_grant(&claim_id, seq, &record),
        announced
    );
    let Some(claim) = claim? else {
        return skip("the claim does not exist");
    };
    if claim.status.is_final() {
        return skip("the claim is final");
    }
    let Some(grant) = claim.grants.get(agent).cloned() else {
        return skip("the claim has no grant for this agent");
    };
    if grant.seq != seq {
        return skip("the grant was superseded");
    }
    let until = grant_patience(grant.deadline_ms, now);
    let taken = match first_take {
        Ok(taken) => taken,
        Err(_) => patiently(until, &cancel, || store.take_grant(&claim_id, seq, &record)).await?,
    };
    if !taken {
        return skip("the grant was taken before");
    }
    tracing::info!(claim_type = %grant.claim_type, "grant taken; running the tool");

    let started = Instant::now();
    let output_id = ArtifactId::grant_output(&claim_id, seq);
    // The target is read once, here: the span, the tool's input and a versioned output use it
    // (an artifact never changes).
    let target = match announced {
        Some(target) if target.id == claim.artifact_id => Ok(target),
        _ => patiently(until, &cancel, || load_target(store, &claim)).await,
    };
    let (span, traceparent) = tool_run_span(store, cub, &claim, target.as_ref(), seq, output_id).await;
    let run = run_tool(store, cub, &claim, &grant, &target, traceparent.as_deref(), until, &cancel, &stop)
        .instrument(span.clone())
        .await;
    let outcome_label = match &run {
        Ok(o) if o.structural_type == StructuralType::Question => "question",
        Ok(_) => "success",
        Err(f) => f.outcome,
    };
    span.set_attribute("sett.outcome", outcome_label);
    if let Err(f) = &run {
        span.set_status(opentelemetry::trace::Status::error(f.reason.clone()));
    }
    drop(span);
    metrics::counter!(TOOL_EXECUTIONS, "agent" => agent.to_string(), "outcome" => outcome_label).increment(1);
    metrics::histogram!(TOOL_SECONDS, "agent" => agent.to_string()).record(started.elapsed().as_secs_f64());
    if outcome_label == CANCELLED {
        tracing::info!("the workflow was cancelled: the tool was stopped and nothing is written");
        return Ok(ExecutionOutcome::Cancelled);
    }

    let failure = match (run, &target) {
        (Ok(output), Ok(target)) => {
            match patiently(until, &cancel, || {
                write_output(store, cub, &claim, &grant, target, output_id, output.clone())
            })
            .await
            {
                Ok(structural_type) => {
                    tracing::info!(output_artifact_id = %output_id, %structural_type, elapsed_ms = started.elapsed().as_millis() as u64, "tool output written");
                    return Ok(ExecutionOutcome::Produced { artifact_id: output_id, structural_type });
                }
                Err(e) => Failure::plain(format!("the tool's output could not be written: {e}")),
            }
        }
        (Ok(_), Err(e)) => Failure::plain(format!("cannot assemble the tool's input from the blackboard: {e}")),
        (Err(f), _) => f,
    };
    tracing::warn!(reason = %failure.reason, exit_code = ?failure.exit_code, elapsed_ms = started.elapsed().as_millis() as u64, "tool execution failed");
    let artifact = failure_artifact(cub, &claim, output_id, &failure);
    match patiently(until, &cancel, || store.create_artifact(&artifact)).await {
        Ok(CreateOutcome::Created { .. } | CreateOutcome::IdExists) => {
            Ok(ExecutionOutcome::Failed { artifact_id: output_id, reason: failure.reason })
        }
        Ok(outcome) => Err(CubError::Record {
            claim: claim_id.to_string(),
            seq,
            source: Box::new(CubError::Refused { what: "Failure artifact", outcome }),
        }),
        Err(source) => Err(CubError::Record { claim: claim_id.to_string(), seq, source: Box::new(source) }),
    }
}

/// How often a worker (`sett-cub --execute-claim`, which reads no event stream) looks whether
/// its claim's workflow was cancelled.
const CANCEL_POLL: Duration = Duration::from_millis(500);

/// Cancels `stop` once `claim` is fenced by a cancellation (`sett cancel`); for workers, which
/// read no event stream. Returns then, or never: the caller aborts it when the grant is done.
/// A failed read is retried at the next poll.
pub async fn stop_when_cancelled(store: Store, claim: ClaimId, stop: CancellationToken) {
    let id = claim.to_string();
    loop {
        match store.fenced(&id).await {
            Ok(Some(_)) => {
                tracing::info!("the workflow was cancelled; stopping the tool");
                stop.cancel();
                return;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot tell whether the workflow was cancelled; asking again"),
        }
        tokio::time::sleep(CANCEL_POLL).await;
    }
}

/// Until when calls for a taken grant are retried: its deadline (the orchestrator fails the claim
/// then), or [`PATIENCE`] from `now_ms` when that is later or there is no deadline.
fn grant_patience(deadline_ms: Option<i64>, now_ms: i64) -> Instant {
    let left = deadline_ms.map_or(0, |d| u64::try_from(d - now_ms).unwrap_or(0));
    Instant::now() + Duration::from_millis(left).max(PATIENCE)
}

/// Runs `call` again while it fails transiently (Redis unreachable or failing over, a write not
/// confirmed by a replica) until `until` or until `cancel`; every call passed here is
/// idempotent (reads, the grant take with one record, writes under deterministic ids).
async fn patiently<T, E, F, Fut>(until: Instant, cancel: &CancellationToken, mut call: F) -> Result<T, CubError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Into<CubError>,
{
    let retried = || {
        let attempt = call();
        async move { attempt.await.map_err(Into::into) }
    };
    retried
        .retry(sett_store::backoff(MAX_BACKOFF))
        .sleep(sett_store::CancellableSleep(cancel.clone()))
        .when(|e: &CubError| e.is_transient() && Instant::now() < until && !cancel.is_cancelled())
        .notify(|e, pause| tracing::warn!(error = %e, retry_in = ?pause, "a blackboard call failed; retrying"))
        .await
}

/// Builds the input, runs the tool and validates what it printed.
/// The `tool_run` span of grant `(claim, seq)` in its workflow's trace, a child of the grant's
/// span (which the orchestrator records from the ledger under the same derived id), and the
/// `TRACEPARENT` the tool gets so that its own spans join it. A disabled span and no
/// `TRACEPARENT` when traces are off (or the goal cannot be read: tracing never fails a run).
async fn tool_run_span(
    store: &Store,
    cub: &CubSettings,
    claim: &Claim,
    target: Result<&Artifact, &CubError>,
    seq: u64,
    output: ArtifactId,
) -> (tracing::Span, Option<String>) {
    if !cub.traces {
        return (tracing::Span::none(), None);
    }
    let goal = match target {
        Ok(target) => store.goal_of(target.clone()).await.map_err(|e| e.to_string()),
        Err(CubError::MissingArtifact(_)) => Ok(claim.artifact_id),
        Err(e) => Err(e.to_string()),
    };
    let goal = match goal {
        Ok(g) => g,
        Err(e) => {
            tracing::warn!(error = %e, "traces: cannot find the claim's goal; this run is not traced");
            return (tracing::Span::none(), None);
        }
    };
    let span = tracing::info_span!(
        target: OTEL_TARGET,
        "tool_run",
        sett.claim_id = %claim.id,
        sett.artifact_id = %claim.artifact_id,
        sett.goal_id = %goal,
        sett.agent = %cub.agent.name,
        sett.seq = seq,
        sett.output_artifact = %output,
        sett.worker = cub.worker_mode,
    );
    let trace = workflow_trace(&goal);
    let parent = SpanSubject::Grant(&claim.id, seq).span_id();
    let cx = opentelemetry::Context::new().with_remote_span_context(SpanContext::new(
        opentelemetry::trace::TraceId::from_bytes(trace.0),
        opentelemetry::trace::SpanId::from_bytes(parent.0),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    ));
    if span.set_parent(cx).is_err() {
        return (span, None);
    }
    let started = span.context();
    let sc = started.span().span_context().clone();
    let traceparent = sc
        .is_valid()
        .then(|| traceparent(TraceId(sc.trace_id().to_bytes()), sett_core::trace::SpanId(sc.span_id().to_bytes())));
    (span, traceparent)
}

#[allow(clippy::too_many_arguments)]
async fn run_tool(
    store: &Store,
    cub: &CubSettings,
    claim: &Claim,
    grant: &Grant,
    target: &Result<Artifact, CubError>,
    traceparent: Option<&str>,
    until: Instant,
    cancel: &CancellationToken,
    stop: &CancellationToken,
) -> Result<ToolOutput, Failure> {
    let target = target
        .as_ref()
        .map_err(|e| Failure::plain(format!("cannot assemble the tool's input from the blackboard: {e}")))?;
    let input = patiently(until, cancel, || tool_input(store, cub, claim, grant, target))
        .await
        .map_err(|e| Failure::plain(format!("cannot assemble the tool's input from the blackboard: {e}")))?;
    let stdin =
        serde_json::to_vec(&input).map_err(|e| Failure::plain(format!("cannot encode the tool's input: {e}")))?;
    let env = process::tool_environment(
        &EnvIdentity {
            instance: store.instance(),
            agent: &cub.agent,
            workspace: &cub.workspace,
            claim: Some((&claim.id, Some(grant.claim_type))),
            redis_url: cub.redis_url.as_deref(),
        },
        |name| std::env::var(name).ok(),
    );
    let mut env = env;
    if let Some(tp) = traceparent {
        // W3C trace context: the tool's own spans (its model calls) join the workflow's trace.
        env.insert("TRACEPARENT".into(), tp.to_owned());
    }
    let timeout = tool_timeout(cub.agent.timeout, grant.deadline_ms, sett_store::now_ms());
    let spec = process::RunSpec {
        argv: cub.tool_command(),
        cwd: &cub.workspace,
        env: env.clone(),
        stdin,
        timeout,
        cap: OUTPUT_CAP,
        spawner: process::Spawner::Auto,
    };
    let r = process::run_stoppable(spec, cancel, stop).await;
    // Debug only: the grant's closing line ("tool output written", or the failure's warning)
    // carries the run's time (issue 29: a log line less per grant).
    tracing::debug!(ended = ?r.ended, elapsed_ms = r.elapsed.as_millis() as u64, stdout_bytes = r.stdout.total, "tool finished");
    if !r.stderr.data.is_empty() {
        tracing::info!(stderr = %r.stderr.tail(TAIL), truncated = r.stderr.truncated(), "tool stderr");
    }
    let exit_code = match &r.ended {
        Ended::Exited(code) => *code,
        _ => None,
    };
    let fail = |reason: String, outcome| Failure::of_run(reason, exit_code, &r.stdout, &r.stderr, outcome);
    match &r.ended {
        Ended::Exited(Some(0)) => {}
        Ended::Exited(code) => {
            return Err(fail(format!("the tool exited with {}", process::describe_exit(*code)), "failure"));
        }
        Ended::TimedOut => {
            return Err(fail(format!("the tool did not finish within its timeout ({})", humanize(timeout)), "timeout"));
        }
        Ended::Killed => {
            return Err(fail("the tool was killed: the cub shut down and the grace period ended".into(), "failure"));
        }
        Ended::Stopped => return Err(fail("the workflow was cancelled".into(), CANCELLED)),
        Ended::SpawnFailed(e) => return Err(fail(e.clone(), "failure")),
    }
    if r.stdout.truncated() {
        return Err(fail(format!("the tool printed more than {OUTPUT_CAP} bytes on stdout"), "invalid_output"));
    }
    let output = parse_tool_output(&r.stdout.text()).map_err(|e| fail(e.to_string(), "invalid_output"))?;
    if output.artifact_type == "CodeCommit" {
        verify_commit(cub, &output.payload, env, cancel).await.map_err(|reason| fail(reason, "failure"))?;
    }
    Ok(output)
}

/// The tool's time limit: the agent's `timeout`, but ending a little before the grant's deadline
/// (which the orchestrator counts from the grant, not from the tool's start), so that the cub's
/// own report of the timeout — with the tool's output tails — arrives before the orchestrator
/// gives up on the grant.
fn tool_timeout(agent_timeout: Duration, deadline_ms: Option<i64>, now_ms: i64) -> Duration {
    let Some(deadline_ms) = deadline_ms else {
        return agent_timeout;
    };
    let margin = (agent_timeout / 4).min(Duration::from_millis(500));
    let left = Duration::from_millis(u64::try_from(deadline_ms - now_ms).unwrap_or(0));
    agent_timeout.min(left.saturating_sub(margin))
}

fn humanize(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// A `CodeCommit` must name a commit that exists in the workspace's repository.
async fn verify_commit(
    cub: &CubSettings,
    payload: &str,
    env: std::collections::BTreeMap<String, String>,
    cancel: &CancellationToken,
) -> Result<(), String> {
    let hash = payload.trim();
    if !looks_like_commit_hash(hash) {
        return Err(format!(
            "a CodeCommit payload must be a 40 or 64 character hex commit hash, got {:?}",
            process::tail(hash.as_bytes(), 80)
        ));
    }
    let argv = ["git".to_owned(), "cat-file".to_owned(), "-e".to_owned(), format!("{hash}^{{commit}}")];
    let spec = process::RunSpec {
        argv: &argv,
        cwd: &cub.workspace,
        env,
        stdin: Vec::new(),
        timeout: GIT_TIMEOUT,
        cap: TAIL,
        spawner: process::Spawner::Auto,
    };
    let r = process::run(spec, cancel).await;
    match r.ended {
        Ended::Exited(Some(0)) => Ok(()),
        Ended::Exited(_) => Err(format!(
            "the CodeCommit {hash} does not exist in the workspace repository {} (git: {})",
            cub.workspace.display(),
            r.stderr.text().trim()
        )),
        Ended::TimedOut => Err(format!("git cat-file did not answer within {GIT_TIMEOUT:?}")),
        Ended::Killed | Ended::Stopped => Err("the commit check was stopped".into()),
        Ended::SpawnFailed(e) => Err(format!("cannot run git to check the CodeCommit: {e}")),
    }
}

async fn load_target(store: &Store, claim: &Claim) -> Result<Artifact, CubError> {
    let id = claim.artifact_id;
    store.get_artifact(&id).await?.ok_or(CubError::MissingArtifact(id))
}

/// The tool's stdin: the context chain, the additional context and this agent's answered
/// questions, each read in one pipelined batch.
async fn tool_input(
    store: &Store,
    cub: &CubSettings,
    claim: &Claim,
    grant: &Grant,
    target: &Artifact,
) -> Result<ToolInput, CubError> {
    let pairs: Vec<_> = claim.answered_questions.iter().filter(|qa| qa.agent == cub.agent.name).collect();
    let pair_ids: Vec<ArtifactId> = pairs.iter().flat_map(|qa| [qa.question, qa.answer]).collect();
    let (context_chain, extra, pair_artifacts) = tokio::try_join!(
        context::context_chain(store, target),
        store.get_artifacts_or_none(&claim.additional_context_ids),
        store.get_artifacts_or_none(&pair_ids),
    )?;
    let mut additional_context = Vec::new();
    for (id, a) in claim.additional_context_ids.iter().zip(extra) {
        match a {
            Some(a) => additional_context.push(a),
            None => {
                tracing::warn!(context_artifact_id = %id, "an additional-context artifact does not exist; leaving it out")
            }
        }
    }
    let mut answers = Vec::new();
    let mut found = pair_artifacts.into_iter();
    for qa in pairs {
        match (found.next().flatten(), found.next().flatten()) {
            (Some(question), Some(answer)) => answers.push(QuestionAnswer::new(question, answer)),
            _ => {
                tracing::warn!(question = %qa.question, answer = %qa.answer, "a question or its answer does not exist; leaving the pair out")
            }
        }
    }
    Ok(ToolInput {
        claim_id: claim.id,
        claim_type: grant.claim_type,
        target_artifact: target.clone(),
        context_chain,
        additional_context,
        answers,
    })
}

/// True when a Standard output of this grant is the next version of the target's thread: a
/// rework, or the resumption of one.
fn continues_thread(claim: &Claim, grant: &Grant) -> bool {
    match grant.claim_type {
        ClaimType::Rework => true,
        ClaimType::Resume => {
            claim.status == ClaimStatus::PendingAssignment
                || claim.resume_status == Some(ClaimStatus::PendingAssignment)
        }
        _ => false,
    }
}

/// Writes the tool's artifact; an id that exists means a previous attempt wrote it.
async fn write_output(
    store: &Store,
    cub: &CubSettings,
    claim: &Claim,
    grant: &Grant,
    target: &Artifact,
    id: ArtifactId,
    output: ToolOutput,
) -> Result<StructuralType, CubError> {
    let payload = if output.artifact_type == "CodeCommit" { output.payload.trim().to_owned() } else { output.payload };
    let mut a = Artifact::of_claim(
        id,
        claim,
        output.structural_type,
        output.artifact_type,
        payload,
        cub.agent.name.as_str(),
        sett_store::now_ms(),
    );
    a.summary = output.summary;
    a.usage = output.usage;
    let versioned = a.structural_type == StructuralType::Standard && continues_thread(claim, grant);
    for _ in 0..VERSION_ATTEMPTS {
        if versioned {
            let latest = store.latest_in_thread(&target.logical_id).await?.map_or(target.version, |l| l.version);
            a.logical_id = target.logical_id;
            a.version = latest.max(target.version) + 1;
        }
        match store.create_artifact(&a).await? {
            CreateOutcome::Created { .. } => return Ok(a.structural_type),
            CreateOutcome::IdExists => {
                tracing::info!(output_artifact_id = %id, "the output was written by an earlier attempt");
                return Ok(a.structural_type);
            }
            CreateOutcome::VersionTaken { existing } if versioned => {
                tracing::warn!(version = a.version, %existing, "the next version was taken meanwhile; retrying");
            }
            outcome => return Err(CubError::Refused { what: "artifact", outcome }),
        }
    }
    Err(CubError::VersionRace { version: a.version, logical_id: a.logical_id })
}

fn failure_artifact(cub: &CubSettings, claim: &Claim, id: ArtifactId, f: &Failure) -> Artifact {
    let end =
        ToolRunEnd { exit_code: f.exit_code, stdout_tail: f.stdout_tail.clone(), stderr_tail: f.stderr_tail.clone() };
    let payload = FailurePayload::of_tool_run(f.reason.as_str(), end);
    Artifact::failure(
        id,
        claim,
        FAILURE_TYPE,
        payload.to_json(),
        process::tail(f.reason.as_bytes(), 500),
        cub.agent.name.as_str(),
        sett_store::now_ms(),
    )
}

#[cfg(test)]
mod tests {
    use sett_store::StoreError;

    use super::*;

    #[test]
    fn the_tool_ends_before_the_grants_deadline() {
        let t = Duration::from_secs(2);
        assert_eq!(tool_timeout(t, None, 0), t);
        assert_eq!(tool_timeout(t, Some(2_000), 0), Duration::from_millis(1_500));
        assert_eq!(tool_timeout(t, Some(60_000), 0), t);
        assert_eq!(tool_timeout(Duration::from_secs(600), Some(600_000), 100), Duration::from_millis(599_400));
        assert_eq!(tool_timeout(t, Some(100), 5_000), Duration::ZERO);
    }

    #[tokio::test]
    async fn transient_failures_are_retried_until_the_limit_and_others_are_not() {
        let cancel = CancellationToken::new();
        let calls = std::cell::Cell::new(0);
        // Redis fails over for a while: the call goes through once it is back.
        let until = Instant::now() + Duration::from_secs(30);
        let r = patiently(until, &cancel, || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move { if n < 4 { Err(StoreError::Timeout(Duration::from_secs(1))) } else { Ok(n) } }
        })
        .await;
        assert_eq!(r.unwrap(), 4);
        // An unconfirmed write is transient too; a refused one is not retried.
        calls.set(0);
        let missing = ArtifactId::derived(&"claim", "target");
        let r: Result<(), _> = patiently(until, &cancel, || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                Err(if n == 1 {
                    StoreError::Unconfirmed("failover".into()).into()
                } else {
                    CubError::MissingArtifact(missing)
                })
            }
        })
        .await;
        assert!(matches!(r, Err(CubError::MissingArtifact(_))) && calls.get() == 2, "{r:?}");
        // Past the limit the last error is returned.
        let soon = Instant::now() + Duration::from_secs(1);
        let r: Result<(), _> =
            patiently(soon, &cancel, || async { Err(StoreError::Timeout(Duration::from_secs(1))) }).await;
        assert!(matches!(r, Err(CubError::Store(StoreError::Timeout(_)))));
    }

    #[test]
    fn a_taken_grant_is_retried_until_its_deadline_and_at_least_the_patience() {
        let now = Instant::now();
        let far = grant_patience(Some(120_000), 0);
        assert!(far >= now + Duration::from_secs(119), "until the deadline");
        let near = grant_patience(Some(1_000), 0);
        assert!(near >= now + PATIENCE && near < now + PATIENCE + Duration::from_secs(1), "at least the patience");
        assert!(grant_patience(None, 0) >= now + PATIENCE);
    }

    #[test]
    fn only_reworks_and_their_resumptions_continue_the_thread() {
        let a = Artifact::new_root(sett_store::new_artifact_id(), StructuralType::Standard, "T", "", "user", 1);
        let policy = sett_core::policy::Policy {
            agents: Default::default(),
            max_review_iterations: 3,
            bid_timeout_ms: 1,
            on_question_timeout: Default::default(),
            routing: Default::default(),
        };
        let mut c = sett_core::machine::new_claim(sett_store::new_claim_id(), &a, &policy, 1);
        let grant = |claim_type| Grant { claim_type, seq: 1, granted_at_ms: 1, deadline_ms: None, via_worker: false };
        assert!(continues_thread(&c, &grant(ClaimType::Rework)));
        assert!(!continues_thread(&c, &grant(ClaimType::Claim)));
        assert!(!continues_thread(&c, &grant(ClaimType::Resume)));
        c.status = ClaimStatus::PendingAssignment;
        assert!(continues_thread(&c, &grant(ClaimType::Resume)));
        c.status = ClaimStatus::PendingExclusive;
        c.resume_status = Some(ClaimStatus::PendingAssignment);
        assert!(continues_thread(&c, &grant(ClaimType::Resume)));
    }
}
