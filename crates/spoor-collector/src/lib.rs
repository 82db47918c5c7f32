//! spoor's HTTP collector: Segment's Tracking API, a subset of the Public API, `/health` and
//! `/metrics`.
//!
//! This is the only crate that knows HTTP. Handlers are thin: they decode the request, call
//! one domain function ([`ingest::ingest`], the functions of [`api`]) and map the result.
//! [`router`] builds the whole application from an [`AppState`]; [`server::serve`] runs it
//! on a listener with its own accept loop (connection cap, header and body read timeouts,
//! graceful shutdown).
//!
//! Other crates add routes with `router(state.clone()).merge(extra)`; routes under `/api`
//! authenticate with [`api::authorize`] and answer errors with [`api::ApiError`].

pub mod api;
pub mod body;
pub mod config;
pub mod cors;
pub mod ingest;
pub mod keys;
pub mod metrics;
pub mod net;
pub mod profiles;
pub mod server;
pub mod tracking;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::get;
use spoor_spec::Timestamp;
use spoor_store::{MessageLog, MetaStore};
use tokio::sync::Semaphore;

pub use api::{ApiError, TokenInfo, authorize};
pub use config::ServerConfig;
pub use keys::KeyRing;
pub use metrics::Metrics;

/// A source of the current time, injected so tests can fix it.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(spoor_store::files::now)
}

/// Everything the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Where accepted messages go.
    pub log: Arc<dyn MessageLog>,
    /// `meta.db`, for the Public API (blocking calls: use `spawn_blocking`).
    pub meta: Arc<Mutex<MetaStore>>,
    /// The write keys and tokens, refreshed when `meta.db` changes.
    pub keys: KeyRing,
    /// Settings.
    pub config: Arc<ServerConfig>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Bytes of request bodies allowed in memory at once (backpressure).
    pub body_budget: Arc<Semaphore>,
    /// The clock.
    pub clock: Clock,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("log", &self.log.kind())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Builds the state from its parts.
    pub fn new(
        log: Arc<dyn MessageLog>,
        meta: MetaStore,
        keys: KeyRing,
        config: ServerConfig,
        clock: Clock,
    ) -> AppState {
        let budget = config
            .body_budget_bytes
            .max(spoor_spec::limits::MAX_BATCH_BYTES);
        AppState {
            log,
            meta: Arc::new(Mutex::new(meta)),
            keys,
            config: Arc::new(config),
            metrics: Arc::new(Metrics::new()),
            body_budget: Arc::new(Semaphore::new(budget)),
            clock,
        }
    }
}

/// The whole application: Tracking API under `/v1`, Public API under `/api`, `/health` and
/// `/metrics`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(tracking::routes())
        .merge(api::routes())
        .route("/health", get(metrics::health))
        .route("/metrics", get(metrics::render))
        .fallback(tracking::not_found)
        .with_state(state)
}
