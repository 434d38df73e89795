//! Health checks, capacity monitors and the connection budget, through
//! the real binary: the reply follows an HTTP check as it fails and
//! recovers, checks that hang are timed out and killed, fake /proc files
//! drive the weight, the operator's DRAIN stays DRAIN, `ctl status`
//! explains the reply, and a reload changes the checks in place.
//!
//! The applications checked are threads of this test binary; each wait
//! ends on an event (a reply, a log line, a count), bounded by `PATIENCE`.

use crate::util::*;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// An HTTP application answering every request with `status` (0: accept
/// and never answer), counting the answers by whether they pass.
pub struct App {
    pub addr: SocketAddr,
    status: Arc<AtomicU16>,
    passed: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    accepted: Arc<AtomicU64>,
}

impl App {
    pub fn start(status: u16) -> App {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let status = Arc::new(AtomicU16::new(status));
        let counts = || Arc::new(AtomicU64::new(0));
        let (passed, failed, accepted) = (counts(), counts(), counts());
        let (s, p, f, a) = (
            status.clone(),
            passed.clone(),
            failed.clone(),
            accepted.clone(),
        );
        // Connections that are never answered stay open here, so the
        // agent is the one that must give up.
        let hung: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        // Ends with the test binary; it only ever blocks in accept or in
        // reading a request head.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                a.fetch_add(1, Ordering::SeqCst);
                let code = s.load(Ordering::SeqCst);
                if code == 0 {
                    hung.lock().unwrap().push(stream);
                    continue;
                }
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = write!(
                    stream,
                    "HTTP/1.1 {code} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                );
                if (200..400).contains(&code) {
                    p.fetch_add(1, Ordering::SeqCst);
                } else {
                    f.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        App {
            addr,
            status,
            passed,
            failed,
            accepted,
        }
    }

    pub fn set(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::SeqCst)
    }

    pub fn passed(&self) -> u64 {
        self.passed.load(Ordering::SeqCst)
    }

    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }

    pub fn url(&self) -> String {
        format!("http://{}/health", self.addr)
    }
}

/// An agent with a state file holding `state` and the TOML `config`.
fn agent(dir: &TempDir, state: &str, config: &str, args: &[&str]) -> Agent {
    let path = dir.join("state.json");
    write_state(&path, state);
    let file = dir.join("hapgent.toml");
    fs::write(&file, config).unwrap();
    let mut all = vec!["--config", file.to_str().unwrap()];
    all.extend_from_slice(args);
    Agent::builder().state(&path).args(&all).start()
}

/// `[checks.app]` for an HTTP check of `app`, every 100 ms.
fn http_check(app: &App, rise: u32, fall: u32) -> String {
    format!(
        "[checks.app]\nhttp = {:?}\ninterval = 100\ntimeout = 90\nrise = {rise}\nfall = {fall}\n",
        app.url()
    )
}

#[test]
fn an_http_check_that_fails_takes_the_reply_down_and_rise_brings_it_back() {
    let dir = TempDir::new("health-http");
    let app = App::start(200);
    let agent = agent(&dir, r#"{"status":"UP"}"#, &http_check(&app, 2, 3), &[]);
    agent.wait_log("check app passing at its first run: HTTP 200");
    assert_eq!(agent.probe(), "up ready 100%\n");

    app.set(503);
    agent.wait_reply("down ready 100% # check app failed\n");
    // Down exactly at the third failure in a row, not before.
    agent.wait_log("check app failing after 3 failures: HTTP 503");
    assert!(app.failed() >= 3, "{} failures served", app.failed());
    let line = agent.wait_log("reply now down ready 100%");
    assert!(
        line.contains("down because check app failed 3× (HTTP 503)"),
        "{line}"
    );

    let passed = app.passed();
    app.set(200);
    agent.wait_reply("up ready 100%\n");
    agent.wait_log("check app passing after 2 passes: HTTP 200");
    assert!(app.passed() >= passed + 2);
    agent.wait_log("reply now up ready 100%");
    // One line per transition of the reply.
    assert_eq!(agent.log().matches("reply now down").count(), 1);
}

#[test]
fn a_hanging_http_server_times_out_and_leaks_no_socket() {
    let dir = TempDir::new("health-hang");
    let app = App::start(0);
    let config = format!(
        "[checks.app]\nhttp = {:?}\ninterval = 150\ntimeout = 50\nfall = 1\n",
        app.url()
    );
    let agent = agent(&dir, r#"{"status":"UP"}"#, &config, &[]);
    agent.wait_reply("down ready 100% # check app failed\n");
    agent.wait_log("check app failing at its first run: timed out");
    let fds = || {
        fs::read_dir(format!("/proc/{}/fd", agent.pid()))
            .unwrap()
            .count()
    };
    let before = fds();
    let runs = app.accepted();
    wait_for("five more timed-out runs", || app.accepted() >= runs + 5);
    // Each run's socket was closed when it timed out: no more open than
    // one run's.
    assert!(fds() <= before + 1, "{} fds, {before} before", fds());
    let status = ctl_status(&agent);
    let check = &status["health"]["checks"][0];
    assert_eq!(check["name"], "app", "{status}");
    assert_eq!(check["status"], "failing", "{status}");
    assert_eq!(check["last"], "timed out", "{status}");
}

/// Whether process `pid` is gone (reaped: not even a zombie).
fn gone(pid: i32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn a_hanging_exec_check_is_killed_with_its_children() {
    let dir = TempDir::new("health-exec");
    let (parent, child) = (dir.join("parent.pid"), dir.join("child.pid"));
    // The script starts a child of its own, then hangs.
    let script = format!(
        "sleep 1000 & echo $! > {c}.tmp; mv {c}.tmp {c}; echo $$ > {p}.tmp; mv {p}.tmp {p}; wait",
        c = child.display(),
        p = parent.display()
    );
    let config = format!(
        "[checks.db]\nexec = [\"/bin/sh\", \"-c\", {script:?}]\ninterval = 3000\ntimeout = 300\nfall = 1\non_fail = \"drain\"\n"
    );
    let agent = agent(&dir, r#"{"status":"UP"}"#, &config, &[]);
    agent.wait_reply("up drain 100% # check db failed\n");
    agent.wait_log("check db failing at its first run: timed out");
    let read_pid = |p: &Path| -> i32 { fs::read_to_string(p).unwrap().trim().parse().unwrap() };
    let (parent, child) = (read_pid(&parent), read_pid(&child));
    wait_for("the script and its child are killed and reaped", || {
        gone(parent) && gone(child)
    });
}

/// A meminfo file with `used` percent of 1000 MB in use.
fn meminfo(used: u64) -> String {
    format!(
        "MemTotal:       1000000 kB\nMemFree:          10000 kB\nMemAvailable:   {} kB\n",
        1_000_000 - used * 10_000
    )
}

#[test]
fn fake_meminfo_and_loadavg_drive_the_weight() {
    let dir = TempDir::new("health-capacity");
    let (mem, load, stat) = (dir.join("meminfo"), dir.join("loadavg"), dir.join("stat"));
    fs::write(&mem, meminfo(50)).unwrap();
    fs::write(&load, "1.00 0.50 0.20 1/100 4242\n").unwrap();
    // Two CPUs: a load of 1.00 is 0.5 per core.
    fs::write(
        &stat,
        "cpu  10 0 10 100 0 0 0 0 0 0\ncpu0 5 0 5 50 0 0 0 0 0 0\ncpu1 5 0 5 50 0 0 0 0 0 0\n",
    )
    .unwrap();
    let config =
        "[capacity]\ninterval = 100\n[capacity.memory]\nfull = 100\n[capacity.load]\nfull = 1.0\n";
    let agent = agent(
        &dir,
        r#"{"status":"UP"}"#,
        config,
        &[
            "--proc-meminfo",
            mem.to_str().unwrap(),
            "--proc-loadavg",
            load.to_str().unwrap(),
            "--proc-stat",
            stat.to_str().unwrap(),
        ],
    );
    // Memory 50 % of 100, load 0.5 of 1.0: half the capacity left.
    agent.wait_reply("up ready 50%\n");
    replace_file(&mem, &meminfo(90));
    // (0.9 + 0.5) / 2 = 70 % used.
    agent.wait_reply("up ready 30%\n");
    replace_file(&load, "0.00 0.50 0.20 1/100 4242\n");
    replace_file(&mem, &meminfo(20));
    agent.wait_reply("up ready 90%\n");
    // A reload starts the sampler again with the new levels: memory 20 %
    // of 40 and no load, 25 % used.
    fs::write(
        dir.join("hapgent.toml"),
        config.replace("full = 100", "full = 40"),
    )
    .unwrap();
    agent.signal(libc::SIGHUP);
    agent.wait_reply("up ready 75%\n");
    fs::write(dir.join("hapgent.toml"), config).unwrap();
    agent.signal(libc::SIGHUP);
    agent.wait_reply("up ready 90%\n");
    let (code, out, err) = agent.ctl(&["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("memory 20 % used (full at 100 %)"), "{out}");
    let status = ctl_status(&agent);
    let monitors = status["health"]["capacity"]["monitors"].as_array().unwrap();
    assert_eq!(monitors[0]["name"], "memory", "{status}");
    assert_eq!(monitors[0]["value"], 20.0, "{status}");
    assert_eq!(monitors[1]["name"], "load", "{status}");
    let (_, metrics, _) = agent.ctl(&["metrics"]);
    for line in [
        "hapgent_capacity_value{monitor=\"memory\"} 20",
        "hapgent_capacity_value{monitor=\"load\"} 0",
        "hapgent_capacity_weight_percent 90",
        "hapgent_service_weight_percent{service=\"default\"} 90",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line:?} in\n{metrics}"
        );
    }
}

#[test]
fn the_operators_drain_stays_drain_while_checks_pass_and_fail() {
    let dir = TempDir::new("health-drain");
    let app = App::start(200);
    let agent = agent(&dir, r#"{"status":"DRAIN"}"#, &http_check(&app, 1, 1), &[]);
    agent.wait_log("check app passing at its first run");
    assert_eq!(agent.probe(), "up drain 100%\n");
    app.set(500);
    agent.wait_reply("down drain 100% # check app failed\n");
    app.set(200);
    agent.wait_reply("up drain 100%\n");
    let (_, out, _) = agent.ctl(&["status"]);
    assert!(
        out.contains("drain because the operator's state is DRAIN"),
        "{out}"
    );
}

#[test]
fn ctl_status_explains_the_reply() {
    let dir = TempDir::new("health-explain");
    let app = App::start(503);
    let config = format!("maxconn_total = 100\n{}", http_check(&app, 2, 2));
    let agent = agent(&dir, r#"{"status":"UP"}"#, &config, &[]);
    agent.wait_reply("down ready 100% maxconn:100 # check app failed\n");
    let (code, out, err) = agent.ctl(&["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("why:     down because check app failed"),
        "{out}"
    );
    assert!(out.contains("(HTTP 503)"), "{out}");
    assert!(
        out.contains("maxconn 100: maxconn_total 100, at most one load balancer probing"),
        "{out}"
    );
    assert!(out.contains("check app: failing"), "{out}");
    let status = ctl_status(&agent);
    let health = &status["health"];
    assert_eq!(health["maxconn_total"], 100, "{status}");
    assert_eq!(health["load_balancers"], 0, "{status}");
    assert!(
        health["reasons"][0]
            .as_str()
            .unwrap()
            .starts_with("down because check app failed"),
        "{status}"
    );
    let check = &health["checks"][0];
    assert_eq!(check["status"], "failing", "{status}");
    assert_eq!(check["last"], "HTTP 503", "{status}");
    assert!(check["failures"].as_u64().unwrap() >= 1, "{status}");
    // Metrics only for what is configured.
    let (_, metrics, _) = agent.ctl(&["metrics"]);
    assert!(
        metrics.contains("hapgent_check_up{service=\"default\",check=\"app\"} 0"),
        "{metrics}"
    );
    assert!(!metrics.contains("hapgent_capacity"), "{metrics}");
}

#[test]
fn a_service_has_its_own_checks_and_budget() {
    let dir = TempDir::new("health-service");
    let app = App::start(503);
    write_state(&dir.join("api.json"), r#"{"status":"UP"}"#);
    let config = format!(
        "[services.api]\nstate_file = {:?}\nmaxconn_total = 60\n[services.api.checks.app]\nhttp = {:?}\ninterval = 100\ntimeout = 90\nfall = 1\n",
        dir.join("api.json"),
        app.url()
    );
    let agent = agent(&dir, r#"{"status":"UP"}"#, &config, &[]);
    let ask = |payload: &[u8]| {
        let mut s = TcpStream::connect(agent.addrs[0]).unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        s.write_all(payload).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    wait_for("api's check fails", || {
        ask(b"api\n") == "down ready 100% maxconn:60 # check app failed\n"
    });
    // The default service has no check.
    assert_eq!(ask(b"\n"), "up ready 100%\n");
    agent.wait_log("check app (service api) failing at its first run: HTTP 503");
}

#[test]
fn a_reload_changes_the_checks_in_place() {
    let dir = TempDir::new("health-reload");
    let (good, bad) = (App::start(200), App::start(503));
    let agent = agent(&dir, r#"{"status":"UP"}"#, &http_check(&bad, 1, 1), &[]);
    agent.wait_reply("down ready 100% # check app failed\n");
    let notify_free = dir.join("hapgent.toml");
    // Another check added; app unchanged keeps its verdict (no first run
    // logged again).
    fs::write(
        &notify_free,
        format!(
            "{}[checks.web]\nhttp = {:?}\ninterval = 100\ntimeout = 90\n",
            http_check(&bad, 1, 1),
            good.url()
        ),
    )
    .unwrap();
    agent.signal(libc::SIGHUP);
    agent.wait_log("check web passing at its first run");
    assert_eq!(agent.probe(), "down ready 100% # check app failed\n");
    assert_eq!(
        agent
            .log()
            .matches("check app failing at its first run")
            .count(),
        1
    );
    // The failing check now points at the good application.
    fs::write(&notify_free, http_check(&good, 1, 1)).unwrap();
    agent.signal(libc::SIGHUP);
    agent.wait_reply("up ready 100%\n");
    // No check at all: as if none had ever been configured.
    fs::write(&notify_free, "# nothing\n").unwrap();
    agent.signal(libc::SIGHUP);
    agent.wait_log("reload: applied checks");
    // A bad check is refused, naming the key; the running ones stay.
    fs::write(
        &notify_free,
        format!(
            "[checks.app]\nhttp = {:?}\ninterval = 100\ntimeout = 500\n",
            bad.url()
        ),
    )
    .unwrap();
    agent.signal(libc::SIGHUP);
    let line = agent.wait_log("checks.app.timeout");
    assert!(
        line.contains("500 ms is longer than its interval (100 ms)"),
        "{line}"
    );
    assert_eq!(agent.probe(), "up ready 100%\n");
}

#[test]
fn check_config_names_the_bad_key() {
    let dir = TempDir::new("health-bad");
    let file = dir.join("hapgent.toml");
    fs::write(
        &file,
        "[checks.app]\ntcp = \"127.0.0.1:5432\"\non_fail = \"fail\"\n",
    )
    .unwrap();
    let (code, _, err) = Agent::builder()
        .args(&["check-config", "--config", file.to_str().unwrap()])
        .run();
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("checks.app.on_fail: must be \"down\", \"drain\" or \"maint\", not \"fail\""),
        "{err}"
    );
    fs::write(&file, "[capacity]\n[capacity.memory]\nlimit = 3\n").unwrap();
    let (code, _, err) = Agent::builder()
        .args(&["check-config", "--config", file.to_str().unwrap()])
        .run();
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("limit"), "{err}");
    fs::write(&file, "maxconn_total = 0\n").unwrap();
    let (code, _, err) = Agent::builder()
        .args(&["check-config", "--config", file.to_str().unwrap()])
        .run();
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("maxconn_total"), "{err}");
}

/// Against a real HAProxy: the application behind the backend fails its
/// check and HAProxy shows the server DOWN, by the agent: HAProxy's own
/// check connects to another port, which stays open, so it never sees the
/// failure.
#[test]
fn haproxy_takes_the_server_down_when_its_check_fails() {
    use crate::haproxy::{DOWN, Haproxy, UP};
    let dir = TempDir::new("health-haproxy");
    let app = App::start(200);
    let agent = agent(&dir, r#"{"status":"UP"}"#, &http_check(&app, 1, 2), &[]);
    let Some(haproxy) = Haproxy::start(&dir, agent.port(), "") else {
        return;
    };
    haproxy.wait_for("start", &[("srv_op_state", UP), ("stat.status", "UP")]);
    app.set(503);
    haproxy.wait_for(
        "the check fails",
        &[
            ("srv_op_state", DOWN),
            ("stat.status", "~DOWN"),
            ("stat.last_agt", "~check app failed"),
        ],
    );
    app.set(200);
    haproxy.wait_for(
        "the check passes again",
        &[("srv_op_state", UP), ("stat.status", "UP")],
    );
}

/// Two HAProxy processes probing from their own source addresses split
/// `maxconn_total = 100`: each shows a limit of 50; when one stops, the
/// other is given all 100 once the agent no longer counts the silent one
/// (its patience: three of its intervals and a second).
#[test]
fn haproxy_load_balancers_split_maxconn_total() {
    use crate::haproxy::{Haproxy, UP};
    let dir = TempDir::new("health-split");
    let (dir_a, dir_b) = (
        TempDir::new("health-split-a"),
        TempDir::new("health-split-b"),
    );
    let agent = agent(
        &dir,
        r#"{"status":"UP"}"#,
        "maxconn_total = 100\n",
        &["--seen-window", "5000"],
    );
    let Some(lb_a) = Haproxy::start(&dir_a, agent.port(), "source 127.0.0.2") else {
        return;
    };
    let Some(lb_b) = Haproxy::start(&dir_b, agent.port(), "source 127.0.0.3") else {
        return;
    };
    for lb in [&lb_a, &lb_b] {
        lb.wait_for(
            "both probe: half each",
            &[("srv_op_state", UP), ("stat.slim", "50")],
        );
    }
    let (_, out, _) = agent.ctl(&["status"]);
    assert!(
        out.contains("maxconn 50: maxconn_total 100 split across 2 load balancers"),
        "{out}"
    );
    drop(lb_b);
    lb_a.wait_for("one stopped: all for the other", &[("stat.slim", "100")]);
    let status = ctl_status(&agent);
    assert_eq!(status["health"]["load_balancers"], 1, "{status}");
}

#[test]
fn a_fixed_maxconn_in_the_state_wins_over_maxconn_total() {
    let dir = TempDir::new("health-fixed");
    let agent = agent(
        &dir,
        r#"{"status":"UP","maxconn":30}"#,
        "maxconn_total = 100\n",
        &[],
    );
    assert_eq!(agent.probe(), "up ready 100% maxconn:30\n");
    agent.probe();
    agent.wait_log("the state sets maxconn 30, which wins over maxconn_total 100");
    let (_, out, _) = agent.ctl(&["status"]);
    assert!(
        out.contains(
            "maxconn 30 from the state (maxconn_total 100 is ignored while the state sets one)"
        ),
        "{out}"
    );
    // Logged once, not per probe.
    assert_eq!(agent.log().matches("wins over maxconn_total").count(), 1);
    // Without it, maxconn_total applies.
    let (code, out, err) = agent.ctl(&["maxconn", "none"]);
    assert_eq!(code, 0, "{out}{err}");
    agent.wait_reply("up ready 100% maxconn:100\n");
}

/// One-shot mode runs each check once, reads the monitors once and gives
/// the reply the agent would give to one load balancer.
#[test]
fn one_shot_reply_runs_the_checks_once() {
    let dir = TempDir::new("health-oneshot");
    let app = App::start(503);
    let (path, file) = (dir.join("state.json"), dir.join("hapgent.toml"));
    write_state(&path, r#"{"status":"UP"}"#);
    fs::write(
        &file,
        format!("maxconn_total = 80\n{}", http_check(&app, 2, 2)),
    )
    .unwrap();
    let run = |json: bool| {
        let mut args = vec![
            "reply",
            "--config",
            file.to_str().unwrap(),
            "--state-file",
            path.to_str().unwrap(),
        ];
        if json {
            args.push("--json");
        }
        let (code, out, err) = Agent::builder().args(&args).run();
        assert_eq!(code, 0, "{err}");
        out
    };
    assert_eq!(
        run(false),
        "down ready 100% maxconn:80 # check app failed\n"
    );
    let v: serde_json::Value = serde_json::from_str(run(true).trim()).unwrap();
    assert_eq!(
        v["reasons"][0], "down because check app failed 1× (HTTP 503)",
        "{v}"
    );
    app.set(200);
    assert_eq!(run(false), "up ready 100% maxconn:80\n");
}
