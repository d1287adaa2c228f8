//! Test support shared by the library's and the daemon's tests: the orchestrator simulated by
//! writing claims and their events directly (shaped exactly as the orchestrator writes them),
//! scripts in a tempdir, and waits on the event stream.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use sett_core::claim::Grant;
use sett_core::config::{AgentConfig, SettConfig};
use sett_core::event::{ClaimCreated, ClaimGranted, Event, EventData, EventKind};
use sett_core::machine::{initial_claim_id, new_claim};
use sett_core::policy::Policy;
use sett_core::{AgentName, Artifact, BidType, Claim, ClaimStatus, ClaimType, StructuralType};
use sett_cub::{Cub, CubSettings, RunOptions};
use sett_store::{CreateOutcome, Store, WriteOutcome, now_ms};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const WAIT: Duration = Duration::from_secs(30);

pub fn name(s: &str) -> AgentName {
    AgentName::parse(s).unwrap()
}

pub fn policy() -> Policy {
    Policy {
        agents: BTreeMap::new(),
        max_review_iterations: 3,
        bid_timeout_ms: 30_000,
        on_question_timeout: Default::default(),
        routing: Default::default(),
    }
}

/// Parses a `sett.yml` whose `agents:` section is `agents_yaml` (indented by 2).
pub fn agents(agents_yaml: &str) -> BTreeMap<AgentName, AgentConfig> {
    let text = format!("version: \"1.0\"\nagents:\n{agents_yaml}");
    SettConfig::parse("sett.yml", &text).unwrap_or_else(|e| panic!("{e}")).agents
}

pub fn script(dir: &Path, file: &str, body: &str) -> String {
    let path = dir.join(file);
    std::fs::write(&path, format!("#!/usr/bin/env bash\nset -u\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

pub fn settings(agent: &AgentConfig, workspace: &Path) -> CubSettings {
    CubSettings::new(agent.clone(), workspace.to_owned())
}

pub struct Running {
    pub shutdown: CancellationToken,
    pub handle: JoinHandle<()>,
}

impl Running {
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.handle).await.expect("the cub stops").expect("the cub task");
    }
}

pub fn start(store: &Store, settings: CubSettings, grace: Duration) -> Running {
    let shutdown = CancellationToken::new();
    let mut options = RunOptions::new(shutdown.clone());
    options.grace = grace;
    let cub = Cub::new(store.clone(), settings);
    let handle = tokio::spawn(async move { cub.run(options).await.expect("the cub runs") });
    Running { shutdown, handle }
}

/// One cub per configured agent.
pub fn start_all(store: &Store, cfg: &BTreeMap<AgentName, AgentConfig>, workspace: &Path) -> Vec<Running> {
    cfg.values().map(|a| start(store, settings(a, workspace), Duration::from_secs(5))).collect()
}

pub async fn artifact(
    store: &Store,
    st: StructuralType,
    ty: &str,
    payload: &str,
    by: &str,
    sources: &[&Artifact],
) -> Artifact {
    let mut a = Artifact::new_root(sett_store::new_artifact_id(), st, ty, payload, by, now_ms());
    a.source_artifacts = sources.iter().map(|s| s.id).collect();
    store_artifact(store, &a).await;
    a
}

/// A goal, as `sett forage` writes it.
pub async fn new_goal(store: &Store, payload: &str) -> Artifact {
    artifact(store, StructuralType::Standard, "GoalDefined", payload, "user", &[]).await
}

pub async fn store_artifact(store: &Store, a: &Artifact) {
    assert!(matches!(store.create_artifact(a).await.unwrap(), CreateOutcome::Created { .. }));
}

/// What the orchestrator does on a new Standard artifact: a claim waiting for bids.
pub async fn create_claim(store: &Store, target: &Artifact) -> Claim {
    // The id the orchestrator gives an artifact's claim: cubs bid on it from the artifact's
    // event, before the claim exists.
    let c = new_claim(initial_claim_id(&target.id), target, &policy(), now_ms());
    let event = EventData::ClaimCreated(ClaimCreated::new(&c));
    let written = store.write_claim(&c, None, true, &[], &[event], now_ms()).await.unwrap();
    assert_eq!(written, WriteOutcome::Written);
    c
}

/// What the orchestrator does on a grant: the claim moves to `status` with `agent`'s grant and
/// the `claim_granted` event.
pub async fn grant(
    store: &Store,
    claim: &Claim,
    status: ClaimStatus,
    agent: &str,
    claim_type: ClaimType,
    via_worker: bool,
) -> Claim {
    let mut next = claim.clone();
    next.status = status;
    next.revision += 1;
    next.grant_seq += 1;
    let seq = next.grant_seq;
    next.grants.clear();
    next.grants.insert(
        name(agent),
        Grant { claim_type, seq, granted_at_ms: now_ms(), deadline_ms: Some(now_ms() + 600_000), via_worker },
    );
    let event = EventData::ClaimGranted(ClaimGranted {
        agent: name(agent),
        approval: None,
        artifact_id: next.artifact_id,
        claim_id: next.id,
        claim_type,
        seq,
        via_worker,
    });
    let written = store.write_claim(&next, Some(claim.revision), false, &[], &[event], now_ms()).await.unwrap();
    assert_eq!(written, WriteOutcome::Written);
    next
}

/// A claim on `target` granted exclusively to `agent` (the common case).
pub async fn exclusive_grant(store: &Store, target: &Artifact, agent: &str, via_worker: bool) -> Claim {
    let claim = create_claim(store, target).await;
    grant(store, &claim, ClaimStatus::PendingExclusive, agent, ClaimType::Exclusive, via_worker).await
}

/// Re-delivers the latest `claim_granted` event of `claim` (the orchestrator may emit it again
/// after a restart).
pub async fn regrant_event(store: &Store, claim: &Claim, agent: &str) {
    let g = &claim.grants[&name(agent)];
    let event = EventData::ClaimGranted(ClaimGranted {
        agent: name(agent),
        approval: None,
        artifact_id: claim.artifact_id,
        claim_id: claim.id,
        claim_type: g.claim_type,
        seq: g.seq,
        via_worker: g.via_worker,
    });
    store.append_event(&event, now_ms()).await.unwrap();
}

/// Blocks (on the stream, no polling) until an event matching `pred` appears.
pub async fn wait_for(store: &Store, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
    let reader = store.event_reader().await.unwrap();
    let started = Instant::now();
    let mut after = "0".to_owned();
    while started.elapsed() < WAIT {
        for e in reader.read_after(&after, 1000, Duration::from_secs(1)).await.unwrap() {
            if pred(&e) {
                reader.quit().await;
                return e;
            }
            after = e.id;
        }
    }
    panic!("timed out waiting for {what}");
}

pub async fn wait_for_bid(store: &Store, claim: &Claim, agent: &str) -> BidType {
    let e = wait_for(
        store,
        &format!("{agent}'s bid"),
        |e| matches!(&e.data, EventData::BidSubmitted(b) if b.claim_id == claim.id && b.agent.as_str() == agent),
    )
    .await;
    let EventData::BidSubmitted(b) = e.data else { unreachable!("matched a bid") };
    b.bid
}

/// Waits for the one artifact a grant yields and returns it.
pub async fn wait_for_output(store: &Store, claim: &Claim) -> Artifact {
    let e = wait_for(store, "the grant's artifact", |e| {
        e.kind() == EventKind::ArtifactCreated && e.data.claim_id() == Some(claim.id)
    })
    .await;
    let id = e.data.artifact_id().unwrap();
    store.get_artifact(&id).await.unwrap().unwrap()
}

pub async fn events_of(store: &Store, kind: EventKind, claim: &Claim) -> Vec<Event> {
    store
        .events_after(None, 100_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind() == kind && e.data.claim_id() == Some(claim.id))
        .collect()
}

pub fn oldest_first(mut v: Vec<Artifact>) -> Vec<Artifact> {
    v.sort_by_key(|x| (x.created_at_ms, x.id));
    v
}

pub fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map(|s| s.lines().count()).unwrap_or(0)
}

/// True while `pid` is a live process (a zombie awaiting its reaper counts as dead).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => {
            let state = stat.rsplit(") ").next().and_then(|s| s.chars().next());
            !matches!(state, Some('Z' | 'X'))
        }
    }
}

pub const OK_TOOL: &str = r#"echo run >> "$(dirname "$0")/runs"
echo '{"artifact_type":"Code","artifact_payload":"done","summary":"did it"}'"#;

pub fn failure_payload(a: &Artifact) -> serde_json::Value {
    assert_eq!(
        (a.structural_type, a.artifact_type.as_str()),
        (StructuralType::Failure, "ToolExecutionFailure"),
        "{a:?}"
    );
    serde_json::from_str(&a.payload).unwrap()
}
