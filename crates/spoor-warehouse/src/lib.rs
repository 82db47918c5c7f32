//! spoor-warehouse: Segment's warehouse schema, identity resolution and BI reports, derived
//! from the message log, on SQLite and PostgreSQL.
//!
//! # Layout
//! - [`loader`]: [`Loader`] reads the log after its checkpoint and applies one [`plan::Plan`]
//!   per batch, in one transaction with the new checkpoint.
//! - [`planner`]: turns a batch of messages, parsed as borrowed [`json`] trees, into a plan.
//! - [`naming`], [`value`], [`schema`]: Segment's naming rules, column types and conflicts,
//!   the tables and the schema cache.
//! - [`identity`]: the id graph that joins anonymous and known ids into profiles.
//! - [`store`]: the [`Store`] trait; [`sqlite`] and [`postgres`] implement it.
//! - [`dialect`]: every SQL difference between the two backends.
//! - [`reports`]: the BI reports, one query per dialect each.
//! - [`profile`]: reading one profile (ids, traits, groups, events).
//! - [`memory_log`]: an in-memory [`LogSource`](spoor_store::LogSource).

pub mod dialect;
pub mod dump;
pub mod identity;
pub mod json;
pub mod loader;
pub mod memory_log;
pub mod naming;
pub mod plan;
pub mod planner;
pub mod postgres;
pub mod profile;
pub mod reports;
pub mod schema;
pub mod sqlite;
pub mod store;
pub mod value;

pub use loader::{LoadStats, Loader, LoaderOptions};
pub use store::{AnyStore, Rows, Store};

/// Everything that can go wrong in the warehouse.
#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    /// SQLite failed.
    #[error("warehouse (SQLite): {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed.
    #[error("warehouse (PostgreSQL): {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// The message log could not be read.
    #[error("message log: {reason}")]
    Log {
        /// The cause.
        reason: String,
    },
    /// The warehouse's own bookkeeping is not as spoor writes it.
    #[error("warehouse bookkeeping is damaged: {what}")]
    Corrupt {
        /// What is wrong.
        what: String,
    },
    /// A file of the warehouse could not be created or restricted.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A blocking task failed.
    #[error("warehouse task failed: {reason}")]
    Task {
        /// The cause.
        reason: String,
    },
    /// A message a plan took as new is loaded already (the loader then plans its batch again,
    /// skipping what is loaded).
    #[error("message {id:?} is already loaded in {table}")]
    AlreadyLoaded {
        /// The message table.
        table: String,
        /// The `messageId`.
        id: String,
    },
    /// A lock was poisoned by a panic elsewhere.
    #[error("warehouse connection lock is poisoned")]
    Poisoned,
    /// A warehouse location or setting is invalid.
    #[error("{reason}")]
    Config {
        /// The rule broken.
        reason: String,
    },
    /// A report or profile parameter is invalid.
    #[error("{reason}")]
    BadInput {
        /// The flag and the rule broken.
        reason: String,
    },
}
