//! Pausing and resuming an instance or one workflow: the pause records (`paused`), the fence of
//! paused workflows (`index:paused`, checked by `lua/write_claim.lua` on every write that
//! grants), the claims a pause held (`held`), and the two atomic writes: `lua/pause.lua` and
//! `lua/resume.lua` (which also moves the deadlines of the paused claims later by the time they
//! stood still). Also the operators' action records (`actions`) that `sett verify` checks.

use std::collections::HashMap;

use fred::prelude::*;
use serde::{Deserialize, Serialize};
use sett_core::event::{ClaimUpdated, EventData, Paused, Resumed};
use sett_core::{ArtifactId, Claim, ClaimId, ledger};

use crate::codec::claim_rewrite;
use crate::scripts::{PAUSE, RELEASE_HELD, RESUME};
use crate::{Result, Store, StoreError};

/// What a pause covers: the whole instance or the workflow of one goal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseScope {
    Instance,
    Workflow(ArtifactId),
}

impl PauseScope {
    /// The field the pause is stored under (`instance`, or the goal id).
    pub fn field(&self) -> String {
        match self {
            Self::Instance => "instance".to_owned(),
            Self::Workflow(goal) => goal.to_string(),
        }
    }

    /// Reads a field as stored (or a scope a refused write names).
    pub fn parse(field: &str) -> Option<Self> {
        if field == "instance" {
            return Some(Self::Instance);
        }
        ArtifactId::parse(field).ok().map(Self::Workflow)
    }

    pub fn goal(&self) -> Option<ArtifactId> {
        match self {
            Self::Instance => None,
            Self::Workflow(goal) => Some(*goal),
        }
    }
}

impl std::fmt::Display for PauseScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Instance => f.write_str("the instance"),
            Self::Workflow(goal) => write!(f, "the workflow of goal {goal}"),
        }
    }
}

/// Who paused, why, when, and the action that recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseRecord {
    pub action_id: String,
    pub operator: String,
    #[serde(default)]
    pub reason: Option<String>,
    pub at_ms: i64,
}

/// An operator's steering action as recorded beside its event (`actions`, by action id):
/// `sett verify` checks that each `paused`, `resumed`, `workflow_retried` and `artifact_forked`
/// event has one with the same kind, target, operator, reason and time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// The event kind (`paused`, …).
    pub kind: String,
    /// What it acted on: `instance`, a goal id, a claim id or an artifact id.
    pub target: String,
    pub operator: String,
    #[serde(default)]
    pub reason: Option<String>,
    pub at_ms: i64,
}

impl ActionRecord {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("serialisable")
    }

    pub fn decode(raw: &str) -> Result<Self> {
        serde_json::from_str(raw).map_err(|e| StoreError::Decode(format!("action record: {e}")))
    }
}

/// Everything one pause writes (see [`Store::pause`]).
#[derive(Debug, Clone)]
pub struct PauseWrite {
    pub scope: PauseScope,
    pub record: PauseRecord,
    /// A workflow's open claims with the revisions read (a claim that moved on makes the caller
    /// read again); empty for the instance.
    pub claims: Vec<(ClaimId, u64)>,
    /// Every artifact and claim id of the workflow known to the caller.
    pub members: Vec<String>,
    /// The outputs its open claims' grants may still write.
    pub outputs: Vec<ArtifactId>,
}

/// How a pause went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PauseOutcome {
    Paused,
    /// Paused before (nothing written).
    AlreadyPaused(PauseRecord),
    /// The workflow moved on while it was read: read again.
    Stale,
}

/// Everything one resume writes (see [`Store::resume`]).
#[derive(Debug, Clone)]
pub struct ResumeWrite {
    pub scope: PauseScope,
    /// The pause being lifted (its action id is checked: a pause lifted and set again meanwhile
    /// makes the caller read again).
    pub pause: PauseRecord,
    pub action_id: String,
    pub operator: String,
    pub reason: Option<String>,
    pub at_ms: i64,
    /// Each open claim whose deadlines moved, as it will be stored (revision + 1), with the
    /// revision read.
    pub claims: Vec<(Claim, u64)>,
}

/// How a resume went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeOutcome {
    Resumed,
    /// Not paused (nothing written).
    NotPaused,
    /// A claim moved on, or the pause changed, while it was read: read again.
    Stale,
}

fn decode_pause(raw: &str) -> Result<PauseRecord> {
    serde_json::from_str(raw).map_err(|e| StoreError::Decode(format!("pause record: {e}")))
}

impl Store {
    /// Pauses the instance or one workflow in one atomic step (`lua/pause.lua`): the pause
    /// record, the fence over a workflow's members and expected outputs, the action record and
    /// the `paused` event. Refused, writing nothing, when it is paused already or (for a
    /// workflow) a claim moved on since the caller read it.
    pub async fn pause(&self, p: &PauseWrite) -> Result<PauseOutcome> {
        let k = &self.keys;
        let ts = p.record.at_ms.to_string();
        let data = EventData::Paused(Paused {
            action_id: p.record.action_id.clone(),
            goal_id: p.scope.goal(),
            operator: p.record.operator.clone(),
            reason: p.record.reason.clone(),
        })
        .to_json();
        let digest = ledger::event_digest("paused", &ts, &data, None);
        let action = ActionRecord {
            kind: "paused".into(),
            target: p.scope.field(),
            operator: p.record.operator.clone(),
            reason: p.record.reason.clone(),
            at_ms: p.record.at_ms,
        };
        let mut keys = vec![k.events(), k.ledger(), k.paused(), k.pause_fence(), k.actions(), k.claim_by_artifact()];
        keys.extend(p.claims.iter().map(|(c, _)| k.claim(c)));
        keys.extend(p.outputs.iter().map(|o| k.artifact(o)));
        let claims: Vec<(String, String)> = p.claims.iter().map(|(c, r)| (c.to_string(), r.to_string())).collect();
        let args = vec![
            p.scope.field(),
            ts,
            serde_json::to_string(&p.record).expect("serialisable"),
            data,
            digest,
            p.record.action_id.clone(),
            action.encode(),
            serde_json::to_string(&claims).expect("serialisable"),
            serde_json::to_string(&p.members).expect("serialisable"),
            serde_json::to_string(&p.outputs).expect("serialisable"),
        ];
        let (reply, rewritten): (Vec<String>, bool) = self
            .durable(|| async { Ok(PAUSE.evalsha_with_reload(self.client(), keys.clone(), args.clone()).await?) })
            .await?;
        Ok(match reply.first().map(String::as_str) {
            Some("ok") => PauseOutcome::Paused,
            // The first write survived a failover and this is its repetition: ours.
            Some("already") if rewritten && decode_pause(&reply[1])? == p.record => PauseOutcome::Paused,
            Some("already") => PauseOutcome::AlreadyPaused(decode_pause(reply.get(1).map_or("", |s| s))?),
            Some("conflict" | "stale") => PauseOutcome::Stale,
            other => return Err(StoreError::Decode(format!("unexpected pause reply {other:?}"))),
        })
    }

    /// Lifts a pause in one atomic step (`lua/resume.lua`): the `resumed` event, each listed
    /// claim rewritten with its deadlines moved (compare-and-set, with its `claim_updated` and
    /// its deadline index entry), the pause record and a workflow's fence removed, the action
    /// record.
    pub async fn resume(&self, r: &ResumeWrite) -> Result<ResumeOutcome> {
        let k = &self.keys;
        let ts = r.at_ms.to_string();
        let data = EventData::Resumed(Resumed {
            action_id: r.action_id.clone(),
            claims: r.claims.iter().map(|(c, _)| c.id).collect(),
            goal_id: r.scope.goal(),
            operator: r.operator.clone(),
            paused_ms: (r.at_ms - r.pause.at_ms).max(0),
            reason: r.reason.clone(),
        })
        .to_json();
        let digest = ledger::event_digest("resumed", &ts, &data, None);
        let action = ActionRecord {
            kind: "resumed".into(),
            target: r.scope.field(),
            operator: r.operator.clone(),
            reason: r.reason.clone(),
            at_ms: r.at_ms,
        };
        let mut keys = vec![k.events(), k.ledger(), k.paused(), k.pause_fence(), k.actions(), k.deadlines()];
        let mut claims = Vec::with_capacity(r.claims.len());
        for (claim, expected) in &r.claims {
            keys.push(k.claim(&claim.id));
            let updated = EventData::ClaimUpdated(ClaimUpdated::written(claim));
            let mut entry = claim_rewrite(claim, *expected, &updated, &ts);
            entry.push(claim.next_deadline_ms().map(|d| d.to_string()).unwrap_or_default().into());
            claims.push(serde_json::Value::Array(entry));
        }
        let args = vec![
            r.scope.field(),
            ts,
            r.pause.action_id.clone(),
            data,
            digest,
            r.action_id.clone(),
            action.encode(),
            serde_json::Value::Array(claims).to_string(),
        ];
        let (reply, rewritten): (Vec<String>, bool) = self
            .durable(|| async { Ok(RESUME.evalsha_with_reload(self.client(), keys.clone(), args.clone()).await?) })
            .await?;
        Ok(match reply.first().map(String::as_str) {
            Some("ok") => ResumeOutcome::Resumed,
            // The first write survived a failover and this is its repetition: ours.
            Some("not_paused") if rewritten && self.action(&r.action_id).await?.is_some() => ResumeOutcome::Resumed,
            Some("not_paused") => ResumeOutcome::NotPaused,
            Some("conflict" | "stale") => ResumeOutcome::Stale,
            other => return Err(StoreError::Decode(format!("unexpected resume reply {other:?}"))),
        })
    }

    /// The pause of `scope`, if it is paused.
    pub async fn pause_of(&self, scope: &PauseScope) -> Result<Option<PauseRecord>> {
        let raw: Option<String> = self.client().hget(self.keys.paused(), scope.field()).await?;
        raw.as_deref().map(decode_pause).transpose()
    }

    /// Every pause in force (the instance's first, then workflows by goal id).
    pub async fn pauses(&self) -> Result<Vec<(PauseScope, PauseRecord)>> {
        let raw: HashMap<String, String> = self.client().hgetall(self.keys.paused()).await?;
        let mut out = Vec::with_capacity(raw.len());
        for (field, rec) in raw {
            let scope =
                PauseScope::parse(&field).ok_or_else(|| StoreError::Decode(format!("pause record under '{field}'")))?;
            out.push((scope, decode_pause(&rec)?));
        }
        out.sort_by_key(|(scope, _)| *scope);
        Ok(out)
    }

    /// The pause that holds a claim on `artifact` (`claim` is its id), if any: the instance's,
    /// or its workflow's (the fence of paused workflows).
    pub async fn pause_holding(&self, claim: &ClaimId, artifact: &ArtifactId) -> Result<Option<PauseScope>> {
        let (instance, fenced): (bool, Vec<Option<String>>) = tokio::try_join!(
            self.client().hexists(self.keys.paused(), "instance"),
            self.client().hmget(self.keys.pause_fence(), vec![claim.to_string(), artifact.to_string()]),
        )?;
        if instance {
            return Ok(Some(PauseScope::Instance));
        }
        Ok(fenced.into_iter().flatten().find_map(|g| PauseScope::parse(&g)))
    }

    /// Records that a granting transition of `claim` was refused by a pause (scored by `now_ms`:
    /// a later hold of the same claim moves the score on, so a release that started before it
    /// keeps it).
    pub async fn hold_claim(&self, claim: &ClaimId, now_ms: i64) -> Result<()> {
        let _: i64 =
            self.client().zadd(self.keys.held(), None, None, false, false, (now_ms as f64, claim.to_string())).await?;
        Ok(())
    }

    /// The held claims with their scores (see [`Store::hold_claim`]).
    pub async fn held_claims(&self) -> Result<Vec<(ClaimId, f64)>> {
        let raw: Vec<(String, f64)> = self.client().zrange(self.keys.held(), 0, -1, None, false, None, true).await?;
        raw.into_iter()
            .map(|(id, score)| Ok((ClaimId::parse(&id).map_err(|e| StoreError::Decode(e.to_string()))?, score)))
            .collect()
    }

    /// Forgets a held claim, unless it was held again since `score` was read.
    pub async fn release_held(&self, claim: &ClaimId, score: f64) -> Result<()> {
        let _: i64 = RELEASE_HELD
            .evalsha_with_reload(self.client(), vec![self.keys.held()], vec![claim.to_string(), score.to_string()])
            .await?;
        Ok(())
    }

    /// One action record, by id.
    pub async fn action(&self, id: &str) -> Result<Option<ActionRecord>> {
        let raw: Option<String> = self.client().hget(self.keys.actions(), id).await?;
        raw.as_deref().map(ActionRecord::decode).transpose()
    }

    /// Every action record as stored, by action id (`sett verify` reads them all).
    pub async fn actions(&self) -> Result<HashMap<String, String>> {
        Ok(self.client().hgetall(self.keys.actions()).await?)
    }
}
