//! A foreground HAProxy for the modes that need one (`--wait-seen`,
//! `--lb-status`): started from a configuration the mode writes, in the
//! mode's temporary directory, killed by PID and reaped when dropped (and
//! killed by the kernel if the benchmark dies first).

use crate::error::Error;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running HAProxy and where to reach it.
pub struct Haproxy {
    child: Child,
    /// The stats socket (`level admin`) the configuration declares.
    pub socket: PathBuf,
    stderr: PathBuf,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Haproxy {
    /// Writes `config` to `dir/haproxy.cfg`, starts `haproxy -db` on it
    /// and waits until `socket` (which `config` declares) accepts.
    pub fn start(
        haproxy: &Path,
        dir: &Path,
        config: &str,
        socket: PathBuf,
    ) -> Result<Haproxy, Error> {
        let cfg = dir.join("haproxy.cfg");
        std::fs::write(&cfg, config).map_err(Error::io(format!("cannot write {cfg:?}")))?;
        let stderr = dir.join("haproxy.err");
        let mut cmd = Command::new(haproxy);
        cmd.arg("-f")
            .arg(&cfg)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).map_err(Error::io(format!("{stderr:?}")))?);
        // SAFETY: prctl is async-signal-safe; nothing else runs in the child
        // between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| {
            Error::Haproxy(format!(
                "cannot start {haproxy:?}: {e} (apt-get install haproxy, or --haproxy PATH)"
            ))
        })?;
        let haproxy = Haproxy {
            child,
            socket,
            stderr,
        };
        haproxy.until("open its stats socket", |h| {
            UnixStream::connect(&h.socket).is_ok()
        })?;
        Ok(haproxy)
    }

    /// Polls `ready` every 20 ms for at most 10 s.
    pub fn until(&self, what: &str, ready: impl Fn(&Haproxy) -> bool) -> Result<(), Error> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ready(self) {
            if Instant::now() > deadline {
                return Err(Error::Haproxy(format!(
                    "HAProxy did not {what} within 10 s; its stderr:\n{}",
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}
