//! Saving the state file when the disk is slow or hung, and when the agent
//! stops in the middle of a save: a hung save delays no signal, the last
//! signal wins, a stop applies what is pending and leaves no temporary
//! file. The slow disk is Debian's `strace` delaying every fsync.
//!
//! Every test waits for an event (a reply, a file, a log line, an exit)
//! with bounded polling; none asserts after a fixed sleep.

use crate::inject::*;
use crate::util::*;
use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

fn temp_files(dir: &TempDir) -> Vec<String> {
    fs::read_dir(&dir.0)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(".state.json.tmp."))
        .collect()
}

#[test]
fn a_hung_save_does_not_delay_the_next_signal() {
    let dir = TempDir::new("hungsave");
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"DOWN"}"#);
    // Every fsync hangs for 300 s: the first save is still hanging when
    // the test ends.
    let agent = Agent::builder()
        .strace(&slow_fsync(300_000_000))
        .state(&path)
        .start();
    assert_eq!(agent.probe(), "down 100%\n");
    agent.signal(libc::SIGUSR1);
    agent.wait_log("(SIGUSR1)");
    agent.wait_reply("up ready 100%\n");
    agent.signal(libc::SIGUSR2);
    agent.wait_reply("down 100%\n");
    // The premise: the UP save is still hanging in fsync.
    assert!(!temp_files(&dir).is_empty(), "{}", agent.log());
}

#[test]
fn slow_saves_converge_to_the_last_signal() {
    let dir = TempDir::new("slowsave");
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"DOWN"}"#);
    let agent = Agent::builder()
        .strace(&slow_fsync(1_000_000))
        .state(&path)
        .start();
    agent.signal(libc::SIGUSR1);
    agent.wait_log("(SIGUSR1)");
    agent.signal(libc::SIGUSR2);
    agent.wait_reply("down 100%\n");
    wait_for("the file converges to DOWN", || {
        saved(&path) == r#"{"status":"DOWN"}"#
    });
}

#[test]
fn stop_applies_a_pending_signal_and_leaves_no_temp_file() {
    let dir = TempDir::new("stoppending");
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"DOWN"}"#);
    let mut agent = Agent::builder()
        .strace(&slow_fsync(300_000))
        .state(&path)
        .start();
    agent.signal(libc::SIGUSR1);
    agent.wait_log("(SIGUSR1)");
    // The scenario: USR2 as soon as USR1 is handled, while the UP save is
    // most likely in its 300 ms fsync; TERM as soon as USR2 is handled,
    // while its save may still be queued behind that one. Wherever the
    // signals land, the outcome checked below is the same.
    agent.signal(libc::SIGUSR2);
    agent.wait_log("(SIGUSR2)");
    agent.signal(libc::SIGTERM);
    let status = agent.wait_exit();
    let log = agent.log();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{log}");
    assert_eq!(saved(&path), r#"{"status":"DOWN"}"#, "{log}");
    assert!(log.contains("SIGUSR2"), "{log}");
    assert_eq!(temp_files(&dir), Vec::<String>::new(), "{log}");
}

#[test]
fn a_stop_during_a_hung_save_leaves_no_temp_file() {
    let dir = TempDir::new("stophung");
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"UP"}"#);
    // The save never finishes while the test runs.
    let agent = Agent::builder()
        .strace(&slow_fsync(300_000_000))
        .state(&path)
        .start();
    agent.signal(libc::SIGUSR2);
    agent.wait_log("(SIGUSR2)");
    wait_for("the save under way", || !temp_files(&dir).is_empty());
    // The process may not be able to end while a thread is stuck in fsync
    // (on a really hung disk neither), but the temp file can be unlinked.
    agent.signal(libc::SIGTERM);
    let deadline = Instant::now() + PATIENCE;
    while !temp_files(&dir).is_empty() {
        assert!(
            Instant::now() < deadline,
            "temp file left after SIGTERM: {:?}; log:\n{}",
            temp_files(&dir),
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_leftover_temp_file_is_removed_at_start() {
    let dir = TempDir::new("leftover");
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"UP"}"#);
    // The PID of a process that has exited: a save that crashed.
    let mut gone = Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    let leftover = dir.join(&format!(".state.json.tmp.{pid}"));
    fs::write(&leftover, r#"{"status":"DOWN"}"#).unwrap();
    let agent = Agent::builder().state(&path).start();
    assert_eq!(agent.probe(), "up ready 100%\n");
    wait_for("the leftover temp file is removed", || !leftover.exists());
    assert_eq!(saved(&path), r#"{"status":"UP"}"#);
}
