//! A tiny stderr logger: one line per event.
//!
//! Both programs log little (startup, state changes, errors, and optionally one
//! line per probe), so a logging framework would cost more bytes than it
//! saves. Under systemd (`JOURNAL_STREAM` set) lines carry a syslog priority
//! prefix such as `<6>` and no timestamp, because journald adds its own; on a
//! terminal or a plain pipe they start with a UTC timestamp and the level.
//!
//! A server that must never stall (the agent answering probes) calls
//! [`start_background`]: from then on lines go through a bounded queue to a
//! writer thread, so a stderr pipe that nobody reads can never block the
//! caller: when the queue is full a line is dropped and counted, and the
//! writer reports "N log lines dropped" as soon as it can write again.
//! Otherwise (startup, short commands) each line is written directly.
//! Either way a line is one `write`, so lines never interleave. [`flush`]
//! before exiting writes what is still queued.
//!
//! A line that an outsider can cause over and over (a refused client, a
//! peer that is gone) goes through a [`Limit`]: the first is logged, then
//! at most one per interval, saying how many were left out.
//!
//! This module does not filter by level or rotate.

use std::fmt;
use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Lines that may wait for the writer thread; about 100 KiB at most.
const QUEUE_LINES: usize = 512;

/// The queue to the writer thread, once started.
static QUEUE: OnceLock<SyncSender<String>> = OnceLock::new();
/// Lines dropped because the queue was full, not yet reported.
static DROPPED: AtomicU64 = AtomicU64::new(0);
/// Lines queued and not yet written.
static PENDING: AtomicUsize = AtomicUsize::new(0);

/// Severity of a line, numbered as syslog priorities so journald can use them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Error = 3,
    Warning = 4,
    Info = 6,
}

impl Level {
    fn word(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Info => "info",
        }
    }
}

/// The program name in lines written to a terminal or a plain pipe.
static PROGRAM: OnceLock<&'static str> = OnceLock::new();

/// Sets the program name that starts each non-journald line (`hapgent`,
/// `hapgent-lb`). Call once, first thing in `main`; later calls are
/// ignored, and lines written before it say `hapgent`.
pub fn init(program: &'static str) {
    let _ = PROGRAM.set(program);
}

fn program() -> &'static str {
    PROGRAM.get().copied().unwrap_or("hapgent")
}

/// Whether stderr is connected to journald; read once, at the first line.
fn journald() -> bool {
    static JOURNALD: OnceLock<bool> = OnceLock::new();
    *JOURNALD.get_or_init(|| std::env::var_os("JOURNAL_STREAM").is_some())
}

/// Writes one line at `level`. Errors writing to stderr are ignored: there is
/// nowhere left to report them, and the program must keep serving.
pub fn write(level: Level, args: fmt::Arguments) {
    let line = format_line(level, args, journald(), program(), SystemTime::now());
    let Some(queue) = QUEUE.get() else {
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
        return;
    };
    PENDING.fetch_add(1, Ordering::SeqCst);
    if queue.try_send(line).is_err() {
        PENDING.fetch_sub(1, Ordering::SeqCst);
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

/// Starts the writer thread; from now on no log call blocks. A program
/// that keeps its signals to one thread starts it with them blocked.
pub fn start_background() -> std::io::Result<()> {
    let (tx, rx) = mpsc::sync_channel::<String>(QUEUE_LINES);
    std::thread::Builder::new()
        .name(format!("{}-log", program()))
        .stack_size(64 * 1024)
        .spawn(move || {
            let mut stderr = std::io::stderr();
            for line in rx {
                let _ = stderr.write_all(line.as_bytes());
                PENDING.fetch_sub(1, Ordering::SeqCst);
                report_dropped(&mut stderr);
            }
        })?;
    let _ = QUEUE.set(tx);
    Ok(())
}

/// Writes the "N log lines dropped" line if any were.
fn report_dropped(out: &mut impl Write) {
    let dropped = DROPPED.swap(0, Ordering::Relaxed);
    if dropped > 0 {
        let args =
            format_args!("{dropped} log lines dropped: stderr was not being read fast enough");
        let line = format_line(
            Level::Warning,
            args,
            journald(),
            program(),
            SystemTime::now(),
        );
        let _ = out.write_all(line.as_bytes());
    }
}

/// Waits, at most `limit`, until every queued line is written: called
/// before the process exits so its last lines are not lost.
pub fn flush(limit: Duration) {
    let deadline = Instant::now() + limit;
    while PENDING.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    if QUEUE.get().is_some() && PENDING.load(Ordering::SeqCst) == 0 {
        report_dropped(&mut std::io::stderr());
    }
}

/// Formats a complete line; pure, so the two shapes are tested directly.
fn format_line(
    level: Level,
    args: fmt::Arguments,
    journald: bool,
    program: &str,
    now: SystemTime,
) -> String {
    if journald {
        format!("<{}>{}\n", level as u8, args)
    } else {
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        format!("{} {program} {}: {}\n", timestamp(secs), level.word(), args)
    }
}

/// Renders seconds since the epoch as an RFC 3339 UTC timestamp.
///
/// Days to civil date follows Howard Hinnant's `civil_from_days`, valid for
/// every date a running system can report.
fn timestamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// How often one kind of line may be logged: the first at once, then at
/// most one per `every`; the lines left out in between are counted and
/// the next line logged says how many. Pure: the caller passes the time.
#[derive(Debug)]
pub struct Limit {
    every: Duration,
    last: Option<Instant>,
    left_out: u64,
}

impl Limit {
    pub const fn new(every: Duration) -> Limit {
        Limit {
            every,
            last: None,
            left_out: 0,
        }
    }

    /// Whether a line may be logged at `now`: `Some` with the text to end
    /// it with (empty, or how many were left out since the last one), or
    /// `None` to leave it out.
    pub fn check(&mut self, now: Instant) -> Option<String> {
        if let Some(last) = self.last
            && now.saturating_duration_since(last) < self.every
        {
            self.left_out += 1;
            return None;
        }
        self.last = Some(now);
        Some(match std::mem::take(&mut self.left_out) {
            0 => String::new(),
            n => format!(
                " ({n} more like it in the last {} s not logged)",
                self.every.as_secs()
            ),
        })
    }
}

/// Logs at info level: `info!("listening on {addr}")`.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Info, format_args!($($arg)*)) };
}

/// Logs at warning level: something is wrong but the agent carries on.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Warning, format_args!($($arg)*)) };
}

/// Logs at error level: something failed and needs an operator.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Error, format_args!($($arg)*)) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn limit_logs_the_first_then_one_per_interval() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut limit = Limit::new(Duration::from_secs(60));
        // (time in ms, what check answers)
        let cases = [
            (0, Some("")),
            (1, None),
            (59_999, None),
            (
                60_000,
                Some(" (2 more like it in the last 60 s not logged)"),
            ),
            (60_001, None),
            (
                200_000,
                Some(" (1 more like it in the last 60 s not logged)"),
            ),
            (300_000, Some("")),
        ];
        for (ms, want) in cases {
            assert_eq!(limit.check(at(ms)).as_deref(), want, "{ms} ms");
        }
    }

    #[test]
    fn timestamps() {
        for (secs, want) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_795_302_440, "2026-11-21T23:07:20Z"),
            (4_102_444_799, "2099-12-31T23:59:59Z"),
        ] {
            assert_eq!(timestamp(secs), want, "{secs}");
        }
    }

    #[test]
    fn line_shapes() {
        let now = UNIX_EPOCH + Duration::from_secs(1_795_302_440);
        assert_eq!(
            format_line(
                Level::Warning,
                format_args!("a {}", 1),
                true,
                "hapgent",
                now
            ),
            "<4>a 1\n"
        );
        assert_eq!(
            format_line(Level::Info, format_args!("b"), false, "hapgent-lb", now),
            "2026-11-21T23:07:20Z hapgent-lb info: b\n"
        );
        assert_eq!(
            format_line(Level::Error, format_args!("c"), true, "x", now),
            "<3>c\n"
        );
    }
}
