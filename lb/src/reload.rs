//! Putting a new HAProxy configuration into effect, and learning from
//! HAProxy's processes whether it took.
//!
//! `trigger` asks HAProxy to reload with the configured strategy. `observe`
//! then decides the outcome from HAProxy's process state, never from the
//! configuration's content:
//!
//! - HAProxy ≥ 2.7 answers the master CLI's `reload` with `Success=0` when
//!   the new configuration did not load (the old workers keep running);
//! - with a master socket, `show proc` lists a *new* worker PID (one that
//!   was not a worker before), and the runtime API must be answered by that
//!   worker (so it has started: chroot, user switch and binds are done), or
//!   the master counts a failed reload with no new worker (2.6 answers
//!   `reload` with nothing, so this is how 2.6 says it), or HAProxy is
//!   down: the master process is gone, or lists no worker at all after the
//!   reload (a new worker that died at start makes the master kill every
//!   worker and exit; 2.6's master may linger until the old ones are gone);
//! - without a master socket, the runtime API answered by a different
//!   process than before is the new configuration; a reload command that
//!   fails means it was not loaded.
//!
//! Anything else is still pending; at `reload_timeout` the outcome is
//! unknown. The deciding step, `judge`, is pure and table-tested.

use crate::config::{Config, Strategy};
use crate::procs::Procs;
use crate::runtime;
use std::time::{Duration, Instant};

/// Longest a reload or start command may run before its process group is
/// killed.
const COMMAND_DEADLINE: Duration = Duration::from_secs(60);

/// What HAProxy looked like before the reload.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Before {
    /// The PID answering the runtime API.
    pub pid: Option<u32>,
    /// `show proc`, when a master socket is configured and answered.
    pub procs: Option<Procs>,
}

impl Before {
    /// The worker PIDs that ran the previous configuration.
    pub fn workers(&self) -> Vec<u32> {
        match &self.procs {
            Some(p) => p.workers.clone(),
            None => self.pid.into_iter().collect(),
        }
    }
}

/// What the reload request itself answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The master CLI's `Success=1`/`Success=0` (HAProxy ≥ 2.7).
    Success(bool),
    /// The master CLI answered without `Success=` (2.6, or a master that
    /// died while reloading).
    Silent,
    /// The reload command (systemd or command strategy) exited 0 or not.
    Command(bool),
    /// The reload command was killed at its deadline.
    Killed,
}

/// One look at HAProxy while waiting for the reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The PID answering the runtime API.
    pub pid: Result<u32, String>,
    /// `show proc` (None without a master socket).
    pub procs: Option<Result<Procs, String>>,
    /// Whether the master that ran before still exists (None: unknown).
    pub master_alive: Option<bool>,
}

/// The outcome of one look.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The new configuration runs in this worker.
    Live(u32),
    /// It did not load; the previous workers keep running.
    Failed(String),
    /// HAProxy is not running any more.
    Down(String),
    Pending(String),
}

/// Decides from one look whether the new configuration is live, failed,
/// took HAProxy down, or is still on its way.
pub fn judge(before: &Before, answer: Answer, seen: &Seen) -> Verdict {
    let old = before.workers();
    match answer {
        Answer::Success(false) => {
            return Verdict::Failed(format!(
                "HAProxy's master answered Success=0: the new configuration did not load; the previous workers {old:?} keep running"
            ));
        }
        Answer::Command(false) => {
            return Verdict::Failed(
                "the reload command failed, so HAProxy did not load the new configuration".into(),
            );
        }
        _ => {}
    }
    if let (Some(b), Some(now)) = (&before.procs, &seen.procs) {
        return match now {
            Ok(p) => {
                let new: Vec<u32> = p
                    .workers
                    .iter()
                    .copied()
                    .filter(|w| !b.workers.contains(w))
                    .collect();
                match &seen.pid {
                    Ok(pid) if new.contains(pid) => Verdict::Live(*pid),
                    _ if !new.is_empty() => Verdict::Pending(format!(
                        "new worker {new:?} started but does not answer the runtime API yet"
                    )),
                    _ if p.reloads > b.reloads && p.failed > b.failed => Verdict::Failed(format!(
                        "HAProxy's master counted a failed reload (failed reloads {} -> {}) and started no new worker; the previous workers {:?} keep running",
                        b.failed, p.failed, p.workers
                    )),
                    // The master lists a reload's new worker as soon as
                    // it answers again: none at all means it died at
                    // start, and the old ones are stopping.
                    _ if p.reloads > b.reloads && p.workers.is_empty() => Verdict::Down(format!(
                        "the new worker exited at start and HAProxy's master (PID {}) has no worker left",
                        p.master
                    )),
                    _ => Verdict::Pending(format!(
                        "the master has not reloaded yet (reloads {})",
                        p.reloads
                    )),
                }
            }
            Err(e) if seen.master_alive == Some(false) => Verdict::Down(format!(
                "HAProxy's master (PID {}) exited: the new worker failed at start and took HAProxy down ({e})",
                b.master
            )),
            Err(e) => Verdict::Pending(e.clone()),
        };
    }
    match &seen.pid {
        Ok(pid) if before.pid != Some(*pid) => Verdict::Live(*pid),
        Ok(pid) => Verdict::Pending(format!(
            "the runtime API is still answered by the old process {pid}"
        )),
        Err(e) => Verdict::Pending(e.clone()),
    }
}

/// Whether process `pid` exists and is not a zombie; one that cannot be
/// looked at (a hardened /proc) counts as alive: never "down" without
/// knowing.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_none_or(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
    }
}

/// `show proc` on the master socket.
pub async fn show_proc(master: &std::path::Path) -> Result<Procs, String> {
    runtime::procs(master).await
}

/// Looks at HAProxy now.
async fn look(config: &Config, before: &Before) -> Seen {
    let procs = match &config.master_socket {
        Some(m) => Some(show_proc(m).await),
        None => None,
    };
    let master_alive = match (&procs, &before.procs) {
        (Some(Err(_)), Some(b)) => Some(alive(b.master)),
        _ => None,
    };
    Seen {
        pid: runtime::pid(&config.haproxy_socket).await,
        procs,
        master_alive,
    }
}

/// Records what HAProxy looks like before a reload.
pub async fn before(config: &Config) -> Before {
    let procs = match &config.master_socket {
        Some(m) => show_proc(m).await.ok(),
        None => None,
    };
    Before {
        pid: runtime::pid(&config.haproxy_socket).await.ok(),
        procs,
    }
}

/// Asks HAProxy to reload: what it answered (or the command's output).
/// Err if the request could not be made at all (nothing was reloaded).
pub async fn trigger(config: &Config) -> Result<(Answer, String), String> {
    match config.reload {
        Strategy::MasterSocket => {
            let master = config
                .master_socket
                .as_deref()
                .ok_or("reload = master-socket but no master_socket is set")?;
            let out = runtime::query(master, "reload").await?;
            Ok((master_answer(&out), out))
        }
        Strategy::Systemd => {
            let unit = config.systemd_unit.clone();
            run(&["systemctl".to_string(), "reload".to_string(), unit]).await
        }
        Strategy::Command => run(&config.reload_command).await,
    }
}

/// Reads the master CLI's answer to `reload`: HAProxy 2.7+ answer
/// `Success=1` or `Success=0` (with the startup log); 2.6 answers nothing.
pub fn master_answer(out: &str) -> Answer {
    let mut lines = out.lines().map(str::trim);
    if lines.clone().any(|l| l == "Success=0") {
        Answer::Success(false)
    } else if lines.any(|l| l == "Success=1") {
        Answer::Success(true)
    } else {
        Answer::Silent
    }
}

/// Runs an argv without a shell, killed at its deadline.
async fn run(argv: &[String]) -> Result<(Answer, String), String> {
    let (program, args) = argv.split_first().ok_or("empty command")?;
    let mut command = std::process::Command::new(program);
    command.args(args);
    let f = hapgent_common::process::run(command, COMMAND_DEADLINE)
        .await
        .map_err(|e| format!("{}: {e}", argv.join(" ")))?;
    let answer = match f.status {
        None => Answer::Killed,
        Some(s) => Answer::Command(s.success()),
    };
    let output = match f.status {
        Some(s) if s.success() => f.output,
        Some(s) => format!("{} failed ({s}): {}", argv.join(" "), f.output),
        None => format!(
            "{} was killed after {} s: {}",
            argv.join(" "),
            COMMAND_DEADLINE.as_secs(),
            f.output
        ),
    };
    Ok((answer, output))
}

/// The outcome of a reload.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Live(u32),
    Failed(String),
    Down(String),
    /// Still pending at `reload_timeout`: what was last seen.
    Unknown(String),
}

/// Polls until the reload's outcome is known or `reload_timeout` passes.
pub async fn observe(config: &Config, before: &Before, answer: Answer) -> Outcome {
    let deadline = Instant::now() + Duration::from_millis(config.reload_timeout);
    loop {
        let last = match judge(before, answer, &look(config, before).await) {
            Verdict::Live(pid) => return Outcome::Live(pid),
            Verdict::Failed(why) => return Outcome::Failed(why),
            Verdict::Down(why) => return Outcome::Down(why),
            Verdict::Pending(why) => why,
        };
        if Instant::now() >= deadline {
            return Outcome::Unknown(format!(
                "the outcome is not known after {} ms: {last}",
                config.reload_timeout
            ));
        }
        runtime::sleep(Duration::from_millis(config.poll_interval)).await;
    }
}

/// The command that starts HAProxy when it is down: `start_command`, or
/// `systemctl start` for the systemd strategy.
pub fn start_argv(config: &Config) -> Option<Vec<String>> {
    if !config.start_command.is_empty() {
        return Some(config.start_command.clone());
    }
    match config.reload {
        Strategy::Systemd => Some(vec![
            "systemctl".into(),
            "start".into(),
            config.systemd_unit.clone(),
        ]),
        Strategy::MasterSocket | Strategy::Command => None,
    }
}

/// Brings HAProxy back after a change took it down (the previous file is
/// already restored): reloads a master that still answers (2.6's may
/// linger with no worker), else starts HAProxy. What was done, and the
/// new worker's PID.
pub async fn revive(config: &Config) -> Result<(&'static str, u32), String> {
    if let Some(m) = &config.master_socket
        && let Ok(procs) = show_proc(m).await
    {
        let before = Before {
            pid: runtime::pid(&config.haproxy_socket).await.ok(),
            procs: Some(procs),
        };
        if let Ok((answer, _)) = trigger(config).await
            && let Outcome::Live(worker) = observe(config, &before, answer).await
        {
            return Ok(("reloaded", worker));
        }
        if show_proc(m).await.is_ok() {
            return Err(
                "HAProxy's master still runs but did not start a worker with it; restart HAProxy"
                    .into(),
            );
        }
    }
    start(config).await.map(|w| ("started again", w))
}

/// Starts HAProxy (down) with the configured command and waits until its
/// runtime API answers: the worker's PID.
pub async fn start(config: &Config) -> Result<u32, String> {
    let argv = start_argv(config).ok_or(
        "no way to start HAProxy is configured (set start_command, or use reload = systemd); start it by hand",
    )?;
    let (answer, output) = run(&argv).await?;
    if answer != Answer::Command(true) {
        return Err(format!("starting HAProxy failed: {output}"));
    }
    let deadline = Instant::now() + Duration::from_millis(config.reload_timeout);
    loop {
        match runtime::pid(&config.haproxy_socket).await {
            Ok(pid) => return Ok(pid),
            Err(e) if Instant::now() >= deadline => {
                return Err(format!(
                    "{} ran, but HAProxy does not answer after {} ms: {e}",
                    argv.join(" "),
                    config.reload_timeout
                ));
            }
            Err(_) => runtime::sleep(Duration::from_millis(config.poll_interval)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn procs(reloads: u64, failed: u64, workers: &[u32]) -> Procs {
        Procs {
            master: 1,
            reloads,
            failed,
            workers: workers.to_vec(),
            old_workers: Vec::new(),
        }
    }

    #[test]
    fn processes_alive_or_not() {
        assert!(alive(std::process::id()));
        // PIDs are at most 2^22 on Linux.
        assert!(!alive(u32::MAX));
    }

    #[test]
    fn master_answers() {
        let failed_30 = include_str!("../tests/data/haproxy-3.0/reload-failed.txt");
        let failed_26 = include_str!("../tests/data/haproxy-2.6/reload-failed.txt");
        assert_eq!(master_answer(failed_30), Answer::Success(false));
        assert_eq!(master_answer(failed_26), Answer::Silent);
        assert_eq!(master_answer("Success=1\n--\n"), Answer::Success(true));
    }

    #[test]
    fn verdicts_with_a_master() {
        let before = Before {
            pid: Some(10),
            procs: Some(procs(3, 0, &[10])),
        };
        let seen = |pid: Result<u32, &str>, p: Result<Procs, &str>, alive| Seen {
            pid: pid.map_err(String::from),
            procs: Some(p.map_err(String::from)),
            master_alive: alive,
        };
        let s = Answer::Silent;
        let rows: Vec<(Answer, Seen, &str)> = vec![
            // A new worker answering the runtime API: live, whatever the
            // configuration's content.
            (s, seen(Ok(11), Ok(procs(4, 0, &[11])), None), "live 11"),
            (
                Answer::Success(true),
                seen(Ok(11), Ok(procs(4, 0, &[11])), None),
                "live 11",
            ),
            // New worker listed, the old one still answers: pending.
            (s, seen(Ok(10), Ok(procs(4, 0, &[11])), None), "pending"),
            // 2.6: a failed reload is counted, no new worker.
            (s, seen(Ok(10), Ok(procs(4, 1, &[10])), None), "failed"),
            // 3.0 says so in its answer.
            (
                Answer::Success(false),
                seen(Ok(10), Ok(procs(3, 0, &[10])), None),
                "failed",
            ),
            // Not reloaded yet.
            (s, seen(Ok(10), Ok(procs(3, 0, &[10])), None), "pending"),
            // The new worker died at start; the master is stopping (2.6
            // waits for the old workers first).
            (s, seen(Err("refused"), Ok(procs(4, 0, &[])), None), "down"),
            // The master is gone.
            (s, seen(Err("refused"), Err("refused"), Some(false)), "down"),
            // The master re-executing: unreachable but alive.
            (s, seen(Ok(10), Err("refused"), Some(true)), "pending"),
            (s, seen(Ok(10), Err("refused"), None), "pending"),
        ];
        for (answer, seen, want) in rows {
            let got = match judge(&before, answer, &seen) {
                Verdict::Live(p) => format!("live {p}"),
                Verdict::Failed(_) => "failed".into(),
                Verdict::Down(_) => "down".into(),
                Verdict::Pending(_) => "pending".into(),
            };
            assert_eq!(got, want, "{answer:?} {seen:?}");
        }
    }

    #[test]
    fn verdicts_without_a_master() {
        let before = Before {
            pid: Some(10),
            procs: None,
        };
        let seen = |pid: Result<u32, &str>| Seen {
            pid: pid.map_err(String::from),
            procs: None,
            master_alive: None,
        };
        let rows: Vec<(Answer, Seen, &str)> = vec![
            (Answer::Command(true), seen(Ok(11)), "live 11"),
            (Answer::Command(true), seen(Ok(10)), "pending"),
            (Answer::Command(true), seen(Err("reset")), "pending"),
            (Answer::Command(false), seen(Ok(10)), "failed"),
            (Answer::Killed, seen(Ok(10)), "pending"),
        ];
        for (answer, seen, want) in rows {
            let got = match judge(&before, answer, &seen) {
                Verdict::Live(p) => format!("live {p}"),
                Verdict::Failed(_) => "failed".into(),
                Verdict::Down(_) => "down".into(),
                Verdict::Pending(_) => "pending".into(),
            };
            assert_eq!(got, want, "{answer:?} {seen:?}");
        }
        // HAProxy was down before: any answer is the new configuration.
        assert_eq!(
            judge(&Before::default(), Answer::Command(true), &seen(Ok(5))),
            Verdict::Live(5)
        );
    }
}
