//! The listening sockets: a dual-stack conflict named as such, accept
//! errors naming addresses, and a backlog that follows `somaxconn`.

use crate::inject::*;
use crate::util::*;
use std::fs;
use std::process::Command;

#[test]
fn dual_stack_conflict_is_named_as_such() {
    let inet6 = fs::read_to_string("/proc/net/if_inet6").unwrap_or_default();
    if !inet6
        .lines()
        .any(|l| l.starts_with("00000000000000000000000000000001"))
    {
        eprintln!("SKIPPED dual_stack_conflict_is_named_as_such: no IPv6 loopback");
        return;
    }
    // A free port below the ephemeral range, so that no client socket of a
    // concurrent test takes it between this check and hapgent's bind.
    let port = (20_000 + std::process::id() % 10_000..32_000)
        .chain(10_000..20_000)
        .find(|p| std::net::TcpListener::bind(("::", *p as u16)).is_ok())
        .unwrap()
        .to_string();
    let dir = TempDir::new("dualstack");
    let out = start_must_exit(&dir, &["--ip", "::", "--ip", "0.0.0.0", "--port", &port]);
    assert_ne!(out.code, Some(0), "{}", out.stderr);
    assert!(!out.stderr.contains("another process"), "{}", out.stderr);
    assert!(out.stderr.contains("dual-stack"), "{}", out.stderr);
}

#[test]
fn accept_messages_print_addresses_not_options() {
    let dir = TempDir::new("emfile");
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"UP"}"#);
    let agent = Agent::builder().state(&path).start();
    let pid = agent.pid();
    let original = nofile_limit(pid);
    let n = lowest_free_fd(pid);
    let hard = original.split(':').nth(1).unwrap();
    prlimit_nofile(pid, &format!("{n}:{hard}"));
    // accept() fails with EMFILE while the client waits in the backlog.
    let addr = agent.addrs[0];
    let client = std::thread::spawn(move || try_probe(addr, PATIENCE));
    let failed =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| agent.wait_log("accept")));
    prlimit_nofile(pid, &original);
    assert!(failed.is_ok(), "no accept failure logged");
    assert_eq!(client.join().unwrap().unwrap(), "up ready 100%\n");
    // The failure and the recovery.
    agent.wait_log_count("accept", 2);
    let log = agent.log();
    for line in log.lines().filter(|l| l.contains("accept")) {
        assert!(!line.contains("Some("), "{line}");
    }
}

#[test]
fn the_listen_backlog_follows_somaxconn() {
    let somaxconn = fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap();
    let dir = TempDir::new("backlog");
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"UP"}"#);
    let agent = Agent::builder().state(&path).start();
    // For a listening socket, ss shows the backlog as Send-Q.
    let out = Command::new("ss")
        .args(["-Hltn", &format!("sport = :{}", agent.port())])
        .output()
        .expect("ss (iproute2) is needed");
    let out = String::from_utf8_lossy(&out.stdout);
    let backlog = out.split_whitespace().nth(2).unwrap_or_default();
    assert_eq!(backlog, somaxconn.trim(), "ss: {out}");
}
