//! [`Config`]: every knob of a [`crate::Client`], with Segment-like defaults, plus the
//! injected [`Clock`] and the per-message [`Delivery`] callback.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use spoor_spec::Timestamp;

use crate::retry::Backoff;

/// Segment's US Tracking API.
pub const US_ENDPOINT: &str = "https://api.segment.io";
/// Segment's EU Tracking API.
pub const EU_ENDPOINT: &str = "https://events.eu1.segmentapis.com";

/// What [`crate::Client::enqueue`] does when the queue is full. There is no silent drop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FullPolicy {
    /// Wait until the worker has taken a message off the queue (backpressure).
    Wait,
    /// Fail the call with [`crate::ClientError::QueueFull`]; the caller decides.
    Fail,
}

/// The wall clock, injected so tests can fix `sentAt` and `timestamp`.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Timestamp::from_unix_nanos(nanos)
    }
}

/// How one message ended. Every queued message gets exactly one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The server accepted the batch holding it (2xx or 3xx).
    Delivered {
        /// The HTTP status.
        status: u16,
    },
    /// The server refused the batch holding it with a status that is never retried
    /// (400, 401, 403, 413, 501, 505, ...). The body says why.
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The response body, as text.
        body: String,
    },
    /// Every attempt failed with a retryable error; the last one is given.
    Failed {
        /// The last error: a network error, a timeout, or a retryable status.
        reason: String,
    },
}

/// The result of one message, given to [`Config::on_delivery`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The message's id (set at enqueue; the same on every retry).
    pub message_id: String,
    /// The caller's tag from [`crate::Client::enqueue_tagged`] (0 otherwise).
    pub tag: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// How many requests carried it.
    pub attempts: u32,
}

/// The per-message callback. It runs on the worker's tasks: keep it short.
pub type DeliveryCallback = Arc<dyn Fn(Delivery) + Send + Sync>;

/// Settings of a [`crate::Client`]. Build with [`Config::new`], then change fields.
#[derive(Clone)]
pub struct Config {
    /// The Tracking API base, without `/v1` (default: Segment US, `https://api.segment.io`).
    pub endpoint: String,
    /// The source's write key: Basic auth user name and `writeKey` in the body.
    pub write_key: String,
    /// Messages per request (default 100; at most 2,500).
    pub batch_size: usize,
    /// Bytes per request body, envelope included, before gzip (default and maximum 500 KB).
    pub max_request_bytes: usize,
    /// A partial batch is sent this long after its first message was queued (default 500 ms).
    pub flush_interval: Duration,
    /// Compress request bodies with gzip (default false).
    pub gzip: bool,
    /// Messages the queue holds before [`Config::when_full`] applies (default 10,000).
    pub queue_capacity: usize,
    /// What enqueue does when the queue is full (default [`FullPolicy::Wait`]).
    pub when_full: FullPolicy,
    /// Requests in flight at once (default 4).
    pub concurrency: usize,
    /// Timeout of one request, connect to last byte (default 15 s).
    pub request_timeout: Duration,
    /// Retries after the first attempt before a batch fails (default 10).
    pub max_retries: u32,
    /// The backoff between attempts (default 100 ms doubling to 60 s, jittered).
    pub backoff: Backoff,
    /// The longest `Retry-After` honoured (default 300 s); longer values are cut to it.
    pub max_retry_after: Duration,
    /// Set `timestamp` to the enqueue time on messages without one (default true, as the
    /// official libraries do), so a late retry does not move the event in time.
    pub stamp_timestamp: bool,
    /// The wall clock for `sentAt` and `timestamp` (default [`SystemClock`]).
    pub clock: Arc<dyn Clock>,
    /// Called once per message with its [`Delivery`] (default none; counters are kept anyway).
    pub on_delivery: Option<DeliveryCallback>,
}

impl Config {
    /// Defaults for `endpoint` and `write_key`.
    pub fn new(endpoint: impl Into<String>, write_key: impl Into<String>) -> Config {
        Config {
            endpoint: endpoint.into(),
            write_key: write_key.into(),
            batch_size: 100,
            max_request_bytes: spoor_spec::limits::MAX_BATCH_BYTES,
            flush_interval: Duration::from_millis(500),
            gzip: false,
            queue_capacity: 10_000,
            when_full: FullPolicy::Wait,
            concurrency: 4,
            request_timeout: Duration::from_secs(15),
            max_retries: 10,
            backoff: Backoff::default(),
            max_retry_after: Duration::from_secs(300),
            stamp_timestamp: true,
            clock: Arc::new(SystemClock),
            on_delivery: None,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("endpoint", &self.endpoint)
            .field("write_key", &"<secret>")
            .field("batch_size", &self.batch_size)
            .field("max_request_bytes", &self.max_request_bytes)
            .field("flush_interval", &self.flush_interval)
            .field("gzip", &self.gzip)
            .field("queue_capacity", &self.queue_capacity)
            .field("when_full", &self.when_full)
            .field("concurrency", &self.concurrency)
            .field("request_timeout", &self.request_timeout)
            .field("max_retries", &self.max_retries)
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}
