//! The CPU counters file (`--proc-stat`) when it is not what it should
//! be: a FIFO, a device, huge, empty, or swapped for a FIFO while the
//! agent runs. Refused at start, or logged while probes are answered;
//! never read without bound.

use crate::inject::*;
use crate::util::*;
use std::fs;
use std::time::{Duration, Instant};

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
    let mut agent = Agent::builder()
        .state(&path)
        .args(&[
            "--cpu-weight",
            "--timeframe",
            "100",
            "--proc-stat",
            stat.to_str().unwrap(),
        ])
        .memory_limit(1 << 30)
        .launch();
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

#[test]
fn proc_stat_swapped_for_a_fifo_does_not_stall_probes() {
    let dir = TempDir::new("statswap");
    let path = dir.join("state.json");
    let stat = dir.join("stat");
    write_state(&path, r#"{"status":"UP"}"#);
    fs::write(&stat, proc_stat(1000, 1000)).unwrap();
    let name = stat.to_str().unwrap();
    let agent = Agent::builder()
        .state(&path)
        .args(&["--cpu-weight", "--timeframe", "100", "--proc-stat", name])
        .start();
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
fn an_empty_proc_stat_is_refused() {
    let (code, _, err) = Agent::builder()
        .args(&["check-config"])
        .env("HAPGENT_PROC_STAT", "")
        .run();
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("proc_stat"), "{err}");
}
