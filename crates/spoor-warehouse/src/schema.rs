//! The warehouse's tables: the fixed columns of each kind of table, the internal tables, the
//! DDL for both dialects, and the in-memory cache of every table's columns and types.
//!
//! The cache is loaded once from `warehouse_columns` (which records the logical type of every
//! column) and kept in step by the loader, so the schema is never read again while loading.

use std::collections::HashMap;

use crate::dialect::{Dialect, quote};
use crate::value::ColType;

use ColType::{Boolean, Integer, Text, Timestamp};

/// Columns every message table starts with.
const MESSAGE_COMMON: &[(&str, ColType)] = &[
    ("id", Text),
    ("source_id", Text),
    ("profile_id", Text),
    ("anonymous_id", Text),
    ("user_id", Text),
    ("received_at", Timestamp),
    ("sent_at", Timestamp),
    ("timestamp", Timestamp),
    ("original_timestamp", Timestamp),
];

/// What a table holds, which decides its fixed columns and indexes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TableKind {
    /// `identifies`, `pages`, `screens`, `groups`, `aliases`, `tracks`: one row per message.
    Message(MessageTable),
    /// One table per track event name: one row per track message of that name.
    Event,
    /// `users` and `accounts`: one row per user id or group id, latest values.
    Latest,
}

/// The six message tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageTable {
    /// `identifies`.
    Identifies,
    /// `tracks`.
    Tracks,
    /// `pages`.
    Pages,
    /// `screens`.
    Screens,
    /// `groups`.
    Groups,
    /// `aliases`.
    Aliases,
}

impl MessageTable {
    /// All six.
    pub const ALL: [MessageTable; 6] = [
        MessageTable::Identifies,
        MessageTable::Tracks,
        MessageTable::Pages,
        MessageTable::Screens,
        MessageTable::Groups,
        MessageTable::Aliases,
    ];

    /// The table name.
    pub fn name(self) -> &'static str {
        match self {
            MessageTable::Identifies => "identifies",
            MessageTable::Tracks => "tracks",
            MessageTable::Pages => "pages",
            MessageTable::Screens => "screens",
            MessageTable::Groups => "groups",
            MessageTable::Aliases => "aliases",
        }
    }

    /// The table of a message type.
    pub fn of(kind: spoor_spec::MessageType) -> MessageTable {
        use spoor_spec::MessageType as M;
        match kind {
            M::Identify => MessageTable::Identifies,
            M::Track => MessageTable::Tracks,
            M::Page => MessageTable::Pages,
            M::Screen => MessageTable::Screens,
            M::Group => MessageTable::Groups,
            M::Alias => MessageTable::Aliases,
        }
    }
}

/// The fixed columns of a table kind, in order.
pub fn fixed_columns(kind: TableKind) -> Vec<(&'static str, ColType)> {
    match kind {
        TableKind::Message(table) => {
            let mut cols = MESSAGE_COMMON.to_vec();
            match table {
                MessageTable::Tracks => cols.extend([("event", Text), ("event_text", Text)]),
                MessageTable::Pages | MessageTable::Screens => cols.push(("name", Text)),
                MessageTable::Groups => cols.push(("group_id", Text)),
                MessageTable::Aliases => cols.push(("previous_id", Text)),
                MessageTable::Identifies => {}
            }
            cols
        }
        TableKind::Event => {
            let mut cols: Vec<_> = MESSAGE_COMMON
                .iter()
                .copied()
                .filter(|(name, _)| *name != "profile_id")
                .collect();
            cols.extend([("event", Text), ("event_text", Text)]);
            cols
        }
        TableKind::Latest => vec![
            ("id", Text),
            ("source_id", Text),
            ("received_at", Timestamp),
        ],
    }
}

/// The names of the fixed columns of a table kind.
pub fn fixed_names(kind: TableKind) -> Vec<&'static str> {
    fixed_columns(kind).into_iter().map(|(n, _)| n).collect()
}

/// The names a trait or property cannot take as its column in a table of `kind`: the table's
/// fixed columns plus every column common to message tables (so `userId` is `_user_id` in
/// `users` too, as in `identifies`).
pub fn reserved_names(kind: TableKind) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = MESSAGE_COMMON.iter().map(|(n, _)| *n).collect();
    for name in fixed_names(kind) {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// One internal table: name, columns, primary key, extra indexes.
pub struct InternalTable {
    /// Table name.
    pub name: &'static str,
    /// Columns and types.
    pub columns: &'static [(&'static str, ColType)],
    /// Primary key columns (may be empty).
    pub key: &'static [&'static str],
    /// Secondary indexes (each a list of columns).
    pub indexes: &'static [&'static [&'static str]],
}

/// The internal tables, created at start.
pub const INTERNAL_TABLES: &[InternalTable] = &[
    InternalTable {
        name: "warehouse_state",
        columns: &[("key", Text), ("value", Text)],
        key: &["key"],
        indexes: &[],
    },
    InternalTable {
        name: "warehouse_columns",
        columns: &[
            ("table_name", Text),
            ("column_name", Text),
            ("column_type", Text),
            ("position", Integer),
        ],
        key: &["table_name", "column_name"],
        indexes: &[],
    },
    InternalTable {
        name: "type_conflicts",
        columns: &[
            ("table_name", Text),
            ("column_name", Text),
            ("expected", Text),
            ("actual", Text),
            ("message_id", Text),
            ("value", Text),
        ],
        key: &[],
        indexes: &[&["message_id"]],
    },
    InternalTable {
        name: "profile_ids",
        columns: &[
            ("id_type", Text),
            ("id", Text),
            ("profile_id", Text),
            ("first_seen", Timestamp),
        ],
        key: &["id_type", "id"],
        indexes: &[&["profile_id"]],
    },
    InternalTable {
        name: "profile_traits",
        columns: &[
            ("profile_id", Text),
            ("trait", Text),
            ("value", Text),
            ("set_at", Timestamp),
        ],
        key: &["profile_id", "trait"],
        indexes: &[],
    },
    InternalTable {
        name: "event_days",
        columns: &[
            ("day", Text),
            ("source_id", Text),
            ("event_text", Text),
            ("events", Integer),
        ],
        key: &["day", "source_id", "event_text"],
        indexes: &[],
    },
    InternalTable {
        name: "profile_days",
        columns: &[
            ("day", Text),
            ("profile_id", Text),
            ("source_id", Text),
            ("week", Text),
        ],
        key: &["day", "profile_id", "source_id"],
        indexes: &[&["profile_id"]],
    },
    InternalTable {
        name: "identity_merges",
        columns: &[
            ("message_id", Text),
            ("kept_profile_id", Text),
            ("merged_profile_id", Text),
            ("user_id", Text),
            ("other_user_id", Text),
            ("allowed", Boolean),
            ("timestamp", Timestamp),
        ],
        key: &[],
        indexes: &[&["kept_profile_id"], &["merged_profile_id"]],
    },
];

/// The DDL creating an internal table and its indexes.
pub fn internal_ddl(dialect: Dialect, table: &InternalTable) -> Vec<String> {
    let mut cols: Vec<String> = table
        .columns
        .iter()
        .map(|(name, ty)| format!("{} {}", quote(name), dialect.sql_type(*ty)))
        .collect();
    if !table.key.is_empty() {
        let key: Vec<String> = table.key.iter().map(|k| quote(k)).collect();
        cols.push(format!("PRIMARY KEY ({})", key.join(", ")));
    }
    let mut out = vec![format!(
        "CREATE TABLE IF NOT EXISTS {} ({})",
        quote(table.name),
        cols.join(", ")
    )];
    for index in table.indexes {
        out.push(index_ddl(table.name, index));
    }
    out
}

fn index_name(table: &str, columns: &[&str]) -> String {
    format!("{table}__{}", columns.join("__"))
}

fn index_ddl(table: &str, columns: &[&str]) -> String {
    let name = index_name(table, columns);
    let cols: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    format!(
        "CREATE INDEX IF NOT EXISTS {} ON {} ({})",
        quote(&name),
        quote(table),
        cols.join(", ")
    )
}

/// The columns of the `tracks` index that `top-events` and `funnel` read instead of the
/// table's wide rows (a covering index).
///
/// After `event_text` it is ordered by `timestamp`, so the loader's inserts land at the end of
/// one of a few dozen ranges (messages arrive roughly in time order), pages that stay in the
/// cache. The index it replaces, `(event_text, profile_id, timestamp)`, put each track at a
/// random place among every profile's calls: once it outgrew the page cache, each insert cost
/// a page read and write, and that index alone was about a quarter of the loader's CPU at
/// 1,000,000 messages.
pub const TRACKS_EVENT_INDEX: &[&str] = &["event_text", "timestamp", "profile_id", "source_id"];

/// Indexes of earlier versions that [`TRACKS_EVENT_INDEX`] replaces: dropped when a warehouse
/// is opened, see [`upgrade_ddl`].
const REPLACED_INDEXES: &[(&str, &[&str])] =
    &[("tracks", &["event_text", "profile_id", "timestamp"])];

/// The DDL that brings the indexes of a warehouse made by an earlier version up to date:
/// idempotent, run each time a warehouse is opened (after its tables exist).
pub fn upgrade_ddl() -> Vec<String> {
    let mut out: Vec<String> = REPLACED_INDEXES
        .iter()
        .map(|(table, columns)| {
            format!(
                "DROP INDEX IF EXISTS {}",
                quote(&index_name(table, columns))
            )
        })
        .collect();
    out.push(index_ddl("tracks", TRACKS_EVENT_INDEX));
    out
}

/// The DDL creating a warehouse table of `kind` with its fixed columns and indexes.
///
/// `id` is the primary key of message tables (which is what makes loading idempotent) and of
/// `users`/`accounts`. An event table's `id` is not indexed: its rows are written only with
/// their `tracks` row, whose `id` is unique, and an index on random message ids is one of the
/// most expensive to keep up (every insert lands on a different page).
pub fn table_ddl(dialect: Dialect, name: &str, kind: TableKind) -> Vec<String> {
    let cols: Vec<String> = fixed_columns(kind)
        .into_iter()
        .map(|(col, ty)| {
            let pk = if col == "id" && kind != TableKind::Event {
                " PRIMARY KEY"
            } else {
                ""
            };
            format!("{} {}{pk}", quote(col), dialect.sql_type(ty))
        })
        .collect();
    let mut out = vec![format!(
        "CREATE TABLE IF NOT EXISTS {} ({})",
        quote(name),
        cols.join(", ")
    )];
    match kind {
        TableKind::Message(table) => {
            out.push(index_ddl(name, &["profile_id"]));
            out.push(index_ddl(name, &["timestamp"]));
            if table == MessageTable::Tracks {
                out.push(index_ddl(name, TRACKS_EVENT_INDEX));
            }
        }
        TableKind::Event => out.push(index_ddl(name, &["timestamp"])),
        TableKind::Latest => {}
    }
    out
}

/// The DDL adding a column.
pub fn add_column_ddl(dialect: Dialect, table: &str, column: &str, ty: ColType) -> String {
    format!(
        "ALTER TABLE {} ADD COLUMN {} {}",
        quote(table),
        quote(column),
        dialect.sql_type(ty)
    )
}

/// One table's columns, in order, with their types.
#[derive(Clone, Debug, Default)]
pub struct TableSchema {
    columns: Vec<(String, ColType)>,
    index: HashMap<String, usize>,
}

impl TableSchema {
    /// The type of a column, if it exists.
    pub fn column(&self, name: &str) -> Option<ColType> {
        self.index
            .get(name)
            .and_then(|&i| self.columns.get(i))
            .map(|(_, t)| *t)
    }

    /// The position and type of a column, if it exists.
    pub fn slot(&self, name: &str) -> Option<(usize, ColType)> {
        let &i = self.index.get(name)?;
        self.columns.get(i).map(|(_, t)| (i, *t))
    }

    /// All columns in order.
    pub fn columns(&self) -> &[(String, ColType)] {
        &self.columns
    }

    fn push(&mut self, name: String, ty: ColType) {
        self.index.insert(name.clone(), self.columns.len());
        self.columns.push((name, ty));
    }
}

/// Every warehouse table's columns (internal tables excluded).
#[derive(Clone, Debug, Default)]
pub struct Schema {
    tables: HashMap<String, TableSchema>,
}

impl Schema {
    /// Builds the cache from `warehouse_columns` rows `(table, column, type)` in position
    /// order.
    pub fn from_rows(rows: impl IntoIterator<Item = (String, String, ColType)>) -> Schema {
        let mut schema = Schema::default();
        for (table, column, ty) in rows {
            schema.tables.entry(table).or_default().push(column, ty);
        }
        schema
    }

    /// A table, if it exists.
    pub fn table(&self, name: &str) -> Option<&TableSchema> {
        self.tables.get(name)
    }

    /// All table names, sorted.
    pub fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.tables.keys().cloned().collect();
        names.sort();
        names
    }

    /// Records a new table with its fixed columns; returns them.
    pub fn add_table(&mut self, name: &str, kind: TableKind) -> Vec<(String, ColType)> {
        let mut table = TableSchema::default();
        for (col, ty) in fixed_columns(kind) {
            table.push(col.to_owned(), ty);
        }
        let cols = table.columns.clone();
        self.tables.insert(name.to_owned(), table);
        cols
    }

    /// Records a new column; returns its position.
    pub fn add_column(&mut self, table: &str, column: &str, ty: ColType) -> usize {
        let entry = self.tables.entry(table.to_owned()).or_default();
        entry.push(column.to_owned(), ty);
        entry.columns.len() - 1
    }
}
