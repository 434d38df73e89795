//! The agent under test: the files it is started with, its command line,
//! starting it (or the floor reference) in a scratch directory and learning
//! where it listens, waiting for its first reply, and killing it by PID.
//! What is measured while it runs is in `phases` and `wait_seen`.

use crate::cli::Options;
use crate::error::Error;
use crate::floor;
use crate::probe::{ProbeError, probe};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

pub use hapgent_testkit::TempDir;

/// A scratch directory for the agent's files, removed on drop.
pub fn scratch_dir() -> Result<TempDir, Error> {
    TempDir::create("bench").map_err(Error::io("temporary directory"))
}

/// What `Agent::start` starts.
#[derive(Clone, Copy)]
pub enum Role<'a> {
    /// The agent measured: hapgent (with this control socket, or none), or
    /// the AGENT_COMMAND.
    Measured { control: Option<&'a Path> },
    /// The floor reference (`floor::serve`), this program run again.
    Floor,
}

/// hapgent's command line as the benchmark runs it, `hapgent ctl` included:
/// an empty config file of its own, and no HAPGENT_* variable from this
/// environment, so that nothing of the host's setup leaks into the
/// measurement.
pub fn hapgent_command(o: &Options, dir: &Path, control: Option<&Path>) -> Result<Command, Error> {
    let mut cmd = Command::new(&o.binary);
    let config = dir.join("hapgent.toml");
    if !config.exists() {
        std::fs::write(&config, "").map_err(Error::io(format!("cannot write {config:?}")))?;
    }
    cmd.arg("--config")
        .arg(&config)
        .arg("--control-socket")
        .arg(control.unwrap_or(Path::new("")))
        .env_remove("JOURNAL_STREAM");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("HAPGENT_") {
            cmd.env_remove(key);
        }
    }
    Ok(cmd)
}

/// A running agent, killed (by PID, SIGKILL) and reaped on drop, so a
/// panicking or failing benchmark never leaves it behind. The child also
/// gets PR_SET_PDEATHSIG, so it dies if the benchmark is killed outright.
pub struct Agent {
    child: Child,
    pub addr: SocketAddr,
    stderr_tail: Arc<Mutex<Vec<String>>>,
}

impl Agent {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts the agent and waits until its address is known (hapgent:
    /// from its log line; another agent: the `--port` given). Returns the
    /// agent and the instant just before the spawn.
    pub fn start(o: &Options, state_dir: &Path, role: Role) -> Result<(Agent, Instant), Error> {
        let (mut cmd, logs_addr) = role_command(o, state_dir, role)?;
        detach_stdio_and_group(&mut cmd);
        let given = SocketAddr::from(([127, 0, 0, 1], o.port.unwrap_or(0)));
        if !logs_addr && TcpStream::connect_timeout(&given, Duration::from_millis(500)).is_ok() {
            return Err(Error::Setup(format!(
                "something already listens on {given}: stop it or choose another --port"
            )));
        }
        let spawned = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(Error::io(format!("cannot start {:?}", cmd.get_program())))?;
        let (stderr_tail, listening) = drain_stderr(child.stderr.take().expect("stderr is piped"));
        let mut agent = Agent {
            child,
            addr: given,
            stderr_tail,
        };
        if logs_addr {
            agent.addr = agent.logged_addr(&listening)?;
        }
        Ok((agent, spawned))
    }

    /// The address from the agent's `listening on ADDR` line, passed on
    /// by `drain_stderr`; an error with its stderr if none comes in 10 s.
    fn logged_addr(&mut self, listening: &mpsc::Receiver<SocketAddr>) -> Result<SocketAddr, Error> {
        listening
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| {
                let _ = self.child.try_wait();
                Error::Agent(format!(
                    "the agent printed no `listening on ADDR` line within 10 s; its stderr:\n{}",
                    self.stderr()
                ))
            })
    }

    /// Probes until the agent accepts a connection (it may still be
    /// starting), for at most 10 s. Returns the first probe's outcome
    /// (well-formed or not) and when it ended.
    pub fn wait_ready(
        &mut self,
        o: &Options,
    ) -> Result<(Result<Vec<u8>, ProbeError>, Instant), Error> {
        let give_up = Instant::now() + Duration::from_secs(10);
        let mut last = String::new();
        while Instant::now() < give_up {
            match probe(self.addr, o.send.as_deref(), o.timeout) {
                Err(e @ ProbeError::Connect(_)) => last = e.to_string(),
                answered => return Ok((answered, Instant::now())),
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(Error::Agent(format!(
                    "the agent exited ({status}) before answering; its stderr:\n{}",
                    self.stderr()
                )));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        Err(Error::Agent(format!(
            "the agent did not answer within 10 s: {last}"
        )))
    }

    /// Whether the agent is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last lines the agent wrote to stderr (at most 20), for errors.
    pub fn stderr(&self) -> String {
        self.stderr_tail.lock().unwrap().join("\n")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // SIGKILL to the process group this agent leads (its PID), then
        // reap it. The group holds only what this benchmark started.
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) has no memory preconditions.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The command that starts `role`, and whether it logs the address it
/// listens on (the floor and hapgent do; an AGENT_COMMAND listens on
/// `--port`).
fn role_command(o: &Options, state_dir: &Path, role: Role) -> Result<(Command, bool), Error> {
    match role {
        Role::Floor => {
            let me = std::env::current_exe()
                .map_err(Error::io("cannot find this program for the floor"))?;
            let mut cmd = Command::new(me);
            cmd.arg(floor::ARG);
            if o.send.is_some() {
                cmd.arg("--drain");
            }
            Ok((cmd, true))
        }
        Role::Measured { control } if o.command.is_empty() => {
            let mut cmd = hapgent_command(o, state_dir, control)?;
            cmd.args(["--ip", "127.0.0.1", "--port", "0", "--state-file"])
                .arg(state_dir.join("state.json"));
            Ok((cmd, true))
        }
        Role::Measured { .. } => {
            let mut cmd = Command::new(&o.command[0]);
            cmd.args(&o.command[1..]);
            Ok((cmd, false))
        }
    }
}

/// No stdin or stdout, stderr piped; its own process group, so that drop
/// also ends whatever a wrapper command (strace, valgrind, a shell)
/// started; and SIGKILL when this program dies.
fn detach_stdio_and_group(cmd: &mut Command) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: prctl is async-signal-safe; nothing else runs in the child
    // between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// Drains the agent's stderr forever on a thread (a full pipe would block
/// the agent): the first `listening on ADDR` goes to the receiver, the
/// last 20 lines stay in the tail for errors.
fn drain_stderr(stderr: ChildStderr) -> (Arc<Mutex<Vec<String>>>, mpsc::Receiver<SocketAddr>) {
    let tail = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let kept = Arc::clone(&tail);
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = listening_addr(&line)
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(addr);
            }
            let mut tail = kept.lock().unwrap();
            if tail.len() == 20 {
                tail.remove(0);
            }
            tail.push(line);
        }
    });
    (tail, rx)
}

/// `ADDR` from a log line containing `listening on ADDR` (hapgent writes
/// e.g. `hapgent 0.1.0 listening on 127.0.0.1:9777; state file ...`).
fn listening_addr(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("listening on ")? + "listening on ".len()..];
    let token = rest
        .split(|c: char| c.is_whitespace() || c == ';' || c == ',')
        .next()?;
    token.parse().ok()
}

/// The default state file, `TMP/state.json`: UP.
pub fn write_state(dir: &Path) -> Result<(), Error> {
    std::fs::write(dir.join("state.json"), "{\"status\":\"UP\"}\n")
        .map_err(Error::io("cannot write the state file"))
}

/// Writes what hapgent is started with in `dir`: the default state file,
/// and, with --services, --metrics or --agent-config, the configuration
/// file (`TMP/hapgent.toml`) and one state file (UP) per service. Returns
/// the metrics address, a port that was free a moment ago (hapgent logs
/// the address as configured, so port 0 would not tell where it listens).
pub fn write_agent_files(o: &Options, dir: &Path) -> Result<Option<SocketAddr>, Error> {
    write_state(dir)?;
    if o.services == 0 && !o.metrics && o.agent_config.is_none() {
        return Ok(None);
    }
    // Top-level keys first: TOML puts every key after a table header into
    // that table.
    let mut toml = String::new();
    let metrics = if o.metrics {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(Error::io("cannot find a free port for metrics_listen"))?;
        toml.push_str(&format!("metrics_listen = \"{addr}\"\n"));
        Some(addr)
    } else {
        None
    };
    if let Some(file) = &o.agent_config {
        let extra = std::fs::read_to_string(file)
            .map_err(Error::io(format!("--agent-config {}", file.display())))?;
        toml.push_str(&extra);
        toml.push('\n');
    }
    for n in 1..=o.services {
        let state = dir.join(format!("s{n}.json"));
        std::fs::write(&state, "{\"status\":\"UP\"}\n")
            .map_err(Error::io(format!("cannot write {}", state.display())))?;
        toml.push_str(&format!(
            "[services.s{n}]\nstate_file = \"{}\"\n",
            state.display()
        ));
    }
    let config = dir.join("hapgent.toml");
    std::fs::write(&config, toml).map_err(Error::io(format!("cannot write {config:?}")))?;
    Ok(metrics)
}

#[cfg(test)]
mod tests {
    use super::listening_addr;

    #[test]
    fn listening_line() {
        let line = "hapgent 0.1.0 listening on 127.0.0.1:40123; state file /tmp/x: UP";
        assert_eq!(
            listening_addr(line),
            Some("127.0.0.1:40123".parse().unwrap())
        );
        assert_eq!(
            listening_addr("<6>listening on 127.0.0.1:9, 10.0.0.1:9"),
            Some("127.0.0.1:9".parse().unwrap())
        );
        assert_eq!(listening_addr("starting"), None);
    }
}
