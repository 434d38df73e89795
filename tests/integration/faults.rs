//! The state path under faults: a hung or slow disk, signal
//! floods, a stop in the middle of a save, read errors, readers that stop
//! reading, settings files that are not regular files, odd symlinks, large
//! payloads, startup races and in-place edits. Faults are injected with
//! Debian's `strace` (`apt-get install strace`; `-e inject=…:delay_enter=…`
//! on the agent, which the test process may trace as its descendant),
//! `prlimit` (soft limit only), FIFOs and sockets nobody reads.
//!
//! Every test waits for an event (a reply, a file, a log line, a
//! notification, an exit) with bounded polling; none asserts after a fixed
//! sleep or within a time. A final state is told from one passed on the
//! way by an event ordered after it (the end of a SIGHUP reload), not by
//! a quiet period.

use crate::util::*;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// strace arguments that delay every fsync/fdatasync by `micros`.
fn slow_fsync(micros: u64) -> Vec<String> {
    vec![
        "-e".into(),
        "trace=fsync,fdatasync".into(),
        "-e".into(),
        format!("inject=fsync,fdatasync:delay_enter={micros}"),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The state file's text without surrounding whitespace ("" if missing).
fn saved(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Creates a FIFO at `path`.
fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
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

/// The last 40 lines of a log, for failure messages after floods.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// The lowest file descriptor number the process does not use: an
/// RLIMIT_NOFILE of that number makes its next open fail with EMFILE.
fn lowest_free_fd(pid: i32) -> u64 {
    let used: Vec<u64> = fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    (0..).find(|n| !used.contains(n)).unwrap()
}

/// The process's current RLIMIT_NOFILE, as "soft:hard" for prlimit.
/// Only the soft limit is ever changed: raising a hard limit back needs
/// CAP_SYS_RESOURCE, which a container's root may lack.
fn nofile_limit(pid: i32) -> String {
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let v: Vec<&str> = line.split_whitespace().collect();
    format!("{}:{}", v[3], v[4])
}

fn prlimit_nofile(pid: i32, limit: &str) {
    let status = Command::new("prlimit")
        .arg("--pid")
        .arg(pid.to_string())
        .arg(format!("--nofile={limit}"))
        .status()
        .unwrap();
    assert!(status.success(), "prlimit --nofile={limit} failed");
}

// 1. A hung save delays later signals.

#[test]
fn a_hung_save_does_not_delay_the_next_signal() {
    let dir = TempDir::new("hungsave");
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"DOWN"}"#);
    // Every fsync hangs for 300 s: the first save is still hanging when
    // the test ends.
    let agent = Agent::start_traced(&strs(&slow_fsync(300_000_000)), &path, &[], &[]);
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
    let agent = Agent::start_traced(&strs(&slow_fsync(1_000_000)), &path, &[], &[]);
    agent.signal(libc::SIGUSR1);
    agent.wait_log("(SIGUSR1)");
    agent.signal(libc::SIGUSR2);
    agent.wait_reply("down 100%\n");
    wait_for("the file converges to DOWN", || {
        saved(&path) == r#"{"status":"DOWN"}"#
    });
}

// 2. Signals are dropped silently when the queue fills.

/// Sends 400 of `flood`, then one `last`, to an agent whose saves take
/// 200 ms each; the final served and saved state is `last`'s.
fn last_of_a_queue_wins(start: &str, flood: i32, last: i32, reply: &str, json: &str) {
    let dir = TempDir::new("queue");
    let path = dir.join("state.json");
    write_state(&path, start);
    let notify = Notify::bind(&dir);
    let agent = Agent::start_traced(&strs(&slow_fsync(200_000)), &path, &[], &[notify.env()]);
    for _ in 0..400 {
        send_delivered(agent.pid(), flood);
    }
    wait_no_pending(agent.pid());
    agent.signal(last);
    settle(&agent, &notify, &path, reply, json);
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

/// Five runs: 20,000 USR1/USR2 in random order from 4 threads, then, once
/// all senders are done and nothing is pending, one `last`.
fn last_of_a_burst_wins(last: i32, reply: &str, json: &str) {
    for run in 0..5u64 {
        let dir = TempDir::new("burst");
        let path = dir.join("state.json");
        write_state(&path, r#"{"status":"MAINT"}"#);
        let notify = Notify::bind(&dir);
        let agent = Agent::start_with_env(&path, &[], &[notify.env()]);
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

#[test]
fn usr2_after_a_burst_of_20000_mixed_signals_wins() {
    last_of_a_burst_wins(libc::SIGUSR2, "down 100%\n", r#"{"status":"DOWN"}"#);
}

#[test]
fn usr1_after_a_burst_of_20000_mixed_signals_wins() {
    last_of_a_burst_wins(libc::SIGUSR1, "up ready 100%\n", r#"{"status":"UP"}"#);
}

// 3. SIGTERM discards a pending signal; a stop leaves a temp file.

fn temp_files(dir: &TempDir) -> Vec<String> {
    fs::read_dir(&dir.0)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(".state.json.tmp."))
        .collect()
}

#[test]
fn stop_applies_a_pending_signal_and_leaves_no_temp_file() {
    let dir = TempDir::new("stoppending");
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"DOWN"}"#);
    let mut agent = Agent::start_traced(&strs(&slow_fsync(300_000)), &path, &[], &[]);
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
    let agent = Agent::start_traced(&strs(&slow_fsync(300_000_000)), &path, &[], &[]);
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
    let agent = Agent::start(&path, &[]);
    assert_eq!(agent.probe(), "up ready 100%\n");
    wait_for("the leftover temp file is removed", || !leftover.exists());
    assert_eq!(saved(&path), r#"{"status":"UP"}"#);
}

// 4. A transient read error becomes FAIL and later erases fields.

#[test]
fn a_read_error_keeps_the_last_good_state() {
    let dir = TempDir::new("readerror");
    let path = dir.join("state.json");
    let full = r#"{"status":"DRAIN","weight":30,"maxconn":7,"description":"x"}"#;
    write_state(&path, full);
    let agent = Agent::start(&path, &[]);
    let reply = "up drain 30% maxconn:7 # x\n";
    assert_eq!(agent.probe(), reply);

    let pid = agent.pid();
    let original = nofile_limit(pid);
    let n = lowest_free_fd(pid);
    let hard = original.split(':').nth(1).unwrap();
    prlimit_nofile(pid, &format!("{n}:{hard}"));
    agent.signal(libc::SIGHUP);
    let kept = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        agent.wait_log("keeping the last good state")
    }));
    // Restore the limit before anything else, so probes can be accepted.
    prlimit_nofile(pid, &original);
    assert!(kept.is_ok(), "no \"keeping the last good state\" line");
    // Still the same state: repeated to this prober without the weight.
    assert_eq!(agent.probe(), "up drain maxconn:7 # x\n", "{}", agent.log());

    agent.signal(libc::SIGUSR1);
    agent.wait_reply("up ready 30% maxconn:7 # x\n");
    wait_for("saved UP with the fields kept", || {
        saved(&path) == r#"{"status":"UP","weight":30,"maxconn":7,"description":"x"}"#
    });
}

#[test]
fn invalid_content_means_fail_and_a_change_keeps_nothing_of_it() {
    let dir = TempDir::new("badcontent");
    let path = dir.join("state.json");
    write_state(
        &path,
        r#"{"status":"DRAIN","weight":30,"maxconn":7,"description":"x"}"#,
    );
    let agent = Agent::start(&path, &[]);
    assert_eq!(agent.probe(), "up drain 30% maxconn:7 # x\n");
    write_state(
        &path,
        r#"{"status":"DRAIN","weight":30,"maxconn":7,"description":"x","bogus":1}"#,
    );
    agent.signal(libc::SIGHUP);
    agent.wait_reply("fail 100%\n");
    agent.signal(libc::SIGUSR1);
    agent.wait_reply("up ready 100%\n");
    wait_for("saved UP alone", || saved(&path) == r#"{"status":"UP"}"#);
}

// 5. Blocking writers freeze the agent.

#[test]
fn a_notify_socket_nobody_reads_blocks_nothing() {
    let dir = TempDir::new("notifyfull");
    let path = dir.join("state.json");
    let sock = dir.join("notify.sock");
    // Bound, never read: its queue fills after a few datagrams.
    let _receiver = UnixDatagram::bind(&sock).unwrap();
    write_state(&path, r#"{"status":"UP","weight":1}"#);
    let mut agent = Agent::start_with_env(&path, &[], &[("NOTIFY_SOCKET", sock.to_str().unwrap())]);
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
fn a_stderr_nobody_reads_does_not_stop_probes() {
    let dir = TempDir::new("stderrfull");
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"UP"}"#);
    let mut agent = Agent::start_unread(&path, &["--log-requests"], &[]);
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

// 6. Unbounded or blocking reads of settings files.

/// Starts hapgent with `args` (address, port and a valid state file
/// added), memory capped at 1 GiB; it must exit within `PATIENCE`.
fn start_must_exit(dir: &TempDir, args: &[&str]) -> Outcome {
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"UP"}"#);
    let state = path.to_str().unwrap();
    let mut all = vec!["--ip", "127.0.0.1", "--port", "0", "--state-file", state];
    all.extend_from_slice(args);
    let mut cmd = hapgent_command(&all, &[]);
    limit_memory(&mut cmd, 1 << 30);
    run_within(cmd).unwrap_or_else(|| panic!("{args:?}: still running after {PATIENCE:?}"))
}

#[test]
fn proc_stat_fifo_is_refused_at_start() {
    let dir = TempDir::new("statfifo");
    let fifo = dir.join("stat");
    mkfifo(&fifo);
    let out = start_must_exit(
        &dir,
        &["--cpu-weight", "--proc-stat", fifo.to_str().unwrap()],
    );
    assert_ne!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("not a regular file"), "{}", out.stderr);
}

#[test]
fn proc_stat_dev_zero_is_refused_at_start() {
    let dir = TempDir::new("statzero");
    let out = start_must_exit(&dir, &["--cpu-weight", "--proc-stat", "/dev/zero"]);
    assert_ne!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("not a regular file"), "{}", out.stderr);
}

#[test]
fn a_huge_proc_stat_is_refused_not_read() {
    let dir = TempDir::new("statbig");
    let path = dir.join("state.json");
    let stat = dir.join("stat");
    write_state(&path, r#"{"status":"UP"}"#);
    // Valid counters, then 200 MiB of holes.
    fs::write(&stat, proc_stat(1000, 1000)).unwrap();
    let file = fs::OpenOptions::new().write(true).open(&stat).unwrap();
    file.set_len(200 << 20).unwrap();
    let state = path.to_str().unwrap();
    let args = [
        "--ip",
        "127.0.0.1",
        "--port",
        "0",
        "--state-file",
        state,
        "--cpu-weight",
        "--timeframe",
        "100",
        "--proc-stat",
        stat.to_str().unwrap(),
    ];
    let mut cmd = hapgent_command(&args, &[]);
    limit_memory(&mut cmd, 1 << 30);
    let mut agent = Agent::launch(cmd);
    // Either a startup error or a logged problem with probes answered.
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = agent.exited() {
            agent.wait_log_end();
            let log = agent.log();
            assert_ne!(status.code(), Some(0), "{log}");
            assert!(log.contains("larger than"), "{log}");
            return;
        }
        let log = agent.log();
        if log.contains("larger than") && log.contains("listening on ") {
            agent.wait_listening();
            let reply = try_probe(agent.addrs[0], PATIENCE);
            assert!(reply.is_ok(), "{reply:?}; {log}");
            return;
        }
        assert!(Instant::now() < deadline, "nothing said about size:\n{log}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A fake `/proc/stat` with the given user and idle tick counts.
fn proc_stat(user: u64, idle: u64) -> String {
    format!("cpu  {user} 0 0 {idle} 0 0 0 0 0 0\ncpu0 {user} 0 0 {idle} 0 0 0 0 0 0\n")
}

#[test]
fn proc_stat_swapped_for_a_fifo_does_not_stall_probes() {
    let dir = TempDir::new("statswap");
    let path = dir.join("state.json");
    let stat = dir.join("stat");
    write_state(&path, r#"{"status":"UP"}"#);
    fs::write(&stat, proc_stat(1000, 1000)).unwrap();
    let name = stat.to_str().unwrap();
    let agent = Agent::start(
        &path,
        &["--cpu-weight", "--timeframe", "100", "--proc-stat", name],
    );
    agent.probe();
    // Lines about the file, other than the warning that the fake counters
    // do not move (they do not; that is not what this test is about).
    let about = |log: String| {
        log.lines()
            .filter(|l| l.contains(name) && !l.contains("did not change"))
            .count()
    };
    let before = about(agent.log());
    let fifo = dir.join("stat.fifo");
    mkfifo(&fifo);
    fs::rename(&fifo, &stat).unwrap();
    // Probes stay answered until, and after, the agent says what is wrong
    // with the file. A probe that stalls on the FIFO would stall for good
    // (nobody ever writes to it): `PATIENCE` only bounds that failure.
    let answered = || {
        let reply = try_probe(agent.addrs[0], PATIENCE);
        assert!(reply.is_ok(), "probe stalled: {reply:?}; {}", agent.log());
    };
    wait_for(&format!("a log line naming {name}"), || {
        answered();
        about(agent.log()) > before
    });
    for _ in 0..10 {
        answered();
    }
}

#[test]
fn config_fifo_is_refused() {
    let dir = TempDir::new("configfifo");
    let fifo = dir.join("hapgent.toml");
    mkfifo(&fifo);
    let out = start_must_exit(&dir, &["--config", fifo.to_str().unwrap()]);
    assert_eq!(out.code, Some(78), "{}", out.stderr);
    assert!(out.stderr.contains("not a regular file"), "{}", out.stderr);
}

#[test]
fn config_dev_zero_is_refused() {
    let dir = TempDir::new("configzero");
    let out = start_must_exit(&dir, &["--config", "/dev/zero"]);
    assert_eq!(out.code, Some(78), "{}", out.stderr);
    assert!(out.stderr.contains("not a regular file"), "{}", out.stderr);
}

// 7. A dangling symlink state file.

#[test]
fn a_dangling_symlink_state_file_creates_its_target() {
    let dir = TempDir::new("dangling");
    let link = dir.join("state.json");
    let target = dir.join("target.json");
    std::os::unix::fs::symlink("target.json", &link).unwrap();
    let agent = Agent::start(&link, &[]);
    agent.signal(libc::SIGUSR2);
    agent.wait_reply("down 100%\n");
    wait_for("target.json created", || {
        saved(&target) == r#"{"status":"DOWN"}"#
    });
    let meta = fs::symlink_metadata(&link).unwrap();
    assert!(meta.file_type().is_symlink(), "the link was replaced");
    assert_eq!(
        fs::read_link(&link).unwrap(),
        Path::new("target.json").to_path_buf()
    );
}

// 8. An agent-send payload over 512 bytes.

#[test]
fn a_payload_over_512_bytes_does_not_reset_the_reply() {
    let dir = TempDir::new("payload");
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"UP"}"#);
    let agent = Agent::start(&path, &[]);
    let payload = vec![b'x'; 4_000];
    for i in 0..200 {
        // The payload is in the socket before the agent accepts it, as
        // with HAProxy's agent-send (sent right after connecting): the
        // agent is stopped while the client connects and sends. (A payload
        // that only arrives after the reply was sent and the socket closed
        // can still be answered by a reset; HAProxy has the line by then.)
        agent.signal(libc::SIGSTOP);
        let mut stream = TcpStream::connect_timeout(&agent.addrs[0], PATIENCE).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream.write_all(&payload).unwrap();
        agent.signal(libc::SIGCONT);
        let mut reply = Vec::new();
        let read = stream.read_to_end(&mut reply);
        assert!(read.is_ok(), "round {i}: {read:?} after {reply:?}");
        assert_eq!(reply, b"up ready 100%\n", "round {i}");
    }
}

// 9. Smaller defects.

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
    let agent = Agent::start(&path, &[]);
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
    let agent = Agent::start(&path, &[]);
    // For a listening socket, ss shows the backlog as Send-Q.
    let out = Command::new("ss")
        .args(["-Hltn", &format!("sport = :{}", agent.port())])
        .output()
        .expect("ss (iproute2) is needed");
    let out = String::from_utf8_lossy(&out.stdout);
    let backlog = out.split_whitespace().nth(2).unwrap_or_default();
    assert_eq!(backlog, somaxconn.trim(), "ss: {out}");
}

#[test]
fn check_config_prints_toml() {
    let (code, out, err) = run(&["check-config"], &[]);
    assert_eq!(code, 0, "{err}");
    let parsed = out.parse::<toml::Table>();
    assert!(parsed.is_ok(), "not TOML: {parsed:?}\n{out}");
    assert!(!out.contains("(unset)"), "{out}");
}

#[test]
fn a_lowercase_environment_key_is_refused() {
    let (code, _, err) = run(&["check-config"], &[("HAPGENT_port", "80")]);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("HAPGENT_port"), "{err}");
}

#[test]
fn an_empty_proc_stat_is_refused() {
    let (code, _, err) = run(&["check-config"], &[("HAPGENT_PROC_STAT", "")]);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("proc_stat"), "{err}");
}

#[test]
fn an_out_of_range_port_names_the_range() {
    let (code, _, err) = run(&["check-config"], &[("HAPGENT_PORT", "70000")]);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("65535"), "{err}");
    assert!(!err.contains("invalid type"), "{err}");
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
    let args = [
        "--ip",
        "127.0.0.1",
        "--port",
        "0",
        "--state-file",
        path.to_str().unwrap(),
        "--control-socket",
        socket.to_str().unwrap(),
    ];
    let mut agent = Agent::launch(hapgent_command(&args, &[]));
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

// 10. The README's in-place edit races with SIGHUP.

#[test]
fn edits_by_mv_are_never_read_half_written() {
    let dir = TempDir::new("mvrace");
    let path = dir.join("state.json");
    let tmp = dir.join("state.json.new");
    write_state(&path, r#"{"status":"UP","weight":60}"#);
    let agent = Agent::start(&path, &[]);
    let addr = agent.addrs[0];
    let stop = Arc::new(AtomicBool::new(false));
    let probes = Arc::new(AtomicUsize::new(0));
    let prober = {
        let (stop, probes) = (Arc::clone(&stop), Arc::clone(&probes));
        std::thread::spawn(move || {
            let mut bad = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let reply = probe(addr);
                probes.fetch_add(1, Ordering::Relaxed);
                if reply.starts_with("fail") {
                    bad.push(reply);
                }
            }
            bad
        })
    };
    for i in 0..500 {
        // The prober thread and this loop probe from one address: the
        // DRAIN reply may reach this loop as its repeat, without the weight.
        let (json, reply) = if i % 2 == 0 {
            (r#"{"status":"DRAIN","weight":40}"#, "up drain")
        } else {
            (r#"{"status":"UP","weight":60}"#, "up ready 60%\n")
        };
        fs::write(&tmp, json).unwrap();
        fs::rename(&tmp, &path).unwrap();
        agent.signal(libc::SIGHUP);
        wait_for("the new state served", || probe(addr).starts_with(reply));
    }
    stop.store(true, Ordering::Relaxed);
    let bad = prober.join().unwrap();
    assert!(probes.load(Ordering::Relaxed) > 0);
    assert!(bad.is_empty(), "{} fail replies: {:?}", bad.len(), bad[0]);
}

#[test]
fn readme_recommends_mv_for_edits() {
    let readme = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for line in readme.lines() {
        assert!(
            !(line.contains("kill -HUP") && line.contains("> ") && line.contains(".json")),
            "README edits the state file in place before SIGHUP: {line}"
        );
    }
    assert!(
        readme
            .lines()
            .any(|l| l.contains("mv ") && l.contains("state.json")),
        "README does not show replacing the state file with mv"
    );
}
