//! CORS for the Tracking API: any origin may send (pages on other domains use analytics.js),
//! and preflight requests are answered.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

/// Answers preflight requests and adds the CORS headers to every response.
pub async fn layer(request: Request, next: Next) -> Response {
    let origin = request.headers().get(header::ORIGIN).cloned();
    let requested = request
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned();
    let mut response = if request.method() == Method::OPTIONS {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        response
    } else {
        next.run(request).await
    };
    add_headers(response.headers_mut(), origin, requested);
    response
}

fn add_headers(
    headers: &mut HeaderMap,
    origin: Option<HeaderValue>,
    requested: Option<HeaderValue>,
) {
    // Echoing the origin (rather than `*`) also works for requests sent with credentials.
    let allow_origin = origin.unwrap_or_else(|| HeaderValue::from_static("*"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    let allow_headers = requested.unwrap_or_else(|| {
        HeaderValue::from_static("Authorization, Content-Type, Content-Encoding, X-Retry-Count")
    });
    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allow_headers);
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
}
