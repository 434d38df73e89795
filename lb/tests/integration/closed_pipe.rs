//! Every command that prints ends quietly when stdout is closed (`| head
//! -1`), as ripgrep does: exit 0, nothing on stderr, no panic.

use crate::util::*;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Output, Stdio};

/// Runs `cmd` with stdout a pipe whose reading end is already closed:
/// every write to it fails with EPIPE, whatever the timing.
fn with_stdout_closed(mut cmd: Command) -> Output {
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: pipe2 just returned these two descriptors, owned by no one.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

fn assert_quiet(what: &str, out: &Output) {
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).as_ref()
        ),
        (Some(0), ""),
        "{what}"
    );
}

/// HAProxy with a backend of `n` servers (no checks: all UP).
fn haproxy_with_servers(dir: &TempDir, n: usize) -> Haproxy {
    let be = Backend::start();
    let fe = free_port();
    let mut extra = String::from("backend many\n");
    for i in 0..n {
        extra.push_str(&format!("    server s{i} 127.0.0.1:{}\n", be.port));
    }
    Haproxy::start(dir, &haproxy_config(&dir.0, fe, be.port, &extra), fe)
}

#[test]
fn every_printing_command_ends_quietly_when_stdout_closes() {
    let dir = TempDir::new("closed-pipe");
    let h = haproxy_with_servers(&dir, 20);
    let socket = h.admin.to_str().unwrap();
    for args in [
        &["--help"][..],
        &["--version"],
        &["check-config"],
        &["status", "--haproxy-socket", socket],
        &["status", "--json", "--haproxy-socket", socket],
        &["wait", "web/web1", "--op", "up", "--haproxy-socket", socket],
    ] {
        let mut cmd = lb_command();
        cmd.args(args);
        assert_quiet(&format!("{args:?}"), &with_stdout_closed(cmd));
    }
}

/// The case as an operator meets it: a status of 2,000 servers into
/// `head -1`, which reads one line and closes the pipe.
#[test]
fn status_of_2000_servers_into_head_ends_quietly() {
    let dir = TempDir::new("head");
    let h = haproxy_with_servers(&dir, 2000);
    for json in ["", " --json"] {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "set -o pipefail; \"$0\" --config /dev/null status{json} --haproxy-socket \"$1\" | head -1"
            ))
            .arg(env!("CARGO_BIN_EXE_hapgent-lb"))
            .arg(&h.admin)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .output()
            .unwrap();
        assert_quiet(&format!("status{json} | head -1"), &out);
        assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    }
}
