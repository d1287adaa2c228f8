//! What the pages and the API show, read from the blackboard: workflows (grouped from artifacts
//! and claims), open questions with their context chain, recently answered questions, one
//! artifact. Returns data; `html` and `api` present it.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::Serialize;
use sett_core::text::{excerpt, short};
use sett_core::usage::UsageTotals;
use sett_core::{Artifact, ArtifactId, Claim, ClaimId, ClaimStatus, StructuralType};
use sett_store::{AnswerRecord, OpenQuestionRef, Store, now_ms};

/// How far a question's context chain is followed back towards its goal.
const CHAIN_DEPTH: usize = 12;
/// How many answered questions the inbox lists.
pub const RECENTLY_ANSWERED: usize = 20;

/// A workflow's state, as the workflows table shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowState {
    Running,
    WaitingForHuman,
    Complete,
    Failed,
    /// An operator cancelled it (`sett cancel`, the console's Cancel).
    Cancelled,
}

impl WorkflowState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::WaitingForHuman => "waiting for a human",
            Self::Complete => "complete",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether the workflow has ended (nothing of it runs any more).
    pub fn ended(self) -> bool {
        matches!(self, Self::Complete | Self::Failed | Self::Cancelled)
    }

    pub fn css(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::WaitingForHuman => "waiting",
            Self::Complete => "complete",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// One goal and everything that flows from it.
#[derive(Debug, Clone)]
pub struct Workflow {
    pub goal: Artifact,
    /// Oldest first; the goal is first.
    pub artifacts: Vec<Artifact>,
    /// Oldest first.
    pub claims: Vec<Claim>,
    /// The state of the whole workflow: running while it or any branch runs (see
    /// [`combined_state`]); once all have ended, how the original ended.
    pub state: WorkflowState,
    /// Its branches (`sett fork`, the console's "Fork from here"), oldest first.
    pub branches: Vec<Branch>,
    pub agents: BTreeSet<String>,
    pub updated_at_ms: i64,
}

/// A branch of a workflow: what follows from one forked artifact, and its own state.
#[derive(Debug, Clone, Serialize)]
pub struct Branch {
    /// The branch's first artifact (a new version, or a different Answer).
    pub root: ArtifactId,
    pub forked_from: ArtifactId,
    /// Who forked it (the root's producer, `human:<name>`).
    pub produced_by: String,
    pub created_at_ms: i64,
    pub state: WorkflowState,
    pub artifacts: usize,
    pub claims: usize,
}

impl Workflow {
    /// What its agents reported they spent (docs/agents.md, "Usage").
    pub fn usage(&self) -> UsageTotals {
        let mut t = UsageTotals::default();
        for u in self.artifacts.iter().filter_map(|a| a.usage.as_ref()) {
            t.add(u);
        }
        t
    }
}

fn is_root(a: &Artifact) -> bool {
    a.source_artifacts.is_empty() && a.claim_id.is_none() && a.structural_type == StructuralType::Standard
}

/// Groups artifacts and claims into workflows. Membership is the one `sett watch` follows: the
/// goal belongs; an artifact belongs when one of its sources or its claim belongs; a claim
/// belongs when its artifact or the claim it reworks belongs. Newest goal first.
pub fn group(artifacts: Vec<Artifact>, claims: Vec<Claim>, open_questions: &HashSet<ArtifactId>) -> Vec<Workflow> {
    let mut art_goal: HashMap<ArtifactId, ArtifactId> = HashMap::new();
    let mut claim_goal: HashMap<ClaimId, ArtifactId> = HashMap::new();
    // Creation order settles nearly everything in one pass; repeat for the rare late link.
    loop {
        let mut changed = false;
        for a in &artifacts {
            if art_goal.contains_key(&a.id) {
                continue;
            }
            let goal = if is_root(a) {
                Some(a.id)
            } else {
                a.source_artifacts
                    .iter()
                    .find_map(|s| art_goal.get(s).copied())
                    .or_else(|| a.claim_id.and_then(|c| claim_goal.get(&c).copied()))
            };
            if let Some(g) = goal {
                art_goal.insert(a.id, g);
                changed = true;
            }
        }
        for c in &claims {
            if claim_goal.contains_key(&c.id) {
                continue;
            }
            let goal =
                art_goal.get(&c.artifact_id).copied().or_else(|| c.rework_of.and_then(|r| claim_goal.get(&r).copied()));
            if let Some(g) = goal {
                claim_goal.insert(c.id, g);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut flows: HashMap<ArtifactId, (Vec<Artifact>, Vec<Claim>)> = HashMap::new();
    for a in artifacts {
        if let Some(g) = art_goal.get(&a.id) {
            flows.entry(*g).or_default().0.push(a);
        }
    }
    for c in claims {
        if let Some(g) = claim_goal.get(&c.id) {
            flows.entry(*g).or_default().1.push(c);
        }
    }
    let mut out: Vec<Workflow> = flows
        .into_iter()
        .filter_map(|(goal_id, (mut artifacts, mut claims))| {
            artifacts.sort_by_key(|a| (a.id != goal_id, a.created_at_ms, a.id));
            claims.sort_by_key(|c| (c.created_at_ms, c.id));
            let goal = artifacts.first().filter(|a| a.id == goal_id)?.clone();
            let (state, branches) = branch_states(&goal, &artifacts, &claims, open_questions);
            let mut agents = BTreeSet::new();
            for a in &artifacts {
                if let Some(agent) = a.producing_agent() {
                    agents.insert(agent.to_string());
                }
            }
            for c in &claims {
                agents.extend(c.grants.keys().map(ToString::to_string));
            }
            let updated_at_ms = artifacts
                .iter()
                .map(|a| a.created_at_ms)
                .chain(claims.iter().map(|c| c.updated_at_ms))
                .max()
                .unwrap_or(goal.created_at_ms);
            Some(Workflow { goal, artifacts, claims, state, branches, agents, updated_at_ms })
        })
        .collect();
    out.sort_by_key(|w| std::cmp::Reverse((w.goal.created_at_ms, w.goal.id)));
    out
}

/// Splits a workflow into its original and its branches, as `sett watch` does
/// (`sett_ops::workflow`): a forked artifact starts a branch; an artifact follows a branch when
/// one of its sources or its claim does, a claim when its artifact or the claim it reworks does,
/// or (a forked answer's branch claim) when it resumes with the branch's answer. The newest
/// branch takes what follows from it, so a branch of a branch is its own. Returns the state of
/// the whole (see [`combined_state`]) and each branch, oldest first.
fn branch_states(
    goal: &Artifact,
    artifacts: &[Artifact],
    claims: &[Claim],
    open: &HashSet<ArtifactId>,
) -> (WorkflowState, Vec<Branch>) {
    let roots: Vec<&Artifact> = artifacts.iter().filter(|a| a.forked_from.is_some()).collect();
    if roots.is_empty() {
        return (state_of(goal, artifacts, claims, open), Vec::new());
    }
    let mut taken_a: HashSet<ArtifactId> = HashSet::new();
    let mut taken_c: HashSet<ClaimId> = HashSet::new();
    let mut branches = Vec::with_capacity(roots.len());
    for root in roots.iter().rev() {
        let mut arts: HashSet<ArtifactId> = HashSet::from([root.id]);
        let mut cls: HashSet<ClaimId> = HashSet::new();
        loop {
            let mut changed = false;
            for a in artifacts {
                if taken_a.contains(&a.id) || arts.contains(&a.id) || a.forked_from.is_some() {
                    continue;
                }
                if a.source_artifacts.iter().any(|s| arts.contains(s)) || a.claim_id.is_some_and(|c| cls.contains(&c)) {
                    arts.insert(a.id);
                    changed = true;
                }
            }
            for c in claims {
                if taken_c.contains(&c.id) || cls.contains(&c.id) {
                    continue;
                }
                if arts.contains(&c.artifact_id)
                    || c.rework_of.is_some_and(|r| cls.contains(&r))
                    || c.answered_questions.iter().any(|q| arts.contains(&q.answer))
                {
                    cls.insert(c.id);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let own_a: Vec<Artifact> = artifacts.iter().filter(|a| arts.contains(&a.id)).cloned().collect();
        let own_c: Vec<Claim> = claims.iter().filter(|c| cls.contains(&c.id)).cloned().collect();
        branches.push(Branch {
            root: root.id,
            forked_from: root.forked_from.unwrap_or(root.id),
            produced_by: root.produced_by_role.clone(),
            created_at_ms: root.created_at_ms,
            state: state_of(goal, &own_a, &own_c, open),
            artifacts: own_a.len(),
            claims: own_c.len(),
        });
        taken_a.extend(arts);
        taken_c.extend(cls);
    }
    branches.reverse();
    let main_a: Vec<Artifact> = artifacts.iter().filter(|a| !taken_a.contains(&a.id)).cloned().collect();
    let main_c: Vec<Claim> = claims.iter().filter(|c| !taken_c.contains(&c.id)).cloned().collect();
    let main = state_of(goal, &main_a, &main_c, open);
    (combined_state(main, branches.iter().map(|b| b.state)), branches)
}

/// The state of a workflow with branches: waiting for a human when any part waits, else
/// running when any part runs; once every part has ended, how the original ended (each
/// branch's outcome is its own).
pub fn combined_state(main: WorkflowState, branches: impl Iterator<Item = WorkflowState>) -> WorkflowState {
    let parts: Vec<WorkflowState> = std::iter::once(main).chain(branches).collect();
    if parts.contains(&WorkflowState::WaitingForHuman) {
        WorkflowState::WaitingForHuman
    } else if parts.contains(&WorkflowState::Running) {
        WorkflowState::Running
    } else {
        main
    }
}

fn state_of(goal: &Artifact, artifacts: &[Artifact], claims: &[Claim], open: &HashSet<ArtifactId>) -> WorkflowState {
    if artifacts.iter().any(|a| a.structural_type == StructuralType::Terminal) {
        return WorkflowState::Complete;
    }
    let goal_claim_stopped = claims.iter().any(|c| {
        c.artifact_id == goal.id
            && c.rework_of.is_none()
            && matches!(c.status, ClaimStatus::Terminated | ClaimStatus::Dormant)
    });
    // A retried failure (`sett retry`) leaves its new attempt's claim open: running again.
    let retrying = claims.iter().any(|c| !c.status.is_final());
    if !retrying && (goal_claim_stopped || artifacts.iter().any(|a| a.structural_type == StructuralType::Failure)) {
        return WorkflowState::Failed;
    }
    if artifacts.iter().any(|a| open.contains(&a.id)) {
        return WorkflowState::WaitingForHuman;
    }
    WorkflowState::Running
}

/// Every workflow of an instance (reads every artifact and claim, and the cancellations).
pub async fn workflows(store: &Store) -> sett_store::Result<Vec<Workflow>> {
    let (artifacts, claims, open, cancelled) =
        tokio::try_join!(store.all_artifacts(), store.all_claims(), store.open_questions(), store.cancellations())?;
    let open: HashSet<ArtifactId> = open.into_iter().map(|(id, _)| id).collect();
    let mut flows = group(artifacts, claims, &open);
    // A cancellation is the workflow's outcome whatever its claims say (they end as terminated,
    // which alone would read as failed): it is refused once the workflow has ended, and an
    // output arriving after it (late, acted on by nobody) does not complete it.
    for w in &mut flows {
        if cancelled.contains_key(&w.goal.id.to_string()) {
            w.state = WorkflowState::Cancelled;
            // A cancellation ends every branch still running, too.
            for b in w.branches.iter_mut().filter(|b| !b.state.ended()) {
                b.state = WorkflowState::Cancelled;
            }
        }
    }
    Ok(flows)
}

/// A workflow as its row in the workflows table shows it (no artifacts kept: the console
/// caches these rows).
#[derive(Debug, Clone, Serialize)]
pub struct WorkflowRow {
    pub goal_id: ArtifactId,
    pub goal: String,
    pub state: WorkflowState,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub agents: BTreeSet<String>,
    pub artifacts: usize,
    pub claims: usize,
    pub usage: UsageTotals,
}

impl WorkflowRow {
    pub fn of(w: &Workflow) -> Self {
        Self {
            goal_id: w.goal.id,
            goal: w.goal.payload.clone(),
            state: w.state,
            created_at_ms: w.goal.created_at_ms,
            updated_at_ms: w.updated_at_ms,
            agents: w.agents.clone(),
            artifacts: w.artifacts.len(),
            claims: w.claims.len(),
            usage: w.usage(),
        }
    }
}

/// One step of a question's context chain.
#[derive(Debug, Clone, Serialize)]
pub struct Link {
    pub id: String,
    pub short_id: String,
    pub structural_type: StructuralType,
    #[serde(rename = "type")]
    pub artifact_type: String,
    pub produced_by: String,
    pub excerpt: String,
}

impl Link {
    fn of(a: &Artifact) -> Self {
        Self {
            id: a.id.to_string(),
            short_id: short(&a.id.to_string()).to_owned(),
            structural_type: a.structural_type,
            artifact_type: a.artifact_type.clone(),
            produced_by: a.produced_by_role.clone(),
            excerpt: excerpt(&a.payload, 160),
        }
    }
}

/// One open question, as the inbox and `GET …/questions` show it.
#[derive(Debug, Clone, Serialize)]
pub struct Question {
    pub instance: String,
    pub id: String,
    pub short_id: String,
    pub agent: String,
    pub claim_id: Option<String>,
    pub asked_at_ms: i64,
    pub age_ms: i64,
    pub deadline_ms: Option<i64>,
    pub time_left_ms: Option<i64>,
    pub text: String,
    /// What the question is for: `question` (an agent's), `approval` (a gated grant), ….
    pub kind: sett_core::answer_spec::QuestionKind,
    /// The workflow's goal, when the chain reaches it.
    pub goal: Option<Link>,
    /// What the question was asked about, nearest first, up to the goal (left empty on an
    /// inbox page, which loads it on demand).
    pub context: Vec<Link>,
    /// How many artifacts the context chain has.
    pub context_len: usize,
}

/// The artifact a question (or any artifact) was produced from: its first source, else the
/// artifact of its claim.
fn parent(a: &Artifact, claims: &HashMap<ClaimId, Claim>) -> Option<ArtifactId> {
    a.source_artifacts
        .first()
        .copied()
        .or_else(|| a.claim_id.and_then(|c| claims.get(&c)).map(|c| c.artifact_id).filter(|p| *p != a.id))
}

/// The inbox order: the soonest deadline first (overdue ones at the top), then the questions
/// that never time out, oldest first.
pub fn inbox_key(q: &OpenQuestionRef) -> (bool, i64, i64, ArtifactId) {
    (q.deadline_ms.is_none(), q.deadline_ms.unwrap_or(0), q.asked_at_ms, q.id)
}

/// Every open question of an instance in inbox order, light: ids, claims and deadlines only.
pub async fn open_refs(store: &Store) -> sett_store::Result<Vec<OpenQuestionRef>> {
    let mut refs = store.open_question_deadlines().await?;
    refs.sort_by_key(inbox_key);
    Ok(refs)
}

/// The questions among `refs` addressed to `user` (a member of `groups` by the users file): by
/// name, or through a group (of `sett.yml` or the users file) — what the inbox's "Mine" shows,
/// as `sett questions --mine` does. A question addressed to nobody is nobody's in particular.
pub async fn addressed_to(
    store: &Store,
    refs: Vec<OpenQuestionRef>,
    user: &str,
    groups: &[String],
) -> sett_store::Result<Vec<OpenQuestionRef>> {
    let claims = claims_of(store, refs.iter().filter_map(|r| r.claim_id)).await?;
    Ok(refs
        .into_iter()
        .filter(|r| {
            let open = r.claim_id.and_then(|c| claims.get(&c)).and_then(|c| c.open_questions.get(&r.id));
            open.is_some_and(|q| !q.to.is_empty() && q.may_answer(user, groups))
        })
        .collect())
}

/// Follows each of `ids` back towards its goal, level by level (one pipelined batch per step
/// back), so the cost grows with the chain depth, not with the number of questions times the
/// depth. Every artifact read lands in `cache`.
async fn chains(
    store: &Store,
    ids: &[ArtifactId],
    cache: &mut HashMap<ArtifactId, Artifact>,
    claims: &HashMap<ClaimId, Claim>,
) -> sett_store::Result<Vec<Vec<ArtifactId>>> {
    let mut chains: Vec<Vec<ArtifactId>> = ids.iter().map(|id| vec![*id]).collect();
    for _ in 0..CHAIN_DEPTH {
        let mut wanted = BTreeSet::new();
        for chain in &chains {
            let last = chain.last().and_then(|id| cache.get(id));
            if let Some(p) = last.and_then(|a| parent(a, claims))
                && !cache.contains_key(&p)
            {
                wanted.insert(p);
            }
        }
        let wanted: Vec<ArtifactId> = wanted.into_iter().collect();
        for a in store.get_artifacts(&wanted).await? {
            cache.insert(a.id, a);
        }
        let mut grew = false;
        for chain in &mut chains {
            let Some(last) = chain.last().and_then(|id| cache.get(id)) else { continue };
            if let Some(p) = parent(last, claims)
                && cache.contains_key(&p)
                && !chain.contains(&p)
            {
                chain.push(p);
                grew = true;
            }
        }
        if !grew {
            break;
        }
    }
    Ok(chains)
}

async fn claims_of(store: &Store, ids: impl Iterator<Item = ClaimId>) -> sett_store::Result<HashMap<ClaimId, Claim>> {
    let ids: Vec<ClaimId> = ids.collect::<BTreeSet<_>>().into_iter().collect();
    let mut claims = HashMap::new();
    for chunk in ids.chunks(500) {
        let got = futures::future::try_join_all(chunk.iter().map(|c| store.get_claim(c))).await?;
        claims.extend(got.into_iter().flatten().map(|c| (c.id, c)));
    }
    Ok(claims)
}

/// The questions `refs` of one instance in full, in the order given. `short_ids` are unique
/// among all the open questions. With `with_context`, each carries its whole context chain;
/// without, only its goal (the chain is still followed, but not kept: an inbox page loads a
/// chain when it is opened, from [`context`]).
pub async fn questions(
    store: &Store,
    refs: &[OpenQuestionRef],
    short_ids: &HashMap<ArtifactId, String>,
    with_context: bool,
) -> sett_store::Result<Vec<Question>> {
    let now = now_ms();
    let ids: Vec<ArtifactId> = refs.iter().map(|r| r.id).collect();
    let mut cache: HashMap<ArtifactId, Artifact> =
        store.get_artifacts(&ids).await?.into_iter().map(|a| (a.id, a)).collect();
    let claims = claims_of(store, cache.values().filter_map(|a| a.claim_id)).await?;
    let chains = chains(store, &ids, &mut cache, &claims).await?;
    let mut out = Vec::with_capacity(refs.len());
    for (r, chain) in refs.iter().zip(chains) {
        let id = r.id;
        let artifact = cache.get(&id);
        let claim = artifact.and_then(|a| a.claim_id).and_then(|c| claims.get(&c));
        let oq = claim.and_then(|c| c.open_questions.get(&id));
        let deadline_ms = oq.and_then(|q| q.deadline_ms);
        // An approval is asked by the orchestrator about an agent: name that agent.
        let agent = oq
            .filter(|q| q.approval.is_some())
            .map(|q| q.agent.to_string())
            .or_else(|| artifact.map(|a| a.produced_by_role.clone()))
            .or_else(|| oq.map(|q| q.agent.to_string()))
            .unwrap_or_else(|| "?".into());
        let context: Vec<Link> = if with_context {
            chain.iter().skip(1).filter_map(|p| cache.get(p)).map(Link::of).collect()
        } else {
            Vec::new()
        };
        let goal = chain.last().and_then(|g| cache.get(g)).filter(|g| is_root(g)).map(Link::of);
        out.push(Question {
            instance: store.instance().to_string(),
            id: id.to_string(),
            short_id: short_ids.get(&id).cloned().unwrap_or_else(|| id.to_string()),
            agent,
            claim_id: artifact.and_then(|a| a.claim_id).map(|c| c.to_string()),
            asked_at_ms: r.asked_at_ms,
            age_ms: now - r.asked_at_ms,
            deadline_ms,
            time_left_ms: deadline_ms.map(|d| d - now),
            kind: artifact.map(|a| sett_core::answer_spec::QuestionKind::of_payload(&a.payload)).unwrap_or_default(),
            text: artifact.map(|a| a.payload.clone()).unwrap_or_default(),
            context_len: chain.len().saturating_sub(1),
            goal,
            context,
        });
    }
    Ok(out)
}

/// The open questions of an instance, oldest first, with their context chains (the API's
/// list: every question in full).
pub async fn open_questions(store: &Store) -> sett_store::Result<Vec<Question>> {
    let open = store.open_questions().await?;
    let ids: Vec<ArtifactId> = open.iter().map(|(id, _)| *id).collect();
    let refs: Vec<OpenQuestionRef> = open
        .iter()
        .map(|(id, at)| OpenQuestionRef {
            id: *id,
            asked_at_ms: *at,
            claim_id: None,
            deadline_ms: None,
            kind: Default::default(),
        })
        .collect();
    questions(store, &refs, &sett_core::text::unique_prefixes(&ids, 8), true).await
}

/// What an artifact (a question) was asked about: its goal and its context chain, nearest
/// first. `None` when there is no such artifact.
pub async fn context(store: &Store, id: &ArtifactId) -> sett_store::Result<Option<(Option<Link>, Vec<Link>)>> {
    let Some(a) = store.get_artifact(id).await? else {
        return Ok(None);
    };
    let claims = claims_of(store, a.claim_id.into_iter()).await?;
    let mut cache = HashMap::from([(a.id, a)]);
    let chain = chains(store, &[*id], &mut cache, &claims).await?.pop().unwrap_or_default();
    let links = chain.iter().skip(1).filter_map(|p| cache.get(p)).map(Link::of).collect();
    let goal = chain.last().and_then(|g| cache.get(g)).filter(|g| is_root(g)).map(Link::of);
    Ok(Some((goal, links)))
}

/// A question that has been answered, for the inbox's "recently answered" list.
#[derive(Debug, Clone, Serialize)]
pub struct AnsweredQuestion {
    pub instance: String,
    pub id: String,
    pub short_id: String,
    pub text: String,
    pub agent: String,
    pub record: AnswerRecord,
    pub answer: String,
}

/// The `limit` most recently answered questions, newest first.
pub async fn recently_answered(store: &Store, limit: usize) -> sett_store::Result<Vec<AnsweredQuestion>> {
    let mut records = store.answer_records().await?;
    records.sort_by_key(|(_, r)| std::cmp::Reverse(r.answered_at_ms));
    records.truncate(limit);
    let mut ids = Vec::new();
    for (q, r) in &records {
        ids.push(*q);
        ids.push(r.answer_id);
    }
    let got: HashMap<ArtifactId, Artifact> = store.get_artifacts(&ids).await?.into_iter().map(|a| (a.id, a)).collect();
    Ok(records
        .into_iter()
        .map(|(q, record)| {
            let question = got.get(&q);
            AnsweredQuestion {
                instance: store.instance().to_string(),
                id: q.to_string(),
                short_id: short(&q.to_string()).to_owned(),
                text: question.map(|a| a.payload.clone()).unwrap_or_default(),
                agent: question.map(|a| a.produced_by_role.clone()).unwrap_or_default(),
                answer: got.get(&record.answer_id).map(|a| a.payload.clone()).unwrap_or_default(),
                record,
            }
        })
        .collect())
}

/// One artifact with what surrounds it: its claim, the claim's artifact, the answer record of
/// a question.
#[derive(Debug, Clone, Serialize)]
pub struct ArtifactView {
    pub artifact: Artifact,
    pub claim: Option<Claim>,
    pub answer: Option<AnswerRecord>,
    pub open_question: bool,
    /// For an approval question: what it asks to approve (agent, claim type, target, context).
    pub approval: Option<sett_ops::approval::ApprovalView>,
    /// Where it is when it was archived out of Redis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive: Option<FromArchive>,
}

/// An artifact or workflow read from the instance's archive (no longer in Redis).
#[derive(Debug, Clone, Serialize)]
pub struct FromArchive {
    pub segment: String,
    /// The goal of the workflow it belongs to.
    pub workflow: String,
}

fn archive_error(e: sett_ops::archive::ArchiveError) -> sett_store::StoreError {
    match e {
        sett_ops::archive::ArchiveError::Store(s) => s,
        other => sett_store::StoreError::Conflict(other.to_string()),
    }
}

/// The instance's archive store, when it has an archive (its location is recorded in Redis).
async fn archive_objects(store: &Store) -> sett_store::Result<Option<sett_ops::archive::ArchiveObjects>> {
    if !sett_ops::archive::has_archive(store).await.map_err(archive_error)? {
        return Ok(None);
    }
    sett_ops::archive::recorded_objects(store, None).await.map_err(archive_error)
}

/// An artifact archived out of Redis, from the archive (its claim and answer are archived with it
/// and not shown).
async fn archived_artifact(store: &Store, id: &ArtifactId) -> sett_store::Result<Option<ArtifactView>> {
    let Some(objects) = archive_objects(store).await? else { return Ok(None) };
    let Some(found) = sett_ops::archive::find_artifact(store, &objects, id).await.map_err(archive_error)? else {
        return Ok(None);
    };
    let artifact = sett_store::codec::decode_artifact(found.fields, false)?;
    Ok(Some(ArtifactView {
        artifact,
        claim: None,
        answer: None,
        open_question: false,
        approval: None,
        archive: Some(FromArchive { segment: found.segment, workflow: found.workflow }),
    }))
}

/// A workflow archived out of Redis, from the archive, and the segment holding it.
pub async fn archived_workflow(store: &Store, goal: &ArtifactId) -> sett_store::Result<Option<(Workflow, String)>> {
    let Some(objects) = archive_objects(store).await? else { return Ok(None) };
    let Some(found) = sett_ops::archive::find_workflow(store, &objects, goal).await.map_err(archive_error)? else {
        return Ok(None);
    };
    let mut artifacts = found
        .artifacts
        .into_iter()
        .map(|f| sett_store::codec::decode_artifact(f, false))
        .collect::<sett_store::Result<Vec<_>>>()?;
    artifacts.sort_by_key(|a| (a.created_at_ms, a.id));
    let mut claims = found
        .claims
        .into_iter()
        .map(|f| sett_store::codec::decode_claim(f, false))
        .collect::<sett_store::Result<Vec<_>>>()?;
    claims.sort_by_key(|c| (c.created_at_ms, c.id));
    Ok(group(artifacts, claims, &HashSet::new()).into_iter().find(|w| w.goal.id == *goal).map(|w| (w, found.segment)))
}

pub async fn artifact(store: &Store, id: &ArtifactId) -> sett_store::Result<Option<ArtifactView>> {
    let Some(artifact) = store.get_artifact(id).await? else {
        return archived_artifact(store, id).await;
    };
    let claim = match artifact.claim_id {
        Some(c) => store.get_claim(&c).await?,
        None => None,
    };
    let (answer, open_question, approval) = if artifact.structural_type == StructuralType::Question {
        let rec = store.answer_record(id).await?;
        let open = rec.is_none() && store.is_question_open(id).await?;
        (rec, open, sett_ops::approval::approval_view(store, id).await?)
    } else {
        (None, false, None)
    };
    Ok(Some(ArtifactView { artifact, claim, answer, open_question, approval, archive: None }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sett_core::machine::new_claim;
    use sett_core::policy::Policy;

    fn policy() -> Policy {
        Policy {
            agents: Default::default(),
            max_review_iterations: 3,
            bid_timeout_ms: 1_000,
            on_question_timeout: Default::default(),
            routing: Default::default(),
        }
    }

    fn child(st: StructuralType, sources: &[&Artifact], claim: Option<ClaimId>, at: i64) -> Artifact {
        let mut a = Artifact::new_root(sett_store::new_artifact_id(), st, "T", "x", "Writer", at);
        a.source_artifacts = sources.iter().map(|s| s.id).collect();
        a.claim_id = claim;
        a
    }

    #[test]
    fn grouping_follows_sources_and_claims() {
        let g1 = Artifact::new_root(sett_store::new_artifact_id(), StructuralType::Standard, "Goal", "one", "user", 1);
        let g2 = Artifact::new_root(sett_store::new_artifact_id(), StructuralType::Standard, "Goal", "two", "user", 2);
        let c1 = new_claim(sett_store::new_claim_id(), &g1, &policy(), 3);
        let draft = child(StructuralType::Standard, &[&g1], Some(c1.id), 4);
        // A question tied to the goal only by its claim.
        let q = child(StructuralType::Question, &[], Some(c1.id), 5);
        let mut rework = new_claim(sett_store::new_claim_id(), &draft, &policy(), 6);
        rework.rework_of = Some(c1.id);
        let term = child(StructuralType::Terminal, &[&draft], Some(rework.id), 7);
        let open = HashSet::from([q.id]);
        let flows = group(
            vec![g1.clone(), g2.clone(), draft.clone(), q.clone(), term.clone()],
            vec![c1.clone(), rework],
            &open,
        );
        assert_eq!(flows.len(), 2);
        assert_eq!(flows[0].goal.id, g2.id, "newest goal first");
        assert_eq!(flows[0].state, WorkflowState::Running);
        let f1 = &flows[1];
        assert_eq!(f1.artifacts.iter().map(|a| a.id).collect::<Vec<_>>(), vec![g1.id, draft.id, q.id, term.id]);
        assert_eq!(f1.claims.len(), 2);
        assert_eq!(f1.state, WorkflowState::Complete);
        assert!(f1.agents.contains("Writer"));
        let waiting = group(vec![g1.clone(), q.clone()], vec![c1.clone()], &open);
        assert_eq!(waiting[0].state, WorkflowState::WaitingForHuman);
        let mut dormant = c1;
        dormant.status = ClaimStatus::Dormant;
        assert_eq!(group(vec![g1], vec![dormant], &HashSet::new())[0].state, WorkflowState::Failed);
    }

    #[test]
    fn a_running_branch_keeps_a_completed_workflow_running_until_it_ends() {
        let g = Artifact::new_root(sett_store::new_artifact_id(), StructuralType::Standard, "Goal", "one", "user", 1);
        let mut c1 = new_claim(sett_store::new_claim_id(), &g, &policy(), 2);
        c1.status = ClaimStatus::Complete;
        let draft = child(StructuralType::Standard, &[&g], Some(c1.id), 3);
        let mut c2 = new_claim(sett_store::new_claim_id(), &draft, &policy(), 4);
        c2.status = ClaimStatus::Complete;
        let term = child(StructuralType::Terminal, &[&draft], Some(c2.id), 5);
        // Forked from the draft: a new version, its claim still running.
        let mut fork = child(StructuralType::Standard, &[&g], None, 6);
        fork.forked_from = Some(draft.id);
        fork.produced_by_role = "human:Olga".into();
        let c3 = new_claim(sett_store::new_claim_id(), &fork, &policy(), 7);
        let arts = vec![g.clone(), draft.clone(), term.clone(), fork.clone()];
        let flows = group(arts.clone(), vec![c1.clone(), c2.clone(), c3.clone()], &HashSet::new());
        assert_eq!(flows.len(), 1);
        let w = &flows[0];
        assert_eq!(w.state, WorkflowState::Running, "the branch still runs");
        assert_eq!(w.branches.len(), 1);
        let b = &w.branches[0];
        assert_eq!((b.root, b.forked_from, b.produced_by.as_str()), (fork.id, draft.id, "human:Olga"));
        assert_eq!((b.state, b.artifacts, b.claims), (WorkflowState::Running, 1, 1));
        // The branch's own Terminal ends it, and the whole workflow with it.
        let mut c3 = c3;
        c3.status = ClaimStatus::Complete;
        let branch_end = child(StructuralType::Terminal, &[&fork], Some(c3.id), 8);
        let mut all = arts;
        all.push(branch_end);
        let flows = group(all, vec![c1, c2, c3], &HashSet::new());
        assert_eq!(flows[0].state, WorkflowState::Complete);
        assert_eq!((flows[0].branches[0].state, flows[0].branches[0].artifacts), (WorkflowState::Complete, 2));
    }

    #[test]
    fn a_forked_answer_branch_owns_the_claim_that_resumes_with_it() {
        let g = Artifact::new_root(sett_store::new_artifact_id(), StructuralType::Standard, "Goal", "one", "user", 1);
        let mut c1 = new_claim(sett_store::new_claim_id(), &g, &policy(), 2);
        c1.status = ClaimStatus::Complete;
        let q = child(StructuralType::Question, &[&g], Some(c1.id), 3);
        let a1 = child(StructuralType::Answer, &[&q], Some(c1.id), 4);
        let term = child(StructuralType::Terminal, &[&g], Some(c1.id), 5);
        let mut a2 = child(StructuralType::Answer, &[&q], None, 6);
        a2.forked_from = Some(q.id);
        // The branch claim: on the same target, resuming with the different answer.
        let mut c2 = new_claim(sett_store::new_claim_id(), &g, &policy(), 7);
        c2.status = ClaimStatus::PendingAssignment;
        c2.answered_questions.push(sett_core::claim::AnsweredQuestion {
            agent: sett_core::AgentName::parse("Asker").unwrap(),
            question: q.id,
            answer: a2.id,
        });
        let flows = group(vec![g, q, a1, term, a2.clone()], vec![c1, c2.clone()], &HashSet::new());
        let w = &flows[0];
        assert_eq!(w.state, WorkflowState::Running);
        assert_eq!((w.branches[0].root, w.branches[0].claims), (a2.id, 1));
    }
}
