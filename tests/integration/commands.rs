//! Command line, configuration and startup failures: exit codes and the
//! one line that explains them.

use crate::inject::*;
use crate::util::*;
use std::fs;
use std::net::TcpListener;

#[test]
fn help_and_version() {
    let (code, out, _) = Agent::builder().args(&["--help"]).run();
    assert_eq!(code, 0);
    assert!(
        out.contains("Usage: hapgent") && out.contains("--state-file"),
        "{out}"
    );
    let (code, out, _) = Agent::builder().args(&["--version"]).run();
    assert_eq!(code, 0);
    assert_eq!(out, format!("hapgent {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn usage_errors_exit_64() {
    for (args, message) in [
        (&["--bogus"][..], "unknown option --bogus"),
        (&["--port"][..], "missing argument for option '--port'"),
        (&["serve"][..], "unknown command \"serve\""),
    ] {
        let (code, out, err) = Agent::builder().args(args).run();
        assert_eq!(code, 64, "{args:?}: {err}");
        assert!(out.is_empty());
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(message), "{args:?}: {err}");
    }
}

#[test]
fn configuration_errors_exit_78_naming_key_and_source() {
    let dir = TempDir::new("badcfg");
    let cfg = dir.join("hapgent.toml");
    fs::write(&cfg, "port = 9777\nstate_flie = \"/x\"\n").unwrap();
    let cfg_arg = cfg.to_str().unwrap();
    // (flags, environment, expected part of the message)
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, String);
    let cases: Vec<Case> = vec![
        (
            vec!["--config", cfg_arg],
            vec![],
            format!("unknown key \"state_flie\" from file {cfg_arg}"),
        ),
        (
            vec!["--config", "/nonexistent.toml"],
            vec![],
            "configuration file /nonexistent.toml does not exist".into(),
        ),
        (
            vec![],
            vec![("HAPGENT_PORT", "http")],
            "port from env HAPGENT_PORT".into(),
        ),
        (
            vec!["--port", "99999"],
            vec![],
            "port from flag --port".into(),
        ),
        (
            vec!["--ip", "localhost"],
            vec![],
            "\"localhost\" is not an IP address".into(),
        ),
        (
            vec![],
            vec![("HAPGENT_MAX_CONNECTIONS", "0")],
            "max_connections from env HAPGENT_MAX_CONNECTIONS".into(),
        ),
    ];
    for (args, env, message) in cases {
        for command in [None, Some("check-config")] {
            let mut all: Vec<&str> = command.into_iter().collect();
            all.extend(&args);
            let (code, _, err) = Agent::builder().args(&all).envs(&env).run();
            assert_eq!(code, 78, "{all:?} {env:?}: {err}");
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(err.contains(&message), "{all:?} {env:?}: {err}");
        }
    }
}

#[test]
fn check_config_prints_each_value_and_its_source() {
    let dir = TempDir::new("check");
    let cfg = dir.join("hapgent.toml");
    fs::write(&cfg, "port = 9100\nip = [\"127.0.0.1\", \"::1\"]\n").unwrap();
    let (code, out, err) = Agent::builder()
        .args(&[
            "check-config",
            "--config",
            cfg.to_str().unwrap(),
            "--log-requests",
        ])
        .env("HAPGENT_STATE_FILE", "/srv/state.json")
        .run();
    assert_eq!(code, 0, "{err}");
    let line = |key: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("{key}: {out}"))
    };
    let file = format!("# file {}", cfg.display());
    assert!(
        line("port").starts_with("port = 9100 ") && line("port").ends_with(&file),
        "{out}"
    );
    assert!(
        line("ip").starts_with("ip = [\"127.0.0.1\",\"::1\"]") && line("ip").ends_with(&file),
        "{out}"
    );
    assert!(
        line("state_file").ends_with("# env HAPGENT_STATE_FILE"),
        "{out}"
    );
    assert!(
        line("log_requests").starts_with("log_requests = true")
            && line("log_requests").ends_with("# flag --log-requests"),
        "{out}"
    );
    assert!(line("write_timeout").ends_with("# default"), "{out}");
}

#[test]
fn port_in_use_exits_1_with_one_line() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (code, _, err) = Agent::builder()
        .args(&[
            "--ip",
            "127.0.0.1",
            "--port",
            &port,
            "--state-file",
            "/nonexistent/s.json",
        ])
        .run();
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
    assert!(err.contains("is hapgent already running?"), "{err}");
}

#[test]
fn address_not_on_this_host_exits_1() {
    // TEST-NET-1 is never assigned to a local interface; nothing is sent.
    let (code, _, err) = Agent::builder()
        .args(&["--ip", "192.0.2.1", "--port", "0"])
        .run();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot listen on 192.0.2.1:0"), "{err}");
}

#[test]
fn hapgent_environment_variables_and_several_addresses() {
    let dir = TempDir::new("env");
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"DRAIN","weight":5}"#);
    let agent = Agent::builder()
        .envs(&[
            ("HAPGENT_IP", "127.0.0.1,::1"),
            ("HAPGENT_PORT", "0"),
            ("HAPGENT_STATE_FILE", path.to_str().unwrap()),
        ])
        .start();
    assert_eq!(agent.addrs.len(), 2, "{}", agent.log());
    assert!(agent.addrs[0].is_ipv4() && agent.addrs[1].is_ipv6());
    for addr in &agent.addrs {
        assert_eq!(probe(*addr), "up drain 5%\n", "{addr}");
    }
}

#[test]
fn journald_lines_carry_priorities_and_no_timestamps() {
    let dir = TempDir::new("journal");
    let path = dir.join("state.json");
    let agent = Agent::builder()
        .state(&path)
        .env("JOURNAL_STREAM", "8:1234")
        .start();
    let log = agent.log();
    let first = log
        .lines()
        .find(|l| l.contains("reporting FAIL"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(first.starts_with("<3>state file "), "{first}");
    assert!(
        agent.wait_log("listening on").starts_with("<6>hapgent "),
        "{log}"
    );
}

#[test]
fn log_requests_logs_peer_and_reply() {
    let dir = TempDir::new("logreq");
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"UP"}"#);
    let quiet = Agent::builder().state(&path).start();
    quiet.probe();
    let loud = Agent::builder()
        .state(&path)
        .args(&["--log-requests"])
        .start();
    loud.probe();
    let line = loud.wait_log("probe from 127.0.0.1:");
    assert!(line.ends_with(": up ready 100%"), "{line}");
    // A probe is logged before its reply is sent, and lines keep their
    // order: once a line about a later event (a SIGHUP re-read) is in,
    // a line about the probe would be too.
    quiet.signal(libc::SIGHUP);
    quiet.wait_log("(SIGHUP)");
    assert!(!quiet.log().contains("probe from"), "{}", quiet.log());
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

#[test]
fn check_config_prints_toml() {
    let (code, out, err) = Agent::builder().args(&["check-config"]).run();
    assert_eq!(code, 0, "{err}");
    let parsed = out.parse::<toml::Table>();
    assert!(parsed.is_ok(), "not TOML: {parsed:?}\n{out}");
    assert!(!out.contains("(unset)"), "{out}");
}

#[test]
fn a_lowercase_environment_key_is_refused() {
    let (code, _, err) = Agent::builder()
        .args(&["check-config"])
        .env("HAPGENT_port", "80")
        .run();
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("HAPGENT_port"), "{err}");
}

#[test]
fn an_out_of_range_port_names_the_range() {
    let (code, _, err) = Agent::builder()
        .args(&["check-config"])
        .env("HAPGENT_PORT", "70000")
        .run();
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("65535"), "{err}");
    assert!(!err.contains("invalid type"), "{err}");
}
