//! An export written before export records were typed (`sett export` of main at 1b64abf, kept in
//! `tests/fixtures/export-before-typed-records.jsonl`: a small workflow — artifacts, a question
//! and its answer, claims and bids, the event stream with a consumer group — and a key of every
//! type outside the ledger, the list, sorted set and stream past one record). The format is a
//! contract: every line reads and writes back byte for byte, the file verifies offline, it
//! imports, and the imported instance verifies and exports the same lines again.

use sett_core::event::{EventData, InstanceStopped};
use sett_ops::transfer::{export_jsonl, for_each_dump, import_stream};
use sett_ops::verify::{ExportLedger, verify};

const FIXTURE: &str = include_str!("fixtures/export-before-typed-records.jsonl");

/// The lines with every TTL set to 0 (a TTL ticks down between an import and an export).
fn without_ttls(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            if v["ttl_ms"].is_number() {
                v["ttl_ms"] = 0.into();
            }
            v.to_string()
        })
        .collect()
}

#[tokio::test]
async fn an_export_written_before_typed_records_imports_and_verifies() {
    let lines: Vec<&str> = FIXTURE.lines().collect();
    let mut read = Vec::new();
    for_each_dump(FIXTURE.as_bytes(), |d| {
        read.push(serde_json::to_string(&d).unwrap());
        Ok(())
    })
    .unwrap();
    assert_eq!(read, lines, "every record writes back byte for byte");
    for (key, records) in [("fixture:list", 2), ("fixture:zset", 2), ("fixture:stream", 2)] {
        assert_eq!(lines.iter().filter(|l| l.starts_with(&format!(r#"{{"key":"{key}""#))).count(), records, "{key}");
    }

    let mut file = ExportLedger::read(std::io::Cursor::new(FIXTURE)).unwrap();
    let offline = verify(&mut file, None).await.unwrap();
    assert!(offline.intact(), "{:?}", offline.breach);
    assert_eq!(offline.report.artifacts, 6);

    let store = sett_testkit::store().await;
    let report = import_stream(&store, FIXTURE.as_bytes(), false).await.unwrap();
    assert_eq!(report.restored as usize, lines.len() - 3, "a key in several records counts once");
    let imported = verify(&mut store.clone(), None).await.unwrap();
    assert!(imported.intact(), "{:?}", imported.breach);
    assert_eq!(imported.report.artifacts, 6);
    assert_eq!(imported.report.events, offline.report.events);

    let mut again = Vec::new();
    export_jsonl(&store, &mut again).await.unwrap();
    assert_eq!(without_ttls(&String::from_utf8(again).unwrap()), without_ttls(FIXTURE));
}

/// An instance written before issue 29 (its entries store `prev` and omit an empty `claim`)
/// keeps its chain across the upgrade: new entries (no `prev`, an empty `claim`) link to the old
/// head, and the whole verifies.
#[tokio::test]
async fn entries_appended_after_the_upgrade_extend_an_old_chain() {
    let store = sett_testkit::store().await;
    import_stream(&store, FIXTURE.as_bytes(), false).await.unwrap();
    let old = store.raw_events_after(None, 1_000).await.unwrap();
    assert!(old.iter().all(|(_, f)| f.contains_key("prev")), "the fixture is of the old format");
    let before = verify(&mut store.clone(), None).await.unwrap();
    for i in 0..3 {
        let stopped = EventData::InstanceStopped(InstanceStopped { run_id: format!("after-{i}") });
        store.append_event(&stopped, 9_000 + i).await.unwrap();
    }
    let all = store.raw_events_after(None, 1_000).await.unwrap();
    assert!(all[old.len()..].iter().all(|(_, f)| !f.contains_key("prev")), "new entries store no prev");
    let after = verify(&mut store.clone(), None).await.unwrap();
    assert!(after.intact(), "{:?}", after.breach);
    assert_eq!(after.report.events, before.report.events + 3);
    assert_eq!(after.report.head, store.ledger_head().await.unwrap());
}
