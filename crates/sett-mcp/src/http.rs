//! Streamable HTTP: rmcp's session-keeping service behind a bearer-token check (the console's
//! rules: every request needs a token of the users list, compared in constant time; the token
//! names the operator answers are recorded under). Served by Sett's shared HTTP/1 accept loop.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::Operator;
use crate::server::{SettMcp, Shared};

/// The path the MCP endpoint is served on.
pub const MCP_PATH: &str = "/mcp";

type Body = BoxBody<Bytes, Infallible>;

fn plain(status: StatusCode, text: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(text)).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

fn bearer(req: &Request<Incoming>) -> Option<&str> {
    req.headers().get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    users: sett_console::Users,
    loopback: bool,
    shutdown: CancellationToken,
) {
    let mut config = StreamableHttpServerConfig::default().with_cancellation_token(shutdown.child_token());
    if !loopback {
        // The Host check guards a loopback server against DNS rebinding; a server listening on
        // another interface is reached under names only its operator knows. The token still
        // guards every request.
        config = config.disable_allowed_hosts();
    }
    let factory_shared = shared.clone();
    let service = StreamableHttpService::new(
        move || Ok(SettMcp::new(factory_shared.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let users = Arc::new(users);
    sett_daemon::health::serve_http(listener, shutdown, move |mut req: Request<Incoming>| {
        let service = service.clone();
        let users = users.clone();
        async move {
            if req.uri().path() != MCP_PATH {
                return Ok::<_, Infallible>(plain(
                    StatusCode::NOT_FOUND,
                    format!("not found: the MCP endpoint is {MCP_PATH}\n"),
                ));
            }
            let Some(operator) = bearer(&req).and_then(|t| users.lookup(t)).cloned() else {
                log_refused();
                let mut r = plain(
                    StatusCode::UNAUTHORIZED,
                    "missing or wrong token: send 'Authorization: Bearer <token>' with the token 'sett mcp --http' printed (or $SETT_MCP_TOKEN, or yours in its --users file)\n".to_owned(),
                );
                r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"sett\""));
                return Ok(r);
            };
            req.extensions_mut().insert(Operator(operator));
            Ok(service.handle(req).await)
        }
    })
    .await;
}

fn log_refused() {
    tracing::info!("MCP request refused: missing or wrong token");
}
