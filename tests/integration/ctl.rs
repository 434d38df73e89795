//! `hapgent ctl` against the real agent over its control socket: every
//! command and exit code, authorization, hostile clients, and errors.

use crate::util::*;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::time::Duration;

fn file(path: &std::path::Path) -> String {
    fs::read_to_string(path).unwrap()
}

#[test]
fn every_command_changes_serves_and_saves() {
    let dir = TempDir::new("ctl-commands");
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"UP","weight":40}"#);
    let agent = Agent::builder().state(&path).start();

    let (code, out, err) = agent.ctl(&["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("state:   UP weight=40 (version 0)"), "{out}");
    assert!(out.contains("reply:   up ready 40%"), "{out}");

    // (command line, reply, file)
    let steps: &[(&[&str], &str, &str)] = &[
        (
            &["drain"],
            "up drain 40%\n",
            r#"{"status":"DRAIN","weight":40}"#,
        ),
        (
            &["maint"],
            "maint 40%\n",
            r#"{"status":"MAINT","weight":40}"#,
        ),
        (&["down"], "down 40%\n", r#"{"status":"DOWN","weight":40}"#),
        (
            &["ready"],
            "up ready 40%\n",
            r#"{"status":"READY","weight":40}"#,
        ),
        (&["up"], "up ready 40%\n", r#"{"status":"UP","weight":40}"#),
        (
            &["weight", "75"],
            "up ready 75%\n",
            r#"{"status":"UP","weight":75}"#,
        ),
        (&["weight", "none"], "up ready 100%\n", r#"{"status":"UP"}"#),
        (
            &["maxconn", "300"],
            "up ready 100% maxconn:300\n",
            r#"{"status":"UP","maxconn":300}"#,
        ),
        (
            &["description", "deploying v2"],
            "up ready 100% maxconn:300 # deploying v2\n",
            r#"{"status":"UP","maxconn":300,"description":"deploying v2"}"#,
        ),
        (
            &[
                "set",
                "--status",
                "drain",
                "--weight",
                "10",
                "--maxconn",
                "none",
                "--description",
                "none",
            ],
            "up drain 10%\n",
            r#"{"status":"DRAIN","weight":10}"#,
        ),
    ];
    let mut answered_saved = 0;
    for (i, (args, reply, saved)) in steps.iter().enumerate() {
        let (code, out, err) = agent.ctl(args);
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        // The answer comes once the change is served, and says whether it
        // is saved yet (it waits a few seconds for the disk); either way
        // it tells the truth.
        assert!(
            out.contains(&format!("(version {})", i + 1)),
            "{args:?}: {out}"
        );
        assert_eq!(agent.probe(), *reply, "{args:?}");
        let want = format!("{saved}\n");
        if out.contains("NOT YET SAVED") {
            wait_for("the change saved", || file(&path) == want);
        } else {
            answered_saved += 1;
            assert_eq!(file(&path), want, "{args:?}");
        }
    }
    // A disk slower than the answer's wait, every time, would be a
    // broken machine; an agent that never waits, a bug.
    assert!(answered_saved > 0, "no answer waited for the save");
    let log = agent.log();
    assert!(
        log.contains("(ctl by uid 0 (root) pid "),
        "changes are logged with their cause:\n{log}"
    );

    // --json answers are the protocol's objects. (The agent marks the
    // state saved once the save it saw through is done.)
    wait_for("the last change marked saved", || {
        ctl_status(&agent)["saved"] == true
    });
    let v = ctl_status(&agent);
    assert_eq!(v["ok"], true);
    assert_eq!(v["version"], steps.len());
    assert_eq!(v["state"]["status"], "DRAIN");
    assert_eq!(v["reply"], "up drain 10%");
    assert_eq!(v["saved"], true);
}

#[test]
fn bad_changes_are_refused_and_change_nothing() {
    let dir = TempDir::new("ctl-bad");
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"UP","weight":40}"#);
    let agent = Agent::builder().state(&path).start();
    // (command line, exit code, message)
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["weight", "300"],
            64,
            "field \"weight\" is 300, outside the range 0-255",
        ),
        (&["weight", "lots"], 64, "not a whole number"),
        (&["maxconn", "70000"], 64, "outside the range 0-65535"),
        (&["weight"], 64, "needs a value"),
        (&["reboot"], 64, "unknown ctl command \"reboot\""),
        (&[], 64, "needs a command"),
        (&["set", "--weight", "5"], 64, "set needs --status"),
        (
            &["set", "--status", "sideways"],
            64,
            "unknown status \"sideways\"",
        ),
        (
            &["status", "--wait-seen"],
            64,
            "--wait-seen goes with a command that changes",
        ),
        (&["drain", "--timeout", "soon"], 64, "not a duration"),
    ];
    for (args, want_code, message) in cases {
        let (code, out, err) = agent.ctl(args);
        assert_eq!(code, *want_code, "{args:?}: {out}{err}");
        assert!(err.contains(message), "{args:?}: {err}");
    }
    assert_eq!(agent.probe(), "up ready 40%\n");
    assert_eq!(file(&path), r#"{"status":"UP","weight":40}"#);
}

#[test]
fn no_agent_means_69_and_names_the_socket() {
    let dir = TempDir::new("ctl-absent");
    let socket = dir.join("control.sock");
    let (code, _, err) = ctl_at(&socket, &["status"]);
    assert_eq!(code, 69, "{err}");
    assert!(
        err.contains(&format!("{} does not exist", socket.display())),
        "{err}"
    );
    // A socket file left behind, with nobody listening.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let (code, _, err) = ctl_at(&socket, &["drain"]);
    assert_eq!(code, 69, "{err}");
    assert!(err.contains("nothing answers on"), "{err}");
    // Disabled in the configuration.
    let (code, _, err) = Agent::builder()
        .args(&["ctl", "--control-socket", "", "status"])
        .run();
    assert_eq!(code, 69, "{err}");
    assert!(err.contains("control socket is disabled"), "{err}");
}

#[test]
fn strangers_are_refused_and_nothing_changes() {
    let dir = TempDir::new("ctl-perm");
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"UP"}"#);
    let agent = Agent::builder().state(&path).start();
    let socket = agent.control_socket();
    let mode = fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "the socket is created 0660");
    let socket_arg = socket.to_str().unwrap();

    // The file's permissions stop `nobody` at connect.
    let (code, _, err) = Agent::builder()
        .args(&["ctl", "--control-socket", socket_arg, "drain"])
        .user_nobody()
        .run();
    assert_eq!(code, 77, "{err}");
    assert!(err.contains("permission denied"), "{err}");

    // With the file opened to everyone by mistake, the agent's own check
    // (the kernel's record of the peer) still refuses, and logs it.
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o666)).unwrap();
    let (code, _, err) = Agent::builder()
        .args(&["ctl", "--control-socket", socket_arg, "drain"])
        .user_nobody()
        .run();
    assert_eq!(code, 77, "{err}");
    assert!(
        err.contains("permission denied: uid 65534 (nobody)"),
        "{err}"
    );
    agent.wait_log("control socket: refused uid 65534 (nobody)");
    assert_eq!(agent.probe(), "up ready 100%\n");
    assert_eq!(file(&path), r#"{"status":"UP"}"#);
}

/// Sends raw bytes to the control socket and reads the answer.
fn raw(socket: &std::path::Path, bytes: &[u8]) -> serde_json::Value {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let _ = s.write_all(bytes);
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{out:?}: {e}"))
}

#[test]
fn hostile_clients_get_answers_and_never_delay_a_probe() {
    let dir = TempDir::new("ctl-hostile");
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"UP"}"#);
    let agent = Agent::builder().state(&path).start();
    let socket = agent.control_socket();

    // Clients that hold a connection open without a complete request.
    let mut idle = UnixStream::connect(&socket).unwrap();
    let mut partial = UnixStream::connect(&socket).unwrap();
    partial.write_all(br#"{"v":1,"comm"#).unwrap();
    for _ in 0..20 {
        assert_eq!(agent.probe(), "up ready 100%\n");
    }

    // A request dribbled in one byte at a time, probes in between.
    let mut slow = UnixStream::connect(&socket).unwrap();
    for byte in b"{\"v\":1,\"command\":\"status\"}\n" {
        slow.write_all(&[*byte]).unwrap();
        assert_eq!(agent.probe(), "up ready 100%\n");
    }
    let mut answer = String::new();
    slow.read_to_string(&mut answer).unwrap();
    assert!(answer.contains("\"ok\":true"), "{answer}");

    for (bytes, message) in [
        (b"garbage\n".to_vec(), "not a valid request"),
        (
            b"{\"v\":1,\"command\":\"status\",\"x\":1}\n".to_vec(),
            "unknown field",
        ),
        (
            b"{\"v\":7,\"command\":\"status\"}\n".to_vec(),
            "protocol version 7",
        ),
        (vec![b'x'; 100_000], "larger than 65536 bytes"),
        (b"\xff\xfe\n".to_vec(), "not a valid request"),
    ] {
        let v = raw(&socket, &bytes);
        assert_eq!(v["ok"], false, "{v}");
        assert_eq!(v["error"], "bad-request", "{v}");
        assert!(v["message"].as_str().unwrap().contains(message), "{v}");
        assert_eq!(agent.probe(), "up ready 100%\n");
    }

    // The held-open ones are cut off at the read deadline with an answer.
    for stream in [&mut idle, &mut partial] {
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).unwrap();
        assert!(out.contains("no complete request within"), "{out}");
    }
    assert_eq!(agent.probe(), "up ready 100%\n");
    assert_eq!(file(&path), r#"{"status":"UP"}"#);
}

#[test]
fn control_socket_problems_stop_the_start_clearly() {
    let dir = TempDir::new("ctl-start");
    let state = dir.join("state.json");
    write_state(&state, r#"{"status":"UP"}"#);
    let missing = dir.join("missing/control.sock");
    let args = |socket: &str| {
        vec![
            "--ip".to_string(),
            "127.0.0.1".into(),
            "--port".into(),
            "0".into(),
            "--state-file".into(),
            state.to_str().unwrap().into(),
            "--control-socket".into(),
            socket.into(),
        ]
    };
    let a = args(missing.to_str().unwrap());
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let (code, _, err) = Agent::builder().args(&a).run();
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("control socket {}", missing.display()))
            && err.contains("missing is unusable"),
        "{err}"
    );

    // A directory hapgent's user cannot write to.
    let locked = dir.join("locked");
    fs::create_dir(&locked).unwrap();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&dir.0, fs::Permissions::from_mode(0o755)).unwrap();
    let state_copy = dir.join("nobody-state.json");
    write_state(&state_copy, r#"{"status":"UP"}"#);
    fs::set_permissions(&state_copy, fs::Permissions::from_mode(0o644)).unwrap();
    let socket = locked.join("control.sock");
    let (code, _, err) = Agent::builder()
        .args(&[
            "--ip",
            "127.0.0.1",
            "--port",
            "0",
            "--state-file",
            state_copy.to_str().unwrap(),
            "--control-socket",
            socket.to_str().unwrap(),
        ])
        .user_nobody()
        .run();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("Permission denied"), "{err}");
    assert!(err.contains("needs write access to"), "{err}");

    // Another running agent on the same socket.
    let first = Agent::builder().state(&state).start();
    let taken = first.control_socket();
    let a = args(taken.to_str().unwrap());
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let (code, _, err) = Agent::builder().args(&a).run();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("another hapgent is answering on it"), "{err}");
    drop(first);
}

#[test]
fn probers_are_listed_and_wait_seen_needs_one() {
    let dir = TempDir::new("ctl-probers");
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"UP"}"#);
    let agent = Agent::builder().state(&path).start();
    // Nobody has probed: nobody can confirm anything.
    let (code, _, err) = agent.ctl(&["drain", "--wait-seen", "--timeout", "5s"]);
    assert_eq!(code, 75, "{err}");
    assert!(
        err.contains("no load balancer is probing this agent"),
        "{err}"
    );
    for _ in 0..3 {
        agent.probe();
    }
    let (code, out, _) = agent.ctl(&["probers", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let probers = v["probers"].as_array().unwrap();
    assert_eq!(probers.len(), 1, "{v}");
    assert_eq!(probers[0]["address"], "127.0.0.1");
    assert_eq!(probers[0]["probes"], 3);
    // Drained: after the first, complete reply, its repeats leave out the
    // weight (docs/operations.md, "Repeats while drained").
    assert_eq!(probers[0]["reply"], "up drain");

    // A prober that keeps probing sees the change: wait-seen returns 0.
    let addr = agent.addrs[0];
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let prober = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                probe(addr);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    // The timeout only bounds a failure: the prober keeps probing.
    let (code, out, err) = agent.ctl(&["ready", "--wait-seen", "--timeout", "60s"]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    prober.join().unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("127.0.0.1 has seen version 2"), "{out}");
    assert!(
        out.contains("the 1 load balancer probing has seen version 2"),
        "{out}"
    );
}
