//! The planner: turns one batch of parsed messages into a [`Plan`], keeping the schema and
//! identity caches in step.
//!
//! Per message it resolves the profile, flattens `context`, `properties` or `traits` into
//! columns, types each value (adding columns and recording conflicts), and adds the rows of
//! the message table, the event table, `users`/`accounts`, the identity tables and the
//! rollups.
//!
//! It is built to allocate little per message, since the loader has to keep up with the
//! collector:
//! - messages are [`Json`] trees borrowed from the log entries ([`crate::json`]);
//! - a [`PlanCache`], kept by the loader across batches, remembers what every raw key path
//!   becomes (snake_case, flattening, SQL-safe and reserved-name rules) as a name node, and for
//!   every table which schema position and type each name node has, so a known column costs
//!   two hash lookups and no string work;
//! - message and event table rows are built sparse (schema position, cell) and made dense
//!   over the columns the batch uses at [`Planner::finish`].

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use spoor_spec::MessageType;
use spoor_spec::naming::{snake_case, snake_case_cow};

use crate::dialect::Dialect;
use crate::identity::{Effect, IdType, Identity};
use crate::json::{Json, Object};
use crate::naming::{data_column, event_table, sql_safe};
use crate::plan::{IdentityOp, Plan, TableRows};
use crate::schema::{MessageTable, Schema, TableKind, add_column_ddl, reserved_names, table_ddl};
use crate::value::{Cell, ColType, actual_kind, clean_text, fit, infer, normalize_timestamp};

/// A hasher for small integer keys the loader makes itself (name node ids, day numbers).
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_i64(&mut self, n: i64) {
        self.write_u64(n as u64);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// A message parsed for the loader: its type and its body.
#[derive(Clone, Debug)]
pub struct Msg<'a> {
    kind: MessageType,
    body: Object<'a>,
}

impl<'a> Msg<'a> {
    /// A message from a parsed log entry: an object whose `type` is a known message type (what
    /// `spoor_spec::Message::from_slice` accepts without an implied type); `None` otherwise.
    pub fn new(json: Json<'a>) -> Option<Msg<'a>> {
        let Json::Object(body) = json else {
            return None;
        };
        let kind = MessageType::from_wire(body.get("type")?.as_str()?)?;
        Some(Msg { kind, body })
    }

    /// The message type.
    pub fn kind(&self) -> MessageType {
        self.kind
    }

    fn get(&self, key: &str) -> &Json<'a> {
        self.body.get(key).unwrap_or(&Json::Null)
    }

    fn str_field(&self, key: &str) -> Option<&str> {
        self.body.get(key).and_then(Json::as_str)
    }

    fn object(&self, key: &str) -> Option<&Object<'a>> {
        self.body.get(key).and_then(Json::as_object)
    }

    /// `messageId`, when a string.
    pub fn message_id(&self) -> Option<&str> {
        self.str_field("messageId")
    }

    fn timestamp(&self) -> Option<&str> {
        self.str_field("timestamp")
    }

    fn received_at(&self) -> Option<&str> {
        self.str_field("receivedAt")
    }

    fn event(&self) -> Option<&str> {
        self.str_field("event")
    }

    fn traits(&self) -> Option<&Object<'a>> {
        self.object("traits")
    }

    fn properties(&self) -> Option<&Object<'a>> {
        self.object("properties")
    }
}

/// The fixed columns the planner fills itself; their name nodes are `0..FIXED.len()`.
const FIXED: [&str; 14] = [
    "id",
    "source_id",
    "profile_id",
    "anonymous_id",
    "user_id",
    "received_at",
    "sent_at",
    "timestamp",
    "original_timestamp",
    "event",
    "event_text",
    "name",
    "group_id",
    "previous_id",
];
const F_ID: u32 = 0;
const F_SOURCE_ID: u32 = 1;
const F_PROFILE_ID: u32 = 2;
const F_EVENT: u32 = 9;
const F_EVENT_TEXT: u32 = 10;
const F_NAME: u32 = 11;
const F_GROUP_ID: u32 = 12;
const F_PREVIOUS_ID: u32 = 13;

/// The fixed columns of a message taken from the body as sent: (name node, body key).
const FROM_BODY: [(u32, &str); 6] = [
    (3, "anonymousId"),
    (4, "userId"),
    (5, "receivedAt"),
    (6, "sentAt"),
    (7, "timestamp"),
    (8, "originalTimestamp"),
];

/// The fixed columns an event table row copies from its `tracks` row (everything but
/// `profile_id`).
fn shared_with_event_tables(node: u32) -> bool {
    node < FIXED.len() as u32 && node != F_PROFILE_ID && node <= F_EVENT_TEXT
}

/// Name nodes kept before the cache starts over (a bound on memory for logs with endless
/// distinct keys).
const MAX_NAME_NODES: usize = 200_000;

/// Which naming rules a flattened key path follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Domain {
    /// The fixed columns (names as they are).
    Fixed,
    /// `context`, flattened with the `context_` prefix.
    Context,
    /// Traits or properties of a table of this kind (its reserved names get a `_`).
    Data(TableKind),
}

/// What one raw key path becomes.
struct NameNode {
    domain: Domain,
    /// The flattened snake_case path (without the SQL rules); `None` when the key's snake case
    /// is empty, so the key and everything under it is skipped.
    flat: Option<String>,
    /// The column name in its domain.
    column: String,
    /// The children by raw key.
    children: HashMap<String, u32>,
}

/// A column of one table: schema position and type.
#[derive(Clone, Copy, Debug)]
struct Slot {
    pos: u32,
    ty: ColType,
}

/// The names of one event: its table (if any) and the `tracks.event` slug.
struct EventNames {
    table: Option<String>,
    slug: String,
}

/// What the planner remembers across batches. It must be dropped whenever the schema cache
/// is reloaded, since its positions come from the schema.
pub struct PlanCache {
    nodes: Vec<NameNode>,
    roots: HashMap<Domain, u32>,
    /// Per table: the columns of its name nodes. A message's cells go to one or two tables,
    /// one after the other, so the table of the last lookup is tried first (a comparison of
    /// names instead of hashing the table's name for every cell).
    slots: Vec<(String, IdMap<u32, Slot>)>,
    slot_tables: HashMap<String, usize>,
    last_slots: usize,
    events: HashMap<String, EventNames>,
}

impl Default for PlanCache {
    fn default() -> PlanCache {
        let mut cache = PlanCache {
            nodes: Vec::new(),
            roots: HashMap::new(),
            slots: Vec::new(),
            slot_tables: HashMap::new(),
            last_slots: 0,
            events: HashMap::new(),
        };
        for name in FIXED {
            cache.nodes.push(NameNode {
                domain: Domain::Fixed,
                flat: Some(name.to_owned()),
                column: name.to_owned(),
                children: HashMap::new(),
            });
        }
        cache
    }
}

impl PlanCache {
    /// Starts over when the cache has grown past its bound.
    fn trim(&mut self) {
        if self.nodes.len() > MAX_NAME_NODES || self.events.len() > MAX_NAME_NODES {
            *self = PlanCache::default();
        }
    }

    fn root(&mut self, domain: Domain) -> u32 {
        if let Some(&id) = self.roots.get(&domain) {
            return id;
        }
        let flat = match domain {
            Domain::Context => "context",
            _ => "",
        };
        let id = self.push(domain, Some(flat.to_owned()), String::new());
        self.roots.insert(domain, id);
        id
    }

    fn push(&mut self, domain: Domain, flat: Option<String>, column: String) -> u32 {
        let id = self.nodes.len() as u32;
        self.nodes.push(NameNode {
            domain,
            flat,
            column,
            children: HashMap::new(),
        });
        id
    }

    /// The node of `key` under `parent`, or `None` when the key is skipped.
    fn child(&mut self, parent: u32, key: &str) -> Option<u32> {
        let node = self.nodes.get(parent as usize)?;
        if let Some(&id) = node.children.get(key) {
            return self.nodes.get(id as usize)?.flat.is_some().then_some(id);
        }
        let domain = node.domain;
        let snake = snake_case_cow(key);
        let flat = match (&node.flat, snake.is_empty()) {
            (_, true) | (None, _) => None,
            (Some(prefix), false) if prefix.is_empty() => Some(snake.into_owned()),
            (Some(prefix), false) => Some(format!("{prefix}_{snake}")),
        };
        let column = match (&flat, domain) {
            (None, _) => String::new(),
            (Some(flat), Domain::Data(kind)) => data_column(flat, &reserved_names(kind)),
            (Some(flat), _) => sql_safe(flat),
        };
        let skipped = flat.is_none();
        let id = self.push(domain, flat, column);
        self.nodes
            .get_mut(parent as usize)?
            .children
            .insert(key.to_owned(), id);
        (!skipped).then_some(id)
    }

    /// Flattens `object` under `root` into leaf (name node, value) pairs, as
    /// `spoor_spec::naming::flatten` does.
    fn flatten<'j, 'a>(
        &mut self,
        root: u32,
        object: &'j Object<'a>,
        out: &mut Vec<(u32, &'j Json<'a>)>,
    ) {
        for (key, value) in object.iter() {
            let Some(node) = self.child(root, key) else {
                continue;
            };
            match value {
                Json::Object(inner) => self.flatten(node, inner, out),
                leaf => out.push((node, leaf)),
            }
        }
    }

    /// The index in `slots` of `table`'s columns, added when missing.
    fn slots_of(&mut self, table: &str) -> usize {
        if self
            .slots
            .get(self.last_slots)
            .is_some_and(|(name, _)| name == table)
        {
            return self.last_slots;
        }
        let i = match self.slot_tables.get(table) {
            Some(&i) => i,
            None => {
                self.slot_tables.insert(table.to_owned(), self.slots.len());
                self.slots.push((table.to_owned(), IdMap::default()));
                self.slots.len() - 1
            }
        };
        self.last_slots = i;
        i
    }

    fn event(&mut self, event: &str) -> &EventNames {
        if !self.events.contains_key(event) {
            let table = event_table(event);
            let slug = table.clone().unwrap_or_else(|| snake_case(event));
            self.events
                .insert(event.to_owned(), EventNames { table, slug });
        }
        &self.events[event]
    }
}

/// Counts the planner keeps for the stats.
#[derive(Default)]
pub struct Planned {
    /// Values recorded in `type_conflicts`.
    pub conflicts: u64,
    /// User-user merges met.
    pub user_merges: u64,
}

/// One message or event table's rows in this batch, sparse: (schema position, cell).
struct SparseRows {
    table: String,
    rows: Vec<Vec<(u32, Cell)>>,
}

/// The columns of an internal table's rows.
const WAREHOUSE_COLUMNS: &[&str] = &["table_name", "column_name", "column_type", "position"];
const TYPE_CONFLICTS: &[&str] = &[
    "table_name",
    "column_name",
    "expected",
    "actual",
    "message_id",
    "value",
];
const PROFILE_IDS: &[&str] = &["id_type", "id", "profile_id", "first_seen"];
const IDENTITY_MERGES: &[&str] = &[
    "message_id",
    "kept_profile_id",
    "merged_profile_id",
    "user_id",
    "other_user_id",
    "allowed",
    "timestamp",
];
const PROFILE_DAYS: &[&str] = &["day", "profile_id", "source_id", "week"];
const PROFILE_TRAITS: &[&str] = &["profile_id", "trait", "value", "set_at"];

/// Builds a [`Plan`] message by message, keeping the caches in step.
pub struct Planner<'a> {
    dialect: Dialect,
    schema: &'a mut Schema,
    identity: &'a mut Identity,
    cache: &'a mut PlanCache,
    ddl: Vec<String>,
    /// Internal tables, in the order they first get a row.
    internal: Vec<TableRows>,
    /// Message and event tables, in the order they first get a row.
    sparse: Vec<SparseRows>,
    sparse_index: HashMap<String, usize>,
    users: TableRows,
    accounts: TableRows,
    ops: Vec<IdentityOp>,
    event_days: HashMap<(String, String, String), i64>,
    event_days_order: Vec<(String, String, String)>,
    profile_days: TableRows,
    profile_days_seen: HashSet<(i64, String, String)>,
    days: IdMap<i64, (String, String)>,
    planned: Planned,
    /// A scratch buffer, reused from message to message.
    shared: Vec<(u32, Cell)>,
}

/// The time a message happened: `timestamp`, else `receivedAt`, normalized.
fn message_time(msg: &Msg<'_>) -> Cell {
    msg.timestamp()
        .or(msg.received_at())
        .and_then(normalize_timestamp)
        .map_or(Cell::Null, Cell::Timestamp)
}

/// A string field as a value (`null` when absent).
fn text<'j>(value: Option<&'j str>) -> Json<'j> {
    value.map_or(Json::Null, |s| Json::String(s.into()))
}

/// The Monday (UTC) of the week of day number `days` (since 1970-01-01), as `YYYY-MM-DD`.
fn monday_of(days: i64) -> String {
    const DAY_MS: i64 = 86_400_000;
    // 1970-01-01 was a Thursday: three days after a Monday.
    let monday = days - (days + 3).rem_euclid(7);
    let text = spoor_spec::Timestamp::from_unix_millis(monday.saturating_mul(DAY_MS)).to_string();
    text[..10].to_owned()
}

impl<'a> Planner<'a> {
    /// A planner for one batch.
    pub fn new(
        dialect: Dialect,
        schema: &'a mut Schema,
        identity: &'a mut Identity,
        cache: &'a mut PlanCache,
    ) -> Planner<'a> {
        cache.trim();
        Planner {
            dialect,
            schema,
            identity,
            cache,
            ddl: Vec::new(),
            internal: Vec::new(),
            sparse: Vec::new(),
            sparse_index: HashMap::new(),
            users: TableRows::new("users"),
            accounts: TableRows::new("accounts"),
            ops: Vec::new(),
            event_days: HashMap::new(),
            event_days_order: Vec::new(),
            profile_days: TableRows::with_columns("profile_days", PROFILE_DAYS),
            profile_days_seen: HashSet::new(),
            days: IdMap::default(),
            planned: Planned::default(),
            shared: Vec::new(),
        }
    }

    /// The rows of an internal table.
    fn internal(&mut self, table: &str, columns: &[&str]) -> &mut TableRows {
        let i = match self.internal.iter().position(|t| t.table == table) {
            Some(i) => i,
            None => {
                self.internal.push(TableRows::with_columns(table, columns));
                self.internal.len() - 1
            }
        };
        &mut self.internal[i]
    }

    fn sparse(&mut self, table: &str) -> &mut SparseRows {
        let i = match self.sparse_index.get(table) {
            Some(&i) => i,
            None => {
                self.sparse_index
                    .insert(table.to_owned(), self.sparse.len());
                self.sparse.push(SparseRows {
                    table: table.to_owned(),
                    rows: Vec::new(),
                });
                self.sparse.len() - 1
            }
        };
        &mut self.sparse[i]
    }

    fn column_meta(&mut self, table: &str, column: &str, ty: ColType, position: usize) {
        self.internal("warehouse_columns", WAREHOUSE_COLUMNS)
            .push_row(vec![
                Cell::Text(table.to_owned()),
                Cell::Text(column.to_owned()),
                Cell::Text(ty.as_str().to_owned()),
                Cell::Int(position as i64),
            ]);
    }

    /// Creates a table (DDL, schema, column metadata) unless it exists.
    pub fn ensure_table(&mut self, name: &str, kind: TableKind) {
        if self.schema.table(name).is_some() {
            return;
        }
        self.ddl.extend(table_ddl(self.dialect, name, kind));
        let cols = self.schema.add_table(name, kind);
        for (position, (col, ty)) in cols.into_iter().enumerate() {
            self.column_meta(name, &col, ty, position);
        }
    }

    /// The column of name node `node` in `table`, created (typed by `value`) when missing.
    fn slot(&mut self, table: &str, node: u32, value: &Json<'_>) -> Option<Slot> {
        let columns = self.cache.slots_of(table);
        if let Some(slot) = self
            .cache
            .slots
            .get(columns)
            .and_then(|(_, s)| s.get(&node))
        {
            return Some(*slot);
        }
        let column = &self.cache.nodes.get(node as usize)?.column;
        let slot = match self.schema.table(table).and_then(|t| t.slot(column)) {
            Some((pos, ty)) => Slot {
                pos: pos as u32,
                ty,
            },
            None => {
                let ty = infer(column, value)?;
                let column = column.clone();
                let position = self.schema.add_column(table, &column, ty);
                self.ddl
                    .push(add_column_ddl(self.dialect, table, &column, ty));
                self.column_meta(table, &column, ty, position);
                Slot {
                    pos: position as u32,
                    ty,
                }
            }
        };
        if let Some((_, slots)) = self.cache.slots.get_mut(columns) {
            slots.insert(node, slot);
        }
        Some(slot)
    }

    /// Types `value` for column `node` of `table` and adds it to `row` (the first value of a
    /// column wins; nulls are skipped); records a type conflict when it does not fit.
    fn put(
        &mut self,
        table: &str,
        node: u32,
        value: &Json<'_>,
        message_id: &str,
        row: &mut Vec<(u32, Cell)>,
    ) -> Option<Cell> {
        if value.is_null() {
            return None;
        }
        let slot = self.slot(table, node, value)?;
        if row.iter().any(|(p, _)| *p == slot.pos) {
            return None;
        }
        let cell = match fit(slot.ty, value) {
            Some(cell) => cell,
            None => {
                self.planned.conflicts += 1;
                let raw = match value {
                    Json::String(s) => s.to_string(),
                    other => other.to_json(),
                };
                let column = self
                    .cache
                    .nodes
                    .get(node as usize)
                    .map(|n| n.column.clone())
                    .unwrap_or_default();
                self.internal("type_conflicts", TYPE_CONFLICTS)
                    .push_row(vec![
                        Cell::Text(table.to_owned()),
                        Cell::Text(column),
                        Cell::Text(slot.ty.as_str().to_owned()),
                        Cell::Text(actual_kind(value).to_owned()),
                        Cell::Text(message_id.to_owned()),
                        Cell::Text(clean_text(&raw)),
                    ]);
                Cell::Null
            }
        };
        row.push((slot.pos, cell.clone()));
        Some(cell)
    }

    /// Adds the flattened leaves of `object` (context or data) to `row`.
    fn put_object(
        &mut self,
        table: &str,
        domain: Domain,
        object: Option<&Object<'_>>,
        message_id: &str,
        row: &mut Vec<(u32, Cell)>,
    ) {
        let Some(object) = object else {
            return;
        };
        let root = self.cache.root(domain);
        let mut leaves = Vec::new();
        self.cache.flatten(root, object, &mut leaves);
        for (node, value) in leaves {
            self.put(table, node, value, message_id, row);
        }
    }

    fn identity_effects(&mut self, msg: &Msg<'_>, effects: Vec<Effect>) {
        if effects.is_empty() {
            return;
        }
        let time = message_time(msg);
        let message_id = msg.message_id().unwrap_or_default().to_owned();
        for effect in effects {
            match effect {
                Effect::NewId {
                    id_type,
                    id,
                    profile,
                } => self.internal("profile_ids", PROFILE_IDS).push_row(vec![
                    Cell::Text(id_type.as_str().to_owned()),
                    Cell::Text(clean_text(&id)),
                    Cell::Text(clean_text(&profile)),
                    time.clone(),
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
                    self.internal("identity_merges", IDENTITY_MERGES)
                        .push_row(vec![
                            Cell::Text(message_id.clone()),
                            Cell::Text(kept),
                            Cell::Text(merged),
                            Cell::Text(user_id),
                            Cell::Text(other_user_id),
                            Cell::Bool(allowed),
                            time.clone(),
                        ]);
                }
                Effect::Repoint { from, to } => self.ops.push(IdentityOp::Repoint { from, to }),
            }
        }
    }

    fn set_traits(&mut self, profile: &str, msg: &Msg<'_>) {
        let Some(traits) = msg.traits() else {
            return;
        };
        let time = message_time(msg);
        if !matches!(self.ops.last(), Some(IdentityOp::SetTraits(_))) {
            self.ops.push(IdentityOp::SetTraits(TableRows::with_columns(
                "profile_traits",
                PROFILE_TRAITS,
            )));
        }
        let Some(IdentityOp::SetTraits(rows)) = self.ops.last_mut() else {
            return;
        };
        for (name, value) in traits.iter() {
            if value.is_null() {
                continue;
            }
            let rendered = match value {
                Json::String(s) => serde_json::to_string(&clean_text(s)).unwrap_or_default(),
                other => other.to_json(),
            };
            rows.merge(
                &format!("{profile}\u{0}{name}"),
                vec![
                    ("profile_id".into(), Cell::Text(profile.to_owned())),
                    ("trait".into(), Cell::Text(clean_text(name))),
                    ("value".into(), Cell::Text(clean_text(&rendered))),
                    ("set_at".into(), time.clone()),
                ],
            );
        }
    }

    /// Plans one message (not yet loaded).
    pub fn message(&mut self, source_id: &str, msg: &Msg<'_>) {
        let message_id = msg.message_id().unwrap_or_default();
        let user = msg.str_field("userId");
        let other = match msg.kind() {
            MessageType::Alias => msg
                .str_field("previousId")
                .map(|p| (self.identity.previous_id_type(p), p)),
            _ => msg
                .str_field("anonymousId")
                .map(|a| (IdType::AnonymousId, a)),
        };
        let mut effects = Vec::new();
        let profile = self.identity.observe(user, other, &mut effects);
        self.identity_effects(msg, effects);

        let table = MessageTable::of(msg.kind());
        let name = table.name();
        let is_track = msg.kind() == MessageType::Track;
        let mut row: Vec<(u32, Cell)> = Vec::with_capacity(24);
        let mut shared = std::mem::take(&mut self.shared);
        shared.clear();
        let mut fixed =
            |planner: &mut Planner<'_>, node: u32, value: &Json<'_>, row: &mut Vec<(u32, Cell)>| {
                if let Some(cell) = planner.put(name, node, value, message_id, row)
                    && is_track
                    && shared_with_event_tables(node)
                {
                    shared.push((node, cell));
                }
            };
        fixed(self, F_ID, &text(msg.message_id()), &mut row);
        fixed(self, F_SOURCE_ID, &text(Some(source_id)), &mut row);
        fixed(self, F_PROFILE_ID, &text(profile.as_deref()), &mut row);
        for (node, key) in FROM_BODY {
            fixed(self, node, msg.get(key), &mut row);
        }
        self.put_object(
            name,
            Domain::Context,
            msg.object("context"),
            message_id,
            &mut row,
        );
        let data = Domain::Data(TableKind::Message(table));
        match msg.kind() {
            MessageType::Identify => {
                self.put_object(name, data, msg.traits(), message_id, &mut row)
            }
            MessageType::Group => {
                fixed(self, F_GROUP_ID, &text(msg.str_field("groupId")), &mut row);
                self.put_object(name, data, msg.traits(), message_id, &mut row);
            }
            MessageType::Alias => {
                fixed(
                    self,
                    F_PREVIOUS_ID,
                    &text(msg.str_field("previousId")),
                    &mut row,
                );
            }
            MessageType::Page | MessageType::Screen => {
                fixed(self, F_NAME, &text(msg.str_field("name")), &mut row);
                self.put_object(name, data, msg.properties(), message_id, &mut row);
            }
            MessageType::Track => {
                let event = msg.event().unwrap_or_default();
                let slug = self.cache.event(event).slug.clone();
                fixed(self, F_EVENT, &Json::String(slug.into()), &mut row);
                fixed(self, F_EVENT_TEXT, &Json::String(event.into()), &mut row);
            }
        }
        self.sparse(name).rows.push(row);
        self.rollup(msg, source_id, profile.as_deref());

        match msg.kind() {
            MessageType::Track => {
                let event = msg.event().unwrap_or_default();
                if let Some(table) = self.cache.event(event).table.clone() {
                    self.ensure_table(&table, TableKind::Event);
                    let mut row: Vec<(u32, Cell)> = Vec::with_capacity(24);
                    for (node, cell) in shared.drain(..) {
                        if let Some(slot) = self.slot(&table, node, &Json::Null) {
                            row.push((slot.pos, cell));
                        }
                    }
                    self.put_object(
                        &table,
                        Domain::Context,
                        msg.object("context"),
                        message_id,
                        &mut row,
                    );
                    let data = Domain::Data(TableKind::Event);
                    self.put_object(&table, data, msg.properties(), message_id, &mut row);
                    self.sparse(&table).rows.push(row);
                }
            }
            MessageType::Identify => {
                if let Some(profile) = &profile {
                    self.set_traits(profile, msg);
                }
                if let Some(user) = user {
                    self.latest("users", user, source_id, msg, message_id);
                }
            }
            MessageType::Group => {
                if let Some(group) = msg.str_field("groupId") {
                    self.latest("accounts", group, source_id, msg, message_id);
                }
            }
            _ => {}
        }
        self.shared = shared;
    }

    /// Counts a track in `event_days` and marks its profile active that day in `profile_days`
    /// (tracks, pages and screens).
    fn rollup(&mut self, msg: &Msg<'_>, source_id: &str, profile: Option<&str>) {
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
        let days = time.unix_millis().div_euclid(86_400_000);
        let (day, week) = self.days.entry(days).or_insert_with(|| {
            let day = time.to_string()[..10].to_owned();
            (day, monday_of(days))
        });
        let (day, week) = (day.clone(), week.clone());
        if let Some(profile) = profile {
            let profile = clean_text(profile);
            if self
                .profile_days_seen
                .insert((days, profile.clone(), source_id.to_owned()))
            {
                self.profile_days.push_row(vec![
                    Cell::Text(day.clone()),
                    Cell::Text(profile),
                    Cell::Text(source_id.to_owned()),
                    Cell::Text(week),
                ]);
            }
        }
        if let (MessageType::Track, Some(event)) = (msg.kind(), msg.event()) {
            let key = (day, source_id.to_owned(), clean_text(event));
            let count = self.event_days.entry(key.clone()).or_insert(0);
            if *count == 0 {
                self.event_days_order.push(key);
            }
            *count += 1;
        }
    }

    /// Merges the message into the `users` or `accounts` row of `key`.
    fn latest(&mut self, table: &str, key: &str, source_id: &str, msg: &Msg<'_>, mid: &str) {
        let mut row: Vec<(u32, Cell)> = Vec::with_capacity(8);
        self.put(table, F_ID, &text(Some(key)), mid, &mut row);
        self.put(table, F_SOURCE_ID, &text(Some(source_id)), mid, &mut row);
        self.put(table, 5, &text(msg.received_at()), mid, &mut row);
        let data = Domain::Data(TableKind::Latest);
        self.put_object(table, data, msg.traits(), mid, &mut row);
        let Some(schema) = self.schema.table(table) else {
            return;
        };
        let columns = schema.columns();
        let cells: Vec<(String, Cell)> = row
            .into_iter()
            .filter_map(|(pos, cell)| {
                columns
                    .get(pos as usize)
                    .map(|(name, _)| (name.clone(), cell))
            })
            .collect();
        let rows = if table == "users" {
            &mut self.users
        } else {
            &mut self.accounts
        };
        rows.merge(key, cells);
    }

    /// The plan, and the counts for the stats.
    pub fn finish(self, checkpoint: i64) -> (Plan, Planned) {
        let mut inserts: Vec<TableRows> = Vec::new();
        // Column metadata first: it names what the rest of the plan writes.
        let (meta, others): (Vec<TableRows>, Vec<TableRows>) = self
            .internal
            .into_iter()
            .partition(|t| t.table == "warehouse_columns");
        inserts.extend(meta);
        for sparse in self.sparse {
            let columns = self
                .schema
                .table(&sparse.table)
                .map(|t| t.columns())
                .unwrap_or_default();
            inserts.push(densify(sparse, columns));
        }
        inserts.extend(others);
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
        let mut event_days =
            TableRows::with_columns("event_days", &["day", "source_id", "event_text", "events"]);
        for key in self.event_days_order {
            let count = self.event_days.get(&key).copied().unwrap_or(0);
            let (day, source, event) = key;
            event_days.push_row(vec![
                Cell::Text(day),
                Cell::Text(source),
                Cell::Text(event),
                Cell::Int(count),
            ]);
        }
        let rollups = [event_days, self.profile_days]
            .into_iter()
            .filter(|t| !t.is_empty())
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
            fresh: Vec::new(),
            keep_open: false,
        };
        (plan, self.planned)
    }
}

/// Sparse rows made dense over the columns they use, in schema order.
fn densify(sparse: SparseRows, columns: &[(String, ColType)]) -> TableRows {
    const UNUSED: u32 = u32::MAX;
    let mut index = vec![UNUSED; columns.len()];
    for row in &sparse.rows {
        for (pos, _) in row {
            if let Some(slot) = index.get_mut(*pos as usize) {
                *slot = 0;
            }
        }
    }
    let mut names = Vec::new();
    for (i, slot) in index.iter_mut().enumerate() {
        if *slot != UNUSED {
            *slot = names.len() as u32;
            names.push(columns[i].0.clone());
        }
    }
    let width = names.len();
    let mut out = TableRows::new(&sparse.table);
    out.columns = names;
    out.rows = sparse
        .rows
        .into_iter()
        .map(|row| {
            let mut dense = vec![Cell::Null; width];
            for (pos, cell) in row {
                if let Some(&i) = index.get(pos as usize)
                    && let Some(slot) = dense.get_mut(i as usize)
                {
                    *slot = cell;
                }
            }
            dense
        })
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::monday_of;
    use spoor_spec::Timestamp;

    #[test]
    fn weeks_start_on_monday() {
        let monday = |t: &str| {
            let ms = Timestamp::parse(t).map_or(0, |t| t.unix_millis());
            monday_of(ms.div_euclid(86_400_000))
        };
        assert_eq!(monday("2024-01-01T00:00:00Z"), "2024-01-01");
        assert_eq!(monday("2024-01-07T23:59:59.999Z"), "2024-01-01");
        assert_eq!(monday("2024-01-08T00:00:00Z"), "2024-01-08");
        assert_eq!(monday("1970-01-01T12:00:00Z"), "1969-12-29");
        assert_eq!(monday("1969-12-28T12:00:00Z"), "1969-12-22");
    }
}
