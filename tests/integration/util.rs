//! Test harness: every test runs the real `hapgent` binary through one
//! builder (`Agent::builder()`), with a clean environment, and talks to it
//! over loopback; a running agent is killed (by PID) when the test is done,
//! pass or fail. Temporary directories and bounded waits come from testkit.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use hapgent_testkit::{Outcome, PATIENCE, TempDir, poll, wait_for};

/// hapgent as a test runs it, built up and then started (`start`: a
/// running agent that listens; `launch`: without waiting for that), run
/// to completion (`run`, `run_within`) or handed over as a `command`.
///
/// Always: a clean environment (no HAPGENT_* or JOURNAL_STREAM from the
/// caller), `HAPGENT_CONFIG=/dev/null` and no control socket (agents never
/// meet at the default path), stdin from /dev/null; `env` overrides these.
#[derive(Default)]
pub struct Hapgent {
    state: Option<PathBuf>,
    control: Option<PathBuf>,
    args: Vec<String>,
    env: Vec<(String, Option<String>)>,
    strace: Option<Vec<String>>,
    activated: Option<RawFd>,
    user_nobody: bool,
    memory: Option<u64>,
    stderr_unread: bool,
}

impl Hapgent {
    /// Serves `state_file` on 127.0.0.1, a free port, with a control
    /// socket of its own (in its own directory; see `Agent::ctl`).
    pub fn state(mut self, state_file: &Path) -> Hapgent {
        self.state = Some(state_file.to_path_buf());
        self
    }

    /// The control socket at `path` instead of one of its own (with
    /// `state`).
    pub fn control_socket(mut self, path: &Path) -> Hapgent {
        self.control = Some(path.to_path_buf());
        self
    }

    /// Command-line arguments, after those `state` adds.
    pub fn args<S: AsRef<str>>(mut self, args: &[S]) -> Hapgent {
        self.args
            .extend(args.iter().map(|a| a.as_ref().to_string()));
        self
    }

    /// One environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Hapgent {
        self.env.push((key.into(), Some(value.into())));
        self
    }

    /// Environment variables.
    pub fn envs(mut self, vars: &[(&str, &str)]) -> Hapgent {
        for (k, v) in vars {
            self = self.env(k, v);
        }
        self
    }

    /// Removes a variable the harness sets (so a config file's value holds).
    pub fn env_remove(mut self, key: &str) -> Hapgent {
        self.env.push((key.into(), None));
        self
    }

    /// Runs it under `strace -f --seccomp-bpf -o /dev/null STRACE... --`,
    /// e.g. with `-e inject=fsync:delay_enter=N`. Signals and `pid` go to
    /// hapgent itself; strace exits with hapgent's status.
    pub fn strace<S: AsRef<str>>(mut self, strace: &[S]) -> Hapgent {
        self.strace = Some(strace.iter().map(|a| a.as_ref().to_string()).collect());
        self
    }

    /// Starts it the way systemd socket activation does: `listener`
    /// becomes file descriptor 3, and `LISTEN_FDS=1` and `LISTEN_PID` (the
    /// pid that execs hapgent, through `sh -c 'exec …'`) are set.
    pub fn activated(self, listener: &impl AsRawFd) -> Hapgent {
        self.activated_fd(listener.as_raw_fd())
    }

    /// `activated` with a raw descriptor (any kind, for the refusals).
    pub fn activated_fd(mut self, fd: RawFd) -> Hapgent {
        self.activated = Some(fd);
        self
    }

    /// Runs it as the unprivileged user `nobody` (through util-linux's
    /// setpriv, no supplementary groups).
    pub fn user_nobody(mut self) -> Hapgent {
        self.user_nobody = true;
        self
    }

    /// Caps its address space, so a test of an unbounded read cannot take
    /// the machine's memory with it.
    pub fn memory_limit(mut self, bytes: u64) -> Hapgent {
        self.memory = Some(bytes);
        self
    }

    /// Leaves stderr a pipe that nobody reads once the "listening on" line
    /// is in; `Agent::read_log` starts reading it.
    pub fn stderr_unread(mut self) -> Hapgent {
        self.stderr_unread = true;
        self
    }

    /// Starts it and waits until it listens.
    pub fn start(self) -> Agent {
        let mut agent = self.launch();
        agent.wait_listening();
        agent
    }

    /// Starts it without waiting for it to listen (see
    /// `Agent::wait_listening`). Under strace, waits until hapgent (not
    /// strace) runs.
    pub fn launch(self) -> Agent {
        let control_dir =
            (self.state.is_some() && self.control.is_none()).then(|| TempDir::new("ctl"));
        let control = self
            .control
            .clone()
            .or_else(|| control_dir.as_ref().map(|d| d.join("control.sock")));
        let traced = self.strace.is_some();
        let unread = self.stderr_unread;
        let mut agent = Agent::launch(self.command_with(control.as_deref()), unread);
        agent.control = control;
        agent.control_dir = control_dir;
        if traced {
            agent.traced = Some(traced_pid(&agent));
        }
        agent
    }

    /// Runs it to completion (for commands that exit): status, stdout,
    /// stderr.
    pub fn run(self) -> (i32, String, String) {
        let out = self.command().output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs it to completion, for at most `PATIENCE`; `None` (after
    /// killing it by PID) if it was still running then.
    pub fn run_within(self) -> Option<Outcome> {
        hapgent_testkit::exits_within(self.command(), PATIENCE)
    }

    /// The command, for a test that drives the process itself (a control
    /// socket only if `control_socket` named one).
    pub fn command(self) -> Command {
        let control = self.control.clone();
        self.command_with(control.as_deref())
    }

    fn command_with(self, control: Option<&Path>) -> Command {
        let hapgent = env!("CARGO_BIN_EXE_hapgent");
        let mut cmd = if let Some(strace) = &self.strace {
            let mut cmd = Command::new(strace_path());
            cmd.args(["-f", "--seccomp-bpf", "-o", "/dev/null"])
                .args(strace)
                .arg("--")
                .arg(hapgent);
            cmd
        } else if self.activated.is_some() {
            let mut cmd = Command::new("sh");
            cmd.arg("-c")
                .arg("LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\"")
                .arg(hapgent);
            cmd
        } else if self.user_nobody {
            let mut cmd = Command::new("setpriv");
            cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .arg(hapgent);
            cmd
        } else {
            Command::new(hapgent)
        };
        cmd.env_clear()
            .env("HAPGENT_CONFIG", "/dev/null")
            .env("HAPGENT_CONTROL_SOCKET", "")
            .stdin(Stdio::null());
        if let Some(state) = &self.state {
            cmd.args(["--ip", "127.0.0.1", "--port", "0", "--state-file"])
                .arg(state);
        }
        if let Some(control) = control {
            cmd.arg("--control-socket").arg(control);
        }
        cmd.args(&self.args);
        for (k, v) in &self.env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        if let Some(fd) = self.activated {
            // SAFETY: between fork and exec only dup2 or fcntl runs, both
            // async-signal-safe; fd 3 becomes `fd`, without close-on-exec.
            unsafe {
                cmd.pre_exec(move || {
                    if fd == 3 {
                        libc::fcntl(3, libc::F_SETFD, 0);
                    } else if libc::dup2(fd, 3) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        if let Some(bytes) = self.memory {
            // SAFETY: setrlimit is async-signal-safe.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: bytes as libc::rlim_t,
                        rlim_max: bytes as libc::rlim_t,
                    };
                    if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        cmd
    }
}

/// Under strace: waits until strace's child has exec'd hapgent; its PID.
fn traced_pid(agent: &Agent) -> i32 {
    let strace_pid = agent.child.id();
    let children = format!("/proc/{strace_pid}/task/{strace_pid}/children");
    let binary = fs::canonicalize(env!("CARGO_BIN_EXE_hapgent")).unwrap();
    poll("strace to start hapgent", || {
        let pid: i32 = fs::read_to_string(&children)
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        // After the exec: the PID stays, the program changes.
        (fs::read_link(format!("/proc/{pid}/exe")).ok()? == binary).then_some(pid)
    })
}

/// A running hapgent.
pub struct Agent {
    child: Child,
    pub addrs: Vec<SocketAddr>,
    log: Arc<Mutex<String>>,
    /// Set once stderr has been read to its end (the process and any
    /// child sharing the pipe have exited).
    log_ended: Arc<AtomicBool>,
    /// Its control socket, and the directory holding it when it is its own.
    control: Option<PathBuf>,
    control_dir: Option<TempDir>,
    /// When `child` is strace: the PID of the hapgent it traces.
    traced: Option<i32>,
    /// When stderr is left unread after startup: the reader, handed back
    /// by the thread that read up to the "listening on" line.
    held: Mutex<Option<Receiver<BufReader<ChildStderr>>>>,
}

impl Agent {
    /// The one way to run hapgent in these tests.
    pub fn builder() -> Hapgent {
        Hapgent::default()
    }

    /// Spawns `command` with stderr read into the log; with `unread`,
    /// stderr is read only up to the "listening on" line and then left
    /// unread (a pipe nobody reads) until `read_log` is called.
    fn launch(mut command: Command, unread: bool) -> Agent {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let sink = Arc::clone(&log);
        let log_ended = Arc::new(AtomicBool::new(false));
        let held = if unread {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let reader = read_lines(stderr, &sink, true);
                let _ = tx.send(reader);
            });
            Some(rx)
        } else {
            let ended = Arc::clone(&log_ended);
            std::thread::spawn(move || {
                read_lines(stderr, &sink, false);
                ended.store(true, Ordering::SeqCst);
            });
            None
        };
        Agent {
            child,
            addrs: Vec::new(),
            log,
            log_ended,
            control: None,
            control_dir: None,
            traced: None,
            held: Mutex::new(held),
        }
    }

    /// Waits for the "listening on" line and learns the addresses from it.
    pub fn wait_listening(&mut self) {
        let line = self.wait_log("listening on ");
        let list = line.split("listening on ").nth(1).unwrap();
        let list = list.split(';').next().unwrap();
        self.addrs = list.split(", ").map(|a| a.parse().unwrap()).collect();
    }

    /// Its control socket (`state` gave it one, or `control_socket`).
    pub fn control_socket(&self) -> PathBuf {
        self.control
            .clone()
            .expect("an agent started with a state file")
    }

    /// Runs `hapgent ctl ARGS` against this agent.
    pub fn ctl(&self, args: &[&str]) -> (i32, String, String) {
        ctl_at(&self.control_socket(), args)
    }

    /// Starts reading the stderr left unread (`stderr_unread`).
    pub fn read_log(&self) {
        let rx = self
            .held
            .lock()
            .unwrap()
            .take()
            .expect("stderr is already read");
        let reader = rx
            .recv_timeout(PATIENCE)
            .expect("stderr reader not handed back");
        let sink = Arc::clone(&self.log);
        let ended = Arc::clone(&self.log_ended);
        std::thread::spawn(move || {
            read_lines(reader, &sink, false);
            ended.store(true, Ordering::SeqCst);
        });
    }

    /// Waits until stderr is read to its end, so that `log` holds every
    /// line the process wrote; call once it has exited. Stderr left unread
    /// (without `read_log`) has no end to wait for.
    pub fn wait_log_end(&self) {
        if self.held.lock().unwrap().is_some() {
            return;
        }
        wait_for("stderr read to its end", || {
            self.log_ended.load(Ordering::SeqCst)
        });
    }

    /// The exit status if the process has exited, without waiting.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    pub fn pid(&self) -> i32 {
        self.traced.unwrap_or(self.child.id() as i32)
    }

    pub fn port(&self) -> u16 {
        self.addrs[0].port()
    }

    /// Everything hapgent logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits for a log line containing `needle` and returns it; panics with
    /// the log after `PATIENCE`.
    pub fn wait_log(&self, needle: &str) -> String {
        self.wait_log_count(needle, 1)
    }

    /// Waits until `needle` appears `count` times; returns the last line.
    pub fn wait_log_count(&self, needle: &str, count: usize) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let log = self.log();
            let lines: Vec<&str> = log.lines().filter(|l| l.contains(needle)).collect();
            if lines.len() >= count {
                return lines[count - 1].to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no log line {needle:?} (x{count}) in:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `signal` to the agent.
    pub fn signal(&self, signal: i32) {
        assert_eq!(unsafe { libc::kill(self.pid(), signal) }, 0);
    }

    /// Connects, reads the reply to the end, and returns it.
    pub fn probe(&self) -> String {
        probe(self.addrs[0])
    }

    /// Probes until the reply equals `want` (the agent acts on a signal
    /// asynchronously); panics with the last reply after `PATIENCE`.
    pub fn wait_reply(&self, want: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let got = self.probe();
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "reply {got:?}, want {want:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the process to exit, then for its last log lines; `None`
    /// if it did not exit within `PATIENCE`.
    pub fn wait_exit(&mut self) -> Option<ExitStatus> {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.wait_log_end();
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// Resident memory of the agent in KiB (VmRSS).
    pub fn rss_kib(&self) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // Under strace, hapgent is strace's child: kill it by its PID while
        // strace still runs (so the PID cannot have been reused), then strace.
        if let (Some(pid), Ok(None)) = (self.traced, self.child.try_wait()) {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `hapgent ctl ARGS` against the control socket `socket`: status,
/// stdout, stderr.
pub fn ctl_at(socket: &Path, args: &[&str]) -> (i32, String, String) {
    Agent::builder()
        .args(&["ctl", "--control-socket", socket.to_str().unwrap()])
        .args(args)
        .run()
}

/// One agent check: connect, read until the agent closes.
pub fn probe(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect_timeout(&addr, PATIENCE).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
}

/// One agent check bounded by `limit`: connect, read until the agent
/// closes; an error (refused, reset, timed out) is returned, not a panic.
pub fn try_probe(addr: SocketAddr, limit: Duration) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, limit)?;
    stream.set_read_timeout(Some(limit))?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    Ok(reply)
}

/// Writes a state file.
pub fn write_state(path: &Path, json: &str) {
    fs::write(path, json).unwrap();
}

/// Replaces `path` with `text` the way a careful writer does (a temporary
/// file in the same directory, then a rename), so that a reader sees the
/// old content or the new, never half of it.
pub fn replace_file(path: &Path, text: &str) {
    let name = path.file_name().unwrap().to_str().unwrap();
    let tmp = path.with_file_name(format!(".{name}.test-tmp"));
    fs::write(&tmp, text).unwrap();
    fs::rename(&tmp, path).unwrap();
}

/// Raises this process's open-file limit to its hard limit, for tests that
/// hold thousands of sockets.
pub fn raise_fd_limit() -> u64 {
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        lim.rlim_cur
    }
}

/// Appends stderr lines to `sink`; with `until_listening`, stops after the
/// "listening on" line and returns the reader, so the rest stays unread.
fn read_lines(
    mut reader: BufReader<ChildStderr>,
    sink: &Mutex<String>,
    until_listening: bool,
) -> BufReader<ChildStderr> {
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return reader,
            Ok(_) => {}
        }
        let mut log = sink.lock().unwrap();
        log.push_str(line.trim_end_matches('\n'));
        log.push('\n');
        if until_listening && line.contains("listening on ") {
            return reader;
        }
    }
}

/// Debian's strace (`apt-get install strace`).
fn strace_path() -> &'static str {
    if Path::new("/usr/bin/strace").exists() {
        "/usr/bin/strace"
    } else {
        "strace"
    }
}

/// The signals pending for process `pid` (both sets), as a mask.
pub fn pending_signals(pid: i32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(
        status
            .lines()
            .filter(|l| l.starts_with("ShdPnd:") || l.starts_with("SigPnd:"))
            .filter_map(|l| u64::from_str_radix(l.split_whitespace().nth(1)?, 16).ok())
            .fold(0, |a, b| a | b),
    )
}

/// Sends `sig` and waits until it is no longer pending: the agent took
/// it, so the next one sent is a delivery of its own, not merged into
/// this one by the kernel.
pub fn send_taken(pid: i32, sig: i32) {
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    let bit = 1u64 << (sig - 1);
    wait_for("the signal taken", || {
        pending_signals(pid).is_some_and(|p| p & bit == 0)
    });
}

/// Waits until no signal is pending for the process (`ShdPnd` and
/// `SigPnd` zero) and none is held by strace (the main thread, the only one
/// that takes signals, is not in a tracing stop: a signal strace holds is
/// no longer pending but not yet handled) and is asleep (no handler is
/// half way), so that the next signal sent is the last delivered. Two
/// signals pending at once are handled lowest number first, whatever
/// order they were sent in, which is not what these tests are about.
pub fn wait_no_pending(pid: i32) {
    wait_for("pending signals delivered", || {
        let none_pending = pending_signals(pid) == Some(0);
        let main = fs::read_to_string(format!("/proc/{pid}/task/{pid}/stat")).unwrap_or_default();
        // The state is the field after the parenthesised command name.
        let state = main
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next());
        none_pending && state == Some('S')
    });
}

/// A notify socket (`NOTIFY_SOCKET`) that the test reads, as systemd would.
pub struct Notify {
    socket: std::os::unix::net::UnixDatagram,
    pub path: PathBuf,
}

impl Notify {
    /// Binds `notify.sock` in `dir`.
    pub fn bind(dir: &TempDir) -> Notify {
        let path = dir.join("notify.sock");
        let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        socket.set_read_timeout(Some(PATIENCE)).unwrap();
        Notify { socket, path }
    }

    /// The environment variable that points hapgent at it.
    pub fn env(&self) -> (&'static str, &str) {
        ("NOTIFY_SOCKET", self.path.to_str().unwrap())
    }

    /// The next notification; panics after `PATIENCE` without one. A recv
    /// with a timeout is not restarted after a signal (EINTR, seen on a
    /// loaded machine): it is simply tried again.
    pub fn next(&self) -> String {
        let mut buf = [0u8; 512];
        let n = loop {
            match self.socket.recv(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                got => break got.expect("no notification"),
            }
        };
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// Waits for the end of a reload: a notification that is exactly
    /// "READY=1" (the one at startup also carries a STATUS line).
    pub fn wait_reloaded(&self) {
        while self.next() != "READY=1" {}
    }
}

/// Makes sure the agent has handled every state signal delivered to it so
/// far: once they are all delivered, a SIGHUP is handled after them (the
/// agent handles state signals in delivery order), and the reload it
/// starts ends with "READY=1" on `notify`. The reload re-reads the state
/// file after saving the state served, so the file holds it by then too.
pub fn wait_signals_handled(agent: &Agent, notify: &Notify) {
    wait_no_pending(agent.pid());
    agent.signal(libc::SIGHUP);
    notify.wait_reloaded();
}

/// `hapgent ctl status --json` for the default service.
pub fn ctl_status(agent: &Agent) -> serde_json::Value {
    let (code, out, err) = agent.ctl(&["status", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    serde_json::from_str(out.trim()).unwrap()
}

/// The state file's text without surrounding whitespace ("" if missing).
pub fn saved(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The last 40 lines of a log, for failure messages after floods.
pub fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// A fake `/proc/stat` with the given user and idle tick counts.
pub fn proc_stat(user: u64, idle: u64) -> String {
    format!("cpu  {user} 0 0 {idle} 0 0 0 0 0 0\ncpu0 {user} 0 0 {idle} 0 0 0 0 0 0\n")
}
