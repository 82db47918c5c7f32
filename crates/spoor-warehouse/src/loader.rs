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
use std::time::{Duration, Instant};

use serde_json::Value;
use spoor_store::{LogEntry, LogSource};

use crate::WarehouseError;
use crate::dialect::{quote, text_literal};
use crate::identity::{IdType, Identity};
use crate::json::Json;
use crate::plan::Plan;
use crate::planner::{Msg, PlanCache, Planner};
use crate::schema::{INTERNAL_TABLES, MessageTable, Schema, TableKind, internal_ddl, upgrade_ddl};
use crate::store::Store;
use crate::value::ColType;

/// Loader settings.
#[derive(Clone, Debug)]
pub struct LoaderOptions {
    /// Messages per batch: read, planned and held in memory together (two batches at once in
    /// [`Loader::catch_up`]'s pipeline), and one transaction when the loader is caught up.
    pub batch_size: usize,
    /// Messages per transaction at most while [`Loader::catch_up`] is behind the log (its
    /// batches then share transactions); not above `batch_size` means one batch per
    /// transaction.
    pub max_transaction: usize,
    /// Whether a merge joining two different known user ids is made (it is always recorded).
    pub allow_user_merge: bool,
}

impl Default for LoaderOptions {
    fn default() -> LoaderOptions {
        LoaderOptions {
            batch_size: 1000,
            max_transaction: 50_000,
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

/// What planning reads and changes: the schema, the identity graph and the planner's name
/// cache. They always describe the database plus the batches planned and not yet committed;
/// after a failed commit they are reloaded from the database.
#[derive(Default)]
struct Caches {
    schema: Schema,
    identity: Identity,
    names: PlanCache,
}

/// A batch planned and waiting to be applied.
struct PlannedBatch {
    /// The read filled the batch: the loader is behind.
    full: bool,
    entries: Vec<LogEntry>,
    plan: Plan,
    stats: LoadStats,
    last_seq: i64,
}

/// A transaction that [`Loader::catch_up`] keeps open across batches.
struct OpenTransaction {
    /// Messages read into it.
    messages: usize,
    /// When its first batch was written.
    since: Instant,
    /// The checkpoint its last batch wrote.
    last_seq: i64,
    /// What each of its batches did (with the checkpoint after it), counted when it commits.
    stats: Vec<(i64, LoadStats)>,
}

/// How long [`Loader::catch_up`] keeps a transaction open at most, so that a loader behind
/// the log still makes messages queryable within a second or two.
pub const MAX_TRANSACTION_AGE: Duration = Duration::from_millis(1000);

/// Reads the log on a blocking thread.
async fn read_log<L>(
    log: &Arc<L>,
    after: i64,
    limit: usize,
) -> Result<Vec<LogEntry>, WarehouseError>
where
    L: LogSource + 'static,
{
    let reader = Arc::clone(log);
    tokio::task::spawn_blocking(move || reader.read_after(after, limit))
        .await
        .map_err(|err| WarehouseError::Task {
            reason: err.to_string(),
        })?
        .map_err(|err| WarehouseError::Log {
            reason: err.to_string(),
        })
}

/// Loads the log into one warehouse.
pub struct Loader<S: Store> {
    store: S,
    caches: Caches,
    checkpoint: i64,
    options: LoaderOptions,
}

impl<S: Store> Loader<S> {
    /// Opens the warehouse: creates the internal and core tables when missing and loads the
    /// schema, identity graph and checkpoint.
    pub async fn open(store: S, options: LoaderOptions) -> Result<Loader<S>, WarehouseError> {
        let mut loader = Loader {
            store,
            caches: Caches::default(),
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
        let caches = &mut self.caches;
        let mut planner = Planner::new(
            dialect,
            &mut caches.schema,
            &mut caches.identity,
            &mut caches.names,
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
        self.store.execute(&upgrade_ddl().join(";\n")).await?;
        Ok(())
    }

    /// Reloads the caches and the checkpoint from the database.
    async fn reload(&mut self) -> Result<(), WarehouseError> {
        let schema = read_schema(&mut self.store).await?;
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
        identity.loaded();
        self.caches = Caches {
            schema,
            identity,
            names: PlanCache::default(),
        };
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

    /// Reloads after a failed commit, logging (not returning) a failure to reload.
    async fn reload_after_error(&mut self) {
        if let Err(err) = self.reload().await {
            tracing::warn!(error = %err, "warehouse: reloading the schema cache failed");
        }
    }

    /// The last log position loaded.
    pub fn checkpoint(&self) -> i64 {
        self.checkpoint
    }

    /// The schema cache.
    pub fn schema(&self) -> &Schema {
        &self.caches.schema
    }

    /// The store.
    pub fn store(&mut self) -> &mut S {
        &mut self.store
    }

    /// Loads entries (which must come after the checkpoint, in order) in one transaction,
    /// skipping messages whose `messageId` is already loaded.
    pub async fn load(&mut self, entries: &[LogEntry]) -> Result<LoadStats, WarehouseError> {
        let Some(last) = entries.last() else {
            return Ok(LoadStats::default());
        };
        let last_seq = last.seq;
        let result = self.load_inner(entries, last_seq).await;
        if result.is_err() {
            // The transaction rolled back: make the caches match the database again.
            self.reload_after_error().await;
        }
        result
    }

    async fn load_inner(
        &mut self,
        entries: &[LogEntry],
        last_seq: i64,
    ) -> Result<LoadStats, WarehouseError> {
        let ids = with_messages(entries, |messages, _| {
            let mut by_table: HashMap<MessageTable, Vec<String>> = HashMap::new();
            for (_, msg) in &messages {
                if let Some(id) = msg.message_id() {
                    by_table
                        .entry(MessageTable::of(msg.kind()))
                        .or_default()
                        .push(id.to_owned());
                }
            }
            by_table
        });
        let existing = self.existing_ids(ids).await?;
        let dialect = self.store.dialect();
        let (plan, stats) = plan_batch(
            dialect,
            &mut self.caches,
            entries,
            last_seq,
            Some(&existing),
        );
        self.store.apply(plan).await?;
        self.checkpoint = last_seq;
        Ok(stats)
    }

    async fn existing_ids(
        &mut self,
        ids: HashMap<MessageTable, Vec<String>>,
    ) -> Result<HashSet<(MessageTable, String)>, WarehouseError> {
        let mut out = HashSet::new();
        for (table, ids) in ids {
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

    /// Loads everything in `log` after the checkpoint, batch by batch, as a pipeline: batch
    /// N+1 is read and planned on a blocking thread while batch N is written.
    ///
    /// While the loader is behind (each read fills its batch), consecutive batches share one
    /// transaction ([`Plan::keep_open`]), up to [`LoaderOptions::max_transaction`] messages
    /// or [`MAX_TRANSACTION_AGE`]: a large transaction writes each index page it touches once
    /// for many messages, while the batches, which are what the loader holds in memory, stay
    /// small. A batch that does not fill up (the loader has caught up) commits at once. Every
    /// batch writes the checkpoint after it, so a transaction commits its rows together with
    /// the checkpoint after its last batch.
    ///
    /// A pipelined batch is planned before the previous one is written, so it cannot ask
    /// the database which of its messages are loaded. It is planned as if none were (the
    /// usual case: the log after the checkpoint holds new messages, and the collector drops
    /// repeated `messageId`s), and its plan lists its ids as [`Plan::fresh`]: the backend
    /// checks them in the transaction and refuses the plan when one is loaded, rolling the
    /// transaction back. The loader then reloads its caches (the next batch's planning is
    /// dropped) and loads the log again from the committed checkpoint to the end of that
    /// batch with [`Loader::load`], which skips what is loaded.
    pub async fn catch_up<L>(&mut self, log: &Arc<L>) -> Result<LoadStats, WarehouseError>
    where
        L: LogSource + 'static,
    {
        self.catch_up_with_progress(log, |_| {}).await
    }

    /// [`Loader::catch_up`], calling `progress` with the checkpoint after every commit.
    pub async fn catch_up_with_progress<L, P>(
        &mut self,
        log: &Arc<L>,
        mut progress: P,
    ) -> Result<LoadStats, WarehouseError>
    where
        L: LogSource + 'static,
        P: FnMut(i64) + Send,
    {
        let mut total = LoadStats::default();
        let limit = self.options.batch_size.max(1);
        let dialect = self.store.dialect();
        let mut after = self.checkpoint;
        let mut more = true;
        let mut pending: Option<PlannedBatch> = None;
        let mut open: Option<OpenTransaction> = None;
        loop {
            if pending.is_none() && !more {
                if let Some(done) = open.take() {
                    self.commit_open(done, &mut total).await?;
                    progress(self.checkpoint);
                }
                return Ok(total);
            }
            // Read and plan the next batch on a blocking thread, with the caches moved there.
            let planning = more.then(|| {
                let mut caches = std::mem::take(&mut self.caches);
                let reader = Arc::clone(log);
                tokio::task::spawn_blocking(move || {
                    let planned = match reader.read_after(after, limit) {
                        Ok(entries) => Ok(entries.last().map(|last| last.seq).map(|last_seq| {
                            let (plan, stats) =
                                plan_batch(dialect, &mut caches, &entries, last_seq, None);
                            PlannedBatch {
                                full: entries.len() >= limit,
                                entries,
                                plan,
                                stats,
                                last_seq,
                            }
                        })),
                        Err(err) => Err(WarehouseError::Log {
                            reason: err.to_string(),
                        }),
                    };
                    (caches, planned)
                })
            });
            // Meanwhile, write the batch planned before: into the open transaction, kept open
            // while the loader is behind.
            let applied = match pending.take() {
                Some(mut batch) => {
                    let (messages, since) = open
                        .as_ref()
                        .map_or((0, Instant::now()), |o| (o.messages, o.since));
                    let messages = messages + batch.entries.len();
                    batch.plan.keep_open = batch.full
                        && messages < self.options.max_transaction
                        && since.elapsed() < MAX_TRANSACTION_AGE;
                    let keep_open = batch.plan.keep_open;
                    let plan = std::mem::take(&mut batch.plan);
                    let result = self.store.apply(plan).await;
                    Some((result, batch, messages, since, keep_open))
                }
                None => None,
            };
            let planned = match planning {
                Some(task) => match task.await {
                    Ok((caches, planned)) => {
                        self.caches = caches;
                        Some(planned)
                    }
                    Err(err) => Some(Err(WarehouseError::Task {
                        reason: err.to_string(),
                    })),
                },
                None => None,
            };
            if let Some((result, batch, messages, since, keep_open)) = applied {
                match result {
                    Ok(()) => {
                        let mut stats = open.take().map(|o| o.stats).unwrap_or_default();
                        stats.push((batch.last_seq, batch.stats));
                        if keep_open {
                            open = Some(OpenTransaction {
                                messages,
                                since,
                                last_seq: batch.last_seq,
                                stats,
                            });
                        } else {
                            self.checkpoint = batch.last_seq;
                            stats.iter().for_each(|(_, s)| total.add(*s));
                            progress(self.checkpoint);
                        }
                    }
                    Err(WarehouseError::AlreadyLoaded { .. }) => {
                        // Some message of the batch is loaded already (the log holds it
                        // twice), and the transaction rolled back, with the batches before
                        // this one that shared it. Load them again the careful way. The
                        // reload drops what the next batch's planning did to the caches.
                        let rolled_back = open.take().map(|o| o.stats).unwrap_or_default();
                        self.reload().await?;
                        // A backend that commits every plan kept some of them.
                        rolled_back
                            .iter()
                            .filter(|(seq, _)| *seq <= self.checkpoint)
                            .for_each(|(_, s)| total.add(*s));
                        while self.checkpoint < batch.last_seq {
                            let entries = read_log(log, self.checkpoint, limit).await?;
                            if entries.is_empty() {
                                break;
                            }
                            total.add(self.load(&entries).await?);
                            progress(self.checkpoint);
                        }
                        after = self.checkpoint;
                        more = true;
                        continue;
                    }
                    Err(err) => {
                        self.reload_after_error().await;
                        return Err(err);
                    }
                }
            }
            match planned {
                None => {}
                Some(Ok(None)) => more = false,
                Some(Ok(Some(batch))) => {
                    after = batch.last_seq;
                    more = batch.full;
                    pending = Some(batch);
                }
                Some(Err(err)) => {
                    // A failed read changed nothing; a lost planning task took the caches.
                    // What is written is consistent: commit it.
                    if let Some(done) = open.take() {
                        self.commit_open(done, &mut total).await?;
                    }
                    if matches!(err, WarehouseError::Task { .. }) {
                        self.reload_after_error().await;
                    }
                    return Err(err);
                }
            }
        }
    }

    /// Commits the transaction batches kept open.
    async fn commit_open(
        &mut self,
        done: OpenTransaction,
        total: &mut LoadStats,
    ) -> Result<(), WarehouseError> {
        if let Err(err) = self.store.commit().await {
            self.reload_after_error().await;
            return Err(err);
        }
        self.checkpoint = done.last_seq;
        done.stats.iter().for_each(|(_, s)| total.add(*s));
        Ok(())
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

/// Parses entries into messages borrowed from them and hands them to `f` with the number of
/// entries that are not messages (each logged). The fast parser takes nearly every entry; the
/// few it declines are parsed by serde_json, and their trees borrow from its values.
fn with_messages<R>(
    entries: &[LogEntry],
    f: impl FnOnce(Vec<(&LogEntry, Msg<'_>)>, u64) -> R,
) -> R {
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
    let mut invalid = 0;
    let mut messages: Vec<(&LogEntry, Msg<'_>)> = Vec::with_capacity(entries.len());
    for (entry, json) in entries.iter().zip(fast) {
        let json = match json {
            Some(json) => Some(json),
            None => slow_values
                .next()
                .and_then(Option::as_ref)
                .map(Json::from_value),
        };
        match json.and_then(Msg::new) {
            Some(msg) if msg.message_id().is_some() => messages.push((entry, msg)),
            Some(_) => {
                tracing::warn!(
                    seq = entry.seq,
                    "warehouse: message without messageId skipped"
                );
                invalid += 1;
            }
            None => {
                let error = spoor_spec::Message::from_slice(entry.body.as_bytes(), None)
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                tracing::warn!(seq = entry.seq, error = %error, "warehouse: log entry skipped");
                invalid += 1;
            }
        }
    }
    f(messages, invalid)
}

/// Plans one batch. With `existing` (the ids already loaded), those messages are skipped;
/// without it, every message is taken as new and the plan lists the ids as
/// [`Plan::fresh`] for the backend to check.
fn plan_batch(
    dialect: crate::dialect::Dialect,
    caches: &mut Caches,
    entries: &[LogEntry],
    last_seq: i64,
    existing: Option<&HashSet<(MessageTable, String)>>,
) -> (Plan, LoadStats) {
    with_messages(entries, |messages, invalid| {
        let mut stats = LoadStats {
            invalid,
            ..LoadStats::default()
        };
        let mut seen: HashSet<(MessageTable, &str)> = HashSet::with_capacity(messages.len());
        let mut fresh: HashMap<MessageTable, Vec<String>> = HashMap::new();
        let mut planner = Planner::new(
            dialect,
            &mut caches.schema,
            &mut caches.identity,
            &mut caches.names,
        );
        for (entry, msg) in &messages {
            let table = MessageTable::of(msg.kind());
            let id = msg.message_id().unwrap_or_default();
            let loaded = existing.is_some_and(|e| e.contains(&(table, id.to_owned())));
            if loaded || !seen.insert((table, id)) {
                stats.duplicates += 1;
                continue;
            }
            if existing.is_none() {
                fresh.entry(table).or_default().push(id.to_owned());
            }
            planner.message(&entry.source_id, msg);
            stats.loaded += 1;
        }
        let (mut plan, planned) = planner.finish(last_seq);
        plan.fresh = MessageTable::ALL
            .iter()
            .filter_map(|t| fresh.remove(t).map(|ids| (t.name().to_owned(), ids)))
            .collect();
        stats.conflicts = planned.conflicts;
        stats.user_merges = planned.user_merges;
        (plan, stats)
    })
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
