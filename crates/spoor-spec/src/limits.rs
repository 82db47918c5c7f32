//! The size and count limits of Segment's Tracking API, in bytes of serialized JSON.

/// The largest message, in bytes of JSON: 32 KB.
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;
/// The largest batch request body (after decompression), in bytes: 500 KB.
pub const MAX_BATCH_BYTES: usize = 500 * 1024;
/// The most messages in one batch.
pub const MAX_BATCH_MESSAGES: usize = 2_500;
/// The longest messageId, in characters.
pub const MAX_MESSAGE_ID_CHARS: usize = 100;
