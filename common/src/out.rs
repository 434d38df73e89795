//! A command's output on stdout, ending quietly when nobody reads it.
//!
//! std's `print!` panics when stdout is a pipe whose reader has gone
//! (`hapgent-lb status | head -1`: "failed printing to stdout: Broken
//! pipe"), and the release builds abort on a panic. Rust ignores SIGPIPE,
//! so the write fails with EPIPE instead of ending the process as it ends
//! `cat`. Once the reader has gone, nothing more is printed, quietly, but
//! the command still finishes what it does and exits with its own code:
//! a command's exit code can be its answer (`hapgent ctl drain
//! --wait-seen | head -1` still waits, and fails if the change is not
//! seen), so a closed pipe must not turn it into a success. Any other
//! write error (a full disk behind a redirect) is one line on stderr and
//! exit code 1, the programs' runtime failure.
//!
//! Both programs print only through [`out!`](crate::out) and
//! [`outln!`](crate::outln). This module does not log (see `log`).

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether stdout's reader has gone: nothing more is written.
static GONE: AtomicBool = AtomicBool::new(false);

/// What a failed write to stdout means for the program.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// The reader has gone: print nothing more, quietly, and go on.
    Quiet,
    /// Output was lost: say so and fail.
    Failed(String),
}

/// What to do after a write to stdout failed with `error`. Pure.
pub fn ending(error: &io::Error) -> Ending {
    match error.kind() {
        io::ErrorKind::BrokenPipe => Ending::Quiet,
        _ => Ending::Failed(format!("cannot write the output to stdout: {error}")),
    }
}

/// Writes `args` to stdout and flushes it; once stdout is closed, does
/// nothing (see the module's paragraph). Use [`out!`](crate::out).
pub fn print(args: fmt::Arguments) {
    if GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut stdout = io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        match ending(&e) {
            Ending::Quiet => GONE.store(true, Ordering::Relaxed),
            Ending::Failed(message) => {
                crate::error!("{message}");
                std::process::exit(1);
            }
        }
    }
}

/// `print!` that prints nothing, quietly, once stdout is closed.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::out::print(format_args!($($arg)*)) };
}

/// `println!` that prints nothing, quietly, once stdout is closed.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::out::print(format_args!("{}\n", format_args!($($arg)*)))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_pipe_is_quiet_other_errors_are_not() {
        let closed = io::Error::from(io::ErrorKind::BrokenPipe);
        assert_eq!(ending(&closed), Ending::Quiet);
        let epipe = io::Error::from_raw_os_error(libc::EPIPE);
        assert_eq!(ending(&epipe), Ending::Quiet);
        let full = io::Error::from(io::ErrorKind::StorageFull);
        assert_eq!(
            ending(&full),
            Ending::Failed(format!("cannot write the output to stdout: {full}"))
        );
    }
}
