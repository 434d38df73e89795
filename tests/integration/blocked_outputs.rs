//! Outputs nobody reads: a notify socket whose reader is gone and a stderr
//! pipe nobody drains block neither probes nor signals.

use crate::util::*;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// `Agent::wait_reply`, with a probe that goes unanswered reported as such.
fn wait_answered_reply(agent: &Agent, want: &str, round: usize) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match try_probe(agent.addrs[0], PATIENCE) {
            Ok(got) if got == want => return,
            Ok(got) => assert!(
                Instant::now() < deadline,
                "HUP {round}: reply {got:?}, want {want:?}; log:\n{}",
                agent.log()
            ),
            Err(e) => panic!("HUP {round}: probe unanswered ({e}); log:\n{}", agent.log()),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_notify_socket_nobody_reads_blocks_nothing() {
    let dir = TempDir::new("notifyfull");
    let path = dir.join("state.json");
    let sock = dir.join("notify.sock");
    // Bound, never read: its queue fills after a few datagrams.
    let _receiver = UnixDatagram::bind(&sock).unwrap();
    write_state(&path, r#"{"status":"UP","weight":1}"#);
    let mut agent = Agent::builder()
        .state(&path)
        .envs(&[("NOTIFY_SOCKET", sock.to_str().unwrap())])
        .start();
    for i in 1..=50 {
        let weight = 100 + i;
        write_state(&path, &format!(r#"{{"status":"UP","weight":{weight}}}"#));
        agent.signal(libc::SIGHUP);
        wait_answered_reply(&agent, &format!("up ready {weight}%\n"), i);
    }
    agent.signal(libc::SIGTERM);
    let status = agent.wait_exit();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", agent.log());
}

#[test]
fn a_stderr_nobody_reads_does_not_stop_probes() {
    let dir = TempDir::new("stderrfull");
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"UP"}"#);
    let mut agent = Agent::builder()
        .state(&path)
        .args(&["--log-requests"])
        .stderr_unread()
        .start();
    let addr = agent.addrs[0];
    for i in 0..3_000 {
        match try_probe(addr, PATIENCE) {
            Ok(reply) => assert_eq!(reply, "up ready 100%\n", "probe {i}"),
            Err(e) => panic!("probe {i} with stderr unread: {e}"),
        }
    }
    agent.read_log();
    agent.wait_log("log lines dropped");
    agent.signal(libc::SIGTERM);
    let status = agent.wait_exit();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{}",
        tail(&agent.log())
    );
}
