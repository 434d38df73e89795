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
use std::path::Path;
use std::process::Stdio;
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

/// The `--json` report of `--wait-seen`.
#[derive(Serialize)]
struct Json<'a> {
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
    let inter = o.agent_inter_ms as f64;
    let loadavg_before = crate::proc::loadavg();
    let dir = scratch_dir()?;
    write_state(&dir.0)?;
    let control = dir.0.join("control.sock");
    let (mut agent, _) = Agent::start(
        o,
        &dir.0,
        Role::Measured {
            control: Some(&control),
        },
    )?;
    let (first, _) = agent.wait_ready(o)?;
    first.map_err(|e| Error::Agent(format!("hapgent's first reply: {e}")))?;
    // The server HAProxy's regular check connects to: accepted and closed.
    let server = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(Error::io("cannot bind a server port"))?;
    let server_port = server
        .local_addr()
        .map_err(Error::io("cannot bind a server port"))?
        .port();
    std::thread::spawn(move || {
        for conn in server.incoming() {
            drop(conn);
        }
    });
    let haproxy = start_haproxy(o, &dir.0, agent.addr.port(), server_port)?;
    haproxy.until("show the server UP and ready", |h| {
        server_state(&h.socket).is_some_and(|(op, admin)| op == "2" && admin == "0")
    })?;
    let ctl = |args: &[&str]| -> Result<std::process::Output, Error> {
        hapgent_command(o, &dir.0, Some(&control))?
            .arg("ctl")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(Error::io("cannot run hapgent ctl"))
    };
    // A prober counts as a load balancer once it has probed twice.
    haproxy.until("probe hapgent twice", |_| {
        ctl(&["probers", "--json"]).is_ok_and(|out| {
            String::from_utf8_lossy(&out.stdout)
                .split("\"probes\":")
                .skip(1)
                .filter_map(|rest| {
                    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    digits.parse::<u64>().ok()
                })
                .any(|n| n >= 2)
        })
    })?;

    let say = |s: String| {
        if !o.json {
            eprintln!("{s}");
        }
    };
    let mut samples = Vec::new();
    for i in 0..o.wait_seen {
        let (action, admin) = if i % 2 == 0 {
            ("drain", "8")
        } else {
            ("ready", "0")
        };
        // Start at a different point of HAProxy's probe cycle each time
        // (a multiplicative hash of i over the interval).
        let offset = (i as u64 * 7919) % o.agent_inter_ms.max(1);
        std::thread::sleep(Duration::from_millis(offset));
        let socket = haproxy.socket.clone();
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
        let t0 = Instant::now();
        let _ = go_tx.send(());
        let out = ctl(&[action, "--wait-seen", "--timeout", "10s"])?;
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
        let sample = Sample {
            action,
            ctl_ms: (t1 - t0).as_secs_f64() * 1e3,
            haproxy_ms: (seen - t0).as_secs_f64() * 1e3,
        };
        say(format!(
            "hapgent-bench: {}/{} ctl {action} --wait-seen: {:.1} ms; HAProxy showed it at {:.1} ms ({:+.1} ms after ctl returned)",
            i + 1,
            o.wait_seen,
            sample.ctl_ms,
            sample.haproxy_ms,
            sample.haproxy_ms - sample.ctl_ms
        ));
        samples.push(sample);
    }
    if !agent.alive() {
        return Err(Error::Agent("hapgent died during the measurement".into()));
    }
    drop(haproxy);
    drop(agent);
    let loadavg_after = crate::proc::loadavg();

    let ctl = summary(&samples.iter().map(|s| s.ctl_ms).collect::<Vec<_>>());
    let hap = summary(&samples.iter().map(|s| s.haproxy_ms).collect::<Vec<_>>());
    // Negative when HAProxy showed it before ctl had exited.
    let lag = summary(
        &samples
            .iter()
            .map(|s| s.haproxy_ms - s.ctl_ms)
            .collect::<Vec<_>>(),
    );
    let old = 2.0 * inter;
    if o.json {
        println!(
            "{}",
            to_json(&Json {
                agent_inter_ms: o.agent_inter_ms,
                commands: samples.len(),
                ctl_ms: ctl,
                haproxy_shows_ms: hap,
                haproxy_lag_after_ctl_ms: lag,
                old_recipe_ms: old,
                loadavg_before,
                loadavg_after,
                runs: &samples,
            })
        );
    } else {
        let target = inter + 50.0;
        println!(
            "{} commands, agent-inter {} ms; load average {loadavg_before:.2} before, {loadavg_after:.2} after\n",
            samples.len(),
            o.agent_inter_ms
        );
        println!("| `hapgent ctl drain/ready --wait-seen` | median | p90 | min | max |");
        println!("|---|---:|---:|---:|---:|");
        // One decimal, and no "-0.0" for a lag that rounds to zero.
        let ms = |v: f64| format!("{:.1}", if v.abs() < 0.05 { 0.0 } else { v });
        let row = |label: &str, s: &Summary| {
            println!(
                "| {label} | {} | {} | {} | {} |",
                ms(s.median),
                ms(s.p90),
                ms(s.min),
                ms(s.max)
            )
        };
        row("command start to return (ms)", &ctl);
        row("command start to HAProxy showing the change (ms)", &hap);
        row("HAProxy showing it, after ctl returned (ms)", &lag);
        println!(
            "| old recipe: signal, then sleep two agent intervals (ms) | {old:.0} | {old:.0} | {old:.0} | {old:.0} |"
        );
        println!(
            "\nmedian {:.1} ms against a target of {target:.0} ms (1 agent interval + 50 ms): {}",
            ctl.median,
            if ctl.median <= target {
                "met"
            } else {
                "MISSED"
            }
        );
    }
    Ok(true)
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
    use super::{Summary, parse_server_state, summary};

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
