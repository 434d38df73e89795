//! Dynamic inputs and start modes: flag files, CPU weight, one-shot mode,
//! socket activation, readiness notifications.

use crate::util::*;
use std::fs;
use std::net::TcpListener;
use std::os::unix::net::UnixDatagram;
use std::process::Stdio;

#[test]
fn flag_files_show_in_the_very_next_reply() {
    let dir = TempDir::new("flags");
    let path = dir.join("state.json");
    let drain = dir.join("drain");
    let maint = dir.join("maint");
    write_state(&path, r#"{"status":"UP","weight":70}"#);
    let agent = Agent::builder()
        .state(&path)
        .args(&[
            "--drain-file",
            drain.to_str().unwrap(),
            "--maint-file",
            maint.to_str().unwrap(),
        ])
        .start();
    assert_eq!(agent.probe(), "up ready 70%\n");
    fs::write(&drain, "").unwrap();
    assert_eq!(agent.probe(), "up drain 70%\n");
    fs::write(&maint, "").unwrap();
    assert_eq!(agent.probe(), "up maint 70%\n");
    fs::remove_file(&drain).unwrap();
    assert_eq!(agent.probe(), "up maint 70%\n");
    fs::remove_file(&maint).unwrap();
    assert_eq!(agent.probe(), "up ready 70%\n");
    agent.wait_log("maint file");
    agent.wait_log("drain file");
    agent.wait_log("no flag file exists");
}

#[test]
fn flag_file_present_at_start_is_reported_from_the_first_reply() {
    let dir = TempDir::new("flagstart");
    let path = dir.join("state.json");
    let maint = dir.join("maint");
    write_state(&path, r#"{"status":"UP"}"#);
    fs::write(&maint, "").unwrap();
    let agent = Agent::builder()
        .state(&path)
        .args(&["--maint-file", maint.to_str().unwrap()])
        .start();
    assert_eq!(agent.probe(), "up maint 100%\n");
}

#[test]
fn cpu_weight_uses_a_real_first_sample_and_follows_the_counters() {
    let dir = TempDir::new("cpu");
    let path = dir.join("state.json");
    let stat = dir.join("stat");
    write_state(&path, r#"{"status":"UP","weight":80}"#);
    // The counters file is always replaced whole (see `replace_file`): a
    // reader never sees it half written.
    replace_file(&stat, &proc_stat(1000, 1000));
    let state = path.to_str().unwrap();
    let all = [
        "--ip",
        "127.0.0.1",
        "--port",
        "0",
        "--state-file",
        state,
        "--cpu-weight",
        "--timeframe",
        "200",
        "--proc-stat",
        stat.to_str().unwrap(),
    ];
    // It samples before it listens: the baseline is read before the
    // "sampling CPU load" line, then the file is read every 200 ms until
    // the counters move (ten times at most: the agent's own bound, which
    // leaves this test two seconds to react to the line). They move once
    // the line is in: 100 ticks pass, 25 busy, 75 idle.
    let mut agent = Agent::builder().args(&all).launch();
    agent.wait_log("sampling CPU load");
    replace_file(&stat, &proc_stat(1025, 1075));
    agent.wait_listening();
    // The very first reply is scaled: 80% x 0.75 = 60%.
    assert_eq!(agent.probe(), "up ready 60%\n", "{}", agent.log());
    assert!(agent.log().find("sampling CPU load") < agent.log().find("listening on"));
    // Fully busy: floored at the 1% minimum.
    replace_file(&stat, &proc_stat(1125, 1075));
    agent.wait_reply("up ready 1%\n");
    // An unreadable file keeps the last sample and says so.
    fs::remove_file(&stat).unwrap();
    agent.wait_log("keeping the last CPU sample");
    assert_eq!(agent.probe(), "up ready 1%\n");
    // Counters that did not move keep the last sample: the file is back,
    // as it was, and has been read again ("readable again").
    replace_file(&stat, &proc_stat(1125, 1075));
    agent.wait_log("is readable again");
    assert_eq!(agent.probe(), "up ready 1%\n");
    // Fully idle: the state's weight.
    replace_file(&stat, &proc_stat(1125, 1175));
    agent.wait_reply("up ready 80%\n");
}

#[test]
fn one_shot_prints_the_reply_for_each_state() {
    let dir = TempDir::new("once");
    let path = dir.join("state.json");
    let state = path.to_str().unwrap();
    for (json, reply) in [
        (r#"{"status":"UP"}"#, "up ready 100%\n"),
        (r#"{"status":"READY","weight":5}"#, "up ready 5%\n"),
        (
            r#"{"status":"DRAIN","maxconn":9}"#,
            "up drain 100% maxconn:9\n",
        ),
        (r#"{"status":"MAINT"}"#, "maint 100%\n"),
        (r#"{"status":"DOWN","description":"x"}"#, "down 100% # x\n"),
        (r#"{"status":"FAIL"}"#, "fail 100%\n"),
        (r#"{"status":"STOPPED"}"#, "stopped 100%\n"),
        ("not json", "fail 100%\n"),
    ] {
        write_state(&path, json);
        let (code, out, err) = Agent::builder()
            .args(&["reply", "--state-file", state])
            .run();
        assert_eq!((code, out.as_str()), (0, reply), "{json}: {err}");
    }
    // With a drain file and a fed CPU sample, as JSON.
    write_state(&path, r#"{"status":"UP","weight":50}"#);
    let drain = dir.join("drain");
    fs::write(&drain, "").unwrap();
    let (code, out, err) = Agent::builder()
        .args(&[
            "reply",
            "--json",
            "--state-file",
            state,
            "--drain-file",
            drain.to_str().unwrap(),
        ])
        .run();
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["reply"], "up drain 50%");
    assert_eq!(v["state"]["status"], "UP");
    assert_eq!(v["drain_file"], true);
    assert_eq!(v["maint_file"], serde_json::Value::Null);
    assert_eq!(v["weight"], 50);
}

#[test]
fn one_shot_samples_cpu() {
    let dir = TempDir::new("oncecpu");
    let path = dir.join("state.json");
    let stat = dir.join("stat");
    write_state(&path, r#"{"status":"UP"}"#);
    replace_file(&stat, &proc_stat(0, 0));
    let child = Agent::builder()
        .args(&[
            "reply",
            "--json",
            "--cpu-weight",
            "--timeframe",
            "1500",
            "--proc-stat",
            stat.to_str().unwrap(),
            "--state-file",
            path.to_str().unwrap(),
        ])
        .command()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // It reads the counters, sleeps for the timeframe, reads them again.
    // Once it sleeps (nothing else in `reply` does), the first read is
    // done: the counters move, 40 of 100 ticks idle, well within the
    // 1.5 s it sleeps.
    let pid = child.id();
    wait_for("hapgent reply sleeping between its two reads", || {
        sleeping(pid)
    });
    replace_file(&stat, &proc_stat(60, 40));
    let done = child.wait_with_output().unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&done.stdout),
        String::from_utf8_lossy(&done.stderr),
    );
    assert_eq!(done.status.code(), Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["reply"], "up ready 40%", "{out}");
    assert_eq!(v["cpu_idle_percent"], 40.0);
}

/// Whether process `pid`'s main thread is in a sleep system call
/// (`/proc/PID/syscall` names the call it is blocked in).
fn sleeping(pid: u32) -> bool {
    let line = fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
    let call = line.split_whitespace().next().unwrap_or_default();
    [libc::SYS_clock_nanosleep, libc::SYS_nanosleep]
        .iter()
        .any(|n| n.to_string() == call)
}

#[test]
fn socket_activation_serves_the_passed_socket() {
    let dir = TempDir::new("activation");
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"DRAIN"}"#);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let agent = Agent::builder()
        .activated(&listener)
        .args(&["--systemd", "--state-file", path.to_str().unwrap()])
        .start();
    assert_eq!(agent.addrs, vec![addr]);
    drop(listener); // the agent has its own copy
    assert_eq!(probe(addr), "up drain 100%\n");
}

#[test]
fn socket_activation_errors_are_clear() {
    // Requested, but nothing passed.
    let (code, _, err) = Agent::builder().args(&["--systemd"]).run();
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("systemd passed no sockets"), "{err}");
    // Passed to another process.
    let (code, _, err) = Agent::builder()
        .args(&["--systemd"])
        .envs(&[("LISTEN_PID", "1"), ("LISTEN_FDS", "1")])
        .run();
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("for process \"1\", not this one"), "{err}");
    // fd 3 is a socket, but not a listening one; or not a socket at all.
    use std::os::fd::AsRawFd;
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let file = fs::File::open("/dev/null").unwrap();
    for (fd, message) in [
        (
            udp.as_raw_fd(),
            "file descriptor 3 is an IPv4 datagram (UDP) socket; hapgent needs a listening TCP socket",
        ),
        (file.as_raw_fd(), "file descriptor 3 is not a socket"),
    ] {
        let out = Agent::builder()
            .activated_fd(fd)
            .args(&["--systemd"])
            .command()
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{err}");
        assert!(err.contains(message), "{err}");
    }
    let idle = TcpListener::bind("127.0.0.1:0").unwrap();
    let stream = std::net::TcpStream::connect(idle.local_addr().unwrap()).unwrap();
    let out = Agent::builder()
        .activated_fd(stream.as_raw_fd())
        .args(&["--systemd"])
        .command()
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("file descriptor 3 is an IPv4 stream (TCP) socket that is not listening"),
        "{err}"
    );
}

#[test]
fn readiness_notifications_arrive_in_order() {
    let dir = TempDir::new("notify");
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"UP"}"#);
    let sock = dir.join("notify.sock");
    let receiver = UnixDatagram::bind(&sock).unwrap();
    receiver.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut agent = Agent::builder()
        .state(&path)
        .envs(&[("NOTIFY_SOCKET", sock.to_str().unwrap())])
        .start();
    let mut buf = [0u8; 512];
    let mut next = || {
        let n = receiver.recv(&mut buf).expect("no notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let ready = next();
    assert!(
        ready.starts_with("READY=1\nSTATUS=listening on 127.0.0.1:"),
        "{ready}"
    );
    agent.signal(libc::SIGHUP);
    assert!(next().starts_with("RELOADING=1\nMONOTONIC_USEC="));
    assert_eq!(next(), "READY=1");
    agent.signal(libc::SIGTERM);
    assert_eq!(next(), "STOPPING=1");
    assert_eq!(agent.wait_exit().and_then(|s| s.code()), Some(0));
}
