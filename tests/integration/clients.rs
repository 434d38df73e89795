//! Hostile and careless clients: none of them delays a fresh probe or
//! makes the agent grow.

use crate::util::*;
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

#[test]
fn idle_garbage_and_never_reading_clients_do_not_block_probes() {
    let dir = TempDir::new("clients");
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"UP","weight":60}"#);
    let agent = Agent::builder()
        .state(&path)
        .args(&["--max-connections", "16"])
        .start();
    let addr = agent.addrs[0];
    assert_eq!(agent.probe(), "up ready 60%\n");
    let rss_before = agent.rss_kib();

    // 2,000 clients that connect and then neither read nor close.
    let limit = raise_fd_limit();
    assert!(
        limit > 2_100,
        "open-file limit {limit} is too low for this test"
    );
    let idle: Vec<TcpStream> = (0..2_000)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();

    // One that sends 1 MB of garbage while the agent answers.
    let mut garbage = TcpStream::connect(addr).unwrap();
    garbage
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let junk = vec![0xA5u8; 1 << 20];
    let _ = garbage.write_all(&junk); // the agent may well have closed: fine

    // One that sends a payload like HAProxy's agent-send, then reads.
    let mut sender = TcpStream::connect(addr).unwrap();
    sender.write_all(b"web\n").unwrap();

    // A fresh probe is answered, correctly, and so is the payload sender.
    assert_eq!(agent.probe(), "up ready 60%\n");
    let mut reply = String::new();
    sender.set_read_timeout(Some(PATIENCE)).unwrap();
    std::io::Read::read_to_string(&mut sender, &mut reply).unwrap();
    assert_eq!(reply, "up ready 60%\n");

    // Every idle client already has its complete reply waiting.
    for mut s in idle.into_iter().take(50) {
        let mut reply = String::new();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        std::io::Read::read_to_string(&mut s, &mut reply).unwrap();
        assert_eq!(reply, "up ready 60%\n");
    }

    // Memory stayed flat: the agent holds nothing per idle client.
    let rss_after = agent.rss_kib();
    assert!(
        rss_after < rss_before + 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    // And the agent is still alive and well.
    for _ in 0..100 {
        assert_eq!(agent.probe(), "up ready 60%\n");
    }
}

/// Out of file descriptors: accept fails with EMFILE, which is logged and
/// retried with backoff; the agent recovers once descriptors are free.
#[test]
fn accept_errors_are_survived() {
    let dir = TempDir::new("emfile");
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"UP"}"#);
    let agent = Agent::builder().state(&path).start();
    assert_eq!(agent.probe(), "up ready 100%\n");
    // A limit at the lowest free descriptor number: the next accept fails.
    let open: Vec<u64> = std::fs::read_dir(format!("/proc/{}/fd", agent.pid()))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_str().unwrap().parse().unwrap())
        .collect();
    let lowest_free = (0..).find(|n| !open.contains(n)).unwrap();
    set_nofile(agent.pid(), lowest_free);
    let addr = agent.addrs[0];
    // The kernel completes the handshake; the agent cannot accept it yet.
    let mut waiting = TcpStream::connect(addr).unwrap();
    agent.wait_log("Too many open files");
    assert!(agent.log().contains("retrying in"), "{}", agent.log());
    // Still alive; give it descriptors back and the waiting client is served.
    set_nofile(agent.pid(), 1024);
    waiting.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut reply = String::new();
    std::io::Read::read_to_string(&mut waiting, &mut reply).unwrap();
    assert_eq!(reply, "up ready 100%\n");
    agent.wait_log("again after");
    assert_eq!(agent.probe(), "up ready 100%\n");
}

/// Sets another process's open-file limit (soft and hard stay ordered).
fn set_nofile(pid: i32, limit: u64) {
    let lim = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit.max(4096),
    };
    // SAFETY: prlimit reads one rlimit we own and writes nothing (null old).
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &lim, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}
