//! Property: for random workflows written through the real store (artifacts whose sources form
//! a random DAG, a question and its answer, claims created and transitioned, plain events), an
//! export verifies intact, and **any** single-field change of any ledger record — an artifact
//! field, a claim field, any field of any stream entry, an answer record, the head — is caught.

use std::collections::BTreeMap;

use proptest::prelude::*;
use sett_core::event::{ClaimCreated, EventData, InstanceStopped};
use sett_core::machine::new_claim;
use sett_core::{AgentName, Artifact, StructuralType};
use sett_ops::transfer::export_jsonl;
use sett_ops::verify::{ExportLedger, verify};
use sett_store::{AnswerRecord, Dump, DumpValue, new_artifact_id, new_claim_id};

/// What an agent run reported (stored in the artifact's `usage` field, covered by its hash).
fn usage(i: usize) -> sett_core::usage::Usage {
    sett_core::usage::Usage::from_tool_json(&serde_json::json!({
        "model": "m", "input_tokens": i, "output_tokens": 3, "cost": {"amount": "0.25", "currency": "USD"}
    }))
    .unwrap()
    .unwrap()
}

/// Writes a random workflow; returns its export records.
async fn workflow(sources: &[Vec<usize>], payloads: &[String], claims: usize) -> Vec<Dump> {
    let store = sett_testkit::store().await;
    let mut written: Vec<Artifact> = Vec::new();
    for (i, (srcs, payload)) in sources.iter().zip(payloads).enumerate() {
        let mut a = Artifact::new_root(
            new_artifact_id(),
            StructuralType::Standard,
            "Doc",
            payload.clone(),
            "A",
            1_000 + i as i64,
        );
        a.source_artifacts = srcs.iter().filter_map(|s| written.get(s % written.len().max(1))).map(|s| s.id).collect();
        a.source_artifacts.dedup();
        a.summary = (i % 2 == 0).then(|| format!("summary {i}"));
        a.usage = (i % 2 == 1).then(|| usage(i));
        store.create_artifact(&a).await.unwrap();
        written.push(a);
    }
    let mut q = Artifact::new_root(new_artifact_id(), StructuralType::Question, "Q", "which port?", "A", 5_000);
    q.source_artifacts = vec![written[0].id];
    store.create_artifact(&q).await.unwrap();
    let mut answer = Artifact::new_root(new_artifact_id(), StructuralType::Answer, "Answer", "8080", "human:op", 5_001);
    answer.source_artifacts = vec![q.id];
    answer.answered_by = Some("op".into());
    let record = AnswerRecord {
        answer_id: answer.id,
        answered_by: "op".into(),
        answered_at_ms: 5_001,
        timed_out: false,
        approval: None,
    };
    store.create_answer(&answer, &q.id, &record).await.unwrap();
    for a in written.iter().take(claims) {
        let c = new_claim(new_claim_id(), a, &sett_testkit::policy(), 6_000);
        let ev = EventData::ClaimCreated(ClaimCreated::new(&c));
        store.write_claim(&c, None, true, &[], &[ev], 6_000).await.unwrap();
        store.submit_bid(&c.id, &AgentName::parse("A").unwrap(), sett_core::BidType::Exclusive, 6_001).await.unwrap();
        let mut next = c.clone();
        next.revision += 1;
        next.updated_at_ms = 6_002;
        // A transition without events of its own: the store still binds it to one.
        store.write_claim(&next, Some(c.revision), false, &[], &[], 6_002).await.unwrap();
    }
    store.append_event(&EventData::InstanceStopped(InstanceStopped { run_id: "r".into() }), 7_000).await.unwrap();
    let mut out = Vec::new();
    export_jsonl(&store, &mut out).await.unwrap();
    String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Every (record, field) of the ledger in `dumps`, as a path the mutation can follow.
#[derive(Debug, Clone)]
enum Site {
    Hash { dump: usize, field: String },
    Entry { dump: usize, entry: usize, field: String },
}

impl Site {
    fn dump(&self) -> usize {
        match self {
            Site::Hash { dump, .. } | Site::Entry { dump, .. } => *dump,
        }
    }
}

fn sites(dumps: &[Dump]) -> Vec<Site> {
    let mut out = Vec::new();
    for (i, d) in dumps.iter().enumerate() {
        let ledger_hash = d.key.starts_with("artifact:")
            || (d.key.starts_with("claim:") && !d.key.ends_with(":bids"))
            || d.key == "questions:answers"
            || d.key == "ledger";
        if let (DumpValue::Hash(fields), true) = (&d.value, ledger_hash) {
            for field in fields.keys() {
                // The head's entry id is informational (not checked): seq and hash are.
                if !(d.key == "ledger" && field == "id") {
                    out.push(Site::Hash { dump: i, field: field.clone() });
                }
            }
        }
        if d.key == "events" {
            let DumpValue::Stream(chunk) = &d.value else { panic!("the event stream is a stream: {d:?}") };
            for (e, (_, fields)) in chunk.entries.iter().enumerate() {
                for field in fields.keys() {
                    out.push(Site::Entry { dump: i, entry: e, field: field.clone() });
                }
            }
        }
    }
    out
}

fn mutate(dumps: &mut [Dump], site: &Site, how: u8) {
    let change = |v: &mut String| {
        let s = v.clone();
        *v = match how % 3 {
            0 => format!("{s}x"),
            1 if !s.is_empty() => s[..s.len() - 1].to_owned(),
            _ => format!("0{s}"),
        };
    };
    match (site, &mut dumps[site.dump()].value) {
        (Site::Hash { field, .. }, DumpValue::Hash(fields)) => change(fields.get_mut(field).unwrap()),
        (Site::Entry { entry, field, .. }, DumpValue::Stream(chunk)) => {
            change(chunk.entries[*entry].1.get_mut(field).unwrap())
        }
        (site, value) => panic!("{site:?} does not point into {value:?}"),
    }
}

async fn verify_dumps(dumps: &[Dump]) -> sett_ops::verify::Outcome {
    let text: String = dumps.iter().map(|d| serde_json::to_string(d).unwrap() + "\n").collect();
    let mut src = ExportLedger::read(std::io::Cursor::new(text)).unwrap();
    verify(&mut src, None).await.unwrap()
}

/// A run's usage is part of the ledger: editing it in Redis (a cheaper model, fewer tokens) is
/// caught by verify, like any other artifact field.
#[tokio::test]
async fn editing_an_artifacts_usage_in_redis_breaks_the_ledger() {
    let store = sett_testkit::store().await;
    let mut a = Artifact::new_root(new_artifact_id(), StructuralType::Standard, "Doc", "x", "A", 1_000);
    a.usage = Some(usage(7));
    store.create_artifact(&a).await.unwrap();
    assert!(verify(&mut store.clone(), None).await.unwrap().intact());
    let key = format!("sett:{{{}}}:artifact:{}", store.instance(), a.id);
    let redis_cli = |args: &[&str]| {
        let out = std::process::Command::new("redis-cli")
            .args(["-u", &sett_testkit::redis_url()])
            .args(args)
            .output()
            .expect("redis-cli (apt-get install redis-tools)");
        assert!(out.status.success(), "redis-cli {args:?}");
        String::from_utf8(out.stdout).unwrap().trim_end().to_owned()
    };
    let stored = redis_cli(&["HGET", &key, "usage"]);
    assert!(stored.contains(r#""input_tokens":7"#), "{stored}");
    redis_cli(&["HSET", &key, "usage", &stored.replace(r#""input_tokens":7"#, r#""input_tokens":1"#)]);
    let outcome = verify(&mut store.clone(), None).await.unwrap();
    let breach = outcome.breach.expect("the edited usage must break the ledger");
    assert!(format!("{breach:?}").contains(&a.id.to_string()), "{breach:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn any_single_field_mutation_of_a_ledger_record_is_detected(
        sources in proptest::collection::vec(proptest::collection::vec(0usize..8, 0..3), 1..6),
        payload_seed in "\\PC{0,12}",
        claims in 0usize..3,
        pick in any::<prop::sample::Index>(),
        how in any::<u8>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let payloads: Vec<String> = (0..sources.len()).map(|i| format!("{payload_seed}{i}")).collect();
            let dumps = workflow(&sources, &payloads, claims).await;
            let intact = verify_dumps(&dumps).await;
            assert!(intact.intact(), "the untouched workflow must verify: {:?}", intact.breach);
            let all = sites(&dumps);
            let site = pick.get(&all).clone();
            let mut changed = dumps.clone();
            mutate(&mut changed, &site, how);
            let before: BTreeMap<_, _> = dumps.iter().map(|d| (d.key.clone(), d.value.clone())).collect();
            let after: BTreeMap<_, _> = changed.iter().map(|d| (d.key.clone(), d.value.clone())).collect();
            if before == after {
                return; // the mutation was a no-op (removing the last char of "" cannot happen, but stay honest)
            }
            let outcome = verify_dumps(&changed).await;
            assert!(!outcome.intact(), "mutating {site:?} ({how}) went unnoticed");
        });
    }
}

/// An export larger than one block of the file's index (256 records) and one record of the event
/// stream (1,000 entries) verifies block by block; a change deep inside it is found and named;
/// a record moved out of key order is refused, naming its line.
#[tokio::test]
async fn a_large_export_is_verified_block_by_block() {
    let store = sett_testkit::store().await;
    let mut ids = Vec::new();
    for i in 0..1_200 {
        let a = Artifact::new_root(new_artifact_id(), StructuralType::Standard, "Doc", format!("p{i}"), "A", 1_000 + i);
        store.create_artifact(&a).await.unwrap();
        ids.push(a.id);
    }
    let mut out = Vec::new();
    export_jsonl(&store, &mut out).await.unwrap();
    let mut dumps: Vec<Dump> =
        String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(dumps.iter().filter(|d| d.key == "events").count() >= 2, "the stream spans several records");
    let o = verify_dumps(&dumps).await;
    assert!(o.intact(), "{:?}", o.breach);
    assert_eq!(o.report.artifacts, 1_200);
    assert_eq!(o.report.events, 1_200);

    let deep = format!("artifact:{}", ids[700]);
    let at = dumps.iter().position(|d| d.key == deep).unwrap();
    let DumpValue::Hash(fields) = &mut dumps[at].value else { panic!("an artifact is a hash") };
    fields.insert("payload".into(), "p70x".into());
    let b = verify_dumps(&dumps).await.breach.expect("the edit is found");
    assert_eq!(b.record, format!("artifact {}", ids[700]));
    assert!(b.problem.contains("payload changed"), "{}", b.problem);

    dumps.swap(at, at + 1);
    let text: String = dumps.iter().map(|d| serde_json::to_string(d).unwrap() + "\n").collect();
    let err = ExportLedger::read(std::io::Cursor::new(text)).unwrap_err().to_string();
    assert!(err.contains(&format!("line {}", at + 2)) && err.contains("sorted order"), "{err}");
}

/// Entries store no `prev` (issue 29: the link recomputes from the hash of the entry walked
/// before): an entry edited, deleted, replaced with its hash recomputed, or replayed is still
/// found, and named at the right seq.
#[tokio::test]
async fn tampering_with_entries_without_prev_is_named_at_its_seq() {
    let store = sett_testkit::store().await;
    for i in 0..6 {
        let stopped = EventData::InstanceStopped(InstanceStopped { run_id: format!("r{i}") });
        store.append_event(&stopped, 1_000 + i).await.unwrap();
    }
    let mut out = Vec::new();
    export_jsonl(&store, &mut out).await.unwrap();
    let dumps: Vec<Dump> = String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let at = dumps.iter().position(|d| d.key == "events").unwrap();
    let with = |entries: Vec<(String, BTreeMap<String, String>)>| {
        let mut d = dumps.clone();
        let DumpValue::Stream(chunk) = &mut d[at].value else { unreachable!() };
        chunk.entries = entries;
        d
    };
    let DumpValue::Stream(chunk) = &dumps[at].value else { panic!("the event stream is a stream") };
    let original = chunk.entries.clone();
    assert_eq!(original.len(), 6);
    assert!(original.iter().all(|(_, f)| !f.contains_key("prev") && f.get("claim").is_some_and(String::is_empty)));
    assert!(verify_dumps(&dumps).await.intact());
    let id = |i: usize| original[i].0.clone();
    let breach = |d: Vec<Dump>| async move { verify_dumps(&d).await.breach.expect("the tampering is found") };

    // Seq 3's data edited.
    let mut e = original.clone();
    let edited = e[2].1["data"].replace("r2", "rX");
    e[2].1.insert("data".into(), edited);
    let b = breach(with(e)).await;
    assert_eq!(b.record, format!("event {} (seq 3)", id(2)));
    assert!(b.problem.contains("content changed"), "{}", b.problem);

    // Seq 3 deleted: seq 4 names it.
    let mut e = original.clone();
    e.remove(2);
    let b = breach(with(e)).await;
    assert_eq!(b.record, format!("event {} (seq 4)", id(3)));
    assert!(b.problem.contains("seq 3 is missing"), "{}", b.problem);

    // Seq 3 replaced, its hash recomputed from seq 2's: seq 4 no longer follows.
    let mut e = original.clone();
    let f = &mut e[2].1;
    let edited = f["data"].replace("r2", "rX");
    f.insert("data".into(), edited);
    let digest = sett_core::ledger::event_digest(&f["kind"], &f["ts"], &f["data"], None);
    let forged = sett_core::ledger::chain_link(&original[1].1["hash"], &digest, 3).unwrap();
    f.insert("hash".into(), forged);
    let b = breach(with(e)).await;
    assert_eq!(b.record, format!("event {} (seq 4)", id(3)));
    assert!(b.problem.contains("the event before it was replaced"), "{}", b.problem);

    // Seq 3 replayed after itself.
    let mut e = original.clone();
    e.insert(3, e[2].clone());
    let b = breach(with(e)).await;
    assert!(b.record.ends_with("(seq 3)"), "{}", b.record);
    assert!(b.problem.contains("seq 3 where 4 was expected"), "{}", b.problem);
}
