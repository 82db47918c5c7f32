//! The `/v1/batch` envelope: items plus batch-level `context`, `integrations`, `sentAt` and
//! `writeKey`, and the merge of the batch-level fields into each item (the item wins).

use serde_json::{Map, Value};

use crate::message::{ParseError, json_kind};

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

    /// Merges the batch-level fields into one item. `context` and `integrations` are merged
    /// key by key, the item's keys winning; `sentAt` is copied when the item has none.
    pub fn merge_into(&self, item: &mut Map<String, Value>) {
        merge_object(item, "context", self.context.as_ref());
        merge_object(item, "integrations", self.integrations.as_ref());
        if let Some(sent_at) = &self.sent_at {
            if item.get("sentAt").is_none_or(Value::is_null) {
                item.insert("sentAt".to_owned(), sent_at.clone());
            }
        }
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
