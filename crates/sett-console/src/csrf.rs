//! The CSRF rule for POSTs made with a session cookie: the request carries the session's token in
//! the `x-sett-csrf` header and comes from no other origin. Bearer requests need no proof (a
//! browser never adds that header on its own).

use axum::http::{HeaderMap, header};

use crate::auth::{CSRF_HEADER, ct_eq};

/// Whether a cookie-authenticated POST with `headers` proves it comes from the console's own
/// pages for the session whose CSRF token is `expected`.
pub(crate) fn proven(headers: &HeaderMap, expected: &str) -> bool {
    // A cookie rides along with any request the browser makes, even one another site
    // triggers: only our own pages know the CSRF token to put in this header.
    let proof = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    let cross_origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|o| o.split_once("://").map(|(_, h)| h) != Some(host));
    !cross_origin && ct_eq(proof.as_bytes(), expected.as_bytes())
}

/// What a POST without the proof is told.
pub(crate) const REFUSED: &str = "missing or wrong CSRF proof: POST from the console's own pages (they send the x-sett-csrf header), or use 'Authorization: Bearer' from scripts";
