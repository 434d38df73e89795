//! A foreground HAProxy for the modes that need one (`--wait-seen`,
//! `--lb-status`): testkit's, as the integration tests start it, with its
//! failures turned into the benchmark's errors and its waits bounded by
//! 10 s.

use crate::error::Error;
use hapgent_testkit::haproxy::{self, Mode};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A running HAProxy (killed by PID and reaped when dropped, and killed by
/// the kernel if the benchmark dies first) and where to reach it.
pub struct Haproxy {
    inner: hapgent_testkit::Haproxy,
    /// The stats socket (`level admin`) the configuration declares.
    pub socket: PathBuf,
}

impl Haproxy {
    /// Writes `config` to `dir/haproxy.cfg`, starts `haproxy -db` on it
    /// and waits until the stats socket `haproxy::admin_socket(dir)`
    /// (which `config` declares) accepts.
    pub fn start(haproxy: &Path, dir: &Path, config: &str) -> Result<Haproxy, Error> {
        let inner = hapgent_testkit::Haproxy::launch(haproxy, dir, config, Mode::Foreground, &[])
            .map_err(|e| Error::Haproxy(format!("{e}, or --haproxy PATH")))?;
        inner
            .wait_ready(Duration::from_secs(10))
            .map_err(Error::Haproxy)?;
        Ok(Haproxy {
            socket: haproxy::admin_socket(dir),
            inner,
        })
    }

    /// Polls `ready` every 20 ms for at most 10 s.
    pub fn until(&self, what: &str, ready: impl Fn(&Haproxy) -> bool) -> Result<(), Error> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ready(self) {
            if Instant::now() > deadline {
                return Err(Error::Haproxy(format!(
                    "HAProxy did not {what} within 10 s; its log:\n{}",
                    self.inner.log_text()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}
