//! Background acknowledgements: a failed XACK counts as a Redis error of the consumer's
//! component (its own test binary, since it installs the process's metrics recorder).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fred::prelude::*;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use sett_core::event::{EventData, InstanceStarted};
use sett_store::GroupStart;

/// Counts `sett_redis_errors_total{component="acks-under-test"}`; every other metric is dropped.
struct ErrorsOfTheTest(Arc<AtomicU64>);

impl Recorder for ErrorsOfTheTest {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let ours = key.name() == sett_core::metrics::REDIS_ERRORS
            && key.labels().any(|l| l.key() == "component" && l.value() == "acks-under-test");
        if ours { Counter::from_arc(self.0.clone()) } else { Counter::noop() }
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[tokio::test]
async fn a_failed_background_acknowledgement_counts_as_a_redis_error() {
    let errors = Arc::new(AtomicU64::new(0));
    metrics::set_global_recorder(ErrorsOfTheTest(errors.clone())).expect("the only recorder of this binary");
    let store = sett_testkit::store().await;
    let mut consumer = store.group_consumer("g", "c", GroupStart::Beginning).await.unwrap();
    consumer.ensure_group().await.unwrap();
    let started = EventData::InstanceStarted(InstanceStarted { host: "h".into(), pid: 1, run_id: "r".into() });
    store.append_event(&started, 1).await.unwrap();
    let read = consumer.read(10, Duration::from_millis(100)).await.unwrap();
    assert_eq!(read.len(), 1);

    // Acknowledged in the background: the entry leaves the group's pending list, nothing counted.
    let (acks, sent) = consumer.acks().batched("acks-under-test");
    acks.ack([read[0].id.clone()]);
    drop(acks);
    sent.await.unwrap();
    consumer.reread_pending();
    assert!(consumer.read_pending(10).await.unwrap().is_empty(), "acknowledged");
    assert_eq!(errors.load(Ordering::SeqCst), 0);

    // The stream's key no longer holds a stream: XACK fails (WRONGTYPE), and that is counted.
    let c = Builder::from_config(Config::from_url(&sett_testkit::redis_url()).unwrap()).build().unwrap();
    c.init().await.unwrap();
    let events = store.keys().events();
    let _: i64 = c.del(&events).await.unwrap();
    let _: () = c.set(&events, "not a stream", None, None, false).await.unwrap();
    let (acks, sent) = consumer.acks().batched("acks-under-test");
    acks.ack([read[0].id.clone()]);
    drop(acks);
    sent.await.unwrap();
    assert_eq!(errors.load(Ordering::SeqCst), 1, "the failed XACK is counted once");
    let _: i64 = c.del(&events).await.unwrap();
    c.quit().await.unwrap();
}
