//! A delivery that has been failing for 24 hours is given up on its next failed attempt, and
//! that is visible where an operator looks: the webhook's state behind `sett status`, the
//! attempts metric and an error log line. The delivery is seeded as queued 24 h ago (the
//! policy itself is unit-tested over simulated time in `lib.rs`), so nothing waits a day.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sett_core::config::{NotificationsConfig, NotifyEvent, WebhookConfig, WebhookFormat};
use sett_notify::{Notifier, RETRY_FOR};
use sett_store::{DeliveryRecord, DeliveryStatus, NewDelivery, now_ms};
use tokio_util::sync::CancellationToken;

/// Log lines written by the notifier, kept for the test to read.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_failing_for_24_hours_is_given_up_visibly() {
    // Each test runs in its own process (nextest), so global recorders are this test's own.
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder().unwrap();
    let logs = Logs::default();
    let writer = logs.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish(),
    )
    .unwrap();

    let store = sett_testkit::store().await;
    // An endpoint that refuses connections: a port that was just free.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let config = NotificationsConfig {
        console_url: None,
        webhooks: vec![WebhookConfig {
            name: "ops".into(),
            url: format!("http://{closed}/hook"),
            events: vec![NotifyEvent::QuestionAsked],
            secret: None,
            format: WebhookFormat::Json,
        }],
    };
    let now = now_ms();
    let queued = now - RETRY_FOR.as_millis() as i64 - 1_000;
    let id = "1700000000000-0:ops".to_owned();
    let record = DeliveryRecord {
        webhook: "ops".into(),
        event: "question_asked".into(),
        event_id: "1700000000000-0".into(),
        event_ts_ms: queued,
        created_ms: queued,
        status: DeliveryStatus::Pending,
        attempts: 290,
        body: Some("{}".into()),
        next_attempt_ms: Some(now),
        last_error: Some("connection refused".into()),
        finished_ms: None,
    };
    assert_eq!(store.notify_enqueue(None, &[NewDelivery { id: id.clone(), record }], now).await.unwrap(), 1);

    let notifier = Notifier::new(store.clone(), &config, |_| None).unwrap();
    notifier.prepare().await.unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(notifier.run(stop.clone()));
    // The outcome is recorded in Redis; wait for it (bounded).
    let until = Instant::now() + Duration::from_secs(15);
    let rec = loop {
        let rec = store.notify_delivery(&id).await.unwrap().unwrap();
        if rec.status != DeliveryStatus::Pending || Instant::now() > until {
            break rec;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    stop.cancel();
    task.await.unwrap();

    assert_eq!(rec.status, DeliveryStatus::GivenUp, "{rec:?}");
    assert_eq!(rec.attempts, 291);
    assert!(rec.body.is_none() && rec.next_attempt_ms.is_none() && rec.finished_ms.is_some());
    assert_eq!(store.notify_pending("ops").await.unwrap(), 0, "out of the queue");

    // `sett status` (table and -o json) is built from this report.
    let hooks = sett_ops::status::webhooks_health(&store).await.unwrap();
    assert_eq!(hooks.len(), 1);
    let h = &hooks[0];
    assert_eq!((h.name.as_str(), h.given_up, h.failing), ("ops", 1, true), "{h:?}");
    assert!(h.last_error.as_deref().is_some_and(|e| !e.is_empty()), "{h:?}");

    let text = metrics.render();
    let line = text
        .lines()
        .find(|l| l.starts_with("sett_notification_attempts_total{") && l.contains(r#"outcome="given_up""#))
        .unwrap_or_else(|| panic!("no given_up attempt counted:\n{text}"));
    assert!(line.contains(r#"webhook="ops""#) && line.ends_with(" 1"), "{line}");

    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let line = logged
        .lines()
        .find(|l| l.contains("notification given up after failing for 1day"))
        .unwrap_or_else(|| panic!("no error line:\n{logged}"));
    assert!(line.contains("ERROR") && line.contains(&id) && line.contains("given_up"), "{line}");
}
