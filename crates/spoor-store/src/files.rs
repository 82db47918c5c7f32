//! The data directory on disk: created 0700, database files created 0600 before SQLite opens
//! them (SQLite then gives its `-wal` and `-shm` files the same mode), and the current time.

use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use spoor_spec::Timestamp;

use crate::error::StoreError;

/// The meta database's file name.
pub const META_DB: &str = "meta.db";
/// The event log's file name.
pub const EVENTS_DB: &str = "events.db";
/// The warehouse's file name (owned by spoor-warehouse).
pub const WAREHOUSE_DB: &str = "warehouse.db";

/// Creates the data directory (mode 0700) when missing.
pub fn ensure_data_dir(dir: &Path) -> Result<(), StoreError> {
    if dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| StoreError::Io {
            action: "create directory",
            path: dir.to_path_buf(),
            source,
        })
}

/// Makes sure `path` exists with mode 0600 (creating it empty when missing, tightening its
/// mode when it exists), so SQLite and its side files never hold secrets in a readable file.
pub fn ensure_private_file(path: &Path) -> Result<PathBuf, StoreError> {
    let io = |action, source| StoreError::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    if path.exists() {
        let meta = std::fs::metadata(path).map_err(|e| io("inspect", e))?;
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| io("restrict permissions of", e))?;
        }
    } else {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| io("create", e))?;
    }
    Ok(path.to_path_buf())
}

/// The current time from the system clock.
pub fn now() -> Timestamp {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Timestamp::from_unix_nanos(nanos)
}

/// Caps the memory SQLite itself allocates in this process (every connection: page caches,
/// statements), softly: past `bytes` it recycles page-cache pages instead of allocating more
/// (`PRAGMA soft_heap_limit`, process-wide; 0 removes the cap). SQLite allocates with the C
/// allocator, whose per-thread arenas keep what they once held, so an uncapped burst stays
/// in the process's resident memory for good. Returns the previous cap.
pub fn limit_sqlite_heap(bytes: i64) -> Result<i64, StoreError> {
    let conn = rusqlite::Connection::open_in_memory()?;
    let previous: i64 = conn.query_row("PRAGMA soft_heap_limit", [], |row| row.get(0))?;
    let _: i64 = conn.query_row(
        &format!("PRAGMA soft_heap_limit = {}", bytes.max(0)),
        [],
        |row| row.get(0),
    )?;
    Ok(previous)
}

/// A new, empty directory under the system's temporary directory for one test, named
/// `spoor-{module}-{name}-{random}`.
#[cfg(test)]
pub(crate) fn test_dir(module: &str, name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "spoor-{module}-{name}-{}",
        crate::secret::random_base62(8).unwrap()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sqlite_heap_cap_is_process_wide() {
        let before = limit_sqlite_heap(32 << 20).unwrap();
        // Seen from any other connection of the process.
        let other = rusqlite::Connection::open_in_memory().unwrap();
        let cap: i64 = other
            .query_row("PRAGMA soft_heap_limit", [], |row| row.get(0))
            .unwrap();
        assert_eq!(cap, 32 << 20);
        assert_eq!(limit_sqlite_heap(before).unwrap(), 32 << 20);
    }
}
