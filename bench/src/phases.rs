//! The load benchmark, phase by phase: start to first reply (`startup`),
//! then per concurrency and run a fresh agent through the load, the
//! footprint at rest, after the load and with idle connections held, and
//! fresh probes meanwhile (`run_once`), then the same load on the floor
//! reference (`floor_run`). Each phase adds named figures to the run's
//! `Metrics` and its probes' outcomes to the `Tally`; `report` turns them
//! into text, JSON or a table. `--wait-seen` is the other mode
//! (`wait_seen`).

use crate::agent::{Agent, Role, hapgent_command, scratch_dir, write_agent_files};
use crate::cli::Options;
use crate::error::Error;
use crate::probe::{ErrorKind, connect, probe};
use crate::report::{Metrics, Report};
use crate::scrape::{Scrapes, probe_counts, scraper};
use crate::stats::percentile;
use crate::tally::Tally;
use crate::{load, proc};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// Runs everything and prints the report; Ok(false) if any probe failed.
pub fn run(o: &Options) -> Result<bool, Error> {
    let max_c = o.concurrency.iter().copied().max().unwrap_or(1);
    raise_nofile((o.idle_connections + max_c + 256) as u64)?;
    if o.command.is_empty() && !o.binary.exists() {
        return Err(Error::Setup(format!(
            "{} does not exist: build it (cargo build --release --target x86_64-unknown-linux-musl) or pass --binary",
            o.binary.display()
        )));
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

/// Spawn to first well-formed reply, `starts` times.
fn startup(o: &Options, tally: &mut Tally) -> Result<Vec<f64>, Error> {
    let mut times = Vec::new();
    for _ in 0..o.starts {
        let dir = scratch_dir()?;
        write_agent_files(o, &dir.0)?;
        let (mut agent, spawned) = Agent::start(o, &dir.0, Role::Measured { control: None })?;
        let (first, at) = agent.wait_ready(o)?;
        tally.record(first, o.expect.as_deref(), 0);
        times.push((at - spawned).as_secs_f64() * 1e3);
        drop(agent);
    }
    Ok(times)
}

/// One complete run at one concurrency, on a freshly started agent.
fn run_once(
    o: &Options,
    concurrency: usize,
    tally_all: &mut Tally,
    notes: &mut Vec<String>,
) -> Result<Metrics, Error> {
    let dir = scratch_dir()?;
    let metrics_addr = write_agent_files(o, &dir.0)?;
    // With distinct probers, a control socket to ask hapgent how many its
    // table holds; otherwise none, as nothing needs it.
    let control = dir.0.join("control.sock");
    let control = (o.probers > 0 && o.command.is_empty()).then_some(control.as_path());
    let (mut agent, _) = Agent::start(o, &dir.0, Role::Measured { control })?;
    let (first, _) = agent.wait_ready(o)?;
    tally_all.record(first, o.expect.as_deref(), 0);
    let mut m = Metrics::default();
    m.push("concurrency", concurrency as f64);
    m.push("probers", f64::from(o.probers));
    m.push("services", o.services as f64);
    at_rest(agent.pid(), &mut m);
    let run = Run { o, concurrency };
    let (mut tally, done) = run.under_load(&agent, metrics_addr, &mut m, notes);
    let after = proc::memory(agent.pid());
    m.push("rss_after_load_kib", after.rss_kib);
    m.push("hwm_after_load_kib", after.hwm_kib);
    tally.merge(run.holding_idle_connections(&agent, &mut m));
    // Last, as listing the table makes the agent allocate its answer.
    let tracked = match control {
        Some(socket) => probers_tracked(o, &dir.0, socket, notes),
        None => f64::NAN,
    };
    m.push("probers_tracked", tracked);
    run.count_death(&mut agent, "the agent", &mut tally, notes);
    drop(agent);
    tally.latencies_ns = Vec::new();
    tally_all.merge(tally);
    if o.check && done < o.checks {
        tally_all.errors.add(ErrorKind::Timeout, o.checks - done);
    }
    if o.floor {
        floor_run(o, concurrency, &mut m, tally_all, notes)?;
    }
    Ok(m)
}

/// The memory at rest, after one probe.
fn at_rest(pid: u32, m: &mut Metrics) {
    std::thread::sleep(Duration::from_millis(200));
    let idle = proc::memory(pid);
    m.push("rss_idle_kib", idle.rss_kib);
    m.push("hwm_idle_kib", idle.hwm_kib);
}

/// The CPU time (µs) between two readings per check done; NaN where a
/// reading is missing or no check was done.
fn per_check(before: Option<f64>, after: Option<f64>, done: u64) -> f64 {
    match (before, after) {
        (Some(a), Some(b)) if done > 0 => (b - a) / done as f64,
        _ => f64::NAN,
    }
}

/// CPU time per check between two readings of a process: by
/// /proc/PID/stat, by schedstat, and the kernel's part (stat's stime).
fn cpu_per_check(before: &proc::Cpu, after: &proc::Cpu, done: u64) -> [f64; 3] {
    [
        per_check(before.stat_us, after.stat_us, done),
        per_check(before.sched_us, after.sched_us, done),
        per_check(before.stime_us, after.stime_us, done),
    ]
}

/// The figures of a load: checks, errors, throughput and the latency
/// percentiles (µs) of the answered probes.
fn load_figures(m: &mut Metrics, tally: &mut Tally, done: u64, elapsed: Duration) {
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
}

/// The concurrency of one run, and the options it runs with.
#[derive(Clone, Copy)]
struct Run<'a> {
    o: &'a Options,
    concurrency: usize,
}

impl Run<'_> {
    /// The load on the agent, with GET /metrics scraped meanwhile when it
    /// has them: its figures, its CPU time and the load generator's per
    /// check, and hapgent's own count of the probes. Returns the load's
    /// tally and the checks done.
    fn under_load(
        self,
        agent: &Agent,
        metrics_addr: Option<SocketAddr>,
        m: &mut Metrics,
        notes: &mut Vec<String>,
    ) -> (Tally, u64) {
        let o = self.o;
        let pid = agent.pid();
        let stop = Arc::new(AtomicBool::new(false));
        let scraping =
            metrics_addr.map(|addr| scraper(addr, o.scrape_interval, o.timeout, Arc::clone(&stop)));
        let cpu0 = proc::cpu(pid);
        let own0 = proc::own_cpu_us();
        let (mut tally, elapsed) = load(o, agent.addr, self.concurrency, o.expect.as_deref());
        let own1 = proc::own_cpu_us();
        let cpu1 = proc::cpu(pid);
        stop.store(true, Ordering::Relaxed);
        let scrapes = scraping.map(|t| t.join().expect("the scraper panicked"));
        let done = self.checks_done(&tally, "", notes);
        load_figures(m, &mut tally, done, elapsed);
        let [stat, sched, kernel] = cpu_per_check(&cpu0, &cpu1, done);
        m.push("agent_cpu_us_per_check", stat);
        m.push("agent_cpu_us_per_check_schedstat", sched);
        m.push("agent_kernel_cpu_us_per_check", kernel);
        m.push(
            "loadgen_cpu_us_per_check",
            per_check(Some(own0), Some(own1), done),
        );
        if let (Some(addr), Some(s)) = (metrics_addr, scrapes) {
            self.scraped(addr, s, m, &mut tally, notes);
        }
        (tally, done)
    }

    /// The scrapes during the load, then one after it: hapgent's own count
    /// of the probes it answered (all, and for the payload's service).
    fn scraped(
        self,
        addr: SocketAddr,
        s: Scrapes,
        m: &mut Metrics,
        tally: &mut Tally,
        notes: &mut Vec<String>,
    ) {
        m.push("scrapes", s.done as f64);
        m.push("scrape_failures", s.failed as f64);
        m.push("scrape_max_ms", s.max_ms);
        tally.fail(ErrorKind::Io, s.failed, s.examples);
        let (total, named) = probe_counts(addr, self.o).unwrap_or_else(|e| {
            notes.push(format!(
                "concurrency {}: last scrape: {e}",
                self.concurrency
            ));
            tally.errors.add(ErrorKind::Io, 1);
            (f64::NAN, f64::NAN)
        });
        m.push("scraped_probes_total", total);
        m.push("scraped_probes_service", named);
    }

    /// The checks done of a load, and a note when `--duration` ended it
    /// before all of them (`who`: "" for the agent, "the floor " for it).
    fn checks_done(self, tally: &Tally, who: &str, notes: &mut Vec<String>) -> u64 {
        let done = tally.ok + tally.failed();
        if done < self.o.checks {
            notes.push(format!(
                "concurrency {}: {who}stopped by --duration after {done} of {} checks",
                self.concurrency, self.o.checks
            ));
        }
        done
    }

    /// Connections that never read and never close, held while fresh
    /// probes are timed: the memory they cost and how fast a new probe is
    /// answered meanwhile. Returns the tally of both.
    fn holding_idle_connections(self, agent: &Agent, m: &mut Metrics) -> Tally {
        let (o, pid) = (self.o, agent.pid());
        let mut held = Vec::with_capacity(o.idle_connections);
        let mut tally = Tally::default();
        for _ in 0..o.idle_connections {
            match connect(agent.addr, o.timeout) {
                Ok(s) => held.push(s),
                Err(e) => tally.record(Err(e), None, 0),
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
        let fresh_ns = &fresh.latencies_ns;
        m.push("fresh_probe_p50_ms", percentile(fresh_ns, 0.5) / 1e6);
        m.push(
            "fresh_probe_max_ms",
            fresh_ns.last().map_or(f64::NAN, |&x| x as f64 / 1e6),
        );
        tally.merge(fresh);
        tally
    }

    /// Counts an agent (or floor) that died during the run as an error,
    /// with its last words in the notes.
    fn count_death(self, agent: &mut Agent, who: &str, tally: &mut Tally, notes: &mut Vec<String>) {
        if !agent.alive() {
            notes.push(format!(
                "concurrency {}: {who} died during the run; its stderr:\n{}",
                self.concurrency,
                agent.stderr()
            ));
            tally.errors.add(ErrorKind::Connect, 1);
        }
    }
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
) -> Result<(), Error> {
    let run = Run { o, concurrency };
    let dir = scratch_dir()?;
    let (mut floor, _) = Agent::start(o, &dir.0, Role::Floor)?;
    let (first, _) = floor.wait_ready(o)?;
    tally_all.record(first, None, 0);
    std::thread::sleep(Duration::from_millis(200));
    let pid = floor.pid();
    let cpu0 = proc::cpu(pid);
    let (mut tally, elapsed) = load(o, floor.addr, concurrency, None);
    let cpu1 = proc::cpu(pid);
    let done = run.checks_done(&tally, "the floor ", notes);
    if o.check && done < o.checks {
        tally.errors.add(ErrorKind::Timeout, o.checks - done);
    }
    let [stat, sched, kernel] = cpu_per_check(&cpu0, &cpu1, done);
    m.push("floor_checks_per_s", done as f64 / elapsed.as_secs_f64());
    m.push("floor_cpu_us_per_check", stat);
    m.push("floor_cpu_us_per_check_schedstat", sched);
    m.push("floor_kernel_cpu_us_per_check", kernel);
    m.push("floor_ratio", floor_ratio(m, stat, sched));
    run.count_death(&mut floor, "the floor", &mut tally, notes);
    tally.latencies_ns = Vec::new();
    tally_all.merge(tally);
    Ok(())
}

/// The agent's CPU per check divided by the floor's: by schedstat when
/// the floor has it, else by /proc/PID/stat.
fn floor_ratio(agent: &Metrics, floor_stat: f64, floor_sched: f64) -> f64 {
    if floor_sched.is_nan() {
        agent.get("agent_cpu_us_per_check") / floor_stat
    } else {
        agent.get("agent_cpu_us_per_check_schedstat") / floor_sched
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

/// How many probers hapgent's table holds (`hapgent ctl probers --json`:
/// the entries' `address` fields counted); NaN, with a note, if it cannot
/// say. It includes 127.0.0.1, which the readiness and fresh probes come from.
fn probers_tracked(o: &Options, dir: &Path, socket: &Path, notes: &mut Vec<String>) -> f64 {
    let out = hapgent_command(o, dir, Some(socket)).and_then(|mut cmd| {
        cmd.args(["ctl", "probers", "--json"])
            .stdin(Stdio::null())
            .output()
            .map_err(Error::io("cannot run hapgent ctl"))
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
            notes.push(e.to_string());
            f64::NAN
        }
    }
}

/// Raises the soft open-file limit to what the idle connections need (the
/// agent inherits it, which matters for agents that keep them open).
fn raise_nofile(need: u64) -> Result<(), Error> {
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
        return Err(Error::Setup(format!(
            "{need} file descriptors needed but the hard limit is {}; raise it (ulimit -Hn) or lower --idle-connections",
            lim.rlim_max
        )));
    }
    lim.rlim_cur = need as libc::rlim_t;
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(Error::io("setrlimit")(std::io::Error::last_os_error()));
    }
    Ok(())
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
    use super::per_check;

    #[test]
    fn cpu_per_check() {
        for (before, after, done, want) in [
            (Some(100.0), Some(400.0), 3, Some(100.0)),
            (Some(100.0), Some(100.0), 5, Some(0.0)),
            (None, Some(400.0), 3, None),
            (Some(100.0), None, 3, None),
            (Some(100.0), Some(400.0), 0, None),
        ] {
            let got = per_check(before, after, done);
            assert_eq!(
                (!got.is_nan()).then_some(got),
                want,
                "{before:?} {after:?} {done}"
            );
        }
    }
}
