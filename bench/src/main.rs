//! `sett-bench`: load generators and probes for `cargo xtask bench`. Each scenario prints one JSON
//! object on stdout; the xtask collects them, computes ratios and writes the results file.
#![allow(clippy::print_stdout, clippy::print_stderr, unreachable_pub)]

use std::time::{Duration, Instant};

use anyhow::Result;
use clap::{Parser, Subcommand};
use sett_core::claim::{ClaimStatus, OpenQuestion};
use sett_core::event::{Event, EventData, EventKind, InstanceStarted, QuestionAsked};
use sett_core::machine::{initial_claim_id, new_claim};
use sett_core::policy::{AgentPolicy, Policy};
use sett_core::{AgentName, Artifact, InstanceName, StructuralType};
use sett_store::{EventReader, Redis, RedisOptions, Store, new_artifact_id, new_claim_id, now_ms};

#[derive(Debug, Parser)]
struct Cli {
    #[arg(long)]
    redis_url: String,
    #[arg(long)]
    instance: String,
    /// `redis.durability` of the load generator's own writes (`fast` or `replicated`), as
    /// `sett forage` would write them under that setting.
    #[arg(long, default_value = "fast")]
    durability: String,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Write N artifacts and Q open questions (with their claims) as fast as possible.
    SeedArtifacts {
        #[arg(long)]
        artifacts: u64,
        #[arg(long)]
        questions: u64,
    },
    /// One claim at a time on a running instance: artifact written → claim_created seen →
    /// claim_granted seen → grant taken by the cub (its `executions` record) → claim final.
    Latency {
        #[arg(long, default_value_t = 200)]
        count: u64,
        #[arg(long, default_value = "BenchTask")]
        artifact_type: String,
    },
    /// Writes `count` artifacts at once and waits until every claim is final: lifecycles/s.
    Throughput {
        #[arg(long, default_value_t = 2000)]
        count: u64,
        #[arg(long, default_value = "BenchTask")]
        artifact_type: String,
    },
    /// One goal at a time: goal written → a Terminal artifact exists.
    Workflow {
        #[arg(long, default_value_t = 20)]
        count: u64,
    },
    /// Opens one question (claim in `pending_answer`, index entry and `question_asked` event in
    /// one atomic write, as the orchestrator does) and prints the wall-clock time of the write.
    AskQuestion,
    /// Prints the instance's component records (pids of the orchestrator and the cubs).
    Components,
    /// One workflow of `artifacts` artifacts (a tree from one goal), `questions` of them open
    /// questions each on its own claim, as the orchestrator writes them. Prints the goal id.
    SeedWorkflow {
        #[arg(long)]
        artifacts: u64,
        #[arg(long)]
        questions: u64,
    },
    /// Against a running `sett console`: the server time (its `server-timing` header) of the
    /// inbox and of the workflow page of `goal`, and the delay from an event written to the
    /// ledger to its arrival on an SSE connection.
    Console {
        #[arg(long)]
        addr: String,
        #[arg(long)]
        token: String,
        #[arg(long)]
        goal: String,
        #[arg(long, default_value_t = 5)]
        runs: u64,
        #[arg(long, default_value_t = 200)]
        events: u64,
    },
    /// One question at a time on a running instance whose agent asks on its first run: goal
    /// written → `question_asked` seen → the answer written as `sett answer` writes it → the
    /// agent resumed (the cub's `taken_at_us` for the resume grant).
    Resume {
        #[arg(long, default_value_t = 50)]
        count: u64,
        #[arg(long, default_value = "BenchAsk")]
        artifact_type: String,
    },
    /// The approval gate's cost on the grant path, against an ungated claim in the same run:
    /// pairs of an artifact for an ungated agent (`baseline_type`) and one for a gated agent
    /// (`gated_type`, `agents.<name>.approval`); the gated one is approved, as `sett approve`
    /// does, the moment its `question_asked` is seen. Reports artifact → `claim_granted` of
    /// both, the approver's own time (ask seen → decision written) and the difference.
    Approval {
        #[arg(long, default_value_t = 200)]
        count: u64,
        #[arg(long, default_value = "BenchTask")]
        baseline_type: String,
        #[arg(long, default_value = "BenchGated")]
        gated_type: String,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let durability: sett_core::config::Durability = serde_json::from_value(serde_json::json!(cli.durability))?;
    let redis = Redis::connect(RedisOptions::new(&cli.redis_url)).await?.with_durability(durability);
    let store = redis.instance(&InstanceName::parse(&cli.instance)?);
    let out = match cli.scenario {
        Scenario::SeedArtifacts { artifacts, questions } => seed(&store, artifacts, questions).await?,
        Scenario::Latency { count, artifact_type } => latency(&store, count, &artifact_type).await?,
        Scenario::Throughput { count, artifact_type } => throughput(&store, count, &artifact_type).await?,
        Scenario::Workflow { count } => workflow(&store, count).await?,
        Scenario::AskQuestion => ask_question(&store).await?,
        Scenario::Components => serde_json::to_value(store.components().await?)?,
        Scenario::SeedWorkflow { artifacts, questions } => seed_workflow(&store, artifacts, questions).await?,
        Scenario::Console { addr, token, goal, runs, events } => {
            console(&store, &addr, &token, &goal, runs, events).await?
        }

        Scenario::Resume { count, artifact_type } => resume(&store, count, &artifact_type).await?,
        Scenario::Approval { count, baseline_type, gated_type } => {
            approval(&store, count, &baseline_type, &gated_type).await?
        }
    };
    println!("{out}");
    Ok(())
}

async fn seed(store: &Store, artifacts: u64, questions: u64) -> Result<serde_json::Value> {
    let started = Instant::now();
    let mut pending = futures::stream::FuturesUnordered::new();
    use futures::StreamExt;
    for i in 0..artifacts {
        let a = root_artifact("Bench", format!("payload {i}"));
        let s = store.clone();
        pending.push(async move { s.create_artifact(&a).await });
        if pending.len() >= 256 {
            pending.next().await.transpose()?;
        }
    }
    while let Some(r) = pending.next().await {
        r?;
    }
    for _ in 0..questions {
        open_question(store, false).await?;
    }
    Ok(serde_json::json!({"scenario": "seed", "artifacts": artifacts, "questions": questions,
        "seconds": started.elapsed().as_secs_f64(), "per_second": artifacts as f64 / started.elapsed().as_secs_f64().max(1e-9)}))
}

/// Wall-clock microseconds: comparable across the processes of one machine (the cub records
/// `taken_at_us` on the same clock).
fn wall_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// Follows the event stream from its current end, as `sett watch` does; counts its reads so the
/// xtask can subtract them from the server's command statistics.
struct Follower {
    reader: EventReader,
    cursor: String,
    reads: u64,
}

impl Follower {
    async fn new(store: &Store) -> Result<Self> {
        let cursor = store.last_event_id().await?.unwrap_or_else(|| "0-0".to_owned());
        Ok(Self { reader: store.event_reader().await?, cursor, reads: 1 })
    }

    /// The next events (blocking up to 5 s) and the wall-clock time they arrived.
    async fn next(&mut self) -> Result<(u64, Vec<Event>)> {
        let events = self.reader.read_after(&self.cursor, 1000, Duration::from_secs(5)).await?;
        self.reads += 1;
        let at = wall_us();
        if let Some(last) = events.last() {
            self.cursor.clone_from(&last.id);
        }
        Ok((at, events))
    }
}

fn seq_of(e: &Event) -> Option<u64> {
    match &e.data {
        EventData::ClaimGranted(g) => Some(g.seq),
        _ => None,
    }
}

fn ms(us: u64, from: u64) -> f64 {
    us.saturating_sub(from) as f64 / 1000.0
}

fn summary(mut v: Vec<f64>) -> serde_json::Value {
    v.sort_by(|a, b| a.total_cmp(b));
    let p = |q: f64| if v.is_empty() { 0.0 } else { v[((v.len() as f64 - 1.0) * q).round() as usize] };
    serde_json::json!({"p50_ms": p(0.5), "p90_ms": p(0.9), "p99_ms": p(0.99), "max_ms": p(1.0), "n": v.len()})
}

/// A user's root artifact of `artifact_type`, as `sett forage` writes one.
fn root_artifact(artifact_type: &str, payload: String) -> Artifact {
    Artifact::new_root(new_artifact_id(), StructuralType::Standard, artifact_type, payload, "user", now_ms())
}

const FINAL: [EventKind; 3] = [EventKind::ClaimCompleted, EventKind::ClaimTerminated, EventKind::ClaimDormant];

async fn latency(store: &Store, count: u64, artifact_type: &str) -> Result<serde_json::Value> {
    const WARMUP: u64 = 10;
    let mut f = Follower::new(store).await?;
    let (mut to_created, mut to_granted, mut to_taken, mut to_final, mut created_to_taken) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..count + WARMUP {
        let a = root_artifact(artifact_type, format!("task {i}"));
        let claim = initial_claim_id(&a.id);
        let t0 = wall_us();
        store.create_artifact(&a).await?;
        let (mut created, mut granted, mut seq, mut done) = (None, None, None, None);
        let give_up = Instant::now() + Duration::from_secs(60);
        while done.is_none() {
            if Instant::now() > give_up {
                anyhow::bail!("claim {claim} did not finish within 60 s");
            }
            let (at, events) = f.next().await?;
            for e in events.iter().filter(|e| e.data.claim_id() == Some(claim)) {
                match e.kind() {
                    EventKind::ClaimCreated => created = created.or(Some(at)),
                    EventKind::ClaimGranted => {
                        granted = granted.or(Some(at));
                        seq = seq.or(seq_of(e));
                    }
                    k if FINAL.contains(&k) => {
                        if k != EventKind::ClaimCompleted {
                            anyhow::bail!("claim {claim} ended with {k}, not claim_completed: check the bench agents");
                        }
                        done = Some(at);
                    }
                    _ => {}
                }
            }
        }
        let seq = seq.ok_or_else(|| anyhow::anyhow!("claim {claim} completed without a grant"))?;
        let record = store.execution_record(&claim, seq).await?.unwrap_or_default();
        let taken = record.taken_at_us;
        if i < WARMUP {
            continue;
        }
        let (created, granted, done) = (created.unwrap_or(0), granted.unwrap_or(0), done.unwrap_or(0));
        to_created.push(ms(created, t0));
        to_granted.push(ms(granted, t0));
        to_taken.push(ms(taken, t0));
        to_final.push(ms(done, t0));
        created_to_taken.push(ms(taken, created));
    }
    Ok(serde_json::json!({
        "scenario": "latency", "claims": count, "warmup": WARMUP,
        "artifact_to_claim_created": summary(to_created),
        "artifact_to_claim_granted": summary(to_granted),
        "artifact_to_grant_taken": summary(to_taken),
        "claim_created_to_grant_taken": summary(created_to_taken),
        "artifact_to_claim_completed": summary(to_final),
    }))
}

async fn throughput(store: &Store, count: u64, artifact_type: &str) -> Result<serde_json::Value> {
    use futures::StreamExt;
    let mut f = Follower::new(store).await?;
    let started = Instant::now();
    let mut open = std::collections::HashSet::new();
    let mut pending = futures::stream::FuturesUnordered::new();
    for i in 0..count {
        let a = root_artifact(artifact_type, format!("task {i}"));
        open.insert(initial_claim_id(&a.id));
        let s = store.clone();
        pending.push(async move { s.create_artifact(&a).await });
        if pending.len() >= 64 {
            pending.next().await.transpose()?;
        }
    }
    while let Some(r) = pending.next().await {
        r?;
    }
    let written = started.elapsed().as_secs_f64();
    let (mut completed, mut other) = (0u64, 0u64);
    let give_up = Instant::now() + Duration::from_secs(600);
    while !open.is_empty() {
        if Instant::now() > give_up {
            anyhow::bail!("{} claims still open after 600 s", open.len());
        }
        let (_, events) = f.next().await?;
        for e in events.iter().filter(|e| FINAL.contains(&e.kind())) {
            if e.data.claim_id().is_some_and(|c| open.remove(&c)) {
                if e.kind() == EventKind::ClaimCompleted { completed += 1 } else { other += 1 }
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(serde_json::json!({
        "scenario": "throughput", "claims": count, "completed": completed, "not_completed": other,
        "seconds": secs, "write_seconds": written, "lifecycles_per_second": count as f64 / secs.max(1e-9),
        // Commands this load generator sent besides the artifact writes (its stream reads).
        "bench_reads": f.reads,
    }))
}

async fn workflow(store: &Store, count: u64) -> Result<serde_json::Value> {
    const WARMUP: u64 = 2;
    let mut f = Follower::new(store).await?;
    let mut total = Vec::new();
    for i in 0..count + WARMUP {
        let goal = root_artifact("GoalDefined", format!("goal {i}"));
        let t0 = wall_us();
        store.create_artifact(&goal).await?;
        let give_up = Instant::now() + Duration::from_secs(60);
        let done = 'wait: loop {
            if Instant::now() > give_up {
                anyhow::bail!("goal {} reached no Terminal within 60 s", goal.id);
            }
            let (at, events) = f.next().await?;
            for e in &events {
                if let EventData::ArtifactCreated(a) = &e.data {
                    match a.structural_type {
                        StructuralType::Terminal => break 'wait at,
                        StructuralType::Failure => {
                            anyhow::bail!("the workflow failed: {}", e.data.to_json())
                        }
                        _ => {}
                    }
                }
            }
        };
        if i >= WARMUP {
            total.push(ms(done, t0));
        }
    }
    Ok(serde_json::json!({"scenario": "workflow", "goals": count, "goal_to_terminal": summary(total)}))
}

async fn ask_question(store: &Store) -> Result<serde_json::Value> {
    let t0 = open_question(store, true).await?;
    Ok(serde_json::json!({"scenario": "ask-question", "written_at_us": t0}))
}

/// Opens one question as the orchestrator would: a goal, its claim in `pending_answer` and the
/// Question, the claim and the open-question index written in one atomic step (with its
/// `question_asked` event when `announce`). Returns the wall-clock time of that write.
async fn open_question(store: &Store, announce: bool) -> Result<u64> {
    let agent = AgentName::parse("Asker")?;
    let policy = Policy {
        agents: [(
            agent.clone(),
            AgentPolicy { timeout_ms: 60_000, question_timeout_ms: None, via_worker: false, approval: None },
        )]
        .into(),
        max_review_iterations: 3,
        bid_timeout_ms: 1000,
        on_question_timeout: Default::default(),
        routing: Default::default(),
    };
    let goal = Artifact::new_root(new_artifact_id(), StructuralType::Standard, "GoalDefined", "goal", "user", now_ms());
    store.create_artifact(&goal).await?;
    let mut claim = new_claim(new_claim_id(), &goal, &policy, now_ms());
    let mut q = Artifact::new_root(
        new_artifact_id(),
        StructuralType::Question,
        "Clarification",
        "Which database?",
        agent.as_str(),
        now_ms(),
    );
    q.claim_id = Some(claim.id);
    q.source_artifacts = vec![goal.id];
    store.create_artifact(&q).await?;
    claim.status = ClaimStatus::PendingAnswer;
    claim.resume_status = Some(ClaimStatus::PendingExclusive);
    claim.question_id = Some(q.id);
    claim.open_questions.insert(q.id, OpenQuestion::new(agent.clone(), now_ms(), None));
    let ops = [sett_store::QuestionOp::Open { question: q.id, asked_at_ms: now_ms() }];
    let event = EventData::QuestionAsked(QuestionAsked {
        agent: agent.clone(),
        artifact_id: q.id,
        claim_id: claim.id,
        deadline_ms: None,
        question_id: q.id,
        to: Vec::new(),
    });
    let events = if announce { vec![event] } else { Vec::new() };
    let t0 = wall_us();
    store.write_claim(&claim, None, true, &ops, &events, now_ms()).await?;
    Ok(t0)
}

async fn seed_workflow(store: &Store, artifacts: u64, questions: u64) -> Result<serde_json::Value> {
    let started = Instant::now();
    let goal = Artifact::new_root(
        new_artifact_id(),
        StructuralType::Standard,
        "GoalDefined",
        "a large workflow",
        "user",
        now_ms(),
    );
    store.create_artifact(&goal).await?;
    let standard = artifacts.saturating_sub(1 + questions).max(questions);
    // A tree: artifact i comes from artifact i/3, so the graph has many layers and wide ones.
    let mut ids = vec![goal.id];
    let mut all = Vec::new();
    for i in 1..=standard {
        let mut a = Artifact::new_root(
            new_artifact_id(),
            StructuralType::Standard,
            "CodeCommit",
            format!("commit {i}"),
            "Writer",
            now_ms(),
        );
        a.source_artifacts = vec![ids[(i / 3) as usize]];
        ids.push(a.id);
        all.push(a);
    }
    // In order: an artifact's sources must be written (and hashed) before it.
    for a in all {
        store.create_artifact(&a).await?;
    }
    let agent = AgentName::parse("Asker")?;
    let policy = Policy {
        agents: [(
            agent.clone(),
            AgentPolicy { timeout_ms: 60_000, question_timeout_ms: None, via_worker: false, approval: None },
        )]
        .into(),
        max_review_iterations: 3,
        bid_timeout_ms: 1000,
        on_question_timeout: Default::default(),
        routing: Default::default(),
    };
    for k in 0..questions {
        let target = &ids[1 + k as usize];
        let mut on =
            Artifact::new_root(new_artifact_id(), StructuralType::Standard, "CodeCommit", "x", "Writer", now_ms());
        on.id = *target;
        let mut claim = new_claim(new_claim_id(), &on, &policy, now_ms());
        let mut q = Artifact::new_root(
            new_artifact_id(),
            StructuralType::Question,
            "Clarification",
            format!("Question {k}?"),
            "Asker",
            now_ms(),
        );
        q.claim_id = Some(claim.id);
        q.source_artifacts = vec![*target];
        store.create_artifact(&q).await?;
        claim.status = ClaimStatus::PendingAnswer;
        claim.resume_status = Some(ClaimStatus::PendingExclusive);
        claim.question_id = Some(q.id);
        claim.open_questions.insert(q.id, OpenQuestion::new(agent.clone(), now_ms(), None));
        let ops = [sett_store::QuestionOp::Open { question: q.id, asked_at_ms: now_ms() }];
        store.write_claim(&claim, None, true, &ops, &[], now_ms()).await?;
    }
    Ok(
        serde_json::json!({"scenario": "seed-workflow", "goal": goal.id.to_string(), "artifacts": store.artifact_count().await?,
        "questions": questions, "seconds": started.elapsed().as_secs_f64()}),
    )
}

/// One GET on its own connection; returns the status, the server's time in ms and the body size.
async fn get(addr: &str, path: &str, token: &str) -> Result<(u16, f64, usize)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let req =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let dur = text
        .lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix("server-timing: app;dur="))
        .and_then(|d| d.trim().parse().ok())
        .unwrap_or(f64::NAN);
    Ok((status, dur, raw.len()))
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn console(
    store: &Store,
    addr: &str,
    token: &str,
    goal: &str,
    runs: u64,
    events: u64,
) -> Result<serde_json::Value> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let instance = store.instance().to_string();
    // The median of `runs`, and the first run's time (the workflows table caches its rows
    // while no event arrives: its first run reads the instance, the others do not).
    let page = |path: String| async move {
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..runs.max(1) {
            let (status, ms, n) = get(addr, &path, token).await?;
            anyhow::ensure!(status == 200, "GET {path} answered {status}");
            times.push(ms);
            bytes = n;
        }
        let first = times[0];
        Ok::<_, anyhow::Error>((pct(&mut times, 0.5), bytes, first))
    };
    // The inbox and the graph cache nothing: every run reads Redis afresh.
    let (inbox_ms, inbox_bytes, _) = page("/questions".to_owned()).await?;
    let (inbox_last_ms, _, _) = page("/questions?page=20".to_owned()).await?;
    let (graph_ms, graph_bytes, _) = page(format!("/instances/{instance}/workflows/{goal}")).await?;
    let (flows_ms, flows_bytes, flows_cold_ms) = page(format!("/instances/{instance}")).await?;
    let (instances_ms, _, _) = page("/".to_owned()).await?;
    // SSE: one connection, events written one at a time, each timed until its `id:` line.
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let req = format!(
        "GET /api/v1/instances/{instance}/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    let mut lines = tokio::io::BufReader::new(s).lines();
    while lines.next_line().await?.ok_or_else(|| anyhow::anyhow!("the SSE stream closed"))? != ": connected" {}
    let mut delays = Vec::new();
    for n in 0..events {
        let t0 = Instant::now();
        let started = InstanceStarted { host: "bench".into(), pid: 0, run_id: format!("bench-{n}") };
        let id = store.append_event(&EventData::InstanceStarted(started), now_ms()).await?;
        loop {
            let line = lines.next_line().await?.ok_or_else(|| anyhow::anyhow!("the SSE stream closed"))?;
            if line.strip_prefix("id: ") == Some(id.as_str()) {
                break;
            }
        }
        delays.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    let p50 = pct(&mut delays, 0.5);
    let p99 = pct(&mut delays, 0.99);
    Ok(serde_json::json!({
        "scenario": "console",
        "inbox_server_ms_p50": inbox_ms, "inbox_bytes": inbox_bytes, "inbox_last_page_server_ms_p50": inbox_last_ms,
        "workflows_page_server_ms_p50": flows_ms, "workflows_page_first_server_ms": flows_cold_ms,
        "workflows_page_bytes": flows_bytes, "instances_page_server_ms_p50": instances_ms,
        "workflow_graph_server_ms_p50": graph_ms, "workflow_graph_bytes": graph_bytes,
        "sse_event_delivery_ms_p50": p50, "sse_event_delivery_ms_p99": p99, "sse_events": events, "runs": runs,
    }))
}

async fn resume(store: &Store, count: u64, artifact_type: &str) -> Result<serde_json::Value> {
    const WARMUP: u64 = 3;
    let mut f = Follower::new(store).await?;
    let mut to_resumed = Vec::new();
    for i in 0..count + WARMUP {
        let goal = root_artifact(artifact_type, format!("ask {i}"));
        let claim = initial_claim_id(&goal.id);
        store.create_artifact(&goal).await?;
        // Wait for the question, answer it, then wait for the claim to complete.
        let (mut t0, mut resume_seq, mut done) = (None, None, false);
        let give_up = Instant::now() + Duration::from_secs(60);
        while !done {
            if Instant::now() > give_up {
                anyhow::bail!("claim {claim} did not finish within 60 s");
            }
            let (_, events) = f.next().await?;
            for e in events.iter().filter(|e| e.data.claim_id() == Some(claim)) {
                match &e.data {
                    EventData::QuestionAsked(asked) if t0.is_none() => {
                        let qid = asked.question_id;
                        let now = now_ms();
                        let mut answer = Artifact::new_root(
                            new_artifact_id(),
                            StructuralType::Answer,
                            "Answer",
                            "Postgres",
                            "human:bench",
                            now,
                        );
                        answer.source_artifacts = vec![qid];
                        answer.claim_id = Some(claim);
                        answer.answered_by = Some("bench".into());
                        let record = sett_store::AnswerRecord {
                            answer_id: answer.id,
                            answered_by: "bench".into(),
                            answered_at_ms: now,
                            timed_out: false,
                            approval: None,
                        };
                        t0 = Some(wall_us());
                        store.create_answer(&answer, &qid, &record).await?;
                    }
                    EventData::ClaimGranted(g) if t0.is_some() => resume_seq = resume_seq.or(Some(g.seq)),
                    _ if FINAL.contains(&e.kind()) => {
                        let k = e.kind();
                        if k != EventKind::ClaimCompleted {
                            anyhow::bail!("claim {claim} ended with {k}: check the bench agent");
                        }
                        done = true;
                    }
                    _ => {}
                }
            }
        }
        let (Some(t0), Some(seq)) = (t0, resume_seq) else {
            anyhow::bail!("claim {claim} completed without a question and a resume grant");
        };
        let record = store.execution_record(&claim, seq).await?.unwrap_or_default();
        let taken = record.taken_at_us;
        if i >= WARMUP {
            to_resumed.push(ms(taken, t0));
        }
    }
    Ok(serde_json::json!({"scenario": "resume", "questions": count, "answer_to_agent_resumed": summary(to_resumed)}))
}

/// One claim of the approval scenario: written at `t0`; the wall-clock times its
/// `question_asked` was seen, its approval written, its `claim_granted` seen.
struct GatePass {
    t0: u64,
    asked: Option<u64>,
    decided: Option<u64>,
    granted: u64,
}

/// Writes one artifact of `artifact_type` and follows its claim to completion; a
/// `question_asked` (an approval) is approved at once through `sett_ops::approval::decide`.
async fn pass(store: &Store, f: &mut Follower, artifact_type: &str, i: u64) -> Result<GatePass> {
    let a = root_artifact(artifact_type, format!("gate {i}"));
    let claim = initial_claim_id(&a.id);
    let t0 = wall_us();
    store.create_artifact(&a).await?;
    let (mut asked, mut decided, mut granted, mut done) = (None, None, None, false);
    let give_up = Instant::now() + Duration::from_secs(60);
    while !done {
        if Instant::now() > give_up {
            anyhow::bail!("claim {claim} did not finish within 60 s");
        }
        let (at, events) = f.next().await?;
        for e in events.iter().filter(|e| e.data.claim_id() == Some(claim)) {
            match &e.data {
                EventData::QuestionAsked(q) if asked.is_none() => {
                    asked = Some(at);
                    sett_ops::approval::decide(
                        store,
                        &q.question_id,
                        sett_core::approval::Decision::Approve,
                        Some("bench"),
                        "bench",
                    )
                    .await
                    .map_err(|e| anyhow::anyhow!("approving {}: {e}", q.question_id))?;
                    decided = Some(wall_us());
                }
                EventData::ClaimGranted(_) => granted = granted.or(Some(at)),
                _ if FINAL.contains(&e.kind()) => {
                    if e.kind() != EventKind::ClaimCompleted {
                        anyhow::bail!("claim {claim} ended with {}: check the bench agents", e.kind());
                    }
                    done = true;
                }
                _ => {}
            }
        }
    }
    let granted = granted.ok_or_else(|| anyhow::anyhow!("claim {claim} completed without a grant"))?;
    Ok(GatePass { t0, asked, decided, granted })
}

async fn approval(store: &Store, count: u64, baseline_type: &str, gated_type: &str) -> Result<serde_json::Value> {
    const WARMUP: u64 = 10;
    let mut f = Follower::new(store).await?;
    let (mut baseline, mut gated, mut human, mut machine, mut ask, mut after) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..count + WARMUP {
        let plain = pass(store, &mut f, baseline_type, i).await?;
        let gate = pass(store, &mut f, gated_type, i).await?;
        let (Some(asked), Some(decided)) = (gate.asked, gate.decided) else {
            anyhow::bail!("a {gated_type} claim was granted without an approval: is its agent gated?");
        };
        if i < WARMUP {
            continue;
        }
        baseline.push(ms(plain.granted, plain.t0));
        gated.push(ms(gate.granted, gate.t0));
        human.push(ms(decided, asked));
        // The gated grant path without the approver's own time.
        machine.push(ms(gate.granted, gate.t0) - ms(decided, asked));
        ask.push(ms(asked, gate.t0));
        after.push(ms(gate.granted, decided));
    }
    let p50 = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let added = p50(&machine) - p50(&baseline);
    Ok(serde_json::json!({
        "scenario": "approval", "pairs": count, "warmup": WARMUP,
        "ungated_artifact_to_claim_granted": summary(baseline),
        "gated_artifact_to_claim_granted": summary(gated),
        "approver_time_ask_seen_to_decision_written": summary(human),
        "gated_grant_path_without_approver_time": summary(machine),
        "artifact_to_approval_asked_seen": summary(ask),
        "decision_written_to_claim_granted": summary(after),
        "added_by_the_gate_ms_p50": added,
    }))
}
