//! Child processes: ended by PID (never by name), run with a deadline,
//! and a free loopback port for one to listen on.

use std::io::Read;
use std::net::TcpListener;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Sends `sig` to `pid`, a process this harness started.
pub fn kill(pid: u32, sig: i32) {
    // SAFETY: kill(2) has no memory preconditions.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// Ends a child: SIGTERM (as systemd stops a service), then SIGKILL if it
/// is still running after 5 s; reaped either way.
pub fn stop(child: &mut Child) {
    kill(child.id(), libc::SIGTERM);
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// How a command that had to end did end.
pub struct Outcome {
    pub status: ExitStatus,
    /// The exit code, `None` if killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `command` to completion (stdin from /dev/null, both outputs
/// read), for at most `limit`; `None`, after killing it by PID, if it was
/// still running then.
pub fn exits_within(mut command: Command, limit: Duration) -> Option<Outcome> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let reader = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = reader(Box::new(child.stdout.take().unwrap()));
    let err = reader(Box::new(child.stderr.take().unwrap()));
    let end = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(Outcome {
                status,
                code: status.code(),
                stdout: out.join().unwrap(),
                stderr: err.join().unwrap(),
            });
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A free loopback port (bound, then released for the caller to bind).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
