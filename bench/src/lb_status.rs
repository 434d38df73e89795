//! `--lb-status N`: what `hapgent-lb status --json` costs on a large HAProxy.
//!
//! Generates a configuration with `--lb-servers` servers spread over
//! `--lb-backends` backends (no checks, so HAProxy itself stays idle),
//! starts one foreground HAProxy on it (loopback only: the servers are never
//! contacted), checks once that `status --json` lists every server, then
//! runs it N times with its output thrown away, timing each from just
//! before the spawn to its reaping, and reading its peak RSS and CPU time
//! from the kernel's accounting of the child (`wait4`'s `rusage`), through
//! a small spawner process (`CHILD_ARG`).

use crate::agent::scratch_dir;
use crate::cli::Options;
use crate::error::Error;
use crate::haproxy::Haproxy;
use crate::report::to_json;
use crate::wait_seen::{Summary, summary_of};
use serde::Serialize;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// The HAProxy configuration: `backends` backends `be0`, `be1`, … holding
/// `servers` servers between them (`s0`, `s1`, … in each; the first
/// backends get one more when it does not divide evenly), each at its own
/// loopback port, none checked.
pub fn config(socket: &Path, backends: usize, servers: usize) -> String {
    let mut out = format!(
        "global\n    stats socket {} mode 600 level admin\n\
         defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n",
        socket.display()
    );
    let mut port = 10_000;
    for b in 0..backends {
        out.push_str(&format!("backend be{b}\n"));
        let here = servers / backends + usize::from(b < servers % backends);
        for s in 0..here {
            out.push_str(&format!("    server s{s} 127.0.0.1:{port} weight 100\n"));
            port = if port == 65_535 { 10_000 } else { port + 1 };
        }
    }
    out
}

/// One run of `hapgent-lb status --json`.
#[derive(Serialize)]
struct Sample {
    /// Spawn to reaping.
    wall_ms: f64,
    /// User and system CPU time of the child.
    cpu_ms: f64,
    /// The child's peak resident set (`ru_maxrss`).
    peak_rss_kib: u64,
    /// The spawner's resident set when it spawned the child: `ru_maxrss`
    /// is never below it.
    spawner_rss_kib: u64,
}

/// The report of `--lb-status`: printed as JSON with `--json`, else as a
/// table (`table`).
#[derive(Serialize)]
struct Report<'a> {
    backends: usize,
    servers: usize,
    show_stat_bytes: usize,
    show_servers_state_bytes: usize,
    wall_ms: Summary,
    cpu_ms: Summary,
    peak_rss_kib: Summary,
    spawner_rss_kib: Summary,
    loadavg_before: f64,
    loadavg_after: f64,
    runs: &'a [Sample],
}

/// The size of HAProxy's answer to `command`.
fn answer_bytes(socket: &Path, command: &str) -> Result<usize, Error> {
    let doing = || format!("cannot ask HAProxy for {command:?}");
    let mut s = UnixStream::connect(socket).map_err(Error::io(doing()))?;
    s.write_all(format!("{command}\n").as_bytes())
        .map_err(Error::io(doing()))?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).map_err(Error::io(doing()))?;
    Ok(answer.len())
}

/// The hidden first argument that makes this program the spawner of one
/// measured run: `CHILD_ARG REPORT PROGRAM ARGS...`.
///
/// The kernel's `ru_maxrss` of a child counts the pages its parent had
/// when it forked (exec records the old address space's peak), so a child
/// spawned by the benchmark itself would report the benchmark's own
/// resident set. A fresh, small copy of this program spawns it instead and
/// writes what `wait4` says, with its own resident set (the floor under any
/// figure), to REPORT.
pub const CHILD_ARG: &str = "--lb-status-child";

/// The spawner: runs PROGRAM ARGS with this process's stdio, reaps it with
/// `wait4`, writes `wall_ns user_us system_us maxrss_kib spawner_rss_kib`
/// to REPORT and exits with the child's status.
pub fn spawn_measured(mut args: impl Iterator<Item = String>) -> std::process::ExitCode {
    use std::process::ExitCode;
    let (Some(report), Some(program)) = (args.next(), args.next()) else {
        eprintln!("{CHILD_ARG} REPORT PROGRAM ARGS...");
        return ExitCode::from(64);
    };
    let own_rss = crate::proc::memory(std::process::id()).rss_kib;
    let t0 = Instant::now();
    let child = match Command::new(&program).args(args).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot run {program}: {e}");
            return ExitCode::from(1);
        }
    };
    let mut wait_status = 0;
    // SAFETY: rusage is plain data, filled in by wait4.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: reaps our own child; std's `Child` is not waited on after.
    let reaped = unsafe { libc::wait4(child.id() as libc::pid_t, &mut wait_status, 0, &mut usage) };
    let wall = t0.elapsed();
    if reaped < 0 {
        eprintln!("wait4: {}", std::io::Error::last_os_error());
        return ExitCode::from(1);
    }
    let us = |t: libc::timeval| (t.tv_sec as f64 * 1e6 + t.tv_usec as f64) as u64;
    let line = format!(
        "{} {} {} {} {own_rss}\n",
        wall.as_nanos(),
        us(usage.ru_utime),
        us(usage.ru_stime),
        usage.ru_maxrss
    );
    if let Err(e) = std::fs::write(&report, line) {
        eprintln!("cannot write {report}: {e}");
        return ExitCode::from(1);
    }
    if libc::WIFEXITED(wait_status) {
        ExitCode::from(libc::WEXITSTATUS(wait_status) as u8)
    } else {
        ExitCode::from(1)
    }
}

/// Runs `hapgent-lb status --json` once through the spawner, its output to
/// `stdout`; Err with its stderr unless it exits 0.
fn status(o: &Options, dir: &Path, socket: &Path, stdout: Stdio) -> Result<Sample, Error> {
    let stderr = dir.join("lb.err");
    let report = dir.join("rusage");
    let me = std::env::current_exe().map_err(Error::io("cannot find this program"))?;
    let exit = Command::new(me)
        .env_clear()
        .arg(CHILD_ARG)
        .arg(&report)
        .arg(&o.lb_binary)
        .arg("--config")
        .arg(dir.join("lb.toml"))
        .args(["status", "--json", "--haproxy-socket"])
        .arg(socket)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(std::fs::File::create(&stderr).map_err(Error::io(format!("{stderr:?}")))?)
        .status()
        .map_err(Error::io("cannot run the spawner (this program)"))?;
    if !exit.success() {
        return Err(Error::Agent(format!(
            "hapgent-lb status --json failed ({exit}): {}",
            std::fs::read_to_string(&stderr).unwrap_or_default()
        )));
    }
    let text = std::fs::read_to_string(&report).map_err(Error::io(format!("{report:?}")))?;
    let v: Vec<f64> = text
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let [wall_ns, user_us, system_us, maxrss, spawner] = v[..] else {
        return Err(Error::Agent(format!("the spawner wrote {text:?}")));
    };
    Ok(Sample {
        wall_ms: wall_ns / 1e6,
        cpu_ms: (user_us + system_us) / 1e3,
        peak_rss_kib: maxrss as u64,
        spawner_rss_kib: spawner as u64,
    })
}

/// The numbers of backends and servers in a `status --json` output.
fn counted(json: &str) -> Option<(usize, usize)> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let backends = v["backends"].as_array()?;
    let servers = backends
        .iter()
        .map(|b| b["servers"].as_array().map_or(0, Vec::len))
        .sum();
    Some((backends.len(), servers))
}

/// Runs the `--lb-status` measurement and prints its report; Ok(true) when
/// it completes.
pub fn run(o: &Options) -> Result<bool, Error> {
    if !o.lb_binary.exists() {
        return Err(Error::Setup(format!(
            "{} does not exist: build it (scripts/bench does) or pass --lb-binary",
            o.lb_binary.display()
        )));
    }
    let loadavg_before = crate::proc::loadavg();
    let dir = scratch_dir()?;
    let lb_toml = dir.0.join("lb.toml");
    std::fs::write(&lb_toml, "").map_err(Error::io(format!("cannot write {lb_toml:?}")))?;
    let socket = hapgent_testkit::haproxy::admin_socket(&dir.0);
    let text = config(&socket, o.lb_backends, o.lb_servers);
    let haproxy = Haproxy::start(&o.haproxy, &dir.0, &text)?;
    let show_stat_bytes = answer_bytes(&haproxy.socket, "show stat")?;
    let show_servers_state_bytes = answer_bytes(&haproxy.socket, "show servers state")?;
    check_lists_all(o, &dir.0, &haproxy.socket)?;
    let samples = time_runs(o, &dir.0, &haproxy.socket)?;
    drop(haproxy);
    let report = Report {
        backends: o.lb_backends,
        servers: o.lb_servers,
        show_stat_bytes,
        show_servers_state_bytes,
        wall_ms: summary_of(&samples, |s| s.wall_ms),
        cpu_ms: summary_of(&samples, |s| s.cpu_ms),
        peak_rss_kib: summary_of(&samples, |s| s.peak_rss_kib as f64),
        spawner_rss_kib: summary_of(&samples, |s| s.spawner_rss_kib as f64),
        loadavg_before,
        loadavg_after: crate::proc::loadavg(),
        runs: &samples,
    };
    if o.json {
        println!("{}", to_json(&report));
    } else {
        print!("{}", report.table());
    }
    Ok(true)
}

/// Runs `status --json` once with its output kept: it must list every
/// backend and server.
fn check_lists_all(o: &Options, dir: &Path, socket: &Path) -> Result<(), Error> {
    let out = dir.join("status.json");
    let file = std::fs::File::create(&out).map_err(Error::io(format!("{out:?}")))?;
    status(o, dir, socket, file.into())?;
    let json = std::fs::read_to_string(&out).map_err(Error::io(format!("{out:?}")))?;
    let want = (o.lb_backends, o.lb_servers);
    if counted(&json) != Some(want) {
        return Err(Error::Agent(format!(
            "hapgent-lb status --json listed {:?} (backends, servers), expected {want:?}",
            counted(&json)
        )));
    }
    Ok(())
}

/// The `--lb-status` runs, their output thrown away, each said on stderr
/// as it ends (unless `--json`).
fn time_runs(o: &Options, dir: &Path, socket: &Path) -> Result<Vec<Sample>, Error> {
    let mut samples = Vec::new();
    for i in 0..o.lb_status {
        let sample = status(o, dir, socket, Stdio::null())?;
        if !o.json {
            eprintln!(
                "hapgent-bench: {}/{} status --json: {:.1} ms, {:.1} ms CPU, peak RSS {} KiB",
                i + 1,
                o.lb_status,
                sample.wall_ms,
                sample.cpu_ms,
                sample.peak_rss_kib
            );
        }
        samples.push(sample);
    }
    Ok(samples)
}

impl Report<'_> {
    /// The report as text: a Markdown table.
    fn table(&self) -> String {
        let mut out = format!(
            "`hapgent-lb status --json`, {} servers in {} backends ({} bytes of `show stat`, \
             {} of `show servers state`), {} runs; load average {:.2} before, {:.2} after\n\n",
            self.servers,
            self.backends,
            self.show_stat_bytes,
            self.show_servers_state_bytes,
            self.runs.len(),
            self.loadavg_before,
            self.loadavg_after
        );
        out.push_str("| `hapgent-lb status --json` | median | p90 | min | max |\n");
        out.push_str("|---|---:|---:|---:|---:|\n");
        for (label, s, digits) in [
            ("wall time, spawn to exit (ms)", &self.wall_ms, 1),
            ("CPU time, user + system (ms)", &self.cpu_ms, 1),
            ("peak RSS (KiB)", &self.peak_rss_kib, 0),
            (
                "RSS of the spawner, included in the peak's floor (KiB)",
                &self.spawner_rss_kib,
                0,
            ),
        ] {
            out.push_str(&format!(
                "| {label} | {:.digits$} | {:.digits$} | {:.digits$} | {:.digits$} |\n",
                s.median, s.p90, s.min, s.max
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::{Report, Sample, config};
    use crate::wait_seen::summary_of;
    use std::path::Path;

    #[test]
    fn table() {
        let samples = [Sample {
            wall_ms: 10.04,
            cpu_ms: 5.0,
            peak_rss_kib: 6000,
            spawner_rss_kib: 3000,
        }];
        let of = |f: fn(&Sample) -> f64| summary_of(&samples, f);
        let report = Report {
            backends: 2,
            servers: 8,
            show_stat_bytes: 1000,
            show_servers_state_bytes: 500,
            wall_ms: of(|s| s.wall_ms),
            cpu_ms: of(|s| s.cpu_ms),
            peak_rss_kib: of(|s| s.peak_rss_kib as f64),
            spawner_rss_kib: of(|s| s.spawner_rss_kib as f64),
            loadavg_before: 0.5,
            loadavg_after: 1.0,
            runs: &samples,
        };
        assert_eq!(
            report.table(),
            "`hapgent-lb status --json`, 8 servers in 2 backends (1000 bytes of `show stat`, \
             500 of `show servers state`), 1 runs; load average 0.50 before, 1.00 after\n\n\
             | `hapgent-lb status --json` | median | p90 | min | max |\n\
             |---|---:|---:|---:|---:|\n\
             | wall time, spawn to exit (ms) | 10.0 | 10.0 | 10.0 | 10.0 |\n\
             | CPU time, user + system (ms) | 5.0 | 5.0 | 5.0 | 5.0 |\n\
             | peak RSS (KiB) | 6000 | 6000 | 6000 | 6000 |\n\
             | RSS of the spawner, included in the peak's floor (KiB) | 3000 | 3000 | 3000 | 3000 |\n"
        );
    }

    #[test]
    fn generated_config() {
        let text = config(Path::new("/tmp/s.sock"), 3, 8);
        let per_backend: Vec<usize> = text
            .split("backend be")
            .skip(1)
            .map(|b| b.matches("    server s").count())
            .collect();
        assert_eq!(per_backend, [3, 3, 2]);
        assert!(text.contains("stats socket /tmp/s.sock mode 600 level admin"));
        assert!(text.contains("backend be2\n    server s0 127.0.0.1:10006 weight 100\n"));
    }
}
