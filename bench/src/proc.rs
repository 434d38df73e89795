//! What the benchmark reads about the agent and the machine from /proc,
//! and the binary's stripped size.

use serde::Serialize;
use std::path::Path;

/// Resident memory, in KiB (NaN if unknown).
pub struct Memory {
    pub rss_kib: f64,
    pub hwm_kib: f64,
}

/// VmRSS and VmHWM from /proc/PID/status.
pub fn memory(pid: u32) -> Memory {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    Memory {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
    }
}

/// CPU time the process has used, in µs: utime + stime from /proc/PID/stat
/// (clock ticks, usually 10 ms each), and the sum over its threads of
/// /proc/PID/task/TID/schedstat (nanoseconds on CPU; more precise, absent
/// on kernels without CONFIG_SCHED_INFO).
pub struct Cpu {
    pub stat_us: Option<f64>,
    /// The kernel's part (stime) of stat_us.
    pub stime_us: Option<f64>,
    pub sched_us: Option<f64>,
}

pub fn cpu(pid: u32) -> Cpu {
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name, which is in parentheses and may
            // hold spaces: state is field 3, utime 14, stime 15.
            let rest = &s[s.rfind(')')? + 1..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = f.get(11)?.parse().ok()?;
            let stime: f64 = f.get(12)?.parse().ok()?;
            // SAFETY: sysconf has no preconditions.
            let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
            Some(((utime + stime) * 1e6 / hz, stime * 1e6 / hz))
        });
    let (stat_us, stime_us) = (ticks.map(|t| t.0), ticks.map(|t| t.1));
    let sched_us = std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()
        .and_then(|tasks| {
            let mut total = 0.0;
            for task in tasks.flatten() {
                let s = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
                total += s.split_whitespace().next()?.parse::<f64>().ok()? / 1e3;
            }
            Some(total)
        });
    Cpu {
        stat_us,
        stime_us,
        sched_us,
    }
}

/// The machine, for the report (its `machine` in JSON).
#[derive(Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub model: String,
    pub kernel: String,
}

pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    Machine {
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        model,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into()),
    }
}

/// The binary's path, size, and size once stripped (`strip -o` on a copy;
/// equal when it was stripped already). None where unknown. The report's
/// `binary` in JSON.
#[derive(Serialize)]
pub struct Size {
    pub path: String,
    pub bytes: Option<u64>,
    pub stripped_bytes: Option<u64>,
}

pub fn binary_size(path: &Path) -> Size {
    let bytes = std::fs::metadata(path).ok().map(|m| m.len());
    let copy = std::env::temp_dir().join(format!("hapgent-bench-{}.stripped", std::process::id()));
    let stripped_bytes = std::process::Command::new("strip")
        .arg("-o")
        .arg(&copy)
        .arg(path)
        .stderr(std::process::Stdio::null())
        .status()
        .ok()
        .filter(|s| s.success())
        .and_then(|_| std::fs::metadata(&copy).ok())
        .map(|m| m.len());
    let _ = std::fs::remove_file(&copy);
    Size {
        path: path.display().to_string(),
        bytes,
        stripped_bytes,
    }
}

/// The 1-minute load average (other work on the machine skews every
/// number; the report shows it before and after).
pub fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// CPU time this process (the load generator, all threads) has used, in µs.
pub fn own_cpu_us() -> f64 {
    // SAFETY: getrusage fills the struct passed.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return f64::NAN;
    }
    let us = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    us(u.ru_utime) + us(u.ru_stime)
}
