//! `spoor query`: read-only SQL against the collector's store.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{Map, Value};
use spoor_store::{Cell, QueryResult, StoreError};

use crate::Global;
use crate::exit::{self, Exit};
use crate::output;

/// Output formats of `spoor query`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An aligned text table.
    Table,
    /// A JSON array of row objects.
    Json,
    /// RFC 4180 CSV with a header.
    Csv,
}

/// Run read-only SQL against the collector's store.
///
/// `messages` (every accepted message: source_id, message_id, type, user_id, anonymous_id,
/// event, timestamp, received_at and the normalized JSON body) and `discards` (rejected
/// messages with their reasons) are in events.db; the warehouse tables, when built, are
/// reachable by plain names too. SQLite's JSON functions work on the bodies.
///
/// Examples:
///   spoor query "SELECT type, event, user_id, received_at FROM messages ORDER BY seq DESC LIMIT 10"
///   spoor query "SELECT code, reasons FROM discards" --format json
///   spoor query "SELECT body ->> '$.properties.revenue' AS revenue FROM messages WHERE event = 'Order Completed'"
#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// One SQL statement (read-only).
    pub sql: String,
    /// The collector's data directory.
    #[arg(
        long,
        env = "SPOOR_DATA",
        value_name = "DIR",
        default_value = "./spoor-data"
    )]
    pub data: PathBuf,
    /// Output format [default: table, or json with --json].
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Query a PostgreSQL warehouse (`spoor serve --warehouse URL`) instead of the data
    /// directory, in a read-only transaction. Values come back as PostgreSQL's text.
    #[arg(long, env = "SPOOR_WAREHOUSE", value_name = "URL")]
    pub warehouse: Option<String>,
}

fn text(cell: &Cell, null: &str) -> String {
    match cell {
        Cell::Null => null.to_owned(),
        Cell::Integer(n) => n.to_string(),
        Cell::Real(x) => x.to_string(),
        Cell::Text(t) => t.clone(),
        Cell::Blob(b) => spoor_store::secret::to_hex(b),
    }
}

fn json_value(cell: &Cell) -> Value {
    match cell {
        Cell::Null => Value::Null,
        Cell::Integer(n) => Value::from(*n),
        Cell::Real(x) => serde_json::Number::from_f64(*x)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Cell::Text(t) => Value::String(t.clone()),
        Cell::Blob(b) => Value::String(spoor_store::secret::to_hex(b)),
    }
}

/// Runs `spoor query`.
pub async fn run(args: QueryArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let format = args.format.unwrap_or(if global.json {
        Format::Json
    } else {
        Format::Table
    });
    if let Some(url) = &args.warehouse {
        let rows = crate::cmd::warehouse::query_postgres(url, &args.sql).await?;
        let result = QueryResult {
            columns: rows.columns,
            rows: rows
                .rows
                .into_iter()
                .map(|r| {
                    r.into_iter()
                        .map(|c| c.map_or(Cell::Null, Cell::Text))
                        .collect()
                })
                .collect(),
        };
        return print_result(&result, format);
    }
    let data = args.data.clone();
    let sql = args.sql.clone();
    let result = tokio::task::spawn_blocking(move || {
        spoor_store::run_query_with(&data, &sql, spoor_warehouse::sqlite::register_functions)
    })
    .await?
    .map_err(|err| match err {
        StoreError::NotFound { .. } => Exit::not_found(format!(
            "{err}: no collector data there yet (start one with `spoor serve --data {}`)",
            args.data.display()
        )),
        StoreError::Invalid { .. } => Exit::bad_input(err.to_string()),
        other => anyhow::Error::new(other),
    })?;
    print_result(&result, format)
}

fn print_result(result: &QueryResult, format: Format) -> anyhow::Result<ExitCode> {
    match format {
        Format::Json => {
            let rows = result
                .rows
                .iter()
                .map(|row| {
                    let mut object = Map::new();
                    for (column, cell) in result.columns.iter().zip(row) {
                        object.insert(column.clone(), json_value(cell));
                    }
                    Value::Object(object)
                })
                .collect();
            output::print_json(&Value::Array(rows));
        }
        Format::Table => {
            let rows: Vec<Vec<String>> = result
                .rows
                .iter()
                .map(|row| row.iter().map(|c| text(c, "NULL")).collect())
                .collect();
            print!("{}", output::table(&result.columns, &rows));
        }
        Format::Csv => {
            let rows: Vec<Vec<String>> = result
                .rows
                .iter()
                .map(|row| row.iter().map(|c| text(c, "")).collect())
                .collect();
            print!("{}", output::csv(&result.columns, &rows));
        }
    }
    Ok(exit::SUCCESS)
}
