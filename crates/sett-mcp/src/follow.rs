//! Following the instance's event stream so MCP clients are told without polling: question
//! events (asked, answered, timed out, closed by a cancellation) by one reader per server, fanned out to the sessions
//! over a broadcast channel; and, for a session subscribed to a goal's resource, that
//! workflow's new artifacts until it ends (one reader per such subscription, replaying from
//! the goal, so a workflow that ended before the subscription is reported at once).

use std::time::Duration;

use rmcp::RoleServer;
use rmcp::model::ResourceUpdatedNotificationParam;
use sett_core::event::EventData;
use sett_core::{Artifact, ArtifactId};
use sett_ops::resolve::Since;
use sett_ops::workflow::Workflow;
use sett_store::Store;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Longest single blocking read of the stream.
const MAX_BLOCK: Duration = Duration::from_secs(5);
/// Pause after a failed read (Redis away) before the next attempt.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// A change to the open questions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuestionEvent {
    Asked(ArtifactId),
    Answered(ArtifactId),
    TimedOut(ArtifactId),
    /// Closed unanswered by the cancellation of its workflow.
    Closed(ArtifactId),
    /// A session fell behind the fan-out: something changed.
    Lagged,
}

impl QuestionEvent {
    pub fn question(&self) -> Option<ArtifactId> {
        match self {
            Self::Asked(q) | Self::Answered(q) | Self::TimedOut(q) | Self::Closed(q) => Some(*q),
            Self::Lagged => None,
        }
    }

    fn of(data: &EventData) -> Vec<Self> {
        match data {
            EventData::QuestionAsked(q) => vec![Self::Asked(q.question_id)],
            EventData::QuestionAnswered(a) => vec![Self::Answered(a.question_id)],
            EventData::QuestionTimedOut(t) => vec![Self::TimedOut(t.question_id)],
            EventData::WorkflowCancelled(c) => c.questions.iter().copied().map(Self::Closed).collect(),
            _ => Vec::new(),
        }
    }
}

/// Reads the stream from its current end and sends each question event to `tx` until
/// `shutdown`. A failed read is logged and retried with a fresh reader from the same position,
/// so no event is skipped while Redis is away.
pub(crate) async fn follow_questions(store: Store, tx: broadcast::Sender<QuestionEvent>, shutdown: CancellationToken) {
    let mut cursor: Option<String> = None;
    while !shutdown.is_cancelled() {
        let reader = match store.event_reader().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the event stream; retrying");
                tokio::select! { () = tokio::time::sleep(RETRY_AFTER) => continue, () = shutdown.cancelled() => return }
            }
        };
        if cursor.is_none() {
            match store.last_event_id().await {
                Ok(last) => cursor = Some(last.unwrap_or_else(|| "0-0".to_owned())),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the event stream's end; retrying");
                    reader.quit().await;
                    tokio::select! { () = tokio::time::sleep(RETRY_AFTER) => continue, () = shutdown.cancelled() => return }
                }
            }
        }
        loop {
            let after = cursor.clone().unwrap_or_else(|| "0-0".to_owned());
            let read = tokio::select! {
                r = reader.read_entries_after(&after, 100, MAX_BLOCK) => r,
                () = shutdown.cancelled() => break,
            };
            match read {
                Ok(entries) => {
                    for entry in &entries {
                        match entry {
                            Ok(e) => {
                                for q in QuestionEvent::of(&e.data) {
                                    // No receiver (no session yet) is not an error.
                                    let _ = tx.send(q);
                                }
                                cursor = Some(e.id.clone());
                            }
                            // A malformed ledger entry cannot be a question event.
                            Err(bad) => cursor = Some(bad.id.clone()),
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading the event stream failed; retrying");
                    break;
                }
            }
        }
        reader.quit().await;
        tokio::select! { () = tokio::time::sleep(RETRY_AFTER) => {}, () = shutdown.cancelled() => return }
    }
}

/// Tells `peer` (`resources/updated` for `uri`) each time the workflow of `goal` gains an
/// artifact, from the goal's creation on, until it ends (a Terminal or Failure, or its goal's
/// claim stopping), `stop` is cancelled or the client goes. Redis errors are retried from the
/// same position.
pub(crate) async fn follow_workflow(
    store: Store,
    goal: Artifact,
    peer: rmcp::Peer<RoleServer>,
    uri: String,
    stop: CancellationToken,
) {
    let mut cursor = Since::TimeMs(goal.created_at_ms).after_id();
    let mut wf = Workflow::new(goal.id);
    while !stop.is_cancelled() {
        let reader = match store.event_reader().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the event stream; retrying");
                tokio::select! { () = tokio::time::sleep(RETRY_AFTER) => continue, () = stop.cancelled() => return }
            }
        };
        loop {
            let read = tokio::select! {
                r = reader.read_entries_after(&cursor, 100, MAX_BLOCK) => r,
                () = stop.cancelled() => break,
            };
            let entries = match read {
                Ok(entries) => entries,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the event stream failed; retrying");
                    break;
                }
            };
            let mut grew = false;
            for entry in &entries {
                match entry {
                    Ok(e) => {
                        grew |= wf.observe(e) && matches!(e.data, EventData::ArtifactCreated(_));
                        cursor.clone_from(&e.id);
                    }
                    Err(bad) => cursor.clone_from(&bad.id),
                }
            }
            let ended = wf.outcome().is_some();
            if (grew || ended)
                && peer.notify_resource_updated(ResourceUpdatedNotificationParam::new(uri.clone())).await.is_err()
            {
                reader.quit().await;
                return;
            }
            if ended {
                reader.quit().await;
                return;
            }
        }
        reader.quit().await;
        tokio::select! { () = tokio::time::sleep(RETRY_AFTER) => {}, () = stop.cancelled() => return }
    }
}

#[cfg(test)]
mod tests {
    use sett_core::event::{BidSubmitted, QuestionAnswered, QuestionAsked};
    use sett_core::{AgentName, BidType, ClaimId};

    use super::*;

    #[test]
    fn only_question_events_are_fanned_out() {
        let q = ArtifactId::derived(&"follow-test", "q");
        let claim = ClaimId::derived(&"follow-test", "c");
        let agent = AgentName::parse("Asker").unwrap();
        let asked = EventData::QuestionAsked(QuestionAsked {
            agent: agent.clone(),
            artifact_id: q,
            claim_id: claim,
            deadline_ms: None,
            question_id: q,
            to: Vec::new(),
        });
        assert_eq!(QuestionEvent::of(&asked), vec![QuestionEvent::Asked(q)]);
        let answered = EventData::QuestionAnswered(QuestionAnswered {
            answer_id: ArtifactId::derived(&"follow-test", "a"),
            answered_by: "Ada".into(),
            artifact_id: q,
            claim_id: Some(claim),
            decision: None,
            question_id: q,
            target_hash: None,
            timed_out: false,
        });
        assert_eq!(QuestionEvent::of(&answered).iter().map(QuestionEvent::question).collect::<Vec<_>>(), vec![Some(q)]);
        let bid =
            EventData::BidSubmitted(BidSubmitted { agent, bid: BidType::Exclusive, claim_id: claim, standing: false });
        assert_eq!(QuestionEvent::of(&bid), vec![]);
        assert_eq!(QuestionEvent::Lagged.question(), None);
    }
}
