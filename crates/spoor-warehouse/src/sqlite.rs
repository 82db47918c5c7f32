//! The SQLite backend (`DATA/warehouse.db`), through rusqlite.
//!
//! SQLite is blocking, so every call runs on tokio's blocking pool with the connection behind a
//! mutex. The database is in WAL mode, so readers (`spoor query`, `spoor report`) never block
//! the loader. Decimals are stored as text (TEXT affinity keeps them exactly as written) and
//! summed with the `decimal_sum` aggregate, which [`register_functions`] adds to a connection:
//! every connection spoor opens on a warehouse has it.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::functions::{Aggregate, Context, FunctionFlags};
use rusqlite::types::{ToSql, ToSqlOutput, Value as SqlValue, ValueRef};
use rusqlite::{Connection, OpenFlags};
use spoor_spec::Decimal;

use crate::WarehouseError;
use crate::dialect::Dialect;
use crate::plan::{
    IdentityOp, Plan, TRAITS_TAIL, TableRows, checkpoint_sql, insert_head, repoint_sql,
    rollup_tail, upsert_tail,
};
use crate::store::{Rows, Store};
use crate::value::Cell;

impl ToSql for Cell {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Cell::Null => ToSqlOutput::Owned(SqlValue::Null),
            Cell::Int(i) => ToSqlOutput::Owned(SqlValue::Integer(*i)),
            Cell::Float(f) => ToSqlOutput::Owned(SqlValue::Real(*f)),
            Cell::Bool(b) => ToSqlOutput::Owned(SqlValue::Integer(i64::from(*b))),
            Cell::Decimal(s) | Cell::Timestamp(s) | Cell::Text(s) => {
                ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes()))
            }
        })
    }
}

/// The `decimal_sum(x)` aggregate: the exact sum of decimal text (or integers), as text; NULL
/// when there is nothing to sum.
struct DecimalSum;

fn sqlite_err(message: String) -> rusqlite::Error {
    rusqlite::Error::UserFunctionError(message.into())
}

impl Aggregate<Option<Decimal>, Option<String>> for DecimalSum {
    fn init(&self, _ctx: &mut Context<'_>) -> rusqlite::Result<Option<Decimal>> {
        Ok(None)
    }

    fn step(&self, ctx: &mut Context<'_>, acc: &mut Option<Decimal>) -> rusqlite::Result<()> {
        let value = match ctx.get_raw(0) {
            ValueRef::Null => return Ok(()),
            ValueRef::Integer(i) => Decimal::new(i128::from(i), 0),
            ValueRef::Real(f) => f
                .to_string()
                .parse()
                .map_err(|_| sqlite_err(format!("decimal_sum: {f} is not a decimal")))?,
            ValueRef::Text(t) | ValueRef::Blob(t) => {
                let text = String::from_utf8_lossy(t);
                text.trim()
                    .parse()
                    .map_err(|_| sqlite_err(format!("decimal_sum: {text:?} is not a decimal")))?
            }
        };
        let sum = acc.unwrap_or(Decimal::ZERO);
        *acc = Some(
            sum.checked_add(value)
                .ok_or_else(|| sqlite_err("decimal_sum: overflow".to_owned()))?,
        );
        Ok(())
    }

    fn finalize(
        &self,
        _ctx: &mut Context<'_>,
        acc: Option<Option<Decimal>>,
    ) -> rusqlite::Result<Option<String>> {
        Ok(acc.flatten().map(|d| d.to_string()))
    }
}

/// Adds spoor's SQL functions (`decimal_sum`) to a connection.
pub fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_aggregate_function(
        "decimal_sum",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        DecimalSum,
    )
}

/// Reads a row of any shape as text cells.
fn text_cell(value: ValueRef<'_>) -> Option<String> {
    match value {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(f) => Some(f.to_string()),
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
    }
}

/// Runs a query on a connection and returns text rows.
pub fn query_rows(conn: &Connection, sql: &str) -> rusqlite::Result<Rows> {
    let mut stmt = conn.prepare(sql)?;
    let columns: Vec<String> = stmt
        .column_names()
        .iter()
        .map(|c| (*c).to_owned())
        .collect();
    let width = columns.len();
    let mut rows = Vec::new();
    let mut cursor = stmt.query([])?;
    while let Some(row) = cursor.next()? {
        let mut cells = Vec::with_capacity(width);
        for i in 0..width {
            cells.push(text_cell(row.get_ref(i)?));
        }
        rows.push(cells);
    }
    Ok(Rows { columns, rows })
}

/// Creates `path` empty with mode 0600 when it does not exist yet.
fn create_private(path: &Path) -> Result<(), WarehouseError> {
    use std::os::unix::fs::OpenOptionsExt;
    if path.exists() || path.as_os_str() == ":memory:" {
        return Ok(());
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map(drop)
        .map_err(|source| WarehouseError::Io {
            action: "create",
            path: path.to_path_buf(),
            source,
        })
}

/// Prepared statements kept per connection (rusqlite keeps 16 by default, fewer than the
/// loader's statements for a batch: one insert per table written).
const STATEMENT_CACHE: usize = 256;

/// A SQLite warehouse.
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (creating when missing) a warehouse file. A new file is created with mode 0600
    /// before SQLite opens it, so it and its `-wal` and `-shm` files are private like the rest
    /// of the data directory.
    pub fn open(path: &Path) -> Result<SqliteStore, WarehouseError> {
        create_private(path)?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // `synchronous = FULL`: each commit syncs the WAL. With `NORMAL` the WAL's pages
        // piled up dirty in the page cache and the kernel wrote them back in bursts of
        // hundreds of MB that the collector's log writes and fsyncs queued behind (its p99 at
        // 20,000 msg/s went from 3.5 to 70-107 ms with the loader running; 13-14 ms with
        // this, docs/BENCHMARKS.md "Session 6: the loader in the background"); the loader
        // shares a transaction between the batches it is behind on, so it syncs rarely
        // when it has work to catch up on, and no slower.
        // A checkpoint copies every page written since the last one back into the database
        // file, once however often it was rewritten. With SQLite's default (every 1,000
        // pages, so after every commit of the loader) a hot index page is copied once per
        // commit; every 100,000 pages (400 MiB of WAL at most, truncated back to 64 MiB after
        // a checkpoint) it is copied once for many commits.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
             PRAGMA cache_size = -16384; PRAGMA temp_store = MEMORY; \
             PRAGMA wal_autocheckpoint = 100000; PRAGMA journal_size_limit = 67108864;",
        )?;
        // The loader's inserts, one statement per table and column list, are reused from
        // batch to batch.
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        register_functions(&conn)?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Opens an existing warehouse file read-only (reports, profiles).
    pub fn open_read_only(path: &Path) -> Result<SqliteStore, WarehouseError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        register_functions(&conn)?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn with<T, F>(&self, work: F) -> Result<T, WarehouseError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, WarehouseError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| WarehouseError::Poisoned)?;
            work(&mut guard)
        })
        .await
        .map_err(|err| WarehouseError::Task {
            reason: err.to_string(),
        })?
    }
}

/// Inserts rows. With `duplicates`, a row refused by the table's `id` primary key is a
/// message already loaded: [`WarehouseError::AlreadyLoaded`].
fn insert_rows(
    tx: &Connection,
    rows: &TableRows,
    tail: &str,
    duplicates: bool,
) -> Result<(), WarehouseError> {
    if rows.rows.is_empty() {
        return Ok(());
    }
    let marks: Vec<String> = (1..=rows.columns.len()).map(|i| format!("?{i}")).collect();
    let sql = format!(
        "{} VALUES ({}){tail}",
        insert_head(&rows.table, &rows.columns),
        marks.join(", ")
    );
    let mut stmt = tx.prepare_cached(&sql)?;
    let id_at = rows.columns.iter().position(|c| c == "id");
    for row in &rows.rows {
        match stmt.execute(rusqlite::params_from_iter(row.iter())) {
            Ok(_) => {}
            Err(rusqlite::Error::SqliteFailure(err, _))
                if duplicates
                    && (err.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                        || err.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE) =>
            {
                let id = match id_at.and_then(|i| row.get(i)) {
                    Some(Cell::Text(id)) => id.clone(),
                    _ => String::new(),
                };
                return Err(WarehouseError::AlreadyLoaded {
                    table: rows.table.clone(),
                    id,
                });
            }
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}

/// Whether `id` is the primary key of `table` (every message table spoor creates on SQLite).
fn id_is_key(tx: &Connection, table: &str) -> Result<bool, WarehouseError> {
    let mut stmt = tx.prepare_cached(
        "SELECT count(*) = 1 AND sum(name = 'id' AND pk = 1) = 1 \
         FROM pragma_table_info(?1) WHERE pk > 0",
    )?;
    Ok(stmt
        .query_row([table], |row| row.get::<_, Option<bool>>(0))?
        .unwrap_or(false))
}

/// Applies a plan in the open transaction (begun here when there is none), then commits
/// unless the plan keeps it open; on an error rolls the whole transaction back.
fn apply_plan(conn: &mut Connection, plan: Plan) -> Result<(), WarehouseError> {
    if conn.is_autocommit() {
        conn.execute_batch("BEGIN")?;
    }
    let result = write_plan(conn, &plan).and_then(|()| {
        if !plan.keep_open {
            conn.execute_batch("COMMIT")?;
        }
        Ok(())
    });
    if result.is_err() && !conn.is_autocommit() {
        // The error is what the caller needs; a failed rollback leaves nothing to undo.
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}

fn write_plan(tx: &Connection, plan: &Plan) -> Result<(), WarehouseError> {
    // Ids planned as new (the pipelined catch-up) are checked by the `id` primary key of their
    // table as their rows are inserted, in the same descent of the index as the insert: a
    // lookup of each first cost a second random page read per message with random UUIDs (the
    // insert came after every other lookup of the batch, when the page had left the cache).
    // A table without that key (spoor creates none) is checked by lookups.
    let mut keyed: Vec<&str> = Vec::new();
    for (table, ids) in &plan.fresh {
        if id_is_key(tx, table)? {
            keyed.push(table);
            continue;
        }
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT 1 FROM {} WHERE \"id\" = ?1",
            crate::dialect::quote(table)
        ))?;
        for id in ids {
            if stmt.exists([id])? {
                return Err(WarehouseError::AlreadyLoaded {
                    table: table.clone(),
                    id: id.clone(),
                });
            }
        }
    }
    for ddl in &plan.ddl {
        tx.execute_batch(ddl)?;
    }
    for rows in &plan.inserts {
        insert_rows(tx, rows, "", keyed.contains(&rows.table.as_str()))?;
    }
    for rows in &plan.upserts {
        insert_rows(tx, rows, &upsert_tail(&rows.table, &rows.columns), false)?;
    }
    for rows in &plan.rollups {
        insert_rows(tx, rows, rollup_tail(&rows.table), false)?;
    }
    for op in &plan.identity {
        match op {
            IdentityOp::SetTraits(rows) => insert_rows(tx, rows, TRAITS_TAIL, false)?,
            IdentityOp::Repoint { from, to } => {
                for sql in repoint_sql(&plan.profile_tables, from, to) {
                    tx.execute_batch(&sql)?;
                }
            }
        }
    }
    tx.execute_batch(&checkpoint_sql(plan.checkpoint))?;
    Ok(())
}

impl Store for SqliteStore {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn execute(&mut self, sql: &str) -> Result<(), WarehouseError> {
        let sql = sql.to_owned();
        self.with(move |conn| Ok(conn.execute_batch(&sql)?)).await
    }

    async fn query(&mut self, sql: &str) -> Result<Rows, WarehouseError> {
        let sql = sql.to_owned();
        self.with(move |conn| Ok(query_rows(conn, &sql)?)).await
    }

    async fn apply(&mut self, plan: Plan) -> Result<(), WarehouseError> {
        self.with(move |conn| apply_plan(conn, plan)).await
    }

    async fn commit(&mut self) -> Result<(), WarehouseError> {
        self.with(|conn| {
            if !conn.is_autocommit() {
                conn.execute_batch("COMMIT")?;
            }
            Ok(())
        })
        .await
    }

    async fn reset(&mut self) -> Result<(), WarehouseError> {
        self.with(|conn| {
            let names: Vec<String> = query_rows(
                conn,
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite_%'",
            )?
            .rows
            .into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .collect();
            let tx = conn.transaction()?;
            for name in names {
                tx.execute_batch(&format!(
                    "DROP TABLE IF EXISTS {}",
                    crate::dialect::quote(&name)
                ))?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{INTERNAL_TABLES, internal_ddl};

    /// A warehouse with its internal tables and a `tracks` table, its `id` the primary key or
    /// not.
    fn warehouse(id_key: bool) -> Connection {
        let conn = Connection::open_in_memory().expect("open");
        for table in INTERNAL_TABLES {
            for ddl in internal_ddl(Dialect::Sqlite, table) {
                conn.execute_batch(&ddl).expect("ddl");
            }
        }
        let key = if id_key { " PRIMARY KEY" } else { "" };
        conn.execute_batch(&format!("CREATE TABLE tracks (id TEXT{key}, event TEXT)"))
            .expect("tracks");
        conn
    }

    /// A pipelined plan: rows for `ids` in `tracks`, planned as new.
    fn plan(ids: &[&str], checkpoint: i64, keep_open: bool) -> Plan {
        let mut rows = TableRows::with_columns("tracks", &["id", "event"]);
        for id in ids {
            rows.push_row(vec![
                Cell::Text((*id).to_owned()),
                Cell::Text("E".to_owned()),
            ]);
        }
        Plan {
            inserts: vec![rows],
            fresh: vec![(
                "tracks".to_owned(),
                ids.iter().map(|id| (*id).to_owned()).collect(),
            )],
            checkpoint,
            keep_open,
            ..Plan::default()
        }
    }

    fn state(conn: &Connection) -> (i64, String) {
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM tracks", [], |r| r.get(0))
            .expect("count");
        let checkpoint: String = conn
            .query_row(
                "SELECT value FROM warehouse_state WHERE key = 'checkpoint'",
                [],
                |r| r.get(0),
            )
            .expect("checkpoint");
        (rows, checkpoint)
    }

    #[test]
    fn a_plan_with_a_loaded_id_is_refused_and_its_transaction_rolled_back() {
        // With the `id` key the insert refuses the duplicate; without it, a lookup does.
        for id_key in [true, false] {
            let mut conn = warehouse(id_key);
            apply_plan(&mut conn, plan(&["a", "b"], 1, false)).expect("first plan");
            // A plan that keeps the transaction open, then one with a loaded id: both go.
            apply_plan(&mut conn, plan(&["c"], 2, true)).expect("kept open");
            let err = apply_plan(&mut conn, plan(&["d", "a"], 3, false)).expect_err("refused");
            match err {
                WarehouseError::AlreadyLoaded { table, id } => {
                    assert_eq!((table.as_str(), id.as_str()), ("tracks", "a"), "{id_key}");
                }
                other => panic!("{other:?}"),
            }
            assert!(conn.is_autocommit(), "rolled back");
            assert_eq!(state(&conn), (2, "1".to_owned()), "id key: {id_key}");
            // The new ids load afterwards.
            apply_plan(&mut conn, plan(&["c", "d"], 3, false)).expect("new ids");
            assert_eq!(state(&conn), (4, "3".to_owned()), "id key: {id_key}");
        }
    }

    #[test]
    fn the_id_key_is_recognized() {
        assert!(id_is_key(&warehouse(true), "tracks").expect("key"));
        assert!(!id_is_key(&warehouse(false), "tracks").expect("no key"));
        assert!(!id_is_key(&warehouse(true), "missing").expect("no table"));
    }
}
