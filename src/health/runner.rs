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
        let checks = checks
            .into_iter()
            .map(|c| (c, Arc::new(Cell::default())))
            .collect();
        Runner::start_with(checks, on_change)
    }

    /// Starts the thread with the cells given: a reload hands the cells of
    /// checks it keeps unchanged, so their verdicts carry over.
    pub fn start_with(
        checks: Vec<(Check, Arc<Cell>)>,
        on_change: OnChange,
    ) -> std::io::Result<Runner> {
        let (stop, stopped) = smol::channel::bounded::<()>(1);
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
    use crate::health::config::OnFail;
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener};
    use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
    use std::sync::mpsc;

    /// Long enough for a loaded machine; every wait ends on an event.
    const PATIENCE: Duration = Duration::from_secs(60);

    fn tcp_check(
        name: &str,
        probe: Probe,
        interval_ms: u64,
        timeout_ms: u64,
        rise: u32,
        fall: u32,
    ) -> Check {
        Check {
            name: name.into(),
            probe,
            interval: Duration::from_millis(interval_ms),
            timeout: Duration::from_millis(timeout_ms),
            rise,
            fall,
            on_fail: OnFail::Down,
        }
    }

    /// Runs a probe; if it never ends, the test fails instead of hanging.
    fn bounded(f: impl std::future::Future<Output = (Outcome, String)>) -> (Outcome, String) {
        smol::block_on(f.or(async {
            smol::Timer::after(PATIENCE * 2).await;
            panic!("the probe did not end");
        }))
    }

    /// Starts a runner whose changes arrive on the returned channel.
    fn start(checks: Vec<Check>) -> (Runner, mpsc::Receiver<Change>) {
        let (tx, rx) = mpsc::channel();
        let tx = std::sync::Mutex::new(tx);
        let on_change: OnChange = Arc::new(move |c: &Change| {
            let _ = tx.lock().unwrap().send(c.clone());
        });
        (Runner::start(checks, on_change).unwrap(), rx)
    }

    /// An HTTP server answering every request with `status`, counting
    /// answers by status (200 and 503).
    struct App {
        addr: SocketAddr,
        status: Arc<AtomicU16>,
        ok: Arc<AtomicU64>,
        failed: Arc<AtomicU64>,
    }

    fn app() -> App {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let status = Arc::new(AtomicU16::new(200));
        let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (s, o, f) = (status.clone(), ok.clone(), failed.clone());
        // Ends with the test binary; it only ever blocks in accept.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let code = s.load(Ordering::SeqCst);
                let body = "x".repeat(100_000);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {code} Whatever\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                if code == 200 { &o } else { &f }.fetch_add(1, Ordering::SeqCst);
            }
        });
        App {
            addr,
            status,
            ok,
            failed,
        }
    }

    /// An application that starts failing fails its check after exactly
    /// `fall` failed answers, and passes again after exactly `rise` good
    /// ones; the published cell agrees.
    #[test]
    fn http_check_follows_the_application() {
        let app = app();
        let probe = Probe::Http {
            addr: app.addr,
            host: app.addr.to_string(),
            path: "/health".into(),
        };
        // A timeout far above the interval (validation would refuse it; the
        // runner does not care): a loaded machine must not turn a slow
        // answer into a failure the counts below do not expect.
        let (runner, changes) = start(vec![tcp_check("app", probe, 100, 30_000, 2, 3)]);
        let cell = runner.checks()[0].1.clone();
        let first = changes.recv_timeout(PATIENCE).unwrap();
        assert_eq!(
            (first.from, first.to, first.outcome),
            (Verdict::Unknown, Verdict::Passing, Outcome::Http(200))
        );

        app.status.store(503, Ordering::SeqCst);
        let down = changes.recv_timeout(PATIENCE).unwrap();
        assert_eq!(
            (down.from, down.to, down.outcome, down.count),
            (Verdict::Passing, Verdict::Failing, Outcome::Http(503), 3)
        );
        // More runs may have happened since the change (the reader can be
        // late on a busy machine): at least the three it counted.
        assert!(
            app.failed.load(Ordering::SeqCst) >= 3,
            "failing after fall = 3 answers"
        );
        assert_eq!(cell.verdict(), Verdict::Failing);
        assert_eq!(
            down.describe(),
            "check app failing after 3 failures: HTTP 503"
        );

        let ok_before = app.ok.load(Ordering::SeqCst);
        app.status.store(200, Ordering::SeqCst);
        let up = changes.recv_timeout(PATIENCE).unwrap();
        assert_eq!(
            (up.from, up.to, up.outcome, up.count),
            (Verdict::Failing, Verdict::Passing, Outcome::Http(200), 2),
            "passing after exactly rise = 2 answers"
        );
        assert!(app.ok.load(Ordering::SeqCst) - ok_before >= 2);
        let status = cell.status();
        assert_eq!(
            (status.verdict, status.fails, status.last),
            (Verdict::Passing, 0, Some(Outcome::Http(200)))
        );
        assert!(status.failures_total >= 3);
    }

    /// The inode of our socket connected from `local` to `remote`, from
    /// /proc/net/tcp.
    fn socket_inode(local: SocketAddr, remote: SocketAddr) -> Option<String> {
        let text = std::fs::read_to_string("/proc/net/tcp").ok()?;
        let hex = |a: SocketAddr| format!(":{:04X}", a.port());
        text.lines().skip(1).find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 9 && f[1].ends_with(&hex(local)) && f[2].ends_with(&hex(remote)))
                .then(|| f[9].to_string())
        })
    }

    /// What our descriptors point at.
    fn fd_targets() -> Vec<String> {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .map(|p| p.display().to_string())
            .collect()
    }

    /// A server that accepts and never answers: the check times out,
    /// fails, and its socket is closed (the server sees the end of the
    /// connection, and no descriptor of ours points at that socket).
    #[test]
    fn hanging_http_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let (mut stream, peer) = listener.accept().unwrap();
            let inode = socket_inode(peer, addr);
            let mut buf = [0u8; 4096];
            // Read the request, answer nothing, wait for the close.
            let end = loop {
                match stream.read(&mut buf) {
                    Ok(0) => break "closed",
                    Ok(_) => continue,
                    Err(_) => break "reset",
                }
            };
            let _ = tx.send((inode, end));
        });
        let probe_at = Probe::Http {
            addr,
            host: addr.to_string(),
            path: "/".into(),
        };
        let (outcome, _) = bounded(probe(&probe_at, Duration::from_millis(200)));
        assert_eq!(outcome, Outcome::TimedOut);
        let (inode, end) = rx.recv_timeout(PATIENCE).unwrap();
        assert!(end == "closed" || end == "reset");
        let inode = inode.expect("the check's socket was in /proc/net/tcp while it hung");
        let socket = format!("socket:[{inode}]");
        assert!(!fd_targets().contains(&socket), "{socket} is still open");
    }

    /// An exec check that hangs is killed at its timeout, with what it
    /// started, and counts as failed: its process is reaped (no zombie),
    /// the grandchild is killed, no output file stays open.
    #[test]
    fn hanging_exec_check_is_killed() {
        let dir = std::env::temp_dir().join(format!("hapgent-exec-check-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (child, grandchild) = (dir.join("child"), dir.join("grandchild"));
        let script = format!(
            "echo $$ > {}; sleep 600 & echo $! > {}; echo hanging; wait",
            child.display(),
            grandchild.display()
        );
        let argv = vec!["/bin/sh".to_string(), "-c".into(), script];
        let (runner, changes) = start(vec![tcp_check("slow", Probe::Exec(argv), 2000, 1000, 1, 1)]);
        let change = changes.recv_timeout(PATIENCE).unwrap();
        assert_eq!(
            (change.to, change.outcome),
            (Verdict::Failing, Outcome::TimedOut)
        );
        drop(runner);
        let pid = |f: &std::path::Path| -> u32 {
            std::fs::read_to_string(f).unwrap().trim().parse().unwrap()
        };
        // process::run reaps the child before the result is recorded.
        let child = pid(&child);
        assert!(
            !std::path::Path::new(&format!("/proc/{child}")).exists(),
            "check process {child} is left (a zombie?)"
        );
        // The grandchild got SIGKILL; once delivered it is gone or a
        // zombie of init (bounded wait on the event).
        let grandchild = pid(&grandchild);
        let gone = (0..1200).any(|_| {
            let stat =
                std::fs::read_to_string(format!("/proc/{grandchild}/stat")).unwrap_or_default();
            let dead = stat.is_empty() || stat.contains(") Z");
            if !dead {
                std::thread::sleep(Duration::from_millis(50));
            }
            dead
        });
        assert!(gone, "sleep {grandchild} survived the timeout");
        let leaked: Vec<String> = fd_targets()
            .into_iter()
            .filter(|t| t.contains(".hapgent-output."))
            .collect();
        assert!(leaked.is_empty(), "{leaked:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tcp_check_connects_or_is_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (outcome, _) = bounded(probe(&Probe::Tcp(addr), PATIENCE));
        assert_eq!(outcome, Outcome::Connected);
        drop(listener);
        let (outcome, _) = bounded(probe(&Probe::Tcp(addr), PATIENCE));
        assert_eq!(outcome, Outcome::Refused);
    }

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
            (
                c(Passing, Failing, Outcome::Http(503), 2, ""),
                "check app failing after 2 failures: HTTP 503",
            ),
            (
                c(Passing, Failing, Outcome::TimedOut, 1, ""),
                "check app failing after 1 failure: timed out",
            ),
            (
                c(Failing, Passing, Outcome::Exit(0), 2, ""),
                "check app passing after 2 passes: exit 0",
            ),
            (
                c(Unknown, Failing, Outcome::Exit(3), 1, "replica lag 40s"),
                "check app failing at its first run: exit 3 (replica lag 40s)",
            ),
            (
                c(Unknown, Passing, Outcome::Connected, 1, ""),
                "check app passing at its first run: connected",
            ),
        ];
        for (change, want) in cases {
            assert_eq!(change.describe(), want);
        }
    }
}
