//! Claims: idempotent creation, compare-and-set transitions, bids, grant executions.

use std::collections::{BTreeMap, HashMap};

use fred::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sett_core::event::{BidSubmitted, ClaimCreated, ClaimUpdated, EventData, EventKind};
use sett_core::ledger;
use sett_core::record::ExecutionRecord;
use sett_core::{AgentName, ArtifactId, BidType, Claim, ClaimId, ClaimStatus};

use crate::codec::{claim_binding, decode_claim, encode_claim};
use crate::scripts::{SUBMIT_BID, WRITE_CLAIM};
use crate::{Result, Store, StoreError};

/// The result of a claim write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    Written,
    /// Create refused: the claim (or the artifact's claim) exists already.
    Exists(String),
    /// Compare-and-set refused: the stored revision is not the expected one.
    Conflict {
        current: String,
    },
    /// Create refused: the claim's artifact belongs to a cancelled workflow (the fence entry,
    /// e.g. `member:<goal>`).
    Cancelled(String),
    /// Refused because the write grants and the instance (`instance`) or the claim's workflow
    /// (its goal id) is paused: nothing was written; hold the claim and apply it again on resume.
    Paused(String),
    /// Create refused: a standing bid the write was to record differs from the bid the agent's
    /// cub recorded meanwhile (`agent`, `held`); nothing was written. Decide again without it.
    BidsChanged {
        agent: String,
        held: String,
    },
    /// Create refused: the cub that offered `agent`'s standing bid is gone (no subscriber on its
    /// presence channel); nothing was written. Decide again without that bid.
    OfferGone {
        agent: String,
    },
}

/// The standing bids a creating write records (design.md §5): each agent's bid, recorded with
/// its `bid_submitted` event unless the agent's cub recorded the same bid already.
pub type StandingBids = [(AgentName, BidType)];

/// A change to the open-question index, applied with a claim write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuestionOp {
    Open { question: ArtifactId, asked_at_ms: i64 },
    Close { question: ArtifactId },
}

/// The arguments of one claim write (see [`Store::write_claim`]).
struct ClaimWrite<'a> {
    claim: &'a Claim,
    expected_revision: Option<u64>,
    index_artifact: bool,
    question_ops: &'a [QuestionOp],
    events: &'a [EventData],
    /// Return the claim's bids with a successful create.
    read_bids: bool,
    /// Standing bids to record with a create.
    standing: &'a StandingBids,
    /// A compare-and-set over this record as the caller wrote it (see
    /// [`Store::replace_claim_with_outbox`]): when it has no field the new record lacks, the
    /// stored hash is overwritten in place instead of deleted first.
    previous: Option<&'a Claim>,
}

/// Bids from a flat `agent, bid, …` hash reply. An unparseable entry cannot come from a cub; it
/// is skipped rather than failing the claim.
fn parse_bids<'a>(pairs: impl Iterator<Item = &'a [String]>) -> BTreeMap<AgentName, BidType> {
    pairs
        .filter_map(|pair| match pair {
            [agent, bid] => Some((AgentName::parse(agent).ok()?, bid.parse::<BidType>().ok()?)),
            _ => None,
        })
        .collect()
}

/// `write_claim.lua`'s ARGV[12]: each standing bid with its cub's presence channel, or "" for
/// none. The bids themselves are in the claim's `claim_created` ([`with_standing_bids`]).
fn standing_bids_arg(keys: &crate::Keys, standing: &StandingBids) -> String {
    if standing.is_empty() {
        return String::new();
    }
    let items: Vec<serde_json::Value> = standing
        .iter()
        .map(|(agent, bid)| serde_json::json!([agent, bid.to_string(), keys.presence_channel(agent)]))
        .collect();
    serde_json::Value::Array(items).to_string()
}

/// `write_claim.lua`'s ARGV[14]: the bells its events ring (presence.rs), or "" for none. A grant
/// rings its agent's cub with the grant itself ([`crate::RungGrant`]; not a worker's grant: a
/// worker is started for it); a claim created waiting for bids, and not granted by the same
/// write, rings every cub, since any of them may have to bid (one whose standing bid it lists
/// finds nothing to do).
fn bells_arg(keys: &crate::Keys, events: &[EventData]) -> String {
    let granted =
        |claim: &ClaimId| events.iter().any(|e| matches!(e, EventData::ClaimGranted(g) if g.claim_id == *claim));
    let mut bells: Vec<(String, String)> = Vec::new();
    for e in events {
        let bell = match e {
            EventData::ClaimGranted(g) if !g.via_worker => (
                keys.presence_channel(&g.agent),
                crate::RungGrant { claim: g.claim_id, seq: g.seq, artifact: g.artifact_id }.to_message(),
            ),
            EventData::ClaimCreated(c) if c.status == ClaimStatus::PendingConsensus && !granted(&c.claim_id) => {
                (keys.cubs_bell_channel(), format!("claim {}", c.claim_id))
            }
            _ => continue,
        };
        if !bells.contains(&bell) {
            bells.push(bell);
        }
    }
    if bells.is_empty() { String::new() } else { serde_json::to_string(&bells).expect("strings serialise") }
}

/// `events` with the `standing` bids listed in the `claim_created` of `claim` among them: the
/// ledger records the standing bids a claim was created with in its creation event (one stream
/// entry instead of one `bid_submitted` per bid; issue 29).
fn with_standing_bids<'a>(
    events: &'a [EventData],
    claim: &ClaimId,
    standing: &StandingBids,
) -> std::borrow::Cow<'a, [EventData]> {
    if standing.is_empty() {
        return std::borrow::Cow::Borrowed(events);
    }
    events
        .iter()
        .map(|e| match e {
            EventData::ClaimCreated(c) if c.claim_id == *claim => {
                EventData::ClaimCreated(ClaimCreated { standing_bids: standing.iter().cloned().collect(), ..c.clone() })
            }
            other => other.clone(),
        })
        .collect()
}

/// Whether `previous`'s stored record (as this version encodes it, plus the `event` field every
/// write leaves) has no field outside `fields`, the new record's: then writing the new record
/// over it leaves exactly the new record.
fn overwrites_in_place(previous: &Claim, fields: &[(String, String)]) -> bool {
    let new: std::collections::HashSet<&str> = fields.iter().map(|(f, _)| f.as_str()).collect();
    encode_claim(previous).iter().all(|(f, _)| new.contains(f.as_str()))
}

impl Store {
    /// Writes `claim`: creates it when `expected_revision` is `None` (refused if it exists, or
    /// when `index_artifact` is set and that artifact already has a claim), otherwise replaces
    /// the record only if the stored revision equals `expected_revision`. The claim's next
    /// deadline, the question-index changes and `events` are applied in the same atomic step.
    pub async fn write_claim(
        &self,
        claim: &Claim,
        expected_revision: Option<u64>,
        index_artifact: bool,
        question_ops: &[QuestionOp],
        events: &[EventData],
        now_ms: i64,
    ) -> Result<WriteOutcome> {
        self.write_claim_with_outbox(
            claim,
            expected_revision,
            index_artifact,
            question_ops,
            events,
            None::<&()>,
            now_ms,
        )
        .await
    }

    /// [`Store::write_claim`], also recording `outbox` (the transition's follow-up effects,
    /// stored as JSON) under `<claim>:<revision>` in the same atomic step, so a crash between
    /// the write and carrying the effects out loses nothing: [`Store::outbox`] lists what is left
    /// to do.
    #[allow(clippy::too_many_arguments)]
    pub async fn write_claim_with_outbox<O: Serialize + ?Sized>(
        &self,
        claim: &Claim,
        expected_revision: Option<u64>,
        index_artifact: bool,
        question_ops: &[QuestionOp],
        events: &[EventData],
        outbox: Option<&O>,
        now_ms: i64,
    ) -> Result<WriteOutcome> {
        let write = ClaimWrite {
            claim,
            expected_revision,
            index_artifact,
            question_ops,
            events,
            read_bids: false,
            standing: &[],
            previous: None,
        };
        self.write_claim_inner(write, outbox, now_ms).await.map(|(outcome, _)| outcome)
    }

    /// [`Store::write_claim_with_outbox`] as a compare-and-set over `previous`, the record as
    /// this process wrote it at its revision (in this version's encoding, e.g. remembered from
    /// its own last write): when `previous` has no field `claim` lacks, the stored hash is
    /// overwritten in place (one command less than deleting it first; any other writer of that
    /// revision makes the compare-and-set fail). Not for a record read back from Redis, which
    /// may hold fields an older Sett wrote.
    pub async fn replace_claim_with_outbox<O: Serialize + ?Sized>(
        &self,
        claim: &Claim,
        previous: &Claim,
        question_ops: &[QuestionOp],
        events: &[EventData],
        outbox: Option<&O>,
        now_ms: i64,
    ) -> Result<WriteOutcome> {
        let write = ClaimWrite {
            claim,
            expected_revision: Some(previous.revision),
            index_artifact: false,
            question_ops,
            events,
            read_bids: false,
            standing: &[],
            previous: Some(previous),
        };
        self.write_claim_inner(write, outbox, now_ms).await.map(|(outcome, _)| outcome)
    }

    /// Creates `claim` (indexed under its artifact) as [`Store::write_claim_with_outbox`] does,
    /// recording the `standing` bids it was decided with in the same atomic step (in the bids
    /// hash, and listed by its `claim_created` among `events`). Refused with
    /// [`WriteOutcome::BidsChanged`] when an agent's cub recorded another bid meanwhile; a cub
    /// that recorded the same bid keeps its own (and its own event), and the claim is created
    /// without that standing bid.
    pub async fn create_claim_with_standing_bids<O: Serialize + ?Sized>(
        &self,
        claim: &Claim,
        question_ops: &[QuestionOp],
        events: &[EventData],
        outbox: Option<&O>,
        standing: &StandingBids,
        now_ms: i64,
    ) -> Result<WriteOutcome> {
        let write = ClaimWrite {
            claim,
            expected_revision: None,
            index_artifact: true,
            question_ops,
            events,
            read_bids: false,
            standing,
            previous: None,
        };
        self.write_claim_inner(write, outbox, now_ms).await.map(|(outcome, _)| outcome)
    }

    /// Creates `claim` (indexed under its artifact, as [`Store::write_claim`] with no expected
    /// revision) and returns, with the outcome, the bids recorded on it at that moment, read in
    /// the same atomic step: cubs may bid before the claim exists, and the creator decides with
    /// those bids without another round trip. The bids are empty unless the claim was written.
    /// The `standing` bids are recorded with it, as [`Store::create_claim_with_standing_bids`] does.
    pub async fn create_claim_reading_bids(
        &self,
        claim: &Claim,
        events: &[EventData],
        standing: &StandingBids,
        now_ms: i64,
    ) -> Result<(WriteOutcome, BTreeMap<AgentName, BidType>)> {
        let write = ClaimWrite {
            claim,
            expected_revision: None,
            index_artifact: true,
            question_ops: &[],
            events,
            read_bids: true,
            standing,
            previous: None,
        };
        self.write_claim_inner(write, None::<&()>, now_ms).await
    }

    async fn write_claim_inner<O: Serialize + ?Sized>(
        &self,
        write: ClaimWrite<'_>,
        outbox: Option<&O>,
        now_ms: i64,
    ) -> Result<(WriteOutcome, BTreeMap<AgentName, BidType>)> {
        let ClaimWrite {
            claim,
            expected_revision,
            index_artifact,
            question_ops,
            events,
            read_bids,
            standing,
            previous,
        } = write;
        let k = &self.keys;
        let mut keys = vec![
            k.claim(&claim.id),
            k.deadlines(),
            k.events(),
            k.open_questions(),
            k.claim_by_artifact(),
            k.claims_index(),
            k.outbox(),
            k.ledger(),
            k.cancel_fence(),
            k.paused(),
            k.pause_fence(),
        ];
        let creating = expected_revision.is_none();
        if creating && (read_bids || !standing.is_empty()) {
            keys.push(k.bids(&claim.id));
            keys.push(k.key_registry());
        }
        let fields = encode_claim(claim);
        // Every write leaves an event naming the record it wrote (the claim's revision and
        // hash), so `sett verify` can tell a transition from a tampered record.
        let binding = claim_binding(claim, &fields);
        let ts = now_ms.to_string();
        let synthesized;
        let events = if events.is_empty() {
            synthesized = [EventData::ClaimUpdated(ClaimUpdated::written(claim))];
            &synthesized[..]
        } else {
            events
        };
        // Through a `Value` (sorted keys), as the outbox was always written.
        let outbox = outbox.map(|o| serde_json::to_value(o).expect("serialisable").to_string());
        let ops: Vec<serde_json::Value> = question_ops
            .iter()
            .map(|op| match op {
                QuestionOp::Open { question, asked_at_ms } => serde_json::json!(["add", question, asked_at_ms]),
                QuestionOp::Close { question } => serde_json::json!(["rem", question]),
            })
            .collect();
        let ops = serde_json::Value::Array(ops).to_string();
        let grants = events.iter().any(|e| e.kind() == EventKind::ClaimGranted);
        let in_place = previous.is_some_and(|p| overwrites_in_place(p, &fields));
        let flat: Vec<String> = fields.into_iter().flat_map(|(f, v)| [f, v]).collect();
        // A standing bid whose cub recorded the same bid itself meanwhile is refused
        // ("bid_held"): that bid and its event are the cub's, and the claim is created without
        // the standing one (the decision is the same). Each refusal drops one, so this ends.
        let mut standing: Vec<(AgentName, BidType)> = if creating { standing.to_vec() } else { Vec::new() };
        let mut held = false;
        let reply = loop {
            let events = with_standing_bids(events, &claim.id, &standing);
            let events_json: Vec<serde_json::Value> = events
                .iter()
                .map(|data| {
                    let kind = data.kind().as_str();
                    let data = data.to_json();
                    let digest = ledger::event_digest(kind, &ts, &data, Some(&binding));
                    serde_json::json!([kind, data, digest, binding])
                })
                .collect();
            let mut args = vec![
                claim.id.to_string(),
                expected_revision.map_or_else(|| "0".to_owned(), |r| r.to_string()),
                claim.next_deadline_ms().map(|d| d.to_string()).unwrap_or_default(),
                ts.clone(),
                serde_json::Value::Array(events_json).to_string(),
                ops.clone(),
                if index_artifact && creating { claim.artifact_id.to_string() } else { String::new() },
                outbox.clone().unwrap_or_default(),
                claim.artifact_id.to_string(),
                if grants { "1" } else { "0" }.to_owned(),
                if creating && read_bids {
                    "1"
                } else if held {
                    "2"
                } else {
                    "0"
                }
                .to_owned(),
                standing_bids_arg(k, &standing),
                if in_place { "1" } else { "" }.to_owned(),
                bells_arg(k, &events),
            ];
            args.extend(flat.iter().cloned());
            let (reply, rewritten): (Vec<String>, bool) = self
                .durable(|| async {
                    Ok(WRITE_CLAIM.evalsha_with_reload(self.client(), keys.clone(), args.clone()).await?)
                })
                .await?;
            if rewritten && reply.first().map(String::as_str) != Some("ok") {
                // The first write survived the failover: the stored claim is ours, not a rival's.
                let stored = self.get_claim(&claim.id).await?;
                if stored.as_ref().map(encode_claim) == Some(encode_claim(claim)) {
                    // The bids the first write read are lost with its reply; their events still
                    // come.
                    return Ok((WriteOutcome::Written, BTreeMap::new()));
                }
            }
            match (reply.first().map(String::as_str), reply.get(1)) {
                (Some("bid_held"), Some(agent)) if standing.iter().any(|(a, _)| a.as_str() == agent) => {
                    standing.retain(|(a, _)| a.as_str() != agent);
                    held = true;
                }
                _ => break reply,
            }
        };
        let outcome = match reply.first().map(String::as_str) {
            Some("ok") => WriteOutcome::Written,
            Some("exists") => WriteOutcome::Exists(reply.get(1).cloned().unwrap_or_default()),
            Some("conflict") => WriteOutcome::Conflict { current: reply.get(1).cloned().unwrap_or_default() },
            Some("cancelled") => WriteOutcome::Cancelled(reply.get(1).cloned().unwrap_or_default()),
            Some("paused") => WriteOutcome::Paused(reply.get(1).cloned().unwrap_or_default()),
            Some("offer_gone") => WriteOutcome::OfferGone { agent: reply.get(1).cloned().unwrap_or_default() },
            Some("bids_changed") => WriteOutcome::BidsChanged {
                agent: reply.get(1).cloned().unwrap_or_default(),
                held: reply.get(2).cloned().unwrap_or_default(),
            },
            other => return Err(StoreError::Decode(format!("unexpected write_claim reply {other:?}"))),
        };
        let bids = if outcome == WriteOutcome::Written { parse_bids(reply[1..].chunks(2)) } else { BTreeMap::new() };
        Ok((outcome, bids))
    }

    pub async fn get_claim(&self, id: &ClaimId) -> Result<Option<Claim>> {
        let fields: HashMap<String, String> = self.client().hgetall(self.keys.claim(id)).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        decode_claim(fields, self.strict()).map(Some)
    }

    /// The claim created for an artifact (not its rework claims).
    pub async fn claim_for_artifact(&self, artifact: &ArtifactId) -> Result<Option<ClaimId>> {
        let id: Option<String> = self.client().hget(self.keys.claim_by_artifact(), artifact.to_string()).await?;
        id.map(|s| ClaimId::parse(&s).map_err(|e| StoreError::Decode(e.to_string()))).transpose()
    }

    /// The claim created for each of `artifacts` (not their rework claims), in order, in one
    /// command.
    pub async fn claims_for_artifacts(&self, artifacts: &[ArtifactId]) -> Result<Vec<Option<ClaimId>>> {
        if artifacts.is_empty() {
            return Ok(Vec::new());
        }
        let fields: Vec<String> = artifacts.iter().map(ToString::to_string).collect();
        let claims: Vec<Option<String>> = self.client().hmget(self.keys.claim_by_artifact(), fields).await?;
        claims
            .into_iter()
            .map(|c| c.map(|s| ClaimId::parse(&s).map_err(|e| StoreError::Decode(e.to_string()))).transpose())
            .collect()
    }

    /// Those of `artifacts` that no claim was created for (one round trip).
    pub async fn artifacts_without_claim(&self, artifacts: &[ArtifactId]) -> Result<Vec<ArtifactId>> {
        if artifacts.is_empty() {
            return Ok(Vec::new());
        }
        let fields: Vec<String> = artifacts.iter().map(ToString::to_string).collect();
        let claims: Vec<Option<String>> = self.client().hmget(self.keys.claim_by_artifact(), fields).await?;
        Ok(artifacts.iter().zip(claims).filter(|(_, c)| c.is_none()).map(|(a, _)| *a).collect())
    }

    /// Every claim id, oldest first.
    pub async fn claim_ids(&self) -> Result<Vec<ClaimId>> {
        let ids: Vec<String> = self.client().zrange(self.keys.claims_index(), 0, -1, None, false, None, false).await?;
        ids.iter().map(|s| ClaimId::parse(s).map_err(|e| StoreError::Decode(e.to_string()))).collect()
    }

    /// Every claim, oldest first (fetched in pipelined batches).
    pub async fn all_claims(&self) -> Result<Vec<Claim>> {
        let ids = self.claim_ids().await?;
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(200) {
            let futs = chunk.iter().map(|id| self.get_claim(id));
            for c in futures::future::try_join_all(futs).await?.into_iter().flatten() {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// Claims whose next deadline is at or before `now_ms`.
    pub async fn due_claims(&self, now_ms: i64) -> Result<Vec<ClaimId>> {
        let ids: Vec<String> =
            self.client().zrangebyscore(self.keys.deadlines(), "-inf", now_ms as f64, false, None).await?;
        ids.iter().map(|s| ClaimId::parse(s).map_err(|e| StoreError::Decode(e.to_string()))).collect()
    }

    /// The earliest pending deadline, if any.
    pub async fn next_deadline(&self) -> Result<Option<i64>> {
        let first: Vec<(String, f64)> =
            self.client().zrange(self.keys.deadlines(), 0, 0, None, false, None, true).await?;
        Ok(first.first().map(|(_, s)| *s as i64))
    }

    /// Records `agent`'s bid once, with its `bid_submitted` event. Returns false when the agent
    /// had already bid (or the claim does not exist).
    pub async fn submit_bid(&self, claim: &ClaimId, agent: &AgentName, bid: BidType, now_ms: i64) -> Result<bool> {
        self.record_bid(claim, agent, bid, now_ms, "").await
    }

    /// Records `agent`'s bid on the claim the orchestrator creates for a new artifact, possibly
    /// before that claim exists: cubs bid on `artifact_created` while the orchestrator creates
    /// the claim, instead of one after the other. Returns false when the agent had already bid
    /// or the claim exists and no longer waits for bids (an old artifact re-read from history).
    pub async fn submit_bid_before_claim(
        &self,
        claim: &ClaimId,
        agent: &AgentName,
        bid: BidType,
        now_ms: i64,
    ) -> Result<bool> {
        self.record_bid(claim, agent, bid, now_ms, "early").await
    }

    async fn record_bid(
        &self,
        claim: &ClaimId,
        agent: &AgentName,
        bid: BidType,
        now_ms: i64,
        mode: &str,
    ) -> Result<bool> {
        let keys = vec![
            self.keys.claim(claim),
            self.keys.bids(claim),
            self.keys.events(),
            self.keys.ledger(),
            self.keys.key_registry(),
        ];
        let data =
            EventData::BidSubmitted(BidSubmitted { agent: agent.clone(), bid, claim_id: *claim, standing: false });
        let (kind, data) = (data.kind(), data.to_json());
        let ts = now_ms.to_string();
        let digest = ledger::event_digest(kind.as_str(), &ts, &data, None);
        let args = vec![agent.to_string(), bid.to_string(), ts, data, digest, mode.to_owned()];
        let (reply, rewritten): (Vec<String>, bool) = self
            .durable(|| async { Ok(SUBMIT_BID.evalsha_with_reload(self.client(), keys.clone(), args.clone()).await?) })
            .await?;
        if rewritten && reply.first().map(String::as_str) != Some("ok") {
            // Our first bid survived the failover.
            return Ok(self.bids(claim).await?.get(agent) == Some(&bid));
        }
        Ok(reply.first().map(String::as_str) == Some("ok"))
    }

    pub async fn bids(&self, claim: &ClaimId) -> Result<BTreeMap<AgentName, BidType>> {
        let raw: Vec<String> = self.client().hgetall(self.keys.bids(claim)).await?;
        Ok(parse_bids(raw.chunks(2)))
    }

    /// Takes grant `(claim, seq)` for execution, once: false when someone already took it (a
    /// redelivered grant, or a second cub of the same agent).
    /// `record` must be unique to the caller's attempt (it carries pid and time): when the
    /// client retried the HSETNX after a dropped connection, the first attempt may have taken the
    /// grant already, and finding our own record means it is ours (found by fault injection).
    pub async fn take_grant(&self, claim: &ClaimId, seq: u64, record: &ExecutionRecord) -> Result<bool> {
        let field = format!("{claim}:{seq}");
        let text = serde_json::to_string(record).expect("serialisable");
        // Made again after a failover, the HSETNX finds our own record: still ours.
        let (ours, _) = self
            .durable(|| async {
                if self.client().hsetnx(self.keys.executions(), &field, text.as_str()).await? {
                    return Ok(true);
                }
                let holder: Option<String> = self.client().hget(self.keys.executions(), &field).await?;
                Ok(holder.as_deref() == Some(text.as_str()))
            })
            .await?;
        Ok(ours)
    }

    /// The record a cub or worker left when it took grant `(claim, seq)` (who, when), if taken.
    /// Read by `cargo xtask bench` to time artifact → grant taken.
    pub async fn execution_record(&self, claim: &ClaimId, seq: u64) -> Result<Option<ExecutionRecord>> {
        let raw: Option<String> = self.client().hget(self.keys.executions(), format!("{claim}:{seq}")).await?;
        raw.map(|r| serde_json::from_str(&r).map_err(|e| StoreError::Decode(format!("execution record: {e}"))))
            .transpose()
    }

    /// True when a cub or worker took grant `(claim, seq)` for execution.
    pub async fn grant_taken(&self, claim: &ClaimId, seq: u64) -> Result<bool> {
        Ok(self.client().hexists(self.keys.executions(), format!("{claim}:{seq}")).await?)
    }

    /// Follow-up effects recorded by claim writes and not yet carried out, as
    /// ([`OutboxEntry`], effects) pairs in entry order. An entry that is not JSON fails
    /// the read; one that is JSON but not a `T` comes back as its own decode error, so the
    /// caller can drop it and carry out the others.
    pub async fn outbox<T: DeserializeOwned>(&self) -> Result<Vec<(OutboxEntry, Result<T>)>> {
        let raw: HashMap<String, String> = self.client().hgetall(self.keys.outbox()).await?;
        let mut out: Vec<(String, serde_json::Value)> = raw
            .into_iter()
            .map(|(k, v)| Ok((k, serde_json::from_str(&v).map_err(|e| StoreError::Decode(format!("outbox: {e}")))?)))
            .collect::<Result<_>>()?;
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out
            .into_iter()
            .map(|(k, v)| {
                let effects =
                    serde_json::from_value(v).map_err(|e| StoreError::Decode(format!("outbox entry {k}: {e}")));
                (OutboxEntry(k), effects)
            })
            .collect())
    }

    /// Marks an outbox entry as carried out.
    pub async fn outbox_done(&self, entry: &OutboxEntry) -> Result<()> {
        let _: u64 = self.client().hdel(self.keys.outbox(), entry.as_str()).await?;
        Ok(())
    }

    /// Sets (or clears) a claim's entry in the deadline index. Used to repair an entry that no
    /// longer matches the claim (e.g. the claim vanished), so the deadline loop never spins.
    pub async fn set_claim_deadline(&self, claim: &ClaimId, deadline_ms: Option<i64>) -> Result<()> {
        let epoch = self.write_epoch();
        match deadline_ms {
            Some(d) => {
                let _: u64 = self
                    .client()
                    .zadd(self.keys.deadlines(), None, None, false, false, (d as f64, claim.to_string()))
                    .await?;
            }
            None => {
                let _: u64 = self.client().zrem(self.keys.deadlines(), claim.to_string()).await?;
            }
        }
        self.confirm(epoch).await
    }
}

/// The name of an outbox entry: `<claim id>:<revision>`, the claim write that recorded it
/// (`write_claim.lua` names it). A name that does not parse (written by hand, or by another
/// version) has no [`OutboxEntry::claim`]; the caller drops such an entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OutboxEntry(String);

impl OutboxEntry {
    /// The entry the write of `claim` at `revision` recorded.
    pub fn new(claim: &ClaimId, revision: u64) -> Self {
        Self(format!("{claim}:{revision}"))
    }

    /// An entry named `name` as read from the outbox hash.
    pub fn from_field(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    /// The claim whose write recorded the entry; `None` when the name is malformed.
    pub fn claim(&self) -> Option<ClaimId> {
        let (claim, revision) = self.0.split_once(':')?;
        revision.parse::<u64>().ok()?;
        ClaimId::parse(claim).ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for OutboxEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outbox_entry_names_its_claim_and_a_malformed_one_none() {
        let claim = ClaimId::parse("890df083-0b0b-5e76-b738-b23a301edaf2").unwrap();
        let entry = OutboxEntry::new(&claim, 7);
        assert_eq!(entry.as_str(), "890df083-0b0b-5e76-b738-b23a301edaf2:7");
        assert_eq!(OutboxEntry::from_field(entry.as_str()).claim(), Some(claim));
        for bad in ["", "890df083-0b0b-5e76-b738-b23a301edaf2", "890df083-0b0b-5e76-b738-b23a301edaf2:x", "nope:3"] {
            assert_eq!(OutboxEntry::from_field(bad).claim(), None, "{bad}");
        }
    }
}
