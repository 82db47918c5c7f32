//! Column types and cell values: how a JSON value becomes a typed column, and whether a later
//! value fits the type a column already has.
//!
//! A column's type is fixed by the first non-null value seen for it:
//! - a JSON boolean → `boolean`;
//! - an integer that fits 64 bits → `integer`;
//! - any other number that is an exact decimal (up to 38 digits after the point) → `decimal`,
//!   kept exactly (PostgreSQL `NUMERIC`, SQLite text summed with `decimal_sum`);
//! - numbers beyond that → `float`;
//! - a string that is a strict ISO 8601 timestamp → `timestamp`; any other string → `text`;
//! - arrays (and anything nested inside them) → `text`, as JSON.
//!
//! Money properties (`revenue`, `value`, `price`, `total`, ...) are `decimal` whenever their
//! first value is a number, so an integer first price does not make `19.99` a conflict.
//!
//! A later value fits when it can be stored without loss: integers fit `decimal` and `float`
//! columns, anything fits `text` (numbers and booleans as their JSON text), and nothing else is
//! converted. A value that does not fit is a type conflict.

use std::fmt;

use spoor_spec::{Decimal, Timestamp};

use crate::json::Json;

/// The logical type of a warehouse column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ColType {
    /// 64-bit integer.
    Integer,
    /// Binary floating point (only numbers that are not exact decimals).
    Float,
    /// Exact decimal.
    Decimal,
    /// Boolean.
    Boolean,
    /// Instant, normalized to UTC with milliseconds.
    Timestamp,
    /// Text (also arrays, as JSON).
    Text,
}

impl ColType {
    /// The name stored in `warehouse_columns` and `type_conflicts`.
    pub fn as_str(self) -> &'static str {
        match self {
            ColType::Integer => "integer",
            ColType::Float => "float",
            ColType::Decimal => "decimal",
            ColType::Boolean => "boolean",
            ColType::Timestamp => "timestamp",
            ColType::Text => "text",
        }
    }

    /// Parses [`ColType::as_str`].
    pub fn from_name(name: &str) -> Option<ColType> {
        [
            ColType::Integer,
            ColType::Float,
            ColType::Decimal,
            ColType::Boolean,
            ColType::Timestamp,
            ColType::Text,
        ]
        .into_iter()
        .find(|t| t.as_str() == name)
    }
}

impl fmt::Display for ColType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One typed cell, ready for either backend.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// An integer.
    Int(i64),
    /// A float (always finite).
    Float(f64),
    /// An exact decimal, in plain notation (`19.99`).
    Decimal(String),
    /// A boolean.
    Bool(bool),
    /// A timestamp as `2024-01-02T03:04:05.678Z`.
    Timestamp(String),
    /// Text, without NUL characters.
    Text(String),
}

impl Cell {
    /// The cell as canonical text (the same on both backends), or `None` for NULL.
    pub fn render(&self) -> Option<String> {
        match self {
            Cell::Null => None,
            Cell::Int(i) => Some(i.to_string()),
            Cell::Float(f) => Some(f.to_string()),
            Cell::Decimal(d) | Cell::Timestamp(d) | Cell::Text(d) => Some(d.clone()),
            Cell::Bool(b) => Some(b.to_string()),
        }
    }
}

/// Properties and traits that are money or quantities of money: `decimal` when numeric.
const DECIMAL_NAMES: &[&str] = &[
    "revenue", "value", "price", "total", "subtotal", "tax", "shipping", "discount",
];

/// Text with NUL characters replaced (PostgreSQL text cannot hold them; both backends store
/// the same text).
pub fn clean_text(text: &str) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text.to_owned()
    }
}

/// The type a first value gives a new column named `column`; `None` for null.
pub fn infer(column: &str, value: &Json<'_>) -> Option<ColType> {
    Some(match value {
        Json::Null => return None,
        Json::Bool(_) => ColType::Boolean,
        Json::Number(n) => {
            let decimal_name = DECIMAL_NAMES.contains(&column.trim_start_matches('_'));
            if decimal_name && n.parse::<Decimal>().is_ok() {
                ColType::Decimal
            } else if n.parse::<i64>().is_ok() {
                ColType::Integer
            } else if n.parse::<Decimal>().is_ok() {
                ColType::Decimal
            } else if n.parse::<f64>().is_ok_and(f64::is_finite) {
                ColType::Float
            } else {
                ColType::Text
            }
        }
        Json::String(s) => {
            if Timestamp::parse(s).is_ok() {
                ColType::Timestamp
            } else {
                ColType::Text
            }
        }
        Json::Array(_) | Json::Object(_) => ColType::Text,
    })
}

/// The kind of a value as named in `type_conflicts.actual`.
pub fn actual_kind(value: &Json<'_>) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(n) => {
            if n.parse::<i64>().is_ok() {
                "integer"
            } else if n.parse::<Decimal>().is_ok() {
                "decimal"
            } else {
                "float"
            }
        }
        Json::String(s) => {
            if Timestamp::parse(s).is_ok() {
                "timestamp"
            } else {
                "text"
            }
        }
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

/// True when `text` already has the canonical shape `YYYY-MM-DDTHH:MM:SS.mmmZ` (what the
/// collector writes), so a successful parse would format back to the same text.
fn canonical_timestamp(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 24
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[23] == b'Z'
}

/// A strict ISO 8601 timestamp in canonical form, or `None`.
pub fn normalize_timestamp(text: &str) -> Option<String> {
    let parsed = Timestamp::parse(text).ok()?;
    if canonical_timestamp(text) {
        Some(text.to_owned())
    } else {
        Some(parsed.to_string())
    }
}

/// Converts `value` to a cell of type `ty`, or `None` when it does not fit.
pub fn fit(ty: ColType, value: &Json<'_>) -> Option<Cell> {
    match (ty, value) {
        (_, Json::Null) => Some(Cell::Null),
        (ColType::Integer, Json::Number(n)) => n.parse::<i64>().ok().map(Cell::Int),
        (ColType::Decimal, Json::Number(n)) => n
            .parse::<Decimal>()
            .ok()
            .map(|d| Cell::Decimal(d.to_string())),
        (ColType::Float, Json::Number(n)) => n
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Cell::Float),
        (ColType::Boolean, Json::Bool(b)) => Some(Cell::Bool(*b)),
        (ColType::Timestamp, Json::String(s)) => normalize_timestamp(s).map(Cell::Timestamp),
        (ColType::Text, Json::String(s)) => Some(Cell::Text(clean_text(s))),
        (ColType::Text, other) => Some(Cell::Text(clean_text(&other.to_json()))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn num(text: &str) -> Json<'_> {
        crate::json::parse(text).unwrap_or(Json::Null)
    }

    fn text(s: &str) -> Json<'_> {
        Json::String(Cow::Borrowed(s))
    }

    #[test]
    fn first_values_fix_types() {
        assert_eq!(infer("a", &Json::Bool(true)), Some(ColType::Boolean));
        assert_eq!(infer("a", &num("3")), Some(ColType::Integer));
        assert_eq!(infer("a", &num("3.10")), Some(ColType::Decimal));
        assert_eq!(infer("revenue", &num("3")), Some(ColType::Decimal));
        assert_eq!(infer("a", &num("1e-60")), Some(ColType::Float));
        assert_eq!(infer("a", &num("1e400")), Some(ColType::Text));
        assert_eq!(
            infer("a", &text("2024-01-02T03:04:05Z")),
            Some(ColType::Timestamp)
        );
        assert_eq!(infer("a", &text("2024-01-02")), Some(ColType::Text));
        assert_eq!(infer("a", &num("[1, 2]")), Some(ColType::Text));
        assert_eq!(infer("a", &Json::Null), None);
    }

    #[test]
    fn later_values_fit_or_conflict() {
        assert_eq!(
            fit(ColType::Decimal, &num("3")),
            Some(Cell::Decimal("3".into()))
        );
        assert_eq!(
            fit(ColType::Decimal, &num("19.990")),
            Some(Cell::Decimal("19.990".into()))
        );
        assert_eq!(fit(ColType::Integer, &num("3.5")), None);
        assert_eq!(fit(ColType::Integer, &text("3")), None);
        assert_eq!(
            fit(ColType::Text, &num("3.5")),
            Some(Cell::Text("3.5".into()))
        );
        assert_eq!(
            fit(ColType::Timestamp, &text("2024-01-02T04:04:05+01:00")),
            Some(Cell::Timestamp("2024-01-02T03:04:05.000Z".into()))
        );
        assert_eq!(fit(ColType::Timestamp, &text("soon")), None);
        assert_eq!(
            fit(ColType::Timestamp, &text("2024-01-02T03:04:05.678Z")),
            Some(Cell::Timestamp("2024-01-02T03:04:05.678Z".into()))
        );
        assert_eq!(
            fit(ColType::Timestamp, &text("2024-01-02T03:04:05.6Z")),
            Some(Cell::Timestamp("2024-01-02T03:04:05.600Z".into()))
        );
        assert_eq!(
            fit(ColType::Timestamp, &text("2024-02-30T03:04:05.678Z")),
            None
        );
        assert_eq!(
            fit(ColType::Text, &text("a\u{0}b")),
            Some(Cell::Text("a\u{FFFD}b".into()))
        );
    }
}
