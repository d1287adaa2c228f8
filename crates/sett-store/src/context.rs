//! Context-chain assembly (design.md §5): breadth-first over the target's `source_artifacts` (depth
//! ≤ 10), each artifact replaced by the latest version of its thread, de-duplicated by logical
//! id, only Standard/Answer/Review kept, the target's own thread left out, ordered oldest first
//! by `(created_at_ms, id)`. The walk is generic over [`ArtifactLookup`] so it is unit-tested
//! without Redis; the selection and ordering is the pure function [`select_context`]. The cub
//! hands the chain to a tool; the orchestrator shows it to an approver (and binds its hashes).

use std::collections::{BTreeMap, HashSet};
use std::future::Future;

use futures::future::try_join_all;

use crate::{Store, StoreError};
use sett_core::{Artifact, ArtifactId, StructuralType};

/// How far the walk follows provenance: direct sources are depth 1.
pub const MAX_CONTEXT_DEPTH: usize = 10;

/// Where the walk reads artifacts from (the store, or a map in tests).
pub trait ArtifactLookup {
    fn artifact(&self, id: &ArtifactId) -> impl Future<Output = Result<Option<Artifact>, StoreError>> + Send;
    /// The highest version of logical thread `logical_id`.
    fn latest(&self, logical_id: &ArtifactId) -> impl Future<Output = Result<Option<Artifact>, StoreError>> + Send;
}

impl ArtifactLookup for Store {
    fn artifact(&self, id: &ArtifactId) -> impl Future<Output = Result<Option<Artifact>, StoreError>> + Send {
        self.get_artifact(id)
    }

    fn latest(&self, logical_id: &ArtifactId) -> impl Future<Output = Result<Option<Artifact>, StoreError>> + Send {
        self.latest_in_thread(logical_id)
    }
}

/// The context chain of `target`. The walk goes one depth at a time: the artifacts of a depth,
/// then the latest versions of the threads they reach for the first time, are each read in one
/// batch (concurrent reads, which the store's client pipelines), not one after another.
pub async fn context_chain<L: ArtifactLookup + Sync>(
    lookup: &L,
    target: &Artifact,
) -> Result<Vec<Artifact>, StoreError> {
    let mut visited: HashSet<ArtifactId> = HashSet::from([target.id]);
    // Logical id → the latest version of that thread (looked up once per thread).
    let mut latest: BTreeMap<ArtifactId, Artifact> = BTreeMap::new();
    let mut level: Vec<ArtifactId> = target.source_artifacts.clone();
    let mut depth = 1;
    while !level.is_empty() {
        let ids: Vec<ArtifactId> = level.into_iter().filter(|id| visited.insert(*id)).collect();
        let read = try_join_all(ids.iter().map(|id| lookup.artifact(id))).await?;
        let mut found = Vec::with_capacity(ids.len());
        for (id, a) in ids.iter().zip(read) {
            match a {
                Some(a) => found.push(a),
                None => {
                    tracing::warn!(artifact_id = %id, "a source artifact does not exist; leaving it out of the context")
                }
            }
        }
        let mut threads: Vec<ArtifactId> =
            found.iter().map(|a| a.logical_id).filter(|l| !latest.contains_key(l)).collect();
        threads.sort();
        threads.dedup();
        let newest = try_join_all(threads.iter().map(|l| lookup.latest(l))).await?;
        let fetched: BTreeMap<ArtifactId, Option<Artifact>> = threads.into_iter().zip(newest).collect();
        let mut next = Vec::new();
        for found in found {
            let newest = match latest.get(&found.logical_id) {
                Some(a) => a.clone(),
                None => fetched.get(&found.logical_id).cloned().flatten().unwrap_or_else(|| found.clone()),
            };
            if depth < MAX_CONTEXT_DEPTH {
                // Follow the provenance of the version reached and of the thread's latest version:
                // a rework's sources are its previous version, whose sources lead further back.
                let sources = found.source_artifacts.iter().chain(newest.source_artifacts.iter());
                next.extend(sources.filter(|s| !visited.contains(*s)).copied());
            }
            latest.insert(found.logical_id, newest);
        }
        level = next;
        depth += 1;
    }
    Ok(select_context(target, latest.into_values()))
}

/// Keeps Standard/Answer/Review artifacts outside the target's thread, one per logical thread
/// (the highest version), ordered oldest first by `(created_at_ms, id)`.
pub fn select_context(target: &Artifact, candidates: impl IntoIterator<Item = Artifact>) -> Vec<Artifact> {
    let mut by_thread: BTreeMap<ArtifactId, Artifact> = BTreeMap::new();
    for a in candidates {
        if a.logical_id == target.logical_id
            || !matches!(a.structural_type, StructuralType::Standard | StructuralType::Answer | StructuralType::Review)
        {
            continue;
        }
        match by_thread.get(&a.logical_id) {
            Some(kept) if (kept.version, kept.id) >= (a.version, a.id) => {}
            _ => {
                by_thread.insert(a.logical_id, a);
            }
        }
    }
    let mut out: Vec<Artifact> = by_thread.into_values().collect();
    out.sort_by_key(|a| (a.created_at_ms, a.id));
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[derive(Default)]
    struct Mem {
        by_id: HashMap<ArtifactId, Artifact>,
    }

    impl Mem {
        fn add(&mut self, a: &Artifact) {
            self.by_id.insert(a.id, a.clone());
        }
    }

    impl ArtifactLookup for Mem {
        async fn artifact(&self, id: &ArtifactId) -> Result<Option<Artifact>, StoreError> {
            Ok(self.by_id.get(id).cloned())
        }

        async fn latest(&self, logical_id: &ArtifactId) -> Result<Option<Artifact>, StoreError> {
            Ok(self.by_id.values().filter(|a| &a.logical_id == logical_id).max_by_key(|a| a.version).cloned())
        }
    }

    fn art(st: StructuralType, at: i64, sources: &[&Artifact]) -> Artifact {
        let mut a = Artifact::new_root(crate::new_artifact_id(), st, "T", "p", "A", at);
        a.source_artifacts = sources.iter().map(|s| s.id).collect();
        a
    }

    fn next_version(of: &Artifact, at: i64, sources: &[&Artifact]) -> Artifact {
        let mut a = art(of.structural_type, at, sources);
        a.logical_id = of.logical_id;
        a.version = of.version + 1;
        a
    }

    fn ids(v: &[Artifact]) -> Vec<ArtifactId> {
        v.iter().map(|a| a.id).collect()
    }

    #[tokio::test]
    async fn latest_versions_oldest_first_without_the_targets_thread() {
        let mut m = Mem::default();
        let goal = art(StructuralType::Standard, 10, &[]);
        let design = art(StructuralType::Standard, 20, &[&goal]);
        let design2 = next_version(&design, 50, &[&design]);
        let question = art(StructuralType::Question, 25, &[&design]);
        let answer = art(StructuralType::Answer, 30, &[&question]);
        let failure = art(StructuralType::Failure, 31, &[&goal]);
        let code = art(StructuralType::Standard, 40, &[&design, &answer, &failure]);
        let code2 = next_version(&code, 60, &[&code]);
        for a in [&goal, &design, &design2, &question, &answer, &failure, &code, &code2] {
            m.add(a);
        }
        // The target is code v2: its thread (code v1) is left out, design is replaced by v2,
        // the Question and the Failure are dropped, the Answer is kept.
        let chain = context_chain(&m, &code2).await.unwrap();
        assert_eq!(ids(&chain), vec![goal.id, answer.id, design2.id]);
        // Deterministic: the same input gives the same order every time.
        for _ in 0..5 {
            assert_eq!(ids(&context_chain(&m, &code2).await.unwrap()), ids(&chain));
        }
    }

    #[tokio::test]
    async fn depth_is_bounded_and_cycles_end() {
        let mut m = Mem::default();
        let mut chain = vec![art(StructuralType::Standard, 0, &[])];
        for i in 1..15 {
            let prev = chain.last().unwrap().clone();
            chain.push(art(StructuralType::Standard, i, &[&prev]));
        }
        for a in &chain {
            m.add(a);
        }
        let target = art(StructuralType::Standard, 100, &[chain.last().unwrap()]);
        let got = context_chain(&m, &target).await.unwrap();
        // Depth 1 is chain[14]; depth 10 is chain[5].
        assert_eq!(got.len(), MAX_CONTEXT_DEPTH);
        assert_eq!(got.first().unwrap().id, chain[5].id);

        // A cycle (impossible for immutable artifacts, but the walk must not loop).
        let mut a = art(StructuralType::Standard, 1, &[]);
        let b = art(StructuralType::Standard, 2, &[&a]);
        a.source_artifacts.push(b.id);
        let mut m = Mem::default();
        m.add(&a);
        m.add(&b);
        let target = art(StructuralType::Standard, 3, &[&a, &b]);
        assert_eq!(ids(&context_chain(&m, &target).await.unwrap()), vec![a.id, b.id]);
    }

    #[test]
    fn ties_on_time_are_broken_by_id() {
        let target = art(StructuralType::Standard, 100, &[]);
        let x = art(StructuralType::Review, 5, &[]);
        let y = art(StructuralType::Standard, 5, &[]);
        let (first, second) = if x.id < y.id { (&x, &y) } else { (&y, &x) };
        let got = select_context(&target, [second.clone(), first.clone(), second.clone()]);
        assert_eq!(ids(&got), vec![first.id, second.id]);
    }
}
