//! The edges of the control socket, `ctl set`, reloads and the allow-list:
//! the control socket never destroys what is at its path, a field given
//! twice is refused as in a state file, a reload moves the control socket,
//! keeps restart-only settings (and says so), refuses an empty file, names
//! the setting that blocked it and reads a new service's state file off
//! the probe thread; `allow = []` is an error; log lines a stranger or a
//! gone systemd can cause over and over are rate-limited.

use crate::util::*;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

/// Starts `hapgent` and waits until it either listens or exits; returns
/// whether it exited, and its log.
fn start_or_exit(hapgent: Hapgent) -> (Option<i32>, Agent) {
    let mut agent = hapgent.launch();
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        if let Some(status) = agent.exited() {
            agent.wait_log_end();
            return (Some(status.code().unwrap_or(-1)), agent);
        }
        if agent.log().contains("listening on ") {
            return (None, agent);
        }
        assert!(std::time::Instant::now() < deadline, "{}", agent.log());
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn str(p: &Path) -> &str {
    p.to_str().unwrap()
}

// 5. The control socket destroys what is at its path.

#[test]
fn a_regular_file_at_the_control_socket_path_is_left_alone() {
    let dir = TempDir::new("edge-regular");
    let state = dir.join("state.json");
    write_state(&state, r#"{"status":"UP"}"#);
    let socket = dir.join("control.sock");
    fs::write(&socket, "precious\n").unwrap();
    let (exited, agent) = start_or_exit(Agent::builder().state(&state).control_socket(&socket));
    assert!(exited.is_some_and(|c| c != 0), "{}", agent.log());
    assert!(
        agent.log().contains(&format!(
            "control socket {}: a regular file is there, not a socket",
            socket.display()
        )),
        "{}",
        agent.log()
    );
    assert_eq!(fs::read_to_string(&socket).unwrap(), "precious\n");
}

#[test]
fn the_state_file_cannot_be_the_control_socket() {
    let dir = TempDir::new("edge-same");
    let state = dir.join("state.json");
    write_state(&state, r#"{"status":"UP"}"#);
    let (exited, agent) = start_or_exit(Agent::builder().state(&state).control_socket(&state));
    assert_eq!(exited, Some(78), "{}", agent.log());
    assert!(
        agent
            .log()
            .contains("is also state_file; creating the socket would replace that file"),
        "{}",
        agent.log()
    );
    assert_eq!(fs::read_to_string(&state).unwrap(), r#"{"status":"UP"}"#);
}

#[test]
fn stop_leaves_what_replaced_the_socket() {
    let dir = TempDir::new("edge-stop");
    let state = dir.join("state.json");
    write_state(&state, r#"{"status":"UP"}"#);
    let mut agent = Agent::builder().state(&state).start();
    let socket = agent.control_socket();
    // Another program takes the path (its own socket) while hapgent runs.
    fs::remove_file(&socket).unwrap();
    let theirs = UnixListener::bind(&socket).unwrap();
    agent.signal(libc::SIGTERM);
    agent.wait_exit();
    agent.wait_log_end();
    assert!(
        fs::symlink_metadata(&socket).is_ok_and(|m| m.file_type().is_socket()),
        "the other program's socket was removed:\n{}",
        agent.log()
    );
    drop(theirs);

    // Its own socket, still there, is removed at stop.
    let mut agent = Agent::builder().state(&state).start();
    let socket = agent.control_socket();
    assert!(socket.exists());
    agent.signal(libc::SIGTERM);
    agent.wait_exit();
    assert!(!socket.exists(), "{}", agent.log());
}

// 6. A field given twice in `set` is accepted (last wins).

#[test]
fn a_field_given_twice_in_set_is_refused() {
    let dir = TempDir::new("edge-twice");
    let state = dir.join("state.json");
    write_state(&state, r#"{"status":"DOWN"}"#);
    let agent = Agent::builder().state(&state).start();
    let mut s = UnixStream::connect(agent.control_socket()).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(
        b"{\"v\":1,\"command\":\"set\",\"state\":{\"status\":\"DOWN\",\"status\":\"UP\"}}\n",
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let answer: serde_json::Value = serde_json::from_str(answer.trim()).unwrap();
    assert_eq!(answer["ok"], false, "{answer}");
    assert_eq!(answer["error"], "bad-request", "{answer}");
    let message = answer["message"].as_str().unwrap();
    assert!(
        message.contains(
            "\"state\" has the field \"status\" more than once; which one is meant is unclear"
        ),
        "{message}"
    );
    assert_eq!(agent.probe(), "down 100%\n");
    assert_eq!(fs::read_to_string(&state).unwrap(), r#"{"status":"DOWN"}"#);
}

// 10. Reloads.

/// An agent on 127.0.0.1 whose configuration file holds `config`.
fn start_configured(
    dir: &TempDir,
    config: &str,
    env: &[(&str, &str)],
) -> (Agent, std::path::PathBuf) {
    let state = dir.join("state.json");
    write_state(&state, r#"{"status":"UP"}"#);
    let file = dir.join("hapgent.toml");
    fs::write(&file, config).unwrap();
    let agent = Agent::builder()
        .args(&[
            "--config",
            str(&file),
            "--ip",
            "127.0.0.1",
            "--port",
            "0",
            "--state-file",
            str(&state),
        ])
        .envs(env)
        .start();
    (agent, file)
}

#[test]
fn a_reload_moves_the_control_socket_where_ctl_looks() {
    let dir = TempDir::new("edge-move");
    let (a, b) = (dir.join("a.sock"), dir.join("b.sock"));
    let config = |p: &Path| format!("control_socket = {:?}\n", str(p));
    let state = dir.join("state.json");
    write_state(&state, r#"{"status":"UP"}"#);
    let file = dir.join("hapgent.toml");
    fs::write(&file, config(&a)).unwrap();
    // Agent and ctl both take control_socket from the file.
    let with_file = |args: &[&str]| {
        Agent::builder()
            .args(args)
            .env("HAPGENT_CONFIG", str(&file))
            .env_remove("HAPGENT_CONTROL_SOCKET")
    };
    let agent = with_file(&[
        "--ip",
        "127.0.0.1",
        "--port",
        "0",
        "--state-file",
        str(&state),
    ])
    .start();
    let ctl = |args: &[&str]| with_file(&["ctl"]).args(args).run();
    let (code, out, err) = ctl(&["status"]);
    assert_eq!(code, 0, "{out}{err}");
    fs::write(&file, config(&b)).unwrap();
    agent.signal(libc::SIGHUP);
    agent.wait_log("reload: applied control_socket");
    // `hapgent ctl` reads the same file: it finds the agent at b.
    let (code, out, err) = ctl(&["drain"]);
    assert_eq!(code, 0, "{out}{err}\n{}", agent.log());
    assert_eq!(agent.probe(), "up drain 100%\n");
    assert!(!a.exists(), "the old socket is removed");
    assert!(
        agent
            .log()
            .contains(&format!("reload: control socket now {}", b.display()))
    );
}

#[test]
fn restart_only_settings_are_kept_and_not_called_applied() {
    let dir = TempDir::new("edge-kept");
    let (agent, file) = start_configured(&dir, "log_requests = false\n", &[]);
    fs::write(
        &file,
        "log_requests = true\nmetrics_listen = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    agent.signal(libc::SIGHUP);
    let applied = agent.wait_log("reload: applied ");
    assert!(
        applied.ends_with("reload: applied log_requests"),
        "{applied}"
    );
    let log = agent.log();
    assert!(
        log.contains(
            "reload: metrics_listen needs a restart; keeping it as it was until hapgent restarts"
        ),
        "{log}"
    );
}

#[test]
fn an_empty_configuration_file_at_reload_is_refused() {
    let dir = TempDir::new("edge-empty");
    let (agent, file) = start_configured(&dir, "log_requests = true\n", &[]);
    fs::write(&file, "").unwrap();
    agent.signal(libc::SIGHUP);
    let line = agent.wait_log("keeping the running configuration");
    assert!(
        line.contains(&format!(
            "configuration file {} is empty; refusing to reload it as all defaults",
            file.display()
        )),
        "{line}"
    );
    // Still as configured: probes are logged.
    agent.probe();
    agent.wait_log("probe from 127.0.0.1");
    assert!(!agent.log().contains("reload: applied"), "{}", agent.log());
}

fn free_port() -> u16 {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    free.local_addr().unwrap().port()
}

#[test]
fn a_rejected_reload_names_the_setting_and_hapgents_own_listener() {
    let dir = TempDir::new("edge-overlap");
    let state = dir.join("state.json");
    write_state(&state, r#"{"status":"UP"}"#);
    let file = dir.join("hapgent.toml");
    let port = free_port();
    fs::write(&file, format!("ip = \"127.0.0.1\"\nport = {port}\n")).unwrap();
    let agent = Agent::builder()
        .args(&["--config", str(&file), "--state-file", str(&state)])
        .start();
    // The same address, IPv4-mapped: the listener being replaced holds it.
    fs::write(&file, format!("ip = \"::ffff:127.0.0.1\"\nport = {port}\n")).unwrap();
    agent.signal(libc::SIGHUP);
    let line = agent.wait_log("keeping the running configuration");
    assert!(
        line.contains("reload rejected: ip: cannot listen on"),
        "{line}"
    );
    assert!(
        line.contains(&format!(
            "hapgent's own listener on 127.0.0.1:{port} holds it"
        )),
        "{line}"
    );
    assert!(!line.contains("another process"), "{line}");
    // Another process's port: named as the port.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    fs::write(&file, format!("ip = \"127.0.0.1\"\nport = {taken_port}\n")).unwrap();
    agent.signal(libc::SIGHUP);
    agent.wait_log_count("keeping the running configuration", 2);
    let log = agent.log();
    let line = log
        .lines()
        .filter(|l| l.contains("keeping the running"))
        .nth(1)
        .unwrap();
    assert!(
        line.contains("reload rejected: port: cannot listen on"),
        "{line}"
    );
    assert!(line.contains("another process holds this port"), "{line}");
    assert_eq!(probe(agent.addrs[0]), "up ready 100%\n");
}

/// The thread (task id) that opened `path`, from strace's output.
fn opener(trace: &Path, path: &Path) -> Option<i32> {
    let text = fs::read_to_string(trace).ok()?;
    let needle = format!("openat(AT_FDCWD, \"{}\"", path.display());
    let line = text.lines().find(|l| l.contains(&needle))?;
    line.split_whitespace().next()?.parse().ok()
}

#[test]
fn a_service_added_at_reload_is_read_on_the_disk_thread() {
    let dir = TempDir::new("edge-added");
    let state = dir.join("state.json");
    write_state(&state, r#"{"status":"UP"}"#);
    let api = dir.join("api.json");
    write_state(&api, r#"{"status":"DRAIN"}"#);
    let file = dir.join("hapgent.toml");
    fs::write(&file, "# no services yet\n").unwrap();
    let trace = dir.join("trace");
    let notify = Notify::bind(&dir);
    // Every open of api.json, with the thread that made it.
    let strace = ["-o", str(&trace), "-e", "trace=openat", "-P", str(&api)];
    let agent = Agent::builder()
        .strace(&strace)
        .state(&state)
        .envs(&[("HAPGENT_CONFIG", str(&file)), notify.env()])
        .start();
    notify.next(); // READY=1 at startup
    fs::write(
        &file,
        format!("[services.api]\nstate_file = {:?}\n", str(&api)),
    )
    .unwrap();
    agent.signal(libc::SIGHUP);
    notify.wait_reloaded();
    let pid = agent.pid();
    let disk = fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .find(|tid| {
            fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
                .is_ok_and(|c| c.trim() == "hapgent-disk")
        })
        .expect("a disk thread");
    wait_for("strace wrote the open", || opener(&trace, &api).is_some());
    let tid = opener(&trace, &api).unwrap();
    assert_eq!(
        tid, disk,
        "api.json was opened by thread {tid}, not the disk thread {disk} (the probe thread is {pid})"
    );
}

// 11. `allow = []`, and logs without a rate limit.

#[test]
fn an_empty_allow_list_is_a_configuration_error() {
    let dir = TempDir::new("edge-allow");
    let file = dir.join("hapgent.toml");
    fs::write(&file, "allow = []\n").unwrap();
    let (code, _, err) = Agent::builder()
        .args(&["check-config", "--config", str(&file)])
        .run();
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("allow from file") && err.contains("\"0.0.0.0/0, ::/0\" for everyone"),
        "{err}"
    );
    let (code, _, err) = Agent::builder()
        .args(&["check-config"])
        .env("HAPGENT_ALLOW", "")
        .run();
    assert_eq!(code, 78, "{err}");
    // Everyone, said so.
    fs::write(&file, "allow = [\"0.0.0.0/0\", \"::/0\"]\n").unwrap();
    let (code, _, err) = Agent::builder()
        .args(&["check-config", "--config", str(&file)])
        .run();
    assert_eq!(code, 0, "{err}");
}

#[test]
fn control_socket_refusals_are_rate_limited() {
    let dir = TempDir::new("edge-refusals");
    let state = dir.join("state.json");
    write_state(&state, r#"{"status":"UP"}"#);
    let agent = Agent::builder().state(&state).start();
    let socket = agent.control_socket();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o666)).unwrap();
    for _ in 0..20 {
        let (code, _, err) = Agent::builder()
            .args(&["ctl", "--control-socket", str(&socket), "status"])
            .user_nobody()
            .run();
        assert_eq!(code, 77, "{err}");
    }
    // Every refusal was answered; an event after them all: a change by
    // root, logged.
    let (code, _, err) = agent.ctl(&["drain"]);
    assert_eq!(code, 0, "{err}");
    agent.wait_log("(ctl by uid 0");
    // One line, or two if the run straddled the minute between them;
    // never one per refusal.
    let refusals = agent.log().matches("control socket: refused").count();
    assert!((1..=2).contains(&refusals), "{}", agent.log());
}

#[test]
fn notification_failures_are_rate_limited() {
    let dir = TempDir::new("edge-notify");
    let gone = dir.join("gone.sock");
    let (agent, file) = start_configured(
        &dir,
        "log_requests = false\n",
        &[("NOTIFY_SOCKET", str(&gone))],
    );
    // Each reload sends RELOADING=1 and READY=1, both failing.
    for (i, value) in ["true", "false", "true", "false"].iter().enumerate() {
        fs::write(&file, format!("log_requests = {value}\n")).unwrap();
        agent.signal(libc::SIGHUP);
        agent.wait_log_count("reload: applied log_requests", i + 1);
    }
    // The READY=1 of the third reload was sent before the fourth began:
    // 7 failures at least. One line, or two if the run straddled the
    // minute between them; never one per failure.
    let failures = agent.log().matches("cannot notify systemd").count();
    assert!((1..=2).contains(&failures), "{}", agent.log());
}
