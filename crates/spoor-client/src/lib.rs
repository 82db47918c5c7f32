//! spoor-client: an async Segment client that is exact about the Spec and never loses or
//! duplicates an event.
//!
//! - [`builder`]: typed builders for the six calls ([`Identify`], [`Track`], [`View`] for page
//!   and screen, [`Group`], [`Alias`]); `build()` validates with `spoor-spec`.
//! - [`Client`]: a bounded queue and a background worker that batches (by count, bytes and
//!   time), retries with jittered exponential backoff (honouring `Retry-After`), and reports
//!   one [`Outcome`] per message to a callback and to [`Stats`] counters.
//! - [`BlockingClient`]: the same for code without an async runtime.
//! - [`retry`]: which statuses are retried; [`transport`]: the HTTP request.
//!
//! Architecture invariant: this crate depends on `spoor-spec` and never on the collector's
//! crates; it speaks only the public Tracking API.
//!
//! ```text
//! let client = Client::new(Config::new("https://api.segment.io", write_key))?;
//! client.enqueue(Track::new("Order Completed").user_id("u1")
//!     .revenue("19.99".parse()?).currency("EUR").build()?).await?;
//! client.close().await;
//! ```

pub mod blocking;
pub mod builder;
pub mod client;
pub mod config;
pub mod error;
pub mod id;
pub mod retry;
pub mod transport;

pub use blocking::BlockingClient;
pub use builder::{Address, Alias, Company, Group, Identify, Page, Screen, Track, Traits, View};
pub use client::{Client, Stats, complete};
pub use config::{
    Clock, Config, Delivery, DeliveryCallback, EU_ENDPOINT, FullPolicy, Outcome, SystemClock,
    US_ENDPOINT,
};
pub use error::ClientError;
pub use retry::Backoff;
pub use spoor_spec::{CustomFields, Decimal, FieldSet, Message, MessageType, Timestamp};
pub use transport::{LIBRARY_NAME, LIBRARY_VERSION, Transport};
