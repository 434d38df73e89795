//! A check's results: what one run found, the rise/fall state machine, and
//! the cell the runner publishes them in.
//!
//! A check starts **unknown**, and unknown changes nothing in the reply:
//! an agent restarted on a healthy host must not mark it down (the Zig
//! hapgent's Ansible role did that on every run), and one that restarts on
//! a sick host is corrected by the first result, which the runner takes at
//! once. The first result alone decides (like HAProxy, which starts a
//! server as up and lets the first failed check take it down); after that
//! it takes `fall` consecutive failures to fail and `rise` consecutive
//! passes to pass again.
//!
//! [`step`] is the state machine, pure. [`Cell`] holds the latest verdict
//! and figures in atomics: the thread that answers probes only loads them,
//! never waits for a check and never takes a lock. Fields are stored one
//! by one, so a reader may see the figures of two neighbouring runs mixed;
//! the verdict itself is always one that [`step`] produced.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// What one run of a check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An HTTP response with this status: 2xx and 3xx pass.
    Http(u16),
    /// A TCP connection was established: passes.
    Connected,
    /// The program exited with this code: 0 passes.
    Exit(i32),
    /// The program was ended by this signal.
    Signal(i32),
    /// The run took longer than its timeout (an exec's group was killed).
    TimedOut,
    /// Connection refused.
    Refused,
    /// Any other socket error, as an errno.
    Error(i32),
    /// An answer that is not HTTP, or a connection closed before the
    /// status line.
    BadReply,
    /// The program could not be started.
    NotRun,
}

impl Outcome {
    pub fn passed(self) -> bool {
        matches!(
            self,
            Outcome::Http(200..=399) | Outcome::Connected | Outcome::Exit(0)
        )
    }

    /// For an operator: "HTTP 503", "exit 1", "timed out".
    pub fn describe(self) -> String {
        match self {
            Outcome::Http(code) => format!("HTTP {code}"),
            Outcome::Connected => "connected".into(),
            Outcome::Exit(code) => format!("exit {code}"),
            Outcome::Signal(sig) => format!("killed by signal {sig}"),
            Outcome::TimedOut => "timed out".into(),
            Outcome::Refused => "connection refused".into(),
            Outcome::Error(errno) => std::io::Error::from_raw_os_error(errno).to_string(),
            Outcome::BadReply => "not an HTTP response".into(),
            Outcome::NotRun => "could not be started".into(),
        }
    }

    /// Packs into a u64 (kind in the high half, value in the low) so that
    /// it can live in an atomic.
    fn encode(self) -> u64 {
        let (kind, value): (u64, i64) = match self {
            Outcome::Http(c) => (1, c.into()),
            Outcome::Connected => (2, 0),
            Outcome::Exit(c) => (3, c.into()),
            Outcome::Signal(s) => (4, s.into()),
            Outcome::TimedOut => (5, 0),
            Outcome::Refused => (6, 0),
            Outcome::Error(e) => (7, e.into()),
            Outcome::BadReply => (8, 0),
            Outcome::NotRun => (9, 0),
        };
        (kind << 32) | (value as u64 & 0xffff_ffff)
    }

    fn decode(bits: u64) -> Option<Outcome> {
        let value = (bits & 0xffff_ffff) as u32 as i32;
        Some(match bits >> 32 {
            1 => Outcome::Http(value as u16),
            2 => Outcome::Connected,
            3 => Outcome::Exit(value),
            4 => Outcome::Signal(value),
            5 => Outcome::TimedOut,
            6 => Outcome::Refused,
            7 => Outcome::Error(value),
            8 => Outcome::BadReply,
            9 => Outcome::NotRun,
            _ => return None,
        })
    }
}

/// Where a check stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No result yet: changes nothing.
    Unknown,
    Passing,
    Failing,
}

/// The state machine's memory: the verdict and the current run of equal
/// results (one of the two counts is always 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tally {
    pub verdict: Verdict,
    /// Consecutive passes so far.
    pub passes: u32,
    /// Consecutive failures so far.
    pub fails: u32,
}

impl Tally {
    pub const START: Tally = Tally {
        verdict: Verdict::Unknown,
        passes: 0,
        fails: 0,
    };
}

/// The tally after one more result.
pub fn step(tally: Tally, passed: bool, rise: u32, fall: u32) -> Tally {
    let (passes, fails) = if passed {
        (tally.passes.saturating_add(1), 0)
    } else {
        (0, tally.fails.saturating_add(1))
    };
    let verdict = match tally.verdict {
        Verdict::Unknown if passed => Verdict::Passing,
        Verdict::Unknown => Verdict::Failing,
        Verdict::Passing if fails >= fall => Verdict::Failing,
        Verdict::Failing if passes >= rise => Verdict::Passing,
        v => v,
    };
    Tally {
        verdict,
        passes,
        fails,
    }
}

/// A check's latest state, as published by the runner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub verdict: Verdict,
    /// The last run's outcome; `None` before the first.
    pub last: Option<Outcome>,
    /// Consecutive failures up to the last run.
    pub fails: u32,
    /// How long the last run took.
    pub duration: Duration,
    pub runs_total: u64,
    pub failures_total: u64,
}

/// One check's published state: written by the runner thread only, read
/// anywhere with plain atomic loads.
#[derive(Debug, Default)]
pub struct Cell {
    verdict: AtomicU8,
    passes: AtomicU32,
    fails: AtomicU32,
    last: AtomicU64,
    duration_us: AtomicU64,
    runs_total: AtomicU64,
    failures_total: AtomicU64,
}

fn verdict_code(v: Verdict) -> u8 {
    match v {
        Verdict::Unknown => 0,
        Verdict::Passing => 1,
        Verdict::Failing => 2,
    }
}

impl Cell {
    /// The verdict: what the reply needs, one load.
    pub fn verdict(&self) -> Verdict {
        match self.verdict.load(Ordering::Acquire) {
            1 => Verdict::Passing,
            2 => Verdict::Failing,
            _ => Verdict::Unknown,
        }
    }

    fn tally(&self) -> Tally {
        Tally {
            verdict: self.verdict(),
            passes: self.passes.load(Ordering::Relaxed),
            fails: self.fails.load(Ordering::Relaxed),
        }
    }

    /// Records one run; returns the verdict before and after. Called by
    /// the one task that runs this check.
    pub fn record(
        &self,
        outcome: Outcome,
        took: Duration,
        rise: u32,
        fall: u32,
    ) -> (Verdict, Verdict) {
        let before = self.tally();
        let after = step(before, outcome.passed(), rise, fall);
        self.passes.store(after.passes, Ordering::Relaxed);
        self.fails.store(after.fails, Ordering::Relaxed);
        self.last.store(outcome.encode(), Ordering::Relaxed);
        self.duration_us.store(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.runs_total.fetch_add(1, Ordering::Relaxed);
        if !outcome.passed() {
            self.failures_total.fetch_add(1, Ordering::Relaxed);
        }
        // Last, with release: whoever sees the new verdict sees the
        // figures that led to it.
        self.verdict
            .store(verdict_code(after.verdict), Ordering::Release);
        (before.verdict, after.verdict)
    }

    /// Everything, for `ctl status`, metrics and the explanation.
    pub fn status(&self) -> Status {
        let verdict = self.verdict();
        Status {
            verdict,
            last: Outcome::decode(self.last.load(Ordering::Relaxed)),
            fails: self.fails.load(Ordering::Relaxed),
            duration: Duration::from_micros(self.duration_us.load(Ordering::Relaxed)),
            runs_total: self.runs_total.load(Ordering::Relaxed),
            failures_total: self.failures_total.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::*;

    /// Feeds results (`p` pass, `f` fail) and lists the verdict after each.
    fn run(results: &str, rise: u32, fall: u32) -> Vec<Verdict> {
        let mut t = Tally::START;
        results
            .chars()
            .map(|c| {
                t = step(t, c == 'p', rise, fall);
                t.verdict
            })
            .collect()
    }

    #[test]
    fn rise_and_fall() {
        let cases: &[(&str, u32, u32, &[Verdict])] = &[
            // The first result decides alone, either way.
            ("p", 2, 3, &[Passing]),
            ("f", 2, 3, &[Failing]),
            // fall consecutive failures fail; a pass in between resets.
            ("pfff", 2, 3, &[Passing, Passing, Passing, Failing]),
            (
                "pffpff",
                2,
                3,
                &[Passing, Passing, Passing, Passing, Passing, Passing],
            ),
            // rise consecutive passes pass again.
            ("fpp", 2, 3, &[Failing, Failing, Passing]),
            (
                "fpfpp",
                2,
                3,
                &[Failing, Failing, Failing, Failing, Passing],
            ),
            // rise = fall = 1 follows every result.
            ("pfpf", 1, 1, &[Passing, Failing, Passing, Failing]),
            // Down and back up.
            (
                "pffppp",
                3,
                2,
                &[Passing, Passing, Failing, Failing, Failing, Passing],
            ),
        ];
        for (results, rise, fall, want) in cases {
            assert_eq!(
                run(results, *rise, *fall),
                *want,
                "{results} rise {rise} fall {fall}"
            );
        }
        let t = step(step(Tally::START, true, 2, 3), false, 2, 3);
        assert_eq!((t.passes, t.fails), (0, 1));
    }

    #[test]
    fn outcomes() {
        let cases = [
            (Outcome::Http(200), true, "HTTP 200"),
            (Outcome::Http(302), true, "HTTP 302"),
            (Outcome::Http(399), true, "HTTP 399"),
            (Outcome::Http(199), false, "HTTP 199"),
            (Outcome::Http(404), false, "HTTP 404"),
            (Outcome::Http(503), false, "HTTP 503"),
            (Outcome::Connected, true, "connected"),
            (Outcome::Exit(0), true, "exit 0"),
            (Outcome::Exit(1), false, "exit 1"),
            (Outcome::Exit(-1), false, "exit -1"),
            (Outcome::Signal(9), false, "killed by signal 9"),
            (Outcome::TimedOut, false, "timed out"),
            (Outcome::Refused, false, "connection refused"),
            (Outcome::BadReply, false, "not an HTTP response"),
            (Outcome::NotRun, false, "could not be started"),
        ];
        for (o, passed, text) in cases {
            assert_eq!((o.passed(), o.describe().as_str()), (passed, text), "{o:?}");
            assert_eq!(Outcome::decode(o.encode()), Some(o));
        }
        assert!(
            Outcome::Error(libc::EHOSTUNREACH)
                .describe()
                .contains("route")
        );
        assert_eq!(
            Outcome::decode(Outcome::Error(113).encode()),
            Some(Outcome::Error(113))
        );
        assert_eq!(Outcome::decode(0), None);
    }

    #[test]
    fn cell_publishes() {
        let cell = Cell::default();
        assert_eq!(cell.status().verdict, Unknown);
        assert_eq!(cell.status().last, None);
        let ms = Duration::from_millis;
        assert_eq!(
            cell.record(Outcome::Http(200), ms(3), 2, 2),
            (Unknown, Passing)
        );
        assert_eq!(
            cell.record(Outcome::Http(503), ms(4), 2, 2),
            (Passing, Passing)
        );
        assert_eq!(
            cell.record(Outcome::TimedOut, ms(500), 2, 2),
            (Passing, Failing)
        );
        assert_eq!(
            cell.status(),
            Status {
                verdict: Failing,
                last: Some(Outcome::TimedOut),
                fails: 2,
                duration: ms(500),
                runs_total: 3,
                failures_total: 2,
            }
        );
    }
}
