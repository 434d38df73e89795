//! `serve` under hostile clients, a stop and a second instance: the API
//! keeps its promises (one instance per socket, a change finishes or is
//! undone at stop, anonymous clients cannot lock authorized ones out,
//! strict HTTP and token rules).

use crate::util::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

/// A generous bound for events on a loaded machine; never a timing claim.
const LIMIT: Duration = Duration::from_secs(60);

struct Setup {
    dir: TempDir,
    h: Haproxy,
    be: u16,
}

fn haproxy(name: &str) -> Setup {
    let dir = TempDir::new(name);
    let be = Backend::start().port;
    let fe = free_port();
    let h = Haproxy::start(&dir, &haproxy_config(&dir.0, fe, be, ""), fe);
    Setup { dir, h, be }
}

fn with_backend(s: &Setup, name: &str) -> String {
    haproxy_config(
        &s.dir.0,
        s.h.fe_port,
        s.be,
        &format!("backend {name}\n    server x1 127.0.0.1:{}\n", s.be),
    )
}

fn etag(api: &Api) -> String {
    let r = api.get("/v1/config");
    assert_eq!(r.status, 200, "{}", r.text());
    r.header("etag").unwrap().to_string()
}

fn put_request(etag: &str, body: &str) -> Vec<u8> {
    format!(
        "PUT /v1/config HTTP/1.1\r\nHost: lb\r\nIf-Match: {etag}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A token file `ci:right-token` and the flags for a TCP listener.
fn tcp_flags(dir: &TempDir) -> (Vec<String>, SocketAddr) {
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, "ci:right-token\n").unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let flags = vec![
        "--listen-tcp".to_string(),
        addr.to_string(),
        "--token-file".to_string(),
        tokens.display().to_string(),
    ];
    (flags, addr)
}

/// A reload command (for `reload = command`) that signals HAProxy's master
/// to reload, but the first time only after the test creates `go` in
/// `dir` (or gives up when it creates `cancel` or removes `dir`). It
/// creates `reload-started` when it runs, so the test can act while a
/// change is in the middle of its reload.
fn held_reload(dir: &Path, master_pid: u32) -> String {
    let script = dir.join("held-reload.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             d={dir}\n\
             touch \"$d/reload-started\"\n\
             if [ ! -e \"$d/reload-once\" ]; then\n\
               touch \"$d/reload-once\"\n\
               i=0\n\
               while [ -d \"$d\" ] && [ ! -e \"$d/go\" ] && [ ! -e \"$d/cancel\" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done\n\
               [ -e \"$d/go\" ] || exit 1\n\
             fi\n\
             kill -USR2 {master_pid}\n",
            dir = dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    script.display().to_string()
}

fn candidates(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("candidate"))
        .collect()
}

#[test]
fn a_second_serve_on_the_same_socket_refuses_to_start_and_the_socket_goes_at_stop() {
    let s = haproxy("second");
    let mut lb = Lb::start(&s.dir, &s.h, &[]);
    let socket = s.dir.join("api.sock");
    let inode = std::fs::metadata(&socket).unwrap().ino();
    let mut second = lb_command();
    second
        .arg("serve")
        .arg("--haproxy-socket")
        .arg(&s.h.admin)
        .arg("--haproxy-config")
        .arg(&s.h.config)
        .arg("--listen-unix")
        .arg(&socket);
    let (status, out) = exits_within(second, LIMIT);
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(
        out.contains("another instance is answering on this socket"),
        "{out}"
    );
    assert_eq!(std::fs::metadata(&socket).unwrap().ino(), inode);
    assert_eq!(
        lb.unix.get("/v1/config").status,
        200,
        "the first still serves"
    );

    lb.terminate();
    let status = lb.wait_exit(LIMIT);
    assert!(status.success(), "{status}: {}", lb.log_text());
    assert!(!socket.exists(), "socket removed at stop");
}

#[test]
fn sigterm_during_a_put_lets_it_finish_with_its_audit_line() {
    let s = haproxy("term-finish");
    let script = held_reload(&s.dir.0, s.h.pid());
    let mut lb = Lb::start(
        &s.dir,
        &s.h,
        &["--reload", "command", "--reload-command", &script],
    );
    let body = with_backend(&s, "during_stop");
    let request = put_request(&etag(&lb.unix), &body);
    let api = lb.unix.clone();
    let put = std::thread::spawn(move || raw_request(&api, &request));
    poll(LIMIT, "the change's reload to start", || {
        s.dir.join("reload-started").exists().then_some(())
    });
    lb.terminate();
    lb.wait_log("stopping on SIGTERM");
    // No new connections once stopping...
    assert!(std::os::unix::net::UnixStream::connect(s.dir.join("api.sock")).is_err());
    // ...but the change in progress finishes.
    std::fs::write(s.dir.join("go"), "").unwrap();
    let reply = parse_reply(&put.join().unwrap());
    assert_eq!(reply.status, 200, "{}\n{}", reply.text(), lb.log_text());
    let status = lb.wait_exit(LIMIT);
    assert!(status.success(), "{status}");
    let log = lb.log_text();
    assert!(log.contains("applied (200)"), "{log}");
    assert_eq!(std::fs::read_to_string(&s.h.config).unwrap(), body);
    assert!(s.h.backends().contains(&"during_stop".to_string()));
    assert!(candidates(&s.dir.0).is_empty());
    assert!(!s.dir.join("api.sock").exists());
}

#[test]
fn a_put_cut_off_by_the_end_of_stop_grace_is_rolled_back_and_audited() {
    let s = haproxy("term-cut");
    let script = held_reload(&s.dir.0, s.h.pid());
    let mut lb = Lb::start(
        &s.dir,
        &s.h,
        &[
            "--reload",
            "command",
            "--reload-command",
            &script,
            "--stop-grace",
            "100",
        ],
    );
    let old = std::fs::read_to_string(&s.h.config).unwrap();
    let request = put_request(&etag(&lb.unix), &with_backend(&s, "cut_off"));
    let api = lb.unix.clone();
    let put = std::thread::spawn(move || raw_request(&api, &request));
    poll(LIMIT, "the change's reload to start", || {
        s.dir.join("reload-started").exists().then_some(())
    });
    lb.terminate();
    let status = lb.wait_exit(LIMIT);
    std::fs::write(s.dir.join("cancel"), "").unwrap();
    assert!(status.success(), "{status}: {}", lb.log_text());
    let raw = put.join().unwrap();
    assert!(
        !String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    let log = lb.log_text();
    let audit = log
        .lines()
        .find(|l| l.contains("audit:"))
        .unwrap_or_else(|| panic!("no audit line: {log}"));
    assert!(
        audit.contains("interrupted by the stop")
            && audit.contains("previous file restored, HAProxy asked to reload it"),
        "{audit}"
    );
    assert_eq!(std::fs::read_to_string(&s.h.config).unwrap(), old);
    assert!(candidates(&s.dir.0).is_empty());
    assert_eq!(s.h.backends(), ["web"]);
}

#[test]
fn slow_anonymous_tcp_clients_cannot_lock_out_the_unix_socket() {
    let s = haproxy("budgets");
    let (mut flags, addr) = tcp_flags(&s.dir);
    flags.extend(["--header-timeout", "600000", "--tcp-auth-timeout", "600000"].map(String::from));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let lb = Lb::start(&s.dir, &s.h, &flags);
    // 70 clients that connect and send nothing: more than the TCP budget
    // (max_connections, 64).
    let idle: Vec<TcpStream> = (0..70).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let tcp = Api::Tcp(addr);
    poll(LIMIT, "the TCP budget to be full", || {
        let r = tcp.request(
            "GET",
            "/v1/config",
            &["Authorization: Bearer right-token"],
            b"",
        );
        (r.status == 503).then_some(())
    });
    let statuses: Vec<u16> = (0..30).map(|_| lb.unix.get("/v1/config").status).collect();
    assert!(
        statuses.iter().all(|s| *s == 200),
        "{statuses:?}\n{}",
        lb.log_text()
    );
    drop(idle);
}

#[test]
fn an_anonymous_tcp_client_gets_only_tcp_auth_timeout() {
    let s = haproxy("auth-deadline");
    let (mut flags, addr) = tcp_flags(&s.dir);
    flags.extend(["--header-timeout", "600000", "--tcp-auth-timeout", "500"].map(String::from));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let _lb = Lb::start(&s.dir, &s.h, &flags);
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    stream.write_all(b"GET /v1/config HTTP/1.1\r\n").unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    assert_eq!(parse_reply(&raw).status, 408);
}

#[test]
fn refused_tokens_are_logged_and_the_bearer_scheme_is_case_insensitive() {
    let s = haproxy("bearer");
    let (flags, addr) = tcp_flags(&s.dir);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let lb = Lb::start(&s.dir, &s.h, &flags);
    let tcp = Api::Tcp(addr);
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let r = tcp.request(
            "GET",
            "/v1/config",
            &[&format!("Authorization: {scheme} right-token")],
            b"",
        );
        assert_eq!(r.status, 200, "{scheme}: {}", r.text());
    }
    assert_eq!(tcp.get("/v1/config").status, 401);
    let log = lb.wait_log("(401): no Authorization header");
    assert!(
        log.contains("refused GET /v1/config from 127.0.0.1:"),
        "{log}"
    );
    assert!(!log.contains("right-token"), "{log}");
}

#[test]
fn differing_content_lengths_are_refused_with_400_and_change_nothing() {
    let s = haproxy("content-length");
    let lb = Lb::start(&s.dir, &s.h, &[]);
    let old = std::fs::read_to_string(&s.h.config).unwrap();
    let body = with_backend(&s, "smuggled");
    let request = format!(
        "PUT /v1/config HTTP/1.1\r\nHost: lb\r\nIf-Match: {}\r\nContent-Length: {}\r\nContent-Length: {}\r\n\r\n{body}",
        etag(&lb.unix),
        body.len(),
        body.len() + 5
    );
    let reply = parse_reply(&raw_request(&lb.unix, request.as_bytes()));
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert!(
        reply
            .text()
            .contains("two different Content-Length headers"),
        "{}",
        reply.text()
    );
    assert_eq!(std::fs::read_to_string(&s.h.config).unwrap(), old);
}

#[test]
fn a_token_file_that_is_a_fifo_is_a_configuration_error_not_a_hang() {
    let dir = TempDir::new("token-fifo");
    let fifo = dir.join("tokens");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let mut c = lb_command();
    c.arg("serve")
        .arg("--listen-unix")
        .arg(dir.join("api.sock"))
        .arg("--listen-tcp")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--token-file")
        .arg(&fifo);
    let (status, out) = exits_within(c, LIMIT);
    assert_eq!(status.code(), Some(78), "{out}");
    assert!(out.contains("is not a regular file"), "{out}");
}

/// A `haproxy_bin` that runs the real one only after the test creates
/// `go` in `dir` (gives up on `cancel`, or when `dir` is gone), and
/// creates `check-started` when called.
fn held_check(dir: &Path) -> String {
    let script = dir.join("held-haproxy.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             d={dir}\n\
             touch \"$d/check-started\"\n\
             i=0\n\
             while [ -d \"$d\" ] && [ ! -e \"$d/go\" ] && [ ! -e \"$d/cancel\" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done\n\
             [ -e \"$d/go\" ] || exit 1\n\
             exec {haproxy} \"$@\"\n",
            dir = dir.display(),
            haproxy = haproxy_bin()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    script.display().to_string()
}

#[test]
fn a_put_cut_off_during_its_check_leaves_no_candidate_and_an_audit_line() {
    let s = haproxy("term-check");
    let check = held_check(&s.dir.0);
    let mut lb = Lb::start(
        &s.dir,
        &s.h,
        &["--stop-grace", "100", "--haproxy-bin", &check],
    );
    let old = std::fs::read_to_string(&s.h.config).unwrap();
    let request = put_request(&etag(&lb.unix), &with_backend(&s, "unchecked"));
    let api = lb.unix.clone();
    let put = std::thread::spawn(move || raw_request(&api, &request));
    poll(LIMIT, "the candidate's check to start", || {
        s.dir.join("check-started").exists().then_some(())
    });
    assert_eq!(candidates(&s.dir.0).len(), 1, "the candidate is on disk");
    lb.terminate();
    let status = lb.wait_exit(LIMIT);
    std::fs::write(s.dir.join("cancel"), "").unwrap();
    assert!(status.success(), "{status}: {}", lb.log_text());
    let _ = put.join();
    let log = lb.log_text();
    assert!(
        log.lines().any(|l| l.contains("audit:")
            && l.contains("interrupted by the stop")
            && l.ends_with("nothing was changed")),
        "{log}"
    );
    assert!(
        candidates(&s.dir.0).is_empty(),
        "{:?}",
        candidates(&s.dir.0)
    );
    assert_eq!(std::fs::read_to_string(&s.h.config).unwrap(), old);
    assert_eq!(s.h.backends(), ["web"]);
}
