//! Test harness: spawns the real `hapgent` binary with a clean environment
//! in its own temporary directory, talks to it over loopback, and kills it
//! (by PID) when the test is done, pass or fail.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long any single wait in these tests may take before it fails: a
/// safety net for an event that never comes, never a time to wait for.
/// Generous, because the tests run on busy machines (two cores, both
/// compiling) and every wait returns as soon as its event arrives.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("hapgent-it-{}-{n}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs hapgent to completion (for commands that exit): status, stdout, stderr.
pub fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = command(args, env).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs hapgent to completion as the unprivileged user `nobody` (through
/// util-linux's setpriv, no supplementary groups): status, stdout, stderr.
pub fn run_as_nobody(args: &[&str]) -> (i32, String, String) {
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_hapgent"))
        .args(args)
        .env_clear()
        .env("HAPGENT_CONFIG", "/dev/null")
        .env("HAPGENT_CONTROL_SOCKET", "")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hapgent"));
    // A clean environment: no HAPGENT_* or JOURNAL_STREAM from the caller,
    // and a config file that does not exist unless a test names one.
    cmd.env_clear()
        .env("HAPGENT_CONFIG", "/dev/null")
        // No control socket unless a test gives one (`Agent::start` does):
        // agents never meet at the default path.
        .env("HAPGENT_CONTROL_SOCKET", "")
        .args(args)
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// A running hapgent.
pub struct Agent {
    child: Child,
    pub addrs: Vec<SocketAddr>,
    log: Arc<Mutex<String>>,
    /// Set once stderr has been read to its end (the process and any
    /// child sharing the pipe have exited).
    log_ended: Arc<AtomicBool>,
    /// The directory of the control socket `start` gave it.
    control: Option<TempDir>,
    /// When `child` is strace: the PID of the hapgent it traces.
    traced: Option<i32>,
    /// When stderr is left unread after startup: the reader, handed back
    /// by the thread that read up to the "listening on" line.
    held: Mutex<Option<Receiver<BufReader<ChildStderr>>>>,
}

impl Agent {
    /// Starts hapgent on 127.0.0.1, a free port, and `state_file`, plus
    /// `args`; waits until it listens.
    pub fn start(state_file: &Path, args: &[&str]) -> Agent {
        Agent::start_with_env(state_file, args, &[])
    }

    /// `start`, with extra environment variables.
    pub fn start_with_env(state_file: &Path, args: &[&str], env: &[(&str, &str)]) -> Agent {
        let state = state_file.to_str().unwrap();
        // Each agent gets its own control socket in its own directory.
        let control_dir = TempDir::new("ctl");
        let control = control_dir.join("control.sock");
        let control = control.to_str().unwrap();
        let mut all = vec![
            "--ip",
            "127.0.0.1",
            "--port",
            "0",
            "--state-file",
            state,
            "--control-socket",
            control,
        ];
        all.extend_from_slice(args);
        let mut agent = Agent::spawn(&all, env);
        agent.control = Some(control_dir);
        agent
    }

    /// Starts hapgent with exactly `args` and `env`; waits until it listens.
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Agent {
        Agent::from_command(command(args, env))
    }

    /// Starts hapgent through socket activation (see `activated`) and
    /// waits until it listens.
    pub fn spawn_activated(listener: &std::net::TcpListener, args: &[&str]) -> Agent {
        use std::os::fd::AsRawFd;
        Agent::from_command(activated(listener.as_raw_fd(), args))
    }

    pub fn from_command(command: Command) -> Agent {
        let mut agent = Agent::launch(command);
        agent.wait_listening();
        agent
    }

    /// Spawns `command` with stderr read into the log, without waiting for
    /// it to listen (see `wait_listening`).
    pub fn launch(command: Command) -> Agent {
        Agent::launch_with(command, false)
    }

    /// Spawns `command`; with `unread`, stderr is read only up to the
    /// "listening on" line and then left unread (a pipe nobody reads)
    /// until `read_log` is called.
    fn launch_with(mut command: Command, unread: bool) -> Agent {
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

    /// Starts hapgent (as `start_with_env`) with stderr a pipe that nobody
    /// reads once the "listening on" line is in; `read_log` starts reading.
    pub fn start_unread(state_file: &Path, args: &[&str], env: &[(&str, &str)]) -> Agent {
        let state = state_file.to_str().unwrap();
        let mut all = vec!["--ip", "127.0.0.1", "--port", "0", "--state-file", state];
        all.extend_from_slice(args);
        let mut agent = Agent::launch_with(command(&all, env), true);
        agent.wait_listening();
        agent
    }

    /// The control socket `start` gave the agent.
    pub fn control_socket(&self) -> PathBuf {
        self.control
            .as_ref()
            .expect("an agent made by Agent::start")
            .join("control.sock")
    }

    /// Runs `hapgent ctl ARGS` against this agent.
    pub fn ctl(&self, args: &[&str]) -> (i32, String, String) {
        ctl_at(&self.control_socket(), args)
    }

    /// Starts reading the stderr left unread by `start_unread`.
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
    /// (`start_unread` without `read_log`) has no end to wait for.
    pub fn wait_log_end(&self) {
        if self.held.lock().unwrap().is_some() {
            return;
        }
        wait_for("stderr read to its end", || {
            self.log_ended.load(Ordering::SeqCst)
        });
    }

    /// Starts hapgent (as `start_with_env`) under
    /// `strace -f --seccomp-bpf -o /dev/null STRACE... --`, e.g. with
    /// `-e inject=fsync:delay_enter=N`; waits until it listens. Signals go
    /// to hapgent itself; strace exits with hapgent's status.
    pub fn start_traced(
        strace: &[&str],
        state_file: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Agent {
        let state = state_file.to_str().unwrap();
        let mut all = vec!["--ip", "127.0.0.1", "--port", "0", "--state-file", state];
        all.extend_from_slice(args);
        let mut agent = Agent::launch_traced(strace, &all, env);
        agent.wait_listening();
        agent
    }

    /// Spawns hapgent with exactly `args` and `env` under strace (see
    /// `start_traced`), and waits until hapgent (not strace) runs, without
    /// waiting for it to listen.
    pub fn launch_traced(strace: &[&str], args: &[&str], env: &[(&str, &str)]) -> Agent {
        let mut cmd = Command::new(strace_path());
        cmd.env_clear()
            .env("HAPGENT_CONFIG", "/dev/null")
            .env("HAPGENT_CONTROL_SOCKET", "")
            .args(["-f", "--seccomp-bpf", "-o", "/dev/null"])
            .args(strace)
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_hapgent"))
            .args(args)
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut agent = Agent::launch(cmd);
        let strace_pid = agent.child.id();
        let children = format!("/proc/{strace_pid}/task/{strace_pid}/children");
        let binary = fs::canonicalize(env!("CARGO_BIN_EXE_hapgent")).unwrap();
        let deadline = Instant::now() + PATIENCE;
        loop {
            let pid = fs::read_to_string(&children)
                .ok()
                .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse().ok()));
            if let Some(pid) = pid {
                // After the exec: the PID stays, the program changes.
                if fs::read_link(format!("/proc/{pid}/exe")).ok().as_ref() == Some(&binary) {
                    agent.traced = Some(pid);
                    return agent;
                }
            }
            assert!(
                Instant::now() < deadline,
                "strace did not start hapgent; log:\n{}",
                agent.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
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
    let mut all = vec!["ctl", "--control-socket", socket.to_str().unwrap()];
    all.extend_from_slice(args);
    run(&all, &[])
}

/// One agent check: connect, read until the agent closes.
pub fn probe(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect_timeout(&addr, PATIENCE).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
}

/// Polls `cond` until true, for at most `PATIENCE`.
pub fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not in time");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Writes a state file.
pub fn write_state(path: &Path, json: &str) {
    fs::write(path, json).unwrap();
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

/// A hapgent command started the way systemd socket activation starts it:
/// `fd` becomes file descriptor 3, and `LISTEN_FDS=1` and `LISTEN_PID` (the
/// pid that execs hapgent, through `sh -c 'exec …'`) are set.
pub fn activated(fd: i32, args: &[&str]) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new("sh");
    cmd.env_clear()
        .env("HAPGENT_CONFIG", "/dev/null")
        .env("HAPGENT_CONTROL_SOCKET", "")
        .arg("-c")
        .arg("LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_hapgent"))
        .args(args)
        .stdin(Stdio::null());
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
    cmd
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

/// The hapgent command `run` and `Agent::spawn` use: clean environment,
/// `HAPGENT_CONFIG=/dev/null`, stdin from /dev/null.
pub fn hapgent_command(args: &[&str], env: &[(&str, &str)]) -> Command {
    command(args, env)
}

/// Caps the address space of the process `cmd` starts, so a test of an
/// unbounded read cannot take the machine's memory with it.
pub fn limit_memory(cmd: &mut Command, bytes: u64) {
    use std::os::unix::process::CommandExt;
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

/// How a command that was expected to end did end.
pub struct Outcome {
    /// The exit code, `None` if killed by a signal.
    pub code: Option<i32>,
    pub stderr: String,
}

/// Runs `cmd` to completion, for at most `PATIENCE`; `None` (after killing
/// it by PID) if it was still running then.
pub fn run_within(mut cmd: Command) -> Option<Outcome> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = child.stderr.take().unwrap();
    let err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(Outcome {
                code: status.code(),
                stderr: err.join().unwrap(),
            });
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
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

/// Replaces `path` with `text` the way a careful writer does (a temporary
/// file in the same directory, then a rename), so that a reader sees the
/// old content or the new, never half of it.
pub fn replace_file(path: &Path, text: &str) {
    let name = path.file_name().unwrap().to_str().unwrap();
    let tmp = path.with_file_name(format!(".{name}.test-tmp"));
    fs::write(&tmp, text).unwrap();
    fs::rename(&tmp, path).unwrap();
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
