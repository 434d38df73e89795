//! `--wait-seen N`: how long `hapgent ctl drain|ready --wait-seen` takes
//! against a real HAProxy, and when HAProxy shows the change.
//!
//! A mode of the benchmark rather than a script: it reuses the agent's
//! start-and-kill-by-PID machinery and the `--binary` option, times with a
//! monotonic clock in-process, and needs nothing but `haproxy` installed.
//!
//! One foreground HAProxy (loopback only) checks one server with hapgent as
//! its agent every `--agent-inter` ms; hapgent has a control socket. Then,
//! N times, alternately `drain` and `ready`: a thread polls HAProxy's stats
//! socket (`show servers state be`) every 0.2 ms or so from before the
//! command starts, while the command runs from spawn to exit. Between
//! commands the benchmark waits a varying fraction of the interval so that
//! the commands start at spread-out points of HAProxy's probe cycle. The old
//! recipe, "send the signal, sleep two agent intervals", takes
//! 2 × agent-inter every time.

use crate::agent::{Agent, Role, hapgent_command, scratch_dir, write_state};
use crate::cli::Options;
use crate::error::Error;
use crate::haproxy::Haproxy;
use crate::report::to_json;
use crate::stats::median;
use serde::Serialize;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc::Sender;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Starts HAProxy with one server that has hapgent as its agent.
fn start_haproxy(
    o: &Options,
    dir: &Path,
    agent_port: u16,
    server_port: u16,
) -> Result<Haproxy, Error> {
    let socket = hapgent_testkit::haproxy::admin_socket(dir);
    let config = format!(
        "global
    stats socket {socket} mode 600 level admin
defaults
    mode tcp
    timeout connect 1s
    timeout client 5s
    timeout server 5s
    timeout check 1s
backend be
    server s1 127.0.0.1:{server_port} weight 100 check inter 500ms agent-check agent-addr 127.0.0.1 agent-port {agent_port} agent-inter {inter}ms
",
        socket = socket.display(),
        inter = o.agent_inter_ms,
    );
    Haproxy::start(&o.haproxy, dir, &config)
}

/// srv_op_state and srv_admin_state of server s1 of backend `be`, from
/// `show servers state be` on the stats socket at `socket`.
fn server_state(socket: &Path) -> Option<(String, String)> {
    let mut s = UnixStream::connect(socket).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"show servers state be\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    parse_server_state(&out)
}

/// The (srv_op_state, srv_admin_state) of s1 in a `show servers state`
/// answer: a version line, a `# name name ...` header, then one line per
/// server.
fn parse_server_state(answer: &str) -> Option<(String, String)> {
    let mut lines = answer.lines().filter(|l| !l.trim().is_empty()).skip(1);
    let header: Vec<&str> = lines.next()?.trim_start_matches("# ").split(' ').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (name, op, admin) = (
        col("srv_name")?,
        col("srv_op_state")?,
        col("srv_admin_state")?,
    );
    lines.find_map(|line| {
        let v: Vec<&str> = line.split(' ').collect();
        (v.get(name) == Some(&"s1"))
            .then(|| Some((v.get(op)?.to_string(), v.get(admin)?.to_string())))?
    })
}

/// One timed command (an element of the JSON's `runs`).
#[derive(Serialize)]
struct Sample {
    action: &'static str,
    /// Spawn to exit of `hapgent ctl ACTION --wait-seen`.
    ctl_ms: f64,
    /// From the spawn until HAProxy's stats socket first showed the change.
    #[serde(rename = "haproxy_shows_ms")]
    haproxy_ms: f64,
}

/// Median, nearest-rank p90, min and max of the samples' times (ms).
#[derive(Serialize, Debug, PartialEq)]
pub(crate) struct Summary {
    pub median: f64,
    pub p90: f64,
    pub min: f64,
    pub max: f64,
}

/// The report of `--wait-seen`: printed as JSON with `--json`, else as a
/// table (`table`).
#[derive(Serialize)]
struct Report<'a> {
    agent_inter_ms: u64,
    commands: usize,
    ctl_ms: Summary,
    haproxy_shows_ms: Summary,
    /// Negative when HAProxy showed it before ctl had exited.
    haproxy_lag_after_ctl_ms: Summary,
    /// The old recipe: signal, then sleep two agent intervals.
    old_recipe_ms: f64,
    loadavg_before: f64,
    loadavg_after: f64,
    runs: &'a [Sample],
}

/// Runs the `--wait-seen` measurement and prints its report; always
/// Ok(true) when it completes (a command that fails ends it with an error).
pub fn run(o: &Options) -> Result<bool, Error> {
    if !o.binary.exists() {
        return Err(Error::Setup(format!(
            "{} does not exist: build it or pass --binary",
            o.binary.display()
        )));
    }
    let loadavg_before = crate::proc::loadavg();
    let dir = scratch_dir()?;
    let watched = Watched::start(o, &dir.0)?;
    let mut samples = Vec::new();
    for i in 0..o.wait_seen {
        let sample = watched.time_command(i)?;
        if !o.json {
            eprintln!(
                "hapgent-bench: {}/{} ctl {} --wait-seen: {:.1} ms; HAProxy showed it at {:.1} ms ({:+.1} ms after ctl returned)",
                i + 1,
                o.wait_seen,
                sample.action,
                sample.ctl_ms,
                sample.haproxy_ms,
                sample.haproxy_ms - sample.ctl_ms
            );
        }
        samples.push(sample);
    }
    watched.stop()?;
    let loadavg = (loadavg_before, crate::proc::loadavg());
    let report = Report::new(o.agent_inter_ms, &samples, loadavg);
    if o.json {
        println!("{}", to_json(&report));
    } else {
        print!("{}", report.table());
    }
    Ok(true)
}

/// hapgent with a control socket, and one HAProxy that checks a server
/// with hapgent as its agent: what the timed commands run against.
/// Dropped in this order: HAProxy first, then hapgent.
struct Watched<'a> {
    haproxy: Haproxy,
    agent: Agent,
    o: &'a Options,
    dir: &'a Path,
    control: PathBuf,
}

impl<'a> Watched<'a> {
    /// Starts hapgent and HAProxy in `dir`, and waits until HAProxy shows
    /// the server UP and ready and hapgent counts HAProxy as a prober.
    fn start(o: &'a Options, dir: &'a Path) -> Result<Watched<'a>, Error> {
        write_state(dir)?;
        let control = dir.join("control.sock");
        let measured = Role::Measured {
            control: Some(&control),
        };
        let (mut agent, _) = Agent::start(o, dir, measured)?;
        let (first, _) = agent.wait_ready(o)?;
        first.map_err(|e| Error::Agent(format!("hapgent's first reply: {e}")))?;
        let haproxy = start_haproxy(o, dir, agent.addr.port(), closing_server()?)?;
        haproxy.until("show the server UP and ready", |h| {
            server_state(&h.socket).is_some_and(|(op, admin)| op == "2" && admin == "0")
        })?;
        let watched = Watched {
            haproxy,
            agent,
            o,
            dir,
            control,
        };
        // A prober counts as a load balancer once it has probed twice.
        watched.haproxy.until("probe hapgent twice", |_| {
            watched
                .ctl(&["probers", "--json"])
                .is_ok_and(|out| probed_twice(&String::from_utf8_lossy(&out.stdout)))
        })?;
        Ok(watched)
    }

    /// Runs `hapgent ctl ARGS` on hapgent's control socket.
    fn ctl(&self, args: &[&str]) -> Result<std::process::Output, Error> {
        hapgent_command(self.o, self.dir, Some(&self.control))?
            .arg("ctl")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(Error::io("cannot run hapgent ctl"))
    }

    /// Times command `i` (`drain` or `ready`, by turns) from its spawn to
    /// its exit, and to HAProxy showing the change.
    fn time_command(&self, i: usize) -> Result<Sample, Error> {
        let (action, admin) = action(i);
        // Start at a different point of HAProxy's probe cycle each time
        // (a multiplicative hash of i over the interval).
        let offset = (i as u64 * 7919) % self.o.agent_inter_ms.max(1);
        std::thread::sleep(Duration::from_millis(offset));
        let (go, poller) = poll_admin_state(self.haproxy.socket.clone(), admin);
        let t0 = Instant::now();
        let _ = go.send(());
        let out = self.ctl(&[action, "--wait-seen", "--timeout", "10s"])?;
        let t1 = Instant::now();
        if !out.status.success() {
            return Err(Error::Agent(format!(
                "hapgent ctl {action} --wait-seen failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let seen = poller
            .join()
            .map_err(|_| Error::Haproxy("the HAProxy poller panicked".into()))?
            .ok_or_else(|| {
                Error::Haproxy(format!(
                    "HAProxy never showed srv_admin_state {admin} after {action}"
                ))
            })?;
        Ok(Sample {
            action,
            ctl_ms: (t1 - t0).as_secs_f64() * 1e3,
            haproxy_ms: (seen - t0).as_secs_f64() * 1e3,
        })
    }

    /// Stops HAProxy and hapgent; an error if hapgent died meanwhile.
    fn stop(mut self) -> Result<(), Error> {
        if !self.agent.alive() {
            return Err(Error::Agent("hapgent died during the measurement".into()));
        }
        Ok(())
    }
}

/// The server HAProxy's regular check connects to: accepted and closed,
/// on a thread, for ever. Returns its port.
fn closing_server() -> Result<u16, Error> {
    let server = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(Error::io("cannot bind a server port"))?;
    let port = server
        .local_addr()
        .map_err(Error::io("cannot bind a server port"))?
        .port();
    std::thread::spawn(move || {
        for conn in server.incoming() {
            drop(conn);
        }
    });
    Ok(port)
}

/// Command `i`'s action, and the srv_admin_state HAProxy shows after it:
/// `drain` (8, drain) and `ready` (0) by turns.
fn action(i: usize) -> (&'static str, &'static str) {
    if i.is_multiple_of(2) {
        ("drain", "8")
    } else {
        ("ready", "0")
    }
}

/// Whether a `hapgent ctl probers --json` answer has a prober with at
/// least two probes.
fn probed_twice(answer: &str) -> bool {
    answer
        .split("\"probes\":")
        .skip(1)
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u64>().ok()
        })
        .any(|n| n >= 2)
}

/// A thread that, once told to go, polls HAProxy's stats socket until s1's
/// srv_admin_state is `admin`: when it first was, or None after 10 s.
fn poll_admin_state(
    socket: PathBuf,
    admin: &'static str,
) -> (Sender<()>, JoinHandle<Option<Instant>>) {
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let poller = std::thread::spawn(move || {
        let _ = go_rx.recv();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if server_state(&socket).is_some_and(|(_, a)| a == admin) {
                return Some(Instant::now());
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        None
    });
    (go_tx, poller)
}

impl<'a> Report<'a> {
    fn new(agent_inter_ms: u64, samples: &'a [Sample], loadavg: (f64, f64)) -> Report<'a> {
        Report {
            agent_inter_ms,
            commands: samples.len(),
            ctl_ms: summary_of(samples, |s| s.ctl_ms),
            haproxy_shows_ms: summary_of(samples, |s| s.haproxy_ms),
            haproxy_lag_after_ctl_ms: summary_of(samples, |s| s.haproxy_ms - s.ctl_ms),
            old_recipe_ms: 2.0 * agent_inter_ms as f64,
            loadavg_before: loadavg.0,
            loadavg_after: loadavg.1,
            runs: samples,
        }
    }

    /// The report as text: a Markdown table, and the target's verdict.
    fn table(&self) -> String {
        let inter = self.agent_inter_ms as f64;
        let (old, target) = (self.old_recipe_ms, inter + 50.0);
        let mut out = format!(
            "{} commands, agent-inter {} ms; load average {:.2} before, {:.2} after\n\n",
            self.commands, self.agent_inter_ms, self.loadavg_before, self.loadavg_after
        );
        out.push_str("| `hapgent ctl drain/ready --wait-seen` | median | p90 | min | max |\n");
        out.push_str("|---|---:|---:|---:|---:|\n");
        // One decimal, and no "-0.0" for a lag that rounds to zero.
        let ms = |v: f64| format!("{:.1}", if v.abs() < 0.05 { 0.0 } else { v });
        for (label, s) in [
            ("command start to return (ms)", &self.ctl_ms),
            (
                "command start to HAProxy showing the change (ms)",
                &self.haproxy_shows_ms,
            ),
            (
                "HAProxy showing it, after ctl returned (ms)",
                &self.haproxy_lag_after_ctl_ms,
            ),
        ] {
            let (median, p90, min, max) = (ms(s.median), ms(s.p90), ms(s.min), ms(s.max));
            out.push_str(&format!("| {label} | {median} | {p90} | {min} | {max} |\n"));
        }
        out.push_str(&format!(
            "| old recipe: signal, then sleep two agent intervals (ms) | {old:.0} | {old:.0} | {old:.0} | {old:.0} |\n"
        ));
        let median = self.ctl_ms.median;
        let verdict = if median <= target { "met" } else { "MISSED" };
        out.push_str(&format!(
            "\nmedian {median:.1} ms against a target of {target:.0} ms (1 agent interval + 50 ms): {verdict}\n"
        ));
        out
    }
}

/// The summary of one figure `f` of the samples (not empty).
pub(crate) fn summary_of<S>(samples: &[S], f: impl Fn(&S) -> f64) -> Summary {
    summary(&samples.iter().map(f).collect::<Vec<_>>())
}

/// The summary of `values` (not empty; values may be negative).
pub(crate) fn summary(values: &[f64]) -> Summary {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    Summary {
        median: median(&mut sorted.clone()),
        p90: sorted[((0.9 * n as f64).ceil() as usize).clamp(1, n) - 1],
        min: sorted[0],
        max: sorted[n - 1],
    }
}

#[cfg(test)]
mod tests {
    use super::{Report, Sample, Summary, action, parse_server_state, probed_twice, summary};

    #[test]
    fn table() {
        let samples = [
            Sample {
                action: "drain",
                ctl_ms: 100.0,
                haproxy_ms: 99.98,
            },
            Sample {
                action: "ready",
                ctl_ms: 300.0,
                haproxy_ms: 300.0,
            },
        ];
        assert_eq!(
            Report::new(200, &samples, (0.5, 1.25)).table(),
            "2 commands, agent-inter 200 ms; load average 0.50 before, 1.25 after\n\n\
             | `hapgent ctl drain/ready --wait-seen` | median | p90 | min | max |\n\
             |---|---:|---:|---:|---:|\n\
             | command start to return (ms) | 200.0 | 300.0 | 100.0 | 300.0 |\n\
             | command start to HAProxy showing the change (ms) | 200.0 | 300.0 | 100.0 | 300.0 |\n\
             | HAProxy showing it, after ctl returned (ms) | 0.0 | 0.0 | 0.0 | 0.0 |\n\
             | old recipe: signal, then sleep two agent intervals (ms) | 400 | 400 | 400 | 400 |\n\
             \nmedian 200.0 ms against a target of 250 ms (1 agent interval + 50 ms): met\n"
        );
    }

    #[test]
    fn drain_and_ready_by_turns() {
        let actions: Vec<_> = (0..4).map(action).collect();
        assert_eq!(
            actions,
            [
                ("drain", "8"),
                ("ready", "0"),
                ("drain", "8"),
                ("ready", "0")
            ]
        );
    }

    #[test]
    fn probed_twice_by_some_prober() {
        for (answer, want) in [
            (r#"[{"address":"127.0.0.1","probes":1}]"#, false),
            (
                r#"[{"address":"a","probes":1},{"address":"b","probes":12}]"#,
                true,
            ),
            (r#"[{"address":"127.0.0.1","probes":2}]"#, true),
            ("[]", false),
            ("", false),
        ] {
            assert_eq!(probed_twice(answer), want, "{answer}");
        }
    }

    #[test]
    fn summaries() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        let s = |median, p90, min, max| Summary {
            median,
            p90,
            min,
            max,
        };
        assert_eq!(summary(&v), s(10.5, 18.0, 1.0, 20.0));
        assert_eq!(summary(&[-0.2, 0.5, 0.1]), s(0.1, 0.5, -0.2, 0.5));
    }

    #[test]
    fn servers_state() {
        let answer = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight\n\
                      3 be 1 s1 127.0.0.1 2 8 100\n\n";
        assert_eq!(parse_server_state(answer), Some(("2".into(), "8".into())));
        assert_eq!(parse_server_state("1\n# be_id srv_name\n"), None);
    }
}
