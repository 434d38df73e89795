//! `--lb-status N`: what `hapgent-lb status --json` costs on a large HAProxy.
//!
//! Generates a configuration with `--lb-servers` servers spread over
//! `--lb-backends` backends (no checks, so HAProxy itself stays idle),
//! starts one foreground HAProxy on it (loopback only: the servers are never
//! contacted), checks once that `status --json` lists every server, then
//! runs it N times with its output thrown away, timing each from just
//! before the spawn to its reaping, and reading its peak RSS and CPU time
//! from the kernel's accounting of the child (`wait4`'s `rusage`).

use crate::agent::TempDir;
use crate::cli::Options;
use crate::error::Error;
use crate::haproxy::Haproxy;
use crate::report::to_json;
use crate::wait_seen::{Summary, summary};
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
}

/// The `--json` report of `--lb-status`.
#[derive(Serialize)]
struct Json<'a> {
    backends: usize,
    servers: usize,
    show_stat_bytes: usize,
    show_servers_state_bytes: usize,
    wall_ms: Summary,
    cpu_ms: Summary,
    peak_rss_kib: Summary,
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

/// Runs `hapgent-lb status --json` once, its output to `stdout`; Err with
/// its stderr unless it exits 0.
fn status(o: &Options, dir: &Path, socket: &Path, stdout: Stdio) -> Result<Sample, Error> {
    let stderr = dir.join("lb.err");
    let t0 = Instant::now();
    let child = Command::new(&o.lb_binary)
        .env_clear()
        .arg("--config")
        .arg(dir.join("lb.toml"))
        .args(["status", "--json", "--haproxy-socket"])
        .arg(socket)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(std::fs::File::create(&stderr).map_err(Error::io(format!("{stderr:?}")))?)
        .spawn()
        .map_err(Error::io(format!("cannot run {}", o.lb_binary.display())))?;
    let mut wait_status = 0;
    // SAFETY: rusage is plain data, filled in by wait4.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: reaps our own child; std's `Child` is not waited on after.
    let reaped = unsafe { libc::wait4(child.id() as libc::pid_t, &mut wait_status, 0, &mut usage) };
    let wall = t0.elapsed();
    if reaped < 0 {
        return Err(Error::io("wait4 on hapgent-lb")(
            std::io::Error::last_os_error(),
        ));
    }
    if !(libc::WIFEXITED(wait_status) && libc::WEXITSTATUS(wait_status) == 0) {
        return Err(Error::Agent(format!(
            "hapgent-lb status --json failed (wait status {wait_status:#x}): {}",
            std::fs::read_to_string(&stderr).unwrap_or_default()
        )));
    }
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
    Ok(Sample {
        wall_ms: wall.as_secs_f64() * 1e3,
        cpu_ms: ms(usage.ru_utime) + ms(usage.ru_stime),
        peak_rss_kib: usage.ru_maxrss as u64,
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
    let dir = TempDir::new()?;
    let lb_toml = dir.0.join("lb.toml");
    std::fs::write(&lb_toml, "").map_err(Error::io(format!("cannot write {lb_toml:?}")))?;
    let socket = dir.0.join("admin.sock");
    let text = config(&socket, o.lb_backends, o.lb_servers);
    let haproxy = Haproxy::start(&o.haproxy, &dir.0, &text, socket)?;
    let stat_bytes = answer_bytes(&haproxy.socket, "show stat")?;
    let state_bytes = answer_bytes(&haproxy.socket, "show servers state")?;

    // Once with the output kept: it must list every backend and server.
    let out = dir.0.join("status.json");
    let file = std::fs::File::create(&out).map_err(Error::io(format!("{out:?}")))?;
    status(o, &dir.0, &haproxy.socket, file.into())?;
    let json = std::fs::read_to_string(&out).map_err(Error::io(format!("{out:?}")))?;
    let want = (o.lb_backends, o.lb_servers);
    if counted(&json) != Some(want) {
        return Err(Error::Agent(format!(
            "hapgent-lb status --json listed {:?} (backends, servers), expected {want:?}",
            counted(&json)
        )));
    }

    let mut samples = Vec::new();
    for i in 0..o.lb_status {
        let sample = status(o, &dir.0, &haproxy.socket, Stdio::null())?;
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
    drop(haproxy);
    let loadavg_after = crate::proc::loadavg();

    let of = |f: fn(&Sample) -> f64| summary(&samples.iter().map(f).collect::<Vec<_>>());
    let (wall, cpu, rss) = (
        of(|s| s.wall_ms),
        of(|s| s.cpu_ms),
        of(|s| s.peak_rss_kib as f64),
    );
    if o.json {
        println!(
            "{}",
            to_json(&Json {
                backends: o.lb_backends,
                servers: o.lb_servers,
                show_stat_bytes: stat_bytes,
                show_servers_state_bytes: state_bytes,
                wall_ms: wall,
                cpu_ms: cpu,
                peak_rss_kib: rss,
                loadavg_before,
                loadavg_after,
                runs: &samples,
            })
        );
    } else {
        println!(
            "`hapgent-lb status --json`, {} servers in {} backends ({stat_bytes} bytes of `show stat`, \
             {state_bytes} of `show servers state`), {} runs; load average {loadavg_before:.2} before, \
             {loadavg_after:.2} after\n",
            o.lb_servers,
            o.lb_backends,
            samples.len()
        );
        println!("| `hapgent-lb status --json` | median | p90 | min | max |");
        println!("|---|---:|---:|---:|---:|");
        let row = |label: &str, s: &Summary, digits: usize| {
            println!(
                "| {label} | {:.digits$} | {:.digits$} | {:.digits$} | {:.digits$} |",
                s.median, s.p90, s.min, s.max
            )
        };
        row("wall time, spawn to exit (ms)", &wall, 1);
        row("CPU time, user + system (ms)", &cpu, 1);
        row("peak RSS (KiB)", &rss, 0);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::config;
    use std::path::Path;

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
