//! The PostgreSQL backend, through tokio-postgres (no TLS: the warehouse is expected on a
//! trusted network or a local socket).
//!
//! The warehouse lives in one schema, `spoor` unless the URL says otherwise with a
//! `schema=NAME` query parameter (spoor removes it before connecting), and the session's
//! `search_path` points at it, so every table has its plain name as on SQLite. Sessions run in
//! UTC with ISO dates and standard conforming strings, and with 64 MB of `work_mem` so report
//! aggregations over millions of rows stay in memory.
//!
//! Rows are loaded with `COPY ... FROM STDIN` (text format); `users`, `accounts` and traits
//! are upserted with multi-row `INSERT ... ON CONFLICT`. Queries use the simple protocol, so
//! every value comes back as PostgreSQL's own text.

use bytes::Bytes;
use futures_util::SinkExt;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use crate::WarehouseError;
use crate::dialect::{Dialect, quote};
use crate::plan::{
    IdentityOp, Plan, TRAITS_TAIL, TableRows, checkpoint_sql, insert_head, repoint_sql,
    rollup_tail, upsert_tail,
};
use crate::store::{Rows, Store};
use crate::value::Cell;

/// A PostgreSQL warehouse.
pub struct PgStore {
    client: Client,
    schema: String,
}

/// Splits `schema=NAME` out of a URL's query string.
fn split_schema(url: &str) -> Result<(String, String), WarehouseError> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), "spoor".to_owned()));
    };
    let mut schema = "spoor".to_owned();
    let mut rest = Vec::new();
    for pair in query.split('&') {
        match pair.strip_prefix("schema=") {
            Some(name) => schema = name.to_owned(),
            None if !pair.is_empty() => rest.push(pair),
            None => {}
        }
    }
    if schema.is_empty()
        || !schema
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(WarehouseError::Config {
            reason: format!("schema={schema:?}: a schema name is letters, digits and '_' only"),
        });
    }
    let url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((url, schema))
}

fn copy_escape(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
}

fn copy_cell(cell: &Cell, out: &mut String) {
    match cell {
        Cell::Null => out.push_str("\\N"),
        Cell::Int(i) => out.push_str(&i.to_string()),
        Cell::Float(f) => out.push_str(&f.to_string()),
        Cell::Bool(b) => out.push(if *b { 't' } else { 'f' }),
        Cell::Decimal(s) | Cell::Timestamp(s) | Cell::Text(s) => copy_escape(s, out),
    }
}

impl PgStore {
    /// Connects and selects (creating when missing) the warehouse schema.
    pub async fn connect(url: &str) -> Result<PgStore, WarehouseError> {
        let (url, schema) = split_schema(url)?;
        let (client, connection) = tokio_postgres::connect(&url, NoTls).await?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::warn!(error = %err, "warehouse: PostgreSQL connection ended");
            }
        });
        let store = PgStore { client, schema };
        store.session().await?;
        Ok(store)
    }

    /// The schema this store uses.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    async fn session(&self) -> Result<(), WarehouseError> {
        let s = quote(&self.schema);
        self.client
            .batch_execute(&format!(
                "SET client_min_messages = warning; CREATE SCHEMA IF NOT EXISTS {s}; \
                 SET search_path TO {s}; SET TIME ZONE 'UTC'; SET DateStyle = 'ISO, YMD'; \
                 SET standard_conforming_strings = on; SET IntervalStyle = 'postgres'; \
                 SET work_mem = '64MB'"
            ))
            .await?;
        Ok(())
    }

    /// Drops the whole schema (tests use a fresh schema per run).
    pub async fn drop_schema(&self) -> Result<(), WarehouseError> {
        self.client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {} CASCADE",
                quote(&self.schema)
            ))
            .await?;
        Ok(())
    }
}

async fn copy_rows(
    tx: &tokio_postgres::Transaction<'_>,
    rows: &TableRows,
) -> Result<(), WarehouseError> {
    if rows.rows.is_empty() {
        return Ok(());
    }
    let cols: Vec<String> = rows.columns.iter().map(|c| quote(c)).collect();
    let sql = format!(
        "COPY {} ({}) FROM STDIN",
        quote(&rows.table),
        cols.join(", ")
    );
    let sink = tx.copy_in::<_, Bytes>(sql.as_str()).await?;
    futures_util::pin_mut!(sink);
    let mut buf = String::with_capacity(1 << 20);
    for row in &rows.rows {
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                buf.push('\t');
            }
            copy_cell(cell, &mut buf);
        }
        buf.push('\n');
        if buf.len() >= 1 << 20 {
            sink.send(Bytes::from(std::mem::take(&mut buf))).await?;
        }
    }
    if !buf.is_empty() {
        sink.send(Bytes::from(buf)).await?;
    }
    sink.finish().await?;
    Ok(())
}

async fn upsert_rows(
    tx: &tokio_postgres::Transaction<'_>,
    rows: &TableRows,
    tail: &str,
) -> Result<(), WarehouseError> {
    let head = insert_head(&rows.table, &rows.columns);
    for chunk in rows.rows.chunks(1000) {
        let values: Vec<String> = chunk
            .iter()
            .map(|row| {
                let cells: Vec<String> = row.iter().map(|c| Dialect::Postgres.literal(c)).collect();
                format!("({})", cells.join(", "))
            })
            .collect();
        tx.batch_execute(&format!("{head} VALUES {}{tail}", values.join(", ")))
            .await?;
    }
    Ok(())
}

impl Store for PgStore {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn execute(&mut self, sql: &str) -> Result<(), WarehouseError> {
        self.client.batch_execute(sql).await?;
        Ok(())
    }

    async fn query(&mut self, sql: &str) -> Result<Rows, WarehouseError> {
        let messages = self.client.simple_query(sql).await?;
        let mut out = Rows::default();
        for message in messages {
            match message {
                SimpleQueryMessage::RowDescription(cols) if out.columns.is_empty() => {
                    out.columns = cols.iter().map(|c| c.name().to_owned()).collect();
                }
                SimpleQueryMessage::Row(row) => {
                    if out.columns.is_empty() {
                        out.columns = row.columns().iter().map(|c| c.name().to_owned()).collect();
                    }
                    out.rows.push(
                        (0..row.len())
                            .map(|i| row.get(i).map(str::to_owned))
                            .collect(),
                    );
                }
                _ => {}
            }
        }
        Ok(out)
    }

    async fn apply(&mut self, plan: Plan) -> Result<(), WarehouseError> {
        let tx = self.client.transaction().await?;
        for (table, ids) in &plan.fresh {
            let sql = format!(
                "SELECT id FROM {} WHERE id = ANY($1) LIMIT 1",
                crate::dialect::quote(table)
            );
            if let Some(row) = tx.query_opt(&sql, &[ids]).await? {
                return Err(WarehouseError::AlreadyLoaded {
                    table: table.clone(),
                    id: row.try_get(0)?,
                });
            }
        }
        if !plan.ddl.is_empty() {
            tx.batch_execute(&plan.ddl.join(";\n")).await?;
        }
        for rows in &plan.inserts {
            copy_rows(&tx, rows).await?;
        }
        for rows in &plan.upserts {
            upsert_rows(&tx, rows, &upsert_tail(&rows.table, &rows.columns)).await?;
        }
        for rows in &plan.rollups {
            upsert_rows(&tx, rows, rollup_tail(&rows.table)).await?;
        }
        for op in &plan.identity {
            match op {
                IdentityOp::SetTraits(rows) => upsert_rows(&tx, rows, TRAITS_TAIL).await?,
                IdentityOp::Repoint { from, to } => {
                    tx.batch_execute(&repoint_sql(&plan.profile_tables, from, to).join(";\n"))
                        .await?;
                }
            }
        }
        tx.batch_execute(&checkpoint_sql(plan.checkpoint)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn commit(&mut self) -> Result<(), WarehouseError> {
        // `apply` commits every plan.
        Ok(())
    }

    async fn reset(&mut self) -> Result<(), WarehouseError> {
        self.drop_schema().await?;
        self.session().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_parameter_is_split_out() {
        let (url, schema) =
            split_schema("postgres://h/db?schema=s1&sslmode=disable").unwrap_or_default();
        assert_eq!(url, "postgres://h/db?sslmode=disable");
        assert_eq!(schema, "s1");
        assert!(split_schema("postgres://h/db?schema=a;b").is_err());
    }
}
