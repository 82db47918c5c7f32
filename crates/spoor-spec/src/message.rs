//! One Segment message: a JSON object kept exactly as received, plus its type.
//!
//! The body is never re-modelled into structs: every field, known or not, stays in the
//! object, so parse-then-serialize loses nothing. Typed access to the reserved fields is
//! given by views (see [`crate::reserved`]).

use std::fmt;

use serde_json::{Map, Value};

/// The six message types of the Tracking API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageType {
    /// `identify`: who the user is, with traits.
    Identify,
    /// `track`: an action the user performed, with properties.
    Track,
    /// `page`: a web page view.
    Page,
    /// `screen`: a mobile screen view.
    Screen,
    /// `group`: the user belongs to a group (account, company).
    Group,
    /// `alias`: one identity is another (previousId becomes userId).
    Alias,
}

impl MessageType {
    /// All types, in the Spec's order.
    pub const ALL: [MessageType; 6] = [
        MessageType::Identify,
        MessageType::Track,
        MessageType::Page,
        MessageType::Screen,
        MessageType::Group,
        MessageType::Alias,
    ];

    /// The wire name: `"identify"`, `"track"`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Identify => "identify",
            MessageType::Track => "track",
            MessageType::Page => "page",
            MessageType::Screen => "screen",
            MessageType::Group => "group",
            MessageType::Alias => "alias",
        }
    }

    /// Parses a wire name (`"track"`). Case-sensitive, as Segment is.
    pub fn from_wire(name: &str) -> Option<MessageType> {
        MessageType::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }

    /// Parses the last segment of a tracking path: the long form (`track`) or the browser
    /// library's one-letter form (`t`).
    pub fn from_path_segment(segment: &str) -> Option<MessageType> {
        match segment {
            "i" => Some(MessageType::Identify),
            "t" => Some(MessageType::Track),
            "p" => Some(MessageType::Page),
            "s" => Some(MessageType::Screen),
            "g" => Some(MessageType::Group),
            "a" => Some(MessageType::Alias),
            other => MessageType::from_wire(other),
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why bytes or a JSON value are not a message at all (before validation).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The bytes are not JSON.
    #[error("malformed JSON at line {line}, column {column}: {reason}")]
    Json {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// serde_json's description.
        reason: String,
    },
    /// The JSON is not an object.
    #[error("a message must be a JSON object, not {found}")]
    NotAnObject {
        /// The JSON kind found (`array`, `string`, ...).
        found: &'static str,
    },
    /// No `type` field and no type implied by the path.
    #[error("type: required (one of identify, track, page, screen, group, alias)")]
    MissingType,
    /// A `type` that is not one of the six.
    #[error("type: {found} is not one of identify, track, page, screen, group, alias")]
    UnknownType {
        /// The value found, as JSON text.
        found: String,
    },
    /// The body's `type` disagrees with the endpoint's.
    #[error("type: the body says {found:?} but the endpoint is /v1/{expected}")]
    TypeMismatch {
        /// The type the path implies.
        expected: MessageType,
        /// The type in the body.
        found: String,
    },
    /// A batch body without a `batch` array.
    #[error("batch: required, an array of messages")]
    MissingBatch,
}

impl ParseError {
    /// A stable machine-readable code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            ParseError::Json { .. } => "invalid_json",
            ParseError::NotAnObject { .. } => "not_an_object",
            ParseError::MissingType => "missing_type",
            ParseError::UnknownType { .. } => "unknown_type",
            ParseError::TypeMismatch { .. } => "type_mismatch",
            ParseError::MissingBatch => "missing_batch",
        }
    }

    /// Turns a serde_json error into [`ParseError::Json`].
    pub fn from_json(err: &serde_json::Error) -> ParseError {
        ParseError::Json {
            line: err.line(),
            column: err.column(),
            reason: err.to_string(),
        }
    }
}

/// The kind of a JSON value, as named in error messages.
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// One message: its type and its whole JSON body (which always holds `"type"`).
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    kind: MessageType,
    body: Map<String, Value>,
}

impl Message {
    /// Parses a message from JSON bytes. `implied` is the type the endpoint implies
    /// (`/v1/track`), or `None` for a batch item, whose `type` is then required.
    pub fn from_slice(bytes: &[u8], implied: Option<MessageType>) -> Result<Message, ParseError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| ParseError::from_json(&e))?;
        Message::from_value(value, implied)
    }

    /// Builds a message from a JSON value; see [`Message::from_slice`]. When the body has no
    /// `type`, the implied one is written into it.
    pub fn from_value(value: Value, implied: Option<MessageType>) -> Result<Message, ParseError> {
        let mut body = match value {
            Value::Object(map) => map,
            other => {
                return Err(ParseError::NotAnObject {
                    found: json_kind(&other),
                });
            }
        };
        let kind = match (body.get("type"), implied) {
            (None, Some(kind)) | (Some(Value::Null), Some(kind)) => {
                body.insert("type".to_owned(), Value::String(kind.as_str().to_owned()));
                kind
            }
            (None, None) | (Some(Value::Null), None) => return Err(ParseError::MissingType),
            (Some(Value::String(name)), implied) => {
                let found =
                    MessageType::from_wire(name).ok_or_else(|| ParseError::UnknownType {
                        found: Value::String(name.clone()).to_string(),
                    })?;
                match implied {
                    Some(expected) if expected != found => {
                        return Err(ParseError::TypeMismatch {
                            expected,
                            found: name.clone(),
                        });
                    }
                    _ => found,
                }
            }
            (Some(other), _) => {
                return Err(ParseError::UnknownType {
                    found: other.to_string(),
                });
            }
        };
        Ok(Message { kind, body })
    }

    /// The message type.
    pub fn kind(&self) -> MessageType {
        self.kind
    }

    /// The whole body, `type` included.
    pub fn body(&self) -> &Map<String, Value> {
        &self.body
    }

    /// The whole body, mutable. Changing `type` through it is not supported.
    pub fn body_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.body
    }

    /// The body as a JSON value.
    pub fn into_value(self) -> Value {
        Value::Object(self.body)
    }

    /// The body as compact JSON bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        serde_json::to_vec(&self.body).unwrap_or_default()
    }

    /// A string field at the top level, if present and a string.
    pub fn str_field(&self, key: &str) -> Option<&str> {
        self.body.get(key).and_then(Value::as_str)
    }

    /// `userId`, when a string.
    pub fn user_id(&self) -> Option<&str> {
        self.str_field("userId")
    }

    /// `anonymousId`, when a string.
    pub fn anonymous_id(&self) -> Option<&str> {
        self.str_field("anonymousId")
    }

    /// `messageId`, when a string.
    pub fn message_id(&self) -> Option<&str> {
        self.str_field("messageId")
    }

    /// `event` (track only), when a string.
    pub fn event(&self) -> Option<&str> {
        self.str_field("event")
    }

    /// `groupId` (group only), when a string.
    pub fn group_id(&self) -> Option<&str> {
        self.str_field("groupId")
    }

    /// `previousId` (alias only), when a string.
    pub fn previous_id(&self) -> Option<&str> {
        self.str_field("previousId")
    }

    /// `name` (page and screen), when a string.
    pub fn name(&self) -> Option<&str> {
        self.str_field("name")
    }

    /// `timestamp` as sent, when a string.
    pub fn timestamp(&self) -> Option<&str> {
        self.str_field("timestamp")
    }

    /// `sentAt`, when a string.
    pub fn sent_at(&self) -> Option<&str> {
        self.str_field("sentAt")
    }

    /// `originalTimestamp`, when a string (set by [`crate::normalize`]).
    pub fn original_timestamp(&self) -> Option<&str> {
        self.str_field("originalTimestamp")
    }

    /// `category` (page and screen), when a string.
    pub fn category(&self) -> Option<&str> {
        self.str_field("category")
    }

    /// `channel` (`server`, `browser`, `mobile`), when a string.
    pub fn channel(&self) -> Option<&str> {
        self.str_field("channel")
    }

    /// `version`, as sent (Segment shows `2` on processed events).
    pub fn version(&self) -> Option<&Value> {
        self.body.get("version").filter(|v| !v.is_null())
    }

    /// `integrations`.
    pub fn integrations(&self) -> Option<&Map<String, Value>> {
        self.object("integrations")
    }

    /// `receivedAt`, when a string (set by [`crate::normalize`]).
    pub fn received_at(&self) -> Option<&str> {
        self.str_field("receivedAt")
    }

    /// An object field at the top level (`traits`, `properties`, `context`, `integrations`).
    pub fn object(&self, key: &str) -> Option<&Map<String, Value>> {
        self.body.get(key).and_then(Value::as_object)
    }

    /// `traits` for identify and group; `context.traits` is not included.
    pub fn traits(&self) -> Option<&Map<String, Value>> {
        self.object("traits")
    }

    /// `properties` for track, page and screen.
    pub fn properties(&self) -> Option<&Map<String, Value>> {
        self.object("properties")
    }

    /// `context`.
    pub fn context(&self) -> Option<&Map<String, Value>> {
        self.object("context")
    }
}
