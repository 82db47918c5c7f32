//! A [`LogSource`] over the collector's `DATA/events.db` (table `messages`, see the data
//! directory contract), opened read-only.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags};
use spoor_store::{LogEntry, LogSource};

/// The message log in `events.db`.
pub struct EventsDbLog {
    conn: Mutex<Connection>,
}

/// Why the log could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EventsDbError {
    /// SQLite failed.
    #[error("events.db: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The connection's lock was poisoned by a panic.
    #[error("events.db: the connection lock is poisoned")]
    Poisoned,
}

impl EventsDbLog {
    /// Opens `events.db` read-only.
    pub fn open(path: &Path) -> Result<EventsDbLog, EventsDbError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        Ok(EventsDbLog {
            conn: Mutex::new(conn),
        })
    }
}

impl LogSource for EventsDbLog {
    type Error = EventsDbError;

    fn read_after(&self, after: i64, limit: usize) -> Result<Vec<LogEntry>, EventsDbError> {
        let conn = self.conn.lock().map_err(|_| EventsDbError::Poisoned)?;
        let mut stmt = conn.prepare_cached(
            "SELECT seq, source_id, body FROM messages WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(rusqlite::params![after, limit], |row| {
            Ok(LogEntry {
                seq: row.get(0)?,
                source_id: row.get(1)?,
                body: row.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

/// A log held in memory (tests, benchmarks, replays of an NDJSON file).
#[derive(Clone, Debug, Default)]
pub struct MemoryLog {
    entries: Vec<LogEntry>,
}

impl MemoryLog {
    /// A log of these entries (in `seq` order).
    pub fn new(entries: Vec<LogEntry>) -> MemoryLog {
        MemoryLog { entries }
    }

    /// A log of NDJSON lines (blank lines skipped), numbered from 1, all in `source_id`.
    pub fn from_ndjson(text: &str, source_id: &str) -> MemoryLog {
        let entries = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, line)| LogEntry {
                seq: i as i64 + 1,
                source_id: source_id.to_owned(),
                body: line.to_owned(),
            })
            .collect();
        MemoryLog { entries }
    }

    /// The entries.
    pub fn entries(&self) -> &[LogEntry] {
        &self.entries
    }
}

impl LogSource for MemoryLog {
    type Error = std::convert::Infallible;

    fn read_after(&self, after: i64, limit: usize) -> Result<Vec<LogEntry>, Self::Error> {
        let start = self.entries.partition_point(|e| e.seq <= after);
        Ok(self
            .entries
            .iter()
            .skip(start)
            .take(limit)
            .cloned()
            .collect())
    }
}
