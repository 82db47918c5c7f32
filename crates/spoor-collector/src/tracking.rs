//! The Tracking API handlers: `/v1/{identify,track,page,screen,group,alias,batch,import}`,
//! the browser's short paths `/v1/{i,t,p,s,g,a,b}`, and the analytics.js settings document
//! `GET /v1/projects/{writeKey}/settings`. All of them answer CORS preflight requests.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use base64::Engine as _;
use serde_json::json;
use spoor_spec::MessageType;

use crate::AppState;
use crate::body::{self, BodyError};
use crate::ingest::{self, AuthError, Endpoint, IngestError, IngestRequest};
use crate::net::PeerAddr;

/// The `/v1` routes, with CORS.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/{kind}", post(post_message))
        // The no-code Segment app documents its example as `/v1/group/`: accept the slash.
        .route("/v1/{kind}/", post(post_message))
        .route("/v1/projects/{write_key}/settings", get(settings))
        .layer(axum::middleware::from_fn(crate::cors::layer))
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

fn failure(status: StatusCode, code: &str, message: &str) -> Response {
    answer(
        status,
        json!({"success": false, "code": code, "message": message}),
    )
}

/// Any path that is not a route: 404 with a JSON body.
pub async fn not_found() -> Response {
    failure(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

fn endpoint(kind: &str) -> Option<Endpoint> {
    match kind {
        "batch" | "import" | "b" => Some(Endpoint::Batch),
        other => MessageType::from_path_segment(other).map(Endpoint::Single),
    }
}

/// The write key of an `Authorization: Basic` header: `None` when there is no Basic
/// header (a Bearer token, used with OAuth, is not a write key).
pub fn basic_write_key(headers: &HeaderMap) -> Result<Option<String>, AuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| AuthError::MalformedHeader)?
        .trim();
    let Some((scheme, encoded)) = text.split_once(' ') else {
        return Err(AuthError::MalformedHeader);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| AuthError::MalformedHeader)?;
    let decoded = String::from_utf8(decoded).map_err(|_| AuthError::MalformedHeader)?;
    let user = match decoded.split_once(':') {
        Some((user, _password)) => user,
        None => decoded.as_str(),
    };
    Ok((!user.is_empty()).then(|| user.to_owned()))
}

async fn post_message(
    State(state): State<AppState>,
    Path(kind): Path<String>,
    peer: Option<Extension<PeerAddr>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let response = handle_message(&state, &kind, peer.map(|p| p.0), &headers, body).await;
    state.metrics.record_request("tracking", response.status());
    response
}

async fn handle_message(
    state: &AppState,
    kind: &str,
    peer: Option<PeerAddr>,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let Some(endpoint) = endpoint(kind) else {
        return not_found().await;
    };
    let limit = spoor_spec::limits::MAX_BATCH_BYTES;
    // Reserve memory for the body before reading it: backpressure instead of unbounded RSS.
    let encoded = headers.contains_key(header::CONTENT_ENCODING);
    let reserve = match body::content_length(headers) {
        Some(len) if !encoded => len.min(limit),
        _ => limit,
    };
    let Ok(_permit) = state
        .body_budget
        .clone()
        .acquire_many_owned(u32::try_from(reserve.max(1)).unwrap_or(u32::MAX))
        .await
    else {
        return failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the server is stopping",
        );
    };
    let raw = match body::read_limited(headers, body, limit, state.config.body_timeout).await {
        Ok(raw) => raw,
        Err(err) => return body_failure(state, &err),
    };
    state.metrics.record_bytes(raw.len());
    let decoded = match body::decode(headers, raw, limit) {
        Ok(decoded) => decoded,
        Err(err) => return body_failure(state, &err),
    };
    let basic = match basic_write_key(headers) {
        Ok(basic) => basic,
        Err(err) => return auth_failure(err),
    };
    let client_ip = state
        .config
        .trusted_proxies
        .client_ip(peer.map(|p| p.0.ip()), headers);
    let request = IngestRequest {
        endpoint,
        body: &decoded,
        basic_key: basic.as_deref(),
        client_ip,
    };
    match ingest::ingest(state, request).await {
        Ok(accepted) if accepted.rejected.is_empty() => success(),
        Ok(accepted) => answer(
            StatusCode::OK,
            json!({
                "success": true,
                "accepted": accepted.accepted,
                "rejected": accepted.rejected,
            }),
        ),
        Err(IngestError::Auth(err)) => auth_failure(err),
        Err(IngestError::Rejected {
            code,
            message,
            errors,
        }) => {
            let mut body = json!({"success": false, "code": code, "message": message});
            if !errors.is_empty() {
                body["errors"] = json!(errors);
            }
            answer(StatusCode::BAD_REQUEST, body)
        }
        Err(IngestError::Store(err)) => {
            tracing::error!(error = %err, "append failed");
            let mut response = failure(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the messages could not be stored; retry later",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    }
}

fn success() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        "{\"success\":true}",
    )
        .into_response()
}

fn body_failure(state: &AppState, err: &BodyError) -> Response {
    state.metrics.record_rejected(err.code(), 1);
    let status = match err {
        BodyError::Timeout { .. } => StatusCode::REQUEST_TIMEOUT,
        _ => StatusCode::BAD_REQUEST,
    };
    failure(status, err.code(), &err.to_string())
}

fn auth_failure(err: AuthError) -> Response {
    let mut response = failure(StatusCode::UNAUTHORIZED, err.code(), &err.to_string());
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"spoor\""),
    );
    response
}

/// `GET /v1/projects/{writeKey}/settings`: the document analytics.js loads at start. Its
/// `Segment.io` integration points back at this server, so only `cdnURL` needs changing.
async fn settings(
    State(state): State<AppState>,
    Path(write_key): Path<String>,
    headers: HeaderMap,
) -> Response {
    let keys = state.keys.snapshot();
    let response = match keys.write_key(&write_key) {
        None => failure(
            StatusCode::NOT_FOUND,
            "invalid_write_key",
            "unknown write key",
        ),
        Some(entry) if !entry.enabled => failure(
            StatusCode::NOT_FOUND,
            "source_disabled",
            "the source of this write key is disabled",
        ),
        Some(_) => {
            let (protocol, host) = public_base(&state, &headers);
            answer(
                StatusCode::OK,
                settings_document(&write_key, &protocol, &host),
            )
        }
    };
    state.metrics.record_request("settings", response.status());
    response
}

/// The scheme and `host[:port][/prefix]` clients should send to.
fn public_base(state: &AppState, headers: &HeaderMap) -> (String, String) {
    if let Some(url) = &state.config.public_url {
        let url = url.trim_end_matches('/');
        if let Some((scheme, rest)) = url.split_once("://") {
            return (scheme.to_owned(), rest.to_owned());
        }
        return ("https".to_owned(), url.to_owned());
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:8088");
    ("http".to_owned(), host.to_owned())
}

/// The analytics.js (`@segment/analytics-next`) settings document for a write key.
pub fn settings_document(write_key: &str, protocol: &str, host: &str) -> serde_json::Value {
    json!({
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "apiHost": format!("{host}/v1"),
                "protocol": protocol,
                "unbundledIntegrations": [],
                "addBundledMetadata": true,
                "maybeBundledConfigIds": {},
                "versionSettings": {"version": "4.4.7", "componentTypes": ["browser"]},
            }
        },
        "plan": {
            "track": {"__default": {"enabled": true, "integrations": {}}},
            "identify": {"__default": {"enabled": true}},
            "group": {"__default": {"enabled": true}},
        },
        "edgeFunction": {},
        "analyticsNextEnabled": true,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "metrics": {"sampleRate": 0},
        "legacyVideoPluginsEnabled": false,
        "remotePlugins": [],
    })
}
