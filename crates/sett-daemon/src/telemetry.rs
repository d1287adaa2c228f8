//! Logging and metrics initialisation for the daemons: JSON lines (bunyan) on stdout, filtered by
//! `SETT_LOG` (or `RUST_LOG`), OpenTelemetry traces when the `OTEL_*` variables ask for them
//! (`crate::otel`), and a Prometheus recorder whose histograms are kept bounded by a periodic
//! upkeep task.

use std::collections::HashMap;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_bunyan_formatter::{BunyanFormattingLayer, JsonStorageLayer};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry};

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid log filter in SETT_LOG/RUST_LOG: {0}")]
    Filter(String),
    #[error("logging is already initialised: {0}")]
    Init(String),
    #[error("cannot install the metrics recorder: {0}")]
    Metrics(String),
    #[error("cannot set up OpenTelemetry traces (check the OTEL_EXPORTER_OTLP_* variables): {0}")]
    Traces(String),
}

fn filter() -> Result<EnvFilter, TelemetryError> {
    let raw = std::env::var("SETT_LOG").or_else(|_| std::env::var("RUST_LOG")).unwrap_or_else(|_| "info".to_owned());
    // Keep dependencies quiet unless asked for explicitly (the OpenTelemetry SDK still warns
    // when an export fails).
    let raw = if raw.contains('=') || raw.contains(',') {
        raw
    } else {
        format!("{raw},fred=warn,hyper=warn,opentelemetry=warn,opentelemetry_sdk=warn,opentelemetry-otlp=warn")
    };
    EnvFilter::try_new(&raw).map_err(|e| TelemetryError::Filter(e.to_string()))
}

/// Installs JSON logging on stdout for a daemon. `component` becomes the bunyan `name`; every
/// line also carries the fields of the spans it is in (instance, claim, artifact…).
pub fn init_json_logs(component: &str) -> Result<(), TelemetryError> {
    init_json_logs_with(component, &[])
}

/// Like [`init_json_logs`], and every line also carries `fields` (e.g. `instance` and
/// `component`), including lines logged outside any span (spawned tasks, libraries, panics).
/// Panics are logged as JSON too, so a daemon's output never mixes in plain text.
pub fn init_json_logs_with(name: &str, fields: &[(&str, &str)]) -> Result<(), TelemetryError> {
    init_json_logs_traced(name, fields, None)
}

/// Like [`init_json_logs_with`], also exporting the spans of target [`crate::otel::TARGET`] to
/// `traces` when given. `SETT_LOG` filters the log lines only, not the exported spans.
pub fn init_json_logs_traced(
    name: &str,
    fields: &[(&str, &str)],
    traces: Option<&crate::otel::Traces>,
) -> Result<(), TelemetryError> {
    let defaults: HashMap<String, serde_json::Value> =
        fields.iter().map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v))).collect();
    let logs = json_lines(name, std::io::stdout, defaults).with_filter(filter()?);
    Registry::default()
        .with(traces.map(crate::otel::Traces::layer))
        .with(logs)
        .try_init()
        .map_err(|e| TelemetryError::Init(e.to_string()))?;
    log_panics();
    Ok(())
}

/// The daemons' log lines: bunyan JSON records written to `writer`, one per event, each with
/// `defaults` and the fields of the spans it is in.
fn json_lines<S, W>(name: &str, writer: W, defaults: HashMap<String, serde_json::Value>) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + 'static,
{
    JsonStorageLayer.and_then(EventsOnly(BunyanFormattingLayer::with_default_fields(name.to_owned(), writer, defaults)))
}

/// The bunyan layer without its `[SPAN - START]` and `[SPAN - END]` lines: a line per event
/// only, each still carrying the fields of the spans it is in (kept by [`JsonStorageLayer`]).
/// A span's start and end say nothing its events do not: a grant's span added two lines per
/// claim around the three that say what happened, each a JSON record and a write of its own
/// (docs/benchmarks.md, issue 29).
struct EventsOnly<L>(L);

impl<S, L> Layer<S> for EventsOnly<L>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    L: Layer<S>,
{
    fn on_event(&self, event: &tracing::Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        self.0.on_event(event, ctx);
    }
}

/// Replaces the default panic hook (plain text on stderr) with an error record in the log.
fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".to_owned());
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        let thread = std::thread::current().name().unwrap_or("unnamed").to_owned();
        tracing::error!(panic = %payload, location = %location, thread = %thread, "panicked");
    }));
}

/// Installs human-readable logging on stderr (the operator CLI).
pub fn init_text_logs(default_level: &str) -> Result<(), TelemetryError> {
    let f = std::env::var("SETT_LOG")
        .ok()
        .map(|s| EnvFilter::try_new(s).map_err(|e| TelemetryError::Filter(e.to_string())))
        .transpose()?
        .unwrap_or_else(|| EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(f)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init()
        .map_err(|e| TelemetryError::Init(e.to_string()))
}

/// Gives each metric its `# HELP` text (and type) on `/metrics`. Call after the recorder is
/// installed; [`install_metrics`] does it for the contract in `sett_core::metrics::ALL`, and a
/// component with metrics of its own passes its own table.
pub fn describe(all: &[sett_core::metrics::Metric]) {
    use sett_core::metrics::Kind;
    for m in all {
        match m.kind {
            Kind::Counter => metrics::describe_counter!(m.name, m.help),
            Kind::Gauge => metrics::describe_gauge!(m.name, m.help),
            Kind::Histogram => metrics::describe_histogram!(m.name, m.help),
        }
    }
}

/// Installs the global Prometheus recorder and spawns its upkeep task (histograms otherwise grow
/// without bound). Call once per process, inside a tokio runtime.
pub fn install_metrics() -> Result<PrometheusHandle, TelemetryError> {
    let handle = PrometheusBuilder::new()
        .set_buckets(&[
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
            3600.0,
        ])
        .map_err(|e| TelemetryError::Metrics(e.to_string()))?
        .install_recorder()
        .map_err(|e| TelemetryError::Metrics(e.to_string()))?;
    describe(sett_core::metrics::ALL);
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer into a shared buffer.
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_per_event_carrying_its_spans_fields_and_none_for_the_spans() {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = {
            let buf = buf.clone();
            move || Sink(buf.clone())
        };
        let defaults = HashMap::from([("component".to_owned(), serde_json::Value::from("cub:A"))]);
        let subscriber = Registry::default().with(json_lines("cub", writer, defaults));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("grant", claim_id = "c-1", seq = 3);
            let _entered = span.enter();
            tracing::info!(elapsed_ms = 4, "tool finished");
        });
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 1, "one line for the event, none for the span's start and end: {text}");
        let line = &lines[0];
        assert_eq!(line["msg"], "[GRANT - EVENT] tool finished");
        assert_eq!((&line["claim_id"], &line["seq"], &line["elapsed_ms"]), (&"c-1".into(), &3.into(), &4.into()));
        assert_eq!(line["component"], "cub:A");
    }
}
