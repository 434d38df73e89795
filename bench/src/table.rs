//! `--prober-table N`: how hapgent's prober table behaves when large.
//!
//! Starts hapgent with `max_probers = N` and a control socket, then, while
//! one prober (127.0.0.1) probes back to back and every probe's latency is
//! recorded: fills the table with N distinct sources (127.1.0.0 on), sends
//! probes from more new sources with the table full (each one evicts the
//! longest unseen), and runs `hapgent ctl probers --json` ten times. The
//! report gives new sources per second in both phases and the probe
//! latency (median, p99, max) in each phase: "probes delayed" is the max
//! of a phase against the max at rest.

use crate::cli::Options;
use crate::error::Error;
use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `hapgent ctl probers --json` runs timed.
const CTL_RUNS: usize = 10;

/// New sources sent with the table full (at most).
const EVICTING: u32 = 50_000;

/// One probe from `source` (unbound: the kernel's choice), closed with a
/// reset as HAProxy does; true if a reply line came.
fn probe_from(source: Option<Ipv4Addr>, to: SocketAddr) -> bool {
    use std::os::fd::FromRawFd;
    let SocketAddr::V4(to) = to else { return false };
    let sin = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor owned by `stream` below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return false;
    }
    let mut stream = unsafe { TcpStream::from_raw_fd(fd) };
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    let remote = sin(*to.ip(), to.port());
    let ok = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
        let bound = match source {
            Some(ip) => {
                let local = sin(ip, 0);
                libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len) == 0
            }
            None => true,
        };
        bound && libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len) == 0
    };
    if !ok {
        return false;
    }
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = [0u8; 128];
    let mut got = 0;
    while let Ok(n) = stream.read(&mut buf[got..]) {
        if n == 0 {
            break;
        }
        got += n;
        if buf[..got].contains(&b'\n') || got == buf.len() {
            break;
        }
    }
    buf[..got].contains(&b'\n')
}

/// Source number `n`: 127.1.0.0 + n.
fn source(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x7f01_0000 + n)
}

/// Probes from sources `from..to`, on `threads` threads; new sources per
/// second.
fn sources(addr: SocketAddr, from: u32, to: u32, threads: u32) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                let mut n = from + t;
                while n < to {
                    probe_from(Some(source(n)), addr);
                    n += threads;
                }
            });
        }
    });
    f64::from(to - from) / start.elapsed().as_secs_f64()
}

/// Latencies (µs) of the steady prober, by phase.
struct Recorder {
    phase: AtomicU8,
    stop: AtomicBool,
    latencies: Mutex<Vec<Vec<u64>>>,
}

const PHASES: [&str; 4] = [
    "at rest",
    "filling",
    "full, new sources",
    "ctl probers --json",
];

impl Recorder {
    fn new() -> Recorder {
        Recorder {
            phase: AtomicU8::new(0),
            stop: AtomicBool::new(false),
            latencies: Mutex::new(vec![Vec::new(); PHASES.len()]),
        }
    }

    /// The next phase: the steady prober's latencies go there from now on.
    fn enter(&self, phase: u8) {
        self.phase.store(phase, Ordering::Relaxed);
    }
}

/// The steady prober: one probe from 127.0.0.1 every millisecond or so,
/// its latency recorded under the current phase, until told to stop.
fn steady_prober(rec: &Arc<Recorder>, addr: SocketAddr) -> std::thread::JoinHandle<()> {
    let rec = Arc::clone(rec);
    std::thread::spawn(move || {
        while !rec.stop.load(Ordering::Relaxed) {
            let phase = rec.phase.load(Ordering::Relaxed) as usize;
            let t = Instant::now();
            probe_from(None, addr);
            let us = t.elapsed().as_micros() as u64;
            if let Ok(mut l) = rec.latencies.lock() {
                l[phase].push(us);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    })
}

fn summary(name: &str, mut l: Vec<u64>) -> String {
    if l.is_empty() {
        return format!("{name:<22} no probes");
    }
    l.sort_unstable();
    let at = |q: f64| l[((l.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    format!(
        "{name:<22} {:>7} probes  median {:>7.3} ms  p99 {:>7.3} ms  max {:>8.3} ms",
        l.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    )
}

/// Starts hapgent with `max_probers = n` and a control socket at
/// `socket`, its state file (UP) in `dir`; returns it and the address it
/// logs. Its stderr is drained on a thread from then on.
fn start_hapgent(o: &Options, dir: &Path, socket: &Path) -> Result<(Child, SocketAddr), Error> {
    let state = dir.join("state.json");
    std::fs::write(&state, "{\"status\":\"UP\"}")
        .map_err(Error::io("cannot write the state file"))?;
    let mut child = Command::new(&o.binary)
        .args(["--ip", "127.0.0.1", "--port", "0", "--max-probers"])
        .arg(o.prober_table.to_string())
        .arg("--state-file")
        .arg(&state)
        .arg("--control-socket")
        .arg(socket)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(Error::io(format!("cannot start {}", o.binary.display())))?;
    let mut stderr = BufReader::new(child.stderr.take().expect("piped"));
    let addr = logged_addr(&mut child, &mut stderr)?;
    std::thread::spawn(move || {
        let mut sink = String::new();
        while stderr.read_line(&mut sink).unwrap_or(0) > 0 {
            sink.clear();
        }
    });
    Ok((child, addr))
}

/// The address in hapgent's `listening on ADDR` line; an error with what
/// it said (the child killed) if it stops before or the line is unreadable.
fn logged_addr(child: &mut Child, stderr: &mut impl BufRead) -> Result<SocketAddr, Error> {
    let mut line = String::new();
    let mut said = String::new();
    loop {
        line.clear();
        if stderr.read_line(&mut line).unwrap_or(0) == 0 {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Agent(format!(
                "hapgent stopped before listening: {}",
                said.trim()
            )));
        }
        said.push_str(&line);
        if let Some(rest) = line.split("listening on ").nth(1) {
            let text = rest.split([',', ';']).next().unwrap_or("");
            let addr = text.trim().parse();
            if addr.is_err() {
                let _ = child.kill();
                let _ = child.wait();
            }
            return addr.map_err(|_| Error::Agent(format!("cannot read the address in {line:?}")));
        }
    }
}

/// `hapgent ctl probers --json` run `CTL_RUNS` times, its output thrown
/// away: the seconds each took.
fn time_ctl(o: &Options, socket: &Path) -> Result<Vec<f64>, Error> {
    let mut ctl_times = Vec::new();
    for _ in 0..CTL_RUNS {
        let t = Instant::now();
        let status = Command::new(&o.binary)
            .args(["ctl", "--control-socket"])
            .arg(socket)
            .args(["probers", "--json"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(Error::io("cannot run hapgent ctl"))?;
        ctl_times.push(t.elapsed().as_secs_f64());
        if !status.success() {
            eprintln!("hapgent ctl probers failed: {status}");
        }
    }
    Ok(ctl_times)
}

/// The VmRSS line's value of process `pid` (e.g. `5120 kB`), or "".
fn vm_rss(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(|l| l.trim_start_matches("VmRSS:").trim().to_string())
        })
        .unwrap_or_default()
}

/// What the mode measured, for its report.
struct Figures {
    threads: u32,
    /// New sources per second while filling the table.
    fill: f64,
    /// New sources sent with the table full, and per second.
    more: u32,
    evicting: f64,
    ctl_times: Vec<f64>,
    rss: String,
}

impl Figures {
    fn print(&self, n: u32, latencies: Vec<Vec<u64>>) {
        let Figures {
            threads,
            fill,
            more,
            evicting,
            ..
        } = *self;
        println!("prober table: max_probers = {n}, {threads} source threads");
        println!("new sources/s, filling the table:        {fill:>9.0}");
        println!("new sources/s, table full ({more} evicting): {evicting:>9.0}");
        println!(
            "ctl probers --json: {} s each",
            self.ctl_times
                .iter()
                .map(|t| format!("{t:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!("hapgent RSS at the end: {}", self.rss);
        println!("steady probe latency (127.0.0.1, back to back), by phase:");
        for (name, l) in PHASES.iter().zip(latencies) {
            println!("  {}", summary(name, l));
        }
    }
}

/// Runs the mode; true if every phase ran.
pub fn run(o: &Options) -> Result<bool, Error> {
    let n = o.prober_table;
    let dir = crate::agent::scratch_dir()?;
    let socket = dir.0.join("control.sock");
    let (mut child, addr) = start_hapgent(o, &dir.0, &socket)?;
    let rec = Arc::new(Recorder::new());
    let steady = steady_prober(&rec, addr);
    let threads = o.threads.max(1) as u32;
    std::thread::sleep(Duration::from_secs(2));
    rec.enter(1);
    let fill = sources(addr, 0, n, threads);
    rec.enter(2);
    let more = n.min(EVICTING);
    let evicting = sources(addr, n, n + more, threads);
    rec.enter(3);
    // hapgent and the steady prober stop even when ctl cannot be run.
    let ctl_times = time_ctl(o, &socket);
    rec.stop.store(true, Ordering::Relaxed);
    let _ = steady.join();
    let rss = vm_rss(child.id());
    let _ = child.kill();
    let _ = child.wait();
    let ctl_times = ctl_times?;
    let figures = Figures {
        threads,
        fill,
        more,
        evicting,
        ctl_times,
        rss,
    };
    let latencies = std::mem::take(&mut *rec.latencies.lock().expect("not poisoned"));
    figures.print(n, latencies);
    Ok(true)
}
