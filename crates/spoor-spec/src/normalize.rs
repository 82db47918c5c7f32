//! Normalization: what Segment does to a message when it arrives.
//!
//! The clock and the id source are passed in ([`NormalizeCtx`]); nothing here reads the time
//! or draws random numbers. Rules (decisions documented in `docs/SPEC.md`):
//! - `messageId` is generated when missing, null or empty;
//! - ids sent as numbers (`userId`, `anonymousId`, `previousId`, `groupId`) become strings
//!   holding the number's exact text (`42` becomes `"42"`), as the libraries do;
//! - `receivedAt` is set to the time passed in (a client's own `receivedAt` is replaced);
//! - `originalTimestamp` is the client's `timestamp` exactly as sent; when the client sent no
//!   valid `timestamp`, it is `receivedAt`;
//! - `timestamp` is corrected for clock skew as `receivedAt - (sentAt - originalTimestamp)`
//!   when both `sentAt` and `timestamp` are valid, kept (in canonical form) when there is no
//!   valid `sentAt`, and set to `receivedAt` when the client sent no valid `timestamp`;
//!   it is always written as `YYYY-MM-DDTHH:MM:SS.sssZ`;
//! - identify `traits` get `name` = `firstName lastName` (or `first_name last_name`) when
//!   `name` is absent and both parts are non-empty strings. `context.traits` is left alone.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::borrowed::{BorrowedMessage, Node, Object};
use crate::message::{Message, MessageType};
use crate::reserved::full_name_of;
use crate::time::Timestamp;

/// What normalization needs from the outside world.
pub struct NormalizeCtx<'a> {
    /// When the server received the message.
    pub received_at: Timestamp,
    /// Makes a new messageId (a UUID v4 string, by convention).
    pub new_message_id: &'a mut dyn FnMut() -> String,
}

/// Normalizes a message in place. Call [`crate::validate()`] first: normalization assumes
/// nothing, but it only repairs what Segment repairs.
pub fn normalize(message: &mut Message, ctx: &mut NormalizeCtx<'_>) {
    let kind = message.kind();
    let body = message.body_mut();

    // One pass over the body: ids, name, and what the timestamps need.
    let mut has_message_id = false;
    let mut timestamp = None;
    let mut sent_at = None;
    for (key, value) in body.iter_mut() {
        match key.as_str() {
            "messageId" => has_message_id = value.as_str().is_some_and(|id| !id.is_empty()),
            "userId" | "anonymousId" | "previousId" | "groupId" => {
                if let Value::Number(n) = value {
                    *value = Value::String(n.as_str().to_owned());
                }
            }
            "timestamp" => timestamp = value.as_str().and_then(|t| Timestamp::parse(t).ok()),
            "sentAt" => sent_at = value.as_str().and_then(|t| Timestamp::parse(t).ok()),
            "traits" if kind == MessageType::Identify => {
                if let Value::Object(traits) = value {
                    fill_name(traits);
                }
            }
            _ => {}
        }
    }

    if !has_message_id {
        body.insert(
            "messageId".to_owned(),
            Value::String((ctx.new_message_id)()),
        );
    }

    let received_at = ctx.received_at;
    let received_text = received_at.to_string();
    match timestamp {
        Some(original) => {
            let corrected = corrected_timestamp(original, sent_at, received_at);
            let original_value = match body.get_mut("timestamp") {
                Some(slot) => std::mem::replace(slot, Value::String(corrected.to_string())),
                None => Value::Null,
            };
            body.insert("originalTimestamp".to_owned(), original_value);
        }
        None => {
            body.insert("timestamp".to_owned(), Value::String(received_text.clone()));
            body.insert(
                "originalTimestamp".to_owned(),
                Value::String(received_text.clone()),
            );
        }
    }
    body.insert("receivedAt".to_owned(), Value::String(received_text));
}

/// Segment's clock-skew correction, the one rule both trees apply: with a `sentAt`, the
/// message's `timestamp` moves by the difference between the server's clock (`receivedAt`)
/// and the client's (`sentAt`); without one it stays.
fn corrected_timestamp(
    original: Timestamp,
    sent_at: Option<Timestamp>,
    received_at: Timestamp,
) -> Timestamp {
    match sent_at {
        Some(sent_at) => received_at.add_nanos(original.nanos_since(sent_at)),
        None => original,
    }
}

/// [`normalize()`] for a message in the borrowed tree: the same changes, so the body writes
/// the same bytes.
pub fn normalize_borrowed(message: &mut BorrowedMessage<'_>, ctx: &mut NormalizeCtx<'_>) {
    let kind = message.kind();
    let body = message.body_mut();

    let mut has_message_id = false;
    let mut timestamp = None;
    let mut sent_at = None;
    for (key, value) in body.iter_mut() {
        match key {
            "messageId" => has_message_id = value.as_str().is_some_and(|id| !id.is_empty()),
            "userId" | "anonymousId" | "previousId" | "groupId" => {
                if let Node::Number(n) = value {
                    *value = Node::String(std::mem::take(n));
                }
            }
            "timestamp" => timestamp = value.as_str().and_then(|t| Timestamp::parse(t).ok()),
            "sentAt" => sent_at = value.as_str().and_then(|t| Timestamp::parse(t).ok()),
            "traits" if kind == MessageType::Identify => {
                if let Node::Object(traits) = value {
                    fill_name_borrowed(traits);
                }
            }
            _ => {}
        }
    }

    if !has_message_id {
        body.insert(
            "messageId",
            Node::String(Cow::Owned((ctx.new_message_id)())),
        );
    }

    let received_at = ctx.received_at;
    let received_text = received_at.to_string();
    match timestamp {
        Some(original) => {
            let corrected = corrected_timestamp(original, sent_at, received_at);
            let original_value = match body.get_mut("timestamp") {
                Some(slot) => std::mem::replace(slot, Node::String(corrected.to_string().into())),
                None => Node::Null,
            };
            body.insert("originalTimestamp", original_value);
        }
        None => {
            body.insert("timestamp", Node::String(received_text.clone().into()));
            body.insert(
                "originalTimestamp",
                Node::String(received_text.clone().into()),
            );
        }
    }
    body.insert("receivedAt", Node::String(received_text.into()));
}

/// [`fill_name`] for the borrowed tree.
fn fill_name_borrowed(traits: &mut Object<'_>) {
    if traits.get("name").is_some_and(|v| !v.is_null()) {
        return;
    }
    let part = |camel: &str, snake: &str| {
        traits
            .get(camel)
            .and_then(Node::as_str)
            .or_else(|| traits.get(snake).and_then(Node::as_str))
    };
    let name = match (
        part("firstName", "first_name"),
        part("lastName", "last_name"),
    ) {
        (Some(first), Some(last)) => full_name_of(first, last),
        _ => None,
    };
    if let Some(name) = name {
        traits.insert("name", Node::String(Cow::Owned(name)));
    }
}

/// Fills `name` from first and last name (camelCase first, then snake_case) when absent.
fn fill_name(traits: &mut Map<String, Value>) {
    if traits.get("name").is_some_and(|v| !v.is_null()) {
        return;
    }
    let part = |camel: &str, snake: &str| {
        traits
            .get(camel)
            .and_then(Value::as_str)
            .or_else(|| traits.get(snake).and_then(Value::as_str))
    };
    let name = match (
        part("firstName", "first_name"),
        part("lastName", "last_name"),
    ) {
        (Some(first), Some(last)) => full_name_of(first, last),
        _ => None,
    };
    if let Some(name) = name {
        traits.insert("name".to_owned(), Value::String(name));
    }
}
