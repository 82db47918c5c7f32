//! The two SQL dialects spoor writes: SQLite and PostgreSQL. Everything that differs between
//! them (column types, literals, date arithmetic, exact sums) is here, so that DDL, loads and
//! reports are written once.

use crate::value::{Cell, ColType};

/// A SQL dialect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite (`DATA/warehouse.db`).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Dialect {
    /// The column type for a logical type. SQLite keeps decimals and timestamps as text (exact,
    /// and normalized timestamps sort as text); PostgreSQL has native types.
    pub fn sql_type(self, ty: ColType) -> &'static str {
        match (self, ty) {
            (Dialect::Sqlite, ColType::Integer | ColType::Boolean) => "INTEGER",
            (Dialect::Sqlite, ColType::Float) => "REAL",
            (Dialect::Sqlite, ColType::Decimal | ColType::Timestamp | ColType::Text) => "TEXT",
            (Dialect::Postgres, ColType::Integer) => "BIGINT",
            (Dialect::Postgres, ColType::Float) => "DOUBLE PRECISION",
            (Dialect::Postgres, ColType::Decimal) => "NUMERIC",
            (Dialect::Postgres, ColType::Boolean) => "BOOLEAN",
            (Dialect::Postgres, ColType::Timestamp) => "TIMESTAMPTZ",
            (Dialect::Postgres, ColType::Text) => "TEXT",
        }
    }

    /// A cell as a SQL literal.
    pub fn literal(self, cell: &Cell) -> String {
        match cell {
            Cell::Null => "NULL".to_owned(),
            Cell::Int(i) => i.to_string(),
            Cell::Float(f) => format!("'{f}'"),
            Cell::Decimal(d) | Cell::Timestamp(d) | Cell::Text(d) => text_literal(d),
            Cell::Bool(b) => match self {
                Dialect::Sqlite => if *b { "1" } else { "0" }.to_owned(),
                Dialect::Postgres => if *b { "TRUE" } else { "FALSE" }.to_owned(),
            },
        }
    }

    /// The calendar day (`YYYY-MM-DD`, UTC) of a timestamp column.
    pub fn day(self, col: &str) -> String {
        match self {
            Dialect::Sqlite => format!("substr({col}, 1, 10)"),
            Dialect::Postgres => format!("to_char({col}, 'YYYY-MM-DD')"),
        }
    }

    /// The Monday starting the week of a timestamp column, as `YYYY-MM-DD` text.
    pub fn week(self, col: &str) -> String {
        match self {
            Dialect::Sqlite => format!("date({col}, 'weekday 0', '-6 days')"),
            Dialect::Postgres => format!("to_char(date_trunc('week', {col}), 'YYYY-MM-DD')"),
        }
    }

    /// A numeric column as an exact decimal (for sums over several tables).
    pub fn as_decimal(self, col: &str) -> String {
        match self {
            Dialect::Sqlite => col.to_owned(),
            Dialect::Postgres => format!("CAST({col} AS NUMERIC)"),
        }
    }

    /// The first day of the month of a timestamp column, as `YYYY-MM-DD` text.
    pub fn month(self, col: &str) -> String {
        match self {
            Dialect::Sqlite => format!("substr({col}, 1, 7) || '-01'"),
            Dialect::Postgres => format!("to_char({col}, 'YYYY-MM') || '-01'"),
        }
    }

    /// Whole weeks between two `YYYY-MM-DD` texts that are both Mondays.
    pub fn weeks_between(self, later: &str, earlier: &str) -> String {
        match self {
            Dialect::Sqlite => {
                format!("CAST(round((julianday({later}) - julianday({earlier})) / 7.0) AS INTEGER)")
            }
            Dialect::Postgres => format!("(({later})::date - ({earlier})::date) / 7"),
        }
    }

    /// A timestamp column plus a number of seconds, comparable with timestamp columns.
    pub fn plus_seconds(self, col: &str, seconds: i64) -> String {
        match self {
            Dialect::Sqlite => {
                format!("strftime('%Y-%m-%dT%H:%M:%fZ', {col}, '+{seconds} seconds')")
            }
            Dialect::Postgres => format!("({col} + interval '{seconds} seconds')"),
        }
    }

    /// The exact sum of a decimal column, as text.
    pub fn decimal_sum(self, col: &str) -> String {
        match self {
            Dialect::Sqlite => format!("decimal_sum({col})"),
            Dialect::Postgres => format!("sum({col})::text"),
        }
    }

    /// A text expression sorted byte-wise (the same order on both backends).
    pub fn bytewise(self, expr: &str) -> String {
        match self {
            Dialect::Sqlite => expr.to_owned(),
            Dialect::Postgres => format!("{expr} COLLATE \"C\""),
        }
    }

    /// A column rendered as canonical text for dumps (see [`Cell::render`]).
    pub fn render_column(self, col: &str, ty: ColType) -> String {
        let q = quote(col);
        match (self, ty) {
            (Dialect::Sqlite, ColType::Boolean) => {
                format!("CASE WHEN {q} IS NULL THEN NULL WHEN {q} THEN 'true' ELSE 'false' END")
            }
            (Dialect::Sqlite, _) => q,
            (Dialect::Postgres, ColType::Timestamp) => {
                format!("to_char({q}, 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")
            }
            (Dialect::Postgres, ColType::Boolean) => {
                format!("CASE WHEN {q} IS NULL THEN NULL WHEN {q} THEN 'true' ELSE 'false' END")
            }
            (Dialect::Postgres, ColType::Float) => format!("{q}::text"),
            (Dialect::Postgres, _) => format!("{q}::text"),
        }
    }
}

/// A quoted identifier. Names are ASCII letters, digits and `_` (see [`crate::naming`]), but
/// quotes are doubled anyway.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A text literal: single quotes doubled, NUL replaced. Both backends run with standard
/// conforming strings, so backslashes are plain characters.
pub fn text_literal(text: &str) -> String {
    format!("'{}'", crate::value::clean_text(text).replace('\'', "''"))
}
