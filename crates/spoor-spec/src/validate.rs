//! Validation: every problem of a message at once, each with a JSON path and a stable code.
//!
//! Paths are dotted from the message root (`properties.revenue`, `traits.address.city`);
//! a caller that validates batch items prefixes them (`batch[3].properties.revenue`).
//! Which problems are errors and which are warnings is listed in `docs/SPEC.md`.

use std::fmt;

use crate::message::Message;

/// How bad a problem is: an error rejects the message, a warning is reported only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Severity {
    /// The message is not accepted.
    Error,
    /// The message is accepted; the problem is reported.
    Warning,
}

/// A stable, machine-readable problem code. The string forms never change once released.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Code {
    /// Neither userId nor anonymousId.
    MissingIdentity,
    /// A required field is absent (event, groupId, previousId, alias userId).
    Required,
    /// A field that must not be empty is empty.
    Empty,
    /// A field has the wrong JSON type.
    WrongType,
    /// A timestamp is not strict ISO 8601 with date, time and offset.
    InvalidTimestamp,
    /// A currency is not an ISO 4217 code.
    InvalidCurrency,
    /// messageId longer than 100 characters.
    TooLong,
    /// A message over 32 KB of JSON.
    MessageTooLarge,
    /// A batch over 500 KB.
    BatchTooLarge,
    /// A batch over 2,500 messages.
    TooManyMessages,
}

impl Code {
    /// The stable string form, e.g. `"missing_identity"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::MissingIdentity => "missing_identity",
            Code::Required => "required",
            Code::Empty => "empty",
            Code::WrongType => "wrong_type",
            Code::InvalidTimestamp => "invalid_timestamp",
            Code::InvalidCurrency => "invalid_currency",
            Code::TooLong => "too_long",
            Code::MessageTooLarge => "message_too_large",
            Code::BatchTooLarge => "batch_too_large",
            Code::TooManyMessages => "too_many_messages",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem: where, what, and how bad.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Dotted JSON path of the field (`properties.revenue`), or `""` for the whole message.
    pub path: String,
    /// The stable code.
    pub code: Code,
    /// Error or warning.
    pub severity: Severity,
    /// A sentence for people that names the field and the rule.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.path, self.message, self.code)
    }
}

/// All problems of one message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Every problem found, errors and warnings, in field order.
    pub problems: Vec<Problem>,
}

impl Report {
    /// True when there is no error (warnings allowed).
    pub fn is_ok(&self) -> bool {
        !self.problems.iter().any(|p| p.severity == Severity::Error)
    }

    /// The errors only.
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
    }

    /// The warnings only.
    pub fn warnings(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Warning)
    }
}

/// Validates one message against the Spec. Sizes are checked by [`message_size_problem`]
/// and [`batch_size_problem`], since only the caller knows the bytes it received.
pub fn validate(message: &Message) -> Report {
    let mut report = Report::default();
    let has = |key: &str| message.body().get(key).is_some_and(|v| !v.is_null());
    if message.kind() != crate::MessageType::Alias && !has("userId") && !has("anonymousId") {
        report.problems.push(Problem {
            path: "userId".to_owned(),
            code: Code::MissingIdentity,
            severity: Severity::Error,
            message: "userId or anonymousId is required".to_owned(),
        });
    }
    report
}

/// The problem of a message of `len` bytes of JSON, if it is over the limit.
pub fn message_size_problem(len: usize) -> Option<Problem> {
    (len > crate::limits::MAX_MESSAGE_BYTES).then(|| Problem {
        path: String::new(),
        code: Code::MessageTooLarge,
        severity: Severity::Error,
        message: format!(
            "the message is {len} bytes of JSON; the limit is {} bytes (32 KB)",
            crate::limits::MAX_MESSAGE_BYTES
        ),
    })
}

/// The problem of a batch of `len` bytes and `count` messages, if over a limit.
pub fn batch_size_problem(len: usize, count: usize) -> Option<Problem> {
    if len > crate::limits::MAX_BATCH_BYTES {
        return Some(Problem {
            path: String::new(),
            code: Code::BatchTooLarge,
            severity: Severity::Error,
            message: format!(
                "the batch is {len} bytes; the limit is {} bytes (500 KB)",
                crate::limits::MAX_BATCH_BYTES
            ),
        });
    }
    (count > crate::limits::MAX_BATCH_MESSAGES).then(|| Problem {
        path: "batch".to_owned(),
        code: Code::TooManyMessages,
        severity: Severity::Error,
        message: format!(
            "the batch holds {count} messages; the limit is {}",
            crate::limits::MAX_BATCH_MESSAGES
        ),
    })
}
