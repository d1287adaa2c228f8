//! Property-based fuzzing of what sett-store decodes from outside: artifact and claim hashes
//! (`codec::decode_artifact` / `decode_claim`, e.g. written by another version or by hand),
//! events in the stream (any field values XADDed by anyone with write access), and `import`
//! records (`Store::restore`). Nothing may panic; a rejection is a `StoreError::Decode` that
//! names what is wrong; nothing is ever written outside the instance's prefix.

use std::collections::HashMap;
use std::time::Duration;

use fred::prelude::*;
use proptest::prelude::*;
use sett_store::codec::{decode_artifact, decode_claim};
use sett_store::{Dump, StoreError};

fn field_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        Just("[]".to_owned()),
        Just("null".to_owned()),
        Just("{}".to_owned()),
        Just("-1".to_owned()),
        Just("99999999999999999999999".to_owned()),
        Just("0190c2b4-7d3e-7a1b-9c2d-3e4f5a6b7c8d".to_owned()),
        Just("[\"0190c2b4-7d3e-7a1b-9c2d-3e4f5a6b7c8d\"]".to_owned()),
        Just("Standard".to_owned()),
        Just("pending_review".to_owned()),
        Just("true".to_owned()),
    ]
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
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
            "artifact_id",
            "status",
            "revision",
            "updated_at_ms",
            "grants",
            "received",
            "rejections",
            "grant_seq",
            "open_questions",
            "bid_deadline_ms",
        ])
        .prop_map(str::to_owned),
        "[a-z_]{1,12}",
    ]
}

fn check_decode(r: Result<impl std::fmt::Debug, StoreError>) {
    if let Err(e) = r {
        assert!(matches!(e, StoreError::Decode(_)), "not a decode error: {e:?}");
        assert!(!e.to_string().is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn artifact_and_claim_hashes(fields in prop::collection::hash_map(field_name(), field_value(), 0..16), strict in any::<bool>()) {
        check_decode(decode_artifact(fields.clone(), strict));
        check_decode(decode_claim(fields, strict));
    }

    #[test]
    fn artifact_hash_with_one_field_broken(name in field_name(), value in field_value()) {
        let a = sett_core::Artifact::new_root(sett_store::new_artifact_id(), sett_core::StructuralType::Standard, "GoalDefined", "p", "user", 1);
        let mut fields: HashMap<String, String> = sett_store::codec::encode_artifact(&a).into_iter().collect();
        fields.insert(name, value);
        check_decode(decode_artifact(fields, true));
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// Arbitrary stream entries: reading them gives events or a decode error, never a panic.
#[test]
fn arbitrary_events_decode_or_fail_cleanly() {
    let rt = runtime();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases: 64, ..ProptestConfig::default() });
    let strategy = prop::collection::vec(
        (
            prop::option::of(prop_oneof![Just("artifact_created".to_owned()), any::<String>()]),
            prop::option::of(field_value()),
            prop::option::of(field_value()),
        ),
        1..4,
    );
    runner
        .run(&strategy, |entries| {
            rt.block_on(async {
                let store = sett_testkit::store().await;
                let raw = raw_client().await;
                for (kind, ts, data) in &entries {
                    let mut f: Vec<(&str, String)> = Vec::new();
                    if let Some(k) = kind {
                        f.push(("kind", k.clone()));
                    }
                    if let Some(t) = ts {
                        f.push(("ts", t.clone()));
                    }
                    if let Some(d) = data {
                        f.push(("data", d.clone()));
                    }
                    if f.is_empty() {
                        f.push(("x", String::new()));
                    }
                    let _: String = raw.xadd(store.keys().events(), false, None, "*", f).await.unwrap();
                }
                check_decode(store.events_after(None, 100).await);
                let _ = raw.quit().await;
            });
            Ok(())
        })
        .unwrap();
}

/// Arbitrary import records: restored under the instance prefix or refused with a clear error.
#[test]
fn arbitrary_import_records_stay_inside_the_instance() {
    let rt = runtime();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases: 128, ..ProptestConfig::default() });
    let value = prop_oneof![
        any::<String>().prop_map(serde_json::Value::String),
        Just(serde_json::json!({"a": "b"})),
        Just(serde_json::json!({"a": 1})),
        Just(serde_json::json!([["m", 1.5]])),
        Just(serde_json::json!(["x", "y"])),
        Just(
            serde_json::json!({"entries": [["1-1", {"k": "v"}]], "groups": [{"name": "g", "last_delivered_id": "0"}]})
        ),
        Just(serde_json::json!({"entries": [["bogus", {"k": "v"}]]})),
        Just(serde_json::json!({"entries": [], "groups": [{"name": 3}]})),
        Just(serde_json::Value::Null),
    ];
    let dump = (
        prop_oneof![
            Just("artifact:x".to_owned()),
            Just("../sett:instances".to_owned()),
            Just("}:evil".to_owned()),
            any::<String>()
        ],
        prop::sample::select(vec!["string", "hash", "zset", "list", "set", "stream", "module"]),
        prop::option::of(prop_oneof![Just(-5i64), Just(0), Just(60_000), any::<i64>()]),
        value,
    )
        .prop_map(|(key, kind, ttl_ms, value)| serde_json::json!({"key": key, "type": kind, "ttl_ms": ttl_ms, "value": value}));
    // A Redis of its own, emptied before each case: every key in it after a restore was written
    // by that restore, so a key outside the instance (an escape) is seen, not just those inside.
    let data = tempfile::tempdir().unwrap();
    let server = sett_testkit::RedisServer::start(data.path(), &[]);
    let (redis, raw) = rt.block_on(async {
        let raw =
            fred::clients::Client::new(fred::types::config::Config::from_url(&server.url()).unwrap(), None, None, None);
        raw.init().await.unwrap();
        (sett_testkit::redis_at(&server.url()).await, raw)
    });
    runner
        .run(&dump, |line| {
            rt.block_on(async {
                let _: () = raw.flushall(false).await.unwrap();
                let store = redis.instance(&sett_testkit::instance_name());
                // A record is typed when it is read: one whose value does not fit its type is
                // refused there, with a reason, and never reaches the store.
                let d = match serde_json::from_value::<Dump>(line.clone()) {
                    Ok(d) => d,
                    Err(e) => {
                        assert!(e.to_string().contains("key "), "{line}: {e}");
                        return;
                    }
                };
                if let Err(e) = store.restore(&d).await {
                    assert!(!e.to_string().is_empty());
                }
                // Whatever happened, every key written is this instance's, and at most one.
                let keys: Vec<String> = raw.custom(fred::cmd!("KEYS"), vec!["*"]).await.unwrap();
                let prefix = format!("sett:{{{}}}:", store.instance().as_str());
                assert!(keys.iter().all(|k| k.starts_with(&prefix)), "{d:?} wrote outside {prefix}: {keys:?}");
                assert!(keys.len() <= 1, "{d:?} wrote {keys:?}");
            });
            Ok(())
        })
        .unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// No password survives redaction, whatever characters it has (even unencoded ones).
    #[test]
    fn redact_url_hides_every_password(
        scheme in prop::sample::select(vec!["redis", "rediss", "redis-cluster", "redis-sentinel"]),
        user in "[a-z0-9_-]{0,12}",
        pass in "[A-Za-z0-9!$%&'()*+,;=:@._~-]{6,24}",
        // An unencoded `&` would end the parameter for Redis clients too; it is not a password char here.
        query in prop::option::of("[A-Za-z0-9!$%'()*+,;:@._~-]{6,24}"),
    ) {
        let mut url = format!("{scheme}://{user}:{pass}@redis.internal:6379/0");
        if let Some(q) = &query {
            url.push_str(&format!("?node=other:6379&sentinelPassword={q}"));
        }
        let r = sett_store::redact_url(&url);
        prop_assert!(!r.contains(&pass), "{} → {}", url, r);
        if let Some(q) = &query {
            prop_assert!(!r.contains(q.as_str()), "{} → {}", url, r);
        }
        let prefix = format!("{scheme}://");
        prop_assert!(r.starts_with(&prefix));
    }
}

/// A fresh instance, a consumer of group `g` on its stream, and a valid event to append.
async fn group_of_a_fresh_instance() -> (sett_store::Store, sett_store::GroupConsumer, sett_core::event::EventData) {
    let store = sett_testkit::store().await;
    let consumer = store.group_consumer("g", "c", sett_store::GroupStart::Beginning).await.unwrap();
    consumer.ensure_group().await.unwrap();
    let data = sett_core::event::EventData::InstanceStopped(sett_core::event::InstanceStopped { run_id: "r".into() });
    (store, consumer, data)
}

/// A plain client of the test Redis, writing what Sett never would.
async fn raw_client() -> fred::clients::Client {
    let raw = fred::clients::Client::new(
        fred::types::config::Config::from_url(&sett_testkit::redis_url()).unwrap(),
        None,
        None,
        None,
    );
    raw.init().await.unwrap();
    raw
}

/// A malformed entry between good ones: a consumer group gets the good ones, and the bad one is
/// acknowledged so a restart (re-reading pending entries) does not trip on it again.
#[test]
fn a_malformed_event_does_not_block_a_consumer_group() {
    runtime().block_on(async {
        let (store, mut consumer, data) = group_of_a_fresh_instance().await;
        store.append_event(&data, 1).await.unwrap();
        let raw = raw_client().await;
        let _: String = raw.xadd(store.keys().events(), false, None, "*", vec![("kind", "bogus")]).await.unwrap();
        let _: String = raw.xadd(store.keys().events(), false, None, "*", vec![("data", "{")]).await.unwrap();
        store.append_event(&data, 2).await.unwrap();
        let got = consumer.read(10, Duration::from_millis(100)).await.unwrap();
        assert_eq!(got.len(), 2, "{got:?}");
        let ids: Vec<String> = got.iter().map(|e| e.id.clone()).collect();
        consumer.ack(&ids).await.unwrap();
        consumer.reread_pending();
        let pending = consumer.read_pending(10).await.unwrap();
        assert!(pending.is_empty(), "{pending:?}");
        let _ = raw.quit().await;
        consumer.quit().await;
    });
}

/// An entry delivered, never acknowledged, then deleted (`XDEL` by hand, or a trim): Redis
/// re-delivers its id with no fields. Reading the pending entries again returns the live ones
/// and acknowledges the deleted one, so it is not re-read at every restart.
#[test]
fn an_entry_deleted_while_pending_is_stepped_past() {
    runtime().block_on(async {
        let (store, mut consumer, data) = group_of_a_fresh_instance().await;
        let first = store.append_event(&data, 1).await.unwrap();
        let second = store.append_event(&data, 2).await.unwrap();
        let got = consumer.read(10, Duration::from_millis(100)).await.unwrap();
        assert_eq!(got.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), [first.as_str(), second.as_str()]);
        let raw = raw_client().await;
        let deleted: u64 = raw.xdel(store.keys().events(), first.as_str()).await.unwrap();
        assert_eq!(deleted, 1);
        consumer.reread_pending();
        let pending = consumer.read_pending(10).await.unwrap();
        assert_eq!(pending.iter().map(|e| (e.id.as_str(), &e.data)).collect::<Vec<_>>(), [(second.as_str(), &data)]);
        consumer.ack(std::slice::from_ref(&second)).await.unwrap();
        consumer.reread_pending();
        let pending = consumer.read_pending(10).await.unwrap();
        assert!(pending.is_empty(), "the deleted entry was acknowledged: {pending:?}");
        let _ = raw.quit().await;
        consumer.quit().await;
    });
}

#[test]
fn debug_output_of_connection_settings_hides_the_password() {
    let o = sett_store::RedisOptions::new("redis://user:hunter2-secret@localhost:6379");
    let shown = format!("{o:?}");
    assert!(!shown.contains("hunter2-secret") && shown.contains("user:***@"), "{shown}");
}

/// A malformed import record leaves the key it would replace untouched.
#[test]
fn a_malformed_import_record_deletes_nothing() {
    runtime().block_on(async {
        let store = sett_testkit::store().await;
        let record = |kind: &str, value: serde_json::Value| {
            serde_json::from_value::<Dump>(
                serde_json::json!({"key": "k", "type": kind, "ttl_ms": null, "value": value}),
            )
        };
        let good = record("string", serde_json::json!("kept")).unwrap();
        store.restore(&good).await.unwrap();
        for (kind, value) in [
            ("string", serde_json::json!(1)),
            ("hash", serde_json::json!([1])),
            ("zset", serde_json::json!({"a": 1})),
            ("list", serde_json::json!({"a": 1})),
            ("set", serde_json::json!(null)),
            ("stream", serde_json::json!({"entries": [], "groups": [{"name": 3}]})),
            ("module", serde_json::json!("x")),
        ] {
            // Refused when read (the value does not fit its type), or by the store (a key name).
            match record(kind, value) {
                Err(e) => assert!(e.to_string().contains("key k: "), "{kind}: {e}"),
                Ok(bad) => assert!(store.restore(&bad).await.is_err(), "{kind}"),
            }
            let mut exported = Vec::new();
            store
                .export(|d| {
                    exported.push(d);
                    Ok::<_, sett_store::StoreError>(())
                })
                .await
                .unwrap();
            assert_eq!(exported, vec![good.clone()], "{kind} removed the key");
        }
    });
}
