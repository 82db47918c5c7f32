//! Counters for `GET /metrics` (Prometheus text format, written by hand) and `GET /health`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use spoor_store::{AppendRequest, Histogram};

use crate::AppState;

/// The collector's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    accepted: AtomicU64,
    duplicates: AtomicU64,
    rejected: Mutex<BTreeMap<String, u64>>,
    bytes: AtomicU64,
    commit: Histogram,
    connections: AtomicU64,
}

impl Metrics {
    /// Zeroed counters.
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// Counts one answered request.
    pub fn record_request(&self, route: &'static str, status: StatusCode) {
        let mut map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry((route, status.as_u16())).or_default() += 1;
    }

    /// Counts request body bytes received (as sent, before decoding).
    pub fn record_bytes(&self, bytes: usize) {
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts accepted messages and, among them, duplicates.
    pub fn record_accepted(&self, accepted: usize, duplicates: usize) {
        self.accepted.fetch_add(accepted as u64, Ordering::Relaxed);
        self.duplicates
            .fetch_add(duplicates as u64, Ordering::Relaxed);
    }

    /// Counts rejected messages (or requests) by reason code.
    pub fn record_rejected(&self, code: &str, count: usize) {
        let mut map = self.rejected.lock().unwrap_or_else(|p| p.into_inner());
        match map.get_mut(code) {
            Some(n) => *n += count as u64,
            None => {
                map.insert(code.to_owned(), count as u64);
            }
        }
    }

    /// Records the time one append took to become durable.
    pub fn record_commit(&self, elapsed: Duration) {
        self.commit.record(elapsed);
    }

    /// A connection opened (`+1`) or closed (`-1`).
    pub fn connection(&self, opened: bool) {
        if opened {
            self.connections.fetch_add(1, Ordering::Relaxed);
        } else {
            self.connections.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Messages accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Duplicates so far.
    pub fn duplicates(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }
}

/// `GET /metrics`.
pub async fn render(State(state): State<AppState>) -> Response {
    let m = &state.metrics;
    let mut out = String::with_capacity(4096);
    let _ = writeln!(
        out,
        "# HELP spoor_http_requests_total HTTP requests answered, by route and status."
    );
    let _ = writeln!(out, "# TYPE spoor_http_requests_total counter");
    for ((route, status), n) in m.requests.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        let _ = writeln!(
            out,
            "spoor_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP spoor_messages_accepted_total Messages acknowledged (stored or duplicate)."
    );
    let _ = writeln!(out, "# TYPE spoor_messages_accepted_total counter");
    let _ = writeln!(out, "spoor_messages_accepted_total {}", m.accepted());
    let _ = writeln!(
        out,
        "# HELP spoor_messages_deduplicated_total Messages acknowledged but not stored again (same messageId within the dedupe window)."
    );
    let _ = writeln!(out, "# TYPE spoor_messages_deduplicated_total counter");
    let _ = writeln!(out, "spoor_messages_deduplicated_total {}", m.duplicates());
    let _ = writeln!(
        out,
        "# HELP spoor_messages_rejected_total Messages or requests rejected, by reason code."
    );
    let _ = writeln!(out, "# TYPE spoor_messages_rejected_total counter");
    for (code, n) in m.rejected.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        let _ = writeln!(
            out,
            "spoor_messages_rejected_total{{reason=\"{code}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP spoor_request_bytes_total Request body bytes received, as sent."
    );
    let _ = writeln!(out, "# TYPE spoor_request_bytes_total counter");
    let _ = writeln!(
        out,
        "spoor_request_bytes_total {}",
        m.bytes.load(Ordering::Relaxed)
    );
    m.commit.snapshot().write_prometheus(
        &mut out,
        "spoor_commit_latency_seconds",
        "Time from handing a request to the log to its durable commit.",
    );
    let stats = state.log.stats();
    stats.write_time.write_prometheus(
        &mut out,
        "spoor_log_write_seconds",
        "Time the log writer spent writing and committing one group (its requests wait meanwhile).",
    );
    stats.sync_time.write_prometheus(
        &mut out,
        "spoor_log_fsync_seconds",
        "Time one fsync of the log took (every acknowledgement waits for one).",
    );
    let _ = writeln!(
        out,
        "# HELP spoor_log_commits_total Transactions committed by the log writer (each is one fsync)."
    );
    let _ = writeln!(out, "# TYPE spoor_log_commits_total counter");
    let _ = writeln!(out, "spoor_log_commits_total {}", stats.commits);
    let _ = writeln!(
        out,
        "# HELP spoor_log_requests_total Requests written by the log writer; divided by commits, the group commit factor."
    );
    let _ = writeln!(out, "# TYPE spoor_log_requests_total counter");
    let _ = writeln!(out, "spoor_log_requests_total {}", stats.requests);
    let _ = writeln!(
        out,
        "# HELP spoor_log_commit_failures_total Commits that failed."
    );
    let _ = writeln!(out, "# TYPE spoor_log_commit_failures_total counter");
    let _ = writeln!(out, "spoor_log_commit_failures_total {}", stats.failures);
    let _ = writeln!(
        out,
        "# HELP spoor_queue_depth Requests waiting for the log writer."
    );
    let _ = writeln!(out, "# TYPE spoor_queue_depth gauge");
    let _ = writeln!(out, "spoor_queue_depth {}", state.log.queue_depth());
    let _ = writeln!(
        out,
        "# HELP spoor_connections_open Open client connections."
    );
    let _ = writeln!(out, "# TYPE spoor_connections_open gauge");
    let _ = writeln!(
        out,
        "spoor_connections_open {}",
        m.connections.load(Ordering::Relaxed)
    );
    state.metrics.record_request("metrics", StatusCode::OK);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

/// `GET /health`: 200 when the log commits, 503 otherwise.
pub async fn health(State(state): State<AppState>) -> Response {
    // An empty append goes through the writer's queue and a commit: proof that storage is
    // writable and the queue moves.
    let probe = AppendRequest {
        received_at: (state.clock)(),
        messages: Vec::new(),
        discards: Vec::new(),
    };
    let writable = matches!(
        tokio::time::timeout(Duration::from_secs(5), state.log.append(probe)).await,
        Ok(Ok(_))
    ) && state.log.healthy();
    let status = if writable {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    state.metrics.record_request("health", status);
    let body = json!({
        "status": if writable { "ok" } else { "unavailable" },
        "version": env!("CARGO_PKG_VERSION"),
        "store": {
            "kind": state.log.kind(),
            "writable": writable,
            "queueDepth": state.log.queue_depth(),
        },
    });
    (status, Json(body)).into_response()
}
