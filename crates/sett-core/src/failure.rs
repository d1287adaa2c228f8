//! The payload of a Failure artifact, one type for both writers: the cub (a tool run that
//! failed: exit code and output tails) and the orchestrator (a claim that ended in failure:
//! a timeout, bids missing, a rejected approval). Readers (`sett watch`, the notifier, retry,
//! the console) take the human reason from it with [`FailurePayload::reason_of`].

use serde::{Deserialize, Serialize};

use crate::ids::{ArtifactId, ClaimId};

/// `{"reason", "claim_id"?, "artifact_id"?, "exit_code"?, "stdout_tail"?, "stderr_tail"?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailurePayload {
    /// Why, for a person.
    pub reason: String,
    /// The claim that failed and the artifact it was about (the orchestrator's failures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_id: Option<ClaimId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_id: Option<ArtifactId>,
    /// How the tool ended (the cub's failures).
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub tool_run: Option<ToolRunEnd>,
}

/// How a failed tool run ended: its exit code (`null` when it was killed or never started)
/// and the tails of what it printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolRunEnd {
    pub exit_code: Option<i32>,
    pub stdout_tail: String,
    pub stderr_tail: String,
}

impl FailurePayload {
    /// A claim's failure, written by the orchestrator.
    pub fn of_claim(reason: impl Into<String>, claim_id: ClaimId, artifact_id: ArtifactId) -> Self {
        Self { reason: reason.into(), claim_id: Some(claim_id), artifact_id: Some(artifact_id), tool_run: None }
    }

    /// A tool run's failure, written by the cub.
    pub fn of_tool_run(reason: impl Into<String>, end: ToolRunEnd) -> Self {
        Self { reason: reason.into(), claim_id: None, artifact_id: None, tool_run: Some(end) }
    }

    /// The payload as stored in the artifact.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a failure payload serializes")
    }

    /// The human reason of a Failure artifact's `payload`: its `reason` when the payload is
    /// one of these (or any JSON object with a string `reason`), else the payload itself
    /// trimmed (Failures written before the payload was typed, or by hand).
    pub fn reason_of(payload: &str) -> String {
        #[derive(Deserialize)]
        struct WithReason {
            reason: String,
        }
        match serde_json::from_str::<WithReason>(payload) {
            Ok(p) => p.reason,
            Err(_) => payload.trim().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_failure_keeps_every_field_and_a_null_exit_code() {
        let end = ToolRunEnd { exit_code: None, stdout_tail: String::new(), stderr_tail: "boom".into() };
        let json = FailurePayload::of_tool_run("killed", end).to_json();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        for key in ["reason", "exit_code", "stdout_tail", "stderr_tail"] {
            assert!(v.get(key).is_some(), "{key} missing from {json}");
        }
        assert!(v.get("claim_id").is_none(), "{json}");
        let back: FailurePayload = serde_json::from_str(&json).unwrap();
        assert_eq!(back.tool_run.unwrap().stderr_tail, "boom");
    }

    #[test]
    fn a_claim_failure_round_trips_without_tool_fields() {
        let c = ClaimId::parse("890df083-0b0b-5e76-b738-b23a301edaf2").unwrap();
        let a = ArtifactId::parse("01a249cc-97dd-77df-8bc8-a561bf654f74").unwrap();
        let p = FailurePayload::of_claim("no bids", c, a);
        let json = p.to_json();
        assert!(!json.contains("exit_code"), "{json}");
        assert_eq!(serde_json::from_str::<FailurePayload>(&json).unwrap(), p);
    }

    #[test]
    fn the_reason_of_any_payload() {
        assert_eq!(FailurePayload::reason_of(r#"{"reason":"tool exited 3","exit_code":3}"#), "tool exited 3");
        assert_eq!(FailurePayload::reason_of(" plain text "), "plain text");
        assert_eq!(FailurePayload::reason_of(r#"{"x":1}"#), r#"{"x":1}"#);
        assert_eq!(FailurePayload::reason_of(r#"{"reason":3}"#), r#"{"reason":3}"#);
    }
}
