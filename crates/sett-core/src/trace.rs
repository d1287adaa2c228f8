//! Trace and span ids derived from the ledger's ids, so that every process (the orchestrator,
//! each cub, a worker, an agent's own code) names the same OpenTelemetry trace and parent span
//! for one workflow without talking to each other: the trace id comes from the goal's artifact
//! id, a span id from what the span is about (a claim, a grant, a question). Pure: the exporter
//! lives in `sett-ops`.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::ids::{ArtifactId, ClaimId};

/// The `tracing` target of spans that are exported as OpenTelemetry spans (a cub's tool run);
/// a daemon's other spans only annotate its logs.
pub const OTEL_TARGET: &str = "sett::otel";

/// A W3C / OpenTelemetry trace id: 16 bytes, never all zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId(pub [u8; 16]);

/// A W3C / OpenTelemetry span id: 8 bytes, never all zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId(pub [u8; 8]);

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// The first bytes of `SHA-256(domain ‖ "\n" ‖ text)`, with an all-zero result (invalid in W3C
/// trace context, and never seen in practice) replaced by a one.
fn derive<const N: usize>(domain: &str, text: &str) -> [u8; N] {
    let digest = Sha256::new().chain_update(domain).chain_update("\n").chain_update(text).finalize();
    let mut out = [0u8; N];
    out.copy_from_slice(&digest[..N]);
    if out.iter().all(|b| *b == 0) {
        out[N - 1] = 1;
    }
    out
}

/// The trace of the workflow whose goal is `goal`: one trace per workflow.
pub fn workflow_trace(goal: &ArtifactId) -> TraceId {
    TraceId(derive("sett-trace-v1", &goal.to_string()))
}

/// What a span is about: its id is derived from this, so any process can name it as a parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanSubject<'a> {
    /// The workflow's root span (the goal).
    Workflow(&'a ArtifactId),
    /// A claim, from its creation to its end (a rework claim included).
    Claim(&'a ClaimId),
    /// A claim's bidding, from its creation to its first grant.
    Bidding(&'a ClaimId),
    /// One grant `(claim, seq)`, from the grant to the output it produced; a tool's run is its
    /// child.
    Grant(&'a ClaimId, u64),
    /// A wait for a person: a question (an approval included), from asking to its answer.
    Wait(&'a ArtifactId),
}

impl SpanSubject<'_> {
    pub fn span_id(self) -> SpanId {
        let (domain, text) = match self {
            Self::Workflow(goal) => ("workflow", goal.to_string()),
            Self::Claim(claim) => ("claim", claim.to_string()),
            Self::Bidding(claim) => ("bidding", claim.to_string()),
            Self::Grant(claim, seq) => ("grant", format!("{claim}:{seq}")),
            Self::Wait(question) => ("wait", question.to_string()),
        };
        SpanId(derive(&format!("sett-span-v1\n{domain}"), &text))
    }
}

/// The W3C `traceparent` header value of a sampled span: `00-<trace>-<span>-01`. A tool gets it
/// as `TRACEPARENT` so that its own spans join the workflow's trace.
pub fn traceparent(trace: TraceId, span: SpanId) -> String {
    format!("00-{trace}-{span}-01")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn goal() -> ArtifactId {
        "0190f3a2-6b1c-7c3e-9a4f-1b2c3d4e5f60".parse().unwrap()
    }

    #[test]
    fn one_goal_one_trace_id_whoever_derives_it() {
        assert_eq!(workflow_trace(&goal()), workflow_trace(&goal()));
        let other: ArtifactId = "0190f3a2-6b1c-7c3e-9a4f-1b2c3d4e5f61".parse().unwrap();
        assert_ne!(workflow_trace(&goal()), workflow_trace(&other));
        // Pinned: a change would split traces across a mixed-version upgrade.
        assert_eq!(workflow_trace(&goal()).to_string().len(), 32);
    }

    #[test]
    fn span_ids_differ_by_subject_for_the_same_id() {
        let claim: ClaimId = "0190f3a2-6b1c-7c3e-9a4f-1b2c3d4e5f60".parse().unwrap();
        let ids = [
            SpanSubject::Claim(&claim).span_id(),
            SpanSubject::Bidding(&claim).span_id(),
            SpanSubject::Grant(&claim, 1).span_id(),
            SpanSubject::Grant(&claim, 2).span_id(),
        ];
        for (i, a) in ids.iter().enumerate() {
            for b in &ids[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn traceparent_is_w3c_version_00_sampled() {
        let tp = traceparent(TraceId([0xab; 16]), SpanId([0x01; 8]));
        assert_eq!(tp, format!("00-{}-{}-01", "ab".repeat(16), "01".repeat(8)));
    }
}
