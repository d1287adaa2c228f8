//! Every id Sett derives instead of minting, and the one derivation they share.
//!
//! Why derive: the orchestrator (and `sett-ops`' budget keeper) may write a record, crash, and
//! write it again on restart or on a retried transition. A minted id would make the retry a
//! twin; a derived one (UUID v5 of the parent id and a label) is the same on every attempt, so
//! the store refuses the duplicate and the ledger holds the record once. It also lets a reader
//! find a record from its parent alone, without an event pointing at it (a cub bids on a claim it
//! has not seen, the orchestrator looks up a grant's output).
//!
//! The strings are part of the ledger: an id derived today must equal the one written by every
//! earlier version, so the labels below never change (the tests pin each id). The tidy test
//! `ids_are_derived_in_one_module` keeps every derivation here.

use std::fmt;

use uuid::Uuid;

use crate::ids::{ArtifactId, ClaimId};

/// The one derivation: UUID v5 (OID namespace) of `"{parent}/{label}"`.
pub(crate) fn uuid(parent: &impl fmt::Display, label: &str) -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("{parent}/{label}").as_bytes())
}

/// The claim the orchestrator creates for a new artifact (`"claim"`). Derived, so a cub can bid
/// on it as soon as it sees the artifact, before the claim exists, and a re-created claim after
/// a crash is the same claim.
pub fn initial_claim_id(artifact: &ArtifactId) -> ClaimId {
    ClaimId::from_uuid(uuid(artifact, "claim"))
}

/// The claim a review rejection hands back to the producer (`"rework"`): a retried rejection
/// creates it once. A claim is reworked at most once (the rework is a new claim with its own id).
pub fn rework_claim_id(claim: &ClaimId) -> ClaimId {
    ClaimId::from_uuid(uuid(claim, "rework"))
}

/// The Failure artifact written when `claim` terminates (`"failure"`): a claim ends once, so a
/// retried termination writes the same Failure.
pub fn failure_artifact_id(claim: &ClaimId) -> ArtifactId {
    ArtifactId::from_uuid(uuid(claim, "failure"))
}

/// What grant `seq` of `claim` writes (the tool's output, or the Failure saying why there is
/// none; `"output:{seq}"`): a retry after a crash is refused as a duplicate, and the
/// orchestrator can look the output up without its event.
pub fn grant_output(claim: &ClaimId, seq: u64) -> ArtifactId {
    ArtifactId::from_uuid(uuid(claim, &format!("output:{seq}")))
}

/// The approval asked before grant `seq` of `claim` (`"approval:{seq}"`): a retried transition
/// or follow-up writes the same question instead of a twin.
pub fn approval_question_id(claim: &ClaimId, seq: u64) -> ArtifactId {
    ArtifactId::from_uuid(uuid(claim, &format!("approval:{seq}")))
}

/// The human review of `claim` (`"human-review"`): a claim runs its review phase once, so a
/// retried transition writes the same question.
pub fn review_question_id(claim: &ClaimId) -> ArtifactId {
    ArtifactId::from_uuid(uuid(claim, "human-review"))
}

/// The Review artifact the answer to review question `question` becomes (`"review"`): one
/// answer, one Review, however often the answer is processed.
pub fn review_artifact_id(question: &ArtifactId) -> ArtifactId {
    ArtifactId::from_uuid(uuid(question, "review"))
}

/// The answer the orchestrator writes when nobody answered `question` before its timeout
/// (`"timeout-answer"`): a retried time-out answers once (the store refuses a second answer).
pub fn question_timeout_answer_id(question: &ArtifactId) -> ArtifactId {
    ArtifactId::from_uuid(uuid(question, "timeout-answer"))
}

/// The question asked when budget `budget` of the workflow `goal` is reached in `window`, for
/// the `round`-th time (`"budget:{budget}:{window}:{round}"`): asking again after a crash writes
/// the same question, and a later round (after a raise) a new one.
pub fn budget_question_id(goal: &ArtifactId, budget: &str, window: i64, round: u32) -> ArtifactId {
    ArtifactId::from_uuid(uuid(goal, &format!("budget:{budget}:{window}:{round}")))
}

/// The action recording `decision` on budget question `question` (the decision's name as the
/// label): one decision per question, recorded once whoever retries it.
pub fn budget_action_id(question: &ArtifactId, decision: &str) -> ArtifactId {
    ArtifactId::from_uuid(uuid(question, decision))
}

/// The answer Sett writes itself when nobody answered budget question `question` in time
/// (`"timeout"`): a retried time-out answers once.
pub fn budget_timeout_answer_id(question: &ArtifactId) -> ArtifactId {
    ArtifactId::from_uuid(uuid(question, "timeout"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact() -> ArtifactId {
        "0190f3a2-6b1c-7c3e-9a4f-1b2c3d4e5f60".parse().unwrap()
    }

    fn claim() -> ClaimId {
        "0190f3a2-6b1c-7c3e-9a4f-1b2c3d4e5f61".parse().unwrap()
    }

    /// The ids as every earlier version wrote them to the ledger: a change here breaks every
    /// existing instance (a retry would write a twin, a lookup would miss), so these never move.
    #[test]
    fn derived_ids_are_pinned() {
        let (a, c) = (artifact(), claim());
        let pinned = [
            (initial_claim_id(&a).to_string(), "ff6408da-0b79-5fb1-9429-ed87b3fed34a"),
            (rework_claim_id(&c).to_string(), "25fe61d7-7547-52f3-adb1-12b16e33562f"),
            (failure_artifact_id(&c).to_string(), "a4ee1260-155c-59c3-83e6-57d7b27ed7fa"),
            (grant_output(&c, 3).to_string(), "961f5f0f-93ec-5ea9-8ee4-30d8fbe669d4"),
            (approval_question_id(&c, 2).to_string(), "a467c34d-6031-5a0d-a2e2-d9e5670a6689"),
            (review_question_id(&c).to_string(), "f605765b-cc1b-53b9-a394-6c69cadd20db"),
            (review_artifact_id(&a).to_string(), "8f65c966-a459-5576-bd94-29b0e23bc25a"),
            (question_timeout_answer_id(&a).to_string(), "c1421653-cc7d-5eba-8864-be5fedfbdf2a"),
            (budget_question_id(&a, "workflow", 0, 1).to_string(), "d874f54c-6bad-5a80-be0d-8a8620225214"),
            (budget_action_id(&a, "raised").to_string(), "553ebf80-d6ba-5909-9404-1387988ff7fd"),
            (budget_timeout_answer_id(&a).to_string(), "a7f4eff4-2141-5b0e-afb2-3512f002ae18"),
        ];
        let got: Vec<&str> = pinned.iter().map(|(g, _)| g.as_str()).collect();
        let want: Vec<&str> = pinned.iter().map(|(_, w)| *w).collect();
        assert_eq!(got, want);
    }

    /// Each id is the UUID v5 of `"{parent}/{label}"` in the OID namespace, the rule the pinned
    /// strings above were first written with.
    #[test]
    fn every_id_is_uuid_v5_of_parent_and_label() {
        let (a, c) = (artifact(), claim());
        let v5 = |parent: &dyn fmt::Display, label: &str| {
            Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("{parent}/{label}").as_bytes()).to_string()
        };
        assert_eq!(initial_claim_id(&a).to_string(), v5(&a, "claim"));
        assert_eq!(rework_claim_id(&c).to_string(), v5(&c, "rework"));
        assert_eq!(failure_artifact_id(&c).to_string(), v5(&c, "failure"));
        assert_eq!(grant_output(&c, 3).to_string(), v5(&c, "output:3"));
        assert_eq!(approval_question_id(&c, 2).to_string(), v5(&c, "approval:2"));
        assert_eq!(review_question_id(&c).to_string(), v5(&c, "human-review"));
        assert_eq!(review_artifact_id(&a).to_string(), v5(&a, "review"));
        assert_eq!(question_timeout_answer_id(&a).to_string(), v5(&a, "timeout-answer"));
        assert_eq!(budget_question_id(&a, "workflow", 0, 1).to_string(), v5(&a, "budget:workflow:0:1"));
        assert_eq!(budget_action_id(&a, "raised").to_string(), v5(&a, "raised"));
        assert_eq!(budget_timeout_answer_id(&a).to_string(), v5(&a, "timeout"));
    }

    /// The same parent and label give the same id (a retry); another label or parent another.
    #[test]
    fn derivation_is_stable_and_distinguishes_labels_and_parents() {
        let (a, c) = (artifact(), claim());
        assert_eq!(grant_output(&c, 1), grant_output(&c, 1));
        assert_ne!(grant_output(&c, 1), grant_output(&c, 2));
        assert_ne!(grant_output(&c, 1), approval_question_id(&c, 1));
        assert_ne!(review_question_id(&c), failure_artifact_id(&c));
        assert_ne!(initial_claim_id(&a), initial_claim_id(&review_artifact_id(&a)));
    }
}
