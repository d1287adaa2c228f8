//! A ledger that went back is noticed, against a real Redis: the ledger keys are put back to an
//! older copy (an export restored over them, as a Redis restarted on an older RDB would), and
//! the watch reports it once, records it for `sett status`, and keeps the highest head in its
//! file across restarts. Deliberate replacements (an import) and a normal restart raise nothing.

use sett_core::event::{EventData, InstanceStopped};
use sett_ops::ledger_watch::{LedgerWatch, load_state, record_import};
use sett_ops::transfer::{export_jsonl, import_stream};
use sett_store::{Store, now_ms};

async fn append(store: &Store, n: usize) {
    for i in 0..n {
        let e = EventData::InstanceStopped(InstanceStopped { run_id: format!("run-{i}") });
        store.append_event(&e, now_ms()).await.unwrap();
    }
}

async fn export(store: &Store) -> Vec<u8> {
    let mut out = Vec::new();
    export_jsonl(store, &mut out).await.unwrap();
    out
}

/// Puts the instance back to `copy` (its keys replaced by the older values), silently.
async fn restore(store: &Store, copy: &[u8]) {
    import_stream(store, copy, true).await.unwrap();
}

#[tokio::test]
async fn a_lower_head_is_reported_once_and_recorded() {
    let store = sett_testkit::store().await;
    append(&store, 3).await;
    let older = export(&store).await;
    let mut watch = LedgerWatch::new(store.clone(), "test");
    assert_eq!(watch.check().await.unwrap(), None, "the first look only learns the head");
    append(&store, 5).await;
    assert_eq!(watch.check().await.unwrap(), None, "a head that moved on over the same history");
    assert_eq!(watch.seen().unwrap().seq, 8);

    restore(&store, &older).await;
    let r = watch.check().await.unwrap().expect("a regression");
    assert_eq!(
        (r.seen.split(':').next(), r.found.as_deref().map(|f| &f[..2]), r.lost_at_least),
        (Some("8"), Some("3:"), 5)
    );
    assert_eq!(watch.check().await.unwrap(), None, "one loss is reported once");
    let recorded = store.regressions().await.unwrap();
    assert_eq!(recorded.len(), 1);
    assert_eq!((recorded[0].detected_by.as_str(), recorded[0].is_acknowledged()), ("test", false));

    // Another component noticing the same loss adds no second record.
    assert!(!store.record_regression(&recorded[0]).await.unwrap());
    let acked = store.acknowledge_regressions("ops", now_ms()).await.unwrap();
    assert_eq!(acked.len(), 1);
    assert!(store.regressions().await.unwrap()[0].is_acknowledged());
    assert!(store.acknowledge_regressions("ops", now_ms()).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_replaced_history_that_grew_past_the_head_seen_is_a_regression() {
    let store = sett_testkit::store().await;
    append(&store, 2).await;
    let older = export(&store).await;
    append(&store, 2).await;
    let mut watch = LedgerWatch::new(store.clone(), "test");
    watch.check().await.unwrap();
    restore(&store, &older).await;
    // Other events written before the next look: the head is later than the one seen, on
    // another history.
    append(&store, 5).await;
    let r = watch.check().await.unwrap().expect("a regression");
    assert_eq!((r.seen.starts_with("4:"), r.found.as_deref().map(|f| f.starts_with("7:"))), (true, Some(true)));
}

#[tokio::test]
async fn a_loss_while_the_watcher_was_down_is_noticed_from_its_file_and_a_restart_is_not() {
    let store = sett_testkit::store().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(".sett/ledger/x.json");
    append(&store, 2).await;
    let older = export(&store).await;
    append(&store, 3).await;
    {
        let mut watch = LedgerWatch::persisted(store.clone(), "orchestrator", file.clone()).unwrap();
        watch.check().await.unwrap();
    }
    // A normal restart: same ledger, then more events.
    append(&store, 1).await;
    let mut watch = LedgerWatch::persisted(store.clone(), "orchestrator", file.clone()).unwrap();
    assert_eq!(watch.seen().unwrap().seq, 5);
    assert_eq!(watch.check().await.unwrap(), None);
    drop(watch);

    restore(&store, &older).await;
    let mut watch = LedgerWatch::persisted(store.clone(), "orchestrator", file.clone()).unwrap();
    let r = watch.check().await.unwrap().expect("noticed at start");
    assert_eq!(r.lost_at_least, 4);
    let kept = load_state(&file).unwrap();
    assert_eq!(kept.unacknowledged.len(), 1, "kept outside Redis too");
    assert_eq!(kept.seen.unwrap().seq, 2);
    watch.acknowledge().await.unwrap();
    assert!(load_state(&file).unwrap().unacknowledged.is_empty());
}

#[tokio::test]
async fn an_import_replaces_the_ledger_without_a_regression() {
    let store = sett_testkit::store().await;
    append(&store, 2).await;
    let older = export(&store).await;
    append(&store, 3).await;
    let mut watch = LedgerWatch::new(store.clone(), "console");
    watch.check().await.unwrap();
    restore(&store, &older).await;
    record_import(&store, "ops").await.unwrap();
    assert_eq!(watch.check().await.unwrap(), None);
    assert_eq!(watch.seen().unwrap().seq, 2, "follows the imported ledger");
    assert!(store.regressions().await.unwrap().is_empty());
}

/// Archives the ledger up to `head` the way an archive pass does once its segment is written
/// and read back: the archive head recorded, then the stream trimmed behind it.
async fn archive_through(store: &Store, head: &sett_core::regression::SeenHead) {
    store.record_archive_segment("seg-00000001", "{}", Some((head.seq, &head.hash, &head.id)), "{}").await.unwrap();
    store.clear_archive_pending().await.unwrap();
    store.trim_events_through(&head.id).await.unwrap();
}

#[tokio::test]
async fn entries_the_archive_took_out_of_the_stream_are_not_a_regression() {
    let store = sett_testkit::store().await;
    append(&store, 3).await;
    let mut watch = LedgerWatch::new(store.clone(), "test");
    watch.check().await.unwrap();
    assert_eq!(watch.seen().unwrap().seq, 3);
    append(&store, 2).await;
    let archived = store.ledger_seen_head().await.unwrap().unwrap();
    append(&store, 3).await;
    // The entry the watch saw is gone from the stream, archived before its next look.
    archive_through(&store, &archived).await;
    assert_eq!(store.ledger_link_at(&watch.seen().unwrap().id).await.unwrap(), None);
    assert_eq!(watch.check().await.unwrap(), None, "archived, not lost");
    assert_eq!(watch.seen().unwrap().seq, 8, "the watch moved on to the head");
    assert!(store.regressions().await.unwrap().is_empty());

    // The archive head itself seen, then archived and trimmed: its hash matches.
    let mut at_head = LedgerWatch::new(store.clone(), "test");
    at_head.check().await.unwrap();
    let seen = at_head.seen().unwrap().clone();
    append(&store, 1).await;
    archive_through(&store, &seen).await;
    assert_eq!(at_head.check().await.unwrap(), None);
    assert_eq!(at_head.seen().unwrap().seq, 9);
}

#[tokio::test]
async fn entries_gone_from_the_stream_beyond_the_archive_head_are_a_regression() {
    let store = sett_testkit::store().await;
    append(&store, 2).await;
    let archived = store.ledger_seen_head().await.unwrap().unwrap();
    archive_through(&store, &archived).await;
    append(&store, 2).await;
    let mut watch = LedgerWatch::new(store.clone(), "test");
    watch.check().await.unwrap();
    assert_eq!(watch.seen().unwrap().seq, 4);
    append(&store, 3).await;
    // The seen entry trimmed although the archive holds only up to seq 2: not archived, lost.
    let seen_id = watch.seen().unwrap().id.clone();
    store.trim_events_through(&seen_id).await.unwrap();
    let r = watch.check().await.unwrap().expect("a regression");
    assert!(r.seen.starts_with("4:"), "{r:?}");
}
