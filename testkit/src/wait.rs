//! Bounded waits: poll a condition until it holds, fail with what was
//! awaited when the deadline passes. The deadline is a safety net for an
//! event that never comes, never a time to wait for.

use std::time::{Duration, Instant};

/// How long any single wait may take before the test fails. Generous,
/// because tests run on busy machines (two cores, both compiling) and
/// every wait returns as soon as its event arrives.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Polls `f` every 10 ms until it returns `Some`; panics naming `what`
/// after `PATIENCE`.
pub fn poll<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    poll_every(PATIENCE, Duration::from_millis(10), what, f)
}

/// `poll` with its own deadline and pace (a slower pace for a condition
/// that costs a request to HAProxy).
pub fn poll_every<T>(
    limit: Duration,
    every: Duration,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < end,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(every);
    }
}

/// Polls `cond` until it holds, for at most `PATIENCE`.
pub fn wait_for(what: &str, cond: impl Fn() -> bool) {
    poll(what, || cond().then_some(()))
}
