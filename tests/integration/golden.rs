//! Golden answers: the exact text of `hapgent ctl status --json`, `ctl
//! probers --json`, plain `ctl status`, `ctl metrics`, a control protocol
//! failure and the `/metrics` HTTP answer, for one fixed configuration (the
//! default service and a service `api`, each probed once). Other tools
//! parse these, so a change in a byte (a field's order, a space) shows here.
//!
//! Only what depends on timing is normalised, each by a rule written next
//! to it: in JSON answers every `*_ms_ago` number becomes 0; in text,
//! "N.N s ago" becomes "T s ago"; in metrics, the values of
//! `hapgent_uptime_seconds` and of `hapgent_prober_last_probe_timestamp_seconds`
//! become `T`, and the build version is written `VERSION`; in the HTTP
//! answer, `Content-Length` is checked against the body, then written `LEN`.

use crate::util::*;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;

/// An agent with the default service (UP, weight 40, maxconn 300, a
/// description) and `api` (DRAIN), probed once about each, default first.
fn fixed_agent(dir: &TempDir, args: &[&str]) -> Agent {
    let state = dir.join("state.json");
    write_state(
        &state,
        r#"{"status":"UP","weight":40,"maxconn":300,"description":"v2 \"blue\""}"#,
    );
    write_state(&dir.join("api.json"), r#"{"status":"DRAIN","weight":5}"#);
    let config = dir.join("hapgent.toml");
    fs::write(
        &config,
        format!("[services.api]\nstate_file = {:?}\n", dir.join("api.json")),
    )
    .unwrap();
    let mut all = vec!["--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    let agent = Agent::builder().state(&state).args(&all).start();
    assert_eq!(
        probe_with(agent.addrs[0], b"\n"),
        "up ready 40% maxconn:300 # v2 \"blue\"\n"
    );
    assert_eq!(probe_with(agent.addrs[0], b"api\n"), "up drain 5%\n");
    agent
}

fn probe_with(addr: SocketAddr, payload: &[u8]) -> String {
    let mut s = TcpStream::connect_timeout(&addr, PATIENCE).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(payload).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// `hapgent ctl ARGS`' stdout, which must succeed.
fn ctl(agent: &Agent, args: &[&str]) -> String {
    let (code, out, err) = agent.ctl(args);
    assert_eq!(code, 0, "{args:?}: {out}{err}");
    out
}

/// JSON: every number under a key ending in `_ms_ago` becomes 0. The text
/// is rewritten in place, so the order of the fields stays as sent.
fn normalise_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("_ms_ago\":") {
        let end = at + "_ms_ago\":".len();
        out.push_str(&rest[..end]);
        rest = rest[end..].trim_start_matches(|c: char| c.is_ascii_digit());
        out.push('0');
    }
    out.push_str(rest);
    out
}

/// Text: "N.N s ago" becomes "T s ago".
fn normalise_ago(text: &str) -> String {
    text.lines()
        .map(|line| {
            let Some(at) = line.find(" s ago") else {
                return line.to_string();
            };
            let start = line[..at]
                .rfind(|c: char| !c.is_ascii_digit() && c != '.')
                .map_or(0, |i| i + 1);
            format!("{}T{}", &line[..start], &line[at..])
        })
        .map(|l| l + "\n")
        .collect()
}

/// Metrics: uptime and last-probe times become `T`, the version `VERSION`.
fn normalise_metrics(text: &str) -> String {
    let text = text.replace(
        &format!("version=\"{}\"", env!("CARGO_PKG_VERSION")),
        "version=\"VERSION\"",
    );
    text.lines()
        .map(|line| {
            let timed = line.starts_with("hapgent_uptime_seconds ")
                || line.starts_with("hapgent_prober_last_probe_timestamp_seconds{");
            match line.rsplit_once(' ') {
                Some((series, _)) if timed => format!("{series} T\n"),
                _ => format!("{line}\n"),
            }
        })
        .collect()
}

/// Compares, printing the whole of what came when it differs.
fn assert_golden(what: &str, got: &str, want: &str) {
    assert!(
        got == want,
        "{what} differs from the golden text; got:\n{got}\n---- want:\n{want}"
    );
}

const STATUS_JSON: &str = r#"{"ok":true,"probers":[{"address":"127.0.0.1","first_probe_ms_ago":0,"last_probe_ms_ago":0,"probes":1,"probing":false,"reply":"up drain 5%","service":"api","version":0},{"address":"127.0.0.1","first_probe_ms_ago":0,"last_probe_ms_ago":0,"probes":1,"probing":false,"reply":"up ready 40% maxconn:300 # v2 \"blue\"","service":"","version":0}],"reply":"up ready 40% maxconn:300 # v2 \"blue\"","saved":true,"seen_window_ms":30000,"service":"","services":[{"reply":"up ready 40% maxconn:300 # v2 \"blue\"","saved":true,"service":"","state":{"description":"v2 \"blue\"","maxconn":300,"status":"UP","weight":40},"version":0},{"reply":"up drain 5%","saved":true,"service":"api","state":{"status":"DRAIN","weight":5},"version":0}],"state":{"description":"v2 \"blue\"","maxconn":300,"status":"UP","weight":40},"v":1,"version":0}
"#;

const PROBERS_JSON: &str = r#"{"ok":true,"probers":[{"address":"127.0.0.1","first_probe_ms_ago":0,"last_probe_ms_ago":0,"probes":1,"probing":false,"reply":"up drain 5%","service":"api","version":0},{"address":"127.0.0.1","first_probe_ms_ago":0,"last_probe_ms_ago":0,"probes":1,"probing":false,"reply":"up ready 40% maxconn:300 # v2 \"blue\"","service":"","version":0}],"seen_window_ms":30000,"v":1}
"#;

const STATUS_TEXT: &str = r#"service default:
state:   UP weight=40 maxconn=300 description="v2 \"blue\"" (version 0)
reply:   up ready 40% maxconn:300 # v2 "blue"
service api:
state:   DRAIN weight=5 (version 0)
reply:   up drain 5%
probers: 2 known, 0 probing (probing: probed twice, and silent for no longer than three of its intervals plus a second, at most 30.0 s)
  127.0.0.1                                service api, not probing, last probe T s ago, 1 probes, version 0: up drain 5%
  127.0.0.1                                service default, not probing, last probe T s ago, 1 probes, version 0: up ready 40% maxconn:300 # v2 "blue"
"#;

const METRICS: &str = r#"# HELP hapgent_build_info hapgent's version; always 1.
# TYPE hapgent_build_info gauge
hapgent_build_info{version="VERSION"} 1
# HELP hapgent_uptime_seconds Seconds since hapgent started.
# TYPE hapgent_uptime_seconds gauge
hapgent_uptime_seconds T
# HELP hapgent_service_status The status in the service's state file: 1 for the current one, 0 for the others.
# TYPE hapgent_service_status gauge
hapgent_service_status{service="default",status="UP"} 1
hapgent_service_status{service="default",status="DOWN"} 0
hapgent_service_status{service="default",status="READY"} 0
hapgent_service_status{service="default",status="DRAIN"} 0
hapgent_service_status{service="default",status="FAIL"} 0
hapgent_service_status{service="default",status="MAINT"} 0
hapgent_service_status{service="default",status="STOPPED"} 0
hapgent_service_status{service="api",status="UP"} 0
hapgent_service_status{service="api",status="DOWN"} 0
hapgent_service_status{service="api",status="READY"} 0
hapgent_service_status{service="api",status="DRAIN"} 1
hapgent_service_status{service="api",status="FAIL"} 0
hapgent_service_status{service="api",status="MAINT"} 0
hapgent_service_status{service="api",status="STOPPED"} 0
# HELP hapgent_service_admin_state The administrative state the reply asks HAProxy for (with the flag files): 1 for the current one; none when the reply leaves it unsaid.
# TYPE hapgent_service_admin_state gauge
hapgent_service_admin_state{service="default",state="ready"} 1
hapgent_service_admin_state{service="default",state="drain"} 0
hapgent_service_admin_state{service="default",state="maint"} 0
hapgent_service_admin_state{service="api",state="ready"} 0
hapgent_service_admin_state{service="api",state="drain"} 1
hapgent_service_admin_state{service="api",state="maint"} 0
# HELP hapgent_service_weight_percent The weight the reply carries, in percent of the weight configured in HAProxy.
# TYPE hapgent_service_weight_percent gauge
hapgent_service_weight_percent{service="default"} 40
hapgent_service_weight_percent{service="api"} 5
# HELP hapgent_service_maxconn The connection limit the reply carries (0: unlimited); absent when none is set.
# TYPE hapgent_service_maxconn gauge
hapgent_service_maxconn{service="default"} 300
# HELP hapgent_service_state_version The version of the state served: one more for every change since hapgent started.
# TYPE hapgent_service_state_version gauge
hapgent_service_state_version{service="default"} 0
hapgent_service_state_version{service="api"} 0
# HELP hapgent_service_state_saved 1 if the state file holds the state served, 0 while a save is pending or failing.
# TYPE hapgent_service_state_saved gauge
hapgent_service_state_saved{service="default"} 1
hapgent_service_state_saved{service="api"} 1
# HELP hapgent_probes_total Probes answered, by the service they asked about.
# TYPE hapgent_probes_total counter
hapgent_probes_total{service="default"} 1
hapgent_probes_total{service="api"} 1
# HELP hapgent_probes_refused_total Probes not answered with a state: allow_list (source not allowed, closed), connection_limit (closed), unknown_service (answered with no news).
# TYPE hapgent_probes_refused_total counter
hapgent_probes_refused_total{reason="allow_list"} 0
hapgent_probes_refused_total{reason="connection_limit"} 0
hapgent_probes_refused_total{reason="unknown_service"} 0
# HELP hapgent_state_changes_total State changes, by cause: signal (SIGUSR1/SIGUSR2), ctl (hapgent ctl), file (read at SIGHUP).
# TYPE hapgent_state_changes_total counter
hapgent_state_changes_total{service="default",cause="signal"} 0
hapgent_state_changes_total{service="default",cause="ctl"} 0
hapgent_state_changes_total{service="default",cause="file"} 0
hapgent_state_changes_total{service="api",cause="signal"} 0
hapgent_state_changes_total{service="api",cause="ctl"} 0
hapgent_state_changes_total{service="api",cause="file"} 0
# HELP hapgent_state_save_failures_total Failed attempts to save the state file.
# TYPE hapgent_state_save_failures_total counter
hapgent_state_save_failures_total{service="default"} 0
hapgent_state_save_failures_total{service="api"} 0
# HELP hapgent_probers_evicted_total Probers forgotten to stay within max_probers per service (or the 64 for unknown names); if it keeps rising, raise max_probers.
# TYPE hapgent_probers_evicted_total counter
hapgent_probers_evicted_total 0
# HELP hapgent_prober_last_probe_timestamp_seconds When each load balancer (source address) last probed about each service, Unix time.
# TYPE hapgent_prober_last_probe_timestamp_seconds gauge
hapgent_prober_last_probe_timestamp_seconds{prober="127.0.0.1",service="api"} T
hapgent_prober_last_probe_timestamp_seconds{prober="127.0.0.1",service="default"} T
# HELP hapgent_prober_state_version The state version the last reply to each load balancer carried (0 for an unknown service).
# TYPE hapgent_prober_state_version gauge
hapgent_prober_state_version{prober="127.0.0.1",service="api"} 0
hapgent_prober_state_version{prober="127.0.0.1",service="default"} 0
# HELP hapgent_prober_probes_total Probes from each load balancer about each service since it was first seen.
# TYPE hapgent_prober_probes_total counter
hapgent_prober_probes_total{prober="127.0.0.1",service="api"} 1
hapgent_prober_probes_total{prober="127.0.0.1",service="default"} 1
"#;

const FAILURE: &str = r#"{"error":"bad-request","message":"unknown command \"reboot\" (known: status, probers, metrics, set, wait-seen)","ok":false,"v":1}
"#;

#[test]
fn ctl_answers_are_byte_for_byte_the_golden_ones() {
    let dir = TempDir::new("golden-ctl");
    let agent = fixed_agent(&dir, &[]);
    let status = ctl(&agent, &["status", "--json"]);
    assert_golden("ctl status --json", &normalise_json(&status), STATUS_JSON);
    let probers = ctl(&agent, &["probers", "--json"]);
    assert_golden(
        "ctl probers --json",
        &normalise_json(&probers),
        PROBERS_JSON,
    );
    let text = ctl(&agent, &["status"]);
    assert_golden("ctl status", &normalise_ago(&text), STATUS_TEXT);
    let metrics = ctl(&agent, &["metrics"]);
    assert_golden("ctl metrics", &normalise_metrics(&metrics), METRICS);

    // A failure, straight from the socket: its fields and their order.
    let mut s = UnixStream::connect(agent.control_socket()).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(b"{\"v\":1,\"command\":\"reboot\"}\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert_golden("a bad request's answer", &answer, FAILURE);
}

#[test]
fn the_metrics_page_is_byte_for_byte_the_golden_one() {
    let dir = TempDir::new("golden-metrics");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let listen = format!("127.0.0.1:{port}");
    let agent = fixed_agent(&dir, &["--metrics-listen", &listen]);
    let mut s = TcpStream::connect_timeout(&listen.parse().unwrap(), PATIENCE).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut page = String::new();
    s.read_to_string(&mut page).unwrap();
    let (head, body) = page.split_once("\r\n\r\n").unwrap();
    let length = format!("Content-Length: {}\r\n", body.len());
    assert!(head.contains(&length), "{head}");
    let head = head.replace(&length, "Content-Length: LEN\r\n");
    assert_golden(
        "the /metrics answer's head",
        &head,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: LEN\r\nConnection: close",
    );
    assert_golden("the /metrics body", &normalise_metrics(body), METRICS);
    drop(agent);
}
