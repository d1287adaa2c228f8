//! `sett-bench`: load generators and probes for `cargo xtask bench`. Each scenario prints one JSON
//! object on stdout; the xtask collects them, computes ratios and writes the results file.
#![allow(clippy::print_stdout, clippy::print_stderr, unreachable_pub)]

use std::time::{Duration, Instant};

use anyhow::Result;
use clap::{Parser, Subcommand};
use sett_core::claim::{ClaimStatus, OpenQuestion};
use sett_core::machine::{AgentPolicy, Policy, new_claim};
use sett_core::{AgentName, Artifact, ClaimId, InstanceName, StructuralType};
use sett_store::{Redis, RedisOptions, Store, now_ms};

#[derive(Debug, Parser)]
struct Cli {
    #[arg(long)]
    redis_url: String,
    #[arg(long)]
    instance: String,
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
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let redis = Redis::connect(RedisOptions::new(&cli.redis_url)).await?;
    let store = redis.instance(&InstanceName::parse(&cli.instance)?);
    let out = match cli.scenario {
        Scenario::SeedArtifacts { artifacts, questions } => seed(&store, artifacts, questions).await?,
    };
    println!("{out}");
    Ok(())
}

async fn seed(store: &Store, artifacts: u64, questions: u64) -> Result<serde_json::Value> {
    let started = Instant::now();
    let mut pending = futures::stream::FuturesUnordered::new();
    use futures::StreamExt;
    for i in 0..artifacts {
        let a = Artifact::new_root(StructuralType::Standard, "Bench", format!("payload {i}"), "user", now_ms());
        let s = store.clone();
        pending.push(async move { s.create_artifact(&a).await });
        if pending.len() >= 256 {
            pending.next().await.transpose()?;
        }
    }
    while let Some(r) = pending.next().await {
        r?;
    }
    let agent = AgentName::parse("Asker")?;
    let policy = Policy {
        agents: [(agent.clone(), AgentPolicy { timeout_ms: 60_000, question_timeout_ms: None, via_worker: false })].into(),
        max_review_iterations: 3,
        bid_timeout_ms: 1000,
        on_question_timeout: Default::default(),
    };
    for _ in 0..questions {
        let goal = Artifact::new_root(StructuralType::Standard, "GoalDefined", "goal", "user", now_ms());
        store.create_artifact(&goal).await?;
        let mut claim = new_claim(ClaimId::new_v7(), &goal, &policy, now_ms());
        let mut q = Artifact::new_root(StructuralType::Question, "Clarification", "Which database?", agent.as_str(), now_ms());
        q.claim_id = Some(claim.id);
        q.source_artifacts = vec![goal.id];
        store.create_artifact(&q).await?;
        claim.status = ClaimStatus::PendingAnswer;
        claim.resume_status = Some(ClaimStatus::PendingExclusive);
        claim.question_id = Some(q.id);
        claim.open_questions.insert(q.id, OpenQuestion { agent: agent.clone(), asked_at_ms: now_ms(), deadline_ms: None });
        let ops = [sett_store::QuestionOp::Open { question: q.id, asked_at_ms: now_ms() }];
        store.write_claim(&claim, None, true, &ops, &[], now_ms()).await?;
    }
    Ok(serde_json::json!({"scenario": "seed", "artifacts": artifacts, "questions": questions,
        "seconds": started.elapsed().as_secs_f64(), "per_second": artifacts as f64 / started.elapsed().as_secs_f64().max(1e-9)}))
}

#[allow(dead_code)]
fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx].as_secs_f64() * 1000.0
}
