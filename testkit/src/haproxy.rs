//! A real HAProxy, the client that matters, started from a configuration
//! the caller writes, in a directory of its own, and ended by PID (master
//! and workers) when dropped. What the configuration holds is the
//! caller's; this module knows where it is written, where the stats
//! socket is, and how to talk to it.

use crate::process::{kill, stop};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How HAProxy runs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One process in the foreground (`-db`).
    Foreground,
    /// Master-worker (`-W`) with a master CLI socket (`-S DIR/master.sock`),
    /// reloadable as in production.
    MasterWorker,
}

/// The HAProxy binary to run: `LB_TEST_HAPROXY` (e.g. the Debian 13
/// wrapper made by lb/tests/newer-haproxy.sh), else `haproxy` from PATH.
pub fn bin() -> PathBuf {
    std::env::var_os("LB_TEST_HAPROXY")
        .map(PathBuf::from)
        .unwrap_or_else(|| "haproxy".into())
}

/// Whether the tests may run HAProxy here. Where it is not installed they
/// say so loudly and do not run, unless `HAPGENT_REQUIRE_HAPROXY=1` (set
/// by `.ci/run`) makes that a failure.
pub fn available() -> bool {
    if Command::new(bin()).arg("-v").output().is_ok() {
        return true;
    }
    let required = std::env::var("HAPGENT_REQUIRE_HAPROXY").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "haproxy is not installed but HAPGENT_REQUIRE_HAPROXY=1"
    );
    eprintln!("\n*** SKIPPED: haproxy is not installed; the HAProxy tests did NOT run ***\n");
    false
}

/// The stats socket (`level admin`) a configuration for `dir` declares:
/// `stats socket DIR/admin.sock mode 600 level admin`.
pub fn admin_socket(dir: &Path) -> PathBuf {
    dir.join("admin.sock")
}

/// Sends one command to an HAProxy CLI socket; the whole answer.
pub fn cli(socket: &Path, command: &str) -> io::Result<String> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(crate::PATIENCE))?;
    s.write_all(format!("{command}\n").as_bytes())?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// A running HAProxy.
pub struct Haproxy {
    child: Child,
    /// `DIR/haproxy.cfg`, as written.
    pub config: PathBuf,
    /// The stats socket (see `admin_socket`).
    pub admin: PathBuf,
    /// The master CLI socket, in master-worker mode (else a path that is
    /// never created).
    pub master: PathBuf,
    /// HAProxy's stdout and stderr (its `log stderr` lines too).
    pub log: PathBuf,
}

impl Haproxy {
    /// Writes `config` to `dir/haproxy.cfg` and starts `haproxy` on it in
    /// `mode`, with `env` added, without waiting for it (see `wait_ready`).
    /// The child is killed by the kernel should the process that started
    /// it die first (PR_SET_PDEATHSIG).
    pub fn launch(
        haproxy: &Path,
        dir: &Path,
        config: &str,
        mode: Mode,
        env: &[(&str, &str)],
    ) -> io::Result<Haproxy> {
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, config)?;
        let master = dir.join("master.sock");
        let log = dir.join("haproxy.log");
        let out = std::fs::File::create(&log)?;
        let mut cmd = Command::new(haproxy);
        match mode {
            Mode::Foreground => cmd.arg("-db"),
            Mode::MasterWorker => cmd.arg("-W").arg("-S").arg(&master),
        };
        cmd.arg("-f")
            .arg(&path)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        // SAFETY: prctl is async-signal-safe; nothing else runs in the
        // child between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot start {haproxy:?}: {e} (apt-get install haproxy)"),
            )
        })?;
        Ok(Haproxy {
            child,
            config: path,
            admin: admin_socket(dir),
            master,
            log,
        })
    }

    /// `launch` for a test: panics if HAProxy cannot start, and waits
    /// until its stats socket accepts.
    pub fn start(dir: &Path, config: &str, mode: Mode, env: &[(&str, &str)]) -> Haproxy {
        let h = Haproxy::launch(&bin(), dir, config, mode, env).unwrap_or_else(|e| panic!("{e}"));
        h.wait_ready(crate::PATIENCE)
            .unwrap_or_else(|e| panic!("{e}"));
        h
    }

    /// Waits (at most `limit`) until the stats socket accepts a
    /// connection; the error says why not, with HAProxy's log.
    pub fn wait_ready(&self, limit: Duration) -> Result<(), String> {
        let end = Instant::now() + limit;
        while UnixStream::connect(&self.admin).is_err() {
            if Instant::now() >= end {
                return Err(format!(
                    "HAProxy did not open its stats socket within {limit:?}; its log:\n{}",
                    self.log_text()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// The master process's PID (the only process in the foreground).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// One command on the stats socket; the whole answer.
    pub fn cli(&self, command: &str) -> io::Result<String> {
        cli(&self.admin, command)
    }

    /// Everything HAProxy wrote so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The worker PIDs the master's `show proc` lists (current and old);
    /// none in the foreground.
    pub fn workers(&self) -> Vec<u32> {
        let text = cli(&self.master, "show proc").unwrap_or_default();
        text.lines()
            .filter(|l| l.contains("worker"))
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .collect()
    }

    /// Server `server` of backend `backend` as HAProxy sees it: the
    /// columns of `show servers state` by name, and those of `show stat`
    /// as `stat.NAME`.
    pub fn server_view(&self, backend: &str, server: &str) -> HashMap<String, String> {
        let mut view = HashMap::new();
        let state = self
            .cli(&format!("show servers state {backend}"))
            .unwrap_or_default();
        let mut lines = state.lines().filter(|l| !l.trim().is_empty()).skip(1);
        let header: Vec<&str> = lines
            .next()
            .unwrap_or("")
            .trim_start_matches("# ")
            .split(' ')
            .collect();
        for line in lines {
            let values: Vec<&str> = line.split(' ').collect();
            if values.get(3) == Some(&server) {
                for (k, v) in header.iter().zip(values) {
                    view.insert(k.to_string(), v.to_string());
                }
            }
        }
        let stat = self.cli("show stat").unwrap_or_default();
        let mut lines = stat.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or("")
            .trim_start_matches("# ")
            .split(',')
            .collect();
        for line in lines {
            let values: Vec<&str> = line.split(',').collect();
            if values.first() == Some(&backend) && values.get(1) == Some(&server) {
                for (k, v) in header.iter().zip(values) {
                    view.insert(format!("stat.{k}"), v.to_string());
                }
            }
        }
        view
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let workers = self.workers();
        stop(&mut self.child);
        for pid in workers {
            kill(pid, libc::SIGKILL);
        }
    }
}
