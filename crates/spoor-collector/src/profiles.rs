//! Profile API routes, modelled on Segment's Profile API: a profile's traits, events and
//! external ids, read from the warehouse that the loader keeps (`spoor-warehouse`).
//!
//! - `GET /api/profiles/{external_id}/traits[?include=a,b]` → `{"traits": {...}, "cursor": ...}`
//! - `GET /api/profiles/{external_id}/events[?limit=N&next=CURSOR]` → `{"data": [...],
//!   "cursor": {"url", "has_more", "next"}}`, newest first
//! - `GET /api/profiles/{external_id}/external_ids` → `{"data": [{"type", "id", "created_at"}],
//!   "cursor": ...}`
//!
//! `external_id` is `user_id:ID` or `anonymous_id:ID`. Every route needs a Public API bearer
//! token (owner or member); an unknown profile is a 404 in the Public API's error envelope.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use spoor_store::Role;
use spoor_warehouse::profile::{
    event_json, find_profile, load_profile, profile_events, profile_traits, traits_json,
};
use spoor_warehouse::{AnyStore, WarehouseError};
use tokio::sync::Mutex;

use crate::AppState;
use crate::api::{ApiError, authorize};

/// Where the warehouse is: a SQLite file path or a `postgres://` URL.
#[derive(Clone)]
struct ProfilesState {
    app: AppState,
    location: Arc<String>,
    store: Arc<Mutex<Option<AnyStore>>>,
}

/// The profile routes, with their own state; merge them into [`crate::router`]'s router.
pub fn routes(app: AppState, warehouse_location: String) -> Router {
    let state = ProfilesState {
        app,
        location: Arc::new(warehouse_location),
        store: Arc::new(Mutex::new(None)),
    };
    Router::new()
        .route("/api/profiles/{external_id}/traits", get(traits))
        .route("/api/profiles/{external_id}/events", get(events))
        .route(
            "/api/profiles/{external_id}/external_ids",
            get(external_ids),
        )
        .with_state(state)
}

fn warehouse_error(err: WarehouseError) -> ApiError {
    ApiError::internal(&err)
}

/// Runs `work` with the shared store, opening it on first use and dropping it after an
/// error so the next request reconnects.
async fn with_store<T>(
    state: &ProfilesState,
    work: impl AsyncFnOnce(&mut AnyStore) -> Result<T, WarehouseError>,
) -> Result<T, ApiError> {
    let mut guard = state.store.lock().await;
    if guard.is_none() {
        *guard = Some(
            AnyStore::open(&state.location)
                .await
                .map_err(warehouse_error)?,
        );
    }
    let Some(store) = guard.as_mut() else {
        return Err(ApiError::internal(&"the warehouse is not open"));
    };
    let result = work(store).await;
    if result.is_err() {
        *guard = None;
    }
    result.map_err(warehouse_error)
}

/// Checks the `type:id` form and finds the profile.
async fn profile_of(state: &ProfilesState, external_id: &str) -> Result<String, ApiError> {
    match external_id.split_once(':') {
        Some(("user_id" | "anonymous_id", id)) if !id.is_empty() => {}
        _ => {
            return Err(ApiError::validation(
                "external_id",
                format!("{external_id:?}: write the id as user_id:ID or anonymous_id:ID"),
            ));
        }
    }
    let id = external_id.to_owned();
    with_store(state, async move |store| find_profile(store, &id).await)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no profile has the id {external_id}")))
}

fn cursor(url: &str, next: Option<String>) -> Value {
    json!({
        "url": url,
        "has_more": next.is_some(),
        "next": next.unwrap_or_default(),
    })
}

async fn traits(
    State(state): State<ProfilesState>,
    Path(external_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        authorize(&state.app, &headers, Role::Member).await?;
        let profile = profile_of(&state, &external_id).await?;
        let mut traits = with_store(&state, async move |store| {
            profile_traits(store, &profile).await
        })
        .await?;
        if let Some(include) = query.get("include") {
            let wanted: Vec<&str> = include.split(',').map(str::trim).collect();
            traits.retain(|t| wanted.contains(&t.name.as_str()));
        }
        let url = format!("/api/profiles/{external_id}/traits");
        Ok::<_, ApiError>(axum::Json(json!({
            "traits": traits_json(&traits),
            "cursor": cursor(&url, None),
        })))
    }
    .await;
    match result {
        Ok(body) => body.into_response(),
        Err(err) => err.into_response(),
    }
}

async fn events(
    State(state): State<ProfilesState>,
    Path(external_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        authorize(&state.app, &headers, Role::Member).await?;
        let limit = match query.get("limit") {
            None => 10,
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=100).contains(&n) => n,
                _ => {
                    return Err(ApiError::validation(
                        "limit",
                        format!("{text:?}: a whole number from 1 to 100"),
                    ));
                }
            },
        };
        let offset = match query.get("next").filter(|n| !n.is_empty()) {
            None => 0,
            Some(text) => text.parse::<usize>().map_err(|_| {
                ApiError::validation("next", format!("{text:?} is not a cursor from this API"))
            })?,
        };
        let profile = profile_of(&state, &external_id).await?;
        // One more than asked tells whether there is a next page.
        let mut events = with_store(&state, async move |store| {
            profile_events(store, &profile, limit + 1, offset).await
        })
        .await?;
        let next = (events.len() > limit).then(|| (offset + limit).to_string());
        events.truncate(limit);
        let url = format!("/api/profiles/{external_id}/events");
        Ok(axum::Json(json!({
            "data": events.iter().map(event_json).collect::<Vec<_>>(),
            "cursor": cursor(&url, next),
        })))
    }
    .await;
    match result {
        Ok(body) => body.into_response(),
        Err(err) => err.into_response(),
    }
}

async fn external_ids(
    State(state): State<ProfilesState>,
    Path(external_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        authorize(&state.app, &headers, Role::Member).await?;
        let profile_id = profile_of(&state, &external_id).await?;
        let profile = with_store(&state, async move |store| {
            load_profile(store, &profile_id, 0).await
        })
        .await?;
        let url = format!("/api/profiles/{external_id}/external_ids");
        Ok::<_, ApiError>(axum::Json(json!({
            "data": profile.ids.iter().map(|i| json!({
                "type": i.id_type,
                "id": i.id,
                "collection": "users",
                "created_at": i.first_seen,
                "encoding": "none",
            })).collect::<Vec<_>>(),
            "cursor": cursor(&url, None),
        })))
    }
    .await;
    match result {
        Ok(body) => body.into_response(),
        Err(err) => err.into_response(),
    }
}
