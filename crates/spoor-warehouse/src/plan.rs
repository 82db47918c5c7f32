//! A [`Plan`]: everything one batch of messages changes in the warehouse, computed without IO
//! and applied by a backend in one transaction.
//!
//! A backend applies, in this order: first it checks that no id in `fresh` is loaded (and
//! fails with [`crate::WarehouseError::AlreadyLoaded`], rolling the open transaction back,
//! when one is; SQLite leaves the check to the message tables' `id` primary key as it inserts
//! their rows); `ddl`; `inserts` (plain inserts: the loader has already removed messages whose id is
//! loaded); `rollups` (`event_days` counts added, `profile_days`
//! rows kept once); `upserts` (`users` and `accounts`: a column that is
//! NULL in the new row keeps its old value); `identity` operations in order; the checkpoint;
//! then it commits, unless the plan asks to keep the transaction open ([`Plan::keep_open`]).

use std::collections::HashMap;

use crate::dialect::{quote, text_literal};
use crate::value::Cell;

/// Rows for one table with a shared column list. Rows may be shorter than `columns` while
/// being built; [`TableRows::padded`] fills them with NULL.
#[derive(Clone, Debug, Default)]
pub struct TableRows {
    /// The table.
    pub table: String,
    /// Column names.
    pub columns: Vec<String>,
    /// Rows, aligned with `columns`.
    pub rows: Vec<Vec<Cell>>,
    positions: HashMap<String, usize>,
    keys: HashMap<String, usize>,
}

impl TableRows {
    /// An empty set of rows for `table`.
    pub fn new(table: &str) -> TableRows {
        TableRows {
            table: table.to_owned(),
            ..TableRows::default()
        }
    }

    /// An empty set of rows for `table` with these columns, for [`TableRows::push_row`].
    pub fn with_columns(table: &str, columns: &[&str]) -> TableRows {
        let mut rows = TableRows::new(table);
        for column in columns {
            rows.position(column);
        }
        rows
    }

    /// Appends a row already aligned with `columns`.
    pub fn push_row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }

    fn position(&mut self, column: &str) -> usize {
        if let Some(&i) = self.positions.get(column) {
            return i;
        }
        self.positions.insert(column.to_owned(), self.columns.len());
        self.columns.push(column.to_owned());
        self.columns.len() - 1
    }

    fn set(row: &mut Vec<Cell>, i: usize, cell: Cell) {
        if row.len() <= i {
            row.resize(i + 1, Cell::Null);
        }
        if let Some(slot) = row.get_mut(i) {
            *slot = cell;
        }
    }

    /// Appends a row.
    pub fn push(&mut self, cells: Vec<(String, Cell)>) {
        let mut row = Vec::with_capacity(self.columns.len().max(cells.len()));
        for (column, cell) in cells {
            let i = self.position(&column);
            TableRows::set(&mut row, i, cell);
        }
        self.rows.push(row);
    }

    /// Merges a row into the row with the same key (its non-NULL cells win), or appends it.
    pub fn merge(&mut self, key: &str, cells: Vec<(String, Cell)>) {
        let Some(&r) = self.keys.get(key) else {
            self.keys.insert(key.to_owned(), self.rows.len());
            self.push(cells);
            return;
        };
        for (column, cell) in cells {
            if cell == Cell::Null {
                continue;
            }
            let i = self.position(&column);
            if let Some(row) = self.rows.get_mut(r) {
                TableRows::set(row, i, cell);
            }
        }
    }

    /// The rows, each as long as `columns`.
    pub fn padded(mut self) -> TableRows {
        let width = self.columns.len();
        for row in &mut self.rows {
            row.resize(width, Cell::Null);
        }
        self
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// A change to the identity graph, applied in order after the inserts.
#[derive(Clone, Debug)]
pub enum IdentityOp {
    /// Upsert `profile_traits` rows (columns `profile_id, trait, value, set_at`): the new
    /// value and time replace the old.
    SetTraits(TableRows),
    /// Move everything of profile `from` into profile `to`: message rows, ids, and traits
    /// (for each trait, the later `set_at` wins).
    Repoint {
        /// The profile that disappears.
        from: String,
        /// The profile that stays.
        to: String,
    },
}

/// Everything one batch changes.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// CREATE TABLE, ALTER TABLE ADD COLUMN and CREATE INDEX statements, in order.
    pub ddl: Vec<String>,
    /// Plain inserts, one entry per table, including `warehouse_columns`, `profile_ids`,
    /// `type_conflicts` and `identity_merges`.
    pub inserts: Vec<TableRows>,
    /// Upserts on `id` for `users` and `accounts`.
    pub upserts: Vec<TableRows>,
    /// Rollups (`event_days` counts, `profile_days` presence), aggregated per batch; applied
    /// with [`rollup_tail`].
    pub rollups: Vec<TableRows>,
    /// Identity changes, in order.
    pub identity: Vec<IdentityOp>,
    /// The tables whose `profile_id` a repoint updates.
    pub profile_tables: Vec<String>,
    /// The last log position this batch covers.
    pub checkpoint: i64,
    /// Message ids planned as new without asking the database, per message table: applying
    /// fails with [`crate::WarehouseError::AlreadyLoaded`] when one of them is loaded.
    pub fresh: Vec<(String, Vec<String>)>,
    /// Leave the transaction open for the next plan instead of committing (the loader's
    /// catch-up, to write each index page once for many batches); the next plan, or
    /// [`crate::Store::commit`], commits it. A backend may commit anyway (PostgreSQL does:
    /// its transactions do not gain from it), so the checkpoint it writes must be valid.
    pub keep_open: bool,
}

/// `INSERT INTO "t" ("a", "b")`.
pub fn insert_head(table: &str, columns: &[String]) -> String {
    let cols: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    format!("INSERT INTO {} ({})", quote(table), cols.join(", "))
}

/// The conflict clause of an upsert into `users`/`accounts`: a NULL keeps the old value.
pub fn upsert_tail(table: &str, columns: &[String]) -> String {
    let sets: Vec<String> = columns
        .iter()
        .filter(|c| c.as_str() != "id")
        .map(|c| {
            format!(
                "{q} = COALESCE(excluded.{q}, {t}.{q})",
                q = quote(c),
                t = quote(table)
            )
        })
        .collect();
    if sets.is_empty() {
        " ON CONFLICT (\"id\") DO NOTHING".to_owned()
    } else {
        format!(" ON CONFLICT (\"id\") DO UPDATE SET {}", sets.join(", "))
    }
}

/// The conflict clause of a `profile_traits` upsert: the new value replaces the old.
pub const TRAITS_TAIL: &str = " ON CONFLICT (\"profile_id\", \"trait\") DO UPDATE SET \
     \"value\" = excluded.\"value\", \"set_at\" = excluded.\"set_at\"";

/// The conflict clause of a rollup table: counts add up, presence rows are kept once.
pub fn rollup_tail(table: &str) -> &'static str {
    if table == "event_days" {
        " ON CONFLICT (\"day\", \"source_id\", \"event_text\") DO UPDATE SET \
         \"events\" = \"event_days\".\"events\" + excluded.\"events\""
    } else {
        " ON CONFLICT DO NOTHING"
    }
}

/// The statements merging profile `from` into `to`.
pub fn repoint_sql(tables: &[String], from: &str, to: &str) -> Vec<String> {
    let (f, t) = (text_literal(from), text_literal(to));
    let mut out: Vec<String> = tables
        .iter()
        .map(|table| {
            format!(
                "UPDATE {} SET \"profile_id\" = {t} WHERE \"profile_id\" = {f}",
                quote(table)
            )
        })
        .collect();
    out.push(format!(
        "UPDATE \"profile_ids\" SET \"profile_id\" = {t} WHERE \"profile_id\" = {f}"
    ));
    out.push(format!(
        "INSERT INTO \"profile_traits\" (\"profile_id\", \"trait\", \"value\", \"set_at\") \
         SELECT {t}, \"trait\", \"value\", \"set_at\" FROM \"profile_traits\" \
         WHERE \"profile_id\" = {f} \
         ON CONFLICT (\"profile_id\", \"trait\") DO UPDATE SET \"value\" = excluded.\"value\", \
         \"set_at\" = excluded.\"set_at\" WHERE excluded.\"set_at\" > \"profile_traits\".\"set_at\""
    ));
    out.push(format!(
        "DELETE FROM \"profile_traits\" WHERE \"profile_id\" = {f}"
    ));
    out.push(format!(
        "INSERT INTO \"profile_days\" (\"day\", \"profile_id\", \"source_id\", \"week\") \
         SELECT \"day\", {t}, \"source_id\", \"week\" FROM \"profile_days\" \
         WHERE \"profile_id\" = {f} ON CONFLICT DO NOTHING"
    ));
    out.push(format!(
        "DELETE FROM \"profile_days\" WHERE \"profile_id\" = {f}"
    ));
    out
}

/// The statement saving the checkpoint.
pub fn checkpoint_sql(checkpoint: i64) -> String {
    format!(
        "INSERT INTO \"warehouse_state\" (\"key\", \"value\") VALUES ('checkpoint', '{checkpoint}') \
         ON CONFLICT (\"key\") DO UPDATE SET \"value\" = excluded.\"value\""
    )
}
