//! A subset of Segment's Public API under `/api`: the workspace and its sources.
//!
//! Paths, envelopes (`{"data": ...}`, `{"errors": [...]}`) and cursor paging
//! (`pagination.count`, `pagination.cursor`) follow Segment's. Tokens are Bearer tokens;
//! owners may change things, members may only read (403 otherwise); a missing, unknown or
//! revoked token gets 401. Members see sources without their `writeKeys`, as Segment shows
//! them to tokens without the source admin permission.
//!
//! [`authorize`] and [`ApiError`] are public so other route files (profiles) authenticate the
//! same way and answer errors in the same envelope.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use base64::Engine as _;
use serde_json::{Value, json};
use spoor_store::{MetaStore, Role, Source, SourceUpdate, StoreError, Workspace};

use crate::AppState;

/// The Segment catalog id of the HTTP API source type, reported as every source's metadata.
pub const HTTP_API_METADATA_ID: &str = "iUM16Md8P2";

/// An error of the Public API, answered as `{"errors":[{"type","message","field","status"}]}`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// Segment's error `type` (`unauthorized`, `forbidden`, `not-found`, `validation`, ...).
    pub kind: &'static str,
    /// A sentence for people.
    pub message: String,
    /// The field concerned, if any.
    pub field: Option<String>,
}

impl ApiError {
    /// An error with a status, type and message.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind,
            message: message.into(),
            field: None,
        }
    }

    /// A 400 `validation` error naming a field.
    pub fn validation(field: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "validation",
            message: message.into(),
            field: Some(field.to_owned()),
        }
    }

    /// 404 `not-found`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not-found", message)
    }

    /// 500 `server` (details are logged, not sent).
    pub fn internal(err: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(error = %err, "Public API request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server",
            "internal error; see the server log",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        match &err {
            StoreError::NotFound { .. } => ApiError::not_found(err.to_string()),
            StoreError::Conflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", err.to_string())
            }
            StoreError::Invalid { field, rule } => ApiError::validation(field, rule.clone()),
            _ => ApiError::internal(&err),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({
            "type": self.kind,
            "message": self.message,
            "status": self.status.as_u16(),
        });
        if let Some(field) = self.field {
            error["field"] = Value::String(field);
        }
        let mut response = (self.status, axum::Json(json!({"errors": [error]}))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// The token behind an authorized request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenInfo {
    /// The token's id.
    pub id: String,
    /// Its role.
    pub role: Role,
    /// The workspace it belongs to.
    pub workspace: Workspace,
}

/// Checks the `Authorization: Bearer TOKEN` header: 401 when missing, unknown or revoked, 403
/// when a member token asks for something only an owner may do.
pub async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    needed: Role,
) -> Result<TokenInfo, ApiError> {
    let unauthorized =
        |message: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message);
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("missing Authorization: Bearer token"))?;
    let text = value
        .to_str()
        .map_err(|_| unauthorized("the Authorization header is not text"))?;
    let token = match text.trim().split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => {
            return Err(unauthorized(
                "the Authorization header must be \"Bearer TOKEN\"",
            ));
        }
    };
    let keys = state.keys.snapshot();
    let entry = keys
        .token(token)
        .ok_or_else(|| unauthorized("unknown or revoked token"))?;
    if needed == Role::Owner && entry.role != Role::Owner {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this token has the member role; only owner tokens can change the workspace",
        ));
    }
    let workspace = keys
        .workspace
        .clone()
        .ok_or_else(|| ApiError::not_found("the workspace is not initialized"))?;
    Ok(TokenInfo {
        id: entry.id.clone(),
        role: entry.role,
        workspace,
    })
}

/// The `/api` routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api", get(get_workspace))
        .route("/api/", get(get_workspace))
        .route("/api/sources", get(list_sources).post(create_source))
        .route(
            "/api/sources/{id}",
            get(get_source).patch(update_source).delete(delete_source),
        )
        .route("/api/sources/{id}/writekey", post(create_write_key))
        .route("/api/sources/{id}/writekey/{key}", delete(remove_write_key))
}

/// Runs a blocking `meta.db` call off the async workers; refreshes the key ring after writes.
async fn with_meta<T: Send + 'static>(
    state: &AppState,
    writes: bool,
    call: impl FnOnce(&mut MetaStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let meta = state.meta.clone();
    let keys = state.keys.clone();
    let joined = tokio::task::spawn_blocking(move || {
        let mut meta = meta.lock().unwrap_or_else(|p| p.into_inner());
        let out = call(&mut meta)?;
        if writes {
            keys.replace(meta.snapshot()?);
        }
        Ok::<T, StoreError>(out)
    })
    .await;
    match joined {
        Ok(result) => result.map_err(ApiError::from),
        Err(err) => Err(ApiError::internal(&err)),
    }
}

fn source_json(source: &Source, workspace_id: &str, show_keys: bool) -> Value {
    json!({
        "id": source.id,
        "slug": source.slug,
        "name": source.name,
        "workspaceId": workspace_id,
        "enabled": source.enabled,
        "writeKeys": if show_keys { source.write_keys.clone() } else { Vec::new() },
        "labels": [],
        "settings": {},
        "metadata": {
            "id": HTTP_API_METADATA_ID,
            "slug": "http-api",
            "name": "HTTP API",
            "description": "Segment's Tracking API, served by spoor.",
            "categories": ["Server"],
            "options": [],
            "logos": {"default": ""},
            "isCloudEventSource": false,
        },
    })
}

fn ok(status: StatusCode, data: Value) -> Response {
    (status, axum::Json(json!({ "data": data }))).into_response()
}

async fn get_workspace(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let result = authorize(&state, &headers, Role::Member).await;
    respond(
        &state,
        result.map(|token| {
            ok(
                StatusCode::OK,
                json!({"workspace": {
                    "id": token.workspace.id,
                    "slug": token.workspace.slug,
                    "name": token.workspace.name,
                }}),
            )
        }),
    )
}

fn respond(state: &AppState, result: Result<Response, ApiError>) -> Response {
    let response = result.unwrap_or_else(IntoResponse::into_response);
    state.metrics.record_request("api", response.status());
    response
}

/// Reads `pagination.count` (1 to 1000, default 100) and the opaque `pagination.cursor`.
fn paging(query: &HashMap<String, String>) -> Result<(usize, usize), ApiError> {
    let get = |name: &str| {
        query
            .get(&format!("pagination.{name}"))
            .or_else(|| query.get(&format!("pagination[{name}]")))
    };
    let count = match get("count") {
        None => 100,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                return Err(ApiError::validation(
                    "pagination.count",
                    format!("pagination.count: must be an integer from 1 to 1000, not {text:?}"),
                ));
            }
        },
    };
    let offset = match get("cursor") {
        None => 0,
        Some(cursor) => decode_cursor(cursor).ok_or_else(|| {
            ApiError::validation(
                "pagination.cursor",
                "pagination.cursor: not a cursor this server issued",
            )
        })?,
    };
    Ok((count, offset))
}

fn encode_cursor(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("offset:{offset}"))
}

fn decode_cursor(cursor: &str) -> Option<usize> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor.trim())
        .ok()?;
    String::from_utf8(bytes)
        .ok()?
        .strip_prefix("offset:")?
        .parse()
        .ok()
}

async fn list_sources(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let result = async {
        let token = authorize(&state, &headers, Role::Member).await?;
        let (count, offset) = paging(&query)?;
        let (sources, total) = with_meta(&state, false, move |meta| {
            meta.list_sources_page(offset, count)
        })
        .await?;
        let show = token.role == Role::Owner;
        let list: Vec<Value> = sources
            .iter()
            .map(|s| source_json(s, &token.workspace.id, show))
            .collect();
        let mut pagination = json!({
            "current": encode_cursor(offset),
            "totalEntries": total,
        });
        if offset + sources.len() < total {
            pagination["next"] = Value::String(encode_cursor(offset + count));
        }
        if offset > 0 {
            pagination["previous"] = Value::String(encode_cursor(offset.saturating_sub(count)));
        }
        Ok(ok(
            StatusCode::OK,
            json!({"sources": list, "pagination": pagination}),
        ))
    }
    .await;
    respond(&state, result)
}

async fn get_source(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let result = async {
        let token = authorize(&state, &headers, Role::Member).await?;
        let source = with_meta(&state, false, move |meta| meta.source(&id)).await?;
        let show = token.role == Role::Owner;
        Ok(ok(
            StatusCode::OK,
            json!({"source": source_json(&source, &token.workspace.id, show)}),
        ))
    }
    .await;
    respond(&state, result)
}

fn parse_object(body: &Bytes) -> Result<serde_json::Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::validation("", "the body must be a JSON object")),
        Err(err) => Err(ApiError::validation("", format!("malformed JSON: {err}"))),
    }
}

fn string_field(
    map: &serde_json::Map<String, Value>,
    field: &str,
) -> Result<Option<String>, ApiError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(ApiError::validation(
            field,
            format!("{field}: must be a string"),
        )),
    }
}

fn bool_field(map: &serde_json::Map<String, Value>, field: &str) -> Result<Option<bool>, ApiError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(flag)) => Ok(Some(*flag)),
        Some(_) => Err(ApiError::validation(
            field,
            format!("{field}: must be true or false"),
        )),
    }
}

async fn create_source(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let result = async {
        let token = authorize(&state, &headers, Role::Owner).await?;
        let map = parse_object(&body)?;
        let slug = string_field(&map, "slug")?
            .ok_or_else(|| ApiError::validation("slug", "slug: required"))?;
        let name = string_field(&map, "name")?;
        let enabled = bool_field(&map, "enabled")?;
        let source = with_meta(&state, true, move |meta| {
            let source = meta.create_source(&slug, name.as_deref())?;
            match enabled {
                Some(false) => meta.set_enabled(&source.id, false),
                _ => Ok(source),
            }
        })
        .await?;
        Ok(ok(
            StatusCode::CREATED,
            json!({"source": source_json(&source, &token.workspace.id, true)}),
        ))
    }
    .await;
    respond(&state, result)
}

async fn update_source(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let result = async {
        let token = authorize(&state, &headers, Role::Owner).await?;
        let map = parse_object(&body)?;
        let update = SourceUpdate {
            slug: string_field(&map, "slug")?,
            name: string_field(&map, "name")?,
            enabled: bool_field(&map, "enabled")?,
        };
        let source = with_meta(&state, true, move |meta| meta.update_source(&id, &update)).await?;
        Ok(ok(
            StatusCode::OK,
            json!({"source": source_json(&source, &token.workspace.id, true)}),
        ))
    }
    .await;
    respond(&state, result)
}

async fn delete_source(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let result = async {
        authorize(&state, &headers, Role::Owner).await?;
        with_meta(&state, true, move |meta| meta.delete_source(&id)).await?;
        Ok(ok(StatusCode::OK, json!({"status": "SUCCESS"})))
    }
    .await;
    respond(&state, result)
}

async fn create_write_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let result = async {
        let token = authorize(&state, &headers, Role::Owner).await?;
        let (source, _key) = with_meta(&state, true, move |meta| meta.add_write_key(&id)).await?;
        Ok(ok(
            StatusCode::OK,
            json!({"source": source_json(&source, &token.workspace.id, true)}),
        ))
    }
    .await;
    respond(&state, result)
}

async fn remove_write_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, key)): Path<(String, String)>,
) -> Response {
    let result = async {
        let token = authorize(&state, &headers, Role::Owner).await?;
        let source = with_meta(&state, true, move |meta| meta.remove_write_key(&id, &key)).await?;
        Ok(ok(
            StatusCode::OK,
            json!({"source": source_json(&source, &token.workspace.id, true)}),
        ))
    }
    .await;
    respond(&state, result)
}
