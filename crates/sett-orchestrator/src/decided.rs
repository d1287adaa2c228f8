//! The claims this orchestrator has seen leave `pending_consensus`, remembered (boundedly) so a
//! bid event on one of them is dropped without reading the claim: a claim never returns to
//! waiting for bids, so such a bid can change nothing.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use sett_core::ClaimId;

/// How many decided claims are remembered; the oldest is forgotten first. A forgotten claim's
/// late bid is handled as before (a read that finds the claim decided), so the bound only
/// trades memory for an occasional read.
const CAPACITY: usize = 65_536;

#[derive(Default)]
pub(crate) struct DecidedClaims {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    ids: HashSet<ClaimId>,
    order: VecDeque<ClaimId>,
}

impl DecidedClaims {
    pub(crate) fn insert(&self, id: ClaimId) {
        let mut inner = self.inner.lock().expect("not poisoned");
        if !inner.ids.insert(id) {
            return;
        }
        inner.order.push_back(id);
        if inner.order.len() > CAPACITY
            && let Some(oldest) = inner.order.pop_front()
        {
            inner.ids.remove(&oldest);
        }
    }

    pub(crate) fn contains(&self, id: &ClaimId) -> bool {
        self.inner.lock().expect("not poisoned").ids.contains(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgets_the_oldest_beyond_its_capacity() {
        let decided = DecidedClaims::default();
        let ids: Vec<ClaimId> = (0..=CAPACITY).map(|i| ClaimId::derived(&i, "t")).collect();
        for id in &ids {
            decided.insert(*id);
        }
        decided.insert(ids[5]);
        assert!(!decided.contains(&ids[0]), "the oldest is forgotten");
        assert!(ids[1..].iter().all(|id| decided.contains(id)));
    }
}
