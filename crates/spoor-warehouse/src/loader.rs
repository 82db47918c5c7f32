//! The loader: reads the message log after its checkpoint and derives Segment's tables.
//!
//! Each batch is planned in memory (schema changes, rows, identity changes; see
//! [`crate::plan`]) and applied in one transaction together with the new checkpoint, so a
//! message's rows exist exactly once whatever happens: a crash before the commit leaves the old
//! checkpoint and no rows, a crash after leaves both. Messages whose `messageId` is already
//! loaded (a duplicate in the log) are skipped, so loading twice gives one row.
//!
//! On any error the in-memory schema and identity caches are reloaded from the database, since
//! the transaction that would have matched them was rolled back.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value;
use spoor_store::{LogEntry, LogSource};

use crate::WarehouseError;
use crate::dialect::{quote, text_literal};
use crate::identity::{IdType, Identity};
use crate::json::Json;
use crate::planner::{Msg, PlanCache, Planner};
use crate::schema::{INTERNAL_TABLES, MessageTable, Schema, TableKind, internal_ddl};
use crate::store::Store;
use crate::value::ColType;

/// Loader settings.
#[derive(Clone, Debug)]
pub struct LoaderOptions {
    /// Messages per transaction.
    pub batch_size: usize,
    /// Whether a merge joining two different known user ids is made (it is always recorded).
    pub allow_user_merge: bool,
}

impl Default for LoaderOptions {
    fn default() -> LoaderOptions {
        LoaderOptions {
            batch_size: 2000,
            allow_user_merge: false,
        }
    }
}

/// What a load did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadStats {
    /// Messages loaded.
    pub loaded: u64,
    /// Messages skipped because their `messageId` was already loaded.
    pub duplicates: u64,
    /// Log entries that are not messages (or have no `messageId`), skipped.
    pub invalid: u64,
    /// Values recorded in `type_conflicts`.
    pub conflicts: u64,
    /// User-user merges met (made or not).
    pub user_merges: u64,
}

impl LoadStats {
    fn add(&mut self, other: LoadStats) {
        self.loaded += other.loaded;
        self.duplicates += other.duplicates;
        self.invalid += other.invalid;
        self.conflicts += other.conflicts;
        self.user_merges += other.user_merges;
    }
}

/// Loads the log into one warehouse.
pub struct Loader<S: Store> {
    store: S,
    schema: Schema,
    identity: Identity,
    cache: PlanCache,
    checkpoint: i64,
    options: LoaderOptions,
}

impl<S: Store> Loader<S> {
    /// Opens the warehouse: creates the internal and core tables when missing and loads the
    /// schema, identity graph and checkpoint.
    pub async fn open(store: S, options: LoaderOptions) -> Result<Loader<S>, WarehouseError> {
        let mut loader = Loader {
            store,
            schema: Schema::default(),
            identity: Identity::new(options.allow_user_merge),
            cache: PlanCache::default(),
            checkpoint: 0,
            options,
        };
        loader.init().await?;
        Ok(loader)
    }

    async fn init(&mut self) -> Result<(), WarehouseError> {
        let dialect = self.store.dialect();
        let ddl: Vec<String> = INTERNAL_TABLES
            .iter()
            .flat_map(|t| internal_ddl(dialect, t))
            .collect();
        self.store.execute(&ddl.join(";\n")).await?;
        self.reload().await?;
        let mut planner = Planner::new(
            self.store.dialect(),
            &mut self.schema,
            &mut self.identity,
            &mut self.cache,
        );
        for table in MessageTable::ALL {
            planner.ensure_table(table.name(), TableKind::Message(table));
        }
        planner.ensure_table("users", TableKind::Latest);
        planner.ensure_table("accounts", TableKind::Latest);
        let (plan, _) = planner.finish(self.checkpoint);
        if !plan.ddl.is_empty() {
            self.store.apply(plan).await?;
        }
        Ok(())
    }

    /// Reloads the caches from the database.
    async fn reload(&mut self) -> Result<(), WarehouseError> {
        self.schema = read_schema(&mut self.store).await?;
        self.cache = PlanCache::default();
        let mut identity = Identity::new(self.options.allow_user_merge);
        let rows = self
            .store
            .query("SELECT id_type, id, profile_id FROM profile_ids")
            .await?;
        for row in rows.rows {
            if let [Some(t), Some(id), Some(p)] = row.as_slice()
                && let Some(t) = IdType::from_name(t)
            {
                identity.load(t, id.clone(), p.clone());
            }
        }
        self.identity = identity;
        let rows = self
            .store
            .query("SELECT value FROM warehouse_state WHERE key = 'checkpoint'")
            .await?;
        self.checkpoint = match rows.rows.first().and_then(|r| r.first()).cloned().flatten() {
            Some(text) => text.parse().map_err(|_| WarehouseError::Corrupt {
                what: format!("warehouse_state: checkpoint {text:?} is not a number"),
            })?,
            None => 0,
        };
        Ok(())
    }

    /// The last log position loaded.
    pub fn checkpoint(&self) -> i64 {
        self.checkpoint
    }

    /// The schema cache.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The store.
    pub fn store(&mut self) -> &mut S {
        &mut self.store
    }

    /// Loads entries (which must come after the checkpoint, in order) in one transaction.
    pub async fn load(&mut self, entries: &[LogEntry]) -> Result<LoadStats, WarehouseError> {
        let Some(last) = entries.last() else {
            return Ok(LoadStats::default());
        };
        let last_seq = last.seq;
        let result = self.load_inner(entries, last_seq).await;
        if result.is_err() {
            // The transaction rolled back: make the caches match the database again.
            if let Err(err) = self.reload().await {
                tracing::warn!(error = %err, "warehouse: reloading the schema cache failed");
            }
        }
        result
    }

    async fn load_inner(
        &mut self,
        entries: &[LogEntry],
        last_seq: i64,
    ) -> Result<LoadStats, WarehouseError> {
        let mut stats = LoadStats::default();
        // Parse every entry into a tree borrowed from it; the few the fast parser declines
        // are parsed by serde_json, and their trees borrow from `slow`.
        let mut fast: Vec<Option<Json<'_>>> = Vec::with_capacity(entries.len());
        let mut slow: Vec<Option<Value>> = Vec::new();
        for entry in entries {
            let json = crate::json::parse(&entry.body);
            if json.is_none() {
                slow.push(serde_json::from_str(&entry.body).ok());
            }
            fast.push(json);
        }
        let mut slow_values = slow.iter();
        let mut messages: Vec<(&LogEntry, Msg<'_>)> = Vec::with_capacity(entries.len());
        for (entry, json) in entries.iter().zip(fast) {
            let json = match json {
                Some(json) => Some(json),
                None => slow_values.next().and_then(Option::as_ref).map(Json::from_value),
            };
            match json.and_then(Msg::new) {
                Some(msg) if msg.message_id().is_some() => messages.push((entry, msg)),
                Some(_) => {
                    tracing::warn!(
                        seq = entry.seq,
                        "warehouse: message without messageId skipped"
                    );
                    stats.invalid += 1;
                }
                None => {
                    let error = spoor_spec::Message::from_slice(entry.body.as_bytes(), None)
                        .err()
                        .map(|e| e.to_string())
                        .unwrap_or_default();
                    tracing::warn!(seq = entry.seq, error = %error, "warehouse: log entry skipped");
                    stats.invalid += 1;
                }
            }
        }
        let existing = self.existing_ids(&messages).await?;
        let mut seen: HashSet<(MessageTable, &str)> = HashSet::new();
        let mut planner = Planner::new(
            self.store.dialect(),
            &mut self.schema,
            &mut self.identity,
            &mut self.cache,
        );
        for (entry, msg) in &messages {
            let table = MessageTable::of(msg.kind());
            let id = msg.message_id().unwrap_or_default();
            if existing.contains(&(table, id.to_owned())) || !seen.insert((table, id)) {
                stats.duplicates += 1;
                continue;
            }
            planner.message(&entry.source_id, msg);
            stats.loaded += 1;
        }
        let (plan, planned) = planner.finish(last_seq);
        stats.conflicts = planned.conflicts;
        stats.user_merges = planned.user_merges;
        self.store.apply(plan).await?;
        self.checkpoint = last_seq;
        Ok(stats)
    }

    async fn existing_ids(
        &mut self,
        messages: &[(&LogEntry, Msg<'_>)],
    ) -> Result<HashSet<(MessageTable, String)>, WarehouseError> {
        let mut by_table: HashMap<MessageTable, Vec<&str>> = HashMap::new();
        for (_, msg) in messages {
            if let Some(id) = msg.message_id() {
                by_table
                    .entry(MessageTable::of(msg.kind()))
                    .or_default()
                    .push(id);
            }
        }
        let mut out = HashSet::new();
        for (table, ids) in by_table {
            for chunk in ids.chunks(1000) {
                let list: Vec<String> = chunk.iter().map(|id| text_literal(id)).collect();
                let sql = format!(
                    "SELECT id FROM {} WHERE id IN ({})",
                    quote(table.name()),
                    list.join(", ")
                );
                for row in self.store.query(&sql).await?.rows {
                    if let Some(Some(id)) = row.into_iter().next() {
                        out.insert((table, id));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Loads everything in `log` after the checkpoint, batch by batch.
    pub async fn catch_up<L>(&mut self, log: &Arc<L>) -> Result<LoadStats, WarehouseError>
    where
        L: LogSource + 'static,
    {
        let mut total = LoadStats::default();
        loop {
            let after = self.checkpoint;
            let limit = self.options.batch_size.max(1);
            let reader = Arc::clone(log);
            let entries = tokio::task::spawn_blocking(move || reader.read_after(after, limit))
                .await
                .map_err(|err| WarehouseError::Log {
                    reason: err.to_string(),
                })?
                .map_err(|err| WarehouseError::Log {
                    reason: err.to_string(),
                })?;
            if entries.is_empty() {
                return Ok(total);
            }
            let stats = self.load(&entries).await?;
            total.add(stats);
            if entries.len() < limit {
                return Ok(total);
            }
        }
    }

    /// Drops every warehouse table and creates the empty ones again (checkpoint 0).
    pub async fn reset(&mut self) -> Result<(), WarehouseError> {
        self.store.reset().await?;
        self.init().await
    }

    /// Drops every warehouse table and loads the whole log again.
    pub async fn rebuild<L>(&mut self, log: &Arc<L>) -> Result<LoadStats, WarehouseError>
    where
        L: LogSource + 'static,
    {
        self.reset().await?;
        self.catch_up(log).await
    }
}

/// Reads the schema recorded in `warehouse_columns`.
pub async fn read_schema<S: Store>(store: &mut S) -> Result<Schema, WarehouseError> {
    let rows = store
        .query(
            "SELECT table_name, column_name, column_type FROM warehouse_columns \
             ORDER BY table_name, position",
        )
        .await?;
    let mut columns = Vec::new();
    for row in rows.rows {
        if let [Some(t), Some(c), Some(ty)] = row.as_slice() {
            let ty = ColType::from_name(ty).ok_or_else(|| WarehouseError::Corrupt {
                what: format!("warehouse_columns: unknown type {ty:?} for {t}.{c}"),
            })?;
            columns.push((t.clone(), c.clone(), ty));
        }
    }
    Ok(Schema::from_rows(columns))
}
