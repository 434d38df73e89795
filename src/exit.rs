//! The errors that end the process, and the exit code of each kind.
//!
//! Only failures that end a command live here: hapgent failing to start, or
//! a `hapgent ctl` command failing. Everything that
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
    /// `hapgent ctl`: the agent is not running or not reachable.
    Unavailable(String),
    /// `hapgent ctl`: the agent refused this user.
    NoPermission(String),
    /// `hapgent ctl --wait-seen`: not every load balancer confirmed in time.
    NotSeen(String),
}

impl Error {
    /// Exit code, following sysexits(3) so service managers and scripts can
    /// tell a mistake that a restart cannot fix (64, 78) from one it might
    /// (1), and `hapgent ctl`'s outcomes apart (69, 75, 77).
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Error::Usage(_) => 64,
            Error::Config(_) => 78,
            Error::Runtime(_) => 1,
            Error::Unavailable(_) => 69,
            Error::NotSeen(_) => 75,
            Error::NoPermission(_) => 77,
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) => write!(f, "{m} (try --help)"),
            Error::Config(m) => write!(f, "configuration: {m}"),
            Error::Runtime(m)
            | Error::Unavailable(m)
            | Error::NoPermission(m)
            | Error::NotSeen(m) => f.write_str(m),
        }
    }
}
