//! Read-only SQL over the data directory: `events.db` opened read-only (and
//! `PRAGMA query_only`), the log's `messages` virtual table ([`crate::vtab`]) registered, and
//! `warehouse.db` attached as `warehouse` when it exists, so `messages`, `discards` and the
//! warehouse tables are all reachable by plain names.

use std::path::Path;

use rusqlite::types::ValueRef;

use crate::error::StoreError;
use crate::events::open_read_only;
use crate::files::{EVENTS_DB, WAREHOUSE_DB};

/// One SQLite value, as read.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// NULL.
    Null,
    /// An integer.
    Integer(i64),
    /// A floating-point number.
    Real(f64),
    /// Text.
    Text(String),
    /// A blob.
    Blob(Vec<u8>),
}

/// The result of a query: column names and rows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueryResult {
    /// The column names.
    pub columns: Vec<String>,
    /// The rows, each with one cell per column.
    pub rows: Vec<Vec<Cell>>,
}

/// Runs one read-only SQL statement against the data directory `dir`.
pub fn run_query(dir: &Path, sql: &str) -> Result<QueryResult, StoreError> {
    run_query_with(dir, sql, |_| Ok(()))
}

/// Like [`run_query`], with `setup` run on the connection first (the warehouse adds its SQL
/// functions, such as `decimal_sum`, this way).
pub fn run_query_with(
    dir: &Path,
    sql: &str,
    setup: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<()>,
) -> Result<QueryResult, StoreError> {
    let events = dir.join(EVENTS_DB);
    if !events.is_file() {
        return Err(StoreError::NotFound {
            what: "events.db in",
            name: dir.display().to_string(),
        });
    }
    let conn = open_read_only(&events)?;
    // `messages` is the log itself (an older, unmigrated `events.db` still has the table,
    // which then takes precedence).
    crate::vtab::register(&conn, dir)?;
    let warehouse = dir.join(WAREHOUSE_DB);
    if warehouse.is_file() {
        let uri = format!("file:{}?mode=ro", warehouse.display());
        conn.execute("ATTACH DATABASE ?1 AS warehouse", [uri])?;
    }
    setup(&conn)?;
    let mut stmt = conn.prepare(sql).map_err(|err| StoreError::Invalid {
        field: "SQL",
        rule: err.to_string(),
    })?;
    if !stmt.readonly() {
        return Err(StoreError::Invalid {
            field: "SQL",
            rule: "only read-only statements (SELECT, WITH, EXPLAIN, read-only PRAGMA) are allowed"
                .to_owned(),
        });
    }
    let columns: Vec<String> = stmt
        .column_names()
        .iter()
        .map(|c| (*c).to_owned())
        .collect();
    let width = columns.len();
    let mut rows = Vec::new();
    let mut cursor = stmt.query([]).map_err(|err| StoreError::Invalid {
        field: "SQL",
        rule: err.to_string(),
    })?;
    while let Some(row) = cursor.next()? {
        let mut cells = Vec::with_capacity(width);
        for i in 0..width {
            cells.push(match row.get_ref(i)? {
                ValueRef::Null => Cell::Null,
                ValueRef::Integer(n) => Cell::Integer(n),
                ValueRef::Real(x) => Cell::Real(x),
                ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Cell::Blob(b.to_vec()),
            });
        }
        rows.push(cells);
    }
    Ok(QueryResult { columns, rows })
}
