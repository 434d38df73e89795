//! The errors that end the process, and the exit code of each kind.
//!
//! Only failures that stop hapgent from starting live here. Everything that
//! can go wrong while it runs (a bad state file, a failed save, a client that
//! resets) is logged where it happens and the agent keeps answering, because
//! an agent that exits leaves HAProxy with the last state it heard.

use std::fmt;
use std::process::ExitCode;

/// Why hapgent could not start. The message is one complete line that says
/// what failed, where, and when useful what to do about it.
#[derive(Debug, PartialEq, Eq)]
pub enum Error {
    /// The command line itself is malformed: unknown flag, missing value.
    Usage(String),
    /// A setting is unknown or invalid, wherever it came from.
    Config(String),
    /// The environment refused: address in use, permission denied, ...
    Runtime(String),
}

impl Error {
    /// Exit code, following sysexits(3) so service managers can tell a
    /// mistake that a restart cannot fix (64, 78) from one it might (1).
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Error::Usage(_) => 64,
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
            Error::Runtime(m) => f.write_str(m),
        }
    }
}
