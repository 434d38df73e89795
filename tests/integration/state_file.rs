//! Bad, missing and oversized state files: FAIL, one clear log line, and
//! the file left exactly as it was.

use crate::util::*;
use std::fs;

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
        let agent = Agent::start(&path, &[]);
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
    let agent = Agent::start(&path, &[]);
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
    let agent = Agent::start(&path, &[]);
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
    let agent = Agent::start(&path, &[]);
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
    let mut agent = Agent::start(&path, &[]);
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
