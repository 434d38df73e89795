//! Fault injection for the tests: a disk whose fsync is slow (Debian's
//! `strace`, `apt-get install strace`, with `-e inject=…:delay_enter=…` on
//! the agent, which the test process may trace as its descendant), FIFOs
//! where regular files belong, open-file limits lowered with `prlimit`
//! (soft limit only), and starts with memory capped.

use crate::util::*;
use std::fs;
use std::path::Path;
use std::process::Command;

/// strace arguments that delay every fsync/fdatasync by `micros`.
pub fn slow_fsync(micros: u64) -> Vec<String> {
    vec![
        "-e".into(),
        "trace=fsync,fdatasync".into(),
        "-e".into(),
        format!("inject=fsync,fdatasync:delay_enter={micros}"),
    ]
}

/// Creates a FIFO at `path`.
pub fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// The lowest file descriptor number the process does not use: an
/// RLIMIT_NOFILE of that number makes its next open fail with EMFILE.
pub fn lowest_free_fd(pid: i32) -> u64 {
    let used: Vec<u64> = fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    (0..).find(|n| !used.contains(n)).unwrap()
}

/// The process's current RLIMIT_NOFILE, as "soft:hard" for prlimit.
/// Only the soft limit is ever changed: raising a hard limit back needs
/// CAP_SYS_RESOURCE, which a container's root may lack.
pub fn nofile_limit(pid: i32) -> String {
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let v: Vec<&str> = line.split_whitespace().collect();
    format!("{}:{}", v[3], v[4])
}

pub fn prlimit_nofile(pid: i32, limit: &str) {
    let status = Command::new("prlimit")
        .arg("--pid")
        .arg(pid.to_string())
        .arg(format!("--nofile={limit}"))
        .status()
        .unwrap();
    assert!(status.success(), "prlimit --nofile={limit} failed");
}

/// Starts hapgent with `args` (address, port and a valid state file
/// added), memory capped at 1 GiB; it must exit within `PATIENCE`.
pub fn start_must_exit(dir: &TempDir, args: &[&str]) -> Outcome {
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"UP"}"#);
    Agent::builder()
        .state(&path)
        .args(args)
        .memory_limit(1 << 30)
        .run_within()
        .unwrap_or_else(|| panic!("{args:?}: still running after {PATIENCE:?}"))
}
