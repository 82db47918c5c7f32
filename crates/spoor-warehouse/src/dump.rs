//! A deterministic text rendering of the whole warehouse: every table, its columns in order and
//! its rows sorted by key, with values in a canonical form that is the same on SQLite and
//! PostgreSQL. Golden tests compare it with expected files; rebuild checks compare two dumps.

use crate::WarehouseError;
use crate::dialect::{Dialect, quote};
use crate::schema::INTERNAL_TABLES;
use crate::store::{Rows, Store};
use crate::value::ColType;

/// Renders rows as text: a header line, then one line per row, cells separated by ` | `,
/// NULL as `NULL`, newlines and tabs escaped.
pub fn render_rows(rows: &Rows) -> String {
    let mut out = rows.columns.join(" | ");
    out.push('\n');
    for row in &rows.rows {
        let cells: Vec<String> = row
            .iter()
            .map(|c| match c {
                None => "NULL".to_owned(),
                Some(text) => text
                    .replace('\\', "\\\\")
                    .replace('\n', "\\n")
                    .replace('\t', "\\t"),
            })
            .collect();
        out.push_str(&cells.join(" | "));
        out.push('\n');
    }
    out
}

fn select(dialect: Dialect, table: &str, columns: &[(String, ColType)], order: &[&str]) -> String {
    let cols: Vec<String> = columns
        .iter()
        .map(|(c, t)| format!("{} AS {}", dialect.render_column(c, *t), quote(c)))
        .collect();
    let order: Vec<String> = order
        .iter()
        .map(|c| {
            let ty = columns.iter().find(|(n, _)| n == c).map(|(_, t)| *t);
            if ty == Some(ColType::Text) {
                dialect.bytewise(&format!("{table}.{}", quote(c)))
            } else {
                format!("{table}.{}", quote(c))
            }
        })
        .collect();
    format!(
        "SELECT {} FROM {table} ORDER BY {}",
        cols.join(", "),
        order.join(", "),
        table = quote(table)
    )
}

/// Floats in one notation on both backends.
fn normalize_floats(rows: &mut Rows, columns: &[(String, ColType)]) {
    for (i, (_, ty)) in columns.iter().enumerate() {
        if *ty != ColType::Float {
            continue;
        }
        for row in &mut rows.rows {
            if let Some(Some(text)) = row.get_mut(i)
                && let Ok(f) = text.parse::<f64>()
            {
                *text = format!("{f:e}");
            }
        }
    }
}

/// Dumps every table of the warehouse (internal tables included).
pub async fn dump_all<S: Store>(store: &mut S) -> Result<String, WarehouseError> {
    let d = store.dialect();
    let schema = crate::loader::read_schema(store).await?;
    let mut out = String::new();
    for name in schema.table_names() {
        let Some(table) = schema.table(&name) else {
            continue;
        };
        let columns = table.columns().to_vec();
        let mut rows = store.query(&select(d, &name, &columns, &["id"])).await?;
        normalize_floats(&mut rows, &columns);
        out.push_str(&format!("== {name} ==\n{}\n", render_rows(&rows)));
    }
    for table in INTERNAL_TABLES {
        let columns: Vec<(String, ColType)> = table
            .columns
            .iter()
            .map(|(c, t)| ((*c).to_owned(), *t))
            .collect();
        let order: Vec<&str> = match table.name {
            "warehouse_columns" => vec!["table_name", "position"],
            _ => table.columns.iter().map(|(c, _)| *c).collect(),
        };
        let rows = store
            .query(&select(d, table.name, &columns, &order))
            .await?;
        out.push_str(&format!("== {} ==\n{}\n", table.name, render_rows(&rows)));
    }
    Ok(out)
}
