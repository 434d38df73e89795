//! hapgent-bench: load and footprint benchmark for HAProxy agent-check agents.
//!
//! Starts an agent (hapgent by default, or any command given after `--`),
//! probes it over loopback the way HAProxy does (connect, optionally send the
//! `agent-send` payload, read one line, close with a reset) from N threads,
//! and reports throughput, latency, the agent's CPU time per check, its
//! memory at rest, after load and while 2,000 connections are held idle, how
//! fast a fresh probe is answered meanwhile, the stripped binary size and
//! the time from spawn to the first reply. Every reply must be one
//! well-formed agent-check line; any error or malformed reply makes the
//! exit status 1 (after the report), so `--check` is a correctness test.
//!
//! Load generator (`load`): non-blocking sockets in an epoll loop per
//! thread (one thread per CPU by default), so that it leaves the agent as much of
//! the machine as it can; it shares the machine's cores with the agent.
//! Single probes (start-up, fresh probes) use a blocking socket.

mod load;
mod proc;
mod report;
mod wait_seen;

use report::{Metrics, Report};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::FromRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Barrier, Mutex, mpsc};
use std::time::{Duration, Instant};

const USAGE: &str = "\
Usage: hapgent-bench [OPTIONS] [-- AGENT_COMMAND ARGS...]

Without AGENT_COMMAND, starts BINARY (hapgent) as
  BINARY --config TMP/hapgent.toml --ip 127.0.0.1 --port 0 --state-file TMP/state.json
(a config file that is empty unless --services, --metrics or
--agent-config fill it; no HAPGENT_* variables)
with the state {\"status\":\"UP\"}, and learns its port from the stderr line
`listening on 127.0.0.1:PORT`. With AGENT_COMMAND, starts that command as
given and probes 127.0.0.1:PORT (--port is then required).

Options:
  --binary PATH          hapgent binary to start and to measure
                         (default: target/x86_64-unknown-linux-musl/release/hapgent)
  --size-of PATH         binary whose stripped size is reported (default:
                         BINARY, or AGENT_COMMAND's program)
  --port N               port the AGENT_COMMAND listens on (127.0.0.1)
  --concurrency LIST     concurrent probers, comma-separated (default: 1,8,64)
  --threads N            load-generator threads, each an epoll loop driving
                         its share of the concurrent probes (default: the
                         number of CPUs; never more than the concurrency)
  --checks N             checks per load run (default: 100000)
  --duration SECS        upper bound on each load run (default: 60)
  --runs N               runs per concurrency; medians are reported (default: 3)
  --idle-connections N   connections held open without reading (default: 2000)
  --fresh-probes N       probes timed while they are held (default: 20)
  --starts N             spawn-to-first-reply repetitions (default: 5)
  --send STRING          agent-send payload sent after connect (\\n, \\r, \\t
                         escapes; HAProxy sends nothing without agent-send)
  --expect LINE          every reply must be exactly LINE (without newline)
  --timeout-ms N         per-probe connect and read timeout (default: 2000)
  --probers N            spread the probes over N distinct source addresses
                         (127.0.0.2, 127.0.0.3, ...), as N load balancers
                         would; hapgent then also gets a control socket and
                         the report gives how many probers its table holds
                         (default: every probe from 127.0.0.1)
  --no-floor             do not measure the floor (see below)
  --services N           configure hapgent with N services, [services.s1]
                         ... [services.sN], each with its own state file
                         (UP) in TMP; probes select one with --send 's1\n'
  --metrics              set metrics_listen to a free 127.0.0.1 port and
                         scrape GET /metrics during each load (every
                         --scrape-interval-ms); every scrape must get 200
  --scrape-interval-ms N time between scrapes (default: 1000)
  --agent-config FILE    TOML added to hapgent's configuration file after
                         the generated top-level keys (before the services)
  --wait-seen N          instead of the load: start HAProxy against hapgent
                         and time N `hapgent ctl drain|ready --wait-seen`
                         (alternately), and when HAProxy shows each change
  --haproxy PATH         HAProxy for --wait-seen (default: haproxy)
  --agent-inter MS       HAProxy's agent-inter for --wait-seen (default: 200)
  --check                short correctness mode: 3000 checks, 300 idle
                         connections, 1 run, 3 starts; also fails if a run
                         stops before all its checks are done
  --json                 print the report as JSON instead of text
  --markdown             also print the medians as a Markdown table
  -h, --help             this text

The floor: after each run, the same load against a bare blocking
accept -> write `up ready 100%\n` -> close loop (this program, run as a
child process so that its CPU time is read like the agent's); the report
gives its CPU per check and the agent's CPU per check divided by it.

Exit status: 0 when every probe got a well-formed reply, 1 on any error or
malformed reply (the report is printed first), 64 on a usage error.
";

#[derive(Clone, Debug)]
pub struct Options {
    pub binary: PathBuf,
    pub size_of: Option<PathBuf>,
    pub port: Option<u16>,
    pub command: Vec<String>,
    pub concurrency: Vec<usize>,
    pub threads: usize,
    pub checks: u64,
    pub duration: Duration,
    pub runs: usize,
    pub idle_connections: usize,
    pub fresh_probes: usize,
    pub starts: usize,
    pub send: Option<Vec<u8>>,
    pub expect: Option<String>,
    pub timeout: Duration,
    pub check: bool,
    pub json: bool,
    pub markdown: bool,
    /// Distinct source addresses of the probes; 0 = the kernel's choice.
    pub probers: u32,
    pub floor: bool,
    /// `--wait-seen N`: the number of timed ctl commands; 0 = the load.
    pub wait_seen: usize,
    pub haproxy: PathBuf,
    pub agent_inter_ms: u64,
    /// `--services N`: generated `[services.sN]` tables.
    pub services: usize,
    /// `--metrics`: metrics_listen set and scraped during the load.
    pub metrics: bool,
    pub scrape_interval: Duration,
    /// `--agent-config FILE`: extra TOML for hapgent's configuration.
    pub agent_config: Option<PathBuf>,
}

fn parse_args() -> Result<Option<Options>, String> {
    let mut o = Options {
        binary: PathBuf::from("target/x86_64-unknown-linux-musl/release/hapgent"),
        size_of: None,
        port: None,
        command: Vec::new(),
        concurrency: vec![1, 8, 64],
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        checks: 100_000,
        duration: Duration::from_secs(60),
        runs: 3,
        idle_connections: 2000,
        fresh_probes: 20,
        starts: 5,
        send: None,
        expect: None,
        timeout: Duration::from_millis(2000),
        check: false,
        json: false,
        markdown: false,
        probers: 0,
        floor: true,
        wait_seen: 0,
        haproxy: PathBuf::from("haproxy"),
        agent_inter_ms: 200,
        services: 0,
        metrics: false,
        scrape_interval: Duration::from_secs(1),
        agent_config: None,
    };
    let (mut checks, mut idle, mut runs, mut starts) = (None, None, None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        fn num<T: std::str::FromStr>(name: &str, v: String) -> Result<T, String> {
            v.parse().map_err(|_| format!("{name}: not a number: {v}"))
        }
        match arg.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(None);
            }
            "--binary" => o.binary = value("--binary")?.into(),
            "--size-of" => o.size_of = Some(value("--size-of")?.into()),
            "--port" => o.port = Some(num("--port", value("--port")?)?),
            "--concurrency" => {
                o.concurrency = value("--concurrency")?
                    .split(',')
                    .map(|c| num("--concurrency", c.trim().to_string()))
                    .collect::<Result<_, _>>()?;
                if o.concurrency.is_empty() || o.concurrency.contains(&0) {
                    return Err("--concurrency: each value must be at least 1".into());
                }
            }
            "--threads" => o.threads = num("--threads", value("--threads")?)?,
            "--checks" => checks = Some(num("--checks", value("--checks")?)?),
            "--duration" => {
                o.duration = Duration::from_secs_f64(num("--duration", value("--duration")?)?)
            }
            "--runs" => runs = Some(num("--runs", value("--runs")?)?),
            "--idle-connections" => {
                idle = Some(num("--idle-connections", value("--idle-connections")?)?)
            }
            "--fresh-probes" => o.fresh_probes = num("--fresh-probes", value("--fresh-probes")?)?,
            "--starts" => starts = Some(num("--starts", value("--starts")?)?),
            "--send" => o.send = Some(unescape(&value("--send")?)),
            "--expect" => o.expect = Some(value("--expect")?),
            "--timeout-ms" => {
                o.timeout = Duration::from_millis(num("--timeout-ms", value("--timeout-ms")?)?)
            }
            "--probers" => {
                o.probers = num("--probers", value("--probers")?)?;
                if !(1..=65_536).contains(&o.probers) {
                    return Err("--probers: between 1 and 65536".into());
                }
            }
            "--no-floor" => o.floor = false,
            "--wait-seen" => {
                o.wait_seen = num("--wait-seen", value("--wait-seen")?)?;
                if o.wait_seen == 0 {
                    return Err("--wait-seen: at least 1".into());
                }
            }
            "--haproxy" => o.haproxy = value("--haproxy")?.into(),
            "--agent-inter" => {
                o.agent_inter_ms = num("--agent-inter", value("--agent-inter")?)?;
                if o.agent_inter_ms == 0 {
                    return Err("--agent-inter: at least 1 ms".into());
                }
            }
            "--services" => {
                o.services = num("--services", value("--services")?)?;
                if o.services > 100_000 {
                    return Err("--services: at most 100000".into());
                }
            }
            "--metrics" => o.metrics = true,
            "--scrape-interval-ms" => {
                let ms: u64 = num("--scrape-interval-ms", value("--scrape-interval-ms")?)?;
                if ms == 0 {
                    return Err("--scrape-interval-ms: at least 1".into());
                }
                o.scrape_interval = Duration::from_millis(ms);
            }
            "--agent-config" => o.agent_config = Some(value("--agent-config")?.into()),
            "--check" => o.check = true,
            "--json" => o.json = true,
            "--markdown" => o.markdown = true,
            "--" => {
                o.command = args.by_ref().collect();
                if o.command.is_empty() {
                    return Err("`--` must be followed by the agent command".into());
                }
            }
            other => return Err(format!("unknown argument: {other}")),
        }
    }
    if o.check {
        o.checks = 3000;
        o.idle_connections = 300;
        o.runs = 1;
        o.starts = 3;
    }
    o.checks = checks.unwrap_or(o.checks);
    o.idle_connections = idle.unwrap_or(o.idle_connections);
    o.runs = runs.unwrap_or(o.runs).max(1);
    o.starts = starts.unwrap_or(o.starts);
    if o.wait_seen > 0 && !o.command.is_empty() {
        return Err("--wait-seen measures hapgent's control socket: no agent command".into());
    }
    if !o.command.is_empty() && (o.services > 0 || o.metrics || o.agent_config.is_some()) {
        return Err(
            "--services, --metrics and --agent-config configure hapgent: no agent command".into(),
        );
    }
    if !o.command.is_empty() && o.port.is_none() {
        return Err("an agent command needs --port (the port it listens on)".into());
    }
    Ok(Some(o))
}

/// `\n`, `\r`, `\t` and `\\` in a command-line string, as in haproxy.cfg.
fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next() {
            Some('n') => out.push(b'\n'),
            Some('r') => out.push(b'\r'),
            Some('t') => out.push(b'\t'),
            Some(other) => {
                let mut buf = [0; 4];
                out.extend_from_slice(other.encode_utf8(&mut buf).as_bytes());
            }
            None => out.push(b'\\'),
        }
    }
    out
}

// ---------------------------------------------------------------- the agent

/// A scratch directory for the state file, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<TempDir> {
        let base = std::env::temp_dir();
        for n in 0..1000 {
            let dir = base.join(format!("hapgent-bench-{}-{n}", std::process::id()));
            match std::fs::create_dir(&dir) {
                Ok(()) => return Ok(TempDir(dir)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::other("no free temporary directory name"))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What `Agent::start` starts.
#[derive(Clone, Copy)]
enum Role<'a> {
    /// The agent measured: hapgent (with this control socket, or none), or
    /// the AGENT_COMMAND.
    Measured { control: Option<&'a Path> },
    /// The floor reference (`floor_server`), this program run again.
    Floor,
}

/// hapgent's command line as the benchmark runs it, `hapgent ctl` included:
/// an empty config file of its own, and no HAPGENT_* variable from this
/// environment, so that nothing of the host's setup leaks into the
/// measurement.
fn hapgent_command(o: &Options, dir: &Path, control: Option<&Path>) -> Result<Command, String> {
    let mut cmd = Command::new(&o.binary);
    let config = dir.join("hapgent.toml");
    if !config.exists() {
        std::fs::write(&config, "").map_err(|e| format!("cannot write {config:?}: {e}"))?;
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

/// The hidden first argument that makes this program the floor reference.
const FLOOR_ARG: &str = "--floor-server";

/// The floor: the least a TCP agent-check responder can do per check,
/// accept -> write the reply -> close, blocking, one thread, no runtime
/// (std's accept is one accept4 call). Run as a child process so that its
/// CPU time is read from /proc exactly like the agent's. With `--drain` it
/// also drops an agent-send payload with one non-blocking recv before the
/// close, as hapgent does, so that the close does not reset the reply.
fn floor_server(drain: bool) -> ExitCode {
    let listener = match std::net::TcpListener::bind("127.0.0.1:0") {
        Ok(l) => l,
        Err(e) => {
            eprintln!("floor: cannot bind 127.0.0.1:0: {e}");
            return ExitCode::from(1);
        }
    };
    match listener.local_addr() {
        Ok(addr) => eprintln!("floor listening on {addr}"),
        Err(e) => {
            eprintln!("floor: {e}");
            return ExitCode::from(1);
        }
    }
    loop {
        let Ok((mut conn, _)) = listener.accept() else {
            continue;
        };
        let _ = conn.write(b"up ready 100%\n");
        if drain {
            use std::os::fd::AsRawFd;
            let mut buf = [0u8; 512];
            // SAFETY: buf is live and as long as declared.
            unsafe {
                libc::recv(
                    conn.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
        }
    }
}

/// A running agent, killed (by PID, SIGKILL) and reaped on drop, so a
/// panicking or failing benchmark never leaves it behind. The child also
/// gets PR_SET_PDEATHSIG, so it dies if the benchmark is killed outright.
struct Agent {
    child: Child,
    addr: SocketAddr,
    stderr_tail: Arc<Mutex<Vec<String>>>,
}

impl Agent {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts the agent and waits until its address is known (hapgent:
    /// from its log line; another agent: the `--port` given). Returns the
    /// agent and the instant just before the spawn.
    fn start(o: &Options, state_dir: &Path, role: Role) -> Result<(Agent, Instant), String> {
        let mut cmd;
        let learn_addr = match role {
            Role::Floor => {
                let me = std::env::current_exe()
                    .map_err(|e| format!("cannot find this program for the floor: {e}"))?;
                cmd = Command::new(me);
                cmd.arg(FLOOR_ARG);
                if o.send.is_some() {
                    cmd.arg("--drain");
                }
                true
            }
            Role::Measured { control } if o.command.is_empty() => {
                cmd = hapgent_command(o, state_dir, control)?;
                cmd.args(["--ip", "127.0.0.1", "--port", "0", "--state-file"])
                    .arg(state_dir.join("state.json"));
                true
            }
            Role::Measured { .. } => {
                cmd = Command::new(&o.command[0]);
                cmd.args(&o.command[1..]);
                false
            }
        };
        // Its own process group, so that drop also ends whatever a wrapper
        // command (strace, valgrind, a shell) started.
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
        if !learn_addr {
            let addr = SocketAddr::from(([127, 0, 0, 1], o.port.unwrap_or(0)));
            if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
                return Err(format!(
                    "something already listens on {addr}: stop it or choose another --port"
                ));
            }
        }
        let spawned = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
        // Drain stderr forever (a full pipe would block the agent), pass the
        // first `listening on ADDR` on, keep the last lines for errors.
        let stderr = child.stderr.take().expect("stderr is piped");
        let tail = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        {
            let tail = Arc::clone(&tail);
            std::thread::spawn(move || {
                let mut tx = Some(tx);
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(addr) = listening_addr(&line)
                        && let Some(tx) = tx.take()
                    {
                        let _ = tx.send(addr);
                    }
                    let mut tail = tail.lock().unwrap();
                    if tail.len() == 20 {
                        tail.remove(0);
                    }
                    tail.push(line);
                }
            });
        }
        let mut agent = Agent {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], o.port.unwrap_or(0))),
            stderr_tail: tail,
        };
        if learn_addr {
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(addr) => agent.addr = addr,
                Err(_) => {
                    let _ = agent.child.try_wait();
                    return Err(format!(
                        "the agent printed no `listening on ADDR` line within 10 s; its stderr:\n{}",
                        agent.stderr_tail.lock().unwrap().join("\n")
                    ));
                }
            }
        }
        Ok((agent, spawned))
    }

    /// Probes until the agent accepts a connection (it may still be
    /// starting), for at most 10 s. Returns the first probe's outcome
    /// (well-formed or not) and when it ended.
    fn wait_ready(
        &mut self,
        o: &Options,
    ) -> Result<(Result<Vec<u8>, ProbeError>, Instant), String> {
        let give_up = Instant::now() + Duration::from_secs(10);
        let mut last = String::new();
        while Instant::now() < give_up {
            match probe(self.addr, o.send.as_deref(), o.timeout) {
                Err(e @ ProbeError::Connect(_)) => last = e.to_string(),
                answered => return Ok((answered, Instant::now())),
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "the agent exited ({status}) before answering; its stderr:\n{}",
                    self.stderr_tail.lock().unwrap().join("\n")
                ));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        Err(format!("the agent did not answer within 10 s: {last}"))
    }

    /// Whether the agent is still running.
    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
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

/// `ADDR` from a log line containing `listening on ADDR` (hapgent writes
/// e.g. `hapgent 0.1.0 listening on 127.0.0.1:9777; state file ...`).
fn listening_addr(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("listening on ")? + "listening on ".len()..];
    let token = rest
        .split(|c: char| c.is_whitespace() || c == ';' || c == ',')
        .next()?;
    token.parse().ok()
}

// ---------------------------------------------------------------- probes

#[derive(Debug)]
pub enum ProbeError {
    Connect(std::io::Error),
    Io(std::io::Error),
    Timeout,
    /// Closed before a line terminator: HAProxy ignores such a reply.
    Incomplete(Vec<u8>),
    Malformed(Vec<u8>, String),
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeError::Connect(e) => write!(f, "connect: {e}"),
            ProbeError::Io(e) => write!(f, "read/write: {e}"),
            ProbeError::Timeout => write!(f, "timed out"),
            ProbeError::Incomplete(b) => {
                write!(
                    f,
                    "closed before a line ended: {:?}",
                    String::from_utf8_lossy(b)
                )
            }
            ProbeError::Malformed(b, why) => {
                write!(f, "malformed reply {:?}: {why}", String::from_utf8_lossy(b))
            }
        }
    }
}

impl ProbeError {
    fn kind(&self) -> usize {
        match self {
            ProbeError::Connect(_) => 0,
            ProbeError::Io(_) => 1,
            ProbeError::Timeout => 2,
            ProbeError::Incomplete(_) => 3,
            ProbeError::Malformed(..) => 4,
        }
    }
}

pub const ERROR_KINDS: [&str; 5] = ["connect", "io", "timeout", "incomplete", "malformed"];

fn setsockopt<T>(fd: i32, level: i32, name: i32, value: &T) -> std::io::Result<()> {
    // SAFETY: value points to a live T of the size passed.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            value as *const T as *const libc::c_void,
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A connected TCP socket with a connect/read/write timeout, and SO_LINGER 0
/// so that close() sends a reset, as HAProxy does after reading the line
/// (no TIME_WAIT left behind on either side).
fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, ProbeError> {
    let SocketAddr::V4(v4) = addr else {
        return Err(ProbeError::Connect(std::io::Error::other("IPv4 only")));
    };
    // SAFETY: plain socket(2); the fd is owned by the TcpStream below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(ProbeError::Connect(std::io::Error::last_os_error()));
    }
    // SAFETY: fd is a fresh socket nobody else owns.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    let opts = setsockopt(fd, libc::SOL_SOCKET, libc::SO_SNDTIMEO, &tv)
        .and_then(|()| setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv))
        .and_then(|()| setsockopt(fd, libc::SOL_SOCKET, libc::SO_LINGER, &linger));
    opts.map_err(ProbeError::Connect)?;
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(v4.ip().octets()),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sin is a valid sockaddr_in; a blocking connect honours SO_SNDTIMEO.
    let r = unsafe {
        libc::connect(
            fd,
            &sin as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        return Err(if is_timeout(&e) {
            ProbeError::Timeout
        } else {
            ProbeError::Connect(e)
        });
    }
    Ok(stream)
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    ) || e.raw_os_error() == Some(libc::EINPROGRESS)
}

/// One agent check: connect, send the payload if any, read up to the first
/// line terminator, close with a reset. Returns the line (terminator
/// excluded) if it is well-formed.
pub fn probe(
    addr: SocketAddr,
    send: Option<&[u8]>,
    timeout: Duration,
) -> Result<Vec<u8>, ProbeError> {
    let mut stream = connect(addr, timeout)?;
    if let Some(payload) = send {
        stream.write_all(payload).map_err(|e| {
            if is_timeout(&e) {
                ProbeError::Timeout
            } else {
                ProbeError::Io(e)
            }
        })?;
    }
    let mut buf = [0u8; 512];
    let mut len = 0;
    loop {
        if let Some(end) = buf[..len].iter().position(|&b| b == b'\n' || b == b'\r') {
            let line = buf[..end].to_vec();
            return match well_formed(&line) {
                Ok(()) => Ok(line),
                Err(why) => Err(ProbeError::Malformed(line, why)),
            };
        }
        if len == buf.len() {
            return Err(ProbeError::Malformed(
                buf.to_vec(),
                "no line end in 512 bytes".into(),
            ));
        }
        match stream.read(&mut buf[len..]) {
            Ok(0) => return Err(ProbeError::Incomplete(buf[..len].to_vec())),
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => return Err(ProbeError::Timeout),
            Err(e) => return Err(ProbeError::Io(e)),
        }
    }
}

/// An agent-check reply line as HAProxy parses it (PROTOCOL.md): printable
/// ASCII under 128 bytes; words separated by spaces, tabs or commas, each a
/// known word, `N%`, `maxconn:N` or `weight:N`, or `#` starting a
/// description that runs to the end of the line; at least one word.
pub fn well_formed(line: &[u8]) -> Result<(), String> {
    if line.len() >= 128 {
        return Err(format!("{} bytes, more than 127", line.len()));
    }
    if let Some(b) = line
        .iter()
        .find(|&&b| !(b == b'\t' || (0x20..0x7f).contains(&b)))
    {
        return Err(format!("byte 0x{b:02x} is not printable ASCII"));
    }
    let text = std::str::from_utf8(line).expect("ASCII");
    let mut words = 0;
    let mut rest = text;
    while let Some(start) = rest.find(|c| !matches!(c, ' ' | '\t' | ',')) {
        rest = &rest[start..];
        if rest.starts_with('#') {
            break;
        }
        let end = rest.find([' ', '\t', ',']).unwrap_or(rest.len());
        let word = rest[..end].to_ascii_lowercase();
        rest = &rest[end..];
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let ok = matches!(
            word.as_str(),
            "up" | "down" | "fail" | "stopped" | "ready" | "drain" | "maint"
        ) || word.strip_suffix('%').is_some_and(digits)
            || word.strip_prefix("maxconn:").is_some_and(digits)
            || word.strip_prefix("weight:").is_some_and(digits);
        if !ok {
            return Err(format!("unknown word {word:?}"));
        }
        words += 1;
    }
    if words == 0 {
        return Err("no word before the description or end".into());
    }
    Ok(())
}

// ---------------------------------------------------------------- phases

/// Outcome counts and examples of a batch of probes.
#[derive(Default)]
pub struct Tally {
    pub ok: u64,
    pub errors: [u64; 5],
    pub examples: Vec<String>,
    pub latencies_ns: Vec<u64>,
}

impl Tally {
    pub fn record(&mut self, r: Result<Vec<u8>, ProbeError>, expect: Option<&str>, ns: u64) {
        let r = match (r, expect) {
            (Ok(line), Some(want)) if line != want.as_bytes() => {
                Err(ProbeError::Malformed(line, format!("expected {want:?}")))
            }
            (r, _) => r,
        };
        match r {
            Ok(_) => {
                self.ok += 1;
                self.latencies_ns.push(ns);
            }
            Err(e) => {
                self.errors[e.kind()] += 1;
                if self.examples.len() < 5 {
                    self.examples.push(e.to_string());
                }
            }
        }
    }

    fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        for (a, b) in self.errors.iter_mut().zip(other.errors) {
            *a += b;
        }
        for e in other.examples {
            if self.examples.len() < 5 {
                self.examples.push(e);
            }
        }
        self.latencies_ns.extend(other.latencies_ns);
    }

    pub fn failed(&self) -> u64 {
        self.errors.iter().sum()
    }
}

/// `concurrency` probes at a time, spread over `threads` epoll loops,
/// until `checks` probes are done or the duration is over; every reply
/// must be `expect` if given. Returns the tally and the wall time.
fn load(
    o: &Options,
    addr: SocketAddr,
    concurrency: usize,
    expect: Option<&str>,
) -> (Tally, Duration) {
    let remaining = AtomicI64::new(o.checks as i64);
    let threads = o.threads.clamp(1, concurrency);
    let start = Barrier::new(threads + 1);
    let mut tally = Tally::default();
    let mut began = Instant::now();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let slots = concurrency / threads + usize::from(t < concurrency % threads);
                let (remaining, start) = (&remaining, &start);
                s.spawn(move || {
                    start.wait();
                    let plan = load::Plan {
                        addr,
                        send: o.send.as_deref(),
                        expect,
                        timeout: o.timeout,
                        deadline: Instant::now() + o.duration,
                        remaining,
                        probers: o.probers,
                    };
                    load::drive(&plan, slots)
                })
            })
            .collect();
        start.wait();
        began = Instant::now();
        for w in workers {
            tally.merge(w.join().expect("a prober thread panicked"));
        }
    });
    (tally, began.elapsed())
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64
}

fn median(values: &mut [f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One complete run at one concurrency, on a freshly started agent.
fn run_once(
    o: &Options,
    concurrency: usize,
    tally_all: &mut Tally,
    notes: &mut Vec<String>,
) -> Result<Metrics, String> {
    let dir = TempDir::new().map_err(|e| format!("temporary directory: {e}"))?;
    let metrics_addr = write_agent_files(o, &dir.0)?;
    // With distinct probers, a control socket to ask hapgent how many its
    // table holds; otherwise none, as nothing needs it.
    let control = dir.0.join("control.sock");
    let control = (o.probers > 0 && o.command.is_empty()).then_some(control.as_path());
    let (mut agent, _) = Agent::start(o, &dir.0, Role::Measured { control })?;
    let (first, _) = agent.wait_ready(o)?;
    tally_all.record(first, o.expect.as_deref(), 0);
    let pid = agent.pid();
    let mut m = Metrics::default();
    m.push("concurrency", concurrency as f64);
    m.push("probers", f64::from(o.probers));
    m.push("services", o.services as f64);
    // At rest, after one probe.
    std::thread::sleep(Duration::from_millis(200));
    let idle = proc::memory(pid);
    m.push("rss_idle_kib", idle.rss_kib);
    m.push("hwm_idle_kib", idle.hwm_kib);

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let scraping =
        metrics_addr.map(|addr| scraper(addr, o.scrape_interval, o.timeout, Arc::clone(&stop)));
    let cpu0 = proc::cpu(pid);
    let own0 = proc::own_cpu_us();
    let (mut tally, elapsed) = load(o, agent.addr, concurrency, o.expect.as_deref());
    let own1 = proc::own_cpu_us();
    let cpu1 = proc::cpu(pid);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let scrapes = scraping.map(|t| t.join().expect("the scraper panicked"));
    let done = tally.ok + tally.failed();
    if done < o.checks {
        notes.push(format!(
            "concurrency {concurrency}: stopped by --duration after {done} of {} checks",
            o.checks
        ));
    }
    tally.latencies_ns.sort_unstable();
    let l = &tally.latencies_ns;
    m.push("checks", done as f64);
    m.push("errors", tally.failed() as f64);
    m.push("seconds", elapsed.as_secs_f64());
    m.push("checks_per_s", done as f64 / elapsed.as_secs_f64());
    m.push("latency_p50_us", percentile(l, 0.50) / 1e3);
    m.push("latency_p90_us", percentile(l, 0.90) / 1e3);
    m.push("latency_p99_us", percentile(l, 0.99) / 1e3);
    m.push("latency_p999_us", percentile(l, 0.999) / 1e3);
    m.push(
        "latency_max_us",
        l.last().map_or(f64::NAN, |&x| x as f64 / 1e3),
    );
    let per_check = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if done > 0 => (b - a) / done as f64,
        _ => f64::NAN,
    };
    m.push(
        "agent_cpu_us_per_check",
        per_check(cpu0.stat_us, cpu1.stat_us),
    );
    m.push(
        "agent_cpu_us_per_check_schedstat",
        per_check(cpu0.sched_us, cpu1.sched_us),
    );
    m.push(
        "agent_kernel_cpu_us_per_check",
        per_check(cpu0.stime_us, cpu1.stime_us),
    );
    m.push(
        "loadgen_cpu_us_per_check",
        per_check(Some(own0), Some(own1)),
    );
    // The scrapes during the load, then one after it: hapgent's own count
    // of the probes it answered (all, and for the payload's service).
    if let (Some(addr), Some(s)) = (metrics_addr, scrapes) {
        m.push("scrapes", s.done as f64);
        m.push("scrape_failures", s.failed as f64);
        m.push("scrape_max_ms", s.max_ms);
        tally.errors[1] += s.failed;
        for e in s.examples {
            if tally.examples.len() < 5 {
                tally.examples.push(e);
            }
        }
        let (total, named) = match scrape(addr, o.timeout) {
            Ok((200, body)) => (
                sample_sum(&body, "hapgent_probes_total", ""),
                payload_service(o).map_or(f64::NAN, |name| {
                    sample_sum(
                        &body,
                        "hapgent_probes_total",
                        &format!("service=\"{name}\""),
                    )
                }),
            ),
            other => {
                notes.push(format!("concurrency {concurrency}: last scrape: {other:?}"));
                tally.errors[1] += 1;
                (f64::NAN, f64::NAN)
            }
        };
        m.push("scraped_probes_total", total);
        m.push("scraped_probes_service", named);
    }
    let after = proc::memory(pid);
    m.push("rss_after_load_kib", after.rss_kib);
    m.push("hwm_after_load_kib", after.hwm_kib);

    // Connections that never read and never close.
    let mut held = Vec::with_capacity(o.idle_connections);
    let mut idle_tally = Tally::default();
    for _ in 0..o.idle_connections {
        match connect(agent.addr, o.timeout) {
            Ok(s) => held.push(s),
            Err(e) => idle_tally.record(Err(e), None, 0),
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    let holding = proc::memory(pid);
    let mut fresh = Tally::default();
    for _ in 0..o.fresh_probes {
        let t0 = Instant::now();
        let r = probe(agent.addr, o.send.as_deref(), o.timeout);
        fresh.record(r, o.expect.as_deref(), t0.elapsed().as_nanos() as u64);
    }
    let holding_after = proc::memory(pid);
    m.push("idle_connections_held", held.len() as f64);
    m.push(
        "rss_idle_conns_kib",
        holding.rss_kib.max(holding_after.rss_kib),
    );
    m.push("hwm_idle_conns_kib", holding_after.hwm_kib);
    fresh.latencies_ns.sort_unstable();
    m.push(
        "fresh_probe_p50_ms",
        percentile(&fresh.latencies_ns, 0.5) / 1e6,
    );
    m.push(
        "fresh_probe_max_ms",
        fresh
            .latencies_ns
            .last()
            .map_or(f64::NAN, |&x| x as f64 / 1e6),
    );
    drop(held);
    // Last, as listing the table makes the agent allocate its answer.
    let tracked = match control {
        Some(socket) => probers_tracked(o, &dir.0, socket, notes),
        None => f64::NAN,
    };
    m.push("probers_tracked", tracked);
    if !agent.alive() {
        notes.push(format!(
            "concurrency {concurrency}: the agent died during the run; its stderr:\n{}",
            agent.stderr_tail.lock().unwrap().join("\n")
        ));
        tally.errors[0] += 1;
    }
    drop(agent);
    tally.merge(idle_tally);
    tally.merge(fresh);
    tally.latencies_ns = Vec::new();
    tally_all.merge(tally);
    if o.check && done < o.checks {
        tally_all.errors[2] += o.checks - done;
    }
    if o.floor {
        floor_run(o, concurrency, &mut m, tally_all, notes)?;
    }
    Ok(m)
}

/// The floor reference under the same load, right after the agent's run
/// (the agent is stopped by then): its CPU per check, and the agent's
/// divided by it. schedstat (ns) when the kernel has it, else
/// /proc/PID/stat ticks.
fn floor_run(
    o: &Options,
    concurrency: usize,
    m: &mut Metrics,
    tally_all: &mut Tally,
    notes: &mut Vec<String>,
) -> Result<(), String> {
    let dir = TempDir::new().map_err(|e| format!("temporary directory: {e}"))?;
    let (mut floor, _) = Agent::start(o, &dir.0, Role::Floor)?;
    let (first, _) = floor.wait_ready(o)?;
    tally_all.record(first, None, 0);
    std::thread::sleep(Duration::from_millis(200));
    let pid = floor.pid();
    let cpu0 = proc::cpu(pid);
    let (mut tally, elapsed) = load(o, floor.addr, concurrency, None);
    let cpu1 = proc::cpu(pid);
    let done = tally.ok + tally.failed();
    if done < o.checks {
        notes.push(format!(
            "concurrency {concurrency}: the floor stopped by --duration after {done} of {} checks",
            o.checks
        ));
        if o.check {
            tally.errors[2] += o.checks - done;
        }
    }
    let per_check = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if done > 0 => (b - a) / done as f64,
        _ => f64::NAN,
    };
    let stat = per_check(cpu0.stat_us, cpu1.stat_us);
    let sched = per_check(cpu0.sched_us, cpu1.sched_us);
    m.push("floor_checks_per_s", done as f64 / elapsed.as_secs_f64());
    m.push("floor_cpu_us_per_check", stat);
    m.push("floor_cpu_us_per_check_schedstat", sched);
    m.push(
        "floor_kernel_cpu_us_per_check",
        per_check(cpu0.stime_us, cpu1.stime_us),
    );
    let ratio = if sched.is_nan() {
        m.get("agent_cpu_us_per_check") / stat
    } else {
        m.get("agent_cpu_us_per_check_schedstat") / sched
    };
    m.push("floor_ratio", ratio);
    if !floor.alive() {
        notes.push(format!(
            "concurrency {concurrency}: the floor died during the run; its stderr:\n{}",
            floor.stderr_tail.lock().unwrap().join("\n")
        ));
        tally.errors[0] += 1;
    }
    tally.latencies_ns = Vec::new();
    tally_all.merge(tally);
    Ok(())
}

/// How many probers hapgent's table holds (`hapgent ctl probers --json`:
/// the entries' `address` fields counted); NaN, with a note, if it cannot
/// say. It includes 127.0.0.1, which the readiness and fresh probes come from.
fn probers_tracked(o: &Options, dir: &Path, socket: &Path, notes: &mut Vec<String>) -> f64 {
    let out = hapgent_command(o, dir, Some(socket)).and_then(|mut cmd| {
        cmd.args(["ctl", "probers", "--json"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run hapgent ctl: {e}"))
    });
    match out {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .matches("\"address\"")
            .count() as f64,
        Ok(out) => {
            notes.push(format!(
                "hapgent ctl probers failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            f64::NAN
        }
        Err(e) => {
            notes.push(e);
            f64::NAN
        }
    }
}

fn write_state(dir: &Path) -> Result<(), String> {
    std::fs::write(dir.join("state.json"), "{\"status\":\"UP\"}\n")
        .map_err(|e| format!("cannot write the state file: {e}"))
}

/// Writes what hapgent is started with in `dir`: the default state file,
/// and, with --services, --metrics or --agent-config, the configuration
/// file (`TMP/hapgent.toml`) and one state file (UP) per service. Returns
/// the metrics address, a port that was free a moment ago (hapgent logs
/// the address as configured, so port 0 would not tell where it listens).
fn write_agent_files(o: &Options, dir: &Path) -> Result<Option<SocketAddr>, String> {
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
            .map_err(|e| format!("cannot find a free port for metrics_listen: {e}"))?;
        toml.push_str(&format!("metrics_listen = \"{addr}\"\n"));
        Some(addr)
    } else {
        None
    };
    if let Some(file) = &o.agent_config {
        let extra = std::fs::read_to_string(file)
            .map_err(|e| format!("--agent-config {}: {e}", file.display()))?;
        toml.push_str(&extra);
        toml.push('\n');
    }
    for n in 1..=o.services {
        let state = dir.join(format!("s{n}.json"));
        std::fs::write(&state, "{\"status\":\"UP\"}\n")
            .map_err(|e| format!("cannot write {}: {e}", state.display()))?;
        toml.push_str(&format!(
            "[services.s{n}]\nstate_file = \"{}\"\n",
            state.display()
        ));
    }
    let config = dir.join("hapgent.toml");
    std::fs::write(&config, toml).map_err(|e| format!("cannot write {config:?}: {e}"))?;
    Ok(metrics)
}

/// What the scraper saw during one load.
#[derive(Default)]
struct Scrapes {
    done: u64,
    failed: u64,
    max_ms: f64,
    examples: Vec<String>,
}

/// `GET /metrics` over a fresh connection: the status code and the body.
fn scrape(addr: SocketAddr, timeout: Duration) -> Result<(u16, String), String> {
    let mut s = connect(addr, timeout).map_err(|e| format!("metrics: {e}"))?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("metrics: write: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| format!("metrics: read: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("metrics: not an HTTP response: {:?}", text.lines().next()))?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok((status, body.to_string()))
}

/// The sum of the `NAME{...} VALUE` samples whose labels contain `labels`.
fn sample_sum(body: &str, name: &str, labels: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{') && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Scrapes every `interval` until `stop` is set (a thread next to the
/// load, as a Prometheus server would); every scrape must get 200.
fn scraper(
    addr: SocketAddr,
    interval: Duration,
    timeout: Duration,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Scrapes> {
    use std::sync::atomic::Ordering;
    std::thread::spawn(move || {
        let mut out = Scrapes::default();
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if Instant::now() < next {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            next += interval;
            let t0 = Instant::now();
            let r = scrape(addr, timeout);
            out.max_ms = out.max_ms.max(t0.elapsed().as_secs_f64() * 1e3);
            out.done += 1;
            let why = match r {
                Ok((200, body)) if body.contains("hapgent_probes_total") => continue,
                Ok((200, _)) => "200 without hapgent_probes_total".to_string(),
                Ok((code, _)) => format!("status {code}"),
                Err(e) => e,
            };
            out.failed += 1;
            if out.examples.len() < 3 {
                out.examples.push(why);
            }
        }
        out
    })
}

/// The service the --send payload names, when services are configured.
fn payload_service(o: &Options) -> Option<String> {
    let payload = o.send.as_ref()?;
    let name = String::from_utf8_lossy(payload)
        .trim_end_matches(['\r', '\n'])
        .to_string();
    (o.services > 0 && !name.is_empty()).then_some(name)
}

/// Spawn to first well-formed reply, `starts` times.
fn startup(o: &Options, tally: &mut Tally) -> Result<Vec<f64>, String> {
    let mut times = Vec::new();
    for _ in 0..o.starts {
        let dir = TempDir::new().map_err(|e| format!("temporary directory: {e}"))?;
        write_agent_files(o, &dir.0)?;
        let (mut agent, spawned) = Agent::start(o, &dir.0, Role::Measured { control: None })?;
        let (first, at) = agent.wait_ready(o)?;
        tally.record(first, o.expect.as_deref(), 0);
        times.push((at - spawned).as_secs_f64() * 1e3);
        drop(agent);
    }
    Ok(times)
}

/// Raises the soft open-file limit to what the idle connections need (the
/// agent inherits it, which matters for agents that keep them open).
fn raise_nofile(need: u64) -> Result<(), String> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Ok(());
    }
    if lim.rlim_cur >= need {
        return Ok(());
    }
    if lim.rlim_max < need {
        return Err(format!(
            "{need} file descriptors needed but the hard limit is {}; raise it (ulimit -Hn) or lower --idle-connections",
            lim.rlim_max
        ));
    }
    lim.rlim_cur = need as libc::rlim_t;
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(format!("setrlimit: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some(FLOOR_ARG) {
        return floor_server(args.next().as_deref() == Some("--drain"));
    }
    let o = match parse_args() {
        Ok(Some(o)) => o,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hapgent-bench: {e}\n\n{USAGE}");
            return ExitCode::from(64);
        }
    };
    let result = if o.wait_seen > 0 {
        wait_seen::run(&o)
    } else {
        bench(&o)
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("hapgent-bench: {e}");
            ExitCode::from(1)
        }
    }
}

/// Runs everything and prints the report; Ok(false) if any probe failed.
fn bench(o: &Options) -> Result<bool, String> {
    let max_c = o.concurrency.iter().copied().max().unwrap_or(1);
    raise_nofile((o.idle_connections + max_c + 256) as u64)?;
    if o.command.is_empty() && !o.binary.exists() {
        return Err(format!(
            "{} does not exist: build it (cargo build --release --target x86_64-unknown-linux-musl) or pass --binary",
            o.binary.display()
        ));
    }
    let size_of = o.size_of.clone().unwrap_or_else(|| {
        if o.command.is_empty() {
            o.binary.clone()
        } else {
            which(&o.command[0])
        }
    });
    let mut report = Report::new(o, proc::machine(), proc::binary_size(&size_of));
    report.loadavg.0 = proc::loadavg();
    let mut tally = Tally::default();
    let say = |s: String| {
        if !o.json {
            eprintln!("{s}");
        }
    };

    say(format!(
        "hapgent-bench: measuring start to first reply ({} starts)",
        o.starts
    ));
    report.startup_ms = startup(o, &mut tally)?;
    for &c in &o.concurrency {
        for run in 1..=o.runs {
            say(format!(
                "hapgent-bench: concurrency {c}, run {run}/{}: {} checks, {} idle connections",
                o.runs, o.checks, o.idle_connections
            ));
            let m = run_once(o, c, &mut tally, &mut report.notes)?;
            report.runs.push(m);
        }
    }
    report.loadavg.1 = proc::loadavg();
    report.errors = tally.errors;
    report.error_examples = tally.examples.clone();
    report.ok = tally.ok;
    if o.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    if o.markdown {
        print!("{}", report.markdown());
    }
    let failed = tally.failed();
    if failed > 0 {
        eprintln!("hapgent-bench: FAILED: {failed} probes failed or got a malformed reply");
        for e in &tally.examples {
            eprintln!("  e.g. {e}");
        }
    }
    Ok(failed == 0)
}

/// The path of a program, as the shell would find it.
fn which(program: &str) -> PathBuf {
    if program.contains('/') {
        return program.into();
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(program))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| program.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        for ok in [
            "up ready 100%",
            "UP 77% maxconn:300",
            "75% ready",
            "down # deploying v2",
            "maint,weight:10",
            "fail\t#",
        ] {
            assert_eq!(well_formed(ok.as_bytes()), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "failed",
            "up 1x%",
            "# only a description",
            "up\u{7f}",
            "down#x",
        ] {
            assert!(well_formed(bad.as_bytes()).is_err(), "{bad}");
        }
    }

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

    #[test]
    fn percentiles_and_medians() {
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&v, 0.5), 500.0);
        assert_eq!(percentile(&v, 0.999), 999.0);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(unescape("web\\n"), b"web\n");
    }

    #[test]
    fn metric_samples() {
        let body = "# TYPE hapgent_probes_total counter\n\
            hapgent_probes_total{service=\"default\"} 3\n\
            hapgent_probes_total{service=\"s1\"} 40\n\
            hapgent_probes_refused_total{reason=\"allow_list\"} 7\n\
            hapgent_prober_probes_total{prober=\"127.0.0.1\",service=\"s1\"} 40\n";
        assert_eq!(sample_sum(body, "hapgent_probes_total", ""), 43.0);
        assert_eq!(
            sample_sum(body, "hapgent_probes_total", "service=\"s1\""),
            40.0
        );
    }
}
