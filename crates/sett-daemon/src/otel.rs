//! OpenTelemetry traces over OTLP (HTTP, protobuf), off unless the standard variables configure
//! an endpoint: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is) or `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (`/v1/traces` appended); `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` turn them off
//! again. The exporter's other variables (`OTEL_EXPORTER_OTLP_HEADERS`, `…_TIMEOUT`,
//! `OTEL_BSP_*`, `OTEL_RESOURCE_ATTRIBUTES`) apply as the SDK reads them.
//!
//! Spans are recorded two ways, into one trace per workflow (ids from `sett_core::trace`):
//! - after the fact, with the ledger's own times and derived span ids ([`Traces::record`]): the
//!   orchestrator's workflow, claim, bidding, grant and wait spans (`crate::traces`);
//! - live, as `tracing` spans of target [`TARGET`] bridged by `tracing-opentelemetry` (a cub's
//!   tool run), given an explicit parent with `OpenTelemetrySpanExt::set_parent`.
//!
//! Export runs on the SDK's batch thread; its HTTP requests run on a small runtime of their own
//! (hyper over rustls with the system's roots), so a daemon's single-threaded runtime never
//! waits for the collector.

use std::cell::Cell;
use std::pin::Pin;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry::trace::{
    Link, SpanBuilder, SpanContext, SpanKind, Status, TraceContextExt, TraceFlags, TraceState, Tracer as _,
    TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SdkTracer, SdkTracerProvider};
use sett_core::trace::{SpanId, TraceId};
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

use crate::telemetry::TelemetryError;

/// The target of `tracing` spans that are exported (and the only ones: a daemon's other spans
/// are for its logs).
pub use sett_core::trace::OTEL_TARGET as TARGET;

/// How long one export request may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a stopping daemon waits for its last spans to be sent.
const SHUTDOWN_PATIENCE: Duration = Duration::from_secs(5);

/// Whether the standard variables turn traces on (`get` reads one; injected for tests).
pub fn enabled_by(get: impl Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| get(name).is_some_and(|v| !v.trim().is_empty());
    let disabled = get("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        || get("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim().eq_ignore_ascii_case("none"));
    !disabled && (set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") || set("OTEL_EXPORTER_OTLP_ENDPOINT"))
}

/// Whether the endpoint the standard variables name is `https://` (`get` reads one): then the
/// system's root certificates are needed. A plain `http://` collector needs none, and a minimal
/// container image may have none.
pub fn endpoint_is_https(get: impl Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| get(name).filter(|v| !v.trim().is_empty());
    let endpoint = set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| set("OTEL_EXPORTER_OTLP_ENDPOINT"));
    endpoint.is_some_and(|e| e.trim().to_ascii_lowercase().starts_with("https://"))
}

/// The process's trace exporter, once [`install`]ed.
static TRACES: OnceLock<Traces> = OnceLock::new();

/// The installed exporter, if traces are on in this process.
pub fn traces() -> Option<&'static Traces> {
    TRACES.get()
}

/// The exporter of one process: a tracer provider with a batch processor over OTLP/HTTP.
#[derive(Debug, Clone)]
pub struct Traces {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

/// One finished span, recorded after the fact with derived ids (see [`Traces::record`]).
#[derive(Debug, Clone)]
pub struct SpanRecord {
    pub trace: TraceId,
    pub span: SpanId,
    /// None for a workflow's root span.
    pub parent: Option<SpanId>,
    pub name: &'static str,
    pub start_ms: i64,
    pub end_ms: i64,
    pub attributes: Vec<(&'static str, String)>,
    /// Spans this one follows from (a rework's claim links the claim it reworks).
    pub links: Vec<SpanId>,
    /// Set when what the span covers failed (its status is then `Error`).
    pub error: Option<String>,
}

thread_local! {
    /// The ids the next span built on this thread gets (set around one `build_with_context`).
    static NEXT_IDS: Cell<Option<(TraceId, SpanId)>> = const { Cell::new(None) };
}

/// Hands out the ids a caller derived for the span it is building (the SDK's span builder takes
/// no ids), random ones otherwise (the live spans of `tracing`).
#[derive(Debug, Default)]
struct DerivedIds {
    random: RandomIdGenerator,
}

impl IdGenerator for DerivedIds {
    fn new_trace_id(&self) -> opentelemetry::trace::TraceId {
        match NEXT_IDS.with(Cell::get) {
            Some((trace, _)) => opentelemetry::trace::TraceId::from_bytes(trace.0),
            None => self.random.new_trace_id(),
        }
    }

    fn new_span_id(&self) -> opentelemetry::trace::SpanId {
        match NEXT_IDS.with(Cell::get) {
            Some((_, span)) => opentelemetry::trace::SpanId::from_bytes(span.0),
            None => self.random.new_span_id(),
        }
    }
}

/// The context of a remote, sampled parent span: how a span made here joins a workflow's trace.
pub fn parent_context(trace: TraceId, parent: SpanId) -> Context {
    Context::new().with_remote_span_context(span_context(trace, parent))
}

fn span_context(trace: TraceId, span: SpanId) -> SpanContext {
    SpanContext::new(
        opentelemetry::trace::TraceId::from_bytes(trace.0),
        opentelemetry::trace::SpanId::from_bytes(span.0),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    )
}

fn system_time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Builds the exporter when the environment turns traces on and makes it this process's
/// ([`traces`]). `service` is the resource's `service.name`; `attributes` are added to it
/// (instance, component). `Ok(None)`: traces are off.
pub fn install(service: &str, attributes: &[(&str, &str)]) -> Result<Option<&'static Traces>, TelemetryError> {
    if !enabled_by(|name| std::env::var(name).ok()) {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_timeout(EXPORT_TIMEOUT)
        .with_http_client(ExportClient::new()?)
        .build()
        .map_err(|e| TelemetryError::Traces(e.to_string()))?;
    let resource = Resource::builder()
        .with_service_name(service.to_owned())
        .with_attributes(attributes.iter().map(|(k, v)| KeyValue::new(format!("sett.{k}"), (*v).to_owned())))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_id_generator(DerivedIds::default())
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("sett");
    let traces = Traces { provider, tracer };
    Ok(Some(TRACES.get_or_init(|| traces)))
}

impl Traces {
    /// The `tracing` layer that exports spans of target [`TARGET`] (and nothing else).
    pub fn layer<S>(&self) -> impl Layer<S> + use<S>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    {
        let only_ours = tracing_subscriber::filter::filter_fn(|meta| meta.target() == TARGET);
        tracing_opentelemetry::layer()
            .with_tracer(self.tracer.clone())
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_level(false)
            .with_tracked_inactivity(false)
            .with_filter(only_ours)
    }

    /// Records one finished span with its derived ids and the ledger's times.
    pub fn record(&self, s: SpanRecord) {
        let cx = match s.parent {
            Some(parent) => parent_context(s.trace, parent),
            None => Context::new(),
        };
        let builder = SpanBuilder::from_name(s.name)
            .with_kind(SpanKind::Internal)
            .with_start_time(system_time(s.start_ms))
            .with_attributes(s.attributes.into_iter().map(|(k, v)| KeyValue::new(k, v)))
            .with_links(s.links.into_iter().map(|l| Link::with_context(span_context(s.trace, l))).collect());
        NEXT_IDS.with(|ids| ids.set(Some((s.trace, s.span))));
        let span = self.tracer.build_with_context(builder, &cx);
        NEXT_IDS.with(|ids| ids.set(None));
        let cx = Context::new().with_span(span);
        if let Some(reason) = s.error {
            cx.span().set_status(Status::error(reason));
        }
        cx.span().end_with_timestamp(system_time(s.end_ms.max(s.start_ms)));
    }

    /// Sends what is buffered and stops the exporter. Blocks (up to a few seconds): call it
    /// outside the async runtime.
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown_with_timeout(SHUTDOWN_PATIENCE) {
            tracing::warn!(error = %e, "traces: the last spans could not be sent");
        }
    }
}

/// The exporter's HTTP client: hyper over rustls (ring, the system's roots; plain `http://` too),
/// its requests run on a one-thread runtime of its own, since the SDK's batch thread drives
/// exports with a plain executor.
struct ExportClient {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for ExportClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExportClient")
    }
}

impl ExportClient {
    fn new() -> Result<Self, TelemetryError> {
        let provider = rustls::crypto::ring::default_provider;
        let builder = match hyper_rustls::HttpsConnectorBuilder::new().with_provider_and_native_roots(provider()) {
            Ok(b) => b,
            // No roots (a container image without CA certificates) and an `http://` collector:
            // none are needed.
            Err(_) if !endpoint_is_https(|k| std::env::var(k).ok()) => {
                let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider()))
                    .with_safe_default_protocol_versions()
                    .map_err(|e| TelemetryError::Traces(format!("cannot set up TLS: {e}")))?
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth();
                hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
            }
            Err(e) => {
                return Err(TelemetryError::Traces(format!(
                    "cannot load the system's root certificates for the https:// collector: {e} (install CA certificates, or set SSL_CERT_FILE)"
                )));
            }
        };
        let tls = builder.https_or_http().enable_http1().build();
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(tls);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("otlp-export")
            .enable_all()
            .build()
            .map_err(|e| TelemetryError::Traces(format!("cannot start the exporter's runtime: {e}")))?;
        Ok(Self { client, runtime })
    }
}

impl HttpClient for ExportClient {
    fn send_bytes<'a, 'b>(
        &'a self,
        request: Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = Result<Response<Bytes>, HttpError>> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        let client = self.client.clone();
        let (parts, body) = request.into_parts();
        let call = async move {
            let response = client.request(Request::from_parts(parts, Full::new(body))).await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, HttpError>(Response::from_parts(parts, body))
        };
        // The timer is made on the exporter's runtime: the batch thread has no reactor.
        let task = self.runtime.spawn(async move { tokio::time::timeout(EXPORT_TIMEOUT, call).await });
        Box::pin(async move {
            match task.await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(format!("no answer within {EXPORT_TIMEOUT:?}").into()),
                Err(e) => Err(Box::new(e) as HttpError),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn traces_are_off_unless_an_endpoint_is_set_and_not_disabled() {
        assert!(!enabled_by(env(&[])));
        assert!(!enabled_by(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")])));
        assert!(endpoint_is_https(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "HTTPS://c:4318")])));
        assert!(!endpoint_is_https(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")])));
        assert!(!endpoint_is_https(env(&[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/v1/traces"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4318")
        ])));
        assert!(endpoint_is_https(env(&[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", " "),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4318")
        ])));
        assert!(enabled_by(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")])));
        assert!(enabled_by(env(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/v1/traces")])));
        assert!(!enabled_by(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), ("OTEL_SDK_DISABLED", "TRUE")])));
        assert!(!enabled_by(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_TRACES_EXPORTER", "none")
        ])));
        assert!(enabled_by(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), ("OTEL_SDK_DISABLED", "false")])));
    }
}
