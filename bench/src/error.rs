//! Why the benchmark stopped before it could give a report.
//!
//! These are the failures that end a run (exit status 64 for a bad command
//! line, 1 for the rest). A probe that fails is not one of them: it is
//! counted by its kind (`probe::ErrorKind`) and reported with the rest, so
//! that one bad reply does not hide the figures of the others.

use std::fmt;

/// A failure that ends the benchmark; the message says what failed and,
/// where there is one, what to do about it.
#[derive(Debug)]
pub enum Error {
    /// The command line is wrong: exit status 64, with the usage text.
    Usage(String),
    /// A file, directory, socket or process the benchmark needs could not
    /// be made, read or started: what it was doing, and the system's reason.
    Io {
        doing: String,
        source: std::io::Error,
    },
    /// This machine cannot run the benchmark as asked: a binary that is not
    /// there, a port already taken, too low an open-file limit.
    Setup(String),
    /// The agent (or the floor reference) did not start, answer or stay up,
    /// or `hapgent ctl` failed.
    Agent(String),
    /// HAProxy (`--wait-seen`) did not start or did not show the change.
    Haproxy(String),
}

impl Error {
    /// For `map_err`: an I/O error while `doing` something.
    pub fn io(doing: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let doing = doing.into();
        move |source| Error::Io { doing, source }
    }

    /// The exit status: 64 (EX_USAGE) for a bad command line, else 1, the
    /// same as for a failed probe.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 64,
            _ => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) | Error::Setup(m) | Error::Agent(m) | Error::Haproxy(m) => {
                f.write_str(m)
            }
            Error::Io { doing, source } => write!(f, "{doing}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
