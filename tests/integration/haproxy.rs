//! Against a real HAProxy: its view of the server, read through its stats
//! socket, follows hapgent.
//!
//! Where `haproxy` is not installed these tests say so loudly and pass;
//! with `HAPGENT_REQUIRE_HAPROXY=1` (set by `.ci/run`) that is a failure.
//! `LB_TEST_HAPROXY` names another HAProxy binary, as for hapgent-lb's
//! tests (`lb/tests/newer-haproxy.sh` runs Debian 13's 3.0 that way).

use crate::util::*;
use hapgent_testkit::haproxy::{self, Mode};
use std::collections::HashMap;
use std::fs;
use std::net::TcpListener;
use std::time::{Duration, Instant};

/// A foreground HAProxy with one backend whose server uses hapgent.
pub struct Haproxy {
    inner: hapgent_testkit::Haproxy,
    // Keeps the server's port open so HAProxy's regular check passes.
    _server: TcpListener,
}

impl Haproxy {
    /// Starts HAProxy, or returns `None` (after saying so) when it is not
    /// installed and not required.
    pub(crate) fn start(dir: &TempDir, agent_port: u16, extra: &str) -> Option<Haproxy> {
        Haproxy::start_backends(dir, agent_port, &[("be", "200ms", extra)])
    }

    /// Starts HAProxy with one backend per (name, agent-inter, extra
    /// server keywords), each with a server s1 that uses hapgent.
    pub fn start_backends(
        dir: &TempDir,
        agent_port: u16,
        backends: &[(&str, &str, &str)],
    ) -> Option<Haproxy> {
        if !haproxy::available() {
            return None;
        }
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let server_port = server.local_addr().unwrap().port();
        // `timeout check` only bounds an agent that never answers: the
        // tests run on busy machines, and a slow answer is not a failure.
        let mut text = format!(
            "global
    stats socket {socket} mode 600 level admin
    log stderr format short local0 info
defaults
    mode tcp
    log global
    option log-health-checks
    timeout connect 1s
    timeout client 5s
    timeout server 5s
    timeout check 30s
",
            socket = haproxy::admin_socket(dir.path()).display()
        );
        for (name, inter, extra) in backends {
            text.push_str(&format!(
                "backend {name}
    server s1 127.0.0.1:{server_port} weight 100 check inter 500ms agent-check agent-addr 127.0.0.1 agent-port {agent_port} agent-inter {inter} {extra}
"
            ));
        }
        Some(Haproxy {
            inner: hapgent_testkit::Haproxy::start(dir.path(), &text, Mode::Foreground, &[]),
            _server: server,
        })
    }

    /// Everything HAProxy wrote (its log lines included).
    pub fn log_text(&self) -> String {
        self.inner.log_text()
    }

    /// The server's view from `show servers state be` and `show stat`,
    /// merged into one map of column name to value.
    /// `view` for backend `backend`.
    pub(crate) fn view_of(&self, backend: &str) -> HashMap<String, String> {
        self.inner.server_view(backend, "s1")
    }

    /// Polls until every (column, value) in `want` holds (a value starting
    /// with `~` need only be contained); panics with the last view and
    /// HAProxy's log after `PATIENCE`.
    pub(crate) fn wait_for(&self, step: &str, want: &[(&str, &str)]) {
        self.wait_for_in("be", step, want)
    }

    /// `wait_for` in backend `backend`.
    pub fn wait_for_in(&self, backend: &str, step: &str, want: &[(&str, &str)]) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let view = self.view_of(backend);
            let missing: Vec<String> = want
                .iter()
                .filter(|(k, v)| !matches(view.get(*k).map_or("", String::as_str), v))
                .map(|(k, v)| format!("{k}={v} (is {:?})", view.get(*k)))
                .collect();
            if missing.is_empty() {
                return;
            }
            if Instant::now() > deadline {
                let log = self.inner.log_text();
                panic!("{step}: HAProxy never showed {missing:?}\nview: {view:?}\nlog:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn matches(value: &str, want: &str) -> bool {
    // HAProxy marks a check running at this moment with "* ".
    let value = value.trim_start_matches("* ");
    match want.strip_prefix('~') {
        Some(part) => value.contains(part),
        None => value == want,
    }
}

/// HAProxy's srv_op_state: 0 stopped (down), 2 running (up).
pub(crate) const DOWN: &str = "0";
pub(crate) const UP: &str = "2";

#[test]
fn haproxy_follows_hapgent() {
    let dir = TempDir::new("haproxy");
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"UP"}"#);
    let agent = Agent::builder().state(&path).start();
    let Some(haproxy) = Haproxy::start(&dir, agent.port(), "") else {
        return;
    };

    haproxy.wait_for(
        "start",
        &[
            ("srv_op_state", UP),
            ("srv_admin_state", "0"),
            ("srv_uweight", "100"),
            ("stat.status", "UP"),
        ],
    );

    agent.signal(libc::SIGUSR2);
    haproxy.wait_for(
        "SIGUSR2",
        &[("srv_op_state", DOWN), ("stat.status", "~DOWN")],
    );

    agent.signal(libc::SIGUSR1);
    haproxy.wait_for("SIGUSR1", &[("srv_op_state", UP), ("stat.status", "UP")]);
    // Edit the file only once the agent's own save is in it: a re-read
    // first saves what is served, as the README says.
    wait_for("SIGUSR1 saved", || {
        fs::read_to_string(&path).unwrap_or_default() == "{\"status\":\"UP\"}\n"
    });

    // Drain at half weight with a connection limit and a description.
    write_state(
        &path,
        r#"{"status":"DRAIN","weight":50,"maxconn":30,"description":"deploying v2"}"#,
    );
    agent.signal(libc::SIGHUP);
    haproxy.wait_for(
        "DRAIN at 50%",
        &[
            ("srv_op_state", UP),
            ("srv_admin_state", "8"),
            ("srv_uweight", "50"),
            ("stat.status", "~DRAIN"),
            ("stat.slim", "30"),
            ("stat.last_agt", "~deploying v2"),
        ],
    );

    write_state(&path, r#"{"status":"MAINT","weight":50}"#);
    agent.signal(libc::SIGHUP);
    haproxy.wait_for(
        "MAINT",
        &[("srv_admin_state", "1"), ("stat.status", "~MAINT")],
    );

    // UP must clear MAINT (and DRAIN): the old hapgent left servers stuck.
    // Without a weight the configured one (100) comes back.
    write_state(&path, r#"{"status":"DRAIN","weight":50}"#);
    agent.signal(libc::SIGHUP);
    haproxy.wait_for("DRAIN again", &[("srv_admin_state", "8")]);
    write_state(&path, r#"{"status":"UP"}"#);
    agent.signal(libc::SIGHUP);
    haproxy.wait_for(
        "UP after DRAIN",
        &[
            ("srv_op_state", UP),
            ("srv_admin_state", "0"),
            ("srv_uweight", "100"),
            ("stat.status", "UP"),
        ],
    );

    // A DOWN with a reason shows the reason; weight 0 drains traffic.
    write_state(
        &path,
        r#"{"status":"DOWN","weight":0,"description":"disk full"}"#,
    );
    agent.signal(libc::SIGHUP);
    haproxy.wait_for(
        "DOWN with description",
        &[
            ("srv_op_state", DOWN),
            ("stat.last_agt", "~disk full"),
            ("srv_uweight", "0"),
        ],
    );
}

/// The drain flag file, with HAProxy sending an `agent-send` payload:
/// creating the file drains the server, removing it makes it ready again.
#[test]
fn haproxy_follows_the_drain_file() {
    let dir = TempDir::new("haproxy-drain");
    let path = dir.join("state.json");
    let drain = dir.join("drain");
    write_state(&path, r#"{"status":"UP"}"#);
    let agent = Agent::builder()
        .state(&path)
        .args(&["--drain-file", drain.to_str().unwrap()])
        .start();
    let Some(haproxy) = Haproxy::start(&dir, agent.port(), "agent-send \"web\\n\"") else {
        return;
    };
    haproxy.wait_for("start", &[("srv_op_state", UP), ("srv_admin_state", "0")]);
    fs::write(&drain, "").unwrap();
    haproxy.wait_for(
        "drain file created",
        &[("srv_admin_state", "8"), ("stat.status", "~DRAIN")],
    );
    fs::remove_file(&drain).unwrap();
    haproxy.wait_for(
        "drain file removed",
        &[("srv_admin_state", "0"), ("stat.status", "UP")],
    );
}

/// Two HAProxy processes act as two load balancers, probing from their own
/// source addresses: `ctl drain --wait-seen` returns only once both have
/// been served DRAIN, `ctl probers` lists both, and when one stops,
/// `--wait-seen` names it and exits 75.
#[test]
fn wait_seen_confirms_every_load_balancer() {
    let dir = TempDir::new("haproxy-seen");
    let (dir_a, dir_b) = (
        TempDir::new("haproxy-seen-a"),
        TempDir::new("haproxy-seen-b"),
    );
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"UP"}"#);
    // A load balancer silent for 5 s has stopped (they probe every
    // 200 ms): long enough that a busy machine never looks like that.
    let agent = Agent::builder()
        .state(&path)
        .args(&["--seen-window", "5000"])
        .start();
    let Some(lb_a) = Haproxy::start(&dir_a, agent.port(), "source 127.0.0.2") else {
        return;
    };
    let Some(lb_b) = Haproxy::start(&dir_b, agent.port(), "source 127.0.0.3") else {
        return;
    };
    for lb in [&lb_a, &lb_b] {
        lb.wait_for("start", &[("srv_op_state", UP), ("srv_admin_state", "0")]);
    }
    let probers = || {
        let (_, out, _) = agent.ctl(&["probers", "--json"]);
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        let mut addresses: Vec<String> = v["probers"]
            .as_array()
            .unwrap()
            .iter()
            // A load balancer counts once it has probed twice.
            .filter(|p| p["probes"].as_u64().unwrap() >= 2)
            .map(|p| p["address"].as_str().unwrap().to_string())
            .collect();
        addresses.sort();
        addresses
    };
    wait_for("both load balancers probe", || probers().len() == 2);
    assert_eq!(probers(), ["127.0.0.2", "127.0.0.3"]);

    let (code, out, err) = agent.ctl(&["drain", "--wait-seen", "--timeout", "20s"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("127.0.0.2 has seen version 1"), "{out}");
    assert!(out.contains("127.0.0.3 has seen version 1"), "{out}");
    // Once ctl returned, both were served DRAIN: HAProxy acts on the line
    // as soon as it reads it.
    for lb in [&lb_a, &lb_b] {
        lb.wait_for(
            "after --wait-seen",
            &[("srv_admin_state", "8"), ("stat.status", "~DRAIN")],
        );
    }

    // One load balancer stops: it cannot confirm, and is named.
    drop(lb_b);
    let (code, out, err) = agent.ctl(&["ready", "--wait-seen", "--timeout", "20s"]);
    assert_eq!(code, 75, "{out}{err}");
    assert!(out.contains("127.0.0.2 has seen version 2"), "{out}");
    assert!(
        err.contains("127.0.0.3 stopped probing"),
        "the silent load balancer is named: {err}"
    );
    lb_a.wait_for("ready", &[("srv_admin_state", "0"), ("stat.status", "UP")]);
}

/// One hapgent, several services selected by `agent-send`: HAProxy's
/// backends each follow their own service, a backend asking about a
/// service that does not exist sees no change (its health check alone
/// decides), one without `agent-send` follows the default service, and
/// hundreds of probes with payloads never show a reset or an incomplete
/// line.
#[test]
fn backends_follow_their_services() {
    let dir = TempDir::new("haproxy-services");
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"UP"}"#);
    write_state(&dir.join("api.json"), r#"{"status":"UP"}"#);
    write_state(&dir.join("web.json"), r#"{"status":"UP","weight":50}"#);
    let config = dir.join("hapgent.toml");
    fs::write(
        &config,
        format!(
            "[services.api]\nstate_file = {:?}\n[services.web]\nstate_file = {:?}\n",
            dir.join("api.json"),
            dir.join("web.json")
        ),
    )
    .unwrap();
    let agent = Agent::builder()
        .state(&path)
        .args(&["--config", config.to_str().unwrap()])
        .start();
    let Some(lb) = Haproxy::start_backends(
        &dir,
        agent.port(),
        &[
            ("api", "200ms", "agent-send \"api\\n\""),
            ("web", "200ms", "agent-send \"web\\n\""),
            ("nosuch", "200ms", "agent-send \"nosuch\\n\""),
            ("plain", "200ms", ""),
            ("busy", "10ms", "agent-send \"api\\n\""),
        ],
    ) else {
        return;
    };
    let up = [("srv_op_state", UP), ("srv_admin_state", "0")];
    for backend in ["api", "plain", "nosuch"] {
        lb.wait_for_in(backend, "start", &up);
    }
    // Every backend's agent check has run (the first ones are spread over
    // an interval): --wait-seen can only count on a load balancer that
    // has probed.
    for service in ["", "api", "web", "nosuch"] {
        wait_for_probes(&agent, service, 2);
    }
    lb.wait_for_in("web", "start", &[("srv_uweight", "50")]);
    // The unknown service: an empty line, which HAProxy takes as "no status
    // change" (CHECKED), while the health check keeps it UP.
    lb.wait_for_in(
        "nosuch",
        "no news",
        &[("stat.agent_status", "CHECKED"), ("stat.status", "UP")],
    );

    let (code, out, err) = agent.ctl(&[
        "--service",
        "api",
        "drain",
        "--wait-seen",
        "--timeout",
        "20s",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    for backend in ["api", "busy"] {
        lb.wait_for_in(backend, "api drained", &[("srv_admin_state", "8")]);
    }
    for backend in ["web", "plain", "nosuch"] {
        let view = lb.view_of(backend);
        assert_eq!(
            view.get("srv_admin_state").map(String::as_str),
            Some("0"),
            "{backend}: {view:?}"
        );
    }
    // The default service moves the backend without agent-send only.
    let (code, out, err) = agent.ctl(&["maint", "--wait-seen", "--timeout", "20s"]);
    assert_eq!(code, 0, "{out}{err}");
    lb.wait_for_in("plain", "default in maint", &[("srv_admin_state", "1")]);
    for backend in ["web", "nosuch"] {
        let view = lb.view_of(backend);
        assert_eq!(
            view.get("srv_admin_state").map(String::as_str),
            Some("0"),
            "{backend}: {view:?}"
        );
    }
    lb.wait_for_in(
        "nosuch",
        "still no news",
        &[("stat.agent_status", "CHECKED"), ("stat.status", "UP")],
    );

    // Hundreds of probes with a payload (every 10 ms on "busy"): none
    // ends in a reset or an incomplete line.
    wait_for_probes(&agent, "api", 500);
    let log = lb.log_text();
    for bad in ["incomplete", "reset", "L7RSP", "L4CON", "L7TOUT"] {
        assert!(!log.contains(bad), "HAProxy saw {bad:?}:\n{log}");
    }
    // "* L7OK": the last check passed and another is running right now.
    let view = lb.view_of("busy");
    let status = view
        .get("stat.agent_status")
        .map(|s| s.trim_start_matches("* "));
    assert_eq!(status, Some("L7OK"), "{view:?}");
}

/// Waits until the probers asking about `service` have probed `count`
/// times in all.
fn wait_for_probes(agent: &Agent, service: &str, count: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, out, _) = agent.ctl(&["probers", "--json"]);
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        let total: u64 = v["probers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["service"] == service)
            .map(|p| p["probes"].as_u64().unwrap())
            .sum();
        if total >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {total} probes for {service}: {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
