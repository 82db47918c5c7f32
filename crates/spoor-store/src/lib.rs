//! spoor's durable embedded store (skeleton; the collector work fills it in).
//!
//! The data directory holds `meta.db` (workspace, sources, write keys, tokens), `events.db`
//! (the message log `messages`, `discards`, the dedupe index) and `warehouse.db` (derived
//! tables, owned by `spoor-warehouse`).

pub mod log;

pub use log::{LogEntry, LogSource};
