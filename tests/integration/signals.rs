//! Signals: USR1/USR2 change and save the status, HUP re-reads, TERM stops;
//! the last of a flood or a burst wins even while saves are slow, and a
//! signal during startup is held, not fatal. A final state is told from
//! one passed on the way by an event ordered after it (the end of a SIGHUP
//! reload), not by a quiet period.

use crate::inject::*;
use crate::util::*;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

#[test]
fn usr2_then_usr1_change_the_reply_and_the_file() {
    let dir = TempDir::new("usr");
    let path = dir.join("state.json");
    write_state(
        &path,
        r#"{"status":"DRAIN","weight":50,"maxconn":30,"description":"canary"}"#,
    );
    let agent = Agent::builder().state(&path).start();
    assert_eq!(agent.probe(), "up drain 50% maxconn:30 # canary\n");

    agent.signal(libc::SIGUSR2);
    agent.wait_reply("down 50% maxconn:30 # canary\n");
    agent.wait_log("(SIGUSR2)");
    // Saved with weight, maxconn and description kept.
    let saved = || fs::read_to_string(&path).unwrap();
    wait_for("saved DOWN", || saved().contains("DOWN"));
    assert_eq!(
        saved(),
        "{\"status\":\"DOWN\",\"weight\":50,\"maxconn\":30,\"description\":\"canary\"}\n"
    );

    agent.signal(libc::SIGUSR1);
    agent.wait_reply("up ready 50% maxconn:30 # canary\n");
    wait_for("saved UP", || saved().contains("\"UP\""));
    assert_eq!(
        saved(),
        "{\"status\":\"UP\",\"weight\":50,\"maxconn\":30,\"description\":\"canary\"}\n"
    );
    let log = agent.log();
    assert!(
        log.contains("state changed: DRAIN weight=50 maxconn=30 description=\"canary\" -> DOWN weight=50 maxconn=30 description=\"canary\" (SIGUSR2)"),
        "{log}"
    );
}

#[test]
fn hup_rereads_the_file() {
    let dir = TempDir::new("hup");
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"UP"}"#);
    let agent = Agent::builder().state(&path).start();
    assert_eq!(agent.probe(), "up ready 100%\n");
    for (json, reply) in [
        (r#"{"status":"DRAIN","weight":25}"#, "up drain 25%\n"),
        (r#"{"status":"MAINT"}"#, "maint 100%\n"),
        (
            r#"{"status":"STOPPED","description":"gone"}"#,
            "stopped 100% # gone\n",
        ),
        (
            r#"{"status":"READY","maxconn":0}"#,
            "up ready 100% maxconn:0\n",
        ),
    ] {
        write_state(&path, json);
        agent.signal(libc::SIGHUP);
        agent.wait_reply(reply);
    }
}

#[test]
fn restart_keeps_the_saved_state() {
    let dir = TempDir::new("restart");
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"UP","weight":80}"#);
    let mut agent = Agent::builder().state(&path).start();
    agent.signal(libc::SIGUSR2);
    agent.wait_reply("down 80%\n");
    agent.signal(libc::SIGTERM);
    assert_eq!(agent.wait_exit().and_then(|s| s.code()), Some(0));
    let again = Agent::builder().state(&path).start();
    assert_eq!(again.probe(), "down 80%\n");
}

#[test]
fn term_and_int_exit_zero() {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let dir = TempDir::new("term");
        let path = dir.join("state.json");
        write_state(&path, r#"{"status":"UP"}"#);
        let mut agent = Agent::builder().state(&path).start();
        agent.probe();
        agent.signal(signal);
        let status = agent.wait_exit().expect("hapgent did not stop");
        assert_eq!(status.code(), Some(0), "{}", agent.log());
        assert!(agent.log().contains("stopped"), "{}", agent.log());
    }
}

/// A burst of signals leaves one complete state, the same on disk as in
/// replies, and the next signal after it wins. (POSIX does not keep the
/// order of *different* signals pending at once, see the README; here each
/// is sent once the previous one was taken, so every one is a delivery of
/// its own, and all are handled.)
#[test]
fn signal_burst_leaves_disk_and_replies_in_agreement() {
    let dir = TempDir::new("burst");
    let path = dir.join("state.json");
    // DOWN, so that every signal of the burst is a change.
    write_state(&path, r#"{"status":"DOWN","weight":10}"#);
    let agent = Agent::builder().state(&path).start();
    let before = ctl_status(&agent)["version"].as_u64().unwrap();
    for i in 0..200 {
        send_taken(
            agent.pid(),
            if i % 2 == 0 {
                libc::SIGUSR1
            } else {
                libc::SIGUSR2
            },
        );
    }
    let expected = |reply: &str| match reply {
        "down 10%\n" => "{\"status\":\"DOWN\",\"weight\":10}\n",
        "up ready 10%\n" => "{\"status\":\"UP\",\"weight\":10}\n",
        other => panic!("unexpected reply {other:?}"),
    };
    // Settled: every signal is handled (each one is a new version of the
    // state) and the agent says the file holds what it serves; then reply
    // and file agree.
    wait_for("all 200 signals handled, the last state saved", || {
        let status = ctl_status(&agent);
        status["version"].as_u64() == Some(before + 200) && status["saved"] == true
    });
    let reply = agent.probe();
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        expected(&reply),
        "{}",
        agent.log()
    );
    for (signal, reply) in [
        (libc::SIGUSR2, "down 10%\n"),
        (libc::SIGUSR1, "up ready 10%\n"),
    ] {
        agent.signal(signal);
        agent.wait_reply(reply);
        wait_for("saved", || {
            fs::read_to_string(&path).unwrap() == expected(reply)
        });
    }
    // No temporary files are left behind.
    let names: Vec<_> = fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["state.json"]);
}

/// A save that cannot happen is logged; the agent still changes state in
/// memory and keeps answering.
#[test]
fn failed_save_still_changes_the_reply() {
    let dir = TempDir::new("nosave");
    // The directory does not exist: the file can be neither read nor saved.
    let path = dir.join("missing-dir/state.json");
    let agent = Agent::builder().state(&path).start();
    assert_eq!(agent.probe(), "fail 100%\n");
    agent.signal(libc::SIGUSR1);
    agent.wait_reply("up ready 100%\n");
    let line = agent.wait_log("cannot save the state to");
    assert!(line.contains("missing-dir/state.json"), "{line}");
    assert_eq!(agent.probe(), "up ready 100%\n");
}

/// Sends `sig` and waits (bounded, without failing) until it is no longer
/// pending: the agent took it, so the next one is a separate delivery
/// rather than merged into it by the kernel. The bound only paces a flood:
/// a signal merged into the next one changes nothing the tests check.
fn send_delivered(pid: i32, sig: i32) {
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    let bit = 1u64 << (sig - 1);
    let deadline = Instant::now() + Duration::from_millis(100);
    while Instant::now() < deadline {
        match pending_signals(pid) {
            Some(pending) if pending & bit != 0 => std::thread::yield_now(),
            _ => return,
        }
    }
}

/// Checks the final state after a burst, not a state passed on the way:
/// once the agent has handled every signal delivered (see
/// `wait_signals_handled`), it serves `reply` and the state file holds
/// `json`.
fn settle(agent: &Agent, notify: &Notify, path: &Path, reply: &str, json: &str) {
    wait_signals_handled(agent, notify);
    let log = || tail(&agent.log());
    assert_eq!(agent.probe(), reply, "log tail:\n{}", log());
    assert_eq!(saved(path), json, "log tail:\n{}", log());
}

/// Sends 400 of `flood`, then one `last`, to an agent whose saves take
/// 200 ms each; the final served and saved state is `last`'s.
fn last_of_a_queue_wins(start: &str, flood: i32, last: i32, reply: &str, json: &str) {
    let dir = TempDir::new("queue");
    let path = dir.join("state.json");
    write_state(&path, start);
    let notify = Notify::bind(&dir);
    let agent = Agent::builder()
        .strace(&slow_fsync(200_000))
        .state(&path)
        .envs(&[notify.env()])
        .start();
    for _ in 0..400 {
        send_delivered(agent.pid(), flood);
    }
    wait_no_pending(agent.pid());
    agent.signal(last);
    settle(&agent, &notify, &path, reply, json);
}

/// Five runs: 20,000 USR1/USR2 in random order from 4 threads, then, once
/// all senders are done and nothing is pending, one `last`.
fn last_of_a_burst_wins(last: i32, reply: &str, json: &str) {
    for run in 0..5u64 {
        let dir = TempDir::new("burst");
        let path = dir.join("state.json");
        write_state(&path, r#"{"status":"MAINT"}"#);
        let notify = Notify::bind(&dir);
        let agent = Agent::builder().state(&path).envs(&[notify.env()]).start();
        let pid = agent.pid();
        let senders: Vec<_> = (0..4u64)
            .map(|t| {
                std::thread::spawn(move || {
                    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (run * 4 + t + 1);
                    for _ in 0..5_000 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let sig = if x & 1 == 0 {
                            libc::SIGUSR1
                        } else {
                            libc::SIGUSR2
                        };
                        send_delivered(pid, sig);
                    }
                })
            })
            .collect();
        for s in senders {
            s.join().unwrap();
        }
        wait_no_pending(pid);
        agent.signal(last);
        settle(&agent, &notify, &path, reply, json);
    }
}

/// A Unix socket listening at a path with its queue already full: a
/// blocking connect to it waits until it is dropped, and is then refused.
struct FullListener {
    _listener: UnixListener,
    _queued: UnixStream,
}

impl FullListener {
    fn bind(path: &Path) -> FullListener {
        let listener = UnixListener::bind(path).unwrap();
        // Listening again sets the backlog: with 0, one queued connection
        // fills the queue.
        assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0);
        let queued = UnixStream::connect(path).unwrap();
        FullListener {
            _listener: listener,
            _queued: queued,
        }
    }
}

#[test]
fn usr2_after_400_usr1_is_not_lost() {
    last_of_a_queue_wins(
        r#"{"status":"DOWN"}"#,
        libc::SIGUSR1,
        libc::SIGUSR2,
        "down 100%\n",
        r#"{"status":"DOWN"}"#,
    );
}

#[test]
fn usr1_after_400_usr2_is_not_lost() {
    last_of_a_queue_wins(
        r#"{"status":"UP"}"#,
        libc::SIGUSR2,
        libc::SIGUSR1,
        "up ready 100%\n",
        r#"{"status":"UP"}"#,
    );
}

#[test]
fn usr2_after_a_burst_of_20000_mixed_signals_wins() {
    last_of_a_burst_wins(libc::SIGUSR2, "down 100%\n", r#"{"status":"DOWN"}"#);
}

#[test]
fn usr1_after_a_burst_of_20000_mixed_signals_wins() {
    last_of_a_burst_wins(libc::SIGUSR1, "up ready 100%\n", r#"{"status":"UP"}"#);
}

#[test]
fn a_signal_during_startup_is_held_not_fatal() {
    let dir = TempDir::new("startsignal");
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"DOWN"}"#);
    // Startup stops at the control socket for as long as the test likes:
    // hapgent first checks that no other agent answers there, and that
    // connect waits while the listener's queue is full.
    let socket = dir.join("control.sock");
    let gate = FullListener::bind(&socket);
    let mut agent = Agent::builder()
        .state(&path)
        .control_socket(&socket)
        .launch();
    let pid = agent.pid();
    wait_for("hapgent waiting at the control socket", || {
        let call = fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
        call.split_whitespace().next() == Some(&libc::SYS_connect.to_string())
    });
    send_taken(pid, libc::SIGUSR1);
    // Nobody answers after all: the check is refused, startup goes on.
    drop(gate);
    let deadline = Instant::now() + PATIENCE;
    while !agent.log().contains("listening on ") {
        if let Some(status) = agent.exited() {
            agent.wait_log_end();
            panic!("died at startup: {status:?}; {}", agent.log());
        }
        assert!(Instant::now() < deadline, "not listening: {}", agent.log());
        std::thread::sleep(Duration::from_millis(10));
    }
    agent.wait_listening();
    agent.wait_reply("up ready 100%\n");
    wait_for("saved UP", || saved(&path) == r#"{"status":"UP"}"#);
}
