//! Signals: USR1/USR2 change and save the status, HUP re-reads, TERM stops.

use crate::util::*;
use std::fs;

#[test]
fn usr2_then_usr1_change_the_reply_and_the_file() {
    let dir = TempDir::new("usr");
    let path = dir.join("state.json");
    write_state(
        &path,
        r#"{"status":"DRAIN","weight":50,"maxconn":30,"description":"canary"}"#,
    );
    let agent = Agent::start(&path, &[]);
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
    let agent = Agent::start(&path, &[]);
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
    let mut agent = Agent::start(&path, &[]);
    agent.signal(libc::SIGUSR2);
    agent.wait_reply("down 80%\n");
    agent.signal(libc::SIGTERM);
    assert_eq!(agent.wait_exit().and_then(|s| s.code()), Some(0));
    let again = Agent::start(&path, &[]);
    assert_eq!(again.probe(), "down 80%\n");
}

#[test]
fn term_and_int_exit_zero() {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let dir = TempDir::new("term");
        let path = dir.join("state.json");
        write_state(&path, r#"{"status":"UP"}"#);
        let mut agent = Agent::start(&path, &[]);
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
    let agent = Agent::start(&path, &[]);
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
    let agent = Agent::start(&path, &[]);
    assert_eq!(agent.probe(), "fail 100%\n");
    agent.signal(libc::SIGUSR1);
    agent.wait_reply("up ready 100%\n");
    let line = agent.wait_log("cannot save the state to");
    assert!(line.contains("missing-dir/state.json"), "{line}");
    assert_eq!(agent.probe(), "up ready 100%\n");
}
