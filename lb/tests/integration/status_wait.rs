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
