//! The HTTP server every daemon runs: `GET /healthz` (liveness: Redis answers a PING within a
//! bound), `GET /readyz` (readiness as the component defines it) and `GET /metrics`
//! (Prometheus text). It takes a bound listener and a shutdown token, so tests bind port 0.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::PrometheusHandle;
use sett_store::Redis;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How long `/healthz` waits for Redis to answer a PING.
pub const PING_BOUND: Duration = Duration::from_millis(1_500);

/// What the health server reports on.
#[derive(Clone)]
pub struct HealthState {
    pub component: String,
    pub instance: String,
    pub redis: Redis,
    /// Set by the component when it is ready (orchestrator: lock held and attached to the
    /// stream; cub: attached to its stream).
    pub ready: Arc<AtomicBool>,
    pub metrics: Option<PrometheusHandle>,
}

impl std::fmt::Debug for HealthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthState").field("component", &self.component).field("instance", &self.instance).finish()
    }
}

fn json(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("static response")
}

async fn route(req: Request<Incoming>, state: HealthState) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::GET {
        return Ok(json(StatusCode::METHOD_NOT_ALLOWED, serde_json::json!({"error": "use GET"})));
    }
    Ok(match req.uri().path() {
        "/healthz" if !state.redis.is_connected() => json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({
                "status": "unhealthy", "component": state.component, "instance": state.instance,
                "redis": {"status": "unreachable", "error": "disconnected from Redis; reconnecting"},
            }),
        ),
        "/healthz" => match state.redis.ping(PING_BOUND).await {
            Ok(rtt) => json(
                StatusCode::OK,
                serde_json::json!({
                    "status": "ok", "component": state.component, "instance": state.instance,
                    "redis": {"status": "ok", "latency_ms": rtt.as_secs_f64() * 1000.0},
                }),
            ),
            Err(e) => json(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({
                    "status": "unhealthy", "component": state.component, "instance": state.instance,
                    "redis": {"status": "unreachable", "error": e.to_string()},
                }),
            ),
        },
        "/readyz" => {
            let ready = state.ready.load(Ordering::SeqCst);
            json(
                if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE },
                serde_json::json!({"ready": ready, "component": state.component, "instance": state.instance}),
            )
        }
        "/metrics" => match &state.metrics {
            Some(h) => {
                // Readiness as a metric, so alert rules need no HTTP prober.
                let kind = if state.component.starts_with("cub") { "cub" } else { "orchestrator" };
                let ready = if state.ready.load(Ordering::SeqCst) { 1.0 } else { 0.0 };
                metrics::gauge!(sett_core::metrics::READY, "component" => kind).set(ready);
                Response::builder()
                    .header("content-type", "text/plain; version=0.0.4")
                    .body(Full::new(Bytes::from(h.render())))
                    .expect("static response")
            }
            None => json(StatusCode::NOT_FOUND, serde_json::json!({"error": "metrics are not enabled"})),
        },
        _ => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": "not found", "paths": ["/healthz", "/readyz", "/metrics"]}),
        ),
    })
}

/// Binds `addr` (port 0 picks a free port). Returns the listener and the address bound.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let l = TcpListener::bind(addr).await?;
    let a = l.local_addr()?;
    Ok((l, a))
}

/// Serves until `shutdown` is cancelled, then lets open connections finish (bounded).
pub async fn serve(listener: TcpListener, state: HealthState, shutdown: CancellationToken) {
    serve_http(listener, shutdown, move |r| route(r, state.clone())).await;
}

/// The HTTP/1 accept loop shared by Sett's servers (health/metrics, console): one task per
/// connection, until `shutdown` is cancelled; then open requests get 2 s to finish.
pub async fn serve_http<H, Fut, B>(listener: TcpListener, shutdown: CancellationToken, handler: H)
where
    H: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    // Out of file descriptors or similar: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let handler = handler.clone();
                let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service_fn(handler));
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            () = shutdown.cancelled() => break,
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), graceful.shutdown()).await;
}
