//! Runs the checks: one thread for all of them, never the probe thread.
//!
//! The thread `hapgent-checks` drives a one-thread executor with one task
//! per check; sockets wait on smol's reactor and programs on
//! async-process's reaper, so a thousand checks still need one thread, and
//! a slow check never delays another. Each task runs its check at once,
//! then every `interval` (counted from the start of a run), bounded by its
//! `timeout`; a run that overstays is dropped and counts as failed (an
//! exec's process group is killed and reaped by `hapgent_common::process`
//! first). Each result goes into the check's [`Cell`], which the probe
//! thread reads with atomic loads; a change of verdict is logged once,
//! with its reason, and reported to `on_change` (the agent's doorbell, so
//! the reply is rendered again).
//!
//! Dropping the [`Runner`] stops the thread and cancels what runs. This
//! module does not decide what a failing check does to the reply
//! (`precedence` does).

use super::check::{Cell, Outcome, Verdict};
use super::config::{Check, Probe};
use smol::future::FutureExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Called on each change of a check's verdict, on the checks' thread:
/// keep it short (ring a bell).
pub type OnChange = Arc<dyn Fn(&Change) + Send + Sync>;

/// A check's verdict changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub check: String,
    pub from: Verdict,
    pub to: Verdict,
    pub outcome: Outcome,
    /// Consecutive failures when it failed (or passes when it recovered).
    pub count: u32,
    /// An exec check's first line of output; else empty.
    pub note: String,
}

impl Change {
    /// One log line: "check app failing after 2 failures: HTTP 503".
    pub fn describe(&self) -> String {
        let what = match self.to {
            Verdict::Passing => "passing",
            Verdict::Failing => "failing",
            Verdict::Unknown => "unknown",
        };
        let after = match (self.from, self.to, self.count) {
            (Verdict::Unknown, _, _) => " at its first run".to_string(),
            (_, Verdict::Failing, n) => format!(" after {n} failure{}", plural(n)),
            (_, _, n) => format!(" after {n} pass{}", if n == 1 { "" } else { "es" }),
        };
        let note = if self.note.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.note)
        };
        format!(
            "check {} {what}{after}: {}{note}",
            self.check,
            self.outcome.describe()
        )
    }
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The running checks and their published state.
pub struct Runner {
    checks: Vec<(Check, Arc<Cell>)>,
    /// Dropped with the runner: closes the channel the thread waits on.
    _stop: smol::channel::Sender<()>,
}

impl Runner {
    /// Starts the thread (call it inside `sys::with_signals_blocked`). An
    /// empty list starts no thread.
    pub fn start(checks: Vec<Check>, on_change: OnChange) -> std::io::Result<Runner> {
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let checks: Vec<(Check, Arc<Cell>)> = checks
            .into_iter()
            .map(|c| (c, Arc::new(Cell::default())))
            .collect();
        if !checks.is_empty() {
            let tasks = checks.clone();
            std::thread::Builder::new()
                .name("hapgent-checks".into())
                .stack_size(256 * 1024)
                .spawn(move || {
                    let ex = smol::LocalExecutor::new();
                    for (check, cell) in tasks {
                        ex.spawn(run_check(check, cell, on_change.clone())).detach();
                    }
                    smol::block_on(ex.run(async {
                        let _ = stopped.recv().await;
                    }));
                })?;
        }
        Ok(Runner {
            checks,
            _stop: stop,
        })
    }

    /// The checks and their cells, in configuration order.
    pub fn checks(&self) -> &[(Check, Arc<Cell>)] {
        &self.checks
    }
}

/// Runs one probe; the outcome and a note for the log.
pub async fn probe(probe: &Probe, timeout: Duration) -> (Outcome, String) {
    let timed_out = async {
        smol::Timer::after(timeout).await;
        (Outcome::TimedOut, String::new())
    };
    match probe {
        Probe::Http { addr, host, path } => {
            async { (super::http::get(*addr, host, path).await, String::new()) }
                .or(timed_out)
                .await
        }
        Probe::Tcp(addr) => {
            async { (super::tcp::connect(*addr).await, String::new()) }
                .or(timed_out)
                .await
        }
        // process::run keeps its own deadline and reaps what it killed
        // before returning; the outer bound only guards against a reaper
        // that never answers.
        Probe::Exec(argv) => {
            let guard = async {
                smol::Timer::after(timeout + Duration::from_secs(5)).await;
                (Outcome::TimedOut, String::new())
            };
            super::exec::run(argv, timeout).or(guard).await
        }
    }
}

/// One check, forever: run, publish, wait for the next start.
async fn run_check(check: Check, cell: Arc<Cell>, on_change: OnChange) {
    let mut next = Instant::now();
    loop {
        let started = Instant::now();
        let (outcome, note) = probe(&check.probe, check.timeout).await;
        let (from, to) = cell.record(outcome, started.elapsed(), check.rise, check.fall);
        if from != to {
            let status = cell.status();
            let change = Change {
                check: check.name.clone(),
                from,
                to,
                outcome,
                count: if to == Verdict::Failing {
                    status.fails
                } else {
                    check.rise.min(status.runs_total as u32)
                },
                note,
            };
            if to == Verdict::Failing {
                crate::warn!("{}", change.describe());
            } else {
                crate::info!("{}", change.describe());
            }
            on_change(&change);
        }
        next += check.interval;
        let now = Instant::now();
        if next < now {
            // Fell behind (a suspended machine): start again from now
            // rather than running a burst.
            next = now;
        }
        smol::Timer::at(next).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_lines() {
        let c = |from, to, outcome, count, note: &str| Change {
            check: "app".into(),
            from,
            to,
            outcome,
            count,
            note: note.into(),
        };
        use Verdict::*;
        let cases = [
            (c(Passing, Failing, Outcome::Http(503), 2, ""), "check app failing after 2 failures: HTTP 503"),
            (c(Passing, Failing, Outcome::TimedOut, 1, ""), "check app failing after 1 failure: timed out"),
            (c(Failing, Passing, Outcome::Exit(0), 2, ""), "check app passing after 2 passes: exit 0"),
            (c(Unknown, Failing, Outcome::Exit(3), 1, "replica lag 40s"), "check app failing at its first run: exit 3 (replica lag 40s)"),
            (c(Unknown, Passing, Outcome::Connected, 1, ""), "check app passing at its first run: connected"),
        ];
        for (change, want) in cases {
            assert_eq!(change.describe(), want);
        }
    }
}
