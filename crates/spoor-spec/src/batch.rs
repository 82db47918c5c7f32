//! The `/v1/batch` envelope: items plus batch-level `context`, `integrations`, `sentAt` and
//! `writeKey`, and the merge of the batch-level fields into each item (the item wins).
//!
//! The merge is one level deep: a batch-level context key the item's context lacks is
//! copied in whole (`library`, `device`, ...); a key the item has is the item's, even when
//! both are objects. `integrations` merges the same way; `sentAt` is copied to items without
//! one. `writeKey` and any other batch-level field (analytics-go's batch `messageId`) stay on
//! the envelope and are not copied into items.

use serde_json::{Map, Value};

use crate::borrowed::{Node, Object};
use crate::message::{Message, ParseError, json_kind};

/// A parsed batch body.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    /// The items, as sent (each should be an object with a `type`).
    pub items: Vec<Value>,
    /// Batch-level `context`, merged into each item.
    pub context: Option<Map<String, Value>>,
    /// Batch-level `integrations`, merged into each item.
    pub integrations: Option<Map<String, Value>>,
    /// Batch-level `sentAt`, copied to items that lack one.
    pub sent_at: Option<Value>,
    /// `writeKey` in the body, if any.
    pub write_key: Option<String>,
    /// Any other top-level fields (analytics-go's batch `messageId`, ...), kept.
    pub rest: Map<String, Value>,
}

impl Batch {
    /// Splits a batch body. Fails when it is not an object or has no `batch` array.
    pub fn from_value(value: Value) -> Result<Batch, ParseError> {
        let mut body = match value {
            Value::Object(map) => map,
            other => {
                return Err(ParseError::NotAnObject {
                    found: json_kind(&other),
                });
            }
        };
        let items = match body.remove("batch") {
            Some(Value::Array(items)) => items,
            _ => return Err(ParseError::MissingBatch),
        };
        let context = match body.remove("context") {
            Some(Value::Object(map)) => Some(map),
            Some(other) if !other.is_null() => {
                body.insert("context".to_owned(), other);
                None
            }
            _ => None,
        };
        let integrations = match body.remove("integrations") {
            Some(Value::Object(map)) => Some(map),
            Some(other) if !other.is_null() => {
                body.insert("integrations".to_owned(), other);
                None
            }
            _ => None,
        };
        let sent_at = body.remove("sentAt").filter(|v| !v.is_null());
        let write_key = match body.remove("writeKey") {
            Some(Value::String(key)) => Some(key),
            Some(other) => {
                body.insert("writeKey".to_owned(), other);
                None
            }
            None => None,
        };
        Ok(Batch {
            items,
            context,
            integrations,
            sent_at,
            write_key,
            rest: body,
        })
    }

    /// Parses a batch body from JSON bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Batch, ParseError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| ParseError::from_json(&e))?;
        Batch::from_value(value)
    }

    /// The envelope as a JSON value again: `batch`, then the batch-level fields, then the
    /// rest. Parse-then-`into_value` gives an equal value (key order aside).
    pub fn into_value(self) -> Value {
        let mut body = Map::new();
        body.insert("batch".to_owned(), Value::Array(self.items));
        if let Some(context) = self.context {
            body.insert("context".to_owned(), Value::Object(context));
        }
        if let Some(integrations) = self.integrations {
            body.insert("integrations".to_owned(), Value::Object(integrations));
        }
        if let Some(sent_at) = self.sent_at {
            body.insert("sentAt".to_owned(), sent_at);
        }
        if let Some(write_key) = self.write_key {
            body.insert("writeKey".to_owned(), Value::String(write_key));
        }
        body.extend(self.rest);
        Value::Object(body)
    }

    /// Merges the batch-level fields into every item and parses each as a [`Message`] (whose
    /// `type` is required). Items that are not objects, or have no valid type, give their
    /// [`ParseError`] in place, so the caller can report `batch[i]`.
    pub fn into_messages(self) -> Vec<Result<Message, ParseError>> {
        let mut items = self.items;
        let envelope = Batch {
            items: Vec::new(),
            ..self
        };
        items
            .drain(..)
            .map(|mut item| {
                if let Value::Object(map) = &mut item {
                    envelope.merge_into(map);
                }
                Message::from_value(item, None)
            })
            .collect()
    }

    /// Merges the batch-level fields into one item. `context` and `integrations` are merged
    /// key by key, the item's keys winning; `sentAt` is copied when the item has none.
    pub fn merge_into(&self, item: &mut Map<String, Value>) {
        merge_object(item, "context", self.context.as_ref());
        merge_object(item, "integrations", self.integrations.as_ref());
        if let Some(sent_at) = &self.sent_at
            && item.get("sentAt").is_none_or(Value::is_null)
        {
            item.insert("sentAt".to_owned(), sent_at.clone());
        }
    }
}

impl Batch {
    /// [`Batch::merge_into`] for an item in the borrowed tree: the same merge, the batch's
    /// strings borrowed rather than copied.
    pub fn merge_into_borrowed<'a>(&'a self, item: &mut Object<'a>) {
        merge_borrowed(item, "context", self.context.as_ref());
        merge_borrowed(item, "integrations", self.integrations.as_ref());
        if let Some(sent_at) = &self.sent_at
            && item.get("sentAt").is_none_or(Node::is_null)
        {
            item.insert("sentAt", Node::from_value(sent_at));
        }
    }
}

fn merge_borrowed<'a>(
    item: &mut Object<'a>,
    key: &'static str,
    batch: Option<&'a Map<String, Value>>,
) {
    let Some(batch) = batch else { return };
    match item.get_mut(key) {
        Some(Node::Object(own)) => {
            for (k, v) in batch {
                if !own.contains_key(k) {
                    own.insert(k.as_str(), Node::from_value(v));
                }
            }
        }
        Some(other) if !other.is_null() => {}
        _ => item.insert(key, Node::Object(Object::from_map(batch))),
    }
}

fn merge_object(item: &mut Map<String, Value>, key: &str, batch: Option<&Map<String, Value>>) {
    let Some(batch) = batch else { return };
    match item.get_mut(key) {
        Some(Value::Object(own)) => {
            for (k, v) in batch {
                if !own.contains_key(k) {
                    own.insert(k.clone(), v.clone());
                }
            }
        }
        Some(other) if !other.is_null() => {}
        _ => {
            item.insert(key.to_owned(), Value::Object(batch.clone()));
        }
    }
}
