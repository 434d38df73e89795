//! The API's backends are `status --json`'s: the same bytes for the
//! listing, the same object for one backend, read from one HAProxy.

use crate::util::*;
use std::time::Duration;

/// HAProxy with `web` (web1, checked) and `more` (a server drained, one in
/// maintenance), and hapgent-lb serving its API.
fn setup(name: &str) -> (TempDir, Haproxy, Lb) {
    let dir = TempDir::new(name);
    let be = Backend::start().port;
    let fe = free_port();
    let extra = format!(
        "backend more\n    server m1 127.0.0.1:{be}\n    server m2 127.0.0.1:{be} weight 7\n"
    );
    let h = Haproxy::start(&dir, &haproxy_config(&dir.0, fe, be, &extra), fe);
    cli(&h.admin, "set server more/m1 state drain").unwrap();
    cli(&h.admin, "set server more/m2 state maint").unwrap();
    let lb = Lb::start(&dir, &h, &[]);
    (dir, h, lb)
}

fn status_json(h: &Haproxy, args: &[&str]) -> String {
    let out = lb_command()
        .arg("status")
        .arg("--json")
        .args(args)
        .arg("--haproxy-socket")
        .arg(&h.admin)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Polls until web1's first check passed, so that what HAProxy says of it
/// stays the same from one read to the next.
fn wait_checked(h: &Haproxy) {
    poll(Duration::from_secs(30), "web1's first check", || {
        let stat = cli(&h.admin, "show stat").ok()?;
        stat.lines()
            .any(|l| l.starts_with("web,web1,") && l.contains(",L4OK,"))
            .then_some(())
    });
}

#[test]
fn get_backends_is_byte_for_byte_status_json() {
    let (_dir, h, lb) = setup("backends-json");
    wait_checked(&h);
    // Two reads, a moment apart: retried while HAProxy's counters move
    // between them, never longer than the deadline.
    let (api, cli) = poll(Duration::from_secs(30), "equal answers", || {
        let r = lb.unix.get("/v1/backends");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"));
        let api = r.text();
        let cli = status_json(&h, &[]);
        (api == cli).then_some((api, cli))
    });
    assert_eq!(api, cli);
    let v: serde_json::Value = serde_json::from_str(&api).unwrap();
    let names: Vec<&str> = v["backends"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["name"].as_str())
        .collect();
    assert_eq!(names, ["web", "more"], "{api}");
    assert_eq!(v["backends"][1]["servers"][1]["weight"], 7, "{api}");
}

#[test]
fn get_one_backend_is_its_object_in_status_json() {
    let (_dir, h, lb) = setup("backend-json");
    wait_checked(&h);
    let (one, listed) = poll(Duration::from_secs(30), "equal answers", || {
        let r = lb.unix.get("/v1/backends/more");
        assert_eq!(r.status, 200, "{}", r.text());
        let one = r.json();
        let cli: serde_json::Value =
            serde_json::from_str(&status_json(&h, &["--backend", "more"])).unwrap();
        let listed = cli["backends"][0].clone();
        (one == listed).then_some((one, listed))
    });
    assert_eq!(one, listed);
    let admins: Vec<&str> = one["servers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["admin"].as_str())
        .collect();
    assert_eq!(admins, ["drain", "maint"], "{one}");
    let missing = lb.unix.get("/v1/backends/nope");
    assert_eq!(missing.status, 404, "{}", missing.text());
    assert_eq!(
        missing.json()["error"],
        "HAProxy has no backend \"nope\"",
        "{}",
        missing.text()
    );
}
