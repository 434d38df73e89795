//! SIGHUP (`systemctl reload`) re-reads the configuration file as well as
//! the state file: live settings apply, listeners move without refusing a
//! probe, and an invalid configuration is rejected whole.

use crate::util::*;
use std::fs;

fn start(dir: &TempDir, config: &str) -> (Agent, std::path::PathBuf) {
    let state = dir.join("state.json");
    write_state(&state, r#"{"status":"UP"}"#);
    let file = dir.join("hapgent.toml");
    fs::write(&file, config).unwrap();
    let agent = Agent::builder()
        .state(&state)
        .args(&["--config", file.to_str().unwrap()])
        .start();
    (agent, file)
}

#[test]
fn reload_applies_live_settings() {
    let dir = TempDir::new("reload-live");
    let drain = dir.join("drain");
    fs::write(&drain, "").unwrap();
    let (agent, file) = start(&dir, "log_requests = false\n");
    assert_eq!(agent.probe(), "up ready 100%\n");
    assert!(!agent.log().contains("probe from"));

    fs::write(
        &file,
        format!(
            "log_requests = true\ndrain_file = {:?}\n",
            drain.to_str().unwrap()
        ),
    )
    .unwrap();
    agent.signal(libc::SIGHUP);
    agent.wait_log("reload: applied drain_file, log_requests");
    assert_eq!(agent.probe(), "up drain 100%\n");
    agent.wait_log("probe from 127.0.0.1");
}

#[test]
fn an_invalid_configuration_is_rejected_whole() {
    let dir = TempDir::new("reload-invalid");
    let (agent, file) = start(&dir, "log_requests = true\n");
    // One good setting and one bad: neither applies.
    fs::write(&file, "log_requests = false\nmax_connections = 0\n").unwrap();
    agent.signal(libc::SIGHUP);
    let line = agent.wait_log("keeping the running configuration");
    assert!(
        line.contains(&format!(
            "max_connections from file {}: must be between 1 and 1000000",
            file.display()
        )),
        "{line}"
    );
    let before = agent.log().matches("probe from").count();
    agent.probe();
    wait_for("the probe is still logged", || {
        agent.log().matches("probe from").count() > before
    });
    // Still serving, and a later good file applies.
    fs::write(&file, "log_requests = false\n").unwrap();
    agent.signal(libc::SIGHUP);
    agent.wait_log("reload: applied log_requests");
}

fn free_port() -> u16 {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    free.local_addr().unwrap().port()
}

#[test]
fn a_new_port_is_bound_before_the_old_one_closes() {
    let dir = TempDir::new("reload-port");
    let state = dir.join("state.json");
    write_state(&state, r#"{"status":"UP"}"#);
    let file = dir.join("hapgent.toml");
    let config = |port: u16| format!("ip = \"127.0.0.1\"\nport = {port}\n");
    fs::write(&file, config(free_port())).unwrap();
    // ip and port from the file, so that a reload can change them.
    let agent = Agent::builder()
        .args(&[
            "--config",
            file.to_str().unwrap(),
            "--state-file",
            state.to_str().unwrap(),
        ])
        .start();
    let old = agent.addrs[0];
    let new_port = free_port();
    fs::write(&file, config(new_port)).unwrap();
    agent.signal(libc::SIGHUP);
    agent.wait_log(&format!("reload: now listening on 127.0.0.1:{new_port}"));
    agent.wait_log("reload: applied port");
    let new = std::net::SocketAddr::from(([127, 0, 0, 1], new_port));
    assert_eq!(probe(new), "up ready 100%\n");
    wait_for("the old port is closed", || {
        std::net::TcpStream::connect(old).is_err()
    });

    // A port that cannot be bound: the old listener stays, and says why.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    fs::write(&file, config(taken_port)).unwrap();
    agent.signal(libc::SIGHUP);
    let line = agent.wait_log("keeping the running configuration");
    assert!(line.contains("another process holds this port"), "{line}");
    assert_eq!(probe(new), "up ready 100%\n");
}
