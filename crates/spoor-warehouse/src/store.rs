//! The backend trait: what the loader, reports and profiles need from a database. Two
//! implementations: [`crate::sqlite::SqliteStore`] and [`crate::postgres::PgStore`], and
//! [`AnyStore`] to pick one at run time.

use std::future::Future;

use crate::WarehouseError;
use crate::dialect::Dialect;
use crate::plan::Plan;

/// The text result of a query: column names and rows of optional text cells.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rows {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows; `None` is SQL NULL.
    pub rows: Vec<Vec<Option<String>>>,
}

/// A warehouse database.
pub trait Store: Send {
    /// The SQL dialect.
    fn dialect(&self) -> Dialect;

    /// Runs statements separated by `;` that return nothing.
    fn execute(&mut self, sql: &str) -> impl Future<Output = Result<(), WarehouseError>> + Send;

    /// Runs one query and returns its rows as text.
    fn query(&mut self, sql: &str) -> impl Future<Output = Result<Rows, WarehouseError>> + Send;

    /// Applies a plan in one transaction (see [`Plan`] for the order), or as part of the
    /// transaction a plan before it kept open ([`Plan::keep_open`]). On an error the whole
    /// open transaction is rolled back.
    fn apply(&mut self, plan: Plan) -> impl Future<Output = Result<(), WarehouseError>> + Send;

    /// Commits the transaction a plan kept open, if any.
    fn commit(&mut self) -> impl Future<Output = Result<(), WarehouseError>> + Send;

    /// Drops every warehouse table (for a rebuild).
    fn reset(&mut self) -> impl Future<Output = Result<(), WarehouseError>> + Send;
}

/// Either backend, chosen at run time (`--data DIR` or `--warehouse postgres://...`).
pub enum AnyStore {
    /// SQLite.
    Sqlite(crate::sqlite::SqliteStore),
    /// PostgreSQL.
    Postgres(crate::postgres::PgStore),
}

impl AnyStore {
    /// Opens a warehouse by location: a `postgres://` or `postgresql://` URL, or a path to a
    /// SQLite file.
    pub async fn open(location: &str) -> Result<AnyStore, WarehouseError> {
        if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            Ok(AnyStore::Postgres(
                crate::postgres::PgStore::connect(location).await?,
            ))
        } else {
            Ok(AnyStore::Sqlite(crate::sqlite::SqliteStore::open(
                std::path::Path::new(location),
            )?))
        }
    }
}

impl Store for AnyStore {
    fn dialect(&self) -> Dialect {
        match self {
            AnyStore::Sqlite(s) => s.dialect(),
            AnyStore::Postgres(s) => s.dialect(),
        }
    }

    async fn execute(&mut self, sql: &str) -> Result<(), WarehouseError> {
        match self {
            AnyStore::Sqlite(s) => s.execute(sql).await,
            AnyStore::Postgres(s) => s.execute(sql).await,
        }
    }

    async fn query(&mut self, sql: &str) -> Result<Rows, WarehouseError> {
        match self {
            AnyStore::Sqlite(s) => s.query(sql).await,
            AnyStore::Postgres(s) => s.query(sql).await,
        }
    }

    async fn apply(&mut self, plan: Plan) -> Result<(), WarehouseError> {
        match self {
            AnyStore::Sqlite(s) => s.apply(plan).await,
            AnyStore::Postgres(s) => s.apply(plan).await,
        }
    }

    async fn commit(&mut self) -> Result<(), WarehouseError> {
        match self {
            AnyStore::Sqlite(s) => s.commit().await,
            AnyStore::Postgres(s) => s.commit().await,
        }
    }

    async fn reset(&mut self) -> Result<(), WarehouseError> {
        match self {
            AnyStore::Sqlite(s) => s.reset().await,
            AnyStore::Postgres(s) => s.reset().await,
        }
    }
}
