//! spoor's durable embedded store: the message log, discards, dedupe, sources and tokens.
//!
//! The data directory (created 0700, files 0600) holds:
//! - `meta.db` ([`meta`]): the workspace, sources and their write keys, Public API tokens
//!   (hashed);
//! - `log/` ([`segment`]): the message log, append-only segment files, read in SQL as
//!   `messages` ([`vtab`]);
//! - `events.db` ([`events`]): `discards` and the dedupe index's floor;
//! - `dedupe/` ([`runs`]): the dedupe index, sorted run files of messageId hashes;
//! - `warehouse.db`: derived tables, owned by `spoor-warehouse`.
//!
//! The write path is the [`MessageLog`] trait ([`SqliteLog`] with group commit, [`NullLog`]
//! for benchmarks); the read path of the log is the [`LogSource`] trait ([`EventReader`]).
//! This crate knows nothing of HTTP.

pub mod error;
pub mod events;
pub mod files;
pub mod histogram;
pub mod log;
pub mod meta;
pub mod query;
pub mod runs;
pub mod secret;
pub mod segment;
pub mod vtab;
pub mod writer;

pub use error::StoreError;
pub use events::EventReader;
pub use files::limit_sqlite_heap;
pub use histogram::Histogram;
pub use log::{LogEntry, LogSource};
pub use meta::{FirstRun, KeySnapshot, MetaStore, Role, Source, SourceUpdate, Token, Workspace};
pub use query::{Cell, QueryResult, run_query, run_query_with};
pub use writer::{
    AppendOutcome, AppendRequest, BoxFuture, LogStats, MessageFields, MessageLog, NewDiscard,
    NewMessage, NullLog, SqliteLog, SqliteLogConfig,
};
