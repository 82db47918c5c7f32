//! [`StoreError`]: everything that can go wrong in the store, as typed variants.

use std::path::PathBuf;

/// An error of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file or directory operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("create directory", "open").
        action: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file of the store is damaged where it cannot have been left by a crash.
    #[error("{path} is damaged at byte {offset}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where the damage starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// SQLite failed.
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A database was written by a newer spoor.
    #[error("{path} has schema version {found}; this spoor supports up to {supported}")]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// The version found.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// Something named does not exist.
    #[error("no {what} {name:?}")]
    NotFound {
        /// The kind of thing ("source", "token").
        what: &'static str,
        /// The name or id asked for.
        name: String,
    },
    /// Something with that name already exists.
    #[error("a {what} named {name:?} already exists")]
    Conflict {
        /// The kind of thing.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// An argument breaks a rule.
    #[error("{field}: {rule}")]
    Invalid {
        /// The field or argument.
        field: &'static str,
        /// The rule broken, as a sentence.
        rule: String,
    },
    /// The operating system's random source failed.
    #[error("random source: {0}")]
    Random(String),
    /// A commit failed; nothing of the request was stored.
    #[error("commit failed: {0}")]
    CommitFailed(String),
    /// The writer has stopped (shutdown or a fatal error); nothing more can be appended.
    #[error("the message log writer has stopped")]
    Closed,
}

impl StoreError {
    /// True when retrying the same operation later may succeed (IO trouble, a stopped
    /// writer, a busy database), false for permanent refusals.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Io { .. }
                | StoreError::Sqlite(_)
                | StoreError::CommitFailed(_)
                | StoreError::Closed
        )
    }
}
