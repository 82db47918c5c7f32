//! Profiles: one user's ids, merged traits, groups and latest events, read from the warehouse.
//! Used by `spoor profile` and by the collector's Profile API routes.

use serde_json::{Map, Value, json};

use crate::WarehouseError;
use crate::dialect::text_literal;
use crate::identity::IdType;
use crate::store::{Rows, Store};
use crate::value::ColType;

/// One id of a profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileId {
    /// `user_id` or `anonymous_id`.
    pub id_type: String,
    /// The id.
    pub id: String,
    /// When it was first seen.
    pub first_seen: Option<String>,
}

/// One trait: its latest value (JSON) and when it was set.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileTrait {
    /// The trait name, as sent.
    pub name: String,
    /// The latest value.
    pub value: Value,
    /// When it was last set (the identify's timestamp).
    pub set_at: Option<String>,
}

/// One event of a profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileEvent {
    /// When it happened.
    pub timestamp: Option<String>,
    /// `track`, `page`, `screen`, `identify`, `group` or `alias`.
    pub kind: String,
    /// The event name, page or screen name, group id or previous id.
    pub name: Option<String>,
    /// The messageId.
    pub message_id: String,
    /// The source.
    pub source_id: Option<String>,
    /// The userId sent.
    pub user_id: Option<String>,
    /// The anonymousId sent.
    pub anonymous_id: Option<String>,
}

/// A whole profile.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// The profile id.
    pub profile_id: String,
    /// Its ids.
    pub ids: Vec<ProfileId>,
    /// Its merged traits.
    pub traits: Vec<ProfileTrait>,
    /// Its groups: `(group_id, last seen)`.
    pub groups: Vec<(String, Option<String>)>,
    /// Its latest events, newest first.
    pub events: Vec<ProfileEvent>,
    /// User-user merges met involving it: `(message_id, user_id, other_user_id, outcome)`.
    pub merges: Vec<(String, String, String, String)>,
}

fn cell(row: &[Option<String>], i: usize) -> Option<String> {
    row.get(i).cloned().flatten()
}

fn ts(store_dialect: crate::dialect::Dialect, col: &str) -> String {
    store_dialect.render_column(col, ColType::Timestamp)
}

/// Finds the profile of an external id: `user_id:X`, `anonymous_id:X`, or a bare id tried as a
/// user id first, then as an anonymous id.
pub async fn find_profile<S: Store>(
    store: &mut S,
    external_id: &str,
) -> Result<Option<String>, WarehouseError> {
    let candidates: Vec<(IdType, &str)> = match external_id.split_once(':') {
        Some((kind, id)) if IdType::from_name(kind).is_some() => {
            vec![(IdType::from_name(kind).unwrap_or(IdType::UserId), id)]
        }
        _ => vec![
            (IdType::UserId, external_id),
            (IdType::AnonymousId, external_id),
        ],
    };
    for (kind, id) in candidates {
        let rows = store
            .query(&format!(
                "SELECT profile_id FROM profile_ids WHERE id_type = '{}' AND id = {}",
                kind.as_str(),
                text_literal(id)
            ))
            .await?;
        if let Some(p) = rows.rows.first().and_then(|r| cell(r, 0)) {
            return Ok(Some(p));
        }
    }
    Ok(None)
}

/// The merged traits of a profile, by name.
pub async fn profile_traits<S: Store>(
    store: &mut S,
    profile_id: &str,
) -> Result<Vec<ProfileTrait>, WarehouseError> {
    let d = store.dialect();
    let rows = store
        .query(&format!(
            "SELECT trait, value, {} FROM profile_traits WHERE profile_id = {} ORDER BY {}",
            ts(d, "set_at"),
            text_literal(profile_id),
            d.bytewise("trait"),
        ))
        .await?;
    Ok(rows
        .rows
        .iter()
        .map(|r| ProfileTrait {
            name: cell(r, 0).unwrap_or_default(),
            value: cell(r, 1)
                .and_then(|v| serde_json::from_str(&v).ok())
                .unwrap_or(Value::Null),
            set_at: cell(r, 2),
        })
        .collect())
}

/// The latest events of a profile, newest first, skipping `offset`.
pub async fn profile_events<S: Store>(
    store: &mut S,
    profile_id: &str,
    limit: usize,
    offset: usize,
) -> Result<Vec<ProfileEvent>, WarehouseError> {
    let d = store.dialect();
    let p = text_literal(profile_id);
    let parts: Vec<String> = [
        ("tracks", "track", "event_text"),
        ("pages", "page", "name"),
        ("screens", "screen", "name"),
        ("identifies", "identify", "CAST(NULL AS TEXT)"),
        ("groups", "group", "group_id"),
        ("aliases", "alias", "previous_id"),
    ]
    .iter()
    .map(|(table, kind, name)| {
        format!(
            "SELECT timestamp AS t, '{kind}' AS kind, {name} AS name, id, source_id, user_id, \
             anonymous_id FROM {table} WHERE profile_id = {p}"
        )
    })
    .collect();
    let rows: Rows = store
        .query(&format!(
            "SELECT {}, kind, name, id, source_id, user_id, anonymous_id FROM (\n{}\n) e \
             ORDER BY e.t DESC, {} DESC LIMIT {limit} OFFSET {offset}",
            ts(d, "t"),
            parts.join("\nUNION ALL\n"),
            d.bytewise("e.id"),
        ))
        .await?;
    Ok(rows
        .rows
        .iter()
        .map(|r| ProfileEvent {
            timestamp: cell(r, 0),
            kind: cell(r, 1).unwrap_or_default(),
            name: cell(r, 2),
            message_id: cell(r, 3).unwrap_or_default(),
            source_id: cell(r, 4),
            user_id: cell(r, 5),
            anonymous_id: cell(r, 6),
        })
        .collect())
}

/// Reads a whole profile with its `events_limit` latest events.
pub async fn load_profile<S: Store>(
    store: &mut S,
    profile_id: &str,
    events_limit: usize,
) -> Result<Profile, WarehouseError> {
    let d = store.dialect();
    let p = text_literal(profile_id);
    let ids = store
        .query(&format!(
            "SELECT id_type, id, {} FROM profile_ids WHERE profile_id = {p} ORDER BY {}, {}",
            ts(d, "first_seen"),
            d.bytewise("id_type"),
            d.bytewise("id"),
        ))
        .await?
        .rows
        .iter()
        .map(|r| ProfileId {
            id_type: cell(r, 0).unwrap_or_default(),
            id: cell(r, 1).unwrap_or_default(),
            first_seen: cell(r, 2),
        })
        .collect();
    let traits = profile_traits(store, profile_id).await?;
    let groups = store
        .query(&format!(
            "SELECT group_id, {} FROM (SELECT group_id, max(timestamp) AS t FROM groups \
             WHERE profile_id = {p} AND group_id IS NOT NULL GROUP BY group_id) g ORDER BY {}",
            ts(d, "t"),
            d.bytewise("group_id"),
        ))
        .await?
        .rows
        .iter()
        .map(|r| (cell(r, 0).unwrap_or_default(), cell(r, 1)))
        .collect();
    let events = profile_events(store, profile_id, events_limit, 0).await?;
    let merges = store
        .query(&format!(
            "SELECT message_id, user_id, other_user_id, \
             CASE WHEN allowed THEN 'merged' ELSE 'refused' END FROM identity_merges \
             WHERE kept_profile_id = {p} OR merged_profile_id = {p} ORDER BY timestamp, message_id"
        ))
        .await?
        .rows
        .iter()
        .map(|r| {
            (
                cell(r, 0).unwrap_or_default(),
                cell(r, 1).unwrap_or_default(),
                cell(r, 2).unwrap_or_default(),
                cell(r, 3).unwrap_or_default(),
            )
        })
        .collect();
    Ok(Profile {
        profile_id: profile_id.to_owned(),
        ids,
        traits,
        groups,
        events,
        merges,
    })
}

/// Traits as a JSON object `{name: value}`.
pub fn traits_json(traits: &[ProfileTrait]) -> Value {
    let mut object = Map::new();
    for t in traits {
        object.insert(t.name.clone(), t.value.clone());
    }
    Value::Object(object)
}

/// One event as JSON, in the Profile API's field names.
pub fn event_json(event: &ProfileEvent) -> Value {
    let mut v = json!({
        "type": event.kind,
        "message_id": event.message_id,
        "source_id": event.source_id,
        "timestamp": event.timestamp,
        "user_id": event.user_id,
        "anonymous_id": event.anonymous_id,
    });
    if let (Some(name), Some(object)) = (&event.name, v.as_object_mut()) {
        let key = match event.kind.as_str() {
            "track" => "event",
            "group" => "group_id",
            "alias" => "previous_id",
            _ => "name",
        };
        object.insert(key.to_owned(), Value::String(name.clone()));
    }
    v
}

impl Profile {
    /// The whole profile as JSON (`spoor profile --json`).
    pub fn to_json(&self) -> Value {
        json!({
            "profile_id": self.profile_id,
            "ids": self.ids.iter().map(|i| json!({
                "type": i.id_type, "id": i.id, "first_seen": i.first_seen,
            })).collect::<Vec<_>>(),
            "traits": traits_json(&self.traits),
            "traits_set_at": self.traits.iter().map(|t| (t.name.clone(), json!(t.set_at)))
                .collect::<Map<String, Value>>(),
            "groups": self.groups.iter().map(|(g, t)| json!({"group_id": g, "last_seen": t}))
                .collect::<Vec<_>>(),
            "events": self.events.iter().map(event_json).collect::<Vec<_>>(),
            "user_merges": self.merges.iter().map(|(m, u, o, outcome)| json!({
                "message_id": m, "user_id": u, "other_user_id": o, "outcome": outcome,
            })).collect::<Vec<_>>(),
        })
    }
}
