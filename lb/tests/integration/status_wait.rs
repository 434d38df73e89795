//! `status` and `wait` agree with what the test did through HAProxy's
//! runtime API.

use crate::util::*;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// A server that accepts connections and never answers: a session to it
/// stays open as long as the client holds it.
fn silent_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            held.push(s);
        }
    });
    port
}

fn setup(name: &str) -> (TempDir, Haproxy, u16) {
    let dir = TempDir::new(name);
    let be = Backend::start();
    let slow_fe = free_port();
    let slow_be = silent_server();
    let fe = free_port();
    let extra = format!(
        "frontend fe_slow\n    bind 127.0.0.1:{slow_fe}\n    default_backend slow\n\
         backend slow\n    server slow1 127.0.0.1:{slow_be}\n"
    );
    let h = Haproxy::start(&dir, &haproxy_config(&dir.0, fe, be.port, &extra), fe);
    (dir, h, slow_fe)
}

fn lb(h: &Haproxy, args: &[&str]) -> std::process::Output {
    lb_command()
        .args(args)
        .arg("--haproxy-socket")
        .arg(&h.admin)
        .arg("--poll-interval")
        .arg("50")
        .output()
        .unwrap()
}

#[test]
fn status_shows_a_drain_done_through_the_runtime_api() {
    let (_dir, h, _) = setup("status");
    let before = lb(&h, &["status", "--json"]);
    assert!(before.status.success(), "{before:?}");
    let v: serde_json::Value = serde_json::from_slice(&before.stdout).unwrap();
    let web1 = &v["backends"][0]["servers"][0];
    assert_eq!(
        (web1["server"].as_str(), web1["admin"].as_str()),
        (Some("web1"), Some("ready"))
    );

    cli(&h.admin, "set server web/web1 state drain").unwrap();
    let after = lb(&h, &["status", "--backend", "web"]);
    let text = String::from_utf8_lossy(&after.stdout);
    assert!(after.status.success(), "{after:?}");
    let line = text
        .lines()
        .find(|l| l.starts_with("web "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains(" drain "), "{text}");
    assert!(
        !text.contains("slow1"),
        "--backend web lists only web: {text}"
    );
}

#[test]
fn wait_holds_until_drained_with_no_sessions_left() {
    let (_dir, h, slow_fe) = setup("wait");
    // A session held open through HAProxy to slow1.
    let mut client = TcpStream::connect(("127.0.0.1", slow_fe)).unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    poll(Duration::from_secs(30), "a session on slow1", || {
        let s =
            String::from_utf8(lb(&h, &["status", "--json", "--backend", "slow"]).stdout).ok()?;
        s.contains("\"sessions\": 1").then_some(())
    });
    cli(&h.admin, "set server slow/slow1 state drain").unwrap();

    let timed_out = lb(
        &h,
        &[
            "wait",
            "slow/slow1",
            "--admin",
            "drain",
            "--sessions-max",
            "0",
            "--timeout",
            "500ms",
        ],
    );
    let err = String::from_utf8_lossy(&timed_out.stderr);
    assert_eq!(timed_out.status.code(), Some(75), "{err}");
    assert!(
        err.contains("admin drain") && err.contains("1 sessions (want at most 0)"),
        "{err}"
    );

    drop(client);
    let done = lb(
        &h,
        &[
            "wait",
            "slow/slow1",
            "--admin",
            "drain",
            "--sessions-max",
            "0",
            "--timeout",
            "20s",
        ],
    );
    assert!(done.status.success(), "{done:?}");
    assert!(
        String::from_utf8_lossy(&done.stdout).contains("admin drain"),
        "{done:?}"
    );
}

#[test]
fn wait_for_an_unknown_server_fails_at_once() {
    let (_dir, h, _) = setup("unknown");
    let out = lb(&h, &["wait", "web/nope", "--timeout", "30s"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("backend \"web\" has no server \"nope\""),
        "{out:?}"
    );
}

#[test]
fn wait_for_several_servers_names_each_one_still_unmet() {
    let dir = TempDir::new("several");
    let be = Backend::start();
    let fe = free_port();
    let extra = format!(
        "backend pool\n    server p1 127.0.0.1:{port}\n    server p2 127.0.0.1:{port}\n",
        port = be.port
    );
    let h = Haproxy::start(&dir, &haproxy_config(&dir.0, fe, be.port, &extra), fe);
    cli(&h.admin, "set server pool/p1 state drain").unwrap();
    let wait = |timeout: &str| {
        lb(
            &h,
            &[
                "wait",
                "pool/p1",
                "pool/p2",
                "web/web1",
                "--admin",
                "drain",
                "--timeout",
                timeout,
            ],
        )
    };

    let timed_out = wait("500ms");
    let err = String::from_utf8_lossy(&timed_out.stderr);
    assert_eq!(timed_out.status.code(), Some(75), "{err}");
    assert!(err.contains("2 of 3 servers unmet: pool/p2: "), "{err}");
    assert!(
        err.contains("| web/web1: ") && err.contains("still admin is ready (want drain)"),
        "{err}"
    );
    assert!(!err.contains("pool/p1:"), "p1 is drained: {err}");

    cli(&h.admin, "set server pool/p2 state drain").unwrap();
    cli(&h.admin, "set server web/web1 state drain").unwrap();
    let done = wait("20s");
    let out = String::from_utf8_lossy(&done.stdout);
    assert!(done.status.success(), "{done:?}");
    let servers: Vec<&str> = out.lines().filter_map(|l| l.split(':').next()).collect();
    assert_eq!(servers, ["pool/p1", "pool/p2", "web/web1"], "{out}");

    let bad = lb(&h, &["wait", "pool/p1", "pool/p;2"]);
    assert_eq!(bad.status.code(), Some(64), "{bad:?}");
    let unknown = lb(&h, &["wait", "pool/p1", "pool/p3", "--timeout", "30s"]);
    assert_eq!(unknown.status.code(), Some(1), "{unknown:?}");
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("backend \"pool\" has no server \"p3\""),
        "{unknown:?}"
    );
}

#[test]
fn status_and_wait_read_hundreds_of_servers_in_one_poll() {
    // 600 servers: `show stat` is about 130 KB, read in several pieces,
    // rows cut across reads.
    let dir = TempDir::new("many");
    let be = Backend::start();
    let fe = free_port();
    let mut extra = String::new();
    let mut targets = Vec::new();
    for b in 0..12 {
        extra.push_str(&format!("backend pool{b}\n"));
        for s in 0..50 {
            extra.push_str(&format!("    server s{s} 127.0.0.1:{}\n", be.port));
            targets.push(format!("pool{b}/s{s}"));
        }
    }
    let h = Haproxy::start(&dir, &haproxy_config(&dir.0, fe, be.port, &extra), fe);

    let status = lb(&h, &["status", "--json"]);
    assert!(status.status.success(), "{status:?}");
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let listed: Vec<String> = v["backends"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["servers"].as_array().unwrap())
        .map(|s| {
            format!(
                "{}/{}",
                s["backend"].as_str().unwrap(),
                s["server"].as_str().unwrap()
            )
        })
        .filter(|name| name.starts_with("pool"))
        .collect();
    assert_eq!(listed, targets);

    let mut args = vec!["wait"];
    args.extend(targets.iter().map(String::as_str));
    args.extend(["--op", "up", "--sessions-max", "0", "--timeout", "30s"]);
    let done = lb(&h, &args);
    let out = String::from_utf8_lossy(&done.stdout);
    assert!(done.status.success(), "{done:?}");
    assert_eq!(out.lines().count(), 600, "{out}");
}

#[test]
fn wait_with_an_unreachable_socket_exits_69_at_once() {
    let dir = TempDir::new("waitnohaproxy");
    let socket = dir.join("none.sock");
    let out = lb_command()
        .args(["wait", "web/web1", "--timeout", "30s", "--haproxy-socket"])
        .arg(&socket)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{err}");
    assert!(
        err.contains(&socket.display().to_string()) && err.contains("No such file or directory"),
        "{err}"
    );
}

#[test]
fn status_without_haproxy_exits_69() {
    let dir = TempDir::new("nohaproxy");
    let out = lb_command()
        .args(["status", "--haproxy-socket"])
        .arg(dir.join("none.sock"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(69), "{out:?}");
}

#[test]
fn check_config_names_sources_and_refuses_public_tcp() {
    let out = lb_command()
        .env("HAPGENT_LB_MAX_BODY", "99")
        .args(["check-config", "--header-timeout", "700"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains("max_body = 99") && text.contains("# env HAPGENT_LB_MAX_BODY"),
        "{text}"
    );
    assert!(
        text.contains("header_timeout = 700") && text.contains("# flag --header-timeout"),
        "{text}"
    );
    let public = lb_command()
        .args([
            "serve",
            "--listen-tcp",
            "0.0.0.0:9778",
            "--token-file",
            "/dev/null",
        ])
        .output()
        .unwrap();
    assert_eq!(public.status.code(), Some(78), "{public:?}");
}
