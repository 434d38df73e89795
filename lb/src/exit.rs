//! The errors that end a command, and the exit code of each kind.
//!
//! Codes follow sysexits(3) so scripts and service managers can tell a
//! mistake a retry cannot fix (64, 78) from a situation that may pass (69,
//! 75). `serve` logs what goes wrong per request and keeps serving; only
//! failures to start end up here.

use std::fmt;
use std::process::ExitCode;

/// Why a command failed. The message is one line saying what failed, where,
/// and when useful what to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Error {
    /// The command line is malformed: unknown flag, missing value. Exit 64.
    Usage(String),
    /// HAProxy's runtime API could not be reached or answered nonsense.
    /// Exit 69 (EX_UNAVAILABLE).
    Unavailable(String),
    /// `wait` ran out of time; the message is the last observed state.
    /// Exit 75 (EX_TEMPFAIL): trying again later may succeed.
    Timeout(String),
    /// A setting is unknown or invalid, wherever it came from. Exit 78.
    Config(String),
    /// Anything else: a named server that does not exist, a socket that
    /// cannot be bound. Exit 1.
    Runtime(String),
}

impl Error {
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Error::Usage(_) => 64,
            Error::Unavailable(_) => 69,
            Error::Timeout(_) => 75,
            Error::Config(_) => 78,
            Error::Runtime(_) => 1,
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) => write!(f, "{m} (try --help)"),
            Error::Config(m) => write!(f, "configuration: {m}"),
            Error::Timeout(m) => write!(f, "timed out: {m}"),
            Error::Unavailable(m) | Error::Runtime(m) => f.write_str(m),
        }
    }
}
