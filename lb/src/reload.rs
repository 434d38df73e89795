//! Putting a new HAProxy configuration into effect, and proving it took.
//!
//! `trigger` asks HAProxy to reload with the configured strategy and
//! returns what it said. `verify` then polls until the change is visible,
//! independent of HAProxy's version: the runtime API must be answered by a
//! different process than before (every reload, master-worker or not,
//! starts new processes) that serves every backend the new file defines.
//! With a master socket, `show proc`'s failed-reload counter ends the wait
//! early, because HAProxy 2.6's `reload` answers nothing either way (2.7+
//! answer `Success=0/1`, which is checked too).
//!
//! The deciding step, `judge`, is pure and table-tested.

use crate::config::{Config, Strategy};
use crate::runtime;
use crate::stat::Procs;
use smol::future::FutureExt;
use std::time::{Duration, Instant};

/// What HAProxy looked like before the reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Before {
    pub pid: Option<u32>,
    pub procs: Option<Procs>,
}

/// One look at HAProxy while waiting for the reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub pid: Result<u32, String>,
    pub procs: Option<Procs>,
    pub backends: Result<Vec<String>, String>,
}

/// The outcome of one look.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Live,
    Failed(String),
    Pending(String),
}

/// Decides from one look whether the new configuration (defining
/// `expected` backends) is live, has failed, or is still on its way.
pub fn judge(before: &Before, seen: &Seen, expected: &[String]) -> Verdict {
    if let (Some(b), Some(s)) = (&before.procs, &seen.procs)
        && let (Some(fb), Some(fs)) = (b.failed, s.failed)
        && fs > fb
    {
        return Verdict::Failed(format!(
            "HAProxy's master reports the reload failed (failed reloads {fb} -> {fs}); the previous workers {:?} keep running",
            s.workers
        ));
    }
    let pid = match &seen.pid {
        Err(e) => return Verdict::Pending(e.clone()),
        Ok(p) => *p,
    };
    if before.pid == Some(pid) {
        return Verdict::Pending(format!(
            "the runtime API is still answered by the old process {pid}"
        ));
    }
    match &seen.backends {
        Err(e) => Verdict::Pending(e.clone()),
        Ok(have) => {
            let missing: Vec<&str> = expected
                .iter()
                .filter(|e| !have.contains(e))
                .map(String::as_str)
                .collect();
            if missing.is_empty() {
                Verdict::Live
            } else {
                Verdict::Pending(format!(
                    "process {pid} does not serve backend(s) {}",
                    missing.join(", ")
                ))
            }
        }
    }
}

/// Looks at HAProxy now.
async fn look(config: &Config) -> Seen {
    let procs = match &config.master_socket {
        Some(m) => runtime::procs(m).await.ok(),
        None => None,
    };
    Seen {
        pid: runtime::pid(&config.haproxy_socket).await,
        procs,
        backends: runtime::backends(&config.haproxy_socket)
            .await
            .map(|bs| bs.into_iter().map(|b| b.name).collect()),
    }
}

/// Records what HAProxy looks like before a reload.
pub async fn before(config: &Config) -> Before {
    let seen = look(config).await;
    Before {
        pid: seen.pid.ok(),
        procs: seen.procs,
    }
}

/// Asks HAProxy to reload; Ok(output) if the request was accepted, Err with
/// HAProxy's or the command's output if it was refused.
pub async fn trigger(config: &Config) -> Result<String, String> {
    match config.reload {
        Strategy::MasterSocket => {
            let master = config
                .master_socket
                .as_deref()
                .ok_or("reload = master-socket but no master_socket is set")?;
            master_answer(runtime::query(master, "reload").await?)
        }
        Strategy::Systemd => {
            let unit = config.systemd_unit.clone();
            run(&["systemctl".to_string(), "reload".to_string(), unit]).await
        }
        Strategy::Command => run(&config.reload_command).await,
    }
}

/// Reads the master CLI's answer to `reload`: HAProxy 2.7+ answer
/// `Success=0` (with the startup log) when the new configuration failed to
/// load, `Success=1` otherwise; 2.6 answers nothing, so `verify` decides.
pub fn master_answer(out: String) -> Result<String, String> {
    if out.lines().any(|l| l.trim() == "Success=0") {
        Err(out)
    } else {
        Ok(out)
    }
}

/// Runs an argv without a shell, with a deadline; its stdout and stderr.
async fn run(argv: &[String]) -> Result<String, String> {
    let (program, args) = argv.split_first().ok_or("empty reload command")?;
    let child = smol::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output();
    let timeout = async {
        smol::Timer::after(Duration::from_secs(60)).await;
        Err(std::io::Error::other("did not finish within 60s"))
    };
    let out = child
        .or(timeout)
        .await
        .map_err(|e| format!("{}: {e}", argv.join(" ")))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!(
            "{} failed ({}): {text}",
            argv.join(" "),
            out.status
        ))
    }
}

/// Polls until the new configuration is live, or fails, or `reload_timeout`
/// passes (then it did not take).
pub async fn verify(config: &Config, before: &Before, expected: &[String]) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_millis(config.reload_timeout);
    loop {
        let last = match judge(before, &look(config).await, expected) {
            Verdict::Live => return Ok(()),
            Verdict::Failed(why) => return Err(why),
            Verdict::Pending(why) => why,
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "the new configuration is not live after {} ms: {last}",
                config.reload_timeout
            ));
        }
        runtime::sleep(Duration::from_millis(config.poll_interval)).await;
    }
}

/// After a failed reload and the old file's restoration: checks that
/// HAProxy answers and serves the old backends; if it does not, reloads
/// once more with the restored file and checks again.
pub async fn ensure_serving(config: &Config, old_backends: &[String]) -> Result<String, String> {
    let serving = |seen: &Seen| match &seen.backends {
        Ok(have) => old_backends.iter().all(|b| have.contains(b)),
        Err(_) => false,
    };
    let seen = look(config).await;
    if serving(&seen) {
        return Ok("HAProxy still serves the previous configuration".into());
    }
    let before = Before {
        pid: seen.pid.ok(),
        procs: seen.procs,
    };
    trigger(config).await?;
    verify(config, &before, old_backends).await?;
    Ok("HAProxy was reloaded with the previous configuration".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn procs(failed: u64, workers: &[u32]) -> Option<Procs> {
        Some(Procs {
            reloads: 0,
            failed: Some(failed),
            workers: workers.to_vec(),
        })
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn master_answers() {
        let failed_30 = include_str!("../tests/data/haproxy-3.0/reload-failed.txt");
        let failed_26 = include_str!("../tests/data/haproxy-2.6/reload-failed.txt");
        let err = master_answer(failed_30.to_string()).unwrap_err();
        assert!(err.contains("cannot bind socket"), "{err}");
        assert_eq!(master_answer(failed_26.to_string()), Ok(String::new()));
        assert!(master_answer("Success=1\n--\n".into()).is_ok());
    }

    #[test]
    fn verdicts() {
        let before = Before {
            pid: Some(10),
            procs: procs(0, &[10]),
        };
        let expected = names(&["web", "new"]);
        let seen = |pid: Result<u32, String>, p, b: Result<&[&str], String>| Seen {
            pid,
            procs: p,
            backends: b.map(names),
        };
        let rows: Vec<(Seen, &str)> = vec![
            (seen(Ok(11), procs(0, &[11]), Ok(&["web", "new"])), "live"),
            (seen(Ok(11), None, Ok(&["web", "new", "x"])), "live"),
            (seen(Ok(10), procs(1, &[10]), Ok(&["web"])), "failed"),
            (seen(Ok(10), procs(0, &[10]), Ok(&["web"])), "pending"),
            (
                seen(Err("refused".into()), None, Err("refused".into())),
                "pending",
            ),
            (seen(Ok(11), procs(0, &[11]), Ok(&["web"])), "pending"),
            (seen(Ok(11), None, Err("reset".into())), "pending"),
        ];
        for (s, want) in rows {
            let got = match judge(&before, &s, &expected) {
                Verdict::Live => "live",
                Verdict::Failed(_) => "failed",
                Verdict::Pending(_) => "pending",
            };
            assert_eq!(got, want, "{s:?}");
        }
        // Without a previous PID (HAProxy was down), any answer with the
        // expected backends is the new configuration.
        let cold = Before {
            pid: None,
            procs: None,
        };
        assert_eq!(
            judge(&cold, &seen(Ok(5), None, Ok(&["web", "new"])), &expected),
            Verdict::Live
        );
    }
}
