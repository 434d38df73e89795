//! The HTTP API: backends, and configuration changes that either take
//! (verified) or leave HAProxy exactly as it was.

use crate::util::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

struct Setup {
    dir: TempDir,
    h: Haproxy,
    lb: Lb,
    be: u16,
}

fn setup(name: &str, extra_flags: &[&str]) -> Setup {
    let dir = TempDir::new(name);
    let be = Backend::start().port;
    let fe = free_port();
    let h = Haproxy::start(&dir, &haproxy_config(&dir.0, fe, be, ""), fe);
    let lb = Lb::start(&dir, &h, extra_flags);
    Setup { dir, h, lb, be }
}

fn etag(api: &Api) -> String {
    let r = api.get("/v1/config");
    assert_eq!(r.status, 200, "{}", r.text());
    r.header("etag").unwrap().to_string()
}

/// The test's configuration plus one more backend named `name`.
fn with_backend(s: &Setup, name: &str) -> String {
    haproxy_config(
        &s.dir.0,
        s.h.fe_port,
        s.be,
        &format!("backend {name}\n    server x1 127.0.0.1:{}\n", s.be),
    )
}

#[test]
fn put_of_a_good_config_adds_a_backend_that_get_backends_shows() {
    let s = setup("good", &[]);
    let api = &s.lb.unix;
    let body = with_backend(&s, "added");
    let r = api.put_config(&etag(api), &body);
    assert_eq!(r.status, 200, "{}\n{}", r.text(), s.lb.log_text());
    assert_eq!(std::fs::read_to_string(&s.h.config).unwrap(), body);
    assert_eq!(r.header("etag"), Some(etag(api).as_str()));
    let backends = api.get("/v1/backends").json();
    let names: Vec<&str> = backends["backends"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["name"].as_str())
        .collect();
    assert_eq!(names, ["web", "added"]);
    let one = api.get("/v1/backends/added");
    assert_eq!(
        (one.status, one.json()["servers"][0]["server"].as_str()),
        (200, Some("x1"))
    );
    assert_eq!(api.get("/v1/backends/nope").status, 404);
    let log = s.lb.log_text();
    assert!(
        log.contains("audit: config change by uid ") && log.contains("applied (200)"),
        "{log}"
    );
}

#[test]
fn an_invalid_config_is_refused_with_422_and_changes_nothing() {
    let s = setup("invalid", &[]);
    let api = &s.lb.unix;
    let old = std::fs::read(&s.h.config).unwrap();
    let r = api.put_config(&etag(api), "global\n    no-such-keyword 1\n");
    assert_eq!(r.status, 422, "{}", r.text());
    let output = r.json()["output"].as_str().unwrap_or_default().to_string();
    assert!(
        output.contains("no-such-keyword"),
        "HAProxy's own message: {output}"
    );
    assert_eq!(std::fs::read(&s.h.config).unwrap(), old);
    assert!(s.h.get().unwrap().starts_with("HTTP/1.1 200"));
    let leftovers: Vec<_> = std::fs::read_dir(&s.dir.0)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().contains("candidate"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_bind_on_a_taken_address_is_refused_with_422_before_any_reload() {
    let s = setup("taken", &[]);
    let api = &s.lb.unix;
    let old = std::fs::read(&s.h.config).unwrap();
    let workers = s.h.workers();
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let body = format!(
        "{}frontend taken\n    bind 127.0.0.1:{port}\n    default_backend web\nbackend newer\n    server n1 127.0.0.1:{}\n",
        haproxy_config(&s.dir.0, s.h.fe_port, s.be, ""),
        s.be
    );
    let r = api.put_config(&etag(api), &body);
    assert_eq!(r.status, 422, "{}\n{}", r.text(), s.lb.log_text());
    let error = r.json()["error"].as_str().unwrap_or_default().to_string();
    assert!(
        error.contains(&format!("line 15: bind 127.0.0.1:{port} is already in use")),
        "{error}"
    );
    assert_eq!(std::fs::read(&s.h.config).unwrap(), old, "file untouched");
    assert_eq!(s.h.workers(), workers, "no reload");
    assert!(s.lb.log_text().contains("refused (422): pre-flight"));
    // And the next good change goes through.
    drop(held);
    let r = api.put_config(&etag(api), &with_backend(&s, "later"));
    assert_eq!(r.status, 200, "{}\n{}", r.text(), s.lb.log_text());
    assert_eq!(s.h.backends(), ["web", "later"]);
}

/// Without a master socket, `reload = command` (here: SIGUSR2 to the
/// master, as Debian's unit does) is verified through the runtime API
/// alone: a new process answering it. A bind that cannot work is refused
/// before any reload.
#[test]
fn the_command_strategy_is_verified_through_the_runtime_api() {
    let dir = TempDir::new("command");
    let be = Backend::start().port;
    let fe = free_port();
    let h = Haproxy::start(&dir, &haproxy_config(&dir.0, fe, be, ""), fe);
    let kill = format!("kill -USR2 {}", h.pid());
    let lb = Lb::start(
        &dir,
        &h,
        &[
            "--reload",
            "command",
            "--reload-command",
            &kill,
            "--reload-timeout",
            "3000",
        ],
    );
    let body = haproxy_config(
        &dir.0,
        fe,
        be,
        &format!("backend viacmd\n    server c1 127.0.0.1:{be}\n"),
    );
    let r = lb.unix.put_config(&etag(&lb.unix), &body);
    assert_eq!(r.status, 200, "{}\n{}", r.text(), lb.log_text());
    assert_eq!(h.backends(), ["web", "viacmd"]);

    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let bad = format!("{body}frontend taken\n    bind 127.0.0.1:{port}\n    default_backend web\n");
    let r = lb.unix.put_config(&etag(&lb.unix), &bad);
    assert_eq!(r.status, 422, "{}\n{}", r.text(), lb.log_text());
    assert_eq!(
        std::fs::read_to_string(&h.config).unwrap(),
        body,
        "untouched"
    );
    assert_eq!(h.backends(), ["web", "viacmd"]);
}

#[test]
fn ten_reloads_under_load_lose_no_request() {
    let s = setup("load", &[]);
    let api = &s.lb.unix;
    let load = Load::start(s.h.fe_port, 4);
    for i in 0..10 {
        let r = api.put_config(&etag(api), &with_backend(&s, &format!("gen{i}")));
        assert_eq!(
            r.status,
            200,
            "reload {i}: {}\n{}",
            r.text(),
            s.lb.log_text()
        );
        // The old worker may still answer on the stats socket for a moment
        // while it stops (it shares the listener with the new one).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !s.h.backends().contains(&format!("gen{i}")) {
            assert!(
                std::time::Instant::now() < deadline,
                "gen{i} not served 30 s after the 200: {:?}",
                s.h.backends()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    let ok = load.ok.load(std::sync::atomic::Ordering::SeqCst);
    let errors = load.finish();
    assert!(
        errors.is_empty(),
        "{} failed requests, e.g. {:?}",
        errors.len(),
        errors.first()
    );
    assert!(ok >= 10, "the load generator got only {ok} answers");
    eprintln!("ten reloads under load: {ok} requests, 0 failed");
}

#[test]
fn of_two_concurrent_puts_exactly_one_is_applied() {
    let s = setup("concurrent", &[]);
    let tag = etag(&s.lb.unix);
    let bodies = [with_backend(&s, "one"), with_backend(&s, "two")];
    let replies: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = bodies
            .iter()
            .map(|b| {
                let api = s.lb.unix.clone();
                let tag = tag.clone();
                scope.spawn(move || api.put_config(&tag, b).status)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let applied: Vec<usize> = (0..2).filter(|i| replies[*i] == 200).collect();
    assert_eq!(applied.len(), 1, "{replies:?}\n{}", s.lb.log_text());
    let other = replies[1 - applied[0]];
    assert!(other == 409 || other == 412, "{replies:?}");
    assert_eq!(
        std::fs::read_to_string(&s.h.config).unwrap(),
        bodies[applied[0]]
    );
}

#[test]
fn put_without_or_with_a_stale_if_match_is_refused() {
    let s = setup("ifmatch", &[]);
    let api = &s.lb.unix;
    let body = with_backend(&s, "x");
    let r = api.request("PUT", "/v1/config", &[], body.as_bytes());
    assert_eq!(r.status, 428, "{}", r.text());
    let r = api.put_config("\"0000\"", &body);
    assert_eq!(r.status, 412, "{}", r.text());
    assert_ne!(std::fs::read_to_string(&s.h.config).unwrap(), body);
}

/// hapgent-lb with a loopback TCP listener and a token file `ci:right-token`;
/// the token file's directory is returned to live as long as the test.
fn tcp_setup(name: &str, extra: &[&str]) -> (Setup, Api, TempDir) {
    let dir = TempDir::new(&format!("{name}-tokens"));
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, "ci:right-token\n").unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut flags = vec![
        "--listen-tcp",
        &addr,
        "--token-file",
        tokens.to_str().unwrap(),
    ];
    flags.extend_from_slice(extra);
    let s = setup(name, &flags);
    // hapgent-lb binds TCP before the Unix socket Lb::start waits for.
    let api = Api::Tcp(addr.parse().unwrap());
    (s, api, dir)
}

#[test]
fn tcp_needs_the_right_bearer_token() {
    let (_s, api, _tokens) = tcp_setup("token", &[]);
    let missing = api.get("/v1/backends");
    assert_eq!(missing.status, 401, "{}", missing.text());
    let wrong = api.request(
        "GET",
        "/v1/backends",
        &["Authorization: Bearer wrong-token"],
        b"",
    );
    assert_eq!(wrong.status, 401);
    let right = api.request(
        "GET",
        "/v1/backends",
        &["Authorization: Bearer right-token"],
        b"",
    );
    assert_eq!(right.status, 200, "{}", right.text());
}

#[test]
fn without_a_token_nothing_changes_and_with_one_the_audit_names_it() {
    let (s, api, _tokens) = tcp_setup("audit", &[]);
    let tag = etag(&s.lb.unix);
    let body = with_backend(&s, "audited");
    let anonymous = api.request(
        "PUT",
        "/v1/config",
        &[&format!("If-Match: {tag}")],
        body.as_bytes(),
    );
    assert_eq!(anonymous.status, 401, "{}", anonymous.text());
    assert_eq!(s.h.backends(), ["web"]);
    let r = api.request(
        "PUT",
        "/v1/config",
        &[
            "Authorization: Bearer right-token",
            &format!("If-Match: {tag}"),
        ],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let log = s.lb.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("audit:"))
        .unwrap_or_else(|| panic!("{log}"));
    let old = tag.trim_matches('"');
    assert!(
        line.contains("by token ci")
            && line.contains(&format!("old sha256 {old}"))
            && line.ends_with("applied (200)"),
        "{line}"
    );
}

#[test]
fn an_oversized_body_gets_413() {
    let s = setup("oversized", &["--max-body", "1024"]);
    let r = s.lb.unix.put_config(&etag(&s.lb.unix), &"#".repeat(2000));
    assert_eq!(r.status, 413, "{}", r.text());
}

#[test]
fn an_oversized_body_over_tcp_gets_413_not_a_reset() {
    let (_s, api, _tokens) = tcp_setup("oversized-tcp", &["--max-body", "1024"]);
    let r = api.request(
        "PUT",
        "/v1/config",
        &["Authorization: Bearer right-token", "If-Match: \"x\""],
        &vec![b'#'; 256 * 1024],
    );
    assert_eq!(r.status, 413, "{}", r.text());
}

#[test]
fn a_client_sending_headers_one_byte_per_second_is_cut_off() {
    let s = setup("slowloris", &["--header-timeout", "1500"]);
    let Api::Unix(socket) = &s.lb.unix else {
        unreachable!("the API always listens on its Unix socket")
    };
    let mut stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
    let request = b"GET /v1/backends HTTP/1.1\r\nHost: lb\r\n\r\n";
    // One byte a second, as such a client sends, until the server answers
    // or closes (the pause between bytes ends as soon as it does). The
    // whole request would take 40 s: the server cuts it off first.
    let mut sent = 0;
    for b in request.iter() {
        if stream.write_all(&[*b]).is_err() {
            break;
        }
        sent += 1;
        if readable_within(&stream, Duration::from_secs(1)) {
            break;
        }
    }
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    assert!(sent < request.len(), "the whole request went through");
    let reply = parse_reply(&raw);
    assert_eq!(reply.status, 408, "{}", reply.text());
}

/// Whether `stream` has something to read (data or its end) within `limit`.
fn readable_within(stream: &impl std::os::fd::AsRawFd, limit: Duration) -> bool {
    let mut fd = libc::pollfd {
        fd: stream.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll(2) on one pollfd we own, for a descriptor that lives
    // as long as `stream`.
    let n = unsafe { libc::poll(&mut fd, 1, limit.as_millis() as libc::c_int) };
    n > 0
}
