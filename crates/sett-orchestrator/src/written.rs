//! The open claims as this orchestrator last wrote them, remembered (boundedly) so the next
//! transition of a claim starts from that record instead of reading it back. Safe because every
//! claim write is a compare-and-set on the revision and every writer (this engine, `sett cancel`,
//! pause and resume) bumps it: a record someone else changed meanwhile fails the write, and the
//! transition is then read and recomputed as before. A remembered record that leads to no write
//! is read again too (see `Engine::apply`): it may be the stale one.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use sett_core::{Claim, ClaimId};

/// How many claims are remembered; the oldest remembered is forgotten first. A forgotten claim
/// is read before its next transition, as before, so the bound only trades memory for a read.
const CAPACITY: usize = 4096;

#[derive(Default)]
pub(crate) struct WrittenClaims {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    claims: HashMap<ClaimId, Claim>,
    order: VecDeque<ClaimId>,
}

impl WrittenClaims {
    /// Remembers `claim` as written, or forgets it once it is final (nothing follows a final
    /// claim's write).
    pub(crate) fn wrote(&self, claim: &Claim) {
        let mut inner = self.inner.lock().expect("not poisoned");
        if claim.status.is_final() {
            inner.claims.remove(&claim.id);
            return;
        }
        if inner.claims.insert(claim.id, claim.clone()).is_none() {
            inner.order.push_back(claim.id);
        }
        // The order may name claims forgotten since; the bound is on what is remembered.
        while inner.claims.len() > CAPACITY || inner.order.len() > 2 * CAPACITY {
            let Some(oldest) = inner.order.pop_front() else { break };
            inner.claims.remove(&oldest);
        }
    }

    /// The claim as this orchestrator last wrote it, if remembered.
    pub(crate) fn get(&self, id: &ClaimId) -> Option<Claim> {
        self.inner.lock().expect("not poisoned").claims.get(id).cloned()
    }

    pub(crate) fn forget(&self, id: &ClaimId) {
        self.inner.lock().expect("not poisoned").claims.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use sett_core::machine::{AgentPolicy, Policy, new_claim};
    use sett_core::{AgentName, Artifact, ClaimStatus, StructuralType};

    use super::*;

    fn claim(i: u128) -> Claim {
        let a = Artifact::new_root(sett_store::new_artifact_id(), StructuralType::Standard, "T", "x", "user", 1);
        let policy = Policy {
            agents: [(
                AgentName::parse("A").unwrap(),
                AgentPolicy { timeout_ms: 1, question_timeout_ms: None, via_worker: false, approval: None },
            )]
            .into(),
            max_review_iterations: 3,
            bid_timeout_ms: 10,
            on_question_timeout: Default::default(),
            routing: Default::default(),
        };
        new_claim(ClaimId::derived(&i, "t"), &a, &policy, 1)
    }

    #[test]
    fn remembers_the_last_write_and_forgets_a_final_claim() {
        let written = WrittenClaims::default();
        let mut c = claim(1);
        written.wrote(&c);
        c.revision = 2;
        written.wrote(&c);
        assert_eq!(written.get(&c.id).map(|k| k.revision), Some(2));
        c.status = ClaimStatus::Complete;
        written.wrote(&c);
        assert_eq!(written.get(&c.id), None);
        written.wrote(&claim(2));
        written.forget(&claim(2).id);
        assert_eq!(written.get(&claim(2).id), None);
    }

    #[test]
    fn forgets_the_oldest_beyond_its_capacity() {
        let written = WrittenClaims::default();
        let claims: Vec<Claim> = (0..=CAPACITY as u128).map(claim).collect();
        for c in &claims {
            written.wrote(c);
        }
        assert_eq!(written.get(&claims[0].id), None, "the oldest is forgotten");
        assert!(claims[1..].iter().all(|c| written.get(&c.id).is_some()));
    }
}
