//! Hash encoding of artifacts and claims (design.md §2): scalars as plain strings, lists and objects
//! as JSON, empty lists as `[]`, booleans `true`/`false`, times as integer milliseconds, absent
//! optional fields omitted. A claim is stored smaller (it is rewritten on every transition and
//! kept for good): its empty lists and maps are omitted, and its `grants` and `received` maps are
//! one field per agent (`grant:<agent>`, `received:<agent>`), a grant as a compact JSON array, so
//! every value stays within Redis's `hash-max-listpack-value` (64 bytes) and the hash is kept as
//! a listpack rather than a hash table (a completed claim: ~2.3 KB → ~0.6 KB). Claims stored the
//! earlier way (every field, the maps as JSON objects) are read as before. Unknown fields are an
//! error in strict mode (tests) and a warning otherwise, so an older binary can read a newer
//! record of the same shape.

use std::collections::HashMap;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use sett_core::claim::Grant;
use sett_core::{AgentName, Artifact, Claim};

use crate::StoreError;

/// Fields stored verbatim (everything else is JSON text: numbers, booleans, lists, objects).
const ARTIFACT_STRING_FIELDS: &[&str] = &[
    "id",
    "logical_id",
    "structural_type",
    "type",
    "payload",
    "produced_by_role",
    "claim_id",
    "summary",
    "answered_by",
    "forked_from",
    "hash",
];
const ARTIFACT_FIELDS: &[&str] = &[
    "id",
    "logical_id",
    "version",
    "structural_type",
    "type",
    "payload",
    "source_artifacts",
    "produced_by_role",
    "claim_id",
    "created_at_ms",
    "summary",
    "answered_by",
    "timed_out",
    // The agent's reported usage (JSON text of sett_core::usage::Usage), when it reported any.
    "usage",
    // The artifact a branch's first artifact was forked from (`sett fork`), when it is one.
    "forked_from",
    // The ledger hash (sett_core::ledger::artifact_hash); not part of the domain type.
    "hash",
];
const CLAIM_STRING_FIELDS: &[&str] = &[
    "id",
    "artifact_id",
    "status",
    "target_producer",
    "rework_of",
    "granted_exclusive_agent",
    "assigned_agent",
    "question_id",
    "resume_status",
    "termination_reason",
    "outcome_artifact",
    // The id of the ledger event the last write appended; not part of the domain type.
    "event",
];
const CLAIM_FIELDS: &[&str] = &[
    "id",
    "artifact_id",
    "status",
    "revision",
    "created_at_ms",
    "updated_at_ms",
    "target_producer",
    "target_version",
    "rework_of",
    "bid_deadline_ms",
    "missing_bids",
    "granted_review_agents",
    "granted_parallel_agents",
    "granted_exclusive_agent",
    "human_reviewers",
    "assigned_agent",
    "additional_context_ids",
    "grants",
    "received",
    "rejections",
    "grant_seq",
    "question_id",
    "open_questions",
    "answered_questions",
    "resume_status",
    "termination_reason",
    "outcome_artifact",
    "event",
];

fn encode<T: Serialize>(value: &T, string_fields: &[&str]) -> Vec<(String, String)> {
    let Value::Object(map) = serde_json::to_value(value).expect("domain types serialize") else {
        unreachable!("domain types are structs")
    };
    map.into_iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) if string_fields.contains(&k.as_str()) => s,
                other => other.to_string(),
            };
            (k, text)
        })
        .collect()
}

fn decode<T: DeserializeOwned>(
    what: &str,
    fields: HashMap<String, String>,
    string_fields: &[&str],
    known: &[&str],
    strict: bool,
) -> Result<T, StoreError> {
    let mut map = Map::new();
    for (k, v) in fields {
        if !known.contains(&k.as_str()) {
            if strict {
                return Err(StoreError::Decode(format!("{what}: unknown field '{k}'")));
            }
            tracing::warn!(record = what, field = %k, "ignoring unknown hash field");
            continue;
        }
        let value = if string_fields.contains(&k.as_str()) {
            Value::String(v)
        } else {
            serde_json::from_str(&v)
                .map_err(|e| StoreError::Decode(format!("{what}: field '{k}' is not valid JSON ({e}): {v:?}")))?
        };
        map.insert(k, value);
    }
    serde_json::from_value(Value::Object(map)).map_err(|e| StoreError::Decode(format!("{what}: {e}")))
}

pub fn encode_artifact(a: &Artifact) -> Vec<(String, String)> {
    encode(a, ARTIFACT_STRING_FIELDS)
}

pub fn decode_artifact(fields: HashMap<String, String>, strict: bool) -> Result<Artifact, StoreError> {
    decode("artifact", fields, ARTIFACT_STRING_FIELDS, ARTIFACT_FIELDS, strict)
}

/// A claim's lists and maps, omitted from the stored record when empty (and read back empty when
/// absent): most of them are empty for most of a claim's life.
const CLAIM_COLLECTION_FIELDS: &[(&str, &str)] = &[
    ("missing_bids", "[]"),
    ("granted_review_agents", "[]"),
    ("granted_parallel_agents", "[]"),
    ("human_reviewers", "[]"),
    ("additional_context_ids", "[]"),
    ("grants", "{}"),
    ("received", "{}"),
    ("rejections", "[]"),
    ("open_questions", "{}"),
    ("answered_questions", "[]"),
];

/// The field prefix of one grant (`grant:<agent>`) and of one received output
/// (`received:<agent>`), the entries of the claim's `grants` and `received` maps.
const GRANT_PREFIX: &str = "grant:";
const RECEIVED_PREFIX: &str = "received:";

/// A grant as stored: `[claim_type, seq, granted_at_ms, deadline_ms or null, via_worker]`
/// (≈ 50 bytes where the JSON object takes ≈ 110).
fn encode_grant(g: &Grant) -> String {
    json!([g.claim_type, g.seq, g.granted_at_ms, g.deadline_ms, g.via_worker]).to_string()
}

/// A stored grant: the compact array, or the JSON object of a claim stored the earlier way.
fn decode_grant(text: &str) -> Result<Value, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    match v {
        Value::Array(a) if a.len() == 5 => Ok(json!({
            "claim_type": a[0], "seq": a[1], "granted_at_ms": a[2], "deadline_ms": a[3], "via_worker": a[4],
        })),
        Value::Object(_) => Ok(v),
        other => Err(format!("not a grant: {other}")),
    }
}

pub fn encode_claim(c: &Claim) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    for (name, value) in encode(c, CLAIM_STRING_FIELDS) {
        if CLAIM_COLLECTION_FIELDS.iter().any(|(f, empty)| *f == name && *empty == value) {
            continue;
        }
        match name.as_str() {
            "grants" => {
                fields.extend(c.grants.iter().map(|(agent, g)| (format!("{GRANT_PREFIX}{agent}"), encode_grant(g))))
            }
            "received" => fields.extend(
                c.received.iter().map(|(agent, artifact)| (format!("{RECEIVED_PREFIX}{agent}"), artifact.to_string())),
            ),
            _ => fields.push((name, value)),
        }
    }
    fields
}

/// The binding a claim write's events carry (`<id>:<revision>:<claim hash>` of the record as
/// written), so `sett verify` can tell a transition from a tampered record.
pub(crate) fn claim_binding(c: &Claim, fields: &[(String, String)]) -> String {
    format!(
        "{}:{}:{}",
        c.id,
        c.revision,
        sett_core::ledger::claim_hash(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    )
}

/// One claim a multi-claim script (cancel, resume) rewrites, as its JSON argument entry:
/// `[id, expected revision, event, event digest, binding, flat fields]`, the event bound to the
/// record as written at `ts`.
pub(crate) fn claim_rewrite(c: &Claim, expected: u64, event: &sett_core::event::EventData, ts: &str) -> Vec<Value> {
    let fields = encode_claim(c);
    let binding = claim_binding(c, &fields);
    let data = event.to_json();
    let digest = sett_core::ledger::event_digest(event.kind().as_str(), ts, &data, Some(&binding));
    let flat: Vec<String> = fields.into_iter().flat_map(|(f, v)| [f, v]).collect();
    vec![c.id.to_string().into(), expected.to_string().into(), data.into(), digest.into(), binding.into(), flat.into()]
}

pub fn decode_claim(mut fields: HashMap<String, String>, strict: bool) -> Result<Claim, StoreError> {
    // The per-agent entries back into their maps (next to, or instead of, the maps of a claim
    // stored the earlier way), then the omitted collections as empty.
    let mut grants = Map::new();
    let mut received = Map::new();
    let entries: Vec<String> =
        fields.keys().filter(|k| k.starts_with(GRANT_PREFIX) || k.starts_with(RECEIVED_PREFIX)).cloned().collect();
    for name in entries {
        let value = fields.remove(&name).expect("listed");
        let (map, agent, entry) = match name.split_once(':') {
            Some(("grant", agent)) => (&mut grants, agent, decode_grant(&value)),
            Some((_, agent)) => (&mut received, agent, Ok(Value::String(value))),
            None => unreachable!("the prefixes end with ':'"),
        };
        if let Err(e) = AgentName::parse(agent) {
            if strict {
                return Err(StoreError::Decode(format!("claim: field '{name}': {e}")));
            }
            tracing::warn!(record = "claim", field = %name, "ignoring a per-agent field that names no agent");
            continue;
        }
        let entry = entry.map_err(|e| StoreError::Decode(format!("claim: field '{name}' ({e})")))?;
        map.insert(agent.to_owned(), entry);
    }
    for (name, map) in [("grants", grants), ("received", received)] {
        if !map.is_empty() {
            let mut merged = match fields.get(name).map(|v| serde_json::from_str::<Value>(v)) {
                Some(Ok(Value::Object(m))) => m,
                _ => Map::new(),
            };
            merged.extend(map);
            fields.insert(name.to_owned(), Value::Object(merged).to_string());
        }
    }
    for (name, empty) in CLAIM_COLLECTION_FIELDS {
        if !fields.contains_key(*name) {
            fields.insert((*name).to_owned(), (*empty).to_owned());
        }
    }
    decode("claim", fields, CLAIM_STRING_FIELDS, CLAIM_FIELDS, strict)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sett_core::StructuralType;
    use sett_core::machine::new_claim;
    use sett_core::policy::{AgentPolicy, Policy};

    /// A stored artifact field that the ledger hash does not cover could be edited in Redis without
    /// `sett verify` noticing: the stored fields are exactly the hashed ones plus the hash itself.
    #[test]
    fn every_stored_artifact_field_is_covered_by_the_ledger_hash() {
        let (hash, stored) = ARTIFACT_FIELDS.split_last().unwrap();
        assert_eq!(*hash, "hash");
        assert_eq!(stored, sett_core::ledger::ARTIFACT_HASHED_FIELDS);
    }

    fn round_trip_artifact(a: &Artifact) {
        let fields: HashMap<_, _> = encode_artifact(a).into_iter().collect();
        assert_eq!(&decode_artifact(fields, true).unwrap(), a);
    }

    #[test]
    fn encodes_lists_and_booleans_plainly() {
        let a = Artifact::new_root(crate::new_artifact_id(), StructuralType::Standard, "T", "{\"k\":1}", "user", 5);
        let fields: HashMap<_, _> = encode_artifact(&a).into_iter().collect();
        assert_eq!(fields["source_artifacts"], "[]");
        assert_eq!(fields["timed_out"], "false");
        assert_eq!(fields["payload"], "{\"k\":1}");
        assert_eq!(fields["created_at_ms"], "5");
        assert!(!fields.contains_key("claim_id"));
        round_trip_artifact(&a);
        let mut extra = fields.clone();
        extra.insert("bogus".into(), "1".into());
        assert!(decode_artifact(extra.clone(), true).is_err());
        assert!(decode_artifact(extra, false).is_ok());
    }

    fn policy() -> Policy {
        Policy {
            agents: [(
                sett_core::AgentName::parse("A").unwrap(),
                AgentPolicy { timeout_ms: 1, question_timeout_ms: None, via_worker: false, approval: None },
            )]
            .into(),
            max_review_iterations: 3,
            bid_timeout_ms: 10,
            on_question_timeout: Default::default(),
            routing: Default::default(),
        }
    }

    #[test]
    fn claims_round_trip() {
        let a = Artifact::new_root(crate::new_artifact_id(), StructuralType::Standard, "T", "x", "user", 5);
        let mut c = new_claim(crate::new_claim_id(), &a, &policy(), 7);
        let fields: HashMap<_, _> = encode_claim(&c).into_iter().collect();
        assert_eq!(fields["status"], "pending_consensus");
        assert!(!fields.contains_key("granted_review_agents"), "an empty list is not stored");
        assert_eq!(decode_claim(fields, true).unwrap(), c);

        // Fields written only when set (here the human reviewers fixed at creation) are known to
        // the decoder too: a claim read back keeps them, and a strict read (import, verify) accepts them.
        c.human_reviewers = vec!["alice".to_owned(), "group:legal".to_owned()];
        let fields: HashMap<_, _> = encode_claim(&c).into_iter().collect();
        assert_eq!(fields["human_reviewers"], r#"["alice","group:legal"]"#);
        assert_eq!(decode_claim(fields.clone(), false).unwrap(), c);
        assert_eq!(decode_claim(fields, true).unwrap(), c);
    }

    /// Every field a claim can be written with is one the decoder knows: a field missing from
    /// CLAIM_FIELDS is dropped on every read (a human review never asked) and refused by a strict
    /// one. Serialized whole (absent options as nulls), with the fields skipped when empty set.
    #[test]
    fn every_claim_field_is_known_to_the_decoder() {
        let a = Artifact::new_root(crate::new_artifact_id(), StructuralType::Standard, "T", "x", "user", 5);
        let mut c = new_claim(crate::new_claim_id(), &a, &policy(), 7);
        c.human_reviewers = vec!["alice".to_owned()];
        let serde_json::Value::Object(all) = serde_json::to_value(&c).unwrap() else { unreachable!() };
        assert!(all.len() > 20, "the claim serialized to {} fields", all.len());
        for f in all.keys() {
            assert!(CLAIM_FIELDS.contains(&f.as_str()), "claim field '{f}' is missing from CLAIM_FIELDS");
        }
    }

    /// A granted and completed claim: the shape every lifecycle leaves behind.
    fn completed_claim() -> Claim {
        let a = Artifact::new_root(crate::new_artifact_id(), StructuralType::Standard, "T", "x", "user", 5);
        let mut c = new_claim(crate::new_claim_id(), &a, &policy(), 1_796_557_462_167);
        let agent = sett_core::AgentName::parse("A").unwrap();
        c.status = sett_core::ClaimStatus::Complete;
        c.revision = 3;
        c.granted_exclusive_agent = Some(agent.clone());
        c.grant_seq = 1;
        c.grants.insert(
            agent.clone(),
            Grant {
                claim_type: sett_core::ClaimType::Exclusive,
                seq: 1,
                granted_at_ms: 1_796_557_462_620,
                deadline_ms: Some(1_796_557_524_620),
                via_worker: false,
            },
        );
        let output = crate::new_artifact_id();
        c.received.insert(agent, output);
        c.outcome_artifact = Some(output);
        c
    }

    /// Redis keeps a hash as a listpack (a third of the memory of a hash table) only while every
    /// value is at most `hash-max-listpack-value` (64) bytes; the completed claim's record fits,
    /// with no empty collection stored, and reads back whole.
    #[test]
    fn a_completed_claim_is_stored_within_the_listpack_limits() {
        let c = completed_claim();
        let fields = encode_claim(&c);
        for (name, value) in &fields {
            assert!(name.len() <= 64 && value.len() <= 64, "{name} = {value} ({} bytes)", value.len());
            assert!(value != "[]" && value != "{}", "{name} is empty and stored");
        }
        let map: HashMap<_, _> = fields.into_iter().collect();
        assert_eq!(map["grant:A"], r#"["exclusive",1,1796557462620,1796557524620,false]"#);
        assert_eq!(map["received:A"], c.received.values().next().unwrap().to_string());
        assert!(!map.contains_key("grants") && !map.contains_key("received"));
        assert_eq!(decode_claim(map, true).unwrap(), c);
    }

    /// A claim stored the earlier way (every collection as JSON, empty ones included, the maps as
    /// objects) still reads back as it was written.
    #[test]
    fn a_claim_stored_the_earlier_way_reads_back() {
        let c = completed_claim();
        let earlier: HashMap<_, _> = encode(&c, CLAIM_STRING_FIELDS).into_iter().collect();
        assert_eq!(earlier["rejections"], "[]");
        assert!(earlier["grants"].starts_with(r#"{"A":{"#), "{}", earlier["grants"]);
        assert_eq!(decode_claim(earlier.clone(), true).unwrap(), c);
        assert_eq!(decode_claim(earlier, false).unwrap(), c);
    }

    /// A grant is stored as a positional array: a field added to `Grant` must be added to it.
    #[test]
    fn the_stored_grant_carries_every_field_of_a_grant() {
        let g = completed_claim().grants.into_values().next().unwrap();
        let Value::Object(all) = serde_json::to_value(&g).unwrap() else { unreachable!() };
        let keys: Vec<&str> = all.keys().map(String::as_str).collect();
        assert_eq!(keys, ["claim_type", "deadline_ms", "granted_at_ms", "seq", "via_worker"]);
        let back: Grant = serde_json::from_value(decode_grant(&encode_grant(&g)).unwrap()).unwrap();
        assert_eq!(back, g);
        let waiting = Grant { deadline_ms: None, via_worker: true, ..g };
        let back: Grant = serde_json::from_value(decode_grant(&encode_grant(&waiting)).unwrap()).unwrap();
        assert_eq!(back, waiting);
    }

    /// A per-agent field that names no agent is refused by a strict read and skipped otherwise;
    /// one whose value is no grant is refused either way.
    #[test]
    fn malformed_per_agent_fields() {
        let mut map: HashMap<_, _> = encode_claim(&completed_claim()).into_iter().collect();
        map.insert("grant:not an agent".into(), "[]".into());
        assert!(decode_claim(map.clone(), true).is_err());
        assert!(decode_claim(map, false).is_ok());
        let mut map: HashMap<_, _> = encode_claim(&completed_claim()).into_iter().collect();
        map.insert("grant:A".into(), "7".into());
        assert!(decode_claim(map.clone(), true).is_err());
        assert!(decode_claim(map, false).is_err());
    }

    proptest! {
        #[test]
        fn artifact_encoding_round_trips(
            payload in "\\PC*", ty in "[A-Za-z]{1,12}", role in "\\PC{1,20}", summary in proptest::option::of("\\PC*"),
            version in 1u32..1000, ts in 0i64..i64::MAX, timed_out: bool, nsrc in 0usize..4,
        ) {
            let mut a = Artifact::new_root(crate::new_artifact_id(), StructuralType::Review, ty, payload, role, ts);
            a.version = version;
            a.summary = summary;
            a.timed_out = timed_out;
            a.source_artifacts = (0..nsrc).map(|_| crate::new_artifact_id()).collect();
            a.claim_id = (nsrc % 2 == 1).then(crate::new_claim_id);
            let fields: HashMap<_, _> = encode_artifact(&a).into_iter().collect();
            prop_assert_eq!(decode_artifact(fields, true).unwrap(), a);
        }
    }
}
