//! Reading the message log in order, for consumers such as the warehouse loader.
//!
//! The log is append-only and every entry has a strictly increasing `seq`. A consumer keeps
//! the last `seq` it has processed and asks for what comes after it, so it can stop and
//! resume at any point, and a rebuild starts again from 0.

/// One accepted, normalized message, as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct LogEntry {
    /// Position in the log; strictly increasing, never reused.
    pub seq: i64,
    /// The id of the source the message was sent to.
    pub source_id: String,
    /// The normalized message (JSON object text), `messageId`, `receivedAt` and
    /// `timestamp` always set.
    pub body: String,
}

/// Something that can be read as a message log.
pub trait LogSource: Send + Sync {
    /// The error type of this source.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Up to `limit` entries with `seq > after`, in `seq` order.
    fn read_after(&self, after: i64, limit: usize) -> Result<Vec<LogEntry>, Self::Error>;
}
