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
use spoor_spec::naming::{flatten, snake_case};
use spoor_spec::{Message, MessageType};
use spoor_store::{LogEntry, LogSource};

use crate::WarehouseError;
use crate::dialect::{Dialect, quote, text_literal};
use crate::identity::{Effect, IdType, Identity};
use crate::naming::{data_column, event_table, sql_safe};
use crate::plan::{IdentityOp, Plan, TableRows};
use crate::schema::{
    INTERNAL_TABLES, MessageTable, Schema, TableKind, add_column_ddl, internal_ddl, reserved_names,
    table_ddl,
};
use crate::store::Store;
use crate::value::{Cell, ColType, actual_kind, fit, infer, normalize_timestamp};

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
        let mut planner = Planner::new(self.store.dialect(), &mut self.schema, &mut self.identity);
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
        let mut messages = Vec::with_capacity(entries.len());
        for entry in entries {
            match Message::from_slice(entry.body.as_bytes(), None) {
                Ok(msg) if msg.message_id().is_some() => messages.push((entry, msg)),
                Ok(_) => {
                    tracing::warn!(
                        seq = entry.seq,
                        "warehouse: message without messageId skipped"
                    );
                    stats.invalid += 1;
                }
                Err(err) => {
                    tracing::warn!(seq = entry.seq, error = %err, "warehouse: log entry skipped");
                    stats.invalid += 1;
                }
            }
        }
        let existing = self.existing_ids(&messages).await?;
        let mut seen: HashSet<(MessageTable, String)> = HashSet::new();
        let mut planner = Planner::new(self.store.dialect(), &mut self.schema, &mut self.identity);
        for (entry, msg) in &messages {
            let table = MessageTable::of(msg.kind());
            let id = msg.message_id().unwrap_or_default().to_owned();
            if existing.contains(&(table, id.clone())) || !seen.insert((table, id)) {
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
        messages: &[(&LogEntry, Message)],
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

/// The Monday (UTC) of the week of `time`, as `YYYY-MM-DD`.
fn monday_of(time: spoor_spec::Timestamp) -> String {
    const DAY_MS: i64 = 86_400_000;
    let days = time.unix_millis().div_euclid(DAY_MS);
    // 1970-01-01 was a Thursday: three days after a Monday.
    let monday = days - (days + 3).rem_euclid(7);
    let text = spoor_spec::Timestamp::from_unix_millis(monday.saturating_mul(DAY_MS)).to_string();
    text[..10].to_owned()
}

/// The fixed columns an event table row copies from its `tracks` row.
const SHARED_WITH_EVENT_TABLES: &[&str] = &[
    "id",
    "source_id",
    "anonymous_id",
    "user_id",
    "received_at",
    "sent_at",
    "timestamp",
    "original_timestamp",
    "event",
    "event_text",
];

/// Counts the planner keeps for the stats.
#[derive(Default)]
struct Planned {
    conflicts: u64,
    user_merges: u64,
}

/// Builds a [`Plan`] message by message, keeping the caches in step.
struct Planner<'a> {
    dialect: Dialect,
    schema: &'a mut Schema,
    identity: &'a mut Identity,
    ddl: Vec<String>,
    inserts: Vec<TableRows>,
    insert_index: HashMap<String, usize>,
    users: TableRows,
    accounts: TableRows,
    ops: Vec<IdentityOp>,
    event_days: HashMap<(String, String, String), i64>,
    event_days_order: Vec<(String, String, String)>,
    profile_days: TableRows,
    planned: Planned,
}

/// The time a message happened: `timestamp`, else `receivedAt`, normalized.
fn message_time(msg: &Message) -> Cell {
    msg.timestamp()
        .or(msg.received_at())
        .and_then(normalize_timestamp)
        .map_or(Cell::Null, Cell::Timestamp)
}

/// The `event` column: the event table's name (so `tracks.event` joins to it), or the plain
/// snake_case when the name makes no table.
fn event_slug(event: &str) -> String {
    event_table(event).unwrap_or_else(|| snake_case(event))
}

fn text(value: Option<&str>) -> Value {
    value.map_or(Value::Null, |s| Value::String(s.to_owned()))
}

impl<'a> Planner<'a> {
    fn new(dialect: Dialect, schema: &'a mut Schema, identity: &'a mut Identity) -> Planner<'a> {
        Planner {
            dialect,
            schema,
            identity,
            ddl: Vec::new(),
            inserts: Vec::new(),
            insert_index: HashMap::new(),
            users: TableRows::new("users"),
            accounts: TableRows::new("accounts"),
            ops: Vec::new(),
            event_days: HashMap::new(),
            event_days_order: Vec::new(),
            profile_days: TableRows::new("profile_days"),
            planned: Planned::default(),
        }
    }

    fn rows(&mut self, table: &str) -> &mut TableRows {
        let i = match self.insert_index.get(table) {
            Some(&i) => i,
            None => {
                self.insert_index
                    .insert(table.to_owned(), self.inserts.len());
                self.inserts.push(TableRows::new(table));
                self.inserts.len() - 1
            }
        };
        &mut self.inserts[i]
    }

    fn column_meta(&mut self, table: &str, column: &str, ty: ColType, position: usize) {
        self.rows("warehouse_columns").push(vec![
            ("table_name".into(), Cell::Text(table.to_owned())),
            ("column_name".into(), Cell::Text(column.to_owned())),
            ("column_type".into(), Cell::Text(ty.as_str().to_owned())),
            ("position".into(), Cell::Int(position as i64)),
        ]);
    }

    fn ensure_table(&mut self, name: &str, kind: TableKind) {
        if self.schema.table(name).is_some() {
            return;
        }
        self.ddl.extend(table_ddl(self.dialect, name, kind));
        let cols = self.schema.add_table(name, kind);
        for (position, (col, ty)) in cols.into_iter().enumerate() {
            self.column_meta(name, &col, ty, position);
        }
    }

    /// Converts named JSON values into cells of `table`, adding columns and recording
    /// conflicts as needed.
    fn cells(
        &mut self,
        table: &str,
        values: Vec<(String, Value)>,
        message_id: &str,
    ) -> Vec<(String, Cell)> {
        let mut out: Vec<(String, Cell)> = Vec::with_capacity(values.len());
        let mut used: HashSet<String> = HashSet::with_capacity(values.len());
        for (column, value) in values {
            if value.is_null() || !used.insert(column.clone()) {
                continue;
            }
            let existing = self.schema.table(table).and_then(|t| t.column(&column));
            let ty = match existing {
                Some(ty) => ty,
                None => {
                    let Some(ty) = infer(&column, &value) else {
                        continue;
                    };
                    let position = self.schema.add_column(table, &column, ty);
                    self.ddl
                        .push(add_column_ddl(self.dialect, table, &column, ty));
                    self.column_meta(table, &column, ty, position);
                    ty
                }
            };
            match fit(ty, &value) {
                Some(cell) => out.push((column, cell)),
                None => {
                    self.planned.conflicts += 1;
                    let raw = match &value {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    self.rows("type_conflicts").push(vec![
                        ("table_name".into(), Cell::Text(table.to_owned())),
                        ("column_name".into(), Cell::Text(column.clone())),
                        ("expected".into(), Cell::Text(ty.as_str().to_owned())),
                        ("actual".into(), Cell::Text(actual_kind(&value).to_owned())),
                        ("message_id".into(), Cell::Text(message_id.to_owned())),
                        ("value".into(), Cell::Text(crate::value::clean_text(&raw))),
                    ]);
                    out.push((column, Cell::Null));
                }
            }
        }
        out
    }

    fn common(msg: &Message, source_id: &str, profile: Option<&str>) -> Vec<(String, Value)> {
        let body = msg.body();
        let get = |k: &str| body.get(k).cloned().unwrap_or(Value::Null);
        let mut v = vec![
            ("id".to_owned(), text(msg.message_id())),
            ("source_id".to_owned(), Value::String(source_id.to_owned())),
            ("profile_id".to_owned(), text(profile)),
        ];
        v.extend([
            ("anonymous_id".to_owned(), get("anonymousId")),
            ("user_id".to_owned(), get("userId")),
            ("received_at".to_owned(), get("receivedAt")),
            ("sent_at".to_owned(), get("sentAt")),
            ("timestamp".to_owned(), get("timestamp")),
            ("original_timestamp".to_owned(), get("originalTimestamp")),
        ]);
        Planner::context(msg, &mut v);
        v
    }

    fn context(msg: &Message, out: &mut Vec<(String, Value)>) {
        if let Some(context) = msg.context() {
            for (name, value) in flatten("context", context) {
                out.push((sql_safe(&name), value.clone()));
            }
        }
    }

    fn data(
        object: Option<&serde_json::Map<String, Value>>,
        fixed: &[&str],
        out: &mut Vec<(String, Value)>,
    ) {
        if let Some(object) = object {
            for (name, value) in flatten("", object) {
                out.push((data_column(&name, fixed), value.clone()));
            }
        }
    }

    fn identity_effects(&mut self, msg: &Message, effects: Vec<Effect>) {
        let time = message_time(msg);
        let message_id = msg.message_id().unwrap_or_default().to_owned();
        for effect in effects {
            match effect {
                Effect::NewId {
                    id_type,
                    id,
                    profile,
                } => self.rows("profile_ids").push(vec![
                    ("id_type".into(), Cell::Text(id_type.as_str().to_owned())),
                    ("id".into(), Cell::Text(crate::value::clean_text(&id))),
                    (
                        "profile_id".into(),
                        Cell::Text(crate::value::clean_text(&profile)),
                    ),
                    ("first_seen".into(), time.clone()),
                ]),
                Effect::UserMerge {
                    kept,
                    merged,
                    user_id,
                    other_user_id,
                    allowed,
                } => {
                    self.planned.user_merges += 1;
                    tracing::warn!(
                        message_id = %message_id,
                        user_id = %user_id,
                        other_user_id = %other_user_id,
                        allowed,
                        "warehouse: a message links two different known users"
                    );
                    self.rows("identity_merges").push(vec![
                        ("message_id".into(), Cell::Text(message_id.clone())),
                        ("kept_profile_id".into(), Cell::Text(kept)),
                        ("merged_profile_id".into(), Cell::Text(merged)),
                        ("user_id".into(), Cell::Text(user_id)),
                        ("other_user_id".into(), Cell::Text(other_user_id)),
                        ("allowed".into(), Cell::Bool(allowed)),
                        ("timestamp".into(), time.clone()),
                    ]);
                }
                Effect::Repoint { from, to } => self.ops.push(IdentityOp::Repoint { from, to }),
            }
        }
    }

    fn set_traits(&mut self, profile: &str, msg: &Message) {
        let Some(traits) = msg.traits() else {
            return;
        };
        let time = message_time(msg);
        if !matches!(self.ops.last(), Some(IdentityOp::SetTraits(_))) {
            self.ops
                .push(IdentityOp::SetTraits(TableRows::new("profile_traits")));
        }
        let Some(IdentityOp::SetTraits(rows)) = self.ops.last_mut() else {
            return;
        };
        for (name, value) in traits {
            if value.is_null() {
                continue;
            }
            let value = match value {
                Value::String(s) => Value::String(crate::value::clean_text(s)),
                other => other.clone(),
            };
            rows.merge(
                &format!("{profile}\u{0}{name}"),
                vec![
                    ("profile_id".into(), Cell::Text(profile.to_owned())),
                    ("trait".into(), Cell::Text(crate::value::clean_text(name))),
                    (
                        "value".into(),
                        Cell::Text(crate::value::clean_text(&value.to_string())),
                    ),
                    ("set_at".into(), time.clone()),
                ],
            );
        }
    }

    /// Plans one message (not yet loaded).
    fn message(&mut self, source_id: &str, msg: &Message) {
        let message_id = msg.message_id().unwrap_or_default().to_owned();
        let user = msg.user_id();
        let other = match msg.kind() {
            MessageType::Alias => msg
                .previous_id()
                .map(|p| (self.identity.previous_id_type(p), p)),
            _ => msg.anonymous_id().map(|a| (IdType::AnonymousId, a)),
        };
        let mut effects = Vec::new();
        let profile = self.identity.observe(user, other, &mut effects);
        self.identity_effects(msg, effects);

        let table = MessageTable::of(msg.kind());
        let kind = TableKind::Message(table);
        let fixed = reserved_names(kind);
        let mut values = Planner::common(msg, source_id, profile.as_deref());
        match msg.kind() {
            MessageType::Identify => Planner::data(msg.traits(), &fixed, &mut values),
            MessageType::Group => {
                values.push(("group_id".into(), text(msg.group_id())));
                Planner::data(msg.traits(), &fixed, &mut values);
            }
            MessageType::Alias => values.push(("previous_id".into(), text(msg.previous_id()))),
            MessageType::Page | MessageType::Screen => {
                values.push(("name".into(), text(msg.name())));
                Planner::data(msg.properties(), &fixed, &mut values);
            }
            MessageType::Track => {
                let event = msg.event().unwrap_or_default();
                values.push(("event".into(), Value::String(event_slug(event))));
                values.push(("event_text".into(), Value::String(event.to_owned())));
            }
        }
        let cells = self.cells(table.name(), values, &message_id);
        // The event table shares the fixed columns with `tracks` (same names, same types):
        // reuse their cells rather than converting the same values twice. A value of a fixed
        // column that does not fit is recorded once, for `tracks`.
        let shared: Vec<(String, Cell)> = if msg.kind() == MessageType::Track {
            cells
                .iter()
                .filter(|(c, _)| SHARED_WITH_EVENT_TABLES.contains(&c.as_str()))
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        self.rows(table.name()).push(cells);
        self.rollup(msg, source_id, profile.as_deref());

        match msg.kind() {
            MessageType::Track => {
                let event = msg.event().unwrap_or_default();
                if let Some(name) = event_table(event) {
                    self.ensure_table(&name, TableKind::Event);
                    let fixed = reserved_names(TableKind::Event);
                    let mut values = Vec::new();
                    Planner::context(msg, &mut values);
                    Planner::data(msg.properties(), &fixed, &mut values);
                    let mut cells = shared;
                    cells.extend(self.cells(&name, values, &message_id));
                    self.rows(&name).push(cells);
                }
            }
            MessageType::Identify => {
                if let Some(profile) = &profile {
                    self.set_traits(profile, msg);
                }
                if let Some(user) = user {
                    self.latest("users", user, source_id, msg, &message_id);
                }
            }
            MessageType::Group => {
                if let Some(group) = msg.group_id() {
                    self.latest("accounts", group, source_id, msg, &message_id);
                }
            }
            _ => {}
        }
    }

    /// Counts a track in `event_days` and marks its profile active that day in `profile_days`
    /// (tracks, pages and screens).
    fn rollup(&mut self, msg: &Message, source_id: &str, profile: Option<&str>) {
        if !matches!(
            msg.kind(),
            MessageType::Track | MessageType::Page | MessageType::Screen
        ) {
            return;
        }
        let Some(time) = msg
            .timestamp()
            .and_then(|t| spoor_spec::Timestamp::parse(t).ok())
        else {
            return;
        };
        let day = time.to_string()[..10].to_owned();
        let week = monday_of(time);
        if let Some(profile) = profile {
            let profile = crate::value::clean_text(profile);
            self.profile_days.merge(
                &format!("{day}\u{0}{profile}\u{0}{source_id}"),
                vec![
                    ("day".into(), Cell::Text(day.clone())),
                    ("profile_id".into(), Cell::Text(profile)),
                    ("source_id".into(), Cell::Text(source_id.to_owned())),
                    ("week".into(), Cell::Text(week)),
                ],
            );
        }
        if let (MessageType::Track, Some(event)) = (msg.kind(), msg.event()) {
            let key = (day, source_id.to_owned(), crate::value::clean_text(event));
            let count = self.event_days.entry(key.clone()).or_insert(0);
            if *count == 0 {
                self.event_days_order.push(key);
            }
            *count += 1;
        }
    }

    fn latest(&mut self, table: &str, key: &str, source_id: &str, msg: &Message, mid: &str) {
        let fixed = reserved_names(TableKind::Latest);
        let mut values = vec![
            ("id".to_owned(), Value::String(key.to_owned())),
            ("source_id".to_owned(), Value::String(source_id.to_owned())),
            ("received_at".to_owned(), text(msg.received_at())),
        ];
        Planner::data(msg.traits(), &fixed, &mut values);
        let cells = self.cells(table, values, mid);
        let rows = if table == "users" {
            &mut self.users
        } else {
            &mut self.accounts
        };
        rows.merge(key, cells);
    }

    fn finish(self, checkpoint: i64) -> (Plan, Planned) {
        let mut inserts: Vec<TableRows> = self.inserts.into_iter().map(TableRows::padded).collect();
        // Column metadata first: it names what the rest of the plan writes.
        inserts.sort_by_key(|t| t.table != "warehouse_columns");
        let upserts = [self.users, self.accounts]
            .into_iter()
            .filter(|t| !t.is_empty())
            .map(TableRows::padded)
            .collect();
        let identity = self
            .ops
            .into_iter()
            .map(|op| match op {
                IdentityOp::SetTraits(rows) => IdentityOp::SetTraits(rows.padded()),
                other => other,
            })
            .collect();
        let mut event_days = TableRows::new("event_days");
        for key in self.event_days_order {
            let count = self.event_days.get(&key).copied().unwrap_or(0);
            let (day, source, event) = key;
            event_days.push(vec![
                ("day".into(), Cell::Text(day)),
                ("source_id".into(), Cell::Text(source)),
                ("event_text".into(), Cell::Text(event)),
                ("events".into(), Cell::Int(count)),
            ]);
        }
        let rollups = [event_days, self.profile_days]
            .into_iter()
            .filter(|t| !t.is_empty())
            .map(TableRows::padded)
            .collect();
        let plan = Plan {
            ddl: self.ddl,
            inserts,
            upserts,
            rollups,
            identity,
            profile_tables: MessageTable::ALL
                .iter()
                .map(|t| t.name().to_owned())
                .collect(),
            checkpoint,
        };
        (plan, self.planned)
    }
}

#[cfg(test)]
mod tests {
    use super::monday_of;
    use spoor_spec::Timestamp;

    #[test]
    fn weeks_start_on_monday() {
        let monday =
            |t: &str| monday_of(Timestamp::parse(t).unwrap_or(Timestamp::from_unix_millis(0)));
        assert_eq!(monday("2024-01-01T00:00:00Z"), "2024-01-01");
        assert_eq!(monday("2024-01-07T23:59:59.999Z"), "2024-01-01");
        assert_eq!(monday("2024-01-08T00:00:00Z"), "2024-01-08");
        assert_eq!(monday("1970-01-01T12:00:00Z"), "1969-12-29");
        assert_eq!(monday("1969-12-28T12:00:00Z"), "1969-12-22");
    }
}
