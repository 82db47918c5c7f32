//! [`ClientError`]: everything that can go wrong before a message is queued, and the few
//! things that can go wrong setting a client up.
//!
//! Delivery failures are not errors of a call: they arrive later, per message, as
//! [`crate::Outcome`]s.

use spoor_spec::Problem;

/// Why a message was not queued, or a client not built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The message breaks the Spec; nothing was queued. Every problem is listed.
    #[error("invalid message: {}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid {
        /// The problems, each naming the field and the rule.
        problems: Vec<Problem>,
    },
    /// A custom trait or property used a reserved name.
    #[error(transparent)]
    ReservedName(#[from] spoor_spec::ReservedNameError),
    /// The queue is full and the policy is [`crate::FullPolicy::Fail`].
    #[error("the queue is full ({capacity} messages); the message was not queued")]
    QueueFull {
        /// The queue's capacity.
        capacity: usize,
    },
    /// The client was closed; nothing more is accepted.
    #[error("the client is closed")]
    Closed,
    /// The operating system gave no random bytes for a messageId.
    #[error("no random bytes for a messageId: {0}")]
    Random(getrandom::Error),
    /// The HTTP client could not be built (TLS roots, invalid endpoint).
    #[error("cannot build the HTTP client: {0}")]
    Http(#[source] reqwest::Error),
    /// The endpoint is not an absolute http(s) URL.
    #[error("endpoint {endpoint:?} is not an http:// or https:// URL")]
    BadEndpoint {
        /// The endpoint given.
        endpoint: String,
    },
    /// [`crate::Client::new`] was called outside a tokio runtime.
    #[error("the async client needs a tokio runtime; use BlockingClient outside one")]
    NoRuntime,
    /// A blocking call was made from inside an async runtime, where it would deadlock.
    #[error("the blocking client cannot be used inside an async runtime; use Client instead")]
    InsideRuntime,
    /// The blocking client's own runtime could not start.
    #[error("cannot start the blocking client's runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

impl ClientError {
    /// One problem as an [`ClientError::Invalid`].
    pub(crate) fn invalid(path: &str, code: spoor_spec::Code, message: String) -> ClientError {
        ClientError::Invalid {
            problems: vec![Problem {
                path: path.to_owned(),
                code,
                severity: spoor_spec::Severity::Error,
                message,
            }],
        }
    }
}
