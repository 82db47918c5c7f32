//! `events.db`: the rejected messages (`discards`) and the dedupe index's floor, plus the
//! read side of the message log ([`EventReader`], a [`LogSource`]), whose records live in
//! segment files under `DIR/log/` ([`crate::segment`]) and are read in SQL as `messages`
//! ([`crate::vtab`]).
//!
//! # Format
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
//! Schemas up to 5 kept the log itself in a `messages` table. The migration to 6 copies its
//! rows, `seq` for `seq`, into segment files (written under `DIR/log.tmp/`, synced, then
//! renamed `DIR/log/`) and drops the table, all while holding the database's write lock; a
//! crash in between leaves either the table (and the migration starts again) or the
//! renamed directory (and only the drop is left to do).
//!
//! The schema version is `PRAGMA user_version`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::error::StoreError;
use crate::files::{self, EVENTS_DB};
use crate::log::{LogEntry, LogSource};
use crate::segment::{self, LOG_DIR, Record, SegmentReader, SegmentWriter};

pub(crate) const SCHEMA_VERSION: i64 = 6;

const SCHEMA: &str = "
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
INSERT OR IGNORE INTO dedupe_meta (id, last_seq) VALUES (1, 0);
";

/// Schema 5's log table: older versions are first brought to schema 5 (this table plus
/// [`SCHEMA`]) before the log leaves SQLite.
const MESSAGES_5: &str = "
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
";

/// Opens `DIR/events.db` for writing (creating it 0600, and `DIR` 0700, when missing),
/// configured for the writer: WAL, `synchronous=FULL` (a discard is durable at its commit),
/// schema migrated (which may move an older `messages` table into `DIR/log/`).
pub(crate) fn open_for_writing(dir: &Path) -> Result<Connection, StoreError> {
    files::ensure_data_dir(dir)?;
    let path = files::ensure_private_file(&dir.join(EVENTS_DB))?;
    let conn = Connection::open(&path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
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
        return Ok(());
    }
    if version == 3 || version == 4 {
        // Version 4 dropped version 3's `dedupe_received` index; version 5 moves the index
        // out of SQLite: the writer converts the renamed table into a run (`crate::writer`).
        conn.execute_batch(
            "BEGIN IMMEDIATE; DROP INDEX IF EXISTS dedupe_received; \
             ALTER TABLE dedupe RENAME TO dedupe_legacy; \
             PRAGMA user_version = 5; COMMIT;",
        )?;
    } else if version < 5 {
        // Versions 1 and 2 keyed `dedupe` by the text (source_id, message_id). The index is
        // derived from the log: drop it and let the writer rebuild it from the whole log
        // on open (`dedupe_meta.last_seq` back to 0; entries outside the window are skipped).
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; DROP TABLE IF EXISTS dedupe; {MESSAGES_5} {SCHEMA} \
             UPDATE dedupe_meta SET last_seq = 0 WHERE id = 1; \
             PRAGMA user_version = 5; COMMIT;"
        ))?;
    }
    if version < SCHEMA_VERSION {
        move_messages_to_log(conn, path)?;
    }
    Ok(())
}

/// Schema 5 to 6: the `messages` table becomes segment files (module docs).
fn move_messages_to_log(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let log_dir = dir.join(LOG_DIR);
    let tmp_dir = dir.join(format!("{LOG_DIR}.tmp"));
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
        if version >= SCHEMA_VERSION {
            // Another process migrated while this one waited for the lock.
            return Ok(());
        }
        if segment::list(&log_dir)?.is_empty() {
            match std::fs::remove_dir_all(&tmp_dir) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(StoreError::Io {
                        action: "remove",
                        path: tmp_dir.clone(),
                        source,
                    });
                }
            }
            let first: i64 =
                conn.query_row("SELECT coalesce(min(seq), 1) FROM messages", [], |r| {
                    r.get(0)
                })?;
            let mut writer = SegmentWriter::open(&tmp_dir, first - 1)?;
            let mut stmt = conn.prepare(
                "SELECT seq, source_id, message_id, type, user_id, anonymous_id, event, \
                 timestamp, received_at, body FROM messages ORDER BY seq",
            )?;
            let mut rows = stmt.query([])?;
            let mut pending = 0;
            while let Some(row) = rows.next()? {
                let seq: i64 = row.get(0)?;
                let text = |i| row.get::<_, Option<String>>(i);
                let fields = [
                    text(1)?,
                    text(2)?,
                    text(3)?,
                    text(4)?,
                    text(5)?,
                    text(6)?,
                    text(7)?,
                    text(8)?,
                    text(9)?,
                ];
                let [
                    source_id,
                    message_id,
                    kind,
                    user_id,
                    anonymous_id,
                    event,
                    timestamp,
                    received_at,
                    body,
                ] = fields.each_ref().map(|f| f.as_deref());
                let record = Record {
                    seq,
                    source_id: source_id.unwrap_or_default(),
                    message_id: message_id.unwrap_or_default(),
                    kind: kind.unwrap_or_default(),
                    user_id,
                    anonymous_id,
                    event,
                    timestamp,
                    received_at: received_at.unwrap_or_default(),
                    body: body.unwrap_or_default(),
                };
                if writer.push(&record) != seq {
                    return Err(StoreError::Corrupt {
                        path: path.to_path_buf(),
                        offset: 0,
                        reason: format!("messages.seq jumps to {seq}; the log must be dense"),
                    });
                }
                pending += 1;
                if pending == 10_000 {
                    writer.write()?;
                    pending = 0;
                }
            }
            writer.write()?;
            writer
                .current_file()
                .sync_all()
                .map_err(|source| StoreError::Io {
                    action: "sync",
                    path: tmp_dir.clone(),
                    source,
                })?;
            drop(writer);
            std::fs::rename(&tmp_dir, &log_dir).map_err(|source| StoreError::Io {
                action: "rename",
                path: tmp_dir.clone(),
                source,
            })?;
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|source| StoreError::Io {
                    action: "sync directory",
                    path: dir.to_path_buf(),
                    source,
                })?;
        }
        conn.execute_batch(&format!(
            "DROP TABLE IF EXISTS messages; PRAGMA user_version = {SCHEMA_VERSION};"
        ))?;
        Ok(())
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT")?,
        Err(err) => {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(err);
        }
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

/// The message log, read in `seq` order: the [`LogSource`] of the embedded store.
pub struct EventReader {
    log: SegmentReader,
}

impl std::fmt::Debug for EventReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventReader").finish_non_exhaustive()
    }
}

impl EventReader {
    /// Opens the log of `DIR`, creating (or migrating) `DIR/events.db` first so that an
    /// older `messages` table is in the log.
    pub fn open(dir: &Path) -> Result<EventReader, StoreError> {
        let current = dir.join(EVENTS_DB).is_file() && {
            let conn = open_read_only(&dir.join(EVENTS_DB))?;
            conn.pragma_query_value(None, "user_version", |row| row.get::<_, i64>(0))?
                >= SCHEMA_VERSION
        };
        if !current {
            ensure_events_db(dir)?;
        }
        Ok(EventReader {
            log: SegmentReader::new(&dir.join(LOG_DIR)),
        })
    }

    /// The highest `seq` in the log, 0 when empty.
    pub fn last_seq(&self) -> Result<i64, StoreError> {
        self.log.last_seq()
    }
}

impl LogSource for EventReader {
    type Error = StoreError;

    fn read_after(&self, after: i64, limit: usize) -> Result<Vec<LogEntry>, StoreError> {
        let mut entries = Vec::with_capacity(limit.min(4_096));
        if limit == 0 {
            return Ok(entries);
        }
        self.log.scan_after(after, |seq, payload| {
            if let Some(record) = Record::decode(payload) {
                entries.push(LogEntry {
                    seq,
                    source_id: record.source_id.to_owned(),
                    body: record.body.to_owned(),
                });
            }
            entries.len() < limit
        })?;
        Ok(entries)
    }
}
