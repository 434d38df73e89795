//! Running a command with a deadline, and making sure it is gone after.
//!
//! A command (`haproxy -c`, a reload command, `systemctl`) runs in its own
//! process group with stdin from /dev/null; its stdout and stderr go to one
//! unlinked temporary file, so a daemon it leaves behind (which may keep
//! the descriptors) can never make the caller wait for an end of file.
//! When the deadline passes, the whole group gets SIGKILL and the command
//! is reaped before [`run`] returns: a caller holding a lock holds it until
//! the command is gone. If the caller's future is dropped first, the group
//! is killed as well.
//!
//! This module decides nothing about what the command's status or output
//! mean.

use std::fs::OpenOptions;
use std::io::{Read, Seek};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Most output kept (the start of it); HAProxy's alerts come first.
const MAX_OUTPUT: u64 = 256 << 10;

/// How a command ended.
#[derive(Debug)]
pub struct Finished {
    /// The exit status; `None` if it was killed at the deadline.
    pub status: Option<ExitStatus>,
    /// stdout and stderr, interleaved as written, lossily UTF-8.
    pub output: String,
}

impl Finished {
    /// Exited with status 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
}

/// Kills the process group when dropped, unless disarmed once reaped.
struct Group(Option<u32>);

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            kill_group(pgid);
        }
    }
}

/// Sends SIGKILL to every process of group `pgid`.
fn kill_group(pgid: u32) {
    let Ok(pgid) = i32::try_from(pgid) else {
        return;
    };
    // A negative PID names the process group this module created for its
    // own child (pgid > 1, so never "every process" or our own group).
    if let Some(pgid) = rustix::process::Pid::from_raw(pgid).filter(|_| pgid > 1) {
        let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
    }
}

/// Runs `command` until it exits or `deadline` passes (then its process
/// group is killed and reaped). Err only if it could not be started.
pub async fn run(mut command: Command, deadline: Duration) -> Result<Finished, String> {
    use smol::future::FutureExt;
    let program = command.get_program().to_string_lossy().into_owned();
    let mut out = output_file().map_err(|e| format!("{program}: no file for its output: {e}"))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("{program}: no file for its output: {e}"))?;
    let stdout = out
        .try_clone()
        .map_err(|e| format!("{program}: no file for its output: {e}"))?;
    command.process_group(0);
    // Stdio is set on smol's command: it resets what `From` carries over.
    let mut child = smol::process::Command::from(command)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(err)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let mut group = Group(Some(child.id()));
    let timeout = async {
        smol::Timer::after(deadline).await;
        None
    };
    let status = async { child.status().await.ok() }.or(timeout).await;
    let status = match status {
        Some(s) => Some(s),
        None => {
            kill_group(child.id());
            let _ = child.status().await;
            None
        }
    };
    // Reaped: nothing left to kill under that id (it may be reused).
    group.0 = None;
    let mut bytes = Vec::new();
    let _ = out.rewind();
    let _ = (&mut out).take(MAX_OUTPUT).read_to_end(&mut bytes);
    Ok(Finished {
        status,
        output: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

/// An unlinked temporary file, readable only by us.
fn output_file() -> std::io::Result<std::fs::File> {
    static N: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        ".hapgent-output.{}.{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_file(&path);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(script);
        c
    }

    #[test]
    fn output_and_status() {
        let f = smol::block_on(run(
            sh("echo out; echo err >&2; exit 3"),
            Duration::from_secs(60),
        ))
        .unwrap();
        assert_eq!(f.status.and_then(|s| s.code()), Some(3));
        assert_eq!(f.output, "out\nerr\n");
        assert!(!f.success());
        let f = smol::block_on(run(sh("true"), Duration::from_secs(60))).unwrap();
        assert!(f.success());
        let e = smol::block_on(run(Command::new("/nonexistent/x"), Duration::from_secs(1)));
        assert!(e.unwrap_err().starts_with("cannot run /nonexistent/x"));
    }

    /// At the deadline the command and what it started are killed, and
    /// reaped before `run` returns.
    #[test]
    fn deadline_kills_the_group() {
        let dir = std::env::temp_dir().join(format!("hapgent-process-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let pidfile = dir.join("grandchild");
        let script = format!(
            "sleep 600 & echo $! > {}; echo started; wait",
            pidfile.display()
        );
        let f = smol::block_on(run(sh(&script), Duration::from_secs(3))).unwrap();
        assert!(f.status.is_none(), "{f:?}");
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| panic!("the script did not start within 3 s: {f:?}"));
        // The grandchild got SIGKILL; once the kernel has delivered it
        // (bounded wait) it is a zombie of init or gone.
        let gone = (0..600).any(|_| {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let dead = state.is_empty() || state.contains(") Z");
            if !dead {
                std::thread::sleep(Duration::from_millis(50));
            }
            dead
        });
        assert!(gone, "sleep {pid} survived the deadline");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
