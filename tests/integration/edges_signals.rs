//! The edges of signals, changes, replies, output and messages: the order
//! of signals pending at once, what counts as a change, closed pipes, and
//! the wording of a few messages.

use crate::util::*;
use std::fs;

/// `hapgent ctl metrics` for the agent: the Prometheus text.
fn metrics(agent: &Agent) -> String {
    let (code, out, err) = agent.ctl(&["metrics"]);
    assert_eq!(code, 0, "{out}{err}");
    out
}

/// The value of the metric line that starts with `name{labels}`.
fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

/// Many SIGUSR1 and then one SIGUSR2, sent back to back by one sender:
/// whenever both are pending at once they are handled one at a time,
/// SIGUSR1 (the lower number) first, so the server always ends DOWN.
#[test]
fn many_usr1_then_usr2_from_one_sender_ends_down() {
    let dir = TempDir::new("usr-order");
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"UP"}"#);
    let notify = Notify::bind(&dir);
    let agent = Agent::builder().state(&path).envs(&[notify.env()]).start();
    notify.next(); // READY=1 at startup
    for round in 0..5 {
        for _ in 0..1000 {
            assert_eq!(unsafe { libc::kill(agent.pid(), libc::SIGUSR1) }, 0);
        }
        assert_eq!(unsafe { libc::kill(agent.pid(), libc::SIGUSR2) }, 0);
        wait_signals_handled(&agent, &notify);
        assert_eq!(
            agent.probe(),
            "down 100%\n",
            "round {round}: {}",
            agent.log()
        );
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "{\"status\":\"DOWN\"}\n"
        );
        // Back to UP for the next round.
        send_taken(agent.pid(), libc::SIGUSR1);
        agent.wait_reply("up ready 100%\n");
    }
}

/// A signal or SIGHUP that changes nothing is no change: the version and
/// `hapgent_state_changes_total` stay, and the log says so; a real change
/// still counts once.
#[test]
fn signals_and_reloads_that_change_nothing_are_not_changes() {
    let dir = TempDir::new("noop");
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"UP","weight":40}"#);
    let notify = Notify::bind(&dir);
    let agent = Agent::builder().state(&path).envs(&[notify.env()]).start();
    notify.next();
    let version = || ctl_status(&agent)["version"].as_u64().unwrap();
    let changes = |cause: &str| {
        metric(
            &metrics(&agent),
            &format!("hapgent_state_changes_total{{service=\"default\",cause=\"{cause}\"}}"),
        )
    };
    let start = version();

    send_taken(agent.pid(), libc::SIGUSR1);
    agent.wait_log("state unchanged: UP weight=40 (SIGUSR1)");
    for _ in 0..3 {
        agent.signal(libc::SIGHUP);
        notify.wait_reloaded();
    }
    agent.wait_log_count("state unchanged: UP weight=40 (SIGHUP)", 3);
    assert_eq!(version(), start, "{}", agent.log());
    assert_eq!(changes("signal"), 0);
    assert_eq!(changes("file"), 0);
    assert!(!agent.log().contains("state changed"), "{}", agent.log());

    // ctl asking for the state already served: no change either.
    let (code, out, err) = agent.ctl(&["weight", "40"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(version(), start);
    assert_eq!(changes("ctl"), 0);

    // A real change is one version and one count.
    agent.signal(libc::SIGUSR2);
    agent.wait_reply("down 40%\n");
    assert_eq!(version(), start + 1);
    assert_eq!(changes("signal"), 1);
    // Edit the file once the change is in it (see the README).
    wait_for("DOWN saved", || {
        fs::read_to_string(&path).unwrap_or_default() == "{\"status\":\"DOWN\",\"weight\":40}\n"
    });
    write_state(&path, r#"{"status":"DOWN","weight":30}"#);
    agent.signal(libc::SIGHUP);
    notify.wait_reloaded();
    assert_eq!(version(), start + 2);
    assert_eq!(changes("file"), 1);
}

/// Runs `cmd` with stdout a pipe whose reading end is already closed:
/// every write to it fails with EPIPE, whatever the timing.
fn with_stdout_closed(mut cmd: std::process::Command) -> std::process::Output {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: pipe2 just returned these two descriptors, owned by no one.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    cmd.stdout(std::process::Stdio::from(write))
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap()
}

fn assert_quiet(what: &str, out: &std::process::Output) {
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).as_ref()
        ),
        (Some(0), ""),
        "{what}"
    );
}

/// Every command that prints ends quietly when stdout is closed: exit 0,
/// nothing on stderr, no panic.
#[test]
fn every_printing_command_ends_quietly_when_stdout_closes() {
    let dir = TempDir::new("closed");
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"UP"}"#);
    let agent = Agent::builder().state(&path).start();
    agent.probe();
    let state = path.to_str().unwrap();
    for args in [
        &["--help"][..],
        &["--version"],
        &["check-config", "--state-file", state],
        &["reply", "--state-file", state],
        &["reply", "--json", "--state-file", state],
    ] {
        assert_quiet(
            &format!("{args:?}"),
            &with_stdout_closed(Agent::builder().args(args).command()),
        );
    }
    let socket = agent.control_socket();
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["probers"],
        &["probers", "--json"],
        &["metrics"],
        &["up"],
        &["up", "--json"],
    ] {
        let mut all = vec!["ctl", "--control-socket", socket.to_str().unwrap()];
        all.extend_from_slice(args);
        assert_quiet(
            &format!("ctl {args:?}"),
            &with_stdout_closed(Agent::builder().args(&all).command()),
        );
    }
}

/// A closed stdout stops the printing, not the command: a change with
/// `--wait-seen` (or a `wait-seen`) still waits and its exit code is still
/// its answer. Nobody probes here, so the wait fails with 75; ending with
/// 0 at the first line printed would tell a deploy script that every load
/// balancer has seen the change.
#[test]
fn a_closed_stdout_does_not_turn_a_failed_wait_into_success() {
    let dir = TempDir::new("closedwait");
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"UP"}"#);
    let agent = Agent::builder().state(&path).start();
    let socket = agent.control_socket();
    for args in [
        &["drain", "--wait-seen", "--timeout", "1s"][..],
        &["drain", "--wait-seen", "--timeout", "1s", "--json"],
        &["wait-seen", "--timeout", "1s"],
    ] {
        let mut all = vec!["ctl", "--control-socket", socket.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = with_stdout_closed(Agent::builder().args(&all).command());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(75), "ctl {args:?}: {stderr}");
        assert!(
            stderr.contains("no load balancer is probing"),
            "ctl {args:?}: {stderr}"
        );
    }
}

/// The case as an operator meets it: a large output (2,000 services)
/// into `head -1`, which reads one line and closes the pipe.
#[test]
fn large_outputs_into_head_end_quietly() {
    let dir = TempDir::new("head");
    let mut config = String::new();
    for i in 0..2000 {
        config.push_str(&format!(
            "[services.s{i}]\nstate_file = {:?}\n",
            dir.join(&format!("s{i}.json"))
        ));
    }
    let config_file = dir.join("hapgent.toml");
    fs::write(&config_file, config).unwrap();
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"UP"}"#);
    let agent = Agent::builder()
        .state(&path)
        .args(&["--config", config_file.to_str().unwrap()])
        .start();
    let hapgent = env!("CARGO_BIN_EXE_hapgent");
    let config = config_file.to_str().unwrap();
    let socket = agent.control_socket();
    let socket = socket.to_str().unwrap();
    for args in [
        vec!["--config", config, "check-config"],
        vec!["ctl", "--control-socket", socket, "metrics"],
        vec!["ctl", "--control-socket", socket, "status"],
    ] {
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg("set -o pipefail; \"$@\" | head -1")
            .arg("bash")
            .arg(hapgent)
            .args(&args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HAPGENT_CONTROL_SOCKET", "")
            .output()
            .unwrap();
        assert_quiet(&format!("{args:?} | head -1"), &out);
        assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    }
}

/// HAProxy's log lines (its `log stderr` target) containing `text`.
fn haproxy_logged(dir: &TempDir, text: &str) -> usize {
    fs::read_to_string(dir.join("haproxy.err"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with('<') && l.contains(text))
        .count()
}

/// The replies hapgent logged (`--log-requests`), in order.
fn replies_logged(agent: &Agent) -> Vec<String> {
    agent
        .log()
        .lines()
        .filter_map(|l| {
            Some(
                l.split_once("probe from ")?
                    .1
                    .split_once(": ")?
                    .1
                    .to_string(),
            )
        })
        .collect()
}

/// A drained server probed over and over makes HAProxy log nothing: the
/// reply that drains it is complete (weight, maxconn, description), and
/// its repeats leave out the weight, which HAProxy 2.6 answers with
/// "remains in forced drain mode" on every probe. A change while drained
/// is sent whole again, once.
#[test]
fn haproxy_logs_nothing_while_a_drained_server_is_probed() {
    use crate::haproxy::{Haproxy, UP};
    const NOISE: &str = "remains in forced drain mode";
    let dir = TempDir::new("haproxy-quiet");
    let path = dir.join("state.json");
    write_state(
        &path,
        r#"{"status":"DRAIN","weight":50,"maxconn":30,"description":"deploying"}"#,
    );
    let agent = Agent::builder()
        .state(&path)
        .args(&["--log-requests"])
        .start();
    // Only HAProxy probes: a probe from this test would come from the same
    // address, and so count as the same prober.
    let Some(haproxy) = Haproxy::start(&dir, agent.port(), "") else {
        return;
    };
    haproxy.wait_for(
        "drained at 50%",
        &[
            ("srv_op_state", UP),
            ("srv_admin_state", "8"),
            ("srv_uweight", "50"),
            ("stat.slim", "30"),
            ("stat.last_agt", "~deploying"),
        ],
    );
    let full = "up drain 50% maxconn:30 # deploying";
    let repeat = "up drain maxconn:30 # deploying";
    let seen = replies_logged(&agent).len();
    agent.wait_log_count("probe from ", seen + 20);
    // The one complete reply may be logged once (2.6 applies `drain` and
    // then the weight), the 20 repeats not at all.
    let noise = haproxy_logged(&dir, NOISE);
    assert!(noise <= 1, "HAProxy logged {NOISE:?} {noise} times");
    let replies = replies_logged(&agent);
    assert_eq!(replies[0], full);
    assert!(replies[1..].iter().all(|r| r == repeat), "{replies:#?}");

    // A change while drained is complete again: HAProxy applies the new
    // weight; then quiet again.
    let (code, out, err) = agent.ctl(&["weight", "30"]);
    assert_eq!(code, 0, "{out}{err}");
    haproxy.wait_for(
        "drained at 30%",
        &[("srv_admin_state", "8"), ("srv_uweight", "30")],
    );
    let seen = replies_logged(&agent).len();
    agent.wait_log_count("probe from ", seen + 20);
    let replies = replies_logged(&agent);
    let changed = "up drain 30% maxconn:30 # deploying";
    assert_eq!(
        replies.iter().filter(|r| *r == changed).count(),
        1,
        "{replies:#?}"
    );
    let noise = haproxy_logged(&dir, NOISE);
    assert!(noise <= 2, "HAProxy logged {NOISE:?} {noise} times");

    // Leaving the drain is a change, sent whole: weight included.
    let (code, out, err) = agent.ctl(&["ready"]);
    assert_eq!(code, 0, "{out}{err}");
    haproxy.wait_for(
        "ready at 30%",
        &[("srv_admin_state", "0"), ("srv_uweight", "30")],
    );
}

/// With `cpu_weight`, a drained server's weight follows the load at
/// every sample; HAProxy is not told, since a weight sent while drained
/// only makes it log "remains in forced drain mode": the drain is sent
/// whole once, then repeated, whatever the load does.
#[test]
fn haproxy_logs_nothing_while_a_drained_servers_load_changes() {
    use crate::haproxy::{Haproxy, UP};
    const NOISE: &str = "remains in forced drain mode";
    let dir = TempDir::new("haproxy-quiet-cpu");
    let path = dir.join("state.json");
    let stat = dir.join("stat");
    let counters = |user: u64, idle: u64| format!("cpu  {user} 0 0 {idle} 0 0 0 0 0 0\n");
    replace_file(&stat, &counters(1000, 1000));
    write_state(&path, r#"{"status":"DRAIN"}"#);
    let agent = Agent::builder()
        .state(&path)
        .args(&[
            "--log-requests",
            "--cpu-weight",
            "--timeframe",
            "200",
            "--proc-stat",
            stat.to_str().unwrap(),
        ])
        .start();
    let Some(haproxy) = Haproxy::start(&dir, agent.port(), "") else {
        return;
    };
    haproxy.wait_for("drained", &[("srv_op_state", UP), ("srv_admin_state", "8")]);
    let (mut user, mut idle) = (1000, 1000);
    for busy in [10, 30, 50, 70] {
        user += busy;
        idle += 100 - busy;
        replace_file(&stat, &counters(user, idle));
        let want = format!("reply:   up drain {}%", 100 - busy);
        wait_for(&want, || agent.ctl(&["status"]).1.contains(&want));
        let seen = replies_logged(&agent).len();
        agent.wait_log_count("probe from ", seen + 3);
    }
    let replies = replies_logged(&agent);
    assert!(replies[1..].iter().all(|r| r == "up drain"), "{replies:#?}");
    let noise = haproxy_logged(&dir, NOISE);
    assert!(noise <= 1, "HAProxy logged {NOISE:?} {noise} times");
}

/// Non-ASCII line and paragraph separators and NEL in a description are
/// marked with `?` in the reply, like any other non-ASCII character, not
/// dropped as if they were spaces.
#[test]
fn unicode_separators_in_a_description_become_question_marks() {
    let dir = TempDir::new("separators");
    let path = dir.join("state.json");
    write_state(
        &path,
        "{\"status\":\"UP\",\"description\":\"\u{2028}a\u{2028}b\u{2029}c\u{85}d\\te\u{85}\"}",
    );
    let agent = Agent::builder().state(&path).start();
    assert_eq!(agent.probe(), "up ready 100% # ?a?b?c?d e?\n");
}

/// A description too large for the state file is refused by saying so,
/// and what to do, not as a state file "larger than 4096 bytes".
#[test]
fn a_huge_description_is_refused_by_name() {
    let dir = TempDir::new("bigdesc");
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"UP"}"#);
    let agent = Agent::builder().state(&path).start();
    let big = "d".repeat(5000);
    let (code, out, err) = agent.ctl(&["description", &big]);
    assert_eq!(code, 64, "{out}{err}");
    assert!(
        err.contains("would take 5033 bytes in the state file, over its limit of 4096; its description is 5000 bytes: shorten it"),
        "{err}"
    );
    assert!(!err.contains("not a state file"), "{err}");
}

/// "after 1 failed attempt": the count of failed saves reads right.
#[test]
fn a_save_that_works_on_the_second_attempt_says_so_in_words() {
    let dir = TempDir::new("second");
    // The directory does not exist yet: the first save fails.
    let path = dir.join("later/state.json");
    let agent = Agent::builder().state(&path).start();
    agent.signal(libc::SIGUSR1);
    agent.wait_log("cannot save the state to");
    fs::create_dir(dir.join("later")).unwrap();
    let line = agent.wait_log("saved the state to");
    let n: u32 = line
        .split(" after ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line:?}"));
    let want = if n == 1 {
        "after 1 failed attempt".to_string()
    } else {
        format!("after {n} failed attempts")
    };
    assert!(line.ends_with(&want), "{line:?}");
}

/// A stop while the disk hangs says how long it waited in seconds as a
/// person writes them, not as "1.999999964s".
#[test]
fn a_stop_on_a_hung_disk_names_the_wait_plainly() {
    let dir = TempDir::new("hungstop");
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"UP"}"#);
    // Every fsync hangs for 300 s.
    let agent = Agent::builder()
        .strace(&[
            "-e",
            "trace=fsync,fdatasync",
            "-e",
            "inject=fsync,fdatasync:delay_enter=300000000",
        ])
        .state(&path)
        .start();
    agent.signal(libc::SIGUSR2);
    agent.wait_log("(SIGUSR2)");
    agent.signal(libc::SIGTERM);
    let line = agent.wait_log("did not finish within");
    let shown = line
        .split("did not finish within the ")
        .nth(1)
        .and_then(|rest| rest.split(" s left before stopping").next())
        .unwrap_or_else(|| panic!("{line:?}"));
    // One decimal: "2.0", "1.9".
    let (whole, tenths) = shown.split_once('.').unwrap_or_else(|| panic!("{line:?}"));
    assert!(
        whole.parse::<u32>().is_ok() && tenths.len() == 1 && tenths.parse::<u32>().is_ok(),
        "{line:?}"
    );
}
