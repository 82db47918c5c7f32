//! Exit codes that mean something, and the error type that carries one.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | a runtime failure: IO, network, storage |
//! | 2 | bad input: a flag, a file, a message that fails validation (clap also uses 2) |
//! | 3 | the other side refused: an HTTP status of 400 or more, or events not delivered |
//! | 4 | not found: an unknown connection, source, token or profile |

use std::fmt;
use std::process::ExitCode;

/// Success.
pub const SUCCESS: ExitCode = ExitCode::SUCCESS;
/// A runtime failure.
pub const FAILURE: ExitCode = ExitCode::FAILURE;

/// The kind of failure, which decides the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Bad input (exit 2).
    BadInput,
    /// The remote side refused, or not everything was delivered (exit 3).
    Refused,
    /// Something named does not exist (exit 4).
    NotFound,
}

/// An error with an exit code: `Err(Exit::bad_input("--currency: ..."))?`.
#[derive(Debug)]
pub struct Exit {
    /// The kind, which decides the code.
    pub failure: Failure,
    /// The message for people.
    pub message: String,
}

impl Exit {
    /// Bad input, exit 2. Name the flag and the rule in `message`.
    pub fn bad_input(message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Exit {
            failure: Failure::BadInput,
            message: message.into(),
        })
    }

    /// Refused by the other side, exit 3.
    pub fn refused(message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Exit {
            failure: Failure::Refused,
            message: message.into(),
        })
    }

    /// Not found, exit 4.
    pub fn not_found(message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Exit {
            failure: Failure::NotFound,
            message: message.into(),
        })
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// The exit code for an error: the [`Exit`] kind anywhere in its chain, else 1.
pub fn code_for(err: &anyhow::Error) -> ExitCode {
    match err.chain().find_map(|cause| cause.downcast_ref::<Exit>()) {
        Some(exit) => match exit.failure {
            Failure::BadInput => ExitCode::from(2),
            Failure::Refused => ExitCode::from(3),
            Failure::NotFound => ExitCode::from(4),
        },
        None => FAILURE,
    }
}
