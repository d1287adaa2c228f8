//! The HTTP(S) client that posts notifications: hyper-util's pooled client over rustls (ring
//! provider, the system's root certificates), one bounded POST per attempt.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::NotifyError;

/// How long one attempt may take, connection included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest part of a non-2xx answer kept as the attempt's error (for logs and `sett status`).
const ERROR_BODY_CHARS: usize = 200;

/// The outcome of one POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The endpoint answered 2xx.
    Delivered { status: u16 },
    /// It answered something else, or could not be reached; retry later.
    Failed { status: Option<u16>, error: String },
}

#[derive(Clone)]
pub struct HttpClient {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpClient")
    }
}

impl HttpClient {
    pub fn new() -> Result<Self, NotifyError> {
        let tls = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| NotifyError::Tls(e.to_string()))?
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(tls);
        Ok(Self { client })
    }

    /// POSTs `body` to `url` with `headers`, bounded by [`ATTEMPT_TIMEOUT`].
    pub async fn post(&self, url: &str, headers: &[(&str, String)], body: String) -> Attempt {
        let mut req = Request::post(url).header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let req = match req.body(Full::new(Bytes::from(body))) {
            Ok(r) => r,
            Err(e) => return Attempt::Failed { status: None, error: format!("invalid request: {e}") },
        };
        let call = async {
            let resp = self.client.request(req).await.map_err(|e| Attempt::Failed {
                status: None,
                error: format!("cannot reach the endpoint: {}", chain(&e)),
            })?;
            let status = resp.status().as_u16();
            // Read the body in full either way: the connection goes back to the pool.
            let body = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            if (200..300).contains(&status) {
                Ok(Attempt::Delivered { status })
            } else {
                let text: String = String::from_utf8_lossy(&body).chars().take(ERROR_BODY_CHARS).collect();
                Err(Attempt::Failed { status: Some(status), error: format!("HTTP {status}: {}", text.trim()) })
            }
        };
        match tokio::time::timeout(ATTEMPT_TIMEOUT, call).await {
            Ok(Ok(a) | Err(a)) => a,
            Err(_) => Attempt::Failed { status: None, error: format!("no answer within {ATTEMPT_TIMEOUT:?}") },
        }
    }
}

/// An error with its causes (hyper's top-level message alone says little).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}
