//! The Segment Spec as spoor's typed core.
//!
//! This crate knows the Segment Tracking API's messages (identify, track, page, screen, group,
//! alias, and the batch envelope) and nothing of IO: no files, no sockets, no tokio, no HTTP,
//! no clock and no randomness. Callers pass the time and an id source in.
//!
//! # Layout
//! - [`message`]: [`Message`], one message as a lossless JSON object plus its [`MessageType`].
//! - [`batch`]: the `/v1/batch` envelope and the merge of batch-level fields into items.
//! - [`borrowed`]: [`Node`], a JSON tree borrowing from its text, and [`BorrowedMessage`]: the
//!   collector's cheaper path to the same validation, normalization and stored bytes.
//! - [`validate`]: every problem of a message at once, as [`Problem`]s with a JSON path and a
//!   stable [`Code`].
//! - [`normalize`]: what Segment does to a message on arrival (messageId, receivedAt,
//!   clock-skew correction, name from first and last name).
//! - [`reserved`]: the reserved traits, properties and context fields, and typed views of them.
//! - [`custom`]: a builder for custom traits and properties that refuses reserved names.
//! - [`time`]: [`Timestamp`], a strict ISO 8601 parser and formatter.
//! - [`decimal`]: [`Decimal`], exact decimal numbers for money.
//! - [`currency`]: the ISO 4217 code list.
//! - [`naming`]: Segment's warehouse `snake_case` and the flattening of nested objects.
//! - [`limits`]: the size and count limits of the Tracking API.

pub mod batch;
pub mod borrowed;
pub mod currency;
pub mod custom;
pub mod decimal;
pub mod limits;
pub mod message;
pub mod naming;
pub mod normalize;
pub mod reserved;
pub mod time;
pub mod validate;

pub use batch::Batch;
pub use borrowed::{BorrowedMessage, Node, NodeError, Object};
pub use custom::{CustomFields, FieldSet, ReservedNameError};
pub use decimal::Decimal;
pub use message::{Message, MessageType, ParseError};
pub use normalize::{NormalizeCtx, normalize, normalize_borrowed};
pub use reserved::{
    Context, GroupTraits, IdentifyTraits, PageProperties, ScreenProperties, TrackProperties,
};
pub use time::Timestamp;
pub use validate::{
    Code, Problem, Report, Severity, validate, validate_borrowed, validate_envelope,
};

/// JSON values as this crate sees them. Numbers keep their exact text (`arbitrary_precision`)
/// and objects keep their key order (`preserve_order`).
pub use serde_json::{Map, Value};
