//! Several services selected by `agent-send`, the source allow-list and
//! the metrics endpoint, against the real binary.

use crate::util::*;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

/// Starts an agent with services `api` and `web` besides the default.
fn with_services(dir: &TempDir, extra: &str, args: &[&str]) -> Agent {
    let state = dir.join("state.json");
    write_state(&state, r#"{"status":"UP"}"#);
    write_state(&dir.join("api.json"), r#"{"status":"DRAIN","weight":40}"#);
    write_state(&dir.join("web.json"), r#"{"status":"DOWN"}"#);
    let config = dir.join("hapgent.toml");
    fs::write(
        &config,
        format!(
            "[services.api]\nstate_file = {:?}\n[services.web]\nstate_file = {:?}\ndrain_file = {:?}\n{extra}",
            dir.join("api.json"),
            dir.join("web.json"),
            dir.join("web.drain"),
        ),
    )
    .unwrap();
    let mut all = vec!["--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    Agent::builder().state(&state).args(&all).start()
}

/// One probe that sends `payload` first, then reads to the end.
fn probe_with(addr: SocketAddr, payload: &[u8]) -> String {
    let mut s = TcpStream::connect_timeout(&addr, PATIENCE).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(payload).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn the_payload_selects_the_service() {
    let dir = TempDir::new("services");
    let agent = with_services(&dir, "", &[]);
    let addr = agent.addrs[0];
    // (payload, reply)
    let cases: &[(&[u8], &str)] = &[
        (b"api\n", "up drain 40%\n"),
        // Drained, and already served to this prober: the repeat, without
        // the weight (docs/operations.md, "Repeats while drained").
        (b"api\r\n", "up drain\n"),
        (b"web\n", "down 100%\n"),
        (b"\n", "up ready 100%\n"),
        (b"default\n", "up ready 100%\n"),
        // Not configured, or not a name: no news for HAProxy.
        (b"nosuch\n", "\n"),
        (b"a\x00pi\n", "\n"),
        (&[b'x'; 300], "\n"),
        (b"api\nweb\n", "up drain\n"),
    ];
    for (payload, reply) in cases {
        assert_eq!(
            probe_with(addr, payload),
            *reply,
            "{:?}",
            String::from_utf8_lossy(payload)
        );
    }
    // No payload at all: the default service, after payload_timeout.
    assert_eq!(agent.probe(), "up ready 100%\n");
    // A payload sent late, in pieces, within the deadline: an agent that
    // waits 10 s for it (so that how fast this test runs does not matter)
    // has accepted the connection, and holds it, before the rest comes.
    let late_dir = TempDir::new("services-late");
    let late = with_services(&late_dir, "", &["--payload-timeout", "10000"]);
    let open = || {
        fs::read_dir(format!("/proc/{}/fd", late.pid()))
            .unwrap()
            .count()
    };
    let before = open();
    let mut s = TcpStream::connect(late.addrs[0]).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(b"a").unwrap();
    wait_for("the late payload's connection accepted", || open() > before);
    s.write_all(b"pi").unwrap();
    s.write_all(b"\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert_eq!(out, "up drain 40%\n");
    // Each service has its own flag files.
    fs::write(dir.join("web.drain"), "").unwrap();
    wait_for("web drained by its flag file", || {
        probe_with(addr, b"web\n") == "down drain 100%\n"
    });
    assert_eq!(probe_with(addr, b"\n"), "up ready 100%\n");
    // The unknown name is logged once per prober and name. A second line
    // would be logged before the reply, so before the lines about a later
    // SIGHUP.
    agent.wait_log("asked about service \"nosuch\", which is not configured");
    probe_with(addr, b"nosuch\n");
    agent.signal(libc::SIGHUP);
    agent.wait_log("(SIGHUP)");
    assert_eq!(
        agent
            .log()
            .matches("asked about service \"nosuch\"")
            .count(),
        1
    );
}

#[test]
fn ctl_acts_per_service_and_signals_on_every_service() {
    let dir = TempDir::new("services-ctl");
    let agent = with_services(&dir, "", &[]);
    let addr = agent.addrs[0];
    let (code, out, err) = agent.ctl(&["--service", "api", "ready"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(probe_with(addr, b"api\n"), "up ready 40%\n");
    assert_eq!(probe_with(addr, b"web\n"), "down 100%\n");
    assert_eq!(
        fs::read_to_string(dir.join("api.json")).unwrap(),
        "{\"status\":\"READY\",\"weight\":40}\n"
    );
    let (code, _, err) = agent.ctl(&["--service", "nosuch", "drain"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("there is no service \"nosuch\" (configured: api, web)"),
        "{err}"
    );
    let (code, out, err) = agent.ctl(&["--all", "maxconn", "10"]);
    assert_eq!(code, 0, "{out}{err}");
    for (payload, reply) in [
        (&b"api\n"[..], "up ready 40% maxconn:10\n"),
        (b"web\n", "down 100% maxconn:10\n"),
        (b"\n", "up ready 100% maxconn:10\n"),
    ] {
        assert_eq!(probe_with(addr, payload), reply);
    }
    // status shows every service; probers name the service asked about.
    let (_, out, _) = agent.ctl(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let names: Vec<&str> = v["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["service"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["", "api", "web"]);
    probe_with(addr, b"nosuch\n");
    let (_, out, _) = agent.ctl(&["probers", "--json"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let unknown: Vec<&serde_json::Value> = v["probers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["unknown_service"] == true)
        .collect();
    assert_eq!(unknown.len(), 1, "{v}");
    assert_eq!(unknown[0]["service"], "nosuch");
    // Signals are the host switch: every service, each saved.
    agent.signal(libc::SIGUSR2);
    wait_for("every service DOWN", || {
        probe_with(addr, b"api\n").starts_with("down")
            && probe_with(addr, b"web\n").starts_with("down")
            && probe_with(addr, b"\n").starts_with("down")
    });
    wait_for("every file DOWN", || {
        ["state.json", "api.json", "web.json"].iter().all(|f| {
            fs::read_to_string(dir.join(f))
                .unwrap()
                .contains("\"DOWN\"")
        })
    });
}

#[test]
fn the_allow_list_closes_other_sources_unanswered() {
    let dir = TempDir::new("allow");
    let state = dir.join("state.json");
    write_state(&state, r#"{"status":"UP"}"#);
    let agent = Agent::builder()
        .state(&state)
        .args(&["--allow", "127.0.0.2/32,10.0.0.0/8"])
        .start();
    // 127.0.0.1 is not allowed: closed without a reply.
    for _ in 0..3 {
        assert_eq!(agent.probe(), "");
    }
    agent.wait_log("127.0.0.1 is not in the allow-list");
    // From 127.0.0.2 it answers.
    let s = socket2_from(std::net::Ipv4Addr::new(127, 0, 0, 2), agent.addrs[0]);
    assert_eq!(s, "up ready 100%\n");
    let (_, out, _) = agent.ctl(&["metrics"]);
    assert!(
        out.contains("hapgent_probes_refused_total{reason=\"allow_list\"} 3"),
        "{out}"
    );
}

/// A probe from a chosen loopback source address.
fn socket2_from(source: std::net::Ipv4Addr, to: SocketAddr) -> String {
    use std::os::fd::FromRawFd;
    // std cannot bind before connect: do it with libc.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    assert!(fd >= 0);
    let addr = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    let local = addr(source, 0);
    let SocketAddr::V4(to) = to else { panic!() };
    let remote = addr(*to.ip(), to.port());
    unsafe {
        assert_eq!(
            libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len),
            0
        );
        assert_eq!(
            libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len),
            0
        );
    }
    let mut stream = unsafe { TcpStream::from_raw_fd(fd) };
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

/// One HTTP request to the metrics port; the whole response.
fn http(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect_timeout(&addr, PATIENCE).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let _ = s.write_all(request);
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn metrics_are_served_and_hostile_scrapes_answered() {
    let dir = TempDir::new("metrics");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let listen = format!("127.0.0.1:{port}");
    let agent = with_services(&dir, "", &["--metrics-listen", &listen]);
    let metrics: SocketAddr = listen.parse().unwrap();
    probe_with(agent.addrs[0], b"api\n");
    probe_with(agent.addrs[0], b"nosuch\n");
    agent.ctl(&["--service", "web", "weight", "20"]);

    let text = http(metrics, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(
        text.contains("Content-Type: text/plain; version=0.0.4"),
        "{text}"
    );
    for line in [
        "hapgent_build_info{version=\"0.1.0\"} 1",
        "hapgent_service_status{service=\"api\",status=\"DRAIN\"} 1",
        "hapgent_service_status{service=\"api\",status=\"UP\"} 0",
        "hapgent_service_admin_state{service=\"api\",state=\"drain\"} 1",
        "hapgent_service_weight_percent{service=\"api\"} 40",
        "hapgent_service_weight_percent{service=\"web\"} 20",
        "hapgent_service_state_version{service=\"web\"} 1",
        "hapgent_probes_total{service=\"api\"} 1",
        "hapgent_probes_refused_total{reason=\"unknown_service\"} 1",
        "hapgent_state_changes_total{service=\"web\",cause=\"ctl\"} 1",
        "hapgent_prober_state_version{prober=\"127.0.0.1\",service=\"api\"} 0",
        "# TYPE hapgent_probes_total counter",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    // The same text through the control socket.
    let (code, out, _) = agent.ctl(&["metrics"]);
    assert_eq!(code, 0);
    assert!(out.contains("hapgent_service_weight_percent{service=\"web\"} 20"));

    for (request, status) in [
        (&b"GET / HTTP/1.1\r\n\r\n"[..], "404 Not Found"),
        (b"POST /metrics HTTP/1.1\r\n\r\n", "405 Method Not Allowed"),
        (b"\x16\x03\x01garbage\r\n\r\n", "400 Bad Request"),
    ] {
        let answer = http(metrics, request);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{answer}"
        );
    }
    let mut huge = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
    huge.resize(20_000, b'a');
    assert!(http(metrics, &huge).starts_with("HTTP/1.1 431"));
    // A scrape that never finishes is cut off, and never delays a probe.
    let mut stuck = TcpStream::connect(metrics).unwrap();
    stuck.write_all(b"GET /metr").unwrap();
    for _ in 0..20 {
        assert_eq!(agent.probe(), "up ready 100%\n");
    }
    stuck.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut rest = Vec::new();
    let _ = stuck.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
}

#[test]
fn configuration_errors_name_the_entry_and_its_source() {
    let dir = TempDir::new("services-config");
    let file = dir.join("hapgent.toml");
    // (file, environment, flags, message)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str], &'a str);
    let cases: &[Case] = &[
        (
            "[services.\"a b\"]\nstate_file = \"/x\"\n",
            &[],
            &[],
            "services from file",
        ),
        (
            "[services.default]\nstate_file = \"/x\"\n",
            &[],
            &[],
            "\"default\" names the top-level settings",
        ),
        (
            "[services.api]\ndrain_file = \"/x\"\n",
            &[],
            &[],
            "missing field `state_file`",
        ),
        (
            "[services.api]\nstate_file = \"/x\"\ncolour = 1\n",
            &[],
            &[],
            "unknown field: found `colour`",
        ),
        (
            "",
            &[("HAPGENT_ALLOW", "10.0.0.1/8")],
            &[],
            "allow from env HAPGENT_ALLOW: \"10.0.0.1/8\" has bits set",
        ),
        (
            "",
            &[],
            &["--allow", "nonsense"],
            "allow from flag --allow: \"nonsense\" is not an address range",
        ),
        (
            "allow = [\"::/200\"]\n",
            &[],
            &[],
            "prefix length must be 0-128",
        ),
        (
            "",
            &[("HAPGENT_PAYLOAD_TIMEOUT", "0")],
            &[],
            "payload_timeout from env HAPGENT_PAYLOAD_TIMEOUT: must be between 1 and 10000",
        ),
        (
            "",
            &[],
            &["--metrics-listen", "localhost:9"],
            "metrics_listen from flag --metrics-listen",
        ),
        (
            "metrics_listen = \"127.0.0.1\"\n",
            &[],
            &[],
            "metrics_listen from file",
        ),
    ];
    for (toml, env, flags, message) in cases {
        fs::write(&file, toml).unwrap();
        let mut args = vec!["check-config", "--config", file.to_str().unwrap()];
        args.extend_from_slice(flags);
        let (code, _, err) = Agent::builder().args(&args).envs(env).run();
        assert_eq!(code, 78, "{toml} {env:?} {flags:?}: {err}");
        assert!(err.contains(message), "{toml} {env:?} {flags:?}: {err}");
    }
    // A valid file with services is valid TOML in check-config's listing.
    fs::write(
        &file,
        "allow = [\"10.0.0.0/8\"]\n[services.\"api.v2\"]\nstate_file = \"/srv/api.json\"\n",
    )
    .unwrap();
    let (code, out, err) = Agent::builder()
        .args(&["check-config", "--config", file.to_str().unwrap()])
        .run();
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("services.\"api.v2\".state_file = \"/srv/api.json\""),
        "{out}"
    );
    assert!(toml::from_str::<toml::Table>(&out).is_ok(), "{out}");
}
