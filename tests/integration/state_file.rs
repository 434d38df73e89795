//! Reading the state file: bad, missing and oversized files are FAIL with
//! one clear log line and the file left exactly as it was; a read error
//! keeps the last good state; a dangling symlink's target is created; an
//! edit by `mv` is never read half written.

use crate::inject::*;
use crate::util::*;
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

#[test]
fn unusable_files_report_fail_and_are_left_alone() {
    let oversized = format!(
        "{{\"status\":\"UP\",\"description\":\"{}\"}}",
        "x".repeat(10_000)
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("malformed", b"{\"status\":".to_vec(), "is not valid JSON"),
        (
            "unknown-status",
            b"{\"status\":\"failed\"}".to_vec(),
            "unknown status \"failed\"",
        ),
        (
            "unknown-field",
            b"{\"status\":\"UP\",\"wieght\":5}".to_vec(),
            "unknown field \"wieght\"",
        ),
        (
            "out-of-range",
            b"{\"status\":\"UP\",\"weight\":256}".to_vec(),
            "field \"weight\" is 256",
        ),
        (
            "wrong-type",
            b"{\"status\":\"UP\",\"maxconn\":\"5\"}".to_vec(),
            "field \"maxconn\" must be a whole number",
        ),
        (
            "not-utf8",
            b"{\"status\":\"\xff\"}".to_vec(),
            "is not valid UTF-8",
        ),
        (
            "oversized",
            oversized.into_bytes(),
            "is larger than 4096 bytes",
        ),
        ("empty", Vec::new(), "is not valid JSON"),
        (
            "duplicate",
            b"{\"status\":\"DOWN\",\"status\":\"UP\"}".to_vec(),
            "has the field \"status\" more than once",
        ),
        (
            "deeply-nested",
            format!(
                "{{\"status\":\"UP\",\"description\":{}{}}}",
                "[".repeat(120),
                "]".repeat(120)
            )
            .into_bytes(),
            "field \"description\" must be a string",
        ),
    ];
    for (name, bytes, problem) in cases {
        let dir = TempDir::new(name);
        let path = dir.join("state.json");
        fs::write(&path, &bytes).unwrap();
        let agent = Agent::builder().state(&path).start();
        assert_eq!(agent.probe(), "fail 100%\n", "{name}");
        let line = agent.wait_log("reporting FAIL");
        assert!(line.contains(path.to_str().unwrap()), "{name}: {line}");
        assert!(line.contains(problem), "{name}: {line}");
        assert_eq!(
            agent.log().lines().count(),
            2,
            "{name}: one line for the problem:\n{}",
            agent.log()
        );
        assert_eq!(
            fs::read(&path).unwrap(),
            bytes,
            "{name}: the file was changed"
        );
    }
}

#[test]
fn missing_file_reports_fail() {
    let dir = TempDir::new("missing");
    let path = dir.join("state.json");
    let agent = Agent::builder().state(&path).start();
    assert_eq!(agent.probe(), "fail 100%\n");
    assert!(agent.wait_log("reporting FAIL").contains("does not exist"));
    assert!(
        !path.exists(),
        "a missing file must not be created until told"
    );
}

#[test]
fn bad_file_on_hup_means_fail_until_told_otherwise() {
    let dir = TempDir::new("badhup");
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"UP","weight":40}"#);
    let agent = Agent::builder().state(&path).start();
    assert_eq!(agent.probe(), "up ready 40%\n");
    write_state(&path, "{\"status\":\"UP\",");
    agent.signal(libc::SIGHUP);
    agent.wait_reply("fail 100%\n");
    assert_eq!(fs::read_to_string(&path).unwrap(), "{\"status\":\"UP\",");
    // Told to change state: the bad file is replaced by a good one.
    agent.signal(libc::SIGUSR1);
    agent.wait_reply("up ready 100%\n");
    wait_for("saved", || {
        fs::read_to_string(&path).unwrap() == "{\"status\":\"UP\"}\n"
    });
}

/// Nesting that would exhaust a small stack, read on SIGHUP (on the disk
/// thread): the agent reports FAIL and keeps running.
#[test]
fn deeply_nested_file_on_hup_is_survived() {
    let dir = TempDir::new("nested");
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"UP"}"#);
    let agent = Agent::builder().state(&path).start();
    for depth in [100, 127, 5000] {
        let text = format!(
            "{{\"status\":\"UP\",\"weight\":{}1{}}}",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        fs::write(&path, text).unwrap();
        agent.signal(libc::SIGHUP);
        agent.wait_reply("fail 100%\n");
        write_state(&path, r#"{"status":"UP"}"#);
        agent.signal(libc::SIGHUP);
        agent.wait_reply("up ready 100%\n");
    }
}

/// A FIFO in place of the state file would block a read forever: it is
/// refused at once, at start and on SIGHUP, and SIGTERM still works.
#[test]
fn a_fifo_in_place_of_the_state_file_does_not_hang() {
    let dir = TempDir::new("fifo");
    let path = dir.join("state.json");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap()
            .success()
    );
    let mut agent = Agent::builder().state(&path).start();
    assert_eq!(agent.probe(), "fail 100%\n");
    assert!(
        agent
            .wait_log("reporting FAIL")
            .contains("is not a regular file")
    );
    agent.signal(libc::SIGHUP);
    agent.wait_log_count("is not a regular file", 2);
    agent.signal(libc::SIGTERM);
    assert_eq!(agent.wait_exit().and_then(|s| s.code()), Some(0));
}

#[test]
fn a_read_error_keeps_the_last_good_state() {
    let dir = TempDir::new("readerror");
    let path = dir.join("state.json");
    let full = r#"{"status":"DRAIN","weight":30,"maxconn":7,"description":"x"}"#;
    write_state(&path, full);
    let agent = Agent::builder().state(&path).start();
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
    let agent = Agent::builder().state(&path).start();
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

#[test]
fn a_dangling_symlink_state_file_creates_its_target() {
    let dir = TempDir::new("dangling");
    let link = dir.join("state.json");
    let target = dir.join("target.json");
    std::os::unix::fs::symlink("target.json", &link).unwrap();
    let agent = Agent::builder().state(&link).start();
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

#[test]
fn edits_by_mv_are_never_read_half_written() {
    let dir = TempDir::new("mvrace");
    let path = dir.join("state.json");
    let tmp = dir.join("state.json.new");
    write_state(&path, r#"{"status":"UP","weight":60}"#);
    let agent = Agent::builder().state(&path).start();
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
