//! `events.db`: the message log (`messages`) and the rejected messages (`discards`), plus
//! the read side of the log ([`EventReader`], a [`LogSource`]).
//!
//! # Format
//! - `messages(seq INTEGER PRIMARY KEY, source_id, message_id, type, user_id, anonymous_id,
//!   event, timestamp, received_at, body)`: one row per accepted message; `body` is the
//!   normalized JSON. Rows are only ever appended, never updated or deleted, so `seq` is
//!   strictly increasing and never reused.
//! - `discards(id, source_id, received_at, code, reasons, body)`: one row per rejected
//!   message (or rejected request), with the reasons as a JSON array of
//!   `{"path", "code", "message"}`.
//! - `dedupe_meta(id = 1, last_seq)`: the floor of the dedupe index, which lives outside
//!   SQLite in `DIR/dedupe/` ([`crate::runs`]): messages up to it are not in the index (it
//!   moves to the log's end when the server runs without deduplication).
//!
//! Schemas up to 4 kept the index in a `dedupe` table (a B-tree keyed by hash, whose random
//! inserts cost most of the write path). The migration to 5 renames it `dedupe_legacy`;
//! the writer turns its unexpired rows into a run on its next open and drops it.
//!
//! The schema version is `PRAGMA user_version`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, params};

use crate::error::StoreError;
use crate::files::{self, EVENTS_DB};
use crate::log::{LogEntry, LogSource};

pub(crate) const SCHEMA_VERSION: i64 = 5;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,
    source_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    type TEXT NOT NULL,
    user_id TEXT,
    anonymous_id TEXT,
    event TEXT,
    timestamp TEXT,
    received_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS discards (
    id INTEGER PRIMARY KEY,
    source_id TEXT,
    received_at TEXT NOT NULL,
    code TEXT NOT NULL,
    reasons TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dedupe_meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq INTEGER NOT NULL
);
INSERT OR IGNORE INTO dedupe_meta (id, last_seq) SELECT 1, coalesce(max(seq), 0) FROM messages;
";

/// Opens `DIR/events.db` for writing (creating it 0600, and `DIR` 0700, when missing),
/// configured for the writer: WAL, `synchronous=FULL` (the writer lowers it to `NORMAL` and
/// syncs the WAL itself before acknowledging, see [`crate::writer`]), schema migrated.
pub(crate) fn open_for_writing(dir: &Path) -> Result<Connection, StoreError> {
    files::ensure_data_dir(dir)?;
    let path = files::ensure_private_file(&dir.join(EVENTS_DB))?;
    let conn = Connection::open(&path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    // 16 KiB pages for a new file (an existing one keeps its size): the log is mostly
    // appends of ~1 KB rows, and each WAL frame is a page with its own header and write, so
    // bigger pages mean a quarter of the frames per commit (docs/BENCHMARKS.md).
    conn.pragma_update(None, "page_size", 16_384)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "cache_size", -16_384)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    migrate(&conn, &path)?;
    Ok(conn)
}

/// Creates `DIR/events.db` with its schema when missing (for readers that start before the
/// first server run).
pub fn ensure_events_db(dir: &Path) -> Result<PathBuf, StoreError> {
    drop(open_for_writing(dir)?);
    Ok(dir.join(EVENTS_DB))
}

fn migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version == 0 {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
        ))?;
    } else if version == 3 || version == 4 {
        // Version 4 dropped version 3's `dedupe_received` index; version 5 moves the index
        // out of SQLite: the writer converts the renamed table into a run (`crate::writer`).
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; DROP INDEX IF EXISTS dedupe_received; \
             ALTER TABLE dedupe RENAME TO dedupe_legacy; \
             PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
        ))?;
    } else if version < SCHEMA_VERSION {
        // Versions 1 and 2 keyed `dedupe` by the text (source_id, message_id). The index is
        // derived from `messages`: drop it and let the writer rebuild it from the whole log
        // on open (`dedupe_meta.last_seq` back to 0; entries outside the window are skipped).
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; DROP TABLE IF EXISTS dedupe; {SCHEMA} \
             UPDATE dedupe_meta SET last_seq = 0 WHERE id = 1; \
             PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
        ))?;
    }
    Ok(())
}

/// Opens a database file read-only (`SQLITE_OPEN_READ_ONLY` and `PRAGMA query_only`).
pub fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    if !path.is_file() {
        return Err(StoreError::NotFound {
            what: "database file",
            name: path.display().to_string(),
        });
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "query_only", "ON")?;
    Ok(conn)
}

/// The message log, read in `seq` order: the [`LogSource`] of the SQLite store.
pub struct EventReader {
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for EventReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventReader").finish_non_exhaustive()
    }
}

impl EventReader {
    /// Opens `DIR/events.db` read-only, creating it (with its schema) first when missing.
    pub fn open(dir: &Path) -> Result<EventReader, StoreError> {
        let path = dir.join(EVENTS_DB);
        if !path.is_file() {
            ensure_events_db(dir)?;
        }
        Ok(EventReader {
            conn: Mutex::new(open_read_only(&path)?),
        })
    }

    /// The highest `seq` in the log, 0 when empty.
    pub fn last_seq(&self) -> Result<i64, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        Ok(
            conn.query_row("SELECT coalesce(max(seq), 0) FROM messages", [], |r| {
                r.get(0)
            })?,
        )
    }
}

impl LogSource for EventReader {
    type Error = StoreError;

    fn read_after(&self, after: i64, limit: usize) -> Result<Vec<LogEntry>, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut stmt = conn.prepare_cached(
            "SELECT seq, source_id, body FROM messages WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let entries = stmt
            .query_map(params![after, limit], |row| {
                Ok(LogEntry {
                    seq: row.get(0)?,
                    source_id: row.get(1)?,
                    body: row.get(2)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(entries)
    }
}
